//! What the demo reports beyond the load's and the rollout's own figures: each swap attempt's
//! timing (from the demo's watch), counts of swaps by Event and by cloud, and why the demo
//! fails when its rollout did not succeed.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::api::{Api, ListParams};
use rotor::rehearsal::Rehearsal;
use rotor_api::{ClusterSwap, Phase, RolloutPhase};
use serde_json::json;

use super::critical_path::SwapTiming;

/// Records `swap`'s phase and weight change in its attempt's timing; returns its wave.
pub(super) fn record_timing(
    timings: &Mutex<BTreeMap<String, SwapTiming>>,
    swap: &ClusterSwap,
    started: Instant,
) -> String {
    let st = swap.status.clone().unwrap_or_default();
    let mut t = timings.lock().unwrap_or_else(|p| p.into_inner());
    let entry = t
        .entry(swap.uid().unwrap_or_default())
        .or_insert_with(|| SwapTiming {
            cluster: swap.spec.cluster_ref.clone(),
            wave: swap
                .labels()
                .get(rotor_api::labels::WAVE)
                .cloned()
                .unwrap_or_default(),
            created: Instant::now(),
            finished: None,
            history: Vec::new(),
            rollback: None,
        });
    let step = (st.phase.as_str().to_string(), st.green_weight_percent);
    if entry.history.last().map(|(_, p, w)| (p, *w)) != Some((&step.0, step.1)) {
        entry
            .history
            .push((started.elapsed().as_secs_f64(), step.0, step.1));
    }
    if entry.rollback.is_none()
        && let Some(t) = st.history.iter().find(|t| t.phase == Phase::RollingBack)
    {
        let at = started.elapsed().as_secs_f64();
        entry.rollback = Some((at, t.reason.as_str().to_string(), t.message.clone()));
    }
    if st.phase.is_terminal() && entry.finished.is_none() {
        entry.finished = Some(Instant::now());
    }
    entry.wave.clone()
}

/// Every swap attempt that rolled back, when (seconds since the demo started) and why, as its
/// status said: an injected fault's rollback, and any other (a healthy green must have none).
pub(super) fn rollbacks(timings: &BTreeMap<String, SwapTiming>) -> Vec<serde_json::Value> {
    let mut all: Vec<_> = timings
        .values()
        .filter_map(|t| Some((t.rollback.as_ref()?, t.cluster.as_str())))
        .collect();
    all.sort_by(|a, b| a.0.0.total_cmp(&b.0.0));
    all.into_iter()
        .map(|((at, reason, message), cluster)| {
            json!({"at_s": crate::cmd::round(*at, 2), "cluster": cluster, "reason": reason, "message": message})
        })
        .collect()
}

/// For each of `reasons`, how many swaps have an Event with it: e.g. how many waited for
/// green's unanswered requests before a step ended. One list of the Events serves them all.
pub(super) async fn swaps_with_events<const N: usize>(
    r: &Rehearsal,
    reasons: [rotor_api::Reason; N],
) -> anyhow::Result<[usize; N]> {
    // The controllers post Events in the background: count once those recorded are in.
    if !r.events_posted(Duration::from_secs(10)).await {
        tracing::warn!("some Events were not posted within 10 s: the counts may be short");
    }
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::all(r.client.clone());
    let mut swaps: [std::collections::BTreeSet<String>; N] =
        std::array::from_fn(|_| Default::default());
    for e in events.list(&ListParams::default()).await?.items {
        let Some(at) = reasons
            .iter()
            .position(|reason| e.reason.as_deref() == Some(reason.as_str()))
        else {
            continue;
        };
        if let Some(name) = e.regarding.and_then(|o| o.name) {
            swaps[at].insert(name);
        }
    }
    Ok(swaps.map(|s| s.len()))
}

/// Every swap's end by the cloud of its Cluster (the `rotor.dev/cloud` label): `{"aws":
/// {"succeeded", "rolled_back", "failed"}, …}`, from the demo's watch, so a swap rolled back
/// and then retried counts once in each. A swap still running counts in none.
pub(super) fn swaps_by_cloud(
    timings: &BTreeMap<String, SwapTiming>,
    fleet: &[rotor_api::Cluster],
) -> serde_json::Value {
    let cloud_of: BTreeMap<String, String> = fleet
        .iter()
        .map(|c| {
            let cloud = c.labels().get(rotor_api::labels::CLOUD).cloned();
            (c.name_any(), cloud.unwrap_or_else(|| "unknown".into()))
        })
        .collect();
    let mut by_cloud: BTreeMap<String, BTreeMap<&str, u32>> = BTreeMap::new();
    for t in timings.values() {
        let cloud = cloud_of.get(&t.cluster).cloned().unwrap_or_default();
        let counts = by_cloud.entry(cloud).or_insert_with(|| {
            BTreeMap::from([("succeeded", 0), ("rolled_back", 0), ("failed", 0)])
        });
        let end = match t.history.last().map(|(_, phase, _)| phase.as_str()) {
            Some("Succeeded") => "succeeded",
            Some("RolledBack") => "rolled_back",
            Some("Failed") => "failed",
            _ => continue,
        };
        *counts.entry(end).or_default() += 1;
    }
    json!(by_cloud)
}

