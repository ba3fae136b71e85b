//! A server given its names (`ServerConfig::allowed_hosts`, as `rotor serve` is) answers only
//! requests addressed to them, to an IP address or to `localhost`: a page whose name an
//! attacker points at a loopback server (DNS rebinding) gets 403 naming the Host, even on
//! the public `/version`. Without names, any Host passes (the simulator's members).

use std::sync::Arc;

use axum::body::Body;
use http::Request;
use rotor_apiserver::{ApiServer, ServerConfig};
use rotor_store::memory::MemoryStore;
use serde_json::Value;

async fn get(server: &Arc<ApiServer>, host: Option<&str>, path: &str) -> (u16, Value) {
    let mut req = Request::get(path);
    if let Some(host) = host {
        req = req.header("host", host);
    }
    let resp = server
        .handle(req.body(Body::empty()).expect("request"))
        .await;
    let code = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn server(allowed_hosts: Option<Vec<String>>) -> Arc<ApiServer> {
    let config = ServerConfig {
        allowed_hosts,
        ..ServerConfig::default()
    };
    ApiServer::new(Arc::new(MemoryStore::default()), config)
        .await
        .expect("server")
}

#[tokio::test]
async fn only_the_servers_names_ip_addresses_and_localhost_are_answered() {
    let named = server(Some(vec!["rotor.internal".into()])).await;
    for host in [
        "127.0.0.1:6443",
        "[::1]:6443",
        "10.0.0.7",
        "localhost:6443",
        "LOCALHOST",
        "rotor.internal:6443",
        "Rotor.Internal",
    ] {
        let (code, body) = get(&named, Some(host), "/api/v1/namespaces").await;
        assert_eq!(code, 200, "{host}: {body}");
    }
    for host in [
        "attacker.example:6443",
        "rotor.internal.attacker.example",
        "",
    ] {
        for path in ["/api/v1/namespaces", "/version"] {
            let (code, body) = get(&named, Some(host), path).await;
            assert_eq!(code, 403, "{host} {path}: {body}");
            assert_eq!(body["reason"], "Forbidden", "{body}");
            let message = body["message"].as_str().unwrap_or_default();
            assert!(message.contains(&format!("Host {host:?}")), "{message}");
        }
    }
    let (code, _) = get(&named, None, "/version").await;
    assert_eq!(code, 403, "a request without a Host names nothing");

    let open = server(None).await;
    let (code, body) = get(&open, Some("attacker.example"), "/api/v1/namespaces").await;
    assert_eq!(code, 200, "{body}");
}
