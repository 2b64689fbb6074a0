//! migrate as a drop-in for golang-migrate, goose, dbmate, Flyway, sqlx and sql-migrate, against
//! a real PostgreSQL 15: each tool's naming, up sections, no-transaction rules, ledger table and
//! lock, with fixtures written here; and switching both ways with the real dbmate, sqlx-cli and
//! sql-migrate.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::expect::Expect;
use crate::support::migrate::Migrations;
use crate::support::migration_tools::{run_dbmate, run_sql_migrate, run_sqlx_migrate};
use crate::support::postgres::{APP_DB, APP_PASSWORD, APP_USER};
use crate::support::{Run, run};

/// Runs migrate while another session holds advisory lock `key` for up to `seconds`, as another
/// tool's runner would; returns the run, which must succeed (once the lock is free, or without
/// taking it).
fn while_locked(m: &Migrations, key: i64, seconds: u32, command: &mut Command) -> Run {
    let mut holder = m.pg.hold_advisory_lock(APP_DB, key, seconds);
    let waited = run(command);
    let _ = holder.kill();
    let _ = holder.wait();
    waited.succeeded()
}

#[test]
fn golang_migrate_history_continues_in_its_own_table() {
    let m = Migrations::start();
    m.write(
        "1_create_items.up.sql",
        "CREATE TABLE items (id int PRIMARY KEY, body text);\n",
    );
    m.write("1_create_items.down.sql", "DROP TABLE items;\n");
    m.write(
        "2_seed.up.sql",
        "BEGIN;\nINSERT INTO items VALUES (1, 'a');\nINSERT INTO items VALUES (2, 'b');\nCOMMIT;\n",
    );
    m.write("README.md", "# migrations\n");
    // What golang-migrate left: its table in the current schema, one row, version 2.
    m.query(
        "CREATE TABLE items (id int PRIMARY KEY, body text); INSERT INTO items VALUES (1, 'a'), (2, 'b');
         CREATE TABLE schema_migrations (version bigint not null primary key, dirty boolean not null);
         INSERT INTO schema_migrations VALUES (2, false);
         ALTER TABLE items OWNER TO app; ALTER TABLE schema_migrations OWNER TO app;",
    );
    // A file in its own BEGIN/COMMIT; one that must run outside a transaction; a dollar-quoted
    // body without a trailing newline; and a later file that changes golang-migrate's own table.
    m.write(
        "3_more.up.sql",
        "BEGIN;\nINSERT INTO items VALUES (3, 'c');\nCOMMIT;\n",
    );
    m.write(
        "4_items_body.up.sql",
        "CREATE INDEX CONCURRENTLY items_body ON items (body);\n",
    );
    m.write(
        "5_function.up.sql",
        "CREATE FUNCTION item_count() RETURNS bigint AS $func$\nBEGIN RETURN (SELECT count(*) FROM items); END;\n$func$ LANGUAGE plpgsql;",
    );
    m.write(
        "10_ledger_note.up.sql",
        "ALTER TABLE schema_migrations ADD COLUMN note text NOT NULL DEFAULT 'kept';\n",
    );
    run(&mut m.migrate())
        .succeeded()
        .expect_stderr("format golang-migrate")
        .expect_stderr("applying 4_items_body.up.sql outside a transaction")
        .expect_stderr("applied 4 migrations");
    assert_eq!(
        m.query("SELECT version, dirty, note FROM schema_migrations"),
        "10|f|kept"
    );
    assert_eq!(m.query("SELECT item_count()"), "3");
    assert_eq!(
        m.query("SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_body'::regclass"),
        "t"
    );

    // golang-migrate's own lock (its CLI's key for database "/app") keeps initbox waiting.
    m.write("11_later.up.sql", "INSERT INTO items VALUES (11, 'k');\n");
    let waited = while_locked(&m, 1_726_534_663, 2, &mut m.migrate());
    waited.expect_stderr("golang-migrate's lock for database '/app' held by");
    assert!(
        waited.elapsed >= Duration::from_millis(1500),
        "{:?}",
        waited.elapsed
    );

    // A dirty version is refused with the command that resolves it; force clears it.
    m.query("UPDATE schema_migrations SET dirty = true");
    m.write("12_after.up.sql", "INSERT INTO items VALUES (12, 'l');\n");
    run(&mut m.migrate())
        .expect_code(1)
        .expect_stderr("version 11 is dirty")
        .expect_stderr("initbox migrate force VERSION");
    run(m.migrate().args(["force", "11"])).succeeded();
    run(&mut m.migrate()).succeeded();
    assert_eq!(
        m.query("SELECT version, dirty FROM schema_migrations"),
        "12|f"
    );

    // A file that opens a transaction and never commits it is committed with its version, as
    // golang-migrate's own version update commits it.
    m.write(
        "13_unclosed.up.sql",
        "BEGIN;\nINSERT INTO items VALUES (13, 'm');\n",
    );
    run(&mut m.migrate())
        .succeeded()
        .expect_stderr("controls its own transactions");
    assert_eq!(
        m.query(
            "SELECT (SELECT version || '|' || dirty FROM schema_migrations), (SELECT count(*) FROM items WHERE id = 13)"
        ),
        "13|false|1"
    );
}

