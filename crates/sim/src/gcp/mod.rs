//! Google Cloud as its official Rust clients see it, at `/gcp`: GKE's container v1 REST API
//! (`/gcp/v1/projects/{p}/locations/{l}/…`), so the GKE provider runs through
//! `google-cloud-container-v1` against the simulator (`with_endpoint("http://SIM/gcp")`; gaxi
//! keeps the path). Every GKE cluster created here is a simulated member cluster, made by the
//! simulated cloud with its latency and faults. Cloud DNS v1 (`/gcp/dns/v1/…`, see [`dns`])
//! serves managed zones' record sets and changes to the Cloud DNS shifter.
//!
//! The wire format is the one the client speaks (google-cloud-container-v1 1.15
//! `src/transport.rs`): JSON bodies, `$alt=json;enum-encoding=int` on every request — enums are
//! answered as integers then, as names otherwise — and errors as `google.rpc.Status`
//! (`{"error": {"code", "message", "status"}}`; gax reads the code from `status` only).
//!
//! Who calls is the bearer token (`Authorization: Bearer …`): the simulator has no IAM, so
//! every token may act in every project, and a project's members accept the tokens that have
//! acted in it (see [`token`]). A request without one is refused as Google refuses it, 401
//! `UNAUTHENTICATED`. Routing is by path only: gaxi sends a `Host` without the port to any
//! endpoint outside googleapis.com.

mod dns;
mod gke;
mod operations;
#[cfg(test)]
mod tests_http;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};

use crate::Sim;

pub(crate) use dns::CloudDns;
pub(crate) use gke::{Gke, address_label};

/// The routes of `/gcp` and below.
pub(crate) fn router(sim: Arc<Sim>) -> axum::Router {
    axum::Router::new()
        .nest("/gcp/v1", gke::routes().merge(operations::routes()))
        .nest("/gcp/dns/v1", dns::routes())
        .with_state(sim)
}

/// A Google API error: the HTTP status, the canonical code's name and a message; APIs of the
/// older generation (Cloud DNS) also give a `reason` (`notFound`, `conditionNotMet`, …), sent
/// as `errors: [{domain, reason, message}]` beside the canonical fields.
#[derive(Debug)]
pub(crate) struct GcpError {
    http: StatusCode,
    status: &'static str,
    message: String,
    retry_after: Option<Duration>,
    reason: Option<&'static str>,
}

impl GcpError {
    fn new(http: StatusCode, status: &'static str, message: impl Into<String>) -> Self {
        GcpError {
            http,
            status,
            message: message.into(),
            retry_after: None,
            reason: None,
        }
    }

    /// The same error with the old-style `reason` of APIs such as Cloud DNS.
    fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("Not found: {what}."),
        )
    }
    pub fn already_exists(what: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "ALREADY_EXISTS",
            format!("Already exists: {what}."),
        )
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
    }
    pub fn failed_precondition(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "FAILED_PRECONDITION", message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", message)
    }
    fn throttled(retry_after: Option<Duration>) -> Self {
        GcpError {
            retry_after,
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for quota metric 'Requests' of service \
                 'container.googleapis.com' (simulated rate limit).",
            )
        }
    }
    fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Request is missing required authentication credential: expected an OAuth 2 \
             access token in the Authorization header.",
        )
    }
}

impl IntoResponse for GcpError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({"error": {
            "code": self.http.as_u16(),
            "message": self.message,
            "status": self.status,
        }});
        if let Some(reason) = self.reason {
            body["error"]["errors"] = serde_json::json!([{
                "domain": "global",
                "reason": reason,
                "message": self.message,
            }]);
        }
        let mut resp = (self.http, Json(body)).into_response();
        if let Some(v) = self
            .retry_after
            .and_then(|d| d.as_secs().to_string().parse().ok())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

/// The bearer token of a request: who calls. A secret: never logged, never in an answer.
fn bearer(headers: &HeaderMap) -> Result<String, GcpError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .ok_or_else(GcpError::unauthenticated)
}

/// `Err(RESOURCE_EXHAUSTED)` when the cloud's rate limit is on.
fn throttle(sim: &Sim) -> Result<(), GcpError> {
    match sim.cloud.take_rate_limit() {
        Some(retry_after) => Err(GcpError::throttled(retry_after)),
        None => Ok(()),
    }
}

/// How a request wants enums: as integers (`$alt=json;enum-encoding=int`, what the official
/// clients send) or as their names (JSON's default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Enums {
    Int,
    Name,
}

impl Enums {
    fn of(query: Option<&str>) -> Enums {
        let alt = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .find(|(k, _)| k == "$alt")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        if alt.split(';').any(|p| p == "enum-encoding=int") {
            Enums::Int
        } else {
            Enums::Name
        }
    }

    /// `(number, name)` as this request wants it.
    fn value(self, (number, name): (i32, &str)) -> serde_json::Value {
        match self {
            Enums::Int => number.into(),
            Enums::Name => name.into(),
        }
    }
}

/// Now, as Google's timestamps (RFC 3339, UTC).
fn rfc3339_now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map_or_else(|_| jiff::Timestamp::now().to_string(), |t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_are_ints_only_when_asked() {
        let int = Enums::of(Some("%24alt=json%3Benum-encoding%3Dint&projectId="));
        assert_eq!(int, Enums::Int);
        assert_eq!(int.value((2, "RUNNING")), serde_json::json!(2));
        let names = Enums::of(Some("$alt=json"));
        assert_eq!(names.value((2, "RUNNING")), serde_json::json!("RUNNING"));
        assert_eq!(Enums::of(None), Enums::Name);
    }

    #[test]
    fn a_request_without_a_bearer_token_is_unauthenticated() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h).unwrap_err().status, "UNAUTHENTICATED");
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h).unwrap_err().http, StatusCode::UNAUTHORIZED);
        h.insert(header::AUTHORIZATION, "Bearer ya29.x".parse().unwrap());
        assert_eq!(bearer(&h).unwrap(), "ya29.x");
    }
}
