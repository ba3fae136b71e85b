//! `metadata.managedFields`: decoding and encoding the entries, the fields nobody owns, and field
//! tracking for non-apply writes.

use serde_json::{Map, Value};

use crate::apply::{Comparison, compare, walk_compare};
use crate::fieldpath::{FieldSet, PathElement};
use crate::{ApplyOptions, SchemaCursor};

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) manager: String,
    /// `Apply` or `Update`.
    pub(crate) operation: String,
    pub(crate) api_version: String,
    pub(crate) time: Option<String>,
    pub(crate) subresource: Option<String>,
    pub(crate) set: FieldSet,
}

impl Entry {
    /// Whether this is the entry of (`manager`, `operation`, `subresource`).
    pub(crate) fn is(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), Value::String(self.manager.clone()));
        m.insert("operation".into(), Value::String(self.operation.clone()));
        m.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        if let Some(t) = &self.time {
            m.insert("time".into(), Value::String(t.clone()));
        }
        m.insert("fieldsType".into(), Value::String("FieldsV1".into()));
        m.insert("fieldsV1".into(), self.set.to_fields_v1());
        if let Some(s) = &self.subresource {
            m.insert("subresource".into(), Value::String(s.clone()));
        }
        Value::Object(m)
    }

    fn from_json(v: &Value) -> Result<Entry, String> {
        let obj = v
            .as_object()
            .ok_or("managedFields entry is not an object")?;
        let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
        if let Some(t) = text("fieldsType")
            && t != "FieldsV1"
        {
            return Err(format!("unsupported fieldsType {t:?}"));
        }
        let set = match obj.get("fieldsV1") {
            Some(f) => FieldSet::from_fields_v1(f)?,
            None => FieldSet::default(),
        };
        Ok(Entry {
            manager: text("manager").unwrap_or_default(),
            operation: text("operation").ok_or("managedFields entry has no operation")?,
            api_version: text("apiVersion").unwrap_or_default(),
            time: text("time"),
            subresource: text("subresource").filter(|s| !s.is_empty()),
            set,
        })
    }
}

/// The entries of `obj.metadata.managedFields`; entries of the same (manager, operation,
/// subresource) are merged. An error when any entry is malformed: Kubernetes then starts over.
pub(crate) fn decode(obj: &Value) -> Result<Vec<Entry>, String> {
    let Some(list) = managed_fields(obj) else {
        return Ok(Vec::new());
    };
    let list = match list {
        Value::Null => return Ok(Vec::new()),
        Value::Array(list) => list,
        _ => return Err("metadata.managedFields is not a list".to_owned()),
    };
    let mut out: Vec<Entry> = Vec::with_capacity(list.len());
    for v in list {
        let e = Entry::from_json(v)?;
        match out
            .iter_mut()
            .find(|o| o.is(&e.manager, &e.operation, e.subresource.as_deref()))
        {
            Some(existing) => existing.set = existing.set.union(&e.set),
            None => out.push(e),
        }
    }
    Ok(out)
}

/// `obj.metadata.managedFields` (`Value::pointer` would allocate for every segment).
fn managed_fields(obj: &Value) -> Option<&Value> {
    obj.get("metadata")?.get("managedFields")
}

/// Writes `entries` to `obj.metadata.managedFields`, dropping empty ones, in Kubernetes' order
/// (operation, time, manager, API version, subresource). No entries: no `managedFields`.
pub(crate) fn write(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.set.is_empty());
    entries.sort_by(|a, b| {
        a.operation
            .cmp(&b.operation)
            .then_with(|| a.time.cmp(&b.time))
            .then_with(|| a.manager.cmp(&b.manager))
            .then_with(|| a.api_version.cmp(&b.api_version))
            .then_with(|| a.subresource.cmp(&b.subresource))
    });
    let Value::Object(root) = obj else { return };
    if entries.is_empty() {
        if let Some(Value::Object(meta)) = root.get_mut("metadata") {
            meta.shift_remove("managedFields");
        }
        return;
    }
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    if let Value::Object(meta) = meta {
        meta.insert(
            "managedFields".into(),
            Value::Array(entries.iter().map(Entry::to_json).collect()),
        );
    }
}

