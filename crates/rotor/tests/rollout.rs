//! Fleet rollouts end to end: waves in order, the concurrency limit at every sampled moment, the
//! failure budget pausing the rollout.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use rotor::rehearsal::{Rehearsal, RehearsalConfig, TrafficChoice};
use rotor_api::{
    Approval, ClusterSwap, LabelSelector, Phase, Rollout, RolloutPhase, RolloutSpec, SwapStrategy,
    SwapTarget, Wave, WavePhase, labels,
};
use rotor_sim::{CloudConfig, SimConfig};

const LIMIT: Duration = Duration::from_secs(120);

async fn rehearsal(clusters: usize) -> Rehearsal {
    let r = Rehearsal::start(RehearsalConfig {
        fleet: rotor_api::sample_fleet(clusters),
        sim: SimConfig {
            nodes: 1,
            workload_ready_delay: Duration::from_millis(100),
            node_ready_delay: Duration::from_millis(50),
            cloud: CloudConfig {
                create_latency: Duration::from_millis(200),
                delete_latency: Duration::from_millis(50),
                ..CloudConfig::default()
            },
            ..SimConfig::default()
        },
        settings: rotor_controllers::Settings {
            gate_interval: Duration::from_millis(100),
            poll_interval: Duration::from_millis(200),
            drain: Duration::from_millis(100),
            ..Default::default()
        },
        traffic: TrafficChoice::Sim,
    })
    .await
    .expect("rehearsal");
    r.wait_adopted(Duration::from_secs(20))
        .await
        .expect("adopted");
    r.deploy_app(Duration::from_secs(30)).await.expect("app");
    r
}

fn rollout(name: &str, max_concurrent: u32, failure_budget: u32) -> Rollout {
    let staging = LabelSelector {
        match_labels: Some(BTreeMap::from([(
            labels::ENV.to_string(),
            "staging".to_string(),
        )])),
        ..Default::default()
    };
    Rollout::new(
        name,
        RolloutSpec {
            cluster_selector: LabelSelector::default(),
            target: SwapTarget {
                kubernetes_version: Some(rotor_api::SAMPLE_TARGET_VERSION.into()),
                ..Default::default()
            },
            waves: vec![
                Wave {
                    name: "canary".into(),
                    percent: Some(10),
                    selector: None,
                },
                Wave {
                    name: "staging".into(),
                    percent: None,
                    selector: Some(staging),
                },
                Wave {
                    name: "half".into(),
                    percent: Some(50),
                    selector: None,
                },
            ],
            max_concurrent_swaps: max_concurrent,
            bake_seconds_between_waves: 1,
            approval: Approval::Automatic,
            approved_through_wave: None,
            failure_budget,
            maintenance_windows: Vec::new(),
            strategy: SwapStrategy {
                traffic_steps: vec![50, 100],
                bake_seconds: 0,
                blue_retention_seconds: 0,
                ..Default::default()
            },
            paused: false,
        },
    )
}

/// One sample of the fleet: (swap, wave, phase).
type Sample = Vec<(String, String, Phase)>;

