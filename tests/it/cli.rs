//! The contracts every subcommand keeps: bad input, exit codes, logging, termination message,
//! INITBOX_* variables.

use std::time::Duration;

use serde_json::Value;

use crate::support::expect::{Expect, stop_with_sigterm};
use crate::support::{free_port, initbox, run, spawn};

/// 127.0.0.1 and a port nothing listens on: a wait-tcp target that is never ready.
fn closed_target() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// A fresh directory and the path of a termination log in it.
fn termination_log() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("termination-log");
    (dir, path)
}

/// Every bad input: exit 2, exactly one line on stderr that names the bad value, no panic.
#[test]
fn bad_input_is_one_line_and_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["wait-tcp", "db:0"], "'db:0'"),
        (&["wait-tcp", "db:65536"], "'db:65536'"),
        (&["wait-tcp", "db"], "'db'"),
        (&["wait-tcp", "::1:80"], "brackets"),
        (&["wait-tcp", "[::1:80"], "'[::1:80'"),
        (&["wait-tcp", "db:http"], "'db:http'"),
        (&["wait-tcp"], "<TARGET>"),
        (&["--timeout", "5x", "wait-tcp", "db:1"], "'5x'"),
        (&["--timeout", "-1s", "wait-tcp", "db:1"], "'-1s'"),
        (&["--attempt-timeout", "1.5s", "wait-tcp", "db:1"], "'1.5s'"),
        (&["--interval", "soon", "wait-tcp", "db:1"], "'soon'"),
        (
            &["--attempt-timeout", "0", "wait-tcp", "db:1"],
            "--attempt-timeout",
        ),
        (
            &[
                "--interval",
                "2s",
                "--max-interval",
                "1s",
                "wait-tcp",
                "db:1",
            ],
            "--max-interval",
        ),
        (&["--log-format", "xml", "wait-tcp", "db:1"], "'xml'"),
        (&["--log-level", "loud", "wait-tcp", "db:1"], "'loud'"),
        (&["wait-tcp", "--bogus", "db:1"], "'--bogus'"),
        (&["wait-nothing"], "'wait-nothing'"),
        (&["wait-dns", "--type", "MX", "db.test"], "'MX'"),
        (
            &["wait-dns", "--nameserver", "dns.local", "db.test"],
            "'dns.local'",
        ),
        (
            &["wait-dns", "--min-records", "0", "db.test"],
            "--min-records",
        ),
        (&["wait-dns", "a..b"], "'a..b'"),
        (&["-v", "-q", "wait-tcp", "db:1"], "--quiet"),
    ];
    for (args, named) in cases {
        let result = run(initbox().args(*args));
        result.expect_one_line(2, named);
        assert!(!result.stderr.contains("panicked"), "{args:?}");
        assert!(
            result.stdout.is_empty(),
            "{args:?}: stdout {:?}",
            result.stdout
        );
    }
}

#[test]
fn credentials_in_mistyped_arguments_are_not_repeated() {
    let (_dir, termination) = termination_log();
    for args in [
        vec!["wait-pg", "postgres://app:S3CRET@db/app"],
        vec![
            "wait-pg",
            "--url",
            "postgres://app:12345/S3CRET@127.0.0.1:1/app",
        ],
        vec!["wait-redis", "--url", "redis://u:123/S3CRET@h/0"],
        vec!["wait-http", "http://u:1/S3CRET@h/"],
        vec!["wait-mysql", "--url", "mysql://u:1/S3CRET@h/db"],
        vec!["wait", "mysql://u:1/S3CRET@h/db"],
        vec!["wait", "postgres://u:S3CRET@h/db?read_write=perhaps"],
        vec!["wait", "bogus://u:S3CRET@h/db"],
    ] {
        let result = run(initbox()
            .env("INITBOX_TERMINATION_LOG", &termination)
            .args(&args));
        result.expect_code(2);
        let message = std::fs::read_to_string(&termination).unwrap();
        assert!(
            !result.stderr.contains("S3CRET") && !message.contains("S3CRET"),
            "{args:?}: {}",
            result.stderr
        );
    }
}

