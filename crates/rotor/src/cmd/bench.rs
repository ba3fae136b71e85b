//! `rotor bench …`: benchmarks that print one JSON object on the last line of stdout. Every
//! figure is measured over real HTTP with kube-rs clients unless it says otherwise.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::round;
use clap::{Args, Subcommand};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

#[derive(Subcommand)]
pub enum BenchWhat {
    /// Create/get/list throughput of the API server with concurrent kube-rs clients.
    Apiserver(ApiserverArgs),
    /// Memory per simulated cluster and watch latency across a simulated fleet.
    Sim(SimBenchArgs),
    /// Raw storage backend: concurrent write throughput and write→watch latency.
    Store(StoreBenchArgs),
    /// Time from a failing health gate to all traffic on blue.
    Rollback(super::bench_rollback::RollbackArgs),
    /// Migration engine throughput into one simulated API server, against kubectl.
    Migrate(super::bench_migrate::MigrateArgs),
    /// Discovery across a simulated fleet: write → summary latency and memory.
    Discovery(super::bench_discovery::DiscoveryArgs),
    /// What an idle fleet costs the control plane per cluster, and what one change costs.
    Fleet(super::bench_fleet::FleetArgs),
    /// The dashboard with a large fleet and many swaps running: API change → DOM delay and
    /// long tasks, in headless Chromium.
    Dashboard(super::bench_dashboard::DashboardArgs),
}

