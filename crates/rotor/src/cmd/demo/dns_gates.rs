//! The metric gates of `rotor demo --traffic dns`. A DNS shifter counts no requests, so rotor's
//! built-in gates see none of green's; as a fleet behind DNS gates on its applications' own
//! metrics, the demo runs a Prometheus scraping the simulator's series of what each cluster's
//! application answered, and gates every swap on green's error ratio (and on its p95 latency,
//! given `--max-latency-p95-ms`). Those series carry the cloud's name for each cluster, which is
//! the instance a gate's `{{green}}` names.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rotor::rehearsal::prometheus::{PrometheusProcess, find_prometheus};
use rotor_api::{MetricGate, OnInconclusive, PrometheusSource, Threshold};
use rotor_sim::Fault;

/// The window of the gates' rates: five scrapes, so one late scrape leaves the rate defined.
const RATE_WINDOW: &str = "5s";
/// Seconds between two evaluations of a gate.
const GATE_INTERVAL_S: u32 = 1;
/// Passes in a row a step needs: the third evaluation is two intervals after the step began, so
/// a fault set as a step begins has been scraped (every second) before the step can end.
const GATE_CONSECUTIVE: u32 = 3;
/// How long the demo's Prometheus may take to be ready.
const PROMETHEUS_READY: Duration = Duration::from_secs(30);

/// The Prometheus binary the gates need, when one is installed (None: the demo runs ungated,
/// which only `--inject none` or `hook-deny` may); checked before anything starts.
pub(super) fn prometheus_for(
    fault: Option<Fault>,
    inject: &str,
    max_latency_p95_ms: Option<u32>,
) -> anyhow::Result<Option<PathBuf>> {
    let binary = find_prometheus();
    check_fault(fault, inject, max_latency_p95_ms, binary.is_some())?;
    Ok(binary)
}

/// Refuses a fault the gates cannot see: any, without a Prometheus to read; a hang, whose
/// requests are never answered; slowness, without a latency bound.
fn check_fault(
    fault: Option<Fault>,
    inject: &str,
    max_latency_p95_ms: Option<u32>,
    have_prometheus: bool,
) -> anyhow::Result<()> {
    let Some(fault) = fault else {
        return Ok(());
    };
    anyhow::ensure!(
        have_prometheus,
        "--inject {inject} under --traffic dns: the gates read green's requests from a \
         Prometheus (DNS counts none), and prometheus is not installed (set ROTOR_PROMETHEUS, \
         or use --inject none or hook-deny)"
    );
    anyhow::ensure!(
        fault != Fault::TrafficHangs,
        "--inject {inject} under --traffic dns: a hung green answers nothing, so its series \
         record neither errors nor latency and no gate would see the hang (behind DNS no proxy \
         times green out); use green-unhealthy, green-resets or green-slow"
    );
    anyhow::ensure!(
        fault != Fault::TrafficSlow || max_latency_p95_ms.is_some(),
        "--inject {inject} under --traffic dns needs --max-latency-p95-ms: the latency gate \
         is off without it"
    );
    Ok(())
}

/// A Prometheus scraping `sim` (the simulator's own address) and the gates reading it.
pub(super) struct DnsGates {
    pub(super) prometheus: PrometheusProcess,
    pub(super) gates: Vec<MetricGate>,
}

impl DnsGates {
    pub(super) async fn start(
        binary: &std::path::Path,
        sim: SocketAddr,
        max_latency_p95_ms: Option<u32>,
    ) -> anyhow::Result<Self> {
        let prometheus = PrometheusProcess::start(binary, &[sim], PROMETHEUS_READY).await?;
        let gates = gates(&prometheus.url, max_latency_p95_ms);
        Ok(DnsGates { prometheus, gates })
    }
}

/// Green's error ratio, at most 1 %, and its p95 latency when bounded.
fn gates(url: &str, max_latency_p95_ms: Option<u32>) -> Vec<MetricGate> {
    let green = r#"cluster="{{green}}""#;
    let errors = format!(
        "sum(rate(rotor_sim_traffic_errors_total{{{green}}}[{RATE_WINDOW}])) \
         / sum(rate(rotor_sim_traffic_requests_total{{{green}}}[{RATE_WINDOW}]))"
    );
    let mut gates = vec![gate(url, "green-errors", errors, at_most(0.01))];
    if let Some(ms) = max_latency_p95_ms {
        let p95 = format!(
            "histogram_quantile(0.95, sum by (le) \
             (rate(rotor_sim_traffic_request_duration_seconds_bucket{{{green}}}[{RATE_WINDOW}])))"
        );
        let bound = at_most(f64::from(ms) / 1000.0);
        gates.push(gate(url, "green-latency-p95", p95, bound));
    }
    gates
}

fn at_most(max: f64) -> Threshold {
    Threshold {
        max: Some(max),
        min: None,
    }
}

/// A gate read every second from the demo's Prometheus. No data (green has answered nothing
/// yet, or nothing since the window began) holds the step: it is never a pass.
fn gate(url: &str, name: &str, query: String, threshold: Threshold) -> MetricGate {
    MetricGate {
        name: name.into(),
        query,
        threshold,
        interval_seconds: GATE_INTERVAL_S,
        consecutive: GATE_CONSECUTIVE,
        on_inconclusive: OnInconclusive::Pause,
        prometheus: Some(PrometheusSource { url: url.into() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_read_greens_own_series_and_latency_only_when_bounded() {
        let plain = gates("http://127.0.0.1:9090", None);
        assert_eq!(plain.len(), 1);
        assert!(
            plain[0]
                .query
                .contains(r#"rotor_sim_traffic_errors_total{cluster="{{green}}"}[5s]"#)
        );
        assert_eq!(plain[0].threshold.max, Some(0.01));
        let both = gates("http://127.0.0.1:9090", Some(800));
        assert_eq!(both[1].name, "green-latency-p95");
        assert_eq!(both[1].threshold.max, Some(0.8));
        for g in &both {
            let parsed = rotor_api::metric_gate::parse_query(&g.query);
            assert!(parsed.is_ok(), "{}: {parsed:?}", g.query);
        }
    }

    #[test]
    fn faults_no_gate_sees_are_refused_before_anything_starts() {
        let refused = |fault, inject, p95, have| {
            check_fault(Some(fault), inject, p95, have)
                .expect_err("refused")
                .to_string()
        };
        let e = refused(Fault::TrafficErrors, "green-unhealthy", None, false);
        assert!(e.contains("prometheus is not installed"), "{e}");
        let e = refused(Fault::TrafficHangs, "green-hangs", None, true);
        assert!(e.contains("a hung green answers nothing"), "{e}");
        let e = refused(Fault::TrafficSlow, "green-slow", None, true);
        assert!(e.contains("needs --max-latency-p95-ms"), "{e}");
        for (fault, p95) in [
            (Fault::TrafficErrors, None),
            (Fault::TrafficResets, None),
            (Fault::TrafficSlow, Some(800)),
        ] {
            assert!(
                check_fault(Some(fault), "x", p95, true).is_ok(),
                "{fault:?}"
            );
        }
        assert!(check_fault(None, "none", None, false).is_ok());
    }
}
