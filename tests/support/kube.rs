//! The single-node Kubernetes (v1.20.2) that scripts/kube-up starts, for tests that need a real
//! API server and kubelet.
//!
//! kube-up writes `cluster.env` into its state directory ($INITBOX_KUBE_STATE, default
//! /var/lib/initbox-kube): KUBECONFIG, INITBOX_KUBE_NETNS and KUBECTL. The API server listens
//! on 127.0.0.1:6443 inside that network namespace only, so a test first moves its own thread
//! there ([`Cluster::enter`]); every process it starts afterwards (kubectl, PostgreSQL, OpenBao)
//! and every socket it opens is then in the namespace too, next to the pods that use
//! `hostNetwork`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Where kube-up keeps its state when INITBOX_KUBE_STATE is not set.
pub const DEFAULT_STATE: &str = "/var/lib/initbox-kube";

/// The initbox image as the manifests in deploy/ name it; tests/e2e/run loads the image built
/// by scripts/build-image under this name.
pub const INITBOX_IMAGE: &str = "ghcr.io/initbox/initbox:0.1.0";
/// A FROM scratch image of Debian's busybox-static (sh, nc, stat...), for app containers.
pub const BUSYBOX_IMAGE: &str = "localhost/busybox:e2e";

pub struct Cluster {
    pub kubeconfig: PathBuf,
    pub netns: String,
    pub kubectl: PathBuf,
    pub state: PathBuf,
}

