//! The deployment controller, simplified to an immediate rollout: the ReplicaSet of the current
//! template (`<deployment>-<pod-template-hash>`) gets every replica, older ones are scaled to 0
//! and kept up to `revisionHistoryLimit`; the Deployment's status sums its ReplicaSets'.

use std::sync::Arc;

use rotor_apiserver::{ApiError, Resource};
use serde_json::{Value, json};

use super::{Ctx, events, hash, int, live, merge, owned, owner_ref, revision};

/// Brings the ReplicaSets of Deployment `ns/name` in line with its spec, then its status.
pub async fn reconcile(ctx: &Ctx, ns: &str, name: &str) -> Result<(), ApiError> {
    let deployments = ctx.server.resource("apps", "v1", "deployments")?;
    let replicasets = ctx.server.resource("apps", "v1", "replicasets")?;
    let Some(d) = live(&ctx.server, &deployments, ns, name).await? else {
        return Ok(());
    };
    let hash = hash::template_hash(&d["spec"]["template"]);
    let mut all = owned(&ctx.server, &replicasets, ns, super::uid(&d)).await?;
    let current = all.iter().position(|rs| {
        rs.pointer("/metadata/labels")
            .and_then(|l| l.get(hash::LABEL))
            .and_then(Value::as_str)
            == Some(hash.as_str())
    });
    let rev = revision::next(&all, current);
    let new_rs = match current {
        Some(i) => update_new(ctx, &replicasets, &d, &all[i], rev).await?,
        None => create_new(ctx, &replicasets, &d, &hash, rev).await?,
    };
    let new_name = rotor_apiserver::object::name(&new_rs).to_string();
    all.retain(|rs| rotor_apiserver::object::name(rs) != new_name);
    scale_down_old(ctx, &replicasets, &d, &all).await?;
    trim_history(ctx, &replicasets, &d, &all).await?;
    annotate_revision(ctx, &deployments, &d, rev).await?;
    write_status(ctx, &deployments, &d, &new_rs, &all).await
}

fn desired(d: &Value) -> i64 {
    int(d, "/spec/replicas", 1)
}

/// The ReplicaSet of `d`'s template: the template and selector with the hash label added.
fn new_replica_set(d: &Value, hash: &str, rev: u64) -> Value {
    let name = format!("{}-{hash}", rotor_apiserver::object::name(d));
    let mut template = d["spec"]["template"].clone();
    template["metadata"]["labels"][hash::LABEL] = json!(hash);
    let mut selector = d["spec"]["selector"].clone();
    selector["matchLabels"][hash::LABEL] = json!(hash);
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {
            "name": name, "namespace": d["metadata"]["namespace"],
            "labels": template["metadata"]["labels"],
            "annotations": {revision::ANNOTATION: rev.to_string(),
                "deployment.kubernetes.io/desired-replicas": desired(d).to_string()},
            "ownerReferences": [owner_ref("apps/v1", "Deployment", d)],
        },
        "spec": {"replicas": desired(d), "minReadySeconds": d["spec"]["minReadySeconds"].as_i64().unwrap_or(0),
            "selector": selector, "template": template},
    })
}

async fn create_new(
    ctx: &Ctx,
    res: &Arc<Resource>,
    d: &Value,
    hash: &str,
    rev: u64,
) -> Result<Value, ApiError> {
    let rs = new_replica_set(d, hash, rev);
    let ns = d["metadata"]["namespace"].as_str();
    let created = ctx.server.create(res, ns, rs, &super::opts()).await?.object;
    events::scaled(ctx, d, &created, 0, desired(d)).await;
    Ok(created)
}

/// Gives the current ReplicaSet its revision and every replica.
async fn update_new(
    ctx: &Ctx,
    res: &Arc<Resource>,
    d: &Value,
    rs: &Value,
    rev: u64,
) -> Result<Value, ApiError> {
    let (have, want) = (int(rs, "/spec/replicas", 1), desired(d));
    if revision::of(rs) == rev && have == want {
        return Ok(rs.clone());
    }
    let patch = json!({
        "metadata": {"annotations": {revision::ANNOTATION: rev.to_string(),
            "deployment.kubernetes.io/desired-replicas": want.to_string()}},
        "spec": {"replicas": want},
    });
    let (ns, name) = (namespace(d), rotor_apiserver::object::name(rs));
    merge(&ctx.server, res, ns, name, &patch, false).await?;
    if have != want {
        events::scaled(ctx, d, rs, have, want).await;
    }
    ctx.server.get(res, Some(ns), name).await
}

fn namespace(obj: &Value) -> &str {
    obj.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default")
}

async fn scale_down_old(
    ctx: &Ctx,
    res: &Arc<Resource>,
    d: &Value,
    old: &[Value],
) -> Result<(), ApiError> {
    for rs in old {
        let have = int(rs, "/spec/replicas", 1);
        if have == 0 {
            continue;
        }
        let name = rotor_apiserver::object::name(rs);
        let patch = json!({"spec": {"replicas": 0}});
        merge(&ctx.server, res, namespace(d), name, &patch, false).await?;
        events::scaled(ctx, d, rs, have, 0).await;
    }
    Ok(())
}

