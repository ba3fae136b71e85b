//! `Rollout`: one change across the fleet, in ordered waves, creating and watching ClusterSwaps.
//! The wave plan is a pure function of the spec and the clusters ([`RolloutSpec::plan_waves`]).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;
use crate::common::{SwapStrategy, SwapTarget, is_zero};
use crate::condition::Condition;
use crate::notification::{NotificationSink, validate_sinks};
use crate::swap::Phase;
use crate::validation::{Errors, FieldError, FieldErrorKind, selector_matches};
use crate::window::{MaintenanceWindow, in_windows};

/// Name of the implicit last wave that takes the clusters no declared wave took.
pub const REMAINDER_WAVE: &str = "remainder";
/// Upper bound on the number of waves (also in the schema).
pub const MAX_WAVES: usize = 50;
/// Upper bound on `maxConcurrentSwaps` (also in the schema).
pub const MAX_CONCURRENT_SWAPS: u32 = 1000;
/// Upper bound on the bake time between waves, a week (also in the schema).
pub const MAX_WAVE_BAKE_SECONDS: u64 = 7 * 86_400;

fn default_max_concurrent_swaps() -> u32 {
    10
}
fn default_bake_seconds_between_waves() -> u64 {
    300
}

/// Desired state of a [`Rollout`]: a fleet-wide change, the clusters it covers, the target, and
/// how carefully it proceeds.
///
/// The kind is cluster-scoped like the Clusters it selects and the ClusterSwaps it owns (see the
/// crate docs).
// Each `printcolumn(...)` repeats the same keys; clippy reads them as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "rotor.dev",
    version = "v1alpha1",
    kind = "Rollout",
    plural = "rollouts",
    shortname = "rro",
    category = "rotor",
    status = "RolloutStatus",
    derive = "PartialEq",
    doc = "A fleet-wide change rolled out in ordered waves of ClusterSwaps.",
    printcolumn(
        name = "Target",
        type_ = "string",
        json_path = ".spec.target.kubernetesVersion"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Wave", type_ = "integer", json_path = ".status.currentWave"),
    printcolumn(
        name = "Succeeded",
        type_ = "integer",
        json_path = ".status.counts.succeeded"
    ),
    printcolumn(
        name = "Failed",
        type_ = "integer",
        json_path = ".status.counts.failed"
    ),
    printcolumn(name = "Total", type_ = "integer", json_path = ".status.counts.total"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// Clusters this rollout covers (by their labels); an empty selector covers the whole fleet.
    pub cluster_selector: LabelSelector,
    /// What every swap changes. Immutable: a different target is a different rollout.
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "target is immutable"}]))]
    pub target: SwapTarget,
    /// Ordered waves, the canary first. Clusters left over after the last wave form an implicit
    /// final wave named `remainder`.
    #[schemars(length(min = 1, max = 50))]
    pub waves: Vec<Wave>,
    /// At most this many swaps in flight at once, across waves.
    #[serde(default = "default_max_concurrent_swaps")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_concurrent_swaps: u32,
    /// Wait after a wave completes before the next starts.
    #[serde(default = "default_bake_seconds_between_waves")]
    #[schemars(range(max = 604800))]
    pub bake_seconds_between_waves: u64,
    /// Whether each wave after the first waits for a person.
    #[serde(default)]
    pub approval: Approval,
    /// With manual approval: waves with an index up to this one may start (0 is the canary,
    /// which never waits). Raise it to approve the next wave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_through_wave: Option<u32>,
    /// The rollout pauses itself when more swaps than this end Failed or RolledBack: a count
    /// (`3`) or a percentage of the rollout's clusters (`"5%"`, rounded down).
    #[serde(default = "zero_budget")]
    pub failure_budget: IntOrString,
    /// What exceeding a failure budget (the rollout's or a wave's) does: `Pause` starts no new
    /// swap until a person acts; `RollbackFleet` aborts the rollout and rolls back every one of
    /// its swaps whose blue still exists.
    #[serde(default)]
    pub on_budget_exceeded: BudgetPolicy,
    /// Sort keys for the order in which clusters fill the waves and start inside a wave:
    /// `cloud`, `region` or `label:KEY`; ties (and the end) go by name. A percentage wave takes
    /// the first clusters in this order, so `[region]` finishes one region before the next.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub order_by: Vec<String>,
    /// What happens to a cluster that is unreachable or marked `spec.stopped` when its swap would
    /// start: `Skip` leaves it out (recorded in status, not a failure), `Wait` holds it (and its
    /// wave) until it is back.
    #[serde(default)]
    pub unavailable_clusters: UnavailablePolicy,
    /// Before the first wave, every selected cluster is checked for what would stop its swap
    /// (API versions the target does not serve, stateful workloads without a data policy,
    /// an unreachable API): `SkipBlocked` leaves blocked clusters out, `StopRollout` pauses the
    /// rollout until they are fixed or skipped, `Disabled` does not check.
    #[serde(default)]
    pub preflight: PreflightPolicy,
    /// New swaps start only inside one of these windows; empty means any time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maintenance_windows: Vec<MaintenanceWindow>,
    /// Webhooks told of the rollout's milestones: waves started and finished, paused (with
    /// why), approval needed, failure budget exceeded, finished.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<NotificationSink>,
    /// Metric gates judged after each wave's swaps have ended, before the next wave starts
    /// (during and after the bake): the next wave waits for each gate's `consecutive` passes in
    /// a row; a value beyond a threshold pauses the rollout (whatever `onBudgetExceeded`: the
    /// wave's swaps succeeded and their blues may be gone); a query without data holds it
    /// (`onInconclusive: Pause`) or pauses it as a failure (`Fail`). Queries may use
    /// `{{rollout}}`, `{{wave}}`, `{{clusters}}` and `{{instances}}` (the wave's Clusters and
    /// the instances serving them now, each as a regex alternation `a|b` for `=~`). Not
    /// judged after the last wave.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub wave_gates: Vec<crate::metric_gate::MetricGate>,
    /// Template for the strategy of every swap the rollout creates.
    #[serde(default)]
    pub strategy: SwapStrategy,
    /// Start no new swaps; swaps in flight continue.
    #[serde(default)]
    pub paused: bool,
    /// Clusters taken out of the rollout by an operator (`rotor rollout skip`): no swap starts
    /// for them, and a failed swap of theirs no longer counts against the failure budget.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip_clusters: Vec<String>,
    /// Raise it (`rotor rollout retry --failed`) to run again, against the same frozen plan and
    /// target, every cluster whose swap failed or rolled back and every cluster the rollout left
    /// out by policy; the controller acts once per value (`status.retriedFailed`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retry_failed: u32,
}

