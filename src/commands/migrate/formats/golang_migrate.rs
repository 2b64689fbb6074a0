//! golang-migrate: `N_name.up.sql` / `N_name.down.sql`, each file sent whole (golang-migrate
//! opens no transaction of its own), and `schema_migrations(version, dirty)` holding the one
//! current version, marked dirty while a file runs outside a transaction.

use tokio_postgres::Client;

use super::{Body, Named, Piece, Record, State, ToolLock};
use crate::commands::migrate::checksum;
use crate::commands::migrate::sql::{self, TransactionControl};
use crate::commands::migrate::table::Table;
use crate::commands::migrate::version::Version;

/// golang-migrate's `^([0-9]+)_(.*)\.(down|up)\.(.*)$`: any extension, an empty name allowed;
/// other names are skipped, as golang-migrate skips them.
pub fn classify(file_name: &str) -> Named {
    let digits = super::leading_digits(file_name);
    let Some(rest) = file_name[digits.len()..].strip_prefix('_') else {
        return Named::Skipped("not named N_name.up.ext");
    };
    let Some(version) = Version::parse(digits).filter(|version| version.as_i64().is_some()) else {
        return Named::Skipped("not named N_name.up.ext");
    };
    // The last `.up.` or `.down.`: the name itself may hold dots.
    let up = rest.rfind(".up.");
    let down = rest.rfind(".down.");
    match (up, down) {
        (Some(up), down) if down.is_none_or(|down| down < up) => Named::Migration {
            version: Some(version),
            description: rest[..up].to_string(),
        },
        (_, Some(_)) => Named::Skipped("a down migration"),
        _ => Named::Skipped("not named N_name.up.ext"),
    }
}

/// golang-migrate sends a file as one query and no transaction of its own, so a file may hold
/// its own BEGIN/COMMIT or a statement that refuses a transaction. A file wrapped whole in its
/// own BEGIN ... COMMIT runs as that one transaction with the ledger update inside it; one with
/// other transaction control, or with CREATE INDEX CONCURRENTLY and the like, runs as
/// golang-migrate runs it, under a dirty mark.
pub fn body(text: &str) -> Body {
    let statements = sql::split(text);
    if let Some(statement) = statements.iter().find(|s| sql::refuses_transaction(s)) {
        let why = format!(
            "{} cannot run inside a transaction",
            sql::leading_words(statement, 3).join(" ")
        );
        return Body::whole(text, Some(why));
    }
    let controls: Vec<(usize, TransactionControl)> = statements
        .iter()
        .enumerate()
        .filter_map(|(index, statement)| Some((index, sql::transaction_control(statement)?)))
        .collect();
    let last = statements.len().saturating_sub(1);
    match controls.as_slice() {
        [] => Body::whole(text, None),
        [
            (0, TransactionControl::Begin),
            (end, TransactionControl::End),
        ] if *end == last && sql::is_plain_begin(statements[0]) => {
            // What lies between the file's BEGIN; and its COMMIT, in the file's own words.
            let offset = |statement: &str| statement.as_ptr() as usize - text.as_ptr() as usize;
            let begin_end = offset(statements[0]) + statements[0].len();
            let inner_start = text[begin_end..]
                .find(';')
                .map_or(begin_end, |semicolon| begin_end + semicolon + 1);
            let inner_end = offset(statements[last]);
            let inner = Piece {
                sql: text[inner_start..inner_end].to_string(),
                line: crate::text::error_text::line_and_column(text, inner_start).0,
            };
            Body::new(vec![inner], None)
        }
        _ => Body::whole(text, Some("the file controls its own transactions".into())),
    }
}

pub async fn create(client: &Client, table: &Table) -> Result<(), tokio_postgres::Error> {
    table
        .create(
            client,
            "CREATE TABLE IF NOT EXISTS {table} (version bigint not null primary key, dirty boolean not null)",
        )
        .await
}

pub async fn read(client: &Client, table: &Table) -> Result<State, tokio_postgres::Error> {
    let rows = table
        .rows(client, "SELECT version, dirty FROM {table} LIMIT 1")
        .await?;
    let mut state = State::default();
    if let Some(row) = rows.first() {
        let version: i64 = row.try_get(0)?;
        let dirty: bool = row.try_get(1)?;
        // -1 is golang-migrate's "no version" (left dirty by a failed first migration).
        state.floor = (version >= 0)
            .then(|| Version::parse(&version.to_string()))
            .flatten();
        if dirty {
            state.unfinished = Some(format!(
                "{} says version {version} is dirty: a run of it stopped part-way. Check by hand what it \
                 changed, then mark the version that is really applied with `initbox migrate force VERSION` \
                 (or golang-migrate's `migrate force VERSION`): {version} if it is complete, the one before \
                 it to run it again",
                table.shown
            ));
        }
    }
    Ok(state)
}

