//! `rotor bench dashboard`: how the dashboard holds up with a large fleet and many swaps
//! running (issue 21: "the page stays responsive, updates appear within a second").
//!
//! A rehearsal of `--clusters` simulated clusters runs one Rollout over all of them with
//! `maxConcurrentSwaps: --concurrent`. Three headless Chromium sessions show the fleet view, the
//! rollouts view and one running swap's view (`follow.rs`: the swap that began last, then the
//! next when it ends) side by side. For `--seconds` after the first swap began, the bench
//! watches the Clusters and ClusterSwaps itself and notes when each change arrives (wall
//! clock); a probe in each page (`probe.js`) notes when the DOM shows it: the fleet cell's
//! state turning Swapping and back, the last phase of each swap's row in the rollout's
//! timeline, and the swap view's last phase and green weight. The delays between the two are
//! reported as p50/p99/max, with the pages' long tasks (main thread busy over 50 ms at once:
//! count, longest, total). JSON on the last line.

mod browser;
mod delays;
mod follow;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use rotor::rehearsal::{Rehearsal, RehearsalConfig, TrafficChoice};
use rotor_api::{Cluster, ClusterSwap, Rollout};
use serde_json::{Value, json};

use delays::{Change, delays, quantile};

#[derive(Args)]
pub struct DashboardArgs {
    /// Simulated clusters in the fleet.
    #[arg(long, default_value_t = 1000)]
    pub clusters: usize,
    /// The rollout's `maxConcurrentSwaps`.
    #[arg(long, default_value_t = 50)]
    pub concurrent: u32,
    /// How long changes are measured, from the first swap's start.
    #[arg(long, default_value_t = 90)]
    pub seconds: u64,
    /// Each swap's bake per traffic step (it keeps swaps running: 3 steps of this long each).
    #[arg(long, default_value_t = 5)]
    pub step_seconds: u64,
    #[arg(long)]
    pub json: bool,
}

/// What the bench's own watches saw: changes as the pages should show them.
#[derive(Default)]
struct Seen {
    /// `cluster/NAME` → swapping or not (`status.currentSwap` set: the cell says Swapping).
    clusters: Vec<Change>,
    /// `swap/CLUSTER` → the phase of the last entry of `status.history` (the timeline's).
    swaps: Vec<Change>,
    /// `phase/CLUSTER` → the same phase, `weight/CLUSTER` → green's weight: the swap view's.
    swap_view: Vec<Change>,
    /// Swaps not ended now, sampled every second of the measurement.
    running: Vec<usize>,
    last: HashMap<String, String>,
    /// Cluster → whether its swap ended.
    ended: HashMap<String, bool>,
    /// Cluster → its swap's name, and when the bench saw it begin (wall clock, ms).
    names: HashMap<String, String>,
    begun_at: HashMap<String, f64>,
}

impl Seen {
    /// The change of `key` to `value`, unless it is none or the state before the measurement.
    fn note(&mut self, key: String, value: String, initial: bool) -> Option<Change> {
        if self.last.get(&key) == Some(&value) {
            return None;
        }
        self.last.insert(key.clone(), value.clone());
        (!initial).then(|| Change {
            key,
            value,
            at_ms: wall_ms(),
        })
    }
}

fn wall_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

