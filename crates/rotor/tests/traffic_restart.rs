//! A traffic layer that restarts forgets the backends rotor attached at runtime. The Cluster
//! controller no longer re-attaches every endpoint on every resync (that was one runtime-API
//! call per Cluster per resync, whether anything changed or not); it reads HAProxy's epoch (the
//! worker's pid and start time) and attaches every Cluster's active instance again when it
//! changed. Here the idle resync is left at its default (minutes): only the restart's
//! detection can bring the endpoints back within the test's bound.

use crate::common;

use std::time::Duration;

use common::eventually;
use rotor::rehearsal::{Rehearsal, RehearsalConfig, TrafficChoice};
use rotor_sim::{CloudConfig, SimConfig};

const CLUSTERS: usize = 3;
/// How often the controllers ask the traffic layer whether it restarted.
const EPOCH_READ: Duration = Duration::from_millis(300);
const LIMIT: Duration = Duration::from_secs(30);

/// Whether `url` answers one request without failure.
async fn answers(url: &str) -> bool {
    let url = [url.to_string()];
    let report = rotor_traffic::load::run(&url, 1, 1, Duration::from_secs(2)).await;
    report.failed == 0
}

#[tokio::test]
async fn a_restarted_haproxy_gets_every_clusters_backend_back() {
    let settings = rotor_controllers::Settings {
        cluster_resync: EPOCH_READ,
        ..Default::default()
    };
    assert!(
        settings.idle_resync >= LIMIT * 4,
        "the idle resync alone must not bring the endpoints back within the bound"
    );
    let mut r = Rehearsal::start(RehearsalConfig {
        fleet: rotor_api::sample_fleet(CLUSTERS),
        sim: SimConfig {
            nodes: 1,
            cloud: CloudConfig {
                create_latency: Duration::from_millis(100),
                ..CloudConfig::default()
            },
            ..SimConfig::default()
        },
        settings,
        traffic: TrafficChoice::Haproxy,
        clock: None,
        clouds: Vec::new(),
    })
    .await
    .expect("rehearsal with HAProxy starts");
    r.wait_adopted(LIMIT).await.expect("clusters adopted");
    r.deploy_app(LIMIT)
        .await
        .expect("the app answers through HAProxy");
    let urls = r.app_urls();
    assert_eq!(urls.len(), CLUSTERS);

    // At once, as a supervisor would restart it.
    let haproxy = r.haproxy.as_mut().expect("HAProxy runs");
    let before = haproxy.pid();
    haproxy
        .restart(Duration::from_secs(10))
        .await
        .expect("HAProxy restarts");
    assert_ne!(haproxy.pid(), before, "a new HAProxy process");
    all_answer_again(&urls).await;

    // Down for several readings first: the restart is told from the epoch before the gap.
    haproxy.stop();
    tokio::time::sleep(EPOCH_READ * 4).await;
    haproxy
        .start_again(Duration::from_secs(10))
        .await
        .expect("HAProxy starts again");
    all_answer_again(&urls).await;
}

async fn all_answer_again(urls: &[String]) {
    for url in urls {
        eventually(LIMIT, &format!("{url} answers again"), || async {
            answers(url).await.then_some(())
        })
        .await;
    }
}
