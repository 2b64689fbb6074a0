//! migrate as a drop-in for golang-migrate, goose, dbmate, Flyway, sqlx and sql-migrate, against
//! a real PostgreSQL 15: each tool's naming, up sections, no-transaction rules, ledger table and
//! lock, with fixtures written here; and switching both ways with the real dbmate, sqlx-cli and
//! sql-migrate.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::migration_tools::{dbmate, run_tool, sql_migrate, sqlx};
use crate::support::postgres::{APP_DB, APP_PASSWORD, APP_USER, Postgres};
use crate::support::{Run, initbox, run};

fn migrate(pg: &Postgres, db: &str, dir: &Path) -> Command {
    let mut command = initbox();
    command
        .env("DATABASE_URL", pg.url(APP_USER, APP_PASSWORD, db))
        .args(["migrate", "--dir"])
        .arg(dir);
    command
}

fn write(dir: &Path, name: &str, sql: &str) {
    std::fs::write(dir.join(name), sql).unwrap();
}

fn query(pg: &Postgres, db: &str, sql: &str) -> String {
    pg.psql(db, sql).trim().to_string()
}

/// A second database owned by the app user, for the other direction of a switch.
fn second_database(pg: &Postgres) -> &'static str {
    pg.psql(
        "postgres",
        &format!("CREATE DATABASE app2 OWNER {APP_USER}"),
    );
    "app2"
}

fn plain_url(pg: &Postgres, db: &str) -> String {
    format!("{}?sslmode=disable", pg.url(APP_USER, APP_PASSWORD, db))
}

/// Runs migrate while another session holds advisory lock `key` for 2 s, as another tool's
/// runner would; returns the run, which must succeed once the lock is free.
fn while_locked(pg: &Postgres, key: i64, command: &mut Command) -> Run {
    let mut holder = pg.hold_advisory_lock(APP_DB, key, 2);
    let waited = run(command);
    let _ = holder.kill();
    let _ = holder.wait();
    expect_ok(waited)
}

fn expect_ok(run: Run) -> Run {
    run.expect_code(0);
    run
}

