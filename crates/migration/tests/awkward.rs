//! Awkward objects: near the size limits, Secrets of every type, a CRD whose versions a webhook
//! converts.

use base64::Engine as _;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use rotor_migration::{MemoryCheckpoint, MigrationOptions, apply, plan};
use serde_json::{Value, json};

use crate::common;

async fn migrate(e: &common::Env) -> rotor_migration::Plan {
    let options = MigrationOptions::default();
    let plan = plan(&e.blue, &options).await.unwrap();
    let report = apply(&e.green, &plan, &options, &MemoryCheckpoint::new()).await;
    assert!(report.is_complete(), "{report:#?}");
    plan
}

async fn get(c: &kube::Client, gvk: GroupVersionKind, ns: &str, name: &str) -> DynamicObject {
    Api::<DynamicObject>::namespaced_with(c.clone(), ns, &ApiResource::from_gvk(&gvk))
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("{ns}/{name}: {e}"))
}

fn secret(name: &str, kind: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": "shop"}, "type": kind, "data": data})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_and_every_secret_type_move_tokens_stay() {
    let e = common::env(35, 35).await;
    let s = &e.blue_server;
    common::namespace(s, "shop").await;
    // Just under a ConfigMap's and a Secret's 1 MiB of data.
    let big = "x".repeat(1024 * 1024 - 1024);
    common::create_as(
        s,
        "configmaps",
        "kubectl",
        json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "big", "namespace": "shop"}, "data": {"blob": big}}),
    )
    .await;
    let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
    let big_secret = "A".repeat(700 * 1024);
    for (name, kind, data) in [
        ("opaque", "Opaque", json!({"blob": b64(&big_secret)})),
        (
            "tls",
            "kubernetes.io/tls",
            json!({"tls.crt": b64("cert"), "tls.key": b64("key")}),
        ),
        (
            "pull",
            "kubernetes.io/dockerconfigjson",
            json!({".dockerconfigjson": b64("{\"auths\":{}}")}),
        ),
        (
            "basic",
            "kubernetes.io/basic-auth",
            json!({"username": b64("u"), "password": b64("p")}),
        ),
        (
            "ssh",
            "kubernetes.io/ssh-auth",
            json!({"ssh-privatekey": b64("k")}),
        ),
        (
            "sh.helm.release.v1.shop.v1",
            "helm.sh/release.v1",
            json!({"release": b64("H4sI")}),
        ),
    ] {
        common::create_as(s, "secrets", "kubectl", secret(name, kind, data)).await;
    }
    common::create_as(
        s,
        "serviceaccounts",
        "kubectl",
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "web", "namespace": "shop"}}),
    )
    .await;
    let mut token = secret(
        "web-token",
        "kubernetes.io/service-account-token",
        json!({"token": b64("t")}),
    );
    token["metadata"]["annotations"] = json!({"kubernetes.io/service-account.name": "web"});
    common::create_as(s, "secrets", "kubectl", token).await;

    let plan = migrate(&e).await;
    assert!(
        plan.skipped
            .keys()
            .any(|k| k.starts_with("Secret: service-account token")),
        "{:?}",
        plan.skipped
    );
    let cm = GroupVersionKind::gvk("", "v1", "ConfigMap");
    let green_big = get(&e.green, cm, "shop", "big").await;
    assert_eq!(
        green_big.data["data"]["blob"].as_str().map(str::len),
        Some(big.len())
    );
    let sec = GroupVersionKind::gvk("", "v1", "Secret");
    for name in [
        "opaque",
        "tls",
        "pull",
        "basic",
        "ssh",
        "sh.helm.release.v1.shop.v1",
    ] {
        let (b, g) = (
            get(&e.blue, sec.clone(), "shop", name).await,
            get(&e.green, sec.clone(), "shop", name).await,
        );
        assert_eq!(b.data["type"], g.data["type"], "{name}");
        assert_eq!(b.data["data"], g.data["data"], "{name}");
    }
    let secrets: Api<DynamicObject> =
        Api::namespaced_with(e.green.clone(), "shop", &ApiResource::from_gvk(&sec));
    assert!(secrets.get_opt("web-token").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_converted_by_a_webhook_moves_at_its_storage_version() {
    let e = common::env(35, 35).await;
    let s = &e.blue_server;
    let version = |name: &str, storage: bool| {
        json!({"name": name, "served": true, "storage": storage,
        "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object",
            "properties": {"size": {"type": "integer"}}}}}}})
    };
    common::create_as(s, "customresourcedefinitions", "kubectl", json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
            "versions": [version("v1", true), version("v2", false)],
            "conversion": {"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"],
                "clientConfig": {"service": {"namespace": "shop", "name": "converter", "path": "/convert"}}}}}})).await;
    common::namespace(s, "shop").await;
    common::create_as(
        s,
        "gadgets",
        "kubectl",
        json!({"apiVersion": "example.com/v1", "kind": "Gadget",
        "metadata": {"name": "g", "namespace": "shop"}, "spec": {"size": 3}}),
    )
    .await;

    let plan = migrate(&e).await;
    let gadgets = plan
        .objects()
        .find(|(_, r, _)| r.kind == "Gadget")
        .map(|(_, r, _)| r.version.clone());
    // Discovery prefers v2; reading there would call blue's webhook.
    assert_eq!(gadgets.as_deref(), Some("v1"));
    let g = get(
        &e.green,
        GroupVersionKind::gvk("example.com", "v1", "Gadget"),
        "shop",
        "g",
    )
    .await;
    assert_eq!(g.data["spec"]["size"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_blue_recorded_no_owners_for_has_none_in_green_and_the_plan_says_so() {
    let e = common::env(35, 35).await;
    common::namespace(&e.blue_server, "shop").await;
    // Written before server-side apply existed: no managedFields.
    let res = e.blue_server.resource("", "v1", "configmaps").unwrap();
    let old = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "old", "namespace": "shop", "uid": "00000000-0000-4000-8000-0000000000aa",
            "creationTimestamp": "2018-01-01T00:00:00Z"},
        "data": {"a": "1"}});
    e.blue_server
        .store()
        .create(
            &res.key(Some("shop"), "old"),
            serde_json::to_vec(&old).unwrap().into(),
        )
        .await
        .unwrap();
    let plan = migrate(&e).await;
    assert_eq!(
        plan.ownership
            .get("ConfigMap: no managed fields in blue, none in green either"),
        Some(&1),
        "{:?}",
        plan.ownership
    );
    let green = get(
        &e.green,
        GroupVersionKind::gvk("", "v1", "ConfigMap"),
        "shop",
        "old",
    )
    .await;
    assert!(green.metadata.managed_fields.unwrap_or_default().is_empty());
    assert_eq!(green.data["data"], json!({"a": "1"}));
}
