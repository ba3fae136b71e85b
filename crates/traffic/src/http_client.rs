//! The plain-HTTP client the embedded router and the demo's load share: many hosts, each asked
//! now and then.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::GaiResolver;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::resolver::{Caches, Names, Records};

/// A client of plain-HTTP hosts.
pub(crate) type HttpClient = Client<HttpConnector<Names>, Full<Bytes>>;

/// How long an idle connection is kept.
const IDLE_CONNECTION: Duration = Duration::from_secs(1);

/// A client whose connections are attempted for at most `connect` and dropped after a second
/// idle, reaped by a timer. hyper's default keeps an idle connection 90 s and drops it only
/// when its host is asked again: spread over 10,000 clusters, the load kept thousands open
/// (filling HAProxy's `maxconn`), and the router one to each backend, two descriptors each
/// with both ends in one rehearsal, until it ran out.
pub(crate) fn short_lived(connect: Duration) -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(IDLE_CONNECTION)
        .build(connector(Names::System(GaiResolver::new()), connect))
}

/// A client that resolves names through caching resolvers over `records` and opens a
/// connection per request: a kept connection would go on reaching the address it was opened
/// to whatever the records say, and a DNS shift would never reach it.
pub(crate) fn resolving(connect: Duration, records: Arc<dyn Records>) -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(connector(
            Names::Cached(Arc::new(Caches::new(records))),
            connect,
        ))
}

fn connector(names: Names, connect: Duration) -> HttpConnector<Names> {
    let mut connector = HttpConnector::new_with_resolver(names);
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect));
    connector
}
