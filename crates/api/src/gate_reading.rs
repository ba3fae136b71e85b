//! `status.gateReadings`: what a swap's gates read while green carried traffic, passing
//! readings as well as the failing one, so a person (and the dashboard's chart) can see how
//! close green came to a threshold over time, not only the reading that rolled it back.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Readings a swap's status keeps, the oldest dropped first. A step's end records at most one
/// error rate, two latency percentiles and ten metric gates (13); 64 hold the last four or
/// more steps of any strategy (all of a short one), about 10 KB at most in status.
pub const MAX_GATE_READINGS: usize = 64;

closed_enum! {
    /// Which gate a reading is of.
    pub enum GateKind {
        /// Green's failed share of its requests in the step, in percent
        /// (`healthGates.maxErrorRatePercent`).
        ErrorRate = "ErrorRate",
        /// A latency percentile of green's requests in the step, in milliseconds
        /// (`healthGates.maxLatencyP95Ms`, `maxLatencyP99Ms`); `name` says which.
        Latency = "Latency",
        /// A metric gate's value (`healthGates.metricGates`); `name` is the gate's.
        Metric = "Metric",
    }
}

/// One gate's reading at one moment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GateReading {
    /// When it was read, in microseconds as Events' `eventTime` (the chart puts readings
    /// beside the traffic steps' Events; whole seconds would misplace them).
    pub time: MicroTime,
    /// The gate.
    pub kind: GateKind,
    /// `p95` or `p99` for a latency gate, the gate's name for a metric gate; empty for the
    /// error rate.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Green's share of the traffic then, in percent.
    #[schemars(range(max = 100))]
    pub weight_percent: u8,
    /// What was read: percent, milliseconds, or the metric's unit. Absent when it is not a
    /// number (a metric's NaN, a latency past the last bucket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The bound in words, e.g. `at most 1 %`, `at most 250 ms`, `between 0 and 0.01`.
    pub threshold: String,
    /// Whether the reading kept the bound.
    pub passed: bool,
}

/// Appends `new` to `readings`, dropping the oldest beyond [`MAX_GATE_READINGS`].
pub fn record_readings(
    readings: &mut Vec<GateReading>,
    new: impl IntoIterator<Item = GateReading>,
) {
    readings.extend(new);
    let over = readings.len().saturating_sub(MAX_GATE_READINGS);
    readings.drain(..over);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(i: u8) -> GateReading {
        GateReading {
            time: MicroTime(jiff::Timestamp::UNIX_EPOCH),
            kind: GateKind::ErrorRate,
            name: String::new(),
            weight_percent: i,
            value: Some(0.5),
            threshold: "at most 1 %".into(),
            passed: true,
        }
    }

    #[test]
    fn keeps_the_newest_readings_within_the_bound() {
        let mut kept = Vec::new();
        record_readings(&mut kept, (0..50).map(reading));
        record_readings(&mut kept, (50..80).map(reading));
        assert_eq!(kept.len(), MAX_GATE_READINGS);
        assert_eq!(kept[0].weight_percent, 80 - MAX_GATE_READINGS as u8);
        assert_eq!(kept.last().map(|r| r.weight_percent), Some(79));
    }
}
