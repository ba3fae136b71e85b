//! The simulated cloud: creates and deletes member clusters on request, with latency and failure
//! rates, idempotent by name and token (a retried create never yields a second cluster). The `sim`
//! provider reaches it over HTTP at `/cloud/clusters`, like a real cloud API.
//!
//! Faults for rehearsals and tests: failing the next creates, changing the create latency at run
//! time (`/cloud/faults`), and per-member faults (`/cloud/clusters/{name}/faults`, see
//! [`crate::Fault`]); `/cloud/stats` counts creates and deletes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::{Fault, Sim};

#[derive(Debug, Clone)]
pub struct CloudConfig {
    /// The starting value: [`SimCloud::set_create_latency`] changes it at run time.
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
    /// Where the member's application traffic is served (`127.1.0.5:PORT`), once the member
    /// exists and when traffic is on: what a real cloud reports as the ingress load balancer.
    #[serde(default)]
    pub traffic_address: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRequest {
    /// The member's name in the simulator (unique across its cloud fronts).
    pub name: String,
    /// `1.35`
    pub kubernetes_version: String,
    pub idempotency_token: String,
    /// The cloud's own name for the cluster (an EKS or GKE cluster's name, an AKS resource's),
    /// which rotor knows as the instance: the traffic series' `cluster` label, what a metric
    /// gate's `{{green}}` names. Absent: the member's name (the simulator's own cloud).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_name: Option<String>,
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
    #[error("simulated cloud outage: create of cluster {name} refused, nothing created")]
    Unavailable { name: String },
}

pub struct SimCloud {
    config: CloudConfig,
    clusters: Mutex<BTreeMap<String, CloudCluster>>,
    faults: Mutex<CloudFaults>,
    created_total: AtomicU64,
    deleted_total: AtomicU64,
    sim: Weak<Sim>,
}

/// The cloud's run-time knobs (`/cloud/faults`); the config only gives their starting values.
#[derive(Debug, Clone, Copy)]
struct CloudFaults {
    fail_next_creates: u32,
    create_latency: Duration,
    /// The next calls about clusters answered 429 (rate limit), and the Retry-After they carry.
    rate_limit_next_calls: u32,
    rate_limit_retry_after: Option<Duration>,
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
            faults: Mutex::new(CloudFaults {
                fail_next_creates: 0,
                create_latency: config.create_latency,
                rate_limit_next_calls: 0,
                rate_limit_retry_after: None,
            }),
            config,
            clusters: Mutex::new(BTreeMap::new()),
            created_total: AtomicU64::new(0),
            deleted_total: AtomicU64::new(0),
            sim,
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, CloudCluster>> {
        self.clusters.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fault_knobs(&self) -> std::sync::MutexGuard<'_, CloudFaults> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next `n` create requests (retries included) fail with 503 and create nothing, as in
    /// a regional outage; replaces any count still pending.
    pub fn fail_next_creates(&self, n: u32) {
        self.fault_knobs().fail_next_creates = n;
    }

    /// Creates still to fail.
    pub fn failed_creates_pending(&self) -> u32 {
        self.fault_knobs().fail_next_creates
    }

    /// The next `n` calls about clusters (create, describe, delete, credentials) are refused
    /// with 429 and change nothing, carrying `Retry-After: retry_after` (whole seconds) when
    /// given, as a cloud API throttling an account; replaces any count still pending.
    pub fn rate_limit_next_calls(&self, n: u32, retry_after: Option<Duration>) {
        let mut knobs = self.fault_knobs();
        knobs.rate_limit_next_calls = n;
        knobs.rate_limit_retry_after = retry_after;
    }

    /// Calls still to be rate-limited.
    pub fn rate_limited_calls_pending(&self) -> u32 {
        self.fault_knobs().rate_limit_next_calls
    }

    /// Whether this call is rate limited (one of the pending ones is used up), and the
    /// Retry-After it carries: for every cloud front.
    pub(crate) fn take_rate_limit(&self) -> Option<Option<Duration>> {
        let mut knobs = self.fault_knobs();
        if knobs.rate_limit_next_calls == 0 {
            return None;
        }
        knobs.rate_limit_next_calls -= 1;
        Some(knobs.rate_limit_retry_after)
    }

    /// A 429 for this call when rate limiting is pending.
    fn rate_limited(&self) -> Option<Response> {
        let retry_after = self.take_rate_limit()?;
        let mut resp = (
            StatusCode::TOO_MANY_REQUESTS,
            Json(serde_json::json!({"error": "simulated rate limit: too many requests"})),
        )
            .into_response();
        if let Some(after) = retry_after
            && let Ok(v) = http::HeaderValue::from_str(&after.as_secs().to_string())
        {
            resp.headers_mut().insert(http::header::RETRY_AFTER, v);
        }
        Some(resp)
    }

    /// How long creates requested now take (node groups of a cloud front take as long again).
    pub(crate) fn create_latency(&self) -> Duration {
        self.fault_knobs().create_latency
    }

    /// How long creates requested from now on take to become Running (or Failed).
    pub fn set_create_latency(&self, latency: Duration) {
        self.fault_knobs().create_latency = latency;
    }

    /// Distinct instances ever requested through [`SimCloud::create`], failed ones included;
    /// idempotent retries and adopted clusters are not counted.
    pub fn created_total(&self) -> u64 {
        self.created_total.load(Ordering::Relaxed)
    }

    /// Deletions ever started; repeated deletes of a cluster being deleted are not counted.
    pub fn deleted_total(&self) -> u64 {
        self.deleted_total.load(Ordering::Relaxed)
    }

    /// Adds what is known only while the member runs (its traffic address).
    fn with_member(&self, mut c: CloudCluster) -> CloudCluster {
        c.traffic_address = self
            .sim
            .upgrade()
            .and_then(|sim| sim.cluster(&c.name))
            .and_then(|m| m.traffic_addr)
            .map(|a| a.to_string());
        c
    }

    /// Requests a cluster. The same name and token return the existing request. Fails with
    /// `Unavailable` while [`SimCloud::fail_next_creates`] has failures pending.
    pub fn create(&self, req: CreateRequest) -> Result<CloudCluster, CloudError> {
        let latency = {
            let mut knobs = self.fault_knobs();
            if knobs.fail_next_creates > 0 {
                knobs.fail_next_creates -= 1;
                return Err(CloudError::Unavailable { name: req.name });
            }
            knobs.create_latency
        };
        let minor = parse_minor(&req.kubernetes_version).ok_or_else(|| CloudError::BadVersion {
            name: req.name.clone(),
            version: req.kubernetes_version.clone(),
        })?;
        let mut table = self.table();
        if let Some(existing) = table.get(&req.name) {
            if existing.idempotency_token == req.idempotency_token {
                let existing = existing.clone();
                drop(table);
                return Ok(self.with_member(existing));
            }
            return Err(CloudError::TokenMismatch { name: req.name });
        }
        let cluster = CloudCluster {
            name: req.name.clone(),
            kubernetes_version: format!("1.{minor}"),
            state: CloudClusterState::Creating,
            idempotency_token: req.idempotency_token,
            message: "provisioning".into(),
            traffic_address: None,
        };
        table.insert(req.name.clone(), cluster.clone());
        self.created_total.fetch_add(1, Ordering::Relaxed);
        drop(table);
        let (sim, fail) = (
            self.sim.clone(),
            rand::random::<f64>() < self.config.create_failure_rate,
        );
        tokio::spawn(async move {
            tokio::time::sleep(latency).await;
            let Some(sim) = sim.upgrade() else { return };
            let outcome = if fail {
                Err("simulated cloud failure: capacity unavailable".to_string())
            } else {
                let cloud_name = req.cloud_name.as_deref().unwrap_or(&req.name);
                sim.add_cluster_named(&req.name, cloud_name, minor)
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
            } else if !table.contains_key(&req.name) {
                // Deleted while it was being created: the member must not outlive its record.
                drop(table);
                sim.remove_cluster(&req.name);
            }
        });
        Ok(cluster)
    }

    pub fn get(&self, name: &str) -> Option<CloudCluster> {
        let c = self.table().get(name).cloned()?;
        Some(self.with_member(c))
    }

    pub fn list(&self) -> Vec<CloudCluster> {
        let all: Vec<CloudCluster> = self.table().values().cloned().collect();
        all.into_iter().map(|c| self.with_member(c)).collect()
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
                traffic_address: None,
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
            self.deleted_total.fetch_add(1, Ordering::Relaxed);
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
        let c = c.clone();
        drop(table);
        Ok(self.with_member(c))
    }
}

fn error_response(e: CloudError) -> Response {
    let code = match e {
        CloudError::TokenMismatch { .. } | CloudError::NotRunning { .. } => StatusCode::CONFLICT,
        CloudError::NotFound { .. } => StatusCode::NOT_FOUND,
        CloudError::BadVersion { .. } => StatusCode::BAD_REQUEST,
        CloudError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
    };
    (code, Json(serde_json::json!({"error": e.to_string()}))).into_response()
}

fn bad_request(e: JsonRejection) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({"error": e.body_text()})),
    )
        .into_response()
}

