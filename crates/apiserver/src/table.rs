//! Server-side printing: the `meta.k8s.io/v1` Table that `kubectl get` asks for, with the columns
//! kubectl users expect per kind and a CRD's additionalPrinterColumns.

use serde_json::{Value, json};

use crate::object;
use crate::registry::Resource;
use crate::request::Query;

/// Age as kubectl prints it: `45s`, `12m`, `5h`, `3d`.
fn age(obj: &Value) -> String {
    let Some(ts) = object::meta_str(obj, "creationTimestamp") else {
        return "<unknown>".into();
    };
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(ts) else {
        return "<unknown>".into();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 * 2 => format!("{}m", s / 60),
        s if s < 86400 * 2 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn num(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn text(obj: &Value, pointer: &str) -> String {
    match obj.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// A `.status.phase`-style JSONPath (the simple subset CRDs use) evaluated to a cell.
fn json_path(obj: &Value, path: &str) -> Value {
    let pointer = format!("/{}", path.trim_start_matches('.').replace('.', "/"));
    obj.pointer(&pointer).cloned().unwrap_or(Value::Null)
}

type Column = (&'static str, &'static str, fn(&Value) -> Value);

fn columns(res: &Resource) -> Vec<Column> {
    match (res.group.as_str(), res.plural.as_str()) {
        ("apps", "deployments") => vec![
            ("Ready", "string", |o| {
                json!(format!(
                    "{}/{}",
                    num(o, "/status/readyReplicas"),
                    num(o, "/spec/replicas")
                ))
            }),
            ("Up-to-date", "integer", |o| {
                json!(num(o, "/status/updatedReplicas"))
            }),
            ("Available", "integer", |o| {
                json!(num(o, "/status/availableReplicas"))
            }),
        ],
        ("apps", "statefulsets") => vec![("Ready", "string", |o| {
            json!(format!(
                "{}/{}",
                num(o, "/status/readyReplicas"),
                num(o, "/spec/replicas")
            ))
        })],
        ("apps", "replicasets") => vec![
            ("Desired", "integer", |o| json!(num(o, "/spec/replicas"))),
            ("Current", "integer", |o| json!(num(o, "/status/replicas"))),
            ("Ready", "integer", |o| {
                json!(num(o, "/status/readyReplicas"))
            }),
        ],
        ("apps", "daemonsets") => vec![
            ("Desired", "integer", |o| {
                json!(num(o, "/status/desiredNumberScheduled"))
            }),
            ("Ready", "integer", |o| json!(num(o, "/status/numberReady"))),
        ],
        ("", "namespaces") => vec![("Status", "string", |o| json!(text(o, "/status/phase")))],
        ("", "pods") => vec![("Status", "string", |o| json!(text(o, "/status/phase")))],
        ("", "nodes") => vec![
            ("Status", "string", |o| {
                let ready = o
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .and_then(|cs| {
                        cs.iter()
                            .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
                            .map(|c| c.get("status").and_then(Value::as_str) == Some("True"))
                    });
                json!(if ready == Some(true) {
                    "Ready"
                } else {
                    "NotReady"
                })
            }),
            ("Version", "string", |o| {
                json!(text(o, "/status/nodeInfo/kubeletVersion"))
            }),
        ],
        ("", "services") => vec![
            ("Type", "string", |o| json!(text(o, "/spec/type"))),
            ("Cluster-IP", "string", |o| {
                json!(text(o, "/spec/clusterIP"))
            }),
            ("Port(s)", "string", |o| {
                let ports = o
                    .pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .map(|ps| {
                        ps.iter()
                            .map(|p| format!("{}/{}", text(p, "/port"), text(p, "/protocol")))
                            .collect::<Vec<_>>()
                            .join(",")
                    });
                json!(ports.unwrap_or_else(|| "<none>".into()))
            }),
        ],
        ("", "configmaps" | "secrets") => vec![("Data", "integer", |o| {
            json!(
                o.get("data")
                    .and_then(Value::as_object)
                    .map_or(0, |d| d.len())
            )
        })],
        ("", "events") => vec![
            ("Type", "string", |o| json!(text(o, "/type"))),
            ("Reason", "string", |o| json!(text(o, "/reason"))),
            ("Object", "string", |o| {
                json!(format!(
                    "{}/{}",
                    text(o, "/involvedObject/kind").to_lowercase(),
                    text(o, "/involvedObject/name")
                ))
            }),
            ("Message", "string", |o| json!(text(o, "/message"))),
        ],
        ("policy", "poddisruptionbudgets") => vec![
            ("Min Available", "string", |o| {
                json!(text(o, "/spec/minAvailable"))
            }),
            ("Allowed Disruptions", "integer", |o| {
                json!(num(o, "/status/disruptionsAllowed"))
            }),
        ],
        _ => Vec::new(),
    }
}

fn row_object(obj: &Value, query: &Query) -> Option<Value> {
    match query.get("includeObject").unwrap_or("Metadata") {
        "None" => None,
        "Object" => Some(obj.clone()),
        _ => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
        })),
    }
}

fn table(res: &Resource, items: &[Value], resource_version: Option<&str>, query: &Query) -> Value {
    let fixed = columns(res);
    let mut defs = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}),
    ];
    defs.extend(fixed.iter().map(
        |(n, t, _)| json!({"name": n, "type": t, "format": "", "description": n, "priority": 0}),
    ));
    for c in &res.printer_columns {
        defs.push(json!({
            "name": c.get("name").cloned().unwrap_or(json!("")),
            "type": c.get("type").cloned().unwrap_or(json!("string")),
            "format": c.get("format").cloned().unwrap_or(json!("")),
            "description": c.get("description").cloned().unwrap_or(json!("")),
            "priority": c.get("priority").cloned().unwrap_or(json!(0)),
        }));
    }
    defs.push(
        json!({"name": "Age", "type": "string", "format": "", "description": "Age", "priority": 0}),
    );
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut cells = vec![json!(object::name(o))];
            cells.extend(fixed.iter().map(|(_, _, f)| f(o)));
            cells.extend(res.printer_columns.iter().map(|c| {
                json_path(
                    o,
                    c.get("jsonPath")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                )
            }));
            cells.push(json!(age(o)));
            let mut row = json!({"cells": cells});
            if let Some(obj) = row_object(o, query) {
                row["object"] = obj;
            }
            row
        })
        .collect();
    let mut meta = json!({});
    if let Some(rv) = resource_version {
        meta["resourceVersion"] = json!(rv);
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": defs, "rows": rows})
}

pub fn from_list(res: &Resource, list: &Value, query: &Query) -> Value {
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let mut t = table(
        res,
        &items,
        list.pointer("/metadata/resourceVersion")
            .and_then(Value::as_str),
        query,
    );
    if let Some(c) = list.pointer("/metadata/continue") {
        t["metadata"]["continue"] = c.clone();
    }
    t
}

pub fn from_object(res: &Resource, obj: &Value, query: &Query) -> Value {
    table(
        res,
        std::slice::from_ref(obj),
        object::meta_str(obj, "resourceVersion"),
        query,
    )
}