fn zero_budget() -> IntOrString {
    IntOrString::Int(0)
}

/// A budget given as a count or a percentage, resolved against `total` (percentages round down).
/// `None` when the value is neither a non-negative count nor `N%` with N in 0..=100.
pub fn resolve_budget(budget: &IntOrString, total: usize) -> Option<u32> {
    match budget {
        IntOrString::Int(n) => u32::try_from(*n).ok(),
        IntOrString::String(s) => {
            let pct: u32 = s.strip_suffix('%')?.parse().ok()?;
            (pct <= 100).then(|| (total as u64 * u64::from(pct) / 100) as u32)
        }
    }
}

fn validate_budget(field: &str, budget: &IntOrString, errs: &mut Errors) {
    if resolve_budget(budget, 0).is_none() {
        let shown = match budget {
            IntOrString::Int(n) => n.to_string(),
            IntOrString::String(s) => format!("{s:?}"),
        };
        errs.invalid(
            field,
            format!("{shown}: must be a count >= 0 or a percentage like \"10%\" (0-100)"),
        );
    }
}

/// One `orderBy` key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderKey {
    /// The `rotor.dev/cloud` label, else `spec.provider`.
    Cloud,
    /// `spec.region`.
    Region,
    /// The value of a label (clusters without it sort last).
    Label(String),
}

impl OrderKey {
    /// Parses `cloud`, `region` or `label:KEY`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "cloud" => Some(OrderKey::Cloud),
            "region" => Some(OrderKey::Region),
            _ => s
                .strip_prefix("label:")
                .filter(|k| !k.is_empty())
                .map(|k| OrderKey::Label(k.to_string())),
        }
    }

    /// The cluster's value for this key; `None` sorts after every value.
    fn value<'a>(&self, c: &'a Cluster) -> Option<&'a str> {
        match self {
            OrderKey::Cloud => Some(
                c.labels()
                    .get(crate::labels::CLOUD)
                    .map_or(c.spec.provider.as_str(), String::as_str),
            ),
            OrderKey::Region => Some(c.spec.region.as_str()),
            OrderKey::Label(k) => c.labels().get(k).map(String::as_str),
        }
    }
}

