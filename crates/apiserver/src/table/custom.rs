//! A CRD's `additionalPrinterColumns`, as kube-apiserver's table convertor for custom resources
//! prints them: each column's JSONPath (full syntax: filters, wildcards, indices) evaluated on
//! the object, its first result typed by the column (`date` as an age); a CRD that defines no
//! column gets an Age column, one that does gets only its own.

use jsonpath_rust::JsonPath;
use serde_json::{Value, json};

use super::{Cell, Column};

/// Name, then the CRD's columns (or Age when it defines none).
pub(super) fn columns(printer_columns: &[Value]) -> Vec<Column> {
    let mut all = vec![Column {
        name: "Name".into(),
        type_: "string".into(),
        format: "name".into(),
        priority: 0,
        cell: Cell::Name,
    }];
    if printer_columns.is_empty() {
        all.push(Column {
            name: "Age".into(),
            type_: "date".into(),
            format: String::new(),
            priority: 0,
            cell: Cell::Age,
        });
        return all;
    }
    all.extend(printer_columns.iter().map(|c| {
        let field = |k: &str| {
            c.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let type_ = field("type");
        Column {
            name: field("name"),
            format: field("format"),
            priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
            cell: Cell::Path {
                path: format!("${}", field("jsonPath")),
                type_: type_.clone(),
            },
            type_,
        }
    }));
    all
}

/// The cell of a column of `type_` whose JSONPath is `path` (`$`-rooted): the first result,
/// typed; null when there is none or it does not fit the type, as upstream.
pub(super) fn cell(
    obj: &Value,
    path: &str,
    type_: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Value {
    let Some(value) = obj
        .query(path)
        .ok()
        .and_then(|r| r.first().copied().cloned())
    else {
        return Value::Null;
    };
    match (type_, &value) {
        (_, Value::Null) => Value::Null,
        ("integer", Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map_or(Value::Null, |i| json!(i)),
        ("number", Value::Number(_)) | ("boolean", Value::Bool(_)) => value,
        ("date", Value::String(s)) => json!(super::age::since(s, now)),
        ("date", _) => json!("<invalid>"),
        // A string column prints any value: strings as they are, the rest as JSON.
        ("string", Value::String(_)) => value,
        ("string", other) => json!(other.to_string()),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .expect("time")
            .with_timezone(&chrono::Utc)
    }

    #[test]
    fn columns_read_filters_indices_and_types() {
        let obj = json!({"metadata": {"creationTimestamp": "2026-01-02T02:04:05Z", "labels": {"a.b/c": "x"}},
            "spec": {"replicas": 3, "ratio": 0.5, "on": true, "ports": [{"port": 80}, {"port": 443}]},
            "status": {"conditions": [{"type": "Progressing", "status": "True"}, {"type": "Ready", "status": "False"}]}});
        let cases = [
            (
                r#"$.status.conditions[?(@.type=="Ready")].status"#,
                "string",
                json!("False"),
            ),
            ("$.spec.replicas", "integer", json!(3)),
            ("$.spec.ratio", "number", json!(0.5)),
            ("$.spec.on", "boolean", json!(true)),
            ("$.spec.ports[1].port", "integer", json!(443)),
            ("$.spec.ports[*].port", "integer", json!(80)),
            ("$.metadata.labels['a.b/c']", "string", json!("x")),
            (
                "$.spec.ports",
                "string",
                json!(r#"[{"port":80},{"port":443}]"#),
            ),
            ("$.metadata.creationTimestamp", "date", json!("60m")),
            ("$.spec.missing", "string", Value::Null),
            ("$.spec.on", "integer", Value::Null),
        ];
        for (path, type_, want) in cases {
            assert_eq!(cell(&obj, path, type_, now()), want, "{path} as {type_}");
        }
    }

    #[test]
    fn age_is_implicit_only_without_columns() {
        let names = |cs: Vec<Column>| cs.into_iter().map(|c| c.name).collect::<Vec<_>>();
        assert_eq!(names(columns(&[])), ["Name", "Age"]);
        let defined = [json!({"name": "Phase", "type": "string", "jsonPath": ".status.phase"})];
        assert_eq!(names(columns(&defined)), ["Name", "Phase"]);
    }
}
