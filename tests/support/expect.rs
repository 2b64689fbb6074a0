//! Checks on a finished run's output that many tests make, and stopping a running child with
//! SIGTERM, so that each test reads as what it checks.

use std::process::Child;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{Run, finish};

/// Checks on how a run ended, beside [`Run::expect_code`]. Each shows the output when it fails
/// and returns the run, so that checks chain.
pub trait Expect {
    /// Asserts exit 0 and hands the run back, for checks on what it said.
    fn succeeded(self) -> Run;

    /// Asserts that stderr contains `text`, showing all of it when it does not.
    fn expect_stderr(&self, text: &str) -> &Self;

    /// Asserts that nothing on stderr contains `text` (a password, a token).
    fn expect_not_in_stderr(&self, text: &str) -> &Self;

    /// Asserts that the last line on stderr, the final event, contains `text`.
    fn expect_last_line(&self, text: &str) -> &Self;

    /// Asserts that the last line on stderr does not contain `text` (a target that was ready).
    fn expect_last_line_without(&self, text: &str) -> &Self;

    /// Asserts exit `code` with exactly one line on stderr, naming `text`: how every bad input
    /// and every final failure is reported.
    fn expect_one_line(&self, code: i32, text: &str) -> &Self;

    /// A usage error: exit 2 and exactly one line on stderr, naming `text`.
    fn expect_usage_error(&self, text: &str) -> &Self {
        self.expect_one_line(2, text)
    }

    /// Asserts that the run ended within `limit` of its start.
    fn expect_within(&self, limit: Duration) -> &Self;
}

impl Expect for Run {
    fn succeeded(self) -> Run {
        self.expect_code(0);
        self
    }

    fn expect_stderr(&self, text: &str) -> &Self {
        assert!(
            self.stderr.contains(text),
            "expected {text:?} in:\n{}",
            self.stderr
        );
        self
    }

    fn expect_not_in_stderr(&self, text: &str) -> &Self {
        assert!(
            !self.stderr.contains(text),
            "{text:?} must not show in:\n{}",
            self.stderr
        );
        self
    }

    fn expect_last_line(&self, text: &str) -> &Self {
        let last = self.last_line();
        assert!(last.contains(text), "expected {text:?} in: {last}");
        self
    }

    fn expect_last_line_without(&self, text: &str) -> &Self {
        let last = self.last_line();
        assert!(!last.contains(text), "{text:?} must not show in: {last}");
        self
    }

    fn expect_one_line(&self, code: i32, text: &str) -> &Self {
        self.expect_code(code);
        assert_eq!(self.stderr_lines().len(), 1, "{}", self.stderr);
        self.expect_stderr(text)
    }

    fn expect_within(&self, limit: Duration) -> &Self {
        assert!(
            self.elapsed < limit,
            "took {:?}, more than {limit:?}:\n{}",
            self.elapsed,
            self.stderr
        );
        self
    }
}

/// Sends SIGTERM to a child started with [`super::spawn`] and collects it: its run, and how long
/// it took to exit after the signal was sent.
pub fn stop_with_sigterm(child: Child, started: Instant) -> (Run, Duration) {
    let sent = Instant::now();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let result = finish(child, started);
    (result, sent.elapsed())
}
