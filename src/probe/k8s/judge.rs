//! Whether the objects a target watches have reached its goal: a Job complete (or failed for
//! good), a Deployment or StatefulSet rolled out as `kubectl rollout status` judges it, pods
//! ready, a Service's ready endpoints, a condition, a deletion.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::probe::k8s::target::{Goal, Target};

/// Where a target stands. The text says why, in the words `kubectl` would use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Waiting(String),
    Reached,
    /// Final: waiting longer cannot help (a Job that failed for good).
    Failed(String),
}

/// The state of `target` given the objects it watches, by name (one object for `KIND/NAME`, the
/// matching pods for a selector, a Service's Endpoints or EndpointSlices).
pub fn judge(target: &Target, objects: &BTreeMap<String, Value>) -> State {
    let only = || objects.values().next();
    match &target.goal {
        Goal::Delete => match only() {
            None => State::Reached,
            Some(_) => State::Waiting("still exists".into()),
        },
        Goal::Endpoints => endpoints(target, objects),
        Goal::Ready if target.kind == "pod" => pods_ready(target, objects),
        _ => match only() {
            None => State::Waiting("not found".into()),
            Some(object) => match &target.goal {
                Goal::Complete => job(object),
                Goal::Available => deployment(object),
                Goal::Ready => statefulset(object),
                Goal::Condition { kind, status } => condition(object, kind, status),
                Goal::Delete | Goal::Endpoints => unreachable!("handled above"),
            },
        },
    }
}

fn number(value: &Value) -> i64 {
    value.as_i64().unwrap_or(0)
}

/// The condition of `kind` (compared as kubectl does, ignoring case).
fn find_condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|condition| {
            condition["type"]
                .as_str()
                .is_some_and(|found| found.eq_ignore_ascii_case(kind))
        })
}

fn is_true(object: &Value, kind: &str) -> bool {
    find_condition(object, kind).is_some_and(|condition| condition["status"] == "True")
}

fn job(job: &Value) -> State {
    if is_true(job, "Complete") {
        return State::Reached;
    }
    if let Some(failed) = find_condition(job, "Failed").filter(|c| c["status"] == "True") {
        let reason = failed["reason"].as_str().unwrap_or("Failed");
        let message = failed["message"].as_str().unwrap_or("");
        return State::Failed(
            format!("job failed: {reason}: {message}")
                .trim_end_matches([':', ' '])
                .to_string(),
        );
    }
    let status = &job["status"];
    let failed = number(&status["failed"]);
    // Default backoffLimit 6: the controller gives up once more pods failed than that, and
    // may take a moment to write its Failed condition.
    let limit = job["spec"]["backoffLimit"].as_i64().unwrap_or(6);
    if failed > limit {
        return State::Failed(format!(
            "job failed: BackoffLimitExceeded: {failed} pods failed, backoffLimit is {limit}"
        ));
    }
    let completions = job["spec"]["completions"].as_i64().unwrap_or(1);
    State::Waiting(format!(
        "running: {} active, {} of {completions} succeeded, {failed} failed",
        number(&status["active"]),
        number(&status["succeeded"]),
    ))
}

/// kubectl's DeploymentStatusViewer (rollout_status.go), condition by condition.
fn deployment(deployment: &Value) -> State {
    let status = &deployment["status"];
    if number(&deployment["metadata"]["generation"]) > number(&status["observedGeneration"]) {
        return State::Waiting("waiting for the deployment spec update to be observed".into());
    }
    if find_condition(deployment, "Progressing")
        .is_some_and(|condition| condition["reason"] == "ProgressDeadlineExceeded")
    {
        return State::Failed("deployment exceeded its progress deadline".into());
    }
    let replicas = deployment["spec"]["replicas"].as_i64().unwrap_or(1);
    let updated = number(&status["updatedReplicas"]);
    let total = number(&status["replicas"]);
    let available = number(&status["availableReplicas"]);
    if updated < replicas {
        State::Waiting(format!(
            "{updated} out of {replicas} new replicas have been updated"
        ))
    } else if total > updated {
        State::Waiting(format!(
            "{} old replicas are pending termination",
            total - updated
        ))
    } else if available < updated {
        State::Waiting(format!(
            "{available} of {updated} updated replicas are available"
        ))
    } else {
        State::Reached
    }
}

/// kubectl's StatefulSetStatusViewer (rollout_status.go).
fn statefulset(set: &Value) -> State {
    let status = &set["status"];
    let observed = number(&status["observedGeneration"]);
    if observed == 0 || number(&set["metadata"]["generation"]) > observed {
        return State::Waiting("waiting for the statefulset spec update to be observed".into());
    }
    let replicas = set["spec"]["replicas"].as_i64().unwrap_or(1);
    let ready = number(&status["readyReplicas"]);
    if ready < replicas {
        return State::Waiting(format!("{ready} of {replicas} pods ready"));
    }
    let strategy = &set["spec"]["updateStrategy"];
    if strategy["type"] == "OnDelete" {
        return State::Reached;
    }
    let partition = number(&strategy["rollingUpdate"]["partition"]);
    if partition > 0 {
        let updated = number(&status["updatedReplicas"]);
        return if updated < replicas - partition {
            State::Waiting(format!(
                "partitioned roll out: {updated} of {} new pods updated",
                replicas - partition
            ))
        } else {
            State::Reached
        };
    }
    if status["updateRevision"] != status["currentRevision"] {
        return State::Waiting(format!(
            "rolling update: {} pods at revision {}",
            number(&status["updatedReplicas"]),
            status["updateRevision"].as_str().unwrap_or("?")
        ));
    }
    State::Reached
}

