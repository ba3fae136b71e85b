//! The statefulset controller: Pods `NAME-0` … `NAME-(N-1)`, each labelled with its name, its
//! ordinal and the ControllerRevision it was made from. `OrderedReady` (the default) creates one
//! Pod at a time, in order, each once the ones before it are Ready, and removes the highest
//! ordinal first; `Parallel` creates and removes all at once. A `RollingUpdate` replaces Pods of
//! an older revision one at a time, highest ordinal first, down to `partition`; `OnDelete`
//! leaves that to the user. Each ordinal mounts its own PersistentVolumeClaims (`claims.rs`),
//! kept across Pod replacements. The status counts Pods per revision, and `currentRevision`
//! becomes the update revision once every replica runs it, as `kubectl rollout status` and Helm
//! wait for.

use std::collections::BTreeMap;
use std::sync::Arc;

use rotor_apiserver::{ApiError, Resource, object};
use serde_json::{Value, json};

use super::controller_revision::{self, History, POD_LABEL, STATEFUL_SET_HASH};
use super::{Ctx, Task, claims, differs, events, int, live, merge, owned, pods};

/// The label naming a StatefulSet Pod (a Service can select one Pod by it).
const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label carrying a Pod's ordinal (upstream from 1.28).
const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// What one pass does to the Pods.
#[derive(Debug, Default, PartialEq)]
struct Plan {
    create: Vec<usize>,
    delete: Vec<String>,
}

/// Brings StatefulSet `ns/name`'s Pods one step closer to its spec, then its status to its Pods.
pub async fn reconcile(ctx: &Ctx, ns: &str, name: &str) -> Result<(), ApiError> {
    let res = ctx.server.resource("apps", "v1", "statefulsets")?;
    let pods_res = ctx.server.resource("", "v1", "pods")?;
    let Some(sts) = live(&ctx.server, &res, ns, name).await? else {
        return Ok(());
    };
    let history =
        controller_revision::sync(ctx, events::STATEFUL_SET, &sts, STATEFUL_SET_HASH).await?;
    let mut current: Vec<Value> = owned(&ctx.server, &pods_res, ns, super::uid(&sts))
        .await?
        .into_iter()
        .filter(|p| !object::is_deleting(p))
        .collect();
    let plan = plan(&sts, &current, history.update_name());
    create_pods(ctx, &sts, history.update_name(), &plan.create).await?;
    let condemned: Vec<Value> = current
        .iter()
        .filter(|p| plan.delete.iter().any(|n| n == object::name(p)))
        .cloned()
        .collect();
    pods::delete(ctx, events::STATEFUL_SET, &sts, &condemned).await?;
    current.retain(|p| !plan.delete.iter().any(|n| n == object::name(p)));
    let status = status(&sts, &current, history.update_name());
    trim_history(ctx, &sts, &history, &status, &current).await?;
    write_status(ctx, &res, &sts, status).await
}

fn replicas(sts: &Value) -> usize {
    usize::try_from(int(sts, "/spec/replicas", 1)).unwrap_or(0)
}

/// The ordinal of a Pod of `sts` (None for a name the StatefulSet would not give).
fn ordinal(sts: &Value, pod: &Value) -> Option<usize> {
    let prefix = format!("{}-", object::name(sts));
    object::name(pod).strip_prefix(&prefix)?.parse().ok()
}

fn revision_of(pod: &Value) -> &str {
    pod["metadata"]["labels"][POD_LABEL].as_str().unwrap_or("")
}

