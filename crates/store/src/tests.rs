//! One behavioural suite run against both backends.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::etcd::EtcdStore;
use crate::memory::MemoryStore;
use crate::sqlite::SqliteStore;
use crate::{DynStore, StoreError, WatchEvent};
use rotor_test_support::etcd::{self, EtcdProcess};

const LIMIT: Duration = Duration::from_secs(5);

fn b(s: &str) -> Bytes {
    Bytes::from(s.to_string())
}

/// A fresh etcd and a store on it; `None` (the test is skipped) where etcd is not installed,
/// except in CI, where the test script installs it and a missing etcd is a failure.
async fn etcd_store() -> Option<(EtcdProcess, EtcdStore)> {
    let etcd = etcd::for_test().await?;
    let store = EtcdStore::connect(std::slice::from_ref(&etcd.url), "/rotor")
        .await
        .expect("connect");
    Some((etcd, store))
}

async fn next(rx: &mut crate::WatchReceiver) -> WatchEvent {
    tokio::time::timeout(LIMIT, rx.recv())
        .await
        .expect("event in time")
        .expect("watch open")
}

async fn crud_and_revisions(s: DynStore) {
    assert_eq!(s.current_revision().await.expect("rev"), 0);
    let a = s.create("/a/1", b("one")).await.expect("create");
    assert_eq!((a.create_revision, a.mod_revision), (1, 1));
    assert_eq!(
        s.create("/a/1", b("dup")).await,
        Err(StoreError::AlreadyExists("/a/1".into()))
    );
    let u = s.update("/a/1", b("uno"), 1).await.expect("update");
    assert_eq!((u.create_revision, u.mod_revision), (1, 2));
    assert_eq!(
        s.update("/a/1", b("x"), 1).await,
        Err(StoreError::Conflict {
            key: "/a/1".into(),
            expected: 1,
            current: 2
        })
    );
    assert_eq!(
        s.update("/a/missing", b("x"), 1).await,
        Err(StoreError::NotFound("/a/missing".into()))
    );
    assert_eq!(
        s.get("/a/1").await.expect("get").expect("present").value,
        b("uno")
    );
    assert!(matches!(
        s.delete("/a/1", Some(1)).await,
        Err(StoreError::Conflict { .. })
    ));
    let (gone, rev) = s.delete("/a/1", Some(2)).await.expect("delete");
    assert_eq!((gone.value, rev), (b("uno"), 3));
    assert_eq!(s.get("/a/1").await.expect("get"), None);
    assert_eq!(s.current_revision().await.expect("rev"), 3);
}

async fn list_pages(s: DynStore) {
    for i in 0..25 {
        s.create(&format!("/p/{i:02}"), b("v"))
            .await
            .expect("create");
    }
    s.create("/pz", b("outside")).await.expect("create");
    s.create("/o/1", b("other")).await.expect("create");
    let all = s.list("/p/", None, 0).await.expect("list");
    assert_eq!(all.items.len(), 25);
    assert!(!all.more);
    assert_eq!(all.revision, 27);
    let first = s.list("/p/", None, 10).await.expect("page");
    assert_eq!(first.items.len(), 10);
    assert!(first.more);
    let last_key = first.items.last().expect("item").key.clone();
    let second = s.list("/p/", Some(&last_key), 10).await.expect("page 2");
    assert_eq!(second.items[0].key, "/p/10");
    let third = s.list("/p/", Some("/p/19"), 10).await.expect("page 3");
    assert_eq!(third.items.len(), 5);
    assert!(!third.more);
    let exact = s.list("/p/", Some("/p/14"), 10).await.expect("exact");
    assert_eq!(exact.items.len(), 10);
    assert!(!exact.more, "no key after the tenth");
}

async fn watch_replay_live_and_compaction(s: DynStore) {
    s.create("/w/a", b("1")).await.expect("create");
    s.create("/x/a", b("other prefix")).await.expect("create");
    s.update("/w/a", b("2"), 1).await.expect("update");
    let mut rx = s.watch("/w/", 0).await.expect("watch from 0");
    match next(&mut rx).await {
        WatchEvent::Put { kv, prev: None } => assert_eq!(kv.mod_revision, 1),
        e => panic!("unexpected {e:?}"),
    }
    match next(&mut rx).await {
        WatchEvent::Put { kv, prev: Some(p) } => {
            assert_eq!((kv.mod_revision, p.mod_revision), (3, 1))
        }
        e => panic!("unexpected {e:?}"),
    }
    s.delete("/w/a", None).await.expect("delete");
    match next(&mut rx).await {
        WatchEvent::Delete { prev, revision } => assert_eq!((prev.value, revision), (b("2"), 4)),
        e => panic!("unexpected {e:?}"),
    }
    // From the current revision: live only.
    let mut live = s.watch("/w/", 4).await.expect("watch live");
    s.create("/w/b", b("3")).await.expect("create");
    assert_eq!(next(&mut live).await.revision(), 5);
    assert!(live.try_recv().is_err(), "no duplicates");
}

