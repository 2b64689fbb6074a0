//! The wait itself: list the objects a target depends on, judge them, then watch for changes
//! from that list's resourceVersion and judge again after every event, so a change is seen as
//! soon as the API server sends it. A watch that expires (410 Gone) is re-listed at once; a
//! broken connection is reopened after the shared backoff (runtime/retry.rs).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::probe::k8s::client::{ApiError, Client};
use crate::probe::k8s::judge::{self, State};
use crate::probe::k8s::target::{Goal, Target};
use crate::runtime::ctx::Ctx;
use crate::runtime::logging::{self, Level};
use crate::runtime::retry::{self, Backoff};
use crate::runtime::signal;

/// How long the server keeps one watch open; it then ends it and the watch is reopened.
const WATCH_SECONDS: u64 = 240;
/// A watch that sent nothing for this long is taken for a dead connection.
const WATCH_SILENCE: Duration = Duration::from_secs(WATCH_SECONDS + 30);

/// Why a session (a list and the watches after it) ended without the goal.
enum Stop {
    /// Final: waiting cannot help.
    Failed(String),
    /// The watch's resourceVersion is too old (410 Gone): list again, at once.
    Relist,
    Api(ApiError),
}

impl From<ApiError> for Stop {
    fn from(error: ApiError) -> Stop {
        Stop::Api(error)
    }
}