#[test]
fn golang_migrate_history_continues_in_its_own_table() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "1_create_items.up.sql",
        "CREATE TABLE items (id int PRIMARY KEY, body text);\n",
    );
    write(d, "1_create_items.down.sql", "DROP TABLE items;\n");
    write(
        d,
        "2_seed.up.sql",
        "BEGIN;\nINSERT INTO items VALUES (1, 'a');\nINSERT INTO items VALUES (2, 'b');\nCOMMIT;\n",
    );
    write(d, "README.md", "# migrations\n");
    // What golang-migrate left: its table in the current schema, one row, version 2.
    query(
        &pg,
        APP_DB,
        "CREATE TABLE items (id int PRIMARY KEY, body text); INSERT INTO items VALUES (1, 'a'), (2, 'b');
         CREATE TABLE schema_migrations (version bigint not null primary key, dirty boolean not null);
         INSERT INTO schema_migrations VALUES (2, false);
         ALTER TABLE items OWNER TO app; ALTER TABLE schema_migrations OWNER TO app;",
    );
    // A file in its own BEGIN/COMMIT; one that must run outside a transaction; a dollar-quoted
    // body without a trailing newline; and a later file that changes golang-migrate's own table.
    write(
        d,
        "3_more.up.sql",
        "BEGIN;\nINSERT INTO items VALUES (3, 'c');\nCOMMIT;\n",
    );
    write(
        d,
        "4_items_body.up.sql",
        "CREATE INDEX CONCURRENTLY items_body ON items (body);\n",
    );
    write(
        d,
        "5_function.up.sql",
        "CREATE FUNCTION item_count() RETURNS bigint AS $func$\nBEGIN RETURN (SELECT count(*) FROM items); END;\n$func$ LANGUAGE plpgsql;",
    );
    write(
        d,
        "10_ledger_note.up.sql",
        "ALTER TABLE schema_migrations ADD COLUMN note text NOT NULL DEFAULT 'kept';\n",
    );
    let first = expect_ok(run(&mut migrate(&pg, APP_DB, d)));
    assert!(
        first.stderr.contains("format golang-migrate"),
        "{}",
        first.stderr
    );
    assert!(
        first
            .stderr
            .contains("applying 4_items_body.up.sql outside a transaction"),
        "{}",
        first.stderr
    );
    assert!(
        first.stderr.contains("applied 4 migrations"),
        "{}",
        first.stderr
    );
    assert_eq!(
        query(
            &pg,
            APP_DB,
            "SELECT version, dirty, note FROM schema_migrations"
        ),
        "10|f|kept"
    );
    assert_eq!(query(&pg, APP_DB, "SELECT item_count()"), "3");
    assert_eq!(
        query(
            &pg,
            APP_DB,
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_body'::regclass"
        ),
        "t"
    );

    // golang-migrate's own lock (its CLI's key for database "/app") keeps initbox waiting.
    write(
        d,
        "11_later.up.sql",
        "INSERT INTO items VALUES (11, 'k');\n",
    );
    let waited = while_locked(&pg, 1_726_534_663, &mut migrate(&pg, APP_DB, d));
    assert!(
        waited
            .stderr
            .contains("golang-migrate's lock for database '/app' held by"),
        "{}",
        waited.stderr
    );
    assert!(
        waited.elapsed >= Duration::from_millis(1500),
        "{:?}",
        waited.elapsed
    );

    // A dirty version is refused with the command that resolves it; force clears it.
    query(&pg, APP_DB, "UPDATE schema_migrations SET dirty = true");
    write(
        d,
        "12_after.up.sql",
        "INSERT INTO items VALUES (12, 'l');\n",
    );
    let dirty = run(&mut migrate(&pg, APP_DB, d));
    dirty.expect_code(1);
    assert!(
        dirty.stderr.contains("version 11 is dirty"),
        "{}",
        dirty.stderr
    );
    assert!(
        dirty.stderr.contains("initbox migrate force VERSION"),
        "{}",
        dirty.stderr
    );
    expect_ok(run(migrate(&pg, APP_DB, d).args(["force", "11"])));
    expect_ok(run(&mut migrate(&pg, APP_DB, d)));
    assert_eq!(
        query(&pg, APP_DB, "SELECT version, dirty FROM schema_migrations"),
        "12|f"
    );

    // A file that opens a transaction and never commits it is committed with its version, as
    // golang-migrate's own version update commits it.
    write(
        d,
        "13_unclosed.up.sql",
        "BEGIN;\nINSERT INTO items VALUES (13, 'm');\n",
    );
    let unclosed = expect_ok(run(&mut migrate(&pg, APP_DB, d)));
    assert!(
        unclosed.stderr.contains("controls its own transactions"),
        "{}",
        unclosed.stderr
    );
    assert_eq!(
        query(
            &pg,
            APP_DB,
            "SELECT (SELECT version || '|' || dirty FROM schema_migrations), (SELECT count(*) FROM items WHERE id = 13)"
        ),
        "13|false|1"
    );
}

