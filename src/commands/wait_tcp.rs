//! wait-tcp: ready when every target accepts a TCP connection (the tcp:// probe).

use crate::probe::target::HostPort;
use crate::probe::tcp::TcpProbe;
use crate::probe::{self, Probe};
use crate::runtime::ctx::Ctx;
use crate::runtime::exec::ExecArgs;

#[derive(Debug, clap::Args)]
pub struct WaitTcpArgs {
    /// host:port or [v6addr]:port. Several are waited for in parallel, under one deadline.
    #[arg(required = true, value_name = "TARGET", value_parser = HostPort::parse)]
    pub targets: Vec<HostPort>,

    #[command(flatten)]
    pub then: ExecArgs,
}

pub async fn run(args: &WaitTcpArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let probes: Vec<Box<dyn Probe>> = args
        .targets
        .iter()
        .map(|target| Box::new(TcpProbe::new(target.clone(), target.to_string())) as Box<dyn Probe>)
        .collect();
    probe::until_all_ready(ctx, &probes).await
}
