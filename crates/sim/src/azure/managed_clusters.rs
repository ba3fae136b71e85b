//! AKS managed clusters (`Microsoft.ContainerService/managedClusters`): create with the agent
//! pools inline (`properties.agentPoolProfiles`), get, delete, the agent pools as read-only
//! sub-resources, and the user kubeconfig. A managed cluster is a member of the simulated
//! cloud named `aks-<digest of subscription, group, name>`; `provisioningState` follows the
//! cloud's state (Creating → Succeeded, Deleting, Failed), and so do its pools'.
//!
//! Create-or-update as ARM's PUT: a PUT on an existing cluster updates it (here: its tags only)
//! unless it carries `If-None-Match: *`, which makes it create-only — 412 `PreconditionFailed`
//! when the name is taken, whoever asks. The tag `rotor-token` is the cloud's idempotency
//! token; where the member takes application traffic shows as the tag `rotor-traffic-address`
//! (`127-1-0-5_8080`, the encoding of the GKE labels, as rotor reads both).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Json;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::errors::ArmError;
use super::operations::{self, Kind, Operation};
use super::path::ClusterId;
use crate::cloud::CloudError;
use crate::principals::{Directory, PrincipalTokens};
use crate::{CloudClusterState, CreateRequest, Sim};

/// The tag a cluster's idempotency token travels in.
const TAG_TOKEN: &str = "rotor-token";
/// The tag that says where a cluster takes application traffic.
const TAG_TRAFFIC_ADDRESS: &str = "rotor-traffic-address";

/// (subscription, group, name), lowercase: ARM's names are case-insensitive.
type Key = (String, String, String);

/// What one request handler needs.
pub(super) struct Call<'a> {
    pub sim: &'a Sim,
    /// `http://SIM/azure`
    pub base: &'a str,
    pub headers: &'a HeaderMap,
}

/// AKS's managed clusters and their operations.
#[derive(Default)]
pub(crate) struct Aks {
    clusters: Mutex<BTreeMap<Key, ManagedCluster>>,
    operations: Mutex<BTreeMap<(String, String), Operation>>,
    /// The tokens that called ARM in each subscription (lowercase): who an Azure AD cluster's
    /// API lets in (see `crate::principals`).
    pub(super) principals: Directory,
}

impl Aks {
    fn table(&self) -> MutexGuard<'_, BTreeMap<Key, ManagedCluster>> {
        self.clusters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The member made for the managed cluster `name` (in any subscription and group).
    pub(crate) fn member_of(&self, name: &str) -> Option<String> {
        self.table()
            .iter()
            .find(|(key, _)| key.2.eq_ignore_ascii_case(name))
            .map(|(_, c)| c.member.clone())
    }

    /// Operations by (subscription in lowercase, id).
    pub(super) fn operations(&self) -> MutexGuard<'_, BTreeMap<(String, String), Operation>> {
        self.operations.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct ManagedCluster {
    id: ClusterId,
    location: String,
    member: String,
    /// As asked (`1.34`).
    version: String,
    dns_prefix: String,
    tags: BTreeMap<String, String>,
    identity: Value,
    pools: Vec<Value>,
    /// `properties.aadProfile` as given: with `managed: true` the cluster's API takes Azure
    /// AD tokens and its user kubeconfig names `kubelogin`.
    aad_profile: Option<Value>,
    /// The operation of a delete in progress, answered again to a repeated DELETE.
    deleting: Option<String>,
}

#[derive(Deserialize)]
struct PutBody {
    #[serde(default)]
    location: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    identity: Value,
    #[serde(default)]
    properties: PutProperties,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PutProperties {
    #[serde(default)]
    kubernetes_version: String,
    #[serde(default)]
    dns_prefix: String,
    #[serde(default)]
    agent_pool_profiles: Vec<Value>,
    #[serde(default)]
    aad_profile: Option<Value>,
}

/// The member's name: short, path-safe, one per (subscription, group, name).
fn member_name(key: &Key) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    format!("aks-{:012x}", h.finish() & 0xffff_ffff_ffff)
}

/// ARM's rule for managed cluster names: 1–63 letters, digits, `-` or `_`, starting and
/// ending with a letter or digit.
fn check_cluster_name(name: &str) -> Result<(), ArmError> {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let ok = (1..=63).contains(&name.len())
        && edge(name.chars().next())
        && edge(name.chars().last())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        return Ok(());
    }
    Err(ArmError::invalid(format!(
        "resourceName {name:?} is invalid: 1-63 letters, digits, '-' or '_', starting and \
         ending with a letter or digit."
    )))
}

