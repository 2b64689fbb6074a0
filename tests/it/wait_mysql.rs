//! wait-mysql and mysql:// against real MariaDB servers: a server still starting, a user and a
//! database created while initbox waits, read_only, --fail-fast, TLS, and passwords never shown.

use std::time::Duration;

use crate::support::expect::Expect;
use crate::support::mariadb::{APP_DB, APP_PASSWORD, APP_USER, MariaDb};
use crate::support::waiting::{run_changed_after, within};
use crate::support::{Run, free_port, run, skip_unless_root};

/// `initbox wait URI` with `sql` run on the server a second in: what the wait was waiting for.
fn wait_until_sql(server: &MariaDb, uri: &str, sql: &str) -> Run {
    let waiting = &mut within("30s", &["wait", uri]);
    run_changed_after(waiting, Duration::from_millis(1000), || server.sql(sql))
}

#[test]
fn waits_for_a_server_that_is_still_starting() {
    if skip_unless_root("waits_for_a_server_that_is_still_starting") {
        return;
    }
    let prepared = MariaDb::prepare();
    let port = prepared.port;
    let url = format!("mysql://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{port}/{APP_DB}");
    run_changed_after(
        &mut within("40s", &["wait-mysql", "--url", &url]),
        Duration::from_millis(500),
        || prepared.launch(&[]),
    )
    .expect_code(0)
    .expect_stderr("not ready: connection refused")
    .expect_stderr(&format!(
        "mysql://{APP_USER}:***@127.0.0.1:{port}/{APP_DB}: ready"
    ))
    .expect_not_in_stderr(APP_PASSWORD);
}

#[test]
fn a_user_created_while_waiting_is_logged_once_then_let_in() {
    if skip_unless_root("a_user_created_while_waiting_is_logged_once_then_let_in") {
        return;
    }
    let server = MariaDb::start();
    let url = server.url("late", "late-pw", APP_DB);
    let create = format!(
        "CREATE USER 'late'@'%' IDENTIFIED BY 'late-pw'; GRANT ALL ON {APP_DB}.* TO 'late'@'%';"
    );
    let result = run_changed_after(
        &mut within("30s", &["wait-mysql", "--url", &url]),
        Duration::from_millis(1500),
        || server.sql(&create),
    );
    result.expect_code(0);
    let denied: Vec<&str> = result
        .stderr_lines()
        .into_iter()
        // MariaDB answers 1698 for a user it does not know, MySQL 1045.
        .filter(|line| line.contains("(28000): Access denied for user 'late'"))
        .collect();
    assert_eq!(
        denied.len(),
        1,
        "logged once, at first sight:\n{}",
        result.stderr
    );
    result.expect_not_in_stderr("late-pw");
}

#[test]
fn a_database_created_late_and_fail_fast() {
    if skip_unless_root("a_database_created_late_and_fail_fast") {
        return;
    }
    let server = MariaDb::start();
    server.sql(&format!("GRANT ALL ON later.* TO '{APP_USER}'@'%';"));
    let url = server.url(APP_USER, APP_PASSWORD, "later");

    let fast = ["wait-mysql", "--fail-fast", "--url", &url];
    run(&mut within("30s", &fast))
        .expect_failed_at_once("ERROR 1049 (42000): Unknown database 'later'");

    wait_until_sql(&server, &url, "CREATE DATABASE later;")
        .expect_code(0)
        .expect_stderr("ERROR 1049");
}

#[test]
fn read_write_waits_while_the_server_is_read_only() {
    if skip_unless_root("read_write_waits_while_the_server_is_read_only") {
        return;
    }
    let server = MariaDb::start();
    server.sql("SET GLOBAL read_only = ON;");
    let url = server.url(APP_USER, APP_PASSWORD, APP_DB);
    // Without read_write, a read-only server is ready.
    run(&mut within("20s", &["wait-mysql", "--url", &url])).expect_code(0);

    let read_write = format!("{url}?read_write");
    wait_until_sql(&server, &read_write, "SET GLOBAL read_only = OFF;")
        .expect_code(0)
        .expect_stderr("not ready: the server is read-only (read_only is ON)");
}

