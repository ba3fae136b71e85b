//! The OpenAPI v2 protobuf document, checked two ways: decoded with the message structs and
//! turned back into JSON, it is the JSON document (nothing dropped, nothing altered); read with
//! a bare wire-format walker that knows only the field numbers of `OpenAPIv2.proto`, the
//! ConfigMap definition has what kube-openapi reads.

use prost::Message;
use serde_json::{Map, Value, json};

use crate::gnostic::*;
use crate::*;

const CONFIG_MAP: &str = "io.k8s.api.core.v1.ConfigMap";

fn configmaps() -> ResourcePaths {
    ResourcePaths {
        group: String::new(),
        version: "v1".into(),
        plural: "configmaps".into(),
        kind: "ConfigMap".into(),
        namespaced: true,
        definition: CONFIG_MAP.into(),
        subresources: vec![],
    }
}

fn deployments() -> ResourcePaths {
    ResourcePaths {
        group: "apps".into(),
        version: "v1".into(),
        plural: "deployments".into(),
        kind: "Deployment".into(),
        namespaced: true,
        definition: "io.k8s.api.apps.v1.Deployment".into(),
        subresources: vec!["status".into(), "scale".into()],
    }
}

/// A CRD schema using what the v2 form must carry (bounds, enum, default, description,
/// additionalProperties, list extensions) and what it must cut (nullable, anyOf, unknown
/// fields kept under properties, an array left without items).
fn gizmo() -> (ResourcePaths, CustomSchema) {
    let schema = json!({
        "type": "object",
        "description": "A gizmo.",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["size", "note"],
                "properties": {
                    "size": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 9, "default": 3},
                    "mode": {"type": "string", "enum": ["on", "off", "y"], "pattern": "^[a-z]+$", "maxLength": 8},
                    "ratio": {"type": "number", "multipleOf": 0.5, "exclusiveMinimum": true, "minimum": 0},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 4},
                    "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set", "minItems": 1, "uniqueItems": true},
                    "note": {"type": "string", "nullable": true},
                    "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                    "blob": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"a": {"type": "string"}}},
                    "loose": {"type": "array", "x-kubernetes-preserve-unknown-fields": true, "items": {"type": "string"}},
                    "nested": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object"}}}
                }
            }
        }
    });
    (
        ResourcePaths {
            group: "example.com".into(),
            version: "v1".into(),
            plural: "gizmos".into(),
            kind: "Gizmo".into(),
            namespaced: true,
            definition: "com.example.v1.Gizmo".into(),
            subresources: vec!["status".into()],
        },
        CustomSchema {
            definition: "com.example.v1.Gizmo".into(),
            group: "example.com".into(),
            version: "v1".into(),
            kind: "Gizmo".into(),
            schema,
        },
    )
}

// ---- messages → JSON, the inverse of gnostic.rs, to compare with the JSON document ----

fn put_str(m: &mut Map<String, Value>, k: &str, v: &str) {
    if !v.is_empty() {
        m.insert(k.into(), json!(v));
    }
}

fn put_strs(m: &mut Map<String, Value>, k: &str, v: &[String]) {
    if !v.is_empty() {
        m.insert(k.into(), json!(v));
    }
}

fn put_bool(m: &mut Map<String, Value>, k: &str, v: bool) {
    if v {
        m.insert(k.into(), json!(true));
    }
}

fn put_num(m: &mut Map<String, Value>, k: &str, v: f64) {
    if v != 0.0 {
        let n = if v.fract() == 0.0 {
            json!(v as i64)
        } else {
            json!(v)
        };
        m.insert(k.into(), n);
    }
}

fn put_int(m: &mut Map<String, Value>, k: &str, v: i64) {
    if v != 0 {
        m.insert(k.into(), json!(v));
    }
}

fn any_json(a: &Any) -> Value {
    serde_json::from_str(&a.yaml).expect("Any.yaml is JSON text")
}

fn put_ext(m: &mut Map<String, Value>, ext: &[NamedAny]) {
    for e in ext {
        m.insert(e.name.clone(), any_json(e.value.as_ref().expect("value")));
    }
}

