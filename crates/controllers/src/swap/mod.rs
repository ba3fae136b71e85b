//! The ClusterSwap controller: one blue-green rotation, phase by phase (docs/design.md, "The swap
//! lifecycle").
//!
//! Every reconcile re-derives the next action from the object's status and the observed world:
//! - the status is the intent: it is written *before* the side effect it announces (a new
//!   traffic step), and every reconcile converges the traffic layer to it, so a crash between
//!   the two heals on the next pass;
//! - provider calls are idempotent by construction (the green instance's name and token derive
//!   from the Cluster and the swap's uid);
//! - status writes carry the `resourceVersion` read, so a stale view fails with 409 and is
//!   retried instead of overwriting newer progress;
//! - every phase transition is an Event, and so is every reason to wait or retry.
//!
//! Traffic safety: green gets a share only in ShiftingTraffic and later, after its workloads are
//! available; a failing gate sends everything back to blue with one shifter call *before*
//! anything is recorded.
//!
//! Each phase is a function that reads the world and returns a [`step::Step`] (wait, advance,
//! roll back, fail, requeue); [`Reconcile::apply`] carries it out in one place. Phases live by
//! family: `provision.rs` (Pending, Provisioning, WaitingForGreen), `migrate.rs` (Migrating,
//! Verifying), `traffic.rs`, `gates.rs` and `metric_gates/` (ShiftingTraffic), `retire.rs` (Draining, Retaining,
//! Decommissioning), `rollback.rs` (RollingBack, pause), `cleanup.rs` (the finalizer);
//! `hooks/` the lifecycle hooks the phases call at their named points.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use rotor_api::{Cluster, ClusterSwap, ClusterSwapStatus, Phase, Reason};

use crate::{Context, Error};

mod cleanup;
mod gates;
pub mod hooks;
mod instances;
pub(crate) mod memory;
pub(crate) mod metric_gates;
mod migrate;
mod provision;
mod readings;
mod retire;
mod rollback;
mod step;
mod traffic;
pub(crate) mod written;

pub(crate) use crate::retry::is_conflict;
pub use cleanup::FINALIZER;
pub(crate) use instances::upsert_instance;
use step::Step;

/// Runs the controller until `stop` resolves.
pub async fn controller(
    ctx: Arc<Context>,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    // A change discovery sees in a swap's green re-queues that swap, as does the end of its
    // migration task.
    let discovered = crate::discovery_triggers::<ClusterSwap>(&ctx, Context::swap_of);
    let migrated = tokio_stream::wrappers::BroadcastStream::new(ctx.migrations.ended())
        .filter_map(|ended| async move { ended.ok().map(|name| ObjectRef::new(&name)) });
    let triggers = futures::stream::select(discovered, migrated);
    let (store, swaps) = crate::lenient::reflect::<ClusterSwap>(&ctx, watcher::Config::default());
    let (clusters, cluster_events) =
        crate::lenient::reflect::<Cluster>(&ctx, watcher::Config::default());
    // This run's cache: one left by an earlier run (a lease lost and regained in this process)
    // is no longer fed.
    *crate::lock(&ctx.clusters) = Some(clusters);
    let controller = Controller::for_stream(swaps, store);
    ctx.metrics.count_swaps(controller.store());
    let run = controller
        .reconcile_on(triggers)
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|result| {
            ctx.metrics.reconciled("clusterswap", &result);
            async {}
        });
    tokio::select! {
        () = run => {}
        () = cluster_events.for_each(|_| async {}) => {}
    }
}

async fn reconcile(swap: Arc<ClusterSwap>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = poll_key(&swap.name_any());
    if written_over(&swap, &ctx) {
        // The cache lags this process's own write: its watch event brings the newer version.
        return Ok(Action::requeue(ctx.settings.poll_interval));
    }
    let result = run_chained(swap.clone(), &ctx).await;
    if let Err(e) = &result
        && let Some(next) = ctx.rate_limited(&key, e)
    {
        // Not an error to back off from per poll: the provider asked us to slow down.
        if next.warn {
            ctx.recorder
                .publish(
                    &object_ref(&swap),
                    true,
                    RATE_LIMITED,
                    "Retry",
                    format!(
                        "{e}; polling the provider less often (next in {:?})",
                        next.after
                    ),
                )
                .await;
        }
        tracing::debug!(swap = %swap.name_any(), error = %e, after = ?next.after, "rate-limited");
        return Ok(Action::requeue(next.after));
    }
    match &result {
        Ok(_) => {
            ctx.reset_backoff(&key);
            ctx.cloud_answered(&key);
        }
        Err(e) if is_conflict(e) => {}
        Err(e) => {
            tracing::info!(swap = %swap.name_any(), error = %e, "swap reconcile failed; retrying");
            ctx.recorder
                .publish(
                    &object_ref(&swap),
                    true,
                    e.reason().as_str(),
                    "Retry",
                    format!("{e}; retrying with backoff"),
                )
                .await;
        }
    }
    result
}

/// Whether this process has written over this version of `swap` (see [`written`]).
fn written_over(swap: &ClusterSwap, ctx: &Context) -> bool {
    ctx.written
        .superseded(&swap.name_any(), swap.resource_version().as_deref())
}

/// At most this many reconciles of one swap run in a row (see [`run_chained`]): enough for a
/// new swap's finalizer, then Pending → Provisioning → WaitingForGreen, each link a write.
const CHAIN: usize = 4;

