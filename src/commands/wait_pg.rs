//! wait-pg: ready when PostgreSQL authenticates and answers a query (the postgres:// probe).

use crate::probe::pg::ready::{PgProbe, PgReadyOptions};
use crate::probe::pg::{PgArgs, PgTarget};
use crate::probe::{self, Probe};
use crate::runtime::ctx::Ctx;
use crate::runtime::exec::ExecArgs;

#[derive(Debug, clap::Args)]
pub struct WaitPgArgs {
    #[command(flatten)]
    pub connection: PgArgs,

    #[command(flatten)]
    pub ready: PgReadyOptions,

    #[command(flatten)]
    pub then: ExecArgs,
}

pub async fn run(args: &WaitPgArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let target = PgTarget::from_args(&args.connection)?;
    let probes: [Box<dyn Probe>; 1] = [Box::new(PgProbe::new(target, args.ready.clone()))];
    probe::until_all_ready(ctx, &probes).await
}
