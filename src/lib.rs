//! initbox: get a pod ready before its app starts. Each run parses its arguments, sets up logging
//! and signal handling, does one job under a deadline, and exits with a code that says what
//! happened.

pub mod cli;
pub mod commands;
pub mod fs;
pub mod probe;
pub mod runtime;
pub mod text;
pub mod version;

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use cli::Cli;
use probe::k8s::events::Poster;
use runtime::ctx::Ctx;
use runtime::exit::{self, Exit};
use runtime::logging::{self, Level, LogFormat};
use runtime::redact;
use runtime::report::{self, Report};
use runtime::retry;
use runtime::signal::{self, Cancel};

/// How long the last Events (the outcome's among them) may take to post before the process ends.
const EVENTS_FLUSH: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs a parsed command line to the end and returns the exit code. After success with a
/// command after `--`, it does not return: the command replaces this process.
pub fn run(cli: Cli) -> u8 {
    let termination_log = report::termination_log_path(cli.global.termination_log.as_deref());
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail_before_start(error.into(), termination_log),
    };
    let (exit, cancel) = runtime.block_on(async {
        let cancel = match Cancel::install() {
            Ok(cancel) => cancel,
            Err(error) => {
                return (
                    fail_before_start(error.into(), termination_log.clone()),
                    None,
                );
            }
        };
        let ctx = Ctx::new(cli.global.timeout, cli.global.policy(), cancel.clone());
        let events = match cli.global.events.then(Poster::start).transpose() {
            Ok(events) => events,
            Err(error) => return (fail_before_start(error, termination_log.clone()), None),
        };
        if let Some(events) = &events {
            ctx.report.observe(events.observer());
        }
        let work = async {
            cli.global.policy().validate()?;
            commands::preflight(&cli.command)?;
            commands::run(&cli.command, &ctx).await
        };
        let result = tokio::select! {
            result = work => result,
            error = backstop(&ctx, commands::stop_grace(&cli.command)) => Err(error),
        };
        let exit = ctx.report.finish(&result, termination_log.as_deref());
        if let Some(events) = events {
            events.finish(EVENTS_FLUSH).await;
        }
        (exit.code(), Some(cancel))
    });
    // Lookups still running on blocking threads (getaddrinfo cannot be cancelled) must not keep
    // the process alive past its deadline or a signal.
    runtime.shutdown_background();
    if exit != Exit::Success.code() {
        return exit;
    }
    // A stop signal that arrived after the last attempt still wins: the kubelet is shutting the
    // pod down, so starting the app now would only delay that.
    if let Some(stop) = cancel.as_ref().and_then(Cancel::stopped) {
        return stop.code();
    }
    match commands::exec_after(&cli.command) {
        Some(then) if !then.command.is_empty() => {
            // The program only: its arguments often carry secrets expanded from the pod's env.
            let program = then.command[0].to_string_lossy();
            let arguments = then.command.len() - 1;
            logging::emit(
                Level::Info,
                &format!("exec {program} ({arguments} arguments not shown)"),
                &[
                    ("event", "exec".into()),
                    ("program", program.as_ref().into()),
                ],
            );
            let error = then.exec().expect_err("exec returns only on failure");
            fail_before_start(error, termination_log)
        }
        _ => exit,
    }
}

/// Ends a job that did not stop by itself within `grace` of a signal or of the deadline. Every
/// subcommand handles both on its own (and a wait stops within milliseconds); this is the
/// guarantee for the rest, such as a template that never finishes rendering.
async fn backstop(ctx: &Ctx, grace: std::time::Duration) -> anyhow::Error {
    let deadline = async {
        match ctx.remaining() {
            Some(left) => tokio::time::sleep(left + grace).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        stop = ctx.cancel.cancelled() => {
            tokio::time::sleep(grace).await;
            signal::stopped(stop)
        }
        () = deadline => retry::deadline_exceeded(ctx),
    }
}

/// Reports an error that happened outside the job itself (arguments, runtime set-up, exec).
fn fail_before_start(error: anyhow::Error, termination_log: Option<PathBuf>) -> u8 {
    Report::new(Instant::now())
        .finish(&Err(error), termination_log.as_deref())
        .code()
}

/// Handles a command line clap could not parse: help and version go to stdout with exit 0,
/// anything else is one line on stderr (and in the termination message) with exit 2.
pub fn reject_arguments(error: clap::Error) -> u8 {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            // `initbox --help | head` closes stdout early; that is not an error worth a panic.
            let _ = write!(std::io::stdout(), "{error}");
            return Exit::Success.code();
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = write!(std::io::stderr(), "{error}");
            return Exit::Usage.code();
        }
        _ => {}
    }
    // The parse failed, so --log-format and --termination-log may not have been read; honour
    // them where they are visible on the command line or in the environment.
    let args: Vec<String> = std::env::args().collect();
    let json_asked = raw_flag(&args, "--log-format")
        .or_else(|| std::env::var("INITBOX_LOG_FORMAT").ok())
        .is_some_and(|format| format == "json");
    logging::init(
        if json_asked {
            LogFormat::Json
        } else {
            LogFormat::Text
        },
        0,
    );
    let line = match error.kind() {
        // clap would repeat the rejected value, which may be a URL with a password or a header
        // with a token; the parsers' own messages name a value only where that is safe.
        ErrorKind::ValueValidation => {
            let argument = error
                .get(clap::error::ContextKind::InvalidArg)
                .map_or_else(|| "an argument".to_string(), ToString::to_string);
            let reason = std::error::Error::source(&error)
                .map_or_else(|| "not accepted".to_string(), ToString::to_string);
            format!("invalid value for '{argument}': {reason}")
        }
        _ => {
            // clap's message is the paragraph before the first blank line (some kinds spread it
            // over several lines, such as the list of missing arguments); usage and tips follow.
            let text = error.to_string();
            let paragraph: Vec<&str> = text
                .lines()
                .map(str::trim)
                .take_while(|line| !line.is_empty())
                .collect();
            let joined = paragraph.join(" ");
            joined
                .strip_prefix("error: ")
                .unwrap_or(&joined)
                .to_string()
        }
    };
    let termination_log = raw_flag(&args, "--termination-log")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("INITBOX_TERMINATION_LOG").map(PathBuf::from));
    fail_before_start(
        exit::usage(format!("{} (see 'initbox --help')", redact::urls_in(&line))),
        report::termination_log_path(termination_log.as_deref()),
    )
}

/// The value of `--flag VALUE` or `--flag=VALUE` in raw arguments.
fn raw_flag(args: &[String], flag: &str) -> Option<String> {
    args.iter().enumerate().find_map(|(index, arg)| {
        if arg == flag {
            args.get(index + 1).cloned()
        } else {
            arg.strip_prefix(flag)?
                .strip_prefix('=')
                .map(str::to_string)
        }
    })
}
