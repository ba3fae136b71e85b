//! rotor's reconcilers, run by `rotor serve` (and `rotor demo`) against the control plane's
//! Kubernetes API with kube-runtime:
//!
//! - [`swap`] drives one `ClusterSwap` through the blue-green lifecycle (docs/design.md);
//! - [`cluster`] keeps each `Cluster`'s status (active instance, health) and starts nothing;
//! - [`rollout`] rolls one change across the fleet in waves of ClusterSwaps.
//!
//! Both are level-triggered: every reconcile reads the object and the world (provider, traffic
//! layer, member clusters), derives the one next action from them, and records progress in
//! status with an optimistic-concurrency write. A crash anywhere loses nothing but the action in
//! flight, which is idempotent (deterministic instance names, verified traffic weights,
//! server-side apply).
//!
//! The controllers reach clouds only through [`rotor_providers::Provider`], traffic only through
//! [`rotor_traffic::TrafficShifter`], and member clusters only through their Kubernetes API.

mod attachments;
pub mod blue_replicas;
pub mod cluster;
mod coalesce;
mod events;
pub mod health;
pub mod leader;
pub mod lenient;
pub mod members;
pub mod metrics;
pub mod migration;
pub mod notify;
mod outbound;
pub mod preflight;
pub mod prometheus;
pub mod replica_owners;
mod retry;
pub mod rollout;
pub mod swap;
pub mod tasks;
#[cfg(test)]
mod testing;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use rotor_api::{Provider as ProviderKind, ShifterKind};
use rotor_providers::Provider;
use rotor_traffic::TrafficShifter;

pub use members::MemberClients;

/// Timings of the controllers. The defaults suit production; tests shorten them.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How often gates are checked while green carries traffic. Bounds the time from a gate
    /// failing to all traffic being back on blue.
    pub gate_interval: Duration,
    /// The safety-net poll while waiting on green or on a step (discovery's changes and watch
    /// events usually come first). The cloud, which has no events, is polled on `cloud_poll`.
    pub poll_interval: Duration,
    /// How long blue's open sessions may take to end after green took 100 % (Draining); the
    /// drain ends as soon as the traffic layer counts none on blue. As a Pod's termination
    /// grace period: longer than the slowest request, so that only long-lived streams reach
    /// it (they end with blue's workloads, gracefully).
    pub drain_timeout: Duration,
    /// Green must be reachable, at the target version and Ready within this, or the swap rolls
    /// back.
    pub green_ready_timeout: Duration,
    /// Migrated workloads must be available in green within this, or the swap rolls back.
    pub verify_timeout: Duration,
    /// The smallest sample a gate judges green's error rate over: a step in which green
    /// answered fewer requests counts its failures as if it had answered this many (see
    /// `swap::gates::error_rate_breached`).
    pub min_gate_requests: u64,
    /// A request green has held this long without answering makes a step undecided: the
    /// step is not over (no more traffic to green, blue not deleted) while such requests could
    /// fail the error-rate gate, until they are answered or the proxy gives up on them (a
    /// failure). Below this, a request is in flight as any other. Without it a hanging green
    /// looks healthy until the proxy's server timeout, and a short bake lets it take more
    /// traffic first.
    pub unanswered_after: Duration,
    /// Bound on one metric gate query to Prometheus, connection included (Prometheus is told
    /// the same bound). A query that takes longer is an inconclusive evaluation.
    pub metric_query_timeout: Duration,
    /// How often a Cluster's health is re-probed when nothing else triggers it, and how often
    /// the traffic layers are asked whether they restarted.
    pub cluster_resync: Duration,
    /// How often a Cluster whose health discovery follows is reconciled when nothing triggers
    /// it: a safety net, since every change it would see arrives as an event (discovery's, a
    /// swap's, the Cluster's own, a traffic layer's restart). At 10,000 Clusters the 30 s
    /// probe pace was 333 reconciles a second of an idle fleet.
    pub idle_resync: Duration,
    /// How the cloud is polled about operations it has no events for (a create or delete in
    /// progress) and how its rate limits are honoured.
    pub cloud_poll: rotor_providers::poll::PollPolicy,
    /// On shutdown, how long running reconciles may take to reach their end before they are
    /// dropped where they stand (each step is safe to resume: the next leader or start redoes it).
    pub shutdown_grace: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            gate_interval: Duration::from_millis(250),
            poll_interval: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(30),
            green_ready_timeout: Duration::from_secs(30 * 60),
            verify_timeout: Duration::from_secs(10 * 60),
            min_gate_requests: 20,
            unanswered_after: Duration::from_secs(1),
            metric_query_timeout: Duration::from_secs(5),
            cluster_resync: Duration::from_secs(30),
            idle_resync: Duration::from_secs(10 * 60),
            cloud_poll: rotor_providers::poll::PollPolicy::default(),
            shutdown_grace: Duration::from_secs(6),
        }
    }
}

