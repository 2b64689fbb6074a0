//! Shell variable names: what `${NAME}` may refer to, and what an env file may assign.

/// A letter or `_`, then letters, digits or `_` (POSIX's "name").
pub fn is_valid(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["A", "_", "db_password", "X1"] {
            assert!(is_valid(good), "{good}");
        }
        for bad in ["", "1a", "a-b", "a.b", "é"] {
            assert!(!is_valid(bad), "{bad}");
        }
    }
}