/// AKS's rule for Linux agent pool names: 1–12 lowercase letters or digits, starting with a
/// letter.
fn check_pool_name(i: usize, name: &str) -> Result<(), ArmError> {
    let ok = (1..=12).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if ok {
        return Ok(());
    }
    Err(ArmError::invalid(format!(
        "properties.agentPoolProfiles[{i}].name {name:?} is invalid: an agent pool name must \
         be 1-12 lowercase letters or digits and start with a letter."
    )))
}

/// Azure's rule for tag names: no `<`, `>`, `%`, `&`, `\`, `?`, `/`; at most 512 characters,
/// values at most 256.
fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), ArmError> {
    for (k, v) in tags {
        if k.is_empty() || k.len() > 512 || k.contains(['<', '>', '%', '&', '\\', '?', '/']) {
            return Err(ArmError::invalid(format!(
                "tags[{k:?}]: tag names may not contain <, >, %, &, \\, ?, / and are 1-512 \
                 characters long."
            )));
        }
        if v.len() > 256 {
            return Err(ArmError::invalid(format!(
                "tags[{k:?}]: tag values are at most 256 characters long."
            )));
        }
    }
    Ok(())
}

/// The request's pools, checked: at least one, names as AKS wants them, one in mode System.
fn check_pools(pools: &[Value]) -> Result<(), ArmError> {
    if pools.is_empty() {
        return Err(ArmError::invalid(
            "properties.agentPoolProfiles is empty: a managed cluster needs a system agent pool.",
        ));
    }
    for (i, pool) in pools.iter().enumerate() {
        check_pool_name(i, pool["name"].as_str().unwrap_or_default())?;
    }
    if !pools.iter().any(|p| p["mode"] == "System") {
        return Err(ArmError::invalid(
            "properties.agentPoolProfiles: at least one agent pool must have mode System.",
        ));
    }
    Ok(())
}

/// A traffic address as the tag value rotor reads (the GCP label encoding, for both clouds).
fn address_tag(addr: SocketAddr) -> String {
    crate::gcp::address_label(addr)
}

/// ARM's `provisioningState` for the cloud's state.
fn provisioning_state(state: CloudClusterState) -> &'static str {
    match state {
        CloudClusterState::Creating => "Creating",
        CloudClusterState::Running => "Succeeded",
        CloudClusterState::Deleting => "Deleting",
        CloudClusterState::Failed => "Failed",
    }
}

/// An agent pool profile as AKS answers it: as asked, plus its state and version.
fn pool_json(pool: &Value, state: &str, version: &str) -> Value {
    let mut p = pool.clone();
    p["provisioningState"] = json!(state);
    p["orchestratorVersion"] = json!(version);
    p["currentOrchestratorVersion"] = json!(format!("{version}.0"));
    p["powerState"] = json!({"code": "Running"});
    p
}

