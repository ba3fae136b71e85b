//! Coalescing re-queue triggers: each distinct item passes at once the first time, and then at
//! most once per window, at the window's end, however often it came meanwhile.
//!
//! A Rollout is re-queued by every change of every one of its swaps. With 500 swaps running,
//! that is hundreds of changes a second, and each reconcile reads all the Rollout's swaps and
//! may write its status, which names every cluster of the fleet: at 10,000 clusters, work that
//! grows with the fleet for each change. Coalesced, a Rollout reconciles at most about once
//! per window while its swaps churn, and at once after a quiet spell. kube-runtime's debounce
//! does not serve: it postpones an item while requests keep coming, so under steady churn the
//! Rollout would never run.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::time::Instant;

/// Passes `input` on, each distinct item at most once per `window` (see the module docs). Ends
/// when `input` ends, after passing on what was held.
pub(crate) fn coalesce<T, S>(input: S, window: Duration) -> impl Stream<Item = T> + Send
where
    T: Hash + Eq + Clone + Send + 'static,
    S: Stream<Item = T> + Send + 'static,
{
    let state = Coalescer {
        input: Box::pin(input.fuse()),
        window,
        passed: HashMap::new(),
        held: HashSet::new(),
        out: Vec::new(),
        ticks: tokio::time::interval(window / 4),
    };
    futures::stream::unfold(state, |mut state| async move {
        state.next().await.map(|item| (item, state))
    })
}

struct Coalescer<T> {
    input: std::pin::Pin<Box<dyn Stream<Item = T> + Send>>,
    window: Duration,
    /// When each item recently passed (pruned once a window is over).
    passed: HashMap<T, Instant>,
    /// Items that came within their window, to pass at its end.
    held: HashSet<T>,
    /// Items ready to pass.
    out: Vec<T>,
    ticks: tokio::time::Interval,
}

impl<T: Hash + Eq + Clone> Coalescer<T> {
    async fn next(&mut self) -> Option<T> {
        loop {
            if let Some(item) = self.out.pop() {
                self.passed.insert(item.clone(), Instant::now());
                return Some(item);
            }
            tokio::select! {
                item = self.input.next() => match item {
                    Some(item) => self.arrived(item),
                    None if self.held.is_empty() => return None,
                    None => self.out.extend(self.held.drain()),
                },
                _ = self.ticks.tick(), if !self.held.is_empty() || !self.passed.is_empty() => {
                    self.release_due();
                }
            }
        }
    }

    fn arrived(&mut self, item: T) {
        let within = self
            .passed
            .get(&item)
            .is_some_and(|at| at.elapsed() < self.window);
        if within {
            self.held.insert(item);
        } else if !self.out.contains(&item) {
            self.out.push(item);
        }
    }

    /// Passes the held items whose window is over, and forgets windows that are over.
    fn release_due(&mut self) {
        let window = self.window;
        let over = |at: Option<&Instant>| at.is_none_or(|at| at.elapsed() >= window);
        let due: Vec<T> = self
            .held
            .iter()
            .filter(|item| over(self.passed.get(*item)))
            .cloned()
            .collect();
        for item in due {
            self.held.remove(&item);
            self.out.push(item);
        }
        self.passed
            .retain(|item, at| at.elapsed() < window || self.held.contains(item));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long beside the microseconds the items take to arrive, even on a busy machine.
    const WINDOW: Duration = Duration::from_millis(500);

    fn coalesced<T: Hash + Eq + Clone + Send + 'static>() -> (
        tokio::sync::mpsc::UnboundedSender<T>,
        std::pin::Pin<Box<dyn Stream<Item = T> + Send>>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let out = coalesce(
            tokio_stream::wrappers::UnboundedReceiverStream::new(rx),
            WINDOW,
        );
        (tx, Box::pin(out))
    }

    #[tokio::test]
    async fn a_burst_passes_once_more_after_the_first() {
        let (tx, mut out) = coalesced();
        tx.send("a").unwrap();
        assert_eq!(out.next().await, Some("a"), "the first passes");
        for _ in 0..50 {
            tx.send("a").unwrap();
        }
        tx.send("b").unwrap();
        assert_eq!(out.next().await, Some("b"), "another item is not held");
        assert_eq!(out.next().await, Some("a"), "the burst passes once");
        drop(tx);
        assert_eq!(out.next().await, None, "nothing else was held");
    }

    #[tokio::test]
    async fn what_is_held_passes_when_the_input_ends() {
        let (tx, mut out) = coalesced();
        tx.send(7).unwrap();
        assert_eq!(out.next().await, Some(7));
        tx.send(7).unwrap();
        tx.send(7).unwrap();
        drop(tx);
        assert_eq!(out.next().await, Some(7));
        assert_eq!(out.next().await, None);
    }
}
