//! Versions that share storage with another resource, converted on the way in and out — as
//! kube-apiserver stores `events.k8s.io/v1` Events as core `v1` Events, so that an Event a
//! controller records (kube-rs writes events.k8s.io/v1) shows in `kubectl get events`.

use serde_json::{Map, Value};

/// How a resource's objects are stored when not in their own form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// `events.k8s.io/v1` Event stored as a core `v1` Event.
    EventsV1,
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
    /// The group whose storage the objects live in.
    pub fn storage_group(self) -> &'static str {
        match self {
            Conversion::EventsV1 => "core",
        }
    }

    /// Stored form → served form.
    pub fn to_served(self, obj: &mut Value) {
        match self {
            Conversion::EventsV1 => {
                rename(obj, EVENT_FIELDS.iter().map(|(new, old)| (*old, *new)));
                obj["apiVersion"] = Value::from("events.k8s.io/v1");
            }
        }
    }

    /// Served form → stored form.
    pub fn to_storage(self, obj: &mut Value) {
        match self {
            Conversion::EventsV1 => {
                rename(obj, EVENT_FIELDS.iter().copied());
                obj["apiVersion"] = Value::from("v1");
            }
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
}
