//! The real Kubernetes OpenAPI definitions of releases 1.25–1.37, compiled in as data (see
//! `data/LICENSE-NOTICE` and `tools/gen.py`). From them: the `/openapi/v2` and `/openapi/v3`
//! documents kubectl reads (v2 also as gnostic protobuf, `gnostic.rs`), schema cursors that give
//! the patch algorithms their merge keys and list types, and strict field validation. Each
//! release is decompressed once per process and shared, however many simulated clusters claim
//! it; so are its definitions' protobuf encoding and the protobuf documents servers share.

mod documents;
pub mod gnostic;
mod validate;

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, OnceLock};

use rotor_patch::{FieldInfo, SchemaCursor};
use serde_json::{Map, Value};

pub use documents::{CustomSchema, EncodedDocument, ResourcePaths, V2_CACHE_ENTRIES};
pub use validate::{FieldProblem, prune_custom, validate_custom};

pub const SUPPORTED_MINORS: RangeInclusive<u32> = 25..=37;

const DATA: [&[u8]; 13] = [
    include_bytes!("../data/v1.25.json.gz"),
    include_bytes!("../data/v1.26.json.gz"),
    include_bytes!("../data/v1.27.json.gz"),
    include_bytes!("../data/v1.28.json.gz"),
    include_bytes!("../data/v1.29.json.gz"),
    include_bytes!("../data/v1.30.json.gz"),
    include_bytes!("../data/v1.31.json.gz"),
    include_bytes!("../data/v1.32.json.gz"),
    include_bytes!("../data/v1.33.json.gz"),
    include_bytes!("../data/v1.34.json.gz"),
    include_bytes!("../data/v1.35.json.gz"),
    include_bytes!("../data/v1.36.json.gz"),
    include_bytes!("../data/v1.37.json.gz"),
];

#[derive(Debug, thiserror::Error)]
pub enum OpenApiError {
    #[error("Kubernetes 1.{0} is not supported: rotor carries the schemas of 1.25 to 1.37")]
    Unsupported(u32),
    #[error("the embedded schemas of Kubernetes 1.{minor} are corrupt: {message}")]
    Corrupt { minor: u32, message: String },
}

/// The definitions of one Kubernetes release.
#[derive(Debug)]
pub struct Spec {
    minor: u32,
    definitions: Map<String, Value>,
    /// The same definitions, shareable: cursors hold their root without a lookup per step.
    shared: HashMap<String, Arc<Value>>,
    by_gvk: HashMap<(String, String, String), String>,
    /// The definitions as OpenAPI v2 protobuf entries, encoded on first use.
    v2_entries: OnceLock<documents::V2Entries>,
    /// Recently served protobuf v2 documents, most recent first, by input fingerprint.
    v2_cache: Mutex<VecDeque<(u64, EncodedDocument)>>,
}

/// The definitions of Kubernetes 1.`minor`, loaded on first use and shared.
pub fn spec(minor: u32) -> Result<Arc<Spec>, OpenApiError> {
    static CACHE: [OnceLock<Arc<Spec>>; 13] = [const { OnceLock::new() }; 13];
    if !SUPPORTED_MINORS.contains(&minor) {
        return Err(OpenApiError::Unsupported(minor));
    }
    let idx = (minor - SUPPORTED_MINORS.start()) as usize;
    if let Some(s) = CACHE[idx].get() {
        return Ok(s.clone());
    }
    let loaded = Arc::new(load(minor, DATA[idx])?);
    Ok(CACHE[idx].get_or_init(|| loaded).clone())
}

