//! Authentication as kube-apiserver's: who sent a request, from its client certificate (checked
//! by the TLS layer against the client CA) or its bearer token (the admin token, a token file,
//! a ServiceAccount token this server issued, an OIDC ID token, a token review), else
//! anonymous where that is allowed. The result is a typed [`UserInfo`] the request handling
//! carries, so an authorizer and an audit log can judge it later.

pub mod issuer_discovery;
pub mod oidc;
pub mod review;
pub mod service_account;
pub mod token_cache;
pub mod token_file;
pub mod token_request;
pub mod token_review;
pub mod verification_keys;
pub mod x509;

use http::{HeaderMap, header};

use crate::error::ApiError;
use crate::server::ApiServer;

pub use oidc::{Oidc, OidcConfig};
pub use service_account::ServiceAccountTokens;
pub use token_file::{TokenFile, TokenFileError};

/// The group whose members may do everything (kube-apiserver's superuser group).
pub const MASTERS: &str = "system:masters";
/// Every authenticated user is in it, as upstream adds it.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The group of the anonymous user.
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
/// The user of a request without credentials where anonymous access is enabled.
pub const ANONYMOUS: &str = "system:anonymous";
/// The user of the admin token.
pub const ADMIN: &str = "rotor-admin";
/// The user of a credential-less request to a server that trusts its loopback clients (plain
/// HTTP development, the simulator's members): kube-apiserver's old insecure port's name.
pub const UNSECURED: &str = "system:unsecured";

/// An authenticated user, as `SelfSubjectReview` and `TokenReview` spell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    fn new(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.to_string(),
            uid: String::new(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    /// The anonymous user: only what `--anonymous-auth` lets it reach (version and health).
    pub fn anonymous() -> UserInfo {
        UserInfo::new(ANONYMOUS, &[UNAUTHENTICATED])
    }

    pub fn is_anonymous(&self) -> bool {
        self.name == ANONYMOUS
    }

    /// With `system:authenticated` added, as upstream does for every authenticated user.
    fn authenticated(mut self) -> UserInfo {
        if !self.groups.iter().any(|g| g == AUTHENTICATED) {
            self.groups.push(AUTHENTICATED.to_string());
        }
        self
    }
}

/// Who sent a request, or 401 (upstream's `Unauthorized` Status) when its credentials are wrong
/// or missing. `certificate` is the user of a verified client certificate, if one was shown.
pub async fn authenticate(
    server: &ApiServer,
    headers: &HeaderMap,
    certificate: Option<&UserInfo>,
) -> Result<UserInfo, ApiError> {
    let config = server.config();
    if let Some(user) = certificate {
        return Ok(user.clone().authenticated());
    }
    let open = config.token.is_none()
        && config.tokens.is_none()
        && config.token_review.is_none()
        && config.service_accounts.is_none()
        && config.oidc.is_none();
    if open {
        return Ok(UserInfo::new(UNSECURED, &[MASTERS]).authenticated());
    }
    match bearer(headers) {
        Some(token) => by_token(server, token)
            .await
            .ok_or_else(ApiError::unauthorized),
        None if config.anonymous => Ok(UserInfo::new(UNSECURED, &[MASTERS]).authenticated()),
        None if config.anonymous_auth => Ok(UserInfo::anonymous()),
        None => Err(ApiError::unauthorized()),
    }
}

/// The user of a bearer token: the admin token, a token file's user, a ServiceAccount or OIDC
/// JWT's (picked by its `iss`), or one a token review accepts.
pub(crate) async fn by_token(server: &ApiServer, token: &str) -> Option<UserInfo> {
    let config = server.config();
    if config
        .token
        .as_deref()
        .is_some_and(|admin| constant_time_eq(admin, token))
    {
        return Some(UserInfo::new(ADMIN, &[MASTERS]).authenticated());
    }
    if let Some(user) = config.tokens.as_ref().and_then(|file| file.user(token)) {
        return Some(user.clone().authenticated());
    }
    if let Some(judged) = by_jwt(server, token).await {
        return judged
            .inspect_err(|reason| tracing::warn!(%reason, "bearer token refused"))
            .ok();
    }
    let reviewed = config
        .token_review
        .as_ref()
        .is_some_and(|review| !token.is_empty() && review.accepts(token));
    // A token review here answers yes or no, not who: its users act as the admin would.
    reviewed.then(|| UserInfo::new("system:token-reviewed", &[MASTERS]).authenticated())
}

/// The user of a JWT from an issuer this server knows (itself for ServiceAccounts, the OIDC
/// issuer); None when the token is no JWT or from another issuer, Some(Err(why)) when its
/// issuer refuses it.
async fn by_jwt(server: &ApiServer, token: &str) -> Option<Result<UserInfo, String>> {
    let config = server.config();
    let issuer = service_account::unverified_issuer(token)?;
    if let Some(accounts) = config.service_accounts.as_ref()
        && accounts.claims_issued(Some(&issuer))
    {
        return Some(service_account_user(server, accounts, token).await);
    }
    let oidc = config.oidc.as_ref().filter(|o| o.issuer() == issuer)?;
    Some(
        oidc.authenticate(token)
            .await
            .map(UserInfo::authenticated)
            .map_err(|why| format!("OIDC token of {issuer}: {why}")),
    )
}

/// The user of a ServiceAccount token: from the cache of recent verdicts, else verified and
/// checked against the store, and then kept (until the TTL or the token's `exp`).
async fn service_account_user(
    server: &ApiServer,
    accounts: &ServiceAccountTokens,
    token: &str,
) -> Result<UserInfo, String> {
    if let Some(user) = accounts.cache().get(token) {
        return Ok(user);
    }
    let (named, exp) = accounts
        .verify_until(token)
        .map_err(|why| format!("ServiceAccount token: {why}"))?;
    token_request::still_there(server, &named).await?;
    let user = named.user();
    let left = exp.saturating_sub(chrono::Utc::now().timestamp()).max(0);
    let left = std::time::Duration::from_secs(u64::try_from(left).unwrap_or_default());
    accounts.cache().put(token, user.clone(), left);
    Ok(user)
}

/// The bearer token of `Authorization`, its scheme in any case as upstream accepts it; None
/// when the header is absent or not a bearer token.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Compares secrets without returning early on the first differing byte.
pub(crate) fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