fn schema_json(s: &Schema) -> Value {
    let mut m = Map::new();
    put_str(&mut m, "$ref", &s.xref);
    put_str(&mut m, "format", &s.format);
    put_str(&mut m, "title", &s.title);
    put_str(&mut m, "description", &s.description);
    if let Some(d) = &s.default {
        m.insert("default".into(), any_json(d));
    }
    put_num(&mut m, "multipleOf", s.multiple_of);
    put_num(&mut m, "maximum", s.maximum);
    put_bool(&mut m, "exclusiveMaximum", s.exclusive_maximum);
    put_num(&mut m, "minimum", s.minimum);
    put_bool(&mut m, "exclusiveMinimum", s.exclusive_minimum);
    put_int(&mut m, "maxLength", s.max_length);
    put_int(&mut m, "minLength", s.min_length);
    put_str(&mut m, "pattern", &s.pattern);
    put_int(&mut m, "maxItems", s.max_items);
    put_int(&mut m, "minItems", s.min_items);
    put_bool(&mut m, "uniqueItems", s.unique_items);
    put_int(&mut m, "maxProperties", s.max_properties);
    put_int(&mut m, "minProperties", s.min_properties);
    put_strs(&mut m, "required", &s.required);
    if !s.r#enum.is_empty() {
        m.insert("enum".into(), s.r#enum.iter().map(any_json).collect());
    }
    if let Some(ap) = &s.additional_properties {
        let v = match ap.oneof.as_ref().expect("oneof set") {
            additional_properties_item::Oneof::Schema(s) => schema_json(s),
            additional_properties_item::Oneof::Boolean(b) => json!(b),
        };
        m.insert("additionalProperties".into(), v);
    }
    if let Some(t) = &s.r#type {
        let v = match t.value.as_slice() {
            [one] => json!(one),
            many => json!(many),
        };
        m.insert("type".into(), v);
    }
    if let Some(items) = &s.items {
        let v = match items.schema.as_slice() {
            [one] => schema_json(one),
            many => many.iter().map(schema_json).collect(),
        };
        m.insert("items".into(), v);
    }
    if !s.all_of.is_empty() {
        m.insert("allOf".into(), s.all_of.iter().map(schema_json).collect());
    }
    if let Some(p) = &s.properties {
        m.insert(
            "properties".into(),
            named_schemas_json(&p.additional_properties),
        );
    }
    put_str(&mut m, "discriminator", &s.discriminator);
    put_bool(&mut m, "readOnly", s.read_only);
    if let Some(e) = &s.example {
        m.insert("example".into(), any_json(e));
    }
    put_ext(&mut m, &s.vendor_extension);
    Value::Object(m)
}

fn named_schemas_json(entries: &[NamedSchema]) -> Value {
    let mut m = Map::new();
    for e in entries {
        let previous = m.insert(
            e.name.clone(),
            schema_json(e.value.as_ref().expect("schema")),
        );
        assert!(previous.is_none(), "{} listed twice", e.name);
    }
    Value::Object(m)
}

