//! migrate: apply PostgreSQL migrations so that it stays correct when every replica runs it at
//! once: one connection per runner, one runner at a time under an advisory lock, each file and
//! its ledger row in one transaction, and nothing applied on top of a history that does not
//! match the files. It reads and writes the directories and ledgers of golang-migrate, goose,
//! dbmate, Flyway, sqlx and sql-migrate as those tools do, so a team can switch either way.

mod checksum;
mod detect;
mod formats;
mod lock;
mod plan;
mod source;
mod sql;
mod table;
mod version;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use tokio_postgres::Client;

use crate::probe::pg::{self, PgArgs, PgTarget};
use crate::runtime::ctx::Ctx;
use crate::runtime::duration;
use crate::runtime::exit;
use crate::runtime::logging::{self, Level};
use crate::runtime::retry;
use crate::runtime::signal;

use formats::{Context, Format, State, Transaction};
use plan::{Allow, FileState};
use source::Migration;
use table::{Table, TableName};

#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = false,
    subcommand_negates_reqs = true
)]
pub struct MigrateArgs {
    #[command(subcommand)]
    pub action: Option<Action>,

    /// Directory of migration files, in the --format's naming; not read recursively.
    #[arg(
        long,
        global = true,
        env = "INITBOX_MIGRATIONS_DIR",
        default_value = "/migrations",
        value_name = "DIR"
    )]
    pub dir: PathBuf,

    /// Whose files and ledger: auto, initbox, golang-migrate, goose, dbmate, flyway, sqlx or
    /// sql-migrate. auto decides from the files and the ledger tables that exist.
    #[arg(long, global = true, env = "INITBOX_MIGRATIONS_FORMAT", default_value = "auto",
          value_parser = formats::parse_choice, value_name = "FORMAT")]
    pub format: formats::Choice,

    /// Ledger table, TABLE or SCHEMA.TABLE; default: the format's own table (initbox:
    /// public.initbox_migrations; the tools': theirs, in the connection's current schema).
    #[arg(long, global = true, env = "INITBOX_MIGRATIONS_TABLE",
          value_parser = TableName::parse, value_name = "TABLE")]
    pub table: Option<TableName>,

    /// How long to wait for another runner's lock before giving up (exit 124).
    #[arg(long, global = true, env = "INITBOX_LOCK_TIMEOUT", default_value = "10m",
          value_parser = duration::parse, value_name = "DURATION")]
    pub lock_timeout: Duration,

    /// Longest a migration waits for a table lock (SET LOCAL lock_timeout), so DDL queued
    /// behind a long transaction fails instead of stalling every query behind it; 0 = no limit.
    #[arg(long, global = true, env = "INITBOX_LOCK_WAIT", default_value = "10s",
          value_parser = duration::parse, value_name = "DURATION")]
    pub lock_wait: Duration,

    /// Longest one migration's statements may run (SET LOCAL statement_timeout); 0 = no limit.
    #[arg(long, global = true, env = "INITBOX_STATEMENT_TIMEOUT", default_value = "0",
          value_parser = duration::parse, value_name = "DURATION")]
    pub statement_timeout: Duration,

    /// Apply files whose version is lower than the highest applied one (dbmate, sqlx and
    /// sql-migrate always do, as those tools do).
    #[arg(long, global = true, env = "INITBOX_ALLOW_OUT_OF_ORDER")]
    pub allow_out_of_order: bool,

    /// Go on when an applied version's file is gone.
    #[arg(long, global = true, env = "INITBOX_ALLOW_MISSING")]
    pub allow_missing: bool,

    /// Exit 1 at once on a rejected password or user or a missing database.
    #[arg(long, global = true, env = "INITBOX_FAIL_FAST")]
    pub fail_fast: bool,

    #[command(flatten)]
    pub connection: PgArgs,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Action {
    /// Apply pending migrations (what `migrate` alone does).
    Up,
    /// Print applied, pending, changed and missing files on stdout; changes nothing.
    Status,
    /// Check the files against the ledger without applying; exit 1 on any mismatch.
    Verify,
    /// Mark every file up to VERSION as applied without running it (an existing database).
    Baseline {
        #[arg(value_name = "VERSION")]
        version: String,
    },
    /// golang-migrate's `force`: set the ledger's version to VERSION and clear its dirty flag,
    /// after a run that stopped part-way has been checked by hand.
    Force {
        #[arg(value_name = "VERSION", allow_hyphen_values = true)]
        version: i64,
    },
}

