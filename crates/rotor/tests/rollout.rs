//! Fleet rollouts end to end: waves in order, the concurrency limits (fleet-wide and per wave)
//! at every sampled moment, ordering, the failure budget pausing the rollout, stopped and
//! unreachable clusters, parking at the safe point, windows, approval, abort and fleet rollback.

use crate::common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use rotor::rehearsal::Rehearsal;
use rotor_api::{
    Approval, ClusterSwap, LabelSelector, Phase, Rollout, RolloutPhase, RolloutSpec, SwapStrategy,
    SwapTarget, Wave, WavePhase, labels,
};

const LIMIT: Duration = Duration::from_secs(120);

async fn rehearsal(clusters: usize) -> Rehearsal {
    rehearsal_with_clock(clusters, None).await
}

async fn rehearsal_with_clock(
    clusters: usize,
    clock: Option<rotor_controllers::Clock>,
) -> Rehearsal {
    rehearsal_with(clusters, clock, Duration::from_millis(200)).await
}

async fn rehearsal_with(
    clusters: usize,
    clock: Option<rotor_controllers::Clock>,
    create_latency: Duration,
) -> Rehearsal {
    let fleet = rotor_api::sample_fleet(clusters);
    common::fleet::quick_rehearsal(fleet, clock, create_latency).await
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
                    ..Default::default()
                },
                Wave {
                    name: "staging".into(),
                    percent: None,
                    selector: Some(staging),
                    ..Default::default()
                },
                Wave {
                    name: "half".into(),
                    percent: Some(50),
                    selector: None,
                    ..Default::default()
                },
            ],
            max_concurrent_swaps: max_concurrent,
            bake_seconds_between_waves: 1,
            approval: Approval::Automatic,
            approved_through_wave: None,
            failure_budget: IntOrString::Int(failure_budget as i32),
            on_budget_exceeded: Default::default(),
            notifications: Vec::new(),
            wave_gates: Vec::new(),
            order_by: Vec::new(),
            unavailable_clusters: Default::default(),
            preflight: Default::default(),
            maintenance_windows: Vec::new(),
            strategy: SwapStrategy {
                traffic_steps: vec![50, 100],
                bake_seconds: 0,
                blue_retention_seconds: 0,
                ..Default::default()
            },
            paused: false,
            skip_clusters: Vec::new(),
            retry_failed: 0,
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

/// Waits for rollout `name` to be in `phase`.
async fn wait_phase(r: &Rehearsal, name: &str, phase: RolloutPhase) -> Rollout {
    wait_rollout(r, name, |ro| {
        ro.status.as_ref().is_some_and(|s| s.phase == phase)
    })
    .await
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
    let out = rotor_output(r, dir, args);
    assert!(
        out.status.success(),
        "rotor {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the `rotor` binary against the rehearsal's control plane, however it ends.
fn rotor_output(r: &Rehearsal, dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let kubeconfig = dir.join("rotor.kubeconfig");
    std::fs::write(&kubeconfig, &r.kubeconfig).expect("kubeconfig written");
    std::process::Command::new(env!("CARGO_BIN_EXE_rotor"))
        .args(args)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .output()
        .expect("rotor runs")
}

/// A swap that rolls back exhausts the canary wave's zero budget (the rollout-wide budget of 50 %
/// still holds): the rollout pauses, names the wave and the cluster, starts nothing more;
/// `rotor rollout retry CLUSTER` runs that cluster again and the rollout finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failure_budget_pauses_the_rollout_and_retry_resumes_it() {
    let r = rehearsal(6).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let load = rotor_traffic::load::Load::start(r.app_urls(), 4, Duration::from_secs(5));
    let api: Api<Rollout> = Api::all(r.client.clone());
    let mut ro = rollout("budget", 2, 0);
    ro.spec.strategy.bake_seconds = 1;
    // The rollout as a whole tolerates half its clusters failing; the canary wave none.
    ro.spec.failure_budget = IntOrString::String("50%".into());
    ro.spec.waves[0].failure_budget = Some(IntOrString::Int(0));
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
    assert!(cond.message.starts_with("wave canary:"), "{}", cond.message);
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
    // Monday 2026-11-23 03:00 UTC; the window is Monday 04:00–08:00 UTC.
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
        end: "08:00".into(),
        ..Default::default()
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
    let outside_plan = outside.status.clone().unwrap_or_default().waves;
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
    // 04:30: inside the rollout's window, but not inside the own window of `late`: 07:00–08:00
    // in Berlin (06:00–07:00 UTC in November), so its swap waits while the others run.
    // (`late` is in the last wave: a cluster that waits holds its wave, and the waves after it.)
    let clusters: Api<rotor_api::Cluster> = Api::all(r.client.clone());
    let late = outside_plan
        .last()
        .and_then(|w| w.clusters.first())
        .cloned()
        .expect("a last wave with a cluster");
    clusters
        .patch(
            &late,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"maintenanceWindows": [
                {"days": ["Mon"], "start": "07:00", "end": "08:00", "timeZone": "Europe/Berlin"}
            ]}})),
        )
        .await
        .expect("cluster window set");
    *now.lock().unwrap_or_else(|p| p.into_inner()) += chrono::Duration::minutes(90);
    let waiting = wait_rollout(&r, "windowed", |ro| {
        ro.status.as_ref().is_some_and(|s| {
            s.counts.succeeded == 2
                && rotor_api::find_condition(&s.conditions, rotor_api::ConditionType::Degraded)
                    .is_some_and(|c| c.is_true())
        })
    })
    .await;
    let cond = rotor_api::find_condition(
        &waiting.status.unwrap_or_default().conditions,
        rotor_api::ConditionType::Degraded,
    )
    .cloned()
    .expect("Degraded");
    assert!(
        cond.message.contains(&late) && cond.message.contains("maintenance windows"),
        "{}",
        cond.message
    );
    assert!(
        swaps
            .list(&ListParams::default())
            .await
            .expect("swaps")
            .items
            .iter()
            .all(|s| s.spec.cluster_ref != late),
        "a swap started outside the cluster's own window"
    );
    // 06:30 UTC = 07:30 in Berlin: its window is open.
    *now.lock().unwrap_or_else(|p| p.into_inner()) += chrono::Duration::minutes(120);
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
        ..Default::default()
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
        ..Default::default()
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

