//! What the swap controller remembers about a swap between its reconciles, in this process
//! only: precise starts of timed waits, the traffic gate's counter window and when each metric
//! gate was last evaluated, the hook calls it recorded. Everything here
//! can be lost (a restart, another leader) at the cost of a slightly longer wait or one shorter
//! gate window; nothing here decides what status does not also say. A swap's memory is
//! dropped when it ends or is deleted, so the map holds live swaps only.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rotor_api::Phase;
use rotor_traffic::{BackendCounters, Latencies};

use crate::{Time, lock, since};

/// Every live swap's memory, by swap name.
#[derive(Default)]
pub(crate) struct Memories(Mutex<HashMap<String, Memory>>);

/// One swap's memory.
#[derive(Default)]
struct Memory {
    /// When the current phase began (status records it rounded down to the second).
    phase: Option<(Phase, Started)>,
    /// When the current traffic step began (its bake).
    step: Option<Started>,
    /// When green took all the traffic (Draining began): blue's retention counts from it.
    shifted: Option<Started>,
    /// Since when traffic has been on blue during a rollback (not in status).
    on_blue: Option<Instant>,
    /// The error-rate gate's counters: see [`Memories::gate_baseline`].
    gate: Option<GateWindow<BackendCounters>>,
    /// The latency gate's histogram, windowed the same way.
    latency: Option<GateWindow<Latencies>>,
    /// When each metric gate was last evaluated, by gate name (status records it rounded).
    metric: HashMap<String, Started>,
    /// The hook calls this process recorded, as it wrote them: a reconcile that reads a status
    /// not yet showing one (the cache lags the write) does not call the hook again.
    hooks: Vec<rotor_api::HookStatus>,
}

/// A wait's start as recorded in status, and precisely (also the rollout's waits, in
/// [`crate::Context`]).
#[derive(Clone)]
pub(crate) struct Started {
    recorded: Time,
    at: Instant,
}

impl Started {
    pub(crate) fn now(recorded: &Time) -> Self {
        Started {
            recorded: recorded.clone(),
            at: Instant::now(),
        }
    }

    /// How long since `recorded`: precisely when this process saw it start, else
    /// conservatively (status times are rounded down to the second, so one second less: a wait
    /// is never cut short), remembering the estimate so it stays steady.
    ///
    /// The start this process remembers is compared to the one status records at the second,
    /// all status can hold: compared exactly, a remembered start never matched a status read
    /// back, and every wait fell to the estimate — a step's bake counted from the first
    /// reconcile after its write, blue's retention up to a second long.
    pub(crate) fn elapsed(slot: &mut Option<Started>, recorded: &Time) -> Duration {
        if let Some(s) = slot.as_ref().filter(|s| same_second(&s.recorded, recorded)) {
            return s.at.elapsed();
        }
        let elapsed = since(recorded).saturating_sub(Duration::from_secs(1));
        let at = Instant::now()
            .checked_sub(elapsed)
            .unwrap_or_else(Instant::now);
        *slot = Some(Started {
            recorded: recorded.clone(),
            at,
        });
        elapsed
    }
}

/// Whether two times fall in the same second: a time written to status reads back rounded
/// down to it (RFC 3339 without a fraction), so a start remembered precisely is known again by
/// its second, never by exact equality.
fn same_second(a: &Time, b: &Time) -> bool {
    a.0.as_second() == b.0.as_second()
}

/// One swap's gate window over a cumulative reading: see [`Memories::gate_baseline`].
struct GateWindow<T> {
    step: u32,
    base: T,
    last: T,
}

/// A cumulative reading of the traffic layer, which only goes back when the layer restarted.
trait Cumulative: Copy {
    fn went_back(&self, last: &Self) -> bool;
    /// This reading as the window keeps it after `last` (the layer did not restart).
    fn after(self, _last: &Self) -> Self {
        self
    }
}

