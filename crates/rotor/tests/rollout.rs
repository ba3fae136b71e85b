//! Fleet rollouts end to end: waves in order, the concurrency limit at every sampled moment, the
//! failure budget pausing the rollout.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use rotor::rehearsal::{Rehearsal, RehearsalConfig, TrafficChoice};
use rotor_api::{
    Approval, ClusterSwap, LabelSelector, Phase, Rollout, RolloutPhase, RolloutSpec, SwapStrategy,
    SwapTarget, Wave, WavePhase, labels,
};
use rotor_sim::{CloudConfig, SimConfig};

const LIMIT: Duration = Duration::from_secs(120);

async fn rehearsal(clusters: usize) -> Rehearsal {
    rehearsal_with_clock(clusters, None).await
}

async fn rehearsal_with_clock(
    clusters: usize,
    clock: Option<rotor_controllers::Clock>,
) -> Rehearsal {
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
        clock,
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
            skip_clusters: Vec::new(),
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

/// Runs the `rotor` binary against the rehearsal's control plane.
fn rotor(r: &Rehearsal, dir: &std::path::Path, args: &[&str]) -> String {
    let kubeconfig = dir.join("rotor.kubeconfig");
    std::fs::write(&kubeconfig, &r.kubeconfig).expect("kubeconfig written");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rotor"))
        .args(args)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .output()
        .expect("rotor runs");
    assert!(
        out.status.success(),
        "rotor {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A swap that rolls back exhausts a zero budget: the rollout pauses, names the cluster, starts
/// nothing more; `rotor rollout retry CLUSTER` runs that cluster again and the rollout finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failure_budget_pauses_the_rollout_and_retry_resumes_it() {
    let r = rehearsal(6).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let load = rotor_traffic::load::Load::start(r.app_urls(), 4, Duration::from_secs(5));
    let api: Api<Rollout> = Api::all(r.client.clone());
    let mut ro = rollout("budget", 2, 0);
    ro.spec.strategy.bake_seconds = 1;
    api.create(&PostParams::default(), &ro)
        .await
        .expect("created");
    let swaps: Api<ClusterSwap> = Api::all(r.client.clone());
    // Break the canary's green before it gets traffic: its gate fails at the first step.
    let canary = common::eventually(LIMIT, "the canary's green exists", || async {
        let s = swaps
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .next()?;
        let st = s.status.clone()?;
        let green = st.green_instance.clone()?;
        (st.phase == Phase::Migrating || st.phase == Phase::Verifying).then_some((s, green))
    })
    .await;
    let (canary, green) = canary;
    assert!(r.sim.set_fault(&green, rotor_sim::Fault::TrafficErrors));
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
        cond.message.contains("HealthGateFailed"),
        "{}",
        cond.message
    );
    // Paused means no new swap starts.
    tokio::time::sleep(Duration::from_millis(1500)).await;
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
    let described = rotor(&r, dir.path(), &["describe", "rollout", "budget"]);
    assert!(described.contains("Paused"), "{described}");
    assert!(described.contains(&canary.spec.cluster_ref), "{described}");
    // Retry: the cluster runs again (a fresh green), the budget is whole again, the rollout ends.
    rotor(
        &r,
        dir.path(),
        &["rollout", "retry", &canary.spec.cluster_ref],
    );
    let done = wait_rollout(&r, "budget", |ro| {
        ro.status
            .as_ref()
            .is_some_and(|s| s.phase == RolloutPhase::Succeeded)
    })
    .await;
    let report = load.stop().await;
    let counts = done.status.unwrap_or_default().counts;
    assert_eq!(counts.succeeded, 6, "{counts:?}");
    assert_eq!(counts.failures(), 0, "{counts:?}");
    assert_eq!(
        r.sim.cloud.created_total(),
        7,
        "6 greens and the broken one"
    );
    assert_eq!(report.failed, 0, "{report:?}");
}

/// Manual approval: the canary runs, the next wave waits for `rotor approve`; a skipped cluster
/// never gets a swap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_waves_wait_for_approval_and_skipped_clusters_are_left_alone() {
    let r = rehearsal(5).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let api: Api<Rollout> = Api::all(r.client.clone());
    let mut ro = rollout("manual", 5, 0);
    ro.spec.approval = Approval::Manual;
    api.create(&PostParams::default(), &ro)
        .await
        .expect("created");
    let waiting = wait_rollout(&r, "manual", |ro| {
        ro.status
            .as_ref()
            .is_some_and(|s| s.phase == RolloutPhase::WaitingForApproval)
    })
    .await;
    let status = waiting.status.unwrap_or_default();
    assert_eq!(status.current_wave, Some(1));
    assert_eq!(
        status.counts.succeeded, 1,
        "the canary ran: {:?}",
        status.counts
    );
    // Skip one cluster of a later wave, then approve everything.
    let later = status.waves[2].clusters[0].clone();
    rotor(
        &r,
        dir.path(),
        &["rollout", "skip", &later, "--rollout", "manual"],
    );
    rotor(
        &r,
        dir.path(),
        &["approve", "rollout/manual", "--through-wave", "9"],
    );
    let done = wait_rollout(&r, "manual", |ro| {
        ro.status
            .as_ref()
            .is_some_and(|s| s.phase == RolloutPhase::Succeeded)
    })
    .await;
    let counts = done.status.unwrap_or_default().counts;
    assert_eq!(counts.succeeded, 4, "{counts:?}");
    assert_eq!(
        counts.total, 4,
        "the skipped cluster is out of the counts: {counts:?}"
    );
    let swaps: Api<ClusterSwap> = Api::all(r.client.clone());
    let all = swaps
        .list(&ListParams::default())
        .await
        .expect("swaps")
        .items;
    assert_eq!(all.len(), 4);
    assert!(
        all.iter().all(|s| s.spec.cluster_ref != later),
        "{later} was swapped"
    );
    let listed = rotor(&r, dir.path(), &["get", "rollouts"]);
    assert!(
        listed.contains("manual") && listed.contains("Succeeded"),
        "{listed}"
    );
}

