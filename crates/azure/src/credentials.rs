//! Who rotor acts as in Azure. azure_identity 1.0 has no `DefaultAzureCredential`, so rotor
//! chains the credentials a control plane meets (docs/clouds.md §4.2): workload identity (a pod
//! on AKS), a service principal's secret from the environment, managed identity (a VM), the
//! Azure CLI (a developer). The first to hand out a token is used from then on.
//!
//! [`static_token`] is for the simulator: one fixed token, accepted only by loopback endpoints
//! (the client refuses plain http elsewhere).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::error::{Error, ErrorKind};
use azure_core::time::{Duration, OffsetDateTime};
use azure_identity::{
    AzureCliCredential, ClientSecretCredential, ManagedIdentityCredential,
    WorkloadIdentityCredential,
};

/// rotor's chain: the credentials that can be built here, tried in order.
pub fn chain() -> Result<Arc<dyn TokenCredential>, String> {
    let mut links: Vec<(&'static str, Arc<dyn TokenCredential>)> = Vec::new();
    let mut skipped = Vec::new();
    match WorkloadIdentityCredential::new(None) {
        Ok(c) => links.push(("WorkloadIdentityCredential", c)),
        Err(e) => skipped.push(format!("WorkloadIdentityCredential: {e}")),
    }
    match client_secret_from_env() {
        Some(Ok(c)) => links.push(("ClientSecretCredential", c)),
        Some(Err(e)) => skipped.push(format!("ClientSecretCredential: {e}")),
        None => skipped.push("ClientSecretCredential: AZURE_CLIENT_SECRET is not set".into()),
    }
    match ManagedIdentityCredential::new(None) {
        Ok(c) => links.push(("ManagedIdentityCredential", c)),
        Err(e) => skipped.push(format!("ManagedIdentityCredential: {e}")),
    }
    match AzureCliCredential::new(None) {
        Ok(c) => links.push(("AzureCliCredential", c)),
        Err(e) => skipped.push(format!("AzureCliCredential: {e}")),
    }
    if links.is_empty() {
        return Err(skipped.join("; "));
    }
    Ok(Arc::new(Chain {
        links,
        chosen: Mutex::new(None),
    }))
}

/// A service principal from `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`;
/// None when no secret is set.
fn client_secret_from_env() -> Option<azure_core::Result<Arc<dyn TokenCredential>>> {
    let secret = std::env::var("AZURE_CLIENT_SECRET").ok()?;
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let built = ClientSecretCredential::new(
        &var("AZURE_TENANT_ID"),
        var("AZURE_CLIENT_ID"),
        Secret::new(secret),
        None,
    );
    Some(built.map(|c| c as Arc<dyn TokenCredential>))
}

/// Credentials tried in order; the first that hands out a token is kept.
struct Chain {
    links: Vec<(&'static str, Arc<dyn TokenCredential>)>,
    chosen: Mutex<Option<usize>>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.links.iter().map(|(n, _)| *n).collect();
        f.debug_struct("Chain")
            .field("links", &names)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl TokenCredential for Chain {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let chosen = *self.chosen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = chosen {
            return self.links[i].1.get_token(scopes, options).await;
        }
        let mut failures = Vec::new();
        for (i, (name, credential)) in self.links.iter().enumerate() {
            match credential.get_token(scopes, options.clone()).await {
                Ok(token) => {
                    tracing::info!(credential = name, "acting in Azure as this credential");
                    *self.chosen.lock().unwrap_or_else(|p| p.into_inner()) = Some(i);
                    return Ok(token);
                }
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
        Err(Error::with_message(
            ErrorKind::Credential,
            format!("no Azure credential gave a token: {}", failures.join("; ")),
        ))
    }
}

/// A credential presenting one fixed token, far from expiry: for the simulator and tests,
/// never for Azure (real tokens expire within the hour).
pub fn static_token(token: impl Into<String>) -> Arc<dyn TokenCredential> {
    Arc::new(StaticToken(Secret::new(token.into())))
}

struct StaticToken(Secret);

impl std::fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticToken(<redacted>)")
    }
}

#[async_trait]
impl TokenCredential for StaticToken {
    async fn get_token(
        &self,
        _: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            self.0.clone(),
            OffsetDateTime::now_utc() + Duration::days(365),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_static_token_is_handed_out_and_never_printed() {
        let c = static_token("sim-azure-s3cret");
        let token = c.get_token(&["scope"], None).await.unwrap();
        assert_eq!(token.token.secret(), "sim-azure-s3cret");
        assert!(token.expires_on > OffsetDateTime::now_utc() + Duration::days(1));
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
