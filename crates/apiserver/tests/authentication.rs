//! Who a request is, as kube-apiserver decides it (`rotor_apiserver::auth`), through the HTTP
//! handler: the admin token and a token file's users are themselves (`SelfSubjectReview`),
//! a wrong or missing token gets 401 with upstream's Status body, anonymous requests reach
//! `/version` and health only and only when allowed (the bootstrap policy's
//! `system:public-info-viewer`), an authenticated user without a role is refused in upstream's
//! words, and a server that trusts its loopback clients lets credential-less requests act as
//! the admin but still refuses a wrong token.

use std::sync::Arc;

use axum::body::Body;
use http::Request;
use rotor_apiserver::auth::TokenFile;
use rotor_apiserver::authz::Shipped;
use rotor_apiserver::{ApiServer, ServerConfig};
use rotor_store::memory::MemoryStore;
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "admin-token-0123456789";

async fn send(
    server: &Arc<ApiServer>,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let body = match method {
        "POST" => Body::from(r#"{"kind":"SelfSubjectReview"}"#),
        _ => Body::empty(),
    };
    let resp = server.handle(req.body(body).expect("request")).await;
    let code = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn server(anonymous: bool, anonymous_auth: bool) -> Arc<ApiServer> {
    let tokens = TokenFile::parse("tok-alice,alice,u-1,\"dev,ops\"\n").expect("token file");
    let config = ServerConfig {
        token: Some(ADMIN_TOKEN.into()),
        anonymous,
        anonymous_auth,
        tokens: Some(Arc::new(tokens)),
        policy: Some(Arc::new(Shipped::default())),
        ..ServerConfig::default()
    };
    ApiServer::new(Arc::new(MemoryStore::default()), config)
        .await
        .expect("server")
}

const REVIEW: &str = "/apis/authentication.k8s.io/v1/selfsubjectreviews";

#[tokio::test]
async fn tokens_name_their_users() {
    let s = server(false, false).await;
    let (code, review) = send(&s, "POST", REVIEW, Some(ADMIN_TOKEN)).await;
    assert_eq!(code, 201, "{review}");
    assert_eq!(
        review["status"]["userInfo"],
        json!({"username": "rotor-admin", "groups": ["system:masters", "system:authenticated"]})
    );
    let (code, review) = send(&s, "POST", REVIEW, Some("tok-alice")).await;
    assert_eq!(code, 201, "{review}");
    assert_eq!(
        review["status"]["userInfo"],
        json!({"username": "alice", "uid": "u-1", "groups": ["dev", "ops", "system:authenticated"]})
    );
    // Authenticated is not authorized: alice has no role.
    let (code, status) = send(&s, "GET", "/api/v1/namespaces", Some("tok-alice")).await;
    assert_eq!(code, 403, "{status}");
    assert_eq!(
        status["message"],
        "namespaces is forbidden: User \"alice\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"
    );
    assert_eq!(status["details"], json!({"kind": "namespaces"}));
    let v1beta1 = "/apis/authentication.k8s.io/v1beta1/selfsubjectreviews";
    let (code, review) = send(&s, "POST", v1beta1, Some("tok-alice")).await;
    assert_eq!(
        (code, review["apiVersion"].as_str()),
        (201, Some("authentication.k8s.io/v1beta1"))
    );
}

#[tokio::test]
async fn wrong_or_missing_credentials_get_upstreams_401() {
    let s = server(false, false).await;
    for token in [Some("tok-alic"), Some("wrong"), None] {
        for path in ["/api/v1/namespaces", "/version", "/healthz", REVIEW] {
            let method = if path == REVIEW { "POST" } else { "GET" };
            let (code, status) = send(&s, method, path, token).await;
            assert_eq!(code, 401, "{token:?} {path}: {status}");
            assert_eq!(
                status,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": "Unauthorized", "reason": "Unauthorized", "code": 401}),
                "{token:?} {path}"
            );
        }
    }
}

#[tokio::test]
async fn anonymous_reaches_version_and_health_only() {
    let s = server(false, true).await;
    assert_eq!(send(&s, "GET", "/version", None).await.0, 200);
    assert_eq!(send(&s, "GET", "/healthz", None).await.0, 200);
    let (code, status) = send(&s, "GET", "/api/v1/secrets", None).await;
    assert_eq!(code, 403, "{status}");
    assert_eq!(
        status["message"],
        "secrets is forbidden: User \"system:anonymous\" cannot list resource \"secrets\" in API group \"\" at the cluster scope"
    );
    let (code, status) = send(&s, "GET", "/metrics", None).await;
    assert_eq!(code, 403, "{status}");
    assert_eq!(
        status["message"],
        "forbidden: User \"system:anonymous\" cannot get path \"/metrics\""
    );
    assert_eq!(send(&s, "POST", REVIEW, None).await.0, 403);
    assert_eq!(send(&s, "GET", "/apis", None).await.0, 403);
    // Credentials still count (alice is herself, though without a role), and a wrong one is
    // still refused.
    let (code, status) = send(&s, "GET", "/api/v1/secrets", Some("tok-alice")).await;
    assert_eq!(code, 403, "{status}");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("User \"alice\" cannot list")),
        "{status}"
    );
    assert_eq!(
        send(&s, "GET", "/apis", Some("tok-alice")).await.0,
        200,
        "discovery"
    );
    assert_eq!(send(&s, "GET", "/version", Some("wrong")).await.0, 401);
}

#[tokio::test]
async fn a_server_trusting_loopback_clients_still_refuses_a_wrong_token() {
    let s = server(true, false).await;
    let (code, review) = send(&s, "POST", REVIEW, None).await;
    assert_eq!(code, 201, "{review}");
    assert_eq!(review["status"]["userInfo"]["username"], "system:unsecured");
    assert_eq!(
        send(&s, "GET", "/api/v1/secrets", Some("wrong")).await.0,
        401
    );
}
