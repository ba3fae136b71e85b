//! Green's health gates, checked while green carries traffic: its error rate and latency
//! percentiles since the current step began, and its workloads' availability.

use std::fmt;
use std::time::Duration;

use rotor_api::{Cluster, ClusterSwapStatus, GateReading, OnInconclusive, Reason};

use super::Reconcile;
use super::readings;
use super::step::Step;
use crate::{Error, health};

/// What green's gates say.
pub(super) enum Gate {
    Pass,
    /// Cannot tell now (green's API does not answer): do not advance, do not roll back.
    Unknown(Error),
    Fail(GateFailure),
}

/// Why a gate failed: the Event's and the condition's message.
#[derive(Debug, PartialEq)]
pub(super) enum GateFailure {
    /// Green failed too many of the requests it answered in this step.
    ErrorRate {
        green: String,
        failures: u64,
        requests: u64,
        weight: u8,
        rate: f64,
        /// The sample was smaller than this, and counted as this many.
        counted_over: Option<u64>,
        max_rate: f64,
    },
    /// Green answered too slowly in this step.
    Latency {
        green: String,
        /// 95 or 99.
        percentile: u8,
        /// The percentile's bucket bound; `None` past the last bound.
        measured_ms: Option<u64>,
        bound_ms: u32,
        /// Answered requests of the step.
        requests: u64,
        /// Requests green held unanswered for longer than the bound, counted as over it.
        held: u64,
        weight: u8,
    },
    /// Some of green's selected workloads are not available.
    Unavailable {
        green: String,
        available: u32,
        total: u32,
        why: String,
    },
    /// A metric gate read a value beyond its threshold, or (`onInconclusive: Fail`) could not
    /// be judged.
    Metric {
        gate: String,
        /// The query as sent, variables filled in.
        query: String,
        weight: u8,
        /// What it found: the value and the threshold it broke, or why it was inconclusive.
        found: String,
    },
}

impl fmt::Display for GateFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GateFailure::ErrorRate {
                green,
                failures,
                requests,
                weight,
                rate,
                counted_over,
                max_rate,
            } => {
                let over = counted_over
                    .map(|min| format!(" counted over at least {min}"))
                    .unwrap_or_default();
                write!(
                    f,
                    "green {green} failed {failures} of {requests} requests at {weight} % \
                     ({rate:.1} %{over} > {max_rate} %)"
                )
            }
            GateFailure::Latency {
                green,
                percentile,
                measured_ms,
                bound_ms,
                requests,
                held,
                weight,
            } => {
                let measured = match measured_ms {
                    Some(ms) => format!("≤ {ms} ms"),
                    None => format!("over {} ms", rotor_traffic::latency::BUCKET_BOUNDS_MS[15]),
                };
                let held = match held {
                    0 => String::new(),
                    n => format!(" and {n} held unanswered for over {bound_ms} ms"),
                };
                write!(
                    f,
                    "green {green}'s p{percentile} latency over {requests} requests{held} at \
                     {weight} % is {measured} (> {bound_ms} ms)"
                )
            }
            GateFailure::Unavailable {
                green,
                available,
                total,
                why,
            } => write!(
                f,
                "{available}/{total} workloads available in green {green}: {why}"
            ),
            GateFailure::Metric {
                gate,
                query,
                weight,
                found,
            } => write!(
                f,
                "metric gate {gate} failed at {weight} %: {found}; query: {query}"
            ),
        }
    }
}

/// The error rate that breaches `max_rate_percent`, if green's `failures` of `requests` in a
/// step do. A step that saw fewer than `min_requests` is judged as if it had seen that many:
/// on a quiet endpoint a failing green may answer only a handful of requests before the next
/// step, and waiting for a full sample would let it reach 100 %, where nothing can retry its
/// failures on blue. So a few failures among few requests fail the gate (one out of up to
/// `min_requests` does when `max_rate_percent` < 100 / `min_requests`); a larger sample is
/// judged by its own rate.
pub(crate) fn error_rate_breached(
    requests: u64,
    failures: u64,
    min_requests: u64,
    max_rate_percent: f64,
) -> Option<f64> {
    if failures == 0 {
        return None;
    }
    let rate = failures as f64 * 100.0 / requests.max(min_requests).max(1) as f64;
    (rate > max_rate_percent).then_some(rate)
}

/// What one reading of the gates found: the verdict, and the request counts it judged (`None`
/// for a DNS shifter, which sees no requests), for [`Reconcile::undecided`] to judge again.
pub(super) struct Judged {
    pub gate: Gate,
    pub counted: Option<rotor_traffic::BackendStats>,
    /// What the error-rate and latency gates read (the failing reading last), for
    /// `status.gateReadings`.
    pub readings: Vec<GateReading>,
}