impl Cumulative for BackendCounters {
    /// Requests only: HAProxy's failures are derived from columns its `show stat` does not
    /// read at one instant (an answer counted before its session ends), so they dip by one or
    /// two and come back. A dip taken for a restart became the window's base, and the count
    /// coming back was one failure green never had: a healthy retry — whose slot still holds
    /// the rolled-back green's failures, so a dip shows — rolled back in Retaining at 1,000
    /// clusters, "failed 1 of 42 requests" (two runs in seven).
    fn went_back(&self, last: &Self) -> bool {
        self.requests < last.requests
    }

    /// Failures never go back between restarts: a dip keeps the last count.
    fn after(self, last: &Self) -> Self {
        BackendCounters {
            requests: self.requests,
            failures: self.failures.max(last.failures),
        }
    }
}

impl Cumulative for Latencies {
    fn went_back(&self, last: &Self) -> bool {
        self.total() < last.total()
    }
}

/// The baseline of `step` given the `current` reading (see [`Memories::gate_baseline`]).
fn window_base<T: Cumulative>(slot: &mut Option<GateWindow<T>>, step: u32, current: T) -> T {
    let window = slot.get_or_insert(GateWindow {
        step,
        base: current,
        last: current,
    });
    if current.went_back(&window.last) {
        window.base = current;
        window.step = step;
        window.last = current;
        return window.base;
    }
    if window.step != step {
        window.step = step;
        window.base = window.last;
    }
    window.last = current.after(&window.last);
    window.base
}

impl Memories {
    /// Remembers a hook call's status entry as this process recorded it.
    pub(crate) fn remember_hook(&self, swap: &str, entry: &rotor_api::HookStatus) {
        self.with(swap, |m| {
            m.hooks.retain(|h| !same_call(h, entry));
            m.hooks.push(entry.clone());
        });
    }

    /// The entry this process recorded for `entry`'s call, when it is further along than
    /// `entry` (read from a status that lags).
    pub(crate) fn newer_hook(
        &self,
        swap: &str,
        entry: &rotor_api::HookStatus,
    ) -> Option<rotor_api::HookStatus> {
        self.with(swap, |m| {
            m.hooks
                .iter()
                .find(|h| same_call(h, entry) && h.attempts > entry.attempts)
                .cloned()
        })
    }

    fn with<R>(&self, swap: &str, f: impl FnOnce(&mut Memory) -> R) -> R {
        f(lock(&self.0).entry(swap.to_string()).or_default())
    }

    /// `swap` entered `phase` now, recorded in status as `at`.
    pub(crate) fn mark_phase(&self, swap: &str, phase: Phase, at: &Time) {
        self.with(swap, |m| {
            m.phase = Some((phase, Started::now(at)));
            if phase == Phase::Draining {
                m.shifted = Some(Started::now(at));
            }
        });
    }

    /// How long green has carried all of `swap`'s traffic, which status says began at `at`
    /// (the Draining transition).
    pub(crate) fn shifted_for(&self, swap: &str, at: &Time) -> Duration {
        self.with(swap, |m| Started::elapsed(&mut m.shifted, at))
    }

    /// How long `swap` has been in `phase`, which status says began at `at`.
    pub(crate) fn in_phase(&self, swap: &str, phase: Phase, at: &Time) -> Duration {
        self.with(swap, |m| {
            let mut slot = m.phase.take().filter(|(p, _)| *p == phase).map(|(_, s)| s);
            let elapsed = Started::elapsed(&mut slot, at);
            m.phase = slot.map(|s| (phase, s));
            elapsed
        })
    }

    /// `swap`'s traffic step began now, recorded in status as `at`.
    pub(crate) fn mark_step(&self, swap: &str, at: &Time) {
        self.with(swap, |m| m.step = Some(Started::now(at)));
    }

    /// How long `swap`'s current traffic step (begun at `at`) has baked.
    pub(crate) fn in_step(&self, swap: &str, at: &Time) -> Duration {
        self.with(swap, |m| Started::elapsed(&mut m.step, at))
    }

    /// How long traffic has been back on blue in `swap`'s rollback, zero the first time asked.
    /// After a restart it starts over, which only makes the wait longer.
    pub(crate) fn on_blue_for(&self, swap: &str) -> Duration {
        self.with(swap, |m| {
            m.on_blue.get_or_insert_with(Instant::now).elapsed()
        })
    }

