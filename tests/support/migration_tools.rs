//! The real migration tools that install here, for switching tests in both directions: dbmate
//! (npm's @dbmate/linux-x64), sqlx-cli (crates.io) and sql-migrate (Debian), as scripts/setup
//! installs them, each run against a database the way its users run it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tool's binary: under .tools/ where scripts/setup puts the npm and cargo ones, else on PATH.
fn tool(name: &str, under_tools: &str) -> Command {
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".tools")
        .join(under_tools);
    let program = if local.exists() {
        local
    } else {
        PathBuf::from(name)
    };
    let mut command = Command::new(&program);
    for key in [
        "DATABASE_URL",
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGPASSWORD",
        "PGDATABASE",
    ] {
        command.env_remove(key);
    }
    command
}

/// Runs a tool to the end; panics with its output (and how to install it) when it fails.
fn run_tool(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{command:?}: {error} (scripts/setup installs it)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{command:?} failed:\n{text}");
    text
}

fn dbmate() -> Command {
    tool("dbmate", "dbmate/node_modules/@dbmate/linux-x64/bin/dbmate")
}

fn sqlx() -> Command {
    tool("sqlx", "sqlx-cli/bin/sqlx")
}

fn sql_migrate() -> Command {
    tool("sql-migrate", "sql-migrate")
}

/// `dbmate --url URL --migrations-dir DIR ARGS...`, run to the end; its output.
pub fn run_dbmate(url: &str, dir: &Path, args: &[&str]) -> String {
    run_tool(
        dbmate()
            .args(["--url", url, "--migrations-dir"])
            .arg(dir)
            .args(args),
    )
}

/// `sqlx migrate ACTION --source DIR --database-url URL`, run to the end; its output.
pub fn run_sqlx_migrate(url: &str, dir: &Path, action: &str) -> String {
    run_tool(
        sqlx()
            .args(["migrate", action, "--source"])
            .arg(dir)
            .args(["--database-url", url]),
    )
}

/// `sql-migrate ACTION` for the PostgreSQL `datasource` (libpq's key=value form) and the
/// migrations in `dir`, through a config file (environment `development`) written to `config`;
/// run to the end, its output.
pub fn run_sql_migrate(config: &Path, datasource: &str, dir: &Path, action: &str) -> String {
    std::fs::write(
        config,
        format!(
            "development:\n  dialect: postgres\n  datasource: {datasource}\n  dir: {}\n",
            dir.display()
        ),
    )
    .unwrap();
    run_tool(
        sql_migrate()
            .arg(action)
            .arg(format!("-config={}", config.display()))
            .arg("-env=development"),
    )
}
