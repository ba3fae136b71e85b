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

use kube_lease_manager::LeaseManagerBuilder;

use crate::Context;

/// The Lease all of rotor's control planes contend for.
pub const LEASE_NAME: &str = "rotor-controllers";
pub const LEASE_NAMESPACE: &str = "kube-system";

/// Who contends, and how long a lease lasts.
#[derive(Debug, Clone)]
pub struct Election {
    /// Unique per process: the Lease's `holderIdentity`.
    pub identity: String,
    /// How long a lease holds without renewal: the longest the controllers stand still after
    /// their leader dies.
    pub lease_duration: Duration,
    /// How long before expiry the holder renews; also the clock skew tolerated between machines.
    pub grace: Duration,
}

impl Election {
    /// kube-controller-manager's lease (15 s) with a 5 s grace.
    pub fn new(identity: impl Into<String>) -> Self {
        Election {
            identity: identity.into(),
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

/// Runs the controllers whenever this process holds the lease, until `shutdown`; on shutdown
/// the controllers stop and the lease is released (another control plane takes it on its next
/// look, within the lease duration).
pub async fn run_elected(
    ctx: Arc<Context>,
    election: Election,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let secs = |d: Duration| d.as_secs().max(1);
    let manager = LeaseManagerBuilder::new(ctx.client.clone(), LEASE_NAME)
        .with_namespace(LEASE_NAMESPACE)
        .with_identity(election.identity.clone())
        .with_duration(secs(election.lease_duration))
        .with_grace(secs(election.grace))
        .with_field_manager("rotor-leader-election")
        .build()
        .await
        .map_err(|e| {
            anyhow::anyhow!("leader election on Lease {LEASE_NAMESPACE}/{LEASE_NAME}: {e}")
        })?;
    let (mut leading, manager_task) = manager.watch().await;
    let identity = election.identity;
    tokio::pin!(shutdown);
    let finish = |leading: tokio::sync::watch::Receiver<bool>| async move {
        // Closing the channel makes the manager release the lease.
        drop(leading);
        let _ = manager_task.await;
    };
    loop {
        // Follow until this process holds the lease.
        while !*leading.borrow_and_update() {
            tokio::select! {
                _ = &mut shutdown => {
                    finish(leading).await;
                    return Ok(());
                }
                changed = leading.changed() => if changed.is_err() {
                    anyhow::bail!("leader election on Lease {LEASE_NAMESPACE}/{LEASE_NAME} ended");
                }
            }
        }
        tracing::info!(%identity, "leading (Lease {LEASE_NAMESPACE}/{LEASE_NAME}): controllers started");
        ctx.metrics.set_leading(true);
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let controllers = tokio::spawn(crate::run(ctx.clone(), async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        }));
        let shutting_down = loop {
            tokio::select! {
                _ = &mut shutdown => break true,
                changed = leading.changed() => {
                    if changed.is_err() || !*leading.borrow_and_update() {
                        break false;
                    }
                }
            }
        };
        let _ = stop_tx.send(true);
        let _ = controllers.await;
        ctx.metrics.set_leading(false);
        if shutting_down {
            finish(leading).await;
            return Ok(());
        }
        tracing::warn!(%identity, "lost the lease: controllers stopped, following");
    }
}
