//! Conditions shared by all rotor kinds, Cluster API style: a closed set of types and CamelCase
//! reasons, `lastTransitionTime` that only moves when the status flips, and `observedGeneration`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

closed_enum! {
    /// Status of a condition.
    pub enum ConditionStatus {
        True = "True",
        False = "False",
        Unknown = "Unknown",
    }
}

closed_enum! {
    /// Condition types across the three kinds. `Ready` is the summary every kind carries.
    pub enum ConditionType {
        /// Summary: the object is where its spec wants it.
        Ready = "Ready",
        /// Work is under way (a swap or a wave in progress).
        Progressing = "Progressing",
        /// `spec.paused` is set, or a rollout paused itself (failure budget).
        Paused = "Paused",
        /// Something is wrong but the object still serves (a gate failed, a swap rolled back).
        Degraded = "Degraded",
        /// Cluster: discovery reaches the active instance's API.
        Reachable = "Reachable",
        /// Swap: green exists, is reachable, at the target version, nodes Ready.
        GreenReady = "GreenReady",
        /// Swap: every selected workload is applied to green and available.
        Migrated = "Migrated",
        /// Swap: health gates pass on green.
        Verified = "Verified",
        /// Swap: green carries 100 % of the traffic.
        TrafficShifted = "TrafficShifted",
        /// Swap: blue still exists, so a rollback stays possible.
        BlueRetained = "BlueRetained",
        /// Rollout: the next wave is approved (manual approval).
        Approved = "Approved",
        /// Rollout: now is inside a maintenance window.
        InMaintenanceWindow = "InMaintenanceWindow",
        /// Rollout: the pre-flight before the first wave found no blocker.
        PreflightPassed = "PreflightPassed",
        /// Rollout: a swap of it holds on a gate that cannot be judged (a metric gate without
        /// data under `onInconclusive: Pause`); the message names the clusters and why.
        SwapsHeld = "SwapsHeld",
        /// Any kind: the stored object cannot be read by this rotor (the message names the
        /// field); the controllers skip it until it is fixed.
        InvalidSpec = "InvalidSpec",
    }
}

