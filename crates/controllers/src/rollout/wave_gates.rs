//! Wave gates (`spec.waveGates`): metric gates judged after a wave's swaps have ended and
//! before the next wave opens, through the swap's own [`evaluate`] and [`judge`]. The
//! finished wave's index is the gates' "step": passes in a row count within it.
//!
//! The next wave waits for every gate's `consecutive` passes (as well as the bake). A value
//! beyond a threshold pauses the rollout, whatever `onBudgetExceeded`: the wave's swaps
//! succeeded and their blues may be decommissioned already, so a fleet rollback could not undo
//! what the gate saw; a person decides. The pause lasts while the gate's last reading fails
//! (it is read again at its interval). An inconclusive reading holds the rollout, saying so
//! (`onInconclusive: Pause`), or pauses it as a failure (`Fail`).

use std::time::Duration;

use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use rotor_api::metric_gate::{
    MetricGate, MetricGateResult, MetricGateStatus, WaveQueryValues, render_wave_query,
};
use rotor_api::{Reason, RolloutStatus};

use super::Reconcile;
use super::budget::Pause;
use crate::now;
use crate::swap::metric_gates::judge::{self, Reading, Verdict};
use crate::swap::metric_gates::{entry_of, evaluate};

/// What the wave gates let the next wave do.
#[derive(Debug, PartialEq)]
pub(super) enum WaveGates {
    /// None set, or every gate has its passes after this wave.
    Passed,
    /// A gate still needs passes; the next evaluation is due after this.
    Pending(Duration),
    /// The rollout holds or pauses, and why.
    Stopped(Pause),
}

impl Reconcile<'_> {
    /// Evaluates the wave gates that are due after wave `index`, records what they read in the
    /// wave's status and as Events, and says whether the next wave may open.
    pub(super) async fn wave_gates(&self, status: &mut RolloutStatus, index: usize) -> WaveGates {
        let gates = &self.spec.wave_gates;
        let step = index as u32;
        let entries = &mut status.waves[index].metric_gates;
        entries.retain(|e| gates.iter().any(|g| g.name == e.name));
        if gates.is_empty() {
            return WaveGates::Passed;
        }
        let due: Vec<&MetricGate> = gates
            .iter()
            .filter(|g| self.wave_gate_due_in(g, entries, index).is_zero())
            .collect();
        let wave = &status.waves[index];
        let instances = self.instances_of(&wave.clusters);
        let values = WaveQueryValues {
            rollout: &self.name,
            wave: &wave.name,
            clusters: &wave.clusters,
            instances: &instances,
        };
        let reads = due
            .iter()
            .map(|g| evaluate(self.ctx, g, render_wave_query(&g.query, &values)));
        let readings = futures::future::join_all(reads).await;
        for (gate, (query, reading)) in due.iter().zip(readings) {
            self.record_wave_reading(status, index, gate, &query, &reading)
                .await;
        }
        let wave = &status.waves[index];
        verdict(gates, &wave.metric_gates, step, &wave.name).unwrap_or_else(|| {
            let next = gates
                .iter()
                .map(|g| self.wave_gate_due_in(g, &wave.metric_gates, index))
                .min()
                .unwrap_or_default();
            WaveGates::Pending(next)
        })
    }

    /// The instances serving `clusters` now (a Cluster without one: its own name).
    fn instances_of(&self, clusters: &[String]) -> Vec<String> {
        clusters
            .iter()
            .map(|c| {
                self.state
                    .clusters
                    .get(&ObjectRef::new(c))
                    .and_then(|c| c.status.as_ref()?.active_instance.clone())
                    .unwrap_or_else(|| c.clone())
            })
            .collect()
    }

    /// How long until `gate` is due after wave `index`: at once when not read after it yet.
    fn wave_gate_due_in(
        &self,
        gate: &MetricGate,
        entries: &[MetricGateStatus],
        index: usize,
    ) -> Duration {
        let entry = entries.iter().find(|e| e.name == gate.name);
        let since_last = entry
            .and_then(|e| e.last_evaluated_at.as_ref())
            .map(|at| self.ctx.elapsed(&self.wave_gate_key(index, &gate.name), at));
        judge::due_in(gate, entry, index as u32, since_last)
    }

    /// The key of a wave gate's last evaluation in [`crate::Context::elapsed`].
    fn wave_gate_key(&self, index: usize, gate: &str) -> String {
        format!("rollout/{}/wave/{index}/gate/{gate}", self.name)
    }

    /// One evaluation into the wave's status, `/metrics` and an Event (a failure or an
    /// inconclusive reading when it begins; a pass when it completes the gate's passes).
    async fn record_wave_reading(
        &self,
        status: &mut RolloutStatus,
        index: usize,
        gate: &MetricGate,
        query: &str,
        reading: &Reading,
    ) {
        let at = now();
        self.ctx
            .mark_started(self.wave_gate_key(index, &gate.name), &at);
        self.ctx.metrics.metric_gate_evaluated(reading.result());
        let wave = &mut status.waves[index];
        let entry = entry_of(&mut wave.metric_gates, &gate.name);
        let before = (entry.step, entry.last_result);
        let completed = judge::record(entry, gate, index as u32, reading, at);
        // A failure or an inconclusive reading is told when it begins, not at every reading.
        let again = before == (entry.step, entry.last_result);
        let after = format!("metric gate {} after wave {}", gate.name, wave.name);
        let (warning, reason, note) = match reading.result() {
            MetricGateResult::Pass if !completed => return,
            MetricGateResult::Fail | MetricGateResult::Inconclusive if again => return,
            MetricGateResult::Pass => (
                false,
                Reason::MetricGatePassed,
                format!(
                    "{after} passed {} evaluations in a row; last: {}",
                    gate.consecutive, entry.message
                ),
            ),
            MetricGateResult::Fail => (
                true,
                Reason::MetricGateFailed,
                format!("{after} failed: {}; query: {query}", entry.message),
            ),
            MetricGateResult::Inconclusive => (
                true,
                Reason::MetricGateInconclusive,
                format!("{after} cannot be judged: {}", entry.message),
            ),
        };
        let object = self.rollout.object_ref(&());
        self.ctx
            .recorder
            .publish(&object, warning, reason.as_str(), "WaveGate", note)
            .await;
    }
}