/// Everything a run knows once connected: the format, its ledger table and the files.
struct Setup {
    format: Format,
    table: Table,
    files: Vec<Migration>,
    database: String,
}

pub async fn run(args: &MigrateArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let entries = source::list(&args.dir)?;
    let target = &PgTarget::from_args(&args.connection)?;
    // One connection for the whole run, whatever it does: with hundreds of replicas starting at
    // once, a second one each would fill max_connections before the app gets any.
    let client = connect(args, ctx, target).await?;
    let setup = setup(args, &client, &entries).await?;
    match args.action.clone().unwrap_or(Action::Up) {
        Action::Up => up(args, ctx, target, &client, &setup).await,
        Action::Status => {
            let state = setup.format.read(&client, &setup.table).await?;
            print_status(&setup, &state);
            logging::emit(Level::Info, setup.format.checksum_note(), &[]);
            Ok(())
        }
        Action::Verify => {
            let state = setup.format.read(&client, &setup.table).await?;
            let plan = plan::plan(setup.format, &setup.files, &state, allow(args));
            if !plan.unusable.is_empty() {
                return Err(exit::usage(plan.unusable.join("; ")));
            }
            let mut problems = plan.problems;
            problems.extend(state.unfinished);
            if problems.is_empty() {
                logging::emit(
                    Level::Info,
                    &format!("{} files match {}", setup.files.len(), setup.table.shown),
                    &[],
                );
                Ok(())
            } else {
                Err(anyhow!(problems.join("; ")))
            }
        }
        Action::Baseline { version } => baseline(args, ctx, &client, &setup, &version).await,
        Action::Force { version } => force(args, ctx, &client, &setup, version).await,
    }
}

fn allow(args: &MigrateArgs) -> Allow {
    Allow {
        out_of_order: args.allow_out_of_order,
        missing: args.allow_missing,
    }
}

/// Learns the connection's schema and database, decides the format, and reads the files by
/// its rules.
async fn setup(
    args: &MigrateArgs,
    client: &Client,
    entries: &[source::Entry],
) -> anyhow::Result<Setup> {
    let row = client
        .query_one(
            "SELECT current_schema(), current_database(), current_user::text,
                    to_char(now(), 'YYYY-MM-DD HH24:MI:SS')",
            &[],
        )
        .await
        .map_err(|error| anyhow!("reading the session's schema: {}", pg::describe(&error)))?;
    let schema: Option<String> = row.get(0);
    let database: String = row.get(1);
    let (format, why) = match args.format.0 {
        Some(format) => (format, "--format".to_string()),
        None => {
            let mut evidence = detect::from_files(entries)?;
            detect::from_database(
                &mut evidence,
                client,
                schema.as_deref(),
                args.table.as_ref(),
            )
            .await?;
            detect::decide(&evidence)?
        }
    };
    let name = match &args.table {
        // initbox's own ledger has always been in public unless a schema is named.
        Some(name) if format == Format::Initbox && name.schema.is_none() => TableName {
            schema: Some("public".into()),
            name: name.name.clone(),
        },
        Some(name) => name.clone(),
        None => {
            TableName::parse(format.default_table()).expect("the formats' tables are valid names")
        }
    };
    let table = match (&name.schema, &schema) {
        (Some(_), _) => name.in_schema(""),
        (None, Some(schema)) => name.in_schema(schema),
        (None, None) => {
            return Err(exit::usage(format!(
                "no schema on the connection's search_path exists, so there is no current schema for                  {format}'s {}: create one, set search_path, or pass --table SCHEMA.TABLE",
                name.name
            )));
        }
    };
    logging::emit(
        Level::Info,
        &format!("format {format} ({why}), ledger {}", table.shown),
        &[
            ("event", "format".into()),
            ("format", format.name().into()),
            ("ledger", table.shown.as_str().into()),
        ],
    );
    // Read once, and only what is text: a binary value from a Secret must not stop a run.
    let environment: std::collections::HashMap<String, String> = std::env::vars_os()
        .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)))
        .collect();
    let flyway_placeholders = match environment
        .get("FLYWAY_PLACEHOLDER_REPLACEMENT")
        .map(String::as_str)
    {
        None | Some("true") => true,
        Some("false") => false,
        Some(other) => {
            return Err(exit::usage(format!(
                "invalid FLYWAY_PLACEHOLDER_REPLACEMENT '{other}': expected true or false"
            )));
        }
    };
    let context = Context {
        schema: table.schema.clone(),
        user: row.get(2),
        database: database.clone(),
        timestamp: row.get(3),
        table: table.name.clone(),
        file_name: String::new(),
        environment: std::sync::Arc::new(environment),
        flyway_placeholders,
    };
    let files = source::read(entries, format, &context)?;
    Ok(Setup {
        format,
        table,
        files,
        database,
    })
}

