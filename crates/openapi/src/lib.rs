//! The real Kubernetes OpenAPI definitions of releases 1.25–1.37, compiled in as data (see
//! `data/LICENSE-NOTICE` and `tools/gen.py`). From them: the `/openapi/v2` and `/openapi/v3`
//! documents kubectl reads (v2 also as gnostic protobuf, `gnostic.rs`), schema cursors that give
//! the patch algorithms their merge keys and list types, and strict field validation. Each
//! release is decompressed once per process and shared, however many simulated clusters claim
//! it; so are its definitions' protobuf encoding and the protobuf documents servers share.

pub mod builtin_defaults;
mod cel;
mod cel_libs;
mod default;
mod descriptions;
mod documents;
mod formats;
pub mod gnostic;
mod structural;
mod validate;

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, OnceLock};

use rotor_patch::{FieldInfo, SchemaCursor};
use serde_json::{Map, Value};

pub use cel::crd_rule_errors;
pub use default::{default_custom, has_defaults};
pub use documents::{CustomSchema, EncodedDocument, ResourcePaths, V2_CACHE_ENTRIES};
pub use validate::{FieldProblem, GoTypeError, ProblemKind, prune_custom, validate_custom};

pub const SUPPORTED_MINORS: RangeInclusive<u32> = 25..=37;

/// The form of the served documents, part of their hashes and ETags: clients (kubectl) cache a
/// document by its hash for good, so a change of what is served for the same resources (2:
/// upstream's descriptions, IntOrString as `oneOf`) must change the hash. Bump it with any such
/// change.
pub const DOCUMENTS_FORM: u32 = 2;

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
    by_gvk: HashMap<(String, String, String), String>,
    /// The definitions as OpenAPI v2 protobuf entries, encoded on first use.
    v2_entries: OnceLock<documents::V2Entries>,
    /// Recently served protobuf v2 documents, most recent first, by input fingerprint.
    v2_cache: Mutex<VecDeque<(u64, EncodedDocument)>>,
}

/// Every loaded release, kept for the life of the process: cursors borrow its definitions
/// (`&'static`) instead of counting references or re-walking a pointer on every step.
static CACHE: [OnceLock<Arc<Spec>>; 13] = [const { OnceLock::new() }; 13];

/// The definitions of Kubernetes 1.`minor`, loaded on first use and shared.
pub fn spec(minor: u32) -> Result<Arc<Spec>, OpenApiError> {
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

/// The process-lifetime copy of a release already loaded. Every `Spec` there is comes from
/// [`spec`] (loading is private), so any `&Spec` in hand is this one.
fn loaded(spec: &Spec) -> &'static Spec {
    let idx = (spec.minor - SUPPORTED_MINORS.start()) as usize;
    match CACHE[idx].get() {
        Some(s) if std::ptr::eq(&**s, spec) => s,
        _ => unreachable!("a Spec exists only in the cache"),
    }
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
    Ok(Spec {
        minor,
        definitions,
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
    pub fn cursor(&self, definition: &str) -> Option<Cursor> {
        let spec = loaded(self);
        spec.definitions.get(definition).map(|root| Cursor {
            spec,
            place: Place::Definition(root),
            info: None,
        })
    }

    /// Strict field validation of an object against a definition.
    pub fn validate(&self, definition: &str, value: &Value) -> Vec<FieldProblem> {
        match self.cursor(definition) {
            Some(c) => {
                let name = loaded(self).definitions.get_key_value(definition);
                let owner = name.and_then(|(k, _)| k.rsplit('.').next());
                validate::validate(&c, owner.unwrap_or_default(), value)
            }
            None => Vec::new(),
        }
    }
}

/// Where a cursor is: inside the release's definitions (borrowed for the process's life), or
/// inside a CRD's openAPIV3Schema, kept alive by the cursor and addressed by a JSON pointer.
#[derive(Clone, Debug)]
enum Place {
    Definition(&'static Value),
    Custom { root: Arc<Value>, pointer: String },
}

/// A position in a schema. Steps through `$ref`s; the list/map extensions of a field are read
/// where the field is declared (on the property), as Kubernetes places them. Stepping through
/// the release's definitions allocates nothing unless the field carries list/map extensions:
/// cursors are on the path of every write (validation, managedFields, patches).
#[derive(Clone, Debug)]
pub struct Cursor {
    spec: &'static Spec,
    place: Place,
    /// `None`: no list/map extensions (the common case, kept without an allocation).
    info: Option<Arc<FieldInfo>>,
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

/// `node[key]` for schema nodes. They have a handful of keys, so a scan beats hashing the key;
/// large maps (`properties`, `definitions`) are hashed as usual.
fn get<'a>(node: &'a Value, key: &str) -> Option<&'a Value> {
    let map = node.as_object()?;
    if map.len() <= 16 {
        map.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    } else {
        map.get(key)
    }
}

/// The list/map extensions declared on `node`; `None` when it has none.
fn info_of(node: &Value) -> Option<Arc<FieldInfo>> {
    let map = node.as_object()?;
    let mut info = FieldInfo::default();
    let mut any = false;
    for (k, v) in map {
        let Some(ext) = k.strip_prefix("x-kubernetes-") else {
            continue;
        };
        let text = || v.as_str().map(String::from);
        match ext {
            "patch-strategy" => info.patch_strategy = text(),
            "patch-merge-key" => info.patch_merge_key = text(),
            "list-type" => info.list_type = text(),
            "list-map-keys" => {
                info.list_map_keys = v
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|k| k.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default()
            }
            "map-type" => info.map_type = text(),
            _ => continue,
        }
        any = true;
    }
    any.then(|| Arc::new(info))
}

/// `Value::pointer` for the object-only pointers cursors build, without unescaping (and
/// allocating) segments that need none.
fn lookup<'a>(root: &'a Value, pointer: &str) -> Option<&'a Value> {
    let mut node = root;
    for segment in pointer.split('/').skip(1) {
        node = if segment.contains('~') {
            get(node, &segment.replace("~1", "/").replace("~0", "~"))?
        } else {
            get(node, segment)?
        };
    }
    Some(node)
}

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

