//! A Rollout's plan before anything moves (`rotor rollout plan`): the waves and their clusters
//! from the same [`plan::frozen`] the controller freezes into status, the windows they wait for,
//! the clusters that would be left out or waited for now, the gates each wave passes, and an
//! estimate of the duration from the strategy's configured durations.

use kube::ResourceExt;
use rotor_api::{
    Cluster, MaintenanceWindow, RolloutSpec, SwapStrategy, UnavailablePolicy, resolve_budget,
};
use serde::Serialize;

use super::plan;
use super::skip::SkipReason;
use super::windows::{Availability, availability};

/// What the estimate counts, said with every estimate.
pub const ESTIMATE_COUNTS: &str = "per swap: every traffic step's bake (or its metric gates' \
     passes in a row, if longer) and blue's retention; per wave: rounds of its concurrency limit \
     over the clusters that would start, then the bake between waves. Not counted: the cloud's \
     create and delete, green's nodes and workloads becoming ready, the migration, the pre-flight, \
     approvals and waits for maintenance windows";

/// The plan of a Rollout over the Clusters given.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    /// The waves in the order they run.
    pub waves: Vec<WavePreview>,
    /// The rollout's own windows (every wave's swaps start only inside one); empty: any time.
    pub maintenance_windows: Vec<MaintenanceWindow>,
    /// Whether now is inside the rollout's windows.
    pub in_window_now: bool,
    /// Selected clusters that would not start now, and why.
    pub blockers: Vec<Blocker>,
    /// The estimated duration, in seconds.
    pub estimate_seconds: u64,
    /// What the estimate counts and leaves out ([`ESTIMATE_COUNTS`]).
    pub estimate_counts: &'static str,
}

/// One wave of the plan.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WavePreview {
    /// The wave's name (`remainder` for the implicit last one).
    pub name: String,
    /// Clusters in the order their swaps start.
    pub clusters: Vec<String>,
    /// Whether the wave waits for `rotor approve` (given `spec.approvedThroughWave` now).
    pub waits_for_approval: bool,
    /// Swaps of this wave at once.
    pub max_concurrent: u32,
    /// Failed or rolled-back swaps this wave tolerates (its own budget; the rollout's holds too).
    pub failure_budget: Option<u32>,
    /// Gates every swap of the wave passes, then the wave's own.
    pub gates: Vec<String>,
    /// Clusters of this wave with maintenance windows of their own.
    pub cluster_windows: Vec<ClusterWindows>,
    /// Bake after the wave before the next opens.
    pub bake_after_seconds: u64,
    /// The rollout's wave gates (`spec.waveGates`) read after this wave before the next opens;
    /// none after the last.
    pub wave_gates: Vec<String>,
    /// This wave's share of the estimate.
    pub estimate_seconds: u64,
}

/// A cluster's own maintenance windows.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterWindows {
    /// The Cluster's name.
    pub cluster: String,
    /// Its `spec.maintenanceWindows`.
    pub windows: Vec<MaintenanceWindow>,
    /// Whether now is inside one of them.
    pub in_window_now: bool,
}

/// A cluster that would not start now.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Blocker {
    /// The Cluster's name.
    pub cluster: String,
    /// The wave it is planned in.
    pub wave: String,
    /// `Operator`, `Stopped`, `Unreachable` or `NotFound`, as `status.skipped[].reason`.
    pub reason: String,
    /// Details for people.
    pub message: String,
    /// Whether the rollout leaves it out (else it waits for it, `unavailableClusters: Wait`).
    pub skipped: bool,
}

/// The waves of `spec` over `clusters` exactly as the controller freezes them into status.
pub fn frozen_plan(spec: &RolloutSpec, clusters: &[Cluster]) -> Vec<rotor_api::WaveStatus> {
    plan::frozen(spec, clusters)
}

