//! The metric gates' decisions, pure: what one evaluation's samples say against a threshold,
//! how it counts in the gate's status, when the gate is due again, and what the gates together
//! let the traffic step do. No I/O, no clock: the caller passes what it read and when.

use std::fmt;
use std::time::Duration;

use rotor_api::metric_gate::{
    MetricGate, MetricGateResult, MetricGateStatus, OnInconclusive, TemplateError, Threshold,
};

use crate::Time;
use crate::prometheus::{QueryError, Sample};

/// What one evaluation read.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Reading {
    /// Every series within the threshold; `closest` is the one nearest to a bound.
    Within { closest: Sample },
    /// A series beyond the threshold (the first such).
    Beyond { sample: Sample },
    /// Nothing that can be judged: never a pass.
    Inconclusive(Inconclusive),
}

/// Why an evaluation could not judge the gate.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Inconclusive {
    /// The query answered no series.
    NoData,
    /// A series' value is NaN (a ratio over no requests is 0/0).
    NotANumber { series: String },
    /// The query was not answered.
    Query(QueryError),
    /// The query cannot be filled in (the Cluster lacks a label it names).
    Template(TemplateError),
}

impl fmt::Display for Inconclusive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Inconclusive::NoData => f.write_str("the query returned no data"),
            Inconclusive::NotANumber { series } => write!(
                f,
                "the query's value{} is NaN (a ratio over no requests is 0/0)",
                for_series(series)
            ),
            Inconclusive::Query(e) => write!(f, "the query failed: {e}"),
            Inconclusive::Template(e) => write!(f, "the query cannot be filled in: {e}"),
        }
    }
}

fn for_series(series: &str) -> String {
    if series.is_empty() {
        String::new()
    } else {
        format!(" for {series}")
    }
}

impl Reading {
    pub(crate) fn result(&self) -> MetricGateResult {
        match self {
            Reading::Within { .. } => MetricGateResult::Pass,
            Reading::Beyond { .. } => MetricGateResult::Fail,
            Reading::Inconclusive(_) => MetricGateResult::Inconclusive,
        }
    }

    /// The value that decided, as Prometheus wrote it.
    fn value(&self) -> Option<&str> {
        match self {
            Reading::Within { closest: s } | Reading::Beyond { sample: s } => Some(&s.raw),
            Reading::Inconclusive(_) => None,
        }
    }

    /// For the gate's status: what the evaluation found, for people.
    fn describe(&self, threshold: &Threshold) -> String {
        match self {
            Reading::Within { closest: s } => format!(
                "{}{} is within the threshold ({threshold})",
                s.raw,
                for_series(&s.series())
            ),
            Reading::Beyond { sample: s } => format!(
                "{}{} is beyond the threshold ({threshold})",
                s.raw,
                for_series(&s.series())
            ),
            Reading::Inconclusive(why) => why.to_string(),
        }
    }
}

/// What `samples` say against `threshold`: every series must keep it; none, or a NaN among
/// those that keep it, is inconclusive.
pub(crate) fn judge(samples: Vec<Sample>, threshold: &Threshold) -> Reading {
    if let Some(beyond) = samples
        .iter()
        .find(|s| !s.value.is_nan() && !threshold.holds(s.value))
    {
        return Reading::Beyond {
            sample: beyond.clone(),
        };
    }
    if let Some(nan) = samples.iter().find(|s| s.value.is_nan()) {
        return Reading::Inconclusive(Inconclusive::NotANumber {
            series: nan.series(),
        });
    }
    let closest = samples
        .into_iter()
        .min_by(|a, b| margin(a.value, threshold).total_cmp(&margin(b.value, threshold)));
    match closest {
        Some(closest) => Reading::Within { closest },
        None => Reading::Inconclusive(Inconclusive::NoData),
    }
}

/// How far `value` is from the nearer bound it keeps.
fn margin(value: f64, threshold: &Threshold) -> f64 {
    let to_max = threshold.max.map_or(f64::INFINITY, |max| max - value);
    let to_min = threshold.min.map_or(f64::INFINITY, |min| value - min);
    to_max.min(to_min)
}

/// Records one evaluation in the gate's status: the passes in a row count within `step` only
/// and start over on anything but a pass. True when this evaluation completed the gate's
/// `consecutive` passes (once per step).
pub(crate) fn record(
    entry: &mut MetricGateStatus,
    gate: &MetricGate,
    step: u32,
    reading: &Reading,
    at: Time,
) -> bool {
    if entry.step != Some(step) {
        entry.step = Some(step);
        entry.consecutive_passes = 0;
    }
    entry.evaluations += 1;
    entry.last_result = Some(reading.result());
    entry.last_value = reading.value().map(str::to_string);
    entry.last_evaluated_at = Some(at);
    entry.message = reading.describe(&gate.threshold);
    if reading.result() != MetricGateResult::Pass {
        entry.consecutive_passes = 0;
        return false;
    }
    entry.consecutive_passes = entry.consecutive_passes.saturating_add(1);
    entry.consecutive_passes == gate.consecutive
}

