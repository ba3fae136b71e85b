//! The current wave: it opens once approved, starts its swaps (and retries of earlier waves'),
//! ends when every cluster's swap ended or the cluster was left out, then bakes for
//! `bakeSecondsBetweenWaves` (and until the wave gates pass: `wave_gates.rs`) before the next
//! wave may open.

use std::time::Duration;

use futures::StreamExt;
use kube::runtime::reflector::ObjectRef;
use rotor_api::{Reason, RolloutStatus, SkippedCluster, WavePhase, WaveStatus};

use super::count::Tally;
use super::create::{Slots, pick};
use super::skip::Skips;
use super::wave_gates::WaveGates;
use super::windows::availability;
use super::{Reconcile, STEP, Time};
use crate::Error;

/// Swaps a reconcile creates at once.
const CREATES_AT_ONCE: usize = 16;

/// The first wave that has not ended, if any.
pub(super) fn current(waves: &[WaveStatus]) -> Option<usize> {
    waves
        .iter()
        .position(|w| !matches!(w.phase, WavePhase::Succeeded | WavePhase::Failed))
}

/// What the current wave did in one reconcile.
#[derive(Debug, PartialEq)]
pub(super) struct Progress {
    /// The current wave's index.
    pub(super) wave: usize,
    /// This rollout's swaps running now.
    pub(super) in_flight: u32,
    /// While the wave is in progress: whether now is inside the rollout's maintenance windows.
    pub(super) window: Option<bool>,
    /// Clusters whose turn came but which cannot start now, and why.
    pub(super) waiting: Vec<String>,
    /// Clusters left out now.
    pub(super) skipped: Vec<SkippedCluster>,
    /// Running swaps held by a gate that cannot be judged: `cluster: why`.
    pub(super) held: Vec<String>,
    /// A wave gate that stops the next wave from opening, as the rollout's pause (boxed: the
    /// progress travels in a `Decision`).
    pub(super) gates: Option<Box<super::budget::Pause>>,
    /// What happened to the wave, if anything.
    pub(super) event: Option<WaveEvent>,
    /// When to look again.
    pub(super) requeue: Duration,
}

/// A wave's transition, for its Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum WaveEvent {
    Started { wave: String, clusters: usize },
    AwaitsApproval { index: usize, wave: String },
    Finished { wave: String, bake: Duration },
}

impl WaveEvent {
    pub(super) fn reason(&self) -> Reason {
        match self {
            WaveEvent::Started { .. } => Reason::WaveInProgress,
            WaveEvent::AwaitsApproval { .. } => Reason::WaitingForApproval,
            WaveEvent::Finished { .. } => Reason::WaveBaking,
        }
    }

    /// The Event's note; `rollout` names the approval command.
    pub(super) fn message(&self, rollout: &str) -> String {
        match self {
            WaveEvent::Started { wave, clusters } => {
                format!("wave {wave} started: {clusters} clusters")
            }
            WaveEvent::AwaitsApproval { index, wave } => format!(
                "wave {index} ({wave}) waits for approval: set spec.approvedThroughWave to \
                 {index} (rotor approve rollout/{rollout})"
            ),
            WaveEvent::Finished { wave, bake } => format!("wave {wave} finished; baking {bake:?}"),
        }
    }
}

/// A Pending or approval-waiting wave opens once `approved`; a Pending one not approved starts
/// waiting for approval.
pub(super) fn open(
    wave: &mut WaveStatus,
    index: usize,
    approved: bool,
    t: &Time,
) -> Option<WaveEvent> {
    if !matches!(
        wave.phase,
        WavePhase::Pending | WavePhase::WaitingForApproval
    ) {
        return None;
    }
    if approved {
        wave.phase = WavePhase::InProgress;
        wave.started_at = Some(t.clone());
        return Some(WaveEvent::Started {
            wave: wave.name.clone(),
            clusters: wave.clusters.len(),
        });
    }
    if wave.phase == WavePhase::Pending {
        wave.phase = WavePhase::WaitingForApproval;
        let wave = wave.name.clone();
        return Some(WaveEvent::AwaitsApproval { index, wave });
    }
    None
}

