//! Types shared by more than one kind: providers and traffic shifters, node pools, workload
//! selection, the swap target and the swap strategy (a Rollout carries a strategy template).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::metric_gate::OnInconclusive;
use crate::validation::{Errors, VERSION_PATTERN};

closed_enum! {
    /// Who runs a cluster's instances.
    pub enum Provider {
        /// Amazon EKS.
        Aws = "aws",
        /// Azure AKS.
        Azure = "azure",
        /// Google GKE.
        Gcp = "gcp",
        /// rotor's simulated cloud.
        Sim = "sim",
    }
}

closed_enum! {
    /// What moves traffic between blue and green.
    pub enum ShifterKind {
        /// HAProxy runtime API (server weights in a backend).
        Haproxy = "haproxy",
        /// Route 53 weighted records.
        Route53 = "route53",
        /// Google Cloud DNS: one weighted round-robin record set.
        CloudDns = "clouddns",
        /// Azure Traffic Manager: weighted external endpoints in one profile.
        TrafficManager = "trafficmanager",
        /// rotor's simulated traffic layer.
        Sim = "sim",
    }
}

/// Where a cluster's traffic enters, and what shifts it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrafficEndpoint {
    /// The traffic shifter implementation.
    pub shifter: ShifterKind,
    /// The endpoint in the shifter's terms: HAProxy backend, Route 53 or Cloud DNS record name,
    /// the name in a Traffic Manager profile rotor's endpoints are named after
    /// (`rotor-{endpoint}-blue`, `-green`), sim endpoint.
    #[schemars(length(min = 1))]
    pub endpoint: String,
}

/// A node pool of a cluster instance.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodePool {
    /// Pool name, a DNS label, unique within the cluster.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Provider instance type (`m7i.large`, `Standard_D4s_v5`, `e2-standard-4`, `sim.medium`).
    #[schemars(length(min = 1))]
    pub instance_type: String,
    /// Autoscaling lower bound.
    #[schemars(range(max = 1000))]
    pub min_count: u32,
    /// Autoscaling upper bound.
    #[schemars(range(max = 1000))]
    pub max_count: u32,
    /// Nodes wanted now; `minCount <= desiredCount <= maxCount`.
    #[schemars(range(max = 1000))]
    pub desired_count: u32,
}

/// Which workloads belong to a cluster (and so move to green). Empty means everything; an
/// excluded namespace wins over an included one.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSelector {
    /// Namespaces to take; empty means all namespaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_namespaces: Vec<String>,
    /// Namespaces to leave out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_namespaces: Vec<String>,
    /// Only objects whose labels match; absent means all objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
}

impl WorkloadSelector {
    /// Whether objects in namespace `ns` are selected by the namespace rules.
    pub fn selects_namespace(&self, ns: &str) -> bool {
        !self.exclude_namespaces.iter().any(|n| n == ns)
            && (self.include_namespaces.is_empty()
                || self.include_namespaces.iter().any(|n| n == ns))
    }

    /// Whether an object with these labels is selected by the label rule.
    pub fn selects_labels(&self, labels: &BTreeMap<String, String>) -> bool {
        self.label_selector
            .as_ref()
            .is_none_or(|s| crate::validation::selector_matches(s, labels))
    }

    pub(crate) fn validate_at(&self, path: &str, errs: &mut Errors) {
        for (list, name) in [
            (&self.include_namespaces, "includeNamespaces"),
            (&self.exclude_namespaces, "excludeNamespaces"),
        ] {
            let mut seen = std::collections::BTreeSet::new();
            for (i, ns) in list.iter().enumerate() {
                let field = format!("{path}.{name}[{i}]");
                errs.dns_label(&field, ns);
                if !seen.insert(ns) {
                    errs.push(
                        field,
                        crate::FieldErrorKind::Duplicate,
                        format!("{ns:?} is listed twice"),
                    );
                }
            }
        }
        for (i, ns) in self.exclude_namespaces.iter().enumerate() {
            if self.include_namespaces.contains(ns) {
                errs.invalid(
                    format!("{path}.excludeNamespaces[{i}]"),
                    format!("{ns:?} is both included and excluded"),
                );
            }
        }
        if let Some(sel) = &self.label_selector {
            errs.label_selector(&format!("{path}.labelSelector"), sel);
        }
    }
}

/// What a swap changes: a Kubernetes version, a config patch, node pools, or several.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SwapTarget {
    /// Version of green, `MAJOR.MINOR[.PATCH]`; absent keeps blue's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(VERSION_PATTERN))]
    pub kubernetes_version: Option<String>,
    /// A JSON merge patch over the Cluster's `spec.config`: a string sets a key, `null` removes it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, Option<String>>,
    /// Green's node pools, replacing blue's as a whole; absent keeps blue's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_pools: Option<Vec<NodePool>>,
}