/// `orderBy: [region]` fills the waves region by region; a wave's own `maxConcurrent` holds at
/// every sampled moment; a cluster marked stopped is skipped (recorded, no swap, no failure).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordering_per_wave_limits_and_stopped_clusters() {
    let r = rehearsal(6).await;
    let clusters: Api<rotor_api::Cluster> = Api::all(r.client.clone());
    let fleet = clusters
        .list(&ListParams::default())
        .await
        .expect("clusters")
        .items;
    let stopped = fleet[3].name_any();
    clusters
        .patch(
            &stopped,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"stopped": true}})),
        )
        .await
        .expect("marked stopped");
    let region_of: BTreeMap<String, String> = fleet
        .iter()
        .map(|c| (c.name_any(), c.spec.region.clone()))
        .collect();
    let (samples, sampling) = sampler(&r);
    let api: Api<Rollout> = Api::all(r.client.clone());
    let mut ro = rollout("ordered", 3, 0);
    ro.spec.order_by = vec!["region".into()];
    ro.spec.waves = vec![
        Wave {
            name: "canary".into(),
            count: Some(1),
            ..Default::default()
        },
        Wave {
            name: "rest".into(),
            percent: Some(100),
            max_concurrent: Some(1),
            ..Default::default()
        },
    ];
    api.create(&PostParams::default(), &ro)
        .await
        .expect("created");
    let done = wait_rollout(&r, "ordered", |ro| {
        ro.status.as_ref().is_some_and(|s| {
            matches!(
                s.phase,
                RolloutPhase::Succeeded | RolloutPhase::Failed | RolloutPhase::Paused
            )
        })
    })
    .await;
    sampling.abort();
    let status = done.status.clone().unwrap_or_default();
    assert_eq!(status.phase, RolloutPhase::Succeeded, "{status:?}");
    assert_eq!(status.counts.succeeded, 5, "{:?}", status.counts);
    assert_eq!(status.counts.failures(), 0, "{:?}", status.counts);
    assert_eq!(status.waves[1].counts.succeeded, 4, "{:?}", status.waves[1]);
    // The stopped cluster: skipped with its reason, never swapped.
    let skipped: Vec<(String, String)> = status
        .skipped
        .iter()
        .map(|s| (s.cluster.clone(), s.reason.clone()))
        .collect();
    assert_eq!(skipped, vec![(stopped.clone(), "Stopped".to_string())]);
    let swaps: Api<ClusterSwap> = Api::all(r.client.clone());
    let all = swaps
        .list(&ListParams::default())
        .await
        .expect("swaps")
        .items;
    assert_eq!(all.len(), 5);
    assert!(all.iter().all(|s| s.spec.cluster_ref != stopped));
    // The plan is in (region, name) order across waves.
    let planned: Vec<&String> = status.waves.iter().flat_map(|w| &w.clusters).collect();
    let keys: Vec<(&String, &String)> = planned.iter().map(|c| (&region_of[*c], *c)).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    // The wave's limit of 1 held at every sampled moment (the fleet-wide limit is 3), so its
    // swaps started one after another, in plan order.
    let samples = samples.lock().expect("samples").clone();
    let mut first_seen: Vec<String> = Vec::new();
    for sample in &samples {
        let running_rest = sample
            .iter()
            .filter(|(_, w, p)| w == "rest" && !p.is_terminal())
            .count();
        assert!(
            running_rest <= 1,
            "{running_rest} of wave rest at once: {sample:?}"
        );
        for (name, wave, _) in sample {
            if wave == "rest" && !first_seen.contains(name) {
                first_seen.push(name.clone());
            }
        }
    }
    let expected: Vec<String> = status.waves[1]
        .clusters
        .iter()
        .filter(|c| **c != stopped)
        .map(|c| rotor_controllers::rollout::swap_name("ordered", c))
        .collect();
    assert_eq!(first_seen, expected, "start order");
}

