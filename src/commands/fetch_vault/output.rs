//! Turning a secret's data into file contents: one field's raw bytes, or the whole map as JSON,
//! YAML or KEY=value lines. Only the data map, never KV v2 metadata.

use anyhow::anyhow;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The field's value exactly (needs #FIELD).
    Raw,
    /// The data map as a JSON object.
    Json,
    /// KEY='value' lines that a shell (`. file`) and dotenv loaders read back unchanged.
    Env,
    /// The data map as YAML (one quoted scalar per key).
    Yaml,
}

/// The bytes to write for one secret. Errors name fields, never values.
pub fn render(
    format: Format,
    data: &Map<String, Value>,
    field: Option<&str>,
) -> anyhow::Result<Vec<u8>> {
    let selected: Map<String, Value> = match field {
        Some(field) => {
            let value = data.get(field).ok_or_else(|| {
                let mut names: Vec<&str> = data.keys().map(String::as_str).collect();
                names.sort();
                anyhow!(
                    "no field '{field}' in the secret; its fields are: {}",
                    names.join(", ")
                )
            })?;
            if format == Format::Raw {
                return Ok(scalar_text(value).into_bytes());
            }
            Map::from_iter([(field.to_string(), value.clone())])
        }
        None if format == Format::Raw => {
            return Err(crate::runtime::exit::usage(
                "--format raw needs a #FIELD in --secret",
            ));
        }
        None => data.clone(),
    };
    Ok(match format {
        Format::Raw => unreachable!("handled above"),
        Format::Json => {
            let mut text = serde_json::to_string_pretty(&Value::Object(selected))?;
            text.push('\n');
            text.into_bytes()
        }
        Format::Yaml => selected
            .iter()
            // A JSON string is a valid YAML double-quoted scalar, and a JSON object or array a
            // valid YAML flow collection: quoting this way never changes a value's meaning.
            .map(|(key, value)| format!("{}: {}\n", Value::from(key.as_str()), value))
            .collect::<String>()
            .into_bytes(),
        Format::Env => {
            let mut lines = String::new();
            for (key, value) in &selected {
                if !crate::text::shell_name::is_valid(key) {
                    return Err(anyhow!(
                        "field '{key}' is not a valid variable name for --format env; use #FIELD with raw, or json"
                    ));
                }
                let quoted = env_quote(&scalar_text(value))
                    .ok_or_else(|| anyhow!("the value of '{key}' holds both ' and $ or `, which no quoting reads back the same in a shell and in dotenv; use json"))?;
                lines.push_str(&format!("{key}={quoted}\n"));
            }
            lines.into_bytes()
        }
    })
}

/// Strings as they are; numbers, booleans and nested values as JSON text.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Single quotes are literal in both a shell and dotenv loaders; a value with a single quote in
/// it uses double quotes, escaping only `\` and `"` (read alike by both), which is safe only
/// when no `$` or backquote would be expanded by the shell.
fn env_quote(value: &str) -> Option<String> {
    if !value.contains('\'') {
        return Some(format!("'{value}'"));
    }
    if value.contains(['$', '`']) {
        return None;
    }
    Some(format!(
        "\"{}\"",
        value.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data() -> Map<String, Value> {
        json!({"password": "s3 cr'et", "user": "app", "port": 5432})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn raw_is_the_field_exactly() {
        assert_eq!(
            render(Format::Raw, &data(), Some("password")).unwrap(),
            b"s3 cr'et"
        );
        assert_eq!(render(Format::Raw, &data(), Some("port")).unwrap(), b"5432");
    }

    #[test]
    fn a_missing_field_lists_the_names_not_the_values() {
        let error = render(Format::Raw, &data(), Some("pasword"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "no field 'pasword' in the secret; its fields are: password, port, user"
        );
        assert!(!error.contains("s3"));
    }

    #[test]
    fn json_and_yaml_hold_the_data_map() {
        let json: Value =
            serde_json::from_slice(&render(Format::Json, &data(), None).unwrap()).unwrap();
        assert_eq!(json, Value::Object(data()));
        let yaml =
            String::from_utf8(render(Format::Yaml, &data(), Some("password")).unwrap()).unwrap();
        assert_eq!(yaml, "\"password\": \"s3 cr'et\"\n");
    }

    #[test]
    fn env_lines_quote_for_shell_and_dotenv() {
        let env = String::from_utf8(render(Format::Env, &data(), None).unwrap()).unwrap();
        assert_eq!(env, "password=\"s3 cr'et\"\nport='5432'\nuser='app'\n");
        let both = json!({"x": "it's $HOME"}).as_object().unwrap().clone();
        assert!(render(Format::Env, &both, None).is_err());
        let bad_name = json!({"db-password": "x"}).as_object().unwrap().clone();
        assert!(
            render(Format::Env, &bad_name, None)
                .unwrap_err()
                .to_string()
                .contains("'db-password'")
        );
    }
}