#[test]
fn goose_files_run_their_up_sections_by_goose_rules() {
    let m = Migrations::start();
    m.write(
        "00001_create_items.sql",
        "-- +goose Up\nCREATE TABLE items (id int PRIMARY KEY, owner text);\nINSERT INTO items VALUES (1, 'x');\n\n\
         -- +goose Down\nDROP TABLE items;\n",
    );
    m.write(
        "00002_function.sql",
        "-- +goose Up\n-- +goose StatementBegin\nCREATE FUNCTION bump() RETURNS void AS $$\nBEGIN\n  UPDATE items SET id = id + 100;\nEND;\n$$ LANGUAGE plpgsql;\n\
         -- +goose StatementEnd\n-- +goose Down\nDROP FUNCTION bump();\n",
    );
    m.write(
        "00003_indexes.sql",
        "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY items_owner ON items (owner);\n\
         CREATE UNIQUE INDEX CONCURRENTLY items_id_owner ON items (id, owner);\n-- +goose Down\nDROP INDEX items_owner;\n",
    );
    m.write(
        "00004_envsub.sql",
        "-- +goose Up\n-- +goose ENVSUB ON\nUPDATE items SET owner = '${ITEMS_OWNER:-nobody}';\n-- +goose ENVSUB OFF\n",
    );
    run(m.migrate().env("ITEMS_OWNER", "team-a"))
        .succeeded()
        .expect_stderr("format goose")
        .expect_stderr("outside a transaction (-- +goose NO TRANSACTION)");
    assert_eq!(
        m.query(
            "SELECT string_agg(version_id || ':' || is_applied, ',' ORDER BY id) FROM goose_db_version"
        ),
        "0:true,1:true,2:true,3:true,4:true"
    );
    // The Down sections did not run, the function did, and ENVSUB substituted.
    assert_eq!(m.query("SELECT id, owner FROM items"), "1|team-a");
    assert_eq!(
        m.query("SELECT count(*) FROM pg_index WHERE indisvalid AND indrelid = 'items'::regclass"),
        "3"
    );

    // goose's session lock (its Provider's default key) keeps initbox waiting.
    m.write(
        "00005_later.sql",
        "-- +goose Up\nINSERT INTO items VALUES (5, 'y');\n",
    );
    while_locked(&m, 4_097_083_626, 2, &mut m.migrate())
        .expect_stderr("goose's session lock held by");

    // A Go migration is goose's alone: pending, it stops the run and says why.
    m.write("00006_backfill.go", "package migrations\n");
    run(&mut m.migrate())
        .expect_code(2)
        .expect_stderr("pending 00006_backfill.go is a Go migration");
}

