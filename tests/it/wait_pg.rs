//! wait-pg against real PostgreSQL 15 servers: a server held in 57P03, too many clients,
//! credentials and databases that appear late, --query, --read-write, TLS modes, libpq
//! variables, and passwords kept out of every log line.

use std::process::Command;
use std::time::Duration;

use crate::support::expect::Expect;
use crate::support::postgres::{
    APP_DB, APP_PASSWORD, APP_USER, MD5_PASSWORD, MD5_USER, Postgres, SSL_ONLY_PASSWORD,
    SSL_ONLY_USER,
};
use crate::support::waiting::{run_changed_after, run_signalled_after, within};
use crate::support::{initbox, run};

fn app_url(pg: &Postgres) -> String {
    pg.url(APP_USER, APP_PASSWORD, APP_DB)
}

/// `initbox --timeout TIMEOUT wait-pg --url URL ARGS...`.
fn wait_pg(timeout: &str, url: &str, args: &[&str]) -> Command {
    let mut command = within(timeout, &["wait-pg", "--url", url]);
    command.args(args);
    command
}

#[test]
fn ready_once_authenticated_and_answering() {
    let pg = Postgres::start();
    run(initbox().args(["wait-pg", "--url", &app_url(&pg)]))
        .expect_code(0)
        .expect_stderr(&format!(
            "postgres://app:***@127.0.0.1:{}/app: ready",
            pg.port
        ))
        .expect_not_in_stderr(APP_PASSWORD);
    // md5-stored passwords authenticate too.
    let md5 = pg.url(MD5_USER, MD5_PASSWORD, "postgres");
    run(initbox().args(["wait-pg", "--url", &md5])).expect_code(0);
}

#[test]
fn a_starting_server_is_not_ready_until_it_can_answer() {
    let primary = Postgres::start();
    let standby = primary.standby_stuck_starting();
    let url = standby.url(APP_USER, APP_PASSWORD, APP_DB);
    // The port is open, but the server answers 57P03: initbox must keep waiting (still waiting
    // at the release, so `elapsed` is past the 1500 ms).
    run_changed_after(
        &mut wait_pg("60s", &url, &[]),
        Duration::from_millis(1500),
        || standby.release(),
    )
    .expect_code(0)
    .expect_stderr("FATAL 57P03: the database system is starting up");
}

#[test]
fn too_many_clients_is_retried() {
    let pg = Postgres::start_with(&[("max_connections", "3")]);
    let held = pg.hold_connections(3);
    run_changed_after(
        &mut wait_pg("60s", &app_url(&pg), &[]),
        Duration::from_millis(1000),
        || drop(held),
    )
    .expect_code(0)
    .expect_stderr("53300");
}

#[test]
fn a_wrong_password_is_retried_and_logged_once_or_fails_fast() {
    let pg = Postgres::start();
    let url = pg.url(APP_USER, "wrong-PASSWORD", APP_DB);
    let often = ["--interval", "50ms", "wait-pg", "--url", &url];
    let result = run(&mut within("1500ms", &often));
    result
        .expect_code(124)
        .expect_not_in_stderr("wrong-PASSWORD");
    assert_eq!(
        result.stderr.matches("28P01").count(),
        2,
        "one warning and the final line:\n{}",
        result.stderr
    );

    let dir = tempfile::tempdir().unwrap();
    let termination = dir.path().join("termination-log");
    let log = ["--termination-log", termination.to_str().unwrap()];
    let fast = run(within("1m", &log).args(["wait-pg", "--fail-fast", "--url", &url]));
    fast.expect_code(1);
    assert!(fast.elapsed < Duration::from_secs(10));
    let message = std::fs::read_to_string(&termination).unwrap();
    assert!(
        message.contains("FATAL 28P01: password authentication failed for user \"app\""),
        "{message}"
    );
    assert!(message.contains("postgres://app:***@"), "{message}");
    assert!(!message.contains("wrong-PASSWORD"), "{message}");
}

#[test]
fn a_database_created_while_waiting_is_picked_up() {
    let pg = Postgres::start();
    let url = pg.url(APP_USER, APP_PASSWORD, "late_db");
    run_changed_after(
        &mut wait_pg("60s", &url, &[]),
        Duration::from_millis(800),
        || pg.psql("postgres", "CREATE DATABASE late_db OWNER app"),
    )
    .expect_code(0)
    .expect_stderr("FATAL 3D000");

    let never = pg.url(APP_USER, APP_PASSWORD, "never_db");
    run(initbox().args(["wait-pg", "--fail-fast", "--url", &never]))
        .expect_code(1)
        .expect_stderr("3D000");
}

