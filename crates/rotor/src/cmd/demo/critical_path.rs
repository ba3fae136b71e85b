//! The demo's lower bounds of the run: `critical_path_s` from the run itself — the rollout's
//! waves, its concurrency limit and the measured duration of every swap attempt — and
//! `critical_path_configured_s` from the configured latencies alone, so that rotor's own work
//! inside a swap and in the pre-flight counts as overhead.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::cmd::round;
use rotor_api::RolloutStatus;
use serde_json::json;

/// One swap attempt (a ClusterSwap, by uid) as the demo saw it.
pub(super) struct SwapTiming {
    pub cluster: String,
    pub wave: String,
    pub created: Instant,
    pub finished: Option<Instant>,
    /// (seconds since the demo started, phase, green's weight) at every change.
    pub history: Vec<(f64, String, u8)>,
    /// When the demo first saw it rolled back (seconds since it started) and why, as its
    /// status' move to RollingBack says: (at, reason, message).
    pub rollback: Option<(f64, String, String)>,
}

/// The shortest the rollout could have taken given its waves, the concurrency limit and the
/// measured swap durations: per wave the largest of the longest swap, the total swap time over
/// the limit, and the pigeonhole bound [`slots_bound`]; plus the bakes between waves. A wave ends
/// when the swap of each of its clusters has ended (a swap rolled back within the failure budget
/// counts as ended). A cluster retried before the rest of its wave ended is one chain of
/// attempts that the wave waits for, as long as their sum; one retried after its wave ended
/// runs beside the later waves, and adds its own bound: its wave's start plus that sum.
pub(super) fn critical_path(
    status: &RolloutStatus,
    timings: &BTreeMap<String, SwapTiming>,
    max_concurrent: u32,
    bake_s: f64,
    since: Instant,
) -> (f64, Vec<serde_json::Value>) {
    let secs = |a: Instant, b: Instant| b.duration_since(a).as_secs_f64();
    let mut waves_end = 0.0;
    let mut retries_end: f64 = 0.0;
    let mut by_wave = Vec::new();
    for w in &status.waves {
        let mut attempts: BTreeMap<&str, Vec<&SwapTiming>> = BTreeMap::new();
        for t in timings.values().filter(|t| t.wave == w.name) {
            attempts.entry(t.cluster.as_str()).or_default().push(t);
        }
        for a in attempts.values_mut() {
            a.sort_by_key(|t| t.created);
        }
        // When the wave would have ended on first attempts alone.
        let firsts_end = attempts.values().filter_map(|a| a[0].finished).max();
        let mut durations = Vec::new();
        let mut longest_chain: f64 = 0.0;
        for a in attempts.values() {
            let Some(first) = a[0].finished.map(|f| secs(a[0].created, f)) else {
                continue;
            };
            let chain: Option<f64> = a.iter().map(|t| Some(secs(t.created, t.finished?))).sum();
            match (a.get(1), chain) {
                (Some(retry), Some(chain))
                    if firsts_end.is_some_and(|end| retry.created <= end) =>
                {
                    durations.push(chain)
                }
                (Some(_), Some(chain)) => {
                    durations.push(first);
                    longest_chain = longest_chain.max(chain);
                }
                _ => durations.push(first),
            }
        }
        if durations.is_empty() {
            continue;
        }
        if !by_wave.is_empty() {
            waves_end += bake_s;
        }
        let wave_start = waves_end;
        let limit = f64::from(max_concurrent.max(1));
        let longest = durations.iter().copied().fold(0.0, f64::max);
        let shortest = durations.iter().copied().fold(f64::INFINITY, f64::min);
        let sum: f64 = durations.iter().sum();
        let slots = slots_bound(&durations, max_concurrent);
        let bound = longest.max(sum / limit).max(slots);
        waves_end += bound;
        retries_end = retries_end.max(wave_start + longest_chain);
        let values = || attempts.values().flatten();
        by_wave.push(json!({
            "wave": w.name,
            "swaps": durations.len(),
            "attempts": values().count(),
            "longest_s": round(longest, 2),
            "shortest_s": round(shortest, 2),
            "sum_over_limit_s": round(sum / limit, 2),
            "slots_bound_s": round(slots, 2),
            "bound_s": round(bound, 2),
            "retried_chain_s": round(longest_chain, 2),
            "from_s": values().map(|t| t.created).min().map(|a| round(secs(since, a), 2)),
            "to_s": values().filter_map(|t| t.finished).max().map(|b| round(secs(since, b), 2)),
        }));
    }
    (waves_end.max(retries_end), by_wave)
}

