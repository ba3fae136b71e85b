//! Metric gates end to end: whole swaps on the simulator (fleet, cloud, control plane,
//! controllers, the embedded router under steady load) gated on a real Prometheus. Scraping the
//! simulator's own `/metrics` (the requests each cluster's application answered): green's error
//! ratio by PromQL passes a healthy green and rolls back a green whose application fails
//! (the `TrafficErrors` fault). Scraping an exporter whose values the test sets: within its
//! threshold the swap succeeds; beyond it at 50 % the swap rolls back naming the gate; without
//! data the swap holds, saying why, and goes on once data appears. Zero failed requests
//! wherever no fault is injected: the gates move traffic only.

use crate::common;
use crate::hooks::rollback_of;

use std::time::Duration;

use common::eventually;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use rotor::rehearsal::{Rehearsal, TrafficChoice};
use rotor_api::{
    ClusterSwap, ClusterSwapSpec, ClusterSwapStatus, ConditionType, MetricGate, MetricGateResult,
    OnInconclusive, Phase, PrometheusSource, Reason, SwapStrategy, SwapTarget, Threshold,
    find_condition,
};
use rotor_test_support::prometheus::{self, Exporter, PrometheusProcess};
use rotor_traffic::CLIENT_TIMEOUT;
use rotor_traffic::load::Load;

const LIMIT: Duration = Duration::from_secs(90);
const SWAP: &str = "upgrade";

async fn rehearsal() -> Rehearsal {
    common::fleet::one_cluster_rehearsal(TrafficChoice::Sim).await
}

