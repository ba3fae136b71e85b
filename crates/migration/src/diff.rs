//! What differs between blue and green for the objects a migration would move: each selected
//! object of blue, sanitized as the plan has it, against green's copy read at the version it
//! is written there and sanitized the same way, so only what an owner wrote is compared (not
//! uids, resourceVersions, status, allocated IPs…). Both sides are then normalised as green's
//! API server would store them (explicit nulls dropped, the built-in defaults of green's
//! release filled in), so a default one release sets and another does not, or a null an older
//! server kept, is no difference. Who owns which fields is compared too (`metadata.managedFields`
//! as [`crate::ownership::comparable`]). Secret values are never shown, only the paths that
//! differ. Objects only in green are not listed: what green holds beyond blue's selection is
//! green's own business.

use std::collections::HashMap;

use kube::Client;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::plan::{ResourceRef, list_all};
use crate::versions::VersionChoice;
use crate::{Error, MigrationOptions, ServedVersions, plan_for, sanitize};

/// At most this many differing paths are listed per object.
const MAX_PATHS: usize = 20;
/// Values longer than this are cut in the listing.
const MAX_VALUE_CHARS: usize = 60;

/// Where one object stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DiffState {
    /// Green's copy holds what blue's does.
    Same,
    /// Green's copy differs (see the paths).
    Differs,
    /// Green has no such object.
    Missing,
    /// Green serves no version of it that rotor can write (see the pre-flight).
    Blocked,
}

/// One object of the diff.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectDiff {
    /// `Kind.group namespace/name`.
    pub object: String,
    pub state: DiffState,
    /// For `Differs`: `path: blue VALUE, green VALUE` (values left out for Secrets), at most
    /// 20, then `…`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
}

/// The diff of every selected object, in apply order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffReport {
    pub objects: usize,
    pub same: usize,
    pub differs: usize,
    pub missing: usize,
    pub blocked: usize,
    pub items: Vec<ObjectDiff>,
}

impl DiffReport {
    /// Whether green holds everything blue's selection does, as blue has it.
    pub fn is_clean(&self) -> bool {
        self.same == self.objects
    }

    /// `STATE OBJECT DETAIL`, one row per object that is not the same, then a summary line.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let rows: Vec<&ObjectDiff> = self
            .items
            .iter()
            .filter(|i| i.state != DiffState::Same)
            .collect();
        if !rows.is_empty() {
            let width = rows.iter().map(|r| r.object.len()).max().unwrap_or(0);
            out.push_str(&format!("{:<8} {:<width$} DETAIL\n", "STATE", "OBJECT"));
            for r in rows {
                let state = match r.state {
                    DiffState::Same => "same",
                    DiffState::Differs => "differs",
                    DiffState::Missing => "missing",
                    DiffState::Blocked => "blocked",
                };
                let detail = match r.state {
                    DiffState::Missing => "not in green".to_string(),
                    DiffState::Blocked => "no version green serves (see migrate preflight)".into(),
                    _ => r.paths.first().cloned().unwrap_or_default(),
                };
                out.push_str(&format!("{state:<8} {:<width$} {detail}\n", r.object));
                for p in r.paths.iter().skip(1) {
                    out.push_str(&format!("{:<8} {:<width$} {p}\n", "", ""));
                }
            }
        }
        out.push_str(&format!(
            "{} objects: {} same, {} differ, {} missing in green, {} blocked\n",
            self.objects, self.same, self.differs, self.missing, self.blocked
        ));
        out
    }
}

