//! wait-k8s against the real API server of scripts/kube-up: Jobs that complete or fail for
//! good, a Deployment rolling out, a Service whose endpoints appear, a 403 from a service
//! account without a Role, a token file rewritten while waiting, and each KUBECONFIG form
//! (client certificate, token, token file). initbox runs on the test's thread's network
//! namespace, next to the API server.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::support::kube::{BUSYBOX_IMAGE, Cluster};
use crate::support::{self, initbox};

/// A kubeconfig for the cluster with `user` (YAML lines under `user:`) as its credentials.
fn kubeconfig(cluster: &Cluster, dir: &Path, user: &str) -> PathBuf {
    let admin = std::fs::read_to_string(&cluster.kubeconfig).unwrap();
    let ca = admin
        .lines()
        .find_map(|line| line.trim().strip_prefix("certificate-authority-data: "))
        .expect("the admin kubeconfig's CA");
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:6443\n    certificate-authority-data: {ca}\nusers:\n- name: u\n  user:\n{user}\ncontexts:\n- name: c\n  context: {{cluster: k, user: u}}\ncurrent-context: c\n"
        ),
    )
    .unwrap();
    path
}

/// A token of a service account, from the TokenRequest API (kubectl 1.20 has no create token).
fn token(cluster: &Cluster, namespace: &str, account: &str) -> String {
    let request = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                         "spec": {"expirationSeconds": 3600}});
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("request.json");
    std::fs::write(&file, request.to_string()).unwrap();
    let path = format!("/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token");
    let answer = cluster.kubectl_ok(&["create", "--raw", &path, "-f", file.to_str().unwrap()]);
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    answer["status"]["token"].as_str().unwrap().to_string()
}

/// A service account; with `verbs` on `resource` of `group` through a Role, when given.
fn account(cluster: &Cluster, namespace: &str, name: &str, rule: Option<(&str, &str)>) {
    cluster.apply(
        namespace,
        &json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}})
            .to_string(),
    );
    if let Some((group, resource)) = rule {
        grant(cluster, namespace, name, group, resource);
    }
}

fn grant(cluster: &Cluster, namespace: &str, name: &str, group: &str, resource: &str) {
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": name},
        "rules": [{"apiGroups": [group], "resources": [resource], "verbs": ["get", "list", "watch"]}]});
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]});
    cluster.apply(namespace, &role.to_string());
    cluster.apply(namespace, &binding.to_string());
}

fn job(name: &str, script: &str, backoff_limit: u32) -> String {
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"backoffLimit": backoff_limit, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                            "command": ["sh", "-c", script]}]}}}})
    .to_string()
}

#[test]
fn a_job_that_completes_after_5s_and_one_that_fails_for_good() {
    let Some(cluster) = Cluster::for_e2e("a_job_that_completes_after_5s") else {
        return;
    };
    let ns = cluster.namespace("e2e-k8s-job");
    account(&cluster, &ns.name, "waiter", Some(("batch", "jobs")));
    let dir = tempfile::tempdir().unwrap();
    let token = token(&cluster, &ns.name, "waiter");
    // The token form of KUBECONFIG; the namespace comes from -n.
    let config = kubeconfig(&cluster, dir.path(), &format!("    token: {token}"));

    let (child, started) = support::spawn(initbox().env("KUBECONFIG", &config).args([
        "wait-k8s",
        "job/migrate",
        "-n",
        &ns.name,
        "--timeout=120s",
    ]));
    cluster.apply(&ns.name, &job("migrate", "sleep 5; echo migrated", 0));
    let run = support::finish(child, started);
    run.expect_code(0);
    assert!(run.elapsed > Duration::from_secs(5), "{:?}", run.elapsed);
    assert!(run.stderr.contains("not found"), "{}", run.stderr);
    assert!(run.stderr.contains("1 active"), "{}", run.stderr);
    assert!(
        !run.stderr.contains(&token),
        "the token leaked:\n{}",
        run.stderr
    );

    // A Job that fails for good ends the wait at once, with the Job's reason, exit 1.
    cluster.apply(&ns.name, &job("broken", "exit 3", 0));
    let termination = dir.path().join("termination-log");
    let run = support::run(
        initbox()
            .env("KUBECONFIG", &config)
            .env("INITBOX_TERMINATION_LOG", &termination)
            .args([
                "wait",
                &format!("k8s:job/broken?namespace={}", ns.name),
                "--timeout=120s",
            ]),
    );
    run.expect_code(1);
    assert!(run.elapsed < Duration::from_secs(60), "{:?}", run.elapsed);
    let message = std::fs::read_to_string(&termination).unwrap();
    assert!(
        message.contains("job failed: BackoffLimitExceeded"),
        "{message}"
    );
    assert!(
        message.starts_with(&format!("job/broken in {}", ns.name)),
        "{message}"
    );
}