/// Everything a reconcile needs, shared by all reconciles of all controllers.
pub struct Context {
    /// The control plane's API.
    pub client: Client,
    providers: HashMap<ProviderKind, Arc<dyn Provider>>,
    shifters: HashMap<ShifterKind, Arc<dyn TrafficShifter>>,
    pub settings: Settings,
    /// kube clients of member-cluster instances, built from provider credentials.
    pub members: MemberClients,
    /// What `/metrics` serves.
    pub metrics: Arc<metrics::Metrics>,
    /// Where metric gates' queries go (a gate's own Prometheus, else this default).
    pub(crate) prometheus: prometheus::Prometheus,
    pub(crate) recorder: Arc<events::Recorder>,
    /// Delivers rollouts' notifications (one HTTP client, built on the first).
    pub(crate) notifier: Arc<notify::Notifier>,
    /// Traffic addresses of instances (fixed for an instance's life).
    addresses: Mutex<HashMap<String, std::net::SocketAddr>>,
    /// Active instances the Cluster controller attached to their endpoints.
    pub(crate) attachments: attachments::Attachments,
    /// Per live swap: precise starts of its waits and its gate's counters.
    pub(crate) swaps: swap::memory::Memories,
    /// Per swap: the status versions this process wrote over (read-your-writes).
    pub(crate) written: swap::written::Written,
    /// Per object key: consecutive reconcile errors (exponential backoff).
    failures: Mutex<HashMap<String, u32>>,
    /// Wall clock for maintenance windows (tests move it).
    clock: Clock,
    /// Watches of member clusters (none: the controllers probe instead).
    pub(crate) discovery: Option<Arc<rotor_discovery::Discovery>>,
    /// Instances discovery watches for the Cluster controller, and their Cluster.
    watched: Mutex<HashMap<String, String>>,
    /// Green instances discovery watches for swaps, and their swap.
    greens: Mutex<HashMap<String, String>>,
    /// Migration checkpoints by swap (shared with the migration tasks).
    pub(crate) checkpoints: Arc<migration::Checkpoints>,
    /// Running migrations by swap, outside the reconciles.
    pub(crate) migrations: tasks::Tasks<migration::Outcome>,
    /// Where each object is in the cloud-polling schedule (`settings.cloud_poll`).
    cloud_poller: rotor_providers::poll::Poller,
    /// Precise starts of the rollout's timed waits (the bake between waves, wave gates; a
    /// swap's own are in `swap::memory`): status times have one-second resolution, which would
    /// cut a 1 s bake to nothing.
    starts: Mutex<HashMap<String, swap::memory::Started>>,
    /// The Clusters as the running swap controller's watch has them (replaced each time it
    /// starts, as after a lease regained): a swap's reconciles read its Cluster here instead
    /// of asking the API each time.
    pub(crate) clusters: Mutex<Option<kube::runtime::reflector::Store<rotor_api::Cluster>>>,
}

type Time = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The wall clock the controllers read for maintenance windows.
pub type Clock = Arc<dyn Fn() -> chrono::DateTime<chrono::Utc> + Send + Sync>;

