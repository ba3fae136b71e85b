use serde_json::json;

use crate::{PatchError, json_patch, merge_patch};

#[test]
fn merge_patch_follows_rfc_7386() {
    let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
    merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}, "l": [3]}));
    assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}, "l": [3]}));
    merge_patch(&mut doc, &json!("scalar"));
    assert_eq!(doc, json!("scalar"));
}

#[test]
fn json_patch_applies_operations() {
    let mut doc = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"replicas": 1}});
    json_patch(
        &mut doc,
        &json!([
            {"op": "test", "path": "/spec/replicas", "value": 1},
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/metadata/labels/tier", "value": "front"},
            {"op": "remove", "path": "/metadata/labels/app"}
        ]),
    )
    .unwrap();
    assert_eq!(
        doc,
        json!({"metadata": {"labels": {"tier": "front"}}, "spec": {"replicas": 3}})
    );
}

#[test]
fn json_patch_failure_leaves_the_target_unchanged() {
    let mut doc = json!({"spec": {"replicas": 1}});
    let before = doc.clone();
    let err = json_patch(
        &mut doc,
        &json!([
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "test", "path": "/spec/replicas", "value": 1}
        ]),
    )
    .unwrap_err();
    assert_eq!(doc, before);
    assert!(
        matches!(&err, PatchError::JsonPatchFailed { index: 1, op, path, .. } if op == "test" && path == "/spec/replicas"),
        "{err}"
    );
    let err = json_patch(&mut doc, &json!([{"op": "remove", "path": "/nope"}])).unwrap_err();
    assert!(err.to_string().contains("/nope"), "{err}");
    assert_eq!(doc, before);
}

#[test]
fn json_patch_rejects_malformed_documents() {
    let mut doc = json!({});
    assert!(matches!(
        json_patch(&mut doc, &json!({"op": "add"})),
        Err(PatchError::InvalidJsonPatch(_))
    ));
    let err = json_patch(
        &mut doc,
        &json!([{"op": "add", "path": "/a", "value": 1}, {"op": "jump"}]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("operation 1"), "{err}");
    assert_eq!(doc, json!({}));
}
