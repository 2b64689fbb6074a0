//! wait-redis against real Redis servers: LOADING, credentials, ACL users, TLS, roles and
//! replicas, consecutive successes, and passwords kept out of the logs.

use std::time::Duration;

use crate::support::expect::Expect;
use crate::support::redis::Redis;
use crate::support::waiting::within;
use crate::support::{Run, initbox, run};

/// `initbox --timeout TIMEOUT wait-redis ARGS...`, run to the end.
fn wait_redis(timeout: &str, args: &[&str]) -> Run {
    run(within(timeout, &["wait-redis"]).args(args))
}

#[test]
fn ready_when_pong_and_loaded() {
    let redis = Redis::start();
    run(initbox().args(["wait-redis", "--url", &redis.url()]))
        .expect_code(0)
        .expect_stderr(&format!("redis://127.0.0.1:{}/0: ready", redis.port));
}

#[test]
fn does_not_exit_while_the_server_answers_loading() {
    let redis = Redis::start_loading(Some("s3cret-pw"));
    assert!(redis.is_loading(), "the server must start out LOADING");
    let result = wait_redis("60s", &["--url", &redis.url()]);
    result.expect_code(0);
    assert!(
        !redis.is_loading(),
        "exited 0 while the server was still LOADING"
    );
    result
        .expect_stderr("LOADING Redis is loading the dataset in memory")
        .expect_not_in_stderr("s3cret-pw");
    assert!(result.elapsed > Duration::from_secs(1));
}

#[test]
fn a_wrong_password_is_retried_and_logged_once_or_fails_fast() {
    let redis = Redis::start_with_password("right-pw");
    let url = format!("redis://:wrong-SECRET@127.0.0.1:{}/0", redis.port);
    let slow = run(&mut within(
        "1200ms",
        &["--interval", "50ms", "wait-redis", "--url", &url],
    ));
    slow.expect_code(124);
    assert_eq!(
        slow.stderr.matches("WRONGPASS").count(),
        2,
        "one warning and the final line:\n{}",
        slow.stderr
    );
    slow.expect_not_in_stderr("wrong-SECRET")
        .expect_stderr(&format!("redis://:***@127.0.0.1:{}/0", redis.port));

    let fast = wait_redis("1m", &["--fail-fast", "--url", &url]);
    fast.expect_code(1).expect_not_in_stderr("wrong-SECRET");
    assert!(fast.elapsed < Duration::from_secs(10));

    // No password at all: the server says NOAUTH.
    let none = format!("redis://127.0.0.1:{}", redis.port);
    run(initbox().args(["wait-redis", "--fail-fast", "--url", &none]))
        .expect_code(1)
        .expect_stderr("NOAUTH");
}

#[test]
fn acl_users_and_password_files_authenticate() {
    let redis = Redis::start_with_acl_user("appuser", "acl-pw");
    run(initbox().args(["wait-redis", "--url", &redis.url()])).expect_code(0);

    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "acl-pw\n").unwrap();
    let url = format!("redis://appuser@127.0.0.1:{}/0", redis.port);
    run(initbox().env("REDIS_URL", url).args([
        "wait-redis",
        "--password-file",
        password_file.to_str().unwrap(),
    ]))
    .expect_code(0)
    .expect_stderr("redis://appuser:***@");
}

#[test]
fn tls_servers_are_verified_against_the_given_ca() {
    let redis = Redis::start_tls();
    let ca = redis.ca_cert.clone().unwrap();
    let url = redis.url();
    run(initbox().args([
        "wait-redis",
        "--url",
        &url,
        "--cacert",
        ca.to_str().unwrap(),
    ]))
    .expect_code(0);
    wait_redis("1s", &["--url", &url])
        .expect_code(124)
        .expect_stderr("certificate");
}

#[test]
fn roles_and_replica_links_are_checked() {
    let master = Redis::start();
    run(initbox().args(["wait-redis", "--role", "master", "--url", &master.url()])).expect_code(0);
    wait_redis("600ms", &["--role", "replica", "--url", &master.url()])
        .expect_code(124)
        .expect_stderr("role is master, waiting for replica");

    let replica = master.start_replica_of();
    run(initbox().args(["wait-redis", "--role", "replica", "--url", &replica.url()]))
        .expect_code(0);

    let orphan = Redis::start_orphan_replica();
    wait_redis("600ms", &["--role", "replica", "--url", &orphan.url()])
        .expect_code(124)
        .expect_stderr("link to its master is down");
}

#[test]
fn success_threshold_needs_checks_in_a_row() {
    let redis = Redis::start();
    let url = redis.url();
    let args = [
        "--interval",
        "20ms",
        "wait-redis",
        "--success-threshold",
        "3",
    ];
    run(initbox().args(args).args(["--url", &url]))
        .expect_code(0)
        .expect_stderr("ready after 3 attempts");
}

#[test]
fn a_database_the_server_lacks_fails_at_once() {
    let redis = Redis::start();
    let url = format!("redis://127.0.0.1:{}/999", redis.port);
    wait_redis("1m", &["--url", &url])
        .expect_code(1)
        .expect_stderr("DB index is out of range");
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
        run(initbox().args(["wait-redis", "--url", url]).args(extra))
            .expect_usage_error(named)
            .expect_not_in_stderr("pw-SECRET");
    }
    run(initbox().arg("wait-redis"))
        .expect_code(2)
        .expect_stderr("--url");
}
