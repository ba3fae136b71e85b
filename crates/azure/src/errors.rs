//! ARM's errors as rotor's classes. azure_core turns a non-2xx answer into
//! `ErrorKind::HttpResponse` with the status, ARM's `error.code` and the raw answer (whose
//! headers carry `Retry-After`); transport failures are `Io`/`Connection`.

use std::time::Duration;

use azure_core::error::{Error, ErrorKind};
use azure_core::http::RawResponse;
use azure_core::http::headers::RETRY_AFTER;

/// What a failed ARM call means, before it is tied to an operation and an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Not reached, timed out, or a 5xx (after the client's own retries): try again later.
    Unavailable { message: String },
    /// ARM's rate limit (429): retry after `retry_after` when ARM said.
    Throttled {
        retry_after: Option<Duration>,
        message: String,
    },
    /// Another operation is running on the resource (409 `OperationNotAllowed`): try later.
    Busy { message: String },
    /// Refused for good: the HTTP status and ARM's error code (`ResourceNotFound`,
    /// `PreconditionFailed`, `QuotaExceeded`, `InvalidParameter`, …).
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// An answer this client does not understand.
    Protocol { message: String },
}

/// ARM's codes for "another operation is in progress on this resource".
const BUSY_CODES: &[&str] = &["OperationNotAllowed", "AnotherOperationInProgress"];

/// Classifies an azure_core error. Messages hold ARM's code and message, never a token (the
/// request's headers are not part of an error).
pub fn classify(e: &Error) -> Failure {
    match e.kind() {
        ErrorKind::HttpResponse {
            status,
            error_code,
            raw_response,
        } => {
            let status = u16::from(*status);
            let code = error_code.clone().unwrap_or_else(|| "Unknown".into());
            let message = format!("{code}: {e}");
            match status {
                429 => Failure::Throttled {
                    retry_after: raw_response.as_deref().and_then(retry_after),
                    message,
                },
                408 | 500.. => Failure::Unavailable { message },
                409 if BUSY_CODES.contains(&code.as_str()) => Failure::Busy { message },
                _ => Failure::Refused {
                    status,
                    code,
                    message,
                },
            }
        }
        ErrorKind::Io | ErrorKind::Connection => Failure::Unavailable {
            message: format!("cannot reach Azure Resource Manager: {e}"),
        },
        ErrorKind::Credential => Failure::Refused {
            status: 401,
            code: "CredentialUnavailable".into(),
            message: format!("Azure credential: {e}"),
        },
        ErrorKind::DataConversion | ErrorKind::Other => Failure::Protocol {
            message: e.to_string(),
        },
    }
}

/// The answer's `Retry-After` in whole seconds, if it sent one.
fn retry_after(answer: &RawResponse) -> Option<Duration> {
    answer
        .headers()
        .get_optional_str(&RETRY_AFTER)?
        .trim()
        .parse()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::http::headers::Headers;
    use azure_core::http::{AsyncRawResponse, StatusCode, check_success};

    /// The error azure_core makes of an ARM answer.
    async fn arm_error(status: StatusCode, headers: &[(&'static str, &str)], body: &str) -> Error {
        let mut h = Headers::new();
        for (k, v) in headers {
            h.insert(*k, v.to_string());
        }
        let answer = AsyncRawResponse::from_bytes(status, h, body.as_bytes().to_vec());
        check_success(answer, None)
            .await
            .expect_err("not a success")
    }

    fn body(code: &str, message: &str) -> String {
        serde_json::json!({"error": {"code": code, "message": message}}).to_string()
    }

    #[tokio::test]
    async fn arm_answers_are_classed_by_status_and_code() {
        let throttled = arm_error(
            StatusCode::TooManyRequests,
            &[("retry-after", "7")],
            &body("TooManyRequests", "slow down"),
        )
        .await;
        assert_eq!(
            classify(&throttled),
            Failure::Throttled {
                retry_after: Some(Duration::from_secs(7)),
                message: "TooManyRequests: slow down".into()
            }
        );
        let busy = arm_error(
            StatusCode::Conflict,
            &[],
            &body("OperationNotAllowed", "an operation is in progress"),
        )
        .await;
        assert!(matches!(classify(&busy), Failure::Busy { .. }));
        let gone = arm_error(StatusCode::NotFound, &[], &body("ResourceNotFound", "no")).await;
        assert_eq!(
            classify(&gone),
            Failure::Refused {
                status: 404,
                code: "ResourceNotFound".into(),
                message: "ResourceNotFound: no".into()
            }
        );
        let quota = arm_error(StatusCode::BadRequest, &[], &body("QuotaExceeded", "cores")).await;
        assert!(
            matches!(classify(&quota), Failure::Refused { status: 400, ref code, .. } if code == "QuotaExceeded")
        );
        let down = arm_error(StatusCode::ServiceUnavailable, &[], "").await;
        assert!(matches!(classify(&down), Failure::Unavailable { .. }));
        let other_conflict = arm_error(StatusCode::Conflict, &[], &body("Conflict", "x")).await;
        assert!(matches!(
            classify(&other_conflict),
            Failure::Refused { status: 409, .. }
        ));
    }
}
