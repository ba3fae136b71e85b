//! The AKS provider through rotor-azure (azure_core's pipeline, real HTTP) against
//! `rotor sim`'s Azure Resource Manager front (`/azure`), where every managed cluster is a
//! simulated member: create until running, describe, idempotent retries, a foreign cluster
//! refused, delete until gone, failed creates, throttling, bad input, and credentials that reach
//! the member's API.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rotor_azure::{Arm, AzureOptions, ConfigError, Method};
use rotor_providers::aks::{AKS_AAD_SERVER_ID, API_VERSION, AksProvider, static_token};
use rotor_providers::{
    ClusterCredentials, Instance, InstanceSpec, InstanceState, Located, NodePoolSpec, Placement,
    ProviderError, idempotency_token, instance_name,
};
use rotor_sim::{CloudConfig, Sim, SimConfig};
use rotor_test_support::members::list_namespaces;

const LIMIT: Duration = Duration::from_secs(20);
const TOKEN: &str = "sim-azure-rotor-test";
const SUBSCRIPTION: &str = "00000000-0000-0000-0000-00000000a0b1";
const GROUP: &str = "rotor-blue-green";

fn placement(location: &str) -> Placement {
    Placement {
        account: SUBSCRIPTION.into(),
        region: location.into(),
    }
}

fn spec(swap: &str) -> InstanceSpec {
    let pool = |name: &str, vm: &str, min, max, desired| NodePoolSpec {
        name: name.into(),
        instance_type: vm.into(),
        min_count: min,
        max_count: max,
        desired_count: desired,
    };
    InstanceSpec {
        cluster: "prod-azure-westeurope-a".into(),
        name: instance_name("prod-azure-westeurope-a", swap, 0),
        kubernetes_version: "1.34".into(),
        idempotency_token: idempotency_token("prod-azure-westeurope-a", swap, 0),
        node_pools: vec![
            pool("system", "Standard_D4s_v5", 1, 5, 3),
            pool("batch", "Standard_D8s_v5", 0, 4, 1),
        ],
        config: BTreeMap::from([("resourceGroup".to_string(), GROUP.to_string())]),
    }
}

/// A simulator serving on a loopback port; `failure_rate` of its creates end Failed.
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
    (sim, format!("http://{addr}/azure"))
}

fn options(endpoint: &str) -> AzureOptions {
    AzureOptions {
        endpoint: Some(endpoint.to_string()),
        credential: Some(static_token(TOKEN)),
    }
}

fn provider(endpoint: &str) -> AksProvider {
    AksProvider::new(options(endpoint)).expect("AKS provider")
}

/// ARM directly, to look at what the provider did.
async fn arm_get(endpoint: &str, path: &str) -> serde_json::Value {
    let arm = Arm::new(options(endpoint)).expect("ARM client");
    let answer = arm
        .send(Method::Get, arm.url(path, API_VERSION), None, &[])
        .await
        .expect("ARM GET");
    answer.json().expect("JSON")
}

fn cluster_path(name: &str) -> String {
    format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.ContainerService/managedClusters/{name}"
    )
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
async fn aks_create_runs_is_idempotent_and_describes_what_arm_holds() {
    let (sim, endpoint) = simulator(0.0).await;
    let provider = provider(&endpoint);
    let p = Located::new(&provider, placement("westeurope"));
    let s = spec("swap-1");

    let first = p.create_instance(&s).await.expect("create");
    assert_eq!(first.state, InstanceState::Creating, "{first:?}");
    assert_eq!(first.endpoint, None, "no endpoint while creating");
    let running = create_until_running(&p, &s).await;
    assert_eq!(running.kubernetes_version, "1.34");
    let url = running.endpoint.clone().expect("endpoint");
    assert!(
        url.starts_with("https://127.0.0.1:"),
        "over TLS, as AKS serves: {url}"
    );
    assert_eq!(
        p.get_instance(&s.name).await.expect("describe"),
        Some(running.clone())
    );
    // A retry after it runs asks for the same instance.
    assert_eq!(p.create_instance(&s).await.expect("retry"), running);
    assert_eq!(sim.cloud.created_total(), 1);

    let c = arm_get(&endpoint, &cluster_path(&s.name)).await;
    assert_eq!(c["tags"]["rotor-token"], s.idempotency_token.as_str());
    assert_eq!(c["tags"]["rotor-cluster"], "prod-azure-westeurope-a");
    assert_eq!(c["location"], "westeurope");
    let pools: Vec<(&str, &str, &str, u64, u64, u64)> = c["properties"]["agentPoolProfiles"]
        .as_array()
        .expect("pools")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["mode"].as_str().unwrap(),
                p["vmSize"].as_str().unwrap(),
                p["count"].as_u64().unwrap(),
                p["minCount"].as_u64().unwrap(),
                p["maxCount"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        pools,
        vec![
            ("system", "System", "Standard_D4s_v5", 3, 1, 5),
            ("batch", "User", "Standard_D8s_v5", 1, 0, 4)
        ]
    );
    assert_eq!(p.get_instance("never-made").await.expect("describe"), None);
}

