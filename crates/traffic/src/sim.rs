//! An in-process weighted HTTP router: the [`TrafficShifter`] of the simulator and of
//! `rotor demo` when HAProxy is absent.
//!
//! One listener serves every endpoint, named by the first path segment:
//! `http://LISTEN/<endpoint>/rest?q` is forwarded to `http://<blue|green>/rest?q` (the segment
//! is stripped). One listener rather than one per endpoint keeps a 1,000-cluster demo at one
//! port and lets endpoints be registered after [`SimShifter::serve`]. Backends are picked by
//! smooth weighted round-robin (nginx's algorithm), deterministic so tests can assert exact
//! counts; the sequence restarts whenever the weights change. Each response carries
//! `x-rotor-backend: blue|green`, naming the backend whose answer the client got.
//!
//! Answers are passed on as they come (a stream stays a stream), except a 5xx, read whole.
//!
//! Retry: when the picked backend fails — connection error, no answer within the request
//! timeout, or a 5xx — and the request is idempotent (`GET`, `HEAD`, `OPTIONS`) and the
//! other backend is registered, the request is sent once more, to the other backend, even if its
//! weight is 0: it is the fallback, as HAProxy's redispatch is (which, unlike this router, only
//! redispatches to a server with weight > 0). The client gets the retry's answer, marked
//! `x-rotor-retried-from: <failed backend>`; the failure still counts against the backend that
//! failed ([`TrafficShifter::backend_stats`], [`TrafficStats`]), so a failing green shows in the
//! health signal while clients see nothing. Each attempt has its own request timeout, so a
//! retried request can take twice as long. [`SimShifter::set_retry`] turns retries off.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{
    Backend, BackendLatencies, BackendStats, Sessions, TrafficError, TrafficShifter, Unanswered,
    Weights, validate_endpoint,
};

/// Response header naming the backend that answered.
pub const BACKEND_HEADER: &str = "x-rotor-backend";

/// Response header of a retried request, naming the backend that failed first.
pub const RETRIED_FROM_HEADER: &str = "x-rotor-retried-from";

/// Largest request or response body forwarded (the simulator's traffic is small).
const MAX_BODY: usize = 8 << 20;

/// Counters of one endpoint since registration (or [`SimShifter::reset_stats`]).
///
/// `requests` and `failures` are what clients saw; the per-backend fields count attempts, so a
/// request that failed on green and was retried on blue adds one to `to_green`,
/// `green_failures`, `to_blue` and `retries`, and nothing to `failures` if blue answered.
/// Hence `to_blue + to_green == requests + retries`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrafficStats {
    /// Client requests routed to a backend.
    pub requests: u64,
    /// Client-visible failures: requests whose final answer (after any retry) was a 5xx or no
    /// response at all (connect error, timeout).
    pub failures: u64,
    /// Attempts sent to blue, retries included.
    pub to_blue: u64,
    /// Attempts sent to green, retries included.
    pub to_green: u64,
    /// Attempts blue failed, whether or not a retry then hid the failure from the client.
    pub blue_failures: u64,
    /// Attempts green failed, whether or not a retry then hid the failure from the client.
    pub green_failures: u64,
    /// Requests retried on the other backend after a failure.
    pub retries: u64,
}

impl TrafficStats {
    /// Failed attempts per attempt sent to `backend` (0 when it got none): the health-gate
    /// signal, retried failures included.
    pub fn failure_rate(&self, backend: Backend) -> f64 {
        let (failed, total) = match backend {
            Backend::Blue => (self.blue_failures, self.to_blue),
            Backend::Green => (self.green_failures, self.to_green),
        };
        if total == 0 {
            0.0
        } else {
            failed as f64 / total as f64
        }
    }
}

struct EndpointState {
    blue: SocketAddr,
    green: Option<SocketAddr>,
    weights: Weights,
    /// Smooth weighted round-robin state: `[blue, green]`.
    current: [i32; 2],
    /// Resettable ([`SimShifter::reset_stats`]).
    stats: TrafficStats,
    /// Since registration, never reset ([`TrafficShifter::backend_stats`]).
    backends: BackendStats,
    /// Attempts whose answer has not ended yet, per backend ([`TrafficShifter::sessions`]).
    sessions: Sessions,
    /// Attempts still waiting for their answer's head, by id: when each was sent, and where
    /// ([`TrafficShifter::unanswered`]).
    waiting: HashMap<u64, (Backend, Instant)>,
    /// The id of the next attempt in `waiting`.
    next_attempt: u64,
    /// When each backend last answered an attempt (its head, or its failure): `[blue, green]`.
    last_answer: [Option<Instant>; 2],
    /// Time to each attempt's answer head (or its failure), since registration
    /// ([`TrafficShifter::latencies`]).
    latencies: BackendLatencies,
}