fn sampler(r: &Rehearsal) -> (Arc<Mutex<Vec<Sample>>>, tokio::task::JoinHandle<()>) {
    let samples = Arc::new(Mutex::new(Vec::new()));
    let api: Api<ClusterSwap> = Api::all(r.client.clone());
    let out = samples.clone();
    let task = tokio::spawn(async move {
        loop {
            if let Ok(list) = api.list(&ListParams::default()).await {
                let sample = list
                    .items
                    .iter()
                    .map(|s| {
                        (
                            s.name_any(),
                            s.labels().get(labels::WAVE).cloned().unwrap_or_default(),
                            s.status.clone().unwrap_or_default().phase,
                        )
                    })
                    .collect();
                out.lock().expect("samples").push(sample);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    (samples, task)
}

async fn wait_rollout(r: &Rehearsal, name: &str, want: impl Fn(&Rollout) -> bool) -> Rollout {
    let api: Api<Rollout> = Api::all(r.client.clone());
    let mut last = None;
    let found = tokio::time::timeout(LIMIT, async {
        loop {
            if let Ok(ro) = api.get(name).await {
                if want(&ro) {
                    return ro;
                }
                last = ro.status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("rollout {name} not there within {LIMIT:?}: {last:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waves_run_in_order_within_the_concurrency_limit() {
    let r = rehearsal(10).await;
    let load = rotor_traffic::load::Load::start(r.app_urls(), 4, Duration::from_secs(5));
    let (samples, sampling) = sampler(&r);
    let api: Api<Rollout> = Api::all(r.client.clone());
    api.create(&PostParams::default(), &rollout("fleet", 2, 0))
        .await
        .expect("rollout created");
    let done = wait_rollout(&r, "fleet", |ro| {
        ro.status.as_ref().is_some_and(|s| {
            matches!(
                s.phase,
                RolloutPhase::Succeeded | RolloutPhase::Failed | RolloutPhase::Paused
            )
        })
    })
    .await;
    sampling.abort();
    let report = load.stop().await;
    let status = done.status.clone().unwrap_or_default();
    assert_eq!(status.phase, RolloutPhase::Succeeded, "{status:?}");
    assert_eq!(status.counts.total, 10);
    assert_eq!(status.counts.succeeded, 10, "{:?}", status.counts);
    assert_eq!(report.failed, 0, "{report:?}");
    // The plan: canary 1 (10 % of 10), the 2 staging clusters, half of the remaining 7 (4), and
    // the implicit remainder (3).
    let sizes: Vec<(String, usize)> = status
        .waves
        .iter()
        .map(|w| (w.name.clone(), w.clusters.len()))
        .collect();
    assert_eq!(
        sizes,
        vec![
            ("canary".into(), 1),
            ("staging".into(), 2),
            ("half".into(), 4),
            (rotor_api::REMAINDER_WAVE.into(), 3)
        ]
    );
    assert!(status.waves.iter().all(|w| w.phase == WavePhase::Succeeded));
    // At every sampled moment: at most 2 swaps running, and no swap of a later wave exists
    // while one of an earlier wave has not finished.
    let order: Vec<String> = status.waves.iter().map(|w| w.name.clone()).collect();
    let samples = samples.lock().expect("samples").clone();
    assert!(samples.len() > 20, "too few samples: {}", samples.len());
    for sample in &samples {
        let running = sample.iter().filter(|(_, _, p)| !p.is_terminal()).count();
        assert!(running <= 2, "{running} swaps running at once: {sample:?}");
        for (_, wave, _) in sample {
            let j = order.iter().position(|w| w == wave).expect("known wave");
            for (_, earlier, phase) in sample {
                let i = order.iter().position(|w| w == earlier).expect("known wave");
                assert!(
                    i >= j || phase.is_terminal(),
                    "a {wave} swap exists while a {earlier} swap is {phase}: {sample:?}"
                );
            }
        }
    }
    // One swap per cluster, no more.
    let swaps: Api<ClusterSwap> = Api::all(r.client.clone());
    let all = swaps
        .list(&ListParams::default())
        .await
        .expect("swaps")
        .items;
    assert_eq!(all.len(), 10);
    assert_eq!(r.sim.cloud.created_total(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failure_budget_pauses_the_rollout() {
    let r = rehearsal(6).await;
    let api: Api<Rollout> = Api::all(r.client.clone());
    let mut ro = rollout("budget", 1, 0);
    // Make the canary's swap slow enough to be rolled back by hand.
    ro.spec.strategy.traffic_steps = vec![10, 100];
    ro.spec.strategy.bake_seconds = 30;
    api.create(&PostParams::default(), &ro)
        .await
        .expect("created");
    let swaps: Api<ClusterSwap> = Api::all(r.client.clone());
    let canary = common::eventually(LIMIT, "the canary swap shifts traffic", || async {
        swaps
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|s| {
                s.status
                    .as_ref()
                    .is_some_and(|st| st.phase == Phase::ShiftingTraffic)
            })
    })
    .await;
    swaps
        .patch(
            &canary.name_any(),
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"rollback": true}})),
        )
        .await
        .expect("rollback requested");
    let paused = wait_rollout(&r, "budget", |ro| {
        ro.status
            .as_ref()
            .is_some_and(|s| s.phase == RolloutPhase::Paused)
    })
    .await;
    let status = paused.status.unwrap_or_default();
    let cond = rotor_api::find_condition(&status.conditions, rotor_api::ConditionType::Paused)
        .expect("Paused condition");
    assert!(cond.is_true());
    assert_eq!(cond.reason, rotor_api::Reason::FailureBudgetExceeded);
    assert!(
        cond.message.contains(&canary.spec.cluster_ref),
        "{}",
        cond.message
    );
    assert!(
        cond.message.contains("RollbackRequested"),
        "{}",
        cond.message
    );
    // Paused means no new swap starts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = swaps
        .list(&ListParams::default())
        .await
        .expect("swaps")
        .items;
    assert_eq!(
        all.len(),
        1,
        "a swap started while the rollout was over budget"
    );
    let still = api
        .get("budget")
        .await
        .expect("get")
        .status
        .unwrap_or_default();
    assert_eq!(still.phase, RolloutPhase::Paused);
    assert_eq!(still.counts.rolled_back, 1);
}
