//! kube clients for member-cluster instances, built from the provider's credentials and cached
//! per instance (credentials are fetched once, not per reconcile; a failing client is dropped so
//! the next use fetches fresh credentials).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::Client;
use rotor_api::client::{Calls, client};
use rotor_providers::Located;

use crate::Error;

/// Bounds every request to a member cluster, so an API that stops answering cannot hold a
/// reconcile (and with it the per-object queue) forever.
const MEMBER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct MemberClients {
    clients: Mutex<HashMap<String, Client>>,
}

impl MemberClients {
    /// The client of `instance`, asking `provider` for credentials the first time.
    pub async fn get(&self, provider: &Located<'_>, instance: &str) -> Result<Client, Error> {
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
        provider: &Located<'_>,
        instance: &str,
    ) -> Result<Client, Error> {
        if let Some(c) = self.lock().get(instance) {
            return Ok(c.clone());
        }
        Self::make(provider, instance).await
    }

    async fn make(provider: &Located<'_>, instance: &str) -> Result<Client, Error> {
        let kubeconfig = provider.credentials(instance).await?;
        // Request/response calls: each bounded, retried by the controllers, not inside kube.
        client(kubeconfig.expose(), Calls::Bounded(MEMBER_TIMEOUT))
            .await
            .map_err(|e| Error::Member {
                instance: instance.to_string(),
                message: format!("the provider's kubeconfig: {e}"),
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
