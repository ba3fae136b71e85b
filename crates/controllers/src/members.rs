//! kube clients for member-cluster instances, built from the provider's credentials and cached
//! per instance (credentials are fetched once, not per reconcile; a failing client is dropped so
//! the next use fetches fresh credentials).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::Client;
use rotor_providers::Provider;

use crate::Error;

/// Bounds every request to a member cluster, so an API that stops answering cannot hold a
/// reconcile (and with it the per-object queue) forever.
const MEMBER_TIMEOUT: Duration = Duration::from_secs(10);

/// A kube-rs client for a kubeconfig held in memory (kube's default timeouts, which suit
/// long-running watches).
pub async fn client_for_kubeconfig(kubeconfig: &str) -> anyhow::Result<Client> {
    Ok(Client::try_from(config_for(kubeconfig).await?)?)
}

async fn config_for(kubeconfig: &str) -> anyhow::Result<kube::Config> {
    let kc = kube::config::Kubeconfig::from_yaml(kubeconfig)?;
    Ok(
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await?,
    )
}

/// A client for request/response calls to a member cluster: every call bounded in time.
async fn member_client(kubeconfig: &str) -> anyhow::Result<Client> {
    let mut config = config_for(kubeconfig).await?;
    config.connect_timeout = Some(MEMBER_TIMEOUT);
    config.read_timeout = Some(MEMBER_TIMEOUT);
    config.write_timeout = Some(MEMBER_TIMEOUT);
    // kube retries 5xx for minutes inside one call; a reconcile would hold its object's queue
    // that long. The controllers retry themselves, with backoff and an Event saying why.
    config.default_retry = false;
    Ok(Client::try_from(config)?)
}

#[derive(Default)]
pub struct MemberClients {
    clients: Mutex<HashMap<String, Client>>,
}

impl MemberClients {
    /// The client of `instance`, asking `provider` for credentials the first time.
    pub async fn get(&self, provider: &dyn Provider, instance: &str) -> Result<Client, Error> {
        if let Some(c) = self.lock().get(instance) {
            return Ok(c.clone());
        }
        let client = Self::make(provider, instance).await?;
        self.lock().insert(instance.to_string(), client.clone());
        Ok(client)
    }

    /// The cached client of `instance`, or else one made for this use alone and not cached:
    /// it goes, with its pooled connections, when the caller drops it. For reads of the whole
    /// fleet at once (the pre-flight, a probe of every cluster after a start): a cached client
    /// for each of 1,000 clusters ran `rotor demo --clusters 1000` out of file descriptors.
    pub async fn get_or_transient(
        &self,
        provider: &dyn Provider,
        instance: &str,
    ) -> Result<Client, Error> {
        if let Some(c) = self.lock().get(instance) {
            return Ok(c.clone());
        }
        Self::make(provider, instance).await
    }

    async fn make(provider: &dyn Provider, instance: &str) -> Result<Client, Error> {
        let kubeconfig = provider.credentials(instance).await?;
        // The error of a kubeconfig parse may quote it: say only what failed.
        member_client(kubeconfig.expose())
            .await
            .map_err(|_| Error::Member {
                instance: instance.to_string(),
                message: "the provider's kubeconfig could not be loaded".into(),
            })
    }

    /// Whether a client of `instance` is cached.
    pub fn has(&self, instance: &str) -> bool {
        self.lock().contains_key(instance)
    }

    /// Forget the client of `instance` (it failed, or the instance is gone).
    pub fn forget(&self, instance: &str) {
        self.lock().remove(instance);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Client>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }
}
