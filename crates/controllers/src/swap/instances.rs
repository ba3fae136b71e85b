//! Blue and green: which instances a swap works on, their entries in the Cluster's status, and
//! their deletion through the provider.

use std::time::Duration;

use kube::ResourceExt;
use kube::api::PostParams;
use rotor_api::{Cluster, ClusterInstance, ClusterSwapStatus, InstancePhase, Phase};

use super::{Reconcile, poll_key};
use crate::{Error, now};

impl Reconcile<'_> {
    pub(super) fn blue(&self, status: &ClusterSwapStatus) -> Result<String, Error> {
        status
            .blue_instance
            .clone()
            .ok_or_else(|| self.unset("status.blueInstance"))
    }

    pub(super) fn green(&self, status: &ClusterSwapStatus) -> Result<String, Error> {
        status
            .green_instance
            .clone()
            .ok_or_else(|| self.unset("status.greenInstance"))
    }

    fn unset(&self, field: &'static str) -> Error {
        Error::StatusIncomplete {
            swap: self.name.clone(),
            field,
        }
    }

    /// A kube client of the member-cluster instance `name` of `cluster` (blue or green).
    pub(super) async fn member(
        &self,
        cluster: &Cluster,
        name: &str,
    ) -> Result<kube::Client, Error> {
        let provider = self.ctx.provider(cluster)?;
        self.ctx.members.get(&provider, name).await
    }

    /// How long blue has been retained: since green took all the traffic (Draining began, its
    /// drain included), else — no such transition in the history — since Retaining began.
    pub(super) fn retained_for(&self, status: &ClusterSwapStatus) -> Duration {
        let shifted = status
            .history
            .iter()
            .rev()
            .find(|t| t.phase == Phase::Draining);
        match shifted {
            Some(t) => self.ctx.swaps.shifted_for(&self.name, &t.time),
            None => self.in_phase_for(status),
        }
    }

    /// How long the swap has been in its current phase.
    pub(super) fn in_phase_for(&self, status: &ClusterSwapStatus) -> Duration {
        status
            .history
            .iter()
            .rev()
            .find(|t| t.phase == status.phase)
            .map(|t| self.ctx.swaps.in_phase(&self.name, t.phase, &t.time))
            .unwrap_or(Duration::ZERO)
    }

    /// Read-modify-write of the Cluster's status with its resourceVersion (409 when stale);
    /// `mutate` says whether it changed anything worth a write.
    pub(super) async fn update_cluster(
        &self,
        cluster: &Cluster,
        mutate: impl Fn(&mut rotor_api::ClusterStatus) -> bool,
    ) -> Result<(), Error> {
        let mut fresh = self
            .clusters
            .get_opt(&cluster.name_any())
            .await?
            .unwrap_or_else(|| cluster.clone());
        let status = fresh.status.get_or_insert_with(Default::default);
        if mutate(status) {
            self.clusters
                .replace_status(&cluster.name_any(), &PostParams::default(), &fresh)
                .await?;
        }
        Ok(())
    }

    /// Gives the Cluster's claim back if this swap holds it; true when it did.
    pub(super) fn release(&self, status: &mut rotor_api::ClusterStatus) -> bool {
        let held = status.current_swap.as_deref() == Some(self.name.as_str());
        if held {
            status.current_swap = None;
        }
        held
    }

    /// When to ask the cloud again about a deletion in progress (the adaptive schedule).
    pub(super) fn deletion_poll(&self) -> Duration {
        self.ctx
            .cloud_poll(
                &poll_key(&self.name),
                rotor_providers::poll::Observed::InProgress,
            )
            .after
    }

    /// Marks `instance` Deleting in the Cluster's status and has the provider delete it
    /// (idempotently); true once the provider no longer knows it.
    pub(super) async fn instance_gone(
        &self,
        cluster: &Cluster,
        instance: &str,
    ) -> Result<bool, Error> {
        let provider = self.ctx.provider(cluster)?;
        self.update_cluster(cluster, |st| {
            set_instance_phase(&mut st.instances, instance, InstancePhase::Deleting)
        })
        .await?;
        if provider.get_instance(instance).await?.is_some() {
            provider.delete_instance(instance).await?;
            return Ok(false);
        }
        self.ctx.members.forget(instance);
        Ok(true)
    }
}

/// Adds or updates an instance entry; returns whether anything changed.
pub(crate) fn upsert_instance(
    instances: &mut Vec<ClusterInstance>,
    name: &str,
    version: &str,
    phase: InstancePhase,
    endpoint: Option<String>,
) -> bool {
    match instances.iter_mut().find(|i| i.name == name) {
        Some(i) => {
            let changed = i.phase != phase || i.version != version;
            i.phase = phase;
            i.version = version.to_string();
            changed
        }
        None => {
            instances.push(ClusterInstance {
                name: name.to_string(),
                version: version.to_string(),
                phase,
                created_at: Some(now()),
                endpoint,
            });
            true
        }
    }
}

/// Sets an existing instance's phase; returns whether anything changed.
pub(crate) fn set_instance_phase(
    instances: &mut [ClusterInstance],
    name: &str,
    phase: InstancePhase,
) -> bool {
    match instances.iter_mut().find(|i| i.name == name) {
        Some(i) if i.phase != phase => {
            i.phase = phase;
            true
        }
        _ => false,
    }
}