/// No swap starts outside the maintenance windows; once the (test-controlled) clock enters one,
/// the rollout proceeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaps_start_only_inside_a_maintenance_window() {
    use chrono::TimeZone;
    // Monday 2026-11-23 03:00 UTC; the window is Monday 04:00–05:00.
    let now = Arc::new(Mutex::new(
        chrono::Utc
            .with_ymd_and_hms(2026, 11, 23, 3, 0, 0)
            .single()
            .expect("valid time"),
    ));
    let clock_now = now.clone();
    let clock: rotor_controllers::Clock =
        Arc::new(move || *clock_now.lock().unwrap_or_else(|p| p.into_inner()));
    let r = rehearsal_with_clock(3, Some(clock)).await;
    let api: Api<Rollout> = Api::all(r.client.clone());
    let mut ro = rollout("windowed", 3, 0);
    ro.spec.maintenance_windows = vec![rotor_api::MaintenanceWindow {
        days: vec![rotor_api::DayOfWeek::Mon],
        start: "04:00".into(),
        end: "05:00".into(),
    }];
    api.create(&PostParams::default(), &ro)
        .await
        .expect("created");
    let outside = wait_rollout(&r, "windowed", |ro| {
        ro.status.as_ref().is_some_and(|s| {
            rotor_api::find_condition(&s.conditions, rotor_api::ConditionType::InMaintenanceWindow)
                .is_some_and(|c| !c.is_true())
        })
    })
    .await;
    let cond = rotor_api::find_condition(
        &outside.status.unwrap_or_default().conditions,
        rotor_api::ConditionType::InMaintenanceWindow,
    )
    .cloned()
    .expect("condition");
    assert_eq!(cond.reason, rotor_api::Reason::OutsideMaintenanceWindow);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let swaps: Api<ClusterSwap> = Api::all(r.client.clone());
    assert!(
        swaps
            .list(&ListParams::default())
            .await
            .expect("swaps")
            .items
            .is_empty(),
        "a swap started outside the window"
    );
    // 04:30: inside.
    *now.lock().unwrap_or_else(|p| p.into_inner()) += chrono::Duration::minutes(90);
    let done = wait_rollout(&r, "windowed", |ro| {
        ro.status
            .as_ref()
            .is_some_and(|s| s.phase == RolloutPhase::Succeeded)
    })
    .await;
    assert_eq!(done.status.unwrap_or_default().counts.succeeded, 3);
}

