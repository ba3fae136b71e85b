//! The garbage collector, as kube-controller-manager's: an object whose every owner
//! (`metadata.ownerReferences[].uid`) is gone is deleted; an owner deleted in the foreground
//! (finalizer `foregroundDeletion`) goes once no dependent with `blockOwnerDeletion` is left; an
//! orphaning owner (finalizer `orphan`) first has its entry removed from every dependent.
//!
//! One task per server, fed by a watch on the whole store (so writes from any client of a shared
//! store count) that keeps an index owner uid → dependents; the index is rebuilt from a list at
//! start and whenever the watch fell out of the store's history. The task reads and writes
//! through the server's own methods, holds it only weakly, and ends when the server is dropped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Weak};
use std::time::Duration;

use rotor_store::{DynStore, StoreError, WatchEvent, WatchReceiver};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use super::propagation::{FOREGROUND_FINALIZER, ORPHAN_FINALIZER, Propagation};
use super::*;
use crate::error::ApiResult;

/// Objects read per page while the index is rebuilt.
const LIST_PAGE: usize = 500;
/// Bounds of the backoff before a failed step is tried again.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Dropped with the server: the collector sees its channel close and ends.
pub(super) struct Stop(#[allow(dead_code)] watch::Sender<()>);

/// Starts the collector of `server` over its store.
pub(super) fn spawn(server: &Arc<ApiServer>, stop: watch::Receiver<()>) {
    let store = server.store.clone();
    let weak = Arc::downgrade(server);
    tokio::spawn(run(weak, store, stop));
}

/// A stop channel for [`spawn`]: the sender lives in the server.
pub(super) fn stop_channel() -> (Stop, watch::Receiver<()>) {
    let (tx, rx) = watch::channel(());
    (Stop(tx), rx)
}

/// One owner reference as the collector needs it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct OwnerRef {
    #[serde(default)]
    uid: String,
    #[serde(default, rename = "blockOwnerDeletion")]
    block: Option<bool>,
}

/// The metadata the index keeps, decoded without the rest of the object.
#[derive(Debug, Default, Deserialize)]
struct Head {
    #[serde(default)]
    uid: String,
    #[serde(default, rename = "ownerReferences")]
    owners: Vec<OwnerRef>,
    #[serde(default, rename = "deletionTimestamp")]
    deletion: Option<Value>,
    #[serde(default)]
    finalizers: Vec<String>,
}

impl Head {
    fn parse(bytes: &[u8]) -> Head {
        #[derive(Deserialize)]
        struct Top {
            #[serde(default)]
            metadata: Option<Head>,
        }
        serde_json::from_slice::<Top>(bytes)
            .ok()
            .and_then(|t| t.metadata)
            .unwrap_or_default()
    }

    /// Waiting for the collector: being deleted with one of its finalizers.
    fn gc_pending(&self) -> bool {
        self.deletion.as_ref().is_some_and(|d| !d.is_null())
            && self
                .finalizers
                .iter()
                .any(|f| f == ORPHAN_FINALIZER || f == FOREGROUND_FINALIZER)
    }
}

/// A unit of work, by store key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Work {
    /// Is a dependent's every owner gone? Then delete it (or drop references to dead owners).
    Collect(String),
    /// An owner with a collector finalizer: orphan its dependents or wait for them, then let go.
    Finalize(String),
}

/// What the watch has shown: who owns whom, and who waits for the collector.
#[derive(Default)]
struct Index {
    /// Dependent key → its owner references.
    owners: HashMap<String, Vec<OwnerRef>>,
    /// Owner uid → keys of the objects that name it.
    dependents: HashMap<String, HashSet<String>>,
    /// uid ↔ key of the objects being deleted with a collector finalizer.
    pending: HashMap<String, String>,
    pending_keys: HashMap<String, String>,
}

