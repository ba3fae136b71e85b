//! Serving the API over TLS: the rustls configuration from PEM (the serving certificate and key,
//! and the CA that client certificates must chain to), certificates made with rcgen
//! (`generate.rs`) and a listener that completes handshakes off the accept loop and tells each
//! request who its client certificate names (`listener.rs`).

pub mod generate;
mod listener;

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

pub use listener::{Peer, TlsListener};

/// Why a TLS configuration was refused; names the flag (or file) at fault, never key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what}: no PEM certificate in it")]
    NoCertificate { what: String },
    #[error("{what}: not a PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { what: String },
    #[error("{what}: {problem}")]
    Rejected { what: String, problem: String },
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// PEM texts of what a TLS server needs (errors name the flags they came from).
pub struct ServingPem<'a> {
    pub certificate: &'a str,
    pub key: &'a str,
    /// Client certificates must chain to one of these; None = client certificates not asked.
    pub client_ca: Option<&'a str>,
}

/// Every certificate in `pem` (the leaf first, then its chain).
pub fn certificates(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsError::NoCertificate { what: what.into() })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { what: what.into() });
    }
    Ok(certs)
}

/// The rustls server configuration: TLS 1.3 on ring, HTTP/1.1 offered by ALPN, client
/// certificates verified against the client CA when one is given and optional (a request may
/// authenticate with a bearer token instead).
pub fn server_config(pem: &ServingPem<'_>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(pem.certificate, "--tls-cert-file")?;
    let key = PrivateKeyDer::from_pem_slice(pem.key.as_bytes()).map_err(|_| TlsError::NoKey {
        what: "--tls-private-key-file".into(),
    })?;
    let verifier = match pem.client_ca {
        None => WebPkiClientVerifier::no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(ca, "--client-ca-file")? {
                roots
                    .add(cert)
                    .map_err(|e| rejected("--client-ca-file", e))?;
            }
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| rejected("--client-ca-file", e))?
        }
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| rejected("TLS versions", e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| rejected("--tls-cert-file and --tls-private-key-file", e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// `config` offering HTTP/2 first by ALPN, then HTTP/1.1, as kube-apiserver does: clients
/// multiplex their watches and calls over one connection.
pub fn offering_h2(config: &rustls::ServerConfig) -> Arc<rustls::ServerConfig> {
    let mut config = config.clone();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

fn rejected(what: &str, problem: impl std::fmt::Display) -> TlsError {
    TlsError::Rejected {
        what: what.into(),
        problem: problem.to_string(),
    }
}
