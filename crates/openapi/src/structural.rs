//! Structural-schema validation of custom resources, as kube-apiserver applies a CRD's
//! openAPIV3Schema: `required`, `enum`, `pattern`, `format`, bounds, lengths, counts,
//! `uniqueItems`, `nullable` and `x-kubernetes-list-type` uniqueness, with upstream's messages
//! and cause reasons. Types and unknown fields are `validate.rs`'s; a node whose value has the
//! wrong type is not checked further here (that problem is already reported).

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;

use crate::validate::{FieldProblem, ProblemKind};

/// Bounds the walk on pathological (deeply nested) input.
const MAX_DEPTH: usize = 64;
/// Compiled `pattern`s kept process-wide (a CRD's patterns are few; cleared when full).
const PATTERN_CACHE: usize = 1024;

/// Checks `value` against the CRD schema `schema`, appending one problem per failed keyword
/// or CEL rule; `old` is the stored object on update (transition rules need it).
pub(crate) fn check(
    schema: &Value,
    value: &Value,
    old: Option<&Value>,
    out: &mut Vec<FieldProblem>,
) {
    let mut path = String::new();
    let mut walk = Walk {
        out,
        budget: crate::cel::MAX_EVALUATIONS,
    };
    node(schema, value, old, &mut path, 0, &mut walk);
}

/// What the walk gathers, and what it may still spend on CEL rules.
struct Walk<'a> {
    out: &'a mut Vec<FieldProblem>,
    budget: usize,
}

fn get<'a>(node: &'a Value, key: &str) -> Option<&'a Value> {
    crate::get(node, key)
}

fn push(out: &mut Vec<FieldProblem>, path: &str, reason: &'static str, message: String) {
    out.push(FieldProblem {
        path: path.to_string(),
        message: format!("{}: {message}", path.trim_start_matches('.')),
        kind: ProblemKind::Invalid { reason },
    });
}

/// `Invalid value: <v>: <field> in body <detail>`: upstream's FieldValueInvalid wording.
fn invalid(out: &mut Vec<FieldProblem>, path: &str, value: &Value, detail: std::fmt::Arguments) {
    let shown = path.trim_start_matches('.');
    let message = format!("Invalid value: {}: {shown} in body {detail}", show(value));
    push(out, path, "FieldValueInvalid", message);
}

/// A value as Go's `%#v` shows it in field errors: strings quoted, numbers bare.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "\"null\"".into(),
        other => other.to_string(),
    }
}

fn type_matches(ty: &str, v: &Value) -> bool {
    match ty {
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => true,
    }
}

fn node(
    schema: &Value,
    value: &Value,
    old: Option<&Value>,
    path: &mut String,
    depth: usize,
    walk: &mut Walk,
) {
    if depth > MAX_DEPTH {
        return;
    }
    let out = &mut *walk.out;
    let flag = |k: &str| get(schema, k).and_then(Value::as_bool) == Some(true);
    let ty = get(schema, "type").and_then(Value::as_str);
    if value.is_null() {
        if !flag("nullable") && (ty.is_some() || flag("x-kubernetes-int-or-string")) {
            let shown = path.trim_start_matches('.').to_string();
            let ty = ty.unwrap_or("integer,string");
            let message =
                format!("Invalid value: \"null\": {shown} in body must be of type {ty}: \"null\"");
            push(out, path, "FieldValueInvalid", message);
        }
        return;
    }
    if let Some(ty) = ty
        && !type_matches(ty, value)
    {
        return;
    }
    check_enum(schema, value, path, out);
    match value {
        Value::String(s) => string(schema, s, value, path, out),
        Value::Number(_) => number(schema, value, path, out),
        Value::Array(items) => array(schema, items, value, path, depth, walk),
        Value::Object(map) => object(schema, map, value, old, path, depth, walk),
        Value::Bool(_) | Value::Null => {}
    }
    if let Some(rules) = get(schema, "x-kubernetes-validations").and_then(Value::as_array) {
        rules_of(rules, value, old, path, walk);
    }
}

