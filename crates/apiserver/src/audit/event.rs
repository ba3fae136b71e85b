//! An audit record as upstream writes it: an `audit.k8s.io/v1` `Event`, one JSON line each.
//! Bodies travel as the bytes the request and reply carried and are decoded only by the
//! writer, off the request path.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Serialize, Serializer};
use serde_json::Value;

use super::policy::{Level, Stage};

/// `authorization.k8s.io/decision`: `allow` or `forbid`, as kube-apiserver annotates.
pub const DECISION: &str = "authorization.k8s.io/decision";
/// `authorization.k8s.io/reason`: the authorizer's reason (which binding allowed it).
pub const REASON: &str = "authorization.k8s.io/reason";

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub level: Level,
    #[serde(rename = "auditID")]
    pub audit_id: String,
    pub stage: Stage,
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    pub verb: String,
    pub user: User,
    #[serde(rename = "sourceIPs")]
    pub source_ips: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_ref: Option<ObjectRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_status: Option<ResponseStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_object: Option<Body>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_object: Option<Body>,
    /// Microseconds, as upstream's `MicroTime`.
    pub request_received_timestamp: String,
    pub stage_timestamp: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// `authentication/v1` `UserInfo`: empty for a request that failed authentication.
#[derive(Debug, Clone, Default, Serialize)]
pub struct User {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub resource: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    pub api_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subresource: String,
}

/// A `meta/v1` `Status` as upstream records a reply: the code alone on success; status,
/// message and reason too on failure.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ResponseStatus {
    pub metadata: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub code: u16,
}

/// A request or response body as it was sent, written as the JSON object it encodes.
#[derive(Debug, Clone)]
pub struct Body {
    pub bytes: Bytes,
    pub format: Format,
    /// Drop `metadata.managedFields` (of the object, or of a list's items).
    pub omit_managed_fields: bool,
}

#[derive(Debug, Clone)]
pub enum Format {
    Json,
    Yaml,
    /// A built-in kind in `application/vnd.kubernetes.protobuf` (kubectl's form for them),
    /// decoded by the envelope's kind as the request path decodes it.
    Protobuf(std::sync::Arc<crate::Resource>),
}

impl Body {
    /// The body as a JSON value; None when it does not decode (it is then left out).
    fn decode(&self) -> Option<Value> {
        let mut value: Value = match &self.format {
            Format::Json => serde_json::from_slice(&self.bytes).ok()?,
            Format::Yaml => yaml_serde::from_slice(&self.bytes).ok()?,
            Format::Protobuf(res) => {
                crate::protobuf::decode_object(&self.bytes, res.as_ref()).ok()?
            }
        };
        if self.omit_managed_fields {
            strip_managed_fields(&mut value);
        }
        Some(value)
    }
}

impl Serialize for Body {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.decode().unwrap_or(Value::Null).serialize(serializer)
    }
}

fn strip_managed_fields(value: &mut Value) {
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    if let Some(items) = value.get_mut("items").and_then(Value::as_array_mut) {
        items.iter_mut().for_each(strip_managed_fields);
    }
}

impl Event {
    /// The event as one line of the log, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        // Every field is a string, number, map or decoded JSON: encoding cannot fail.
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }

    /// Bytes held by the bodies: what a queued event costs beyond its fixed fields.
    pub fn body_bytes(&self) -> usize {
        let len = |b: &Option<Body>| b.as_ref().map_or(0, |b| b.bytes.len());
        len(&self.request_object) + len(&self.response_object)
    }
}

/// Now, with microseconds, as upstream's `MicroTime` writes it.
pub fn micro_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
