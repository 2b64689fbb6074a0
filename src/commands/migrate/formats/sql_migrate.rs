//! sql-migrate: every `.sql` file, named in the ledger by its file name, with `-- +migrate Up` /
//! `Down` sections (which may repeat), statements split as goose splits them and sent one by
//! one, `notransaction` on the Up line, and `gorp_migrations(id, applied_at)`.

use tokio_postgres::Client;

use super::{Applied, Body, Named, Record, State};
use crate::commands::migrate::table::Table;
use crate::commands::migrate::version::Version;

pub fn classify(file_name: &str) -> Named {
    if !file_name.ends_with(".sql") {
        return Named::Skipped("not a .sql file");
    }
    let digits = super::leading_digits(file_name);
    Named::Migration {
        // Files without a number still run, ordered by name after the numbered ones.
        version: Version::parse(digits).filter(|version| version.as_i64().is_some()),
        description: file_name.trim_end_matches(".sql").to_string(),
    }
}

/// sql-migrate's command prefix, matched case-sensitively at the start of a line.
const COMMAND: &str = "-- +migrate ";

pub fn is_command(line: &str) -> bool {
    line.starts_with(COMMAND)
}

#[derive(PartialEq, Clone, Copy)]
enum Section {
    None,
    Up,
    Down,
}

/// sql-migrate's sqlparse: commands are lines starting `-- +migrate ` (case-sensitive), other
/// `-- ` comment lines are dropped, statements end at a line-ending semicolon outside a
/// StatementBegin/End block; each is sent without its final `;`.
pub fn body(text: &str) -> Result<Body, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut section = Section::None;
    let mut seen_direction = false;
    let mut in_block = false;
    let mut no_transaction = false;
    let mut buffer = super::Gathered::default();
    let mut pieces = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if let Some(command) = line.strip_prefix(COMMAND) {
            let mut words = command.split_whitespace();
            match words.next() {
                Some(direction @ ("Up" | "Down")) => {
                    if !buffer.is_blank() {
                        return Err(format!(
                            "line {number}: the last statement must be ended by a semicolon or '-- +migrate StatementEnd' before a new section"
                        ));
                    }
                    buffer.discard();
                    section = if direction == "Up" {
                        Section::Up
                    } else {
                        Section::Down
                    };
                    seen_direction = true;
                    if section == Section::Up && words.any(|option| option == "notransaction") {
                        no_transaction = true;
                    }
                }
                Some("StatementBegin") => {
                    in_block = true;
                    buffer.starts_at(number + 1);
                }
                Some("StatementEnd") => {
                    if !in_block {
                        return Err(format!(
                            "line {number}: StatementEnd without StatementBegin"
                        ));
                    }
                    in_block = false;
                    if section == Section::Up {
                        buffer.take_into(&mut pieces, finish);
                    }
                    buffer.discard();
                }
                // sql-migrate ignores commands it does not know.
                _ => {}
            }
            continue;
        }
        // Comment lines at the start of a line never reach the server; `-- +...` included.
        if line.starts_with("-- ") {
            continue;
        }
        if section == Section::None {
            continue;
        }
        buffer.add(line, number);
        if !in_block && super::ends_with_semicolon(line) {
            if section == Section::Up {
                buffer.take_into(&mut pieces, finish);
            }
            buffer.discard();
        }
    }
    if !seen_direction {
        return Err("no Up/Down annotations found, so no statements were executed (sql-migrate needs '-- +migrate Up')".into());
    }
    if in_block {
        return Err(
            "a '-- +migrate StatementBegin' is never ended by '-- +migrate StatementEnd'".into(),
        );
    }
    if !buffer.is_blank() {
        return Err(format!(
            "line {}: the last statement must be ended by a semicolon or '-- +migrate StatementEnd'",
            buffer.line()
        ));
    }
    Ok(Body::new(
        pieces,
        no_transaction.then(|| "-- +migrate Up notransaction".into()),
    ))
}

/// sql-migrate strips one trailing newline, then one space, then one `;`.
fn finish(text: &str) -> &str {
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix(' ').unwrap_or(text);
    text.strip_suffix(';').unwrap_or(text)
}

pub async fn create(client: &Client, table: &Table) -> Result<(), tokio_postgres::Error> {
    table
        .create(
            client,
            "create table if not exists {table} (\"id\" text not null primary key, \"applied_at\" timestamp with time zone)",
        )
        .await
}

pub async fn read(client: &Client, table: &Table) -> Result<State, tokio_postgres::Error> {
    let ids = table
        .column(client, "SELECT id FROM {table} ORDER BY id")
        .await?;
    Ok(State::of(ids.into_iter().map(Applied::named).collect()))
}

pub async fn record(
    client: &Client,
    table: &Table,
    record: &Record<'_>,
) -> Result<(), tokio_postgres::Error> {
    table
        .write(
            client,
            "insert into {table} (\"id\", \"applied_at\") values ($1, now())",
            &[&record.name],
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::migrate::formats::Transaction;

    #[test]
    fn up_sections_split_as_sql_migrate_splits_them() {
        let text = "-- a note\n-- +migrate Up\nCREATE TABLE a (id int);\n-- +migrate StatementBegin\n\
                    CREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END; $$ LANGUAGE plpgsql;\n\
                    -- +migrate StatementEnd\n-- +migrate Down\nDROP TABLE a;\n-- +migrate Up\nINSERT INTO a VALUES (1);\n";
        let body = body(text).unwrap();
        let sql: Vec<&str> = body.pieces.iter().map(|piece| piece.sql.as_str()).collect();
        assert_eq!(
            sql,
            [
                "CREATE TABLE a (id int)",
                // sql-migrate drops the last `;` of every statement, a StatementEnd block's too.
                "CREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END; $$ LANGUAGE plpgsql",
                "INSERT INTO a VALUES (1)"
            ]
        );
        assert_eq!(body.pieces[2].line, 10);
        assert_eq!(body.transaction, Transaction::Wrapped);
    }

    #[test]
    fn notransaction_and_errors() {
        let body =
            body("-- +migrate Up notransaction\nCREATE INDEX CONCURRENTLY i ON a (id);\n").unwrap();
        assert_eq!(body.transaction, Transaction::None);
        // A file saved with a byte-order mark starts with its command all the same.
        let marked = super::body("\u{feff}-- +migrate Up\nSELECT 1;\n").unwrap();
        assert_eq!(marked.pieces[0].sql, "SELECT 1");
        for (text, expected) in [
            ("CREATE TABLE a ();\n", "no Up/Down"),
            ("-- +migrate Up\nSELECT 1\n", "semicolon"),
            (
                "-- +migrate Up\n-- +migrate StatementBegin\nSELECT 1;\n",
                "StatementEnd",
            ),
        ] {
            let error = super::body(text).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
        // Case-sensitive: `-- +migrate up` is no command, so this file has no Up section.
        assert!(super::body("-- +migrate up\nSELECT 1;\n").is_err());
    }
}