/// The plan of `spec` over `clusters` at `now`.
pub fn preview(
    spec: &RolloutSpec,
    clusters: &[Cluster],
    now: chrono::DateTime<chrono::Utc>,
) -> Preview {
    let frozen = plan::frozen(spec, clusters);
    let find = |name: &str| clusters.iter().find(|c| c.name_any() == name);
    let mut blockers = Vec::new();
    for w in &frozen {
        for c in &w.clusters {
            if let Some(b) = blocker(spec, &w.name, c, find(c), now) {
                blockers.push(b);
            }
        }
    }
    let last = frozen.iter().rposition(|w| !w.clusters.is_empty());
    let waves: Vec<WavePreview> = frozen
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let starting = w
                .clusters
                .iter()
                .filter(|c| !blockers.iter().any(|b| b.skipped && &b.cluster == *c))
                .count();
            let bake = match Some(i) == last || w.clusters.is_empty() {
                true => 0,
                false => spec.bake_seconds_between_waves,
            };
            let max_concurrent = spec.waves.get(i).and_then(|x| x.max_concurrent);
            let max_concurrent = max_concurrent
                .unwrap_or(spec.max_concurrent_swaps)
                .min(spec.max_concurrent_swaps);
            let rounds = (starting as u64).div_ceil(u64::from(max_concurrent));
            WavePreview {
                name: w.name.clone(),
                clusters: w.clusters.clone(),
                waits_for_approval: !spec.wave_approved(i),
                max_concurrent,
                failure_budget: spec
                    .waves
                    .get(i)
                    .and_then(|x| x.failure_budget.as_ref())
                    .and_then(|b| resolve_budget(b, w.clusters.len())),
                gates: gates(&spec.strategy),
                cluster_windows: w
                    .clusters
                    .iter()
                    .filter_map(|c| find(c))
                    .filter(|c| !c.spec.maintenance_windows.is_empty())
                    .map(|c| ClusterWindows {
                        cluster: c.name_any(),
                        windows: c.spec.maintenance_windows.clone(),
                        in_window_now: rotor_api::in_windows(&c.spec.maintenance_windows, now),
                    })
                    .collect(),
                bake_after_seconds: bake,
                wave_gates: match Some(i) == last || w.clusters.is_empty() {
                    true => Vec::new(),
                    false => spec.wave_gates.iter().map(describe_metric_gate).collect(),
                },
                estimate_seconds: rounds * swap_seconds(&spec.strategy) + bake,
            }
        })
        .collect();
    Preview {
        estimate_seconds: waves.iter().map(|w| w.estimate_seconds).sum(),
        waves,
        maintenance_windows: spec.maintenance_windows.clone(),
        in_window_now: spec.in_maintenance_window(now),
        blockers,
        estimate_counts: ESTIMATE_COUNTS,
    }
}