impl EndpointState {
    /// nginx's smooth weighted round-robin: add each weight, pick the largest (blue on ties),
    /// subtract the total from the pick. Counts a client request (the attempt is counted by
    /// [`EndpointState::record_attempt`]).
    fn pick(&mut self) -> (Backend, Option<SocketAddr>) {
        let w = [
            i32::from(self.weights.blue_pct()),
            i32::from(self.weights.green_pct()),
        ];
        self.current[0] += w[0];
        self.current[1] += w[1];
        let backend = if self.current[0] >= self.current[1] {
            self.current[0] -= 100;
            Backend::Blue
        } else {
            self.current[1] -= 100;
            Backend::Green
        };
        self.stats.requests += 1;
        (backend, self.addr(backend))
    }

    fn addr(&self, backend: Backend) -> Option<SocketAddr> {
        match backend {
            Backend::Blue => Some(self.blue),
            Backend::Green => self.green,
        }
    }

    /// One attempt on `backend` that took `took` to its answer's head or its failure, in both
    /// the resettable and the cumulative counters.
    fn record_attempt(&mut self, backend: Backend, failed: bool, took: Duration) {
        self.latencies.get_mut(backend).record(took);
        self.last_answer[backend as usize] = Some(Instant::now());
        let failed = u64::from(failed);
        let (to, failures, counters) = match backend {
            Backend::Blue => (
                &mut self.stats.to_blue,
                &mut self.stats.blue_failures,
                &mut self.backends.blue,
            ),
            Backend::Green => (
                &mut self.stats.to_green,
                &mut self.stats.green_failures,
                &mut self.backends.green,
            ),
        };
        *to += 1;
        *failures += failed;
        counters.requests += 1;
        counters.failures += failed;
    }

    fn session_count(&mut self, backend: Backend) -> &mut u64 {
        match backend {
            Backend::Blue => &mut self.sessions.blue,
            Backend::Green => &mut self.sessions.green,
        }
    }

    /// An answer `backend` began well and broke off (its body failed): a failure after all.
    fn record_broken(&mut self, backend: Backend) {
        let (failures, counters) = match backend {
            Backend::Blue => (&mut self.stats.blue_failures, &mut self.backends.blue),
            Backend::Green => (&mut self.stats.green_failures, &mut self.backends.green),
        };
        *failures += 1;
        counters.failures += 1;
        self.stats.failures += 1;
    }
}

/// One attempt counted in [`EndpointState::sessions`] from when it is sent until its answer
/// has ended (the last byte passed on, the client gone, or no answer at all): dropped, it
/// counts itself out.
struct Session {
    endpoint: Endpoint,
    backend: Backend,
}

impl Session {
    fn open(endpoint: &Endpoint, backend: Backend) -> Self {
        *lock(endpoint).session_count(backend) += 1;
        Session {
            endpoint: Arc::clone(endpoint),
            backend,
        }
    }

    /// The answer began well and broke off: see [`EndpointState::record_broken`].
    fn broken(&self) {
        lock(&self.endpoint).record_broken(self.backend);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let mut state = lock(&self.endpoint);
        let count = state.session_count(self.backend);
        *count = count.saturating_sub(1);
    }
}

/// One attempt in [`EndpointState::waiting`] until its answer's head (or its failure) is in:
/// dropped, it takes itself out, however the attempt ended.
struct Waiting {
    endpoint: Endpoint,
    id: u64,
}

