use serde_json::json;

use super::*;

#[test]
fn image_pull_policy_follows_the_tag() {
    for (image, latest) in [
        ("nginx", true),
        ("nginx:latest", true),
        ("nginx:1.27", false),
        ("localhost:5000/nginx", true),
        ("localhost:5000/nginx:1.2", false),
        ("nginx@sha256:abcd", false),
        ("nginx:latest@sha256:abcd", true),
    ] {
        assert_eq!(pod::image_is_latest_for_tests(image), latest, "{image}");
    }
}

#[test]
fn go_zero_values_count_as_unset_only_for_plain_fields() {
    let mut m = json!({"a": "", "b": 0, "c": 0, "d": ""})
        .as_object()
        .cloned()
        .unwrap();
    fill(
        &mut m,
        &[
            ("a", D::Str("x")),
            ("b", D::Zero(3)),
            ("c", D::Int(3)),
            ("d", D::PtrStr("y")),
            ("e", D::Obj),
        ],
    );
    assert_eq!(
        Value::Object(m),
        json!({"a": "x", "b": 3, "c": 0, "d": "", "e": {}})
    );
}

#[test]
fn nulls_go_except_in_raw_schemas() {
    let mut crd = json!({"metadata": {"labels": null}, "spec": {"conversion": null,
        "versions": [{"name": "v1", "deprecationWarning": null,
            "schema": {"openAPIV3Schema": {"enum": [null, "a"], "default": null}}}]}});
    drop_nulls(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        &mut crd,
    );
    assert_eq!(
        crd,
        json!({"metadata": {}, "spec": {"versions": [{"name": "v1",
            "schema": {"openAPIV3Schema": {"enum": [null, "a"], "default": null}}}]}})
    );
}
