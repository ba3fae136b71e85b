//! The engine against two in-process simulated clusters over HTTP: blue seeded with a realistic
//! application, green empty.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use rotor_apiserver::ApiServer;
use rotor_migration::{
    ApplyReport, Checkpoint, MemoryCheckpoint, MigrationOptions, Plan, Stage, apply, plan,
    readiness, sanitize, wait_ready,
};
use serde_json::{Value, json};

use crate::common;
use common::Env;

async fn env(green_minor: u32) -> Env {
    common::env(35, green_minor).await
}

/// Creates `obj` in-process, as a user would have with kubectl.
async fn put(server: &ApiServer, obj: Value) {
    let kind = obj["kind"].as_str().unwrap();
    let plural = match kind {
        "Ingress" => "ingresses".to_string(),
        "Endpoints" => "endpoints".to_string(),
        "StorageClass" => "storageclasses".to_string(),
        "PodDisruptionBudget" => "poddisruptionbudgets".to_string(),
        "NetworkPolicy" => "networkpolicies".to_string(),
        k => format!("{}s", k.to_lowercase()),
    };
    common::create_as(server, &plural, "kubectl", obj).await;
}

fn deployment(ns: &str, name: &str, replicas: i64, volumes: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "shop"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {
                "serviceAccountName": "web",
                "containers": [{"name": "main", "image": format!("registry.example/{name}:1.2"),
                    "envFrom": [{"secretRef": {"name": "db-credentials"}}]}],
                "volumes": volumes}}}})
}

