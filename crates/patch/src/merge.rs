//! JSON merge patch (RFC 7386) and JSON patch (RFC 6902), through the `json-patch` crate.

use serde_json::Value;

use crate::PatchError;

/// RFC 7386: objects merge recursively, `null` removes a key, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// RFC 6902; `ops` is the JSON array of operations. On error `target` is unchanged.
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), PatchError> {
    let Value::Array(list) = ops else {
        return Err(PatchError::InvalidJsonPatch(format!(
            "expected an array of operations, found {}",
            crate::type_name(ops)
        )));
    };
    let mut parsed = Vec::with_capacity(list.len());
    for (index, op) in list.iter().enumerate() {
        let operation: json_patch::PatchOperation = serde_json::from_value(op.clone())
            .map_err(|e| PatchError::InvalidJsonPatch(format!("operation {index}: {e}")))?;
        parsed.push(operation);
    }
    // Work on a copy: the target stays untouched on error without relying on the crate's undo.
    let mut work = target.clone();
    json_patch::patch_unsafe(&mut work, &parsed).map_err(|e| {
        let op = list
            .get(e.operation)
            .and_then(|o| o.get("op"))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        PatchError::JsonPatchFailed {
            index: e.operation,
            op,
            path: e.path.to_string(),
            reason: e.kind.to_string(),
        }
    })?;
    *target = work;
    Ok(())
}
