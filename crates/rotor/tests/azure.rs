//! The controllers on Azure Resource Manager through the wiring `rotor serve` uses (`--provider
//! azure --azure-endpoint-url URL --azure-access-token-file FILE`), against the simulator's ARM
//! front (`rotor sim` at `/azure`), where an AKS managed cluster is a member with a Kubernetes
//! API and a traffic address. Blue is made through ARM as a person would (a create-only PUT);
//! the swap runs to the end: green created at the target version with its agent pool, the
//! application migrated, traffic moved to green — through the embedded router, or through
//! Traffic Manager's weighted endpoints (`--traffic trafficmanager:…`) in a profile of the
//! simulator's — blue deleted through ARM. Every wait is bounded.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::controllers::Controllers;
use common::fleet::swap;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use rotor_api::{
    Cluster, ClusterSwap, NodePool, Phase, Provider, ShifterKind, SwapStrategy, TrafficEndpoint,
};
use rotor_providers::{InstanceSpec, InstanceState, Located, NodePoolSpec, Placement};

const LIMIT: Duration = Duration::from_secs(60);
const SUBSCRIPTION: &str = "5a1e7c3b-2d4f-4e6a-8b9c-0d1e2f3a4b5c";
const LOCATION: &str = "westeurope";
const GROUP: &str = "rotor-e2e";
const TOKEN: &str = "eyJ.rotor-e2e";

fn azure_cluster() -> Cluster {
    let mut c = rotor_api::sample_fleet(1).remove(0);
    c.metadata.name = Some("prod-azure-westeurope-a".into());
    c.metadata.managed_fields = None;
    c.spec.provider = Provider::Azure;
    c.spec.account = SUBSCRIPTION.into();
    c.spec.region = LOCATION.into();
    c.spec.kubernetes_version = "1.33".into();
    c.spec.node_pools = vec![NodePool {
        name: "general".into(),
        instance_type: "Standard_D4s_v5".into(),
        min_count: 1,
        max_count: 5,
        desired_count: 2,
    }];
    c.spec.config = BTreeMap::from([("resourceGroup".into(), GROUP.into())]);
    c
}

fn placement() -> Placement {
    Placement {
        account: SUBSCRIPTION.into(),
        region: LOCATION.into(),
    }
}

/// The AKS provider as the test's own hands on ARM.
fn aks(endpoint: &str) -> rotor_providers::aks::AksProvider {
    rotor_providers::aks::AksProvider::new(rotor_azure::AzureOptions {
        endpoint: Some(endpoint.into()),
        credential: Some(rotor_azure::credentials::static_token(TOKEN)),
    })
    .expect("AKS provider")
}