/// Pausing a rollout parks its running swaps at the safe point (green verified, no traffic
/// moved) instead of letting them shift traffic; resuming lets them finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_parks_running_swaps_before_traffic_moves() {
    // A slow cloud, so the swaps are still provisioning when the rollout is paused.
    let r = rehearsal_with(2, None, Duration::from_millis(1500)).await;
    let load = rotor_traffic::load::Load::start(r.app_urls(), 4, Duration::from_secs(5));
    let api: Api<Rollout> = Api::all(r.client.clone());
    let mut ro = rollout("parking", 2, 0);
    ro.spec.waves = vec![Wave {
        name: "all".into(),
        percent: Some(100),
        ..Default::default()
    }];
    api.create(&PostParams::default(), &ro)
        .await
        .expect("created");
    let swaps: Api<ClusterSwap> = Api::all(r.client.clone());
    common::eventually(LIMIT, "both swaps exist", || async {
        let n = swaps.list(&ListParams::default()).await.ok()?.items.len();
        (n == 2).then_some(())
    })
    .await;
    let pause = |on: bool| {
        let api = api.clone();
        async move {
            api.patch(
                "parking",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"paused": on}})),
            )
            .await
            .expect("paused")
        }
    };
    pause(true).await;
    let parked = wait_rollout(&r, "parking", |ro| {
        ro.status.as_ref().is_some_and(|s| s.parked.len() == 2)
    })
    .await;
    assert_eq!(
        parked.status.unwrap_or_default().phase,
        RolloutPhase::Paused
    );
    // Both swaps reach Verifying and stay there with no traffic on green.
    let held = common::eventually(LIMIT, "both swaps parked in Verifying", || async {
        let items = swaps.list(&ListParams::default()).await.ok()?.items;
        items
            .iter()
            .all(|s| {
                let st = s.status.clone().unwrap_or_default();
                s.spec.hold_before_traffic
                    && st.phase == Phase::Verifying
                    && st
                        .conditions
                        .iter()
                        .any(|c| c.reason == rotor_api::Reason::Parked)
            })
            .then_some(items)
    })
    .await;
    assert_eq!(held.len(), 2);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for s in swaps
        .list(&ListParams::default())
        .await
        .expect("swaps")
        .items
    {
        let st = s.status.clone().unwrap_or_default();
        assert_eq!(
            st.phase,
            Phase::Verifying,
            "{} moved while parked",
            s.name_any()
        );
        assert_eq!(st.green_weight_percent, 0, "{}", s.name_any());
    }
    pause(false).await;
    let done = wait_rollout(&r, "parking", |ro| {
        ro.status
            .as_ref()
            .is_some_and(|s| s.phase == RolloutPhase::Succeeded)
    })
    .await;
    let status = done.status.unwrap_or_default();
    assert_eq!(status.counts.succeeded, 2, "{:?}", status.counts);
    assert!(status.parked.is_empty());
    let report = load.stop().await;
    assert_eq!(report.failed, 0, "{report:?}");
}

