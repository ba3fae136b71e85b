//! `rotor demo`: the main job on the embedded default. Starts a simulated fleet and an embedded
//! control plane, applies a sample fleet of Cluster objects through the Kubernetes API (kube-rs),
//! waits until every member cluster reports its nodes Ready, deploys a sample application into
//! every member, sends load through every cluster's traffic layer (the simulated weighted
//! router, all traffic on the current instance) and reports.
//!
//! Rotation (swaps, rollouts) arrives with the controllers; until then the swap counters are
//! zero because nothing was rotated, and the request counters are the baseline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use kube::api::{Api, ListParams, Patch, PatchParams};
use rotor_api::Cluster;
use rotor_sim::{Sim, SimConfig};
use serde_json::json;

#[derive(Args)]
pub struct DemoArgs {
    /// Number of simulated clusters in the sample fleet.
    #[arg(long, default_value_t = 10)]
    pub clusters: usize,
    /// Print the report as one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
    /// Fault to inject (arrives with the swap controller).
    #[arg(long)]
    pub inject: Option<String>,
    /// Requests sent through each cluster's traffic layer.
    #[arg(long, default_value_t = 50)]
    pub requests_per_cluster: usize,
}

/// The sample application every member runs: a namespace, a Deployment and its Service.
fn sample_app() -> anyhow::Result<(serde_json::Value, serde_json::Value, serde_json::Value)> {
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": APP_NAMESPACE}});
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": APP_NAMESPACE},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}}}});
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": APP_NAMESPACE},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 80}]}});
    Ok((ns, deploy, svc))
}