/// Sets the one current version, as golang-migrate's SetVersion does: TRUNCATE, then INSERT.
pub async fn record(
    client: &Client,
    table: &Table,
    record: &Record<'_>,
    dirty: bool,
    in_transaction: bool,
) -> Result<(), tokio_postgres::Error> {
    let version = record.version.and_then(Version::as_i64).unwrap_or(-1);
    set_version(client, table, version, dirty, in_transaction).await
}

/// Outside the migration's transaction this is a transaction of its own, as golang-migrate's
/// SetVersion is; so a file that opened a transaction and never committed it is committed here,
/// with its version, exactly as golang-migrate commits it.
pub async fn set_version(
    client: &Client,
    table: &Table,
    version: i64,
    dirty: bool,
    in_transaction: bool,
) -> Result<(), tokio_postgres::Error> {
    let set = format!(
        "TRUNCATE {table}; INSERT INTO {table} (version, dirty) VALUES ({version}, {dirty})",
        table = table.quoted
    );
    if in_transaction {
        client.batch_execute(&set).await
    } else {
        client.batch_execute(&format!("BEGIN; {set}; COMMIT")).await
    }
}

/// golang-migrate's key (database/util.go, GenerateAdvisoryLockId, called by the postgres
/// driver's Lock with the database name, then the migrations schema and table): the CRC32-IEEE
/// of `schema \0 table \0 database`, times 1486364155, as a uint32. The CLI passes the URL's
/// path as the database name, slash included (`/app`); a program that opens the driver on its
/// own connection passes current_database() (`app`). Both keys are taken.
pub fn locks(database: &str, table: &Table) -> Vec<ToolLock> {
    [format!("/{database}"), database.to_string()]
        .into_iter()
        .map(|name| ToolLock {
            key: key(&table.schema, &table.name, &name),
            why: format!("golang-migrate's lock for database '{name}'"),
        })
        .collect()
}

fn key(schema: &str, table: &str, database: &str) -> i64 {
    let joined = format!("{schema}\0{table}\0{database}");
    i64::from(checksum::crc32(joined.as_bytes()).wrapping_mul(1_486_364_155))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::migrate::formats::Transaction;

    #[test]
    fn lock_keys_are_golang_migrates() {
        // Worked from golang-migrate's own arithmetic: crc32("public\0schema_migrations\0/app")
        // = 1017053285, times 1486364155, modulo 2^32.
        assert_eq!(key("public", "schema_migrations", "/app"), 1_726_534_663);
        assert_eq!(key("public", "schema_migrations", "app"), 1_787_120_056);
    }

    #[test]
    fn only_up_files_run() {
        assert!(matches!(classify("1_init.up.sql"), Named::Migration { .. }));
        assert!(
            matches!(classify("0002_a.b.up.sql"), Named::Migration { description, .. } if description == "a.b")
        );
        assert!(matches!(classify("1_init.down.sql"), Named::Skipped(_)));
        assert!(matches!(classify("1_init.sql"), Named::Skipped(_)));
        assert!(matches!(classify("README.md"), Named::Skipped(_)));
    }

    #[test]
    fn a_file_in_its_own_transaction_runs_in_one_with_the_ledger() {
        let body = body("BEGIN;\nCREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\nCOMMIT;\n");
        assert_eq!(body.transaction, Transaction::Wrapped);
        assert_eq!(
            body.pieces[0].sql.trim(),
            "CREATE TABLE a (id int);\nINSERT INTO a VALUES (1);"
        );
        assert_eq!(body.pieces[0].line, 1);
        let twice = body_of("BEGIN; SELECT 1; COMMIT; BEGIN; SELECT 2; COMMIT;");
        assert_eq!(twice, Transaction::None);
        assert_eq!(
            body_of("CREATE INDEX CONCURRENTLY i ON t (a);"),
            Transaction::None
        );
        assert_eq!(body_of("CREATE TABLE t (a int);"), Transaction::Wrapped);
        assert_eq!(
            body_of("DO $$ BEGIN PERFORM 1; END $$;"),
            Transaction::Wrapped
        );
        // BEGIN with options keeps them: the file runs as golang-migrate runs it.
        assert_eq!(
            body_of("BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT 1; COMMIT;"),
            Transaction::None
        );
    }

    fn body_of(text: &str) -> Transaction {
        body(text).transaction
    }
}