/// Evaluates a node's CEL rules; a failure is reported at the node (or its `fieldPath`).
fn rules_of(rules: &[Value], value: &Value, old: Option<&Value>, path: &str, walk: &mut Walk) {
    let mut failures = Vec::new();
    crate::cel::check(rules, value, old, &mut walk.budget, &mut failures);
    for f in failures {
        let at = match &f.field_path {
            Some(p) => format!(
                "{path}{}",
                if p.starts_with(['.', '[']) {
                    p.to_string()
                } else {
                    format!(".{p}")
                }
            ),
            None => path.to_string(),
        };
        let shown = match value {
            Value::Object(_) => "\"object\"".to_string(),
            Value::Array(_) => "\"array\"".to_string(),
            other => show(other),
        };
        let message = match f.reason {
            "FieldValueRequired" => format!("Required value: {}", f.message),
            "FieldValueForbidden" => format!("Forbidden: {}", f.message),
            "FieldValueDuplicate" => format!("Duplicate value: {shown}: {}", f.message),
            _ => format!("Invalid value: {shown}: {}", f.message),
        };
        push(walk.out, &at, f.reason, message);
    }
}

fn check_enum(schema: &Value, value: &Value, path: &str, out: &mut Vec<FieldProblem>) {
    let Some(options) = get(schema, "enum").and_then(Value::as_array) else {
        return;
    };
    if options.contains(value) {
        return;
    }
    let listed: Vec<String> = options.iter().map(show).collect();
    let message = format!(
        "Unsupported value: {}: supported values: {}",
        show(value),
        listed.join(", ")
    );
    push(out, path, "FieldValueNotSupported", message);
}

fn string(schema: &Value, s: &str, value: &Value, path: &str, out: &mut Vec<FieldProblem>) {
    let len = s.chars().count() as u64;
    if let Some(max) = get(schema, "maxLength").and_then(Value::as_u64)
        && len > max
    {
        let message = format!("Too long: may not be more than {max} bytes");
        push(out, path, "FieldValueTooLong", message);
    }
    if let Some(min) = get(schema, "minLength").and_then(Value::as_u64)
        && len < min
    {
        invalid(
            out,
            path,
            value,
            format_args!("should be at least {min} chars long"),
        );
    }
    if let Some(pattern) = get(schema, "pattern").and_then(Value::as_str)
        && let Some(re) = compiled(pattern)
        && !re.is_match(s)
    {
        invalid(out, path, value, format_args!("should match '{pattern}'"));
    }
    if let Some(format) = get(schema, "format").and_then(Value::as_str)
        && !crate::formats::valid_string(format, s)
    {
        invalid(
            out,
            path,
            value,
            format_args!("must be of type {format}: {s:?}"),
        );
    }
}

/// A pattern compiled once per process; `None` when it does not compile (a CRD with such a
/// pattern is refused at registration, so this is only a guard).
fn compiled(pattern: &str) -> Option<Arc<regex::Regex>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<Arc<regex::Regex>>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(re) = map.get(pattern) {
        return re.clone();
    }
    if map.len() >= PATTERN_CACHE {
        map.clear();
    }
    let re = regex::Regex::new(pattern).ok().map(Arc::new);
    map.insert(pattern.to_string(), re.clone());
    re
}

fn number(schema: &Value, value: &Value, path: &str, out: &mut Vec<FieldProblem>) {
    let Some(n) = value.as_f64() else { return };
    let num = |k: &str| get(schema, k).and_then(Value::as_f64);
    // Go's `%v` of a float64 bound: `10`, not `10.0` (bounds are floats once stored).
    let shown = |k: &str| match num(k) {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        Some(f) => f.to_string(),
        None => String::new(),
    };
    if let Some(max) = num("maximum") {
        if flag_of(schema, "exclusiveMaximum") && n >= max {
            invalid(
                out,
                path,
                value,
                format_args!("should be less than {}", shown("maximum")),
            );
        } else if n > max {
            let m = shown("maximum");
            invalid(
                out,
                path,
                value,
                format_args!("should be less than or equal to {m}"),
            );
        }
    }
    if let Some(min) = num("minimum") {
        if flag_of(schema, "exclusiveMinimum") && n <= min {
            invalid(
                out,
                path,
                value,
                format_args!("should be greater than {}", shown("minimum")),
            );
        } else if n < min {
            let m = shown("minimum");
            invalid(
                out,
                path,
                value,
                format_args!("should be greater than or equal to {m}"),
            );
        }
    }
    if let Some(format) = get(schema, "format").and_then(Value::as_str)
        && !crate::formats::valid_number(format, value)
    {
        invalid(
            out,
            path,
            value,
            format_args!("must be of type {format}: {value}"),
        );
    }
}

