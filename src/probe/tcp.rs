//! tcp://host:port and wait-tcp: ready when the target accepts a TCP connection.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::anyhow;
use futures_util::future::LocalBoxFuture;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::probe::Probe;
use crate::probe::target::HostPort;
use crate::runtime::retry::AttemptError;
use crate::text::error_text;

pub struct TcpProbe {
    target: HostPort,
    shown: String,
}

impl TcpProbe {
    /// A probe shown as `shown` in logs (`db:5432` for wait-tcp, `tcp://db:5432` for wait).
    pub fn new(target: HostPort, shown: String) -> TcpProbe {
        TcpProbe { target, shown }
    }
}

impl Probe for TcpProbe {
    fn shown(&self) -> &str {
        &self.shown
    }

    fn check(&self, _budget: Duration) -> LocalBoxFuture<'_, Result<(), AttemptError>> {
        Box::pin(connect(&self.target))
    }
}

/// One attempt: resolve the name afresh (a Service's address may change between attempts), then
/// connect to every address at once; the first to accept wins and its connection is closed.
async fn connect(target: &HostPort) -> Result<(), AttemptError> {
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