#[test]
fn dbmate_switches_both_ways_with_dbmate_itself() {
    let m = Migrations::start();
    let dbmate_cli = |db: &str, args: &[&str]| run_dbmate(&m.plain_url(db), &m.dir, args);
    m.write(
        "20260101000001_create_items.sql",
        "-- migrate:up\nCREATE TABLE items (id int PRIMARY KEY);\n\n-- migrate:down\nDROP TABLE items;\n",
    );
    dbmate_cli(APP_DB, &["--no-dump-schema", "up"]);
    // The down section must not run with the up section.
    m.write(
        "20260101000002_index.sql",
        "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY items_id ON items (id);\n\n-- migrate:down\nDROP INDEX items_id;\n",
    );
    m.write(
        "20260101000003_seed.sql",
        "-- migrate:up\nINSERT INTO items VALUES (1), (2);\n-- migrate:down\nDELETE FROM items;\n",
    );
    run(&mut m.migrate())
        .succeeded()
        .expect_stderr("format dbmate");
    assert_eq!(m.query("SELECT count(*) FROM items"), "2");
    assert_eq!(
        m.query("SELECT string_agg(version, ',' ORDER BY version) FROM schema_migrations"),
        "20260101000001,20260101000002,20260101000003"
    );
    let status = dbmate_cli(APP_DB, &["status"]);
    assert!(
        status.contains("Applied: 3") && status.contains("Pending: 0"),
        "{status}"
    );

    // The other way: initbox first, dbmate the rest, initbox's status sees all of it.
    let (dbmate_rest, status) = m.initbox_then_tool(
        m.second_database(),
        "dbmate",
        "20260101000003_seed.sql",
        |other| dbmate_cli(other, &["--no-dump-schema", "up"]),
    );
    assert!(
        dbmate_rest.contains("20260101000003_seed.sql"),
        "{dbmate_rest}"
    );
    assert_eq!(
        status.stdout,
        "applied 20260101000001 20260101000001_create_items.sql\n\
         applied 20260101000002 20260101000002_index.sql\n\
         applied 20260101000003 20260101000003_seed.sql\n"
    );
    status.expect_stderr("checksums: none recorded");
}