#[test]
fn tls_is_used_when_offered_and_verified_when_asked() {
    if skip_unless_root("tls_is_used_when_offered_and_verified_when_asked") {
        return;
    }
    let server = MariaDb::start();
    server.sql(&format!(
        "CREATE USER 'tls_only'@'%' IDENTIFIED BY 'tls-pw' REQUIRE SSL; \
         GRANT ALL ON {APP_DB}.* TO 'tls_only'@'%';"
    ));
    let url = server.url("tls_only", "tls-pw", APP_DB);
    // The default (PREFERRED) uses the server's TLS, so a user who must use TLS gets in.
    run(&mut within("20s", &["wait-mysql", "--url", &url])).expect_code(0);
    let ca = server.ca_cert.to_str().unwrap();
    let verified = format!(
        "mysql://tls_only:tls-pw@localhost:{}/{APP_DB}?ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}",
        server.port
    );
    run(&mut within("20s", &["wait", &verified])).expect_code(0);

    let plain = format!("{url}?ssl-mode=DISABLED");
    run(&mut within("1500ms", &["wait", &plain]))
        .expect_code(124)
        .expect_stderr("ERROR 1045 (28000): Access denied");
    // Verification against the system bundle fails on the self-signed certificate.
    let unverified = format!("{url}?ssl-mode=VERIFY_CA");
    run(&mut within("1500ms", &["wait", &unverified]))
        .expect_code(124)
        .expect_stderr("TLS:");
}

#[test]
fn bad_settings_fail_before_any_waiting() {
    for (args, named) in [
        (
            vec!["wait-mysql", "--url", "postgres://app:S3CRET@db/app"],
            "expected mysql:// or mariadb://",
        ),
        (
            vec![
                "wait-mysql",
                "--url",
                "mysql://app:S3CRET@db/app?ssl-mode=sometimes",
            ],
            "'sometimes'",
        ),
        (
            vec![
                "wait",
                "mysql://app:S3CRET@db/app?password_file=/nonexistent/pw",
            ],
            "/nonexistent/pw",
        ),
    ] {
        run(&mut within("1m", &args))
            .expect_code(2)
            .expect_last_line(named)
            .expect_not_in_stderr("S3CRET");
    }
    // Not a MySQL server: the port's answer is named, and the wait goes on until the deadline.
    let closed = format!("mysql://app@127.0.0.1:{}/x", free_port());
    run(&mut within("700ms", &["wait", &closed])).expect_code(124);
}

#[test]
fn too_many_connections_is_waited_out_in_the_servers_words() {
    if skip_unless_root("too_many_connections_is_waited_out_in_the_servers_words") {
        return;
    }
    // 10 is MariaDB's smallest max_connections; root keeps its one extra connection.
    let server = MariaDb::start_with(&["--max-connections=10"]);
    let mut holders: Vec<_> = (0..10)
        .map(|_| {
            std::process::Command::new("/usr/bin/mariadb")
                .args([
                    "--no-defaults",
                    "-h",
                    "127.0.0.1",
                    "-P",
                    &server.port.to_string(),
                ])
                .args(["-u", APP_USER, &format!("-p{APP_PASSWORD}")])
                .args(["-e", "SELECT SLEEP(4)"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    // No polling while they connect: a query of ours would take a slot from one of them.
    std::thread::sleep(Duration::from_millis(1500));
    let url = server.url(APP_USER, APP_PASSWORD, APP_DB);
    let result = run(&mut within("30s", &["wait-mysql", "--url", &url]));
    for holder in &mut holders {
        assert!(
            holder.wait().unwrap().success(),
            "a holder could not connect"
        );
    }
    result
        .expect_code(0)
        .expect_stderr("not ready: ERROR 1040 (08004): Too many connections");
}
