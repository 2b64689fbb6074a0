//! What a person reading `kubectl logs` or `kubectl describe pod` sees: a line when a target's
//! state changes, one final event, and the termination message.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::runtime::duration;
use crate::runtime::exit::Exit;
use crate::runtime::logging::{self, Level};

/// The kubelet shows at most 4096 bytes of a termination message.
const TERMINATION_MESSAGE_LIMIT: usize = 4096;

/// Where things stand for every target of this run.
pub struct Report {
    started: Instant,
    targets: Mutex<Vec<TargetState>>,
    observer: OnceLock<Observer>,
}

/// A change of state a person should see outside the logs (`--events` posts each as a
/// Kubernetes Event on the pod): the text is the log line's, redacted the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `Waiting`, `Ready` or `Failed`.
    pub reason: &'static str,
    pub message: String,
}

/// Told of every [`Change`]; must return at once (it runs on the waiting task).
pub type Observer = Box<dyn Fn(Change) + Send + Sync>;

struct TargetState {
    name: String,
    attempts: u64,
    last_error: Option<String>,
    ready: bool,
}

impl Report {
    pub fn new(started: Instant) -> Report {
        Report {
            started,
            targets: Mutex::new(Vec::new()),
            observer: OnceLock::new(),
        }
    }

    /// Sends every later change of state to `observer` as well as to the log.
    pub fn observe(&self, observer: Observer) {
        let _ = self.observer.set(observer);
    }

    fn tell(&self, reason: &'static str, message: String) {
        if let Some(observer) = self.observer.get() {
            observer(Change { reason, message });
        }
    }

    /// Records a failed attempt. Logged at warn when the error differs from the target's
    /// previous one (the first error, a new error); otherwise only with -v.
    pub fn attempt_failed(&self, target: &str, error: &str) {
        let (attempt, changed) = self.update(target, |state| {
            state.attempts += 1;
            let changed = state.last_error.as_deref() != Some(error);
            state.last_error = Some(error.to_string());
            (state.attempts, changed)
        });
        let level = if changed { Level::Warn } else { Level::Debug };
        if changed {
            self.tell("Waiting", format!("{target}: {error}"));
        }
        logging::emit(
            level,
            &format!("{target}: not ready: {error} (attempt {attempt})"),
            &[
                ("event", "not_ready".into()),
                ("target", target.into()),
                ("error", error.into()),
                ("attempt", attempt.into()),
            ],
        );
    }

    /// Records the successful attempt that made a target ready.
    pub fn ready(&self, target: &str, elapsed: Duration) {
        let attempt = self.update(target, |state| {
            state.attempts += 1;
            state.ready = true;
            state.attempts
        });
        let plural = if attempt == 1 { "" } else { "s" };
        logging::emit(
            Level::Info,
            &format!(
                "{target}: ready after {attempt} attempt{plural} ({})",
                duration::human(elapsed)
            ),
            &[
                ("event", "ready".into()),
                ("target", target.into()),
                ("attempt", attempt.into()),
                ("elapsed_ms", (elapsed.as_millis() as u64).into()),
            ],
        );
    }

    /// Attempts made so far, over all targets.
    pub fn attempts(&self) -> u64 {
        self.lock().iter().map(|state| state.attempts).sum()
    }