/// The application: two namespaces of typical objects, a CRD with three objects, and what a
/// cluster makes for itself (which must stay behind).
async fn seed_app(s: &ApiServer) {
    for ns in ["shop", "analytics"] {
        put(s, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"team": "shop"}}})).await;
        // Made by every cluster: never copied.
        put(s, json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}})).await;
        put(s, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt", "namespace": ns}, "data": {"ca.crt": "x"}})).await;
    }
    put(s, json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kubernetes", "namespace": "default"},
        "spec": {"ports": [{"name": "https", "port": 443}]}})).await;
    put(s, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "coredns", "namespace": "kube-system"}, "data": {"Corefile": "."}})).await;
    put(s, json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "cluster-admin", "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}}, "rules": []})).await;

    // Cluster-scoped parts of the application.
    put(s, json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object", "properties": {"spec": {"type": "object", "properties": {
                    "size": {"type": "integer"}, "color": {"type": "string"}}}}}}}]}})).await;
    put(s, json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "widget-viewer"},
        "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get", "list"]}]})).await;
    put(s, json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "widget-viewer"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "widget-viewer"},
        "subjects": [{"kind": "ServiceAccount", "name": "web", "namespace": "shop"}]})).await;
    put(s, json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"},
        "provisioner": "example.com/disk", "parameters": {"type": "ssd"}})).await;

    // shop
    put(s, json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web", "namespace": "shop"}})).await;
    put(s, json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web-token", "namespace": "shop",
        "annotations": {"kubernetes.io/service-account.name": "web"}},
        "type": "kubernetes.io/service-account-token", "data": {"token": "dG9rZW4="}})).await;
    put(s, json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-credentials", "namespace": "shop"},
        "type": "Opaque", "data": {"password": "aHVudGVyMg=="}})).await;
    put(s, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-config", "namespace": "shop", "labels": {"app": "web"}},
        "data": {"LOG_LEVEL": "info", "FEATURES": "a,b"}})).await;
    put(s, json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "web-reader", "namespace": "shop"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]})).await;
    put(s, json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "web-reader", "namespace": "shop"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "web-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "web", "namespace": "shop"}]})).await;
    put(
        s,
        deployment(
            "shop",
            "web",
            3,
            json!([{"name": "config", "configMap": {"name": "web-config"}}]),
        ),
    )
    .await;
    put(
        s,
        deployment(
            "shop",
            "worker",
            2,
            json!([{"name": "scratch", "emptyDir": {}}]),
        ),
    )
    .await;
    put(s, json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "cache", "namespace": "shop"},
        "spec": {"replicas": 2, "serviceName": "cache", "selector": {"matchLabels": {"app": "cache"}},
            "template": {"metadata": {"labels": {"app": "cache"}}, "spec": {
                "containers": [{"name": "redis", "image": "redis:7"}], "volumes": [{"name": "data", "emptyDir": {}}]}}}})).await;
    put(s, json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}})).await;
    put(s, json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "cache", "namespace": "shop"},
        "spec": {"clusterIP": "None", "selector": {"app": "cache"}, "ports": [{"port": 6379}]}})).await;
    put(s, json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"rules": [{"host": "shop.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}})).await;
    put(s, json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}})).await;
    put(s, json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 3, "maxReplicas": 10}})).await;
    // A ReplicaSet's pod: its controller recreates it in green. Its owners exist (by uid), or
    // the API server's garbage collector would take it, as upstream's does.
    let uid_of = |plural: &'static str, group: &'static str, name: &'static str| async move {
        let res = s.resource(group, "v1", plural).unwrap();
        let obj = s.get(&res, Some("shop"), name).await.unwrap();
        obj["metadata"]["uid"].as_str().unwrap().to_string()
    };
    let web = uid_of("deployments", "apps", "web").await;
    put(s, json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-5d8f", "namespace": "shop",
        "labels": {"app": "web"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": web, "controller": true}]},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "main", "image": "registry.example/web:1.2"}]}}}})).await;
    let replica_set = uid_of("replicasets", "apps", "web-5d8f").await;
    put(s, json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-5d8f-abcde", "namespace": "shop",
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f", "uid": replica_set, "controller": true}]},
        "spec": {"nodeName": "node-0", "containers": [{"name": "main", "image": "registry.example/web:1.2"}]}})).await;
    put(s, json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.1", "namespace": "shop"},
        "involvedObject": {"kind": "Deployment", "name": "web", "namespace": "shop"}, "reason": "ScalingReplicaSet", "message": "scaled"})).await;
    for (ns, name, size) in [
        ("shop", "blue-one", 1),
        ("shop", "red-two", 2),
        ("analytics", "green-three", 3),
    ] {
        let labels = if name == "red-two" {
            json!({"app": "web"})
        } else {
            json!({})
        };
        put(s, json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"size": size, "color": name.split('-').next().unwrap()}})).await;
    }

    // analytics
    put(s, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pipeline", "namespace": "analytics"}, "data": {"batch": "500"}})).await;
    put(s, json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-credentials", "namespace": "analytics"}, "stringData": {"password": "p"}})).await;
    put(s, json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web", "namespace": "analytics"}})).await;
    put(s, deployment("analytics", "ingest", 1, json!([]))).await;
    put(s, json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly", "namespace": "analytics"},
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure",
            "containers": [{"name": "report", "image": "registry.example/report:1"}]}}}}}})).await;
    put(s, json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ingest", "namespace": "analytics"},
        "spec": {"selector": {"app": "ingest"}, "ports": [{"port": 9000}]}})).await;
}

/// What must move: `Kind namespace/name` (cluster-scoped: `Kind name`).
const APP: &[&str] = &[
    "CustomResourceDefinition widgets.example.com",
    "Namespace analytics",
    "Namespace shop",
    "ClusterRole widget-viewer",
    "ClusterRoleBinding widget-viewer",
    "StorageClass fast",
    "ServiceAccount shop/web",
    "ServiceAccount analytics/web",
    "Secret shop/db-credentials",
    "Secret analytics/db-credentials",
    "ConfigMap shop/web-config",
    "ConfigMap analytics/pipeline",
    "Role shop/web-reader",
    "RoleBinding shop/web-reader",
    "Service shop/web",
    "Service shop/cache",
    "Service analytics/ingest",
    "Widget shop/blue-one",
    "Widget shop/red-two",
    "Widget analytics/green-three",
    "Deployment shop/web",
    "Deployment shop/worker",
    "Deployment analytics/ingest",
    "StatefulSet shop/cache",
    "CronJob analytics/nightly",
    "Ingress shop/web",
    "PodDisruptionBudget shop/web",
    "HorizontalPodAutoscaler shop/web",
];

