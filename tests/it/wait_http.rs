//! wait-http against real servers: accepted statuses, body markers, methods, slow endpoints,
//! redirects, secrets kept out of logs, parallel URLs, TLS through `openssl s_server`, and
//! malformed input.

use std::time::Duration;

use crate::support::expect::Expect;
use crate::support::http::{HttpServer, Response, TlsServer};
use crate::support::{Run, free_port, initbox, run};

/// Runs `initbox wait-http` with these arguments after the global ones.
fn wait_http(global: &[&str], args: &[&str]) -> Run {
    run(initbox()
        .env_remove("SSL_CERT_FILE")
        .args(global)
        .arg("wait-http")
        .args(args))
}

#[test]
fn retries_through_503_until_200_and_logs_the_reason_once() {
    let server = HttpServer::start(|request| match request.number {
        0..=2 => Response::status(503),
        _ => Response::ok("up"),
    });
    let result = wait_http(&["--timeout", "10s"], &[&server.url("/health")]);
    result.expect_code(0);
    assert_eq!(server.requests(), 4, "{}", result.stderr);
    let reason = format!(
        "{}: not ready: HTTP 503 Service Unavailable",
        server.url("/health")
    );
    assert_eq!(
        result.stderr.matches(&reason).count(),
        1,
        "the same reason must be logged once:\n{}",
        result.stderr
    );
    result.expect_stderr(&format!(
        "{}: ready after 4 attempts",
        server.url("/health")
    ));
}

#[test]
fn with_v_every_failed_attempt_is_logged() {
    let server = HttpServer::start(|request| match request.number {
        0..=2 => Response::status(503),
        _ => Response::ok("up"),
    });
    let result = wait_http(&["-v", "--timeout", "10s"], &[&server.url("/")]);
    result.expect_code(0);
    assert_eq!(
        result
            .stderr
            .matches("not ready: HTTP 503 Service Unavailable")
            .count(),
        3,
        "{}",
        result.stderr
    );
}

#[test]
fn a_status_outside_the_list_keeps_waiting_until_the_deadline() {
    let server = HttpServer::always(200);
    let result = wait_http(&["--timeout", "1s"], &["--status", "204", &server.url("/")]);
    result
        .expect_code(124)
        .expect_last_line("deadline of 1s exceeded")
        .expect_last_line(&format!("{} (HTTP 200 OK)", server.url("/")));
    assert!(server.requests() > 1, "{}", server.requests());
}

#[test]
fn the_default_status_list_rejects_404() {
    let server = HttpServer::always(404);
    let result = wait_http(&["--timeout", "500ms"], &[&server.url("/missing")]);
    result
        .expect_code(124)
        .expect_last_line("(HTTP 404 Not Found)");
}

#[test]
fn status_lists_take_codes_and_ranges() {
    let ok = HttpServer::always(200);
    let no_content = HttpServer::always(204);
    let not_found = HttpServer::always(404);
    for server in [&ok, &no_content] {
        wait_http(
            &["--timeout", "5s"],
            &["--status", "200,204,300-399", &server.url("/")],
        )
        .expect_code(0);
    }
    wait_http(
        &["--timeout", "5s"],
        &["--status", "404", &not_found.url("/")],
    )
    .expect_code(0);
}

#[test]
fn malformed_status_lists_are_usage_errors() {
    let port = free_port();
    for bad in ["2xx", "399-300", "600"] {
        let result = wait_http(
            &["--timeout", "5s"],
            &["--status", bad, &format!("http://127.0.0.1:{port}/")],
        );
        result.expect_usage_error(&format!("invalid status list '{bad}'"));
        assert!(
            result.elapsed < Duration::from_secs(3),
            "{:?}",
            result.elapsed
        );
    }
}

#[test]
fn body_without_the_marker_keeps_waiting_and_says_so() {
    let server = HttpServer::start(|_| Response::ok("status: starting"));
    let result = wait_http(
        &["--timeout", "1s"],
        &["--body-contains", "ready", &server.url("/")],
    );
    result
        .expect_code(124)
        .expect_last_line("HTTP 200 OK, but the body does not contain \"ready\"");
    assert!(server.requests() > 1);
}

