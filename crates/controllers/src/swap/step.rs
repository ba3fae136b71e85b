//! A phase's decision, and the one place that carries it out: the status write (with the
//! resourceVersion read, so a stale view fails with 409), the conditions, the Event, the
//! metrics and the swap's memory.

use std::time::Duration;

use kube::api::PostParams;
use kube::runtime::controller::Action;
use rotor_api::{
    Cluster, ClusterSwap, ClusterSwapStatus, Condition, ConditionStatus, ConditionType, Phase,
    Reason, find_condition, set_condition,
};

use super::{Reconcile, object_ref, poll_key};
use crate::{Error, now};

/// What a phase decided.
#[derive(Debug)]
pub(super) enum Step {
    /// Stay in the phase; say why (a Progressing condition and an Event, when either changed)
    /// and look again after `after`.
    Wait {
        reason: Reason,
        message: String,
        after: Duration,
        /// The Event is a Warning: a person should look (the swap holds on something it
        /// cannot judge).
        warning: bool,
    },
    /// Move to the next phase (the lifecycle decides whether that is allowed).
    Advance {
        to: Phase,
        reason: Reason,
        message: String,
    },
    /// All traffic back to blue in one shifter call, then RollingBack.
    RollBack { reason: Reason, message: String },
    /// Give up: Failed, instances left as they are.
    Fail { reason: Reason, message: String },
    /// Look again after this, recording nothing (a bake, drain or retention timer, or the
    /// next step of the same phase after an intent write).
    Requeue(Duration),
    /// Write what the phase recorded in status (a metric gate's reading), when it changed,
    /// and look again after this: no phase change, no Event.
    Record(Duration),
    /// Nothing to do until the object changes.
    AwaitChange,
}

impl Step {
    pub(super) fn wait(reason: Reason, message: impl Into<String>, after: Duration) -> Self {
        Step::Wait {
            reason,
            message: message.into(),
            after,
            warning: false,
        }
    }

    /// A [`Step::Wait`] whose Event is a Warning.
    pub(super) fn hold(reason: Reason, message: impl Into<String>, after: Duration) -> Self {
        Step::Wait {
            reason,
            message: message.into(),
            after,
            warning: true,
        }
    }

    pub(super) fn advance(to: Phase, reason: Reason, message: impl Into<String>) -> Self {
        Step::Advance {
            to,
            reason,
            message: message.into(),
        }
    }

    pub(super) fn roll_back(reason: Reason, message: impl Into<String>) -> Self {
        Step::RollBack {
            reason,
            message: message.into(),
        }
    }

    pub(super) fn fail(reason: Reason, message: impl Into<String>) -> Self {
        Step::Fail {
            reason,
            message: message.into(),
        }
    }
}