fn planned(plan: &Plan) -> BTreeSet<String> {
    plan.objects()
        .map(|(_, r, o)| format!("{} {}", r.kind, o.qualified_name()))
        .collect()
}

/// Every object of the plan's kinds, sanitized, by `Kind namespace/name`, with its
/// resourceVersion and owners.
async fn snapshot(client: &Client, plan: &Plan) -> BTreeMap<String, (Value, String, Value)> {
    let mut out = BTreeMap::new();
    let kinds: BTreeSet<_> = plan.objects().map(|(_, r, _)| r.clone()).collect();
    for r in kinds {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &r.api_resource());
        let Ok(list) = api.list(&Default::default()).await else {
            continue; // a custom resource green does not serve yet
        };
        for o in list {
            let key = match o.namespace() {
                Some(ns) => format!("{} {ns}/{}", r.kind, o.name_any()),
                None => format!("{} {}", r.kind, o.name_any()),
            };
            let rv = o.resource_version().unwrap_or_default();
            let body = sanitize(&o, &r.api_version(), &r.kind, &|_| true);
            out.insert(key, (body, rv, common::owners(&o)));
        }
    }
    out
}

/// Blue's and green's copies of the planned objects are equal after sanitizing; green has
/// nothing else of those kinds but what it made itself (`before`).
async fn assert_same(e: &Env, plan: &Plan, before: &BTreeSet<String>) {
    let blue = snapshot(&e.blue, plan).await;
    let green = snapshot(&e.green, plan).await;
    let keys = planned(plan);
    for k in &keys {
        let b = blue.get(k).unwrap_or_else(|| panic!("{k} not in blue"));
        let g = green.get(k).unwrap_or_else(|| panic!("{k} not in green"));
        assert_eq!(b.0, g.0, "{k} differs");
        assert_eq!(b.2, g.2, "{k}: green's owners differ from blue's");
    }
    let extra: Vec<_> = green
        .keys()
        .filter(|k| !keys.contains(*k) && !before.contains(*k))
        .collect();
    assert!(extra.is_empty(), "green has more: {extra:?}");
}

