//! `Cluster`: a logical cluster with a stable, fleet-wide identity, and the physical instances
//! (blue, green, retained) that have served it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    NodePool, Provider, SwapTarget, TrafficEndpoint, WorkloadSelector, validate_node_pools,
};
use crate::condition::Condition;
use crate::validation::{Errors, FieldError, FieldErrorKind, VERSION_PATTERN};
use crate::window::MaintenanceWindow;

/// Desired state of a [`Cluster`]: a logical cluster (`prod-aws-us-east-1-a`) that rotor keeps
/// serving while it rotates the physical instance behind it.
///
/// The kind is cluster-scoped: its name is the cluster's identity across the whole fleet, unique
/// without a namespace (see the crate docs for the full argument).
// Each `printcolumn(...)` repeats the same keys; clippy reads them as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "rotor.dev",
    version = "v1alpha1",
    kind = "Cluster",
    plural = "clusters",
    shortname = "rcl",
    category = "rotor",
    status = "ClusterStatus",
    derive = "PartialEq",
    doc = "A logical cluster with a stable identity; rotor rotates the physical instance behind it blue-green.",
    printcolumn(name = "Provider", type_ = "string", json_path = ".spec.provider"),
    printcolumn(name = "Region", type_ = "string", json_path = ".spec.region"),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".spec.kubernetesVersion"
    ),
    printcolumn(
        name = "Active",
        type_ = "string",
        json_path = ".status.activeInstance"
    ),
    printcolumn(name = "Swap", type_ = "string", json_path = ".status.currentSwap"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// Who runs the instances. Immutable (also in the schema, so any API server refuses a
    /// change): moving a cluster between clouds is a new Cluster.
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "field is immutable"}]))]
    pub provider: Provider,
    /// AWS account, GCP project or Azure subscription the instances live in. Immutable.
    #[schemars(length(min = 1))]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "field is immutable"}]))]
    pub account: String,
    /// Provider region (`us-east-1`, `westeurope`, `us-central1`).
    #[schemars(length(min = 1))]
    pub region: String,
    /// Kubernetes version of the active instance, `MAJOR.MINOR[.PATCH]`. A succeeded swap writes
    /// its target here.
    #[schemars(pattern(VERSION_PATTERN))]
    pub kubernetes_version: String,
    /// Node pools of each instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_pools: Vec<NodePool>,
    /// Free-form provider settings (VPC, subnet ids, addons ...), passed to the provider as is.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Where the cluster's traffic enters.
    pub traffic: TrafficEndpoint,
    /// Which workloads belong to the cluster and move with it.
    #[serde(default)]
    pub workloads: WorkloadSelector,
    /// Deliberately switched off (a stopped cluster): rollouts leave it out by their
    /// `unavailableClusters` policy instead of failing on it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stopped: bool,
    /// When swaps of this cluster may start (in addition to the rollout's windows); empty means
    /// any time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maintenance_windows: Vec<MaintenanceWindow>,
}

impl ClusterSpec {
    /// Checks what the schema cannot say; every error names its field under `spec`.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errs = Errors::default();
        errs.non_empty("spec.account", &self.account);
        errs.non_empty("spec.region", &self.region);
        errs.version("spec.kubernetesVersion", &self.kubernetes_version);
        validate_node_pools("spec.nodePools", &self.node_pools, &mut errs);
        for key in self.config.keys() {
            if key.trim().is_empty() {
                errs.required("spec.config", "keys must not be empty");
            }
        }
        errs.non_empty("spec.traffic.endpoint", &self.traffic.endpoint);
        self.workloads.validate_at("spec.workloads", &mut errs);
        for (i, w) in self.maintenance_windows.iter().enumerate() {
            w.validate_at(&format!("spec.maintenanceWindows[{i}]"), &mut errs);
        }
        errs.into_result()
    }

    /// [`validate`](Self::validate) plus what may not change: the provider and the account
    /// (moving a cluster between clouds is a new Cluster, not a swap).
    pub fn validate_update(&self, old: &Self) -> Result<(), Vec<FieldError>> {
        let mut errs = Errors(self.validate().err().unwrap_or_default());
        if self.provider != old.provider {
            errs.push(
                "spec.provider",
                FieldErrorKind::Forbidden,
                "field is immutable",
            );
        }
        if self.account != old.account {
            errs.push(
                "spec.account",
                FieldErrorKind::Forbidden,
                "field is immutable",
            );
        }
        errs.into_result()
    }

    /// The spec green is built from: this spec with the target applied (version replaced, config
    /// merge-patched, node pools replaced).
    pub fn with_target(&self, target: &SwapTarget) -> ClusterSpec {
        let mut spec = self.clone();
        if let Some(v) = &target.kubernetes_version {
            spec.kubernetes_version = v.clone();
        }
        for (k, v) in &target.config {
            match v {
                Some(v) => spec.config.insert(k.clone(), v.clone()),
                None => spec.config.remove(k),
            };
        }
        if let Some(pools) = &target.node_pools {
            spec.node_pools = pools.clone();
        }
        spec
    }
}

closed_enum! {
    /// Lifecycle of one physical instance.
    pub enum InstancePhase {
        /// Being created by the provider.
        Provisioning = "Provisioning",
        /// Up and healthy, not yet serving (green before traffic).
        Ready = "Ready",
        /// Serving traffic (alone or while traffic shifts).
        Active = "Active",
        /// Kept idle after a swap so a rollback stays possible.
        Retained = "Retained",
        /// Being deleted by the provider.
        Deleting = "Deleting",
        /// Creation failed.
        Failed = "Failed",
    }
}

/// One physical instance of the logical cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInstance {
    /// Deterministic instance name (the provider's cluster name).
    pub name: String,
    /// Kubernetes version the instance runs.
    pub version: String,
    /// Where the instance is in its life.
    pub phase: InstancePhase,
    /// When the provider created it.
    pub created_at: Option<Time>,
    /// API server URL of the instance.
    pub endpoint: Option<String>,
}

/// What discovery last saw of the active instance.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthSummary {
    /// Discovery reached the API server.
    pub reachable: bool,
    /// Nodes with `Ready=True`.
    pub nodes_ready: u32,
    /// All nodes.
    pub nodes_total: u32,
    /// Selected workloads with all replicas available.
    pub workloads_available: u32,
    /// All selected workloads.
    pub workloads_total: u32,
    /// When discovery last heard from the cluster.
    pub last_seen: Option<Time>,
}

impl HealthSummary {
    /// Reachable, every node Ready and every workload available.
    pub fn is_healthy(&self) -> bool {
        self.reachable
            && self.nodes_ready == self.nodes_total
            && self.workloads_available == self.workloads_total
    }
}

/// Observed state of a Cluster. `None` fields serialize as `null` so a JSON merge patch of the
/// whole status clears them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// Name of the instance serving now.
    #[serde(default)]
    pub active_instance: Option<String>,
    /// Every instance that exists (or is being created or deleted).
    #[serde(default)]
    pub instances: Vec<ClusterInstance>,
    /// Health of the active instance.
    #[serde(default)]
    pub health: Option<HealthSummary>,
    /// The ClusterSwap now rotating this cluster; at most one at a time.
    #[serde(default)]
    pub current_swap: Option<String>,
    /// `Ready`, `Reachable`, `Progressing`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status reflects.
    #[serde(default)]
    pub observed_generation: Option<i64>,
}

impl ClusterStatus {
    /// The instance with this name.
    pub fn instance(&self, name: &str) -> Option<&ClusterInstance> {
        self.instances.iter().find(|i| i.name == name)
    }
}
