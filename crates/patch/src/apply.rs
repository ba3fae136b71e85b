//! Server-side apply: the structured merge of an applied configuration into the live object, the
//! field set it owns, pruning of fields the manager stopped applying, and conflict detection.

use serde_json::{Map, Value};

use crate::fieldpath::{FieldSet, PathElement, path_string};
use crate::managed_fields::{self, Entry};
use crate::{ApplyError, ApplyOptions, Conflict, FieldInfo, SchemaCursor, child, info, items};

/// How the elements of a list are identified, from the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListKind {
    /// Elements are maps identified by these key fields.
    Map(Vec<String>),
    /// Elements are identified by their value.
    Set,
    /// The list is one value, replaced and owned as a whole.
    Atomic,
}

/// The list semantics of a field: `x-kubernetes-list-type` first; without it a patch strategy
/// "merge" means a map list keyed by the merge key (a set without one), as Kubernetes converts
/// its OpenAPI; anything else is atomic.
pub(crate) fn list_kind(fi: &FieldInfo) -> ListKind {
    match fi.list_type.as_deref() {
        Some("map") => {
            let keys: Vec<String> = if fi.list_map_keys.is_empty() {
                fi.patch_merge_key.iter().cloned().collect()
            } else {
                fi.list_map_keys.clone()
            };
            if keys.is_empty() {
                ListKind::Atomic
            } else {
                ListKind::Map(keys)
            }
        }
        Some("set") => ListKind::Set,
        Some(_) => ListKind::Atomic,
        None => {
            let merges = fi
                .patch_strategy
                .as_deref()
                .is_some_and(|s| s.split(',').any(|p| p.trim() == "merge"));
            match (merges, &fi.patch_merge_key) {
                (true, Some(key)) => ListKind::Map(vec![key.clone()]),
                (true, None) => ListKind::Set,
                _ => ListKind::Atomic,
            }
        }
    }
}

/// The default of a key field missing from an element. The Kubernetes schemas default exactly one
/// list-map key: `protocol` of container, service and endpoint ports.
fn key_default(key: &str) -> Option<Value> {
    (key == "protocol").then(|| Value::String("TCP".to_owned()))
}

/// The path element of a list element, `None` when it cannot be identified.
pub(crate) fn element_pe(elem: &Value, kind: &ListKind) -> Option<PathElement> {
    match kind {
        ListKind::Map(keys) => {
            let obj = elem.as_object()?;
            let mut fields = Vec::with_capacity(keys.len());
            for k in keys {
                let v = match obj.get(k) {
                    Some(v) if !v.is_null() => v.clone(),
                    _ => key_default(k)?,
                };
                fields.push((k.clone(), v));
            }
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Some(PathElement::Key(fields))
        }
        ListKind::Set => Some(PathElement::Value(elem.clone())),
        ListKind::Atomic => None,
    }
}

/// What a value is, for field ownership.
enum Shape<'a> {
    /// Owned as a whole: scalars, null, atomic lists and maps.
    Leaf,
    Object(&'a Map<String, Value>),
    List(&'a [Value], ListKind),
}

fn shape<'a>(v: &'a Value, fi: &FieldInfo) -> Shape<'a> {
    match v {
        Value::Object(m) if fi.map_type.as_deref() != Some("atomic") => Shape::Object(m),
        Value::Array(a) => match list_kind(fi) {
            ListKind::Atomic => Shape::Leaf,
            kind => Shape::List(a, kind),
        },
        _ => Shape::Leaf,
    }
}

/// The fields an applied configuration sets, as structured-merge-diff computes them: leaves,
/// list elements (with `.`), and fields whose value is null or an empty object.
pub(crate) fn to_field_set<S: SchemaCursor>(
    v: &Value,
    schema: Option<&S>,
) -> Result<FieldSet, String> {
    let mut out = FieldSet::default();
    walk_set(v, schema, &mut Vec::new(), &mut out)?;
    Ok(out)
}

