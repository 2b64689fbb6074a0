//! Clients and readiness probes, one per kind of dependency, and the one place (uri.rs) that maps
//! a URI's scheme to its probe. The wait-* subcommands and `initbox wait` are front-ends over
//! the same probes.
//!
//! A new kind (a `k8s:` scheme, say) is a module here with a type that implements [`Probe`],
//! built from its subcommand's flags and from a URI's parameters (probe::query), plus one arm in
//! uri.rs's match and its name in uri::SCHEMES.

pub mod dns;
pub mod file;
pub mod grpc;
pub mod http;
pub mod k8s;
pub mod mysql;
pub mod pg;
pub mod query;
pub mod redis;
pub mod target;
pub mod tcp;
pub mod tls;
pub mod uri;

use std::time::Duration;

use futures_util::future::{LocalBoxFuture, try_join_all};

use crate::runtime::ctx::Ctx;
use crate::runtime::retry::{self, AttemptError};

/// One target and how to tell whether it is ready.
pub trait Probe {
    /// The target as logs show it: never with a password or token in it.
    fn shown(&self) -> &str;

    /// One attempt. `budget` is how long it may take (the retry loop also enforces it); a
    /// transient error means "not yet", a permanent one that waiting cannot help.
    fn check(&self, budget: Duration) -> LocalBoxFuture<'_, Result<(), AttemptError>>;

    /// For a probe that watches instead of polling (a Kubernetes target): the whole wait, under
    /// the run's deadline and signals. `None`: [`Probe::check`] is retried by the shared loop.
    fn watch<'a>(&'a self, _ctx: &'a Ctx) -> Option<LocalBoxFuture<'a, anyhow::Result<()>>> {
        None
    }
}

/// Waits for every probe in parallel under the run's one deadline; the first permanent failure
/// ends the wait, and on the deadline the report names every target still not ready.
pub async fn until_all_ready(ctx: &Ctx, probes: &[Box<dyn Probe>]) -> anyhow::Result<()> {
    try_join_all(probes.iter().map(|probe| match probe.watch(ctx) {
        Some(watching) => watching,
        None => Box::pin(retry::until_ready(ctx, probe.shown(), move |budget| {
            probe.check(budget)
        })),
    }))
    .await?;
    Ok(())
}
