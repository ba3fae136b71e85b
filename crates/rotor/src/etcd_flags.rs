//! TLS to etcd, with kube-apiserver's flags: `--etcd-cafile` (the CA etcd's serving certificate
//! must chain to), `--etcd-certfile` and `--etcd-keyfile` (the client certificate presented to an
//! etcd run with `--client-cert-auth`), for `https://` endpoints in `--store etcd:URL[,URL…]`.
//! Checked before connecting, so a wrong file is named rather than found in a failed handshake.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rotor_store::etcd_tls::{ClientIdentity, EtcdTls};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;

/// The flags `rotor serve` and `rotor kubeconfig` share.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct EtcdFlags {
    /// etcd's CA (PEM): the serving certificate of an `https://` etcd endpoint must chain to
    /// it. Required with `https://` endpoints (the system's roots are not used).
    #[arg(long)]
    pub etcd_cafile: Option<PathBuf>,
    /// The client certificate (PEM) rotor presents to etcd, for an etcd run with
    /// `--client-cert-auth`; with `--etcd-keyfile`.
    #[arg(long, requires = "etcd_keyfile")]
    pub etcd_certfile: Option<PathBuf>,
    /// The private key (PEM) of `--etcd-certfile`.
    #[arg(long, requires = "etcd_certfile")]
    pub etcd_keyfile: Option<PathBuf>,
}

/// Why the etcd endpoints and TLS flags were refused: names the flag, file or endpoint, never
/// key material.
#[derive(Debug, thiserror::Error)]
pub enum EtcdFlagsError {
    #[error("{flag} {}: {problem}", path.display())]
    File {
        flag: &'static str,
        path: PathBuf,
        problem: String,
    },
    #[error("{given} was given without {missing}: a client certificate needs its key")]
    Unpaired {
        given: &'static str,
        missing: &'static str,
    },
    #[error("--etcd-certfile {} and --etcd-keyfile {}: {problem}", cert.display(), key.display())]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        problem: String,
    },
    #[error(
        "etcd endpoint {endpoint}: https:// needs --etcd-cafile, the CA that signed etcd's \
         serving certificate"
    )]
    NoCa { endpoint: String },
    #[error(
        "etcd endpoint {endpoint} is plain HTTP but {flag} was given: TLS needs \
         https://HOST:PORT endpoints"
    )]
    PlainWithTls {
        endpoint: String,
        flag: &'static str,
    },
    #[error("etcd endpoint {endpoint}: expected http://HOST:PORT or https://HOST:PORT")]
    Scheme { endpoint: String },
    #[error("etcd endpoints {http} and {https}: all http:// or all https://, not both")]
    Mixed { http: String, https: String },
}

impl EtcdFlags {
    /// The TLS settings for `endpoints`: none for `http://` ones (where TLS flags are refused),
    /// the CA and client certificate read and checked for `https://` ones.
    pub fn settings(&self, endpoints: &[String]) -> Result<Option<EtcdTls>, EtcdFlagsError> {
        self.check_paired()?;
        let https = endpoints.iter().find(|e| e.starts_with("https://"));
        let http = endpoints.iter().find(|e| e.starts_with("http://"));
        if let Some(bad) = endpoints
            .iter()
            .find(|e| !e.starts_with("http://") && !e.starts_with("https://"))
        {
            return Err(EtcdFlagsError::Scheme {
                endpoint: bad.clone(),
            });
        }
        match (http, https) {
            (Some(http), Some(https)) => Err(EtcdFlagsError::Mixed {
                http: http.clone(),
                https: https.clone(),
            }),
            (Some(http), None) => self.plain(http).map(|()| None),
            (None, Some(https)) => self.tls(https).map(Some),
            (None, None) => Ok(None),
        }
    }

    fn check_paired(&self) -> Result<(), EtcdFlagsError> {
        let (cert, key) = ("--etcd-certfile", "--etcd-keyfile");
        match (&self.etcd_certfile, &self.etcd_keyfile) {
            (Some(_), None) => Err(EtcdFlagsError::Unpaired {
                given: cert,
                missing: key,
            }),
            (None, Some(_)) => Err(EtcdFlagsError::Unpaired {
                given: key,
                missing: cert,
            }),
            _ => Ok(()),
        }
    }

