//! The small groups' defaults: storage.k8s.io/v1, scheduling.k8s.io/v1 and
//! apiextensions.k8s.io/v1 (a CRD's conversion strategy and derived names).

use serde_json::{Map, Value, json};

use super::{D, child, ensure, fill, is_empty, str_of};

pub(super) fn apply(group: &str, plural: &str, minor: u32, root: &mut Map<String, Value>) {
    match (group, plural) {
        ("storage.k8s.io", "storageclasses") => fill(
            root,
            &[
                ("reclaimPolicy", D::PtrStr("Delete")),
                ("volumeBindingMode", D::PtrStr("Immediate")),
            ],
        ),
        ("storage.k8s.io", "csidrivers") => csi_driver(root, minor),
        ("scheduling.k8s.io", "priorityclasses") => {
            fill(
                root,
                &[("preemptionPolicy", D::PtrStr("PreemptLowerPriority"))],
            );
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => crd(root),
        _ => {}
    }
}

fn csi_driver(root: &mut Map<String, Value>, minor: u32) {
    let Some(spec) = ensure(root, "spec") else {
        return;
    };
    fill(
        spec,
        &[
            ("attachRequired", D::Bool(true)),
            ("podInfoOnMount", D::Bool(false)),
            ("storageCapacity", D::Bool(false)),
            ("fsGroupPolicy", D::PtrStr("ReadWriteOnceWithFSType")),
            ("requiresRepublish", D::Bool(false)),
        ],
    );
    if is_empty(spec, "volumeLifecycleModes") {
        spec.insert("volumeLifecycleModes".into(), json!(["Persistent"]));
    }
    // SELinuxMountReadWriteOncePod: beta (on by default) from 1.28.
    if minor >= 28 {
        fill(spec, &[("seLinuxMount", D::Bool(false))]);
    }
}

/// SetDefaults_CustomResourceDefinitionSpec: conversion `None`, singular and listKind from the
/// kind, and a webhook service's port 443.
fn crd(root: &mut Map<String, Value>) {
    let Some(spec) = ensure(root, "spec") else {
        return;
    };
    if let Some(names) = child(spec, "names") {
        let kind = str_of(names, "kind").to_string();
        if !kind.is_empty() {
            let singular = kind.to_lowercase();
            let list_kind = format!("{kind}List");
            if str_of(names, "singular").is_empty() {
                names.insert("singular".into(), json!(singular));
            }
            if str_of(names, "listKind").is_empty() {
                names.insert("listKind".into(), json!(list_kind));
            }
        }
    }
    if let Some(conversion) = ensure(spec, "conversion") {
        fill(conversion, &[("strategy", D::Str("None"))]);
        if let Some(service) = child(conversion, "webhook")
            .and_then(|w| child(w, "clientConfig"))
            .and_then(|c| child(c, "service"))
        {
            fill(service, &[("port", D::Int(443))]);
        }
    }
}
