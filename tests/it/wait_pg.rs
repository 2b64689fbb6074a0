//! wait-pg against real PostgreSQL 15 servers: a server held in 57P03, too many clients,
//! credentials and databases that appear late, --query, --read-write, TLS modes, libpq
//! variables, and passwords kept out of every log line.

use std::time::Duration;

use crate::support::postgres::{
    APP_DB, APP_PASSWORD, APP_USER, MD5_PASSWORD, MD5_USER, Postgres, SSL_ONLY_PASSWORD,
    SSL_ONLY_USER,
};
use crate::support::{finish, initbox, run, spawn, wait_until};

fn app_url(pg: &Postgres) -> String {
    pg.url(APP_USER, APP_PASSWORD, APP_DB)
}

/// Fails the test if a password shows up anywhere in the output.
fn assert_no_password(output: &str, password: &str) {
    assert!(!output.contains(password), "password leaked:\n{output}");
}

#[test]
fn ready_once_authenticated_and_answering() {
    let pg = Postgres::start();
    let result = run(initbox().args(["wait-pg", "--url", &app_url(&pg)]));
    result.expect_code(0);
    assert!(
        result.stderr.contains(&format!(
            "postgres://app:***@127.0.0.1:{}/app: ready",
            pg.port
        )),
        "{}",
        result.stderr
    );
    assert_no_password(&result.stderr, APP_PASSWORD);
    // md5-stored passwords authenticate too.
    run(initbox().args([
        "wait-pg",
        "--url",
        &pg.url(MD5_USER, MD5_PASSWORD, "postgres"),
    ]))
    .expect_code(0);
}

#[test]
fn a_starting_server_is_not_ready_until_it_can_answer() {
    let primary = Postgres::start();
    let standby = primary.standby_stuck_starting();
    let url = standby.url(APP_USER, APP_PASSWORD, APP_DB);
    let (child, started) = spawn(initbox().args(["--timeout", "60s", "wait-pg", "--url", &url]));
    // The port is open, but the server answers 57P03: initbox must keep waiting.
    std::thread::sleep(Duration::from_millis(1500));
    standby.release();
    let result = finish(child, started);
    result.expect_code(0);
    assert!(result.elapsed >= Duration::from_millis(1500));
    assert!(
        result
            .stderr
            .contains("FATAL 57P03: the database system is starting up"),
        "{}",
        result.stderr
    );
}

#[test]
fn too_many_clients_is_retried() {
    let pg = Postgres::start_with(&[("max_connections", "3")]);
    let held = pg.hold_connections(3);
    let (child, started) =
        spawn(initbox().args(["--timeout", "60s", "wait-pg", "--url", &app_url(&pg)]));
    std::thread::sleep(Duration::from_millis(1000));
    drop(held);
    let result = finish(child, started);
    result.expect_code(0);
    assert!(result.stderr.contains("53300"), "{}", result.stderr);
}

#[test]
fn a_wrong_password_is_retried_and_logged_once_or_fails_fast() {
    let pg = Postgres::start();
    let url = pg.url(APP_USER, "wrong-PASSWORD", APP_DB);
    let result = run(initbox().args([
        "--timeout",
        "1500ms",
        "--interval",
        "50ms",
        "wait-pg",
        "--url",
        &url,
    ]));
    result.expect_code(124);
    assert_eq!(
        result.stderr.matches("28P01").count(),
        2,
        "one warning and the final line:\n{}",
        result.stderr
    );
    assert_no_password(&result.stderr, "wrong-PASSWORD");

    let dir = tempfile::tempdir().unwrap();
    let termination = dir.path().join("termination-log");
    let fast = run(initbox().args([
        "--timeout",
        "1m",
        "--termination-log",
        termination.to_str().unwrap(),
        "wait-pg",
        "--fail-fast",
        "--url",
        &url,
    ]));
    fast.expect_code(1);
    assert!(fast.elapsed < Duration::from_secs(10));
    let message = std::fs::read_to_string(&termination).unwrap();
    assert!(
        message.contains("FATAL 28P01: password authentication failed for user \"app\""),
        "{message}"
    );
    assert!(message.contains("postgres://app:***@"), "{message}");
    assert_no_password(&message, "wrong-PASSWORD");
}

