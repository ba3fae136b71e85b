//! `rotor serve`'s OIDC flags, as kube-apiserver names them: ID tokens of one issuer
//! authenticate people (see docs/authentication.md).

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use rotor_apiserver::auth::{Oidc, OidcConfig, oidc};

#[derive(Args, Debug, Default)]
pub struct OidcFlags {
    /// The OIDC issuer whose ID tokens authenticate users (https://; exactly the tokens'
    /// `iss`). Its keys are read from its discovery document's `jwks_uri`.
    #[arg(long, requires = "oidc_client_id")]
    pub oidc_issuer_url: Option<String>,
    /// The client id a token's `aud` must contain.
    #[arg(long, requires = "oidc_issuer_url")]
    pub oidc_client_id: Option<String>,
    /// The claim that is the user name. Unless it is `email`, the name is prefixed with
    /// `ISSUER#` (see --oidc-username-prefix).
    #[arg(long, default_value = "sub")]
    pub oidc_username_claim: String,
    /// Prefixed to every user name (`-`: none); default `ISSUER#` for claims other than `email`.
    #[arg(long, requires = "oidc_issuer_url")]
    pub oidc_username_prefix: Option<String>,
    /// The claim holding the user's groups (a string or a list of strings).
    #[arg(long, requires = "oidc_issuer_url")]
    pub oidc_groups_claim: Option<String>,
    /// Prefixed to every group.
    #[arg(long, default_value = "")]
    pub oidc_groups_prefix: String,
    /// The issuer's HTTPS certificate must chain to a CA in this file (PEM); default the
    /// system's roots.
    #[arg(long, requires = "oidc_issuer_url")]
    pub oidc_ca_file: Option<PathBuf>,
    /// The signing algorithms accepted (comma-separated, asymmetric only).
    #[arg(long, default_value = "RS256")]
    pub oidc_signing_algs: String,
    /// A claim every token must hold with this value (`CLAIM=VALUE`; string claims only), as
    /// kube-apiserver's flag. Repeatable.
    #[arg(long = "oidc-required-claim", requires = "oidc_issuer_url")]
    pub oidc_required_claims: Vec<String>,
}

impl OidcFlags {
    /// The authenticator the flags describe; None without `--oidc-issuer-url`.
    pub fn authenticator(&self) -> anyhow::Result<Option<Arc<Oidc>>> {
        let (Some(issuer_url), Some(client_id)) = (&self.oidc_issuer_url, &self.oidc_client_id)
        else {
            return Ok(None);
        };
        let ca_pem = match &self.oidc_ca_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("--oidc-ca-file {}: {e}", path.display()))?,
            ),
            None => None,
        };
        let config = OidcConfig {
            issuer_url: issuer_url.clone(),
            client_id: client_id.clone(),
            username_claim: self.oidc_username_claim.clone(),
            username_prefix: self.oidc_username_prefix.clone(),
            groups_claim: self.oidc_groups_claim.clone(),
            groups_prefix: self.oidc_groups_prefix.clone(),
            ca_pem,
            signing_algs: oidc::signing_algs(&self.oidc_signing_algs)?,
            required_claims: oidc::required_claims(&self.oidc_required_claims)?,
        };
        Ok(Some(Arc::new(Oidc::new(config)?)))
    }
}
