//! The daemonset controller: one Pod on every simulated node its `nodeSelector` admits, bound
//! to that node (node affinity on `metadata.name`, as upstream lets the scheduler bind it) and
//! labelled with its revision's hash and the DaemonSet's generation. A `RollingUpdate` deletes
//! Pods of an older revision while fewer than `maxUnavailable` are unavailable, and the next pass
//! recreates them; `OnDelete` leaves that to the user. The status counts the nodes served.

use std::collections::BTreeMap;
use std::sync::Arc;

use rotor_apiserver::{ApiError, Resource, object};
use serde_json::{Value, json};

use super::controller_revision::{self, POD_LABEL};
use super::{Ctx, Task, differs, events, int, live, merge, owned, pods};

/// The DaemonSet's generation on its Pods (deprecated upstream, still set).
const GENERATION_LABEL: &str = "pod-template-generation";

/// Brings DaemonSet `ns/name`'s Pods in line with the nodes and its template, then its status.
pub async fn reconcile(ctx: &Ctx, ns: &str, name: &str) -> Result<(), ApiError> {
    let res = ctx.server.resource("apps", "v1", "daemonsets")?;
    let pods_res = ctx.server.resource("", "v1", "pods")?;
    let Some(ds) = live(&ctx.server, &res, ns, name).await? else {
        return Ok(());
    };
    let history = controller_revision::sync(ctx, events::DAEMON_SET, &ds, POD_LABEL).await?;
    let hash = history.update["metadata"]["labels"][POD_LABEL]
        .as_str()
        .unwrap_or("")
        .to_string();
    let nodes = eligible_nodes(ctx, &ds).await?;
    let mut current: Vec<Value> = owned(&ctx.server, &pods_res, ns, super::uid(&ds))
        .await?
        .into_iter()
        .filter(|p| !object::is_deleting(p))
        .collect();
    let (create, delete) = plan(&ds, &nodes, &current, &hash);
    create_pods(ctx, &ds, &hash, &create).await?;
    let doomed: Vec<Value> = current
        .iter()
        .filter(|p| delete.iter().any(|n| n == object::name(p)))
        .cloned()
        .collect();
    pods::delete(ctx, events::DAEMON_SET, &ds, &doomed).await?;
    current.retain(|p| !delete.iter().any(|n| n == object::name(p)));
    // Kept: the update revision and every revision a Pod still runs.
    let in_use = |cr: &Value| {
        let h = &cr["metadata"]["labels"][POD_LABEL];
        current
            .iter()
            .any(|p| &p["metadata"]["labels"][POD_LABEL] == h)
    };
    let mut keep: Vec<&str> = history
        .all
        .iter()
        .filter(|cr| in_use(cr))
        .map(object::name)
        .collect();
    keep.push(history.update_name());
    controller_revision::trim(ctx, &ds, &history.all, &keep).await?;
    write_status(ctx, &res, &ds, status(&ds, &nodes, &current, &hash)).await
}

/// The nodes whose labels carry every `nodeSelector` entry of the DaemonSet's template.
async fn eligible_nodes(ctx: &Ctx, ds: &Value) -> Result<Vec<String>, ApiError> {
    let res = ctx.server.resource("", "v1", "nodes")?;
    let nodes = ctx.server.list_where(&res, None, |_| true).await?;
    let selector = ds
        .pointer("/spec/template/spec/nodeSelector")
        .and_then(Value::as_object);
    let admits = |node: &Value| {
        selector
            .into_iter()
            .flatten()
            .all(|(k, v)| &node["metadata"]["labels"][k] == v)
    };
    Ok(nodes
        .iter()
        .filter(|n| admits(n) && !object::is_deleting(n))
        .map(|n| object::name(n).to_string())
        .collect())
}

fn node_of(pod: &Value) -> &str {
    pod["spec"]["nodeName"].as_str().unwrap_or("")
}

