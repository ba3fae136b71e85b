//! Who owned a blue workload's `spec.replicas` before rotor scaled it to zero, and handing the
//! field back after the restore.
//!
//! Any write that changes a field makes its manager the owner: scaling to zero makes `rotor`
//! own `spec.replicas`, and so does the restore. Left so, the team's next server-side apply
//! on blue after a rollback (Helm 4, Argo CD, Flux, `kubectl apply --server-side`) would
//! conflict with rotor. So the scale-down records the owners in an annotation, and after the
//! restore a write that changes no field sets `managedFields` with the field given back —
//! kube-apiserver keeps a list it is given by a write that changes nothing.

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use rotor_api::annotations::REPLICAS_OWNERS;

/// The field manager of rotor's own writes to member clusters.
pub const FIELD_MANAGER: &str = rotor_migration::FIELD_MANAGER;

/// One owner of the field: a managedFields entry's identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub manager: String,
    pub operation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
}

/// The annotation's value: the swap that scaled the workload down and the owners before.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub swap: String,
    pub owners: Vec<Owner>,
}

impl Record {
    /// The record on `obj`, when one was left by `swap`.
    pub fn of(obj: &impl Resource, swap: &str) -> Option<Record> {
        let text = obj.meta().annotations.as_ref()?.get(REPLICAS_OWNERS)?;
        serde_json::from_str::<Record>(text)
            .ok()
            .filter(|r| r.swap == swap)
    }
}

/// The owners of `spec.replicas` on `obj` (rotor's own excepted).
pub fn replicas_owners(obj: &impl Resource) -> Vec<Owner> {
    obj.meta()
        .managed_fields
        .iter()
        .flatten()
        .filter(|e| {
            e.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some())
        })
        .filter(|e| e.manager.as_deref() != Some(FIELD_MANAGER))
        .map(|e| Owner {
            manager: e.manager.clone().unwrap_or_default(),
            operation: e.operation.clone().unwrap_or_default(),
            subresource: e.subresource.clone().filter(|s| !s.is_empty()),
        })
        .collect()
}

/// `obj`'s managedFields with `spec.replicas` and the record's annotation taken from rotor and
/// `spec.replicas` given to `owners` (an owner whose entry is gone gets a new one).
pub fn handed_back(entries: &[Value], owners: &[Owner], api_version: &str) -> Vec<Value> {
    let mut out: Vec<Value> = entries
        .iter()
        .filter_map(|e| {
            if e["manager"] != FIELD_MANAGER {
                return Some(e.clone());
            }
            let mut e = e.clone();
            let fields = e.get_mut("fieldsV1")?;
            remove(fields, &["f:spec", "f:replicas"]);
            remove(
                fields,
                &[
                    "f:metadata",
                    "f:annotations",
                    &format!("f:{REPLICAS_OWNERS}"),
                ],
            );
            (!is_empty_set(fields)).then_some(e)
        })
        .collect();
    for owner in owners {
        let same = |e: &&mut Value| {
            e["manager"] == owner.manager.as_str()
                && e["operation"] == owner.operation.as_str()
                && e["subresource"].as_str() == owner.subresource.as_deref()
        };
        match out.iter_mut().find(same) {
            Some(e) => {
                e["fieldsV1"]["f:spec"]["f:replicas"] = json!({});
            }
            None => {
                let mut e = json!({"manager": owner.manager, "operation": owner.operation,
                    "apiVersion": api_version, "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:replicas": {}}}});
                if let Some(s) = &owner.subresource {
                    e["subresource"] = json!(s);
                }
                out.push(e);
            }
        }
    }
    out
}

/// Removes the field at `path` from a field set, and the parents it leaves empty.
fn remove(set: &mut Value, path: &[&str]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let Some(map) = set.as_object_mut() else {
        return;
    };
    if rest.is_empty() {
        map.remove(*first);
        return;
    }
    if let Some(child) = map.get_mut(*first) {
        remove(child, rest);
        if is_empty_set(child) {
            map.remove(*first);
        }
    }
}

/// A field set that names no field (only `.` markers or nothing).
fn is_empty_set(set: &Value) -> bool {
    set.as_object().is_none_or(|m| m.keys().all(|k| k == "."))
}

/// Gives `spec.replicas` back to the recorded owners and removes the record, in one write that
/// changes no other field, guarded by `obj`'s resourceVersion.
pub async fn hand_back<K>(api: &Api<K>, obj: &K, record: &Record) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let entries: Vec<Value> = obj
        .meta()
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|e| serde_json::to_value(e).ok())
        .collect();
    let api_version = K::api_version(&()).to_string();
    let mut list = handed_back(&entries, &record.owners, &api_version);
    if list.is_empty() {
        list.push(Value::Object(Map::new()));
    }
    let patch = json!({"metadata": {
        "resourceVersion": obj.resource_version(),
        "annotations": {REPLICAS_OWNERS: null},
        "managedFields": list,
    }});
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    api.patch(&obj.name_any(), &params, &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_go_back_to_their_owners_and_rotor_keeps_nothing_of_them() {
        let entries = vec![
            json!({"manager": "helm", "operation": "Apply", "apiVersion": "apps/v1",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:template": {}}}}),
            json!({"manager": "rotor", "operation": "Update", "apiVersion": "apps/v1",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:annotations": {
                    ".": {}, "f:rotor.dev/replicas-owners": {}}}, "f:spec": {"f:replicas": {}}}}),
        ];
        let owners = vec![
            Owner {
                manager: "helm".into(),
                operation: "Apply".into(),
                subresource: None,
            },
            Owner {
                manager: "kubectl".into(),
                operation: "Update".into(),
                subresource: Some("scale".into()),
            },
        ];
        let out = handed_back(&entries, &owners, "apps/v1");
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(
            out[0]["fieldsV1"],
            json!({"f:spec": {"f:template": {}, "f:replicas": {}}})
        );
        assert_eq!(out[1]["manager"], "kubectl");
        assert_eq!(out[1]["subresource"], "scale");
        assert!(out.iter().all(|e| e["manager"] != "rotor"));
    }
}
