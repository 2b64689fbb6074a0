//! The migration tools whose directories and databases migrate takes over as they are: one module
//! per tool with its file naming, the part of a file that runs, its ledger table and its lock.
//! This file holds what they share and the dispatch from a `Format` to its module.

mod dbmate;
mod flyway;
mod golang_migrate;
mod goose;
mod initbox;
mod sql_migrate;
mod sqlx;

use std::fmt;

use tokio_postgres::Client;

use super::checksum;
use super::table::Table;
use super::version::Version;

/// Whose rules a directory and its ledger follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Format {
    Initbox,
    GolangMigrate,
    Goose,
    Dbmate,
    Flyway,
    Sqlx,
    SqlMigrate,
}

pub const ALL: [Format; 7] = [
    Format::Initbox,
    Format::GolangMigrate,
    Format::Goose,
    Format::Dbmate,
    Format::Flyway,
    Format::Sqlx,
    Format::SqlMigrate,
];

/// `--format`: one tool, or `auto` (None).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice(pub Option<Format>);

pub fn parse_choice(text: &str) -> Result<Choice, String> {
    if text == "auto" {
        return Ok(Choice(None));
    }
    ALL.into_iter()
        .find(|format| format.name() == text)
        .map(|format| Choice(Some(format)))
        .ok_or_else(|| {
            let names: Vec<&str> = ALL.iter().map(|format| format.name()).collect();
            format!(
                "unknown format '{text}': expected auto, {}",
                names.join(", ")
            )
        })
}

impl fmt::Display for Format {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// What a file name is to a tool.
#[derive(Debug)]
pub enum Named {
    /// A migration to run: its version (None for a Flyway repeatable) and description.
    Migration {
        version: Option<Version>,
        description: String,
    },
    /// A migration the tool knows but initbox cannot run (goose's Go migrations), by version.
    Foreign { version: Version, why: &'static str },
    /// Not a migration to run (a down file, a README); said in a debug line.
    Skipped(&'static str),
    /// A name the tool itself would refuse.
    Invalid(String),
}

/// One piece of SQL sent to the server as it stands, and the file line it starts on (for
/// errors). Tools that send a whole file have one piece; goose, sql-migrate and Flyway outside
/// a transaction send one per statement, as they do.
#[derive(Debug, Clone)]
pub struct Piece {
    pub sql: String,
    pub line: usize,
}

/// How a file runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transaction {
    /// In one transaction with its ledger row.
    Wrapped,
    /// Outside any transaction, the ledger row after it (as the tool does).
    None,
}

/// The runnable part of a file, as the tool reads it.
#[derive(Debug, Clone)]
pub struct Body {
    pub pieces: Vec<Piece>,
    pub transaction: Transaction,
    /// Why it runs outside a transaction, for the log.
    pub why_untransacted: Option<String>,
}

impl Body {
    /// Nothing to run: a file initbox cannot run, kept for its place in the order.
    pub fn empty() -> Body {
        Body {
            pieces: Vec::new(),
            transaction: Transaction::Wrapped,
            why_untransacted: None,
        }
    }

    /// `pieces` to run in one transaction, or outside any when there is a reason to (the
    /// file's directive, a statement that refuses transactions), which the log then gives.
    fn new(pieces: Vec<Piece>, untransacted: Option<String>) -> Body {
        Body {
            pieces,
            transaction: match untransacted {
                Some(_) => Transaction::None,
                None => Transaction::Wrapped,
            },
            why_untransacted: untransacted,
        }
    }

    /// The whole file as one piece.
    fn whole(text: &str, untransacted: Option<String>) -> Body {
        let piece = Piece {
            sql: text.to_string(),
            line: 1,
        };
        Body::new(vec![piece], untransacted)
    }
}

/// A checksum as a tool records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    Sha256Hex(String),
    Sha384(Vec<u8>),
    Crc32(i32),
}

impl fmt::Display for Checksum {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Read back from a ledger, so not necessarily hex: cut by characters.
            Checksum::Sha256Hex(hex) => {
                formatter.write_str(&hex.chars().take(12).collect::<String>())
            }
            Checksum::Sha384(bytes) => {
                formatter.write_str(&checksum::hex(&bytes[..bytes.len().min(6)]))
            }
            Checksum::Crc32(value) => write!(formatter, "{value}"),
        }
    }
}