fn walk_set<S: SchemaCursor>(
    v: &Value,
    schema: Option<&S>,
    path: &mut Vec<PathElement>,
    out: &mut FieldSet,
) -> Result<(), String> {
    match shape(v, &info(schema)) {
        Shape::Leaf => out.insert(path),
        Shape::Object(map) => {
            for (k, val) in map {
                path.push(PathElement::Field(k.clone()));
                let empty = val.is_null() || val.as_object().is_some_and(Map::is_empty);
                if empty {
                    out.insert(path);
                }
                walk_set(val, child(schema, k).as_ref(), path, out)?;
                path.pop();
            }
        }
        Shape::List(list, kind) => {
            let elem_schema = items(schema);
            let mut seen: Vec<PathElement> = Vec::with_capacity(list.len());
            for (i, elem) in list.iter().enumerate() {
                let Some(pe) = element_pe(elem, &kind) else {
                    let what = match &kind {
                        ListKind::Map(keys) => format!("the key fields {keys:?}"),
                        _ => "an identity".to_owned(),
                    };
                    return Err(format!(
                        "{}: element {i} lacks {what}",
                        display(&path_string(path))
                    ));
                };
                if seen.contains(&pe) {
                    return Err(format!(
                        "{}: duplicate entries for key {}",
                        display(&path_string(path)),
                        pe
                    ));
                }
                seen.push(pe.clone());
                path.push(pe);
                walk_set(elem, elem_schema.as_ref(), path, out)?;
                out.insert(path);
                path.pop();
            }
        }
    }
    Ok(())
}

fn display(path: &str) -> &str {
    if path.is_empty() { "." } else { path }
}

/// The difference between two versions of an object, as field sets.
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    pub(crate) added: FieldSet,
    pub(crate) modified: FieldSet,
    pub(crate) removed: FieldSet,
}

impl Comparison {
    /// Fields that now have a value they did not have before.
    pub(crate) fn changed(&self) -> FieldSet {
        self.added.union(&self.modified)
    }
}

/// Compares `old` with `new`: leaves are added, removed or modified; maps and list elements are
/// only added or removed.
pub(crate) fn compare<S: SchemaCursor>(
    old: Option<&Value>,
    new: Option<&Value>,
    schema: Option<&S>,
) -> Comparison {
    let mut out = Comparison::default();
    walk_compare(old, new, schema, &mut Vec::new(), &mut out);
    out
}

pub(crate) fn walk_compare<S: SchemaCursor>(
    old: Option<&Value>,
    new: Option<&Value>,
    schema: Option<&S>,
    path: &mut Vec<PathElement>,
    out: &mut Comparison,
) {
    let fi = info(schema);
    let (old_shape, new_shape) = (old.map(|v| shape(v, &fi)), new.map(|v| shape(v, &fi)));
    let same_kind = matches!(
        (&old_shape, &new_shape),
        (Some(Shape::Object(_)), Some(Shape::Object(_)))
            | (Some(Shape::List(_, _)), Some(Shape::List(_, _)))
            | (Some(Shape::Leaf), Some(Shape::Leaf))
            | (None, _)
            | (_, None)
    );
    let leaf = !same_kind
        || matches!(
            (&old_shape, &new_shape),
            (Some(Shape::Leaf), _) | (_, Some(Shape::Leaf))
        );
    if leaf {
        match (old, new) {
            (None, Some(_)) => out.added.insert(path),
            (Some(_), None) => out.removed.insert(path),
            (Some(a), Some(b)) if a != b => out.modified.insert(path),
            _ => {}
        }
        return;
    }
    let empty_map = Map::new();
    match (&old_shape, &new_shape) {
        (Some(Shape::Object(_)), _) | (_, Some(Shape::Object(_))) => {
            let o = match old_shape {
                Some(Shape::Object(m)) => m,
                _ => &empty_map,
            };
            let n = match new_shape {
                Some(Shape::Object(m)) => m,
                _ => &empty_map,
            };
            let keys = o.keys().chain(n.keys().filter(|k| !o.contains_key(*k)));
            for k in keys {
                path.push(PathElement::Field(k.clone()));
                walk_compare(o.get(k), n.get(k), child(schema, k).as_ref(), path, out);
                path.pop();
            }
        }
        _ => {
            let (o, n, kind) = match (old_shape, new_shape) {
                (Some(Shape::List(o, kind)), Some(Shape::List(n, _))) => (o, n, kind),
                (Some(Shape::List(o, kind)), _) => (o, &[][..], kind),
                (_, Some(Shape::List(n, kind))) => (&[][..], n, kind),
                _ => return,
            };
            let o = index_elements(o, &kind);
            let n = index_elements(n, &kind);
            let elem_schema = items(schema);
            let pes = o.iter().map(|(pe, _)| pe).chain(
                n.iter()
                    .map(|(pe, _)| pe)
                    .filter(|pe| !o.iter().any(|(p, _)| p == *pe)),
            );
            for pe in pes {
                let ov = o.iter().find(|(p, _)| p == pe).map(|(_, v)| *v);
                let nv = n.iter().find(|(p, _)| p == pe).map(|(_, v)| *v);
                path.push(pe.clone());
                walk_compare(ov, nv, elem_schema.as_ref(), path, out);
                path.pop();
            }
        }
    }
    match (old, new) {
        (None, Some(_)) => out.added.insert(path),
        (Some(_), None) => out.removed.insert(path),
        _ => {}
    }
}