#[test]
fn body_with_the_marker_succeeds_once_it_appears() {
    let server = HttpServer::start(|request| match request.number {
        0 | 1 => Response::ok("status: starting"),
        _ => Response::ok("status: ready"),
    });
    let result = wait_http(
        &["--timeout", "10s"],
        &["--body-contains", "ready", &server.url("/")],
    );
    result
        .expect_code(0)
        .expect_stderr("not ready: HTTP 200 OK, but the body does not contain \"ready\"");
    assert_eq!(server.requests(), 3);
}

#[test]
fn a_marker_deep_in_a_large_body_is_found() {
    let body = format!("{}ready", "x".repeat(200_000));
    let server = HttpServer::start(move |_| Response::ok(&body));
    wait_http(
        &["--timeout", "5s"],
        &["--body-contains", "ready", &server.url("/")],
    )
    .expect_code(0);
}

#[test]
fn head_with_body_contains_is_a_usage_error() {
    let server = HttpServer::always(200);
    for method in ["HEAD", "head"] {
        let result = wait_http(
            &[],
            &["--method", method, "--body-contains", "x", &server.url("/")],
        );
        result.expect_usage_error("--body-contains");
    }
    assert_eq!(server.requests(), 0);
}

#[test]
fn method_head_sends_head() {
    let server = HttpServer::always(200);
    wait_http(
        &["--timeout", "5s"],
        &["--method", "HEAD", &server.url("/")],
    )
    .expect_code(0);
    let methods: Vec<_> = server
        .received()
        .into_iter()
        .map(|request| request.method)
        .collect();
    assert_eq!(methods, ["HEAD"]);
}

#[test]
fn get_is_the_default_method_and_names_initbox() {
    let server = HttpServer::always(200);
    wait_http(&["--timeout", "5s"], &[&server.url("/path?x=1")]).expect_code(0);
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].method, "GET");
    assert_eq!(received[0].path, "/path?x=1");
    let agent = received[0].header("user-agent").unwrap_or_default();
    assert!(agent.starts_with("initbox/"), "{agent}");
}

/// With -v, a wait of 2 s on an endpoint that answers after 3 s, each attempt cut at 300 ms.
fn wait_on_a_slow_endpoint() -> (HttpServer, Run) {
    let server = HttpServer::start(|_| Response::ok("late").after(Duration::from_secs(3)));
    let result = wait_http(
        &["-v", "--timeout", "2s", "--attempt-timeout", "300ms"],
        &[&server.url("/slow")],
    );
    (server, result)
}

#[test]
fn a_slow_endpoint_ends_each_attempt_at_the_attempt_timeout() {
    let (server, result) = wait_on_a_slow_endpoint();
    result.expect_code(124);
    let timeouts = result
        .stderr
        .lines()
        .filter(|line| {
            line.contains("not ready: no answer within 300ms")
                || line.contains("not ready: timed out")
        })
        .count();
    assert!(
        timeouts >= 3,
        "each attempt must end at --attempt-timeout:\n{}",
        result.stderr
    );
    assert!(server.requests() >= 3, "{}", server.requests());
    // The deadline ends the run; waiting out the delay of each attempt would take 9 s or more.
    assert!(
        result.elapsed >= Duration::from_millis(1900) && result.elapsed < Duration::from_secs(5),
        "{:?}",
        result.elapsed
    );
}

#[test]
fn every_timed_out_attempt_gives_the_same_reason() {
    let (_server, result) = wait_on_a_slow_endpoint();
    result.expect_code(124);
    let reasons: std::collections::BTreeSet<_> = result
        .stderr
        .lines()
        .filter_map(|line| line.split_once(": not ready: "))
        .map(|(_, reason)| reason.split(" (attempt").next().unwrap_or_default())
        .collect();
    // Without -v, a reason that changes is logged again, so a steadily slow endpoint would be
    // reported on every attempt.
    assert_eq!(
        reasons.len(),
        1,
        "one condition, one reason:\n{}",
        result.stderr
    );
}

