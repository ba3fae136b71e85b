//! Kubernetes Events (`events.k8s.io/v1`) on rotor's objects: every phase transition and every
//! reason to wait or retry is recorded, so `kubectl describe` / `kubectl get events` tell the
//! story.
//!
//! Repeats of the same (object, type, reason, note) become one Event with a growing `series`,
//! as kube-apiserver's clients do; a different note is a different Event. (kube-runtime's
//! `Recorder` merges Events whose notes differ and keeps only the first note, which would hide
//! why a swap waits now behind why it waited first.)

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};

/// Events of cluster-scoped objects live in this namespace (as kube-runtime's do).
const CLUSTER_SCOPED_EVENTS_NAMESPACE: &str = "default";
/// Bound on remembered series; past it the memory starts over (a repeat then opens a new Event).
const MAX_SERIES: usize = 10_000;
const CONTROLLER: &str = "rotor.dev/controller";

/// (object uid or name, warning, reason, note).
type SeriesKey = (String, bool, String, String);
/// (event namespace, event name, count so far).
type SeriesEntry = (String, String, i32);

pub(crate) struct Recorder {
    client: kube::Client,
    instance: String,
    series: Mutex<HashMap<SeriesKey, SeriesEntry>>,
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

impl Recorder {
    pub(crate) fn new(client: kube::Client) -> Self {
        Recorder {
            client,
            instance: std::env::var("HOSTNAME").unwrap_or_else(|_| "rotor".into()),
            series: Mutex::default(),
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
        if let Err(e) = self
            .try_publish(object, warning, reason, action, note)
            .await
        {
            tracing::warn!(object = ?object.name, reason, error = %e, "recording an event failed");
        }
    }

    async fn try_publish(
        &self,
        object: &ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) -> Result<(), kube::Error> {
        let note: String = note.chars().take(1024).collect();
        let who = object
            .uid
            .clone()
            .or_else(|| object.name.clone())
            .unwrap_or_default();
        let key = (who, warning, reason.to_string(), note.clone());
        let repeat = {
            let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
            if series.len() > MAX_SERIES {
                series.clear();
            }
            series.get_mut(&key).map(|entry| {
                entry.2 += 1;
                entry.clone()
            })
        };
        if let Some((namespace, name, count)) = repeat {
            let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
            let patch = serde_json::json!({"series": {"count": count, "lastObservedTime": now()}});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                // Deleted meanwhile (TTL, an operator): start a new one.
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let namespace = object
            .namespace
            .clone()
            .unwrap_or_else(|| CLUSTER_SCOPED_EVENTS_NAMESPACE.to_string());
        let t = now();
        let name = format!(
            "{}.{:x}",
            object.name.as_deref().unwrap_or("object"),
            t.0.as_nanosecond() as u64 ^ rand_suffix()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            event_time: Some(t),
            action: Some(action.to_string()),
            reason: Some(reason.to_string()),
            note: Some(note),
            type_: Some(if warning { "Warning" } else { "Normal" }.to_string()),
            regarding: Some(object.clone()),
            reporting_controller: Some(CONTROLLER.to_string()),
            reporting_instance: Some(self.instance.clone()),
            series: None::<EventSeries>,
            ..Default::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        api.create(&PostParams::default(), &event).await?;
        self.series
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (namespace, name, 1));
        Ok(())
    }
}

/// Distinguishes two events of one object created in the same nanosecond.
fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
}
