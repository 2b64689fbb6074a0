//! render-config: render config files from templates, environment variables and mounted files.
//! Every template is rendered and validated before anything is written, and each output is
//! written atomically, so a pod never starts on a half-written or half-updated config.

mod envsubst;
mod jinja;
mod validate;
mod values;

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::anyhow;

use crate::fs::atomic::{self, Owner};
use crate::runtime::ctx::Ctx;
use crate::runtime::exit;
use crate::runtime::logging::{self, Level};
use crate::text::error_text;

use envsubst::names::NameList;
use envsubst::{Options, ProblemKind, Selection};
use validate::Format;
use values::Values;

#[derive(Debug, Clone, clap::Args)]
#[command(group = clap::ArgGroup::new("input").required(true).args(["template", "dir"]))]
pub struct RenderConfigArgs {
    /// Template file to render.
    #[arg(value_name = "TEMPLATE", requires = "dest")]
    pub template: Option<PathBuf>,

    /// Where to write it; "-" for stdout.
    #[arg(value_name = "DEST")]
    pub dest: Option<PathBuf>,

    /// Directory of templates (a mounted ConfigMap): each file is rendered into --out under
    /// the same name. Not recursive; names starting with '.' are skipped; symlinks followed.
    #[arg(long, value_name = "TEMPLATES_DIR", requires = "out", conflicts_with_all = ["template", "dest"])]
    pub dir: Option<PathBuf>,

    /// Existing directory to write --dir's rendered files into.
    #[arg(long, value_name = "OUT_DIR", requires = "dir")]
    pub out: Option<PathBuf>,

    /// Template syntax: envsubst (${VAR} forms) or jinja (minijinja, strict undefined).
    #[arg(long, value_enum, default_value = "envsubst", value_name = "ENGINE")]
    pub engine: Engine,

    /// Directory whose files become variables named after them (a mounted Secret or
    /// ConfigMap); wins over the environment. Repeatable: a later one wins.
    #[arg(long, value_name = "DIR")]
    pub values_dir: Vec<PathBuf>,

    /// Refuse to write output that does not parse as this format (auto: by file extension).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub validate: Option<Format>,

    /// Mode of the written files, in octal.
    #[arg(long, default_value = "0644", value_parser = atomic::parse_mode, value_name = "MODE")]
    pub mode: u32,

    /// Owner of the written files: UID:GID or UID (numbers; needs root or CAP_CHOWN).
    #[arg(long, value_parser = Owner::parse, value_name = "UID[:GID]")]
    pub owner: Option<Owner>,

    /// envsubst: an unset variable in ${VAR} or $VAR is empty instead of an error, as in a
    /// shell; ${VAR?message} and ${VAR:?message} still fail.
    #[arg(long, env = "INITBOX_ALLOW_UNSET", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_unset: bool,

    /// envsubst: expand $NAME too, not only ${NAME} (a bare $host in an nginx config becomes
    /// an undefined variable).
    #[arg(long, env = "INITBOX_BARE_VARS", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub bare_vars: bool,

    /// envsubst: expand only these variables, as $NAME or ${NAME...}, and leave every other $
    /// as written ($$ too), like GNU envsubst's SHELL-FORMAT. Comma or space separated;
    /// '$A $B' works too. Repeatable.
    #[arg(long, env = "INITBOX_ONLY", value_parser = envsubst::names::parse, value_name = "NAMES")]
    pub only: Vec<NameList>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// ${VAR}, ${VAR:-default}, ${VAR?message} and the other POSIX forms; $$ for $.
    Envsubst,
    /// minijinja: {{ env.VAR }}, {% if %}, {% for %}, filters, file(path).
    Jinja,
}

/// One template and where its output goes.
struct Job {
    template: PathBuf,
    /// The template as messages name it.
    shown: String,
    /// `None`: stdout.
    dest: Option<PathBuf>,
}

/// Rendering is synchronous (and a template may loop for long), so it runs on a blocking thread:
/// the runtime stays free to end the run at the deadline or on a signal.
pub async fn run(args: &RenderConfigArgs, _ctx: &Ctx) -> anyhow::Result<()> {
    let args = args.clone();
    tokio::task::spawn_blocking(move || render(&args))
        .await
        .map_err(|error| anyhow::anyhow!("rendering stopped: {error}"))?
}

