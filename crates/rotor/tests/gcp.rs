//! The controllers on Google Cloud's APIs through the wiring `rotor serve` uses (`--provider
//! gcp --traffic clouddns:PROJECT/ZONE --gcp-endpoint-url URL --gcp-access-token-file FILE`),
//! against the simulator's Google front (`rotor sim` at `/gcp`), where a GKE cluster is a
//! member with a Kubernetes API and a traffic address. The controllers reach blue's and
//! green's APIs with access tokens from their Google credentials (`--gke-credentials token`),
//! and the swap runs to the end: green created in GKE with its node pool at the target
//! version, the application migrated, the weighted record set in Cloud DNS moved to green's
//! address, blue deleted from GKE. Every wait is bounded.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::controllers::Controllers;
use common::fleet::swap;
use google_cloud_auth::credentials::Credentials;
use google_cloud_container_v1::client::ClusterManager;
use google_cloud_container_v1::model;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use rotor_api::{
    Cluster, ClusterSwap, NodePool, Phase, Provider, ShifterKind, SwapStrategy, TrafficEndpoint,
};
use rotor_providers::gke::{ClusterCredentials, GkeOptions, GkeProvider, static_token};

const LIMIT: Duration = Duration::from_secs(60);
const PROJECT: &str = "rotor-prod-1";
const LOCATION: &str = "europe-west1";
const TOKEN: &str = "ya29.rotor-e2e";
const ZONE: &str = "shop";
const RECORD: &str = "shop.example.com";

fn gcp_cluster() -> Cluster {
    let mut c = rotor_api::sample_fleet(1).remove(0);
    c.metadata.name = Some("prod-gcp-europe-west1-a".into());
    c.metadata.managed_fields = None;
    c.spec.provider = Provider::Gcp;
    c.spec.account = PROJECT.into();
    c.spec.region = LOCATION.into();
    c.spec.kubernetes_version = "1.33".into();
    c.spec.node_pools = vec![NodePool {
        name: "general".into(),
        instance_type: "e2-standard-4".into(),
        min_count: 1,
        max_count: 5,
        desired_count: 2,
    }];
    c.spec.config = BTreeMap::from([("diskSizeGb".into(), "50".into())]);
    c
}

/// The official client, to make blue as a person would and to look at what rotor did.
async fn gke_client(endpoint: &str) -> ClusterManager {
    // reqwest is built without a crypto provider of its own (docs/clouds.md 1.3).
    let _ = rustls::crypto::ring::default_provider().install_default();
    ClusterManager::builder()
        .with_endpoint(endpoint)
        .with_credentials(Credentials::from(static_token(TOKEN)))
        .build()
        .await
        .expect("GKE client")
}

fn parent() -> String {
    format!("projects/{PROJECT}/locations/{LOCATION}")
}

async fn describe(gke: &ClusterManager, name: &str) -> Option<model::Cluster> {
    gke.get_cluster()
        .set_name(format!("{}/clusters/{name}", parent()))
        .send()
        .await
        .ok()
}

async fn cluster_names(gke: &ClusterManager) -> Vec<String> {
    let listed = gke
        .list_clusters()
        .set_parent(parent())
        .send()
        .await
        .expect("list clusters");
    listed.clusters.into_iter().map(|c| c.name).collect()
}

/// Blue, made outside rotor (no rotor labels), running.
async fn create_blue(gke: &ClusterManager, name: &str) {
    let pool = model::NodePool::new()
        .set_name("general")
        .set_initial_node_count(2);
    gke.create_cluster()
        .set_parent(parent())
        .set_cluster(
            model::Cluster::new()
                .set_name(name)
                .set_initial_cluster_version("1.33")
                .set_node_pools([pool]),
        )
        .send()
        .await
        .expect("create blue");
    common::eventually(LIMIT, "blue running", || async {
        let c = describe(gke, name).await?;
        (c.status == model::cluster::Status::Running).then_some(())
    })
    .await;
}