/// How many waves, from the first, may start swaps while wave `index` is current in `phase`:
/// the waves before it (ended: only their retries start) and itself once opened (in progress, or
/// baking: a retry of its own). A retry must not wait for the next wave's approval or bake:
/// the waves it belongs to were approved already.
pub(super) fn opened_waves(index: usize, phase: WavePhase) -> usize {
    match phase {
        WavePhase::InProgress | WavePhase::Baking => index + 1,
        _ => index,
    }
}

/// Whether every cluster of `wave` is left out or its swap ended.
pub(super) fn done(wave: &WaveStatus, tally: &Tally, skips: &Skips) -> bool {
    wave.clusters
        .iter()
        .all(|c| skips.clusters().contains(c) || tally.ended(c))
}

/// Ends an in-progress wave at `t`: it bakes unless it is the `last` wave with clusters, it had
/// no clusters, or the bake is zero and no wave gate is `gated`.
pub(super) fn finish(
    wave: &mut WaveStatus,
    last: bool,
    bake: Duration,
    gated: bool,
    t: &Time,
) -> WaveEvent {
    wave.finished_at = Some(t.clone());
    wave.phase = if last || (bake.is_zero() && !gated) || wave.clusters.is_empty() {
        WavePhase::Succeeded
    } else {
        WavePhase::Baking
    };
    WaveEvent::Finished {
        wave: wave.name.clone(),
        bake,
    }
}

/// A baking wave that `baked` long enough and whose wave `gates` passed succeeds; else when to
/// look again, at most `requeue`.
pub(super) fn bake(
    wave: &mut WaveStatus,
    baked: Duration,
    bake: Duration,
    gates: &WaveGates,
    requeue: Duration,
) -> Duration {
    let requeue = match gates {
        WaveGates::Pending(next) => requeue.min(*next),
        _ => requeue,
    };
    if baked < bake {
        return requeue.min(bake - baked);
    }
    if *gates == WaveGates::Passed {
        wave.phase = WavePhase::Succeeded;
        return STEP;
    }
    requeue
}