fn assert_complete(r: &ApplyReport) {
    assert!(r.is_complete(), "{r:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrates_a_realistic_app_once() {
    let e = env(35).await;
    seed_app(&e.blue_server).await;
    // The simulator's deployment controller takes the Deployments over (the hand-made
    // ReplicaSet goes to 0): its ReplicaSets' Pods are the controller-owned objects the plan
    // leaves behind (bounded wait for the first of them).
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(e.blue.clone(), "shop");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let simulated = |p: &k8s_openapi::api::core::v1::Pod| {
        p.metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.kind == "ReplicaSet" && o.name != "web-5d8f")
    };
    while !pods
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .any(simulated)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no simulated Pod in blue within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let options = MigrationOptions::default();
    let plan = plan(&e.blue, &options).await.unwrap();
    let want: BTreeSet<String> = APP.iter().map(|s| s.to_string()).collect();
    assert_eq!(planned(&plan), want, "{}", plan.objects_table());

    // Stages in order, each kind where it belongs.
    let stages: Vec<Stage> = plan.stages.iter().map(|s| s.stage).collect();
    assert_eq!(
        stages,
        [
            Stage::Crds,
            Stage::Namespaces,
            Stage::ClusterScoped,
            Stage::Config,
            Stage::Services,
            Stage::CustomResources,
            Stage::Workloads,
            Stage::Policies,
        ]
    );
    let stage_of = |kind: &str| {
        plan.objects()
            .find(|(_, r, _)| r.kind == kind)
            .map(|(s, _, _)| s)
            .unwrap()
    };
    assert_eq!(stage_of("StorageClass"), Stage::ClusterScoped);
    assert_eq!(stage_of("Secret"), Stage::Config);
    assert_eq!(stage_of("Widget"), Stage::CustomResources);
    assert_eq!(stage_of("CronJob"), Stage::Workloads);
    assert_eq!(stage_of("HorizontalPodAutoscaler"), Stage::Policies);
    // What stays behind is accounted for.
    for why in [
        "Secret: service-account token (green issues its own)",
        "ServiceAccount: made by the cluster",
        "ConfigMap: made by the cluster",
        "ConfigMap: system namespace",
        "Service: made by the cluster",
        "Pod: controller-owned (green's controller recreates it)",
        "ClusterRole: made by the cluster",
    ] {
        assert!(plan.skipped.contains_key(why), "{why}: {:?}", plan.skipped);
    }
    assert!(
        plan.kinds_left.iter().any(|k| k == "Event"),
        "{:?}",
        plan.kinds_left
    );
    assert!(
        plan.kinds_left
            .iter()
            .any(|k| k == "Lease.coordination.k8s.io")
    );

    // JSON round trip and a table.
    let json = serde_json::to_string(&plan).unwrap();
    assert_eq!(serde_json::from_str::<Plan>(&json).unwrap(), plan);
    let table = plan.to_string();
    assert!(
        table.contains("customResources   Widget.example.com"),
        "{table}"
    );
    assert!(table.contains("28 objects in 8 stages"), "{table}");
    let rows: Vec<Vec<String>> = plan
        .objects_table()
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    assert_eq!(rows[0], ["STAGE", "KIND", "NAMESPACE", "NAME"]);
    assert!(
        rows.contains(
            &["workloads", "StatefulSet.apps", "shop", "cache"]
                .map(String::from)
                .to_vec()
        )
    );
    assert!(
        rows.contains(
            &["namespaces", "Namespace", "shop"]
                .map(String::from)
                .to_vec()
        )
    );

    let before: BTreeSet<String> = snapshot(&e.green, &plan).await.into_keys().collect();
    let cp = MemoryCheckpoint::new();
    let first = apply(&e.green, &plan, &options, &cp).await;
    assert_complete(&first);
    assert_eq!((first.total, first.applied, first.skipped), (28, 28, 0));
    assert_same(&e, &plan, &before).await;

    // Applied stage by stage: every write of a stage precedes every write of the next (green's
    // resourceVersions are one growing revision). Workloads are left out: the simulated cluster
    // writes their status (a new resourceVersion) whenever it likes after the apply.
    let green = snapshot(&e.green, &plan).await;
    let mut last_max = 0u64;
    for s in &plan.stages {
        let rvs: Vec<u64> = s
            .resources
            .iter()
            .filter(|r| {
                !matches!(
                    r.resource.kind.as_str(),
                    "Deployment" | "StatefulSet" | "DaemonSet"
                )
            })
            .flat_map(|r| {
                r.objects
                    .iter()
                    .map(move |o| format!("{} {}", r.resource.kind, o.qualified_name()))
            })
            .map(|k| green[&k].1.parse::<u64>().unwrap())
            .collect();
        let (Some(min), Some(max)) = (rvs.iter().min().copied(), rvs.iter().max().copied()) else {
            continue;
        };
        assert!(min > last_max, "stage {} overlaps the one before", s.stage);
        last_max = max;
    }

    // The workloads come up in green.
    let ready = wait_ready(&e.green, &plan, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!((ready.ready, ready.total), (4, 4));

    // A second run with the same checkpoint applies nothing.
    let second = apply(&e.green, &plan, &options, &cp).await;
    assert_complete(&second);
    assert_eq!((second.applied, second.skipped), (0, 28));
    // Without a checkpoint it writes again, and finds nothing to change: no object's content
    // or owners move, nor the resourceVersion of any object but the workloads, whose status
    // green's simulated controllers write at any time (a Deployment's conditions after its
    // Pods became ready).
    let unmoved = |m: BTreeMap<String, (Value, String, Value)>| {
        m.into_iter()
            .map(|(k, (body, rv, owners))| {
                let kind = k.split(' ').next().unwrap_or_default();
                let rv = (!WORKLOADS_WITH_STATUS.contains(&kind)).then_some(rv);
                (k, (body, rv, owners))
            })
            .collect::<BTreeMap<_, _>>()
    };
    let before_rerun = unmoved(snapshot(&e.green, &plan).await);
    let again = apply(&e.green, &plan, &options, &MemoryCheckpoint::new()).await;
    assert_complete(&again);
    assert_eq!(again.applied, 28);
    assert_eq!(unmoved(snapshot(&e.green, &plan).await), before_rerun);
}

/// Kinds whose status the simulator's controllers keep writing after they are ready.
const WORKLOADS_WITH_STATUS: [&str; 5] =
    ["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"];

/// Stops `apply` after `n` objects are recorded, like a crash.
struct Crashing<'a> {
    inner: &'a MemoryCheckpoint,
    after: usize,
    crashed: tokio::sync::Notify,
}

