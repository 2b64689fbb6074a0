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
    let tls = args.options.tls || args.options.cacert.is_some() || args.options.insecure;
    let probes = args
        .targets
        .iter()
        .map(|target| {
            let scheme = if tls { "grpcs" } else { "grpc" };
            let mut shown = format!("{scheme}://{target}");
            if !args.options.service.is_empty() {
                shown = format!("{shown}/{}", args.options.service);
            }
            GrpcProbe::new(target.clone(), args.options.clone(), shown)
                .map(|probe| Box::new(probe) as Box<dyn Probe>)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    probe::until_all_ready(ctx, &probes).await
}
