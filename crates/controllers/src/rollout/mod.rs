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
//!
//! A reconcile runs named steps ([`Reconcile::decide`]) that update the status' data (plan,
//! counts, skips) and return a [`Decision`]; [`Reconcile::apply`] alone turns it into the phase,
//! conditions, the status write and Events. By concern: `plan` (the frozen plan, pre-flight),
//! `count` (swaps by cluster), `skip` (who is left out), `budget` (failure budgets, pauses),
//! `waves` (approval, bake, the current wave), `create` (which swaps start; creating them),
//! `windows` (availability, holding swaps at their safe point), `status` (applying decisions).

mod budget;
mod count;
mod create;
mod fleet_rollback;
mod notifications;
mod plan;
pub mod preview;
mod rerun;
mod skip;
mod status;
mod triggers;
mod wave_gates;
mod waves;
mod windows;

#[cfg(test)]
mod fixtures;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::Resource;
use kube::ResourceExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use rotor_api::{Cluster, ClusterSwap, Rollout, RolloutSpec, RolloutStatus, labels};

use crate::lenient;
use crate::retry::is_conflict;
use crate::{Context, Error, now};

use status::Decision;

pub use fleet_rollback::{request_rollback, rollback_requestable};

type Time = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The requeue after a step whose result the next step reads at once.
const STEP: Duration = Duration::from_millis(10);

/// How often, at most, a Rollout is re-queued by its swaps' changes while they keep coming
/// (a swap's end, which frees a slot, re-queues it at once: see `triggers`); 500 running swaps
/// do not mean hundreds of reconciles (and status writes naming the whole fleet) a second.
const TRIGGER_WINDOW: Duration = Duration::from_millis(100);

/// Shared by all reconciles of this controller.
struct State {
    ctx: Arc<Context>,
    swaps: Store<ClusterSwap>,
    /// Every Cluster (stopped? reachable? its maintenance windows?), without a list per reconcile.
    clusters: Store<Cluster>,
    /// Swaps this process created, by name, until the reflector has seen them.
    created: Mutex<BTreeSet<String>>,
    /// Ended swaps this process deleted for a retry, by uid, until the reflector drops them.
    deleted: Mutex<BTreeSet<String>>,
    /// When each rollout's status was last written (see [`status::COUNTS_EVERY`]).
    written: Mutex<HashMap<String, Instant>>,
}

/// Runs the controller until `stop` resolves. The reflectors of swaps and Clusters run inside
/// this future, not as tasks of their own, so they stop with it (a stopped or deposed
/// controller keeps no watch open).
pub async fn controller(
    ctx: Arc<Context>,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let of_rollouts = watcher::Config::default().labels(labels::ROLLOUT);
    // One watch of the swaps feeds the cache and, once the cache holds each change, the
    // triggers (see `triggers`).
    let (reader, swaps_stream) = lenient::reflect_events::<ClusterSwap>(&ctx, of_rollouts);
    let (feed, triggers) = triggers::channel();
    let (cluster_reader, clusters_stream) =
        lenient::reflect::<Cluster>(&ctx, watcher::Config::default());
    let state = Arc::new(State {
        ctx: ctx.clone(),
        swaps: reader.clone(),
        clusters: cluster_reader.clone(),
        created: Mutex::default(),
        deleted: Mutex::default(),
        written: Mutex::default(),
    });
    let run = async move {
        // A reconcile must see every swap that exists: wait for the first full list.
        let _ = reader.wait_until_ready().await;
        let _ = cluster_reader.wait_until_ready().await;
        run_controller(ctx, state, triggers, stop).await;
    };
    let feed_triggers = swaps_stream.for_each(|event| {
        if let Ok(event) = &event {
            feed.send(event);
        }
        async {}
    });
    tokio::select! {
        () = run => {}
        () = feed_triggers => {}
        () = clusters_stream.for_each(|_| async {}) => {}
    }
}

async fn run_controller(
    ctx: Arc<Context>,
    state: Arc<State>,
    triggers: triggers::Triggers,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let metrics = ctx.metrics.clone();
    let (store, rollouts) = lenient::reflect::<Rollout>(&ctx, watcher::Config::default());
    let controller = Controller::for_stream(rollouts, store);
    metrics.count_rollouts(controller.store());
    controller
        .reconcile_on(triggers.stream(TRIGGER_WINDOW))
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, state)
        .for_each(|result| {
            metrics.reconciled("rollout", &result);
            async {}
        })
        .await;
}