closed_enum! {
    /// What a rollout does with a cluster that is unreachable or stopped when its turn comes.
    #[derive(Default)]
    pub enum UnavailablePolicy {
        /// Leave it out of this rollout; recorded in `status.skipped`, not counted as a failure.
        #[default]
        Skip = "Skip",
        /// Hold it (and the end of its wave) until it is reachable and not stopped.
        Wait = "Wait",
    }
}

closed_enum! {
    /// What a rollout does when more swaps fail than a failure budget allows.
    #[derive(Default)]
    pub enum BudgetPolicy {
        /// Start no new swap (phase `Paused`); swaps in flight go on. A retry or a skip that
        /// brings the failures back within the budget resumes the rollout.
        #[default]
        Pause = "Pause",
        /// Abort: start no new swap and roll back every swap of the rollout not yet
        /// decommissioned (phase `RollingBack`, then `RolledBack`).
        RollbackFleet = "RollbackFleet",
    }
}

closed_enum! {
    /// What a rollout does with the clusters its pre-flight finds blocked.
    #[derive(Default)]
    pub enum PreflightPolicy {
        /// Leave blocked clusters out (`status.skipped`, reason `PreflightBlocked`).
        #[default]
        SkipBlocked = "SkipBlocked",
        /// Pause before the first wave while a blocked cluster is not in `spec.skipClusters`.
        StopRollout = "StopRollout",
        /// No pre-flight.
        Disabled = "Disabled",
    }
}

/// The pre-flight's findings for one cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreflightBlocker {
    /// The Cluster's name.
    pub cluster: String,
    /// Everything that would stop its swap, for people.
    pub reasons: Vec<String>,
}

/// The result of the pre-flight run before the first wave.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreflightStatus {
    /// Clusters checked.
    pub checked: u32,
    /// Clusters with blockers.
    #[serde(default)]
    pub blocked: Vec<PreflightBlocker>,
    /// Clusters stopped or unreachable at the check: not blocked, `spec.unavailableClusters`
    /// decides when their turn comes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<String>,
    /// When the check finished.
    #[serde(default)]
    pub completed_at: Option<Time>,
}

closed_enum! {
    /// Who lets the next wave start.
    #[derive(Default)]
    pub enum Approval {
        /// A person raises `spec.approvedThroughWave`.
        #[default]
        Manual = "Manual",
        /// The next wave starts after the bake time if the failure budget holds.
        Automatic = "Automatic",
    }
}

