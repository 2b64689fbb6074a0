//! migrate against a real PostgreSQL 15: many runners at once, a runner stopped mid-statement,
//! changed and missing files, CREATE INDEX CONCURRENTLY, ConfigMap layouts, both naming styles,
//! and errors that name the file, the line and the SQLSTATE.

use std::path::Path;
use std::time::Duration;

use crate::support::expect::{Expect, stop_with_sigterm};
use crate::support::migrate::{Migrations, write};
use crate::support::postgres::APP_DB;
use crate::support::{Run, finish, run, spawn, wait_until};

/// initbox's ledger as `version:name,...`.
fn ledger(m: &Migrations) -> String {
    m.query(
        "SELECT string_agg(version || ':' || name, ',' ORDER BY version) FROM initbox_migrations",
    )
}

#[test]
fn applies_both_naming_styles_once_and_reports_status() {
    let m = Migrations::start();
    m.write(
        "001_create.sql",
        "CREATE TABLE items (id int PRIMARY KEY);\n",
    );
    m.write("002_seed.up.sql", "INSERT INTO items VALUES (1), (2);\n");
    m.write("002_seed.down.sql", "DELETE FROM items;\n");
    run(&mut m.migrate())
        .succeeded()
        .expect_stderr("applied 001_create.sql in");
    assert_eq!(ledger(&m), "1:001_create.sql,2:002_seed.up.sql");
    assert_eq!(m.query("SELECT count(*) FROM items"), "2");

    run(&mut m.migrate())
        .succeeded()
        .expect_stderr("up to date: 2 migrations applied");
    assert_eq!(m.query("SELECT count(*) FROM items"), "2");

    m.write("003_more.sql", "INSERT INTO items VALUES (3);\n");
    let status = run(m.migrate().arg("status")).succeeded();
    assert_eq!(
        status.stdout,
        "applied 1 001_create.sql\napplied 2 002_seed.up.sql\npending 3 003_more.sql\n"
    );
    // status changes nothing.
    assert_eq!(m.query("SELECT count(*) FROM items"), "2");
}

