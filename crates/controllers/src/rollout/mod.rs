//! The Rollout controller: one change across the fleet, in ordered waves of ClusterSwaps.
//!
//! - The wave plan is computed once, from the Clusters selected when the Rollout starts, and
//!   frozen in status: a Cluster added later does not reshuffle running waves.
//! - Each Cluster gets one ClusterSwap named after the Rollout and the Cluster, owned by the
//!   Rollout: creating it twice (a crash, a stale cache) is an AlreadyExists, never a second swap.
//! - Waves run in order. A wave starts when the one before it finished and baked
//!   (`bakeSecondsBetweenWaves`) and it is approved (`approval`, `approvedThroughWave`); inside a
//!   wave, swaps start while fewer than `maxConcurrentSwaps` of this Rollout's swaps run and now
//!   is inside a maintenance window.
//! - Swaps that end RolledBack or Failed count against `failureBudget`; exceeding it pauses the
//!   Rollout with a condition naming the clusters and why. `spec.paused` stops starting swaps.
//!
//! Swaps are read from an in-memory reflector (no list per reconcile), joined with the names this
//! process created since the last relist, so concurrency limits hold even when the cache lags.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use rotor_api::{
    Cluster, ClusterSwap, ClusterSwapSpec, Condition, ConditionStatus, ConditionType, Phase,
    PreflightPolicy, PreflightStatus, Reason, Rollout, RolloutPhase, RolloutStatus, SkippedCluster,
    SwapCounts, UnavailablePolicy, WavePhase, WaveStatus, find_condition, in_windows, labels,
    resolve_budget, set_condition,
};

use crate::swap::is_conflict;
use crate::{Context, Error, now};
use crate::{lenient, preflight};

/// Shared by all reconciles of this controller.
struct State {
    ctx: Arc<Context>,
    swaps: Store<ClusterSwap>,
    /// Every Cluster (stopped? reachable? its maintenance windows?), without a list per reconcile.
    clusters: Store<Cluster>,
    /// Swaps this process created, by name, until the reflector has seen them.
    created: Mutex<BTreeSet<String>>,
}

pub async fn controller(
    ctx: Arc<Context>,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let of_rollouts = || watcher::Config::default().labels(labels::ROLLOUT);
    let (reader, swaps_stream) = lenient::reflect::<ClusterSwap>(&ctx, of_rollouts());
    tokio::spawn(swaps_stream.for_each(|_| async {}));
    let (cluster_reader, clusters_stream) =
        lenient::reflect::<Cluster>(&ctx, watcher::Config::default());
    tokio::spawn(clusters_stream.for_each(|_| async {}));
    let metrics = ctx.metrics.clone();
    let state = Arc::new(State {
        ctx: ctx.clone(),
        swaps: reader.clone(),
        clusters: cluster_reader.clone(),
        created: Mutex::default(),
    });
    // A reconcile must see every swap that exists: wait for the first full list.
    let _ = reader.wait_until_ready().await;
    let _ = cluster_reader.wait_until_ready().await;
    let (store, rollouts) = lenient::reflect::<Rollout>(&ctx, watcher::Config::default());
    let controller = Controller::for_stream(rollouts, store);
    metrics.count_rollouts(controller.store());
    controller
        .owns_stream(lenient::events::<ClusterSwap>(&ctx, of_rollouts()).touched_objects())
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, state)
        .for_each(|result| {
            metrics.reconciled("rollout", &result);
            async {}
        })
        .await;
}

fn error_policy(rollout: Arc<Rollout>, error: &Error, state: Arc<State>) -> Action {
    if is_conflict(error) {
        return Action::requeue(Duration::from_millis(50));
    }
    tracing::info!(rollout = %rollout.name_any(), %error, "rollout reconcile failed; retrying");
    Action::requeue(
        state
            .ctx
            .backoff(&format!("rollout/{}", rollout.name_any())),
    )
}

/// `{rollout}-{cluster}`, shortened with a hash when longer than a name may be.
pub fn swap_name(rollout: &str, cluster: &str) -> String {
    let full = format!("{rollout}-{cluster}");
    if full.len() <= 253 {
        return full;
    }
    // FNV-1a: stable across builds and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in full.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{}-{h:016x}", &full[..236].trim_end_matches(['-', '.']))
}

