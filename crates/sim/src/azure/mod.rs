//! Azure Resource Manager as rotor's `rotor-azure` client (azure_core's pipeline) sees it, at
//! `/azure`: AKS's `Microsoft.ContainerService` managed clusters with their agent pools, the
//! long-running operations they answer with, and `listClusterUserCredential`
//! (api-version 2026-01-01, `specification/containerservice/…/aks/stable/2026-01-01`); and
//! Traffic Manager's profiles and external endpoints (`traffic_manager`, api-version
//! 2022-04-01). Every managed cluster created here is a simulated member cluster, made by the
//! simulated cloud with its latency and faults.
//!
//! ARM's path segments are case-insensitive (`resourceGroups` and `resourcegroups` are one
//! path), which axum's router is not: one catch-all route parses the path ([`path::ArmPath`]).
//! Links in answers (`Azure-AsyncOperation`, `Location`, kubeconfig servers) are built from the
//! simulator's configured public URL, never from `Host`. Who calls is a bearer token; the
//! simulator has no Azure AD, so any token may act in any subscription, and a request without
//! one is refused as ARM refuses it (401 `AuthenticationFailed`).

mod errors;
mod managed_clusters;
mod operations;
mod path;
#[cfg(test)]
mod tests_http;
mod traffic_manager;

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use axum::routing::any;
use http::{HeaderMap, Method, Uri};

use crate::Sim;
use errors::ArmError;
use path::ArmPath;

pub(crate) use managed_clusters::Aks;
pub(crate) use traffic_manager::TrafficManager;

/// The api-version the front speaks (and writes into the links it answers).
pub(crate) const API_VERSION: &str = "2026-01-01";

/// The routes of `/azure` and below.
pub(crate) fn router(sim: Arc<Sim>) -> axum::Router {
    axum::Router::new()
        .route("/azure/{*rest}", any(dispatch))
        .with_state(sim)
}

/// One ARM request (the route is not nested: `uri` is the whole path): who calls, throttling, then the handler its path names.
async fn dispatch(
    State(sim): State<Arc<Sim>>,
    uri: Uri,
    method: Method,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ArmError> {
    let rest = uri.path().strip_prefix("/azure").unwrap_or_default();
    let path = ArmPath::parse(rest).ok_or_else(|| ArmError::no_route(&method, rest))?;
    let token = bearer(&headers)?;
    if let Some(retry_after) = sim.cloud.take_rate_limit() {
        return Err(ArmError::throttled(retry_after));
    }
    if let Some(subscription) = subscription_of(rest) {
        sim.aks.principals.of(&subscription).add(token);
    }
    let base = api_base(&sim)?;
    let ctx = managed_clusters::Call {
        sim: &sim,
        base: &base,
        headers: &headers,
    };
    match (path, method) {
        (ArmPath::SubscriptionClusters(sub), Method::GET) => {
            managed_clusters::list_in_subscription(&ctx, &sub)
        }
        (ArmPath::Cluster(id), Method::PUT) => managed_clusters::put(&ctx, &id, &body),
        (ArmPath::Cluster(id), Method::GET) => managed_clusters::get(&ctx, &id),
        (ArmPath::Cluster(id), Method::DELETE) => managed_clusters::delete(&ctx, &id),
        (ArmPath::AgentPools(id), Method::GET) => managed_clusters::list_pools(&ctx, &id),
        (ArmPath::AgentPool(id, pool), Method::GET) => managed_clusters::get_pool(&ctx, &id, &pool),
        (ArmPath::UserCredential(id), Method::POST) => managed_clusters::user_credential(&ctx, &id),
        (ArmPath::Operation(op), Method::GET) => operations::status(&ctx, &op),
        (ArmPath::OperationResult(op), Method::GET) => operations::result(&ctx, &op),
        (ArmPath::Profile(id), method) => {
            traffic_manager::profile(&sim, &id, &method, uri.query(), &body)
        }
        (ArmPath::TmEndpoint(at), method) => {
            traffic_manager::endpoint(&sim, &at, &method, uri.query(), &body)
        }
        (_, method) => Err(ArmError::no_route(&method, rest)),
    }
}

/// The caller's bearer token: a secret, never logged nor answered.
fn bearer(headers: &HeaderMap) -> Result<&str, ArmError> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(ArmError::unauthenticated)
}

/// The subscription an ARM path is in (`/subscriptions/{id}/…`), lowercase: the caller acts
/// there, and so becomes one of its principals (see `crate::principals`).
fn subscription_of(path: &str) -> Option<String> {
    let mut segments = path.trim_start_matches('/').split('/');
    let first = segments.next()?;
    let id = segments.next().filter(|id| !id.is_empty())?;
    first
        .eq_ignore_ascii_case("subscriptions")
        .then(|| id.to_ascii_lowercase())
}

/// `http://SIM/azure`: the simulator's public URL, which it must know to answer links.
fn api_base(sim: &Sim) -> Result<String, ArmError> {
    sim.public_url()
        .map(|u| format!("{}/azure", u.trim_end_matches('/')))
        .ok_or_else(|| {
            ArmError::internal("the simulator does not know its public URL (set_public_url)")
        })
}

/// Now, as ARM's timestamps (RFC 3339, UTC).
fn rfc3339_now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map_or_else(|_| jiff::Timestamp::now().to_string(), |t| t.to_string())
}