/// With `unavailableClusters: Wait`, a cluster whose API is down holds its wave (the rollout
/// says why) and is swapped once it answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_clusters_wait_by_policy() {
    let r = rehearsal(3).await;
    let clusters: Api<rotor_api::Cluster> = Api::all(r.client.clone());
    let fleet = clusters
        .list(&ListParams::default())
        .await
        .expect("clusters")
        .items;
    let down = fleet[0].name_any();
    let instance = fleet[0]
        .status
        .clone()
        .and_then(|s| s.active_instance)
        .expect("adopted instance");
    assert!(r.sim.set_fault(&instance, rotor_sim::Fault::ApiUnavailable));
    common::eventually(LIMIT, "the cluster is seen unreachable", || async {
        let c = clusters.get(&down).await.ok()?;
        let st = c.status?;
        rotor_api::find_condition(&st.conditions, rotor_api::ConditionType::Reachable)
            .filter(|c| !c.is_true())
            .map(|_| ())
    })
    .await;
    let api: Api<Rollout> = Api::all(r.client.clone());
    let mut ro = rollout("waiting", 3, 0);
    ro.spec.unavailable_clusters = rotor_api::UnavailablePolicy::Wait;
    ro.spec.waves = vec![Wave {
        name: "all".into(),
        percent: Some(100),
        ..Default::default()
    }];
    api.create(&PostParams::default(), &ro)
        .await
        .expect("created");
    let degraded = wait_rollout(&r, "waiting", |ro| {
        ro.status.as_ref().is_some_and(|s| {
            s.counts.succeeded == 2
                && rotor_api::find_condition(&s.conditions, rotor_api::ConditionType::Degraded)
                    .is_some_and(|c| c.is_true())
        })
    })
    .await;
    let status = degraded.status.unwrap_or_default();
    let cond = rotor_api::find_condition(&status.conditions, rotor_api::ConditionType::Degraded)
        .expect("Degraded");
    assert_eq!(cond.reason, rotor_api::Reason::ClusterUnavailable);
    assert!(cond.message.contains(&down), "{}", cond.message);
    assert_eq!(status.phase, RolloutPhase::Progressing);
    assert!(status.skipped.is_empty(), "{:?}", status.skipped);
    // The pre-flight saw it unreachable and left it to the policy instead of blocking it.
    let preflight = status.preflight.clone().expect("pre-flight ran");
    assert_eq!(preflight.unavailable, vec![down.clone()]);
    assert!(preflight.blocked.is_empty(), "{:?}", preflight.blocked);
    let swaps: Api<ClusterSwap> = Api::all(r.client.clone());
    assert!(
        swaps
            .list(&ListParams::default())
            .await
            .expect("swaps")
            .items
            .iter()
            .all(|s| s.spec.cluster_ref != down),
        "a swap started for an unreachable cluster"
    );
    r.sim.clear_faults(&instance);
    let done = wait_rollout(&r, "waiting", |ro| {
        ro.status
            .as_ref()
            .is_some_and(|s| s.phase == RolloutPhase::Succeeded)
    })
    .await;
    assert_eq!(done.status.unwrap_or_default().counts.succeeded, 3);
}

