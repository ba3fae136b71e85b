//! The swap's migration step: the migration engine (`rotor-migration`) planned against blue,
//! applied to green with server-side apply stage by stage, resumable through a durable
//! checkpoint of what is in green, kept in the control plane. This module is the seam: the swap controller sees only [`migrate`] and its
//! [`Outcome`]; readiness is judged afterwards from green's workloads (Verifying).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use rotor_api::{MigrationPolicy, WorkloadSelector};
use rotor_migration::{Checkpoint, MigrationOptions};

use crate::Error;
use crate::metrics::MigrationStage;
use crate::tasks::Progress;

/// What one migration run ended with.
pub enum Outcome {
    /// Every selected object is in green; `resumed` of them were already there by the
    /// checkpoint (applied before a crash or a failed attempt).
    Done {
        total: u32,
        applied: u32,
        resumed: u32,
    },
    /// Green refused objects, or the plan itself is refused (stateful workloads): retrying the
    /// same run will not help. The message names the objects.
    Refused(String),
}

/// Namespace of the control plane that holds the migration checkpoints.
pub const CHECKPOINT_NAMESPACE: &str = "rotor-system";
/// How often a running migration writes its checkpoint (a crash loses at most this much work).
const FLUSH_EVERY: Duration = Duration::from_millis(500);

/// Durable checkpoints, one per green instance: the keys of the objects already in that green
/// (each key carries a fingerprint of the object's body, so a changed object is applied again),
/// kept in memory and written to a ConfigMap `rotor-system/migration-<green>` of the control
/// plane while the migration runs. A restarted `rotor serve` resumes the migration where it
/// stopped instead of applying everything again. Keys are stored as 64-bit hashes so 10,000
/// objects stay ~170 kB.
///
/// Keyed by green, not by swap: a swap run again under the same name (`rotor rollout retry`)
/// has a new green, and objects recorded in a deleted green must not count as in the new one.
#[derive(Default)]
pub struct Checkpoints {
    by_green: Mutex<HashMap<String, Arc<DurableCheckpoint>>>,
}

/// The checkpoint of one green instance's migration.
pub struct DurableCheckpoint {
    name: String,
    keys: Mutex<HashSet<u64>>,
    dirty: AtomicBool,
    /// Whether the ConfigMap exists in the control plane: found when loaded, or written since.
    /// A migration that ends before its first flush never writes one, nor deletes one.
    durable: AtomicBool,
    /// Keys found in the ConfigMap when it was loaded (work done before a restart).
    pub loaded: usize,
}

fn fnv(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// `migration-<green>`, shortened with a hash when longer than a name may be.
pub fn checkpoint_name(green: &str) -> String {
    let full = format!("migration-{green}");
    if full.len() <= 253 {
        return full;
    }
    format!("migration-{:016x}", fnv(green))
}

impl Checkpoint for DurableCheckpoint {
    fn done(&self, key: &str) -> bool {
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&fnv(key))
    }

    fn record(&self, key: &str) {
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(fnv(key));
        self.dirty.store(true, Ordering::Release);
    }
}

impl DurableCheckpoint {
    /// Number of objects recorded.
    pub fn len(&self) -> usize {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    async fn load(client: &Client, green: &str) -> Result<Self, Error> {
        let name = checkpoint_name(green);
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), CHECKPOINT_NAMESPACE);
        let found = api.get_opt(&name).await?;
        let durable = found.is_some();
        let keys: HashSet<u64> = found
            .and_then(|cm| cm.data)
            .and_then(|d| d.get("objects").cloned())
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|h| u64::from_str_radix(h, 16).ok())
            .collect();
        Ok(Self {
            name,
            loaded: keys.len(),
            keys: Mutex::new(keys),
            dirty: AtomicBool::new(false),
            durable: AtomicBool::new(durable),
        })
    }

    /// Whether the checkpoint is in the control plane (see [`DurableCheckpoint::flush`]).
    pub fn is_durable(&self) -> bool {
        self.durable.load(Ordering::Acquire)
    }

    /// Writes the recorded keys if anything changed since the last write.
    async fn flush(&self, client: &Client) -> Result<(), Error> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let mut keys: Vec<u64> = self
            .keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        keys.sort_unstable();
        let mut objects = String::with_capacity(keys.len() * 17);
        for k in keys {
            objects.push_str(&format!("{k:016x}\n"));
        }
        let cm = serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.name,
                "namespace": CHECKPOINT_NAMESPACE,
                "labels": {"app.kubernetes.io/managed-by": "rotor"},
            },
            "data": {"objects": objects},
        });
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), CHECKPOINT_NAMESPACE);
        let params = PatchParams::apply(rotor_migration::FIELD_MANAGER).force();
        let result = match api.patch(&self.name, &params, &Patch::Apply(&cm)).await {
            Err(kube::Error::Api(e)) if e.code == 404 => {
                ensure_namespace(client).await?;
                api.patch(&self.name, &params, &Patch::Apply(&cm)).await
            }
            other => other,
        };
        if let Err(e) = result {
            self.dirty.store(true, Ordering::Release);
            return Err(e.into());
        }
        self.durable.store(true, Ordering::Release);
        Ok(())
    }
}

