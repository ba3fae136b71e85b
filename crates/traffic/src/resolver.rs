//! Names resolved as a population of caching resolvers would: each query of a weighted name is
//! answered with one address ([`Records::query`], as Route 53, Cloud DNS and Traffic Manager
//! answer), and each resolver keeps its answer for the TTL. [`RESOLVERS`] of them take the
//! lookups in turn, so the load's traffic splits by the weights to the extent that many
//! clients behind different resolvers would, and follows a change only once the TTLs run out.
//!
//! This is what `rotor demo` resolves the DNS shifters' names with (over the simulator's
//! records); a name the records do not know falls through to no answer, not to the system's.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};

/// Where names are looked up: one query, one answer.
pub trait Records: Send + Sync + 'static {
    /// The address a query of `name` is answered with, and how long it may be cached; `None`
    /// when the name does not resolve.
    fn query(&self, name: &str) -> Option<(IpAddr, Duration)>;
}

/// Caching resolvers that take lookups in turn: few enough that each sees steady traffic,
/// enough that a 10 % share is a share of them.
pub const RESOLVERS: usize = 16;

/// One cache: each name's answer and when it expires.
type Cache = Mutex<HashMap<String, (IpAddr, Instant)>>;

/// [`RESOLVERS`] caches over one set of [`Records`].
pub(crate) struct Caches {
    records: Arc<dyn Records>,
    caches: Vec<Cache>,
    next: AtomicUsize,
}

impl Caches {
    pub(crate) fn new(records: Arc<dyn Records>) -> Self {
        Caches {
            records,
            caches: (0..RESOLVERS).map(|_| Cache::default()).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// `name` through the next resolver: its cached answer while the TTL lasts, else a query.
    fn lookup(&self, name: &str) -> Option<IpAddr> {
        self.lookup_at(name, Instant::now())
    }

    fn lookup_at(&self, name: &str, now: Instant) -> Option<IpAddr> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.caches.len();
        let mut cache = self.caches[i].lock().unwrap_or_else(|p| p.into_inner());
        if let Some((ip, until)) = cache.get(name)
            && *until > now
        {
            return Some(*ip);
        }
        let (ip, ttl) = self.records.query(name)?;
        cache.insert(name.to_string(), (ip, now + ttl));
        Some(ip)
    }
}

/// The resolver of the load's HTTP client: the system's, or [`Caches`] over given records.
#[derive(Clone)]
pub(crate) enum Names {
    System(GaiResolver),
    Cached(Arc<Caches>),
}

type Lookup = Pin<Box<dyn Future<Output = std::io::Result<std::vec::IntoIter<SocketAddr>>> + Send>>;

impl tower_service::Service<Name> for Names {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Lookup;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self {
            Names::System(gai) => gai.poll_ready(cx),
            Names::Cached(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, name: Name) -> Lookup {
        match self {
            Names::System(gai) => {
                let lookup = gai.call(name);
                Box::pin(async move { Ok(lookup.await?.collect::<Vec<_>>().into_iter()) })
            }
            Names::Cached(caches) => {
                // The port is the URL's: the connector sets it.
                let answer = caches
                    .lookup(name.as_str())
                    .map(|ip| vec![SocketAddr::new(ip, 0)].into_iter())
                    .ok_or_else(|| {
                        std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            format!("{name} does not resolve"),
                        )
                    });
                Box::pin(std::future::ready(answer))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers `app.test` with the address set last, counting the queries.
    struct Fixed {
        ip: Mutex<IpAddr>,
        queries: AtomicUsize,
    }

    impl Records for Fixed {
        fn query(&self, name: &str) -> Option<(IpAddr, Duration)> {
            self.queries.fetch_add(1, Ordering::Relaxed);
            let ip = *self.ip.lock().unwrap();
            (name == "app.test").then_some((ip, Duration::from_secs(10)))
        }
    }

    #[test]
    fn each_resolver_keeps_its_answer_for_the_ttl_then_asks_again() {
        let records = Arc::new(Fixed {
            ip: Mutex::new([127, 1, 0, 1].into()),
            queries: AtomicUsize::new(0),
        });
        let caches = Caches::new(records.clone());
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        for _ in 0..RESOLVERS * 3 {
            assert_eq!(
                caches.lookup_at("app.test", at(0)),
                Some([127, 1, 0, 1].into())
            );
        }
        assert_eq!(records.queries.load(Ordering::Relaxed), RESOLVERS);
        *records.ip.lock().unwrap() = [127, 1, 0, 2].into();
        assert_eq!(
            caches.lookup_at("app.test", at(9)),
            Some([127, 1, 0, 1].into())
        );
        for _ in 0..RESOLVERS {
            assert_eq!(
                caches.lookup_at("app.test", at(10)),
                Some([127, 1, 0, 2].into())
            );
        }
        assert_eq!(caches.lookup_at("other.test", at(10)), None);
    }
}
