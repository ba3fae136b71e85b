//! Discovery: what is true in each member-cluster instance right now, learnt from watches so a
//! controller hears of a change within milliseconds instead of at its next poll.
//!
//! One watcher set per physical instance (Nodes, Deployments, StatefulSets, DaemonSets,
//! PodDisruptionBudgets, on kube-runtime's `watcher`) plus `/version` probes fold into a
//! [`Summary`]; every summary change is announced on [`Discovery::changes`], so a controller
//! can re-queue the Cluster using that instance (kube-runtime's `reconcile_on`).
//!
//! Reliability: each watch reconnects with kube-runtime's jittered default backoff and relists
//! on 410; a watchdog probes `/version` when an instance falls silent (no event, no bookmark,
//! no answer) and calls it unreachable when the probe fails; a jittered periodic relist repairs
//! anything a watch could have missed; start-up and resync lists wait for one of a bounded
//! number of slots, so a thousand instances do not all list at once.
//!
//! Memory: objects are decoded into trimmed types and kept as a few integers each (see
//! `objects.rs`); nothing else of an object stays in memory.

mod instance;
mod objects;
mod state;
mod tap;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use rotor_api::WorkloadSelector;
use tokio::sync::{Semaphore, broadcast};

/// Namespaces that belong to the cluster, never to an application.
pub const SYSTEM_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

/// How discovery watches; the defaults suit a real fleet, tests shorten the times.
#[derive(Clone, Debug)]
pub struct Settings {
    /// An instance heard nothing from for this long (no event, no bookmark, no answer) gets a
    /// `/version` probe; a failed probe marks it unreachable. Also how long a watch may keep
    /// failing before its kind's data is reported stale.
    pub silence: Duration,
    /// Bounds each `/version` probe: an API that accepts connections but never answers is
    /// unreachable after `silence + probe_timeout`.
    pub probe_timeout: Duration,
    /// How often an unreachable instance is probed again (its watches back off on their own).
    pub unreachable_probe_interval: Duration,
    /// How often the server version is read again on an instance that is otherwise healthy.
    pub version_refresh: Duration,
    /// A full relist of every kind, jittered ±25 %, repairs whatever a watch could have missed;
    /// zero turns it off.
    pub resync: Duration,
    /// Instances listing at the same time (start-up, resync, recovery): bounds the load on this
    /// process and on shared API endpoints when a whole fleet (re)starts.
    pub concurrent_lists: usize,
    /// Capacity of the change channel; a receiver that falls further behind gets `Lagged` and
    /// should re-check every instance.
    pub changes_capacity: usize,
    /// How many objects a reason names before it says "and N more".
    pub named_objects: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            silence: Duration::from_secs(15),
            probe_timeout: Duration::from_secs(5),
            unreachable_probe_interval: Duration::from_secs(2),
            version_refresh: Duration::from_secs(300),
            resync: Duration::from_secs(30 * 60),
            concurrent_lists: 64,
            changes_capacity: 4096,
            named_objects: 5,
        }
    }
}

/// Which workloads (and PDBs) of an instance count: those every selector selects, never those
/// in [`SYSTEM_NAMESPACES`]. The default selects every application namespace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selection {
    all_of: Vec<WorkloadSelector>,
}

impl Selection {
    pub fn everything() -> Self {
        Selection::default()
    }

    /// The intersection of `selectors` (e.g. the Cluster's `spec.workloads` and a swap's
    /// migration policy).
    ///
    /// A selector that selects everything is left out, so equal selections compare equal
    /// (the Cluster's selector alone, or with a swap's default policy).
    pub fn all_of(selectors: impl IntoIterator<Item = WorkloadSelector>) -> Self {
        Selection {
            all_of: selectors
                .into_iter()
                .filter(|s| *s != WorkloadSelector::default())
                .collect(),
        }
    }

    pub fn selects(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        !SYSTEM_NAMESPACES.contains(&namespace)
            && self
                .all_of
                .iter()
                .all(|s| s.selects_namespace(namespace) && s.selects_labels(labels))
    }

