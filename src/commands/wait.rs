//! `initbox wait URI...`: every dependency of a pod in one call, each named by a URI whose
//! scheme picks its probe (probe/uri.rs), all waited for in parallel under one deadline.

use crate::probe::{self, uri};
use crate::runtime::ctx::Ctx;
use crate::runtime::exec::ExecArgs;
use crate::runtime::exit;

/// Read when no URI is given on the command line: whitespace-separated URIs.
pub const ENV: &str = "INITBOX_WAIT";

#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    /// tcp://, postgres://, redis://, http(s)://, dns:, file://, grpc(s)://, mysql://,
    /// mariadb:// or k8s: URIs; options are query parameters. Default: the URIs in INITBOX_WAIT.
    #[arg(value_name = "URI")]
    pub uris: Vec<String>,

    #[command(flatten)]
    pub then: ExecArgs,
}

pub async fn run(args: &WaitArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let from_env;
    let texts: Vec<&str> = if args.uris.is_empty() {
        from_env = std::env::var(ENV).unwrap_or_default();
        from_env.split_whitespace().collect()
    } else {
        args.uris.iter().map(String::as_str).collect()
    };
    if texts.is_empty() {
        return Err(exit::usage(format!(
            "nothing to wait for: give URIs as arguments or in {ENV}"
        )));
    }
    // Every URI is checked before any waiting starts, so a typo in the last one costs nothing.
    let probes = texts
        .iter()
        .map(|text| uri::parse(text))
        .collect::<anyhow::Result<Vec<_>>>()?;
    probe::until_all_ready(ctx, &probes).await
}
