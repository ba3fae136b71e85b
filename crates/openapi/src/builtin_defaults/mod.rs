//! Built-in defaulting, as kube-apiserver's `SetDefaults_*` functions (k8s.io/kubernetes
//! pkg/apis/*/v1/defaults.go) run while decoding every write: create, update, every patch type
//! and server-side apply. Running after the patch is applied is what brings back a defaulted
//! field that a patch or an apply removed. One file per API group; the shared helpers here.
//! Here rather than in the API server because migration compares objects as a server of the
//! target release would store them.
//!
//! Upstream's Go types decide what "unset" means: a nil pointer, map or slice is absent here; a
//! plain string is also unset when empty, a plain integer when 0.

mod admission;
mod apps;
mod autoscaling;
mod batch;
mod core;
mod networking;
mod pod;
mod rbac;
mod storage;

use serde_json::{Map, Value, json};

/// Applies the defaults of the built-in kind `group`/`plural` (served at `version` by a server
/// of Kubernetes `minor`) to `obj`. Kinds without defaults upstream are left alone.
pub fn apply(group: &str, version: &str, plural: &str, minor: u32, obj: &mut Value) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    match group {
        "" => core::apply(plural, root),
        "apps" => apps::apply(plural, minor, root),
        "batch" => batch::apply(plural, minor, root),
        "autoscaling" => autoscaling::apply(plural, version, root),
        "networking.k8s.io" | "discovery.k8s.io" => networking::apply(plural, root),
        "rbac.authorization.k8s.io" => rbac::apply(plural, root),
        "storage.k8s.io" | "scheduling.k8s.io" | "apiextensions.k8s.io" => {
            storage::apply(group, plural, minor, root)
        }
        "admissionregistration.k8s.io" => admission::apply(plural, root),
        _ => {}
    }
}

/// Drops explicit `null` members, as decoding into upstream's Go types does (a null pointer,
/// map or slice is simply unset, and is never encoded back). Raw JSON subtrees that keep their
/// nulls upstream (a CRD's schemas, a ControllerRevision's `data`) are left as sent.
pub fn drop_nulls(group: &str, plural: &str, obj: &mut Value) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    root.retain(|_, v| !v.is_null());
    for (key, value) in root.iter_mut() {
        let raw = match (group, plural, key.as_str()) {
            ("apps", "controllerrevisions", "data") => true,
            ("apiextensions.k8s.io", "customresourcedefinitions", "spec") => {
                drop_nulls_in_crd_spec(value);
                true
            }
            _ => false,
        };
        if !raw {
            drop_nulls_deep(value, 0);
        }
    }
}

/// Nesting deeper than any built-in kind: a bound on the walk, whatever a body holds.
const MAX_DEPTH: usize = 64;

fn drop_nulls_deep(value: &mut Value, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(|v| drop_nulls_deep(v, depth + 1));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| drop_nulls_deep(v, depth + 1)),
        _ => {}
    }
}

/// A CRD's spec minus its versions' schemas (JSON Schema, where `null` is a value).
fn drop_nulls_in_crd_spec(spec: &mut Value) {
    let Some(spec) = spec.as_object_mut() else {
        return;
    };
    spec.retain(|_, v| !v.is_null());
    for (key, value) in spec.iter_mut() {
        match (key.as_str(), value) {
            ("versions", Value::Array(versions)) => {
                for version in versions.iter_mut().filter_map(Value::as_object_mut) {
                    version.retain(|_, v| !v.is_null());
                    for (k, v) in version.iter_mut() {
                        if k != "schema" {
                            drop_nulls_deep(v, 0);
                        }
                    }
                }
            }
            ("validation", _) => {}
            (_, v) => drop_nulls_deep(v, 0),
        }
    }
}

/// One defaulted field: what counts as unset and the value it gets.
#[derive(Clone, Copy)]
pub(super) enum D {
    /// A plain Go string: unset when absent or empty.
    Str(&'static str),
    /// A plain Go integer: unset when absent or 0.
    Zero(i64),
    /// A pointer to an integer: unset when absent.
    Int(i64),
    /// A pointer to a bool: unset when absent.
    Bool(bool),
    /// A pointer to a string: unset when absent.
    PtrStr(&'static str),
    /// A pointer to a struct: `{}` when absent.
    Obj,
}

/// Applies a table of defaults to one object.
pub(super) fn fill(m: &mut Map<String, Value>, table: &[(&str, D)]) {
    for &(key, d) in table {
        let current = m.get(key);
        let unset = match (d, current) {
            (_, None) => true,
            (D::Str(_), Some(v)) => v.as_str() == Some(""),
            (D::Zero(_), Some(v)) => v.as_i64() == Some(0),
            _ => false,
        };
        if unset {
            let value = match d {
                D::Str(s) | D::PtrStr(s) => json!(s),
                D::Zero(n) | D::Int(n) => json!(n),
                D::Bool(b) => json!(b),
                D::Obj => json!({}),
            };
            m.insert(key.to_string(), value);
        }
    }
}

/// The object at `key`, created empty when absent (a defaulted struct); `None` when the field
/// holds something else (a type error validation reports).
pub(super) fn ensure<'a>(
    m: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    m.entry(key.to_string())
        .or_insert_with(|| json!({}))
        .as_object_mut()
}

/// The object at `key` when present.
pub(super) fn child<'a>(
    m: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    m.get_mut(key).and_then(Value::as_object_mut)
}

/// The objects in the list at `key`.
pub(super) fn each<'a>(
    m: &'a mut Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    m.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

/// The string at `key` ("" when absent).
pub(super) fn str_of<'a>(m: &'a Map<String, Value>, key: &str) -> &'a str {
    m.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Is the field unset (absent, or an empty list or map — Go's `len(x) == 0`)?
pub(super) fn is_empty(m: &Map<String, Value>, key: &str) -> bool {
    match m.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        Some(Value::String(s)) => s.is_empty(),
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests;