impl Context {
    pub fn new(client: Client, settings: Settings) -> Self {
        Context {
            cloud_poller: rotor_providers::poll::Poller::new(settings.cloud_poll.clone()),
            recorder: Arc::new(events::Recorder::new(client.clone())),
            notifier: Arc::default(),
            client,
            providers: HashMap::new(),
            shifters: HashMap::new(),
            settings,
            members: MemberClients::default(),
            metrics: Arc::default(),
            prometheus: prometheus::Prometheus::default(),
            swaps: swap::memory::Memories::default(),
            written: swap::written::Written::default(),
            addresses: Mutex::default(),
            attachments: attachments::Attachments::default(),
            failures: Mutex::default(),
            clock: Arc::new(chrono::Utc::now),
            starts: Mutex::default(),
            checkpoints: Arc::default(),
            migrations: tasks::Tasks::default(),
            discovery: None,
            watched: Mutex::default(),
            greens: Mutex::default(),
            clusters: Mutex::default(),
        }
    }

    /// Waits until every Event recorded so far was posted (they are posted in the
    /// background), at most `within`; whether all were.
    pub async fn flush_events(&self, within: Duration) -> bool {
        self.recorder.flush(within).await
    }

    /// Learn member-cluster health from `discovery`'s watches (and be woken by its changes)
    /// instead of probing on every resync.
    pub fn with_discovery(mut self, discovery: Arc<rotor_discovery::Discovery>) -> Self {
        self.discovery = Some(discovery);
        self
    }

    /// The swap whose green is `instance`, if discovery watches it for that swap.
    pub(crate) fn swap_of(&self, instance: &str) -> Option<String> {
        lock(&self.greens).get(instance).cloned()
    }

    /// Has discovery watch a swap's green with the swap's selection (the Cluster's workloads
    /// and the migration policy's), so a change in green (Ready nodes, available workloads)
    /// re-queues the swap at once instead of at its next poll, and the traffic gates can read
    /// green's summary (see [`Context::current_summary`]) instead of its API.
    pub(crate) async fn watch_green(
        &self,
        swap: &str,
        cluster: &rotor_api::Cluster,
        instance: &str,
        selection: rotor_discovery::Selection,
    ) -> Result<(), Error> {
        let Some(discovery) = &self.discovery else {
            return Ok(());
        };
        if lock(&self.greens).contains_key(instance) || lock(&self.watched).contains_key(instance) {
            return Ok(());
        }
        let client = self.discovery_client(cluster, instance).await?;
        discovery.watch_instance(instance, client, selection);
        lock(&self.greens).insert(instance.to_string(), swap.to_string());
        Ok(())
    }

    /// A client for discovery's watches of `instance`, from the provider's credentials
    /// (discovery's own connection settings: long-lived watches, not the bounded calls of
    /// [`MemberClients`]).
    async fn discovery_client(
        &self,
        cluster: &rotor_api::Cluster,
        instance: &str,
    ) -> Result<kube::Client, Error> {
        let provider = self.provider(cluster)?;
        let kubeconfig = provider.credentials(instance).await?;
        rotor_discovery::client_for_kubeconfig(kubeconfig.expose())
            .await
            .map_err(|e| Error::Member {
                instance: instance.to_string(),
                message: e.to_string(),
            })
    }

    /// Discovery's summary of `instance` when a decision may rest on it now: watched with
    /// `selection`, synced, reachable, every watch working, and heard from within the
    /// watchdog's bound ([`rotor_discovery::Discovery::current_summary`]). None means "read
    /// the instance's API".
    pub(crate) fn current_summary(
        &self,
        instance: &str,
        selection: &rotor_discovery::Selection,
    ) -> Option<rotor_discovery::Summary> {
        self.discovery
            .as_ref()?
            .current_summary(instance, selection)
    }

    /// When to ask the cloud about `key`'s operation again, after it `observed` this (see
    /// [`rotor_providers::poll`]).
    pub(crate) fn cloud_poll(
        &self,
        key: &str,
        observed: rotor_providers::poll::Observed,
    ) -> rotor_providers::poll::Next {
        self.cloud_poller.next(key, observed)
    }

