//! Who is left out of the rollout, and why: by an operator (`spec.skipClusters`, recomputed every
//! reconcile, so removing a name brings the cluster back) or, once and for good, by policy (the
//! pre-flight, a cluster stopped, unreachable or gone).

use std::collections::BTreeSet;

use rotor_api::{SkippedCluster, WaveStatus};

/// `status.skipped[].reason`: why a cluster was left out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SkipReason {
    /// Listed in `spec.skipClusters`.
    Operator,
    /// The pre-flight blocked it (`spec.preflight: SkipBlocked`).
    PreflightBlocked,
    /// The Cluster no longer exists.
    NotFound,
    /// The Cluster is marked `spec.stopped`.
    Stopped,
    /// The Cluster's API server does not answer.
    Unreachable,
}

impl SkipReason {
    /// The wire string in `status.skipped[].reason`.
    pub(super) const fn as_str(self) -> &'static str {
        match self {
            SkipReason::Operator => "Operator",
            SkipReason::PreflightBlocked => "PreflightBlocked",
            SkipReason::NotFound => "NotFound",
            SkipReason::Stopped => "Stopped",
            SkipReason::Unreachable => "Unreachable",
        }
    }

    /// `cluster` of wave `wave`, left out for this reason.
    pub(super) fn entry(self, cluster: &str, wave: &str, message: String) -> SkippedCluster {
        SkippedCluster {
            cluster: cluster.to_string(),
            wave: wave.to_string(),
            reason: self.as_str().to_string(),
            message,
        }
    }
}

/// The clusters left out now: `status.skipped` as it will be written.
pub(super) struct Skips {
    list: Vec<SkippedCluster>,
    clusters: BTreeSet<String>,
}

impl Skips {
    /// The policy's skips `recorded` in status, with the operator's taken from `operator`
    /// (`spec.skipClusters`) afresh, each in its wave of `waves`.
    pub(super) fn new(
        recorded: &[SkippedCluster],
        operator: &[String],
        waves: &[WaveStatus],
    ) -> Self {
        let operator: BTreeSet<&str> = operator.iter().map(String::as_str).collect();
        let policy = recorded.iter().filter(|s| {
            s.reason != SkipReason::Operator.as_str() && !operator.contains(s.cluster.as_str())
        });
        let mut skips = Skips {
            list: Vec::new(),
            clusters: BTreeSet::new(),
        };
        for s in policy {
            skips.add(s.clone());
        }
        for w in waves {
            for c in w.clusters.iter().filter(|c| operator.contains(c.as_str())) {
                let message = "listed in spec.skipClusters".to_string();
                skips.add(SkipReason::Operator.entry(c, &w.name, message));
            }
        }
        skips
    }

    /// The names of the clusters left out.
    pub(super) fn clusters(&self) -> &BTreeSet<String> {
        &self.clusters
    }

    pub(super) fn add(&mut self, skipped: SkippedCluster) {
        self.clusters.insert(skipped.cluster.clone());
        self.list.push(skipped);
    }

    /// `status.skipped`: by cluster, one entry each (the first recorded).
    pub(super) fn into_list(mut self) -> Vec<SkippedCluster> {
        self.list.sort_by(|a, b| a.cluster.cmp(&b.cluster));
        self.list.dedup_by(|a, b| a.cluster == b.cluster);
        self.list
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::fixtures::waves;

    #[test]
    fn operator_skips_follow_the_spec_and_policy_skips_stay() {
        let waves = waves(&[("canary", &["a"]), ("rest", &["b", "c", "d"])]);
        let recorded = vec![
            SkipReason::Operator.entry("a", "canary", "listed".into()),
            SkipReason::Stopped.entry("c", "rest", "stopped".into()),
            SkipReason::Unreachable.entry("d", "rest", "gone quiet".into()),
        ];
        // a is no longer listed: it comes back. d is listed now: the operator's reason wins.
        let mut skips = Skips::new(&recorded, &["d".into(), "b".into()], &waves);
        let names: Vec<&str> = skips.clusters().iter().map(String::as_str).collect();
        assert_eq!(names, ["b", "c", "d"]);
        skips.add(SkipReason::NotFound.entry("b", "rest", "gone".into()));
        let list = skips.into_list();
        let got: Vec<(&str, &str, &str)> = list
            .iter()
            .map(|s| (s.cluster.as_str(), s.wave.as_str(), s.reason.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("b", "rest", "Operator"),
                ("c", "rest", "Stopped"),
                ("d", "rest", "Operator")
            ]
        );
    }
}