fn parameter_json(p: &ParametersItem) -> Value {
    let mut m = Map::new();
    match p.oneof.as_ref().expect("parameter") {
        parameters_item::Oneof::JsonReference(r) => {
            put_str(&mut m, "$ref", &r.xref);
            put_str(&mut m, "description", &r.description);
        }
        parameters_item::Oneof::Parameter(p) => match p.oneof.as_ref().expect("kind") {
            parameter::Oneof::Body(b) => {
                put_str(&mut m, "description", &b.description);
                put_str(&mut m, "name", &b.name);
                put_str(&mut m, "in", &b.r#in);
                put_bool(&mut m, "required", b.required);
                if let Some(s) = &b.schema {
                    m.insert("schema".into(), schema_json(s));
                }
                put_ext(&mut m, &b.vendor_extension);
            }
            parameter::Oneof::NonBody(nb) => {
                let simple: SimpleParameter = match nb.oneof.clone().expect("sub-schema") {
                    non_body_parameter::Oneof::Header(h) => h.into(),
                    non_body_parameter::Oneof::FormData(f) => f.into(),
                    non_body_parameter::Oneof::Query(q) => q.into(),
                    non_body_parameter::Oneof::Path(p) => p.into(),
                };
                put_bool(&mut m, "required", simple.required);
                put_str(&mut m, "in", &simple.r#in);
                put_str(&mut m, "description", &simple.description);
                put_str(&mut m, "name", &simple.name);
                put_bool(&mut m, "allowEmptyValue", simple.allow_empty_value);
                put_str(&mut m, "type", &simple.r#type);
                put_str(&mut m, "format", &simple.format);
                put_str(&mut m, "collectionFormat", &simple.collection_format);
                if let Some(d) = &simple.default {
                    m.insert("default".into(), any_json(d));
                }
                put_bool(&mut m, "uniqueItems", simple.unique_items);
                if !simple.r#enum.is_empty() {
                    m.insert("enum".into(), simple.r#enum.iter().map(any_json).collect());
                }
                put_ext(&mut m, &simple.vendor_extension);
            }
        },
    }
    Value::Object(m)
}

fn operation_json(o: &Operation) -> Value {
    let mut m = Map::new();
    put_strs(&mut m, "tags", &o.tags);
    put_str(&mut m, "summary", &o.summary);
    put_str(&mut m, "description", &o.description);
    put_str(&mut m, "operationId", &o.operation_id);
    put_strs(&mut m, "produces", &o.produces);
    put_strs(&mut m, "consumes", &o.consumes);
    m.insert(
        "parameters".into(),
        o.parameters.iter().map(parameter_json).collect(),
    );
    if let Some(r) = &o.responses {
        let mut codes = Map::new();
        for c in &r.response_code {
            let v = match c.value.as_ref().and_then(|v| v.oneof.as_ref()) {
                Some(response_value::Oneof::Response(r)) => {
                    let mut rm = Map::new();
                    put_str(&mut rm, "description", &r.description);
                    if let Some(s) = r.schema.as_ref().and_then(|s| s.schema.as_ref()) {
                        rm.insert("schema".into(), schema_json(s));
                    }
                    put_ext(&mut rm, &r.vendor_extension);
                    Value::Object(rm)
                }
                Some(response_value::Oneof::JsonReference(j)) => json!({"$ref": j.xref}),
                None => panic!("response {} without a value", c.name),
            };
            codes.insert(c.name.clone(), v);
        }
        put_ext(&mut codes, &r.vendor_extension);
        m.insert("responses".into(), Value::Object(codes));
    }
    put_strs(&mut m, "schemes", &o.schemes);
    put_bool(&mut m, "deprecated", o.deprecated);
    put_ext(&mut m, &o.vendor_extension);
    Value::Object(m)
}

fn document_json(d: &Document) -> Value {
    let mut paths = Map::new();
    let p = d.paths.as_ref().expect("paths");
    for item in &p.path {
        let pi = item.value.as_ref().expect("path item");
        let mut m = Map::new();
        put_str(&mut m, "$ref", &pi.xref);
        for (k, op) in [
            ("get", &pi.get),
            ("put", &pi.put),
            ("post", &pi.post),
            ("delete", &pi.delete),
            ("options", &pi.options),
            ("head", &pi.head),
            ("patch", &pi.patch),
        ] {
            if let Some(op) = op {
                m.insert(k.into(), operation_json(op));
            }
        }
        m.insert(
            "parameters".into(),
            pi.parameters.iter().map(parameter_json).collect(),
        );
        put_ext(&mut m, &pi.vendor_extension);
        paths.insert(item.name.clone(), Value::Object(m));
    }
    put_ext(&mut paths, &p.vendor_extension);
    let info = d.info.as_ref().expect("info");
    let mut im = Map::new();
    put_str(&mut im, "title", &info.title);
    put_str(&mut im, "version", &info.version);
    put_str(&mut im, "description", &info.description);
    put_ext(&mut im, &info.vendor_extension);
    json!({
        "swagger": d.swagger,
        "info": im,
        "paths": paths,
        "definitions": named_schemas_json(&d.definitions.as_ref().expect("definitions").additional_properties),
    })
}

/// Proto3 scalars carry no presence, in gnostic's messages as here: a zero bound, a false flag
/// or an empty string reads back as absent. The JSON document with those removed is what the
/// protobuf form can say.
fn without_zero_scalars(v: &Value) -> Value {
    const SCALARS: &[&str] = &[
        "multipleOf",
        "maximum",
        "minimum",
        "exclusiveMaximum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "maxItems",
        "minItems",
        "uniqueItems",
        "maxProperties",
        "minProperties",
        "readOnly",
        "format",
        "title",
        "description",
        "pattern",
        "discriminator",
    ];
    let zero =
        |x: &Value| x.as_f64() == Some(0.0) || x.as_bool() == Some(false) || x.as_str() == Some("");
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, x)| !(SCALARS.contains(&k.as_str()) && zero(x)))
                .map(|(k, x)| (k.clone(), without_zero_scalars(x)))
                .collect(),
        ),
        Value::Array(a) => a.iter().map(without_zero_scalars).collect(),
        other => other.clone(),
    }
}

