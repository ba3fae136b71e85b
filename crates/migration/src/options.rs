//! What a migration takes and how hard it may push green's API.

use std::time::Duration;

use rotor_api::{MigrationPolicy, WorkloadSelector};

/// Everything [`crate::plan`] and [`crate::apply`] need besides the clients.
#[derive(Clone, Debug)]
pub struct MigrationOptions {
    /// The swap's migration policy (namespaces, labels, kinds never copied).
    pub policy: MigrationPolicy,
    /// The Cluster's own `spec.workloads`: an object moves only when both select it.
    pub workloads: WorkloadSelector,
    /// Move workloads backed by persistent volumes although their data stays behind (the
    /// application treats it as disposable: caches, scratch space).
    pub allow_stateful: bool,
    /// Also move objects whose only owners are not controllers; their ownerReferences are kept
    /// when the owner moves too (with green's uid), dropped otherwise. Controller-owned objects
    /// (Pods of ReplicaSets…) never move: green's controllers recreate them.
    pub include_owned: bool,
    /// Requests in flight at once within a stage.
    pub concurrency: usize,
    /// Client-side request rate to green, per second; `0` for no limit.
    pub qps: f64,
    /// Requests allowed above `qps` after a quiet period.
    pub burst: u32,
    /// Attempts per object after the first, on 429, 5xx and transport errors.
    pub max_retries: u32,
    /// First backoff after a retryable failure; doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// How long applied CRDs may take to be Established before their objects are tried anyway.
    pub crd_timeout: Duration,
}

impl Default for MigrationOptions {
    fn default() -> Self {
        MigrationOptions {
            policy: MigrationPolicy::default(),
            workloads: WorkloadSelector::default(),
            allow_stateful: false,
            include_owned: false,
            concurrency: 32,
            // The brake is `concurrency` (32 in flight: a real API server at 5-20 ms a write
            // takes 1,600-6,400/s) and 429s, which pause every request here. The rate is only a
            // ceiling against runaway loops; green serves no traffic while it is filled.
            // client-go's default (5/s) would make 10,000 objects take half an hour.
            qps: 10_000.0,
            burst: 1000,
            max_retries: 6,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            crd_timeout: Duration::from_secs(30),
        }
    }
}

impl MigrationOptions {
    /// Whether objects in namespace `ns` are selected by both selectors' namespace rules.
    pub(crate) fn selects_namespace(&self, ns: &str) -> bool {
        self.policy.selector.selects_namespace(ns) && self.workloads.selects_namespace(ns)
    }

    /// Whether objects with these labels are selected by both label rules.
    pub(crate) fn selects_labels(
        &self,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> bool {
        self.policy.selector.selects_labels(labels) && self.workloads.selects_labels(labels)
    }
}
