//! `rotor bench fleet`: what an idle fleet costs the control plane, and what one change costs.
//!
//! A fleet of `--clusters` simulated clusters runs under a control plane on SQLite with the
//! controllers on `rotor serve`'s default settings, discovery watching every member and the
//! chosen traffic layer. Once every Cluster is Ready, the benchmark waits one resync period
//! (so the adoption burst is over) and then watches the idle fleet for `--idle-s`: the CPU the
//! whole process used (simulator included; from /proc, so independent of what else runs) and
//! the reconciles each controller ran. Then it labels `--changes` Clusters, one write each, and
//! reports the CPU those changes cost beyond the idle rate.
//!
//! Nothing changes in an idle fleet, so work proportional to change means an idle cost per
//! cluster that stays small and a cost per change that does not grow with the fleet.

use std::time::{Duration, Instant};

use clap::Args;
use futures::{StreamExt, TryStreamExt};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use rotor::rehearsal::{Rehearsal, RehearsalConfig};
use rotor_api::{Cluster, ConditionStatus, ConditionType, find_condition};
use rotor_sim::SimConfig;
use serde_json::json;

use super::bench::{process_cpu_s, rss_mib};
use super::demo::TrafficArg;
use super::round;

#[derive(Args)]
pub struct FleetArgs {
    /// Simulated clusters in the fleet.
    #[arg(long, default_value_t = 1000)]
    pub clusters: usize,
    /// Seconds the idle fleet is watched.
    #[arg(long, default_value_t = 60)]
    pub idle_s: u64,
    /// Clusters labelled once each after the idle window, to cost a change.
    #[arg(long, default_value_t = 200)]
    pub changes: usize,
    /// Traffic layer: HAProxy when installed (`auto`), or the embedded router.
    #[arg(long, value_enum, default_value_t = TrafficArg::Sim)]
    pub traffic: TrafficArg,
    #[arg(long)]
    pub json: bool,
}

/// The controllers whose reconciles are counted.
const CONTROLLERS: [&str; 3] = ["cluster", "clusterswap", "rollout"];
/// Concurrent label writes.
const WRITERS: usize = 16;

pub async fn run(args: FleetArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let progress = |msg: String| {
        if !args.json {
            eprintln!("[{:7.2}s] {msg}", started.elapsed().as_secs_f64());
        }
    };
    super::demo::limits::ensure_open_files(args.clusters as u64)?;
    super::demo::limits::ensure_memory(args.clusters as u64)?;
    let traffic = super::demo::traffic_choice(args.traffic);
    let store_dir = tempfile::tempdir()?;
    let path = store_dir.path().join("rotor.db");
    let store = rotor::controlplane::open_store(&format!("sqlite:{}", path.display())).await?;
    let settings = rotor_controllers::Settings::default();
    let resync = settings.cluster_resync;
    let r = Rehearsal::start_on(
        RehearsalConfig {
            fleet: rotor_api::sample_fleet_over(args.clusters, &[]),
            sim: SimConfig::default(),
            settings,
            traffic,
            clock: None,
            clouds: Vec::new(),
        },
        store,
    )
    .await?;
    let set_up_limit = Duration::from_secs(120) + Duration::from_millis(60) * args.clusters as u32;
    r.wait_adopted(set_up_limit).await?;
    progress(format!(
        "{} Clusters adopted their instances",
        args.clusters
    ));
    wait_all_ready(&r, set_up_limit).await?;
    let set_up_s = started.elapsed().as_secs_f64();
    progress(format!(
        "every Cluster Ready; waiting one resync ({resync:?}) before measuring"
    ));
    tokio::time::sleep(resync).await;

    let idle = Window::open(&r);
    tokio::time::sleep(Duration::from_secs(args.idle_s)).await;
    let idle = idle.close(&r);
    progress(format!(
        "idle: {:.3} CPU s/s, {:.1} Cluster reconciles/s",
        idle.cpu_per_s(),
        idle.reconciles_per_s(0)
    ));

    let changed = Window::open(&r);
    label_clusters(&r, args.changes).await?;
    wait_reconciles(&r, changed.reconciles[0] + args.changes as u64).await?;
    let changed = changed.close(&r);
    let change_cpu_ms = if args.changes == 0 {
        0.0
    } else {
        (changed.cpu_s - idle.cpu_per_s() * changed.seconds).max(0.0) * 1000.0 / args.changes as f64
    };
    let (rss, rss_peak) = rss_mib();
    let report = json!({
        "bench": "fleet",
        "clusters": args.clusters,
        "traffic": format!("{traffic:?}").to_lowercase(),
        "store": "sqlite",
        "settings": "rotor serve's defaults",
        "cluster_resync_s": resync.as_secs_f64(),
        "set_up_s": round(set_up_s, 1),
        "idle_s": round(idle.seconds, 1),
        "idle_cpu_s_per_s": round(idle.cpu_per_s(), 3),
        "idle_cpu_ms_per_cluster_per_min":
            round(idle.cpu_per_s() * 60_000.0 / args.clusters.max(1) as f64, 3),
        "idle_reconciles_per_s": CONTROLLERS.iter().enumerate()
            .map(|(i, c)| (c.to_string(), json!(round(idle.reconciles_per_s(i), 2))))
            .collect::<serde_json::Map<_, _>>(),
        "changes": args.changes,
        "changes_s": round(changed.seconds, 2),
        "change_cpu_ms": round(change_cpu_ms, 3),
        "rss_mib": round(rss, 0),
        "rss_peak_mib": round(rss_peak, 0),
    });
    println!("{report}");
    Ok(())
}