/// The identifiable elements of a list with their path elements; on duplicates the first wins.
fn index_elements<'a>(list: &'a [Value], kind: &ListKind) -> Vec<(PathElement, &'a Value)> {
    let mut out: Vec<(PathElement, &Value)> = Vec::with_capacity(list.len());
    for elem in list {
        if let Some(pe) = element_pe(elem, kind)
            && !out.iter().any(|(p, _)| *p == pe)
        {
            out.push((pe, elem));
        }
    }
    out
}

/// Merges the applied value `new` into the live value `old`: maps merge, granular lists merge by
/// element identity, everything else is replaced. `None` means the field is removed (an applied
/// null).
pub(crate) fn merge_values<S: SchemaCursor>(
    old: Option<&Value>,
    new: &Value,
    schema: Option<&S>,
) -> Option<Value> {
    let fi = info(schema);
    match (shape(new, &fi), old) {
        (Shape::Leaf, _) if new.is_null() => None,
        (Shape::Object(n), old) => {
            let empty = Map::new();
            let o = match old {
                Some(Value::Object(o)) if fi.map_type.as_deref() != Some("atomic") => o,
                _ => &empty,
            };
            let mut out = Map::new();
            for (k, ov) in o {
                match n.get(k) {
                    Some(nv) => {
                        if let Some(v) = merge_values(Some(ov), nv, child(schema, k).as_ref()) {
                            out.insert(k.clone(), v);
                        }
                    }
                    None => {
                        out.insert(k.clone(), ov.clone());
                    }
                }
            }
            for (k, nv) in n {
                if !o.contains_key(k)
                    && let Some(v) = merge_values(None, nv, child(schema, k).as_ref())
                {
                    out.insert(k.clone(), v);
                }
            }
            Some(Value::Object(out))
        }
        (Shape::List(n, kind), Some(Value::Array(o))) => Some(Value::Array(merge_lists(
            o,
            n,
            &kind,
            items(schema).as_ref(),
        ))),
        (Shape::List(n, _), _) => {
            let elem_schema = items(schema);
            Some(Value::Array(
                n.iter()
                    .map(|e| merge_values(None, e, elem_schema.as_ref()).unwrap_or(Value::Null))
                    .collect(),
            ))
        }
        (Shape::Leaf, _) => Some(strip_nulls(new)),
    }
}

/// A copy of `v` without null object members.
fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