impl Reconcile<'_> {
    /// Green's requests and failures since the current step began, with `unanswered` requests
    /// it still holds counted as failures.
    fn step_counts(
        &self,
        status: &ClusterSwapStatus,
        stats: rotor_traffic::BackendStats,
        unanswered: u64,
    ) -> (u64, u64) {
        let step = status.current_step.unwrap_or(u32::MAX);
        let base = self.ctx.swaps.gate_baseline(&self.name, step, stats.green);
        let failures = stats.green.failures.saturating_sub(base.failures) + unanswered;
        // An attempt in flight when the window began fails inside it without being one of its
        // requests: counted as one, so a window never has more failures than requests.
        let requests = stats
            .green
            .requests
            .saturating_sub(base.requests)
            .max(failures);
        (requests, failures)
    }

    /// Green's error rate since the current step began, read, and the failure when over the
    /// threshold.
    fn error_rate_gate(
        &self,
        status: &ClusterSwapStatus,
        green: &str,
        stats: rotor_traffic::BackendStats,
    ) -> (GateReading, Option<GateFailure>) {
        let gates = &self.swap.spec.strategy.health_gates;
        let (requests, failures) = self.step_counts(status, stats, 0);
        let min = self.ctx.settings.min_gate_requests;
        let breached = error_rate_breached(requests, failures, min, gates.max_error_rate_percent);
        let reading = readings::error_rate(status, requests, failures, breached, gates);
        let Some(rate) = breached else {
            return (reading, None);
        };
        let failure = GateFailure::ErrorRate {
            green: green.to_string(),
            failures,
            requests,
            weight: status.green_weight_percent,
            rate,
            counted_over: (requests < min).then_some(min),
            max_rate: gates.max_error_rate_percent,
        };
        (reading, Some(failure))
    }

    /// A hold or a rollback (by `onTooFewRequests`) when the step, otherwise over, saw fewer
    /// requests to green than `minRequests`; `None` when it saw enough or no minimum is set.
    /// Without counts (a DNS shifter) the minimum cannot be met.
    pub(super) fn too_few_requests(
        &self,
        status: &ClusterSwapStatus,
        counted: Option<rotor_traffic::BackendStats>,
    ) -> Result<Option<Step>, Error> {
        let gates = &self.swap.spec.strategy.health_gates;
        let min = u64::from(gates.min_requests);
        let requests = counted.map_or(0, |stats| self.step_counts(status, stats, 0).0);
        if min == 0 || requests >= min {
            return Ok(None);
        }
        let green = self.green(status)?;
        let weight = status.green_weight_percent;
        let why = match counted {
            Some(_) => format!("green {green} answered fewer than {min} requests at {weight} %"),
            None => format!(
                "the traffic layer counts no requests, so green {green} cannot show {min} at \
                 {weight} %"
            ),
        };
        Ok(Some(match gates.on_too_few_requests {
            OnInconclusive::Pause => Step::hold(
                Reason::TooFewRequests,
                format!("{why} (minRequests): the step holds until it has"),
                self.ctx.settings.gate_interval,
            ),
            OnInconclusive::Fail => Step::roll_back(
                Reason::TooFewRequests,
                format!("{why} (minRequests, onTooFewRequests: Fail)"),
            ),
        }))
    }

    /// A wait, if the step cannot end yet: green holds requests it has not answered for
    /// [`Settings::unanswered_after`](crate::Settings::unanswered_after), and counted as
    /// failures with the step's `counted` ones (the gates' reading) they would fail the
    /// error-rate gate. A hanging green shows no failures until the proxy gives up on its
    /// requests; a step that ended before that would give it more traffic (or let blue go) on
    /// no evidence. Held, the step ends once they are answered, or the proxy's timeout turns
    /// them into failures and the gate fails. A green that answered other requests since the
    /// youngest of them was sent is slow on those, not hanging: no wait (its slow requests are
    /// judged when they end, by the latency gate if one is set). A DNS shifter sees no
    /// requests: nothing to wait for.
    pub(super) async fn undecided(
        &self,
        cluster: &Cluster,
        status: &ClusterSwapStatus,
        counted: Option<rotor_traffic::BackendStats>,
    ) -> Result<Option<Step>, Error> {
        let Some(stats) = counted else {
            return Ok(None);
        };
        let (endpoint, shifter) = self.traffic(cluster)?;
        let after = self.ctx.settings.unanswered_after;
        let waiting = match shifter.unanswered(endpoint, after).await {
            Ok(u) if u.green_answering == Some(true) => return Ok(None),
            Ok(u) => u.green,
            Err(rotor_traffic::TrafficError::NoRequestCounts { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if waiting == 0 {
            return Ok(None);
        }
        let (requests, failures) = self.step_counts(status, stats, waiting);
        let gates = &self.swap.spec.strategy.health_gates;
        let min = self.ctx.settings.min_gate_requests;
        if error_rate_breached(requests, failures, min, gates.max_error_rate_percent).is_none() {
            return Ok(None);
        }
        let green = self.green(status)?;
        Ok(Some(Step::wait(
            Reason::GreenRequestsUnanswered,
            format!(
                "green {green} has not answered requests it has held for over {after:?}; the \
                 step ends when they are answered, or fails the gate if the proxy gives up on them"
            ),
            self.ctx.settings.gate_interval,
        )))
    }

    /// Green's latency percentiles since the current step began, when over a bound (see
    /// `HealthGates::latency_bounds`); `Err` when a bound is set and the traffic layer does
    /// not time requests (the gate cannot be judged, so it never passes). Requests green has
    /// held unanswered for longer than a bound count as over it: a hanging green trips the
    /// gate within the bound, not at the proxy's timeout.
    async fn latency_gate(
        &self,
        status: &ClusterSwapStatus,
        green: &str,
        endpoint: &str,
        shifter: &dyn rotor_traffic::TrafficShifter,
        read: &mut Vec<GateReading>,
    ) -> Result<Option<GateFailure>, Error> {
        let gates = &self.swap.spec.strategy.health_gates;
        if gates.latency_bounds().next().is_none() {
            return Ok(None);
        }
        let now = shifter.latencies(endpoint).await?.green;
        let step = status.current_step.unwrap_or(u32::MAX);
        let base = self.ctx.swaps.latency_baseline(&self.name, step, now);
        let seen = now.since(&base);
        for (q, bound_ms) in gates.latency_bounds() {
            let bound = Duration::from_millis(bound_ms.into());
            let held = shifter.unanswered(endpoint, bound).await?.green;
            let judged = seen
                .with_held(bound, held)
                .padded(self.ctx.settings.min_gate_requests);
            let measured = judged.quantile_ms(q).unwrap_or(0);
            read.push(readings::latency(status, q, measured, bound_ms));
            if measured > u64::from(bound_ms) {
                return Ok(Some(GateFailure::Latency {
                    green: green.to_string(),
                    percentile: (q * 100.0).round() as u8,
                    measured_ms: (measured != rotor_traffic::Latencies::OVER).then_some(measured),
                    bound_ms,
                    requests: seen.total(),
                    held,
                    weight: status.green_weight_percent,
                }));
            }
        }
        Ok(None)
    }

    /// Green's health gates: its workloads available, its error rate since the current step
    /// began below the threshold.
    ///
    /// Availability comes from discovery's in-memory summary of green when it is current, and
    /// from a list through green's API otherwise. "Current" is
    /// [`crate::Context::current_summary`]: watched with this swap's selection, synced,
    /// reachable, no watch failing, and heard from within the watchdog's bound
    /// (`silence + probe_timeout`). That bound is what makes a summary safe to act on: a gate
    /// decides whether green keeps its share of live traffic, and a summary kept past it could
    /// describe an instance that stopped answering long ago (a passing gate on stale data
    /// keeps traffic on a dead green; a failing one rolls back a healthy swap). Within it,
    /// discovery has either heard from green or is still inside the window the watchdog itself
    /// gives an instance before calling it unreachable; past it, the gate asks green directly,
    /// and an unanswered read is `Unknown` (hold, do not advance). Events a live connection
    /// fails to deliver are bounded by discovery's periodic resync, not by this check.
    pub(super) async fn gates(
        &self,
        cluster: &Cluster,
        status: &ClusterSwapStatus,
    ) -> Result<Judged, Error> {
        let green = self.green(status)?;
        let (endpoint, shifter) = self.traffic(cluster)?;
        // A DNS shifter sees no requests: the error-rate gate has nothing to read, and the
        // availability gate below is all there is (the docs of `route53` say so).
        let counted = match shifter.backend_stats(endpoint).await {
            Ok(stats) => Some(stats),
            Err(rotor_traffic::TrafficError::NoRequestCounts { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let mut read = Vec::new();
        let failed = counted.and_then(|s| {
            let (reading, failure) = self.error_rate_gate(status, &green, s);
            read.push(reading);
            failure
        });
        let judged = |gate, readings| {
            Ok(Judged {
                gate,
                counted,
                readings,
            })
        };
        if let Some(failure) = failed {
            return judged(Gate::Fail(failure), read);
        }
        let latency = self
            .latency_gate(status, &green, endpoint, shifter.as_ref(), &mut read)
            .await;
        match latency {
            Ok(Some(failure)) => return judged(Gate::Fail(failure), read),
            Ok(None) => {}
            Err(e) => return judged(Gate::Unknown(e), read),
        }
        if !self.swap.spec.strategy.health_gates.require_availability {
            return judged(Gate::Pass, read);
        }
        judged(self.availability_gate(cluster, green).await?, read)
    }

    /// Green's selected workloads all available, from discovery when current, else green's API.
    async fn availability_gate(&self, cluster: &Cluster, green: String) -> Result<Gate, Error> {
        let selection = self.selection(cluster);
        if let Some(summary) = self.ctx.current_summary(&green, &selection.discovery()) {
            if summary.workloads_available < summary.workloads_total {
                return Ok(Gate::Fail(GateFailure::Unavailable {
                    available: summary.workloads_available,
                    total: summary.workloads_total,
                    why: summary.reason.unwrap_or_default(),
                    green,
                }));
            }
            return Ok(Gate::Pass);
        }
        let checked = async {
            let client = self.member(cluster, &green).await?;
            health::workloads(&client, &green, &selection).await
        }
        .await;
        match checked {
            Ok(w) if !w.all_available() => Ok(Gate::Fail(GateFailure::Unavailable {
                available: w.available,
                total: w.total,
                why: w.holding_up.join(", "),
                green,
            })),
            Ok(_) => Ok(Gate::Pass),
            Err(e) => {
                self.ctx.members.forget(&green);
                Ok(Gate::Unknown(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_among_few_requests_fails_the_gate() {
        // No failure: never a breach, however few or many requests.
        assert_eq!(error_rate_breached(0, 0, 20, 1.0), None);
        assert_eq!(error_rate_breached(3, 0, 20, 1.0), None);
        // One failure in the only request of a quiet step: judged over 20 → 5 % > 1 %.
        assert_eq!(error_rate_breached(1, 1, 20, 1.0), Some(5.0));
        // Four attempts of one request retried on green itself, all failed.
        assert_eq!(error_rate_breached(4, 4, 20, 1.0), Some(20.0));
        // A tolerant gate lets one failure in a small sample pass (1 of ≥ 20 = 5 % ≤ 10 %).
        assert_eq!(error_rate_breached(2, 1, 20, 10.0), None);
        assert_eq!(error_rate_breached(5, 3, 20, 10.0), Some(15.0));
        // A full sample is judged by its own rate.
        assert_eq!(error_rate_breached(1000, 10, 20, 1.0), None);
        assert_eq!(error_rate_breached(1000, 11, 20, 1.0), Some(1.1));
        // min_requests 0 still never divides by zero.
        assert_eq!(error_rate_breached(0, 1, 0, 1.0), Some(100.0));
    }

    #[test]
    fn gate_failures_say_what_was_counted() {
        let small = GateFailure::ErrorRate {
            green: "g".into(),
            failures: 1,
            requests: 3,
            weight: 10,
            rate: 5.0,
            counted_over: Some(20),
            max_rate: 1.0,
        };
        assert_eq!(
            small.to_string(),
            "green g failed 1 of 3 requests at 10 % (5.0 % counted over at least 20 > 1 %)"
        );
        let slow = GateFailure::Latency {
            green: "g".into(),
            percentile: 99,
            measured_ms: Some(1_500),
            bound_ms: 500,
            requests: 40,
            held: 0,
            weight: 50,
        };
        assert_eq!(
            slow.to_string(),
            "green g's p99 latency over 40 requests at 50 % is ≤ 1500 ms (> 500 ms)"
        );
        let hung = GateFailure::Latency {
            green: "g".into(),
            percentile: 99,
            measured_ms: None,
            bound_ms: 500,
            requests: 40,
            held: 0,
            weight: 50,
        };
        assert!(hung.to_string().contains("is over 10000 ms"), "{hung}");
        let holding = GateFailure::Latency {
            green: "g".into(),
            percentile: 99,
            measured_ms: Some(600),
            bound_ms: 500,
            requests: 30,
            held: 2,
            weight: 50,
        };
        assert_eq!(
            holding.to_string(),
            "green g's p99 latency over 30 requests and 2 held unanswered for over 500 ms at \
             50 % is ≤ 600 ms (> 500 ms)"
        );
        let down = GateFailure::Unavailable {
            green: "g".into(),
            available: 1,
            total: 2,
            why: "Deployment a/web: 0/2 ready".into(),
        };
        assert_eq!(
            down.to_string(),
            "1/2 workloads available in green g: Deployment a/web: 0/2 ready"
        );
        let metric = GateFailure::Metric {
            gate: "errors".into(),
            query: "max(e{i=\"g\"})".into(),
            weight: 50,
            found: "0.2 is beyond the threshold (at most 0.01)".into(),
        };
        assert_eq!(
            metric.to_string(),
            "metric gate errors failed at 50 %: 0.2 is beyond the threshold (at most 0.01); \
             query: max(e{i=\"g\"})"
        );
    }
}
