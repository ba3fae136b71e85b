use serde_json::{Value, json};

use super::{TestSchema, deployment, schema};
use crate::{NoSchema, PatchError, strategic_merge_patch};

fn smp(original: &Value, patch: Value) -> Result<Value, PatchError> {
    strategic_merge_patch(original, &patch, Some(&schema()))
}

fn containers(v: &Value) -> &Value {
    &v["spec"]["template"]["spec"]["containers"]
}

#[test]
fn containers_merge_by_name_and_new_ones_are_appended() {
    let out = smp(
        &deployment(),
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "nginx", "image": "nginx:1.26"},
            {"name": "metrics", "image": "prom/exporter:1"}
        ]}}}}),
    )
    .unwrap();
    let c = containers(&out);
    assert_eq!(c.as_array().unwrap().len(), 3);
    assert_eq!(c[0]["name"], "nginx");
    assert_eq!(c[0]["image"], "nginx:1.26");
    // Untouched fields of the merged element stay.
    assert_eq!(
        c[0]["env"],
        deployment()["spec"]["template"]["spec"]["containers"][0]["env"]
    );
    assert_eq!(c[1]["name"], "sidecar");
    assert_eq!(c[2]["name"], "metrics");
}

#[test]
fn env_merges_inside_a_merged_container_and_null_deletes_keys() {
    let out = smp(
        &deployment(),
        json!({
            "metadata": {"labels": {"app": null, "tier": "front"}},
            "spec": {"template": {"spec": {"containers": [
                {"name": "nginx", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]}
            ]}}}
        }),
    )
    .unwrap();
    assert_eq!(out["metadata"]["labels"], json!({"tier": "front"}));
    assert_eq!(
        containers(&out)[0]["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}])
    );
}

#[test]
fn without_schema_lists_replace_and_maps_merge() {
    let out = strategic_merge_patch(
        &deployment(),
        &json!({"spec": {"replicas": 5, "template": {"spec": {"containers": [{"name": "x"}]}}}}),
        None::<&NoSchema>,
    )
    .unwrap();
    assert_eq!(out["spec"]["replicas"], 5);
    assert_eq!(containers(&out), &json!([{"name": "x"}]));
    assert_eq!(out["spec"]["strategy"]["type"], "RollingUpdate");
}

#[test]
fn atomic_args_are_replaced() {
    let out = smp(
        &deployment(),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx", "args": ["-v"]}]}}}}),
    )
    .unwrap();
    assert_eq!(containers(&out)[0]["args"], json!(["-v"]));
}

#[test]
fn patch_delete_list_element_removes_it() {
    let out = smp(
        &deployment(),
        json!({"spec": {"template": {"spec": {"containers": [{"$patch": "delete", "name": "sidecar"}]}}}}),
    )
    .unwrap();
    let c = containers(&out).as_array().unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0]["name"], "nginx");
}

#[test]
fn patch_replace_list_element_replaces_the_whole_list() {
    let out = smp(
        &deployment(),
        json!({"spec": {"template": {"spec": {"containers": [
            {"$patch": "replace"},
            {"name": "only", "image": "only:1"}
        ]}}}}),
    )
    .unwrap();
    assert_eq!(
        containers(&out),
        &json!([{"name": "only", "image": "only:1"}])
    );
}

#[test]
fn patch_replace_on_a_map_replaces_it() {
    let out = smp(
        &deployment(),
        json!({"spec": {"strategy": {"$patch": "replace", "type": "Recreate"}}}),
    )
    .unwrap();
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn patch_delete_on_a_map_empties_it_as_kubernetes_does() {
    let out = smp(
        &deployment(),
        json!({"spec": {"strategy": {"$patch": "delete"}}}),
    )
    .unwrap();
    assert_eq!(out["spec"]["strategy"], json!({}));
}

#[test]
fn merge_strategy_primitive_lists_are_unions_and_delete_from_primitive_list_removes() {
    let original = json!({"metadata": {"name": "x", "finalizers": ["a", "b"]}});
    let out = smp(&original, json!({"metadata": {"finalizers": ["c", "a"]}})).unwrap();
    assert_eq!(out["metadata"]["finalizers"], json!(["b", "c", "a"]));
    let out = smp(
        &original,
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
    )
    .unwrap();
    assert_eq!(out["metadata"], json!({"name": "x", "finalizers": ["b"]}));
}

#[test]
fn set_element_order_reorders_the_merged_list() {
    let out = smp(
        &deployment(),
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "nginx"}],
            "containers": [{"name": "sidecar", "image": "busybox:2"}]
        }}}}),
    )
    .unwrap();
    let c = containers(&out);
    assert_eq!(c[0], json!({"name": "sidecar", "image": "busybox:2"}));
    assert_eq!(c[1]["name"], "nginx");
    assert_eq!(c[1]["image"], "nginx:1.25");
}