#[tokio::test]
async fn aks_a_restarted_provider_finds_and_retries_its_cluster() {
    let (sim, endpoint) = simulator(0.0).await;
    let s = spec("swap-1");
    let running = {
        let provider = provider(&endpoint);
        create_until_running(&Located::new(&provider, placement("westeurope")), &s).await
    };
    // A new process knows only the placement and the name: the subscription's list finds it.
    let fresh = provider(&endpoint);
    let p = Located::new(&fresh, placement("westeurope"));
    assert_eq!(
        p.get_instance(&s.name).await.expect("describe"),
        Some(running.clone())
    );
    // Its retried create is refused 412 by ARM, reads the cluster, and finds its own token.
    let fresh = provider(&endpoint);
    let p = Located::new(&fresh, placement("westeurope"));
    assert_eq!(p.create_instance(&s).await.expect("retry"), running);
    assert_eq!(sim.cloud.created_total(), 1);
    // Not in another location.
    let elsewhere = Located::new(&fresh, placement("northeurope"));
    assert_eq!(
        elsewhere.get_instance(&s.name).await.expect("describe"),
        None
    );
}

#[tokio::test]
async fn aks_another_swaps_cluster_of_the_same_name_is_refused_not_adopted() {
    let (sim, endpoint) = simulator(0.0).await;
    let provider = provider(&endpoint);
    let p = Located::new(&provider, placement("westeurope"));
    let ours = spec("swap-1");
    p.create_instance(&ours).await.expect("create");
    let theirs = InstanceSpec {
        idempotency_token: idempotency_token("someone-else", "swap-9", 0),
        ..ours.clone()
    };
    // Through a fresh provider too: the If-None-Match PUT is refused 412, the tag decides.
    for provider in [&provider, &self::provider(&endpoint)] {
        let p = Located::new(provider, placement("westeurope"));
        match p.create_instance(&theirs).await {
            Err(ProviderError::Refused {
                status: 409,
                message,
                ..
            }) => {
                assert!(message.contains("rotor-token"), "{message}")
            }
            other => panic!("adopted or wrong error: {other:?}"),
        }
    }
    assert_eq!(sim.cloud.created_total(), 1, "nothing else was created");
    let c = arm_get(&endpoint, &cluster_path(&ours.name)).await;
    assert_eq!(
        c["tags"]["rotor-token"],
        ours.idempotency_token.as_str(),
        "never updated"
    );
}

#[tokio::test]
async fn aks_delete_takes_the_cluster_until_it_is_gone() {
    let (sim, endpoint) = simulator(0.0).await;
    let provider = provider(&endpoint);
    let p = Located::new(&provider, placement("westeurope"));
    let s = spec("swap-1");
    create_until_running(&p, &s).await;
    p.delete_instance(&s.name).await.expect("delete");
    let deleting = p.get_instance(&s.name).await.expect("describe");
    assert_eq!(deleting.map(|i| i.state), Some(InstanceState::Deleting));
    p.delete_instance(&s.name)
        .await
        .expect("delete again while deleting");
    let deadline = Instant::now() + LIMIT;
    while p.get_instance(&s.name).await.expect("describe").is_some() {
        assert!(Instant::now() < deadline, "still there");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p.delete_instance(&s.name)
        .await
        .expect("deleting a missing instance is Ok");
    assert_eq!(sim.cloud.deleted_total(), 1);
}

#[tokio::test]
async fn aks_a_failed_create_reports_the_operations_error_and_an_outage_creates_nothing() {
    let (sim, endpoint) = simulator(1.0).await;
    let provider = provider(&endpoint);
    let p = Located::new(&provider, placement("westeurope"));
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
        failed.message.starts_with("AllocationFailed: ") && failed.message.contains("capacity"),
        "the operation's error: {failed:?}"
    );

    // Three 503s: the first try and the client's two retries.
    sim.cloud.fail_next_creates(3);
    let other = spec("swap-2");
    let err = p.create_instance(&other).await.expect_err("outage");
    assert!(
        matches!(err, ProviderError::Unavailable { .. }) && err.is_retryable(),
        "{err:?}"
    );
    assert_eq!(p.get_instance(&other.name).await.expect("describe"), None);
    // One 503 only: the client's retry creates it.
    sim.cloud.fail_next_creates(1);
    let created = p
        .create_instance(&other)
        .await
        .expect("retried by the client");
    assert_eq!(created.state, InstanceState::Creating);
}

