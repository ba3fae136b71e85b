//! `Rollout`: one change across the fleet, in ordered waves, creating and watching ClusterSwaps.
//! The wave plan is a pure function of the spec and the clusters ([`RolloutSpec::plan_waves`]).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Duration as ChronoDuration, Timelike, Utc, Weekday};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::{CustomResource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;
use crate::common::{SwapStrategy, SwapTarget};
use crate::condition::Condition;
use crate::swap::Phase;
use crate::validation::{Errors, FieldError, FieldErrorKind, selector_matches};

/// Name of the implicit last wave that takes the clusters no declared wave took.
pub const REMAINDER_WAVE: &str = "remainder";
/// Upper bound on the number of waves (also in the schema).
pub const MAX_WAVES: usize = 50;
/// Upper bound on `maxConcurrentSwaps` (also in the schema).
pub const MAX_CONCURRENT_SWAPS: u32 = 1000;
/// Upper bound on the bake time between waves, a week (also in the schema).
pub const MAX_WAVE_BAKE_SECONDS: u64 = 7 * 86_400;

const TIME_OF_DAY_PATTERN: &str = "^([01][0-9]|2[0-3]):[0-5][0-9]$";

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
    /// The rollout pauses itself when more swaps than this end Failed or RolledBack.
    #[serde(default)]
    pub failure_budget: u32,
    /// New swaps start only inside one of these windows; empty means any time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maintenance_windows: Vec<MaintenanceWindow>,
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

/// One wave: either a percentage of the clusters not yet taken by an earlier wave, or a selector.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{"rule": "has(self.percent) != has(self.selector)", "message": "set exactly one of percent and selector"}]))]
pub struct Wave {
    /// Wave name, a DNS label, unique within the rollout (used in swap labels).
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Percentage of the remaining clusters (rounded up, so at least one while any remain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub percent: Option<u8>,
    /// The remaining clusters whose labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

closed_enum! {
    /// Day of the week, for maintenance windows.
    pub enum DayOfWeek {
        Mon = "Mon",
        Tue = "Tue",
        Wed = "Wed",
        Thu = "Thu",
        Fri = "Fri",
        Sat = "Sat",
        Sun = "Sun",
    }
}

impl DayOfWeek {
    fn from_weekday(w: Weekday) -> Self {
        match w {
            Weekday::Mon => DayOfWeek::Mon,
            Weekday::Tue => DayOfWeek::Tue,
            Weekday::Wed => DayOfWeek::Wed,
            Weekday::Thu => DayOfWeek::Thu,
            Weekday::Fri => DayOfWeek::Fri,
            Weekday::Sat => DayOfWeek::Sat,
            Weekday::Sun => DayOfWeek::Sun,
        }
    }
}

/// A weekly window in UTC. `end` before `start` wraps past midnight (the day is the day the
/// window opens).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceWindow {
    /// Days the window opens on.
    #[schemars(length(min = 1, max = 7))]
    pub days: Vec<DayOfWeek>,
    /// Opening time, `HH:MM` UTC.
    #[schemars(pattern(TIME_OF_DAY_PATTERN))]
    pub start: String,
    /// Closing time, `HH:MM` UTC (exclusive).
    #[schemars(pattern(TIME_OF_DAY_PATTERN))]
    pub end: String,
}

fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl MaintenanceWindow {
    /// Whether `t` falls inside the window. A window that does not parse contains nothing.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        let (Some(start), Some(end)) = (parse_hhmm(&self.start), parse_hhmm(&self.end)) else {
            return false;
        };
        let minute = t.hour() * 60 + t.minute();
        let opens_on = |d: DateTime<Utc>| self.days.contains(&DayOfWeek::from_weekday(d.weekday()));
        if start < end {
            opens_on(t) && (start..end).contains(&minute)
        } else {
            (opens_on(t) && minute >= start)
                || (opens_on(t - ChronoDuration::days(1)) && minute < end)
        }
    }
}

