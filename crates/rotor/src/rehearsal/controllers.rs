//! The rehearsal's controllers, kept apart from the rest so they can be stopped and started
//! again mid-swap, as a restarted `rotor serve` would be: a new process's controllers with no
//! memory but what the control plane and the members hold.

use std::sync::Arc;
use std::time::Duration;

use rotor_api::{Provider, ShifterKind};
use rotor_traffic::TrafficShifter;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a stop may take before it counts as a failure.
const STOP_WITHIN: Duration = Duration::from_secs(30);

/// What the controllers are built from, each time they start.
pub(super) struct Wiring {
    pub kubeconfig: String,
    pub settings: rotor_controllers::Settings,
    pub providers: Vec<(Provider, Arc<dyn rotor_providers::Provider>)>,
    pub shifters: Vec<(ShifterKind, Arc<dyn TrafficShifter>)>,
    pub clock: Option<rotor_controllers::Clock>,
    /// Shared by every start, so a test reads one `/metrics` across restarts.
    pub metrics: Arc<rotor_controllers::metrics::Metrics>,
}

/// Running controllers, until [`Running::stop`].
pub(super) struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    ctx: Arc<rotor_controllers::Context>,
}

impl Wiring {
    /// A fresh controller context (new per-swap memory, new member clients) and its run.
    pub(super) async fn start(&self) -> anyhow::Result<Running> {
        let mut ctx = rotor_controllers::Context::new(
            crate::client_for(&self.kubeconfig).await?,
            self.settings.clone(),
        )
        .with_discovery(rotor_discovery::Discovery::new(Default::default()));
        for (kind, shifter) in &self.shifters {
            ctx = ctx.with_shifter(*kind, shifter.clone());
        }
        for (kind, provider) in &self.providers {
            ctx = ctx.with_provider(*kind, provider.clone());
        }
        if let Some(clock) = self.clock.clone() {
            ctx = ctx.with_clock(clock);
        }
        ctx.metrics = self.metrics.clone();
        let (stop, mut stopped) = watch::channel(false);
        let ctx = Arc::new(ctx);
        let task = tokio::spawn(rotor_controllers::run(ctx.clone(), async move {
            let _ = stopped.wait_for(|v| *v).await;
        }));
        Ok(Running { stop, task, ctx })
    }
}

impl Running {
    /// Stops the controllers and waits until they have (bounded).
    pub(super) async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        tokio::time::timeout(STOP_WITHIN, self.task)
            .await
            .map_err(|_| anyhow::anyhow!("the controllers did not stop within {STOP_WITHIN:?}"))?
            .map_err(|e| anyhow::anyhow!("the controllers' task: {e}"))
    }

    /// Waits until every Event they recorded so far was posted, at most `within`.
    pub(super) async fn events_posted(&self, within: Duration) -> bool {
        self.ctx.flush_events(within).await
    }

    /// Stops them without waiting (the rehearsal is dropped).
    pub(super) fn abort(&self) {
        let _ = self.stop.send(true);
        self.task.abort();
    }
}