/// The keys this run holds while it writes: initbox's own, and the tool's.
fn lock_keys(setup: &Setup) -> Vec<lock::Key> {
    let mut keys = vec![lock::Key {
        key: lock::key(&setup.table.shown),
        whose: "initbox's lock".into(),
    }];
    keys.extend(
        setup
            .format
            .tool_locks(&setup.database, &setup.table)
            .into_iter()
            .map(|tool| lock::Key {
                key: tool.key,
                whose: tool.why,
            }),
    );
    keys
}

/// Applies what is pending. The common case, nothing pending on a restart, reads the ledger
/// once without the lock and ends; anything else is decided again under the lock.
async fn up(
    args: &MigrateArgs,
    ctx: &Ctx,
    target: &PgTarget,
    client: &Client,
    setup: &Setup,
) -> anyhow::Result<()> {
    let state = setup.format.read(client, &setup.table).await?;
    let plan = plan::plan(setup.format, &setup.files, &state, allow(args));
    if !plan.unusable.is_empty() {
        return Err(exit::usage(format!(
            "nothing applied: {}",
            plan.unusable.join("; ")
        )));
    }
    if plan.pending.is_empty() && plan.problems.is_empty() && state.unfinished.is_none() {
        return up_to_date(plan.applied);
    }
    let keys = lock_keys(setup);
    lock::acquire(ctx, client, &keys, args.lock_timeout).await?;
    let result = apply_pending(args, ctx, target, client, setup).await;
    lock::release(client).await;
    result
}

fn up_to_date(applied: usize) -> anyhow::Result<()> {
    logging::emit(
        Level::Info,
        &format!("up to date: {applied} migrations applied, none pending"),
        &[("event", "up_to_date".into()), ("applied", applied.into())],
    );
    Ok(())
}

async fn ensure_ledger(client: &Client, setup: &Setup, state: &State) -> anyhow::Result<()> {
    if state.exists {
        return Ok(());
    }
    setup
        .format
        .create(client, &setup.table)
        .await
        .map_err(|error| anyhow!("creating {}: {}", setup.table.shown, pg::describe(&error)))
}

async fn apply_pending(
    args: &MigrateArgs,
    ctx: &Ctx,
    target: &PgTarget,
    client: &Client,
    setup: &Setup,
) -> anyhow::Result<()> {
    // Under the lock: whatever another runner applied before is visible now.
    let state = setup.format.read(client, &setup.table).await?;
    if let Some(unfinished) = &state.unfinished {
        return Err(anyhow!("nothing applied: {unfinished}"));
    }
    let plan = plan::plan(setup.format, &setup.files, &state, allow(args));
    if !plan.problems.is_empty() {
        return Err(anyhow!("nothing applied: {}", plan.problems.join("; ")));
    }
    if plan.pending.is_empty() {
        return up_to_date(plan.applied);
    }
    ensure_ledger(client, setup, &state).await?;
    for migration in &plan.pending {
        if let Some(stop) = ctx.cancel.stopped() {
            return Err(signal::stopped(stop));
        }
        apply_one(args, ctx, target, client, setup, migration).await?;
    }
    logging::emit(
        Level::Info,
        &format!("applied {} migrations", plan.pending.len()),
        &[
            ("event", "migrated".into()),
            ("applied", plan.pending.len().into()),
        ],
    );
    Ok(())
}