#[test]
fn set_element_order_keeps_server_only_elements_in_place() {
    let original = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "a"}, {"name": "injected"}, {"name": "b"}
    ]}}}});
    let out = smp(
        &original,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]
        }}}}),
    )
    .unwrap();
    let names: Vec<&str> = containers(&out)
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["injected", "b", "a"]);
}

#[test]
fn retain_keys_drops_unlisted_keys() {
    let out = smp(
        &deployment(),
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
    )
    .unwrap();
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    // Volumes: switching the source of a volume.
    let out = smp(
        &deployment(),
        json!({"spec": {"template": {"spec": {"volumes": [
            {"name": "data", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/srv"}}
        ]}}}}),
    )
    .unwrap();
    assert_eq!(
        out["spec"]["template"]["spec"]["volumes"],
        json!([{"name": "data", "hostPath": {"path": "/srv"}}])
    );
}

#[test]
fn retain_keys_rejects_a_patch_setting_an_unlisted_key() {
    let err = smp(
        &deployment(),
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 2}}}}),
    )
    .unwrap_err();
    assert!(
        err.to_string().starts_with(".spec.strategy.$retainKeys"),
        "{err}"
    );
}

/// What `kubectl apply` (client side) sends after the sidecar was removed from the manifest and
/// the image changed: computed from last-applied-configuration.
#[test]
fn kubectl_client_side_apply_patch() {
    let patch = json!({
        "metadata": {"annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": "{...}"
        }},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "nginx"}],
            "containers": [
                {"$setElementOrder/env": [{"name": "A"}, {"name": "B"}],
                 "image": "nginx:1.27", "name": "nginx"},
                {"$patch": "delete", "name": "sidecar"}
            ]
        }}}
    });
    let out = smp(&deployment(), patch).unwrap();
    let mut want = deployment();
    want["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/last-applied-configuration": "{...}"});
    let c = want["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap();
    c.truncate(1);
    c[0]["image"] = json!("nginx:1.27");
    assert_eq!(out, want);
    assert!(!out.to_string().contains('$'), "directives stored: {out}");
}

#[test]
fn service_ports_merge_by_port() {
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
            {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443}
        ]}
    });
    let out = smp(
        &svc,
        json!({"spec": {"ports": [{"port": 443, "targetPort": 9443}]}}),
    )
    .unwrap();
    assert_eq!(out["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(out["spec"]["ports"][1]["targetPort"], 9443);
    assert_eq!(out["spec"]["ports"][1]["name"], "https");
}

#[test]
fn directives_in_new_fields_are_interpreted_not_stored() {
    let out = smp(
        &json!({"metadata": {"name": "x"}}),
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}],
            "containers": [{"name": "a", "image": "a"}, {"$patch": "delete", "name": "gone"}]
        }}}}),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"metadata": {"name": "x"}, "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "a"}]}}}})
    );
}

#[test]
fn errors_name_the_path() {
    let err = smp(
        &deployment(),
        json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
    )
    .unwrap_err();
    assert!(matches!(err, PatchError::MissingMergeKey { .. }));
    assert!(
        err.to_string()
            .starts_with(".spec.template.spec.containers[0]"),
        "{err}"
    );

    let err = smp(&deployment(), json!({"spec": {"$patch": "merge"}})).unwrap_err();
    assert!(
        err.to_string().starts_with(".spec: invalid $patch"),
        "{err}"
    );

    let err = smp(&deployment(), json!([1])).unwrap_err();
    assert!(matches!(err, PatchError::WrongType { .. }), "{err}");

    let err = smp(
        &deployment(),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx", "$patch": "frobnicate"}]}}}}),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(".spec.template.spec.containers[0]"),
        "{err}"
    );

    let err = smp(
        &deployment(),
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "nginx"}],
            "containers": [{"name": "sidecar", "image": "x"}]
        }}}}),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(".spec.template.spec.containers"),
        "{err}"
    );
}

#[test]
fn inputs_are_not_modified() {
    let original = deployment();
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"$patch": "delete", "name": "nginx"}]}}}});
    let (o2, p2) = (original.clone(), patch.clone());
    let _ = strategic_merge_patch(&original, &patch, Some(&TestSchema::default()));
    assert_eq!((original, patch), (o2, p2));
}
