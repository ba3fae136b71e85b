//! The GKE provider through Google's official client (`google-cloud-container-v1`) against
//! `rotor sim`'s Google Cloud front (`/gcp`), where every GKE cluster is a simulated member:
//! create until running, describe, idempotent retries, a foreign cluster refused, delete until
//! gone, failed creates, throttling, and credentials that reach the member's API.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use google_cloud_auth::credentials::Credentials;
use google_cloud_container_v1::client::ClusterManager;
use google_cloud_container_v1::model::operation::{Status as OpStatus, Type as OpType};
use rotor_providers::gke::{
    ClusterCredentials, GkeOptions, GkeProvider, LABEL_CLUSTER, LABEL_TOKEN, static_token,
};
use rotor_providers::{
    Instance, InstanceSpec, InstanceState, Located, NodePoolSpec, Placement, ProviderError,
    idempotency_token, instance_name,
};
use rotor_sim::{CloudConfig, Sim, SimConfig};
use rotor_test_support::members::list_namespaces;

const LIMIT: Duration = Duration::from_secs(20);
const TOKEN: &str = "ya29.rotor-test";
const PROJECT: &str = "rotor-prod-1";

fn placement(location: &str) -> Placement {
    Placement {
        account: PROJECT.into(),
        region: location.into(),
    }
}

fn spec(swap: &str) -> InstanceSpec {
    InstanceSpec {
        cluster: "prod-gcp-europe-west1-a".into(),
        name: instance_name("prod-gcp-europe-west1-a", swap, 0),
        kubernetes_version: "1.34".into(),
        idempotency_token: idempotency_token("prod-gcp-europe-west1-a", swap, 0),
        node_pools: vec![
            NodePoolSpec {
                name: "general".into(),
                instance_type: "e2-standard-4".into(),
                min_count: 1,
                max_count: 5,
                desired_count: 3,
            },
            NodePoolSpec {
                name: "batch".into(),
                instance_type: "c3-standard-8".into(),
                min_count: 0,
                max_count: 4,
                desired_count: 1,
            },
        ],
        config: BTreeMap::from([("diskSizeGb".to_string(), "100".to_string())]),
    }
}

/// A simulator serving on a loopback port; `failure_rate` of its creates end in ERROR.
async fn simulator(failure_rate: f64) -> (Arc<Sim>, String) {
    let sim = Sim::new(SimConfig {
        cloud: CloudConfig {
            create_latency: Duration::from_millis(50),
            delete_latency: Duration::from_millis(20),
            create_failure_rate: failure_rate,
        },
        nodes: 1,
        ..SimConfig::default()
    });
    let addr = sim.serve_loopback().await.expect("serve the simulator");
    (sim, format!("http://{addr}/gcp"))
}

async fn provider(endpoint: &str) -> GkeProvider {
    GkeProvider::new(GkeOptions {
        endpoint: Some(endpoint.to_string()),
        credentials: Some(static_token(TOKEN)),
    })
    .await
    .expect("GKE provider")
}

/// The official client directly, to look at what the provider did.
async fn client(endpoint: &str) -> ClusterManager {
    // As the provider does: reqwest is built without a crypto provider of its own.
    let _ = rustls::crypto::ring::default_provider().install_default();
    ClusterManager::builder()
        .with_endpoint(endpoint)
        .with_credentials(Credentials::from(static_token(TOKEN)))
        .build()
        .await
        .expect("GKE client")
}

async fn cluster_names(gke: &ClusterManager, location: &str) -> Vec<String> {
    let listed = gke
        .list_clusters()
        .set_parent(format!("projects/{PROJECT}/locations/{location}"))
        .send()
        .await
        .expect("list clusters");
    listed.clusters.into_iter().map(|c| c.name).collect()
}