/// Why `name` of `wave` would not start now, as the controller would judge it.
fn blocker(
    spec: &RolloutSpec,
    wave: &str,
    name: &str,
    cluster: Option<&Cluster>,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Blocker> {
    let entry = |reason: SkipReason, message: String, skipped: bool| Blocker {
        cluster: name.to_string(),
        wave: wave.to_string(),
        reason: reason.as_str().to_string(),
        message,
        skipped,
    };
    if spec.skip_clusters.iter().any(|c| c == name) {
        let message = "listed in spec.skipClusters".to_string();
        return Some(entry(SkipReason::Operator, message, true));
    }
    match availability(cluster, now) {
        Availability::Ready | Availability::OutsideWindow => None,
        Availability::Unavailable { reason, message } => {
            let skipped = reason == SkipReason::NotFound
                || spec.unavailable_clusters == UnavailablePolicy::Skip;
            Some(entry(reason, message, skipped))
        }
    }
}

/// The gates every swap of the strategy passes, and the hooks it calls, for people (a hook by
/// its name and point, never its URL).
fn gates(strategy: &SwapStrategy) -> Vec<String> {
    let g = &strategy.health_gates;
    let mut out = Vec::new();
    if g.require_availability {
        out.push("green's workloads available".to_string());
    }
    out.push(format!("error rate <= {} %", g.max_error_rate_percent));
    for (q, ms) in g.latency_bounds() {
        out.push(format!("p{} latency <= {ms} ms", (q * 100.0).round()));
    }
    out.extend(g.metric_gates.iter().map(describe_metric_gate));
    for h in &strategy.hooks {
        // The kind, never the webhook's URL: a Job in green or blue, or a webhook.
        let kind = match &h.job {
            Some(job) => format!("a Job in {}", job.cluster),
            None => "a webhook".to_string(),
        };
        out.push(format!(
            "hook {} at {}, {kind} (failurePolicy {})",
            h.name, h.point, h.failure_policy
        ));
    }
    out
}

/// A metric gate for people: its name, bound, passes and interval.
fn describe_metric_gate(m: &rotor_api::MetricGate) -> String {
    format!(
        "metric gate {}: {} over {} evaluations every {} s",
        m.name, m.threshold, m.consecutive, m.interval_seconds
    )
}

/// A swap's configured duration: each traffic step lasts its bake or its metric gates' passes in
/// a row (the first evaluation at the step's start), whichever is longer; then blue's retention.
pub fn swap_seconds(strategy: &SwapStrategy) -> u64 {
    let gates = strategy.health_gates.metric_gates.iter();
    let gate = gates
        .map(|m| u64::from(m.consecutive.saturating_sub(1)) * u64::from(m.interval_seconds))
        .max()
        .unwrap_or(0);
    let step = strategy.bake_seconds.max(gate);
    step * strategy.traffic_steps.len() as u64 + strategy.blue_retention_seconds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::fixtures::{saturday_10am, spec};

    #[test]
    fn the_preview_has_the_frozen_plans_waves_blockers_and_an_estimate() {
        let mut fleet = rotor_api::sample_fleet(5);
        let mut spec_ = spec(serde_json::json!({
            "waves": [{"name": "canary", "count": 1}, {"name": "rest", "percent": 100, "maxConcurrent": 2}],
            "maxConcurrentSwaps": 3,
            "bakeSecondsBetweenWaves": 60,
            "approval": "Manual",
            "strategy": {"trafficSteps": [50, 100], "bakeSeconds": 30, "blueRetentionSeconds": 100},
        }));
        // Two clusters of the second wave are left out: one by an operator, one stopped.
        let rest = plan::frozen(&spec_, &fleet)[1].clusters.clone();
        let (skipped, stopped) = (rest[0].clone(), rest[1].clone());
        spec_.skip_clusters = vec![skipped.clone()];
        let at = fleet
            .iter()
            .position(|c| c.name_any() == stopped)
            .expect("in the fleet");
        fleet[at].spec.stopped = true;
        let p = preview(&spec_, &fleet, saturday_10am());
        let frozen = plan::frozen(&spec_, &fleet);
        let got: Vec<(&str, &[String])> = p
            .waves
            .iter()
            .map(|w| (w.name.as_str(), w.clusters.as_slice()))
            .collect();
        let want: Vec<(&str, &[String])> = frozen
            .iter()
            .map(|w| (w.name.as_str(), w.clusters.as_slice()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(
            p.waves
                .iter()
                .map(|w| w.waits_for_approval)
                .collect::<Vec<_>>(),
            [false, true]
        );
        let mut blockers: Vec<(&str, &str, bool)> = p
            .blockers
            .iter()
            .map(|b| (b.cluster.as_str(), b.reason.as_str(), b.skipped))
            .collect();
        blockers.sort();
        let mut want = [
            (skipped.as_str(), "Operator", true),
            (stopped.as_str(), "Stopped", true),
        ];
        want.sort();
        assert_eq!(blockers, want);
        // A swap: 2 steps of 30 s and 100 s of retention. The canary: 1 round, then 60 s of
        // bake; the rest: 4 clusters, 2 left out, 2 at once: 1 round, no bake after the last.
        assert_eq!(swap_seconds(&spec_.strategy), 160);
        let per_wave: Vec<u64> = p.waves.iter().map(|w| w.estimate_seconds).collect();
        assert_eq!(per_wave, [220, 160]);
        assert_eq!(p.estimate_seconds, 380);
        assert_eq!(p.waves[1].max_concurrent, 2);
        assert!(p.in_window_now);
    }

    #[test]
    fn wave_gates_show_after_every_wave_but_the_last() {
        let fleet = rotor_api::sample_fleet(3);
        let spec_ = spec(serde_json::json!({
            "waves": [{"name": "canary", "count": 1}, {"name": "rest", "percent": 100}],
            "waveGates": [{"name": "fleet-errors", "query": "x{c=~\"{{clusters}}\"}",
                "threshold": {"max": 0.01}, "intervalSeconds": 5, "consecutive": 3}],
        }));
        let p = preview(&spec_, &fleet, saturday_10am());
        let shown: Vec<&[String]> = p.waves.iter().map(|w| w.wave_gates.as_slice()).collect();
        assert_eq!(
            shown,
            [
                &[
                    "metric gate fleet-errors: at most 0.01 over 3 evaluations every 5 s"
                        .to_string()
                ][..],
                &[][..]
            ]
        );
    }

    #[test]
    fn a_metric_gate_longer_than_the_bake_sets_the_steps_length() {
        let mut s = spec(serde_json::json!({
            "strategy": {"trafficSteps": [10, 100], "bakeSeconds": 5, "blueRetentionSeconds": 0,
                "healthGates": {"metricGates": [{"name": "errors", "query": "up",
                    "threshold": {"max": 1}, "intervalSeconds": 10, "consecutive": 4}]}},
        }))
        .strategy;
        assert_eq!(swap_seconds(&s), 60);
        s.health_gates.metric_gates.clear();
        assert_eq!(swap_seconds(&s), 10);
        assert!(
            gates(&s).contains(&"error rate <= 1 %".to_string()),
            "{:?}",
            gates(&s)
        );
    }

    #[test]
    fn the_plan_names_each_hook_and_its_point_never_its_url() {
        let s = spec(serde_json::json!({
            "strategy": {"hooks": [{"name": "smoke", "point": "AfterMigration",
                "webhook": {"url": "https://ci.example.com/s3cret-path",
                    "secretRef": {"name": "hooks", "key": "smoke"}}}]},
        }))
        .strategy;
        let listed = gates(&s);
        assert_eq!(
            listed.last().map(String::as_str),
            Some("hook smoke at AfterMigration, a webhook (failurePolicy Fail)")
        );
        assert!(!listed.iter().any(|g| g.contains("s3cret")), "{listed:?}");
    }
}
