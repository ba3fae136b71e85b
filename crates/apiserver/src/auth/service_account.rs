//! ServiceAccount tokens as kube-apiserver issues them (`TokenRequest`, what `kubectl create
//! token` asks for) and authenticates them: JWTs signed by the server's key, naming the
//! ServiceAccount and its uid, so a token outlives neither its expiry nor its ServiceAccount (a
//! deleted and recreated one has another uid).

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::token_cache::TokenCache;
use super::verification_keys::VerificationKey;
use super::{AUTHENTICATED, UserInfo};

/// The prefix of a ServiceAccount's user name, as upstream spells it.
pub const USER_PREFIX: &str = "system:serviceaccount:";
/// The group every ServiceAccount is in, and the prefix of its namespace's group.
pub const GROUP: &str = "system:serviceaccounts";
/// Seconds a token is issued for unless the request says otherwise (upstream's default).
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest a token may be issued for (upstream's "10 minutes").
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The longest (upstream's limit: 2^32 seconds).
pub const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 10;

/// Why a signing key was refused; names the flag, never the key.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("{what}: not a PEM private key rotor can sign with (PKCS#8 ECDSA P-256/P-384 or RSA)")]
    Unreadable { what: String },
    #[error("{what}: {problem}")]
    Rejected { what: String, problem: String },
}

/// Issues and checks the ServiceAccount tokens of one server (`--service-account-issuer`,
/// `--api-audiences`, `--service-account-signing-key-file` or the key rotor keeps).
pub struct ServiceAccountTokens {
    issuer: String,
    audiences: Vec<String>,
    algorithm: Algorithm,
    kid: String,
    encoding: EncodingKey,
    /// The signing key's public half first, then `--service-account-key-file`'s.
    keys: Vec<VerificationKey>,
    /// The issuer's discovery documents, when the issuer is a URL they can be served for.
    discovery: Option<super::issuer_discovery::Discovery>,
    /// Recently verified tokens (by digest) and their users.
    cache: TokenCache,
}

impl std::fmt::Debug for ServiceAccountTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: only whose it is.
        f.debug_struct("ServiceAccountTokens")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("algorithm", &self.algorithm)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// The claims of a token, as upstream writes them (`kubernetes.io` holds who it is for).
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    #[serde(default)]
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct KubernetesClaims {
    pub namespace: String,
    pub serviceaccount: ObjectRef,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ObjectRef {
    pub name: String,
    pub uid: String,
}

/// A ServiceAccount a token names, still to be checked against the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl Named {
    /// The user a token of this ServiceAccount authenticates as.
    pub fn user(&self) -> UserInfo {
        UserInfo {
            name: format!("{USER_PREFIX}{}:{}", self.namespace, self.name),
            uid: self.uid.clone(),
            groups: vec![
                GROUP.to_string(),
                format!("{GROUP}:{}", self.namespace),
                AUTHENTICATED.to_string(),
            ],
        }
    }
}

/// A new signing key (ECDSA P-256, as the rotor CA's), PKCS#8 PEM, for rotor to keep.
pub fn generate_key() -> Result<String, SigningKeyError> {
    let key = rcgen::KeyPair::generate().map_err(|e| SigningKeyError::Rejected {
        what: "generating the ServiceAccount signing key".into(),
        problem: e.to_string(),
    })?;
    Ok(key.serialize_pem())
}

impl ServiceAccountTokens {
    /// Signs with the PKCS#8 PEM key `pem` (named `what` in errors); `audiences` empty means
    /// the issuer alone, as upstream's `--api-audiences` defaults.
    pub fn new(
        issuer: &str,
        audiences: &[String],
        pem: &str,
        what: &str,
    ) -> Result<ServiceAccountTokens, SigningKeyError> {
        let unreadable = || SigningKeyError::Unreadable { what: what.into() };
        let pair = rcgen::KeyPair::from_pem(pem).map_err(|_| unreadable())?;
        let public = pair.public_key_pem();
        let alg = pair.algorithm();
        let (algorithm, encoding, decoding) = if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
            (
                Algorithm::ES256,
                EncodingKey::from_ec_pem(pem.as_bytes()),
                ec(&public),
            )
        } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
            (
                Algorithm::ES384,
                EncodingKey::from_ec_pem(pem.as_bytes()),
                ec(&public),
            )
        } else if alg == &rcgen::PKCS_RSA_SHA256 {
            let decoding = DecodingKey::from_rsa_pem(public.as_bytes());
            (
                Algorithm::RS256,
                EncodingKey::from_rsa_pem(pem.as_bytes()),
                decoding,
            )
        } else {
            return Err(unreadable());
        };
        let (encoding, decoding) = (
            encoding.map_err(|_| unreadable())?,
            decoding.map_err(|_| unreadable())?,
        );
        let own =
            VerificationKey::new(decoding, algorithm).map_err(|e| SigningKeyError::Rejected {
                what: what.into(),
                problem: e.to_string(),
            })?;
        let audiences = match audiences.is_empty() {
            true => vec![issuer.to_string()],
            false => audiences.to_vec(),
        };
        Ok(ServiceAccountTokens {
            issuer: issuer.to_string(),
            audiences,
            algorithm,
            kid: own.kid.clone(),
            encoding,
            keys: vec![own],
            discovery: None,
            cache: TokenCache::default(),
        })
    }

    /// With `cache` instead of the default one (a test's short TTL).
    pub fn with_cache(mut self, cache: TokenCache) -> Self {
        self.cache = cache;
        self
    }

    /// The users of recently verified tokens.
    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }

    /// With `extra` keys tokens may also be signed with (`--service-account-key-file`); a key
    /// already known is not added twice.
    pub fn with_verification_keys(mut self, extra: Vec<VerificationKey>) -> Self {
        for key in extra {
            if !self.keys.iter().any(|k| k.kid == key.kid) {
                self.keys.push(key);
            }
        }
        self
    }

    /// The discovery documents (see [`super::issuer_discovery`]) of this issuer and its keys,
    /// or why the issuer allows none.
    pub fn discovery_for(
        &self,
        jwks_uri: Option<&str>,
        external_address: &str,
    ) -> Result<super::issuer_discovery::Discovery, super::issuer_discovery::DiscoveryError> {
        super::issuer_discovery::Discovery::new(self, jwks_uri, external_address)
    }

    /// Serving `discovery` at its paths.
    pub fn serving(mut self, discovery: super::issuer_discovery::Discovery) -> Self {
        self.discovery = Some(discovery);
        self
    }

    pub fn discovery(&self) -> Option<&super::issuer_discovery::Discovery> {
        self.discovery.as_ref()
    }

    /// Every key tokens are verified with, the signing key's first.
    pub fn keys(&self) -> &[VerificationKey] {
        &self.keys
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The audiences tokens are for when a request names none (`--api-audiences`).
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// A signed token for `account`, valid from `now` (Unix seconds) for `seconds`, for
    /// `audiences` (empty: the server's).
    pub fn issue(
        &self,
        account: &Named,
        audiences: &[String],
        now: i64,
        seconds: i64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let aud = match audiences.is_empty() {
            true => self.audiences.clone(),
            false => audiences.to_vec(),
        };
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: format!("{USER_PREFIX}{}:{}", account.namespace, account.name),
            aud,
            exp: now + seconds,
            iat: now,
            nbf: now,
            jti: jti(),
            kubernetes: KubernetesClaims {
                namespace: account.namespace.clone(),
                serviceaccount: ObjectRef {
                    name: account.name.clone(),
                    uid: account.uid.clone(),
                },
            },
        };
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding)
    }

    /// Is `token` one of this issuer's (by its unverified `iss`)? Then [`verify`](Self::verify)
    /// decides; otherwise another authenticator may know it.
    pub fn claims_issued(&self, issuer: Option<&str>) -> bool {
        issuer == Some(self.issuer.as_str())
    }

    /// The ServiceAccount a token names, once its signature, algorithm, issuer, audience and
    /// times are good; the reason otherwise (never the token).
    pub fn verify(&self, token: &str) -> Result<Named, String> {
        self.verify_until(token).map(|(named, _)| named)
    }

    /// [`verify`](Self::verify), and the token's `exp` (Unix seconds).
    pub fn verify_until(&self, token: &str) -> Result<(Named, i64), String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        // Every key of the token's algorithm, the one its `kid` names first (upstream tries
        // them all: a `kid` is a hint, not a promise).
        let mut candidates: Vec<&VerificationKey> = self
            .keys
            .iter()
            .filter(|k| k.algorithm == header.alg)
            .collect();
        candidates.sort_by_key(|k| header.kid.as_deref() != Some(k.kid.as_str()));
        let mut why = format!("no key for algorithm {:?}", header.alg);
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.validation(key)) {
                Ok(data) => {
                    let exp = data.claims.exp;
                    return named(data.claims).map(|n| (n, exp));
                }
                // Signed by another key: the next may be it.
                Err(e) if *e.kind() == ErrorKind::InvalidSignature => why = e.to_string(),
                // Signed by this key, and wrong otherwise.
                Err(e) => return Err(e.to_string()),
            }
        }
        Err(why)
    }

    fn validation(&self, key: &VerificationKey) -> Validation {
        let mut validation = Validation::new(key.algorithm);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&self.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation
    }
}