impl Checkpoint for Crashing<'_> {
    fn done(&self, key: &str) -> bool {
        self.inner.done(key)
    }
    fn record(&self, key: &str) {
        self.inner.record(key);
        if self.inner.len() >= self.after {
            self.crashed.notify_one();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_after_a_crash() {
    let e = env(35).await;
    seed_app(&e.blue_server).await;
    for i in 0..300 {
        put(&e.blue_server, json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("settings-{i:03}"), "namespace": if i % 2 == 0 { "shop" } else { "analytics" }},
            "data": {"n": i.to_string()}})).await;
    }
    let options = MigrationOptions {
        concurrency: 8,
        ..MigrationOptions::default()
    };
    let plan = plan(&e.blue, &options).await.unwrap();
    assert_eq!(plan.total(), 328);
    let before: BTreeSet<String> = snapshot(&e.green, &plan).await.into_keys().collect();
    let cp = MemoryCheckpoint::new();
    let crashing = Crashing {
        inner: &cp,
        after: 120,
        crashed: tokio::sync::Notify::new(),
    };
    tokio::select! {
        r = apply(&e.green, &plan, &options, &crashing) => panic!("finished before the crash: {r:?}"),
        _ = crashing.crashed.notified() => {}
    }
    let recorded = cp.len();
    assert!((120..328).contains(&recorded), "{recorded}");

    let resumed = apply(&e.green, &plan, &options, &cp).await;
    assert_complete(&resumed);
    assert_eq!(resumed.skipped, recorded);
    assert_eq!(resumed.applied, 328 - recorded);
    assert_same(&e, &plan, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_greens_release_refuses_stops_the_plan_before_any_write() {
    // Green runs 1.29, which does not know Service.spec.trafficDistribution (1.30).
    let e = env(29).await;
    let s = &e.blue_server;
    put(
        s,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    )
    .await;
    put(s, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web", "namespace": "shop"}, "data": {"a": "b"}})).await;
    put(s, json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}], "trafficDistribution": "PreferClose"}})).await;
    let options = MigrationOptions::default();
    let plan = plan(&e.blue, &options).await.unwrap();
    let report = apply(&e.green, &plan, &options, &MemoryCheckpoint::new()).await;
    assert_eq!((report.total, report.applied), (3, 0), "{report:#?}");
    assert_eq!(report.errors.len(), 1, "{report:#?}");
    let err = &report.errors[0];
    assert_eq!(err.object, "Service shop/web");
    assert!(err.message.contains("trafficDistribution"), "{err}");
    assert_eq!(err.code, Some(400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_an_object_only_green_itself_rejects_and_goes_on_with_the_others() {
    let e = env(35).await;
    let s = &e.blue_server;
    put(
        s,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    )
    .await;
    put(s, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web", "namespace": "shop"}, "data": {"a": "b"}})).await;
    put(s, json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})).await;
    put(s, json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "shop"},
        "spec": {"selector": {"app": "api"}, "ports": [{"port": 80}]}})).await;
    // Green has its own, immutable ConfigMap of that name: its data may not change, which no
    // rehearsal can know.
    let g = &e.green_server;
    put(
        g,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    )
    .await;
    put(g, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web", "namespace": "shop"},
        "immutable": true, "data": {"a": "green"}})).await;
    let options = MigrationOptions::default();
    let plan = plan(&e.blue, &options).await.unwrap();
    // Asked first, green names it and stores nothing.
    let judged = rotor_migration::dry_run_on_green(&e.green, &plan, &options)
        .await
        .unwrap();
    assert_eq!(judged.len(), 1, "{judged:#?}");
    assert_eq!(judged[0].object, "ConfigMap shop/web");
    assert!(judged[0].message.contains("immutable"), "{:?}", judged[0]);
    let services: Api<DynamicObject> = Api::namespaced_with(
        e.green.clone(),
        "shop",
        &ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Service")),
    );
    assert!(
        services
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let cp = MemoryCheckpoint::new();
    let report = apply(&e.green, &plan, &options, &cp).await;
    assert!(!report.is_complete());
    assert_eq!((report.total, report.applied), (4, 3));
    assert_eq!(report.errors.len(), 1, "{report:#?}");
    let err = &report.errors[0];
    assert_eq!(err.object, "ConfigMap shop/web");
    assert!(err.message.contains("immutable"), "{err}");
    assert_eq!(err.code, Some(422));
    // Not recorded: a re-run tries it again (and only it).
    let again = apply(&e.green, &plan, &options, &cp).await;
    assert_eq!((again.skipped, again.errors.len()), (3, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_stateful_workloads_unless_allowed() {
    let e = env(35).await;
    let s = &e.blue_server;
    put(
        s,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    )
    .await;
    put(s, json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "shop"},
        "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "pg", "image": "postgres:16"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "10Gi"}}}}]}})).await;
    put(s, json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "uploads", "namespace": "shop"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "volumeName": "pv-blue-1"}})).await;
    put(
        s,
        deployment(
            "shop",
            "web",
            1,
            json!([{"name": "u", "persistentVolumeClaim": {"claimName": "uploads"}}]),
        ),
    )
    .await;

    let err = plan(&e.blue, &MigrationOptions::default())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, rotor_migration::Error::Stateful { ref workloads } if workloads.len() == 2),
        "{msg}"
    );
    assert!(
        msg.contains("StatefulSet shop/db (volumeClaimTemplates data)"),
        "{msg}"
    );
    assert!(
        msg.contains("Deployment shop/web (claims uploads)"),
        "{msg}"
    );

    let allowed = MigrationOptions {
        allow_stateful: true,
        ..MigrationOptions::default()
    };
    let plan = plan(&e.blue, &allowed).await.unwrap();
    assert_eq!(plan.stateful.len(), 2);
    assert!(
        plan.to_string()
            .contains("stateful, data not copied: StatefulSet shop/db")
    );
    let pvc = plan
        .objects()
        .find(|(_, r, _)| r.kind == "PersistentVolumeClaim")
        .unwrap()
        .2;
    assert!(pvc.body["spec"].get("volumeName").is_none());
    assert_complete(&apply(&e.green, &plan, &allowed, &MemoryCheckpoint::new()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_narrows_the_plan() {
    let e = env(35).await;
    seed_app(&e.blue_server).await;
    let mut options = MigrationOptions::default();
    options.policy.selector.exclude_namespaces = vec!["analytics".into()];
    options.policy.skip_kinds = vec![
        "HorizontalPodAutoscaler.autoscaling".into(),
        "StorageClass".into(),
    ];
    let plan = plan(&e.blue, &options).await.unwrap();
    let got = planned(&plan);
    assert!(got.iter().all(|k| !k.contains("analytics")), "{got:?}");
    assert!(!got.contains("HorizontalPodAutoscaler shop/web"));
    assert!(!got.contains("StorageClass fast"));
    assert!(got.contains("Widget shop/red-two"));
    assert!(
        plan.kinds_left
            .iter()
            .any(|k| k == "StorageClass.storage.k8s.io (policy)"),
        "{:?}",
        plan.kinds_left
    );

    // Only labelled objects: the CRD still moves, because a selected Widget needs it.
    let mut options = MigrationOptions::default();
    options.workloads.label_selector =
        Some(serde_json::from_value(json!({"matchLabels": {"app": "web"}})).unwrap());
    let got = planned(&plan_of(&e, &options).await);
    assert_eq!(
        got,
        [
            "ConfigMap shop/web-config",
            "CustomResourceDefinition widgets.example.com",
            "Deployment shop/web",
            "Namespace analytics",
            "Namespace shop",
            "Widget shop/red-two",
        ]
        .map(String::from)
        .into()
    );
}

async fn plan_of(e: &Env, options: &MigrationOptions) -> Plan {
    plan(&e.blue, options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_owner_references_to_moving_owners() {
    let e = env(35).await;
    seed_app(&e.blue_server).await;
    let widgets = e
        .blue_server
        .resource("example.com", "v1", "widgets")
        .unwrap();
    let owner = e
        .blue_server
        .get(&widgets, Some("shop"), "red-two")
        .await
        .unwrap();
    let uid = owner["metadata"]["uid"].as_str().unwrap().to_string();
    put(&e.blue_server, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "red-two-state", "namespace": "shop",
        "ownerReferences": [
            {"apiVersion": "example.com/v1", "kind": "Widget", "name": "red-two", "uid": uid},
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "gone", "uid": "not-moving"}]},
        "data": {"k": "v"}})).await;

    let default = plan_of(&e, &MigrationOptions::default()).await;
    assert!(!planned(&default).contains("ConfigMap shop/red-two-state"));

    let options = MigrationOptions {
        include_owned: true,
        ..MigrationOptions::default()
    };
    let plan = plan_of(&e, &options).await;
    let last = plan.stages.last().unwrap();
    assert_eq!(last.stage, Stage::Owned);
    assert_eq!(last.len(), 1);
    let report = apply(&e.green, &plan, &options, &MemoryCheckpoint::new()).await;
    assert_complete(&report);
    let green_widget: Api<DynamicObject> = Api::namespaced_with(
        e.green.clone(),
        "shop",
        &plan
            .objects()
            .find(|(_, r, _)| r.kind == "Widget")
            .unwrap()
            .1
            .api_resource(),
    );
    let green_uid = green_widget.get("red-two").await.unwrap().uid().unwrap();
    assert_ne!(green_uid, uid);
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(e.green.clone(), "shop");
    let refs = cms
        .get("red-two-state")
        .await
        .unwrap()
        .metadata
        .owner_references
        .unwrap();
    assert_eq!(refs.len(), 1, "{refs:?}");
    assert_eq!(refs[0].uid, green_uid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backs_off_while_green_is_unavailable() {
    let e = env(35).await;
    seed_app(&e.blue_server).await;
    let options = MigrationOptions::default();
    let plan = plan(&e.blue, &options).await.unwrap();
    assert!(e.sim.set_fault("green", rotor_sim::Fault::ApiUnavailable));
    let sim = e.sim.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        sim.clear_faults("green");
    });
    let report = apply(&e.green, &plan, &options, &MemoryCheckpoint::new()).await;
    assert_complete(&report);
    assert!(report.retries > 0);
    // Readiness is a single look, too: nothing is available the moment the objects land.
    let look = readiness(&e.green, &plan).await.unwrap();
    assert_eq!(look.total, 4);
    // Green's status catches up shortly after.
    wait_ready(&e.green, &plan, Duration::from_secs(10))
        .await
        .unwrap();
    let _ = e.green_server;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_names_what_holds_it_up() {
    let e = env(35).await;
    let s = &e.blue_server;
    put(
        s,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    )
    .await;
    put(s, deployment("shop", "web", 2, json!([]))).await;
    let options = MigrationOptions::default();
    let plan = plan(&e.blue, &options).await.unwrap();
    // Nothing applied: green has no such Deployment.
    let err = wait_ready(&e.green, &plan, Duration::from_millis(300))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("0/1 workloads available"), "{msg}");
    assert!(msg.contains("Deployment shop/web: not in green"), "{msg}");
}
