//! Serving a router over TCP the way an API server must: with TCP_NODELAY, so small writes (a
//! watch event, a short response) leave at once instead of waiting out Nagle's algorithm and the
//! peer's delayed ACK (a steady 40 ms on Linux).

use axum::serve::ListenerExt;

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY");
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves `router` on `listener` for as long as the task runs.
pub async fn serve(listener: tokio::net::TcpListener, router: axum::Router) -> std::io::Result<()> {
    serve_until(listener, router, std::future::pending()).await
}