/// One wave: a percentage or a count of the clusters not yet taken by an earlier wave, or a
/// selector; optionally with its own concurrency, failure budget and approval.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{"rule": "[has(self.percent), has(self.count), has(self.selector)].filter(x, x).size() == 1", "message": "set exactly one of percent, count and selector"}]))]
pub struct Wave {
    /// Wave name, a DNS label, unique within the rollout (used in swap labels).
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Percentage of the remaining clusters (rounded up, so at least one while any remain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub percent: Option<u8>,
    /// This many of the remaining clusters (fewer if fewer remain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub count: Option<u32>,
    /// The remaining clusters whose labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// At most this many of this wave's swaps at once (the rollout-wide `maxConcurrentSwaps`
    /// still holds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_concurrent: Option<u32>,
    /// Failures (Failed or RolledBack) this wave tolerates before the rollout pauses: a count or
    /// a percentage of the wave's clusters. The rollout-wide `failureBudget` still holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_budget: Option<IntOrString>,
    /// Overrides `spec.approval` for this wave (`Manual` on the first wave makes even the canary
    /// wait).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
}

impl RolloutSpec {
    /// Checks what the schema cannot say; every error names its field under `spec`.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errs = Errors::default();
        errs.label_selector("spec.clusterSelector", &self.cluster_selector);
        validate_sinks(&self.notifications, &mut errs);
        self.target.validate_at("spec.target", &mut errs);
        if self.waves.is_empty() {
            errs.required("spec.waves", "at least one wave (the canary)");
        } else if self.waves.len() > MAX_WAVES {
            errs.push(
                "spec.waves",
                FieldErrorKind::TooMany,
                format!("{} waves, at most {MAX_WAVES}", self.waves.len()),
            );
        }
        let mut names = BTreeSet::new();
        for (i, wave) in self.waves.iter().enumerate() {
            let p = format!("spec.waves[{i}]");
            errs.dns_label(&format!("{p}.name"), &wave.name);
            if wave.name == REMAINDER_WAVE {
                errs.invalid(
                    format!("{p}.name"),
                    format!("{REMAINDER_WAVE:?} is reserved for the implicit last wave"),
                );
            } else if !wave.name.is_empty() && !names.insert(wave.name.as_str()) {
                errs.push(
                    format!("{p}.name"),
                    FieldErrorKind::Duplicate,
                    format!("wave {:?} is defined twice", wave.name),
                );
            }
            let set = [
                wave.percent.is_some(),
                wave.count.is_some(),
                wave.selector.is_some(),
            ]
            .into_iter()
            .filter(|x| *x)
            .count();
            if set > 1 {
                errs.invalid(
                    &p,
                    "set exactly one of percent, count and selector, not several",
                );
            } else if set == 0 {
                errs.required(&p, "set one of percent, count and selector");
            }
            if let Some(pct) = wave.percent
                && (pct == 0 || pct > 100)
            {
                errs.invalid(
                    format!("{p}.percent"),
                    format!("{pct}: must be between 1 and 100"),
                );
            }
            if wave.count == Some(0) {
                errs.invalid(format!("{p}.count"), "0: must be at least 1");
            }
            if let Some(sel) = &wave.selector {
                errs.label_selector(&format!("{p}.selector"), sel);
            }
            if let Some(m) = wave.max_concurrent
                && (m == 0 || m > MAX_CONCURRENT_SWAPS)
            {
                errs.invalid(
                    format!("{p}.maxConcurrent"),
                    format!("{m}: must be between 1 and {MAX_CONCURRENT_SWAPS}"),
                );
            }
            if let Some(b) = &wave.failure_budget {
                validate_budget(&format!("{p}.failureBudget"), b, &mut errs);
            }
        }
        validate_budget("spec.failureBudget", &self.failure_budget, &mut errs);
        for (i, key) in self.order_by.iter().enumerate() {
            if OrderKey::parse(key).is_none() {
                errs.invalid(
                    format!("spec.orderBy[{i}]"),
                    format!("{key:?}: must be cloud, region or label:KEY"),
                );
            }
        }
        if self.max_concurrent_swaps == 0 || self.max_concurrent_swaps > MAX_CONCURRENT_SWAPS {
            errs.invalid(
                "spec.maxConcurrentSwaps",
                format!(
                    "{}: must be between 1 and {MAX_CONCURRENT_SWAPS}",
                    self.max_concurrent_swaps
                ),
            );
        }
        if self.bake_seconds_between_waves > MAX_WAVE_BAKE_SECONDS {
            errs.invalid(
                "spec.bakeSecondsBetweenWaves",
                format!(
                    "{}: must be at most {MAX_WAVE_BAKE_SECONDS}",
                    self.bake_seconds_between_waves
                ),
            );
        }
        for (i, w) in self.maintenance_windows.iter().enumerate() {
            w.validate_at(&format!("spec.maintenanceWindows[{i}]"), &mut errs);
        }
        for (i, c) in self.skip_clusters.iter().enumerate() {
            errs.dns_subdomain(&format!("spec.skipClusters[{i}]"), c);
        }
        self.strategy.validate_at("spec.strategy", &mut errs);
        crate::metric_gate::validate_gates(
            "spec.waveGates",
            &self.wave_gates,
            crate::metric_gate::GateScope::Wave,
            &mut errs,
        );
        errs.into_result()
    }

    /// [`validate`](Self::validate) plus: the target is immutable.
    pub fn validate_update(&self, old: &Self) -> Result<(), Vec<FieldError>> {
        let mut errs = Errors(self.validate().err().unwrap_or_default());
        if self.target != old.target {
            errs.push(
                "spec.target",
                FieldErrorKind::Forbidden,
                "field is immutable; create a new Rollout",
            );
        }
        errs.into_result()
    }

    /// Whether a new swap may start at `t`.
    pub fn in_maintenance_window(&self, t: DateTime<Utc>) -> bool {
        in_windows(&self.maintenance_windows, t)
    }

    /// Whether wave `index` may start as far as approval goes.
    pub fn wave_approved(&self, index: usize) -> bool {
        let explicit = self.waves.get(index).and_then(|w| w.approval);
        match explicit.unwrap_or(self.approval) {
            Approval::Automatic => true,
            Approval::Manual => {
                (index == 0 && explicit.is_none())
                    || self
                        .approved_through_wave
                        .is_some_and(|a| a as usize >= index)
            }
        }
    }

