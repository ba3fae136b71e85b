//! OpenID Connect ID tokens for people, as kube-apiserver's `--oidc-*` flags configure it: the
//! issuer's signing keys come from its discovery document's `jwks_uri` over HTTPS, are kept,
//! and are fetched again when a token names a key not among them — at most once per
//! [`REFETCH_INTERVAL`], never once per request.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::UserInfo;

/// The least time between two fetches of the issuer's keys.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// How long one fetch of a discovery document or key set may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
const LEEWAY_SECONDS: u64 = 10;

/// What `--oidc-*` said.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// `--oidc-issuer-url`: HTTPS, and exactly the tokens' `iss`.
    pub issuer_url: String,
    /// `--oidc-client-id`: a token's `aud` must contain it.
    pub client_id: String,
    /// `--oidc-username-claim` (default `sub`).
    pub username_claim: String,
    /// `--oidc-username-prefix`: None = upstream's default (`ISSUER#` for claims other than
    /// `email`); `-` = none.
    pub username_prefix: Option<String>,
    /// `--oidc-groups-claim`: a string or a list of strings; None = no groups.
    pub groups_claim: Option<String>,
    /// `--oidc-groups-prefix`.
    pub groups_prefix: String,
    /// `--oidc-ca-file`'s PEM: the issuer's certificate must chain to it; None = system roots.
    pub ca_pem: Option<String>,
    /// `--oidc-signing-algs` (default RS256).
    pub signing_algs: Vec<Algorithm>,
    /// `--oidc-required-claim`s: each claim must be in the token, a string equal to the value.
    pub required_claims: BTreeMap<String, String>,
}

/// Why the OIDC configuration was refused at start.
#[derive(Debug, thiserror::Error)]
pub enum OidcConfigError {
    #[error("--oidc-issuer-url {0:?}: must be an https:// URL")]
    NotHttps(String),
    #[error("--oidc-client-id: required with --oidc-issuer-url")]
    NoClientId,
    #[error(
        "--oidc-signing-algs: {0:?} is not one of RS256, RS384, RS512, ES256, ES384, PS256, PS384, PS512, EdDSA"
    )]
    Algorithm(String),
    #[error("--oidc-ca-file: {0}")]
    Ca(String),
    #[error("the OIDC HTTPS client: {0}")]
    Client(String),
    #[error("--oidc-required-claim {0:?}: want CLAIM=VALUE")]
    RequiredClaim(String),
}

/// Parses `--oidc-required-claim`s (`CLAIM=VALUE`, the value may hold `=`).
pub fn required_claims(flags: &[String]) -> Result<BTreeMap<String, String>, OidcConfigError> {
    flags
        .iter()
        .map(|flag| match flag.split_once('=') {
            Some((claim, value)) if !claim.is_empty() => Ok((claim.to_string(), value.to_string())),
            _ => Err(OidcConfigError::RequiredClaim(flag.clone())),
        })
        .collect()
}

/// Parses `--oidc-signing-algs`' comma-separated names (asymmetric ones only: a shared-secret
/// algorithm would let anyone holding the issuer's public key sign).
pub fn signing_algs(names: &str) -> Result<Vec<Algorithm>, OidcConfigError> {
    names
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|name| match name {
            "RS256" => Ok(Algorithm::RS256),
            "RS384" => Ok(Algorithm::RS384),
            "RS512" => Ok(Algorithm::RS512),
            "ES256" => Ok(Algorithm::ES256),
            "ES384" => Ok(Algorithm::ES384),
            "PS256" => Ok(Algorithm::PS256),
            "PS384" => Ok(Algorithm::PS384),
            "PS512" => Ok(Algorithm::PS512),
            "EdDSA" => Ok(Algorithm::EdDSA),
            other => Err(OidcConfigError::Algorithm(other.to_string())),
        })
        .collect()
}

/// The issuer's keys as last fetched.
#[derive(Default)]
struct Keys {
    set: Option<Arc<JwkSet>>,
    fetched: Option<Instant>,
}