/// The managed clusters ARM lists in the subscription.
async fn cluster_names(endpoint: &str) -> Vec<String> {
    let url = format!(
        "{endpoint}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.ContainerService/\
         managedClusters?api-version={}",
        rotor_providers::aks::API_VERSION
    );
    let (status, _, body) = rotor_test_support::http::get_as(&url, Some(TOKEN))
        .await
        .expect("ARM lists");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let listed: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    let mut names: Vec<String> = listed["value"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// Whether the sample application answers a GET through the embedded router.
async fn answers(router: std::net::SocketAddr, endpoint: &str) -> bool {
    let url = format!(
        "http://{router}/{endpoint}/{}/{}",
        rotor::rehearsal::APP_NAMESPACE,
        rotor::rehearsal::APP_NAME
    );
    matches!(rotor_test_support::http::get(&url).await, Ok((200, _, _)))
}

/// The profile `--traffic trafficmanager:` names in the Traffic Manager runs.
const PROFILE: &str = "rotor-e2e-front";

/// What moves the swap's traffic.
#[derive(Clone, Copy, PartialEq)]
enum Traffic {
    /// The embedded router (`--traffic sim:LISTEN`), which the test sends requests through.
    Router,
    /// Traffic Manager (`--traffic trafficmanager:SUB/GROUP/PROFILE`), whose endpoints the
    /// test reads from the simulator.
    TrafficManager,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_on_aks_in_the_simulator_succeeds() {
    tokio::time::timeout(Duration::from_secs(120), swap_on_aks(Traffic::Router))
        .await
        .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_on_aks_and_traffic_manager_in_the_simulator_succeeds() {
    tokio::time::timeout(
        Duration::from_secs(120),
        swap_on_aks(Traffic::TrafficManager),
    )
    .await
    .expect("bounded");
}

/// rotor's Traffic Manager endpoints in the profile, as the simulator holds them:
/// (target, endpointStatus, weight).
fn tm_endpoints(sim: &rotor_sim::Sim) -> Vec<(String, String, i64)> {
    let Some(profile) = sim.traffic_manager_profile(SUBSCRIPTION, GROUP, PROFILE) else {
        return Vec::new();
    };
    let endpoints = profile["properties"]["endpoints"].as_array().cloned();
    endpoints
        .unwrap_or_default()
        .iter()
        .filter(|e| e["name"].as_str().is_some_and(|n| n.starts_with("rotor-")))
        .map(|e| {
            let p = &e["properties"];
            let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            (
                text(&p["target"]),
                text(&p["endpointStatus"]),
                p["weight"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

/// Whether all of the profile's enabled rotor endpoints target `ip`, at 100.
fn tm_all_on(sim: &rotor_sim::Sim, ip: &str) -> bool {
    let held = tm_endpoints(sim);
    let enabled: Vec<_> = held.iter().filter(|(_, s, _)| s == "Enabled").collect();
    !enabled.is_empty() && enabled.iter().all(|(t, _, w)| t == ip && *w == 100)
}

async fn swap_on_aks(traffic: Traffic) {
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
    // The operator's weighted profile, TTL 1 s.
    sim.add_traffic_manager_profile(SUBSCRIPTION, GROUP, PROFILE, "rotor-e2e", 1);
    let addr = sim.serve_loopback().await.expect("simulator serves");
    let endpoint = format!("http://{addr}/azure");
    let mut cluster = azure_cluster();
    let name = cluster.name_any();

    // Blue, running, with the sample application.
    let hands = aks(&endpoint);
    let at = Located::new(&hands, placement());
    let blue = InstanceSpec {
        cluster: name.clone(),
        name: name.clone(),
        kubernetes_version: "1.33".into(),
        idempotency_token: "made-by-a-person".into(),
        node_pools: vec![NodePoolSpec {
            name: "general".into(),
            instance_type: "Standard_D4s_v5".into(),
            min_count: 1,
            max_count: 5,
            desired_count: 2,
        }],
        config: cluster.spec.config.clone(),
    };
    common::eventually(LIMIT, "blue running", || async {
        let i = at.create_instance(&blue).await.ok()?;
        (i.state == InstanceState::Running).then_some(())
    })
    .await;
    let member = |instance: String| {
        let at = &at;
        async move {
            let kubeconfig = at.credentials(&instance).await.expect("credentials");
            rotor::client_for(kubeconfig.expose())
                .await
                .expect("client")
        }
    };
    common::fleet::apply_sample_app(&member(name.clone()).await).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = dir.path().join("azure-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("token file");
    let router = std::net::SocketAddr::from(([127, 0, 0, 1], common::kubectl::free_port()));
    let blue_ip = at
        .get_instance(&name)
        .await
        .expect("get")
        .and_then(|i| i.traffic_address)
        .expect("blue's traffic address")
        .ip()
        .to_string();
    let (shifter, layer) = match traffic {
        Traffic::Router => (ShifterKind::Sim, format!("sim:{router}")),
        Traffic::TrafficManager => (
            ShifterKind::TrafficManager,
            format!("trafficmanager:{SUBSCRIPTION}/{GROUP}/{PROFILE}"),
        ),
    };
    cluster.spec.traffic = TrafficEndpoint {
        shifter,
        endpoint: name.clone(),
    };
    let cp = common::start(Arc::new(rotor_store::memory::MemoryStore::default())).await;
    let wiring = rotor::controlplane::Wiring {
        providers: vec!["azure".into()],
        traffic: vec![layer],
        azure_endpoint_url: Some(endpoint.clone()),
        azure_access_token_file: Some(token_file.clone()),
        trafficmanager_propagation: Duration::ZERO,
        ..Default::default()
    };
    if traffic == Traffic::TrafficManager {
        refuses_a_missing_profile(&cp, &wiring).await;
    }
    let settings = rotor_controllers::Settings {
        poll_interval: Duration::from_millis(200),
        drain_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let controllers = Controllers::start(&cp, &wiring, settings).await;
    let clusters: Api<Cluster> = Api::all(cp.client.clone());
    clusters
        .create(&PostParams::default(), &cluster)
        .await
        .expect("Cluster");
    common::eventually(LIMIT, "blue adopted and taking the traffic", || async {
        let active = clusters.get(&name).await.ok()?.status?.active_instance;
        let taking = match traffic {
            Traffic::Router => answers(router, &name).await,
            Traffic::TrafficManager => {
                tm_endpoints(&sim) == [(blue_ip.clone(), "Enabled".into(), 100)]
            }
        };
        (active.as_deref() == Some(name.as_str()) && taking).then_some(())
    })
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
    let described = at
        .get_instance(&green)
        .await
        .expect("get")
        .expect("green in AKS");
    assert!(
        described.kubernetes_version.starts_with("1.34"),
        "{described:?}"
    );
    let apps: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(member(green.clone()).await, rotor::rehearsal::APP_NAMESPACE);
    apps.get(rotor::rehearsal::APP_NAME)
        .await
        .expect("the sample application migrated to green");
    common::eventually(LIMIT, "blue deleted through ARM", || async {
        (cluster_names(&endpoint).await == [green.clone()]).then_some(())
    })
    .await;
    match traffic {
        // Blue's listener is gone with it: what answers now is green.
        Traffic::Router => assert!(
            answers(router, &name).await,
            "green answers through the router"
        ),
        Traffic::TrafficManager => {
            let green_ip = at
                .get_instance(&green)
                .await
                .expect("get")
                .and_then(|i| i.traffic_address)
                .expect("green's traffic address")
                .ip()
                .to_string();
            assert_ne!(green_ip, blue_ip);
            common::eventually(LIMIT, "Traffic Manager all on green", || async {
                tm_all_on(&sim, &green_ip).then_some(())
            })
            .await;
        }
    }
    controllers.stop().await;
}

/// The wiring refuses a profile that does not exist before any controller runs, naming it.
async fn refuses_a_missing_profile(cp: &common::TestServer, wiring: &rotor::controlplane::Wiring) {
    let missing = rotor::controlplane::Wiring {
        traffic: vec![format!("trafficmanager:{SUBSCRIPTION}/{GROUP}/nope")],
        ..wiring.clone()
    };
    let refused = rotor::controlplane::controller_context(
        cp.client.clone(),
        &missing,
        rotor_controllers::Settings::default(),
    )
    .await
    .err()
    .expect("a missing profile is refused");
    let text = refused.to_string();
    assert!(
        text.contains("--traffic \"trafficmanager:")
            && text.contains("trafficManagerProfiles/nope"),
        "{text}"
    );
}

/// `rotor serve`'s Traffic Manager flag reaches the wiring: a scope that is neither
/// `SUBSCRIPTION/RESOURCE_GROUP/PROFILE` nor `SUBSCRIPTION/RESOURCE_GROUP` stops it at start,
/// naming the flag and both forms, before any call.
#[test]
fn serve_refuses_a_traffic_manager_scope_that_is_neither_a_profile_nor_a_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("azure-token");
    std::fs::write(&token_file, TOKEN).expect("token file");
    let store = format!("sqlite:{}", dir.path().join("rotor.db").display());
    let listen = format!("127.0.0.1:{}", common::kubectl::free_port());
    let mut serve = common::process::command(&["serve", "--store", &store, "--listen", &listen]);
    serve
        .args(["--azure-endpoint-url", "http://127.0.0.1:1/azure"])
        .arg("--azure-access-token-file")
        .arg(&token_file)
        .args(["--traffic", "trafficmanager:sub-1/rg/front/extra"]);
    let stderr = common::process::serve_refuses(serve);
    assert!(
        stderr.contains("--traffic \"trafficmanager:sub-1/rg/front/extra\"")
            && stderr.contains("SUBSCRIPTION/RESOURCE_GROUP/PROFILE (one profile) nor")
            && stderr.contains("SUBSCRIPTION/RESOURCE_GROUP (a profile per endpoint)"),
        "{stderr}"
    );
}

/// `rotor serve`'s Azure flags reach the wiring: a plain-http ARM endpoint off this machine
/// (where a bearer token would cross the network in clear) stops it at start, naming the flag.
#[test]
fn serve_refuses_plain_http_to_a_remote_azure_endpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sqlite:{}", dir.path().join("rotor.db").display());
    let listen = format!("127.0.0.1:{}", common::kubectl::free_port());
    let mut serve = common::process::command(&["serve", "--store", &store, "--listen", &listen]);
    serve
        .args(["--provider", "azure"])
        .args(["--azure-endpoint-url", "http://192.0.2.10/azure"]);
    let stderr = common::process::serve_refuses(serve);
    assert!(
        stderr.contains("--provider azure") && stderr.contains("plain http"),
        "{stderr}"
    );
}
