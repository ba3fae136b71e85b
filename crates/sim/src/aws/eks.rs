//! EKS's API (restJson1): clusters, node groups, tags. A cluster is a member of the simulated
//! cloud named `eks-<digest of account, region, name>`, so one name in two regions or accounts
//! is two clusters; its status follows the cloud's (CREATING → ACTIVE, DELETING, FAILED). Node
//! groups become ACTIVE one create latency after they are asked for, and go one delete latency
//! after they are deleted. Idempotency as EKS's: a create of an existing name with the same
//! `clientRequestToken` answers the existing cluster, with another token 409
//! `ResourceInUseException`; a cluster with node groups cannot be deleted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller, json_error};
use crate::cloud::CloudError;
use crate::{CloudClusterState, CreateRequest, Sim};

/// The EKS clusters the front knows, by caller and name.
#[derive(Default)]
pub(crate) struct Eks {
    clusters: Mutex<BTreeMap<(Caller, String), Cluster>>,
}

struct Cluster {
    member: String,
    arn: String,
    version: String,
    role_arn: String,
    subnets: Vec<String>,
    security_groups: Vec<String>,
    tags: BTreeMap<String, String>,
    token: Option<String>,
    created_at: f64,
    node_groups: BTreeMap<String, NodeGroup>,
}

struct NodeGroup {
    request: Value,
    token: Option<String>,
    created_at: f64,
    ready_at: Instant,
    /// When its deletion is over.
    gone_at: Option<Instant>,
}

impl NodeGroup {
    fn status(&self, now: Instant) -> &'static str {
        match self.gone_at {
            Some(_) => "DELETING",
            None if now < self.ready_at => "CREATING",
            None => "ACTIVE",
        }
    }
}

impl Eks {
    fn table(&self) -> MutexGuard<'_, BTreeMap<(Caller, String), Cluster>> {
        self.clusters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The member made for the EKS cluster `name` (in any account and region).
    pub(crate) fn member_of(&self, name: &str) -> Option<String> {
        self.table()
            .iter()
            .find(|((_, n), _)| n == name)
            .map(|(_, c)| c.member.clone())
    }
}

pub(super) fn routes() -> axum::Router<Arc<Sim>> {
    axum::Router::new()
        .route("/clusters", get(list_clusters).post(create_cluster))
        .route(
            "/clusters/{name}",
            get(describe_cluster).delete(delete_cluster),
        )
        .route(
            "/clusters/{name}/node-groups",
            get(list_node_groups).post(create_node_group),
        )
        .route(
            "/clusters/{name}/node-groups/{group}",
            get(describe_node_group).delete(delete_node_group),
        )
        .route("/tags/{arn}", post(tag_resource))
}

/// EKS's errors, answered as restJson1 errors with EKS's codes.
#[derive(Debug)]
enum EksError {
    /// `ResourceNotFoundException`: what was not found.
    NotFound(String),
    /// `ResourceInUseException`.
    InUse(String),
    /// `InvalidParameterException`.
    Invalid(String),
    /// `ThrottlingException`, with the Retry-After to send.
    Throttled(Option<std::time::Duration>),
    /// `ServiceUnavailableException`: the simulated cloud's outage.
    Unavailable,
}

impl IntoResponse for EksError {
    fn into_response(self) -> Response {
        match self {
            EksError::NotFound(what) => json_error(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                format!("No {what} found."),
            ),
            EksError::InUse(message) => {
                json_error(StatusCode::CONFLICT, "ResourceInUseException", message)
            }
            EksError::Invalid(message) => json_error(
                StatusCode::BAD_REQUEST,
                "InvalidParameterException",
                message,
            ),
            EksError::Throttled(retry_after) => {
                let mut resp = json_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "ThrottlingException",
                    "Rate exceeded",
                );
                if let Some(v) = retry_after.and_then(|d| d.as_secs().to_string().parse().ok()) {
                    resp.headers_mut().insert(header::RETRY_AFTER, v);
                }
                resp
            }
            EksError::Unavailable => json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableException",
                "simulated outage: the cluster was not created",
            ),
        }
    }
}