/// The next step from the Pods there are, as upstream orders it.
fn plan(sts: &Value, current: &[Value], update: &str) -> Plan {
    let want = replicas(sts);
    let parallel = sts["spec"]["podManagementPolicy"] == "Parallel";
    let by_ordinal: BTreeMap<usize, &Value> = current
        .iter()
        .filter_map(|p| ordinal(sts, p).map(|i| (i, p)))
        .collect();
    let mut condemned: Vec<(usize, &Value)> = current
        .iter()
        .map(|p| (ordinal(sts, p).unwrap_or(usize::MAX), p))
        .filter(|(i, _)| *i >= want)
        .collect();
    condemned.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
    let missing: Vec<usize> = (0..want).filter(|i| !by_ordinal.contains_key(i)).collect();
    let all_ready = current.iter().all(pods::is_ready);
    let mut plan = Plan::default();
    if parallel {
        plan.create = missing;
        plan.delete = condemned
            .iter()
            .map(|(_, p)| object::name(p).to_string())
            .collect();
    } else if let Some(&first) = missing.first() {
        // The next ordinal only once every one before it is there and Ready.
        if (0..first).all(|i| by_ordinal.get(&i).is_some_and(|p| pods::is_ready(p))) {
            plan.create = vec![first];
        }
    } else if let Some((_, p)) = condemned.first().filter(|_| all_ready) {
        plan.delete = vec![object::name(p).to_string()];
    }
    if plan == Plan::default() && missing_none(&by_ordinal, want) && all_ready {
        plan.delete = outdated(sts, &by_ordinal, want, update)
            .into_iter()
            .collect();
    }
    plan
}

fn missing_none(by_ordinal: &BTreeMap<usize, &Value>, want: usize) -> bool {
    (0..want).all(|i| by_ordinal.contains_key(&i))
}

/// Under `RollingUpdate`, the highest ordinal at or above `partition` of an older revision.
fn outdated(
    sts: &Value,
    by_ordinal: &BTreeMap<usize, &Value>,
    want: usize,
    update: &str,
) -> Option<String> {
    if sts["spec"]["updateStrategy"]["type"] == "OnDelete" {
        return None;
    }
    let partition = usize::try_from(int(sts, "/spec/updateStrategy/rollingUpdate/partition", 0));
    (partition.unwrap_or(0)..want)
        .rev()
        .filter_map(|i| by_ordinal.get(&i))
        .find(|p| revision_of(p) != update)
        .map(|p| object::name(p).to_string())
}

/// Pod `NAME-i` of the update revision: its identity labels, hostname and subdomain.
fn new_pod(ctx: &Ctx, sts: &Value, update: &str, i: usize) -> Value {
    let name = format!("{}-{i}", object::name(sts));
    let mut pod = pods::from_template(
        sts,
        events::STATEFUL_SET,
        &name,
        &pods::random_node(ctx.nodes),
    );
    let labels = &mut pod["metadata"]["labels"];
    if !labels.is_object() {
        *labels = json!({});
    }
    labels[POD_LABEL] = json!(update);
    labels[POD_NAME_LABEL] = json!(name);
    if ctx.minor >= 28 {
        labels[POD_INDEX_LABEL] = json!(i.to_string());
    }
    claims::mount(sts, &mut pod, i);
    pod["spec"]["hostname"] = json!(name);
    if let Some(service) = sts["spec"]["serviceName"]
        .as_str()
        .filter(|s| !s.is_empty())
    {
        pod["spec"]["subdomain"] = json!(service);
    }
    pod
}

