//! Field validation: unknown fields (reported as kube-apiserver does for
//! `fieldValidation=Strict`, `unknown field "spec.replicass"`) and wrong types, which are
//! refused at every level. A problem's [`ProblemKind`] tells the two apart.

use std::sync::Arc;

use rotor_patch::SchemaCursor;
use serde_json::Value;

use crate::{Cursor, Spec};

/// One problem in an object, at `path` (`.spec.replicas`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub path: String,
    pub message: String,
    pub kind: ProblemKind,
}

/// What is wrong: the fieldValidation level decides only about [`ProblemKind::Unknown`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// A field the schema does not declare.
    Unknown,
    /// A value of the wrong JSON type; `go` is how kube-apiserver's JSON decoder words it for
    /// a built-in kind.
    Type { go: GoTypeError },
    /// A structural-schema constraint of a custom resource; `reason` is the cause's reason
    /// (`FieldValueRequired`, `FieldValueNotSupported`, …).
    Invalid { reason: &'static str },
}

impl ProblemKind {
    /// Type and schema problems are refused whatever the fieldValidation level.
    pub fn always_refused(&self) -> bool {
        !matches!(self, ProblemKind::Unknown)
    }

    /// The cause reason of a custom resource's problem.
    pub fn reason(&self) -> &'static str {
        match self {
            ProblemKind::Invalid { reason } => reason,
            _ => "FieldValueInvalid",
        }
    }
}

/// The parts of Go's `json: cannot unmarshal number into Go struct field ConfigMap.data of
/// type string`: the JSON value, the innermost struct, its field path (struct fields only, no
/// keys or indexes, as Go keeps it) and the Go type the field has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoTypeError {
    pub value: String,
    pub owner: String,
    pub field: String,
    pub go_type: String,
}

impl std::fmt::Display for GoTypeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "json: cannot unmarshal {} into Go struct field {}.{} of type {}",
            self.value, self.owner, self.field, self.go_type
        )
    }
}

/// Bounds the walk on pathological (deeply nested) input.
const MAX_DEPTH: usize = 64;

/// Unknown fields and type problems of `value` under `root`, whose Go struct is `owner`.
pub(crate) fn validate(root: &Cursor, owner: &'static str, value: &Value) -> Vec<FieldProblem> {
    let mut out = Vec::new();
    let mut at = Place {
        path: String::new(),
        go_field: String::new(),
        owner,
    };
    walk(root, value, &mut at, 0, &mut out);
    out
}

/// Validates a custom resource against its CRD's openAPIV3Schema: unknown fields, types,
/// every structural-schema keyword (`structural.rs`) and CEL rules (`cel.rs`); `old` is the
/// stored object on update, for transition rules.
pub fn validate_custom(
    spec: &Arc<Spec>,
    schema: &Arc<Value>,
    value: &Value,
    old: Option<&Value>,
) -> Vec<FieldProblem> {
    let mut out = validate(&Cursor::new(spec.clone(), schema.clone()), "", value);
    crate::structural::check(schema, value, old, &mut out);
    out
}

/// Where the walk is: the JSON path (`.spec.replicas`), Go's field path (`spec.replicas`) and
/// the innermost Go struct, grown and shrunk as the walk goes.
struct Place {
    path: String,
    go_field: String,
    owner: &'static str,
}

/// The Go name of a JSON value, as Go's decoder reports it.
fn go_value(v: &Value) -> String {
    match v {
        Value::Bool(_) => "bool".into(),
        Value::Number(n) if n.is_f64() => format!("number {n}"),
        Value::Number(_) => "number".into(),
        Value::String(_) => "string".into(),
        Value::Array(_) => "array".into(),
        _ => "object".into(),
    }
}

/// The Go type a schema node stands for (`int32`, `v1.PodSpec`, `map[string]string`).
fn go_type(node: &Value, depth: usize) -> String {
    if let Some(r) = crate::get(node, "$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or_default();
        let mut parts = name.rsplit('.');
        let kind = parts.next().unwrap_or_default();
        return match kind {
            "IntOrString" => "intstr.IntOrString".into(),
            "Quantity" => "resource.Quantity".into(),
            _ => format!("{}.{kind}", parts.next().unwrap_or_default()),
        };
    }
    if depth > 8 {
        return "interface {}".into();
    }
    let format = crate::get(node, "format").and_then(Value::as_str);
    match crate::get(node, "type").and_then(Value::as_str) {
        Some("string") if format == Some("byte") => "[]uint8".into(),
        Some("string") => "string".into(),
        Some("boolean") => "bool".into(),
        Some("integer") => format.unwrap_or("int64").into(),
        Some("number") => "float64".into(),
        Some("array") => match crate::get(node, "items") {
            Some(items) => format!("[]{}", go_type(items, depth + 1)),
            None => "[]interface {}".into(),
        },
        Some("object") => match crate::get(node, "additionalProperties") {
            Some(v) if v.is_object() => format!("map[string]{}", go_type(v, depth + 1)),
            _ => "map[string]interface {}".into(),
        },
        _ => "interface {}".into(),
    }
}

