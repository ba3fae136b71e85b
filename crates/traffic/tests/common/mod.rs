//! Real HTTP backends and a real HTTP client for the traffic tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, Uri};
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::task::JoinHandle;

/// Bound on any single request a test sends.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A backend served by axum on 127.0.0.1:0; stops when dropped.
pub struct TestBackend {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(router: Router) -> TestBackend {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    TestBackend { addr, task }
}

/// Answers `name` on every path, and `name URI` on `/echo…`.
pub async fn backend(name: &'static str) -> TestBackend {
    let router = Router::new()
        .route(
            "/echo",
            get(move |uri: Uri| async move { format!("{name} {uri}") }),
        )
        .route(
            "/echo/{*rest}",
            get(move |uri: Uri| async move { format!("{name} {uri}") }),
        )
        .fallback(move || async move { name });
    serve(router).await
}

/// Answers `name` on every path, `delay` late.
pub async fn slow_backend(name: &'static str, delay: Duration) -> TestBackend {
    serve(Router::new().fallback(move || async move {
        tokio::time::sleep(delay).await;
        name
    }))
    .await
}

/// What every shifter that times requests must show after `n` requests through `url` at
/// `endpoint`, split 50/50 between a fast blue and a green 300 ms late: each green request in a
/// bucket past 300 ms, each blue one below (bounded wait for the counts, which may arrive late).
pub async fn latencies_tell_a_slow_green<S: rotor_traffic::TrafficShifter + ?Sized>(
    shifter: &S,
    endpoint: &str,
    url: &str,
) {
    let n = 20;
    bodies(&client(), url, n).await;
    let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
    let seen = loop {
        let seen = shifter.latencies(endpoint).await.unwrap();
        if seen.blue.total() + seen.green.total() >= n as u64 {
            break seen;
        }
        assert!(tokio::time::Instant::now() < deadline, "{seen:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        (seen.blue.total(), seen.green.total()),
        (10, 10),
        "{seen:?}"
    );
    // Bounds from the configured delay, not this machine's speed (a loaded CI took blue past
    // 25 ms): every green request took at least its 300 ms (the bucket above 250), and every
    // blue one, answered at once, less.
    assert!(seen.green.quantile_ms(0.01) >= Some(400), "{seen:?}");
    assert!(seen.blue.quantile_ms(1.0) <= Some(250), "{seen:?}");
}

/// Answers 503 with body `name` on every path.
pub async fn failing_backend(name: &'static str) -> TestBackend {
    serve(Router::new().fallback(move || async move { (StatusCode::SERVICE_UNAVAILABLE, name) }))
        .await
}

/// One `data: N` message every 20 ms, never ending.
async fn ticks() -> axum::body::Body {
    let ticks = futures::stream::unfold(0u64, |n| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Some((
            Ok::<_, std::io::Error>(Bytes::from(format!("data: {n}\n\n"))),
            n + 1,
        ))
    });
    axum::body::Body::from_stream(ticks)
}

/// `/stream`: [`ticks`]; `/broken`: a first chunk, then the answer breaks off (the connection
/// is dropped mid-body).
pub async fn streaming_backend() -> TestBackend {
    let broken = || async {
        let start = futures::stream::once(async { Ok(Bytes::from_static(b"partial")) });
        let fail = futures::stream::once(async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Err(std::io::Error::other("backend died"))
        });
        axum::body::Body::from_stream(futures::StreamExt::chain(start, fail))
    };
    serve(
        Router::new()
            .route("/stream", get(ticks))
            .route("/broken", get(broken)),
    )
    .await
}

/// A streaming backend (`/stream`, as [`streaming_backend`]) whose `/hold` answers only once
/// [`HoldingBackend::release`] is called (a request in flight for as long as a test wants),
/// and `/ok` at once.
pub struct HoldingBackend {
    pub backend: TestBackend,
    release: tokio::sync::watch::Sender<bool>,
}

impl HoldingBackend {
    /// Every held request answers, and later ones do at once.
    pub fn release(&self) {
        self.release.send_replace(true);
    }
}

