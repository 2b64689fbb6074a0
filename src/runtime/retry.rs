//! The one retry loop: overall deadline, per-attempt timeout, capped exponential backoff with
//! jitter, and a transient/permanent split so that a permanent error stops waiting at once.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::runtime::ctx::Ctx;
use crate::runtime::duration;
use crate::runtime::exit;
use crate::runtime::signal;

/// How attempts are paced (`--attempt-timeout`, `--interval`, `--max-interval`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub attempt_timeout: Duration,
    pub interval: Duration,
    pub max_interval: Duration,
}

impl Policy {
    /// Rejects combinations that cannot work, naming the flags involved.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.attempt_timeout.is_zero() {
            return Err(exit::usage("--attempt-timeout must be greater than 0"));
        }
        if self.interval.is_zero() {
            return Err(exit::usage("--interval must be greater than 0"));
        }
        if self.max_interval < self.interval {
            return Err(exit::usage(format!(
                "--max-interval {} is shorter than --interval {}",
                duration::format(self.max_interval),
                duration::format(self.interval)
            )));
        }
        Ok(())
    }
}

/// Why one attempt failed, and whether trying again could help.
#[derive(Debug)]
pub struct AttemptError {
    permanent: bool,
    error: anyhow::Error,
    /// The server's own "try again after" (HTTP Retry-After), used when longer than the backoff.
    retry_after: Option<Duration>,
}

impl AttemptError {
    /// The target is not ready yet (refused, NXDOMAIN, starting up): try again.
    pub fn transient(error: impl Into<anyhow::Error>) -> AttemptError {
        AttemptError {
            permanent: false,
            error: error.into(),
            retry_after: None,
        }
    }

    /// Waits at least `pause` before the next attempt, as the server asked.
    pub fn retry_after(mut self, pause: Option<Duration>) -> AttemptError {
        self.retry_after = pause;
        self
    }

    /// Waiting cannot help (rejected credentials with --fail-fast, a bad query): stop now.
    pub fn permanent(error: impl Into<anyhow::Error>) -> AttemptError {
        AttemptError {
            permanent: true,
            error: error.into(),
            retry_after: None,
        }
    }
}

impl std::fmt::Display for AttemptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

/// Runs `attempt` until it succeeds, fails permanently, the deadline passes or a signal arrives.
/// `attempt` gets the time it may take, already capped by what is left of the deadline; the loop
/// also enforces it. `target` names what is waited for in logs and errors.
pub async fn until_ready<T, F, Fut>(ctx: &Ctx, target: &str, attempt: F) -> anyhow::Result<T>
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Result<T, AttemptError>>,
{
    until_ready_within(ctx, target, None, attempt).await
}

/// [`until_ready`] with a limit of its own (such as --lock-timeout) inside the overall deadline.
pub async fn until_ready_within<T, F, Fut>(
    ctx: &Ctx,
    target: &str,
    limit: Option<Duration>,
    attempt: F,
) -> anyhow::Result<T>
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Result<T, AttemptError>>,
{
    attempts(
        ctx,
        target,
        limit,
        Some(ctx.policy.attempt_timeout),
        attempt,
    )
    .await
}

/// [`until_ready`] for work whose attempts last as long as the work does (a download of many
/// gigabytes): an attempt is bounded by the deadline only, and bounds its own stalls.
pub async fn until_done<T, F, Fut>(ctx: &Ctx, target: &str, attempt: F) -> anyhow::Result<T>
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Result<T, AttemptError>>,
{
    attempts(ctx, target, None, None, attempt).await
}

