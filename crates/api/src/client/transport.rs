//! Connections shared by the clients of many member clusters.
//!
//! kube builds one HTTP/1.1 connection pool per client, and HTTP/1.1 carries one request at a
//! time, so each watch holds a connection of its own: discovery's five watches per member and
//! the controllers' calls came to about 14 descriptors per simulated cluster (both ends in one
//! process), and `rotor demo --clusters 1500` ran out of its 20,000. Here the clients of every
//! member reached at the same origin with the same TLS identity draw on shared *lanes*: one
//! hyper client each, speaking HTTP/2 where the server does (ALPN over TLS, as real API servers
//! do; prior knowledge over plain HTTP where the kubeconfig says so), so the watches of up to
//! [`MEMBERS_PER_LANE`] members are streams of one connection. Over HTTP/1.1 a lane still
//! shares its idle connections. Authentication stays per client (it is a header), so members
//! with different tokens share a lane; a client certificate is part of the lane's key.
//!
//! Until a lane over TLS has its first connection, its requests go one at a time: hyper learns
//! that a server speaks HTTP/2 only from the ALPN of a finished handshake, so every request
//! made before then dials its own connection, and the ones that lose the race are closed again
//! (40 members' first calls opened up to 45 connections for a moment, where 2 lanes serve them).
//!
//! A lane's connections have no read timeout: on a shared connection it would end every
//! member's calls when one member hangs. Bounded calls are bounded per request instead (the
//! answer's headers, then each pause between its body's frames).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::{Body, ConfigExt};
use tower::{BoxError, ServiceBuilder};

use super::Calls;

/// Members whose clients share one lane. Over HTTP/2 a lane is one connection, and a server
/// allows a number of concurrent streams per connection (hyper's servers 200, Go's 250 by
/// default): 32 members × discovery's 5 watches = 160 streams, with room for the calls.
pub const MEMBERS_PER_LANE: usize = 32;

/// How often an HTTP/2 connection is pinged, and how long an answer may take: a watch lane has
/// no read timeout, so a peer that vanished without closing is found this way.
const KEEP_ALIVE: (Duration, Duration) = (Duration::from_secs(30), Duration::from_secs(10));

/// The kubeconfig cluster extension that says the server speaks HTTP/2 over plain HTTP (prior
/// knowledge, h2c): the simulator's members do; a plain-HTTP server in general may not.
pub const H2C_EXTENSION: &str = "rotor.dev/h2c";

/// How long a request waits for its lane's first connection before it dials its own: a member
/// that never answers must not hold back the others on its lane for longer.
const FIRST_CONNECTION_WAIT: Duration = Duration::from_secs(5);

type Hyper =
    hyper_util::client::legacy::Client<TimeoutConnector<HttpsConnector<HttpConnector>>, Body>;

/// What decides whether two clients may share connections.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct LaneKey {
    /// `scheme://authority` of the server.
    origin: String,
    /// A digest of what TLS presents and trusts (roots, client identity, server name,
    /// verification); never logged, never leaves the process.
    tls: u64,
    h2c: bool,
}

struct Lane {
    client: Hyper,
    first: Arc<FirstConnection>,
    /// One clone per member client using the lane: its count is the lane's load.
    members: Arc<()>,
}

impl Lane {
    fn load(&self) -> usize {
        Arc::strong_count(&self.members) - 1
    }
}

/// Lets one request dial a lane's first connection while the others wait for it (see the
/// module's documentation). Over h2c hyper does this itself: it knows HTTP/2 before dialling.
#[derive(Default)]
struct FirstConnection {
    open: AtomicBool,
    turn: tokio::sync::Mutex<()>,
}

impl FirstConnection {
    async fn request(
        self: Arc<Self>,
        hyper: Hyper,
        req: http::Request<Body>,
    ) -> <hyper_util::client::legacy::ResponseFuture as std::future::Future>::Output {
        if self.open.load(Ordering::Acquire) {
            return hyper.request(req).await;
        }
        let turn = tokio::time::timeout(FIRST_CONNECTION_WAIT, self.turn.lock()).await;
        if self.open.load(Ordering::Acquire) {
            drop(turn);
            return hyper.request(req).await;
        }
        // The answer's headers mean the connection is in the pool, for the others to share.
        let answer = hyper.request(req).await;
        if answer.is_ok() {
            self.open.store(true, Ordering::Release);
        }
        answer
    }
}

static LANES: LazyLock<Mutex<HashMap<LaneKey, Vec<Lane>>>> = LazyLock::new(Mutex::default);

/// A kube client on a shared lane, or None when `config` cannot share one (a proxy, client
/// certificates from an exec plugin: kube's own construction handles those).
pub(super) fn shared_client(
    config: &kube::Config,
    calls: Calls,
    h2c: bool,
) -> Option<Result<kube::Client, kube::Error>> {
    let shareable = config.proxy_url.is_none()
        && config.auth_info.exec.is_none()
        && config.root_cert_file.is_none()
        && !matches!(calls, Calls::Default);
    shareable.then(|| build(config, calls, h2c))
}