    /// The targets that are not ready yet, each with its last error: what a person needs to
    /// know when the deadline passes or a signal arrives.
    pub fn not_ready(&self) -> String {
        self.lock()
            .iter()
            .filter(|state| !state.ready)
            .map(|state| match &state.last_error {
                Some(error) => format!("{} ({error})", state.name),
                None => format!("{} (no attempt finished)", state.name),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Logs the final event and, on failure, writes the termination message. Returns the exit.
    pub fn finish(&self, result: &anyhow::Result<()>, termination_log: Option<&Path>) -> Exit {
        let elapsed_ms = self.started.elapsed().as_millis() as u64;
        let attempts = self.attempts();
        let exit = match result {
            Ok(()) => Exit::Success,
            Err(error) => Exit::of(error),
        };
        let mut fields = vec![
            ("event", json!("finished")),
            ("outcome", json!(exit.outcome())),
            ("exit_code", json!(exit.code())),
            ("duration_ms", json!(elapsed_ms)),
            ("attempts", json!(attempts)),
        ];
        match result {
            Ok(()) => {
                let tries = match attempts {
                    0 => String::new(),
                    1 => " (1 attempt)".into(),
                    n => format!(" ({n} attempts)"),
                };
                logging::emit(
                    Level::Info,
                    &format!("done in {elapsed_ms}ms{tries}"),
                    &fields,
                );
                self.tell(
                    "Ready",
                    format!(
                        "ready in {}{tries}",
                        duration::human(Duration::from_millis(elapsed_ms))
                    ),
                );
            }
            Err(error) => {
                let line = self.failure_line(error, exit);
                fields.push(("error", json!(line)));
                logging::emit(Level::Error, &line, &fields);
                self.tell(
                    "Failed",
                    format!(
                        "{line} (after {})",
                        duration::human(Duration::from_millis(elapsed_ms))
                    ),
                );
                if let Some(path) = termination_log {
                    write_termination_message(path, &line);
                }
            }
        }
        exit
    }

    fn failure_line(&self, error: &anyhow::Error, exit: Exit) -> String {
        let mut line = format!("{error:#}");
        if matches!(
            exit,
            Exit::DeadlineExceeded | Exit::Interrupted | Exit::Terminated
        ) {
            let waiting = self.not_ready();
            if !waiting.is_empty() {
                line.push_str("; not ready: ");
                line.push_str(&waiting);
            }
        }
        one_line(&line)
    }

    fn update<R>(&self, target: &str, change: impl FnOnce(&mut TargetState) -> R) -> R {
        let mut targets = self.lock();
        let index = match targets.iter().position(|state| state.name == target) {
            Some(index) => index,
            None => {
                targets.push(TargetState {
                    name: target.to_string(),
                    attempts: 0,
                    last_error: None,
                    ready: false,
                });
                targets.len() - 1
            }
        };
        change(&mut targets[index])
    }

    /// Registers a target before its first attempt, so a deadline or signal that arrives during
    /// that attempt still names it.
    pub fn register(&self, target: &str) {
        self.update(target, |_| ());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<TargetState>> {
        self.targets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Newlines would split the message across lines in logs and in `kubectl describe`.
fn one_line(text: &str) -> String {
    text.split(['\n', '\r'])
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The default termination-message path, used when it exists and is writable.
pub const DEFAULT_TERMINATION_LOG: &str = "/dev/termination-log";

/// Resolves `--termination-log`: unset means the Kubernetes default when it is writable there,
/// an empty value disables it.
pub fn termination_log_path(flag: Option<&Path>) -> Option<PathBuf> {
    match flag {
        Some(path) if path.as_os_str().is_empty() => None,
        Some(path) => Some(path.to_path_buf()),
        None => {
            let default = Path::new(DEFAULT_TERMINATION_LOG);
            let writable = nix::unistd::access(default, nix::unistd::AccessFlags::W_OK).is_ok();
            writable.then(|| default.to_path_buf())
        }
    }
}

/// Writes the one-line reason where the kubelet reads it, with no newline at the end: the
/// kubelet shows the file as it is, and `kubectl describe pod` would print a trailing newline as
/// an empty line under `Message:`. Failing to write it is logged, not fatal: the exit code still
/// tells the story.
pub fn write_termination_message(path: &Path, line: &str) {
    let mut end = line.len().min(TERMINATION_MESSAGE_LIMIT);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    if let Err(error) = std::fs::write(path, &line[..end]) {
        logging::emit(
            Level::Warn,
            &format!(
                "cannot write termination message to {}: {error}",
                path.display()
            ),
            &[],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_every_target_still_waiting_with_its_last_error() {
        let report = Report::new(Instant::now());
        report.register("db:5432");
        report.register("cache:6379");
        report.register("queue:5672");
        report.attempt_failed("db:5432", "connection refused");
        report.attempt_failed("db:5432", "connection refused");
        report.ready("cache:6379", Duration::from_millis(5));
        assert_eq!(report.attempts(), 3);
        assert_eq!(
            report.not_ready(),
            "db:5432 (connection refused); queue:5672 (no attempt finished)"
        );
    }

    #[test]
    fn observers_hear_each_change_of_state_once_and_the_outcome() {
        let heard = std::sync::Arc::new(Mutex::new(Vec::new()));
        let report = Report::new(Instant::now());
        let sink = heard.clone();
        report.observe(Box::new(move |change| sink.lock().unwrap().push(change)));
        report.attempt_failed("db:5432", "connection refused");
        report.attempt_failed("db:5432", "connection refused");
        report.attempt_failed("db:5432", "FATAL 57P03");
        report.finish(&Err(anyhow::anyhow!("db:5432: bad password")), None);
        let heard = heard.lock().unwrap();
        let reasons: Vec<&str> = heard.iter().map(|change| change.reason).collect();
        assert_eq!(reasons, ["Waiting", "Waiting", "Failed"]);
        assert_eq!(heard[1].message, "db:5432: FATAL 57P03");
        assert!(
            heard[2]
                .message
                .starts_with("db:5432: bad password (after ")
        );
    }

    #[test]
    fn termination_message_is_one_line_within_the_kubelet_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("termination-log");
        let long = "é".repeat(5000);
        write_termination_message(&path, &long);
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(written.len() <= TERMINATION_MESSAGE_LIMIT);
        assert!(
            written.len() > TERMINATION_MESSAGE_LIMIT - 2,
            "cut at a char boundary"
        );
        assert!(!written.contains('\n'), "no newline, not even at the end");
        assert_eq!(one_line("a\nb\r\n  c"), "a b c");
    }

    #[test]
    fn termination_message_has_no_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("termination-log");
        write_termination_message(&path, "deadline of 3s exceeded");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"deadline of 3s exceeded".to_vec()
        );
    }

    #[test]
    fn empty_flag_disables_the_termination_log() {
        assert_eq!(termination_log_path(Some(Path::new(""))), None);
        assert_eq!(
            termination_log_path(Some(Path::new("/tmp/x"))),
            Some(PathBuf::from("/tmp/x"))
        );
    }
}
