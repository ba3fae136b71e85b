//! Small helpers over objects held as `serde_json::Value`: metadata access, timestamps, uids, and
//! the validation Kubernetes applies to names and labels.

use rand::Rng;
use serde_json::{Map, Value, json};

use crate::error::Cause;

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn new_uid() -> String {
    // A version 4 UUID, written out by hand: `format!` with five padded hex fields costs more
    // than the rest of a create's metadata.
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(HEX[usize::from(byte >> 4)] as char);
        out.push(HEX[usize::from(byte & 0x0f)] as char);
    }
    out
}

/// Five lowercase alphanumerics, as `generateName` appends.
pub fn random_suffix() -> String {
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

pub fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

/// `metadata`, created if missing (or replaced if it is not an object).
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let map = obj.as_object_mut().expect("object ensured above");
    let m = map.entry("metadata").or_insert_with(|| json!({}));
    if !m.is_object() {
        *m = json!({});
    }
    m.as_object_mut().expect("object ensured above")
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    meta(obj).and_then(|m| m.get(field)).and_then(Value::as_str)
}

pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or_default()
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    meta(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub fn is_deleting(obj: &Value) -> bool {
    meta(obj)
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some_and(|t| !t.is_null())
}

/// The object without `metadata` and `status`: what `metadata.generation` tracks.
pub fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    v
}

/// RFC 1123 subdomain (most object names) or label (namespaces, services).
pub fn validate_name(name: &str, label_only: bool, field: &str, causes: &mut Vec<Cause>) {
    let max = if label_only { 63 } else { 253 };
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    };
    let ok = name.len() <= max
        && if label_only {
            segment_ok(name)
        } else {
            name.split('.').all(segment_ok)
        };
    if name.is_empty() {
        causes.push(Cause {
            field: field.into(),
            message: "Required value: name or generateName is required".into(),
            reason: "FieldValueRequired",
        });
    } else if !ok {
        let what = if label_only {
            "RFC 1123 label"
        } else {
            "RFC 1123 subdomain"
        };
        causes.push(Cause {
            field: field.into(),
            message: format!("Invalid value: \"{name}\": a lowercase {what} must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
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
    let Some(m) = meta(obj) else { return };
    for field in ["labels", "annotations"] {
        let Some(v) = m.get(field) else { continue };
        if v.is_null() {
            continue;
        }
        let Some(map) = v.as_object() else {
            causes.push(Cause {
                field: format!("metadata.{field}"),
                message: "Invalid value: must be a map of strings".into(),
                reason: "FieldValueInvalid",
            });
            continue;
        };
        for (k, val) in map {
            let name_part = k.rsplit('/').next().unwrap_or_default();
            let key_ok = !name_part.is_empty()
                && name_part.len() <= 63
                && name_part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && name_part
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric())
                && name_part
                    .chars()
                    .last()
                    .is_some_and(|c| c.is_ascii_alphanumeric());
            if !key_ok {
                causes.push(Cause { field: format!("metadata.{field}"), message: format!("Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.'"), reason: "FieldValueInvalid" });
            }
            match val.as_str() {
                None => causes.push(Cause { field: format!("metadata.{field}.{k}"), message: "Invalid value: must be a string".into(), reason: "FieldValueInvalid" }),
                Some(s) if field == "labels" && (s.len() > 63 || !s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) => {
                    causes.push(Cause { field: "metadata.labels".to_string(), message: format!("Invalid value: \"{s}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.'"), reason: "FieldValueInvalid" })
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_shape() {
        let u = new_uid();
        assert_eq!(u.len(), 36);
        for (i, c) in u.char_indices() {
            match i {
                8 | 13 | 18 | 23 => assert_eq!(c, '-', "{u}"),
                _ => assert!(matches!(c, '0'..='9' | 'a'..='f'), "{u}"),
            }
        }
        // Version 4, RFC 4122 variant.
        assert_eq!(u.as_bytes()[14], b'4');
        assert!(matches!(u.as_bytes()[19], b'8' | b'9' | b'a' | b'b'), "{u}");
        assert_ne!(u, new_uid());
    }

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