/// A row of a ledger, as far as planning needs it.
#[derive(Debug, Clone)]
pub struct Applied {
    /// What matches it to a file (see `Format::id`).
    pub id: String,
    /// How messages name it.
    pub shown: String,
    pub version: Option<Version>,
    pub checksum: Option<Checksum>,
    /// A Flyway repeatable's row: the newest for its description wins.
    pub repeatable: bool,
}

impl Applied {
    /// A row keyed by an integer version, as most tools record it.
    pub fn numbered(version: i64, checksum: Option<Checksum>) -> Applied {
        let text = version.to_string();
        Applied {
            id: text.clone(),
            version: Version::parse(&text),
            shown: text,
            checksum,
            repeatable: false,
        }
    }

    /// A row keyed by text (dbmate's version as written, sql-migrate's file name), whose
    /// leading digits are its version.
    pub fn named(id: String) -> Applied {
        Applied {
            version: Version::parse(leading_digits(&id)),
            shown: id.clone(),
            id,
            checksum: None,
            repeatable: false,
        }
    }
}

/// What a ledger says.
#[derive(Debug, Default)]
pub struct State {
    /// Whether the table exists at all.
    pub exists: bool,
    pub applied: Vec<Applied>,
    /// Every version up to this one counts as applied: golang-migrate's single current version,
    /// Flyway's baseline.
    pub floor: Option<Version>,
    /// A run that died or failed part-way, which the tool refuses to go on from: the message,
    /// naming the version and the command that resolves it.
    pub unfinished: Option<String>,
}

impl State {
    /// A ledger that is only a list of what was applied.
    pub fn of(applied: Vec<Applied>) -> State {
        State {
            applied,
            ..State::default()
        }
    }
}

/// Who takes which advisory lock, for the rollout from a tool to initbox.
pub struct ToolLock {
    pub key: i64,
    pub why: String,
}

/// What goose's ENVSUB and Flyway's placeholders may name, learnt from the connection and the
/// environment.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub schema: String,
    pub user: String,
    pub database: String,
    pub timestamp: String,
    pub table: String,
    /// Set per file.
    pub file_name: String,
    /// Flyway replaces placeholders unless FLYWAY_PLACEHOLDER_REPLACEMENT=false.
    pub flyway_placeholders: bool,
    /// The process environment, read once: goose's ENVSUB and Flyway's FLYWAY_PLACEHOLDERS_*.
    pub environment: std::sync::Arc<std::collections::HashMap<String, String>>,
}

/// What the planner and runner need to know of the migration being recorded.
pub struct Record<'a> {
    pub name: &'a str,
    pub version: Option<&'a Version>,
    pub description: &'a str,
    pub checksum: Option<&'a Checksum>,
    pub elapsed_ms: i64,
}

