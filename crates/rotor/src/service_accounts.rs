//! The key `rotor serve` signs ServiceAccount tokens with: the operator's
//! (`--service-account-signing-key-file`), or one made on first start and kept as the rotor CA
//! is — a 0600 file beside a SQLite store, in etcd under rotor's prefix so every control plane
//! of an HA group accepts the others' tokens, in memory for a memory store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rotor_apiserver::auth::ServiceAccountTokens;
use rotor_apiserver::auth::service_account::generate_key;
use rotor_apiserver::auth::verification_keys::VerificationKey;
use rotor_store::DynStore;

/// Where a shared store keeps the key, beside the CA, outside every resource's keys.
const SHARED_KEY: &str = "/rotor-internal/service-account.key";

/// The key file beside a SQLite store at `sqlite_path` (tests sign with it).
pub fn key_file(sqlite_path: &str) -> PathBuf {
    PathBuf::from(format!("{sqlite_path}.sa.key"))
}

/// What the flags say about ServiceAccount tokens.
pub struct Flags<'a> {
    pub signing_key_file: Option<&'a Path>,
    pub issuer: &'a str,
    pub audiences: &'a [String],
    /// `--service-account-key-file`s: more keys tokens may be signed with.
    pub key_files: &'a [PathBuf],
    pub jwks_uri: Option<&'a str>,
    /// Where clients reach the server (`host:port`), for the default `jwks_uri`.
    pub external_address: String,
}

/// The issuer of `store_spec`'s server.
pub async fn prepare(
    store_spec: &str,
    store: &DynStore,
    flags: &Flags<'_>,
) -> anyhow::Result<Arc<ServiceAccountTokens>> {
    let (pem, what) = match flags.signing_key_file {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!("--service-account-signing-key-file {}: {e}", path.display())
            })?,
            format!("--service-account-signing-key-file {}", path.display()),
        ),
        None => (
            kept_key(store_spec, store).await?,
            "the ServiceAccount signing key rotor keeps".into(),
        ),
    };
    let tokens = ServiceAccountTokens::new(flags.issuer, flags.audiences, &pem, &what)?
        .with_verification_keys(verification_keys(flags.key_files)?);
    Ok(Arc::new(with_discovery(tokens, flags)))
}

/// The keys of every `--service-account-key-file`.
fn verification_keys(files: &[PathBuf]) -> anyhow::Result<Vec<VerificationKey>> {
    let mut keys = Vec::new();
    for file in files {
        let what = format!("--service-account-key-file {}", file.display());
        let text = std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
        keys.extend(rotor_apiserver::auth::verification_keys::from_pem(
            &text, &what,
        )?);
    }
    Ok(keys)
}

/// `tokens` serving the issuer's discovery documents, or, when the issuer is no https URL,
/// not: said once at start, as kube-apiserver logs it, and the server runs on.
fn with_discovery(tokens: ServiceAccountTokens, flags: &Flags<'_>) -> ServiceAccountTokens {
    let discovery = tokens.discovery_for(flags.jwks_uri, &flags.external_address);
    match discovery {
        Ok(discovery) => tokens.serving(discovery),
        Err(why) => {
            tracing::info!(%why, "ServiceAccount issuer discovery not served");
            tokens
        }
    }
}

/// The key rotor made for the store, made now if there is none.
async fn kept_key(spec: &str, store: &DynStore) -> anyhow::Result<String> {
    if let Some(path) = spec.strip_prefix("sqlite:") {
        let file = key_file(path);
        if file.exists() {
            return std::fs::read_to_string(&file).map_err(|e| {
                anyhow::anyhow!("the ServiceAccount signing key {}: {e}", file.display())
            });
        }
        let pem = generate_key()?;
        rotor_sim::write_secret_file(&file, &pem)?;
        return Ok(pem);
    }
    if !spec.starts_with("etcd:") {
        return Ok(generate_key()?);
    }
    let text = |kv: rotor_store::KeyValue| {
        String::from_utf8(kv.value.to_vec())
            .map_err(|_| anyhow::anyhow!("the stored ServiceAccount signing key is not text"))
    };
    if let Some(kv) = store.get(SHARED_KEY).await? {
        return text(kv);
    }
    let pem = generate_key()?;
    match store.create(SHARED_KEY, pem.clone().into()).await {
        Ok(_) => Ok(pem),
        // Another control plane made it first.
        Err(rotor_store::StoreError::AlreadyExists(_)) => match store.get(SHARED_KEY).await? {
            Some(kv) => text(kv),
            None => anyhow::bail!("the ServiceAccount signing key vanished from the store"),
        },
        Err(e) => Err(e.into()),
    }
}
