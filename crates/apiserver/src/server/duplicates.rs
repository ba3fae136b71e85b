//! Duplicate fields in a JSON body (`{"replicas": 1, "replicas": 3}`): a JSON parser keeps the
//! last silently, kube-apiserver's strict decoder reports them, and the `fieldValidation` level
//! decides as for unknown fields — Strict refuses the request (400), Warn answers with a
//! warning per field, Ignore keeps the last value.

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::FieldValidation;
use crate::error::ApiResult;
use crate::registry::Resource;

/// The warnings to send with the reply (Warn), or the refusal (Strict), for `body`.
pub(super) fn judge(body: &[u8], res: &Resource, level: FieldValidation) -> ApiResult<Vec<String>> {
    if level == FieldValidation::Ignore {
        return Ok(Vec::new());
    }
    let messages = duplicate_fields(body)
        .into_iter()
        .map(|path| format!("duplicate field \"{path}\""))
        .collect();
    super::write::by_level(res, level, messages)
}

/// The paths (`spec.template.spec.containers[0].name`) of keys given twice in one object of
/// `body`; nothing when `body` is not JSON (the decoder says so on its own).
pub(super) fn duplicate_fields(body: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    let walk = Walk {
        path: String::new(),
        out: &mut out,
    };
    if walk.deserialize(&mut de).is_err() {
        return Vec::new();
    }
    out
}

/// One value being walked, at `path`.
struct Walk<'a> {
    path: String,
    out: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = match self.path.as_str() {
                "" => key.clone(),
                parent => format!("{parent}.{key}"),
            };
            if !seen.insert(key) {
                self.out.push(path.clone());
            }
            map.next_value_seed(Walk {
                path,
                out: &mut *self.out,
            })?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            let path = format!("{}[{i}]", self.path);
            let walk = Walk {
                path,
                out: &mut *self.out,
            };
            if seq.next_element_seed(walk)?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_repeated_key_is_named_by_its_path() {
        let body = br#"{"metadata": {"name": "a", "name": "b"},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [
                {"name": "x", "image": "i"}, {"name": "y", "name": "z"}]}}, "replicas": 3}}"#;
        assert_eq!(
            duplicate_fields(body),
            [
                "metadata.name",
                "spec.template.spec.containers[1].name",
                "spec.replicas"
            ]
        );
        assert!(duplicate_fields(br#"{"a": [1, {"b": 2}], "c": {"b": 2}}"#).is_empty());
        assert!(duplicate_fields(b"not json").is_empty());
    }
}
