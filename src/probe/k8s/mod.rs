//! The Kubernetes API, spoken directly (JSON over HTTPS through reqwest and serde_json): where
//! the server is and who we are (config.rs), requests and watches (client.rs), what to wait for
//! (target.rs), when it is reached (judge.rs), and the watch loop (watch.rs). `wait-k8s`, the
//! `k8s:` scheme of `initbox wait`, and the Events of `--events` share this client.
//!
//! kube-rs with k8s-openapi would bring typed objects for every API group, megabytes of code
//! for the handful of fields read here; the JSON API is small and stable enough to speak as is.

pub mod client;
pub mod config;
pub mod events;
pub mod judge;
pub mod target;
pub mod watch;
mod yaml;

use std::rc::Rc;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;

use crate::probe::Probe;
use crate::probe::query::Query;
use crate::runtime::ctx::Ctx;
use crate::runtime::exit;
use crate::runtime::retry::AttemptError;
use client::Client;
use config::Config;
use target::{Spec, Target};

/// Query parameters of a `k8s:` URI, under the names of wait-k8s's flags.
pub const PARAMS: &[&str] = &["for", "selector", "min", "namespace", "retry_forbidden"];

/// One target waited for by watching it.
pub struct K8sProbe {
    client: Rc<Client>,
    target: Target,
    shown: String,
    retry_forbidden: bool,
}

impl K8sProbe {
    pub fn new(client: Rc<Client>, target: Target, retry_forbidden: bool) -> K8sProbe {
        K8sProbe {
            shown: target.shown(),
            client,
            target,
            retry_forbidden,
        }
    }

    /// `k8s:KIND/NAME?for=...&namespace=...` or `k8s:pod?selector=app%3Dweb&min=2`.
    pub fn from_uri(rest: &str, query: &mut Query) -> anyhow::Result<K8sProbe> {
        let goal = query.take(&["for"])?;
        let selector = query.take(&["selector", "l"])?;
        let min = query.parse(&["min"], |text| {
            text.parse::<u32>()
                .map_err(|_| format!("'{text}' is not a number"))
        })?;
        let namespace = query.take(&["namespace", "n"])?;
        let retry_forbidden = query.flag(&["retry_forbidden"])?;
        let mut target = target::parse(&Spec {
            target: rest.trim_start_matches('/'),
            goal: goal.as_deref(),
            selector: selector.as_deref(),
            min,
            namespace: "",
        })?;
        let client = Client::new(Config::load()?)?;
        target.namespace = default_namespace(namespace.as_deref(), &client)?;
        Ok(K8sProbe::new(Rc::new(client), target, retry_forbidden))
    }
}

/// `-n`, else the namespace of the configuration (the pod's own, or the kubeconfig context's),
/// else `default` as kubectl uses.
pub fn default_namespace(flag: Option<&str>, client: &Client) -> anyhow::Result<String> {
    let namespace = flag
        .map(str::to_string)
        .or_else(|| client.namespace.clone())
        .unwrap_or_else(|| "default".to_string());
    let valid = !namespace.is_empty()
        && namespace.len() <= 63
        && namespace
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid {
        return Err(exit::usage(format!(
            "namespace '{namespace}' is not a valid namespace name"
        )));
    }
    Ok(namespace)
}

impl Probe for K8sProbe {
    fn shown(&self) -> &str {
        &self.shown
    }

    /// Not used: a Kubernetes target is watched (see `watch`), never polled.
    fn check(&self, _budget: Duration) -> LocalBoxFuture<'_, Result<(), AttemptError>> {
        Box::pin(async {
            Err(AttemptError::permanent(anyhow::anyhow!(
                "k8s targets are watched"
            )))
        })
    }

    fn watch<'a>(&'a self, ctx: &'a Ctx) -> Option<LocalBoxFuture<'a, anyhow::Result<()>>> {
        Some(Box::pin(watch::until_reached(
            ctx,
            &self.client,
            &self.target,
            &self.shown,
            self.retry_forbidden,
        )))
    }
}
