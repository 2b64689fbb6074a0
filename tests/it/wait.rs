//! `initbox wait URI...` against real servers of several kinds at once: one deadline, one
//! final line naming what is not ready, URIs from INITBOX_WAIT, query parameters as options,
//! and malformed URIs rejected before any waiting.

use std::net::TcpListener;
use std::time::Duration;

use crate::support::expect::Expect;
use crate::support::grpc::GrpcServer;
use crate::support::http::{HttpServer, Response};
use crate::support::redis::Redis;
use crate::support::waiting::{run_changed_after, within};
use crate::support::{free_port, initbox, run};

#[test]
fn five_kinds_at_once_one_late_one_never() {
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let http = HttpServer::start(|request| {
        if request.path == "/health?verbose=1" {
            Response::ok("{\"status\":\"UP\"}")
        } else {
            Response::status(404)
        }
    });
    let redis = Redis::start_with_password("r3dis-SECRET");
    let mut grpc = GrpcServer::start(&[("-", "NOT_SERVING")]);
    let dir = tempfile::tempdir().unwrap();
    let never = dir.path().join("never-written");
    let uris = [
        format!("tcp://{}", tcp.local_addr().unwrap()),
        format!("{}?verbose=1&status=200&body=UP", http.url("/health")),
        format!(
            "redis://:r3dis-SECRET@127.0.0.1:{}/0?role=master",
            redis.port
        ),
        format!("grpc://127.0.0.1:{}", grpc.port),
        format!("file://{}?nonempty", never.display()),
    ];
    let result = run_changed_after(
        within("4s", &["wait"]).args(&uris),
        Duration::from_millis(1000),
        || grpc.set("-", "SERVING"),
    );
    result.expect_code(124);
    assert!(
        result.elapsed >= Duration::from_secs(4),
        "{:?}",
        result.elapsed
    );
    for ready in [
        uris[0].as_str(),
        &http.url("/health?***"),
        &format!("redis://:***@127.0.0.1:{}/0", redis.port),
        &uris[3],
    ] {
        result.expect_stderr(&format!("{ready}: ready after"));
    }
    result
        .expect_stderr("health status NOT_SERVING")
        .expect_not_in_stderr("r3dis-SECRET");
    assert_eq!(
        result
            .last_line()
            .split_once("ERROR ")
            .map(|(_, message)| message),
        Some(
            format!(
                "deadline of 4s exceeded; not ready: file://{} (no such file or directory)",
                never.display()
            )
            .as_str()
        ),
        "{}",
        result.stderr
    );
}

#[test]
fn uris_come_from_initbox_wait_and_a_file_written_late_is_seen() {
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("ready");
    let list = format!(
        "tcp://{}\n  file://{}?nonempty ",
        tcp.local_addr().unwrap(),
        flag.display()
    );
    // Written empty first, then with something in it half a second later: attempts every 100 ms
    // at most, so that one falls in that half second (the default backoff may step over it).
    let often = ["--max-interval", "100ms"];
    let exec = ["wait", "--", "sh", "-c", "echo started"];
    let result = run_changed_after(
        within("20s", &often).args(exec).env("INITBOX_WAIT", &list),
        Duration::from_millis(500),
        || {
            std::fs::write(&flag, "").unwrap();
            std::thread::sleep(Duration::from_millis(500));
            std::fs::write(&flag, "yes").unwrap();
        },
    );
    result
        .expect_code(0)
        .expect_stderr("not ready: no such file or directory")
        .expect_stderr("not ready: the file is empty");
    assert_eq!(result.stdout.trim(), "started");
}

#[test]
fn dns_and_postgres_style_parameters_reach_their_probes() {
    // A postgres:// URI's own libpq options (sslmode) and initbox's (fail_fast) are told apart:
    // a bad sslmode is libpq's error, named before any waiting.
    let uri = "postgres://app:S3CRET@127.0.0.1:1/app?fail_fast&sslmode=sometimes";
    run(&mut within("1m", &["wait", uri]))
        .expect_code(2)
        .expect_stderr("unknown sslmode 'sometimes'")
        .expect_not_in_stderr("S3CRET");
}

#[test]
fn malformed_uris_are_rejected_before_any_waiting() {
    let closed = format!("tcp://127.0.0.1:{}", free_port());
    for (uri, named) in [
        ("db:5432", "unknown scheme 'db'"),
        ("tcp://db", "'db'"),
        ("dns:db?type=MX", "'MX'"),
        ("http://api/?status=abc", "invalid parameter 'status'"),
        ("file:///x?bogus", "unknown parameter 'bogus'"),
        ("redis://:S3CRET@h/0?role=leader", "role 'leader'"),
    ] {
        let result = run(&mut within("1m", &["wait", &closed, uri]));
        result
            .expect_code(2)
            .expect_last_line(named)
            .expect_not_in_stderr("S3CRET");
        assert!(result.elapsed < Duration::from_secs(5));
    }
    run(initbox().env_remove("INITBOX_WAIT").args(["wait"]))
        .expect_code(2)
        .expect_stderr("INITBOX_WAIT");
}
