//! A lifecycle hook receiver on a loopback port, as a team would write one: it verifies the
//! `Rotor-Signature` of every call (HMAC-SHA256 with the shared key, the timestamp within five
//! minutes), refuses a signature it has seen before (a replay inside the window), and answers
//! what its policy says. `rotor demo --inject hook-deny` runs one; the end-to-end tests too.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use rotor_controllers::swap::hooks::signature::{self, DEFAULT_TOLERANCE_SECONDS};
use rotor_controllers::swap::hooks::{HookReply, HookRequest};

/// What the receiver does with a call whose signature holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Reply 200 with this answer.
    Reply(HookReply),
    /// Reply with this HTTP status and no answer.
    Status(u16),
    /// Hold the request this long before answering Allow (longer than the hook's timeout: it
    /// times out).
    Hang(Duration),
}

/// The receiver's policy: the answer to a verified call.
pub type Policy = Box<dyn Fn(&HookRequest) -> Answer + Send + Sync>;

/// One request the receiver got, verified or not.
#[derive(Clone, Debug)]
pub struct Received {
    /// The `Rotor-Signature` header as sent.
    pub signature: String,
    pub body: Vec<u8>,
    /// The request, when its signature held and its body parsed.
    pub request: Option<HookRequest>,
    /// What it answered: the HTTP status, and the answer given with a 200.
    pub status: u16,
    pub answer: Option<HookReply>,
    /// When it arrived.
    pub at: std::time::Instant,
}

struct Inner {
    key: Vec<u8>,
    policy: Policy,
    seen: Mutex<HashSet<String>>,
    received: Mutex<Vec<Received>>,
}

/// A running receiver; it stops when dropped.
pub struct HookReceiver {
    /// Where to POST (`http://127.0.0.1:PORT/hook`).
    pub url: String,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HookReceiver {
    /// Listens on a free loopback port, verifying with `key` and answering by `policy`.
    pub async fn start(key: &[u8], policy: Policy) -> std::io::Result<Self> {
        let inner = Arc::new(Inner {
            key: key.to_vec(),
            policy,
            seen: Mutex::default(),
            received: Mutex::default(),
        });
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(take))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(HookReceiver { url, inner, task })
    }

    /// Every request so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.inner.received).clone()
    }

    /// The verified calls so far, oldest first.
    pub fn calls(&self) -> Vec<HookRequest> {
        self.received()
            .into_iter()
            .filter_map(|r| r.request)
            .collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

async fn take(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, String) {
    let at = std::time::Instant::now();
    let header = headers
        .get(signature::HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let (status, request, answer, hold) = judge(&inner, &header, &body);
    let text = match (&answer, &request) {
        (Some(a), _) => serde_json::to_string(a).unwrap_or_default(),
        (None, Some(_)) => String::new(),
        (None, None) => "refused: the signature does not hold, or was seen before".into(),
    };
    // Recorded before any hold: a test sees a call the moment it arrived.
    lock(&inner.received).push(Received {
        signature: header,
        body: body.to_vec(),
        request,
        status,
        answer,
        at,
    });
    if let Some(hold) = hold {
        tokio::time::sleep(hold).await;
    }
    (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), text)
}

/// (status, the verified request, the answer given with a 200, how long to hold the reply).
fn judge(
    inner: &Inner,
    header: &str,
    body: &[u8],
) -> (
    u16,
    Option<HookRequest>,
    Option<HookReply>,
    Option<Duration>,
) {
    let now = unix_now();
    if signature::verify(&inner.key, header, body, now, DEFAULT_TOLERANCE_SECONDS).is_err() {
        return (401, None, None, None);
    }
    if !lock(&inner.seen).insert(header.to_string()) {
        return (409, None, None, None);
    }
    let Ok(request) = serde_json::from_slice::<HookRequest>(body) else {
        return (400, None, None, None);
    };
    match (inner.policy)(&request) {
        Answer::Reply(reply) => (200, Some(request), Some(reply), None),
        Answer::Status(status) => (status, Some(request), None, None),
        Answer::Hang(d) => (200, Some(request), Some(HookReply::Allow), Some(d)),
    }
}

/// Stores `key` where `at` points in the control plane (its namespace created if missing), as
/// an operator would before naming it in a hook's `secretRef`.
pub async fn store_signing_key(
    client: &kube::Client,
    at: &rotor_api::SecretKeyRef,
    key: &[u8],
) -> anyhow::Result<()> {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{Namespace, Secret};
    use kube::api::{Api, PostParams};
    let namespace = at.namespace();
    let mut ns = Namespace::default();
    ns.metadata.name = Some(namespace.to_string());
    match Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => anyhow::bail!("creating namespace {namespace}: {e}"),
    }
    let mut secret = Secret::default();
    secret.metadata.name = Some(at.name.clone());
    secret.metadata.namespace = Some(namespace.to_string());
    secret.data = Some([(at.key.clone(), ByteString(key.to_vec()))].into());
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .map_err(|e| anyhow::anyhow!("creating Secret {namespace}/{}: {e}", at.name))?;
    Ok(())
}
