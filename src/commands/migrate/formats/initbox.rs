//! initbox's own format: `NNN_name.sql` (or `NNN_name.up.sql`), the whole file in one
//! transaction unless its first line is `-- initbox:no-transaction`, and a ledger with the
//! SHA-256 of what ran.

use tokio_postgres::Client;

use super::{Applied, Body, Checksum, Named, Record, State};
use crate::commands::migrate::checksum;
use crate::commands::migrate::sql;
use crate::commands::migrate::table::Table;
use crate::commands::migrate::version::Version;

/// First line of a file that must run outside a transaction (CREATE INDEX CONCURRENTLY).
pub const NO_TRANSACTION: &str = "-- initbox:no-transaction";

/// `0042_add_users.sql` -> 42: the leading digits, then `_` and a name.
pub fn classify(file_name: &str) -> Named {
    if file_name.ends_with(".down.sql") {
        return Named::Skipped("a down migration");
    }
    let Some(stem) = file_name.strip_suffix(".sql") else {
        return Named::Skipped("not a .sql file");
    };
    let digits = super::leading_digits(stem);
    let description = stem[digits.len()..]
        .strip_prefix('_')
        .map(|rest| rest.strip_suffix(".up").unwrap_or(rest));
    match (Version::parse(digits).filter(|version| version.as_i64().is_some()), description) {
        (Some(version), Some(description)) if !description.is_empty() => Named::Migration {
            version: Some(version),
            description: description.to_string(),
        },
        _ => Named::Invalid(
            "migration file names must start with a version number (NNN_name.sql or NNN_name.up.sql)"
                .into(),
        ),
    }
}

pub fn body(text: &str) -> Result<Body, String> {
    let text = normalise(text);
    let transactional = text.lines().next().map(str::trim_end) != Some(NO_TRANSACTION);
    if transactional {
        return Ok(Body::whole(&text, None));
    }
    let statements = sql::split(&text).len();
    if statements != 1 {
        return Err(format!(
            "a {NO_TRANSACTION} file must hold exactly one statement, it has {statements}"
        ));
    }
    Ok(Body::whole(&text, Some(NO_TRANSACTION.into())))
}

/// SHA-256 of the text without a BOM and with CRLF turned into LF, so a file edited on
/// Windows keeps its checksum.
pub fn checksum(text: &str) -> Checksum {
    Checksum::Sha256Hex(checksum::sha256_hex(normalise(text).as_bytes()))
}

fn normalise(text: &str) -> String {
    text.strip_prefix('\u{feff}')
        .unwrap_or(text)
        .replace("\r\n", "\n")
}

pub async fn create(client: &Client, table: &Table) -> Result<(), tokio_postgres::Error> {
    table
        .create(
            client,
            "CREATE TABLE IF NOT EXISTS {table} (
                version bigint PRIMARY KEY,
                name text NOT NULL,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now(),
                duration_ms bigint NOT NULL
            )",
        )
        .await
}

pub async fn read(client: &Client, table: &Table) -> Result<State, tokio_postgres::Error> {
    let rows = table
        .rows(
            client,
            "SELECT version, name, checksum FROM {table} ORDER BY version",
        )
        .await?;
    let mut applied = Vec::new();
    for row in rows {
        // try_get: a --table that names some other table must be an error, not a panic.
        let version: i64 = row.try_get(0)?;
        let name: String = row.try_get(1)?;
        let checksum: String = row.try_get(2)?;
        applied.push(Applied {
            shown: format!("{version} ({name})"),
            ..Applied::numbered(version, Some(Checksum::Sha256Hex(checksum)))
        });
    }
    Ok(State::of(applied))
}

pub async fn record(
    client: &Client,
    table: &Table,
    record: &Record<'_>,
) -> Result<(), tokio_postgres::Error> {
    let version = record.version.and_then(Version::as_i64).unwrap_or_default();
    let checksum = match record.checksum {
        Some(Checksum::Sha256Hex(hex)) => hex.clone(),
        _ => String::new(),
    };
    table
        .write(
            client,
            "INSERT INTO {table} (version, name, checksum, duration_ms) VALUES ($1, $2, $3, $4)",
            &[&version, &record.name, &checksum, &record.elapsed_ms],
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::migrate::formats::Transaction;

    #[test]
    fn names_follow_both_styles() {
        let version = |name: &str| match classify(name) {
            Named::Migration { version, .. } => version.map(|v| v.text),
            _ => None,
        };
        assert_eq!(version("001_init.sql").as_deref(), Some("001"));
        assert_eq!(
            version("20260101120000_add_users.up.sql").as_deref(),
            Some("20260101120000")
        );
        assert!(matches!(classify("002_x.down.sql"), Named::Skipped(_)));
        assert!(matches!(classify("README.md"), Named::Skipped(_)));
        for bad in [
            "init.sql",
            "_x.sql",
            "001.sql",
            "001_.sql",
            "v1_x.sql",
            "001-x.sql",
        ] {
            assert!(matches!(classify(bad), Named::Invalid(_)), "{bad}");
        }
    }

    #[test]
    fn checksums_ignore_bom_and_line_endings() {
        assert_eq!(
            checksum("CREATE TABLE t ();\nSELECT 1;\n"),
            checksum("\u{feff}CREATE TABLE t ();\r\nSELECT 1;\r\n")
        );
    }

    #[test]
    fn no_transaction_files_hold_one_statement() {
        let body = body(&format!(
            "{NO_TRANSACTION}\nCREATE INDEX CONCURRENTLY i ON t (a);\n"
        ))
        .unwrap();
        assert_eq!(body.transaction, Transaction::None);
        let error = super::body(&format!(
            "{NO_TRANSACTION}\nCREATE INDEX CONCURRENTLY j ON t (a);\nSELECT 1;\n"
        ))
        .unwrap_err();
        assert!(error.contains("it has 2"), "{error}");
    }
}
