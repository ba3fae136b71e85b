//! Kubernetes Events on rotor's objects: every phase transition and every reason to wait or
//! retry is recorded, so `kubectl describe` / `kubectl get events` tell the story.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Reporter};

pub(crate) struct Recorder {
    inner: kube::runtime::events::Recorder,
}

impl Recorder {
    pub(crate) fn new(client: kube::Client) -> Self {
        let reporter = Reporter {
            controller: "rotor-controller".into(),
            instance: std::env::var("HOSTNAME").ok(),
        };
        Recorder {
            inner: kube::runtime::events::Recorder::new(client, reporter),
        }
    }

    /// Publishes an event; a failure to record is logged, never fails the reconcile.
    pub(crate) async fn publish(
        &self,
        object: &ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_string(),
            note: Some(note.chars().take(1024).collect()),
            action: action.to_string(),
            secondary: None,
        };
        if let Err(e) = self.inner.publish(&event, object).await {
            tracing::warn!(object = ?object.name, reason, error = %e, "recording an event failed");
        }
    }
}