#[test]
fn goose_files_run_their_up_sections_by_goose_rules() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "00001_create_items.sql",
        "-- +goose Up\nCREATE TABLE items (id int PRIMARY KEY, owner text);\nINSERT INTO items VALUES (1, 'x');\n\n\
         -- +goose Down\nDROP TABLE items;\n",
    );
    write(
        d,
        "00002_function.sql",
        "-- +goose Up\n-- +goose StatementBegin\nCREATE FUNCTION bump() RETURNS void AS $$\nBEGIN\n  UPDATE items SET id = id + 100;\nEND;\n$$ LANGUAGE plpgsql;\n\
         -- +goose StatementEnd\n-- +goose Down\nDROP FUNCTION bump();\n",
    );
    write(
        d,
        "00003_indexes.sql",
        "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY items_owner ON items (owner);\n\
         CREATE UNIQUE INDEX CONCURRENTLY items_id_owner ON items (id, owner);\n-- +goose Down\nDROP INDEX items_owner;\n",
    );
    write(
        d,
        "00004_envsub.sql",
        "-- +goose Up\n-- +goose ENVSUB ON\nUPDATE items SET owner = '${ITEMS_OWNER:-nobody}';\n-- +goose ENVSUB OFF\n",
    );
    let first = expect_ok(run(migrate(&pg, APP_DB, d).env("ITEMS_OWNER", "team-a")));
    assert!(first.stderr.contains("format goose"), "{}", first.stderr);
    assert!(
        first
            .stderr
            .contains("outside a transaction (-- +goose NO TRANSACTION)"),
        "{}",
        first.stderr
    );
    assert_eq!(
        query(
            &pg,
            APP_DB,
            "SELECT string_agg(version_id || ':' || is_applied, ',' ORDER BY id) FROM goose_db_version"
        ),
        "0:true,1:true,2:true,3:true,4:true"
    );
    // The Down sections did not run, the function did, and ENVSUB substituted.
    assert_eq!(
        query(&pg, APP_DB, "SELECT id, owner FROM items"),
        "1|team-a"
    );
    assert_eq!(
        query(
            &pg,
            APP_DB,
            "SELECT count(*) FROM pg_index WHERE indisvalid AND indrelid = 'items'::regclass"
        ),
        "3"
    );

    // goose's session lock (its Provider's default key) keeps initbox waiting.
    write(
        d,
        "00005_later.sql",
        "-- +goose Up\nINSERT INTO items VALUES (5, 'y');\n",
    );
    let waited = while_locked(&pg, 4_097_083_626, &mut migrate(&pg, APP_DB, d));
    assert!(
        waited.stderr.contains("goose's session lock held by"),
        "{}",
        waited.stderr
    );

    // A Go migration is goose's alone: pending, it stops the run and says why.
    write(d, "00006_backfill.go", "package migrations\n");
    let go = run(&mut migrate(&pg, APP_DB, d));
    go.expect_code(2);
    assert!(
        go.stderr
            .contains("pending 00006_backfill.go is a Go migration"),
        "{}",
        go.stderr
    );
}

