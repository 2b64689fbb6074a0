//! migrate against a real PostgreSQL 15: many runners at once, a runner stopped mid-statement,
//! changed and missing files, CREATE INDEX CONCURRENTLY, ConfigMap layouts, both naming styles,
//! and errors that name the file, the line and the SQLSTATE.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::postgres::{APP_DB, APP_PASSWORD, APP_USER, Postgres};
use crate::support::{Run, finish, initbox, run, spawn, wait_until};

fn migrate(pg: &Postgres, dir: &Path) -> Command {
    let mut command = initbox();
    command
        .env("DATABASE_URL", pg.url(APP_USER, APP_PASSWORD, APP_DB))
        .args(["migrate", "--dir"])
        .arg(dir);
    command
}

fn write(dir: &Path, name: &str, sql: &str) {
    std::fs::write(dir.join(name), sql).unwrap();
}

fn query(pg: &Postgres, sql: &str) -> String {
    pg.psql(APP_DB, sql).trim().to_string()
}

fn ledger(pg: &Postgres) -> String {
    query(
        pg,
        "SELECT string_agg(version || ':' || name, ',' ORDER BY version) FROM initbox_migrations",
    )
}

#[test]
fn applies_both_naming_styles_once_and_reports_status() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "001_create.sql",
        "CREATE TABLE items (id int PRIMARY KEY);\n",
    );
    write(
        dir.path(),
        "002_seed.up.sql",
        "INSERT INTO items VALUES (1), (2);\n",
    );
    write(dir.path(), "002_seed.down.sql", "DELETE FROM items;\n");
    let first = run(&mut migrate(&pg, dir.path()));
    first.expect_code(0);
    assert!(
        first.stderr.contains("applied 001_create.sql in"),
        "{}",
        first.stderr
    );
    assert_eq!(ledger(&pg), "1:001_create.sql,2:002_seed.up.sql");
    assert_eq!(query(&pg, "SELECT count(*) FROM items"), "2");

    let again = run(&mut migrate(&pg, dir.path()));
    again.expect_code(0);
    assert!(
        again.stderr.contains("up to date: 2 migrations applied"),
        "{}",
        again.stderr
    );
    assert_eq!(query(&pg, "SELECT count(*) FROM items"), "2");

    write(
        dir.path(),
        "003_more.sql",
        "INSERT INTO items VALUES (3);\n",
    );
    let status = run(migrate(&pg, dir.path()).arg("status"));
    status.expect_code(0);
    assert_eq!(
        status.stdout,
        "applied 1 001_create.sql\napplied 2 002_seed.up.sql\npending 3 003_more.sql\n"
    );
    // status changes nothing.
    assert_eq!(query(&pg, "SELECT count(*) FROM items"), "2");
}

#[test]
fn sixteen_runners_at_once_apply_each_migration_exactly_once() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "001_table.sql", "CREATE TABLE hits (n int);\n");
    // Slow enough that the runners really overlap.
    write(
        dir.path(),
        "002_hit.sql",
        "INSERT INTO hits VALUES (1); SELECT pg_sleep(0.3);\n",
    );
    write(dir.path(), "003_hit.sql", "INSERT INTO hits VALUES (2);\n");
    let runners: Vec<_> = (0..16)
        .map(|n| spawn(migrate(&pg, dir.path()).env("HOSTNAME", format!("web-{n}"))))
        .collect();
    let results: Vec<Run> = runners
        .into_iter()
        .map(|(child, started)| finish(child, started))
        .collect();
    for result in &results {
        result.expect_code(0);
    }
    assert_eq!(
        query(&pg, "SELECT string_agg(n::text, ',' ORDER BY n) FROM hits"),
        "1,2"
    );
    assert_eq!(ledger(&pg), "1:001_table.sql,2:002_hit.sql,3:003_hit.sql");
    let applied_by = results
        .iter()
        .filter(|r| r.stderr.contains("applied 3 migrations"))
        .count();
    assert_eq!(applied_by, 1, "exactly one runner applies");
    assert!(
        results
            .iter()
            .any(|r| r.stderr.contains("lock held by initbox-migrate@web-")),
        "waiting runners name the holder"
    );
}

