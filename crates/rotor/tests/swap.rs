//! End-to-end swaps: the simulator (fleet + cloud), the control plane, the controllers and a
//! real traffic layer (HAProxy, or the embedded router), with steady HTTP load through the
//! traffic layer the whole time. Zero failed requests is asserted exactly.

use crate::common;

use std::time::Duration;

use common::eventually;
use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rotor::rehearsal::{Rehearsal, TrafficChoice};
use rotor_api::{
    BlueWorkloads, Cluster, ClusterSwap, ClusterSwapSpec, Phase, SwapStrategy, SwapTarget,
};
use rotor_sim::Fault;
use rotor_traffic::CLIENT_TIMEOUT;
use rotor_traffic::TrafficShifter;
use rotor_traffic::load::{Load, Mix};

const LIMIT: Duration = Duration::from_secs(90);

async fn rehearsal(traffic: TrafficChoice) -> Rehearsal {
    common::fleet::one_cluster_rehearsal(traffic).await
}

async fn create_swap(r: &Rehearsal, steps: Vec<u8>, bake_seconds: u64, retention: u64) -> String {
    create_swap_with(
        r,
        SwapStrategy {
            traffic_steps: steps,
            bake_seconds,
            blue_retention_seconds: retention,
            ..Default::default()
        },
    )
    .await
}

