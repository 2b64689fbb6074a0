//! wait-mysql: ready when MySQL or MariaDB accepts a login and answers a query (the mysql://
//! probe).

use crate::probe::mysql::{MysqlOptions, MysqlProbe};
use crate::probe::{self, Probe};
use crate::runtime::ctx::Ctx;
use crate::runtime::exec::ExecArgs;

#[derive(Debug, clap::Args)]
pub struct WaitMysqlArgs {
    /// mysql://[user[:password]@]host[:port][/database] (or mariadb://), with ssl-mode and ssl-ca
    /// as query parameters.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub url: String,

    #[command(flatten)]
    pub options: MysqlOptions,

    #[command(flatten)]
    pub then: ExecArgs,
}

pub async fn run(args: &WaitMysqlArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let probes: [Box<dyn Probe>; 1] = [Box::new(MysqlProbe::parse(
        &args.url,
        args.options.clone(),
    )?)];
    probe::until_all_ready(ctx, &probes).await
}
