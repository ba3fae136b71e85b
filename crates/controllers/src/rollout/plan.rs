//! The wave plan, computed once from the Clusters selected when the rollout starts and frozen in
//! status; and the pre-flight, run once over the planned clusters before the first wave opens.

use kube::api::{Api, ListParams};
use kube::runtime::reflector::ObjectRef;
use rotor_api::{
    Cluster, PlannedWave, PreflightPolicy, PreflightStatus, RolloutSpec, RolloutStatus,
    SkippedCluster, SwapCounts, WavePhase, WaveStatus,
};

use super::Reconcile;
use super::skip::SkipReason;
use super::status::Decision;
use crate::{Error, preflight};

/// The plan as status holds it: every wave Pending, nothing counted yet.
pub(super) fn freeze(plan: Vec<PlannedWave>) -> Vec<WaveStatus> {
    plan.into_iter()
        .map(|w| WaveStatus {
            name: w.name,
            clusters: w.clusters,
            phase: WavePhase::Pending,
            started_at: None,
            finished_at: None,
            counts: SwapCounts::default(),
            metric_gates: Vec::new(),
        })
        .collect()
}

/// The plan of `spec` over `clusters` as status freezes it; `rotor rollout plan` shows the same.
pub(super) fn frozen(spec: &RolloutSpec, clusters: &[Cluster]) -> Vec<WaveStatus> {
    freeze(spec.plan_waves(clusters))
}

/// `name (clusters), …`, for the plan's Event.
pub(super) fn summary(waves: &[WaveStatus]) -> String {
    let waves: Vec<String> = waves
        .iter()
        .map(|w| format!("{} ({})", w.name, w.clusters.len()))
        .collect();
    waves.join(", ")
}

/// Whether the pre-flight runs now: enabled, not run yet, and no wave opened.
pub(super) fn preflight_due(spec: &RolloutSpec, status: &RolloutStatus) -> bool {
    spec.preflight != PreflightPolicy::Disabled
        && status.preflight.is_none()
        && status.waves.iter().all(|w| w.phase == WavePhase::Pending)
}

/// The clusters the pre-flight checks: every planned one not in `spec.skipClusters`.
pub(super) fn preflight_targets(spec: &RolloutSpec, waves: &[WaveStatus]) -> Vec<String> {
    waves
        .iter()
        .flat_map(|w| w.clusters.iter().cloned())
        .filter(|c| !spec.skip_clusters.contains(c))
        .collect()
}

/// What the pre-flight's `findings` over `checked` clusters say, for people; the clusters left
/// out for them (`SkipBlocked`).
pub(super) fn preflight_report(
    spec: &RolloutSpec,
    waves: &[WaveStatus],
    checked: usize,
    findings: &preflight::Findings,
) -> (String, Vec<SkippedCluster>) {
    let preflight::Findings {
        blocked,
        unavailable,
    } = findings;
    let skip_blocked = spec.preflight == PreflightPolicy::SkipBlocked;
    let mut message = if blocked.is_empty() {
        format!("{checked} clusters checked, none blocked")
    } else {
        let summary: Vec<String> = blocked
            .iter()
            .take(10)
            .map(|b| format!("{}: {}", b.cluster, b.reasons.join("; ")))
            .collect();
        format!(
            "{} of {checked} clusters blocked{}: {}",
            blocked.len(),
            if skip_blocked { " and left out" } else { "" },
            summary.join(" | ")
        )
    };
    if !unavailable.is_empty() {
        let first: Vec<&str> = unavailable.iter().take(10).map(String::as_str).collect();
        message.push_str(&format!(
            "; {} stopped or unreachable, left to spec.unavailableClusters ({}) when their \
             turn comes: {}",
            unavailable.len(),
            spec.unavailable_clusters,
            first.join(", ")
        ));
    }
    let skipped = if skip_blocked {
        blocked
            .iter()
            .map(|b| {
                let wave = waves
                    .iter()
                    .find(|w| w.clusters.contains(&b.cluster))
                    .map(|w| w.name.as_str())
                    .unwrap_or_default();
                SkipReason::PreflightBlocked.entry(&b.cluster, wave, b.reasons.join("; "))
            })
            .collect()
    } else {
        Vec::new()
    };
    (message, skipped)
}