fn is_updated(pod: &Value, hash: &str) -> bool {
    pod["metadata"]["labels"][POD_LABEL] == hash
}

/// Nodes that need a Pod, and the Pods to delete (surplus, misplaced, or outdated within the
/// rolling update's budget).
fn plan(ds: &Value, nodes: &[String], current: &[Value], hash: &str) -> (Vec<String>, Vec<String>) {
    let mut by_node: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for p in current {
        by_node.entry(node_of(p)).or_default().push(p);
    }
    let create: Vec<String> = nodes
        .iter()
        .filter(|n| !by_node.contains_key(n.as_str()))
        .cloned()
        .collect();
    let mut delete: Vec<String> = Vec::new();
    for (node, on_node) in &by_node {
        let wanted = nodes.iter().any(|n| n == node);
        let keep = usize::from(wanted);
        delete.extend(
            on_node
                .iter()
                .skip(keep)
                .map(|p| object::name(p).to_string()),
        );
    }
    if create.is_empty() && delete.is_empty() && ds["spec"]["updateStrategy"]["type"] != "OnDelete"
    {
        let unavailable = current.iter().filter(|p| !pods::is_ready(p)).count();
        let budget = max_unavailable(ds, nodes.len()).saturating_sub(unavailable);
        delete = current
            .iter()
            .filter(|p| !is_updated(p, hash))
            .take(budget)
            .map(|p| object::name(p).to_string())
            .collect();
    }
    (create, delete)
}

/// `rollingUpdate.maxUnavailable`: a number, or a percentage of the desired Pods rounded up
/// (never below one, or the update would never start).
fn max_unavailable(ds: &Value, desired: usize) -> usize {
    let v = &ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"];
    let n = match (v.as_u64(), v.as_str().and_then(|s| s.strip_suffix('%'))) {
        (Some(n), _) => usize::try_from(n).unwrap_or(1),
        (None, Some(p)) => p
            .parse::<usize>()
            .map_or(1, |p| (desired * p).div_ceil(100)),
        (None, None) => 1,
    };
    n.max(1)
}