/// Runs one file (with its ledger row, in one transaction unless the file says otherwise),
/// cancelling the statement on the server if a signal or the deadline comes first.
async fn apply_one(
    args: &MigrateArgs,
    ctx: &Ctx,
    target: &PgTarget,
    client: &Client,
    setup: &Setup,
    migration: &Migration,
) -> anyhow::Result<()> {
    let mut fields = vec![
        ("event", "applying".into()),
        ("file", migration.name.as_str().into()),
    ];
    let mut message = format!("applying {}", migration.name);
    if let Some(why) = &migration.body.why_untransacted {
        message.push_str(&format!(" outside a transaction ({why})"));
        fields.push(("transaction", false.into()));
    }
    logging::emit(Level::Info, &message, &fields);
    let started = Instant::now();
    let run = execute(args, client, setup, migration);
    tokio::pin!(run);
    let deadline = ctx.deadline_reached();
    let stopped = tokio::select! {
        result = &mut run => {
            return match result {
                Ok(()) => {
                    logging::emit(
                        Level::Info,
                        &format!("applied {} in {}", migration.name, duration::human(started.elapsed())),
                        &[
                            ("event", "applied".into()),
                            ("file", migration.name.as_str().into()),
                            ("duration_ms", (started.elapsed().as_millis() as u64).into()),
                        ],
                    );
                    Ok(())
                }
                Err((piece, error)) => Err(failure(client, migration, piece, &error).await),
            };
        }
        stop = ctx.cancel.cancelled() => signal::stopped(stop),
        () = deadline => exit::deadline(format!(
            "deadline of {} exceeded while applying {}",
            duration::format(ctx.timeout),
            migration.name
        )),
    };
    // Cancel on the server and give it a moment to roll back, so that the lock is released
    // on a database exactly as it was before this file.
    target.cancel(&client.cancel_token()).await;
    let ended = tokio::time::timeout(Duration::from_secs(5), &mut run).await;
    let what = match (ended, migration.body.transaction) {
        // It finished before the cancel reached it: applied and recorded.
        (Ok(Ok(())), _) => "stopped after it was applied and recorded".to_string(),
        (_, Transaction::Wrapped) => "cancelled, rolled back".to_string(),
        (_, Transaction::None) => format!(
            "cancelled; it runs outside a transaction, so what it finished before the cancel stays              applied{}",
            if setup.format == Format::GolangMigrate {
                ", and its version is left dirty"
            } else {
                ", and it is not recorded: check it before it runs again"
            }
        ),
    };
    Err(stopped.context(format!("{}: {what}", migration.name)))
}

/// Runs a file's pieces and records it. On failure, the index of the piece that failed (for
/// the error's line), if it was one of them.
async fn execute(
    args: &MigrateArgs,
    client: &Client,
    setup: &Setup,
    migration: &Migration,
) -> Result<(), (Option<usize>, tokio_postgres::Error)> {
    let transactional = migration.body.transaction == Transaction::Wrapped;
    let limits = format!(
        "SET {scope} lock_timeout = {}; SET {scope} statement_timeout = {}",
        args.lock_wait.as_millis(),
        args.statement_timeout.as_millis(),
        scope = if transactional { "LOCAL" } else { "SESSION" },
    );
    let started = Instant::now();
    let record = |started: Instant| migration.record(started.elapsed().as_millis() as i64);
    let outside = |error| (None, error);
    if transactional {
        let body = async {
            client
                .batch_execute(&format!("BEGIN; {limits}"))
                .await
                .map_err(outside)?;
            for (index, piece) in migration.body.pieces.iter().enumerate() {
                client
                    .batch_execute(&piece.sql)
                    .await
                    .map_err(|error| (Some(index), error))?;
            }
            setup
                .format
                .record(client, &setup.table, &record(started), true)
                .await
                .map_err(outside)?;
            client.batch_execute("COMMIT").await.map_err(outside)
        }
        .await;
        if body.is_err() {
            let _ = client.batch_execute("ROLLBACK").await;
        }
        body
    } else {
        setup
            .format
            .before_untransacted(client, &setup.table, &record(started))
            .await
            .map_err(outside)?;
        client.batch_execute(&limits).await.map_err(outside)?;
        let mut result = Ok(());
        for (index, piece) in migration.body.pieces.iter().enumerate() {
            if let Err(error) = client.batch_execute(&piece.sql).await {
                result = Err((Some(index), error));
                break;
            }
        }
        let reset = client
            .batch_execute("RESET lock_timeout; RESET statement_timeout")
            .await;
        result?;
        reset.map_err(outside)?;
        setup
            .format
            .record(client, &setup.table, &record(started), false)
            .await
            .map_err(outside)
    }
}

