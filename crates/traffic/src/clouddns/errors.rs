//! Cloud DNS's errors as [`CallFailure`]s. Cloud DNS answers the older Google error shape
//! (`errors: [{reason}]` beside `code` and `message`); the HTTP status alone tells the classes
//! apart, including the two kinds of 403 RESOURCE_EXHAUSTED/PERMISSION_DENIED (a quota or a
//! permission: refused either way) from the 429 rate limit.

use std::time::Duration;

use google_cloud_gax::error::Error;
use google_cloud_gax::error::rpc::Code;

use crate::CallFailure;

/// How the call failed, and the service's message (never a credential: gax's errors carry
/// no request headers).
pub(super) fn classify(e: &Error) -> (CallFailure, String) {
    let message = e
        .status()
        .map(|s| s.message.clone())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| e.to_string());
    let failure = match e.http_status_code() {
        Some(404) => CallFailure::NotFound,
        Some(409) => CallFailure::AlreadyExists,
        Some(412) => CallFailure::ConditionNotMet,
        Some(429) => CallFailure::RateLimited {
            retry_after: retry_after(e),
        },
        Some(status) if (500..600).contains(&status) => CallFailure::Unavailable,
        Some(status) if (400..500).contains(&status) => CallFailure::Refused { status },
        _ => without_http_status(e),
    };
    (failure, message)
}

/// Errors that never got an HTTP answer, or whose answer had an unexpected status.
fn without_http_status(e: &Error) -> CallFailure {
    if e.is_deserialization() {
        return CallFailure::Protocol;
    }
    if e.is_authentication() {
        return CallFailure::Refused { status: 401 };
    }
    match e.status().map(|s| &s.code) {
        Some(Code::NotFound) => CallFailure::NotFound,
        Some(Code::AlreadyExists) => CallFailure::AlreadyExists,
        Some(Code::PermissionDenied) => CallFailure::Refused { status: 403 },
        Some(Code::InvalidArgument) => CallFailure::Refused { status: 400 },
        // I/O, timeouts, retries exhausted, anything unknown: try again later.
        _ => CallFailure::Unavailable,
    }
}

/// The answer's `Retry-After` in whole seconds, if it sent one.
fn retry_after(e: &Error) -> Option<Duration> {
    e.http_headers()?
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
        .map(Duration::from_secs)
}