/// Verifies ID tokens of one issuer.
pub struct Oidc {
    config: OidcConfig,
    http: reqwest::Client,
    keys: tokio::sync::Mutex<Keys>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer_url", &self.config.issuer_url)
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

impl Oidc {
    pub fn new(config: OidcConfig) -> Result<Oidc, OidcConfigError> {
        if !config.issuer_url.starts_with("https://") {
            return Err(OidcConfigError::NotHttps(config.issuer_url));
        }
        if config.client_id.is_empty() {
            return Err(OidcConfigError::NoClientId);
        }
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_client(config.ca_pem.as_deref())?)
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| OidcConfigError::Client(e.to_string()))?;
        Ok(Oidc {
            config,
            http,
            keys: tokio::sync::Mutex::new(Keys::default()),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.config.issuer_url
    }

    /// The user an ID token names, or why it was refused (never the token).
    pub async fn authenticate(&self, token: &str) -> Result<UserInfo, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("header: {e}"))?;
        if !self.config.signing_algs.contains(&header.alg) {
            return Err(format!(
                "alg {:?} is not in --oidc-signing-algs",
                header.alg
            ));
        }
        let key = self.key(header.kid.as_deref(), header.alg).await?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.config.issuer_url]);
        validation.set_audience(&[&self.config.client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims =
            jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key, &validation)
                .map_err(|e| e.to_string())?
                .claims;
        self.user(&claims)
    }

    /// The user and groups the verified `claims` name under the configured claims and
    /// prefixes.
    fn user(&self, claims: &serde_json::Map<String, Value>) -> Result<UserInfo, String> {
        let c = &self.config;
        check_required(&c.required_claims, claims)?;
        let name = claims
            .get(&c.username_claim)
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| format!("no string claim {:?}", c.username_claim))?;
        if c.username_claim == "email" && claims.get("email_verified").is_some_and(|v| v != true) {
            return Err("email_verified is not true".into());
        }
        let prefix = match c.username_prefix.as_deref() {
            Some("-") => String::new(),
            Some(prefix) => prefix.to_string(),
            None if c.username_claim == "email" => String::new(),
            None => format!("{}#", c.issuer_url),
        };
        let groups = match c.groups_claim.as_deref().and_then(|g| claims.get(g)) {
            None => Vec::new(),
            Some(Value::String(one)) => vec![one.clone()],
            Some(Value::Array(many)) => many
                .iter()
                .map(|g| g.as_str().map(String::from))
                .collect::<Option<Vec<_>>>()
                .ok_or("the groups claim holds a non-string")?,
            Some(_) => return Err("the groups claim is neither a string nor a list".into()),
        };
        Ok(UserInfo {
            name: format!("{prefix}{name}"),
            uid: String::new(),
            groups: groups
                .into_iter()
                .map(|g| format!("{}{g}", c.groups_prefix))
                .collect(),
        })
    }

    /// The issuer's key `kid` (or its only key of `alg`'s family when the token names none),
    /// fetching the key set first if it is not known or lacks the key, at most once per
    /// [`REFETCH_INTERVAL`].
    async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, String> {
        let mut keys = self.keys.lock().await;
        if let Some(found) = keys.set.as_deref().and_then(|set| pick(set, kid, alg)) {
            return found;
        }
        let recently = keys
            .fetched
            .is_some_and(|at| at.elapsed() < REFETCH_INTERVAL);
        if recently {
            return Err(format!(
                "no key {kid:?} among the issuer's (fetched less than {}s ago)",
                REFETCH_INTERVAL.as_secs()
            ));
        }
        keys.fetched = Some(Instant::now());
        let set = self.fetch_keys().await?;
        keys.set = Some(Arc::new(set));
        keys.set
            .as_deref()
            .and_then(|set| pick(set, kid, alg))
            .unwrap_or_else(|| Err(format!("no key {kid:?} among the issuer's")))
    }

    /// The key set `jwks_uri` of the issuer's discovery document points at.
    async fn fetch_keys(&self) -> Result<JwkSet, String> {
        let issuer = self.config.issuer_url.trim_end_matches('/');
        let discovery: Value = self
            .get_json(&format!("{issuer}/.well-known/openid-configuration"))
            .await?;
        if discovery["issuer"].as_str() != Some(self.config.issuer_url.as_str()) {
            return Err(format!(
                "the discovery document names issuer {}, not --oidc-issuer-url",
                discovery["issuer"]
            ));
        }
        let uri = discovery["jwks_uri"]
            .as_str()
            .ok_or("the discovery document has no jwks_uri")?;
        self.get_json(uri).await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("fetching {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("fetching {url}: {}", response.status()));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("fetching {url}: {e}"))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("{url}: {e}"))
    }
}

/// Every required claim present in `claims` with its value, as upstream checks them (only
/// string claims can match).
fn check_required(
    required: &BTreeMap<String, String>,
    claims: &serde_json::Map<String, Value>,
) -> Result<(), String> {
    for (claim, want) in required {
        match claims.get(claim) {
            None => return Err(format!("required claim {claim} not present")),
            Some(Value::String(got)) if got == want => {}
            Some(_) => return Err(format!("required claim {claim} does not have its value")),
        }
    }
    Ok(())
}

