//! Simulated application traffic: each member cluster answers HTTP on its own loopback address
//! (one socket listens for all of them: [`front`]), as a load balancer in front of the cluster
//! would see its applications:
//!
//! - `GET /{namespace}/{service}`: 200 when a workload selected by the Service has ready
//!   replicas when the request arrives, 503 otherwise. `?delay_ms=N` (at most [`MAX_DELAY`])
//!   answers N ms later: a slow request, in flight while weights move. A request once accepted
//!   is answered even if the workload stops meanwhile, as a Pod finishes its requests in its
//!   termination grace period.
//! - `POST /{namespace}/{service}`: the same, then 201 with the length of the body read: a
//!   write, which no proxy may send twice.
//! - `GET /{namespace}/{service}/stream`: server-sent events, one `data:` message every
//!   [`STREAM_TICK`], each message one chunk, for as long as the cluster lives and the workload
//!   runs (it is checked every second; a stopped one ends the stream after a whole message).
//!
//! Deleting the cluster drains its server as a terminating Pod does: no new connections, every
//! stream ends after a whole message (a clean end a client reconnects after, never a reset), and
//! requests in flight finish within [`DRAIN_GRACE`].
//!
//! Faults ([`Fault`]): `TrafficErrors` answers 503; `TrafficHangs` accepts and never answers
//! (until the fault is cleared, or [`HANG_HOLD`]); `TrafficSlow` answers [`SLOW_LATENCY`] late;
//! `TrafficResets` sends the status line and headers, then drops the connection.
//!
//! Every answer, faulted or not, is counted per cluster in [`metrics`]: requests by code, errors
//! (5xx, or broken off) and the time to the answer's head.

pub mod front;
pub mod metrics;

pub use metrics::SeriesNames;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use http::StatusCode;
use rotor_apiserver::{ApiServer, ListOptions};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{oneshot, watch};

use crate::faults::{Fault, FaultSet};

/// Longest `delay_ms` honoured.
pub const MAX_DELAY: Duration = Duration::from_secs(10);
/// Interval between two messages of a stream.
pub const STREAM_TICK: Duration = Duration::from_millis(100);
/// A stream checks every this many messages that its workload still runs, and ends cleanly
/// when it does not.
const STREAM_READY_EVERY: u64 = 10;
/// What `TrafficSlow` adds to every answer.
pub const SLOW_LATENCY: Duration = Duration::from_secs(1);
/// How long `TrafficHangs` holds a request at most: longer than any client waits.
pub const HANG_HOLD: Duration = Duration::from_secs(60);
/// How long a deleted cluster's requests in flight may take to finish.
pub const DRAIN_GRACE: Duration = Duration::from_secs(15);

/// Most entries [`App`] keeps in its readiness cache; beyond, it starts afresh (requests
/// may name any path).
const READY_CACHE_MAX: usize = 1024;

/// What a cluster's listener answers from: its API and what it last read there.
struct App {
    server: Arc<ApiServer>,
    /// `(namespace, service)` → (the store's revision when read, ready). Valid while the
    /// revision stands: any write to the cluster may change the answer, none else can. Reading
    /// the workloads per request was a tenth of a 1,000-cluster demo's CPU.
    ready: Mutex<HashMap<(String, String), (u64, bool)>>,
}

