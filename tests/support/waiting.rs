//! What the wait tests share: a wait the test changes the world under part-way (a server started
//! late, a record added, a signal sent).

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
