//! The load through caching resolvers (`rotor_traffic::resolver`): a name's requests go where
//! its records point, and follow the records when they change.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use rotor_traffic::load::{Focus, Load, Mix, Pace};
use rotor_traffic::resolver::Records;
use tokio::time::Instant;

/// Answers `app.test` with the address set last, with no TTL: each query sees the change.
struct Switchable(Mutex<IpAddr>);

impl Records for Switchable {
    fn query(&self, name: &str) -> Option<(IpAddr, Duration)> {
        let ip = *self.0.lock().unwrap();
        (name == "app.test").then_some((ip, Duration::ZERO))
    }
}

/// A server at `addr` counting the requests it answered.
async fn counting(addr: SocketAddr) -> Arc<AtomicU64> {
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    let answered = Arc::new(AtomicU64::new(0));
    let count = answered.clone();
    let router = Router::new().fallback(move || {
        count.fetch_add(1, Ordering::Relaxed);
        async { "ok" }
    });
    tokio::spawn(async move { axum::serve(listener, router).await });
    answered
}

/// Until `counter` reaches `n`, for at most 10 s.
async fn reaches(counter: &AtomicU64, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while counter.load(Ordering::Relaxed) < n {
        assert!(
            Instant::now() < deadline,
            "{n} requests not answered in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn the_load_reaches_whichever_address_the_records_give() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let first = counting(SocketAddr::from(([127, 0, 0, 1], port))).await;
    let second = counting(SocketAddr::from(([127, 0, 0, 2], port))).await;
    let records = Arc::new(Switchable(Mutex::new([127, 0, 0, 1].into())));
    let load = Load::start_resolving(
        vec![format!("http://app.test:{port}/")],
        2,
        Duration::from_secs(5),
        Mix::default(),
        Pace::default(),
        Focus::default(),
        records.clone(),
    );
    reaches(&first, 20).await;
    assert_eq!(second.load(Ordering::Relaxed), 0);
    *records.0.lock().unwrap() = [127, 0, 0, 2].into();
    let at_switch = first.load(Ordering::Relaxed);
    reaches(&second, 20).await;
    let report = load.stop().await;
    // Only the requests in flight at the switch (one per worker) end on the first.
    assert!(first.load(Ordering::Relaxed) <= at_switch + 2);
    assert_eq!(report.failed, 0, "{report:?}");
    assert!(report.requests >= 40);
}
