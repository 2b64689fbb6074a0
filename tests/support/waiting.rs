//! What the wait tests share: a wait the test changes the world under part-way (a server started
//! late, a record added, a signal sent), and the checks made on how a wait ended.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{Run, finish, initbox, spawn};

/// How long a wait may go on once what it waits for has come: an attempt under way may take up
/// to --attempt-timeout (5 s by default) and the pause after it up to 1 s; the rest is room for
/// a loaded CI machine. Most tests give 30 s or more, so a wait that missed the change fails
/// here rather than passing late.
const ENDS_SOON_AFTER: Duration = Duration::from_secs(15);

/// How long a stop may take after a signal: the contract is 100 ms; the bound is generous for a
/// loaded CI machine.
const STOPS_AFTER_SIGNAL: Duration = Duration::from_secs(2);

/// `initbox --timeout TIMEOUT ARGS...`: a wait under a deadline, to run or to change under.
pub fn within(timeout: &str, args: &[&str]) -> Command {
    let mut command = initbox();
    command.args(["--timeout", timeout]).args(args);
    command
}

/// Runs `command` and, once it has waited `delay`, makes `change` (starts a server, adds a
/// record, flips a status). Checks that it was still waiting then, so it saw the world before
/// the change, and that it ended soon after. What `change` returns (a server it started) is kept
/// until the run has ended.
pub fn run_changed_after<T>(
    command: &mut Command,
    delay: Duration,
    change: impl FnOnce() -> T,
) -> Run {
    let (result, changed, kept) = act_after(command, delay, |_| {
        let kept = change();
        (Instant::now(), kept)
    });
    let since = changed.elapsed();
    assert!(
        since < ENDS_SOON_AFTER,
        "still waiting {since:?} after the change:\n{}",
        result.stderr
    );
    drop(kept);
    result
}

/// Runs `command`, sends it `signal` once it has waited `delay`, and checks that it was still
/// waiting then and stopped soon after.
pub fn run_signalled_after(command: &mut Command, delay: Duration, signal: Signal) -> Run {
    let (result, sent, ()) = act_after(command, delay, |child| {
        let sent = Instant::now();
        kill(Pid::from_raw(child.id() as i32), signal).unwrap();
        (sent, ())
    });
    assert!(
        sent.elapsed() < STOPS_AFTER_SIGNAL,
        "took {:?}",
        sent.elapsed()
    );
    result
}

/// Spawns `command`, sleeps `delay`, checks it has not ended yet, acts on it and collects it.
fn act_after<T>(
    command: &mut Command,
    delay: Duration,
    act: impl FnOnce(&Child) -> (Instant, T),
) -> (Run, Instant, T) {
    let (mut child, started) = spawn(command);
    std::thread::sleep(delay);
    if child.try_wait().expect("try_wait").is_some() {
        let early = finish(child, started);
        panic!(
            "ended before the test acted at {delay:?} (exit {:?}):\n{}",
            early.code, early.stderr
        );
    }
    let (acted, kept) = act(&child);
    (finish(child, started), acted, kept)
}

/// Checks on how a run ended beyond its exit code. Each shows the output when it fails and
/// returns the run, so that checks chain after `expect_code`.
pub trait Ended {
    /// Some line on stderr contains `text`.
    fn expect_logged(&self, text: &str) -> &Run;
    /// Nothing on stderr contains `text` (a password, a token).
    fn expect_not_logged(&self, text: &str) -> &Run;
    /// The last line on stderr, the final event, contains `text`.
    fn expect_last_line(&self, text: &str) -> &Run;
    /// The last line on stderr does not contain `text` (a target that was ready).
    fn expect_last_line_without(&self, text: &str) -> &Run;
    /// A usage error: exit 2 and exactly one line on stderr, containing `text`.
    fn expect_usage_error(&self, text: &str) -> &Run;
}

impl Ended for Run {
    fn expect_logged(&self, text: &str) -> &Run {
        assert!(
            self.stderr.contains(text),
            "expected {text:?} in:\n{}",
            self.stderr
        );
        self
    }

    fn expect_not_logged(&self, text: &str) -> &Run {
        assert!(
            !self.stderr.contains(text),
            "{text:?} must not show in:\n{}",
            self.stderr
        );
        self
    }

    fn expect_last_line(&self, text: &str) -> &Run {
        let last = self.last_line();
        assert!(last.contains(text), "expected {text:?} in: {last}");
        self
    }

    fn expect_last_line_without(&self, text: &str) -> &Run {
        let last = self.last_line();
        assert!(!last.contains(text), "{text:?} must not show in: {last}");
        self
    }

    fn expect_usage_error(&self, text: &str) -> &Run {
        self.expect_code(2);
        let lines = self.stderr_lines();
        assert_eq!(lines.len(), 1, "expected one line:\n{}", self.stderr);
        assert!(
            lines[0].contains(text),
            "expected {text:?} in:\n{}",
            self.stderr
        );
        self
    }
}
