//! `--events`: each change of state of a run posted as a Kubernetes Event on the pod itself, so
//! `kubectl describe pod` says why an init container is still running. Posting happens on a
//! task of its own behind a bounded queue, so the wait is never blocked or slowed: when the
//! queue is full a change is dropped, and a failure to post is logged once. A change seen before
//! (same reason and text, from a restarted container too) counts up its Event, as the kubelet does.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::probe::k8s::client::{ApiError, Client};
use crate::probe::k8s::config::Config;
use crate::runtime::exit;
use crate::runtime::logging::{self, Level};
use crate::runtime::report::{Change, Observer};
use crate::runtime::timestamp::{Precision, rfc3339};

/// Changes waiting to be posted; more are dropped rather than slow the wait.
const QUEUE: usize = 64;
/// How long one post may take.
const POST_TIMEOUT: Duration = Duration::from_secs(3);

/// The pod the Events are about, from the downward API.
pub struct Pod {
    pub name: String,
    pub namespace: String,
    /// `kubectl describe pod` finds Events by the pod's UID too; read from POD_UID, or asked
    /// from the API server (get on pods) when that is not set.
    pub uid: Option<String>,
}

impl Pod {
    /// POD_NAME and POD_NAMESPACE (and POD_UID when set), as the downward API gives them.
    pub fn from_env() -> anyhow::Result<Pod> {
        let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        match (var("POD_NAME"), var("POD_NAMESPACE")) {
            (Some(name), Some(namespace)) => Ok(Pod {
                name,
                namespace,
                uid: var("POD_UID"),
            }),
            _ => Err(exit::usage(
                "--events needs POD_NAME and POD_NAMESPACE (the downward API's metadata.name and \
                 metadata.namespace) to know which pod to post on",
            )),
        }
    }
}

/// The posting task and the queue to it.
pub struct Poster {
    queue: mpsc::Sender<Change>,
    task: tokio::task::JoinHandle<()>,
    dropped: Arc<AtomicBool>,
}