impl Cluster {
    /// The running cluster, if kube-up has written its env file.
    pub fn find() -> Option<Cluster> {
        let state = std::env::var_os("INITBOX_KUBE_STATE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE));
        let env = std::fs::read_to_string(state.join("cluster.env")).ok()?;
        let vars: BTreeMap<&str, &str> = env
            .lines()
            .filter_map(|line| line.split_once('='))
            .collect();
        Some(Cluster {
            kubeconfig: PathBuf::from(vars.get("KUBECONFIG")?),
            netns: vars.get("INITBOX_KUBE_NETNS")?.to_string(),
            kubectl: PathBuf::from(vars.get("KUBECTL")?),
            state,
        })
    }

    /// The cluster for an end-to-end test, entered (see [`Cluster::enter`]). None, with the
    /// reason printed, unless tests/e2e/run started this test (INITBOX_E2E=1: the cluster is up
    /// and the images are loaded); with INITBOX_E2E=1 and no cluster, the test fails.
    pub fn for_e2e(test: &str) -> Option<Cluster> {
        if std::env::var_os("INITBOX_E2E").is_none() {
            eprintln!("skipping {test}: end-to-end test, run by tests/e2e/run (needs a cluster)");
            return None;
        }
        let cluster = Cluster::find()
            .expect("INITBOX_E2E is set but no cluster.env was found: run scripts/kube-up");
        cluster.enter();
        Some(cluster)
    }

    /// Moves the calling thread into the cluster's network namespace. Only this thread moves:
    /// a test's child processes inherit it, other tests' threads stay where they are.
    pub fn enter(&self) {
        use std::os::fd::AsFd;
        let path = format!("/run/netns/{}", self.netns);
        let file = std::fs::File::open(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .unwrap_or_else(|error| panic!("entering {path} (needs root): {error}"));
    }

    /// kubectl 1.20 (the server's version) with this cluster's admin credentials.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(&self.kubectl);
        command.env("KUBECONFIG", &self.kubeconfig);
        command.stdin(Stdio::null());
        command
    }

    /// Runs kubectl and returns its stdout; panics with its stderr when it fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let output = self.kubectl().args(args).output().expect("run kubectl");
        assert!(
            output.status.success(),
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `kubectl apply -f -` of a manifest (YAML or JSON), in a namespace.
    pub fn apply(&self, namespace: &str, manifest: &str) {
        let mut child = self
            .kubectl()
            .args(["apply", "-n", namespace, "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl apply");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(manifest.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "kubectl apply: {}\n{manifest}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A fresh namespace for one test, deleted (without waiting) when dropped.
    pub fn namespace(&self, name: &str) -> Namespace<'_> {
        let _ = self
            .kubectl()
            .args(["delete", "namespace", name, "--wait=true", "--timeout=60s"])
            .output();
        self.kubectl_ok(&["create", "namespace", name]);
        // The service account controller creates "default" a moment later; pods need it.
        wait_for(
            "the default service account",
            Duration::from_secs(30),
            || {
                self.kubectl()
                    .args(["get", "serviceaccount", "default", "-n", name])
                    .output()
                    .is_ok_and(|output| output.status.success())
            },
        );
        Namespace {
            cluster: self,
            name: name.to_string(),
        }
    }

    /// A `kubectl get -o json` object.
    pub fn get_json(&self, namespace: &str, what: &[&str]) -> Value {
        let mut args = vec!["get", "-n", namespace, "-o", "json"];
        args.extend_from_slice(what);
        serde_json::from_str(&self.kubectl_ok(&args)).expect("kubectl's JSON")
    }

    /// `ctr` against the cluster's containerd, in the namespace the kubelet uses.
    pub fn ctr(&self) -> Command {
        let mut command = Command::new("ctr");
        command
            .arg("--address")
            .arg(self.state.join("containerd.sock"))
            .args(["-n", "k8s.io"]);
        command
    }

    /// The OCI spec containerd ran a container with (`ctr containers info`): what the kubelet
    /// made of the pod's securityContext and resources.
    pub fn runtime_spec(&self, container_id: &str) -> Value {
        let output = self
            .ctr()
            .args(["containers", "info", container_id])
            .output()
            .expect("run ctr");
        assert!(
            output.status.success(),
            "ctr containers info {container_id}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let info: Value = serde_json::from_slice(&output.stdout).expect("ctr's JSON");
        info["Spec"].clone()
    }

    /// Starts recording containerd's events (`ctr events`): task starts and exits with their
    /// exit codes and times, as the runtime saw them.
    pub fn record_events(&self) -> Events {
        let mut child = self
            .ctr()
            .arg("events")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run ctr events");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        // ctr subscribes once it has connected; give it that moment.
        std::thread::sleep(Duration::from_millis(300));
        Events { child, lines }
    }

    /// containerd's own log (its CRI plugin logs every StopContainer and the signal it sent).
    pub fn containerd_log(&self) -> String {
        std::fs::read_to_string(self.state.join("logs/containerd.log")).unwrap_or_default()
    }
}

/// A namespace created for a test; deleted when the test ends, pass or fail.
pub struct Namespace<'a> {
    cluster: &'a Cluster,
    pub name: String,
}

impl Drop for Namespace<'_> {
    fn drop(&mut self) {
        let _ = self
            .cluster
            .kubectl()
            .args(["delete", "namespace", &self.name, "--wait=false"])
            .output();
    }
}

/// containerd's event stream, recorded while the test runs.
pub struct Events {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

/// One `/tasks/start` or `/tasks/exit` event of a container's main process.
#[derive(Debug, Clone)]
pub struct TaskEvent {
    /// Seconds since the epoch, with nanoseconds, as containerd stamped the event.
    pub at: f64,
    pub exit_status: Option<i64>,
}

impl Events {
    /// The `/tasks/start` and `/tasks/exit` events of a container, in order.
    pub fn of(&self, container_id: &str) -> Vec<(String, TaskEvent)> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|line| parse_event(line))
            .filter(|(_, id, _)| id == container_id)
            .map(|(topic, _, event)| (topic, event))
            .collect()
    }

    /// Waits until the container's exit event has arrived, and returns it.
    pub fn wait_exit(&self, container_id: &str, timeout: Duration) -> TaskEvent {
        let mut found = None;
        wait_for("the container's exit event", timeout, || {
            found = self
                .of(container_id)
                .into_iter()
                .find(|(topic, _)| topic == "/tasks/exit")
                .map(|(_, event)| event);
            found.is_some()
        });
        found.unwrap()
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `2026-11-29 22:30:00.123456789 +0000 UTC k8s.io /tasks/exit {"container_id":"…",…}`: the
/// topic, the container ID and the event. Exits of processes other than the container's main
/// one (an exec) carry another `id` and are left out.
fn parse_event(line: &str) -> Option<(String, String, TaskEvent)> {
    let mut fields = line.splitn(6, ' ');
    let (date, time) = (fields.next()?, fields.next()?);
    let (_zone, _utc, _namespace) = (fields.next()?, fields.next()?, fields.next()?);
    let (topic, body) = fields.next()?.split_once(' ')?;
    if topic != "/tasks/start" && topic != "/tasks/exit" {
        return None;
    }
    let body: Value = serde_json::from_str(body).ok()?;
    let container = body["container_id"].as_str()?.to_string();
    if topic == "/tasks/exit" && body["id"].as_str() != Some(container.as_str()) {
        return None;
    }
    let event = TaskEvent {
        at: epoch_seconds(date, time)?,
        exit_status: body["exit_status"].as_i64().or(
            // proto3 leaves a zero exit status out of the JSON.
            (topic == "/tasks/exit").then_some(0),
        ),
    };
    Some((topic.to_string(), container, event))
}

/// Seconds since the epoch of a `YYYY-MM-DD` date and a `HH:MM:SS[.fraction][Z|±HH:MM]` time
/// (UTC without a zone): an RFC 3339 stamp split at its T.
pub fn epoch_seconds(date: &str, time: &str) -> Option<f64> {
    let mut ymd = date.split('-').map(|part| part.parse::<i64>());
    let (year, month, day) = (ymd.next()?.ok()?, ymd.next()?.ok()?, ymd.next()?.ok()?);
    // A zone offset (+01:00, -05:00) or Z at the end.
    let (time, offset) = match time.find(['+', '-']) {
        Some(at) => {
            let sign = if time[at..].starts_with('-') { -1 } else { 1 };
            let (hours, minutes) = time[at + 1..].split_once(':')?;
            let seconds = hours.parse::<i64>().ok()? * 3600 + minutes.parse::<i64>().ok()? * 60;
            (&time[..at], sign * seconds)
        }
        None => (time.trim_end_matches('Z'), 0),
    };
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut parts = hms.split(':').map(|part| part.parse::<i64>());
    let (hour, minute, second) = (
        parts.next()?.ok()?,
        parts.next()?.ok()?,
        parts.next()?.ok()?,
    );
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let fraction: f64 = format!("0.{fraction}").parse().ok()?;
    Some((days * 86_400 + hour * 3600 + minute * 60 + second - offset) as f64 + fraction)
}

/// Seconds since the epoch of a Kubernetes timestamp (`2026-11-29T22:30:00Z`; whole seconds in
/// 1.20's API).
pub fn k8s_time(stamp: &Value) -> Option<f64> {
    let (date, time) = stamp.as_str()?.split_once('T')?;
    epoch_seconds(date, time)
}

/// Polls `condition` every 200 ms until it holds; panics after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The manifest files of deploy/ and the repository root, for tests that apply them.
pub fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_read_as_utc() {
        assert_eq!(epoch_seconds("1970-01-01", "00:00:00"), Some(0.0));
        assert_eq!(epoch_seconds("1970-01-01", "01:00:01.5+01:00"), Some(1.5));
        assert_eq!(
            k8s_time(&Value::from("2026-11-29T22:30:05Z")),
            Some(1_795_991_405.0)
        );
        let event = parse_event(
            r#"2026-11-29 22:30:05.25 +0000 UTC k8s.io /tasks/exit {"container_id":"abc","id":"abc","pid":7,"exit_status":143,"exited_at":"2026-11-29T22:30:05.2Z"}"#,
        )
        .unwrap();
        assert_eq!(event.0, "/tasks/exit");
        assert_eq!(event.1, "abc");
        assert_eq!(event.2.exit_status, Some(143));
        assert!((event.2.at - 1_795_991_405.25).abs() < 1e-6);
    }
}