#[test]
fn dbmate_switches_both_ways_with_dbmate_itself() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let dbmate_up = |db: &str| {
        run_tool(
            dbmate()
                .args(["--url", &plain_url(&pg, db), "--migrations-dir"])
                .arg(d)
                .args(["--no-dump-schema", "up"]),
        )
    };
    let dbmate_status = |db: &str| {
        run_tool(
            dbmate()
                .args(["--url", &plain_url(&pg, db), "--migrations-dir"])
                .arg(d)
                .arg("status"),
        )
    };
    write(
        d,
        "20260101000001_create_items.sql",
        "-- migrate:up\nCREATE TABLE items (id int PRIMARY KEY);\n\n-- migrate:down\nDROP TABLE items;\n",
    );
    dbmate_up(APP_DB);
    // The down section must not run with the up section.
    write(
        d,
        "20260101000002_index.sql",
        "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY items_id ON items (id);\n\n-- migrate:down\nDROP INDEX items_id;\n",
    );
    write(
        d,
        "20260101000003_seed.sql",
        "-- migrate:up\nINSERT INTO items VALUES (1), (2);\n-- migrate:down\nDELETE FROM items;\n",
    );
    let ours = expect_ok(run(&mut migrate(&pg, APP_DB, d)));
    assert!(ours.stderr.contains("format dbmate"), "{}", ours.stderr);
    assert_eq!(query(&pg, APP_DB, "SELECT count(*) FROM items"), "2");
    assert_eq!(
        query(
            &pg,
            APP_DB,
            "SELECT string_agg(version, ',' ORDER BY version) FROM schema_migrations"
        ),
        "20260101000001,20260101000002,20260101000003"
    );
    let status = dbmate_status(APP_DB);
    assert!(
        status.contains("Applied: 3") && status.contains("Pending: 0"),
        "{status}"
    );

    // The other way: initbox first, dbmate the rest, initbox's status sees all of it.
    let other = second_database(&pg);
    std::fs::rename(
        d.join("20260101000003_seed.sql"),
        dir.path().join("seed.later"),
    )
    .unwrap();
    expect_ok(run(migrate(&pg, other, d).args(["--format", "dbmate"])));
    std::fs::rename(
        dir.path().join("seed.later"),
        d.join("20260101000003_seed.sql"),
    )
    .unwrap();
    let dbmate_rest = dbmate_up(other);
    assert!(
        dbmate_rest.contains("20260101000003_seed.sql"),
        "{dbmate_rest}"
    );
    let status = expect_ok(run(migrate(&pg, other, d).arg("status")));
    assert_eq!(
        status.stdout,
        "applied 20260101000001 20260101000001_create_items.sql\n\
         applied 20260101000002 20260101000002_index.sql\n\
         applied 20260101000003 20260101000003_seed.sql\n"
    );
    assert!(
        status.stderr.contains("checksums: none recorded"),
        "{}",
        status.stderr
    );
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
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "V1__create.sql",
        "CREATE TABLE steps (n serial PRIMARY KEY, version text);\r\nINSERT INTO steps (version) VALUES ('1');\r\n",
    );
    for version in ["2", "2.1", "10", "17.1"] {
        write(
            d,
            &format!(
                "V{}__step_{}.sql",
                version.replace('.', "_"),
                version.replace('.', "_")
            ),
            &format!("INSERT INTO steps (version) VALUES ('{version}');\n"),
        );
    }
    write(
        d,
        "V3__concurrent.sql",
        "CREATE INDEX CONCURRENTLY steps_version ON steps (version);\n",
    );
    write(
        d,
        "V4__placeholders.sql",
        "INSERT INTO steps (version) VALUES ('${flyway:defaultSchema}/${Team}');\n",
    );
    write(
        d,
        "R__latest.sql",
        "CREATE OR REPLACE VIEW latest AS SELECT max(n) AS n FROM steps;\n",
    );
    write(d, "V5__conf.sql", "CREATE TABLE after_conf (id int);\n");
    write(d, "V5__conf.sql.conf", "executeInTransaction=false\n");
    let first = expect_ok(run(
        migrate(&pg, APP_DB, d).env("FLYWAY_PLACEHOLDERS_TEAM", "core")
    ));
    assert!(first.stderr.contains("format flyway"), "{}", first.stderr);
    assert!(
        first
            .stderr
            .contains("V3__concurrent.sql outside a transaction"),
        "{}",
        first.stderr
    );
    assert_eq!(
        query(
            &pg,
            APP_DB,
            "SELECT string_agg(version, ',' ORDER BY n) FROM steps"
        ),
        "1,2,2.1,public/core,10,17.1"
    );
    assert_eq!(
        query(
            &pg,
            APP_DB,
            "SELECT string_agg(installed_rank || ':' || coalesce(version, 'R') || ':' || type || ':' || success, ',' ORDER BY installed_rank)
             FROM flyway_schema_history"
        ),
        "1:1:SQL:true,2:2:SQL:true,3:2.1:SQL:true,4:3:SQL:true,5:4:SQL:true,6:5:SQL:true,7:10:SQL:true,8:17.1:SQL:true,9:R:SQL:true"
    );
    assert_eq!(
        query(
            &pg,
            APP_DB,
            "SELECT checksum FROM flyway_schema_history WHERE version = '1'"
        ),
        flyway_checksum(&d.join("V1__create.sql"))
    );
    assert_eq!(
        query(
            &pg,
            APP_DB,
            "SELECT description, script, installed_by FROM flyway_schema_history WHERE version = '2.1'"
        ),
        "step 2 1|V2_1__step_2_1.sql|app"
    );

    // Nothing to do, then a changed repeatable runs again, after the versioned files.
    let again = expect_ok(run(
        migrate(&pg, APP_DB, d).env("FLYWAY_PLACEHOLDERS_TEAM", "core")
    ));
    assert!(
        again.stderr.contains("up to date: 9 migrations applied"),
        "{}",
        again.stderr
    );
    write(
        d,
        "R__latest.sql",
        "CREATE OR REPLACE VIEW latest AS SELECT max(n) AS n, count(*) AS steps FROM steps;\n",
    );
    write(
        d,
        "V18__more.sql",
        "INSERT INTO steps (version) VALUES ('18');\n",
    );
    let changed = expect_ok(run(
        migrate(&pg, APP_DB, d).env("FLYWAY_PLACEHOLDERS_TEAM", "core")
    ));
    assert!(
        changed.stderr.contains("applied 2 migrations"),
        "{}",
        changed.stderr
    );
    assert_eq!(
        query(
            &pg,
            APP_DB,
            "SELECT string_agg(coalesce(version, 'R'), ',' ORDER BY installed_rank) FROM flyway_schema_history WHERE installed_rank > 9"
        ),
        "18,R"
    );

    // A changed versioned file, an unknown placeholder and a failed row are refused.
    write(
        d,
        "V2__step_2.sql",
        "INSERT INTO steps (version) VALUES ('two');\n",
    );
    let edited = run(migrate(&pg, APP_DB, d).env("FLYWAY_PLACEHOLDERS_TEAM", "core"));
    edited.expect_code(1);
    assert!(
        edited
            .stderr
            .contains("V2__step_2.sql was changed after it was applied"),
        "{}",
        edited.stderr
    );
    write(
        d,
        "V2__step_2.sql",
        "INSERT INTO steps (version) VALUES ('2');\n",
    );
    // A placeholder nobody set stops a pending file before anything runs; in a file applied
    // long ago it does not stop a restart.
    let restart = expect_ok(run(&mut migrate(&pg, APP_DB, d)));
    assert!(restart.stderr.contains("up to date"), "{}", restart.stderr);
    write(
        d,
        "V18.5__unset.sql",
        "INSERT INTO steps (version) VALUES ('${Team}');\n",
    );
    let unset = run(&mut migrate(&pg, APP_DB, d));
    unset.expect_code(2);
    assert!(
        unset
            .stderr
            .contains("V18.5__unset.sql: No value provided for placeholder: ${Team}"),
        "{}",
        unset.stderr
    );
    std::fs::remove_file(d.join("V18.5__unset.sql")).unwrap();
    query(
        &pg,
        APP_DB,
        "INSERT INTO flyway_schema_history VALUES (12, '19', 'broken', 'SQL', 'V19__broken.sql', 0, 'app', now(), 5, false)",
    );
    let failed = run(migrate(&pg, APP_DB, d).env("FLYWAY_PLACEHOLDERS_TEAM", "core"));
    failed.expect_code(1);
    assert!(
        failed
            .stderr
            .contains("Detected failed migration to version 19"),
        "{}",
        failed.stderr
    );
    assert!(failed.stderr.contains("flyway repair"), "{}", failed.stderr);
    query(
        &pg,
        APP_DB,
        "DELETE FROM flyway_schema_history WHERE NOT success",
    );

    // Flyway's own advisory lock keeps initbox waiting.
    write(
        d,
        "V19__after_lock.sql",
        "INSERT INTO steps (version) VALUES ('19');\n",
    );
    let waited = while_locked(
        &pg,
        77_433_833_903_597,
        migrate(&pg, APP_DB, d).env("FLYWAY_PLACEHOLDERS_TEAM", "core"),
    );
    assert!(
        waited.stderr.contains("Flyway's lock held by"),
        "{}",
        waited.stderr
    );
}