impl Poster {
    /// Reads the pod and the API configuration, and starts posting (on the current runtime).
    pub fn start() -> anyhow::Result<Poster> {
        let pod = Pod::from_env()?;
        let client = Client::new(Config::load()?)?;
        let (queue, changes) = mpsc::channel(QUEUE);
        let task = tokio::spawn(post_all(client, pod, changes));
        Ok(Poster {
            queue,
            task,
            dropped: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The observer for the run's report: queues a change without ever waiting.
    pub fn observer(&self) -> Observer {
        let queue = self.queue.clone();
        let dropped = self.dropped.clone();
        Box::new(move |change| {
            if queue.try_send(change).is_err() && !dropped.swap(true, Ordering::Relaxed) {
                logging::emit(
                    Level::Warn,
                    "events: too many changes at once; some are not posted",
                    &[("event", "events_dropped".into())],
                );
            }
        })
    }

    /// Lets the queued changes (the final one included) be posted, for at most `limit`.
    pub async fn finish(self, limit: Duration) {
        drop(self.queue);
        let _ = tokio::time::timeout(limit, self.task).await;
    }
}

async fn post_all(client: Client, mut pod: Pod, mut changes: mpsc::Receiver<Change>) {
    let whose = format!("{}/{}", pod.namespace, pod.name);
    let mut warned = false;
    let mut warn_once = |error: String| {
        if !std::mem::replace(&mut warned, true) {
            logging::emit(
                Level::Warn,
                &format!(
                    "events: cannot post on pod {whose}: {error} (waiting goes on; not repeated)"
                ),
                &[("event", "events_failed".into())],
            );
        }
    };
    if pod.uid.is_none() {
        let path = format!("/api/v1/namespaces/{}/pods/{}", pod.namespace, pod.name);
        match client.get(&path, POST_TIMEOUT).await {
            Ok(found) => pod.uid = found["metadata"]["uid"].as_str().map(str::to_string),
            Err(error) => warn_once(format!("reading the pod's UID: {error}")),
        }
    }
    let collection = format!("/api/v1/namespaces/{}/events", pod.namespace);
    let mut counts: HashMap<String, u64> = HashMap::new();
    while let Some(change) = changes.recv().await {
        let now = rfc3339(SystemTime::now(), Precision::Seconds);
        let name = event_name(&pod, &change);
        let path = format!("{collection}/{name}");
        let result = match counts.get(&name).copied() {
            None => {
                let event = event(&pod, &name, &change, &now);
                match client
                    .write(Method::POST, &collection, &event, POST_TIMEOUT)
                    .await
                {
                    Ok(_) => Ok(1),
                    // Posted by an earlier run of this container (a restart): count on.
                    Err(error) if error.code() == Some(409) => {
                        match client.get(&path, POST_TIMEOUT).await {
                            Ok(found) => count_up(&client, &path, &found["count"], &now).await,
                            Err(error) => Err(error),
                        }
                    }
                    Err(error) => Err(error),
                }
            }
            Some(count) => count_up(&client, &path, &json!(count), &now).await,
        };
        match result {
            Ok(count) => {
                counts.insert(name, count);
            }
            Err(error) => warn_once(error.to_string()),
        }
    }
}

/// Increments an Event's count (the kubelet's way of saying "this again").
async fn count_up(client: &Client, path: &str, count: &Value, now: &str) -> Result<u64, ApiError> {
    let count = count.as_u64().unwrap_or(1) + 1;
    let patch = json!({"count": count, "lastTimestamp": now});
    client
        .write(Method::PATCH, path, &patch, POST_TIMEOUT)
        .await
        .map(|_| count)
}

/// One name per pod and change: the same change, from this run or a restarted one, is the same
/// Event, counted up.
fn event_name(pod: &Pod, change: &Change) -> String {
    let mut hash = Sha256::new();
    for part in [
        pod.uid.as_deref().unwrap_or_default(),
        change.reason,
        &change.message,
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let digest = hash.finalize();
    let suffix: String = digest[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("{}.initbox.{suffix}", pod.name)
}

/// A core/v1 Event about the pod, from initbox. The message is the log line's, redacted at its
/// source (runtime/redact.rs) exactly as the log shows it.
fn event(pod: &Pod, name: &str, change: &Change, now: &str) -> Value {
    let kind = if change.reason == "Failed" {
        "Warning"
    } else {
        "Normal"
    };
    // The API server refuses messages over 1 KiB; the termination message keeps the whole line.
    let message: String = change.message.chars().take(1024).collect();
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": pod.namespace},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": pod.name,
                           "namespace": pod.namespace, "uid": pod.uid.clone().unwrap_or_default()},
        "reason": change.reason, "message": message, "type": kind,
        "source": {"component": "initbox"},
        "reportingComponent": "initbox", "reportingInstance": pod.name,
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_change_on_the_same_pod_is_the_same_event() {
        let pod = |uid: &str| Pod {
            name: "api-1".into(),
            namespace: "shop".into(),
            uid: Some(uid.into()),
        };
        let waiting = |message: &str| Change {
            reason: "Waiting",
            message: message.into(),
        };
        let first = event_name(&pod("u-1"), &waiting("db: refused"));
        assert_eq!(first, event_name(&pod("u-1"), &waiting("db: refused")));
        assert!(first.starts_with("api-1.initbox."), "{first}");
        assert_ne!(first, event_name(&pod("u-1"), &waiting("db: timed out")));
        assert_ne!(first, event_name(&pod("u-2"), &waiting("db: refused")));
    }

    #[test]
    fn events_carry_the_pod_and_the_log_lines_text() {
        let pod = Pod {
            name: "api-1".into(),
            namespace: "shop".into(),
            uid: Some("u-1".into()),
        };
        let change = Change {
            reason: "Failed",
            message: "postgres://app:***@db/app: refused".into(),
        };
        let event = event(&pod, "api-1.1", &change, "2026-11-29T22:30:05Z");
        assert_eq!(event["involvedObject"]["uid"], "u-1");
        assert_eq!(event["type"], "Warning");
        assert_eq!(event["source"]["component"], "initbox");
        assert_eq!(event["message"], "postgres://app:***@db/app: refused");
    }
}
