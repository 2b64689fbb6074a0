//! wait-redis: ready when Redis answers PONG and has loaded its dataset (the redis:// probe).

use crate::probe::redis::{RedisOptions, RedisProbe};
use crate::probe::{self, Probe};
use crate::runtime::ctx::Ctx;
use crate::runtime::exec::ExecArgs;

#[derive(Debug, clap::Args)]
pub struct WaitRedisArgs {
    /// redis://[[user]:password@]host[:port][/db], or rediss:// for TLS.
    #[arg(long, env = "REDIS_URL", hide_env_values = true, value_name = "URL")]
    pub url: String,

    #[command(flatten)]
    pub options: RedisOptions,

    #[command(flatten)]
    pub then: ExecArgs,
}

pub async fn run(args: &WaitRedisArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let probes: [Box<dyn Probe>; 1] = [Box::new(RedisProbe::new(&args.url, args.options.clone())?)];
    probe::until_all_ready(ctx, &probes).await
}
