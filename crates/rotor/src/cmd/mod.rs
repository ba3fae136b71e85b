//! One module per subcommand.

pub mod bench;
mod bench_dashboard;
mod bench_discovery;
mod bench_fleet;
mod bench_migrate;
mod bench_rollback;
mod controller_flags;
pub mod controllers;
pub mod demo;
pub mod kubeconfig;
pub mod migrate;
mod oidc_flags;
pub mod rollout;
mod rollout_plan;
pub mod serve;
pub mod sim;

use std::net::SocketAddr;

/// A figure for a report, to `digits` decimals.
pub(crate) fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Binds `addr` and serves `router` until the process ends. Returns the bound address.
pub async fn bind(addr: &str) -> anyhow::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
