//! Everything a subcommand needs from the runtime: the deadline, the retry policy, the
//! cancellation handle and the report.

use std::time::Duration;

use tokio::time::Instant;

use crate::runtime::report::Report;
use crate::runtime::retry::Policy;
use crate::runtime::signal::Cancel;

pub struct Ctx {
    /// When the whole run must end; `None` with `--timeout 0`.
    pub deadline: Option<Instant>,
    /// The `--timeout` value, for messages.
    pub timeout: Duration,
    pub policy: Policy,
    pub cancel: Cancel,
    pub report: Report,
}

impl Ctx {
    pub fn new(timeout: Duration, policy: Policy, cancel: Cancel) -> Ctx {
        let started = Instant::now();
        Ctx {
            // A deadline too far away to represent is no deadline at all.
            deadline: (!timeout.is_zero())
                .then(|| started.checked_add(timeout))
                .flatten(),
            timeout,
            policy,
            cancel,
            report: Report::new(started.into_std()),
        }
    }

    /// Time left before the deadline (`None`: no deadline).
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|deadline| deadline.saturating_duration_since(Instant::now()))
    }

    /// Resolves once the deadline has passed (never, without one): for a job that selects
    /// between its own work and the deadline.
    pub async fn deadline_reached(&self) {
        match self.remaining() {
            Some(left) => tokio::time::sleep(left).await,
            None => std::future::pending().await,
        }
    }
}
