//! Swaps under injected faults: the cloud refusing creates, a slow cloud, green's Kubernetes API
//! unavailable or not answering while the swap waits for green. In every case the swap must wait
//! and retry (recording why as Events and conditions), never fail or roll back, end Succeeded,
//! and no client of the traffic layer may see a failed request.

use crate::common;

use std::time::{Duration, Instant};

use common::eventually;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use rotor::rehearsal::{Rehearsal, RehearsalConfig, TrafficChoice};
use rotor_api::{
    Cluster, ClusterSwap, ClusterSwapSpec, ClusterSwapStatus, ConditionType, Phase, Reason,
    SwapStrategy, SwapTarget,
};
use rotor_sim::{CloudConfig, Fault, SimConfig};
use rotor_traffic::load::Load;

/// Bound of every wait on the swap.
const LIMIT: Duration = Duration::from_secs(60);
/// Bound of a whole test.
const TEST_LIMIT: Duration = Duration::from_secs(100);
/// Requests the steady load must have sent by the end of a test.
const MIN_REQUESTS: u64 = 2_000;

/// A rehearsal with the embedded router. `node_ready_delay` is how long a new instance's nodes
/// take to become Ready: the window during which a swap is in WaitingForGreen with green
/// already existing in the simulator.
async fn rehearsal(node_ready_delay: Duration) -> Rehearsal {
    let fleet = rotor_api::sample_fleet(1);
    let r = Rehearsal::start(RehearsalConfig {
        fleet,
        sim: SimConfig {
            nodes: 2,
            workload_ready_delay: Duration::from_millis(200),
            node_ready_delay,
            cloud: CloudConfig {
                create_latency: Duration::from_millis(300),
                delete_latency: Duration::from_millis(100),
                ..CloudConfig::default()
            },
            ..SimConfig::default()
        },
        settings: rotor_controllers::Settings {
            gate_interval: Duration::from_millis(100),
            poll_interval: Duration::from_millis(200),
            drain_timeout: Duration::from_millis(300),
            min_gate_requests: 10,
            ..Default::default()
        },
        traffic: TrafficChoice::Sim,
        clock: None,
        clouds: Vec::new(),
    })
    .await
    .expect("rehearsal starts");
    r.wait_adopted(Duration::from_secs(20))
        .await
        .expect("clusters adopted");
    r.deploy_app(Duration::from_secs(30))
        .await
        .expect("sample app answers");
    r
}

async fn create_swap(r: &Rehearsal) -> String {
    let cluster = r.fleet[0].name_any();
    let swap = ClusterSwap::new(
        "upgrade",
        ClusterSwapSpec {
            cluster_ref: cluster,
            target: SwapTarget {
                kubernetes_version: Some(rotor_api::SAMPLE_TARGET_VERSION.into()),
                ..Default::default()
            },
            strategy: SwapStrategy {
                traffic_steps: vec![50, 100],
                bake_seconds: 1,
                blue_retention_seconds: 1,
                ..Default::default()
            },
            paused: false,
            rollback: false,
            hold_before_traffic: false,
        },
    );
    let api: Api<ClusterSwap> = Api::all(r.client.clone());
    api.create(&PostParams::default(), &swap)
        .await
        .expect("swap created");
    "upgrade".into()
}

fn phase(s: &ClusterSwap) -> Phase {
    s.status.clone().unwrap_or_default().phase
}

/// What the swap said at one moment: its phase and its Progressing condition.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    phase: Phase,
    reason: Option<Reason>,
    message: String,
}

fn seen(s: &ClusterSwap) -> Seen {
    let status = s.status.clone().unwrap_or_default();
    let progressing = status
        .conditions
        .iter()
        .find(|c| c.type_ == ConditionType::Progressing);
    Seen {
        phase: status.phase,
        reason: progressing.map(|c| c.reason),
        message: progressing.map(|c| c.message.clone()).unwrap_or_default(),
    }
}

