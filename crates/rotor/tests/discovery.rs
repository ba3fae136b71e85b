//! Discovery feeding the Cluster controller: a change in a member cluster reaches the Cluster's
//! status within seconds (the Cluster controller's own resync is 30 s, so only discovery's
//! trigger can explain it).

use crate::common;

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use rotor::rehearsal::{Rehearsal, RehearsalConfig, TrafficChoice};
use rotor_api::{Cluster, ConditionType, Reason, find_condition};
use rotor_sim::{Fault, SimConfig};

const LIMIT: Duration = Duration::from_secs(10);

async fn cluster_status(r: &Rehearsal) -> rotor_api::ClusterStatus {
    let api: Api<Cluster> = Api::all(r.client.clone());
    api.get(&r.fleet[0].name_any())
        .await
        .ok()
        .and_then(|c| c.status)
        .unwrap_or_default()
}

fn condition(s: &rotor_api::ClusterStatus, t: ConditionType) -> Option<(bool, Reason)> {
    find_condition(&s.conditions, t).map(|c| (c.is_true(), c.reason))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_changes_reach_the_cluster_status_through_discovery() {
    let r = Rehearsal::start(RehearsalConfig {
        fleet: rotor_api::sample_fleet(1),
        sim: SimConfig {
            nodes: 2,
            ..SimConfig::default()
        },
        settings: Default::default(),
        traffic: TrafficChoice::Sim,
        clock: None,
        clouds: Vec::new(),
    })
    .await
    .expect("rehearsal");
    r.wait_adopted(Duration::from_secs(20))
        .await
        .expect("adopted");
    r.deploy_app(Duration::from_secs(30)).await.expect("app");
    let name = r.fleet[0].name_any();

    // Healthy: both nodes Ready, the app's Deployment available.
    let healthy = common::eventually(
        Duration::from_secs(40),
        "the Cluster is healthy",
        || async {
            let s = cluster_status(&r).await;
            let h = s.health.clone()?;
            (condition(&s, ConditionType::Ready) == Some((true, Reason::Healthy))
                && h.nodes_ready == 2
                && h.workloads_available == 1)
                .then_some(h)
        },
    )
    .await;
    assert_eq!((healthy.nodes_total, healthy.workloads_total), (2, 1));

    // A node goes NotReady in the member cluster.
    let member = r.member(&name).await.expect("member client");
    let nodes: Api<Node> = Api::all(member);
    nodes
        .patch_status(
            "node-1",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": {"conditions": [
                {"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": "test"}
            ]}})),
        )
        .await
        .expect("node marked NotReady");
    let s = common::eventually(LIMIT, "NodesNotReady on the Cluster", || async {
        let s = cluster_status(&r).await;
        (condition(&s, ConditionType::Ready) == Some((false, Reason::NodesNotReady))).then_some(s)
    })
    .await;
    assert_eq!(s.health.expect("health").nodes_ready, 1);
    let ready = find_condition(&s.conditions, ConditionType::Ready).expect("Ready");
    assert!(ready.message.contains("node-1"), "{}", ready.message);

    // The member's API stops answering: the Cluster becomes unreachable, then recovers.
    assert!(r.sim.set_fault(&name, Fault::ApiUnavailable));
    common::eventually(LIMIT, "Unreachable on the Cluster", || async {
        let s = cluster_status(&r).await;
        (condition(&s, ConditionType::Reachable) == Some((false, Reason::Unreachable)))
            .then_some(())
    })
    .await;
    r.sim.clear_faults(&name);
    common::eventually(LIMIT, "reachable again", || async {
        let s = cluster_status(&r).await;
        (condition(&s, ConditionType::Reachable) == Some((true, Reason::Healthy))).then_some(())
    })
    .await;

    // node-1 recovers while the watches lose their events, then the member's watch history
    // expires (410 on every open and resumed watch): the relist finds the node Ready again.
    assert!(r.sim.set_fault(&name, Fault::WatchEventsDropped));
    nodes
        .patch_status(
            "node-1",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": {"conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "test"}
            ]}})),
        )
        .await
        .expect("node marked Ready");
    assert!(r.sim.set_fault(&name, Fault::WatchExpired));
    let s = common::eventually(LIMIT, "nodes Ready again after the 410", || async {
        let s = cluster_status(&r).await;
        (s.health.as_ref()?.nodes_ready == 2).then_some(s)
    })
    .await;
    assert_eq!(s.health.expect("health").nodes_total, 2);
    r.sim.clear_faults(&name);
    common::eventually(LIMIT, "healthy again", || async {
        let s = cluster_status(&r).await;
        (condition(&s, ConditionType::Ready) == Some((true, Reason::Healthy))).then_some(())
    })
    .await;
}