/// "003_add_index.sql: ERROR 42601: syntax error at or near "SELEC" at line 4, column 1",
/// plus what state the database was left in.
async fn failure(
    client: &Client,
    migration: &Migration,
    piece: Option<usize>,
    error: &tokio_postgres::Error,
) -> anyhow::Error {
    let mut text = format!("{}: ", migration.name);
    let piece = piece.and_then(|index| migration.body.pieces.get(index));
    match error.as_db_error() {
        Some(db) => {
            text.push_str(&format!(
                "{} {}: {}",
                db.severity(),
                db.code().code(),
                db.message()
            ));
            if let (Some(piece), Some(tokio_postgres::error::ErrorPosition::Original(position))) =
                (piece, db.position())
            {
                let (line, column) = line_and_column(&piece.sql, *position as usize);
                text.push_str(&format!(
                    " at line {}, column {column}",
                    piece.line + line - 1
                ));
            }
        }
        None => text.push_str(&pg::describe(error)),
    }
    if migration.body.transaction == Transaction::Wrapped {
        text.push_str("; rolled back, nothing of this file was applied");
    } else {
        text.push_str("; it ran outside a transaction");
        let statement = piece.map_or("", |piece| piece.sql.as_str());
        if let Some(advice) = invalid_index_advice(client, statement).await {
            text.push_str(&format!("; {advice}"));
        }
    }
    anyhow!(text)
}

/// Line and column (1-based) of a 1-based character position, as the server reports it.
fn line_and_column(sql: &str, position: usize) -> (usize, usize) {
    let offset = sql
        .char_indices()
        .nth(position.saturating_sub(1))
        .map_or(sql.len(), |(offset, _)| offset);
    crate::text::error_text::line_and_column(sql, offset)
}

/// A CREATE INDEX CONCURRENTLY that failed or was interrupted leaves an INVALID index behind,
/// which makes the same file fail (or, with IF NOT EXISTS, silently do nothing) next time.
async fn invalid_index_advice(client: &Client, statement: &str) -> Option<String> {
    let rows = client
        .query(
            "SELECT n.nspname, c.relname FROM pg_index i
             JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE NOT i.indisvalid",
            &[],
        )
        .await
        .ok()?;
    let sql = statement.to_lowercase();
    // The index the failed statement names as a whole word: `items_id` is not `items_id_owner`.
    let named = |index: &str| {
        let index = index.to_lowercase();
        sql.match_indices(&index).any(|(at, _)| {
            let word = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
            !sql[..at].ends_with(word) && !sql[at + index.len()..].starts_with(word)
        })
    };
    rows.iter()
        .map(|row| (row.get::<_, String>(0), row.get::<_, String>(1)))
        .find(|(_, index)| named(index))
        .map(|(schema, index)| {
            let name = format!(
                "{}.{}",
                table::quote_if_needed(&schema),
                table::quote_if_needed(&index)
            );
            format!(
                "index {name} is INVALID (left by a failed CREATE INDEX CONCURRENTLY): \
                 run DROP INDEX CONCURRENTLY {name}; then run migrate again"
            )
        })
}

/// One line per migration on stdout: `applied|pending|changed|missing VERSION NAME`, where
/// VERSION is `R` for a Flyway repeatable and `-` for an unnumbered sql-migrate file.
fn print_status(setup: &Setup, state: &State) {
    use std::io::Write;
    let shown_version = |migration: &Migration| match &migration.version {
        Some(version) => version.canonical(),
        None if migration.repeatable => "R".into(),
        None => "-".into(),
    };
    let mut lines: Vec<String> = setup
        .files
        .iter()
        .map(|file| {
            let word = match plan::file_state(setup.format, file, state) {
                FileState::Applied => "applied",
                FileState::Pending => "pending",
                FileState::Changed => "changed",
            };
            format!("{word} {} {}", shown_version(file), file.name)
        })
        .collect();
    for row in state.applied.iter().filter(|row| !row.repeatable) {
        if !setup
            .files
            .iter()
            .any(|file| !file.repeatable && file.id == row.id)
        {
            let version = row
                .version
                .as_ref()
                .map_or_else(|| "-".into(), |v| v.canonical());
            lines.push(format!("missing {version} {}", row.shown));
        }
    }
    if let Some(unfinished) = &state.unfinished {
        logging::emit(Level::Warn, unfinished, &[]);
    }
    let mut stdout = std::io::stdout().lock();
    for line in lines {
        let _ = writeln!(stdout, "{line}");
    }
}

