//! Field-limited custom verbs, in the spirit of upstream's `bind`, `escalate` and `approve`:
//! a verb on a resource that allows a patch or update changing only some fields. rotor's
//! `operate` lets an operator pause, approve or roll back without `patch` on the whole object.
//! The limit is checked on the object the write would store (after the patch, whatever its
//! type, and defaulting), before validation: upstream authorizes before it validates.

use serde_json::Value;

use super::attributes::ResourceAttributes;
use crate::error::ApiError;

/// A custom verb on one resource that covers writes to `fields` (dotted paths such as
/// `spec.paused`; a path covers everything below it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldVerb {
    pub group: String,
    pub resource: String,
    pub verb: String,
    pub fields: Vec<String>,
}

impl FieldVerb {
    pub fn applies_to(&self, r: &ResourceAttributes) -> bool {
        self.group == r.group && self.resource == r.resource
    }
}

/// A write allowed only within a [`FieldVerb`]'s fields; `refused` is the plain 403 the
/// request would have had, which a write outside them gets with the field named.
#[derive(Debug, Clone)]
pub struct FieldLimit {
    pub verb: FieldVerb,
    pub refused: ApiError,
}

/// What the server keeps in `metadata` by itself: never a user's change.
const SERVER_METADATA: [&str; 6] = [
    "resourceVersion",
    "managedFields",
    "generation",
    "uid",
    "creationTimestamp",
    "selfLink",
];

impl FieldLimit {
    /// Refuses `next` when it differs from `current` outside the verb's fields, naming the
    /// first such field.
    pub fn check(&self, current: &Value, next: &Value) -> Result<(), ApiError> {
        match self.outside(current, next) {
            None => Ok(()),
            Some(field) => Err(self.refuse(&field)),
        }
    }

    /// A create is never within a field limit.
    pub fn refuse_create(&self) -> ApiError {
        self.refuse("metadata.name")
    }

    fn refuse(&self, field: &str) -> ApiError {
        let mut e = self.refused.clone();
        e.message = format!(
            "{}: {:?} covers only {}, not {field}",
            e.message,
            self.verb.verb,
            self.verb.fields.join(", ")
        );
        e
    }

    /// The first changed field the verb does not cover (status is the status subresource's).
    fn outside(&self, current: &Value, next: &Value) -> Option<String> {
        let empty = serde_json::Map::new();
        let (a, b) = (
            current.as_object().unwrap_or(&empty),
            next.as_object().unwrap_or(&empty),
        );
        let keys = a.keys().chain(b.keys().filter(|k| !a.contains_key(*k)));
        for key in keys {
            let (x, y) = (a.get(key), b.get(key));
            let found = match key.as_str() {
                "status" => None,
                "metadata" => self.metadata_outside(x, y),
                _ => self.diff(key, x, y),
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }

    fn metadata_outside(&self, a: Option<&Value>, b: Option<&Value>) -> Option<String> {
        let strip = |v: Option<&Value>| {
            let mut m = v.and_then(Value::as_object).cloned().unwrap_or_default();
            for k in SERVER_METADATA {
                m.remove(k);
            }
            Value::Object(m)
        };
        self.diff("metadata", Some(&strip(a)), Some(&strip(b)))
    }

    /// The first path under `path` where `a` and `b` differ outside the covered fields.
    fn diff(&self, path: &str, a: Option<&Value>, b: Option<&Value>) -> Option<String> {
        if a == b || self.covers(path) {
            return None;
        }
        match (a, b) {
            (Some(Value::Object(x)), Some(Value::Object(y))) => x
                .keys()
                .chain(y.keys().filter(|k| !x.contains_key(*k)))
                .find_map(|k| self.diff(&format!("{path}.{k}"), x.get(k), y.get(k))),
            _ => Some(path.to_string()),
        }
    }

    fn covers(&self, path: &str) -> bool {
        self.verb.fields.iter().any(|f| {
            path == f
                || path
                    .strip_prefix(f.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limit() -> FieldLimit {
        FieldLimit {
            verb: FieldVerb {
                group: "rotor.dev".into(),
                resource: "rollouts".into(),
                verb: "operate".into(),
                fields: vec!["spec.paused".into(), "spec.skipClusters".into()],
            },
            refused: ApiError::forbidden(
                "rollouts.rotor.dev \"r\" is forbidden: User \"op\" cannot patch",
            ),
        }
    }

    fn rollout(spec: Value) -> Value {
        json!({"metadata": {"name": "r", "resourceVersion": "5", "generation": 1}, "spec": spec, "status": {"phase": "Running"}})
    }

    #[test]
    fn changes_within_the_fields_pass() {
        let old = rollout(json!({"paused": false, "target": "1.35"}));
        let mut new = rollout(json!({"paused": true, "target": "1.35", "skipClusters": ["a"]}));
        new["metadata"]["generation"] = json!(2);
        new["metadata"]["managedFields"] = json!([{"manager": "kubectl"}]);
        new["status"]["phase"] = json!("Paused");
        assert!(limit().check(&old, &new).is_ok());
        assert!(limit().check(&old, &old).is_ok(), "no change at all");
    }

    #[test]
    fn any_other_change_is_refused_naming_the_field() {
        let old = rollout(json!({"paused": false, "target": "1.35"}));
        let new = rollout(json!({"paused": true, "target": "1.36"}));
        let e = limit()
            .check(&old, &new)
            .expect_err("target is not covered");
        assert_eq!(e.code.as_u16(), 403);
        assert!(
            e.message.ends_with(
                "\"operate\" covers only spec.paused, spec.skipClusters, not spec.target"
            ),
            "{}",
            e.message
        );
        let mut labelled = old.clone();
        labelled["metadata"]["labels"] = json!({"a": "b"});
        let e = limit()
            .check(&old, &labelled)
            .expect_err("labels are not covered");
        assert!(e.message.ends_with("not metadata.labels"), "{}", e.message);
        let removed = rollout(json!({"paused": false}));
        let e = limit()
            .check(&old, &removed)
            .expect_err("a removal is a change");
        assert!(e.message.ends_with("not spec.target"), "{}", e.message);
    }

    #[test]
    fn a_covered_path_is_not_a_prefix_of_its_neighbours() {
        let old = rollout(json!({"paused": false, "pausedAt": 1}));
        let new = rollout(json!({"paused": false, "pausedAt": 2}));
        assert!(limit().check(&old, &new).is_err());
    }
}