/// Per-format rules in one place, so that adding a tool is adding a module.
impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Initbox => "initbox",
            Format::GolangMigrate => "golang-migrate",
            Format::Goose => "goose",
            Format::Dbmate => "dbmate",
            Format::Flyway => "flyway",
            Format::Sqlx => "sqlx",
            Format::SqlMigrate => "sql-migrate",
        }
    }

    /// The ledger table the tool uses when told nothing else; without a schema it lives in the
    /// connection's current schema, as the tool puts it.
    pub fn default_table(self) -> &'static str {
        match self {
            Format::Initbox => "public.initbox_migrations",
            Format::GolangMigrate | Format::Dbmate => "schema_migrations",
            Format::Goose => "goose_db_version",
            Format::Flyway => "flyway_schema_history",
            Format::Sqlx => "_sqlx_migrations",
            Format::SqlMigrate => "gorp_migrations",
        }
    }

    pub fn classify(self, file_name: &str) -> Named {
        match self {
            Format::Initbox => initbox::classify(file_name),
            Format::GolangMigrate => golang_migrate::classify(file_name),
            Format::Goose => goose::classify(file_name),
            Format::Dbmate => dbmate::classify(file_name),
            Format::Flyway => flyway::classify(file_name),
            Format::Sqlx => sqlx::classify(file_name),
            Format::SqlMigrate => sql_migrate::classify(file_name),
        }
    }

    /// The part of a file that runs, and how. `text` is the file as read (BOM and CRLF kept);
    /// `companion` is a Flyway `.sql.conf` beside it.
    pub fn body(
        self,
        text: &str,
        companion: Option<&str>,
        context: &Context,
    ) -> Result<Body, String> {
        match self {
            Format::Initbox => initbox::body(text),
            Format::GolangMigrate => Ok(golang_migrate::body(text)),
            Format::Goose => goose::body(text, context),
            Format::Dbmate => dbmate::body(text),
            Format::Flyway => flyway::body(text, companion, context),
            Format::Sqlx => Ok(sqlx::body(text)),
            Format::SqlMigrate => sql_migrate::body(text),
        }
    }

    /// A second checksum the tool accepts for an applied file: a Flyway repeatable's, over its
    /// text with placeholders replaced.
    pub fn replaced_checksum(self, text: &str, context: &Context) -> Option<Checksum> {
        match self {
            Format::Flyway if context.flyway_placeholders => {
                flyway::replaced_checksum(text, context)
            }
            _ => None,
        }
    }

    /// What in a file's name or text only this tool writes, for `--format auto`: "has '-- +goose
    /// Up'", "is a Flyway name".
    pub fn claims(self, name: &str, text: &str) -> Option<String> {
        let line_with = |matches: fn(&str) -> bool| {
            text.lines()
                .find(|line| matches(line))
                .map(|line| format!("has '{}'", line.trim()))
        };
        match self {
            Format::Initbox => line_with(|line| line.trim_end() == initbox::NO_TRANSACTION),
            Format::Goose => line_with(goose::is_annotation),
            Format::Dbmate => line_with(dbmate::is_up_directive),
            Format::SqlMigrate => line_with(sql_migrate::is_command),
            Format::Sqlx => {
                sqlx::is_no_transaction(text).then(|| "starts with '-- no-transaction'".into())
            }
            Format::Flyway => matches!(flyway::classify(name), Named::Migration { .. })
                .then(|| "is a Flyway name".into()),
            Format::GolangMigrate => None,
        }
    }

    /// The checksum the tool records for a file, if it records one.
    pub fn checksum(self, text: &str) -> Option<Checksum> {
        match self {
            Format::Initbox => Some(initbox::checksum(text)),
            Format::Flyway => Some(Checksum::Crc32(checksum::flyway(text))),
            Format::Sqlx => Some(Checksum::Sha384(checksum::sha384(text.as_bytes()))),
            Format::GolangMigrate | Format::Goose | Format::Dbmate | Format::SqlMigrate => None,
        }
    }

    /// What identifies a migration in the tool's ledger: the version, compared as a number by
    /// most; the version's own text for dbmate; the file name for sql-migrate; the description
    /// for a Flyway repeatable.
    pub fn id(self, name: &str, version: Option<&Version>, description: &str) -> String {
        match (self, version) {
            (Format::SqlMigrate, _) => name.to_string(),
            (Format::Dbmate, Some(version)) => version.text.clone(),
            (_, Some(version)) => version.canonical(),
            (_, None) => format!("R:{description}"),
        }
    }

    /// How the tool orders files: by version, except sql-migrate, which sorts numbered names by
    /// their number, then by name, and unnumbered names after them by name.
    pub fn sorts_by_name(self) -> bool {
        self == Format::SqlMigrate
    }

    /// Whether a file whose version is below an applied one is applied anyway by default, as
    /// the tool does (dbmate, sqlx and sql-migrate); goose, Flyway and initbox refuse such a
    /// file unless told, and golang-migrate's single version makes it count as applied.
    pub fn applies_out_of_order(self) -> bool {
        matches!(self, Format::Dbmate | Format::Sqlx | Format::SqlMigrate)
    }

    /// Whether an applied version whose file is gone stops the run, as it stops the tool.
    pub fn refuses_missing(self) -> bool {
        matches!(
            self,
            Format::Initbox
                | Format::Flyway
                | Format::Sqlx
                | Format::SqlMigrate
                | Format::GolangMigrate
        )
    }

    /// Whether the tool refuses an applied file that changed; the others record no checksum.
    pub fn checks_checksums(self) -> bool {
        matches!(self, Format::Initbox | Format::Flyway | Format::Sqlx)
    }

    pub async fn create(self, client: &Client, table: &Table) -> Result<(), tokio_postgres::Error> {
        match self {
            Format::Initbox => initbox::create(client, table).await,
            Format::GolangMigrate => golang_migrate::create(client, table).await,
            Format::Goose => goose::create(client, table).await,
            Format::Dbmate => dbmate::create(client, table).await,
            Format::Flyway => flyway::create(client, table).await,
            Format::Sqlx => sqlx::create(client, table).await,
            Format::SqlMigrate => sql_migrate::create(client, table).await,
        }
    }

    /// Reads the ledger; a missing table is an empty ledger.
    pub async fn read(self, client: &Client, table: &Table) -> anyhow::Result<State> {
        let exists = table.exists(client).await?;
        if !exists {
            return Ok(State::default());
        }
        let mut state = match self {
            Format::Initbox => initbox::read(client, table).await,
            Format::GolangMigrate => golang_migrate::read(client, table).await,
            Format::Goose => goose::read(client, table).await,
            Format::Dbmate => dbmate::read(client, table).await,
            Format::Flyway => flyway::read(client, table).await,
            Format::Sqlx => sqlx::read(client, table).await,
            Format::SqlMigrate => sql_migrate::read(client, table).await,
        }
        .map_err(|error| {
            anyhow::anyhow!(
                "reading {} as a {} ledger: {}",
                table.shown,
                self,
                crate::probe::pg::describe(&error)
            )
        })?;
        state.exists = true;
        Ok(state)
    }

    /// Records a migration as applied: inside the migration's transaction when it has one
    /// (`in_transaction`), else on its own.
    pub async fn record(
        self,
        client: &Client,
        table: &Table,
        record: &Record<'_>,
        in_transaction: bool,
    ) -> Result<(), tokio_postgres::Error> {
        match self {
            Format::Initbox => initbox::record(client, table, record).await,
            Format::GolangMigrate => {
                golang_migrate::record(client, table, record, false, in_transaction).await
            }
            Format::Goose => goose::record(client, table, record).await,
            Format::Dbmate => dbmate::record(client, table, record).await,
            Format::Flyway => flyway::record(client, table, record).await,
            Format::Sqlx => sqlx::record(client, table, record).await,
            Format::SqlMigrate => sql_migrate::record(client, table, record).await,
        }
    }

    /// Before a file that runs outside a transaction: golang-migrate marks its version dirty,
    /// so that a run that dies part-way is refused next time, as golang-migrate itself does.
    pub async fn before_untransacted(
        self,
        client: &Client,
        table: &Table,
        record: &Record<'_>,
    ) -> Result<(), tokio_postgres::Error> {
        match self {
            Format::GolangMigrate => {
                golang_migrate::record(client, table, record, true, false).await
            }
            _ => Ok(()),
        }
    }

    /// The advisory locks the tool itself takes on this ledger, which initbox takes too so that
    /// old pods running the tool and new pods running initbox never apply at once.
    pub fn tool_locks(self, database: &str, table: &Table) -> Vec<ToolLock> {
        match self {
            Format::GolangMigrate => golang_migrate::locks(database, table),
            Format::Flyway => flyway::locks(table),
            Format::Sqlx => sqlx::locks(database),
            Format::Goose => goose::locks(),
            Format::Initbox | Format::Dbmate | Format::SqlMigrate => Vec::new(),
        }
    }

    /// The line `status` prints about checksums for this tool.
    pub fn checksum_note(self) -> &'static str {
        match self {
            Format::Initbox => "checksums: SHA-256 of each file, checked",
            Format::Flyway => "checksums: Flyway's CRC32 of each file, checked",
            Format::Sqlx => "checksums: sqlx's SHA-384 of each file, checked",
            Format::GolangMigrate | Format::Goose | Format::Dbmate | Format::SqlMigrate => {
                "checksums: none recorded by this tool, so a changed applied file cannot be detected"
            }
        }
    }
}