#[test]
fn a_deployment_rolling_out_and_a_service_whose_endpoints_appear() {
    let Some(cluster) = Cluster::for_e2e("a_deployment_rolling_out") else {
        return;
    };
    let ns = cluster.namespace("e2e-k8s-rollout");
    let deployment = |value: &str| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "web", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                        "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"],
                        "env": [{"name": "VERSION", "value": value}],
                        "ports": [{"containerPort": 8080}],
                        "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1}}]}}}})
        .to_string()
    };
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}});
    // The admin kubeconfig: the client-certificate form.
    let (child, started) = support::spawn(initbox().env("KUBECONFIG", &cluster.kubeconfig).args([
        "wait-k8s",
        "deployment/web",
        "service/web",
        "-n",
        &ns.name,
        "--min=2",
        "--timeout=120s",
    ]));
    cluster.apply(&ns.name, &service.to_string());
    std::thread::sleep(Duration::from_secs(1));
    cluster.apply(&ns.name, &deployment("1"));
    let run = support::finish(child, started);
    run.expect_code(0);
    let endpoints = cluster.get_json(&ns.name, &["endpoints", "web"]);
    let ready = endpoints["subsets"][0]["addresses"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(
        ready, 2,
        "initbox was done before the endpoints were: {endpoints}"
    );
    assert!(run.stderr.contains("service/web in"), "{}", run.stderr);

    // A new rollout: done only once kubectl rollout status would say so.
    cluster.apply(&ns.name, &deployment("2"));
    let run = support::run(initbox().env("KUBECONFIG", &cluster.kubeconfig).args([
        "wait-k8s",
        "deployment/web",
        "-n",
        &ns.name,
        "--timeout=120s",
    ]));
    run.expect_code(0);
    cluster.kubectl_ok(&[
        "rollout",
        "status",
        "deployment/web",
        "-n",
        &ns.name,
        "--timeout=1s",
    ]);

    // pod -l with --min, through the k8s: scheme.
    let uri = format!("k8s:pod?selector=app%3Dweb&min=2&namespace={}", ns.name);
    let run = support::run(initbox().env("KUBECONFIG", &cluster.kubeconfig).args([
        "wait",
        &uri,
        "--timeout=60s",
    ]));
    run.expect_code(0);
}