#[test]
fn a_database_created_while_waiting_is_picked_up() {
    let pg = Postgres::start();
    let url = pg.url(APP_USER, APP_PASSWORD, "late_db");
    let (child, started) = spawn(initbox().args(["--timeout", "60s", "wait-pg", "--url", &url]));
    std::thread::sleep(Duration::from_millis(800));
    pg.psql("postgres", "CREATE DATABASE late_db OWNER app");
    let result = finish(child, started);
    result.expect_code(0);
    assert!(result.stderr.contains("FATAL 3D000"), "{}", result.stderr);

    let fast = run(initbox().args([
        "wait-pg",
        "--fail-fast",
        "--url",
        &pg.url(APP_USER, APP_PASSWORD, "never_db"),
    ]));
    fast.expect_code(1);
    assert!(fast.stderr.contains("3D000"), "{}", fast.stderr);
}

#[test]
fn query_waits_for_its_table_and_a_true_row() {
    let pg = Postgres::start();
    let query = "SELECT max(version) >= 42 FROM schema_migrations";
    let (child, started) = spawn(initbox().args([
        "--timeout",
        "60s",
        "wait-pg",
        "--url",
        &app_url(&pg),
        "--query",
        query,
    ]));
    std::thread::sleep(Duration::from_millis(600));
    pg.psql(APP_DB, "CREATE TABLE schema_migrations (version int); GRANT ALL ON schema_migrations TO app; INSERT INTO schema_migrations VALUES (41)");
    std::thread::sleep(Duration::from_millis(600));
    pg.psql(APP_DB, "INSERT INTO schema_migrations VALUES (42)");
    let result = finish(child, started);
    result.expect_code(0);
    assert!(
        result.stderr.contains("42P01"),
        "the missing table is waited for:\n{}",
        result.stderr
    );
    assert!(
        result.stderr.contains("none with true"),
        "a false row is waited for:\n{}",
        result.stderr
    );
}

#[test]
fn a_broken_query_fails_at_once_with_the_servers_message() {
    let pg = Postgres::start();
    let syntax = run(initbox().args([
        "--timeout",
        "1m",
        "wait-pg",
        "--url",
        &app_url(&pg),
        "--query",
        "SELEC 1",
    ]));
    syntax.expect_code(1);
    assert!(syntax.elapsed < Duration::from_secs(10));
    let last = syntax.stderr_lines().last().unwrap().to_string();
    assert!(
        last.contains("ERROR 42601: syntax error at or near \"SELEC\" (at character 1)"),
        "{last}"
    );

    let not_boolean = run(initbox().args([
        "wait-pg",
        "--url",
        &app_url(&pg),
        "--query",
        "SELECT 1 AS one",
    ]));
    not_boolean.expect_code(1);
    assert!(
        not_boolean
            .stderr
            .contains("boolean first column; 'one' is int4"),
        "{}",
        not_boolean.stderr
    );
}

#[test]
fn read_write_waits_for_a_primary() {
    let primary = Postgres::start();
    let standby = primary.standby_stuck_starting();
    standby.release();
    standby.wait_ready();
    let on_standby = run(initbox().args([
        "--timeout",
        "1s",
        "wait-pg",
        "--read-write",
        "--url",
        &standby.url(APP_USER, APP_PASSWORD, APP_DB),
    ]));
    on_standby.expect_code(124);
    assert!(
        on_standby.stderr.contains("in recovery"),
        "{}",
        on_standby.stderr
    );
    run(initbox().args(["wait-pg", "--read-write", "--url", &app_url(&primary)])).expect_code(0);
}