#[derive(Args)]
pub struct StoreBenchArgs {
    /// `memory` or `sqlite:PATH` (a fresh file is recommended).
    #[arg(long, default_value = "memory")]
    pub store: String,
    /// Concurrent writers.
    #[arg(long, default_value_t = 32)]
    pub writers: usize,
    /// Writes in total.
    #[arg(long, default_value_t = 50_000)]
    pub writes: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ApiserverArgs {
    /// `memory` or `sqlite:PATH` (a fresh file is recommended).
    #[arg(long, default_value = "memory")]
    pub store: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Objects created in total.
    #[arg(long, default_value_t = 20_000)]
    pub objects: usize,
    /// Also measure the floor: the same clients against a server that answers every create with
    /// the bytes the real one returned, without doing any work. What the clients and loopback
    /// HTTP cost on this machine bounds `creates_per_s` from above.
    #[arg(long)]
    pub floor: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct SimBenchArgs {
    #[arg(long, default_value_t = 1000)]
    pub clusters: usize,
    /// ConfigMaps created in every cluster.
    #[arg(long, default_value_t = 100)]
    pub objects: usize,
    /// Deployments (2 replicas each) created in every cluster too; the simulator adds their
    /// ReplicaSets and Pods, and the measurement waits until every one is ready.
    #[arg(long, default_value_t = 0)]
    pub deployments: usize,
    /// Clusters whose watch latency is sampled over HTTP.
    #[arg(long, default_value_t = 20)]
    pub watched: usize,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.what {
        BenchWhat::Apiserver(a) => apiserver(a).await,
        BenchWhat::Sim(a) => sim(a).await,
        BenchWhat::Store(a) => store(a).await,
        BenchWhat::Rollback(a) => super::bench_rollback::run(a).await,
        BenchWhat::Migrate(a) => super::bench_migrate::run(a).await,
        BenchWhat::Discovery(a) => super::bench_discovery::run(a).await,
        BenchWhat::Fleet(a) => super::bench_fleet::run(a).await,
        BenchWhat::Dashboard(a) => super::bench_dashboard::run(a).await,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Resident set size now and at peak, from /proc (MiB).
pub(super) fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time (user + system) this process has used so far, in seconds, from /proc (clock ticks,
/// 10 ms resolution: meant for phases that use seconds of CPU). Counts every thread, exited ones
/// included, so it is independent of what else runs on the machine.
pub(super) fn process_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command.
    (ticks(11) + ticks(12)) / 100.0
}

/// `n` two-replica Deployments in every cluster, then waits (bounded) until all are ready.
async fn fill_deployments(
    clusters: &[Arc<rotor_sim::MemberCluster>],
    n: usize,
) -> anyhow::Result<()> {
    let opts = rotor_apiserver::WriteOptions::default();
    for c in clusters.iter().filter(|_| n > 0) {
        let res = c.server.resource("apps", "v1", "deployments")?;
        for i in 0..n {
            let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": format!("web-{i}")},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": format!("web-{i}")}},
                    "template": {"metadata": {"labels": {"app": format!("web-{i}")}},
                        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}});
            c.server
                .create(&res, Some("default"), d, &opts)
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e}", c.name))?;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    for c in clusters.iter().filter(|_| n > 0) {
        let res = c.server.resource("apps", "v1", "deployments")?;
        for i in 0..n {
            loop {
                let d = c
                    .server
                    .get(&res, Some("default"), &format!("web-{i}"))
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                if d.pointer("/status/readyReplicas") == Some(&json!(2)) {
                    break;
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "{}: deployment web-{i} not ready within 300s",
                    c.name
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    Ok(())
}

fn configmap(name: &str) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(name.to_string());
    cm.data = Some([("key".to_string(), "value".to_string())].into());
    cm
}

/// Creates `objects` ConfigMaps in "default" from `clients` concurrent kube-rs clients (each its
/// own connection pool); returns the elapsed time, the process CPU it took and how many it made.
async fn drive_creates(
    kubeconfig: &str,
    clients: usize,
    objects: usize,
) -> anyhow::Result<(f64, f64, usize)> {
    let per_client = objects.div_ceil(clients);
    let mut handles = Vec::with_capacity(clients);
    for _ in 0..clients {
        handles.push(rotor::client_for(kubeconfig).await?);
    }
    let cpu_before = process_cpu_s();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (c, client) in handles.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let api: Api<ConfigMap> = Api::namespaced(client, "default");
            for i in 0..per_client {
                api.create(&PostParams::default(), &configmap(&format!("c{c}-{i}")))
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((
        started.elapsed().as_secs_f64(),
        process_cpu_s() - cpu_before,
        per_client * clients,
    ))
}

/// The floor of `bench apiserver`: a bare HTTP server on the same stack (axum, hyper, TCP with
/// `TCP_NODELAY`) that reads each request body and answers 201 with `reply`.
async fn floor_server(reply: bytes::Bytes) -> anyhow::Result<String> {
    let (listener, addr) = super::bind("127.0.0.1:0").await?;
    let router = axum::Router::new().fallback(move |body: bytes::Bytes| {
        let reply = reply.clone();
        async move {
            drop(body);
            (
                axum::http::StatusCode::CREATED,
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                reply,
            )
        }
    });
    tokio::spawn(async move {
        let _ = rotor_apiserver::http::serve(listener, router).await;
    });
    Ok(format!("http://{addr}"))
}

async fn apiserver(args: ApiserverArgs) -> anyhow::Result<()> {
    let store = rotor::controlplane::open_store(&args.store).await?;
    let token = rotor_sim::random_token();
    let server =
        rotor::controlplane::control_plane(store, rotor::controlplane::admin_only(token.clone()))
            .await?;
    let (listener, addr) = super::bind("127.0.0.1:0").await?;
    let router = server.router();
    tokio::spawn(async move {
        let _ = rotor_apiserver::http::serve(listener, router).await;
    });
    let kubeconfig = rotor_sim::kubeconfig_yaml("bench", &format!("http://{addr}"), &token);
    let clients = args.clients.max(1);
    let (create_s, create_cpu_s, created) =
        drive_creates(&kubeconfig, clients, args.objects).await?;
    let per_client = created / clients;

    let client = rotor::client_for(&kubeconfig).await?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut gets = Vec::with_capacity(1000);
    for i in 0..1000 {
        let t = Instant::now();
        api.get(&format!("c{}-{}", i % clients, i % per_client))
            .await?;
        gets.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    gets.sort_by(f64::total_cmp);
    // A list of 1000 is a few milliseconds of work: one sample says little, so ten.
    let mut lists = Vec::with_capacity(10);
    let mut list_items = 0;
    for _ in 0..10 {
        let t = Instant::now();
        list_items = api
            .list(&ListParams::default().limit(1000))
            .await?
            .items
            .len();
        lists.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    lists.sort_by(f64::total_cmp);
    let mut report = json!({
        "store": args.store,
        "clients": clients,
        "objects": created,
        "creates_per_s": round(created as f64 / create_s, 2),
        // Server and clients together (one process): the load-independent cost of a create.
        "create_cpu_us": round(create_cpu_s * 1e6 / created as f64, 2),
        "get_p50_ms": round(percentile(&gets, 0.5), 2),
        "get_p99_ms": round(percentile(&gets, 0.99), 2),
        "list_1000_ms": round(percentile(&lists, 0.5), 2),
        "list_1000_max_ms": round(lists[lists.len() - 1], 2),
        "list_items": list_items,
    });
    if args.floor {
        // The reply is what the real server stored for the first object, managed fields and all,
        // so the clients decode exactly as much as they did above.
        let first: ConfigMap = api.get("c0-0").await?;
        let base = floor_server(serde_json::to_vec(&first)?.into()).await?;
        let kubeconfig = rotor_sim::kubeconfig_yaml("floor", &base, &token);
        let (s, cpu, n) = drive_creates(&kubeconfig, clients, args.objects).await?;
        report["floor_creates_per_s"] = json!(round(n as f64 / s, 2));
        report["floor_create_cpu_us"] = json!(round(cpu * 1e6 / n as f64, 2));
    }
    if !args.json {
        eprintln!("created {created} objects with {clients} clients in {create_s:.2}s");
    }
    println!("{report}");
    Ok(())
}

async fn sim(args: SimBenchArgs) -> anyhow::Result<()> {
    let (rss_before, _) = rss_mib();
    let sim = rotor_sim::Sim::new(rotor_sim::SimConfig {
        nodes: 3,
        ..rotor_sim::SimConfig::default()
    });
    let started = Instant::now();
    let clusters = sim.start_clusters("member", args.clusters).await?;
    let cm_res = clusters
        .first()
        .map(|c| c.server.resource("", "v1", "configmaps"))
        .transpose()?;
    let opts = rotor_apiserver::WriteOptions::default();
    if let Some(res) = &cm_res {
        for c in &clusters {
            for i in 0..args.objects {
                let obj = serde_json::to_value(configmap(&format!("cm-{i}")))?;
                c.server
                    .create(res, Some("default"), obj, &opts)
                    .await
                    .map_err(|e| anyhow::anyhow!("{}: {e}", c.name))?;
            }
        }
    }
    fill_deployments(&clusters, args.deployments).await?;
    let fill_s = started.elapsed().as_secs_f64();
    let (listener, addr) = super::bind("127.0.0.1:0").await?;
    let router = sim.router();
    tokio::spawn(async move {
        let _ = rotor_apiserver::http::serve(listener, router).await;
    });

    // Watch latency: one HTTP watch per sampled cluster; each write's delivery time is measured.
    let mut latencies = Vec::new();
    for c in clusters.iter().take(args.watched.max(1)) {
        let kubeconfig = sim
            .kubeconfig(&c.name, &format!("http://{addr}"))
            .ok_or_else(|| anyhow::anyhow!("kubeconfig {}", c.name))?;
        let api: Api<ConfigMap> = Api::namespaced(rotor::client_for(&kubeconfig).await?, "default");
        let rv = api
            .list(&ListParams::default().limit(1))
            .await?
            .metadata
            .resource_version
            .unwrap_or_default();
        let mut stream = api
            .watch(&kube::api::WatchParams::default(), &rv)
            .await?
            .boxed();
        let Some(res) = &cm_res else { break };
        for i in 0..20 {
            let name = format!("lat-{i}");
            let t = Instant::now();
            c.server
                .create(
                    res,
                    Some("default"),
                    serde_json::to_value(configmap(&name))?,
                    &opts,
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            loop {
                let ev = tokio::time::timeout(Duration::from_secs(5), stream.next())
                    .await
                    .map_err(|_| anyhow::anyhow!("watch event not delivered within 5s"))?;
                match ev {
                    Some(Ok(kube::api::WatchEvent::Added(o)))
                        if o.metadata.name.as_deref() == Some(&name) =>
                    {
                        break;
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => anyhow::bail!("watch: {e}"),
                    None => anyhow::bail!("watch ended"),
                }
            }
            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    latencies.sort_by(f64::total_cmp);
    let (rss, peak) = rss_mib();
    let n = args.clusters.max(1) as f64;
    let report = json!({
        "clusters": args.clusters,
        "objects_per_cluster": args.objects,
        "deployments_per_cluster": args.deployments,
        "start_and_fill_s": round(fill_s, 2),
        "rss_mib": round(rss, 2),
        "peak_rss_mib": round(peak, 2),
        "rss_per_cluster_mib": round((rss - rss_before) / n, 2),
        "watch_samples": latencies.len(),
        "watch_p50_ms": round(percentile(&latencies, 0.5), 3),
        "watch_p99_ms": round(percentile(&latencies, 0.99), 3),
    });
    println!("{report}");
    Ok(())
}

async fn store(args: StoreBenchArgs) -> anyhow::Result<()> {
    let store = rotor::controlplane::open_store(&args.store).await?;
    let writers = args.writers.max(1);
    let per_writer = args.writes.div_ceil(writers);
    let value = bytes::Bytes::from_static(
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"key":"value"}}"#,
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (store, value) = (store.clone(), value.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                store
                    .create(&format!("/bench/{w}/{i}"), value.clone())
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let write_s = started.elapsed().as_secs_f64();
    // Write → watch delivery, one write at a time.
    let mut latencies = Vec::with_capacity(1000);
    let mut rx = store
        .watch("/lat/", store.current_revision().await?)
        .await?;
    for i in 0..1000 {
        let t = Instant::now();
        store.create(&format!("/lat/{i}"), value.clone()).await?;
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .map_err(|_| anyhow::anyhow!("watch event not delivered within 5s"))?;
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    let report = json!({
        "store": args.store,
        "writers": writers,
        "writes": per_writer * writers,
        "writes_per_s": round((per_writer * writers) as f64 / write_s, 2),
        "watch_p50_ms": round(percentile(&latencies, 0.5), 3),
        "watch_p99_ms": round(percentile(&latencies, 0.99), 3),
    });
    println!("{report}");
    Ok(())
}
