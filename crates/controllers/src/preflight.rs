//! The rollout's pre-flight: before the first wave, every selected cluster is asked what would
//! stop its swap — objects at API versions the target release does not serve (judged from the
//! release's OpenAPI data, so green need not exist), stateful workloads without a data policy,
//! an API that does not answer — so blockers show in the Rollout's status before any swap starts
//! instead of one failed swap at a time.

use std::time::Duration;

use futures::StreamExt;
use kube::ResourceExt;
use rotor_api::{
    Cluster, ConditionStatus, ConditionType, PreflightBlocker, SwapStrategy, SwapTarget,
    find_condition,
};
use rotor_migration::{MigrationOptions, ServedVersions};

use crate::Context;

/// Clusters checked at once. Each check lists every resource type of its cluster (several
/// lists at once), so this bounds what the pre-flight asks of the fleet's API servers and of
/// the control plane itself (with 16 at once the load generator of `rotor demo --clusters
/// 1000` got half its usual throughput during the pre-flight).
const CONCURRENCY: usize = 4;
/// A cluster that has not answered the whole check in this time is asked again.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// Tries of a cluster that cannot be read before it is called unavailable.
const ATTEMPTS: u32 = 3;
/// Pause before the second try (then twice that before the third).
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// What the pre-flight found.
#[derive(Default)]
pub struct Findings {
    /// Clusters whose swap would fail, in the order given.
    pub blocked: Vec<PreflightBlocker>,
    /// Clusters that are stopped, unreachable, or could not be read now: not blocked, since
    /// whether they are left out or waited for is `spec.unavailableClusters`' call when their
    /// turn comes (they may be back by then, and their swap's migration still refuses what
    /// green cannot take).
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
    // A read that fails says nothing about the swap: tried again, and if the cluster still
    // cannot be read it is unavailable for now (its turn decides), never blocked.
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(RETRY_AFTER * attempt).await;
        }
        match tokio::time::timeout(CHECK_TIMEOUT, check(ctx, &c, target, strategy)).await {
            Ok(Ok(reasons)) if reasons.is_empty() => return Verdict::Clear,
            Ok(Ok(reasons)) => return Verdict::Blocked(reasons),
            Ok(Err(unread)) => last = unread,
            Err(_) => {
                last = format!(
                    "its API did not answer the pre-flight within {}s",
                    CHECK_TIMEOUT.as_secs()
                )
            }
        }
    }
    tracing::info!(cluster = %c.name_any(), reason = %last, "pre-flight could not read the cluster; left to spec.unavailableClusters");
    Verdict::Unavailable
}

/// Stopped, or its API known to be unreachable (discovery's `Reachable` condition).
fn unavailable(cluster: &Cluster) -> bool {
    cluster.spec.stopped
        || cluster.status.as_ref().is_some_and(|s| {
            find_condition(&s.conditions, ConditionType::Reachable)
                .is_some_and(|c| c.status == ConditionStatus::False)
        })
}

/// What would stop this cluster's swap (empty when nothing would), or Err when the cluster
/// could not be read (the answer is unknown, not "blocked").
async fn check(
    ctx: &Context,
    cluster: &Cluster,
    target: &SwapTarget,
    strategy: &SwapStrategy,
) -> Result<Vec<String>, String> {
    let status = cluster.status.clone().unwrap_or_default();
    // Not adopted yet (a Cluster applied just before the Rollout): a state that passes, so
    // unknown rather than blocked.
    let Some(instance) = status.active_instance else {
        return Err("it has no active instance yet (not adopted)".into());
    };
    let version = cluster.spec.with_target(target).kubernetes_version;
    let Some(minor) = version
        .strip_prefix("1.")
        .and_then(|m| m.split('.').next())
        .and_then(|m| m.parse::<u32>().ok())
    else {
        return Ok(vec![format!("target version {version:?} is not 1.NN")]);
    };
    let served = match ServedVersions::of_release(minor) {
        Ok(s) => s,
        Err(e) => return Ok(vec![format!("target Kubernetes {version}: {e}")]),
    };
    // A client made for the check alone is dropped after it, and with it its pooled
    // connections: the pre-flight reads every cluster of the fleet once. Measured with `rotor
    // demo --clusters 1000` (the simulated members share the process): keeping 1,000 such
    // clients made the pre-flight take 22 s and failed 8-33 application requests; dropping
    // them, 9 s and none (at most 14,000 descriptors open, of a limit of 20,000).
    let client = match ctx.provider(cluster) {
        Ok(p) => match ctx.members.get_or_transient(&p, &instance).await {
            Ok(c) => c,
            Err(e) => return Err(format!("no client for instance {instance}: {e}")),
        },
        Err(e) => return Ok(vec![e.to_string()]),
    };
    read(
        ctx, &client, &instance, &served, strategy, cluster, &version,
    )
    .await
}

/// The read part of [`check`]: plans the cluster's migration against the target's versions.
async fn read(
    ctx: &Context,
    client: &kube::Client,
    instance: &str,
    served: &ServedVersions,
    strategy: &SwapStrategy,
    cluster: &Cluster,
    version: &str,
) -> Result<Vec<String>, String> {
    let options = MigrationOptions {
        policy: strategy.migration.clone(),
        workloads: cluster.spec.workloads.clone(),
        allow_stateful: strategy.migration.stateful_data.allows_migration(),
        ..MigrationOptions::default()
    };
    Ok(
        match rotor_migration::plan_for(client, served, &options).await {
            Ok(plan) => {
                let mut reasons = Vec::new();
                if !plan.blocked.is_empty() {
                    reasons.push(format!(
                        "{} objects at API versions Kubernetes {version} does not serve (and no \
                         lossless conversion exists): {}",
                        plan.blocked.len(),
                        first_five(plan.blocked.iter().map(ToString::to_string))
                    ));
                }
                if !plan.refused.is_empty() {
                    reasons.push(format!(
                        "{} objects Kubernetes {version} refuses: {}",
                        plan.refused.len(),
                        first_five(plan.refused.iter().map(ToString::to_string))
                    ));
                }
                reasons
            }
            Err(e @ rotor_migration::Error::Stateful { .. }) => vec![format!(
                "{e} (set strategy.migration.statefulData to Disposable or External)"
            )],
            Err(e) => {
                ctx.members.forget(instance);
                return Err(format!("reading the cluster failed: {e}"));
            }
        },
    )
}

/// Up to five items joined, `…` when there were more.
fn first_five(items: impl ExactSizeIterator<Item = String>) -> String {
    let more = items.len() > 5;
    let shown: Vec<String> = items.take(5).collect();
    format!("{}{}", shown.join("; "), if more { "; …" } else { "" })
}