#[test]
fn sslmodes_have_their_libpq_meanings() {
    let pg = Postgres::start();
    let ca = pg.ca_cert.to_str().unwrap();
    let with = |host: &str, user: &str, password: &str, params: &str| {
        format!(
            "postgresql://{user}:{password}@{host}:{}/postgres?{params}",
            pg.port
        )
    };
    let ok = |url: String| {
        let result = run(initbox().args(["--timeout", "10s", "wait-pg", "--url", &url]));
        result.expect_code(0);
    };
    ok(with(
        "localhost",
        APP_USER,
        APP_PASSWORD,
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ));
    ok(with(
        "127.0.0.1",
        APP_USER,
        APP_PASSWORD,
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ));
    ok(with(
        "127.0.0.1",
        APP_USER,
        APP_PASSWORD,
        &format!("sslmode=verify-ca&sslrootcert={ca}"),
    ));
    ok(with(
        "127.0.0.1",
        SSL_ONLY_USER,
        SSL_ONLY_PASSWORD,
        "sslmode=require",
    ));
    ok(with(
        "127.0.0.1",
        SSL_ONLY_USER,
        SSL_ONLY_PASSWORD,
        "sslmode=prefer",
    ));

    // Without TLS the server's pg_hba refuses this user: its own words are shown.
    let plain = run(initbox().args([
        "--timeout",
        "1s",
        "wait-pg",
        "--url",
        &with(
            "127.0.0.1",
            SSL_ONLY_USER,
            SSL_ONLY_PASSWORD,
            "sslmode=disable",
        ),
    ]));
    plain.expect_code(124);
    assert!(
        plain.stderr.contains("28000") && plain.stderr.contains("no encryption"),
        "{}",
        plain.stderr
    );

    // verify-full against a CA that did not sign the server's certificate is refused.
    let other = tempfile::tempdir().unwrap();
    let (other_ca, _) = crate::support::postgres::self_signed_cert(other.path());
    let wrong_ca = run(initbox().args([
        "--timeout",
        "1s",
        "wait-pg",
        "--url",
        &with(
            "localhost",
            APP_USER,
            APP_PASSWORD,
            &format!("sslmode=verify-full&sslrootcert={}", other_ca.display()),
        ),
    ]));
    wrong_ca.expect_code(124);
    assert!(
        wrong_ca.stderr.to_lowercase().contains("certificate"),
        "{}",
        wrong_ca.stderr
    );
}

#[test]
fn libpq_variables_and_a_password_file_are_used() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, format!("{APP_PASSWORD}\n")).unwrap();
    let result = run(initbox()
        .env_remove("DATABASE_URL")
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", pg.port.to_string())
        .env("PGUSER", APP_USER)
        .env("PGPASSWORD", "not-this-one")
        .env("PGDATABASE", APP_DB)
        .env("PGSSLMODE", "require")
        .args([
            "wait-pg",
            "--password-file",
            password_file.to_str().unwrap(),
        ]));
    result.expect_code(0);
    assert!(
        result
            .stderr
            .contains(&format!("postgres://app:***@127.0.0.1:{}/app", pg.port)),
        "{}",
        result.stderr
    );

    // DATABASE_URL works like --url, and key=value conninfo like a URL.
    let conninfo = format!(
        "host=127.0.0.1 port={} user=app password='{APP_PASSWORD}' dbname=app",
        pg.port
    );
    run(initbox().env("DATABASE_URL", &conninfo).arg("wait-pg")).expect_code(0);
}

#[test]
fn sigterm_stops_a_connection_in_progress() {
    let primary = Postgres::start();
    let standby = primary.standby_stuck_starting();
    let (child, started) = spawn(initbox().args([
        "--timeout",
        "60s",
        "wait-pg",
        "--url",
        &standby.url(APP_USER, APP_PASSWORD, APP_DB),
    ]));
    wait_until("the first attempt", || {
        started.elapsed() > Duration::from_millis(500)
    });
    let sent = std::time::Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let result = finish(child, started);
    result.expect_code(143);
    assert!(sent.elapsed() < Duration::from_secs(2));
    assert!(
        result.stderr.contains("57P03"),
        "the reason is kept: {}",
        result.stderr
    );
}

#[test]
fn bad_connection_settings_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--url".into(), "postgres://db/app?sslmode=bogus".into()],
            "'bogus'",
        ),
        (
            vec!["--url".into(), "mysql://u:s3cret@db/app".into()],
            "postgres://",
        ),
        (
            vec!["--url".into(), "postgres://db:0/app".into()],
            "out of range",
        ),
        (
            vec![
                "--url".into(),
                "postgres://db/app".into(),
                "--password-file".into(),
                dir.path().join("none").display().to_string(),
            ],
            "cannot read password file",
        ),
        (
            vec![
                "--url".into(),
                "postgres://db/app?sslmode=verify-full&sslrootcert=/nonexistent.pem".into(),
            ],
            "/nonexistent.pem",
        ),
    ];
    for (args, named) in cases {
        let result = run(initbox().arg("wait-pg").args(&args));
        assert_eq!(result.code, Some(2), "{args:?}: {}", result.stderr);
        let lines = result.stderr_lines();
        assert_eq!(lines.len(), 1, "{args:?}: {lines:?}");
        assert!(lines[0].contains(named), "{args:?}: {}", lines[0]);
        assert_no_password(&result.stderr, "s3cret");
    }
}
