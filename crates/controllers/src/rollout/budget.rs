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
}

impl Pause {
    pub(super) fn reason(&self) -> Reason {
        match self {
            Pause::OverBudget { .. } | Pause::WaveOverBudget { .. } => {
                Reason::FailureBudgetExceeded
            }
            Pause::PreflightBlocked { .. } => Reason::PreflightBlocked,
            Pause::Requested => Reason::Paused,
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
