//! The plain-HTTP client the embedded router and the demo's load share: many hosts, each asked
//! now and then.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// A client of plain-HTTP hosts.
pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// How long an idle connection is kept.
const IDLE_CONNECTION: Duration = Duration::from_secs(1);

/// A client whose connections are attempted for at most `connect` and dropped after a second
/// idle, reaped by a timer. hyper's default keeps an idle connection 90 s and drops it only
/// when its host is asked again: spread over 10,000 clusters, the load kept thousands open
/// (filling HAProxy's `maxconn`), and the router one to each backend, two descriptors each
/// with both ends in one rehearsal, until it ran out.
pub(crate) fn short_lived(connect: Duration) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect));
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(IDLE_CONNECTION)
        .build(connector)
}
