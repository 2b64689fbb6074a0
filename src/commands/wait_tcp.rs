//! wait-tcp: ready when every target accepts a TCP connection.

use std::net::SocketAddr;

use anyhow::anyhow;
use futures_util::future::try_join_all;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::probe::target::HostPort;
use crate::runtime::ctx::Ctx;
use crate::runtime::exec::ExecArgs;
use crate::runtime::retry::{self, AttemptError};
use crate::text::error_text;

#[derive(Debug, clap::Args)]
pub struct WaitTcpArgs {
    /// host:port or [v6addr]:port. Several are waited for in parallel, under one deadline.
    #[arg(required = true, value_name = "TARGET", value_parser = HostPort::parse)]
    pub targets: Vec<HostPort>,

    #[command(flatten)]
    pub then: ExecArgs,
}

pub async fn run(args: &WaitTcpArgs, ctx: &Ctx) -> anyhow::Result<()> {
    try_join_all(args.targets.iter().map(|target| wait_for(target, ctx))).await?;
    Ok(())
}

async fn wait_for(target: &HostPort, ctx: &Ctx) -> anyhow::Result<()> {
    retry::until_ready(ctx, &target.to_string(), |_| probe(target)).await
}

/// One attempt: resolve the name afresh (a Service's address may change between attempts), then
/// connect to every address at once; the first to accept wins and its connection is closed.
async fn probe(target: &HostPort) -> Result<(), AttemptError> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|error| {
            AttemptError::transient(anyhow!("cannot resolve {}: {error}", target.host))
        })?
        .collect();
    if addresses.is_empty() {
        return Err(AttemptError::transient(anyhow!(
            "{} resolves to no address",
            target.host
        )));
    }
    // For a name, say which of its addresses failed; for an address, that would be repetition.
    let show_address = target.host.parse::<std::net::IpAddr>().is_err();
    let mut connects = JoinSet::new();
    for address in addresses {
        connects.spawn(async move { (address, TcpStream::connect(address).await) });
    }
    let mut failures = Vec::new();
    while let Some(joined) = connects.join_next().await {
        match joined {
            Ok((_, Ok(_connection))) => return Ok(()),
            Ok((address, Err(error))) if show_address => {
                failures.push(format!("{address}: {}", error_text::io(&error)))
            }
            Ok((_, Err(error))) => failures.push(error_text::io(&error)),
            Err(error) => failures.push(error.to_string()),
        }
    }
    failures.sort();
    Err(AttemptError::transient(anyhow!(failures.join(", "))))
}
