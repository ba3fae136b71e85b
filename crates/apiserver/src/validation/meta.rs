//! ObjectMeta rules (apimachinery's ValidateObjectMeta): the name per kind, generateName, label
//! and annotation keys and values, the annotations' total size, finalizers, ownerReferences.

use serde_json::Value;

use super::Causes;
use super::values::{dns_label, dns_subdomain, label_value, qualified_name};
use crate::error::Cause;

/// Annotations, keys and values together, may hold at most 256 KiB.
const MAX_ANNOTATIONS: usize = 256 * 1024;

/// How a kind's names are checked.
#[derive(Clone, Copy)]
enum NameRule {
    Subdomain,
    Label,
    PathSegment,
}

fn name_rule(group: &str, plural: &str) -> NameRule {
    match (group, plural) {
        ("", "namespaces" | "services") => NameRule::Label,
        // RBAC names are path segments (`system:controller:…`), as kube-apiserver checks.
        ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
        _ => NameRule::Subdomain,
    }
}

/// ObjectMeta of any kind.
pub fn validate(group: &str, plural: &str, obj: &Value, c: &mut Causes) {
    let meta = obj.get("metadata");
    let get = |k: &str| meta.and_then(|m| m.get(k)).filter(|v| !v.is_null());
    let rule = name_rule(group, plural);
    let name = get("name").and_then(Value::as_str).unwrap_or_default();
    match rule {
        NameRule::PathSegment => validate_path_segment_name(name, "metadata.name", &mut c.0),
        _ => validate_name(
            name,
            matches!(rule, NameRule::Label),
            "metadata.name",
            &mut c.0,
        ),
    }
    if let Some(g) = get("generateName").and_then(Value::as_str)
        && !g.is_empty()
    {
        let prefix = g.strip_suffix('-').unwrap_or(g);
        let check = match rule {
            NameRule::Label => dns_label(prefix),
            NameRule::Subdomain => dns_subdomain(prefix),
            NameRule::PathSegment => Ok(()),
        };
        if let Err(e) = check {
            c.invalid("metadata.generateName".into(), &Value::from(g), &e);
        }
    }
    validate_labels(obj, &mut c.0);
    if let Some(Value::Object(a)) = get("annotations") {
        let size: usize = a
            .iter()
            .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
            .sum();
        if size > MAX_ANNOTATIONS {
            c.too_long("metadata.annotations".into(), MAX_ANNOTATIONS);
        }
    }
    if let Some(Value::Array(fs)) = get("finalizers") {
        for (i, f) in fs.iter().enumerate() {
            let field = || format!("metadata.finalizers[{i}]");
            match f.as_str().map(qualified_name) {
                Some(Ok(())) => {}
                Some(Err(e)) => c.invalid(field(), f, &e),
                None => c.invalid(field(), f, "must be a string"),
            }
        }
    }
    if let Some(Value::Array(refs)) = get("ownerReferences") {
        validate_owner_references(refs, c);
    }
}

fn validate_owner_references(refs: &[Value], c: &mut Causes) {
    let mut controllers = 0;
    for (i, r) in refs.iter().enumerate() {
        for key in ["apiVersion", "kind", "name", "uid"] {
            if r.get(key).and_then(Value::as_str).is_none_or(str::is_empty) {
                c.required(format!("metadata.ownerReferences[{i}].{key}"), "");
            }
        }
        if r.get("controller").and_then(Value::as_bool) == Some(true) {
            controllers += 1;
        }
    }
    if controllers > 1 {
        c.invalid(
            "metadata.ownerReferences".into(),
            &Value::from(controllers),
            "Only one reference can have Controller set to true",
        );
    }
}

/// RFC 1123 subdomain (most object names) or label (namespaces, services).
pub fn validate_name(name: &str, label_only: bool, field: &str, causes: &mut Vec<Cause>) {
    if name.is_empty() {
        causes.push(Cause {
            field: field.into(),
            message: "Required value: name or generateName is required".into(),
            reason: "FieldValueRequired",
        });
        return;
    }
    let check = if label_only {
        dns_label(name)
    } else {
        dns_subdomain(name)
    };
    if let Err(e) = check {
        causes.push(Cause {
            field: field.into(),
            message: format!("Invalid value: \"{name}\": {e}"),
            reason: "FieldValueInvalid",
        });
    }
}

/// Names that only have to be a URL path segment (RBAC's `system:…` names): not empty, not
/// `.` or `..`, no `/` or `%`.
pub fn validate_path_segment_name(name: &str, field: &str, causes: &mut Vec<Cause>) {
    if name.is_empty() {
        causes.push(Cause {
            field: field.into(),
            message: "Required value: name or generateName is required".into(),
            reason: "FieldValueRequired",
        });
    } else if name == "." || name == ".." || name.contains('/') || name.contains('%') {
        causes.push(Cause {
            field: field.into(),
            message: format!(
                "Invalid value: \"{name}\": may not be '.' or '..' and may not contain '/' or '%'"
            ),
            reason: "FieldValueInvalid",
        });
    }
}

/// Label keys and values, and annotation keys, as Kubernetes validates them.
pub fn validate_labels(obj: &Value, causes: &mut Vec<Cause>) {
    let Some(m) = obj.get("metadata") else { return };
    let mut c = Causes(std::mem::take(causes));
    for field in ["labels", "annotations"] {
        let Some(v) = m.get(field).filter(|v| !v.is_null()) else {
            continue;
        };
        let Some(map) = v.as_object() else {
            c.invalid(format!("metadata.{field}"), v, "must be a map of strings");
            continue;
        };
        validate_label_map(map, &format!("metadata.{field}"), field == "labels", &mut c);
    }
    *causes = c.0;
}

/// A map of label keys (qualified names) to strings, label values when `values` is set.
pub fn validate_label_map(
    map: &serde_json::Map<String, Value>,
    field: &str,
    values: bool,
    c: &mut Causes,
) {
    for (k, val) in map {
        let key = if field.ends_with("annotations") {
            qualified_name(&k.to_ascii_lowercase())
        } else {
            qualified_name(k)
        };
        if let Err(e) = key {
            c.invalid(field.to_string(), &Value::from(k.as_str()), &e);
        }
        match val.as_str() {
            None => c.invalid(format!("{field}.{k}"), val, "must be a string"),
            Some(s) if values => {
                if let Err(e) = label_value(s) {
                    c.invalid(field.to_string(), val, &e);
                }
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let mut c = Vec::new();
        validate_name("web-1.prod", false, "metadata.name", &mut c);
        assert!(c.is_empty());
        validate_name("Web", false, "metadata.name", &mut c);
        validate_name("a.b", true, "metadata.name", &mut c);
        validate_name("", true, "metadata.name", &mut c);
        validate_path_segment_name("system:controller:x", "metadata.name", &mut c);
        assert_eq!(c.len(), 3);
        for bad in ["..", "a/b", "a%2f", ""] {
            let mut c = Vec::new();
            validate_path_segment_name(bad, "metadata.name", &mut c);
            assert_eq!(c.len(), 1, "{bad:?}");
        }
    }
}
