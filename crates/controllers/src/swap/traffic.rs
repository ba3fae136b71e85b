//! ShiftingTraffic, and the traffic layer every phase converges to its status: green's share
//! grows step by step while the gates pass, each step has baked and every metric gate has
//! passed its evaluations in a row in it.

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use rotor_api::{BlueWorkloads, Cluster, ClusterSwapStatus, HookPoint, Phase, Reason};
use rotor_traffic::{TrafficShifter, Weights};

use super::Reconcile;
use super::gates::Gate;
use super::hooks::At;
use super::metric_gates::MetricGates;
use super::readings;
use super::step::Step;
use crate::{Error, now};

impl<'a> Reconcile<'a> {
    pub(super) async fn shifting(
        &self,
        cluster: &Cluster,
        status: &mut ClusterSwapStatus,
    ) -> Result<Step, Error> {
        let steps = &self.swap.spec.strategy.traffic_steps;
        let Some(step) = status.current_step else {
            let first = At::point(HookPoint::BeforeFirstTrafficStep, steps.first().copied());
            if let Some(wait) = self.hooks_at(cluster, status, first).await? {
                return Ok(wait);
            }
            return self.apply_step(cluster, status, 0).await;
        };
        self.ensure_traffic(cluster, status).await?;
        let judged = self.gates(cluster, status).await?;
        let metric_gates = &self.swap.spec.strategy.health_gates.metric_gates;
        match judged.gate {
            Gate::Fail(why) => {
                readings::record(status, judged.readings, &[]);
                return Ok(Step::roll_back(Reason::HealthGateFailed, why.to_string()));
            }
            Gate::Unknown(why) => {
                return Ok(Step::wait(
                    Reason::GreenNotReady,
                    why.to_string(),
                    self.ctx.settings.poll_interval,
                ));
            }
            Gate::Pass => {}
        }
        let metric_due = match self.metric_step(cluster, status).await? {
            ControlFlow::Break(decided) => {
                if matches!(decided, Step::RollBack { .. }) {
                    readings::record(status, judged.readings, metric_gates);
                }
                return Ok(decided);
            }
            ControlFlow::Continue(due) => due,
        };
        if let Some(wait) = self.step_not_over(status, metric_due) {
            return Ok(wait);
        }
        if let Some(decided) = self.too_few_requests(status, judged.counted)? {
            if matches!(decided, Step::RollBack { .. }) {
                readings::record(status, judged.readings, metric_gates);
            }
            return Ok(decided);
        }
        let next = step as usize + 1;
        if next < steps.len() {
            if let Some(wait) = self.undecided(cluster, status, judged.counted).await? {
                return Ok(wait);
            }
            if let Some(wait) = self
                .after_step(cluster, status, step, steps.get(next))
                .await?
            {
                return Ok(wait);
            }
            readings::record(status, judged.readings, metric_gates);
            return self.apply_step(cluster, status, next).await;
        }
        if let Some(wait) = self.after_step(cluster, status, step, None).await? {
            return Ok(wait);
        }
        readings::record(status, judged.readings, metric_gates);
        status.green_weight_percent = 100;
        Ok(Step::advance(
            Phase::Draining,
            Reason::TrafficShifted,
            "green carries 100 % of the traffic; blue drains",
        ))
    }

    /// The metric gates' say: a rollback or a hold, or when the next is due while a gate
    /// still needs passes in this step (None: each has them, or there are none).
    async fn metric_step(
        &self,
        cluster: &Cluster,
        status: &mut ClusterSwapStatus,
    ) -> Result<ControlFlow<Step, Option<Duration>>, Error> {
        Ok(match self.metric_gates(cluster, status).await? {
            MetricGates::Failed(why) => {
                ControlFlow::Break(Step::roll_back(Reason::MetricGateFailed, why.to_string()))
            }
            MetricGates::Held(why) => ControlFlow::Break(Step::hold(
                Reason::MetricGateInconclusive,
                why,
                self.ctx.settings.gate_interval,
            )),
            MetricGates::Pending(due) => ControlFlow::Continue(Some(due)),
            MetricGates::Passed => ControlFlow::Continue(None),
        })
    }

