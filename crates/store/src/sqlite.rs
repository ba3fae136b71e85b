//! The durable backend: SQLite in WAL mode with `synchronous=FULL`, so a write has reached the
//! disk before its call returns. Throughput comes from **group commit**: one writer thread takes
//! every queued write, runs them in one transaction (each checked on its own: one conflict does not
//! fail its neighbours), commits once, then answers every caller and publishes the watch events.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::file_lock::FileLock;
use crate::hub::Hub;
use crate::{KeyValue, ListPage, Result, Store, StoreError, WatchEvent, WatchReceiver};

/// Default number of events kept for watch replay.
pub const DEFAULT_HISTORY: usize = 10_000;
/// How long [`SqliteStore::list_at`] waits for a commit it read to be published.
const PUBLISH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// Most writes committed in one transaction.
const MAX_BATCH: usize = 512;

enum Op {
    Create {
        key: String,
        value: Bytes,
    },
    Update {
        key: String,
        value: Bytes,
        expected: u64,
    },
    Delete {
        key: String,
        expected: Option<u64>,
    },
}

enum Outcome {
    Put(KeyValue),
    Deleted(KeyValue, u64),
}

struct Request {
    op: Op,
    reply: oneshot::Sender<Result<Outcome>>,
}

pub struct SqliteStore {
    writer: Mutex<Option<std_mpsc::Sender<Request>>>,
    reader: Arc<Mutex<Connection>>,
    hub: Arc<Mutex<Hub>>,
    /// Transactions committed by the writer (group commit makes this far below the write count).
    commits: Arc<AtomicU64>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Held while open: a second process on the same file is refused (see [`FileLock`]).
    _lock: FileLock,
}

fn backend(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("{what}: {e}"))
}

fn open_connection(path: &Path) -> Result<Connection> {
    let conn =
        Connection::open(path).map_err(|e| backend(&format!("opening {}", path.display()), e))?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;",
    )
    .map_err(|e| backend("configuring SQLite", e))?;
    Ok(conn)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with_history(path, DEFAULT_HISTORY)
    }

    /// Opens (or creates) the store at `path`, refusing with [`StoreError::Locked`] while
    /// another process (or another open store in this one) holds it.
    pub fn open_with_history(path: &Path, history: usize) -> Result<Self> {
        let lock = FileLock::acquire(path)?;
        let writer_conn = open_connection(path)?;
        writer_conn
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL);
                 CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
                 INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0);",
            )
            .map_err(|e| backend("creating schema", e))?;
        let revision: i64 = writer_conn
            .query_row("SELECT value FROM meta WHERE name = 'revision'", [], |r| {
                r.get(0)
            })
            .map_err(|e| backend("reading revision", e))?;
        let reader = open_connection(path)?;
        let hub = Arc::new(Mutex::new(Hub::new(history, revision as u64)));
        let commits = Arc::new(AtomicU64::new(0));
        let (tx, rx) = std_mpsc::channel::<Request>();
        let thread = {
            let hub = hub.clone();
            let commits = commits.clone();
            std::thread::Builder::new()
                .name("rotor-sqlite-writer".into())
                .spawn(move || writer_loop(writer_conn, rx, hub, commits, revision as u64))
                .map_err(|e| backend("starting writer thread", e))?
        };
        Ok(SqliteStore {
            writer: Mutex::new(Some(tx)),
            reader: Arc::new(Mutex::new(reader)),
            hub,
            commits,
            thread: Mutex::new(Some(thread)),
            _lock: lock,
        })
    }

    /// Transactions committed so far (for tests and benchmarks of group commit).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    async fn submit(&self, op: Op) -> Result<Outcome> {
        let (reply, rx) = oneshot::channel();
        {
            let writer = lock(&self.writer);
            let tx = writer
                .as_ref()
                .ok_or_else(|| backend("write", "store is closed"))?;
            tx.send(Request { op, reply })
                .map_err(|_| backend("write", "writer thread stopped"))?;
        }
        rx.await
            .map_err(|_| backend("write", "writer thread stopped"))?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || f(&lock(&reader)))
            .await
            .map_err(|e| backend("read task", e))?
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        lock(&self.writer).take();
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }
}

fn row_kv(key: &str, r: &rusqlite::Row<'_>) -> rusqlite::Result<KeyValue> {
    let value: Vec<u8> = r.get(0)?;
    let create: i64 = r.get(1)?;
    let modr: i64 = r.get(2)?;
    Ok(KeyValue {
        key: key.to_string(),
        value: Bytes::from(value),
        create_revision: create as u64,
        mod_revision: modr as u64,
    })
}

