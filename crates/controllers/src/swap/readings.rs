//! `status.gateReadings`: the gates' readings as status keeps them — the error rate and
//! latency percentiles the health gates judged, and the metric gates' last values — recorded
//! when a traffic step ends (passing) and when a gate fails, so the dashboard can draw them on
//! the traffic weight's time axis.

use rotor_api::metric_gate::MetricGate;
use rotor_api::{
    ClusterSwapStatus, GateKind, GateReading, HealthGates, MetricGateResult, record_readings,
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

use crate::now;

/// The error-rate gate's reading: the rate it judged when it `breached`, else green's own
/// rate in the step (none without requests).
pub(super) fn error_rate(
    status: &ClusterSwapStatus,
    requests: u64,
    failures: u64,
    breached: Option<f64>,
    gates: &HealthGates,
) -> GateReading {
    let own = (requests > 0).then(|| failures as f64 * 100.0 / requests as f64);
    GateReading {
        time: MicroTime(now().0),
        kind: GateKind::ErrorRate,
        name: String::new(),
        weight_percent: status.green_weight_percent,
        value: breached.or(own).map(round),
        threshold: format!("at most {} %", gates.max_error_rate_percent),
        passed: breached.is_none(),
    }
}

/// A latency gate's reading: percentile `q`'s bucket bound (none past the last bucket).
pub(super) fn latency(
    status: &ClusterSwapStatus,
    q: f64,
    measured_ms: u64,
    bound_ms: u32,
) -> GateReading {
    let over = measured_ms == rotor_traffic::Latencies::OVER;
    GateReading {
        time: MicroTime(now().0),
        kind: GateKind::Latency,
        name: format!("p{}", (q * 100.0).round() as u8),
        weight_percent: status.green_weight_percent,
        value: (!over).then_some(measured_ms as f64),
        threshold: format!("at most {bound_ms} ms"),
        passed: measured_ms <= u64::from(bound_ms),
    }
}

/// The metric gates' last readings in the current step, as their status entries hold them.
pub(super) fn metric(status: &ClusterSwapStatus, gates: &[MetricGate]) -> Vec<GateReading> {
    let Some(step) = status.current_step else {
        return Vec::new();
    };
    status
        .metric_gates
        .iter()
        .filter(|e| e.step == Some(step))
        .filter_map(|e| {
            let gate = gates.iter().find(|g| g.name == e.name)?;
            Some(GateReading {
                time: MicroTime(e.last_evaluated_at.clone()?.0),
                kind: GateKind::Metric,
                name: e.name.clone(),
                weight_percent: status.green_weight_percent,
                value: e
                    .last_value
                    .as_deref()
                    .and_then(|v| v.parse::<f64>().ok())
                    .filter(|v| v.is_finite()),
                threshold: gate.threshold.to_string(),
                passed: e.last_result == Some(MetricGateResult::Pass),
            })
        })
        .collect()
}

/// Records `health` (the health gates' readings) and the metric gates' last readings in the
/// current step into `status.gateReadings`.
pub(super) fn record(
    status: &mut ClusterSwapStatus,
    health: Vec<GateReading>,
    gates: &[MetricGate],
) {
    let metric = metric(status, gates);
    record_readings(&mut status.gate_readings, health.into_iter().chain(metric));
}

/// Four significant decimals: a reading for people and a chart, not a measurement to redo.
fn round(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use rotor_api::{MetricGateStatus, OnInconclusive, Threshold};

    use super::*;

    fn status(weight: u8, step: u32) -> ClusterSwapStatus {
        ClusterSwapStatus {
            green_weight_percent: weight,
            current_step: Some(step),
            ..Default::default()
        }
    }

    #[test]
    fn an_error_rate_reading_says_the_rate_judged() {
        let gates = HealthGates::default();
        let st = status(10, 0);
        let passing = error_rate(&st, 300, 1, None, &gates);
        assert_eq!(passing.value, Some(0.3333));
        assert!(passing.passed);
        assert_eq!(passing.weight_percent, 10);
        let quiet = error_rate(&st, 0, 0, None, &gates);
        assert_eq!(quiet.value, None, "no requests, no rate");
        // A small sample judged over the minimum: the reading is the rate that failed.
        let failing = error_rate(&st, 3, 1, Some(5.0), &gates);
        assert_eq!((failing.value, failing.passed), (Some(5.0), false));
        assert_eq!(
            failing.threshold,
            format!("at most {} %", gates.max_error_rate_percent)
        );
    }

    #[test]
    fn a_latency_reading_past_the_last_bucket_is_not_a_number() {
        let st = status(50, 1);
        let ok = latency(&st, 0.95, 100, 250);
        assert_eq!(
            (ok.name.as_str(), ok.value, ok.passed),
            ("p95", Some(100.0), true)
        );
        let hung = latency(&st, 0.99, rotor_traffic::Latencies::OVER, 250);
        assert_eq!(
            (hung.name.as_str(), hung.value, hung.passed),
            ("p99", None, false)
        );
    }

    #[test]
    fn metric_readings_are_the_current_steps_last_values() {
        let gate = MetricGate {
            name: "errors".into(),
            query: "e".into(),
            threshold: Threshold {
                max: Some(0.01),
                min: None,
            },
            interval_seconds: 10,
            consecutive: 1,
            on_inconclusive: OnInconclusive::Pause,
            prometheus: None,
        };
        let mut st = status(50, 1);
        let entry = |step, value: &str, result| MetricGateStatus {
            step: Some(step),
            last_value: Some(value.into()),
            last_result: Some(result),
            last_evaluated_at: Some(now()),
            ..MetricGateStatus::new("errors")
        };
        st.metric_gates = vec![entry(0, "0.002", MetricGateResult::Pass)];
        assert!(
            metric(&st, std::slice::from_ref(&gate)).is_empty(),
            "an earlier step's reading"
        );
        st.metric_gates = vec![entry(1, "0.2", MetricGateResult::Fail)];
        let read = metric(&st, std::slice::from_ref(&gate));
        assert_eq!(read.len(), 1);
        assert_eq!((read[0].value, read[0].passed), (Some(0.2), false));
        assert_eq!(read[0].threshold, "at most 0.01");
        st.metric_gates = vec![entry(1, "NaN", MetricGateResult::Inconclusive)];
        assert_eq!(
            metric(&st, std::slice::from_ref(&gate))
                .first()
                .and_then(|r| r.value),
            None
        );
    }
}