#[tokio::test]
async fn aks_throttling_is_rate_limited_with_the_retry_after() {
    let (sim, endpoint) = simulator(0.0).await;
    let provider = provider(&endpoint);
    let p = Located::new(&provider, placement("westeurope"));
    let s = spec("swap-1");
    sim.cloud
        .rate_limit_next_calls(1, Some(Duration::from_secs(7)));
    let started = Instant::now();
    let err = p.create_instance(&s).await.expect_err("throttled");
    assert_eq!(
        err.rate_limited(),
        Some(Some(Duration::from_secs(7))),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the client did not wait it out"
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
async fn aks_bad_input_is_refused_naming_the_field_and_creates_nothing() {
    let (sim, endpoint) = simulator(0.0).await;
    let provider = provider(&endpoint);
    let p = Located::new(&provider, placement("westeurope"));
    let refused = |r: Result<Instance, ProviderError>, field: &str| match r {
        Err(ProviderError::Refused {
            status: 400,
            message,
            ..
        }) => {
            assert!(message.contains(field), "{field} not named: {message}")
        }
        other => panic!("{field}: not refused: {other:?}"),
    };
    let mut s = spec("swap-1");
    s.config.remove("resourceGroup");
    refused(p.create_instance(&s).await, "spec.config.resourceGroup");
    s = spec("swap-1");
    s.node_pools[1].name = "batchpool1234".into();
    refused(p.create_instance(&s).await, "spec.nodePools[1].name");
    s = spec("swap-1");
    s.node_pools.clear();
    refused(p.create_instance(&s).await, "spec.nodePools");
    s = spec("swap-1");
    s.kubernetes_version = "1.99".into();
    refused(p.create_instance(&s).await, "properties.kubernetesVersion");
    let nowhere = Located::new(&provider, placement(""));
    refused(
        nowhere.create_instance(&spec("swap-1")).await,
        "spec.region",
    );
    assert_eq!(sim.cloud.created_total(), 0);
}

#[tokio::test]
async fn aks_credentials_reach_the_members_api_and_a_wrong_token_does_not() {
    let (_sim, endpoint) = simulator(0.0).await;
    let provider = provider(&endpoint);
    let p = Located::new(&provider, placement("westeurope"));
    let s = spec("swap-1");
    p.create_instance(&s).await.expect("create");
    let early = p.credentials(&s.name).await.expect_err("still creating");
    assert!(matches!(early, ProviderError::NotReady { .. }), "{early:?}");
    let running = create_until_running(&p, &s).await;
    let kubeconfig = p.credentials(&s.name).await.expect("credentials");
    assert!(format!("{kubeconfig:?}").contains("redacted"));
    let k: serde_json::Value = serde_json::from_str(kubeconfig.expose()).expect("JSON is YAML");
    assert_eq!(
        k["clusters"][0]["cluster"]["server"].as_str(),
        running.endpoint.as_deref()
    );
    let listed = list_namespaces(kubeconfig.expose())
        .await
        .expect("the token is accepted");
    assert!(
        listed
            .items
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some("default"))
    );
    let token = k["users"][0]["user"]["token"]
        .as_str()
        .expect("a local account's token");
    let forged = kubeconfig.expose().replace(token, "forged-token");
    match list_namespaces(&forged).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 401, "{status:?}"),
        other => panic!("a forged token was not refused: {other:?}"),
    }
    match p.credentials("never-made").await {
        Err(ProviderError::Refused { status: 404, .. }) => {}
        other => panic!("{other:?}"),
    }
}

fn azure_ad(mut s: InstanceSpec) -> InstanceSpec {
    s.config.insert("aad".into(), "managed".into());
    s.config.insert("aadTenantId".into(), "tenant-rotor".into());
    s
}