/// An exporter (the test's application metrics) and a Prometheus scraping it every second.
async fn prometheus_scraping() -> (Exporter, PrometheusProcess) {
    let exporter = Exporter::start().await.expect("exporter");
    // Another member's series: the target is up whatever the gate reads. (The series name
    // their member in a label of their own: `instance` and `job` are Prometheus' target labels,
    // a scraped `instance` would become `exported_instance`.)
    exporter.set(r#"rotor_test_error_ratio{member="elsewhere"}"#, 1.0);
    let prometheus = prometheus::for_test(&exporter).await;
    (exporter, prometheus)
}

/// A gate on the error ratio the exporter serves, at most 1 %, read every second.
fn error_ratio(prometheus: &PrometheusProcess, query: &str, consecutive: u32) -> MetricGate {
    MetricGate {
        name: "error-ratio".into(),
        query: query.into(),
        threshold: Threshold {
            max: Some(0.01),
            min: None,
        },
        interval_seconds: 1,
        consecutive,
        on_inconclusive: OnInconclusive::Pause,
        prometheus: Some(PrometheusSource {
            url: prometheus.url.clone(),
        }),
    }
}

/// Steps of 10, 50 and 100 %, each baking 1 s, gated by `gate`.
fn gated(gate: MetricGate) -> SwapStrategy {
    SwapStrategy {
        traffic_steps: vec![10, 50, 100],
        bake_seconds: 1,
        blue_retention_seconds: 1,
        health_gates: rotor_api::HealthGates {
            metric_gates: vec![gate],
            ..Default::default()
        },
        ..Default::default()
    }
}

async fn create_swap(r: &Rehearsal, gate: MetricGate) {
    let strategy = gated(gate);
    let swap = ClusterSwap::new(
        SWAP,
        ClusterSwapSpec {
            cluster_ref: r.fleet[0].name_any(),
            target: SwapTarget {
                kubernetes_version: Some(rotor_api::SAMPLE_TARGET_VERSION.into()),
                ..Default::default()
            },
            strategy,
            paused: false,
            rollback: false,
            hold_before_traffic: false,
        },
    );
    Api::<ClusterSwap>::all(r.client.clone())
        .create(&PostParams::default(), &swap)
        .await
        .expect("swap created");
}

/// The swap's status once `want` holds for it (bounded by [`LIMIT`]).
async fn status_when(
    r: &Rehearsal,
    what: &str,
    want: impl Fn(&ClusterSwapStatus) -> bool,
) -> ClusterSwapStatus {
    let api: Api<ClusterSwap> = Api::all(r.client.clone());
    eventually(LIMIT, what, || async {
        let status = api.get(SWAP).await.ok()?.status?;
        want(&status).then_some(status)
    })
    .await
}

/// The swap's Events: (reason, Warning?, note).
async fn events(r: &Rehearsal) -> Vec<(String, bool, String)> {
    common::events_of(r, SWAP).await
}

async fn no_failed_requests(load: Load) {
    let report = load.stop().await;
    assert!(report.requests > 100, "{report:?}");
    assert_eq!(report.failed, 0, "{report:?}");
}

/// Green's error ratio over the last 5 s, from the simulator's series of the requests green's
/// application answered: no data until green has served requests.
const GREEN_ERROR_RATIO: &str = r#"sum(rate(rotor_sim_traffic_errors_total{cluster="{{green}}"}[5s])) / sum(rate(rotor_sim_traffic_requests_total{cluster="{{green}}"}[5s]))"#;

/// A Prometheus scraping the simulator's `/metrics` every second.
async fn prometheus_scraping_the_simulator(r: &Rehearsal) -> PrometheusProcess {
    let sim: std::net::SocketAddr = r
        .sim_url
        .trim_start_matches("http://")
        .parse()
        .expect("the simulator's address");
    prometheus::for_targets(&[sim]).await
}

/// A swap gated on [`GREEN_ERROR_RATIO`] alone: the built-in error-rate gate is set out of
/// reach (100 %), so only Prometheus' reading can roll it back.
async fn create_swap_gated_on_greens_series(r: &Rehearsal, prometheus: &PrometheusProcess) {
    let mut gate = error_ratio(prometheus, GREEN_ERROR_RATIO, 2);
    gate.name = "green-errors".into();
    let mut strategy = gated(gate);
    strategy.health_gates.max_error_rate_percent = 100.0;
    let swap = ClusterSwap::new(
        SWAP,
        ClusterSwapSpec {
            cluster_ref: r.fleet[0].name_any(),
            target: SwapTarget {
                kubernetes_version: Some(rotor_api::SAMPLE_TARGET_VERSION.into()),
                ..Default::default()
            },
            strategy,
            paused: false,
            rollback: false,
            hold_before_traffic: false,
        },
    );
    Api::<ClusterSwap>::all(r.client.clone())
        .create(&PostParams::default(), &swap)
        .await
        .expect("swap created");
}

/// (e) A healthy green: the simulator's series of green's requests give an error ratio of 0 at
/// every step, read from real samples (green answered requests Prometheus counted), and the
/// swap succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greens_own_error_ratio_from_the_simulator_passes_a_healthy_green() {
    let r = rehearsal().await;
    let prometheus = prometheus_scraping_the_simulator(&r).await;
    let load = Load::start(r.app_urls(), 4, CLIENT_TIMEOUT);
    create_swap_gated_on_greens_series(&r, &prometheus).await;
    let done = status_when(&r, "the swap to end", |s| s.phase.is_terminal()).await;
    assert_eq!(done.phase, Phase::Succeeded, "{:?}", done.history);
    no_failed_requests(load).await;
    let gate = &done.metric_gates[0];
    assert_eq!(gate.name, "green-errors");
    assert_eq!(gate.last_result, Some(MetricGateResult::Pass), "{gate:?}");
    assert_eq!(gate.last_value.as_deref(), Some("0"), "{gate:?}");
    assert!(
        gate.evaluations >= 6,
        "two passes in each of three steps: {gate:?}"
    );
    // The ratio's denominator was real traffic: green's requests, counted by the simulator
    // and scraped, answered 200.
    let green = done.green_instance.expect("green");
    let served = prometheus
        .query(&format!(
            r#"max_over_time(rotor_sim_traffic_requests_total{{cluster="{green}",code="200"}}[5m])"#
        ))
        .await
        .expect("query");
    let n: f64 = served
        .first()
        .map_or(0.0, |(_, v)| v.parse().unwrap_or(0.0));
    assert!(n > 0.0, "green's requests in Prometheus: {served:?}");
}

