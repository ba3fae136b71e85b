//! The controllers' Prometheus metrics, served by `rotor serve` at `/metrics`: how often each
//! controller reconciles and fails, whether this process leads, where the fleet stands (swaps
//! by phase, rollouts by phase, Clusters by readiness — counted at scrape time from the
//! controllers' own caches, so they cannot drift from the objects), every swap transition, how
//! long finished swaps took, metric gate evaluations by result, and lifecycle hook calls by
//! point and answer. A platform team alerts on a
//! rising error rate, on no control plane leading, on swaps piling up in a phase or rolling
//! back, on metric gates that cannot be judged.

use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};

use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rotor_api::{Cluster, ClusterSwap, ConditionType, Phase, Rollout, RolloutPhase};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    phase: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    provider: &'static str,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// The controllers' caches the fleet gauges are counted from, set as each controller starts.
#[derive(Clone, Debug, Default)]
struct Caches {
    swaps: Arc<Mutex<Option<Store<ClusterSwap>>>>,
    clusters: Arc<Mutex<Option<Store<Cluster>>>>,
    rollouts: Arc<Mutex<Option<Store<Rollout>>>>,
}

fn snapshot<K>(cache: &Mutex<Option<Store<K>>>) -> Option<Vec<Arc<K>>>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|s| s.state())
}

