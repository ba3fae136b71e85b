//! The pieces of the `rotor` command that tests and other binaries reuse: starting a control
//! plane, and kube-rs clients from in-memory kubeconfigs.

pub mod controlplane;
pub mod rehearsal;

/// A kube-rs client for a kubeconfig held in memory.
pub async fn client_for(kubeconfig: &str) -> anyhow::Result<kube::Client> {
    Ok(rotor_api::client::client(kubeconfig, rotor_api::client::Calls::Default).await?)
}
