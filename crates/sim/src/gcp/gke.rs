//! GKE's clusters (container v1): create with the node pools inline, get, list, delete. A
//! cluster is a member of the simulated cloud named `gke-<digest of project, location, name>`,
//! so one name in two locations or projects is two clusters; its status follows the cloud's
//! (PROVISIONING → RUNNING, STOPPING, ERROR) and so do its node pools'. Creates and deletes
//! answer an operation (see [`super::operations`]).
//!
//! Idempotency as GKE's: none beyond the name, which is unique in its location — a second
//! create answers 409 `ALREADY_EXISTS`, whoever asks; a client tells its own cluster by a label
//! (rotor's `rotor-token`), which the simulated cloud also takes as its idempotency token.
//! Where the member takes application traffic shows as the label `rotor-traffic-address`
//! (`127-1-0-5_8080`: GCP label values allow neither `.` nor `:`), as whatever provisions the
//! load balancer would write it.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use http::{HeaderMap, header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::operations::{Kind, Operation, operation_json};
use super::{Enums, GcpError, bearer, rfc3339_now, throttle};
use crate::cloud::CloudError;
use crate::principals::{Directory, PrincipalTokens};
use crate::{CloudClusterState, CreateRequest, Sim};

/// The label a cluster's idempotency token travels in.
pub(crate) const LABEL_TOKEN: &str = "rotor-token";
/// The label that says where a cluster takes application traffic.
pub(crate) const LABEL_TRAFFIC_ADDRESS: &str = "rotor-traffic-address";

/// (project, location, name): a cluster's or an operation's key.
type Key = (String, String, String);

/// GKE's clusters and operations, and the principals of each project.
#[derive(Default)]
pub(crate) struct Gke {
    clusters: Mutex<BTreeMap<Key, Cluster>>,
    operations: Mutex<BTreeMap<Key, Operation>>,
    pub(super) principals: Directory,
}

impl Gke {
    fn table(&self) -> MutexGuard<'_, BTreeMap<Key, Cluster>> {
        self.clusters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The member made for the GKE cluster `name` (in any project and location).
    pub(crate) fn member_of(&self, name: &str) -> Option<String> {
        self.table()
            .iter()
            .find(|((_, _, n), _)| n == name)
            .map(|(_, c)| c.member.clone())
    }

    pub(super) fn operations(&self) -> MutexGuard<'_, BTreeMap<Key, Operation>> {
        self.operations.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Cluster {
    member: String,
    version: String,
    network: String,
    labels: BTreeMap<String, String>,
    node_pools: Vec<NodePool>,
    create_time: String,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct NodePool {
    name: String,
    #[serde(default)]
    initial_node_count: i32,
    #[serde(default)]
    config: Value,
    #[serde(default)]
    autoscaling: Value,
}

#[derive(Deserialize)]
struct CreateClusterRequest {
    cluster: CreateCluster,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateCluster {
    #[serde(default)]
    name: String,
    #[serde(default)]
    initial_cluster_version: String,
    #[serde(default)]
    initial_node_count: i32,
    #[serde(default)]
    network: String,
    #[serde(default)]
    resource_labels: BTreeMap<String, String>,
    #[serde(default)]
    node_pools: Vec<NodePool>,
}

pub(super) fn routes() -> axum::Router<Arc<Sim>> {
    axum::Router::new()
        .route(
            "/projects/{project}/locations/{location}/clusters",
            get(list_clusters).post(create_cluster),
        )
        .route(
            "/projects/{project}/locations/{location}/clusters/{cluster}",
            get(get_cluster).delete(delete_cluster),
        )
}

/// The API's base URL as clients reach it (`http://SIM/gcp/v1`): the simulator's own URL when
/// it knows it — gaxi's `Host` lacks the port — else the `Host` header's.
pub(super) fn api_base(sim: &Sim, headers: &HeaderMap) -> String {
    let base = sim.public_url().unwrap_or_else(|| {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1");
        format!("http://{host}")
    });
    format!("{}/gcp/v1", base.trim_end_matches('/'))
}

/// The member's name: short, path-safe, one per (project, location, name).
fn member_name(key: &Key) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    format!("gke-{:012x}", h.finish() & 0xffff_ffff_ffff)
}

/// A label fingerprint: changes whenever the labels do.
fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    labels.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// A traffic address as a GCP label value: `.` and `:` are not allowed there.
pub(crate) fn address_label(addr: SocketAddr) -> String {
    let host = match addr.ip() {
        std::net::IpAddr::V4(ip) => ip.to_string().replace('.', "-"),
        std::net::IpAddr::V6(ip) => ip
            .segments()
            .iter()
            .map(|s| format!("{s:x}"))
            .collect::<Vec<_>>()
            .join("-"),
    };
    format!("{host}_{}", addr.port())
}

/// GKE's rule for names (clusters and node pools): 1–40 characters, lowercase letters, digits
/// and `-`, starting with a letter and not ending with `-`.
fn check_name(field: &str, name: &str) -> Result<(), GcpError> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(GcpError::invalid(format!(
            "{field} {name:?} is invalid: it must be 1-40 lowercase letters, digits or '-', \
             start with a letter and end with a letter or digit."
        )))
    }
}

