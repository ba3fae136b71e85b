//! Applying a plan to green: each object written and owned as in blue ([`crate::write`]), stage
//! by stage, bounded concurrency within a stage, a client-side rate limit, backoff on 429/5xx, and a checkpoint so a resumed run skips
//! what is already there.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::{Client, ResourceExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::plan::{PlannedObject, ResourceRef};
use crate::versions::{BlockedObject, ServedVersions, VersionChoice};
use crate::write::WriteError;
use crate::{MigrationOptions, Plan, Stage};

/// Remembers which objects reached green, so a resumed run skips them. Keys name the object and
/// a fingerprint of its body: an object changed in blue since it was recorded is applied again.
/// Called from concurrent tasks; a durable implementation should batch its writes.
pub trait Checkpoint: Send + Sync {
    fn done(&self, key: &str) -> bool;
    fn record(&self, key: &str);
}

/// A checkpoint for one process: survives a failed or cancelled [`apply`], not a restart.
#[derive(Debug, Default)]
pub struct MemoryCheckpoint {
    keys: Mutex<HashSet<String>>,
}

impl MemoryCheckpoint {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Checkpoint for MemoryCheckpoint {
    fn done(&self, key: &str) -> bool {
        self.lock().contains(key)
    }

    fn record(&self, key: &str) {
        self.lock().insert(key.to_string());
    }
}

/// An object green did not take, named as `Kind namespace/name`, with the API's message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectError {
    pub object: String,
    pub message: String,
    /// The HTTP status the API answered with, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
}

impl std::fmt::Display for ObjectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.object, self.message)
    }
}

/// What one [`apply`] did. `applied + skipped + errors.len() == total`, except when the plan was
/// refused up front (`refused` not empty, or green's API versions could not be read): then
/// nothing was applied and `errors` names the objects refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyReport {
    pub total: usize,
    pub applied: usize,
    /// Already recorded in the checkpoint.
    pub skipped: usize,
    pub errors: Vec<ObjectError>,
    /// Requests repeated after a 429, 5xx or transport error.
    pub retries: usize,
    /// Objects green cannot take at any version rotor can convert them to: the whole plan was
    /// refused before anything was written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<BlockedObject>,
}

impl ApplyReport {
    /// Every object of the plan is in green.
    pub fn is_complete(&self) -> bool {
        self.errors.is_empty() && self.applied + self.skipped == self.total
    }
}

/// A token bucket shared by every request of a run; a 429 makes all of them wait, not only
/// the request that got it.
#[derive(Debug)]
pub struct RateLimiter {
    /// Tokens per second; None for no limit.
    rate: Option<f64>,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub fn new(qps: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        RateLimiter {
            rate: (qps > 0.0).then_some(qps),
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Waits for the next request's turn. Turns are reserved in order (a negative balance), so
    /// concurrent callers queue instead of racing.
    pub async fn acquire(&self) {
        let Some(rate) = self.rate else { return };
        let wait = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            s.0 = (s.0 + now.duration_since(s.1).as_secs_f64() * rate).min(self.burst) - 1.0;
            s.1 = now;
            (s.0 < 0.0).then(|| Duration::from_secs_f64(-s.0 / rate))
        };
        if let Some(w) = wait {
            tokio::time::sleep(w).await;
        }
    }

    /// The server said it is overloaded: no request leaves for at least `pause`.
    pub fn penalize(&self, pause: Duration) {
        if let Some(rate) = self.rate {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            s.0 = s.0.min(-pause.as_secs_f64() * rate);
        }
    }
}

/// The checkpoint key of an object: `Kind.group namespace/name fingerprint`, the fingerprint
/// taken over the serialized body and blue's owners (a change of either writes it again).
pub(crate) fn checkpoint_key(res: &ResourceRef, obj: &PlannedObject, body: &[u8]) -> String {
    // FNV-1a: stable across builds and Rust versions, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let owners = match obj.managed_fields.as_slice() {
        [] => Vec::new(),
        list => serde_json::to_vec(list).unwrap_or_default(),
    };
    for &b in body.iter().chain(&owners) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{} {} {h:016x}", res.kind_group(), obj.qualified_name())
}