type Answer = Result<Json<Value>, EksError>;

fn cluster_gone(name: &str) -> EksError {
    EksError::NotFound(format!("cluster for name: {name}"))
}

fn group_gone(group: &str) -> EksError {
    EksError::NotFound(format!("node group for name: {group}"))
}

/// `Err(Throttled)` when the cloud's rate limit is on.
fn throttle(sim: &Sim) -> Result<(), EksError> {
    match sim.cloud.take_rate_limit() {
        Some(retry_after) => Err(EksError::Throttled(retry_after)),
        None => Ok(()),
    }
}

fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The member's name: short, path-safe, one per (account, region, name).
fn member_name(caller: &Caller, name: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&caller.account, &caller.region, name).hash(&mut h);
    format!("eks-{:012x}", h.finish() & 0xffff_ffff_ffff)
}

/// The cluster as `DescribeCluster` answers it; `None` once the cloud has deleted it (the
/// record goes then).
fn cluster_json(sim: &Sim, headers: &HeaderMap, name: &str, c: &Cluster) -> Option<Value> {
    let cloud = sim.cloud.get(&c.member)?;
    let (status, issues) = match cloud.state {
        CloudClusterState::Creating => ("CREATING", vec![]),
        CloudClusterState::Running => ("ACTIVE", vec![]),
        CloudClusterState::Deleting => ("DELETING", vec![]),
        CloudClusterState::Failed => (
            "FAILED",
            vec![json!({"code": "Other", "message": cloud.message})],
        ),
    };
    let mut tags = c.tags.clone();
    if let Some(addr) = &cloud.traffic_address {
        tags.entry("rotor.dev/traffic-address".into())
            .or_insert_with(|| addr.clone());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let endpoint = crate::tls::endpoint(sim.members_tls(), &format!("http://{host}"), &c.member);
    Some(json!({
        "name": name,
        "arn": c.arn,
        "createdAt": c.created_at,
        "version": c.version,
        "endpoint": endpoint.server,
        "roleArn": c.role_arn,
        "resourcesVpcConfig": {"subnetIds": c.subnets, "securityGroupIds": c.security_groups},
        "status": status,
        "certificateAuthority": {"data": endpoint.ca_base64},
        "clientRequestToken": c.token,
        "platformVersion": "eks.1",
        "tags": tags,
        "health": {"issues": issues},
    }))
}

async fn list_clusters(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> Answer {
    throttle(&sim)?;
    let caller = Caller::of(&headers);
    let mut table = sim.aws.table();
    table.retain(|_, c| sim.cloud.get(&c.member).is_some());
    let names: Vec<&str> = table
        .keys()
        .filter(|(who, _)| *who == caller)
        .map(|(_, n)| n.as_str())
        .collect();
    Ok(Json(json!({"clusters": names})))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateCluster {
    name: String,
    version: Option<String>,
    role_arn: String,
    resources_vpc_config: VpcConfig,
    client_request_token: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct VpcConfig {
    #[serde(default)]
    subnet_ids: Vec<String>,
    #[serde(default)]
    security_group_ids: Vec<String>,
}

async fn create_cluster(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    throttle(&sim)?;
    let req: CreateCluster = serde_json::from_slice(&body)
        .map_err(|e| EksError::Invalid(format!("CreateCluster: {e}")))?;
    let caller = Caller::of(&headers);
    let key = (caller.clone(), req.name.clone());
    let version = req.version.clone().unwrap_or_else(|| "1.35".into());
    let mut table = sim.aws.table();
    if let Some(existing) = table
        .get(&key)
        .filter(|c| sim.cloud.get(&c.member).is_some())
    {
        if existing.token.is_some() && existing.token == req.client_request_token {
            let answer = cluster_json(&sim, &headers, &req.name, existing);
            return Ok(Json(json!({"cluster": answer})));
        }
        return Err(EksError::InUse(format!(
            "Cluster already exists with name: {}",
            req.name
        )));
    }
    let member = member_name(&caller, &req.name);
    let tokens = super::EksTokens {
        account: caller.account.clone(),
    };
    sim.accept_tokens(&member, Arc::new(tokens));
    let created = sim.cloud.create(CreateRequest {
        name: member.clone(),
        kubernetes_version: version.clone(),
        idempotency_token: req.client_request_token.clone().unwrap_or_default(),
        cloud_name: Some(req.name.clone()),
    });
    match created {
        Ok(_) => {}
        Err(CloudError::BadVersion { .. }) => {
            return Err(EksError::Invalid(format!(
                "unsupported Kubernetes version {version}"
            )));
        }
        Err(CloudError::Unavailable { .. }) => return Err(EksError::Unavailable),
        Err(other) => return Err(EksError::InUse(other.to_string())),
    }
    let cluster = Cluster {
        arn: format!(
            "arn:aws:eks:{}:{}:cluster/{}",
            caller.region, caller.account, req.name
        ),
        member,
        version,
        role_arn: req.role_arn,
        subnets: req.resources_vpc_config.subnet_ids,
        security_groups: req.resources_vpc_config.security_group_ids,
        tags: req.tags,
        token: req.client_request_token,
        created_at: epoch_now(),
        node_groups: BTreeMap::new(),
    };
    let answer = cluster_json(&sim, &headers, &req.name, &cluster);
    table.insert(key, cluster);
    Ok(Json(json!({"cluster": answer})))
}

async fn describe_cluster(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Answer {
    throttle(&sim)?;
    let key = (Caller::of(&headers), name.clone());
    let mut table = sim.aws.table();
    let c = table.get(&key).ok_or_else(|| cluster_gone(&name))?;
    match cluster_json(&sim, &headers, &name, c) {
        Some(answer) => Ok(Json(json!({"cluster": answer}))),
        None => {
            table.remove(&key);
            Err(cluster_gone(&name))
        }
    }
}

async fn delete_cluster(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Answer {
    throttle(&sim)?;
    with_cluster(&sim, &headers, &name, |c| {
        if !c.node_groups.is_empty() {
            let groups: Vec<&str> = c.node_groups.keys().map(String::as_str).collect();
            return Err(EksError::InUse(format!(
                "Cluster has nodegroups attached: {}",
                groups.join(", ")
            )));
        }
        sim.cloud
            .delete(&c.member)
            .map_err(|_| cluster_gone(&name))?;
        let answer = cluster_json(&sim, &headers, &name, c).ok_or_else(|| cluster_gone(&name))?;
        Ok(Json(json!({"cluster": answer})))
    })
}

/// `f` on the live cluster `name` of the caller (node groups whose deletion is over dropped);
/// NotFound when there is none.
fn with_cluster(
    sim: &Sim,
    headers: &HeaderMap,
    name: &str,
    f: impl FnOnce(&mut Cluster) -> Answer,
) -> Answer {
    let key = (Caller::of(headers), name.to_string());
    let mut table = sim.aws.table();
    let live = table
        .get(&key)
        .is_some_and(|c| sim.cloud.get(&c.member).is_some());
    if !live {
        table.remove(&key);
        return Err(cluster_gone(name));
    }
    let c = table.get_mut(&key).ok_or_else(|| cluster_gone(name))?;
    let now = Instant::now();
    c.node_groups
        .retain(|_, g| g.gone_at.is_none_or(|t| now < t));
    f(c)
}

async fn list_node_groups(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Answer {
    throttle(&sim)?;
    with_cluster(&sim, &headers, &name, |c| {
        let groups: Vec<&String> = c.node_groups.keys().collect();
        Ok(Json(json!({"nodegroups": groups})))
    })
}

fn node_group_json(cluster: &str, c: &Cluster, name: &str, g: &NodeGroup) -> Value {
    let r = &g.request;
    json!({
        "nodegroupName": name,
        "nodegroupArn": format!("{}/{name}", c.arn.replace(":cluster/", ":nodegroup/")),
        "clusterName": cluster,
        "version": c.version,
        "createdAt": g.created_at,
        "status": g.status(Instant::now()),
        "scalingConfig": r.get("scalingConfig"),
        "instanceTypes": r.get("instanceTypes"),
        "subnets": r.get("subnets"),
        "nodeRole": r.get("nodeRole"),
        "tags": r.get("tags").cloned().unwrap_or_else(|| json!({})),
        "health": {"issues": []},
    })
}

async fn create_node_group(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    throttle(&sim)?;
    let request: Value = serde_json::from_slice(&body)
        .map_err(|e| EksError::Invalid(format!("CreateNodegroup: {e}")))?;
    let group = request["nodegroupName"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| EksError::Invalid("nodegroupName is required".into()))?;
    if request["nodeRole"].as_str().is_none() {
        return Err(EksError::Invalid("nodeRole is required".into()));
    }
    let token = request["clientRequestToken"].as_str().map(String::from);
    let latency = sim.cloud.create_latency();
    with_cluster(&sim, &headers, &name, |c| {
        if let Some(existing) = c.node_groups.get(&group) {
            if existing.token.is_some() && existing.token == token {
                let answer = node_group_json(&name, c, &group, existing);
                return Ok(Json(json!({"nodegroup": answer})));
            }
            return Err(EksError::InUse(format!(
                "NodeGroup already exists with name {group} and cluster name {name}"
            )));
        }
        let g = NodeGroup {
            request,
            token,
            created_at: epoch_now(),
            ready_at: Instant::now() + latency,
            gone_at: None,
        };
        let answer = node_group_json(&name, c, &group, &g);
        c.node_groups.insert(group.clone(), g);
        Ok(Json(json!({"nodegroup": answer})))
    })
}

async fn describe_node_group(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path((name, group)): Path<(String, String)>,
) -> Answer {
    throttle(&sim)?;
    with_cluster(&sim, &headers, &name, |c| {
        let g = c
            .node_groups
            .get(&group)
            .ok_or_else(|| group_gone(&group))?;
        let answer = node_group_json(&name, c, &group, g);
        Ok(Json(json!({"nodegroup": answer})))
    })
}

async fn delete_node_group(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path((name, group)): Path<(String, String)>,
) -> Answer {
    throttle(&sim)?;
    let delete_latency = sim.config().cloud.delete_latency;
    with_cluster(&sim, &headers, &name, |c| {
        let g = c
            .node_groups
            .get_mut(&group)
            .ok_or_else(|| group_gone(&group))?;
        if g.gone_at.is_some() {
            return Err(EksError::InUse(format!(
                "Nodegroup {group} is already being deleted"
            )));
        }
        g.gone_at = Some(Instant::now() + delete_latency);
        let g = c
            .node_groups
            .get(&group)
            .ok_or_else(|| group_gone(&group))?;
        let answer = node_group_json(&name, c, &group, g);
        Ok(Json(json!({"nodegroup": answer})))
    })
}

#[derive(Deserialize)]
struct Tags {
    tags: BTreeMap<String, String>,
}

async fn tag_resource(
    State(sim): State<Arc<Sim>>,
    Path(arn): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    let Tags { tags } = serde_json::from_slice(&body)
        .map_err(|_| EksError::Invalid("TagResource: a body {\"tags\": {…}} is required".into()))?;
    let mut table = sim.aws.table();
    let c = table
        .values_mut()
        .find(|c| c.arn == arn)
        .ok_or_else(|| EksError::NotFound(format!("resource for arn: {arn}")))?;
    c.tags.extend(tags);
    Ok(Json(json!({})))
}