#[test]
fn a_chain_of_redirects_is_followed() {
    let server = HttpServer::start(|request| match request.path.as_str() {
        "/hop/3" => Response::redirect(302, "/hop/2"),
        "/hop/2" => Response::redirect(302, "/hop/1"),
        "/hop/1" => Response::redirect(302, "/ready"),
        "/ready" => Response::ok("ready"),
        _ => Response::status(404),
    });
    let result = wait_http(
        &["--timeout", "5s"],
        &["--body-contains", "ready", &server.url("/hop/3")],
    );
    result.expect_code(0);
    let paths: Vec<_> = server
        .received()
        .into_iter()
        .map(|request| request.path)
        .collect();
    assert_eq!(paths, ["/hop/3", "/hop/2", "/hop/1", "/ready"]);
}

#[test]
fn a_redirect_loop_fails_with_too_many_redirects() {
    let server = HttpServer::start(|_| Response::redirect(302, "/loop"));
    let result = wait_http(&["--timeout", "1s"], &[&server.url("/loop")]);
    result
        .expect_code(124)
        .expect_last_line(&format!("{} (too many redirects", server.url("/loop")));
}

#[test]
fn header_values_reach_the_server_but_never_the_logs() {
    let server = HttpServer::start(|request| match request.number {
        0 | 1 => Response::status(503),
        _ => Response::ok("up"),
    });
    let result = wait_http(
        &["-v", "--timeout", "10s"],
        &[
            "-H",
            "Authorization: Bearer tok-SECRET",
            "--header",
            "X-Probe: yes",
            &server.url("/"),
        ],
    );
    result.expect_code(0);
    for request in server.received() {
        assert_eq!(request.header("authorization"), Some("Bearer tok-SECRET"));
        assert_eq!(request.header("x-probe"), Some("yes"));
    }
    result.expect_not_in_stderr("SECRET");
}

/// A rejected command line is logged and written to the termination message in full, so these
/// checks read both. The path is given by environment: `--termination-log` is not read when the
/// command line does not parse.
fn expect_usage_error_hiding(args: &[&str], expected: &str, secret: &str) {
    let dir = tempfile::tempdir().unwrap();
    let termination_log = dir.path().join("termination-log");
    let result = run(initbox()
        .env("INITBOX_TERMINATION_LOG", &termination_log)
        .arg("wait-http")
        .args(args));
    result.expect_usage_error(expected);
    let message = std::fs::read_to_string(&termination_log).unwrap_or_default();
    assert!(!message.is_empty(), "no termination message");
    for text in [&result.stderr, &message] {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
    }
}

#[test]
fn a_malformed_header_never_repeats_its_value() {
    let url = "http://127.0.0.1:1/";
    expect_usage_error_hiding(
        &["-H", "Authorization Bearer tok-SECRET", url],
        "invalid header",
        "tok-SECRET",
    );
    expect_usage_error_hiding(
        &["-H", "Authorization: Bearer tok-\u{7f}SECRET", url],
        "invalid value for header 'authorization'",
        "SECRET",
    );
}

#[test]
fn a_rejected_url_never_shows_its_password() {
    expect_usage_error_hiding(
        &["ftp://user:pw-SECRET@example.com/"],
        "scheme 'ftp'",
        "pw-SECRET",
    );
    expect_usage_error_hiding(&["http://user:pw-SECRET@:80/"], "invalid URL", "pw-SECRET");
}

#[test]
fn a_url_password_never_shows_in_logs_or_the_termination_message() {
    let server = HttpServer::always(200);
    let dir = tempfile::tempdir().unwrap();
    let termination_log = dir.path().join("termination-log");
    let url = format!(
        "http://user:pw-SECRET@127.0.0.1:{}/health?token=q-SECRET",
        server.port()
    );
    let result = wait_http(
        &[
            "-v",
            "--timeout",
            "1s",
            "--termination-log",
            termination_log.to_str().unwrap(),
        ],
        &["--status", "204", &url],
    );
    result.expect_code(124);
    let message = std::fs::read_to_string(&termination_log).unwrap();
    for text in [&result.stderr, &message] {
        assert!(!text.contains("SECRET"), "{text}");
        assert!(
            text.contains(&format!(
                "http://user:***@127.0.0.1:{}/health?***",
                server.port()
            )),
            "{text}"
        );
    }
    // The credentials are still used: sent as basic authentication (user:pw-SECRET).
    let received = server.received();
    assert_eq!(
        received[0].header("authorization"),
        Some("Basic dXNlcjpwdy1TRUNSRVQ="),
        "{received:?}"
    );
}

