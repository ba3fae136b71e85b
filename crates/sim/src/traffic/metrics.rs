//! What every simulated cluster's application served, as Prometheus metrics: the series a
//! metric gate reads from a real Prometheus scraping the simulator (`GET /metrics` on the
//! simulator's own port, [`crate::Sim::router`]).
//!
//! One endpoint for the whole fleet rather than one per traffic address: the application's
//! paths (`/{namespace}/{service}`) are the user's, so a `/metrics` there could collide with a
//! namespace called `metrics`; and one scrape config (one static target) then covers every
//! cluster, those a swap creates included — a target per green would need service discovery.
//! Each series names its cluster in label `member` (the member's name, which is the instance
//! name on the simulator's own cloud): `instance` and `job` are Prometheus' target labels.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A request's cluster and answer code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    member: String,
    code: String,
}

/// A request's cluster.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MemberLabels {
    member: String,
}

/// The fleet's traffic series, shared by every cluster's listener.
pub struct TrafficMetrics {
    registry: Registry,
    requests: Family<CodeLabels, Counter>,
    errors: Family<MemberLabels, Counter>,
    duration: Family<MemberLabels, Histogram>,
    /// The codes each member has answered, so that forgetting one member costs what it
    /// answered, not an encoding of the whole fleet's series.
    codes: Mutex<HashMap<String, BTreeSet<u16>>>,
}

/// How a request ended, as its metrics record it.
pub(crate) struct Answer {
    /// The status code sent (a reset connection's is the one in its head).
    pub code: u16,
    /// Answered 5xx, or broken off mid-answer.
    pub failed: bool,
    /// Until the answer's head.
    pub took: Duration,
}

impl Default for TrafficMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("rotor_sim_traffic");
        let requests = Family::<CodeLabels, Counter>::default();
        registry.register(
            "requests",
            "Application requests a simulated cluster answered, by status code",
            requests.clone(),
        );
        let errors = Family::<MemberLabels, Counter>::default();
        registry.register(
            "errors",
            "Application requests a simulated cluster answered 5xx or broke off",
            errors.clone(),
        );
        // 5 ms to 10 s: a fast answer, TrafficSlow's second and the longest delay_ms.
        let duration = Family::<MemberLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 12))
        });
        registry.register(
            "request_duration_seconds",
            "Time to the answer's head of a simulated cluster's application requests",
            duration.clone(),
        );
        TrafficMetrics {
            registry,
            requests,
            errors,
            duration,
            codes: Mutex::default(),
        }
    }
}

impl TrafficMetrics {
    /// Counts one answered request of `member`.
    pub(crate) fn record(&self, member: &str, answer: &Answer) {
        self.codes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(member.to_string())
            .or_default()
            .insert(answer.code);
        let member = member.to_string();
        let code = answer.code.to_string();
        self.requests
            .get_or_create(&CodeLabels {
                member: member.clone(),
                code,
            })
            .inc();
        let labels = MemberLabels { member };
        // Created at zero with the first request, so an error ratio has a denominator's twin.
        let errors = self.errors.get_or_create(&labels);
        if answer.failed {
            errors.inc();
        }
        self.duration
            .get_or_create(&labels)
            .observe(answer.took.as_secs_f64());
    }

    /// Forgets a deleted cluster's series (Prometheus marks them stale at its next scrape).
    pub(crate) fn forget(&self, member: &str) {
        let labels = MemberLabels {
            member: member.to_string(),
        };
        self.errors.remove(&labels);
        self.duration.remove(&labels);
        let codes = self
            .codes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(member)
            .unwrap_or_default();
        for code in codes {
            self.requests.remove(&CodeLabels {
                member: member.to_string(),
                code: code.to_string(),
            });
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_counted_per_member_and_code_and_forgotten_with_the_member() {
        let m = TrafficMetrics::default();
        let ok = Answer {
            code: 200,
            failed: false,
            took: Duration::from_millis(3),
        };
        let failed = Answer {
            code: 503,
            failed: true,
            took: Duration::from_millis(30),
        };
        m.record("green", &ok);
        m.record("green", &failed);
        m.record("blue", &ok);
        let text = m.encode();
        for line in [
            r#"rotor_sim_traffic_requests_total{member="green",code="200"} 1"#,
            r#"rotor_sim_traffic_requests_total{member="green",code="503"} 1"#,
            r#"rotor_sim_traffic_errors_total{member="green"} 1"#,
            r#"rotor_sim_traffic_errors_total{member="blue"} 0"#,
            r#"rotor_sim_traffic_request_duration_seconds_count{member="green"} 2"#,
            r#"rotor_sim_traffic_request_duration_seconds_bucket{le="0.005",member="green"} 1"#,
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        m.forget("green");
        let text = m.encode();
        assert!(!text.contains(r#"member="green""#), "{text}");
        assert!(text.contains(r#"member="blue""#), "{text}");
    }
}
