//! Leader election: of several control planes sharing one store (`rotor serve --store etcd:…`)
//! exactly one runs the controllers. The lock is a `coordination.k8s.io/v1` Lease in the control
//! plane's own API, so it needs nothing but the store the objects already share. The protocol is
//! kube-lease-manager's: the holder renews by server-side apply before the lease expires; another
//! takes it only once it has expired, with a grace period for clock skew between machines.
//!
//! The controllers are level-triggered, so a new leader simply starts them: they read every object
//! and carry on from what the status says. A leader that loses the lease stops its controllers
//! before anything else can take over (the lease runs out first).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube_lease_manager::LeaseManagerBuilder;

use crate::Context;

/// The Lease all of rotor's control planes contend for: its name, and its namespace in rotor's
/// own control plane (`rotor controllers` on another API takes its own namespace instead).
pub const LEASE_NAME: &str = "rotor-controllers";
pub const LEASE_NAMESPACE: &str = "kube-system";

/// Who contends, and how long a lease lasts.
#[derive(Debug, Clone)]
pub struct Election {
    /// Unique per process: the Lease's `holderIdentity`.
    pub identity: String,
    /// Where the Lease lives.
    pub namespace: String,
    /// How long a lease holds without renewal: the longest the controllers stand still after
    /// their leader dies.
    pub lease_duration: Duration,
    /// How long before expiry the holder renews; also the clock skew tolerated between machines.
    pub grace: Duration,
}

impl Election {
    /// kube-controller-manager's lease (15 s) with a 5 s grace.
    pub fn new(identity: impl Into<String>, namespace: impl Into<String>) -> Self {
        Election {
            identity: identity.into(),
            namespace: namespace.into(),
            lease_duration: Duration::from_secs(15),
            grace: Duration::from_secs(5),
        }
    }

    /// An identity for this process: host name, process id and a random suffix (two processes
    /// on one host, or one restarted with the same pid, never share it).
    pub fn process_identity() -> String {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "rotor".to_string());
        let suffix: u32 = rand::random();
        format!("{host}-{}-{suffix:08x}", std::process::id())
    }
}

/// This process's candidacy through kube-lease-manager: whether it leads, and the manager.
struct Candidacy {
    leading: tokio::sync::watch::Receiver<bool>,
    task: tokio::task::JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
}

impl Candidacy {
    async fn start(client: &kube::Client, election: &Election) -> anyhow::Result<Self> {
        let secs = |d: Duration| d.as_secs().max(1);
        let namespace = &election.namespace;
        let manager = LeaseManagerBuilder::new(client.clone(), LEASE_NAME)
            .with_namespace(namespace)
            .with_identity(election.identity.clone())
            .with_duration(secs(election.lease_duration))
            .with_grace(secs(election.grace))
            .with_field_manager("rotor-leader-election")
            .build()
            .await
            .map_err(|e| {
                anyhow::anyhow!("leader election on Lease {namespace}/{LEASE_NAME}: {e}")
            })?;
        let (leading, task) = manager.watch().await;
        Ok(Candidacy { leading, task })
    }

    /// A follower's manager sleeps until the lease it saw would expire, even when its holder
    /// released it early (a leader shutting down): started anew, it tries at once.
    async fn restart(self, client: &kube::Client, election: &Election) -> anyhow::Result<Self> {
        self.task.abort();
        let _ = self.task.await;
        Candidacy::start(client, election).await
    }

    /// Closing the channel makes the manager release the lease if it holds it.
    async fn finish(self, fence: tokio::task::JoinHandle<()>) {
        fence.abort();
        drop(self.leading);
        let _ = self.task.await;
    }
}

/// Runs the controllers whenever this process holds the lease, until `shutdown`; on shutdown
/// the controllers stop and the lease is released (another control plane takes it on its next
/// read of the lease, every `grace / 4`).
pub async fn run_elected(
    ctx: Arc<Context>,
    election: Election,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let namespace = election.namespace.clone();
    let mut candidacy = Candidacy::start(&ctx.client, &election).await?;
    let Fence {
        mut confirmed,
        mut released,
        task: fence_task,
    } = fence(
        Api::namespaced(ctx.client.clone(), &namespace),
        election.identity.clone(),
        election.lease_duration,
        election.grace,
    );
    let identity = election.identity.clone();
    tokio::pin!(shutdown);
    loop {
        // Follow until this process holds the lease and the store confirms it.
        while !(*candidacy.leading.borrow_and_update() && *confirmed.borrow_and_update()) {
            tokio::select! {
                _ = &mut shutdown => {
                    candidacy.finish(fence_task).await;
                    return Ok(());
                }
                changed = candidacy.leading.changed() => if changed.is_err() {
                    anyhow::bail!("leader election on Lease {namespace}/{LEASE_NAME} ended");
                },
                _ = confirmed.changed() => {}
                _ = released.changed() => {
                    if *released.borrow_and_update() && !*candidacy.leading.borrow() {
                        candidacy = candidacy.restart(&ctx.client, &election).await?;
                    }
                }
            }
        }
        tracing::info!(%identity, "leading (Lease {namespace}/{LEASE_NAME}): controllers started");
        ctx.metrics.set_leading(true);
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let controllers = tokio::spawn(crate::run(ctx.clone(), async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        }));
        let stopped = loop {
            tokio::select! {
                _ = &mut shutdown => break Stopped::Shutdown,
                changed = candidacy.leading.changed() => {
                    if changed.is_err() || !*candidacy.leading.borrow_and_update() {
                        break Stopped::Lost;
                    }
                }
                _ = confirmed.changed() => {
                    if !*confirmed.borrow_and_update() {
                        break Stopped::Unconfirmed;
                    }
                }
            }
        };
        let _ = stop_tx.send(true);
        stop_controllers(&ctx, controllers, &stopped, election.grace).await;
        ctx.metrics.set_leading(false);
        match stopped {
            Stopped::Shutdown => {
                candidacy.finish(fence_task).await;
                return Ok(());
            }
            Stopped::Lost => {
                tracing::warn!(%identity, "lost the lease: controllers stopped, following");
            }
            Stopped::Unconfirmed => tracing::warn!(
                %identity,
                "cannot confirm the lease in the store: controllers stopped before it could \
                 expire, following"
            ),
        }
    }
}

