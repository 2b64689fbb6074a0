//! The migrate tests' shared setup: a real PostgreSQL with a migrations directory beside it,
//! `initbox migrate` pointed at one of its databases, and the checks those tests make on a run.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::expect::Expect;
use crate::support::postgres::{APP_DB, APP_PASSWORD, APP_USER, Postgres};
use crate::support::{Run, initbox, run};

/// One test's PostgreSQL 15 (database `app`, owned by the app user) and migrations directory.
pub struct Migrations {
    pub pg: Postgres,
    /// Where the migration files go.
    pub dir: PathBuf,
    /// The temporary directory that holds `dir` (is `dir` unless started with `start_in`).
    scratch: tempfile::TempDir,
}

impl Migrations {
    /// A new server and an empty temporary directory as the migrations directory.
    pub fn start() -> Migrations {
        let pg = Postgres::start();
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        Migrations { pg, dir, scratch }
    }

    /// Like `start`, with the migrations in the subdirectory `name` of the temporary directory,
    /// for files that must sit beside the migrations rather than among them.
    pub fn start_in(name: &str) -> Migrations {
        let mut migrations = Migrations::start();
        migrations.dir = migrations.scratch().join(name);
        std::fs::create_dir(&migrations.dir).unwrap();
        migrations
    }

    /// The temporary directory that holds the migrations directory.
    pub fn scratch(&self) -> &Path {
        self.scratch.path()
    }

    /// Writes (or overwrites) one file in the migrations directory.
    pub fn write(&self, name: &str, text: &str) {
        write(&self.dir, name, text);
    }

    /// Deletes one file from the migrations directory.
    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.dir.join(name)).unwrap();
    }

    /// `initbox migrate --dir DIR` with DATABASE_URL for the app user on `db`.
    pub fn migrate_at(&self, db: &str, dir: &Path) -> Command {
        let mut command = initbox();
        command
            .env("DATABASE_URL", self.pg.url(APP_USER, APP_PASSWORD, db))
            .args(["migrate", "--dir"])
            .arg(dir);
        command
    }

    /// `initbox migrate` on this migrations directory, against database `db`.
    pub fn migrate_db(&self, db: &str) -> Command {
        self.migrate_at(db, &self.dir)
    }

    /// `initbox migrate` on this migrations directory, against the app database.
    pub fn migrate(&self) -> Command {
        self.migrate_db(APP_DB)
    }

    /// Runs SQL in database `db` as the superuser; psql's output without surrounding whitespace.
    pub fn query_db(&self, db: &str, sql: &str) -> String {
        self.pg.psql(db, sql).trim().to_string()
    }

    /// Runs SQL in the app database as the superuser.
    pub fn query(&self, sql: &str) -> String {
        self.query_db(APP_DB, sql)
    }

    /// A second database owned by the app user, for the other direction of a switch.
    pub fn second_database(&self) -> &'static str {
        self.query_db(
            "postgres",
            &format!("CREATE DATABASE app2 OWNER {APP_USER}"),
        );
        "app2"
    }

    /// The app user's URL for `db` without TLS, as the other tools' CLIs are given it.
    pub fn plain_url(&self, db: &str) -> String {
        format!(
            "{}?sslmode=disable",
            self.pg.url(APP_USER, APP_PASSWORD, db)
        )
    }

    /// The other direction of a switch: initbox (told `--format`) applies every file but `last`
    /// to `db`, then `tool` applies `last` there. Meanwhile `last` waits in the temporary
    /// directory (among the migrations unless started with `start_in`) under a name that is no
    /// migration's: `seed.later` for `3_seed.sql`. Returns the tool's output and initbox's
    /// `status` after it.
    pub fn initbox_then_tool(
        &self,
        db: &str,
        format: &str,
        last: &str,
        tool: impl FnOnce(&str) -> String,
    ) -> (String, Run) {
        let name = last.trim_start_matches(|c: char| c.is_ascii_digit());
        let name = name.trim_start_matches('_').trim_end_matches(".sql");
        let aside = self.scratch().join(format!("{name}.later"));
        std::fs::rename(self.dir.join(last), &aside).unwrap();
        run(self.migrate_db(db).args(["--format", format])).succeeded();
        std::fs::rename(&aside, self.dir.join(last)).unwrap();
        let tool_output = tool(db);
        let status = run(self.migrate_db(db).arg("status")).succeeded();
        (tool_output, status)
    }
}

/// Writes (or overwrites) the file `name` in `dir`.
pub fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}
