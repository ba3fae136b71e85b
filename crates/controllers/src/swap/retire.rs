//! Draining, Retaining, Decommissioning: green serves everything; blue drains, stays warm (or
//! scaled to zero) for a rollback during the retention, and is then deleted. The retention
//! counts from green taking all the traffic, the drain included: blue is as ready for a
//! rollback while it drains as after.

use std::time::Duration;

use kube::ResourceExt;
use rotor_api::HookPoint;
use rotor_api::{BlueWhileRetained, BlueWorkloads, Cluster, ClusterSwapStatus, InstancePhase};
use rotor_api::{Phase, Reason};

use rotor_traffic::TrafficError;

use super::gates::Gate;
use super::hooks::At;
use super::instances::set_instance_phase;
use super::step::Step;
use super::{Reconcile, poll_key};
use crate::{Error, blue_replicas};

impl Reconcile<'_> {
    pub(super) async fn draining(
        &self,
        cluster: &Cluster,
        status: &mut ClusterSwapStatus,
    ) -> Result<Step, Error> {
        self.ensure_traffic(cluster, status).await?;
        let (blue, green) = (self.blue(status)?, self.green(status)?);
        self.update_cluster(cluster, |st| {
            let mut changed = st.active_instance.as_deref() != Some(green.as_str());
            st.active_instance = Some(green.clone());
            changed |= set_instance_phase(&mut st.instances, &green, InstancePhase::Active);
            changed |= set_instance_phase(&mut st.instances, &blue, InstancePhase::Retained);
            changed
        })
        .await?;
        if let Gate::Fail(why) = self.gates(cluster, status).await?.gate {
            return Ok(Step::roll_back(Reason::HealthGateFailed, why.to_string()));
        }
        if let Some(wait) = self.drain_wait(cluster, status).await? {
            return Ok(Step::Requeue(wait));
        }
        let retention = self.swap.spec.strategy.blue_retention();
        Ok(Step::advance(
            Phase::Retaining,
            Reason::RetainingBlue,
            format!(
                "blue {blue} stays idle until {retention:?} after green took all the traffic, so \
                 a rollback stays possible"
            ),
        ))
    }

    /// How long to look again before blue counts as drained, `None` once it does: clients that
    /// cached blue's address (DNS) reach it for the shifter's settle time, and a proxy that
    /// counts sessions lets the ones open on blue end, up to the drain timeout. A shifter that
    /// counts none (DNS) waits the whole timeout; sessions still open at the timeout are a
    /// Warning (they end with blue's workloads), never a hold.
    async fn drain_wait(
        &self,
        cluster: &Cluster,
        status: &ClusterSwapStatus,
    ) -> Result<Option<Duration>, Error> {
        let (endpoint, shifter) = self.traffic(cluster)?;
        let settle = shifter.settle_time();
        let timeout = self.ctx.settings.drain_timeout.max(settle);
        let drained = self.in_phase_for(status);
        if drained < settle {
            return Ok(Some(self.ctx.settings.gate_interval.min(settle - drained)));
        }
        let open = match shifter.sessions(endpoint).await {
            Ok(sessions) => Some(sessions.blue),
            Err(TrafficError::NoRequestCounts { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        if open == Some(0) {
            return Ok(None);
        }
        if drained < timeout {
            return Ok(Some(self.ctx.settings.gate_interval.min(timeout - drained)));
        }
        if let Some(open) = open {
            let blue = self.blue(status)?;
            self.event(
                true,
                Reason::DrainTimedOut,
                format!(
                    "{open} sessions still open on blue {blue} after the drain timeout of \
                     {timeout:?}; they end when blue's workloads stop"
                ),
            )
            .await;
        }
        Ok(None)
    }

    pub(super) async fn retaining(
        &self,
        cluster: &Cluster,
        status: &mut ClusterSwapStatus,
    ) -> Result<Step, Error> {
        self.ensure_traffic(cluster, status).await?;
        let judged = self.gates(cluster, status).await?;
        if let Gate::Fail(why) = judged.gate {
            return Ok(Step::roll_back(Reason::HealthGateFailed, why.to_string()));
        }
        let strategy = &self.swap.spec.strategy;
        if strategy.blue_while_retained == BlueWhileRetained::ScaledToZero
            && !strategy.blue_retention().is_zero()
        {
            match status.blue_workloads {
                BlueWorkloads::Serving => {
                    // The intent first: from here on a rollback restores blue before it moves
                    // traffic, even if the scale-down below is cut off halfway.
                    status.blue_workloads = BlueWorkloads::ScalingDown;
                    self.write(status.clone()).await?;
                    return Ok(Step::Requeue(Duration::ZERO));
                }
                BlueWorkloads::ScalingDown => return self.scale_blue_down(cluster, status).await,
                BlueWorkloads::ScaledToZero | BlueWorkloads::Restoring => {}
            }
        }
        let retention = strategy.blue_retention();
        let retained = self.retained_for(status);
        if retained < retention {
            return Ok(Step::Requeue(
                self.ctx.settings.gate_interval.min(retention - retained),
            ));
        }
        // Deleting blue cannot be undone: not while green's requests could still fail the gate.
        if let Some(wait) = self.undecided(cluster, status, judged.counted).await? {
            return Ok(wait);
        }
        let before = At::point(HookPoint::BeforeBlueDeleted, None);
        if let Some(step) = self.hooks_at(cluster, status, before).await? {
            return Ok(step);
        }
        let blue = self.blue(status)?;
        Ok(Step::advance(
            Phase::Decommissioning,
            Reason::RetentionExpired,
            format!("retention over; deleting blue {blue}"),
        ))
    }

    pub(super) async fn decommissioning(
        &self,
        cluster: &Cluster,
        status: &mut ClusterSwapStatus,
    ) -> Result<Step, Error> {
        self.ensure_traffic(cluster, status).await?;
        let blue = self.blue(status)?;
        if !self.instance_gone(cluster, &blue).await? {
            return Ok(Step::wait(
                Reason::Decommissioned,
                format!("the provider is deleting blue {blue}"),
                self.deletion_poll(),
            ));
        }
        self.ctx.cloud_poll_done(&poll_key(&self.name));
        self.attach_green_alone(cluster, status).await?;
        self.update_cluster(cluster, |st| {
            let before = st.instances.len();
            st.instances.retain(|i| i.name != blue);
            self.release(st) | (before != st.instances.len())
        })
        .await?;
        let green = self.green(status)?;
        Ok(Step::advance(
            Phase::Succeeded,
            Reason::SwapSucceeded,
            format!(
                "green {green} serves Cluster {}; blue {blue} is deleted",
                cluster.name_any()
            ),
        ))
    }

    /// Scales blue's selected workloads to zero (traffic left blue in Draining). A failure is
    /// a Warning and a retry, never a reason to hold the swap: retention goes on, and blue is
    /// deleted at its end either way.
    async fn scale_blue_down(
        &self,
        cluster: &Cluster,
        status: &mut ClusterSwapStatus,
    ) -> Result<Step, Error> {
        let blue = self.blue(status)?;
        let scaled = async {
            let client = self.member(cluster, &blue).await?;
            blue_replicas::scale_to_zero(&client, &blue, &self.name, &self.selection(cluster)).await
        }
        .await;
        match scaled {
            Ok(changed) => {
                status.blue_workloads = BlueWorkloads::ScaledToZero;
                self.write(status.clone()).await?;
                self.event(
                    false,
                    Reason::BlueScaledDown,
                    format!(
                        "scaled {} workloads of blue {blue} to zero while it is retained; a \
                         rollback restores them before traffic moves back",
                        changed.patched + changed.already
                    ),
                )
                .await;
                Ok(Step::Requeue(Duration::ZERO))
            }
            Err(e) => {
                self.event(
                    true,
                    Reason::BlueScaledDown,
                    format!("scaling blue {blue}'s workloads to zero failed, retrying: {e}"),
                )
                .await;
                Ok(Step::Requeue(self.ctx.settings.gate_interval))
            }
        }
    }
}