/// One method's line of the report.
pub(super) fn by_method(m: &rotor_traffic::load::MethodReport) -> serde_json::Value {
    json!({"total": m.total, "failed": m.failed, "status": m.status, "timeout": m.timeout, "reset": m.reset})
}

/// The failed requests sent to `cluster`'s URL, by method: a fault's cost to the clients.
pub(super) fn failed_of(
    by_url: &BTreeMap<String, rotor_traffic::load::UrlFailures>,
    r: &Rehearsal,
    cluster: &str,
) -> serde_json::Value {
    let url = r
        .fleet
        .iter()
        .find(|c| c.name_any() == cluster)
        .map(|c| r.app_url(&c.spec.traffic.endpoint));
    let failed = url
        .and_then(|u| by_url.get(&u))
        .copied()
        .unwrap_or_default();
    json!({"GET": failed.get, "POST": failed.post})
}

/// `--timeline`: every swap attempt as a JSON line (cluster, wave, start and end in seconds
/// since `started`, phase changes).
pub(super) fn write_timeline(
    path: &std::path::Path,
    timings: &BTreeMap<String, SwapTiming>,
    started: Instant,
) -> anyhow::Result<()> {
    let secs = |i: Instant| i.duration_since(started).as_secs_f64();
    let lines: String = timings
        .values()
        .map(|s| {
            let line = json!({
                "cluster": s.cluster,
                "wave": s.wave,
                "created_s": secs(s.created),
                "finished_s": s.finished.map(secs),
                "history": s.history,
            });
            format!("{line}\n")
        })
        .collect();
    std::fs::write(path, lines)
        .map_err(|e| anyhow::anyhow!("writing --timeline {}: {e}", path.display()))
}

/// What cut the demo's wait for its rollout short.
#[derive(Clone, Copy)]
pub(super) enum Cut {
    /// `--timeout-s`, in seconds.
    TimedOut(u64),
    /// Ctrl-C or SIGTERM.
    Signalled,
}

/// Why the demo fails: the rollout's phase and its conditions (which clusters spent the failure
/// budget, for which reasons), or what cut the wait short.
pub(super) fn not_succeeded(
    phase: RolloutPhase,
    status: &rotor_api::RolloutStatus,
    cut: Option<Cut>,
) -> anyhow::Error {
    let mut why = match (phase, cut) {
        (RolloutPhase::Paused | RolloutPhase::Failed | RolloutPhase::RolledBack, _) => {
            format!("the rollout ended {phase}")
        }
        (_, Some(Cut::Signalled)) => {
            format!("stopped by a signal before the rollout finished (phase {phase})")
        }
        (_, Some(Cut::TimedOut(s))) => {
            format!("the rollout did not finish within {s} s (phase {phase})")
        }
        (_, None) => format!("the rollout stopped in phase {phase}"),
    };
    for c in &status.conditions {
        why.push_str(&format!(
            "\n  {} {}: {}: {}",
            c.type_, c.status, c.reason, c.message
        ));
    }
    anyhow::anyhow!(why)
}

/// Mean seconds a succeeded swap spent in each phase (the traffic steps together), from the
/// demo's watch: where a swap's time beyond its configured latencies goes.
pub(super) fn phase_means(timings: &BTreeMap<String, SwapTiming>) -> serde_json::Value {
    let succeeded: Vec<&SwapTiming> = timings
        .values()
        .filter(|t| t.history.last().is_some_and(|(_, p, _)| p == "Succeeded"))
        .collect();
    let mut sums: BTreeMap<&str, f64> = BTreeMap::new();
    for pair in succeeded.iter().flat_map(|t| t.history.windows(2)) {
        *sums.entry(pair[0].1.as_str()).or_default() += pair[1].0 - pair[0].0;
    }
    let swaps = succeeded.len().max(1) as f64;
    sums.into_iter()
        .map(|(phase, sum)| {
            (
                phase.to_string(),
                json!((sum / swaps * 1000.0).round() / 1000.0),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Each migration stage's mean, in milliseconds, and how many migrations ran.
pub(super) fn migration_stages(metrics: &rotor_controllers::metrics::Metrics) -> serde_json::Value {
    use rotor_controllers::metrics::MigrationStage;
    let mut out = serde_json::Map::new();
    for stage in MigrationStage::ALL {
        let (count, sum) = metrics.migration_stage_total(stage);
        let mean_ms = if count == 0 {
            0.0
        } else {
            sum / count as f64 * 1000.0
        };
        out.insert(
            stage.as_str().to_string(),
            json!({"count": count, "mean_ms": (mean_ms * 10.0).round() / 10.0}),
        );
    }
    out.into()
}
