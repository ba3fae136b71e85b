//! A write to the `status` subresource of a custom resource takes only the status from the body,
//! so only the status is judged against the schema, as upstream's status strategy does. An
//! object whose stored spec no longer passes — the schema tightened after it was written — can
//! still be told so in its status (rotor's controllers write an `InvalidSpec` condition on such
//! objects), while a bad status is refused, and the main resource still judges the spec.

use crate::common;

use serde_json::{Value, json};

const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
const GADGETS: &str = "/apis/example.com/v1/gadgets";

/// The CRD with `spec.size` at least `minimum`, and `status.phase` one of A or B.
fn crd(minimum: i64, resource_version: Option<&str>) -> Value {
    let spec = json!({"type": "object", "required": ["size"],
        "properties": {"size": {"type": "integer", "minimum": minimum}}});
    let status = json!({"type": "object",
        "properties": {"phase": {"type": "string", "enum": ["A", "B"]}}});
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com", "resourceVersion": resource_version},
        "spec": {"group": "example.com", "scope": "Cluster",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object",
                    "properties": {"spec": spec, "status": status}}}}]}})
}

async fn send(
    server: &std::sync::Arc<rotor_apiserver::ApiServer>,
    method: &str,
    path: &str,
    ct: &str,
    body: Value,
) -> (u16, Value) {
    common::send(server, method, path, ct, body.to_string().into_bytes()).await
}

#[tokio::test]
async fn a_status_write_is_judged_on_the_status_alone() {
    let (server, _) = common::server().await;
    let (code, created) = send(&server, "POST", CRDS, "application/json", crd(0, None)).await;
    assert_eq!(code, 201, "{created}");
    let gadget = json!({"apiVersion": "example.com/v1", "kind": "Gadget",
        "metadata": {"name": "g"}, "spec": {"size": 0}});
    let (code, reply) = send(&server, "POST", GADGETS, "application/json", gadget).await;
    assert_eq!(code, 201, "{reply}");
    // The schema tightens: the stored spec no longer passes.
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .map(str::to_string);
    let path = format!("{CRDS}/gadgets.example.com");
    let (code, reply) = send(
        &server,
        "PUT",
        &path,
        "application/json",
        crd(1, rv.as_deref()),
    )
    .await;
    assert_eq!(code, 200, "{reply}");

    let status = format!("{GADGETS}/g/status");
    let merge = "application/merge-patch+json";
    let (code, reply) = send(
        &server,
        "PATCH",
        &status,
        merge,
        json!({"status": {"phase": "A"}}),
    )
    .await;
    assert_eq!(code, 200, "a valid status is written: {reply}");
    assert_eq!(reply["status"]["phase"], "A");

    let (code, reply) = send(
        &server,
        "PATCH",
        &status,
        merge,
        json!({"status": {"phase": "C"}}),
    )
    .await;
    assert_eq!(code, 422, "{reply}");
    let fields: Vec<&str> = reply["details"]["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .filter_map(|c| c["field"].as_str())
        .collect();
    assert_eq!(fields, ["status.phase"], "{reply}");

    // The main resource judges the spec.
    let main = format!("{GADGETS}/g");
    let (code, reply) = send(
        &server,
        "PATCH",
        &main,
        merge,
        json!({"spec": {"size": 0}, "metadata": {"labels": {"a": "b"}}}),
    )
    .await;
    assert_eq!(code, 422, "{reply}");
    assert!(
        reply["message"]
            .as_str()
            .unwrap_or_default()
            .contains("spec.size"),
        "{reply}"
    );
}
