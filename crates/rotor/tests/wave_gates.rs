//! Metric gates between waves (`spec.waveGates`) end to end: a two-cluster fleet on the
//! simulator under steady load, a real Prometheus scraping the simulator's `/metrics` (the
//! requests each cluster's application answered), a Rollout of two waves of one cluster each.
//! After the canary wave the gate reads the canary's instances' error ratio: a healthy one lets
//! the second wave start, a failing one (green's application broken by `TrafficErrors`, which
//! the swap's own gates are set not to see) pauses the rollout before wave 2 with a condition
//! naming gate, value and threshold; a query without data holds it, saying so.

use crate::common;

use std::time::Duration;

use common::eventually;
use kube::api::{Api, PostParams};
use rotor::rehearsal::{Rehearsal, TrafficChoice};
use rotor_api::{
    ClusterSwap, ConditionStatus, ConditionType, MetricGate, MetricGateResult, OnInconclusive,
    PrometheusSource, Reason, Rollout, RolloutPhase, RolloutStatus, Threshold, Wave, WavePhase,
    find_condition,
};
use rotor_test_support::prometheus::{self, PrometheusProcess};
use rotor_traffic::CLIENT_TIMEOUT;
use rotor_traffic::load::Load;

const LIMIT: Duration = Duration::from_secs(120);
const ROLLOUT: &str = "fleet";

/// The error ratio of the instances serving the finished wave's clusters, over 5 s.
const WAVE_ERROR_RATIO: &str = r#"sum(rate(rotor_sim_traffic_errors_total{member=~"{{instances}}"}[5s])) / sum(rate(rotor_sim_traffic_requests_total{member=~"{{instances}}"}[5s]))"#;

async fn fleet_and_prometheus() -> (Rehearsal, PrometheusProcess) {
    let r = common::fleet::rehearsal_of(2, TrafficChoice::Sim).await;
    let sim: std::net::SocketAddr = r
        .sim_url
        .trim_start_matches("http://")
        .parse()
        .expect("the simulator's address");
    let prometheus = prometheus::for_targets(&[sim]).await;
    (r, prometheus)
}

fn gate(prometheus: &PrometheusProcess, query: &str) -> MetricGate {
    MetricGate {
        name: "fleet-errors".into(),
        query: query.into(),
        threshold: Threshold {
            max: Some(0.01),
            min: None,
        },
        interval_seconds: 1,
        consecutive: 3,
        on_inconclusive: OnInconclusive::Pause,
        prometheus: Some(PrometheusSource {
            url: prometheus.url.clone(),
        }),
    }
}

