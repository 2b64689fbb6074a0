//! The dispatch from a parsed subcommand to its implementation.

pub mod fetch;
pub mod fetch_vault;
pub mod fix_perms;
pub mod migrate;
pub mod render_config;
pub mod wait;
pub mod wait_dns;
pub mod wait_grpc;
pub mod wait_http;
pub mod wait_k8s;
pub mod wait_mysql;
pub mod wait_pg;
pub mod wait_redis;
pub mod wait_tcp;

use crate::cli::Command;
use crate::runtime::ctx::Ctx;
use crate::runtime::exec::ExecArgs;

/// Checks that need no waiting: they run before the deadline starts to matter.
pub fn preflight(command: &Command) -> anyhow::Result<()> {
    match exec_after(command) {
        Some(exec) => exec.check(),
        None => Ok(()),
    }
}

pub async fn run(command: &Command, ctx: &Ctx) -> anyhow::Result<()> {
    match command {
        Command::Wait(args) => wait::run(args, ctx).await,
        Command::WaitTcp(args) => wait_tcp::run(args, ctx).await,
        Command::WaitDns(args) => wait_dns::run(args, ctx).await,
        Command::WaitPg(args) => wait_pg::run(args, ctx).await,
        Command::WaitRedis(args) => wait_redis::run(args, ctx).await,
        Command::WaitHttp(args) => wait_http::run(args, ctx).await,
        Command::WaitGrpc(args) => wait_grpc::run(args, ctx).await,
        Command::WaitMysql(args) => wait_mysql::run(args, ctx).await,
        Command::WaitK8s(args) => wait_k8s::run(args, ctx).await,
        Command::Migrate(args) => migrate::run(args, ctx).await,
        Command::FetchVault(args) => fetch_vault::run(args, ctx).await,
        Command::RenderConfig(args) => render_config::run(args, ctx).await,
        Command::FixPerms(args) => fix_perms::run(args, ctx).await,
        Command::Fetch(args) => fetch::run(args, ctx).await,
    }
}

/// How long a subcommand may take to stop by itself after a signal or its deadline: migrate
/// cancels its statement on the server and waits for the rollback, fetch-vault revokes its
/// token, fetch removes a half-unpacked archive; everything else stops at once.
pub fn stop_grace(command: &Command) -> std::time::Duration {
    match command {
        Command::Migrate(_) | Command::FetchVault(_) => std::time::Duration::from_secs(6),
        Command::Fetch(_) => std::time::Duration::from_secs(2),
        _ => std::time::Duration::from_millis(200),
    }
}

/// The command to exec after success, for the subcommands that take one.
pub fn exec_after(command: &Command) -> Option<&ExecArgs> {
    match command {
        Command::Wait(args) => Some(&args.then),
        Command::WaitTcp(args) => Some(&args.then),
        Command::WaitDns(args) => Some(&args.then),
        Command::WaitPg(args) => Some(&args.then),
        Command::WaitRedis(args) => Some(&args.then),
        Command::WaitHttp(args) => Some(&args.then),
        Command::WaitGrpc(args) => Some(&args.then),
        Command::WaitMysql(args) => Some(&args.then),
        Command::WaitK8s(args) => Some(&args.then),
        Command::Migrate(_)
        | Command::FetchVault(_)
        | Command::RenderConfig(_)
        | Command::FixPerms(_)
        | Command::Fetch(_) => None,
    }
}
