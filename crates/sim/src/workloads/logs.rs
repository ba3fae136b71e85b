//! `pods/log` for simulated Pods: their containers run nothing, so the log is one line saying so.
//! The Pod is read through the member's own API first (`GET` of the Pod with the caller's
//! credentials): authentication, authorisation and the 404 of a missing Pod are the API server's.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{Request, StatusCode, header};
use serde_json::Value;

/// `(namespace, pod)` when `path` is `/api/v1/namespaces/{ns}/pods/{pod}/log`.
pub fn log_target(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    let mut parts = rest.split('/');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some(ns), Some("pods"), Some(pod), Some("log"), None)
            if !ns.is_empty() && !pod.is_empty() =>
        {
            Some((ns, pod))
        }
        _ => None,
    }
}

/// The request that reads the Pod a log request names: same headers, the Pod's path.
pub fn pod_request(req: &Request<Body>, ns: &str, pod: &str) -> Option<Request<Body>> {
    let mut out = Request::get(format!("/api/v1/namespaces/{ns}/pods/{pod}"))
        .body(Body::empty())
        .ok()?;
    for (k, v) in req.headers() {
        if k != header::ACCEPT && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    *out.extensions_mut() = req.extensions().clone();
    Some(out)
}

/// The log reply for a Pod read by [`pod_request`]: the read's own error, a 400 for a container
/// the Pod does not have, or the simulated line.
pub async fn reply(pod_reply: Response, query: Option<&str>) -> Response {
    if !pod_reply.status().is_success() {
        return pod_reply;
    }
    let Ok(bytes) = axum::body::to_bytes(pod_reply.into_body(), 4 << 20).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Ok(pod) = serde_json::from_slice::<Value>(&bytes) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let (ns, name) = (
        pod.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(""),
        rotor_apiserver::object::name(&pod),
    );
    let containers: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    let asked = query.and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("container="))
            .map(str::to_string)
    });
    let container = match asked {
        Some(c) if !containers.contains(&c.as_str()) => {
            return rotor_apiserver::ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            ))
            .into_response();
        }
        Some(c) => c,
        None => containers
            .first()
            .map(|c| c.to_string())
            .unwrap_or_default(),
    };
    let line =
        format!("rotor sim: simulated container {container} of pod {ns}/{name} has no real logs\n");
    ([(header::CONTENT_TYPE, "text/plain")], line).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_log_subresource_is_taken() {
        assert_eq!(
            log_target("/api/v1/namespaces/default/pods/web-1/log"),
            Some(("default", "web-1"))
        );
        assert_eq!(log_target("/api/v1/namespaces/default/pods/web-1"), None);
        assert_eq!(
            log_target("/api/v1/namespaces/default/pods/web-1/exec"),
            None
        );
        assert_eq!(log_target("/api/v1/namespaces//pods/web-1/log"), None);
    }
}