    /// Plain HTTP: no TLS flag may be given (it would silently not be used).
    fn plain(&self, endpoint: &str) -> Result<(), EtcdFlagsError> {
        let given = [
            ("--etcd-cafile", self.etcd_cafile.is_some()),
            ("--etcd-certfile", self.etcd_certfile.is_some()),
        ];
        match given.iter().find(|(_, set)| *set) {
            Some(&(flag, _)) => Err(EtcdFlagsError::PlainWithTls {
                endpoint: endpoint.to_string(),
                flag,
            }),
            None => Ok(()),
        }
    }

    fn tls(&self, endpoint: &str) -> Result<EtcdTls, EtcdFlagsError> {
        let Some(ca_file) = &self.etcd_cafile else {
            return Err(EtcdFlagsError::NoCa {
                endpoint: endpoint.to_string(),
            });
        };
        let ca = read_ca(ca_file)?;
        let client = match (&self.etcd_certfile, &self.etcd_keyfile) {
            (Some(cert), Some(key)) => Some(read_identity(cert, key)?),
            _ => None,
        };
        Ok(EtcdTls { ca, client })
    }

    /// For a message about a failed connection: which files the TLS settings came from.
    pub fn describe(&self) -> Option<String> {
        let ca = self.etcd_cafile.as_ref()?;
        let mut text = format!("TLS with --etcd-cafile {}", ca.display());
        match &self.etcd_certfile {
            Some(cert) => text.push_str(&format!(", --etcd-certfile {}", cert.display())),
            None => text.push_str(", no client certificate"),
        }
        Some(text)
    }
}

fn read(flag: &'static str, path: &Path) -> Result<String, EtcdFlagsError> {
    std::fs::read_to_string(path).map_err(|e| EtcdFlagsError::File {
        flag,
        path: path.to_path_buf(),
        problem: format!("cannot be read: {e}"),
    })
}

/// The CA file's certificates, each one a CA rustls accepts as a root.
fn read_ca(path: &Path) -> Result<String, EtcdFlagsError> {
    let flag = "--etcd-cafile";
    let problem = |problem: String| EtcdFlagsError::File {
        flag,
        path: path.to_path_buf(),
        problem,
    };
    let pem = read(flag, path)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rotor_apiserver::tls::certificates(&pem, flag).map_err(|_| problem(no_cert()))? {
        roots
            .add(cert)
            .map_err(|e| problem(format!("not a usable CA certificate: {e}")))?;
    }
    Ok(pem)
}

