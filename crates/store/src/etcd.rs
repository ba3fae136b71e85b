//! The etcd backend (`--store etcd:URL[,URL…]`): the store of a control plane that must outlive
//! one machine. etcd's data model is this crate's — one global revision, a create and a mod
//! revision per key, watches that replay history until it is compacted — so every operation is one
//! etcd request or one transaction, and several `rotor serve` processes may share one etcd.
//!
//! Revisions: a fresh etcd is at revision 1 with no keys, a fresh store at 0, so a store revision
//! is etcd's minus one. Keys live under a prefix (`/rotor` by default) so an etcd can be shared;
//! other writers to that etcd still advance its revision, so revisions stay increasing but are
//! then not contiguous.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, PutOptions,
    Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::sync::mpsc;

use crate::etcd_tls::{EtcdTls, with_causes};
use crate::{
    KeyValue, ListPage, Result, Store, StoreError, WATCH_BUFFER, WatchEvent, WatchReceiver,
};

/// Bounds every request (watches excepted: they are long by nature).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The key prefix when the URL names none.
pub const DEFAULT_PREFIX: &str = "/rotor";
/// How often [`EtcdStore::spawn_compactor`] compacts etcd's history (kube-apiserver's default).
pub const COMPACTION_INTERVAL: Duration = Duration::from_secs(300);

pub struct EtcdStore {
    client: Client,
    prefix: String,
}

fn backend(op: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("etcd {op}: {e}"))
}

/// A store revision from an etcd one.
fn rev(etcd: i64) -> u64 {
    u64::try_from(etcd - 1).unwrap_or(0)
}

/// The etcd revision of a store one.
fn etcd_rev(store: u64) -> i64 {
    i64::try_from(store).unwrap_or(i64::MAX - 1) + 1
}

/// The smallest key greater than every key that starts with `prefix` (etcd's "prefix end").
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): to the end of the keyspace.
    vec![0]
}

impl EtcdStore {
    /// Connects to the etcd cluster at `endpoints` (`http://host:port`), keeping keys under
    /// `prefix`; fails when no endpoint answers within a few seconds.
    pub async fn connect(endpoints: &[String], prefix: &str) -> Result<Self> {
        Self::connect_with(endpoints, prefix, None).await
    }

