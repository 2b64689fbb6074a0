//! `--engine jinja`: minijinja with strict undefined behaviour, for configs that need
//! conditionals and loops. Variables are under `env`; `file(path)` reads a mounted file; a few
//! filters quote values safely for YAML, JSON and base64.

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::ValueKind;
use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior, Value};

use super::values::Values;
use crate::runtime::redact;
use crate::text::error_text;
use crate::text::error_text::line_and_column;

pub struct Jinja {
    env: Environment<'static>,
    values: BTreeMap<String, Value>,
}

/// At most this many undefined names are collected for one template, each costing a render.
const MAX_UNDEFINED: usize = 50;

impl Jinja {
    pub fn new(values: &Values) -> Jinja {
        let mut env = Environment::new();
        // Strict: an undefined variable is an error wherever it is used (printed, iterated,
        // compared), not an empty string; `is defined` and `default` still work.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // minijinja picks HTML or JSON escaping by file extension; configs are neither, and
        // quoting belongs to the filters the template asks for.
        env.set_auto_escape_callback(|_| AutoEscape::None);
        // Kept: a config's trailing newline. Trimmed: the line break after a block tag and the
        // indentation before it, so `{% if %}` lines leave nothing behind (as Ansible does for
        // the first; both are what an indented YAML or nginx template needs).
        if let Ok(syntax) = SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
        {
            env.set_syntax(syntax);
        }
        // Debug mode lets an undefined error name its expression (`env.DB_HOST`). Its other
        // part, a dump of the template's variables, is never printed: errors are built from
        // kind, detail and position only.
        env.set_debug(true);
        env.add_function("file", file);
        env.add_filter("b64encode", b64encode);
        env.add_filter("json_quote", json_quote);
        env.add_filter("yaml_quote", yaml_quote);
        Jinja {
            env,
            values: values
                .iter()
                .map(|(name, value)| (name.to_string(), Value::from(value)))
                .collect(),
        }
    }

    /// Renders one template; `name` is how messages refer to it. The error is one line that
    /// never holds a variable's value.
    ///
    /// Strict mode stops at the first undefined variable. To list them all, as the envsubst
    /// engine does, each undefined `env.NAME` is set to "" and the template rendered again,
    /// until it renders or fails for another reason.
    pub fn render(&self, name: &str, source: &str) -> Result<String, String> {
        let template = self
            .env
            .template_from_named_str(name, source)
            .map_err(|error| describe(&error, name, source))?;
        let mut values = self.values.clone();
        let mut first_error = None;
        let mut undefined = Vec::new();
        loop {
            let error = match template.render(context(&values)) {
                Ok(text) if first_error.is_none() => return Ok(text),
                Ok(_) => break,
                Err(error) => error,
            };
            let missing = undefined_env_name(&error).filter(|missing| {
                !values.contains_key(missing.as_str()) && undefined.len() < MAX_UNDEFINED
            });
            if first_error.is_none() {
                first_error = Some(describe(&error, name, source));
            }
            let Some(missing) = missing else { break };
            values.insert(missing.clone(), Value::from(""));
            undefined.push(missing);
        }
        let mut message = first_error.unwrap_or_default();
        if undefined.len() > 1 {
            message.push_str(&format!(" (undefined under env: {})", undefined.join(", ")));
        }
        Err(message)
    }
}

fn context(values: &BTreeMap<String, Value>) -> Value {
    Value::from(BTreeMap::from([("env", Value::from(values.clone()))]))
}

/// `NAME` from an error caused by an undefined `env.NAME` or `env['NAME']`: minijinja's debug
/// mode adds "`EXPRESSION` is undefined" to the detail of any error an undefined value caused.
fn undefined_env_name(error: &Error) -> Option<String> {
    let detail = error.detail()?;
    let before = &detail[..detail.find("` is undefined")?];
    let expression = &before[before.rfind('`')? + 1..];
    let name = match expression.strip_prefix("env.") {
        Some(name) => name,
        None => {
            let quoted = expression.strip_prefix("env[")?.strip_suffix(']')?;
            let quote = quoted.chars().next().filter(|c| matches!(c, '"' | '\''))?;
            quoted.strip_prefix(quote)?.strip_suffix(quote)?
        }
    };
    let simple = !name.is_empty() && !name.contains(['.', '[', '"', '\'', '\\']);
    simple.then(|| name.to_string())
}

