//! Workload simulation: the parts of kube-controller-manager and the kubelets a user sees.
//! Deployments own ReplicaSets (`deployment.rs`, template hash in `hash.rs`, revisions in
//! `revision.rs`), ReplicaSets own Pods that start Running and Ready after the configured delay
//! (`replicaset.rs`, `pods.rs`); StatefulSets own ordinal Pods with their volume claims
//! (`statefulset.rs`, `claims.rs`) and DaemonSets one Pod per node (`daemonset.rs`), both with
//! ControllerRevisions as their history (`controller_revision.rs`); Jobs own Pods that run to completion (`job.rs`);
//! CronJobs start Jobs on their schedule (`cronjob.rs`, the cron expressions in `schedule.rs`,
//! the time from the injectable [`Clock`]); Services with a
//! selector get Endpoints and EndpointSlices of their Pods (`endpoints.rs`); the controllers'
//! Events (`events.rs`), and `pods/log` answered with a simulated line (`logs.rs`).
//!
//! Reconciliation is level-triggered and serial: watch events become [`Task`]s in one
//! de-duplicated queue per cluster (at most one entry per object), worked by one loop; the only
//! other tasks are the short-lived timers that move new Pods on (ready, or done for a Job's), and
//! one timer per CronJob for its next start time.

mod claims;
mod controller_revision;
mod cronjob;
mod daemonset;
mod deployment;
mod endpoints;
mod events;
pub mod hash;
mod job;
pub mod logs;
mod pods;
mod replicaset;
mod revision;
mod schedule;
mod statefulset;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rotor_apiserver::{ApiError, ApiServer, FieldValidation, PatchType, Resource, WriteOptions};
use rotor_store::WatchEvent;
use serde_json::Value;
use tokio::sync::mpsc;

/// One unit of work, named by what it reconciles.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Task {
    Deployment {
        ns: String,
        name: String,
    },
    ReplicaSet {
        ns: String,
        name: String,
    },
    StatefulSet {
        ns: String,
        name: String,
    },
    DaemonSet {
        ns: String,
        name: String,
    },
    Job {
        ns: String,
        name: String,
    },
    /// A CronJob (changed, one of its Jobs changed, or its next start time came).
    CronJob {
        ns: String,
        name: String,
    },
    /// A finished Job whose `ttlSecondsAfterFinished` has passed: the TTL controller deletes it.
    JobExpired {
        ns: String,
        name: String,
    },
    /// The Endpoints and EndpointSlices of every Service of a namespace (a Pod or Service there
    /// changed): one task per namespace, however many Pods changed.
    Services {
        ns: String,
    },
    /// Service `name` was deleted: its Endpoints go too.
    ServiceGone {
        ns: String,
        name: String,
    },
    /// Pods created a `workload_ready_delay` ago: now Running and Ready.
    PodsReady {
        ns: String,
        names: Vec<String>,
    },
    /// A Job's Pods created a `workload_ready_delay` (or their `sim.rotor.dev/run-seconds`)
    /// ago: now Succeeded, or Failed by their `sim.rotor.dev/exit-code`.
    PodsFinished {
        ns: String,
        names: Vec<String>,
    },
}

/// The de-duplicated queue: a task waiting is not queued twice.
#[derive(Clone)]
pub struct Queue {
    tx: mpsc::UnboundedSender<Task>,
    waiting: Arc<Mutex<HashSet<Task>>>,
}

impl Queue {
    pub fn new() -> (Self, mpsc::UnboundedReceiver<Task>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let waiting = Arc::new(Mutex::new(HashSet::new()));
        (Queue { tx, waiting }, rx)
    }

    pub fn push(&self, task: Task) {
        let fresh = self
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(task.clone());
        if fresh {
            let _ = self.tx.send(task);
        }
    }

    fn taken(&self, task: &Task) {
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(task);
    }

    /// Queues `task` after `delay` (a timer that ends when it fires).
    fn after(&self, delay: Duration, task: Task) {
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.push(task);
        });
    }
}

/// Where the simulated controllers read the time (the CronJob controller's schedules): the
/// system clock, or one a test sets, so scheduling is tested without waiting for minutes.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> jiff::Timestamp + Send + Sync>);

impl Clock {
    pub fn system() -> Self {
        Clock(Arc::new(jiff::Timestamp::now))
    }

    /// A clock that reads `now`.
    pub fn from_fn(now: impl Fn() -> jiff::Timestamp + Send + Sync + 'static) -> Self {
        Clock(Arc::new(now))
    }