#[test]
fn query_waits_for_its_table_and_a_true_row() {
    let pg = Postgres::start();
    let query = "SELECT max(version) >= 42 FROM schema_migrations";
    // The false row is there for 600 ms: attempts every 100 ms at most, so that one falls in
    // that window (the default backoff, up to 1 s, may step over it).
    let often = ["--max-interval", "100ms"];
    let result = run_changed_after(
        wait_pg("60s", &app_url(&pg), &["--query", query]).args(often),
        Duration::from_millis(600),
        || {
            pg.psql(APP_DB, "CREATE TABLE schema_migrations (version int); GRANT ALL ON schema_migrations TO app; INSERT INTO schema_migrations VALUES (41)");
            std::thread::sleep(Duration::from_millis(600));
            pg.psql(APP_DB, "INSERT INTO schema_migrations VALUES (42)");
        },
    );
    // The missing table is waited for, and then a false row.
    result
        .expect_code(0)
        .expect_stderr("42P01")
        .expect_stderr("none with true");
}

#[test]
fn a_broken_query_fails_at_once_with_the_servers_message() {
    let pg = Postgres::start();
    run(&mut wait_pg("1m", &app_url(&pg), &["--query", "SELEC 1"]))
        .expect_failed_at_once("ERROR 42601: syntax error at or near \"SELEC\" (at character 1)");

    let url = app_url(&pg);
    run(initbox().args(["wait-pg", "--url", &url, "--query", "SELECT 1 AS one"]))
        .expect_code(1)
        .expect_stderr("boolean first column; 'one' is int4");
}

#[test]
fn read_write_waits_for_a_primary() {
    let primary = Postgres::start();
    let standby = primary.standby_stuck_starting();
    standby.release();
    standby.wait_ready();
    let on_standby = standby.url(APP_USER, APP_PASSWORD, APP_DB);
    run(&mut wait_pg("1s", &on_standby, &["--read-write"]))
        .expect_code(124)
        .expect_stderr("in recovery");
    run(initbox().args(["wait-pg", "--read-write", "--url", &app_url(&primary)])).expect_code(0);
}

#[test]
fn sslmodes_have_their_libpq_meanings() {
    let pg = Postgres::start();
    let ca = pg.ca_cert.to_str().unwrap();
    let app = |host: &str, params: &str| {
        let port = pg.port;
        format!("postgresql://{APP_USER}:{APP_PASSWORD}@{host}:{port}/postgres?{params}")
    };
    let ssl_only = |params: &str| {
        let (user, password, port) = (SSL_ONLY_USER, SSL_ONLY_PASSWORD, pg.port);
        format!("postgresql://{user}:{password}@127.0.0.1:{port}/postgres?{params}")
    };
    let verify_full = format!("sslmode=verify-full&sslrootcert={ca}");
    for url in [
        app("localhost", &verify_full),
        app("127.0.0.1", &verify_full),
        app("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}")),
        ssl_only("sslmode=require"),
        ssl_only("sslmode=prefer"),
    ] {
        run(&mut wait_pg("10s", &url, &[])).expect_code(0);
    }

    // Without TLS the server's pg_hba refuses this user: its own words are shown.
    run(&mut wait_pg("1s", &ssl_only("sslmode=disable"), &[]))
        .expect_code(124)
        .expect_stderr("28000")
        .expect_stderr("no encryption");

    // verify-full against a CA that did not sign the server's certificate is refused.
    let other = tempfile::tempdir().unwrap();
    let (other_ca, _) = crate::support::postgres::self_signed_cert(other.path());
    let other_ca = format!("sslmode=verify-full&sslrootcert={}", other_ca.display());
    let url = app("localhost", &other_ca);
    let wrong_ca = run(&mut wait_pg("1s", &url, &[]));
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
    result
        .expect_code(0)
        .expect_stderr(&format!("postgres://app:***@127.0.0.1:{}/app", pg.port));

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
    let url = standby.url(APP_USER, APP_PASSWORD, APP_DB);
    // Signalled after the first attempt; stopped within 2 s, and the reason is kept.
    run_signalled_after(
        &mut wait_pg("60s", &url, &[]),
        Duration::from_millis(500),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect_code(143)
    .expect_stderr("57P03");
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
        run(initbox().arg("wait-pg").args(&args))
            .expect_usage_error(named)
            .expect_not_in_stderr("s3cret");
    }
}