#[test]
fn protobuf_decodes_to_the_json_document() {
    for minor in [25, 32, 37] {
        let s = spec(minor).expect("spec");
        let (gizmo_paths, custom) = gizmo();
        let resources = [configmaps(), deployments(), gizmo_paths];
        let json_doc = s.v2_document(&resources, std::slice::from_ref(&custom));
        let bytes = s.v2_protobuf(&resources, std::slice::from_ref(&custom));
        let decoded = Document::decode(bytes.as_slice()).expect("a Document");
        assert_eq!(decoded.swagger, "2.0");
        assert_eq!(
            without_zero_scalars(&json_doc["paths"]),
            json_doc["paths"],
            "the release's paths have no zero scalars to lose"
        );
        let back = document_json(&decoded);
        assert_eq!(back["info"], json_doc["info"], "1.{minor} info");
        assert_eq!(back["paths"], json_doc["paths"], "1.{minor} paths");
        let (got, want) = (
            back["definitions"].as_object().expect("defs"),
            json_doc["definitions"].as_object().expect("defs"),
        );
        assert_eq!(got.len(), want.len(), "1.{minor}: as many definitions");
        for (name, def) in want {
            assert_eq!(
                got.get(name),
                Some(&without_zero_scalars(def)),
                "1.{minor} definition {name}"
            );
        }
    }
}

#[test]
fn custom_schemas_take_their_v2_form() {
    let s = spec(34).expect("spec");
    let (paths, custom) = gizmo();
    let doc = s.v2_document(&[paths], &[custom]);
    let def = &doc["definitions"]["com.example.v1.Gizmo"];
    assert_eq!(def["x-kubernetes-group-version-kind"][0]["kind"], "Gizmo");
    assert_eq!(
        def["properties"]["metadata"]["$ref"],
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    let spec_props = &def["properties"]["spec"]["properties"];
    // A nullable field has no type (kubectl would reject a null) and is not required.
    assert_eq!(spec_props["note"], json!({}));
    assert_eq!(def["properties"]["spec"]["required"], json!(["size"]));
    // anyOf is cut; int-or-string stays an extension.
    assert_eq!(
        spec_props["port"],
        json!({"x-kubernetes-int-or-string": true})
    );
    // Unknown fields kept: no properties (kubectl would close the object), an array without
    // items loses its type.
    assert_eq!(
        spec_props["blob"],
        json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
    );
    assert_eq!(
        spec_props["loose"],
        json!({"x-kubernetes-preserve-unknown-fields": true})
    );
    let nested = &spec_props["nested"]["properties"];
    assert_eq!(nested["apiVersion"]["type"], "string");
    assert!(nested["metadata"]["$ref"].is_string());
    // What v2 has a place for is kept.
    assert_eq!(spec_props["size"]["maximum"], 9);
    assert_eq!(spec_props["mode"]["enum"], json!(["on", "off", "y"]));
    assert_eq!(def["description"], "A gizmo.");

    // A CRD that keeps unknown fields at its root is a bare object with its GVK.
    let (paths, mut open) = gizmo();
    open.schema = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"spec": {"type": "object"}}});
    let doc = s.v2_document(&[paths], &[open]);
    assert_eq!(
        doc["definitions"]["com.example.v1.Gizmo"],
        json!({"type": "object", "x-kubernetes-group-version-kind": [{"group": "example.com", "version": "v1", "kind": "Gizmo"}]})
    );
    // The v3 document keeps the CRD's schema as written.
    let (paths, custom) = gizmo();
    let v3 = s.v3_document("example.com/v1", &[paths], &[custom]);
    assert_eq!(
        v3["components"]["schemas"]["com.example.v1.Gizmo"]["properties"]["spec"]["properties"]["note"]
            ["nullable"],
        true
    );
}