fn load(minor: u32, gz: &[u8]) -> Result<Spec, OpenApiError> {
    let corrupt = |message: String| OpenApiError::Corrupt { minor, message };
    let mut text = String::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_string(&mut text)
        .map_err(|e| corrupt(e.to_string()))?;
    let mut doc: Value = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
    let definitions = match doc.get_mut("definitions").map(Value::take) {
        Some(Value::Object(m)) => m,
        _ => return Err(corrupt("no definitions".into())),
    };
    let mut by_gvk = HashMap::new();
    for (name, schema) in &definitions {
        for gvk in schema
            .get("x-kubernetes-group-version-kind")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let s = |k: &str| {
                gvk.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            by_gvk.insert((s("group"), s("version"), s("kind")), name.clone());
        }
    }
    let shared = definitions
        .iter()
        .map(|(k, v)| (k.clone(), Arc::new(v.clone())))
        .collect();
    Ok(Spec {
        minor,
        definitions,
        shared,
        by_gvk,
        v2_entries: OnceLock::new(),
        v2_cache: Mutex::new(VecDeque::new()),
    })
}

impl Spec {
    pub fn minor(&self) -> u32 {
        self.minor
    }

    pub fn definitions(&self) -> &Map<String, Value> {
        &self.definitions
    }

    pub fn definition(&self, name: &str) -> Option<&Value> {
        self.definitions.get(name)
    }

    /// The definition serving a group/version/kind (`""` is the core group).
    pub fn definition_name(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        self.by_gvk
            .get(&(group.to_string(), version.to_string(), kind.to_string()))
            .map(String::as_str)
    }

    /// A cursor at the root of a definition.
    pub fn cursor(self: &Arc<Self>, definition: &str) -> Option<Cursor> {
        self.shared.get(definition).map(|root| Cursor {
            spec: self.clone(),
            root: Root::Definition(root.clone()),
            pointer: String::new(),
            info: Arc::default(),
        })
    }

    /// Strict field validation of an object against a definition.
    pub fn validate(self: &Arc<Self>, definition: &str, value: &Value) -> Vec<FieldProblem> {
        match self.cursor(definition) {
            Some(c) => validate::validate(&c, value),
            None => Vec::new(),
        }
    }
}

/// Which document a cursor walks: a release definition or a CRD's openAPIV3Schema.
#[derive(Clone, Debug)]
enum Root {
    Definition(Arc<Value>),
    Custom(Arc<Value>),
}

/// A position in a schema. Steps through `$ref`s; the list/map extensions of a field are read
/// where the field is declared (on the property), as Kubernetes places them.
#[derive(Clone, Debug)]
pub struct Cursor {
    spec: Arc<Spec>,
    root: Root,
    /// JSON pointer inside the root.
    pointer: String,
    info: Arc<FieldInfo>,
}

/// A cursor over a custom resource's schema (metadata resolves to the release's ObjectMeta).
pub type CustomCursor = Cursor;

fn escape(segment: &str) -> std::borrow::Cow<'_, str> {
    if segment.contains(['~', '/']) {
        segment.replace('~', "~0").replace('/', "~1").into()
    } else {
        segment.into()
    }
}

fn info_of(node: &Value) -> FieldInfo {
    let s = |k: &str| node.get(k).and_then(Value::as_str).map(String::from);
    FieldInfo {
        patch_strategy: s("x-kubernetes-patch-strategy"),
        patch_merge_key: s("x-kubernetes-patch-merge-key"),
        list_type: s("x-kubernetes-list-type"),
        list_map_keys: node
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|k| k.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        map_type: s("x-kubernetes-map-type"),
    }
}

/// `Value::pointer` for the object-only pointers cursors build, without unescaping (and
/// allocating) segments that need none: this is on the hot path of every write.
fn lookup<'a>(root: &'a Value, pointer: &str) -> Option<&'a Value> {
    let mut node = root;
    for segment in pointer.split('/').skip(1) {
        node = if segment.contains('~') {
            node.get(segment.replace("~1", "/").replace("~0", "~").as_str())?
        } else {
            node.get(segment)?
        };
    }
    Some(node)
}

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