/// Compares the objects `options` select in blue with their copies in green. A difference at
/// a path of `ignore` (`spec.replicas`, `metadata.labels.team`), or under it, is known drift
/// and not reported.
pub async fn diff(
    blue: &Client,
    green: &Client,
    options: &MigrationOptions,
    ignore: &[String],
) -> Result<DiffReport, Error> {
    let served = ServedVersions::discover(green, "green")
        .await
        .map_err(|e| Error::Green {
            what: "discovering green's API versions".into(),
            message: crate::api_message(&e),
        })?;
    let plan = plan_for(blue, &served, options).await?;
    let choices: HashMap<&str, &VersionChoice> = plan
        .versions
        .iter()
        .map(|v| (v.kind.as_str(), &v.choice))
        .collect();
    let mut report = DiffReport::default();
    for stage in &plan.stages {
        for r in &stage.resources {
            let write_version = match choices.get(r.resource.kind_group().as_str()) {
                Some(VersionChoice::Ok { version }) => Some(version.clone()),
                Some(VersionChoice::Convert { to, .. }) => Some(to.clone()),
                Some(VersionChoice::Blocked { .. }) => None,
                None => Some(r.resource.version.clone()),
            };
            let in_green = match &write_version {
                Some(v) => {
                    let at = ResourceRef {
                        version: v.clone(),
                        ..r.resource.clone()
                    };
                    green_objects(green, &at).await?
                }
                None => HashMap::new(),
            };
            let secret = r.resource.group.is_empty() && r.resource.kind == "Secret";
            let at = |body: &Value| {
                let mut v = comparable(body);
                normalise(&r.resource, served.minor, &mut v);
                v
            };
            for o in &r.objects {
                let object = format!("{} {}", r.resource.kind_group(), o.qualified_name());
                let key = (o.namespace.clone(), o.name.clone());
                let (state, paths) = match (&write_version, in_green.get(&key)) {
                    (None, _) => (DiffState::Blocked, Vec::new()),
                    (Some(_), None) => (DiffState::Missing, Vec::new()),
                    (Some(_), Some(g)) => {
                        let mut paths = differences(&at(&o.body), &at(&g.body), !secret);
                        let (blue_owners, green_owners) = (
                            crate::ownership::comparable(&o.managed_fields),
                            crate::ownership::comparable(&g.managed_fields),
                        );
                        if blue_owners != green_owners {
                            paths.push(owners_line(&blue_owners, &green_owners));
                        }
                        paths.retain(|p| !ignored(p, ignore));
                        if paths.is_empty() {
                            (DiffState::Same, paths)
                        } else {
                            (DiffState::Differs, paths)
                        }
                    }
                };
                match state {
                    DiffState::Same => report.same += 1,
                    DiffState::Differs => report.differs += 1,
                    DiffState::Missing => report.missing += 1,
                    DiffState::Blocked => report.blocked += 1,
                }
                report.objects += 1;
                report.items.push(ObjectDiff {
                    object,
                    state,
                    paths,
                });
            }
        }
    }
    Ok(report)
}

/// Green's copy of an object: sanitized, and its owners.
struct GreenCopy {
    body: Value,
    managed_fields: Vec<Value>,
}

/// Green's objects of one resource type by (namespace, name); none when green does not serve
/// the type.
async fn green_objects(
    green: &Client,
    resource: &ResourceRef,
) -> Result<HashMap<(Option<String>, String), GreenCopy>, Error> {
    let items = list_all(green, resource)
        .await
        .map_err(|e| Error::Green {
            what: format!("listing {} in green", resource.plural),
            message: crate::api_message(&e),
        })?
        .unwrap_or_default();
    Ok(items
        .into_iter()
        .map(|obj| {
            let key = (
                obj.metadata.namespace.clone(),
                obj.metadata.name.clone().unwrap_or_default(),
            );
            let body = sanitize(&obj, &resource.api_version(), &resource.kind, &|_| false);
            let managed_fields = obj
                .metadata
                .managed_fields
                .iter()
                .flatten()
                .filter_map(|e| serde_json::to_value(e).ok())
                .collect();
            (
                key,
                GreenCopy {
                    body,
                    managed_fields,
                },
            )
        })
        .collect())
}

/// The part of a sanitized body that is compared: not `apiVersion`/`kind` (a converted kind is
/// written at another version) and not ownerReferences (they name each cluster's own uids).
fn comparable(body: &Value) -> Value {
    let mut v = body.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("apiVersion");
        o.remove("kind");
        if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("ownerReferences");
        }
    }
    v
}

/// As green's API server would store `body`: nulls dropped, its release's built-in defaults
/// filled in (custom resources were defaulted by their schemas when read).
fn normalise(resource: &ResourceRef, minor: Option<u32>, body: &mut Value) {
    use rotor_openapi::builtin_defaults;
    builtin_defaults::drop_nulls(&resource.group, &resource.plural, body);
    if let Some(minor) = minor {
        builtin_defaults::apply(
            &resource.group,
            &resource.version,
            &resource.plural,
            minor,
            body,
        );
    }
}

/// Whether a difference line (`path: blue …, green …`) is at or under one of `ignore`.
fn ignored(line: &str, ignore: &[String]) -> bool {
    let path = line.split(": ").next().unwrap_or(line);
    ignore.iter().any(|i| {
        path == i
            || path
                .strip_prefix(i.as_str())
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    })
}

/// The owners line of an object whose owners differ: each side's managers.
fn owners_line(blue: &[String], green: &[String]) -> String {
    let managers = |list: &[String]| {
        let names: Vec<&str> = list
            .iter()
            .map(|e| e.split(' ').next().unwrap_or_default())
            .collect();
        if names.is_empty() {
            "(none)".to_string()
        } else {
            names.join(", ")
        }
    };
    let (b, g) = (managers(blue), managers(green));
    if b == g {
        format!("metadata.managedFields: the same managers ({b}) own other fields")
    } else {
        format!("metadata.managedFields: blue {b}, green {g}")
    }
}

