//! One listening socket for the traffic of every simulated cluster. Each cluster answers on a
//! loopback address of its own (127.x.y.z, one port for all), as a load balancer in front of
//! the cluster would see its applications; a listening socket per cluster cost a descriptor
//! each, 10,000 of them for a 10,000-cluster rehearsal. Here one socket listens on every
//! address of the loopback device (`0.0.0.0` bound to device `lo`), and each accepted
//! connection goes to the cluster whose address it was made to: the accepted socket's local
//! address tells.
//!
//! A connection to an address no cluster holds (not created yet, or deleted) is reset at once,
//! as a connect to a closed port is refused.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Accepted connections waiting for one cluster's server; beyond, new ones are reset (a full
/// accept queue).
const QUEUE: usize = 1024;
/// How many connections the kernel queues for the whole fleet before they are accepted.
const BACKLOG: i32 = 4096;

type Accepted = (TcpStream, SocketAddr);
type Routes = RwLock<HashMap<IpAddr, mpsc::Sender<Accepted>>>;

/// The shared socket and where its connections go.
pub struct Front {
    port: u16,
    routes: Arc<Routes>,
    accepting: tokio::task::JoinHandle<()>,
    /// Where the socket and every cluster's server run (see `SimConfig::traffic_runtime`).
    runtime: tokio::runtime::Handle,
}

impl Drop for Front {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl Front {
    /// Listens on `port` (0: a free one) of every loopback address, accepting on `runtime`
    /// (None: the caller's).
    pub async fn bind(port: u16, runtime: Option<tokio::runtime::Handle>) -> anyhow::Result<Front> {
        let bound = loopback_listener(port)
            .map_err(|e| anyhow::anyhow!("binding the traffic socket on port {port}: {e}"))?;
        let port = bound.local_addr()?.port();
        let routes = Arc::new(Routes::default());
        let runtime = runtime.unwrap_or_else(tokio::runtime::Handle::current);
        let accepted = routes.clone();
        // Registered with the runtime that polls it: its readiness comes from that runtime's
        // driver, not from a busier one's.
        let accepting = runtime.spawn(async move {
            match TcpListener::from_std(bound) {
                Ok(listener) => accept_loop(listener, accepted).await,
                Err(e) => tracing::error!(error = %e, "the traffic socket cannot be polled"),
            }
        });
        Ok(Front {
            port,
            routes,
            accepting,
            runtime,
        })
    }

    /// Runs `task` where the socket's connections are served.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime.spawn(task)
    }

    /// The port every cluster's address answers on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// From now on connections made to `ip` come out of the returned listener; until the
    /// [`Route`] is dropped.
    pub fn attach(&self, ip: Ipv4Addr) -> (Attached, Route) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let ip = IpAddr::V4(ip);
        self.table().insert(ip, tx);
        let attached = Attached {
            incoming: rx,
            local: SocketAddr::new(ip, self.port),
        };
        let route = Route {
            ip,
            routes: self.routes.clone(),
        };
        (attached, route)
    }

    fn table(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<IpAddr, mpsc::Sender<Accepted>>> {
        self.routes.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// A cluster's hold on its address: dropping it refuses new connections to the address
/// (those already handed over are its server's to finish).
pub struct Route {
    ip: IpAddr,
    routes: Arc<Routes>,
}

impl Drop for Route {
    fn drop(&mut self) {
        let mut routes = self.routes.write().unwrap_or_else(|p| p.into_inner());
        routes.remove(&self.ip);
    }
}

/// The connections made to one cluster's address, as an axum listener.
pub struct Attached {
    incoming: mpsc::Receiver<Accepted>,
    local: SocketAddr,
}

impl axum::serve::Listener for Attached {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        match self.incoming.recv().await {
            Some(accepted) => accepted,
            // The route is gone: the cluster is draining and its server accepts no more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// `0.0.0.0:port` bound to the loopback device: every 127.x.y.z, and nothing from the network.
/// Where the device cannot be named (not Linux, or refused), the wildcard socket is kept and
/// connections that did not arrive on a loopback address are reset by the accept loop.
fn loopback_listener(port: u16) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(e) = socket.bind_device(Some(b"lo")) {
        tracing::warn!(error = %e, "the traffic socket cannot be bound to device lo; non-loopback connections are reset instead");
    }
    socket.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

async fn accept_loop(listener: TcpListener, routes: Arc<Routes>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: wait rather than spin.
                tracing::debug!(error = %e, "accepting traffic");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        let route = local
            .ip()
            .is_loopback()
            .then(|| {
                routes
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&local.ip())
                    .cloned()
            })
            .flatten();
        let refused = match route {
            Some(server) => {
                let _ = stream.set_nodelay(true);
                server.try_send((stream, peer)).err().map(|e| match e {
                    mpsc::error::TrySendError::Full((s, _))
                    | mpsc::error::TrySendError::Closed((s, _)) => s,
                })
            }
            None => Some(stream),
        };
        if let Some(stream) = refused {
            reset(stream);
        }
    }
}

/// Closes with a reset, as a refused connection looks to its client.
fn reset(stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener;
    use tokio::io::AsyncReadExt;

    const LIMIT: Duration = Duration::from_secs(10);

    /// Whether the connection to `addr` is closed by the other end before a byte comes.
    async fn closed_at_once(addr: SocketAddr) -> bool {
        let Ok(mut s) = TcpStream::connect(addr).await else {
            return true;
        };
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(LIMIT, s.read(&mut byte)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    #[tokio::test]
    async fn each_connection_goes_to_the_address_it_was_made_to() {
        let front = Front::bind(0, None).await.expect("bind");
        let (a, b) = (Ipv4Addr::new(127, 3, 0, 1), Ipv4Addr::new(127, 3, 0, 2));
        let (mut to_a, route_a) = front.attach(a);
        let (mut to_b, _route_b) = front.attach(b);
        let addr = |ip| SocketAddr::from((ip, front.port()));
        assert_eq!(to_a.local_addr().expect("local"), addr(a));

        for (ip, attached) in [(b, &mut to_b), (a, &mut to_a)] {
            let _client = TcpStream::connect(addr(ip)).await.expect("connect");
            let (accepted, _) = tokio::time::timeout(LIMIT, attached.accept())
                .await
                .expect("handed over");
            assert_eq!(accepted.local_addr().expect("local"), addr(ip));
        }
        // No cluster holds this one, and once a cluster lets go of its address, neither.
        assert!(closed_at_once(addr(Ipv4Addr::new(127, 3, 0, 3))).await);
        drop(route_a);
        assert!(closed_at_once(addr(a)).await);
    }
}