/// Waits for the controllers told to stop. On shutdown they get their own grace; when the lease
/// is lost or unconfirmed another leader may start once it expires, so running tasks stop at
/// once and reconciles get `grace / 4` — the fence reported `grace / 2` before expiry — and are
/// then dropped where they stand.
async fn stop_controllers(
    ctx: &Context,
    mut controllers: tokio::task::JoinHandle<()>,
    stopped: &Stopped,
    grace: Duration,
) {
    if matches!(stopped, Stopped::Shutdown) {
        let _ = controllers.await;
        return;
    }
    ctx.migrations.cancel_all();
    if tokio::time::timeout(grace / 4, &mut controllers)
        .await
        .is_err()
    {
        controllers.abort();
        let _ = controllers.await;
    }
}

/// Why the controllers stopped.
enum Stopped {
    Shutdown,
    /// The lease manager saw another holder.
    Lost,
    /// The store could not confirm the lease in time (see [`fence`]).
    Unconfirmed,
}

/// The fence kube-lease-manager lacks: it keeps believing it holds the lease while it cannot
/// reach it (a control plane cut off from etcd), and another control plane takes the lease
/// once it expires. So the lease is read back through the API every `grace / 4`, and the
/// answer is `true` only while the store shows this process as holder and the lease it holds
/// has more than `grace / 2` left: the holder renews `grace` before expiry, so a renewal shows
/// before the bound, while a leader that cannot read stops `grace / 2` before anyone
/// else may start (the verdict is given when the bound runs out, before the next read).
/// Clocks may differ by less than that margin, as kube-lease-manager itself assumes.
/// The same reads tell a follower when the lease was released, so it need not wait for expiry.
fn fence(leases: Api<Lease>, identity: String, duration: Duration, grace: Duration) -> Fence {
    let (tx, confirmed) = tokio::sync::watch::channel(false);
    let (released_tx, released) = tokio::sync::watch::channel(false);
    let interval = (grace / 4).max(Duration::from_millis(50));
    let task = tokio::spawn(async move {
        let mut valid_until: Option<tokio::time::Instant> = None;
        let report = |valid_until: Option<tokio::time::Instant>| {
            let now = tokio::time::Instant::now();
            tx.send_if_modified(|held| {
                let holds = valid_until.is_some_and(|t| now < t);
                std::mem::replace(held, holds) != holds
            });
        };
        loop {
            // The verdict first (a bound may have run out while asleep), then a fresh read.
            report(valid_until);
            let read = tokio::time::timeout(interval, leases.get_opt(LEASE_NAME)).await;
            match read {
                Ok(Ok(Some(lease))) => {
                    let spec = lease.spec.unwrap_or_default();
                    let holder = spec.holder_identity.as_deref().unwrap_or_default();
                    released_tx.send_if_modified(|was| {
                        std::mem::replace(was, holder.is_empty()) != holder.is_empty()
                    });
                    valid_until = (holder == identity)
                        .then(|| held_until(&spec, duration, grace))
                        .flatten();
                }
                Ok(Ok(None)) => valid_until = None,
                // Unreadable: the last bound stands, and runs out by itself.
                Ok(Err(_)) | Err(_) => {}
            }
            report(valid_until);
            let now = tokio::time::Instant::now();
            let next = now + interval;
            let wake = valid_until
                .filter(|t| *t > now)
                .map_or(next, |t| t.min(next));
            tokio::time::sleep_until(wake).await;
        }
    });
    Fence {
        confirmed,
        released,
        task,
    }
}

/// What the fence reports.
struct Fence {
    /// This process holds the lease, with more than `grace / 2` left.
    confirmed: tokio::sync::watch::Receiver<bool>,
    /// The lease has no holder: its last one released it.
    released: tokio::sync::watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Until when (on this machine's clock) a lease this process holds is good for the fence:
/// `grace / 2` before it expires.
fn held_until(
    spec: &k8s_openapi::api::coordination::v1::LeaseSpec,
    duration: Duration,
    grace: Duration,
) -> Option<tokio::time::Instant> {
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?.0;
    let held = spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(duration, Duration::from_secs);
    let bound = renewed.checked_add(held.saturating_sub(grace / 2)).ok()?;
    let left =
        Duration::try_from(bound.duration_since(k8s_openapi::jiff::Timestamp::now())).ok()?;
    Some(tokio::time::Instant::now() + left)
}