impl Waiting {
    fn start(endpoint: &Endpoint, backend: Backend) -> Self {
        let mut state = lock(endpoint);
        let id = state.next_attempt;
        state.next_attempt += 1;
        state.waiting.insert(id, (backend, Instant::now()));
        Waiting {
            endpoint: Arc::clone(endpoint),
            id,
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        lock(&self.endpoint).waiting.remove(&self.id);
    }
}

/// The result of one attempt: the backend's response, or why there was none (the status the
/// client gets for it, and a message).
type Attempt = Result<Response, (StatusCode, String)>;

/// A 5xx or no response: the backend failed this attempt.
fn attempt_failed(attempt: &Attempt) -> bool {
    match attempt {
        Ok(response) => response.status().is_server_error(),
        Err(_) => true,
    }
}

/// Safe to send twice: the methods the router retries on the other backend.
fn idempotent(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

type Endpoint = Arc<Mutex<EndpointState>>;

struct Inner {
    endpoints: RwLock<HashMap<String, Endpoint>>,
    client: crate::http_client::HttpClient,
    request_timeout: Duration,
    retry: AtomicBool,
}

/// The simulated traffic layer. Cheap to clone (shared state); serve it with
/// [`SimShifter::serve`] or mount [`SimShifter::router`] into another axum server.
#[derive(Clone)]
pub struct SimShifter {
    inner: Arc<Inner>,
}

impl Default for SimShifter {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for SimShifter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimShifter")
            .field("request_timeout", &self.inner.request_timeout)
            .field("retry", &self.retry())
            .finish_non_exhaustive()
    }
}

/// Locks never poison the data here (counters and addresses), so a poisoned lock is used as is.
fn lock(endpoint: &Endpoint) -> MutexGuard<'_, EndpointState> {
    endpoint.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SimShifter {
    /// Connect timeout 1 s, an answer's head within [`crate::PROXY_SERVER_TIMEOUT`], retries on.
    pub fn new() -> Self {
        Self::with_timeouts(Duration::from_secs(1), crate::PROXY_SERVER_TIMEOUT)
    }

    /// `connect` bounds each connection attempt to a backend; `request` bounds each attempt of
    /// a forwarded request from sending to the head of the response (to its last byte for a
    /// 5xx), and reading the client's request body. Retries on.
    pub fn with_timeouts(connect: Duration, request: Duration) -> Self {
        let client = crate::http_client::short_lived(connect);
        Self {
            inner: Arc::new(Inner {
                endpoints: RwLock::new(HashMap::new()),
                client,
                request_timeout: request,
                retry: AtomicBool::new(true),
            }),
        }
    }

    /// Turn the retry on the other backend (see the module docs) on or off, for every clone of
    /// this shifter. On by default; off, every failure of the picked backend reaches the client.
    pub fn set_retry(&self, enabled: bool) {
        self.inner.retry.store(enabled, Ordering::Relaxed);
    }

    /// Whether failed idempotent requests are retried on the other backend.
    pub fn retry(&self) -> bool {
        self.inner.retry.load(Ordering::Relaxed)
    }

    fn endpoint(&self, endpoint: &str) -> Result<Endpoint, TrafficError> {
        self.inner
            .endpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(endpoint)
            .cloned()
            .ok_or_else(|| TrafficError::UnknownEndpoint {
                endpoint: endpoint.to_string(),
            })
    }

    /// Counters of `endpoint` since registration or the last [`SimShifter::reset_stats`].
    pub fn stats(&self, endpoint: &str) -> Result<TrafficStats, TrafficError> {
        Ok(lock(&self.endpoint(endpoint)?).stats)
    }

    /// Zero `endpoint`'s [`TrafficStats`] (e.g. at the start of a bake period). The cumulative
    /// [`TrafficShifter::backend_stats`] are not reset.
    pub fn reset_stats(&self, endpoint: &str) -> Result<(), TrafficError> {
        lock(&self.endpoint(endpoint)?).stats = TrafficStats::default();
        Ok(())
    }

    /// The names of the registered endpoints, sorted.
    pub fn endpoints(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .inner
            .endpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// The router that forwards `/<endpoint>/…` (see the module docs), for mounting elsewhere.
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .fallback(forward)
            .with_state(self.clone())
    }

    /// Listen on `listen` (port 0 picks one) and route every registered endpoint's traffic.
    /// The listener stops when the returned [`SimServer`] is dropped.
    pub async fn serve(&self, listen: SocketAddr) -> Result<SimServer, TrafficError> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| TrafficError::Listen { listen, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| TrafficError::Listen { listen, source })?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let router = self.router();
        let task = tokio::spawn(async move {
            let server = axum::serve(listener, router).with_graceful_shutdown(async move {
                // Fires on an explicit shutdown and when the sender is dropped.
                let _ = stopped.await;
            });
            if let Err(e) = server.await {
                tracing::warn!(%addr, error = %e, "sim traffic listener stopped");
            }
        });
        tracing::debug!(%addr, "sim traffic listener started");
        Ok(SimServer {
            addr,
            shutdown: Some(shutdown),
            task,
        })
    }

