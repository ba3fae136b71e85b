//! How often to ask a cloud about an operation it has no events for (a create or delete in
//! progress), in one place: fast while something is in progress, backing off as it lasts;
//! slow when nothing is; and slower still when the provider says it is rate-limiting us, with
//! one warning per rate-limited stretch rather than one per poll.
//!
//! Pure: [`PollState::next`] maps what the last call saw to the time until the next one, so the
//! schedule is unit-tested; [`Poller`] keeps one state per key (an object, an operation).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The schedule's parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct PollPolicy {
    /// The first poll after an operation is seen in progress.
    pub first: Duration,
    /// Each further poll of the same operation waits this many times longer…
    pub factor: f64,
    /// …up to this.
    pub max_in_progress: Duration,
    /// Between polls when nothing is in progress.
    pub idle: Duration,
    /// The first wait after the provider rate-limited a call (or its `Retry-After`, if longer);
    /// doubles while calls keep being rate-limited…
    pub rate_limited_first: Duration,
    /// …up to this.
    pub rate_limited_max: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            first: Duration::from_millis(250),
            factor: 1.5,
            max_in_progress: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            rate_limited_first: Duration::from_secs(5),
            rate_limited_max: Duration::from_secs(300),
        }
    }
}

/// What the last call told of the operation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Observed {
    /// Still going (creating, deleting): poll again soon.
    InProgress,
    /// Nothing in progress: poll at the idle pace.
    Idle,
    /// The provider refused the call for its rate limit, possibly saying how long to wait.
    RateLimited { retry_after: Option<Duration> },
}

/// When to poll next, and whether this is the start of a rate-limited stretch (warn once).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Next {
    pub after: Duration,
    pub warn: bool,
}

/// One operation's place in the schedule.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PollState {
    /// Polls seen in progress in a row.
    in_progress: u32,
    /// Calls rate-limited in a row.
    rate_limited: u32,
    /// The last in-progress interval (a rate limit never makes polling faster than that).
    last: Duration,
}

impl PollState {
    pub fn next(&mut self, policy: &PollPolicy, observed: Observed) -> Next {
        match observed {
            Observed::InProgress => {
                self.rate_limited = 0;
                let after = grow(
                    policy.first,
                    policy.factor,
                    self.in_progress,
                    policy.max_in_progress,
                );
                self.in_progress = self.in_progress.saturating_add(1);
                self.last = after;
                Next { after, warn: false }
            }
            Observed::Idle => {
                *self = PollState::default();
                Next {
                    after: policy.idle,
                    warn: false,
                }
            }
            Observed::RateLimited { retry_after } => {
                let warn = self.rate_limited == 0;
                let backoff = grow(
                    policy.rate_limited_first,
                    2.0,
                    self.rate_limited,
                    policy.rate_limited_max,
                );
                self.rate_limited = self.rate_limited.saturating_add(1);
                // The provider's own word wins when it asks for longer; never more than the cap
                // (a broken header must not stop polling for a day).
                let after = backoff
                    .max(retry_after.unwrap_or_default().min(policy.rate_limited_max))
                    .max(self.last);
                Next { after, warn }
            }
        }
    }

    /// Whether the last call was rate-limited.
    pub fn rate_limited(&self) -> bool {
        self.rate_limited > 0
    }

    /// A call got through: a rate-limited stretch is over (the next limit warns again).
    pub fn answered(&mut self) {
        self.rate_limited = 0;
    }
}

/// `first · factor^n`, at most `max`.
fn grow(first: Duration, factor: f64, n: u32, max: Duration) -> Duration {
    let f = factor.max(1.0).powi(n.min(64) as i32);
    if !f.is_finite() || first.as_secs_f64() * f >= max.as_secs_f64() {
        return max;
    }
    first.mul_f64(f).min(max)
}

/// Poll states by key (e.g. `clusterswap/NAME`), for a controller's reconciles.
#[derive(Debug, Default)]
pub struct Poller {
    policy: PollPolicy,
    states: Mutex<HashMap<String, PollState>>,
}

/// Past this many keys the states start over (a leak would otherwise grow with every object).
const MAX_KEYS: usize = 100_000;

impl Poller {
    pub fn new(policy: PollPolicy) -> Self {
        Poller {
            policy,
            states: Mutex::default(),
        }
    }

    pub fn policy(&self) -> &PollPolicy {
        &self.policy
    }

    /// The next poll of `key` after `observed`. Idle forgets the key.
    pub fn next(&self, key: &str, observed: Observed) -> Next {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        if observed == Observed::Idle {
            states.remove(key);
            return PollState::default().next(&self.policy, observed);
        }
        if states.len() >= MAX_KEYS && !states.contains_key(key) {
            states.clear();
        }
        states
            .entry(key.to_string())
            .or_default()
            .next(&self.policy, observed)
    }

