//! The default engine: shell-style `${VAR}` expansions with the POSIX meanings of `:-`, `-`,
//! `:=`, `=`, `:?`, `?`, `:+` and `+`, and `$$` for a literal `$`.
//!
//! By default only the braced form is expanded. A bare `$host` is left as written, because
//! config files for nginx, Apache or HAProxy are full of their own `$variables`, which gettext's
//! envsubst wipes to empty; `--bare-vars` expands it, and `--only` expands just the names it
//! lists. A template is parsed whole before anything is evaluated, so every syntax error is
//! found at once, and every undefined variable is collected for one message.

mod evaluate;
pub mod names;
mod parse;

use crate::text::error_text::line_and_column;

pub use parse::Selection;

/// How a template is read and evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub selection: Selection,
    /// An unset variable in `${VAR}` (or `$VAR`) is the empty string, as in a shell. The `?`
    /// forms still fail.
    pub allow_unset: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            selection: Selection::All { bare: false },
            allow_unset: false,
        }
    }
}

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

/// A rendered template, and what in it is probably not as meant.
#[derive(Debug)]
pub struct Rendered {
    pub text: String,
    /// (line, column, message).
    pub warnings: Vec<(usize, usize, String)>,
}

/// Renders `source`, looking variables up with `lookup`. On failure, every syntax error or,
/// when there is none, every undefined variable, with their positions; nothing of the output.
pub fn render<'v>(
    source: &str,
    lookup: impl Fn(&str) -> Option<&'v str>,
    options: &Options,
) -> Result<Rendered, Vec<Problem>> {
    let at = |offset, kind| {
        let (line, column) = line_and_column(source, offset);
        Problem { line, column, kind }
    };
    let parsed = parse::parse(source, &options.selection);
    if !parsed.errors.is_empty() {
        return Err(parsed
            .errors
            .into_iter()
            .map(|(offset, message)| at(offset, ProblemKind::Syntax(message)))
            .collect());
    }
    let mut out = String::with_capacity(source.len());
    let mut evaluator = evaluate::Evaluator::new(lookup, options.allow_unset);
    evaluator.pieces(&parsed.pieces, &mut out);
    if !evaluator.undefined.is_empty() {
        return Err(evaluator
            .undefined
            .into_iter()
            .map(|(offset, name, message)| at(offset, ProblemKind::Undefined { name, message }))
            .collect());
    }
    Ok(Rendered {
        text: out,
        warnings: parsed
            .warnings
            .into_iter()
            .map(|(offset, message)| {
                let (line, column) = line_and_column(source, offset);
                (line, column, message)
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars() -> HashMap<&'static str, &'static str> {
        HashMap::from([("HOST", "db.local"), ("EMPTY", ""), ("PORT", "5432")])
    }

    fn with(options: &Options, source: &str) -> Result<Rendered, Vec<Problem>> {
        let vars = vars();
        render(source, |name| vars.get(name).copied(), options)
    }

    fn ok(source: &str) -> String {
        with(&Options::default(), source).unwrap().text
    }

    fn problems(source: &str) -> Vec<Problem> {
        with(&Options::default(), source).unwrap_err()
    }

    fn allow_unset() -> Options {
        Options {
            allow_unset: true,
            ..Options::default()
        }
    }

    fn bare() -> Options {
        Options {
            selection: Selection::All { bare: true },
            allow_unset: false,
        }
    }

    fn only(names: &[&str]) -> Options {
        Options {
            selection: Selection::Only(names.iter().map(|name| name.to_string()).collect()),
            allow_unset: false,
        }
    }

    fn undefined_names(problems: &[Problem]) -> Vec<&str> {
        problems
            .iter()
            .map(|problem| match &problem.kind {
                ProblemKind::Undefined { name, .. } => name.as_str(),
                other => panic!("{other:?}"),
            })
            .collect()
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
        for unsupported in [
            "${HOST#pre}",
            "${HOST%suf}",
            "${HOST:1}",
            "${HOST[0]}",
            "${#HOST}",
            "${!HOST}",
        ] {
            let message = syntax(unsupported).2;
            assert!(message.starts_with("unsupported expansion"), "{message}");
        }
        // A syntax error in a default is found even when the default is not used, and is
        // shown where it is.
        let (line, column, message) = syntax("${HOST:-\n  ${1x}}");
        assert!(message.contains("'1x'"), "{message}");
        assert_eq!((line, column), (2, 3));
    }

    /// (line, column, message) of every syntax error in `source`.
    fn syntax_all(source: &str) -> Vec<(usize, usize, String)> {
        problems(source)
            .into_iter()
            .map(|problem| match problem.kind {
                ProblemKind::Syntax(message) => (problem.line, problem.column, message),
                other => panic!("{source}: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn every_malformed_expression_is_reported() {
        let found = syntax_all(
            "a ${1x} b ${HOST#y}
${ok:-fine} ${a b}
  ${}
${A:-${B:-x",
        );
        let places: Vec<(usize, usize)> = found.iter().map(|(l, c, _)| (*l, *c)).collect();
        assert_eq!(places, [(1, 3), (1, 11), (2, 13), (3, 3), (4, 1), (4, 6)]);
        assert!(found[0].2.contains("'1x'"), "{found:?}");
        assert!(found[1].2.starts_with("unsupported expansion ${HOST#y}"));
        assert!(found[2].2.contains("'a b'"), "{found:?}");
        assert_eq!(found[3].2, "empty variable name in ${}");
        assert_eq!(found[4].2, "unterminated ${: no closing }");
        assert_eq!(found[5].2, "unterminated ${: no closing }");
        // A bad name with a valid operator still ends at its own `}`, nested ones included.
        assert_eq!(
            syntax_all("${1a:-${HOST}} ${2b}").len(),
            2,
            "{:?}",
            syntax_all("${1a:-${HOST}} ${2b}")
        );
        // An unterminated `${` on one line does not hide errors on the next ones.
        let found = syntax_all("x ${HOST\ny ${3c}\n");
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!((found[1].0, found[1].1), (2, 3));
    }

    #[test]
    fn assignment_sets_the_variable_for_the_rest_of_the_template() {
        assert_eq!(ok("${UNSET:=x} ${UNSET}"), "x x");
        assert_eq!(ok("${UNSET=x} ${UNSET}"), "x x");
        assert_eq!(ok("[${EMPTY=x}] [${EMPTY}]"), "[] []");
        assert_eq!(ok("[${EMPTY:=x}] [${EMPTY}]"), "[x] [x]");
        assert_eq!(ok("${HOST:=x} ${HOST}"), "db.local db.local");
        // The first assignment wins; the word may hold expansions, evaluated once.
        assert_eq!(
            ok("${URL:=http://${HOST}:${PORT}} ${URL:=other} ${URL}"),
            "http://db.local:5432 http://db.local:5432 http://db.local:5432"
        );
        assert_eq!(ok("${UNSET:+set} ${UNSET:=now} ${UNSET:+set}"), " now set");
        // A default that is not taken assigns nothing.
        assert_eq!(
            ok("${HOST:-${UNSET:=x}} [${UNSET-unset}]"),
            "db.local [unset]"
        );
        // Before the assignment, the variable is still undefined.
        assert_eq!(
            undefined_names(&problems("${LATER} ${LATER:=x}")),
            ["LATER"]
        );
    }

    #[test]
    fn an_assignment_is_seen_by_nothing_but_its_own_template() {
        let options = Options::default();
        let vars = vars();
        let lookup = |name: &str| vars.get(name).copied();
        assert_eq!(render("${NEW:=1}", lookup, &options).unwrap().text, "1");
        assert!(render("${NEW}", lookup, &options).is_err());
    }

    #[test]
    fn allow_unset_gives_the_empty_string_but_question_forms_still_fail() {
        let options = allow_unset();
        assert_eq!(
            with(&options, "[${UNSET}] [${HOST}]").unwrap().text,
            "[] [db.local]"
        );
        assert_eq!(
            with(&options, "[$UNSET] [${UNSET:-d}]").unwrap().text,
            "[$UNSET] [d]"
        );
        let found = with(&options, "${UNSET?needed} ${EMPTY:?not empty} ${UNSET2}").unwrap_err();
        assert_eq!(undefined_names(&found), ["UNSET", "EMPTY"]);
        // Syntax stays strict.
        assert!(with(&options, "${1x}").is_err());
    }

    #[test]
    fn bare_vars_expand_dollar_names_with_the_same_rules() {
        let options = bare();
        assert_eq!(
            with(
                &options,
                "listen $PORT; host=$HOST.x $HOST_x $1 $ $$PORT ${PORT}"
            )
            .map(|rendered| rendered.text)
            .unwrap_err()
            .len(),
            1
        );
        assert_eq!(
            with(
                &options,
                "listen $PORT; [$EMPTY] $1 $ $-x $$PORT ${PORT}é$PORTé"
            )
            .unwrap()
            .text,
            "listen 5432; [] $1 $ $-x $PORT 5432é5432é"
        );
        assert_eq!(with(&options, "${UNSET:-$HOST}").unwrap().text, "db.local");
        let found = with(&options, "proxy_set_header Host $host;").unwrap_err();
        assert_eq!(undefined_names(&found), ["host"]);
        assert_eq!((found[0].line, found[0].column), (1, 23));
        let lenient = Options {
            allow_unset: true,
            ..bare()
        };
        assert_eq!(with(&lenient, "Host $host;").unwrap().text, "Host ;");
    }

    #[test]
    fn only_expands_the_listed_names_and_leaves_every_other_dollar_as_written() {
        let options = only(&["HOST", "PORT"]);
        let render = |source| with(&options, source).unwrap().text;
        assert_eq!(
            render("proxy_pass http://$HOST:${PORT}; set $x $host$request_uri;"),
            "proxy_pass http://db.local:5432; set $x $host$request_uri;"
        );
        // $$ is text, as for GNU envsubst: the second `$` may still start a listed name.
        assert_eq!(render("$$ $${X} $$HOST"), "$$ $${X} $db.local");
        // Other names, in any form and malformed ones, stay as written.
        for kept in [
            "${UNSET}",
            "${UNSET:-x}",
            "${1x}",
            "${a b}",
            "${",
            "${X#y}",
            "$HOSTS",
        ] {
            assert_eq!(render(kept), kept);
        }
        // A listed name inside text that is kept is still expanded, as GNU envsubst does.
        assert_eq!(render("${OTHER:-$HOST}"), "${OTHER:-db.local}");
        // Listed names get every POSIX form; an unlisted ${...} in their word stays whole.
        assert_eq!(render("${HOST:+${X:-y}}"), "${X:-y}");
        assert_eq!(render("${HOST:-${X:-y}}"), "db.local");
        assert_eq!(
            with(&only(&["UNSET"]), "${UNSET:-${X}}").unwrap().text,
            "${X}"
        );
        // Strict for the listed names unless --allow-unset; malformed forms of them are errors.
        assert_eq!(
            undefined_names(&with(&only(&["UNSET"]), "$UNSET").unwrap_err()),
            ["UNSET"]
        );
        let lenient = Options {
            allow_unset: true,
            ..only(&["UNSET"])
        };
        assert_eq!(
            with(&lenient, "[$UNSET] [$OTHER]").unwrap().text,
            "[] [$OTHER]"
        );
        assert!(with(&options, "${HOST#x}").is_err());
        assert!(with(&options, "${HOST").is_err());
    }

    #[test]
    fn braces_in_a_default_end_at_the_first_closing_brace_with_a_warning() {
        let unset = with(&Options::default(), r#"${UNSET:-{"k":1}}"#).unwrap();
        assert_eq!(unset.text, r#"{"k":1}"#);
        let set = with(&Options::default(), r#"x=${HOST:-{"k":1}}"#).unwrap();
        assert_eq!(set.text, "x=db.local}");
        assert_eq!(set.warnings.len(), 1);
        assert_eq!((set.warnings[0].0, set.warnings[0].1), (1, 3));
        assert!(
            set.warnings[0].2.contains("first '}'"),
            "{:?}",
            set.warnings
        );
        // Nested expansions pair their own braces; a `}` after the expansion is no concern.
        for fine in ["${HOST:-${PORT}}", "${HOST:-}}", "${HOST:-${UNSET:-}}x}"] {
            let rendered = with(&Options::default(), fine).unwrap();
            assert!(
                rendered.warnings.is_empty(),
                "{fine}: {:?}",
                rendered.warnings
            );
        }
        for open in ["${HOST:+{${PORT}}}", "${HOST:-$${x}}"] {
            let rendered = with(&Options::default(), open).unwrap();
            assert_eq!(rendered.warnings.len(), 1, "{open}");
        }
        assert_eq!(ok("${HOST:+{${PORT}}}"), "{5432}");
    }

    #[test]
    fn error_messages_never_hold_values() {
        let vars = HashMap::from([("SECRET", "hunter2"), ("EMPTY", "")]);
        let found = render(
            "${SECRET} ${EMPTY:?x ${SECRET}} ${MISSING}",
            |name| vars.get(name).copied(),
            &Options::default(),
        )
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
