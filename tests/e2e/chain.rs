//! The whole chain of deploy/deployment.yaml in real pods: wait-pg, migrate (three replicas at
//! once), fetch-vault with Kubernetes auth (a projected service-account token checked by this
//! API server's TokenReview), render-config and fix-perms, then the app. Then migrate as the Job
//! of deploy/migrate-job/. The manifests are applied as they are, changed only where one node
//! without DNS needs it (below, in `deployment`).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::pods::{self, describe_field};
use crate::support::kube::{BUSYBOX_IMAGE, Cluster, k8s_time, repo_file};
use crate::support::openbao::OpenBao;
use crate::support::postgres::Postgres;
use crate::vault;

const NS: &str = "e2e-chain";
const OWNER_PASSWORD: &str = "owner-PW-e2e";
const DB_USER: &str = "orders_app";
const DB_PASSWORD: &str = "db-PW-from-vault";
const API_KEY: &str = "pay-KEY-from-vault";
/// The init containers of deploy/deployment.yaml, in their order.
const INIT_CONTAINERS: [&str; 5] = [
    "wait-pg",
    "migrate",
    "fetch-vault",
    "render-config",
    "fix-perms",
];

/// The app container: reports what it finds, as the orders service would depend on it, then
/// sleeps. Runs as uid 10001 with a read-only root filesystem and no capabilities.
const APP: &str = r#"
echo "orders: started as $(id)"
for dir in /vault /config; do echo "orders: $dir is $(awk -v d=$dir '$2 == d {print $3}' /proc/mounts)"; done
stat -c 'orders: %n mode %a owner %u:%g' /vault/DB_USER /vault/DB_PASSWORD /vault/PAYMENTS_API_KEY /config/app.yaml
grep -qF "password: \"$(cat /vault/DB_PASSWORD)\"" /config/app.yaml && echo "orders: the config holds the database password from Vault"
grep -qF "api_key: \"$(cat /vault/PAYMENTS_API_KEY)\"" /config/app.yaml && echo "orders: the config holds the API key from Vault"
sed -n 's/^ *\(host\|name\|user\): /orders: config database \1: /p' /config/app.yaml
stat -c 'orders: %n owner %u:%g' /data /data/invoices /data/invoices/2025-12.csv
echo "new" > "$(mktemp /data/invoices/invoice.XXXXXX)" && echo "orders: wrote a new file into /data/invoices"
echo "more" >> /data/invoices/2025-12.csv && echo "orders: appended to /data/invoices/2025-12.csv"
touch /probe 2>/dev/null || echo "orders: the root filesystem is read-only"
echo "orders: $(grep CapEff /proc/self/status | tr -s '\t' ' ')"
# PID 1 ignores SIGTERM unless it handles it: without the trap, every deletion takes the 30 s
# grace period.
trap 'exit 0' TERM
sleep 3600 & wait
"#;

/// The Deployment of deploy/ as a JSON patch, each change with its reason. A `test` op first
/// checks that the patched field is the one meant, so a reordered manifest fails loudly.
fn deployment(vault_addr: &str) -> String {
    let spec = "/spec/template/spec";
    let patch = json!([
        // The servers (PostgreSQL, OpenBao) and the API server listen on the loopback of the
        // node's network namespace; there is no cluster DNS and no Service routing here.
        {"op": "add", "path": format!("{spec}/hostNetwork"), "value": true},
        {"op": "test", "path": format!("{spec}/initContainers/2/env/0/name"), "value": "VAULT_ADDR"},
        {"op": "replace", "path": format!("{spec}/initContainers/2/env/0/value"), "value": vault_addr},
        // The app: a busybox script that reports what it sees, instead of an image from a
        // registry that cannot be reached here. Its port and readiness probe go: three
        // host-network replicas on one node cannot all bind 8080.
        {"op": "test", "path": format!("{spec}/containers/0/name"), "value": "orders"},
        {"op": "replace", "path": format!("{spec}/containers/0/image"), "value": BUSYBOX_IMAGE},
        {"op": "add", "path": format!("{spec}/containers/0/imagePullPolicy"), "value": "Never"},
        {"op": "add", "path": format!("{spec}/containers/0/command"), "value": ["sh", "-c", APP]},
        {"op": "remove", "path": format!("{spec}/containers/0/args")},
        {"op": "remove", "path": format!("{spec}/containers/0/ports")},
        {"op": "remove", "path": format!("{spec}/containers/0/readinessProbe")},
    ]);
    patched("deploy/deployment.yaml", &patch)
}

/// A manifest file with a JSON patch applied by kubectl itself (`kubectl patch --local`).
fn patched(file: &str, patch: &Value) -> String {
    let cluster = Cluster::find().unwrap();
    let path = repo_file(file);
    cluster.kubectl_ok(&[
        "patch",
        "--local",
        "-f",
        path.to_str().unwrap(),
        "--type=json",
        "-p",
        &patch.to_string(),
        "-o",
        "json",
    ])
}

