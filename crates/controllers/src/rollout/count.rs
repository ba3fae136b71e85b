//! This rollout's swaps, by cluster: the reflector's view joined with the swaps this process
//! created and the reflector has not shown yet (counted as Pending), so limits hold while the
//! cache lags.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kube::ResourceExt;
use rotor_api::{
    ClusterSwap, ConditionType, Phase, Reason, RolloutStatus, SwapCounts, WaveStatus, labels,
};

use super::{State, swap_name};

/// Where each cluster's swap is, for one reconcile.
pub(super) struct Tally {
    rollout: String,
    /// The reflector's swaps of this rollout, by cluster.
    swaps: BTreeMap<String, Arc<ClusterSwap>>,
    /// Names of swaps created by this process and not seen in `swaps` yet.
    created: BTreeSet<String>,
    /// Clusters whose ended swap is being deleted for a retry: counted as Pending (neither a
    /// failure nor a free cluster) until the swap is gone.
    going: BTreeSet<String>,
}

impl Tally {
    /// `rollout`'s swaps among `swaps`, plus the `created` names not among them.
    pub(super) fn new(
        rollout: &str,
        swaps: impl IntoIterator<Item = Arc<ClusterSwap>>,
        created: &BTreeSet<String>,
    ) -> Self {
        let swaps: BTreeMap<String, Arc<ClusterSwap>> = swaps
            .into_iter()
            .filter(|s| s.labels().get(labels::ROLLOUT).map(String::as_str) == Some(rollout))
            .map(|s| (s.spec.cluster_ref.clone(), s))
            .collect();
        let seen: BTreeSet<String> = swaps.values().map(|s| s.name_any()).collect();
        Tally {
            rollout: rollout.to_string(),
            created: created.difference(&seen).cloned().collect(),
            swaps,
            going: BTreeSet::new(),
        }
    }

    /// Marks as going the ended swaps being deleted or whose uid is in `deleted` (deleted by
    /// this process, maybe not seen so by the reflector yet); forgets the uids no longer seen.
    pub(super) fn with_going(mut self, deleted: &mut BTreeSet<String>) -> Self {
        let uids: BTreeSet<String> = self.swaps.values().filter_map(|s| s.uid()).collect();
        deleted.retain(|uid| uids.contains(uid));
        self.going = self
            .swaps
            .iter()
            .filter(|(_, s)| s.status.as_ref().is_some_and(|st| st.phase.is_terminal()))
            .filter(|(_, s)| {
                s.metadata.deletion_timestamp.is_some()
                    || s.uid().is_some_and(|uid| deleted.contains(&uid))
            })
            .map(|(cluster, _)| cluster.clone())
            .collect();
        self
    }

    /// From the reflector; created names it has seen are forgotten for good.
    pub(super) fn read(state: &State, rollout: &str) -> Self {
        let mut created = state.created.lock().unwrap_or_else(|p| p.into_inner());
        let tally = Tally::new(rollout, state.swaps.state(), &created);
        let seen: BTreeSet<String> = tally.swaps.values().map(|s| s.name_any()).collect();
        created.retain(|n| !seen.contains(n));
        let mut deleted = state.deleted.lock().unwrap_or_else(|p| p.into_inner());
        tally.with_going(&mut deleted)
    }

    /// The phase of `cluster`'s swap; None while it has none.
    pub(super) fn phase(&self, cluster: &str) -> Option<Phase> {
        match self.swaps.get(cluster) {
            Some(_) if self.going.contains(cluster) => Some(Phase::Pending),
            // The phase alone: cloning the status (its history) per cluster and reconcile was
            // a tenth of a 1,000-cluster demo's CPU.
            Some(s) => Some(s.status.as_ref().map(|st| st.phase).unwrap_or_default()),
            None if !self.created.is_empty()
                && self.created.contains(&swap_name(&self.rollout, cluster)) =>
            {
                Some(Phase::Pending)
            }
            None => None,
        }
    }

    /// Whether `cluster` has a swap that has not ended.
    pub(super) fn running(&self, cluster: &str) -> bool {
        self.phase(cluster).is_some_and(|p| !p.is_terminal())
    }