/// A copy of `obj` without `metadata.managedFields`.
pub(crate) fn without_managed_fields(obj: &Value) -> Value {
    let mut out = obj.clone();
    if let Some(Value::Object(meta)) = out.get_mut("metadata") {
        meta.shift_remove("managedFields");
    }
    out
}

/// Metadata fields the server sets or that identify the object: never owned.
const UNTRACKED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "clusterName",
];

/// Removes from `set` what field ownership never covers: apiVersion, kind, identifying and
/// server-set metadata, and `status` for the main resource (everything but `status` for the
/// status subresource).
pub(crate) fn ignore_untracked(set: &mut FieldSet, subresource: Option<&str>) {
    let status = PathElement::Field("status".to_owned());
    if subresource == Some("status") {
        set.retain_top(|pe| *pe == status);
        return;
    }
    set.retain_top(|pe| {
        !matches!(pe, PathElement::Field(f) if f == "apiVersion" || f == "kind" || f == "status")
    });
    if let Some(meta) = set.child_mut(&PathElement::Field("metadata".to_owned())) {
        meta.retain_top(
            |pe| !matches!(pe, PathElement::Field(f) if UNTRACKED_METADATA.contains(&f.as_str())),
        );
        meta.clear_member();
    }
    set.prune_empty();
}

pub(crate) fn ignore_comparison(cmp: &mut Comparison, subresource: Option<&str>) {
    ignore_untracked(&mut cmp.added, subresource);
    ignore_untracked(&mut cmp.modified, subresource);
    ignore_untracked(&mut cmp.removed, subresource);
}

/// `compare` followed by [`ignore_comparison`], without walking what ownership never covers
/// (apiVersion, kind, server-set metadata, the other half of main resource/status): on every
/// write, most of an object's metadata is such fields.
pub(crate) fn compare_tracked<S: SchemaCursor>(
    old: Option<&Value>,
    new: &Value,
    schema: Option<&S>,
    subresource: Option<&str>,
) -> Comparison {
    let empty = Map::new();
    let (o, n) = match (old, new) {
        (None, Value::Object(n)) => (&empty, n),
        (Some(Value::Object(o)), Value::Object(n)) => (o, n),
        // Not objects: the general walk, then the filter.
        _ => {
            let mut cmp = compare(old, Some(new), schema);
            ignore_comparison(&mut cmp, subresource);
            return cmp;
        }
    };
    let mut out = Comparison::default();
    let mut path = Vec::new();
    let keys = o.keys().chain(n.keys().filter(|k| !o.contains_key(*k)));
    for k in keys {
        let tracked = match subresource {
            Some("status") => k == "status",
            _ => !matches!(k.as_str(), "apiVersion" | "kind" | "status"),
        };
        if !tracked {
            continue;
        }
        let field = schema.and_then(|s| s.field(k));
        let meta_maps = match (o.get(k), n.get(k)) {
            (None | Some(Value::Object(_)), None | Some(Value::Object(_))) => {
                crate::info(field.as_ref()).map_type.as_deref() != Some("atomic")
            }
            _ => false,
        };
        path.push(PathElement::Field(k.clone()));
        if k == "metadata" && meta_maps {
            // metadata is a map either side (or missing): walk its tracked fields only. Its
            // own membership would be cleared by the filter.
            let mo = o.get(k).and_then(Value::as_object).unwrap_or(&empty);
            let mn = n.get(k).and_then(Value::as_object).unwrap_or(&empty);
            for mk in mo.keys().chain(mn.keys().filter(|x| !mo.contains_key(*x))) {
                if UNTRACKED_METADATA.contains(&mk.as_str()) {
                    continue;
                }
                path.push(PathElement::Field(mk.clone()));
                let sub = field.as_ref().and_then(|s| s.field(mk));
                walk_compare(mo.get(mk), mn.get(mk), sub.as_ref(), &mut path, &mut out);
                path.pop();
            }
        } else {
            walk_compare(o.get(k), n.get(k), field.as_ref(), &mut path, &mut out);
        }
        path.pop();
    }
    // What the walk skipped is gone already; this drops the rest (metadata's own membership,
    // emptied nodes), exactly as after a full comparison.
    ignore_comparison(&mut out, subresource);
    out
}

