//! Per-backend latency, as histograms: what a latency gate judges (a green that answers, but
//! slowly, fails no status check).
//!
//! A histogram counts requests per fixed bucket of time to the answer's head (a stream's first
//! byte, not its end). Counts are cumulative since the endpoint was registered, like
//! [`crate::BackendCounters`], so a gate takes the difference of two samples
//! ([`Latencies::since`]) and reads a quantile of that step alone. A quantile is the upper
//! bound of the bucket it falls in: never lower than the true value, so a gate errs on the side
//! of rolling back.

use std::time::Duration;

use crate::Backend;

/// Upper bounds of the buckets, in milliseconds; one more bucket holds everything above the
/// last (reported as [`Latencies::OVER`]).
pub const BUCKET_BOUNDS_MS: [u64; 16] = [
    5, 10, 25, 50, 100, 150, 250, 400, 600, 800, 1_000, 1_500, 2_500, 5_000, 8_000, 10_000,
];

const BUCKETS: usize = BUCKET_BOUNDS_MS.len() + 1;

/// One backend's latency histogram (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Latencies {
    counts: [u64; BUCKETS],
}

impl Latencies {
    /// What a quantile in the last, open bucket reads as.
    pub const OVER: u64 = u64::MAX;

    /// Counts one request that took `took`.
    pub fn record(&mut self, took: Duration) {
        self.record_n(took, 1);
    }

    /// Requests counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// What happened between `earlier` (a previous sample) and `self`; saturating.
    pub fn since(&self, earlier: &Latencies) -> Latencies {
        let mut counts = self.counts;
        for (c, e) in counts.iter_mut().zip(earlier.counts) {
            *c = c.saturating_sub(e);
        }
        Latencies { counts }
    }

    /// These counts and `held` more just over `older_than`: requests held unanswered for
    /// longer than that will take longer when they end, so a quantile can count them now.
    pub fn with_held(&self, older_than: Duration, held: u64) -> Latencies {
        let mut with = *self;
        with.record_n(older_than + Duration::from_millis(1), held);
        with
    }

    fn record_n(&mut self, took: Duration, n: u64) {
        let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        let bucket = BUCKET_BOUNDS_MS.partition_point(|&bound| bound < ms);
        self.counts[bucket] += n;
    }

    /// These counts and, when they are fewer than `at_least`, as many more in the fastest
    /// bucket: a small sample judged as if the requests it lacks had been fast, so one slow
    /// answer in a quiet step is not its 99th percentile, and a few are.
    pub fn padded(&self, at_least: u64) -> Latencies {
        let mut padded = *self;
        padded.counts[0] += at_least.saturating_sub(self.total());
        padded
    }

    /// The `q`-quantile (0 < q ≤ 1) in milliseconds, as its bucket's upper bound ([`Self::OVER`]
    /// past the last bound); `None` without requests.
    pub fn quantile_ms(&self, q: f64) -> Option<u64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        // The rank of the quantile: the smallest count c with c ≥ q·total.
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(BUCKET_BOUNDS_MS.get(i).copied().unwrap_or(Self::OVER));
            }
        }
        Some(Self::OVER)
    }
}

/// [`Latencies`] of both backends of an endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BackendLatencies {
    pub blue: Latencies,
    pub green: Latencies,
}

impl BackendLatencies {
    pub fn get_mut(&mut self, backend: Backend) -> &mut Latencies {
        match backend {
            Backend::Blue => &mut self.blue,
            Backend::Green => &mut self.green,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(ms: &[u64]) -> Latencies {
        let mut l = Latencies::default();
        for &m in ms {
            l.record(Duration::from_millis(m));
        }
        l
    }

    #[test]
    fn quantiles_are_bucket_upper_bounds() {
        assert_eq!(Latencies::default().quantile_ms(0.99), None);
        // 100 requests: 94 at 3 ms, 5 at 120 ms, 1 at 4 s.
        let mut ms = vec![3; 94];
        ms.extend([120; 5]);
        ms.push(4_000);
        let l = of(&ms);
        assert_eq!(l.total(), 100);
        assert_eq!(l.quantile_ms(0.5), Some(5));
        assert_eq!(l.quantile_ms(0.94), Some(5));
        assert_eq!(l.quantile_ms(0.95), Some(150));
        assert_eq!(l.quantile_ms(0.99), Some(150));
        assert_eq!(l.quantile_ms(1.0), Some(5_000));
        // Exactly on a bound is in that bucket; past the last bound is OVER.
        assert_eq!(of(&[10]).quantile_ms(0.5), Some(10));
        assert_eq!(of(&[11]).quantile_ms(0.5), Some(25));
        assert_eq!(of(&[60_000]).quantile_ms(0.5), Some(Latencies::OVER));
    }

    #[test]
    fn held_requests_count_just_over_their_age() {
        // 98 fast answers and 2 requests held for over 500 ms: p99 is past 500 ms now.
        let seen = of(&[3; 98]);
        let judged = seen.with_held(Duration::from_millis(500), 2);
        assert_eq!(judged.total(), 100);
        assert_eq!(judged.quantile_ms(0.99), Some(600));
        assert_eq!(judged.quantile_ms(0.98), Some(5));
        // Held past a bucket's own bound: the next bucket, never the bound itself.
        assert_eq!(
            of(&[])
                .with_held(Duration::from_millis(400), 1)
                .quantile_ms(1.0),
            Some(600)
        );
        assert_eq!(seen.with_held(Duration::from_millis(500), 0), seen);
    }

    #[test]
    fn a_step_is_judged_on_its_own_requests() {
        let before = of(&[3; 1000]);
        let mut after = before;
        for _ in 0..10 {
            after.record(Duration::from_millis(1_200));
        }
        // Over everything, the slow ten vanish under p99; over the step alone they are all.
        assert_eq!(after.quantile_ms(0.99), Some(5));
        let step = after.since(&before);
        assert_eq!(step.total(), 10);
        assert_eq!(step.quantile_ms(0.5), Some(1_500));
        assert_eq!(before.since(&after).total(), 0);
        // Padded to 20: one slow answer is not the p95 (rank 19 is fast), two are.
        assert_eq!(of(&[1_200]).padded(20).quantile_ms(0.95), Some(5));
        assert_eq!(
            of(&[1_200, 1_200]).padded(20).quantile_ms(0.95),
            Some(1_500)
        );
        assert_eq!(of(&[3; 30]).padded(20), of(&[3; 30]));
    }
}
