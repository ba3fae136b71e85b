//! Swaps driven by discovery and by the cloud-polling schedule: a swap waiting for green moves
//! on when green becomes ready (discovery's trigger), not at its next poll; the traffic gates
//! read green's summary; a rate-limiting cloud slows the swap down with one Warning. The poll
//! interval is set long here, so only those mechanisms can explain the timings. Every wait is
//! bounded.

use crate::common;

use std::time::{Duration, Instant};

use common::eventually;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rotor::rehearsal::{APP_NAME, APP_NAMESPACE, Rehearsal, RehearsalConfig, TrafficChoice};
use rotor_api::{
    ClusterSwap, ClusterSwapSpec, ConditionType, Phase, Reason, SwapStrategy, SwapTarget,
    find_condition,
};
use rotor_sim::{CloudConfig, SimConfig};

/// The swaps' safety-net poll: far longer than anything measured here.
const POLL: Duration = Duration::from_secs(10);
/// Bound of every wait.
const LIMIT: Duration = Duration::from_secs(60);
/// Bound of a whole test.
const TEST_LIMIT: Duration = Duration::from_secs(120);

async fn rehearsal(
    node_ready_delay: Duration,
    cloud_poll: rotor_providers::poll::PollPolicy,
) -> Rehearsal {
    let r = Rehearsal::start(RehearsalConfig {
        fleet: rotor_api::sample_fleet(1),
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
            poll_interval: POLL,
            drain_timeout: Duration::from_millis(300),
            min_gate_requests: 10,
            cloud_poll,
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

async fn create_swap(r: &Rehearsal, steps: Vec<u8>, bake_seconds: u64) -> String {
    let swap = ClusterSwap::new(
        "upgrade",
        ClusterSwapSpec {
            cluster_ref: r.fleet[0].name_any(),
            target: SwapTarget {
                kubernetes_version: Some(rotor_api::SAMPLE_TARGET_VERSION.into()),
                ..Default::default()
            },
            strategy: SwapStrategy {
                traffic_steps: steps,
                bake_seconds,
                blue_retention_seconds: 0,
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

async fn get_swap(r: &Rehearsal, name: &str) -> ClusterSwap {
    let api: Api<ClusterSwap> = Api::all(r.client.clone());
    api.get(name).await.expect("swap")
}

fn phase(s: &ClusterSwap) -> Phase {
    s.status.clone().unwrap_or_default().phase
}

fn progressing_message(s: &ClusterSwap) -> String {
    let st = s.status.clone().unwrap_or_default();
    find_condition(&st.conditions, ConditionType::Progressing)
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

async fn bounded(test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .unwrap_or_else(|_| panic!("test did not finish within {TEST_LIMIT:?}"));
}

/// Green runs but its nodes are not Ready yet: the swap waits (and would poll again only after
/// 10 s). The moment green's nodes are Ready, discovery's change re-queues the swap, which moves
/// to Migrating within a small fraction of the poll interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_waiting_for_green_moves_on_as_soon_as_green_is_ready() {
    bounded(async {
        let r = rehearsal(Duration::from_secs(3), Default::default()).await;
        let name = create_swap(&r, vec![50, 100], 1).await;

        // Green exists and the swap waits for its nodes.
        let (green, waiting) = eventually(LIMIT, "the swap waiting for green's nodes", || async {
            let s = get_swap(&r, &name).await;
            let green = s.status.clone().unwrap_or_default().green_instance?;
            let message = progressing_message(&s);
            (phase(&s) == Phase::WaitingForGreen && message.contains("nodes Ready"))
                .then_some((green, message))
        })
        .await;
        assert!(waiting.contains("0/2 nodes Ready"), "{waiting}");
        let nodes: Api<Node> = Api::all(r.member(&green).await.expect("green client"));

        // Watch both: when green's nodes are all Ready, and when the swap leaves WaitingForGreen.
        let deadline = Instant::now() + LIMIT;
        let mut ready_at = None;
        let moved_at = loop {
            assert!(
                Instant::now() < deadline,
                "green never became ready, or the swap never moved"
            );
            if ready_at.is_none() {
                let list = nodes.list(&Default::default()).await.expect("nodes");
                let all_ready = !list.items.is_empty()
                    && list.items.iter().all(|n| {
                        n.status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|cs| {
                                cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                            })
                    });
                if all_ready {
                    ready_at = Some(Instant::now());
                }
            }
            let s = get_swap(&r, &name).await;
            if phase(&s) != Phase::WaitingForGreen {
                break Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        // The swap reads green's nodes before moving on: if this loop did not see them Ready
        // first, they became Ready within its last iteration.
        let ready_at = ready_at.unwrap_or(moved_at);
        let took = moved_at.saturating_duration_since(ready_at);
        println!("green ready → swap left WaitingForGreen in {took:?} (poll interval {POLL:?})");
        assert!(
            took < POLL / 5,
            "took {took:?}: a poll, not discovery's trigger, moved the swap"
        );
        let s = get_swap(&r, &name).await;
        let history = s.status.clone().unwrap_or_default().history;
        let migrating = history
            .iter()
            .find(|t| t.phase == Phase::Migrating)
            .expect("Migrating recorded");
        assert_eq!(migrating.reason, Reason::GreenReady);
    })
    .await;
}

/// While green carries traffic, a workload losing availability in green fails the gate from
/// discovery's summary of green (its reason names the object in discovery's words), and all
/// traffic goes back to blue promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_availability_gate_reads_greens_summary() {
    bounded(async {
        let r = rehearsal(Duration::from_millis(100), Default::default()).await;
        // A long bake at 50 %: the swap sits in ShiftingTraffic with the gates running.
        let name = create_swap(&r, vec![50, 100], 60).await;
        let s = eventually(LIMIT, "green carrying 50 %", || async {
            let s = get_swap(&r, &name).await;
            let st = s.status.clone().unwrap_or_default();
            (phase(&s) == Phase::ShiftingTraffic && st.green_weight_percent == 50).then_some(s)
        })
        .await;
        let green = s
            .status
            .clone()
            .unwrap_or_default()
            .green_instance
            .expect("green");
        let deployments: Api<Deployment> =
            Api::namespaced(r.member(&green).await.expect("green client"), APP_NAMESPACE);
        let t = Instant::now();
        deployments
            .patch_status(
                APP_NAME,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"status": {"availableReplicas": 0}})),
            )
            .await
            .expect("green's app loses availability");
        let s = eventually(LIMIT, "the swap rolling back", || async {
            let s = get_swap(&r, &name).await;
            matches!(phase(&s), Phase::RollingBack | Phase::RolledBack).then_some(s)
        })
        .await;
        let took = t.elapsed();
        println!("green workload unavailable → rollback recorded in {took:?}");
        let st = s.status.clone().unwrap_or_default();
        let rollback = st
            .history
            .iter()
            .find(|t| t.phase == Phase::RollingBack)
            .expect("RollingBack recorded");
        assert_eq!(rollback.reason, Reason::HealthGateFailed);
        // Discovery's words ("0/N available"), not the API probe's ("replicas available").
        let want = format!(
            "workloads available in green {green}: Deployment {APP_NAMESPACE}/{APP_NAME}: 0/"
        );
        assert!(rollback.message.contains(&want), "{}", rollback.message);
        assert!(
            !rollback.message.contains("replicas available"),
            "{}",
            rollback.message
        );
        assert!(took < Duration::from_secs(5), "took {took:?}");
    })
    .await;
}

/// The cloud rate-limits the swap's calls for a while: the swap backs off on the schedule,
/// says so in exactly one Warning Event (not one per poll), and then goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limiting_cloud_gets_one_warning_and_the_swap_goes_on() {
    bounded(async {
        let policy = rotor_providers::poll::PollPolicy {
            rate_limited_first: Duration::from_millis(100),
            rate_limited_max: Duration::from_millis(800),
            ..Default::default()
        };
        let r = rehearsal(Duration::from_millis(100), policy).await;
        r.sim.cloud.rate_limit_next_calls(4, Some(Duration::ZERO));
        let name = create_swap(&r, vec![100], 0).await;
        let s = eventually(LIMIT, "the swap past WaitingForGreen", || async {
            let s = get_swap(&r, &name).await;
            (phase(&s).lifecycle_index() > Phase::WaitingForGreen.lifecycle_index()).then_some(s)
        })
        .await;
        assert_eq!(r.sim.cloud.rate_limited_calls_pending(), 0);
        assert!(
            !phase(&s).is_terminal() || phase(&s) == Phase::Succeeded,
            "{:?}",
            s.status
        );
        let events = common::events_regarding(&r, &name).await;
        let limited: Vec<&Event> = events
            .iter()
            .filter(|e| e.reason.as_deref() == Some("ProviderRateLimited"))
            .collect();
        assert_eq!(limited.len(), 1, "{events:#?}");
        let e = limited[0];
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        assert_eq!(e.series.as_ref().map_or(1, |s| s.count), 1);
        assert!(
            e.note
                .as_deref()
                .unwrap_or_default()
                .contains("rate-limited"),
            "{e:?}"
        );
        // Rate limits are not reconcile errors: no Retry Warnings for them.
        assert!(
            !events.iter().any(|e| e
                .note
                .as_deref()
                .unwrap_or_default()
                .contains("rate-limited")
                && e.reason.as_deref() != Some("ProviderRateLimited")),
            "{events:#?}"
        );
        assert_eq!(r.sim.cloud.created_total(), 1, "one green");
    })
    .await;
}