    pub fn now(&self) -> jiff::Timestamp {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}

/// What every reconciler needs: the cluster's API, its shape and the queue.
pub struct Ctx {
    pub server: Arc<ApiServer>,
    pub nodes: usize,
    /// The cluster's Kubernetes minor version: some behaviour changed between releases.
    pub minor: u32,
    pub ready_delay: Duration,
    pub queue: Queue,
    pub clock: Clock,
    /// The time each timer armed by [`Ctx::wake_at`] fires for, so a task gets one timer per
    /// start time however often it is reconciled before.
    pub wakes: Arc<Mutex<HashMap<Task, jiff::Timestamp>>>,
}

impl Ctx {
    /// Queues `task` when the clock reaches `at` (once per task and time).
    pub fn wake_at(&self, task: Task, at: jiff::Timestamp) {
        let lock = || self.wakes.lock().unwrap_or_else(|p| p.into_inner());
        if lock().insert(task.clone(), at) == Some(at) {
            return;
        }
        let wait = self.clock.now().duration_until(at);
        let delay = Duration::try_from(wait).unwrap_or(Duration::ZERO) + Duration::from_millis(50);
        let (queue, wakes) = (self.queue.clone(), self.wakes.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let mut armed = wakes.lock().unwrap_or_else(|p| p.into_inner());
            if armed.get(&task) == Some(&at) {
                armed.remove(&task);
                drop(armed);
                queue.push(task);
            }
        });
    }
}

/// The tasks a change to the object at `key` calls for (its own, its controller's).
pub fn route(queue: &Queue, event: &WatchEvent) {
    let (key, value) = match event {
        WatchEvent::Put { kv, .. } => (&kv.key, &kv.value),
        WatchEvent::Delete { prev, .. } => (&prev.key, &prev.value),
    };
    let mut parts = key.trim_start_matches('/').splitn(4, '/');
    let (Some(group), Some(plural), Some(ns), Some(name)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let (ns, name) = (ns.to_string(), name.to_string());
    match (group, plural) {
        // A status written by someone else stands until the spec or an owned object changes
        // (how tests inject unavailability); the simulator's own status writes need no second look.
        // A Job's status is what its CronJob tracks: every change of it concerns the CronJob.
        ("batch", "jobs") if status_only(event) => cron_job_of(queue, value, ns),
        ("batch", "jobs") => {
            cron_job_of(queue, value, ns.clone());
            queue.push(Task::Job { ns, name });
        }
        ("batch", "cronjobs") if status_only(event) => {}
        ("batch", "cronjobs") => queue.push(Task::CronJob { ns, name }),
        ("apps", "deployments" | "statefulsets" | "daemonsets") if status_only(event) => {}
        ("apps", "deployments") => queue.push(Task::Deployment { ns, name }),
        ("apps", "statefulsets") => queue.push(Task::StatefulSet { ns, name }),
        ("apps", "daemonsets") => queue.push(Task::DaemonSet { ns, name }),
        ("apps", "replicasets") => {
            if let Some(("Deployment", d)) = controller_of(value) {
                queue.push(Task::Deployment {
                    ns: ns.clone(),
                    name: d,
                });
            }
            queue.push(Task::ReplicaSet { ns, name });
        }
        ("core", "pods") => {
            if let Some(task) =
                controller_of(value).and_then(|(kind, owner)| owner_task(kind, ns.clone(), owner))
            {
                queue.push(task);
            }
            queue.push(Task::Services { ns });
        }
        ("core", "services") if matches!(event, WatchEvent::Delete { .. }) => {
            queue.push(Task::ServiceGone { ns, name })
        }
        ("core", "services") => queue.push(Task::Services { ns }),
        _ => {}
    }
}

/// Queues the CronJob that controls the Job `bytes`, if one does.
fn cron_job_of(queue: &Queue, bytes: &[u8], ns: String) {
    if let Some(("CronJob", name)) = controller_of(bytes) {
        queue.push(Task::CronJob { ns, name });
    }
}

/// The task of a Pod's controller.
fn owner_task(kind: &str, ns: String, name: String) -> Option<Task> {
    match kind {
        "ReplicaSet" => Some(Task::ReplicaSet { ns, name }),
        "StatefulSet" => Some(Task::StatefulSet { ns, name }),
        "DaemonSet" => Some(Task::DaemonSet { ns, name }),
        "Job" => Some(Task::Job { ns, name }),
        _ => None,
    }
}

/// The kind and name of the controller of the stored object `bytes`.
fn controller_of(bytes: &[u8]) -> Option<(&'static str, String)> {
    let obj = serde_json::from_slice::<Value>(bytes).ok()?;
    let r = obj
        .pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)?;
    let kind = [
        "Deployment",
        "ReplicaSet",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "CronJob",
    ]
    .into_iter()
    .find(|k| r["kind"] == *k)?;
    Some((kind, r["name"].as_str()?.to_string()))
}

/// Whether `event` is an update that changed nothing but status (and bookkeeping metadata).
fn status_only(event: &WatchEvent) -> bool {
    let WatchEvent::Put {
        kv,
        prev: Some(prev),
    } = event
    else {
        return false;
    };
    let strip = |bytes: &[u8]| {
        let mut v = serde_json::from_slice::<Value>(bytes).ok()?;
        let o = v.as_object_mut()?;
        o.remove("status");
        let meta = o.get_mut("metadata")?.as_object_mut()?;
        meta.remove("resourceVersion");
        meta.remove("managedFields");
        Some(v)
    };
    matches!((strip(&kv.value), strip(&prev.value)), (Some(a), Some(b)) if a == b)
}