fn pods_ready(target: &Target, pods: &BTreeMap<String, Value>) -> State {
    let ready = pods
        .values()
        .filter(|pod| pod["metadata"]["deletionTimestamp"].is_null() && is_true(pod, "Ready"))
        .count();
    if ready >= target.min as usize {
        State::Reached
    } else {
        State::Waiting(format!(
            "{ready} of {} pods ready ({} match)",
            target.min,
            pods.len()
        ))
    }
}

/// Ready addresses of Endpoints (`subsets[].addresses`, not `notReadyAddresses`) or of
/// EndpointSlices (an endpoint whose `conditions.ready` is not false).
fn endpoints(target: &Target, objects: &BTreeMap<String, Value>) -> State {
    let mut ready = 0;
    for object in objects.values() {
        if let Some(subsets) = object["subsets"].as_array() {
            ready += subsets
                .iter()
                .filter_map(|subset| subset["addresses"].as_array())
                .map(Vec::len)
                .sum::<usize>();
        }
        if let Some(endpoints) = object["endpoints"].as_array() {
            ready += endpoints
                .iter()
                .filter(|endpoint| endpoint["conditions"]["ready"] != false)
                .map(|endpoint| endpoint["addresses"].as_array().map_or(0, Vec::len))
                .sum::<usize>();
        }
    }
    if ready >= target.min as usize {
        State::Reached
    } else if objects.is_empty() {
        State::Waiting("no endpoints yet".into())
    } else {
        State::Waiting(format!(
            "{ready} of {} ready endpoint addresses",
            target.min
        ))
    }
}

fn condition(object: &Value, kind: &str, status: &str) -> State {
    match find_condition(object, kind) {
        Some(found)
            if found["status"]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case(status)) =>
        {
            State::Reached
        }
        Some(found) => State::Waiting(format!(
            "condition {kind} is {}",
            found["status"].as_str().unwrap_or("unknown")
        )),
        None => State::Waiting(format!("no condition {kind} yet")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::k8s::target::{Spec, parse};
    use serde_json::json;

    fn target(text: &str, goal: Option<&str>) -> Target {
        parse(&Spec {
            target: text,
            goal,
            selector: None,
            min: None,
            namespace: "ns",
        })
        .unwrap()
    }

    fn one(object: Value) -> BTreeMap<String, Value> {
        BTreeMap::from([("x".to_string(), object)])
    }

    #[test]
    fn a_job_is_complete_failed_for_good_or_running() {
        let job = target("job/x", None);
        let complete = json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(judge(&job, &one(complete)), State::Reached);
        let failed = json!({"status": {"conditions": [{"type": "Failed", "status": "True",
            "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}});
        assert_eq!(
            judge(&job, &one(failed)),
            State::Failed(
                "job failed: BackoffLimitExceeded: Job has reached the specified backoff limit"
                    .into()
            )
        );
        let over_limit = json!({"spec": {"backoffLimit": 0}, "status": {"failed": 1}});
        assert!(matches!(judge(&job, &one(over_limit)), State::Failed(_)));
        let running = json!({"spec": {"backoffLimit": 2}, "status": {"active": 1, "failed": 1}});
        assert_eq!(
            judge(&job, &one(running)),
            State::Waiting("running: 1 active, 0 of 1 succeeded, 1 failed".into())
        );
        assert_eq!(
            judge(&job, &BTreeMap::new()),
            State::Waiting("not found".into())
        );
    }

    #[test]
    fn a_deployment_is_judged_as_kubectl_rollout_status_does() {
        let deploy = target("deployment/x", None);
        let at = |generation: i64,
                  observed: i64,
                  replicas: i64,
                  updated: i64,
                  total: i64,
                  available: i64| {
            judge(
                &deploy,
                &one(json!({"metadata": {"generation": generation},
                "spec": {"replicas": replicas},
                "status": {"observedGeneration": observed, "updatedReplicas": updated,
                           "replicas": total, "availableReplicas": available}})),
            )
        };
        assert!(matches!(at(2, 1, 2, 2, 2, 2), State::Waiting(w) if w.contains("observed")));
        assert!(matches!(at(2, 2, 2, 1, 2, 2), State::Waiting(w) if w.contains("1 out of 2 new")));
        assert!(matches!(at(2, 2, 2, 2, 3, 2), State::Waiting(w) if w.contains("1 old replicas")));
        assert!(matches!(at(2, 2, 2, 2, 2, 1), State::Waiting(w) if w.contains("1 of 2 updated")));
        assert_eq!(at(2, 2, 2, 2, 2, 2), State::Reached);
        let stuck = json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1,
            "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}});
        assert!(matches!(judge(&deploy, &one(stuck)), State::Failed(_)));
    }

    #[test]
    fn endpoints_count_ready_addresses_only() {
        let service = target("service/db", None);
        let endpoints = json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}], "notReadyAddresses": [{"ip": "10.0.0.2"}]}]});
        assert_eq!(judge(&service, &one(endpoints)), State::Reached);
        let slice =
            json!({"endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": false}}]});
        assert!(matches!(judge(&service, &one(slice)), State::Waiting(_)));
        let slice = json!({"endpoints": [{"addresses": ["10.0.0.1"], "conditions": {}}]});
        assert_eq!(judge(&service, &one(slice)), State::Reached);
    }

    #[test]
    fn conditions_and_deletion() {
        let pod = target("pod/x", Some("condition=ready"));
        let ready = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        assert_eq!(judge(&pod, &one(ready.clone())), State::Reached);
        let gone = target("pod/x", Some("delete"));
        assert!(matches!(judge(&gone, &one(ready)), State::Waiting(_)));
        assert_eq!(judge(&gone, &BTreeMap::new()), State::Reached);
    }
}
