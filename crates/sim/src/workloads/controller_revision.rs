//! ControllerRevisions: the rollout history of StatefulSets and DaemonSets, as their upstream
//! controllers keep it. One revision per distinct pod template, named `OWNER-HASH`, owned by the
//! workload, labelled with the template's labels (so `kubectl rollout history` finds them through
//! the workload's selector) and the hash; `data` is the strategic-merge patch that puts the
//! template back (what `kubectl rollout undo` applies); `revision` counts up, and a template that
//! comes back (an undo) has its old revision renumbered as the newest.

use std::sync::Arc;

use rotor_apiserver::{ApiError, Resource, object};
use serde_json::{Value, json};

use super::events::Source;
use super::{Ctx, hash, int, merge, owned, owner_ref};

/// The label a StatefulSet's revisions carry their hash in.
pub const STATEFUL_SET_HASH: &str = "controller.kubernetes.io/hash";
/// The label on Pods (and a DaemonSet's revisions) naming the revision they were made from.
pub const POD_LABEL: &str = "controller-revision-hash";
/// Too big to copy onto every revision, and only kubectl's client-side apply reads it.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A workload's revisions, and which one its template is now.
pub struct History {
    pub update: Value,
    pub all: Vec<Value>,
}

impl History {
    pub fn update_name(&self) -> &str {
        object::name(&self.update)
    }
}

pub fn number(cr: &Value) -> i64 {
    int(cr, "/revision", 0)
}

fn resource(ctx: &Ctx) -> Result<Arc<Resource>, ApiError> {
    ctx.server.resource("apps", "v1", "controllerrevisions")
}

fn namespace(obj: &Value) -> &str {
    obj.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default")
}

/// The revision of `owner`'s current template (`hash_label` names where its hash is kept):
/// found, renumbered when it was not the newest, or created.
pub async fn sync(
    ctx: &Ctx,
    source: Source,
    owner: &Value,
    hash_label: &str,
) -> Result<History, ApiError> {
    let res = resource(ctx)?;
    let ns = namespace(owner);
    let mut all = owned(&ctx.server, &res, ns, super::uid(owner)).await?;
    let hash = hash::template_hash(&owner["spec"]["template"]);
    let newest = all.iter().map(number).max().unwrap_or(0);
    let found = all
        .iter()
        .position(|cr| cr["metadata"]["labels"][hash_label] == hash.as_str());
    let update = match found {
        Some(i) if number(&all[i]) == newest => all[i].clone(),
        Some(i) => {
            let name = object::name(&all[i]).to_string();
            let patch = json!({"revision": newest + 1});
            merge(&ctx.server, &res, ns, &name, &patch, false).await?;
            all[i]["revision"] = json!(newest + 1);
            all[i].clone()
        }
        None => {
            let cr = new_revision(source, owner, hash_label, &hash, newest + 1);
            let created = ctx
                .server
                .create(&res, Some(ns), cr, &super::opts())
                .await?;
            all.push(created.object.clone());
            created.object
        }
    };
    Ok(History { update, all })
}

/// The revision of `owner`'s template numbered `revision`.
fn new_revision(
    source: Source,
    owner: &Value,
    hash_label: &str,
    hash: &str,
    revision: i64,
) -> Value {
    let template = &owner["spec"]["template"];
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    labels[hash_label] = json!(hash);
    let mut annotations = owner["metadata"]["annotations"].clone();
    if let Some(a) = annotations.as_object_mut() {
        a.remove(LAST_APPLIED);
    }
    let mut replace = template.clone();
    replace["$patch"] = json!("replace");
    json!({
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {
            "name": format!("{}-{hash}", object::name(owner)),
            "namespace": owner["metadata"]["namespace"], "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner_ref(source.api_version, source.kind, owner)],
        },
        "data": {"spec": {"template": replace}},
        "revision": revision,
    })
}

/// Deletes the oldest revisions beyond `owner`'s `revisionHistoryLimit` (10 by default), never
/// one named in `keep` (the current and update revisions, those live Pods were made from).
pub async fn trim(ctx: &Ctx, owner: &Value, all: &[Value], keep: &[&str]) -> Result<(), ApiError> {
    let limit = usize::try_from(int(owner, "/spec/revisionHistoryLimit", 10)).unwrap_or(10);
    let mut old: Vec<&Value> = all
        .iter()
        .filter(|cr| !keep.contains(&object::name(cr)))
        .collect();
    if old.len() <= limit {
        return Ok(());
    }
    old.sort_by_key(|cr| number(cr));
    let res = resource(ctx)?;
    let ns = Some(namespace(owner));
    for cr in &old[..old.len() - limit] {
        match ctx
            .server
            .delete(&res, ns, object::name(cr), &json!({}), false)
            .await
        {
            Ok(_) => {}
            Err(e) if e.reason == "NotFound" => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::events;

    #[test]
    fn a_revision_is_named_labelled_owned_and_replaces_the_template() {
        let sts = json!({"metadata": {"name": "db", "namespace": "shop", "uid": "u1",
                "annotations": {LAST_APPLIED: "{}", "kubernetes.io/change-cause": "v2"}},
            "spec": {"template": {"metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "db", "image": "postgres:17"}]}}}});
        let cr = new_revision(events::STATEFUL_SET, &sts, STATEFUL_SET_HASH, "abc", 3);
        assert_eq!(cr["metadata"]["name"], "db-abc");
        assert_eq!(cr["metadata"]["labels"]["app"], "db");
        assert_eq!(cr["metadata"]["labels"][STATEFUL_SET_HASH], "abc");
        assert_eq!(cr["metadata"]["ownerReferences"][0]["kind"], "StatefulSet");
        assert_eq!(
            cr["metadata"]["annotations"]["kubernetes.io/change-cause"],
            "v2"
        );
        assert!(cr["metadata"]["annotations"].get(LAST_APPLIED).is_none());
        assert_eq!(cr["data"]["spec"]["template"]["$patch"], "replace");
        assert_eq!(
            cr["data"]["spec"]["template"]["spec"]["containers"][0]["image"],
            "postgres:17"
        );
        assert_eq!(number(&cr), 3);
    }
}
