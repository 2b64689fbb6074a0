//! The command line: global options (each with an `INITBOX_*` variable) and the subcommands.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::{ArgAction, Args, Parser, Subcommand};

use crate::commands::{
    fetch::FetchArgs, fetch_vault::FetchVaultArgs, fix_perms::FixPermsArgs, migrate::MigrateArgs,
    render_config::RenderConfigArgs, wait::WaitArgs, wait_dns::WaitDnsArgs,
    wait_grpc::WaitGrpcArgs, wait_http::WaitHttpArgs, wait_k8s::WaitK8sArgs,
    wait_mysql::WaitMysqlArgs, wait_pg::WaitPgArgs, wait_redis::WaitRedisArgs,
    wait_tcp::WaitTcpArgs,
};
use crate::runtime::duration;
use crate::runtime::logging::LogFormat;
use crate::runtime::retry::Policy;

#[derive(Debug, Parser)]
#[command(
    name = "initbox",
    version = crate::version::VERSION,
    about = "Get a pod ready before its app starts: wait for what it depends on, under a deadline.",
    after_help = "Exit codes: 0 ready, 1 failed (permanent error), 2 usage or configuration error, \
                  124 deadline exceeded, 126/127 the command after -- could not be run, \
                  130 SIGINT, 143 SIGTERM.",
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Wait for every URI (tcp, postgres, redis, http, dns, file, grpc, mysql, k8s) at once.
    Wait(WaitArgs),
    /// Wait until every TARGET accepts a TCP connection.
    WaitTcp(WaitTcpArgs),
    /// Wait until every NAME resolves in DNS (no answer cache: late names are seen).
    WaitDns(WaitDnsArgs),
    /// Wait until PostgreSQL authenticates and answers a query (not just opens its port).
    WaitPg(WaitPgArgs),
    /// Wait until Redis answers PONG and has loaded its dataset (not LOADING).
    WaitRedis(WaitRedisArgs),
    /// Wait until every URL answers with an accepted HTTP status.
    WaitHttp(WaitHttpArgs),
    /// Wait until every gRPC server's health service answers SERVING.
    WaitGrpc(WaitGrpcArgs),
    /// Wait until MySQL or MariaDB accepts a login and answers a query.
    WaitMysql(WaitMysqlArgs),
    /// Wait for Kubernetes objects: a Job complete, a rollout done, pods ready, endpoints.
    #[command(name = "wait-k8s")]
    WaitK8s(WaitK8sArgs),
    /// Apply PostgreSQL migrations once, however many replicas run this at the same time.
    Migrate(MigrateArgs),
    /// Log in to Vault or OpenBao, write KV secrets to files atomically, revoke the token.
    FetchVault(FetchVaultArgs),
    /// Render config files from templates and environment variables; write them atomically.
    RenderConfig(RenderConfigArgs),
    /// Give a volume an owner and modes; never follows symlinks, skips what is right.
    FixPerms(FixPermsArgs),
    /// Download files (or unpack archives) over HTTP(S), verified, resumed, written atomically.
    Fetch(FetchArgs),
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Overall deadline; 0 means none. Forms: 250ms, 30s, 5m, 1h30m, or seconds.
    #[arg(long, global = true, env = "INITBOX_TIMEOUT", default_value = "5m",
          value_name = "DURATION", value_parser = duration::parse, allow_hyphen_values = true)]
    pub timeout: Duration,

    /// Longest one attempt may take (never longer than what is left of --timeout).
    #[arg(long, global = true, env = "INITBOX_ATTEMPT_TIMEOUT", default_value = "5s",
          value_name = "DURATION", value_parser = duration::parse, allow_hyphen_values = true)]
    pub attempt_timeout: Duration,

    /// First pause between attempts; pauses double, with jitter, up to --max-interval.
    #[arg(long, global = true, env = "INITBOX_INTERVAL", default_value = "100ms",
          value_name = "DURATION", value_parser = duration::parse, allow_hyphen_values = true)]
    pub interval: Duration,

    /// Longest pause between attempts.
    #[arg(long, global = true, env = "INITBOX_MAX_INTERVAL", default_value = "1s",
          value_name = "DURATION", value_parser = duration::parse, allow_hyphen_values = true)]
    pub max_interval: Duration,

    /// Log format on stderr (stdout carries data only).
    #[arg(
        long,
        global = true,
        env = "INITBOX_LOG_FORMAT",
        default_value = "text",
        value_enum,
        value_name = "FORMAT"
    )]
    pub log_format: LogFormat,

    /// More detail: one line per attempt instead of one per change of state.
    #[arg(short, long, global = true, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Less detail: -q warnings and errors only, -qq errors only.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub quiet: u8,

    /// Log level instead of -v/-q: error, warn, info or debug.
    #[arg(long, global = true, env = "INITBOX_LOG_LEVEL", value_name = "LEVEL",
          value_parser = ["error", "warn", "info", "debug"], hide_possible_values = true)]
    pub log_level: Option<String>,

    /// Where to write the one-line failure reason that `kubectl describe pod` shows.
    /// Default: /dev/termination-log when it exists and is writable; "" disables.
    #[arg(long, global = true, env = "INITBOX_TERMINATION_LOG", value_name = "PATH",
          value_parser = clap::builder::OsStringValueParser::new().map(PathBuf::from))]
    pub termination_log: Option<PathBuf>,

    /// Also post each change of state as a Kubernetes Event on this pod (POD_NAME and
    /// POD_NAMESPACE from the downward API), for `kubectl describe pod`.
    #[arg(long, global = true, env = "INITBOX_EVENTS")]
    pub events: bool,
}

impl GlobalArgs {
    pub fn policy(&self) -> Policy {
        Policy {
            attempt_timeout: self.attempt_timeout,
            interval: self.interval,
            max_interval: self.max_interval,
        }
    }

    /// 0 is info; positive is more detail, negative less. --log-level wins over -v/-q.
    pub fn verbosity(&self) -> i8 {
        match self.log_level.as_deref() {
            Some("error") => -2,
            Some("warn") => -1,
            Some("debug") => 1,
            Some(_) => 0,
            None => self.verbose.min(8) as i8 - self.quiet.min(8) as i8,
        }
    }
}