impl App {
    /// [`service_ready`], read again only when the cluster's store changed since.
    async fn ready(&self, ns: &str, svc: &str) -> Result<bool, String> {
        let revision = self
            .server
            .store()
            .current_revision()
            .await
            .map_err(|e| e.to_string())?;
        let key = (ns.to_string(), svc.to_string());
        if let Some(&(at, ready)) = self.cache().get(&key)
            && at == revision
        {
            return Ok(ready);
        }
        // The revision is read first: a write meanwhile leaves this entry at an older revision,
        // so the next request reads again.
        let ready = service_ready(&self.server, ns, svc).await?;
        let mut cache = self.cache();
        if cache.len() >= READY_CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, (revision, ready));
        Ok(ready)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), (u64, bool)>> {
        self.ready.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Is some ready workload behind `namespace/service`?
pub async fn service_ready(
    server: &ApiServer,
    namespace: &str,
    service: &str,
) -> Result<bool, String> {
    let services = server
        .resource("", "v1", "services")
        .map_err(|e| e.to_string())?;
    let svc = server
        .get(&services, Some(namespace), service)
        .await
        .map_err(|e| e.message)?;
    let Some(selector) = svc.pointer("/spec/selector").and_then(Value::as_object) else {
        return Ok(false);
    };
    for plural in ["deployments", "statefulsets", "daemonsets"] {
        let res = server
            .resource("apps", "v1", plural)
            .map_err(|e| e.to_string())?;
        let list = server
            .list(&res, Some(namespace), &ListOptions::default())
            .await
            .map_err(|e| e.message)?;
        for w in list["items"].as_array().into_iter().flatten() {
            let labels = w
                .pointer("/spec/template/metadata/labels")
                .and_then(Value::as_object);
            let selected =
                labels.is_some_and(|l| selector.iter().all(|(k, v)| l.get(k) == Some(v)));
            let ready = w
                .pointer("/status/readyReplicas")
                .or_else(|| w.pointer("/status/numberReady"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if selected && ready > 0 {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// The query of a plain request.
#[derive(Deserialize, Default)]
struct Slow {
    delay_ms: Option<u64>,
}

/// 503 with why, unless the service has a ready workload.
async fn unready(app: &App, ns: &str, svc: &str) -> Option<Response> {
    match app.ready(ns, svc).await {
        Ok(true) => None,
        Ok(false) => {
            Some((StatusCode::SERVICE_UNAVAILABLE, "no ready endpoints\n").into_response())
        }
        Err(e) => Some((StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response()),
    }
}

async fn wait(q: &Slow) {
    if let Some(ms) = q.delay_ms {
        tokio::time::sleep(Duration::from_millis(ms).min(MAX_DELAY)).await;
    }
}

async fn read(
    State(app): State<Arc<App>>,
    Path((ns, svc)): Path<(String, String)>,
    Query(q): Query<Slow>,
) -> Response {
    if let Some(refused) = unready(&app, &ns, &svc).await {
        return refused;
    }
    wait(&q).await;
    (StatusCode::OK, "ok\n").into_response()
}

async fn write(
    State(app): State<Arc<App>>,
    Path((ns, svc)): Path<(String, String)>,
    Query(q): Query<Slow>,
    body: Bytes,
) -> Response {
    if let Some(refused) = unready(&app, &ns, &svc).await {
        return refused;
    }
    wait(&q).await;
    (
        StatusCode::CREATED,
        format!("created {} bytes\n", body.len()),
    )
        .into_response()
}

async fn stream(State(app): State<Arc<App>>, Path((ns, svc)): Path<(String, String)>) -> Response {
    if let Some(refused) = unready(&app, &ns, &svc).await {
        return refused;
    }
    let ticks = futures::stream::unfold(0u64, move |n| {
        let (app, ns, svc) = (Arc::clone(&app), ns.clone(), svc.clone());
        async move {
            if n > 0 {
                tokio::time::sleep(STREAM_TICK).await;
            }
            // The workload that serves the stream stopped: it ends the stream after a whole
            // message, as an application does on SIGTERM.
            if n % STREAM_READY_EVERY == STREAM_READY_EVERY - 1
                && unready(&app, &ns, &svc).await.is_some()
            {
                return None;
            }
            let message = Bytes::from(format!("data: {n}\n\n"));
            Some((Ok::<_, std::convert::Infallible>(message), n + 1))
        }
    });
    Response::builder()
        .header(http::header::CONTENT_TYPE, "text/event-stream")
        .header(http::header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(ticks))
        .expect("a static response builds")
}

/// The answer under the traffic faults in force (see the module docs).
async fn faulty(
    mut faults: watch::Receiver<FaultSet>,
    counts: Arc<TrafficCounts>,
    req: Request,
    next: Next,
) -> Response {
    use std::sync::atomic::Ordering::Relaxed;
    let on = |fault| faults.borrow().contains(&fault);
    let (hangs, slow, errors, resets) = (
        on(Fault::TrafficHangs),
        on(Fault::TrafficSlow),
        on(Fault::TrafficErrors),
        on(Fault::TrafficResets),
    );
    counts.requests.fetch_add(1, Relaxed);
    if hangs || slow || errors || resets {
        counts.faulted.fetch_add(1, Relaxed);
    }
    if hangs {
        let cleared = faults.wait_for(|f| !f.contains(&Fault::TrafficHangs));
        let _ = tokio::time::timeout(HANG_HOLD, cleared).await;
    }
    if slow {
        tokio::time::sleep(SLOW_LATENCY).await;
    }
    if errors {
        return crate::faults::traffic_error();
    }
    if resets {
        return reset();
    }
    next.run(req).await
}

/// The head and the start of a body, then a failure: hyper drops the connection mid-answer.
/// (The pause lets the head go out first, as it would from a server that dies while writing.)
fn reset() -> Response {
    let start = futures::stream::once(async { Ok(Bytes::from_static(b"partial answer")) });
    let broken = futures::stream::once(async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "simulated fault TrafficResets",
        ))
    });
    let mut answer = Response::builder()
        .header(http::header::CONTENT_TYPE, "text/plain")
        .body(Body::from_stream(start.chain(broken)))
        .expect("a static response builds");
    answer.extensions_mut().insert(BrokenOff);
    answer
}

/// Marks an answer that will break off mid-body: an error to the metrics whatever its code.
#[derive(Clone, Copy)]
struct BrokenOff;

/// Counts and times the answer of `next` (outside the faults, so they are counted too).
async fn measured(
    metrics: Arc<metrics::TrafficMetrics>,
    series: Arc<SeriesNames>,
    req: Request,
    next: Next,
) -> Response {
    let started = std::time::Instant::now();
    let answer = next.run(req).await;
    let code = answer.status();
    metrics.record(
        &series,
        &metrics::Answer {
            code: code.as_u16(),
            failed: code.is_server_error() || answer.extensions().get::<BrokenOff>().is_some(),
            took: started.elapsed(),
        },
    );
    answer
}

/// A cluster's traffic server; dropping it refuses new connections and drains the others
/// (see the module docs).
pub struct TrafficListener {
    pub addr: SocketAddr,
    /// What the server has answered so far.
    pub counts: Arc<TrafficCounts>,
    route: Option<front::Route>,
    stop: Option<oneshot::Sender<()>>,
    /// Its series, forgotten when it is dropped.
    metrics: Arc<metrics::TrafficMetrics>,
    series: Arc<SeriesNames>,
}

/// Requests a cluster's listener took, and how many of them a traffic fault answered: what
/// shows that an injected fault met traffic (a fault nobody's requests reach proves nothing).
#[derive(Debug, Default)]
pub struct TrafficCounts {
    pub requests: std::sync::atomic::AtomicU64,
    pub faulted: std::sync::atomic::AtomicU64,
}

impl TrafficCounts {
    /// (requests, faulted) now.
    pub fn read(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.requests.load(Relaxed), self.faulted.load(Relaxed))
    }
}

impl Drop for TrafficListener {
    fn drop(&mut self) {
        // No new connections first, then the drain of those open.
        drop(self.route.take());
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.metrics.forget(&self.series);
    }
}

/// What a cluster's traffic server is made of.
pub struct Served {
    /// The cluster's names, its series' labels.
    pub series: SeriesNames,
    pub server: Arc<ApiServer>,
    pub faults: watch::Receiver<FaultSet>,
    pub metrics: Arc<metrics::TrafficMetrics>,
}

/// Serves cluster `served`'s traffic on `ip` of the shared `front`.
pub fn serve(front: &front::Front, served: Served, ip: Ipv4Addr) -> TrafficListener {
    let Served {
        series,
        server,
        faults,
        metrics,
    } = served;
    let counts = Arc::new(TrafficCounts::default());
    let counted = counts.clone();
    let series = Arc::new(series);
    let (metered, named) = (metrics.clone(), series.clone());
    let app = axum::Router::new()
        .route("/{namespace}/{service}", get(read).post(write))
        .route("/{namespace}/{service}/stream", get(stream))
        .with_state(Arc::new(App {
            server,
            ready: Mutex::default(),
        }))
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| faulty(faults.clone(), counted.clone(), req, next),
        ))
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| measured(metered.clone(), named.clone(), req, next),
        ));
    let (incoming, route) = front.attach(ip);
    let (stop, stopped) = oneshot::channel::<()>();
    front.spawn(async move {
        let stopped = async move {
            let _ = stopped.await;
        };
        let _ =
            rotor_apiserver::http::serve_incoming_until(incoming, app, stopped, DRAIN_GRACE).await;
    });
    TrafficListener {
        addr: SocketAddr::from((ip, front.port())),
        counts,
        route: Some(route),
        stop: Some(stop),
        metrics,
        series,
    }
}
