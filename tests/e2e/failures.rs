//! Failures as a person meets them in a cluster: a dependency that never comes (Init:Error,
//! then Init:CrashLoopBackOff, and the one-line reason in `kubectl describe pod`), and a pod
//! deleted while its init container waits (exit 143 at once, not after the grace period).

use std::time::{Duration, Instant};

use crate::pods::{self, describe_field, initbox_pod};
use crate::support::kube::{Cluster, wait_for};

#[test]
fn a_dependency_that_never_comes_crash_loops_with_its_reason_in_describe() {
    let Some(cluster) = Cluster::for_e2e("a_dependency_that_never_comes") else {
        return;
    };
    let ns = cluster.namespace("e2e-never");
    // Nothing listens on port 1 of the pod's own loopback.
    let pod = initbox_pod("never", &["--timeout=3s", "wait-tcp", "127.0.0.1:1"], false);
    cluster.apply(&ns.name, &pod.to_string());

    let seen = pods::watch_statuses(&cluster, &ns.name, "never", Duration::from_secs(90), |s| {
        s == "Init:CrashLoopBackOff"
    });
    let error = seen.iter().position(|s| s == "Init:Error");
    let crash_loop = seen.iter().position(|s| s == "Init:CrashLoopBackOff");
    assert!(
        matches!((error, crash_loop), (Some(e), Some(c)) if e < c),
        "kubectl get pod showed {seen:?}"
    );
    assert!(seen.iter().all(|s| s.starts_with("Init:")), "{seen:?}");

    let describe = pods::describe(&cluster, &ns.name, "never");
    let last_state = describe
        .split_once("Last State:")
        .unwrap_or_else(|| panic!("no Last State in:\n{describe}"))
        .1;
    assert_eq!(describe_field(last_state, "Reason"), Some("Error"));
    assert_eq!(
        describe_field(last_state, "Message"),
        Some("deadline of 3s exceeded; not ready: 127.0.0.1:1 (connection refused)"),
        "{describe}"
    );
    assert_eq!(describe_field(last_state, "Exit Code"), Some("124"));
    // The message is one line, and the next line is the exit code: no stray empty line from a
    // newline at the end of the termination message.
    let after_message: Vec<&str> = last_state
        .lines()
        .skip_while(|line| !line.trim_start().starts_with("Message:"))
        .take(2)
        .collect();
    assert!(
        after_message[1].trim_start().starts_with("Exit Code:"),
        "the line after Message is {:?}:\n{describe}",
        after_message[1]
    );
    assert!(describe.contains("CrashLoopBackOff"), "{describe}");

    // The same reason as the last line of the failed run's log.
    // The kubelet keeps only the last ended run's log, and a restart may replace it between
    // two kubectl calls; ask again until one answers.
    let log = (0..10)
        .find_map(|_| {
            let output = cluster
                .kubectl()
                .args(["logs", "never", "-n", &ns.name, "-c", "wait", "--previous"])
                .output()
                .expect("run kubectl");
            if output.status.success() {
                return Some(String::from_utf8_lossy(&output.stdout).into_owned());
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
            None
        })
        .expect("kubectl logs --previous kept failing");
    assert!(
        log.trim_end()
            .ends_with("deadline of 3s exceeded; not ready: 127.0.0.1:1 (connection refused)"),
        "{log}"
    );
}

#[test]
fn deleting_a_pod_while_its_init_container_waits_ends_it_with_143_at_once() {
    let Some(cluster) = Cluster::for_e2e("deleting_a_pod_while_its_init_container_waits") else {
        return;
    };
    let ns = cluster.namespace("e2e-delete");
    let pod = initbox_pod(
        "waiting",
        &["--timeout=5m", "wait-tcp", "127.0.0.1:1"],
        false,
    );
    cluster.apply(&ns.name, &pod.to_string());
    let mut id = String::new();
    wait_for("the init container to run", Duration::from_secs(60), || {
        let pod = cluster.get_json(&ns.name, &["pod", "waiting"]);
        let running = &pod["status"]["initContainerStatuses"][0]["state"]["running"];
        if running.is_null() {
            return false;
        }
        id = pods::container_id(&pod, "wait");
        true
    });
    assert_eq!(
        pods::status(&cluster, &ns.name, "waiting").as_deref(),
        Some("Init:0/1")
    );

    // Kubelet 1.20 reports a made-up 137 (ContainerStatusUnknown) for the containers of a
    // deleted pod, so the real exit code is read where the runtime records it.
    let events = cluster.record_events();
    let started = Instant::now();
    cluster.kubectl_ok(&["delete", "pod", "waiting", "-n", &ns.name, "--timeout=60s"]);
    let delete_took = started.elapsed();
    let exit = events.wait_exit(&id, Duration::from_secs(30));
    assert_eq!(
        exit.exit_status,
        Some(143),
        "exit code of the init container"
    );

    // The moment containerd sent SIGTERM (its CRI plugin logs "Stop container ... with signal
    // terminated").
    let log = cluster.containerd_log();
    let sigterm = log
        .lines()
        .filter(|line| line.contains(&id) && line.contains("with signal terminated"))
        .find_map(log_time)
        .unwrap_or_else(|| panic!("no SIGTERM for {id} in containerd's log"));
    let reaction = exit.at - sigterm;
    eprintln!(
        "SIGTERM to exit: {:.0} ms; kubectl delete returned after {:.1} s",
        reaction * 1000.0,
        delete_took.as_secs_f64()
    );
    assert!(
        (0.0..1.0).contains(&reaction),
        "exit {reaction:.3} s after SIGTERM"
    );
    assert!(
        delete_took < Duration::from_secs(20),
        "kubectl delete took {delete_took:?}, against a 30 s grace period"
    );
}

/// The `time="…"` of a containerd log line, in seconds since the epoch.
fn log_time(line: &str) -> Option<f64> {
    let stamp = line.strip_prefix("time=\"")?.split('"').next()?;
    let (date, time) = stamp.split_once('T')?;
    crate::support::kube::epoch_seconds(date, time)
}
