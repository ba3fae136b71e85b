//! One request's record, filled in as the request is served: who and what when it arrives,
//! the authorizer's decision, the bodies the level asks for, and the reply's status when it
//! completes — for a stream (a watch), when the stream ends.

use std::sync::Arc;

use axum::body::{Body as HttpBody, HttpBody as _};
use axum::extract::ConnectInfo;
use axum::response::Response;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use http::{HeaderMap, header};
use serde::Deserialize;

use super::Auditor;
use super::event::{self, Body, Event, Format, ObjectRef, ResponseStatus, User};
use super::policy::{Decision, Level, Stage};
use crate::ApiServer;
use crate::auth::UserInfo;
use crate::authz::Attributes;

/// The response header naming a request's audit record, as kube-apiserver sends it.
const AUDIT_ID_HEADER: &str = "audit-id";

/// A request's event under construction, and the decision that shapes it.
pub(crate) struct Record {
    auditor: Arc<Auditor>,
    decision: Decision,
    event: Event,
}

impl Record {
    /// The record of a request, if the policy records it. `user` is None when the request
    /// failed authentication (or its `Host` was refused).
    pub(crate) fn begin(
        auditor: &Arc<Auditor>,
        parts: &http::request::Parts,
        user: Option<&UserInfo>,
        attrs: &Attributes,
        received: DateTime<Utc>,
    ) -> Option<Record> {
        let decision = auditor.policy().decide(user, attrs);
        if decision.level == Level::None {
            return None;
        }
        let user = user.map_or_else(User::default, |u| User {
            username: u.name.clone(),
            uid: u.uid.clone(),
            groups: u.groups.clone(),
        });
        let request_uri = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string());
        let event = Event {
            kind: "Event",
            api_version: "audit.k8s.io/v1",
            level: decision.level,
            audit_id: crate::object::new_uid(),
            stage: Stage::ResponseComplete,
            request_uri,
            verb: attrs.verb.clone(),
            user,
            source_ips: source_ips(parts),
            user_agent: header_text(&parts.headers, header::USER_AGENT),
            object_ref: attrs.resource().map(|r| ObjectRef {
                resource: r.resource.clone(),
                namespace: r.namespace.clone(),
                name: r.name.clone(),
                api_group: r.group.clone(),
                api_version: r.version.clone(),
                subresource: r.subresource.clone(),
            }),
            response_status: None,
            request_object: None,
            response_object: None,
            request_received_timestamp: event::micro_time(received),
            stage_timestamp: String::new(),
            annotations: Default::default(),
        };
        Some(Record {
            auditor: auditor.clone(),
            decision,
            event,
        })
    }

    /// Whether the request's body is to be recorded (Request level and up, resources only).
    pub(crate) fn wants_request_body(&self) -> bool {
        self.decision.level >= Level::Request && self.event.object_ref.is_some()
    }

    fn wants_response_body(&self) -> bool {
        self.decision.level >= Level::RequestResponse && self.event.object_ref.is_some()
    }

    /// Keeps the request's body: JSON, YAML, or the protobuf of a built-in kind of `server`
    /// (decoded by the writer).
    pub(crate) fn request_body(&mut self, headers: &HeaderMap, bytes: &Bytes, server: &ApiServer) {
        let content_type = header_text(headers, header::CONTENT_TYPE).unwrap_or_default();
        let format = match content_type.split(';').next().unwrap_or_default().trim() {
            "application/yaml" | "application/apply-patch+yaml" => Format::Yaml,
            "application/vnd.kubernetes.protobuf" => {
                let Some(r) = &self.event.object_ref else {
                    return;
                };
                match server.resource(&r.api_group, &r.api_version, &r.resource) {
                    Ok(res) => Format::Protobuf(res),
                    Err(_) => return,
                }
            }
            _ => Format::Json,
        };
        if !bytes.is_empty() {
            self.event.request_object = Some(self.body(bytes.clone(), format));
        }
    }

    fn body(&self, bytes: Bytes, format: Format) -> Body {
        Body {
            bytes,
            format,
            omit_managed_fields: self.decision.omit_managed_fields,
        }
    }

    /// The authorizer's decision (`allow`/`forbid`, None when it failed) and its reason.
    pub(crate) fn authorized(&mut self, decision: Option<&'static str>, reason: &str) {
        let notes = &mut self.event.annotations;
        if let Some(decision) = decision {
            notes.insert(event::DECISION.into(), decision.into());
        }
        notes.insert(event::REASON.into(), reason.into());
    }

    /// Completes the record with the reply and hands it to the writer; a streaming reply is
    /// recorded when it ends. Returns the reply, unchanged but for the `Audit-Id` header.
    pub(crate) async fn finish(mut self, response: Response) -> Response {
        let (mut parts, body) = response.into_parts();
        if let Ok(id) = http::HeaderValue::from_str(&self.event.audit_id) {
            parts.headers.insert(AUDIT_ID_HEADER, id);
        }
        let code = parts.status.as_u16();
        self.event.response_status = Some(ResponseStatus {
            code,
            ..ResponseStatus::default()
        });
        if body.size_hint().exact().is_none() {
            return Response::from_parts(parts, self.complete_when_done(body));
        }
        if !self.needs_response_body(code) {
            self.send(Stage::ResponseComplete);
            return Response::from_parts(parts, body);
        }
        // A reply of known length is already in memory: collecting it copies nothing.
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        self.read_response(code, &parts.headers, &bytes);
        self.send(Stage::ResponseComplete);
        Response::from_parts(parts, HttpBody::from(bytes))
    }

    /// A failure's Status, a create's object name, or the level's response body.
    fn needs_response_body(&self, code: u16) -> bool {
        let unnamed_create = self.event.verb == "create"
            && self
                .event
                .object_ref
                .as_ref()
                .is_some_and(|r| r.name.is_empty());
        code >= 400 || unnamed_create || self.wants_response_body()
    }

    fn read_response(&mut self, code: u16, headers: &HeaderMap, bytes: &Bytes) {
        let json = header_text(headers, header::CONTENT_TYPE)
            .is_some_and(|t| t.starts_with("application/json"));
        if !json {
            return;
        }
        if code >= 400 {
            self.failure(bytes);
        } else if let Some(r) = &mut self.event.object_ref
            && r.name.is_empty()
            && self.event.verb == "create"
        {
            // Upstream names a created object in its record (generateName included).
            if let Ok(named) = serde_json::from_slice::<Named>(bytes) {
                r.name = named.metadata.name.unwrap_or_default();
            }
        }
        if self.wants_response_body() {
            self.event.response_object = Some(self.body(bytes.clone(), Format::Json));
        }
    }

    /// A failure's `status`, `message` and `reason`, from the Status it replied.
    fn failure(&mut self, bytes: &[u8]) {
        let Ok(status) = serde_json::from_slice::<StatusReply>(bytes) else {
            return;
        };
        if let Some(s) = &mut self.event.response_status {
            s.status = status.status;
            s.message = status.message;
            s.reason = status.reason.filter(|r| !r.is_empty());
        }
    }

    /// A streaming body that hands the record to the writer when it is dropped: at its end,
    /// when the client goes away, or when the server stops.
    fn complete_when_done(self, body: HttpBody) -> HttpBody {
        let guard = CompleteOnDrop(Some(self));
        HttpBody::from_stream(body.into_data_stream().map(move |chunk| {
            let _ = &guard;
            chunk
        }))
    }

    /// The record of a request whose handling panicked (upstream's `Panic` stage, a 500).
    pub(crate) fn panicked(mut self, panic: &(dyn std::any::Any + Send)) {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        self.event.response_status = Some(ResponseStatus {
            status: Some("Failure".into()),
            message: Some(format!("APIServer panic'd: {what}")),
            reason: Some("InternalError".into()),
            code: 500,
            ..ResponseStatus::default()
        });
        self.send(Stage::Panic);
    }

    fn send(mut self, stage: Stage) {
        if !self.decision.records(stage) {
            return;
        }
        self.event.stage = stage;
        self.event.stage_timestamp = event::micro_time(Utc::now());
        self.auditor.submit(self.event);
    }
}

