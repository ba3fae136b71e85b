//! The deployment controller's `ScalingReplicaSet` Events (core/v1), one per scaling action.

use rotor_apiserver::object;
use serde_json::{Value, json};

use super::Ctx;

/// Records that Deployment `d` scaled ReplicaSet `rs` from `from` to `to`; a failure is logged,
/// never fatal (an Event is a courtesy).
pub async fn scaled(ctx: &Ctx, d: &Value, rs: &Value, from: i64, to: i64) {
    let direction = if to > from { "up" } else { "down" };
    let message = format!(
        "Scaled {direction} replica set {} from {from} to {to}",
        object::name(rs)
    );
    let event = event(d, "ScalingReplicaSet", &message);
    let ns = d["metadata"]["namespace"].as_str();
    let Ok(res) = ctx.server.resource("", "v1", "events") else {
        return;
    };
    if let Err(e) = ctx.server.create(&res, ns, event, &super::opts()).await {
        tracing::debug!(error = %e, "simulated ScalingReplicaSet event");
    }
}

fn event(d: &Value, reason: &str, message: &str) -> Value {
    let now = object::now_rfc3339();
    let name = format!(
        "{}.{}",
        object::name(d),
        &object::new_uid().replace('-', "")[..16]
    );
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": d["metadata"]["namespace"]},
        "involvedObject": {"apiVersion": "apps/v1", "kind": "Deployment", "name": object::name(d),
            "namespace": d["metadata"]["namespace"], "uid": d["metadata"]["uid"],
            "resourceVersion": d["metadata"]["resourceVersion"]},
        "reason": reason, "message": message, "type": "Normal", "count": 1,
        "source": {"component": "deployment-controller"},
        "reportingComponent": "deployment-controller", "reportingInstance": "",
        "firstTimestamp": now, "lastTimestamp": now,
    })
}
