//! A load generator: steady HTTP requests against a set of URLs with bounded concurrency, every
//! request bounded in time, counting what succeeded. The zero-downtime claim is checked with it:
//! a rotation passes only if no request sent through the traffic layer failed.
//!
//! Besides plain GETs, a [`Mix`] sends POSTs with a body (writes: a proxy must not send them
//! twice), slow requests (the application answers 1–5 s later, `?delay_ms=`, so requests are in
//! flight at every weight change) and holds long-lived streams (`<url>/stream`, server-sent
//! events) open throughout: a stream that ends cleanly after a whole message is reopened, as a
//! client does when a server drains; one that ends mid-message, errs or stalls is broken.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Full};
use tokio::sync::watch;

use crate::http_client::{HttpClient, resolving, short_lived};

mod counters;
mod pace;

use counters::{Counters, Outcome, StreamEnd};
pub use counters::{FailureSample, LoadReport, MethodReport, StreamReport, UrlFailures};

pub use pace::{Focus, Pace};

/// What a [`Load`] sends besides plain GETs (see the module docs). The default is GETs only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mix {
    /// Percentage of requests sent as POST with a JSON body.
    pub post_percent: u8,
    /// Percentage of requests the application is asked to answer 1–5 s late. Each waits in its
    /// own task, beside the workers (at most as many as there are workers; beyond that, in a
    /// worker's place), so slow requests add to the steady rate rather than replace it.
    pub slow_percent: u8,
    /// Streams held open in all, spread over the URLs in turn.
    pub streams: usize,
}

/// How many slow requests each worker may have waiting beside it.
pub const SLOW_IN_FLIGHT_PER_WORKER: usize = 4;

/// Shortest and longest delay a slow request asks for.
pub const SLOW_REQUEST: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(5));

impl Mix {
    /// The method and query of request number `i`: spread evenly, the same for every run.
    fn request(&self, i: u64) -> (Method, Option<u64>) {
        let method = if (i % 100) < u64::from(self.post_percent) {
            Method::POST
        } else {
            Method::GET
        };
        let slow = (i.wrapping_mul(37) % 100) < u64::from(self.slow_percent);
        let (min, max) = (
            SLOW_REQUEST.0.as_millis() as u64,
            SLOW_REQUEST.1.as_millis() as u64,
        );
        let delay = slow.then(|| min + i.wrapping_mul(7919) % (max - min + 1));
        (method, delay)
    }
}

/// The body every POST sends.
const POST_BODY: &[u8] =
    br#"{"order": {"item": "rotor-load", "quantity": 1, "note": "a write no proxy may repeat"}}"#;

fn request(method: &Method, url: &str) -> Result<http::Request<Full<Bytes>>, String> {
    let uri = url
        .parse::<http::Uri>()
        .map_err(|_| format!("not a URL: {url}"))?;
    let body = match *method {
        Method::POST => Bytes::from_static(POST_BODY),
        _ => Bytes::new(),
    };
    http::Request::builder()
        .method(method.clone())
        .uri(uri)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .map_err(|e| e.to_string())
}