/// Merges an applied granular list into a live one. Live-only elements keep their places; shared
/// and new elements follow the applied order.
fn merge_lists<S: SchemaCursor>(
    old: &[Value],
    new: &[Value],
    kind: &ListKind,
    elem_schema: Option<&S>,
) -> Vec<Value> {
    let new_pes: Vec<Option<PathElement>> = new.iter().map(|e| element_pe(e, kind)).collect();
    let old_pes: Vec<Option<PathElement>> = old.iter().map(|e| element_pe(e, kind)).collect();
    let live_match = |pe: &Option<PathElement>| -> Option<&Value> {
        let pe = pe.as_ref()?;
        old_pes
            .iter()
            .position(|p| p.as_ref() == Some(pe))
            .and_then(|i| old.get(i))
    };
    let mut out = Vec::with_capacity(old.len().max(new.len()));
    let mut emitted = vec![false; new.len()];
    let mut cursor = 0;
    let mut emit_up_to = |upto: usize, out: &mut Vec<Value>| {
        while cursor <= upto && cursor < new.len() {
            if !emitted[cursor] {
                emitted[cursor] = true;
                let merged = merge_values(live_match(&new_pes[cursor]), &new[cursor], elem_schema);
                out.push(merged.unwrap_or(Value::Null));
            }
            cursor += 1;
        }
    };
    for (li, lv) in old.iter().enumerate() {
        let applied_at = old_pes[li]
            .as_ref()
            .and_then(|pe| new_pes.iter().position(|p| p.as_ref() == Some(pe)));
        match applied_at {
            Some(ri) => emit_up_to(ri, &mut out),
            None => out.push(lv.clone()),
        }
    }
    emit_up_to(new.len(), &mut out);
    out
}

/// Removes from `value` every field in `last` (what the applier owned before) that nobody owns
/// any more (`keep`). Fields present in the `applied` configuration are never removed themselves
/// (they may hold nothing ownable, like `finalizers: []`), only stale fields below them.
pub(crate) fn prune<S: SchemaCursor>(
    value: &mut Value,
    last: &FieldSet,
    keep: &FieldSet,
    applied: Option<&Value>,
    schema: Option<&S>,
) {
    let nothing = FieldSet::default();
    let fi = info(schema);
    match value {
        Value::Object(map) => {
            for (pe, last_child) in last.children() {
                let PathElement::Field(name) = pe else {
                    continue;
                };
                let applied_child = applied
                    .and_then(|a| a.as_object())
                    .and_then(|a| a.get(name));
                let keep_child = match (keep.child(pe), applied_child) {
                    (Some(k), _) => k,
                    (None, Some(_)) => &nothing,
                    (None, None) => {
                        map.shift_remove(name);
                        continue;
                    }
                };
                if let Some(v) = map.get_mut(name) {
                    let s = child(schema, name);
                    prune(v, last_child, keep_child, applied_child, s.as_ref());
                }
            }
        }
        Value::Array(list) => {
            let kind = list_kind(&fi);
            if kind == ListKind::Atomic {
                return;
            }
            let pes: Vec<Option<PathElement>> = list.iter().map(|e| element_pe(e, &kind)).collect();
            let applied_list: &[Value] = match applied {
                Some(Value::Array(a)) => a,
                _ => &[],
            };
            let elem_schema = items(schema);
            let mut drop = vec![false; list.len()];
            for (pe, last_child) in last.children() {
                let Some(i) = pes.iter().position(|p| p.as_ref() == Some(pe)) else {
                    continue;
                };
                let applied_child = applied_list
                    .iter()
                    .find(|e| element_pe(e, &kind).as_ref() == Some(pe));
                let keep_child = match (keep.child(pe), applied_child) {
                    (Some(k), _) => k,
                    (None, Some(_)) => &nothing,
                    (None, None) => {
                        drop[i] = true;
                        continue;
                    }
                };
                if let Some(v) = list.get_mut(i) {
                    prune(
                        v,
                        last_child,
                        keep_child,
                        applied_child,
                        elem_schema.as_ref(),
                    );
                }
            }
            let mut i = 0;
            list.retain(|_| {
                let keep = !drop.get(i).copied().unwrap_or(false);
                i += 1;
                keep
            });
        }
        _ => {}
    }
}

