//! The state kept per instance and its fold into a [`Summary`]. Pure: no I/O, no clock reads
//! except the times handed in, so every rule here is unit-tested.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

use crate::Summary;
use crate::objects::{Kind, Rec};
use crate::tap::ms_between;

/// One watched kind: its objects, and the keys of the unhealthy ones (kept apart so a summary
/// costs nothing per healthy object).
#[derive(Debug, Default)]
pub(crate) struct KindState {
    objects: HashMap<Box<str>, Rec>,
    unhealthy: BTreeSet<Box<str>>,
    /// A relist in progress: replaces `objects` when complete, so a summary never shows half a
    /// list.
    pending: Option<HashMap<Box<str>, Rec>>,
    /// Listed completely at least once.
    pub(crate) synced: bool,
    /// The last watch error and when it came (`tap::now_ms`); a successful answer since
    /// clears it.
    pub(crate) error: Option<(String, u64)>,
}

impl KindState {
    pub(crate) fn init(&mut self) {
        self.pending = Some(HashMap::new());
    }

    pub(crate) fn init_apply(&mut self, key: Box<str>, rec: Option<Rec>) {
        match (&mut self.pending, rec) {
            (Some(p), Some(r)) => {
                p.insert(key, r);
            }
            (Some(p), None) => {
                p.remove(&key);
            }
            (None, rec) => self.apply(key, rec),
        }
    }

    pub(crate) fn init_done(&mut self) {
        if let Some(mut objects) = self.pending.take() {
            objects.shrink_to_fit();
            self.unhealthy = objects
                .iter()
                .filter(|(_, r)| !r.healthy())
                .map(|(k, _)| k.clone())
                .collect();
            self.objects = objects;
        }
        self.synced = true;
    }

    /// An object as it is now; None forgets it (deleted, or no longer selected).
    pub(crate) fn apply(&mut self, key: Box<str>, rec: Option<Rec>) {
        match rec {
            Some(r) => {
                if r.healthy() {
                    self.unhealthy.remove(&key);
                } else if !self.unhealthy.contains(&key) {
                    self.unhealthy.insert(key.clone());
                }
                self.objects.insert(key, r);
            }
            None => {
                self.objects.remove(&key);
                self.unhealthy.remove(&key);
            }
        }
    }

    pub(crate) fn total(&self) -> u32 {
        self.objects.len() as u32
    }

    pub(crate) fn healthy(&self) -> u32 {
        (self.objects.len() - self.unhealthy.len()) as u32
    }

    fn unhealthy(&self) -> impl Iterator<Item = (&str, String)> {
        self.unhealthy.iter().filter_map(|k| {
            let why = self.objects.get(k)?.why()?;
            Some((k.as_ref(), why))
        })
    }
}

/// Everything discovery knows of one instance.
#[derive(Debug)]
pub(crate) struct InstanceState {
    pub(crate) kinds: [KindState; 5],
    /// None until the first probe or event says either way.
    pub(crate) reachable: Option<bool>,
    pub(crate) unreachable_reason: Option<String>,
    /// `/version`'s gitVersion and minor, from the last successful probe.
    pub(crate) version: Option<(String, Option<u32>)>,
    /// Waiting for a start-up slot before listing.
    pub(crate) queued: bool,
}

impl Default for InstanceState {
    fn default() -> Self {
        InstanceState {
            kinds: Default::default(),
            reachable: None,
            unreachable_reason: None,
            version: None,
            queued: true,
        }
    }
}

impl InstanceState {
    pub(crate) fn kind(&mut self, k: Kind) -> &mut KindState {
        &mut self.kinds[k as usize]
    }

    fn get(&self, k: Kind) -> &KindState {
        &self.kinds[k as usize]
    }

