//! A load generator: steady HTTP GETs against a set of URLs with bounded concurrency, every
//! request bounded in time, counting what succeeded. The zero-downtime claim is checked with it:
//! a rotation passes only if no request sent through the traffic layer failed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// Of `failed`: answered with a non-2xx status.
    pub failed_status: u64,
    /// Of `failed`: no answer in time (the request or its body).
    pub failed_timeout: u64,
    /// Of `failed`: the connection failed (refused, reset, broken body).
    pub failed_connection: u64,
}

/// One failed request, kept so a failure can be traced to its endpoint and moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureSample {
    /// Milliseconds after the load started.
    pub at_ms: u64,
    pub url: String,
    /// `503: <the start of the body>`, `timeout`, or `connection: <error>`.
    pub what: String,
}

/// How many failures a run keeps verbatim (the counters count them all).
const SAMPLES_KEPT: usize = 50;

/// How one request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    Status(String),
    Timeout,
    Connection(String),
}

type HttpClient = Client<HttpConnector, Empty<bytes::Bytes>>;

fn client(timeout: Duration) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(timeout));
    Client::builder(TokioExecutor::new()).build(connector)
}

/// One GET, bounded by `timeout`: Ok when it got a 2xx and its whole body.
async fn get(client: &HttpClient, url: &str, timeout: Duration) -> Outcome {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return Outcome::Connection(format!("not a URL: {url}"));
    };
    match tokio::time::timeout(timeout, client.get(uri)).await {
        Ok(Ok(resp)) => {
            let status = resp.status();
            // Drain the body so the connection is reused.
            match tokio::time::timeout(timeout, resp.into_body().collect()).await {
                Ok(Ok(_)) if status.is_success() => Outcome::Ok,
                Ok(Ok(body)) => {
                    let body = body.to_bytes();
                    let text = String::from_utf8_lossy(&body[..body.len().min(80)]);
                    Outcome::Status(format!("{}: {}", status.as_u16(), text.trim()))
                }
                Ok(Err(e)) => Outcome::Connection(format!("body: {e}")),
                Err(_) => Outcome::Timeout,
            }
        }
        Ok(Err(e)) => Outcome::Connection(error_chain(&e)),
        Err(_) => Outcome::Timeout,
    }
}

/// An error with its causes, `a: b: c` (hyper's own message alone is only "client error").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

struct Counters {
    started: Instant,
    requests: AtomicU64,
    failed: AtomicU64,
    failed_status: AtomicU64,
    failed_timeout: AtomicU64,
    failed_connection: AtomicU64,
    samples: Mutex<Vec<FailureSample>>,
}

impl Counters {
    fn new() -> Self {
        Counters {
            started: Instant::now(),
            requests: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            failed_status: AtomicU64::new(0),
            failed_timeout: AtomicU64::new(0),
            failed_connection: AtomicU64::new(0),
            samples: Mutex::new(Vec::new()),
        }
    }

    fn record(&self, url: &str, outcome: Outcome) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let (kind, what) = match outcome {
            Outcome::Ok => return,
            Outcome::Status(what) => (&self.failed_status, what),
            Outcome::Timeout => (&self.failed_timeout, "timeout".to_string()),
            Outcome::Connection(e) => (&self.failed_connection, format!("connection: {e}")),
        };
        kind.fetch_add(1, Ordering::Relaxed);
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if samples.len() < SAMPLES_KEPT {
            samples.push(FailureSample {
                at_ms: self.started.elapsed().as_millis() as u64,
                url: url.to_string(),
                what,
            });
        }
    }

    fn samples(&self) -> Vec<FailureSample> {
        self.samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn report(&self) -> LoadReport {
        LoadReport {
            requests: self.requests.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            failed_status: self.failed_status.load(Ordering::Relaxed),
            failed_timeout: self.failed_timeout.load(Ordering::Relaxed),
            failed_connection: self.failed_connection.load(Ordering::Relaxed),
        }
    }
}

/// Sends `per_url` GETs to each URL, at most `concurrency` in flight, each bounded by `timeout`.
pub async fn run(
    urls: &[String],
    per_url: usize,
    concurrency: usize,
    timeout: Duration,
) -> LoadReport {
    let client = client(timeout);
    let counters = Arc::new(Counters::new());
    let work: Arc<Vec<String>> = Arc::new(
        urls.iter()
            .flat_map(|u| std::iter::repeat_n(u.clone(), per_url))
            .collect(),
    );
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, counters, work, next) =
            (client.clone(), counters.clone(), work.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(url) = work.get(i) else { return };
                counters.record(url, get(&client, url, timeout).await);
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    counters.report()
}

/// Steady load until stopped: `concurrency` workers cycle through the URLs, one request after
/// the other. What the zero-downtime tests and `rotor demo` keep running during a swap.
pub struct Load {
    counters: Arc<Counters>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts the workers (on the current tokio runtime).
    pub fn start(urls: Vec<String>, concurrency: usize, timeout: Duration) -> Self {
        let client = client(timeout);
        let counters = Arc::new(Counters::new());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let urls = Arc::new(urls);
        let next = Arc::new(AtomicU64::new(0));
        let workers = (0..concurrency.max(1))
            .map(|_| {
                let (client, counters, stop, urls, next) = (
                    client.clone(),
                    counters.clone(),
                    stop.clone(),
                    urls.clone(),
                    next.clone(),
                );
                tokio::spawn(async move {
                    if urls.is_empty() {
                        return;
                    }
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed) as usize % urls.len();
                        counters.record(&urls[i], get(&client, &urls[i], timeout).await);
                    }
                })
            })
            .collect();
        Load {
            counters,
            stop,
            workers,
        }
    }

    /// What was sent so far.
    pub fn snapshot(&self) -> LoadReport {
        self.counters.report()
    }

    /// The first failures (up to 50), with where and when: what a report shows so that a
    /// failed request can be traced to a cluster and a moment of its swap.
    pub fn failure_samples(&self) -> Vec<FailureSample> {
        self.counters.samples()
    }

    /// Stops the workers, waits for the requests in flight, and reports.
    pub async fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            let _ = w.await;
        }
        self.counters.report()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn steady_load_runs_until_stopped_and_counts_failures() {
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
        let load = Load::start(
            vec![format!("http://{addr}/ok"), format!("http://{addr}/down")],
            2,
            Duration::from_secs(2),
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while load.snapshot().requests < 200 {
            assert!(
                std::time::Instant::now() < deadline,
                "load made no progress"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let samples = load.failure_samples();
        let report = load.stop().await;
        assert!(report.requests >= 200, "{report:?}");
        // The first failures are kept with where they went and what came back.
        assert_eq!(samples.len(), 50, "{samples:?}");
        assert!(
            samples
                .iter()
                .all(|s| s.url.ends_with("/down") && s.what == "503: down"),
            "{samples:?}"
        );
        assert!(samples.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
        // Every other request goes to /down (give or take the requests in flight at stop).
        let half = report.requests / 2;
        assert!(report.failed.abs_diff(half) <= 2, "{report:?}");
    }

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
                failed: 20,
                failed_status: 10,
                failed_timeout: 0,
                failed_connection: 10,
            }
        );
    }
}
