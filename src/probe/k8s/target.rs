//! What `wait-k8s` waits for: `KIND/NAME` (or `pod` with a label selector) and the state it must
//! reach (`--for`), checked before anything is sent, and the API collection that holds it.

use crate::runtime::exit;

/// A kind of object: its API group and version, and its resource name in URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub group: String,
    /// Empty: the group's preferred version, asked from the server (CronJob is batch/v1beta1 on
    /// 1.20 and batch/v1 from 1.21).
    pub version: String,
    pub plural: String,
}

/// Kinds known by their kubectl names and short names. Others are written as kubectl's
/// `RESOURCE.GROUP` (`certificates.cert-manager.io/web`).
const KINDS: &[(&[&str], &str, &str, &str)] = &[
    (&["pod", "pods", "po"], "", "v1", "pods"),
    (&["service", "services", "svc"], "", "v1", "services"),
    (&["job", "jobs"], "batch", "v1", "jobs"),
    (
        &["deployment", "deployments", "deploy"],
        "apps",
        "v1",
        "deployments",
    ),
    (
        &["statefulset", "statefulsets", "sts"],
        "apps",
        "v1",
        "statefulsets",
    ),
    (
        &["daemonset", "daemonsets", "ds"],
        "apps",
        "v1",
        "daemonsets",
    ),
    (
        &["replicaset", "replicasets", "rs"],
        "apps",
        "v1",
        "replicasets",
    ),
    (&["configmap", "configmaps", "cm"], "", "v1", "configmaps"),
    (&["secret", "secrets"], "", "v1", "secrets"),
    (
        &["persistentvolumeclaim", "persistentvolumeclaims", "pvc"],
        "",
        "v1",
        "persistentvolumeclaims",
    ),
    (&["endpoints", "ep"], "", "v1", "endpoints"),
    (
        &["serviceaccount", "serviceaccounts", "sa"],
        "",
        "v1",
        "serviceaccounts",
    ),
    (&["cronjob", "cronjobs", "cj"], "batch", "", "cronjobs"),
];

/// The state to wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Goal {
    /// A Job's Complete condition; its Failed condition (or backoffLimit reached) is final.
    Complete,
    /// A Deployment rolled out, as `kubectl rollout status` judges it.
    Available,
    /// A StatefulSet rolled out with every replica ready; pods: Ready.
    Ready,
    /// A Service with at least `min` ready endpoint addresses.
    Endpoints,
    /// `condition=TYPE[=STATUS]`: the condition has the status (default True).
    Condition { kind: String, status: String },
    /// The object no longer exists (or never did).
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The kind as written (`job`), for messages.
    pub kind: String,
    pub resource: Resource,
    /// The object's name; `None` for `pod -l SELECTOR`.
    pub name: Option<String>,
    pub selector: Option<String>,
    pub goal: Goal,
    pub min: u32,
    pub namespace: String,
}

impl Target {
    /// `job/migrate` as logs and events show it: `job/migrate in apps (complete)`.
    pub fn shown(&self) -> String {
        let what = match (&self.name, &self.selector) {
            (Some(name), _) => format!("{}/{name}", self.kind),
            (None, Some(selector)) => format!("{} -l {selector}", self.kind),
            (None, None) => self.kind.clone(),
        };
        format!("{what} in {}", self.namespace)
    }

    pub fn is_service_endpoints(&self) -> bool {
        self.goal == Goal::Endpoints
    }
}

/// Everything the command line or a `k8s:` URI says about one target.
pub struct Spec<'a> {
    pub target: &'a str,
    pub goal: Option<&'a str>,
    pub selector: Option<&'a str>,
    pub min: Option<u32>,
    pub namespace: &'a str,
}

/// Checks one target; errors are usage errors (exit 2) naming what is wrong.
pub fn parse(spec: &Spec) -> anyhow::Result<Target> {
    let text = spec.target;
    let (kind, name) = match text.split_once('/') {
        Some((kind, name)) => (kind, Some(name)),
        None => (text, None),
    };
    let kind_lower = kind.to_ascii_lowercase();
    let resource = resource_of(&kind_lower).ok_or_else(|| {
        exit::usage(format!(
            "{text}: unknown kind '{kind}'; expected job, deployment, statefulset, pod, service, \
             another kubectl kind name, or RESOURCE.GROUP"
        ))
    })?;
    let canonical = KINDS
        .iter()
        .find(|(names, ..)| names.contains(&kind_lower.as_str()))
        .map_or(kind_lower.clone(), |(names, ..)| names[0].to_string());
    if let Some(name) = name {
        if !is_object_name(name) {
            return Err(exit::usage(format!(
                "{text}: '{name}' is not a valid object name"
            )));
        }
    }
    let selector = spec.selector.filter(|selector| !selector.is_empty());
    match (name, selector) {
        (None, None) => {
            return Err(exit::usage(format!(
                "{text}: expected KIND/NAME, or {text} -l SELECTOR"
            )));
        }
        (Some(_), Some(_)) => {
            return Err(exit::usage(format!(
                "{text}: give a name or a label selector (-l), not both"
            )));
        }
        (None, Some(_)) if canonical != "pod" => {
            return Err(exit::usage(format!(
                "{text}: a label selector (-l) works with pods only"
            )));
        }
        _ => {}
    }
    let goal = match spec.goal {
        Some(goal) => parse_goal(goal).map_err(|why| exit::usage(format!("{text}: {why}")))?,
        None => default_goal(&canonical).ok_or_else(|| {
            exit::usage(format!(
                "{text}: say what to wait for with --for (condition=TYPE[=STATUS] or delete)"
            ))
        })?,
    };
    let fits = match goal {
        Goal::Complete => canonical == "job",
        Goal::Available => canonical == "deployment",
        Goal::Ready => canonical == "statefulset" || canonical == "pod",
        Goal::Endpoints => canonical == "service",
        Goal::Condition { .. } | Goal::Delete => true,
    };
    if matches!(goal, Goal::Condition { .. }) && name.is_none() {
        return Err(exit::usage(format!(
            "{text}: a condition is checked on one object: write {canonical}/NAME"
        )));
    }
    if !fits {
        let goal_text = spec.goal.unwrap_or_default();
        return Err(exit::usage(format!(
            "{text}: --for {goal_text} does not apply to a {canonical}; complete is for jobs, \
             available for deployments, ready for statefulsets and pods, endpoints for services"
        )));
    }
    let min = spec.min.unwrap_or(1);
    if min == 0 {
        return Err(exit::usage(format!("{text}: --min must be at least 1")));
    }
    Ok(Target {
        kind: canonical,
        resource,
        name: name.map(str::to_string),
        selector: selector.map(str::to_string),
        goal,
        min,
        namespace: spec.namespace.to_string(),
    })
}

