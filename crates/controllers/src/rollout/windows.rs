//! Whether a cluster's swap can start now (the Cluster exists, is not stopped, answers, and is in
//! one of its maintenance windows), and holding running swaps at their safe point while the
//! rollout is paused or outside a window.

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use rotor_api::{
    Cluster, ClusterSwap, ConditionStatus, ConditionType, Phase, find_condition, in_windows,
};

use super::Reconcile;
use super::count::Tally;
use super::skip::SkipReason;
use crate::Error;

/// Whether a cluster's swap can start now.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Availability {
    Ready,
    /// Inside no maintenance window of the cluster's own.
    OutsideWindow,
    /// Stopped, unreachable, or gone.
    Unavailable {
        reason: SkipReason,
        message: String,
    },
}

pub(super) fn availability(
    cluster: Option<&Cluster>,
    now: chrono::DateTime<chrono::Utc>,
) -> Availability {
    let Some(cluster) = cluster else {
        return Availability::Unavailable {
            reason: SkipReason::NotFound,
            message: "the Cluster does not exist".into(),
        };
    };
    if cluster.spec.stopped {
        return Availability::Unavailable {
            reason: SkipReason::Stopped,
            message: "the Cluster is marked spec.stopped".into(),
        };
    }
    let status = cluster.status.as_ref();
    let unreachable = status
        .and_then(|s| find_condition(&s.conditions, ConditionType::Reachable))
        .filter(|c| c.status == ConditionStatus::False);
    if let Some(c) = unreachable {
        return Availability::Unavailable {
            reason: SkipReason::Unreachable,
            message: format!("its API server is unreachable: {}", c.message),
        };
    }
    if !in_windows(&cluster.spec.maintenance_windows, now) {
        return Availability::OutsideWindow;
    }
    Availability::Ready
}

/// Whether a swap in `phase` is held before traffic moves, given whether the rollout `stop`s
/// (paused, or outside its windows) and whether its cluster is inside its own windows. None: the
/// swap is past its safe point (green may serve), rolling back or done; its hold stays as is.
pub(super) fn hold(phase: Phase, stop: bool, cluster_window: bool) -> Option<bool> {
    if phase.is_terminal() || phase == Phase::RollingBack || phase.green_may_serve() {
        return None;
    }
    Some(stop || !cluster_window)
}

impl Reconcile<'_> {
    /// Sets `holdBeforeTraffic` on this rollout's swaps as [`hold`] says; the names of the
    /// swaps held (`status.parked`).
    pub(super) async fn park(&self, tally: &Tally, stop: bool) -> Result<Vec<String>, Error> {
        let api: Api<ClusterSwap> = Api::all(self.ctx.client.clone());
        let mut parked = Vec::new();
        for (cluster, swap) in tally.swaps() {
            let phase = swap.status.as_ref().map(|s| s.phase).unwrap_or_default();
            let cluster_window = self
                .state
                .clusters
                .get(&ObjectRef::new(cluster))
                .is_none_or(|c| in_windows(&c.spec.maintenance_windows, self.clock));
            let Some(hold) = hold(phase, stop, cluster_window) else {
                continue;
            };
            if hold != swap.spec.hold_before_traffic {
                let patch = serde_json::json!({"spec": {"holdBeforeTraffic": hold}});
                let params = PatchParams::default();
                api.patch(&swap.name_any(), &params, &Patch::Merge(&patch))
                    .await?;
            }
            if hold {
                parked.push(swap.name_any());
            }
        }
        Ok(parked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::fixtures::{saturday_10am, time};
    use rotor_api::{Condition, DayOfWeek, MaintenanceWindow, Reason};

    fn cluster() -> Cluster {
        rotor_api::sample_fleet(1).remove(0)
    }

    fn window(day: DayOfWeek) -> MaintenanceWindow {
        MaintenanceWindow {
            days: vec![day],
            start: "08:00".into(),
            end: "12:00".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_cluster_starts_only_when_it_exists_runs_answers_and_is_in_its_window() {
        let now = saturday_10am();
        let unavailable = |c: Option<&Cluster>| match availability(c, now) {
            Availability::Unavailable { reason, message } => (reason, message),
            other => panic!("unavailable expected, got {other:?}"),
        };
        assert_eq!(unavailable(None).0, SkipReason::NotFound);
        let mut stopped = cluster();
        stopped.spec.stopped = true;
        assert_eq!(unavailable(Some(&stopped)).0, SkipReason::Stopped);
        let mut unreachable = cluster();
        let down = Condition::new(
            ConditionType::Reachable,
            ConditionStatus::False,
            Reason::Unreachable,
            "connection refused",
            time(),
            None,
        );
        unreachable.status = Some(rotor_api::ClusterStatus {
            conditions: vec![down],
            ..Default::default()
        });
        assert_eq!(
            unavailable(Some(&unreachable)),
            (
                SkipReason::Unreachable,
                "its API server is unreachable: connection refused".to_string()
            )
        );
        let mut sundays = cluster();
        sundays.spec.maintenance_windows = vec![window(DayOfWeek::Sun)];
        assert_eq!(
            availability(Some(&sundays), now),
            Availability::OutsideWindow
        );
        let mut saturdays = cluster();
        saturdays.spec.maintenance_windows = vec![window(DayOfWeek::Sat)];
        assert_eq!(availability(Some(&saturdays), now), Availability::Ready);
        assert_eq!(availability(Some(&cluster()), now), Availability::Ready);
    }

    #[test]
    fn only_swaps_before_their_safe_point_are_held() {
        for phase in [Phase::Succeeded, Phase::RollingBack, Phase::ShiftingTraffic] {
            assert_eq!(hold(phase, true, false), None, "{phase}");
        }
        for phase in [Phase::Pending, Phase::Migrating] {
            assert_eq!(hold(phase, true, true), Some(true), "{phase}");
            assert_eq!(hold(phase, false, false), Some(true), "{phase}");
            assert_eq!(hold(phase, false, true), Some(false), "{phase}");
        }
    }
}