    /// `key`'s operation is over (or was never the cloud's): the next one starts fast.
    pub(crate) fn cloud_poll_done(&self, key: &str) {
        self.cloud_poller.forget(key);
    }

    /// A reconcile of `key` got through: a rate-limited stretch is over, so the next rate
    /// limit is reported again.
    pub(crate) fn cloud_answered(&self, key: &str) {
        self.cloud_poller.answered(key);
    }

    /// A reconcile of `key` failed because the provider rate-limited it: when to try again
    /// (backing off, honouring the provider's Retry-After), and whether to say so — once per
    /// rate-limited stretch, not once per poll. None for any other error.
    pub(crate) fn rate_limited(
        &self,
        key: &str,
        error: &Error,
    ) -> Option<rotor_providers::poll::Next> {
        let Error::Provider(e) = error else {
            return None;
        };
        let retry_after = e.rate_limited()?;
        Some(self.cloud_poll(
            key,
            rotor_providers::poll::Observed::RateLimited { retry_after },
        ))
    }

    /// Stops watching a swap's green (it is gone), unless it became a Cluster's active instance.
    pub(crate) fn forget_green(&self, instance: &str) {
        if lock(&self.greens).remove(instance).is_some()
            && !lock(&self.watched).contains_key(instance)
            && let Some(discovery) = &self.discovery
        {
            discovery.forget_instance(instance);
        }
    }

    /// The Cluster whose active instance is `instance`, if discovery watches it for us.
    pub(crate) fn cluster_of(&self, instance: &str) -> Option<String> {
        lock(&self.watched).get(instance).cloned()
    }

    /// Has discovery watch `instance`, the active instance of `cluster`; stops watching the
    /// Cluster's previous instance. Credentials are fetched once per instance.
    pub(crate) async fn watch_active(
        &self,
        cluster: &rotor_api::Cluster,
        instance: &str,
    ) -> Result<(), Error> {
        use kube::ResourceExt;
        let Some(discovery) = &self.discovery else {
            return Ok(());
        };
        let name = cluster.name_any();
        if lock(&self.watched).get(instance) == Some(&name) {
            return Ok(());
        }
        let client = self.discovery_client(cluster, instance).await?;
        discovery.watch_instance(
            instance,
            client,
            rotor_discovery::Selection::from(cluster.spec.workloads.clone()),
        );
        let previous: Vec<String> = {
            let mut watched = lock(&self.watched);
            let previous = watched
                .iter()
                .filter(|(i, c)| **c == name && i.as_str() != instance)
                .map(|(i, _)| i.clone())
                .collect::<Vec<_>>();
            for p in &previous {
                watched.remove(p);
            }
            watched.insert(instance.to_string(), name);
            previous
        };
        for p in previous {
            discovery.forget_instance(&p);
        }
        Ok(())
    }

    /// Remember that the wait `key` started now, recorded in status as `at`.
    pub(crate) fn mark_started(&self, key: String, at: &Time) {
        let mut starts = lock(&self.starts);
        if starts.len() > 100_000 {
            starts.clear();
        }
        starts.insert(key, swap::memory::Started::now(at));
    }

    /// How long the wait `key` (recorded in status as `at`) has lasted, as a swap's waits are
    /// timed ([`swap::memory::Started::elapsed`]).
    pub(crate) fn elapsed(&self, key: &str, at: &Time) -> Duration {
        let mut starts = lock(&self.starts);
        let mut slot = starts.remove(key);
        let elapsed = swap::memory::Started::elapsed(&mut slot, at);
        if let Some(started) = slot {
            starts.insert(key.to_string(), started);
        }
        elapsed
    }

    /// Metric gates that name no Prometheus ask the one at `url` (`rotor serve
    /// --prometheus-url`); without it such a gate cannot be judged.
    pub fn with_prometheus(mut self, url: Option<String>) -> Self {
        self.prometheus = prometheus::Prometheus::with_default_url(url);
        self
    }

