//! Who owns which fields: blue's `managedFields`, carried to green, so that the tools that wrote
//! each object (Helm, kubectl, Argo CD, Flux, an operator) find their fields theirs on green and
//! their next apply behaves there as it would have on blue.
//!
//! A write that changes fields makes its field manager their owner; a create gives its manager
//! every field whatever `managedFields` it carries. So an object reaches green in up to two
//! writes: its content, then `metadata.managedFields` alone — a write that changes no field keeps
//! the list it is given, as kube-apiserver does (Velero restores objects the same way).
//! Entries of the `status` subresource stay behind with status: green's controllers write their
//! own.

use std::collections::HashMap;

use kube::api::DynamicObject;
use serde_json::{Map, Value};

/// The owners' entries of `obj` to carry to green (all but the status subresource's), and how
/// many entries were dropped because they cannot be read (a broken list is reported in the plan
/// and the rest carried).
pub fn carried(obj: &DynamicObject) -> (Vec<Value>, usize) {
    let Some(list) = &obj.metadata.managed_fields else {
        return (Vec::new(), 0);
    };
    let mut broken = 0;
    let mut out = Vec::with_capacity(list.len());
    for entry in list {
        if entry.subresource.as_deref() == Some("status") {
            continue;
        }
        match serde_json::to_value(entry) {
            Ok(v) if readable(&v) => out.push(v),
            _ => broken += 1,
        }
    }
    (out, broken)
}

/// What kube-apiserver requires of an entry it is given.
fn readable(entry: &Value) -> bool {
    let text = |k: &str| entry.get(k).and_then(Value::as_str);
    text("manager").is_some_and(|m| !m.is_empty())
        && matches!(text("operation"), Some("Apply" | "Update"))
        && text("fieldsType") == Some("FieldsV1")
        && entry.get("fieldsV1").is_some_and(Value::is_object)
}

/// The one manager to create the object as, when blue's owners are a single `Update` entry:
/// green's create then records the same owner and often the same fields, and no second write
/// is needed.
pub fn single_updater(entries: &[Value]) -> Option<&str> {
    match entries {
        [only] if only["operation"] == "Update" && only.get("subresource").is_none() => {
            only["manager"].as_str()
        }
        _ => None,
    }
}

/// The entries as green needs them: ownerReferences keyed by green's uids (a reference to an
/// owner that did not move is dropped, as the reference itself is), and the API version the
/// object is written at when it was converted from `from`.
pub fn for_green(
    entries: &[Value],
    uids: &HashMap<String, String>,
    from: &str,
    to: &str,
) -> Vec<Value> {
    entries
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if from != to && e["apiVersion"] == from {
                e["apiVersion"] = Value::String(to.to_string());
            }
            if let Some(refs) = e
                .pointer_mut("/fieldsV1/f:metadata/f:ownerReferences")
                .and_then(Value::as_object_mut)
            {
                *refs = rekey_owners(refs, uids);
            }
            e
        })
        .collect()
}

fn rekey_owners(refs: &Map<String, Value>, uids: &HashMap<String, String>) -> Map<String, Value> {
    refs.iter()
        .filter_map(|(k, v)| {
            let Some(json) = k.strip_prefix("k:") else {
                return Some((k.clone(), v.clone()));
            };
            let key: Value = serde_json::from_str(json).ok()?;
            let green = uids.get(key.get("uid")?.as_str()?)?;
            let mut key = key.clone();
            key["uid"] = Value::String(green.clone());
            Some((format!("k:{key}"), v.clone()))
        })
        .collect()
}

/// Whether green's entries (`have`, all of them) say something else than `want` about who owns
/// what: managers, operations, API versions, subresources and field sets, not times.
pub fn differs(want: &[Value], have: &[Value]) -> bool {
    let mut want: Vec<Value> = want.iter().map(identity).collect();
    let mut have: Vec<Value> = have
        .iter()
        .filter(|e| e["subresource"] != "status")
        .map(identity)
        .collect();
    let order = |a: &Value, b: &Value| a.to_string().cmp(&b.to_string());
    want.sort_by(order);
    have.sort_by(order);
    want != have
}

/// Owners as two clusters' copies of an object can be compared: each entry but the status
/// subresource's as `manager/operation[/subresource] apiVersion fields`, without times, with
/// ownerReferences keyed by no uid (each cluster has its own), and without the annotations each
/// cluster's controllers write about their own state (an entry left owning nothing is dropped:
/// whether green's controller still owns its revision annotation after the owners' replay
/// depends on which wrote first), sorted.
pub fn comparable(entries: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = entries
        .iter()
        .filter(|e| e["subresource"] != "status")
        .filter_map(|e| {
            let mut fields = e["fieldsV1"].clone();
            drop_cluster_state(&mut fields);
            if fields.as_object().is_some_and(Map::is_empty) {
                return None;
            }
            if let Some(refs) = fields
                .pointer_mut("/f:metadata/f:ownerReferences")
                .and_then(Value::as_object_mut)
            {
                *refs = refs
                    .iter()
                    .map(|(k, v)| match k.strip_prefix("k:") {
                        Some(_) => ("k:{\"uid\":…}".to_string(), v.clone()),
                        None => (k.clone(), v.clone()),
                    })
                    .collect();
            }
            let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            let sub = e["subresource"]
                .as_str()
                .map(|s| format!("/{s}"))
                .unwrap_or_default();
            Some(format!(
                "{}/{}{sub} {} {fields}",
                text("manager"),
                text("operation"),
                text("apiVersion")
            ))
        })
        .collect();
    out.sort();
    out
}