async fn ensure_namespace(client: &Client) -> Result<(), Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": CHECKPOINT_NAMESPACE},
    }))
    .expect("a valid Namespace");
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

impl Checkpoints {
    /// Green's checkpoint, loaded from the control plane on first use in this process.
    pub async fn get(&self, client: &Client, green: &str) -> Result<Arc<DurableCheckpoint>, Error> {
        if let Some(c) = self
            .by_green
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(green)
        {
            return Ok(c.clone());
        }
        let loaded = Arc::new(DurableCheckpoint::load(client, green).await?);
        let mut map = self.by_green.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.clear();
        }
        Ok(map.entry(green.to_string()).or_insert(loaded).clone())
    }

    /// Drops green's checkpoint, here and in the control plane (the migration is done, or the
    /// swap is over). One this process knows was never written is not deleted.
    pub async fn forget(&self, client: &Client, green: &str) {
        let known = self
            .by_green
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(green);
        if known.is_some_and(|c| !c.is_durable()) {
            return;
        }
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), CHECKPOINT_NAMESPACE);
        if let Err(e) = api
            .delete(&checkpoint_name(green), &DeleteParams::default())
            .await
            && !matches!(&e, kube::Error::Api(s) if s.code == 404)
        {
            tracing::debug!(%green, error = %e, "deleting the migration checkpoint failed");
        }
    }
}

/// One member-cluster instance as the migration sees it.
#[derive(Clone)]
pub struct Member {
    pub client: Client,
    pub name: String,
}

/// One swap's migration, owning what it needs so that it can run as a task
/// ([`crate::tasks`]) outside the reconcile.
#[derive(Clone)]
pub struct Job {
    /// The control plane's API, where the checkpoint lives.
    pub control: Client,
    pub swap: String,
    pub blue: Member,
    pub green: Member,
    pub workloads: WorkloadSelector,
    pub policy: MigrationPolicy,
    /// Where each stage's duration goes.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// A checkpoint that also counts progress: objects found done (applied before a restart) and
/// objects applied now.
struct Counted<'a> {
    inner: &'a DurableCheckpoint,
    progress: &'a Progress,
}

impl Checkpoint for Counted<'_> {
    fn done(&self, key: &str) -> bool {
        let done = self.inner.done(key);
        if done {
            self.progress.add_done(1);
        }
        done
    }

    fn record(&self, key: &str) {
        self.inner.record(key);
        self.progress.add_done(1);
    }
}

impl Job {
    /// Plans against blue and applies to green, counting into `progress`.
    pub async fn run(
        self,
        checkpoints: &Checkpoints,
        progress: &Progress,
    ) -> Result<Outcome, Error> {
        let options = MigrationOptions {
            policy: self.policy.clone(),
            workloads: self.workloads.clone(),
            allow_stateful: self.policy.stateful_data.allows_migration(),
            ..MigrationOptions::default()
        };
        // Green's checkpoint loads while blue is read: neither needs the other.
        let (plan, checkpoint) = tokio::join!(self.plan(&options), self.checkpoint(checkpoints));
        let plan = match plan? {
            Ok(plan) => plan,
            Err(refused) => return Ok(Outcome::Refused(refused)),
        };
        let checkpoint = checkpoint?;
        progress.set_total(plan.total() as u32);
        let report = self.apply(&plan, &options, &checkpoint, progress).await?;
        judge(&self.green.name, report)
    }

