//! The `pod-template-hash` kube-controller-manager puts on a Deployment's ReplicaSets: a stable
//! hash of `spec.template` (FNV-1a, 32 bits, as upstream) written in upstream's "safe" alphabet
//! (lowercase consonants and digits that cannot spell words), so the same template always maps to
//! the same ReplicaSet name and `kubectl rollout undo` finds its old ReplicaSet again.
//! Upstream hashes the Go struct, where an empty object, an empty list and an absent field are
//! one value (kubectl's undo sends `resources: {}` the stored template lacks): so is it here.

use serde_json::Value;

/// The label naming a ReplicaSet's template hash.
pub const LABEL: &str = "pod-template-hash";

/// The hash of a pod template, ignoring any `pod-template-hash` label it already carries.
pub fn template_hash(template: &Value) -> String {
    let mut t = template.clone();
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(LABEL);
    }
    let mut bytes = Vec::new();
    canonical(&prune(t).unwrap_or(Value::Null), &mut bytes);
    safe_encode(&fnv1a32(&bytes).to_string())
}

/// `v` without nulls, empty objects and empty lists (None when nothing is left).
fn prune(v: Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Object(m) => {
            let kept: serde_json::Map<String, Value> = m
                .into_iter()
                .filter_map(|(k, x)| prune(x).map(|x| (k, x)))
                .collect();
            (!kept.is_empty()).then_some(Value::Object(kept))
        }
        Value::Array(a) => {
            let kept: Vec<Value> = a
                .into_iter()
                .map(|x| prune(x).unwrap_or(Value::Null))
                .collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        scalar => Some(scalar),
    }
}

/// JSON with every object's keys sorted: the hash must not depend on the order a patch left.
fn canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(&Value::String(k.clone()), out);
                out.push(b':');
                canonical(&m[k], out);
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(x, out);
            }
            out.push(b']');
        }
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// Upstream's `SafeEncodeString`: each byte mapped into an alphabet without vowels.
fn safe_encode(s: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHABET[usize::from(b) % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(image: &str) -> Value {
        json!({"metadata": {"labels": {"app": "web", "tier": "front"}},
            "spec": {"containers": [{"name": "web", "image": image}]}})
    }

    #[test]
    fn same_template_same_hash_whatever_the_key_order() {
        let a = template("nginx:1.27");
        let b = json!({"spec": {"containers": [{"image": "nginx:1.27", "name": "web"}]},
            "metadata": {"labels": {"tier": "front", "app": "web"}}});
        assert_eq!(template_hash(&a), template_hash(&b));
    }

    #[test]
    fn empty_and_absent_fields_hash_alike() {
        let plain = template("nginx:1.27");
        let mut padded = plain.clone();
        padded["spec"]["containers"][0]["resources"] = json!({});
        padded["spec"]["volumes"] = json!([]);
        padded["metadata"]["annotations"] = Value::Null;
        assert_eq!(template_hash(&plain), template_hash(&padded));
    }

    #[test]
    fn another_image_another_hash() {
        assert_ne!(
            template_hash(&template("nginx:1.27")),
            template_hash(&template("nginx:1.28"))
        );
    }

    #[test]
    fn the_hash_label_itself_is_ignored() {
        let plain = template("nginx:1.27");
        let mut labelled = plain.clone();
        labelled["metadata"]["labels"][LABEL] = json!("abc");
        assert_eq!(template_hash(&plain), template_hash(&labelled));
    }

    #[test]
    fn the_hash_is_a_short_lowercase_alphanumeric_label_value() {
        let h = template_hash(&template("nginx:1.27"));
        assert!(!h.is_empty() && h.len() <= 10, "{h}");
        assert!(
            h.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
    }
}