async fn slow_watcher_is_dropped(s: DynStore) {
    let mut rx = s.watch("/slow/", 0).await.expect("watch");
    for i in 0..(crate::WATCH_BUFFER + 10) {
        s.create(&format!("/slow/{i}"), b("x"))
            .await
            .expect("writes never block on watchers");
    }
    let mut received = 0;
    while let Ok(Some(_)) = tokio::time::timeout(LIMIT, rx.recv()).await {
        received += 1;
    }
    assert_eq!(
        received,
        crate::WATCH_BUFFER,
        "the lagging watcher got its buffer, then the stream ended"
    );
}

async fn concurrent_creates_get_distinct_revisions(s: DynStore) {
    let mut tasks = Vec::new();
    for t in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..50 {
                revs.push(
                    s.create(&format!("/c/{t}/{i}"), b("v"))
                        .await
                        .expect("create")
                        .mod_revision,
                );
            }
            revs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    all.sort_unstable();
    assert_eq!(all, (1..=800).collect::<Vec<u64>>());
}

/// `(key, value)` of a page, to compare with what was written.
fn pairs(page: &crate::ListPage) -> Vec<(String, String)> {
    page.items
        .iter()
        .map(|kv| {
            (
                kv.key.clone(),
                String::from_utf8_lossy(&kv.value).into_owned(),
            )
        })
        .collect()
}

async fn lists_as_of_a_past_revision(s: DynStore) {
    let r0 = s.current_revision().await.expect("rev");
    s.create("/p/a", b("a1")).await.expect("create");
    let b1 = s.create("/p/b", b("b1")).await.expect("create");
    s.create("/q/other", b("x"))
        .await
        .expect("create elsewhere");
    let r1 = s.current_revision().await.expect("rev");
    let a2 = s
        .update("/p/a", b("a2"), b1.mod_revision - 1)
        .await
        .expect("update");
    s.delete("/p/b", None).await.expect("delete");
    s.create("/p/c", b("c1")).await.expect("create");
    let r2 = s.current_revision().await.expect("rev");
    s.update("/p/a", b("a3"), a2.mod_revision)
        .await
        .expect("update");
    let at = |r| {
        let s = s.clone();
        async move { s.list_at("/p/", r).await.expect("list at") }
    };
    let then = at(r1).await;
    assert_eq!(then.revision, r1);
    assert_eq!(
        pairs(&then),
        [("/p/a".into(), "a1".into()), ("/p/b".into(), "b1".into())]
    );
    assert_eq!(
        pairs(&at(r2).await),
        [("/p/a".into(), "a2".into()), ("/p/c".into(), "c1".into())]
    );
    assert_eq!(pairs(&at(r0).await), []);
    let now = s.current_revision().await.expect("rev");
    assert_eq!(
        pairs(&at(now).await),
        pairs(&s.list("/p/", None, 0).await.expect("list"))
    );
    // Revisions stay those of the objects at the time.
    assert_eq!(then.items[0].mod_revision, b1.mod_revision - 1);
}

macro_rules! suite {
    ($($name:ident),*) => {
        mod memory_backend {
            $(#[tokio::test] async fn $name() { super::$name(std::sync::Arc::new(super::MemoryStore::with_history(100_000))).await; })*
        }
        mod sqlite_backend {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() {
                let dir = tempfile::tempdir().expect("tempdir");
                super::$name(std::sync::Arc::new(super::SqliteStore::open(&dir.path().join("s.db")).expect("open"))).await;
            })*
        }
        mod etcd_backend {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() {
                let Some((_etcd, store)) = super::etcd_store().await else { return };
                super::$name(std::sync::Arc::new(store)).await;
            })*
        }
    };
}

suite!(
    crud_and_revisions,
    lists_as_of_a_past_revision,
    list_pages,
    watch_replay_live_and_compaction,
    slow_watcher_is_dropped,
    concurrent_creates_get_distinct_revisions
);

#[tokio::test]
async fn watch_from_compacted_revision_fails() {
    let s = MemoryStore::with_history(4);
    for i in 0..10 {
        s.create(&format!("/k/{i}"), b("v")).await.expect("create");
    }
    use crate::Store;
    assert_eq!(
        s.watch("/k/", 2).await.err(),
        Some(StoreError::Compacted {
            requested: 2,
            oldest: 7
        })
    );
    let mut rx = s.watch("/k/", 6).await.expect("still retained");
    assert_eq!(next(&mut rx).await.revision(), 7);
}