/// Calls `create_instance` until the instance runs (the simulator's create latency).
async fn create_until_running(p: &Located<'_>, s: &InstanceSpec) -> Instance {
    let deadline = Instant::now() + LIMIT;
    loop {
        let got = p.create_instance(s).await.expect("create");
        if got.state == InstanceState::Running {
            return got;
        }
        assert_eq!(got.state, InstanceState::Creating, "{got:?}");
        assert!(Instant::now() < deadline, "not running: {got:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn gke_create_runs_is_idempotent_and_describes_what_gke_holds() {
    let (sim, endpoint) = simulator(0.0).await;
    let provider = provider(&endpoint).await;
    let p = Located::new(&provider, placement("europe-west1"));
    let s = spec("swap-1");

    let first = p.create_instance(&s).await.expect("create");
    assert_eq!(first.state, InstanceState::Creating, "{first:?}");
    assert_eq!(first.endpoint, None, "no endpoint while provisioning");
    let running = create_until_running(&p, &s).await;
    assert_eq!(running.kubernetes_version, "1.34");
    let endpoint_url = running.endpoint.clone().expect("endpoint");
    assert!(
        endpoint_url.starts_with("https://127.0.0.1:"),
        "{endpoint_url}"
    );
    assert_eq!(
        p.get_instance(&s.name).await.expect("describe"),
        Some(running.clone())
    );
    // A retry after it runs asks for the same instance.
    assert_eq!(p.create_instance(&s).await.expect("retry"), running);
    assert_eq!(sim.cloud.created_total(), 1);

    let gke = client(&endpoint).await;
    assert_eq!(
        cluster_names(&gke, "europe-west1").await,
        vec![s.name.clone()]
    );
    let cluster = gke
        .get_cluster()
        .set_name(format!(
            "projects/{PROJECT}/locations/europe-west1/clusters/{}",
            s.name
        ))
        .send()
        .await
        .expect("get");
    assert_eq!(
        cluster.resource_labels.get(LABEL_TOKEN),
        Some(&s.idempotency_token)
    );
    assert_eq!(
        cluster
            .resource_labels
            .get(LABEL_CLUSTER)
            .map(String::as_str),
        Some("prod-gcp-europe-west1-a")
    );
    let pools: Vec<(&str, &str, i32, i32, i32)> = cluster
        .node_pools
        .iter()
        .map(|n| {
            let config = n.config.as_ref().expect("config");
            let auto = n.autoscaling.as_ref().expect("autoscaling");
            assert!(auto.enabled);
            assert_eq!(config.disk_size_gb, 100);
            (
                n.name.as_str(),
                config.machine_type.as_str(),
                n.initial_node_count,
                auto.min_node_count,
                auto.max_node_count,
            )
        })
        .collect();
    assert_eq!(
        pools,
        vec![
            ("general", "e2-standard-4", 3, 1, 5),
            ("batch", "c3-standard-8", 1, 0, 4)
        ]
    );
    assert_eq!(p.get_instance("never-made").await.expect("describe"), None);
}

#[tokio::test]
async fn gke_the_official_client_follows_the_simulators_operations() {
    let (_sim, endpoint) = simulator(0.0).await;
    let gke = client(&endpoint).await;
    let parent = format!("projects/{PROJECT}/locations/us-central1");
    let pool = google_cloud_container_v1::model::NodePool::new()
        .set_name("default")
        .set_initial_node_count(1);
    let op = gke
        .create_cluster()
        .set_parent(&parent)
        .set_cluster(
            google_cloud_container_v1::model::Cluster::new()
                .set_name("direct")
                .set_node_pools([pool]),
        )
        .send()
        .await
        .expect("create");
    assert_eq!(op.operation_type, OpType::CreateCluster);
    assert_eq!(op.status, OpStatus::Running);
    let deadline = Instant::now() + LIMIT;
    let done = loop {
        let got = gke
            .get_operation()
            .set_name(format!("{parent}/operations/{}", op.name))
            .send()
            .await
            .expect("get operation");
        if got.status == OpStatus::Done {
            break got;
        }
        assert!(Instant::now() < deadline, "operation not done: {got:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(done.error.is_none(), "{done:?}");
    assert!(done.target_link.ends_with("/clusters/direct"), "{done:?}");
    let again = gke
        .create_cluster()
        .set_parent(&parent)
        .set_cluster(
            google_cloud_container_v1::model::Cluster::new()
                .set_name("direct")
                .set_node_pools([google_cloud_container_v1::model::NodePool::new()
                    .set_name("other")
                    .set_initial_node_count(1)]),
        )
        .send()
        .await
        .expect_err("a second create of the name");
    let status = again.status().expect("a google.rpc.Status");
    assert_eq!(
        status.code,
        google_cloud_gax::error::rpc::Code::AlreadyExists
    );
}

#[tokio::test]
async fn gke_another_swaps_cluster_of_the_same_name_is_refused_not_adopted() {
    let (sim, endpoint) = simulator(0.0).await;
    let provider = provider(&endpoint).await;
    let p = Located::new(&provider, placement("europe-west1"));
    let ours = spec("swap-1");
    p.create_instance(&ours).await.expect("create");
    let theirs = InstanceSpec {
        idempotency_token: idempotency_token("someone-else", "swap-9", 0),
        ..ours.clone()
    };
    match p.create_instance(&theirs).await {
        Err(ProviderError::Refused {
            status: 409,
            message,
            ..
        }) => assert!(message.contains(LABEL_TOKEN), "{message}"),
        other => panic!("adopted or wrong error: {other:?}"),
    }
    assert_eq!(sim.cloud.created_total(), 1, "nothing else was created");
    // The same name in another location is another cluster, and ours.
    let elsewhere = Located::new(&provider, placement("us-east1"));
    elsewhere
        .create_instance(&theirs)
        .await
        .expect("create elsewhere");
    assert_eq!(sim.cloud.created_total(), 2);
}

#[tokio::test]
async fn gke_delete_takes_the_cluster_until_it_is_gone() {
    let (sim, endpoint) = simulator(0.0).await;
    let provider = provider(&endpoint).await;
    let p = Located::new(&provider, placement("europe-west1"));
    let s = spec("swap-1");
    create_until_running(&p, &s).await;
    p.delete_instance(&s.name).await.expect("delete");
    let deleting = p.get_instance(&s.name).await.expect("describe");
    assert_eq!(deleting.map(|i| i.state), Some(InstanceState::Deleting));
    // A repeated delete while GKE deletes it is fine.
    p.delete_instance(&s.name).await.expect("delete again");
    let deadline = Instant::now() + LIMIT;
    while p.get_instance(&s.name).await.expect("describe").is_some() {
        assert!(Instant::now() < deadline, "still there");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p.delete_instance(&s.name)
        .await
        .expect("deleting a missing instance is Ok");
    assert_eq!(sim.cloud.deleted_total(), 1);
    assert!(
        cluster_names(&client(&endpoint).await, "europe-west1")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn gke_a_failed_create_reports_failed_and_an_outage_creates_nothing() {
    let (sim, endpoint) = simulator(1.0).await;
    let provider = provider(&endpoint).await;
    let p = Located::new(&provider, placement("europe-west1"));
    let s = spec("swap-1");
    let deadline = Instant::now() + LIMIT;
    let failed = loop {
        let got = p.create_instance(&s).await.expect("create");
        if got.state == InstanceState::Failed {
            break got;
        }
        assert_eq!(got.state, InstanceState::Creating, "{got:?}");
        assert!(Instant::now() < deadline, "not failed: {got:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        failed.message.contains("capacity"),
        "GKE's words: {failed:?}"
    );

    sim.cloud.fail_next_creates(1);
    let other = spec("swap-2");
    let err = p.create_instance(&other).await.expect_err("outage");
    assert!(
        matches!(err, ProviderError::Unavailable { .. }) && err.is_retryable(),
        "{err:?}"
    );
    assert_eq!(p.get_instance(&other.name).await.expect("describe"), None);
}

#[tokio::test]
async fn gke_throttling_is_rate_limited_and_retryable() {
    let (sim, endpoint) = simulator(0.0).await;
    let provider = provider(&endpoint).await;
    let p = Located::new(&provider, placement("europe-west1"));
    let s = spec("swap-1");
    sim.cloud
        .rate_limit_next_calls(1, Some(Duration::from_secs(7)));
    let err = p.create_instance(&s).await.expect_err("throttled");
    assert_eq!(
        err.rate_limited(),
        Some(Some(Duration::from_secs(7))),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(
        sim.cloud.created_total(),
        0,
        "a throttled call changes nothing"
    );
    p.create_instance(&s).await.expect("served again");
    assert_eq!(sim.cloud.created_total(), 1);
}

#[tokio::test]
async fn gke_bad_input_is_refused_naming_the_field_and_creates_nothing() {
    let (sim, endpoint) = simulator(0.0).await;
    let provider = provider(&endpoint).await;
    let p = Located::new(&provider, placement("europe-west1"));
    let refused = |r: Result<Instance, ProviderError>, field: &str| match r {
        Err(ProviderError::Refused {
            status: 400,
            message,
            ..
        }) => assert!(message.contains(field), "{field} not named: {message}"),
        other => panic!("{field}: not refused: {other:?}"),
    };
    let mut s = spec("swap-1");
    s.node_pools[1].name = "Batch_Pool".into();
    refused(p.create_instance(&s).await, "spec.nodePools[1].name");
    s = spec("swap-1");
    s.node_pools.clear();
    refused(p.create_instance(&s).await, "spec.nodePools");
    s = spec("swap-1");
    s.config.insert("diskSizeGb".into(), "lots".into());
    refused(p.create_instance(&s).await, "spec.config.diskSizeGb");
    s = spec("swap-1");
    s.kubernetes_version = "1.99".into();
    refused(p.create_instance(&s).await, "cluster.initialClusterVersion");
    let nowhere = Located::new(
        &provider,
        Placement {
            account: String::new(),
            region: "europe-west1".into(),
        },
    );
    refused(
        nowhere.create_instance(&spec("swap-1")).await,
        "spec.account",
    );
    assert_eq!(sim.cloud.created_total(), 0);
}

#[tokio::test]
async fn gke_credentials_wait_for_running_and_carry_no_secret_in_exec_mode() {
    let (_sim, endpoint) = simulator(0.0).await;
    let provider = provider(&endpoint).await;
    let p = Located::new(&provider, placement("europe-west1"));
    let s = spec("swap-1");
    p.create_instance(&s).await.expect("create");
    let early = p
        .credentials(&s.name)
        .await
        .expect_err("still provisioning");
    assert!(matches!(early, ProviderError::NotReady { .. }), "{early:?}");
    let running = create_until_running(&p, &s).await;
    let kubeconfig = p.credentials(&s.name).await.expect("credentials");
    let k: serde_json::Value = serde_json::from_str(kubeconfig.expose()).expect("json");
    assert_eq!(
        k["clusters"][0]["cluster"]["server"].as_str(),
        running.endpoint.as_deref()
    );
    assert!(k["clusters"][0]["cluster"]["certificate-authority-data"].is_string());
    assert_eq!(
        k["users"][0]["user"]["exec"]["command"],
        "gke-gcloud-auth-plugin"
    );
    assert!(
        !kubeconfig.expose().contains(TOKEN),
        "no token in an exec kubeconfig"
    );
    match p.credentials("never-made").await {
        Err(ProviderError::Refused { status: 404, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn gke_token_mode_credentials_reach_the_clusters_api_in_the_simulator() {
    let (_sim, endpoint) = simulator(0.0).await;
    let provider = provider(&endpoint)
        .await
        .with_cluster_credentials(ClusterCredentials::Token);
    let p = Located::new(&provider, placement("europe-west1"));
    let s = spec("swap-1");
    create_until_running(&p, &s).await;
    let kubeconfig = p.credentials(&s.name).await.expect("credentials");
    assert!(format!("{kubeconfig:?}").contains("redacted"));
    assert!(kubeconfig.expose().contains(TOKEN), "rotor's own token");
    let listed = list_namespaces(kubeconfig.expose())
        .await
        .expect("the token is accepted");
    assert!(
        listed
            .items
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some("default"))
    );
    let forged = kubeconfig.expose().replace(TOKEN, "ya29.forged");
    match list_namespaces(&forged).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 401, "{status:?}"),
        other => panic!("a forged token was not refused: {other:?}"),
    }
}

/// The controllers call providers on tokio's worker threads (2 MiB of stack): a whole
/// lifecycle must fit there in the unoptimised build too (the model's types are large; with
/// builder chains a create did not).
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn gke_a_lifecycle_fits_in_a_tokio_workers_stack() {
    let (_sim, endpoint) = simulator(0.0).await;
    let on_worker = tokio::spawn(async move {
        let provider = provider(&endpoint).await;
        let p = Located::new(&provider, placement("europe-west1"));
        let s = spec("swap-1");
        create_until_running(&p, &s).await;
        p.credentials(&s.name).await.expect("credentials");
        p.delete_instance(&s.name).await.expect("delete");
        p.get_instance(&s.name)
            .await
            .expect("describe")
            .map(|i| i.state)
    });
    assert_eq!(
        on_worker.await.expect("the worker did not fail"),
        Some(InstanceState::Deleting)
    );
}

/// An unreachable GKE is Unavailable (retryable) within seconds: the client's own retries are
/// bounded (gax's default would try for a minute), rotor's backoff does the rest.
#[tokio::test]
async fn gke_an_unreachable_api_is_unavailable_quickly() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let provider = provider(&format!("http://127.0.0.1:{port}/gcp")).await;
    let p = Located::new(&provider, placement("europe-west1"));
    let started = Instant::now();
    let err = p.get_instance("blue").await.expect_err("nothing listens");
    assert!(
        matches!(err, ProviderError::Unavailable { .. }) && err.is_retryable(),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}