pub async fn holding_backend() -> HoldingBackend {
    let (release, released) = tokio::sync::watch::channel(false);
    let hold = move || {
        let mut released = released.clone();
        async move {
            let _ = released.wait_for(|r| *r).await;
            "released"
        }
    };
    let backend = serve(
        Router::new()
            .route("/hold", get(hold))
            .route("/ok", get(|| async { "ok" }))
            .route("/stream", get(ticks)),
    )
    .await;
    HoldingBackend { backend, release }
}

/// Accepts TCP connections and never answers.
pub async fn silent_backend() -> TestBackend {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    TestBackend { addr, task }
}

/// An address nothing listens on (bound, then released).
pub fn closed_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(1)));
    Client::builder(TokioExecutor::new()).build(connector)
}

/// GET `url`: status and body, bounded by [`REQUEST_TIMEOUT`].
pub async fn get_text(client: &HttpClient, url: &str) -> (StatusCode, String) {
    let uri: Uri = url.parse().unwrap();
    let exchange = async {
        let response = client
            .request(
                axum::http::Request::get(uri)
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| panic!("GET {url} took longer than {REQUEST_TIMEOUT:?}"))
}

/// Send `n` GETs to `url` one after the other; the bodies in order.
pub async fn bodies(client: &HttpClient, url: &str, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let (status, body) = get_text(client, url).await;
        assert!(status.is_success(), "GET {url}: {status} {body}");
        out.push(body);
    }
    out
}

pub fn count(bodies: &[String], name: &str) -> usize {
    bodies.iter().filter(|b| *b == name).count()
}

/// Registers blue and green at `endpoint` and sets `weights`: where most tests start.
pub async fn attach<S: rotor_traffic::TrafficShifter + ?Sized>(
    shifter: &S,
    endpoint: &str,
    blue: SocketAddr,
    green: Option<SocketAddr>,
    weights: rotor_traffic::Weights,
) {
    shifter
        .register(endpoint, blue, green)
        .await
        .unwrap_or_else(|e| panic!("registering {endpoint}: {e}"));
    shifter
        .set_weights(endpoint, weights)
        .await
        .unwrap_or_else(|e| panic!("setting {endpoint}'s weights: {e}"));
}

/// Opens `url` (a stream) and reads its first message: the open body, which keeps the stream
/// open until dropped.
pub async fn open_stream(client: &HttpClient, url: &str) -> axum::body::Body {
    let uri: Uri = url.parse().unwrap();
    let open = async {
        let req = http::Request::get(uri)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = client.request(req).await.expect("stream opens");
        assert_eq!(resp.status(), StatusCode::OK);
        let mut body = axum::body::Body::new(resp.into_body());
        let frame = body.frame().await.expect("a frame").expect("no error");
        assert!(frame.is_data());
        body
    };
    tokio::time::timeout(REQUEST_TIMEOUT, open)
        .await
        .unwrap_or_else(|_| panic!("no first message from {url} within {REQUEST_TIMEOUT:?}"))
}