enum Outcome {
    Applied { retries: usize },
    Skipped { retries: usize },
    Failed { error: ObjectError, retries: usize },
}

/// One [`apply`]: what every object's write shares.
pub(crate) struct Run<'a> {
    pub(crate) green: &'a Client,
    options: &'a MigrationOptions,
    checkpoint: &'a dyn Checkpoint,
    limiter: RateLimiter,
    /// Blue uid → green uid of moved owners, to rewrite their dependents' ownerReferences.
    uids: Mutex<HashMap<String, String>>,
}

/// Writes `plan` into `green` (strict field validation: a field green does not know fails the
/// object instead of vanishing), each object owned as in blue ([`crate::write`]). Stages run
/// in order, objects within a stage concurrently. An object that fails is reported and not
/// recorded; the others go on, so a re-run with the same checkpoint retries only the failures.
pub async fn apply(
    green: &Client,
    plan: &Plan,
    options: &MigrationOptions,
    checkpoint: &dyn Checkpoint,
) -> ApplyReport {
    let run = Run {
        green,
        options,
        checkpoint,
        limiter: RateLimiter::new(options.qps, options.burst),
        uids: Mutex::new(HashMap::new()),
    };
    let (writes, minor, retries) = match write_versions(green, plan, options).await {
        Ok(w) => w,
        Err(refusal) => return refusal,
    };
    if let Some(minor) = minor
        && let Err(refusal) = refuse_what_green_refuses(plan, minor, &writes).await
    {
        return refusal;
    }
    let mut report = ApplyReport {
        total: plan.total(),
        retries,
        ..ApplyReport::default()
    };
    for stage in &plan.stages {
        let started = Instant::now();
        // Collected and indexed: a stream of closures over borrowed pairs defeats the
        // compiler's Send proof when the caller spawns this future (kube-runtime does).
        let objects: Vec<(&ResourceRef, &PlannedObject)> = stage
            .resources
            .iter()
            .flat_map(|r| {
                let res = writes.get(&r.resource).unwrap_or(&r.resource);
                r.objects.iter().map(move |o| (res, o))
            })
            .collect();
        let objects = &objects;
        let run = &run;
        let mut outcomes = futures::stream::iter(0..objects.len())
            .map(move |i| run.one(objects[i].0, objects[i].1))
            .buffer_unordered(options.concurrency.max(1));
        while let Some(outcome) = outcomes.next().await {
            match outcome {
                Outcome::Applied { retries } => {
                    report.applied += 1;
                    report.retries += retries;
                }
                Outcome::Skipped { retries } => {
                    report.skipped += 1;
                    report.retries += retries;
                }
                Outcome::Failed { error, retries } => {
                    report.errors.push(error);
                    report.retries += retries;
                }
            }
        }
        drop(outcomes);
        tracing::debug!(stage = %stage.stage, objects = stage.len(), elapsed_ms = started.elapsed().as_millis() as u64, "migration stage applied");
    }
    report.errors.sort_by(|a, b| a.object.cmp(&b.object));
    report
}

