//! wait-k8s: ready when every Kubernetes target has reached its goal (a Job complete, a
//! Deployment or StatefulSet rolled out, pods ready, a Service's endpoints, a condition, a
//! deletion), each watched through the API (probe/k8s/).

use std::rc::Rc;

use crate::probe::k8s::client::Client;
use crate::probe::k8s::config::Config;
use crate::probe::k8s::target::{self, Spec};
use crate::probe::k8s::{self, K8sProbe};
use crate::probe::{self, Probe};
use crate::runtime::exec::ExecArgs;

#[derive(Debug, clap::Args)]
pub struct WaitK8sArgs {
    /// KIND/NAME (job/migrate, deployment/api, statefulset/db, service/db, any kubectl kind or
    /// RESOURCE.GROUP), or `pod` with -l. Several are waited for in parallel.
    #[arg(required = true, value_name = "TARGET")]
    pub targets: Vec<String>,

    /// What to wait for: complete (jobs), available (deployments), ready (statefulsets, pods),
    /// endpoints (services), condition=TYPE[=STATUS], or delete. Default: the kind's own.
    #[arg(long = "for", env = "INITBOX_K8S_FOR", value_name = "GOAL")]
    pub goal: Option<String>,

    /// Label selector for `pod` targets, as kubectl's -l.
    #[arg(
        short = 'l',
        long,
        env = "INITBOX_K8S_SELECTOR",
        value_name = "SELECTOR"
    )]
    pub selector: Option<String>,

    /// At least this many ready pods or endpoint addresses (default 1).
    #[arg(long, env = "INITBOX_K8S_MIN", value_name = "N")]
    pub min: Option<u32>,

    /// Namespace of the targets. Default: the pod's own (service-account mount), or the
    /// KUBECONFIG context's.
    #[arg(
        short = 'n',
        long,
        env = "INITBOX_K8S_NAMESPACE",
        value_name = "NAMESPACE"
    )]
    pub namespace: Option<String>,

    /// Keep waiting on 403 Forbidden (RBAC applied in the same rollout) instead of exiting 1.
    #[arg(long, env = "INITBOX_K8S_RETRY_FORBIDDEN")]
    pub retry_forbidden: bool,

    #[command(flatten)]
    pub then: ExecArgs,
}

pub async fn run(args: &WaitK8sArgs, ctx: &crate::runtime::ctx::Ctx) -> anyhow::Result<()> {
    // Targets first: a typo is reported before the API configuration is even read.
    let targets = args
        .targets
        .iter()
        .map(|text| {
            target::parse(&Spec {
                target: text,
                goal: args.goal.as_deref(),
                selector: args.selector.as_deref(),
                min: args.min,
                namespace: "",
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let client = Client::new(Config::load()?)?;
    let namespace = k8s::default_namespace(args.namespace.as_deref(), &client)?;
    let client = Rc::new(client);
    let probes: Vec<Box<dyn Probe>> = targets
        .into_iter()
        .map(|mut target| {
            target.namespace = namespace.clone();
            Box::new(K8sProbe::new(client.clone(), target, args.retry_forbidden)) as Box<dyn Probe>
        })
        .collect();
    probe::until_all_ready(ctx, &probes).await
}