/// The pre-flight runs before the first wave: a cluster with a PVC-backed workload and no
/// stateful-data policy is reported blocked in the Rollout's status before any swap starts.
/// `StopRollout` pauses until an operator skips it; `SkipBlocked` leaves it out by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_blockers_show_before_any_swap_starts() {
    let r = rehearsal(3).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let blocked = r.fleet[1].name_any();
    let member = r.member(&blocked).await.expect("member client");
    let sts: Api<k8s_openapi::api::apps::v1::StatefulSet> =
        Api::namespaced(member, rotor::rehearsal::APP_NAMESPACE);
    let db: k8s_openapi::api::apps::v1::StatefulSet = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "db"},
        "spec": {
            "serviceName": "db",
            "replicas": 1,
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "db", "image": "postgres:17"}]}
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "1Gi"}}}
            }]
        }
    }))
    .expect("statefulset");
    sts.create(&PostParams::default(), &db)
        .await
        .expect("statefulset created");

    let api: Api<Rollout> = Api::all(r.client.clone());
    let mut ro = rollout("checked", 3, 0);
    ro.spec.preflight = rotor_api::PreflightPolicy::StopRollout;
    api.create(&PostParams::default(), &ro)
        .await
        .expect("created");
    let paused = wait_rollout(&r, "checked", |ro| {
        ro.status
            .as_ref()
            .is_some_and(|s| s.phase == RolloutPhase::Paused)
    })
    .await;
    let status = paused.status.unwrap_or_default();
    let preflight = status.preflight.clone().expect("pre-flight result");
    assert_eq!(preflight.checked, 3);
    assert_eq!(preflight.blocked.len(), 1, "{preflight:?}");
    assert_eq!(preflight.blocked[0].cluster, blocked);
    let why = preflight.blocked[0].reasons.join("; ");
    assert!(
        why.contains("persistent volumes") && why.contains("db"),
        "{why}"
    );
    let cond = rotor_api::find_condition(&status.conditions, rotor_api::ConditionType::Paused)
        .expect("Paused");
    assert_eq!(cond.reason, rotor_api::Reason::PreflightBlocked);
    assert!(cond.message.contains(&blocked), "{}", cond.message);
    let swaps: Api<ClusterSwap> = Api::all(r.client.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        swaps
            .list(&ListParams::default())
            .await
            .expect("swaps")
            .items
            .is_empty(),
        "a swap started although the pre-flight stopped the rollout"
    );
    let described = rotor(&r, dir.path(), &["describe", "rollout", "checked"]);
    assert!(described.contains("PreflightBlocked"), "{described}");
    // The operator skips the blocked cluster: the others are swapped, it is not.
    rotor(
        &r,
        dir.path(),
        &["rollout", "skip", &blocked, "--rollout", "checked"],
    );
    let done = wait_rollout(&r, "checked", |ro| {
        ro.status
            .as_ref()
            .is_some_and(|s| s.phase == RolloutPhase::Succeeded)
    })
    .await;
    assert_eq!(done.status.unwrap_or_default().counts.succeeded, 2);
    let all = swaps
        .list(&ListParams::default())
        .await
        .expect("swaps")
        .items;
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|s| s.spec.cluster_ref != blocked));

    // SkipBlocked (the default): the blocked cluster is left out without a person.
    let mut only = rollout("only-blocked", 3, 0);
    only.spec.cluster_selector = LabelSelector {
        match_expressions: Some(vec![rotor_api::LabelSelectorRequirement {
            key: labels::CLOUD.into(),
            operator: "Exists".into(),
            values: None,
        }]),
        ..Default::default()
    };
    only.spec.skip_clusters = r
        .fleet
        .iter()
        .map(|c| c.name_any())
        .filter(|n| *n != blocked)
        .collect();
    api.create(&PostParams::default(), &only)
        .await
        .expect("created");
    let done = wait_rollout(&r, "only-blocked", |ro| {
        ro.status
            .as_ref()
            .is_some_and(|s| s.phase == RolloutPhase::Succeeded)
    })
    .await;
    let status = done.status.unwrap_or_default();
    let left_out: Vec<(String, String)> = status
        .skipped
        .iter()
        .filter(|s| s.reason != "Operator")
        .map(|s| (s.cluster.clone(), s.reason.clone()))
        .collect();
    assert_eq!(left_out, vec![(blocked.clone(), "PreflightBlocked".into())]);
    assert_eq!(status.counts.total, 0, "{:?}", status.counts);
    assert_eq!(
        swaps
            .list(&ListParams::default())
            .await
            .expect("swaps")
            .items
            .len(),
        2,
        "no swap for the blocked cluster"
    );
}

/// The pre-flight rehearses each cluster's migration on the target release: an object it
/// refuses blocks the cluster before any swap, named with its field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_names_an_object_the_target_release_refuses() {
    let r = rehearsal(1).await;
    let name = r.fleet[0].name_any();
    let server = r.sim.cluster(&name).expect("member").server.clone();
    common::fleet::store_mistyped_config_map(&server, rotor::rehearsal::APP_NAMESPACE).await;
    let api: Api<Rollout> = Api::all(r.client.clone());
    let mut ro = rollout("refusing", 1, 0);
    ro.spec.cluster_selector = LabelSelector {
        match_expressions: Some(vec![rotor_api::LabelSelectorRequirement {
            key: labels::CLOUD.into(),
            operator: "Exists".into(),
            values: None,
        }]),
        ..Default::default()
    };
    ro.spec.preflight = rotor_api::PreflightPolicy::StopRollout;
    api.create(&PostParams::default(), &ro)
        .await
        .expect("created");
    let paused = wait_rollout(&r, "refusing", |ro| {
        ro.status
            .as_ref()
            .is_some_and(|s| s.phase == RolloutPhase::Paused)
    })
    .await;
    let preflight = paused
        .status
        .unwrap_or_default()
        .preflight
        .expect("pre-flight result");
    assert_eq!(preflight.blocked.len(), 1, "{preflight:?}");
    let why = preflight.blocked[0].reasons.join("; ");
    assert!(
        why.contains("refuses")
            && why.contains(&format!(
                "ConfigMap {}/legacy",
                rotor::rehearsal::APP_NAMESPACE
            ))
            && why.contains("ConfigMap.data"),
        "{why}"
    );
    let swaps: Api<ClusterSwap> = Api::all(r.client.clone());
    assert!(
        swaps
            .list(&ListParams::default())
            .await
            .expect("swaps")
            .items
            .is_empty()
    );
}