impl Cursor {
    /// A cursor at the root of a CRD's openAPIV3Schema.
    pub fn new(spec: Arc<Spec>, schema: Arc<Value>) -> Self {
        Cursor {
            spec: loaded(&spec),
            place: Place::Custom {
                root: schema,
                pointer: String::new(),
            },
            info: None,
        }
    }

    /// The schema node here, without following `$ref`.
    pub fn raw(&self) -> Option<&Value> {
        match &self.place {
            Place::Definition(node) => Some(node),
            Place::Custom { root, pointer } => lookup(root, pointer),
        }
    }

    /// The schema node here when it is one of the release's definitions (they live for the
    /// process), without following `$ref`.
    pub(crate) fn definition_node(&self) -> Option<&'static Value> {
        match &self.place {
            Place::Definition(node) => Some(node),
            Place::Custom { .. } => None,
        }
    }

    /// The schema node here with `$ref`s (and single-ref `allOf`s) followed: (cursor, node).
    pub(crate) fn resolved(&self) -> Option<Cursor> {
        let mut node = self.raw()?;
        let mut target = None;
        for _ in 0..32 {
            let reference = get(node, "$ref").and_then(Value::as_str).or_else(|| {
                get(node, "allOf")
                    .and_then(Value::as_array)
                    .filter(|a| a.len() == 1)
                    .and_then(|a| get(&a[0], "$ref"))
                    .and_then(Value::as_str)
            });
            match reference {
                Some(r) => {
                    let name = r.rsplit('/').next().unwrap_or_default();
                    let def = self.spec.definitions.get(name)?;
                    target = Some(def);
                    node = def;
                }
                None => {
                    return Some(match target {
                        None => self.clone(),
                        Some(def) => Cursor {
                            spec: self.spec,
                            place: Place::Definition(def),
                            info: self.info.clone(),
                        },
                    });
                }
            }
        }
        None
    }

    /// The resolved schema node (after `$ref`s).
    pub fn node(&self) -> Option<Value> {
        self.resolved().and_then(|c| c.raw().cloned())
    }

    /// One level down from this (already resolved) position: to the child `find` picks from
    /// this node, which sits under it at `segments`.
    fn step(
        &self,
        find: impl for<'a> Fn(&'a Value) -> Option<&'a Value>,
        segments: &[&str],
    ) -> Option<Cursor> {
        let (place, child) = match &self.place {
            Place::Definition(node) => {
                let child: &'static Value = find(node)?;
                (Place::Definition(child), child)
            }
            Place::Custom { root, pointer } => {
                let child = find(lookup(root, pointer)?)?;
                let mut p = String::with_capacity(pointer.len() + 32);
                p.push_str(pointer);
                for s in segments {
                    p.push('/');
                    p.push_str(&escape(s));
                }
                let place = Place::Custom {
                    root: root.clone(),
                    pointer: p,
                };
                return Some(Cursor {
                    spec: self.spec,
                    info: info_of(child),
                    place,
                });
            }
        };
        Some(Cursor {
            spec: self.spec,
            info: info_of(child),
            place,
        })
    }

    fn at_custom_root(&self) -> bool {
        matches!(&self.place, Place::Custom { pointer, .. } if pointer.is_empty())
    }

    /// Does this object schema accept fields it does not list?
    pub fn preserves_unknown(&self) -> bool {
        self.resolved()
            .and_then(|c| {
                c.raw()
                    .and_then(|n| get(n, "x-kubernetes-preserve-unknown-fields"))
                    .and_then(Value::as_bool)
            })
            .unwrap_or(false)
    }

    /// `field` on a cursor already resolved (validation resolves each node once).
    pub(crate) fn field_resolved(&self, name: &str) -> Option<Cursor> {
        self.step(
            |n| get(n, "properties").and_then(|p| p.get(name)),
            &["properties", name],
        )
        .or_else(|| {
            self.step(
                |n| get(n, "additionalProperties").filter(|v| v.is_object()),
                &["additionalProperties"],
            )
        })
    }

    /// `items` on a cursor already resolved.
    pub(crate) fn items_resolved(&self) -> Option<Cursor> {
        self.step(|n| get(n, "items").filter(|v| v.is_object()), &["items"])
    }
}

impl SchemaCursor for Cursor {
    fn field(&self, name: &str) -> Option<Self> {
        // A custom resource's metadata is the release's ObjectMeta, whatever its schema says.
        if name == "metadata" && self.at_custom_root() {
            return self.spec.cursor(OBJECT_META);
        }
        self.resolved()?.field_resolved(name)
    }

    fn items(&self) -> Option<Self> {
        self.resolved()?.items_resolved()
    }

    fn info(&self) -> FieldInfo {
        self.info.as_deref().cloned().unwrap_or_default()
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
