use serde_json::{Value, json};

use super::{TestSchema, deployment, schema};
use crate::{ApplyError, ApplyOptions, server_side_apply, track_update};

fn opts<'a>(manager: &'a str, time: &'a str) -> ApplyOptions<'a> {
    ApplyOptions {
        manager,
        force: false,
        api_version: "apps/v1",
        time,
        subresource: None,
    }
}

fn apply(live: Option<&Value>, applied: &Value, o: &ApplyOptions) -> Result<Value, ApplyError> {
    server_side_apply(live, applied, Some(&schema()), o)
}

fn managed(obj: &Value) -> &Vec<Value> {
    obj["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
}

fn entry<'a>(obj: &'a Value, manager: &str) -> &'a Value {
    managed(obj)
        .iter()
        .find(|e| e["manager"] == manager)
        .unwrap_or_else(|| panic!("no entry for {manager} in {obj}"))
}

/// A manifest as `kubectl apply --server-side` sends it.
fn manifest() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "nginx",
                    "image": "nginx:1.25",
                    "args": ["-g", "daemon off;"],
                    "ports": [{"containerPort": 80}]
                }]}
            }
        },
        "status": {"replicas": 7}
    })
}

#[test]
fn create_records_the_applied_fields() {
    let out = apply(None, &manifest(), &opts("kubectl", "2024-01-01T00:00:00Z")).unwrap();
    assert_eq!(out["spec"], manifest()["spec"]);
    assert_eq!(
        managed(&out),
        &vec![json!({
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "time": "2024-01-01T00:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                            ".": {},
                            "f:args": {},
                            "f:image": {},
                            "f:name": {},
                            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                                ".": {},
                                "f:containerPort": {}
                            }}
                        }}}
                    }
                }
            }
        })]
    );
}

#[test]
fn reapply_is_idempotent() {
    let first = apply(None, &manifest(), &opts("kubectl", "2024-01-01T00:00:00Z")).unwrap();
    let second = apply(
        Some(&first),
        &manifest(),
        &opts("kubectl", "2024-01-02T00:00:00Z"),
    )
    .unwrap();
    assert_eq!(first, second);
    assert_eq!(entry(&second, "kubectl")["time"], "2024-01-01T00:00:00Z");
}