/// Waits (bounded by [`REQUEST_TIMEOUT`], re-reading every 10 ms) until `endpoint`'s open
/// sessions are `want`: the traffic layer's count follows connections a moment after they end.
pub async fn sessions_become<S: rotor_traffic::TrafficShifter + ?Sized>(
    shifter: &S,
    endpoint: &str,
    want: rotor_traffic::Sessions,
) {
    let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
    loop {
        let have = shifter.sessions(endpoint).await.unwrap();
        if have == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{endpoint}: sessions {have:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What every shifter's session count must show, at `endpoint` whose blue and green stream
/// (`url`): a stream stays on blue after blue's weight goes to 0 (draining moves no open
/// session), a new one goes to green, and blue's count returns to zero once its client leaves.
pub async fn sessions_follow_streams<S: rotor_traffic::TrafficShifter + ?Sized>(
    shifter: &S,
    endpoint: &str,
    url: &str,
) {
    use rotor_traffic::{Sessions, Weights};
    let http = client();
    assert_eq!(
        shifter.sessions(endpoint).await.unwrap(),
        Sessions::default()
    );
    let on_blue = open_stream(&http, url).await;
    sessions_become(shifter, endpoint, Sessions { blue: 1, green: 0 }).await;
    shifter
        .set_weights(endpoint, Weights::green(100).unwrap())
        .await
        .unwrap();
    let _on_green = open_stream(&http, url).await;
    sessions_become(shifter, endpoint, Sessions { blue: 1, green: 1 }).await;
    drop(on_blue);
    sessions_become(shifter, endpoint, Sessions { blue: 0, green: 1 }).await;
}

/// Waits (bounded by [`REQUEST_TIMEOUT`], re-reading every 10 ms) until the requests
/// `endpoint`'s backends have held for `older_than` are `want` (`[blue, green]`) and, when
/// `answering` is given, green's `green_answering` is that.
pub async fn unanswered_become<S: rotor_traffic::TrafficShifter + ?Sized>(
    shifter: &S,
    endpoint: &str,
    older_than: Duration,
    want: [u64; 2],
    answering: Option<Option<bool>>,
) -> rotor_traffic::Unanswered {
    let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
    loop {
        let have = shifter.unanswered(endpoint, older_than).await.unwrap();
        if [have.blue, have.green] == want && answering.is_none_or(|a| a == have.green_answering) {
            return have;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{endpoint}: unanswered for {older_than:?} {have:?}, want {want:?}, green answering \
             {answering:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What every shifter that counts requests must show, at `endpoint` whose green is `green`
/// (at `base`, the endpoint's URL) and 100 % of the traffic: an answered stream is not
/// unanswered however long it stays open; a held request is, once older than the bound asked
/// about and not before; green is not "answering" until it answers another request after the
/// held one was sent, and then is, while a `blind` shifter of the same layer (one that cannot
/// tell) says nothing; the held request is no longer counted once answered.
pub async fn unanswered_follows_held_requests<S: rotor_traffic::TrafficShifter + ?Sized>(
    shifter: &S,
    endpoint: &str,
    green: &HoldingBackend,
    base: &str,
    blind: Option<&S>,
) {
    let http = client();
    let _stream = open_stream(&http, &format!("{base}/stream")).await;
    let hold_url: Uri = format!("{base}/hold").parse().unwrap();
    let held = tokio::spawn({
        let http = http.clone();
        async move {
            let req = http::Request::get(hold_url)
                .body(Full::new(Bytes::new()))
                .unwrap();
            http.request(req).await.map(|r| r.status())
        }
    });
    unanswered_become(shifter, endpoint, Duration::ZERO, [0, 1], None).await;
    let hour = Duration::from_secs(3_600);
    let young = shifter.unanswered(endpoint, hour).await.unwrap();
    assert_eq!(
        [young.blue, young.green],
        [0, 0],
        "a request held for less than the bound is not counted"
    );
    let bound = Duration::from_millis(300);
    let old = unanswered_become(shifter, endpoint, bound, [0, 1], None).await;
    assert_eq!(old.green_answering, Some(false), "{old:?}");
    let (status, _) = get_text(&http, &format!("{base}/ok")).await;
    assert_eq!(status, StatusCode::OK);
    unanswered_become(shifter, endpoint, bound, [0, 1], Some(Some(true))).await;
    if let Some(blind) = blind {
        let seen = blind.unanswered(endpoint, bound).await.unwrap();
        assert_eq!(
            (seen.green, seen.green_answering),
            (1, None),
            "a shifter without the log cannot tell: {seen:?}"
        );
    }
    green.release();
    let status = tokio::time::timeout(REQUEST_TIMEOUT, held)
        .await
        .expect("the held request answers once released")
        .unwrap()
        .expect("answered");
    assert_eq!(status, StatusCode::OK);
    let none = unanswered_become(shifter, endpoint, Duration::ZERO, [0, 0], None).await;
    assert_eq!(none.green_answering, None, "nothing unanswered: {none:?}");
    assert_eq!(
        shifter.sessions(endpoint).await.unwrap().green,
        1,
        "the stream is still open on green"
    );
}

/// How many of 100 evenly spread queries of `name` the simulator answers with `ip`: the share
/// of resolvers a DNS shifter's split sends to `ip`.
pub fn answered_with(sim: &rotor_sim::Sim, name: &str, ip: &str) -> usize {
    let answer = sim.resolve(name).expect("the name resolves");
    let ip: std::net::IpAddr = ip.parse().unwrap();
    (0..100)
        .filter(|i| answer.pick(f64::from(*i) / 100.0) == Some(ip))
        .count()
}