async fn create_pods(
    ctx: &Ctx,
    sts: &Value,
    update: &str,
    ordinals: &[usize],
) -> Result<(), ApiError> {
    let mut names = Vec::with_capacity(ordinals.len());
    for &i in ordinals {
        claims::ensure(ctx, sts, i).await?;
        let pod = new_pod(ctx, sts, update, i);
        match pods::create(ctx, events::STATEFUL_SET, sts, pod).await {
            Ok(p) => names.push(object::name(&p).to_string()),
            // The Pod of that ordinal is still going: its deletion brings this task back.
            Err(e) if e.reason == "AlreadyExists" => {}
            Err(e) => return Err(e),
        }
    }
    if !names.is_empty() {
        let ns = sts["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        ctx.queue
            .after(ctx.ready_delay, Task::PodsReady { ns, names });
    }
    Ok(())
}

/// The status upstream reports for `current` Pods.
fn status(sts: &Value, current: &[Value], update: &str) -> Value {
    let want = replicas(sts);
    let ready = current.iter().filter(|p| pods::is_ready(p)).count();
    let at = |rev: &str| current.iter().filter(|p| revision_of(p) == rev).count();
    let updated = at(update);
    let mut current_rev = sts["status"]["currentRevision"]
        .as_str()
        .filter(|r| !r.is_empty())
        .unwrap_or(update)
        .to_string();
    let rolling = sts["spec"]["updateStrategy"]["type"] != "OnDelete";
    if rolling && current.len() == want && updated == want && ready == want {
        current_rev = update.to_string();
    }
    json!({
        "observedGeneration": int(sts, "/metadata/generation", 1),
        "replicas": current.len(), "readyReplicas": ready, "availableReplicas": ready,
        "currentReplicas": at(&current_rev), "updatedReplicas": updated,
        "currentRevision": current_rev, "updateRevision": update,
        "collisionCount": int(sts, "/status/collisionCount", 0),
    })
}

/// Old revisions go beyond the history limit; never one a Pod or the status still names.
async fn trim_history(
    ctx: &Ctx,
    sts: &Value,
    history: &History,
    status: &Value,
    current: &[Value],
) -> Result<(), ApiError> {
    let mut keep: Vec<&str> = current.iter().map(revision_of).collect();
    keep.push(history.update_name());
    keep.extend(status["currentRevision"].as_str());
    controller_revision::trim(ctx, sts, &history.all, &keep).await
}

async fn write_status(
    ctx: &Ctx,
    res: &Arc<Resource>,
    sts: &Value,
    status: Value,
) -> Result<(), ApiError> {
    if !differs(&sts["status"], &status) {
        return Ok(());
    }
    let ns = sts["metadata"]["namespace"].as_str().unwrap_or("default");
    let patch = json!({"status": status});
    merge(&ctx.server, res, ns, object::name(sts), &patch, true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts(replicas: i64, policy: &str) -> Value {
        json!({"metadata": {"name": "db", "namespace": "shop", "uid": "u1", "generation": 2},
            "spec": {"replicas": replicas, "podManagementPolicy": policy,
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db"}]}}}})
    }

    fn pod(name: &str, rev: &str, ready: bool) -> Value {
        let status = if ready { "True" } else { "False" };
        json!({"metadata": {"name": name, "labels": {POD_LABEL: rev}},
            "status": {"conditions": [{"type": "Ready", "status": status}]}})
    }

    #[test]
    fn ordered_ready_creates_the_next_ordinal_once_the_previous_is_ready() {
        let s = sts(3, "OrderedReady");
        assert_eq!(plan(&s, &[], "r1").create, vec![0]);
        assert_eq!(plan(&s, &[pod("db-0", "r1", false)], "r1"), Plan::default());
        assert_eq!(plan(&s, &[pod("db-0", "r1", true)], "r1").create, vec![1]);
    }

    #[test]
    fn parallel_creates_every_missing_ordinal_at_once() {
        let s = sts(3, "Parallel");
        assert_eq!(
            plan(&s, &[pod("db-1", "r1", false)], "r1").create,
            vec![0, 2]
        );
    }

    #[test]
    fn scale_down_removes_the_highest_ordinal_first() {
        let s = sts(1, "OrderedReady");
        let current = [
            pod("db-0", "r1", true),
            pod("db-1", "r1", true),
            pod("db-2", "r1", true),
        ];
        assert_eq!(plan(&s, &current, "r1").delete, vec!["db-2"]);
    }

    #[test]
    fn a_rolling_update_replaces_the_highest_outdated_ordinal_above_the_partition() {
        let mut s = sts(3, "OrderedReady");
        let current = [
            pod("db-0", "r1", true),
            pod("db-1", "r1", true),
            pod("db-2", "r2", true),
        ];
        assert_eq!(plan(&s, &current, "r2").delete, vec!["db-1"]);
        s["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = json!(2);
        assert_eq!(plan(&s, &current, "r2"), Plan::default());
    }

    #[test]
    fn the_current_revision_follows_once_every_replica_is_updated_and_ready() {
        let mut s = sts(2, "OrderedReady");
        s["status"] = json!({"currentRevision": "r1"});
        let mixed = [pod("db-0", "r1", true), pod("db-1", "r2", true)];
        let st = status(&s, &mixed, "r2");
        assert_eq!(
            (
                st["currentRevision"].as_str(),
                st["currentReplicas"].as_i64()
            ),
            (Some("r1"), Some(1))
        );
        let done = [pod("db-0", "r2", true), pod("db-1", "r2", true)];
        let st = status(&s, &done, "r2");
        assert_eq!(st["currentRevision"], "r2");
        assert_eq!(
            (st["updatedReplicas"].as_i64(), st["readyReplicas"].as_i64()),
            (Some(2), Some(2))
        );
        assert_eq!(st["observedGeneration"], 2);
    }
}