/// `nginx.conf:3:14: undefined value: `env.DB_HOST` is undefined`.
fn describe(error: &Error, name: &str, source: &str) -> String {
    let place = match (error.range(), error.line()) {
        (Some(range), _) if range.start <= source.len() && source.is_char_boundary(range.start) => {
            let (line, column) = line_and_column(source, range.start);
            format!("{name}:{line}:{column}")
        }
        (_, Some(line)) => format!("{name}:{line}"),
        _ => name.to_string(),
    };
    let reason = match error.detail() {
        // The one minijinja message that shows operands ("unable to calculate 7 / 0"), which
        // may have come from a secret.
        Some(detail) if detail.starts_with("unable to calculate ") => format!(
            "{}: arithmetic failed (overflow or division by zero)",
            error.kind()
        ),
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    };
    format!("{place}: {reason}")
}

/// `file(path)`: a file's content with one trailing newline dropped, for a mounted Secret or
/// another init container's output.
fn file(path: &str) -> Result<String, Error> {
    redact::read_secret_file(Path::new(path), "template input")
        .map(|secret| secret.expose().to_string())
        .map_err(|error| {
            Error::new(
                ErrorKind::InvalidOperation,
                error_text::without_os_codes(&error.to_string()),
            )
        })
}

/// The text of a scalar a quoting filter was given; a list, a map or an undefined value has
/// no single right quoted form, so it is refused.
fn scalar_text(filter: &str, value: &Value) -> Result<String, Error> {
    match value.kind() {
        ValueKind::String | ValueKind::Number | ValueKind::Bool => Ok(value.to_string()),
        ValueKind::Undefined => Err(Error::new(
            ErrorKind::UndefinedError,
            format!("{filter} was given an undefined value"),
        )),
        kind => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("{filter} takes a string, number or boolean, not {kind}"),
        )),
    }
}

/// `{{ value | b64encode }}`: standard base64 with padding, as Kubernetes Secrets' `data` use.
fn b64encode(value: &Value) -> Result<String, Error> {
    let text = match value.as_bytes() {
        Some(bytes) if value.kind() == ValueKind::Bytes => bytes.to_vec(),
        _ => scalar_text("b64encode", value)?.into_bytes(),
    };
    Ok(base64(&text))
}

/// `{{ value | json_quote }}`: a JSON string literal, quotes included.
fn json_quote(value: &Value) -> Result<String, Error> {
    let text = scalar_text("json_quote", value)?;
    serde_json::to_string(&text).map_err(|_| Error::from(ErrorKind::BadSerialization))
}

/// `{{ value | yaml_quote }}`: a double-quoted YAML scalar, read back as exactly this string by
/// any YAML 1.1 or 1.2 parser, whatever it holds (`yes`, `0755`, `: `, `#`, newlines).
fn yaml_quote(value: &Value) -> Result<String, Error> {
    Ok(yaml_double_quoted(&scalar_text("yaml_quote", value)?))
}

