//! Structural-schema defaulting of custom resources, as apiextensions-apiserver does on every
//! write and on every read from storage: a missing property (or a `null` one its schema does
//! not allow) takes the schema's `default`, nested defaults apply inside defaulted values, and
//! any other `null` a non-nullable property holds is dropped. CRD schemas are structural and
//! self-contained, so the walk follows the raw schema (no `$ref`s).

use serde_json::{Map, Value};

/// Nesting bound of the walk, far beyond what a structural schema declares.
const MAX_DEPTH: usize = 64;

/// Defaults `value` (a whole custom resource) by its CRD version's `openAPIV3Schema`.
/// `apiVersion`, `kind` and `metadata` at the root are the server's, never defaulted here.
pub fn default_custom(schema: &Value, value: &mut Value) {
    let Some(root) = value.as_object_mut() else {
        return;
    };
    let props = schema.get("properties").and_then(Value::as_object);
    for (key, prop) in props.into_iter().flatten() {
        if matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        default_member(root, key, prop);
    }
    for (key, v) in root.iter_mut() {
        if let Some(prop) = props.and_then(|p| p.get(key))
            && !matches!(key.as_str(), "apiVersion" | "kind" | "metadata")
        {
            walk(v, prop, 1);
        }
    }
}

/// Does `schema` hold a `default` anywhere? (Objects of a CRD without any need no decoding
/// on read.)
pub fn has_defaults(schema: &Value) -> bool {
    let Some(m) = schema.as_object() else {
        return false;
    };
    m.contains_key("default")
        || m.get("properties")
            .and_then(Value::as_object)
            .is_some_and(|p| p.values().any(has_defaults))
        || ["additionalProperties", "items"]
            .iter()
            .filter_map(|k| m.get(*k))
            .any(has_defaults)
}

fn nullable(schema: &Value) -> bool {
    schema.get("nullable").and_then(Value::as_bool) == Some(true)
}

/// Fills in one member of an object from its property schema (missing, or a null the schema
/// does not allow), or drops a disallowed null that has no default.
fn default_member(map: &mut Map<String, Value>, key: &str, prop: &Value) {
    let disallowed_null = map.get(key).is_some_and(Value::is_null) && !nullable(prop);
    let missing = !map.contains_key(key);
    if !(missing || disallowed_null) {
        return;
    }
    match prop.get("default") {
        Some(d) => {
            map.insert(key.to_string(), d.clone());
        }
        None if disallowed_null => {
            map.remove(key);
        }
        None => {}
    }
}

fn walk(value: &mut Value, schema: &Value, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            for (key, prop) in props.into_iter().flatten() {
                default_member(map, key, prop);
            }
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            if let Some(additional) = additional {
                let keys: Vec<String> = map
                    .keys()
                    .filter(|k| props.is_none_or(|p| !p.contains_key(*k)))
                    .cloned()
                    .collect();
                for key in keys {
                    default_member(map, &key, additional);
                }
            }
            for (key, v) in map.iter_mut() {
                if let Some(child) = props.and_then(|p| p.get(key)).or(additional) {
                    walk(v, child, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            let Some(item_schema) = schema.get("items").filter(|i| i.is_object()) else {
                return;
            };
            for item in items.iter_mut() {
                if item.is_null()
                    && !nullable(item_schema)
                    && let Some(d) = item_schema.get("default")
                {
                    *item = d.clone();
                }
                walk(item, item_schema, depth + 1);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "default": {}, "properties": {
                "replicas": {"type": "integer", "default": 1},
                "mode": {"type": "string", "default": "Auto"},
                "note": {"type": "string", "nullable": true, "default": "x"},
                "plain": {"type": "string"},
                "ports": {"type": "array", "items": {"type": "object", "properties": {
                    "protocol": {"type": "string", "default": "TCP"}}}},
                "labels": {"type": "object", "additionalProperties": {"type": "string", "default": "on"}},
            }},
        }})
    }

    #[test]
    fn missing_fields_and_nested_defaults_are_filled() {
        let mut obj = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"}});
        default_custom(&schema(), &mut obj);
        assert_eq!(
            obj["spec"],
            json!({"replicas": 1, "mode": "Auto", "note": "x"})
        );
        assert_eq!(obj["metadata"], json!({"name": "a"}));
    }

    #[test]
    fn nulls_take_the_default_or_go_unless_nullable() {
        let mut obj = json!({"spec": {"replicas": null, "note": null, "plain": null,
            "ports": [{"protocol": null}, {}], "labels": {"a": null, "b": "off"}}});
        default_custom(&schema(), &mut obj);
        let spec = &obj["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(spec["note"], Value::Null, "nullable keeps its null");
        assert!(
            spec.get("plain").is_none(),
            "a non-nullable null without default goes"
        );
        assert_eq!(
            spec["ports"],
            json!([{"protocol": "TCP"}, {"protocol": "TCP"}])
        );
        assert_eq!(spec["labels"], json!({"a": "on", "b": "off"}));
        assert_eq!(spec["mode"], "Auto");
    }

    #[test]
    fn values_given_are_kept() {
        let mut obj = json!({"spec": {"replicas": 0, "mode": ""}});
        default_custom(&schema(), &mut obj);
        assert_eq!(obj["spec"]["replicas"], 0);
        assert_eq!(obj["spec"]["mode"], "");
    }

    #[test]
    fn has_defaults_finds_nested_ones() {
        assert!(has_defaults(&schema()));
        assert!(!has_defaults(&json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {"default": {"type": "string"}}}}})));
    }
}