#[test]
fn sigterm_during_a_statement_leaves_the_database_as_it_was() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "001_settings.sql",
        "CREATE TABLE sleep_for (seconds float); INSERT INTO sleep_for VALUES (60);\n",
    );
    write(
        dir.path(),
        "002_slow.sql",
        "CREATE TABLE half_done (id int);\nSELECT pg_sleep((SELECT seconds FROM sleep_for));\n",
    );
    let (child, started) = spawn(&mut migrate(&pg, dir.path()));
    wait_until("the slow statement to run", || {
        query(
            &pg,
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep((SELECT%' AND state = 'active' AND pid <> pg_backend_pid()",
        ) == "1"
    });
    let sent = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let result = finish(child, started);
    result.expect_code(143);
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "took {:?}",
        sent.elapsed()
    );
    assert!(
        result
            .stderr
            .contains("002_slow.sql: cancelled, rolled back"),
        "{}",
        result.stderr
    );
    // Nothing of 002 is left: no table, no ledger row, no statement still running.
    assert_eq!(query(&pg, "SELECT to_regclass('half_done') IS NULL"), "t");
    assert_eq!(ledger(&pg), "1:001_settings.sql");
    wait_until("the statement to be gone", || {
        query(
            &pg,
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep((SELECT%' AND pid <> pg_backend_pid()",
        ) == "0"
    });

    query(&pg, "UPDATE sleep_for SET seconds = 0");
    run(&mut migrate(&pg, dir.path())).expect_code(0);
    assert_eq!(ledger(&pg), "1:001_settings.sql,2:002_slow.sql");
}

#[test]
fn a_changed_file_is_refused() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "001_create.sql", "CREATE TABLE a (id int);\n");
    run(&mut migrate(&pg, dir.path())).expect_code(0);
    // Windows line endings and a BOM are the same file...
    write(
        dir.path(),
        "001_create.sql",
        "\u{feff}CREATE TABLE a (id int);\r\n",
    );
    run(&mut migrate(&pg, dir.path())).expect_code(0);
    // ...an edit is not.
    write(
        dir.path(),
        "001_create.sql",
        "CREATE TABLE a (id bigint);\n",
    );
    write(dir.path(), "002_next.sql", "CREATE TABLE b (id int);\n");
    let refused = run(&mut migrate(&pg, dir.path()));
    refused.expect_code(1);
    assert!(
        refused
            .stderr
            .contains("001_create.sql was changed after it was applied"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        query(&pg, "SELECT to_regclass('b') IS NULL"),
        "t",
        "nothing is applied"
    );
    run(migrate(&pg, dir.path()).arg("verify")).expect_code(1);
    let status = run(migrate(&pg, dir.path()).arg("status"));
    assert!(
        status.stdout.starts_with("changed 1 001_create.sql\n"),
        "{}",
        status.stdout
    );
}

#[test]
fn missing_and_out_of_order_files_are_refused_unless_allowed() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "001_a.sql", "CREATE TABLE a ();\n");
    write(dir.path(), "003_c.sql", "CREATE TABLE c ();\n");
    run(&mut migrate(&pg, dir.path())).expect_code(0);

    write(dir.path(), "002_b.sql", "CREATE TABLE b ();\n");
    let late = run(&mut migrate(&pg, dir.path()));
    late.expect_code(1);
    assert!(
        late.stderr
            .contains("002_b.sql is pending but older than applied version 3"),
        "{}",
        late.stderr
    );
    run(migrate(&pg, dir.path()).arg("--allow-out-of-order")).expect_code(0);
    assert_eq!(ledger(&pg), "1:001_a.sql,2:002_b.sql,3:003_c.sql");

    std::fs::remove_file(dir.path().join("001_a.sql")).unwrap();
    let missing = run(&mut migrate(&pg, dir.path()));
    missing.expect_code(1);
    assert!(
        missing
            .stderr
            .contains("version 1 (001_a.sql) is applied but its file is missing"),
        "{}",
        missing.stderr
    );
    run(migrate(&pg, dir.path()).arg("--allow-missing")).expect_code(0);
}

#[test]
fn create_index_concurrently_runs_outside_a_transaction() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "001_table.sql",
        "CREATE TABLE t (a int); INSERT INTO t SELECT generate_series(1, 1000);\n",
    );
    write(
        dir.path(),
        "002_index.sql",
        "-- initbox:no-transaction\nCREATE INDEX CONCURRENTLY t_a ON t (a);\n",
    );
    run(&mut migrate(&pg, dir.path())).expect_code(0);
    assert_eq!(
        query(
            &pg,
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_a'::regclass"
        ),
        "t"
    );
    assert_eq!(ledger(&pg), "1:001_table.sql,2:002_index.sql");

    write(
        dir.path(),
        "003_two.sql",
        "-- initbox:no-transaction\nCREATE INDEX CONCURRENTLY t_b ON t (a);\nSELECT 1;\n",
    );
    let two = run(&mut migrate(&pg, dir.path()));
    two.expect_code(2);
    assert!(
        two.stderr.contains("003_two.sql") && two.stderr.contains("exactly one statement"),
        "{}",
        two.stderr
    );
}