impl Index {
    /// Records `key`'s owners; returns the previous ones.
    fn set_owners(&mut self, key: &str, owners: Vec<OwnerRef>) -> Vec<OwnerRef> {
        let old = match owners.is_empty() {
            true => self.owners.remove(key),
            false => self.owners.insert(key.to_string(), owners.clone()),
        }
        .unwrap_or_default();
        for o in &old {
            if let Some(set) = self.dependents.get_mut(&o.uid) {
                set.remove(key);
                if set.is_empty() {
                    self.dependents.remove(&o.uid);
                }
            }
        }
        for o in owners {
            self.dependents
                .entry(o.uid)
                .or_default()
                .insert(key.to_string());
        }
        old
    }

    fn dependents_of(&self, uid: &str) -> Vec<String> {
        self.dependents
            .get(uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn set_pending(&mut self, key: &str, uid: Option<&str>) {
        if let Some(old) = self.pending_keys.remove(key) {
            self.pending.remove(&old);
        }
        if let Some(uid) = uid {
            self.pending.insert(uid.to_string(), key.to_string());
            self.pending_keys.insert(key.to_string(), uid.to_string());
        }
    }
}

/// The collector's state: the index, the queue and the retries.
#[derive(Default)]
struct Collector {
    index: Index,
    queue: VecDeque<Work>,
    queued: HashSet<Work>,
    /// Failed work, due again at the instant, with its failure count.
    retry: HashMap<Work, (Instant, u32)>,
}

/// Why a step must be tried again.
#[derive(Debug)]
struct Retry(String);

impl From<ApiError> for Retry {
    fn from(e: ApiError) -> Self {
        Retry(e.message)
    }
}

async fn run(weak: Weak<ApiServer>, store: DynStore, mut stop: watch::Receiver<()>) {
    let mut gc = Collector::default();
    let mut backoff = RETRY_FIRST;
    loop {
        let started = tokio::select! {
            _ = stop.changed() => return,
            r = gc.rebuild(&store) => r,
        };
        let (mut rx, mut last) = match started {
            Ok(watching) => watching,
            Err(e) => {
                tracing::warn!(error = %e, "garbage collector: listing the store");
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(RETRY_MAX);
                continue;
            }
        };
        backoff = RETRY_FIRST;
        loop {
            let due = gc.next_due();
            tokio::select! {
                biased;
                _ = stop.changed() => return,
                event = rx.recv() => match event {
                    Some(event) => {
                        last = event.revision();
                        gc.observe(&event);
                    }
                    // Fell behind the watch buffer: resume, or rebuild if history moved on.
                    None => match store.watch("/", last).await {
                        Ok(next) => rx = next,
                        Err(_) => break,
                    },
                },
                _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    let Some(server) = weak.upgrade() else { return };
                    gc.step(&server).await;
                }
            }
        }
    }
}

impl Collector {
    /// Forgets everything, reads the whole store into the index, and watches from there.
    async fn rebuild(&mut self, store: &DynStore) -> Result<(WatchReceiver, u64), StoreError> {
        *self = Collector::default();
        let revision = store.current_revision().await?;
        let mut after: Option<String> = None;
        loop {
            let page = store.list("/", after.as_deref(), LIST_PAGE).await?;
            for kv in &page.items {
                self.observe_put(&kv.key, &kv.value);
            }
            after = page.items.last().map(|kv| kv.key.clone());
            if !page.more || after.is_none() {
                break;
            }
        }
        Ok((store.watch("/", revision).await?, revision))
    }

    fn push(&mut self, work: Work) {
        if self.queued.insert(work.clone()) {
            self.queue.push_back(work);
        }
    }

    /// When the next step is due: now when work is queued, else the earliest retry.
    fn next_due(&self) -> Option<Instant> {
        if !self.queue.is_empty() {
            return Some(Instant::now());
        }
        self.retry.values().map(|(at, _)| *at).min()
    }