/// Polls the swap until `want` holds (bounded by [`LIMIT`]), appending every distinct
/// [`Seen`] to `log`.
async fn watch_until(
    r: &Rehearsal,
    name: &str,
    log: &mut Vec<Seen>,
    want: impl Fn(&ClusterSwap) -> bool,
) -> ClusterSwap {
    let api: Api<ClusterSwap> = Api::all(r.client.clone());
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Ok(s) = api.get(name).await {
            let now = seen(&s);
            if log.last() != Some(&now) {
                log.push(now);
            }
            if want(&s) {
                return s;
            }
        }
        assert!(
            Instant::now() < deadline,
            "swap {name} did not get there within {LIMIT:?}; seen: {log:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the swap for `duration`, appending every distinct [`Seen`] to `log`.
async fn watch_for(r: &Rehearsal, name: &str, log: &mut Vec<Seen>, duration: Duration) {
    let api: Api<ClusterSwap> = Api::all(r.client.clone());
    let end = Instant::now() + duration;
    while Instant::now() < end {
        if let Ok(s) = api.get(name).await {
            let now = seen(&s);
            if log.last() != Some(&now) {
                log.push(now);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many times an Event happened (the recorder aggregates repeats into a series).
fn occurrences(e: &Event) -> i32 {
    e.series.as_ref().map(|s| s.count).unwrap_or(1)
}

fn describe(events: &[Event]) -> String {
    events
        .iter()
        .map(|e| {
            format!(
                "  {} {} x{} [{}] {}",
                e.type_.as_deref().unwrap_or("?"),
                e.reason.as_deref().unwrap_or("?"),
                occurrences(e),
                e.action.as_deref().unwrap_or("?"),
                e.note.as_deref().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn cluster(r: &Rehearsal) -> Cluster {
    let api: Api<Cluster> = Api::all(r.client.clone());
    api.get(&r.fleet[0].name_any()).await.expect("cluster")
}

/// Waits for the swap to end, stops the load, and checks what every test here requires: the
/// swap Succeeded along the happy path (no rollback, no phase skipped or repeated), exactly one
/// green was created and now serves the Cluster, and no client saw a failed request.
async fn finish(r: &Rehearsal, load: Load, name: &str, log: &mut Vec<Seen>) -> ClusterSwapStatus {
    let done = watch_until(r, name, log, |s| phase(s).is_terminal()).await;
    eventually(LIMIT, "enough load", || async {
        (load.snapshot().requests >= MIN_REQUESTS).then_some(())
    })
    .await;
    let report = load.stop().await;
    let status = done.status.clone().unwrap_or_default();
    let events = common::events_regarding(r, name).await;
    assert_eq!(
        status.phase,
        Phase::Succeeded,
        "history: {:#?}\nevents:\n{}",
        status.history,
        describe(&events)
    );
    let path: Vec<Phase> = status.history.iter().map(|t| t.phase).collect();
    assert_eq!(
        path,
        Phase::LIFECYCLE[1..].to_vec(),
        "events:\n{}",
        describe(&events)
    );
    assert_eq!(report.failed, 0, "{report:?}");
    assert!(report.requests >= MIN_REQUESTS, "{report:?}");
    let endpoint = &r.fleet[0].spec.traffic.endpoint;
    let (shifter, _) = r.sim_router.as_ref().expect("router");
    let stats = shifter.stats(endpoint).expect("stats");
    assert_eq!(stats.failures, 0, "{stats:?}");
    assert!(stats.to_green > 0, "{stats:?}");
    assert_eq!(
        r.sim.cloud.created_total(),
        1,
        "exactly one green was created"
    );
    let green = status.green_instance.clone().expect("green recorded");
    let c = cluster(r).await.status.unwrap_or_default();
    assert_eq!(c.active_instance.as_deref(), Some(green.as_str()));
    assert_eq!(c.current_swap, None);
    assert!(r.sim.cluster(&green).is_some(), "green exists");
    status
}

async fn bounded(test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .unwrap_or_else(|_| panic!("test did not finish within {TEST_LIMIT:?}"));
}

/// The cloud refuses the first three creates (503, nothing created): the swap retries with
/// backoff, says why in a Warning Event each time, and then goes through with one green.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_creates_are_retried_and_the_swap_succeeds() {
    bounded(async {
        let r = rehearsal(Duration::from_millis(100)).await;
        let load = Load::start(r.app_urls(), 4, Duration::from_secs(5));
        r.sim.cloud.fail_next_creates(3);
        let name = create_swap(&r).await;
        let mut log = Vec::new();
        let status = finish(&r, load, &name, &mut log).await;
        let green = status.green_instance.clone().expect("green");

        let events = common::events_regarding(&r, &name).await;
        let refused: Vec<&Event> = events
            .iter()
            .filter(|e| e.reason.as_deref() == Some(Reason::ProviderError.as_str()))
            .collect();
        assert!(
            !refused.is_empty(),
            "no ProviderError event:\n{}",
            describe(&events)
        );
        for e in &refused {
            assert_eq!(e.type_.as_deref(), Some("Warning"), "{}", describe(&events));
            let note = e.note.as_deref().unwrap_or_default();
            assert!(
                note.contains(&format!("create of instance {green}: provider unavailable")),
                "{note}"
            );
            assert!(note.contains("nothing created"), "{note}");
            assert!(note.contains("retrying with backoff"), "{note}");
        }
        // One Event occurrence per refused create: the three refusals, no more.
        let total: i32 = refused.iter().map(|e| occurrences(e)).sum();
        assert_eq!(total, 3, "{}", describe(&events));
        // The refusals happened while provisioning: the swap only moved on once green existed.
        let waiting = status
            .history
            .iter()
            .find(|t| t.phase == Phase::WaitingForGreen)
            .expect("WaitingForGreen recorded");
        assert_eq!(waiting.reason, Reason::GreenCreated);
    })
    .await;
}

/// The cloud takes 3 s to create green: the swap waits in WaitingForGreen, saying so in its
/// Progressing condition and an Event, creates nothing twice, and then goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_cloud_keeps_the_swap_waiting_for_green_then_it_succeeds() {
    bounded(async {
        let r = rehearsal(Duration::from_millis(100)).await;
        let load = Load::start(r.app_urls(), 4, Duration::from_secs(5));
        r.sim.cloud.set_create_latency(Duration::from_secs(3));
        let name = create_swap(&r).await;
        let mut log = Vec::new();
        let waiting = watch_until(&r, &name, &mut log, |s| {
            let st = seen(s);
            st.phase == Phase::WaitingForGreen && st.reason == Some(Reason::GreenNotReady)
        })
        .await;
        let green = waiting
            .status
            .clone()
            .unwrap_or_default()
            .green_instance
            .expect("green recorded");
        let still_creating = format!("the provider is still creating green {green}: provisioning");
        assert_eq!(seen(&waiting).message, still_creating);
        assert!(r.sim.cluster(&green).is_none(), "green exists too early");

        let status = finish(&r, load, &name, &mut log).await;
        // It waited for the cloud, not for a fixed time: about the create latency.
        let entered = |p: Phase| {
            status
                .history
                .iter()
                .find(|t| t.phase == p)
                .map(|t| t.time.0)
                .unwrap_or_else(|| panic!("{p} not recorded"))
        };
        let waited = entered(Phase::Migrating).duration_since(entered(Phase::WaitingForGreen));
        let waited = Duration::try_from(waited).expect("positive");
        assert!(
            waited >= Duration::from_millis(2_500),
            "waited {waited:?} only"
        );
        let events = common::events_regarding(&r, &name).await;
        assert!(
            events.iter().any(|e| {
                e.reason.as_deref() == Some(Reason::GreenNotReady.as_str())
                    && e.type_.as_deref() == Some("Normal")
                    && e.note.as_deref() == Some(still_creating.as_str())
            }),
            "no GreenNotReady event saying {still_creating:?}:\n{}",
            describe(&events)
        );
        // Waiting is not an error.
        assert!(
            !events.iter().any(|e| e.type_.as_deref() == Some("Warning")),
            "{}",
            describe(&events)
        );
    })
    .await;
}

/// What [`green_api_fault_while_waiting`] saw.
struct FaultRun {
    green: String,
    /// Messages of the GreenNotReady Progressing condition while the fault was on.
    messages: Vec<String>,
    /// The swap's Events at the end.
    events: Vec<Event>,
}

/// Green exists but its API fails (`fault`) for `hold` while the swap waits for it: the swap
/// stays in WaitingForGreen saying why (the member cluster error), then goes through once the
/// API is back.
async fn green_api_fault_while_waiting(fault: Fault, hold: Duration) -> FaultRun {
    // Green's nodes take 2 s to become Ready: the swap cannot leave WaitingForGreen before.
    let r = rehearsal(Duration::from_secs(2)).await;
    let load = Load::start(r.app_urls(), 4, Duration::from_secs(5));
    let name = create_swap(&r).await;
    let mut log = Vec::new();
    let waiting = watch_until(&r, &name, &mut log, |s| {
        phase(s) == Phase::WaitingForGreen || phase(s).is_terminal()
    })
    .await;
    assert_eq!(phase(&waiting), Phase::WaitingForGreen);
    let green = waiting
        .status
        .clone()
        .unwrap_or_default()
        .green_instance
        .expect("green recorded");
    eventually(LIMIT, "green exists in the simulator", || async {
        r.sim.cluster(&green).is_some().then_some(())
    })
    .await;
    assert!(r.sim.set_fault(&green, fault), "fault set");
    let api: Api<ClusterSwap> = Api::all(r.client.clone());
    let now = api.get(&name).await.expect("swap");
    assert_eq!(
        phase(&now),
        Phase::WaitingForGreen,
        "the swap left WaitingForGreen before the fault was on"
    );

    let mark = log.len();
    watch_for(&r, &name, &mut log, hold).await;
    r.sim.clear_faults(&green);
    let during: Vec<Seen> = log[mark..].to_vec();
    assert!(
        during.iter().all(|s| s.phase == Phase::WaitingForGreen),
        "the swap moved while green's API was down: {during:#?}"
    );

    finish(&r, load, &name, &mut log).await;
    let messages = during
        .iter()
        .filter(|s| s.reason == Some(Reason::GreenNotReady))
        .map(|s| s.message.clone())
        .collect();
    let events = common::events_regarding(&r, &name).await;
    assert!(
        !events.iter().any(|e| e.type_.as_deref() == Some("Warning")),
        "{}",
        describe(&events)
    );
    FaultRun {
        green,
        messages,
        events,
    }
}

/// Green's API answers 503 for 3 s while the swap waits for green.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn green_api_unavailable_while_waiting_delays_the_swap_which_then_succeeds() {
    bounded(async {
        let FaultRun {
            green, messages, ..
        } = green_api_fault_while_waiting(Fault::ApiUnavailable, Duration::from_secs(3)).await;
        let want = format!("member cluster {green}: reading /version: ");
        assert!(
            messages.iter().any(|m| m.starts_with(&want)
                && m.contains(&format!(
                    "simulated fault ApiUnavailable: the API of cluster {green} is unavailable"
                ))),
            "no GreenNotReady condition naming the member cluster error while the fault was on: \
             {messages:#?}"
        );
    })
    .await;
}

/// Green's API does not answer for 12 s (longer than the controllers' 10 s bound on a member
/// call) while the swap waits for green.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn green_api_timing_out_while_waiting_delays_the_swap_which_then_succeeds() {
    bounded(async {
        let FaultRun {
            green, messages, ..
        } = green_api_fault_while_waiting(Fault::ApiTimeout, Duration::from_secs(12)).await;
        let want = format!("member cluster {green}: reading /version: ");
        assert!(
            messages.iter().any(|m| m.starts_with(&want)),
            "no GreenNotReady condition naming the member cluster error while the fault was on: \
             {messages:#?}"
        );
    })
    .await;
}

/// The Events of a swap tell why it waits: after green's API was unavailable, some Event on the
/// swap names the member cluster error, as its Progressing condition did. (kube-runtime's
/// `Recorder` merged Events by reason and kept only the first note; rotor's recorder keys
/// series by note too.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_name_the_member_cluster_error_while_green_api_is_unavailable() {
    bounded(async {
        let FaultRun { green, events, .. } =
            green_api_fault_while_waiting(Fault::ApiUnavailable, Duration::from_secs(3)).await;
        let want = format!("member cluster {green}: reading /version: ");
        assert!(
            events.iter().any(|e| {
                e.reason.as_deref() == Some(Reason::GreenNotReady.as_str())
                    && e.note.as_deref().is_some_and(|n| n.starts_with(&want))
            }),
            "no Event names the member cluster error:\n{}",
            describe(&events)
        );
    })
    .await;
}