/// The struct a `$ref`'d node decodes into (`io.k8s.api.core.v1.PodSpec` → `PodSpec`).
fn ref_owner(node: &Value) -> Option<&str> {
    let r = crate::get(node, "$ref").and_then(Value::as_str)?;
    r.rsplit(['/', '.']).next()
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
fn walk(cursor: &Cursor, value: &Value, at: &mut Place, depth: usize, out: &mut Vec<FieldProblem>) {
    if depth > MAX_DEPTH || value.is_null() {
        return;
    }
    if cursor.definition_node().and_then(ref_owner) == Some("RawExtension") {
        // Raw JSON of any type (a ControllerRevision's `data`): upstream keeps the bytes as
        // sent, whatever the published schema's `type: object` says.
        return;
    }
    let Some(resolved) = cursor.resolved() else {
        return;
    };
    let Some(node) = resolved.raw() else { return };
    let flag = |k: &str| crate::get(node, k).and_then(Value::as_bool) == Some(true);
    if flag("x-kubernetes-int-or-string") {
        if !matches!(type_name(value), "integer" | "string") {
            let shown = at.path.trim_start_matches('.');
            out.push(FieldProblem {
                path: at.path.clone(),
                message: format!(
                    "{shown}: Invalid value: \"{}\": {shown} in body must be of type integer,string: \"{}\"",
                    type_name(value),
                    type_name(value)
                ),
                kind: type_problem(cursor, value, at),
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
        let shown = at.path.trim_start_matches('.');
        out.push(FieldProblem {
            path: at.path.clone(),
            message: format!("{shown}: Invalid value: \"{actual}\": {shown} in body must be of type {}: \"{actual}\"", expected.unwrap_or_default()),
            kind: type_problem(cursor, value, at),
        });
        return;
    }
    let outer = at.owner;
    if let Some(owner) = cursor.definition_node().and_then(ref_owner) {
        // Entering a struct of its own: Go names the innermost one.
        at.owner = owner;
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
            let at_root = at.path.is_empty();
            let struct_fields = props.is_some();
            for (k, v) in map {
                let (len, go_len) = (at.path.len(), at.go_field.len());
                at.path.push('.');
                at.path.push_str(k);
                if struct_fields {
                    if !at.go_field.is_empty() {
                        at.go_field.push('.');
                    }
                    at.go_field.push_str(k);
                }
                match field(cursor, &resolved, k) {
                    Some(c) => walk(&c, v, at, depth + 1, out),
                    None if preserve || (at_root && (k == "apiVersion" || k == "kind")) => {}
                    None => out.push(FieldProblem {
                        path: at.path.clone(),
                        message: format!("unknown field \"{}\"", at.path.trim_start_matches('.')),
                        kind: ProblemKind::Unknown,
                    }),
                }
                at.path.truncate(len);
                at.go_field.truncate(go_len);
            }
        }
        Value::Array(items) => {
            if let Some(c) = resolved.items_resolved() {
                for (i, v) in items.iter().enumerate() {
                    let len = at.path.len();
                    use std::fmt::Write;
                    let _ = write!(at.path, "[{i}]");
                    walk(&c, v, at, depth + 1, out);
                    at.path.truncate(len);
                }
            }
        }
        _ => {}
    }
    at.owner = outer;
}

/// A type problem at `at`, with the words Go's decoder would use.
fn type_problem(cursor: &Cursor, value: &Value, at: &Place) -> ProblemKind {
    let go_type = cursor.raw().map(|n| go_type(n, 0)).unwrap_or_default();
    ProblemKind::Type {
        go: GoTypeError {
            value: go_value(value),
            owner: at.owner.to_string(),
            field: at.go_field.clone(),
            go_type,
        },
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