fn current(tx: &Connection, key: &str) -> Result<Option<KeyValue>> {
    tx.query_row(
        "SELECT value, create_rev, mod_rev FROM kv WHERE key = ?1",
        params![key],
        |r| row_kv(key, r),
    )
    .optional()
    .map_err(|e| backend(&format!("reading {key}"), e))
}

/// Applies one write inside the open transaction at revision `rev`.
fn apply(tx: &Connection, op: &Op, rev: u64) -> Result<(Outcome, WatchEvent)> {
    match op {
        Op::Create { key, value } => {
            if current(tx, key)?.is_some() {
                return Err(StoreError::AlreadyExists(key.clone()));
            }
            tx.execute(
                "INSERT INTO kv (key, value, create_rev, mod_rev) VALUES (?1, ?2, ?3, ?3)",
                params![key, value.as_ref(), rev as i64],
            )
            .map_err(|e| backend(&format!("creating {key}"), e))?;
            let kv = KeyValue {
                key: key.clone(),
                value: value.clone(),
                create_revision: rev,
                mod_revision: rev,
            };
            Ok((Outcome::Put(kv.clone()), WatchEvent::Put { kv, prev: None }))
        }
        Op::Update {
            key,
            value,
            expected,
        } => {
            let prev = current(tx, key)?.ok_or_else(|| StoreError::NotFound(key.clone()))?;
            if prev.mod_revision != *expected {
                return Err(StoreError::Conflict {
                    key: key.clone(),
                    expected: *expected,
                    current: prev.mod_revision,
                });
            }
            tx.execute(
                "UPDATE kv SET value = ?2, mod_rev = ?3 WHERE key = ?1",
                params![key, value.as_ref(), rev as i64],
            )
            .map_err(|e| backend(&format!("updating {key}"), e))?;
            let kv = KeyValue {
                key: key.clone(),
                value: value.clone(),
                create_revision: prev.create_revision,
                mod_revision: rev,
            };
            Ok((
                Outcome::Put(kv.clone()),
                WatchEvent::Put {
                    kv,
                    prev: Some(prev),
                },
            ))
        }
        Op::Delete { key, expected } => {
            let prev = current(tx, key)?.ok_or_else(|| StoreError::NotFound(key.clone()))?;
            if let Some(e) = expected.filter(|e| *e != prev.mod_revision) {
                return Err(StoreError::Conflict {
                    key: key.clone(),
                    expected: e,
                    current: prev.mod_revision,
                });
            }
            tx.execute("DELETE FROM kv WHERE key = ?1", params![key])
                .map_err(|e| backend(&format!("deleting {key}"), e))?;
            Ok((
                Outcome::Deleted(prev.clone(), rev),
                WatchEvent::Delete {
                    prev,
                    revision: rev,
                },
            ))
        }
    }
}

