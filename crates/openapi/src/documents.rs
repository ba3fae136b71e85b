//! The OpenAPI v2 and v3 documents a server publishes, as kube-apiserver shapes them: the
//! definitions (plus CRD schemas), and paths whose operations carry `x-kubernetes-action`,
//! `x-kubernetes-group-version-kind` and the write parameters — kubectl reads the PATCH
//! operation's `fieldValidation` parameter to decide that the server validates fields. In v2 a
//! CRD's schema takes the form kube-apiserver gives it there (`v2_structural`), since kubectl
//! validates against v2 on the client; the v2 document is also encoded as protobuf
//! (`v2_protobuf`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::ops::Range;

use serde_json::{Map, Value, json};

use crate::{Spec, descriptions, gnostic};

/// How many distinct protobuf v2 documents a release keeps encoded (`v2_protobuf_shared`):
/// servers differ by their custom resources, and most share a handful of sets.
pub const V2_CACHE_ENTRIES: usize = 8;

/// An encoded document and its strong ETag.
#[derive(Debug, Clone)]
pub struct EncodedDocument {
    pub bytes: bytes::Bytes,
    pub etag: String,
}

/// The encoded `Definitions` entries of one release's definitions (`Spec::v2_protobuf`).
pub(crate) struct V2Entries {
    blob: Vec<u8>,
    /// Where each definition's entry sits in `blob`.
    index: HashMap<String, Range<usize>>,
}

impl std::fmt::Debug for V2Entries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "V2Entries({} bytes)", self.blob.len())
    }
}

/// One served resource, for the `paths` of a document.
#[derive(Debug, Clone, Hash)]
pub struct ResourcePaths {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub kind: String,
    pub namespaced: bool,
    /// The schema name of its kind (`io.k8s.api.apps.v1.Deployment`, or a custom one).
    pub definition: String,
    /// `status`, `scale`.
    pub subresources: Vec<String>,
}

/// A custom resource's schema, published under `definition`.
#[derive(Debug, Clone)]
pub struct CustomSchema {
    pub definition: String,
    pub group: String,
    pub version: String,
    pub kind: String,
    /// The CRD's openAPIV3Schema for this version.
    pub schema: Value,
}

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
const SCALE: &str = "io.k8s.api.autoscaling.v1.Scale";
/// Definitions every group-version document carries (errors, options, lists, watch events).
const COMMON: &[&str] = &[
    "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
    "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList",
    "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
    OBJECT_META,
];

/// A custom schema as kubectl expects it: typed apiVersion/kind, ObjectMeta, and its GVK. In
/// v2 the schema is first cut down as kube-apiserver does for a CRD (`v2_structural`), and a
/// schema that keeps unknown fields at its root is published as a bare object: kubectl's v2
/// models treat an object with properties as closed.
fn custom_definition(c: &CustomSchema, reference: &str, v2: bool) -> Value {
    let mut schema = if v2 {
        v2_structural(&c.schema)
    } else {
        c.schema.clone()
    };
    if !schema.is_object() {
        schema = json!({"type": "object"});
    }
    if v2 && preserves_unknown(&c.schema) {
        schema = json!({"type": "object"});
    } else {
        let props = schema
            .as_object_mut()
            .map(|o| o.entry("properties").or_insert_with(|| json!({})))
            .and_then(Value::as_object_mut);
        if let Some(props) = props {
            props.insert("apiVersion".into(), json!({"type": "string"}));
            props.insert("kind".into(), json!({"type": "string"}));
            props.insert(
                "metadata".into(),
                json!({"$ref": format!("{reference}{OBJECT_META}")}),
            );
        }
    }
    schema["type"] = json!("object");
    schema["x-kubernetes-group-version-kind"] =
        json!([{"group": c.group, "version": c.version, "kind": c.kind}]);
    schema
}

