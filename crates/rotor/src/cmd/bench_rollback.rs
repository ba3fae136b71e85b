//! `rotor bench rollback`: time from a gate failure to 100 % of requests on blue.
//!
//! Each run rehearses one swap under steady load (HAProxy when installed, else the embedded
//! router) with the controllers' production timings, waits until green carries 50 % and the
//! step's gate baseline has settled (500 ms), then breaks green (every request it gets answers
//! 503) at t0, a uniformly random moment within one more gate interval: where a fault lands
//! relative to the gate's checks is what spreads the figure, so each run draws it (the seed is
//! reported). The clock stops when the traffic layer reports all weight on blue *and* green's
//! request counter stops moving (no request lands on green any more).

use std::time::{Duration, Instant};

use super::round;
use clap::Args;
use kube::api::{Api, PostParams};
use rotor::rehearsal::{Rehearsal, RehearsalConfig, TrafficChoice};
use rotor_api::{ClusterSwap, ClusterSwapSpec, SwapStrategy, SwapTarget};
use rotor_traffic::Weights;
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
    /// Seed of the fault moments (by default from the clock; reported either way).
    #[arg(long)]
    pub seed: Option<u64>,
}

pub async fn run(args: RollbackArgs) -> anyhow::Result<()> {
    let traffic = match args.traffic.as_deref() {
        Some("haproxy") => TrafficChoice::Haproxy,
        Some("sim") => TrafficChoice::Sim,
        None if rotor_traffic::haproxy::find_haproxy().is_some() => TrafficChoice::Haproxy,
        None => TrafficChoice::Sim,
        Some(other) => anyhow::bail!("--traffic {other:?}: expected haproxy or sim"),
    };
    let seed = args.seed.unwrap_or_else(time_seed);
    let mut rng = XorShift(seed | 1);
    let gate_interval = rotor_controllers::Settings::default().gate_interval;
    let mut samples = Vec::new();
    let mut failed_requests = 0;
    for run in 0..args.runs.max(1) {
        let phase = gate_interval.mul_f64(rng.unit());
        let (ms, failed) = once(traffic, phase).await?;
        if !args.json {
            eprintln!(
                "run {run}: fault {:.0} ms into a gate interval -> all traffic on blue in \
                 {ms:.0} ms",
                phase.as_secs_f64() * 1000.0
            );
        }
        samples.push(ms);
        failed_requests += failed;
    }
    let runs: Vec<f64> = samples.iter().map(|ms| round(*ms, 1)).collect();
    samples.sort_by(f64::total_cmp);
    let report = json!({
        "traffic": traffic.as_str(),
        "runs": samples.len(),
        "seed": seed,
        "rollback_p50_ms": round(nearest_rank(&samples, 0.50), 1),
        "rollback_p90_ms": round(nearest_rank(&samples, 0.90), 1),
        "rollback_p99_ms": round(nearest_rank(&samples, 0.99), 1),
        "rollback_max_ms": round(nearest_rank(&samples, 1.0), 1),
        "rollback_runs_ms": runs,
        "gate_interval_ms": gate_interval.as_millis() as u64,
        "requests_failed": failed_requests,
    });
    println!("{report}");
    Ok(())
}

/// The `q`-quantile of `sorted` (ascending, not empty) by nearest rank.
fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// A seed from the clock, for runs that do not give one.
fn time_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

/// xorshift64: enough to spread faults over a gate interval, and replayable from its seed.
struct XorShift(u64);

impl XorShift {
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The endpoint's weights, `None` while a change is half applied (HAProxy sets one server at a
/// time, and a read between the two finds them not summing to 100).
async fn weights(
    shifter: &dyn rotor_traffic::TrafficShifter,
    endpoint: &str,
) -> anyhow::Result<Option<Weights>> {
    match shifter.weights(endpoint).await {
        Ok(w) => Ok(Some(w)),
        Err(rotor_traffic::TrafficError::Verify { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn once(traffic: TrafficChoice, phase: Duration) -> anyhow::Result<(f64, u64)> {
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
        clouds: Vec::new(),
    })
    .await?;
    r.wait_adopted(Duration::from_secs(30)).await?;
    r.deploy_app(Duration::from_secs(30)).await?;
    let endpoint = r.fleet[0].spec.traffic.endpoint.clone();
    let shifter = r
        .shifter()
        .ok_or_else(|| anyhow::anyhow!("no traffic layer"))?;
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
        if st.green_weight_percent == 50
            && weights(shifter.as_ref(), &endpoint).await? == Weights::green(50).ok()
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
    // Let the step's gate baseline settle, then break green at the drawn phase.
    tokio::time::sleep(Duration::from_millis(500) + phase).await;
    let t0 = Instant::now();
    r.sim.set_fault(&green, rotor_sim::Fault::TrafficErrors);
    loop {
        if weights(shifter.as_ref(), &endpoint).await? == Some(Weights::all_blue()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(nearest_rank(&ten, 0.5), 5.0);
        assert_eq!(nearest_rank(&ten, 0.9), 9.0);
        assert_eq!(nearest_rank(&ten, 0.99), 10.0);
        assert_eq!(nearest_rank(&[3.0], 0.5), 3.0);
    }

    #[test]
    fn fault_phases_spread_over_the_interval() {
        let mut rng = XorShift(42);
        let draws: Vec<f64> = (0..1000).map(|_| rng.unit()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        // Each tenth of the interval gets some (uniform: about 100 each).
        for tenth in 0..10 {
            let lo = f64::from(tenth) / 10.0;
            let n = draws.iter().filter(|u| (lo..lo + 0.1).contains(*u)).count();
            assert!((50..150).contains(&n), "tenth {tenth}: {n}");
        }
    }
}
