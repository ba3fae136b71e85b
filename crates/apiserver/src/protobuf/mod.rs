//! The smallest protobuf reader that lets kubectl's imperative `create namespace` through:
//! kubectl ≥1.32 sends built-in kinds as `application/vnd.kubernetes.protobuf`. rotor decodes
//! the `runtime.Unknown` envelope and the ObjectMeta of a Namespace; other kinds get a 415 that
//! names the alternative (JSON, as `kubectl apply -f` and kube-rs send).

use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::registry::Resource;

const MAGIC: &[u8] = b"k8s\0";

/// One protobuf field's payload: length-delimited bytes, or a scalar (skipped: nothing rotor
/// reads from a Namespace is a scalar).
enum Field<'a> {
    Scalar,
    Bytes(&'a [u8]),
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(out);
        }
    }
    None
}

fn fields(buf: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let tag = varint(buf, &mut pos)?;
        let field = match tag & 7 {
            0 => {
                varint(buf, &mut pos)?;
                Field::Scalar
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).ok()?;
                let end = pos.checked_add(len).filter(|e| *e <= buf.len())?;
                let bytes = &buf[pos..end];
                pos = end;
                Field::Bytes(bytes)
            }
            1 => {
                pos = pos.checked_add(8).filter(|p| *p <= buf.len())?;
                Field::Scalar
            }
            5 => {
                pos = pos.checked_add(4).filter(|p| *p <= buf.len())?;
                Field::Scalar
            }
            _ => return None,
        };
        out.push((tag >> 3, field));
    }
    Some(out)
}

fn string(b: &[u8]) -> Option<String> {
    String::from_utf8(b.to_vec()).ok()
}

/// map<string,string> entry: key = 1, value = 2.
fn map_entry(b: &[u8]) -> Option<(String, String)> {
    let mut k = String::new();
    let mut v = String::new();
    for (n, f) in fields(b)? {
        if let Field::Bytes(x) = f {
            match n {
                1 => k = string(x)?,
                2 => v = string(x)?,
                _ => {}
            }
        }
    }
    Some((k, v))
}

fn object_meta(b: &[u8]) -> Option<Value> {
    let mut m = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut finalizers = Vec::new();
    for (n, f) in fields(b)? {
        let Field::Bytes(x) = f else { continue };
        match n {
            1 => {
                m.insert("name".into(), json!(string(x)?));
            }
            2 => {
                m.insert("generateName".into(), json!(string(x)?));
            }
            3 => {
                m.insert("namespace".into(), json!(string(x)?));
            }
            11 => {
                let (k, v) = map_entry(x)?;
                labels.insert(k, json!(v));
            }
            12 => {
                let (k, v) = map_entry(x)?;
                annotations.insert(k, json!(v));
            }
            14 => finalizers.push(json!(string(x)?)),
            _ => {}
        }
    }
    if !labels.is_empty() {
        m.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        m.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        m.insert("finalizers".into(), Value::Array(finalizers));
    }
    Some(Value::Object(m))
}

pub fn decode_object(body: &[u8], res: &Resource) -> ApiResult<Value> {
    if !(res.group.is_empty() && res.kind == "Namespace") {
        return Err(ApiError::unsupported_media_type(format!(
            "protobuf request bodies are accepted for Namespace only; send {} as application/json",
            res.kind
        )));
    }
    let bad = || {
        ApiError::bad_request(format!(
            "the protobuf body is not a valid {} (runtime.Unknown envelope)",
            res.kind
        ))
    };
    let envelope = body.strip_prefix(MAGIC).ok_or_else(bad)?;
    let raw = fields(envelope)
        .ok_or_else(bad)?
        .into_iter()
        .find_map(|(n, f)| match (n, f) {
            (2, Field::Bytes(b)) => Some(b),
            _ => None,
        })
        .ok_or_else(bad)?;
    let mut obj = json!({"apiVersion": "v1", "kind": "Namespace"});
    for (n, f) in fields(raw).ok_or_else(bad)? {
        if let (1, Field::Bytes(b)) = (n, f) {
            obj["metadata"] = object_meta(b).ok_or_else(bad)?;
        }
    }
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ld(field: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![(field << 3) | 2, payload.len() as u8];
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn decodes_namespace_envelope_and_rejects_garbage() {
        let reg = crate::registry::Registry::default();
        let ns = reg.lookup("", "v1", "namespaces").expect("namespaces");
        let labels = [ld(1, b"team"), ld(2, b"web")].concat();
        let meta = [ld(1, b"prod"), ld(11, &labels)].concat();
        let namespace = ld(1, &meta);
        let type_meta = [ld(1, b"v1"), ld(2, b"Namespace")].concat();
        let body = [MAGIC.to_vec(), ld(1, &type_meta), ld(2, &namespace)].concat();
        let obj = decode_object(&body, &ns).expect("decodes");
        assert_eq!(obj["metadata"]["name"], "prod");
        assert_eq!(obj["metadata"]["labels"]["team"], "web");
        assert!(decode_object(b"k8s\0\xff\xff\xff", &ns).is_err());
        assert!(decode_object(b"nope", &ns).is_err());
        let cm = reg.lookup("", "v1", "configmaps").expect("configmaps");
        assert_eq!(
            decode_object(&body, &cm).map_err(|e| e.code.as_u16()).err(),
            Some(415)
        );
    }
}
