//! Server-side printing: the `meta.k8s.io/v1` Table that `kubectl get` asks for, with the columns
//! kubectl users expect per kind (`builtin.rs`) and a CRD's additionalPrinterColumns (`custom.rs`).

use serde_json::{Value, json};

use crate::object;
use crate::registry::Resource;
use crate::request::Query;

mod age;
mod builtin;
mod custom;

/// One column of a Table: its definition, and how its cell is made from an object.
pub(super) struct Column {
    name: String,
    type_: String,
    format: String,
    /// 0: always shown; 1: with `-o wide`.
    priority: i64,
    cell: Cell,
}

pub(super) enum Cell {
    Name,
    /// How long since `metadata.creationTimestamp`.
    Age,
    /// How long since the timestamp at this pointer.
    Since(&'static str),
    Fn(fn(&Value) -> Value),
    /// A cell that depends on the time of the request (a running Job's duration).
    Timed(fn(&Value, chrono::DateTime<chrono::Utc>) -> Value),
    /// A CRD's column: a `$`-rooted JSONPath and the column's type.
    Path {
        path: String,
        type_: String,
    },
}

impl Column {
    fn definition(&self) -> Value {
        json!({"name": self.name, "type": self.type_, "format": self.format,
            "description": description(&self.name), "priority": self.priority})
    }

    fn cell(&self, obj: &Value, now: chrono::DateTime<chrono::Utc>) -> Value {
        let since = |pointer: &str| match obj.pointer(pointer).and_then(Value::as_str) {
            Some(t) => json!(age::since(t, now)),
            None => json!("<unknown>"),
        };
        match &self.cell {
            Cell::Name => json!(object::name(obj)),
            Cell::Age => since("/metadata/creationTimestamp"),
            Cell::Since(pointer) => since(pointer),
            Cell::Fn(f) => f(obj),
            Cell::Timed(f) => f(obj, now),
            Cell::Path { path, type_ } => custom::cell(obj, path, type_, now),
        }
    }
}

/// The descriptions upstream gives its standard columns.
fn description(name: &str) -> String {
    match name {
        "Name" => "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names".into(),
        "Age" => "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.".into(),
        other => other.into(),
    }
}

/// The columns of `res` as a server of Kubernetes 1.`minor` prints them.
fn columns(res: &Resource, minor: u32) -> Vec<Column> {
    if res.is_custom() {
        return custom::columns(&res.printer_columns);
    }
    builtin::columns(&res.group, &res.plural, minor).unwrap_or_else(builtin::default_columns)
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

fn table(
    res: &Resource,
    minor: u32,
    items: &[Value],
    resource_version: Option<&str>,
    query: &Query,
) -> Value {
    let columns = columns(res, minor);
    let now = chrono::Utc::now();
    let defs: Vec<Value> = columns.iter().map(Column::definition).collect();
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let cells: Vec<Value> = columns.iter().map(|c| c.cell(o, now)).collect();
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

pub fn from_list(res: &Resource, minor: u32, list: &Value, query: &Query) -> Value {
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let mut t = table(
        res,
        minor,
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

pub fn from_object(res: &Resource, minor: u32, obj: &Value, query: &Query) -> Value {
    table(
        res,
        minor,
        std::slice::from_ref(obj),
        object::meta_str(obj, "resourceVersion"),
        query,
    )
}