/// What a create starts from. Kubernetes compares with an empty object of the kind, in which the
/// struct fields `metadata` and `spec` are present, so they are never owned as a whole.
fn empty_like(new: &Value) -> Value {
    let mut out = Map::new();
    if let Value::Object(m) = new {
        for k in ["metadata", "spec"] {
            if m.get(k).is_some_and(Value::is_object) {
                out.insert(k.to_owned(), Value::Object(Map::new()));
            }
        }
    }
    Value::Object(out)
}

/// What a non-apply write from `old` (`None` = create, compared with [`empty_like`]) to `new`
/// changes, in the fields ownership covers.
fn compare_write<S: SchemaCursor>(
    old: Option<&Value>,
    new: &Value,
    schema: Option<&S>,
    subresource: Option<&str>,
) -> Comparison {
    match old {
        Some(o) => compare_tracked(Some(o), new, schema, subresource),
        None => compare_tracked(Some(&empty_like(new)), new, schema, subresource),
    }
}

/// The fields a non-apply write from `old` (`None` = create) to `new` sets, filtered.
pub(crate) fn update_set<S: SchemaCursor>(
    old: Option<&Value>,
    new: &Value,
    schema: Option<&S>,
    subresource: Option<&str>,
) -> FieldSet {
    compare_write(old, new, schema, subresource).changed()
}

/// Whether the request asks to reset managedFields: a list of one empty entry. An empty list
/// does not, as upstream: a client unaware of the field must not strip it by accident.
fn is_reset(new: &Value) -> bool {
    match managed_fields(new) {
        Some(Value::Array(list)) => match list.as_slice() {
            [Value::Object(only)] => only.is_empty(),
            _ => false,
        },
        _ => false,
    }
}

/// For non-apply writes (create/update/patch): records in `new.metadata.managedFields` that
/// `manager` (operation "Update") owns the fields it changed vs `old`, and removes those fields
/// from other managers' sets — so a later apply by another manager detects a conflict, as in
/// Kubernetes.
pub fn track_update<S: SchemaCursor>(
    old: Option<&Value>,
    new: &mut Value,
    schema: Option<&S>,
    opts: &ApplyOptions,
) {
    // The request's managedFields count when it sends valid ones (an explicit reset included);
    // otherwise those of the stored object.
    let mut entries = if is_reset(new) {
        Vec::new()
    } else {
        match decode(new) {
            Ok(list) if !list.is_empty() => list,
            _ => old.and_then(|o| decode(o).ok()).unwrap_or_default(),
        }
    };
    // Compared without managedFields: taken out of `new` in place (they are rewritten below).
    if let Some(Value::Object(meta)) = new.get_mut("metadata") {
        meta.shift_remove("managedFields");
    }
    // The comparison never walks managedFields, so `old` needs no copy without them.
    let cmp = compare_write(old, new, schema, opts.subresource);
    let changed = cmp.changed();

    let mine = entries
        .iter()
        .position(|e| e.is(opts.manager, "Update", opts.subresource));
    for e in entries.iter_mut() {
        e.set = e.set.difference(&cmp.removed);
    }
    for (i, e) in entries.iter_mut().enumerate() {
        if Some(i) != mine {
            e.set = e.set.difference(&changed);
        }
    }
    if !changed.is_empty() {
        match mine {
            Some(i) => {
                let e = &mut entries[i];
                e.set = e.set.union(&changed);
                e.time = Some(opts.time.to_owned());
                e.api_version = opts.api_version.to_owned();
            }
            None => entries.push(Entry {
                manager: opts.manager.to_owned(),
                operation: "Update".to_owned(),
                api_version: opts.api_version.to_owned(),
                time: Some(opts.time.to_owned()),
                subresource: opts.subresource.map(str::to_owned),
                set: changed,
            }),
        }
    }
    write(new, entries);
}