/// The latencies a swap is configured to take, in seconds: what the demo's configured bound
/// is made of. rotor's own work (reconciles, migration, pre-flight) is not in it.
pub(super) struct Configured {
    /// The cloud creating green, its nodes becoming Ready, the migrated workloads available.
    pub green_ready: f64,
    /// Each traffic step's shortest (its bake, or the metric gates' passes in a row if
    /// longer), the first step's (metric gates wait for green's first data too), and how many
    /// steps there are.
    pub step: f64,
    pub first_step: f64,
    pub steps: usize,
    /// Traffic steps the rolled-back swap baked before its rollback: those before 50 % for an
    /// injected fault (it shows at 50 %), none for a hook that denies after migration.
    pub steps_before_fault: usize,
    /// Blue's drain timeout: a blue holding a long-lived stream drains until it.
    pub drain_timeout: f64,
    pub retention: f64,
    /// The cloud deleting an instance.
    pub delete: f64,
}

impl Configured {
    /// One successful swap; `stream`: blue holds a stream, so its drain runs to the timeout.
    /// Blue's retention counts from green taking all the traffic, so the drain runs inside it.
    fn swap_s(&self, stream: bool) -> f64 {
        let drain = if stream { self.drain_timeout } else { 0.0 };
        self.green_ready + self.steps_s(self.steps) + drain.max(self.retention) + self.delete
    }

    /// The first `n` traffic steps.
    fn steps_s(&self, n: usize) -> f64 {
        match n {
            0 => 0.0,
            n => self.first_step + self.step * (n - 1) as f64,
        }
    }

    /// One swap rolled back at the fault's step (or by a hook before any): green made ready,
    /// the steps before it baked, green deleted.
    fn rolled_back_s(&self) -> f64 {
        self.green_ready + self.steps_s(self.steps_before_fault) + self.delete
    }
}

/// `critical_path_configured_s`: the shortest the rollout could take given its waves, the
/// concurrency limit, the bakes between waves and the configured latencies of every swap (the
/// clusters in `streams` hold a stream; `rolled_back` was rolled back once and retried). A
/// retry runs from its wave's start as one chain (rollback, then the whole swap) that bounds
/// the run, not the wave: it may finish beside later waves.
pub(super) fn configured_critical_path(
    status: &RolloutStatus,
    cfg: &Configured,
    streams: &std::collections::BTreeSet<String>,
    rolled_back: Option<&str>,
    max_concurrent: u32,
    bake_between_s: f64,
) -> f64 {
    let mut waves_end = 0.0;
    let mut retries_end: f64 = 0.0;
    let mut first = true;
    for w in status.waves.iter().filter(|w| !w.clusters.is_empty()) {
        if !first {
            waves_end += bake_between_s;
        }
        first = false;
        // The rolled-back cluster holds its wave for the rolled-back attempt at least (the
        // wave may end before the retry does).
        let durations: Vec<f64> = w
            .clusters
            .iter()
            .map(|c| match rolled_back {
                Some(r) if r == c => cfg.rolled_back_s(),
                _ => cfg.swap_s(streams.contains(c)),
            })
            .collect();
        if let Some(c) = rolled_back.filter(|c| w.clusters.iter().any(|w| w == c)) {
            let chain = cfg.rolled_back_s() + cfg.swap_s(streams.contains(c));
            retries_end = retries_end.max(waves_end + chain);
        }
        let limit = f64::from(max_concurrent.max(1));
        let longest = durations.iter().copied().fold(0.0, f64::max);
        let sum: f64 = durations.iter().sum();
        waves_end += longest
            .max(sum / limit)
            .max(slots_bound(&durations, max_concurrent));
    }
    waves_end.max(retries_end)
}