struct CompleteOnDrop(Option<Record>);

impl Drop for CompleteOnDrop {
    fn drop(&mut self) {
        if let Some(record) = self.0.take() {
            record.send(Stage::ResponseComplete);
        }
    }
}

#[derive(Deserialize)]
struct Named {
    metadata: NamedMeta,
}

#[derive(Deserialize)]
struct NamedMeta {
    name: Option<String>,
}

#[derive(Deserialize)]
struct StatusReply {
    status: Option<String>,
    message: Option<String>,
    reason: Option<String>,
}

fn header_text(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?;
    (!value.is_empty()).then(|| value.to_string())
}

/// `X-Forwarded-For`'s addresses, `X-Real-Ip` if not among them, then the connection's peer
/// unless it is the last already — upstream's order. All but the peer are the client's word.
fn source_ips(parts: &http::request::Parts) -> Vec<String> {
    let mut ips: Vec<String> = header_text(&parts.headers, "x-forwarded-for")
        .map(|v| v.split(',').map(|ip| ip.trim().to_string()).collect())
        .unwrap_or_default();
    ips.retain(|ip| !ip.is_empty());
    let real = header_text(&parts.headers, "x-real-ip");
    if let Some(real) = real.map(|r| r.trim().to_string())
        && !ips.contains(&real)
    {
        ips.push(real);
    }
    let peer = parts
        .extensions
        .get::<ConnectInfo<crate::tls::Peer>>()
        .map(|p| p.0.addr.ip())
        .or_else(|| {
            let plain = parts.extensions.get::<ConnectInfo<std::net::SocketAddr>>();
            plain.map(|p| p.0.ip())
        });
    if let Some(peer) = peer.map(|ip| ip.to_string())
        && ips.last() != Some(&peer)
    {
        ips.push(peer);
    }
    ips
}