/// The ServiceAccount verified claims name, if `sub` agrees with them.
fn named(claims: Claims) -> Result<Named, String> {
    let k = claims.kubernetes;
    let named = Named {
        namespace: k.namespace,
        name: k.serviceaccount.name,
        uid: k.serviceaccount.uid,
    };
    if claims.sub != format!("{USER_PREFIX}{}:{}", named.namespace, named.name) {
        return Err("sub does not name the token's ServiceAccount".into());
    }
    Ok(named)
}

fn ec(public_pem: &str) -> jsonwebtoken::errors::Result<DecodingKey> {
    DecodingKey::from_ec_pem(public_pem.as_bytes())
}

/// A random token id, as upstream's `jti`.
fn jti() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The unverified `iss` of a JWT, to pick the authenticator that can verify it; None when
/// `token` is no JWT.
pub fn unverified_issuer(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    if token.split('.').count() != 3 {
        return None;
    }
    jsonwebtoken::dangerous::insecure_decode::<Iss>(token)
        .ok()?
        .claims
        .iss
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Named {
        Named {
            namespace: "ci".into(),
            name: "deployer".into(),
            uid: "uid-1".into(),
        }
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[test]
    fn issued_tokens_verify_and_name_their_account() {
        let key = generate_key().expect("key");
        let tokens = ServiceAccountTokens::new("rotor", &[], &key, "test").expect("tokens");
        let token = tokens.issue(&account(), &[], now(), 600).expect("token");
        assert_eq!(tokens.verify(&token), Ok(account()));
        assert_eq!(unverified_issuer(&token).as_deref(), Some("rotor"));
        let user = account().user();
        assert_eq!(user.name, "system:serviceaccount:ci:deployer");
        assert_eq!(
            user.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:ci",
                "system:authenticated"
            ]
        );
    }

    #[test]
    fn expired_other_audience_other_issuer_or_other_key_are_refused() {
        let key = generate_key().expect("key");
        let tokens = ServiceAccountTokens::new("rotor", &[], &key, "test").expect("tokens");
        let cases = [
            ("expired", tokens.issue(&account(), &[], now() - 7200, 600)),
            (
                "other audience",
                tokens.issue(&account(), &["vault".into()], now(), 600),
            ),
            (
                "other issuer",
                ServiceAccountTokens::new("elsewhere", &["rotor".into()], &key, "test")
                    .expect("tokens")
                    .issue(&account(), &[], now(), 600),
            ),
            (
                "other key",
                ServiceAccountTokens::new("rotor", &[], &generate_key().expect("key"), "test")
                    .expect("tokens")
                    .issue(&account(), &[], now(), 600),
            ),
        ];
        for (case, token) in cases {
            let token = token.expect("issued");
            assert!(tokens.verify(&token).is_err(), "{case} accepted");
        }
    }

    #[test]
    fn after_a_rotation_the_old_keys_tokens_verify_once_its_public_key_is_given() {
        let old_pem = generate_key().expect("key");
        let old = ServiceAccountTokens::new("rotor", &[], &old_pem, "old").expect("old");
        let token = old.issue(&account(), &[], now(), 600).expect("token");
        let expired = old
            .issue(&account(), &[], now() - 7200, 600)
            .expect("token");
        let new_pem = generate_key().expect("key");
        let new = ServiceAccountTokens::new("rotor", &[], &new_pem, "new").expect("new");
        assert!(new.verify(&token).is_err(), "verified without the old key");
        let public = rcgen::KeyPair::from_pem(&old_pem)
            .expect("pem")
            .public_key_pem();
        let keys = super::super::verification_keys::from_pem(&public, "old.pub").expect("keys");
        let rotated = new.with_verification_keys(keys);
        assert_eq!(rotated.keys().len(), 2);
        assert_eq!(rotated.verify(&token), Ok(account()));
        let fresh = rotated.issue(&account(), &[], now(), 600).expect("token");
        assert_eq!(rotated.verify(&fresh), Ok(account()));
        let why = rotated.verify(&expired).expect_err("expired");
        assert!(why.contains("Expired"), "{why}");
    }

    #[test]
    fn an_unreadable_key_names_the_flag_only() {
        let err =
            ServiceAccountTokens::new("rotor", &[], "not a key", "--sa-key").expect_err("bad");
        assert!(
            err.to_string()
                .starts_with("--sa-key: not a PEM private key"),
            "{err}"
        );
    }
}
