//! migrate: apply PostgreSQL migrations so that it stays correct when every replica runs it at
//! once: one runner at a time under an advisory lock, each file and its ledger row in one
//! transaction, and nothing applied on top of a history that does not match the files.

mod ledger;
mod lock;
mod source;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use tokio_postgres::{Client, Statement};

use crate::probe::pg::{self, PgArgs, PgTarget};
use crate::runtime::ctx::Ctx;
use crate::runtime::duration;
use crate::runtime::exit;
use crate::runtime::logging::{self, Level};
use crate::runtime::retry;
use crate::runtime::signal;

use ledger::{Applied, Ledger};
use source::Migration;

#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = false,
    subcommand_negates_reqs = true
)]
pub struct MigrateArgs {
    #[command(subcommand)]
    pub action: Option<Action>,

    /// Directory of NNN_name.sql (or NNN_name.up.sql) files; not read recursively.
    #[arg(
        long,
        global = true,
        env = "INITBOX_MIGRATIONS_DIR",
        default_value = "/migrations",
        value_name = "DIR"
    )]
    pub dir: PathBuf,

    /// Ledger table, TABLE or SCHEMA.TABLE.
    #[arg(long, global = true, default_value = "public.initbox_migrations",
          value_parser = Ledger::parse, value_name = "TABLE")]
    pub table: Ledger,

    /// How long to wait for another runner's lock before giving up (exit 124).
    #[arg(long, global = true, default_value = "10m", value_parser = duration::parse,
          value_name = "DURATION")]
    pub lock_timeout: Duration,

    /// Longest a migration waits for a table lock (SET LOCAL lock_timeout), so DDL queued
    /// behind a long transaction fails instead of stalling every query behind it; 0 = no limit.
    #[arg(long, global = true, default_value = "10s", value_parser = duration::parse,
          value_name = "DURATION")]
    pub lock_wait: Duration,

    /// Longest one migration's statements may run (SET LOCAL statement_timeout); 0 = no limit.
    #[arg(long, global = true, default_value = "0", value_parser = duration::parse,
          value_name = "DURATION")]
    pub statement_timeout: Duration,

    /// Apply files whose version is lower than the highest applied one.
    #[arg(long, global = true)]
    pub allow_out_of_order: bool,

    /// Go on when an applied version's file is gone.
    #[arg(long, global = true)]
    pub allow_missing: bool,

    /// Exit 1 at once on a rejected password or user or a missing database.
    #[arg(long, global = true)]
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
        version: i64,
    },
}

pub async fn run(args: &MigrateArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let files = source::read_dir(&args.dir)?;
    let target = &PgTarget::from_args(&args.connection)?;
    match args.action.clone().unwrap_or(Action::Up) {
        Action::Up => up(args, ctx, target, &files).await,
        Action::Status => {
            let client = connect(args, ctx, target).await?;
            let applied = args.table.read(&client).await?;
            print_status(&files, &applied);
            Ok(())
        }
        Action::Verify => {
            let client = connect(args, ctx, target).await?;
            let applied = args.table.read(&client).await?;
            let problems = check(args, &files, &applied);
            if problems.is_empty() {
                logging::emit(
                    Level::Info,
                    &format!("{} files match {}", files.len(), args.table.name),
                    &[],
                );
                Ok(())
            } else {
                Err(anyhow!(problems.join("; ")))
            }
        }
        Action::Baseline { version } => baseline(args, ctx, target, &files, version).await,
    }
}

/// Applies what is pending, under the lock.
async fn up(
    args: &MigrateArgs,
    ctx: &Ctx,
    target: &PgTarget,
    files: &[Migration],
) -> anyhow::Result<()> {
    let (lock_client, client) = (
        connect(args, ctx, target).await?,
        connect(args, ctx, target).await?,
    );
    let key = lock::key(&args.table.name);
    lock::acquire(ctx, &lock_client, key, args.lock_timeout).await?;
    let result = apply_pending(args, ctx, target, &client, files).await;
    lock::release(&lock_client, key).await;
    result
}