#[test]
fn a_stuck_job_still_ends_at_its_deadline_and_on_sigterm() {
    // A template that renders for minutes: the run must still end at --timeout, and on SIGTERM.
    let slow = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}";
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("slow.j2");
    std::fs::write(&template, slow).unwrap();
    let args = [
        "render-config",
        "--engine",
        "jinja",
        template.to_str().unwrap(),
        "-",
    ];
    let result = run(initbox().args(["--timeout", "1s"]).args(args));
    result
        .expect_code(124)
        .expect_within(Duration::from_secs(10));

    let (child, started) = spawn(initbox().args(args));
    std::thread::sleep(Duration::from_millis(300));
    let (stopped, _) = stop_with_sigterm(child, started);
    stopped
        .expect_code(143)
        .expect_within(Duration::from_secs(5));
}

#[test]
fn absurd_durations_do_not_panic() {
    let result = run(initbox().args([
        "--timeout",
        "18446744073709551615",
        "--max-interval",
        "18446744073709551615",
        "--interval",
        "9999999999",
        "-v",
        "wait-tcp",
        &closed_target(),
        "--",
        "no-such-program-anywhere",
    ]));
    assert_eq!(result.code, Some(127), "{}", result.stderr);
    assert!(!result.stderr.contains("panicked"));
}

#[test]
fn help_lists_only_implemented_subcommands() {
    let result = run(initbox().arg("--help"));
    result.expect_code(0);
    let commands: Vec<&str> = result
        .stdout
        .lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| !line.is_empty())
        // A long description wraps onto lines indented past the names.
        .filter(|line| !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(
        commands,
        [
            "wait",
            "wait-tcp",
            "wait-dns",
            "wait-pg",
            "wait-redis",
            "wait-http",
            "wait-grpc",
            "wait-mysql",
            "wait-k8s",
            "migrate",
            "fetch-vault",
            "render-config",
            "fix-perms",
            "fetch",
            "help"
        ]
    );
    for variable in [
        "INITBOX_TIMEOUT",
        "INITBOX_ATTEMPT_TIMEOUT",
        "INITBOX_INTERVAL",
        "INITBOX_MAX_INTERVAL",
        "INITBOX_LOG_FORMAT",
        "INITBOX_LOG_LEVEL",
        "INITBOX_TERMINATION_LOG",
    ] {
        assert!(result.stdout.contains(variable), "--help lacks {variable}");
    }
    run(initbox().arg("--version")).expect_code(0);
    // No subcommand: a usage error that lists the subcommands.
    let bare = run(&mut initbox());
    bare.expect_code(2);
    assert!(bare.stderr.contains("wait-tcp"), "{}", bare.stderr);
}

#[test]
fn settings_come_from_initbox_variables() {
    let result = run(initbox()
        .env("INITBOX_TIMEOUT", "300ms")
        .env("INITBOX_LOG_FORMAT", "json")
        .args(["wait-tcp", &closed_target()]));
    result
        .expect_code(124)
        .expect_within(Duration::from_secs(10));
    for line in result.stderr_lines() {
        serde_json::from_str::<Value>(line).expect("every line is JSON");
    }
    // A bad value in a variable is rejected like a bad flag, naming the value.
    let bad = run(initbox()
        .env("INITBOX_TIMEOUT", "forever")
        .args(["wait-tcp", "db:1"]));
    bad.expect_code(2);
    assert!(bad.stderr.contains("'forever'"));
}

#[test]
fn json_logs_are_one_object_per_line_with_a_final_event() {
    let target = closed_target();
    let json = ["--log-format", "json"];
    let result = run(initbox()
        .args(json)
        .args(["--timeout", "400ms", "wait-tcp", &target]));
    result.expect_code(124);
    let events: Vec<Value> = result
        .stderr_lines()
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let first = &events[0];
    assert_eq!(first["event"], "not_ready");
    assert_eq!(first["target"], target);
    assert_eq!(first["error"], "connection refused");
    let last = events.last().unwrap();
    assert_eq!(last["event"], "finished");
    assert_eq!(last["outcome"], "deadline_exceeded");
    assert_eq!(last["exit_code"], 124);
    assert!(last["attempts"].as_u64().unwrap() >= 2, "{last}");
    let duration = last["duration_ms"].as_u64().unwrap();
    assert!((300..10_000).contains(&duration), "{duration}");

    // Usage errors keep the format too.
    let usage = run(initbox().args(json).args(["wait-tcp", "db:0"]));
    usage.expect_code(2);
    let event: Value = serde_json::from_str(usage.stderr.trim()).unwrap();
    assert_eq!(event["outcome"], "usage_error");
}

