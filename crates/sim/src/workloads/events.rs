//! The Events the simulated controllers record (core/v1), worded as upstream's: the deployment
//! controller's `ScalingReplicaSet`, and the `SuccessfulCreate` / `SuccessfulDelete` of the
//! controllers that own Pods. A failure to record is logged, never fatal (an Event is a courtesy).

use rotor_apiserver::object;
use serde_json::{Value, json};

use super::Ctx;

/// The object an Event is about: its `apiVersion`, `kind` and the component that reports it.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub component: &'static str,
}

pub const DEPLOYMENT: Source = Source {
    api_version: "apps/v1",
    kind: "Deployment",
    component: "deployment-controller",
};
pub const REPLICA_SET: Source = Source {
    api_version: "apps/v1",
    kind: "ReplicaSet",
    component: "replicaset-controller",
};
pub const STATEFUL_SET: Source = Source {
    api_version: "apps/v1",
    kind: "StatefulSet",
    component: "statefulset-controller",
};
pub const DAEMON_SET: Source = Source {
    api_version: "apps/v1",
    kind: "DaemonSet",
    component: "daemonset-controller",
};
pub const CRON_JOB: Source = Source {
    api_version: "batch/v1",
    kind: "CronJob",
    component: "cronjob-controller",
};
pub const JOB: Source = Source {
    api_version: "batch/v1",
    kind: "Job",
    component: "job-controller",
};

/// Records that Deployment `d` scaled ReplicaSet `rs` from `from` to `to`.
pub async fn scaled(ctx: &Ctx, d: &Value, rs: &Value, from: i64, to: i64) {
    let direction = if to > from { "up" } else { "down" };
    let message = format!(
        "Scaled {direction} replica set {} from {from} to {to}",
        object::name(rs)
    );
    record(ctx, DEPLOYMENT, d, "ScalingReplicaSet", &message).await;
}

/// Records that `owner` created `pod`: the StatefulSet controller's own wording, or the
/// `Created pod: NAME` every other controller shares.
pub async fn created_pod(ctx: &Ctx, source: Source, owner: &Value, pod: &str) {
    let message = match source.kind {
        "StatefulSet" => format!(
            "create Pod {pod} in StatefulSet {} successful",
            object::name(owner)
        ),
        _ => format!("Created pod: {pod}"),
    };
    record(ctx, source, owner, "SuccessfulCreate", &message).await;
}

/// Records that `owner` deleted `pod`, worded as [`created_pod`].
pub async fn deleted_pod(ctx: &Ctx, source: Source, owner: &Value, pod: &str) {
    let message = match source.kind {
        "StatefulSet" => format!(
            "delete Pod {pod} in StatefulSet {} successful",
            object::name(owner)
        ),
        _ => format!("Deleted pod: {pod}"),
    };
    record(ctx, source, owner, "SuccessfulDelete", &message).await;
}

/// Records a Normal Event `reason` about `obj`.
pub async fn record(ctx: &Ctx, source: Source, obj: &Value, reason: &str, message: &str) {
    record_typed(ctx, source, obj, "Normal", reason, message).await;
}

/// Records an Event of `type_` (`Normal`, `Warning`) about `obj`.
pub async fn record_typed(
    ctx: &Ctx,
    source: Source,
    obj: &Value,
    type_: &str,
    reason: &str,
    message: &str,
) {
    let mut event = event(source, obj, reason, message);
    event["type"] = json!(type_);
    let ns = obj["metadata"]["namespace"].as_str();
    let Ok(res) = ctx.server.resource("", "v1", "events") else {
        return;
    };
    if let Err(e) = ctx.server.create(&res, ns, event, &super::opts()).await {
        tracing::debug!(error = %e, reason, "simulated event");
    }
}

fn event(source: Source, obj: &Value, reason: &str, message: &str) -> Value {
    let now = object::now_rfc3339();
    let name = format!(
        "{}.{}",
        object::name(obj),
        &object::new_uid().replace('-', "")[..16]
    );
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": obj["metadata"]["namespace"]},
        "involvedObject": {"apiVersion": source.api_version, "kind": source.kind,
            "name": object::name(obj), "namespace": obj["metadata"]["namespace"],
            "uid": obj["metadata"]["uid"], "resourceVersion": obj["metadata"]["resourceVersion"]},
        "reason": reason, "message": message, "type": "Normal", "count": 1,
        "source": {"component": source.component},
        "reportingComponent": source.component, "reportingInstance": "",
        "firstTimestamp": now, "lastTimestamp": now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_names_its_object_and_component() {
        let sts = json!({"metadata": {"name": "db", "namespace": "shop", "uid": "u9"}});
        let e = event(STATEFUL_SET, &sts, "SuccessfulCreate", "m");
        assert_eq!(e["involvedObject"]["kind"], "StatefulSet");
        assert_eq!(e["involvedObject"]["uid"], "u9");
        assert_eq!(e["source"]["component"], "statefulset-controller");
        assert!(
            e["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("db."))
        );
    }
}
