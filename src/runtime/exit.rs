//! The exit-code table every subcommand shares, and the mapping from an error to its code.
//!
//! The kubelet, `kubectl describe pod` and CI scripts see only the exit code, so each
//! distinct reason for stopping gets its own, and nothing else in the code picks a number.

use std::fmt;

/// Why the process stops. `code()` is the one place that turns a reason into a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The job is done: every target is ready.
    Success,
    /// A permanent error: waiting longer would not help (bad password with --fail-fast, SQL error, 403).
    Failed,
    /// A usage or configuration error: a bad flag, a malformed target, an unreadable file named on the command line.
    Usage,
    /// The overall deadline (--timeout) passed before the job was done.
    DeadlineExceeded,
    /// SIGINT arrived (Ctrl-C); 128 + 2 as shells report it.
    Interrupted,
    /// SIGTERM arrived (the kubelet stopping the pod); 128 + 15 as shells report it.
    Terminated,
    /// The command after `--` could not be started because it was not found (as shells report it).
    CommandNotFound,
    /// The command after `--` was found but could not be executed (as shells report it).
    CommandNotExecutable,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::DeadlineExceeded => 124,
            Exit::CommandNotExecutable => 126,
            Exit::CommandNotFound => 127,
            Exit::Interrupted => 130,
            Exit::Terminated => 143,
        }
    }

    /// The word used for this exit in the final log event (`outcome`).
    pub fn outcome(self) -> &'static str {
        match self {
            Exit::Success => "ready",
            Exit::Failed => "failed",
            Exit::Usage => "usage_error",
            Exit::DeadlineExceeded => "deadline_exceeded",
            Exit::Interrupted | Exit::Terminated => "interrupted",
            Exit::CommandNotFound | Exit::CommandNotExecutable => "exec_failed",
        }
    }

    /// The exit for an error: the outermost typed marker decides (anyhow finds a marker used as
    /// context only through the error itself, hence both look-ups); anything unmarked is a
    /// permanent failure.
    pub fn of(error: &anyhow::Error) -> Exit {
        error
            .downcast_ref::<Marked>()
            .or_else(|| {
                error
                    .chain()
                    .find_map(|cause| cause.downcast_ref::<Marked>())
            })
            .map_or(Exit::Failed, |marked| marked.exit)
    }
}

/// An error message carrying the exit it must produce. Created with [`usage`], [`deadline`],
/// [`interrupted`] so the rest of the code never names a number.
#[derive(Debug)]
pub struct Marked {
    exit: Exit,
    message: String,
}

impl fmt::Display for Marked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Marked {}

fn marked(exit: Exit, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Marked {
        exit,
        message: message.into(),
    })
}

/// A usage or configuration error (exit 2).
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    marked(Exit::Usage, message)
}

/// The overall deadline passed (exit 124).
pub fn deadline(message: impl Into<String>) -> anyhow::Error {
    marked(Exit::DeadlineExceeded, message)
}

/// A signal stopped the run (exit 130 for SIGINT, 143 for SIGTERM).
pub fn interrupted(exit: Exit, message: impl Into<String>) -> anyhow::Error {
    debug_assert!(matches!(exit, Exit::Interrupted | Exit::Terminated));
    marked(exit, message)
}

/// The command after `--` could not be executed (exit 126 or 127).
pub fn exec_failed(not_found: bool, message: impl Into<String>) -> anyhow::Error {
    let exit = if not_found {
        Exit::CommandNotFound
    } else {
        Exit::CommandNotExecutable
    };
    marked(exit, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn codes_match_the_documented_table() {
        let table = [
            (Exit::Success, 0),
            (Exit::Failed, 1),
            (Exit::Usage, 2),
            (Exit::DeadlineExceeded, 124),
            (Exit::CommandNotExecutable, 126),
            (Exit::CommandNotFound, 127),
            (Exit::Interrupted, 130),
            (Exit::Terminated, 143),
        ];
        for (exit, code) in table {
            assert_eq!(exit.code(), code, "{exit:?}");
        }
    }

    #[test]
    fn unmarked_errors_are_permanent_failures() {
        assert_eq!(Exit::of(&anyhow::anyhow!("boom")), Exit::Failed);
    }

    #[test]
    fn markers_survive_added_context() {
        let err = Err::<(), _>(usage("bad port"))
            .context("parsing target")
            .unwrap_err();
        assert_eq!(Exit::of(&err), Exit::Usage);
        assert_eq!(format!("{err:#}"), "parsing target: bad port");
        assert_eq!(Exit::of(&deadline("late")), Exit::DeadlineExceeded);
        assert_eq!(
            Exit::of(&interrupted(Exit::Terminated, "SIGTERM")),
            Exit::Terminated
        );
        assert_eq!(Exit::of(&exec_failed(true, "nope")), Exit::CommandNotFound);
        assert_eq!(
            Exit::of(&exec_failed(false, "nope")),
            Exit::CommandNotExecutable
        );
    }

    #[test]
    fn the_outermost_marker_wins() {
        let err = usage("inner").context(Marked {
            exit: Exit::DeadlineExceeded,
            message: "outer".into(),
        });
        assert_eq!(Exit::of(&err), Exit::DeadlineExceeded);
    }
}
