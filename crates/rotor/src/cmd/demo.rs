//! `rotor demo`: the main job on the embedded default. Starts a simulated fleet and cloud, an
//! embedded control plane with its controllers and a traffic layer (HAProxy when installed,
//! else the embedded router), deploys a sample application into every member, sends a mixed load
//! through every cluster's traffic layer (GETs, POSTs with bodies, slow requests and long-lived
//! streams: [`rotor_traffic::load::Mix`]), and rotates the whole fleet blue-green with one staged
//! Rollout (a canary, the staging clusters, 10 % of prod, the rest), then reports, per method.
//! By default (`--inject green-unhealthy`; `--inject none` turns it off) one failure is injected:
//! the canary's green breaks once it carries half the traffic. That swap rolls back (within the
//! failure budget) and is then retried as an operator would (`rotor rollout retry`), with a
//! fresh green. Failed GETs are retried on blue by the traffic layer; POSTs are never retried,
//! so those green took before the gate tripped can fail (under `green-hangs`, those it held).
//! Behind the clouds' DNS (`--traffic dns`) nothing retries and nothing counts requests: the
//! swaps are gated on green's own series in a Prometheus the demo runs ([`dns_gates`]), and
//! the faulty green's requests of every method fail until the gate trips and the TTL runs out.
//! `--inject hook-deny` injects no fault: the Rollout's strategy carries a lifecycle hook
//! (a webhook after migration) whose receiver, run by the demo, verifies every call's
//! signature and denies the first call; that swap rolls back before any traffic moved, and is
//! retried the same way.
//!
//! `critical_path_s` is the lower bound of the run given the rollout's waves, its concurrency
//! limit and the measured duration of every swap ([`critical_path`]), plus the set-up before the
//! rollout started and the pre-flight before its first wave (both measured, `setup_s` and
//! `preflight_s`); `wall_s / critical_path_s` is the scheduling overhead.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::WatchStreamExt;
use rotor::rehearsal::{Rehearsal, RehearsalConfig, TrafficChoice};

use injection::{Injection, inject_if_half, injected_fault, rolled_back_at};
use rotor_api::{ClusterSwap, Phase, Rollout, RolloutPhase};
use rotor_sim::SimConfig;
use serde_json::json;

mod cpu;
mod critical_path;
mod dns_gates;
mod hooks;
mod injection;
pub(super) mod limits;
mod report;

/// `--inject hook-deny`: a lifecycle hook denies, no simulator fault.
const HOOK_DENY: &str = "hook-deny";

use super::round;
use critical_path::{Configured, SwapTiming, configured_critical_path, critical_path};
use report::{Cut, by_method, not_succeeded, record_timing, swaps_by_cloud, swaps_with_events};

