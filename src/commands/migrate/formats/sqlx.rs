//! sqlx: `N_description.sql` (or `.up.sql`), the file sent whole in a transaction unless it
//! starts with `-- no-transaction`, and `_sqlx_migrations` with the SHA-384 of each file.

use tokio_postgres::Client;

use super::{Applied, Body, Checksum, Named, Record, State, ToolLock};
use crate::commands::migrate::checksum;
use crate::commands::migrate::table::Table;
use crate::commands::migrate::version::Version;

/// sqlx splits the name at its first `_`: a version that is not an integer is an error, a name
/// without `_` or `.sql` is skipped.
pub fn classify(file_name: &str) -> Named {
    let Some((number, rest)) = file_name.split_once('_') else {
        return Named::Skipped("no '_' in the name");
    };
    if !rest.ends_with(".sql") {
        return Named::Skipped("not a .sql file");
    }
    if rest.ends_with(".down.sql") {
        return Named::Skipped("a down migration");
    }
    match Version::parse(number).filter(|version| version.as_i64().is_some()) {
        Some(version) => Named::Migration {
            version: Some(version),
            description: rest
                .trim_end_matches(".sql")
                .trim_end_matches(".up")
                .replace('_', " "),
        },
        None => Named::Invalid("sqlx expects an integer version prefix (e.g. 01_foo.sql)".into()),
    }
}

/// `-- no-transaction` is matched on the raw text, at its very start, as sqlx matches it.
pub fn is_no_transaction(text: &str) -> bool {
    text.starts_with("-- no-transaction")
}

pub fn body(text: &str) -> Body {
    Body::whole(
        text,
        is_no_transaction(text).then(|| "-- no-transaction".into()),
    )
}

pub async fn create(client: &Client, table: &Table) -> Result<(), tokio_postgres::Error> {
    table
        .create(
            client,
            "CREATE TABLE IF NOT EXISTS {table} (
                version BIGINT PRIMARY KEY,
                description TEXT NOT NULL,
                installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
                success BOOLEAN NOT NULL,
                checksum BYTEA NOT NULL,
                execution_time BIGINT NOT NULL
            )",
        )
        .await
}

pub async fn read(client: &Client, table: &Table) -> Result<State, tokio_postgres::Error> {
    let rows = table
        .rows(
            client,
            "SELECT version, checksum, success FROM {table} ORDER BY version",
        )
        .await?;
    let mut state = State::default();
    for row in rows {
        let version: i64 = row.try_get(0)?;
        let checksum: Vec<u8> = row.try_get(1)?;
        let success: bool = row.try_get(2)?;
        if !success && state.unfinished.is_none() {
            state.unfinished = Some(format!(
                "migration {version} is partially applied (success = false in {table}); fix what it left, then \
                 remove its row: DELETE FROM {table} WHERE version = {version}",
                table = table.shown
            ));
        }
        state
            .applied
            .push(Applied::numbered(version, Some(Checksum::Sha384(checksum))));
    }
    Ok(state)
}

pub async fn record(
    client: &Client,
    table: &Table,
    record: &Record<'_>,
) -> Result<(), tokio_postgres::Error> {
    let version = record.version.and_then(Version::as_i64).unwrap_or_default();
    let checksum = match record.checksum {
        Some(Checksum::Sha384(bytes)) => bytes.clone(),
        _ => Vec::new(),
    };
    // sqlx records execution_time in nanoseconds.
    let nanoseconds = record.elapsed_ms.saturating_mul(1_000_000);
    table
        .write(
            client,
            "INSERT INTO {table} (version, description, success, checksum, execution_time) VALUES ($1, $2, TRUE, $3, $4)",
            &[&version, &record.description, &checksum, &nanoseconds],
        )
        .await
}

/// sqlx's Migrator (the library, as `sqlx::migrate!().run(&pool)` in an app) takes
/// pg_advisory_lock(generate_lock_id(current_database())): 0x3d32ad9e times the CRC-32/ISO-HDLC
/// of the database name (sqlx-postgres/src/migrate.rs). `sqlx migrate run` takes none.
pub fn locks(database: &str) -> Vec<ToolLock> {
    vec![ToolLock {
        key: key(database),
        why: "sqlx's migrator lock".into(),
    }]
}

fn key(database: &str) -> i64 {
    0x3d32_ad9e * i64::from(checksum::crc32(database.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::migrate::formats::Transaction;

    #[test]
    fn lock_key_is_sqlxs() {
        // 1026731422 times crc32("app") = 3379458255.
        assert_eq!(key("app"), 3_469_795_979_745_788_610);
    }

    #[test]
    fn names_and_directive() {
        match classify("20260101120000_add_users_table.up.sql") {
            Named::Migration {
                version,
                description,
            } => {
                assert_eq!(version.unwrap().text, "20260101120000");
                assert_eq!(description, "add users table");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(classify("1_x.down.sql"), Named::Skipped(_)));
        assert!(matches!(classify("README.md"), Named::Skipped(_)));
        assert!(matches!(classify("abc_x.sql"), Named::Invalid(_)));
        assert_eq!(
            body("-- no-transaction\nCREATE INDEX CONCURRENTLY i ON t (a);").transaction,
            Transaction::None
        );
        assert_eq!(
            body("\n-- no-transaction\nSELECT 1;").transaction,
            Transaction::Wrapped
        );
    }
}
