//! `--validate`: parse the rendered output as JSON, YAML or TOML before it is written.
//!
//! Messages give the parser's line, column and reason, never the offending line itself: the
//! output may hold secret values, and the parsers' own Display forms quote the source (toml's
//! shows the whole line with a caret), so only their structured parts are used.

use std::collections::HashSet;

use saphyr_parser::{Event, Parser, ScalarStyle};

use crate::text::error_text::line_and_column;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Yaml,
    Toml,
    /// By the output file's extension: .json, .yaml or .yml, .toml; other files are not checked.
    Auto,
}

impl Format {
    /// The format to check `name` as: `Auto` decided by the extension, `None` for no check.
    pub fn for_file(self, name: &str) -> Option<Format> {
        if self != Format::Auto {
            return Some(self);
        }
        let extension = name.rsplit_once('.')?.1.to_ascii_lowercase();
        match extension.as_str() {
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            "toml" => Some(Format::Toml),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Yaml => "yaml",
            Format::Toml => "toml",
            Format::Auto => "auto",
        }
    }
}

/// Checks that `text` parses as `format`: `invalid yaml at line 3, column 7: ...` otherwise.
pub fn check(format: Format, text: &str) -> Result<(), String> {
    let found = match format {
        Format::Json => json(text),
        Format::Yaml => yaml(text),
        Format::Toml => toml(text),
        Format::Auto => Ok(()),
    };
    found.map_err(|(line, column, reason)| {
        format!(
            "invalid {} at line {line}, column {column}: {reason}",
            format.name()
        )
    })
}

type Invalid = (usize, usize, String);

fn json(text: &str) -> Result<(), Invalid> {
    serde_json::from_str::<serde_json::Value>(text)
        .map(drop)
        .map_err(|error| {
            // serde_json's messages for an untyped value are fixed phrases ("expected `,` or
            // `}`", "trailing comma"); its Display only adds the position, which is given apart.
            let shown = error.to_string();
            let suffix = format!(" at line {} column {}", error.line(), error.column());
            let reason = shown.strip_suffix(&suffix).unwrap_or(&shown).to_string();
            (error.line(), error.column(), reason)
        })
}

/// saphyr-parser, the YAML 1.2 event parser of the saphyr project (the maintained successor of
/// yaml-rust and yaml-rust2): pure Rust, no unsafe, two small dependencies, and events with
/// positions are all a check needs. serde_yaml is deprecated and unmaintained, and its forks
/// bring a serde data model this check has no use for.
fn yaml(text: &str) -> Result<(), Invalid> {
    let mut open: Vec<Collection> = Vec::new();
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|error| {
            let marker = error.marker();
            (marker.line(), marker.col() + 1, error.info().to_string())
        })?;
        match event {
            Event::Scalar(value, style, ..) => {
                let duplicate = match open.last_mut() {
                    Some(Collection::Mapping {
                        keys,
                        expect_key: true,
                    }) => !keys.insert((style == ScalarStyle::Plain, value.to_string())),
                    _ => false,
                };
                if duplicate {
                    // The key is the config's own structure, not one of its values.
                    return Err((
                        span.start.line(),
                        span.start.col() + 1,
                        format!("duplicate key '{value}'"),
                    ));
                }
                node_done(&mut open);
            }
            Event::Alias(_) => node_done(&mut open),
            Event::MappingStart(..) => open.push(Collection::Mapping {
                keys: HashSet::new(),
                expect_key: true,
            }),
            Event::SequenceStart(..) => open.push(Collection::Sequence),
            Event::MappingEnd | Event::SequenceEnd => {
                open.pop();
                node_done(&mut open);
            }
            _ => {}
        }
    }
    Ok(())
}

/// A mapping or sequence being read. YAML requires a mapping's keys to be unique; most loaders
/// enforce it (Go's yaml.v3, SnakeYAML), so a duplicate would be rejected by the app anyway.
enum Collection {
    /// Scalar keys seen so far, with whether each was plain (`1` and `"1"` are different keys).
    Mapping {
        keys: HashSet<(bool, String)>,
        expect_key: bool,
    },
    Sequence,
}

