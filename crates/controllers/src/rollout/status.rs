//! What a reconcile decided, and the one place that carries it out: the phase, the conditions,
//! the status write, then the Events (so an Event never tells of a status that was not written).

use std::time::{Duration, Instant};

use kube::api::{Api, PostParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use rotor_api::{
    Condition, ConditionStatus, ConditionType, Reason, Rollout, RolloutPhase, RolloutStatus,
    WavePhase, set_condition,
};

use super::budget::Pause;
use super::fleet_rollback::{Abort, FleetProgress};
use super::waves::{Progress, WaveEvent};
use super::{Reconcile, STEP, backoff_key};
use crate::Error;

/// What one reconcile decided.
#[derive(Debug, PartialEq)]
pub(super) enum Decision {
    /// The spec is invalid (the message says where): the rollout fails.
    Fail(String),
    /// The plan was frozen: `clusters` clusters in the waves `summary` lists.
    Planned { clusters: usize, summary: String },
    /// No Cluster is selected: nothing to do.
    NothingSelected,
    /// The pre-flight ran; whether it `blocked` any cluster, and what it found.
    Preflighted { blocked: bool, message: String },
    /// The waves ran: whether the rollout is paused, and where its waves are.
    Run { pause: Option<Pause>, waves: Waves },
    /// A budget was exceeded under `onBudgetExceeded: RollbackFleet`: the fleet rolls back.
    RollBackFleet(FleetProgress),
    /// `spec.retryFailed` was acted on: these clusters run again.
    Retried { clusters: Vec<String> },
}

/// Where the waves are.
#[derive(Debug, PartialEq)]
pub(super) enum Waves {
    /// Every wave ended.
    Done,
    /// A wave is current.
    Current(Progress),
}

/// An Event on the Rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Note {
    Plan {
        clusters: usize,
        summary: String,
    },
    Preflight {
        blocked: bool,
        message: String,
    },
    Pause(Pause),
    Skip {
        cluster: String,
        message: String,
    },
    Wave(WaveEvent),
    Complete {
        clusters: usize,
    },
    /// The fleet rollback starts, for the reason given.
    FleetRollback {
        message: String,
    },
    /// These swaps were asked to roll back.
    RollbackAsked {
        swaps: Vec<String>,
    },
    /// Every swap of the aborted rollout ended.
    FleetRolledBack {
        message: String,
    },
    /// These clusters run again.
    Retried {
        clusters: Vec<String>,
    },
}

impl Note {
    fn warning(&self) -> bool {
        match self {
            Note::Preflight { blocked, .. } => *blocked,
            Note::Pause(p) => p.reason() == Reason::FailureBudgetExceeded,
            Note::Skip { .. } | Note::FleetRollback { .. } | Note::FleetRolledBack { .. } => true,
            Note::Plan { .. }
            | Note::Wave(_)
            | Note::Complete { .. }
            | Note::RollbackAsked { .. }
            | Note::Retried { .. } => false,
        }
    }

    fn reason(&self) -> Reason {
        match self {
            Note::Plan { .. } => Reason::WaveInProgress,
            Note::Preflight { blocked: true, .. } => Reason::PreflightBlocked,
            Note::Preflight { blocked: false, .. } => Reason::PreflightPassed,
            Note::Pause(p) => p.reason(),
            Note::Skip { .. } => Reason::ClusterSkipped,
            Note::Wave(w) => w.reason(),
            Note::Complete { .. } => Reason::RolloutComplete,
            Note::FleetRollback { .. } => Reason::FailureBudgetExceeded,
            Note::RollbackAsked { .. } => Reason::FleetRollingBack,
            Note::FleetRolledBack { .. } => Reason::FleetRolledBack,
            Note::Retried { .. } => Reason::RetryingFailed,
        }
    }

