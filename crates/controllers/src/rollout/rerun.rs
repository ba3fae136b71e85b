//! `spec.retryFailed` (`rotor rollout retry --failed`): every cluster whose swap failed or rolled
//! back, and every cluster the rollout left out, runs again against the same frozen plan and
//! target. The CLI only raises the number; the controller acts once per value: it deletes the
//! ended swaps (the waves then start them afresh, as after `rotor rollout retry CLUSTER`), drops
//! the skips and a fleet rollback from status, and reopens the waves those clusters are in.

use std::collections::BTreeSet;

use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use rotor_api::{ClusterSwap, RolloutPhase, RolloutSpec, RolloutStatus, WavePhase};

use super::Reconcile;
use super::count::Tally;
use super::status::Decision;
use crate::Error;

/// Whether a retry was asked for and not acted on yet, and can be: not while a fleet rollback
/// is under way (the swaps still rolling back would end RolledBack after the retry and count
/// against the budget again); once it has ended, the retry runs.
pub(super) fn due(spec: &RolloutSpec, status: &RolloutStatus) -> bool {
    spec.retry_failed > status.retried_failed && status.phase != RolloutPhase::RollingBack
}

/// Makes `status` run `failed` (clusters whose ended swap is deleted) and every skipped cluster
/// again: skips and a fleet rollback dropped, their waves reopened, the retry recorded. The
/// clusters that run again, by name. Clusters still in `spec.skipClusters` stay out (the next
/// reconcile takes them from the spec again).
pub(super) fn reopen(
    spec: &RolloutSpec,
    status: &mut RolloutStatus,
    failed: &BTreeSet<String>,
) -> Vec<String> {
    let mut again: BTreeSet<String> = failed.clone();
    again.extend(
        std::mem::take(&mut status.skipped)
            .into_iter()
            .map(|s| s.cluster),
    );
    again.retain(|c| !spec.skip_clusters.contains(c));
    for wave in &mut status.waves {
        let ended = matches!(
            wave.phase,
            WavePhase::Baking | WavePhase::Succeeded | WavePhase::Failed
        );
        if ended && wave.clusters.iter().any(|c| again.contains(c)) {
            wave.phase = WavePhase::InProgress;
            wave.finished_at = None;
        }
    }
    status.fleet_rollback = None;
    status.retried_failed = spec.retry_failed;
    if status.phase.is_final() {
        status.phase = RolloutPhase::Progressing;
    }
    again.into_iter().collect()
}

impl Reconcile<'_> {
    /// Deletes this rollout's failed and rolled-back swaps and reopens the plan for them and for
    /// the skipped clusters.
    pub(super) async fn rerun(&self, status: &mut RolloutStatus) -> Result<Decision, Error> {
        let tally = Tally::read(self.state, &self.name);
        let api: Api<ClusterSwap> = Api::all(self.ctx.client.clone());
        let mut failed = BTreeSet::new();
        for (cluster, swap) in tally.swaps() {
            if !tally.failed(cluster) {
                continue;
            }
            match api.delete(&swap.name_any(), &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
            if let Some(uid) = swap.uid() {
                let mut deleted = self.state.deleted.lock().unwrap_or_else(|p| p.into_inner());
                deleted.insert(uid);
            }
            failed.insert(cluster.clone());
        }
        let clusters = reopen(self.spec, status, &failed);
        Ok(Decision::Retried { clusters })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::fixtures::{set, spec, waves};
    use crate::rollout::skip::SkipReason;
    use rotor_api::FleetRollback;

    #[test]
    fn a_retry_is_due_once_per_raised_value_after_a_fleet_rollback_ended() {
        let mut status = RolloutStatus::default();
        assert!(!due(&spec(serde_json::json!({})), &status));
        let asked = spec(serde_json::json!({"retryFailed": 2}));
        assert!(due(&asked, &status));
        status.phase = RolloutPhase::RollingBack;
        assert!(!due(&asked, &status), "waits for the fleet rollback to end");
        status.phase = RolloutPhase::RolledBack;
        assert!(due(&asked, &status));
        status.retried_failed = 2;
        assert!(!due(&asked, &status));
    }

    #[test]
    fn failed_and_skipped_clusters_run_again_in_their_reopened_waves() {
        let spec_ = spec(serde_json::json!({"retryFailed": 1, "skipClusters": ["e"]}));
        let mut status = RolloutStatus {
            phase: RolloutPhase::RolledBack,
            waves: waves(&[
                ("canary", &["a"]),
                ("mid", &["b", "c"]),
                ("rest", &["d", "e"]),
            ]),
            skipped: vec![
                SkipReason::PreflightBlocked.entry("c", "mid", "no data policy".into()),
                SkipReason::Operator.entry("e", "rest", "listed".into()),
            ],
            fleet_rollback: Some(FleetRollback::default()),
            ..Default::default()
        };
        for w in &mut status.waves {
            w.phase = WavePhase::Succeeded;
            w.finished_at = Some(crate::rollout::fixtures::time());
        }
        let again = reopen(&spec_, &mut status, &set(&["a"]));
        // e is still listed in spec.skipClusters: it stays out.
        assert_eq!(again, ["a", "c"]);
        let phases: Vec<WavePhase> = status.waves.iter().map(|w| w.phase).collect();
        assert_eq!(
            phases,
            [
                WavePhase::InProgress,
                WavePhase::InProgress,
                WavePhase::Succeeded
            ]
        );
        assert_eq!(status.waves[0].finished_at, None);
        assert!(status.skipped.is_empty());
        assert_eq!(status.fleet_rollback, None);
        assert_eq!(status.retried_failed, 1);
        assert_eq!(status.phase, RolloutPhase::Progressing);
        assert!(!due(&spec_, &status));
    }
}