/// Works the queue until the cluster goes away.
pub async fn work(ctx: Ctx, mut rx: mpsc::UnboundedReceiver<Task>) {
    while let Some(task) = rx.recv().await {
        ctx.queue.taken(&task);
        let result = match &task {
            Task::Deployment { ns, name } => deployment::reconcile(&ctx, ns, name).await,
            Task::ReplicaSet { ns, name } => replicaset::reconcile(&ctx, ns, name).await,
            Task::StatefulSet { ns, name } => statefulset::reconcile(&ctx, ns, name).await,
            Task::DaemonSet { ns, name } => daemonset::reconcile(&ctx, ns, name).await,
            Task::Job { ns, name } => job::reconcile(&ctx, ns, name).await,
            Task::JobExpired { ns, name } => job::expire(&ctx, ns, name).await,
            Task::CronJob { ns, name } => cronjob::reconcile(&ctx, ns, name).await,
            Task::Services { ns } => endpoints::reconcile(&ctx, ns).await,
            Task::ServiceGone { ns, name } => endpoints::service_gone(&ctx, ns, name).await,
            Task::PodsReady { ns, names } => pods::mark_ready(&ctx, ns, names).await,
            Task::PodsFinished { ns, names } => pods::mark_finished(&ctx, ns, names).await,
        };
        if let Err(e) = result {
            tracing::debug!(?task, error = %e, "simulated workload controller");
        }
    }
}

/// The options of every simulated controller write: kube-controller-manager's field manager,
/// and the server's default field validation (Warn: controllers send none), which also lets a
/// ControllerRevision's free-form `data` through.
pub fn opts() -> WriteOptions {
    WriteOptions {
        field_manager: "kube-controller-manager".into(),
        validation: FieldValidation::Warn,
        ..WriteOptions::default()
    }
}

pub fn uid(obj: &Value) -> &str {
    obj.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The objects of `res` in `ns` whose controller is the object with `owner_uid`.
pub async fn owned(
    server: &ApiServer,
    res: &Arc<Resource>,
    ns: &str,
    owner_uid: &str,
) -> Result<Vec<Value>, ApiError> {
    // Only objects that mention the uid are parsed: a namespace holds many more than one
    // owner's, and this runs on every event of theirs.
    let finder = memchr::memmem::Finder::new(owner_uid.as_bytes());
    let mentions = |bytes: &[u8]| finder.find(bytes).is_some();
    let candidates = server.list_where(res, Some(ns), mentions).await?;
    let controlled = |o: &Value| {
        o.pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .is_some_and(|refs| {
                refs.iter()
                    .any(|r| r["controller"] == true && r["uid"] == owner_uid)
            })
    };
    Ok(candidates.into_iter().filter(controlled).collect())
}

/// The owner reference a controller puts on what it creates.
pub fn owner_ref(api_version: &str, kind: &str, owner: &Value) -> Value {
    serde_json::json!({
        "apiVersion": api_version, "kind": kind,
        "name": rotor_apiserver::object::name(owner), "uid": uid(owner),
        "controller": true, "blockOwnerDeletion": true,
    })
}

/// A merge patch of `obj`'s main resource or of its `status` subresource.
pub async fn merge(
    server: &ApiServer,
    res: &Arc<Resource>,
    ns: &str,
    name: &str,
    patch: &Value,
    status: bool,
) -> Result<(), ApiError> {
    let sub = status.then_some("status");
    server
        .patch(res, Some(ns), name, PatchType::Merge, patch, sub, &opts())
        .await
        .map(|_| ())
}

/// Reads an object; None when it is gone or being deleted (nothing left to reconcile).
pub async fn live(
    server: &ApiServer,
    res: &Arc<Resource>,
    ns: &str,
    name: &str,
) -> Result<Option<Value>, ApiError> {
    match server.get(res, Some(ns), name).await {
        Ok(o) if rotor_apiserver::object::is_deleting(&o) => Ok(None),
        Ok(o) => Ok(Some(o)),
        Err(e) if e.reason == "NotFound" => Ok(None),
        Err(e) => Err(e),
    }
}

/// An integer field, or `default`.
pub fn int(obj: &Value, pointer: &str, default: i64) -> i64 {
    obj.pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or(default)
}

/// Whether the merge patch `new` would change `old` (a null in `new` removes a field).
pub fn differs(old: &Value, new: &Value) -> bool {
    let Some(fields) = new.as_object() else {
        return old != new;
    };
    fields.iter().any(|(k, v)| match (old.get(k), v) {
        (None | Some(Value::Null), Value::Null) => false,
        (current, v) => current != Some(v),
    })
}