    /// A field selector that lets the server drop what the selection never takes, so those
    /// objects are neither sent nor decoded. The selection is still checked on every object.
    pub(crate) fn field_selector(&self) -> String {
        if let Some(ns) = self
            .all_of
            .iter()
            .find(|s| s.include_namespaces.len() == 1)
            .map(|s| &s.include_namespaces[0])
        {
            return format!("metadata.namespace={ns}");
        }
        let mut out: Vec<&str> = SYSTEM_NAMESPACES.to_vec();
        for s in &self.all_of {
            out.extend(s.exclude_namespaces.iter().map(String::as_str));
        }
        out.sort_unstable();
        out.dedup();
        out.iter()
            .map(|ns| format!("metadata.namespace!={ns}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The label selectors as one server-side selector; None when there are none or one cannot
    /// be expressed (the client-side check then does all the work).
    pub(crate) fn label_selector(&self) -> Option<String> {
        let mut parts = Vec::new();
        for s in &self.all_of {
            if let Some(ls) = &s.label_selector {
                let sel = kube::core::Selector::try_from(ls.clone()).ok()?;
                let text = sel.to_string();
                if !text.is_empty() {
                    parts.push(text);
                }
            }
        }
        (!parts.is_empty()).then(|| parts.join(","))
    }
}

impl From<WorkloadSelector> for Selection {
    fn from(s: WorkloadSelector) -> Self {
        Selection::all_of([s])
    }
}

/// What discovery knows of one instance. Counts are the last known ones even while the
/// instance is unreachable; [`healthy`](Self::healthy) says whether to trust them.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// The API answered recently (an event, a bookmark, or a `/version` probe).
    pub reachable: bool,
    /// Every kind has been listed completely at least once.
    pub synced: bool,
    /// `/version`'s `gitVersion` (e.g. `v1.34.0`).
    pub server_version: Option<String>,
    /// `/version`'s minor (e.g. 34).
    pub server_minor: Option<u32>,
    pub nodes_ready: u32,
    pub nodes_total: u32,
    /// Selected Deployments, StatefulSets and DaemonSets that have rolled out their current
    /// generation with every replica available.
    pub workloads_available: u32,
    pub workloads_total: u32,
    /// Selected PodDisruptionBudgets, and those allowing no disruption now (a drain would
    /// wait on them). Informational: they do not make an instance unhealthy.
    pub pdbs_total: u32,
    pub pdbs_blocking: u32,
    /// When any other field of this summary last changed.
    pub last_change: SystemTime,
    /// Why the instance is not healthy, naming objects (`Deployment demo-app/web: 1/2
    /// available`); None when healthy.
    pub reason: Option<String>,
}

impl Summary {
    /// Reachable, listed, every node Ready, every selected workload available, no watch
    /// failing for long.
    pub fn healthy(&self) -> bool {
        self.reason.is_none()
    }
}

/// The discovery service: watcher sets by instance name, their summaries, and the channel
/// announcing summary changes.
pub struct Discovery {
    shared: Arc<instance::Shared>,
    next_id: AtomicU64,
}

impl Discovery {
    pub fn new(settings: Settings) -> Arc<Discovery> {
        let (changes, _) = broadcast::channel(settings.changes_capacity.max(1));
        Arc::new(Discovery {
            shared: Arc::new(instance::Shared {
                lists: Arc::new(Semaphore::new(settings.concurrent_lists.max(1))),
                settings,
                entries: Mutex::new(HashMap::new()),
                changes,
            }),
            next_id: AtomicU64::new(1),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.shared.settings
    }

    /// Starts watching instance `name` through `client` (which should not retry inside a call:
    /// see [`client_for_kubeconfig`]). Already watched with the same selection: nothing
    /// changes and false is returned (`client` is dropped). Watched with another selection:
    /// its watchers restart. Must be called within a tokio runtime.
    pub fn watch_instance(&self, name: &str, client: kube::Client, selection: Selection) -> bool {
        let mut entries = self.entries();
        if entries.get(name).is_some_and(|e| e.selection == selection) {
            return false;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let summary = instance::initial_summary(&self.shared.settings);
        let live = Arc::new(instance::Live::default());
        let task = tokio::spawn(instance::run(
            self.shared.clone(),
            name.to_string(),
            id,
            client,
            selection.clone(),
            live.clone(),
        ));
        if let Some(old) = entries.insert(
            name.to_string(),
            instance::Entry {
                id,
                selection,
                task,
                summary: Arc::new(summary),
                live,
            },
        ) {
            old.task.abort();
        }
        drop(entries);
        let _ = self.shared.changes.send(name.to_string());
        true
    }

    /// Stops watching `name` and forgets its summary (announced as a change: its summary is
    /// now None). False when it was not watched.
    pub fn forget_instance(&self, name: &str) -> bool {
        let Some(entry) = self.entries().remove(name) else {
            return false;
        };
        entry.task.abort();
        let _ = self.shared.changes.send(name.to_string());
        true
    }

    pub fn summary(&self, name: &str) -> Option<Summary> {
        self.entries().get(name).map(|e| (*e.summary).clone())
    }

    /// The longest discovery lets an instance go unheard (no event, no bookmark, no answer)
    /// while still calling it reachable: after `silence` the watchdog probes `/version`, and a
    /// probe that has not answered within `probe_timeout` marks the instance unreachable.
    pub fn max_unheard(&self) -> Duration {
        let s = &self.shared.settings;
        s.silence + s.probe_timeout
    }

    /// `name`'s summary if a decision may rest on it now, else None (then ask the instance's
    /// API): watched with exactly `selection` (other selections count other workloads), every
    /// kind listed, reachable, no watch failing at this moment (a failing watch's kind may be
    /// behind, even before its reason says so), and heard from within
    /// [`max_unheard`](Self::max_unheard).
    ///
    /// The last condition is what the watchdog itself allows: a summary is never older than
    /// the silence after which the watchdog would have noticed a dead instance. It cannot see
    /// events that a live connection fails to deliver; the periodic resync bounds those.
    pub fn current_summary(&self, name: &str, selection: &Selection) -> Option<Summary> {
        let entries = self.entries();
        let e = entries.get(name)?;
        if e.selection != *selection {
            return None;
        }
        let unheard = tap::ms_between(e.live.activity.latest(), tap::now_ms());
        let current = e.summary.reachable
            && e.summary.synced
            && e.live.failing_watches.load(Ordering::Relaxed) == 0
            && e.live.activity.latest() > 0
            && unheard <= self.max_unheard();
        current.then(|| (*e.summary).clone())
    }

    /// The names of the watched instances, sorted.
    pub fn instances(&self) -> Vec<String> {
        let mut names: Vec<String> = self.entries().keys().cloned().collect();
        names.sort();
        names
    }

    /// Names of instances whose summary changed (started, changed, forgotten), from now on.
    pub fn changes(&self) -> broadcast::Receiver<String> {
        self.shared.changes.subscribe()
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<String, instance::Entry>> {
        self.shared.entries()
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        for (_, e) in self.entries().drain() {
            e.task.abort();
        }
    }
}

/// A client for discovery from a kubeconfig held in memory: see
/// [`Calls::Watch`](rotor_api::client::Calls::Watch) (no read timeout, no retries inside a call,
/// a bounded connect).
pub async fn client_for_kubeconfig(
    kubeconfig: &str,
) -> Result<kube::Client, rotor_api::client::ClientError> {
    rotor_api::client::client(kubeconfig, rotor_api::client::Calls::Watch).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    #[test]
    fn selection_never_takes_system_namespaces() {
        let labels = BTreeMap::new();
        let all = Selection::everything();
        assert!(all.selects("demo", &labels));
        assert!(!all.selects("kube-system", &labels));
        assert_eq!(
            all.field_selector(),
            "metadata.namespace!=kube-node-lease,metadata.namespace!=kube-public,metadata.namespace!=kube-system"
        );
        assert_eq!(all.label_selector(), None);
    }

    #[test]
    fn selection_intersects_and_pushes_down() {
        let app = WorkloadSelector {
            include_namespaces: vec!["demo".into()],
            label_selector: Some(LabelSelector {
                match_labels: Some([("app".to_string(), "web".to_string())].into()),
                ..LabelSelector::default()
            }),
            ..WorkloadSelector::default()
        };
        let policy = WorkloadSelector {
            exclude_namespaces: vec!["scratch".into()],
            ..WorkloadSelector::default()
        };
        let sel = Selection::all_of([app, policy]);
        let web: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        assert!(sel.selects("demo", &web));
        assert!(!sel.selects("demo", &BTreeMap::new()));
        assert!(!sel.selects("other", &web));
        assert_eq!(sel.field_selector(), "metadata.namespace=demo");
        assert_eq!(sel.label_selector().as_deref(), Some("app=web"));
    }
}