/// GCP's rule for label keys and values: ≤ 63 lowercase letters, digits, `-` or `_`, keys
/// starting with a letter.
fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), GcpError> {
    let charset = |s: &str| {
        s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    };
    for (k, v) in labels {
        if !charset(k) || !k.starts_with(|c: char| c.is_ascii_lowercase()) || !charset(v) {
            return Err(GcpError::invalid(format!(
                "cluster.resourceLabels[{k:?}] is invalid: keys and values are at most 63 \
                 lowercase letters, digits, '-' or '_', keys start with a letter."
            )));
        }
    }
    Ok(())
}

/// The cluster as GKE answers it; `None` once the cloud has deleted it (the record goes then).
fn cluster_json(sim: &Sim, enums: Enums, base: &str, key: &Key, c: &Cluster) -> Option<Value> {
    let (project, location, name) = key;
    let cloud = sim.cloud.get(&c.member)?;
    let (status, pool_status) = match cloud.state {
        CloudClusterState::Creating => ((1, "PROVISIONING"), (1, "PROVISIONING")),
        CloudClusterState::Running => ((2, "RUNNING"), (2, "RUNNING")),
        CloudClusterState::Deleting => ((4, "STOPPING"), (5, "STOPPING")),
        CloudClusterState::Failed => ((5, "ERROR"), (6, "ERROR")),
    };
    let mut labels = c.labels.clone();
    if let Some(addr) = cloud
        .traffic_address
        .as_deref()
        .and_then(|a| a.parse::<SocketAddr>().ok())
    {
        labels
            .entry(LABEL_TRAFFIC_ADDRESS.into())
            .or_insert_with(|| address_label(addr));
    }
    let self_link = format!("{base}/projects/{project}/locations/{location}/clusters/{name}");
    let patch = format!("{}.0-gke.0", c.version);
    let pools: Vec<Value> = c
        .node_pools
        .iter()
        .map(|p| {
            let mut pool = json!({
                "name": p.name,
                "initialNodeCount": p.initial_node_count,
                "status": enums.value(pool_status),
                "version": patch,
                "selfLink": format!("{self_link}/nodePools/{}", p.name),
            });
            // What the request left out stays out (not `null`).
            for (field, value) in [("config", &p.config), ("autoscaling", &p.autoscaling)] {
                if !value.is_null() {
                    pool[field] = value.clone();
                }
            }
            pool
        })
        .collect();
    let server = base.trim_end_matches("/gcp/v1");
    let mut answer = json!({
        "name": name,
        "location": location,
        "zone": location,
        "network": c.network,
        "resourceLabels": labels,
        "labelFingerprint": fingerprint(&labels),
        "initialClusterVersion": c.version,
        "currentMasterVersion": patch,
        "currentNodeVersion": patch,
        "status": enums.value(status),
        "nodePools": pools,
        "createTime": c.create_time,
        "selfLink": self_link,
    });
    if cloud.state != CloudClusterState::Creating {
        // GKE's endpoint is a bare address its clients reach over https; the simulator's
        // members sit under a path, so it gives the whole URL (clients use one with a scheme
        // as it is).
        let endpoint = crate::tls::endpoint(sim.members_tls(), server, &c.member);
        answer["endpoint"] = json!(endpoint.server);
        answer["masterAuth"] = json!({"clusterCaCertificate": endpoint.ca_base64});
    }
    if cloud.state == CloudClusterState::Failed {
        answer["statusMessage"] = json!(cloud.message);
        answer["conditions"] = json!([{"message": cloud.message, "canonicalCode": enums.value((8, "RESOURCE_EXHAUSTED"))}]);
    }
    Some(answer)
}