/// The migrations of deploy/ plus `extra` files.
fn migrations(extra: &[(&str, &str)]) -> String {
    let patch: Vec<Value> = extra
        .iter()
        .map(|(name, sql)| json!({"op": "add", "path": format!("/data/{name}"), "value": sql}))
        .collect();
    patched("deploy/configmap-migrations.yaml", &Value::from(patch))
}

/// A root-owned directory for the data volume, as a volume provisioned by someone else comes:
/// the app (10001) cannot write to it until fix-perms has run.
fn data_volume(base: &Path) -> std::path::PathBuf {
    let data = base.join("data");
    std::fs::create_dir_all(data.join("invoices")).unwrap();
    std::fs::write(data.join("invoices/2025-12.csv"), "id,total\n").unwrap();
    for dir in [base, &data, &data.join("invoices")] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    data
}

#[test]
fn the_deployment_chain_starts_three_replicas_then_the_job_migrates() {
    let Some(cluster) = Cluster::for_e2e("the_deployment_chain") else {
        return;
    };
    let ns = cluster.namespace(NS);
    let kubectl = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["-n", NS]);
        cluster.kubectl_ok(&all)
    };

    // PostgreSQL on the node's loopback, port 5432 (the Secret names only the host), with the
    // role and database of deploy/secret-orders-db.yaml.
    let pg = Postgres::start_on(5432);
    pg.psql(
        "postgres",
        &format!(
            "CREATE ROLE orders_owner LOGIN PASSWORD '{OWNER_PASSWORD}';
CREATE DATABASE orders OWNER orders_owner;"
        ),
    );

    // OpenBao with TLS, the app's secrets, and Kubernetes auth against this API server: a
    // reviewer service account allowed to create TokenReviews, and the role `orders` for the
    // `orders` service account's tokens with audience `vault` (the projected token's).
    let bao = OpenBao::start_tls();
    bao.cli(&[
        "kv",
        "put",
        "secret/orders/db",
        &format!("username={DB_USER}"),
        &format!("password={DB_PASSWORD}"),
    ]);
    bao.cli(&[
        "kv",
        "put",
        "secret/orders/payments",
        &format!("api_key={API_KEY}"),
    ]);
    bao.policy(
        "orders",
        r#"path "secret/data/orders/*" { capabilities = ["read"] }"#,
    );
    vault::trust_this_cluster(&cluster, &bao, NS);
    bao.kubernetes_role("orders", "orders", NS, "vault", "orders");

    // deploy/ as it is: the service account, the config templates, the migrations (plus one
    // that takes 3 s, so that the three replicas' runs overlap visibly), the claim.
    for file in [
        "deploy/serviceaccount.yaml",
        "deploy/configmap-config-templates.yaml",
        "deploy/pvc-orders-data.yaml",
    ] {
        kubectl(&["apply", "-f", repo_file(file).to_str().unwrap()]);
    }
    cluster.apply(
        NS,
        &migrations(&[("003_e2e_backfill.sql", "SELECT pg_sleep(3);\n")]),
    );
    // The Secret and the two CA ConfigMaps, created the way their files in deploy/ say to.
    kubectl(&[
        "create",
        "secret",
        "generic",
        "orders-db",
        "--from-literal=PGHOST=127.0.0.1",
        "--from-literal=PGUSER=orders_owner",
        "--from-literal=PGDATABASE=orders",
        "--from-literal=PGSSLMODE=verify-full",
        &format!("--from-literal=password={OWNER_PASSWORD}"),
    ]);
    let pg_ca = format!("--from-file=ca.crt={}", pg.ca_cert.display());
    kubectl(&["create", "configmap", "orders-db-ca", &pg_ca]);
    let vault_ca = format!(
        "--from-file=ca.crt={}",
        bao.ca_cert.as_ref().unwrap().display()
    );
    kubectl(&["create", "configmap", "vault-ca", &vault_ca]);
    // The claim's volume: a directory on the node, bound to it in advance.
    let volume = tempfile::tempdir().unwrap();
    let data = data_volume(volume.path());
    let persistent_volume = format!("e2e-orders-data-{}", std::process::id());
    cluster.apply(
        NS,
        &json!({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": persistent_volume},
            "spec": {
                "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany"],
                "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                "claimRef": {"namespace": NS, "name": "orders-data"},
                "hostPath": {"path": data, "type": "Directory"}
            }
        })
        .to_string(),
    );
    let _remove_volume = RemoveOnDrop(&cluster, persistent_volume);

    cluster.apply(NS, &deployment(&format!("https://127.0.0.1:{}", bao.port)));
    let replicas = wait_for_replicas(&cluster, 3);

    // Every init container ran once, in order, and succeeded before the app started.
    let mut migrate_logs = Vec::new();
    for pod in &replicas {
        let status = cluster.get_json(NS, &["pod", pod]);
        let app_started =
            k8s_time(&pods::container_status(&status, "orders")["state"]["running"]["startedAt"])
                .expect("the app's start time");
        let mut previous_finished = 0.0;
        for name in INIT_CONTAINERS {
            let init = pods::container_status(&status, name);
            let terminated = &init["state"]["terminated"];
            assert_eq!(terminated["exitCode"], 0, "{pod} {name}: {init}");
            assert_eq!(terminated["reason"], "Completed", "{pod} {name}: {init}");
            assert_eq!(init["restartCount"], 0, "{pod} {name} restarted: {init}");
            let started = k8s_time(&terminated["startedAt"]).unwrap();
            let finished = k8s_time(&terminated["finishedAt"]).unwrap();
            assert!(
                started >= previous_finished && finished <= app_started,
                "{pod} {name}: {init}"
            );
            previous_finished = finished;
        }
        let describe = pods::describe(&cluster, NS, pod);
        let init_section = describe.split_once("Init Containers:").unwrap().1;
        let init_section = init_section.split_once("\nContainers:").unwrap().0;
        let count = |field: &str, value: &str| {
            init_section
                .lines()
                .filter(|line| describe_field(line, field) == Some(value))
                .count()
        };
        assert_eq!(count("Reason", "Completed"), 5, "{describe}");
        assert_eq!(count("Exit Code", "0"), 5, "{describe}");
        assert!(!describe.contains("OOMKilled"), "{describe}");
        migrate_logs.push(pods::logs(&cluster, NS, pod, "migrate"));
        check_no_secret_in_logs(&cluster, pod);
    }

    // Three replicas ran migrate at the same time: one applied the files, the other two waited
    // for its lock and then found nothing left to do.
    let applied: Vec<&String> = migrate_logs
        .iter()
        .filter(|log| log.contains("applied 3 migrations"))
        .collect();
    assert_eq!(applied.len(), 1, "{migrate_logs:#?}");
    let up_to_date = migrate_logs
        .iter()
        .filter(|log| log.contains("up to date: 3 migrations applied, none pending"))
        .count();
    assert_eq!(up_to_date, 2, "{migrate_logs:#?}");
    assert!(
        migrate_logs
            .iter()
            .any(|log| log.contains("held by initbox-migrate@orders-")),
        "no replica waited for another's lock: {migrate_logs:#?}"
    );
    assert_eq!(ledger(&pg), "1,2,3");

    // What the app saw, in its own log.
    let app = pods::logs(&cluster, NS, &replicas[0], "orders");
    for line in [
        "orders: started as uid=10001 gid=10001 groups=10001",
        "orders: /vault is tmpfs",
        "orders: /config is tmpfs",
        "orders: /vault/DB_USER mode 440 owner 65532:10001",
        "orders: /vault/DB_PASSWORD mode 440 owner 65532:10001",
        "orders: /vault/PAYMENTS_API_KEY mode 440 owner 65532:10001",
        "orders: /config/app.yaml mode 440 owner 65532:10001",
        "orders: the config holds the database password from Vault",
        "orders: the config holds the API key from Vault",
        "orders: config database host: 127.0.0.1",
        "orders: config database name: orders",
        &format!("orders: config database user: {DB_USER}"),
        "orders: /data owner 10001:10001",
        "orders: /data/invoices owner 10001:10001",
        "orders: /data/invoices/2025-12.csv owner 10001:10001",
        "orders: wrote a new file into /data/invoices",
        "orders: appended to /data/invoices/2025-12.csv",
        "orders: the root filesystem is read-only",
        "orders: CapEff: 0000000000000000",
    ] {
        assert!(
            app.lines().any(|l| l == line),
            "no line {line:?} in the app's log:\n{app}"
        );
    }
    // On the node: the volume's files now belong to the app's user.
    let csv = std::fs::metadata(data.join("invoices/2025-12.csv")).unwrap();
    assert_eq!((csv.uid(), csv.gid()), (10001, 10001));

    let fetch_log = pods::logs(&cluster, NS, &replicas[0], "fetch-vault");
    assert!(fetch_log.contains("done in"), "{fetch_log}");

    check_runtime_constraints(&cluster, &replicas[0]);
    migrate_job(&cluster, &pg);
    drop(ns);
}