fn build(config: &kube::Config, calls: Calls, h2c: bool) -> Result<kube::Client, kube::Error> {
    let key = LaneKey {
        origin: origin(&config.cluster_url),
        tls: tls_digest(config),
        h2c,
    };
    let (hyper, first, member) = lane(key, || hyper_client(config, h2c))?;
    let hyper = tower::service_fn(move |req| first.clone().request(hyper.clone(), req));
    let stack = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        // The member's hold on its lane lives as long as its client.
        .map_request(move |req: http::Request<Body>| {
            let _ = &member;
            req
        });
    let ns = config.default_namespace.clone();
    Ok(match calls {
        Calls::Bounded(limit) => kube::Client::new(
            stack
                .layer(tower::timeout::TimeoutLayer::new(limit))
                .layer(tower_http::timeout::ResponseBodyTimeoutLayer::new(limit))
                .service(hyper),
            ns,
        ),
        Calls::Watch | Calls::Default => kube::Client::new(
            stack
                .map_err(|e: hyper_util::client::legacy::Error| BoxError::from(e))
                .service(hyper),
            ns,
        ),
    })
}

/// A lane of `key` for one more member: the least loaded with room, else a new one. Lanes no
/// member uses any more are dropped (and with them their connections).
fn lane(
    key: LaneKey,
    make: impl FnOnce() -> Result<Hyper, kube::Error>,
) -> Result<(Hyper, Arc<FirstConnection>, Arc<()>), kube::Error> {
    let h2c = key.h2c;
    let mut all = LANES.lock().unwrap_or_else(|p| p.into_inner());
    all.retain(|_, lanes| {
        lanes.retain(|l| l.load() > 0);
        !lanes.is_empty()
    });
    let lanes = all.entry(key).or_default();
    let roomy = lanes
        .iter()
        .filter(|l| l.load() < MEMBERS_PER_LANE)
        .min_by_key(|l| l.load());
    if let Some(l) = roomy {
        return Ok((l.client.clone(), l.first.clone(), l.members.clone()));
    }
    let lane = Lane {
        client: make()?,
        first: Arc::new(FirstConnection {
            open: AtomicBool::new(h2c),
            ..FirstConnection::default()
        }),
        members: Arc::new(()),
    };
    let held = (
        lane.client.clone(),
        lane.first.clone(),
        lane.members.clone(),
    );
    lanes.push(lane);
    Ok(held)
}

/// The hyper client of a new lane: TLS as kube sets it up (roots, identity, server name), with
/// HTTP/2 offered by ALPN, or prior knowledge over plain HTTP when `h2c`; a bounded connect.
fn hyper_client(config: &kube::Config, h2c: bool) -> Result<Hyper, kube::Error> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    // Many small frames of many streams: do not wait out Nagle's algorithm.
    http.set_nodelay(true);
    let tls = config.rustls_client_config()?;
    let builder = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let builder = match &config.tls_server_name {
        Some(name) => {
            let name = name
                .clone()
                .try_into()
                .map_err(kube::client::RustlsTlsError::InvalidServerName)
                .map_err(kube::Error::RustlsTls)?;
            builder.with_server_name_resolver(FixedServerNameResolver::new(name))
        }
        None => builder,
    };
    let mut connector = TimeoutConnector::new(builder.enable_all_versions().wrap_connector(http));
    connector.set_connect_timeout(config.connect_timeout);
    let mut client = hyper_util::client::legacy::Client::builder(TokioExecutor::new());
    client
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .http2_only(h2c)
        .http2_keep_alive_interval(KEEP_ALIVE.0)
        .http2_keep_alive_timeout(KEEP_ALIVE.1)
        .http2_keep_alive_while_idle(true);
    Ok(client.build(connector))
}

fn origin(url: &http::Uri) -> String {
    let scheme = url.scheme_str().unwrap_or("https");
    let authority = url.authority().map(|a| a.as_str()).unwrap_or_default();
    format!("{scheme}://{authority}")
}

/// What TLS presents and trusts, digested: clients that differ in it never share a connection.
fn tls_digest(config: &kube::Config) -> u64 {
    let auth = &config.auth_info;
    let mut h = DefaultHasher::new();
    config.root_cert.hash(&mut h);
    config.accept_invalid_certs.hash(&mut h);
    config.tls_server_name.hash(&mut h);
    auth.client_certificate.hash(&mut h);
    auth.client_certificate_data.hash(&mut h);
    // A certificate has one key: the key's secret need not be read.
    auth.client_key.hash(&mut h);
    h.finish()
}

/// How many lanes are open to `origin` (`scheme://authority`), over every key.
pub fn lanes_to(origin: &str) -> usize {
    let all = LANES.lock().unwrap_or_else(|p| p.into_inner());
    all.iter()
        .filter(|(k, _)| k.origin == origin)
        .map(|(_, lanes)| lanes.iter().filter(|l| l.load() > 0).count())
        .sum()
}