/// How long until `gate` is due in `step`, given its status and how long ago it was last
/// evaluated (`since_last`, None when unknown): at once in a step it has not been read in.
pub(crate) fn due_in(
    gate: &MetricGate,
    entry: Option<&MetricGateStatus>,
    step: u32,
    since_last: Option<Duration>,
) -> Duration {
    match (entry, since_last) {
        (Some(e), Some(elapsed)) if e.step == Some(step) => gate.interval().saturating_sub(elapsed),
        _ => Duration::ZERO,
    }
}

/// A gate that fails the swap with this evaluation: a value beyond its threshold, or an
/// inconclusive one under `onInconclusive: Fail`.
pub(crate) fn fails(gate: &MetricGate, reading: &Reading) -> bool {
    match reading {
        Reading::Beyond { .. } => true,
        Reading::Inconclusive(_) => gate.on_inconclusive == OnInconclusive::Fail,
        Reading::Within { .. } => false,
    }
}

/// What the metric gates let the current step do, from their status.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Verdict {
    /// Every gate has its passes in this step.
    Passed,
    /// Some gate still needs passes.
    Pending,
    /// `gate`'s last evaluation in this step was inconclusive (`onInconclusive: Pause`): the
    /// step holds, saying `why`.
    Held { gate: String, why: String },
}

