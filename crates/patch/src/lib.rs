//! Kubernetes patch semantics over `serde_json::Value`, independent of any server: JSON merge
//! patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch as kubectl sends it, and
//! server-side apply with `managedFields`. List semantics come from a [`SchemaCursor`].

mod apply;
mod fieldpath;
mod managed_fields;
mod merge;
mod strategic;

#[cfg(test)]
mod tests;

pub use apply::server_side_apply;
pub use managed_fields::track_update;
pub use merge::{json_patch, merge_patch};
pub use strategic::strategic_merge_patch;

use serde_json::Value;

/// List/map semantics of one field, as the Kubernetes OpenAPI extensions state them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldInfo {
    /// `x-kubernetes-patch-strategy`: "merge", "replace", "retainKeys", "merge,retainKeys".
    pub patch_strategy: Option<String>,
    /// `x-kubernetes-patch-merge-key`.
    pub patch_merge_key: Option<String>,
    /// `x-kubernetes-list-type`: "atomic", "set", "map".
    pub list_type: Option<String>,
    /// `x-kubernetes-list-map-keys`.
    pub list_map_keys: Vec<String>,
    /// `x-kubernetes-map-type`: "granular", "atomic".
    pub map_type: Option<String>,
}

/// A position in a schema tree. The patch algorithms walk it alongside the JSON they merge.
pub trait SchemaCursor: Clone {
    /// The schema of property `name` of an object (or of the values of a map).
    fn field(&self, name: &str) -> Option<Self>;
    /// The schema of the elements of an array.
    fn items(&self) -> Option<Self>;
    /// The list/map semantics of the field at this position.
    fn info(&self) -> FieldInfo;
}

/// A cursor that knows nothing: every list is atomic, every map granular. Used for custom
/// resources without a structural schema.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSchema;

impl SchemaCursor for NoSchema {
    fn field(&self, _name: &str) -> Option<Self> {
        None
    }
    fn items(&self) -> Option<Self> {
        None
    }
    fn info(&self) -> FieldInfo {
        FieldInfo::default()
    }
}

/// Why a patch could not be applied. Every variant names the place in the document (a path such as
/// `.spec.template.spec.containers[0]`, `.` for the whole object) or the failing operation.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// A JSON patch (RFC 6902) document is not an array of valid operations.
    #[error("invalid JSON patch: {0}")]
    InvalidJsonPatch(String),
    /// A JSON patch operation could not be applied; the target is left unchanged.
    #[error("JSON patch operation {index} ({op} {path}) failed: {reason}")]
    JsonPatchFailed {
        /// Zero-based index of the operation in the patch array.
        index: usize,
        /// The operation name (`add`, `remove`, `test`, ...).
        op: String,
        /// The operation's JSON pointer.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A value has a JSON type the patch cannot work with at this place.
    #[error("{path}: expected {expected}, found {found}")]
    WrongType {
        /// Where, e.g. `.spec.containers`.
        path: String,
        /// The JSON type required here.
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// `$patch` has a value other than the ones allowed at this place.
    #[error("{path}: invalid $patch directive {directive}")]
    BadDirective {
        /// Where the directive appears.
        path: String,
        /// The directive's value, as JSON.
        directive: String,
    },
    /// A list element of a merging list lacks its merge key.
    #[error("{path}: list element {element} has no merge key {key:?}")]
    MissingMergeKey {
        /// The list element's position.
        path: String,
        /// The merge key the schema requires.
        key: String,
        /// The element, as JSON.
        element: String,
    },
    /// A directive (`$retainKeys`, `$setElementOrder/...`, `$deleteFromPrimitiveList/...`) or a
    /// merging list is malformed.
    #[error("{path}: {message}")]
    Invalid {
        /// Where.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Who is writing, and how, for [`server_side_apply`] and [`track_update`].
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions<'a> {
    /// The field manager (`fieldManager` query parameter, or the client's default).
    pub manager: &'a str,
    /// `force=true`: take ownership of conflicting fields instead of failing.
    pub force: bool,
    /// The API version of the request, e.g. `apps/v1`.
    pub api_version: &'a str,
    /// The time of the write, RFC 3339 (`2024-05-01T12:00:00Z`).
    pub time: &'a str,
    /// The subresource written (`Some("status")`), `None` for the main resource.
    pub subresource: Option<&'a str>,
}

/// One field that an apply would change although another manager owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The manager that owns the field.
    pub manager: String,
    /// The API version of that manager's entry.
    pub api_version: String,
    /// The field, in structured-merge-diff notation: `.spec.replicas`,
    /// `.spec.containers[name="nginx"].image`.
    pub field: String,
    /// The owning entry's operation, `Apply` or `Update` (Kubernetes prints the API version only
    /// for `Update` owners).
    pub operation: String,
    /// The owning entry's subresource, if any.
    pub subresource: Option<String>,
}

impl Conflict {
    /// The owner as Kubernetes prints it: `"kubectl-edit" using apps/v1`, `"ctrl"`,
    /// `"ctrl" with subresource "status" using v1`.
    pub fn owner(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            out.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == "Update" {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }

    /// The `message` of this conflict's `StatusCause` (type `FieldManagerConflict`, field
    /// [`Conflict::field`]): `conflict with "kubectl-edit" using apps/v1`.
    pub fn cause_message(&self) -> String {
        format!("conflict with {}", self.owner())
    }
}

/// Why a server-side apply failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Fields owned by other managers would change; the request is answered with 409.
    #[error("{}", conflict_message(conflicts))]
    Conflict {
        /// The conflicting fields, grouped by owner.
        conflicts: Vec<Conflict>,
    },
    /// The applied configuration is not acceptable (answered with 400 or 422).
    #[error("{0}")]
    Invalid(String),
}

/// The message Kubernetes puts in the 409 Status of a failed apply.
fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: {}: {}",
            only.cause_message(),
            only.field
        );
    }
    let mut owners: Vec<String> = conflicts.iter().map(Conflict::owner).collect();
    owners.sort();
    owners.dedup();
    let mut lines = Vec::new();
    for owner in &owners {
        lines.push(format!("conflicts with {owner}:"));
        for c in conflicts.iter().filter(|c| &c.owner() == owner) {
            lines.push(format!("- {}", c.field));
        }
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// The cursor for property `name` below `schema`, if the schema knows it.
fn child<S: SchemaCursor>(schema: Option<&S>, name: &str) -> Option<S> {
    schema.and_then(|s| s.field(name))
}

/// The cursor for the elements of the list at `schema`.
fn items<S: SchemaCursor>(schema: Option<&S>) -> Option<S> {
    schema.and_then(|s| s.items())
}

/// The field info at `schema`, empty when unknown.
fn info<S: SchemaCursor>(schema: Option<&S>) -> FieldInfo {
    schema.map(|s| s.info()).unwrap_or_default()
}

/// The JSON type name of `v`, for error messages.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `.`-separated display path of a field below `parent` (`""` is the root).
fn join_field(parent: &str, name: &str) -> String {
    format!("{parent}.{name}")
}

/// Display path of list element `index` below `parent`.
fn join_index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// Display form of a path, `.` for the root.
fn display_path(path: &str) -> String {
    if path.is_empty() {
        ".".to_owned()
    } else {
        path.to_owned()
    }
}