/// golang-migrate's `force VERSION`: the one version, not dirty; -1 empties the table.
pub async fn force_golang_migrate(
    client: &Client,
    table: &Table,
    version: i64,
) -> Result<(), tokio_postgres::Error> {
    if version == -1 {
        return client
            .batch_execute(&format!("TRUNCATE {}", table.quoted))
            .await;
    }
    golang_migrate::set_version(client, table, version, false, false).await
}

/// Splits a goose or sql-migrate section into statements: a statement ends on a line whose last
/// word before any `--` comment ends with `;` (so `SELECT 1; -- x` ends one, `SELECT 1;--x`
/// does not), except inside a StatementBegin/StatementEnd block.
pub(crate) fn ends_with_semicolon(line: &str) -> bool {
    let mut last = None;
    for word in line.split_whitespace() {
        if word.starts_with("--") {
            break;
        }
        last = Some(word);
    }
    last.is_some_and(|word| word.ends_with(';'))
}

/// A statement gathered line by line (goose, sql-migrate), and the line it starts on.
#[derive(Default)]
pub(crate) struct Gathered {
    text: String,
    line: usize,
}

impl Gathered {
    pub(crate) fn add(&mut self, line: &str, number: usize) {
        if self.text.is_empty() {
            self.line = number;
        }
        self.text.push_str(line);
        self.text.push('\n');
    }