    /// Assigns the selected clusters to waves, deterministically: clusters are taken in
    /// `orderBy` order (then by name); a percent wave takes `ceil(remaining * percent / 100)` of
    /// the remaining clusters, a count wave the first `count`, a selector wave the remaining
    /// clusters it matches. Leftovers form a last wave named [`REMAINDER_WAVE`]. A wave may be
    /// empty (its selector matched nothing left). Clusters not matched by `clusterSelector` (or
    /// with an unparsable selector) are in no wave. Each wave lists its clusters in start order.
    pub fn plan_waves(&self, clusters: &[Cluster]) -> Vec<PlannedWave> {
        let keys: Vec<OrderKey> = self
            .order_by
            .iter()
            .filter_map(|k| OrderKey::parse(k))
            .collect();
        let mut selected: Vec<&Cluster> = clusters
            .iter()
            .filter(|c| selector_matches(&self.cluster_selector, c.labels()))
            .collect();
        selected.sort_by_cached_key(|c| {
            let values: Vec<(bool, String)> = keys
                .iter()
                .map(|k| match k.value(c) {
                    Some(v) => (false, v.to_string()),
                    None => (true, String::new()),
                })
                .collect();
            (values, c.name_any())
        });
        let by_name: BTreeMap<String, &BTreeMap<String, String>> = selected
            .iter()
            .map(|c| (c.name_any(), c.labels()))
            .collect();
        let order: Vec<String> = selected.iter().map(|c| c.name_any()).collect();
        let mut remaining: Vec<&String> = order.iter().collect();
        let mut plan = Vec::with_capacity(self.waves.len() + 1);
        for wave in &self.waves {
            let taken: Vec<String> = match (&wave.percent, &wave.count, &wave.selector) {
                (Some(pct), _, _) => {
                    let n = (remaining.len() * usize::from(*pct))
                        .div_ceil(100)
                        .min(remaining.len());
                    remaining.drain(..n).cloned().collect()
                }
                (None, Some(count), _) => {
                    let n = (*count as usize).min(remaining.len());
                    remaining.drain(..n).cloned().collect()
                }
                (None, None, Some(sel)) => {
                    let (yes, no): (Vec<&String>, Vec<&String>) = remaining
                        .iter()
                        .partition(|name| selector_matches(sel, by_name[**name]));
                    remaining = no;
                    yes.into_iter().cloned().collect()
                }
                (None, None, None) => Vec::new(),
            };
            plan.push(PlannedWave {
                name: wave.name.clone(),
                clusters: taken,
            });
        }
        if !remaining.is_empty() {
            plan.push(PlannedWave {
                name: REMAINDER_WAVE.to_string(),
                clusters: remaining.into_iter().cloned().collect(),
            });
        }
        plan
    }
}

/// One wave of a plan: its name and the clusters (by name) it swaps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedWave {
    /// The wave's name ([`REMAINDER_WAVE`] for the implicit last one).
    pub name: String,
    /// Cluster names, in name order.
    pub clusters: Vec<String>,
}

closed_enum! {
    /// Where a rollout is.
    #[derive(Default)]
    pub enum RolloutPhase {
        /// Nothing started yet.
        #[default]
        Pending = "Pending",
        /// A wave is in progress or baking.
        Progressing = "Progressing",
        /// Waiting for a person to approve the next wave.
        WaitingForApproval = "WaitingForApproval",
        /// Paused by `spec.paused` or by the failure budget.
        Paused = "Paused",
        /// Every wave done.
        Succeeded = "Succeeded",
        /// Stopped; needs a person.
        Failed = "Failed",
        /// A failure budget was exceeded under `onBudgetExceeded: RollbackFleet`: no swap
        /// starts, and every swap whose blue still exists is rolled back.
        RollingBack = "RollingBack",
        /// Every swap of an aborted rollout ended (rolled back, or decommissioned before the
        /// abort). `rotor rollout retry --failed` runs the rolled-back clusters again.
        RolledBack = "RolledBack",
    }
}

impl RolloutPhase {
    /// Whether the controller has nothing more to do (until a retry is asked for).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RolloutPhase::Succeeded | RolloutPhase::Failed | RolloutPhase::RolledBack
        )
    }
}

closed_enum! {
    /// Where one wave is.
    #[derive(Default)]
    pub enum WavePhase {
        /// Not started.
        #[default]
        Pending = "Pending",
        /// Waiting for approval.
        WaitingForApproval = "WaitingForApproval",
        /// Swaps running.
        InProgress = "InProgress",
        /// All swaps done, baking before the next wave.
        Baking = "Baking",
        /// Done.
        Succeeded = "Succeeded",
        /// Done with failures beyond the budget.
        Failed = "Failed",
    }
}