async fn trim_history(
    ctx: &Ctx,
    res: &Arc<Resource>,
    d: &Value,
    old: &[Value],
) -> Result<(), ApiError> {
    let limit = usize::try_from(int(d, "/spec/revisionHistoryLimit", 10)).unwrap_or(10);
    for i in revision::beyond_history(old, limit) {
        let name = rotor_apiserver::object::name(&old[i]);
        match ctx
            .server
            .delete(res, Some(namespace(d)), name, &json!({}), false)
            .await
        {
            Ok(_) => {}
            Err(e) if e.reason == "NotFound" => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn annotate_revision(
    ctx: &Ctx,
    res: &Arc<Resource>,
    d: &Value,
    rev: u64,
) -> Result<(), ApiError> {
    if revision::of(d) == rev {
        return Ok(());
    }
    let patch = json!({"metadata": {"annotations": {revision::ANNOTATION: rev.to_string()}}});
    let name = rotor_apiserver::object::name(d);
    merge(&ctx.server, res, namespace(d), name, &patch, false).await
}

async fn write_status(
    ctx: &Ctx,
    res: &Arc<Resource>,
    d: &Value,
    new_rs: &Value,
    old: &[Value],
) -> Result<(), ApiError> {
    let status = status(d, new_rs, old);
    if !super::differs(&d["status"], &status) {
        return Ok(());
    }
    let name = rotor_apiserver::object::name(d);
    let patch = json!({"status": status});
    merge(&ctx.server, res, namespace(d), name, &patch, true).await
}

/// The status upstream reports: counts summed over the ReplicaSets, and the two conditions.
fn status(d: &Value, new_rs: &Value, old: &[Value]) -> Value {
    let sum =
        |field: &str| int(new_rs, field, 0) + old.iter().map(|rs| int(rs, field, 0)).sum::<i64>();
    let (want, replicas) = (desired(d), sum("/status/replicas"));
    let (ready, available) = (
        sum("/status/readyReplicas"),
        sum("/status/availableReplicas"),
    );
    let updated = int(new_rs, "/status/replicas", 0);
    let done = updated == want && replicas == want && available == want;
    let mut status = json!({
        "observedGeneration": int(d, "/metadata/generation", 1),
        "replicas": replicas, "updatedReplicas": updated, "readyReplicas": ready,
        "availableReplicas": available,
        "conditions": conditions(d, rotor_apiserver::object::name(new_rs), done, available >= want),
    });
    // null: a merge patch removes the field once every replica is available.
    status["unavailableReplicas"] = match want > available {
        true => json!(want - available),
        false => Value::Null,
    };
    status
}

fn conditions(d: &Value, rs: &str, done: bool, available: bool) -> Value {
    let (avail_status, avail_reason, avail_msg) = match available {
        true => (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".to_string(),
        ),
        false => (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".to_string(),
        ),
    };
    let (prog_reason, prog_msg) = match done {
        true => (
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{rs}\" has successfully progressed."),
        ),
        false => (
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{rs}\" is progressing."),
        ),
    };
    json!([
        condition(d, "Available", avail_status, avail_reason, &avail_msg),
        condition(d, "Progressing", "True", prog_reason, &prog_msg),
    ])
}

/// A condition; its times are kept from the current one while status and reason stay.
fn condition(d: &Value, kind: &str, status: &str, reason: &str, message: &str) -> Value {
    let old = d
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind));
    let same = old.is_some_and(|c| c["status"] == status && c["reason"] == reason);
    let now = rotor_apiserver::object::now_rfc3339();
    let (update, transition) = match (same, old) {
        (true, Some(c)) => (c["lastUpdateTime"].clone(), c["lastTransitionTime"].clone()),
        (false, Some(c)) if c["status"] == status => (json!(now), c["lastTransitionTime"].clone()),
        _ => (json!(now), json!(now)),
    };
    json!({"type": kind, "status": status, "lastUpdateTime": update,
        "lastTransitionTime": transition, "reason": reason, "message": message})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(replicas: i64) -> Value {
        json!({"metadata": {"name": "web", "namespace": "default", "uid": "u1", "generation": 2},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}})
    }

    #[test]
    fn the_new_replica_set_carries_hash_revision_and_owner() {
        let rs = new_replica_set(&deployment(2), "abc", 3);
        assert_eq!(rs["metadata"]["name"], "web-abc");
        assert_eq!(rs["spec"]["selector"]["matchLabels"][hash::LABEL], "abc");
        assert_eq!(
            rs["spec"]["template"]["metadata"]["labels"][hash::LABEL],
            "abc"
        );
        assert_eq!(rs["metadata"]["annotations"][revision::ANNOTATION], "3");
        assert_eq!(rs["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert_eq!(
            rs["metadata"]["ownerReferences"][0]["blockOwnerDeletion"],
            true
        );
        assert_eq!(rs["spec"]["replicas"], 2);
    }

    #[test]
    fn status_is_complete_only_when_old_replicas_are_gone() {
        let d = deployment(2);
        let new_rs = json!({"metadata": {"name": "web-new"}, "status": {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2}});
        let old = json!({"metadata": {"name": "web-old"}, "status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}});
        let s = status(&d, &new_rs, std::slice::from_ref(&old));
        assert_eq!(s["replicas"], 3);
        assert_eq!(s["conditions"][1]["reason"], "ReplicaSetUpdated");
        let s = status(&d, &new_rs, &[]);
        assert_eq!(s["observedGeneration"], 2);
        assert_eq!(s["conditions"][0]["status"], "True");
        assert_eq!(s["conditions"][1]["reason"], "NewReplicaSetAvailable");
        assert!(s["unavailableReplicas"].is_null());
    }
}