    fn observe(&mut self, event: &WatchEvent) {
        match event {
            WatchEvent::Put { kv, .. } => self.observe_put(&kv.key, &kv.value),
            WatchEvent::Delete { prev, .. } => self.observe_delete(&prev.key, &prev.value),
        }
    }

    fn observe_put(&mut self, key: &str, value: &[u8]) {
        let relevant = contains(value, b"\"ownerReferences\"")
            || contains(value, b"\"deletionTimestamp\"")
            || self.index.owners.contains_key(key)
            || self.index.pending_keys.contains_key(key);
        if !relevant {
            return;
        }
        let head = Head::parse(value);
        let old = self.index.set_owners(key, head.owners.clone());
        if old != head.owners {
            if !head.owners.is_empty() {
                self.push(Work::Collect(key.to_string()));
            }
            // An owner waiting in the foreground may just have lost a blocking dependent.
            self.wake_owners(old.iter().chain(&head.owners));
        }
        if head.gc_pending() && !head.uid.is_empty() {
            let newly = !self.index.pending.contains_key(&head.uid);
            self.index.set_pending(key, Some(&head.uid));
            if newly && head.finalizers.iter().any(|f| f == FOREGROUND_FINALIZER) {
                for dep in self.index.dependents_of(&head.uid) {
                    self.push(Work::Collect(dep));
                }
            }
            self.push(Work::Finalize(key.to_string()));
        } else {
            self.index.set_pending(key, None);
        }
    }

    fn observe_delete(&mut self, key: &str, value: &[u8]) {
        let head = Head::parse(value);
        let old = self.index.set_owners(key, Vec::new());
        self.wake_owners(old.iter());
        self.index.set_pending(key, None);
        if !head.uid.is_empty() {
            for dep in self.index.dependents_of(&head.uid) {
                self.push(Work::Collect(dep));
            }
        }
    }

    fn wake_owners<'a>(&mut self, refs: impl Iterator<Item = &'a OwnerRef>) {
        let owners: Vec<String> = refs
            .filter_map(|r| self.index.pending.get(&r.uid).cloned())
            .collect();
        for key in owners {
            self.push(Work::Finalize(key));
        }
    }

