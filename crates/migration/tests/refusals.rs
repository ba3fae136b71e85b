//! An object green's release refuses is found before anything is written: the pre-flight
//! (`plan_for` against green's release) names it with its field and reason, and `apply` refuses
//! the plan whole.

use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use rotor_migration::{MemoryCheckpoint, MigrationOptions, ServedVersions, apply, plan, plan_for};
use serde_json::json;

use crate::common;

/// A ConfigMap with a number where a string belongs, written straight into blue's store as an
/// older, laxer API server would have kept it.
async fn store_a_mistyped_config_map(e: &common::Env) {
    let res = e.blue_server.resource("", "v1", "configmaps").unwrap();
    let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "legacy", "namespace": "shop", "uid": "00000000-0000-4000-8000-00000000abcd",
            "creationTimestamp": "2020-01-01T00:00:00Z"},
        "data": {"port": 8080}});
    e.blue_server
        .store()
        .create(
            &res.key(Some("shop"), "legacy"),
            serde_json::to_vec(&obj).unwrap().into(),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_green_refuses_stops_the_plan_before_any_write() {
    let e = common::env(35, 35).await;
    common::namespace(&e.blue_server, "shop").await;
    common::create_as(
        &e.blue_server,
        "configmaps",
        "kubectl",
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "fine", "namespace": "shop"}, "data": {"a": "1"}}),
    )
    .await;
    store_a_mistyped_config_map(&e).await;
    let options = MigrationOptions::default();

    // The pre-flight against the target release, green not needed.
    let release = ServedVersions::of_release(35).unwrap();
    let preflight = plan_for(&e.blue, &release, &options).await.unwrap();
    assert_eq!(preflight.refused.len(), 1, "{preflight}");
    let refusal = &preflight.refused[0];
    assert_eq!(refusal.object, "ConfigMap shop/legacy");
    assert!(
        refusal.message.contains("ConfigMap.data of type string"),
        "{}",
        refusal.message
    );
    assert!(
        preflight
            .to_string()
            .contains("refused: ConfigMap shop/legacy"),
        "{preflight}"
    );

    // A plan made without a target is rehearsed by apply against green's release: refused, and
    // green holds nothing of it, not even the namespace.
    let unchecked = plan(&e.blue, &options).await.unwrap();
    let report = apply(&e.green, &unchecked, &options, &MemoryCheckpoint::new()).await;
    assert_eq!(report.applied, 0, "{report:#?}");
    assert_eq!(report.errors.len(), 1, "{report:#?}");
    assert!(
        report.errors[0]
            .message
            .contains("Kubernetes 1.35 refuses it")
            && report.errors[0].message.contains("ConfigMap.data"),
        "{report:#?}"
    );
    let namespaces: Api<DynamicObject> = Api::all_with(
        e.green.clone(),
        &ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Namespace")),
    );
    assert!(namespaces.get_opt("shop").await.unwrap().is_none());
}