/// The paths at which `blue` and `green` differ, with both values when `show_values`.
pub fn differences(blue: &Value, green: &Value, show_values: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut path = String::new();
    walk(blue, green, &mut path, show_values, &mut out);
    if out.len() > MAX_PATHS {
        out.truncate(MAX_PATHS);
        out.push("…".into());
    }
    out
}

fn walk(blue: &Value, green: &Value, path: &mut String, show: bool, out: &mut Vec<String>) {
    if out.len() > MAX_PATHS {
        return;
    }
    match (blue, green) {
        (Value::Object(b), Value::Object(g)) => {
            let mut keys: Vec<&String> = b.keys().chain(g.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let len = path.len();
                path.push('.');
                path.push_str(k);
                match (b.get(k), g.get(k)) {
                    (Some(bv), Some(gv)) => walk(bv, gv, path, show, out),
                    (Some(bv), None) => out.push(line(path, Some(bv), None, show)),
                    (None, Some(gv)) => out.push(line(path, None, Some(gv), show)),
                    (None, None) => {}
                }
                path.truncate(len);
            }
        }
        (Value::Array(b), Value::Array(g)) if b.len() == g.len() => {
            for (i, (bv, gv)) in b.iter().zip(g).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(bv, gv, path, show, out);
                path.truncate(len);
            }
        }
        (b, g) if b != g => out.push(line(path, Some(b), Some(g), show)),
        _ => {}
    }
}

fn line(path: &str, blue: Option<&Value>, green: Option<&Value>, show: bool) -> String {
    let path = path.trim_start_matches('.');
    let shown = |v: Option<&Value>| match v {
        None => "(absent)".to_string(),
        Some(_) if !show => "(hidden)".to_string(),
        Some(v) => {
            let s = v.to_string();
            if s.chars().count() > MAX_VALUE_CHARS {
                let cut: String = s.chars().take(MAX_VALUE_CHARS).collect();
                format!("{cut}…")
            } else {
                s
            }
        }
    };
    format!("{path}: blue {}, green {}", shown(blue), shown(green))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn differences_name_paths_and_values() {
        let b = json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"replicas": 2, "ports": [{"port": 80}]}});
        let g = json!({"metadata": {"name": "a"}, "spec": {"replicas": 3, "ports": [{"port": 81}], "extra": true}});
        assert_eq!(
            differences(&b, &g, true),
            vec![
                "metadata.labels: blue {\"x\":\"1\"}, green (absent)",
                "spec.extra: blue (absent), green true",
                "spec.ports[0].port: blue 80, green 81",
                "spec.replicas: blue 2, green 3",
            ]
        );
        assert!(differences(&b, &b, true).is_empty());
    }

    #[test]
    fn secret_values_are_hidden() {
        let b = json!({"data": {"password": "c2VjcmV0"}});
        let g = json!({"data": {"password": "b3RoZXI="}});
        let d = differences(&b, &g, false);
        assert_eq!(d, vec!["data.password: blue (hidden), green (hidden)"]);
    }

    #[test]
    fn arrays_of_other_lengths_differ_as_a_whole_and_paths_are_bounded() {
        let d = differences(&json!({"a": [1, 2]}), &json!({"a": [1]}), true);
        assert_eq!(d, vec!["a: blue [1,2], green [1]"]);
        let many_b: serde_json::Map<String, Value> =
            (0..50).map(|i| (format!("k{i:02}"), json!(i))).collect();
        let d = differences(&Value::Object(many_b), &json!({}), true);
        assert_eq!(d.len(), MAX_PATHS + 1);
        assert_eq!(d.last().map(String::as_str), Some("…"));
    }

    #[test]
    fn comparable_ignores_version_and_owners() {
        let a = json!({"apiVersion": "v1beta3", "kind": "X", "metadata": {"name": "n", "ownerReferences": [{"uid": "1"}]}});
        let b = json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "n", "ownerReferences": [{"uid": "2"}]}});
        assert_eq!(comparable(&a), comparable(&b));
    }

    #[test]
    fn nulls_and_defaults_are_no_difference_and_ignored_paths_are_dropped() {
        let deploy = ResourceRef {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
            plural: "deployments".into(),
            namespaced: true,
        };
        let mut older = json!({"metadata": {"name": "web", "labels": null},
            "spec": {"template": {"metadata": {"creationTimestamp": null}}}});
        let mut stored = json!({"metadata": {"name": "web"},
            "spec": {"replicas": 1, "template": {"metadata": {}}}});
        normalise(&deploy, Some(35), &mut older);
        normalise(&deploy, Some(35), &mut stored);
        assert_eq!(differences(&older, &stored, true), Vec::<String>::new());

        let ignore = ["spec.replicas".to_string()];
        assert!(ignored("spec.replicas: blue 1, green 2", &ignore));
        assert!(!ignored("spec.replicasX: blue 1, green 2", &ignore));
        assert!(ignored("spec.template: blue 1, green 2", &["spec".into()]));
    }
}