#[test]
fn sqlx_switches_both_ways_with_sqlx_cli() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sqlx_cli = |db: &str, action: &str| {
        run_tool(
            sqlx()
                .args(["migrate", action, "--source"])
                .arg(d)
                .args(["--database-url", &plain_url(&pg, db)]),
        )
    };
    write(
        d,
        "1_create_items.sql",
        "CREATE TABLE items (id int PRIMARY KEY);\n",
    );
    write(d, "2_seed.sql", "INSERT INTO items VALUES (1);\n");
    sqlx_cli(APP_DB, "run");
    write(
        d,
        "3_index.sql",
        "-- no-transaction\nCREATE INDEX CONCURRENTLY items_id ON items (id);\n",
    );
    write(d, "4_more.sql", "INSERT INTO items VALUES (2);");
    let ours = expect_ok(run(&mut migrate(&pg, APP_DB, d)));
    assert!(ours.stderr.contains("format sqlx"), "{}", ours.stderr);
    assert!(
        ours.stderr
            .contains("outside a transaction (-- no-transaction)"),
        "{}",
        ours.stderr
    );
    let info = sqlx_cli(APP_DB, "info");
    assert_eq!(info.matches("installed").count(), 4, "{info}");
    assert!(!info.contains("pending"), "{info}");
    // sqlx itself finds nothing to do, and its checksums match ours.
    let rerun = sqlx_cli(APP_DB, "run");
    assert!(!rerun.contains("Applied"), "{rerun}");

    // The lock sqlx's library takes (`sqlx::migrate!().run()` in an app) keeps initbox waiting:
    // 0x3d32ad9e times crc32("app").
    write(d, "5_later.sql", "INSERT INTO items VALUES (5);\n");
    let waited = while_locked(&pg, 3_469_795_979_745_788_610, &mut migrate(&pg, APP_DB, d));
    assert!(
        waited.stderr.contains("sqlx's migrator lock held by"),
        "{}",
        waited.stderr
    );
    std::fs::remove_file(d.join("5_later.sql")).unwrap();

    // A changed applied file is refused, by name.
    write(
        d,
        "1_create_items.sql",
        "CREATE TABLE items (id bigint PRIMARY KEY);\n",
    );
    let changed = run(&mut migrate(&pg, APP_DB, d));
    changed.expect_code(1);
    assert!(
        changed
            .stderr
            .contains("1_create_items.sql was changed after it was applied"),
        "{}",
        changed.stderr
    );
    write(
        d,
        "1_create_items.sql",
        "CREATE TABLE items (id int PRIMARY KEY);\n",
    );

    // The other way round.
    let other = second_database(&pg);
    std::fs::rename(d.join("4_more.sql"), dir.path().join("more.later")).unwrap();
    expect_ok(run(migrate(&pg, other, d).args(["--format", "sqlx"])));
    std::fs::rename(dir.path().join("more.later"), d.join("4_more.sql")).unwrap();
    sqlx_cli(other, "run");
    let status = expect_ok(run(migrate(&pg, other, d).arg("status")));
    assert_eq!(
        status.stdout.matches("applied ").count(),
        4,
        "{}",
        status.stdout
    );
    assert_eq!(query(&pg, other, "SELECT count(*) FROM items"), "2");
}

