//! wait-redis in a pod: the app container starts only once Redis has finished loading its
//! dataset, not at the first answer (LOADING).

use std::time::Duration;

use crate::pods::{self, initbox_pod};
use crate::support::kube::Cluster;
use crate::support::redis::Redis;

#[test]
fn the_app_starts_only_after_redis_has_loaded_its_dataset() {
    let Some(cluster) = Cluster::for_e2e("the_app_starts_only_after_redis_has_loaded") else {
        return;
    };
    let ns = cluster.namespace("e2e-redis");
    // On the cluster's loopback (this thread is in its network namespace), LOADING for ~4.5 s.
    let redis = Redis::start_loading(Some("redis-e2e-pw"));
    let url = format!("--url=redis://:redis-e2e-pw@127.0.0.1:{}/0", redis.port);
    let pod = initbox_pod("cache-user", &["wait-redis", &url, "--timeout=60s"], true);
    cluster.apply(&ns.name, &pod.to_string());
    pods::wait_running(&cluster, &ns.name, "cache-user", Duration::from_secs(60));
    assert!(
        !redis.is_loading(),
        "the app started while Redis was loading"
    );

    let log = pods::logs(&cluster, &ns.name, "cache-user", "wait");
    assert!(
        log.contains("LOADING Redis is loading the dataset in memory"),
        "{log}"
    );
    assert!(log.contains("ready after"), "{log}");
    assert!(
        !log.contains("redis-e2e-pw"),
        "the password leaked into:\n{log}"
    );
    let app = pods::logs(&cluster, &ns.name, "cache-user", "app");
    assert_eq!(app.trim(), "app started");
}
