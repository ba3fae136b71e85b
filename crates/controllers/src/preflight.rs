//! The rollout's pre-flight: before the first wave, every selected cluster is asked what would
//! stop its swap — objects at API versions the target release does not serve (judged from the
//! release's OpenAPI data, so green need not exist), stateful workloads without a data policy,
//! an API that does not answer — so blockers show in the Rollout's status before any swap starts
//! instead of one failed swap at a time.

use std::time::Duration;

use futures::StreamExt;
use rotor_api::{
    Cluster, ConditionStatus, ConditionType, PreflightBlocker, SwapStrategy, SwapTarget,
    find_condition,
};
use rotor_migration::{MigrationOptions, ServedVersions};

use crate::Context;

/// Clusters checked at once: each check lists the cluster's resources.
const CONCURRENCY: usize = 16;
/// A cluster that has not answered the whole check in this time is blocked as unreachable.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// What the pre-flight found.
#[derive(Default)]
pub struct Findings {
    /// Clusters whose swap would fail, in the order given.
    pub blocked: Vec<PreflightBlocker>,
    /// Clusters that are stopped or unreachable now: not blocked, since whether they are left
    /// out or waited for is `spec.unavailableClusters`' call when their turn comes (they may be
    /// back by then, and their swap's migration still refuses what green cannot take).
    pub unavailable: Vec<String>,
}

/// Checks each `(name, Cluster)` against `target`.
pub async fn run(
    ctx: &Context,
    clusters: Vec<(String, Option<Cluster>)>,
    target: &SwapTarget,
    strategy: &SwapStrategy,
) -> Findings {
    let results: Vec<(String, Verdict)> = futures::stream::iter(clusters)
        .map(|(name, cluster)| async move {
            let verdict = one(ctx, cluster, target, strategy).await;
            (name, verdict)
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut findings = Findings::default();
    for (cluster, verdict) in results {
        match verdict {
            Verdict::Clear => {}
            Verdict::Unavailable => findings.unavailable.push(cluster),
            Verdict::Blocked(reasons) => {
                findings.blocked.push(PreflightBlocker { cluster, reasons })
            }
        }
    }
    findings
}

/// The pre-flight's answer for one cluster.
enum Verdict {
    Clear,
    Unavailable,
    Blocked(Vec<String>),
}

async fn one(
    ctx: &Context,
    cluster: Option<Cluster>,
    target: &SwapTarget,
    strategy: &SwapStrategy,
) -> Verdict {
    let Some(c) = cluster else {
        return Verdict::Blocked(vec!["the Cluster does not exist".to_string()]);
    };
    if unavailable(&c) {
        return Verdict::Unavailable;
    }
    match tokio::time::timeout(CHECK_TIMEOUT, check(ctx, &c, target, strategy)).await {
        Ok(reasons) if reasons.is_empty() => Verdict::Clear,
        Ok(reasons) => Verdict::Blocked(reasons),
        Err(_) => Verdict::Blocked(vec![format!(
            "its API did not answer the pre-flight within {}s",
            CHECK_TIMEOUT.as_secs()
        )]),
    }
}

/// Stopped, or its API known to be unreachable (discovery's `Reachable` condition).
fn unavailable(cluster: &Cluster) -> bool {
    cluster.spec.stopped
        || cluster.status.as_ref().is_some_and(|s| {
            find_condition(&s.conditions, ConditionType::Reachable)
                .is_some_and(|c| c.status == ConditionStatus::False)
        })
}

/// What would stop this cluster's swap; empty when nothing would.
async fn check(
    ctx: &Context,
    cluster: &Cluster,
    target: &SwapTarget,
    strategy: &SwapStrategy,
) -> Vec<String> {
    let status = cluster.status.clone().unwrap_or_default();
    let Some(instance) = status.active_instance else {
        return vec!["it has no active instance yet (not adopted)".into()];
    };
    let version = cluster.spec.with_target(target).kubernetes_version;
    let Some(minor) = version
        .strip_prefix("1.")
        .and_then(|m| m.split('.').next())
        .and_then(|m| m.parse::<u32>().ok())
    else {
        return vec![format!("target version {version:?} is not 1.NN")];
    };
    let served = match ServedVersions::of_release(minor) {
        Ok(s) => s,
        Err(e) => return vec![format!("target Kubernetes {version}: {e}")],
    };
    let client = match ctx.provider(cluster.spec.provider) {
        Ok(p) => match ctx.members.get(p.as_ref(), &instance).await {
            Ok(c) => c,
            Err(e) => return vec![format!("no client for instance {instance}: {e}")],
        },
        Err(e) => return vec![e.to_string()],
    };
    let options = MigrationOptions {
        policy: strategy.migration.clone(),
        workloads: cluster.spec.workloads.clone(),
        allow_stateful: strategy.migration.stateful_data.allows_migration(),
        ..MigrationOptions::default()
    };
    match rotor_migration::plan_for(&client, &served, &options).await {
        Ok(plan) if plan.blocked.is_empty() => Vec::new(),
        Ok(plan) => {
            let shown: Vec<String> = plan.blocked.iter().take(5).map(|b| b.to_string()).collect();
            vec![format!(
                "{} objects at API versions Kubernetes {version} does not serve (and no lossless \
                 conversion exists): {}{}",
                plan.blocked.len(),
                shown.join("; "),
                if plan.blocked.len() > shown.len() {
                    "; …"
                } else {
                    ""
                }
            )]
        }
        Err(e @ rotor_migration::Error::Stateful { .. }) => vec![format!(
            "{e} (set strategy.migration.statefulData to Disposable or External)"
        )],
        Err(e) => {
            ctx.members.forget(&instance);
            vec![format!("reading the cluster failed: {e}")]
        }
    }
}
