//! The default engine: shell-style `${VAR}` expansions with the POSIX meanings of `:-`, `-`,
//! `:?`, `?`, `:+` and `+`, and `$$` for a literal `$`.
//!
//! Only the braced form is expanded. A bare `$host` is left as written, because config files
//! for nginx, Apache or HAProxy are full of their own `$variables`, which gettext's envsubst
//! wipes to empty. A template is parsed whole before anything is evaluated, so a syntax error
//! anywhere stops it, while every undefined variable is collected for one message.

use crate::text::error_text::line_and_column;
use crate::text::shell_name;

/// Something wrong in a template, at a 1-based line and column (in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    pub kind: ProblemKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// The template cannot be parsed: an unterminated `${`, a bad name, an unsupported form.
    Syntax(String),
    /// A variable without a default is not set (or, for `:?`, empty). `message` is the text the
    /// template gives after `?`, as written; never the value of anything.
    Undefined {
        name: String,
        message: Option<String>,
    },
}

/// Renders `source`, looking variables up with `lookup`. On failure, all the undefined
/// variables (or the first syntax error) with their positions; nothing of the output.
pub fn render<'v>(
    source: &str,
    lookup: impl Fn(&str) -> Option<&'v str>,
) -> Result<String, Vec<Problem>> {
    let pieces = Parser { source, pos: 0 }
        .pieces(false)
        .map_err(|(offset, message)| {
            let (line, column) = line_and_column(source, offset);
            vec![Problem {
                line,
                column,
                kind: ProblemKind::Syntax(message),
            }]
        })?;
    let mut out = String::with_capacity(source.len());
    let mut undefined = Vec::new();
    evaluate(&pieces, &lookup, &mut out, &mut undefined);
    if undefined.is_empty() {
        return Ok(out);
    }
    Err(undefined
        .into_iter()
        .map(|(offset, name, message)| {
            let (line, column) = line_and_column(source, offset);
            Problem {
                line,
                column,
                kind: ProblemKind::Undefined { name, message },
            }
        })
        .collect())
}

const SUPPORTED: &str = "${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, \
                         ${VAR?message}, ${VAR:+alternative}, ${VAR+alternative}";

#[derive(Debug)]
enum Piece<'a> {
    Text(&'a str),
    Expansion(Expansion<'a>),
}

#[derive(Debug)]
struct Expansion<'a> {
    /// Byte offset of the `$`, for messages.
    offset: usize,
    name: &'a str,
    op: Op,
    /// With `:` (`:-`, `:?`, `:+`), an empty value counts as unset.
    colon: bool,
    word: Vec<Piece<'a>>,
    /// The word as written, for the `?` message: it is shown, never expanded, so that an
    /// error can only ever print the template's own text.
    word_source: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Plain,
    Default,
    Required,
    Alternative,
}

/// A syntax error: byte offset and message.
type SyntaxError = (usize, String);

