//! A CRD's schema `default`s apply when objects are read, as upstream defaults what it reads
//! from storage: an object stored before the CRD gained a default is served with it (GET,
//! LIST and watch alike), without being rewritten.

use crate::common;

use rotor_store::Store;
use serde_json::{Value, json};

const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
const GADGETS: &str = "/apis/example.com/v1/namespaces/default/gadgets";

fn crd(color: Value, resource_version: Option<&str>) -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com", "resourceVersion": resource_version},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}, "color": color}}}}}}]}})
}

async fn send(
    server: &std::sync::Arc<rotor_apiserver::ApiServer>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    common::send(server, method, path, "application/json", body).await
}

#[tokio::test]
async fn schema_defaults_added_later_are_served_on_read() {
    let (server, store) = common::server().await;
    let (code, created) = send(
        &server,
        "POST",
        CRDS,
        Some(crd(json!({"type": "string"}), None)),
    )
    .await;
    assert_eq!(code, 201, "{created}");
    let gadget = json!({"apiVersion": "example.com/v1", "kind": "Gadget",
        "metadata": {"name": "g"}, "spec": {"size": 1}});
    let (code, reply) = send(&server, "POST", GADGETS, Some(gadget)).await;
    assert_eq!(code, 201, "{reply}");
    assert!(reply["spec"].get("color").is_none(), "{reply}");

    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .map(str::to_string);
    let defaulted = crd(json!({"type": "string", "default": "blue"}), rv.as_deref());
    let path = format!("{CRDS}/gadgets.example.com");
    let (code, reply) = send(&server, "PUT", &path, Some(defaulted)).await;
    assert_eq!(code, 200, "{reply}");

    let (code, got) = send(&server, "GET", &format!("{GADGETS}/g"), None).await;
    assert_eq!(code, 200, "{got}");
    assert_eq!(got["spec"]["color"], "blue", "GET: {got}");
    let (_, list) = send(&server, "GET", GADGETS, None).await;
    assert_eq!(list["items"][0]["spec"]["color"], "blue", "LIST: {list}");
    // Served, not written: the stored object is as it was.
    let stored = store
        .list("/example.com/gadgets/", None, 0)
        .await
        .expect("stored")
        .items;
    let raw: Value = serde_json::from_slice(&stored[0].value).expect("json");
    assert!(raw["spec"].get("color").is_none(), "{raw}");
}
