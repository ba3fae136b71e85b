//! The real kubectl's `delete --cascade=background|foreground|orphan` against a `rotor sim`
//! member cluster started as a process: the garbage collector of rotor's API server collects,
//! waits for, or releases the dependents as kube-apiserver's would.

use crate::common;

use std::path::Path;

use common::kubectl::{Kubectl, start_sim};
use serde_json::{Value, json};

/// Writes `objects` as one file under `dir` and applies it.
fn apply(k: &Kubectl, dir: &Path, name: &str, objects: &[Value]) {
    let path = dir.join(format!("{name}.json"));
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    std::fs::write(&path, list.to_string()).expect("write manifest");
    k.ok(&["apply", "-f", path.to_str().expect("path")]);
}

fn cm(name: &str, owners: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default", "ownerReferences": owners},
        "data": {"k": "v"}})
}

/// A reference to the ConfigMap `name` as it is now, blocking its foreground deletion.
fn owned_by(k: &Kubectl, name: &str) -> Value {
    let uid = k.ok(&["get", "configmap", name, "-o", "jsonpath={.metadata.uid}"]);
    assert!(!uid.is_empty(), "{name} has a uid");
    json!({"apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": uid,
        "blockOwnerDeletion": true})
}

/// Owner `<prefix>` with child `<prefix>-child` and grandchild `<prefix>-grandchild`.
fn family(k: &Kubectl, dir: &Path, prefix: &str) {
    apply(k, dir, prefix, &[cm(prefix, vec![])]);
    let child = format!("{prefix}-child");
    apply(k, dir, &child, &[cm(&child, vec![owned_by(k, prefix)])]);
    let grandchild = format!("{prefix}-grandchild");
    let owner = owned_by(k, &child);
    apply(k, dir, &grandchild, &[cm(&grandchild, vec![owner])]);
}

#[test]
fn kubectl_delete_cascades() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_sim, k) = start_sim(dir.path(), 1, &[]);

    // background: the owner goes at once, its chain of dependents afterwards.
    family(&k, dir.path(), "bg");
    let out = k.ok(&["delete", "configmap", "bg", "--cascade=background"]);
    assert!(out.contains("configmap \"bg\" deleted"), "{out}");
    k.ok(&[
        "wait",
        "--for=delete",
        "configmap/bg-child",
        "configmap/bg-grandchild",
        "--timeout=15s",
    ]);

    // foreground: kubectl waits for the owner, which goes only after its blocking dependents.
    family(&k, dir.path(), "fg");
    k.ok(&[
        "delete",
        "configmap",
        "fg",
        "--cascade=foreground",
        "--timeout=15s",
    ]);
    k.not_found(&["get", "configmap", "fg-child"]);
    k.not_found(&["get", "configmap", "fg-grandchild"]);

    // orphan: the owner goes, its dependent stays without the reference.
    family(&k, dir.path(), "or");
    k.ok(&[
        "delete",
        "configmap",
        "or",
        "--cascade=orphan",
        "--timeout=15s",
    ]);
    let child = k.json(&["get", "configmap", "or-child"]);
    assert_eq!(child["metadata"].get("ownerReferences"), None, "{child}");
    let grandchild = k.json(&["get", "configmap", "or-grandchild"]);
    assert_eq!(
        grandchild["metadata"]["ownerReferences"][0]["uid"], child["metadata"]["uid"],
        "{grandchild}"
    );
}