/// Removes from a field set the annotations of [`crate::sanitize::BLUE_ANNOTATIONS`], and the
/// maps that held only them.
fn drop_cluster_state(fields: &mut Value) {
    let Some(meta) = fields.get_mut("f:metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(annotations) = meta.get_mut("f:annotations").and_then(Value::as_object_mut) {
        for a in crate::sanitize::BLUE_ANNOTATIONS {
            annotations.remove(&format!("f:{a}"));
        }
        if annotations.keys().all(|k| k == ".") {
            meta.remove("f:annotations");
        }
    }
    if meta.is_empty() {
        fields.as_object_mut().map(|f| f.remove("f:metadata"));
    }
}

fn identity(entry: &Value) -> Value {
    let mut e = entry.clone();
    if let Some(m) = e.as_object_mut() {
        m.remove("time");
    }
    e
}

/// The merge patch that hands green's copy to blue's owners: `want` plus green's own status
/// entries (`have`), guarded by the resourceVersion it was computed against. No owners at all
/// is `[{}]`, kube-apiserver's way to clear the list (an empty list leaves it as it is).
pub fn patch(want: &[Value], have: &[Value], resource_version: &str) -> Value {
    let mut list: Vec<Value> = want.to_vec();
    list.extend(
        have.iter()
            .filter(|e| e["subresource"] == "status")
            .cloned(),
    );
    if list.is_empty() {
        list.push(Value::Object(Map::new()));
    }
    serde_json::json!({"metadata": {"resourceVersion": resource_version, "managedFields": list}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(managed: Value) -> DynamicObject {
        serde_json::from_value(json!({"metadata": {"name": "x", "managedFields": managed}}))
            .unwrap()
    }

    fn entry(manager: &str, op: &str, fields: Value) -> Value {
        json!({"manager": manager, "operation": op, "apiVersion": "apps/v1",
            "time": "2024-01-01T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": fields})
    }

    #[test]
    fn status_entries_stay_behind() {
        let mut status = entry("kube-controller-manager", "Update", json!({"f:status": {}}));
        status["subresource"] = json!("status");
        let helm = entry("helm", "Apply", json!({"f:spec": {"f:replicas": {}}}));
        let (carried, broken) = carried(&obj(json!([helm, status])));
        assert_eq!((carried, broken), (vec![helm.clone()], 0));
        assert_eq!(single_updater(&[helm]), None);
        let kubectl = entry("kubectl-client-side-apply", "Update", json!({"f:data": {}}));
        assert_eq!(
            single_updater(std::slice::from_ref(&kubectl)),
            Some("kubectl-client-side-apply")
        );
    }

    #[test]
    fn owner_references_are_rekeyed_to_green() {
        let e = entry(
            "kube-controller-manager",
            "Update",
            json!({"f:metadata": {"f:ownerReferences": {
                "k:{\"uid\":\"blue-1\"}": {}, "k:{\"uid\":\"gone\"}": {}, ".": {}}}}),
        );
        let uids = HashMap::from([("blue-1".to_string(), "green-1".to_string())]);
        let out = for_green(&[e], &uids, "apps/v1", "apps/v1");
        assert_eq!(
            out[0]["fieldsV1"]["f:metadata"]["f:ownerReferences"],
            json!({"k:{\"uid\":\"green-1\"}": {}, ".": {}})
        );
        let converted = for_green(&out, &uids, "apps/v1", "apps/v2");
        assert_eq!(converted[0]["apiVersion"], "apps/v2");
    }

    #[test]
    fn owners_of_cluster_state_annotations_are_not_compared() {
        let revision = entry(
            "kube-controller-manager",
            "Update",
            json!({"f:metadata": {"f:annotations": {
                ".": {}, "f:deployment.kubernetes.io/revision": {}}}}),
        );
        let helm = entry("helm", "Apply", json!({"f:spec": {"f:replicas": {}}}));
        assert_eq!(
            comparable(&[revision, helm.clone()]),
            comparable(std::slice::from_ref(&helm))
        );
        let mixed = entry(
            "kube-controller-manager",
            "Update",
            json!({"f:metadata": {"f:annotations": {
                "f:deployment.kubernetes.io/revision": {}, "f:team": {}}}}),
        );
        let kept = comparable(&[mixed]);
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert!(
            kept[0].contains("f:team") && !kept[0].contains("revision"),
            "{kept:?}"
        );
    }

    #[test]
    fn differences_ignore_times_and_green_status_entries() {
        let helm = entry("helm", "Apply", json!({"f:spec": {"f:replicas": {}}}));
        let mut later = helm.clone();
        later["time"] = json!("2025-05-05T00:00:00Z");
        let mut status = entry("sim", "Update", json!({"f:status": {}}));
        status["subresource"] = json!("status");
        assert!(!differs(
            std::slice::from_ref(&helm),
            &[status.clone(), later]
        ));
        let rotor = entry("rotor", "Update", json!({"f:spec": {"f:replicas": {}}}));
        assert!(differs(std::slice::from_ref(&helm), &[rotor]));
        let p = patch(&[], &[status.clone()], "7");
        assert_eq!(p["metadata"]["managedFields"], json!([status]));
        assert_eq!(
            patch(&[], &[], "7")["metadata"]["managedFields"],
            json!([{}])
        );
    }
}