    /// As [`EtcdStore::connect`], over TLS when `tls` is given (`https://host:port`
    /// endpoints): etcd's certificate verified against its CA, the client certificate presented.
    /// A refused handshake (an unknown CA either way, no client certificate) fails within the
    /// same bounds as an etcd that does not answer, naming the cause.
    pub async fn connect_with(
        endpoints: &[String],
        prefix: &str,
        tls: Option<&EtcdTls>,
    ) -> Result<Self> {
        if endpoints.is_empty() {
            return Err(backend("connect", "no endpoints given"));
        }
        let mut options = ConnectOptions::new().with_connect_timeout(CONNECT_TIMEOUT);
        if let Some(tls) = tls {
            options = options.with_tls(tls.options());
        }
        let connect = Client::connect(endpoints, Some(options));
        let client = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| backend("connect", format!("no answer from {}", endpoints.join(","))))?
            .map_err(|e| backend("connect", with_causes(&e)))?;
        let store = EtcdStore {
            client,
            prefix: prefix.trim_end_matches('/').to_string(),
        };
        // A first read proves the endpoints serve etcd, not only accept TCP, and that both
        // sides accepted the other's certificate.
        match (store.current_revision().await, tls) {
            (Ok(_), _) => Ok(store),
            (Err(StoreError::Backend(e)), Some(tls)) => match tls.explain(&e) {
                Some(why) => Err(StoreError::Backend(format!("{why} ({e})"))),
                None => Err(StoreError::Backend(e)),
            },
            (Err(e), _) => Err(e),
        }
    }

    /// Compacts etcd's history every `interval`, to the revision the previous run saw, as
    /// kube-apiserver does: a watcher can always resume from anything it saw within the last
    /// interval (older gets `Compacted`, then relists), and etcd's database stops growing with
    /// every write ever made. Several control planes on one etcd may each run one: compacting
    /// to a revision already compacted is a no-op. Runs until the runtime ends.
    pub fn spawn_compactor(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let mut client = self.client.clone();
        let probe = self.prefix.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut previous: Option<i64> = None;
            loop {
                ticker.tick().await;
                let opts = GetOptions::new().with_count_only();
                let now = match tokio::time::timeout(
                    REQUEST_TIMEOUT,
                    client.get(probe.clone(), Some(opts)),
                )
                .await
                {
                    Ok(Ok(resp)) => resp.header().map(|h| h.revision()),
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "etcd compaction: reading the revision");
                        None
                    }
                    Err(_) => None,
                };
                if let Some(target) = previous.filter(|r| *r > 1) {
                    match tokio::time::timeout(REQUEST_TIMEOUT, client.compact(target, None)).await
                    {
                        Ok(Ok(_)) => tracing::debug!(revision = target, "etcd history compacted"),
                        Ok(Err(e)) if e.to_string().contains("compacted") => {}
                        Ok(Err(e)) => tracing::warn!(error = %e, "etcd compaction failed"),
                        Err(_) => tracing::warn!("etcd compaction: no answer"),
                    }
                }
                if now.is_some() {
                    previous = now;
                }
            }
        })
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn kv(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue> {
        key_value(kv, &self.prefix)
    }

    async fn bounded<T>(
        &self,
        op: &str,
        call: impl std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        tokio::time::timeout(REQUEST_TIMEOUT, call)
            .await
            .map_err(|_| backend(op, format!("no answer in {REQUEST_TIMEOUT:?}")))?
            .map_err(|e| backend(op, with_causes(&e)))
    }

    async fn txn(&self, op: &str, txn: Txn) -> Result<etcd_client::TxnResponse> {
        let mut kv = self.client.kv_client();
        self.bounded(op, kv.txn(txn)).await
    }

    /// The etcd revision now.
    async fn etcd_revision(&self) -> Result<i64> {
        let mut kv = self.client.kv_client();
        let opts = GetOptions::new().with_count_only();
        let resp = self
            .bounded(
                "reading the revision",
                kv.get(self.prefix.clone(), Some(opts)),
            )
            .await?;
        Ok(resp.header().map_or(1, |h| h.revision()))
    }

    /// The value of `key` now, from the `or_else` branch of a failed transaction.
    fn current_of(resp: &etcd_client::TxnResponse) -> Option<i64> {
        resp.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.mod_revision()),
            _ => None,
        })
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let mut kv = self.client.kv_client();
        let resp = self
            .bounded(&format!("get {key}"), kv.get(self.full_key(key), None))
            .await?;
        resp.kvs().first().map(|k| self.kv(k)).transpose()
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        let full_prefix = self.full_key(prefix);
        let end = prefix_end(full_prefix.as_bytes());
        let start: Vec<u8> = match start_after {
            // Strictly after: the smallest key greater than `start_after` is it plus a NUL.
            Some(k) if k >= prefix => {
                let mut s = self.full_key(k).into_bytes();
                s.push(0);
                s
            }
            _ => full_prefix.into_bytes(),
        };
        let mut opts = GetOptions::new().with_range(end);
        if limit != 0 {
            opts = opts.with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        let mut kv = self.client.kv_client();
        let resp = self
            .bounded(&format!("list {prefix}"), kv.get(start, Some(opts)))
            .await?;
        let items = resp
            .kvs()
            .iter()
            .map(|k| self.kv(k))
            .collect::<Result<Vec<_>>>()?;
        Ok(ListPage {
            more: limit != 0 && resp.more(),
            revision: rev(resp.header().map_or(1, |h| h.revision())),
            items,
        })
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        let full = self.full_key(key);
        let txn = Txn::new()
            .when([Compare::create_revision(full.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(full, value.to_vec(), None)]);
        let resp = self.txn(&format!("create {key}"), txn).await?;
        if !resp.succeeded() {
            return Err(StoreError::AlreadyExists(key.to_string()));
        }
        let r = rev(resp.header().map_or(1, |h| h.revision()));
        Ok(KeyValue {
            key: key.to_string(),
            value,
            create_revision: r,
            mod_revision: r,
        })
    }

    async fn update(&self, key: &str, value: Bytes, expected_revision: u64) -> Result<KeyValue> {
        let full = self.full_key(key);
        let txn = Txn::new()
            .when([Compare::mod_revision(
                full.clone(),
                CompareOp::Equal,
                etcd_rev(expected_revision),
            )])
            .and_then([TxnOp::put(
                full.clone(),
                value.to_vec(),
                Some(PutOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(full, None)]);
        let resp = self.txn(&format!("update {key}"), txn).await?;
        if !resp.succeeded() {
            return Err(match Self::current_of(&resp) {
                None => StoreError::NotFound(key.to_string()),
                Some(current) => StoreError::Conflict {
                    key: key.to_string(),
                    expected: expected_revision,
                    current: rev(current),
                },
            });
        }
        let created = resp.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Put(p) => p.prev_key().map(|kv| kv.create_revision()),
            _ => None,
        });
        let r = rev(resp.header().map_or(1, |h| h.revision()));
        Ok(KeyValue {
            key: key.to_string(),
            value,
            create_revision: created.map_or(r, rev),
            mod_revision: r,
        })
    }

    async fn delete(&self, key: &str, expected_revision: Option<u64>) -> Result<(KeyValue, u64)> {
        let full = self.full_key(key);
        let compares: Vec<Compare> = expected_revision
            .map(|e| Compare::mod_revision(full.clone(), CompareOp::Equal, etcd_rev(e)))
            .into_iter()
            .collect();
        let txn = Txn::new()
            .when(compares)
            .and_then([TxnOp::delete(
                full.clone(),
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(full, None)]);
        let resp = self.txn(&format!("delete {key}"), txn).await?;
        if !resp.succeeded() {
            return Err(match Self::current_of(&resp) {
                None => StoreError::NotFound(key.to_string()),
                Some(current) => StoreError::Conflict {
                    key: key.to_string(),
                    expected: expected_revision.unwrap_or(0),
                    current: rev(current),
                },
            });
        }
        let prev = resp.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Delete(d) => d.prev_kvs().first().cloned(),
            _ => None,
        });
        let Some(prev) = prev else {
            return Err(StoreError::NotFound(key.to_string()));
        };
        Ok((
            self.kv(&prev)?,
            rev(resp.header().map_or(1, |h| h.revision())),
        ))
    }

    async fn watch(&self, prefix: &str, after_revision: u64) -> Result<WatchReceiver> {
        let full_prefix = self.full_key(prefix);
        let start = etcd_rev(after_revision) + 1;
        // A start in the past must still be in etcd's history: a read at that revision says.
        if start <= self.etcd_revision().await? {
            let mut kv = self.client.kv_client();
            let opts = GetOptions::new().with_count_only().with_revision(start);
            let probe =
                tokio::time::timeout(REQUEST_TIMEOUT, kv.get(full_prefix.clone(), Some(opts)))
                    .await
                    .map_err(|_| backend("watch", "no answer"))?;
            if let Err(e) = probe {
                if e.to_string().contains("compacted") {
                    let oldest = self.compacted_since(&full_prefix, start).await;
                    return Err(StoreError::Compacted {
                        requested: after_revision,
                        oldest,
                    });
                }
                return Err(backend("watch", e));
            }
        }
        let opts = WatchOptions::new()
            .with_prefix()
            .with_prev_key()
            .with_start_revision(start);
        let mut watch = self.client.watch_client();
        let mut stream = self
            .bounded(
                &format!("watch {prefix}"),
                watch.watch(full_prefix, Some(opts)),
            )
            .await?;
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let strip = self.prefix.clone();
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    _ = tx.closed() => return,
                    m = stream.message() => m,
                };
                let resp = match message {
                    Ok(Some(resp)) => resp,
                    Ok(None) => return,
                    Err(e) => {
                        tracing::debug!(error = %e, "etcd watch ended");
                        return;
                    }
                };
                // Canceled (compacted, or the server gave up): the caller re-watches.
                if resp.canceled() {
                    return;
                }
                for event in resp.events() {
                    let Some(out) = to_event(event, &strip) else {
                        continue;
                    };
                    // A watcher that cannot keep up loses its watch, never blocks the store.
                    if tx.try_send(out).is_err() {
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }

    async fn current_revision(&self) -> Result<u64> {
        Ok(rev(self.etcd_revision().await?))
    }

    async fn list_at(&self, prefix: &str, revision: u64) -> Result<ListPage> {
        let full_prefix = self.full_key(prefix);
        let end = prefix_end(full_prefix.as_bytes());
        let at = etcd_rev(revision);
        let opts = GetOptions::new().with_range(end).with_revision(at);
        let mut kv = self.client.kv_client();
        let read = tokio::time::timeout(REQUEST_TIMEOUT, kv.get(full_prefix.clone(), Some(opts)))
            .await
            .map_err(|_| backend("list at a revision", "no answer"))?;
        let resp = match read {
            Ok(resp) => resp,
            Err(e) if e.to_string().contains("compacted") => {
                let oldest = self.compacted_since(&full_prefix, at).await;
                return Err(StoreError::Compacted {
                    requested: revision,
                    oldest,
                });
            }
            Err(e) => return Err(backend("list at a revision", e)),
        };
        let items = resp
            .kvs()
            .iter()
            .map(|k| self.kv(k))
            .collect::<Result<Vec<_>>>()?;
        Ok(ListPage {
            items,
            revision,
            more: false,
        })
    }
}