impl Reconcile<'_> {
    /// Carries out `step` from `status` (which the phase may have updated).
    pub(super) async fn apply(
        &self,
        cluster: &Cluster,
        status: ClusterSwapStatus,
        step: Step,
    ) -> Result<Action, Error> {
        // A phase change, and an intent written to act on at once, go straight on.
        let goes_on = match &step {
            Step::Advance { .. } | Step::RollBack { .. } => true,
            Step::Requeue(after) => after.is_zero(),
            _ => false,
        };
        crate::lock(&self.wrote).1 = goes_on;
        match step {
            Step::Wait {
                reason,
                message,
                after,
                warning,
            } => {
                self.wait_saying(status, warning, reason, message, after)
                    .await
            }
            Step::Advance {
                to,
                reason,
                message,
            } => self.transition(status, to, reason, message).await,
            Step::RollBack { reason, message } => {
                self.start_rollback(cluster, status, reason, message).await
            }
            Step::Fail { reason, message } => {
                self.transition(status, Phase::Failed, reason, message)
                    .await
            }
            Step::Requeue(after) => Ok(Action::requeue(after)),
            Step::Record(after) => {
                if self.swap.status.as_ref() != Some(&status) {
                    self.write(status).await?;
                }
                Ok(Action::requeue(after))
            }
            Step::AwaitChange => Ok(Action::await_change()),
        }
    }

    /// Writes `status` with the resourceVersion this reconcile read (409 when stale).
    pub(super) async fn write(&self, mut status: ClusterSwapStatus) -> Result<(), Error> {
        status.observed_generation = self.swap.metadata.generation;
        let mut obj = self.swap.clone();
        obj.status = Some(status);
        let written = self
            .api
            .replace_status(&self.name, &PostParams::default(), &obj)
            .await?;
        self.remember(written);
        Ok(())
    }

    /// Remembers `written`, this reconcile's write over the swap it read: the version it
    /// replaced is superseded, and a step that goes straight on starts from it.
    fn remember(&self, written: ClusterSwap) {
        self.ctx.written.wrote(
            &self.name,
            self.swap.metadata.resource_version.as_deref(),
            written.metadata.resource_version.as_deref(),
        );
        crate::lock(&self.wrote).0 = Some(written);
    }

    /// As [`Reconcile::remember`], and the reconcile goes straight on from `written`.
    pub(super) fn wrote_and_goes_on(&self, written: ClusterSwap) {
        self.remember(written);
        crate::lock(&self.wrote).1 = true;
    }

    /// An Event on the swap, its action the phase it is in.
    pub(super) async fn event(&self, warning: bool, reason: Reason, note: String) {
        let phase = self.swap.status.as_ref().map(|s| s.phase);
        let action = phase.unwrap_or_default().as_str();
        self.publish(warning, reason, action, note).await;
    }

    async fn publish(&self, warning: bool, reason: Reason, action: &str, note: String) {
        self.ctx
            .recorder
            .publish(
                &object_ref(self.swap),
                warning,
                reason.as_str(),
                action,
                note,
            )
            .await;
    }

    /// Records why the swap waits (a condition, when it changed) and polls again after `after`.
    pub(super) async fn wait(
        &self,
        status: ClusterSwapStatus,
        reason: Reason,
        message: String,
        after: Duration,
    ) -> Result<Action, Error> {
        self.wait_saying(status, false, reason, message, after)
            .await
    }

    /// As [`Reconcile::wait`], its Event a Warning when `warning` is.
    async fn wait_saying(
        &self,
        mut status: ClusterSwapStatus,
        warning: bool,
        reason: Reason,
        message: String,
        after: Duration,
    ) -> Result<Action, Error> {
        let changed = set_condition(
            &mut status.conditions,
            Condition::new(
                ConditionType::Progressing,
                ConditionStatus::True,
                reason,
                message.clone(),
                now(),
                self.swap.metadata.generation,
            ),
        );
        // Progress the phase recorded (a migration's counts) is written without an Event.
        let progressed = self.swap.status.as_ref() != Some(&status);
        if changed || progressed {
            self.write(status).await?;
        }
        if changed {
            self.event(warning, reason, message).await;
        }
        Ok(Action::requeue(after))
    }

    /// Moves to `next` (the lifecycle decides whether that is allowed), updates the
    /// conditions, writes, and records an Event and the metrics.
    pub(super) async fn transition(
        &self,
        mut status: ClusterSwapStatus,
        next: Phase,
        reason: Reason,
        message: String,
    ) -> Result<Action, Error> {
        let t = now();
        status
            .transition(next, t.clone(), reason, message.clone())
            .map_err(|source| Error::InvalidTransition {
                swap: self.name.clone(),
                source,
            })?;
        self.set_conditions(&mut status, next, reason, &message, &t);
        self.write(status).await?;
        self.after_transition(next, reason, message, &t).await;
        // The watch event of this write triggers the next step; the requeue is a safety net.
        Ok(Action::requeue(self.ctx.settings.poll_interval))
    }

    /// The conditions a move to `next` sets (and clears a stale Paused).
    fn set_conditions(
        &self,
        status: &mut ClusterSwapStatus,
        next: Phase,
        reason: Reason,
        message: &str,
        t: &crate::Time,
    ) {
        let generation = self.swap.metadata.generation;
        let was_paused =
            find_condition(&status.conditions, ConditionType::Paused).is_some_and(|c| c.is_true());
        let mut set = |type_: ConditionType, on: bool, reason: Reason, message: &str| {
            let value = if on {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            };
            let c = Condition::new(
                type_,
                value,
                reason,
                message.to_string(),
                t.clone(),
                generation,
            );
            set_condition(&mut status.conditions, c);
        };
        if !self.swap.spec.paused && was_paused {
            set(
                ConditionType::Paused,
                false,
                Reason::Resumed,
                "spec.paused was cleared",
            );
        }
        set(
            ConditionType::Progressing,
            !next.is_terminal(),
            reason,
            message,
        );
        set(
            ConditionType::Ready,
            next == Phase::Succeeded,
            reason,
            message,
        );
        let reached = match next {
            Phase::Migrating => &[(ConditionType::GreenReady, true)][..],
            Phase::Verifying => &[(ConditionType::Migrated, true)],
            Phase::ShiftingTraffic => &[(ConditionType::Verified, true)],
            Phase::Draining => &[
                (ConditionType::TrafficShifted, true),
                (ConditionType::BlueRetained, true),
            ],
            Phase::Decommissioning => &[(ConditionType::BlueRetained, false)],
            Phase::RollingBack | Phase::Failed => &[(ConditionType::Degraded, true)],
            _ => &[],
        };
        for (type_, on) in reached {
            set(*type_, *on, reason, message);
        }
    }

    /// Metrics, memory, log and Event of a move to `next` that was written at `t`.
    async fn after_transition(
        &self,
        next: Phase,
        reason: Reason,
        message: String,
        t: &crate::Time,
    ) {
        let took = self
            .swap
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(|created| t.0.duration_since(created.0).try_into().ok())
            .map(|d: Duration| d.as_secs_f64());
        self.ctx
            .metrics
            .swap_transition(next, reason.as_str(), took);
        if next.is_terminal() {
            self.forget_all();
            // A migration cut off by a rollback (or started again from a stale cache) may have
            // left green's checkpoint behind.
            let green = self.green_name();
            self.ctx.checkpoints.forget(&self.ctx.client, &green).await;
        } else {
            self.ctx.swaps.mark_phase(&self.name, next, t);
        }
        tracing::info!(swap = %self.name, phase = %next, %reason, %message, "swap phase");
        let warning = matches!(next, Phase::RollingBack | Phase::Failed);
        self.publish(warning, reason, next.as_str(), message).await;
    }

    /// The swap is over: stop its migration, drop its memory, its cloud-polling schedule and
    /// green's watch.
    pub(super) fn forget_all(&self) {
        self.ctx.migrations.cancel(&self.name);
        self.ctx.swaps.forget(&self.name);
        self.ctx.written.ended(&self.name);
        self.ctx.cloud_poll_done(&poll_key(&self.name));
        if let Some(green) = self
            .swap
            .status
            .as_ref()
            .and_then(|s| s.green_instance.as_ref())
        {
            self.ctx.forget_green(green);
        }
    }
}
