//! ARM's long-running operations as AKS answers them: a create or delete answers at once with
//! `Azure-AsyncOperation` (`…/locations/{loc}/operations/{id}`: a status document) and, for a
//! delete, `Location` (`…/locations/{loc}/operationresults/{id}`: 202 while it runs), both with
//! `Retry-After`. The state is read from the simulated cloud when asked: a create is
//! `InProgress` while the member is provisioning, then `Succeeded`, or `Failed` with `error`
//! (code `AllocationFailed`: the simulated cloud ran out of capacity); a delete succeeds once
//! the member is gone.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Value, json};

use super::errors::ArmError;
use super::managed_clusters::Call;
use super::path::OperationId;
use super::{API_VERSION, rfc3339_now};
use crate::{CloudClusterState, Sim};

/// The error code of a create the simulated cloud failed.
const FAILED_CREATE_CODE: &str = "AllocationFailed";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Create,
    Delete,
}

/// One operation, by (subscription in lowercase, id) in [`super::Aks`].
#[derive(Clone, Debug)]
pub(crate) struct Operation {
    kind: Kind,
    location: String,
    member: String,
    start_time: String,
    /// Once over: when, and the failure if it failed.
    done: Option<(String, Option<String>)>,
}

impl Operation {
    /// Brings `done` up to date with the simulated cloud.
    fn refresh(&mut self, sim: &Sim) {
        if self.done.is_some() {
            return;
        }
        let outcome = match (self.kind, sim.cloud.get(&self.member)) {
            (Kind::Create, Some(c)) => match c.state {
                CloudClusterState::Creating => return,
                CloudClusterState::Failed => Some(c.message),
                CloudClusterState::Running | CloudClusterState::Deleting => None,
            },
            (Kind::Create, None) => Some("the managed cluster was deleted".to_string()),
            (Kind::Delete, Some(_)) => return,
            (Kind::Delete, None) => None,
        };
        self.done = Some((rfc3339_now(), outcome));
    }
}

/// Records a new operation on `member`; its address.
pub(super) fn start(
    sim: &Sim,
    subscription: &str,
    location: &str,
    kind: Kind,
    member: &str,
) -> OperationId {
    let id = uuid();
    let op = Operation {
        kind,
        location: location.to_string(),
        member: member.to_string(),
        start_time: rfc3339_now(),
        done: None,
    };
    sim.aks
        .operations()
        .insert((subscription.to_ascii_lowercase(), id.clone()), op);
    OperationId {
        subscription: subscription.to_string(),
        location: location.to_string(),
        id,
    }
}

/// A random id in the shape of ARM's (a UUID).
fn uuid() -> String {
    let n: u128 = rand::random();
    let h = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// `…/locations/{loc}/{kind}/{id}?api-version=…` under the front's base.
fn link(ctx: &Call<'_>, op: &OperationId, kind: &str) -> String {
    format!(
        "{}/subscriptions/{}/providers/Microsoft.ContainerService/locations/{}/{kind}/{}?api-version={API_VERSION}",
        ctx.base, op.subscription, op.location, op.id
    )
}

/// The seconds to wait before polling: the cloud's create latency, at least 1.
fn retry_after(sim: &Sim) -> HeaderValue {
    let secs = sim.cloud.create_latency().as_secs_f64().ceil().max(1.0) as u64;
    HeaderValue::from(secs)
}

/// Adds `Azure-AsyncOperation`, `Retry-After` and, when asked, `Location`.
pub(super) fn link_headers(
    ctx: &Call<'_>,
    op: &OperationId,
    headers: &mut HeaderMap,
    location: bool,
) {
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    put("azure-asyncoperation", link(ctx, op, "operations"));
    if location {
        put("location", link(ctx, op, "operationresults"));
    }
    headers.insert(http::header::RETRY_AFTER, retry_after(ctx.sim));
}

/// The operation, brought up to date; 404 when unknown or asked for in another location.
fn refreshed(ctx: &Call<'_>, op: &OperationId) -> Result<Operation, ArmError> {
    let mut ops = ctx.sim.aks.operations();
    let found = ops
        .get_mut(&(op.subscription.to_ascii_lowercase(), op.id.clone()))
        .filter(|o| o.location.eq_ignore_ascii_case(&op.location))
        .ok_or_else(|| {
            ArmError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("Operation {} was not found in {}.", op.id, op.location),
            )
        })?;
    found.refresh(ctx.sim);
    Ok(found.clone())
}

/// `GET …/operations/{id}`: the status document.
pub(super) fn status(ctx: &Call<'_>, op: &OperationId) -> Result<Response, ArmError> {
    let o = refreshed(ctx, op)?;
    let mut answer = json!({
        "id": format!(
            "/subscriptions/{}/providers/Microsoft.ContainerService/locations/{}/operations/{}",
            op.subscription, o.location, op.id
        ),
        "name": op.id,
        "status": "InProgress",
        "startTime": o.start_time,
    });
    if let Some((end, failure)) = &o.done {
        answer["endTime"] = json!(end);
        answer["status"] = json!(if failure.is_some() {
            "Failed"
        } else {
            "Succeeded"
        });
        if let Some(message) = failure {
            answer["error"] = json!({"code": FAILED_CREATE_CODE, "message": message});
        }
    }
    Ok(Json::<Value>(answer).into_response())
}

/// `GET …/operationresults/{id}`: 202 (with the links again) while it runs, 204 once it
/// succeeded, the operation's error once it failed.
pub(super) fn result(ctx: &Call<'_>, op: &OperationId) -> Result<Response, ArmError> {
    let o = refreshed(ctx, op)?;
    match o.done {
        None => {
            let mut resp = StatusCode::ACCEPTED.into_response();
            link_headers(ctx, op, resp.headers_mut(), true);
            Ok(resp)
        }
        Some((_, None)) => Ok(StatusCode::NO_CONTENT.into_response()),
        Some((_, Some(message))) => Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            FAILED_CREATE_CODE,
            message,
        )),
    }
}