async fn attempts<T, F, Fut>(
    ctx: &Ctx,
    target: &str,
    limit: Option<Duration>,
    attempt_cap: Option<Duration>,
    mut attempt: F,
) -> anyhow::Result<T>
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Result<T, AttemptError>>,
{
    let started = Instant::now();
    let own_deadline = limit.map(|limit| started + limit);
    let deadline = match (ctx.deadline, own_deadline) {
        (Some(overall), Some(own)) => Some(overall.min(own)),
        (overall, own) => overall.or(own),
    };
    let expired = || match (limit, own_deadline) {
        (Some(limit), Some(own)) if ctx.deadline.is_none_or(|overall| own < overall) => {
            exit::deadline(format!(
                "{target}: not ready within {}",
                duration::format(limit)
            ))
        }
        _ => deadline_exceeded(ctx),
    };
    let mut backoff = Backoff::new(ctx.policy);
    let mut answered_before = false;
    ctx.report.register(target);
    loop {
        let remaining = deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()));
        if remaining == Some(Duration::ZERO) {
            return Err(expired());
        }
        // Duration::MAX (no deadline, no cap) is a timeout that never fires.
        let budget = match (remaining, attempt_cap) {
            (Some(left), Some(cap)) => left.min(cap),
            (left, cap) => left.or(cap).unwrap_or(Duration::MAX),
        };
        let outcome = tokio::select! {
            stop = ctx.cancel.cancelled() => return Err(signal::stopped(stop)),
            outcome = tokio::time::timeout(budget, attempt(budget)) => outcome,
        };
        let mut pause = backoff.next_delay();
        match outcome {
            Ok(Ok(value)) => {
                ctx.report.ready(target, started.elapsed());
                return Ok(value);
            }
            Ok(Err(failure)) if failure.permanent => {
                ctx.report
                    .attempt_failed(target, &format!("{:#}", failure.error));
                return Err(failure.error.context(target.to_string()));
            }
            Ok(Err(failure)) => {
                ctx.report
                    .attempt_failed(target, &format!("{:#}", failure.error));
                pause = pause.max(failure.retry_after.unwrap_or_default());
            }
            // Without a cap, only the deadline ends an attempt: the work was still going, and
            // the caller knows best how far it got.
            Err(_elapsed) if attempt_cap.is_none() => return Err(expired()),
            // An attempt the deadline cut short says nothing new about a target that already
            // failed in its own words: the final line keeps those words.
            Err(_elapsed) if budget < ctx.policy.attempt_timeout && answered_before => {
                return Err(expired());
            }
            Err(_elapsed) => ctx.report.attempt_failed(
                target,
                &format!("no answer within {}", duration::format(budget)),
            ),
        }
        answered_before = true;
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(expired());
            }
            pause = pause.min(left);
        }
        tokio::select! {
            stop = ctx.cancel.cancelled() => return Err(signal::stopped(stop)),
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// The error for a run that reached `--timeout` (exit 124).
pub fn deadline_exceeded(ctx: &Ctx) -> anyhow::Error {
    exit::deadline(format!(
        "deadline of {} exceeded",
        duration::format(ctx.timeout)
    ))
}

/// Exponential backoff from `interval` doubling up to `max_interval`. Each pause is drawn
/// uniformly from the upper half of the current step (never below `interval`), so replicas that
/// started together spread out instead of retrying in lockstep.
pub struct Backoff {
    policy: Policy,
    step: Duration,
}

impl Backoff {
    pub fn new(policy: Policy) -> Backoff {
        Backoff {
            policy,
            step: policy.interval,
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        let high = self.step;
        let low = (high / 2).max(self.policy.interval).min(high);
        self.step = self.step.saturating_mul(2).min(self.policy.max_interval);
        let spread = (high - low).as_micros() as u64;
        low + Duration::from_micros(fastrand::u64(0..=spread))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::exit::Exit;
    use crate::runtime::signal::Cancel;
    use std::cell::Cell;

    fn policy() -> Policy {
        Policy {
            attempt_timeout: Duration::from_secs(5),
            interval: Duration::from_millis(100),
            max_interval: Duration::from_secs(1),
        }
    }

    fn ctx(timeout: Duration) -> Ctx {
        Ctx::new(timeout, policy(), Cancel::manual().1)
    }

    #[test]
    fn backoff_starts_at_interval_doubles_and_stays_capped() {
        let mut backoff = Backoff::new(policy());
        assert_eq!(backoff.next_delay(), Duration::from_millis(100));
        let second = backoff.next_delay();
        assert!((Duration::from_millis(100)..=Duration::from_millis(200)).contains(&second));
        let third = backoff.next_delay();
        assert!((Duration::from_millis(200)..=Duration::from_millis(400)).contains(&third));
        let fourth = backoff.next_delay();
        assert!((Duration::from_millis(400)..=Duration::from_millis(800)).contains(&fourth));
        for _ in 0..50 {
            let pause = backoff.next_delay();
            assert!(pause >= Duration::from_millis(500) && pause <= Duration::from_secs(1));
        }
    }

    #[test]
    fn backoff_jitters() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20 {
            let mut backoff = Backoff::new(policy());
            backoff.next_delay();
            seen.insert(backoff.next_delay());
        }
        assert!(seen.len() > 1, "pauses never varied: {seen:?}");
    }

    #[test]
    fn policy_rejects_impossible_values() {
        let mut bad = policy();
        bad.max_interval = Duration::from_millis(50);
        assert_eq!(Exit::of(&bad.validate().unwrap_err()), Exit::Usage);
        bad = policy();
        bad.attempt_timeout = Duration::ZERO;
        assert!(bad.validate().is_err());
        bad = policy();
        bad.interval = Duration::ZERO;
        assert!(bad.validate().is_err());
        assert!(policy().validate().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_errors_until_success() {
        let ctx = ctx(Duration::from_secs(60));
        let calls = Cell::new(0);
        let value = until_ready(&ctx, "t", |_| {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n < 4 {
                    Err(AttemptError::transient(anyhow::anyhow!("refused")))
                } else {
                    Ok(n)
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(value, 4);
        assert_eq!(ctx.report.attempts(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_error_stops_at_once() {
        let ctx = ctx(Duration::from_secs(60));
        let calls = Cell::new(0);
        let started = Instant::now();
        let err = until_ready(&ctx, "db:5432", |_| {
            calls.set(calls.get() + 1);
            async { Err::<(), _>(AttemptError::permanent(anyhow::anyhow!("bad password"))) }
        })
        .await
        .unwrap_err();
        assert_eq!(calls.get(), 1);
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(Exit::of(&err), Exit::Failed);
        assert_eq!(format!("{err:#}"), "db:5432: bad password");
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_ends_the_wait_on_time() {
        let ctx = ctx(Duration::from_secs(3));
        let started = Instant::now();
        let err = until_ready(&ctx, "t", |_| async {
            Err::<(), _>(AttemptError::transient(anyhow::anyhow!("refused")))
        })
        .await
        .unwrap_err();
        assert_eq!(Exit::of(&err), Exit::DeadlineExceeded);
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        assert!(ctx.report.attempts() > 3);
        assert_eq!(ctx.report.not_ready(), "t (refused)");
    }

    #[tokio::test(start_paused = true)]
    async fn attempt_budget_is_capped_by_the_deadline() {
        let ctx = ctx(Duration::from_secs(2));
        let budgets = std::cell::RefCell::new(Vec::new());
        let started = Instant::now();
        let err = until_ready(&ctx, "blackhole:1", |budget| {
            budgets.borrow_mut().push(budget);
            std::future::pending::<Result<(), AttemptError>>()
        })
        .await
        .unwrap_err();
        assert_eq!(Exit::of(&err), Exit::DeadlineExceeded);
        assert_eq!(budgets.borrow()[0], Duration::from_secs(2));
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert_eq!(ctx.report.not_ready(), "blackhole:1 (no answer within 2s)");
    }

    #[tokio::test(start_paused = true)]
    async fn a_last_attempt_cut_short_by_the_deadline_keeps_the_earlier_reason() {
        let ctx = ctx(Duration::from_millis(1500));
        let calls = Cell::new(0);
        let err = until_ready(&ctx, "db:5432", |_| {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n == 1 {
                    Err::<(), _>(AttemptError::transient(anyhow::anyhow!("28P01")))
                } else {
                    // Slower than whatever is left of the deadline.
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    Err(AttemptError::transient(anyhow::anyhow!("28P01")))
                }
            }
        })
        .await
        .unwrap_err();
        assert_eq!(Exit::of(&err), Exit::DeadlineExceeded);
        assert_eq!(ctx.report.not_ready(), "db:5432 (28P01)");
    }

    #[tokio::test(start_paused = true)]
    async fn an_own_limit_ends_the_wait_before_the_deadline_and_says_so() {
        let ctx = ctx(Duration::from_secs(60));
        let started = Instant::now();
        let err = until_ready_within(&ctx, "lock", Some(Duration::from_secs(2)), |_| async {
            Err::<(), _>(AttemptError::transient(anyhow::anyhow!("held")))
        })
        .await
        .unwrap_err();
        assert_eq!(Exit::of(&err), Exit::DeadlineExceeded);
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert_eq!(err.to_string(), "lock: not ready within 2s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_servers_retry_after_lengthens_the_pause() {
        let ctx = ctx(Duration::from_secs(60));
        let calls = Cell::new(0);
        let started = Instant::now();
        until_ready(&ctx, "t", |_| {
            calls.set(calls.get() + 1);
            let first = calls.get() == 1;
            async move {
                if first {
                    Err(AttemptError::transient(anyhow::anyhow!("429"))
                        .retry_after(Some(Duration::from_secs(7))))
                } else {
                    Ok(())
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn attempt_timeout_applies_without_a_deadline() {
        let ctx = ctx(Duration::ZERO);
        let calls = Cell::new(0);
        let started = Instant::now();
        until_ready(&ctx, "t", |_| {
            calls.set(calls.get() + 1);
            let first = calls.get() == 1;
            async move {
                if first {
                    std::future::pending().await
                } else {
                    Ok(())
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(calls.get(), 2);
        assert_eq!(started.elapsed(), Duration::from_millis(5100));
    }

    #[tokio::test(start_paused = true)]
    async fn until_done_lets_an_attempt_outlast_the_attempt_timeout_but_not_the_deadline() {
        let ctx = ctx(Duration::from_secs(60));
        let long = until_done(&ctx, "download", |_| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, AttemptError>(())
        });
        long.await.unwrap();
        let started = Instant::now();
        let err = until_done(&ctx, "download", |_| {
            std::future::pending::<Result<(), AttemptError>>()
        })
        .await
        .unwrap_err();
        assert_eq!(Exit::of(&err), Exit::DeadlineExceeded);
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_signal_cancels_an_attempt_in_flight() {
        let (trigger, cancel) = Cancel::manual();
        let ctx = Ctx::new(Duration::from_secs(60), policy(), cancel);
        let stopper = async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            trigger.send(Some(Exit::Terminated)).unwrap();
        };
        let wait = until_ready(&ctx, "t", |_| {
            std::future::pending::<Result<(), AttemptError>>()
        });
        let started = Instant::now();
        let (err, ()) = tokio::join!(wait, stopper);
        let err = err.unwrap_err();
        assert_eq!(Exit::of(&err), Exit::Terminated);
        assert_eq!(started.elapsed(), Duration::from_millis(30));
    }
}
