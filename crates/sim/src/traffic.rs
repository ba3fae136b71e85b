//! Simulated application traffic: each member cluster answers HTTP on its own loopback address.
//! `GET /{namespace}/{service}` is 200 when a workload selected by the Service has ready replicas,
//! 503 otherwise — what a load balancer in front of the cluster would see. Under the
//! `TrafficErrors` fault every request is 503.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::routing::get;
use http::StatusCode;
use rotor_apiserver::{ApiServer, ListOptions};
use serde_json::Value;
use tokio::sync::watch;

use crate::faults::{Fault, FaultSet};

/// Is some ready workload behind `namespace/service`?
pub async fn service_ready(
    server: &ApiServer,
    namespace: &str,
    service: &str,
) -> Result<bool, String> {
    let services = server
        .resource("", "v1", "services")
        .map_err(|e| e.to_string())?;
    let svc = server
        .get(&services, Some(namespace), service)
        .await
        .map_err(|e| e.message)?;
    let Some(selector) = svc.pointer("/spec/selector").and_then(Value::as_object) else {
        return Ok(false);
    };
    for plural in ["deployments", "statefulsets", "daemonsets"] {
        let res = server
            .resource("apps", "v1", plural)
            .map_err(|e| e.to_string())?;
        let list = server
            .list(&res, Some(namespace), &ListOptions::default())
            .await
            .map_err(|e| e.message)?;
        for w in list["items"].as_array().into_iter().flatten() {
            let labels = w
                .pointer("/spec/template/metadata/labels")
                .and_then(Value::as_object);
            let selected =
                labels.is_some_and(|l| selector.iter().all(|(k, v)| l.get(k) == Some(v)));
            let ready = w
                .pointer("/status/readyReplicas")
                .or_else(|| w.pointer("/status/numberReady"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if selected && ready > 0 {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

pub async fn serve(
    server: Arc<ApiServer>,
    faults: watch::Receiver<FaultSet>,
    addr: SocketAddr,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let app =
        axum::Router::new()
            .route(
                "/{namespace}/{service}",
                get(
                    |State(server): State<Arc<ApiServer>>,
                     Path((ns, svc)): Path<(String, String)>| async move {
                        match service_ready(&server, &ns, &svc).await {
                            Ok(true) => (StatusCode::OK, "ok\n").into_response(),
                            Ok(false) => (StatusCode::SERVICE_UNAVAILABLE, "no ready endpoints\n")
                                .into_response(),
                            Err(e) => {
                                (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response()
                            }
                        }
                    },
                ),
            )
            .with_state(server)
            .layer(axum::middleware::from_fn(
                move |req: Request, next: Next| {
                    let broken = faults.borrow().contains(&Fault::TrafficErrors);
                    async move {
                        if broken {
                            crate::faults::traffic_error()
                        } else {
                            next.run(req).await
                        }
                    }
                },
            ));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding traffic listener {addr}: {e}"))?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = rotor_apiserver::http::serve(listener, app).await;
    });
    Ok((local, task))
}