    /// The plan against blue; `Ok(Err)`: refused for good (stateful workloads).
    async fn plan(
        &self,
        options: &MigrationOptions,
    ) -> Result<Result<rotor_migration::Plan, String>, Error> {
        let started = Instant::now();
        let plan = match rotor_migration::plan(&self.blue.client, options).await {
            Ok(plan) => plan,
            Err(e @ rotor_migration::Error::Stateful { .. }) => return Ok(Err(e.to_string())),
            Err(e) => {
                return Err(Error::Member {
                    instance: self.blue.name.clone(),
                    message: format!("planning the migration: {e}"),
                });
            }
        };
        self.took(MigrationStage::Plan, started);
        Ok(Ok(plan))
    }

    /// Green's checkpoint, loaded from the control plane on first use.
    async fn checkpoint(&self, checkpoints: &Checkpoints) -> Result<Arc<DurableCheckpoint>, Error> {
        let started = Instant::now();
        let checkpoint = checkpoints.get(&self.control, &self.green.name).await?;
        self.took(MigrationStage::Checkpoint, started);
        Ok(checkpoint)
    }

    /// Applies `plan` to green, flushing the checkpoint as it goes and, once it has been
    /// written, at the end (one that ends before its first flush leaves none behind: a
    /// migration cut off then starts over, which loses less than a flush's worth).
    async fn apply(
        &self,
        plan: &rotor_migration::Plan,
        options: &MigrationOptions,
        checkpoint: &DurableCheckpoint,
        progress: &Progress,
    ) -> Result<rotor_migration::ApplyReport, Error> {
        let started = Instant::now();
        let counted = Counted {
            inner: checkpoint,
            progress,
        };
        let apply = rotor_migration::apply(&self.green.client, plan, options, &counted);
        tokio::pin!(apply);
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.tick().await;
        let report = loop {
            tokio::select! {
                report = &mut apply => break report,
                _ = tick.tick() => {
                    if let Err(e) = checkpoint.flush(&self.control).await {
                        tracing::debug!(swap = %self.swap, error = %e, "writing the migration checkpoint failed");
                    }
                }
            }
        };
        if checkpoint.is_durable() {
            checkpoint.flush(&self.control).await?;
        }
        self.took(MigrationStage::Apply, started);
        Ok(report)
    }

    fn took(&self, stage: MigrationStage, since: Instant) {
        let seconds = since.elapsed().as_secs_f64();
        self.metrics.migration_stage(stage, seconds);
        tracing::debug!(swap = %self.swap, stage = stage.as_str(), seconds, "migration stage");
    }
}

/// What an apply's report means for the swap: done, refused for good (retrying the same plan
/// cannot help), or an error worth retrying.
fn judge(green: &str, report: rotor_migration::ApplyReport) -> Result<Outcome, Error> {
    let first =
        |items: Vec<String>, n: usize| items.into_iter().take(n).collect::<Vec<_>>().join("; ");
    // Objects green serves no version of (and none converts losslessly): nothing was written.
    if !report.refused.is_empty() {
        return Ok(Outcome::Refused(format!(
            "green {green} cannot take {} objects at any version rotor can convert them to: {}",
            report.refused.len(),
            first(report.refused.iter().map(|b| b.to_string()).collect(), 5)
        )));
    }
    if report.is_complete() {
        return Ok(Outcome::Done {
            total: report.total as u32,
            applied: (report.applied + report.skipped) as u32,
            resumed: report.skipped as u32,
        });
    }
    // A 4xx other than conflict/throttling is green saying no: the same request stays refused.
    let refused: Vec<String> = report
        .errors
        .iter()
        .filter(|e| {
            e.code
                .is_some_and(|c| (400..500).contains(&c) && c != 409 && c != 429)
        })
        .map(|e| e.to_string())
        .collect();
    if !refused.is_empty() {
        return Ok(Outcome::Refused(format!(
            "green {green} refused {} objects: {}",
            refused.len(),
            first(refused, 5)
        )));
    }
    Err(Error::Member {
        instance: green.to_string(),
        message: format!(
            "applied {}/{} objects; {}",
            report.applied + report.skipped,
            report.total,
            first(report.errors.iter().map(|e| e.to_string()).collect(), 3)
        ),
    })
}
