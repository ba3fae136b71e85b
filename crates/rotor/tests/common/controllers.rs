//! The controllers wired as `rotor serve` wires them (`--provider`, `--traffic`), running in
//! the test's process against a test control plane until stopped.

use std::sync::Arc;

/// The controllers on a control plane, until [`Controllers::stop`].
pub struct Controllers {
    pub ctx: Arc<rotor_controllers::Context>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    _layers: rotor::controlplane::TrafficLayers,
}

impl Controllers {
    pub async fn start(
        cp: &super::TestServer,
        wiring: &rotor::controlplane::Wiring,
        settings: rotor_controllers::Settings,
    ) -> Self {
        let (ctx, layers) =
            rotor::controlplane::controller_context(cp.client.clone(), wiring, settings)
                .await
                .expect("wiring");
        let ctx = Arc::new(ctx);
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(rotor_controllers::run(ctx.clone(), async move {
            let _ = stopped.wait_for(|v| *v).await;
        }));
        Controllers {
            ctx,
            stop,
            task,
            _layers: layers,
        }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
