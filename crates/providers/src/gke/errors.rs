//! GKE's errors as rotor's classes. gax reads a failed call's code from the `status` of its
//! `google.rpc.Status` body; the HTTP status tells a rate limit (429) from a quota (403), which
//! GKE both calls RESOURCE_EXHAUSTED.

use std::time::Duration;

use google_cloud_gax::error::Error;
use google_cloud_gax::error::rpc::Code;

/// What went wrong, before it is tied to an operation and an instance.
#[derive(Debug, PartialEq)]
pub(super) enum Failure {
    /// Not reached, or a 5xx: try again.
    Unavailable { message: String },
    /// The API's rate limit (HTTP 429).
    Throttled {
        retry_after: Option<Duration>,
        message: String,
    },
    /// Another operation is running on the resource (FAILED_PRECONDITION, ABORTED).
    Busy { message: String },
    /// Refused for good, with the HTTP status the API answered (404 when not found).
    Refused { status: u16, message: String },
    /// An answer this client does not understand.
    Protocol { message: String },
}

impl From<Failure> for crate::failure::Classed {
    fn from(f: Failure) -> Self {
        use crate::failure::Classed;
        match f {
            // Busy: another operation runs on the cluster; the same call may pass later.
            Failure::Unavailable { message } | Failure::Busy { message } => {
                Classed::Unavailable { message }
            }
            Failure::Throttled {
                retry_after,
                message,
            } => Classed::RateLimited {
                retry_after,
                message,
            },
            Failure::Refused { status, message } => Classed::Refused { status, message },
            Failure::Protocol { message } => Classed::Protocol { message },
        }
    }
}

pub(super) fn classify(e: &Error) -> Failure {
    let http = e.http_status_code();
    let Some(status) = e.status() else {
        if e.is_deserialization() {
            return Failure::Protocol {
                message: e.to_string(),
            };
        }
        if e.is_authentication() {
            return Failure::Refused {
                status: 401,
                message: e.to_string(),
            };
        }
        return match http {
            Some(429) => Failure::Throttled {
                retry_after: retry_after(e),
                message: e.to_string(),
            },
            Some(code) if (400..500).contains(&code) => Failure::Refused {
                status: code,
                message: e.to_string(),
            },
            // I/O, timeouts, 5xx without a status, retries exhausted.
            _ => Failure::Unavailable {
                message: e.to_string(),
            },
        };
    };
    let message = format!("{:?}: {}", status.code, status.message);
    match status.code {
        Code::ResourceExhausted if http == Some(429) => Failure::Throttled {
            retry_after: retry_after(e),
            message,
        },
        Code::Unavailable | Code::DeadlineExceeded | Code::Internal | Code::Unknown => {
            Failure::Unavailable { message }
        }
        Code::FailedPrecondition | Code::Aborted => Failure::Busy { message },
        Code::NotFound => Failure::Refused {
            status: 404,
            message,
        },
        Code::AlreadyExists => Failure::Refused {
            status: 409,
            message,
        },
        // Quotas (RESOURCE_EXHAUSTED on 403), permissions, invalid arguments: as answered.
        _ => Failure::Refused {
            status: http.unwrap_or(400),
            message,
        },
    }
}

/// The answer's `Retry-After` in seconds, if it sent one.
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
