//! Read-your-writes for the swap controller. A reconcile can write a swap's status several times
//! in a row (a phase change, then at once the next phase's first step), while the watch cache
//! still holds a version from before. A reconcile started from such a version would act on a
//! status this process has already overwritten: converge the traffic layer to a superseded
//! weight, or decide a phase the swap has left. So each swap's recent writes are remembered —
//! the version each one replaced and the one it produced — and a reconcile of a superseded
//! version waits for the watch to bring the newer one. Versions are compared for equality only:
//! they are opaque, and another writer's version is never superseded by a guess.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::lock;

/// How many superseded versions a swap keeps: more than one reconcile writes in a row.
const KEEP: usize = 16;

/// How long an ended swap's versions are kept: far longer than a watch event takes to arrive.
const LINGER: Duration = Duration::from_secs(60);

/// Every swap's recent writes, by swap name.
#[derive(Default)]
pub(crate) struct Written(Mutex<Swaps>);

#[derive(Default)]
struct Swaps {
    by_swap: HashMap<String, Versions>,
    /// Ended swaps, oldest first: dropped once they ended [`LINGER`] ago.
    ended: VecDeque<(Instant, String)>,
}

/// One swap's versions: the latest this process wrote and those its writes replaced.
#[derive(Default)]
struct Versions {
    latest: String,
    superseded: VecDeque<String>,
}

impl Written {
    /// A write of the swap read at `read` produced `wrote`.
    pub(crate) fn wrote(&self, swap: &str, read: Option<&str>, wrote: Option<&str>) {
        let (Some(read), Some(wrote)) = (read, wrote) else {
            return;
        };
        let mut swaps = lock(&self.0);
        let v = swaps.by_swap.entry(swap.to_string()).or_default();
        for old in [read, v.latest.as_str()] {
            if !old.is_empty() && old != wrote && !v.superseded.iter().any(|s| s == old) {
                v.superseded.push_back(old.to_string());
            }
        }
        while v.superseded.len() > KEEP {
            v.superseded.pop_front();
        }
        v.latest = wrote.to_string();
    }

    /// Whether this process has written over `version` of the swap.
    pub(crate) fn superseded(&self, swap: &str, version: Option<&str>) -> bool {
        let Some(version) = version else {
            return false;
        };
        lock(&self.0)
            .by_swap
            .get(swap)
            .is_some_and(|v| v.latest != version && v.superseded.iter().any(|s| s == version))
    }

    /// The swap ended (or was deleted): its versions go after [`LINGER`], with those of other
    /// swaps that ended before.
    pub(crate) fn ended(&self, swap: &str) {
        let mut swaps = lock(&self.0);
        let now = Instant::now();
        while let Some((at, _)) = swaps.ended.front() {
            if now.duration_since(*at) < LINGER {
                break;
            }
            if let Some((_, name)) = swaps.ended.pop_front() {
                swaps.by_swap.remove(&name);
            }
        }
        if swaps.by_swap.contains_key(swap) {
            swaps.ended.push_back((now, swap.to_string()));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.0).by_swap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_written_over_is_superseded_and_the_latest_is_not() {
        let w = Written::default();
        w.wrote("s", Some("10"), Some("11"));
        w.wrote("s", Some("11"), Some("12"));
        assert!(w.superseded("s", Some("10")));
        assert!(w.superseded("s", Some("11")));
        assert!(!w.superseded("s", Some("12")));
    }

    #[test]
    fn another_writers_version_is_never_superseded() {
        let w = Written::default();
        w.wrote("s", Some("10"), Some("11"));
        // Someone else wrote 13 (a spec change): unknown here, so it is acted on.
        assert!(!w.superseded("s", Some("13")));
        assert!(!w.superseded("other", Some("10")));
        assert!(!w.superseded("s", None));
    }

    #[test]
    fn a_write_from_a_version_read_late_still_supersedes_what_it_replaced() {
        let w = Written::default();
        w.wrote("s", Some("10"), Some("11"));
        // A later reconcile read 12 (another writer's) and wrote 14.
        w.wrote("s", Some("12"), Some("14"));
        for v in ["10", "11", "12"] {
            assert!(w.superseded("s", Some(v)), "{v}");
        }
        assert!(!w.superseded("s", Some("14")));
    }

    #[test]
    fn a_swap_keeps_a_bounded_number_of_versions() {
        let w = Written::default();
        for i in 0..100 {
            w.wrote("s", Some(&i.to_string()), Some(&(i + 1).to_string()));
        }
        let swaps = lock(&w.0);
        assert_eq!(swaps.by_swap["s"].superseded.len(), KEEP);
        assert_eq!(swaps.by_swap["s"].latest, "100");
    }

    #[test]
    fn an_ended_swap_is_kept_until_it_lingered() {
        let w = Written::default();
        w.wrote("s", Some("1"), Some("2"));
        w.ended("s");
        w.ended("never-written");
        assert_eq!(w.len(), 1, "an ended swap's versions linger");
        assert!(w.superseded("s", Some("1")));
        // Age the entry past LINGER: the next end sweeps it.
        lock(&w.0).ended[0].0 = Instant::now()
            .checked_sub(LINGER + Duration::from_secs(1))
            .expect("the machine is up longer than LINGER");
        w.ended("t");
        assert_eq!(w.len(), 0);
    }
}