    /// Green's counters when `step` of `swap` began, given what they are now. A new step
    /// starts from the counters the gate last read in the step before — the reading it passed
    /// on — so an attempt that fails while the step changes is judged in the new step rather
    /// than lost between the two. The first reading of a swap (also after a restart, which
    /// shortens one gate window) is its own baseline, as is one below the last (the traffic
    /// layer restarted and its counters with it).
    pub(crate) fn gate_baseline(
        &self,
        swap: &str,
        step: u32,
        current: BackendCounters,
    ) -> BackendCounters {
        self.with(swap, |m| window_base(&mut m.gate, step, current))
    }

    /// Green's latency histogram when `step` of `swap` began: as [`Memories::gate_baseline`].
    pub(crate) fn latency_baseline(&self, swap: &str, step: u32, current: Latencies) -> Latencies {
        self.with(swap, |m| window_base(&mut m.latency, step, current))
    }

    /// Metric gate `gate` of `swap` was evaluated now, recorded in status as `at`.
    pub(crate) fn mark_metric(&self, swap: &str, gate: &str, at: &Time) {
        self.with(swap, |m| {
            m.metric.insert(gate.to_string(), Started::now(at));
        });
    }

    /// How long since metric gate `gate` of `swap` was evaluated, which status says was at
    /// `at`: precisely when this process did it, else never more than the truth (an interval
    /// is never cut short).
    pub(crate) fn since_metric(&self, swap: &str, gate: &str, at: &Time) -> Duration {
        self.with(swap, |m| {
            let mut slot = m.metric.remove(gate);
            let elapsed = Started::elapsed(&mut slot, at);
            if let Some(s) = slot {
                m.metric.insert(gate.to_string(), s);
            }
            elapsed
        })
    }

    /// The gate starts over (traffic went back to blue).
    pub(crate) fn forget_gate(&self, swap: &str) {
        self.with(swap, |m| {
            m.gate = None;
            m.latency = None;
            m.metric.clear();
        });
    }

    /// `swap` ended or was deleted: nothing of it is kept.
    pub(crate) fn forget(&self, swap: &str) {
        lock(&self.0).remove(swap);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.0).len()
    }
}

