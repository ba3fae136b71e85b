//! Migrating and Verifying: copy blue's selected workloads to green (ordered, resumable
//! server-side apply from a durable checkpoint), then wait until they are available in green
//! and attach green to the traffic endpoint with no share.

use rotor_api::{Cluster, ClusterSwapStatus, HookPoint, MigrationProgress, Phase, Reason};
use rotor_traffic::Weights;

use super::Reconcile;
use super::hooks::At;
use super::step::Step;
use crate::health::{self, Selection};
use crate::tasks::Polled;
use crate::{Error, migration};

impl Reconcile<'_> {
    /// What of a member cluster this swap moves and judges: the Cluster's workloads, narrowed
    /// by the swap's migration policy.
    pub(super) fn selection(&self, cluster: &Cluster) -> Selection {
        Selection {
            cluster: cluster.spec.workloads.clone(),
            policy: self.swap.spec.strategy.migration.selector.clone(),
        }
    }

    /// The migration runs as a task ([`crate::tasks`]): the first reconcile starts it, later
    /// ones write its progress into status, and the one after it ended judges the outcome. A
    /// task that failed is started again, resuming from its checkpoint.
    pub(super) async fn migrating(
        &self,
        cluster: &Cluster,
        status: &mut ClusterSwapStatus,
    ) -> Result<Step, Error> {
        let (blue, green) = (self.blue(status)?, self.green(status)?);
        let poll = self.ctx.settings.poll_interval;
        match self.ctx.migrations.poll(&self.name) {
            None => {
                self.start_migration(cluster, &blue, &green).await?;
                Ok(Step::wait(
                    Reason::MigrationInProgress,
                    format!("migrating the selected objects from {blue} to {green}"),
                    poll,
                ))
            }
            Some(Polled::Running(progress)) => {
                let (done, total) = progress.read();
                status.migration = Some(MigrationProgress {
                    objects_total: total,
                    objects_applied: done.min(total),
                    objects_ready: 0,
                });
                Ok(Step::wait(
                    Reason::MigrationInProgress,
                    format!("migrating the selected objects from {blue} to {green}"),
                    poll,
                ))
            }
            Some(Polled::Ended(outcome)) => self.migrated(status, outcome?, &blue, &green).await,
        }
    }

    async fn start_migration(
        &self,
        cluster: &Cluster,
        blue: &str,
        green: &str,
    ) -> Result<(), Error> {
        let member = |client, name: &str| migration::Member {
            client,
            name: name.to_string(),
        };
        let job = migration::Job {
            control: self.ctx.client.clone(),
            swap: self.name.clone(),
            blue: member(self.member(cluster, blue).await?, blue),
            green: member(self.member(cluster, green).await?, green),
            workloads: cluster.spec.workloads.clone(),
            policy: self.swap.spec.strategy.migration.clone(),
            metrics: self.ctx.metrics.clone(),
        };
        let checkpoints = self.ctx.checkpoints.clone();
        self.ctx
            .migrations
            .start(&self.name, |progress| async move {
                job.run(&checkpoints, &progress).await
            });
        Ok(())
    }

    /// The migration ended with `outcome`: on to Verifying, or back if green refused it.
    async fn migrated(
        &self,
        status: &mut ClusterSwapStatus,
        outcome: migration::Outcome,
        blue: &str,
        green: &str,
    ) -> Result<Step, Error> {
        let (total, applied, resumed) = match outcome {
            migration::Outcome::Done {
                total,
                applied,
                resumed,
            } => (total, applied, resumed),
            migration::Outcome::Refused(why) => {
                return Ok(Step::roll_back(Reason::MigrationFailed, why));
            }
        };
        self.ctx.checkpoints.forget(&self.ctx.client, green).await;
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
        Ok(Step::advance(
            Phase::Verifying,
            Reason::MigrationComplete,
            format!("applied {applied} objects from {blue} to {green}{resumed}"),
        ))
    }

    pub(super) async fn verifying(
        &self,
        cluster: &Cluster,
        status: &mut ClusterSwapStatus,
    ) -> Result<Step, Error> {
        let first = self.swap.spec.strategy.traffic_steps.first().copied();
        let migrated = At::point(HookPoint::AfterMigration, first);
        if let Some(step) = self.hooks_at(cluster, status, migrated).await? {
            return Ok(step);
        }
        let green = self.green(status)?;
        let client = self.member(cluster, &green).await?;
        let workloads = health::workloads(&client, &green, &self.selection(cluster)).await?;
        if !workloads.all_available() {
            let why = format!(
                "{}/{} workloads available in green {green}; waiting for {}",
                workloads.available,
                workloads.total,
                workloads.holding_up.join(", ")
            );
            if self.in_phase_for(status) > self.ctx.settings.verify_timeout {
                return Ok(Step::roll_back(Reason::HealthGateFailed, why));
            }
            return Ok(Step::wait(
                Reason::MigrationInProgress,
                why,
                self.ctx.settings.poll_interval,
            ));
        }
        // The safe point: green is verified and no traffic has moved. A paused rollout (or one
        // whose maintenance window closed) holds its swaps here rather than mid-shift.
        if self.swap.spec.hold_before_traffic {
            return Ok(Step::wait(
                Reason::Parked,
                format!(
                    "green {green} is verified; parked before traffic moves \
                     (spec.holdBeforeTraffic, set by its rollout)"
                ),
                self.ctx.settings.poll_interval,
            ));
        }
        // Attach green with no share; the first traffic step gives it one.
        let (endpoint, shifter) = self.traffic(cluster)?;
        let blue_addr = self.traffic_address(cluster, &self.blue(status)?).await?;
        let green_addr = self.traffic_address(cluster, &green).await?;
        shifter
            .register(endpoint, blue_addr, Some(green_addr))
            .await?;
        shifter.set_weights(endpoint, Weights::all_blue()).await?;
        if let Some(m) = status.migration.as_mut() {
            m.objects_ready = m.objects_applied;
        }
        status.current_step = None;
        Ok(Step::advance(
            Phase::ShiftingTraffic,
            Reason::VerificationPassed,
            format!(
                "{}/{} workloads available in green {green}",
                workloads.available, workloads.total
            ),
        ))
    }
}
