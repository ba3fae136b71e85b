//! The ClusterSwap controller: one blue-green rotation, phase by phase (docs/design.md, "The swap
//! lifecycle").
//!
//! Every reconcile re-derives the next action from the object's status and the observed world:
//! - the status is the intent: it is written *before* the side effect it announces (a new
//!   traffic step), and every reconcile converges the traffic layer to it, so a crash between
//!   the two heals on the next pass;
//! - provider calls are idempotent by construction (the green instance's name and token derive
//!   from the Cluster and the swap's uid);
//! - status writes carry the `resourceVersion` read, so a stale view fails with 409 and is
//!   retried instead of overwriting newer progress;
//! - every phase transition is an Event, and so is every reason to wait or retry.
//!
//! Traffic safety: green gets a share only in ShiftingTraffic and later, after its workloads are
//! available; a failing gate sends everything back to blue with one shifter call *before*
//! anything is recorded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use rotor_api::{
    BlueWhileRetained, BlueWorkloads, Cluster, ClusterInstance, ClusterSwap, ClusterSwapStatus,
    Condition, ConditionStatus, ConditionType, InstancePhase, MigrationProgress, Phase, Reason,
    set_condition,
};
use rotor_providers::{InstanceSpec, InstanceState, idempotency_token, instance_name};
use rotor_traffic::{TrafficShifter, Weights};

use crate::health::{self, Selection};
use crate::{Context, Error, blue_replicas, migration, now};

mod cleanup;
pub use cleanup::FINALIZER;

/// Runs the controller until `stop` resolves.
pub async fn controller(
    ctx: Arc<Context>,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    // A change discovery sees in a swap's green re-queues that swap.
    let triggers = crate::discovery_triggers::<ClusterSwap>(&ctx, Context::swap_of);
    let (store, swaps) = crate::lenient::reflect::<ClusterSwap>(&ctx, watcher::Config::default());
    let controller = Controller::for_stream(swaps, store);
    ctx.metrics.count_swaps(controller.store());
    controller
        .reconcile_on(triggers)
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|result| {
            ctx.metrics.reconciled("clusterswap", &result);
            async {}
        })
        .await;
}

async fn reconcile(swap: Arc<ClusterSwap>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = poll_key(&swap.name_any());
    let result = Reconcile::new(&swap, &ctx).run().await;
    if let Err(e) = &result
        && let Some(next) = ctx.rate_limited(&key, e)
    {
        // Not an error to back off from per poll: the provider asked us to slow down.
        if next.warn {
            ctx.recorder
                .publish(
                    &object_ref(&swap),
                    true,
                    RATE_LIMITED,
                    "Retry",
                    format!(
                        "{e}; polling the provider less often (next in {:?})",
                        next.after
                    ),
                )
                .await;
        }
        tracing::debug!(swap = %swap.name_any(), error = %e, after = ?next.after, "rate-limited");
        return Ok(Action::requeue(next.after));
    }
    match &result {
        Ok(_) => {
            ctx.reset_backoff(&key);
            ctx.cloud_answered(&key);
        }
        Err(e) if is_conflict(e) => {}
        Err(e) => {
            tracing::info!(swap = %swap.name_any(), error = %e, "swap reconcile failed; retrying");
            ctx.recorder
                .publish(
                    &object_ref(&swap),
                    true,
                    error_reason(e),
                    "Retry",
                    format!("{e}; retrying with backoff"),
                )
                .await;
        }
    }
    result
}

/// The Event reason when the provider rate-limits a reconcile (one Warning per stretch).
pub(crate) const RATE_LIMITED: &str = "ProviderRateLimited";

/// The key of a swap's cloud-polling schedule and of its error backoff.
fn poll_key(name: &str) -> String {
    format!("clusterswap/{name}")
}

fn error_policy(swap: Arc<ClusterSwap>, error: &Error, ctx: Arc<Context>) -> Action {
    if is_conflict(error) {
        // Our view was stale; the fresh object is on its way.
        return Action::requeue(Duration::from_millis(50));
    }
    Action::requeue(ctx.backoff(&format!("clusterswap/{}", swap.name_any())))
}

pub(crate) fn is_conflict(e: &Error) -> bool {
    matches!(e, Error::Kube(kube::Error::Api(s)) if s.code == 409)
}

fn error_reason(e: &Error) -> &'static str {
    match e {
        Error::Provider(_) | Error::NoProvider(_) => Reason::ProviderError.as_str(),
        Error::Traffic(_) | Error::NoShifter(_) => Reason::TrafficShifterError.as_str(),
        Error::Member { .. } => "MemberClusterError",
        Error::Kube(_) => "ControlPlaneError",
        Error::Other(_) => "ReconcileError",
    }
}

fn object_ref(swap: &ClusterSwap) -> ObjectReference {
    swap.object_ref(&())
}

/// What green's gates say.
/// The error rate that breaches `max_rate_percent`, if green's `failures` of `requests` in a
/// step do. A step that saw fewer than `min_requests` is judged as if it had seen that many:
/// on a quiet endpoint a failing green may answer only a handful of requests before the next
/// step, and waiting for a full sample would let it reach 100 %, where nothing can retry its
/// failures on blue. So a few failures among few requests fail the gate (one out of up to
/// `min_requests` does when `max_rate_percent` < 100 / `min_requests`); a larger sample is
/// judged by its own rate.
pub(crate) fn error_rate_breached(
    requests: u64,
    failures: u64,
    min_requests: u64,
    max_rate_percent: f64,
) -> Option<f64> {
    if failures == 0 {
        return None;
    }
    let rate = failures as f64 * 100.0 / requests.max(min_requests).max(1) as f64;
    (rate > max_rate_percent).then_some(rate)
}

enum Gate {
    Pass,
    /// Cannot tell now (green's API does not answer): do not advance, do not roll back.
    Unknown(String),
    Fail(String),
}

struct Reconcile<'a> {
    swap: &'a ClusterSwap,
    ctx: &'a Context,
    name: String,
    api: Api<ClusterSwap>,
    clusters: Api<Cluster>,
}