#[tokio::test]
async fn a_list_below_the_history_is_compacted() {
    let s = MemoryStore::with_history(4);
    for i in 0..10 {
        s.create(&format!("/k/{i}"), b("v")).await.expect("create");
    }
    use crate::Store;
    assert_eq!(
        s.list_at("/k/", 5).await.err(),
        Some(StoreError::Compacted {
            requested: 5,
            oldest: 7
        })
    );
    let at6 = s.list_at("/k/", 6).await.expect("still retained");
    assert_eq!(at6.items.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_survives_reopen_and_batches_commits() {
    use crate::Store;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.db");
    {
        let s = Arc::new(SqliteStore::open(&path).expect("open"));
        let mut tasks = Vec::new();
        for t in 0..32 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..32 {
                    s.create(&format!("/d/{t}/{i}"), b("v"))
                        .await
                        .expect("create");
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        assert!(
            s.commits() < 1024,
            "group commit batched 1024 writes into {} transactions",
            s.commits()
        );
        s.delete("/d/0/0", None).await.expect("delete");
    }
    let s = SqliteStore::open(&path).expect("reopen");
    assert_eq!(
        s.current_revision().await.expect("rev"),
        1025,
        "revision survives, even after a delete"
    );
    assert_eq!(
        s.list("/d/", None, 0).await.expect("list").items.len(),
        1023
    );
    assert!(
        matches!(s.watch("/d/", 5).await, Err(StoreError::Compacted { .. })),
        "history starts at the reopen"
    );
    let mut rx = s.watch("/d/", 1025).await.expect("live");
    s.create("/d/new", b("v")).await.expect("create");
    assert_eq!(next(&mut rx).await.revision(), 1026);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_watch_from_a_compacted_revision_fails_and_keys_stay_under_the_prefix() {
    use crate::Store;
    let Some((etcd, s)) = etcd_store().await else {
        return;
    };
    for i in 0..10 {
        s.create(&format!("/k/{i}"), b("v")).await.expect("create");
    }
    // kube-apiserver compacts etcd every few minutes; here by hand, up to store revision 6.
    let mut raw = etcd_client::Client::connect([etcd.url.as_str()], None)
        .await
        .expect("raw client");
    raw.compact(7, None).await.expect("compact");
    match s.watch("/k/", 2).await {
        Err(StoreError::Compacted { requested, oldest }) => {
            assert_eq!(requested, 2);
            assert_eq!(oldest, 6, "etcd's compact revision 7 is the store's 6");
        }
        other => panic!("expected Compacted, got {:?}", other.map(|_| ())),
    }
    let mut rx = s.watch("/k/", 6).await.expect("still retained");
    assert_eq!(next(&mut rx).await.revision(), 7);
    // Everything lives under /rotor; another prefix on the same etcd sees nothing of it.
    let raw_keys = raw
        .get(
            "/rotor/k/",
            Some(
                etcd_client::GetOptions::new()
                    .with_prefix()
                    .with_count_only(),
            ),
        )
        .await
        .expect("raw get");
    assert_eq!(raw_keys.count(), 10);
    let other = EtcdStore::connect(std::slice::from_ref(&etcd.url), "/other")
        .await
        .expect("connect");
    assert!(
        other
            .list("/k/", None, 0)
            .await
            .expect("list")
            .items
            .is_empty()
    );
    assert_eq!(other.get("/k/1").await.expect("get"), None);
}

#[tokio::test]
async fn etcd_unreachable_is_a_clear_error() {
    let url = format!("http://127.0.0.1:{}", {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    });
    let started = std::time::Instant::now();
    let err = EtcdStore::connect(std::slice::from_ref(&url), "/rotor")
        .await
        .err()
        .expect("nothing listens there");
    let text = err.to_string();
    assert!(text.contains("etcd"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "bounded: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_history_is_compacted_on_a_schedule() {
    use crate::Store;
    let Some((_etcd, s)) = etcd_store().await else {
        return;
    };
    for i in 0..5 {
        s.create(&format!("/h/{i}"), b("v")).await.expect("create");
    }
    assert!(
        s.watch("/h/", 0).await.is_ok(),
        "all history is there at first"
    );
    let compactor = s.spawn_compactor(Duration::from_millis(200));
    // The first run notes the revision (5), the next compacts to it.
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        match s.watch("/h/", 0).await {
            Err(StoreError::Compacted { oldest, .. }) => {
                assert!(oldest >= 4, "compacted to what the first run saw: {oldest}");
                break;
            }
            Ok(_) => assert!(std::time::Instant::now() < deadline, "never compacted"),
            Err(e) => panic!("{e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // What was written since stays watchable; the keys themselves are all still there.
    let rev = s.current_revision().await.expect("rev");
    let mut rx = s.watch("/h/", rev).await.expect("a live watch");
    s.create("/h/new", b("v")).await.expect("create");
    assert_eq!(next(&mut rx).await.revision(), rev + 1);
    assert_eq!(s.list("/h/", None, 0).await.expect("list").items.len(), 6);
    compactor.abort();
}
