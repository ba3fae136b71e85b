//! `rotor bench discovery`: how fast a write in a member cluster becomes a changed summary, and
//! what watching a fleet costs in memory.
//!
//! One in-process simulator holds `--clusters` clusters with `--objects` Deployments each
//! (created through each member's `ApiServer` directly, for speed). Once the simulator reports
//! them all available (`sim_settle_s`, the simulator's own work), one discovery service watches
//! every cluster over HTTP, as it would a real fleet, until every summary is listed and healthy
//! (`sync_s`). Then `--churn` status writes,
//! round-robin over the clusters, each flip one Deployment between available and unavailable;
//! each write is timed from just before the write until discovery's summary of that cluster
//! shows it. Writes go one at a time, so the figure is latency, not throughput under load.
//! `rss_mib` is the whole process (simulator included); `rss_sim_mib` was measured before
//! discovery started, and `rss_discovery_mib` is the growth until synced: discovery's share,
//! but with the simulator's side of the watch connections in it too.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::round;
use clap::Args;
use rotor_apiserver::{PatchType, WriteOptions};
use rotor_discovery::{Discovery, Selection, Settings, client_for_kubeconfig};
use serde_json::json;
use tokio::sync::broadcast;

#[derive(Args)]
pub struct DiscoveryArgs {
    /// Simulated member clusters, every one watched over HTTP.
    #[arg(long, default_value_t = 1000)]
    pub clusters: usize,
    /// Deployments in every cluster.
    #[arg(long, default_value_t = 200)]
    pub objects: usize,
    /// Status writes measured, spread round-robin over the clusters.
    #[arg(long, default_value_t = 1000)]
    pub churn: usize,
    #[arg(long)]
    pub json: bool,
}

/// Bounds one write's wait for its summary change; a miss counts as not observed.
const OBSERVE_LIMIT: Duration = Duration::from_secs(10);
/// Bounds the wait for the whole fleet to be listed and healthy.
const SYNC_LIMIT: Duration = Duration::from_secs(15 * 60);
const NAMESPACE: &str = "default";
/// Watch history each simulated cluster keeps. Discovery lists, then watches from the list's
/// version, so it needs none of the filling's history; with the simulator's default (the last
/// 512 writes, whole objects, per cluster) 10,000 clusters × 50 Deployments, their ReplicaSets
/// and Pods grew the process past 24 GiB before discovery started (2026-12-07).
const SIM_HISTORY: usize = 64;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn deployment(name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "app:1"}]}}},
    })
}