/// Records files up to `version` as applied without running them, under the lock.
async fn baseline(
    args: &MigrateArgs,
    ctx: &Ctx,
    client: &Client,
    setup: &Setup,
    version: &str,
) -> anyhow::Result<()> {
    let limit = version::Version::parse(version).ok_or_else(|| {
        exit::usage(format!(
            "invalid baseline version '{version}': expected digits, or dotted digits"
        ))
    })?;
    let keys = lock_keys(setup);
    lock::acquire(ctx, client, &keys, args.lock_timeout).await?;
    let result = async {
        let state = setup.format.read(client, &setup.table).await?;
        ensure_ledger(client, setup, &state).await?;
        let mut marked = 0;
        for file in &setup.files {
            let below = file.version.as_ref().is_some_and(|v| *v <= limit);
            if !below
                || file.repeatable
                || plan::file_state(setup.format, file, &state) != FileState::Pending
            {
                continue;
            }
            setup
                .format
                .record(client, &setup.table, &file.record(0), false)
                .await
                .map_err(|error| anyhow!("{}: {}", file.name, pg::describe(&error)))?;
            marked += 1;
        }
        logging::emit(
            Level::Info,
            &format!("baseline {limit}: {marked} files marked as applied without running them"),
            &[("event", "baseline".into()), ("marked", marked.into())],
        );
        Ok(())
    }
    .await;
    lock::release(client).await;
    result
}

/// golang-migrate's `force`: the ledger's one version becomes VERSION, not dirty.
async fn force(
    args: &MigrateArgs,
    ctx: &Ctx,
    client: &Client,
    setup: &Setup,
    version: i64,
) -> anyhow::Result<()> {
    if setup.format != Format::GolangMigrate {
        return Err(exit::usage(format!(
            "force sets golang-migrate's dirty version; the {} ledger has none",
            setup.format
        )));
    }
    if version < -1 {
        return Err(exit::usage(format!(
            "invalid version {version}: expected -1 or more"
        )));
    }
    let keys = lock_keys(setup);
    lock::acquire(ctx, client, &keys, args.lock_timeout).await?;
    let result = async {
        let state = setup.format.read(client, &setup.table).await?;
        ensure_ledger(client, setup, &state).await?;
        formats::force_golang_migrate(client, &setup.table, version)
            .await
            .map_err(|error| anyhow!("setting the version: {}", pg::describe(&error)))?;
        logging::emit(
            Level::Info,
            &format!(
                "{} now says version {version}, not dirty",
                setup.table.shown
            ),
            &[("event", "forced".into())],
        );
        Ok(())
    }
    .await;
    lock::release(client).await;
    result
}

/// A session for migrating: waits for the database like wait-pg does, names itself in
/// pg_stat_activity, and asks the server to notice a vanished client within a second (so a
/// SIGKILLed runner's statement and lock do not outlive it).
async fn connect(args: &MigrateArgs, ctx: &Ctx, target: &PgTarget) -> anyhow::Result<Client> {
    let application_name = format!("initbox-migrate@{}", hostname());
    let client = retry::until_ready(ctx, target.shown(), |budget| {
        let application_name = application_name.as_str();
        async move {
            target
                .connect(application_name, budget)
                .await
                .map_err(|error| pg::connect_failure(&error, args.fail_fast))
        }
    })
    .await?;
    // PostgreSQL 14 and later; older servers lack the setting, which is fine.
    let _ = client
        .batch_execute("SET client_connection_check_interval = 1000")
        .await;
    Ok(client)
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| {
            let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
            Some(name.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}
