//! Pairs each change the bench's watch saw with the moment the page's DOM showed it.

use std::collections::{BTreeMap, HashMap};

/// One change: what (`cluster/NAME`, `swap/CLUSTER`), its new value, when (wall clock, ms).
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub key: String,
    pub value: String,
    pub at_ms: f64,
}

/// How much earlier than the bench's watch the page may see a change (both watch the same
/// server; either may read an event first).
const SLACK_MS: f64 = 1000.0;

/// The delays, ms, from each change in `api` (in time order) of a key the page drew at all to
/// the first record in `dom` of that key whose value `shows` it — no earlier than [`SLACK_MS`]
/// before the change and after the record that showed the key's previous change — and how many
/// such changes the page never showed.
pub fn delays(
    api: &[Change],
    dom: &[Change],
    shows: impl Fn(&str, &str) -> bool,
) -> (Vec<f64>, usize) {
    let mut by_key: BTreeMap<&str, Vec<&Change>> = BTreeMap::new();
    for c in dom {
        by_key.entry(&c.key).or_default().push(c);
    }
    let mut cursor: HashMap<&str, usize> = HashMap::new();
    let (mut found, mut missed) = (Vec::new(), 0);
    for change in api {
        let Some(records) = by_key.get(change.key.as_str()) else {
            continue; // never drawn by this view (e.g. beyond the timeline's rows)
        };
        let from = cursor.get(change.key.as_str()).copied().unwrap_or(0);
        let hit = records[from..]
            .iter()
            .position(|r| r.at_ms >= change.at_ms - SLACK_MS && shows(&change.value, &r.value));
        match hit {
            Some(i) => {
                found.push(records[from + i].at_ms - change.at_ms);
                cursor.insert(&change.key, from + i + 1);
            }
            None => missed += 1,
        }
    }
    (found, missed)
}

/// The `q`-quantile of `sorted` (ascending) by nearest rank; 0 when empty.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(key: &str, value: &str, at_ms: f64) -> Change {
        Change {
            key: key.into(),
            value: value.into(),
            at_ms,
        }
    }

    #[test]
    fn each_change_pairs_with_the_first_later_record_showing_it() {
        let api = [
            c("swap/a", "Provisioning", 1000.0),
            c("swap/a", "Verifying", 2000.0),
            c("swap/b", "Provisioning", 1500.0),
            c("swap/never-drawn", "Provisioning", 1500.0),
            c("swap/a", "Succeeded", 3000.0),
        ];
        let dom = [
            c("swap/a", "Provisioning", 1020.0),
            c("swap/b", "Provisioning", 1490.0),
            c("swap/a", "Verifying", 2100.0),
        ];
        let (found, missed) = delays(&api, &dom, |a, d| a == d);
        assert_eq!(found, [20.0, 100.0, -10.0]);
        assert_eq!(missed, 1, "a's Succeeded was never shown");
        let mut sorted = found.clone();
        sorted.sort_by(f64::total_cmp);
        assert_eq!(quantile(&sorted, 0.5), 20.0);
        assert_eq!(quantile(&sorted, 1.0), 100.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
