//! Strategic merge patch as the API server applies it to what kubectl (client-side apply, edit,
//! `patch --type=strategic`) sends: lists merge by the field's patch merge key when its patch
//! strategy says "merge", and the `$patch`, `$retainKeys`, `$setElementOrder/<field>` and
//! `$deleteFromPrimitiveList/<field>` directives are interpreted, never stored.

use serde_json::{Map, Value};

use crate::{PatchError, SchemaCursor, child, display_path, info, items, join_field, join_index};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_PRIMITIVE: &str = "$deleteFromPrimitiveList/";

/// Strategic merge patch exactly as kubectl (client-side apply, edit, patch --type=strategic)
/// sends it. `patch` must be an object. With no schema (or for fields the schema does not know),
/// lists are replaced and maps merged, which is JSON merge patch.
pub fn strategic_merge_patch<S: SchemaCursor>(
    original: &Value,
    patch: &Value,
    schema: Option<&S>,
) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(wrong_type("", "object", patch));
    };
    let original = match original {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    merge_map(original, patch, schema, "").map(Value::Object)
}

fn wrong_type(path: &str, expected: &'static str, found: &Value) -> PatchError {
    PatchError::WrongType {
        path: display_path(path),
        expected,
        found: crate::type_name(found),
    }
}

fn invalid(path: &str, message: impl Into<String>) -> PatchError {
    PatchError::Invalid {
        path: display_path(path),
        message: message.into(),
    }
}

/// The patch strategy of a field, split as Kubernetes does: "merge,retainKeys" merges.
fn strategy_merges(strategy: Option<&str>) -> bool {
    strategy.is_some_and(|s| s.split(',').any(|p| p.trim() == "merge"))
}

fn strategy_replaces(strategy: Option<&str>) -> bool {
    strategy.is_some_and(|s| s.split(',').any(|p| p.trim() == "replace"))
}

/// Merges the patch map `patch` into `original` (at `path`, described by `schema`).
fn merge_map<S: SchemaCursor>(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    schema: Option<&S>,
    path: &str,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(directive) = patch.get(PATCH) {
        return match directive.as_str() {
            Some("replace") => {
                let rest: Map<String, Value> = patch
                    .iter()
                    .filter(|(k, _)| k.as_str() != PATCH)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                merge_map(Map::new(), &rest, schema, path)
            }
            // As in Kubernetes, deleting a map through its directive leaves an empty map.
            Some("delete") => Ok(Map::new()),
            _ => Err(PatchError::BadDirective {
                path: display_path(path),
                directive: directive.to_string(),
            }),
        };
    }

    if let Some(retain) = patch.get(RETAIN_KEYS) {
        apply_retain_keys(&mut original, patch, retain, path)?;
    }

    // `$setElementOrder/<field>` merges its list first and fixes the order of the result.
    let mut ordered: Vec<&str> = Vec::new();
    for (key, order) in patch {
        let Some(field) = key.strip_prefix(SET_ORDER) else {
            continue;
        };
        if set_element_order(&mut original, patch, field, order, schema, path)? {
            ordered.push(field);
        }
    }

    for (key, value) in patch {
        if key == RETAIN_KEYS || key.starts_with(SET_ORDER) || ordered.contains(&key.as_str()) {
            continue;
        }
        if let Some(field) = key.strip_prefix(DELETE_PRIMITIVE) {
            let fpath = join_field(path, key);
            let Value::Array(to_delete) = value else {
                return Err(wrong_type(&fpath, "array", value));
            };
            if let Some(Value::Array(list)) = original.get_mut(field) {
                list.retain(|v| !to_delete.contains(v));
            }
            continue;
        }
        if value.is_null() {
            original.remove(key);
            continue;
        }
        let fpath = join_field(path, key);
        let fschema = child(schema, key);
        let fschema = fschema.as_ref();
        let merged = match (original.get_mut(key).map(std::mem::take), value) {
            (Some(Value::Object(orig)), Value::Object(p)) => {
                let strategy = info(fschema).patch_strategy;
                let base = if strategy_replaces(strategy.as_deref()) {
                    Map::new()
                } else {
                    orig
                };
                Value::Object(merge_map(base, p, fschema, &fpath)?)
            }
            (Some(Value::Array(orig)), Value::Array(p)) => {
                Value::Array(merge_list(orig, p, fschema, &fpath)?)
            }
            (_, Value::Object(p)) => Value::Object(merge_map(Map::new(), p, fschema, &fpath)?),
            (_, Value::Array(p)) => Value::Array(merge_list(Vec::new(), p, fschema, &fpath)?),
            (_, scalar) => scalar.clone(),
        };
        original.insert(key.clone(), merged);
    }
    Ok(original)
}