    /// Whether `cluster`'s swap ended, however it ended.
    pub(super) fn ended(&self, cluster: &str) -> bool {
        self.phase(cluster).is_some_and(Phase::is_terminal)
    }

    /// Whether `cluster`'s swap ended Failed or RolledBack.
    pub(super) fn failed(&self, cluster: &str) -> bool {
        matches!(self.phase(cluster), Some(Phase::Failed | Phase::RolledBack))
    }

    /// How many of `clusters` have a running swap.
    pub(super) fn running_of<'c>(&self, clusters: impl IntoIterator<Item = &'c String>) -> u32 {
        clusters.into_iter().filter(|c| self.running(c)).count() as u32
    }

    /// `clusters`' swaps by phase (no swap yet: Pending). Skipped clusters leave the counts
    /// (and the budget) unless their swap still runs.
    pub(super) fn counts<'c>(
        &self,
        clusters: impl IntoIterator<Item = &'c String>,
        skipped: &BTreeSet<String>,
    ) -> SwapCounts {
        SwapCounts::from_phases(
            clusters
                .into_iter()
                .filter(|c| !skipped.contains(*c) || self.running(c))
                .map(|c| self.phase(c).unwrap_or(Phase::Pending)),
        )
    }

    /// Writes the rollout's and each wave's counts into `status`.
    pub(super) fn count(&self, status: &mut RolloutStatus, skipped: &BTreeSet<String>) {
        status.counts = self.counts(status.waves.iter().flat_map(|w| &w.clusters), skipped);
        for w in &mut status.waves {
            w.counts = self.counts(&w.clusters, skipped);
        }
    }

    /// Running swaps, in all `waves` and in each.
    pub(super) fn in_flight(&self, waves: &[WaveStatus]) -> (u32, Vec<u32>) {
        let by_wave: Vec<u32> = waves.iter().map(|w| self.running_of(&w.clusters)).collect();
        (by_wave.iter().sum(), by_wave)
    }

    /// `cluster: why` of each running swap held by a gate that cannot be judged (its
    /// Progressing condition's reason is `MetricGateInconclusive`), by cluster name.
    pub(super) fn held(&self) -> Vec<String> {
        self.swaps
            .iter()
            .filter(|(cluster, _)| !self.going.contains(*cluster))
            .filter_map(|(cluster, swap)| {
                let status = swap.status.as_ref().filter(|s| !s.phase.is_terminal())?;
                let c = rotor_api::find_condition(&status.conditions, ConditionType::Progressing)?;
                (c.reason == Reason::MetricGateInconclusive)
                    .then(|| format!("{cluster}: {}", c.message))
            })
            .collect()
    }

    /// `cluster (reason: message)` of the swap's last step towards rolling back or failing.
    pub(super) fn why_failed(&self, cluster: &str) -> String {
        let why = self
            .swaps
            .get(cluster)
            .and_then(|s| s.status.as_ref())
            .and_then(|st| {
                st.history
                    .iter()
                    .rev()
                    .find(|h| matches!(h.phase, Phase::RollingBack | Phase::Failed))
            })
            .map(|h| format!("{}: {}", h.reason, h.message))
            .unwrap_or_default();
        format!("{cluster} ({why})")
    }

    /// The reflector's swaps of this rollout, by cluster.
    pub(super) fn swaps(&self) -> &BTreeMap<String, Arc<ClusterSwap>> {
        &self.swaps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::fixtures::{set, swap, waves};

    #[test]
    fn a_cluster_is_in_its_swaps_phase_or_pending_once_created_here() {
        let swaps = [
            swap("r", "a", Phase::Migrating),
            swap("other", "b", Phase::Failed),
        ];
        let created = set(&["r-b", "r-a"]);
        let tally = Tally::new("r", swaps, &created);
        assert_eq!(tally.phase("a"), Some(Phase::Migrating));
        // Another rollout's swap of b is not ours; ours was created here and not seen yet.
        assert_eq!(tally.phase("b"), Some(Phase::Pending));
        assert_eq!(tally.phase("c"), None);
        assert!(tally.running("a") && tally.running("b") && !tally.running("c"));
        assert_eq!(tally.swaps().keys().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn a_swap_held_by_an_inconclusive_gate_is_named_with_why() {
        let held = |cluster: &str, phase: Phase, reason: Reason| {
            let mut s = (*swap("r", cluster, phase)).clone();
            let status = s.status.get_or_insert_with(Default::default);
            rotor_api::set_condition(
                &mut status.conditions,
                rotor_api::Condition::new(
                    ConditionType::Progressing,
                    rotor_api::ConditionStatus::True,
                    reason,
                    format!("why {cluster}"),
                    crate::now(),
                    None,
                ),
            );
            Arc::new(s)
        };
        let swaps = [
            held("a", Phase::ShiftingTraffic, Reason::MetricGateInconclusive),
            held("b", Phase::ShiftingTraffic, Reason::TrafficStepApplied),
            held("c", Phase::RolledBack, Reason::MetricGateInconclusive),
            swap("r", "d", Phase::Migrating),
        ];
        let tally = Tally::new("r", swaps, &set(&[]));
        assert_eq!(tally.held(), ["a: why a"]);
    }

    #[test]
    fn skipped_clusters_leave_the_counts_unless_their_swap_still_runs() {
        let swaps = [
            swap("r", "a", Phase::Succeeded),
            swap("r", "b", Phase::RolledBack),
            swap("r", "c", Phase::Migrating),
            swap("r", "d", Phase::Failed),
        ];
        let tally = Tally::new("r", swaps, &set(&[]));
        let mut status = rotor_api::RolloutStatus {
            waves: waves(&[("one", &["a", "b"]), ("two", &["c", "d", "e"])]),
            ..Default::default()
        };
        tally.count(&mut status, &set(&["c", "d"]));
        let want = |total, pending, in_progress, succeeded, rolled_back, failed| SwapCounts {
            total,
            pending,
            in_progress,
            succeeded,
            rolled_back,
            failed,
        };
        // c runs although skipped: counted. d ended and is skipped: not. e has no swap: Pending.
        assert_eq!(status.counts, want(4, 1, 1, 1, 1, 0));
        assert_eq!(status.waves[0].counts, want(2, 0, 0, 1, 1, 0));
        assert_eq!(status.waves[1].counts, want(2, 1, 1, 0, 0, 0));
        assert_eq!(tally.in_flight(&status.waves), (1, vec![0, 1]));
    }

    #[test]
    fn an_ended_swap_deleted_for_a_retry_is_pending_until_gone() {
        let mut deleting = (*swap("r", "a", Phase::Failed)).clone();
        deleting.metadata.deletion_timestamp = Some(crate::rollout::fixtures::time());
        let mut b = (*swap("r", "b", Phase::RolledBack)).clone();
        b.metadata.uid = Some("uid-b".into());
        let mut c = (*swap("r", "c", Phase::Migrating)).clone();
        c.metadata.uid = Some("uid-c".into());
        let swaps = [Arc::new(deleting), Arc::new(b), Arc::new(c)];
        // b was deleted here and the reflector has not shown it so; "uid-z" is long gone.
        let mut deleted = set(&["uid-b", "uid-z", "uid-c"]);
        let tally = Tally::new("r", swaps, &set(&[])).with_going(&mut deleted);
        assert_eq!(tally.phase("a"), Some(Phase::Pending));
        assert_eq!(tally.phase("b"), Some(Phase::Pending));
        assert!(!tally.failed("a") && !tally.failed("b"));
        // A running swap keeps its phase.
        assert_eq!(tally.phase("c"), Some(Phase::Migrating));
        assert_eq!(deleted, set(&["uid-b", "uid-c"]));
    }

    #[test]
    fn why_a_swap_failed_comes_from_its_history() {
        let tally = Tally::new("r", [swap("r", "a", Phase::Failed)], &set(&[]));
        assert!(tally.failed("a") && tally.ended("a"));
        assert_eq!(
            tally.why_failed("a"),
            "a (HealthGateFailed: a's error rate too high)"
        );
        assert_eq!(tally.why_failed("z"), "z ()");
    }
}
