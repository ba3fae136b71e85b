//! Shared by the apiserver's integration tests: a server on the memory store, and one request
//! through its HTTP router without a socket.
#![allow(dead_code)]

use std::sync::Arc;

use axum::body::Body;
use http::Request;
use rotor_apiserver::{ApiServer, ServerConfig};
use rotor_store::memory::MemoryStore;
use serde_json::Value;

pub async fn server() -> (Arc<ApiServer>, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::default());
    let server = ApiServer::new(store.clone(), ServerConfig::default())
        .await
        .expect("server");
    (server, store)
}

pub async fn send(
    server: &Arc<ApiServer>,
    method: &str,
    path: &str,
    ct: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", ct)
        .body(Body::from(body))
        .expect("request");
    let resp = server.handle(req).await;
    let code = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .expect("body");
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}
