//! Migrated objects belong to blue's owners on green: the next apply of each tool behaves on
//! green exactly as on blue (the same result, the same conflicts), and a re-run after blue
//! changed removes on green what blue dropped.

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use rotor_migration::{MemoryCheckpoint, MigrationOptions, apply, plan, sanitize};
use serde_json::{Value, json};

use crate::common;

fn deployments(c: &Client) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"));
    Api::namespaced_with(c.clone(), "shop", &ar)
}

fn config_maps(c: &Client) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "ConfigMap"));
    Api::namespaced_with(c.clone(), "shop", &ar)
}

fn web(replicas: i64, image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web", "app.kubernetes.io/managed-by": "Helm"},
            "annotations": {"meta.helm.sh/release-name": "shop"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "main", "image": image}]}}}})
}

/// Blue: a namespace, a ConfigMap of kubectl's client-side apply (with its last-applied
/// annotation), a Deployment of Helm 4 (server-side apply) whose replicas `kubectl scale`
/// changed since.
async fn seed(blue: &Client) {
    let ns: Api<DynamicObject> = Api::all_with(
        blue.clone(),
        &ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Namespace")),
    );
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}});
    let post = |m: &str| PostParams {
        field_manager: Some(m.into()),
        ..PostParams::default()
    };
    ns.create(
        &post("kubectl-create"),
        &serde_json::from_value(namespace).unwrap(),
    )
    .await
    .unwrap();
    let last_applied = r#"{"apiVersion":"v1","data":{"a":"1","b":"2"},"kind":"ConfigMap","metadata":{"annotations":{},"name":"settings","namespace":"shop"}}"#;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "shop",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": last_applied}},
        "data": {"a": "1", "b": "2"}});
    config_maps(blue)
        .create(
            &post("kubectl-client-side-apply"),
            &serde_json::from_value(cm).unwrap(),
        )
        .await
        .unwrap();
    deployments(blue)
        .patch(
            "web",
            &PatchParams::apply("helm"),
            &Patch::Apply(web(2, "web:1")),
        )
        .await
        .unwrap();
    let scale = PatchParams {
        field_manager: Some("kubectl".into()),
        ..PatchParams::default()
    };
    deployments(blue)
        .patch_scale(
            "web",
            &scale,
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
}

async fn migrate(e: &common::Env) {
    let options = MigrationOptions::default();
    let plan = plan(&e.blue, &options).await.unwrap();
    let report = apply(&e.green, &plan, &options, &MemoryCheckpoint::new()).await;
    assert!(report.is_complete(), "{report:#?}");
}

/// Sanitized content and owners of an object, to compare one cluster's copy with the other's.
fn seen(o: &DynamicObject, api_version: &str, kind: &str) -> (Value, Value) {
    (sanitize(o, api_version, kind, &|_| true), common::owners(o))
}