#[test]
fn a_custom_schema_named_like_a_release_definition_replaces_it() {
    let s = spec(33).expect("spec");
    let (paths, mut custom) = gizmo();
    custom.definition = CONFIG_MAP.into();
    let bytes = s.v2_protobuf(&[paths], &[custom]);
    let decoded = Document::decode(bytes.as_slice()).expect("a Document");
    let defs = &decoded
        .definitions
        .expect("definitions")
        .additional_properties;
    let config_maps: Vec<&NamedSchema> = defs.iter().filter(|d| d.name == CONFIG_MAP).collect();
    assert_eq!(config_maps.len(), 1);
    let ext = &config_maps[0]
        .value
        .as_ref()
        .expect("schema")
        .vendor_extension;
    assert!(
        ext.iter()
            .any(|e| e.value.as_ref().is_some_and(|a| a.yaml.contains("Gizmo"))),
        "{ext:?}"
    );
    assert_eq!(defs.len(), s.definitions().len());
}

// ---- a bare wire-format reader: field numbers from OpenAPIv2.proto, no message structs ----

/// The length-delimited fields of one message, as (field number, payload); scalars skipped.
fn fields(mut buf: &[u8]) -> Vec<(u32, &[u8])> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = prost::encoding::decode_varint(&mut buf).expect("key");
        let (number, wire) = ((key >> 3) as u32, key & 7);
        match wire {
            0 => {
                prost::encoding::decode_varint(&mut buf).expect("varint");
            }
            1 => buf = &buf[8..],
            5 => buf = &buf[4..],
            2 => {
                let len = prost::encoding::decode_varint(&mut buf).expect("length") as usize;
                out.push((number, &buf[..len]));
                buf = &buf[len..];
            }
            other => panic!("wire type {other}"),
        }
    }
    out
}

fn field(buf: &[u8], number: u32) -> Option<&[u8]> {
    fields(buf)
        .into_iter()
        .find(|(n, _)| *n == number)
        .map(|(_, b)| b)
}

fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).expect("utf-8")
}

/// NamedSchema entries (name = 1, value = 2) of a Definitions or Properties message.
fn named(buf: &[u8], name: &str) -> Option<Vec<u8>> {
    fields(buf)
        .into_iter()
        .filter(|(n, _)| *n == 1)
        .find(|(_, entry)| field(entry, 1).map(text) == Some(name))
        .and_then(|(_, entry)| field(entry, 2).map(<[u8]>::to_vec))
}

