//! Fault injection: switches that break one member cluster on demand, to rehearse failures (a
//! broken application in the green cluster, an API outage, a partition) and to drive end-to-end
//! tests. Everything acts at the edges a client sees (HTTP answers), never inside the API server.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{StatusCode, Uri};
use rotor_apiserver::ApiError;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// A failure injected into one member cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Fault {
    /// The application is broken there: its traffic listener answers 503 to every request.
    TrafficErrors,
    /// The application hangs: its traffic listener accepts requests and never answers (until
    /// the fault is cleared).
    TrafficHangs,
    /// The application is slow: every answer comes a second late.
    TrafficSlow,
    /// The application drops connections: the status line and headers, then a reset.
    TrafficResets,
    /// Its Kubernetes API answers 503 with a `Status` body, as behind a failing load balancer.
    ApiUnavailable,
    /// Its Kubernetes API never answers: a request is held until the fault is cleared (or
    /// [`API_HOLD`]), then gets 504 without reaching the API server — a client cannot know
    /// whether a timed-out write happened, so the simulator makes sure it did not.
    ApiTimeout,
    /// Its watch streams lose their object events (ADDED, MODIFIED, DELETED) while the fault is
    /// on: connections stay open, bookmarks and lists still come through, so nothing looks
    /// wrong to a client — as with a proxy or watch cache that silently drops events. Only a
    /// relist (a periodic resync) finds what was missed.
    WatchEventsDropped,
    /// Its watch history is gone, as after an etcd compaction: open watch streams end with an
    /// `ERROR` event carrying `410 Expired`, and a watch that asks to resume from a
    /// resourceVersion gets the same answer while the fault is on. Lists still work, so a client
    /// that relists (kube-runtime's watcher does) catches up with everything it missed.
    WatchExpired,
}

pub(crate) type FaultSet = BTreeSet<Fault>;

/// The switch of one member: a watch channel, so held requests and open watches learn of changes.
pub(crate) type FaultSwitch = watch::Sender<FaultSet>;

/// How long an `ApiTimeout` request is held: longer than any sane client timeout.
pub(crate) const API_HOLD: Duration = Duration::from_secs(60);

fn status(code: StatusCode, reason: &'static str, message: String) -> Response {
    ApiError {
        code,
        reason,
        message,
        details: None,
        causes: Vec::new(),
        retry_after_seconds: None,
    }
    .into_response()
}

/// The answer the API gives under the faults in force, or None to serve the request.
pub(crate) async fn api_fault(
    cluster: &str,
    switch: watch::Receiver<FaultSet>,
) -> Option<Response> {
    let (timeout, unavailable) = {
        let f = switch.borrow();
        (
            f.contains(&Fault::ApiTimeout),
            f.contains(&Fault::ApiUnavailable),
        )
    };
    if timeout {
        let mut rx = switch;
        let _ =
            tokio::time::timeout(API_HOLD, rx.wait_for(|f| !f.contains(&Fault::ApiTimeout))).await;
        return Some(status(
            StatusCode::GATEWAY_TIMEOUT,
            "Timeout",
            format!("simulated fault ApiTimeout: the API of cluster {cluster} did not answer"),
        ));
    }
    unavailable.then(|| {
        status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            format!("simulated fault ApiUnavailable: the API of cluster {cluster} is unavailable"),
        )
    })
}

/// Whether the request opens a long-lived watch stream.
pub(crate) fn is_watch(uri: &Uri) -> bool {
    uri.path().contains("/watch/")
        || uri.query().is_some_and(|q| {
            q.split('&')
                .any(|kv| kv == "watch=true" || kv == "watch=1" || kv == "watch")
        })
}

/// Ends a streaming answer when an API fault is switched on, as an outage drops connections:
/// otherwise an open watch would not notice the outage.
pub(crate) fn end_on_api_fault(resp: Response, mut rx: watch::Receiver<FaultSet>) -> Response {
    let (parts, body) = resp.into_parts();
    let stop = async move {
        let _ = rx
            .wait_for(|f| f.contains(&Fault::ApiUnavailable) || f.contains(&Fault::ApiTimeout))
            .await;
    };
    Response::from_parts(
        parts,
        Body::from_stream(body.into_data_stream().take_until(stop)),
    )
}

/// The `ERROR` watch event kube-apiserver sends when a watch's resourceVersion is too old.
fn expired_event(cluster: &str) -> Bytes {
    let event = serde_json::json!({
        "type": "ERROR",
        "object": {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "reason": "Expired", "code": 410,
            "message": format!("simulated fault WatchExpired: the watch history of cluster {cluster} was compacted"),
        },
    });
    let mut line = serde_json::to_vec(&event).expect("a JSON value serializes");
    line.push(b'\n');
    Bytes::from(line)
}