/// Waits until `target` reaches its goal, under the run's deadline and signals. A 403 ends the
/// wait (exit 1) unless `retry_forbidden`.
pub async fn until_reached(
    ctx: &Ctx,
    client: &Client,
    target: &Target,
    shown: &str,
    retry_forbidden: bool,
) -> anyhow::Result<()> {
    let started = Instant::now();
    ctx.report.register(shown);
    let mut watcher = Watcher {
        ctx,
        client,
        target,
        shown,
        last: None,
    };
    let work = async {
        let mut backoff = Backoff::new(ctx.policy);
        loop {
            let error = match watcher.session(&mut backoff).await {
                Ok(()) => return Ok(()),
                Err(Stop::Failed(message)) => return Err(anyhow::anyhow!(message)),
                Err(Stop::Relist) => {
                    logging::emit(
                        Level::Debug,
                        &format!("{shown}: watch expired (410 Gone); listing again"),
                        &[("event", "relist".into()), ("target", shown.into())],
                    );
                    continue;
                }
                Err(Stop::Api(error)) => error,
            };
            let forbidden = error.code() == Some(403);
            let permanent =
                (forbidden && !retry_forbidden) || matches!(error.code(), Some(400 | 422));
            let text = if forbidden {
                format!("{error}; {}", watcher.grant_hint())
            } else {
                error.to_string()
            };
            watcher.note(&text);
            if permanent {
                return Err(anyhow::anyhow!(text));
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    };
    tokio::select! {
        stop = ctx.cancel.cancelled() => Err(signal::stopped(stop)),
        () = ctx.deadline_reached() => Err(retry::deadline_exceeded(ctx)),
        result = work => match result {
            Ok(()) => {
                ctx.report.ready(shown, started.elapsed());
                Ok(())
            }
            Err(error) => Err(error.context(shown.to_string())),
        },
    }
}

struct Watcher<'a> {
    ctx: &'a Ctx,
    client: &'a Client,
    target: &'a Target,
    shown: &'a str,
    /// The last state reported, so that only changes are.
    last: Option<String>,
}

impl Watcher<'_> {
    /// One list, then watches from its resourceVersion until the goal, a final failure, an
    /// expired watch or an error.
    async fn session(&mut self, backoff: &mut Backoff) -> Result<(), Stop> {
        let budget = self.ctx.policy.attempt_timeout;
        let (collection, query) = self.collection(budget).await?;
        let list = self
            .client
            .get(&format!("{collection}?{query}"), budget)
            .await?;
        *backoff = Backoff::new(self.ctx.policy);
        let mut objects: BTreeMap<String, Value> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| Some((name_of(item)?, item.clone())))
            .collect();
        let mut version = list["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if self.observe(&objects)? {
            return Ok(());
        }
        loop {
            let mut watch = self
                .client
                .watch(&format!(
                    "{collection}?{query}&watch=1&allowWatchBookmarks=true&timeoutSeconds={WATCH_SECONDS}&resourceVersion={version}"
                ))
                .await?;
            loop {
                let event = match tokio::time::timeout(WATCH_SILENCE, watch.next()).await {
                    Ok(Ok(Some(event))) => event,
                    // The server ended the watch, or the connection went silent: reopen it
                    // from the last version seen, which misses nothing.
                    Ok(Ok(None)) | Err(_) => break,
                    Ok(Err(error)) => return Err(error.into()),
                };
                let object = &event["object"];
                match event["type"].as_str() {
                    Some("ERROR") if object["code"] == 410 => return Err(Stop::Relist),
                    Some("ERROR") => {
                        return Err(Stop::Api(ApiError::Status {
                            code: object["code"].as_u64().unwrap_or(500) as u16,
                            reason: object["reason"].as_str().unwrap_or("Error").to_string(),
                            message: object["message"].as_str().unwrap_or("").to_string(),
                        }));
                    }
                    Some("ADDED" | "MODIFIED") => {
                        if let Some(name) = name_of(object) {
                            objects.insert(name, object.clone());
                        }
                    }
                    Some("DELETED") => {
                        if let Some(name) = name_of(object) {
                            objects.remove(&name);
                        }
                    }
                    _ => {}
                }
                if let Some(seen) = object["metadata"]["resourceVersion"].as_str() {
                    version = seen.to_string();
                }
                if self.observe(&objects)? {
                    return Ok(());
                }
            }
        }
    }

    /// Judges the objects; reports a new state; `true` once the goal is reached.
    fn observe(&mut self, objects: &BTreeMap<String, Value>) -> Result<bool, Stop> {
        match judge::judge(self.target, objects) {
            State::Reached => Ok(true),
            State::Failed(message) => {
                self.note(&message);
                Err(Stop::Failed(message))
            }
            State::Waiting(why) => {
                self.note(&why);
                Ok(false)
            }
        }
    }

    /// A state or error, reported (logged, and posted as an Event with --events) when it
    /// differs from the last one.
    fn note(&mut self, text: &str) {
        if self.last.as_deref() != Some(text) {
            self.ctx.report.attempt_failed(self.shown, text);
            self.last = Some(text.to_string());
        }
    }

    /// The collection to list and watch, and the selector that narrows it to the target.
    async fn collection(&self, budget: Duration) -> Result<(String, String), Stop> {
        let target = self.target;
        let namespace = &target.namespace;
        let encode = |key: &str, value: &str| {
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair(key, value)
                .finish()
        };
        let by_name = |name: &str| encode("fieldSelector", &format!("metadata.name={name}"));
        let name = target.name.as_deref().unwrap_or_default();
        if target.goal == Goal::Endpoints {
            // EndpointSlices where the server has them (v1 from 1.21, v1beta1 on 1.17-1.20);
            // Endpoints otherwise.
            let versions = match self.client.get("/apis/discovery.k8s.io", budget).await {
                Ok(group) => group["versions"].as_array().cloned().unwrap_or_default(),
                Err(error) if error.code() == Some(404) => Vec::new(),
                Err(error) => return Err(error.into()),
            };
            for version in ["v1", "v1beta1"] {
                if versions.iter().any(|found| found["version"] == version) {
                    return Ok((
                        format!(
                            "/apis/discovery.k8s.io/{version}/namespaces/{namespace}/endpointslices"
                        ),
                        encode(
                            "labelSelector",
                            &format!("kubernetes.io/service-name={name}"),
                        ),
                    ));
                }
            }
            return Ok((
                format!("/api/v1/namespaces/{namespace}/endpoints"),
                by_name(name),
            ));
        }
        let resource = &target.resource;
        let base = if resource.group.is_empty() {
            format!("/api/{}", resource.version)
        } else {
            let version = if resource.version.is_empty() {
                let group = self
                    .client
                    .get(&format!("/apis/{}", resource.group), budget)
                    .await?;
                group["preferredVersion"]["version"]
                    .as_str()
                    .unwrap_or("v1")
                    .to_string()
            } else {
                resource.version.clone()
            };
            format!("/apis/{}/{version}", resource.group)
        };
        let query = match &target.selector {
            Some(selector) => encode("labelSelector", selector),
            None => by_name(name),
        };
        Ok((
            format!("{base}/namespaces/{namespace}/{}", resource.plural),
            query,
        ))
    }

    /// What to grant after a 403: the verbs a wait uses on the resources it reads.
    fn grant_hint(&self) -> String {
        let target = self.target;
        let (resource, group) = if target.goal == Goal::Endpoints {
            ("endpointslices (discovery.k8s.io) or endpoints", "")
        } else {
            (
                target.resource.plural.as_str(),
                target.resource.group.as_str(),
            )
        };
        let group = if group.is_empty() {
            String::new()
        } else {
            format!(" ({group})")
        };
        format!(
            "this service account needs get, list and watch on {resource}{group} in namespace {} \
             (a Role and RoleBinding), or --retry-forbidden to keep waiting",
            target.namespace
        )
    }
}

fn name_of(object: &Value) -> Option<String> {
    object["metadata"]["name"].as_str().map(str::to_string)
}