impl RolloutSpec {
    /// Checks what the schema cannot say; every error names its field under `spec`.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errs = Errors::default();
        errs.label_selector("spec.clusterSelector", &self.cluster_selector);
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
            match (&wave.percent, &wave.selector) {
                (Some(_), Some(_)) => {
                    errs.invalid(&p, "set exactly one of percent and selector, not both")
                }
                (None, None) => errs.required(&p, "set one of percent and selector"),
                (Some(pct), None) if *pct == 0 || *pct > 100 => errs.invalid(
                    format!("{p}.percent"),
                    format!("{pct}: must be between 1 and 100"),
                ),
                (None, Some(sel)) => errs.label_selector(&format!("{p}.selector"), sel),
                _ => {}
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
            let p = format!("spec.maintenanceWindows[{i}]");
            if w.days.is_empty() {
                errs.required(format!("{p}.days"), "at least one day");
            }
            let mut seen = BTreeSet::new();
            for (j, d) in w.days.iter().enumerate() {
                if !seen.insert(d) {
                    errs.push(
                        format!("{p}.days[{j}]"),
                        FieldErrorKind::Duplicate,
                        format!("{d} is listed twice"),
                    );
                }
            }
            let start = parse_hhmm(&w.start);
            let end = parse_hhmm(&w.end);
            if start.is_none() {
                errs.invalid(
                    format!("{p}.start"),
                    format!("{:?}: must be HH:MM (UTC)", w.start),
                );
            }
            if end.is_none() {
                errs.invalid(
                    format!("{p}.end"),
                    format!("{:?}: must be HH:MM (UTC)", w.end),
                );
            }
            if start.is_some() && start == end {
                errs.invalid(format!("{p}.end"), "must differ from start");
            }
        }
        for (i, c) in self.skip_clusters.iter().enumerate() {
            errs.dns_subdomain(&format!("spec.skipClusters[{i}]"), c);
        }
        self.strategy.validate_at("spec.strategy", &mut errs);
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
        self.maintenance_windows.is_empty()
            || self.maintenance_windows.iter().any(|w| w.contains(t))
    }

    /// Whether wave `index` may start as far as approval goes.
    pub fn wave_approved(&self, index: usize) -> bool {
        match self.approval {
            Approval::Automatic => true,
            Approval::Manual => {
                index == 0
                    || self
                        .approved_through_wave
                        .is_some_and(|a| a as usize >= index)
            }
        }
    }

    /// Assigns the selected clusters to waves, deterministically: clusters are taken in name
    /// order; a percent wave takes `ceil(remaining * percent / 100)` of the remaining clusters, a
    /// selector wave the remaining clusters it matches. Leftovers form a last wave named
    /// [`REMAINDER_WAVE`]. A wave may be empty (its selector matched nothing left). Clusters not
    /// matched by `clusterSelector` (or with an unparsable selector) are in no wave.
    pub fn plan_waves(&self, clusters: &[Cluster]) -> Vec<PlannedWave> {
        let by_name: BTreeMap<String, &BTreeMap<String, String>> = clusters
            .iter()
            .filter(|c| selector_matches(&self.cluster_selector, c.labels()))
            .map(|c| (c.name_any(), c.labels()))
            .collect();
        let mut remaining: Vec<&String> = by_name.keys().collect();
        let mut plan = Vec::with_capacity(self.waves.len() + 1);
        for wave in &self.waves {
            let taken: Vec<String> = match (&wave.percent, &wave.selector) {
                (Some(pct), _) => {
                    let n = (remaining.len() * usize::from(*pct))
                        .div_ceil(100)
                        .min(remaining.len());
                    remaining.drain(..n).cloned().collect()
                }
                (None, Some(sel)) => {
                    let (yes, no): (Vec<&String>, Vec<&String>) = remaining
                        .iter()
                        .partition(|name| selector_matches(sel, by_name[**name]));
                    remaining = no;
                    yes.into_iter().cloned().collect()
                }
                (None, None) => Vec::new(),
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
    /// `Ready`, `Progressing`, `Paused`, `Approved`, `InMaintenanceWindow`, `Degraded`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status reflects.
    #[serde(default)]
    pub observed_generation: Option<i64>,
}