/// One request, bounded by `timeout`: Ok when it got a 2xx and its whole body.
async fn send(client: &HttpClient, method: &Method, url: &str, timeout: Duration) -> Outcome {
    let req = match request(method, url) {
        Ok(r) => r,
        Err(e) => return Outcome::Connection(e),
    };
    match tokio::time::timeout(timeout, client.request(req)).await {
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
                Ok(Err(e)) => Outcome::Connection(format!("body: {}", error_chain(&e))),
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

/// Holds one stream of `url` open until it ends or `stop` turns true, counting its messages.
async fn hold_stream(
    client: &HttpClient,
    url: &str,
    timeout: Duration,
    counters: &Counters,
    stop: &mut watch::Receiver<bool>,
) -> StreamEnd {
    let req = match request(&Method::GET, url) {
        Ok(r) => r,
        Err(e) => return StreamEnd::Refused(e),
    };
    let resp = match tokio::time::timeout(timeout, client.request(req)).await {
        Ok(Ok(r)) if r.status().is_success() => r,
        Ok(Ok(r)) => return StreamEnd::Refused(format!("{}", r.status().as_u16())),
        Ok(Err(e)) => return StreamEnd::Refused(error_chain(&e)),
        Err(_) => return StreamEnd::Refused("timeout".into()),
    };
    counters.streams.opened.fetch_add(1, Ordering::Relaxed);
    let mut body = resp.into_body();
    let mut partial: Vec<u8> = Vec::new();
    loop {
        let frame = tokio::select! {
            _ = stop.wait_for(|s| *s) => return StreamEnd::Clean,
            f = tokio::time::timeout(timeout, body.frame()) => f,
        };
        match frame {
            Ok(Some(Ok(frame))) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                partial.extend_from_slice(&data);
                while let Some(end) = partial.windows(2).position(|w| w == b"\n\n") {
                    partial.drain(..end + 2);
                    counters.streams.messages.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(Some(Err(e))) => return StreamEnd::Broken(error_chain(&e)),
            Ok(None) if partial.is_empty() => return StreamEnd::Clean,
            Ok(None) => return StreamEnd::Broken("ended mid-message".into()),
            Err(_) => return StreamEnd::Broken(format!("silent for {timeout:?}")),
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
    run_on(short_lived(timeout), urls, per_url, concurrency, timeout).await
}

/// As [`run`], the URLs' host names resolved through caching resolvers over `records`.
pub async fn run_resolving(
    urls: &[String],
    per_url: usize,
    concurrency: usize,
    timeout: Duration,
    records: Arc<dyn crate::resolver::Records>,
) -> LoadReport {
    let client = resolving(timeout, records);
    run_on(client, urls, per_url, concurrency, timeout).await
}

async fn run_on(
    client: HttpClient,
    urls: &[String],
    per_url: usize,
    concurrency: usize,
    timeout: Duration,
) -> LoadReport {
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
                let outcome = send(&client, &Method::GET, url, timeout).await;
                counters.record(&Method::GET, url, outcome);
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    counters.report()
}

/// Steady load until stopped: `concurrency` workers cycle through the URLs, one request after
/// the other, plus the streams of its [`Mix`]. What the zero-downtime tests and `rotor demo`
/// keep running during a swap.
pub struct Load {
    counters: Arc<Counters>,
    stop: watch::Sender<bool>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    slow: SlowRequests,
}

/// The slow requests in flight, each in its own task (each ends within the request timeout),
/// at most [`SLOW_IN_FLIGHT_PER_WORKER`] per worker at once: beyond that a request drawn slow
/// is sent as a plain one. Unbounded, their number would grow with the request rate (at 16,000
/// requests/s, 5 % slow of 3 s on average is 2,400 at once, four descriptors each through the
/// embedded router); sent in a worker's place, they would take the steady rate down with them.
#[derive(Clone)]
struct SlowRequests {
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    room: Arc<tokio::sync::Semaphore>,
}

impl SlowRequests {
    fn new(at_most: usize) -> Self {
        Self {
            tasks: Arc::default(),
            room: Arc::new(tokio::sync::Semaphore::new(at_most)),
        }
    }

    /// Runs `request` beside the caller when there is room; false when there is none.
    fn try_spawn(&self, request: impl std::future::Future<Output = ()> + Send + 'static) -> bool {
        let Ok(permit) = Arc::clone(&self.room).try_acquire_owned() else {
            return false;
        };
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(tokio::spawn(async move {
            request.await;
            drop(permit);
        }));
        true
    }

    fn take(&self) -> Vec<tokio::task::JoinHandle<()>> {
        std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Load {
    /// Plain GETs (on the current tokio runtime).
    pub fn start(urls: Vec<String>, concurrency: usize, timeout: Duration) -> Self {
        Self::start_mixed(urls, concurrency, timeout, Mix::default())
    }

    /// GETs, POSTs, slow requests and streams as `mix` says (on the current tokio runtime).
    pub fn start_mixed(urls: Vec<String>, concurrency: usize, timeout: Duration, mix: Mix) -> Self {
        Self::start_paced(
            urls,
            concurrency,
            timeout,
            mix,
            Pace::default(),
            Focus::default(),
        )
    }

    /// As [`Load::start_mixed`], at the rate `pace` sets, focused where `focus` says.
    pub fn start_paced(
        urls: Vec<String>,
        concurrency: usize,
        timeout: Duration,
        mix: Mix,
        pace: Pace,
        focus: Focus,
    ) -> Self {
        let client = short_lived(timeout);
        Self::start_on(client, urls, concurrency, timeout, mix, pace, focus)
    }

    /// As [`Load::start_paced`], the URLs' host names resolved through caching resolvers over
    /// `records` (see [`crate::resolver`]), a connection per request.
    pub fn start_resolving(
        urls: Vec<String>,
        concurrency: usize,
        timeout: Duration,
        mix: Mix,
        pace: Pace,
        focus: Focus,
        records: Arc<dyn crate::resolver::Records>,
    ) -> Self {
        let client = resolving(timeout, records);
        Self::start_on(client, urls, concurrency, timeout, mix, pace, focus)
    }

    fn start_on(
        client: HttpClient,
        urls: Vec<String>,
        concurrency: usize,
        timeout: Duration,
        mix: Mix,
        pace: Pace,
        focus: Focus,
    ) -> Self {
        let counters = Arc::new(Counters::new());
        let (stop, stopped) = watch::channel(false);
        let urls = Arc::new(urls);
        let next = Arc::new(AtomicU64::new(0));
        let slow = SlowRequests::new(concurrency.max(1) * SLOW_IN_FLIGHT_PER_WORKER);
        // No workers at 0: only the streams (`rotor demo --concurrency 0` sends no requests).
        let mut workers: Vec<_> = (0..concurrency)
            .map(|_| {
                let (client, counters, mut stopped, urls, next, slow, focus) = (
                    client.clone(),
                    counters.clone(),
                    stopped.clone(),
                    urls.clone(),
                    next.clone(),
                    slow.clone(),
                    focus.clone(),
                );
                let mut ticker = pace.ticker(concurrency);
                tokio::spawn(async move {
                    if urls.is_empty() {
                        return;
                    }
                    while !*stopped.borrow() {
                        if let Some(ticker) = ticker.as_mut() {
                            tokio::select! {
                                _ = ticker.tick() => {}
                                // The sender gone is a stop too.
                                changed = stopped.changed() => match changed {
                                    Ok(()) => continue,
                                    Err(_) => break,
                                },
                            }
                        }
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let base = focus.pick(i, &urls, pace.focus_percent).clone();
                        let (method, delay) = mix.request(i);
                        // A slow request waits beside the workers, so the steady rate stays
                        // what `concurrency` gives.
                        if let Some(ms) = delay {
                            let request = {
                                let (client, counters, method, base) = (
                                    client.clone(),
                                    counters.clone(),
                                    method.clone(),
                                    base.clone(),
                                );
                                async move {
                                    let url = format!("{base}?delay_ms={ms}");
                                    let outcome = send(&client, &method, &url, timeout).await;
                                    counters.record(&method, &base, outcome);
                                }
                            };
                            if slow.try_spawn(request) {
                                counters.slow.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                        }
                        let outcome = send(&client, &method, &base, timeout).await;
                        counters.record(&method, &base, outcome);
                    }
                })
            })
            .collect();
        for url in urls.iter().cycle().take(mix.streams) {
            let (client, counters, mut stopped) =
                (client.clone(), counters.clone(), stopped.clone());
            let url = format!("{url}/stream");
            workers.push(tokio::spawn(async move {
                while !*stopped.borrow() {
                    let end = hold_stream(&client, &url, timeout, &counters, &mut stopped).await;
                    counters.record_stream(&url, &end);
                    if !matches!(end, StreamEnd::Clean) {
                        // Not at once: a refusing server would be asked in a tight loop.
                        tokio::select! {
                            _ = stopped.wait_for(|s| *s) => {}
                            () = tokio::time::sleep(Duration::from_millis(100)) => {}
                        }
                    }
                }
            }));
        }
        Load {
            counters,
            stop,
            workers,
            slow,
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

    /// The failed requests of each URL that had any, so far.
    pub fn failed_by_url(&self) -> std::collections::BTreeMap<String, UrlFailures> {
        self.counters.failed_by_url()
    }

    /// Stops the workers, waits for the requests in flight, and reports.
    pub async fn stop(self) -> LoadReport {
        let _ = self.stop.send(true);
        for w in self.workers {
            let _ = w.await;
        }
        for t in self.slow.take() {
            let _ = t.await;
        }
        self.counters.report()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves `app` on a loopback port until the test ends.
    async fn serve(app: axum::Router) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        addr
    }

    /// Slow requests wait beside the workers, at most `SLOW_IN_FLIGHT_PER_WORKER` per worker:
    /// with every request drawn slow, the server never holds more than that many at once, and
    /// the rest are sent plain, so the load keeps its pace.
    #[tokio::test]
    async fn slow_requests_in_flight_are_bounded_and_the_pace_kept() {
        use std::collections::HashMap;
        use std::sync::atomic::AtomicUsize;
        let (held, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (h, m) = (held.clone(), most.clone());
        let app = axum::Router::new().route(
            "/x",
            axum::routing::get(move |q: axum::extract::Query<HashMap<String, u64>>| {
                let (held, most) = (h.clone(), m.clone());
                async move {
                    if let Some(ms) = q.get("delay_ms") {
                        most.fetch_max(held.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(*ms)).await;
                        held.fetch_sub(1, Ordering::SeqCst);
                    }
                    "ok"
                }
            }),
        );
        let addr = serve(app).await;
        let mix = Mix {
            post_percent: 0,
            slow_percent: 100,
            streams: 0,
        };
        let load = Load::start_mixed(
            vec![format!("http://{addr}/x")],
            2,
            Duration::from_secs(8),
            mix,
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while load.snapshot().requests < 200 {
            assert!(std::time::Instant::now() < deadline, "the load stalled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let report = load.stop().await;
        assert!(
            report.slow >= 2 * SLOW_IN_FLIGHT_PER_WORKER as u64,
            "{report:?}"
        );
        assert_eq!(most.load(Ordering::SeqCst), 2 * SLOW_IN_FLIGHT_PER_WORKER);
        assert_eq!(report.failed, 0, "{report:?}");
    }

    #[tokio::test]
    async fn a_paced_load_sends_no_more_than_its_rate() {
        let app = axum::Router::new().route("/ok", axum::routing::get(|| async { "ok" }));
        let addr = serve(app).await;
        let pace = Pace {
            per_second: Some(200),
            focus_percent: 0,
        };
        let started = std::time::Instant::now();
        let load = Load::start_paced(
            vec![format!("http://{addr}/ok")],
            4,
            Duration::from_secs(8),
            Mix::default(),
            pace,
            Focus::default(),
        );
        let deadline = started + Duration::from_secs(20);
        while load.snapshot().requests < 100 {
            assert!(std::time::Instant::now() < deadline, "the load stalled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let report = load.stop().await;
        // Each of the 4 workers ticks at once, then every 4/200 s: however slow the machine,
        // never more than that.
        let ticks = started.elapsed().as_secs_f64() * 200.0 + 4.0;
        assert!(
            report.requests as f64 <= ticks,
            "{} > {ticks}",
            report.requests
        );
        assert_eq!(report.failed, 0, "{report:?}");
    }

    #[tokio::test]
    async fn steady_load_runs_until_stopped_and_counts_failures() {
        let app = axum::Router::new()
            .route("/ok", axum::routing::get(|| async { "ok" }))
            .route(
                "/down",
                axum::routing::get(|| async { (http::StatusCode::SERVICE_UNAVAILABLE, "down") }),
            );
        let addr = serve(app).await;
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
        let by_url = load.failed_by_url();
        let report = load.stop().await;
        assert!(report.requests >= 200, "{report:?}");
        // Failures per URL: all of /down's, none of /ok's (taken before the stop, so at most
        // the requests in flight then short).
        let down = by_url
            .get(&format!("http://{addr}/down"))
            .copied()
            .unwrap_or_default();
        assert_eq!(by_url.len(), 1, "{by_url:?}");
        assert_eq!(down.post, 0);
        assert!(report.failed - down.get <= 2, "{down:?} of {report:?}");
        // The first failures are kept with where they went and what came back.
        assert_eq!(samples.len(), 50, "{samples:?}");
        assert!(
            samples
                .iter()
                .all(|s| s.url.ends_with("/down") && s.what == "GET 503: down"),
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
        let addr = serve(app).await;
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
                get: MethodReport {
                    total: 30,
                    failed: 20,
                    status: 10,
                    timeout: 0,
                    reset: 10,
                },
                ..LoadReport::default()
            }
        );
    }

    #[test]
    fn mix_spreads_methods_and_delays_evenly() {
        let mix = Mix {
            post_percent: 30,
            slow_percent: 10,
            streams: 0,
        };
        let requests: Vec<_> = (0..1000).map(|i| mix.request(i)).collect();
        let posts = requests.iter().filter(|(m, _)| *m == Method::POST).count();
        let delays: Vec<u64> = requests.iter().filter_map(|(_, d)| *d).collect();
        assert_eq!(posts, 300);
        assert_eq!(delays.len(), 100);
        assert!(
            delays.iter().all(|d| (1000..=5000).contains(d)),
            "{delays:?}"
        );
        assert!(delays.iter().any(|d| *d < 2000) && delays.iter().any(|d| *d > 4000));
        assert!(Mix::default().request(7) == (Method::GET, None));
    }

    /// Three whole messages, then a clean end; or one, then half of one.
    fn events(clean: bool) -> axum::body::Body {
        let chunks: Vec<Result<Bytes, std::io::Error>> = if clean {
            (0..3)
                .map(|n| Ok(Bytes::from(format!("data: {n}\n\n"))))
                .collect()
        } else {
            vec![Ok(Bytes::from("data: 0\n\n")), Ok(Bytes::from("data: 1"))]
        };
        axum::body::Body::from_stream(futures::stream::iter(chunks))
    }

    #[tokio::test]
    async fn mixed_load_counts_methods_and_streams() {
        use axum::routing::get;
        let app = axum::Router::new()
            .route("/ok", get(|| async { "ok" }).post(|| async { "created" }))
            .route(
                "/down",
                get(|| async { (http::StatusCode::SERVICE_UNAVAILABLE, "down") })
                    .post(|| async { (http::StatusCode::SERVICE_UNAVAILABLE, "down") }),
            )
            .route("/ok/stream", get(|| async { events(true) }))
            .route("/down/stream", get(|| async { events(false) }));
        let addr = serve(app).await;
        let mix = Mix {
            post_percent: 50,
            slow_percent: 0,
            streams: 2,
        };
        let urls = vec![format!("http://{addr}/ok"), format!("http://{addr}/down")];
        let load = Load::start_mixed(urls, 2, Duration::from_secs(5), mix);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let now = load.snapshot();
            if now.requests >= 400 && now.streams.opened >= 6 && now.streams.broken >= 2 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no progress: {now:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let samples = load.failure_samples();
        let r = load.stop().await;
        assert_eq!(r.requests, r.get.total + r.post.total, "{r:?}");
        assert_eq!(r.failed, r.get.failed + r.post.failed, "{r:?}");
        // Half the requests are POSTs, and half of each method go to /down.
        assert!(r.post.total.abs_diff(r.requests / 2) <= 52, "{r:?}");
        assert!(r.post.failed.abs_diff(r.post.total / 2) <= 2, "{r:?}");
        assert!(r.get.failed.abs_diff(r.get.total / 2) <= 2, "{r:?}");
        assert_eq!(r.failed, r.failed_status, "{r:?}");
        assert!(
            samples.iter().any(|s| s.what == "POST 503: down"),
            "{samples:?}"
        );
        // The clean stream was reopened after each end; the other broke every time.
        assert!(r.streams.broken >= 2 && r.streams.refused == 0, "{r:?}");
        // Three messages per finished clean stream; at stop each URL may have one open.
        assert!(
            r.streams.messages >= 3 * (r.streams.opened - r.streams.broken - 2),
            "{r:?}"
        );
        assert!(
            samples
                .iter()
                .any(|s| s.url.ends_with("/down/stream")
                    && s.what == "stream broken: ended mid-message"),
            "{samples:?}"
        );
        assert!(
            !samples.iter().any(|s| s.url.ends_with("/ok/stream")),
            "{samples:?}"
        );
    }

    /// No workers at concurrency 0: the streams alone, and not one request (a demo without a
    /// load drops the per-step minimum of requests on that promise).
    #[tokio::test]
    async fn no_requests_at_concurrency_zero_only_the_streams() {
        use axum::routing::get;
        let app = axum::Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route("/ok/stream", get(|| async { events(true) }));
        let addr = serve(app).await;
        let mix = Mix {
            post_percent: 50,
            slow_percent: 50,
            streams: 1,
        };
        let load = Load::start_mixed(
            vec![format!("http://{addr}/ok")],
            0,
            Duration::from_secs(5),
            mix,
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while load.snapshot().streams.messages < 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "no stream: {:?}",
                load.snapshot()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let r = load.stop().await;
        assert_eq!(r.requests, 0, "{r:?}");
        assert!(r.streams.opened >= 1 && r.streams.broken == 0, "{r:?}");
    }
}