/// (f) Green's application fails every request (`TrafficErrors`, switched on before it gets
/// traffic): the simulator counts the 503s, Prometheus' error ratio for green is beyond 1 % at
/// the first step, and the swap rolls back from 10 % naming the gate. Only the metric gate can
/// do it: the built-in error-rate gate is out of reach. The router retries each 503 on blue, so
/// no client sees a failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greens_own_error_ratio_from_the_simulator_rolls_a_failing_green_back() {
    let r = rehearsal().await;
    let blue = r.fleet[0].name_any();
    let prometheus = prometheus_scraping_the_simulator(&r).await;
    let load = Load::start(r.app_urls(), 4, CLIENT_TIMEOUT);
    create_swap_gated_on_greens_series(&r, &prometheus).await;
    let named = status_when(&r, "green to be named", |s| s.green_instance.is_some()).await;
    let green = named.green_instance.expect("green");
    eventually(LIMIT, "green's member to exist", || async {
        r.sim
            .set_fault(&green, rotor_sim::Fault::TrafficErrors)
            .then_some(())
    })
    .await;
    let done = status_when(&r, "the swap to end", |s| s.phase.is_terminal()).await;
    assert_eq!(done.phase, Phase::RolledBack, "{:?}", done.history);
    // The router retries green's 503s on blue, so clients saw none; the simulator counted
    // them (the value read below is theirs).
    no_failed_requests(load).await;
    let (reason, message) = rollback_of(&done);
    assert_eq!(reason, Reason::MetricGateFailed);
    for part in [
        "metric gate green-errors failed at 10 %",
        "is beyond the threshold (at most 0.01)",
        &format!(r#"rotor_sim_traffic_errors_total{{cluster="{green}"}}"#),
    ] {
        assert!(message.contains(part), "{part:?} in {message}");
    }
    let seen: f64 = done.metric_gates[0]
        .last_value
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("a value recorded");
    assert!(seen > 0.01, "{:?}", done.metric_gates[0]);
    let c = Api::<rotor_api::Cluster>::all(r.client.clone())
        .get(&blue)
        .await
        .expect("cluster");
    assert_eq!(
        c.status.unwrap_or_default().active_instance.as_deref(),
        Some(blue.as_str())
    );
}

/// (a) The gate reads its cluster's error ratio (the Cluster's name and a label of it filled
/// into the query) well within the threshold: every step ends after its passes, the swap
/// succeeds, and the values seen are in status and Events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metric_within_its_threshold_lets_the_swap_succeed() {
    let r = rehearsal().await;
    let cluster = r.fleet[0].name_any();
    let env = r.fleet[0].labels()[rotor_api::labels::ENV].clone();
    let (exporter, prometheus) = prometheus_scraping().await;
    let series = format!(r#"rotor_test_error_ratio{{cluster="{cluster}",env="{env}"}}"#);
    exporter.set(&series, 0.002);
    prometheus.wait_for(&series, Some("0.002"), LIMIT).await;
    let load = Load::start(r.app_urls(), 4, CLIENT_TIMEOUT);
    let query = r#"rotor_test_error_ratio{cluster="{{cluster}}",env="{{labels.rotor.dev/env}}"}"#;
    create_swap(&r, error_ratio(&prometheus, query, 2)).await;
    let done = status_when(&r, "the swap to end", |s| s.phase.is_terminal()).await;
    assert_eq!(done.phase, Phase::Succeeded, "{:?}", done.history);
    no_failed_requests(load).await;
    let gate = &done.metric_gates[0];
    assert_eq!(gate.last_result, Some(MetricGateResult::Pass), "{gate:?}");
    assert_eq!(gate.last_value.as_deref(), Some("0.002"));
    assert!(
        gate.evaluations >= 6,
        "two passes in each of three steps: {gate:?}"
    );
    let passed: Vec<String> = events(&r)
        .await
        .into_iter()
        .filter(|(reason, _, _)| reason == "MetricGatePassed")
        .map(|(_, _, note)| note)
        .collect();
    for weight in [10, 50, 100] {
        let at = format!("at {weight} %; last: 0.002");
        assert!(
            passed.iter().any(|n| n.contains(&at)),
            "{at:?} in {passed:?}"
        );
    }
    // status.gateReadings: at each step's end, the gate's passing value at that weight.
    let readings: Vec<(u8, Option<f64>, bool)> = done
        .gate_readings
        .iter()
        .filter(|g| g.kind == rotor_api::GateKind::Metric)
        .map(|g| (g.weight_percent, g.value, g.passed))
        .collect();
    assert_eq!(
        readings,
        [10, 50, 100].map(|w| (w, Some(0.002), true)),
        "{:?}",
        done.gate_readings
    );
    assert!(
        done.gate_readings
            .iter()
            .any(|g| g.kind == rotor_api::GateKind::ErrorRate && g.passed),
        "the error rate read at a step's end too: {:?}",
        done.gate_readings
    );
}