/// The key of `set` a token names: by `kid`, or the only key fit for `alg` when it names none.
fn pick(set: &JwkSet, kid: Option<&str>, alg: Algorithm) -> Option<Result<DecodingKey, String>> {
    let jwk = match kid {
        Some(kid) => set.find(kid)?,
        None => {
            let mut fit = set
                .keys
                .iter()
                .filter(|k| DecodingKey::from_jwk(k).is_ok_and(|d| d.family() == alg.family()));
            match (fit.next(), fit.next()) {
                (Some(one), None) => one,
                _ => return None,
            }
        }
    };
    Some(DecodingKey::from_jwk(jwk).map_err(|e| format!("the issuer's key {kid:?}: {e}")))
}

/// rustls on ring trusting `ca_pem`'s certificates, or the system's roots without it.
fn tls_client(ca_pem: Option<&str>) -> Result<rustls::ClientConfig, OidcConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            let certs = crate::tls::certificates(pem, "--oidc-ca-file")
                .map_err(|e| OidcConfigError::Ca(e.to_string()))?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| OidcConfigError::Ca(e.to_string()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| OidcConfigError::Client(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oidc(claim: &str, prefix: Option<&str>) -> Oidc {
        Oidc::new(OidcConfig {
            issuer_url: "https://id.example".into(),
            client_id: "rotor".into(),
            username_claim: claim.into(),
            username_prefix: prefix.map(String::from),
            groups_claim: Some("groups".into()),
            groups_prefix: "oidc:".into(),
            ca_pem: None,
            signing_algs: vec![Algorithm::RS256],
            required_claims: BTreeMap::new(),
        })
        .expect("config")
    }

    fn claims(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().expect("object").clone()
    }

    #[test]
    fn usernames_and_groups_as_upstream_prefixes_them() {
        let c = claims(serde_json::json!({"sub": "u1", "email": "a@x", "groups": ["dev", "ops"]}));
        let cases = [
            ("sub", None, "https://id.example#u1"),
            ("sub", Some("-"), "u1"),
            ("sub", Some("oidc:"), "oidc:u1"),
            ("email", None, "a@x"),
        ];
        for (claim, prefix, want) in cases {
            let user = oidc(claim, prefix).user(&c).expect("user");
            assert_eq!(user.name, want, "{claim} {prefix:?}");
            assert_eq!(user.groups, ["oidc:dev", "oidc:ops"]);
        }
        let one = claims(serde_json::json!({"sub": "u1", "groups": "dev"}));
        assert_eq!(
            oidc("sub", None).user(&one).expect("user").groups,
            ["oidc:dev"]
        );
    }

    #[test]
    fn unverified_emails_and_missing_claims_are_refused() {
        let unverified = claims(serde_json::json!({"email": "a@x", "email_verified": false}));
        assert!(oidc("email", None).user(&unverified).is_err());
        let nameless = claims(serde_json::json!({"email": "a@x"}));
        assert!(oidc("sub", None).user(&nameless).is_err());
        let bad_groups = claims(serde_json::json!({"sub": "u", "groups": [1]}));
        assert!(oidc("sub", None).user(&bad_groups).is_err());
    }

    #[test]
    fn required_claims_must_be_there_with_their_string_value() {
        let mut o = oidc("sub", None);
        let flags = ["hd=example.com".to_string(), "t=a=b".to_string()];
        o.config.required_claims = required_claims(&flags).expect("flags");
        assert_eq!(o.config.required_claims["t"], "a=b");
        let both = claims(serde_json::json!({"sub": "u", "hd": "example.com", "t": "a=b"}));
        assert!(o.user(&both).is_ok());
        let cases = [
            serde_json::json!({"sub": "u", "t": "a=b"}),
            serde_json::json!({"sub": "u", "hd": "evil.com", "t": "a=b"}),
            serde_json::json!({"sub": "u", "hd": ["example.com"], "t": "a=b"}),
        ];
        for case in cases {
            assert!(o.user(&claims(case.clone())).is_err(), "{case}");
        }
        let err = required_claims(&["hd".to_string()]).expect_err("no value");
        assert!(
            err.to_string().starts_with("--oidc-required-claim \"hd\""),
            "{err}"
        );
    }

    #[test]
    fn configuration_errors_name_the_flag() {
        assert_eq!(
            signing_algs("RS256, ES256").expect("algs"),
            [Algorithm::RS256, Algorithm::ES256]
        );
        let err = signing_algs("HS256").expect_err("symmetric");
        assert!(err.to_string().starts_with("--oidc-signing-algs"), "{err}");
        let mut config = oidc("sub", None).config;
        config.issuer_url = "http://id.example".into();
        let err = Oidc::new(config).expect_err("http");
        assert!(err.to_string().starts_with("--oidc-issuer-url"), "{err}");
    }
}