    /// A call for `key` got through: ends its rate-limited stretch, keeps its pace.
    pub fn answered(&self, key: &str) {
        if let Some(st) = self
            .states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(key)
        {
            st.answered();
        }
    }

    /// Forgets `key` (its operation ended, or its object is gone).
    pub fn forget(&self, key: &str) {
        self.states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn schedule(state: &mut PollState, policy: &PollPolicy, n: usize) -> Vec<Duration> {
        (0..n)
            .map(|_| state.next(policy, Observed::InProgress).after)
            .collect()
    }

    #[test]
    fn in_progress_starts_fast_and_backs_off_to_a_cap() {
        let policy = PollPolicy::default();
        let mut st = PollState::default();
        let got = schedule(&mut st, &policy, 12);
        let millis: Vec<u128> = got.iter().map(|d| d.as_millis()).collect();
        assert_eq!(millis[..6], [250, 375, 562, 843, 1265, 1898], "{got:?}");
        assert!(got.windows(2).all(|w| w[0] <= w[1]), "{got:?}");
        assert_eq!(got[11], policy.max_in_progress, "{got:?}");
        // Once done, the pace is the idle one, and a new operation starts fast again.
        assert_eq!(st.next(&policy, Observed::Idle).after, policy.idle);
        assert_eq!(st.next(&policy, Observed::InProgress).after, ms(250));
    }

    #[test]
    fn rate_limits_back_off_and_warn_once_per_stretch() {
        let policy = PollPolicy::default();
        let mut st = PollState::default();
        schedule(&mut st, &policy, 3);
        let limited = Observed::RateLimited { retry_after: None };
        let stretch: Vec<Next> = (0..8).map(|_| st.next(&policy, limited)).collect();
        assert_eq!(
            stretch.iter().filter(|n| n.warn).count(),
            1,
            "one warning for the stretch: {stretch:?}"
        );
        assert!(stretch[0].warn);
        assert_eq!(
            stretch
                .iter()
                .map(|n| n.after.as_secs())
                .collect::<Vec<_>>(),
            [5, 10, 20, 40, 80, 160, 300, 300]
        );
        assert!(st.rate_limited());
        // The provider's Retry-After wins when longer, within the cap.
        let mut fresh = PollState::default();
        let n = fresh.next(
            &policy,
            Observed::RateLimited {
                retry_after: Some(Duration::from_secs(42)),
            },
        );
        assert_eq!(
            n,
            Next {
                after: Duration::from_secs(42),
                warn: true
            }
        );
        let n = fresh.next(
            &policy,
            Observed::RateLimited {
                retry_after: Some(Duration::from_secs(86_400)),
            },
        );
        assert_eq!(n.after, policy.rate_limited_max);
        assert!(!n.warn);
        // A call that gets through ends the stretch: the next limit warns again.
        assert!(!st.next(&policy, Observed::InProgress).warn);
        assert!(!st.rate_limited());
        assert!(st.next(&policy, limited).warn);
    }

    #[test]
    fn a_poller_keeps_one_schedule_per_key() {
        let poller = Poller::new(PollPolicy {
            first: ms(100),
            factor: 2.0,
            max_in_progress: ms(1000),
            ..PollPolicy::default()
        });
        let a: Vec<u128> = (0..5)
            .map(|_| poller.next("a", Observed::InProgress).after.as_millis())
            .collect();
        assert_eq!(a, [100, 200, 400, 800, 1000]);
        assert_eq!(poller.next("b", Observed::InProgress).after, ms(100));
        assert_eq!(poller.next("a", Observed::Idle).after, poller.policy().idle);
        assert_eq!(poller.next("a", Observed::InProgress).after, ms(100));
        poller.forget("b");
        assert_eq!(poller.next("b", Observed::InProgress).after, ms(100));
        // A call that got through ends a rate-limited stretch and keeps the pace.
        let limited = Observed::RateLimited { retry_after: None };
        assert!(poller.next("b", limited).warn);
        assert!(!poller.next("b", limited).warn);
        poller.answered("b");
        assert!(poller.next("b", limited).warn);
        poller.answered("unknown");
    }

    #[test]
    fn degenerate_policies_do_not_panic() {
        let policy = PollPolicy {
            first: Duration::ZERO,
            factor: f64::NAN,
            max_in_progress: ms(5),
            ..PollPolicy::default()
        };
        let mut st = PollState::default();
        for _ in 0..100 {
            assert!(st.next(&policy, Observed::InProgress).after <= ms(5));
        }
    }
}
