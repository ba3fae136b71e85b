//! A rollout of a fleet spread over EKS, AKS and GKE as `rotor sim` serves their APIs, through
//! the real providers and the clouds' SDKs (`rotor demo --clouds aws,azure,gcp`): blues created through
//! the providers and adopted, every swap succeeds under load with no failed request, and at the
//! end each cloud holds exactly the greens — blues deleted through the same APIs. The same
//! rollout through each cloud's DNS (Route 53, Cloud DNS, Traffic Manager) with a load that
//! resolves the names moves the traffic to the greens with no failed request either.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use google_cloud_auth::credentials::Credentials;
use google_cloud_container_v1::client::ClusterManager;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use rotor::rehearsal::{Cloud, Rehearsal, RehearsalConfig, TrafficChoice};
use rotor_api::{
    Approval, Cluster, Provider, Rollout, RolloutPhase, RolloutSpec, SwapStrategy, SwapTarget, Wave,
};
use rotor_sim::{CloudConfig, SimConfig};

const LIMIT: Duration = Duration::from_secs(90);

pub(crate) fn one_wave_rollout(clusters: u32) -> Rollout {
    Rollout::new(
        "clouds",
        RolloutSpec {
            cluster_selector: LabelSelector::default(),
            target: SwapTarget {
                kubernetes_version: Some(rotor_api::SAMPLE_TARGET_VERSION.into()),
                ..Default::default()
            },
            waves: vec![Wave {
                name: "all".into(),
                percent: Some(100),
                ..Default::default()
            }],
            max_concurrent_swaps: clusters,
            bake_seconds_between_waves: 0,
            approval: Approval::Automatic,
            approved_through_wave: None,
            failure_budget: IntOrString::Int(0),
            on_budget_exceeded: Default::default(),
            notifications: Vec::new(),
            wave_gates: Vec::new(),
            order_by: Vec::new(),
            unavailable_clusters: Default::default(),
            preflight: Default::default(),
            maintenance_windows: Vec::new(),
            strategy: SwapStrategy {
                traffic_steps: vec![50, 100],
                bake_seconds: 0,
                blue_retention_seconds: 0,
                ..Default::default()
            },
            paused: false,
            skip_clusters: Vec::new(),
            retry_failed: 0,
        },
    )
}

/// The names EKS lists in `region`.
async fn eks_names(sim_url: &str, region: &str) -> Vec<String> {
    let addr = sim_url.trim_start_matches("http://").parse().expect("addr");
    let mut options = rotor_test_support::aws::sim_options(addr);
    options.region = Some(region.into());
    let eks = aws_sdk_eks::Client::new(&rotor_aws::sdk_config(&options).await);
    let listed = eks.list_clusters().send().await.expect("EKS lists");
    listed.clusters().to_vec()
}

/// The names GKE lists in `project`/`location`.
async fn gke_names(sim_url: &str, project: &str, location: &str) -> Vec<String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let gke = ClusterManager::builder()
        .with_endpoint(format!("{sim_url}/gcp"))
        .with_credentials(Credentials::from(rotor_providers::gke::static_token(
            "ya29.test",
        )))
        .build()
        .await
        .expect("GKE client");
    let listed = gke
        .list_clusters()
        .set_parent(format!("projects/{project}/locations/{location}"))
        .send()
        .await
        .expect("GKE lists");
    listed.clusters.into_iter().map(|c| c.name).collect()
}

/// The names ARM lists in `subscription` at `location`.
async fn aks_names(sim_url: &str, subscription: &str, location: &str) -> Vec<String> {
    let url = format!(
        "{sim_url}/azure/subscriptions/{subscription}/providers/Microsoft.ContainerService/\
         managedClusters?api-version={}",
        rotor_providers::aks::API_VERSION
    );
    let (status, _, body) = rotor_test_support::http::get_as(&url, Some("eyJ.test"))
        .await
        .expect("ARM lists");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let listed: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    let clusters = listed["value"].as_array().cloned().unwrap_or_default();
    clusters
        .iter()
        .filter(|c| c["location"] == location)
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect()
}

/// What each cloud holds for the fleet's placements, sorted: (cloud, name).
async fn cloud_holdings(r: &Rehearsal) -> Vec<(String, String)> {
    let placements: std::collections::BTreeSet<(String, String, String)> = r
        .fleet
        .iter()
        .map(|c| {
            let p = c.spec.provider.as_str().to_string();
            (p, c.spec.account.clone(), c.spec.region.clone())
        })
        .collect();
    let mut held = Vec::new();
    for (provider, account, location) in placements {
        let names = match provider.as_str() {
            "aws" => eks_names(&r.sim_url, &location).await,
            "gcp" => gke_names(&r.sim_url, &account, &location).await,
            "azure" => aks_names(&r.sim_url, &account, &location).await,
            other => panic!("a cloud the rehearsal does not place on: {other}"),
        };
        held.extend(names.into_iter().map(|n| (provider.clone(), n)));
    }
    held.sort();
    held
}