#[test]
fn logs_a_line_per_change_of_state_not_per_attempt() {
    let target = closed_target();
    let quiet_args = [
        "--timeout",
        "1s",
        "--interval",
        "20ms",
        "--max-interval",
        "40ms",
    ];
    let result = run(initbox().args(quiet_args).args(["wait-tcp", &target]));
    result.expect_code(124);
    let not_ready = |stderr: &str| {
        stderr
            .lines()
            .filter(|l| l.contains("not ready: connection refused (attempt"))
            .count()
    };
    assert_eq!(not_ready(&result.stderr), 1, "{}", result.stderr);

    let verbose = run(initbox().args(quiet_args).args(["-v", "wait-tcp", &target]));
    verbose.expect_code(124);
    assert!(not_ready(&verbose.stderr) >= 5, "{}", verbose.stderr);

    let silent = run(initbox()
        .args(quiet_args)
        .args(["-qq", "wait-tcp", &target]));
    silent.expect_code(124);
    assert_eq!(
        silent.stderr_lines().len(),
        1,
        "only the final error: {}",
        silent.stderr
    );
}

#[test]
fn termination_log_names_the_target_and_last_error() {
    let (_dir, path) = termination_log();
    let target = closed_target();
    let log_to = ["--termination-log", path.to_str().unwrap()];
    let result = run(initbox()
        .args(["--timeout", "300ms"])
        .args(log_to)
        .args(["wait-tcp", &target]));
    result.expect_code(124);
    let message = std::fs::read_to_string(&path).unwrap();
    // One line and no newline at its end: `kubectl describe pod` would show one as an empty line.
    assert!(!message.contains('\n'), "{message:?}");
    assert!(message.contains(&target), "{message}");
    assert!(message.contains("connection refused"), "{message}");
    assert!(message.contains("deadline of 300ms exceeded"), "{message}");

    // Written for usage errors too, through the variable since the flags did not parse.
    let usage = run(initbox()
        .env("INITBOX_TERMINATION_LOG", &path)
        .args(["wait-tcp", "db:0"]));
    usage.expect_code(2);
    assert!(std::fs::read_to_string(&path).unwrap().contains("'db:0'"));

    // Nothing is written on success.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std::fs::remove_file(&path).unwrap();
    let ready = listener.local_addr().unwrap().to_string();
    run(initbox().args(log_to).args(["wait-tcp", &ready])).expect_code(0);
    assert!(!path.exists());
}

/// `--version` names the version, the commit these sources were checked out at (or "unknown"
/// outside a git checkout) and the target triple, on one line; `-V` says the same.
#[test]
fn version_names_commit_and_target() {
    let manifest_dir = env!("CARGO_MANIFEST_DIR");
    let commit = std::process::Command::new("git")
        .args(["-C", manifest_dir, "rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map_or("unknown".to_owned(), |output| {
            String::from_utf8_lossy(&output.stdout).trim().to_owned()
        });
    let long = run(initbox().arg("--version"));
    long.expect_code(0);
    let prefix = format!(
        "initbox {} (commit {commit}, target {}-",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    );
    assert!(long.stdout.starts_with(&prefix), "{:?}", long.stdout);
    assert!(long.stdout.ends_with("-linux-gnu)\n") || long.stdout.ends_with("-linux-musl)\n"));
    assert_eq!(long.stdout.lines().count(), 1, "{:?}", long.stdout);
    assert_eq!(run(initbox().arg("-V")).stdout, long.stdout);
}