/// One gauge family, a series per label value (zeros included, so a dashboard's series do not
/// come and go).
fn gauge_family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &'static str,
    counts: &[(&'static str, i64)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (value, n) in counts {
        let labels = [(label, *value)];
        ConstGauge::new(*n).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// How many of `objects` are in each of `all` phases (an object without status is in the
/// default phase), as `(phase, count)`.
fn count_by<P, K>(
    all: &[P],
    name: fn(P) -> &'static str,
    objects: &[Arc<K>],
    phase: impl Fn(&K) -> Option<P>,
) -> Vec<(&'static str, i64)>
where
    P: Copy + Default + PartialEq,
{
    all.iter()
        .map(|p| {
            let n = objects
                .iter()
                .filter(|o| phase(o).unwrap_or_default() == *p)
                .count();
            (name(*p), n as i64)
        })
        .collect()
}

impl Collector for Caches {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(swaps) = snapshot(&self.swaps) {
            let counts = count_by(Phase::ALL, Phase::as_str, &swaps, |s| {
                s.status.as_ref().map(|st| st.phase)
            });
            gauge_family(
                &mut encoder,
                "swaps",
                "ClusterSwaps by phase",
                "phase",
                &counts,
            )?;
        }
        if let Some(rollouts) = snapshot(&self.rollouts) {
            let counts = count_by(RolloutPhase::ALL, RolloutPhase::as_str, &rollouts, |r| {
                r.status.as_ref().map(|st| st.phase)
            });
            gauge_family(
                &mut encoder,
                "rollouts",
                "Rollouts by phase",
                "phase",
                &counts,
            )?;
        }
        if let Some(clusters) = snapshot(&self.clusters) {
            let mut counts = [("True", 0), ("False", 0), ("Unknown", 0)];
            for c in &clusters {
                let ready = c
                    .status
                    .as_ref()
                    .and_then(|s| rotor_api::find_condition(&s.conditions, ConditionType::Ready))
                    .map(|c| c.status.as_str());
                let slot = match ready {
                    Some("True") => 0,
                    Some("False") => 1,
                    _ => 2,
                };
                counts[slot].1 += 1;
            }
            gauge_family(
                &mut encoder,
                "clusters",
                "Clusters by their Ready condition",
                "ready",
                &counts,
            )?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    controller: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookLabels {
    point: &'static str,
    answer: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
}

/// A stage of a swap's migration, as `rotor_migration_stage_duration_seconds` labels it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MigrationStage {
    /// Reading blue: its API discovery, every selected kind listed, the plan ordered.
    Plan,
    /// Loading green's checkpoint from the control plane.
    Checkpoint,
    /// Writing green, the checkpoint's flushes included.
    Apply,
}

impl MigrationStage {
    pub const ALL: [MigrationStage; 3] = [Self::Plan, Self::Checkpoint, Self::Apply];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plan => "plan",
            Self::Checkpoint => "checkpoint",
            Self::Apply => "apply",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    leading: Gauge<i64, AtomicI64>,
    transitions: Family<TransitionLabels, Counter>,
    swap_seconds: Family<OutcomeLabels, Histogram>,
    provider_calls: Family<CallLabels, Counter>,
    provider_seconds: Family<CallLabels, Histogram>,
    metric_gate_evaluations: Family<ResultLabels, Counter>,
    hook_calls: Family<HookLabels, Counter>,
    migration_seconds: Family<StageLabels, Histogram>,
    /// The same stages' counts and sums, for reports (the histogram does not give them back).
    migration_totals: Mutex<[(u64, f64); 3]>,
    caches: Caches,
}

/// Buckets of one cloud API call, in seconds.
const CALL_SECONDS_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Buckets of a swap's duration, in seconds: a simulated swap takes seconds, a real one with
/// bake times and blue retention minutes to hours.
const SWAP_SECONDS_BUCKETS: [f64; 12] = [
    5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 21600.0,
];

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("rotor");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles by controller (cluster, clusterswap, rollout) and result (ok, error)",
            reconciles.clone(),
        );
        let leading = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "leading",
            "1 while this process runs the controllers (holds the Lease, or its store is not shared)",
            leading.clone(),
        );
        let transitions = Family::<TransitionLabels, Counter>::default();
        registry.register(
            "swap_transitions",
            "ClusterSwap phase transitions by the phase entered and why",
            transitions.clone(),
        );
        let swap_seconds = Family::<OutcomeLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(SWAP_SECONDS_BUCKETS)
        });
        registry.register(
            "swap_duration_seconds",
            "Finished ClusterSwaps from creation to their end, by outcome (Succeeded, RolledBack, Failed)",
            swap_seconds.clone(),
        );
        let provider_calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "provider_calls",
            "Cloud provider calls by provider, operation and outcome (ok or the error's class)",
            provider_calls.clone(),
        );
        let provider_seconds = Family::<CallLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(CALL_SECONDS_BUCKETS)
        });
        registry.register(
            "provider_call_duration_seconds",
            "Cloud provider calls' durations, by provider, operation and outcome",
            provider_seconds.clone(),
        );
        let metric_gate_evaluations = Family::<ResultLabels, Counter>::default();
        registry.register(
            "metric_gate_evaluations",
            "Evaluations of swaps' metric gates (Prometheus queries) by result (Pass, Fail, Inconclusive)",
            metric_gate_evaluations.clone(),
        );
        let hook_calls = Family::<HookLabels, Counter>::default();
        registry.register(
            "hook_calls",
            "Calls of swaps' lifecycle hooks by point and answer (Allow, Deny, RetryAfter, Error)",
            hook_calls.clone(),
        );
        let migration_seconds = Family::<StageLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(CALL_SECONDS_BUCKETS)
        });
        registry.register(
            "migration_stage_duration_seconds",
            "Swaps' migrations by stage: plan (reading blue), checkpoint (loading green's), apply (writing green)",
            migration_seconds.clone(),
        );
        let caches = Caches::default();
        registry.register_collector(Box::new(caches.clone()));
        Metrics {
            registry,
            reconciles,
            leading,
            transitions,
            swap_seconds,
            provider_calls,
            provider_seconds,
            metric_gate_evaluations,
            hook_calls,
            migration_seconds,
            migration_totals: Mutex::default(),
            caches,
        }
    }
}

impl rotor_providers::CallObserver for Metrics {
    fn observed(
        &self,
        provider: &'static str,
        operation: &'static str,
        outcome: &'static str,
        seconds: f64,
    ) {
        let labels = CallLabels {
            provider,
            operation,
            outcome,
        };
        self.provider_calls.get_or_create(&labels).inc();
        self.provider_seconds
            .get_or_create(&labels)
            .observe(seconds);
    }
}

impl Metrics {
    /// One migration's `stage` took `seconds`.
    pub fn migration_stage(&self, stage: MigrationStage, seconds: f64) {
        let labels = StageLabels {
            stage: stage.as_str(),
        };
        self.migration_seconds
            .get_or_create(&labels)
            .observe(seconds);
        let mut totals = crate::lock(&self.migration_totals);
        let total = &mut totals[stage as usize];
        total.0 += 1;
        total.1 += seconds;
    }