#[test]
fn wire_reader_finds_what_kube_openapi_reads() {
    let s = spec(32).expect("spec");
    let bytes = s.v2_protobuf(&[configmaps()], &[]);
    // Document.swagger = 1, .definitions = 9.
    assert_eq!(field(&bytes, 1).map(text), Some("2.0"));
    let definitions = field(&bytes, 9).expect("definitions");
    let cm = named(definitions, CONFIG_MAP).expect("the ConfigMap definition");
    // Schema.type = 22 (TypeItem.value = 1), .properties = 25, .vendor_extension = 31.
    let type_of = |schema: &[u8]| {
        field(schema, 22)
            .and_then(|t| field(t, 1))
            .map(|v| text(v).to_string())
    };
    assert_eq!(type_of(&cm).as_deref(), Some("object"));
    let props = field(&cm, 25).expect("properties");
    let data = named(props, "data").expect("data");
    assert_eq!(type_of(&data).as_deref(), Some("object"));
    // Schema.additional_properties = 21 → AdditionalPropertiesItem.schema = 1.
    let values = field(&data, 21)
        .and_then(|ap| field(ap, 1))
        .expect("additionalProperties schema");
    assert_eq!(type_of(values).as_deref(), Some("string"));
    // metadata is a reference (Schema._ref = 1).
    let metadata = named(props, "metadata").expect("metadata");
    assert_eq!(
        field(&metadata, 1).map(text),
        Some("#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
    );
    // The GVK: NamedAny (name = 1, value = 2) → Any.yaml = 2, a YAML list of one mapping.
    let gvk = fields(&cm)
        .into_iter()
        .filter(|(n, _)| *n == 31)
        .find(|(_, e)| field(e, 1).map(text) == Some("x-kubernetes-group-version-kind"))
        .and_then(|(_, e)| field(e, 2))
        .and_then(|any| field(any, 2))
        .map(text)
        .expect("x-kubernetes-group-version-kind");
    let gvk: Value = serde_json::from_str(gvk).expect("YAML in JSON form");
    assert_eq!(
        gvk,
        json!([{"group": "", "kind": "ConfigMap", "version": "v1"}])
    );
    // Paths (8) → NamedPathItem (path = 2): the item path's PATCH (8) names its GVK.
    let paths = field(&bytes, 8).expect("paths");
    let item = fields(paths)
        .into_iter()
        .filter(|(n, _)| *n == 2)
        .find(|(_, e)| {
            field(e, 1).map(text) == Some("/api/v1/namespaces/{namespace}/configmaps/{name}")
        })
        .and_then(|(_, e)| field(e, 2))
        .expect("the ConfigMap item path");
    let patch = field(item, 8).expect("patch operation");
    assert_eq!(field(patch, 5).map(text), Some("patchConfigMapNamespaced"));
}

#[test]
fn release_definitions_are_encoded_once() {
    let s = spec(31).expect("spec");
    let first = s.v2_protobuf(&[configmaps()], &[]);
    let entries = s.v2_entries_ptr();
    let second = s.v2_protobuf(&[configmaps(), deployments()], &[gizmo().1]);
    assert_eq!(s.v2_entries_ptr(), entries, "the same encoded entries");
    assert!(second.len() > first.len());
}

#[test]
fn shared_documents_are_encoded_once_per_input() {
    let s = spec(36).expect("spec");
    let a = s.v2_protobuf_shared(&[configmaps()], &[]);
    let again = s.v2_protobuf_shared(&[configmaps()], &[]);
    assert_eq!(
        a.bytes.as_ptr(),
        again.bytes.as_ptr(),
        "the same bytes, shared"
    );
    assert_eq!(a.etag, again.etag);
    assert_eq!(
        a.bytes.as_ref(),
        s.v2_protobuf(&[configmaps()], &[]).as_slice()
    );
    // A CRD's schema changes the document and its ETag.
    let (paths, custom) = gizmo();
    let b = s.v2_protobuf_shared(
        &[configmaps(), paths.clone()],
        std::slice::from_ref(&custom),
    );
    assert_ne!(a.etag, b.etag);
    let mut changed = custom.clone();
    changed.schema["properties"]["extra"] = json!({"type": "string"});
    let c = s.v2_protobuf_shared(&[configmaps(), paths], &[changed]);
    assert_ne!(b.etag, c.etag);
    assert_ne!(b.bytes, c.bytes);
    // Servers listing the same resources in another order share the document.
    let (paths, custom) = gizmo();
    let mut other = custom.clone();
    other.definition = "com.example.v1.Other".into();
    let one = s.v2_protobuf_shared(
        &[configmaps(), paths.clone()],
        &[custom.clone(), other.clone()],
    );
    let two = s.v2_protobuf_shared(&[paths, configmaps()], &[other, custom]);
    assert_eq!(one.bytes.as_ptr(), two.bytes.as_ptr());
    assert_eq!(one.etag, two.etag);
    // Bounded: after more distinct documents than it keeps, the first is encoded anew.
    for i in 0..V2_CACHE_ENTRIES {
        let mut r = configmaps();
        r.plural = format!("configmaps{i}");
        s.v2_protobuf_shared(&[r], &[]);
    }
    let anew = s.v2_protobuf_shared(&[configmaps()], &[]);
    assert_ne!(
        a.bytes.as_ptr(),
        anew.bytes.as_ptr(),
        "evicted, encoded again"
    );
    assert_eq!(a.bytes, anew.bytes);
    assert_eq!(a.etag, anew.etag);
}
