//! Short, stable error texts for log lines and termination messages.

/// Drops the ` (os error 111)` suffixes the standard library adds: the words already say it,
/// and the number only makes otherwise equal errors look different.
pub fn without_os_codes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(" (os error ") {
        out.push_str(&rest[..start]);
        rest = match rest[start..].find(')') {
            Some(end) => &rest[start + end + 1..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

/// An I/O error as a lower-case phrase: "connection refused".
pub fn io(error: &std::io::Error) -> String {
    let text = without_os_codes(&error.to_string());
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_os_codes_and_lowercases() {
        assert_eq!(
            io(&std::io::Error::from_raw_os_error(111)),
            "connection refused"
        );
        assert_eq!(
            without_os_codes("error connecting to server: Connection refused (os error 111)"),
            "error connecting to server: Connection refused"
        );
        assert_eq!(without_os_codes("a (os error 1) b (os error 2)"), "a b");
    }
}
