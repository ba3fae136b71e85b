//! Versions that share storage with another resource, converted on the way in and out — as
//! kube-apiserver stores `events.k8s.io/v1` Events as core `v1` Events, so that an Event a
//! controller records (kube-rs writes events.k8s.io/v1) shows in `kubectl get events`.
//!
//! Versions of one group/resource always share storage (the key has no version) and the object
//! is presented at the version asked for. Most need nothing more: their schemas are the same
//! (`FlowSchema` v1beta1…v1, `HorizontalPodAutoscaler` v2beta2/v2: the test below checks it
//! against the releases' definitions). Where a field was renamed, a conversion here renames it.

use serde_json::{Map, Value};

/// How a resource's objects are stored when not in their own form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// `events.k8s.io/v1` Event stored as a core `v1` Event.
    EventsV1,
    /// `flowcontrol.apiserver.k8s.io` v1beta1/v1beta2 PriorityLevelConfiguration, stored in the
    /// v1beta3/v1 form: `spec.limited.assuredConcurrencyShares` became `nominalConcurrencyShares`.
    AssuredConcurrencyShares,
}

const ASSURED: &str = "assuredConcurrencyShares";
const NOMINAL: &str = "nominalConcurrencyShares";

fn rename_limited(obj: &mut Value, from: &'static str, to: &'static str) {
    if let Some(limited) = obj.pointer_mut("/spec/limited") {
        rename(limited, std::iter::once((from, to)));
    }
}

/// (events.k8s.io/v1 field, core/v1 field) pairs; every other field has the same name.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename(obj: &mut Value, pairs: impl Iterator<Item = (&'static str, &'static str)>) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let mut moved = Map::new();
    for (from, to) in pairs {
        if let Some(v) = map.remove(from) {
            moved.insert(to.to_string(), v);
        }
    }
    map.extend(moved);
}

impl Conversion {
    /// How a built-in group/version/kind is stored, when not as it is served.
    pub fn of(group: &str, version: &str, kind: &str) -> Option<Self> {
        match (group, version, kind) {
            ("events.k8s.io", _, "Event") => Some(Conversion::EventsV1),
            (
                "flowcontrol.apiserver.k8s.io",
                "v1beta1" | "v1beta2",
                "PriorityLevelConfiguration",
            ) => Some(Conversion::AssuredConcurrencyShares),
            _ => None,
        }
    }

    /// The group whose storage the objects live in.
    pub fn storage_group(self) -> &'static str {
        match self {
            Conversion::EventsV1 => "core",
            Conversion::AssuredConcurrencyShares => "flowcontrol.apiserver.k8s.io",
        }
    }

    /// Stored form → served form.
    pub fn to_served(self, obj: &mut Value) {
        match self {
            Conversion::EventsV1 => {
                rename(obj, EVENT_FIELDS.iter().map(|(new, old)| (*old, *new)));
                obj["apiVersion"] = Value::from("events.k8s.io/v1");
            }
            // apiVersion: set by the caller to the version asked for.
            Conversion::AssuredConcurrencyShares => rename_limited(obj, NOMINAL, ASSURED),
        }
    }

    /// Served form → stored form.
    pub fn to_storage(self, obj: &mut Value) {
        match self {
            Conversion::EventsV1 => {
                rename(obj, EVENT_FIELDS.iter().copied());
                obj["apiVersion"] = Value::from("v1");
            }
            Conversion::AssuredConcurrencyShares => rename_limited(obj, ASSURED, NOMINAL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_round_trip() {
        let new = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}, "regarding": {"kind": "Pod", "name": "p"},
            "note": "started", "reason": "Started", "reportingController": "rotor", "deprecatedCount": 2, "type": "Normal"});
        let mut stored = new.clone();
        Conversion::EventsV1.to_storage(&mut stored);
        assert_eq!(stored["involvedObject"]["name"], "p");
        assert_eq!(stored["message"], "started");
        assert_eq!(stored["count"], 2);
        assert_eq!(stored["reason"], "Started");
        assert!(stored.get("note").is_none());
        assert_eq!(stored["apiVersion"], "v1");
        let mut back = stored;
        Conversion::EventsV1.to_served(&mut back);
        assert_eq!(back, new);
    }

    #[test]
    fn priority_level_shares_round_trip() {
        let old = json!({"apiVersion": "flowcontrol.apiserver.k8s.io/v1beta2", "kind": "PriorityLevelConfiguration",
            "metadata": {"name": "batch"}, "spec": {"type": "Limited", "limited": {"assuredConcurrencyShares": 5,
            "limitResponse": {"type": "Reject"}}}});
        let mut stored = old.clone();
        Conversion::AssuredConcurrencyShares.to_storage(&mut stored);
        assert_eq!(stored["spec"]["limited"]["nominalConcurrencyShares"], 5);
        assert!(stored["spec"]["limited"].get(ASSURED).is_none());
        let mut back = stored;
        Conversion::AssuredConcurrencyShares.to_served(&mut back);
        assert_eq!(back, old);
    }

    /// The schema of a definition with `$ref`s resolved, as far as it says what an object holds:
    /// no descriptions, GVK lists, or list/patch-merge annotations, and no `status` (written by
    /// the server, in storage's form).
    fn shape(spec: &rotor_openapi::Spec, v: &Value, depth: usize) -> Value {
        match v {
            Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                    let name = r.rsplit('/').next().unwrap_or_default();
                    if name.starts_with("io.k8s.apimachinery") || depth > 40 {
                        return Value::from(name);
                    }
                    return spec
                        .definition(name)
                        .map(|d| shape(spec, d, depth + 1))
                        .unwrap_or(Value::Null);
                }
                let mut out = Map::new();
                for (k, x) in m {
                    if k == "description" || k == "required" || k.starts_with("x-kubernetes-") {
                        continue;
                    }
                    out.insert(k.clone(), shape(spec, x, depth + 1));
                }
                if let Some(p) = out.get_mut("properties").and_then(Value::as_object_mut)
                    && depth == 0
                {
                    p.remove("status");
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(|x| shape(spec, x, depth + 1)).collect()),
            other => other.clone(),
        }
    }

    /// Every pair of versions a release serves from one storage without a conversion holds the
    /// same fields: an object written at one version reads back whole at the other.
    #[test]
    fn versions_sharing_storage_have_one_shape() {
        let table = crate::registry::Registry::default().all();
        for minor in rotor_openapi::SUPPORTED_MINORS {
            let spec = rotor_openapi::spec(minor).expect("release data");
            let served = crate::registry::Registry::for_release(&spec).all();
            for a in &served {
                for b in &served {
                    if a.group != b.group || a.plural != b.plural || a.version >= b.version {
                        continue;
                    }
                    if a.conversion.is_some() || b.conversion.is_some() {
                        continue;
                    }
                    let sa = shape(&spec, spec.definition(&a.definition).expect("defined"), 0);
                    let sb = shape(&spec, spec.definition(&b.definition).expect("defined"), 0);
                    assert_eq!(
                        sa, sb,
                        "1.{minor}: {} and {} share storage",
                        a.api_version, b.api_version
                    );
                }
            }
        }
        assert!(table.iter().any(|r| r.api_version == "autoscaling/v2beta2"));
    }
}