/// `onBudgetExceeded: RollbackFleet`: one swap rolling back exceeds the budget of 0, the rollout
/// aborts — no new swap starts, every swap not yet decommissioned rolls back (blue serves
/// everywhere again), with no failed request — and says why. `rotor rollout retry --failed`
/// then runs every rolled-back and skipped cluster again against the same plan, and the
/// rollout succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_fleet_rolls_back_every_unfinished_swap_and_retry_failed_runs_them_again() {
    let r = rehearsal(6).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let load = rotor_traffic::load::Load::start(r.app_urls(), 4, Duration::from_secs(5));
    let api: Api<Rollout> = Api::all(r.client.clone());
    let swaps: Api<ClusterSwap> = Api::all(r.client.clone());
    let names: Vec<String> = r.fleet.iter().map(|c| c.name_any()).collect();
    let mut ro = rollout("fleet", 4, 0);
    ro.spec.on_budget_exceeded = rotor_api::BudgetPolicy::RollbackFleet;
    ro.spec.waves = vec![Wave {
        name: "all".into(),
        percent: Some(100),
        ..Default::default()
    }];
    // Swaps that reach 100 % stay in retention, so they can still go back; the last cluster is
    // skipped by an operator, the fifth waits for a slot.
    ro.spec.strategy.bake_seconds = 1;
    ro.spec.strategy.blue_retention_seconds = 600;
    ro.spec.skip_clusters = vec![names[5].clone()];
    api.create(&PostParams::default(), &ro)
        .await
        .expect("created");
    let (broken, green) = common::eventually(LIMIT, "a green exists", || async {
        let all = swaps.list(&ListParams::default()).await.ok()?.items;
        all.into_iter().find_map(|s| {
            let st = s.status.clone()?;
            let green = st.green_instance.clone()?;
            matches!(st.phase, Phase::Migrating | Phase::Verifying).then_some((s, green))
        })
    })
    .await;
    assert!(r.sim.set_fault(&green, rotor_sim::Fault::TrafficErrors));
    let ended = wait_phase(&r, "fleet", RolloutPhase::RolledBack).await;
    let status = ended.status.clone().unwrap_or_default();
    let cluster = &broken.spec.cluster_ref;
    let record = status.fleet_rollback.clone().expect("status.fleetRollback");
    assert_eq!(record.failed.len(), 1, "{record:?}");
    assert!(
        record.failed[0].starts_with(&format!("{cluster} (HealthGateFailed")),
        "{record:?}"
    );
    let ready = rotor_api::find_condition(&status.conditions, rotor_api::ConditionType::Ready)
        .expect("Ready");
    assert_eq!(ready.reason, rotor_api::Reason::FleetRolledBack);
    assert!(
        ready.message.contains(cluster.as_str()),
        "{}",
        ready.message
    );
    assert!(ready.message.contains("4 rolled back"), "{}", ready.message);
    // Four swaps started, every one rolled back; none for the fifth or the skipped cluster.
    let all = swaps
        .list(&ListParams::default())
        .await
        .expect("swaps")
        .items;
    let phases: Vec<Phase> = all
        .iter()
        .map(|s| s.status.clone().unwrap_or_default().phase)
        .collect();
    assert_eq!(phases, [Phase::RolledBack; 4], "{phases:?}");
    let clusters: Api<rotor_api::Cluster> = Api::all(r.client.clone());
    for name in &names {
        let st = clusters.get(name).await.expect("cluster").status;
        let active = st.and_then(|s| s.active_instance);
        assert_eq!(active.as_deref(), Some(name.as_str()), "blue serves {name}");
    }
    let described = rotor(&r, dir.path(), &["describe", "rollout", "fleet"]);
    assert!(described.contains("RolledBack"), "{described}");
    let told = common::events_of(&r, "fleet").await;
    let abort = told
        .iter()
        .find(|(reason, _, _)| reason == "FailureBudgetExceeded");
    let (_, warning, note) = abort.expect("a FailureBudgetExceeded Event");
    assert!(*warning && note.contains(cluster.as_str()), "{note}");
    assert!(note.contains("onBudgetExceeded: RollbackFleet"), "{note}");
    let asked = told
        .iter()
        .any(|(reason, _, _)| reason == "FleetRollingBack");
    assert!(asked, "{told:?}");

    // Retry: the rolled-back four, the one that never started and the skipped one all run.
    let patch = serde_json::json!({"spec": {"strategy": {"blueRetentionSeconds": 0}}});
    api.patch("fleet", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("retention shortened");
    let out = rotor(&r, dir.path(), &["rollout", "retry", "--failed", "fleet"]);
    assert!(out.contains("spec.retryFailed=1"), "{out}");
    let done = wait_phase(&r, "fleet", RolloutPhase::Succeeded).await;
    let report = load.stop().await;
    let after = done.status.unwrap_or_default();
    assert_eq!(after.counts.succeeded, 6, "{:?}", after.counts);
    assert_eq!(after.fleet_rollback, None);
    assert_eq!(after.retried_failed, 1);
    assert!(after.skipped.is_empty(), "{:?}", after.skipped);
    let clusters_of = |st: &rotor_api::RolloutStatus| -> Vec<Vec<String>> {
        st.waves.iter().map(|w| w.clusters.clone()).collect()
    };
    assert_eq!(
        clusters_of(&after),
        clusters_of(&status),
        "the same frozen plan"
    );
    assert_eq!(r.sim.cloud.created_total(), 10, "4 greens, then 6");
    assert_eq!(report.failed, 0, "{report:?}");
}

