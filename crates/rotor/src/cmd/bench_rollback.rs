//! `rotor bench rollback`: time from a gate failure to 100 % of requests on blue.
//!
//! Each run rehearses one swap under steady load (HAProxy when installed, else the embedded
//! router) with the controllers' production timings, waits until green carries 50 %, then breaks
//! green (every request it gets answers 503) at t0. The clock stops when the traffic layer
//! reports all weight on blue *and* green's request counter stops moving (no request lands on
//! green any more).

use std::time::{Duration, Instant};

use clap::Args;
use kube::api::{Api, PostParams};
use rotor::rehearsal::{Rehearsal, RehearsalConfig, TrafficChoice};
use rotor_api::{ClusterSwap, ClusterSwapSpec, SwapStrategy, SwapTarget};
use rotor_traffic::{TrafficShifter, Weights};
use serde_json::json;

#[derive(Args)]
pub struct RollbackArgs {
    /// Rollbacks measured.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// `haproxy` (default when installed) or `sim`.
    #[arg(long)]
    pub traffic: Option<String>,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: RollbackArgs) -> anyhow::Result<()> {
    let traffic = match args.traffic.as_deref() {
        Some("haproxy") => TrafficChoice::Haproxy,
        Some("sim") => TrafficChoice::Sim,
        None if rotor_traffic::haproxy::find_haproxy().is_some() => TrafficChoice::Haproxy,
        None => TrafficChoice::Sim,
        Some(other) => anyhow::bail!("--traffic {other:?}: expected haproxy or sim"),
    };
    let mut samples = Vec::new();
    let mut failed_requests = 0;
    for run in 0..args.runs.max(1) {
        let (ms, failed) = once(traffic).await?;
        if !args.json {
            eprintln!("run {run}: gate failure -> all traffic on blue in {ms:.0} ms");
        }
        samples.push(ms);
        failed_requests += failed;
    }
    samples.sort_by(f64::total_cmp);
    let p50 = samples[samples.len() / 2];
    let max = samples[samples.len() - 1];
    let report = json!({
        "traffic": match traffic { TrafficChoice::Haproxy => "haproxy", TrafficChoice::Sim => "sim" },
        "runs": samples.len(),
        "rollback_ms": (p50 * 10.0).round() / 10.0,
        "rollback_max_ms": (max * 10.0).round() / 10.0,
        "gate_interval_ms": rotor_controllers::Settings::default().gate_interval.as_millis() as u64,
        "requests_failed": failed_requests,
    });
    println!("{report}");
    Ok(())
}

async fn once(traffic: TrafficChoice) -> anyhow::Result<(f64, u64)> {
    let r = Rehearsal::start(RehearsalConfig {
        fleet: rotor_api::sample_fleet(1),
        sim: rotor_sim::SimConfig {
            cloud: rotor_sim::CloudConfig {
                create_latency: Duration::from_millis(200),
                ..Default::default()
            },
            ..Default::default()
        },
        settings: rotor_controllers::Settings::default(),
        traffic,
        clock: None,
    })
    .await?;
    r.wait_adopted(Duration::from_secs(30)).await?;
    r.deploy_app(Duration::from_secs(30)).await?;
    let endpoint = r.fleet[0].spec.traffic.endpoint.clone();
    let shifter: Box<dyn TrafficShifter> = match (&r.haproxy, &r.sim_router) {
        (Some(h), _) => Box::new(h.shifter()),
        (None, Some((s, _))) => Box::new(s.clone()),
        (None, None) => anyhow::bail!("no traffic layer"),
    };
    let load = rotor_traffic::load::Load::start(r.app_urls(), 8, Duration::from_secs(5));
    let swaps: Api<ClusterSwap> = Api::all(r.client.clone());
    let swap = ClusterSwap::new(
        "bench-rollback",
        ClusterSwapSpec {
            cluster_ref: r.fleet[0].spec.traffic.endpoint.clone(),
            target: SwapTarget {
                kubernetes_version: Some(rotor_api::SAMPLE_TARGET_VERSION.into()),
                ..Default::default()
            },
            strategy: SwapStrategy {
                traffic_steps: vec![50, 100],
                bake_seconds: 600,
                ..Default::default()
            },
            paused: false,
            rollback: false,
            hold_before_traffic: false,
        },
    );
    swaps.create(&PostParams::default(), &swap).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let green = loop {
        let s = swaps.get("bench-rollback").await?;
        let st = s.status.unwrap_or_default();
        if st.green_weight_percent == 50 && shifter.weights(&endpoint).await? == Weights::green(50)?
        {
            break st.green_instance.unwrap_or_default();
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "green never reached 50 %: {:?}",
            st.phase
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // Let the step's gate baseline settle, then break green.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = Instant::now();
    r.sim.set_fault(&green, rotor_sim::Fault::TrafficErrors);
    loop {
        if shifter.weights(&endpoint).await? == Weights::all_blue() {
            break;
        }
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(30),
            "no rollback within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Weight is on blue; now wait until green stops receiving requests (those in flight end).
    let mut last = shifter.backend_stats(&endpoint).await?.green.requests;
    let mut still_since = Instant::now();
    let mut end = Instant::now();
    while still_since.elapsed() < Duration::from_millis(200) {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let now = shifter.backend_stats(&endpoint).await?.green.requests;
        if now != last {
            last = now;
            still_since = Instant::now();
            end = Instant::now();
        }
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(30),
            "green keeps receiving requests"
        );
    }
    let ms = end.max(t0).duration_since(t0).as_secs_f64() * 1000.0;
    let report = load.stop().await;
    Ok((ms, report.failed))
}
