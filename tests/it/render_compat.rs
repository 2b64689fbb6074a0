//! render-config's envsubst engine against the tools whose templates it takes: one table of
//! cases, each rendered by the real binary in every mode (strict, --allow-unset, --bare-vars,
//! --only). Where a POSIX shell defines the result, dash renders the same text as a
//! here-document (`dash -u` for the strict modes, where an unset variable is an error) and
//! must agree; where GNU envsubst defines it (--only, its SHELL-FORMAT), it must agree too.
//! Cells marked `Ours` are where initbox differs on purpose (see the README's table).

use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::feed::output_with_input;
use crate::support::{Run, initbox, require_program, run};

/// The only variables the renderers see. U and V are unset; E is set and empty; D holds
/// expansion syntax, which no tool expands again.
const ENV: &[(&str, &str)] = &[("A", "alpha"), ("E", ""), ("C", "gamma"), ("D", "$A ${A}")];

/// The `--only` list, in GNU envsubst's own spelling: A, E and U are listed; C, D and V not.
const ONLY: &str = "$A $E $U";

/// What a mode gives for a case.
#[derive(Debug, Clone, Copy)]
enum Cell {
    /// This output, and a POSIX shell gives the same.
    Sh(&'static str),
    /// An error (exit 2), and a POSIX shell fails too.
    ShFails,
    /// This output, and GNU envsubst with the same --only list gives the same.
    Gnu(&'static str),
    /// This output; the shell's result differs or is not defined (initbox's own choice).
    Ours(&'static str),
    /// An error (exit 2); the shell or GNU envsubst would render something.
    OursFails,
}

use Cell::*;

/// The modes, in the order of the table's columns.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Strict,
    AllowUnset,
    BareVars,
    Only,
}

impl Mode {
    fn flags(self) -> &'static [&'static str] {
        match self {
            Mode::Strict => &[],
            Mode::AllowUnset => &["--allow-unset"],
            Mode::BareVars => &["--bare-vars"],
            Mode::Only => &["--only", ONLY],
        }
    }

    /// Where an unset variable is an error, so is it for the shell: `set -u`.
    fn shell_strict(self) -> bool {
        !matches!(self, Mode::AllowUnset)
    }
}

/// (template, [strict, --allow-unset, --bare-vars, --only]).
const CASES: &[(&str, [Cell; 4])] = &[
    // ${VAR}
    (
        "${A}",
        [Sh("alpha"), Sh("alpha"), Sh("alpha"), Gnu("alpha")],
    ),
    ("[${E}]", [Sh("[]"), Sh("[]"), Sh("[]"), Gnu("[]")]),
    ("${U}", [ShFails, Sh(""), ShFails, OursFails]),
    ("${C}", [Sh("gamma"), Sh("gamma"), Sh("gamma"), Gnu("${C}")]),
    ("${V}", [ShFails, Sh(""), ShFails, Gnu("${V}")]),
    (
        "${D}",
        [Sh("$A ${A}"), Sh("$A ${A}"), Sh("$A ${A}"), Gnu("${D}")],
    ),
    // $VAR
    ("$A", [Ours("$A"), Ours("$A"), Sh("alpha"), Gnu("alpha")]),
    ("$U", [Ours("$U"), Ours("$U"), ShFails, OursFails]),
    ("$C", [Ours("$C"), Ours("$C"), Sh("gamma"), Gnu("$C")]),
    (
        "[$A_x] [$A-x] [${A}_x]",
        [
            Ours("[$A_x] [$A-x] [alpha_x]"),
            Ours("[$A_x] [$A-x] [alpha_x]"),
            ShFails,
            Gnu("[$A_x] [alpha-x] [alpha_x]"),
        ],
    ),
    (
        "${A}${A}$A",
        [
            Ours("alphaalpha$A"),
            Ours("alphaalpha$A"),
            Sh("alphaalphaalpha"),
            Gnu("alphaalphaalpha"),
        ],
    ),
    (
        "listen $A; set $host 1;",
        [
            Ours("listen $A; set $host 1;"),
            Ours("listen $A; set $host 1;"),
            ShFails,
            Gnu("listen alpha; set $host 1;"),
        ],
    ),
    // Defaults
    ("${U:-d} ${E:-d} ${A:-d}", [Sh("d d alpha"); 4]),
    ("${U-d} [${E-d}] ${A-d}", [Sh("d [] alpha"); 4]),
    (
        "${U:-${A}} ${U:-$A}",
        [
            Ours("alpha $A"),
            Ours("alpha $A"),
            Sh("alpha alpha"),
            Sh("alpha alpha"),
        ],
    ),
    ("${U:-${V}}", [ShFails, Sh(""), ShFails, Ours("${V}")]),
    (
        "${U:-${V:-${A}}}",
        [Sh("alpha"), Sh("alpha"), Sh("alpha"), Ours("${V:-alpha}")],
    ),
    // A default that is not used is not evaluated.
    ("${A:-${U}}", [Sh("alpha"); 4]),
    ("${U:-a}b}", [Sh("ab}"); 4]),
    ("${U:-\nd}\n", [Sh("\nd\n"); 4]),
    // Braces in a default: the word ends at the first `}` (docker compose matches them).
    ("${A:-{k:1}}", [Sh("alpha}"); 4]),
    ("${U:-{k:1}}", [Sh("{k:1}"); 4]),
    // Quotes in a word are text; a shell removes them.
    (r#"${U:-{"k":1}}"#, [Ours(r#"{"k":1}"#); 4]),
    (r#"${A:-"q"} ${U:-"q"}"#, [Ours(r#"alpha "q""#); 4]),
    // Assignment: later references in the same template see the value.
    ("${U:=d} ${U}", [Sh("d d"); 4]),
    ("${U=d} ${U}", [Sh("d d"); 4]),
    ("[${E=d}] [${E}] ${E:=f} ${E}", [Sh("[] [] f f"); 4]),
    ("${A:=d} ${A}", [Sh("alpha alpha"); 4]),
    ("${U:=${A}x} ${U} ${U:-no}", [Sh("alphax alphax alphax"); 4]),
    ("${U:+set} ${U:=now} ${U:+set}", [Sh(" now set"); 4]),
    (
        "${V:=x}${V}",
        [Sh("xx"), Sh("xx"), Sh("xx"), Gnu("${V:=x}${V}")],
    ),
    // Required
    ("${U:?no U here}", [ShFails, ShFails, ShFails, ShFails]),
    ("${U?no U here}", [ShFails, ShFails, ShFails, ShFails]),
    ("${E:?x}", [ShFails, ShFails, ShFails, ShFails]),
    ("[${E?x}] ${A?x}", [Sh("[] alpha"); 4]),
    ("${V?x}", [ShFails, ShFails, ShFails, Gnu("${V?x}")]),
    // Alternative
    ("[${U:+y}] [${E:+y}] [${A:+y}]", [Sh("[] [] [y]"); 4]),
    ("[${U+y}] [${E+y}] [${A+y}]", [Sh("[] [y] [y]"); 4]),
    (
        "${A:+${C}}",
        [Sh("gamma"), Sh("gamma"), Sh("gamma"), Ours("${C}")],
    ),
    // $$ is one `$` (a shell gives its PID); with --only it is text, as in GNU envsubst.
    ("$$", [Ours("$"), Ours("$"), Ours("$"), Gnu("$$")]),
    (
        "$${A} $$A",
        [
            Ours("${A} $A"),
            Ours("${A} $A"),
            Ours("${A} $A"),
            Gnu("$alpha $alpha"),
        ],
    ),
    // A `$` that starts no name is text (a shell has positional and special parameters).
    (
        "[$] [$1] [$-] [$ ] [$.] [$@]",
        [
            Ours("[$] [$1] [$-] [$ ] [$.] [$@]"),
            Ours("[$] [$1] [$-] [$ ] [$.] [$@]"),
            Ours("[$] [$1] [$-] [$ ] [$.] [$@]"),
            Gnu("[$] [$1] [$-] [$ ] [$.] [$@]"),
        ],
    ),
    // Malformed ${: errors, except for names --only does not list.
    ("${1x}", [ShFails, ShFails, ShFails, Gnu("${1x}")]),
    ("${a b}", [ShFails, ShFails, ShFails, Gnu("${a b}")]),
    ("${}", [ShFails, ShFails, ShFails, Gnu("${}")]),
    ("x ${A", [ShFails, ShFails, ShFails, ShFails]),
    ("x ${C", [ShFails, ShFails, ShFails, Gnu("x ${C")]),
    ("${A#al}", [OursFails, OursFails, OursFails, OursFails]),
    ("${C#ga}", [OursFails, OursFails, OursFails, Gnu("${C#ga}")]),
    ("${A:=x", [ShFails, ShFails, ShFails, ShFails]),
];

/// One test per mode, each checking that mode's column of the table.
macro_rules! column_tests {
    ($($test:ident: $mode:ident,)*) => {$(
        #[test]
        fn $test() {
            check(Mode::$mode);
        }
    )*};
}

column_tests! {
    strict_mode_matches_the_table: Strict,
    allow_unset_matches_the_table: AllowUnset,
    bare_vars_match_the_table: BareVars,
    only_matches_the_table: Only,
}

/// Renders every case in `mode` with initbox and, where the table says so, with dash or GNU
/// envsubst; collects every disagreement into one failure.
fn check(mode: Mode) {
    let column = mode as usize;
    require_program("/usr/bin/dash", "dash");
    require_program("/usr/bin/envsubst", "gettext-base");
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("case.tmpl");
    let mut wrong = Vec::new();
    for (source, cells) in CASES {
        let cell = cells[column];
        std::fs::write(&template, source).unwrap();
        let ours = initbox_output(&template, mode);
        let (expected, oracle) = match cell {
            Sh(text) => (
                Some(text),
                Some(("dash", dash(source, mode.shell_strict()))),
            ),
            ShFails => (None, Some(("dash", dash(source, mode.shell_strict())))),
            Gnu(text) => (Some(text), Some(("GNU envsubst", gnu_envsubst(source)))),
            Ours(text) => (Some(text), None),
            OursFails => (None, None),
        };
        let expected = expected.map(str::to_string);
        if let Some((tool, theirs)) = oracle {
            if theirs != expected {
                wrong.push(format!(
                    "{source:?}: {tool} gives {theirs:?}, table says {expected:?}"
                ));
            }
        }
        if ours != expected {
            wrong.push(format!(
                "{source:?}: initbox gives {ours:?}, table says {expected:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{mode:?}:\n{}", wrong.join("\n"));
}

/// The rendered text, or None for a failure, which must be exit 2 with one line on stderr
/// naming the template with a line and column.
fn initbox_output(template: &Path, mode: Mode) -> Option<String> {
    let mut command = initbox();
    command
        .env_clear()
        .env("INITBOX_TERMINATION_LOG", "")
        .envs(ENV.iter().copied())
        .arg("render-config")
        .args(mode.flags())
        .arg(template)
        .arg("-");
    let result: Run = run(&mut command);
    match result.code {
        Some(0) => Some(result.stdout),
        Some(2) => {
            let lines = result.stderr_lines();
            let place = format!("{}:", template.display());
            assert!(
                lines.len() == 1 && lines[0].contains(&place) && result.stdout.is_empty(),
                "{mode:?}: {}",
                result.stderr
            );
            None
        }
        other => panic!("{mode:?}: exit {other:?}: {}", result.stderr),
    }
}

/// What dash makes of `source` as a here-document, or None when it fails.
fn dash(source: &str, unset_is_error: bool) -> Option<String> {
    let script = format!("cat <<INITBOX_END\n{source}\nINITBOX_END\n");
    let mut command = Command::new("/usr/bin/dash");
    if unset_is_error {
        command.arg("-u");
    }
    let text = output(command.arg("-c").arg(script), "")?;
    // The here-document adds the newline before its end marker.
    Some(text.strip_suffix('\n').unwrap_or(&text).to_string())
}

/// What GNU envsubst, given the --only list as its SHELL-FORMAT, makes of `source`.
fn gnu_envsubst(source: &str) -> Option<String> {
    output(Command::new("/usr/bin/envsubst").arg(ONLY), source)
}

/// The standard output of `command` run with only [`ENV`] (and a PATH, for dash's `cat`) and
/// `input` on its standard input, or None when it fails.
fn output(command: &mut Command, input: &str) -> Option<String> {
    command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(ENV.iter().copied())
        .stderr(Stdio::null());
    let output = output_with_input(command, input.as_bytes());
    output
        .status
        .success()
        .then(|| String::from_utf8(output.stdout).unwrap())
}
