//! A simulated fleet for tests that run the controllers: the simulator served over HTTP, one
//! Cluster whose blue the simulated cloud knows, the sample application in it, swaps of it.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use rotor::rehearsal::{
    APP_NAME, APP_NAMESPACE, Rehearsal, RehearsalConfig, TrafficChoice, sample_app,
};
use rotor_api::{Cluster, ClusterSwap, ClusterSwapSpec, ShifterKind, SwapStrategy, SwapTarget};
use rotor_sim::{CloudConfig, Sim, SimConfig};

/// Serves `router` (a simulator's) on a loopback port until the runtime ends: its base URL.
pub async fn serve_router(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = rotor_apiserver::http::serve(listener, router).await;
    });
    url
}

/// The sample application (namespace, Deployment, Service) applied to a member cluster.
pub async fn apply_sample_app(member: &kube::Client) {
    let (ns, deploy, svc) = sample_app();
    let pp = PatchParams::apply("test");
    Api::<Namespace>::all(member.clone())
        .patch(APP_NAMESPACE, &pp, &Patch::Apply(&ns))
        .await
        .expect("namespace");
    Api::<Deployment>::namespaced(member.clone(), APP_NAMESPACE)
        .patch(APP_NAME, &pp, &Patch::Apply(&deploy))
        .await
        .expect("deployment");
    Api::<Service>::namespaced(member.clone(), APP_NAMESPACE)
        .patch(APP_NAME, &pp, &Patch::Apply(&svc))
        .await
        .expect("service");
}

/// A simulator on `config` holding the first sample Cluster (traffic through `shifter`), its
/// blue at 1.34 adopted by the simulated cloud, served over HTTP: (sim, its URL, the Cluster).
pub async fn one_cluster(config: SimConfig, shifter: ShifterKind) -> (Arc<Sim>, String, Cluster) {
    let mut cluster = rotor_api::sample_fleet(1).remove(0);
    cluster.spec.traffic.shifter = shifter;
    let (sim, url) = serve_fleet(config, std::slice::from_ref(&cluster)).await;
    (sim, url, cluster)
}

/// A simulator on `config` holding `fleet`, each Cluster's blue at its version adopted by the
/// simulated cloud, served over HTTP: (sim, its URL).
pub async fn serve_fleet(config: SimConfig, fleet: &[Cluster]) -> (Arc<Sim>, String) {
    let sim = Sim::new(config);
    for cluster in fleet {
        let name = cluster.name_any();
        let minor = rotor::rehearsal::minor_of(&cluster.spec.kubernetes_version).expect("minor");
        sim.add_cluster(&name, minor).await.expect("blue");
        sim.cloud.adopt(&name, minor);
    }
    let url = serve_router(sim.router()).await;
    (sim, url)
}

/// [`one_cluster`] with the sample application running in blue.
pub async fn one_cluster_with_app(
    config: SimConfig,
    shifter: ShifterKind,
) -> (Arc<Sim>, String, Cluster) {
    let (sim, url, cluster) = one_cluster(config, shifter).await;
    let kubeconfig = sim
        .kubeconfig(&cluster.name_any(), &url)
        .expect("kubeconfig");
    let member = rotor::client_for(&kubeconfig).await.expect("member client");
    apply_sample_app(&member).await;
    (sim, url, cluster)
}

/// Swap `name` of `cluster` to Kubernetes `version` with `strategy`, neither paused nor held.
pub fn swap(name: &str, cluster: &str, version: &str, strategy: SwapStrategy) -> ClusterSwap {
    ClusterSwap::new(
        name,
        ClusterSwapSpec {
            cluster_ref: cluster.to_string(),
            target: SwapTarget {
                kubernetes_version: Some(version.into()),
                ..Default::default()
            },
            strategy,
            paused: false,
            rollback: false,
            hold_before_traffic: false,
        },
    )
}

/// A ConfigMap `legacy` in `ns` with a number where a string belongs, written straight into the
/// member's store as an older, laxer API server would have kept it: every Kubernetes release
/// refuses to take it.
pub async fn store_mistyped_config_map(server: &rotor_apiserver::ApiServer, ns: &str) {
    let res = server.resource("", "v1", "configmaps").expect("configmaps");
    let legacy = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "legacy", "namespace": ns,
            "uid": "00000000-0000-4000-8000-00000000abcd", "creationTimestamp": "2020-01-01T00:00:00Z"},
        "data": {"port": 8080}});
    server
        .store()
        .create(
            &res.key(Some(ns), "legacy"),
            serde_json::to_vec(&legacy).expect("json").into(),
        )
        .await
        .expect("stored as an older API would have");
}