/// Whether two hook entries are of the same call (hook, point, step).
fn same_call(a: &rotor_api::HookStatus, b: &rotor_api::HookStatus) -> bool {
    a.name == b.name && a.point == b.point && a.step == b.step
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(requests: u64, failures: u64) -> BackendCounters {
        BackendCounters { requests, failures }
    }

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time as MetaTime;

    /// A start as status holds it once written and read back (RFC 3339, whole seconds).
    fn read_back(t: &Time) -> Time {
        serde_json::from_value(serde_json::to_value(t).unwrap()).unwrap()
    }

    #[test]
    fn a_remembered_start_is_kept_when_status_reads_it_back_rounded_to_the_second() {
        let m = Memories::default();
        // A start with a fraction of a second, so the read-back differs from it.
        let whole = crate::now().0.as_second() - 2;
        let started = MetaTime(k8s_openapi::jiff::Timestamp::new(whole, 600_000_000).unwrap());
        let recorded = read_back(&started);
        assert_ne!(recorded, started, "status rounds to the second");
        let marked = Instant::now();
        m.mark_step("s", &started);
        m.mark_phase("s", Phase::Draining, &started);
        // Remembered: as long as since this process marked it, not status' estimate (which
        // counts from a second after the rounded start, here more than a second ago).
        assert!(m.in_step("s", &recorded) <= marked.elapsed());
        assert!(m.shifted_for("s", &recorded) <= marked.elapsed());
        assert!(m.in_phase("s", Phase::Draining, &recorded) <= marked.elapsed());
        // A start in another second is another wait: estimated from status.
        let other = MetaTime(k8s_openapi::jiff::Timestamp::new(whole - 3, 0).unwrap());
        assert!(m.in_step("s", &other) > marked.elapsed());
    }

    #[test]
    fn a_new_gate_step_starts_where_the_last_reading_of_the_step_before_ended() {
        let m = Memories::default();
        // Step 0: the first reading is the baseline; later readings of the step keep it.
        assert_eq!(m.gate_baseline("s", 0, c(10, 0)), c(10, 0));
        assert_eq!(m.gate_baseline("s", 0, c(14, 0)), c(10, 0));
        // Step 1 starts from the reading step 0 passed on (14, 0), not from its own first
        // reading: the failure that happened in between is judged in step 1.
        assert_eq!(m.gate_baseline("s", 1, c(17, 1)), c(14, 0));
        assert_eq!(m.gate_baseline("s", 1, c(20, 2)), c(14, 0));
        // Counters that went back (HAProxy restarted) start a fresh window.
        assert_eq!(m.gate_baseline("s", 1, c(3, 0)), c(3, 0));
        assert_eq!(m.gate_baseline("s", 1, c(5, 1)), c(3, 0));
        // Swaps are independent, and a forgotten gate starts over.
        assert_eq!(m.gate_baseline("t", 1, c(100, 7)), c(100, 7));
        m.forget_gate("s");
        assert_eq!(m.gate_baseline("s", 2, c(30, 2)), c(30, 2));
    }

    /// The slot of a retried green still counts the rolled-back green's failures (32 here);
    /// HAProxy's derived count dips by one for a moment and comes back. Neither the dip nor
    /// its return is a failure of this green, in the step or across a step's end.
    #[test]
    fn a_failure_count_that_dips_and_comes_back_counts_no_failure() {
        let m = Memories::default();
        assert_eq!(m.gate_baseline("s", 0, c(48, 32)), c(48, 32));
        // The dip is no restart: the base stays.
        assert_eq!(m.gate_baseline("s", 0, c(60, 31)), c(48, 32));
        assert_eq!(m.gate_baseline("s", 0, c(70, 32)), c(48, 32));
        // A dip as the step's last reading is not what the next step starts from.
        assert_eq!(m.gate_baseline("s", 0, c(80, 31)), c(48, 32));
        assert_eq!(m.gate_baseline("s", 1, c(90, 32)), c(80, 32));
        // A real failure still counts: 33 over the base of 32.
        assert_eq!(m.gate_baseline("s", 1, c(100, 33)), c(80, 32));
        // Requests going back is a restart, as before.
        assert_eq!(m.gate_baseline("s", 1, c(4, 0)), c(4, 0));
    }

    #[test]
    fn a_wait_recorded_before_this_process_is_never_cut_short() {
        let m = Memories::default();
        let five_s_ago = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now() - Duration::from_secs(5),
        );
        // Unknown start: status's time, less the second it may have been rounded down by.
        let first = m.in_phase("s", Phase::Draining, &five_s_ago);
        assert!(first >= Duration::from_secs(4), "{first:?}");
        // The estimate is kept and goes on from there.
        assert!(m.in_phase("s", Phase::Draining, &five_s_ago) >= first);
        assert!(m.in_step("s", &five_s_ago) >= Duration::from_secs(4));
    }

    #[test]
    fn a_hook_call_recorded_here_wins_over_a_lagging_status() {
        let m = Memories::default();
        let at = |attempts| rotor_api::HookStatus {
            name: "smoke".into(),
            point: rotor_api::HookPoint::AfterEachStep,
            step: Some(1),
            attempts,
            ..Default::default()
        };
        assert_eq!(m.newer_hook("s", &at(0)), None);
        m.remember_hook("s", &at(1));
        assert_eq!(m.newer_hook("s", &at(0)), Some(at(1)));
        assert_eq!(m.newer_hook("s", &at(1)), None, "status caught up");
        let other_step = rotor_api::HookStatus {
            step: Some(2),
            ..at(0)
        };
        assert_eq!(m.newer_hook("s", &other_step), None);
        assert_eq!(m.newer_hook("t", &at(0)), None);
    }

    #[test]
    fn an_ended_swap_leaves_nothing_behind() {
        let m = Memories::default();
        m.mark_step("a", &crate::now());
        m.on_blue_for("b");
        m.gate_baseline("a", 0, c(1, 0));
        assert_eq!(m.len(), 2);
        m.forget("a");
        m.forget("b");
        assert_eq!(m.len(), 0);
    }
}
