//! A load generator: steady HTTP GETs against a set of URLs with bounded concurrency, every
//! request bounded in time, counting what succeeded. The zero-downtime claim is checked with it:
//! a rotation passes only if no request sent through the traffic layer failed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// What a load run saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub requests: u64,
    /// Non-2xx answers, connection errors and timeouts.
    pub failed: u64,
}

/// Sends `per_url` GETs to each URL, at most `concurrency` in flight, each bounded by `timeout`.
pub async fn run(
    urls: &[String],
    per_url: usize,
    concurrency: usize,
    timeout: Duration,
) -> LoadReport {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(timeout));
    let client: Client<HttpConnector, Empty<bytes::Bytes>> =
        Client::builder(TokioExecutor::new()).build(connector);
    let requests = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let work: Arc<Vec<String>> = Arc::new(
        urls.iter()
            .flat_map(|u| std::iter::repeat_n(u.clone(), per_url))
            .collect(),
    );
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, requests, failed, work, next) = (
            client.clone(),
            requests.clone(),
            failed.clone(),
            work.clone(),
            next.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(url) = work.get(i) else { return };
                requests.fetch_add(1, Ordering::Relaxed);
                let ok = match url.parse::<http::Uri>() {
                    Ok(uri) => match tokio::time::timeout(timeout, client.get(uri)).await {
                        Ok(Ok(resp)) => {
                            let success = resp.status().is_success();
                            // Drain the body so the connection is reused.
                            let drained =
                                tokio::time::timeout(timeout, resp.into_body().collect()).await;
                            success && matches!(drained, Ok(Ok(_)))
                        }
                        _ => false,
                    },
                    Err(_) => false,
                };
                if !ok {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    LoadReport {
        requests: requests.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_successes_and_failures() {
        let app = axum::Router::new()
            .route("/ok", axum::routing::get(|| async { "ok" }))
            .route(
                "/down",
                axum::routing::get(|| async { (http::StatusCode::SERVICE_UNAVAILABLE, "down") }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr");
        let urls = vec![
            format!("http://{addr}/ok"),
            format!("http://{addr}/down"),
            format!("http://{closed}/x"),
        ];
        let report = run(&urls, 10, 4, Duration::from_secs(2)).await;
        assert_eq!(
            report,
            LoadReport {
                requests: 30,
                failed: 20
            }
        );
    }
}