/// `rotor rollout abort` pauses the rollout and rolls back the swaps in progress;
/// `rotor rollout rollback` brings back every cluster still within its retention.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_and_fleet_rollback_through_the_cli() {
    let r = rehearsal(4).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let api: Api<Rollout> = Api::all(r.client.clone());
    let swaps: Api<ClusterSwap> = Api::all(r.client.clone());
    // Fleet rollback: swaps that reached 100 % stay in retention (600 s) until rolled back.
    let mut ro = rollout("retained", 4, 0);
    ro.spec.waves = vec![Wave {
        name: "all".into(),
        percent: Some(100),
        selector: None,
    }];
    ro.spec.strategy.traffic_steps = vec![100];
    ro.spec.strategy.blue_retention_seconds = 600;
    api.create(&PostParams::default(), &ro)
        .await
        .expect("created");
    common::eventually(LIMIT, "every swap retains its blue", || async {
        let all = swaps.list(&ListParams::default()).await.ok()?.items;
        (all.len() == 4
            && all.iter().all(|s| {
                s.status
                    .as_ref()
                    .is_some_and(|st| st.phase == Phase::Retaining)
            }))
        .then_some(())
    })
    .await;
    let out = rotor(&r, dir.path(), &["rollout", "rollback", "retained"]);
    assert!(out.contains("4 swaps rolling back"), "{out}");
    common::eventually(LIMIT, "every swap rolled back", || async {
        let all = swaps.list(&ListParams::default()).await.ok()?.items;
        all.iter()
            .all(|s| {
                s.status
                    .as_ref()
                    .is_some_and(|st| st.phase == Phase::RolledBack)
            })
            .then_some(())
    })
    .await;
    for c in &r.fleet {
        let cluster: Api<rotor_api::Cluster> = Api::all(r.client.clone());
        let st = cluster
            .get(&c.name_any())
            .await
            .expect("cluster")
            .status
            .unwrap_or_default();
        assert_eq!(
            st.active_instance.as_deref(),
            Some(c.name_any().as_str()),
            "blue serves again"
        );
    }
    let paused = api
        .get("retained")
        .await
        .expect("get")
        .status
        .unwrap_or_default();
    assert_eq!(paused.phase, RolloutPhase::Paused);

    // Abort: a second rollout whose swaps are mid-traffic-shift.
    for s in swaps
        .list(&ListParams::default())
        .await
        .expect("swaps")
        .items
    {
        swaps
            .delete(&s.name_any(), &Default::default())
            .await
            .expect("cleared");
    }
    let mut ro = rollout("aborted", 2, 4);
    ro.spec.waves = vec![Wave {
        name: "all".into(),
        percent: Some(100),
        selector: None,
    }];
    ro.spec.strategy.traffic_steps = vec![10, 100];
    ro.spec.strategy.bake_seconds = 600;
    api.create(&PostParams::default(), &ro)
        .await
        .expect("created");
    let running = common::eventually(LIMIT, "two swaps shift traffic", || async {
        let all: Vec<ClusterSwap> = swaps
            .list(&ListParams::default().labels("rotor.dev/rollout=aborted"))
            .await
            .ok()?
            .items;
        (all.len() == 2
            && all.iter().all(|s| {
                s.status
                    .as_ref()
                    .is_some_and(|st| st.phase == Phase::ShiftingTraffic)
            }))
        .then_some(all)
    })
    .await;
    let out = rotor(&r, dir.path(), &["rollout", "abort", "aborted"]);
    assert!(out.contains("2 swaps in progress rolling back"), "{out}");
    common::eventually(LIMIT, "the aborted swaps rolled back", || async {
        let mut done = 0;
        for s in &running {
            let phase = swaps.get(&s.name_any()).await.ok()?.status?.phase;
            done += usize::from(phase == Phase::RolledBack);
        }
        (done == 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let all = swaps
        .list(&ListParams::default().labels("rotor.dev/rollout=aborted"))
        .await
        .expect("swaps")
        .items;
    assert_eq!(all.len(), 2, "an aborted rollout started another swap");
    let st = api
        .get("aborted")
        .await
        .expect("get")
        .status
        .unwrap_or_default();
    assert_eq!(st.phase, RolloutPhase::Paused);
}