impl Cursor {
    /// A cursor at the root of a CRD's openAPIV3Schema.
    pub fn new(spec: Arc<Spec>, schema: Arc<Value>) -> Self {
        Cursor {
            spec,
            root: Root::Custom(schema),
            pointer: String::new(),
            info: Arc::default(),
        }
    }

    fn root_value(&self) -> Option<&Value> {
        match &self.root {
            Root::Definition(v) | Root::Custom(v) => Some(v),
        }
    }

    /// The schema node here, without following `$ref`.
    pub fn raw(&self) -> Option<&Value> {
        lookup(self.root_value()?, &self.pointer)
    }

    /// The schema node here with `$ref`s (and single-ref `allOf`s) followed: (cursor, node).
    pub(crate) fn resolved(&self) -> Option<Cursor> {
        let mut cur = self.clone();
        for _ in 0..32 {
            let node = cur.raw()?;
            let reference = node.get("$ref").and_then(Value::as_str).or_else(|| {
                node.get("allOf")
                    .and_then(Value::as_array)
                    .filter(|a| a.len() == 1)
                    .and_then(|a| a[0].get("$ref"))
                    .and_then(Value::as_str)
            });
            match reference {
                Some(r) => {
                    let name = r.rsplit('/').next().unwrap_or_default();
                    let root = cur.spec.shared.get(name)?.clone();
                    cur = Cursor {
                        spec: cur.spec.clone(),
                        root: Root::Definition(root),
                        pointer: String::new(),
                        info: cur.info,
                    };
                }
                None => return Some(cur),
            }
        }
        None
    }

    /// The resolved schema node (after `$ref`s).
    pub fn node(&self) -> Option<Value> {
        self.resolved().and_then(|c| c.raw().cloned())
    }

    /// One level down from this (already resolved) position.
    fn step(&self, segments: &[&str]) -> Option<Cursor> {
        let mut pointer = String::with_capacity(self.pointer.len() + 32);
        pointer.push_str(&self.pointer);
        for s in segments {
            pointer.push('/');
            pointer.push_str(s);
        }
        let node = lookup(self.root_value()?, &pointer)?;
        let info = Arc::new(info_of(node));
        Some(Cursor {
            spec: self.spec.clone(),
            root: self.root.clone(),
            pointer,
            info,
        })
    }

    /// Does this object schema accept fields it does not list?
    pub fn preserves_unknown(&self) -> bool {
        self.resolved()
            .and_then(|c| {
                c.raw()
                    .and_then(|n| n.get("x-kubernetes-preserve-unknown-fields"))
                    .and_then(Value::as_bool)
            })
            .unwrap_or(false)
    }
}

impl SchemaCursor for Cursor {
    fn field(&self, name: &str) -> Option<Self> {
        // A custom resource's metadata is the release's ObjectMeta, whatever its schema says.
        if matches!(self.root, Root::Custom(_)) && self.pointer.is_empty() && name == "metadata" {
            return self.spec.cursor(OBJECT_META);
        }
        let base = self.resolved()?;
        let node = base.raw()?;
        if node.get("properties").and_then(|p| p.get(name)).is_some() {
            return base.step(&["properties", &escape(name)]);
        }
        if node
            .get("additionalProperties")
            .is_some_and(Value::is_object)
        {
            return base.step(&["additionalProperties"]);
        }
        None
    }

    fn items(&self) -> Option<Self> {
        let base = self.resolved()?;
        if base.raw()?.get("items").is_some_and(Value::is_object) {
            base.step(&["items"])
        } else {
            None
        }
    }

    fn info(&self) -> FieldInfo {
        (*self.info).clone()
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod gnostic_tests;

/// Test helper: every `$ref` in a document.
#[cfg(test)]
pub(crate) fn documents_test_refs(doc: &Value, out: &mut Vec<String>) {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    if k == "$ref" {
                        if let Some(s) = x.as_str() {
                            out.push(s.to_string());
                        }
                    } else {
                        walk(x, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(doc, out);
}