    /// A look again later while the step bakes, or a metric gate still needs passes in it
    /// (`metric_due`); recording what the metric gates read, when there are any.
    fn step_not_over(
        &self,
        status: &ClusterSwapStatus,
        metric_due: Option<Duration>,
    ) -> Option<Step> {
        let bake = self.swap.spec.strategy.bake();
        let baked = status
            .step_started_at
            .as_ref()
            .map(|t| self.ctx.swaps.in_step(&self.name, t))
            .unwrap_or(bake);
        let baking = (baked < bake).then(|| bake - baked);
        let after = [baking, metric_due].into_iter().flatten().min()?;
        let after = after.min(self.ctx.settings.gate_interval);
        if self.swap.spec.strategy.health_gates.metric_gates.is_empty() {
            Some(Step::Requeue(after))
        } else {
            Some(Step::Record(after))
        }
    }

    /// The `AfterEachStep` hooks of step `step`, once it is over (`next`: the share of the
    /// step that follows, None after the last).
    async fn after_step(
        &self,
        cluster: &Cluster,
        status: &mut ClusterSwapStatus,
        step: u32,
        next: Option<&u8>,
    ) -> Result<Option<Step>, Error> {
        let at = At {
            point: HookPoint::AfterEachStep,
            step: Some(step),
            next_weight: next.copied(),
        };
        self.hooks_at(cluster, status, at).await
    }

    /// Records step `index` (the intent), then applies it to the traffic layer.
    async fn apply_step(
        &self,
        cluster: &Cluster,
        status: &mut ClusterSwapStatus,
        index: usize,
    ) -> Result<Step, Error> {
        let pct = self.swap.spec.strategy.traffic_steps[index];
        status.current_step = Some(index as u32);
        status.green_weight_percent = pct;
        let t = now();
        status.step_started_at = Some(t.clone());
        self.write(status.clone()).await?;
        self.ctx.swaps.mark_step(&self.name, &t);
        self.ensure_traffic(cluster, status).await?;
        self.event(
            false,
            Reason::TrafficStepApplied,
            format!("green {pct} %, blue {} %", 100 - pct),
        )
        .await;
        Ok(Step::Requeue(self.ctx.settings.gate_interval))
    }

    /// The Cluster's traffic endpoint and the shifter that serves it. The swap takes the
    /// endpoint over: what the Cluster controller attached to it no longer holds.
    pub(super) fn traffic<'c>(
        &self,
        cluster: &'c Cluster,
    ) -> Result<(&'c str, &'a Arc<dyn TrafficShifter>), Error> {
        let shifter = self.ctx.shifter(cluster.spec.traffic.shifter)?;
        self.ctx.attachments.forget(&cluster.spec.traffic.endpoint);
        Ok((cluster.spec.traffic.endpoint.as_str(), shifter))
    }

    /// Where `instance` answers application traffic, from the provider (cached: it does not
    /// change during an instance's life).
    pub(super) async fn traffic_address(
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
    pub(super) async fn ensure_traffic(
        &self,
        cluster: &Cluster,
        status: &ClusterSwapStatus,
    ) -> Result<(), Error> {
        let (endpoint, shifter) = self.traffic(cluster)?;
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
            // Blue keeps its slot, with weight 0, until it is gone (see `attach_green_alone`);
            // a traffic layer that forgot the split (restarted) gets green alone at once.
            Phase::Decommissioning => {
                if shifter.weights(endpoint).await.ok() != Some(Weights::green(100)?) {
                    self.attach_green_alone(cluster, status).await?;
                }
            }
            Phase::Succeeded => self.attach_green_alone(cluster, status).await?,
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

    /// Green becomes the endpoint's only backend, in blue's slot. Only once blue is gone: a
    /// proxy that pools connections to a server keeps the ones to blue's address in that slot,
    /// and a request sent on one as blue closes it would fail; with blue gone they are closed
    /// before the slot carries traffic again.
    pub(super) async fn attach_green_alone(
        &self,
        cluster: &Cluster,
        status: &ClusterSwapStatus,
    ) -> Result<(), Error> {
        let (endpoint, shifter) = self.traffic(cluster)?;
        let green = self.green(status)?;
        let green_addr = self.traffic_address(cluster, &green).await?;
        shifter.register(endpoint, green_addr, None).await?;
        Ok(())
    }
}