/// (b) The gate reads green's error ratio (`{{green}}`); it turns bad once green carries half
/// the traffic: the swap rolls back from 50 %, the gate named in its history and Events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metric_beyond_its_threshold_at_50_percent_rolls_the_swap_back() {
    let r = rehearsal().await;
    let blue = r.fleet[0].name_any();
    let (exporter, prometheus) = prometheus_scraping().await;
    let load = Load::start(r.app_urls(), 4, CLIENT_TIMEOUT);
    let query = r#"rotor_test_error_ratio{member="{{green}}"}"#;
    create_swap(&r, error_ratio(&prometheus, query, 3)).await;
    let named = status_when(&r, "green to be named", |s| s.green_instance.is_some()).await;
    let green = named.green_instance.expect("green");
    let series = format!(r#"rotor_test_error_ratio{{member="{green}"}}"#);
    exporter.set(&series, 0.001);
    status_when(&r, "green at 50 %", |s| s.green_weight_percent == 50).await;
    exporter.set(&series, 0.3);
    let done = status_when(&r, "the swap to end", |s| s.phase.is_terminal()).await;
    assert_eq!(done.phase, Phase::RolledBack, "{:?}", done.history);
    no_failed_requests(load).await;
    let (reason, message) = rollback_of(&done);
    assert_eq!(reason, Reason::MetricGateFailed);
    for part in [
        "metric gate error-ratio failed at 50 %: 0.3",
        "is beyond the threshold (at most 0.01)",
        &format!(r#"query: rotor_test_error_ratio{{member="{green}"}}"#),
    ] {
        assert!(message.contains(part), "{part:?} in {message}");
    }
    assert_eq!(done.metric_gates[0].last_value.as_deref(), Some("0.3"));
    let failed = events(&r).await;
    assert!(
        failed
            .iter()
            .any(|(reason, warning, note)| reason == "MetricGateFailed"
                && *warning
                && note.contains("error-ratio")),
        "{failed:?}"
    );
    let c = Api::<rotor_api::Cluster>::all(r.client.clone())
        .get(&blue)
        .await
        .expect("cluster");
    let status = c.status.unwrap_or_default();
    assert_eq!(status.active_instance.as_deref(), Some(blue.as_str()));
    assert!(r.sim.cluster(&green).is_none(), "green was not deleted");
}

/// (c) No series for green yet: the first step holds (no advance, no rollback) with a Warning
/// and a condition saying why; once the series appears the swap goes on and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_data_holds_the_swap_until_data_appears() {
    let r = rehearsal().await;
    let (exporter, prometheus) = prometheus_scraping().await;
    let load = Load::start(r.app_urls(), 4, CLIENT_TIMEOUT);
    let query = r#"rotor_test_error_ratio{member="{{green}}"}"#;
    create_swap(&r, error_ratio(&prometheus, query, 2)).await;
    let held = status_when(&r, "the step to hold", |s| {
        find_condition(&s.conditions, ConditionType::Progressing)
            .is_some_and(|c| c.reason == Reason::MetricGateInconclusive)
    })
    .await;
    let why = find_condition(&held.conditions, ConditionType::Progressing)
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        why.contains(
            "metric gate error-ratio cannot be judged at 10 %: the query returned no data"
        ),
        "{why}"
    );
    // Several evaluations later: still at 10 %, never rolled back.
    let still = status_when(&r, "more evaluations", |s| {
        s.metric_gates.first().is_some_and(|g| g.evaluations >= 3)
    })
    .await;
    assert_eq!(
        (still.phase, still.green_weight_percent),
        (Phase::ShiftingTraffic, 10)
    );
    assert!(!still.history.iter().any(|t| t.phase == Phase::RollingBack));
    let warned = events(&r).await;
    assert!(
        warned
            .iter()
            .any(|(reason, warning, note)| reason == "MetricGateInconclusive"
                && *warning
                && note.contains("returned no data")),
        "{warned:?}"
    );

    let green = still.green_instance.expect("green");
    let series = format!(r#"rotor_test_error_ratio{{member="{green}"}}"#);
    exporter.set(&series, 0.001);
    let done = status_when(&r, "the swap to end", |s| s.phase.is_terminal()).await;
    assert_eq!(done.phase, Phase::Succeeded, "{:?}", done.history);
    no_failed_requests(load).await;
    let reasons: Vec<String> = events(&r).await.into_iter().map(|(r, _, _)| r).collect();
    assert!(
        reasons.iter().any(|r| r == "MetricGateConclusive"),
        "{reasons:?}"
    );
}

