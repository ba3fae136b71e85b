//! `TokenReview` (authentication.k8s.io/v1, create): whom a bearer token authenticates as here,
//! for components that check the tokens presented to them (RBAC: `create tokenreviews`, as
//! upstream's `system:auth-delegator` grants). The reply leaves the token out.

use http::Method;
use serde_json::{Value, json};

use super::UserInfo;
use crate::server::ApiServer;

pub const GROUP: &str = "authentication.k8s.io";

/// Is this a `TokenReview` create?
pub fn is_create(method: &Method, path: &str) -> bool {
    *method == Method::POST
        && path.trim_end_matches('/') == "/apis/authentication.k8s.io/v1/tokenreviews"
}

/// The review with its status: the user the token is, or `authenticated: false` and why.
/// Audiences: this server checks tokens for its API audiences only, so a review naming none of
/// them is answered unauthenticated.
pub async fn reply(server: &ApiServer, review: &Value) -> Value {
    let spec = &review["spec"];
    let token = spec["token"].as_str().unwrap_or_default();
    let api_audiences: Vec<String> = server
        .config()
        .service_accounts
        .as_ref()
        .map(|s| s.audiences().to_vec())
        .unwrap_or_default();
    let asked: Vec<String> = spec["audiences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let audiences = match asked.is_empty() {
        true => api_audiences.clone(),
        false => asked
            .iter()
            .filter(|a| api_audiences.contains(a))
            .cloned()
            .collect(),
    };
    let status = if token.is_empty() {
        refused("spec.token is empty")
    } else if !asked.is_empty() && audiences.is_empty() {
        refused("this server checks tokens for its API audiences (--api-audiences) only")
    } else {
        match super::by_token(server, token).await {
            Some(user) => authenticated(&user, &audiences),
            None => refused("the token is not valid here"),
        }
    };
    let mut spec = spec.clone();
    if let Some(spec) = spec.as_object_mut() {
        spec.remove("token");
    }
    json!({
        "kind": "TokenReview",
        "apiVersion": format!("{GROUP}/v1"),
        "metadata": {"creationTimestamp": null},
        "spec": spec,
        "status": status,
    })
}

fn authenticated(user: &UserInfo, audiences: &[String]) -> Value {
    let mut info = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        info["uid"] = json!(user.uid);
    }
    json!({"authenticated": true, "user": info, "audiences": audiences})
}

fn refused(why: &str) -> Value {
    json!({"authenticated": false, "user": {}, "error": why})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_creates_of_v1() {
        let path = "/apis/authentication.k8s.io/v1/tokenreviews";
        assert!(is_create(&Method::POST, path));
        assert!(!is_create(&Method::GET, path));
        assert!(!is_create(
            &Method::POST,
            "/apis/authentication.k8s.io/v1/selfsubjectreviews"
        ));
    }
}