async fn both<F, Fut, T>(e: &common::Env, f: F) -> (T, T)
where
    F: Fn(Client) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    (f(e.blue.clone()).await, f(e.green.clone()).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn green_belongs_to_blues_owners() {
    let e = common::env(35, 35).await;
    seed(&e.blue).await;
    migrate(&e).await;

    let (b, g) = both(
        &e,
        |c| async move { deployments(&c).get("web").await.unwrap() },
    )
    .await;
    assert_eq!(
        seen(&b, "apps/v1", "Deployment"),
        seen(&g, "apps/v1", "Deployment")
    );
    let managers: Vec<String> = common::owners(&g)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect();
    assert!(
        managers.iter().any(|m| m.starts_with("helm/Apply "))
            && managers
                .iter()
                .any(|m| m.starts_with("kubectl/Update/scale ")),
        "{managers:?}"
    );
    assert!(
        !managers.iter().any(|m| m.starts_with("rotor/")),
        "{managers:?}"
    );
    let (b, g) = both(&e, |c| async move {
        config_maps(&c).get("settings").await.unwrap()
    })
    .await;
    assert_eq!(seen(&b, "v1", "ConfigMap"), seen(&g, "v1", "ConfigMap"));
    assert!(
        g.annotations()
            .contains_key("kubectl.kubernetes.io/last-applied-configuration")
    );

    // Helm's next upgrade (server-side apply, not forced) changes the image and sends the
    // replicas `kubectl scale` set: no conflict on either, the same result. Sending other
    // replicas conflicts with kubectl's scale, on both.
    let upgrade = |c: Client| async move {
        deployments(&c)
            .patch(
                "web",
                &PatchParams::apply("helm"),
                &Patch::Apply(web(3, "web:2")),
            )
            .await
            .map(|o| seen(&o, "apps/v1", "Deployment"))
            .map_err(|e| e.to_string())
    };
    let (b, g) = both(&e, upgrade).await;
    assert!(b.is_ok(), "{b:?}");
    assert_eq!(b, g);
    let conflicting = |c: Client| async move {
        deployments(&c)
            .patch(
                "web",
                &PatchParams::apply("helm"),
                &Patch::Apply(web(5, "web:2")),
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let (b, g) = both(&e, conflicting).await;
    assert!(
        b.as_ref().is_err_and(|m| m.contains("kubectl")),
        "blue: {b:?}"
    );
    assert_eq!(b, g);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_removes_what_blue_dropped() {
    let e = common::env(35, 35).await;
    seed(&e.blue).await;
    migrate(&e).await;
    // kubectl's next client-side apply on blue drops key `b`.
    let mut cm = config_maps(&e.blue).get("settings").await.unwrap();
    cm.data["data"].as_object_mut().unwrap().remove("b");
    let params = PostParams {
        field_manager: Some("kubectl-client-side-apply".into()),
        ..PostParams::default()
    };
    config_maps(&e.blue)
        .replace("settings", &params, &cm)
        .await
        .unwrap();
    migrate(&e).await;
    let (b, g) = both(&e, |c| async move {
        config_maps(&c).get("settings").await.unwrap()
    })
    .await;
    assert_eq!(g.data["data"], json!({"a": "1"}));
    assert_eq!(seen(&b, "v1", "ConfigMap"), seen(&g, "v1", "ConfigMap"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_is_clean_after_a_migration_across_releases_and_names_drift() {
    // Blue's release defaults less than green's (a Job's podReplacementPolicy from 1.29).
    let e = common::env(28, 35).await;
    seed(&e.blue).await;
    let job = json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "once", "namespace": "shop"},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox"}]}}}});
    common::create_as(&e.blue_server, "jobs", "kubectl-create", job).await;
    migrate(&e).await;
    let options = MigrationOptions::default();
    let report = rotor_migration::diff(&e.blue, &e.green, &options, &[])
        .await
        .unwrap();
    assert!(report.is_clean(), "{}", report.table());
    let green_job = Api::<DynamicObject>::namespaced_with(
        e.green.clone(),
        "shop",
        &ApiResource::from_gvk(&GroupVersionKind::gvk("batch", "v1", "Job")),
    )
    .get("once")
    .await
    .unwrap();
    assert!(
        green_job.data["spec"].get("podReplacementPolicy").is_some(),
        "green's release defaults it, so the diff had something to normalise"
    );

    // Someone labels green's ConfigMap with their own manager: the label and the owners differ.
    let label = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "shop", "labels": {"hotfix": "yes"}}});
    config_maps(&e.green)
        .patch(
            "settings",
            &PatchParams::apply("oncall"),
            &Patch::Apply(label),
        )
        .await
        .unwrap();
    let report = rotor_migration::diff(&e.blue, &e.green, &options, &[])
        .await
        .unwrap();
    assert_eq!(report.differs, 1, "{}", report.table());
    let table = report.table();
    assert!(
        table.contains("metadata.labels: blue (absent), green {\"hotfix\":\"yes\"}"),
        "{table}"
    );
    assert!(
        table.contains(
            "metadata.managedFields: blue kubectl-client-side-apply/Update, green \
             kubectl-client-side-apply/Update, oncall/Apply"
        ),
        "{table}"
    );
    let ignore = [
        "metadata.labels".to_string(),
        "metadata.managedFields".to_string(),
    ];
    let report = rotor_migration::diff(&e.blue, &e.green, &options, &ignore)
        .await
        .unwrap();
    assert!(report.is_clean(), "{}", report.table());
}