/// (cloud, name) of a Cluster's instance.
fn on_cloud(c: &Cluster, instance: String) -> (String, String) {
    (c.spec.provider.as_str().to_string(), instance)
}

#[test]
fn a_rollout_over_eks_aks_and_gke_succeeds_through_the_real_providers() {
    // On worker threads as `rotor serve` builds them (Google's clients need the stack).
    let runtime = rotor::runtime().expect("runtime");
    let test = runtime.spawn(async {
        tokio::time::timeout(Duration::from_secs(240), rollout_over_clouds()).await
    });
    runtime
        .block_on(test)
        .expect("the test's task")
        .expect("bounded");
}

/// Six Clusters over the three clouds, their traffic through `traffic`.
pub(crate) async fn rehearsal_over_clouds(clusters: usize, traffic: TrafficChoice) -> Rehearsal {
    Rehearsal::start(RehearsalConfig {
        fleet: rotor_api::sample_fleet_over(clusters, &rotor_api::SAMPLE_CLOUDS),
        sim: SimConfig {
            nodes: 1,
            workload_ready_delay: Duration::from_millis(100),
            node_ready_delay: Duration::from_millis(50),
            cloud: CloudConfig {
                create_latency: Duration::from_millis(200),
                delete_latency: Duration::from_millis(50),
                ..CloudConfig::default()
            },
            ..SimConfig::default()
        },
        settings: rotor_controllers::Settings {
            gate_interval: Duration::from_millis(100),
            poll_interval: Duration::from_millis(200),
            drain_timeout: Duration::from_millis(500),
            ..Default::default()
        },
        traffic,
        clock: None,
        clouds: vec![Cloud::Aws, Cloud::Azure, Cloud::Gcp],
    })
    .await
    .expect("rehearsal")
}

/// Runs `rollout` to its end; its final status.
pub(crate) async fn rolled_out(r: &Rehearsal, rollout: Rollout) -> rotor_api::RolloutStatus {
    let rollouts: Api<Rollout> = Api::all(r.client.clone());
    let name = rollout.name_any();
    rollouts
        .create(&PostParams::default(), &rollout)
        .await
        .expect("rollout");
    common::eventually(LIMIT, "the rollout ends", || async {
        let st = rollouts.get(&name).await.ok()?.status?;
        matches!(st.phase, RolloutPhase::Succeeded | RolloutPhase::Failed).then_some(st)
    })
    .await
}

async fn rollout_over_clouds() {
    let clusters = 6;
    let r = rehearsal_over_clouds(clusters, TrafficChoice::Sim).await;
    let by_provider = |p: Provider| r.fleet.iter().filter(|c| c.spec.provider == p).count();
    assert_eq!(
        (by_provider(Provider::Aws), by_provider(Provider::Gcp)),
        (2, 2)
    );
    let mut blues: Vec<(String, String)> =
        r.fleet.iter().map(|c| on_cloud(c, c.name_any())).collect();
    blues.sort();
    assert_eq!(cloud_holdings(&r).await, blues, "blues made in the clouds");
    r.wait_adopted(LIMIT).await.expect("adopted");
    r.deploy_app(LIMIT).await.expect("app");

    let load = rotor_traffic::load::Load::start_mixed(
        r.app_urls(),
        2,
        rotor_traffic::CLIENT_TIMEOUT,
        rotor_traffic::load::Mix {
            post_percent: 20,
            slow_percent: 0,
            streams: 0,
        },
    );
    let done = rolled_out(&r, one_wave_rollout(clusters as u32)).await;
    let sent = load.stop().await;
    assert_eq!(done.phase, RolloutPhase::Succeeded, "{:?}", done.conditions);
    assert_eq!(done.counts.succeeded, clusters as u32);
    assert!(sent.requests > 0);
    assert_eq!(sent.failed, 0, "{sent:?}");

    // Each cloud holds the greens now, and nothing else.
    let clusters_api: Api<Cluster> = Api::all(r.client.clone());
    let mut greens = Vec::new();
    for c in &r.fleet {
        let active = clusters_api
            .get(&c.name_any())
            .await
            .expect("Cluster")
            .status
            .and_then(|s| s.active_instance)
            .expect("an active instance");
        assert_ne!(active, c.name_any(), "{} still on blue", c.name_any());
        greens.push(on_cloud(c, active));
    }
    greens.sort();
    let held = common::eventually(LIMIT, "blues deleted from the clouds", || async {
        let held = cloud_holdings(&r).await;
        (held == greens).then_some(held)
    })
    .await;
    let mut per_cloud: BTreeMap<String, usize> = BTreeMap::new();
    for (cloud, _) in &held {
        *per_cloud.entry(cloud.clone()).or_default() += 1;
    }
    assert_eq!(
        per_cloud,
        BTreeMap::from([
            ("aws".to_string(), 2),
            ("azure".to_string(), 2),
            ("gcp".to_string(), 2)
        ])
    );
}

