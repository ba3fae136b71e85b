//! Kubernetes Events (`events.k8s.io/v1`) on rotor's objects: every phase transition and every
//! reason to wait or retry is recorded, so `kubectl describe` / `kubectl get events` tell the
//! story.
//!
//! Repeats of the same (object, type, reason, note) become one Event with a growing `series`,
//! as kube-apiserver's clients do; a different note is a different Event. (kube-runtime's
//! `Recorder` merges Events whose notes differ and keeps only the first note, which would hide
//! why a swap waits now behind why it waited first.)
//!
//! Recording does not wait for the API, as client-go's recorder does not: an Event is queued
//! with the time it was recorded and posted by a lane task, so a swap's transition costs its
//! status write alone. An object's Events always take the same lane and reach the API in the
//! order they were recorded: once an object's latest Event is listed, so are all before it.
//! A full lane makes `publish` wait (nothing is dropped); [`Recorder::flush`] drains the lanes
//! on shutdown.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::sync::{mpsc, oneshot};

/// Events of cluster-scoped objects live in this namespace (as kube-runtime's do).
const CLUSTER_SCOPED_EVENTS_NAMESPACE: &str = "default";
/// Bound on remembered series; past it the memory starts over (a repeat then opens a new Event).
const MAX_SERIES: usize = 10_000;
const CONTROLLER: &str = "rotor.dev/controller";
/// Lanes posting Events side by side (each posts one at a time, in order).
const LANES: usize = 8;
/// Events queued on a lane before `publish` waits for it.
const LANE_CAPACITY: usize = 1024;

/// (object uid or name, warning, reason, note).
type SeriesKey = (String, bool, String, String);
/// (event namespace, event name, count so far).
type SeriesEntry = (String, String, i32);

/// Records Events without waiting for the API: see the module's doc.
pub(crate) struct Recorder {
    poster: Arc<Poster>,
    /// Started by the first Event, on the runtime that records it.
    lanes: OnceLock<Vec<mpsc::Sender<Work>>>,
}

/// What a lane is asked to do, in order.
enum Work {
    Post(Box<Record>),
    /// Answered once everything queued before it was posted.
    Flush(oneshot::Sender<()>),
}

/// One Event as recorded, before it is posted.
struct Record {
    object: ObjectReference,
    warning: bool,
    reason: String,
    action: String,
    note: String,
    at: MicroTime,
}

/// Posts Events and remembers their series (shared by the lanes: a series' key names its
/// object, so all of a series goes down one lane).
struct Poster {
    client: kube::Client,
    instance: String,
    series: Mutex<HashMap<SeriesKey, SeriesEntry>>,
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

/// Who an Event is about: its uid, else its name.
fn who(object: &ObjectReference) -> String {
    object
        .uid
        .clone()
        .or_else(|| object.name.clone())
        .unwrap_or_default()
}

impl Recorder {
    pub(crate) fn new(client: kube::Client) -> Self {
        Recorder {
            poster: Arc::new(Poster {
                client,
                instance: std::env::var("HOSTNAME").unwrap_or_else(|_| "rotor".into()),
                series: Mutex::default(),
            }),
            lanes: OnceLock::new(),
        }
    }

    /// Queues an Event (waiting only while its lane is full); a failure to post it is logged,
    /// never fails the reconcile.
    pub(crate) async fn publish(
        &self,
        object: &ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let record = Record {
            object: object.clone(),
            warning,
            reason: reason.to_string(),
            action: action.to_string(),
            note: note.chars().take(1024).collect(),
            at: now(),
        };
        let lane = self.lane_of(&who(object));
        if lane.send(Work::Post(Box::new(record))).await.is_err() {
            tracing::warn!(object = ?object.name, reason, "event lane closed; event not recorded");
        }
    }

    /// Waits until every Event recorded so far was posted (or failed), at most `within`;
    /// whether all were.
    pub(crate) async fn flush(&self, within: Duration) -> bool {
        let Some(lanes) = self.lanes.get() else {
            return true;
        };
        let asked = lanes.iter().map(|lane| async move {
            let (tx, rx) = oneshot::channel();
            lane.send(Work::Flush(tx)).await.is_ok() && rx.await.is_ok()
        });
        let all = futures::future::join_all(asked);
        match tokio::time::timeout(within, all).await {
            Ok(done) => done.into_iter().all(|d| d),
            Err(_) => false,
        }
    }