    /// Runs the first due piece of work; a failure is retried with backoff.
    async fn step(&mut self, server: &Arc<ApiServer>) {
        let now = Instant::now();
        let due: Vec<Work> = self
            .retry
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(w, _)| w.clone())
            .collect();
        for work in due {
            self.push(work);
        }
        let Some(work) = self.queue.pop_front() else {
            return;
        };
        self.queued.remove(&work);
        let result = match &work {
            Work::Collect(key) => self.collect(server, key).await,
            Work::Finalize(key) => self.finalize(server, key).await,
        };
        match result {
            Ok(()) => {
                self.retry.remove(&work);
            }
            Err(Retry(why)) => {
                let failures = self.retry.get(&work).map_or(0, |(_, n)| *n) + 1;
                if failures.is_power_of_two() {
                    tracing::warn!(?work, failures, error = %why, "garbage collector: will retry");
                }
                let wait = RETRY_FIRST
                    .saturating_mul(1 << failures.min(10))
                    .min(RETRY_MAX);
                self.retry.insert(work, (Instant::now() + wait, failures));
            }
        }
    }

    /// A dependent: deleted when none of its owners exists (in the policy its own finalizers
    /// ask for; in the foreground when an owner waits for it and it has dependents itself);
    /// references to absent or foreground-deleting owners dropped when another owner lives.
    async fn collect(&self, server: &Arc<ApiServer>, key: &str) -> Result<(), Retry> {
        let Some(found) = server.locate(key).await? else {
            return Ok(());
        };
        if object::is_deleting(&found.object) {
            return Ok(());
        }
        let refs = owner_refs(&found.object);
        if refs.is_empty() {
            return Ok(());
        }
        let mut solid = false;
        let mut drop_uids = HashSet::new();
        let mut waiting = false;
        for r in &refs {
            match server.owner_state(&found, r).await? {
                OwnerState::Solid => solid = true,
                OwnerState::Absent => {
                    drop_uids.insert(ref_uid(r).to_string());
                }
                OwnerState::Waiting => {
                    waiting = true;
                    drop_uids.insert(ref_uid(r).to_string());
                }
            }
        }
        if solid {
            if drop_uids.is_empty() {
                return Ok(());
            }
            return server.drop_owner_refs(&found, &drop_uids).await;
        }
        let uid = object::meta_str(&found.object, "uid").unwrap_or_default();
        let finalizers = object::finalizers(&found.object);
        let policy = if waiting && !self.index.dependents_of(uid).is_empty() {
            Propagation::Foreground
        } else if finalizers.iter().any(|f| f == ORPHAN_FINALIZER) {
            Propagation::Orphan
        } else if finalizers.iter().any(|f| f == FOREGROUND_FINALIZER) {
            Propagation::Foreground
        } else {
            Propagation::Background
        };
        tracing::debug!(key, policy = policy.as_str(), "garbage collector: deleting");
        let options = json!({"propagationPolicy": policy.as_str(), "preconditions": {"uid": uid}});
        match server
            .delete_object(
                &found.res,
                found.ns.as_deref(),
                &found.name,
                &options,
                false,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.reason == "NotFound" => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// An owner being deleted with a collector finalizer: `orphan` releases every dependent
    /// then goes; `foregroundDeletion` goes once no dependent blocks it.
    async fn finalize(&self, server: &Arc<ApiServer>, key: &str) -> Result<(), Retry> {
        let Some(found) = server.locate(key).await? else {
            return Ok(());
        };
        if !object::is_deleting(&found.object) {
            return Ok(());
        }
        let uid = object::meta_str(&found.object, "uid")
            .unwrap_or_default()
            .to_string();
        let finalizers = object::finalizers(&found.object);
        let release = if finalizers.iter().any(|f| f == ORPHAN_FINALIZER) {
            let only = HashSet::from([uid.clone()]);
            for dep in self.index.dependents_of(&uid) {
                if let Some(d) = server.locate(&dep).await? {
                    server.drop_owner_refs(&d, &only).await?;
                }
            }
            ORPHAN_FINALIZER
        } else if finalizers.iter().any(|f| f == FOREGROUND_FINALIZER) {
            for dep in self.index.dependents_of(&uid) {
                let Some(d) = server.locate(&dep).await? else {
                    continue;
                };
                let blocks = owner_refs(&d.object)
                    .iter()
                    .any(|r| ref_uid(r) == uid && r["blockOwnerDeletion"] == json!(true));
                if blocks {
                    return Ok(());
                }
            }
            FOREGROUND_FINALIZER
        } else {
            return Ok(());
        };
        server.remove_finalizer(&found, release).await
    }
}

/// An object found by its store key.
struct Found {
    res: Arc<Resource>,
    ns: Option<String>,
    name: String,
    object: Value,
    rev: u64,
}

/// What an owner reference points at.
enum OwnerState {
    /// The owner exists (or cannot be resolved: then it is never presumed gone).
    Solid,
    /// No object of that kind, namespace, name and uid.
    Absent,
    /// The owner is being deleted in the foreground: it waits for this dependent.
    Waiting,
}

impl ApiServer {
    /// The object stored at `key`, with the resource it belongs to.
    async fn locate(&self, key: &str) -> Result<Option<Found>, Retry> {
        let Some(res) = self
            .registry
            .all()
            .into_iter()
            .find(|r| key.starts_with(&r.key_prefix()))
        else {
            return Ok(None);
        };
        let rest = &key[res.key_prefix().len()..];
        let (ns, name) = match (res.namespaced, rest.split_once('/')) {
            (true, Some((ns, name))) => (Some(ns.to_string()), name.to_string()),
            (true, None) => return Ok(None),
            (false, _) => (None, rest.to_string()),
        };
        match self.get_kv(&res, ns.as_deref(), &name).await {
            Ok((object, rev)) => Ok(Some(Found {
                res,
                ns,
                name,
                object,
                rev,
            })),
            Err(e) if e.reason == "NotFound" => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Resolves one of `dep`'s owner references as upstream does: a namespaced owner in the
    /// dependent's namespace, matched by uid; a cluster-scoped dependent cannot name a
    /// namespaced owner (that reference is never resolved, so never found absent).
    async fn owner_state(&self, dep: &Found, r: &Value) -> Result<OwnerState, Retry> {
        let api_version = r["apiVersion"].as_str().unwrap_or_default();
        let kind = r["kind"].as_str().unwrap_or_default();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let all = self.registry.all();
        let res = all
            .iter()
            .find(|x| x.group == group && x.version == version && x.kind == kind)
            .or_else(|| all.iter().find(|x| x.group == group && x.kind == kind));
        let Some(res) = res else {
            return Ok(OwnerState::Solid);
        };
        if res.namespaced && dep.ns.is_none() {
            return Ok(OwnerState::Solid);
        }
        let name = r["name"].as_str().unwrap_or_default();
        let owner = match self.get_kv(res, dep.ns.as_deref(), name).await {
            Ok((owner, _)) => owner,
            Err(e) if e.reason == "NotFound" => return Ok(OwnerState::Absent),
            Err(e) => return Err(e.into()),
        };
        if object::meta_str(&owner, "uid") != Some(ref_uid(r)) {
            return Ok(OwnerState::Absent);
        }
        let waits = object::is_deleting(&owner)
            && object::finalizers(&owner)
                .iter()
                .any(|f| f == FOREGROUND_FINALIZER);
        Ok(match waits {
            true => OwnerState::Waiting,
            false => OwnerState::Solid,
        })
    }

    /// Removes from `found`'s ownerReferences the entries naming `uids`.
    async fn drop_owner_refs(&self, found: &Found, uids: &HashSet<String>) -> Result<(), Retry> {
        let refs = owner_refs(&found.object);
        let kept: Vec<Value> = refs
            .iter()
            .filter(|r| !uids.contains(ref_uid(r)))
            .cloned()
            .collect();
        if kept.len() == refs.len() {
            return Ok(());
        }
        let mut next = found.object.clone();
        let m = meta_mut(&mut next);
        match kept.is_empty() {
            true => m.remove("ownerReferences"),
            false => m.insert("ownerReferences".into(), Value::Array(kept)),
        };
        self.write_back(found, next).await
    }

    /// Removes one finalizer from `found` (which then goes, if it was the last one).
    async fn remove_finalizer(&self, found: &Found, finalizer: &str) -> Result<(), Retry> {
        let kept: Vec<String> = object::finalizers(&found.object)
            .into_iter()
            .filter(|f| f != finalizer)
            .collect();
        let mut next = found.object.clone();
        let m = meta_mut(&mut next);
        match kept.is_empty() {
            true => m.remove("finalizers"),
            false => m.insert("finalizers".into(), json!(kept)),
        };
        self.write_back(found, next).await
    }

    /// Writes `next` over `found` if it has not changed since it was read.
    async fn write_back(&self, found: &Found, next: Value) -> Result<(), Retry> {
        let opts = WriteOptions {
            field_manager: "generic-garbage-collector".into(),
            ..WriteOptions::default()
        };
        let result: ApiResult<Value> = self
            .commit_update(
                &found.res,
                found.ns.as_deref(),
                &found.name,
                found.object.clone(),
                next,
                found.rev,
                &opts,
            )
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.reason == "NotFound" => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

fn owner_refs(obj: &Value) -> Vec<Value> {
    object::meta(obj)
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn ref_uid(r: &Value) -> &str {
    r["uid"].as_str().unwrap_or_default()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
