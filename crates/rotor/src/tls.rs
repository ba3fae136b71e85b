//! `rotor serve`'s TLS material: the rotor CA, made on first start and kept — in 0600 files
//! beside a SQLite store, in etcd under rotor's prefix so every control plane of an HA group
//! trusts and is trusted by the same CA, in memory for a memory store — and the serving
//! certificate it signs for the names clients use; or the operator's files
//! (`--tls-cert-file`, `--tls-private-key-file`, `--client-ca-file`, as kube-apiserver's).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rotor_apiserver::tls::{self, ServingPem, generate};
use rotor_store::DynStore;

/// The operator's certificate files, as the flags gave them.
#[derive(Debug, Clone, Default)]
pub struct GivenFiles {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
}

/// What serving needs: the rustls configuration, and the CA a kubeconfig trusts it by (None:
/// a certificate the operator gave without its issuer, checked against the system's roots).
pub struct Serving {
    pub config: Arc<rustls::ServerConfig>,
    pub kubeconfig_ca: Option<String>,
    /// The rotor CA (certificate and key): it signs client certificates (`rotor kubeconfig
    /// --user`).
    pub ca: generate::Pem,
}

/// Where the rotor CA lives for a store: `--store sqlite:PATH` → `PATH.ca.crt`/`PATH.ca.key`
/// (and the serving pair `PATH.tls.crt`/`PATH.tls.key`), `etcd:` → the store itself.
enum Keeper<'a> {
    Files(&'a str),
    Store(&'a DynStore),
    Memory,
}

impl<'a> Keeper<'a> {
    fn of(spec: &'a str, store: &'a DynStore) -> Keeper<'a> {
        if let Some(path) = spec.strip_prefix("sqlite:") {
            Keeper::Files(path)
        } else if spec.starts_with("etcd:") {
            Keeper::Store(store)
        } else {
            Keeper::Memory
        }
    }
}

/// Where a store's TLS files are (`rotor kubeconfig` reads the CA from the first).
pub fn ca_files(sqlite_path: &str) -> (PathBuf, PathBuf) {
    (
        PathBuf::from(format!("{sqlite_path}.ca.crt")),
        PathBuf::from(format!("{sqlite_path}.ca.key")),
    )
}

fn serving_files(sqlite_path: &str) -> (PathBuf, PathBuf) {
    (
        PathBuf::from(format!("{sqlite_path}.tls.crt")),
        PathBuf::from(format!("{sqlite_path}.tls.key")),
    )
}

/// Keys of the CA in a shared store, beside the admin token, outside every resource's keys.
const SHARED_CA_CERT_KEY: &str = "/rotor-internal/tls/ca.crt";
const SHARED_CA_KEY_KEY: &str = "/rotor-internal/tls/ca.key";

/// The rotor CA of `spec`'s store and the serving configuration for `names`.
pub async fn prepare(
    spec: &str,
    store: &DynStore,
    given: &GivenFiles,
    names: &[String],
) -> anyhow::Result<Serving> {
    let keeper = Keeper::of(spec, store);
    let ca = match &keeper {
        Keeper::Files(path) => ca_from_files(path)?,
        Keeper::Store(store) => ca_from_store(store).await?,
        Keeper::Memory => generate::certificate_authority()?,
    };
    let client_ca = match &given.client_ca {
        Some(path) => read(path, "--client-ca-file")?,
        None => ca.certificate.clone(),
    };
    let (serving, kubeconfig_ca) = match (&given.cert, &given.key) {
        (Some(cert), Some(key)) => {
            let cert = read(cert, "--tls-cert-file")?;
            let issuers = issuers_of(&cert)?;
            let key = read(key, "--tls-private-key-file")?;
            (
                generate::Pem {
                    certificate: cert,
                    key,
                },
                issuers,
            )
        }
        (None, None) => (
            serving_for(&keeper, &ca, names)?,
            Some(ca.certificate.clone()),
        ),
        _ => anyhow::bail!("--tls-cert-file and --tls-private-key-file go together"),
    };
    let config = tls::server_config(&ServingPem {
        certificate: &serving.certificate,
        key: &serving.key,
        client_ca: Some(&client_ca),
    })?;
    Ok(Serving {
        config,
        kubeconfig_ca,
        ca,
    })
}

/// The certificates after the leaf in an operator's certificate file: the chain up to the CA,
/// which the kubeconfig then trusts; None when the file holds the leaf alone.
fn issuers_of(pem: &str) -> anyhow::Result<Option<String>> {
    tls::certificates(pem, "--tls-cert-file")?;
    const END: &str = "-----END CERTIFICATE-----";
    let rest = pem
        .find(END)
        .map(|at| &pem[at + END.len()..])
        .unwrap_or_default();
    Ok(rest
        .contains("-----BEGIN CERTIFICATE-----")
        .then(|| rest.trim_start().to_string()))
}