fn resource_of(kind: &str) -> Option<Resource> {
    if let Some((_, group, version, plural)) =
        KINDS.iter().find(|(names, ..)| names.contains(&kind))
    {
        return Some(Resource {
            group: group.to_string(),
            version: version.to_string(),
            plural: plural.to_string(),
        });
    }
    let (plural, group) = kind.split_once('.')?;
    let valid = |text: &str| {
        !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    (valid(plural) && valid(group)).then(|| Resource {
        group: group.to_string(),
        version: String::new(),
        plural: plural.to_string(),
    })
}

fn default_goal(kind: &str) -> Option<Goal> {
    Some(match kind {
        "job" => Goal::Complete,
        "deployment" => Goal::Available,
        "statefulset" | "pod" => Goal::Ready,
        "service" => Goal::Endpoints,
        _ => return None,
    })
}

/// `complete`, `available`, `ready`, `endpoints`, `delete` or `condition=TYPE[=STATUS]`.
pub fn parse_goal(text: &str) -> Result<Goal, String> {
    let lower = text.to_ascii_lowercase();
    Ok(match lower.as_str() {
        "complete" => Goal::Complete,
        "available" => Goal::Available,
        "ready" => Goal::Ready,
        "endpoints" => Goal::Endpoints,
        "delete" => Goal::Delete,
        _ => {
            let condition = lower
                .strip_prefix("condition=")
                .map(|_| &text["condition=".len()..])
                .ok_or_else(|| {
                    format!(
                        "--for '{text}': expected complete, available, ready, endpoints, delete \
                         or condition=TYPE[=STATUS]"
                    )
                })?;
            let (kind, status) = condition.split_once('=').unwrap_or((condition, "True"));
            if kind.is_empty() || status.is_empty() {
                return Err(format!("--for '{text}': expected condition=TYPE[=STATUS]"));
            }
            Goal::Condition {
                kind: kind.to_string(),
                status: status.to_string(),
            }
        }
    })
}

/// A DNS subdomain name (RFC 1123), as Kubernetes requires of most object names.
fn is_object_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::exit::Exit;

    fn spec<'a>(target: &'a str, goal: Option<&'a str>, selector: Option<&'a str>) -> Spec<'a> {
        Spec {
            target,
            goal,
            selector,
            min: None,
            namespace: "apps",
        }
    }

    #[test]
    fn kinds_take_their_default_goal() {
        let job = parse(&spec("job/migrate", None, None)).unwrap();
        assert_eq!(job.goal, Goal::Complete);
        assert_eq!(job.resource.plural, "jobs");
        assert_eq!(job.shown(), "job/migrate in apps");
        assert_eq!(
            parse(&spec("deploy/api", None, None)).unwrap().goal,
            Goal::Available
        );
        assert_eq!(
            parse(&spec("svc/db", None, None)).unwrap().goal,
            Goal::Endpoints
        );
        let pods = parse(&spec("pod", None, Some("app=web"))).unwrap();
        assert_eq!(pods.shown(), "pod -l app=web in apps");
        let custom = parse(&spec(
            "certificates.cert-manager.io/web",
            Some("condition=Ready"),
            None,
        ))
        .unwrap();
        assert_eq!(custom.resource.group, "cert-manager.io");
        assert_eq!(
            custom.goal,
            Goal::Condition {
                kind: "Ready".into(),
                status: "True".into()
            }
        );
        assert_eq!(
            parse_goal("condition=Progressing=False").unwrap(),
            Goal::Condition {
                kind: "Progressing".into(),
                status: "False".into()
            }
        );
    }

    #[test]
    fn bad_targets_are_usage_errors_that_say_why() {
        for (target, goal, selector, named) in [
            ("job", None, None, "expected KIND/NAME"),
            ("widget/x", None, None, "unknown kind 'widget'"),
            ("job/Bad_Name", None, None, "not a valid object name"),
            ("job/x", Some("available"), None, "does not apply to a job"),
            ("configmap/x", None, None, "say what to wait for"),
            ("job/x", Some("finished"), None, "expected complete"),
            ("job/x", Some("condition="), None, "condition=TYPE"),
            ("job/x", None, Some("a=b"), "not both"),
            ("service", None, Some("a=b"), "pods only"),
            (
                "pod",
                Some("condition=Ready"),
                Some("a=b"),
                "write pod/NAME",
            ),
        ] {
            let error = parse(&spec(target, goal, selector)).unwrap_err();
            assert_eq!(Exit::of(&error), Exit::Usage);
            assert!(format!("{error:#}").contains(named), "{target}: {error:#}");
        }
    }
}