fn preserves_unknown(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn nullable(schema: &Value) -> bool {
    schema
        .get("nullable")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// A CRD's structural schema as kube-apiserver publishes it in OpenAPI v2
/// (apiextensions-apiserver's `ToStructuralOpenAPIV2`): no `allOf`/`oneOf`/`anyOf`/`not`; a
/// nullable node loses its type, items and properties, and a node that keeps unknown fields its
/// items and properties (kubectl would reject a null, or an unlisted field); an array left
/// without items loses its type (kubectl's models need exactly one item schema); a nullable
/// property is not required. An embedded resource that lists properties gets apiVersion, kind
/// and metadata, as kube-apiserver adds them.
fn v2_structural(schema: &Value) -> Value {
    let Some(m) = schema.as_object() else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (k, v) in m {
        let converted = match k.as_str() {
            "allOf" | "oneOf" | "anyOf" | "not" | "nullable" => continue,
            "properties" => match v.as_object() {
                Some(props) => Value::Object(
                    props
                        .iter()
                        .map(|(name, p)| (name.clone(), v2_structural(p)))
                        .collect(),
                ),
                None => v.clone(),
            },
            "items" | "additionalProperties" if v.is_object() => v2_structural(v),
            _ => v.clone(),
        };
        out.insert(k.clone(), converted);
    }
    if nullable(schema) {
        for k in ["type", "items", "properties"] {
            out.remove(k);
        }
    }
    if preserves_unknown(schema) {
        out.remove("items");
        out.remove("properties");
    }
    if out.get("type").and_then(Value::as_str) == Some("array") && !out.contains_key("items") {
        out.remove("type");
    }
    let additional_nullable = m.get("additionalProperties").is_some_and(nullable);
    if additional_nullable {
        out.remove("required");
    } else if let (Some(Value::Array(required)), Some(props)) = (
        out.get("required").cloned(),
        m.get("properties").and_then(Value::as_object),
    ) {
        let kept: Vec<Value> = required
            .into_iter()
            .filter(|r| {
                r.as_str()
                    .and_then(|name| props.get(name))
                    .is_none_or(|p| !nullable(p))
            })
            .collect();
        if kept.is_empty() {
            out.remove("required");
        } else {
            out.insert("required".into(), Value::Array(kept));
        }
    }
    let embedded = m
        .get("x-kubernetes-embedded-resource")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if embedded && let Some(Value::Object(props)) = out.get_mut("properties") {
        for field in ["apiVersion", "kind"] {
            props
                .entry(field)
                .or_insert_with(|| json!({"type": "string"}));
        }
        props
            .entry("metadata")
            .or_insert_with(|| json!({"$ref": format!("#/definitions/{OBJECT_META}")}));
    }
    Value::Object(out)
}

/// Rewrites `#/definitions/` refs to `prefix`, and (for v3) a `$ref` with siblings into the
/// `allOf: [{$ref}]` form kube-apiserver uses.
fn rewrite(value: &Value, prefix: &str, v3: bool) -> Value {
    match value {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                if k == "$ref"
                    && let Some(r) = v.as_str()
                {
                    let name = r.rsplit('/').next().unwrap_or_default();
                    out.insert(k.clone(), json!(format!("{prefix}{name}")));
                    continue;
                }
                out.insert(k.clone(), rewrite(v, prefix, v3));
            }
            // (A property named "$ref", as in JSONSchemaProps, holds an object: left alone.)
            if v3
                && out.len() > 1
                && out.get("$ref").is_some_and(Value::is_string)
                && let Some(r) = out.remove("$ref")
            {
                out.insert("allOf".into(), json!([{"$ref": r}]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|v| rewrite(v, prefix, v3)).collect()),
        other => other.clone(),
    }
}

/// Names of definitions a schema refers to.
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "$ref" {
                    if let Some(r) = v.as_str() {
                        out.push(r.rsplit('/').next().unwrap_or_default().to_string());
                    }
                } else {
                    refs(v, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

fn param(name: &str, location: &str, v3: bool) -> Value {
    let mut p = json!({"name": name, "in": location, "uniqueItems": true});
    if location == "path" {
        p["required"] = json!(true);
    }
    let ty = if name == "force" { "boolean" } else { "string" };
    if v3 {
        p["schema"] = json!({"type": ty, "uniqueItems": true});
    } else {
        p["type"] = json!(ty);
    }
    p
}

fn operation(
    action: &str,
    id: String,
    gvk: &Value,
    reference: &str,
    v3: bool,
    body: Option<&str>,
    response: &str,
) -> Value {
    let mut params: Vec<Value> = Vec::new();
    match action {
        "list" | "watch" => {
            for q in [
                "allowWatchBookmarks",
                "continue",
                "fieldSelector",
                "labelSelector",
                "limit",
                "resourceVersion",
                "resourceVersionMatch",
                "sendInitialEvents",
                "timeoutSeconds",
                "watch",
            ] {
                params.push(param(q, "query", v3));
            }
        }
        "post" | "put" | "patch" => {
            for q in ["dryRun", "fieldManager", "fieldValidation"] {
                params.push(param(q, "query", v3));
            }
            if action == "patch" {
                params.push(param("force", "query", v3));
            }
        }
        "delete" | "deletecollection" => {
            for q in ["dryRun", "gracePeriodSeconds", "propagationPolicy"] {
                params.push(param(q, "query", v3));
            }
        }
        _ => {}
    }
    let schema = json!({"$ref": format!("{reference}{response}")});
    let mut op = json!({
        "operationId": id,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
        "parameters": params,
    });
    if v3 {
        let content: Map<String, Value> = [
            "application/json",
            "application/yaml",
            "application/vnd.kubernetes.protobuf",
        ]
        .iter()
        .map(|ct| (ct.to_string(), json!({"schema": schema.clone()})))
        .collect();
        op["responses"] = json!({"200": {"description": "OK", "content": content}, "401": {"description": "Unauthorized"}});
        if let Some(b) = body {
            let types: &[&str] = if action == "patch" {
                &[
                    "application/apply-patch+yaml",
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/strategic-merge-patch+json",
                ]
            } else {
                &["*/*"]
            };
            let body_schema = if action == "patch" {
                json!({"$ref": format!("{reference}io.k8s.apimachinery.pkg.apis.meta.v1.Patch")})
            } else {
                json!({"$ref": format!("{reference}{b}")})
            };
            let content: Map<String, Value> = types
                .iter()
                .map(|ct| (ct.to_string(), json!({"schema": body_schema.clone()})))
                .collect();
            op["requestBody"] = json!({"required": true, "content": content});
        }
    } else {
        op["responses"] = json!({"200": {"description": "OK", "schema": schema}, "401": {"description": "Unauthorized"}});
        op["consumes"] = json!(["*/*"]);
        op["produces"] = json!([
            "application/json",
            "application/yaml",
            "application/vnd.kubernetes.protobuf"
        ]);
        if let Some(b) = body {
            params_push_body(
                &mut op,
                json!({"name": "body", "in": "body", "required": true, "schema": {"$ref": format!("{reference}{b}")}}),
            );
        }
    }
    op
}

fn params_push_body(op: &mut Value, body: Value) {
    if let Some(a) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        a.push(body);
    }
}

fn paths_for(r: &ResourcePaths, reference: &str, v3: bool) -> BTreeMap<String, Value> {
    let prefix = if r.group.is_empty() {
        format!("/api/{}", r.version)
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    };
    let ns = if r.namespaced {
        "/namespaces/{namespace}"
    } else {
        ""
    };
    let collection = format!("{prefix}{ns}/{}", r.plural);
    let item = format!("{collection}/{{name}}");
    let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
    let scale_gvk = json!({"group": "autoscaling", "version": "v1", "kind": "Scale"});
    let id = |verb: &str, suffix: &str| {
        format!(
            "{verb}{}{}{}",
            r.kind,
            if r.namespaced { "Namespaced" } else { "" },
            suffix
        )
    };
    let path_params = |with_name: bool| {
        let mut p = Vec::new();
        if with_name {
            p.push(param("name", "path", v3));
        }
        if r.namespaced {
            p.push(param("namespace", "path", v3));
        }
        p.push(param("pretty", "query", v3));
        Value::Array(p)
    };
    let def = r.definition.as_str();
    let mut out = BTreeMap::new();
    if r.namespaced {
        // The list across namespaces (`/apis/apps/v1/deployments`), as upstream publishes it:
        // kubectl 1.27's `explain` finds a kind's GVK only under this path.
        let all = format!("{prefix}/{}", r.plural);
        let id = format!("list{}ForAllNamespaces", r.kind);
        out.insert(
            all,
            json!({
                "get": operation("list", id, &gvk, reference, v3, None, def),
                "parameters": [param("pretty", "query", v3)],
            }),
        );
    }
    out.insert(
        collection,
        json!({
            "get": operation("list", id("list", ""), &gvk, reference, v3, None, def),
            "post": operation("post", id("create", ""), &gvk, reference, v3, Some(def), def),
            "delete": operation("deletecollection", id("deletecollection", ""), &gvk, reference, v3, None, "io.k8s.apimachinery.pkg.apis.meta.v1.Status"),
            "parameters": path_params(false),
        }),
    );
    out.insert(
        item.clone(),
        json!({
            "get": operation("get", id("read", ""), &gvk, reference, v3, None, def),
            "put": operation("put", id("replace", ""), &gvk, reference, v3, Some(def), def),
            "patch": operation("patch", id("patch", ""), &gvk, reference, v3, Some(def), def),
            "delete": operation("delete", id("delete", ""), &gvk, reference, v3, None, "io.k8s.apimachinery.pkg.apis.meta.v1.Status"),
            "parameters": path_params(true),
        }),
    );
    for sub in &r.subresources {
        let (sub_gvk, sub_def) = if sub == "scale" {
            (&scale_gvk, SCALE)
        } else {
            (&gvk, def)
        };
        let suffix = if sub == "scale" { "Scale" } else { "Status" };
        out.insert(
            format!("{item}/{sub}"),
            json!({
                "get": operation("get", id("read", suffix), sub_gvk, reference, v3, None, sub_def),
                "put": operation("put", id("replace", suffix), sub_gvk, reference, v3, Some(sub_def), sub_def),
                "patch": operation("patch", id("patch", suffix), sub_gvk, reference, v3, Some(sub_def), sub_def),
                "parameters": path_params(true),
            }),
        );
    }
    out
}

/// A release definition as kube-apiserver publishes it: with upstream's descriptions, and
/// IntOrString and Quantity in each version's form. In v3 they are `oneOf` the two types with no
/// `type` of their own, which is why `kubectl explain` names them (`<IntOrString>`) instead of
/// printing `<string>`; v2 has no `oneOf` and says `type: string, format: int-or-string`. The
/// stored definitions keep `x-kubernetes-int-or-string`, which validation reads.
fn served(minor: u32, name: &str, def: &Value, reference: &str, v3: bool) -> Value {
    let published = match (name, v3) {
        (INT_OR_STRING, true) => {
            json!({"format": "int-or-string", "oneOf": [{"type": "integer"}, {"type": "string"}]})
        }
        (INT_OR_STRING, false) => json!({"type": "string", "format": "int-or-string"}),
        (QUANTITY, true) => json!({"oneOf": [{"type": "string"}, {"type": "number"}]}),
        _ => def.clone(),
    };
    // Described before the refs are rewritten: a described `$ref` becomes v3's `allOf` form.
    rewrite(
        &descriptions::describe(minor, name, &published),
        reference,
        v3,
    )
}

impl Spec {
    fn info(&self) -> Value {
        json!({"title": "Kubernetes", "version": format!("v1.{}.0", self.minor())})
    }

    /// Definitions by name: the release's plus the custom ones (in `#/definitions/` form).
    fn lookup<'a>(&'a self, custom: &'a BTreeMap<String, Value>, name: &str) -> Option<&'a Value> {
        custom.get(name).or_else(|| self.definitions().get(name))
    }

    /// The `paths` of the Swagger 2.0 document: the given resources'.
    fn v2_paths(resources: &[ResourcePaths]) -> Map<String, Value> {
        let mut paths = Map::new();
        for r in resources {
            paths.extend(paths_for(r, "#/definitions/", false));
        }
        paths
    }

    /// The Swagger 2.0 document with every definition and the given resources' paths.
    pub fn v2_document(&self, resources: &[ResourcePaths], custom: &[CustomSchema]) -> Value {
        let reference = "#/definitions/";
        let mut defs: Map<String, Value> = self
            .definitions()
            .iter()
            .map(|(k, v)| (k.clone(), served(self.minor(), k, v, reference, false)))
            .collect();
        for c in custom {
            defs.insert(c.definition.clone(), custom_definition(c, reference, true));
        }
        let paths = Self::v2_paths(resources);
        json!({"swagger": "2.0", "info": self.info(), "paths": paths, "definitions": defs})
    }

    /// The release's definitions as encoded `Definitions` entries, made on first use and kept.
    fn v2_entries(&self) -> &V2Entries {
        self.v2_entries.get_or_init(|| {
            let mut blob = Vec::new();
            let mut index = HashMap::new();
            for (name, v) in self.definitions() {
                let start = blob.len();
                let def = served(self.minor(), name, v, "#/definitions/", false);
                gnostic::encode_definition(name, &def, &mut blob);
                index.insert(name.clone(), start..blob.len());
            }
            V2Entries { blob, index }
        })
    }

    /// Where the encoded release definitions live, to see that they are encoded once.
    #[cfg(test)]
    pub(crate) fn v2_entries_ptr(&self) -> *const u8 {
        self.v2_entries().blob.as_ptr()
    }

    /// `v2_document` as gnostic's OpenAPI v2 protobuf (`application/com.github.proto-openapi.
    /// spec.v2@v1.0+protobuf`), the form kubectl reads, with an ETag. Shared: servers of this
    /// release with the same resources and custom schemas (a thousand simulated clusters) get
    /// the same bytes, encoded once; the last `V2_CACHE_ENTRIES` distinct documents are kept.
    pub fn v2_protobuf_shared(
        &self,
        resources: &[ResourcePaths],
        custom: &[CustomSchema],
    ) -> EncodedDocument {
        // In one order, whatever order a server lists them in (its CRDs come from a map).
        let mut resources = resources.to_vec();
        resources.sort_by(|a, b| {
            (&a.group, &a.version, &a.plural).cmp(&(&b.group, &b.version, &b.plural))
        });
        let mut custom = custom.to_vec();
        custom.sort_by(|a, b| a.definition.cmp(&b.definition));
        let (resources, custom) = (resources.as_slice(), custom.as_slice());
        let fingerprint = self.v2_fingerprint(resources, custom);
        let lock = || self.v2_cache.lock().unwrap_or_else(|e| e.into_inner());
        {
            let mut cache = lock();
            if let Some(i) = cache.iter().position(|(f, _)| *f == fingerprint)
                && let Some(hit) = cache.remove(i)
            {
                let doc = hit.1.clone();
                cache.push_front(hit);
                return doc;
            }
        }
        // Encoded outside the lock: two first requests may both encode, and one result stays.
        let doc = EncodedDocument {
            bytes: bytes::Bytes::from(self.v2_protobuf(resources, custom)),
            etag: format!("\"{fingerprint:016X}\""),
        };
        let mut cache = lock();
        if !cache.iter().any(|(f, _)| *f == fingerprint) {
            cache.push_front((fingerprint, doc.clone()));
            cache.truncate(V2_CACHE_ENTRIES);
        }
        doc
    }

    /// What `v2_protobuf` depends on, hashed: the release, the resources and custom schemas,
    /// and this build (the encoding may change with it).
    fn v2_fingerprint(&self, resources: &[ResourcePaths], custom: &[CustomSchema]) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (
            env!("CARGO_PKG_VERSION"),
            crate::DOCUMENTS_FORM,
            self.minor(),
        )
            .hash(&mut h);
        resources.hash(&mut h);
        for c in custom {
            (&c.definition, &c.group, &c.version, &c.kind).hash(&mut h);
            c.schema.to_string().hash(&mut h);
        }
        h.finish()
    }

    /// The protobuf document, encoded now. The release's definitions are encoded once per
    /// process; the paths and custom definitions of each call are encoded here.
    pub fn v2_protobuf(&self, resources: &[ResourcePaths], custom: &[CustomSchema]) -> Vec<u8> {
        let entries = self.v2_entries();
        let mut custom_entries = Vec::new();
        let mut replaced = BTreeSet::new();
        for c in custom {
            let def = custom_definition(c, "#/definitions/", true);
            gnostic::encode_definition(&c.definition, &def, &mut custom_entries);
            if entries.index.contains_key(&c.definition) {
                replaced.insert(c.definition.as_str());
            }
        }
        let mut parts: Vec<&[u8]> = Vec::new();
        if replaced.is_empty() {
            parts.push(&entries.blob);
        } else {
            // A custom schema named like a release definition replaces it, as in the JSON form.
            for (name, _) in self.definitions() {
                if !replaced.contains(name.as_str())
                    && let Some(range) = entries.index.get(name)
                {
                    parts.push(&entries.blob[range.clone()]);
                }
            }
        }
        parts.push(&custom_entries);
        let head = gnostic::Document {
            swagger: "2.0".into(),
            info: Some(gnostic::info(&self.info())),
            paths: Some(gnostic::paths(&Self::v2_paths(resources))),
            ..Default::default()
        };
        gnostic::encode_document(&head, &parts)
    }

    /// The OpenAPI 3.0 document of one group-version (`v1`, `apps/v1`, `rotor.dev/v1alpha1`),
    /// carrying every definition its kinds reach.
    pub fn v3_document(
        &self,
        group_version: &str,
        resources: &[ResourcePaths],
        custom: &[CustomSchema],
    ) -> Value {
        let reference = "#/components/schemas/";
        let custom_defs: BTreeMap<String, Value> = custom
            .iter()
            .map(|c| {
                (
                    c.definition.clone(),
                    custom_definition(c, "#/definitions/", false),
                )
            })
            .collect();
        let (group, version) = group_version
            .rsplit_once('/')
            .unwrap_or(("", group_version));
        let mut wanted: Vec<String> = COMMON.iter().map(|s| s.to_string()).collect();
        for r in resources
            .iter()
            .filter(|r| r.group == group && r.version == version)
        {
            wanted.push(r.definition.clone());
            if let Some(list) =
                self.definition_name(&r.group, &r.version, &format!("{}List", r.kind))
            {
                wanted.push(list.to_string());
            }
            if r.subresources.iter().any(|s| s == "scale") {
                wanted.push(SCALE.to_string());
            }
        }
        let mut seen = BTreeSet::new();
        let mut schemas = Map::new();
        while let Some(name) = wanted.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let Some(def) = self.lookup(&custom_defs, &name) else {
                continue;
            };
            let mut next = Vec::new();
            refs(def, &mut next);
            wanted.extend(next);
            let published = if custom_defs.contains_key(&name) {
                rewrite(def, reference, true)
            } else {
                served(self.minor(), &name, def, reference, true)
            };
            schemas.insert(name, published);
        }
        let mut paths = Map::new();
        for r in resources
            .iter()
            .filter(|r| r.group == group && r.version == version)
        {
            paths.extend(paths_for(r, reference, true));
        }
        json!({"openapi": "3.0.0", "info": self.info(), "paths": paths, "components": {"schemas": schemas}})
    }
}