/// CPU and reconciles between two instants.
struct Window {
    at: Instant,
    cpu_s: f64,
    seconds: f64,
    reconciles: [u64; 3],
}

impl Window {
    fn open(r: &Rehearsal) -> Self {
        Self {
            at: Instant::now(),
            cpu_s: process_cpu_s(),
            seconds: 0.0,
            reconciles: CONTROLLERS.map(|c| r.metrics.reconciles_of(c)),
        }
    }

    fn close(self, r: &Rehearsal) -> Self {
        let now = CONTROLLERS.map(|c| r.metrics.reconciles_of(c));
        Self {
            at: self.at,
            cpu_s: process_cpu_s() - self.cpu_s,
            seconds: self.at.elapsed().as_secs_f64(),
            reconciles: [0, 1, 2].map(|i| now[i] - self.reconciles[i]),
        }
    }

    fn cpu_per_s(&self) -> f64 {
        self.cpu_s / self.seconds.max(f64::EPSILON)
    }

    fn reconciles_per_s(&self, controller: usize) -> f64 {
        self.reconciles[controller] as f64 / self.seconds.max(f64::EPSILON)
    }
}

/// Waits, listing once a second, until every Cluster's Ready condition is True.
async fn wait_all_ready(r: &Rehearsal, limit: Duration) -> anyhow::Result<()> {
    let clusters: Api<Cluster> = Api::all(r.client.clone());
    let deadline = Instant::now() + limit;
    loop {
        let list = clusters.list(&ListParams::default()).await?;
        let not_ready = list
            .items
            .iter()
            .filter(|c| {
                let conditions = c.status.as_ref().map(|s| &s.conditions[..]).unwrap_or(&[]);
                find_condition(conditions, ConditionType::Ready)
                    .is_none_or(|c| c.status != ConditionStatus::True)
            })
            .count();
        if not_ready == 0 && list.items.len() == r.fleet.len() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{not_ready} Clusters are not Ready after {limit:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One label write on each of the first `n` Clusters, [`WRITERS`] at a time.
async fn label_clusters(r: &Rehearsal, n: usize) -> anyhow::Result<()> {
    let clusters: Api<Cluster> = Api::all(r.client.clone());
    let patch = Patch::Merge(json!({"metadata": {"labels": {"bench.rotor.dev/touched": "1"}}}));
    futures::stream::iter(r.fleet.iter().take(n))
        .map(|c| {
            let clusters = clusters.clone();
            let patch = &patch;
            async move {
                clusters
                    .patch(&c.name_any(), &PatchParams::default(), patch)
                    .await
            }
        })
        .buffer_unordered(WRITERS)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// Waits (bounded) until the Cluster controller has run `total` reconciles: every labelled
/// Cluster's change has been reconciled (idle resyncs may be among them; the idle rate's CPU is
/// subtracted).
async fn wait_reconciles(r: &Rehearsal, total: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while r.metrics.reconciles_of(CONTROLLERS[0]) < total {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the labelled Clusters were not reconciled within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
