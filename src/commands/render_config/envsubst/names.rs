//! The `--only` list: variable names separated by commas or white space, also as GNU
//! envsubst's SHELL-FORMAT argument spells them (`'$HOST $PORT'`, `'${HOST},${PORT}'`), so that
//! a command line moves over unchanged.

use std::collections::BTreeSet;

use crate::text::shell_name;

/// The names in one `--only` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameList(pub BTreeSet<String>);

/// Reads `HOST,PORT`, `HOST PORT`, `$HOST $PORT`, `${HOST}${PORT}`; anything else in the list
/// is an error, since a name that silently matches nothing would leave its `${...}` unexpanded.
pub fn parse(text: &str) -> Result<NameList, String> {
    let mut names = BTreeSet::new();
    for chunk in text.split(|c: char| c == ',' || c.is_whitespace()) {
        if chunk.is_empty() {
            continue;
        }
        // `$A$B` holds two names; `A` is one.
        let parts: Vec<&str> = match chunk.strip_prefix('$') {
            Some(rest) => rest.split('$').collect(),
            None => vec![chunk],
        };
        for part in parts {
            let name = part
                .strip_prefix('{')
                .and_then(|inner| inner.strip_suffix('}'))
                .unwrap_or(part);
            if !shell_name::is_valid(name) {
                return Err(format!(
                    "'{chunk}' is not a variable name: give names separated by commas or spaces \
                     (letters, digits and _, not starting with a digit), optionally as $NAME or \
                     ${{NAME}}"
                ));
            }
            names.insert(name.to_string());
        }
    }
    if names.is_empty() {
        return Err("no variable names given".to_string());
    }
    Ok(NameList(names))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<String> {
        parse(text).unwrap().0.into_iter().collect()
    }

    #[test]
    fn every_spelling_gives_the_same_names() {
        for text in [
            "HOST,PORT",
            "HOST PORT",
            " HOST ,\tPORT,",
            "$HOST $PORT",
            "${HOST} ${PORT}",
            "${HOST},$PORT",
            "$HOST$PORT",
            "${HOST}${PORT}",
            "PORT HOST HOST",
        ] {
            assert_eq!(names(text), ["HOST", "PORT"], "{text:?}");
        }
    }

    #[test]
    fn anything_that_is_not_a_name_is_refused() {
        for (text, shown) in [
            ("HOST,1PORT", "'1PORT'"),
            ("db-host", "'db-host'"),
            ("$", "'$'"),
            ("${HOST", "'${HOST'"),
            ("${HOST:-x}", "'${HOST:-x}'"),
            ("$HOST;", "'$HOST;'"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(shown), "{text:?}: {error}");
        }
        for empty in ["", " , ", "\n"] {
            assert_eq!(parse(empty).unwrap_err(), "no variable names given");
        }
    }
}