struct Parser<'a> {
    source: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    /// Parses text up to the end, or, inside a word (`in_word`), up to the `}` that closes it,
    /// which is consumed.
    fn pieces(&mut self, in_word: bool) -> Result<Vec<Piece<'a>>, SyntaxError> {
        let bytes = self.source.as_bytes();
        let mut pieces = Vec::new();
        let mut start = self.pos;
        while self.pos < bytes.len() {
            match bytes[self.pos] {
                b'$' if bytes.get(self.pos + 1) == Some(&b'$') => {
                    // `$$`: keep the first `$` as text, drop the second.
                    pieces.push(Piece::Text(&self.source[start..self.pos + 1]));
                    self.pos += 2;
                    start = self.pos;
                }
                b'$' if bytes.get(self.pos + 1) == Some(&b'{') => {
                    pieces.push(Piece::Text(&self.source[start..self.pos]));
                    pieces.push(Piece::Expansion(self.expansion()?));
                    start = self.pos;
                }
                b'}' if in_word => {
                    pieces.push(Piece::Text(&self.source[start..self.pos]));
                    self.pos += 1;
                    return Ok(pieces);
                }
                _ => self.pos += 1,
            }
        }
        if in_word {
            return Err((self.pos, String::new()));
        }
        pieces.push(Piece::Text(&self.source[start..]));
        Ok(pieces)
    }

    /// Parses `${...}` with `pos` at the `$`, leaving `pos` after the closing `}`.
    fn expansion(&mut self) -> Result<Expansion<'a>, SyntaxError> {
        let offset = self.pos;
        let bytes = self.source.as_bytes();
        let name_start = offset + 2;
        let name_len = bytes[name_start..]
            .iter()
            .take_while(|byte| byte.is_ascii_alphanumeric() || **byte == b'_')
            .count();
        let name = &self.source[name_start..name_start + name_len];
        let after = name_start + name_len;
        let unterminated = || (offset, "unterminated ${: no closing }".to_string());
        let (op, colon, op_len) = match (bytes.get(after), bytes.get(after + 1)) {
            (None, _) => return Err(unterminated()),
            (Some(b'}'), _) => (Op::Plain, false, 0),
            (Some(b':'), Some(b'-')) => (Op::Default, true, 2),
            (Some(b':'), Some(b'?')) => (Op::Required, true, 2),
            (Some(b':'), Some(b'+')) => (Op::Alternative, true, 2),
            (Some(b'-'), _) => (Op::Default, false, 1),
            (Some(b'?'), _) => (Op::Required, false, 1),
            (Some(b'+'), _) => (Op::Alternative, false, 1),
            _ => return Err(self.bad_expansion(offset, name_start, after)),
        };
        if name.is_empty() {
            return Err((offset, "empty variable name in ${}".to_string()));
        }
        if !shell_name::is_valid(name) {
            return Err((offset, invalid_name(name)));
        }
        if op == Op::Plain {
            self.pos = after + 1;
            return Ok(Expansion {
                offset,
                name,
                op,
                colon,
                word: Vec::new(),
                word_source: "",
            });
        }
        self.pos = after + op_len;
        let word_start = self.pos;
        // An error inside the word keeps its own position; running out of input is reported at
        // this `${`, which is where the reader must look.
        let word = self.pieces(true).map_err(|(at, message)| {
            if message.is_empty() {
                unterminated()
            } else {
                (at, message)
            }
        })?;
        Ok(Expansion {
            offset,
            name,
            op,
            colon,
            word,
            word_source: &self.source[word_start..self.pos - 1],
        })
    }

    /// The error for `${` followed by something that is neither a name nor a supported
    /// operator: a name with other characters in it, an unsupported form such as `${VAR#x}`,
    /// or no closing `}` at all.
    fn bad_expansion(&self, offset: usize, name_start: usize, after: usize) -> SyntaxError {
        let line_end = self.source[name_start..]
            .find('\n')
            .map_or(self.source.len(), |end| name_start + end);
        let Some(close) = self.source[name_start..line_end].find('}') else {
            return (offset, "unterminated ${: no closing }".to_string());
        };
        let inside = &self.source[name_start..name_start + close];
        let next = self.source[after..].chars().next().unwrap_or(' ');
        if after > name_start
            && shell_name::is_valid(&self.source[name_start..after])
            && "=#%/:^,@".contains(next)
        {
            return (
                offset,
                format!("unsupported expansion ${{{inside}}}: supported are {SUPPORTED}"),
            );
        }
        (offset, invalid_name(inside))
    }
}

fn invalid_name(name: &str) -> String {
    format!(
        "invalid variable name '{name}' in ${{...}}: a name is letters, digits and _, \
         not starting with a digit"
    )
}