/// The Rollout that owns `swap` (the controller owner reference it was created with).
fn owning_rollout(swap: &ClusterSwap) -> Option<ObjectRef<Rollout>> {
    swap.owner_references()
        .iter()
        .find(|o| o.kind == "Rollout" && o.api_version == Rollout::api_version(&()))
        .map(|o| ObjectRef::new(&o.name))
}

fn error_policy(rollout: Arc<Rollout>, error: &Error, state: Arc<State>) -> Action {
    if !is_conflict(error) {
        tracing::info!(rollout = %rollout.name_any(), %error, "rollout reconcile failed; retrying");
    }
    crate::retry::requeue(&state.ctx, &backoff_key(&rollout.name_any()), error)
}

/// The key of a rollout's error backoff in [`Context::backoff`].
fn backoff_key(rollout: &str) -> String {
    format!("rollout/{rollout}")
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
    let mut status = rollout.status.clone().unwrap_or_default();
    if status.phase.is_final() && !rerun::due(&rollout.spec, &status) {
        // Its count-only writes are over: the pacing entry goes (a rerun starts a new one).
        crate::lock(&state.written).remove(&rollout.name_any());
        return Ok(Action::await_change());
    }
    let r = Reconcile::new(&rollout, &state);
    let decision = r.decide(&mut status).await?;
    r.apply(status, decision).await
}

/// One reconcile of one Rollout: what its steps share.
struct Reconcile<'a> {
    state: &'a State,
    ctx: &'a Context,
    rollout: &'a Rollout,
    spec: &'a RolloutSpec,
    name: String,
    /// This reconcile's time: conditions, wave starts and ends, the pre-flight's end.
    t: Time,
    /// The wall clock maintenance windows are judged by.
    clock: chrono::DateTime<chrono::Utc>,
}

impl<'a> Reconcile<'a> {
    fn new(rollout: &'a Rollout, state: &'a State) -> Self {
        Reconcile {
            state,
            ctx: &state.ctx,
            rollout,
            spec: &rollout.spec,
            name: rollout.name_any(),
            t: now(),
            clock: state.ctx.clock(),
        }
    }

    /// The one next step: reject an invalid spec, freeze the plan, run the pre-flight, or run
    /// the waves. Steps update the status' data; what they decided comes back typed.
    async fn decide(&self, status: &mut RolloutStatus) -> Result<Decision, Error> {
        if let Err(errors) = self.spec.validate() {
            let message = errors.iter().map(|e| e.to_string()).collect::<Vec<_>>();
            return Ok(Decision::Fail(message.join("; ")));
        }
        if status.waves.is_empty() {
            return self.plan(status).await;
        }
        if plan::preflight_due(self.spec, status) {
            return Ok(self.preflight(status).await);
        }
        if rerun::due(self.spec, status) {
            return self.rerun(status).await;
        }
        self.run(status).await
    }

    /// Counts the swaps, judges the budgets, and moves the current wave on.
    async fn run(&self, status: &mut RolloutStatus) -> Result<Decision, Error> {
        let tally = count::Tally::read(self.state, &self.name);
        let mut skips = skip::Skips::new(&status.skipped, &self.spec.skip_clusters, &status.waves);
        tally.count(status, skips.clusters());
        let pause = budget::pause(self.spec, status, &tally, skips.clusters());
        if let Some(abort) = fleet_rollback::decide(self.spec, status, pause.as_ref(), &self.t) {
            status.skipped = skips.into_list();
            status.parked.clear();
            let fleet = self.roll_back_fleet(status, &tally, abort).await?;
            return Ok(Decision::RollBackFleet(fleet));
        }
        let Some(index) = waves::current(&status.waves) else {
            return Ok(Decision::Run {
                pause,
                waves: status::Waves::Done,
            });
        };
        let in_window = self.spec.in_maintenance_window(self.clock);
        let stop = pause.is_some() || !in_window;
        let progress = self
            .advance(
                status,
                index,
                &tally,
                &mut skips,
                pause.is_some(),
                in_window,
            )
            .await?;
        status.parked = self.park(&tally, stop).await?;
        status.skipped = skips.into_list();
        // A wave gate's pause comes after the budgets': it stops only the next wave.
        let pause = pause.or_else(|| progress.gates.as_deref().cloned());
        Ok(Decision::Run {
            pause,
            waves: status::Waves::Current(progress),
        })
    }
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
