//! postgres:// and wait-pg: ready when PostgreSQL accepts the connection, authenticates it, and
//! answers a query on the target database (not merely when its port is open: a starting server
//! opens its port long before it can answer, with FATAL 57P03).

use std::time::Duration;

use anyhow::anyhow;
use futures_util::future::LocalBoxFuture;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

use crate::probe::Probe;
use crate::probe::pg::{self, PgArgs, PgTarget};
use crate::probe::query::Query;
use crate::runtime::retry::AttemptError;

/// When the server counts as ready: wait-pg's flags, and a postgres:// URI's parameters.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PgReadyOptions {
    /// Ready only when this query returns a row whose first column is true, e.g.
    /// "SELECT max(version) >= 42 FROM schema_migrations".
    #[arg(long, value_name = "SQL")]
    pub query: Option<String>,

    /// Ready only on a server that accepts writes (not a standby in recovery).
    #[arg(long)]
    pub read_write: bool,

    /// Exit 1 at once on a rejected password or user (28P01, 28000) or a missing database
    /// (3D000), instead of retrying them until the deadline.
    #[arg(long)]
    pub fail_fast: bool,
}

/// initbox's parameters of a postgres:// URI; the others are libpq's, for the connection.
pub const PARAMS: &[&str] = &["query", "read_write", "fail_fast", "password_file"];

impl PgReadyOptions {
    /// Takes initbox's parameters, and the password file, out of a URI's query.
    pub fn from_query(query: &mut Query) -> anyhow::Result<(PgReadyOptions, PgArgs)> {
        let options = PgReadyOptions {
            query: query.take(&["query"])?,
            read_write: query.flag(&["read_write"])?,
            fail_fast: query.flag(&["fail_fast"])?,
        };
        let connection = PgArgs {
            url: None,
            password_file: query.path(&["password_file"])?,
        };
        Ok((options, connection))
    }
}

pub struct PgProbe {
    target: PgTarget,
    options: PgReadyOptions,
}

impl PgProbe {
    pub fn new(target: PgTarget, options: PgReadyOptions) -> PgProbe {
        PgProbe { target, options }
    }
}

impl Probe for PgProbe {
    fn shown(&self) -> &str {
        self.target.shown()
    }

    fn check(&self, budget: Duration) -> LocalBoxFuture<'_, Result<(), AttemptError>> {
        Box::pin(async move {
            let client = self
                .target
                .connect("initbox-wait-pg", budget)
                .await
                .map_err(|error| pg::connect_failure(&error, self.options.fail_fast))?;
            check(&client, &self.options).await
        })
    }
}

async fn check(client: &Client, options: &PgReadyOptions) -> Result<(), AttemptError> {
    if options.read_write {
        let row = client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .map_err(query_failure)?;
        if row.get::<_, bool>(0) {
            return Err(AttemptError::transient(anyhow!(
                "server is in recovery (a read-only standby)"
            )));
        }
    }
    let Some(sql) = &options.query else {
        client
            .simple_query("SELECT 1")
            .await
            .map_err(query_failure)?;
        return Ok(());
    };
    let statement = client.prepare(sql).await.map_err(query_failure)?;
    match statement.columns().first() {
        Some(column) if *column.type_() == Type::BOOL => {}
        Some(column) => {
            return Err(AttemptError::permanent(anyhow!(
                "--query must return a boolean first column; '{}' is {}",
                column.name(),
                column.type_()
            )));
        }
        None => {
            return Err(AttemptError::permanent(anyhow!(
                "--query returns no columns"
            )));
        }
    }
    let rows = client.query(&statement, &[]).await.map_err(query_failure)?;
    if rows
        .iter()
        .any(|row| row.get::<_, Option<bool>>(0) == Some(true))
    {
        Ok(())
    } else {
        Err(AttemptError::transient(anyhow!(
            "--query returned {} row(s), none with true in the first column",
            rows.len()
        )))
    }
}

/// Errors from the query: a broken query is permanent (syntax, types); an object that does not
/// exist yet (the table a migration will create, a grant still to come) is waited for.
fn query_failure(error: tokio_postgres::Error) -> AttemptError {
    let text = anyhow!(pg::describe(&error));
    let Some(code) = error.code() else {
        return AttemptError::transient(text);
    };
    let not_there_yet = [
        SqlState::UNDEFINED_TABLE,
        SqlState::UNDEFINED_COLUMN,
        SqlState::UNDEFINED_OBJECT,
        SqlState::UNDEFINED_FUNCTION,
        SqlState::INVALID_SCHEMA_NAME,
        SqlState::INSUFFICIENT_PRIVILEGE,
    ];
    let class = &code.code()[..2];
    if (class == "42" || class == "22") && !not_there_yet.contains(code) {
        AttemptError::permanent(text)
    } else {
        AttemptError::transient(text)
    }
}