    async fn forward(&self, req: Request) -> Response {
        let path = req.uri().path().trim_start_matches('/');
        let (endpoint_name, rest) = path.split_once('/').unwrap_or((path, ""));
        let Ok(endpoint) = self.endpoint(endpoint_name) else {
            return (
                StatusCode::NOT_FOUND,
                format!("no traffic endpoint {endpoint_name:?}\n"),
            )
                .into_response();
        };
        let endpoint_name = endpoint_name.to_string();
        let path_and_query = match req.uri().query() {
            Some(q) => format!("/{rest}?{q}"),
            None => format!("/{rest}"),
        };
        let (mut parts, body) = req.into_parts();
        // Read once, sent to each attempt. A client that cannot send its body is no backend's
        // failure, and not counted.
        let timeout = self.inner.request_timeout;
        let body = match tokio::time::timeout(timeout, axum::body::to_bytes(body, MAX_BODY)).await {
            Ok(Ok(body)) => body,
            Ok(Err(e)) => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("endpoint {endpoint_name:?}: reading the request body: {e}\n"),
                )
                    .into_response();
            }
            Err(_) => {
                return (
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "endpoint {endpoint_name:?}: request body not received within {timeout:?}\n"
                    ),
                )
                    .into_response();
            }
        };
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::HOST);
        let retry = self.retry() && idempotent(&parts.method);

        let (first, first_addr) = lock(&endpoint).pick();
        let first_session = Session::open(&endpoint, first);
        let sent = Instant::now();
        let first_attempt = self
            .attempt(&endpoint, &parts, &body, first, first_addr, &path_and_query)
            .await;
        let first_failed = attempt_failed(&first_attempt);
        let fallback = {
            let mut state = lock(&endpoint);
            state.record_attempt(first, first_failed, sent.elapsed());
            let fallback = if first_failed && retry {
                state.addr(first.other())
            } else {
                None
            };
            if fallback.is_some() {
                state.stats.retries += 1;
            }
            fallback
        };
        let (backend, attempt, retried_from, session) = match fallback {
            Some(addr) => {
                drop(first_session);
                let second = first.other();
                let session = Session::open(&endpoint, second);
                tracing::debug!(
                    endpoint = %endpoint_name,
                    failed = %first,
                    error = %attempt_error(&first_attempt),
                    retry = %second,
                    "retrying on the other backend"
                );
                let sent = Instant::now();
                let attempt = self
                    .attempt(
                        &endpoint,
                        &parts,
                        &body,
                        second,
                        Some(addr),
                        &path_and_query,
                    )
                    .await;
                let took = sent.elapsed();
                lock(&endpoint).record_attempt(second, attempt_failed(&attempt), took);
                (second, attempt, Some(first), session)
            }
            None => (first, first_attempt, None, first_session),
        };
        if attempt_failed(&attempt) {
            lock(&endpoint).stats.failures += 1;
        }
        let mut response = match attempt {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                // The session ends with the body: when the last byte is passed on, or when
                // the client goes away and the body is dropped.
                let body = body.map_err(move |e| {
                    session.broken();
                    e
                });
                Response::from_parts(parts, Body::new(body))
            }
            Err((status, message)) => {
                tracing::debug!(endpoint = %endpoint_name, %backend, %message, "forward failed");
                let retried = match retried_from {
                    Some(failed) => format!(" (retried after {failed} failed)"),
                    None => String::new(),
                };
                (
                    status,
                    format!("endpoint {endpoint_name:?}: {backend}: {message}{retried}\n"),
                )
                    .into_response()
            }
        };
        response.headers_mut().insert(
            HeaderName::from_static(BACKEND_HEADER),
            HeaderValue::from_static(backend.as_str()),
        );
        if let Some(failed) = retried_from {
            response.headers_mut().insert(
                HeaderName::from_static(RETRIED_FROM_HEADER),
                HeaderValue::from_static(failed.as_str()),
            );
        }
        response
    }

    /// One attempt on `backend` (at `addr`, `None` if it is not registered), counted as
    /// waiting until its answer's head is in.
    async fn attempt(
        &self,
        endpoint: &Endpoint,
        parts: &http::request::Parts,
        body: &Bytes,
        backend: Backend,
        addr: Option<SocketAddr>,
        path_and_query: &str,
    ) -> Attempt {
        match addr {
            Some(addr) => {
                let _waiting = Waiting::start(endpoint, backend);
                self.send(parts, body, addr, path_and_query).await
            }
            None => Err((
                StatusCode::BAD_GATEWAY,
                format!("{backend} is not registered"),
            )),
        }
    }

    /// Forward a request to `addr`. The answer's head must come within the request timeout; a
    /// 5xx body is read whole (the request may be retried), any other body is passed on as it
    /// comes, so a stream stays a stream and ends when the backend ends it.
    async fn send(
        &self,
        parts: &http::request::Parts,
        body: &Bytes,
        addr: SocketAddr,
        path_and_query: &str,
    ) -> Attempt {
        let uri: Uri = format!("http://{addr}{path_and_query}")
            .parse()
            .map_err(|e: http::uri::InvalidUri| (StatusCode::BAD_REQUEST, e.to_string()))?;
        let mut parts = parts.clone();
        parts.uri = uri;
        let upstream = http::Request::from_parts(parts, Full::new(body.clone()));
        let timeout = self.inner.request_timeout;
        let late = || {
            (
                StatusCode::GATEWAY_TIMEOUT,
                format!("{addr}: no response within {timeout:?}"),
            )
        };
        let response = tokio::time::timeout(timeout, self.inner.client.request(upstream))
            .await
            .map_err(|_| late())?
            .map_err(|e| (StatusCode::BAD_GATEWAY, format!("{addr}: {e}")))?;
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        if !parts.status.is_server_error() {
            return Ok(Response::from_parts(parts, Body::new(body)));
        }
        let read = http_body_util::Limited::new(body, MAX_BODY).collect();
        let body = tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| late())?
            .map_err(|e| {
                (
                    StatusCode::BAD_GATEWAY,
                    format!("{addr}: reading the response: {e}"),
                )
            })?
            .to_bytes();
        parts.headers.remove(header::CONTENT_LENGTH);
        Ok(Response::from_parts(parts, Body::from(body)))
    }
}