async fn reconcile(rollout: Arc<Rollout>, state: Arc<State>) -> Result<Action, Error> {
    let ctx = &state.ctx;
    let name = rollout.name_any();
    let api: Api<Rollout> = Api::all(ctx.client.clone());
    let old = rollout.status.clone().unwrap_or_default();
    let mut status = old.clone();
    let generation = rollout.metadata.generation;
    let spec = &rollout.spec;
    if matches!(status.phase, RolloutPhase::Succeeded | RolloutPhase::Failed) {
        return Ok(Action::await_change());
    }
    let write = |status: RolloutStatus| {
        let api = api.clone();
        let mut obj = (*rollout).clone();
        async move {
            if obj.status.as_ref() != Some(&status) {
                let mut status = status;
                status.observed_generation = obj.metadata.generation;
                obj.status = Some(status);
                api.replace_status(&obj.name_any(), &PostParams::default(), &obj)
                    .await?;
            }
            Ok::<_, Error>(())
        }
    };
    let t = now();
    let condition = |type_, on: bool, reason: Reason, message: String| {
        Condition::new(
            type_,
            if on {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            reason,
            message,
            t.clone(),
            generation,
        )
    };

    if let Err(errors) = spec.validate() {
        let message = errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        status.phase = RolloutPhase::Failed;
        set_condition(
            &mut status.conditions,
            condition(ConditionType::Ready, false, Reason::InvalidSpec, message),
        );
        write(status).await?;
        return Ok(Action::await_change());
    }

    // The plan, once.
    if status.waves.is_empty() {
        let clusters: Api<Cluster> = Api::all(ctx.client.clone());
        let clusters = clusters.list(&ListParams::default()).await?.items;
        let plan = spec.plan_waves(&clusters);
        let total: usize = plan.iter().map(|w| w.clusters.len()).sum();
        status.waves = plan
            .into_iter()
            .map(|w| WaveStatus {
                name: w.name,
                clusters: w.clusters,
                phase: WavePhase::Pending,
                started_at: None,
                finished_at: None,
                counts: SwapCounts::default(),
            })
            .collect();
        if total == 0 {
            status.phase = RolloutPhase::Succeeded;
            set_condition(
                &mut status.conditions,
                condition(
                    ConditionType::Ready,
                    true,
                    Reason::NoClustersSelected,
                    "no Cluster matches spec.clusterSelector".into(),
                ),
            );
        } else {
            status.phase = RolloutPhase::Progressing;
            let summary = status
                .waves
                .iter()
                .map(|w| format!("{} ({})", w.name, w.clusters.len()))
                .collect::<Vec<_>>()
                .join(", ");
            ctx.recorder
                .publish(
                    &rollout.object_ref(&()),
                    false,
                    Reason::WaveInProgress.as_str(),
                    "Plan",
                    format!("{total} clusters in waves: {summary}"),
                )
                .await;
        }
        write(status).await?;
        return Ok(Action::requeue(Duration::from_millis(10)));
    }

    // The pre-flight, once, before the first wave starts.
    if spec.preflight != PreflightPolicy::Disabled
        && status.preflight.is_none()
        && status.waves.iter().all(|w| w.phase == WavePhase::Pending)
    {
        let names: Vec<String> = status
            .waves
            .iter()
            .flat_map(|w| w.clusters.iter().cloned())
            .filter(|c| !spec.skip_clusters.contains(c))
            .collect();
        let clusters = names
            .iter()
            .map(|n| {
                let found = state.clusters.get(&ObjectRef::new(n)).map(|c| (*c).clone());
                (n.clone(), found)
            })
            .collect();
        let preflight::Findings {
            blocked,
            unavailable,
        } = preflight::run(ctx, clusters, &spec.target, &spec.strategy).await;
        let summary = blocked
            .iter()
            .take(10)
            .map(|b| format!("{}: {}", b.cluster, b.reasons.join("; ")))
            .collect::<Vec<_>>()
            .join(" | ");
        let mut message = if blocked.is_empty() {
            format!("{} clusters checked, none blocked", names.len())
        } else {
            format!(
                "{} of {} clusters blocked{}: {summary}",
                blocked.len(),
                names.len(),
                if spec.preflight == PreflightPolicy::SkipBlocked {
                    " and left out"
                } else {
                    ""
                }
            )
        };
        if !unavailable.is_empty() {
            message.push_str(&format!(
                "; {} stopped or unreachable, left to spec.unavailableClusters ({}) when their \
                 turn comes: {}",
                unavailable.len(),
                spec.unavailable_clusters,
                unavailable
                    .iter()
                    .take(10)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if spec.preflight == PreflightPolicy::SkipBlocked {
            for b in &blocked {
                let wave = status
                    .waves
                    .iter()
                    .find(|w| w.clusters.contains(&b.cluster))
                    .map(|w| w.name.clone())
                    .unwrap_or_default();
                status.skipped.push(SkippedCluster {
                    cluster: b.cluster.clone(),
                    wave,
                    reason: SKIP_PREFLIGHT.into(),
                    message: b.reasons.join("; "),
                });
            }
        }
        set_condition(
            &mut status.conditions,
            condition(
                ConditionType::PreflightPassed,
                blocked.is_empty(),
                if blocked.is_empty() {
                    Reason::PreflightPassed
                } else {
                    Reason::PreflightBlocked
                },
                message.clone(),
            ),
        );
        ctx.recorder
            .publish(
                &rollout.object_ref(&()),
                !blocked.is_empty(),
                if blocked.is_empty() {
                    Reason::PreflightPassed.as_str()
                } else {
                    Reason::PreflightBlocked.as_str()
                },
                "Preflight",
                message,
            )
            .await;
        status.preflight = Some(PreflightStatus {
            checked: names.len() as u32,
            blocked,
            unavailable,
            completed_at: Some(t.clone()),
        });
        write(status).await?;
        return Ok(Action::requeue(Duration::from_millis(10)));
    }

    // What the swaps say, by cluster.
    let mine: BTreeMap<String, Arc<ClusterSwap>> = state
        .swaps
        .state()
        .into_iter()
        .filter(|s| s.labels().get(labels::ROLLOUT) == Some(&name))
        .map(|s| (s.spec.cluster_ref.clone(), s))
        .collect();
    let seen: BTreeSet<String> = mine.values().map(|s| s.name_any()).collect();
    let created: BTreeSet<String> = {
        let mut created = state.created.lock().unwrap_or_else(|p| p.into_inner());
        created.retain(|n| !seen.contains(n));
        created.clone()
    };
    let phase_of = |cluster: &str| -> Option<Phase> {
        match mine.get(cluster) {
            Some(s) => Some(s.status.clone().unwrap_or_default().phase),
            None if created.contains(&swap_name(&name, cluster)) => Some(Phase::Pending),
            None => None,
        }
    };
    let all_clusters: Vec<String> = status
        .waves
        .iter()
        .flat_map(|w| w.clusters.iter().cloned())
        .collect();
    let wave_of: BTreeMap<&str, usize> = status
        .waves
        .iter()
        .enumerate()
        .flat_map(|(i, w)| w.clusters.iter().map(move |c| (c.as_str(), i)))
        .collect();
    // Left out: by an operator (spec.skipClusters) or, once and for good, by policy.
    let operator_skips: BTreeSet<&str> = spec.skip_clusters.iter().map(String::as_str).collect();
    let mut skipped_list: Vec<SkippedCluster> = old
        .skipped
        .iter()
        .filter(|s| s.reason != SKIP_OPERATOR && !operator_skips.contains(s.cluster.as_str()))
        .cloned()
        .collect();
    for c in &all_clusters {
        if operator_skips.contains(c.as_str()) {
            skipped_list.push(SkippedCluster {
                cluster: c.clone(),
                wave: status.waves[wave_of[c.as_str()]].name.clone(),
                reason: SKIP_OPERATOR.into(),
                message: "listed in spec.skipClusters".into(),
            });
        }
    }
    let skipped_now = |list: &[SkippedCluster]| -> BTreeSet<String> {
        list.iter().map(|s| s.cluster.clone()).collect()
    };
    let mut skipped = skipped_now(&skipped_list);
    // Skipped clusters leave the counts (and the budget) unless their swap still runs.
    let counted = |c: &String, skipped: &BTreeSet<String>| {
        !skipped.contains(c) || phase_of(c).is_some_and(|p| !p.is_terminal())
    };
    let count = |clusters: &[String], skipped: &BTreeSet<String>| {
        SwapCounts::from_phases(
            clusters
                .iter()
                .filter(|c| counted(c, skipped))
                .map(|c| phase_of(c).unwrap_or(Phase::Pending)),
        )
    };
    status.counts = count(&all_clusters, &skipped);
    for w in &mut status.waves {
        w.counts = count(&w.clusters, &skipped);
    }
    let mut in_flight = all_clusters
        .iter()
        .filter(|c| phase_of(c).is_some_and(|p| !p.is_terminal()))
        .count() as u32;
    let mut in_flight_by_wave: Vec<u32> = status
        .waves
        .iter()
        .map(|w| {
            w.clusters
                .iter()
                .filter(|c| phase_of(c).is_some_and(|p| !p.is_terminal()))
                .count() as u32
        })
        .collect();

    // The failure budgets: rollout-wide, and per wave where the wave sets one.
    let why_failed = |c: &str| {
        let why = mine
            .get(c)
            .and_then(|s| s.status.as_ref())
            .and_then(|st| {
                st.history
                    .iter()
                    .rev()
                    .find(|h| matches!(h.phase, Phase::RollingBack | Phase::Failed))
            })
            .map(|h| format!("{}: {}", h.reason, h.message))
            .unwrap_or_default();
        format!("{c} ({why})")
    };
    let is_failure = |c: &String| {
        !skipped.contains(c) && matches!(phase_of(c), Some(Phase::Failed | Phase::RolledBack))
    };
    let failed: Vec<String> = all_clusters
        .iter()
        .filter(|c| is_failure(c))
        .map(|c| why_failed(c))
        .collect();
    let budget_total = all_clusters
        .iter()
        .filter(|c| !skipped.contains(*c))
        .count();
    let budget = resolve_budget(&spec.failure_budget, budget_total).unwrap_or(0);
    let wave_over_budget = status.waves.iter().enumerate().find_map(|(i, w)| {
        let wave_budget = spec.waves.get(i)?.failure_budget.as_ref()?;
        let members: Vec<&String> = w
            .clusters
            .iter()
            .filter(|c| !skipped.contains(*c))
            .collect();
        let limit = resolve_budget(wave_budget, members.len()).unwrap_or(0);
        let failures: Vec<String> = members
            .into_iter()
            .filter(|c| is_failure(c))
            .map(|c| why_failed(c))
            .collect();
        (failures.len() as u32 > limit).then(|| {
            format!(
                "wave {}: {} swaps failed or rolled back, wave budget {limit}: {}",
                w.name,
                failures.len(),
                failures.join("; ")
            )
        })
    });
    let preflight_stop: Option<Vec<String>> = (spec.preflight == PreflightPolicy::StopRollout)
        .then(|| {
            status
                .preflight
                .iter()
                .flat_map(|p| &p.blocked)
                .filter(|b| !operator_skips.contains(b.cluster.as_str()))
                .map(|b| b.cluster.clone())
                .collect::<Vec<_>>()
        })
        .filter(|b| !b.is_empty());
    let paused_reason = if failed.len() as u32 > budget {
        Some((
            Reason::FailureBudgetExceeded,
            format!(
                "{} swaps failed or rolled back, budget {budget}: {}",
                failed.len(),
                failed.join("; ")
            ),
        ))
    } else if let Some(message) = wave_over_budget {
        Some((Reason::FailureBudgetExceeded, message))
    } else if let Some(blocked) = preflight_stop {
        Some((
            Reason::PreflightBlocked,
            format!(
                "the pre-flight blocked {} clusters (spec.preflight: StopRollout); fix them or \
                 skip them (rotor rollout skip CLUSTER): {}",
                blocked.len(),
                blocked.join(", ")
            ),
        ))
    } else if spec.paused {
        Some((Reason::Paused, "spec.paused is set".to_string()))
    } else {
        None
    };
    let paused_changed = set_condition(
        &mut status.conditions,
        match &paused_reason {
            Some((reason, message)) => {
                condition(ConditionType::Paused, true, *reason, message.clone())
            }
            None => condition(ConditionType::Paused, false, Reason::Resumed, String::new()),
        },
    );
    if paused_changed && let Some((reason, message)) = &paused_reason {
        ctx.recorder
            .publish(
                &rollout.object_ref(&()),
                *reason == Reason::FailureBudgetExceeded,
                reason.as_str(),
                "Pause",
                message.clone(),
            )
            .await;
    }

    // The current wave.
    let Some(index) = status
        .waves
        .iter()
        .position(|w| !matches!(w.phase, WavePhase::Succeeded | WavePhase::Failed))
    else {
        // Every wave ran; over budget or paused it is not a success (a retry or a skip may
        // still bring it there).
        if paused_reason.is_some() {
            status.phase = RolloutPhase::Paused;
            status.current_wave = None;
            write(status).await?;
            return Ok(Action::requeue(ctx.settings.poll_interval));
        }
        status.phase = RolloutPhase::Succeeded;
        status.current_wave = None;
        set_condition(
            &mut status.conditions,
            condition(
                ConditionType::Ready,
                true,
                Reason::RolloutComplete,
                format!(
                    "{} succeeded, {} rolled back, {} failed",
                    status.counts.succeeded, status.counts.rolled_back, status.counts.failed
                ),
            ),
        );
        write(status).await?;
        ctx.recorder
            .publish(
                &rollout.object_ref(&()),
                false,
                Reason::RolloutComplete.as_str(),
                "Complete",
                format!("all waves done: {} clusters", all_clusters.len()),
            )
            .await;
        return Ok(Action::await_change());
    };
    status.current_wave = Some(index as u32);
    // The last wave that has clusters: no bake after it (nothing left to protect).
    let last_wave = status.waves[index + 1..]
        .iter()
        .all(|w| w.clusters.is_empty());
    let bake = Duration::from_secs(spec.bake_seconds_between_waves);
    let mut requeue = ctx.settings.poll_interval;
    let mut wave_event = None;
    // Clusters of finished waves without a swap: their failed swap was deleted to retry it
    // (`rotor rollout retry`). They start again, within the same limits.
    let retries: Vec<(usize, String)> = status.waves[..index]
        .iter()
        .enumerate()
        .flat_map(|(i, w)| w.clusters.iter().map(move |c| (i, c.clone())))
        .collect();
    let wave_names: Vec<String> = status.waves.iter().map(|w| w.name.clone()).collect();
    let clock = ctx.clock();
    let in_window = spec.in_maintenance_window(clock);
    // Clusters whose turn came but which cannot start now (Wait policy, or outside their window).
    let mut waiting: Vec<String> = Vec::new();
    {
        let wave = &mut status.waves[index];
        if matches!(
            wave.phase,
            WavePhase::Pending | WavePhase::WaitingForApproval
        ) {
            if spec.wave_approved(index) {
                wave.phase = WavePhase::InProgress;
                wave.started_at = Some(t.clone());
                wave_event = Some((
                    Reason::WaveInProgress,
                    format!(
                        "wave {} started: {} clusters",
                        wave.name,
                        wave.clusters.len()
                    ),
                ));
            } else if wave.phase == WavePhase::Pending {
                wave.phase = WavePhase::WaitingForApproval;
                wave_event = Some((
                    Reason::WaitingForApproval,
                    format!(
                        "wave {index} ({}) waits for approval: set spec.approvedThroughWave to {index} (rotor approve rollout/{name})",
                        wave.name
                    ),
                ));
            }
        }
        if wave.phase == WavePhase::InProgress {
            if paused_reason.is_none() && in_window {
                let current = wave.clusters.iter().map(|c| (index, c.clone()));
                for (wi, cluster) in retries.iter().cloned().chain(current) {
                    if in_flight >= spec.max_concurrent_swaps {
                        break;
                    }
                    if phase_of(&cluster).is_some() || skipped.contains(&cluster) {
                        continue;
                    }
                    if let Some(limit) = spec.waves.get(wi).and_then(|w| w.max_concurrent)
                        && in_flight_by_wave[wi] >= limit
                    {
                        continue;
                    }
                    let found = state.clusters.get(&ObjectRef::new(&cluster));
                    match availability(found.as_deref(), clock) {
                        Availability::Ready => {}
                        Availability::OutsideWindow => {
                            waiting.push(format!("{cluster} (outside its maintenance windows)"));
                            continue;
                        }
                        Availability::Unavailable { reason, message } => {
                            if reason == SKIP_NOT_FOUND
                                || spec.unavailable_clusters == UnavailablePolicy::Skip
                            {
                                ctx.recorder
                                    .publish(
                                        &rollout.object_ref(&()),
                                        true,
                                        Reason::ClusterSkipped.as_str(),
                                        "Skip",
                                        format!("{cluster} left out of the rollout: {message}"),
                                    )
                                    .await;
                                skipped_list.push(SkippedCluster {
                                    cluster: cluster.clone(),
                                    wave: wave_names[wi].clone(),
                                    reason: reason.into(),
                                    message,
                                });
                                skipped.insert(cluster.clone());
                            } else {
                                waiting.push(format!("{cluster} ({message})"));
                            }
                            continue;
                        }
                    }
                    create_swap(&state, &rollout, &wave_names[wi], &cluster).await?;
                    in_flight += 1;
                    in_flight_by_wave[wi] += 1;
                }
            }
            set_condition(
                &mut status.conditions,
                condition(
                    ConditionType::InMaintenanceWindow,
                    in_window,
                    if in_window {
                        Reason::WaveInProgress
                    } else {
                        Reason::OutsideMaintenanceWindow
                    },
                    if in_window {
                        String::new()
                    } else {
                        "no swap starts outside spec.maintenanceWindows".into()
                    },
                ),
            );
            let done = wave
                .clusters
                .iter()
                .all(|c| skipped.contains(c) || phase_of(c).is_some_and(Phase::is_terminal));
            if done {
                wave.finished_at = Some(t.clone());
                ctx.mark_started(format!("rollout/{name}/wave/{index}"), &t);
                // An empty wave (its selector matched nothing) has nothing to bake.
                wave.phase = if last_wave || bake.is_zero() || wave.clusters.is_empty() {
                    WavePhase::Succeeded
                } else {
                    WavePhase::Baking
                };
                wave_event = Some((
                    Reason::WaveBaking,
                    format!("wave {} finished; baking {bake:?}", wave.name),
                ));
                requeue = Duration::from_millis(10);
            }
        }
        if wave.phase == WavePhase::Baking {
            let baked = wave
                .finished_at
                .as_ref()
                .map(|t| ctx.elapsed(&format!("rollout/{name}/wave/{index}"), t))
                .unwrap_or(bake);
            if baked >= bake {
                wave.phase = WavePhase::Succeeded;
                requeue = Duration::from_millis(10);
            } else {
                requeue = requeue.min(bake - baked);
            }
        }
    }
    // Hold running swaps at their safe point while the rollout is paused or outside a window
    // (the rollout's or the cluster's); swaps that already moved traffic finish.
    let mut parked = Vec::new();
    for (cluster, swap) in &mine {
        let phase = swap.status.as_ref().map(|s| s.phase).unwrap_or_default();
        if phase.is_terminal() || phase == Phase::RollingBack || phase.green_may_serve() {
            continue;
        }
        let cluster_window = state
            .clusters
            .get(&ObjectRef::new(cluster))
            .is_none_or(|c| in_windows(&c.spec.maintenance_windows, clock));
        let hold = paused_reason.is_some() || !in_window || !cluster_window;
        if hold != swap.spec.hold_before_traffic {
            let api: Api<ClusterSwap> = Api::all(ctx.client.clone());
            let patch = serde_json::json!({"spec": {"holdBeforeTraffic": hold}});
            api.patch(
                &swap.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        }
        if hold {
            parked.push(swap.name_any());
        }
    }
    status.parked = parked;
    skipped_list.sort_by(|a, b| a.cluster.cmp(&b.cluster));
    skipped_list.dedup_by(|a, b| a.cluster == b.cluster);
    status.skipped = skipped_list;
    if !waiting.is_empty() {
        set_condition(
            &mut status.conditions,
            condition(
                ConditionType::Degraded,
                true,
                Reason::ClusterUnavailable,
                format!(
                    "{} clusters wait before their swap can start: {}",
                    waiting.len(),
                    waiting.join("; ")
                ),
            ),
        );
    } else {
        set_condition(
            &mut status.conditions,
            condition(
                ConditionType::Degraded,
                false,
                Reason::Healthy,
                String::new(),
            ),
        );
    }
    status.phase = if paused_reason.is_some() {
        RolloutPhase::Paused
    } else if status.waves[index].phase == WavePhase::WaitingForApproval {
        RolloutPhase::WaitingForApproval
    } else {
        RolloutPhase::Progressing
    };
    set_condition(
        &mut status.conditions,
        condition(
            ConditionType::Progressing,
            paused_reason.is_none(),
            Reason::WaveInProgress,
            format!(
                "wave {index} ({}) {}; {} of {} swaps running",
                status.waves[index].name,
                status.waves[index].phase,
                in_flight,
                spec.max_concurrent_swaps
            ),
        ),
    );
    write(status).await?;
    if let Some((reason, message)) = wave_event {
        ctx.recorder
            .publish(
                &rollout.object_ref(&()),
                false,
                reason.as_str(),
                "Wave",
                message,
            )
            .await;
    }
    ctx.reset_backoff(&format!("rollout/{name}"));
    Ok(Action::requeue(requeue))
}

/// `status.skipped[].reason` of a cluster listed in `spec.skipClusters`.
const SKIP_OPERATOR: &str = "Operator";
/// `status.skipped[].reason` of a cluster the pre-flight blocked (`SkipBlocked`).
const SKIP_PREFLIGHT: &str = "PreflightBlocked";
/// `status.skipped[].reason` of a cluster that no longer exists.
const SKIP_NOT_FOUND: &str = "NotFound";

/// Whether a cluster's swap can start now.
enum Availability {
    Ready,
    /// Inside no maintenance window of the cluster's own.
    OutsideWindow,
    /// Stopped, unreachable, or gone; `reason` is the `status.skipped` reason.
    Unavailable {
        reason: &'static str,
        message: String,
    },
}

fn availability(cluster: Option<&Cluster>, now: chrono::DateTime<chrono::Utc>) -> Availability {
    let Some(cluster) = cluster else {
        return Availability::Unavailable {
            reason: SKIP_NOT_FOUND,
            message: "the Cluster does not exist".into(),
        };
    };
    if cluster.spec.stopped {
        return Availability::Unavailable {
            reason: "Stopped",
            message: "the Cluster is marked spec.stopped".into(),
        };
    }
    let status = cluster.status.as_ref();
    let unreachable = status
        .and_then(|s| find_condition(&s.conditions, ConditionType::Reachable))
        .filter(|c| c.status == ConditionStatus::False);
    if let Some(c) = unreachable {
        return Availability::Unavailable {
            reason: "Unreachable",
            message: format!("its API server is unreachable: {}", c.message),
        };
    }
    if !in_windows(&cluster.spec.maintenance_windows, now) {
        return Availability::OutsideWindow;
    }
    Availability::Ready
}

async fn create_swap(
    state: &State,
    rollout: &Rollout,
    wave: &str,
    cluster: &str,
) -> Result<(), Error> {
    let rollout_name = rollout.name_any();
    let name = swap_name(&rollout_name, cluster);
    let mut swap = ClusterSwap::new(
        &name,
        ClusterSwapSpec {
            cluster_ref: cluster.to_string(),
            target: rollout.spec.target.clone(),
            strategy: rollout.spec.strategy.clone(),
            paused: false,
            rollback: false,
            hold_before_traffic: false,
        },
    );
    swap.metadata.labels = Some(BTreeMap::from([
        (labels::ROLLOUT.to_string(), rollout_name.clone()),
        (labels::WAVE.to_string(), wave.to_string()),
        (labels::CLUSTER.to_string(), cluster.to_string()),
    ]));
    swap.metadata.owner_references = rollout.controller_owner_ref(&()).map(|o| vec![o]);
    let api: Api<ClusterSwap> = Api::all(state.ctx.client.clone());
    match api.create(&PostParams::default(), &swap).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    state
        .created
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(name);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_names_are_stable_and_bounded() {
        assert_eq!(swap_name("r", "c"), "r-c");
        let long = "x".repeat(300);
        let n = swap_name("rollout", &long);
        assert!(n.len() <= 253, "{}", n.len());
        assert_eq!(n, swap_name("rollout", &long));
        assert_ne!(n, swap_name("rollout", &format!("{long}y")));
    }
}