impl Reconcile<'_> {
    /// Plans the waves over the Clusters that exist now.
    pub(super) async fn plan(&self, status: &mut RolloutStatus) -> Result<Decision, Error> {
        let clusters: Api<Cluster> = Api::all(self.ctx.client.clone());
        let clusters = clusters.list(&ListParams::default()).await?.items;
        status.waves = frozen(self.spec, &clusters);
        let total: usize = status.waves.iter().map(|w| w.clusters.len()).sum();
        Ok(if total == 0 {
            Decision::NothingSelected
        } else {
            Decision::Planned {
                clusters: total,
                summary: summary(&status.waves),
            }
        })
    }

    /// Runs the pre-flight over the planned clusters and records what it found.
    pub(super) async fn preflight(&self, status: &mut RolloutStatus) -> Decision {
        let names = preflight_targets(self.spec, &status.waves);
        let clusters = names
            .iter()
            .map(|n| {
                let found = self.state.clusters.get(&ObjectRef::new(n));
                (n.clone(), found.map(|c| (*c).clone()))
            })
            .collect();
        let spec = self.spec;
        let findings = preflight::run(self.ctx, clusters, &spec.target, &spec.strategy).await;
        let (message, skipped) = preflight_report(spec, &status.waves, names.len(), &findings);
        status.skipped.extend(skipped);
        let blocked = !findings.blocked.is_empty();
        status.preflight = Some(PreflightStatus {
            checked: names.len() as u32,
            blocked: findings.blocked,
            unavailable: findings.unavailable,
            completed_at: Some(self.t.clone()),
        });
        Decision::Preflighted { blocked, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::fixtures::{spec, waves};
    use rotor_api::PreflightBlocker;

    #[test]
    fn the_frozen_plan_starts_pending_and_is_summarised() {
        let frozen = freeze(vec![
            PlannedWave {
                name: "canary".into(),
                clusters: vec!["a".into()],
            },
            PlannedWave {
                name: "remainder".into(),
                clusters: vec!["b".into(), "c".into()],
            },
        ]);
        assert_eq!(
            frozen,
            waves(&[("canary", &["a"]), ("remainder", &["b", "c"])])
        );
        assert_eq!(summary(&frozen), "canary (1), remainder (2)");
    }

    #[test]
    fn the_preflight_runs_once_before_any_wave_over_the_clusters_not_skipped() {
        let spec_ = spec(serde_json::json!({"skipClusters": ["b"]}));
        let mut status = RolloutStatus {
            waves: waves(&[("canary", &["a"]), ("remainder", &["b", "c"])]),
            ..Default::default()
        };
        assert!(preflight_due(&spec_, &status));
        assert_eq!(preflight_targets(&spec_, &status.waves), ["a", "c"]);
        let disabled = spec(serde_json::json!({"preflight": "Disabled"}));
        assert!(!preflight_due(&disabled, &status));
        status.waves[0].phase = WavePhase::WaitingForApproval;
        assert!(!preflight_due(&spec_, &status));
        status.waves[0].phase = WavePhase::Pending;
        status.preflight = Some(Default::default());
        assert!(!preflight_due(&spec_, &status));
    }

    #[test]
    fn blocked_clusters_are_reported_and_left_out_only_under_skip_blocked() {
        let waves = waves(&[("canary", &["a"]), ("remainder", &["b", "c"])]);
        let findings = preflight::Findings {
            blocked: vec![PreflightBlocker {
                cluster: "c".into(),
                reasons: vec!["v1beta1 Ingress".into(), "no data policy".into()],
            }],
            unavailable: vec!["b".into()],
        };
        let skip = spec(serde_json::json!({"preflight": "SkipBlocked"}));
        let (message, skipped) = preflight_report(&skip, &waves, 3, &findings);
        assert_eq!(
            message,
            "1 of 3 clusters blocked and left out: c: v1beta1 Ingress; no data policy; 1 stopped \
             or unreachable, left to spec.unavailableClusters (Skip) when their turn comes: b"
        );
        let entry = SkipReason::PreflightBlocked.entry(
            "c",
            "remainder",
            "v1beta1 Ingress; no data policy".into(),
        );
        assert_eq!(skipped, [entry]);
        let stop = spec(serde_json::json!({"preflight": "StopRollout"}));
        let (message, skipped) = preflight_report(&stop, &waves, 3, &findings);
        assert!(
            message.starts_with("1 of 3 clusters blocked: c:"),
            "{message}"
        );
        assert!(skipped.is_empty());
        let clear = preflight::Findings::default();
        let (message, _) = preflight_report(&stop, &waves, 3, &clear);
        assert_eq!(message, "3 clusters checked, none blocked");
    }
}
