//! The minimal migration step of a swap: copy the selected namespaces' objects from blue to
//! green with server-side apply, in dependency order. Idempotent (server-side apply as field
//! manager `rotor`): a crash and a re-run apply nothing new. The migration engine (ordering by
//! discovery, checkpoints, API-version conversion, rate limits) replaces the body of [`copy`];
//! the swap controller only sees [`copy`] and [`crate::health::workloads`].

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use rotor_api::MigrationPolicy;
use serde_json::Value;

use crate::Error;
use crate::health::Selection;

/// Field manager of everything rotor writes into member clusters.
pub const FIELD_MANAGER: &str = "rotor";

/// What one copy did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyReport {
    pub total: u32,
    pub applied: u32,
}

fn resource<K: Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

/// The kinds copied, in the order they are applied: what others refer to comes first.
fn ordered_kinds() -> Vec<(ApiResource, bool)> {
    // (resource, namespaced)
    vec![
        (resource::<Namespace>(), false),
        (resource::<ServiceAccount>(), true),
        (resource::<Role>(), true),
        (resource::<RoleBinding>(), true),
        (resource::<ConfigMap>(), true),
        (resource::<Secret>(), true),
        (resource::<PersistentVolumeClaim>(), true),
        (resource::<Service>(), true),
        (resource::<Deployment>(), true),
        (resource::<StatefulSet>(), true),
        (resource::<DaemonSet>(), true),
        (resource::<Job>(), true),
        (resource::<CronJob>(), true),
        (resource::<Ingress>(), true),
        (resource::<PodDisruptionBudget>(), true),
        (resource::<HorizontalPodAutoscaler>(), true),
    ]
}

/// Objects every cluster creates for itself; copying them would fight the target's own.
fn cluster_owned(kind: &str, obj: &DynamicObject) -> bool {
    let name = obj.name_any();
    match kind {
        "Namespace" => name == "default",
        "ServiceAccount" => name == "default",
        "ConfigMap" => name == "kube-root-ca.crt",
        "Secret" => obj
            .data
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t == "kubernetes.io/service-account-token"),
        "Service" => name == "kubernetes",
        _ => false,
    }
}

/// The object as green should receive it: identity, spec and what its owner wrote; nothing the
/// source cluster assigned (uid, versions, status, allocated IPs, node bindings).
pub fn sanitize(obj: &DynamicObject, ar: &ApiResource) -> Value {
    let mut meta = serde_json::Map::new();
    meta.insert("name".into(), Value::String(obj.name_any()));
    if let Some(ns) = obj.namespace() {
        meta.insert("namespace".into(), Value::String(ns));
    }
    if !obj.labels().is_empty() {
        meta.insert(
            "labels".into(),
            serde_json::to_value(obj.labels()).unwrap_or_default(),
        );
    }
    let annotations: std::collections::BTreeMap<_, _> = obj
        .annotations()
        .iter()
        .filter(|(k, _)| k.as_str() != "kubectl.kubernetes.io/last-applied-configuration")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !annotations.is_empty() {
        meta.insert(
            "annotations".into(),
            serde_json::to_value(annotations).unwrap_or_default(),
        );
    }
    let mut body = obj.data.clone();
    if let Some(map) = body.as_object_mut() {
        map.remove("status");
        if let Some(spec) = map.get_mut("spec").and_then(Value::as_object_mut) {
            for field in ["clusterIP", "clusterIPs", "nodeName", "volumeName"] {
                spec.remove(field);
            }
        }
    }
    let mut out = serde_json::Map::new();
    out.insert("apiVersion".into(), Value::String(ar.api_version.clone()));
    out.insert("kind".into(), Value::String(ar.kind.clone()));
    out.insert("metadata".into(), Value::Object(meta));
    if let Value::Object(rest) = body {
        for (k, v) in rest {
            if !matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                out.insert(k, v);
            }
        }
    }
    Value::Object(out)
}

fn member(instance: &str, what: String, e: kube::Error) -> Error {
    Error::Member {
        instance: instance.to_string(),
        message: format!("{what}: {}", crate::chain(&e)),
    }
}

/// Copies the selected objects from `blue` to `green`.
pub async fn copy(
    blue: &Client,
    blue_name: &str,
    green: &Client,
    green_name: &str,
    selection: &Selection,
    policy: &MigrationPolicy,
) -> Result<CopyReport, Error> {
    let mut report = CopyReport::default();
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    for (ar, namespaced) in ordered_kinds() {
        if policy.skips_kind(&ar.kind, &ar.group) {
            continue;
        }
        let source: Api<DynamicObject> = Api::all_with(blue.clone(), &ar);
        let list = source
            .list(&ListParams::default())
            .await
            .map_err(|e| member(blue_name, format!("listing {}", ar.plural), e))?;
        for obj in list.items {
            let ns = if namespaced {
                obj.namespace().unwrap_or_default()
            } else {
                obj.name_any()
            };
            let selected = if namespaced {
                selection.selects(&ns, obj.labels())
            } else {
                selection.selects_namespace(&ns)
            };
            if !selected
                || cluster_owned(&ar.kind, &obj)
                || !obj.owner_references().is_empty()
                || obj.metadata.deletion_timestamp.is_some()
            {
                continue;
            }
            report.total += 1;
            let body = sanitize(&obj, &ar);
            let target: Api<DynamicObject> = if namespaced {
                Api::namespaced_with(green.clone(), &ns, &ar)
            } else {
                Api::all_with(green.clone(), &ar)
            };
            let name = obj.name_any();
            target
                .patch(&name, &pp, &Patch::Apply(&body))
                .await
                .map_err(|e| {
                    member(
                        green_name,
                        format!("applying {} {}", ar.kind, qualified(namespaced, &ns, &name)),
                        e,
                    )
                })?;
            report.applied += 1;
        }
    }
    Ok(report)
}

fn qualified(namespaced: bool, ns: &str, name: &str) -> String {
    if namespaced {
        format!("{ns}/{name}")
    } else {
        name.to_string()
    }
}