/// The active instance of each Cluster of the fleet.
pub(crate) async fn active_instances(r: &Rehearsal) -> Vec<String> {
    let clusters: Api<Cluster> = Api::all(r.client.clone());
    let mut active = Vec::new();
    for c in &r.fleet {
        let cluster = clusters.get(&c.name_any()).await.expect("Cluster");
        active.push(
            cluster
                .status
                .and_then(|s| s.active_instance)
                .expect("active"),
        );
    }
    active
}

/// Requests the application of `member`, known to its cloud as `cluster`, answered with `code`,
/// from the simulator's `/metrics`.
fn answered(metrics: &str, member: &str, cluster: &str, code: u16) -> u64 {
    let labels = format!("{{member=\"{member}\",cluster=\"{cluster}\",code=\"{code}\"}}");
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("rotor_sim_traffic_requests_total"))
        .filter_map(|l| l.strip_prefix(labels.as_str()))
        .filter_map(|v| v.trim().parse::<u64>().ok())
        .sum()
}

async fn rollout_over_clouds_through_their_dns() {
    let clusters = 6;
    let r = rehearsal_over_clouds(clusters, TrafficChoice::Dns).await;
    let kinds: std::collections::BTreeSet<_> =
        r.fleet.iter().map(|c| c.spec.traffic.shifter).collect();
    assert_eq!(
        kinds.len(),
        3,
        "Route 53, Cloud DNS and Traffic Manager: {kinds:?}"
    );
    r.wait_adopted(LIMIT).await.expect("adopted");
    r.deploy_app(LIMIT)
        .await
        .expect("the app answers by its names");
    // A DNS name per Cluster on every cloud (on Azure, a Traffic Manager profile each).
    let urls = r.app_urls();
    for (u, c) in urls.iter().zip(&r.fleet) {
        let own = format!("http://{}.", c.name_any());
        assert!(
            u.starts_with(&own),
            "{u} is not {}'s own name",
            c.name_any()
        );
    }
    let load = rotor_traffic::load::Load::start_resolving(
        urls,
        2,
        rotor_traffic::CLIENT_TIMEOUT,
        rotor_traffic::load::Mix {
            post_percent: 20,
            slow_percent: 0,
            streams: 0,
        },
        rotor_traffic::load::Pace::default(),
        rotor_traffic::load::Focus::default(),
        r.dns_records().expect("DNS records"),
    );
    let mut rollout = one_wave_rollout(clusters as u32);
    // A DNS shifter counts no requests: no minimum (the default is none).
    rollout.spec.strategy.health_gates.min_requests = 0;
    let done = rolled_out(&r, rollout).await;
    // Load after the swaps too: every name now resolves to its green alone.
    let (_, _, metrics) = rotor_test_support::http::get(&format!("{}/metrics", r.sim_url))
        .await
        .expect("the simulator's /metrics");
    let sent = load.stop().await;
    assert_eq!(done.phase, RolloutPhase::Succeeded, "{:?}", done.conditions);
    assert_eq!(done.counts.succeeded, clusters as u32);
    assert_eq!(sent.failed, 0, "{sent:?}");
    let metrics = String::from_utf8_lossy(&metrics);
    for (c, green) in r.fleet.iter().zip(active_instances(&r).await) {
        assert_ne!(green, c.name_any(), "{} still on blue", c.name_any());
        let member = r.sim.member_of_instance(&green).expect("green's member");
        assert!(
            answered(&metrics, &member, &green, 200) > 0,
            "green {green} of {} answered no request through DNS",
            c.name_any()
        );
    }
}

#[test]
fn a_rollout_through_route53_clouddns_and_traffic_manager_moves_traffic_by_dns() {
    let runtime = rotor::runtime().expect("runtime");
    let test = runtime.spawn(async {
        tokio::time::timeout(
            Duration::from_secs(240),
            rollout_over_clouds_through_their_dns(),
        )
        .await
    });
    runtime
        .block_on(test)
        .expect("the test's task")
        .expect("bounded");
}