    /// The Event's action.
    fn action(&self) -> &'static str {
        match self {
            Note::Plan { .. } => "Plan",
            Note::Preflight { .. } => "Preflight",
            Note::Pause(_) => "Pause",
            Note::Skip { .. } => "Skip",
            Note::Wave(_) => "Wave",
            Note::Complete { .. } => "Complete",
            Note::FleetRollback { .. }
            | Note::RollbackAsked { .. }
            | Note::FleetRolledBack { .. } => "RollbackFleet",
            Note::Retried { .. } => "Retry",
        }
    }

    pub(super) fn message(&self, rollout: &str) -> String {
        match self {
            Note::Plan { clusters, summary } => format!("{clusters} clusters in waves: {summary}"),
            Note::Preflight { message, .. } => message.clone(),
            Note::Pause(p) => p.to_string(),
            Note::Skip { cluster, message } => {
                format!("{cluster} left out of the rollout: {message}")
            }
            Note::Wave(w) => w.message(rollout),
            Note::Complete { clusters } => format!("all waves done: {clusters} clusters"),
            Note::FleetRollback { message } => format!(
                "{message}; onBudgetExceeded: RollbackFleet: no swap starts, every swap not yet \
                 decommissioned rolls back"
            ),
            Note::RollbackAsked { swaps } => {
                format!(
                    "{} swaps asked to roll back: {}",
                    swaps.len(),
                    swaps.join(", ")
                )
            }
            Note::FleetRolledBack { message } => message.clone(),
            Note::Retried { clusters } => format!(
                "spec.retryFailed: {} clusters run again: {}",
                clusters.len(),
                clusters.join(", ")
            ),
        }
    }
}

/// What [`Reconcile::settle`] leaves to do after the status is written.
pub(super) struct Settled {
    pub(super) action: Action,
    pub(super) notes: Vec<Note>,
    /// Whether the rollout's error backoff starts over.
    pub(super) reset_backoff: bool,
}

