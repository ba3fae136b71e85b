//! Failure budgets and the other reasons a rollout stops starting swaps: Failed or RolledBack
//! swaps beyond `spec.failureBudget` (or a wave's own budget), blockers the pre-flight found under
//! `spec.preflight: StopRollout`, and `spec.paused`.

use std::collections::BTreeSet;
use std::fmt;

use rotor_api::{PreflightPolicy, Reason, RolloutSpec, RolloutStatus, resolve_budget};

use super::count::Tally;

/// Why the rollout starts no swap now (the `Paused` condition).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Pause {
    /// More swaps failed or rolled back than `spec.failureBudget`; `failed` says which and why.
    OverBudget { budget: u32, failed: Vec<String> },
    /// More of one wave's swaps failed than its own `failureBudget`.
    WaveOverBudget {
        wave: String,
        limit: u32,
        failed: Vec<String>,
    },
    /// The pre-flight blocked these clusters and `spec.preflight` is `StopRollout`.
    PreflightBlocked { clusters: Vec<String> },
    /// `spec.paused` is set.
    Requested,
    /// A wave gate (`spec.waveGates`) read a value beyond its threshold after the current
    /// wave (or could not be judged, under `onInconclusive: Fail`): gate, value, threshold.
    WaveGateFailed { message: String },
    /// A wave gate cannot be judged (`onInconclusive: Pause`): the next wave waits.
    WaveGateHeld { message: String },
}

impl Pause {
    /// The failed swaps (`cluster (reason: message)`) when this is an exceeded budget.
    pub(super) fn over_budget(&self) -> Option<&[String]> {
        match self {
            Pause::OverBudget { failed, .. } | Pause::WaveOverBudget { failed, .. } => Some(failed),
            Pause::PreflightBlocked { .. }
            | Pause::Requested
            | Pause::WaveGateFailed { .. }
            | Pause::WaveGateHeld { .. } => None,
        }
    }

    pub(super) fn reason(&self) -> Reason {
        match self {
            Pause::OverBudget { .. } | Pause::WaveOverBudget { .. } => {
                Reason::FailureBudgetExceeded
            }
            Pause::PreflightBlocked { .. } => Reason::PreflightBlocked,
            Pause::Requested => Reason::Paused,
            Pause::WaveGateFailed { .. } => Reason::MetricGateFailed,
            Pause::WaveGateHeld { .. } => Reason::MetricGateInconclusive,
        }
    }
}

impl fmt::Display for Pause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pause::OverBudget { budget, failed } => write!(
                f,
                "{} swaps failed or rolled back, budget {budget}: {}",
                failed.len(),
                failed.join("; ")
            ),
            Pause::WaveOverBudget {
                wave,
                limit,
                failed,
            } => write!(
                f,
                "wave {wave}: {} swaps failed or rolled back, wave budget {limit}: {}",
                failed.len(),
                failed.join("; ")
            ),
            Pause::PreflightBlocked { clusters } => write!(
                f,
                "the pre-flight blocked {} clusters (spec.preflight: StopRollout); fix them or \
                 skip them (rotor rollout skip CLUSTER): {}",
                clusters.len(),
                clusters.join(", ")
            ),
            Pause::Requested => f.write_str("spec.paused is set"),
            Pause::WaveGateFailed { message } | Pause::WaveGateHeld { message } => {
                f.write_str(message)
            }
        }
    }
}

