//! wait-dns: ready when every name resolves (the dns: probe); the records are printed on stdout.

use std::io::Write;

use futures_util::future::try_join_all;

use crate::probe::Probe;
use crate::probe::dns::{self, DnsOptions, DnsProbe};
use crate::runtime::ctx::Ctx;
use crate::runtime::exec::ExecArgs;
use crate::runtime::retry;

#[derive(Debug, clap::Args)]
pub struct WaitDnsArgs {
    /// Name to resolve; a name without a final '.' goes through the search list like the app's
    /// own lookups. Several are waited for in parallel.
    #[arg(required = true, value_name = "NAME", value_parser = dns::parse_name)]
    pub names: Vec<String>,

    #[command(flatten)]
    pub options: DnsOptions,

    #[command(flatten)]
    pub then: ExecArgs,
}

pub async fn run(args: &WaitDnsArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let probes = args
        .names
        .iter()
        .map(|name| DnsProbe::new(name, args.options.clone(), name.clone()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let answers = try_join_all(
        probes
            .iter()
            .map(|probe| retry::until_ready(ctx, probe.shown(), |budget| probe.lookup(budget))),
    )
    .await?;
    // The answers are data: one record per line on stdout, for scripts. A closed stdout does
    // not undo the wait, so write errors are ignored.
    let mut stdout = std::io::stdout().lock();
    for record in answers.into_iter().flatten() {
        let _ = writeln!(stdout, "{record}");
    }
    Ok(())
}