/// The cluster as ARM answers it; None once the cloud has deleted it.
fn cluster_json(ctx: &Call<'_>, c: &ManagedCluster) -> Option<Value> {
    let cloud = ctx.sim.cloud.get(&c.member)?;
    let state = provisioning_state(cloud.state);
    let mut tags = c.tags.clone();
    if let Some(addr) = cloud
        .traffic_address
        .as_deref()
        .and_then(|a| a.parse::<SocketAddr>().ok())
    {
        tags.entry(TAG_TRAFFIC_ADDRESS.into())
            .or_insert_with(|| address_tag(addr));
    }
    let pools: Vec<Value> = c
        .pools
        .iter()
        .map(|p| pool_json(p, state, &c.version))
        .collect();
    let mut properties = json!({
        "provisioningState": state,
        "powerState": {"code": "Running"},
        "kubernetesVersion": c.version,
        "currentKubernetesVersion": format!("{}.0", c.version),
        "dnsPrefix": c.dns_prefix,
        "agentPoolProfiles": pools,
        "nodeResourceGroup": format!("MC_{}_{}_{}", c.id.group, c.id.name, c.location),
    });
    if let Some(aad) = &c.aad_profile {
        properties["aadProfile"] = aad.clone();
    }
    if cloud.state != CloudClusterState::Creating {
        // AKS's fqdn is a host its clients reach over https; the simulator's members sit
        // under a path, so it answers the whole URL (rotor uses one with a scheme as it is,
        // as it does GKE's endpoint).
        let server = ctx.base.trim_end_matches("/azure");
        let endpoint = crate::tls::endpoint(ctx.sim.members_tls(), server, &c.member);
        properties["fqdn"] = json!(endpoint.server);
    }
    Some(json!({
        "id": c.id.resource_id(),
        "name": c.id.name,
        "type": "Microsoft.ContainerService/ManagedClusters",
        "location": c.location,
        "tags": tags,
        "identity": c.identity,
        "properties": properties,
    }))
}

/// The live cluster of `id` (a record whose member the cloud has deleted is dropped).
fn live<'t>(
    sim: &Sim,
    table: &'t mut BTreeMap<Key, ManagedCluster>,
    id: &ClusterId,
) -> Result<&'t mut ManagedCluster, ArmError> {
    let key = id.key();
    if table
        .get(&key)
        .is_some_and(|c| sim.cloud.get(&c.member).is_none())
    {
        table.remove(&key);
    }
    table.get_mut(&key).ok_or_else(|| {
        ArmError::not_found(
            "Microsoft.ContainerService/managedClusters",
            &id.name,
            &id.group,
        )
    })
}

/// `If-None-Match: *`: the PUT may only create.
fn create_only(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "*")
}

/// `PUT …/managedClusters/{name}`: 201 + `Azure-AsyncOperation` for a new cluster, 200 for an
/// update, 412 for a create-only PUT on an existing one.
pub(super) fn put(ctx: &Call<'_>, id: &ClusterId, body: &[u8]) -> Result<Response, ArmError> {
    let req: PutBody = serde_json::from_slice(body)
        .map_err(|e| ArmError::invalid(format!("The request content was invalid: {e}")))?;
    check_cluster_name(&id.name)?;
    check_tags(&req.tags)?;
    let mut table = ctx.sim.aks.table();
    if let Ok(existing) = live(ctx.sim, &mut table, id) {
        if create_only(ctx.headers) {
            return Err(ArmError::new(
                StatusCode::PRECONDITION_FAILED,
                "PreconditionFailed",
                format!(
                    "The condition 'If-None-Match: *' was not met: managed cluster '{}' exists.",
                    id.name
                ),
            ));
        }
        if existing.deleting.is_some() {
            return Err(ArmError::new(
                StatusCode::CONFLICT,
                "OperationNotAllowed",
                format!("Managed cluster '{}' is being deleted.", id.name),
            ));
        }
        existing.tags = req.tags;
        let answer = cluster_json(ctx, existing).unwrap_or(Value::Null);
        return Ok((StatusCode::OK, Json(answer)).into_response());
    }
    if req.location.is_empty() {
        return Err(ArmError::invalid("location is required."));
    }
    check_pools(&req.properties.agent_pool_profiles)?;
    let cluster = create(ctx, id, req)?;
    let answer = cluster_json(ctx, &cluster).unwrap_or(Value::Null);
    let op = operations::start(
        ctx.sim,
        &id.subscription,
        &cluster.location,
        Kind::Create,
        &cluster.member,
    );
    table.insert(id.key(), cluster);
    drop(table);
    let mut resp = (StatusCode::CREATED, Json(answer)).into_response();
    operations::link_headers(ctx, &op, resp.headers_mut(), false);
    Ok(resp)
}