/// Flyway's checksum, computed independently with Python's zlib: CRC32 of the text without a
/// BOM and without line breaks, as a signed 32-bit number.
fn flyway_checksum(path: &Path) -> String {
    let output = Command::new("python3")
        .args([
            "-c",
            "import sys, zlib\n\
             t = open(sys.argv[1], encoding='utf-8').read().lstrip('\\ufeff').replace('\\r', '').replace('\\n', '')\n\
             c = zlib.crc32(t.encode())\nprint(c - (1 << 32) if c >= 1 << 31 else c)",
        ])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

#[test]
fn flyway_versions_repeatables_placeholders_and_history() {
    let m = Migrations::start();
    // Flyway's placeholder `${Team}`, set as its CLI reads it from the environment.
    let with_team = || {
        let mut command = m.migrate();
        command.env("FLYWAY_PLACEHOLDERS_TEAM", "core");
        command
    };
    m.write(
        "V1__create.sql",
        "CREATE TABLE steps (n serial PRIMARY KEY, version text);\r\nINSERT INTO steps (version) VALUES ('1');\r\n",
    );
    for version in ["2", "2.1", "10", "17.1"] {
        m.write(
            &format!(
                "V{}__step_{}.sql",
                version.replace('.', "_"),
                version.replace('.', "_")
            ),
            &format!("INSERT INTO steps (version) VALUES ('{version}');\n"),
        );
    }
    m.write(
        "V3__concurrent.sql",
        "CREATE INDEX CONCURRENTLY steps_version ON steps (version);\n",
    );
    m.write(
        "V4__placeholders.sql",
        "INSERT INTO steps (version) VALUES ('${flyway:defaultSchema}/${Team}');\n",
    );
    m.write(
        "R__latest.sql",
        "CREATE OR REPLACE VIEW latest AS SELECT max(n) AS n FROM steps;\n",
    );
    m.write("V5__conf.sql", "CREATE TABLE after_conf (id int);\n");
    m.write("V5__conf.sql.conf", "executeInTransaction=false\n");
    run(&mut with_team())
        .succeeded()
        .expect_stderr("format flyway")
        .expect_stderr("V3__concurrent.sql outside a transaction");
    assert_eq!(
        m.query("SELECT string_agg(version, ',' ORDER BY n) FROM steps"),
        "1,2,2.1,public/core,10,17.1"
    );
    assert_eq!(
        m.query(
            "SELECT string_agg(installed_rank || ':' || coalesce(version, 'R') || ':' || type || ':' || success, ',' ORDER BY installed_rank)
             FROM flyway_schema_history"
        ),
        "1:1:SQL:true,2:2:SQL:true,3:2.1:SQL:true,4:3:SQL:true,5:4:SQL:true,6:5:SQL:true,7:10:SQL:true,8:17.1:SQL:true,9:R:SQL:true"
    );
    assert_eq!(
        m.query("SELECT checksum FROM flyway_schema_history WHERE version = '1'"),
        flyway_checksum(&m.dir.join("V1__create.sql"))
    );
    assert_eq!(
        m.query(
            "SELECT description, script, installed_by FROM flyway_schema_history WHERE version = '2.1'"
        ),
        "step 2 1|V2_1__step_2_1.sql|app"
    );

    // Nothing to do, then a changed repeatable runs again, after the versioned files.
    run(&mut with_team())
        .succeeded()
        .expect_stderr("up to date: 9 migrations applied");
    m.write(
        "R__latest.sql",
        "CREATE OR REPLACE VIEW latest AS SELECT max(n) AS n, count(*) AS steps FROM steps;\n",
    );
    m.write(
        "V18__more.sql",
        "INSERT INTO steps (version) VALUES ('18');\n",
    );
    run(&mut with_team())
        .succeeded()
        .expect_stderr("applied 2 migrations");
    assert_eq!(
        m.query(
            "SELECT string_agg(coalesce(version, 'R'), ',' ORDER BY installed_rank) FROM flyway_schema_history WHERE installed_rank > 9"
        ),
        "18,R"
    );

    // A changed versioned file, an unknown placeholder and a failed row are refused.
    m.write(
        "V2__step_2.sql",
        "INSERT INTO steps (version) VALUES ('two');\n",
    );
    run(&mut with_team())
        .expect_code(1)
        .expect_stderr("V2__step_2.sql was changed after it was applied");
    m.write(
        "V2__step_2.sql",
        "INSERT INTO steps (version) VALUES ('2');\n",
    );
    // A placeholder nobody set stops a pending file before anything runs; in a file applied
    // long ago it does not stop a restart.
    run(&mut m.migrate())
        .succeeded()
        .expect_stderr("up to date");
    m.write(
        "V18.5__unset.sql",
        "INSERT INTO steps (version) VALUES ('${Team}');\n",
    );
    run(&mut m.migrate())
        .expect_code(2)
        .expect_stderr("V18.5__unset.sql: No value provided for placeholder: ${Team}");
    m.remove("V18.5__unset.sql");
    m.query(
        "INSERT INTO flyway_schema_history VALUES (12, '19', 'broken', 'SQL', 'V19__broken.sql', 0, 'app', now(), 5, false)",
    );
    run(&mut with_team())
        .expect_code(1)
        .expect_stderr("Detected failed migration to version 19")
        .expect_stderr("flyway repair");
    m.query("DELETE FROM flyway_schema_history WHERE NOT success");

    // Flyway's own advisory lock keeps initbox waiting.
    m.write(
        "V19__after_lock.sql",
        "INSERT INTO steps (version) VALUES ('19');\n",
    );
    while_locked(&m, 77_433_833_903_597, 2, &mut with_team())
        .expect_stderr("Flyway's lock held by");
}

#[test]
fn sqlx_switches_both_ways_with_sqlx_cli() {
    let m = Migrations::start();
    let sqlx_cli = |db: &str, action: &str| run_sqlx_migrate(&m.plain_url(db), &m.dir, action);
    m.write(
        "1_create_items.sql",
        "CREATE TABLE items (id int PRIMARY KEY);\n",
    );
    m.write("2_seed.sql", "INSERT INTO items VALUES (1);\n");
    sqlx_cli(APP_DB, "run");
    m.write(
        "3_index.sql",
        "-- no-transaction\nCREATE INDEX CONCURRENTLY items_id ON items (id);\n",
    );
    m.write("4_more.sql", "INSERT INTO items VALUES (2);");
    run(&mut m.migrate())
        .succeeded()
        .expect_stderr("format sqlx")
        .expect_stderr("outside a transaction (-- no-transaction)");
    let info = sqlx_cli(APP_DB, "info");
    assert_eq!(info.matches("installed").count(), 4, "{info}");
    assert!(!info.contains("pending"), "{info}");
    // sqlx itself finds nothing to do, and its checksums match ours.
    let rerun = sqlx_cli(APP_DB, "run");
    assert!(!rerun.contains("Applied"), "{rerun}");

    // The lock sqlx's library takes (`sqlx::migrate!().run()` in an app) keeps initbox waiting:
    // 0x3d32ad9e times crc32("app").
    m.write("5_later.sql", "INSERT INTO items VALUES (5);\n");
    while_locked(&m, 3_469_795_979_745_788_610, 2, &mut m.migrate())
        .expect_stderr("sqlx's migrator lock held by");
    m.remove("5_later.sql");

    // A changed applied file is refused, by name.
    m.write(
        "1_create_items.sql",
        "CREATE TABLE items (id bigint PRIMARY KEY);\n",
    );
    run(&mut m.migrate())
        .expect_code(1)
        .expect_stderr("1_create_items.sql was changed after it was applied");
    m.write(
        "1_create_items.sql",
        "CREATE TABLE items (id int PRIMARY KEY);\n",
    );

    // The other way round.
    let other = m.second_database();
    let (_, status) =
        m.initbox_then_tool(other, "sqlx", "4_more.sql", |other| sqlx_cli(other, "run"));
    expect_applied(&status, 4);
    assert_eq!(m.query_db(other, "SELECT count(*) FROM items"), "2");
}

/// Asserts that initbox's `status` lists `count` migrations as applied.
fn expect_applied(status: &Run, count: usize) {
    assert_eq!(
        status.stdout.matches("applied ").count(),
        count,
        "{}",
        status.stdout
    );
}

#[test]
fn sql_migrate_switches_both_ways_with_sql_migrate_itself() {
    let m = Migrations::start_in("migrations");
    let tool = |db: &str, action: &str| {
        let datasource = format!(
            "host=127.0.0.1 port={} user={APP_USER} password={APP_PASSWORD} dbname={db} sslmode=disable",
            m.pg.port
        );
        let config = m.scratch().join(format!("{db}.yml"));
        run_sql_migrate(&config, &datasource, &m.dir, action)
    };
    m.write(
        "1_init.sql",
        "-- +migrate Up\nCREATE TABLE items (id int PRIMARY KEY);\n-- +migrate StatementBegin\n\
         CREATE FUNCTION one() RETURNS int AS $$ BEGIN RETURN 1; END; $$ LANGUAGE plpgsql;\n-- +migrate StatementEnd\n\
         -- +migrate Down\nDROP FUNCTION one();\nDROP TABLE items;\n",
    );
    tool(APP_DB, "up");
    m.write(
        "2_index.sql",
        "-- +migrate Up notransaction\nCREATE INDEX CONCURRENTLY items_id ON items (id);\n-- +migrate Down\nDROP INDEX items_id;\n",
    );
    m.write(
        "3_seed.sql",
        "-- +migrate Up\nINSERT INTO items VALUES (one());\n-- +migrate Down\nDELETE FROM items;\n",
    );
    run(&mut m.migrate())
        .succeeded()
        .expect_stderr("format sql-migrate");
    assert_eq!(
        m.query("SELECT string_agg(id, ',' ORDER BY id) FROM gorp_migrations"),
        "1_init.sql,2_index.sql,3_seed.sql"
    );
    let status = tool(APP_DB, "status");
    for name in ["1_init.sql", "2_index.sql", "3_seed.sql"] {
        let line = status
            .lines()
            .find(|line| line.contains(name))
            .unwrap_or_else(|| panic!("{name} missing from sql-migrate status:\n{status}"));
        assert!(
            !line.contains("no"),
            "{name} not applied by sql-migrate's account:\n{status}"
        );
    }

    let other = m.second_database();
    let (_, status) = m.initbox_then_tool(other, "sql-migrate", "3_seed.sql", |other| {
        tool(other, "up")
    });
    expect_applied(&status, 3);
    assert_eq!(m.query_db(other, "SELECT id FROM items"), "1");
}

#[test]
fn auto_refuses_a_directory_that_fits_two_formats() {
    let m = Migrations::start();
    m.write("001_a.sql", "-- +goose Up\nSELECT 1;\n");
    m.write("V2__b.sql", "SELECT 2;\n");
    run(&mut m.migrate())
        .expect_code(2)
        .expect_stderr("goose (001_a.sql has '-- +goose Up')")
        .expect_stderr("flyway (V2__b.sql is a Flyway name)");
    run(m.migrate().args(["--format", "liquibase"]))
        .expect_code(2)
        .expect_stderr("unknown format 'liquibase'");
}

#[test]
fn every_run_holds_one_connection_and_a_restart_takes_no_lock() {
    let m = Migrations::start();
    m.write("001_a.sql", "CREATE TABLE a (id int);\n");
    m.write("002_b.sql", "INSERT INTO a VALUES (1);\n");
    // A runner that needed a second connection would never get it.
    m.query_db(
        "postgres",
        &format!("ALTER ROLE {APP_USER} CONNECTION LIMIT 1"),
    );
    run(m.migrate().args(["--timeout", "20s"]))
        .succeeded()
        .expect_stderr("applied 2 migrations");
    // Nothing pending: the ledger is read without the lock, so a held lock does not matter.
    let lock_key = initbox_lock_key("public.initbox_migrations");
    while_locked(&m, lock_key, 30, m.migrate().args(["--lock-timeout", "1s"]))
        .expect_stderr("up to date: 2 migrations applied");
}

/// initbox's own lock key: the first 8 bytes of SHA-256("initbox-migrate:" + ledger), computed
/// here with sha256sum so the test does not share the code it checks.
fn initbox_lock_key(ledger: &str) -> i64 {
    let output = Command::new("sh")
        .args(["-c", "printf '%s' \"$1\" | sha256sum", "sh"])
        .arg(format!("initbox-migrate:{ledger}"))
        .output()
        .unwrap();
    let hex = String::from_utf8(output.stdout).unwrap();
    u64::from_str_radix(&hex[..16], 16).unwrap() as i64
}

#[test]
fn a_tools_ledger_lives_in_the_current_schema_unless_told() {
    let m = Migrations::start();
    m.write(
        "1_items.sql",
        "-- +goose Up\nCREATE TABLE items (id int);\n",
    );
    m.query("CREATE SCHEMA ops AUTHORIZATION app; CREATE SCHEMA audit AUTHORIZATION app");
    let in_ops = format!(
        "{}?options=-c%20search_path%3Dops",
        m.pg.url(APP_USER, APP_PASSWORD, APP_DB)
    );
    run(m.migrate().env("DATABASE_URL", &in_ops))
        .succeeded()
        .expect_stderr("ledger ops.goose_db_version");
    assert_eq!(
        m.query(
            "SELECT string_agg(schemaname || '.' || tablename, ',' ORDER BY 1) FROM pg_tables WHERE tablename IN ('goose_db_version', 'items')"
        ),
        "ops.goose_db_version,ops.items"
    );
    m.write("2_more.sql", "-- +goose Up\nCREATE TABLE more (id int);\n");
    run(m.migrate().args(["--table", "audit.goose_db_version"])).succeeded();
    assert_eq!(
        m.query("SELECT string_agg(version_id::text, ',' ORDER BY id) FROM audit.goose_db_version"),
        "0,1,2"
    );
}
