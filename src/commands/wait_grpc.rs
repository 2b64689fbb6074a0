//! wait-grpc: ready when every server's gRPC health service answers SERVING (the grpc:// probe).

use crate::probe::grpc::{GrpcOptions, GrpcProbe};
use crate::probe::target::HostPort;
use crate::probe::{self, Probe};
use crate::runtime::ctx::Ctx;
use crate::runtime::exec::ExecArgs;

#[derive(Debug, clap::Args)]
pub struct WaitGrpcArgs {
    /// host:port or [v6addr]:port of a gRPC server. Several are waited for in parallel.
    #[arg(required = true, value_name = "TARGET", value_parser = HostPort::parse)]
    pub targets: Vec<HostPort>,

    #[command(flatten)]
    pub options: GrpcOptions,

    #[command(flatten)]
    pub then: ExecArgs,
}

pub async fn run(args: &WaitGrpcArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let probes = args
        .targets
        .iter()
        .map(|target| {
            GrpcProbe::new(target.clone(), args.options.clone())
                .map(|probe| Box::new(probe) as Box<dyn Probe>)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    probe::until_all_ready(ctx, &probes).await
}
