//! TLS to etcd (`https://` endpoints): the CA etcd's serving certificate must chain to, and the
//! client certificate rotor presents to an etcd run with `--client-cert-auth`. Only PEM texts
//! here; reading and checking the files is the caller's (it knows which flag named them).

use etcd_client::{Certificate, Identity, TlsOptions};

/// A client certificate and its private key, both PEM. The key is a secret: never printed.
#[derive(Clone)]
pub struct ClientIdentity {
    pub certificate: String,
    pub key: String,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity").finish_non_exhaustive()
    }
}

/// How to reach etcd over TLS. No system roots: etcd's certificates come from its own CA, so
/// an `https://` endpoint always comes with the CA that signed its certificate.
#[derive(Clone, Debug)]
pub struct EtcdTls {
    /// PEM certificates etcd's serving certificate must chain to.
    pub ca: String,
    /// Presented when etcd asks for a client certificate.
    pub client: Option<ClientIdentity>,
}

impl EtcdTls {
    /// tonic's client TLS configuration (rustls on ring).
    pub(crate) fn options(&self) -> TlsOptions {
        let options = TlsOptions::new().ca_certificate(Certificate::from_pem(&self.ca));
        match &self.client {
            Some(c) => options.identity(Identity::from_pem(&c.certificate, &c.key)),
            None => options,
        }
    }
}

impl EtcdTls {
    /// What a failed first request over TLS most likely means, for an operator: gRPC reports
    /// a refused handshake as a transport error whose cause is an alert or a closed stream.
    pub(crate) fn explain(&self, error: &str) -> Option<&'static str> {
        // etcd may end the connection before its alert is read: either means a refusal.
        let refused = [
            "received fatal alert",
            "broken pipe",
            "connection reset",
            "closed",
        ]
        .iter()
        .any(|c| error.contains(c));
        if error.contains("invalid peer certificate") {
            Some("etcd's serving certificate does not chain to the etcd CA given")
        } else if !refused {
            None
        } else if self.client.is_some() {
            Some(
                "etcd refused the TLS connection: is the client certificate signed by the CA of \
                 etcd's --trusted-ca-file?",
            )
        } else {
            Some(
                "etcd refused the TLS connection without a client certificate: one run with \
                 --client-cert-auth needs one",
            )
        }
    }
}

/// `error` and the errors under it, `: `-separated, each only when it adds to what is already
/// said: tonic's transport error reads "transport error" alone, its causes say why (a refused
/// certificate, an unknown issuer, a closed connection).
pub(crate) fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let more = e.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = e.source();
    }
    text
}