    fn lane_of(&self, who: &str) -> &mpsc::Sender<Work> {
        let lanes = self.lanes.get_or_init(|| {
            (0..LANES)
                .map(|_| {
                    let (tx, rx) = mpsc::channel(LANE_CAPACITY);
                    tokio::spawn(run_lane(self.poster.clone(), rx));
                    tx
                })
                .collect()
        });
        let mut h = std::collections::hash_map::DefaultHasher::new();
        who.hash(&mut h);
        &lanes[(h.finish() % LANES as u64) as usize]
    }
}

/// A lane: posts its Events one at a time, in the order they were queued.
async fn run_lane(poster: Arc<Poster>, mut rx: mpsc::Receiver<Work>) {
    while let Some(work) = rx.recv().await {
        match work {
            Work::Post(record) => {
                if let Err(e) = poster.post(&record).await {
                    tracing::warn!(
                        object = ?record.object.name,
                        reason = record.reason,
                        error = %e,
                        "recording an event failed"
                    );
                }
            }
            Work::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

impl Poster {
    async fn post(&self, r: &Record) -> Result<(), kube::Error> {
        let key = (who(&r.object), r.warning, r.reason.clone(), r.note.clone());
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
            let patch = serde_json::json!({"series": {"count": count, "lastObservedTime": r.at}});
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
        let namespace = r
            .object
            .namespace
            .clone()
            .unwrap_or_else(|| CLUSTER_SCOPED_EVENTS_NAMESPACE.to_string());
        let name = format!(
            "{}.{:x}",
            r.object.name.as_deref().unwrap_or("object"),
            r.at.0.as_nanosecond() as u64 ^ rand_suffix()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            event_time: Some(r.at.clone()),
            action: Some(r.action.clone()),
            reason: Some(r.reason.clone()),
            note: Some(r.note.clone()),
            type_: Some(if r.warning { "Warning" } else { "Normal" }.to_string()),
            regarding: Some(r.object.clone()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ListParams;
    use rotor_sim::{Sim, SimConfig};

    /// A client of a simulated cluster's API (it stores Events as the control plane does).
    async fn api_server() -> (Arc<Sim>, kube::Client, tokio::task::JoinHandle<()>) {
        let sim = Sim::new(SimConfig::default());
        sim.add_cluster("control", 35).await.expect("cluster");
        let (base, server) = crate::testing::serve(&sim).await;
        let client = crate::testing::client(&sim, "control", &base).await;
        (sim, client, server)
    }

    fn object(name: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("ConfigMap".into()),
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        }
    }

    fn version(e: &Event) -> u64 {
        let rv = e.metadata.resource_version.as_deref().unwrap_or_default();
        rv.parse().expect("a numeric resourceVersion")
    }

    #[tokio::test]
    async fn an_objects_events_arrive_in_order_and_repeats_become_one_series() {
        let (_sim, client, _server) = api_server().await;
        let recorder = Recorder::new(client.clone());
        for i in 0..20 {
            for name in ["a", "b", "c"] {
                let note = format!("{name} {i}");
                recorder
                    .publish(&object(name), false, "Step", "Act", note)
                    .await;
            }
        }
        for _ in 0..3 {
            let note = "again".to_string();
            recorder
                .publish(&object("a"), true, "Wait", "Act", note)
                .await;
        }
        assert!(recorder.flush(Duration::from_secs(20)).await, "flushed");
        let api: Api<Event> = Api::namespaced(client, "default");
        let listed = api.list(&ListParams::default()).await.expect("list");
        for name in ["a", "b", "c"] {
            let mut of: Vec<&Event> = listed
                .items
                .iter()
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
                .filter(|e| e.reason.as_deref() == Some("Step"))
                .collect();
            of.sort_by_key(|e| version(e));
            let notes: Vec<&str> = of.iter().filter_map(|e| e.note.as_deref()).collect();
            let want: Vec<String> = (0..20).map(|i| format!("{name} {i}")).collect();
            assert_eq!(notes, want, "{name}'s Events in the order recorded");
        }
        let again: Vec<&Event> = listed
            .items
            .iter()
            .filter(|e| e.note.as_deref() == Some("again"))
            .collect();
        assert_eq!(again.len(), 1, "one Event for the repeats");
        let series = again[0].series.as_ref().expect("a series");
        assert_eq!(series.count, 3);
        assert_eq!(again[0].type_.as_deref(), Some("Warning"));
    }

    #[tokio::test]
    async fn recording_does_not_wait_for_an_api_that_never_answers() {
        // Accepts connections and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        let config = kube::Config::new(url.parse().expect("url"));
        let recorder = Recorder::new(kube::Client::try_from(config).expect("client"));
        let recorded = async {
            for i in 0..100 {
                let note = format!("step {i}");
                recorder
                    .publish(&object("a"), false, "Step", "Act", note)
                    .await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), recorded)
            .await
            .expect("publish returns without an answer from the API");
        assert!(
            !recorder.flush(Duration::from_millis(200)).await,
            "the lane is still waiting for the API"
        );
        held.abort();
    }
}
