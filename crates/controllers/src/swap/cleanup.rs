//! The ClusterSwap's finalizer (`rotor.dev/swap-cleanup`): a swap carries it before it can have
//! created anything, so deleting a swap mid-flight cannot leak green. A deleted swap first
//! undoes what it started the way a rollback does — blue's workloads restored if they were
//! scaled down, all traffic to blue in one shifter call, green deleted through the provider and
//! waited for, the Cluster's claim released — and only then lets the object go. A swap past the
//! point of no return (Decommissioning) finishes instead: green serves, blue goes. A finished
//! swap (Succeeded, RolledBack, Failed) lets go at once: nothing it leaves serves for it.

use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use rotor_api::{Cluster, ClusterSwapStatus, Phase, Reason};
use serde_json::json;

use super::Reconcile;
use super::step::Step;
use crate::Error;

/// The finalizer every ClusterSwap carries while it may own cloud resources.
pub const FINALIZER: &str = "rotor.dev/swap-cleanup";

impl Reconcile<'_> {
    /// Adds the finalizer (before the first claim or provider call); true when it wrote, and
    /// the reconcile then goes straight on from the updated object (see `run_chained`).
    pub(super) async fn ensure_finalizer(&self) -> Result<bool, Error> {
        if self.swap.finalizers().iter().any(|f| f == FINALIZER) {
            return Ok(false);
        }
        let mut finalizers = self.swap.finalizers().to_vec();
        finalizers.push(FINALIZER.to_string());
        // The resourceVersion makes it a compare-and-swap: no finalizer list is overwritten.
        let patch = json!({"metadata": {
            "finalizers": finalizers,
            "resourceVersion": self.swap.resource_version(),
        }});
        let patched = self
            .api
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        self.wrote_and_goes_on(patched);
        Ok(true)
    }

    /// A swap with a deletionTimestamp: clean up by phase, then remove the finalizer.
    pub(super) async fn deleting(&self, mut status: ClusterSwapStatus) -> Result<Action, Error> {
        if !self.swap.finalizers().iter().any(|f| f == FINALIZER) {
            return Ok(Action::await_change());
        }
        let phase = status.phase;
        let cluster = self.clusters.get_opt(&self.swap.spec.cluster_ref).await?;
        let Some(cluster) = cluster.filter(|_| !phase.is_terminal()) else {
            return self.let_go(None, phase).await;
        };
        let step = match phase {
            // Nothing created yet: at most the claim to give back.
            Phase::Pending => return self.let_go(Some(&cluster), phase).await,
            Phase::RollingBack => self.rolling_back(&cluster, &mut status).await?,
            Phase::Decommissioning => self.decommissioning(&cluster, &mut status).await?,
            _ if phase.allows_rollback() => {
                let message = format!(
                    "the ClusterSwap is being deleted in {}: traffic returns to blue, green is \
                     deleted and the Cluster released before it goes",
                    phase.as_str()
                );
                self.event(false, Reason::SwapDeleted, message.clone())
                    .await;
                Step::roll_back(Reason::SwapDeleted, message)
            }
            _ => return self.let_go(Some(&cluster), phase).await,
        };
        self.apply(&cluster, status, step).await
    }

    /// Releases the Cluster's claim if this swap still holds it, then removes the finalizer.
    async fn let_go(&self, cluster: Option<&Cluster>, phase: Phase) -> Result<Action, Error> {
        if let Some(cluster) = cluster {
            self.update_cluster(cluster, |st| self.release(st)).await?;
        }
        self.forget_all();
        let kept: Vec<String> = self
            .swap
            .finalizers()
            .iter()
            .filter(|f| *f != FINALIZER)
            .cloned()
            .collect();
        let patch = json!({"metadata": {
            "finalizers": kept,
            "resourceVersion": self.swap.resource_version(),
        }});
        self.event(
            false,
            Reason::CleanupComplete,
            format!(
                "deleted in {}: nothing of this swap is left serving or claimed; the object goes",
                phase.as_str()
            ),
        )
        .await;
        match self
            .api
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(Action::await_change()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(Action::await_change()),
            Err(e) => Err(e.into()),
        }
    }
}