/// (d) The same hold inside a Rollout: the Rollout shows it, a `SwapsHeld` condition naming
/// the cluster and why, while the swap holds; once data appears the condition clears and the
/// rollout succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_swap_shows_on_its_rollout() {
    let r = rehearsal().await;
    let cluster = r.fleet[0].name_any();
    let (exporter, prometheus) = prometheus_scraping().await;
    let load = Load::start(r.app_urls(), 4, CLIENT_TIMEOUT);
    let query = r#"rotor_test_error_ratio{member="{{green}}"}"#;
    let mut rollout = rotor_api::sample_rollout("fleet", rotor_api::SAMPLE_TARGET_VERSION);
    rollout.spec.cluster_selector = Default::default();
    rollout.spec.order_by = Vec::new();
    rollout.spec.waves = vec![rotor_api::Wave {
        name: "all".into(),
        percent: Some(100),
        ..Default::default()
    }];
    rollout.spec.strategy = gated(error_ratio(&prometheus, query, 2));
    let rollouts: Api<rotor_api::Rollout> = Api::all(r.client.clone());
    rollouts
        .create(&PostParams::default(), &rollout)
        .await
        .expect("rollout created");
    let held = |want: bool| {
        let rollouts = rollouts.clone();
        async move {
            let status = rollouts.get("fleet").await.ok()?.status?;
            let c = find_condition(&status.conditions, ConditionType::SwapsHeld)?;
            let on = c.status == rotor_api::ConditionStatus::True;
            (on == want).then(|| (c.reason, c.message.clone()))
        }
    };
    let (reason, message) =
        eventually(LIMIT, "the rollout to show the held swap", || held(true)).await;
    assert_eq!(reason, Reason::MetricGateInconclusive);
    assert!(
        message.starts_with(&format!("1 swaps held: {cluster}: metric gate error-ratio cannot be judged at 10 %: the query returned no data")),
        "{message}"
    );

    let swaps: Api<ClusterSwap> = Api::all(r.client.clone());
    let swap = format!("fleet-{cluster}");
    let green = eventually(LIMIT, "green to be named", || async {
        swaps.get(&swap).await.ok()?.status?.green_instance
    })
    .await;
    exporter.set(
        &format!(r#"rotor_test_error_ratio{{member="{green}"}}"#),
        0.001,
    );
    let done = eventually(LIMIT, "the rollout to finish", || async {
        let status = rollouts.get("fleet").await.ok()?.status?;
        (status.phase == rotor_api::RolloutPhase::Succeeded).then_some(status)
    })
    .await;
    no_failed_requests(load).await;
    let c = find_condition(&done.conditions, ConditionType::SwapsHeld).expect("SwapsHeld");
    assert_eq!(
        (c.status, c.reason),
        (rotor_api::ConditionStatus::False, Reason::Healthy)
    );
}

/// `rotor serve --prometheus-url` follows a gate's own rules: credentials in it stop the
/// process at start, naming the flag and not repeating them.
#[test]
fn serve_refuses_a_prometheus_url_with_credentials() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sqlite:{}", dir.path().join("rotor.db").display());
    let listen = format!("127.0.0.1:{}", common::kubectl::free_port());
    let mut serve = common::process::command(&["serve", "--store", &store, "--listen", &listen]);
    serve.args(["--prometheus-url", "http://admin:s3cret@127.0.0.1:9090"]);
    let stderr = common::process::serve_refuses(serve);
    assert!(
        stderr.contains("--prometheus-url") && stderr.contains("must not hold credentials"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
}