/// The serving certificate: beside a SQLite store it is kept and reused while it covers
/// `names` and is not about to end; elsewhere (etcd, memory) each process signs its own at start
/// with the shared CA, since each listens on its own address.
fn serving_for(
    keeper: &Keeper<'_>,
    ca: &generate::Pem,
    names: &[String],
) -> anyhow::Result<generate::Pem> {
    let Keeper::Files(path) = keeper else {
        return Ok(generate::serving(ca, names)?);
    };
    let (cert_path, key_path) = serving_files(path);
    if let (Ok(certificate), Ok(key)) = (
        std::fs::read_to_string(&cert_path),
        std::fs::read_to_string(&key_path),
    ) && !generate::needs_renewal(&certificate, names)
    {
        return Ok(generate::Pem { certificate, key });
    }
    let made = generate::serving(ca, names)?;
    write_pair(&cert_path, &key_path, &made)?;
    Ok(made)
}

fn ca_from_files(path: &str) -> anyhow::Result<generate::Pem> {
    let (cert_path, key_path) = ca_files(path);
    if cert_path.exists() || key_path.exists() {
        return Ok(generate::Pem {
            certificate: read(&cert_path, "the rotor CA certificate")?,
            key: read(&key_path, "the rotor CA key")?,
        });
    }
    let ca = generate::certificate_authority()?;
    write_pair(&cert_path, &key_path, &ca)?;
    Ok(ca)
}

/// The CA of a shared store: the first control plane to start makes it, the others read it.
async fn ca_from_store(store: &DynStore) -> anyhow::Result<generate::Pem> {
    if let Some(ca) = read_stored_ca(store).await? {
        return Ok(ca);
    }
    let ca = generate::certificate_authority()?;
    // The key first: a reader that finds the certificate finds its key.
    let key = store.create(SHARED_CA_KEY_KEY, ca.key.clone().into()).await;
    let cert = match key {
        Ok(_) => {
            store
                .create(SHARED_CA_CERT_KEY, ca.certificate.clone().into())
                .await
        }
        Err(e) => Err(e),
    };
    match cert {
        Ok(_) => Ok(ca),
        // Another control plane made it first.
        Err(rotor_store::StoreError::AlreadyExists(_)) => read_stored_ca(store)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the rotor CA vanished from the store")),
        Err(e) => Err(e.into()),
    }
}

async fn read_stored_ca(store: &DynStore) -> anyhow::Result<Option<generate::Pem>> {
    let (Some(cert), Some(key)) = (
        store.get(SHARED_CA_CERT_KEY).await?,
        store.get(SHARED_CA_KEY_KEY).await?,
    ) else {
        return Ok(None);
    };
    let text = |v: &[u8], what: &str| {
        String::from_utf8(v.to_vec()).map_err(|_| anyhow::anyhow!("the stored {what} is not text"))
    };
    Ok(Some(generate::Pem {
        certificate: text(&cert.value[..], "CA certificate")?,
        key: text(&key.value[..], "CA key")?,
    }))
}

/// The rotor CA `rotor serve` keeps for `spec`'s store (`rotor kubeconfig` signs with it);
/// an error when none was made yet.
pub async fn kept_ca(
    spec: &str,
    etcd: &crate::etcd_flags::EtcdFlags,
) -> anyhow::Result<generate::Pem> {
    let missing = || {
        anyhow::anyhow!(
            "--store {spec}: no rotor CA kept yet (has `rotor serve --store {spec}` run?)"
        )
    };
    if spec.starts_with("etcd:") {
        let store = crate::controlplane::open_store_with(spec, etcd).await?;
        return read_stored_ca(&store).await?.ok_or_else(missing);
    }
    let path = spec.strip_prefix("sqlite:").ok_or_else(missing)?;
    let (cert, key) = ca_files(path);
    if !cert.exists() {
        return Err(missing());
    }
    Ok(generate::Pem {
        certificate: read(&cert, "the rotor CA certificate")?,
        key: read(&key, "the rotor CA key")?,
    })
}

fn write_pair(cert: &Path, key: &Path, pem: &generate::Pem) -> anyhow::Result<()> {
    // The key is a secret; the certificate is not, but one mode for every file rotor keeps
    // beside its store leaves nothing to get wrong.
    rotor_sim::write_secret_file(key, &pem.key)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", key.display()))?;
    rotor_sim::write_secret_file(cert, &pem.certificate)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", cert.display()))
}

fn read(path: &Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{what} {}: {e}", path.display()))
}

/// The names the serving certificate covers: the listen address (unless it is a wildcard),
/// localhost, 127.0.0.1, ::1 and every `--allowed-host`.
pub fn serving_names(listen: &std::net::SocketAddr, allowed_hosts: &[String]) -> Vec<String> {
    let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    names.extend(allowed_hosts.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.to_ascii_lowercase()));
    names
}