/// A whole installation in one process over one sample cluster, its application deployed:
/// the simulated cloud creating in 300 ms, gates read every 100 ms over at least 10 requests,
/// a drain longer than the load's slowest request (5 s), so that only streams reach it.
pub async fn one_cluster_rehearsal(traffic: TrafficChoice) -> Rehearsal {
    rehearsal_of(1, traffic).await
}

/// As [`one_cluster_rehearsal`], over `clusters` sample clusters.
pub async fn rehearsal_of(clusters: usize, traffic: TrafficChoice) -> Rehearsal {
    let r = Rehearsal::start(RehearsalConfig {
        fleet: rotor_api::sample_fleet(clusters),
        sim: SimConfig {
            nodes: 2,
            workload_ready_delay: Duration::from_millis(200),
            node_ready_delay: Duration::from_millis(100),
            cloud: CloudConfig {
                create_latency: Duration::from_millis(300),
                delete_latency: Duration::from_millis(100),
                ..CloudConfig::default()
            },
            ..SimConfig::default()
        },
        settings: rotor_controllers::Settings {
            gate_interval: Duration::from_millis(100),
            poll_interval: Duration::from_millis(200),
            drain_timeout: Duration::from_secs(6),
            min_gate_requests: 10,
            ..Default::default()
        },
        traffic,
        clock: None,
        clouds: Vec::new(),
    })
    .await
    .expect("rehearsal starts");
    r.wait_adopted(Duration::from_secs(20))
        .await
        .expect("clusters adopted");
    r.deploy_app(Duration::from_secs(30))
        .await
        .expect("sample app answers");
    r
}

/// Two sample clusters labelled `label: canary` and `label: rest`, for a Rollout's two waves,
/// in a [`quick_rehearsal`] whose cloud creates in 200 ms.
pub async fn canary_and_rest(label: &str) -> Rehearsal {
    let mut fleet = rotor_api::sample_fleet(2);
    fleet[0].labels_mut().insert(label.into(), "canary".into());
    fleet[1].labels_mut().insert(label.into(), "rest".into());
    quick_rehearsal(fleet, None, Duration::from_millis(200)).await
}

/// A whole installation in one process over `fleet`, its application deployed, for rollouts:
/// one node per cluster, the cloud creating in `create_latency`, gates every 100 ms, a 100 ms
/// drain, traffic through the embedded router; `clock` for maintenance windows.
pub async fn quick_rehearsal(
    fleet: Vec<Cluster>,
    clock: Option<rotor_controllers::Clock>,
    create_latency: Duration,
) -> Rehearsal {
    let r = Rehearsal::start(RehearsalConfig {
        fleet,
        sim: SimConfig {
            nodes: 1,
            workload_ready_delay: Duration::from_millis(100),
            node_ready_delay: Duration::from_millis(50),
            cloud: CloudConfig {
                create_latency,
                delete_latency: Duration::from_millis(50),
                ..CloudConfig::default()
            },
            ..SimConfig::default()
        },
        settings: rotor_controllers::Settings {
            gate_interval: Duration::from_millis(100),
            poll_interval: Duration::from_millis(200),
            drain_timeout: Duration::from_millis(100),
            ..Default::default()
        },
        traffic: TrafficChoice::Sim,
        clock,
        clouds: Vec::new(),
    })
    .await
    .expect("rehearsal");
    r.wait_adopted(Duration::from_secs(20))
        .await
        .expect("adopted");
    r.deploy_app(Duration::from_secs(30)).await.expect("app");
    r
}

/// A simulated fleet with the sample application's timings and these cloud latencies.
pub fn sim_config(create_latency: Duration, delete_latency: Duration) -> SimConfig {
    SimConfig {
        nodes: 2,
        workload_ready_delay: Duration::from_millis(200),
        node_ready_delay: Duration::from_millis(100),
        traffic_port: Some(super::kubectl::free_port()),
        cloud: CloudConfig {
            create_latency,
            delete_latency,
            ..CloudConfig::default()
        },
        ..SimConfig::default()
    }
}
