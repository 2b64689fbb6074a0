//! wait-tcp against real listeners: IPv4 and IPv6, late listeners, re-resolution, exec after
//! success, signals, and a blackholed port in a private network namespace.

use std::io::Read;
use std::net::TcpListener;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::support::expect::Expect;
use crate::support::netns::NetNs;
use crate::support::waiting::{run_changed_after, run_signalled_after, within};
use crate::support::{finish, free_port, initbox, run, skip_unless_root, spawn};

#[test]
fn waits_for_ipv4_and_ipv6_targets_in_parallel() {
    let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let v6 = TcpListener::bind("[::1]:0").unwrap();
    let result = run(initbox().args([
        "wait-tcp",
        &v4.local_addr().unwrap().to_string(),
        &format!("[::1]:{}", v6.local_addr().unwrap().port()),
        &format!("localhost:{}", v4.local_addr().unwrap().port()),
    ]));
    result.expect_code(0).expect_stderr("done in");
    assert_eq!(result.stderr.matches(": ready after 1 attempt").count(), 3);
}

#[test]
fn succeeds_once_a_late_listener_appears() {
    let port = free_port();
    // Still waiting when the listener comes, so `elapsed` is past the 600 ms.
    run_changed_after(
        &mut within("30s", &["wait-tcp", &format!("127.0.0.1:{port}")]),
        Duration::from_millis(600),
        || TcpListener::bind(("127.0.0.1", port)).unwrap(),
    )
    .expect_code(0)
    .expect_stderr("not ready: connection refused");
}

#[test]
fn one_missing_target_keeps_the_others_waiting_and_is_named() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap().to_string();
    let closed = format!("127.0.0.1:{}", free_port());
    run(&mut within("500ms", &["wait-tcp", &open, &closed]))
        .expect_code(124)
        .expect_last_line(&format!("not ready: {closed} (connection refused)"))
        .expect_last_line_without(&open);
}

#[test]
fn the_probe_connection_is_closed() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().to_string();
    run(initbox().args(["wait-tcp", &target])).expect_code(0);
    let (mut accepted, _) = listener.accept().unwrap();
    accepted
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        accepted.read(&mut buf).unwrap(),
        0,
        "expected EOF from a closed probe"
    );
}

#[test]
fn exec_replaces_the_process_and_keeps_its_exit_code() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().to_string();
    let (child, started) =
        spawn(initbox().args(["wait-tcp", &target, "--", "sh", "-c", "echo $$; exit 7"]));
    let pid = child.id();
    let result = finish(child, started);
    result.expect_code(7);
    assert_eq!(
        result.stdout.trim(),
        pid.to_string(),
        "the command must keep initbox's PID"
    );
    // Arguments may hold secrets.
    result.expect_stderr("exec sh (2 arguments not shown)");
}

#[test]
fn exec_does_not_run_after_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let closed = format!("127.0.0.1:{}", free_port());
    let touch = ["--", "touch", marker.to_str().unwrap()];
    run(within("300ms", &["wait-tcp", &closed]).args(touch)).expect_code(124);
    assert!(!marker.exists());
}

#[test]
fn a_missing_command_fails_before_any_waiting() {
    let closed = format!("127.0.0.1:{}", free_port());
    let result = run(within("1m", &["wait-tcp", &closed]).args(["--", "no-such-program-anywhere"]));
    result
        .expect_code(127)
        .expect_stderr("'no-such-program-anywhere' not found");
    assert!(result.elapsed < Duration::from_secs(5));
}

/// Stopped within 2 s of the signal (checked by `run_signalled_after`), with that exit code.
fn signal_while_waiting(signal: Signal, expected: i32) {
    let closed = format!("127.0.0.1:{}", free_port());
    let waiting = &mut within("1m", &["wait-tcp", &closed]);
    run_signalled_after(waiting, Duration::from_millis(400), signal)
        .expect_code(expected)
        .expect_stderr(&format!("stopped by {}", signal.as_str()));
}

#[test]
fn sigterm_while_waiting_exits_143() {
    signal_while_waiting(Signal::SIGTERM, 143);
}

#[test]
fn sigint_while_waiting_exits_130() {
    signal_while_waiting(Signal::SIGINT, 130);
}

#[test]
fn blackholed_port_ends_by_attempt_timeout_and_deadline() {
    if skip_unless_root("blackholed_port_ends_by_attempt_timeout_and_deadline") {
        return;
    }
    let netns = NetNs::new();
    let port = 4444;
    netns.blackhole(port);
    let target = format!("127.0.0.1:{port}");
    let result = run(netns
        .exec(env!("CARGO_BIN_EXE_initbox"))
        .env("INITBOX_TERMINATION_LOG", "")
        .args([
            "-v",
            "--timeout",
            "2s",
            "--attempt-timeout",
            "400ms",
            "wait-tcp",
            &target,
        ]));
    result.expect_code(124);
    assert!(
        result.elapsed >= Duration::from_secs(2) && result.elapsed < Duration::from_secs(8),
        "{:?}",
        result.elapsed
    );
    let timeouts = result
        .stderr
        .matches("not ready: no answer within 400ms")
        .count();
    assert!(
        timeouts >= 2,
        "each attempt must end at --attempt-timeout:\n{}",
        result.stderr
    );
}

#[test]
fn sigterm_cancels_a_hanging_connect() {
    if skip_unless_root("sigterm_cancels_a_hanging_connect") {
        return;
    }
    let netns = NetNs::new();
    netns.blackhole(4444);
    let mut waiting = netns.exec(env!("CARGO_BIN_EXE_initbox"));
    waiting
        .env("INITBOX_TERMINATION_LOG", "")
        .args(["--timeout", "1m", "--attempt-timeout", "30s"])
        .args(["wait-tcp", "127.0.0.1:4444"]);
    // `ip netns exec` execs initbox, so the child's PID is initbox's once it has started.
    run_signalled_after(&mut waiting, Duration::from_millis(500), Signal::SIGTERM)
        .expect_code(143)
        .expect_stderr("127.0.0.1:4444 (no attempt finished)");
}

#[test]
fn names_are_resolved_again_on_every_attempt_and_every_address_is_tried() {
    if skip_unless_root("names_are_resolved_again_on_every_attempt_and_every_address_is_tried") {
        return;
    }
    // A private /etc/hosts (bind-mounted in a mount namespace): `svc.test` first points at an
    // address with no listener, then at both that address and the one that listens.
    let listener = TcpListener::bind("[::1]:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 svc.test\n").unwrap();
    let script = format!(
        "mount --bind {} /etc/hosts && exec {} --timeout 30s wait-tcp svc.test:{port}",
        hosts.display(),
        env!("CARGO_BIN_EXE_initbox")
    );
    let mut waiting = std::process::Command::new("unshare");
    waiting
        .args(["-m", "sh", "-c", &script])
        .env("INITBOX_TERMINATION_LOG", "");
    // After the first failed attempt, rewrite in place: the bind mount follows the inode.
    run_changed_after(&mut waiting, Duration::from_millis(700), || {
        std::fs::write(&hosts, "127.0.0.1 svc.test\n::1 svc.test\n").unwrap()
    })
    .expect_code(0)
    .expect_stderr(&format!("127.0.0.1:{port}: connection refused"))
    .expect_stderr(&format!("svc.test:{port}: ready"));
}