async fn apply_pending(
    args: &MigrateArgs,
    ctx: &Ctx,
    target: &PgTarget,
    client: &Client,
    files: &[Migration],
) -> anyhow::Result<()> {
    // Under the lock: whatever another runner applied before is visible now.
    args.table
        .create(client)
        .await
        .map_err(|error| anyhow!("creating {}: {}", args.table.name, pg::describe(&error)))?;
    let applied = args.table.read(client).await?;
    let problems = check(args, files, &applied);
    if !problems.is_empty() {
        return Err(anyhow!("nothing applied: {}", problems.join("; ")));
    }
    let pending: Vec<&Migration> = files
        .iter()
        .filter(|file| !applied.iter().any(|row| row.version == file.version))
        .collect();
    if pending.is_empty() {
        logging::emit(
            Level::Info,
            &format!(
                "up to date: {} migrations applied, none pending",
                applied.len()
            ),
            &[
                ("event", "up_to_date".into()),
                ("applied", applied.len().into()),
            ],
        );
        return Ok(());
    }
    // Prepared once: each file then costs four round trips (begin with its limits, its SQL,
    // its ledger row, commit).
    let record = client
        .prepare(&args.table.insert_sql())
        .await
        .map_err(|error| anyhow!("preparing the ledger insert: {}", pg::describe(&error)))?;
    for migration in &pending {
        if let Some(stop) = ctx.cancel.stopped() {
            return Err(signal::stopped(stop));
        }
        apply_one(args, ctx, target, client, &record, migration).await?;
    }
    logging::emit(
        Level::Info,
        &format!("applied {} migrations", pending.len()),
        &[
            ("event", "migrated".into()),
            ("applied", pending.len().into()),
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
    record: &Statement,
    migration: &Migration,
) -> anyhow::Result<()> {
    logging::emit(
        Level::Info,
        &format!("applying {}", migration.name),
        &[
            ("event", "applying".into()),
            ("file", migration.name.as_str().into()),
        ],
    );
    let started = Instant::now();
    let run = execute(args, client, record, migration);
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
                Err(error) => Err(failure(client, migration, &error).await),
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
    let _ = tokio::time::timeout(Duration::from_secs(5), &mut run).await;
    Err(stopped.context(format!("{}: cancelled, rolled back", migration.name)))
}

async fn execute(
    args: &MigrateArgs,
    client: &Client,
    record: &Statement,
    migration: &Migration,
) -> Result<(), tokio_postgres::Error> {
    let limits = format!(
        "SET {scope} lock_timeout = {}; SET {scope} statement_timeout = {}",
        args.lock_wait.as_millis(),
        args.statement_timeout.as_millis(),
        scope = if migration.transactional {
            "LOCAL"
        } else {
            "SESSION"
        },
    );
    let started = Instant::now();
    let elapsed = |started: Instant| started.elapsed().as_millis() as i64;
    if migration.transactional {
        let body = async {
            client.batch_execute(&format!("BEGIN; {limits}")).await?;
            client.batch_execute(&migration.sql).await?;
            let row = [
                &migration.version as _,
                &migration.name as _,
                &migration.checksum as _,
                &elapsed(started) as _,
            ];
            client.execute(record, &row).await?;
            client.batch_execute("COMMIT").await
        }
        .await;
        if body.is_err() {
            let _ = client.batch_execute("ROLLBACK").await;
        }
        body
    } else {
        client.batch_execute(&limits).await?;
        let result = client.batch_execute(&migration.sql).await;
        let reset = client
            .batch_execute("RESET lock_timeout; RESET statement_timeout")
            .await;
        result?;
        reset?;
        let row = [
            &migration.version as _,
            &migration.name as _,
            &migration.checksum as _,
            &elapsed(started) as _,
        ];
        client.execute(record, &row).await.map(drop)
    }
}

/// "003_add_index.sql: ERROR 42601: syntax error at or near "SELEC" at line 4, column 1",
/// plus what state the database was left in.
async fn failure(
    client: &Client,
    migration: &Migration,
    error: &tokio_postgres::Error,
) -> anyhow::Error {
    let mut text = format!("{}: ", migration.name);
    match error.as_db_error() {
        Some(db) => {
            text.push_str(&format!(
                "{} {}: {}",
                db.severity(),
                db.code().code(),
                db.message()
            ));
            if let Some(tokio_postgres::error::ErrorPosition::Original(position)) = db.position() {
                let (line, column) = source::line_and_column(&migration.sql, *position as usize);
                text.push_str(&format!(" at line {line}, column {column}"));
            }
        }
        None => text.push_str(&pg::describe(error)),
    }
    if migration.transactional {
        text.push_str("; rolled back, nothing of this file was applied");
    } else {
        text.push_str("; it ran outside a transaction");
        if let Some(advice) = invalid_index_advice(client, migration).await {
            text.push_str(&format!("; {advice}"));
        }
    }
    anyhow!(text)
}

/// A CREATE INDEX CONCURRENTLY that failed or was interrupted leaves an INVALID index behind,
/// which makes the same file fail (or, with IF NOT EXISTS, silently do nothing) next time.
async fn invalid_index_advice(client: &Client, migration: &Migration) -> Option<String> {
    let rows = client
        .query(
            "SELECT n.nspname, c.relname FROM pg_index i
             JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE NOT i.indisvalid",
            &[],
        )
        .await
        .ok()?;
    let sql = migration.sql.to_lowercase();
    rows.iter()
        .map(|row| (row.get::<_, String>(0), row.get::<_, String>(1)))
        .find(|(_, index)| sql.contains(&index.to_lowercase()))
        .map(|(schema, index)| {
            format!(
                "index {schema}.{index} is INVALID (left by a failed CREATE INDEX CONCURRENTLY): \
                 run DROP INDEX CONCURRENTLY {schema}.{index}; then run migrate again"
            )
        })
}

/// Every mismatch between the files and the ledger that forbids applying.
fn check(args: &MigrateArgs, files: &[Migration], applied: &[Applied]) -> Vec<String> {
    let mut problems = Vec::new();
    for row in applied {
        match files.iter().find(|file| file.version == row.version) {
            Some(file) if file.checksum != row.checksum => problems.push(format!(
                "{} was changed after it was applied (checksum {} recorded, {} now)",
                file.name,
                &row.checksum[..row.checksum.len().min(12)],
                &file.checksum[..12]
            )),
            Some(_) => {}
            None if args.allow_missing => {}
            None => problems.push(format!(
                "version {} ({}) is applied but its file is missing (--allow-missing to go on)",
                row.version, row.name
            )),
        }
    }
    if !args.allow_out_of_order
        && let Some(highest) = applied.iter().map(|row| row.version).max()
    {
        for file in files {
            if file.version < highest && !applied.iter().any(|row| row.version == file.version) {
                problems.push(format!(
                    "{} is pending but older than applied version {highest} (--allow-out-of-order to apply it)",
                    file.name
                ));
            }
        }
    }
    problems
}

/// One line per version on stdout: `applied|pending|changed|missing VERSION NAME`.
fn print_status(files: &[Migration], applied: &[Applied]) {
    use std::io::Write;
    let mut lines: Vec<(i64, String)> = Vec::new();
    for file in files {
        let state = match applied.iter().find(|row| row.version == file.version) {
            Some(row) if row.checksum != file.checksum => "changed",
            Some(_) => "applied",
            None => "pending",
        };
        lines.push((
            file.version,
            format!("{state} {} {}", file.version, file.name),
        ));
    }
    for row in applied {
        if !files.iter().any(|file| file.version == row.version) {
            lines.push((row.version, format!("missing {} {}", row.version, row.name)));
        }
    }
    lines.sort();
    let mut stdout = std::io::stdout().lock();
    for (_, line) in lines {
        let _ = writeln!(stdout, "{line}");
    }
}

/// Records files up to `version` as applied without running them, under the lock.
async fn baseline(
    args: &MigrateArgs,
    ctx: &Ctx,
    target: &PgTarget,
    files: &[Migration],
    version: i64,
) -> anyhow::Result<()> {
    let client = connect(args, ctx, target).await?;
    let key = lock::key(&args.table.name);
    lock::acquire(ctx, &client, key, args.lock_timeout).await?;
    let result = async {
        args.table
            .create(&client)
            .await
            .map_err(|error| anyhow!("creating {}: {}", args.table.name, pg::describe(&error)))?;
        let applied = args.table.read(&client).await?;
        let mut marked = 0;
        for file in files.iter().filter(|file| file.version <= version) {
            if applied.iter().any(|row| row.version == file.version) {
                continue;
            }
            client
                .execute(
                    &args.table.insert_sql(),
                    &[&file.version, &file.name, &file.checksum, &0i64],
                )
                .await
                .map_err(|error| anyhow!("{}: {}", file.name, pg::describe(&error)))?;
            marked += 1;
        }
        logging::emit(
            Level::Info,
            &format!("baseline {version}: {marked} files marked as applied without running them"),
            &[("event", "baseline".into()), ("marked", marked.into())],
        );
        Ok(())
    }
    .await;
    lock::release(&client, key).await;
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
