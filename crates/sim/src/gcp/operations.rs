//! GKE's long-running operations (`container.v1.Operation`, not `google.longrunning`): a
//! create or delete answers one at once, and `GET …/operations/{name}` tells how it goes. An
//! operation's state is read from the simulated cloud when asked: a create is RUNNING while
//! the cluster is provisioning and DONE once it runs or failed (then with `error`, code 8
//! RESOURCE_EXHAUSTED: the cloud ran out of capacity); a delete is DONE once the cluster is gone.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use http::HeaderMap;
use serde_json::{Value, json};

use super::{Enums, GcpError, bearer, rfc3339_now, throttle};
use crate::{CloudClusterState, Sim};

/// What an operation does (`Operation.Type`, google-cloud-container-v1 `src/model.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    CreateCluster,
    DeleteCluster,
}

impl Kind {
    fn enum_value(self) -> (i32, &'static str) {
        match self {
            Kind::CreateCluster => (1, "CREATE_CLUSTER"),
            Kind::DeleteCluster => (2, "DELETE_CLUSTER"),
        }
    }
}

/// One operation, by (project, location, name) in [`super::Gke`].
#[derive(Clone, Debug)]
pub(crate) struct Operation {
    pub kind: Kind,
    /// The cluster's name in GKE and its member in the simulated cloud.
    pub cluster: String,
    pub member: String,
    pub start_time: String,
    /// Once over: when, and the failure if it failed.
    pub done: Option<(String, Option<String>)>,
}

impl Operation {
    pub fn new(kind: Kind, cluster: &str, member: &str) -> Self {
        Operation {
            kind,
            cluster: cluster.to_string(),
            member: member.to_string(),
            start_time: rfc3339_now(),
            done: None,
        }
    }

    /// Brings `done` up to date with the simulated cloud.
    pub fn refresh(&mut self, sim: &Sim) {
        if self.done.is_some() {
            return;
        }
        let state = sim.cloud.get(&self.member);
        let outcome = match (self.kind, state) {
            (Kind::CreateCluster, Some(c)) => match c.state {
                CloudClusterState::Creating => return,
                CloudClusterState::Failed => Some(c.message),
                CloudClusterState::Running | CloudClusterState::Deleting => None,
            },
            // Deleted before it finished provisioning.
            (Kind::CreateCluster, None) => Some("the cluster was deleted".to_string()),
            (Kind::DeleteCluster, Some(_)) => return,
            (Kind::DeleteCluster, None) => None,
        };
        self.done = Some((rfc3339_now(), outcome));
    }
}

/// The operation as GKE answers it. `base` is the API's URL (`http://SIM/gcp/v1`).
pub(crate) fn operation_json(
    enums: Enums,
    base: &str,
    project: &str,
    location: &str,
    name: &str,
    op: &Operation,
) -> Value {
    let status = match op.done {
        None => (2, "RUNNING"),
        Some(_) => (3, "DONE"),
    };
    let mut answer = json!({
        "name": name,
        "zone": location,
        "location": location,
        "operationType": enums.value(op.kind.enum_value()),
        "status": enums.value(status),
        "selfLink": format!("{base}/projects/{project}/locations/{location}/operations/{name}"),
        "targetLink": format!("{base}/projects/{project}/locations/{location}/clusters/{}", op.cluster),
        "startTime": op.start_time,
    });
    if let Some((end, failure)) = &op.done {
        answer["endTime"] = json!(end);
        if let Some(message) = failure {
            answer["statusMessage"] = json!(message);
            answer["error"] = json!({"code": 8, "message": message});
        }
    }
    answer
}

pub(super) fn routes() -> axum::Router<Arc<Sim>> {
    axum::Router::new().route(
        "/projects/{project}/locations/{location}/operations/{operation}",
        get(get_operation),
    )
}

async fn get_operation(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    Path((project, location, name)): Path<(String, String, String)>,
) -> Result<Json<Value>, GcpError> {
    let token = bearer(&headers)?;
    throttle(&sim)?;
    sim.gcp.principals.of(&project).add(&token);
    let base = super::gke::api_base(&sim, &headers);
    let mut ops = sim.gcp.operations();
    let op = ops
        .get_mut(&(project.clone(), location.clone(), name.clone()))
        .ok_or_else(|| {
            GcpError::not_found(format!(
                "projects/{project}/locations/{location}/operations/{name}"
            ))
        })?;
    op.refresh(&sim);
    Ok(Json(operation_json(
        Enums::of(query.as_deref()),
        &base,
        &project,
        &location,
        &name,
        op,
    )))
}