#[test]
fn sql_migrate_switches_both_ways_with_sql_migrate_itself() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("migrations");
    std::fs::create_dir(&d).unwrap();
    let config = |db: &str| {
        let path = dir.path().join(format!("{db}.yml"));
        std::fs::write(
            &path,
            format!(
                "development:\n  dialect: postgres\n  datasource: host=127.0.0.1 port={} user={APP_USER} password={APP_PASSWORD} dbname={db} sslmode=disable\n  dir: {}\n",
                pg.port,
                d.display()
            ),
        )
        .unwrap();
        path
    };
    let tool = |db: &str, action: &str| {
        run_tool(
            sql_migrate()
                .arg(action)
                .arg(format!("-config={}", config(db).display()))
                .arg("-env=development"),
        )
    };
    write(
        &d,
        "1_init.sql",
        "-- +migrate Up\nCREATE TABLE items (id int PRIMARY KEY);\n-- +migrate StatementBegin\n\
         CREATE FUNCTION one() RETURNS int AS $$ BEGIN RETURN 1; END; $$ LANGUAGE plpgsql;\n-- +migrate StatementEnd\n\
         -- +migrate Down\nDROP FUNCTION one();\nDROP TABLE items;\n",
    );
    tool(APP_DB, "up");
    write(
        &d,
        "2_index.sql",
        "-- +migrate Up notransaction\nCREATE INDEX CONCURRENTLY items_id ON items (id);\n-- +migrate Down\nDROP INDEX items_id;\n",
    );
    write(
        &d,
        "3_seed.sql",
        "-- +migrate Up\nINSERT INTO items VALUES (one());\n-- +migrate Down\nDELETE FROM items;\n",
    );
    let ours = expect_ok(run(&mut migrate(&pg, APP_DB, &d)));
    assert!(
        ours.stderr.contains("format sql-migrate"),
        "{}",
        ours.stderr
    );
    assert_eq!(
        query(
            &pg,
            APP_DB,
            "SELECT string_agg(id, ',' ORDER BY id) FROM gorp_migrations"
        ),
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

    let other = second_database(&pg);
    std::fs::rename(d.join("3_seed.sql"), dir.path().join("seed.later")).unwrap();
    expect_ok(run(
        migrate(&pg, other, &d).args(["--format", "sql-migrate"])
    ));
    std::fs::rename(dir.path().join("seed.later"), d.join("3_seed.sql")).unwrap();
    tool(other, "up");
    let status = expect_ok(run(migrate(&pg, other, &d).arg("status")));
    assert_eq!(
        status.stdout.matches("applied ").count(),
        3,
        "{}",
        status.stdout
    );
    assert_eq!(query(&pg, other, "SELECT id FROM items"), "1");
}