#[test]
fn parallel_urls_name_only_the_one_not_ready() {
    let good = HttpServer::always(200);
    let bad = HttpServer::always(503);
    let result = wait_http(
        &["--timeout", "1s"],
        &[&good.url("/good"), &bad.url("/bad")],
    );
    result
        .expect_code(124)
        .expect_last_line(&format!(
            "not ready: {} (HTTP 503 Service Unavailable)",
            bad.url("/bad")
        ))
        .expect_last_line_without(&good.url("/good"))
        .expect_stderr(&format!("{}: ready after 1 attempt", good.url("/good")));
    assert_eq!(good.requests(), 1);
    assert!(bad.requests() > 1);
}

#[test]
fn nothing_listening_keeps_waiting_with_connection_refused() {
    let url = format!("http://127.0.0.1:{}/", free_port());
    let result = wait_http(&["--timeout", "500ms"], &[&url]);
    result
        .expect_code(124)
        .expect_last_line(&format!("{url} (cannot connect"));
    let last = result.last_line().to_lowercase();
    assert!(last.contains("connection refused"), "{last}");
}

#[test]
fn https_with_cacert_succeeds_by_name_and_by_ip() {
    let tls = TlsServer::start();
    let cacert = tls.ca_cert.to_str().unwrap();
    for host in ["localhost", "127.0.0.1"] {
        wait_http(&["--timeout", "5s"], &["--cacert", cacert, &tls.url(host)]).expect_code(0);
    }
}

#[test]
fn https_without_the_ca_fails_on_the_certificate() {
    let tls = TlsServer::start();
    let result = wait_http(&["--timeout", "1s"], &[&tls.url("localhost")]);
    result
        .expect_code(124)
        .expect_last_line(&tls.url("localhost"))
        .expect_last_line("UnknownIssuer");
}

#[test]
fn https_insecure_succeeds_with_a_warning() {
    let tls = TlsServer::start();
    let result = wait_http(&["--timeout", "5s"], &["--insecure", &tls.url("localhost")]);
    result.expect_code(0);
    let warnings: Vec<_> = result
        .stderr_lines()
        .into_iter()
        .filter(|line| line.contains("WARN"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", result.stderr);
    assert!(warnings[0].contains("--insecure"), "{}", result.stderr);
}

#[test]
fn an_unreadable_cacert_is_a_usage_error() {
    let tls = TlsServer::start();
    let result = wait_http(
        &["--timeout", "5s"],
        &["--cacert", "/nonexistent.pem", &tls.url("localhost")],
    );
    result.expect_usage_error("/nonexistent.pem");
}

#[test]
fn cacert_and_insecure_conflict() {
    let result = wait_http(
        &[],
        &[
            "--cacert",
            "/etc/hostname",
            "--insecure",
            "https://localhost/",
        ],
    );
    result.expect_usage_error("--insecure");
}

#[test]
fn malformed_urls_are_usage_errors() {
    for (url, expected) in [
        ("ftp://x/", "scheme 'ftp'"),
        ("not a url", "invalid URL"),
        ("http://", "invalid URL"),
    ] {
        let result = wait_http(&["--timeout", "5s"], &[url]);
        result.expect_usage_error(expected);
    }
}

#[test]
fn exec_runs_after_the_url_is_ready() {
    let server = HttpServer::always(200);
    let result = wait_http(
        &["--timeout", "5s"],
        &[&server.url("/"), "--", "sh", "-c", "echo started"],
    );
    result.expect_code(0);
    assert_eq!(result.stdout.trim(), "started");
    assert_eq!(server.requests(), 1);
}
