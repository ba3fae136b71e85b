//! An object as green should receive it: what its owner wrote, nothing blue assigned.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::DynamicObject;
use serde_json::{Map, Value};

/// Annotations written by blue's own controllers about blue's state; copied, they would mislead
/// green's (a PVC "bound" to blue's volume, a node of blue selected for scheduling).
/// (`kubectl.kubernetes.io/last-applied-configuration` is the owner's and moves: kubectl's next
/// client-side apply diffs and prunes against it.)
pub(crate) const BLUE_ANNOTATIONS: &[&str] = &[
    "deployment.kubernetes.io/revision",
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.kubernetes.io/selected-node",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
];

/// Labels a Job's controller derives from the Job's uid in blue; green derives its own.
const JOB_UID_LABELS: &[&str] = &["controller-uid", "batch.kubernetes.io/controller-uid"];

/// The object as an apply body for green: name, namespace, labels, annotations (minus
/// [`BLUE_ANNOTATIONS`]), user finalizers, ownerReferences for which `keep_owner` says yes, and
/// everything else but `status`. Dropped because blue assigned them: uid, resourceVersion,
/// generation, creationTimestamp, managedFields, selfLink, allocated cluster IPs (`None` stays:
/// it means headless), `spec.nodeName`, a claim's `spec.volumeName`, a Job's generated selector.
pub fn sanitize(
    obj: &DynamicObject,
    api_version: &str,
    kind: &str,
    keep_owner: &dyn Fn(&OwnerReference) -> bool,
) -> Value {
    let m = &obj.metadata;
    let mut meta = Map::new();
    if let Some(name) = &m.name {
        meta.insert("name".into(), name.as_str().into());
    }
    if let Some(ns) = &m.namespace {
        meta.insert("namespace".into(), ns.as_str().into());
    }
    if let Some(labels) = m.labels.as_ref().filter(|l| !l.is_empty()) {
        meta.insert("labels".into(), to_value(labels));
    }
    let annotations: Map<String, Value> = m
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| !BLUE_ANNOTATIONS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.as_str().into()))
        .collect();
    if !annotations.is_empty() {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    // Unqualified (`foregroundDeletion`) and `kubernetes.io/…` finalizers belong to blue's
    // controllers and garbage collector.
    let finalizers: Vec<Value> = m
        .finalizers
        .iter()
        .flatten()
        .filter(|f| f.contains('/') && !f.starts_with("kubernetes.io/"))
        .map(|f| f.as_str().into())
        .collect();
    if !finalizers.is_empty() {
        meta.insert("finalizers".into(), Value::Array(finalizers));
    }
    let owners: Vec<Value> = m
        .owner_references
        .iter()
        .flatten()
        .filter(|o| keep_owner(o))
        .map(to_value)
        .collect();
    if !owners.is_empty() {
        meta.insert("ownerReferences".into(), Value::Array(owners));
    }

    let mut out = Map::new();
    out.insert("apiVersion".into(), api_version.into());
    out.insert("kind".into(), kind.into());
    out.insert("metadata".into(), Value::Object(meta));
    if let Value::Object(rest) = &obj.data {
        for (k, v) in rest {
            if !matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status") {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    if let Some(spec) = out.get_mut("spec").and_then(Value::as_object_mut) {
        strip_spec(group, kind, spec);
        if spec.is_empty() && group.is_empty() && kind == "Namespace" {
            out.remove("spec");
        }
    }
    Value::Object(out)
}

fn strip_spec(group: &str, kind: &str, spec: &mut Map<String, Value>) {
    if spec.get("clusterIP").and_then(Value::as_str) != Some("None") {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
    spec.remove("nodeName");
    match (group, kind) {
        ("", "PersistentVolumeClaim") => {
            spec.remove("volumeName");
        }
        // The namespace lifecycle's finalizer: green's controller adds its own.
        ("", "Namespace") => {
            spec.remove("finalizers");
        }
        ("batch", "Job") if spec.get("manualSelector") != Some(&Value::Bool(true)) => {
            spec.remove("selector");
            if let Some(labels) = spec
                .get_mut("template")
                .and_then(|t| t.pointer_mut("/metadata/labels"))
                .and_then(Value::as_object_mut)
            {
                for l in JOB_UID_LABELS {
                    labels.remove(*l);
                }
            }
        }
        _ => {}
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> DynamicObject {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn drops_what_blue_assigned() {
        let svc = obj(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u1", "resourceVersion": "7",
                "generation": 2, "creationTimestamp": "2024-01-01T00:00:00Z", "selfLink": "/x",
                "managedFields": [{"manager": "kubectl"}],
                "labels": {"app": "web"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "deployment.kubernetes.io/revision": "3", "team": "a"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u0"}]},
            "spec": {"clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"], "ports": [{"port": 80}]},
            "status": {"loadBalancer": {}},
        }));
        let out = sanitize(&svc, "v1", "Service", &|_| false);
        assert_eq!(
            out,
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"},
                    "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "a"}},
                "spec": {"ports": [{"port": 80}]}})
        );
        let kept = sanitize(&svc, "v1", "Service", &|o| o.name == "o");
        assert_eq!(kept["metadata"]["ownerReferences"][0]["uid"], "u0");
    }

    #[test]
    fn headless_services_stay_headless() {
        let svc = obj(
            json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None", "clusterIPs": ["None"]}}),
        );
        let out = sanitize(&svc, "v1", "Service", &|_| false);
        assert_eq!(out["spec"]["clusterIP"], "None");
    }

    #[test]
    fn drops_bindings_to_blue() {
        let pvc = obj(json!({"metadata": {"name": "c", "namespace": "a",
                "annotations": {"pv.kubernetes.io/bind-completed": "yes", "volume.kubernetes.io/selected-node": "n1"},
                "finalizers": ["kubernetes.io/pvc-protection", "example.com/keep"]},
            "spec": {"volumeName": "pvc-123", "resources": {"requests": {"storage": "1Gi"}}}}));
        let out = sanitize(&pvc, "v1", "PersistentVolumeClaim", &|_| false);
        assert!(out["spec"].get("volumeName").is_none());
        assert!(out["metadata"].get("annotations").is_none());
        assert_eq!(out["metadata"]["finalizers"], json!(["example.com/keep"]));
        let pod =
            obj(json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "containers": []}}));
        assert!(
            sanitize(&pod, "v1", "Pod", &|_| false)["spec"]
                .get("nodeName")
                .is_none()
        );
        let ns = obj(json!({"metadata": {"name": "a"}, "spec": {"finalizers": ["kubernetes"]}}));
        assert!(
            sanitize(&ns, "v1", "Namespace", &|_| false)
                .get("spec")
                .is_none()
        );
    }

    #[test]
    fn jobs_lose_their_generated_selector() {
        let job = obj(json!({"metadata": {"name": "j"}, "spec": {
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}},
            "template": {"metadata": {"labels": {"batch.kubernetes.io/controller-uid": "u", "controller-uid": "u", "app": "j"}}}}}));
        let out = sanitize(&job, "batch/v1", "Job", &|_| false);
        assert!(out["spec"].get("selector").is_none());
        assert_eq!(
            out["spec"]["template"]["metadata"]["labels"],
            json!({"app": "j"})
        );
    }
}