/// Asks the simulated cloud for the member; the record to keep.
fn create(ctx: &Call<'_>, id: &ClusterId, req: PutBody) -> Result<ManagedCluster, ArmError> {
    let member = member_name(&id.key());
    let version = match req.properties.kubernetes_version.as_str() {
        "" => format!("1.{}", ctx.sim.config().kubernetes_minor),
        v => v.to_string(),
    };
    if let Some(tenant) = aad_tenant(req.properties.aad_profile.as_ref()) {
        let subscription = id.subscription.to_ascii_lowercase();
        let principals = ctx.sim.aks.principals.of(&subscription);
        tracing::debug!(member, tenant, "AKS cluster with Azure AD");
        ctx.sim.accept_tokens(
            &member,
            Arc::new(PrincipalTokens {
                scope: subscription,
                principals,
            }),
        );
    }
    let created = ctx.sim.cloud.create(CreateRequest {
        name: member.clone(),
        kubernetes_version: version.clone(),
        idempotency_token: req.tags.get(TAG_TOKEN).cloned().unwrap_or_default(),
        cloud_name: Some(id.name.clone()),
    });
    match created {
        Ok(_) => {}
        Err(CloudError::BadVersion { .. }) => {
            return Err(ArmError::invalid(format!(
                "properties.kubernetesVersion {version:?} is not supported in this region."
            )));
        }
        Err(CloudError::Unavailable { .. }) => {
            return Err(ArmError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The service is currently unavailable (simulated outage); nothing was created.",
            ));
        }
        Err(other) => return Err(ArmError::internal(other.to_string())),
    }
    let minor: String = version.splitn(3, '.').take(2).collect::<Vec<_>>().join(".");
    Ok(ManagedCluster {
        id: id.clone(),
        location: req.location,
        member,
        version: minor,
        dns_prefix: if req.properties.dns_prefix.is_empty() {
            id.name.clone()
        } else {
            req.properties.dns_prefix
        },
        tags: req.tags,
        identity: if req.identity.is_null() {
            json!({"type": "SystemAssigned"})
        } else {
            req.identity
        },
        pools: req.properties.agent_pool_profiles,
        aad_profile: req.properties.aad_profile,
        deleting: None,
    })
}

pub(super) fn get(ctx: &Call<'_>, id: &ClusterId) -> Result<Response, ArmError> {
    let mut table = ctx.sim.aks.table();
    let c = live(ctx.sim, &mut table, id)?;
    let answer = cluster_json(ctx, c).ok_or_else(|| {
        ArmError::not_found(
            "Microsoft.ContainerService/managedClusters",
            &id.name,
            &id.group,
        )
    })?;
    Ok(Json(answer).into_response())
}

/// `GET /subscriptions/{s}/providers/Microsoft.ContainerService/managedClusters`: every live
/// cluster of the subscription, in one page.
pub(super) fn list_in_subscription(
    ctx: &Call<'_>,
    subscription: &str,
) -> Result<Response, ArmError> {
    let mut table = ctx.sim.aks.table();
    table.retain(|_, c| ctx.sim.cloud.get(&c.member).is_some());
    let sub = subscription.to_ascii_lowercase();
    let clusters: Vec<Value> = table
        .iter()
        .filter(|((s, _, _), _)| *s == sub)
        .filter_map(|(_, c)| cluster_json(ctx, c))
        .collect();
    Ok(Json(json!({"value": clusters})).into_response())
}

