//! Kubernetes `Status` errors: every failure the API returns is one of these, with the HTTP code,
//! the machine-readable reason and a message that names the object and field.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};

/// One field-level cause of an `Invalid` (422) or `BadRequest` error.
#[derive(Debug, Clone)]
pub struct Cause {
    pub field: String,
    pub message: String,
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`, `FieldValueDuplicate`.
    pub reason: &'static str,
}

/// An API error, rendered as a `metav1.Status` body.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: StatusCode,
    pub reason: &'static str,
    pub message: String,
    /// `details.name`, `details.group`, `details.kind` (boxed: errors travel in every Result).
    pub details: Option<Box<(String, String, String)>>,
    pub causes: Vec<Cause>,
    /// `details.retryAfterSeconds`: when the client may try again.
    pub retry_after_seconds: Option<u32>,
}

pub type ApiResult<T> = Result<T, ApiError>;

/// `deployments.apps` or `pods` — how Kubernetes names a resource in messages.
pub fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

impl ApiError {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            causes: Vec::new(),
            retry_after_seconds: None,
        }
    }

    fn with_details(mut self, name: &str, group: &str, kind: &str) -> Self {
        self.details = Some(Box::new((
            name.to_string(),
            group.to_string(),
            kind.to_string(),
        )));
        self
    }

    pub fn not_found(resource: &str, group: &str, name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(resource, group)),
        )
        .with_details(name, group, resource)
    }

    pub fn path_not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    pub fn already_exists(resource: &str, group: &str, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(resource, group)),
        )
        .with_details(name, group, resource)
    }

    pub fn conflict(resource: &str, group: &str, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                qualified(resource, group)
            ),
        )
        .with_details(name, group, resource)
    }

    pub fn apply_conflict(resource: &str, group: &str, name: &str, message: String) -> Self {
        Self::new(StatusCode::CONFLICT, "Conflict", message).with_details(name, group, resource)
    }

    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> Self {
        let list: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let gk = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{gk} \"{name}\" is invalid: {}", list.join(", ")),
        )
        .with_details(name, group, kind);
        e.causes = causes;
        e
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, "Expired", message)
    }

    /// A read from a resourceVersion the store has not reached (after waiting for it), as the
    /// watch cache answers: 504 Timeout with the `ResourceVersionTooLarge` cause client-go
    /// recognises.
    pub fn resource_version_too_large(requested: u64, current: u64) -> Self {
        let mut e = Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "Timeout",
            format!("Too large resource version: {requested}, current: {current}"),
        );
        e.causes.push(Cause {
            field: String::new(),
            message: "Too large resource version".into(),
            reason: "ResourceVersionTooLarge",
        });
        e.retry_after_seconds = Some(1);
        e
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message)
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            message,
        )
    }

    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_ACCEPTABLE, "NotAcceptable", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    /// Upstream's `NewForbidden` for a resource: `<resource> "<name>" is forbidden: <why>`
    /// (without the name when the request names none), details naming the resource.
    pub fn forbidden_resource(resource: &str, group: &str, name: &str, why: &str) -> Self {
        let what = qualified(resource, group);
        let message = match name.is_empty() {
            true => format!("{what} is forbidden: {why}"),
            false => format!("{what} \"{name}\" is forbidden: {why}"),
        };
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message).with_details(name, group, resource)
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            message,
        )
    }

    /// The `metav1.Status` JSON body.
    pub fn status_body(&self) -> Value {
        let mut body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if self.details.is_some() || !self.causes.is_empty() || self.retry_after_seconds.is_some() {
            let mut details = json!({});
            if let Some(d) = &self.details {
                let (name, group, kind) = &**d;
                if !name.is_empty() {
                    details["name"] = json!(name);
                }
                if !group.is_empty() {
                    details["group"] = json!(group);
                }
                details["kind"] = json!(kind);
            }
            if !self.causes.is_empty() {
                details["causes"] = self
                    .causes
                    .iter()
                    .map(|c| {
                        let mut cause = json!({"reason": c.reason, "message": c.message});
                        if !c.field.is_empty() {
                            cause["field"] = json!(c.field);
                        }
                        cause
                    })
                    .collect();
            }
            if let Some(seconds) = self.retry_after_seconds {
                details["retryAfterSeconds"] = json!(seconds);
            }
            body["details"] = details;
        }
        body
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code.as_u16(),
            self.reason,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.status_body()).unwrap_or_default();
        (
            self.code,
            [(http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

impl From<rotor_store::StoreError> for ApiError {
    fn from(e: rotor_store::StoreError) -> Self {
        ApiError::internal(format!("storage: {e}"))
    }
}