    /// Read the wall clock from `clock` (maintenance windows in tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub(crate) fn clock(&self) -> chrono::DateTime<chrono::Utc> {
        (self.clock)()
    }

    /// Serve Clusters whose `spec.provider` is `kind` with `provider`.
    pub fn with_provider(mut self, kind: ProviderKind, provider: Arc<dyn Provider>) -> Self {
        self.providers.insert(kind, provider);
        self
    }

    /// Shift the traffic of Clusters whose `spec.traffic.shifter` is `kind` with `shifter`.
    pub fn with_shifter(mut self, kind: ShifterKind, shifter: Arc<dyn TrafficShifter>) -> Self {
        self.shifters.insert(kind, shifter);
        self
    }

    /// The provider of `cluster`, bound to its account and region.
    pub(crate) fn provider(
        &self,
        cluster: &rotor_api::Cluster,
    ) -> Result<rotor_providers::Located<'_>, Error> {
        let kind = cluster.spec.provider;
        let provider = self
            .providers
            .get(&kind)
            .ok_or(Error::NoProvider(kind.as_str()))?;
        Ok(rotor_providers::Located::new(
            provider.as_ref(),
            rotor_providers::Placement {
                account: cluster.spec.account.clone(),
                region: cluster.spec.region.clone(),
            },
        )
        .observed_by(kind.as_str(), self.metrics.as_ref()))
    }

    pub(crate) fn shifter(&self, kind: ShifterKind) -> Result<&Arc<dyn TrafficShifter>, Error> {
        self.shifters
            .get(&kind)
            .ok_or(Error::NoShifter(kind.as_str()))
    }

    /// Exponential backoff for `key` after an error: 250 ms doubling to 60 s.
    pub(crate) fn backoff(&self, key: &str) -> Duration {
        let mut failures = lock(&self.failures);
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = (*n + 1).min(16);
        let ms = 250u64.saturating_mul(1 << (*n - 1).min(8));
        Duration::from_millis(ms.min(60_000))
    }

    /// Reads every traffic layer's epoch (see [`TrafficShifter::epoch`]); true when one of
    /// them restarted since the last reading. A layer that cannot be asked is not trusted to
    /// have kept anything until it can.
    pub(crate) async fn read_traffic_epochs(&self) -> bool {
        let mut restarted = false;
        for (kind, shifter) in &self.shifters {
            let epoch = match shifter.epoch().await {
                Ok(epoch) => Some(epoch.unwrap_or_default()),
                Err(error) => {
                    tracing::debug!(shifter = kind.as_str(), %error, "traffic layer epoch unknown");
                    None
                }
            };
            if self.attachments.epoch_read(*kind, epoch) == attachments::EpochChange::Restarted {
                tracing::info!(
                    shifter = kind.as_str(),
                    "traffic layer restarted; attaching every Cluster's active instance again"
                );
                restarted = true;
            }
        }
        restarted
    }

    pub(crate) fn cached_address(&self, instance: &str) -> Option<std::net::SocketAddr> {
        lock(&self.addresses).get(instance).copied()
    }

    pub(crate) fn cache_address(&self, instance: &str, addr: std::net::SocketAddr) {
        lock(&self.addresses).insert(instance.to_string(), addr);
    }

    pub(crate) fn reset_backoff(&self, key: &str) {
        lock(&self.failures).remove(key);
    }
}