/// `$retainKeys`: keys of `original` not listed are cleared; every key the patch sets must be
/// listed.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    retain: &Value,
    path: &str,
) -> Result<(), PatchError> {
    let rpath = join_field(path, RETAIN_KEYS);
    let Value::Array(list) = retain else {
        return Err(wrong_type(&rpath, "array", retain));
    };
    let mut keys = Vec::with_capacity(list.len());
    for k in list {
        match k.as_str() {
            Some(k) => keys.push(k),
            None => return Err(wrong_type(&rpath, "array of strings", retain)),
        }
    }
    for (k, v) in patch {
        if v.is_null()
            || k == RETAIN_KEYS
            || k.starts_with(SET_ORDER)
            || k.starts_with(DELETE_PRIMITIVE)
        {
            continue;
        }
        if !keys.contains(&k.as_str()) {
            return Err(invalid(
                &rpath,
                format!("the patch sets {k:?} but $retainKeys does not list it"),
            ));
        }
    }
    original.retain(|k, _| keys.contains(&k.as_str()));
    Ok(())
}

/// Handles `$setElementOrder/<field>`: merges the patch list of `field` (if any) into the
/// original list and orders the result: elements named in the order list by that order,
/// interleaved with elements only the server has at their original places. Returns whether the
/// patch list of `field` was consumed.
fn set_element_order<S: SchemaCursor>(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    field: &str,
    order: &Value,
    schema: Option<&S>,
    path: &str,
) -> Result<bool, PatchError> {
    let fpath = join_field(path, field);
    let Value::Array(order) = order else {
        return Err(wrong_type(
            &join_field(path, &format!("{SET_ORDER}{field}")),
            "array",
            order,
        ));
    };
    let patch_list = match patch.get(field) {
        None => None,
        // A null deletes the list; the order is moot.
        Some(Value::Null) => return Ok(false),
        Some(Value::Array(list)) => Some(list),
        Some(other) => return Err(wrong_type(&fpath, "array", other)),
    };
    let orig_list = match original.get(field) {
        Some(Value::Array(list)) => Some(list.clone()),
        _ => None,
    };
    let fschema = child(schema, field);
    let fschema = fschema.as_ref();
    let finfo = info(fschema);
    let merge_key = if strategy_merges(finfo.patch_strategy.as_deref()) {
        finfo.patch_merge_key.clone()
    } else {
        None
    };
    if let Some(list) = patch_list {
        validate_order(list, order, merge_key.as_deref(), &fpath)?;
    }
    let server_order = orig_list.clone().unwrap_or_default();
    let merged = match (orig_list, patch_list) {
        (Some(orig), None) => orig,
        (orig, Some(list)) => merge_list(orig.unwrap_or_default(), list, fschema, &fpath)?,
        (None, None) => return Ok(false),
    };
    let key = ElementKey::new(merge_key.as_deref());
    let (mut named, server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|v| key.position(order, v).is_some());
    named.sort_by_key(|v| key.position(order, v));
    let both = interleave(named, server_only, &server_order, &key);
    original.insert(field.to_owned(), Value::Array(both));
    Ok(patch_list.is_some())
}

/// Checks that the non-directive elements of the patch list appear in the order list, in the same
/// relative order.
fn validate_order(
    list: &[Value],
    order: &[Value],
    merge_key: Option<&str>,
    path: &str,
) -> Result<(), PatchError> {
    let key = ElementKey::new(merge_key);
    let mut at = 0;
    for (i, item) in list.iter().enumerate() {
        if merge_key.is_none() && item.is_object() {
            // Not a merging list of maps: nothing to check the order against.
            return Ok(());
        }
        if item.get(PATCH).is_some() && merge_key.is_some() {
            continue;
        }
        let Some(k) = key.of(item) else {
            return Err(PatchError::MissingMergeKey {
                path: join_index(path, i),
                key: merge_key.unwrap_or_default().to_owned(),
                element: item.to_string(),
            });
        };
        match order[at..].iter().position(|o| key.of(o) == Some(k)) {
            Some(found) => at += found + 1,
            None => {
                return Err(invalid(
                    path,
                    format!("the order of the patch list does not match its {SET_ORDER} list"),
                ));
            }
        }
    }
    Ok(())
}

/// How elements of a merging list are identified: by merge key for maps, by value otherwise.
struct ElementKey<'a> {
    merge_key: Option<&'a str>,
}

impl<'a> ElementKey<'a> {
    fn new(merge_key: Option<&'a str>) -> Self {
        ElementKey { merge_key }
    }

    fn of<'v>(&self, v: &'v Value) -> Option<&'v Value> {
        match self.merge_key {
            Some(k) => v.as_object().and_then(|m| m.get(k)),
            None => Some(v),
        }
    }

    fn position(&self, list: &[Value], v: &Value) -> Option<usize> {
        let k = self.of(v)?;
        list.iter().position(|e| self.of(e) == Some(k))
    }
}

