//! Watch fan-out and the bounded history both backends share: every committed event is appended
//! here in revision order, replayed to new watchers, and sent to live ones without ever blocking
//! the writer (a watcher whose buffer is full is dropped and must resume or relist).

use std::collections::{BTreeMap, VecDeque};

use tokio::sync::mpsc;

use crate::{KeyValue, Result, StoreError, WatchEvent, WatchReceiver};

/// Events buffered per live watcher beyond its replay.
pub const WATCH_BUFFER: usize = 1024;

struct Watcher {
    prefix: String,
    /// Only events after this revision are for this watcher.
    after: u64,
    tx: mpsc::Sender<WatchEvent>,
}

pub(crate) struct Hub {
    history: VecDeque<WatchEvent>,
    capacity: usize,
    /// Every event with a revision above this is still in `history`.
    compacted: u64,
    /// The revision of the last published event.
    revision: u64,
    watchers: Vec<Watcher>,
}

impl Hub {
    pub(crate) fn new(capacity: usize, revision: u64) -> Self {
        Hub {
            history: VecDeque::new(),
            capacity: capacity.max(1),
            compacted: revision,
            revision,
            watchers: Vec::new(),
        }
    }

    pub(crate) fn revision(&self) -> u64 {
        self.revision
    }

    pub(crate) fn publish(&mut self, event: WatchEvent) {
        self.revision = event.revision();
        let (key, rev) = (event.key().to_string(), event.revision());
        self.watchers.retain(|w| {
            if rev <= w.after || !key.starts_with(&w.prefix) {
                return !w.tx.is_closed();
            }
            w.tx.try_send(event.clone()).is_ok()
        });
        self.history.push_back(event);
        while self.history.len() > self.capacity {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.revision();
            }
        }
    }

    pub(crate) fn subscribe(&mut self, prefix: &str, after: u64) -> Result<WatchReceiver> {
        if after < self.compacted {
            return Err(StoreError::Compacted {
                requested: after,
                oldest: self.compacted + 1,
            });
        }
        let replay: Vec<&WatchEvent> = self
            .history
            .iter()
            .filter(|e| e.revision() > after && e.key().starts_with(prefix))
            .collect();
        let (tx, rx) = mpsc::channel(WATCH_BUFFER + replay.len());
        for e in replay {
            // Capacity covers the replay: this cannot fail.
            let _ = tx.try_send(e.clone());
        }
        self.watchers.push(Watcher {
            prefix: prefix.to_string(),
            after: after.max(self.revision),
            tx,
        });
        Ok(rx)
    }

    /// `items` (every key under `prefix` at revision `items_revision`) as they were at `revision`,
    /// by undoing the retained events in between, newest first: a create is removed, an update
    /// or a delete puts back the value before it. None while the events up to `items_revision`
    /// are not all published yet (a commit not yet announced); `Compacted` when the history no
    /// longer reaches back to `revision`.
    pub(crate) fn rewind(
        &self,
        prefix: &str,
        revision: u64,
        items: Vec<KeyValue>,
        items_revision: u64,
    ) -> Result<Option<Vec<KeyValue>>> {
        if revision < self.compacted {
            return Err(StoreError::Compacted {
                requested: revision,
                oldest: self.compacted + 1,
            });
        }
        if self.revision < items_revision {
            return Ok(None);
        }
        let mut state: BTreeMap<String, KeyValue> =
            items.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
        let undone = self.history.iter().rev().filter(|e| {
            e.revision() > revision && e.revision() <= items_revision && e.key().starts_with(prefix)
        });
        for event in undone {
            match event {
                WatchEvent::Put { kv, prev: None } => {
                    state.remove(&kv.key);
                }
                WatchEvent::Put { prev: Some(p), .. } | WatchEvent::Delete { prev: p, .. } => {
                    state.insert(p.key.clone(), p.clone());
                }
            }
        }
        Ok(Some(state.into_values().collect()))
    }
}