/// A node has been read completely: in a mapping, keys and values alternate.
fn node_done(open: &mut [Collection]) {
    if let Some(Collection::Mapping { expect_key, .. }) = open.last_mut() {
        *expect_key = !*expect_key;
    }
}

fn toml(text: &str) -> Result<(), Invalid> {
    toml::de::DeTable::parse(text).map(drop).map_err(|error| {
        let offset = error.span().map_or(0, |span| span.start).min(text.len());
        let mut offset = offset;
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let (line, column) = line_and_column(text, offset);
        (line, column, error.message().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_documents_pass() {
        assert_eq!(check(Format::Json, r#"{"a": [1, 2, {"b": null}]}"#), Ok(()));
        assert_eq!(
            check(
                Format::Yaml,
                "a: 1\nb:\n  - x\n  - {c: d}\n---\nsecond: doc\n"
            ),
            Ok(())
        );
        assert_eq!(
            check(Format::Toml, "title = \"x\"\n[server]\nport = 8080\n"),
            Ok(())
        );
        // The same key in different mappings, and keys that only look alike, are fine.
        assert_eq!(
            check(
                Format::Yaml,
                "a: {x: 1}\nb: {x: 2}\nlist:\n  - x: 1\n  - x: 2\n1: int\n\"1\": str\n"
            ),
            Ok(())
        );
    }

    #[test]
    fn json_errors_have_line_and_column() {
        assert_eq!(
            check(Format::Json, "{\n  \"a\": 1,\n}"),
            Err("invalid json at line 3, column 1: trailing comma".into())
        );
        assert_eq!(
            check(Format::Json, ""),
            Err("invalid json at line 1, column 0: EOF while parsing a value".into())
        );
    }

    #[test]
    fn yaml_errors_have_line_and_column() {
        let error = check(Format::Yaml, "a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(error.starts_with("invalid yaml at line "), "{error}");
        let error = check(Format::Yaml, "a: 1\n  b: 2\n").unwrap_err();
        assert!(
            error.starts_with("invalid yaml at line 2, column "),
            "{error}"
        );
        assert_eq!(
            check(Format::Yaml, "server:\n  port: 1\n  host: x\n  port: 2\n"),
            Err("invalid yaml at line 4, column 3: duplicate key 'port'".into())
        );
    }

    #[test]
    fn toml_errors_have_line_and_column() {
        assert_eq!(
            check(Format::Toml, "a = 1\nb = \nc = 3\n"),
            Err("invalid toml at line 2, column 5: string values must be quoted, expected literal string".into())
        );
        assert_eq!(
            check(Format::Toml, "a = 1\na = 2\n"),
            Err("invalid toml at line 2, column 1: duplicate key".into())
        );
    }

    #[test]
    fn messages_never_quote_the_document() {
        let secret = "hunter2-s3cret";
        for (format, text) in [
            (Format::Json, format!("{{\"password\": \"{secret}\" x}}")),
            (Format::Yaml, format!("password: {secret}\n  bad: [\n")),
            (Format::Toml, format!("password = {secret}\n")),
            (
                Format::Toml,
                format!("password = \"{secret}\"\npassword = \"{secret}\"\n"),
            ),
        ] {
            let error = check(format, &text).unwrap_err();
            assert!(!error.contains(secret), "{error}");
            assert!(!error.contains('\n'), "{error}");
        }
    }

    #[test]
    fn auto_goes_by_extension() {
        assert_eq!(Format::Auto.for_file("app.json"), Some(Format::Json));
        assert_eq!(Format::Auto.for_file("app.YML"), Some(Format::Yaml));
        assert_eq!(Format::Auto.for_file("a.b.toml"), Some(Format::Toml));
        assert_eq!(Format::Auto.for_file("nginx.conf"), None);
        assert_eq!(Format::Auto.for_file("Makefile"), None);
        assert_eq!(Format::Yaml.for_file("nginx.conf"), Some(Format::Yaml));
    }
}