/// Merges the sorted `patch_items` into the sorted `server_only` items: a patch item goes before a
/// server item only if both appear in `server_order` and it came first there.
fn interleave(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    server_order: &[Value],
    key: &ElementKey<'_>,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut left = patch_items.into_iter().peekable();
    let mut right = server_only.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => {
                match (key.position(server_order, l), key.position(server_order, r)) {
                    (Some(li), Some(ri)) => li < ri,
                    _ => false,
                }
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

/// Merges the patch list `patch` into `original` according to the field's patch strategy.
fn merge_list<S: SchemaCursor>(
    original: Vec<Value>,
    patch: &[Value],
    schema: Option<&S>,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    let finfo = info(schema);
    let elem_schema = items(schema);
    let elem_schema = elem_schema.as_ref();
    if !strategy_merges(finfo.patch_strategy.as_deref()) {
        return patch
            .iter()
            .enumerate()
            .map(|(i, v)| strip(v, elem_schema, &join_index(path, i)))
            .collect();
    }
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let mut objects = 0;
    for (i, v) in original.iter().chain(patch).enumerate() {
        match v {
            Value::Object(_) => objects += 1,
            Value::Array(_) => {
                return Err(invalid(
                    &join_index(path, i),
                    "lists of lists cannot be merged",
                ));
            }
            _ => {}
        }
    }
    if objects == 0 {
        return Ok(merge_primitives(original, patch));
    }
    if objects != original.len() + patch.len() {
        return Err(invalid(path, "list elements are not all objects"));
    }
    let Some(merge_key) = finfo.patch_merge_key.as_deref() else {
        return Err(invalid(
            path,
            "the field's patch strategy is merge but it has no merge key",
        ));
    };
    merge_object_list(original, patch, merge_key, elem_schema, path)
}

/// Merging lists of primitives: the union, patch elements ordered as in the patch.
fn merge_primitives(original: Vec<Value>, patch: &[Value]) -> Vec<Value> {
    let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
    for v in original.iter().chain(patch) {
        if !merged.contains(v) {
            merged.push(v.clone());
        }
    }
    let key = ElementKey::new(None);
    let (mut named, server_only): (Vec<Value>, Vec<Value>) =
        merged.into_iter().partition(|v| patch.contains(v));
    named.sort_by_key(|v| key.position(patch, v));
    interleave(named, server_only, &original, &key)
}

fn merge_object_list<S: SchemaCursor>(
    mut original: Vec<Value>,
    patch: &[Value],
    merge_key: &str,
    elem_schema: Option<&S>,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    let key = ElementKey::new(Some(merge_key));
    let mut plain: Vec<(usize, &Map<String, Value>)> = Vec::new();
    let mut replace = false;
    for (i, v) in patch.iter().enumerate() {
        let Value::Object(item) = v else { continue };
        let Some(directive) = item.get(PATCH) else {
            plain.push((i, item));
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let Some(k) = item.get(merge_key) else {
                    return Err(PatchError::MissingMergeKey {
                        path: join_index(path, i),
                        key: merge_key.to_owned(),
                        element: v.to_string(),
                    });
                };
                original.retain(|e| key.of(e) != Some(k));
            }
            Some("replace") => replace = true,
            _ => {
                return Err(PatchError::BadDirective {
                    path: join_index(path, i),
                    directive: directive.to_string(),
                });
            }
        }
    }
    if replace {
        return plain
            .iter()
            .map(|(i, item)| {
                merge_map(Map::new(), item, elem_schema, &join_index(path, *i)).map(Value::Object)
            })
            .collect();
    }
    let server_order = original.clone();
    let mut merged = original;
    for (i, item) in &plain {
        let ipath = join_index(path, *i);
        let Some(k) = item.get(merge_key) else {
            return Err(PatchError::MissingMergeKey {
                path: ipath,
                key: merge_key.to_owned(),
                element: Value::Object((*item).clone()).to_string(),
            });
        };
        match merged.iter_mut().find(|e| key.of(e) == Some(k)) {
            Some(Value::Object(existing)) => {
                let base = std::mem::take(existing);
                *existing = merge_map(base, item, elem_schema, &ipath)?;
            }
            _ => merged.push(Value::Object(merge_map(
                Map::new(),
                item,
                elem_schema,
                &ipath,
            )?)),
        }
    }
    let patch_items: Vec<Value> = plain
        .iter()
        .map(|(_, m)| Value::Object((*m).clone()))
        .collect();
    let (mut named, server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|v| key.position(&patch_items, v).is_some());
    named.sort_by_key(|v| key.position(&patch_items, v));
    Ok(interleave(named, server_only, &server_order, &key))
}

/// A patch value taken as is (new key, replaced list): directives are interpreted against an
/// empty original so that none is stored.
fn strip<S: SchemaCursor>(v: &Value, schema: Option<&S>, path: &str) -> Result<Value, PatchError> {
    match v {
        Value::Object(map) => merge_map(Map::new(), map, schema, path).map(Value::Object),
        Value::Array(list) => {
            let elem = items(schema);
            list.iter()
                .enumerate()
                .map(|(i, e)| strip(e, elem.as_ref(), &join_index(path, i)))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        other => Ok(other.clone()),
    }
}
