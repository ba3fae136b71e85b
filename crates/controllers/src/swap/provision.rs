//! Pending, Provisioning, WaitingForGreen: claim the Cluster, have the provider create green,
//! and wait until green is reachable, at the target version and all its nodes Ready.

use kube::ResourceExt;
use kube::api::PostParams;
use rotor_api::{Cluster, ClusterSwapStatus, HookPoint, InstancePhase, Phase, Reason};
use rotor_providers::{InstanceSpec, InstanceState, idempotency_token, instance_name};

use super::hooks::At;
use super::instances::{set_instance_phase, upsert_instance};
use super::step::Step;
use super::{Reconcile, poll_key};
use crate::{Error, health};

/// Whether green can take workloads, and what was seen.
enum Readiness {
    Ready(String),
    NotYet(String),
}

impl Reconcile<'_> {
    pub(super) async fn pending(
        &self,
        cluster: &Cluster,
        status: &mut ClusterSwapStatus,
    ) -> Result<Step, Error> {
        if let Err(errors) = self.swap.spec.validate() {
            let message: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            return Ok(Step::fail(Reason::InvalidSpec, message.join("; ")));
        }
        let cstatus = cluster.status.clone().unwrap_or_default();
        let Some(active) = cstatus.active_instance.clone() else {
            return Ok(Step::wait(
                Reason::NoActiveInstance,
                format!("Cluster {} has no active instance yet", cluster.name_any()),
                self.ctx.settings.poll_interval,
            ));
        };
        if let Some(other) = self.other_claim(&cstatus).await? {
            return Ok(Step::wait(
                Reason::AnotherSwapActive,
                format!(
                    "ClusterSwap {other} is in progress on Cluster {}",
                    cluster.name_any()
                ),
                self.ctx.settings.poll_interval,
            ));
        }
        // Claim the Cluster: one swap at a time, decided by an optimistic-concurrency write.
        if cstatus.current_swap.as_deref() != Some(self.name.as_str()) {
            let mut claimed = cluster.clone();
            claimed
                .status
                .get_or_insert_with(Default::default)
                .current_swap = Some(self.name.clone());
            self.clusters
                .replace_status(&cluster.name_any(), &PostParams::default(), &claimed)
                .await?;
        }
        status.blue_instance = Some(active.clone());
        Ok(Step::advance(
            Phase::Provisioning,
            Reason::ProvisioningGreen,
            format!("blue is {active}; requesting green from the provider"),
        ))
    }

    /// Another swap that holds the Cluster and is still running, if any.
    async fn other_claim(
        &self,
        cstatus: &rotor_api::ClusterStatus,
    ) -> Result<Option<String>, Error> {
        let Some(other) = cstatus.current_swap.as_deref().filter(|o| *o != self.name) else {
            return Ok(None);
        };
        let running = self
            .api
            .get_opt(other)
            .await?
            .is_some_and(|o| !o.status.unwrap_or_default().phase.is_terminal());
        Ok(running.then(|| other.to_string()))
    }

    /// Green's name: derived from the Cluster and the swap's uid, so it is known before status
    /// records it (see `rolling_back`).
    pub(super) fn green_name(&self) -> String {
        instance_name(
            &self.swap.spec.cluster_ref,
            self.swap.uid().as_deref().unwrap_or(&self.name),
            0,
        )
    }

    fn instance_spec(&self, cluster: &Cluster, green: &str) -> InstanceSpec {
        let target = cluster.spec.with_target(&self.swap.spec.target);
        InstanceSpec {
            cluster: cluster.name_any(),
            name: green.to_string(),
            kubernetes_version: target.kubernetes_version,
            idempotency_token: idempotency_token(
                &self.swap.spec.cluster_ref,
                self.swap.uid().as_deref().unwrap_or(&self.name),
                0,
            ),
            node_pools: target
                .node_pools
                .iter()
                .map(|p| rotor_providers::NodePoolSpec {
                    name: p.name.clone(),
                    instance_type: p.instance_type.clone(),
                    min_count: p.min_count,
                    max_count: p.max_count,
                    desired_count: p.desired_count,
                })
                .collect(),
            config: target.config,
        }
    }

    pub(super) async fn provisioning(
        &self,
        cluster: &Cluster,
        status: &mut ClusterSwapStatus,
    ) -> Result<Step, Error> {
        let provider = self.ctx.provider(cluster)?;
        let before = At::point(HookPoint::BeforeProvisioning, None);
        if let Some(step) = self.hooks_at(cluster, status, before).await? {
            return Ok(step);
        }
        let green = status
            .green_instance
            .clone()
            .unwrap_or_else(|| self.green_name());
        let spec = self.instance_spec(cluster, &green);
        let instance = match provider.create_instance(&spec).await {
            Ok(instance) => instance,
            Err(e) if !e.is_retryable() => {
                return Ok(Step::fail(Reason::ProviderError, e.to_string()));
            }
            Err(e) => return Err(e.into()),
        };
        self.update_cluster(cluster, |st| {
            upsert_instance(
                &mut st.instances,
                &green,
                &spec.kubernetes_version,
                InstancePhase::Provisioning,
                instance.endpoint.clone(),
            )
        })
        .await?;
        status.green_instance = Some(green.clone());
        Ok(Step::advance(
            Phase::WaitingForGreen,
            Reason::GreenCreated,
            format!(
                "the provider is creating green {green} (Kubernetes {})",
                spec.kubernetes_version
            ),
        ))
    }

    pub(super) async fn waiting_for_green(
        &self,
        cluster: &Cluster,
        status: &mut ClusterSwapStatus,
    ) -> Result<Step, Error> {
        let provider = self.ctx.provider(cluster)?;
        let green = self.green(status)?;
        let timed_out = self.in_phase_for(status) > self.ctx.settings.green_ready_timeout;
        // Ensure rather than read: creating is idempotent, and a cloud that builds an instance
        // in steps (EKS: the cluster, then its node groups once it is active) takes the next
        // one here. One call per poll, as a read would be.
        let instance = provider
            .create_instance(&self.instance_spec(cluster, &green))
            .await?;
        let key = poll_key(&self.name);
        // While the cloud creates green it has no events to tell: poll it on the adaptive
        // schedule. Once green runs, discovery's watch of it is the trigger.
        let after = if instance.state == InstanceState::Creating {
            self.ctx
                .cloud_poll(&key, rotor_providers::poll::Observed::InProgress)
                .after
        } else {
            self.ctx.cloud_poll_done(&key);
            self.ctx.settings.poll_interval
        };
        let not_ready = match instance.state {
            InstanceState::Failed | InstanceState::Deleting => {
                return Ok(Step::roll_back(
                    Reason::ProviderError,
                    format!(
                        "the provider reports green {green} failed: {}",
                        instance.message
                    ),
                ));
            }
            InstanceState::Creating if instance.message.is_empty() => {
                format!("the provider is still creating green {green}")
            }
            InstanceState::Creating => {
                format!(
                    "the provider is still creating green {green}: {}",
                    instance.message
                )
            }
            InstanceState::Running => match self.watch_then_check(cluster, &green).await {
                Ok(Readiness::Ready(message)) => {
                    self.update_cluster(cluster, |st| {
                        set_instance_phase(&mut st.instances, &green, InstancePhase::Ready)
                    })
                    .await?;
                    return Ok(Step::advance(Phase::Migrating, Reason::GreenReady, message));
                }
                Ok(Readiness::NotYet(why)) => why,
                Err(e) => {
                    self.ctx.members.forget(&green);
                    e.to_string()
                }
            },
        };
        if timed_out {
            return Ok(Step::roll_back(
                Reason::TimedOut,
                format!(
                    "green {green} not ready within {:?}: {not_ready}",
                    self.ctx.settings.green_ready_timeout
                ),
            ));
        }
        Ok(Step::wait(Reason::GreenNotReady, not_ready, after))
    }

    /// Starts discovery's watch of green (a trigger for the next reconciles), then reads
    /// green's readiness through its API.
    async fn watch_then_check(&self, cluster: &Cluster, green: &str) -> Result<Readiness, Error> {
        let selection = self.selection(cluster).discovery();
        if let Err(e) = self
            .ctx
            .watch_green(&self.name, cluster, green, selection)
            .await
        {
            tracing::debug!(swap = %self.name, error = %e, "watching green failed; polling only");
        }
        self.green_ready(cluster, green).await
    }

    /// Ready when green is reachable, at the target version, all nodes Ready.
    async fn green_ready(&self, cluster: &Cluster, green: &str) -> Result<Readiness, Error> {
        let client = self.member(cluster, green).await?;
        let minor = health::minor_version(&client, green).await?;
        let target = cluster.spec.with_target(&self.swap.spec.target);
        let want = target_minor(&target.kubernetes_version);
        if want.is_some_and(|w| w != minor) {
            return Ok(Readiness::NotYet(format!(
                "green {green} runs 1.{minor}, the target is {}",
                target.kubernetes_version
            )));
        }
        let (ready, total) = health::nodes_ready(&client, green).await?;
        if total == 0 || ready < total {
            return Ok(Readiness::NotYet(format!(
                "green {green}: {ready}/{total} nodes Ready"
            )));
        }
        Ok(Readiness::Ready(format!(
            "green {green} is reachable, runs 1.{minor}, {ready}/{total} nodes Ready"
        )))
    }
}

/// `1.35.0` → 35.
fn target_minor(version: &str) -> Option<u32> {
    version
        .trim_start_matches('v')
        .strip_prefix("1.")?
        .split('.')
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_minor_parses_versions() {
        assert_eq!(target_minor("1.35.0"), Some(35));
        assert_eq!(target_minor("v1.34"), Some(34));
        assert_eq!(target_minor("2.0"), None);
    }
}