impl<'a> Reconcile<'a> {
    fn new(swap: &'a ClusterSwap, ctx: &'a Context) -> Self {
        Reconcile {
            swap,
            ctx,
            name: swap.name_any(),
            api: Api::all(ctx.client.clone()),
            clusters: Api::all(ctx.client.clone()),
        }
    }

    async fn run(&self) -> Result<Action, Error> {
        let status = self.swap.status.clone().unwrap_or_default();
        if self.swap.metadata.deletion_timestamp.is_some() {
            return self.deleting(status).await;
        }
        let phase = status.phase;
        if phase.is_terminal() {
            return Ok(Action::await_change());
        }
        if self.ensure_finalizer().await? {
            return Ok(Action::await_change());
        }
        let spec = &self.swap.spec;
        let Some(cluster) = self.clusters.get_opt(&spec.cluster_ref).await? else {
            if phase == Phase::Pending {
                return self
                    .wait(
                        status,
                        Reason::ClusterNotFound,
                        format!("Cluster {} does not exist", spec.cluster_ref),
                        Duration::from_secs(10),
                    )
                    .await;
            }
            return self
                .transition(
                    status,
                    Phase::Failed,
                    Reason::ClusterNotFound,
                    format!(
                        "Cluster {} was deleted during the swap; instances are left as they are",
                        spec.cluster_ref
                    ),
                )
                .await;
        };

        if spec.rollback && phase.allows_rollback() {
            return self
                .start_rollback(
                    &cluster,
                    status,
                    Reason::RollbackRequested,
                    "spec.rollback is set".into(),
                )
                .await;
        }
        if spec.paused && phase != Phase::RollingBack {
            return self.paused(&cluster, status).await;
        }

        match phase {
            Phase::Pending => self.pending(&cluster, status).await,
            Phase::Provisioning => self.provisioning(&cluster, status).await,
            Phase::WaitingForGreen => self.waiting_for_green(&cluster, status).await,
            Phase::Migrating => self.migrating(&cluster, status).await,
            Phase::Verifying => self.verifying(&cluster, status).await,
            Phase::ShiftingTraffic => self.shifting(&cluster, status).await,
            Phase::Draining => self.draining(&cluster, status).await,
            Phase::Retaining => self.retaining(&cluster, status).await,
            Phase::Decommissioning => self.decommissioning(&cluster, status).await,
            Phase::RollingBack => self.rolling_back(&cluster, status).await,
            Phase::Succeeded | Phase::RolledBack | Phase::Failed => Ok(Action::await_change()),
        }
    }

    // ---------------------------------------------------------------- phases

    async fn pending(&self, cluster: &Cluster, status: ClusterSwapStatus) -> Result<Action, Error> {
        if let Err(errors) = self.swap.spec.validate() {
            let message = errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ");
            return self
                .transition(status, Phase::Failed, Reason::InvalidSpec, message)
                .await;
        }
        let cstatus = cluster.status.clone().unwrap_or_default();
        let Some(active) = cstatus.active_instance.clone() else {
            return self
                .wait(
                    status,
                    Reason::NoActiveInstance,
                    format!("Cluster {} has no active instance yet", cluster.name_any()),
                    self.ctx.settings.poll_interval,
                )
                .await;
        };
        // Claim the Cluster: one swap at a time, decided by an optimistic-concurrency write.
        if let Some(other) = cstatus.current_swap.as_deref().filter(|o| *o != self.name) {
            let other_active = self
                .api
                .get_opt(other)
                .await?
                .is_some_and(|o| !o.status.unwrap_or_default().phase.is_terminal());
            if other_active {
                return self
                    .wait(
                        status,
                        Reason::AnotherSwapActive,
                        format!(
                            "ClusterSwap {other} is in progress on Cluster {}",
                            cluster.name_any()
                        ),
                        self.ctx.settings.poll_interval,
                    )
                    .await;
            }
        }
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
        let mut status = status;
        status.blue_instance = Some(active.clone());
        self.transition(
            status,
            Phase::Provisioning,
            Reason::ProvisioningGreen,
            format!("blue is {active}; requesting green from the provider"),
        )
        .await
    }