impl SwapTarget {
    /// Whether the target changes nothing (a swap to it would be pointless).
    pub fn is_empty(&self) -> bool {
        self.kubernetes_version.is_none() && self.config.is_empty() && self.node_pools.is_none()
    }

    pub(crate) fn validate_at(&self, path: &str, errs: &mut Errors) {
        if self.is_empty() {
            errs.required(
                path,
                "must set at least one of kubernetesVersion, config, nodePools",
            );
            return;
        }
        if let Some(v) = &self.kubernetes_version {
            errs.version(&format!("{path}.kubernetesVersion"), v);
        }
        for key in self.config.keys() {
            if key.trim().is_empty() {
                errs.required(format!("{path}.config"), "keys must not be empty");
            }
        }
        if let Some(pools) = &self.node_pools {
            validate_node_pools(&format!("{path}.nodePools"), pools, errs);
        }
    }
}

pub(crate) fn validate_node_pools(path: &str, pools: &[NodePool], errs: &mut Errors) {
    let mut seen = std::collections::BTreeSet::new();
    for (i, pool) in pools.iter().enumerate() {
        let p = format!("{path}[{i}]");
        errs.dns_label(&format!("{p}.name"), &pool.name);
        if !pool.name.is_empty() && !seen.insert(pool.name.as_str()) {
            errs.push(
                format!("{p}.name"),
                crate::FieldErrorKind::Duplicate,
                format!("pool {:?} is defined twice", pool.name),
            );
        }
        errs.non_empty(&format!("{p}.instanceType"), &pool.instance_type);
        if pool.min_count > pool.max_count {
            errs.invalid(
                format!("{p}.minCount"),
                format!(
                    "{} is greater than maxCount {}",
                    pool.min_count, pool.max_count
                ),
            );
        }
        if pool.desired_count < pool.min_count || pool.desired_count > pool.max_count {
            errs.invalid(
                format!("{p}.desiredCount"),
                format!(
                    "{} is outside [minCount, maxCount] = [{}, {}]",
                    pool.desired_count, pool.min_count, pool.max_count
                ),
            );
        }
        if pool.max_count > MAX_NODES_PER_POOL {
            errs.invalid(
                format!("{p}.maxCount"),
                format!("must be at most {MAX_NODES_PER_POOL}"),
            );
        }
    }
}

/// Upper bound on a node pool's size (also in the schema).
pub const MAX_NODES_PER_POOL: u32 = 1000;
/// Upper bound on the number of traffic steps (also in the schema).
pub const MAX_TRAFFIC_STEPS: usize = 20;
/// Upper bound on a bake time, one day (also in the schema).
pub const MAX_BAKE_SECONDS: u64 = 86_400;
/// Upper bound on blue's retention, 30 days (also in the schema).
pub const MAX_RETENTION_SECONDS: u64 = 30 * 86_400;

fn default_traffic_steps() -> Vec<u8> {
    vec![10, 50, 100]
}
fn default_bake_seconds() -> u64 {
    60
}
fn default_blue_retention_seconds() -> u64 {
    3600
}
/// Whether `n` is zero (a count left out of the wire form when it is).
pub(crate) fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn default_true() -> bool {
    true
}
fn default_max_error_rate_percent() -> f64 {
    1.0
}

/// How a swap moves traffic and decides it is healthy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SwapStrategy {
    /// Green's traffic share after each step, in percent: strictly increasing, each in 1..=100,
    /// the last 100.
    #[serde(default = "default_traffic_steps")]
    #[schemars(length(min = 1, max = 20), inner(range(min = 1, max = 100)))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self[size(self) - 1] == 100", "message": "the last traffic step must be 100"},
        {"rule": "self.isSorted() && self.all(x, self.exists_one(y, y == x))", "message": "traffic steps must be strictly increasing"}
    ]))]
    pub traffic_steps: Vec<u8>,
    /// How long each step bakes (health gates checked throughout) before the next.
    #[serde(default = "default_bake_seconds")]
    #[schemars(range(max = 86400))]
    pub bake_seconds: u64,
    /// What must hold on green for the swap to go on.
    #[serde(default)]
    pub health_gates: HealthGates,
    /// How long blue is kept after green took all the traffic (its drain included) so a
    /// rollback stays possible; then it is deleted.
    #[serde(default = "default_blue_retention_seconds")]
    #[schemars(range(max = 2592000))]
    pub blue_retention_seconds: u64,
    /// Which workloads move from blue to green.
    #[serde(default)]
    pub migration: MigrationPolicy,
    /// After a rollback, keep green (without traffic) for a person to inspect instead of
    /// deleting it. Its instance stays in the Cluster's status as `Failed` until deleted.
    #[serde(default)]
    pub keep_green_on_rollback: bool,
    /// What blue's workloads do once traffic has left blue (Draining is over) and blue is
    /// retained: `ScaledToZero` frees blue's capacity and a rollback first restores them and
    /// moves traffic only once they are available again (so it takes as long as blue's
    /// workloads take to start); `Warm` keeps them running for a rollback in one traffic call.
    #[serde(default)]
    pub blue_while_retained: BlueWhileRetained,
    /// Webhooks called at named points of the swap (before provisioning, after migration,
    /// before the first traffic step, after each step, before blue is deleted, after a
    /// rollback): their answer allows, denies (the swap rolls back) or asks to be called again
    /// later. See docs/design.md, "Lifecycle hooks".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub hooks: Vec<crate::hook::LifecycleHook>,
}

