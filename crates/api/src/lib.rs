//! rotor's own kinds in `rotor.dev/v1alpha1` — `Cluster`, `ClusterSwap`, `Rollout` — defined once
//! with kube-derive, plus the rules that belong to the types: validation, the swap lifecycle, CRDs.
//!
//! # Scope
//! All three kinds are **cluster-scoped**. A `Cluster` is a platform team's logical cluster with a
//! fleet-wide identity (`prod-aws-us-east-1-a`); two namespaces holding two different
//! `prod-aws-us-east-1-a` objects would be a bug, not a feature. A `ClusterSwap` acts on exactly one
//! `Cluster` and a `Rollout` spans the fleet, so they share the Cluster's scope: a namespaced object
//! referring to a cluster-scoped one would split ownership (garbage collection, RBAC) across two
//! scopes for no gain. Access control is by RBAC on resource names and verbs instead of namespaces.
//!
//! # Names (see [`crds`])
//! | kind          | plural          | short names     | category |
//! |---------------|-----------------|-----------------|----------|
//! | `Cluster`     | `clusters`      | `rcl`           | `rotor`  |
//! | `ClusterSwap` | `clusterswaps`  | `rsw`, `swap`   | `rotor`  |
//! | `Rollout`     | `rollouts`      | `rro`           | `rotor`  |
//!
//! Short names avoid kubectl's built-ins (`cs` is componentstatuses) and the ecosystem's usual
//! neighbours on a management cluster: Cluster API owns `cl` (clusters.cluster.x-k8s.io) and Argo
//! Rollouts owns `ro` (rollouts.argoproj.io). When those are installed too, the plural names clash,
//! so use `clusters.rotor.dev` / `rollouts.rotor.dev`, the short names, or `kubectl get rotor`.

#[macro_use]
mod macros;

pub mod client;
mod cluster;
mod common;
mod condition;
mod gate_reading;
pub mod hook;
pub mod metric_gate;
mod notification;
mod rollout;
mod sample;
mod swap;
mod validation;
mod window;

pub use cluster::{
    Cluster, ClusterInstance, ClusterSpec, ClusterStatus, HealthSummary, InstancePhase,
};
pub use common::{
    BlueWhileRetained, HealthGates, MAX_BAKE_SECONDS, MAX_NODES_PER_POOL, MAX_RETENTION_SECONDS,
    MAX_TRAFFIC_STEPS, MigrationPolicy, NodePool, Provider, ShifterKind, StatefulData,
    SwapStrategy, SwapTarget, TrafficEndpoint, WorkloadSelector,
};
pub use condition::{
    Condition, ConditionStatus, ConditionType, Reason, find_condition, set_condition,
};
pub use gate_reading::{GateKind, GateReading, MAX_GATE_READINGS, record_readings};
pub use hook::{
    HookAnswer, HookCluster, HookFailurePolicy, HookPoint, HookState, HookStatus, JobHook,
    LifecycleHook, WebhookHook,
};
pub use metric_gate::{
    MetricGate, MetricGateResult, MetricGateStatus, OnInconclusive, PrometheusSource, Threshold,
};
pub use notification::{
    MAX_NOTIFICATION_SINKS, Milestone, NotificationFormat, NotificationSink, SECRETS_NAMESPACE,
    SecretKeyRef,
};
pub use rollout::{
    Approval, BudgetPolicy, FleetRollback, MAX_CONCURRENT_SWAPS, MAX_WAVE_BAKE_SECONDS, MAX_WAVES,
    OrderKey, PlannedWave, PreflightBlocker, PreflightPolicy, PreflightStatus, REMAINDER_WAVE,
    Rollout, RolloutPhase, RolloutSpec, RolloutStatus, SkippedCluster, SwapCounts,
    UnavailablePolicy, Wave, WavePhase, WaveStatus, resolve_budget,
};
pub use sample::{
    SAMPLE_CLOUDS, SAMPLE_KUBERNETES_VERSION, SAMPLE_TARGET_VERSION, sample_fleet,
    sample_fleet_over, sample_rollout,
};
pub use swap::{
    BlueWorkloads, ClusterSwap, ClusterSwapSpec, ClusterSwapStatus, InvalidTransition,
    MigrationProgress, Phase, PhaseTransition,
};
pub use validation::{FieldError, FieldErrorKind, KubernetesVersion, validate_object};
pub use window::{DayOfWeek, MAX_WINDOW_MINUTES, MaintenanceWindow, in_windows};

/// Re-exported so users of this crate name the same `Time` and `LabelSelector` the kinds use.
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, Time,
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// API group of every rotor kind.
pub const GROUP: &str = "rotor.dev";
/// The one served and stored version.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in objects.
pub const API_VERSION: &str = "rotor.dev/v1alpha1";
/// `kubectl get rotor` lists all three kinds.
pub const CATEGORY: &str = "rotor";

/// Well-known label and annotation keys. The sample fleet and the Rollout controller rely on them.
pub mod labels {
    /// Cloud a cluster runs in (`aws`, `azure`, `gcp`), also for `sim` clusters that pretend to.
    pub const CLOUD: &str = "rotor.dev/cloud";
    /// Region of a cluster (`us-east-1`, `westeurope`, ...).
    pub const REGION: &str = "rotor.dev/region";
    /// Environment (`staging`, `prod`).
    pub const ENV: &str = "rotor.dev/env";
    /// On a ClusterSwap: the name of the Cluster it rotates (for label-selector lists).
    pub const CLUSTER: &str = "rotor.dev/cluster";
    /// On a ClusterSwap created by a Rollout: the Rollout's name.
    pub const ROLLOUT: &str = "rotor.dev/rollout";
    /// On a ClusterSwap created by a Rollout: the wave's name.
    pub const WAVE: &str = "rotor.dev/wave";
}

/// Annotations rotor writes on member-cluster objects.
pub mod annotations {
    /// On a blue workload scaled to zero while blue is retained: its replica count before, so
    /// a rollback restores exactly that (and a crash in between loses nothing).
    pub const REPLICAS_BEFORE_SCALE_DOWN: &str = "rotor.dev/replicas-before-scale-down";
    /// On the same workload: the ClusterSwap that scaled it down.
    pub const SCALED_DOWN_BY: &str = "rotor.dev/scaled-down-by";
    /// On the same workload: the swap and the field managers that owned `spec.replicas` before
    /// (JSON), so the restore hands the field back to them rather than keeping it.
    pub const REPLICAS_OWNERS: &str = "rotor.dev/replicas-owners";
}

/// The CustomResourceDefinitions of all rotor kinds, in dependency order (Cluster first).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![Cluster::crd(), ClusterSwap::crd(), Rollout::crd()]
}

/// [`crds`] as one multi-document YAML stream (what `rotor crdgen` prints and `kubectl apply -f -`
/// accepts).
pub fn crds_yaml() -> String {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        // A CRD is plain data (strings, maps, JSON values); serializing it cannot fail.
        out.push_str(&yaml_serde::to_string(&crd).expect("CRD serializes to YAML"));
    }
    out
}
