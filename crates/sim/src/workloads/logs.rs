//! `pods/log` for simulated Pods: their containers run nothing, so the log is one line saying so,
//! or, by simulator convention, the lines of the Pod's `sim.rotor.dev/log` annotation (the last
//! `tailLines` of them when the request asks). The Pod is read through the member's own API first (`GET` of the Pod with the caller's
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
    let param = |key: &str| {
        query.and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_string)
        })
    };
    let asked = param("container");
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
    let text = match super::pods::annotation(&pod, LOG) {
        Some(lines) => tail(lines, param("tailLines").and_then(|n| n.parse().ok())),
        None => format!(
            "rotor sim: simulated container {container} of pod {ns}/{name} has no real logs\n"
        ),
    };
    ([(header::CONTENT_TYPE, "text/plain")], text).into_response()
}

/// Simulator convention: a Pod (or a workload's Pod template) annotated `sim.rotor.dev/log`
/// serves that text, a line per line, as every container's log.
pub const LOG: &str = "sim.rotor.dev/log";

/// The last `lines` lines of `text` (all without a count), each ending in a newline.
fn tail(text: &str, lines: Option<usize>) -> String {
    let all: Vec<&str> = text.lines().collect();
    let from = lines.map_or(0, |n| all.len().saturating_sub(n));
    all[from..].iter().map(|l| format!("{l}\n")).collect()
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

    #[test]
    fn tail_lines_keeps_the_last_ones() {
        assert_eq!(tail("a\nb\nc", Some(2)), "b\nc\n");
        assert_eq!(tail("a\nb\nc\n", None), "a\nb\nc\n");
        assert_eq!(tail("a", Some(5)), "a\n");
        assert_eq!(tail("a\nb", Some(0)), "");
    }
}