fn render(args: &RenderConfigArgs) -> anyhow::Result<()> {
    let jobs = jobs(args)?;
    let values = Values::load(&args.values_dir)?;
    let sources = jobs
        .iter()
        .map(|job| read_template(&job.template))
        .collect::<anyhow::Result<Vec<String>>>()?;
    let options = envsubst_options(args)?;
    let rendered = render_all(options.as_ref(), &jobs, &sources, &values)?;
    if let Some(format) = args.validate {
        validate_all(format, &jobs, &rendered)?;
    }
    for (job, text) in jobs.iter().zip(&rendered) {
        write(job, text, args)?;
    }
    Ok(())
}

/// How the envsubst engine reads templates; None for jinja.
fn envsubst_options(args: &RenderConfigArgs) -> anyhow::Result<Option<Options>> {
    if args.engine == Engine::Jinja {
        // Jinja has its own ways (`is defined`, `default`); a flag that would change nothing
        // is a mistake worth hearing about.
        let envsubst_only = [
            (args.allow_unset, "--allow-unset"),
            (args.bare_vars, "--bare-vars"),
            (!args.only.is_empty(), "--only"),
        ];
        if let Some((_, flag)) = envsubst_only.iter().find(|(given, _)| *given) {
            return Err(exit::usage(format!(
                "{flag} applies to --engine envsubst, not jinja (use `is defined` or `default`)"
            )));
        }
        return Ok(None);
    }
    let selection = if args.only.is_empty() {
        Selection::All {
            bare: args.bare_vars,
        }
    } else {
        Selection::Only(args.only.iter().flat_map(|list| list.0.clone()).collect())
    };
    Ok(Some(Options {
        selection,
        allow_unset: args.allow_unset,
    }))
}

/// What to render where, checked before any template is read.
fn jobs(args: &RenderConfigArgs) -> anyhow::Result<Vec<Job>> {
    if let (Some(dir), Some(out)) = (&args.dir, &args.out) {
        if !out.is_dir() {
            return Err(exit::usage(format!(
                "output directory {} does not exist",
                out.display()
            )));
        }
        let same = dir
            .canonicalize()
            .ok()
            .is_some_and(|dir| out.canonicalize().ok() == Some(dir));
        if same {
            return Err(exit::usage(format!(
                "--out {} is the templates directory: outputs would overwrite their templates",
                out.display()
            )));
        }
        let files = volume_files(dir, "templates directory")?;
        if files.is_empty() {
            return Err(exit::usage(format!("no templates in {}", dir.display())));
        }
        return Ok(files
            .into_iter()
            .map(|(name, template)| Job {
                template,
                shown: name.to_string_lossy().into_owned(),
                dest: Some(out.join(&name)),
            })
            .collect());
    }
    let (Some(template), Some(dest)) = (&args.template, &args.dest) else {
        return Err(exit::usage("give TEMPLATE DEST, or --dir and --out"));
    };
    let dest = (dest.as_os_str() != "-").then(|| dest.clone());
    // A missing directory is found by write_atomic, before anything is written; a directory as
    // DEST would only fail at the rename, after the work.
    if let Some(dest) = dest.as_ref().filter(|dest| dest.is_dir()) {
        return Err(exit::usage(format!(
            "{} is a directory; DEST is the file to write",
            dest.display()
        )));
    }
    Ok(vec![Job {
        template: template.clone(),
        shown: template.display().to_string(),
        dest,
    }])
}

/// The regular files directly in `dir`, sorted by name, with their paths: symlinks followed (a
/// ConfigMap or Secret volume is a tree of links into `..data`), not recursive, names starting
/// with '.' skipped (`..data`, the timestamped directory, editors' swap files). `what` names
/// the directory in errors.
fn volume_files(dir: &Path, what: &str) -> anyhow::Result<Vec<(OsString, PathBuf)>> {
    let unreadable = |error: std::io::Error| {
        exit::usage(format!(
            "cannot read {what} {}: {}",
            dir.display(),
            error_text::io(&error)
        ))
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let name = entry.file_name();
        let path = entry.path();
        if !name.to_string_lossy().starts_with('.')
            && std::fs::metadata(&path).is_ok_and(|meta| meta.is_file())
        {
            files.push((name, path));
        }
    }
    files.sort();
    Ok(files)
}

fn read_template(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).map_err(|error| {
        exit::usage(format!(
            "cannot read template {}: {}",
            path.display(),
            error_text::io(&error)
        ))
    })?;
    String::from_utf8(bytes)
        .map_err(|_| exit::usage(format!("template {} is not UTF-8 text", path.display())))
}

/// An engine ready to render: jinja's holds the values.
enum Renderer<'a> {
    Envsubst(&'a Options),
    Jinja(Box<jinja::Jinja>),
}

