//! `ClusterSwap`: one blue-green rotation of one Cluster, and the swap lifecycle as code
//! (`Phase::can_transition_to`), so no controller can move a phase backwards by accident.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{SwapStrategy, SwapTarget};
use crate::condition::{Condition, Reason};
use crate::validation::{Errors, FieldError, FieldErrorKind};

/// Desired state of a [`ClusterSwap`]: one blue-green rotation of one Cluster to a target version
/// and/or config.
///
/// The kind is cluster-scoped like the Cluster it rotates, so `clusterRef` is a plain name and
/// ownership and garbage collection stay in one scope (see the crate docs).
// Each `printcolumn(...)` repeats the same keys; clippy reads them as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "rotor.dev",
    version = "v1alpha1",
    kind = "ClusterSwap",
    plural = "clusterswaps",
    shortname = "rsw",
    shortname = "swap",
    category = "rotor",
    status = "ClusterSwapStatus",
    derive = "PartialEq",
    doc = "One blue-green rotation of one Cluster to a target Kubernetes version and/or config.",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterRef"),
    printcolumn(
        name = "Target",
        type_ = "string",
        json_path = ".spec.target.kubernetesVersion"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Green%",
        type_ = "integer",
        json_path = ".status.greenWeightPercent"
    ),
    printcolumn(
        name = "Blue",
        type_ = "string",
        json_path = ".status.blueInstance",
        priority = 1
    ),
    printcolumn(
        name = "Green",
        type_ = "string",
        json_path = ".status.greenInstance",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSwapSpec {
    /// Name of the Cluster to rotate. Immutable.
    #[schemars(length(min = 1, max = 253))]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "clusterRef is immutable"}]))]
    pub cluster_ref: String,
    /// What green differs in. Immutable: a different target is a different swap.
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "target is immutable"}]))]
    pub target: SwapTarget,
    /// Traffic steps, bake time, gates, retention, migration policy.
    #[serde(default)]
    pub strategy: SwapStrategy,
    /// Stop advancing (the current phase's work finishes; nothing new starts). Rollback still works.
    #[serde(default)]
    pub paused: bool,
    /// Operator's request to roll back: all traffic to blue, green deleted. Cannot be withdrawn.
    #[serde(default)]
    pub rollback: bool,
    /// Park at the safe point: the swap proceeds up to a verified green but does not move traffic
    /// while this is set. A Rollout sets it when it is paused or its maintenance window closes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hold_before_traffic: bool,
}

impl ClusterSwapSpec {
    /// Checks what the schema cannot say; every error names its field under `spec`.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errs = Errors::default();
        errs.dns_subdomain("spec.clusterRef", &self.cluster_ref);
        self.target.validate_at("spec.target", &mut errs);
        self.strategy.validate_at("spec.strategy", &mut errs);
        errs.into_result()
    }

    /// [`validate`](Self::validate) plus the update rules: `clusterRef` and `target` are
    /// immutable, and a rollback request cannot be withdrawn.
    pub fn validate_update(&self, old: &Self) -> Result<(), Vec<FieldError>> {
        let mut errs = Errors(self.validate().err().unwrap_or_default());
        if self.cluster_ref != old.cluster_ref {
            errs.push(
                "spec.clusterRef",
                FieldErrorKind::Forbidden,
                "field is immutable",
            );
        }
        if self.target != old.target {
            errs.push(
                "spec.target",
                FieldErrorKind::Forbidden,
                "field is immutable; create a new ClusterSwap",
            );
        }
        if old.rollback && !self.rollback {
            errs.push(
                "spec.rollback",
                FieldErrorKind::Forbidden,
                "a rollback request cannot be withdrawn",
            );
        }
        errs.into_result()
    }
}