/// Whether a watch asks to resume from a resourceVersion (not "" or "0", which mean "from now
/// / any": those never expire).
pub(crate) fn resumes_from_version(uri: &Uri) -> bool {
    uri.query().is_some_and(|q| {
        q.split('&').any(|kv| {
            kv.strip_prefix("resourceVersion=")
                .is_some_and(|v| !v.is_empty() && v != "0")
        })
    })
}

/// The answer to a watch that asks to resume while `WatchExpired` is on: 200 with one `ERROR`
/// 410 event, as kube-apiserver answers.
pub(crate) fn expired_watch(cluster: &str) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(expired_event(cluster)))
        .expect("a static response builds")
}

/// Ends an open watch stream with an `ERROR` 410 event when `WatchExpired` is switched on (a
/// stream that ends by itself ends as it would).
pub(crate) fn expire_on_fault(
    cluster: &str,
    resp: Response,
    mut rx: watch::Receiver<FaultSet>,
) -> Response {
    let (parts, body) = resp.into_parts();
    let expired = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = expired.clone();
    let stop = async move {
        let _ = rx.wait_for(|f| f.contains(&Fault::WatchExpired)).await;
        flag.store(true, std::sync::atomic::Ordering::Release);
    };
    let last = expired_event(cluster);
    let tail = futures::stream::once(async move {
        expired
            .load(std::sync::atomic::Ordering::Acquire)
            .then_some(Ok::<_, axum::Error>(last))
    })
    .filter_map(std::future::ready);
    Response::from_parts(
        parts,
        Body::from_stream(body.into_data_stream().take_until(stop).chain(tail)),
    )
}

/// Drops the object events of a watch stream while `WatchEventsDropped` is on. Watch bodies are
/// JSON lines; they are split on newlines here (a line may span chunks), so a line is dropped
/// or passed whole.
pub(crate) fn drop_watch_events(resp: Response, rx: watch::Receiver<FaultSet>) -> Response {
    let (parts, body) = resp.into_parts();
    let mut partial: Vec<u8> = Vec::new();
    let lines = body.into_data_stream().map(move |chunk| {
        let chunk = chunk?;
        partial.extend_from_slice(&chunk);
        let Some(end) = partial.iter().rposition(|b| *b == b'\n') else {
            return Ok::<_, axum::Error>(Bytes::new());
        };
        let complete: Vec<u8> = partial.drain(..=end).collect();
        if !rx.borrow().contains(&Fault::WatchEventsDropped) {
            return Ok(Bytes::from(complete));
        }
        let mut kept = Vec::with_capacity(complete.len());
        for line in complete.split_inclusive(|b| *b == b'\n') {
            if !is_object_event(line) {
                kept.extend_from_slice(line);
            }
        }
        Ok(Bytes::from(kept))
    });
    // An empty chunk is not sent: it would read as the end of a chunked body.
    let lines = lines.filter(|c| std::future::ready(!matches!(c, Ok(b) if b.is_empty())));
    Response::from_parts(parts, Body::from_stream(lines))
}

/// Whether a watch line carries an object event (not a BOOKMARK or an ERROR).
fn is_object_event(line: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Head<'a> {
        #[serde(rename = "type", borrow)]
        kind: &'a str,
    }
    serde_json::from_slice::<Head>(line)
        .is_ok_and(|h| matches!(h.kind, "ADDED" | "MODIFIED" | "DELETED"))
}

/// The traffic answer under `TrafficErrors`.
pub(crate) fn traffic_error() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "simulated fault TrafficErrors: the application is failing\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_are_recognised() {
        let w = |s: &str| is_watch(&s.parse::<Uri>().expect("uri"));
        assert!(w("/api/v1/pods?watch=true&resourceVersion=1"));
        assert!(w("/apis/apps/v1/watch/deployments"));
        assert!(w("/api/v1/namespaces/default/pods?watch=1"));
        assert!(!w("/api/v1/pods?watch=false"));
        assert!(!w("/api/v1/pods?limit=10"));
    }

    #[test]
    fn only_object_events_are_dropped() {
        assert!(is_object_event(
            br#"{"type":"MODIFIED","object":{"kind":"Node"}}"#
        ));
        assert!(is_object_event(b"{\"type\":\"ADDED\",\"object\":{}}\n"));
        assert!(!is_object_event(br#"{"type":"BOOKMARK","object":{}}"#));
        assert!(!is_object_event(
            br#"{"type":"ERROR","object":{"code":410}}"#
        ));
    }

    #[test]
    fn faults_serialize_by_name() {
        let json = serde_json::to_string(&[Fault::TrafficErrors, Fault::ApiTimeout]).expect("json");
        assert_eq!(json, r#"["TrafficErrors","ApiTimeout"]"#);
    }
}
