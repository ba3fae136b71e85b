//! The pieces of the `rotor` command that tests and other binaries reuse: starting a control
//! plane, and kube-rs clients from in-memory kubeconfigs.

pub mod controlplane;
pub mod dry_run_plan;
pub mod etcd_flags;
pub mod kubeconfig;
pub mod policy;
pub mod rehearsal;
pub mod service_accounts;
pub mod tls;
pub mod ui;

/// Stack of each runtime thread. Google's generated clients deserialise deeply nested models
/// on the stack: a GKE lifecycle took 1.5–1.75 MiB in a debug build (docs/clouds.md 4.6), close
/// to tokio's 2 MiB default. Untouched stack costs only address space.
pub const THREAD_STACK_BYTES: usize = 4 << 20;

/// The multi-threaded runtime every `rotor` command runs on (and tests that run the
/// controllers as `rotor serve` does).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(THREAD_STACK_BYTES)
        .build()
}

/// A kube-rs client for a kubeconfig held in memory.
pub async fn client_for(kubeconfig: &str) -> anyhow::Result<kube::Client> {
    Ok(rotor_api::client::client(kubeconfig, rotor_api::client::Calls::Default).await?)
}

#[cfg(test)]
mod tests {
    /// The simulator and its provider write the extension rotor's clients read: one name.
    #[test]
    fn the_h2c_extension_has_one_name() {
        let read = rotor_api::client::H2C_EXTENSION;
        assert_eq!(rotor_sim::H2C_EXTENSION, read);
        assert_eq!(rotor_providers::sim::H2C_EXTENSION, read);
    }
}