async fn create_swap_with(r: &Rehearsal, strategy: SwapStrategy) -> String {
    let cluster = r.fleet[0].name_any();
    let swap = ClusterSwap::new(
        "upgrade",
        ClusterSwapSpec {
            cluster_ref: cluster,
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
    let api: Api<ClusterSwap> = Api::all(r.client.clone());
    api.create(&PostParams::default(), &swap)
        .await
        .expect("swap created");
    "upgrade".into()
}

async fn wait_phase(r: &Rehearsal, name: &str, want: impl Fn(&ClusterSwap) -> bool) -> ClusterSwap {
    let api: Api<ClusterSwap> = Api::all(r.client.clone());
    let mut last = String::new();
    let found = tokio::time::timeout(LIMIT, async {
        loop {
            if let Ok(s) = api.get(name).await {
                last = format!("{:?}", s.status);
                if want(&s) {
                    return s;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| {
        panic!("swap {name} did not get there within {LIMIT:?}; last status {last}")
    })
}

fn phase(s: &ClusterSwap) -> Phase {
    s.status.clone().unwrap_or_default().phase
}

/// Keeps the load going until at least `n` requests were sent (bounded).
async fn at_least(load: &Load, n: u64) {
    eventually(LIMIT, "enough load", || async {
        (load.snapshot().requests >= n).then_some(())
    })
    .await;
}

async fn cluster(r: &Rehearsal) -> Cluster {
    let api: Api<Cluster> = Api::all(r.client.clone());
    api.get(&r.fleet[0].name_any()).await.expect("cluster")
}

/// Writes, slow requests (1–5 s, in flight at every weight change) and long-lived streams
/// besides GETs: what a zero-downtime claim must hold for, not GETs alone.
fn mixed() -> Mix {
    Mix {
        post_percent: 20,
        slow_percent: 5,
        streams: 2,
    }
}

async fn swap_succeeds(traffic: TrafficChoice) {
    let r = rehearsal(traffic).await;
    let blue = r.fleet[0].name_any();
    let mix = mixed();
    let load = Load::start_mixed(r.app_urls(), 8, CLIENT_TIMEOUT, mix);
    let name = create_swap(&r, vec![10, 50, 100], 1, 1).await;
    let done = wait_phase(&r, &name, |s| phase(s).is_terminal()).await;
    at_least(&load, 10_000).await;
    // Blue's deletion ended its streams cleanly; each was opened again, on green.
    let streams = mix.streams as u64;
    eventually(LIMIT, "streams reopened on green", || async {
        (load.snapshot().streams.opened >= 2 * streams).then_some(())
    })
    .await;
    let report = load.stop().await;
    assert!(report.post.total > 1_000, "{report:?}");
    assert_eq!(
        (report.get.failed, report.post.failed),
        (0, 0),
        "{report:?}"
    );
    assert_eq!(
        report.streams.broken + report.streams.refused,
        0,
        "{report:?}"
    );
    assert!(report.streams.messages > 0, "{report:?}");
    let status = done.status.clone().unwrap_or_default();
    assert_eq!(
        status.phase,
        Phase::Succeeded,
        "history: {:?}",
        status.history
    );
    assert_eq!(report.failed, 0, "{report:?}");
    assert!(report.requests >= 10_000, "{report:?}");
    // Every phase of the lifecycle, in order, once.
    let path: Vec<Phase> = status.history.iter().map(|t| t.phase).collect();
    assert_eq!(path, Phase::LIFECYCLE[1..].to_vec());
    let green = status.green_instance.clone().expect("green recorded");
    assert_eq!(status.blue_instance.as_deref(), Some(blue.as_str()));
    assert_ne!(green, blue);
    // The Cluster now runs on green, at the target version; blue is gone from the cloud.
    let c = cluster(&r).await.status.unwrap_or_default();
    assert_eq!(c.active_instance.as_deref(), Some(green.as_str()));
    assert_eq!(c.current_swap, None);
    assert_eq!(c.instances.len(), 1, "{:?}", c.instances);
    assert!(r.sim.cluster(&blue).is_none(), "blue still exists");
    assert!(
        r.sim.cloud.get(&blue).is_none(),
        "blue still known to the cloud"
    );
    assert_eq!(
        r.sim.cloud.created_total(),
        1,
        "exactly one green was created"
    );
    let member = r.sim.cluster(&green).expect("green exists");
    assert_eq!(
        r.sim.cloud.get(&green).map(|c| c.kubernetes_version),
        Some("1.35".to_string()),
        "green runs the target version"
    );
    // Traffic is on green: a request through the traffic layer lands on green's listener.
    let green_addr = member.traffic_addr.expect("green traffic address");
    match traffic {
        TrafficChoice::Haproxy => {
            let shifter = r.haproxy.as_ref().expect("haproxy").shifter();
            let states = shifter
                .server_states(&r.fleet[0].spec.traffic.endpoint)
                .await
                .expect("server states");
            assert_eq!(states["blue"].socket_addr(), Some(green_addr));
            assert!(states["blue"].ready());
        }
        TrafficChoice::Sim => {
            let (shifter, _) = r.sim_router.as_ref().expect("router");
            let stats = shifter
                .stats(&r.fleet[0].spec.traffic.endpoint)
                .expect("stats");
            assert!(stats.to_green > 0, "{stats:?}");
            assert_eq!(stats.failures, 0, "{stats:?}");
        }
        TrafficChoice::Dns => unreachable!("run through HAProxy and the router only"),
    }
    // The transitions are Events on the swap.
    let reasons = event_reasons(&r, &name).await;
    for reason in [
        "ProvisioningGreen",
        "GreenReady",
        "TrafficStepApplied",
        "SwapSucceeded",
    ] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "no {reason} event in {reasons:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swap_through_haproxy_succeeds_with_zero_failed_requests() {
    swap_succeeds(TrafficChoice::Haproxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swap_through_the_embedded_router_succeeds_with_zero_failed_requests() {
    swap_succeeds(TrafficChoice::Sim).await;
}

/// Green misbehaves (`fault`) once it has half the traffic, under GETs and POSTs: a gate sends
/// everything back to blue, green is deleted, no GET failed (the traffic layer retried them on
/// blue), and every failed POST was one green failed (a write is never retried) — at most
/// those sent to green before the gate tripped. With `latency_gate` (p99 ≤ 500 ms) a slow
/// green trips it, and so does a hanging one, by the requests it holds, long before the proxy
/// gives up on them. Without, the step bakes 3 s, less than the proxy's server timeout (8 s):
/// a hanging green's requests are still unanswered when the bake ends, and the step waits for
/// them rather than give green 100 % — so every fault is judged at 50 %.
async fn bad_green_rolls_back(traffic: TrafficChoice, fault: Fault, latency_gate: bool) {
    let r = rehearsal(traffic).await;
    let blue = r.fleet[0].name_any();
    let endpoint = r.fleet[0].spec.traffic.endpoint.clone();
    let mix = Mix {
        post_percent: 20,
        slow_percent: 0,
        streams: 0,
    };
    let load = Load::start_mixed(r.app_urls(), 8, CLIENT_TIMEOUT, mix);
    let strategy = SwapStrategy {
        traffic_steps: vec![50, 100],
        bake_seconds: 3,
        blue_retention_seconds: 1,
        health_gates: rotor_api::HealthGates {
            max_latency_p99_ms: latency_gate.then_some(500),
            ..Default::default()
        },
        ..Default::default()
    };
    let name = create_swap_with(&r, strategy).await;
    let at_50 = wait_phase(&r, &name, |s| {
        s.status
            .as_ref()
            .is_some_and(|st| st.green_weight_percent == 50)
            || phase(s).is_terminal()
    })
    .await;
    let green = at_50
        .status
        .clone()
        .unwrap_or_default()
        .green_instance
        .expect("green");
    let before = shifter(&r).backend_stats(&endpoint).await.expect("stats");
    assert!(r.sim.set_fault(&green, fault), "fault set");
    let done = wait_phase(&r, &name, |s| phase(s).is_terminal()).await;
    at_least(&load, 10_000).await;
    let green_failed = shifter(&r)
        .backend_stats(&endpoint)
        .await
        .expect("stats")
        .since(&before)
        .green
        .failures;
    let report = load.stop().await;
    let status = done.status.clone().unwrap_or_default();
    assert_eq!(
        status.phase,
        Phase::RolledBack,
        "history: {:?}",
        status.history
    );
    let rollback = status
        .history
        .iter()
        .find(|t| t.phase == Phase::RollingBack)
        .expect("RollingBack recorded");
    assert_eq!(rollback.reason, rotor_api::Reason::HealthGateFailed);
    assert!(
        rollback.message.contains("at 50 %"),
        "{fault:?} was not judged at 50 %: {}",
        rollback.message
    );
    if fault == Fault::TrafficHangs && latency_gate {
        assert!(
            rollback.message.contains("held unanswered for over 500 ms"),
            "the latency gate did not count green's held requests: {}",
            rollback.message
        );
    }
    if fault == Fault::TrafficHangs && !latency_gate {
        let reasons = event_reasons(&r, &name).await;
        assert!(
            reasons.iter().any(|r| r == "GreenRequestsUnanswered"),
            "the 50 % step did not wait for green's unanswered requests: {reasons:?}"
        );
    }
    eprintln!(
        "{fault:?} through {traffic:?}: {}; GETs failed {} of {}, POSTs {} of {}; green failed \
         {green_failed} attempts",
        rollback.message,
        report.get.failed,
        report.get.total,
        report.post.failed,
        report.post.total
    );
    if fault == Fault::TrafficResets {
        // An answer that breaks off after its head has reached the client cannot be retried
        // by any proxy: those GETs fail, as resets, and only those green broke.
        assert_eq!(report.get.failed, report.get.reset, "{report:?}");
        assert!(
            report.get.failed + report.post.failed <= green_failed,
            "{report:?}"
        );
    } else {
        assert_eq!(report.get.failed, 0, "{report:?}");
    }
    assert!(report.post.total > 1_000, "{report:?}");
    assert!(report.post.failed <= green_failed, "{report:?}");
    let c = cluster(&r).await.status.unwrap_or_default();
    assert_eq!(c.active_instance.as_deref(), Some(blue.as_str()));
    assert_eq!(c.current_swap, None);
    assert!(r.sim.cluster(&green).is_none(), "green was not deleted");
    let weights = shifter(&r).weights(&endpoint).await.expect("weights");
    assert_eq!(weights, rotor_traffic::Weights::all_blue());
}

/// The reasons of the Events on swap `name`.
async fn event_reasons(r: &Rehearsal, name: &str) -> Vec<String> {
    common::events_regarding(r, name)
        .await
        .into_iter()
        .filter_map(|e| e.reason)
        .collect()
}

/// The rehearsal's traffic layer.
fn shifter(r: &Rehearsal) -> Box<dyn TrafficShifter> {
    r.shifter().expect("the rehearsal has a traffic layer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erring_green_at_50_percent_rolls_back_through_haproxy() {
    bad_green_rolls_back(TrafficChoice::Haproxy, Fault::TrafficErrors, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_green_at_50_percent_rolls_back_through_haproxy() {
    bad_green_rolls_back(TrafficChoice::Haproxy, Fault::TrafficHangs, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_green_at_50_percent_rolls_back_through_the_embedded_router() {
    bad_green_rolls_back(TrafficChoice::Sim, Fault::TrafficHangs, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_green_without_a_latency_gate_is_held_at_50_percent_through_haproxy() {
    bad_green_rolls_back(TrafficChoice::Haproxy, Fault::TrafficHangs, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_green_without_a_latency_gate_is_held_at_50_percent_by_the_embedded_router() {
    bad_green_rolls_back(TrafficChoice::Sim, Fault::TrafficHangs, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resetting_green_at_50_percent_rolls_back_through_haproxy() {
    bad_green_rolls_back(TrafficChoice::Haproxy, Fault::TrafficResets, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resetting_green_at_50_percent_rolls_back_through_the_embedded_router() {
    bad_green_rolls_back(TrafficChoice::Sim, Fault::TrafficResets, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_green_at_50_percent_trips_the_latency_gate_through_haproxy() {
    bad_green_rolls_back(TrafficChoice::Haproxy, Fault::TrafficSlow, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_green_at_50_percent_trips_the_latency_gate_of_the_embedded_router() {
    bad_green_rolls_back(TrafficChoice::Sim, Fault::TrafficSlow, true).await;
}

/// After green took 100 %, blue is retained; an operator's `spec.rollback` brings it back with
/// no failed request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_during_retention_restores_blue_with_zero_failed_requests() {
    let r = rehearsal(TrafficChoice::Haproxy).await;
    let blue = r.fleet[0].name_any();
    let load = Load::start(r.app_urls(), 8, Duration::from_secs(5));
    let name = create_swap(&r, vec![50, 100], 1, 600).await;
    wait_phase(&r, &name, |s| {
        phase(s) == Phase::Retaining || phase(s).is_terminal()
    })
    .await;
    let c = cluster(&r).await.status.unwrap_or_default();
    assert_ne!(
        c.active_instance.as_deref(),
        Some(blue.as_str()),
        "green is active while retaining"
    );
    // Traffic has left blue: its workloads are scaled to zero (strategy.blueWhileRetained
    // defaults to ScaledToZero), the replica count kept on the object.
    let blue_deployments: Api<Deployment> = Api::namespaced(
        r.member(&blue).await.expect("blue's client"),
        rotor::rehearsal::APP_NAMESPACE,
    );
    let scaled = eventually(
        LIMIT,
        "blue's web scaled to zero and no replica ready",
        || async {
            let d = blue_deployments
                .get(rotor::rehearsal::APP_NAME)
                .await
                .ok()?;
            let ready = d
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0);
            (d.spec.as_ref()?.replicas == Some(0) && ready == 0).then_some(d)
        },
    )
    .await;
    assert_eq!(
        scaled
            .annotations()
            .get(rotor_api::annotations::REPLICAS_BEFORE_SCALE_DOWN)
            .map(String::as_str),
        Some("2")
    );
    assert_eq!(
        wait_phase(&r, &name, |s| s
            .status
            .as_ref()
            .is_some_and(|st| st.blue_workloads == BlueWorkloads::ScaledToZero))
        .await
        .status
        .unwrap_or_default()
        .phase,
        Phase::Retaining
    );
    // HAProxy retries a failed request on the other server, so clients alone cannot tell
    // whether traffic reached blue before its workloads were back; blue's own counters can.
    let shifter = r.haproxy.as_ref().expect("haproxy").shifter();
    let endpoint = r.fleet[0].spec.traffic.endpoint.clone();
    let before = shifter.backend_stats(&endpoint).await.expect("stats");
    let api: Api<ClusterSwap> = Api::all(r.client.clone());
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"rollback": true}})),
    )
    .await
    .expect("rollback requested");
    let done = wait_phase(&r, &name, |s| phase(s).is_terminal()).await;
    at_least(&load, 10_000).await;
    // Read while the load runs: requests a stopping client abandons would count as failures.
    let stats = shifter
        .backend_stats(&endpoint)
        .await
        .expect("backend stats")
        .since(&before);
    let report = load.stop().await;
    assert!(stats.blue.requests > 0, "{stats:?}");
    assert_eq!(stats.blue.failures, 0, "blue served 503s: {stats:?}");
    let status = done.status.clone().unwrap_or_default();
    assert_eq!(
        status.phase,
        Phase::RolledBack,
        "history: {:?}",
        status.history
    );
    assert_eq!(report.failed, 0, "{report:?}");
    let c = cluster(&r).await.status.unwrap_or_default();
    assert_eq!(c.active_instance.as_deref(), Some(blue.as_str()));
    assert!(
        r.sim.cluster(&blue).is_some(),
        "blue must survive the rollback"
    );
    let green = status.green_instance.expect("green");
    assert!(r.sim.cluster(&green).is_none(), "green was not deleted");
    // Blue got its replicas back before the traffic did (0 failed requests above), and the
    // record of the scale-down is gone.
    let restored = blue_deployments
        .get(rotor::rehearsal::APP_NAME)
        .await
        .expect("blue's web");
    assert_eq!(restored.spec.as_ref().and_then(|s| s.replicas), Some(2));
    // And `spec.replicas` belongs again to whoever applied it (the rehearsal's app manager
    // `rotor-demo`, server-side): rotor owns nothing, so the team's next apply cannot conflict.
    let replicas_owners: Vec<(String, String)> = restored
        .managed_fields()
        .iter()
        .filter(|e| {
            e.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some())
        })
        .map(|e| {
            (
                e.manager.clone().unwrap_or_default(),
                e.operation.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(replicas_owners, vec![("rotor-demo".into(), "Apply".into())]);
    assert!(
        restored
            .managed_fields()
            .iter()
            .all(|e| e.manager.as_deref() != Some("rotor")),
        "{:?}",
        restored.managed_fields()
    );
    assert!(
        !restored
            .annotations()
            .contains_key(rotor_api::annotations::REPLICAS_OWNERS)
    );
    assert!(
        !restored
            .annotations()
            .contains_key(rotor_api::annotations::REPLICAS_BEFORE_SCALE_DOWN)
            && !restored
                .annotations()
                .contains_key(rotor_api::annotations::SCALED_DOWN_BY),
        "{:?}",
        restored.annotations()
    );
    assert_eq!(status.blue_workloads, BlueWorkloads::Serving);
    assert!(
        status
            .history
            .iter()
            .any(|h| h.phase == Phase::RollingBack && h.message.contains("restoring blue")),
        "{:?}",
        status.history
    );
}

/// `strategy.blueWhileRetained: Warm` keeps blue's workloads running through retention, so a
/// rollback is one traffic call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_blue_keeps_its_replicas_while_retained() {
    let r = rehearsal(TrafficChoice::Sim).await;
    let blue = r.fleet[0].name_any();
    let api: Api<ClusterSwap> = Api::all(r.client.clone());
    create_swap_with(
        &r,
        SwapStrategy {
            traffic_steps: vec![100],
            bake_seconds: 0,
            blue_retention_seconds: 600,
            blue_while_retained: rotor_api::BlueWhileRetained::Warm,
            ..Default::default()
        },
    )
    .await;
    wait_phase(&r, "upgrade", |s| {
        phase(s) == Phase::Retaining || phase(s).is_terminal()
    })
    .await;
    // Give a scale-down, were there one, time to happen (several reconciles at 100-200 ms).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let blue_deployments: Api<Deployment> = Api::namespaced(
        r.member(&blue).await.expect("blue's client"),
        rotor::rehearsal::APP_NAMESPACE,
    );
    let d = blue_deployments
        .get(rotor::rehearsal::APP_NAME)
        .await
        .expect("blue's web");
    assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(2));
    let s = api.get("upgrade").await.expect("swap");
    let st = s.status.unwrap_or_default();
    assert_eq!(st.phase, Phase::Retaining);
    assert_eq!(st.blue_workloads, BlueWorkloads::Serving);
}

/// `spec.paused` freezes a swap where it is (with a Paused condition); unpausing resumes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_swap_waits_and_resumes() {
    let r = rehearsal(TrafficChoice::Sim).await;
    let api: Api<ClusterSwap> = Api::all(r.client.clone());
    let mut swap = ClusterSwap::new(
        "paused",
        ClusterSwapSpec {
            cluster_ref: r.fleet[0].name_any(),
            target: SwapTarget {
                kubernetes_version: Some(rotor_api::SAMPLE_TARGET_VERSION.into()),
                ..Default::default()
            },
            strategy: SwapStrategy {
                traffic_steps: vec![100],
                bake_seconds: 0,
                blue_retention_seconds: 0,
                ..Default::default()
            },
            paused: true,
            rollback: false,
            hold_before_traffic: false,
        },
    );
    swap = api
        .create(&PostParams::default(), &swap)
        .await
        .expect("created");
    let paused = wait_phase(&r, &swap.name_any(), |s| {
        s.status.as_ref().is_some_and(|st| {
            rotor_api::find_condition(&st.conditions, rotor_api::ConditionType::Paused)
                .is_some_and(|c| c.is_true())
        })
    })
    .await;
    // Frozen: still Pending a while later, nothing created in the cloud.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let still = api.get("paused").await.expect("get");
    assert_eq!(phase(&still), Phase::Pending, "{:?}", still.status);
    assert_eq!(phase(&paused), Phase::Pending);
    assert_eq!(r.sim.cloud.created_total(), 0);
    api.patch(
        "paused",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"paused": false}})),
    )
    .await
    .expect("unpaused");
    let done = wait_phase(&r, "paused", |s| phase(s).is_terminal()).await;
    assert_eq!(phase(&done), Phase::Succeeded, "{:?}", done.status);
    let status = done.status.unwrap_or_default();
    let paused = rotor_api::find_condition(&status.conditions, rotor_api::ConditionType::Paused)
        .expect("Paused condition kept");
    assert!(!paused.is_true(), "{paused:?}");
    assert_eq!(paused.reason, rotor_api::Reason::Resumed);
}

/// `strategy.keepGreenOnRollback`: after a rollback green stays (no traffic) for inspection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_can_keep_green_for_inspection() {
    let r = rehearsal(TrafficChoice::Sim).await;
    let api: Api<ClusterSwap> = Api::all(r.client.clone());
    let mut swap = ClusterSwap::new(
        "keep",
        ClusterSwapSpec {
            cluster_ref: r.fleet[0].name_any(),
            target: SwapTarget {
                kubernetes_version: Some(rotor_api::SAMPLE_TARGET_VERSION.into()),
                ..Default::default()
            },
            strategy: SwapStrategy {
                traffic_steps: vec![50, 100],
                bake_seconds: 60,
                keep_green_on_rollback: true,
                ..Default::default()
            },
            paused: false,
            rollback: false,
            hold_before_traffic: false,
        },
    );
    swap = api
        .create(&PostParams::default(), &swap)
        .await
        .expect("created");
    let at_50 = wait_phase(&r, &swap.name_any(), |s| {
        s.status
            .as_ref()
            .is_some_and(|st| st.green_weight_percent == 50)
    })
    .await;
    let green = at_50
        .status
        .unwrap_or_default()
        .green_instance
        .expect("green");
    api.patch(
        "keep",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"rollback": true}})),
    )
    .await
    .expect("rollback requested");
    let done = wait_phase(&r, "keep", |s| phase(s).is_terminal()).await;
    assert_eq!(phase(&done), Phase::RolledBack);
    assert!(r.sim.cluster(&green).is_some(), "green was deleted");
    let c = cluster(&r).await.status.unwrap_or_default();
    assert_eq!(
        c.active_instance.as_deref(),
        Some(r.fleet[0].name_any().as_str())
    );
    let kept = c.instance(&green).expect("green listed");
    assert_eq!(kept.phase, rotor_api::InstancePhase::Failed);
    let (shifter, _) = r.sim_router.as_ref().expect("router");
    let weights =
        rotor_traffic::TrafficShifter::weights(shifter, &r.fleet[0].spec.traffic.endpoint)
            .await
            .expect("weights");
    assert_eq!(weights, rotor_traffic::Weights::all_blue());
}

/// An object green's release would refuse (a number where a string belongs, kept by an older,
/// laxer API) is found when the migration starts: the swap rolls back naming the object and
/// its field, with nothing written, and blue keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_green_refuses_rolls_the_swap_back_before_any_write() {
    let r = rehearsal(TrafficChoice::Sim).await;
    let blue = r.fleet[0].name_any();
    let server = r.sim.cluster(&blue).expect("blue").server.clone();
    common::fleet::store_mistyped_config_map(&server, rotor::rehearsal::APP_NAMESPACE).await;
    let name = create_swap(&r, vec![100], 0, 0).await;
    let done = wait_phase(&r, &name, |s| phase(s).is_terminal()).await;
    let status = done.status.unwrap_or_default();
    assert_eq!(status.phase, Phase::RolledBack, "{:?}", status.history);
    let why = status
        .history
        .iter()
        .find(|h| h.reason == rotor_api::Reason::MigrationFailed)
        .map(|h| h.message.clone())
        .unwrap_or_else(|| panic!("no MigrationFailed in {:?}", status.history));
    assert!(
        why.contains(&format!(
            "ConfigMap {}/legacy",
            rotor::rehearsal::APP_NAMESPACE
        )) && why.contains("ConfigMap.data")
            && why.contains("nothing was applied"),
        "{why}"
    );
    let c = cluster(&r).await.status.unwrap_or_default();
    assert_eq!(c.active_instance.as_deref(), Some(blue.as_str()));
}
