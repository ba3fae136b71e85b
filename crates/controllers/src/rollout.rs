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
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use rotor_api::{
    Cluster, ClusterSwap, ClusterSwapSpec, Condition, ConditionStatus, ConditionType, Phase,
    Reason, Rollout, RolloutPhase, RolloutStatus, SwapCounts, WavePhase, WaveStatus, labels,
    set_condition,
};

use crate::swap::is_conflict;
use crate::{Context, Error, now};

/// Shared by all reconciles of this controller.
struct State {
    ctx: Arc<Context>,
    swaps: Store<ClusterSwap>,
    /// Swaps this process created, by name, until the reflector has seen them.
    created: Mutex<BTreeSet<String>>,
}

pub async fn controller(
    ctx: Arc<Context>,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let swaps_api: Api<ClusterSwap> = Api::all(ctx.client.clone());
    let (reader, writer) = reflector::store();
    let swaps_stream = reflector::reflector(
        writer,
        watcher(
            swaps_api.clone(),
            watcher::Config::default().labels(labels::ROLLOUT),
        )
        .default_backoff(),
    )
    .applied_objects();
    tokio::spawn(swaps_stream.for_each(|_| async {}));
    let state = Arc::new(State {
        ctx: ctx.clone(),
        swaps: reader.clone(),
        created: Mutex::default(),
    });
    // A reconcile must see every swap that exists: wait for the first full list.
    let _ = reader.wait_until_ready().await;
    let rollouts: Api<Rollout> = Api::all(ctx.client.clone());
    Controller::new(rollouts, watcher::Config::default())
        .owns(
            swaps_api,
            watcher::Config::default().labels(labels::ROLLOUT),
        )
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, state)
        .for_each(|_| async {})
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
    // Skipped clusters leave the counts (and the budget) unless their swap still runs.
    let skipped: BTreeSet<&str> = spec.skip_clusters.iter().map(String::as_str).collect();
    status.counts = SwapCounts::from_phases(
        all_clusters
            .iter()
            .filter(|c| {
                !skipped.contains(c.as_str()) || phase_of(c).is_some_and(|p| !p.is_terminal())
            })
            .map(|c| phase_of(c).unwrap_or(Phase::Pending)),
    );
    let mut in_flight = all_clusters
        .iter()
        .filter(|c| phase_of(c).is_some_and(|p| !p.is_terminal()))
        .count() as u32;

    // The failure budget.
    let failed: Vec<String> = all_clusters
        .iter()
        .filter(|c| !skipped.contains(c.as_str()))
        .filter(|c| matches!(phase_of(c), Some(Phase::Failed | Phase::RolledBack)))
        .map(|c| {
            let why = mine
                .get(c.as_str())
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
        })
        .collect();
    let over_budget = failed.len() as u32 > spec.failure_budget;
    let paused_reason = if over_budget {
        Some((
            Reason::FailureBudgetExceeded,
            format!(
                "{} swaps failed or rolled back, budget {}: {}",
                failed.len(),
                spec.failure_budget,
                failed.join("; ")
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
    let retries: Vec<(String, String)> = status.waves[..index]
        .iter()
        .flat_map(|w| w.clusters.iter().map(move |c| (w.name.clone(), c.clone())))
        .collect();
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
            let in_window = spec.in_maintenance_window(ctx.clock());
            if paused_reason.is_none() && in_window {
                let current = wave.clusters.iter().map(|c| (wave.name.clone(), c.clone()));
                for (wave_name, cluster) in retries.iter().cloned().chain(current) {
                    if in_flight >= spec.max_concurrent_swaps {
                        break;
                    }
                    if phase_of(&cluster).is_some() || skipped.contains(cluster.as_str()) {
                        continue;
                    }
                    create_swap(&state, &rollout, &wave_name, &cluster).await?;
                    in_flight += 1;
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
            let done = wave.clusters.iter().all(|c| {
                skipped.contains(c.as_str()) || phase_of(c).is_some_and(Phase::is_terminal)
            });
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