    /// How many migrations went through `stage`, and their seconds in it altogether.
    pub fn migration_stage_total(&self, stage: MigrationStage) -> (u64, f64) {
        crate::lock(&self.migration_totals)[stage as usize]
    }

    /// Counts one reconcile of `controller`.
    pub fn reconciled<T, E>(&self, controller: &'static str, result: &Result<T, E>) {
        let result = if result.is_ok() { "ok" } else { "error" };
        self.reconciles
            .get_or_create(&ReconcileLabels { controller, result })
            .inc();
    }

    /// Reconciles of `controller` so far, successful or not (what `rotor bench fleet` reads
    /// to tell the work an idle fleet costs).
    pub fn reconciles_of(&self, controller: &'static str) -> u64 {
        ["ok", "error"]
            .into_iter()
            .map(|result| {
                self.reconciles
                    .get_or_create(&ReconcileLabels { controller, result })
                    .get()
            })
            .sum()
    }

    /// Counts a swap's transition into `phase`; a terminal one also records how long the swap
    /// took.
    pub fn swap_transition(&self, phase: Phase, reason: &'static str, took: Option<f64>) {
        self.transitions
            .get_or_create(&TransitionLabels {
                phase: phase.as_str(),
                reason,
            })
            .inc();
        if phase.is_terminal()
            && let Some(seconds) = took
        {
            self.swap_seconds
                .get_or_create(&OutcomeLabels {
                    outcome: phase.as_str(),
                })
                .observe(seconds);
        }
    }

    /// Counts one evaluation of a metric gate by its result.
    pub fn metric_gate_evaluated(&self, result: rotor_api::MetricGateResult) {
        self.metric_gate_evaluations
            .get_or_create(&ResultLabels {
                result: result.as_str(),
            })
            .inc();
    }

    /// Counts one call of a lifecycle hook at `point` by what it got.
    pub fn hook_called(&self, point: rotor_api::HookPoint, answer: rotor_api::HookAnswer) {
        self.hook_calls
            .get_or_create(&HookLabels {
                point: point.as_str(),
                answer: answer.as_str(),
            })
            .inc();
    }

    /// The swap controller's cache: `rotor_swaps{phase}` is counted from it.
    pub fn count_swaps(&self, store: Store<ClusterSwap>) {
        *self.caches.swaps.lock().unwrap_or_else(|e| e.into_inner()) = Some(store);
    }

    /// The Cluster controller's cache: `rotor_clusters{ready}`.
    pub fn count_clusters(&self, store: Store<Cluster>) {
        *self
            .caches
            .clusters
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(store);
    }

    /// The Rollout controller's cache: `rotor_rollouts{phase}`.
    pub fn count_rollouts(&self, store: Store<Rollout>) {
        *self
            .caches
            .rollouts
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(store);
    }

