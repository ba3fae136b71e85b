//! Versioned key-value storage with watch, modelled on etcd's data model: one global, strictly
//! increasing revision; every write gets the next revision; watches replay retained history.
//!
//! The apiserver stores every Kubernetes object through [`Store`]; the object's `resourceVersion`
//! is the `mod_revision` of its key. Backends: [`memory::MemoryStore`] (simulator),
//! [`sqlite::SqliteStore`] (embedded default, durable), [`etcd::EtcdStore`] (shared, for HA).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

pub mod etcd;
pub mod etcd_tls;
pub mod file_lock;
mod hub;
pub mod memory;
pub mod sqlite;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_etcd_tls;

pub use hub::WATCH_BUFFER;

/// One stored key with the revision that created it and the one that last changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// Revision of the write that created this key (unchanged by updates).
    pub create_revision: u64,
    /// Revision of the last write to this key: the object's `resourceVersion`.
    pub mod_revision: u64,
}

/// A change delivered by [`Store::watch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A create or an update. `prev` is the value before the write (None on create).
    Put {
        kv: KeyValue,
        prev: Option<KeyValue>,
    },
    /// A delete. `prev` is the last value; `revision` is the revision of the delete itself.
    Delete { prev: KeyValue, revision: u64 },
}

impl WatchEvent {
    /// The revision at which this event happened.
    pub fn revision(&self) -> u64 {
        match self {
            WatchEvent::Put { kv, .. } => kv.mod_revision,
            WatchEvent::Delete { revision, .. } => *revision,
        }
    }
    pub fn key(&self) -> &str {
        match self {
            WatchEvent::Put { kv, .. } => &kv.key,
            WatchEvent::Delete { prev, .. } => &prev.key,
        }
    }
}

/// The result of one [`Store::list`] page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    /// Keys in ascending byte order.
    pub items: Vec<KeyValue>,
    /// The store's revision when the page was read.
    pub revision: u64,
    /// True when more keys under the prefix follow the last returned one.
    pub more: bool,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("key {0} already exists")]
    AlreadyExists(String),
    #[error("key {0} not found")]
    NotFound(String),
    /// The caller's expected revision is not the key's current `mod_revision`.
    #[error("key {key} was modified: expected revision {expected}, current {current}")]
    Conflict {
        key: String,
        expected: u64,
        current: u64,
    },
    /// The requested watch start is older than the retained history; the caller must relist.
    #[error("revision {requested} is compacted; oldest retained is {oldest}")]
    Compacted { requested: u64, oldest: u64 },
    #[error("storage backend: {0}")]
    Backend(String),
    /// Another process holds the store file (one process per SQLite file).
    #[error("{path} is in use by another process{}: one rotor serve per SQLite file", holder.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked { path: String, holder: Option<u32> },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A live watch: events in revision order. When the receiver lags behind its bounded buffer the
/// stream ends (the channel closes); the caller then re-watches from its last seen revision and
/// gets [`StoreError::Compacted`] if that has fallen out of history.
pub type WatchReceiver = tokio::sync::mpsc::Receiver<WatchEvent>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Keys starting with `prefix`, ascending, strictly after `start_after` when given, at most
    /// `limit` items (0 = no limit).
    async fn list(&self, prefix: &str, start_after: Option<&str>, limit: usize)
    -> Result<ListPage>;

    /// Creates `key`; fails with AlreadyExists. Returns the new revision.
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue>;

    /// Replaces `key` if its mod_revision equals `expected_revision`. NotFound / Conflict otherwise.
    async fn update(&self, key: &str, value: Bytes, expected_revision: u64) -> Result<KeyValue>;

    /// Deletes `key`, if `expected_revision` is given only when it matches. Returns the deleted
    /// value and the revision of the delete.
    async fn delete(&self, key: &str, expected_revision: Option<u64>) -> Result<(KeyValue, u64)>;

    /// Events for keys under `prefix` with revision > `after_revision`, first replayed from
    /// retained history, then live. `Compacted` when `after_revision` is older than the history.
    async fn watch(&self, prefix: &str, after_revision: u64) -> Result<WatchReceiver>;

    /// The revision of the latest write (0 for an empty store).
    async fn current_revision(&self) -> Result<u64>;

    /// Every key under `prefix` as it was at `revision` (not above the current one), ascending;
    /// `Compacted` when that is older than the retained history. The page's `revision` is
    /// `revision`. Memory and SQLite undo the retained events after it; etcd reads at it.
    async fn list_at(&self, prefix: &str, revision: u64) -> Result<ListPage>;
}

pub type DynStore = Arc<dyn Store>;
