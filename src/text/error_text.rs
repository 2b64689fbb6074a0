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

/// A read that hit the end of the stream, said as what it means for a client: the server hung
/// up (std's "failed to fill whole buffer" says nothing to a reader of the log).
pub fn closed_early(error: std::io::Error) -> std::io::Error {
    if error.kind() == std::io::ErrorKind::UnexpectedEof {
        std::io::Error::new(error.kind(), "the server closed the connection")
    } else {
        error
    }
}

/// 1-based line and column (in characters) of a byte offset in `text`, for messages that
/// point into a template, a rendered file or a SQL file.
pub fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    (line, before[line_start..].chars().count() + 1)
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

    #[test]
    fn offsets_become_lines_and_character_columns() {
        let text = "é1\nab\n";
        assert_eq!(line_and_column(text, 0), (1, 1));
        assert_eq!(line_and_column(text, 2), (1, 2));
        assert_eq!(line_and_column(text, 4), (2, 1));
    }
}