closed_enum! {
    /// Blue's workloads while blue is retained for rollback.
    #[derive(Default)]
    pub enum BlueWhileRetained {
        /// Deployments and StatefulSets scaled to zero (their replica counts kept in an
        /// annotation), restored before a rollback moves traffic back.
        #[default]
        ScaledToZero = "ScaledToZero",
        /// Left running.
        Warm = "Warm",
    }
}

impl Default for SwapStrategy {
    fn default() -> Self {
        Self {
            traffic_steps: default_traffic_steps(),
            bake_seconds: default_bake_seconds(),
            health_gates: HealthGates::default(),
            blue_retention_seconds: default_blue_retention_seconds(),
            migration: MigrationPolicy::default(),
            keep_green_on_rollback: false,
            blue_while_retained: BlueWhileRetained::default(),
            hooks: Vec::new(),
        }
    }
}

impl SwapStrategy {
    /// The bake time as a `Duration`.
    pub fn bake(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.bake_seconds)
    }

    /// Blue's retention as a `Duration`.
    pub fn blue_retention(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.blue_retention_seconds)
    }

    pub(crate) fn validate_at(&self, path: &str, errs: &mut Errors) {
        let steps_path = format!("{path}.trafficSteps");
        let steps = &self.traffic_steps;
        if steps.is_empty() {
            errs.required(&steps_path, "at least one step (the last must be 100)");
        } else if steps.len() > MAX_TRAFFIC_STEPS {
            errs.push(
                &steps_path,
                crate::FieldErrorKind::TooMany,
                format!("{} steps, at most {MAX_TRAFFIC_STEPS}", steps.len()),
            );
        } else {
            for (i, &step) in steps.iter().enumerate() {
                let field = format!("{steps_path}[{i}]");
                if step == 0 || step > 100 {
                    errs.invalid(field, format!("{step}: must be between 1 and 100"));
                } else if i > 0 && step <= steps[i - 1] {
                    errs.invalid(
                        field,
                        format!(
                            "{step}: must be greater than the previous step {}",
                            steps[i - 1]
                        ),
                    );
                } else if i == steps.len() - 1 && step != 100 {
                    errs.invalid(field, format!("{step}: the last step must be 100"));
                }
            }
        }
        if self.bake_seconds > MAX_BAKE_SECONDS {
            errs.invalid(
                format!("{path}.bakeSeconds"),
                format!("{}: must be at most {MAX_BAKE_SECONDS}", self.bake_seconds),
            );
        }
        if self.blue_retention_seconds > MAX_RETENTION_SECONDS {
            errs.invalid(
                format!("{path}.blueRetentionSeconds"),
                format!(
                    "{}: must be at most {MAX_RETENTION_SECONDS}",
                    self.blue_retention_seconds
                ),
            );
        }
        let rate = self.health_gates.max_error_rate_percent;
        if !(0.0..=100.0).contains(&rate) {
            errs.invalid(
                format!("{path}.healthGates.maxErrorRatePercent"),
                format!("{rate}: must be between 0 and 100"),
            );
        }
        for (field, ms) in [
            ("maxLatencyP95Ms", self.health_gates.max_latency_p95_ms),
            ("maxLatencyP99Ms", self.health_gates.max_latency_p99_ms),
        ] {
            if ms == Some(0) {
                errs.invalid(
                    format!("{path}.healthGates.{field}"),
                    "0: must be at least 1".to_string(),
                );
            }
        }
        crate::metric_gate::validate_gates(
            &format!("{path}.healthGates.metricGates"),
            &self.health_gates.metric_gates,
            crate::metric_gate::GateScope::Swap,
            errs,
        );
        self.migration
            .validate_at(&format!("{path}.migration"), errs);
        crate::hook::validate_hooks(&format!("{path}.hooks"), &self.hooks, errs);
    }

    /// The hooks called at `point`, in the order the strategy lists them.
    pub fn hooks_at(
        &self,
        point: crate::hook::HookPoint,
    ) -> impl Iterator<Item = &crate::hook::LifecycleHook> {
        self.hooks.iter().filter(move |h| h.point == point)
    }
}

