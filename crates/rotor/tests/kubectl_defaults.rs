//! Defaulting seen through the real kubectl against `rotor sim`: kubectl's own upgrade path from
//! client-side to server-side apply keeps a Deployment's defaulted `spec.replicas` (the apply
//! gives the field up, defaulting brings it back) and the Deployment becomes ready; a CRD's
//! schema defaults fill a custom resource that kubectl applies.

use crate::common;

use common::kubectl::{Kubectl, start_sim, write_manifest};
use serde_json::Value;

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: "nginx:1.27", ports: [{containerPort: 80}]}
"#;

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gizmos.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gizmos, kind: Gizmo}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            default: {}
            properties:
              size: {type: integer, default: 3}
              color: {type: string, default: blue}
"#;

fn ready(k: &Kubectl) -> Value {
    k.eventually(
        &[
            "get",
            "deployment",
            "web",
            "-n",
            "default",
            "--show-managed-fields",
        ],
        "web to be ready with 1 replica",
        |d| d["spec"]["replicas"] == 1 && d["status"]["readyReplicas"] == 1,
    )
}

#[test]
fn client_side_then_server_side_apply_keeps_defaults_on_the_simulator() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_sim, k) = start_sim(dir.path(), 1, &["--ready-delay-ms", "50"]);
    let deployment = write_manifest(dir.path(), "web.yaml", DEPLOYMENT);
    k.ok(&["apply", "-f", &deployment]);
    let d = ready(&k);
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);

    k.ok(&["apply", "--server-side", "-f", &deployment]);
    let d = ready(&k);
    let managers: Vec<&str> = d["metadata"]["managedFields"]
        .as_array()
        .expect("managed fields")
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"kubectl"), "{managers:?}");
    assert!(
        !managers.contains(&"kubectl-client-side-apply"),
        "kubectl's upgrade moved the fields to the server-side manager: {managers:?}"
    );
    let table = k.ok(&["get", "deployment", "web", "-n", "default"]);
    assert!(
        table.lines().nth(1).is_some_and(|row| row.contains("1/1")),
        "{table}"
    );

    k.ok(&["apply", "-f", &write_manifest(dir.path(), "crd.yaml", CRD)]);
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/gizmos.example.com",
        "--timeout=15s",
    ]);
    let gizmo = "apiVersion: example.com/v1\nkind: Gizmo\nmetadata: {name: g, namespace: default}\nspec: {color: red}\n";
    k.ok(&[
        "apply",
        "-f",
        &write_manifest(dir.path(), "gizmo.yaml", gizmo),
    ]);
    let g = k.json(&["get", "gizmo", "g", "-n", "default"]);
    assert_eq!(g["spec"]["size"], 3, "{g}");
    assert_eq!(g["spec"]["color"], "red", "{g}");
}