/// `DELETE`: 202 with the operation's links (the same operation again while it runs), 204
/// when there is no such cluster.
pub(super) fn delete(ctx: &Call<'_>, id: &ClusterId) -> Result<Response, ArmError> {
    let mut table = ctx.sim.aks.table();
    let Ok(c) = live(ctx.sim, &mut table, id) else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let op = match &c.deleting {
        Some(op) => op.clone(),
        None => {
            ctx.sim
                .cloud
                .delete(&c.member)
                .map_err(|e| ArmError::internal(e.to_string()))?;
            let op = operations::start(
                ctx.sim,
                &id.subscription,
                &c.location,
                Kind::Delete,
                &c.member,
            );
            c.deleting = Some(op.id.clone());
            op.id
        }
    };
    let location = c.location.clone();
    drop(table);
    let mut resp = StatusCode::ACCEPTED.into_response();
    let op = super::path::OperationId {
        subscription: id.subscription.clone(),
        location,
        id: op,
    };
    operations::link_headers(ctx, &op, resp.headers_mut(), true);
    Ok(resp)
}

/// The agent pools as ARM's sub-resources.
fn pools_json(ctx: &Call<'_>, id: &ClusterId) -> Result<Vec<(String, Value)>, ArmError> {
    let mut table = ctx.sim.aks.table();
    let c = live(ctx.sim, &mut table, id)?;
    let state = ctx
        .sim
        .cloud
        .get(&c.member)
        .map_or("Deleting", |m| provisioning_state(m.state));
    Ok(c.pools
        .iter()
        .map(|p| {
            let name = p["name"].as_str().unwrap_or_default().to_string();
            let mut properties = pool_json(p, state, &c.version);
            if let Some(o) = properties.as_object_mut() {
                o.remove("name");
            }
            let pool = json!({
                "id": format!("{}/agentPools/{name}", c.id.resource_id()),
                "name": name,
                "type": "Microsoft.ContainerService/managedClusters/agentPools",
                "properties": properties,
            });
            (name, pool)
        })
        .collect())
}

pub(super) fn list_pools(ctx: &Call<'_>, id: &ClusterId) -> Result<Response, ArmError> {
    let pools: Vec<Value> = pools_json(ctx, id)?.into_iter().map(|(_, p)| p).collect();
    Ok(Json(json!({"value": pools})).into_response())
}

pub(super) fn get_pool(ctx: &Call<'_>, id: &ClusterId, pool: &str) -> Result<Response, ArmError> {
    pools_json(ctx, id)?
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(pool))
        .map(|(_, p)| Json(p).into_response())
        .ok_or_else(|| {
            ArmError::not_found(
                "Microsoft.ContainerService/managedClusters/agentPools",
                &format!("{}/{pool}", id.name),
                &id.group,
            )
        })
}

/// `POST …/listClusterUserCredential`: a kubeconfig (base64 YAML) whose server is the member's
/// URL and whose token is the member's own, as an AKS local account's.
pub(super) fn user_credential(ctx: &Call<'_>, id: &ClusterId) -> Result<Response, ArmError> {
    let (member, aad) = {
        let mut table = ctx.sim.aks.table();
        let c = live(ctx.sim, &mut table, id)?;
        (c.member.clone(), aad_tenant(c.aad_profile.as_ref()))
    };
    let token = ctx.sim.cloud.credentials(&member).map_err(|e| match e {
        CloudError::NotRunning { state, .. } => ArmError::new(
            StatusCode::CONFLICT,
            "OperationNotAllowed",
            format!(
                "Managed cluster '{}' is {}: no credentials yet.",
                id.name,
                provisioning_state(state)
            ),
        ),
        _ => ArmError::not_found(
            "Microsoft.ContainerService/managedClusters",
            &id.name,
            &id.group,
        ),
    })?;
    let base = ctx.base.trim_end_matches("/azure");
    let endpoint = crate::tls::endpoint(ctx.sim.members_tls(), base, &member);
    let ca = ctx.sim.members_tls().map(|t| t.ca_base64());
    let yaml = match aad {
        Some(tenant) => kubelogin_kubeconfig(&id.name, &endpoint.server, ca.as_deref(), &tenant),
        None => crate::kubeconfig_yaml_with_ca(&id.name, &endpoint.server, ca.as_deref(), &token),
    };
    let value = base64::engine::general_purpose::STANDARD.encode(yaml);
    Ok(Json(json!({"kubeconfigs": [{"name": "clusterUser", "value": value}]})).into_response())
}