closed_enum! {
    /// Where a swap is in its lifecycle (see docs/design.md, "The swap lifecycle").
    #[derive(Default)]
    pub enum Phase {
        /// Accepted, nothing done yet.
        #[default]
        Pending = "Pending",
        /// Green is being created by the provider (deterministic name, idempotency token).
        Provisioning = "Provisioning",
        /// Waiting for green to be reachable, at the target version, nodes Ready.
        WaitingForGreen = "WaitingForGreen",
        /// Copying workloads from blue to green.
        Migrating = "Migrating",
        /// Waiting for migrated workloads to be available in green and the gates to pass.
        Verifying = "Verifying",
        /// Moving traffic to green step by step, baking after each.
        ShiftingTraffic = "ShiftingTraffic",
        /// Green has 100 %; connections on blue drain.
        Draining = "Draining",
        /// Blue idles for the retention period so a rollback stays possible.
        Retaining = "Retaining",
        /// Blue is being deleted; no way back from here.
        Decommissioning = "Decommissioning",
        /// Done: green serves, blue is gone.
        Succeeded = "Succeeded",
        /// All traffic back to blue, green being deleted.
        RollingBack = "RollingBack",
        /// Done: blue serves, green is gone.
        RolledBack = "RolledBack",
        /// Stopped; needs a person. Blue keeps serving.
        Failed = "Failed",
    }
}

impl Phase {
    /// The happy path, in order.
    pub const LIFECYCLE: [Phase; 10] = [
        Phase::Pending,
        Phase::Provisioning,
        Phase::WaitingForGreen,
        Phase::Migrating,
        Phase::Verifying,
        Phase::ShiftingTraffic,
        Phase::Draining,
        Phase::Retaining,
        Phase::Decommissioning,
        Phase::Succeeded,
    ];

    /// Position on the happy path; `None` for RollingBack, RolledBack, Failed.
    pub fn lifecycle_index(self) -> Option<usize> {
        Self::LIFECYCLE.iter().position(|p| *p == self)
    }

    /// The next phase on the happy path, if any.
    pub fn next(self) -> Option<Phase> {
        self.lifecycle_index()
            .and_then(|i| Self::LIFECYCLE.get(i + 1).copied())
    }

    /// Succeeded, RolledBack and Failed: nothing moves out of them.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::RolledBack | Phase::Failed)
    }

    /// Whether blue can still take all traffic back: every happy-path phase before
    /// Decommissioning.
    pub fn allows_rollback(self) -> bool {
        self.lifecycle_index()
            .is_some_and(|i| i < Self::DECOMMISSIONING_INDEX)
    }

    const DECOMMISSIONING_INDEX: usize = 8;

    /// The lifecycle rules:
    /// - forward along the happy path, **one step at a time** (a phase with nothing to do is
    ///   passed through and recorded, so the history always shows the whole path);
    /// - RollingBack from any phase before Decommissioning, then RollingBack → RolledBack;
    /// - Failed from any non-terminal phase (RollingBack included).
    ///
    /// Nothing else; in particular no phase moves to itself.
    pub fn can_transition_to(self, next: Phase) -> bool {
        if self.is_terminal() {
            return false;
        }
        match next {
            Phase::Failed => true,
            Phase::RollingBack => self.allows_rollback(),
            Phase::RolledBack => self == Phase::RollingBack,
            _ => self.next() == Some(next),
        }
    }

    /// Whether green may carry traffic in this phase (the traffic layer's invariant check).
    pub fn green_may_serve(self) -> bool {
        matches!(
            self,
            Phase::ShiftingTraffic
                | Phase::Draining
                | Phase::Retaining
                | Phase::Decommissioning
                | Phase::Succeeded
        )
    }
}

// `Phase::DECOMMISSIONING_INDEX` must point at Decommissioning.
const _: () = assert!(matches!(
    Phase::LIFECYCLE[Phase::DECOMMISSIONING_INDEX],
    Phase::Decommissioning
));

/// A transition the lifecycle forbids; a controller bug, reported loudly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidTransition {
    /// Phase the swap was in.
    pub from: Phase,
    /// Phase the caller asked for.
    pub to: Phase,
}

impl fmt::Display for InvalidTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid swap phase transition {} -> {}",
            self.from, self.to
        )
    }
}

impl std::error::Error for InvalidTransition {}

/// Migration progress, counted in objects.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationProgress {
    /// Objects selected for migration.
    pub objects_total: u32,
    /// Objects applied to green.
    pub objects_applied: u32,
    /// Applied objects that are ready (workloads available).
    pub objects_ready: u32,
}

/// One recorded phase change.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PhaseTransition {
    /// Phase entered.
    pub phase: Phase,
    /// When.
    pub time: Time,
    /// Why.
    pub reason: Reason,
    /// Details for people.
    #[serde(default)]
    pub message: String,
}