#[derive(Args)]
pub struct DemoArgs {
    /// Number of simulated clusters in the sample fleet.
    #[arg(long, default_value_t = 10)]
    pub clusters: usize,
    /// Print the report as one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
    /// Run the fleet on these clouds' APIs as `rotor sim` serves them (`aws`, `azure`, `gcp`;
    /// comma separated), through the real providers and SDKs `rotor serve` uses, the clusters
    /// dealt round robin over them. `sim`: the simulator's own provider runs the fleet instead
    /// (no SDK or serialisation cost: the 1,000-cluster figures are measured so).
    #[arg(long, default_value = "aws,azure,gcp")]
    pub clouds: String,
    /// Fault injected into the canary's green once it has 50 %: `green-unhealthy` (every
    /// request 503; also `green-errors`), `green-hangs` (accepts, never answers),
    /// `green-slow` (answers a second late), `green-resets` (drops connections mid-answer),
    /// `hook-deny` (no fault: a lifecycle hook after migration denies the first swap), or
    /// `none`. A detected fault rolls the swap back; it is then retried with a fresh green.
    #[arg(long, default_value = "green-unhealthy")]
    pub inject: String,
    /// Percentage of the load's requests sent as POST with a body (never retried).
    #[arg(long, default_value_t = 20)]
    pub post_percent: u8,
    /// Percentage of the load's requests the application answers 1–5 s late: in flight at
    /// every weight change and while blue drains.
    #[arg(long, default_value_t = 5)]
    pub slow_percent: u8,
    /// Bound every swap's p95 latency (`healthGates.maxLatencyP95Ms`) in the Rollout: what
    /// `--inject green-slow` needs to be caught. Off by default: the load's slow requests are
    /// slow on purpose, and on a quiet endpoint two of them in one step make a p95.
    #[arg(long)]
    pub max_latency_p95_ms: Option<u32>,
    /// Requests green must answer in each traffic step before the step ends
    /// (`healthGates.minRequests`): with many swaps sharing the load, a step at 10 % may see
    /// none, and a faulty green would pass gates that read no requests. 0: no minimum (as
    /// when `--concurrency 0` sends no load).
    #[arg(long, default_value_t = 3)]
    pub min_requests: u32,
    /// Long-lived streams (server-sent events) held open across the fleet, spread over the
    /// clusters in turn.
    #[arg(long, default_value_t = 20)]
    pub streams: usize,
    /// The control plane's store: `sqlite` (as `rotor serve`, in a temporary directory) or
    /// `memory`.
    #[arg(long, value_enum, default_value_t = StoreArg::Sqlite)]
    pub store: StoreArg,
    /// Traffic layer: HAProxy when installed (`auto`), the embedded router (`sim`), or each
    /// cloud's DNS (`dns`: DNS counts no requests, so `--min-requests` is 0 and every swap is
    /// gated on green's own series in a Prometheus the demo runs; a hang is not caught there).
    #[arg(long, value_enum, default_value_t = TrafficArg::Auto)]
    pub traffic: TrafficArg,
    /// Concurrent requests kept in flight across the fleet's endpoints; 0: none (the streams
    /// alone), and no minimum of requests per step.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Requests per second the load sends (slow requests and streams aside), at most what
    /// `--concurrency` gets answered; 0: as fast as answered. Unpaced, the load takes what the
    /// machine has: on 2 cores at 1,000 clusters, with HAProxy, it sent 7,800 a second and the
    /// control plane it watches got what was left.
    #[arg(long, default_value_t = 2000)]
    pub rate: u32,
    /// Percentage of the load sent to the clusters whose swap is running (the rest goes round
    /// the whole fleet), so every swapping cluster sees many requests at each weight step
    /// however large the fleet.
    #[arg(long, default_value_t = 80)]
    pub focus_percent: u8,
    /// The Rollout's `maxConcurrentSwaps`.
    #[arg(long, default_value_t = 50)]
    pub max_concurrent: u32,
    /// Give up (and report) after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_s: u64,
    /// Also write every swap attempt (cluster, wave, start and end in seconds since the demo
    /// started, phase changes) to this file as JSON lines, to study the schedule.
    #[arg(long)]
    pub timeline: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StoreArg {
    Sqlite,
    Memory,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TrafficArg {
    Auto,
    Haproxy,
    Sim,
    /// Each cloud's DNS (Route 53, Cloud DNS, Traffic Manager) through rotor's shifters of
    /// them, the load resolving the names: needs `--clouds`.
    Dns,
}

/// Runs the demo until its rollout ends, the timeout, or Ctrl-C / SIGTERM. A signal during
/// the rollout ends it as the timeout does: the load stops, the report is printed, and the
/// demo exits non-zero saying so. Before the rollout (setting up a large fleet takes minutes)
/// the set-up is dropped. Either way what the demo started (HAProxy, the fleet's servers) stops
/// with it rather than outliving it.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let (signalled, stop) = tokio::sync::watch::channel(false);
    let mut stopped = stop.clone();
    let signals = tokio::spawn(async move {
        super::shutdown_signal().await;
        let _ = signalled.send(true);
    });
    let waiting = AtomicBool::new(false);
    let before_rollout = async {
        let _ = stopped.changed().await;
        if waiting.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    };
    let out = tokio::select! {
        out = rehearse(args, stop, &waiting) => out,
        _ = before_rollout => Err(anyhow::anyhow!(
            "stopped by a signal before the rollout began; what the demo started is stopped"
        )),
    };
    signals.abort();
    out
}

/// The demo: `stop` turns true on a signal; `waiting` is set once the rollout runs, from when
/// the demo answers a signal with its report.
async fn rehearse(
    args: DemoArgs,
    stop: tokio::sync::watch::Receiver<bool>,
    waiting: &AtomicBool,
) -> anyhow::Result<()> {
    let fault = injected_fault(&args.inject)?;
    let traffic = traffic_choice(args.traffic);
    let prometheus_binary = match traffic {
        TrafficChoice::Dns => {
            dns_gates::prometheus_for(fault, &args.inject, args.max_latency_p95_ms)?
        }
        _ => None,
    };
    anyhow::ensure!(
        args.post_percent <= 100 && args.slow_percent <= 100 && args.focus_percent <= 100,
        "--post-percent, --slow-percent and --focus-percent are percentages (0–100)"
    );
    let pace = rotor_traffic::load::Pace {
        per_second: Some(args.rate).filter(|r| *r > 0),
        focus_percent: args.focus_percent,
    };
    let mix = rotor_traffic::load::Mix {
        post_percent: args.post_percent,
        slow_percent: args.slow_percent,
        streams: args.streams,
    };
    let clouds = match args.clouds.trim() {
        "sim" => Vec::new(),
        list => rotor::rehearsal::Cloud::parse_list(list)?,
    };
    anyhow::ensure!(
        traffic != TrafficChoice::Dns || !clouds.is_empty(),
        "--traffic dns needs the clouds' DNS services: --clouds sim has none (name aws, azure, gcp)"
    );
    let cloud_names: Vec<&str> = clouds.iter().map(|c| c.as_str()).collect();
    let open_files_limit = limits::ensure_open_files(args.clusters as u64)?;
    let memory_available_mib = limits::ensure_memory(args.clusters as u64)?;
    let started = Instant::now();
    let progress = |msg: String| {
        if !args.json {
            eprintln!("[{:6.2}s] {msg}", started.elapsed().as_secs_f64());
        }
    };
    // Kept until the demo ends: the SQLite store lives in it.
    let store_dir = tempfile::tempdir()?;
    let store = match args.store {
        StoreArg::Sqlite => {
            let path = store_dir.path().join("rotor.db");
            rotor::controlplane::open_store(&format!("sqlite:{}", path.display())).await?
        }
        StoreArg::Memory => rotor::controlplane::open_store("memory").await?,
    };
    let r = Rehearsal::start_on(
        RehearsalConfig {
            fleet: rotor_api::sample_fleet_over(args.clusters, &cloud_names),
            sim: SimConfig::default(),
            settings: demo_settings(),
            traffic,
            clock: None,
            clouds: clouds.clone(),
        },
        store,
    )
    .await?;
    progress(format!(
        "simulator at {} with {} member clusters; control plane and controllers running; traffic through {}",
        r.sim_url,
        args.clusters,
        match traffic {
            TrafficChoice::Haproxy => "HAProxy",
            TrafficChoice::Sim => "the embedded router",
            TrafficChoice::Dns => "the clouds' DNS",
        }
    ));
    // The dashboard's sign-in wants the admin token: in a 0600 file, never printed.
    let token_file = store_dir.path().join("admin.token");
    rotor_sim::write_secret_file(&token_file, &r.token)?;
    progress(format!(
        "dashboard at {}{} (sign in with the token in {})",
        r.control_plane_url,
        rotor::ui::PATH,
        token_file.display()
    ));
    let dns_gates = match &prometheus_binary {
        Some(binary) => {
            let sim = r.sim_url.trim_start_matches("http://").parse()?;
            let gates = dns_gates::DnsGates::start(binary, sim, args.max_latency_p95_ms).await?;
            progress(format!(
                "Prometheus at {} scraping the simulator's traffic series; swaps gated on {}",
                gates.prometheus.url,
                gates
                    .gates
                    .iter()
                    .map(|g| g.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            Some(gates)
        }
        None => None,
    };
    r.wait_adopted(Duration::from_secs(60)).await?;
    progress(format!(
        "{} Clusters adopted their instances",
        args.clusters
    ));
    // Every cluster's application is probed through the traffic layer, 16 at a time.
    r.deploy_app(Duration::from_secs(120) + Duration::from_millis(10) * r.fleet.len() as u32)
        .await?;
    progress("sample application answers through every cluster's traffic layer".into());

    let load_started = Instant::now();
    let focus = rotor_traffic::load::Focus::default();
    // The load's URLs are the fleet's, in order: a cluster's index is its URL's.
    let url_of: Arc<HashMap<String, usize>> = Arc::new(
        r.fleet
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name_any(), i))
            .collect(),
    );
    // The load stands for the fleet's clients: it runs on the data plane's runtime.
    let in_data_plane = r.data_plane().enter();
    let load = match r.dns_records() {
        Some(records) => rotor_traffic::load::Load::start_resolving(
            r.app_urls(),
            args.concurrency,
            rotor_traffic::CLIENT_TIMEOUT,
            mix,
            pace,
            focus.clone(),
            records,
        ),
        None => rotor_traffic::load::Load::start_paced(
            r.app_urls(),
            args.concurrency,
            rotor_traffic::CLIENT_TIMEOUT,
            mix,
            pace,
            focus.clone(),
        ),
    };
    drop(in_data_plane);

    // Precise swap timings from a watch (status times have one-second resolution), per swap
    // object (uid): a retried cluster has one per attempt.
    let timings: Arc<Mutex<BTreeMap<String, SwapTiming>>> = Arc::default();
    // The most files this process had open at once (sampled; Linux): the fleet's watches,
    // clients and listeners all live here, and running out of descriptors fails requests.
    let peak_fds = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let fd_task = {
        let peak = peak_fds.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
                    peak.fetch_max(dir.count(), std::sync::atomic::Ordering::Relaxed);
                }
                // Listing 10,000 descriptors costs: once a second, not four times.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    // The injected failure, set from the watch the moment a canary swap's green reaches 50 %
    // (a poll of 1,000 swaps can miss a step of one second).
    let injection: Arc<Mutex<Option<Injection>>> = Arc::default();
    let first_wave = rotor_api::sample_rollout("fleet-upgrade", rotor_api::SAMPLE_TARGET_VERSION)
        .spec
        .waves
        .first()
        .map(|w| w.name.clone())
        .unwrap_or_default();
    let watch_task = {
        let timings = timings.clone();
        let injection = injection.clone();
        let sim = r.sim.clone();
        let haproxy = r.haproxy.as_ref().map(|h| h.shifter());
        let api: Api<ClusterSwap> = Api::all(r.client.clone());
        tokio::spawn(async move {
            let stream = kube::runtime::watcher(api, kube::runtime::watcher::Config::default())
                .default_backoff()
                .applied_objects();
            futures::pin_mut!(stream);
            while let Some(Ok(s)) = stream.next().await {
                let wave = record_timing(&timings, &s, started);
                if let Some(at) = url_of.get(&s.spec.cluster_ref) {
                    let running = s.status.as_ref().is_none_or(|st| !st.phase.is_terminal());
                    focus.set(*at, running);
                }
                let newly_injected = {
                    let mut injected = injection.lock().unwrap_or_else(|p| p.into_inner());
                    let due = injected.is_none() && wave == first_wave;
                    if let Some(fault) = fault.filter(|_| due)
                        && let Some(i) = inject_if_half(&sim, fault, &s, started)
                    {
                        *injected = Some(i);
                        true
                    } else {
                        false
                    }
                }; // (the lock is not held across the await below)
                if newly_injected && let Some(haproxy) = &haproxy {
                    let routed = haproxy
                        .server_states(&s.spec.cluster_ref)
                        .await
                        .ok()
                        .and_then(|states| states.get("green").cloned())
                        .and_then(|g| Some(SocketAddr::new(g.addr?, g.port?)));
                    if let Some(i) = injection.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                        i.routed_address = routed;
                    }
                }
            }
        })
    };

    let mut rollout = rotor_api::sample_rollout("fleet-upgrade", rotor_api::SAMPLE_TARGET_VERSION);
    rollout.spec.max_concurrent_swaps = args.max_concurrent;
    let hook_rx = if args.inject == HOOK_DENY {
        let (receiver, hook) = hooks::deny_first(&r).await?;
        rollout.spec.strategy.hooks.push(hook);
        Some(receiver)
    } else {
        None
    };
    rollout.spec.strategy.health_gates.max_latency_p95_ms = args.max_latency_p95_ms;
    if let Some(g) = &dns_gates {
        rollout.spec.strategy.health_gates.metric_gates = g.gates.clone();
    }
    // A DNS shifter counts no requests: a minimum would hold every step.
    if args.concurrency > 0 && traffic != TrafficChoice::Dns {
        rollout.spec.strategy.health_gates.min_requests = args.min_requests;
    }
    let rollouts: Api<Rollout> = Api::all(r.client.clone());
    let rollout_started = Instant::now();
    let cpu_at_start = cpu::CpuSample::now();
    rollouts
        .create(&PostParams::default(), &rollout)
        .await
        .map_err(|e| anyhow::anyhow!("creating Rollout fleet-upgrade: {e}"))?;
    progress(format!(
        "Rollout fleet-upgrade to Kubernetes {}: waves {}, at most {} swaps at once",
        rotor_api::SAMPLE_TARGET_VERSION,
        rollout
            .spec
            .waves
            .iter()
            .map(|w| w.name.as_str())
            .collect::<Vec<_>>()
            .join(" → "),
        rollout.spec.max_concurrent_swaps
    ));

    let swaps: Api<ClusterSwap> = Api::all(r.client.clone());
    let deadline = started + Duration::from_secs(args.timeout_s);
    let mut broken: Option<String> = None;
    let mut retried = 0u32;
    let mut last_line = String::new();
    let mut preflight_done: Option<Instant> = None;
    let mut cut = None;
    waiting.store(true, Ordering::SeqCst);
    let final_status = loop {
        let ro = rollouts.get("fleet-upgrade").await?;
        let st = ro.status.clone().unwrap_or_default();
        if preflight_done.is_none() && st.preflight.is_some() {
            preflight_done = Some(Instant::now());
        }
        if broken.is_none()
            && let Some(i) = injection.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
        {
            progress(format!(
                "injected {}: green {} of {}",
                args.inject, i.green, i.swap
            ));
            broken = Some(i.swap.clone());
        }
        if broken.is_none()
            && let Some(denied) = hook_rx.as_ref().and_then(hooks::denied)
        {
            progress(format!(
                "hook {} denied {} after migration",
                hooks::HOOK,
                denied.swap
            ));
            broken = Some(denied.swap);
        }
        // The operator's move after a rollback: `rotor rollout retry CLUSTER` (the swap is
        // removed; the rollout starts it again with a fresh green).
        if let Some(name) = broken.clone().filter(|_| retried == 0)
            && let Some(s) = swaps.get_opt(&name).await?
            && s.status.clone().unwrap_or_default().phase == Phase::RolledBack
        {
            swaps.delete(&name, &Default::default()).await?;
            retried += 1;
            progress(format!(
                "{name} rolled back with all traffic on blue; retrying it (rotor rollout retry {})",
                s.spec.cluster_ref
            ));
        }
        let wave = st
            .current_wave
            .and_then(|i| {
                st.waves.get(i as usize).map(|w| {
                    format!(
                        "wave {}/{} {} ({})",
                        i + 1,
                        st.waves.len(),
                        w.name,
                        w.phase.as_str()
                    )
                })
            })
            .unwrap_or_default();
        let c = &st.counts;
        let line = format!(
            "{} {wave} | swaps {}/{} succeeded, {} running, {} rolled back, {} failed",
            st.phase.as_str(),
            c.succeeded,
            c.total,
            c.in_progress,
            c.rolled_back,
            c.failed
        );
        if line != last_line {
            let sent = load.snapshot();
            progress(format!(
                "{line} | requests {} failed {}",
                sent.requests, sent.failed
            ));
            last_line = line;
        }
        if st.phase.is_final() || st.phase == RolloutPhase::Paused {
            break st;
        }
        if Instant::now() > deadline {
            progress(format!("timed out after {}s", args.timeout_s));
            cut = Some(Cut::TimedOut(args.timeout_s));
            break st;
        }
        if *stop.borrow() {
            progress("stopped by a signal: the load stops, the report follows".to_string());
            cut = Some(Cut::Signalled);
            break st;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let rollout_wall = rollout_started.elapsed().as_secs_f64();
    let cpu_busy = cpu_at_start.and_then(|s| s.busy_until(&cpu::CpuSample::now()?));
    let setup = rollout_started.duration_since(started).as_secs_f64();
    watch_task.abort();
    if let Some(path) = &args.timeline {
        let t = timings.lock().unwrap_or_else(|p| p.into_inner());
        report::write_timeline(path, &t, started)?;
    }
    fd_task.abort();
    let (critical, critical_by_wave) = critical_path(
        &final_status,
        &timings.lock().unwrap_or_else(|p| p.into_inner()),
        rollout.spec.max_concurrent_swaps,
        rollout.spec.bake_seconds_between_waves as f64,
        started,
    );
    let counts = final_status.counts.clone();
    let [held, starved] = swaps_with_events(
        &r,
        [
            rotor_api::Reason::GreenRequestsUnanswered,
            rotor_api::Reason::TooFewRequests,
        ],
    )
    .await?;
    let samples = load.failure_samples();
    let failed_by_url = load.failed_by_url();
    let sent = load.stop().await;
    if !args.json {
        println!(
            "{:<10} {:>8} {:>10} {:>11}  PHASE",
            "WAVE", "CLUSTERS", "SUCCEEDED", "ROLLED-BACK"
        );
        let phases: BTreeMap<String, Phase> = swaps
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .map(|s| {
                (
                    s.spec.cluster_ref.clone(),
                    s.status.unwrap_or_default().phase,
                )
            })
            .collect();
        for w in &final_status.waves {
            let of = |p: Phase| {
                w.clusters
                    .iter()
                    .filter(|c| phases.get(*c) == Some(&p))
                    .count()
            };
            println!(
                "{:<10} {:>8} {:>10} {:>11}  {}",
                w.name,
                w.clusters.len(),
                of(Phase::Succeeded),
                of(Phase::RolledBack),
                w.phase.as_str()
            );
        }
    }
    // Clusters the rollout left out (by policy or pre-flight): counted and shown, so a demo
    // that rotated fewer clusters than it has says why.
    let mut skipped_by_reason: BTreeMap<String, usize> = BTreeMap::new();
    for s in &final_status.skipped {
        *skipped_by_reason.entry(s.reason.clone()).or_default() += 1;
    }
    for s in final_status.skipped.iter().take(5) {
        progress(format!(
            "skipped {} ({}): {}",
            s.cluster, s.reason, s.message
        ));
    }
    let wall = started.elapsed().as_secs_f64();
    // The pre-flight runs before any swap may start: its measured time is part of the bound
    // (reported on its own, so it is not hidden in the ratio).
    let preflight_s = preflight_done
        .map(|t| t.duration_since(rollout_started).as_secs_f64())
        .unwrap_or(0.0);
    let critical_path_s = setup + preflight_s + critical;
    // The swap rolled back once and retried, with the traffic steps it baked first: the
    // injected fault's at 50 %, or the hook's denial after migration, before any step.
    let steps = &rollout.spec.strategy.traffic_steps;
    let injected_cluster = injection
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .filter(|i| i.set)
        .map(|i| {
            (
                i.cluster.clone(),
                steps.iter().take_while(|s| **s < 50).count(),
            )
        });
    let rolled_back = injected_cluster.or_else(|| {
        let denied = hook_rx.as_ref().and_then(hooks::denied)?;
        Some((denied.cluster, 0))
    });
    let configured_s = configured_bound(&r, &rollout, &final_status, &mix, rolled_back);
    // Each failed request (the first 50) with its cluster and where that cluster's swaps were
    // at that moment: what a zero-downtime claim that failed needs to be traced.
    let cluster_of: BTreeMap<String, String> = r
        .app_urls()
        .into_iter()
        .zip(r.fleet.iter().map(|c| c.name_any()))
        .collect();
    let failures: Vec<serde_json::Value> = {
        let t = timings.lock().unwrap_or_else(|p| p.into_inner());
        samples
            .iter()
            .map(|f| {
                let at = load_started.duration_since(started).as_secs_f64() + f.at_ms as f64 / 1e3;
                let url = f.url.strip_suffix("/stream").unwrap_or(&f.url);
                let cluster = cluster_of.get(url).cloned().unwrap_or_default();
                let swaps: Vec<serde_json::Value> = t
                    .values()
                    .filter(|s| s.cluster == cluster)
                    .map(|s| {
                        let state = s.history.iter().rev().find(|(t, _, _)| *t <= at);
                        json!({
                            "phase": state.map(|(_, p, _)| p.as_str()),
                            "green_weight_percent": state.map(|(_, _, w)| *w),
                            "history": s.history.iter().map(|(t, p, w)| format!("{:.2}s {p} {w}%", t)).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                json!({"at_s": round(at, 2), "cluster": cluster, "what": f.what, "swaps": swaps})
            })
            .collect()
    };
    let settings = demo_settings();
    let mut report = json!({
        "clusters": r.fleet.len(),
        "traffic": traffic.as_str(),
        "store": match args.store { StoreArg::Sqlite => "sqlite", StoreArg::Memory => "memory" },
        "clouds": if cloud_names.is_empty() { json!("sim") } else { json!(cloud_names) },
        "swaps_by_cloud": swaps_by_cloud(&timings.lock().unwrap_or_else(|p| p.into_inner()), &r.fleet),
        "rollout_phase": final_status.phase.as_str(),
        "rollout_conditions": final_status.conditions.iter().map(|c| json!({
            "type": c.type_.as_str(), "status": c.status.as_str(), "reason": c.reason.as_str(), "message": c.message,
        })).collect::<Vec<_>>(),
        "waves": final_status.waves.len(),
        "swaps_succeeded": counts.succeeded,
        "swaps_failed": counts.failed,
        "swaps_rolled_back": counts.rolled_back + retried,
        "swaps_retried": retried,
        "swaps_held_for_unanswered": held,
        "swaps_unfinished": counts.total - counts.succeeded - counts.failed - counts.rolled_back,
        "clusters_skipped": final_status.skipped.len(),
        "skipped_by_reason": skipped_by_reason,
        "requests_total": sent.requests,
        "requests_failed": sent.failed,
        "requests_failed_by": {
            "status": sent.failed_status,
            "timeout": sent.failed_timeout,
            "connection": sent.failed_connection,
        },
        "requests_by_method": {
            "GET": by_method(&sent.get),
            "POST": by_method(&sent.post),
        },
        "load": {
            "concurrency": args.concurrency,
            "rate_per_s": pace.per_second,
            "focus_percent": pace.focus_percent,
            "sent_per_s": (sent.requests as f64 / load_started.elapsed().as_secs_f64()).round(),
            "post_percent": mix.post_percent,
            "slow_percent": mix.slow_percent,
            "slow_request_s": [rotor_traffic::load::SLOW_REQUEST.0.as_secs(), rotor_traffic::load::SLOW_REQUEST.1.as_secs()],
            "slow_in_flight_max": args.concurrency * rotor_traffic::load::SLOW_IN_FLIGHT_PER_WORKER,
            "slow_sent": sent.slow,
            "client_timeout_s": rotor_traffic::CLIENT_TIMEOUT.as_secs(),
            "proxy_server_timeout_s": rotor_traffic::PROXY_SERVER_TIMEOUT.as_secs(),
        },
        "controllers": {
            "drain_timeout_s": settings.drain_timeout.as_secs_f64(),
            "poll_interval_s": settings.poll_interval.as_secs_f64(),
            "gate_interval_s": settings.gate_interval.as_secs_f64(),
            "unanswered_after_s": settings.unanswered_after.as_secs_f64(),
            "cloud_poll_s": [settings.cloud_poll.first.as_secs_f64(), settings.cloud_poll.max_in_progress.as_secs_f64()],
            "max_latency_p95_ms": args.max_latency_p95_ms,
        },
        "streams_total": sent.streams.opened,
        "streams_broken": sent.streams.broken,
        "streams_refused": sent.streams.refused,
        "injected": args.inject,
        "injected_into": injection.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|i| {
            let back = rolled_back_at(&timings.lock().unwrap_or_else(|p| p.into_inner()), i);
            json!({
                "swap": i.swap, "green": i.green, "at_s": round(i.at_s, 2), "fault_set": i.set,
                "member_address": i.member_address.map(|a| a.to_string()),
                "routed_address": i.routed_address.map(|a| a.to_string()),
                "member_requests": i.counts.as_ref().map(|c| c.read().0),
                "member_faulted": i.counts.as_ref().map(|c| c.read().1),
                "rolled_back_at_s": back.map(|b| round(b, 2)),
                "gate_reaction_s": back.map(|b| round(b - i.at_s, 2)),
                "cluster_failed": report::failed_of(&failed_by_url, &r, &i.cluster),
            })
        }),
        "failures": failures,
        "open_files_peak": peak_fds.load(std::sync::atomic::Ordering::Relaxed),
        "open_files_limit": open_files_limit,
        "setup_s": round(setup, 2),
        "preflight_s": round(preflight_s, 2),
        "rollout_wall_s": round(rollout_wall, 2),
        "critical_path_s": round(critical_path_s, 2),
        "critical_path_by_wave": critical_by_wave,
        "wall_s": round(wall, 2),
        "wall_over_critical_path": round(wall / critical_path_s.max(0.001), 2),
        "critical_path_configured_s": round(configured_s, 2),
        "wall_over_configured": round(rollout_wall / configured_s.max(0.001), 2),
        "cpu_busy_during_rollout": cpu_busy.map(|c| round(c, 2)),
        "cpu_cores": cpu_at_start.map(|s| s.cores()),
    });
    // This process's peak resident memory: the control plane, the simulated fleet and the
    // load (HAProxy, a process of its own, is not counted). Outside `json!`, whose macro
    // recursion the report already fills.
    report["rss_peak_mib"] = json!(super::bench::rss_mib().1.round());
    report["memory_available_mib"] = json!(memory_available_mib);
    report["swaps_held_for_too_few_requests"] = json!(starved);
    report["metric_gates"] = json!(
        rollout
            .spec
            .strategy
            .health_gates
            .metric_gates
            .iter()
            .map(|g| &g.name)
            .collect::<Vec<_>>()
    );
    report["phase_mean_s"] =
        report::phase_means(&timings.lock().unwrap_or_else(|p| p.into_inner()));
    report["migration_stages"] = report::migration_stages(&r.metrics);
    report["rollbacks"] = json!(report::rollbacks(
        &timings.lock().unwrap_or_else(|p| p.into_inner())
    ));
    report["controllers"]["min_requests"] = json!(rollout.spec.strategy.health_gates.min_requests);
    let hook_report = hooks::report(
        hook_rx.as_ref(),
        &timings.lock().unwrap_or_else(|p| p.into_inner()),
    );
    for (field, value) in hook_report {
        report[field] = value;
    }
    if args.json {
        println!("{report}");
    } else {
        eprintln!("report: {report}");
    }
    if let Some(warning) = injection
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(Injection::unexercised)
    {
        eprintln!("warning: {warning}");
    }
    match final_status.phase {
        RolloutPhase::Succeeded => Ok(()),
        phase => Err(not_succeeded(phase, &final_status, cut)),
    }
}

/// `critical_path_configured_s` of this run: the simulator's and the rollout's configured
/// latencies (see [`configured_critical_path`]), the clusters the load holds a stream to, and
/// the cluster whose swap was rolled back (by the injected fault or the denying hook) with the
/// traffic steps it baked before.
fn configured_bound(
    r: &Rehearsal,
    rollout: &Rollout,
    status: &rotor_api::RolloutStatus,
    mix: &rotor_traffic::load::Mix,
    rolled_back: Option<(String, usize)>,
) -> f64 {
    let (sim, strategy) = (r.sim.config(), &rollout.spec.strategy);
    let steps = &strategy.traffic_steps;
    // A step ends once its bake is over and every metric gate has passed enough evaluations
    // in a row, an interval apart; in the first, only once green's series have been scraped.
    let gates = &strategy.health_gates.metric_gates;
    let hold = gates
        .iter()
        .map(|g| f64::from(g.consecutive.saturating_sub(1) * g.interval_seconds))
        .fold(0.0, f64::max);
    let first_data = if gates.is_empty() {
        0.0
    } else {
        rotor::rehearsal::prometheus::SCRAPE_INTERVAL.as_secs_f64()
    };
    let step = (strategy.bake_seconds as f64).max(hold);
    let cfg = Configured {
        green_ready: (sim.cloud.create_latency + sim.node_ready_delay + sim.workload_ready_delay)
            .as_secs_f64(),
        step,
        first_step: (strategy.bake_seconds as f64).max(first_data + hold),
        steps: steps.len(),
        steps_before_fault: rolled_back.as_ref().map_or(0, |(_, baked)| *baked),
        drain_timeout: demo_settings().drain_timeout.as_secs_f64(),
        retention: strategy.blue_retention_seconds as f64,
        delete: sim.cloud.delete_latency.as_secs_f64(),
    };
    // The load opens its streams on the clusters' URLs in turn (rotor-traffic's load). A DNS
    // shifter counts no sessions: every blue drains until the timeout, as one holding a stream.
    let draining_to_timeout = match r.dns_records() {
        Some(_) => r.fleet.len(),
        None => mix.streams.min(r.fleet.len()),
    };
    let streams = r
        .fleet
        .iter()
        .map(|c| c.name_any())
        .cycle()
        .take(draining_to_timeout)
        .collect();
    configured_critical_path(
        status,
        &cfg,
        &streams,
        rolled_back.as_ref().map(|(cluster, _)| cluster.as_str()),
        rollout.spec.max_concurrent_swaps,
        rollout.spec.bake_seconds_between_waves as f64,
    )
}

/// The traffic layer `arg` names: `auto` is HAProxy when installed.
pub(super) fn traffic_choice(arg: TrafficArg) -> TrafficChoice {
    match arg {
        TrafficArg::Haproxy => TrafficChoice::Haproxy,
        TrafficArg::Sim => TrafficChoice::Sim,
        TrafficArg::Auto if rotor_traffic::haproxy::find_haproxy().is_some() => {
            TrafficChoice::Haproxy
        }
        TrafficArg::Auto => TrafficChoice::Sim,
        TrafficArg::Dns => TrafficChoice::Dns,
    }
}

/// The controllers' timings in the demo, where they differ from `rotor serve`'s.
fn demo_settings() -> rotor_controllers::Settings {
    rotor_controllers::Settings {
        // Just longer than the load's slowest request: a drain ends when blue's sessions do,
        // and only a stream, which lasts until blue's workloads stop, reaches the timeout.
        drain_timeout: rotor_traffic::load::SLOW_REQUEST.1 + Duration::from_secs(1),
        // The simulator answers in milliseconds; poll it as often as a watch would tell.
        poll_interval: Duration::from_millis(250),
        // The simulated cloud creates in 500 ms where a real one takes 10–15 minutes. On
        // `rotor serve`'s schedule (250 ms, growing to 10 s) a real create is seen at most ~1 %
        // late, a simulated one up to a third; polling every 50–100 ms brings that to a fifth.
        cloud_poll: rotor_providers::poll::PollPolicy {
            first: Duration::from_millis(50),
            max_in_progress: Duration::from_millis(100),
            ..Default::default()
        },
        // The demo's steps bake 1 s (as long as `rotor serve`'s bound): a green that starts
        // hanging just after its step began would end the step with its requests younger
        // than that, so unjudged. Half the bake leaves the other half to see them.
        unanswered_after: Duration::from_millis(500),
        ..Default::default()
    }
}