/// `/cloud/clusters/{name}/faults`
#[derive(Serialize, Deserialize)]
struct FaultList {
    faults: Vec<Fault>,
}

/// `PUT /cloud/faults`: absent fields keep their value.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CloudFaultsUpdate {
    fail_next_creates: Option<u32>,
    create_latency_ms: Option<u64>,
}

fn cloud_faults(cloud: &SimCloud) -> Response {
    let knobs = *cloud.fault_knobs();
    Json(serde_json::json!({
        "failNextCreates": knobs.fail_next_creates,
        "createLatencyMs": knobs.create_latency.as_millis() as u64,
    }))
    .into_response()
}

fn member_faults(sim: &Sim, name: String) -> Response {
    match sim.faults(&name) {
        Some(faults) => Json(FaultList { faults }).into_response(),
        None => error_response(CloudError::NotFound { name }),
    }
}

pub(crate) fn router(sim: Arc<Sim>) -> axum::Router {
    let throttled = sim.clone();
    let clusters = axum::Router::new()
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
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let throttled = throttled.clone();
                async move {
                    match throttled.cloud.rate_limited() {
                        Some(resp) => resp,
                        None => next.run(req).await,
                    }
                }
            },
        ));
    axum::Router::new()
        .merge(clusters)
        .route(
            "/clusters/{name}/faults",
            get(
                |State(sim): State<Arc<Sim>>, Path(name): Path<String>| async move {
                    member_faults(&sim, name)
                },
            )
            .put(
                |State(sim): State<Arc<Sim>>,
                 Path(name): Path<String>,
                 body: Result<Json<FaultList>, JsonRejection>| async move {
                    match body {
                        Ok(Json(list)) => {
                            sim.set_faults(&name, &list.faults);
                            member_faults(&sim, name)
                        }
                        Err(e) => bad_request(e),
                    }
                },
            ),
        )
        .route(
            "/faults",
            get(|State(sim): State<Arc<Sim>>| async move { cloud_faults(&sim.cloud) }).put(
                |State(sim): State<Arc<Sim>>,
                 body: Result<Json<CloudFaultsUpdate>, JsonRejection>| async move {
                    let update = match body {
                        Ok(Json(update)) => update,
                        Err(e) => return bad_request(e),
                    };
                    if let Some(n) = update.fail_next_creates {
                        sim.cloud.fail_next_creates(n);
                    }
                    if let Some(ms) = update.create_latency_ms {
                        sim.cloud.set_create_latency(Duration::from_millis(ms));
                    }
                    cloud_faults(&sim.cloud)
                },
            ),
        )
        .route(
            "/stats",
            get(|State(sim): State<Arc<Sim>>| async move {
                Json(serde_json::json!({
                    "createdTotal": sim.cloud.created_total(),
                    "deletedTotal": sim.cloud.deleted_total(),
                }))
            }),
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
            cloud_name: None,
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
                    idempotency_token: "t".into(),
                    cloud_name: None,
                })
                .is_err()
        );
    }

    #[tokio::test]
    async fn created_total_counts_distinct_instances_and_outages_create_nothing() {
        let sim = Sim::new(SimConfig {
            nodes: 1,
            ..SimConfig::default()
        });
        sim.cloud.set_create_latency(Duration::from_millis(5));
        let req = |name: &str| CreateRequest {
            name: name.into(),
            kubernetes_version: "1.35".into(),
            idempotency_token: format!("token-{name}"),
            cloud_name: None,
        };
        sim.cloud.fail_next_creates(2);
        for _ in 0..2 {
            assert_eq!(
                sim.cloud.create(req("a")).err(),
                Some(CloudError::Unavailable { name: "a".into() })
            );
        }
        assert!(sim.cloud.list().is_empty(), "an outage creates nothing");
        assert_eq!(sim.cloud.created_total(), 0);
        sim.cloud.create(req("a")).expect("create");
        sim.cloud.create(req("a")).expect("retry");
        sim.cloud.create(req("b")).expect("create");
        assert!(
            sim.cloud
                .create(CreateRequest {
                    idempotency_token: "other".into(),
                    ..req("b")
                })
                .is_err()
        );
        sim.cloud.adopt("adopted", 35);
        assert_eq!(sim.cloud.created_total(), 2, "a and b, once each");
        sim.cloud.delete("a").expect("delete");
        sim.cloud.delete("a").expect("delete again");
        assert_eq!(sim.cloud.deleted_total(), 1);
    }
}