    /// The summary as of `now` (`tap::now_ms`); `stale_after` is how long a watch may fail
    /// before its data is called stale, `named` how many objects a reason names.
    pub(crate) fn summary(
        &self,
        now: u64,
        stale_after: Duration,
        named: usize,
        last_change: SystemTime,
    ) -> Summary {
        let nodes = self.get(Kind::Node);
        let workloads = Kind::WORKLOADS.map(|k| self.get(k));
        let pdbs = self.get(Kind::PodDisruptionBudget);
        let reachable = self.reachable == Some(true);
        let synced = self.kinds.iter().all(|k| k.synced);
        let mut s = Summary {
            reachable,
            synced,
            server_version: self.version.as_ref().map(|v| v.0.clone()),
            server_minor: self.version.as_ref().and_then(|v| v.1),
            nodes_ready: nodes.healthy(),
            nodes_total: nodes.total(),
            workloads_available: workloads.iter().map(|k| k.healthy()).sum(),
            workloads_total: workloads.iter().map(|k| k.total()).sum(),
            pdbs_total: pdbs.total(),
            pdbs_blocking: pdbs.total() - pdbs.healthy(),
            last_change,
            reason: None,
        };

        let mut parts = Vec::new();
        match self.reachable {
            Some(true) => {}
            Some(false) => parts.push(
                self.unreachable_reason
                    .clone()
                    .unwrap_or_else(|| "API unreachable".into()),
            ),
            None if self.queued => parts.push("waiting for a slot to list".into()),
            None => parts.push("API not reached yet".into()),
        }
        if reachable {
            for k in Kind::ALL {
                let ks = self.get(k);
                match &ks.error {
                    Some((e, _)) if !ks.synced => {
                        parts.push(format!("{} not listed yet: {e}", k.plural()))
                    }
                    Some((e, since)) if ms_between(*since, now) >= stale_after => {
                        parts.push(format!(
                            "{} not watched for {}s: {e}",
                            k.plural(),
                            ms_between(*since, now).as_secs()
                        ))
                    }
                    None if !ks.synced => parts.push(format!("{} not listed yet", k.plural())),
                    _ => {}
                }
            }
        }
        if nodes.synced && nodes.total() == 0 {
            parts.push("no nodes".into());
        }
        let mut left = named;
        let mut more = 0usize;
        for k in [Kind::Node].into_iter().chain(Kind::WORKLOADS) {
            let ks = self.get(k);
            for (key, why) in ks.unhealthy() {
                if left == 0 {
                    more += 1;
                    continue;
                }
                left -= 1;
                parts.push(format!("{} {key}: {why}", k.name()));
            }
        }
        if more > 0 {
            parts.push(format!("and {more} more"));
        }
        let healthy = s.reachable
            && s.synced
            && s.nodes_total > 0
            && s.nodes_ready == s.nodes_total
            && s.workloads_available == s.workloads_total;
        // Summary::healthy is "no reason": anything named above makes the instance unhealthy.
        if !healthy || !parts.is_empty() {
            s.reason = Some(if parts.is_empty() {
                "unhealthy".into()
            } else {
                parts.join("; ")
            });
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(available: i32) -> Option<Rec> {
        Some(Rec::Workload {
            generation: 1,
            observed: 1,
            desired: 2,
            available,
            updated: 2,
        })
    }

    fn synced_state() -> InstanceState {
        let mut st = InstanceState {
            reachable: Some(true),
            queued: false,
            version: Some(("v1.34.0".into(), Some(34))),
            ..InstanceState::default()
        };
        for k in Kind::ALL {
            st.kind(k).init();
            st.kind(k).init_done();
        }
        st.kind(Kind::Node)
            .apply("node-0".into(), Some(Rec::Node { ready: true }));
        st
    }

    fn summary(st: &InstanceState) -> Summary {
        st.summary(1_000, Duration::from_secs(10), 2, SystemTime::UNIX_EPOCH)
    }

    #[test]
    fn healthy_instance_has_no_reason() {
        let mut st = synced_state();
        st.kind(Kind::Deployment)
            .apply("demo/web".into(), workload(2));
        let s = summary(&st);
        assert!(s.healthy(), "{s:?}");
        assert_eq!((s.workloads_available, s.workloads_total), (1, 1));
        assert_eq!(s.server_minor, Some(34));
        assert_eq!(s.reason, None);
    }

    #[test]
    fn reasons_name_objects_and_are_bounded() {
        let mut st = synced_state();
        st.kind(Kind::Node)
            .apply("node-0".into(), Some(Rec::Node { ready: false }));
        for name in ["a", "b", "c"] {
            st.kind(Kind::Deployment)
                .apply(format!("demo/{name}").into(), workload(1));
        }
        let s = summary(&st);
        assert!(!s.healthy());
        assert_eq!(
            s.reason.as_deref(),
            Some("Node node-0: NotReady; Deployment demo/a: 1/2 available; and 2 more")
        );
        // Healed and deleted objects leave the unhealthy set.
        st.kind(Kind::Node)
            .apply("node-0".into(), Some(Rec::Node { ready: true }));
        st.kind(Kind::Deployment).apply("demo/a".into(), None);
        st.kind(Kind::Deployment)
            .apply("demo/b".into(), workload(2));
        let s = summary(&st);
        assert_eq!(
            s.reason.as_deref(),
            Some("Deployment demo/c: 1/2 available")
        );
        assert_eq!((s.workloads_available, s.workloads_total), (1, 2));
    }

    #[test]
    fn relist_replaces_atomically() {
        let mut st = synced_state();
        st.kind(Kind::Deployment)
            .apply("demo/old".into(), workload(1));
        st.kind(Kind::Deployment).init();
        st.kind(Kind::Deployment)
            .init_apply("demo/new".into(), workload(2));
        // Mid-relist the previous view stands.
        assert_eq!(summary(&st).workloads_total, 1);
        assert!(!summary(&st).healthy());
        st.kind(Kind::Deployment).init_done();
        let s = summary(&st);
        assert!(s.healthy(), "{s:?}");
        assert_eq!(s.workloads_total, 1);
    }

    #[test]
    fn unreachable_and_unlisted_say_so() {
        let mut st = InstanceState {
            queued: false,
            ..InstanceState::default()
        };
        assert_eq!(summary(&st).reason.as_deref(), Some("API not reached yet"));
        st.reachable = Some(true);
        st.kind(Kind::Deployment).error = Some(("403 Forbidden".into(), 1_000));
        let r = summary(&st).reason.unwrap_or_default();
        assert!(r.contains("nodes not listed yet"), "{r}");
        assert!(
            r.contains("deployments not listed yet: 403 Forbidden"),
            "{r}"
        );
        st.reachable = Some(false);
        st.unreachable_reason = Some("API unreachable: connection refused".into());
        let s = summary(&st);
        assert!(!s.reachable);
        assert_eq!(
            s.reason.as_deref(),
            Some("API unreachable: connection refused")
        );
    }

    #[test]
    fn a_long_failing_watch_marks_data_stale() {
        let mut st = synced_state();
        st.kind(Kind::StatefulSet).error = Some(("boom".into(), 1_000));
        let at = |ms| st.summary(ms, Duration::from_secs(10), 5, SystemTime::UNIX_EPOCH);
        assert!(at(2_000).healthy());
        let s = at(12_000);
        assert_eq!(
            s.reason.as_deref(),
            Some("statefulsets not watched for 11s: boom")
        );
    }
}