/// With at most `limit` swaps at once, of the `k·limit + 1` longest swaps some slot runs at
/// least `k + 1` one after the other, each at least as long as the shortest of them: so the
/// wave lasts at least the sum of the `k + 1` shortest among the `k·limit + 1` longest, for
/// every `k` with that many swaps (k = 1: the limit-th and the next longest together).
fn slots_bound(durations: &[f64], limit: u32) -> f64 {
    let mut d = durations.to_vec();
    d.sort_by(|a, b| b.total_cmp(a));
    let m = limit.max(1) as usize;
    let mut best: f64 = 0.0;
    let mut k = 1;
    while k * m < d.len() {
        best = best.max(d[k * m - k..=k * m].iter().sum());
        k += 1;
    }
    best
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn status(waves: &[&str]) -> RolloutStatus {
        RolloutStatus {
            waves: waves
                .iter()
                .map(|w| rotor_api::WaveStatus {
                    name: w.to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Attempts as (cluster, wave, start, end) in seconds after `t0`.
    fn timings(t0: Instant, attempts: &[(&str, &str, f64, f64)]) -> BTreeMap<String, SwapTiming> {
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        attempts
            .iter()
            .enumerate()
            .map(|(i, (cluster, wave, start, end))| {
                let timing = SwapTiming {
                    cluster: cluster.to_string(),
                    wave: wave.to_string(),
                    created: at(*start),
                    finished: Some(at(*end)),
                    history: Vec::new(),
                    rollback: None,
                };
                (format!("uid-{i}"), timing)
            })
            .collect()
    }

    #[test]
    fn a_retry_inside_its_wave_is_one_chain_the_wave_waits_for() {
        let t0 = Instant::now();
        // a rolled back at 3 and was retried at 3.5, before b and c ended: the wave waited for
        // the retry, so it lasted at least 3 + 10.
        let t = timings(
            t0,
            &[
                ("a", "canary", 0.0, 3.0),
                ("a", "canary", 3.5, 13.5),
                ("b", "canary", 0.0, 10.0),
                ("c", "canary", 0.0, 10.5),
            ],
        );
        let (bound, _) = critical_path(&status(&["canary"]), &t, 50, 2.0, t0);
        assert!((bound - 13.0).abs() < 1e-6, "{bound}");
    }

    #[test]
    fn a_retry_after_its_wave_runs_beside_the_next_waves() {
        let t0 = Instant::now();
        // canary (one cluster) ended at 3 with a rolled back swap; staging ran 5–15 (bake 2) and
        // the retry 4–14 beside it: waves 3 + 2 + 10 = 15 bound the run, not the retry (0 + 13).
        let t = timings(
            t0,
            &[
                ("a", "canary", 0.0, 3.0),
                ("a", "canary", 4.0, 14.0),
                ("b", "staging", 5.0, 15.0),
            ],
        );
        let (bound, _) = critical_path(&status(&["canary", "staging"]), &t, 50, 2.0, t0);
        assert!((bound - 15.0).abs() < 1e-6, "{bound}");
        // A retry that takes longer than the later waves bounds the run instead: 3 + 20.
        let t = timings(
            t0,
            &[
                ("a", "canary", 0.0, 3.0),
                ("a", "canary", 4.0, 24.0),
                ("b", "staging", 5.0, 15.0),
            ],
        );
        let (bound, _) = critical_path(&status(&["canary", "staging"]), &t, 50, 2.0, t0);
        assert!((bound - 23.0).abs() < 1e-6, "{bound}");
    }

    #[test]
    fn waves_add_up_with_their_bakes_and_the_concurrency_limit() {
        let t0 = Instant::now();
        // Wave one: 3 swaps of 4 s on 2 slots → some slot runs two: 8. Wave two: one of 5 s.
        let t = timings(
            t0,
            &[
                ("a", "one", 0.0, 4.0),
                ("b", "one", 0.0, 4.0),
                ("c", "one", 4.0, 8.0),
                ("d", "two", 10.0, 15.0),
            ],
        );
        let (bound, by_wave) = critical_path(&status(&["one", "two"]), &t, 2, 2.0, t0);
        assert!((bound - 15.0).abs() < 1e-6, "{bound}");
        assert_eq!(by_wave.len(), 2);
        assert_eq!(by_wave[0]["bound_s"], 8.0);
    }

    #[test]
    fn the_configured_bound_adds_latencies_waves_and_the_retry_chain() {
        let cfg = Configured {
            green_ready: 1.0,
            step: 1.0,
            first_step: 1.0,
            steps: 3,
            steps_before_fault: 1,
            drain_timeout: 6.0,
            retention: 5.0,
            delete: 0.2,
        };
        let mut st = status(&["canary", "rest"]);
        st.waves[0].clusters = vec!["a".into()];
        st.waves[1].clusters = (0..4).map(|i| format!("c{i}")).collect();
        let none = std::collections::BTreeSet::new();
        // A swap: 1 + 3 + 5 + 0.2 = 9.2. Canary 9.2, bake 2, rest: 4 swaps on 2 slots = 18.4.
        let bound = configured_critical_path(&st, &cfg, &none, None, 2, 2.0);
        assert!((bound - 29.6).abs() < 1e-9, "{bound}");
        // A stream on c0 drains 6 s, inside the 5 s retention but for 1 s: its swap 10.2, the
        // rest now 37.8 over 2 slots.
        let c0 = std::collections::BTreeSet::from(["c0".to_string()]);
        let bound = configured_critical_path(&st, &cfg, &c0, None, 2, 2.0);
        assert!((bound - (9.2 + 2.0 + 18.9)).abs() < 1e-9, "{bound}");
        // The canary rolled back (1 + 1 + 0.2 = 2.2), which may end its wave, and was retried:
        // a chain of 11.4 from 0, shorter than the waves (2.2 + 2 + 18.4); alone it would be
        // the bound.
        let bound = configured_critical_path(&st, &cfg, &none, Some("a"), 2, 2.0);
        assert!((bound - 22.6).abs() < 1e-9, "{bound}");
        st.waves[1].clusters.clear();
        let bound = configured_critical_path(&st, &cfg, &none, Some("a"), 2, 2.0);
        assert!((bound - 11.4).abs() < 1e-9, "{bound}");
        // A hook denied it after migration, before any step baked: 1 + 0.2, then the retry.
        let denied = Configured {
            steps_before_fault: 0,
            ..cfg
        };
        let bound = configured_critical_path(&st, &denied, &none, Some("a"), 2, 2.0);
        assert!((bound - 10.4).abs() < 1e-9, "{bound}");
        // Metric gates holding each step 2 s, the first 3 s: a swap 1 + 7 + 5 + 0.2 = 13.2;
        // rolled back after the first step, 1 + 3 + 0.2; the chain 17.4.
        let gated = Configured {
            step: 2.0,
            first_step: 3.0,
            ..cfg
        };
        let bound = configured_critical_path(&st, &gated, &none, Some("a"), 2, 2.0);
        assert!((bound - 17.4).abs() < 1e-9, "{bound}");
    }

    #[test]
    fn the_slots_bound_is_what_a_slot_must_run_in_a_row() {
        // Fewer swaps than slots: no slot runs two.
        assert_eq!(slots_bound(&[5.0, 3.0], 2), 0.0);
        // 3 swaps on 2 slots: the two shortest share a slot.
        assert_eq!(slots_bound(&[10.0, 4.0, 3.0], 2), 7.0);
        // 5 on 2: some slot runs 3, at least the 3 shortest of all 5; and k = 1 gives 4 + 3.
        assert_eq!(slots_bound(&[10.0, 4.0, 3.0, 2.0, 1.0], 2), 7.0);
        assert_eq!(slots_bound(&[4.0, 4.0, 4.0, 4.0, 4.0], 2), 12.0);
        // One slot: everything in a row.
        assert_eq!(slots_bound(&[1.0, 2.0, 3.0], 1), 6.0);
    }
}