/// The client certificate and its key, checked to belong together.
fn read_identity(cert_path: &Path, key_path: &Path) -> Result<ClientIdentity, EtcdFlagsError> {
    let (cert_flag, key_flag) = ("--etcd-certfile", "--etcd-keyfile");
    let certificate = read(cert_flag, cert_path)?;
    let key = read(key_flag, key_path)?;
    let chain = rotor_apiserver::tls::certificates(&certificate, cert_flag).map_err(|_| {
        EtcdFlagsError::File {
            flag: cert_flag,
            path: cert_path.to_path_buf(),
            problem: no_cert(),
        }
    })?;
    let key_der =
        PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|_| EtcdFlagsError::File {
            flag: key_flag,
            path: key_path.to_path_buf(),
            problem: "not a PEM private key (PKCS#8, PKCS#1 or SEC1)".into(),
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::sign::CertifiedKey::from_der(chain, key_der, &provider).map_err(|e| {
        EtcdFlagsError::Pair {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
            problem: match e {
                rustls::Error::InconsistentKeys(_) => {
                    "the key is not the certificate's (they do not match)".into()
                }
                other => format!("not a usable client certificate and key: {other}"),
            },
        }
    })?;
    Ok(ClientIdentity { certificate, key })
}

fn no_cert() -> String {
    "no PEM certificate in it".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(urls: &[&str]) -> Vec<String> {
        urls.iter().map(|u| u.to_string()).collect()
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    /// A CA, a certificate it signs and that certificate's key, as files; and another key.
    fn files(dir: &Path) -> (EtcdFlags, PathBuf) {
        use rotor_apiserver::tls::generate;
        let ca = generate::certificate_authority().expect("CA");
        let client = generate::client(&ca, "rotor", None).expect("client");
        let other = generate::client(&ca, "other", None).expect("other");
        let flags = EtcdFlags {
            etcd_cafile: Some(write(dir, "ca.crt", &ca.certificate)),
            etcd_certfile: Some(write(dir, "client.crt", &client.certificate)),
            etcd_keyfile: Some(write(dir, "client.key", &client.key)),
        };
        (flags, write(dir, "other.key", &other.key))
    }

    #[test]
    fn https_endpoints_take_the_ca_and_a_matching_client_certificate() {
        let dir = tempfile::tempdir().expect("dir");
        let (flags, _) = files(dir.path());
        let tls = flags
            .settings(&endpoints(&[
                "https://10.0.0.1:2379",
                "https://10.0.0.2:2379",
            ]))
            .expect("accepted")
            .expect("TLS");
        assert!(tls.ca.contains("BEGIN CERTIFICATE"));
        assert!(tls.client.is_some());
        let no_client = EtcdFlags {
            etcd_certfile: None,
            etcd_keyfile: None,
            ..flags
        };
        let tls = no_client.settings(&endpoints(&["https://e:2379"]));
        assert!(tls.expect("accepted").expect("TLS").client.is_none());
        let plain = EtcdFlags::default().settings(&endpoints(&["http://e:2379"]));
        assert!(plain.expect("accepted").is_none());
    }

    /// Each mistake is refused naming the flag, file or endpoint, and no key material.
    #[test]
    fn bad_flags_are_refused_naming_what_is_wrong() {
        let dir = tempfile::tempdir().expect("dir");
        let (flags, other_key) = files(dir.path());
        let key_text =
            std::fs::read_to_string(flags.etcd_keyfile.as_ref().expect("key")).expect("key text");
        let key_body: String = key_text.lines().filter(|l| !l.starts_with("---")).collect();
        let https = endpoints(&["https://e:2379"]);
        let missing = dir.path().join("missing.crt");
        let not_pem = write(dir.path(), "not.pem", "hello");
        let cases: Vec<(EtcdFlags, Vec<String>, &[&str])> = vec![
            (
                EtcdFlags {
                    etcd_cafile: None,
                    ..flags.clone()
                },
                https.clone(),
                &["etcd endpoint https://e:2379", "--etcd-cafile"],
            ),
            (
                EtcdFlags {
                    etcd_cafile: Some(missing.clone()),
                    ..flags.clone()
                },
                https.clone(),
                &["--etcd-cafile", "missing.crt", "cannot be read"],
            ),
            (
                EtcdFlags {
                    etcd_cafile: Some(not_pem.clone()),
                    ..flags.clone()
                },
                https.clone(),
                &["--etcd-cafile", "not.pem", "no PEM certificate"],
            ),
            (
                EtcdFlags {
                    etcd_keyfile: Some(not_pem),
                    ..flags.clone()
                },
                https.clone(),
                &["--etcd-keyfile", "not.pem", "not a PEM private key"],
            ),
            (
                EtcdFlags {
                    etcd_keyfile: Some(other_key),
                    ..flags.clone()
                },
                https.clone(),
                &[
                    "--etcd-certfile",
                    "--etcd-keyfile",
                    "other.key",
                    "not the certificate's",
                ],
            ),
            (
                EtcdFlags {
                    etcd_keyfile: None,
                    ..flags.clone()
                },
                https.clone(),
                &["--etcd-certfile was given without --etcd-keyfile"],
            ),
            (
                flags.clone(),
                endpoints(&["http://e:2379"]),
                &["http://e:2379 is plain HTTP", "--etcd-cafile"],
            ),
            (
                flags.clone(),
                endpoints(&["http://a:2379", "https://b:2379"]),
                &["http://a:2379", "https://b:2379", "not both"],
            ),
            (
                flags,
                endpoints(&["e:2379"]),
                &["etcd endpoint e:2379", "https://HOST:PORT"],
            ),
        ];
        for (flags, endpoints, says) in cases {
            let error = flags.settings(&endpoints).expect_err("refused").to_string();
            for part in says {
                assert!(error.contains(part), "{error:?} should say {part:?}");
            }
            assert!(!error.contains(&key_body[..40]), "no key material: {error}");
            assert!(!error.contains("PRIVATE KEY"), "no key material: {error}");
        }
    }
}