/// The IPv4 address of a GKE cluster's `rotor-traffic-address` label (`127-1-0-1_443`).
async fn traffic_ip(gke: &ClusterManager, name: &str) -> Option<String> {
    let c = describe(gke, name).await?;
    let label = c
        .resource_labels
        .get(rotor_providers::gke::LABEL_TRAFFIC_ADDRESS)?;
    Some(label.split('_').next()?.replace('-', "."))
}

/// The weighted items of rotor's record set in Cloud DNS: (address, weight), as held.
fn dns_items(sim: &rotor_sim::Sim) -> Vec<(String, f64)> {
    let Some(set) = sim.dns_rrset(PROJECT, ZONE, &format!("{RECORD}."), "A") else {
        return Vec::new();
    };
    let items = set["routingPolicy"]["wrr"]["items"].as_array().cloned();
    items
        .unwrap_or_default()
        .iter()
        .map(|i| {
            let ip = i["rrdatas"][0].as_str().unwrap_or_default().to_string();
            (ip, i["weight"].as_f64().unwrap_or(-1.0))
        })
        .collect()
}

/// The swap, on a runtime's worker threads as `rotor serve` builds them (Google's clients need
/// the deeper stacks they get; see `rotor::runtime`), not on the test's own thread.
#[test]
fn a_swap_on_gke_and_cloud_dns_in_the_simulator_succeeds() {
    let runtime = rotor::runtime().expect("runtime");
    let test = runtime
        .spawn(async { tokio::time::timeout(Duration::from_secs(120), swap_on_gke()).await });
    runtime
        .block_on(test)
        .expect("the test's task")
        .expect("bounded");
}