impl Reconcile<'_> {
    /// Carries out `decision`: phase and conditions into `status`, the status write, Events.
    pub(super) async fn apply(
        &self,
        mut status: RolloutStatus,
        decision: Decision,
    ) -> Result<Action, Error> {
        let settled = self.settle(&mut status, decision);
        self.write(status).await?;
        self.notify(&settled.notes);
        for note in settled.notes {
            let object = self.rollout.object_ref(&());
            let (warning, reason, action) = (note.warning(), note.reason(), note.action());
            let message = note.message(&self.name);
            let recorder = &self.ctx.recorder;
            recorder
                .publish(&object, warning, reason.as_str(), action, message)
                .await;
        }
        if settled.reset_backoff {
            self.ctx.reset_backoff(&backoff_key(&self.name));
        }
        Ok(settled.action)
    }

    /// `decision`'s phase and conditions, set in `status`; the Events and requeue it calls for.
    pub(super) fn settle(&self, status: &mut RolloutStatus, decision: Decision) -> Settled {
        let mut notes = Vec::new();
        let reset_backoff = matches!(
            decision,
            Decision::Run {
                waves: Waves::Current(_),
                ..
            }
        );
        let action = match decision {
            Decision::Fail(message) => {
                status.phase = RolloutPhase::Failed;
                self.set(
                    status,
                    ConditionType::Ready,
                    false,
                    Reason::InvalidSpec,
                    message,
                );
                Action::await_change()
            }
            Decision::Planned { clusters, summary } => {
                status.phase = RolloutPhase::Progressing;
                notes.push(Note::Plan { clusters, summary });
                Action::requeue(STEP)
            }
            Decision::NothingSelected => {
                status.phase = RolloutPhase::Succeeded;
                let message = "no Cluster matches spec.clusterSelector".to_string();
                self.set(
                    status,
                    ConditionType::Ready,
                    true,
                    Reason::NoClustersSelected,
                    message,
                );
                Action::requeue(STEP)
            }
            Decision::Preflighted { blocked, message } => {
                let reason = match blocked {
                    true => Reason::PreflightBlocked,
                    false => Reason::PreflightPassed,
                };
                let type_ = ConditionType::PreflightPassed;
                self.set(status, type_, !blocked, reason, message.clone());
                notes.push(Note::Preflight { blocked, message });
                Action::requeue(STEP)
            }
            Decision::Run { pause, waves } => self.settle_run(status, pause, waves, &mut notes),
            Decision::RollBackFleet(fleet) => self.settle_fleet(status, fleet, &mut notes),
            Decision::Retried { clusters } => {
                let message = format!("running again: {}", clusters.join(", "));
                self.set(
                    status,
                    ConditionType::Ready,
                    false,
                    Reason::RetryingFailed,
                    message,
                );
                notes.push(Note::Retried { clusters });
                Action::requeue(STEP)
            }
        };
        Settled {
            action,
            notes,
            reset_backoff,
        }
    }

    /// The `Paused` condition (an Event when it turns on), then the waves' end or progress.
    fn settle_run(
        &self,
        status: &mut RolloutStatus,
        pause: Option<Pause>,
        waves: Waves,
        notes: &mut Vec<Note>,
    ) -> Action {
        let changed = match &pause {
            Some(p) => self.set(
                status,
                ConditionType::Paused,
                true,
                p.reason(),
                p.to_string(),
            ),
            None => self.set(status, ConditionType::Paused, false, Reason::Resumed, ""),
        };
        if changed && let Some(p) = &pause {
            notes.push(Note::Pause(p.clone()));
        }
        match waves {
            Waves::Current(progress) => self.settle_wave(status, pause.is_some(), progress, notes),
            // Every wave ran; paused (over budget) it is not a success: a retry or a skip may
            // still bring it there.
            Waves::Done if pause.is_some() => {
                status.phase = RolloutPhase::Paused;
                status.current_wave = None;
                Action::requeue(self.ctx.settings.poll_interval)
            }
            Waves::Done => {
                status.phase = RolloutPhase::Succeeded;
                status.current_wave = None;
                let c = &status.counts;
                let message = format!(
                    "{} succeeded, {} rolled back, {} failed",
                    c.succeeded, c.rolled_back, c.failed
                );
                self.set(
                    status,
                    ConditionType::Ready,
                    true,
                    Reason::RolloutComplete,
                    message,
                );
                // Every swap ended: none is held any more.
                self.set(status, ConditionType::SwapsHeld, false, Reason::Healthy, "");
                let clusters = status.waves.iter().map(|w| w.clusters.len()).sum();
                notes.push(Note::Complete { clusters });
                Action::await_change()
            }
        }
    }

    /// An aborted rollout: `Paused` and `Ready` say which budget and clusters; `RollingBack`
    /// while any swap runs, then `RolledBack` (told once).
    fn settle_fleet(
        &self,
        status: &mut RolloutStatus,
        fleet: FleetProgress,
        notes: &mut Vec<Note>,
    ) -> Action {
        let why = status
            .fleet_rollback
            .as_ref()
            .map(|f| f.message.clone())
            .unwrap_or_default();
        if fleet.abort == Abort::Starts {
            notes.push(Note::FleetRollback {
                message: why.clone(),
            });
        }
        if !fleet.asked.is_empty() {
            notes.push(Note::RollbackAsked { swaps: fleet.asked });
        }
        let budget = Reason::FailureBudgetExceeded;
        self.set(status, ConditionType::Paused, true, budget, why.clone());
        let (reason, message) = if fleet.running > 0 {
            status.phase = RolloutPhase::RollingBack;
            let message = format!(
                "{why}; onBudgetExceeded: RollbackFleet: {} swaps still running",
                fleet.running
            );
            (Reason::FleetRollingBack, message)
        } else {
            let c = &status.counts;
            let message = format!(
                "{why}; the fleet rolled back: {} rolled back, {} failed, {} succeeded before \
                 the abort",
                c.rolled_back, c.failed, c.succeeded
            );
            if status.phase != RolloutPhase::RolledBack {
                notes.push(Note::FleetRolledBack {
                    message: message.clone(),
                });
            }
            status.phase = RolloutPhase::RolledBack;
            (Reason::FleetRolledBack, message)
        };
        self.set(status, ConditionType::Ready, false, reason, message.clone());
        self.set(status, ConditionType::Progressing, false, reason, message);
        match status.phase {
            RolloutPhase::RolledBack => Action::await_change(),
            _ => Action::requeue(self.ctx.settings.poll_interval),
        }
    }

    /// The current wave's conditions: `InMaintenanceWindow`, `Degraded` (clusters waiting),
    /// `SwapsHeld` (swaps held by a gate without data), `Progressing`; the phase.
    fn settle_wave(
        &self,
        status: &mut RolloutStatus,
        paused: bool,
        p: Progress,
        notes: &mut Vec<Note>,
    ) -> Action {
        status.current_wave = Some(p.wave as u32);
        if let Some(inside) = p.window {
            let (reason, message) = match inside {
                true => (Reason::WaveInProgress, ""),
                false => (
                    Reason::OutsideMaintenanceWindow,
                    "no swap starts outside spec.maintenanceWindows",
                ),
            };
            self.set(
                status,
                ConditionType::InMaintenanceWindow,
                inside,
                reason,
                message,
            );
        }
        notes.extend(p.skipped.into_iter().map(|s| Note::Skip {
            cluster: s.cluster,
            message: s.message,
        }));
        let (reason, message) = match p.waiting.is_empty() {
            true => (Reason::Healthy, String::new()),
            false => (
                Reason::ClusterUnavailable,
                format!(
                    "{} clusters wait before their swap can start: {}",
                    p.waiting.len(),
                    p.waiting.join("; ")
                ),
            ),
        };
        let degraded = !p.waiting.is_empty();
        self.set(status, ConditionType::Degraded, degraded, reason, message);
        let (reason, message) = match p.held.is_empty() {
            true => (Reason::Healthy, String::new()),
            false => (
                Reason::MetricGateInconclusive,
                format!("{} swaps held: {}", p.held.len(), p.held.join("; ")),
            ),
        };
        let held = !p.held.is_empty();
        self.set(status, ConditionType::SwapsHeld, held, reason, message);
        let wave = &status.waves[p.wave];
        status.phase = if paused {
            RolloutPhase::Paused
        } else if wave.phase == WavePhase::WaitingForApproval {
            RolloutPhase::WaitingForApproval
        } else {
            RolloutPhase::Progressing
        };
        let message = format!(
            "wave {} ({}) {}; {} of {} swaps running",
            p.wave, wave.name, wave.phase, p.in_flight, self.spec.max_concurrent_swaps
        );
        let type_ = ConditionType::Progressing;
        self.set(status, type_, !paused, Reason::WaveInProgress, message);
        notes.extend(p.event.map(Note::Wave));
        Action::requeue(p.requeue)
    }

    /// Sets a condition observed now; whether it changed.
    fn set(
        &self,
        status: &mut RolloutStatus,
        type_: ConditionType,
        on: bool,
        reason: Reason,
        message: impl Into<String>,
    ) -> bool {
        let on = match on {
            true => ConditionStatus::True,
            false => ConditionStatus::False,
        };
        let generation = self.rollout.metadata.generation;
        let condition = Condition::new(type_, on, reason, message, self.t.clone(), generation);
        set_condition(&mut status.conditions, condition)
    }

    /// Writes `status` unless it is what the Rollout has, or differs only in its counts and
    /// the last write was less than [`COUNTS_EVERY`] ago (a later reconcile writes them: a
    /// running rollout is re-queued every poll interval).
    async fn write(&self, mut status: RolloutStatus) -> Result<(), Error> {
        // A spec change that changes nothing else is still observed: the write goes out.
        status.observed_generation = self.rollout.metadata.generation;
        let Some(stored) = self.rollout.status.as_ref() else {
            return self.replace(status).await;
        };
        if *stored == status || (only_counts_differ(stored, &status) && self.wrote_lately()) {
            return Ok(());
        }
        self.replace(status).await
    }

    /// Whether this process wrote the rollout's status less than [`COUNTS_EVERY`] ago.
    fn wrote_lately(&self) -> bool {
        crate::lock(&self.state.written)
            .get(&self.name)
            .is_some_and(|at| at.elapsed() < COUNTS_EVERY)
    }

    /// Writes `status` (its `observedGeneration` set by [`Self::write`]).
    async fn replace(&self, status: RolloutStatus) -> Result<(), Error> {
        let mut obj = self.rollout.clone();
        obj.status = Some(status);
        let api: Api<Rollout> = Api::all(self.ctx.client.clone());
        api.replace_status(&obj.name_any(), &PostParams::default(), &obj)
            .await?;
        crate::lock(&self.state.written).insert(self.name.clone(), Instant::now());
        Ok(())
    }
}