/// The live cluster of `key` (a record whose member the cloud has deleted is dropped).
fn live<'t>(
    sim: &Sim,
    table: &'t mut BTreeMap<Key, Cluster>,
    key: &Key,
) -> Result<&'t mut Cluster, GcpError> {
    let (project, location, name) = key;
    let gone = || {
        GcpError::not_found(format!(
            "projects/{project}/locations/{location}/clusters/{name}"
        ))
    };
    if table
        .get(key)
        .is_some_and(|c| sim.cloud.get(&c.member).is_none())
    {
        table.remove(key);
    }
    table.get_mut(key).ok_or_else(gone)
}

/// Who calls, throttling, and the caller recorded as one of the project's principals.
fn admit(sim: &Sim, headers: &HeaderMap, project: &str) -> Result<(), GcpError> {
    let token = bearer(headers)?;
    throttle(sim)?;
    sim.gcp.principals.of(project).add(&token);
    Ok(())
}

/// A new operation on `key`'s cluster, recorded; its answer.
fn start(sim: &Sim, enums: Enums, base: &str, key: &Key, kind: Kind, member: &str) -> Value {
    let (project, location, cluster) = key;
    let name = format!(
        "operation-{}-{:08x}",
        jiff::Timestamp::now().as_millisecond(),
        rand::random::<u32>()
    );
    let op = Operation::new(kind, cluster, member);
    let answer = operation_json(enums, base, project, location, &name, &op);
    sim.gcp
        .operations()
        .insert((project.clone(), location.clone(), name), op);
    answer
}

async fn list_clusters(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    Path((project, location)): Path<(String, String)>,
) -> Result<Json<Value>, GcpError> {
    admit(&sim, &headers, &project)?;
    let (enums, base) = (Enums::of(query.as_deref()), api_base(&sim, &headers));
    let mut table = sim.gcp.table();
    table.retain(|_, c| sim.cloud.get(&c.member).is_some());
    // `-` is every location.
    let clusters: Vec<Value> = table
        .iter()
        .filter(|((p, l, _), _)| *p == project && (location == "-" || *l == location))
        .filter_map(|(key, c)| cluster_json(&sim, enums, &base, key, c))
        .collect();
    Ok(Json(json!({"clusters": clusters})))
}

