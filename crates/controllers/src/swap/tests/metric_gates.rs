//! Metric gates decided step by step against a real Prometheus (started per test, scraping an
//! exporter whose values the test sets): a gate within its threshold lets the step end after
//! its passes in a row, a value beyond it rolls back naming the gate, no data holds the step
//! until data appears, and an unanswered or refused query is never a pass.

use std::time::{Duration, Instant};

use k8s_openapi::api::events::v1::Event;
use kube::api::Api;
use rotor_api::{
    ClusterSwap, ConditionType, MetricGate, MetricGateResult, OnInconclusive, Phase,
    PrometheusSource, Reason, SwapStrategy, Threshold, find_condition,
};
use rotor_test_support::prometheus::{self, Exporter, PrometheusProcess};
use rotor_traffic::{TrafficShifter, Weights};

use super::super::step::Step;
use super::{BLUE, Harness, harness, status_in, strategy};

/// The series the gates read: the swap's Cluster and green, as the exporter serves it.
const SERIES: &str = r#"rotor_test_ratio{cluster="prod-a",green="prod-a-green"}"#;
/// The gates' query: the same series, named through the template's variables.
const QUERY: &str = r#"rotor_test_ratio{cluster="{{cluster}}",green="{{green}}"}"#;
/// How long anything a test waits for may take.
const LIMIT: Duration = Duration::from_secs(30);

fn gate(url: &str, consecutive: u32, on_inconclusive: OnInconclusive) -> MetricGate {
    MetricGate {
        name: "ratio".into(),
        query: QUERY.into(),
        threshold: Threshold {
            max: Some(0.01),
            min: None,
        },
        interval_seconds: 1,
        consecutive,
        on_inconclusive,
        prometheus: Some(PrometheusSource { url: url.into() }),
    }
}

/// Two steps, no bake: only the metric gate keeps a step from ending.
fn gated(gate: MetricGate) -> SwapStrategy {
    let mut s = strategy(vec![50, 100]);
    s.health_gates.metric_gates = vec![gate];
    s
}

