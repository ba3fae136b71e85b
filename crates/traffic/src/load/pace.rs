//! Where and how fast a [`Load`](super::Load) sends: its rate and its focus.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How fast a [`Load`] sends and where: an open-loop rate keeps the load's share of the machine
/// what was asked for (unpaced, `concurrency` workers send as fast as the proxy and the
/// application answer, and on a small machine they crowd out what the load is watching), and a
/// focus sends most requests to the endpoints something is happening to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pace {
    /// Requests per second over all workers (slow requests and streams aside); None: as fast
    /// as the workers get answers.
    pub per_second: Option<u32>,
    /// Percentage of requests sent to the focused URLs (see [`Focus`]) while there are any;
    /// the rest go round the whole list.
    pub focus_percent: u8,
}

impl Pace {
    /// One worker's ticker: each of `workers` sends at its share of the rate. A worker that
    /// falls behind (slow answers) does not catch up in a burst.
    pub(super) fn ticker(&self, workers: usize) -> Option<tokio::time::Interval> {
        let per_second = self.per_second.filter(|r| *r > 0)?;
        let period = Duration::from_secs_f64(workers.max(1) as f64 / f64::from(per_second));
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Some(ticker)
    }
}

/// The URLs (by index into the load's list) a [`Load`] sends its focused share to: `rotor
/// demo` focuses the clusters whose swap is running, so each sees many requests at every
/// weight step however large the fleet.
#[derive(Debug, Clone, Default)]
pub struct Focus {
    on: Arc<Mutex<Vec<usize>>>,
    next: Arc<AtomicU64>,
}

impl Focus {
    /// Focuses on URL `index` or stops.
    pub fn set(&self, index: usize, focused: bool) {
        let mut on = self.on.lock().unwrap_or_else(|p| p.into_inner());
        match (on.binary_search(&index), focused) {
            (Err(at), true) => on.insert(at, index),
            (Ok(at), false) => {
                on.remove(at);
            }
            _ => {}
        }
    }

    /// How many URLs are focused.
    pub fn len(&self) -> usize {
        self.on.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The URL request `i` goes to: a focused one for `percent` of requests while any are
    /// focused (spread apart from the method mix, so writes are focused as often as reads).
    pub(super) fn pick<'u>(&self, i: u64, urls: &'u [String], percent: u8) -> &'u String {
        if (i.wrapping_mul(61).wrapping_add(13) % 100) < u64::from(percent) {
            let on = self.on.lock().unwrap_or_else(|p| p.into_inner());
            if !on.is_empty() {
                let n = self.next.fetch_add(1, Ordering::Relaxed) as usize;
                if let Some(url) = urls.get(on[n % on.len()]) {
                    return url;
                }
            }
        }
        &urls[i as usize % urls.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_focus_takes_its_share_of_requests_and_the_rest_go_round() {
        let urls: Vec<String> = (0..10).map(|i| format!("u{i}")).collect();
        let focus = Focus::default();
        let count = |focus: &Focus| {
            let mut hits = [0u32; 10];
            for i in 0..1000 {
                let url = focus.pick(i, &urls, 80);
                hits[urls.iter().position(|u| u == url).expect("one of them")] += 1;
            }
            hits
        };
        assert_eq!(count(&focus), [100; 10], "nothing focused: round robin");
        focus.set(3, true);
        focus.set(7, true);
        focus.set(3, true);
        assert_eq!(focus.len(), 2);
        let hits = count(&focus);
        // 80 % shared by the two focused URLs, 20 % round the ten.
        assert_eq!(
            (hits[3], hits[7], hits[0]),
            (400 + 20, 400 + 20, 20),
            "{hits:?}"
        );
        focus.set(3, false);
        assert_eq!(count(&focus)[7], 800 + 20);
    }
}
