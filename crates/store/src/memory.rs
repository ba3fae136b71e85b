//! The in-memory backend: a sorted map and the shared watch hub under one lock. The simulator runs
//! one per member cluster, so per-store overhead stays small (history capacity is the caller's).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;

use crate::hub::Hub;
use crate::{KeyValue, ListPage, Result, Store, StoreError, WatchEvent, WatchReceiver};

/// Default number of events kept for watch replay.
pub const DEFAULT_HISTORY: usize = 1000;

struct Inner {
    map: BTreeMap<String, KeyValue>,
    hub: Hub,
}

pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_history(DEFAULT_HISTORY)
    }
}

impl MemoryStore {
    /// A store keeping the last `history` events for watch replay.
    pub fn with_history(history: usize) -> Self {
        MemoryStore {
            inner: Mutex::new(Inner {
                map: BTreeMap::new(),
                hub: Hub::new(history, 0),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Keys under `prefix` after `start_after`, ascending, at most `limit` (0 = all).
pub(crate) fn page(
    map: &BTreeMap<String, KeyValue>,
    prefix: &str,
    start_after: Option<&str>,
    limit: usize,
) -> (Vec<KeyValue>, bool) {
    let lower = match start_after {
        Some(k) if k >= prefix => Bound::Excluded(k.to_string()),
        _ => Bound::Included(prefix.to_string()),
    };
    let mut iter = map
        .range((lower, Bound::Unbounded))
        .take_while(|(k, _)| k.starts_with(prefix));
    let mut items = Vec::new();
    for (_, kv) in iter.by_ref() {
        items.push(kv.clone());
        if limit != 0 && items.len() == limit {
            break;
        }
    }
    let more = limit != 0 && items.len() == limit && iter.next().is_some();
    (items, more)
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self.lock().map.get(key).cloned())
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        let inner = self.lock();
        let (items, more) = page(&inner.map, prefix, start_after, limit);
        Ok(ListPage {
            items,
            revision: inner.hub.revision(),
            more,
        })
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        let mut inner = self.lock();
        if inner.map.contains_key(key) {
            return Err(StoreError::AlreadyExists(key.to_string()));
        }
        let rev = inner.hub.revision() + 1;
        let kv = KeyValue {
            key: key.to_string(),
            value,
            create_revision: rev,
            mod_revision: rev,
        };
        inner.map.insert(key.to_string(), kv.clone());
        inner.hub.publish(WatchEvent::Put {
            kv: kv.clone(),
            prev: None,
        });
        Ok(kv)
    }

    async fn update(&self, key: &str, value: Bytes, expected_revision: u64) -> Result<KeyValue> {
        let mut inner = self.lock();
        let rev = inner.hub.revision() + 1;
        let prev = inner
            .map
            .get(key)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(key.to_string()))?;
        if prev.mod_revision != expected_revision {
            return Err(StoreError::Conflict {
                key: key.to_string(),
                expected: expected_revision,
                current: prev.mod_revision,
            });
        }
        let kv = KeyValue {
            key: key.to_string(),
            value,
            create_revision: prev.create_revision,
            mod_revision: rev,
        };
        inner.map.insert(key.to_string(), kv.clone());
        inner.hub.publish(WatchEvent::Put {
            kv: kv.clone(),
            prev: Some(prev),
        });
        Ok(kv)
    }

    async fn delete(&self, key: &str, expected_revision: Option<u64>) -> Result<(KeyValue, u64)> {
        let mut inner = self.lock();
        let prev = inner
            .map
            .get(key)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(key.to_string()))?;
        if let Some(expected) = expected_revision.filter(|e| *e != prev.mod_revision) {
            return Err(StoreError::Conflict {
                key: key.to_string(),
                expected,
                current: prev.mod_revision,
            });
        }
        let rev = inner.hub.revision() + 1;
        inner.map.remove(key);
        inner.hub.publish(WatchEvent::Delete {
            prev: prev.clone(),
            revision: rev,
        });
        Ok((prev, rev))
    }

    async fn watch(&self, prefix: &str, after_revision: u64) -> Result<WatchReceiver> {
        self.lock().hub.subscribe(prefix, after_revision)
    }

    async fn current_revision(&self) -> Result<u64> {
        Ok(self.lock().hub.revision())
    }

    async fn list_at(&self, prefix: &str, revision: u64) -> Result<ListPage> {
        let inner = self.lock();
        let (items, _) = page(&inner.map, prefix, None, 0);
        let now = inner.hub.revision();
        // Data and history change under one lock: the history always reaches `now`.
        let items = inner
            .hub
            .rewind(prefix, revision, items, now)?
            .unwrap_or_default();
        Ok(ListPage {
            items,
            revision,
            more: false,
        })
    }
}
