//! What every simulated cluster's application served, as Prometheus metrics: the series a
//! metric gate reads from a real Prometheus scraping the simulator (`GET /metrics` on the
//! simulator's own port, [`crate::Sim::router`]).
//!
//! One endpoint for the whole fleet rather than one per traffic address: the application's
//! paths (`/{namespace}/{service}`) are the user's, so a `/metrics` there could collide with a
//! namespace called `metrics`; and one scrape config (one static target) then covers every
//! cluster, those a swap creates included — a target per green would need service discovery.
//! Each series names its cluster twice: label `cluster` is the cloud's name for it (an EKS or
//! GKE cluster's, an AKS resource's: the instance rotor knows, what a gate's `{{green}}` fills
//! in, as real fleets label their series), label `member` the simulator's (the same on the
//! simulator's own cloud; a hash of the account or project and the name on a cloud front).
//! `instance` and `job` are Prometheus' target labels.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A cluster's names, the labels of all its series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SeriesNames {
    member: String,
    cluster: String,
}

impl SeriesNames {
    /// Member `member`, known to its cloud as `cluster`.
    pub fn new(member: &str, cluster: &str) -> Self {
        SeriesNames {
            member: member.to_string(),
            cluster: cluster.to_string(),
        }
    }
}

/// A request's cluster and answer code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    #[prometheus(flatten)]
    names: SeriesNames,
    code: String,
}

/// The fleet's traffic series, shared by every cluster's listener.
pub struct TrafficMetrics {
    registry: Registry,
    requests: Family<CodeLabels, Counter>,
    errors: Family<SeriesNames, Counter>,
    duration: Family<SeriesNames, Histogram>,
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
        let errors = Family::<SeriesNames, Counter>::default();
        registry.register(
            "errors",
            "Application requests a simulated cluster answered 5xx or broke off",
            errors.clone(),
        );
        // 5 ms to 10 s: a fast answer, TrafficSlow's second and the longest delay_ms.
        let duration = Family::<SeriesNames, Histogram>::new_with_constructor(|| {
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
    /// Counts one answered request of the cluster `names` names.
    pub(crate) fn record(&self, names: &SeriesNames, answer: &Answer) {
        self.codes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(names.member.clone())
            .or_default()
            .insert(answer.code);
        self.requests
            .get_or_create(&CodeLabels {
                names: names.clone(),
                code: answer.code.to_string(),
            })
            .inc();
        // Created at zero with the first request, so an error ratio has a denominator's twin.
        let errors = self.errors.get_or_create(names);
        if answer.failed {
            errors.inc();
        }
        self.duration
            .get_or_create(names)
            .observe(answer.took.as_secs_f64());
    }

    /// Forgets a deleted cluster's series (Prometheus marks them stale at its next scrape).
    pub(crate) fn forget(&self, names: &SeriesNames) {
        self.errors.remove(names);
        self.duration.remove(names);
        let codes = self
            .codes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&names.member)
            .unwrap_or_default();
        for code in codes {
            self.requests.remove(&CodeLabels {
                names: names.clone(),
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
    fn answers_are_counted_per_cluster_and_code_under_both_names_and_forgotten_with_it() {
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
        let (green, blue) = (
            SeriesNames::new("eks-3f2a", "prod-green"),
            SeriesNames::new("blue", "blue"),
        );
        m.record(&green, &ok);
        m.record(&green, &failed);
        m.record(&blue, &ok);
        let text = m.encode();
        for line in [
            r#"rotor_sim_traffic_requests_total{member="eks-3f2a",cluster="prod-green",code="200"} 1"#,
            r#"rotor_sim_traffic_requests_total{member="eks-3f2a",cluster="prod-green",code="503"} 1"#,
            r#"rotor_sim_traffic_errors_total{member="eks-3f2a",cluster="prod-green"} 1"#,
            r#"rotor_sim_traffic_errors_total{member="blue",cluster="blue"} 0"#,
            r#"rotor_sim_traffic_request_duration_seconds_count{member="eks-3f2a",cluster="prod-green"} 2"#,
            r#"rotor_sim_traffic_request_duration_seconds_bucket{le="0.005",member="eks-3f2a",cluster="prod-green"} 1"#,
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        m.forget(&green);
        let text = m.encode();
        assert!(!text.contains("prod-green"), "{text}");
        assert!(text.contains(r#"member="blue""#), "{text}");
    }
}
