//! The real migration tools that install here, for switching tests in both directions: dbmate
//! (npm's @dbmate/linux-x64), sqlx-cli (crates.io) and sql-migrate (Debian), as scripts/setup
//! installs them.

use std::path::PathBuf;
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
pub fn run_tool(command: &mut Command) -> String {
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

pub fn dbmate() -> Command {
    tool("dbmate", "dbmate/node_modules/@dbmate/linux-x64/bin/dbmate")
}

pub fn sqlx() -> Command {
    tool("sqlx", "sqlx-cli/bin/sqlx")
}

pub fn sql_migrate() -> Command {
    tool("sql-migrate", "sql-migrate")
}