fn writer_loop(
    mut conn: Connection,
    rx: std_mpsc::Receiver<Request>,
    hub: Arc<Mutex<Hub>>,
    commits: Arc<AtomicU64>,
    mut revision: u64,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let start_revision = revision;
        let mut results: Vec<Result<(Outcome, WatchEvent)>> = Vec::with_capacity(batch.len());
        let committed = (|| -> Result<()> {
            let tx = conn.transaction().map_err(|e| backend("begin", e))?;
            for req in &batch {
                let r = apply(&tx, &req.op, revision + 1);
                if r.is_ok() {
                    revision += 1;
                }
                results.push(r);
            }
            tx.execute(
                "UPDATE meta SET value = ?1 WHERE name = 'revision'",
                params![revision as i64],
            )
            .map_err(|e| backend("saving revision", e))?;
            tx.commit().map_err(|e| backend("commit", e))
        })();
        if let Err(e) = committed {
            revision = start_revision;
            for req in batch {
                let _ = req.reply.send(Err(e.clone()));
            }
            continue;
        }
        commits.fetch_add(1, Ordering::Relaxed);
        // Publish before answering: a caller that watches right after its write finds it.
        let mut replies = Vec::with_capacity(batch.len());
        {
            let mut hub = lock(&hub);
            for (req, result) in batch.into_iter().zip(results) {
                match result {
                    Ok((outcome, event)) => {
                        hub.publish(event);
                        replies.push((req.reply, Ok(outcome)));
                    }
                    Err(e) => replies.push((req.reply, Err(e))),
                }
            }
        }
        for (reply, r) in replies {
            let _ = reply.send(r);
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let key = key.to_string();
        self.read(move |c| current(c, &key)).await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        let prefix = prefix.to_string();
        let start = match start_after {
            Some(k) if k >= prefix.as_str() => k.to_string(),
            _ => String::new(),
        };
        self.read(move |c| {
            let tx = c.unchecked_transaction().map_err(|e| backend("begin read", e))?;
            let revision: i64 = tx.query_row("SELECT value FROM meta WHERE name = 'revision'", [], |r| r.get(0)).map_err(|e| backend("reading revision", e))?;
            // Keys with the prefix are the range [prefix, prefix + U+10FFFF).
            let upper = format!("{prefix}\u{10FFFF}");
            let fetch = if limit == 0 { -1 } else { limit as i64 + 1 };
            let mut stmt = tx
                .prepare_cached("SELECT key, value, create_rev, mod_rev FROM kv WHERE key >= ?1 AND key < ?2 AND key > ?3 ORDER BY key LIMIT ?4")
                .map_err(|e| backend("preparing list", e))?;
            let rows = stmt
                .query_map(params![prefix, upper, start, fetch], |r| {
                    let key: String = r.get(0)?;
                    let value: Vec<u8> = r.get(1)?;
                    let create: i64 = r.get(2)?;
                    let modr: i64 = r.get(3)?;
                    Ok(KeyValue { key, value: Bytes::from(value), create_revision: create as u64, mod_revision: modr as u64 })
                })
                .map_err(|e| backend(&format!("listing {prefix}"), e))?;
            let mut items = Vec::new();
            for row in rows {
                items.push(row.map_err(|e| backend(&format!("listing {prefix}"), e))?);
            }
            let more = limit != 0 && items.len() > limit;
            items.truncate(if limit == 0 { items.len() } else { limit });
            Ok(ListPage { items, revision: revision as u64, more })
        })
        .await
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        match self
            .submit(Op::Create {
                key: key.to_string(),
                value,
            })
            .await?
        {
            Outcome::Put(kv) => Ok(kv),
            Outcome::Deleted(..) => Err(backend("create", "unexpected outcome")),
        }
    }

    async fn update(&self, key: &str, value: Bytes, expected_revision: u64) -> Result<KeyValue> {
        match self
            .submit(Op::Update {
                key: key.to_string(),
                value,
                expected: expected_revision,
            })
            .await?
        {
            Outcome::Put(kv) => Ok(kv),
            Outcome::Deleted(..) => Err(backend("update", "unexpected outcome")),
        }
    }

    async fn delete(&self, key: &str, expected_revision: Option<u64>) -> Result<(KeyValue, u64)> {
        match self
            .submit(Op::Delete {
                key: key.to_string(),
                expected: expected_revision,
            })
            .await?
        {
            Outcome::Deleted(kv, rev) => Ok((kv, rev)),
            Outcome::Put(_) => Err(backend("delete", "unexpected outcome")),
        }
    }

    async fn watch(&self, prefix: &str, after_revision: u64) -> Result<WatchReceiver> {
        lock(&self.hub).subscribe(prefix, after_revision)
    }

    async fn current_revision(&self) -> Result<u64> {
        Ok(lock(&self.hub).revision())
    }

    async fn list_at(&self, prefix: &str, revision: u64) -> Result<ListPage> {
        let page = self.list(prefix, None, 0).await?;
        let at = |items: Vec<KeyValue>| ListPage {
            items,
            revision,
            more: false,
        };
        // The writer commits, then publishes: wait (on the hub's events) for a commit the read
        // saw to be published before undoing the history.
        let mut published = {
            let mut hub = lock(&self.hub);
            match hub.rewind(prefix, revision, page.items.clone(), page.revision)? {
                Some(items) => return Ok(at(items)),
                None => {
                    let now = hub.revision();
                    hub.subscribe("", now)?
                }
            }
        };
        let reached = tokio::time::timeout(PUBLISH_WAIT, async {
            while let Some(e) = published.recv().await {
                if e.revision() >= page.revision {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        let hub = lock(&self.hub);
        match hub.rewind(prefix, revision, page.items, page.revision)? {
            Some(items) if reached || hub.revision() >= page.revision => Ok(at(items)),
            _ => Err(backend(
                "listing at a revision",
                "a commit was not published in time",
            )),
        }
    }
}