impl EtcdStore {
    /// The oldest store revision etcd still has after compacting past `start`: a watch from
    /// there is canceled with the compact revision.
    async fn compacted_since(&self, full_prefix: &str, start: i64) -> u64 {
        let mut watch = self.client.watch_client();
        let opts = WatchOptions::new().with_prefix().with_start_revision(start);
        let read = async {
            let mut stream = watch
                .watch(full_prefix.to_string(), Some(opts))
                .await
                .ok()?;
            while let Ok(Some(resp)) = stream.message().await {
                if resp.compact_revision() > 0 {
                    return Some(resp.compact_revision());
                }
                if resp.canceled() {
                    return None;
                }
            }
            None
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, read).await {
            Ok(Some(compact)) => rev(compact),
            // Unknown: at least the one after the requested.
            _ => rev(start),
        }
    }
}

/// The store's key-value for an etcd one: the key loses the store prefix.
fn key_value(kv: &etcd_client::KeyValue, prefix: &str) -> Result<KeyValue> {
    let key = kv.key_str().map_err(|e| backend("reading a key", e))?;
    Ok(KeyValue {
        key: key.strip_prefix(prefix).unwrap_or(key).to_string(),
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: rev(kv.create_revision()),
        mod_revision: rev(kv.mod_revision()),
    })
}

/// The store's event for an etcd one; keys lose the store prefix.
fn to_event(event: &etcd_client::Event, prefix: &str) -> Option<WatchEvent> {
    let convert = |kv: &etcd_client::KeyValue| key_value(kv, prefix).ok();
    let kv = event.kv()?;
    match event.event_type() {
        EventType::Put => Some(WatchEvent::Put {
            kv: convert(kv)?,
            prev: event.prev_kv().and_then(convert),
        }),
        EventType::Delete => {
            let prev = match event.prev_kv().and_then(convert) {
                Some(prev) => prev,
                // The previous value was compacted away: the key is all that is left.
                None => KeyValue {
                    value: Bytes::new(),
                    ..convert(kv)?
                },
            };
            Some(WatchEvent::Delete {
                prev,
                revision: rev(kv.mod_revision()),
            })
        }
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/rotor/a/"), b"/rotor/a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }

    #[test]
    fn revisions_are_etcds_minus_one() {
        assert_eq!(rev(1), 0);
        assert_eq!(rev(2), 1);
        assert_eq!(etcd_rev(0), 1);
        assert_eq!(etcd_rev(41), 42);
        assert_eq!(rev(0), 0, "never below zero");
    }
}