/// What a reconcile can fail with. Every variant is retried with backoff; the message names the
/// object and what failed, and never carries a credential.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("control plane API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Provider(#[from] rotor_providers::ProviderError),
    #[error("traffic: {0}")]
    Traffic(#[from] rotor_traffic::TrafficError),
    #[error("no provider configured for spec.provider {0:?} (rotor serve --provider)")]
    NoProvider(&'static str),
    #[error("no traffic shifter configured for spec.traffic.shifter {0:?} (rotor serve --traffic)")]
    NoShifter(&'static str),
    #[error("member cluster {instance}: {message}")]
    Member { instance: String, message: String },
    /// The controller asked for a phase change the lifecycle forbids: a bug, reported.
    #[error("ClusterSwap {swap}: {source}")]
    InvalidTransition {
        swap: String,
        source: rotor_api::InvalidTransition,
    },
    /// A phase needs a status field an earlier phase should have set.
    #[error("ClusterSwap {swap}: {field} is not set")]
    StatusIncomplete { swap: String, field: &'static str },
    /// A task ended without an answer (it panicked): the step starts it again.
    #[error("{task}: the task ended without a result: {message}")]
    TaskEnded { task: String, message: String },
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// The reason of the Warning Event that reports this error.
    pub(crate) fn reason(&self) -> rotor_api::Reason {
        use rotor_api::Reason;
        match self {
            Error::Provider(_) | Error::NoProvider(_) => Reason::ProviderError,
            Error::Traffic(_) | Error::NoShifter(_) => Reason::TrafficShifterError,
            Error::Member { .. } => Reason::MemberClusterError,
            Error::Kube(_) => Reason::ControlPlaneError,
            Error::InvalidTransition { .. }
            | Error::StatusIncomplete { .. }
            | Error::TaskEnded { .. }
            | Error::Other(_) => Reason::ReconcileError,
        }
    }
}

/// Re-queues from discovery: every instance whose summary changed becomes the object
/// `lookup` names for it (the Cluster it is the active instance of, the swap it is green for),
/// for kube-runtime's `reconcile_on`. A receiver that fell behind (`Lagged`) re-queues the
/// objects of every watched instance, since it cannot know which changes it missed. Empty
/// without discovery.
pub(crate) fn discovery_triggers<K>(
    ctx: &Arc<Context>,
    lookup: impl Fn(&Context, &str) -> Option<String> + Send + 'static,
) -> futures::stream::BoxStream<'static, kube::runtime::reflector::ObjectRef<K>>
where
    K: kube::Resource + 'static,
    K::DynamicType: Default,
{
    use futures::StreamExt;
    use tokio_stream::wrappers::BroadcastStream;
    use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
    let Some(discovery) = ctx.discovery.clone() else {
        return futures::stream::empty().boxed();
    };
    let changes = discovery.changes();
    let ctx = ctx.clone();
    BroadcastStream::new(changes)
        .flat_map(move |change| {
            let instances = match change {
                Ok(instance) => vec![instance],
                Err(BroadcastStreamRecvError::Lagged(_)) => discovery.instances(),
            };
            let mut names: Vec<String> = instances.iter().filter_map(|i| lookup(&ctx, i)).collect();
            names.sort();
            names.dedup();
            futures::stream::iter(
                names
                    .into_iter()
                    .map(|n| kube::runtime::reflector::ObjectRef::<K>::new(&n)),
            )
        })
        .boxed()
}

/// Runs the Cluster, ClusterSwap and Rollout controllers until `shutdown` resolves, then stops
/// them within `settings.shutdown_grace` and posts their queued Events within a sixth of it.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let grace = ctx.settings.shutdown_grace;
    ctx.migrations.open();
    let swaps = swap::controller(ctx.clone(), stop(rx.clone()));
    let rollouts = rollout::controller(ctx.clone(), stop(rx.clone()));
    let clusters = cluster::controller(ctx.clone(), stop(rx));
    let all = futures::future::join3(swaps, rollouts, clusters);
    tokio::pin!(all);
    tokio::select! {
        _ = &mut all => return,
        () = shutdown => {}
    }
    // Long steps run as tasks, not in reconciles: they stop here, where they stand (each is
    // resumable), so nothing acts after the controllers were told to stop — on shutdown, or
    // because the lease is lost and another leader may start the same work.
    let _ = tx.send(true);
    let cancelled = ctx.migrations.cancel_all();
    if cancelled > 0 {
        tracing::info!(
            cancelled,
            "migrations stopped; the next leader resumes them from their checkpoints"
        );
    }
    // kube-runtime's graceful shutdown: no new reconcile starts, running ones finish (short
    // now), bounded all the same. Dropping the controllers drops the rest.
    if tokio::time::timeout(grace, all).await.is_err() {
        tracing::warn!(
            ?grace,
            "reconciles still running after the shutdown grace: stopped where they stood"
        );
    }
    // Events recorded up to here still reach the API (their lanes post in the background),
    // within a sixth more of the grace: `rotor serve` stops its controllers in 4/3 of it.
    let flush = grace / 6;
    if !ctx.recorder.flush(flush).await {
        tracing::warn!(
            ?flush,
            "events still queued after the grace were not recorded"
        );
    }
}

/// `now` as the API's `Time`.
pub(crate) fn now() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now())
}