/// Where each resource type of the plan is written in green: at its own version (not in the
/// map), or at the version a lossless conversion targets. Err: the report of a plan refused
/// before anything was written, naming every object green cannot take. Discovery is retried
/// like any request (the count is returned).
async fn write_versions(
    green: &Client,
    plan: &Plan,
    options: &MigrationOptions,
) -> Result<(HashMap<ResourceRef, ResourceRef>, Option<u32>, usize), ApplyReport> {
    let refusal = |message: &dyn Fn(&ResourceRef, &PlannedObject) -> Option<String>,
                   refused: Vec<BlockedObject>| ApplyReport {
        total: plan.total(),
        errors: plan
            .objects()
            .filter_map(|(_, r, o)| {
                message(r, o).map(|message| ObjectError {
                    object: describe(r, o),
                    message,
                    code: None,
                })
            })
            .collect(),
        refused,
        ..ApplyReport::default()
    };
    let mut backoff = options.initial_backoff;
    let mut attempt = 0;
    let mut served = loop {
        match ServedVersions::discover(green, "green").await {
            Ok(s) => break s,
            Err(e) if attempt < options.max_retries && retryable(&e).is_some() => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(options.max_backoff);
                attempt += 1;
            }
            Err(e) => {
                let why = format!(
                    "not applied: green's API versions could not be read: {}",
                    crate::api_message(&e)
                );
                let mut report = refusal(&|_, _| Some(why.clone()), Vec::new());
                report.retries = attempt as usize;
                return Err(report);
            }
        }
    };
    // The plan's CRDs are served by the time their objects are written (an earlier stage).
    let crds = plan
        .stages
        .iter()
        .filter(|s| s.stage == Stage::Crds)
        .flat_map(|s| &s.resources)
        .filter(|r| r.resource.kind == "CustomResourceDefinition")
        .flat_map(|r| r.objects.iter().map(|o| &o.body));
    for (group, kind, versions) in crate::versions::crd_versions(crds) {
        served.add(&group, &kind, &versions);
    }
    let mut writes = HashMap::new();
    let mut blocked: HashMap<ResourceRef, String> = HashMap::new();
    let resources: HashSet<&ResourceRef> = plan.objects().map(|(_, r, _)| r).collect();
    for r in resources {
        let version = [r.version.clone()];
        match crate::versions::choose(&r.group, &r.kind, &version, plan.source_minor, &served) {
            VersionChoice::Ok { .. } => {}
            VersionChoice::Convert { to, .. } => {
                tracing::debug!(kind = %r.kind_group(), from = %r.version, %to, "converting");
                let mut to_ref = r.clone();
                to_ref.version = to;
                writes.insert(r.clone(), to_ref);
            }
            VersionChoice::Blocked { reason, .. } => {
                blocked.insert(r.clone(), reason);
            }
        }
    }
    if blocked.is_empty() {
        return Ok((writes, served.minor, attempt as usize));
    }
    let target = served.target();
    let refused: Vec<BlockedObject> = plan
        .objects()
        .filter_map(|(_, r, o)| {
            blocked.get(r).map(|reason| BlockedObject {
                kind: r.kind.clone(),
                namespace: o.namespace.clone(),
                name: o.name.clone(),
                api_version: r.api_version(),
                target: target.clone(),
                reason: reason.clone(),
            })
        })
        .collect();
    let mut report = refusal(
        &|r, _| {
            blocked.get(r).map(|reason| {
                format!(
                    "{} cannot be written to {target}: {reason}; the plan was refused, nothing \
                     was applied",
                    r.api_version()
                )
            })
        },
        refused,
    );
    report.errors.sort_by(|a, b| a.object.cmp(&b.object));
    report.retries = attempt as usize;
    Err(report)
}