/// What containerd was told to run each container with: the pod's constraints, applied.
fn check_runtime_constraints(cluster: &Cluster, pod: &str) {
    let status = cluster.get_json(NS, &["pod", pod]);
    for name in INIT_CONTAINERS {
        let spec = cluster.runtime_spec(&pods::container_id(&status, name));
        let process = &spec["process"];
        assert_eq!(spec["root"]["readonly"], true, "{name}: read-only root");
        assert_eq!(process["noNewPrivileges"], true, "{name}");
        assert_eq!(
            spec["linux"]["resources"]["memory"]["limit"],
            32 * 1024 * 1024,
            "{name}: 32Mi limit"
        );
        let (uid, capabilities) = if name == "fix-perms" {
            (0, json!(["CAP_CHOWN", "CAP_DAC_READ_SEARCH", "CAP_FOWNER"]))
        } else {
            (65532, json!([]))
        };
        assert_eq!(process["user"]["uid"], uid, "{name}");
        let mut effective: Vec<String> = process["capabilities"]["effective"]
            .as_array()
            .map(|caps| {
                caps.iter()
                    .map(|c| c.as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        effective.sort();
        assert_eq!(json!(effective), capabilities, "{name}: capabilities");
        assert!(
            process["user"]["additionalGids"]
                .as_array()
                .is_some_and(|gids| gids.contains(&json!(10001))),
            "{name}: in the app's group"
        );
    }
}

/// deploy/migrate-job/ applies a new migration once, in a Job. `podFailurePolicy` (Kubernetes
/// 1.25) is left out: 1.20's kubectl rejects the field. On the host network, as the Deployment.
fn migrate_job(cluster: &Cluster, pg: &Postgres) {
    cluster.apply(
        NS,
        &migrations(&[
            ("003_e2e_backfill.sql", "SELECT pg_sleep(3);\n"),
            (
                "004_e2e_invoices.sql",
                "CREATE TABLE invoices (id bigserial PRIMARY KEY, order_id bigint NOT NULL);\n",
            ),
        ]),
    );
    let job = patched(
        "deploy/migrate-job/job.yaml",
        &json!([
            {"op": "remove", "path": "/spec/podFailurePolicy"},
            // PostgreSQL is on the node's loopback, as for the Deployment.
            {"op": "add", "path": "/spec/template/spec/hostNetwork", "value": true},
        ]),
    );
    cluster.apply(NS, &job);
    cluster.kubectl_ok(&[
        "wait",
        "--for=condition=complete",
        "job/orders-migrate-1-4-2",
        "-n",
        NS,
        "--timeout=120s",
    ]);
    let log = cluster.kubectl_ok(&[
        "logs",
        "job/orders-migrate-1-4-2",
        "-n",
        NS,
        "-c",
        "migrate",
    ]);
    assert!(log.contains("applied 004_e2e_invoices.sql"), "{log}");
    assert!(log.contains("applied 1 migrations"), "{log}");
    assert_eq!(ledger(pg), "1,2,3,4");
    let job_pod = pods::names(cluster, NS, "job-name=orders-migrate-1-4-2");
    let status = cluster.get_json(NS, &["pod", &job_pod[0]]);
    let migrate = pods::container_status(&status, "migrate");
    assert_eq!(migrate["state"]["terminated"]["exitCode"], 0, "{migrate}");
    let describe = pods::describe(cluster, NS, &job_pod[0]);
    assert_eq!(describe_field(&describe, "Status"), Some("Succeeded"));
}

/// The versions in the ledger: "1,2,3".
fn ledger(pg: &Postgres) -> String {
    pg.psql(
        "orders",
        "SELECT string_agg(version::text, ',' ORDER BY version) FROM initbox_migrations",
    )
    .trim()
    .to_string()
}

/// Waits until the Deployment's pods (exactly `count`) are all Running; returns their names.
fn wait_for_replicas(cluster: &Cluster, count: usize) -> Vec<String> {
    let mut names = Vec::new();
    crate::support::kube::wait_for("the replicas to run", Duration::from_secs(180), || {
        names = pods::names(cluster, NS, "app.kubernetes.io/name=orders");
        names.len() == count
    });
    for pod in &names {
        pods::wait_running(cluster, NS, pod, Duration::from_secs(180));
    }
    names
}

/// No secret value and no token in any container's log.
fn check_no_secret_in_logs(cluster: &Cluster, pod: &str) {
    for container in INIT_CONTAINERS.into_iter().chain(["orders"]) {
        let log = pods::logs(cluster, NS, pod, container);
        for secret in [OWNER_PASSWORD, DB_PASSWORD, API_KEY, "eyJ"] {
            assert!(
                !log.contains(secret),
                "{secret} in {pod}/{container}'s log:\n{log}"
            );
        }
    }
}

/// A cluster-wide object the test created, deleted when it ends.
struct RemoveOnDrop<'a>(&'a Cluster, String);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .kubectl()
            .args(["delete", "persistentvolume", &self.1, "--wait=false"])
            .output();
    }
}