#[test]
fn a_failed_concurrent_index_is_reported_with_its_fix() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "001_table.sql",
        "CREATE TABLE t (a int); INSERT INTO t VALUES (1), (1);\n",
    );
    write(
        dir.path(),
        "002_unique.sql",
        "-- initbox:no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY t_a_unique ON t (a);\n",
    );
    let result = run(&mut migrate(&pg, dir.path()));
    result.expect_code(1);
    let last = result.stderr_lines().last().unwrap().to_string();
    assert!(last.contains("002_unique.sql: ERROR 23505"), "{last}");
    assert!(
        last.contains("DROP INDEX CONCURRENTLY public.t_a_unique"),
        "{last}"
    );
    assert_eq!(ledger(&pg), "1:001_table.sql");
}

#[test]
fn a_syntax_error_names_the_file_line_and_sqlstate_and_applies_nothing() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let termination = dir.path().join(".termination-log");
    write(dir.path(), "001_ok.sql", "CREATE TABLE ok ();\n");
    write(
        dir.path(),
        "002_bad.sql",
        "CREATE TABLE partial ();\nSELEC 1;\n",
    );
    let result = run(migrate(&pg, dir.path()).env("INITBOX_TERMINATION_LOG", &termination));
    result.expect_code(1);
    let message = std::fs::read_to_string(&termination).unwrap();
    assert!(
        message.contains(
            "002_bad.sql: ERROR 42601: syntax error at or near \"SELEC\" at line 2, column 1"
        ),
        "{message}"
    );
    assert!(message.contains("rolled back"), "{message}");
    assert_eq!(query(&pg, "SELECT to_regclass('partial') IS NULL"), "t");
    assert_eq!(ledger(&pg), "1:001_ok.sql");
}

#[test]
fn a_configmap_directory_is_read_through_its_symlinks() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("..2026_11_21_23_00_00.000000001");
    std::fs::create_dir(&data).unwrap();
    write(&data, "001_a.sql", "CREATE TABLE from_configmap ();\n");
    write(
        &data,
        "002_b.up.sql",
        "CREATE TABLE from_configmap_too ();\n",
    );
    write(&data, "001b.txt", "not a migration");
    std::os::unix::fs::symlink(data.file_name().unwrap(), dir.path().join("..data")).unwrap();
    for name in ["001_a.sql", "002_b.up.sql", "001b.txt"] {
        std::os::unix::fs::symlink(Path::new("..data").join(name), dir.path().join(name)).unwrap();
    }
    run(&mut migrate(&pg, dir.path())).expect_code(0);
    assert_eq!(ledger(&pg), "1:001_a.sql,2:002_b.up.sql");
    assert_eq!(
        query(&pg, "SELECT to_regclass('from_configmap_too') IS NOT NULL"),
        "t"
    );
}

#[test]
fn baseline_marks_an_existing_schema_as_applied() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    query(
        &pg,
        "CREATE TABLE legacy (id int); GRANT ALL ON legacy TO app",
    );
    write(
        dir.path(),
        "001_legacy.sql",
        "CREATE TABLE legacy (id int);\n",
    );
    write(
        dir.path(),
        "002_new.sql",
        "ALTER TABLE legacy ADD COLUMN name text;\n",
    );
    run(migrate(&pg, dir.path()).args(["baseline", "1"])).expect_code(0);
    assert_eq!(ledger(&pg), "1:001_legacy.sql");
    query(&pg, "ALTER TABLE legacy OWNER TO app");
    run(&mut migrate(&pg, dir.path())).expect_code(0);
    assert_eq!(ledger(&pg), "1:001_legacy.sql,2:002_new.sql");
}

#[test]
fn bad_directories_and_names_are_usage_errors() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "1_a.sql", "SELECT 1;\n");
    write(dir.path(), "01_b.sql", "SELECT 1;\n");
    write(dir.path(), "init.sql", "SELECT 1;\n");
    let names = run(&mut migrate(&pg, dir.path()));
    names.expect_code(2);
    assert!(names.stderr.contains("init.sql"), "{}", names.stderr);
    std::fs::remove_file(dir.path().join("init.sql")).unwrap();
    let duplicate = run(&mut migrate(&pg, dir.path()));
    duplicate.expect_code(2);
    assert!(
        duplicate
            .stderr
            .contains("version 1 in 01_b.sql and 1_a.sql"),
        "{}",
        duplicate.stderr
    );
    let missing = run(&mut migrate(&pg, &dir.path().join("nope")));
    missing.expect_code(2);
    assert!(
        missing.stderr.contains("cannot read migrations directory"),
        "{}",
        missing.stderr
    );
    let table = run(migrate(&pg, dir.path()).args(["--table", "x;drop"]));
    table.expect_code(2);
}