#[test]
fn auto_refuses_a_directory_that_fits_two_formats() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "001_a.sql", "-- +goose Up\nSELECT 1;\n");
    write(dir.path(), "V2__b.sql", "SELECT 2;\n");
    let both = run(&mut migrate(&pg, APP_DB, dir.path()));
    both.expect_code(2);
    assert!(
        both.stderr.contains("goose (001_a.sql has '-- +goose Up')"),
        "{}",
        both.stderr
    );
    assert!(
        both.stderr.contains("flyway (V2__b.sql is a Flyway name)"),
        "{}",
        both.stderr
    );
    let bad = run(migrate(&pg, APP_DB, dir.path()).args(["--format", "liquibase"]));
    bad.expect_code(2);
    assert!(
        bad.stderr.contains("unknown format 'liquibase'"),
        "{}",
        bad.stderr
    );
}

#[test]
fn every_run_holds_one_connection_and_a_restart_takes_no_lock() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "001_a.sql", "CREATE TABLE a (id int);\n");
    write(dir.path(), "002_b.sql", "INSERT INTO a VALUES (1);\n");
    // A runner that needed a second connection would never get it.
    pg.psql(
        "postgres",
        &format!("ALTER ROLE {APP_USER} CONNECTION LIMIT 1"),
    );
    let first = run(migrate(&pg, APP_DB, dir.path()).args(["--timeout", "20s"]));
    first.expect_code(0);
    assert!(
        first.stderr.contains("applied 2 migrations"),
        "{}",
        first.stderr
    );
    // Nothing pending: the ledger is read without the lock, so a held lock does not matter.
    let lock_key = initbox_lock_key("public.initbox_migrations");
    let mut holder = pg.hold_advisory_lock(APP_DB, lock_key, 30);
    let restart = run(migrate(&pg, APP_DB, dir.path()).args(["--lock-timeout", "1s"]));
    let _ = holder.kill();
    let _ = holder.wait();
    restart.expect_code(0);
    assert!(
        restart.stderr.contains("up to date: 2 migrations applied"),
        "{}",
        restart.stderr
    );
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
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "1_items.sql",
        "-- +goose Up\nCREATE TABLE items (id int);\n",
    );
    query(
        &pg,
        APP_DB,
        "CREATE SCHEMA ops AUTHORIZATION app; CREATE SCHEMA audit AUTHORIZATION app",
    );
    let in_ops = format!(
        "{}?options=-c%20search_path%3Dops",
        pg.url(APP_USER, APP_PASSWORD, APP_DB)
    );
    let first = expect_ok(run(
        migrate(&pg, APP_DB, dir.path()).env("DATABASE_URL", &in_ops)
    ));
    assert!(
        first.stderr.contains("ledger ops.goose_db_version"),
        "{}",
        first.stderr
    );
    assert_eq!(
        query(
            &pg,
            APP_DB,
            "SELECT string_agg(schemaname || '.' || tablename, ',' ORDER BY 1) FROM pg_tables WHERE tablename IN ('goose_db_version', 'items')"
        ),
        "ops.goose_db_version,ops.items"
    );
    write(
        dir.path(),
        "2_more.sql",
        "-- +goose Up\nCREATE TABLE more (id int);\n",
    );
    expect_ok(run(
        migrate(&pg, APP_DB, dir.path()).args(["--table", "audit.goose_db_version"])
    ));
    assert_eq!(
        query(
            &pg,
            APP_DB,
            "SELECT string_agg(version_id::text, ',' ORDER BY id) FROM audit.goose_db_version"
        ),
        "0,1,2"
    );
}
