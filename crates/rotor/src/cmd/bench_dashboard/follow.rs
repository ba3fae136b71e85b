//! The swap view's page follows one running swap at a time: the swap that began last, and when
//! it ends, the next one that began last, so that the measurement sees the changes of several
//! swaps from start to end as a person watching one swap's page would.

use std::collections::HashSet;
use std::sync::Mutex;

use serde_json::json;

use super::browser::Page;
use super::delays::Change;
use super::{Seen, lock, wall_ms};

/// A swap the page showed: its cluster, from when the page opened it to when it left (wall
/// clock, ms).
pub struct Window {
    pub cluster: String,
    pub from_ms: f64,
    pub to_ms: f64,
}

pub struct Follower<'a> {
    page: &'a Page,
    /// The cluster whose swap is on the page, since when.
    current: Option<(String, f64)>,
    done: Vec<Window>,
    followed: HashSet<String>,
}

impl<'a> Follower<'a> {
    pub fn new(page: &'a Page) -> Self {
        Follower {
            page,
            current: None,
            done: Vec::new(),
            followed: HashSet::new(),
        }
    }

    /// Opens the running swap that began last (not followed before) when none is on the page
    /// or the one on it ended.
    pub async fn step(&mut self, seen: &Mutex<Seen>) -> anyhow::Result<()> {
        let next = {
            let s = lock(seen);
            if let Some((cluster, _)) = &self.current
                && !s.ended.get(cluster).copied().unwrap_or(false)
            {
                return Ok(());
            }
            s.begun_at
                .iter()
                .filter(|(c, _)| !s.ended.get(*c).copied().unwrap_or(true))
                .filter(|(c, _)| !self.followed.contains(*c))
                .max_by(|a, b| a.1.total_cmp(b.1))
                .and_then(|(c, _)| Some((c.clone(), s.names.get(c)?.clone())))
        };
        let Some((cluster, name)) = next else {
            return Ok(());
        };
        self.leave();
        let at = wall_ms();
        self.page
            .run(&format!(
                "location.hash = {};",
                json!(format!("swap/{name}"))
            ))
            .await?;
        self.followed.insert(cluster.clone());
        self.current = Some((cluster, at));
        Ok(())
    }

    fn leave(&mut self) {
        if let Some((cluster, from_ms)) = self.current.take() {
            self.done.push(Window {
                cluster,
                from_ms,
                to_ms: wall_ms(),
            });
        }
    }

    /// Every swap the page showed, the last one up to now.
    pub fn finish(mut self) -> Vec<Window> {
        self.leave();
        self.done
    }
}

/// The changes of `api` (`phase/CLUSTER`, `weight/CLUSTER`) made while the page showed that
/// cluster's swap.
pub fn while_shown(api: &[Change], windows: &[Window]) -> Vec<Change> {
    api.iter()
        .filter(|c| {
            let cluster = c.key.split_once('/').map_or("", |(_, c)| c);
            windows
                .iter()
                .any(|w| w.cluster == cluster && w.from_ms <= c.at_ms && c.at_ms <= w.to_ms)
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(key: &str, at_ms: f64) -> Change {
        Change {
            key: key.into(),
            value: "v".into(),
            at_ms,
        }
    }

    #[test]
    fn only_the_changes_made_while_the_page_showed_their_swap_count() {
        let windows = [
            Window {
                cluster: "a".into(),
                from_ms: 100.0,
                to_ms: 200.0,
            },
            Window {
                cluster: "b".into(),
                from_ms: 200.0,
                to_ms: 300.0,
            },
        ];
        let api = [
            c("phase/a", 50.0),   // before the page opened a
            c("phase/a", 150.0),  // shown
            c("weight/a", 250.0), // after the page left a
            c("weight/b", 250.0), // shown
            c("phase/c", 150.0),  // never on the page
        ];
        let kept: Vec<_> = while_shown(&api, &windows)
            .into_iter()
            .map(|c| (c.key, c.at_ms))
            .collect();
        assert_eq!(
            kept,
            [
                ("phase/a".to_string(), 150.0),
                ("weight/b".to_string(), 250.0)
            ]
        );
    }
}
