//! The metric gates of a traffic step (`healthGates.metricGates`): the gates that are due have
//! their queries filled in and asked of Prometheus concurrently, each bounded; what they read
//! goes into the swap's status, `/metrics` and Events; [`judge`] decides. The step may end once
//! every gate has its passes in a row in it; a value beyond a threshold rolls back; an
//! inconclusive gate holds the step (or fails, by its `onInconclusive`). A Rollout's wave gates
//! (`rollout/wave_gates.rs`) ask and judge through the same [`evaluate`] and [`judge`].

pub(crate) mod judge;

use std::time::Duration;

use kube::ResourceExt;
use rotor_api::metric_gate::{
    MetricGate, MetricGateStatus, QueryValues, TemplateError, render_query,
};
use rotor_api::{
    Cluster, ClusterSwapStatus, Condition, ConditionStatus, ConditionType, Reason, find_condition,
    set_condition,
};

use super::Reconcile;
use super::gates::GateFailure;
use crate::{Context, Error, now};
use judge::{Inconclusive, Reading, Verdict};

/// What the metric gates let the current traffic step do.
#[derive(Debug)]
pub(super) enum MetricGates {
    /// None set, or every gate has its passes in this step.
    Passed,
    /// A gate still needs passes; the next evaluation is due after this.
    Pending(Duration),
    /// A gate cannot be judged and holds the step (`onInconclusive: Pause`): why.
    Held(String),
    /// A gate failed, or could not be judged under `onInconclusive: Fail`.
    Failed(GateFailure),
}

impl Reconcile<'_> {
    /// Evaluates the gates that are due in the current step, records what they read in
    /// `status`, and says what the step may do.
    pub(super) async fn metric_gates(
        &self,
        cluster: &Cluster,
        status: &mut ClusterSwapStatus,
    ) -> Result<MetricGates, Error> {
        let gates = &self.swap.spec.strategy.health_gates.metric_gates;
        status
            .metric_gates
            .retain(|e| gates.iter().any(|g| g.name == e.name));
        let Some(step) = status.current_step.filter(|_| !gates.is_empty()) else {
            return Ok(MetricGates::Passed);
        };
        let due: Vec<&MetricGate> = gates
            .iter()
            .filter(|g| self.metric_due_in(g, status, step).is_zero())
            .collect();
        let readings = self.read_gates(cluster, status, &due).await?;
        for (gate, (query, reading)) in due.iter().zip(readings) {
            if let Some(failed) = self
                .record_reading(status, gate, step, query, reading)
                .await
            {
                return Ok(MetricGates::Failed(failed));
            }
        }
        match judge::verdict(gates, &status.metric_gates, step) {
            Verdict::Held { gate, why } => Ok(MetricGates::Held(format!(
                "metric gate {gate} cannot be judged at {} %: {why}; the step holds until it \
                 can (onInconclusive: Pause)",
                status.green_weight_percent
            ))),
            verdict => {
                self.conclusive_again(status).await;
                Ok(match verdict {
                    Verdict::Passed => MetricGates::Passed,
                    _ => MetricGates::Pending(self.next_metric_due(gates, status, step)),
                })
            }
        }
    }

    /// How long until `gate` is due: at once in a step it was not read in, else its interval
    /// after the last evaluation (precise in this process, else from status, rounded so that
    /// an interval is never cut short).
    fn metric_due_in(&self, gate: &MetricGate, status: &ClusterSwapStatus, step: u32) -> Duration {
        let entry = status.metric_gates.iter().find(|e| e.name == gate.name);
        let since_last = entry
            .and_then(|e| e.last_evaluated_at.as_ref())
            .map(|at| self.ctx.swaps.since_metric(&self.name, &gate.name, at));
        judge::due_in(gate, entry, step, since_last)
    }

    fn next_metric_due(
        &self,
        gates: &[MetricGate],
        status: &ClusterSwapStatus,
        step: u32,
    ) -> Duration {
        gates
            .iter()
            .map(|g| self.metric_due_in(g, status, step))
            .min()
            .unwrap_or_default()
    }

    /// The due gates' queries filled in and asked concurrently: (query, reading) per gate.
    async fn read_gates(
        &self,
        cluster: &Cluster,
        status: &ClusterSwapStatus,
        due: &[&MetricGate],
    ) -> Result<Vec<(String, Reading)>, Error> {
        let (blue, green) = (self.blue(status)?, self.green(status)?);
        let name = cluster.name_any();
        let values = QueryValues {
            cluster: &name,
            swap: &self.name,
            blue: &blue,
            green: &green,
            weight: status.green_weight_percent,
            endpoint: &cluster.spec.traffic.endpoint,
            labels: cluster.labels(),
        };
        let reads = due.iter().map(|gate| self.read_gate(gate, &values));
        Ok(futures::future::join_all(reads).await)
    }

    async fn read_gate(&self, gate: &MetricGate, values: &QueryValues<'_>) -> (String, Reading) {
        evaluate(self.ctx, gate, render_query(&gate.query, values)).await
    }

    /// One evaluation into status, `/metrics` and (when it completes the gate's passes) an
    /// Event; the failure, when it fails the swap.
    async fn record_reading(
        &self,
        status: &mut ClusterSwapStatus,
        gate: &MetricGate,
        step: u32,
        query: String,
        reading: Reading,
    ) -> Option<GateFailure> {
        let at = now();
        self.ctx.swaps.mark_metric(&self.name, &gate.name, &at);
        self.ctx.metrics.metric_gate_evaluated(reading.result());
        let weight = status.green_weight_percent;
        let entry = gate_entry(status, &gate.name);
        let completed = judge::record(entry, gate, step, &reading, at);
        tracing::debug!(swap = %self.name, gate = %gate.name, %query, found = %entry.message, "metric gate");
        if completed {
            let note = format!(
                "metric gate {} passed {} evaluations in a row at {weight} %; last: {}",
                gate.name, gate.consecutive, entry.message
            );
            self.event(false, Reason::MetricGatePassed, note).await;
        }
        judge::fails(gate, &reading).then(|| GateFailure::Metric {
            gate: gate.name.clone(),
            query,
            weight,
            found: match &reading {
                Reading::Inconclusive(why) => format!(
                    "it cannot be judged, which counts as a failure (onInconclusive: Fail): {why}"
                ),
                _ => entry.message.clone(),
            },
        })
    }

    /// A step that a metric gate held (the Progressing condition says so) can go on: the
    /// condition says that instead, and an Event.
    async fn conclusive_again(&self, status: &mut ClusterSwapStatus) {
        let held = find_condition(&status.conditions, ConditionType::Progressing)
            .is_some_and(|c| c.reason == Reason::MetricGateInconclusive);
        if !held {
            return;
        }
        let message = format!(
            "the metric gates can be judged again at {} %",
            status.green_weight_percent
        );
        set_condition(
            &mut status.conditions,
            Condition::new(
                ConditionType::Progressing,
                ConditionStatus::True,
                Reason::MetricGateConclusive,
                message.clone(),
                now(),
                self.swap.metadata.generation,
            ),
        );
        self.event(false, Reason::MetricGateConclusive, message)
            .await;
    }
}

