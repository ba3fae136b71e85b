//! Strict field validation: unknown fields and wrong types, reported with their path as
//! kube-apiserver does for `fieldValidation=Strict` (`unknown field "spec.replicass"`).

use std::sync::Arc;

use rotor_patch::SchemaCursor;
use serde_json::Value;

use crate::{Cursor, Spec};

/// One problem in an object, at `path` (`.spec.replicas`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub path: String,
    pub message: String,
}

/// Bounds the walk on pathological (deeply nested) input.
const MAX_DEPTH: usize = 64;

pub(crate) fn validate(root: &Cursor, value: &Value) -> Vec<FieldProblem> {
    let mut out = Vec::new();
    walk(root, value, &mut String::new(), 0, &mut out);
    out
}

/// Validates a custom resource against its CRD's openAPIV3Schema.
pub fn validate_custom(spec: &Arc<Spec>, schema: &Arc<Value>, value: &Value) -> Vec<FieldProblem> {
    validate(&Cursor::new(spec.clone(), schema.clone()), value)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `path` is the place of `value` (`.spec.replicas`), grown and shrunk as the walk goes: no
/// allocation per field unless there is a problem to report.
fn walk(
    cursor: &Cursor,
    value: &Value,
    path: &mut String,
    depth: usize,
    out: &mut Vec<FieldProblem>,
) {
    if depth > MAX_DEPTH || value.is_null() {
        return;
    }
    let Some(resolved) = cursor.resolved() else {
        return;
    };
    let Some(node) = resolved.raw() else { return };
    let flag = |k: &str| crate::get(node, k).and_then(Value::as_bool) == Some(true);
    if flag("x-kubernetes-int-or-string") {
        if !matches!(type_name(value), "integer" | "string") {
            out.push(FieldProblem {
                path: path.clone(),
                message: format!(
                    "{}: Invalid value: \"{}\": must be an integer or a string",
                    path.trim_start_matches('.'),
                    type_name(value)
                ),
            });
        }
        return;
    }
    let expected = crate::get(node, "type").and_then(Value::as_str);
    let actual = type_name(value);
    let type_ok = match expected {
        None => true,
        Some("number") => matches!(actual, "number" | "integer"),
        // Quantities are published as strings but accept numbers.
        Some("string")
            if crate::get(node, "format").and_then(Value::as_str) == Some("quantity") =>
        {
            matches!(actual, "string" | "integer" | "number")
        }
        Some(t) => t == actual,
    };
    if !type_ok {
        let shown = path.trim_start_matches('.');
        out.push(FieldProblem {
            path: path.clone(),
            message: format!("{shown}: Invalid value: \"{actual}\": {shown} in body must be of type {}: \"{actual}\"", expected.unwrap_or_default()),
        });
        return;
    }
    match value {
        Value::Object(map) => {
            let props = crate::get(node, "properties").and_then(Value::as_object);
            let additional = crate::get(node, "additionalProperties").is_some_and(Value::is_object);
            let preserve = flag("x-kubernetes-preserve-unknown-fields")
                || flag("x-kubernetes-embedded-resource");
            if props.is_none() && !additional {
                return; // free-form object
            }
            let at_root = path.is_empty();
            for (k, v) in map {
                let len = path.len();
                path.push('.');
                path.push_str(k);
                match field(cursor, &resolved, k) {
                    Some(c) => walk(&c, v, path, depth + 1, out),
                    None if preserve || (at_root && (k == "apiVersion" || k == "kind")) => {}
                    None => out.push(FieldProblem {
                        path: path.clone(),
                        message: format!("unknown field \"{}\"", path.trim_start_matches('.')),
                    }),
                }
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            if let Some(c) = resolved.items_resolved() {
                for (i, v) in items.iter().enumerate() {
                    let len = path.len();
                    use std::fmt::Write;
                    let _ = write!(path, "[{i}]");
                    walk(&c, v, path, depth + 1, out);
                    path.truncate(len);
                }
            }
        }
        _ => {}
    }
}

/// `cursor.field(name)`, given `cursor` already resolved.
fn field(cursor: &Cursor, resolved: &Cursor, name: &str) -> Option<Cursor> {
    if name == "metadata" {
        // A custom resource's metadata is the release's ObjectMeta (the trait method knows).
        return cursor.field(name);
    }
    resolved.field_resolved(name)
}

/// Drops the fields a custom resource's structural schema does not declare, as kube-apiserver
/// prunes them (unless `x-kubernetes-preserve-unknown-fields`). `apiVersion`, `kind` and
/// `metadata` at the root are kept; metadata is ObjectMeta and is never pruned here.
pub fn prune_custom(spec: &Arc<Spec>, schema: &Arc<Value>, value: &mut Value) {
    prune(&Cursor::new(spec.clone(), schema.clone()), value, true, 0);
}

fn prune(cursor: &Cursor, value: &mut Value, root: bool, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    let Some(resolved) = cursor.resolved() else {
        return;
    };
    let Some(node) = resolved.raw() else { return };
    match value {
        Value::Object(map) => {
            let declared = node.get("properties").is_some_and(Value::is_object)
                || node
                    .get("additionalProperties")
                    .is_some_and(Value::is_object);
            if !declared
                || cursor.preserves_unknown()
                || node
                    .get("x-kubernetes-embedded-resource")
                    .and_then(Value::as_bool)
                    == Some(true)
            {
                return;
            }
            map.retain(|k, _| {
                (root && matches!(k.as_str(), "apiVersion" | "kind" | "metadata"))
                    || cursor.field(k).is_some()
            });
            for (k, v) in map.iter_mut() {
                if root && k == "metadata" {
                    continue;
                }
                if let Some(c) = cursor.field(k) {
                    prune(&c, v, false, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            if let Some(c) = cursor.items() {
                for v in items {
                    prune(&c, v, false, depth + 1);
                }
            }
        }
        _ => {}
    }
}