/// `rotor rollout plan -f --json` for a manifest (and a server-side dry run of it) shows the
/// waves, in order, that the rollout freezes once created, and the stopped cluster it then
/// leaves out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_of_a_manifest_is_the_plan_the_rollout_freezes() {
    let r = rehearsal(5).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let clusters: Api<rotor_api::Cluster> = Api::all(r.client.clone());
    let stopped = r.fleet[4].name_any();
    let patch = serde_json::json!({"spec": {"stopped": true}});
    clusters
        .patch(&stopped, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("marked stopped");
    let mut ro = rollout("planned", 2, 1);
    ro.spec.order_by = vec!["region".into()];
    let manifest = dir.path().join("rollout.yaml");
    std::fs::write(&manifest, yaml_serde::to_string(&ro).expect("yaml")).expect("written");
    let file = manifest.to_str().expect("path");
    let out = rotor(&r, dir.path(), &["rollout", "plan", "-f", file, "--json"]);
    let plan: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    let planned: Vec<(String, Vec<String>)> = plan["waves"]
        .as_array()
        .expect("waves")
        .iter()
        .map(|w| {
            let clusters = w["clusters"].as_array().expect("clusters");
            let clusters = clusters
                .iter()
                .map(|c| c.as_str().expect("name").to_string());
            (
                w["name"].as_str().expect("name").to_string(),
                clusters.collect(),
            )
        })
        .collect();
    assert_eq!(plan["blockers"][0]["cluster"], stopped.as_str(), "{plan}");
    assert_eq!(plan["blockers"][0]["reason"], "Stopped", "{plan}");
    assert!(
        plan["estimateCounts"]
            .as_str()
            .expect("said")
            .contains("bake")
    );
    let human = rotor(&r, dir.path(), &["rollout", "plan", "-f", file]);
    assert!(
        human.contains("Blockers:") && human.contains(&stopped),
        "{human}"
    );
    // A manifest the controller would refuse is refused, naming the object and the field.
    let mut bad = ro.clone();
    bad.spec.waves[0].percent = Some(0);
    let bad_file = dir.path().join("bad.yaml");
    std::fs::write(&bad_file, yaml_serde::to_string(&bad).expect("yaml")).expect("written");
    let bad_path = bad_file.to_str().expect("path");
    let out = rotor_output(&r, dir.path(), &["rollout", "plan", "-f", bad_path]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("Rollout planned: spec.waves[0].percent"),
        "{stderr}"
    );

    // A server-side dry run answers the same plan in the Rollout's status and writes nothing.
    let api: Api<Rollout> = Api::all(r.client.clone());
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let answered = api.create(&dry, &ro).await.expect("dry run");
    let dry_waves: Vec<(String, Vec<String>)> = answered
        .status
        .unwrap_or_default()
        .waves
        .into_iter()
        .map(|w| (w.name, w.clusters))
        .collect();
    assert_eq!(dry_waves, planned);
    assert!(api.get_opt("planned").await.expect("get").is_none());
    api.create(&PostParams::default(), &ro)
        .await
        .expect("created");
    let done = wait_phase(&r, "planned", RolloutPhase::Succeeded).await;
    let status = done.status.unwrap_or_default();
    let frozen: Vec<(String, Vec<String>)> = status
        .waves
        .iter()
        .map(|w| (w.name.clone(), w.clusters.clone()))
        .collect();
    assert_eq!(planned, frozen);
    let skipped: Vec<(&str, &str)> = status
        .skipped
        .iter()
        .map(|s| (s.cluster.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(skipped, [(stopped.as_str(), "Stopped")]);
}

/// A webhook receiver on a loopback port: the JSON bodies POSTed to each path.
async fn sink_receiver() -> (String, Arc<Mutex<BTreeMap<String, Vec<serde_json::Value>>>>) {
    type Got = Arc<Mutex<BTreeMap<String, Vec<serde_json::Value>>>>;
    async fn take(
        axum::extract::State(got): axum::extract::State<Got>,
        uri: axum::http::Uri,
        body: String,
    ) -> &'static str {
        let value = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
        let mut got = got.lock().expect("bodies");
        got.entry(uri.path().to_string()).or_default().push(value);
        "ok"
    }
    let got: Got = Arc::default();
    let app = axum::Router::new()
        .fallback(axum::routing::post(take))
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), got)
}