#[test]
fn fields_no_longer_applied_are_removed() {
    let mut m = manifest();
    m["metadata"]["labels"]["tier"] = json!("front");
    m["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "sidecar", "image": "busybox:1"}));
    let live = apply(None, &m, &opts("kubectl", "t1")).unwrap();
    assert_eq!(
        live["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let out = apply(Some(&live), &manifest(), &opts("kubectl", "t2")).unwrap();
    assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
    let containers = out["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1);
    assert_eq!(entry(&out, "kubectl")["time"], "t2");
    let fields = entry(&out, "kubectl")["fieldsV1"].to_string();
    assert!(
        !fields.contains("sidecar") && !fields.contains("tier"),
        "{fields}"
    );

    // Dropping all labels drops the map.
    let mut m = manifest();
    m["metadata"].as_object_mut().unwrap().remove("labels");
    let out = apply(Some(&out), &m, &opts("kubectl", "t3")).unwrap();
    assert!(out["metadata"].get("labels").is_none(), "{out}");
}

#[test]
fn conflict_between_two_appliers_and_force() {
    let live = apply(None, &manifest(), &opts("kubectl", "t1")).unwrap();
    let intent = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 5}
    });
    let err = apply(Some(&live), &intent, &opts("hpa", "t2")).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas"#
    );
    let ApplyError::Conflict { conflicts } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(conflicts[0].cause_message(), r#"conflict with "kubectl""#);

    let forced = apply(
        Some(&live),
        &intent,
        &ApplyOptions {
            force: true,
            ..opts("hpa", "t2")
        },
    )
    .unwrap();
    assert_eq!(forced["spec"]["replicas"], 5);
    assert_eq!(
        entry(&forced, "hpa")["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
    assert!(
        !entry(&forced, "kubectl")["fieldsV1"]["f:spec"]
            .as_object()
            .unwrap()
            .contains_key("f:replicas")
    );

    // kubectl re-applies its manifest unchanged: replicas is now hpa's, and kubectl conflicts.
    let err = apply(Some(&forced), &manifest(), &opts("kubectl", "t3")).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "hpa": .spec.replicas"#
    );
    // Without replicas in its manifest, kubectl no longer touches them.
    let mut m = manifest();
    m["spec"].as_object_mut().unwrap().remove("replicas");
    let out = apply(Some(&forced), &m, &opts("kubectl", "t3")).unwrap();
    assert_eq!(out["spec"]["replicas"], 5);
}

#[test]
fn conflict_after_an_update_by_another_manager() {
    // Created by client-side apply, scaled by kubectl edit (both Update operations).
    let mut created = deployment();
    track_update(
        None,
        &mut created,
        Some(&schema()),
        &opts("kubectl-client-side-apply", "t1"),
    );
    let e = entry(&created, "kubectl-client-side-apply");
    assert_eq!(e["operation"], "Update");
    assert_eq!(e["fieldsV1"]["f:spec"]["f:replicas"], json!({}));
    assert_eq!(
        e["fieldsV1"]["f:metadata"]["f:labels"],
        json!({".": {}, "f:app": {}})
    );
    assert!(e["fieldsV1"]["f:metadata"].get("f:name").is_none());

    let intent = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 9, "template": {"spec": {"containers": [
            {"name": "nginx", "image": "nginx:1.26"}
        ]}}}
    });
    let err = apply(Some(&created), &intent, &opts("kubectl", "t2")).unwrap_err();
    let ApplyError::Conflict { conflicts } = &err else {
        panic!("{err:?}")
    };
    let fields: Vec<&str> = conflicts.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            ".spec.replicas",
            ".spec.template.spec.containers[name=\"nginx\"].image"
        ]
    );
    assert_eq!(
        err.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"kubectl-client-side-apply\" using apps/v1:\n\
         - .spec.replicas\n\
         - .spec.template.spec.containers[name=\"nginx\"].image"
    );

    let only_replicas = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"}, "spec": {"replicas": 9}
    });
    let err = apply(Some(&created), &only_replicas, &opts("kubectl", "t2")).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas"#
    );
}

#[test]
fn update_takes_fields_from_appliers() {
    let live = apply(None, &manifest(), &opts("kubectl", "t1")).unwrap();
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(4);
    track_update(
        Some(&live),
        &mut scaled,
        Some(&schema()),
        &opts("kubectl-scale", "t2"),
    );
    assert_eq!(
        entry(&scaled, "kubectl-scale")["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
    assert_eq!(entry(&scaled, "kubectl-scale")["operation"], "Update");
    assert!(
        entry(&scaled, "kubectl")["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_none()
    );
    // Apply entries sort before Update entries.
    assert_eq!(managed(&scaled)[0]["manager"], "kubectl");

    // The applier re-applying the old value now conflicts.
    let err = apply(Some(&scaled), &manifest(), &opts("kubectl", "t3")).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kubectl-scale" using apps/v1: .spec.replicas"#
    );

    // An update that changes nothing leaves managedFields alone.
    let mut same = scaled.clone();
    track_update(
        Some(&scaled),
        &mut same,
        Some(&schema()),
        &opts("other", "t4"),
    );
    assert_eq!(same, scaled);
}

#[test]
fn equal_values_are_shared_not_conflicting() {
    let live = apply(None, &manifest(), &opts("kubectl", "t1")).unwrap();
    let intent = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 2}
    });
    let shared = apply(Some(&live), &intent, &opts("ci", "t2")).unwrap();
    assert_eq!(
        entry(&shared, "ci")["fieldsV1"]["f:spec"],
        json!({"f:replicas": {}})
    );
    assert_eq!(
        entry(&shared, "kubectl")["fieldsV1"]["f:spec"]["f:replicas"],
        json!({})
    );

    // kubectl stops applying replicas and the label: ci still owns them, so they stay.
    let mut m = manifest();
    m["spec"].as_object_mut().unwrap().remove("replicas");
    m["metadata"].as_object_mut().unwrap().remove("labels");
    let out = apply(Some(&shared), &m, &opts("kubectl", "t3")).unwrap();
    assert_eq!(out["spec"]["replicas"], 2);
    assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
}

