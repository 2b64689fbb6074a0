//! The ledger table: which versions are applied, with the checksum of what ran.

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

/// A schema-qualified table name, checked and quoted once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ledger {
    /// `schema.table` as given, for messages and the lock key.
    pub name: String,
    quoted: String,
}

/// One row of the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub version: i64,
    pub name: String,
    pub checksum: String,
}

impl Ledger {
    /// `table` or `schema.table`, plain identifiers only (letters, digits, '_'), so the name
    /// can be quoted safely into SQL.
    pub fn parse(text: &str) -> Result<Ledger, String> {
        let parts: Vec<&str> = text.split('.').collect();
        let identifier = |part: &str| {
            !part.is_empty()
                && part.len() <= 63
                && !part.starts_with(|c: char| c.is_ascii_digit())
                && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        };
        let (schema, table) = match parts.as_slice() {
            [table] => ("public", *table),
            [schema, table] => (*schema, *table),
            _ => {
                return Err(format!(
                    "invalid table '{text}': expected TABLE or SCHEMA.TABLE"
                ));
            }
        };
        if !identifier(schema) || !identifier(table) {
            return Err(format!(
                "invalid table '{text}': names may hold letters, digits and '_' only"
            ));
        }
        Ok(Ledger {
            name: format!("{schema}.{table}"),
            quoted: format!("\"{schema}\".\"{table}\""),
        })
    }

    pub async fn create(&self, client: &Client) -> Result<(), tokio_postgres::Error> {
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {} (
                    version bigint PRIMARY KEY,
                    name text NOT NULL,
                    checksum text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now(),
                    duration_ms bigint NOT NULL
                )",
                self.quoted
            ))
            .await
    }

    /// The applied versions, in order; none when the table does not exist yet.
    pub async fn read(&self, client: &Client) -> anyhow::Result<Vec<Applied>> {
        let sql = format!(
            "SELECT version, name, checksum FROM {} ORDER BY version",
            self.quoted
        );
        match client.query(&sql, &[]).await {
            // try_get: a --table that names some other table must be an error, not a panic.
            Ok(rows) => rows
                .iter()
                .map(|row| {
                    Ok(Applied {
                        version: row.try_get(0)?,
                        name: row.try_get(1)?,
                        checksum: row.try_get(2)?,
                    })
                })
                .collect::<Result<Vec<_>, tokio_postgres::Error>>()
                .map_err(|error| {
                    anyhow::anyhow!(
                        "{} is not an initbox ledger (version bigint, name text, checksum text): {error}",
                        self.name
                    )
                }),
            Err(error) if error.code() == Some(&SqlState::UNDEFINED_TABLE) => Ok(Vec::new()),
            Err(error) => Err(anyhow::anyhow!(
                "reading {}: {}",
                self.name,
                crate::probe::pg::describe(&error)
            )),
        }
    }

    /// The statement that records a migration; it runs in the migration's own transaction.
    pub fn insert_sql(&self) -> String {
        format!(
            "INSERT INTO {} (version, name, checksum, duration_ms) VALUES ($1, $2, $3, $4)",
            self.quoted
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_checked_and_quoted() {
        let ledger = Ledger::parse("initbox_migrations").unwrap();
        assert_eq!(ledger.name, "public.initbox_migrations");
        assert!(
            ledger
                .insert_sql()
                .contains("\"public\".\"initbox_migrations\"")
        );
        assert_eq!(Ledger::parse("ops.schema_v").unwrap().name, "ops.schema_v");
        for bad in ["", "a.b.c", "x;DROP TABLE y", "1abc", "a-b", "\"q\""] {
            assert!(Ledger::parse(bad).is_err(), "{bad}");
        }
    }
}