const APP_NAMESPACE: &str = "demo-app";

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    if let Some(fault) = &args.inject {
        anyhow::bail!(
            "--inject {fault}: fault injection needs the swap controller, which this build does not have yet"
        );
    }
    let started = Instant::now();
    let progress = |msg: String| {
        if !args.json {
            eprintln!("[{:6.2}s] {msg}", started.elapsed().as_secs_f64());
        }
    };

    // The simulated fleet.
    let traffic_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let sim = Sim::new(SimConfig {
        traffic_port: Some(traffic_port),
        ..SimConfig::default()
    });
    let fleet = rotor_api::sample_fleet(args.clusters);
    for c in &fleet {
        let name = c.metadata.name.clone().unwrap_or_default();
        sim.add_cluster(&name, sim.config().kubernetes_minor)
            .await?;
        sim.cloud.adopt(&name, sim.config().kubernetes_minor);
    }
    let (sim_listener, sim_addr) = super::bind("127.0.0.1:0").await?;
    let sim_router = sim.router();
    tokio::spawn(async move {
        let _ = rotor_apiserver::http::serve(sim_listener, sim_router).await;
    });
    progress(format!(
        "simulator: {} member clusters on http://{sim_addr}",
        args.clusters
    ));

    // The embedded control plane.
    let token = rotor_sim::random_token();
    let server = rotor::controlplane::control_plane(
        Arc::new(rotor_store::memory::MemoryStore::default()),
        Some(token.clone()),
        false,
    )
    .await?;
    let (cp_listener, cp_addr) = super::bind("127.0.0.1:0").await?;
    let router = server.router();
    tokio::spawn(async move {
        let _ = rotor_apiserver::http::serve(cp_listener, router).await;
    });
    progress(format!(
        "control plane on http://{cp_addr} with CRDs clusters/clusterswaps/rollouts.rotor.dev"
    ));

    // Apply the sample fleet through the Kubernetes API, as an operator's automation would.
    let client = rotor::client_for(&rotor_sim::kubeconfig_yaml(
        "rotor",
        &format!("http://{cp_addr}"),
        &token,
    ))
    .await?;
    let clusters: Api<Cluster> = Api::all(client);
    let pp = PatchParams::apply("rotor-demo").force();
    for c in &fleet {
        let name = c.metadata.name.clone().unwrap_or_default();
        clusters
            .patch(&name, &pp, &Patch::Apply(c))
            .await
            .map_err(|e| anyhow::anyhow!("applying Cluster {name}: {e}"))?;
    }
    let applied = clusters.list(&ListParams::default()).await?.items.len();
    progress(format!("applied {applied} Cluster objects"));

    // Wait (bounded) until every member cluster reports its nodes Ready, through its own API.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ready = 0usize;
    let mut member_nodes = Vec::new();
    let mut members = Vec::new();
    for c in &fleet {
        let name = c.metadata.name.clone().unwrap_or_default();
        let kubeconfig = sim
            .kubeconfig(&name, &format!("http://{sim_addr}"))
            .ok_or_else(|| anyhow::anyhow!("no kubeconfig for {name}"))?;
        let member = rotor::client_for(&kubeconfig).await?;
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(member);
        loop {
            let list = nodes.list(&ListParams::default()).await?;
            let ready_nodes = list
                .items
                .iter()
                .filter(|n| {
                    n.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|cs| {
                            cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                        })
                })
                .count();
            if ready_nodes == sim.config().nodes && ready_nodes > 0 {
                ready += 1;
                member_nodes.push((name.clone(), ready_nodes));
                members.push((name.clone(), nodes.clone().into_client()));
                break;
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "member cluster {name}: {ready_nodes}/{} nodes Ready after 60s",
                    sim.config().nodes
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    progress(format!(
        "{ready}/{} member clusters have all nodes Ready",
        fleet.len()
    ));

    // The sample application, applied to every member and waited for (bounded).
    let (ns, deploy, svc) = sample_app()?;
    let pp = PatchParams::apply("rotor-demo");
    for (name, client) in &members {
        let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        nss.patch(APP_NAMESPACE, &pp, &Patch::Apply(&ns))
            .await
            .map_err(|e| anyhow::anyhow!("{name}: namespace: {e}"))?;
        let deps: Api<k8s_openapi::api::apps::v1::Deployment> =
            Api::namespaced(client.clone(), APP_NAMESPACE);
        deps.patch("web", &pp, &Patch::Apply(&deploy))
            .await
            .map_err(|e| anyhow::anyhow!("{name}: deployment: {e}"))?;
        let svcs: Api<k8s_openapi::api::core::v1::Service> =
            Api::namespaced(client.clone(), APP_NAMESPACE);
        svcs.patch("web", &pp, &Patch::Apply(&svc))
            .await
            .map_err(|e| anyhow::anyhow!("{name}: service: {e}"))?;
    }
    for (name, client) in &members {
        let deps: Api<k8s_openapi::api::apps::v1::Deployment> =
            Api::namespaced(client.clone(), APP_NAMESPACE);
        loop {
            let d = deps.get("web").await?;
            if d.status.as_ref().and_then(|s| s.ready_replicas) == Some(2) {
                break;
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "member cluster {name}: the sample application is not ready after 60s"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    progress(format!(
        "sample application ready in {} member clusters",
        members.len()
    ));

    // Load through every cluster's traffic layer: the simulated router, all weight on blue.
    let shifter = rotor_traffic::sim::SimShifter::new();
    for (name, _) in &members {
        let blue = sim
            .cluster(name)
            .and_then(|c| c.traffic_addr)
            .ok_or_else(|| anyhow::anyhow!("{name}: no traffic address"))?;
        rotor_traffic::TrafficShifter::register(&shifter, name, blue, None).await?;
    }
    let router = shifter.serve("127.0.0.1:0".parse()?).await?;
    let urls: Vec<String> = members
        .iter()
        .map(|(name, _)| format!("{}/{APP_NAMESPACE}/web", router.url(name)))
        .collect();
    let load =
        rotor_traffic::load::run(&urls, args.requests_per_cluster, 32, Duration::from_secs(5))
            .await;
    let (mut requests_total, mut requests_failed) = (0u64, 0u64);
    for (name, _) in &members {
        let stats = shifter.stats(name)?;
        requests_total += stats.requests;
        requests_failed += stats.failures;
    }
    if requests_total != load.requests {
        anyhow::bail!(
            "the traffic layer counted {requests_total} requests, the load generator sent {}",
            load.requests
        );
    }
    progress(format!(
        "{requests_total} requests through the traffic layer, {requests_failed} failed"
    ));
    if !args.json {
        println!(
            "{:<32} {:<8} {:<16} {:<8} NODES",
            "CLUSTER", "CLOUD", "REGION", "VERSION"
        );
        for (c, (_, nodes)) in fleet.iter().zip(&member_nodes) {
            let labels = c.metadata.labels.clone().unwrap_or_default();
            println!(
                "{:<32} {:<8} {:<16} {:<8} {nodes}/{nodes}",
                c.metadata.name.clone().unwrap_or_default(),
                labels
                    .get(rotor_api::labels::CLOUD)
                    .cloned()
                    .unwrap_or_default(),
                labels
                    .get(rotor_api::labels::REGION)
                    .cloned()
                    .unwrap_or_default(),
                c.spec.kubernetes_version,
            );
        }
    }
    let report = json!({
        "clusters": applied,
        "clusters_ready": ready,
        "swaps_succeeded": 0,
        "swaps_failed": 0,
        "swaps_rolled_back": 0,
        "requests_total": requests_total,
        "requests_failed": requests_failed,
        "wall_s": (started.elapsed().as_secs_f64() * 100.0).round() / 100.0,
    });
    if args.json {
        println!("{report}");
    } else {
        eprintln!("report: {report}");
    }
    Ok(())
}
