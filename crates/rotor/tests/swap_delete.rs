//! Deleting a ClusterSwap: its finalizer (`rotor.dev/swap-cleanup`) undoes what it started —
//! traffic back to blue, green deleted through the provider, the Cluster's claim released —
//! before the object goes, in every phase before Succeeded, under steady load through the
//! embedded router; a swap deleted after it succeeded leaves green serving. Deleting a Rollout
//! takes its swaps through the garbage collector, each through its finalizer.

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::eventually;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use rotor::rehearsal::{Rehearsal, RehearsalConfig, TrafficChoice};
use rotor_api::{
    Cluster, ClusterSwap, ClusterSwapSpec, Phase, Rollout, RolloutSpec, SwapStrategy, SwapTarget,
    Wave,
};
use rotor_sim::{CloudConfig, SimConfig};
use rotor_traffic::load::Load;

const LIMIT: Duration = Duration::from_secs(90);

async fn rehearsal(clusters: usize) -> Rehearsal {
    let r = Rehearsal::start(RehearsalConfig {
        fleet: rotor_api::sample_fleet(clusters),
        sim: SimConfig {
            nodes: 2,
            workload_ready_delay: Duration::from_millis(200),
            node_ready_delay: Duration::from_millis(100),
            cloud: CloudConfig {
                create_latency: Duration::from_millis(300),
                // Long enough to see Decommissioning (blue's deletion) in progress.
                delete_latency: Duration::from_millis(1500),
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

/// Creates swap `name`: traffic in two steps; `bake` holds it at 50 %, `retention` in
/// Retaining; `paused` in Pending; `park` in Verifying (spec.holdBeforeTraffic).
async fn create_swap(
    r: &Rehearsal,
    name: &str,
    bake: u64,
    retention: u64,
    paused: bool,
    park: bool,
) {
    let swap = ClusterSwap::new(
        name,
        ClusterSwapSpec {
            cluster_ref: r.fleet[0].name_any(),
            target: SwapTarget {
                kubernetes_version: Some(rotor_api::SAMPLE_TARGET_VERSION.into()),
                ..Default::default()
            },
            strategy: SwapStrategy {
                traffic_steps: vec![50, 100],
                bake_seconds: bake,
                blue_retention_seconds: retention,
                ..Default::default()
            },
            paused,
            rollback: false,
            hold_before_traffic: park,
        },
    );
    let api: Api<ClusterSwap> = Api::all(r.client.clone());
    api.create(&PostParams::default(), &swap)
        .await
        .expect("swap created");
}

async fn wait_swap(r: &Rehearsal, name: &str, what: &str, want: impl Fn(&ClusterSwap) -> bool) {
    let api: Api<ClusterSwap> = Api::all(r.client.clone());
    eventually(LIMIT, what, || async {
        api.get_opt(name)
            .await
            .ok()
            .flatten()
            .filter(|s| want(s))
            .map(|_| ())
    })
    .await;
}

fn phase(s: &ClusterSwap) -> Phase {
    s.status.clone().unwrap_or_default().phase
}

fn guarded(s: &ClusterSwap) -> bool {
    s.finalizers()
        .iter()
        .any(|f| f == rotor_controllers::swap::FINALIZER)
}

async fn cluster(r: &Rehearsal) -> Cluster {
    let api: Api<Cluster> = Api::all(r.client.clone());
    api.get(&r.fleet[0].name_any()).await.expect("cluster")
}

/// Deletes swap `name` (unless it is gone already) and waits until the object is gone;
/// returns the Cluster after.
async fn delete_and_wait(r: &Rehearsal, name: &str) -> Cluster {
    let api: Api<ClusterSwap> = Api::all(r.client.clone());
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => panic!("delete swap {name}: {e}"),
    }
    eventually(LIMIT, &format!("swap {name} gone"), || async {
        api.get_opt(name).await.ok()?.is_none().then_some(())
    })
    .await;
    cluster(r).await
}

/// Every instance in the simulated cloud is one the Cluster uses, and the Cluster serves from
/// `active` with no swap claiming it.
fn assert_nothing_leaked(r: &Rehearsal, c: &Cluster, active: &str, when: &str) {
    let status = c.status.clone().unwrap_or_default();
    assert_eq!(
        status.active_instance.as_deref(),
        Some(active),
        "{when}: {status:?}"
    );
    assert_eq!(status.current_swap, None, "{when}: the claim is released");
    let used: BTreeSet<String> = status.instances.iter().map(|i| i.name.clone()).collect();
    let cloud: BTreeSet<String> = r.sim.cloud.list().into_iter().map(|c| c.name).collect();
    assert_eq!(
        cloud,
        BTreeSet::from([active.to_string()]),
        "{when}: cloud has only what serves"
    );
    assert!(used.contains(active), "{when}: {used:?}");
}

/// The swap's history shows that its cleanup began in `phase`.
async fn cleaned_up_from(r: &Rehearsal, name: &str, phase: Phase) {
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::all(r.client.clone());
    let wanted = format!("being deleted in {}", phase.as_str());
    eventually(LIMIT, &format!("SwapDeleted event for {name}"), || async {
        let list = events.list(&Default::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| {
                e.involved_object.name.as_deref() == Some(name)
                    && e.reason.as_deref() == Some("SwapDeleted")
                    && e.message.as_deref().is_some_and(|m| m.contains(&wanted))
            })
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_swap_in_any_phase_leaks_nothing_and_fails_no_request() {
    let r = rehearsal(1).await;
    let blue = r.fleet[0].name_any();
    let load = Load::start(r.app_urls(), 8, Duration::from_secs(5));

    // Pending (paused): the finalizer is there before anything is claimed or created.
    create_swap(&r, "pending", 600, 600, true, false).await;
    wait_swap(&r, "pending", "pending swap guarded", guarded).await;
    let c = delete_and_wait(&r, "pending").await;
    assert_nothing_leaked(&r, &c, &blue, "Pending");

    // Provisioning: the cloud throttles every call, so the swap cannot leave the phase; the
    // throttling ends once the deletion is asked for, and green (if created) goes.
    r.sim
        .cloud
        .rate_limit_next_calls(u32::MAX, Some(Duration::from_secs(1)));
    create_swap(&r, "provisioning", 600, 600, false, false).await;
    wait_swap(&r, "provisioning", "Provisioning", |s| {
        phase(s) == Phase::Provisioning
    })
    .await;
    let api: Api<ClusterSwap> = Api::all(r.client.clone());
    api.delete("provisioning", &DeleteParams::default())
        .await
        .expect("delete");
    r.sim.cloud.rate_limit_next_calls(0, None);
    let c = delete_and_wait(&r, "provisioning").await;
    cleaned_up_from(&r, "provisioning", Phase::Provisioning).await;
    assert_nothing_leaked(&r, &c, &blue, "Provisioning");

    // WaitingForGreen: green is still being created.
    r.sim.cloud.set_create_latency(Duration::from_secs(60));
    create_swap(&r, "creating", 600, 600, false, false).await;
    wait_swap(&r, "creating", "WaitingForGreen", |s| {
        phase(s) == Phase::WaitingForGreen
    })
    .await;
    let c = delete_and_wait(&r, "creating").await;
    cleaned_up_from(&r, "creating", Phase::WaitingForGreen).await;
    assert_nothing_leaked(&r, &c, &blue, "WaitingForGreen");
    r.sim.cloud.set_create_latency(Duration::from_millis(300));

    // Verifying (parked before traffic), ShiftingTraffic (baking at 50 %), Retaining (blue
    // scaled to zero): traffic returns to blue — restored first — and green goes.
    for (name, want, bake, retention, park) in [
        ("verified", Phase::Verifying, 600, 600, true),
        ("shifting", Phase::ShiftingTraffic, 600, 600, false),
        ("retaining", Phase::Retaining, 0, 600, false),
    ] {
        create_swap(&r, name, bake, retention, false, park).await;
        wait_swap(&r, name, &format!("{want:?}"), |s| phase(s) == want).await;
        let c = delete_and_wait(&r, name).await;
        cleaned_up_from(&r, name, want).await;
        assert_nothing_leaked(&r, &c, &blue, want.as_str());
    }

    // Decommissioning is past the point of no return: the swap finishes, green serves.
    create_swap(&r, "finishing", 0, 0, false, false).await;
    wait_swap(&r, "finishing", "Decommissioning", |s| {
        phase(s) == Phase::Decommissioning
    })
    .await;
    let green = api
        .get("finishing")
        .await
        .expect("swap")
        .status
        .and_then(|s| s.green_instance)
        .expect("green");
    let c = delete_and_wait(&r, "finishing").await;
    assert_nothing_leaked(&r, &c, &green, "Decommissioning");

    // Succeeded, then deleted: nothing that serves is touched.
    create_swap(&r, "done", 0, 0, false, false).await;
    wait_swap(&r, "done", "Succeeded", |s| phase(s) == Phase::Succeeded).await;
    let active = cluster(&r)
        .await
        .status
        .and_then(|s| s.active_instance)
        .expect("active");
    assert_ne!(active, green);
    let c = delete_and_wait(&r, "done").await;
    assert_nothing_leaked(&r, &c, &active, "Succeeded");

    let report = load.stop().await;
    assert!(report.requests > 0, "{report:?}");
    assert_eq!(report.failed, 0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_rollout_takes_its_swaps_through_their_finalizers() {
    let r = rehearsal(2).await;
    let load = Load::start(r.app_urls(), 8, Duration::from_secs(5));
    let rollout = Rollout::new(
        "fleet",
        RolloutSpec {
            cluster_selector: Default::default(),
            target: SwapTarget {
                kubernetes_version: Some(rotor_api::SAMPLE_TARGET_VERSION.into()),
                ..Default::default()
            },
            waves: vec![Wave {
                name: "all".into(),
                percent: Some(100),
                ..Default::default()
            }],
            max_concurrent_swaps: 2,
            bake_seconds_between_waves: 0,
            approval: rotor_api::Approval::Automatic,
            approved_through_wave: None,
            failure_budget: k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(2),
            on_budget_exceeded: Default::default(),
            notifications: Vec::new(),
            wave_gates: Vec::new(),
            order_by: Vec::new(),
            unavailable_clusters: Default::default(),
            preflight: Default::default(),
            maintenance_windows: Vec::new(),
            // Each swap bakes at 50 % until it is deleted.
            strategy: SwapStrategy {
                traffic_steps: vec![50, 100],
                bake_seconds: 600,
                ..Default::default()
            },
            paused: false,
            skip_clusters: Vec::new(),
            retry_failed: 0,
        },
    );
    let rollouts: Api<Rollout> = Api::all(r.client.clone());
    let created = rollouts
        .create(&PostParams::default(), &rollout)
        .await
        .expect("rollout created");
    let swaps: Api<ClusterSwap> = Api::all(r.client.clone());
    let owned = eventually(LIMIT, "both swaps shifting traffic", || async {
        let list = swaps.list(&Default::default()).await.ok()?;
        let shifting: Vec<ClusterSwap> = list
            .items
            .into_iter()
            .filter(|s| phase(s) == Phase::ShiftingTraffic && guarded(s))
            .collect();
        (shifting.len() == 2).then_some(shifting)
    })
    .await;
    for s in &owned {
        let owner = s
            .owner_references()
            .first()
            .cloned()
            .expect("owned by the rollout");
        assert_eq!(owner.uid, created.uid().expect("uid"));
    }

    rollouts
        .delete("fleet", &DeleteParams::default())
        .await
        .expect("delete rollout");
    eventually(LIMIT, "the rollout's swaps collected", || async {
        let left = swaps.list(&Default::default()).await.ok()?.items;
        left.is_empty().then_some(())
    })
    .await;
    let clusters: Api<Cluster> = Api::all(r.client.clone());
    let mut serving = BTreeSet::new();
    for c in &r.fleet {
        let status = clusters
            .get(&c.name_any())
            .await
            .expect("cluster")
            .status
            .unwrap_or_default();
        assert_eq!(
            status.active_instance.as_deref(),
            Some(c.name_any().as_str()),
            "blue serves"
        );
        assert_eq!(status.current_swap, None, "claim released");
        serving.insert(c.name_any());
    }
    let cloud: BTreeSet<String> = r.sim.cloud.list().into_iter().map(|c| c.name).collect();
    assert_eq!(cloud, serving, "no green left in the cloud");
    let report = load.stop().await;
    assert!(report.requests > 0, "{report:?}");
    assert_eq!(report.failed, 0, "{report:?}");
}