/// Observed state of a ClusterSwap. `None` fields serialize as `null` so a JSON merge patch of the
/// whole status clears them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSwapStatus {
    /// Where the swap is.
    #[serde(default)]
    pub phase: Phase,
    /// `Ready`, `Progressing`, `Paused`, `GreenReady`, `Migrated`, `Verified`, `TrafficShifted`,
    /// `BlueRetained`, `Degraded`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The instance serving when the swap started.
    #[serde(default)]
    pub blue_instance: Option<String>,
    /// The instance being built; at most one per swap.
    #[serde(default)]
    pub green_instance: Option<String>,
    /// Progress of the workload copy.
    #[serde(default)]
    pub migration: Option<MigrationProgress>,
    /// Green's share of the traffic now, in percent.
    #[serde(default)]
    #[schemars(range(max = 100))]
    pub green_weight_percent: u8,
    /// Where blue's workloads are (`strategy.blueWhileRetained`): `Serving` until Retaining
    /// scales them down, `Restoring` while a rollback brings them back before traffic moves.
    #[serde(default)]
    pub blue_workloads: BlueWorkloads,
    /// Index into `spec.strategy.trafficSteps` of the step applied last (resumes ShiftingTraffic).
    #[serde(default)]
    pub current_step: Option<u32>,
    /// When the current traffic step was applied (its bake started).
    #[serde(default)]
    pub step_started_at: Option<Time>,
    /// What the metric gates (`strategy.healthGates.metricGates`) have read, one entry per
    /// gate evaluated: the last value and result, passes in a row in the current step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metric_gates: Vec<crate::metric_gate::MetricGateStatus>,
    /// What the gates read while green carried traffic: at the end of each traffic step the
    /// passing readings (error rate, latency percentiles, metric gates), and the reading that
    /// failed, oldest first; at most [`MAX_GATE_READINGS`](crate::MAX_GATE_READINGS), the
    /// oldest dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub gate_readings: Vec<crate::GateReading>,
    /// The lifecycle hooks called so far (`strategy.hooks`), one entry per hook and point (and
    /// traffic step, for `AfterEachStep`): where each call stands, so a hook waiting for its
    /// next attempt survives a restart and none is called twice for the same point.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<crate::hook::HookStatus>,
    /// When the swap left Pending.
    #[serde(default)]
    pub started_at: Option<Time>,
    /// When the swap reached a terminal phase.
    #[serde(default)]
    pub finished_at: Option<Time>,
    /// Every phase entered, oldest first. Bounded by the lifecycle: phases only move forward, so
    /// at most one entry per phase.
    #[serde(default)]
    pub history: Vec<PhaseTransition>,
    /// The `metadata.generation` this status reflects.
    #[serde(default)]
    pub observed_generation: Option<i64>,
}

closed_enum! {
    /// Where blue's workloads are during a swap.
    #[derive(Default)]
    pub enum BlueWorkloads {
        /// Running as before the swap.
        #[default]
        Serving = "Serving",
        /// Being scaled to zero (intent recorded first, so a crash or a rollback knows).
        ScalingDown = "ScalingDown",
        /// Scaled to zero; replica counts kept in each workload's annotation.
        ScaledToZero = "ScaledToZero",
        /// A rollback is restoring them; traffic stays on green until they are available.
        Restoring = "Restoring",
    }
}

impl ClusterSwapStatus {
    /// Moves to `next` if the lifecycle allows it, recording the transition in `history` and
    /// setting `startedAt` / `finishedAt`. On error nothing changes.
    pub fn transition(
        &mut self,
        next: Phase,
        now: Time,
        reason: Reason,
        message: impl Into<String>,
    ) -> Result<(), InvalidTransition> {
        if !self.phase.can_transition_to(next) {
            return Err(InvalidTransition {
                from: self.phase,
                to: next,
            });
        }
        if self.started_at.is_none() {
            self.started_at = Some(now.clone());
        }
        if next.is_terminal() {
            self.finished_at = Some(now.clone());
        }
        self.phase = next;
        self.history.push(PhaseTransition {
            phase: next,
            time: now,
            reason,
            message: message.into(),
        });
        Ok(())
    }
}