/// The verdict of `gates` in `step` from their `statuses`. A gate not yet read in the step
/// is pending.
pub(crate) fn verdict(gates: &[MetricGate], statuses: &[MetricGateStatus], step: u32) -> Verdict {
    let mut pending = false;
    for gate in gates {
        let entry = statuses
            .iter()
            .find(|e| e.name == gate.name && e.step == Some(step));
        let Some(entry) = entry else {
            pending = true;
            continue;
        };
        if entry.last_result == Some(MetricGateResult::Inconclusive) {
            return Verdict::Held {
                gate: gate.name.clone(),
                why: entry.message.clone(),
            };
        }
        pending |= entry.consecutive_passes < gate.consecutive;
    }
    if pending {
        Verdict::Pending
    } else {
        Verdict::Passed
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn gate(consecutive: u32, on_inconclusive: OnInconclusive) -> MetricGate {
        MetricGate {
            name: "errors".into(),
            query: "e".into(),
            threshold: Threshold {
                max: Some(0.01),
                min: None,
            },
            interval_seconds: 10,
            consecutive,
            on_inconclusive,
            prometheus: None,
        }
    }

    fn sample(instance: &str, value: f64) -> Sample {
        Sample {
            labels: BTreeMap::from([("instance".to_string(), instance.to_string())]),
            value,
            raw: if value.is_nan() {
                "NaN".into()
            } else {
                value.to_string()
            },
        }
    }

    fn at() -> Time {
        crate::now()
    }

    #[test]
    fn every_series_must_keep_the_threshold_and_no_data_is_never_a_pass() {
        let t = gate(1, OnInconclusive::Pause).threshold;
        let within = judge(vec![sample("a", 0.001), sample("b", 0.009)], &t);
        // The series nearest to the bound is the one reported.
        assert_eq!(
            within,
            Reading::Within {
                closest: sample("b", 0.009)
            }
        );
        let beyond = judge(vec![sample("a", 0.001), sample("b", 0.5)], &t);
        assert_eq!(
            beyond,
            Reading::Beyond {
                sample: sample("b", 0.5)
            }
        );
        assert_eq!(
            judge(vec![], &t),
            Reading::Inconclusive(Inconclusive::NoData)
        );
        // NaN never passes; a value beyond the bound still fails beside it.
        let nan = judge(vec![sample("a", 0.001), sample("b", f64::NAN)], &t);
        assert_eq!(nan.result(), MetricGateResult::Inconclusive);
        assert!(
            nan.describe(&t).contains(r#"for {instance="b"} is NaN"#),
            "{nan:?}"
        );
        let both = judge(vec![sample("a", f64::NAN), sample("b", 1.0)], &t);
        assert_eq!(both.result(), MetricGateResult::Fail);
        // +Inf is beyond a max; a lower bound judges the smallest margin.
        assert_eq!(
            judge(vec![sample("a", f64::INFINITY)], &t).result(),
            MetricGateResult::Fail
        );
        let floor = Threshold {
            max: None,
            min: Some(0.9),
        };
        assert_eq!(
            judge(vec![sample("a", 0.99), sample("b", 0.95)], &floor),
            Reading::Within {
                closest: sample("b", 0.95)
            }
        );
    }

    #[test]
    fn passes_count_in_a_row_within_a_step_and_complete_once() {
        let g = gate(3, OnInconclusive::Pause);
        let mut e = MetricGateStatus::new("errors");
        let pass = judge(vec![sample("a", 0.001)], &g.threshold);
        let none = Reading::Inconclusive(Inconclusive::NoData);
        assert!(!record(&mut e, &g, 0, &pass, at()));
        assert!(!record(&mut e, &g, 0, &pass, at()));
        // Inconclusive starts the count over.
        assert!(!record(&mut e, &g, 0, &none, at()));
        assert_eq!(e.consecutive_passes, 0);
        assert_eq!(e.last_value, None);
        assert_eq!(e.message, "the query returned no data");
        assert!(!record(&mut e, &g, 0, &pass, at()));
        assert!(!record(&mut e, &g, 0, &pass, at()));
        assert!(record(&mut e, &g, 0, &pass, at()), "the third in a row");
        assert!(!record(&mut e, &g, 0, &pass, at()), "completed once");
        assert_eq!(e.consecutive_passes, 4);
        // A new step counts from zero; evaluations count over the swap.
        assert!(!record(&mut e, &g, 1, &pass, at()));
        assert_eq!(
            (e.step, e.consecutive_passes, e.evaluations),
            (Some(1), 1, 8)
        );
        assert_eq!(e.last_value.as_deref(), Some("0.001"));
        assert_eq!(e.last_result, Some(MetricGateResult::Pass));
    }

    #[test]
    fn a_gate_is_due_at_once_in_a_new_step_then_every_interval() {
        let g = gate(3, OnInconclusive::Pause);
        let mut e = MetricGateStatus::new("errors");
        assert_eq!(due_in(&g, None, 0, None), Duration::ZERO);
        e.step = Some(0);
        let s = Duration::from_secs;
        assert_eq!(due_in(&g, Some(&e), 0, Some(s(4))), s(6));
        assert_eq!(due_in(&g, Some(&e), 0, Some(s(12))), Duration::ZERO);
        // Read in the step before: due now. Unknown when (another process read it): due now.
        assert_eq!(due_in(&g, Some(&e), 1, Some(s(1))), Duration::ZERO);
        assert_eq!(due_in(&g, Some(&e), 0, None), Duration::ZERO);
    }

    #[test]
    fn inconclusive_holds_or_fails_by_policy() {
        let none = Reading::Inconclusive(Inconclusive::NoData);
        assert!(!fails(&gate(1, OnInconclusive::Pause), &none));
        assert!(fails(&gate(1, OnInconclusive::Fail), &none));
        let beyond = Reading::Beyond {
            sample: sample("a", 1.0),
        };
        assert!(fails(&gate(1, OnInconclusive::Pause), &beyond));
    }

    #[test]
    fn the_step_ends_only_when_every_gate_has_its_passes_in_it() {
        let a = gate(2, OnInconclusive::Pause);
        let b = MetricGate {
            name: "latency".into(),
            ..gate(1, OnInconclusive::Pause)
        };
        let gates = [a.clone(), b.clone()];
        let pass = judge(vec![sample("x", 0.001)], &a.threshold);
        let mut ea = MetricGateStatus::new("errors");
        let mut eb = MetricGateStatus::new("latency");
        assert_eq!(verdict(&gates, &[], 0), Verdict::Pending);
        record(&mut ea, &a, 0, &pass, at());
        record(&mut eb, &b, 0, &pass, at());
        assert_eq!(
            verdict(&gates, &[ea.clone(), eb.clone()], 0),
            Verdict::Pending
        );
        record(&mut ea, &a, 0, &pass, at());
        assert_eq!(
            verdict(&gates, &[ea.clone(), eb.clone()], 0),
            Verdict::Passed
        );
        // Passes of the step before do not count in the next.
        assert_eq!(
            verdict(&gates, &[ea.clone(), eb.clone()], 1),
            Verdict::Pending
        );
        // An inconclusive gate holds the step, saying why.
        record(
            &mut eb,
            &b,
            0,
            &Reading::Inconclusive(Inconclusive::NoData),
            at(),
        );
        assert_eq!(
            verdict(&gates, &[ea, eb], 0),
            Verdict::Held {
                gate: "latency".into(),
                why: "the query returned no data".into()
            }
        );
    }
}
