//! The members' API over TLS, as the clouds serve a managed cluster's API: an `https://`
//! endpoint and the CA that signed its certificate, given by EKS's DescribeCluster, GKE's
//! clusters.get and AKS's user credentials. Clients verify the server as they would a cloud's,
//! and HTTP/2 is offered by ALPN, so a control plane's watches and calls to many members share
//! connections (what real API servers allow). The CA is made when the simulator starts; it
//! signs for the loopback address and `localhost`.

use std::net::SocketAddr;

use base64::Engine;
use rotor_apiserver::tls::{self, generate};

/// Where the members answer over TLS, and who vouches for them.
#[derive(Clone)]
pub struct MembersTls {
    /// `https://127.0.0.1:PORT`; a member is at `{url}/clusters/{member}`.
    pub url: String,
    /// The CA's certificate, PEM.
    pub ca_pem: String,
}

impl MembersTls {
    /// The CA as a kubeconfig's `certificate-authority-data` (and EKS's, GKE's) carries it.
    pub fn ca_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.ca_pem)
    }
}

/// Serves `router` (the simulator's) over TLS on a free loopback port, in a task that lives as
/// long as the runtime.
pub(crate) async fn serve(router: axum::Router) -> anyhow::Result<MembersTls> {
    let ca = generate::certificate_authority()?;
    let names = ["127.0.0.1".to_string(), "localhost".to_string()];
    let serving = generate::serving(&ca, &names)?;
    let config = tls::server_config(&tls::ServingPem {
        certificate: &serving.certificate,
        key: &serving.key,
        client_ca: None,
    })?;
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let url = format!("https://{}", listener.local_addr()?);
    let config = tls::offering_h2(&config);
    tokio::spawn(async move {
        let never = std::future::pending();
        let _ = rotor_apiserver::http::serve_tls_until(
            listener,
            config,
            router,
            never,
            std::time::Duration::ZERO,
        )
        .await;
    });
    Ok(MembersTls {
        url,
        ca_pem: ca.certificate,
    })
}

/// What a cloud front answers as a member's endpoint: over TLS when the simulator serves its
/// members so, else the plain URL under `base` (the simulator's own).
pub(crate) fn endpoint(tls: Option<&MembersTls>, base: &str, member: &str) -> Endpoint {
    match tls {
        Some(t) => Endpoint {
            server: format!("{}/clusters/{member}", t.url),
            ca_base64: t.ca_base64(),
        },
        None => Endpoint {
            server: format!("{}/clusters/{member}", base.trim_end_matches('/')),
            // What the fronts answered before TLS: a placeholder a client must not need.
            ca_base64: base64::engine::general_purpose::STANDARD
                .encode("simulated: plain HTTP, no CA"),
        },
    }
}

/// A member's API as a cloud describes it.
pub(crate) struct Endpoint {
    pub server: String,
    pub ca_base64: String,
}
