//! The replicaset controller: `spec.replicas` Pods named `<replicaset>-<5 random>`, the newest
//! extras deleted on scale-down, and the status counted from the Pods.

use std::sync::Arc;

use rotor_apiserver::{ApiError, Resource};
use serde_json::{Value, json};

use super::{Ctx, Task, differs, events, int, live, merge, owned, pods};

/// Brings ReplicaSet `ns/name`'s Pods to its replica count, then its status to its Pods.
pub async fn reconcile(ctx: &Ctx, ns: &str, name: &str) -> Result<(), ApiError> {
    let replicasets = ctx.server.resource("apps", "v1", "replicasets")?;
    let pods_res = ctx.server.resource("", "v1", "pods")?;
    let Some(rs) = live(&ctx.server, &replicasets, ns, name).await? else {
        return Ok(());
    };
    let mut current: Vec<Value> = owned(&ctx.server, &pods_res, ns, super::uid(&rs))
        .await?
        .into_iter()
        .filter(|p| !rotor_apiserver::object::is_deleting(p))
        .collect();
    let want = usize::try_from(int(&rs, "/spec/replicas", 1)).unwrap_or(0);
    if current.len() < want {
        let created = create_pods(ctx, &rs, want - current.len()).await?;
        current.extend(created);
    } else if current.len() > want {
        pods::sort_newest_first(&mut current);
        let extra: Vec<Value> = current.drain(..current.len() - want).collect();
        pods::delete(ctx, events::REPLICA_SET, &rs, &extra).await?;
    }
    write_status(ctx, &replicasets, &rs, &current).await
}

async fn create_pods(ctx: &Ctx, rs: &Value, count: usize) -> Result<Vec<Value>, ApiError> {
    let mut created = Vec::with_capacity(count);
    for _ in 0..count {
        let (name, node) = (pods::random_name(rs), pods::random_node(ctx.nodes));
        let pod = pods::from_template(rs, events::REPLICA_SET, &name, &node);
        created.push(pods::create(ctx, events::REPLICA_SET, rs, pod).await?);
    }
    let names = created
        .iter()
        .map(|p| rotor_apiserver::object::name(p).to_string())
        .collect();
    let ns = rs["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    ctx.queue
        .after(ctx.ready_delay, Task::PodsReady { ns, names });
    Ok(created)
}

async fn write_status(
    ctx: &Ctx,
    res: &Arc<Resource>,
    rs: &Value,
    current: &[Value],
) -> Result<(), ApiError> {
    let ready = current.iter().filter(|p| pods::is_ready(p)).count();
    let status = json!({
        "replicas": current.len(), "fullyLabeledReplicas": current.len(),
        "readyReplicas": ready, "availableReplicas": ready,
        "observedGeneration": int(rs, "/metadata/generation", 1),
    });
    if !differs(&rs["status"], &status) {
        return Ok(());
    }
    let (ns, name) = (
        rs["metadata"]["namespace"].as_str().unwrap_or("default"),
        rotor_apiserver::object::name(rs),
    );
    merge(&ctx.server, res, ns, name, &json!({"status": status}), true).await
}