/// The Azure AD tenant of a cluster whose `aadProfile` says `managed: true` (`tenantID`, or
/// the simulator's own tenant when not given), else None.
fn aad_tenant(profile: Option<&Value>) -> Option<String> {
    let profile = profile.filter(|p| p["managed"] == json!(true))?;
    let tenant = profile["tenantID"].as_str().unwrap_or(SIM_TENANT);
    Some(tenant.to_string())
}

/// The tenant an Azure AD cluster is in when its PUT named none.
const SIM_TENANT: &str = "72f988bf-0000-4000-8000-000000000000";

/// The user kubeconfig AKS answers for a cluster with Azure AD (`format=exec`, the default
/// since Kubernetes 1.24): no credential in it, `kubelogin` to get one for AKS's server
/// application.
fn kubelogin_kubeconfig(name: &str, server: &str, ca: Option<&str>, tenant: &str) -> String {
    let args = [
        "get-token",
        "--environment",
        "AzurePublicCloud",
        "--server-id",
        AKS_AAD_SERVER_ID,
        "--client-id",
        AKS_AAD_CLIENT_ID,
        "--tenant-id",
        tenant,
        "--login",
        "devicecode",
    ];
    let user = format!("clusterUser_{name}");
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": crate::kubeconfig_cluster(server, ca)}],
        "users": [{"name": user, "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "kubelogin",
            "args": args,
            "env": null,
            "installHint": "kubelogin is not installed which is required to connect to AAD enabled cluster.",
            "provideClusterInfo": false,
            "interactiveMode": "IfAvailable",
        }}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user}}],
        "current-context": name,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// The application id of AKS's Azure AD server application (the audience of the tokens an
/// Azure AD cluster's API takes), the same in every tenant.
const AKS_AAD_SERVER_ID: &str = "6dae42f8-4368-4678-94ff-3960e28e3630";

/// AKS's Azure AD client application: the public client `kubelogin`'s device code login
/// acts as.
const AKS_AAD_CLIENT_ID: &str = "80faf920-1908-4b52-b5ef-a8e7bedfc67a";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_tags_follow_azures_rules_and_errors_name_the_field() {
        assert!(check_cluster_name("prod-a-3f9c2e1b7a").is_ok());
        assert!(check_cluster_name("A_b").is_ok());
        for bad in ["", "-a", "a-", "a.b", &"a".repeat(64)] {
            assert!(check_cluster_name(bad).is_err(), "{bad}");
        }
        assert!(check_pool_name(0, "system").is_ok());
        for bad in ["", "System", "1pool", "pool-a", "abcdefghijklm"] {
            let e = check_pool_name(2, bad).unwrap_err();
            assert!(e.message.contains("agentPoolProfiles[2].name"), "{e:?}");
        }
        let slash = BTreeMap::from([("rotor.dev/token".to_string(), "x".to_string())]);
        assert!(check_tags(&slash).is_err());
        let ok = BTreeMap::from([("rotor-token".to_string(), "0af3".to_string())]);
        assert!(check_tags(&ok).is_ok());
        let user_only = [json!({"name": "user", "mode": "User"})];
        assert!(check_pools(&user_only).is_err(), "no System pool");
        assert!(check_pools(&[]).is_err());
    }
}