async fn swap_on_gke() {
    let sim = rotor_sim::Sim::new(rotor_sim::SimConfig {
        nodes: 2,
        node_ready_delay: Duration::from_millis(100),
        workload_ready_delay: Duration::from_millis(100),
        traffic_port: Some(common::kubectl::free_port()),
        cloud: rotor_sim::CloudConfig {
            create_latency: Duration::from_millis(300),
            delete_latency: Duration::from_millis(200),
            ..Default::default()
        },
        ..Default::default()
    });
    sim.add_managed_zone(PROJECT, ZONE, "example.com");
    let addr = sim.serve_loopback().await.expect("simulator serves");
    let endpoint = format!("http://{addr}/gcp");
    let gke = gke_client(&endpoint).await;
    let mut cluster = gcp_cluster();
    let name = cluster.name_any();
    create_blue(&gke, &name).await;

    // The sample application in blue, through a token as the controllers will use one.
    let tokens = GkeProvider::new(GkeOptions {
        endpoint: Some(endpoint.clone()),
        credentials: Some(static_token(TOKEN)),
    })
    .await
    .expect("GKE provider")
    .with_cluster_credentials(ClusterCredentials::Token);
    let at = rotor_providers::Placement {
        account: PROJECT.into(),
        region: LOCATION.into(),
    };
    let member = |instance: String| {
        let (tokens, at) = (&tokens, &at);
        async move {
            let located = rotor_providers::Located::new(tokens, at.clone());
            let kubeconfig = located.credentials(&instance).await.expect("credentials");
            rotor::client_for(kubeconfig.expose())
                .await
                .expect("client")
        }
    };
    common::fleet::apply_sample_app(&member(name.clone()).await).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = dir.path().join("gcp-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("token file");
    let blue_ip = traffic_ip(&gke, &name)
        .await
        .expect("blue's traffic address");
    cluster.spec.traffic = TrafficEndpoint {
        shifter: ShifterKind::CloudDns,
        endpoint: RECORD.into(),
    };
    let cp = common::start(Arc::new(rotor_store::memory::MemoryStore::default())).await;
    let wiring = rotor::controlplane::Wiring {
        providers: vec!["gcp".into()],
        traffic: vec![format!("clouddns:{PROJECT}/{ZONE}")],
        gcp_endpoint_url: Some(endpoint.clone()),
        gcp_access_token_file: Some(token_file.clone()),
        gke_credentials: ClusterCredentials::Token,
        clouddns_ttl: Duration::from_secs(1),
        clouddns_propagation: Duration::ZERO,
        ..Default::default()
    };
    // Cloud DNS counts no sessions: Draining lasts the whole drain timeout.
    let settings = rotor_controllers::Settings {
        poll_interval: Duration::from_millis(200),
        drain_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let controllers = Controllers::start(&cp, &wiring, settings).await;
    let clusters: Api<Cluster> = Api::all(cp.client.clone());
    clusters
        .create(&PostParams::default(), &cluster)
        .await
        .expect("Cluster");
    common::eventually(
        LIMIT,
        "blue adopted and registered in Cloud DNS",
        || async {
            let active = clusters.get(&name).await.ok()?.status?.active_instance;
            let registered = dns_items(&sim) == [(blue_ip.clone(), 100.0)];
            (active.as_deref() == Some(name.as_str()) && registered).then_some(())
        },
    )
    .await;

    let swaps: Api<ClusterSwap> = Api::all(cp.client.clone());
    let strategy = SwapStrategy {
        traffic_steps: vec![50, 100],
        bake_seconds: 1,
        blue_retention_seconds: 1,
        ..Default::default()
    };
    swaps
        .create(
            &PostParams::default(),
            &swap("upgrade", &name, "1.34", strategy),
        )
        .await
        .expect("swap");
    let done = common::eventually(LIMIT, "the swap ends", || async {
        let s = swaps.get("upgrade").await.ok()?.status?;
        s.phase.is_terminal().then_some(s)
    })
    .await;
    for t in &done.history {
        println!("{:?} {:?}: {}", t.phase, t.reason, t.message);
    }
    assert_eq!(done.phase, Phase::Succeeded, "{:?}", done.history);
    let green = done.green_instance.clone().expect("green");
    let described = describe(&gke, &green).await.expect("green in GKE");
    assert!(
        described.current_master_version.starts_with("1.34"),
        "{}",
        described.current_master_version
    );
    let pools: Vec<_> = described.node_pools.iter().map(|p| &p.name).collect();
    assert_eq!(pools, ["general"]);
    let apps: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(member(green.clone()).await, rotor::rehearsal::APP_NAMESPACE);
    apps.get(rotor::rehearsal::APP_NAME)
        .await
        .expect("the sample application migrated to green");
    let green_ip = traffic_ip(&gke, &green)
        .await
        .expect("green's traffic address");
    common::eventually(
        LIMIT,
        "blue deleted from GKE, Cloud DNS all on green",
        || async {
            let items = dns_items(&sim);
            let on_green = items.iter().any(|(ip, w)| *w == 100.0 && *ip == green_ip)
                && items.iter().all(|(ip, w)| *ip == green_ip || *w == 0.0);
            (cluster_names(&gke).await == [green.clone()] && on_green).then_some(())
        },
    )
    .await;
    let c = clusters.get(&name).await.expect("Cluster");
    assert_eq!(
        c.status.and_then(|s| s.active_instance).as_deref(),
        Some(green.as_str())
    );
    controllers.stop().await;
}

/// `rotor serve`'s Google flags reach the wiring: a Cloud DNS zone that is not
/// `PROJECT/MANAGED_ZONE` stops it at start, naming the flag, before anything is served.
#[test]
fn serve_refuses_a_cloud_dns_zone_without_its_project() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("gcp-token");
    std::fs::write(&token_file, TOKEN).expect("token file");
    let store = format!("sqlite:{}", dir.path().join("rotor.db").display());
    let listen = format!("127.0.0.1:{}", common::kubectl::free_port());
    let mut serve = common::process::command(&["serve", "--store", &store, "--listen", &listen]);
    serve
        .args([
            "--provider",
            "gcp",
            "--gcp-endpoint-url",
            "http://127.0.0.1:1/gcp",
        ])
        .arg("--gcp-access-token-file")
        .arg(&token_file)
        .args(["--traffic", "clouddns:just-a-zone"]);
    let stderr = common::process::serve_refuses(serve);
    assert!(
        stderr.contains("--traffic \"clouddns:just-a-zone\"")
            && stderr.contains("PROJECT/MANAGED_ZONE"),
        "{stderr}"
    );
}
