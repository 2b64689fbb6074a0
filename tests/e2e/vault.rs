//! fetch-vault's Kubernetes auth against OpenBao that asks this cluster's API server
//! (TokenReview) whether a pod's projected service-account token is valid, and for whom.

use std::time::Duration;

use serde_json::json;

use crate::pods::{self, describe_field, restricted};
use crate::support::kube::{Cluster, INITBOX_IMAGE, wait_for};
use crate::support::openbao::OpenBao;

/// Enables Kubernetes auth in `bao` against this cluster: a `vault-reviewer` service account in
/// `namespace`, allowed to create TokenReviews (system:auth-delegator), whose token OpenBao
/// presents; the cluster's CA to check the API server's certificate.
pub fn trust_this_cluster(cluster: &Cluster, bao: &OpenBao, namespace: &str) {
    cluster.kubectl_ok(&[
        "create",
        "serviceaccount",
        "vault-reviewer",
        "-n",
        namespace,
    ]);
    let binding = format!("{namespace}-vault-reviewer");
    let _ = cluster
        .kubectl()
        .args(["delete", "clusterrolebinding", &binding])
        .output();
    cluster.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        &binding,
        "--clusterrole=system:auth-delegator",
        &format!("--serviceaccount={namespace}:vault-reviewer"),
    ]);
    let reviewer_jwt = service_account_token(cluster, namespace, "vault-reviewer");
    bao.kubernetes_auth(
        "https://127.0.0.1:6443",
        &cluster.state.join("pki/ca.crt"),
        &reviewer_jwt,
    );
}

/// The token in a service account's (legacy, controller-made) token Secret.
fn service_account_token(cluster: &Cluster, namespace: &str, account: &str) -> String {
    let mut secret = String::new();
    wait_for(
        "the service account's token",
        Duration::from_secs(30),
        || {
            secret = cluster.kubectl_ok(&[
                "get",
                "serviceaccount",
                account,
                "-n",
                namespace,
                "-o",
                "jsonpath={.secrets[0].name}",
            ]);
            !secret.is_empty()
        },
    );
    cluster.kubectl_ok(&[
        "get",
        "secret",
        &secret,
        "-n",
        namespace,
        "-o",
        "go-template={{.data.token | base64decode}}",
    ])
}

/// A pod whose fetch-vault logs in with a projected token of `audience`, at -v.
fn fetch_pod(name: &str, audience: &str, vault_addr: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {
            "hostNetwork": true, "serviceAccountName": "app", "restartPolicy": "Never",
            "initContainers": [{
                "name": "fetch-vault", "image": INITBOX_IMAGE, "imagePullPolicy": "Never",
                "args": ["-v", "fetch-vault", "--auth=kubernetes", "--role=app",
                         "--jwt-file=/var/run/secrets/vault/token",
                         "--secret=secret/app/db#password=/vault/DB_PASSWORD"],
                "env": [{"name": "VAULT_ADDR", "value": vault_addr},
                        {"name": "VAULT_CACERT", "value": "/etc/vault-ca/ca.crt"}],
                "volumeMounts": [{"name": "vault", "mountPath": "/vault"},
                                 {"name": "token", "mountPath": "/var/run/secrets/vault"},
                                 {"name": "vault-ca", "mountPath": "/etc/vault-ca"}],
                "securityContext": restricted(),
                "terminationMessagePolicy": "FallbackToLogsOnError"
            }],
            "containers": [{"name": "app", "image": INITBOX_IMAGE, "imagePullPolicy": "Never",
                            "args": ["--version"], "securityContext": restricted()}],
            "volumes": [
                {"name": "vault", "emptyDir": {"medium": "Memory"}},
                {"name": "vault-ca", "configMap": {"name": "vault-ca"}},
                {"name": "token", "projected": {"sources": [{"serviceAccountToken": {
                    "path": "token", "audience": audience, "expirationSeconds": 600}}]}}
            ]
        }
    })
}

#[test]
fn a_token_for_the_vault_audience_logs_in_and_another_is_refused() {
    let Some(cluster) = Cluster::for_e2e("a_token_for_the_vault_audience_logs_in") else {
        return;
    };
    let ns = cluster.namespace("e2e-vault");
    let bao = OpenBao::start_tls();
    bao.cli(&["kv", "put", "secret/app/db", "password=audience-PW"]);
    bao.policy(
        "app",
        r#"path "secret/data/app/*" { capabilities = ["read"] }"#,
    );
    trust_this_cluster(&cluster, &bao, &ns.name);
    bao.kubernetes_role("app", "app", &ns.name, "vault", "app");
    cluster.kubectl_ok(&["create", "serviceaccount", "app", "-n", &ns.name]);
    let ca = format!(
        "--from-file=ca.crt={}",
        bao.ca_cert.as_ref().unwrap().display()
    );
    cluster.kubectl_ok(&["create", "configmap", "vault-ca", "-n", &ns.name, &ca]);
    let addr = format!("https://127.0.0.1:{}", bao.port);
    cluster.apply(&ns.name, &fetch_pod("right", "vault", &addr).to_string());
    cluster.apply(
        &ns.name,
        &fetch_pod("wrong", "not-vault", &addr).to_string(),
    );

    // The token for audience "vault" logs in (OpenBao asked this API server's TokenReview) and
    // reads the secret; the other one is turned away, and fetch-vault fails at once with
    // OpenBao's words, said once.
    for (pod, phase) in [("right", "Succeeded"), ("wrong", "Failed")] {
        wait_for(
            &format!("pod {pod} to end"),
            Duration::from_secs(90),
            || {
                let status = cluster.get_json(&ns.name, &["pod", pod]);
                status["status"]["phase"] == phase
            },
        );
    }
    let right = pods::logs(&cluster, &ns.name, "right", "fetch-vault");
    assert!(right.contains("done in"), "{right}");
    let describe = pods::describe(&cluster, &ns.name, "wrong");
    let message = describe_field(&describe, "Message").unwrap_or_default();
    assert_eq!(
        message,
        "kubernetes login at auth/kubernetes: POST auth/kubernetes/login: HTTP 403: \
         invalid audience (aud) claim: audience claim does not match any expected audience",
        "{describe}"
    );
    assert_eq!(
        describe_field(&describe, "Exit Code"),
        Some("1"),
        "{describe}"
    );
    let wrong = pods::logs(&cluster, &ns.name, "wrong", "fetch-vault");
    for log in [&right, &wrong] {
        assert!(!log.contains("eyJ"), "a token in the log:\n{log}");
        assert!(
            !log.contains("audience-PW"),
            "the secret in the log:\n{log}"
        );
    }
}