/// Health gates checked while verifying green and after every traffic step.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthGates {
    /// Every migrated workload must be available in green.
    #[serde(default = "default_true")]
    pub require_availability: bool,
    /// The error rate of requests served by green must stay at or below this, in percent.
    #[serde(default = "default_max_error_rate_percent")]
    #[schemars(range(min = 0, max = 100))]
    pub max_error_rate_percent: f64,
    /// The 95th percentile of green's time to answer (to the answer's head) in a traffic step
    /// must stay at or below this, in milliseconds. Needs a traffic layer that times requests
    /// (the embedded router); elsewhere the gate cannot be judged and the swap holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_latency_p95_ms: Option<u32>,
    /// As `maxLatencyP95Ms`, for the 99th percentile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_latency_p99_ms: Option<u32>,
    /// A traffic step ends only once green has answered at least this many requests in it
    /// (0: no minimum). A step that got too few proves nothing: a failing green that is sent
    /// no requests passes every request-based gate, and would reach 100 % on no evidence.
    /// Needs a traffic layer that counts requests (HAProxy, the embedded router); behind DNS
    /// the step cannot be judged and holds (or fails, by `onTooFewRequests`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_requests: u32,
    /// What a step that has baked with fewer than `minRequests` does: `Pause` holds it (no
    /// advance, no rollback; a Warning says how many are missing) until they come; `Fail`
    /// rolls back.
    #[serde(default, skip_serializing_if = "OnInconclusive::is_pause")]
    pub on_too_few_requests: OnInconclusive,
    /// Gates on Prometheus metrics, evaluated throughout every traffic step: a step ends only
    /// once each has passed its `consecutive` evaluations in a row, a value beyond a threshold
    /// rolls back, and a query without data holds the step (or fails, by `onInconclusive`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub metric_gates: Vec<crate::metric_gate::MetricGate>,
}

impl HealthGates {
    /// The latency bounds set, as (quantile, milliseconds).
    pub fn latency_bounds(&self) -> impl Iterator<Item = (f64, u32)> {
        [
            (0.95, self.max_latency_p95_ms),
            (0.99, self.max_latency_p99_ms),
        ]
        .into_iter()
        .filter_map(|(q, ms)| ms.map(|ms| (q, ms)))
    }
}

impl Default for HealthGates {
    fn default() -> Self {
        Self {
            require_availability: true,
            max_error_rate_percent: default_max_error_rate_percent(),
            max_latency_p95_ms: None,
            max_latency_p99_ms: None,
            min_requests: 0,
            on_too_few_requests: Default::default(),
            metric_gates: Vec::new(),
        }
    }
}

/// Which objects migration copies from blue to green.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationPolicy {
    /// Namespace and label rules, narrowing the Cluster's own `spec.workloads`.
    #[serde(flatten)]
    pub selector: WorkloadSelector,
    /// Kinds never copied, as `Kind` or `Kind.group` (`Event`, `Lease.coordination.k8s.io`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip_kinds: Vec<String>,
    /// Workloads that keep data in persistent volumes: migration does not copy volumes, so
    /// they stop the plan unless their data is disposable or lives outside the cluster.
    #[serde(default)]
    pub stateful_data: StatefulData,
}

closed_enum! {
    /// What the data of PVC-backed workloads is, for migration.
    #[derive(Default)]
    pub enum StatefulData {
        /// Unknown: refuse to migrate such workloads (green would start with empty volumes).
        #[default]
        Refuse = "Refuse",
        /// Caches, scratch space: green may start empty.
        Disposable = "Disposable",
        /// Kept outside the cluster (a managed database, a replicated store): green reconnects.
        External = "External",
    }
}

impl StatefulData {
    /// Whether PVC-backed workloads may move.
    pub fn allows_migration(self) -> bool {
        self != StatefulData::Refuse
    }
}

impl MigrationPolicy {
    /// Whether objects of this kind and group (`""` for the core group) are skipped.
    pub fn skips_kind(&self, kind: &str, group: &str) -> bool {
        self.skip_kinds.iter().any(|s| match s.split_once('.') {
            Some((k, g)) => k == kind && g == group,
            None => s == kind,
        })
    }

    pub(crate) fn validate_at(&self, path: &str, errs: &mut Errors) {
        self.selector.validate_at(path, errs);
        for (i, kind) in self.skip_kinds.iter().enumerate() {
            let field = format!("{path}.skipKinds[{i}]");
            if errs.non_empty(&field, kind)
                && (kind.contains(char::is_whitespace) || kind.contains('/'))
            {
                errs.invalid(field, format!("{kind:?}: must be Kind or Kind.group"));
            }
        }
    }
}