/// Reconciles `swap`, and at once again from what it wrote while its step goes straight on (a
/// phase change, an intent to act on at once): a phase that can act at once does not wait for
/// the watch to bring the write back, which at a thousand swaps costs tens of milliseconds a
/// link. Bounded by [`CHAIN`]; the last link's action stands.
async fn run_chained(swap: Arc<ClusterSwap>, ctx: &Context) -> Result<Action, Error> {
    let mut swap = swap;
    for _ in 1..CHAIN {
        let r = Reconcile::new(&swap, ctx);
        let action = r.run().await?;
        match r.goes_on() {
            Some(next) => swap = Arc::new(next),
            None => return Ok(action),
        }
    }
    Reconcile::new(&swap, ctx).run().await
}

/// The Event reason when the provider rate-limits a reconcile (one Warning per stretch).
pub(crate) const RATE_LIMITED: &str = Reason::ProviderRateLimited.as_str();

/// The key of a swap's cloud-polling schedule and of its error backoff.
fn poll_key(name: &str) -> String {
    format!("clusterswap/{name}")
}

fn error_policy(swap: Arc<ClusterSwap>, error: &Error, ctx: Arc<Context>) -> Action {
    crate::retry::requeue(&ctx, &poll_key(&swap.name_any()), error)
}

fn object_ref(swap: &ClusterSwap) -> ObjectReference {
    swap.object_ref(&())
}

/// One reconcile of one swap.
struct Reconcile<'a> {
    swap: &'a ClusterSwap,
    ctx: &'a Context,
    name: String,
    api: Api<ClusterSwap>,
    clusters: Api<Cluster>,
    /// The swap as this reconcile last wrote it, and whether its step goes straight on from
    /// there (see [`run_chained`]).
    wrote: std::sync::Mutex<(Option<ClusterSwap>, bool)>,
}

impl<'a> Reconcile<'a> {
    fn new(swap: &'a ClusterSwap, ctx: &'a Context) -> Self {
        Reconcile {
            swap,
            ctx,
            name: swap.name_any(),
            api: Api::all(ctx.client.clone()),
            clusters: Api::all(ctx.client.clone()),
            wrote: std::sync::Mutex::default(),
        }
    }

    /// The swap as last written, when the step taken goes straight on from it.
    fn goes_on(&self) -> Option<ClusterSwap> {
        match std::mem::take(&mut *crate::lock(&self.wrote)) {
            (Some(swap), true) => Some(swap),
            _ => None,
        }
    }

    async fn run(&self) -> Result<Action, Error> {
        let mut status = self.swap.status.clone().unwrap_or_default();
        if self.swap.metadata.deletion_timestamp.is_some() {
            return self.deleting(status).await;
        }
        if status.phase.is_terminal() || self.ensure_finalizer().await? {
            return Ok(Action::await_change());
        }
        let Some(cluster) = self.cluster(status.phase).await? else {
            return self.cluster_missing(status).await;
        };
        let step = self.decide(&cluster, &mut status).await?;
        self.apply(&cluster, status, step).await
    }

    /// The swap's Cluster, from the watch's cache ([`Context::clusters`]); from the API when
    /// the cache does not have it (not listed yet, or just created: a Cluster reported missing
    /// is one the API does not have) and in Pending, which claims the Cluster with the
    /// resourceVersion it read.
    async fn cluster(&self, phase: Phase) -> Result<Option<Cluster>, Error> {
        let name = &self.swap.spec.cluster_ref;
        let cached = crate::lock(&self.ctx.clusters)
            .clone()
            .filter(|_| phase != Phase::Pending);
        if let Some(cluster) = cached.and_then(|c| c.get(&ObjectRef::new(name))) {
            return Ok(Some(Cluster::clone(&cluster)));
        }
        Ok(self.clusters.get_opt(name).await?)
    }

    /// The step of the phase the swap is in, unless the operator's levers override it.
    async fn decide(
        &self,
        cluster: &Cluster,
        status: &mut ClusterSwapStatus,
    ) -> Result<Step, Error> {
        let spec = &self.swap.spec;
        if spec.rollback && status.phase.allows_rollback() {
            return Ok(Step::roll_back(
                Reason::RollbackRequested,
                "spec.rollback is set",
            ));
        }
        if spec.paused && status.phase != Phase::RollingBack {
            return self.paused(cluster, status).await;
        }
        match status.phase {
            Phase::Pending => self.pending(cluster, status).await,
            Phase::Provisioning => self.provisioning(cluster, status).await,
            Phase::WaitingForGreen => self.waiting_for_green(cluster, status).await,
            Phase::Migrating => self.migrating(cluster, status).await,
            Phase::Verifying => self.verifying(cluster, status).await,
            Phase::ShiftingTraffic => self.shifting(cluster, status).await,
            Phase::Draining => self.draining(cluster, status).await,
            Phase::Retaining => self.retaining(cluster, status).await,
            Phase::Decommissioning => self.decommissioning(cluster, status).await,
            Phase::RollingBack => self.rolling_back(cluster, status).await,
            Phase::Succeeded | Phase::RolledBack | Phase::Failed => Ok(Step::AwaitChange),
        }
    }

    /// The Cluster is gone: wait for it before anything started, else fail (nothing can be
    /// done to instances of a Cluster no one describes).
    async fn cluster_missing(&self, status: ClusterSwapStatus) -> Result<Action, Error> {
        let cluster = &self.swap.spec.cluster_ref;
        if status.phase == Phase::Pending {
            let message = format!("Cluster {cluster} does not exist");
            return self
                .wait(
                    status,
                    Reason::ClusterNotFound,
                    message,
                    std::time::Duration::from_secs(10),
                )
                .await;
        }
        let message = format!(
            "Cluster {cluster} was deleted during the swap; instances are left as they are"
        );
        self.transition(status, Phase::Failed, Reason::ClusterNotFound, message)
            .await
    }
}

#[cfg(test)]
mod tests;
