//! A field given twice in a JSON body is judged by the `fieldValidation` level, as upstream's
//! strict decoder and the level decide: Strict refuses it naming the field's path, Warn writes
//! the object (the last value) with a warning, Ignore writes it silently.

use crate::common;

use axum::body::Body;
use axum::http::Request;

const BODY: &str = r#"{"apiVersion": "v1", "kind": "ConfigMap",
    "metadata": {"name": "NAME", "namespace": "default"},
    "data": {"port": "80", "port": "8080"}}"#;

/// POSTs the ConfigMap `name` at `level`: (status, Warning headers, body).
async fn post(
    server: &std::sync::Arc<rotor_apiserver::ApiServer>,
    name: &str,
    level: &str,
) -> (u16, Vec<String>, serde_json::Value) {
    let req = Request::builder()
        .method("POST")
        .uri(format!(
            "/api/v1/namespaces/default/configmaps?fieldValidation={level}"
        ))
        .header("content-type", "application/json")
        .body(Body::from(BODY.replace("NAME", name)))
        .expect("request");
    let resp = server.handle(req).await;
    let code = resp.status().as_u16();
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        code,
        warnings,
        serde_json::from_slice(&bytes).unwrap_or_default(),
    )
}

#[tokio::test]
async fn duplicate_fields_are_judged_by_the_validation_level() {
    let (server, _) = common::server().await;
    let (code, _, reply) = post(&server, "strict", "Strict").await;
    assert_eq!(code, 400, "{reply}");
    let message = reply["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(r#"strict decoding error: duplicate field "data.port""#),
        "{message}"
    );
    let (code, _) = common::send(
        &server,
        "GET",
        "/api/v1/namespaces/default/configmaps/strict",
        "application/json",
        Vec::new(),
    )
    .await;
    assert_eq!(code, 404, "nothing written");

    let (code, warnings, reply) = post(&server, "warn", "Warn").await;
    assert_eq!(code, 201, "{reply}");
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("299") && w.contains("duplicate field 'data.port'")),
        "{warnings:?}"
    );
    assert_eq!(reply["data"]["port"], "8080", "the last value is kept");

    let (code, warnings, reply) = post(&server, "ignore", "Ignore").await;
    assert_eq!(code, 201, "{reply}");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(reply["data"]["port"], "8080");
}