    /// The statement starts on this line, whatever comes first (a StatementBegin block).
    pub(crate) fn starts_at(&mut self, number: usize) {
        if self.text.is_empty() {
            self.line = number;
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    pub(crate) fn is_blank(&self) -> bool {
        self.text.trim().is_empty()
    }

    pub(crate) fn line(&self) -> usize {
        self.line
    }

    /// Ends the statement: `finish` trims it as the tool does; blank statements are dropped.
    pub(crate) fn take_into(&mut self, pieces: &mut Vec<Piece>, finish: fn(&str) -> &str) {
        let sql = finish(&self.text);
        if !sql.trim().is_empty() {
            pieces.push(Piece {
                sql: sql.to_string(),
                line: self.line,
            });
        }
        self.text.clear();
    }

    pub(crate) fn discard(&mut self) {
        self.text.clear();
    }
}

/// The numeric prefix of a name, for the tools that take `<digits>_...`.
pub(crate) fn leading_digits(name: &str) -> &str {
    let end = name.bytes().take_while(u8::is_ascii_digit).count();
    &name[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semicolons_end_statements_only_at_the_end_of_a_line() {
        assert!(ends_with_semicolon("SELECT 1;"));
        assert!(ends_with_semicolon("SELECT 1; -- note"));
        assert!(ends_with_semicolon("  SELECT 1;   "));
        assert!(!ends_with_semicolon("SELECT 1;--note"));
        assert!(!ends_with_semicolon("SELECT 1; SELECT"));
        assert!(!ends_with_semicolon("-- SELECT 1;"));
        assert!(!ends_with_semicolon(""));
    }

    #[test]
    fn formats_parse_by_name() {
        assert_eq!(parse_choice("auto"), Ok(Choice(None)));
        assert_eq!(
            parse_choice("sql-migrate"),
            Ok(Choice(Some(Format::SqlMigrate)))
        );
        let error = parse_choice("liquibase").unwrap_err();
        assert!(
            error.contains("golang-migrate") && error.contains("auto"),
            "{error}"
        );
    }
}