async fn create_cluster(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    Path((project, location)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, GcpError> {
    admit(&sim, &headers, &project)?;
    let (enums, base) = (Enums::of(query.as_deref()), api_base(&sim, &headers));
    let CreateClusterRequest { cluster: req } = serde_json::from_slice(&body)
        .map_err(|e| GcpError::invalid(format!("Invalid JSON payload received: {e}")))?;
    check_name("cluster.name", &req.name)?;
    check_labels(&req.resource_labels)?;
    if req.node_pools.is_empty() && req.initial_node_count <= 0 {
        return Err(GcpError::invalid(format!(
            "cluster {}: cluster.nodePools is empty and cluster.initialNodeCount is not \
             positive; a cluster needs at least one node pool.",
            req.name
        )));
    }
    for (i, pool) in req.node_pools.iter().enumerate() {
        check_name(&format!("cluster.nodePools[{i}].name"), &pool.name)?;
    }
    let version = match req.initial_cluster_version.as_str() {
        "" | "latest" | "-" => format!("1.{}", sim.config().kubernetes_minor),
        v => v.to_string(),
    };
    let key = (project.clone(), location.clone(), req.name.clone());
    let mut table = sim.gcp.table();
    if live(&sim, &mut table, &key).is_ok() {
        return Err(GcpError::already_exists(format!(
            "projects/{project}/locations/{location}/clusters/{}",
            req.name
        )));
    }
    let member = member_name(&key);
    sim.accept_tokens(
        &member,
        Arc::new(PrincipalTokens {
            scope: project.clone(),
            principals: sim.gcp.principals.of(&project),
        }),
    );
    let created = sim.cloud.create(CreateRequest {
        name: member.clone(),
        kubernetes_version: version.clone(),
        idempotency_token: req
            .resource_labels
            .get(LABEL_TOKEN)
            .cloned()
            .unwrap_or_default(),
        cloud_name: Some(req.name.clone()),
    });
    match created {
        Ok(_) => {}
        Err(CloudError::BadVersion { .. }) => {
            return Err(GcpError::invalid(format!(
                "cluster {}: cluster.initialClusterVersion {version:?} is not supported.",
                req.name
            )));
        }
        Err(CloudError::Unavailable { .. }) => {
            return Err(GcpError::unavailable(
                "The service is currently unavailable (simulated outage); nothing was created.",
            ));
        }
        Err(other) => return Err(GcpError::already_exists(other)),
    }
    let node_pools = if req.node_pools.is_empty() {
        vec![NodePool {
            name: "default-pool".into(),
            initial_node_count: req.initial_node_count,
            config: Value::Null,
            autoscaling: Value::Null,
        }]
    } else {
        req.node_pools
    };
    table.insert(
        key.clone(),
        Cluster {
            member: member.clone(),
            version: version.splitn(3, '.').take(2).collect::<Vec<_>>().join("."),
            network: if req.network.is_empty() {
                "default".into()
            } else {
                req.network
            },
            labels: req.resource_labels,
            node_pools,
            create_time: rfc3339_now(),
        },
    );
    drop(table);
    Ok(Json(start(
        &sim,
        enums,
        &base,
        &key,
        Kind::CreateCluster,
        &member,
    )))
}

async fn get_cluster(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    Path((project, location, name)): Path<(String, String, String)>,
) -> Result<Json<Value>, GcpError> {
    admit(&sim, &headers, &project)?;
    let (enums, base) = (Enums::of(query.as_deref()), api_base(&sim, &headers));
    let key = (project, location, name);
    let mut table = sim.gcp.table();
    let c = live(&sim, &mut table, &key)?;
    cluster_json(&sim, enums, &base, &key, c)
        .map(Json)
        .ok_or_else(|| GcpError::not_found(&key.2))
}

async fn delete_cluster(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    Path((project, location, name)): Path<(String, String, String)>,
) -> Result<Json<Value>, GcpError> {
    admit(&sim, &headers, &project)?;
    let (enums, base) = (Enums::of(query.as_deref()), api_base(&sim, &headers));
    let key = (project, location, name);
    let mut table = sim.gcp.table();
    let c = live(&sim, &mut table, &key)?;
    let member = c.member.clone();
    let running: HashMap<_, _> = sim
        .gcp
        .operations()
        .iter_mut()
        .filter(|(_, op)| op.member == member && op.kind == Kind::DeleteCluster)
        .map(|(k, op)| {
            op.refresh(&sim);
            (k.2.clone(), op.done.is_none())
        })
        .collect();
    if let Some((op, _)) = running.iter().find(|(_, running)| **running) {
        return Err(GcpError::failed_precondition(format!(
            "Cluster {} is currently being deleted: operation {op} is running.",
            key.2
        )));
    }
    sim.cloud
        .delete(&member)
        .map_err(|_| GcpError::not_found(&key.2))?;
    drop(table);
    Ok(Json(start(
        &sim,
        enums,
        &base,
        &key,
        Kind::DeleteCluster,
        &member,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_follow_gcps_rules_and_errors_name_the_field() {
        assert!(check_name("cluster.name", "prod-a-3f9c2e1b7a").is_ok());
        for bad in ["", "Prod", "1abc", "abc-", "a_b", &"a".repeat(41)] {
            let e = check_name("cluster.name", bad).unwrap_err();
            assert!(e.message.contains("cluster.name"), "{e:?}");
            assert_eq!(e.status, "INVALID_ARGUMENT");
        }
        let ok = BTreeMap::from([("rotor-token".to_string(), "0af3".to_string())]);
        assert!(check_labels(&ok).is_ok());
        let dotted = BTreeMap::from([("rotor.dev/token".to_string(), "x".to_string())]);
        let e = check_labels(&dotted).unwrap_err();
        assert!(e.message.contains("rotor.dev/token"), "{e:?}");
        let value = BTreeMap::from([("a".to_string(), "10.0.0.7:443".to_string())]);
        assert!(check_labels(&value).is_err());
    }

    #[test]
    fn traffic_addresses_become_label_values() {
        assert_eq!(
            address_label("127.1.0.5:8080".parse().unwrap()),
            "127-1-0-5_8080"
        );
        assert_eq!(
            address_label("[fd00::7]:443".parse().unwrap()),
            "fd00-0-0-0-0-0-0-7_443"
        );
        let labels = BTreeMap::from([(
            "rotor-traffic-address".into(),
            address_label("10.0.0.7:443".parse().unwrap()),
        )]);
        assert!(check_labels(&labels).is_ok());
    }
}
