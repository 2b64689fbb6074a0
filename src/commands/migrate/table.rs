//! The ledger table's name: `TABLE` or `SCHEMA.TABLE` as given, resolved against the
//! connection's current schema (the first existing schema on search_path) when no schema is
//! given, which is where each tool puts its table.

use anyhow::anyhow;
use tokio_postgres::types::{FromSqlOwned, ToSql};
use tokio_postgres::{Client, Error, Row};

/// A `--table` value, checked before connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub schema: Option<String>,
    pub name: String,
}

/// A ledger table resolved to its schema, and quoted once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub schema: String,
    pub name: String,
    /// `"schema"."table"`, safe to paste into SQL.
    pub quoted: String,
    /// `schema.table`, for messages.
    pub shown: String,
}

impl TableName {
    /// `table` or `schema.table`, plain identifiers only (letters, digits, '_'), so the name can
    /// be quoted safely into SQL.
    pub fn parse(text: &str) -> Result<TableName, String> {
        let parts: Vec<&str> = text.split('.').collect();
        let identifier = |part: &str| {
            !part.is_empty()
                && part.len() <= 63
                && !part.starts_with(|c: char| c.is_ascii_digit())
                && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        };
        let (schema, table) = match parts.as_slice() {
            [table] => (None, *table),
            [schema, table] => (Some(*schema), *table),
            _ => {
                return Err(format!(
                    "invalid table '{text}': expected TABLE or SCHEMA.TABLE"
                ));
            }
        };
        if !schema.is_none_or(identifier) || !identifier(table) {
            return Err(format!(
                "invalid table '{text}': names may hold letters, digits and '_' only"
            ));
        }
        Ok(TableName {
            schema: schema.map(str::to_string),
            name: table.to_string(),
        })
    }

    /// The table in `schema` when it names none itself.
    pub fn in_schema(&self, current_schema: &str) -> Table {
        let schema = self.schema.as_deref().unwrap_or(current_schema);
        Table {
            schema: schema.to_string(),
            name: self.name.clone(),
            quoted: format!("{}.{}", quote(schema), quote(&self.name)),
            shown: format!("{schema}.{}", self.name),
        }
    }
}

/// `"name"`, with any `"` doubled (current_schema() may be any name).
pub fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// A name as SQL would need it: bare when that reads the same, quoted otherwise.
pub fn quote_if_needed(identifier: &str) -> String {
    let plain = identifier
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !identifier.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        identifier.to_string()
    } else {
        quote(identifier)
    }
}

/// The SQL each tool's ledger module runs, written with `{table}` where the table's quoted name
/// goes, so each module holds only its own statements.
impl Table {
    fn sql(&self, sql: &str) -> String {
        sql.replace("{table}", &self.quoted)
    }

    /// Runs `ddl` (one or more statements) to create the table.
    pub async fn create(&self, client: &Client, ddl: &str) -> Result<(), Error> {
        client.batch_execute(&self.sql(ddl)).await
    }

    /// The rows `query` selects from the table.
    pub async fn rows(&self, client: &Client, query: &str) -> Result<Vec<Row>, Error> {
        client.query(&self.sql(query), &[]).await
    }

    /// The first column of every row `query` selects.
    pub async fn column<T: FromSqlOwned>(
        &self,
        client: &Client,
        query: &str,
    ) -> Result<Vec<T>, Error> {
        let rows = self.rows(client, query).await?;
        rows.iter().map(|row| row.try_get(0)).collect()
    }

    /// Runs one statement that writes to the table.
    pub async fn write(
        &self,
        client: &Client,
        statement: &str,
        parameters: &[&(dyn ToSql + Sync)],
    ) -> Result<(), Error> {
        client
            .execute(&self.sql(statement), parameters)
            .await
            .map(drop)
    }

    pub async fn exists(&self, client: &Client) -> anyhow::Result<bool> {
        let row = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p'))",
                &[&self.schema, &self.name],
            )
            .await
            .map_err(|error| {
                anyhow!(
                    "looking for {}: {}",
                    self.shown,
                    crate::probe::pg::describe(&error)
                )
            })?;
        Ok(row.get(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_checked_and_quoted() {
        let plain = TableName::parse("schema_migrations").unwrap();
        assert_eq!(plain.schema, None);
        let table = plain.in_schema("app");
        assert_eq!(table.quoted, "\"app\".\"schema_migrations\"");
        assert_eq!(table.shown, "app.schema_migrations");
        let qualified = TableName::parse("ops.schema_v")
            .unwrap()
            .in_schema("public");
        assert_eq!(qualified.shown, "ops.schema_v");
        assert_eq!(quote("we\"ird"), "\"we\"\"ird\"");
        for bad in [
            "",
            "a.b.c",
            "x;DROP TABLE y",
            "1abc",
            "a-b",
            "\"q\"",
            ".t",
            "s.",
        ] {
            assert!(TableName::parse(bad).is_err(), "{bad}");
        }
    }
}
