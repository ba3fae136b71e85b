//! ARM's error answer (common-types `ErrorResponse`): `{"error": {"code", "message"}}` with the
//! HTTP status; azure_core reads `error.code` into its error, rotor classes by both.

use std::time::Duration;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode, header};

/// An ARM error: status, ARM's code, a message, and for 429 the Retry-After.
#[derive(Debug)]
pub(crate) struct ArmError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    retry_after: Option<Duration>,
}

impl ArmError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ArmError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn not_found(kind: &str, name: &str, group: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("The Resource '{kind}/{name}' under resource group '{group}' was not found."),
        )
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidParameter", message)
    }
    pub fn no_route(method: &Method, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NoRegisteredProviderFound",
            format!("The simulator serves no {method} {path}."),
        )
    }
    pub fn throttled(retry_after: Option<Duration>) -> Self {
        ArmError {
            retry_after,
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "The request is being throttled (simulated rate limit).",
            )
        }
    }
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        )
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            message,
        )
    }
}

impl IntoResponse for ArmError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(v) = self
            .retry_after
            .and_then(|d| d.as_secs().to_string().parse().ok())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}