#[test]
fn sixteen_runners_at_once_apply_each_migration_exactly_once() {
    let m = Migrations::start();
    m.write("001_table.sql", "CREATE TABLE hits (n int);\n");
    // Slow enough that the runners really overlap.
    m.write(
        "002_hit.sql",
        "INSERT INTO hits VALUES (1); SELECT pg_sleep(0.3);\n",
    );
    m.write("003_hit.sql", "INSERT INTO hits VALUES (2);\n");
    let runners: Vec<_> = (0..16)
        .map(|n| spawn(m.migrate().env("HOSTNAME", format!("web-{n}"))))
        .collect();
    let results: Vec<Run> = runners
        .into_iter()
        .map(|(child, started)| finish(child, started))
        .collect();
    for result in &results {
        result.expect_code(0);
    }
    assert_eq!(
        m.query("SELECT string_agg(n::text, ',' ORDER BY n) FROM hits"),
        "1,2"
    );
    assert_eq!(ledger(&m), "1:001_table.sql,2:002_hit.sql,3:003_hit.sql");
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
    let m = Migrations::start();
    m.write(
        "001_settings.sql",
        "CREATE TABLE sleep_for (seconds float); INSERT INTO sleep_for VALUES (60);\n",
    );
    m.write(
        "002_slow.sql",
        "CREATE TABLE half_done (id int);\nSELECT pg_sleep((SELECT seconds FROM sleep_for));\n",
    );
    let sleeping = |only_active: &str| {
        m.query(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep((SELECT%'{only_active} AND pid <> pg_backend_pid()"
        ))
    };
    let (child, started) = spawn(&mut m.migrate());
    wait_until("the slow statement to run", || {
        sleeping(" AND state = 'active'") == "1"
    });
    let (result, stopped_after) = stop_with_sigterm(child, started);
    result.expect_code(143);
    assert!(
        stopped_after < Duration::from_secs(5),
        "took {stopped_after:?}"
    );
    result.expect_stderr("002_slow.sql: cancelled, rolled back");
    // Nothing of 002 is left: no table, no ledger row, no statement still running.
    assert_eq!(m.query("SELECT to_regclass('half_done') IS NULL"), "t");
    assert_eq!(ledger(&m), "1:001_settings.sql");
    wait_until("the statement to be gone", || sleeping("") == "0");

    m.query("UPDATE sleep_for SET seconds = 0");
    run(&mut m.migrate()).expect_code(0);
    assert_eq!(ledger(&m), "1:001_settings.sql,2:002_slow.sql");
}

#[test]
fn a_changed_file_is_refused() {
    let m = Migrations::start();
    m.write("001_create.sql", "CREATE TABLE a (id int);\n");
    run(&mut m.migrate()).expect_code(0);
    // Windows line endings and a BOM are the same file...
    m.write("001_create.sql", "\u{feff}CREATE TABLE a (id int);\r\n");
    run(&mut m.migrate()).expect_code(0);
    // ...an edit is not.
    m.write("001_create.sql", "CREATE TABLE a (id bigint);\n");
    m.write("002_next.sql", "CREATE TABLE b (id int);\n");
    run(&mut m.migrate())
        .expect_code(1)
        .expect_stderr("001_create.sql was changed after it was applied");
    assert_eq!(
        m.query("SELECT to_regclass('b') IS NULL"),
        "t",
        "nothing is applied"
    );
    run(m.migrate().arg("verify")).expect_code(1);
    let status = run(m.migrate().arg("status")).stdout;
    assert!(status.starts_with("changed 1 001_create.sql\n"), "{status}");
}

#[test]
fn missing_and_out_of_order_files_are_refused_unless_allowed() {
    let m = Migrations::start();
    m.write("001_a.sql", "CREATE TABLE a ();\n");
    m.write("003_c.sql", "CREATE TABLE c ();\n");
    run(&mut m.migrate()).expect_code(0);

    m.write("002_b.sql", "CREATE TABLE b ();\n");
    run(&mut m.migrate())
        .expect_code(1)
        .expect_stderr("002_b.sql is pending but older than applied version 3");
    run(m.migrate().arg("--allow-out-of-order")).expect_code(0);
    assert_eq!(ledger(&m), "1:001_a.sql,2:002_b.sql,3:003_c.sql");

    m.remove("001_a.sql");
    run(&mut m.migrate())
        .expect_code(1)
        .expect_stderr("version 1 (001_a.sql) is applied but its file is missing");
    run(m.migrate().arg("--allow-missing")).expect_code(0);
}

#[test]
fn create_index_concurrently_runs_outside_a_transaction() {
    let m = Migrations::start();
    m.write(
        "001_table.sql",
        "CREATE TABLE t (a int); INSERT INTO t SELECT generate_series(1, 1000);\n",
    );
    m.write(
        "002_index.sql",
        "-- initbox:no-transaction\nCREATE INDEX CONCURRENTLY t_a ON t (a);\n",
    );
    run(&mut m.migrate()).expect_code(0);
    assert_eq!(
        m.query("SELECT indisvalid FROM pg_index WHERE indexrelid = 't_a'::regclass"),
        "t"
    );
    assert_eq!(ledger(&m), "1:001_table.sql,2:002_index.sql");

    m.write(
        "003_two.sql",
        "-- initbox:no-transaction\nCREATE INDEX CONCURRENTLY t_b ON t (a);\nSELECT 1;\n",
    );
    run(&mut m.migrate())
        .expect_code(2)
        .expect_stderr("003_two.sql")
        .expect_stderr("exactly one statement");
}

#[test]
fn a_failed_concurrent_index_is_reported_with_its_fix() {
    let m = Migrations::start();
    m.write(
        "001_table.sql",
        "CREATE TABLE t (a int); INSERT INTO t VALUES (1), (1);\n",
    );
    m.write(
        "002_unique.sql",
        "-- initbox:no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY t_a_unique ON t (a);\n",
    );
    let result = run(&mut m.migrate());
    result.expect_code(1);
    let last = result.stderr_lines().last().unwrap().to_string();
    assert!(last.contains("002_unique.sql: ERROR 23505"), "{last}");
    assert!(
        last.contains("DROP INDEX CONCURRENTLY public.t_a_unique"),
        "{last}"
    );
    assert_eq!(ledger(&m), "1:001_table.sql");
}

#[test]
fn a_syntax_error_names_the_file_line_and_sqlstate_and_applies_nothing() {
    let m = Migrations::start();
    let termination = m.dir.join(".termination-log");
    m.write("001_ok.sql", "CREATE TABLE ok ();\n");
    m.write("002_bad.sql", "CREATE TABLE partial ();\nSELEC 1;\n");
    run(m.migrate().env("INITBOX_TERMINATION_LOG", &termination)).expect_code(1);
    let message = std::fs::read_to_string(&termination).unwrap();
    assert!(
        message.contains(
            "002_bad.sql: ERROR 42601: syntax error at or near \"SELEC\" at line 2, column 1"
        ),
        "{message}"
    );
    assert!(message.contains("rolled back"), "{message}");
    assert_eq!(m.query("SELECT to_regclass('partial') IS NULL"), "t");
    assert_eq!(ledger(&m), "1:001_ok.sql");
}

#[test]
fn a_configmap_directory_is_read_through_its_symlinks() {
    let m = Migrations::start();
    let data = m.dir.join("..2026_11_21_23_00_00.000000001");
    std::fs::create_dir(&data).unwrap();
    write(&data, "001_a.sql", "CREATE TABLE from_configmap ();\n");
    write(
        &data,
        "002_b.up.sql",
        "CREATE TABLE from_configmap_too ();\n",
    );
    write(&data, "001b.txt", "not a migration");
    std::os::unix::fs::symlink(data.file_name().unwrap(), m.dir.join("..data")).unwrap();
    for name in ["001_a.sql", "002_b.up.sql", "001b.txt"] {
        std::os::unix::fs::symlink(Path::new("..data").join(name), m.dir.join(name)).unwrap();
    }
    run(&mut m.migrate()).expect_code(0);
    assert_eq!(ledger(&m), "1:001_a.sql,2:002_b.up.sql");
    assert_eq!(
        m.query("SELECT to_regclass('from_configmap_too') IS NOT NULL"),
        "t"
    );
}

#[test]
fn baseline_marks_an_existing_schema_as_applied() {
    let m = Migrations::start();
    m.query("CREATE TABLE legacy (id int); GRANT ALL ON legacy TO app");
    m.write("001_legacy.sql", "CREATE TABLE legacy (id int);\n");
    m.write("002_new.sql", "ALTER TABLE legacy ADD COLUMN name text;\n");
    run(m.migrate().args(["baseline", "1"])).expect_code(0);
    assert_eq!(ledger(&m), "1:001_legacy.sql");
    m.query("ALTER TABLE legacy OWNER TO app");
    run(&mut m.migrate()).expect_code(0);
    assert_eq!(ledger(&m), "1:001_legacy.sql,2:002_new.sql");
}

#[test]
fn bad_directories_and_names_are_usage_errors() {
    let m = Migrations::start();
    m.write("1_a.sql", "SELECT 1;\n");
    m.write("01_b.sql", "SELECT 1;\n");
    m.write("init.sql", "SELECT 1;\n");
    run(&mut m.migrate())
        .expect_code(2)
        .expect_stderr("init.sql");
    m.remove("init.sql");
    run(&mut m.migrate())
        .expect_code(2)
        .expect_stderr("version 1 in 01_b.sql and 1_a.sql");
    run(&mut m.migrate_at(APP_DB, &m.dir.join("nope")))
        .expect_code(2)
        .expect_stderr("cannot read migrations directory");
    run(m.migrate().args(["--table", "x;drop"])).expect_code(2);
}