    /// Whether this process runs the controllers. One that stops leading stops reporting the
    /// fleet gauges: its caches are no longer kept current (the leader's are).
    pub fn set_leading(&self, leading: bool) {
        self.leading.set(i64::from(leading));
        if !leading {
            *self.caches.swaps.lock().unwrap_or_else(|e| e.into_inner()) = None;
            *self
                .caches
                .clusters
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = None;
            *self
                .caches
                .rollouts
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_controller_and_result() {
        let m = Metrics::default();
        m.reconciled::<(), ()>("cluster", &Ok(()));
        m.reconciled::<(), ()>("cluster", &Ok(()));
        m.reconciled::<(), ()>("clusterswap", &Err(()));
        m.set_leading(true);
        let text = m.encode();
        assert!(
            text.contains(r#"rotor_reconciles_total{controller="cluster",result="ok"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"rotor_reconciles_total{controller="clusterswap",result="error"} 1"#),
            "{text}"
        );
        assert!(text.contains("rotor_leading 1"), "{text}");
        // No controller started: no fleet gauges (not a misleading zero).
        assert!(!text.contains("rotor_swaps"), "{text}");
    }

    fn swap(name: &str, phase: Phase) -> ClusterSwap {
        let mut s = ClusterSwap::new(
            name,
            rotor_api::ClusterSwapSpec {
                cluster_ref: "c".into(),
                target: Default::default(),
                strategy: Default::default(),
                paused: false,
                rollback: false,
                hold_before_traffic: false,
            },
        );
        s.status = Some(rotor_api::ClusterSwapStatus {
            phase,
            ..Default::default()
        });
        s
    }

    #[test]
    fn fleet_gauges_count_the_controllers_caches_at_scrape_time() {
        use kube::runtime::{reflector, watcher};
        let m = Metrics::default();
        let (reader, mut writer) = reflector::store::<ClusterSwap>();
        m.count_swaps(reader);
        for (name, phase) in [
            ("a", Phase::ShiftingTraffic),
            ("b", Phase::ShiftingTraffic),
            ("c", Phase::RolledBack),
        ] {
            writer.apply_watcher_event(&watcher::Event::Apply(swap(name, phase)));
        }
        let text = m.encode();
        assert!(
            text.contains(r#"rotor_swaps{phase="ShiftingTraffic"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"rotor_swaps{phase="RolledBack"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"rotor_swaps{phase="Pending"} 0"#), "{text}");
        // A deleted swap leaves the count with the cache, no bookkeeping of ours involved.
        writer.apply_watcher_event(&watcher::Event::Delete(swap("a", Phase::ShiftingTraffic)));
        let text = m.encode();
        assert!(
            text.contains(r#"rotor_swaps{phase="ShiftingTraffic"} 1"#),
            "{text}"
        );

        let (reader, mut writer) = reflector::store::<Cluster>();
        m.count_clusters(reader);
        let mut fleet = rotor_api::sample_fleet(3);
        let ready = |status| rotor_api::ClusterStatus {
            conditions: vec![rotor_api::Condition::new(
                ConditionType::Ready,
                status,
                rotor_api::Reason::Healthy,
                String::new(),
                crate::now(),
                None,
            )],
            ..Default::default()
        };
        fleet[0].status = Some(ready(rotor_api::ConditionStatus::True));
        fleet[1].status = Some(ready(rotor_api::ConditionStatus::False));
        for c in fleet {
            writer.apply_watcher_event(&watcher::Event::Apply(c));
        }
        let text = m.encode();
        for line in [
            r#"rotor_clusters{ready="True"} 1"#,
            r#"rotor_clusters{ready="False"} 1"#,
            r#"rotor_clusters{ready="Unknown"} 1"#,
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn transitions_count_and_finished_swaps_record_their_duration() {
        let m = Metrics::default();
        m.swap_transition(Phase::ShiftingTraffic, "TrafficStepApplied", Some(10.0));
        m.swap_transition(Phase::RollingBack, "GateFailed", Some(40.0));
        m.swap_transition(Phase::RolledBack, "RolledBack", Some(42.0));
        let text = m.encode();
        assert!(
            text.contains(
                r#"rotor_swap_transitions_total{phase="RollingBack",reason="GateFailed"} 1"#
            ),
            "{text}"
        );
        // Only the terminal transition is a duration.
        assert!(
            text.contains(r#"rotor_swap_duration_seconds_count{outcome="RolledBack"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"rotor_swap_duration_seconds_sum{outcome="RolledBack"} 42.0"#),
            "{text}"
        );
        assert!(!text.contains(r#"outcome="ShiftingTraffic""#), "{text}");
    }

    #[test]
    fn metric_gate_evaluations_count_by_result() {
        use rotor_api::MetricGateResult;
        let m = Metrics::default();
        m.metric_gate_evaluated(MetricGateResult::Pass);
        m.metric_gate_evaluated(MetricGateResult::Pass);
        m.metric_gate_evaluated(MetricGateResult::Inconclusive);
        let text = m.encode();
        for line in [
            r#"rotor_metric_gate_evaluations_total{result="Pass"} 2"#,
            r#"rotor_metric_gate_evaluations_total{result="Inconclusive"} 1"#,
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn hook_calls_count_by_point_and_answer() {
        use rotor_api::{HookAnswer, HookPoint};
        let m = Metrics::default();
        m.hook_called(HookPoint::AfterMigration, HookAnswer::Deny);
        m.hook_called(HookPoint::AfterEachStep, HookAnswer::Allow);
        m.hook_called(HookPoint::AfterEachStep, HookAnswer::Allow);
        let text = m.encode();
        for line in [
            r#"rotor_hook_calls_total{point="AfterMigration",answer="Deny"} 1"#,
            r#"rotor_hook_calls_total{point="AfterEachStep",answer="Allow"} 2"#,
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
