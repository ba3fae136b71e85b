//! `onBudgetExceeded: RollbackFleet`: once a failure budget is exceeded the rollout aborts. No
//! swap starts, and every swap of the rollout whose blue still exists is asked to roll back
//! through its own `spec.rollback` — the path `rotor rollout rollback` takes, so the swap
//! controller does the rollback as it does any other. The abort is recorded in status
//! (`status.fleetRollback`), so it holds while the swaps roll back and the count of failures
//! changes under it.

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use rotor_api::{BudgetPolicy, ClusterSwap, FleetRollback, RolloutSpec, RolloutStatus};

use super::budget::Pause;
use super::count::Tally;
use super::{Reconcile, Time};
use crate::Error;

/// Whether the rollout is rolling its fleet back, and since when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Abort {
    /// The budget was exceeded in this reconcile: the abort starts now.
    Starts,
    /// The abort was decided earlier (recorded in status).
    Holds,
}

/// Whether the rollout rolls its fleet back: it already does, or `pause` is an exceeded budget
/// and `spec.onBudgetExceeded` is `RollbackFleet`. A new abort is recorded in `status` at `t`.
pub(super) fn decide(
    spec: &RolloutSpec,
    status: &mut RolloutStatus,
    pause: Option<&Pause>,
    t: &Time,
) -> Option<Abort> {
    if status.fleet_rollback.is_some() {
        return Some(Abort::Holds);
    }
    if spec.on_budget_exceeded != BudgetPolicy::RollbackFleet {
        return None;
    }
    let failed = pause?.over_budget()?;
    status.fleet_rollback = Some(FleetRollback {
        message: pause?.to_string(),
        failed: failed.to_vec(),
        started_at: Some(t.clone()),
    });
    Some(Abort::Starts)
}

/// Whether a swap should be asked to roll back: blue still takes traffic back (before
/// Decommissioning) and nobody asked yet. Shared with `rotor rollout rollback|abort`.
pub fn rollback_requestable(swap: &ClusterSwap) -> bool {
    let phase = swap.status.as_ref().map(|s| s.phase).unwrap_or_default();
    phase.allows_rollback() && !swap.spec.rollback
}

/// Asks swap `name` to roll back (`spec.rollback: true`); its controller does the rest.
pub async fn request_rollback(api: &Api<ClusterSwap>, name: &str) -> Result<(), kube::Error> {
    let patch = serde_json::json!({"spec": {"rollback": true}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

/// What one reconcile of an aborted rollout did.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct FleetProgress {
    pub(super) abort: Abort,
    /// Swaps asked to roll back in this reconcile.
    pub(super) asked: Vec<String>,
    /// This rollout's swaps that have not ended yet.
    pub(super) running: u32,
}

impl Reconcile<'_> {
    /// Asks every swap of the rollout that can still go back to roll back; counts those left.
    pub(super) async fn roll_back_fleet(
        &self,
        status: &RolloutStatus,
        tally: &Tally,
        abort: Abort,
    ) -> Result<FleetProgress, Error> {
        let api: Api<ClusterSwap> = Api::all(self.ctx.client.clone());
        let mut asked = Vec::new();
        for swap in tally.swaps().values() {
            if rollback_requestable(swap) {
                request_rollback(&api, &swap.name_any()).await?;
                asked.push(swap.name_any());
            }
        }
        let running = tally.running_of(status.waves.iter().flat_map(|w| &w.clusters));
        Ok(FleetProgress {
            abort,
            asked,
            running,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::fixtures::{swap, time, waves};
    use rotor_api::Phase;

    fn over_budget() -> Pause {
        Pause::OverBudget {
            budget: 0,
            failed: vec!["a (HealthGateFailed: a's error rate too high)".into()],
        }
    }

    fn status() -> RolloutStatus {
        RolloutStatus {
            waves: waves(&[("canary", &["a"]), ("rest", &["b"])]),
            ..Default::default()
        }
    }

    #[test]
    fn an_exceeded_budget_pauses_by_default_and_aborts_under_rollback_fleet() {
        let pause_policy = crate::rollout::fixtures::spec(serde_json::json!({}));
        let mut st = status();
        let got = decide(&pause_policy, &mut st, Some(&over_budget()), &time());
        assert_eq!(got, None, "Pause is the default");
        assert_eq!(st.fleet_rollback, None);

        let fleet = crate::rollout::fixtures::spec(
            serde_json::json!({"onBudgetExceeded": "RollbackFleet"}),
        );
        let got = decide(&fleet, &mut st, Some(&over_budget()), &time());
        assert_eq!(got, Some(Abort::Starts));
        let record = st.fleet_rollback.clone().expect("recorded");
        assert_eq!(
            record.failed,
            ["a (HealthGateFailed: a's error rate too high)"]
        );
        assert_eq!(record.message, over_budget().to_string());
        assert_eq!(record.started_at, Some(time()));
        // Recorded, the abort holds even once the failures are within the budget again.
        assert_eq!(decide(&fleet, &mut st, None, &time()), Some(Abort::Holds));
        assert_eq!(st.fleet_rollback, Some(record));
    }

    #[test]
    fn only_an_exceeded_budget_aborts() {
        let fleet = crate::rollout::fixtures::spec(
            serde_json::json!({"onBudgetExceeded": "RollbackFleet"}),
        );
        let mut st = status();
        for pause in [
            None,
            Some(Pause::Requested),
            Some(Pause::PreflightBlocked {
                clusters: vec!["b".into()],
            }),
        ] {
            assert_eq!(decide(&fleet, &mut st, pause.as_ref(), &time()), None);
        }
        let wave = Pause::WaveOverBudget {
            wave: "canary".into(),
            limit: 0,
            failed: vec!["a (Failed: gone)".into()],
        };
        assert_eq!(
            decide(&fleet, &mut st, Some(&wave), &time()),
            Some(Abort::Starts)
        );
        assert!(
            st.fleet_rollback
                .expect("recorded")
                .message
                .starts_with("wave canary:")
        );
    }

    #[test]
    fn swaps_roll_back_until_decommissioning_and_are_asked_once() {
        let ask = |phase: Phase, asked: bool| {
            let mut s = (*swap("r", "a", phase)).clone();
            s.spec.rollback = asked;
            rollback_requestable(&s)
        };
        for phase in [
            Phase::Pending,
            Phase::Migrating,
            Phase::ShiftingTraffic,
            Phase::Retaining,
        ] {
            assert!(ask(phase, false), "{phase}");
            assert!(!ask(phase, true), "{phase} asked twice");
        }
        for phase in [
            Phase::Decommissioning,
            Phase::Succeeded,
            Phase::RollingBack,
            Phase::RolledBack,
            Phase::Failed,
        ] {
            assert!(!ask(phase, false), "{phase}");
        }
    }
}