/// The milestones of a manual rollout reach its sinks as each asks (every one in rotor's
/// generic JSON; only approvals and the end as Slack text), and a sink whose Secret lacks its
/// key is a Warning Event naming the sink.
#[tokio::test]
async fn a_rollouts_milestones_reach_its_notification_sinks() {
    use k8s_openapi::api::core::v1::{Namespace, Secret};
    use rotor_api::{Milestone, NotificationFormat, NotificationSink, SecretKeyRef};
    let r = rehearsal(4).await;
    let (base, got) = sink_receiver().await;
    let namespaces: Api<Namespace> = Api::all(r.client.clone());
    let ns = serde_json::from_value(serde_json::json!({"metadata": {"name": "rotor-system"}}));
    let _ = namespaces
        .create(&PostParams::default(), &ns.unwrap())
        .await;
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "sinks", "namespace": "rotor-system"},
        "stringData": {"ops": format!("{base}/ops/s3cret"), "chat": format!("{base}/chat/s3cret")},
    }))
    .unwrap();
    Api::<Secret>::namespaced(r.client.clone(), "rotor-system")
        .create(&PostParams::default(), &secret)
        .await
        .expect("Secret");
    let sink = |name: &str, key: &str, format, events: Vec<Milestone>| NotificationSink {
        name: name.into(),
        url_from: SecretKeyRef {
            namespace: None,
            name: "sinks".into(),
            key: key.into(),
        },
        format,
        events,
    };
    let mut ro = rollout("told", 4, 1);
    ro.spec.approval = Approval::Manual;
    ro.spec.notifications = vec![
        sink("ops", "ops", NotificationFormat::Generic, vec![]),
        sink(
            "chat",
            "chat",
            NotificationFormat::Slack,
            vec![Milestone::ApprovalNeeded, Milestone::Finished],
        ),
        sink("broken", "missing", NotificationFormat::Generic, vec![]),
    ];
    let rollouts: Api<Rollout> = Api::all(r.client.clone());
    rollouts
        .create(&PostParams::default(), &ro)
        .await
        .expect("rollout");
    let told = |path: &str, event: &str| {
        let got = got.lock().expect("bodies");
        got.get(path).is_some_and(|bodies| {
            bodies.iter().any(|b| {
                b["event"] == event || b["text"].as_str().is_some_and(|t| t.contains(event))
            })
        })
    };
    common::eventually(LIMIT, "approval asked of both sinks", || async {
        (told("/ops/s3cret", "ApprovalNeeded") && told("/chat/s3cret", "ApprovalNeeded"))
            .then_some(())
    })
    .await;
    let approve = serde_json::json!({"spec": {"approvedThroughWave": 10}});
    rollouts
        .patch("told", &PatchParams::default(), &Patch::Merge(&approve))
        .await
        .expect("approve");
    wait_phase(&r, "told", RolloutPhase::Succeeded).await;
    common::eventually(LIMIT, "the end told", || async {
        (told("/ops/s3cret", "Finished") && told("/chat/s3cret", "Finished")).then_some(())
    })
    .await;

    let got = got.lock().expect("bodies").clone();
    let ops = &got["/ops/s3cret"];
    assert!(
        ops.iter()
            .all(|b| b["apiVersion"] == "rotor.dev/v1alpha1" && b["rollout"] == "told"),
        "{ops:?}"
    );
    let started: Vec<&serde_json::Value> =
        ops.iter().filter(|b| b["event"] == "WaveStarted").collect();
    assert_eq!(
        started.first().map(|b| &b["wave"]),
        Some(&serde_json::json!("canary")),
        "{ops:?}"
    );
    assert!(ops.iter().any(|b| b["event"] == "WaveFinished"), "{ops:?}");
    let chat = &got["/chat/s3cret"];
    for body in chat {
        let text = body["text"].as_str().expect("Slack text");
        assert!(
            text.contains("ApprovalNeeded") || text.contains("Finished"),
            "a milestone chat did not ask for: {text}"
        );
        assert!(text.contains("*rollout told*"), "{text}");
    }
    let events = common::events_of(&r, "told").await;
    let failed: Vec<&(String, bool, String)> = events
        .iter()
        .filter(|(reason, ..)| reason == "NotificationFailed")
        .collect();
    assert!(!failed.is_empty(), "{events:?}");
    for (_, warning, note) in failed {
        assert!(
            *warning && note.contains("\"broken\"") && note.contains("missing"),
            "{note}"
        );
        assert!(!note.contains("s3cret"), "{note}");
    }
}