/// Green's own judgement of every object of `plan`, nothing stored (server-side dry-run): what
/// only green can know (its admission webhooks and policies, quotas, objects it has already).
/// Objects whose namespace or resource type green does not have yet are not judged here (the
/// rehearsal on green's release judges them). The refusals, by object; Err: green's API
/// versions could not be read.
pub async fn dry_run_on_green(
    green: &Client,
    plan: &Plan,
    options: &MigrationOptions,
) -> Result<Vec<ObjectError>, ApplyReport> {
    let run = Run {
        green,
        options,
        checkpoint: &MemoryCheckpoint::new(),
        limiter: RateLimiter::new(options.qps, options.burst),
        uids: Mutex::new(HashMap::new()),
    };
    let (writes, _, _) = write_versions(green, plan, options).await?;
    let objects: Vec<(&ResourceRef, &ResourceRef, &PlannedObject)> = plan
        .objects()
        .map(|(_, r, o)| (r, writes.get(r).unwrap_or(r), o))
        .collect();
    let run = &run;
    let mut refused: Vec<ObjectError> = futures::stream::iter(objects)
        .map(|(r, at, o)| async move {
            let desired = crate::rehearse::body_at(o, at);
            match run.dry_write(at, o, &desired).await {
                Err(e @ kube::Error::Api(_)) if retryable(&e).is_none() => {
                    Some(object_error(r, o, &e))
                }
                Err(e) => {
                    tracing::debug!(object = %describe(r, o), error = %crate::chain(&e), "green did not judge");
                    None
                }
                Ok(_) => None,
            }
        })
        .buffer_unordered(options.concurrency.max(1))
        .filter_map(|r| async move { r })
        .collect()
        .await;
    refused.sort_by(|a, b| a.object.cmp(&b.object));
    Ok(refused)
}

/// Rehearses the plan on a scratch server of green's release: Err is the report of a plan
/// refused before anything was written, naming every object that release refuses and why.
async fn refuse_what_green_refuses(
    plan: &Plan,
    minor: u32,
    writes: &HashMap<ResourceRef, ResourceRef>,
) -> Result<(), ApplyReport> {
    let refused = match crate::rehearse::rehearse(plan, minor, writes).await {
        Ok(r) => r.refused,
        Err(message) => {
            tracing::warn!(%message, "the plan could not be rehearsed; green judges each object");
            return Ok(());
        }
    };
    if refused.is_empty() {
        return Ok(());
    }
    let errors = refused
        .into_iter()
        .map(|e| ObjectError {
            message: format!(
                "Kubernetes 1.{minor} refuses it: {}; the plan was refused, nothing was applied",
                e.message
            ),
            ..e
        })
        .collect();
    Err(ApplyReport {
        total: plan.total(),
        errors,
        ..ApplyReport::default()
    })
}

fn describe(res: &ResourceRef, obj: &PlannedObject) -> String {
    format!("{} {}", res.kind, obj.qualified_name())
}

fn object_error(res: &ResourceRef, obj: &PlannedObject, e: &kube::Error) -> ObjectError {
    ObjectError {
        object: describe(res, obj),
        message: match e {
            kube::Error::Api(s) => s.message.clone(),
            other => crate::chain(other),
        },
        code: match e {
            kube::Error::Api(s) => Some(s.code),
            _ => None,
        },
    }
}

/// Whether a failed request may succeed when repeated, and whether the server asked to slow down.
fn retryable(e: &kube::Error) -> Option<bool> {
    match e {
        kube::Error::Api(s) if s.code == 429 => Some(true),
        kube::Error::Api(s) if (500..600).contains(&s.code) => Some(false),
        kube::Error::HyperError(_) | kube::Error::Service(_) => Some(false),
        _ => None,
    }
}