impl Reconcile<'_> {
    /// Moves wave `index` on: opens it, starts swaps unless `paused` or outside the rollout's
    /// windows (`in_window`), ends it, bakes it.
    pub(super) async fn advance(
        &self,
        status: &mut RolloutStatus,
        index: usize,
        tally: &Tally,
        skips: &mut Skips,
        paused: bool,
        in_window: bool,
    ) -> Result<Progress, Error> {
        let approved = self.spec.wave_approved(index);
        let event = open(&mut status.waves[index], index, approved, &self.t);
        let mut slots = Slots::new(self.spec, &status.waves, tally);
        let mut progress = Progress {
            wave: index,
            in_flight: 0,
            window: None,
            waiting: Vec::new(),
            skipped: Vec::new(),
            held: tally.held(),
            gates: None,
            event,
            requeue: self.ctx.settings.poll_interval,
        };
        let phase = status.waves[index].phase;
        if !paused && in_window {
            let opened = opened_waves(index, phase);
            self.start_swaps(status, opened, tally, skips, &mut slots, &mut progress)
                .await?;
        }
        if phase == WavePhase::InProgress {
            progress.window = Some(in_window);
            self.end_if_done(status, index, tally, skips, &mut progress);
        }
        let bake_for = self.bake_for();
        if status.waves[index].phase == WavePhase::Baking {
            let gates = self.wave_gates(status, index).await;
            let wave = &mut status.waves[index];
            let baked = wave
                .finished_at
                .as_ref()
                .map(|t| self.ctx.elapsed(&self.bake_key(index), t))
                .unwrap_or(bake_for);
            progress.requeue = bake(wave, baked, bake_for, &gates, progress.requeue);
            if let WaveGates::Stopped(pause) = gates {
                progress.gates = Some(Box::new(pause));
            }
        }
        progress.in_flight = slots.running;
        Ok(progress)
    }

    /// Starts the swaps of the first `opened` waves ([`opened_waves`]): the current wave's, and
    /// retries: clusters of opened waves without a swap, whose ended swap was deleted to run it
    /// again (`rotor rollout retry`, the dashboard's Retry).
    async fn start_swaps(
        &self,
        status: &RolloutStatus,
        opened: usize,
        tally: &Tally,
        skips: &mut Skips,
        slots: &mut Slots,
        progress: &mut Progress,
    ) -> Result<(), Error> {
        let candidates = status.waves[..opened]
            .iter()
            .enumerate()
            .flat_map(|(i, w)| w.clusters.iter().map(move |c| (i, c.clone())));
        let names: Vec<String> = status.waves.iter().map(|w| w.name.clone()).collect();
        let starts = pick(
            candidates,
            slots,
            tally,
            skips.clusters(),
            self.spec.unavailable_clusters,
            &names,
            |c| {
                availability(
                    self.state.clusters.get(&ObjectRef::new(c)).as_deref(),
                    self.clock,
                )
            },
        );
        for s in &starts.skipped {
            skips.add(s.clone());
        }
        progress.skipped = starts.skipped;
        progress.waiting = starts.waiting;
        // Side by side: one at a time, a wave of 500 took minutes to start on a busy control
        // plane. Every create runs to its end (none is dropped half-sent, which could leave a
        // swap this process does not count yet); the first error is returned after.
        let names = &names;
        let results: Vec<Result<(), Error>> = futures::stream::iter(starts.create)
            .map(|(wave, cluster)| async move { self.create_swap(&names[wave], &cluster).await })
            .buffer_unordered(CREATES_AT_ONCE)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Ends wave `index` once [`done`]; its bake is timed from now, precisely.
    fn end_if_done(
        &self,
        status: &mut RolloutStatus,
        index: usize,
        tally: &Tally,
        skips: &Skips,
        progress: &mut Progress,
    ) {
        // The last wave that has clusters: no bake after it (nothing left to protect).
        let last = status.waves[index + 1..]
            .iter()
            .all(|w| w.clusters.is_empty());
        let wave = &mut status.waves[index];
        if !done(wave, tally, skips) {
            return;
        }
        self.ctx.mark_started(self.bake_key(index), &self.t);
        let gated = !self.spec.wave_gates.is_empty();
        progress.event = Some(finish(wave, last, self.bake_for(), gated, &self.t));
        progress.requeue = STEP;
    }

    fn bake_for(&self) -> Duration {
        Duration::from_secs(self.spec.bake_seconds_between_waves)
    }

    /// The key of wave `index`'s bake in [`crate::Context::elapsed`].
    fn bake_key(&self, index: usize) -> String {
        format!("rollout/{}/wave/{index}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::fixtures::{set, swap, time, waves};
    use rotor_api::Phase;

    #[test]
    fn the_current_wave_is_the_first_not_ended() {
        let mut w = waves(&[("a", &["x"]), ("b", &["y"]), ("c", &[])]);
        assert_eq!(current(&w), Some(0));
        w[0].phase = WavePhase::Succeeded;
        w[1].phase = WavePhase::Baking;
        assert_eq!(current(&w), Some(1));
        w[1].phase = WavePhase::Failed;
        w[2].phase = WavePhase::Succeeded;
        assert_eq!(current(&w), None);
    }

    #[test]
    fn retries_of_opened_waves_start_whatever_the_current_wave_waits_for() {
        assert_eq!(opened_waves(0, WavePhase::Pending), 0);
        assert_eq!(opened_waves(2, WavePhase::WaitingForApproval), 2);
        assert_eq!(opened_waves(2, WavePhase::InProgress), 3);
        assert_eq!(opened_waves(2, WavePhase::Baking), 3);
    }

    #[test]
    fn a_wave_opens_when_approved_and_else_waits_for_approval_once() {
        let mut w = waves(&[("prod", &["x", "y"])]).remove(0);
        let waits = open(&mut w, 2, false, &time());
        assert_eq!(
            waits,
            Some(WaveEvent::AwaitsApproval {
                index: 2,
                wave: "prod".into()
            })
        );
        assert_eq!(w.phase, WavePhase::WaitingForApproval);
        assert!(
            waits
                .expect("an event")
                .message("r")
                .contains("set spec.approvedThroughWave to 2 (rotor approve rollout/r)")
        );
        assert_eq!(open(&mut w, 2, false, &time()), None, "said once");
        let started = open(&mut w, 2, true, &time());
        let want = WaveEvent::Started {
            wave: "prod".into(),
            clusters: 2,
        };
        assert_eq!(started, Some(want));
        assert_eq!(
            (w.phase, w.started_at.clone()),
            (WavePhase::InProgress, Some(time()))
        );
        assert_eq!(open(&mut w, 2, true, &time()), None);
    }

    #[test]
    fn a_wave_ends_when_each_cluster_ended_or_was_left_out_then_bakes() {
        let w = waves(&[("one", &["a", "b", "c"])]);
        let tally = Tally::new(
            "r",
            [
                swap("r", "a", Phase::Succeeded),
                swap("r", "b", Phase::RolledBack),
            ],
            &set(&[]),
        );
        let skips = |names: &[String]| Skips::new(&[], names, &w);
        assert!(!done(&w[0], &tally, &skips(&[])));
        assert!(done(&w[0], &tally, &skips(&["c".into()])));

        let bake_for = Duration::from_secs(60);
        let mut wave = w[0].clone();
        let event = finish(&mut wave, false, bake_for, false, &time());
        assert_eq!(
            (wave.phase, wave.finished_at.clone()),
            (WavePhase::Baking, Some(time()))
        );
        assert_eq!(event.message("r"), "wave one finished; baking 60s");
        let poll = Duration::from_secs(1);
        let passed = WaveGates::Passed;
        let left = bake(
            &mut wave,
            Duration::from_secs(59) + Duration::from_millis(700),
            bake_for,
            &passed,
            poll,
        );
        assert_eq!(
            (wave.phase, left),
            (WavePhase::Baking, Duration::from_millis(300))
        );
        let left = bake(&mut wave, Duration::from_secs(30), bake_for, &passed, poll);
        assert_eq!(left, poll);
        // Baked, but a wave gate still needs passes: it waits for the gate's next evaluation.
        let pending = WaveGates::Pending(Duration::from_millis(400));
        let left = bake(&mut wave, bake_for, bake_for, &pending, poll);
        assert_eq!(
            (wave.phase, left),
            (WavePhase::Baking, Duration::from_millis(400))
        );
        assert_eq!(bake(&mut wave, bake_for, bake_for, &passed, poll), STEP);
        assert_eq!(wave.phase, WavePhase::Succeeded);
        // No bake after the last wave, without a bake, or for an empty wave.
        for (last, bake_for, clusters) in [
            (true, bake_for, 1),
            (false, Duration::ZERO, 1),
            (false, bake_for, 0),
        ] {
            let mut wave = w[0].clone();
            wave.clusters.truncate(clusters);
            finish(&mut wave, last, bake_for, false, &time());
            assert_eq!(wave.phase, WavePhase::Succeeded);
        }
        // Without a bake, a gated wave still stops to have its gates read.
        let mut wave = w[0].clone();
        finish(&mut wave, false, Duration::ZERO, true, &time());
        assert_eq!(wave.phase, WavePhase::Baking);
    }
}