/// Renders every template. Any problem in any of them is exit 2, with every undefined variable
/// of every template in the one message, so one rollout shows everything there is to fix.
fn render_all(
    envsubst_options: Option<&Options>,
    jobs: &[Job],
    sources: &[String],
    values: &Values,
) -> anyhow::Result<Vec<String>> {
    let renderer = match envsubst_options {
        Some(options) => Renderer::Envsubst(options),
        None => Renderer::Jinja(Box::new(jinja::Jinja::new(values))),
    };
    let mut rendered = Vec::with_capacity(jobs.len());
    let mut errors = Vec::new();
    // Each undefined name once, where it is first used, in one list over all templates.
    let mut undefined: Vec<(String, String)> = Vec::new();
    for (job, source) in jobs.iter().zip(sources) {
        let outcome = match &renderer {
            Renderer::Jinja(jinja) => jinja
                .render(&job.shown, source)
                .map_err(|error| vec![error]),
            Renderer::Envsubst(options) => {
                envsubst::render(source, |name| values.get(name), options)
                    .map(|rendered| {
                        warn_all(&job.shown, &rendered.warnings);
                        rendered.text
                    })
                    .map_err(|problems| syntax_errors(&job.shown, problems, &mut undefined))
            }
        };
        match outcome {
            Ok(text) => rendered.push(text),
            Err(found) => errors.extend(found),
        }
    }
    if !undefined.is_empty() {
        let listed: Vec<String> = undefined
            .iter()
            .map(|(name, place)| format!("{name} ({place})"))
            .collect();
        errors.insert(0, format!("undefined variables: {}", listed.join(", ")));
    }
    if !errors.is_empty() {
        return Err(exit::usage(format!(
            "{}; nothing written",
            errors.join("; ")
        )));
    }
    Ok(rendered)
}

/// One envsubst template's problems: its syntax errors as "file:line:column: message", and
/// its undefined variables added to `undefined` unless already there.
fn syntax_errors(
    shown: &str,
    problems: Vec<envsubst::Problem>,
    undefined: &mut Vec<(String, String)>,
) -> Vec<String> {
    let mut syntax = Vec::new();
    for problem in problems {
        let place = format!("{shown}:{}:{}", problem.line, problem.column);
        match problem.kind {
            ProblemKind::Syntax(message) => syntax.push(format!("{place}: {message}")),
            ProblemKind::Undefined { name, message } => {
                if !undefined.iter().any(|(seen, _)| *seen == name) {
                    let place = match message {
                        Some(message) => format!("{place}: {message}"),
                        None => place,
                    };
                    undefined.push((name, place));
                }
            }
        }
    }
    syntax
}

fn warn_all(shown: &str, warnings: &[(usize, usize, String)]) {
    for (line, column, message) in warnings {
        logging::emit(
            Level::Warn,
            &format!("{shown}:{line}:{column}: {message}"),
            &[
                ("event", "template_warning".into()),
                ("template", shown.to_string().into()),
            ],
        );
    }
}

/// Parses every output that `--validate` covers; exit 1 naming each one that fails.
fn validate_all(format: Format, jobs: &[Job], rendered: &[String]) -> anyhow::Result<()> {
    let failures: Vec<String> = jobs
        .iter()
        .zip(rendered)
        .filter_map(|(job, text)| {
            let named = job.dest.as_deref().unwrap_or(&job.template);
            let file_name = named.file_name()?.to_string_lossy();
            let format = format.for_file(&file_name)?;
            let shown = job
                .dest
                .as_deref()
                .map_or_else(|| "stdout".to_string(), |dest| dest.display().to_string());
            validate::check(format, text)
                .err()
                .map(|reason| format!("{shown}: {reason}"))
        })
        .collect();
    if failures.is_empty() {
        return Ok(());
    }
    Err(anyhow!("{}; nothing written", failures.join("; ")))
}

fn write(job: &Job, text: &str, args: &RenderConfigArgs) -> anyhow::Result<()> {
    let Some(dest) = &job.dest else {
        let mut stdout = std::io::stdout().lock();
        return stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(|error| anyhow!("writing to stdout: {}", error_text::io(&error)));
    };
    atomic::write_atomic(dest, text.as_bytes(), args.mode, args.owner)?;
    logging::emit(
        Level::Info,
        &format!(
            "wrote {} ({} bytes, mode {:04o}) from {}",
            dest.display(),
            text.len(),
            args.mode,
            job.shown
        ),
        &[
            ("event", "written".into()),
            ("path", dest.display().to_string().into()),
            ("template", job.shown.clone().into()),
            ("bytes", text.len().into()),
        ],
    );
    Ok(())
}
