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

/// A credential presenting the access token held in a file (surrounding whitespace ignored),
/// read each time a token is asked for: for a control plane whose tokens another process keeps
/// fresh (a sidecar, a CI job running `az account get-access-token`), and for the simulator.
/// The token is reported valid for [`TOKEN_FILE_VALIDITY`], so a cache asks again soon.
pub fn token_file(path: impl Into<std::path::PathBuf>) -> Arc<dyn TokenCredential> {
    Arc::new(TokenFile(path.into()))
}

/// How long a token read from a file is taken to be valid.
pub const TOKEN_FILE_VALIDITY: Duration = Duration::minutes(5);

#[derive(Debug)]
struct TokenFile(std::path::PathBuf);

#[async_trait]
impl TokenCredential for TokenFile {
    async fn get_token(
        &self,
        _: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let path = self.0.display();
        let text = std::fs::read_to_string(&self.0).map_err(|e| {
            Error::with_message(
                ErrorKind::Credential,
                format!("access token file {path}: {e}"),
            )
        })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(Error::with_message(
                ErrorKind::Credential,
                format!("access token file {path} is empty"),
            ));
        }
        Ok(AccessToken::new(
            Secret::new(token.to_string()),
            OffsetDateTime::now_utc() + TOKEN_FILE_VALIDITY,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_token_file_is_read_at_each_request_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "eyJ.first\n").unwrap();
        let c = token_file(&path);
        let first = c.get_token(&["scope"], None).await.unwrap();
        assert_eq!(first.token.secret(), "eyJ.first");
        std::fs::write(&path, "eyJ.second").unwrap();
        let second = c.get_token(&["scope"], None).await.unwrap();
        assert_eq!(second.token.secret(), "eyJ.second");
        assert!(!format!("{c:?}").contains("eyJ"));
        std::fs::write(&path, " ").unwrap();
        let empty = c.get_token(&["scope"], None).await.unwrap_err();
        assert!(empty.to_string().contains("is empty"), "{empty}");
    }

    #[tokio::test]
    async fn the_static_token_is_handed_out_and_never_printed() {
        let c = static_token("sim-azure-s3cret");
        let token = c.get_token(&["scope"], None).await.unwrap();
        assert_eq!(token.token.secret(), "sim-azure-s3cret");
        assert!(token.expires_on > OffsetDateTime::now_utc() + Duration::days(1));
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