pub async fn run(args: DiscoveryArgs) -> anyhow::Result<()> {
    let (clusters, objects) = (args.clusters.max(1), args.objects.max(1));
    let say = |msg: String| {
        if !args.json {
            eprintln!("{msg}");
        }
    };
    let sim = rotor_sim::Sim::new(rotor_sim::SimConfig {
        nodes: 3,
        workload_ready_delay: Duration::from_millis(50),
        history_events: SIM_HISTORY,
        ..rotor_sim::SimConfig::default()
    });
    let started = Instant::now();
    let members = sim.start_clusters("member", clusters).await?;
    let opts = WriteOptions {
        field_manager: "bench".into(),
        ..WriteOptions::default()
    };
    let mut fills = tokio::task::JoinSet::new();
    for m in &members {
        let (server, opts) = (m.server.clone(), opts.clone());
        fills.spawn(async move {
            let res = server.resource("apps", "v1", "deployments")?;
            for i in 0..objects {
                server
                    .create(
                        &res,
                        Some(NAMESPACE),
                        deployment(&format!("app-{i}")),
                        &opts,
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!("create: {e}"))?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = fills.join_next().await {
        done??;
    }
    say(format!(
        "{clusters} clusters × {objects} Deployments created in {:.1}s",
        started.elapsed().as_secs_f64()
    ));

    let base = format!("http://{}", sim.serve_loopback().await?);
    // The simulator reports each Deployment available a little after its creation; with many
    // thousands that takes a while. Wait for it, so that listing is timed on its own.
    let settle_started = Instant::now();
    for m in &members {
        settle(&m.server, objects, settle_started).await?;
    }
    let settle_s = settle_started.elapsed().as_secs_f64();
    say(format!(
        "the simulator reported every Deployment available after {settle_s:.1}s more"
    ));
    let rss_sim = rss_mib();

    let discovery = Discovery::new(Settings::default());
    let names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
    let sync_started = Instant::now();
    for name in &names {
        let kubeconfig = sim
            .kubeconfig(name, &base)
            .ok_or_else(|| anyhow::anyhow!("no kubeconfig for {name}"))?;
        let client = client_for_kubeconfig(&kubeconfig).await?;
        discovery.watch_instance(name, client, Selection::everything());
    }
    let complete = |d: &Discovery, name: &str| {
        d.summary(name).is_some_and(|s| {
            s.healthy() && s.nodes_ready == 3 && s.workloads_total as usize == objects
        })
    };
    let mut last_report = Instant::now();
    loop {
        let done = names.iter().filter(|n| complete(&discovery, n)).count();
        if done == names.len() {
            break;
        }
        if sync_started.elapsed() > SYNC_LIMIT {
            let stuck = names.iter().find(|n| !complete(&discovery, n));
            anyhow::bail!(
                "only {done}/{} clusters listed and healthy after {SYNC_LIMIT:?}; e.g. {stuck:?}: {:?}",
                names.len(),
                stuck.and_then(|n| discovery.summary(n))
            );
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            say(format!(
                "{done}/{} clusters listed and healthy",
                names.len()
            ));
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sync_s = sync_started.elapsed().as_secs_f64();
    let rss_synced = rss_mib();
    say(format!(
        "discovery listed {clusters} clusters in {sync_s:.1}s; RSS {rss_synced:.0} MiB (simulator alone {rss_sim:.0} MiB)"
    ));

    // Churn: flip one Deployment's availability per write, round-robin over the clusters.
    let mut changes = discovery.changes();
    let mut broken: HashSet<(usize, usize)> = HashSet::new();
    let mut unavailable = vec![0usize; clusters];
    let mut latencies = Vec::with_capacity(args.churn);
    for k in 0..args.churn {
        let (c, d) = (k % clusters, (k / clusters) % objects);
        let member = &members[c];
        let res = member.server.resource("apps", "v1", "deployments")?;
        let breaking = broken.insert((c, d));
        if !breaking {
            broken.remove(&(c, d));
        }
        let available = if breaking { 0 } else { 1 };
        if breaking {
            unavailable[c] += 1;
        } else {
            unavailable[c] -= 1;
        }
        let want = (objects - unavailable[c]) as u32;
        let t = Instant::now();
        member
            .server
            .patch(
                &res,
                Some(NAMESPACE),
                &format!("app-{d}"),
                PatchType::Merge,
                &json!({"status": {"availableReplicas": available}}),
                Some("status"),
                &opts,
            )
            .await
            .map_err(|e| anyhow::anyhow!("status write: {e}"))?;
        let seen = tokio::time::timeout(
            OBSERVE_LIMIT,
            observe(&discovery, &mut changes, &member.name, want),
        )
        .await
        .is_ok();
        if seen {
            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    latencies.sort_by(f64::total_cmp);
    let rss = rss_mib();
    if !args.json {
        eprintln!(
            "{} of {} writes seen; p50 {:.3} ms, p99 {:.3} ms",
            latencies.len(),
            args.churn,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );
    }
    let report = json!({
        "clusters": clusters,
        "objects_per_cluster": objects,
        "changes_made": args.churn,
        "changes_observed": latencies.len(),
        "p50_ms": round(percentile(&latencies, 0.5), 3),
        "p99_ms": round(percentile(&latencies, 0.99), 3),
        "max_ms": round(latencies.last().copied().unwrap_or(0.0), 3),
        "sim_settle_s": round(settle_s, 3),
        "sync_s": round(sync_s, 3),
        "rss_mib": round(rss, 3),
        "rss_sim_mib": round(rss_sim, 3),
        "sim_history_events": SIM_HISTORY,
        "rss_discovery_mib": round(rss_synced - rss_sim, 3),
    });
    drop(discovery);
    println!("{report}");
    Ok(())
}

/// Waits until every Deployment of `server` reports itself available (read in-process).
async fn settle(
    server: &rotor_apiserver::ApiServer,
    objects: usize,
    since: Instant,
) -> anyhow::Result<()> {
    let res = server.resource("apps", "v1", "deployments")?;
    loop {
        let list = server
            .list(
                &res,
                Some(NAMESPACE),
                &rotor_apiserver::ListOptions::default(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("list: {e}"))?;
        let items = list["items"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let available = items
            .iter()
            .filter(|d| {
                d.pointer("/status/observedGeneration") == d.pointer("/metadata/generation")
                    && d.pointer("/status/availableReplicas")
                        .and_then(|v| v.as_i64())
                        == Some(1)
            })
            .count();
        if available == objects {
            return Ok(());
        }
        if since.elapsed() > SYNC_LIMIT {
            anyhow::bail!(
                "the simulator did not report every Deployment available in {SYNC_LIMIT:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `name`'s summary shows `available` workloads, woken by discovery's changes.
async fn observe(
    discovery: &Arc<Discovery>,
    changes: &mut broadcast::Receiver<String>,
    name: &str,
    available: u32,
) {
    loop {
        if discovery
            .summary(name)
            .is_some_and(|s| s.workloads_available == available)
        {
            return;
        }
        match changes.recv().await {
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            // Cannot happen while `discovery` lives; re-check on a beat rather than spin.
            Err(broadcast::error::RecvError::Closed) => {
                tokio::time::sleep(Duration::from_millis(1)).await
            }
        }
    }
}
