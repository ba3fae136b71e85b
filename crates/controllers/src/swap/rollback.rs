//! The operator's levers and the way back: RollingBack (traffic to blue, blue's workloads
//! restored if they were scaled down, green deleted once clients stopped reaching it, the
//! Cluster released), and `spec.paused`.

use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::controller::Action;
use rotor_api::{
    BlueWorkloads, Cluster, ClusterSwapStatus, Condition, ConditionStatus, ConditionType,
    HookPoint, InstancePhase, Phase, Reason, set_condition,
};

use super::gates::Gate;
use super::hooks::At;
use super::instances::set_instance_phase;
use super::step::Step;
use super::{Reconcile, poll_key};
use crate::{Error, blue_replicas, health, now};

impl Reconcile<'_> {
    /// All traffic back to blue at once (one shifter call), then record RollingBack. A blue
    /// scaled to zero keeps the traffic where it is until RollingBack has restored it.
    pub(super) async fn start_rollback(
        &self,
        cluster: &Cluster,
        mut status: ClusterSwapStatus,
        reason: Reason,
        message: String,
    ) -> Result<Action, Error> {
        let blue_down = matches!(
            status.blue_workloads,
            BlueWorkloads::ScalingDown | BlueWorkloads::ScaledToZero | BlueWorkloads::Restoring
        );
        let message = if blue_down {
            status.blue_workloads = BlueWorkloads::Restoring;
            format!("{message}; restoring blue's workloads before traffic moves back")
        } else {
            if status.phase.lifecycle_index() >= Phase::ShiftingTraffic.lifecycle_index() {
                let (endpoint, shifter) = self.traffic(cluster)?;
                shifter.rollback(endpoint).await?;
            }
            status.green_weight_percent = 0;
            message
        };
        status.current_step = None;
        status.step_started_at = None;
        self.ctx.swaps.forget_gate(&self.name);
        // A migration still running would go on writing to a green that is about to go.
        self.ctx.migrations.cancel(&self.name);
        self.transition(status, Phase::RollingBack, reason, message)
            .await
    }

    /// A rollback from a scaled-down blue: give blue's workloads their replicas back, and once
    /// they are all available, move all traffic to blue in one call (an intent write, then
    /// the rollback goes on). None when blue serves.
    async fn restore_blue(
        &self,
        cluster: &Cluster,
        status: &mut ClusterSwapStatus,
    ) -> Result<Option<Step>, Error> {
        if status.blue_workloads != BlueWorkloads::Restoring {
            return Ok(None);
        }
        let blue = self.blue(status)?;
        let client = self.member(cluster, &blue).await?;
        blue_replicas::restore(&client, &blue, &self.name).await?;
        let workloads = health::workloads(&client, &blue, &self.selection(cluster)).await?;
        if !workloads.all_available() {
            return Ok(Some(Step::wait(
                Reason::RestoringBlue,
                format!(
                    "restoring blue {blue}: {}/{} workloads available ({}); traffic stays on \
                     green until they are",
                    workloads.available,
                    workloads.total,
                    workloads.holding_up.join(", ")
                ),
                self.ctx.settings.poll_interval.min(Duration::from_secs(1)),
            )));
        }
        let (endpoint, shifter) = self.traffic(cluster)?;
        shifter.rollback(endpoint).await?;
        status.blue_workloads = BlueWorkloads::Serving;
        status.green_weight_percent = 0;
        self.write(status.clone()).await?;
        self.event(
            false,
            Reason::RestoringBlue,
            format!(
                "blue {blue}'s {} workloads are available again; all traffic is on blue",
                workloads.total
            ),
        )
        .await;
        Ok(Some(Step::Requeue(Duration::ZERO)))
    }

    pub(super) async fn rolling_back(
        &self,
        cluster: &Cluster,
        status: &mut ClusterSwapStatus,
    ) -> Result<Step, Error> {
        let blue = self.blue(status).ok();
        if blue.is_some() {
            self.ensure_traffic(cluster, status).await?;
        }
        if let Some(step) = self.restore_blue(cluster, status).await? {
            return Ok(step);
        }
        self.delete_abandoned_jobs(cluster, status).await;
        self.ctx.provider(cluster)?;
        if let Some(blue) = &blue {
            self.update_cluster(cluster, |st| {
                let changed = st.active_instance.as_deref() != Some(blue.as_str());
                st.active_instance = Some(blue.clone());
                set_instance_phase(&mut st.instances, blue, InstancePhase::Active) | changed
            })
            .await?;
        }
        // A deleted swap keeps nothing: no swap would be left to account for green.
        let keep_green = self.swap.spec.strategy.keep_green_on_rollback
            && self.swap.metadata.deletion_timestamp.is_none();
        // Green by its derived name, whether or not status recorded it: a create that reached
        // the cloud while the write announcing it lost a race (a deletion, a conflict) left a
        // green that only its name finds.
        let green = status
            .green_instance
            .clone()
            .unwrap_or_else(|| self.green_name());
        if !keep_green && let Some(wait) = self.retire_green(cluster, &green).await? {
            return Ok(wait);
        }
        self.ctx.cloud_poll_done(&poll_key(&self.name));
        let green = Some(green);
        self.update_cluster(cluster, |st| {
            let before = st.instances.len();
            let mut kept = false;
            if keep_green && let Some(g) = &green {
                kept = set_instance_phase(&mut st.instances, g, InstancePhase::Failed);
            } else {
                st.instances.retain(|i| Some(&i.name) != green.as_ref());
            }
            self.release(st) | (before != st.instances.len()) | kept
        })
        .await?;
        let after = At::point(HookPoint::AfterRollback, None);
        if let Some(step) = self.hooks_at(cluster, status, after).await? {
            return Ok(step);
        }
        let green_fate = if keep_green {
            "is kept for inspection (strategy.keepGreenOnRollback)"
        } else {
            "is deleted"
        };
        Ok(Step::advance(
            Phase::RolledBack,
            Reason::RolledBack,
            format!(
                "blue {} serves Cluster {}; green {green_fate}",
                blue.unwrap_or_default(),
                cluster.name_any(),
            ),
        ))
    }

    /// Deletes green once traffic has been on blue for the shifter's settle time (clients that
    /// cached green's address in DNS still reach it until then). The wait, while it lasts.
    async fn retire_green(&self, cluster: &Cluster, green: &str) -> Result<Option<Step>, Error> {
        let settle = self
            .traffic(cluster)
            .map(|(_, shifter)| shifter.settle_time())
            .unwrap_or_default();
        let on_blue = self.ctx.swaps.on_blue_for(&self.name);
        if on_blue < settle {
            return Ok(Some(Step::wait(
                Reason::RollbackRequested,
                format!(
                    "traffic is on blue; green {green} is deleted {}s after, once clients' \
                     cached DNS answers for it have expired",
                    settle.as_secs()
                ),
                settle - on_blue,
            )));
        }
        if !self.instance_gone(cluster, green).await? {
            return Ok(Some(Step::wait(
                Reason::RollbackRequested,
                format!("traffic is on blue; the provider is deleting green {green}"),
                self.deletion_poll(),
            )));
        }
        Ok(None)
    }

    /// `spec.paused` freezes progress, not safety: while green carries traffic the gates still
    /// roll back.
    pub(super) async fn paused(
        &self,
        cluster: &Cluster,
        status: &mut ClusterSwapStatus,
    ) -> Result<Step, Error> {
        let carrying = matches!(
            status.phase,
            Phase::ShiftingTraffic | Phase::Draining | Phase::Retaining
        );
        if carrying {
            self.ensure_traffic(cluster, status).await?;
            if let Gate::Fail(why) = self.gates(cluster, status).await?.gate {
                return Ok(Step::roll_back(Reason::HealthGateFailed, why.to_string()));
            }
        }
        let changed = set_condition(
            &mut status.conditions,
            Condition::new(
                ConditionType::Paused,
                ConditionStatus::True,
                Reason::Paused,
                format!("spec.paused is set; frozen in {}", status.phase),
                now(),
                self.swap.metadata.generation,
            ),
        );
        if changed {
            self.write(status.clone()).await?;
            self.event(false, Reason::Paused, "spec.paused is set".into())
                .await;
        }
        Ok(if carrying {
            Step::Requeue(self.ctx.settings.gate_interval)
        } else {
            Step::AwaitChange
        })
    }
}