/// Progress of one wave; the plan is recorded so a restarted controller resumes the same plan.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaveStatus {
    /// The wave's name.
    pub name: String,
    /// Clusters the wave swaps, by name.
    #[serde(default)]
    pub clusters: Vec<String>,
    /// Where the wave is.
    #[serde(default)]
    pub phase: WavePhase,
    /// When its first swap was created.
    #[serde(default)]
    pub started_at: Option<Time>,
    /// When its last swap ended.
    #[serde(default)]
    pub finished_at: Option<Time>,
    /// This wave's swaps by phase.
    #[serde(default)]
    pub counts: SwapCounts,
    /// What the rollout's wave gates (`spec.waveGates`) read after this wave.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metric_gates: Vec<crate::metric_gate::MetricGateStatus>,
}

/// A cluster the rollout left out, and why.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkippedCluster {
    /// The Cluster's name.
    pub cluster: String,
    /// The wave it was in.
    pub wave: String,
    /// `Operator` (spec.skipClusters), `Stopped`, `Unreachable`, or `PreflightBlocked`.
    pub reason: String,
    /// Details for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Swaps of a rollout counted by where they are.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SwapCounts {
    /// All swaps created.
    pub total: u32,
    /// In `Pending`.
    pub pending: u32,
    /// Past Pending and not terminal (RollingBack included).
    pub in_progress: u32,
    /// In `Succeeded`.
    pub succeeded: u32,
    /// In `RolledBack`.
    pub rolled_back: u32,
    /// In `Failed`.
    pub failed: u32,
}

impl SwapCounts {
    /// Counts the given phases.
    pub fn from_phases(phases: impl IntoIterator<Item = Phase>) -> Self {
        let mut c = SwapCounts::default();
        for p in phases {
            c.add(p);
        }
        c
    }

    /// Counts one more swap in phase `p`.
    pub fn add(&mut self, p: Phase) {
        self.total += 1;
        match p {
            Phase::Pending => self.pending += 1,
            Phase::Succeeded => self.succeeded += 1,
            Phase::RolledBack => self.rolled_back += 1,
            Phase::Failed => self.failed += 1,
            _ => self.in_progress += 1,
        }
    }

    /// Swaps that count against the failure budget: Failed and RolledBack.
    pub fn failures(&self) -> u32 {
        self.failed + self.rolled_back
    }
}

/// Observed state of a Rollout. `None` fields serialize as `null` so a JSON merge patch of the
/// whole status clears them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// Where the rollout is.
    #[serde(default)]
    pub phase: RolloutPhase,
    /// Index into `waves` of the wave in progress (or last finished).
    #[serde(default)]
    pub current_wave: Option<u32>,
    /// The plan and each wave's progress.
    #[serde(default)]
    pub waves: Vec<WaveStatus>,
    /// Swaps by phase.
    #[serde(default)]
    pub counts: SwapCounts,
    /// Clusters left out of the rollout (by an operator or by policy), with the reason.
    #[serde(default)]
    pub skipped: Vec<SkippedCluster>,
    /// Swaps held at their safe point (before traffic moves) because the rollout is paused or
    /// outside a maintenance window.
    #[serde(default)]
    pub parked: Vec<String>,
    /// What the pre-flight found before the first wave.
    #[serde(default)]
    pub preflight: Option<PreflightStatus>,
    /// `Ready`, `Progressing`, `Paused`, `Approved`, `InMaintenanceWindow`, `Degraded`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Set when a failure budget was exceeded under `onBudgetExceeded: RollbackFleet`; stays
    /// until a retry (`spec.retryFailed`), so the abort holds while swaps roll back.
    #[serde(default)]
    pub fleet_rollback: Option<FleetRollback>,
    /// The last `spec.retryFailed` acted on.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retried_failed: u32,
    /// The `metadata.generation` this status reflects.
    #[serde(default)]
    pub observed_generation: Option<i64>,
}

/// Why and when a rollout rolled its fleet back.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FleetRollback {
    /// The budget exceeded, for people (which budget, how many swaps).
    pub message: String,
    /// The clusters whose swaps exceeded it, each with its swap's reason.
    #[serde(default)]
    pub failed: Vec<String>,
    /// When the rollout decided to roll back.
    #[serde(default)]
    pub started_at: Option<Time>,
}
