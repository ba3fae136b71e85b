//! Cascading deletion as a DELETE asks for it: the propagation policy of `DeleteOptions` (or the
//! legacy `orphanDependents`, or the kind's default as kube-apiserver's registries give it), the
//! finalizer that carries it until the garbage collector ([`super::gc`]) is done, and the reply
//! upstream sends for an object that is gone at once.

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult, Cause};
use crate::object;
use crate::registry::Resource;

/// Finalizer of an owner whose dependents are released (ownerReferences removed) first.
pub const ORPHAN_FINALIZER: &str = "orphan";
/// Finalizer of an owner deleted in the foreground: it goes after its blocking dependents.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

/// `DeleteOptions.propagationPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

impl Propagation {
    pub fn as_str(self) -> &'static str {
        match self {
            Propagation::Orphan => "Orphan",
            Propagation::Background => "Background",
            Propagation::Foreground => "Foreground",
        }
    }
}

/// The policy a DELETE's options ask for, if any. Both fields set, or an unknown policy, is a
/// 422 on `DeleteOptions` as upstream's `ValidateDeleteOptions` answers.
pub fn requested(options: &Value) -> ApiResult<Option<Propagation>> {
    let invalid = |cause: Cause| ApiError::invalid("DeleteOptions", "meta.k8s.io", "", vec![cause]);
    let policy = options.get("propagationPolicy").filter(|v| !v.is_null());
    let orphan = options.get("orphanDependents").filter(|v| !v.is_null());
    if let (Some(p), Some(_)) = (policy, orphan) {
        return Err(invalid(Cause {
            field: "propagationPolicy".into(),
            message: format!(
                "Invalid value: {p}: orphanDependents and deletionPropagation cannot be both set"
            ),
            reason: "FieldValueInvalid",
        }));
    }
    if let Some(o) = orphan {
        return match o.as_bool() {
            Some(true) => Ok(Some(Propagation::Orphan)),
            Some(false) => Ok(Some(Propagation::Background)),
            None => Err(ApiError::bad_request(format!(
                "DeleteOptions.orphanDependents must be a boolean, got {o}"
            ))),
        };
    }
    let Some(p) = policy else { return Ok(None) };
    match p.as_str() {
        Some("Orphan") => Ok(Some(Propagation::Orphan)),
        Some("Background") => Ok(Some(Propagation::Background)),
        Some("Foreground") => Ok(Some(Propagation::Foreground)),
        _ => Err(invalid(Cause {
            field: "propagationPolicy".into(),
            message: format!(
                "Unsupported value: {p}: supported values: \"Foreground\", \"Background\", \"Orphan\""
            ),
            reason: "FieldValueNotSupported",
        })),
    }
}

/// Kinds whose registry defaults to orphaning at this version, kept for old clients: core/v1
/// ReplicationControllers, batch/v1 Jobs, and the apps/extensions beta workload versions.
fn orphans_by_default(res: &Resource) -> bool {
    match (res.group.as_str(), res.version.as_str(), res.kind.as_str()) {
        ("", "v1", "ReplicationController") | ("batch", "v1", "Job") => true,
        ("batch", "v1beta1" | "v2alpha1", "CronJob") => true,
        ("extensions" | "apps", "v1beta1" | "v1beta2", kind) => matches!(
            kind,
            "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet"
        ),
        _ => false,
    }
}

/// The finalizers an object carries after a DELETE with `requested`: its own minus the two
/// garbage-collection ones, plus the one the policy needs. Without a policy in the request, a
/// finalizer the object already carries decides, then the kind's default.
pub fn finalizers_after_delete(
    res: &Resource,
    current: &[String],
    requested: Option<Propagation>,
) -> Vec<String> {
    let from_existing = || {
        current.iter().find_map(|f| match f.as_str() {
            ORPHAN_FINALIZER => Some(Propagation::Orphan),
            FOREGROUND_FINALIZER => Some(Propagation::Foreground),
            _ => None,
        })
    };
    let policy = requested
        .or_else(from_existing)
        .unwrap_or(if orphans_by_default(res) {
            Propagation::Orphan
        } else {
            Propagation::Background
        });
    let mut out: Vec<String> = current
        .iter()
        .filter(|f| *f != ORPHAN_FINALIZER && *f != FOREGROUND_FINALIZER)
        .cloned()
        .collect();
    match policy {
        Propagation::Orphan => out.push(ORPHAN_FINALIZER.into()),
        Propagation::Foreground => out.push(FOREGROUND_FINALIZER.into()),
        Propagation::Background => {}
    }
    out
}

/// Registries that answer a DELETE with the deleted object (`ReturnDeletedObject` upstream);
/// every other kind answers with a `Status`.
fn returns_deleted_object(res: &Resource) -> bool {
    match res.group.as_str() {
        "" => matches!(
            res.plural.as_str(),
            "pods"
                | "services"
                | "namespaces"
                | "persistentvolumes"
                | "persistentvolumeclaims"
                | "serviceaccounts"
                | "limitranges"
                | "resourcequotas"
                | "podtemplates"
        ),
        "storage.k8s.io" => res.plural == "volumeattachments",
        _ => false,
    }
}

/// The reply to a DELETE that removed `gone` at once: the object for the kinds that return it,
/// else `Status` Success whose details name it (`kind` is the resource, as upstream sets it).
pub fn reply_for_removed(res: &Resource, gone: Value) -> Value {
    if returns_deleted_object(res) {
        return gone;
    }
    let mut details = json!({"name": object::name(&gone), "kind": res.plural});
    if !res.group.is_empty() {
        details["group"] = json!(res.group);
    }
    if let Some(uid) = object::meta_str(&gone, "uid") {
        details["uid"] = json!(uid);
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn policy_from_options() {
        assert_eq!(requested(&Value::Null).unwrap(), None);
        assert_eq!(
            requested(&json!({"propagationPolicy": "Foreground"})).unwrap(),
            Some(Propagation::Foreground)
        );
        assert_eq!(
            requested(&json!({"orphanDependents": false})).unwrap(),
            Some(Propagation::Background)
        );
        let both = requested(&json!({"orphanDependents": true, "propagationPolicy": "Orphan"}))
            .unwrap_err();
        assert_eq!(both.code.as_u16(), 422, "{}", both.message);
        assert!(
            both.message.contains("propagationPolicy"),
            "{}",
            both.message
        );
        let unknown = requested(&json!({"propagationPolicy": "Sideways"})).unwrap_err();
        assert_eq!(unknown.code.as_u16(), 422);
        assert!(unknown.message.contains("Sideways"), "{}", unknown.message);
    }

    #[test]
    fn finalizers_follow_policy_then_object_then_kind() {
        let registry = crate::registry::Registry::default();
        let cm = registry.lookup("", "v1", "configmaps").expect("configmaps");
        let job = registry.lookup("batch", "v1", "jobs").expect("jobs");
        let mine = strings(&["example.com/keep"]);
        assert_eq!(finalizers_after_delete(&cm, &mine, None), mine);
        assert_eq!(
            finalizers_after_delete(&job, &[], None),
            strings(&["orphan"])
        );
        assert_eq!(
            finalizers_after_delete(&job, &[], Some(Propagation::Background)),
            Vec::<String>::new()
        );
        assert_eq!(
            finalizers_after_delete(&cm, &strings(&["foregroundDeletion"]), None),
            strings(&["foregroundDeletion"])
        );
        assert_eq!(
            finalizers_after_delete(
                &cm,
                &strings(&["orphan", "example.com/keep"]),
                Some(Propagation::Foreground)
            ),
            strings(&["example.com/keep", "foregroundDeletion"])
        );
    }
}
