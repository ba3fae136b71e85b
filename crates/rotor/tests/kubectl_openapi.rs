//! kubectl's client-side validation against the OpenAPI v2 document, with the real kubectl
//! against `rotor sim` and `rotor serve`: `apply -f` of a `kind: List` validates each item
//! against the models kubectl builds from `/openapi/v2` as gnostic protobuf. Items that fit are
//! created; an item with a field its schema lacks is refused by kubectl before any request,
//! naming the field, which only happens when kubectl has decoded the schemas.

use crate::common;

use std::path::Path;

use common::kubectl::{CLUSTER_YAML, Kubectl, free_port, start_serve, start_sim, write_manifest};
use serde_json::Value;

/// The List of the report, with the value quoted: a bare `y` is a boolean to kubectl's YAML 1.1
/// reader, which a ConfigMap's string data refuses (kube-apiserver refuses it too).
const LIST: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: l1, namespace: default}
  data: {x: "y"}
"#;

const LIST_UNKNOWN_FIELD: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: l2, namespace: default}
  data2: {x: "y"}
"#;

const LIST_DEPLOYMENT_TYPO: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: l3, namespace: default}
  data: {x: "y"}
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: web, namespace: default}
  spec:
    replicaz: 2
    selector: {matchLabels: {app: web}}
    template:
      metadata: {labels: {app: web}}
      spec:
        containers: [{name: web, image: nginx}]
"#;

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
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
            properties:
              size: {type: integer}
              color: {type: string}
              extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

fn gadget_list(spec: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: List
items:
- apiVersion: example.com/v1
  kind: Gadget
  metadata: {{name: g1, namespace: default}}
  spec: {spec}
- apiVersion: v1
  kind: ConfigMap
  metadata: {{name: with-gadget, namespace: default}}
  data: {{k: v}}
"#
    )
}

/// Applies a manifest that kubectl must refuse while validating; returns its stderr.
fn refused(k: &Kubectl, file: &str) -> String {
    let out = k.run(&["apply", "-f", file]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "kubectl accepted {file}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(err.contains("error validating data"), "{err}");
    err
}

/// The List steps, against any API rotor serves.
fn list_validation(k: &Kubectl, dir: &Path) {
    // The List is applied with validation on; kubectl reads /openapi/v2 as protobuf for it.
    let list = write_manifest(dir, "list.yaml", LIST);
    let out = k.run(&["apply", "-f", &list, "-v=6"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "apply of the List failed:\n{log}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("configmap/l1 created"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        log.lines()
            .any(|l| l.contains("GET ") && l.contains("/openapi/v2") && l.contains("200 OK")),
        "kubectl read /openapi/v2: {log}"
    );
    let cm = k.json(&["get", "configmap", "l1", "-n", "default"]);
    assert_eq!(cm["data"], serde_json::json!({"x": "y"}), "{cm}");
    // Applying it again is a no-op.
    assert!(
        k.ok(&["apply", "-f", &list])
            .contains("configmap/l1 unchanged")
    );

    // A field the ConfigMap schema lacks: refused by kubectl, naming it; nothing created.
    let err = refused(k, &write_manifest(dir, "unknown.yaml", LIST_UNKNOWN_FIELD));
    assert!(
        err.contains(r#"unknown field "data2""#) && err.contains("io.k8s.api.core.v1.ConfigMap"),
        "{err}"
    );
    k.not_found(&["get", "configmap", "l2", "-n", "default"]);

    // Nested: a typo in a Deployment's spec, next to a valid item. The whole List is refused.
    let err = refused(k, &write_manifest(dir, "typo.yaml", LIST_DEPLOYMENT_TYPO));
    assert!(
        err.contains(r#"unknown field "replicaz""#)
            && err.contains("io.k8s.api.apps.v1.DeploymentSpec"),
        "{err}"
    );
    k.not_found(&["get", "configmap", "l3", "-n", "default"]);
    k.not_found(&["get", "deployment", "web", "-n", "default"]);

    // A CRD registered now: its schema and GVK are in the next v2 document.
    k.ok(&["apply", "-f", &write_manifest(dir, "crd.yaml", CRD)]);
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/gadgets.example.com",
        "--timeout=20s",
    ]);
    let good = write_manifest(
        dir,
        "gadgets.yaml",
        &gadget_list("{size: 2, color: blue, extra: {anything: 1}}"),
    );
    let out = k.ok(&["apply", "-f", &good]);
    assert!(
        out.contains("gadget.example.com/g1 created")
            && out.contains("configmap/with-gadget created"),
        "{out}"
    );
    let g = k.json(&["get", "gadgets.example.com", "g1", "-n", "default"]);
    assert_eq!(g["spec"]["size"], 2, "{g}");
    assert_eq!(g["spec"]["color"], "blue", "{g}");
    assert_eq!(g["spec"]["extra"]["anything"], 1, "{g}");
    let err = refused(
        k,
        &write_manifest(
            dir,
            "gadget-typo.yaml",
            &gadget_list("{size: 2, colour: red}"),
        ),
    );
    assert!(
        err.contains(r#"unknown field "colour""#) && err.contains("com.example.v1.Gadget.spec"),
        "{err}"
    );
    let err = refused(
        k,
        &write_manifest(dir, "gadget-type.yaml", &gadget_list("{size: two}")),
    );
    assert!(
        err.contains("com.example.v1.Gadget.spec.size") && err.contains(r#"expected "integer""#),
        "{err}"
    );
    let g = k.json(&["get", "gadgets.example.com", "g1", "-n", "default"]);
    assert_eq!(
        g["spec"]["color"], "blue",
        "refused Lists changed nothing: {g}"
    );
}

#[test]
fn kubectl_validates_lists_against_rotor_sim() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_sim, k) = start_sim(dir.path(), 1, &[]);
    list_validation(&k, dir.path());
}

/// [`CLUSTER_YAML`] as the one item of a `kind: List`.
fn cluster_list() -> String {
    let mut out = String::from("apiVersion: v1\nkind: List\nitems:\n");
    for (i, line) in CLUSTER_YAML.lines().enumerate() {
        out.push_str(if i == 0 { "- " } else { "  " });
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[test]
fn kubectl_validates_lists_against_rotor_serve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kc = dir.path().join("admin.kubeconfig");
    let store = format!("sqlite:{}", dir.path().join("rotor.db").display());
    let (_serve, k) = start_serve(&store, &format!("127.0.0.1:{}", free_port()), &kc);
    list_validation(&k, dir.path());

    // rotor's own kinds are validated from their schemas too.
    let out = k.ok(&[
        "apply",
        "-f",
        &write_manifest(dir.path(), "clusters.yaml", &cluster_list()),
    ]);
    assert!(
        out.contains("cluster.rotor.dev/prod-sim-a created"),
        "{out}"
    );
    let c: Value = k.json(&["get", "clusters.rotor.dev", "prod-sim-a"]);
    assert_eq!(c["spec"]["region"], "us-east-1", "{c}");
    let typo = cluster_list()
        .replace("prod-sim-a\n    labels", "prod-sim-b\n    labels")
        .replace("region: us-east-1\n", "regoin: us-east-1\n");
    let err = refused(&k, &write_manifest(dir.path(), "cluster-typo.yaml", &typo));
    assert!(
        err.contains(r#"unknown field "regoin""#) && err.contains("Cluster.spec"),
        "{err}"
    );
    k.not_found(&["get", "clusters.rotor.dev", "prod-sim-b"]);
}
