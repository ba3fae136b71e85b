//! Shared by the integration tests: start servers on loopback, build clients, wait with bounds.
#![allow(dead_code)]

pub mod as_user;
pub mod controllers;
pub mod fleet;
pub mod helm;
pub mod kubectl;
pub mod lease;
pub mod process;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rotor_apiserver::ApiServer;
use rotor_store::DynStore;

/// A control plane served over TLS on an ephemeral loopback port, as `rotor serve` serves it:
/// a CA and a serving certificate made for it, its kubeconfig trusting the CA.
pub struct TestServer {
    pub addr: SocketAddr,
    pub token: String,
    pub server: Arc<ApiServer>,
    pub client: kube::Client,
    /// The CA of the serving certificate (PEM).
    pub ca: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    pub fn kubeconfig(&self) -> String {
        let server = format!("https://{}", self.addr);
        rotor::kubeconfig::with_token("test", &server, Some(&self.ca), &self.token)
    }
}

/// The TLS configuration of a test server: a fresh CA, a certificate it signs for loopback.
fn test_tls() -> (String, Arc<rustls::ServerConfig>) {
    use rotor_apiserver::tls::{self, generate};
    let ca = generate::certificate_authority().expect("CA");
    let serving = generate::serving(&ca, &["127.0.0.1".to_string()]).expect("certificate");
    let config = tls::server_config(&tls::ServingPem {
        certificate: &serving.certificate,
        key: &serving.key,
        client_ca: Some(&ca.certificate),
    })
    .expect("TLS configuration");
    (ca.certificate, config)
}

pub async fn start(store: DynStore) -> TestServer {
    let token = rotor_sim::random_token();
    let server =
        rotor::controlplane::control_plane(store, rotor::controlplane::admin_only(token.clone()))
            .await
            .expect("control plane starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = server.clone().router();
    let (ca, tls) = test_tls();
    let task = tokio::spawn(async move {
        let forever = std::future::pending();
        let _ =
            rotor_apiserver::http::serve_tls_until(listener, tls, router, forever, Duration::ZERO)
                .await;
    });
    let server_url = format!("https://{addr}");
    let kubeconfig = rotor::kubeconfig::with_token("test", &server_url, Some(&ca), &token);
    let client = rotor::client_for(&kubeconfig).await.expect("client");
    TestServer {
        addr,
        token,
        server,
        client,
        ca,
        task,
    }
}

pub fn memory() -> DynStore {
    Arc::new(rotor_store::memory::MemoryStore::default())
}

pub fn sqlite(path: &std::path::Path) -> DynStore {
    Arc::new(rotor_store::sqlite::SqliteStore::open(path).expect("sqlite opens"))
}

/// The SQLite store at `path` once the server that held it has let go: a stopped test server's
/// connection tasks drop their handles asynchronously, and the file's lock goes with the last.
pub async fn sqlite_reopened(path: &std::path::Path) -> DynStore {
    eventually(
        Duration::from_secs(10),
        "the previous server to release the SQLite file",
        || async {
            match rotor_store::sqlite::SqliteStore::open(path) {
                Ok(store) => Some(Arc::new(store) as DynStore),
                Err(rotor_store::StoreError::Locked { .. }) => None,
                Err(e) => panic!("sqlite opens: {e}"),
            }
        },
    )
    .await
}

/// A fresh etcd process; `None` (skip) where etcd is not installed, a failure in CI, where the
/// test script installs it.
pub async fn etcd_process() -> Option<rotor_test_support::etcd::EtcdProcess> {
    rotor_test_support::etcd::for_test().await
}

/// The store `rotor serve --store etcd:URL` opens.
pub async fn etcd(url: &str) -> DynStore {
    rotor::controlplane::open_store(&format!("etcd:{url}"))
        .await
        .expect("etcd store opens")
}

/// A client of the control plane whose admin kubeconfig is at `path`.
pub async fn client_from(path: &std::path::Path) -> kube::Client {
    let yaml = std::fs::read_to_string(path).expect("kubeconfig");
    rotor::client_for(&yaml).await.expect("client")
}

/// Sends one request with `body` as JSON of `content_type`, bounded: `Ok` with the object, or
/// the Status the server refused it with.
pub async fn send(
    client: &kube::Client,
    method: &str,
    uri: &str,
    content_type: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, Box<kube::core::Status>> {
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .body(serde_json::to_vec(body).expect("body"))
        .expect("request");
    let call = client.request::<serde_json::Value>(req);
    match tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("bounded")
    {
        Ok(v) => Ok(v),
        Err(kube::Error::Api(status)) => Err(status),
        Err(other) => panic!("{method} {uri}: {other}"),
    }
}

/// [`send`] of a GET: the object, or the Status (404 where nothing was written).
pub async fn get(
    client: &kube::Client,
    uri: &str,
) -> Result<serde_json::Value, Box<kube::core::Status>> {
    send(
        client,
        "GET",
        uri,
        "application/json",
        &serde_json::json!({}),
    )
    .await
}

/// The Events regarding the object named `name`, once every Event the rehearsal's controllers
/// recorded so far was posted (they post in the background).
pub async fn events_regarding(
    r: &rotor::rehearsal::Rehearsal,
    name: &str,
) -> Vec<k8s_openapi::api::events::v1::Event> {
    use k8s_openapi::api::events::v1::Event;
    let within = Duration::from_secs(30);
    assert!(
        r.events_posted(within).await,
        "events posted within {within:?}"
    );
    let events: kube::Api<Event> = kube::Api::all(r.client.clone());
    let list = events.list(&Default::default()).await.expect("events");
    list.items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|o| o.name.as_deref()) == Some(name))
        .collect()
}

/// [`events_regarding`] as (reason, Warning?, note).
pub async fn events_of(r: &rotor::rehearsal::Rehearsal, name: &str) -> Vec<(String, bool, String)> {
    events_regarding(r, name)
        .await
        .into_iter()
        .map(|e| {
            (
                e.reason.unwrap_or_default(),
                e.type_.as_deref() == Some("Warning"),
                e.note.unwrap_or_default(),
            )
        })
        .collect()
}

/// Polls `check` until it returns Some, failing the test after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