/// Least time between two status writes that change nothing but the swap counts. A status
/// names every cluster of every wave (about 300 kB at 10,000 clusters), and each write is
/// decoded, validated, stored and sent to every watcher; 500 swaps in flight change the counts
/// at every trigger window.
pub(super) const COUNTS_EVERY: Duration = Duration::from_secs(1);

/// Whether `new` is `stored` but for the rollout's and its waves' counts, and the messages
/// of conditions whose status and reason stay (`Progressing` says how many swaps run).
fn only_counts_differ(stored: &RolloutStatus, new: &RolloutStatus) -> bool {
    if stored.waves.len() != new.waves.len() || stored.conditions.len() != new.conditions.len() {
        return false;
    }
    let mut recounted = stored.clone();
    recounted.counts = new.counts.clone();
    for (wave, counted) in recounted.waves.iter_mut().zip(&new.waves) {
        wave.counts = counted.counts.clone();
    }
    for (c, now) in recounted.conditions.iter_mut().zip(&new.conditions) {
        if (c.type_, c.status, c.reason) == (now.type_, now.status, now.reason) {
            c.message = now.message.clone();
        }
    }
    recounted == *new
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::rollout::State;
    use crate::rollout::fixtures::waves;
    use crate::rollout::fleet_rollback::{Abort, FleetProgress};
    use crate::rollout::skip::SkipReason;
    use rotor_api::find_condition;

    /// A State whose client is never called: settling writes nothing.
    fn state() -> State {
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let client = kube::Client::try_from(config).expect("client");
        let ctx = crate::Context::new(client, crate::Settings::default());
        State {
            ctx: Arc::new(ctx),
            swaps: kube::runtime::reflector::store().0,
            clusters: kube::runtime::reflector::store().0,
            created: Mutex::default(),
            deleted: Mutex::default(),
            written: Mutex::default(),
        }
    }

    #[tokio::test]
    async fn a_finished_rollout_drops_its_count_pacing_entry() {
        let state = Arc::new(state());
        let mut rollout = rotor_api::sample_rollout("r", "1.35.0");
        crate::lock(&state.written).insert("r".into(), std::time::Instant::now());
        rollout.status = Some(RolloutStatus {
            phase: RolloutPhase::Succeeded,
            ..Default::default()
        });
        let action = crate::rollout::reconcile(Arc::new(rollout), state.clone())
            .await
            .expect("a finished rollout reconciles without a call");
        assert_eq!(action, Action::await_change());
        assert!(crate::lock(&state.written).is_empty());
    }

    #[tokio::test]
    async fn a_spec_change_alone_is_written_as_observed() {
        let state = state();
        let mut rollout = rotor_api::sample_rollout("r", "1.35.0");
        rollout.metadata.generation = Some(2);
        let stored = RolloutStatus {
            observed_generation: Some(2),
            ..Default::default()
        };
        rollout.status = Some(stored.clone());
        let r = Reconcile::new(&rollout, &state);
        // Nothing changed: no write (this state's client answers no call).
        r.write(stored.clone()).await.expect("no write, no call");
        // The spec moved on (generation 3), the status did not: the write is attempted.
        rollout.metadata.generation = Some(3);
        let r = Reconcile::new(&rollout, &state);
        let attempted = r.write(stored).await;
        assert!(attempted.is_err(), "a write was due: {attempted:?}");
    }

    fn condition(status: &RolloutStatus, type_: ConditionType) -> (bool, Reason, String) {
        let c = find_condition(&status.conditions, type_).expect("the condition");
        (c.is_true(), c.reason, c.message.clone())
    }

    fn over_budget() -> Pause {
        Pause::OverBudget {
            budget: 0,
            failed: vec!["b (HealthGateFailed: too many errors)".into()],
        }
    }

    #[tokio::test]
    async fn a_paused_wave_sets_every_condition_and_tells_the_pause_once() {
        let state = state();
        let rollout = rotor_api::sample_rollout("r", "1.35.0");
        let r = Reconcile::new(&rollout, &state);
        let mut status = RolloutStatus {
            waves: waves(&[("canary", &["a", "b"]), ("rest", &["c"])]),
            ..Default::default()
        };
        status.waves[0].phase = WavePhase::InProgress;
        let progress = || Progress {
            wave: 0,
            in_flight: 1,
            window: Some(false),
            waiting: vec!["c (stopped)".into()],
            skipped: vec![SkipReason::Stopped.entry("d", "rest", "stopped".into())],
            held: vec!["a: metric gate errors cannot be judged".into()],
            gates: None,
            event: None,
            requeue: Duration::from_secs(3),
        };
        let decision = || Decision::Run {
            pause: Some(over_budget()),
            waves: Waves::Current(progress()),
        };
        let settled = r.settle(&mut status, decision());
        assert_eq!(settled.action, Action::requeue(Duration::from_secs(3)));
        assert!(settled.reset_backoff);
        assert_eq!(status.phase, RolloutPhase::Paused);
        assert_eq!(status.current_wave, Some(0));
        let paused = condition(&status, ConditionType::Paused);
        assert_eq!((paused.0, paused.1), (true, Reason::FailureBudgetExceeded));
        assert_eq!(
            condition(&status, ConditionType::InMaintenanceWindow),
            (
                false,
                Reason::OutsideMaintenanceWindow,
                "no swap starts outside spec.maintenanceWindows".into()
            )
        );
        assert_eq!(
            condition(&status, ConditionType::Degraded),
            (
                true,
                Reason::ClusterUnavailable,
                "1 clusters wait before their swap can start: c (stopped)".into()
            )
        );
        assert_eq!(
            condition(&status, ConditionType::Progressing),
            (
                false,
                Reason::WaveInProgress,
                "wave 0 (canary) InProgress; 1 of 50 swaps running".into()
            )
        );
        assert_eq!(
            condition(&status, ConditionType::SwapsHeld),
            (
                true,
                Reason::MetricGateInconclusive,
                "1 swaps held: a: metric gate errors cannot be judged".into()
            )
        );
        let told: Vec<(bool, Reason, &str)> = settled
            .notes
            .iter()
            .map(|n| (n.warning(), n.reason(), n.action()))
            .collect();
        assert_eq!(
            told,
            [
                (true, Reason::FailureBudgetExceeded, "Pause"),
                (true, Reason::ClusterSkipped, "Skip")
            ]
        );
        assert_eq!(
            settled.notes[1].message("r"),
            "d left out of the rollout: stopped"
        );
        // The same pause again: the condition holds, no second Event.
        let again = r.settle(&mut status, decision());
        assert!(again.notes.iter().all(|n| !matches!(n, Note::Pause(_))));
    }

    #[tokio::test]
    async fn a_fleet_rollback_names_the_budget_and_ends_rolled_back_once_every_swap_ended() {
        let state = state();
        let rollout = rotor_api::sample_rollout("r", "1.35.0");
        let r = Reconcile::new(&rollout, &state);
        let why = over_budget().to_string();
        let mut status = RolloutStatus {
            waves: waves(&[("canary", &["a", "b"])]),
            fleet_rollback: Some(rotor_api::FleetRollback {
                message: why.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let starts = FleetProgress {
            abort: Abort::Starts,
            asked: vec!["r-a".into()],
            running: 1,
        };
        let settled = r.settle(&mut status, Decision::RollBackFleet(starts));
        assert_eq!(status.phase, RolloutPhase::RollingBack);
        assert_eq!(
            settled.action,
            Action::requeue(state.ctx.settings.poll_interval)
        );
        assert_eq!(
            condition(&status, ConditionType::Paused),
            (true, Reason::FailureBudgetExceeded, why.clone())
        );
        let ready = condition(&status, ConditionType::Ready);
        assert_eq!((ready.0, ready.1), (false, Reason::FleetRollingBack));
        assert!(
            ready.2.contains("b (HealthGateFailed: too many errors)"),
            "{}",
            ready.2
        );
        assert!(ready.2.ends_with("1 swaps still running"), "{}", ready.2);
        let told: Vec<(bool, Reason, String)> = settled
            .notes
            .iter()
            .map(|n| (n.warning(), n.reason(), n.message("r")))
            .collect();
        assert!(told[0].0, "a Warning");
        assert_eq!(told[0].1, Reason::FailureBudgetExceeded);
        assert!(told[0].2.starts_with(&why), "{}", told[0].2);
        assert_eq!(
            told[1],
            (
                false,
                Reason::FleetRollingBack,
                "1 swaps asked to roll back: r-a".into()
            )
        );
        status.counts.rolled_back = 2;
        let ended = || {
            Decision::RollBackFleet(FleetProgress {
                abort: Abort::Holds,
                asked: Vec::new(),
                running: 0,
            })
        };
        let settled = r.settle(&mut status, ended());
        assert_eq!(status.phase, RolloutPhase::RolledBack);
        assert_eq!(settled.action, Action::await_change());
        assert_eq!(
            condition(&status, ConditionType::Ready).1,
            Reason::FleetRolledBack
        );
        assert_eq!(settled.notes.len(), 1);
        assert_eq!(settled.notes[0].reason(), Reason::FleetRolledBack);
        assert!(
            settled.notes[0]
                .message("r")
                .contains("2 rolled back, 0 failed, 0 succeeded"),
            "{}",
            settled.notes[0].message("r")
        );
        // Told once.
        assert!(r.settle(&mut status, ended()).notes.is_empty());
    }

    #[tokio::test]
    async fn ended_waves_succeed_unless_paused_and_an_invalid_spec_fails() {
        let state = state();
        let rollout = rotor_api::sample_rollout("r", "1.35.0");
        let r = Reconcile::new(&rollout, &state);
        let mut status = RolloutStatus {
            waves: waves(&[("canary", &["a"]), ("rest", &["b", "c"])]),
            current_wave: Some(1),
            ..Default::default()
        };
        status.counts.succeeded = 2;
        status.counts.rolled_back = 1;
        let paused = Decision::Run {
            pause: Some(over_budget()),
            waves: Waves::Done,
        };
        let settled = r.settle(&mut status, paused);
        assert_eq!(
            (status.phase, status.current_wave),
            (RolloutPhase::Paused, None)
        );
        assert_eq!(
            settled.action,
            Action::requeue(state.ctx.settings.poll_interval)
        );

        let done = Decision::Run {
            pause: None,
            waves: Waves::Done,
        };
        let settled = r.settle(&mut status, done);
        assert_eq!(status.phase, RolloutPhase::Succeeded);
        assert_eq!(settled.action, Action::await_change());
        assert!(!settled.reset_backoff);
        assert_eq!(
            condition(&status, ConditionType::Ready),
            (
                true,
                Reason::RolloutComplete,
                "2 succeeded, 1 rolled back, 0 failed".into()
            )
        );
        assert_eq!(condition(&status, ConditionType::Paused).1, Reason::Resumed);
        assert_eq!(settled.notes, [Note::Complete { clusters: 3 }]);
        assert_eq!(settled.notes[0].message("r"), "all waves done: 3 clusters");

        let mut status = RolloutStatus::default();
        let settled = r.settle(&mut status, Decision::Fail("spec.waves: empty".into()));
        assert_eq!(status.phase, RolloutPhase::Failed);
        assert_eq!(settled.action, Action::await_change());
        assert_eq!(
            condition(&status, ConditionType::Ready),
            (false, Reason::InvalidSpec, "spec.waves: empty".into())
        );
    }

    #[test]
    fn counts_and_running_messages_alone_are_a_count_only_change() {
        let t = crate::now();
        let progressing = |message: &str| {
            Condition::new(
                ConditionType::Progressing,
                rotor_api::ConditionStatus::True,
                Reason::WaveInProgress,
                message.to_string(),
                t.clone(),
                Some(1),
            )
        };
        let stored = RolloutStatus {
            phase: RolloutPhase::Progressing,
            waves: waves(&[("w0", &["a", "b"]), ("w1", &["c"])]),
            conditions: vec![progressing("1 of 2 swaps running")],
            ..Default::default()
        };
        let mut recounted = stored.clone();
        recounted.counts.in_progress = 2;
        recounted.waves[0].counts.in_progress = 2;
        recounted.conditions[0].message = "2 of 2 swaps running".into();
        assert!(only_counts_differ(&stored, &recounted));

        let mut moved_on = recounted.clone();
        moved_on.waves[1].phase = rotor_api::WavePhase::InProgress;
        assert!(!only_counts_differ(&stored, &moved_on), "a wave started");
        let mut reasoned = recounted.clone();
        reasoned.conditions[0].reason = Reason::WaveBaking;
        assert!(!only_counts_differ(&stored, &reasoned), "a new reason");
        let mut done = recounted;
        done.phase = RolloutPhase::Succeeded;
        assert!(!only_counts_differ(&stored, &done), "a new phase");
    }
}