pub async fn run(args: DashboardArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let r = rehearsal(args.clusters).await?;
    let set_up_s = started.elapsed().as_secs_f64();
    let driver = browser::Driver::start().await?;
    let fleet = driver.page().await?;
    let rollouts = driver.page().await?;
    let swap = driver.page().await?;
    fleet.open(&r.control_plane_url, &r.token, "fleet").await?;
    rollouts
        .open(&r.control_plane_url, &r.token, "rollouts")
        .await?;
    // On the fleet until a swap runs; then on a swap's page (`follow`).
    swap.open(&r.control_plane_url, &r.token, "fleet").await?;
    let cells = format!(
        "return document.querySelectorAll('#fleet .cell').length === {};",
        args.clusters
    );
    fleet
        .until(&cells, Duration::from_secs(120), "every cluster a cell")
        .await?;
    rollouts
        .until(
            "return !!document.querySelector('#rollouts-list .empty');",
            Duration::from_secs(60),
            "the rollouts view drawn",
        )
        .await?;
    for page in [&fleet, &rollouts, &swap] {
        page.run(include_str!("probe.js")).await?;
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let watching = watch(&r, seen.clone());
    let mut follower = follow::Follower::new(&swap);
    let measured = measure(&r, &args, &seen, &mut follower);
    let measured = tokio::select! {
        m = measured => m?,
        () = watching => anyhow::bail!("the bench's watches ended"),
    };
    let followed = follower.finish();
    let pages = Pages {
        fleet: &fleet,
        rollouts: &rollouts,
        swap: &swap,
    };
    let report = report(&args, &seen, &pages, &followed, measured, set_up_s).await?;
    fleet.close().await?;
    rollouts.close().await?;
    swap.close().await?;
    println!("{report}");
    Ok(())
}

async fn rehearsal(clusters: usize) -> anyhow::Result<Rehearsal> {
    let r = Rehearsal::start(RehearsalConfig {
        fleet: rotor_api::sample_fleet(clusters),
        sim: rotor_sim::SimConfig {
            nodes: 1,
            cloud: rotor_sim::CloudConfig {
                create_latency: Duration::from_secs(1),
                ..Default::default()
            },
            ..Default::default()
        },
        settings: rotor_controllers::Settings::default(),
        traffic: TrafficChoice::Sim,
        clock: None,
        clouds: Vec::new(),
    })
    .await?;
    r.wait_adopted(Duration::from_secs(600)).await?;
    Ok(r)
}

/// Follows the Clusters and ClusterSwaps, noting each change the pages should show.
async fn watch(r: &Rehearsal, seen: Arc<Mutex<Seen>>) {
    let clusters = watcher(Api::<Cluster>::all(r.client.clone()), Default::default());
    let swaps = watcher(
        Api::<ClusterSwap>::all(r.client.clone()),
        Default::default(),
    );
    let on_cluster = |event: Result<watcher::Event<Cluster>, watcher::Error>| {
        let (c, initial) = match event {
            Ok(watcher::Event::Apply(c)) => (c, false),
            Ok(watcher::Event::InitApply(c)) => (c, true),
            _ => return,
        };
        let swapping = c.status.as_ref().is_some_and(|s| s.current_swap.is_some());
        let key = format!("cluster/{}", c.name_any());
        let value = if swapping { "swapping" } else { "not swapping" };
        let mut seen = lock(&seen);
        if let Some(change) = seen.note(key, value.into(), initial) {
            seen.clusters.push(change);
        }
    };
    let on_swap = |event: Result<watcher::Event<ClusterSwap>, watcher::Error>| {
        let (s, initial) = match event {
            Ok(watcher::Event::Apply(s)) => (s, false),
            Ok(watcher::Event::InitApply(s)) => (s, true),
            _ => return,
        };
        let name = s.name_any();
        let status = s.status.unwrap_or_default();
        let cluster = s.spec.cluster_ref;
        let mut seen = lock(&seen);
        let ended = status.phase.is_terminal();
        seen.ended.insert(cluster.clone(), ended);
        seen.names.insert(cluster.clone(), name);
        let Some(last) = status.history.last() else {
            return;
        };
        seen.begun_at.entry(cluster.clone()).or_insert_with(wall_ms);
        let phase = format!("{:?}", last.phase);
        let weight = status.green_weight_percent.to_string();
        if let Some(c) = seen.note(format!("swap/{cluster}"), phase.clone(), initial) {
            seen.swaps.push(c);
        }
        for (key, value) in [("phase", phase), ("weight", weight)] {
            if let Some(c) = seen.note(format!("{key}/{cluster}"), value, initial) {
                seen.swap_view.push(c);
            }
        }
    };
    tokio::join!(
        clusters.for_each(|e| {
            on_cluster(e);
            async {}
        }),
        swaps.for_each(|e| {
            on_swap(e);
            async {}
        }),
    );
}

fn lock(seen: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts the rollout, waits for its first swap, then measures for `--seconds`, sampling the
/// swaps running each second and moving the swap view's page on when its swap ended. The wall
/// time measured, s.
async fn measure(
    r: &Rehearsal,
    args: &DashboardArgs,
    seen: &Mutex<Seen>,
    follower: &mut follow::Follower<'_>,
) -> anyhow::Result<f64> {
    let rollout: Rollout = serde_json::from_value(json!({
        "apiVersion": "rotor.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "bench-dashboard"},
        "spec": {
            "clusterSelector": {},
            "target": {"kubernetesVersion": rotor_api::SAMPLE_TARGET_VERSION},
            "waves": [{"name": "all", "percent": 100}],
            "maxConcurrentSwaps": args.concurrent,
            "failureBudget": "100%",
            "approval": "Automatic",
            "bakeSecondsBetweenWaves": 0,
            "strategy": {
                "trafficSteps": [25, 50, 100],
                "bakeSeconds": args.step_seconds,
                "blueRetentionSeconds": 0,
            },
        },
    }))?;
    Api::<Rollout>::all(r.client.clone())
        .create(&PostParams::default(), &rollout)
        .await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while lock(seen).swaps.is_empty() {
        anyhow::ensure!(Instant::now() < deadline, "no swap began within 120 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let from = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while from.elapsed() < Duration::from_secs(args.seconds) {
        tick.tick().await;
        {
            let mut s = lock(seen);
            let running = s.ended.values().filter(|ended| !**ended).count();
            s.running.push(running);
        }
        follower.step(seen).await?;
    }
    Ok(from.elapsed().as_secs_f64())
}

/// The probe's records and long tasks of `page`.
async fn probe(page: &browser::Page) -> anyhow::Result<(Vec<Change>, Vec<f64>)> {
    let v = page
        .run("const p = window.__rotorBench; return {records: p.records, longTasks: p.longTasks};")
        .await?;
    let records = v["records"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| Change {
                    key: r[0].as_str().unwrap_or_default().to_string(),
                    value: r[1].as_str().unwrap_or_default().to_string(),
                    at_ms: r[2].as_f64().unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    let long = v["longTasks"]
        .as_array()
        .map(|ts| ts.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    Ok((records, long))
}

/// One view's figures: delays from the API's change to the DOM, and long tasks.
fn view(api: &[Change], dom: &[Change], long: &[f64], shows: fn(&str, &str) -> bool) -> Value {
    let (mut found, missed) = delays(api, dom, shows);
    found.sort_by(f64::total_cmp);
    let r1 = |x: f64| (x * 10.0).round() / 10.0;
    json!({
        "changes_shown": found.len(),
        "changes_not_shown": missed,
        "delay_p50_ms": r1(quantile(&found, 0.50)),
        "delay_p99_ms": r1(quantile(&found, 0.99)),
        "delay_max_ms": r1(quantile(&found, 1.0)),
        "over_1s": found.iter().filter(|d| **d > 1000.0).count(),
        "long_tasks": long.len(),
        "long_task_max_ms": r1(long.iter().copied().fold(0.0, f64::max)),
        "long_task_total_ms": r1(long.iter().fold(0.0, |a, b| a + b)),
    })
}

/// The three pages measured.
struct Pages<'a> {
    fleet: &'a browser::Page,
    rollouts: &'a browser::Page,
    swap: &'a browser::Page,
}

async fn report(
    args: &DashboardArgs,
    seen: &Mutex<Seen>,
    pages: &Pages<'_>,
    followed: &[follow::Window],
    measured_s: f64,
    set_up_s: f64,
) -> anyhow::Result<Value> {
    let (fleet_dom, fleet_long) = probe(pages.fleet).await?;
    let (rollouts_dom, rollouts_long) = probe(pages.rollouts).await?;
    let (swap_dom, swap_long) = probe(pages.swap).await?;
    let s = lock(seen);
    let swap_api = follow::while_shown(&s.swap_view, followed);
    let mut running = s.running.clone();
    running.sort_unstable();
    let mean = running.iter().sum::<usize>() as f64 / running.len().max(1) as f64;
    Ok(json!({
        "clusters": args.clusters,
        "max_concurrent_swaps": args.concurrent,
        "measured_s": (measured_s * 10.0).round() / 10.0,
        "set_up_s": set_up_s.round(),
        "swaps_running_mean": (mean * 10.0).round() / 10.0,
        "swaps_running_min": running.first().copied().unwrap_or(0),
        "swaps_running_max": running.last().copied().unwrap_or(0),
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "fleet_view": view(&s.clusters, &fleet_dom, &fleet_long, |api, dom| {
            (api == "swapping") == (dom == "swapping")
        }),
        "rollouts_view": view(&s.swaps, &rollouts_dom, &rollouts_long, |api, dom| api == dom),
        "swap_view": view(&swap_api, &swap_dom, &swap_long, |api, dom| api == dom),
        "swaps_followed": followed.len(),
        "note": "delay: the bench's own watch seeing a change (wall clock) to the page's \
                 MutationObserver seeing the DOM show it (Date.now(), same machine); the \
                 rollouts view counts only clusters its timeline's first page draws (the \
                 first 200 swaps); the swap view, the last phase and green weight of the swaps \
                 it followed, while it showed each",
    }))
}