/// Two waves of one cluster each (the canary first, in name order), `gate` between them; the
/// swaps' own error-rate gate out of reach (100 %), so that only the wave gate judges errors.
async fn create_rollout(r: &Rehearsal, gate: MetricGate) {
    let mut rollout = rotor_api::sample_rollout(ROLLOUT, rotor_api::SAMPLE_TARGET_VERSION);
    rollout.spec.cluster_selector = Default::default();
    rollout.spec.order_by = Vec::new();
    rollout.spec.waves = ["canary", "rest"]
        .map(|name| Wave {
            name: name.into(),
            count: Some(1),
            ..Default::default()
        })
        .to_vec();
    rollout.spec.bake_seconds_between_waves = 0;
    rollout.spec.wave_gates = vec![gate];
    rollout.spec.strategy = rotor_api::SwapStrategy {
        traffic_steps: vec![50, 100],
        bake_seconds: 1,
        blue_retention_seconds: 0,
        health_gates: rotor_api::HealthGates {
            max_error_rate_percent: 100.0,
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Rollout>::all(r.client.clone())
        .create(&PostParams::default(), &rollout)
        .await
        .expect("rollout created");
}

async fn status_when(
    r: &Rehearsal,
    what: &str,
    want: impl Fn(&RolloutStatus) -> bool,
) -> RolloutStatus {
    let api: Api<Rollout> = Api::all(r.client.clone());
    eventually(LIMIT, what, || async {
        let status = api.get(ROLLOUT).await.ok()?.status?;
        want(&status).then_some(status)
    })
    .await
}

/// The `Paused` condition's (status, reason, message).
fn paused(status: &RolloutStatus) -> Option<(ConditionStatus, Reason, String)> {
    find_condition(&status.conditions, ConditionType::Paused)
        .map(|c| (c.status, c.reason, c.message.clone()))
}

/// Wave 2 has not opened and its cluster has no swap.
async fn wave_two_not_started(r: &Rehearsal, status: &RolloutStatus) {
    assert_eq!(status.waves[1].phase, WavePhase::Pending, "{status:?}");
    let second = &status.waves[1].clusters[0];
    let swap = rotor_controllers::rollout::swap_name(ROLLOUT, second);
    let swaps: Api<ClusterSwap> = Api::all(r.client.clone());
    assert!(swaps.get_opt(&swap).await.expect("get").is_none());
}

/// A healthy canary: the gate passes its three evaluations on real traffic after wave 1, the
/// second wave starts and the rollout succeeds; the readings are in the wave's status and an
/// Event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passing_wave_gate_lets_the_next_wave_start() {
    let (r, prometheus) = fleet_and_prometheus().await;
    let load = Load::start(r.app_urls(), 4, CLIENT_TIMEOUT);
    create_rollout(&r, gate(&prometheus, WAVE_ERROR_RATIO)).await;
    let done = status_when(&r, "the rollout to finish", |s| s.phase.is_final()).await;
    assert_eq!(done.phase, RolloutPhase::Succeeded, "{done:?}");
    let report = load.stop().await;
    assert_eq!(report.failed, 0, "{report:?}");
    let read = &done.waves[0].metric_gates[0];
    assert_eq!(read.last_result, Some(MetricGateResult::Pass), "{read:?}");
    assert_eq!(read.last_value.as_deref(), Some("0"), "{read:?}");
    assert!(read.consecutive_passes >= 3, "{read:?}");
    assert!(
        done.waves[1].metric_gates.is_empty(),
        "no gate after the last wave"
    );
    let events = common::events_of(&r, ROLLOUT).await;
    assert!(
        events
            .iter()
            .any(|(reason, warning, note)| reason == "MetricGatePassed"
                && !warning
                && note.contains("metric gate fleet-errors after wave canary passed 3")),
        "{events:?}"
    );
}

/// The canary's green answers every request 503 (a bad upgrade its swap's gates were set not
/// to catch): after wave 1 the gate reads an error ratio beyond 1 %, and the rollout pauses
/// before wave 2, the condition naming gate, value and threshold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_gate_beyond_its_threshold_pauses_the_rollout_before_the_next_wave() {
    let (r, prometheus) = fleet_and_prometheus().await;
    let load = Load::start(r.app_urls(), 4, CLIENT_TIMEOUT);
    create_rollout(&r, gate(&prometheus, WAVE_ERROR_RATIO)).await;
    let planned = status_when(&r, "the plan", |s| !s.waves.is_empty()).await;
    let canary = planned.waves[0].clusters[0].clone();
    let swaps: Api<ClusterSwap> = Api::all(r.client.clone());
    let swap = rotor_controllers::rollout::swap_name(ROLLOUT, &canary);
    let green = eventually(LIMIT, "the canary's green", || async {
        swaps.get(&swap).await.ok()?.status?.green_instance
    })
    .await;
    eventually(LIMIT, "the fault on green", || async {
        r.sim
            .set_fault(&green, rotor_sim::Fault::TrafficErrors)
            .then_some(())
    })
    .await;
    let stopped = status_when(&r, "the rollout to pause", |s| {
        paused(s).is_some_and(|(on, reason, _)| {
            on == ConditionStatus::True && reason == Reason::MetricGateFailed
        })
    })
    .await;
    // What clients saw is not the point (with blue gone nothing retries green's 503s); the
    // gate's value below is the simulator's count of them, through Prometheus.
    load.stop().await;
    assert_eq!(stopped.phase, RolloutPhase::Paused);
    assert_eq!(stopped.waves[0].phase, WavePhase::Baking, "{stopped:?}");
    let (_, _, message) = paused(&stopped).expect("Paused");
    for part in [
        "metric gate fleet-errors failed after wave canary: ",
        "is beyond the threshold (at most 0.01)",
    ] {
        assert!(message.contains(part), "{part:?} in {message}");
    }
    let read = &stopped.waves[0].metric_gates[0];
    let value: f64 = read
        .last_value
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("a value");
    assert!(value > 0.01 && message.contains(&read.last_value.clone().unwrap_or_default()));
    // Evaluations go on; wave 2 never opens while the gate fails.
    let later = status_when(&r, "more evaluations", |s| {
        s.waves[0].metric_gates[0].evaluations >= read.evaluations + 2
    })
    .await;
    assert_eq!(later.phase, RolloutPhase::Paused);
    wave_two_not_started(&r, &later).await;
    let events = common::events_of(&r, ROLLOUT).await;
    assert!(
        events
            .iter()
            .any(|(reason, warning, note)| reason == "MetricGateFailed"
                && *warning
                && note.contains("fleet-errors after wave canary failed")),
        "{events:?}"
    );
}

/// A query nobody's series answer: the rollout holds after wave 1 with a condition saying the
/// query returned no data, and wave 2 does not start however often the gate is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_gate_without_data_holds_the_rollout_saying_so() {
    let (r, prometheus) = fleet_and_prometheus().await;
    let query = r#"sum(rate(app_checkout_failures_total{member=~"{{instances}}"}[5s]))"#;
    create_rollout(&r, gate(&prometheus, query)).await;
    let held = status_when(&r, "the rollout to hold", |s| {
        paused(s).is_some_and(|(on, reason, _)| {
            on == ConditionStatus::True && reason == Reason::MetricGateInconclusive
        })
    })
    .await;
    let (_, _, message) = paused(&held).expect("Paused");
    assert!(
        message.contains(
            "metric gate fleet-errors cannot be judged after wave canary: the query returned no data"
        ),
        "{message}"
    );
    let later = status_when(&r, "more evaluations", |s| {
        s.waves[0]
            .metric_gates
            .first()
            .is_some_and(|g| g.evaluations >= 4)
    })
    .await;
    assert_eq!(later.phase, RolloutPhase::Paused);
    assert_eq!(
        later.waves[0].metric_gates[0].last_result,
        Some(MetricGateResult::Inconclusive)
    );
    wave_two_not_started(&r, &later).await;
}