impl Run<'_> {
    pub(crate) fn api(&self, res: &ResourceRef, obj: &PlannedObject) -> Api<DynamicObject> {
        let ar = res.api_resource();
        match (&obj.namespace, res.namespaced) {
            (Some(ns), true) => Api::namespaced_with(self.green.clone(), ns, &ar),
            _ => Api::all_with(self.green.clone(), &ar),
        }
    }

    /// Runs `call` under the rate limit, repeating it with backoff while it fails retryably.
    pub(crate) async fn send<T, F, Fut>(&self, mut call: F) -> (Result<T, kube::Error>, usize)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let mut backoff = self.options.initial_backoff;
        let mut retries = 0;
        loop {
            self.limiter.acquire().await;
            match call().await {
                Err(e) if retries < self.options.max_retries as usize => {
                    let Some(throttled) = retryable(&e) else {
                        return (Err(e), retries);
                    };
                    if throttled {
                        self.limiter.penalize(backoff);
                    }
                    // Jitter spreads the retries of a burst that failed together.
                    let pause = backoff.mul_f64(0.5 + rand::random::<f64>() / 2.0);
                    tokio::time::sleep(pause).await;
                    backoff = (backoff * 2).min(self.options.max_backoff);
                    retries += 1;
                }
                other => return (other, retries),
            }
        }
    }

    /// An object recorded by an earlier run: only what later objects need from it is checked
    /// (an owner's uid in green, a CRD being served).
    async fn skip(&self, res: &ResourceRef, obj: &PlannedObject) -> Outcome {
        let mut retries = 0;
        if let Some(src) = &obj.source_uid {
            let api = self.api(res, obj);
            let (got, r) = self.send(|| api.get(&obj.name)).await;
            retries = r;
            match got {
                Ok(o) => {
                    if let Some(uid) = o.uid() {
                        self.remember(src, uid);
                    }
                }
                Err(e) => {
                    return Outcome::Failed {
                        error: object_error(res, obj, &e),
                        retries,
                    };
                }
            }
        }
        if let Err(message) = self.crd_served(res, obj).await {
            return Outcome::Failed {
                error: ObjectError {
                    object: describe(res, obj),
                    message,
                    code: None,
                },
                retries,
            };
        }
        Outcome::Skipped { retries }
    }

    async fn one(&self, res: &ResourceRef, obj: &PlannedObject) -> Outcome {
        let planned = serde_json::to_vec(&obj.body).unwrap_or_default();
        let key = checkpoint_key(res, obj, &planned);
        if self.checkpoint.done(&key) {
            return self.skip(res, obj).await;
        }
        let api_version = res.api_version();
        let blue_version = obj.body["apiVersion"].as_str().unwrap_or_default();
        let converted = blue_version != api_version;
        let desired = match self.with_green_owners(&obj.body) {
            std::borrow::Cow::Borrowed(b) if !converted => std::borrow::Cow::Borrowed(b),
            owners => {
                // Converted: the same fields at the version green serves.
                let mut v = owners.into_owned();
                if converted {
                    v["apiVersion"] = Value::String(api_version.clone());
                }
                std::borrow::Cow::Owned(v)
            }
        };
        let body = match &desired {
            std::borrow::Cow::Borrowed(_) => planned,
            std::borrow::Cow::Owned(v) => serde_json::to_vec(v).unwrap_or_default(),
        };
        let owners = {
            let uids = self.uids.lock().unwrap_or_else(|p| p.into_inner());
            crate::ownership::for_green(&obj.managed_fields, &uids, blue_version, &api_version)
        };
        let mut retries = 0;
        let written = self
            .write(res, obj, &desired, body, &owners, &mut retries)
            .await;
        let error = |message: String, code: Option<u16>| Outcome::Failed {
            error: ObjectError {
                object: describe(res, obj),
                message,
                code,
            },
            retries,
        };
        match written {
            Ok(uid) => {
                if let (Some(src), Some(uid)) = (&obj.source_uid, uid) {
                    self.remember(src, uid);
                }
                if let Err(message) = self.crd_served(res, obj).await {
                    return error(message, None);
                }
                self.checkpoint.record(&key);
                Outcome::Applied { retries }
            }
            Err(WriteError::Api(e)) => Outcome::Failed {
                error: object_error(res, obj, &e),
                retries,
            },
            Err(WriteError::OwnersNotKept { managers }) => error(
                format!(
                    "green kept other owners than blue's after {} attempts (managers now: {})",
                    crate::write::HAND_OVER_ATTEMPTS,
                    managers.join(", ")
                ),
                None,
            ),
        }
    }

    /// For a CRD: waits until green serves it (recorded only then, so a resume checks again).
    async fn crd_served(&self, res: &ResourceRef, obj: &PlannedObject) -> Result<(), String> {
        if res.group == "apiextensions.k8s.io" && res.kind == "CustomResourceDefinition" {
            self.established(&self.api(res, obj), &obj.name).await
        } else {
            Ok(())
        }
    }

    fn remember(&self, blue_uid: &str, green_uid: String) {
        self.uids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(blue_uid.to_string(), green_uid);
    }

    /// The body with its owners' blue uids replaced by green's; a reference to an owner that did
    /// not reach green is dropped (green's garbage collector would delete the object for it).
    fn with_green_owners<'b>(&self, body: &'b Value) -> std::borrow::Cow<'b, Value> {
        let Some(refs) = body
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
        else {
            return std::borrow::Cow::Borrowed(body);
        };
        let uids = self.uids.lock().unwrap_or_else(|p| p.into_inner());
        let mapped: Vec<Value> = refs
            .iter()
            .filter_map(|r| {
                let green = uids.get(r.get("uid")?.as_str()?)?;
                let mut r = r.clone();
                r["uid"] = Value::String(green.clone());
                Some(r)
            })
            .collect();
        let mut out = body.clone();
        if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
            if mapped.is_empty() {
                meta.remove("ownerReferences");
            } else {
                meta.insert("ownerReferences".into(), Value::Array(mapped));
            }
        }
        std::borrow::Cow::Owned(out)
    }

    /// Waits until green serves a CRD (condition Established), so its objects in later stages
    /// are not refused; one that stays unestablished fails instead of holding the run forever.
    async fn established(&self, api: &Api<DynamicObject>, name: &str) -> Result<(), String> {
        let deadline = Instant::now() + self.options.crd_timeout;
        let mut pause = Duration::from_millis(20);
        loop {
            let (got, _) = self.send(|| api.get(name)).await;
            let established = got.as_ref().is_ok_and(|o| {
                o.data
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Established" && c["status"] == "True")
                    })
            });
            if established {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(match got {
                    Err(e) => crate::api_message(&e),
                    Ok(_) => format!(
                        "not Established in green after {}s",
                        self.options.crd_timeout.as_secs()
                    ),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rate_limiter_paces_after_the_burst() {
        let l = RateLimiter::new(200.0, 10);
        let t = Instant::now();
        for _ in 0..30 {
            l.acquire().await;
        }
        // 10 free, 20 more at 200/s: at least ~100 ms.
        assert!(
            t.elapsed() >= Duration::from_millis(90),
            "{:?}",
            t.elapsed()
        );
        let unlimited = RateLimiter::new(0.0, 1);
        let t = Instant::now();
        for _ in 0..1000 {
            unlimited.acquire().await;
        }
        assert!(t.elapsed() < Duration::from_millis(50));
    }

    #[tokio::test]
    async fn penalty_pauses_everyone() {
        let l = RateLimiter::new(1000.0, 100);
        l.penalize(Duration::from_millis(100));
        let t = Instant::now();
        l.acquire().await;
        assert!(t.elapsed() >= Duration::from_millis(90));
    }

    #[test]
    fn checkpoint_keys_follow_content() {
        let res = ResourceRef {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
            plural: "deployments".into(),
            namespaced: true,
        };
        let mut obj = PlannedObject {
            namespace: Some("shop".into()),
            name: "web".into(),
            body: serde_json::json!({"spec": {"replicas": 1}}),
            source_uid: None,
            managed_fields: Vec::new(),
        };
        let key =
            |o: &PlannedObject| checkpoint_key(&res, o, &serde_json::to_vec(&o.body).unwrap());
        let a = key(&obj);
        assert!(a.starts_with("Deployment.apps shop/web "), "{a}");
        assert_eq!(a, key(&obj));
        obj.body["spec"]["replicas"] = 2.into();
        assert_ne!(a, key(&obj));
    }
}