async fn create_pods(ctx: &Ctx, ds: &Value, hash: &str, nodes: &[String]) -> Result<(), ApiError> {
    let mut names = Vec::with_capacity(nodes.len());
    for node in nodes {
        let pod = new_pod(ds, hash, node);
        let created = pods::create(ctx, events::DAEMON_SET, ds, pod).await?;
        names.push(object::name(&created).to_string());
    }
    if !names.is_empty() {
        let ns = ds["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        ctx.queue
            .after(ctx.ready_delay, Task::PodsReady { ns, names });
    }
    Ok(())
}

/// A Pod of `ds` for `node`: required node affinity on the node's name, as upstream sets it.
fn new_pod(ds: &Value, hash: &str, node: &str) -> Value {
    let mut pod = pods::from_template(ds, events::DAEMON_SET, &pods::random_name(ds), node);
    let labels = &mut pod["metadata"]["labels"];
    if !labels.is_object() {
        *labels = json!({});
    }
    labels[POD_LABEL] = json!(hash);
    labels[GENERATION_LABEL] = json!(int(ds, "/metadata/generation", 1).to_string());
    pod["spec"]["affinity"]["nodeAffinity"] = json!({"requiredDuringSchedulingIgnoredDuringExecution":
        {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}});
    pod
}

fn status(ds: &Value, nodes: &[String], current: &[Value], hash: &str) -> Value {
    let on_wanted: Vec<&Value> = current
        .iter()
        .filter(|p| nodes.iter().any(|n| n == node_of(p)))
        .collect();
    let ready = on_wanted.iter().filter(|p| pods::is_ready(p)).count();
    let desired = nodes.len();
    let mut status = json!({
        "observedGeneration": int(ds, "/metadata/generation", 1),
        "desiredNumberScheduled": desired, "currentNumberScheduled": on_wanted.len(),
        "numberMisscheduled": current.len() - on_wanted.len(), "numberReady": ready,
        "numberAvailable": ready,
        "updatedNumberScheduled": on_wanted.iter().filter(|p| is_updated(p, hash)).count(),
    });
    // null: a merge patch removes the field once every node's Pod is available.
    status["numberUnavailable"] = match desired > ready {
        true => json!(desired - ready),
        false => Value::Null,
    };
    status
}

async fn write_status(
    ctx: &Ctx,
    res: &Arc<Resource>,
    ds: &Value,
    status: Value,
) -> Result<(), ApiError> {
    if !differs(&ds["status"], &status) {
        return Ok(());
    }
    let ns = ds["metadata"]["namespace"].as_str().unwrap_or("default");
    merge(
        &ctx.server,
        res,
        ns,
        object::name(ds),
        &json!({"status": status}),
        true,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds() -> Value {
        json!({"metadata": {"name": "agent", "namespace": "kube-system", "uid": "u1", "generation": 3},
            "spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "a"}]}}}})
    }

    fn pod(name: &str, node: &str, hash: &str, ready: bool) -> Value {
        let status = if ready { "True" } else { "False" };
        json!({"metadata": {"name": name, "labels": {POD_LABEL: hash}}, "spec": {"nodeName": node},
            "status": {"conditions": [{"type": "Ready", "status": status}]}})
    }

    fn nodes(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node-{i}")).collect()
    }

    #[test]
    fn every_node_gets_one_pod_bound_to_it() {
        let current = [pod("a-1", "node-1", "h", true)];
        let (create, delete) = plan(&ds(), &nodes(3), &current, "h");
        assert_eq!(create, ["node-0", "node-2"]);
        assert!(delete.is_empty());
        let p = new_pod(&ds(), "h", "node-2");
        assert_eq!(p["spec"]["nodeName"], "node-2");
        assert_eq!(p["metadata"]["labels"][POD_LABEL], "h");
        assert_eq!(p["metadata"]["labels"][GENERATION_LABEL], "3");
        let term = &p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
        assert_eq!(
            term["nodeSelectorTerms"][0]["matchFields"][0]["values"][0],
            "node-2"
        );
    }

    #[test]
    fn surplus_and_misplaced_pods_go() {
        let current = [
            pod("a-1", "node-0", "h", true),
            pod("a-2", "node-0", "h", true),
            pod("a-3", "node-9", "h", true),
        ];
        let (create, delete) = plan(&ds(), &nodes(1), &current, "h");
        assert!(create.is_empty());
        assert_eq!(delete, ["a-2", "a-3"]);
    }

    #[test]
    fn a_rolling_update_stays_within_max_unavailable() {
        let current = [
            pod("a-0", "node-0", "old", true),
            pod("a-1", "node-1", "old", true),
        ];
        assert_eq!(plan(&ds(), &nodes(2), &current, "new").1, ["a-0"]);
        let one_down = [
            pod("a-0", "node-0", "new", false),
            pod("a-1", "node-1", "old", true),
        ];
        assert!(plan(&ds(), &nodes(2), &one_down, "new").1.is_empty());
        let mut pct = ds();
        pct["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = json!("50%");
        assert_eq!(max_unavailable(&pct, 3), 2);
    }

    #[test]
    fn the_status_counts_nodes_served() {
        let current = [
            pod("a-0", "node-0", "new", true),
            pod("a-1", "node-1", "old", false),
        ];
        let s = status(&ds(), &nodes(3), &current, "new");
        assert_eq!(s["desiredNumberScheduled"], 3);
        assert_eq!(s["currentNumberScheduled"], 2);
        assert_eq!(s["numberReady"], 1);
        assert_eq!(s["updatedNumberScheduled"], 1);
        assert_eq!(s["numberUnavailable"], 2);
        assert_eq!(s["observedGeneration"], 3);
    }
}