#[test]
fn a_403_names_what_is_missing_and_retry_forbidden_waits_for_the_role() {
    let Some(cluster) = Cluster::for_e2e("a_403_names_what_is_missing") else {
        return;
    };
    let ns = cluster.namespace("e2e-k8s-rbac");
    account(&cluster, &ns.name, "norole", None);
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(
        &cluster,
        dir.path(),
        &format!("    token: {}", token(&cluster, &ns.name, "norole")),
    );
    let run = support::run(initbox().env("KUBECONFIG", &config).args([
        "wait-k8s",
        "job/migrate",
        "-n",
        &ns.name,
        "--timeout=60s",
    ]));
    run.expect_failed_at_once("403 Forbidden");
    let line = run.last_line();
    assert!(line.contains(r#"cannot list resource "jobs""#), "{line}");
    assert!(
        line.contains(&format!(r#"in the namespace "{}""#, ns.name)),
        "{line}"
    );
    assert!(
        line.contains("get, list and watch on jobs (batch)"),
        "{line}"
    );

    // With --retry-forbidden the wait goes on until the Role is there.
    let (child, started) = support::spawn(initbox().env("KUBECONFIG", &config).args([
        "wait-k8s",
        "job/old",
        "--for=delete",
        "--retry-forbidden",
        "-n",
        &ns.name,
        "--timeout=60s",
    ]));
    std::thread::sleep(Duration::from_secs(2));
    grant(&cluster, &ns.name, "norole", "batch", "jobs");
    let run = support::finish(child, started);
    run.expect_code(0);
    assert!(run.stderr.contains("403 Forbidden"), "{}", run.stderr);
}

#[test]
fn a_rewritten_token_file_is_read_again_and_a_deletion_is_seen_at_once() {
    let Some(cluster) = Cluster::for_e2e("a_rewritten_token_file_is_read_again") else {
        return;
    };
    let ns = cluster.namespace("e2e-k8s-token");
    account(&cluster, &ns.name, "waiter", Some(("", "configmaps")));
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "not-a-valid-token\n").unwrap();
    let config = kubeconfig(&cluster, dir.path(), "    tokenFile: token");
    cluster.kubectl_ok(&["create", "configmap", "lock", "-n", &ns.name]);
    let (child, started) = support::spawn(initbox().env("KUBECONFIG", &config).args([
        "wait-k8s",
        "configmap/lock",
        "--for=delete",
        "-n",
        &ns.name,
        "--timeout=60s",
    ]));
    std::thread::sleep(Duration::from_secs(2));
    // The kubelet rotates a projected token by writing the file again.
    std::fs::write(&token_file, token(&cluster, &ns.name, "waiter")).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    cluster.kubectl_ok(&["delete", "configmap", "lock", "-n", &ns.name]);
    let deleted_at = started.elapsed();
    let run = support::finish(child, started);
    run.expect_code(0);
    assert!(run.stderr.contains("401 Unauthorized"), "{}", run.stderr);
    assert!(run.stderr.contains("still exists"), "{}", run.stderr);
    // Seen through the watch: done within a second of kubectl's return (generous here; the
    // README quotes the measured latency).
    let after = run.elapsed.saturating_sub(deleted_at);
    assert!(after < Duration::from_secs(1), "{after:?}\n{}", run.stderr);
}

/// A pod whose init container runs initbox with --events in the cluster's own way: the mounted
/// service-account token and CA, the downward API for the pod's name, namespace and UID. On
/// the host network with KUBERNETES_SERVICE_HOST=127.0.0.1, since this node has no kube-proxy.
fn events_pod(name: &str, account: &str, args: &[&str]) -> serde_json::Value {
    let mut pod = crate::pods::initbox_pod(name, args, true);
    let field = |path: &str| json!({"fieldRef": {"fieldPath": path}});
    pod["spec"]["serviceAccountName"] = json!(account);
    pod["spec"]["initContainers"][0]["env"] = json!([
        {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
        {"name": "KUBERNETES_SERVICE_PORT", "value": "6443"},
        {"name": "POD_NAME", "valueFrom": field("metadata.name")},
        {"name": "POD_NAMESPACE", "valueFrom": field("metadata.namespace")},
        {"name": "POD_UID", "valueFrom": field("metadata.uid")},
    ]);
    pod
}

#[test]
fn events_show_in_kubectl_describe_while_the_init_container_waits() {
    let Some(cluster) = Cluster::for_e2e("events_show_in_kubectl_describe") else {
        return;
    };
    let ns = cluster.namespace("e2e-k8s-events");
    account(&cluster, &ns.name, "waiter", Some(("batch", "jobs")));
    // What deploy/ grants for --events: create and patch on events.
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "events"},
        "rules": [{"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch", "get"]}]});
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "events"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "events"},
        "subjects": [{"kind": "ServiceAccount", "name": "waiter", "namespace": ns.name}]});
    cluster.apply(&ns.name, &role.to_string());
    cluster.apply(&ns.name, &binding.to_string());
    let pod = events_pod(
        "api",
        "waiter",
        &[
            "wait",
            "--events",
            "--timeout=120s",
            "postgres://app:pg-e2e-S3CRET@127.0.0.1:1/app",
            "k8s:job/migrate",
        ],
    );
    cluster.apply(&ns.name, &pod.to_string());

    // While the init container is still running, describe says why.
    let mut described = String::new();
    crate::support::kube::wait_for("the Waiting events", Duration::from_secs(60), || {
        described = crate::pods::describe(&cluster, &ns.name, "api");
        described.contains("job/migrate in e2e-k8s-events: not found")
            && described.contains("postgres://app:***@127.0.0.1:1/app")
    });
    // The pod's own args carry the URL as written; the Events must not.
    let events_section = described.split("\nEvents:").nth(1).unwrap_or_default();
    assert!(events_section.contains("initbox"), "{described}");
    assert!(events_section.contains("Waiting"), "{described}");
    assert!(
        !events_section.contains("pg-e2e-S3CRET"),
        "the password leaked:\n{described}"
    );
    let status = crate::pods::status(&cluster, &ns.name, "api").unwrap();
    assert!(status.starts_with("Init:"), "{status}");

    // The Job completes; the state change and then the outcome appear, with the duration.
    cluster.apply(&ns.name, &job("migrate", "echo migrated", 0));
    crate::support::kube::wait_for("the Job's state change", Duration::from_secs(60), || {
        described = crate::pods::describe(&cluster, &ns.name, "api");
        described.contains("job/migrate in e2e-k8s-events: running")
    });
    let events = cluster.get_json(&ns.name, &["events", "--field-selector", "source=initbox"]);
    let text = events.to_string();
    assert!(!text.contains("pg-e2e-S3CRET"), "{text}");
    let messages: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|event| event["message"].as_str())
        .collect();
    assert!(
        messages
            .iter()
            .filter(|message| message.contains("postgres://"))
            .count()
            == 1,
        "one event per state change, not per attempt: {messages:?}"
    );

    // The outcome is an event too: Ready with the duration...
    cluster.apply(
        &ns.name,
        &events_pod("quick", "waiter", &["wait-k8s", "--events", "job/migrate"]).to_string(),
    );
    let outcome = |pod: &str, reason: &str| {
        let selector = format!("involvedObject.name={pod},reason={reason}");
        let events = cluster.get_json(&ns.name, &["events", "--field-selector", &selector]);
        events["items"].as_array().unwrap().first().cloned()
    };
    crate::support::kube::wait_for("the Ready event", Duration::from_secs(60), || {
        outcome("quick", "Ready").is_some()
    });
    let ready = outcome("quick", "Ready").unwrap();
    assert!(
        ready["message"].as_str().unwrap().starts_with("ready in "),
        "{ready}"
    );
    assert_eq!(ready["type"], "Normal");

    // ...or Failed, a Warning with the reason; a restarted container counts up the same events.
    cluster.apply(
        &ns.name,
        &events_pod(
            "doomed",
            "waiter",
            &[
                "wait",
                "--events",
                "--timeout=3s",
                "postgres://app:pg-e2e-S3CRET@127.0.0.1:1/app",
            ],
        )
        .to_string(),
    );
    crate::support::kube::wait_for(
        "a counted-up Waiting event",
        Duration::from_secs(90),
        || {
            let selector = "involvedObject.name=doomed,reason=Waiting";
            let events = cluster.get_json(&ns.name, &["events", "--field-selector", selector]);
            events["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|event| event["count"].as_u64() >= Some(2))
        },
    );
    let failed = outcome("doomed", "Failed").expect("a Failed event");
    let message = failed["message"].as_str().unwrap();
    assert!(message.contains("deadline of 3s exceeded"), "{message}");
    assert!(
        message.contains("postgres://app:***@127.0.0.1:1/app"),
        "{message}"
    );
    assert!(!message.contains("pg-e2e-S3CRET"), "{message}");
    assert_eq!(failed["type"], "Warning");
}
