//! The rehearsal's data plane — the simulated applications, the embedded router and the demo's
//! load — on a runtime of its own. In a fleet they run on machines of their own, and a busy
//! control plane never delays an answer; sharing one runtime with the control plane here, a
//! request would wait in the same queue as every reconcile and migration, and a 10,000-cluster
//! rehearsal's load timed out for what was only the control plane's backlog. On its own
//! runtime the data plane's thread gets its share of the machine from the kernel.

use tokio::runtime::{Builder, Handle, Runtime};

/// Worker threads of the data plane: the load's clients, the router and the applications'
/// answers are light; one thread beside the control plane's leaves it the machine's cores.
const THREADS: usize = 1;

/// The data plane's runtime, shut down (without waiting) when dropped.
pub struct DataPlane(Option<Runtime>);

impl DataPlane {
    pub fn start() -> anyhow::Result<Self> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(THREADS)
            .thread_name("rotor-data-plane")
            .enable_all()
            .build()
            .map_err(|e| anyhow::anyhow!("starting the data plane's runtime: {e}"))?;
        Ok(DataPlane(Some(runtime)))
    }

    /// Where data-plane tasks are spawned (and `enter`ed, for code that spawns on its own).
    pub fn handle(&self) -> &Handle {
        match &self.0 {
            Some(runtime) => runtime.handle(),
            None => unreachable!("the runtime is taken only on drop"),
        }
    }
}

impl Drop for DataPlane {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which an async context (the rehearsal's owner) forbids.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}