#[test]
fn set_and_atomic_lists() {
    let obj = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "finalizers": ["a.example/x"]},
        "data": {"k": "v"}
    });
    let o = ApplyOptions {
        api_version: "v1",
        ..opts("one", "t1")
    };
    let live = apply(None, &obj, &o).unwrap();
    assert_eq!(
        entry(&live, "one")["fieldsV1"],
        json!({"f:data": {"f:k": {}}, "f:metadata": {"f:finalizers": {"v:\"a.example/x\"": {}}}})
    );
    let other = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "finalizers": ["b.example/y"]}
    });
    let out = apply(
        Some(&live),
        &other,
        &ApplyOptions {
            api_version: "v1",
            ..opts("two", "t2")
        },
    )
    .unwrap();
    assert_eq!(
        out["metadata"]["finalizers"],
        json!(["a.example/x", "b.example/y"])
    );

    // Atomic args: owned and replaced as a whole, so a different list conflicts.
    let live = apply(None, &manifest(), &opts("kubectl", "t1")).unwrap();
    let intent = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "nginx", "args": ["-x"]}]}}}});
    let err = apply(Some(&live), &intent, &opts("dbg", "t2")).unwrap_err();
    assert!(
        err.to_string()
            .ends_with(r#".spec.template.spec.containers[name="nginx"].args"#)
    );
    let forced = apply(
        Some(&live),
        &intent,
        &ApplyOptions {
            force: true,
            ..opts("dbg", "t2")
        },
    )
    .unwrap();
    assert_eq!(
        forced["spec"]["template"]["spec"]["containers"][0]["args"],
        json!(["-x"])
    );
    assert_eq!(
        forced["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.25"
    );
}

#[test]
fn service_ports_are_keyed_by_port_and_protocol() {
    let svc = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 53, "protocol": "UDP"}]}
    });
    let o = ApplyOptions {
        api_version: "v1",
        ..opts("kubectl", "t1")
    };
    let live = apply(None, &svc, &o).unwrap();
    let ports = &entry(&live, "kubectl")["fieldsV1"]["f:spec"]["f:ports"];
    assert_eq!(
        ports,
        &json!({
            "k:{\"port\":53,\"protocol\":\"UDP\"}": {".": {}, "f:port": {}, "f:protocol": {}},
            "k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:targetPort": {}}
        })
    );
    // The server defaulted the protocol; the applier's element still matches.
    let mut defaulted = live.clone();
    defaulted["spec"]["ports"][0]["protocol"] = json!("TCP");
    let out = apply(Some(&defaulted), &svc, &o).unwrap();
    assert_eq!(out["spec"]["ports"].as_array().unwrap().len(), 2);
    assert_eq!(out["spec"]["ports"][0]["protocol"], "TCP");
}