/// What went wrong in a failed attempt, for the log.
fn attempt_error(attempt: &Attempt) -> String {
    match attempt {
        Ok(response) => format!("status {}", response.status()),
        Err((_, message)) => message.clone(),
    }
}

fn strip_hop_by_hop(headers: &mut http::HeaderMap) {
    for name in [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
}

async fn forward(State(shifter): State<SimShifter>, req: Request) -> Response {
    shifter.forward(req).await
}

#[async_trait]
impl TrafficShifter for SimShifter {
    async fn register(
        &self,
        endpoint: &str,
        blue: SocketAddr,
        green: Option<SocketAddr>,
    ) -> Result<(), TrafficError> {
        validate_endpoint(endpoint)?;
        let mut endpoints = self
            .inner
            .endpoints
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match endpoints.get(endpoint) {
            Some(existing) => {
                let mut state = lock(existing);
                state.blue = blue;
                state.green = green;
                if green.is_none() && state.weights != Weights::all_blue() {
                    state.weights = Weights::all_blue();
                    state.current = [0, 0];
                }
            }
            None => {
                endpoints.insert(
                    endpoint.to_string(),
                    Arc::new(Mutex::new(EndpointState {
                        blue,
                        green,
                        weights: Weights::all_blue(),
                        current: [0, 0],
                        stats: TrafficStats::default(),
                        backends: BackendStats::default(),
                        sessions: Sessions::default(),
                        waiting: HashMap::new(),
                        next_attempt: 0,
                        last_answer: [None, None],
                        latencies: BackendLatencies::default(),
                    })),
                );
            }
        }
        Ok(())
    }

    async fn set_weights(&self, endpoint: &str, weights: Weights) -> Result<(), TrafficError> {
        validate_endpoint(endpoint)?;
        let endpoint_state = self.endpoint(endpoint)?;
        let mut state = lock(&endpoint_state);
        if weights.green_pct() > 0 && state.green.is_none() {
            return Err(TrafficError::GreenNotRegistered {
                endpoint: endpoint.to_string(),
                green: weights.green_pct(),
            });
        }
        state.weights = weights;
        state.current = [0, 0];
        Ok(())
    }

    async fn weights(&self, endpoint: &str) -> Result<Weights, TrafficError> {
        validate_endpoint(endpoint)?;
        Ok(lock(&self.endpoint(endpoint)?).weights)
    }

    /// Attempts and failed attempts per backend since the endpoint was first registered;
    /// neither re-registering nor [`SimShifter::reset_stats`] resets them.
    async fn backend_stats(&self, endpoint: &str) -> Result<BackendStats, TrafficError> {
        validate_endpoint(endpoint)?;
        Ok(lock(&self.endpoint(endpoint)?).backends)
    }

    /// Each attempt's time to its answer's head (a 5xx: to its last byte; a failure: to the
    /// failure), per backend, since the endpoint was first registered.
    async fn latencies(&self, endpoint: &str) -> Result<BackendLatencies, TrafficError> {
        validate_endpoint(endpoint)?;
        Ok(lock(&self.endpoint(endpoint)?).latencies)
    }

    /// Attempts sent to each backend whose answer has not ended: requests in flight and
    /// streams still open, as the router passes them on.
    async fn sessions(&self, endpoint: &str) -> Result<Sessions, TrafficError> {
        validate_endpoint(endpoint)?;
        Ok(lock(&self.endpoint(endpoint)?).sessions)
    }

    async fn unanswered(
        &self,
        endpoint: &str,
        older_than: Duration,
    ) -> Result<Unanswered, TrafficError> {
        let endpoint = self.endpoint(endpoint)?;
        let state = lock(&endpoint);
        let mut count = Unanswered::default();
        let mut youngest_green: Option<Instant> = None;
        for (backend, sent) in state.waiting.values() {
            if sent.elapsed() < older_than {
                continue;
            }
            match backend {
                Backend::Blue => count.blue += 1,
                Backend::Green => {
                    count.green += 1;
                    youngest_green = Some(youngest_green.map_or(*sent, |y| y.max(*sent)));
                }
            }
        }
        count.green_answering = youngest_green.map(|youngest| {
            state.last_answer[Backend::Green as usize].is_some_and(|answered| answered > youngest)
        });
        Ok(count)
    }
}

/// A running [`SimShifter`] listener. Dropping it stops accepting and closes connections
/// gracefully.
#[derive(Debug)]
pub struct SimServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl SimServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL of `endpoint`'s traffic: `http://ADDR/<endpoint>`.
    pub fn url(&self, endpoint: &str) -> String {
        format!("http://{}/{endpoint}", self.addr)
    }

    /// Stop and wait (at most `timeout`) for open connections to finish.
    pub async fn shutdown(mut self, timeout: Duration) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if tokio::time::timeout(timeout, &mut self.task).await.is_err() {
            self.task.abort();
        }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        // Dropping the sender starts the graceful shutdown of open connections; aborting stops
        // accepting at once.
        self.shutdown.take();
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(blue: u8, green: u8) -> EndpointState {
        EndpointState {
            blue: "127.0.0.1:1".parse().unwrap(),
            green: Some("127.0.0.1:2".parse().unwrap()),
            weights: Weights::new(blue, green).unwrap(),
            current: [0, 0],
            stats: TrafficStats::default(),
            backends: BackendStats::default(),
            sessions: Sessions::default(),
            waiting: HashMap::new(),
            next_attempt: 0,
            last_answer: [None, None],
            latencies: BackendLatencies::default(),
        }
    }

    fn sequence(blue: u8, green: u8, n: usize) -> String {
        let mut s = state(blue, green);
        (0..n)
            .map(|_| match s.pick().0 {
                Backend::Blue => 'b',
                Backend::Green => 'g',
            })
            .collect()
    }

    #[test]
    fn smooth_weighted_round_robin_is_exact() {
        assert_eq!(sequence(100, 0, 6), "bbbbbb");
        assert_eq!(sequence(0, 100, 6), "gggggg");
        assert_eq!(sequence(50, 50, 6), "bgbgbg");
        assert_eq!(sequence(90, 10, 10), "bbbbbgbbbb");
        // Over any 100 picks the split is exactly the weights.
        for green in [1u8, 10, 25, 33, 50, 77, 99] {
            let s = sequence(100 - green, green, 100);
            assert_eq!(s.matches('g').count(), usize::from(green), "{green}");
        }
    }
}
