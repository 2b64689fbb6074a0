//! A URI's query parameters as a probe's options: `?read_write&query=...`. Each probe takes the
//! names it knows; what is left is either an error (initbox's own schemes) or handed on to the
//! server (an http:// URL's own query, a postgres:// URL's libpq options).
//!
//! Names are matched with '-' and '_' alike, so the flag's spelling (`body-contains`) works too.
//! Values are never repeated in errors: a parameter may carry a secret.

use std::path::PathBuf;

use crate::runtime::exit;
use crate::runtime::logging::{self, Level};

pub struct Query {
    /// What the URI is, for errors (its redacted form).
    what: String,
    /// Name, value, and the parameter as written (kept as is for the server).
    pairs: Vec<(String, String, String)>,
}

impl Query {
    /// Reads a query string (what follows the '?'); `what` names the URI in errors.
    pub fn new(what: &str, query: &str) -> Query {
        let pairs = query
            .split('&')
            .filter(|raw| !raw.is_empty())
            .map(|raw| {
                let (key, value) = url::form_urlencoded::parse(raw.as_bytes())
                    .next()
                    .map(|(key, value)| (key.into_owned(), value.into_owned()))
                    .unwrap_or_default();
                (key, value, raw.to_string())
            })
            .collect();
        Query {
            what: what.to_string(),
            pairs,
        }
    }

    /// The values given for a parameter (any of its `names`), removed from the query.
    pub fn take_all(&mut self, names: &[&str]) -> Vec<String> {
        let (taken, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pairs)
            .into_iter()
            .partition(|(key, _, _)| names.iter().any(|name| same_name(key, name)));
        self.pairs = kept;
        taken.into_iter().map(|(_, value, _)| value).collect()
    }

    /// The value of a parameter given at most once; an empty value is an error.
    pub fn take(&mut self, names: &[&str]) -> anyhow::Result<Option<String>> {
        let mut values = self.take_all(names);
        match values.len() {
            0 => Ok(None),
            1 if values[0].is_empty() => Err(self.invalid(names[0], "it needs a value")),
            1 => Ok(values.pop()),
            _ => Err(self.invalid(names[0], "it is given more than once")),
        }
    }

    /// A parameter parsed with the same parser as its flag (whose messages never repeat a
    /// secret value).
    pub fn parse<T>(
        &mut self,
        names: &[&str],
        parser: impl Fn(&str) -> Result<T, String>,
    ) -> anyhow::Result<Option<T>> {
        match self.take(names)? {
            None => Ok(None),
            Some(text) => parser(&text)
                .map(Some)
                .map_err(|why| self.invalid(names[0], &why)),
        }
    }

    /// A path parameter (a CA or password file).
    pub fn path(&mut self, names: &[&str]) -> anyhow::Result<Option<PathBuf>> {
        Ok(self.take(names)?.map(PathBuf::from))
    }

    /// A switch: `?read_write`, `?read_write=true` or `=1`; `=false` or `=0` turns it off.
    pub fn flag(&mut self, names: &[&str]) -> anyhow::Result<bool> {
        let values = self.take_all(names);
        match values.last().map(String::as_str) {
            None | Some("false" | "0") => Ok(false),
            Some("" | "true" | "1") => Ok(true),
            Some(_) => Err(self.invalid(names[0], "expected no value, true or false")),
        }
    }

    /// The parameters nobody took, as written, for schemes where the rest belongs to the
    /// server: `None` when there are none.
    pub fn rest(self) -> Option<String> {
        let raw: Vec<String> = self.pairs.into_iter().map(|(_, _, raw)| raw).collect();
        (!raw.is_empty()).then(|| raw.join("&"))
    }

    /// Fails on any parameter nobody took, naming it and the ones the scheme knows.
    pub fn finish(self, known: &[&str]) -> anyhow::Result<()> {
        match self.pairs.first() {
            None => Ok(()),
            Some((key, _, _)) if known.is_empty() => Err(exit::usage(format!(
                "{}: unknown parameter '{key}' (it takes none)",
                self.what
            ))),
            Some((key, _, _)) => Err(exit::usage(format!(
                "{}: unknown parameter '{key}' (expected {})",
                self.what,
                known.join(", ")
            ))),
        }
    }

    /// Warns about each parameter nobody took: for URLs shared with other clients, whose own
    /// options initbox does not use.
    pub fn ignore_rest(self) {
        for (key, _, _) in &self.pairs {
            logging::emit(
                Level::Warn,
                &format!(
                    "{}: ignoring parameter '{key}', which initbox does not use",
                    self.what
                ),
                &[],
            );
        }
    }

    fn invalid(&self, name: &str, why: &str) -> anyhow::Error {
        exit::usage(format!("{}: invalid parameter '{name}': {why}", self.what))
    }
}

fn same_name(given: &str, name: &str) -> bool {
    given.len() == name.len()
        && given
            .bytes()
            .zip(name.bytes())
            .all(|(a, b)| a == b || (a == b'-' && b == b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::exit::Exit;

    fn query(text: &str) -> Query {
        Query::new("test:", text)
    }

    #[test]
    fn takes_values_flags_and_repeats_with_either_spelling() {
        let mut q = query("read_write&body-contains=ok&header=A:%201&header=B:2&min=3&fail_fast=0");
        assert!(q.flag(&["read_write"]).unwrap());
        assert!(!q.flag(&["fail_fast"]).unwrap());
        assert!(!q.flag(&["absent"]).unwrap());
        assert_eq!(
            q.take(&["body_contains", "body"]).unwrap().as_deref(),
            Some("ok")
        );
        assert_eq!(q.take_all(&["header"]), ["A: 1", "B:2"]);
        assert_eq!(
            q.parse(&["min"], |text| text
                .parse::<u32>()
                .map_err(|e| e.to_string()))
                .unwrap(),
            Some(3)
        );
        assert!(q.finish(&[]).is_ok());
    }

    #[test]
    fn leftovers_empty_values_and_repeats_are_usage_errors_without_values() {
        let error = query("bogus=SECRET").finish(&["type", "min"]).unwrap_err();
        assert_eq!(Exit::of(&error), Exit::Usage);
        assert_eq!(
            error.to_string(),
            "test:: unknown parameter 'bogus' (expected type, min)"
        );
        assert!(query("min=").take(&["min"]).is_err());
        assert!(query("min=1&min=2").take(&["min"]).is_err());
        let error = query("read_write=SECRET")
            .flag(&["read_write"])
            .unwrap_err();
        assert!(!error.to_string().contains("SECRET"), "{error}");
        let mut q = query("a=1%202&b&min=3");
        q.take(&["min"]).unwrap();
        assert_eq!(q.rest().as_deref(), Some("a=1%202&b"));
        assert_eq!(query("").rest(), None);
    }
}