/// Asks Prometheus `query` (the gate's template filled in, or why it cannot be) and judges the
/// answer against the gate's threshold: (the query as asked, the reading). One bounded call.
pub(crate) async fn evaluate(
    ctx: &Context,
    gate: &MetricGate,
    query: Result<String, TemplateError>,
) -> (String, Reading) {
    let query = match query {
        Ok(q) => q,
        Err(e) => {
            return (
                gate.query.clone(),
                Reading::Inconclusive(Inconclusive::Template(e)),
            );
        }
    };
    let prometheus = &ctx.prometheus;
    let own = gate.prometheus.as_ref().map(|p| p.url.as_str());
    let timeout = ctx.settings.metric_query_timeout;
    let answer = match prometheus.url_for(own) {
        Ok(url) => prometheus.instant_query(url, &query, timeout).await,
        Err(e) => Err(e),
    };
    let reading = match answer {
        Ok(samples) => judge::judge(samples, &gate.threshold),
        Err(e) => Reading::Inconclusive(Inconclusive::Query(e)),
    };
    (query, reading)
}

/// The status entry of gate `name`, added when it has none.
fn gate_entry<'s>(status: &'s mut ClusterSwapStatus, name: &str) -> &'s mut MetricGateStatus {
    entry_of(&mut status.metric_gates, name)
}

/// Gate `name`'s entry in `entries`, added when it has none.
pub(crate) fn entry_of<'s>(
    entries: &'s mut Vec<MetricGateStatus>,
    name: &str,
) -> &'s mut MetricGateStatus {
    let i = match entries.iter().position(|e| e.name == name) {
        Some(i) => i,
        None => {
            entries.push(MetricGateStatus::new(name));
            entries.len() - 1
        }
    };
    &mut entries[i]
}
