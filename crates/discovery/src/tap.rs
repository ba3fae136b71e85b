//! An activity tap around an instance's client: records when each watched kind last received a
//! successful answer or any bytes of one. kube-runtime's watcher consumes bookmarks without
//! surfacing them, so this is how the watchdog learns that a quiet watch is still alive, and how
//! a watch error is known to be healed once the watcher has reconnected. It also keeps lists off
//! the pooled connections that watches use (see `call`).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Request, Response};
use http_body::{Frame, SizeHint};
use kube::client::Body;

use crate::objects::Kind;

/// Milliseconds on a process-wide monotonic clock (cheap to store in an atomic).
pub(crate) fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    // Start at 1 so that 0 means "never".
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

pub(crate) fn ms_between(earlier: u64, later: u64) -> Duration {
    Duration::from_millis(later.saturating_sub(earlier))
}

/// Last successful activity per watched kind (index `Kind as usize`), and for anything else
/// (the `/version` probe) at the end.
#[derive(Debug, Default)]
pub(crate) struct Activity([AtomicU64; 6]);

impl Activity {
    pub(crate) fn touch(&self, slot: usize) {
        self.0[slot].store(now_ms(), Ordering::Relaxed);
    }

    pub(crate) fn kind(&self, k: Kind) -> u64 {
        self.0[k as usize].load(Ordering::Relaxed)
    }

    /// The most recent activity of any kind.
    pub(crate) fn latest(&self) -> u64 {
        self.0
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
    }
}

/// `client` with every successful answer recorded in `activity`.
pub(crate) fn client(client: kube::Client, activity: Arc<Activity>) -> kube::Client {
    let ns = client.default_namespace().to_string();
    kube::Client::new(
        Tap {
            inner: client,
            activity,
        },
        ns,
    )
}

#[derive(Clone)]
struct Tap {
    inner: kube::Client,
    activity: Arc<Activity>,
}

impl tower::Service<Request<Body>> for Tap {
    type Response = Response<TapBody>;
    type Error = kube::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        if !is_watch(req.uri()) {
            // A list answer can be large, and the connection that carried it would keep its
            // grown read buffer while pooled and then under a long watch (about 1 KiB per
            // listed object, measured): such requests get a connection of their own.
            req.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
        let slot = Kind::of_path(req.uri().path()).map_or(5, |k| k as usize);
        let (inner, activity) = (self.inner.clone(), self.activity.clone());
        Box::pin(async move {
            let resp = inner.send(req).await?;
            // Only success counts: a 503 from a failing load balancer is not a live API.
            let tap = resp.status().is_success().then(|| {
                activity.touch(slot);
                (activity, slot)
            });
            Ok(resp.map(|inner| TapBody { inner, tap }))
        })
    }
}

fn is_watch(uri: &http::Uri) -> bool {
    uri.query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"))
}

struct TapBody {
    inner: Body,
    tap: Option<(Arc<Activity>, usize)>,
}

impl http_body::Body for TapBody {
    type Data = Bytes;
    type Error = kube::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, kube::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let (Poll::Ready(Some(Ok(_))), Some((activity, slot))) = (&polled, &self.tap) {
            activity.touch(*slot);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_are_told_from_lists() {
        let w = |s: &str| is_watch(&s.parse::<http::Uri>().expect("uri"));
        assert!(w(
            "/apis/apps/v1/deployments?allowWatchBookmarks=true&watch=true&timeoutSeconds=290"
        ));
        assert!(!w("/apis/apps/v1/deployments?limit=500&resourceVersion=0"));
        assert!(!w("/version"));
    }
}