    fn green_name(&self) -> String {
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

    async fn provisioning(
        &self,
        cluster: &Cluster,
        mut status: ClusterSwapStatus,
    ) -> Result<Action, Error> {
        let provider = self.ctx.provider(cluster)?;
        let green = status
            .green_instance
            .clone()
            .unwrap_or_else(|| self.green_name());
        let spec = self.instance_spec(cluster, &green);
        let instance = match provider.create_instance(&spec).await {
            Ok(instance) => instance,
            Err(e) if !e.is_retryable() => {
                return self
                    .transition(status, Phase::Failed, Reason::ProviderError, e.to_string())
                    .await;
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
        self.transition(
            status,
            Phase::WaitingForGreen,
            Reason::GreenCreated,
            format!(
                "the provider is creating green {green} (Kubernetes {})",
                spec.kubernetes_version
            ),
        )
        .await
    }

    async fn waiting_for_green(
        &self,
        cluster: &Cluster,
        status: ClusterSwapStatus,
    ) -> Result<Action, Error> {
        let provider = self.ctx.provider(cluster)?;
        let green = self.green(&status)?;
        let timed_out = self.in_phase_for(&status) > self.ctx.settings.green_ready_timeout;
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
                return self
                    .start_rollback(
                        cluster,
                        status,
                        Reason::ProviderError,
                        format!(
                            "the provider reports green {green} failed: {}",
                            instance.message
                        ),
                    )
                    .await;
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
                Ok(Ok(message)) => {
                    self.update_cluster(cluster, |st| {
                        set_instance_phase(&mut st.instances, &green, InstancePhase::Ready)
                    })
                    .await?;
                    return self
                        .transition(status, Phase::Migrating, Reason::GreenReady, message)
                        .await;
                }
                Ok(Err(why)) => why,
                Err(e) => {
                    self.ctx.members.forget(&green);
                    e.to_string()
                }
            },
        };
        if timed_out {
            return self
                .start_rollback(
                    cluster,
                    status,
                    Reason::TimedOut,
                    format!(
                        "green {green} not ready within {:?}: {not_ready}",
                        self.ctx.settings.green_ready_timeout
                    ),
                )
                .await;
        }
        self.wait(status, Reason::GreenNotReady, not_ready, after)
            .await
    }

    /// Starts discovery's watch of green (a trigger for the next reconciles), then reads
    /// green's readiness through its API.
    async fn watch_then_check(
        &self,
        cluster: &Cluster,
        green: &str,
    ) -> Result<Result<String, String>, Error> {
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

    /// `Ok(Ok(summary))` when green is reachable, at the target version, all nodes Ready;
    /// `Ok(Err(why))` when it is reachable but not there yet.
    async fn green_ready(
        &self,
        cluster: &Cluster,
        green: &str,
    ) -> Result<Result<String, String>, Error> {
        let provider = self.ctx.provider(cluster)?;
        let client = self.ctx.members.get(&provider, green).await?;
        let minor = health::minor_version(&client, green).await?;
        let target = cluster.spec.with_target(&self.swap.spec.target);
        let want = target_minor(&target.kubernetes_version);
        if want.is_some_and(|w| w != minor) {
            return Ok(Err(format!(
                "green {green} runs 1.{minor}, the target is {}",
                target.kubernetes_version
            )));
        }
        let (ready, total) = health::nodes_ready(&client, green).await?;
        if total == 0 || ready < total {
            return Ok(Err(format!("green {green}: {ready}/{total} nodes Ready")));
        }
        Ok(Ok(format!(
            "green {green} is reachable, runs 1.{minor}, {ready}/{total} nodes Ready"
        )))
    }

    fn selection(&self, cluster: &Cluster) -> Selection {
        Selection {
            cluster: cluster.spec.workloads.clone(),
            policy: self.swap.spec.strategy.migration.selector.clone(),
        }
    }

    async fn migrating(
        &self,
        cluster: &Cluster,
        mut status: ClusterSwapStatus,
    ) -> Result<Action, Error> {
        let provider = self.ctx.provider(cluster)?;
        let (blue, green) = (self.blue(&status)?, self.green(&status)?);
        let blue_client = self.ctx.members.get(&provider, &blue).await?;
        let green_client = self.ctx.members.get(&provider, &green).await?;
        let outcome = migration::migrate(
            &self.ctx.checkpoints,
            &self.ctx.client,
            &self.name,
            &blue_client,
            &blue,
            &green_client,
            &green,
            &cluster.spec.workloads,
            &self.swap.spec.strategy.migration,
        )
        .await?;
        let (total, applied, resumed) = match outcome {
            migration::Outcome::Done {
                total,
                applied,
                resumed,
            } => (total, applied, resumed),
            migration::Outcome::Refused(why) => {
                return self
                    .start_rollback(cluster, status, Reason::MigrationFailed, why)
                    .await;
            }
        };
        self.ctx
            .checkpoints
            .forget(&self.ctx.client, &self.name)
            .await;
        let resumed = if resumed > 0 {
            format!(" ({resumed} already there by the checkpoint)")
        } else {
            String::new()
        };
        status.migration = Some(MigrationProgress {
            objects_total: total,
            objects_applied: applied,
            objects_ready: 0,
        });
        self.transition(
            status,
            Phase::Verifying,
            Reason::MigrationComplete,
            format!("applied {applied} objects from {blue} to {green}{resumed}"),
        )
        .await
    }

    async fn verifying(
        &self,
        cluster: &Cluster,
        mut status: ClusterSwapStatus,
    ) -> Result<Action, Error> {
        let provider = self.ctx.provider(cluster)?;
        let green = self.green(&status)?;
        let client = self.ctx.members.get(&provider, &green).await?;
        let workloads = health::workloads(&client, &green, &self.selection(cluster)).await?;
        if !workloads.all_available() {
            let why = format!(
                "{}/{} workloads available in green {green}; waiting for {}",
                workloads.available,
                workloads.total,
                workloads.holding_up.join(", ")
            );
            if self.in_phase_for(&status) > self.ctx.settings.verify_timeout {
                return self
                    .start_rollback(cluster, status, Reason::HealthGateFailed, why)
                    .await;
            }
            return self
                .wait(
                    status,
                    Reason::MigrationInProgress,
                    why,
                    self.ctx.settings.poll_interval,
                )
                .await;
        }
        // The safe point: green is verified and no traffic has moved. A paused rollout (or one
        // whose maintenance window closed) holds its swaps here rather than mid-shift.
        if self.swap.spec.hold_before_traffic {
            return self
                .wait(
                    status,
                    Reason::Parked,
                    format!(
                        "green {green} is verified; parked before traffic moves \
                         (spec.holdBeforeTraffic, set by its rollout)"
                    ),
                    self.ctx.settings.poll_interval,
                )
                .await;
        }
        // Attach green with no share; the first traffic step gives it one.
        let (endpoint, shifter) = self.traffic(cluster)?;
        let blue_addr = self.traffic_address(cluster, &self.blue(&status)?).await?;
        let green_addr = self.traffic_address(cluster, &green).await?;
        shifter
            .register(endpoint, blue_addr, Some(green_addr))
            .await?;
        shifter.set_weights(endpoint, Weights::all_blue()).await?;
        if let Some(m) = status.migration.as_mut() {
            m.objects_ready = m.objects_applied;
        }
        status.current_step = None;
        self.transition(
            status,
            Phase::ShiftingTraffic,
            Reason::VerificationPassed,
            format!(
                "{}/{} workloads available in green {green}",
                workloads.available, workloads.total
            ),
        )
        .await
    }

    async fn shifting(
        &self,
        cluster: &Cluster,
        mut status: ClusterSwapStatus,
    ) -> Result<Action, Error> {
        let steps = &self.swap.spec.strategy.traffic_steps;
        let Some(step) = status.current_step else {
            return self.apply_step(cluster, status, 0).await;
        };
        self.ensure_traffic(cluster, &status).await?;
        match self.gates(cluster, &status).await? {
            Gate::Fail(why) => {
                return self
                    .start_rollback(cluster, status, Reason::HealthGateFailed, why)
                    .await;
            }
            Gate::Unknown(why) => {
                return self
                    .wait(
                        status,
                        Reason::GreenNotReady,
                        why,
                        self.ctx.settings.poll_interval,
                    )
                    .await;
            }
            Gate::Pass => {}
        }
        let bake = self.swap.spec.strategy.bake();
        let baked = status
            .step_started_at
            .as_ref()
            .map(|t| self.ctx.elapsed(&format!("swap/{}/step", self.name), t))
            .unwrap_or(bake);
        if baked < bake {
            return Ok(Action::requeue(
                self.ctx.settings.gate_interval.min(bake - baked),
            ));
        }
        let next = step as usize + 1;
        if next < steps.len() {
            return self.apply_step(cluster, status, next).await;
        }
        status.green_weight_percent = 100;
        self.transition(
            status,
            Phase::Draining,
            Reason::TrafficShifted,
            "green carries 100 % of the traffic; blue drains".into(),
        )
        .await
    }

    /// Records step `index` (the intent), then applies it to the traffic layer.
    async fn apply_step(
        &self,
        cluster: &Cluster,
        mut status: ClusterSwapStatus,
        index: usize,
    ) -> Result<Action, Error> {
        let pct = self.swap.spec.strategy.traffic_steps[index];
        status.current_step = Some(index as u32);
        status.green_weight_percent = pct;
        let t = now();
        status.step_started_at = Some(t.clone());
        self.write(status.clone()).await?;
        self.ctx
            .mark_started(format!("swap/{}/step", self.name), &t);
        self.ensure_traffic(cluster, &status).await?;
        self.event(
            false,
            Reason::TrafficStepApplied,
            format!("green {pct} %, blue {} %", 100 - pct),
        )
        .await;
        Ok(Action::requeue(self.ctx.settings.gate_interval))
    }

    async fn draining(
        &self,
        cluster: &Cluster,
        status: ClusterSwapStatus,
    ) -> Result<Action, Error> {
        self.ensure_traffic(cluster, &status).await?;
        let (blue, green) = (self.blue(&status)?, self.green(&status)?);
        self.update_cluster(cluster, |st| {
            let mut changed = st.active_instance.as_deref() != Some(green.as_str());
            st.active_instance = Some(green.clone());
            changed |= set_instance_phase(&mut st.instances, &green, InstancePhase::Active);
            changed |= set_instance_phase(&mut st.instances, &blue, InstancePhase::Retained);
            changed
        })
        .await?;
        if let Gate::Fail(why) = self.gates(cluster, &status).await? {
            return self
                .start_rollback(cluster, status, Reason::HealthGateFailed, why)
                .await;
        }
        // Clients that cached blue's address (DNS) reach it for the shifter's settle time.
        let drain = self
            .ctx
            .settings
            .drain
            .max(self.traffic(cluster)?.1.settle_time());
        let drained = self.in_phase_for(&status);
        if drained < drain {
            return Ok(Action::requeue(
                self.ctx.settings.gate_interval.min(drain - drained),
            ));
        }
        let retention = self.swap.spec.strategy.blue_retention();
        self.transition(
            status,
            Phase::Retaining,
            Reason::RetainingBlue,
            format!("blue {blue} stays idle for {retention:?} so a rollback stays possible"),
        )
        .await
    }

    async fn retaining(
        &self,
        cluster: &Cluster,
        mut status: ClusterSwapStatus,
    ) -> Result<Action, Error> {
        self.ensure_traffic(cluster, &status).await?;
        if let Gate::Fail(why) = self.gates(cluster, &status).await? {
            return self
                .start_rollback(cluster, status, Reason::HealthGateFailed, why)
                .await;
        }
        let strategy = &self.swap.spec.strategy;
        if strategy.blue_while_retained == BlueWhileRetained::ScaledToZero
            && !strategy.blue_retention().is_zero()
        {
            match status.blue_workloads {
                BlueWorkloads::Serving => {
                    // The intent first: from here on a rollback restores blue before it moves
                    // traffic, even if the scale-down below is cut off halfway.
                    status.blue_workloads = BlueWorkloads::ScalingDown;
                    self.write(status).await?;
                    return Ok(Action::requeue(Duration::ZERO));
                }
                BlueWorkloads::ScalingDown => {
                    return self.scale_blue_down(cluster, status).await;
                }
                BlueWorkloads::ScaledToZero | BlueWorkloads::Restoring => {}
            }
        }
        let retention = self.swap.spec.strategy.blue_retention();
        let retained = self.in_phase_for(&status);
        if retained < retention {
            return Ok(Action::requeue(
                self.ctx.settings.gate_interval.min(retention - retained),
            ));
        }
        let blue = self.blue(&status)?;
        self.transition(
            status,
            Phase::Decommissioning,
            Reason::RetentionExpired,
            format!("retention over; deleting blue {blue}"),
        )
        .await
    }

    async fn decommissioning(
        &self,
        cluster: &Cluster,
        status: ClusterSwapStatus,
    ) -> Result<Action, Error> {
        // Green becomes the endpoint's only backend before blue goes away.
        self.ensure_traffic(cluster, &status).await?;
        let blue = self.blue(&status)?;
        if !self.instance_gone(cluster, &blue).await? {
            let after = self.deletion_poll();
            return self
                .wait(
                    status,
                    Reason::Decommissioned,
                    format!("the provider is deleting blue {blue}"),
                    after,
                )
                .await;
        }
        self.ctx.cloud_poll_done(&poll_key(&self.name));
        self.update_cluster(cluster, |st| {
            let before = st.instances.len();
            st.instances.retain(|i| i.name != blue);
            let released = st.current_swap.as_deref() == Some(self.name.as_str());
            if released {
                st.current_swap = None;
            }
            before != st.instances.len() || released
        })
        .await?;
        let green = self.green(&status)?;
        self.transition(
            status,
            Phase::Succeeded,
            Reason::SwapSucceeded,
            format!(
                "green {green} serves Cluster {}; blue {blue} is deleted",
                cluster.name_any()
            ),
        )
        .await
    }

    /// Scales blue's selected workloads to zero (traffic left blue in Draining). A failure is
    /// a Warning and a retry, never a reason to hold the swap: retention goes on, and blue is
    /// deleted at its end either way.
    async fn scale_blue_down(
        &self,
        cluster: &Cluster,
        mut status: ClusterSwapStatus,
    ) -> Result<Action, Error> {
        let blue = self.blue(&status)?;
        let scaled = async {
            let provider = self.ctx.provider(cluster)?;
            let client = self.ctx.members.get(&provider, &blue).await?;
            blue_replicas::scale_to_zero(&client, &blue, &self.name, &self.selection(cluster)).await
        }
        .await;
        match scaled {
            Ok(changed) => {
                status.blue_workloads = BlueWorkloads::ScaledToZero;
                self.write(status).await?;
                self.event(
                    false,
                    Reason::BlueScaledDown,
                    format!(
                        "scaled {} workloads of blue {blue} to zero while it is retained; a \
                         rollback restores them before traffic moves back",
                        changed.patched + changed.already
                    ),
                )
                .await;
                Ok(Action::requeue(Duration::ZERO))
            }
            Err(e) => {
                self.event(
                    true,
                    Reason::BlueScaledDown,
                    format!("scaling blue {blue}'s workloads to zero failed, retrying: {e}"),
                )
                .await;
                Ok(Action::requeue(self.ctx.settings.gate_interval))
            }
        }
    }

    /// When to ask the cloud again about a deletion in progress (the adaptive schedule).
    fn deletion_poll(&self) -> Duration {
        self.ctx
            .cloud_poll(
                &poll_key(&self.name),
                rotor_providers::poll::Observed::InProgress,
            )
            .after
    }

    /// Marks `instance` Deleting in the Cluster's status and has the provider delete it
    /// (idempotently); true once the provider no longer knows it.
    async fn instance_gone(&self, cluster: &Cluster, instance: &str) -> Result<bool, Error> {
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

    /// All traffic back to blue at once (one shifter call), then record RollingBack.
    async fn start_rollback(
        &self,
        cluster: &Cluster,
        mut status: ClusterSwapStatus,
        reason: Reason,
        message: String,
    ) -> Result<Action, Error> {
        let phase = status.phase;
        let blue_down = matches!(
            status.blue_workloads,
            BlueWorkloads::ScalingDown | BlueWorkloads::ScaledToZero | BlueWorkloads::Restoring
        );
        if blue_down {
            // Blue has nothing running to take the traffic: it stays where it is until blue's
            // workloads are back (RollingBack restores them, then moves it in one call).
            status.blue_workloads = BlueWorkloads::Restoring;
        } else {
            if phase.lifecycle_index() >= Phase::ShiftingTraffic.lifecycle_index() {
                let (endpoint, shifter) = self.traffic(cluster)?;
                shifter.rollback(endpoint).await?;
            }
            status.green_weight_percent = 0;
        }
        status.current_step = None;
        status.step_started_at = None;
        self.forget_baseline();
        let message = if blue_down {
            format!("{message}; restoring blue's workloads before traffic moves back")
        } else {
            message
        };
        self.transition(status, Phase::RollingBack, reason, message)
            .await
    }

    /// A rollback from a scaled-down blue: give blue's workloads their replicas back, and once
    /// they are all available, move all traffic to blue in one call. `None` when traffic is on
    /// blue (go on with the rollback), else the wait.
    async fn restore_blue(
        &self,
        cluster: &Cluster,
        mut status: ClusterSwapStatus,
    ) -> Result<Result<ClusterSwapStatus, Action>, Error> {
        if status.blue_workloads != BlueWorkloads::Restoring {
            return Ok(Ok(status));
        }
        let blue = self.blue(&status)?;
        let provider = self.ctx.provider(cluster)?;
        let client = self.ctx.members.get(&provider, &blue).await?;
        blue_replicas::restore(&client, &blue, &self.name).await?;
        let workloads = health::workloads(&client, &blue, &self.selection(cluster)).await?;
        if !workloads.all_available() {
            let action = self
                .wait(
                    status,
                    Reason::RestoringBlue,
                    format!(
                        "restoring blue {blue}: {}/{} workloads available ({}); traffic stays on \
                         green until they are",
                        workloads.available,
                        workloads.total,
                        workloads.holding_up.join(", ")
                    ),
                    self.ctx.settings.poll_interval.min(Duration::from_secs(1)),
                )
                .await?;
            return Ok(Err(action));
        }
        let (endpoint, shifter) = self.traffic(cluster)?;
        shifter.rollback(endpoint).await?;
        status.blue_workloads = BlueWorkloads::Serving;
        status.green_weight_percent = 0;
        self.write(status.clone()).await?;
        self.event(
            false,
            Reason::RestoringBlue,
            format!(
                "blue {blue}'s {} workloads are available again; all traffic is on blue",
                workloads.total
            ),
        )
        .await;
        Ok(Ok(status))
    }

    async fn rolling_back(
        &self,
        cluster: &Cluster,
        status: ClusterSwapStatus,
    ) -> Result<Action, Error> {
        let blue = self.blue(&status).ok();
        if blue.is_some() {
            self.ensure_traffic(cluster, &status).await?;
        }
        let status = match self.restore_blue(cluster, status).await? {
            Ok(status) => status,
            Err(wait) => return Ok(wait),
        };
        self.ctx.provider(cluster)?;
        if let Some(blue) = &blue {
            self.update_cluster(cluster, |st| {
                let changed = st.active_instance.as_deref() != Some(blue.as_str());
                st.active_instance = Some(blue.clone());
                set_instance_phase(&mut st.instances, blue, InstancePhase::Active) | changed
            })
            .await?;
        }
        // A deleted swap keeps nothing: no swap would be left to account for green.
        let keep_green = self.swap.spec.strategy.keep_green_on_rollback
            && self.swap.metadata.deletion_timestamp.is_none();
        // Traffic is on blue from here. Clients that cached green's address (DNS) still reach
        // it for the shifter's settle time: green goes only after that.
        let settle = self
            .traffic(cluster)
            .map(|(_, shifter)| shifter.settle_time())
            .unwrap_or_default();
        if let Some(green) = status.green_instance.clone().filter(|_| !keep_green)
            && !settle.is_zero()
        {
            let on_blue = self
                .ctx
                .since_first(&format!("swap/{}/rolled-back-traffic", self.name));
            if on_blue < settle {
                let left = settle - on_blue;
                return self
                    .wait(
                        status,
                        Reason::RollbackRequested,
                        format!(
                            "traffic is on blue; green {green} is deleted {}s after, once \
                             clients' cached DNS answers for it have expired",
                            settle.as_secs()
                        ),
                        left,
                    )
                    .await;
            }
        }
        if let Some(green) = status.green_instance.clone().filter(|_| !keep_green)
            && !self.instance_gone(cluster, &green).await?
        {
            let after = self.deletion_poll();
            return self
                .wait(
                    status,
                    Reason::RollbackRequested,
                    format!("traffic is on blue; the provider is deleting green {green}"),
                    after,
                )
                .await;
        }
        self.ctx.cloud_poll_done(&poll_key(&self.name));
        let green = status.green_instance.clone();
        self.update_cluster(cluster, |st| {
            let before = st.instances.len();
            let mut kept = false;
            if keep_green && let Some(g) = &green {
                kept = set_instance_phase(&mut st.instances, g, InstancePhase::Failed);
            } else {
                st.instances.retain(|i| Some(&i.name) != green.as_ref());
            }
            let released = st.current_swap.as_deref() == Some(self.name.as_str());
            if released {
                st.current_swap = None;
            }
            before != st.instances.len() || released || kept
        })
        .await?;
        self.transition(
            status,
            Phase::RolledBack,
            Reason::RolledBack,
            format!(
                "blue {} serves Cluster {}; green {}",
                blue.unwrap_or_default(),
                cluster.name_any(),
                if keep_green {
                    "is kept for inspection (strategy.keepGreenOnRollback)"
                } else {
                    "is deleted"
                }
            ),
        )
        .await
    }

    async fn paused(
        &self,
        cluster: &Cluster,
        mut status: ClusterSwapStatus,
    ) -> Result<Action, Error> {
        let carrying = matches!(
            status.phase,
            Phase::ShiftingTraffic | Phase::Draining | Phase::Retaining
        );
        if carrying {
            // Paused freezes progress, not safety: gates still roll back.
            self.ensure_traffic(cluster, &status).await?;
            if let Gate::Fail(why) = self.gates(cluster, &status).await? {
                return self
                    .start_rollback(cluster, status, Reason::HealthGateFailed, why)
                    .await;
            }
        }
        let changed = set_condition(
            &mut status.conditions,
            Condition::new(
                ConditionType::Paused,
                ConditionStatus::True,
                Reason::Paused,
                format!("spec.paused is set; frozen in {}", status.phase),
                now(),
                self.swap.metadata.generation,
            ),
        );
        if changed {
            self.write(status).await?;
            self.event(false, Reason::Paused, "spec.paused is set".into())
                .await;
        }
        Ok(if carrying {
            Action::requeue(self.ctx.settings.gate_interval)
        } else {
            Action::await_change()
        })
    }

    // ---------------------------------------------------------------- traffic and gates

    /// The Cluster's traffic endpoint and the shifter that serves it.
    fn traffic<'c>(
        &self,
        cluster: &'c Cluster,
    ) -> Result<(&'c str, &'a Arc<dyn TrafficShifter>), Error> {
        let shifter = self.ctx.shifter(cluster.spec.traffic.shifter)?;
        Ok((cluster.spec.traffic.endpoint.as_str(), shifter))
    }

    /// Where `instance` answers application traffic, from the provider (cached: it does not
    /// change during an instance's life).
    async fn traffic_address(
        &self,
        cluster: &Cluster,
        instance: &str,
    ) -> Result<SocketAddr, Error> {
        if let Some(addr) = self.ctx.cached_address(instance) {
            return Ok(addr);
        }
        let provider = self.ctx.provider(cluster)?;
        let addr = provider
            .get_instance(instance)
            .await?
            .and_then(|i| i.traffic_address)
            .ok_or_else(|| Error::Member {
                instance: instance.to_string(),
                message: "the provider reports no traffic address".into(),
            })?;
        self.ctx.cache_address(instance, addr);
        Ok(addr)
    }

    /// Converge the traffic layer to what the status says.
    async fn ensure_traffic(
        &self,
        cluster: &Cluster,
        status: &ClusterSwapStatus,
    ) -> Result<(), Error> {
        let endpoint = cluster.spec.traffic.endpoint.as_str();
        let shifter = self.ctx.shifter(cluster.spec.traffic.shifter)?;
        let blue = self.blue(status)?;
        // Green carries a share from ShiftingTraffic on, and keeps it during a rollback to a
        // blue whose workloads are still coming back (Restoring).
        let shared = matches!(
            status.phase,
            Phase::ShiftingTraffic | Phase::Draining | Phase::Retaining
        ) || (status.phase == Phase::RollingBack
            && status.blue_workloads == BlueWorkloads::Restoring);
        match status.phase {
            _ if shared => {
                let green = self.green(status)?;
                let want = Weights::green(status.green_weight_percent)?;
                let have = shifter.weights(endpoint).await.ok();
                if have != Some(want) {
                    let blue_addr = self.traffic_address(cluster, &blue).await?;
                    let green_addr = self.traffic_address(cluster, &green).await?;
                    shifter
                        .register(endpoint, blue_addr, Some(green_addr))
                        .await?;
                    shifter.set_weights(endpoint, want).await?;
                }
            }
            Phase::Decommissioning | Phase::Succeeded => {
                let green = self.green(status)?;
                let green_addr = self.traffic_address(cluster, &green).await?;
                shifter.register(endpoint, green_addr, None).await?;
            }
            _ => {
                let blue_addr = self.traffic_address(cluster, &blue).await?;
                if shifter.weights(endpoint).await.ok() != Some(Weights::all_blue()) {
                    shifter.rollback(endpoint).await.ok();
                }
                shifter.register(endpoint, blue_addr, None).await?;
            }
        }
        Ok(())
    }

    /// Green's health gates: its workloads available, its error rate since the current step
    /// began below the threshold.
    ///
    /// Availability comes from discovery's in-memory summary of green when it is current, and
    /// from a list through green's API otherwise. "Current" is [`Context::current_summary`]:
    /// watched with this swap's selection, synced, reachable, no watch failing, and heard from
    /// within the watchdog's bound (`silence + probe_timeout`). That bound is what makes a
    /// summary safe to act on: a gate decides whether green keeps its share of live traffic,
    /// and a summary kept past it could describe an instance that stopped answering long ago
    /// (a passing gate on stale data keeps traffic on a dead green; a failing one rolls back a
    /// healthy swap). Within it, discovery has either heard from green or is still inside the
    /// window the watchdog itself gives an instance before calling it unreachable; past it, the
    /// gate asks green directly, and an unanswered read is `Unknown` (hold, do not advance).
    /// Events a live connection fails to deliver are bounded by discovery's periodic resync,
    /// not by this check.
    /// Green's failure rate since the current step began, when over the threshold: why the
    /// gate fails.
    fn error_rate_gate(
        &self,
        status: &ClusterSwapStatus,
        green: &str,
        stats: rotor_traffic::BackendStats,
    ) -> Option<String> {
        let gates = &self.swap.spec.strategy.health_gates;
        let step = status.current_step.unwrap_or(u32::MAX);
        let base = self.ctx.gate_baseline(&self.name, step, stats.green);
        let requests = stats.green.requests.saturating_sub(base.requests);
        let failures = stats.green.failures.saturating_sub(base.failures);
        let min = self.ctx.settings.min_gate_requests;
        let rate = error_rate_breached(requests, failures, min, gates.max_error_rate_percent)?;
        let over = if requests < min {
            format!(" counted over at least {min}")
        } else {
            String::new()
        };
        Some(format!(
            "green {green} failed {failures} of {requests} requests at {} % ({rate:.1} %{over} > {} %)",
            status.green_weight_percent, gates.max_error_rate_percent
        ))
    }

    async fn gates(&self, cluster: &Cluster, status: &ClusterSwapStatus) -> Result<Gate, Error> {
        let gates = &self.swap.spec.strategy.health_gates;
        let green = self.green(status)?;
        let (endpoint, shifter) = self.traffic(cluster)?;
        // A DNS shifter sees no requests: the error-rate gate has nothing to read, and the
        // availability gate below is all there is (the docs of `route53` say so).
        let counted = match shifter.backend_stats(endpoint).await {
            Ok(stats) => Some(stats),
            Err(rotor_traffic::TrafficError::NoRequestCounts { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        if let Some(stats) = counted
            && let Some(why) = self.error_rate_gate(status, &green, stats)
        {
            return Ok(Gate::Fail(why));
        }
        if gates.require_availability {
            let selection = self.selection(cluster);
            if let Some(summary) = self.ctx.current_summary(&green, &selection.discovery()) {
                if summary.workloads_available < summary.workloads_total {
                    return Ok(Gate::Fail(format!(
                        "{}/{} workloads available in green {green}: {}",
                        summary.workloads_available,
                        summary.workloads_total,
                        summary.reason.unwrap_or_default()
                    )));
                }
                return Ok(Gate::Pass);
            }
            let provider = self.ctx.provider(cluster)?;
            let checked = async {
                let client = self.ctx.members.get(&provider, &green).await?;
                health::workloads(&client, &green, &selection).await
            }
            .await;
            match checked {
                Ok(w) if !w.all_available() => {
                    return Ok(Gate::Fail(format!(
                        "{}/{} workloads available in green {green}: {}",
                        w.available,
                        w.total,
                        w.holding_up.join(", ")
                    )));
                }
                Ok(_) => {}
                Err(e) => {
                    self.ctx.members.forget(&green);
                    return Ok(Gate::Unknown(e.to_string()));
                }
            }
        }
        Ok(Gate::Pass)
    }

    fn forget_baseline(&self) {
        self.ctx.forget_gate_baseline(&self.name);
    }

    // ---------------------------------------------------------------- status

    fn blue(&self, status: &ClusterSwapStatus) -> Result<String, Error> {
        status.blue_instance.clone().ok_or_else(|| {
            Error::Other(format!(
                "ClusterSwap {}: status.blueInstance is not set",
                self.name
            ))
        })
    }

    fn green(&self, status: &ClusterSwapStatus) -> Result<String, Error> {
        status.green_instance.clone().ok_or_else(|| {
            Error::Other(format!(
                "ClusterSwap {}: status.greenInstance is not set",
                self.name
            ))
        })
    }

    /// How long the swap has been in its current phase.
    fn in_phase_for(&self, status: &ClusterSwapStatus) -> Duration {
        status
            .history
            .iter()
            .rev()
            .find(|t| t.phase == status.phase)
            .map(|t| {
                self.ctx
                    .elapsed(&format!("swap/{}/phase/{}", self.name, t.phase), &t.time)
            })
            .unwrap_or(Duration::ZERO)
    }

    /// Writes `status` with the resourceVersion this reconcile read (409 when stale).
    async fn write(&self, mut status: ClusterSwapStatus) -> Result<(), Error> {
        status.observed_generation = self.swap.metadata.generation;
        let mut obj = self.swap.clone();
        obj.status = Some(status);
        self.api
            .replace_status(&self.name, &PostParams::default(), &obj)
            .await?;
        Ok(())
    }

    async fn event(&self, warning: bool, reason: Reason, note: String) {
        let action = self
            .swap
            .status
            .as_ref()
            .map(|s| s.phase.as_str())
            .unwrap_or("Pending");
        self.ctx
            .recorder
            .publish(
                &object_ref(self.swap),
                warning,
                reason.as_str(),
                action,
                note,
            )
            .await;
    }

    /// Records why the swap waits (a condition, when it changed) and polls again after `after`.
    async fn wait(
        &self,
        mut status: ClusterSwapStatus,
        reason: Reason,
        message: String,
        after: Duration,
    ) -> Result<Action, Error> {
        let changed = set_condition(
            &mut status.conditions,
            Condition::new(
                ConditionType::Progressing,
                ConditionStatus::True,
                reason,
                message.clone(),
                now(),
                self.swap.metadata.generation,
            ),
        );
        if changed {
            self.write(status).await?;
            self.event(false, reason, message).await;
        }
        Ok(Action::requeue(after))
    }

    /// Moves to `next` (the lifecycle decides whether that is allowed), updates the
    /// conditions, writes, and records an Event.
    async fn transition(
        &self,
        mut status: ClusterSwapStatus,
        next: Phase,
        reason: Reason,
        message: String,
    ) -> Result<Action, Error> {
        let t = now();
        status
            .transition(next, t.clone(), reason, message.clone())
            .map_err(|e| Error::Other(format!("ClusterSwap {}: {e}", self.name)))?;
        let generation = self.swap.metadata.generation;
        if !self.swap.spec.paused
            && rotor_api::find_condition(&status.conditions, ConditionType::Paused)
                .is_some_and(|c| c.is_true())
        {
            set_condition(
                &mut status.conditions,
                Condition::new(
                    ConditionType::Paused,
                    ConditionStatus::False,
                    Reason::Resumed,
                    "spec.paused was cleared".to_string(),
                    t.clone(),
                    generation,
                ),
            );
        }
        let mut set = |type_: ConditionType, on: bool| {
            let status_value = if on {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            };
            set_condition(
                &mut status.conditions,
                Condition::new(
                    type_,
                    status_value,
                    reason,
                    message.clone(),
                    t.clone(),
                    generation,
                ),
            );
        };
        set(ConditionType::Progressing, !next.is_terminal());
        set(ConditionType::Ready, next == Phase::Succeeded);
        match next {
            Phase::Migrating => set(ConditionType::GreenReady, true),
            Phase::Verifying => set(ConditionType::Migrated, true),
            Phase::ShiftingTraffic => set(ConditionType::Verified, true),
            Phase::Draining => {
                set(ConditionType::TrafficShifted, true);
                set(ConditionType::BlueRetained, true);
            }
            Phase::Decommissioning => set(ConditionType::BlueRetained, false),
            Phase::RollingBack | Phase::Failed => set(ConditionType::Degraded, true),
            _ => {}
        }
        self.write(status).await?;
        let took = self
            .swap
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(|created| t.0.duration_since(created.0).try_into().ok())
            .map(|d: Duration| d.as_secs_f64());
        self.ctx
            .metrics
            .swap_transition(next, reason.as_str(), took);
        self.ctx
            .mark_started(format!("swap/{}/phase/{next}", self.name), &t);
        if next.is_terminal() {
            self.ctx.cloud_poll_done(&poll_key(&self.name));
        }
        if next.is_terminal()
            && let Some(green) = self
                .swap
                .status
                .as_ref()
                .and_then(|s| s.green_instance.as_ref())
        {
            self.ctx.forget_green(green);
        }
        tracing::info!(swap = %self.name, phase = %next, %reason, %message, "swap phase");
        let warning = matches!(next, Phase::RollingBack | Phase::Failed);
        self.ctx
            .recorder
            .publish(
                &object_ref(self.swap),
                warning,
                reason.as_str(),
                next.as_str(),
                message,
            )
            .await;
        // The watch event of this write triggers the next step; the requeue is a safety net.
        Ok(Action::requeue(self.ctx.settings.poll_interval))
    }

    /// Read-modify-write of the Cluster's status with its resourceVersion (409 when stale).
    async fn update_cluster(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_among_few_requests_fails_the_gate() {
        // No failure: never a breach, however few or many requests.
        assert_eq!(error_rate_breached(0, 0, 20, 1.0), None);
        assert_eq!(error_rate_breached(3, 0, 20, 1.0), None);
        // One failure in the only request of a quiet step: judged over 20 → 5 % > 1 %.
        assert_eq!(error_rate_breached(1, 1, 20, 1.0), Some(5.0));
        // Four attempts of one request retried on green itself, all failed.
        assert_eq!(error_rate_breached(4, 4, 20, 1.0), Some(20.0));
        // A tolerant gate lets one failure in a small sample pass (1 of ≥ 20 = 5 % ≤ 10 %).
        assert_eq!(error_rate_breached(2, 1, 20, 10.0), None);
        assert_eq!(error_rate_breached(5, 3, 20, 10.0), Some(15.0));
        // A full sample is judged by its own rate.
        assert_eq!(error_rate_breached(1000, 10, 20, 1.0), None);
        assert_eq!(error_rate_breached(1000, 11, 20, 1.0), Some(1.1));
        // min_requests 0 still never divides by zero.
        assert_eq!(error_rate_breached(0, 1, 0, 1.0), Some(100.0));
    }

    #[test]
    fn target_minor_parses_versions() {
        assert_eq!(target_minor("1.35.0"), Some(35));
        assert_eq!(target_minor("v1.34"), Some(34));
        assert_eq!(target_minor("2.0"), None);
    }
}
