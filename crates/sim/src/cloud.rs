//! The simulated cloud: creates and deletes member clusters on request, with latency and failure
//! rates, idempotent by name and token (a retried create never yields a second cluster). The `sim`
//! provider reaches it over HTTP at `/cloud/clusters`, like a real cloud API.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::Sim;

#[derive(Debug, Clone)]
pub struct CloudConfig {
    pub create_latency: Duration,
    pub delete_latency: Duration,
    /// Probability in [0, 1] that a create ends Failed.
    pub create_failure_rate: f64,
}

impl Default for CloudConfig {
    fn default() -> Self {
        CloudConfig {
            create_latency: Duration::from_millis(500),
            delete_latency: Duration::from_millis(200),
            create_failure_rate: 0.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CloudClusterState {
    Creating,
    Running,
    Deleting,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudCluster {
    pub name: String,
    pub kubernetes_version: String,
    pub state: CloudClusterState,
    pub idempotency_token: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRequest {
    pub name: String,
    /// `1.35`
    pub kubernetes_version: String,
    pub idempotency_token: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CloudError {
    #[error("cluster {name} already exists with another idempotency token")]
    TokenMismatch { name: String },
    #[error("cluster {name} not found")]
    NotFound { name: String },
    #[error("cluster {name} is {state:?}, not Running: no credentials yet")]
    NotRunning {
        name: String,
        state: CloudClusterState,
    },
    #[error(
        "invalid kubernetesVersion {version:?} for cluster {name}: expected 1.<minor> with a minor rotor simulates"
    )]
    BadVersion { name: String, version: String },
}

pub struct SimCloud {
    config: CloudConfig,
    clusters: Mutex<BTreeMap<String, CloudCluster>>,
    sim: Weak<Sim>,
}

fn parse_minor(version: &str) -> Option<u32> {
    let v = version.trim_start_matches('v');
    let minor = v.strip_prefix("1.")?.split('.').next()?.parse().ok()?;
    rotor_openapi::SUPPORTED_MINORS
        .contains(&minor)
        .then_some(minor)
}

impl SimCloud {
    pub(crate) fn new(config: CloudConfig, sim: Weak<Sim>) -> Self {
        SimCloud {
            config,
            clusters: Mutex::new(BTreeMap::new()),
            sim,
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, CloudCluster>> {
        self.clusters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Requests a cluster. The same name and token return the existing request.
    pub fn create(&self, req: CreateRequest) -> Result<CloudCluster, CloudError> {
        let minor = parse_minor(&req.kubernetes_version).ok_or_else(|| CloudError::BadVersion {
            name: req.name.clone(),
            version: req.kubernetes_version.clone(),
        })?;
        let mut table = self.table();
        if let Some(existing) = table.get(&req.name) {
            if existing.idempotency_token == req.idempotency_token {
                return Ok(existing.clone());
            }
            return Err(CloudError::TokenMismatch { name: req.name });
        }
        let cluster = CloudCluster {
            name: req.name.clone(),
            kubernetes_version: format!("1.{minor}"),
            state: CloudClusterState::Creating,
            idempotency_token: req.idempotency_token,
            message: "provisioning".into(),
        };
        table.insert(req.name.clone(), cluster.clone());
        drop(table);
        let (sim, latency, fail) = (
            self.sim.clone(),
            self.config.create_latency,
            rand::random::<f64>() < self.config.create_failure_rate,
        );
        tokio::spawn(async move {
            tokio::time::sleep(latency).await;
            let Some(sim) = sim.upgrade() else { return };
            let outcome = if fail {
                Err("simulated cloud failure: capacity unavailable".to_string())
            } else {
                sim.add_cluster(&req.name, minor)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            };
            let mut table = sim.cloud.table();
            if let Some(c) = table
                .get_mut(&req.name)
                .filter(|c| c.state == CloudClusterState::Creating)
            {
                match outcome {
                    Ok(()) => {
                        c.state = CloudClusterState::Running;
                        c.message = "running".into();
                    }
                    Err(message) => {
                        c.state = CloudClusterState::Failed;
                        c.message = message;
                    }
                }
            }
        });
        Ok(cluster)
    }

    pub fn get(&self, name: &str) -> Option<CloudCluster> {
        self.table().get(name).cloned()
    }

    pub fn list(&self) -> Vec<CloudCluster> {
        self.table().values().cloned().collect()
    }

    /// Registers a cluster the simulator started directly (the initial fleet) as Running.
    pub fn adopt(&self, name: &str, minor: u32) {
        self.table()
            .entry(name.to_string())
            .or_insert_with(|| CloudCluster {
                name: name.to_string(),
                kubernetes_version: format!("1.{minor}"),
                state: CloudClusterState::Running,
                idempotency_token: format!("adopted-{name}"),
                message: "running".into(),
            });
    }

    /// The bearer token of a Running cluster's API, as a cloud hands out credentials.
    pub fn credentials(&self, name: &str) -> Result<String, CloudError> {
        match self.get(name).map(|c| c.state) {
            Some(CloudClusterState::Running) => {}
            Some(state) => {
                return Err(CloudError::NotRunning {
                    name: name.to_string(),
                    state,
                });
            }
            None => {
                return Err(CloudError::NotFound {
                    name: name.to_string(),
                });
            }
        }
        let sim = self.sim.upgrade().ok_or_else(|| CloudError::NotFound {
            name: name.to_string(),
        })?;
        sim.cluster(name)
            .map(|c| c.token.clone())
            .ok_or_else(|| CloudError::NotFound {
                name: name.to_string(),
            })
    }

    /// Deletes a cluster; idempotent while it is being deleted.
    pub fn delete(&self, name: &str) -> Result<CloudCluster, CloudError> {
        let mut table = self.table();
        let c = table.get_mut(name).ok_or_else(|| CloudError::NotFound {
            name: name.to_string(),
        })?;
        if c.state != CloudClusterState::Deleting {
            c.state = CloudClusterState::Deleting;
            c.message = "deleting".into();
            let (sim, latency, name) = (
                self.sim.clone(),
                self.config.delete_latency,
                name.to_string(),
            );
            tokio::spawn(async move {
                tokio::time::sleep(latency).await;
                let Some(sim) = sim.upgrade() else { return };
                sim.remove_cluster(&name);
                sim.cloud.table().remove(&name);
            });
        }
        Ok(c.clone())
    }
}

fn error_response(e: CloudError) -> Response {
    let code = match e {
        CloudError::TokenMismatch { .. } | CloudError::NotRunning { .. } => StatusCode::CONFLICT,
        CloudError::NotFound { .. } => StatusCode::NOT_FOUND,
        CloudError::BadVersion { .. } => StatusCode::BAD_REQUEST,
    };
    (code, Json(serde_json::json!({"error": e.to_string()}))).into_response()
}

pub(crate) fn router(sim: Arc<Sim>) -> axum::Router {
    axum::Router::new()
        .route(
            "/clusters",
            get(|State(sim): State<Arc<Sim>>| async move { Json(sim.cloud.list()) }).post(
                |State(sim): State<Arc<Sim>>, Json(req): Json<CreateRequest>| async move {
                    match sim.cloud.create(req) {
                        Ok(c) => (StatusCode::ACCEPTED, Json(c)).into_response(),
                        Err(e) => error_response(e),
                    }
                },
            ),
        )
        .route(
            "/clusters/{name}",
            get(
                |State(sim): State<Arc<Sim>>, Path(name): Path<String>| async move {
                    match sim.cloud.get(&name) {
                        Some(c) => Json(c).into_response(),
                        None => error_response(CloudError::NotFound { name }),
                    }
                },
            )
            .delete(
                |State(sim): State<Arc<Sim>>, Path(name): Path<String>| async move {
                    match sim.cloud.delete(&name) {
                        Ok(c) => (StatusCode::ACCEPTED, Json(c)).into_response(),
                        Err(e) => error_response(e),
                    }
                },
            ),
        )
        .route(
            "/clusters/{name}/credentials",
            get(
                |State(sim): State<Arc<Sim>>, Path(name): Path<String>| async move {
                    match sim.cloud.credentials(&name) {
                        Ok(token) => Json(serde_json::json!({"token": token})).into_response(),
                        Err(e) => error_response(e),
                    }
                },
            ),
        )
        .with_state(sim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimConfig;

    #[tokio::test]
    async fn create_is_idempotent_and_yields_one_cluster() {
        let sim = Sim::new(SimConfig {
            cloud: CloudConfig {
                create_latency: Duration::from_millis(10),
                ..CloudConfig::default()
            },
            nodes: 1,
            ..SimConfig::default()
        });
        let req = CreateRequest {
            name: "green-1".into(),
            kubernetes_version: "1.35".into(),
            idempotency_token: "t1".into(),
        };
        let a = sim.cloud.create(req.clone()).expect("create");
        let b = sim.cloud.create(req.clone()).expect("retry");
        assert_eq!(a.idempotency_token, b.idempotency_token);
        assert_eq!(
            sim.cloud
                .create(CreateRequest {
                    idempotency_token: "other".into(),
                    ..req
                })
                .err(),
            Some(CloudError::TokenMismatch {
                name: "green-1".into()
            })
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while sim.cloud.get("green-1").map(|c| c.state) != Some(CloudClusterState::Running) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "cluster never became Running"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(sim.cluster_names(), vec!["green-1".to_string()]);
        assert!(
            sim.cloud
                .create(CreateRequest {
                    name: "x".into(),
                    kubernetes_version: "2.0".into(),
                    idempotency_token: "t".into()
                })
                .is_err()
        );
    }
}
