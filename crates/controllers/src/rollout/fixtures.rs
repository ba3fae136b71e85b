//! Objects for the rollout's unit tests.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::TimeZone;
use rotor_api::{
    ClusterSwap, ClusterSwapSpec, ClusterSwapStatus, Phase, PhaseTransition, Reason, RolloutSpec,
    SwapCounts, WavePhase, WaveStatus, labels,
};

use super::swap_name;

/// A rollout spec from its JSON, with a target and one wave unless given.
pub(super) fn spec(extra: serde_json::Value) -> RolloutSpec {
    let mut value = serde_json::json!({
        "clusterSelector": {},
        "target": {"kubernetesVersion": "1.35.0"},
        "waves": [{"name": "canary", "count": 1}],
    });
    let (serde_json::Value::Object(base), serde_json::Value::Object(extra)) = (&mut value, extra)
    else {
        panic!("objects expected");
    };
    base.extend(extra);
    serde_json::from_value(value).expect("a rollout spec")
}

/// Pending waves `(name, clusters)`.
pub(super) fn waves(waves: &[(&str, &[&str])]) -> Vec<WaveStatus> {
    waves
        .iter()
        .map(|(name, clusters)| WaveStatus {
            name: name.to_string(),
            clusters: clusters.iter().map(|c| c.to_string()).collect(),
            phase: WavePhase::Pending,
            started_at: None,
            finished_at: None,
            counts: SwapCounts::default(),
            metric_gates: Vec::new(),
        })
        .collect()
}

/// `rollout`'s swap of `cluster` in `phase`; a failed or rolled-back one says why in its history.
pub(super) fn swap(rollout: &str, cluster: &str, phase: Phase) -> Arc<ClusterSwap> {
    let mut swap = ClusterSwap::new(
        &swap_name(rollout, cluster),
        ClusterSwapSpec {
            cluster_ref: cluster.to_string(),
            target: Default::default(),
            strategy: Default::default(),
            paused: false,
            rollback: false,
            hold_before_traffic: false,
        },
    );
    swap.metadata.labels = Some(BTreeMap::from([(
        labels::ROLLOUT.to_string(),
        rollout.to_string(),
    )]));
    let mut status = ClusterSwapStatus {
        phase,
        ..Default::default()
    };
    if matches!(phase, Phase::Failed | Phase::RolledBack) {
        status.history.push(PhaseTransition {
            phase: Phase::RollingBack,
            time: time(),
            reason: Reason::HealthGateFailed,
            message: format!("{cluster}'s error rate too high"),
        });
    }
    swap.status = Some(status);
    Arc::new(swap)
}

/// Names, as a set.
pub(super) fn set(names: &[&str]) -> std::collections::BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// A fixed time.
pub(super) fn time() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-07-04T10:00:00Z".parse().expect("a timestamp"),
    )
}

/// A Saturday, 10:00 UTC.
pub(super) fn saturday_10am() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc
        .with_ymd_and_hms(2026, 7, 4, 10, 0, 0)
        .single()
        .expect("a time")
}