fn yaml_double_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Control characters are not allowed raw, and NEL, LS, PS and the BOM would be read
            // as line breaks or dropped by some parsers.
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                let code = c as u32;
                if code <= 0xff {
                    out.push_str(&format!("\\x{code:02x}"));
                } else {
                    out.push_str(&format!("\\u{code:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (index, byte)| {
            n | u32::from(*byte) << (16 - 8 * index)
        });
        for index in 0..4 {
            if index <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * index) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jinja(pairs: &[(&str, &str)]) -> Jinja {
        Jinja::new(&Values::from_pairs(pairs))
    }

    #[test]
    fn renders_env_conditionals_and_loops() {
        let jinja = jinja(&[("HOST", "db"), ("PEERS", "a,b,c"), ("TLS", "on")]);
        let template = "host: {{ env.HOST }}\n\
                        {% if env.TLS == \"on\" %}\n\
                        tls: true\n\
                        {% endif %}\n\
                        peers:\n\
                        {% for peer in env.PEERS | split(\",\") %}\n  \
                          - {{ peer }}\n\
                        {% endfor %}\n\
                        port: {{ env.PORT | default(\"5432\") }}\n";
        assert_eq!(
            jinja.render("t.yaml", template).unwrap(),
            "host: db\ntls: true\npeers:\n  - a\n  - b\n  - c\nport: 5432\n"
        );
    }

    #[test]
    fn undefined_variables_are_errors_that_name_them() {
        let jinja = jinja(&[("HOST", "db")]);
        let error = jinja
            .render(
                "app.conf",
                "a\nhost={{ env.HOST }} port={{ env.PORT }} {{ env.USER_ }}\n",
            )
            .unwrap_err();
        assert!(error.starts_with("app.conf:2:"), "{error}");
        assert!(error.contains("undefined value"), "{error}");
        assert!(error.contains("env.PORT"), "{error}");
        assert!(
            error.contains("(undefined under env: PORT, USER_)"),
            "{error}"
        );
        let error = jinja
            .render("t", "{% for x in env.A %}{% endfor %}{{ env.B | upper }}")
            .unwrap_err();
        assert!(error.contains("(undefined under env: A, B)"), "{error}");
        let error = jinja
            .render("t", "{{ env[\"A-B\"] }}{{ env.C }}")
            .unwrap_err();
        assert!(error.contains("`env['A-B']` is undefined"), "{error}");
        assert!(error.contains("(undefined under env: A-B, C)"), "{error}");
        // Defined tests and defaults are the way to make a variable optional.
        assert_eq!(
            jinja
                .render(
                    "t",
                    "{% if env.PORT is defined %}x{% endif %}{{ env.PORT | default(1) }}"
                )
                .unwrap(),
            "1"
        );
        assert!(jinja.render("t", "{{ nothing }}").is_err());
        assert!(
            jinja
                .render("t", "{% for x in env.NOPE %}{% endfor %}")
                .is_err()
        );
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let error = jinja(&[]).render("t.conf", "ok\n{% if %}").unwrap_err();
        assert!(error.starts_with("t.conf:2"), "{error}");
        assert!(error.contains("syntax error"), "{error}");
    }

    #[test]
    fn no_auto_escaping_and_the_trailing_newline_is_kept() {
        let jinja = jinja(&[("V", "<a & \"b\">")]);
        for name in ["x.html", "x.json", "x.yaml"] {
            assert_eq!(
                jinja.render(name, "{{ env.V }}\n").unwrap(),
                "<a & \"b\">\n"
            );
        }
    }

    #[test]
    fn filters_quote_safely() {
        let jinja = jinja(&[("V", "yes: \"x\" # \\ é\n\u{7}"), ("N", "0755")]);
        assert_eq!(
            jinja.render("t", "{{ env.V | yaml_quote }}").unwrap(),
            r#""yes: \"x\" # \\ é\n\x07""#
        );
        assert_eq!(
            jinja.render("t", "{{ env.V | json_quote }}").unwrap(),
            r#""yes: \"x\" # \\ é\n\u0007""#
        );
        assert_eq!(
            jinja.render("t", "{{ env.N | yaml_quote }}").unwrap(),
            "\"0755\""
        );
        assert_eq!(
            jinja.render("t", "{{ 8080 | json_quote }}").unwrap(),
            "\"8080\""
        );
        assert_eq!(
            jinja
                .render("t", "{{ {\"a\": [1, env.N]} | tojson }}")
                .unwrap(),
            r#"{"a": [1, "0755"]}"#
        );
        assert!(jinja.render("t", "{{ [1] | yaml_quote }}").is_err());
        assert!(jinja.render("t", "{{ env.MISSING | yaml_quote }}").is_err());
        assert!(jinja.render("t", "{{ env.MISSING | b64encode }}").is_err());
    }

    #[test]
    fn b64encode_matches_the_standard_alphabet_with_padding() {
        for (input, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("\u{ff}\u{fe}?", "w7/Dvj8="),
        ] {
            assert_eq!(base64(input.as_bytes()), encoded, "{input:?}");
        }
        let jinja = jinja(&[("U", "user:pa ss")]);
        assert_eq!(
            jinja.render("t", "{{ env.U | b64encode }}").unwrap(),
            "dXNlcjpwYSBzcw=="
        );
    }

    #[test]
    fn file_reads_a_mounted_file_without_its_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("password");
        std::fs::write(&path, "s3cret\n").unwrap();
        let jinja = jinja(&[]);
        let template = format!("pw={{{{ file(\"{}\") }}}};", path.display());
        assert_eq!(jinja.render("t", &template).unwrap(), "pw=s3cret;");
        let missing = format!("{{{{ file(\"{}/nope\") }}}}", dir.path().display());
        let error = jinja.render("t", &missing).unwrap_err();
        assert!(error.contains("nope"), "{error}");
        assert!(error.contains("No such file"), "{error}");
        assert!(!error.contains("os error"), "{error}");
    }

    #[test]
    fn errors_never_show_values() {
        let jinja = jinja(&[("SECRET", "hunter2-s3cret"), ("PIN", "73915")]);
        for template in [
            "{{ env.SECRET + 1 }}",
            "{{ env.SECRET | int }}",
            "{{ env.SECRET.nope.deeper }}",
            "{% for x in env.SECRET | int %}{% endfor %}",
            "{{ env.SECRET[5:] | yaml_quote | nope }}",
            "{{ env.MISSING ~ env.SECRET }}",
            "{{ env.PIN | int // 0 }}",
            "{{ env.PIN | int * 9223372036854775807 * 9223372036854775807 }}",
        ] {
            let error = jinja.render("t", template).unwrap_err();
            assert!(!error.contains("hunter2"), "{template}: {error}");
            assert!(!error.contains("73915"), "{template}: {error}");
        }
    }
}
