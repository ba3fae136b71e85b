//! Serving a router over TCP the way an API server must: with TCP_NODELAY, so small writes (a
//! watch event, a short response) leave at once instead of waiting out Nagle's algorithm and the
//! peer's delayed ACK (a steady 40 ms on Linux); and with a shutdown that ends: open streams
//! (watches) end when it starts, and connections still open after a grace are dropped.

use std::future::IntoFuture;
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::connect_info::Connected;
use axum::response::Response;
use axum::serve::{IncomingStream, Listener, ListenerExt};
use futures::StreamExt;
use tokio::sync::watch;

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, ends every
/// streaming response (watches: clients resume elsewhere from their last resourceVersion), lets
/// the other responses finish for at most `grace` and returns.
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY");
        }
    });
    serve_listener::<_, std::net::SocketAddr>(listener, router, shutdown, grace).await
}

/// [`serve_until`] over TLS: requests find their connection's [`Peer`](crate::tls::Peer) (and
/// the user of its client certificate) as `ConnectInfo<Peer>`.
pub async fn serve_tls_until(
    listener: tokio::net::TcpListener,
    tls: std::sync::Arc<rustls::ServerConfig>,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let listener = crate::tls::TlsListener::new(listener, tls)?;
    serve_listener::<_, crate::tls::Peer>(listener, router, shutdown, grace).await
}

/// [`serve_until`] over any axum [`Listener`] whose peers are TCP addresses: a listener fed by
/// another accept loop (the simulator's one socket for every cluster's traffic). TCP_NODELAY is
/// the feeder's to set.
pub async fn serve_incoming_until<L>(
    listener: L,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()>
where
    L: Listener<Addr = std::net::SocketAddr>,
{
    // axum knows a peer's address from its own listeners and from tapped ones.
    let listener = listener.tap_io(|_| ());
    serve_listener::<_, std::net::SocketAddr>(listener, router, shutdown, grace).await
}

async fn serve_listener<L, C>(
    listener: L,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()>
where
    L: Listener,
    L::Addr: std::fmt::Debug,
    C: for<'a> Connected<IncomingStream<'a, L>>,
{
    let (stop_tx, stop_rx) = watch::channel(false);
    let router = router.layer(axum::middleware::map_response(move |res: Response| {
        let stop = stop_rx.clone();
        async move { end_streams_on(stop, res) }
    }));
    let stopping = stopped(stop_tx.subscribe());
    let server = axum::serve(listener, router.into_make_service_with_connect_info::<C>())
        .with_graceful_shutdown(stopping)
        .into_future();
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result,
        () = shutdown => {}
    }
    let _ = stop_tx.send(true);
    match tokio::time::timeout(grace, server).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(
                ?grace,
                "connections still open after the shutdown grace: dropped"
            );
            Ok(())
        }
    }
}

/// Serves `router` on `listener` for as long as the task runs.
pub async fn serve(listener: tokio::net::TcpListener, router: axum::Router) -> std::io::Result<()> {
    serve_until(listener, router, std::future::pending(), Duration::ZERO).await
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|v| *v).await;
}

/// A response of unknown length (a watch, a chunked stream) ends when the server stops;
/// responses of known length are left whole.
fn end_streams_on(stop: watch::Receiver<bool>, res: Response) -> Response {
    if res.body().size_hint().exact().is_some() {
        return res;
    }
    let (parts, body) = res.into_parts();
    let body = body.into_data_stream().take_until(stopped(stop));
    Response::from_parts(parts, Body::from_stream(body))
}
