//! rotor's reconcilers, run by `rotor serve` (and `rotor demo`) against the control plane's
//! Kubernetes API with kube-runtime:
//!
//! - [`swap`] drives one `ClusterSwap` through the blue-green lifecycle (DESIGN.md);
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

pub mod cluster;
mod events;
pub mod health;
pub mod members;
pub mod migration;
pub mod rollout;
pub mod swap;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use rotor_api::{Provider as ProviderKind, ShifterKind};
use rotor_providers::Provider;
use rotor_traffic::TrafficShifter;

pub use members::{MemberClients, client_for_kubeconfig};

/// Timings of the controllers. The defaults suit production; tests shorten them.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How often gates are checked while green carries traffic. Bounds the time from a gate
    /// failing to all traffic being back on blue.
    pub gate_interval: Duration,
    /// How often progress is polled while waiting on the cloud or on green.
    pub poll_interval: Duration,
    /// How long blue keeps its connections after green took 100 % (Draining).
    pub drain: Duration,
    /// Green must be reachable, at the target version and Ready within this, or the swap rolls
    /// back.
    pub green_ready_timeout: Duration,
    /// Migrated workloads must be available in green within this, or the swap rolls back.
    pub verify_timeout: Duration,
    /// Requests green must have answered in a step before its error rate is judged (one failed
    /// request out of two is noise, not a signal).
    pub min_gate_requests: u64,
    /// How often a Cluster's health is re-probed when nothing else triggers it.
    pub cluster_resync: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            gate_interval: Duration::from_millis(250),
            poll_interval: Duration::from_secs(1),
            drain: Duration::from_secs(2),
            green_ready_timeout: Duration::from_secs(30 * 60),
            verify_timeout: Duration::from_secs(10 * 60),
            min_gate_requests: 20,
            cluster_resync: Duration::from_secs(30),
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
    pub(crate) recorder: events::Recorder,
    /// Traffic addresses of instances (fixed for an instance's life).
    addresses: Mutex<HashMap<String, std::net::SocketAddr>>,
    /// Per swap: the traffic step and green's counters when its bake began (gate baseline).
    gate_baselines: Mutex<HashMap<String, (u32, rotor_traffic::BackendCounters)>>,
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
    /// Migration checkpoints by swap.
    pub(crate) checkpoints: migration::Checkpoints,
    /// Precise starts of timed waits (bake, drain, retention): status times have one-second
    /// resolution, which would cut a 1 s bake to nothing.
    starts: Mutex<HashMap<String, (Time, std::time::Instant)>>,
}

type Time = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The wall clock the controllers read for maintenance windows.
pub type Clock = Arc<dyn Fn() -> chrono::DateTime<chrono::Utc> + Send + Sync>;

impl Context {
    pub fn new(client: Client, settings: Settings) -> Self {
        Context {
            recorder: events::Recorder::new(client.clone()),
            client,
            providers: HashMap::new(),
            shifters: HashMap::new(),
            settings,
            members: MemberClients::default(),
            gate_baselines: Mutex::default(),
            addresses: Mutex::default(),
            failures: Mutex::default(),
            clock: Arc::new(chrono::Utc::now),
            starts: Mutex::default(),
            checkpoints: migration::Checkpoints::default(),
            discovery: None,
            watched: Mutex::default(),
            greens: Mutex::default(),
        }
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

    /// Has discovery watch a swap's green, so a change in green (Ready nodes, available
    /// workloads) re-queues the swap at once instead of at its next poll. The swap still reads
    /// green through its API before acting: the watch is a trigger, not the source of truth.
    pub(crate) async fn watch_green(
        &self,
        swap: &str,
        cluster: &rotor_api::Cluster,
        instance: &str,
    ) -> Result<(), Error> {
        let Some(discovery) = &self.discovery else {
            return Ok(());
        };
        if lock(&self.greens).contains_key(instance) || lock(&self.watched).contains_key(instance) {
            return Ok(());
        }
        let provider = self.provider(cluster.spec.provider)?;
        let kubeconfig = provider.credentials(instance).await?;
        let client = rotor_discovery::client_for_kubeconfig(kubeconfig.expose())
            .await
            .map_err(|e| Error::Member {
                instance: instance.to_string(),
                message: e.to_string(),
            })?;
        discovery.watch_instance(
            instance,
            client,
            rotor_discovery::Selection::from(cluster.spec.workloads.clone()),
        );
        lock(&self.greens).insert(instance.to_string(), swap.to_string());
        Ok(())
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
        let provider = self.provider(cluster.spec.provider)?;
        let kubeconfig = provider.credentials(instance).await?;
        let client = rotor_discovery::client_for_kubeconfig(kubeconfig.expose())
            .await
            .map_err(|e| Error::Member {
                instance: instance.to_string(),
                message: e.to_string(),
            })?;
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
        starts.insert(key, (at.clone(), std::time::Instant::now()));
    }

    /// How long the wait `key` (recorded in status as `at`) has lasted: precisely when this
    /// process started it, else conservatively (the recorded time is rounded down to the
    /// second, so one second is subtracted: a wait is never cut short).
    pub(crate) fn elapsed(&self, key: &str, at: &Time) -> Duration {
        let mut starts = lock(&self.starts);
        if let Some((recorded, instant)) = starts.get(key)
            && recorded == at
        {
            return instant.elapsed();
        }
        let elapsed = since(at).saturating_sub(Duration::from_secs(1));
        let start = std::time::Instant::now()
            .checked_sub(elapsed)
            .unwrap_or_else(std::time::Instant::now);
        starts.insert(key.to_string(), (at.clone(), start));
        elapsed
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

    pub(crate) fn provider(&self, kind: ProviderKind) -> Result<&Arc<dyn Provider>, Error> {
        self.providers
            .get(&kind)
            .ok_or(Error::NoProvider(kind.as_str()))
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

    pub(crate) fn cached_address(&self, instance: &str) -> Option<std::net::SocketAddr> {
        lock(&self.addresses).get(instance).copied()
    }

    pub(crate) fn cache_address(&self, instance: &str, addr: std::net::SocketAddr) {
        lock(&self.addresses).insert(instance.to_string(), addr);
    }

    /// Green's counters when `step` of swap `swap` began; the first call for a step records
    /// `current` as the baseline (also after a restart, which shortens one gate window).
    pub(crate) fn gate_baseline(
        &self,
        swap: &str,
        step: u32,
        current: rotor_traffic::BackendCounters,
    ) -> rotor_traffic::BackendCounters {
        let mut baselines = lock(&self.gate_baselines);
        match baselines.get(swap) {
            Some((s, base)) if *s == step => *base,
            _ => {
                baselines.insert(swap.to_string(), (step, current));
                current
            }
        }
    }

    pub(crate) fn forget_gate_baseline(&self, swap: &str) {
        lock(&self.gate_baselines).remove(swap);
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
    #[error("{0}")]
    Other(String),
}

/// Runs the Cluster and ClusterSwap controllers until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let swaps = swap::controller(ctx.clone(), stop(rx.clone()));
    let rollouts = rollout::controller(ctx.clone(), stop(rx.clone()));
    let clusters = cluster::controller(ctx, stop(rx));
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    futures::join!(swaps, rollouts, clusters);
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

/// An error and its causes, `outer: inner: root` (kube's errors print only the outer layer,
/// which for a timeout says "SendRequest" and not "timed out").
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