/// Server-side apply: merges `applied` (the user's partial intent) into `live` (`None` = create),
/// maintaining `metadata.managedFields` (FieldsV1), detecting conflicts with other managers (an
/// error unless `force`; with `force`, ownership moves to this manager), and removing fields this
/// manager owned before but no longer applies (unless another manager also owns them). Returns
/// the new full object.
pub fn server_side_apply<S: SchemaCursor>(
    live: Option<&Value>,
    applied: &Value,
    schema: Option<&S>,
    opts: &ApplyOptions,
) -> Result<Value, ApplyError> {
    if !applied.is_object() {
        return Err(ApplyError::Invalid(format!(
            "the applied configuration must be an object, found {}",
            crate::type_name(applied)
        )));
    }
    if applied
        .pointer("/metadata/managedFields")
        .is_some_and(|v| !v.is_null())
    {
        return Err(ApplyError::Invalid(
            "metadata.managedFields must be nil".to_owned(),
        ));
    }
    let mut applied_set = to_field_set(applied, schema).map_err(ApplyError::Invalid)?;
    managed_fields::ignore_untracked(&mut applied_set, opts.subresource);

    let live_clean = live.map(managed_fields::without_managed_fields);
    let mut entries = match live {
        Some(l) => managed_fields::decode(l).unwrap_or_default(),
        None => Vec::new(),
    };
    if let (Some(l), true) = (&live_clean, entries.is_empty()) {
        // An object nobody tracked yet: what it holds belongs to "before-first-apply".
        let set = managed_fields::update_set(None, l, schema, opts.subresource);
        if !set.is_empty() {
            entries.push(Entry {
                manager: "before-first-apply".to_owned(),
                operation: "Update".to_owned(),
                api_version: opts.api_version.to_owned(),
                time: Some(opts.time.to_owned()),
                subresource: None,
                set,
            });
        }
    }

    let mine = entries
        .iter()
        .position(|e| e.is(opts.manager, "Apply", opts.subresource));
    let last_set = mine.map(|i| entries[i].set.clone()).unwrap_or_default();

    let mut merged = merge_values(live_clean.as_ref(), applied, schema)
        .unwrap_or_else(|| Value::Object(Map::new()));

    if !last_set.is_empty() {
        let keep = entries
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != mine)
            .fold(applied_set.clone(), |acc, (_, e)| acc.union(&e.set));
        prune(&mut merged, &last_set, &keep, Some(applied), schema);
    }

    let cmp =
        managed_fields::compare_tracked(live_clean.as_ref(), &merged, schema, opts.subresource);
    let changed = cmp.changed();

    let mut conflicts = Vec::new();
    let mut taken: Vec<(usize, FieldSet)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if Some(i) == mine {
            continue;
        }
        let clash = e.set.intersection(&changed);
        if clash.is_empty() {
            continue;
        }
        for p in clash.paths() {
            conflicts.push(Conflict {
                manager: e.manager.clone(),
                api_version: e.api_version.clone(),
                field: path_string(&p),
                operation: e.operation.clone(),
                subresource: e.subresource.clone(),
            });
        }
        taken.push((i, clash));
    }
    if !opts.force && !conflicts.is_empty() {
        return Err(ApplyError::Conflict { conflicts });
    }
    for (i, clash) in taken {
        entries[i].set = entries[i].set.difference(&clash);
    }
    for (i, e) in entries.iter_mut().enumerate() {
        if Some(i) != mine {
            e.set = e.set.difference(&cmp.removed);
        }
    }

    let object_changed = live_clean.as_ref() != Some(&merged);
    match mine {
        Some(i) => {
            let e = &mut entries[i];
            if object_changed || e.set != applied_set {
                e.time = Some(opts.time.to_owned());
            }
            e.set = applied_set;
            e.api_version = opts.api_version.to_owned();
        }
        None => entries.push(Entry {
            manager: opts.manager.to_owned(),
            operation: "Apply".to_owned(),
            api_version: opts.api_version.to_owned(),
            time: Some(opts.time.to_owned()),
            subresource: opts.subresource.map(str::to_owned),
            set: applied_set,
        }),
    }
    managed_fields::write(&mut merged, entries);
    Ok(merged)
}
