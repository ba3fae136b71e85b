//! `rotor demo`: the main job on the embedded default. Starts a simulated fleet and cloud, an
//! embedded control plane with its controllers and a traffic layer (HAProxy when installed,
//! else the embedded router), deploys a sample application into every member, sends load
//! through every cluster's traffic layer, rotates every cluster blue-green with a ClusterSwap,
//! and reports. `--inject green-unhealthy` breaks each green once it carries half the traffic:
//! every swap must then roll back, still with zero failed requests.
//!
//! Staged fleet rollouts (waves, budgets) arrive with the Rollout controller; until then every
//! cluster gets its own ClusterSwap at once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use rotor::rehearsal::{Rehearsal, RehearsalConfig, TrafficChoice};
use rotor_api::{ClusterSwap, ClusterSwapSpec, Phase, SwapStrategy, SwapTarget};
use rotor_sim::SimConfig;
use serde_json::json;

#[derive(Args)]
pub struct DemoArgs {
    /// Number of simulated clusters in the sample fleet.
    #[arg(long, default_value_t = 10)]
    pub clusters: usize,
    /// Print the report as one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
    /// Fault to inject: `green-unhealthy` (green fails its requests once it has 50 %).
    #[arg(long)]
    pub inject: Option<String>,
    /// Traffic layer: HAProxy when installed (`auto`), or the embedded router.
    #[arg(long, value_enum, default_value_t = TrafficArg::Auto)]
    pub traffic: TrafficArg,
    /// Concurrent requests kept in flight across the fleet's endpoints.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Give up (and report) after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_s: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TrafficArg {
    Auto,
    Haproxy,
    Sim,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let inject_unhealthy = match args.inject.as_deref() {
        None => false,
        Some("green-unhealthy") => true,
        Some(other) => anyhow::bail!("--inject {other:?}: the known fault is green-unhealthy"),
    };
    let started = Instant::now();
    let progress = |msg: String| {
        if !args.json {
            eprintln!("[{:6.2}s] {msg}", started.elapsed().as_secs_f64());
        }
    };
    let traffic = match args.traffic {
        TrafficArg::Haproxy => TrafficChoice::Haproxy,
        TrafficArg::Sim => TrafficChoice::Sim,
        TrafficArg::Auto if rotor_traffic::haproxy::find_haproxy().is_some() => {
            TrafficChoice::Haproxy
        }
        TrafficArg::Auto => TrafficChoice::Sim,
    };
    let r = Rehearsal::start(RehearsalConfig {
        fleet: rotor_api::sample_fleet(args.clusters),
        sim: SimConfig::default(),
        settings: rotor_controllers::Settings {
            drain: Duration::from_millis(500),
            ..Default::default()
        },
        traffic,
    })
    .await?;
    progress(format!(
        "simulator at {} with {} member clusters; control plane and controllers running; traffic through {}",
        r.sim_url,
        args.clusters,
        match traffic {
            TrafficChoice::Haproxy => "HAProxy",
            TrafficChoice::Sim => "the embedded router",
        }
    ));
    r.wait_adopted(Duration::from_secs(60)).await?;
    progress(format!(
        "{} Clusters adopted their instances",
        args.clusters
    ));
    r.deploy_app(Duration::from_secs(120)).await?;
    progress("sample application answers through every cluster's traffic layer".into());

    let load =
        rotor_traffic::load::Load::start(r.app_urls(), args.concurrency, Duration::from_secs(5));
    let swaps: Api<ClusterSwap> = Api::all(r.client.clone());
    for c in &r.fleet {
        let swap = ClusterSwap::new(
            &format!("{}-upgrade", c.name_any()),
            ClusterSwapSpec {
                cluster_ref: c.name_any(),
                target: SwapTarget {
                    kubernetes_version: Some(rotor_api::SAMPLE_TARGET_VERSION.into()),
                    ..Default::default()
                },
                strategy: SwapStrategy {
                    traffic_steps: vec![10, 50, 100],
                    bake_seconds: 1,
                    blue_retention_seconds: 2,
                    ..Default::default()
                },
                paused: false,
                rollback: false,
            },
        );
        swaps
            .create(&PostParams::default(), &swap)
            .await
            .map_err(|e| anyhow::anyhow!("creating ClusterSwap {}: {e}", swap.name_any()))?;
    }
    progress(format!(
        "created {} ClusterSwaps to Kubernetes {}",
        r.fleet.len(),
        rotor_api::SAMPLE_TARGET_VERSION
    ));

    let deadline = started + Duration::from_secs(args.timeout_s);
    let mut broken = std::collections::BTreeSet::new();
    let mut last_line = String::new();
    let counts = loop {
        let list = swaps.list(&ListParams::default()).await?;
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for s in &list.items {
            let st = s.status.clone().unwrap_or_default();
            *counts.entry(st.phase.to_string()).or_default() += 1;
            if inject_unhealthy
                && st.green_weight_percent >= 50
                && st.phase == Phase::ShiftingTraffic
                && let Some(green) = st.green_instance.clone()
                && broken.insert(green.clone())
            {
                r.sim.set_fault(&green, rotor_sim::Fault::TrafficErrors);
                progress(format!("injected: green {green} now fails every request"));
            }
        }
        let line = counts
            .iter()
            .map(|(p, n)| format!("{p}={n}"))
            .collect::<Vec<_>>()
            .join(" ");
        if line != last_line {
            let sent = load.snapshot();
            progress(format!(
                "swaps: {line} | requests {} failed {}",
                sent.requests, sent.failed
            ));
            last_line = line;
        }
        let done = list
            .items
            .iter()
            .all(|s| s.status.clone().unwrap_or_default().phase.is_terminal());
        if done && list.items.len() == r.fleet.len() {
            break counts;
        }
        if Instant::now() > deadline {
            progress(format!("timed out after {}s", args.timeout_s));
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let sent = load.stop().await;
    let count = |p: Phase| counts.get(p.as_str()).copied().unwrap_or(0);
    if !args.json {
        println!(
            "{:<36} {:<14} {:<8} GREEN",
            "CLUSTERSWAP", "PHASE", "GREEN%"
        );
        for s in swaps.list(&ListParams::default()).await?.items {
            let st = s.status.clone().unwrap_or_default();
            println!(
                "{:<36} {:<14} {:<8} {}",
                s.name_any(),
                st.phase.as_str(),
                st.green_weight_percent,
                st.green_instance.unwrap_or_default()
            );
        }
    }
    let report = json!({
        "clusters": r.fleet.len(),
        "traffic": match traffic { TrafficChoice::Haproxy => "haproxy", TrafficChoice::Sim => "sim" },
        "swaps_succeeded": count(Phase::Succeeded),
        "swaps_failed": count(Phase::Failed),
        "swaps_rolled_back": count(Phase::RolledBack),
        "swaps_unfinished": r.fleet.len() - count(Phase::Succeeded) - count(Phase::Failed) - count(Phase::RolledBack),
        "requests_total": sent.requests,
        "requests_failed": sent.failed,
        "injected": args.inject,
        "wall_s": (started.elapsed().as_secs_f64() * 100.0).round() / 100.0,
    });
    if args.json {
        println!("{report}");
    } else {
        eprintln!("report: {report}");
    }
    Ok(())
}