/// Appends the value of `pieces` to `out`; undefined variables go to `undefined` as
/// (offset, name, message) and expand to nothing, so that evaluation can go on and find them all.
fn evaluate<'v>(
    pieces: &[Piece<'_>],
    lookup: &impl Fn(&str) -> Option<&'v str>,
    out: &mut String,
    undefined: &mut Vec<(usize, String, Option<String>)>,
) {
    for piece in pieces {
        let expansion = match piece {
            Piece::Text(text) => {
                out.push_str(text);
                continue;
            }
            Piece::Expansion(expansion) => expansion,
        };
        let value = lookup(expansion.name);
        // With a colon, set-but-empty is treated as unset.
        let usable = value.filter(|value| !(expansion.colon && value.is_empty()));
        match (expansion.op, usable) {
            (Op::Plain, _) => match value {
                Some(value) => out.push_str(value),
                None => undefined.push((expansion.offset, expansion.name.into(), None)),
            },
            (Op::Default | Op::Required, Some(value)) => out.push_str(value),
            (Op::Default, None) => evaluate(&expansion.word, lookup, out, undefined),
            (Op::Required, None) => {
                let message = expansion.word_source.trim();
                undefined.push((
                    expansion.offset,
                    expansion.name.into(),
                    (!message.is_empty()).then(|| message.to_string()),
                ));
            }
            (Op::Alternative, Some(_)) => evaluate(&expansion.word, lookup, out, undefined),
            (Op::Alternative, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars() -> HashMap<&'static str, &'static str> {
        HashMap::from([("HOST", "db.local"), ("EMPTY", ""), ("PORT", "5432")])
    }

    fn ok(source: &str) -> String {
        let vars = vars();
        render(source, |name| vars.get(name).copied()).unwrap()
    }

    fn problems(source: &str) -> Vec<Problem> {
        let vars = vars();
        render(source, |name| vars.get(name).copied()).unwrap_err()
    }

    fn syntax(source: &str) -> (usize, usize, String) {
        match problems(source).as_slice() {
            [
                Problem {
                    line,
                    column,
                    kind: ProblemKind::Syntax(message),
                },
            ] => (*line, *column, message.clone()),
            other => panic!("{source}: {other:?}"),
        }
    }

    #[test]
    fn plain_expansion() {
        assert_eq!(ok("host=${HOST}:${PORT}"), "host=db.local:5432");
        assert_eq!(ok("[${EMPTY}]"), "[]");
        assert_eq!(ok("no variables at all\n"), "no variables at all\n");
    }

    #[test]
    fn colon_dash_uses_the_default_when_unset_or_empty() {
        assert_eq!(ok("${HOST:-x}"), "db.local");
        assert_eq!(ok("${EMPTY:-x}"), "x");
        assert_eq!(ok("${UNSET:-x}"), "x");
        assert_eq!(ok("${UNSET:-}"), "");
        assert_eq!(ok("${UNSET:-a b: c}"), "a b: c");
    }

    #[test]
    fn dash_uses_the_default_only_when_unset() {
        assert_eq!(ok("${HOST-x}"), "db.local");
        assert_eq!(ok("[${EMPTY-x}]"), "[]");
        assert_eq!(ok("${UNSET-x}"), "x");
    }

    #[test]
    fn colon_question_fails_when_unset_or_empty() {
        assert_eq!(ok("${HOST:?needed}"), "db.local");
        let empty = problems("${EMPTY:?must not be empty}");
        assert_eq!(
            empty[0].kind,
            ProblemKind::Undefined {
                name: "EMPTY".into(),
                message: Some("must not be empty".into())
            }
        );
        let unset = problems("${UNSET:?}");
        assert_eq!(
            unset[0].kind,
            ProblemKind::Undefined {
                name: "UNSET".into(),
                message: None
            }
        );
    }

    #[test]
    fn question_fails_only_when_unset() {
        assert_eq!(ok("[${EMPTY?needed}]"), "[]");
        let unset = problems("${UNSET?set UNSET to the database host}");
        assert_eq!(
            unset[0].kind,
            ProblemKind::Undefined {
                name: "UNSET".into(),
                message: Some("set UNSET to the database host".into())
            }
        );
    }

    #[test]
    fn plus_gives_the_alternative_when_set() {
        assert_eq!(ok("${HOST:+tls on}"), "tls on");
        assert_eq!(ok("[${EMPTY:+x}]"), "[]");
        assert_eq!(ok("[${EMPTY+x}]"), "[x]");
        assert_eq!(ok("[${UNSET+x}]"), "[]");
    }

    #[test]
    fn defaults_nest() {
        assert_eq!(ok("${UNSET:-${HOST}}"), "db.local");
        assert_eq!(ok("${UNSET:-${ALSO_UNSET:-${PORT}}}"), "5432");
        assert_eq!(
            ok("${UNSET:-http://${HOST}:${PORT}/}"),
            "http://db.local:5432/"
        );
        assert_eq!(ok("${HOST:+--host=${HOST}}"), "--host=db.local");
        // A default that is not used is not evaluated, so its variables need not exist.
        assert_eq!(ok("${HOST:-${UNSET}}"), "db.local");
        let nested = problems("${UNSET:-${ALSO_UNSET}}");
        assert_eq!(
            nested[0].kind,
            ProblemKind::Undefined {
                name: "ALSO_UNSET".into(),
                message: None
            }
        );
        assert_eq!((nested[0].line, nested[0].column), (1, 10));
    }

    #[test]
    fn double_dollar_is_a_literal_dollar() {
        assert_eq!(ok("price: $$5"), "price: $5");
        assert_eq!(ok("$${HOST}"), "${HOST}");
        assert_eq!(ok("$$$${HOST}"), "$${HOST}");
        assert_eq!(ok("$$${HOST}"), "$db.local");
        assert_eq!(ok("${UNSET:-$$}"), "$");
    }

    #[test]
    fn bare_dollar_names_are_kept() {
        let nginx = "proxy_set_header Host $host;\nreturn 301 https://$host$request_uri;\n";
        assert_eq!(ok(nginx), nginx);
        assert_eq!(ok("$HOST $1 $ $"), "$HOST $1 $ $");
        assert_eq!(ok("${UNSET:-$host}"), "$host");
    }

    #[test]
    fn every_undefined_variable_is_reported_with_its_position() {
        let found = problems("a=${A}\n  b=${B} ${HOST}\nc=${A}é${C:?need C}");
        let summary: Vec<_> = found
            .iter()
            .map(|problem| match &problem.kind {
                ProblemKind::Undefined { name, .. } => {
                    (name.as_str(), problem.line, problem.column)
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            summary,
            [("A", 1, 3), ("B", 2, 5), ("A", 3, 3), ("C", 3, 8)]
        );
    }

    #[test]
    fn syntax_errors_have_a_line_and_column() {
        assert_eq!(
            syntax("ok\nx ${HOST"),
            (2, 3, "unterminated ${: no closing }".into())
        );
        assert_eq!(syntax("${UNSET:-abc").2, "unterminated ${: no closing }");
        assert_eq!(syntax("${UNSET:-${HOST}").0, 1);
        assert_eq!(syntax("${HOST\n}").2, "unterminated ${: no closing }");
        assert!(syntax("  ${1abc}").2.contains("'1abc'"));
        assert_eq!(syntax("  ${1abc}").1, 3);
        assert!(syntax("${a b}").2.contains("'a b'"));
        assert!(syntax("${a.b}").2.contains("'a.b'"));
        assert_eq!(syntax("${}").2, "empty variable name in ${}");
        assert!(syntax("${:-x}").2.contains("empty variable name"));
        for unsupported in ["${HOST:=x}", "${HOST#pre}", "${HOST%suf}", "${HOST:1}"] {
            let message = syntax(unsupported).2;
            assert!(message.starts_with("unsupported expansion"), "{message}");
        }
        // A syntax error in a default is found even when the default is not used, and is
        // shown where it is.
        let (line, column, message) = syntax("${HOST:-\n  ${1x}}");
        assert!(message.contains("'1x'"), "{message}");
        assert_eq!((line, column), (2, 3));
        assert_eq!(syntax("${A:-${B:-x").1, 6);
    }

    #[test]
    fn error_messages_never_hold_values() {
        let vars = HashMap::from([("SECRET", "hunter2"), ("EMPTY", "")]);
        let found = render("${SECRET} ${EMPTY:?x ${SECRET}} ${MISSING}", |name| {
            vars.get(name).copied()
        })
        .unwrap_err();
        assert!(!format!("{found:?}").contains("hunter2"));
        // The ? message is shown as written, not expanded.
        assert_eq!(
            found[0].kind,
            ProblemKind::Undefined {
                name: "EMPTY".into(),
                message: Some("x ${SECRET}".into())
            }
        );
    }
}