/// An exporter serving `value` for the swap's green (nothing when None), and a Prometheus that
/// has scraped it.
async fn prometheus_reading(value: Option<f64>) -> (Exporter, PrometheusProcess) {
    let exporter = Exporter::start().await.expect("exporter");
    // A series of another cluster, so the target is up whatever the test reads.
    exporter.set(r#"rotor_test_ratio{cluster="other",green="x"}"#, 1.0);
    if let Some(v) = value {
        exporter.set(SERIES, v);
    }
    let prometheus = prometheus::for_test(&exporter).await;
    let want = value.map(|v| v.to_string());
    prometheus.wait_for(SERIES, want.as_deref(), LIMIT).await;
    (exporter, prometheus)
}

impl Harness {
    /// Steps `name` until `done` holds for it (each step a whole reconcile), within [`LIMIT`].
    async fn step_while_not(&self, name: &str, done: impl Fn(&ClusterSwap) -> bool) -> ClusterSwap {
        let deadline = Instant::now() + LIMIT;
        loop {
            let swap = self.step(name).await;
            if done(&swap) {
                return swap;
            }
            assert!(
                Instant::now() < deadline,
                "{name} not there within {LIMIT:?}: {:?}",
                swap.status
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The Events on the swaps: (reason, Warning?, note), once every recorded one was posted.
    async fn events(&self) -> Vec<(String, bool, String)> {
        assert!(self.ctx.recorder.flush(LIMIT).await, "events posted");
        let events: Api<Event> = Api::all(self.client.clone());
        let list = events.list(&Default::default()).await.expect("events");
        list.items
            .into_iter()
            .map(|e| {
                (
                    e.reason.unwrap_or_default(),
                    e.type_.as_deref() == Some("Warning"),
                    e.note.unwrap_or_default(),
                )
            })
            .collect()
    }
}

fn step_of(swap: &ClusterSwap) -> Option<u32> {
    swap.status.as_ref().and_then(|s| s.current_step)
}

fn gate_status(swap: &ClusterSwap) -> rotor_api::MetricGateStatus {
    swap.status
        .as_ref()
        .and_then(|s| s.metric_gates.first().cloned())
        .expect("the gate's status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_within_its_threshold_ends_the_step_after_its_passes_in_a_row() {
    let h = harness(Duration::from_secs(3600)).await;
    let (_exporter, prometheus) = prometheus_reading(Some(0.001)).await;
    let g = gate(&prometheus.url, 2, OnInconclusive::Pause);
    h.swap("s", gated(g), status_in(Phase::ShiftingTraffic))
        .await;
    assert_eq!(
        step_of(&h.step("s").await),
        Some(0),
        "the first step applied"
    );
    // The first evaluation passes, in status; the step does not end on one pass.
    let swap = h.step("s").await;
    assert_eq!(step_of(&swap), Some(0));
    let seen = gate_status(&swap);
    assert_eq!(
        (seen.step, seen.consecutive_passes, seen.evaluations),
        (Some(0), 1, 1)
    );
    assert_eq!(seen.last_result, Some(MetricGateResult::Pass));
    assert_eq!(seen.last_value.as_deref(), Some("0.001"));
    assert!(
        seen.message
            .contains("is within the threshold (at most 0.01)"),
        "{seen:?}"
    );
    // The second, an interval later, ends it.
    let swap = h.step_while_not("s", |s| step_of(s) == Some(1)).await;
    assert_eq!(
        h.shifter.weights(BLUE).await.expect("weights"),
        Weights::green(100).expect("100")
    );
    assert_eq!(
        gate_status(&swap).evaluations,
        2,
        "one evaluation per interval"
    );
    let passed = h
        .events()
        .await
        .into_iter()
        .find(|(reason, _, _)| reason == "MetricGatePassed")
        .expect("a MetricGatePassed Event");
    assert!(
        passed
            .2
            .starts_with("metric gate ratio passed 2 evaluations in a row at 50 %; last: 0.001"),
        "{passed:?}"
    );
    let metrics = h.ctx.metrics.encode();
    assert!(
        metrics.contains(r#"rotor_metric_gate_evaluations_total{result="Pass"} 2"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_beyond_the_threshold_rolls_back_naming_gate_query_value_and_threshold() {
    let h = harness(Duration::from_secs(3600)).await;
    let (_exporter, prometheus) = prometheus_reading(Some(0.25)).await;
    let g = gate(&prometheus.url, 3, OnInconclusive::Pause);
    h.swap("s", gated(g), status_in(Phase::ShiftingTraffic))
        .await;
    h.step("s").await;
    let (step, status) = h.decide(&h.fresh_swap("s").await).await;
    let Step::RollBack {
        reason: Reason::MetricGateFailed,
        message,
    } = &step
    else {
        panic!("the gate rolls back, not {step:?}");
    };
    for part in [
        "metric gate ratio failed at 50 %: 0.25",
        r#"green="prod-a-green""#,
        "is beyond the threshold (at most 0.01)",
        r#"query: rotor_test_ratio{cluster="prod-a",green="prod-a-green"}"#,
    ] {
        assert!(message.contains(part), "{part:?} in {message}");
    }
    assert_eq!(
        status.metric_gates[0].last_result,
        Some(MetricGateResult::Fail)
    );
    // Carried out: all traffic on blue, RollingBack with the gate's message.
    let status = h.step("s").await.status.expect("status");
    assert_eq!(status.phase, Phase::RollingBack);
    assert_eq!(
        h.shifter.weights(BLUE).await.expect("weights"),
        Weights::all_blue()
    );
    let rollback = status.history.last().expect("a transition");
    assert_eq!(rollback.reason, Reason::MetricGateFailed);
    assert!(
        rollback.message.contains("metric gate ratio"),
        "{rollback:?}"
    );
    assert_eq!(status.metric_gates[0].last_value.as_deref(), Some("0.25"));
    let events = h.events().await;
    assert!(
        events
            .iter()
            .any(|(r, warning, note)| r == "MetricGateFailed"
                && *warning
                && note.contains("ratio")),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_data_holds_the_step_saying_why_until_data_appears() {
    let h = harness(Duration::from_secs(3600)).await;
    let (exporter, prometheus) = prometheus_reading(None).await;
    let g = gate(&prometheus.url, 1, OnInconclusive::Pause);
    h.swap("s", gated(g), status_in(Phase::ShiftingTraffic))
        .await;
    h.step("s").await;
    let (step, _) = h.decide(&h.fresh_swap("s").await).await;
    assert!(
        matches!(
            &step,
            Step::Wait { reason: Reason::MetricGateInconclusive, warning: true, message, .. }
                if message.contains("metric gate ratio cannot be judged at 50 %: the query returned no data")
        ),
        "{step:?}"
    );
    // Carried out, over several evaluations: held, neither advanced nor rolled back.
    let held = h
        .step_while_not("s", |s| gate_status(s).evaluations >= 2)
        .await;
    let status = held.status.clone().expect("status");
    assert_eq!(
        (status.phase, status.current_step),
        (Phase::ShiftingTraffic, Some(0))
    );
    assert_eq!(
        h.shifter.weights(BLUE).await.expect("weights"),
        Weights::green(50).expect("50")
    );
    let progressing = find_condition(&status.conditions, ConditionType::Progressing)
        .expect("a Progressing condition");
    assert_eq!(progressing.reason, Reason::MetricGateInconclusive);
    assert!(
        progressing.message.contains("onInconclusive: Pause"),
        "{progressing:?}"
    );
    let inconclusive: Vec<_> = h
        .events()
        .await
        .into_iter()
        .filter(|(r, _, _)| r == "MetricGateInconclusive")
        .collect();
    assert_eq!(
        inconclusive.len(),
        1,
        "one Event for the hold: {inconclusive:?}"
    );
    assert!(inconclusive[0].1, "a Warning");

    // Data appears: the gate is judged, passes, and the step goes on.
    exporter.set(SERIES, 0.002);
    prometheus.wait_for(SERIES, Some("0.002"), LIMIT).await;
    let swap = h.step_while_not("s", |s| step_of(s) == Some(1)).await;
    let status = swap.status.expect("status");
    let progressing = find_condition(&status.conditions, ConditionType::Progressing)
        .expect("a Progressing condition");
    assert_eq!(progressing.reason, Reason::MetricGateConclusive);
    let events = h.events().await;
    assert!(
        events.iter().any(|(r, _, _)| r == "MetricGateConclusive"),
        "{events:?}"
    );
    let metrics = h.ctx.metrics.encode();
    assert!(
        metrics.contains(r#"rotor_metric_gate_evaluations_total{result="Inconclusive"}"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_query_under_on_inconclusive_fail_rolls_back_saying_why() {
    let h = harness(Duration::from_secs(3600)).await;
    let (_exporter, prometheus) = prometheus_reading(Some(0.001)).await;
    let mut g = gate(&prometheus.url, 1, OnInconclusive::Fail);
    // Valid as a template, not as PromQL: Prometheus refuses it.
    g.query = "rotor_test_ratio{cluster=".into();
    h.swap("s", gated(g), status_in(Phase::ShiftingTraffic))
        .await;
    h.step("s").await;
    let (step, _) = h.decide(&h.fresh_swap("s").await).await;
    match &step {
        Step::RollBack {
            reason: Reason::MetricGateFailed,
            message,
        } => {
            assert!(
                message.contains("counts as a failure (onInconclusive: Fail)"),
                "{message}"
            );
            assert!(
                message.contains("refused the query (bad_data)"),
                "{message}"
            );
        }
        other => panic!("rolls back, not {other:?}"),
    }
}

/// A Prometheus that accepts connections and never answers: the query's bound makes the
/// evaluation inconclusive, and the step holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_query_is_bounded_and_inconclusive() {
    let mut h = harness(Duration::from_secs(3600)).await;
    h.ctx.settings.metric_query_timeout = Duration::from_millis(300);
    let (silent, _release) = super::held_backend().await;
    let g = gate(&format!("http://{silent}"), 1, OnInconclusive::Pause);
    h.swap("s", gated(g), status_in(Phase::ShiftingTraffic))
        .await;
    h.step("s").await;
    let (step, status) = tokio::time::timeout(LIMIT, h.decide(&h.fresh_swap("s").await))
        .await
        .expect("the query is bounded");
    match &step {
        Step::Wait {
            reason: Reason::MetricGateInconclusive,
            message,
            ..
        } => assert!(message.contains("did not answer within 300ms"), "{message}"),
        other => panic!("holds, not {other:?}"),
    }
    assert_eq!(
        status.metric_gates[0].last_result,
        Some(MetricGateResult::Inconclusive)
    );
}

/// A gate naming no Prometheus asks `rotor serve --prometheus-url`'s; without one it cannot
/// be judged, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_without_a_prometheus_asks_the_default_one() {
    let mut h = harness(Duration::from_secs(3600)).await;
    let (_exporter, prometheus) = prometheus_reading(Some(0.001)).await;
    let mut g = gate(&prometheus.url, 1, OnInconclusive::Pause);
    g.prometheus = None;
    h.swap("s", gated(g), status_in(Phase::ShiftingTraffic))
        .await;
    h.step("s").await;
    let (step, _) = h.decide(&h.fresh_swap("s").await).await;
    assert!(
        matches!(&step, Step::Wait { reason: Reason::MetricGateInconclusive, message, .. }
            if message.contains("rotor serve has no --prometheus-url")),
        "{step:?}"
    );
    h.ctx.prometheus =
        crate::prometheus::Prometheus::with_default_url(Some(prometheus.url.clone()));
    let swap = h.step_while_not("s", |s| step_of(s) == Some(1)).await;
    assert_eq!(gate_status(&swap).last_result, Some(MetricGateResult::Pass));
}