/// Whether the rollout must pause, first reason first: the rollout's budget, a wave's budget,
/// the pre-flight, `spec.paused`. Clusters in `skipped` count towards no budget.
pub(super) fn pause(
    spec: &RolloutSpec,
    status: &RolloutStatus,
    tally: &Tally,
    skipped: &BTreeSet<String>,
) -> Option<Pause> {
    let kept = |c: &&String| !skipped.contains(*c);
    let failed_of = |clusters: &[&String]| -> Vec<String> {
        clusters
            .iter()
            .filter(|c| tally.failed(c))
            .map(|c| tally.why_failed(c))
            .collect()
    };
    let all: Vec<&String> = status
        .waves
        .iter()
        .flat_map(|w| &w.clusters)
        .filter(kept)
        .collect();
    let budget = resolve_budget(&spec.failure_budget, all.len()).unwrap_or(0);
    let failed = failed_of(&all);
    if failed.len() as u32 > budget {
        return Some(Pause::OverBudget { budget, failed });
    }
    for (w, wave) in status.waves.iter().zip(&spec.waves) {
        let Some(wave_budget) = &wave.failure_budget else {
            continue;
        };
        let members: Vec<&String> = w.clusters.iter().filter(kept).collect();
        let limit = resolve_budget(wave_budget, members.len()).unwrap_or(0);
        let failed = failed_of(&members);
        if failed.len() as u32 > limit {
            let wave = w.name.clone();
            return Some(Pause::WaveOverBudget {
                wave,
                limit,
                failed,
            });
        }
    }
    if spec.preflight == PreflightPolicy::StopRollout {
        let clusters: Vec<String> = status
            .preflight
            .iter()
            .flat_map(|p| &p.blocked)
            .filter(|b| !spec.skip_clusters.contains(&b.cluster))
            .map(|b| b.cluster.clone())
            .collect();
        if !clusters.is_empty() {
            return Some(Pause::PreflightBlocked { clusters });
        }
    }
    spec.paused.then_some(Pause::Requested)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::count::Tally;
    use crate::rollout::fixtures::{set, spec, swap, waves};
    use rotor_api::{Phase, PreflightBlocker, PreflightStatus};

    fn status(waves_: &[(&str, &[&str])]) -> RolloutStatus {
        RolloutStatus {
            waves: waves(waves_),
            ..Default::default()
        }
    }

    #[test]
    fn failures_beyond_the_budget_pause_and_name_each_cluster() {
        let status = status(&[("canary", &["a"]), ("remainder", &["b", "c", "d"])]);
        let tally = Tally::new(
            "r",
            [
                swap("r", "a", Phase::Failed),
                swap("r", "b", Phase::RolledBack),
            ],
            &set(&[]),
        );
        let within = spec(serde_json::json!({"failureBudget": 2}));
        assert_eq!(pause(&within, &status, &tally, &set(&[])), None);
        // 50 % of 4 clusters is 2 as well; of the 3 left when one is skipped, 1.
        let half = spec(serde_json::json!({"failureBudget": "50%"}));
        assert_eq!(pause(&half, &status, &tally, &set(&[])), None);
        let over = pause(&half, &status, &tally, &set(&["d"])).expect("over budget");
        assert_eq!(over.reason(), Reason::FailureBudgetExceeded);
        assert_eq!(
            over.to_string(),
            "2 swaps failed or rolled back, budget 1: a (HealthGateFailed: a's error rate too \
             high); b (HealthGateFailed: b's error rate too high)"
        );
        // A skipped cluster's failure no longer counts.
        let one = spec(serde_json::json!({"failureBudget": 1}));
        assert_eq!(pause(&one, &status, &tally, &set(&["a"])), None);
    }

    #[test]
    fn a_wave_budget_pauses_within_the_rollouts_budget() {
        let status = status(&[("canary", &["a", "b"]), ("remainder", &["c"])]);
        let tally = Tally::new("r", [swap("r", "b", Phase::Failed)], &set(&[]));
        let spec = spec(serde_json::json!({
            "failureBudget": 5,
            "waves": [{"name": "canary", "count": 2, "failureBudget": 0}],
        }));
        let got = pause(&spec, &status, &tally, &set(&[]));
        assert_eq!(
            got,
            Some(Pause::WaveOverBudget {
                wave: "canary".into(),
                limit: 0,
                failed: vec!["b (HealthGateFailed: b's error rate too high)".into()],
            })
        );
    }

    #[test]
    fn preflight_blockers_stop_the_rollout_until_skipped_and_paused_comes_last() {
        let mut status = status(&[("canary", &["a", "b"])]);
        status.preflight = Some(PreflightStatus {
            checked: 2,
            blocked: vec![PreflightBlocker {
                cluster: "b".into(),
                reasons: vec!["no data policy".into()],
            }],
            unavailable: Vec::new(),
            completed_at: None,
        });
        let tally = Tally::new("r", [], &set(&[]));
        let stop = spec(serde_json::json!({"preflight": "StopRollout", "paused": true}));
        let got = pause(&stop, &status, &tally, &set(&[])).expect("paused");
        assert_eq!(got.reason(), Reason::PreflightBlocked);
        assert!(got.to_string().ends_with(": b"), "{got}");
        // Skipped by an operator, b no longer blocks; spec.paused still holds.
        let skipped = spec(serde_json::json!({
            "preflight": "StopRollout", "paused": true, "skipClusters": ["b"],
        }));
        let got = pause(&skipped, &status, &tally, &set(&["b"]));
        assert_eq!(got, Some(Pause::Requested));
        assert_eq!(Pause::Requested.reason(), Reason::Paused);
        // Under SkipBlocked the blockers were left out at the pre-flight: nothing pauses.
        let skip = spec(serde_json::json!({"preflight": "SkipBlocked"}));
        assert_eq!(pause(&skip, &status, &tally, &set(&[])), None);
    }
}
