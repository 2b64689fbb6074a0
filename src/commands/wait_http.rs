//! wait-http: ready when every URL answers with an accepted status (the http:// probe).

use url::Url;

use crate::probe::http::ready::{self, HttpOptions, HttpProbe};
use crate::probe::{self, Probe};
use crate::runtime::ctx::Ctx;
use crate::runtime::exec::ExecArgs;

#[derive(Debug, clap::Args)]
pub struct WaitHttpArgs {
    /// http:// or https:// URL. Several are waited for in parallel.
    #[arg(required = true, value_name = "URL", value_parser = ready::parse_url)]
    pub urls: Vec<Url>,

    #[command(flatten)]
    pub options: HttpOptions,

    #[command(flatten)]
    pub then: ExecArgs,
}

pub async fn run(args: &WaitHttpArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let client = args.options.client()?;
    let probes: Vec<Box<dyn Probe>> = args
        .urls
        .iter()
        .map(|url| {
            Box::new(HttpProbe::new(
                url.clone(),
                args.options.clone(),
                client.clone(),
            )) as Box<dyn Probe>
        })
        .collect();
    probe::until_all_ready(ctx, &probes).await
}
