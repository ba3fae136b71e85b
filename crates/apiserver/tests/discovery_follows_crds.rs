//! Discovery documents are kept once built, until the served resources change: a CRD created or
//! deleted shows in `/apis` (legacy and aggregated) and its group-version at once, never a
//! document kept from before.

use std::sync::Arc;

use axum::body::Body;
use http::Request;
use rotor_apiserver::ApiServer;
use serde_json::{Value, json};

use crate::common;

const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

fn crd() -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {"group": "example.com", "scope": "Cluster",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object",
                    "x-kubernetes-preserve-unknown-fields": true}}}]}})
}

async fn get(server: &Arc<ApiServer>, path: &str, accept: &str) -> (u16, Value) {
    let req = Request::builder()
        .uri(path)
        .header("accept", accept)
        .body(Body::empty())
        .expect("request");
    let resp = server.handle(req).await;
    let code = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .expect("body");
    (code, serde_json::from_slice(&bytes).expect("JSON"))
}

/// The groups `/apis` names, legacy and aggregated.
async fn groups(server: &Arc<ApiServer>) -> (Vec<String>, Vec<String>) {
    let names = |list: &Value, at: &str| -> Vec<String> {
        list[at]
            .as_array()
            .expect("a list")
            .iter()
            .map(|g| {
                g.pointer(if at == "groups" {
                    "/name"
                } else {
                    "/metadata/name"
                })
            })
            .map(|n| n.and_then(Value::as_str).unwrap_or_default().to_string())
            .collect()
    };
    let (_, legacy) = get(server, "/apis", "application/json").await;
    let (_, aggregated) = get(server, "/apis", AGGREGATED).await;
    assert_eq!(aggregated["kind"], "APIGroupDiscoveryList");
    (names(&legacy, "groups"), names(&aggregated, "items"))
}

#[tokio::test]
async fn a_created_or_deleted_crd_shows_in_discovery_at_once() {
    let (server, _) = common::server().await;
    let has = |(legacy, aggregated): &(Vec<String>, Vec<String>)| {
        let example = "example.com".to_string();
        (legacy.contains(&example), aggregated.contains(&example))
    };
    // Asked twice before: the documents are kept.
    assert_eq!(has(&groups(&server).await), (false, false));
    assert_eq!(has(&groups(&server).await), (false, false));
    let (code, _) = get(&server, "/apis/example.com/v1", "application/json").await;
    assert_eq!(code, 404);

    let (code, reply) = common::send(
        &server,
        "POST",
        CRDS,
        "application/json",
        crd().to_string().into_bytes(),
    )
    .await;
    assert_eq!(code, 201, "{reply}");
    assert_eq!(has(&groups(&server).await), (true, true));
    let (code, after) = get(&server, "/apis/example.com/v1", "application/json").await;
    assert_eq!(
        (code, &after["resources"][0]["name"]),
        (200, &json!("gadgets")),
        "{after}"
    );

    let path = format!("{CRDS}/gadgets.example.com");
    let (code, reply) = common::send(&server, "DELETE", &path, "application/json", vec![]).await;
    assert_eq!(code, 200, "{reply}");
    // Deletion of a CRD completes once its objects are gone (none here): wait, bounded, on
    // discovery itself, which is what the test is about.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while has(&groups(&server).await) != (false, false) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "example.com still discovered"
        );
        tokio::task::yield_now().await;
    }
}