#[test]
fn status_and_identity_fields_are_not_owned() {
    let live = apply(None, &manifest(), &opts("kubectl", "t1")).unwrap();
    let fields = &entry(&live, "kubectl")["fieldsV1"];
    for absent in ["f:status", "f:apiVersion", "f:kind"] {
        assert!(fields.get(absent).is_none(), "{absent} in {fields}");
    }
    for absent in ["f:name", "f:namespace"] {
        assert!(
            fields["f:metadata"].get(absent).is_none(),
            "{absent} in {fields}"
        );
    }
    let status = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 100}, "status": {"readyReplicas": 2}});
    let out = apply(
        Some(&live),
        &status,
        &ApplyOptions {
            subresource: Some("status"),
            ..opts("controller", "t2")
        },
    )
    .unwrap();
    let e = entry(&out, "controller");
    assert_eq!(e["subresource"], "status");
    assert_eq!(e["fieldsV1"], json!({"f:status": {"f:readyReplicas": {}}}));
}

#[test]
fn apply_to_an_untracked_object_assigns_before_first_apply() {
    let live = deployment();
    let intent = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 3}});
    let err = apply(Some(&live), &intent, &opts("kubectl", "t1")).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "before-first-apply" using apps/v1: .spec.replicas"#
    );
    let ok = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2}});
    let out = apply(Some(&live), &ok, &opts("kubectl", "t1")).unwrap();
    assert_eq!(managed(&out).len(), 2);
}

#[test]
fn invalid_applied_configurations() {
    let mut m = manifest();
    m["metadata"]["managedFields"] = json!([]);
    assert!(matches!(
        apply(None, &m, &opts("k", "t")),
        Err(ApplyError::Invalid(msg)) if msg == "metadata.managedFields must be nil"
    ));
    let mut m = manifest();
    m["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "nginx"}));
    let err = apply(None, &m, &opts("k", "t")).unwrap_err();
    assert!(
        err.to_string()
            .contains(".spec.template.spec.containers: duplicate"),
        "{err}"
    );
    let mut m = manifest();
    m["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("name");
    assert!(matches!(
        apply(None, &m, &opts("k", "t")),
        Err(ApplyError::Invalid(_))
    ));
    assert!(matches!(
        apply(None, &json!([]), &opts("k", "t")),
        Err(ApplyError::Invalid(_))
    ));
}

#[test]
fn track_update_honours_a_reset_and_keeps_fields_of_others() {
    let live = apply(None, &manifest(), &opts("kubectl", "t1")).unwrap();
    let mut reset = live.clone();
    reset["metadata"]["managedFields"] = json!([{}]);
    track_update(Some(&live), &mut reset, Some(&schema()), &opts("x", "t2"));
    assert!(reset["metadata"].get("managedFields").is_none(), "{reset}");

    let mut labelled = live.clone();
    labelled["metadata"]["labels"]["team"] = json!("a");
    track_update(
        Some(&live),
        &mut labelled,
        None::<&TestSchema>,
        &opts("kubectl-label", "t2"),
    );
    assert_eq!(
        entry(&labelled, "kubectl-label")["fieldsV1"],
        json!({"f:metadata": {"f:labels": {"f:team": {}}}})
    );
    assert_eq!(
        entry(&labelled, "kubectl")["fieldsV1"],
        entry(&live, "kubectl")["fieldsV1"]
    );
}

#[test]
fn an_empty_list_keeps_managed_fields_and_a_given_list_replaces_them() {
    let live = apply(None, &manifest(), &opts("kubectl", "t1")).unwrap();
    let mut empty = live.clone();
    empty["metadata"]["managedFields"] = json!([]);
    track_update(Some(&live), &mut empty, Some(&schema()), &opts("x", "t2"));
    assert_eq!(managed(&empty), managed(&live));

    // What a restore or a migration sends: the content unchanged, the owners of another copy.
    let theirs = json!([{"manager": "helm", "operation": "Apply", "apiVersion": "apps/v1",
        "time": "2020-01-01T00:00:00Z", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:spec": {"f:replicas": {}}}}]);
    let mut given = live.clone();
    given["metadata"]["managedFields"] = theirs.clone();
    track_update(
        Some(&live),
        &mut given,
        Some(&schema()),
        &opts("rotor", "t3"),
    );
    assert_eq!(given["metadata"]["managedFields"], theirs);
}