/// The gates' verdict after wave `step` (named `wave`) from their entries: a failed last
/// reading (or an inconclusive one under `Fail`) pauses, an inconclusive one under `Pause`
/// holds, all passes let the next wave open; None while passes are still due.
fn verdict(
    gates: &[MetricGate],
    entries: &[MetricGateStatus],
    step: u32,
    wave: &str,
) -> Option<WaveGates> {
    for gate in gates {
        let Some(e) = entries
            .iter()
            .find(|e| e.name == gate.name && e.step == Some(step))
        else {
            continue;
        };
        let failed = match e.last_result {
            Some(MetricGateResult::Fail) => true,
            Some(MetricGateResult::Inconclusive) => {
                gate.on_inconclusive == rotor_api::OnInconclusive::Fail
            }
            _ => false,
        };
        if failed {
            return Some(WaveGates::Stopped(Pause::WaveGateFailed {
                message: format!(
                    "metric gate {} failed after wave {wave}: {}; the next wave waits for {} \
                     passes in a row",
                    gate.name, e.message, gate.consecutive
                ),
            }));
        }
    }
    match judge::verdict(gates, entries, step) {
        Verdict::Passed => Some(WaveGates::Passed),
        Verdict::Held { gate, why } => Some(WaveGates::Stopped(Pause::WaveGateHeld {
            message: format!(
                "metric gate {gate} cannot be judged after wave {wave}: {why}; the next wave \
                 waits until it can (onInconclusive: Pause)"
            ),
        })),
        Verdict::Pending => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotor_api::{OnInconclusive, Threshold};

    fn gate(on_inconclusive: OnInconclusive) -> MetricGate {
        MetricGate {
            name: "errors".into(),
            query: "x".into(),
            threshold: Threshold {
                max: Some(0.01),
                min: None,
            },
            interval_seconds: 1,
            consecutive: 2,
            on_inconclusive,
            prometheus: None,
        }
    }

    fn entry(step: u32, result: MetricGateResult, passes: u32, message: &str) -> MetricGateStatus {
        MetricGateStatus {
            step: Some(step),
            consecutive_passes: passes,
            last_result: Some(result),
            message: message.into(),
            ..MetricGateStatus::new("errors")
        }
    }

    #[test]
    fn a_failed_reading_pauses_naming_gate_value_and_threshold_and_passes_let_the_wave_go() {
        let g = [gate(OnInconclusive::Pause)];
        let beyond = "0.3 is beyond the threshold (at most 0.01)";
        let Some(WaveGates::Stopped(p)) = verdict(
            &g,
            &[entry(0, MetricGateResult::Fail, 0, beyond)],
            0,
            "canary",
        ) else {
            panic!("a failure pauses");
        };
        assert_eq!(p.reason(), Reason::MetricGateFailed);
        assert!(
            p.to_string().starts_with(&format!(
                "metric gate errors failed after wave canary: {beyond}"
            )),
            "{p}"
        );
        // Read after another wave: not this one's.
        assert_eq!(
            verdict(
                &g,
                &[entry(1, MetricGateResult::Fail, 0, beyond)],
                0,
                "canary"
            ),
            None
        );
        let within = entry(0, MetricGateResult::Pass, 1, "0 is within");
        assert_eq!(
            verdict(&g, std::slice::from_ref(&within), 0, "canary"),
            None
        );
        let done = MetricGateStatus {
            consecutive_passes: 2,
            ..within
        };
        assert_eq!(verdict(&g, &[done], 0, "canary"), Some(WaveGates::Passed));
    }

    #[test]
    fn no_data_holds_or_fails_by_on_inconclusive_and_never_passes() {
        let none = entry(
            0,
            MetricGateResult::Inconclusive,
            0,
            "the query returned no data",
        );
        let Some(WaveGates::Stopped(p)) = verdict(
            &[gate(OnInconclusive::Pause)],
            std::slice::from_ref(&none),
            0,
            "canary",
        ) else {
            panic!("no data holds");
        };
        assert_eq!(p.reason(), Reason::MetricGateInconclusive);
        assert!(p.to_string().contains("the query returned no data"), "{p}");
        let Some(WaveGates::Stopped(p)) =
            verdict(&[gate(OnInconclusive::Fail)], &[none], 0, "canary")
        else {
            panic!("no data fails");
        };
        assert_eq!(p.reason(), Reason::MetricGateFailed);
    }
}
