//! Pods as a person sees them: the STATUS column of `kubectl get pod`, `kubectl describe pod`,
//! `kubectl logs -c NAME`; and small pods of the initbox image to run one init container.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::kube::{BUSYBOX_IMAGE, Cluster, INITBOX_IMAGE, wait_for};

/// The columns of `kubectl get pod NAME` (NAME READY STATUS RESTARTS AGE); empty while the pod
/// does not exist.
fn columns(cluster: &Cluster, namespace: &str, pod: &str) -> Vec<String> {
    let output = cluster
        .kubectl()
        .args(["get", "pod", pod, "-n", namespace, "--no-headers"])
        .output()
        .expect("run kubectl");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The STATUS column of `kubectl get pod` (Init:0/5, Init:Error, Running...), or None while the
/// pod does not exist.
pub fn status(cluster: &Cluster, namespace: &str, pod: &str) -> Option<String> {
    columns(cluster, namespace, pod).get(2).cloned()
}

/// Every distinct STATUS `kubectl get pod` showed, in order, polled every 100 ms until `done`
/// returns true for one of them.
pub fn watch_statuses(
    cluster: &Cluster,
    namespace: &str,
    pod: &str,
    timeout: Duration,
    done: impl Fn(&str) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut seen: Vec<String> = Vec::new();
    loop {
        if let Some(current) = status(cluster, namespace, pod) {
            if seen.last() != Some(&current) {
                seen.push(current.clone());
            }
            if done(&current) {
                return seen;
            }
        }
        assert!(
            Instant::now() < deadline,
            "pod {pod}: statuses so far {seen:?}, still waiting after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn describe(cluster: &Cluster, namespace: &str, pod: &str) -> String {
    cluster.kubectl_ok(&["describe", "pod", pod, "-n", namespace])
}

pub fn logs(cluster: &Cluster, namespace: &str, pod: &str, container: &str) -> String {
    cluster.kubectl_ok(&["logs", pod, "-n", namespace, "-c", container])
}

/// The names of the pods matching a label selector.
pub fn names(cluster: &Cluster, namespace: &str, selector: &str) -> Vec<String> {
    let list = cluster.get_json(namespace, &["pods", "-l", selector]);
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pod| pod["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// Waits until the pod is Running with every container ready.
pub fn wait_running(cluster: &Cluster, namespace: &str, pod: &str, timeout: Duration) {
    wait_for(
        &format!("pod {pod} to be Running"),
        timeout,
        || match columns(cluster, namespace, pod).as_slice() {
            [_, ready, status, ..] if status == "Running" => {
                ready.split_once('/').is_some_and(|(up, all)| up == all)
            }
            _ => false,
        },
    );
}

/// The status of one container (`initContainerStatuses` or `containerStatuses`) by name.
pub fn container_status<'a>(pod: &'a Value, name: &str) -> &'a Value {
    ["initContainerStatuses", "containerStatuses"]
        .iter()
        .filter_map(|list| pod["status"][list].as_array())
        .flatten()
        .find(|status| status["name"] == name)
        .unwrap_or_else(|| panic!("no status for container {name}"))
}

/// The containerd ID of a container (its containerID without the `containerd://`).
pub fn container_id(pod: &Value, name: &str) -> String {
    let id = container_status(pod, name)["containerID"]
        .as_str()
        .unwrap_or_else(|| panic!("container {name} has no ID yet"));
    id.trim_start_matches("containerd://").to_string()
}

/// The value of the first `FIELD:` line ("Message", "Exit Code"...) in a part of `kubectl
/// describe pod`.
pub fn describe_field<'a>(section: &'a str, field: &str) -> Option<&'a str> {
    section.lines().find_map(|line| {
        line.trim_start()
            .strip_prefix(field)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

/// The security context every initbox container of deploy/ has.
pub fn restricted() -> Value {
    json!({
        "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
        "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}
    })
}

/// A pod whose one init container runs initbox with `args`, then an app container that says it
/// started and sleeps. On the host network when `host_network` (to reach servers the test
/// started on the namespace's loopback).
pub fn initbox_pod(name: &str, args: &[&str], host_network: bool) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "hostNetwork": host_network,
            // The service-account token volume stays mounted, as in most pods. Kubelet 1.20
            // treats a deleted pod whose app container never started as terminated at once,
            // and, once it has no volumes left, SIGKILLs what runs in its cgroup: a pod
            // without volumes would lose its init container to that race instead of seeing it
            // stop on SIGTERM.
            "initContainers": [{
                "name": "wait", "image": INITBOX_IMAGE, "imagePullPolicy": "Never",
                "args": args, "securityContext": restricted(),
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "32Mi"}},
                "terminationMessagePolicy": "FallbackToLogsOnError"
            }],
            "containers": [{
                "name": "app", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                // A trap, since PID 1 ignores an unhandled SIGTERM (deletion would take 30 s).
                "command": ["sh", "-c", "echo app started; trap 'exit 0' TERM; sleep 3600 & wait"],
                "securityContext": {"runAsNonRoot": true, "runAsUser": 10001, "readOnlyRootFilesystem": true,
                                    "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}
            }]
        }
    })
}