fn flag_of(schema: &Value, key: &str) -> bool {
    get(schema, key).and_then(Value::as_bool) == Some(true)
}

fn array(
    schema: &Value,
    items: &[Value],
    value: &Value,
    path: &mut String,
    depth: usize,
    walk: &mut Walk,
) {
    let out = &mut *walk.out;
    let count = items.len() as u64;
    if let Some(max) = get(schema, "maxItems").and_then(Value::as_u64)
        && count > max
    {
        let message = format!("Too many: {count}: must have at most {max} items");
        push(out, path, "FieldValueTooMany", message);
    }
    if let Some(min) = get(schema, "minItems").and_then(Value::as_u64)
        && count < min
    {
        invalid(
            out,
            path,
            value,
            format_args!("should have at least {min} items"),
        );
    }
    let list_type = get(schema, "x-kubernetes-list-type").and_then(Value::as_str);
    if flag_of(schema, "uniqueItems") || list_type == Some("set") {
        unique(items, path, |v| v.clone(), out);
    }
    if list_type == Some("map") {
        let keys: Vec<&str> = get(schema, "x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|k| k.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let key_of = |v: &Value| {
            let map = keys
                .iter()
                .filter_map(|k| v.get(*k).map(|x| (k.to_string(), x.clone())));
            Value::Object(map.collect())
        };
        unique(items, path, key_of, out);
    }
    if let Some(item_schema) = get(schema, "items") {
        for (i, v) in items.iter().enumerate() {
            let len = path.len();
            let _ = write!(path, "[{i}]");
            // Items are not correlated with the old list: transition rules skip them.
            node(item_schema, v, None, path, depth + 1, walk);
            path.truncate(len);
        }
    }
}

/// One `Duplicate value` per item whose key an earlier item already had. Lists are short:
/// comparing pairs allocates nothing beyond the keys.
fn unique(
    items: &[Value],
    path: &mut String,
    key: impl Fn(&Value) -> Value,
    out: &mut Vec<FieldProblem>,
) {
    let keys: Vec<Value> = items.iter().map(key).collect();
    for i in 1..keys.len() {
        if keys[..i].contains(&keys[i]) {
            let len = path.len();
            let _ = write!(path, "[{i}]");
            let message = format!("Duplicate value: {}", keys[i]);
            push(out, path, "FieldValueDuplicate", message);
            path.truncate(len);
        }
    }
}

fn object(
    schema: &Value,
    map: &serde_json::Map<String, Value>,
    value: &Value,
    old: Option<&Value>,
    path: &mut String,
    depth: usize,
    walk: &mut Walk,
) {
    let out = &mut *walk.out;
    let count = map.len() as u64;
    if let Some(max) = get(schema, "maxProperties").and_then(Value::as_u64)
        && count > max
    {
        let message = format!("Too many: {count}: must have at most {max} items");
        push(out, path, "FieldValueTooMany", message);
    }
    if let Some(min) = get(schema, "minProperties").and_then(Value::as_u64)
        && count < min
    {
        invalid(
            out,
            path,
            value,
            format_args!("should have at least {min} properties"),
        );
    }
    for name in get(schema, "required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(name) = name.as_str()
            && !map.contains_key(name)
        {
            let len = path.len();
            path.push('.');
            path.push_str(name);
            push(out, path, "FieldValueRequired", "Required value".into());
            path.truncate(len);
        }
    }
    let props = get(schema, "properties").and_then(Value::as_object);
    let additional = get(schema, "additionalProperties").filter(|v| v.is_object());
    let at_root = path.is_empty();
    for (k, v) in map {
        if at_root && matches!(k.as_str(), "metadata" | "apiVersion" | "kind") {
            continue; // ObjectMeta is the release's; the root's type fields are the server's
        }
        let Some(child) = props.and_then(|p| p.get(k)).or(additional) else {
            continue;
        };
        let len = path.len();
        path.push('.');
        path.push_str(k);
        let old_child = old.and_then(|o| o.get(k));
        node(child, v, old_child, path, depth + 1, walk);
        path.truncate(len);
    }
}
