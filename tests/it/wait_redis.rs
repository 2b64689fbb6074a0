//! wait-redis against real Redis servers: LOADING, credentials, ACL users, TLS, roles and
//! replicas, consecutive successes, and passwords kept out of the logs.

use std::time::Duration;

use crate::support::redis::Redis;
use crate::support::{initbox, run};

#[test]
fn ready_when_pong_and_loaded() {
    let redis = Redis::start();
    let result = run(initbox().args(["wait-redis", "--url", &redis.url()]));
    result.expect_code(0);
    assert!(
        result
            .stderr
            .contains(&format!("redis://127.0.0.1:{}/0: ready", redis.port)),
        "{}",
        result.stderr
    );
}

#[test]
fn does_not_exit_while_the_server_answers_loading() {
    let redis = Redis::start_loading(Some("s3cret-pw"));
    assert!(redis.is_loading(), "the server must start out LOADING");
    let result = run(initbox().args(["--timeout", "60s", "wait-redis", "--url", &redis.url()]));
    result.expect_code(0);
    assert!(
        !redis.is_loading(),
        "exited 0 while the server was still LOADING"
    );
    assert!(
        result
            .stderr
            .contains("LOADING Redis is loading the dataset in memory"),
        "{}",
        result.stderr
    );
    assert!(result.elapsed > Duration::from_secs(1));
    assert!(!result.stderr.contains("s3cret-pw"));
}

#[test]
fn a_wrong_password_is_retried_and_logged_once_or_fails_fast() {
    let redis = Redis::start_with_password("right-pw");
    let url = format!("redis://:wrong-SECRET@127.0.0.1:{}/0", redis.port);
    let slow = run(initbox().args([
        "--timeout",
        "1200ms",
        "--interval",
        "50ms",
        "wait-redis",
        "--url",
        &url,
    ]));
    slow.expect_code(124);
    assert_eq!(
        slow.stderr.matches("WRONGPASS").count(),
        2,
        "one warning and the final line:\n{}",
        slow.stderr
    );
    assert!(!slow.stderr.contains("wrong-SECRET"));
    assert!(
        slow.stderr
            .contains(&format!("redis://:***@127.0.0.1:{}/0", redis.port)),
        "{}",
        slow.stderr
    );

    let fast = run(initbox().args([
        "--timeout",
        "1m",
        "wait-redis",
        "--fail-fast",
        "--url",
        &url,
    ]));
    fast.expect_code(1);
    assert!(fast.elapsed < Duration::from_secs(10));
    assert!(!fast.stderr.contains("wrong-SECRET"));

    // No password at all: the server says NOAUTH.
    let none = run(initbox().args([
        "wait-redis",
        "--fail-fast",
        "--url",
        &format!("redis://127.0.0.1:{}", redis.port),
    ]));
    none.expect_code(1);
    assert!(none.stderr.contains("NOAUTH"), "{}", none.stderr);
}

#[test]
fn acl_users_and_password_files_authenticate() {
    let redis = Redis::start_with_acl_user("appuser", "acl-pw");
    run(initbox().args(["wait-redis", "--url", &redis.url()])).expect_code(0);

    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "acl-pw\n").unwrap();
    let result = run(initbox()
        .env(
            "REDIS_URL",
            format!("redis://appuser@127.0.0.1:{}/0", redis.port),
        )
        .args([
            "wait-redis",
            "--password-file",
            password_file.to_str().unwrap(),
        ]));
    result.expect_code(0);
    assert!(
        result.stderr.contains("redis://appuser:***@"),
        "{}",
        result.stderr
    );
}

#[test]
fn tls_servers_are_verified_against_the_given_ca() {
    let redis = Redis::start_tls();
    let ca = redis.ca_cert.clone().unwrap();
    run(initbox().args([
        "wait-redis",
        "--url",
        &redis.url(),
        "--cacert",
        ca.to_str().unwrap(),
    ]))
    .expect_code(0);
    let unknown = run(initbox().args(["--timeout", "1s", "wait-redis", "--url", &redis.url()]));
    unknown.expect_code(124);
    assert!(unknown.stderr.contains("certificate"), "{}", unknown.stderr);
}

#[test]
fn roles_and_replica_links_are_checked() {
    let master = Redis::start();
    run(initbox().args(["wait-redis", "--role", "master", "--url", &master.url()])).expect_code(0);
    let wrong = run(initbox().args([
        "--timeout",
        "600ms",
        "wait-redis",
        "--role",
        "replica",
        "--url",
        &master.url(),
    ]));
    wrong.expect_code(124);
    assert!(
        wrong.stderr.contains("role is master, waiting for replica"),
        "{}",
        wrong.stderr
    );

    let replica = master.start_replica_of();
    run(initbox().args(["wait-redis", "--role", "replica", "--url", &replica.url()]))
        .expect_code(0);

    let orphan = Redis::start_orphan_replica();
    let down = run(initbox().args([
        "--timeout",
        "600ms",
        "wait-redis",
        "--role",
        "replica",
        "--url",
        &orphan.url(),
    ]));
    down.expect_code(124);
    assert!(
        down.stderr.contains("link to its master is down"),
        "{}",
        down.stderr
    );
}

#[test]
fn success_threshold_needs_checks_in_a_row() {
    let redis = Redis::start();
    let result = run(initbox().args([
        "--interval",
        "20ms",
        "wait-redis",
        "--success-threshold",
        "3",
        "--url",
        &redis.url(),
    ]));
    result.expect_code(0);
    assert!(
        result.stderr.contains("ready after 3 attempts"),
        "{}",
        result.stderr
    );
}

#[test]
fn a_database_the_server_lacks_fails_at_once() {
    let redis = Redis::start();
    let result = run(initbox().args([
        "--timeout",
        "1m",
        "wait-redis",
        "--url",
        &format!("redis://127.0.0.1:{}/999", redis.port),
    ]));
    result.expect_code(1);
    assert!(
        result.stderr.contains("DB index is out of range"),
        "{}",
        result.stderr
    );
}

#[test]
fn bad_urls_are_usage_errors() {
    for (url, extra, named) in [
        ("http://127.0.0.1:6379", None, "'http'"),
        ("redis://127.0.0.1:6379/zero", None, "'zero'"),
        ("not a url", None, "invalid Redis URL"),
        (
            "redis://:pw-SECRET@127.0.0.1:6379",
            Some("--cacert=/tmp/x.pem"),
            "rediss://",
        ),
    ] {
        let result = run(initbox().args(["wait-redis", "--url", url]).args(extra));
        assert_eq!(result.code, Some(2), "{url}: {}", result.stderr);
        assert_eq!(result.stderr_lines().len(), 1, "{url}: {}", result.stderr);
        assert!(result.stderr.contains(named), "{url}: {}", result.stderr);
        assert!(!result.stderr.contains("pw-SECRET"));
    }
    let missing = run(initbox().arg("wait-redis"));
    missing.expect_code(2);
    assert!(missing.stderr.contains("--url"), "{}", missing.stderr);
}