closed_enum! {
    /// Why a condition (or a phase transition) is what it is. CamelCase, closed: a controller that
    /// needs a new reason adds a variant here, so dashboards and alerts can rely on the set.
    pub enum Reason {
        // Cluster
        Healthy = "Healthy",
        Unreachable = "Unreachable",
        NodesNotReady = "NodesNotReady",
        WorkloadsUnavailable = "WorkloadsUnavailable",
        SwapInProgress = "SwapInProgress",
        NoActiveInstance = "NoActiveInstance",
        // ClusterSwap
        Created = "Created",
        InvalidSpec = "InvalidSpec",
        ClusterNotFound = "ClusterNotFound",
        AnotherSwapActive = "AnotherSwapActive",
        ProvisioningGreen = "ProvisioningGreen",
        GreenCreated = "GreenCreated",
        GreenReady = "GreenReady",
        GreenNotReady = "GreenNotReady",
        MigrationInProgress = "MigrationInProgress",
        MigrationComplete = "MigrationComplete",
        MigrationFailed = "MigrationFailed",
        VerificationPassed = "VerificationPassed",
        HealthGateFailed = "HealthGateFailed",
        TrafficStepApplied = "TrafficStepApplied",
        /// A metric gate read a value beyond its threshold (or could not be judged, with
        /// `onInconclusive: Fail`): the swap rolls back.
        MetricGateFailed = "MetricGateFailed",
        /// A metric gate cannot be judged (no data, NaN, the query failed) and holds the step
        /// (`onInconclusive: Pause`): no advance, no rollback.
        MetricGateInconclusive = "MetricGateInconclusive",
        /// A metric gate that held the step can be judged again.
        MetricGateConclusive = "MetricGateConclusive",
        /// A metric gate passed its consecutive evaluations in a traffic step.
        MetricGatePassed = "MetricGatePassed",
        /// A lifecycle hook was called (one Event per call).
        HookCalled = "HookCalled",
        /// A lifecycle hook allowed the swap to go on.
        HookAllowed = "HookAllowed",
        /// A lifecycle hook denied, with its reason: the swap rolls back.
        HookDenied = "HookDenied",
        /// A lifecycle hook gave no usable answer (retries spent, or a final error): the swap
        /// rolls back (`failurePolicy: Fail`) or goes on with this Warning (`Ignore`).
        HookFailed = "HookFailed",
        /// The swap waits for a lifecycle hook's next call (a retry-after answer, or a backoff
        /// after a failed call).
        HookWaiting = "HookWaiting",
        /// A step (or blue's retention) is over but green holds requests it has not answered,
        /// enough to fail the gate should they fail: the swap waits for their outcome.
        GreenRequestsUnanswered = "GreenRequestsUnanswered",
        /// A step has baked but green answered fewer requests in it than `minRequests`: it
        /// holds (`onTooFewRequests: Pause`) or rolls back (`Fail`).
        TooFewRequests = "TooFewRequests",
        TrafficShifted = "TrafficShifted",
        DrainingBlue = "DrainingBlue",
        /// Blue's drain timeout passed with sessions still open on it (long-lived streams, or
        /// requests slower than the timeout); they end with blue's workloads.
        DrainTimedOut = "DrainTimedOut",
        RetainingBlue = "RetainingBlue",
        RetentionExpired = "RetentionExpired",
        /// Blue's workloads scaled to zero while blue is retained.
        BlueScaledDown = "BlueScaledDown",
        /// A rollback restores blue's workloads; traffic moves once they are available.
        RestoringBlue = "RestoringBlue",
        Decommissioned = "Decommissioned",
        SwapSucceeded = "SwapSucceeded",
        RollbackRequested = "RollbackRequested",
        RolledBack = "RolledBack",
        /// The ClusterSwap is being deleted: what it created is cleaned up first (finalizer).
        SwapDeleted = "SwapDeleted",
        /// The deleted ClusterSwap's cleanup is done; its finalizer is removed.
        CleanupComplete = "CleanupComplete",
        ProviderError = "ProviderError",
        TrafficShifterError = "TrafficShifterError",
        TimedOut = "TimedOut",
        // Shared
        Paused = "Paused",
        Resumed = "Resumed",
        // Rollout
        WaveInProgress = "WaveInProgress",
        WaveBaking = "WaveBaking",
        WaitingForApproval = "WaitingForApproval",
        OutsideMaintenanceWindow = "OutsideMaintenanceWindow",
        FailureBudgetExceeded = "FailureBudgetExceeded",
        /// A failure budget was exceeded under `onBudgetExceeded: RollbackFleet`: the rollout's
        /// swaps are asked to roll back.
        FleetRollingBack = "FleetRollingBack",
        /// Every swap of a rollout that rolled its fleet back has ended.
        FleetRolledBack = "FleetRolledBack",
        /// `spec.retryFailed` was raised: failed and left-out clusters run again.
        RetryingFailed = "RetryingFailed",
        /// A notification sink did not take a milestone (unreachable, refused, its Secret
        /// missing).
        NotificationFailed = "NotificationFailed",
        NoClustersSelected = "NoClustersSelected",
        RolloutComplete = "RolloutComplete",
        /// A cluster left out of a rollout (stopped, unreachable, blocked by pre-flight, or by an
        /// operator).
        ClusterSkipped = "ClusterSkipped",
        /// A cluster's swap waits for the cluster to be reachable, started, or in its window.
        ClusterUnavailable = "ClusterUnavailable",
        /// A swap held at its safe point (green verified, traffic not moved).
        Parked = "Parked",
        /// The pre-flight found nothing that would stop a swap.
        PreflightPassed = "PreflightPassed",
        /// The pre-flight found clusters whose swap would fail.
        PreflightBlocked = "PreflightBlocked",
        /// The provider asked rotor to slow down (one Warning per rate-limited stretch).
        ProviderRateLimited = "ProviderRateLimited",
        /// A member cluster's API failed a call; retried with backoff.
        MemberClusterError = "MemberClusterError",
        /// The control plane's own API failed a call; retried with backoff.
        ControlPlaneError = "ControlPlaneError",
        /// A reconcile failed for another reason (a bug, a task that ended without a result).
        ReconcileError = "ReconcileError",
        /// A stored object cannot be decoded by this rotor; it is skipped until fixed.
        InvalidObject = "InvalidObject",
    }
}

/// One condition, as in `metav1.Condition` but with typed `type`, `status` and `reason`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Which aspect this condition describes.
    #[serde(rename = "type")]
    pub type_: ConditionType,
    /// True, False or Unknown.
    pub status: ConditionStatus,
    /// Machine-readable reason for the last transition.
    pub reason: Reason,
    /// Human-readable details.
    #[serde(default)]
    pub message: String,
    /// When `status` last changed (not when the condition was last written).
    pub last_transition_time: Time,
    /// The `metadata.generation` this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Condition {
    /// A condition observed now for the given generation.
    pub fn new(
        type_: ConditionType,
        status: ConditionStatus,
        reason: Reason,
        message: impl Into<String>,
        now: Time,
        observed_generation: Option<i64>,
    ) -> Self {
        Self {
            type_,
            status,
            reason,
            message: message.into(),
            last_transition_time: now,
            observed_generation,
        }
    }

    /// Whether the condition's status is `True`.
    pub fn is_true(&self) -> bool {
        self.status == ConditionStatus::True
    }
}

/// The condition of the given type, if present.
pub fn find_condition(conditions: &[Condition], type_: ConditionType) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Inserts or replaces the condition of `new.type_`. When the status does not change, the old
/// `lastTransitionTime` is kept, so the time says when the status flipped. Returns whether
/// anything changed (so a controller can skip a status write).
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time.clone();
            }
            let changed = *old != new;
            *old = new;
            changed
        }
        None => {
            conditions.push(new);
            true
        }
    }
}