/// Time elapsed since `t` (zero if `t` is in the future).
pub(crate) fn since(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> Duration {
    let now = k8s_openapi::jiff::Timestamp::now();
    let d = now.duration_since(t.0);
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An error and its causes, `outer: inner: root` (kube prints only the outer layer).
pub(crate) use rotor_migration::chain;

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use rotor_api::Cluster;

    /// A client that is never called: the instances below are never reached.
    fn idle_client() -> Client {
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        Client::try_from(config).expect("client")
    }

    async fn next_names(
        stream: &mut futures::stream::BoxStream<
            'static,
            kube::runtime::reflector::ObjectRef<Cluster>,
        >,
        n: usize,
    ) -> Vec<String> {
        let mut names = Vec::new();
        for _ in 0..n {
            let r = tokio::time::timeout(Duration::from_secs(5), stream.next())
                .await
                .expect("a trigger in time")
                .expect("stream open");
            names.push(r.name);
        }
        names
    }

    #[tokio::test]
    async fn discovery_changes_become_the_looked_up_objects() {
        let discovery = rotor_discovery::Discovery::new(rotor_discovery::Settings {
            changes_capacity: 2,
            ..Default::default()
        });
        let ctx = Arc::new(
            Context::new(idle_client(), Settings::default()).with_discovery(discovery.clone()),
        );
        // Instances named `owned-*` belong to the object of the same suffix; others to nobody.
        let mut triggers = discovery_triggers::<Cluster>(&ctx, |_, instance| {
            instance
                .strip_prefix("owned-")
                .map(|c| format!("cluster-{c}"))
        });
        let everything = rotor_discovery::Selection::everything;
        discovery.watch_instance("stray", idle_client(), everything());
        discovery.watch_instance("owned-a", idle_client(), everything());
        assert_eq!(next_names(&mut triggers, 1).await, ["cluster-a"]);

        // More changes than the channel holds: the receiver lags, and every watched instance's
        // object is re-queued once, since which changes were lost is unknown.
        for i in 0..6 {
            discovery.watch_instance(&format!("owned-{i}"), idle_client(), everything());
        }
        let mut names = next_names(&mut triggers, 7).await;
        names.sort();
        names.dedup();
        assert_eq!(
            names,
            [
                "cluster-0",
                "cluster-1",
                "cluster-2",
                "cluster-3",
                "cluster-4",
                "cluster-5",
                "cluster-a"
            ]
        );
    }

    #[tokio::test]
    async fn without_discovery_there_are_no_triggers() {
        let ctx = Arc::new(Context::new(idle_client(), Settings::default()));
        let mut triggers = discovery_triggers::<Cluster>(&ctx, |_, i| Some(i.to_string()));
        assert!(triggers.next().await.is_none());
    }

    #[tokio::test]
    async fn a_wait_started_here_is_timed_precisely_after_status_rounds_its_start() {
        let ctx = Context::new(idle_client(), Settings::default());
        // A start with a fraction of a second, as status reads it back (whole seconds).
        let whole = now().0.as_second() - 2;
        let started = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::new(whole, 600_000_000).expect("time"),
        );
        let recorded: Time =
            serde_json::from_value(serde_json::to_value(&started).expect("json")).expect("time");
        assert_ne!(recorded, started, "status rounds to the second");
        let marked = std::time::Instant::now();
        ctx.mark_started("bake".into(), &started);
        // Known again by its second: timed from when it was marked, not from status'
        // estimate (a second after the rounded start, here more than a second ago).
        assert!(ctx.elapsed("bake", &recorded) <= marked.elapsed());
    }
}
