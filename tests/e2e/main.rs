//! End-to-end tests: the initbox image in real pods, on the single-node Kubernetes (v1.20.2) of
//! scripts/kube-up, checked through what a person reads: `kubectl get pod`, `kubectl describe
//! pod`, `kubectl logs -c NAME`, and, where Kubernetes 1.20 does not show it, containerd's own
//! events. Run by tests/e2e/run, which starts the cluster and loads the images; skipped (with a
//! line saying so) in a plain `cargo test`.

#[path = "../support/mod.rs"]
mod support;

mod chain;
mod failures;
mod pods;
mod vault;
mod wait_k8s;
mod wait_redis;