#[tokio::test]
async fn aks_azure_ad_clusters_name_kubelogin_and_token_mode_brings_rotors_own_token() {
    let (_sim, endpoint) = simulator(0.0).await;
    let s = azure_ad(spec("swap-aad"));
    let exec = provider(&endpoint);
    let p = Located::new(&exec, placement("westeurope"));
    create_until_running(&p, &s).await;
    let held = arm_get(&endpoint, &cluster_path(&s.name)).await;
    assert_eq!(held["properties"]["aadProfile"]["tenantID"], "tenant-rotor");

    let as_written = p.credentials(&s.name).await.expect("credentials");
    let k: serde_json::Value = serde_json::from_str(as_written.expose()).expect("JSON is YAML");
    let user = &k["users"][0]["user"];
    assert_eq!(user["exec"]["command"], "kubelogin", "{user}");
    let args = user["exec"]["args"].as_array().expect("args");
    assert!(args.iter().any(|a| a == AKS_AAD_SERVER_ID), "{args:?}");
    assert!(
        user.get("token").is_none(),
        "no credential in an Azure AD kubeconfig"
    );

    let token_mode = provider(&endpoint).with_cluster_credentials(ClusterCredentials::Token);
    let p = Located::new(&token_mode, placement("westeurope"));
    let kubeconfig = p.credentials(&s.name).await.expect("credentials");
    let k: serde_json::Value = serde_json::from_str(kubeconfig.expose()).expect("JSON");
    assert_eq!(k["users"][0]["user"]["token"], TOKEN);
    assert!(k["users"][0]["user"].get("exec").is_none());
    list_namespaces(kubeconfig.expose())
        .await
        .expect("the API takes a token of an identity acting in the subscription");
    let stranger = kubeconfig.expose().replace(TOKEN, "sim-azure-stranger");
    match list_namespaces(&stranger).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 401, "{status:?}"),
        other => panic!("a token that never acted in the subscription: {other:?}"),
    }

    // A local account's kubeconfig already carries a credential: token mode keeps it.
    let local = spec("swap-local");
    create_until_running(&p, &local).await;
    let kubeconfig = p.credentials(&local.name).await.expect("credentials");
    let k: serde_json::Value = serde_json::from_str(kubeconfig.expose()).expect("JSON");
    assert_ne!(k["users"][0]["user"]["token"], TOKEN);
    list_namespaces(kubeconfig.expose())
        .await
        .expect("the local account's token");
}

/// Hands out `token-for-{scope}` and records the scopes asked for.
#[derive(Debug, Default)]
struct ScopedTokens(std::sync::Mutex<Vec<String>>);

#[async_trait::async_trait]
impl azure_core::credentials::TokenCredential for ScopedTokens {
    async fn get_token(
        &self,
        scopes: &[&str],
        _: Option<azure_core::credentials::TokenRequestOptions<'_>>,
    ) -> azure_core::Result<azure_core::credentials::AccessToken> {
        let scope = scopes.join(" ");
        self.0.lock().unwrap().push(scope.clone());
        Ok(azure_core::credentials::AccessToken::new(
            azure_core::credentials::Secret::new(format!("token-for-{scope}")),
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

#[tokio::test]
async fn aks_token_mode_asks_for_the_kubeconfigs_server_application() {
    let (_sim, endpoint) = simulator(0.0).await;
    let s = azure_ad(spec("swap-scope"));
    let exec = provider(&endpoint);
    create_until_running(&Located::new(&exec, placement("westeurope")), &s).await;
    let scopes = Arc::new(ScopedTokens::default());
    let token_mode = AksProvider::new(AzureOptions {
        endpoint: Some(endpoint.clone()),
        credential: Some(scopes.clone() as Arc<dyn azure_core::credentials::TokenCredential>),
    })
    .expect("AKS provider")
    .with_cluster_credentials(ClusterCredentials::Token);
    let p = Located::new(&token_mode, placement("westeurope"));
    let kubeconfig = p.credentials(&s.name).await.expect("credentials");
    let k: serde_json::Value = serde_json::from_str(kubeconfig.expose()).expect("JSON");
    let aks_scope = format!("{AKS_AAD_SERVER_ID}/.default");
    assert_eq!(
        k["users"][0]["user"]["token"],
        format!("token-for-{aks_scope}")
    );
    let asked = scopes.0.lock().unwrap().clone();
    assert!(asked.contains(&aks_scope), "{asked:?}");
    assert!(
        asked.contains(&rotor_azure::MANAGEMENT_SCOPE.to_string()),
        "ARM's own calls: {asked:?}"
    );
}

#[tokio::test]
async fn aks_plain_http_is_refused_off_loopback_and_an_unreachable_api_is_unavailable() {
    match AksProvider::new(options("http://10.0.0.1/azure")) {
        Err(ConfigError::InsecureEndpoint { .. }) => {}
        other => panic!("plain http to another host was allowed: {other:?}"),
    }
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let provider = provider(&format!("http://127.0.0.1:{port}/azure"));
    let p = Located::new(&provider, placement("westeurope"));
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
