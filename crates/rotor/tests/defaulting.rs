//! Defaulting as kube-apiserver does it, through kube-rs over real HTTP: the built-in kinds'
//! defaults after create, after an update that removed them, after merge, strategic and JSON
//! patches that removed them, and after server-side apply (where the applier does not own
//! them); explicit nulls dropped; `metadata.generation` only on the kinds that use it; a CRD's
//! schema defaults on every write.

use crate::common;

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

fn api(client: &kube::Client, gv: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let (group, version) = gv.rsplit_once('/').unwrap_or(("", gv));
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    Api::namespaced_with(client.clone(), "default", &ar)
}

fn obj(v: Value) -> DynamicObject {
    serde_json::from_value(v).expect("object")
}

async fn get(api: &Api<DynamicObject>, name: &str) -> Value {
    serde_json::to_value(api.get(name).await.expect("get")).expect("json")
}

fn deployment(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{
                "name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
                "readinessProbe": {"httpGet": {"port": 80}},
            }, {"name": "side", "image": "busybox"}]}}},
    })
}

/// Every default upstream gives the Deployment above.
fn assert_deployment_defaults(d: &Value) {
    let spec = &d["spec"];
    assert_eq!(spec["replicas"], 1, "{d}");
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Always");
    assert_eq!(pod["dnsPolicy"], "ClusterFirst");
    assert_eq!(pod["schedulerName"], "default-scheduler");
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    assert_eq!(pod["securityContext"], json!({}));
    let web = &pod["containers"][0];
    assert_eq!(web["imagePullPolicy"], "IfNotPresent");
    assert_eq!(web["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(web["terminationMessagePolicy"], "File");
    assert_eq!(web["ports"][0]["protocol"], "TCP");
    assert_eq!(
        web["readinessProbe"],
        json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
            "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
    );
    assert_eq!(
        pod["containers"][1]["imagePullPolicy"], "Always",
        "untagged is latest"
    );
}

#[tokio::test]
async fn deployment_defaults_return_after_every_kind_of_write() {
    let ts = common::start(common::memory()).await;
    let deps = api(&ts.client, "apps/v1", "Deployment", "deployments");
    let created = deps
        .create(&PostParams::default(), &obj(deployment("web")))
        .await
        .expect("create");
    let created = serde_json::to_value(created).expect("json");
    assert_deployment_defaults(&created);
    assert_eq!(created["metadata"]["generation"], 1);

    // PUT without the defaulted fields: they come back, and nothing changed, so neither
    // resourceVersion nor generation moves.
    let mut put = deployment("web");
    put["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"].clone();
    let updated = deps
        .replace("web", &PostParams::default(), &obj(put))
        .await
        .expect("update");
    let updated = serde_json::to_value(updated).expect("json");
    assert_deployment_defaults(&updated);
    assert_eq!(updated["metadata"]["generation"], 1);
    assert_eq!(
        updated["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );

    // A merge patch that nulls them, a JSON patch that removes them, a strategic patch that
    // deletes them: each time the defaults are back.
    let pp = PatchParams::default();
    deps.patch(
        "web",
        &pp,
        &Patch::Merge(
            json!({"spec": {"replicas": null, "strategy": null, "revisionHistoryLimit": null}}),
        ),
    )
    .await
    .expect("merge patch");
    assert_deployment_defaults(&get(&deps, "web").await);
    let json_patch = json!([
        {"op": "remove", "path": "/spec/progressDeadlineSeconds"},
        {"op": "remove", "path": "/spec/template/spec/dnsPolicy"},
        {"op": "remove", "path": "/spec/template/spec/containers/0/terminationMessagePath"},
    ]);
    let req = http::Request::patch("/apis/apps/v1/namespaces/default/deployments/web")
        .header("content-type", "application/json-patch+json")
        .body(serde_json::to_vec(&json_patch).expect("bytes"))
        .expect("request");
    ts.client.request_text(req).await.expect("json patch");
    assert_deployment_defaults(&get(&deps, "web").await);
    deps.patch(
        "web",
        &pp,
        &Patch::Strategic(json!({"spec": {"strategy": {"$patch": "delete"},
            "template": {"spec": {"securityContext": null, "restartPolicy": null}}}})),
    )
    .await
    .expect("strategic patch");
    let after = get(&deps, "web").await;
    assert_deployment_defaults(&after);
    assert_eq!(
        after["metadata"]["generation"], 1,
        "no real change: {after}"
    );
}

#[tokio::test]
async fn apply_keeps_defaults_that_the_applier_does_not_own() {
    let ts = common::start(common::memory()).await;
    let deps = api(&ts.client, "apps/v1", "Deployment", "deployments");
    let mut manifest = deployment("applied");
    manifest["spec"]["replicas"] = json!(3);
    let pp = PatchParams::apply("tester");
    deps.patch("applied", &pp, &Patch::Apply(&manifest))
        .await
        .expect("apply creates");
    let d = get(&deps, "applied").await;
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    let owned = d["metadata"]["managedFields"]
        .as_array()
        .expect("managed fields")
        .iter()
        .find(|m| m["manager"] == "tester")
        .expect("the applier's entry")["fieldsV1"]["f:spec"]
        .clone();
    assert!(owned.get("f:replicas").is_some(), "{owned}");
    for defaulted in [
        "f:revisionHistoryLimit",
        "f:strategy",
        "f:progressDeadlineSeconds",
    ] {
        assert!(
            owned.get(defaulted).is_none(),
            "the applier must not own {defaulted}: {owned}"
        );
    }
    // The same manager applies without replicas: it gives the field up, defaulting restores 1.
    manifest["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("replicas");
    deps.patch("applied", &pp, &Patch::Apply(&manifest))
        .await
        .expect("apply again");
    let d = get(&deps, "applied").await;
    assert_deployment_defaults(&d);
    assert_eq!(d["metadata"]["generation"], 2, "3 → 1 replicas is a change");
}

/// A kind's API, an object to create, and the (JSON pointer, value) pairs defaulting must add.
type DefaultingCase = (Api<DynamicObject>, Value, Vec<(&'static str, Value)>);

#[tokio::test]
async fn other_kinds_get_upstreams_defaults() {
    let ts = common::start(common::memory()).await;
    let c = &ts.client;
    // StatefulSets and DaemonSets allow only `Always` (validation), Jobs `OnFailure` or `Never`.
    let pod_template = json!({"metadata": {"labels": {"app": "x"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}});
    let job_pod_template = json!({"metadata": {"labels": {"app": "x"}},
        "spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox:1.36"}]}});
    let cases: Vec<DefaultingCase> = vec![
        (
            api(c, "v1", "Service", "services"),
            json!({"metadata": {"name": "svc"}, "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}}),
            vec![
                ("/spec/type", json!("ClusterIP")),
                ("/spec/sessionAffinity", json!("None")),
                ("/spec/ports/0/protocol", json!("TCP")),
                ("/spec/ports/0/targetPort", json!(80)),
                ("/spec/internalTrafficPolicy", json!("Cluster")),
                ("/spec/ipFamilyPolicy", json!("SingleStack")),
                ("/spec/ipFamilies", json!(["IPv4"])),
            ],
        ),
        (
            api(c, "v1", "Secret", "secrets"),
            json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}}),
            vec![("/type", json!("Opaque"))],
        ),
        (
            api(c, "v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
            json!({"metadata": {"name": "pvc"}, "spec": {"accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}}}),
            vec![("/spec/volumeMode", json!("Filesystem"))],
        ),
        (
            api(c, "apps/v1", "StatefulSet", "statefulsets"),
            json!({"metadata": {"name": "ss"}, "spec": {"serviceName": "svc",
                "selector": {"matchLabels": {"app": "x"}}, "template": pod_template}}),
            vec![
                ("/spec/replicas", json!(1)),
                ("/spec/podManagementPolicy", json!("OrderedReady")),
                (
                    "/spec/updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
                ),
                ("/spec/revisionHistoryLimit", json!(10)),
                (
                    "/spec/persistentVolumeClaimRetentionPolicy",
                    json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
                ),
                ("/spec/template/spec/restartPolicy", json!("Always")),
                (
                    "/spec/template/spec/containers/0/imagePullPolicy",
                    json!("IfNotPresent"),
                ),
            ],
        ),
        (
            api(c, "apps/v1", "DaemonSet", "daemonsets"),
            json!({"metadata": {"name": "ds"}, "spec": {
                "selector": {"matchLabels": {"app": "x"}}, "template": pod_template}}),
            vec![
                (
                    "/spec/updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
                ),
                ("/spec/revisionHistoryLimit", json!(10)),
            ],
        ),
        (
            api(c, "batch/v1", "Job", "jobs"),
            json!({"metadata": {"name": "job"}, "spec": {"template": job_pod_template}}),
            vec![
                ("/spec/completions", json!(1)),
                ("/spec/parallelism", json!(1)),
                ("/spec/backoffLimit", json!(6)),
                ("/spec/completionMode", json!("NonIndexed")),
                ("/spec/suspend", json!(false)),
                ("/spec/podReplacementPolicy", json!("TerminatingOrFailed")),
                ("/metadata/labels", json!({"app": "x"})),
            ],
        ),
        (
            api(c, "batch/v1", "CronJob", "cronjobs"),
            json!({"metadata": {"name": "cron"}, "spec": {"schedule": "*/5 * * * *",
                "jobTemplate": {"spec": {"template": job_pod_template}}}}),
            vec![
                ("/spec/concurrencyPolicy", json!("Allow")),
                ("/spec/suspend", json!(false)),
                ("/spec/successfulJobsHistoryLimit", json!(3)),
                ("/spec/failedJobsHistoryLimit", json!(1)),
                (
                    "/spec/jobTemplate/spec/template/spec/dnsPolicy",
                    json!("ClusterFirst"),
                ),
            ],
        ),
        (
            api(
                c,
                "autoscaling/v2",
                "HorizontalPodAutoscaler",
                "horizontalpodautoscalers",
            ),
            json!({"metadata": {"name": "hpa"}, "spec": {"maxReplicas": 5,
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}}),
            vec![
                ("/spec/minReplicas", json!(1)),
                (
                    "/spec/metrics/0/resource",
                    json!({"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}),
                ),
                (
                    "/spec/behavior/scaleDown",
                    json!({"stabilizationWindowSeconds": 60, "selectPolicy": "Max",
                    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}),
                ),
                (
                    "/spec/behavior/scaleUp/policies/0",
                    json!({"type": "Pods", "value": 4, "periodSeconds": 15}),
                ),
            ],
        ),
        (
            api(
                c,
                "rbac.authorization.k8s.io/v1",
                "RoleBinding",
                "rolebindings",
            ),
            json!({"metadata": {"name": "rb"}, "roleRef": {"kind": "Role", "name": "r"},
                "subjects": [{"kind": "User", "name": "u"}, {"kind": "ServiceAccount", "name": "sa", "namespace": "default"}]}),
            vec![
                ("/roleRef/apiGroup", json!("rbac.authorization.k8s.io")),
                ("/subjects/0/apiGroup", json!("rbac.authorization.k8s.io")),
            ],
        ),
    ];
    for (api, body, expected) in cases {
        let created = api
            .create(&PostParams::default(), &obj(body))
            .await
            .unwrap_or_else(|e| panic!("create: {e}"));
        let created = serde_json::to_value(created).expect("json");
        for (pointer, want) in expected {
            assert_eq!(
                created.pointer(pointer),
                Some(&want),
                "{pointer} of {}",
                created["kind"]
            );
        }
    }
}

#[tokio::test]
async fn nulls_are_dropped_and_generation_is_only_where_upstream_has_it() {
    let ts = common::start(common::memory()).await;
    let cms = api(&ts.client, "v1", "ConfigMap", "configmaps");
    let created = cms
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "cm", "annotations": null},
                "data": {"a": "b"}, "binaryData": null})),
        )
        .await
        .expect("create");
    let created = serde_json::to_value(created).expect("json");
    assert!(created.get("binaryData").is_none(), "{created}");
    assert!(
        created["metadata"].get("annotations").is_none(),
        "{created}"
    );
    assert!(
        created["metadata"].get("generation").is_none(),
        "ConfigMaps carry no generation upstream: {created}"
    );
    let svc = api(&ts.client, "v1", "Service", "services");
    let s = svc
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}], "selector": null}})),
        )
        .await
        .expect("service");
    let s = serde_json::to_value(s).expect("json");
    assert!(s["spec"].get("selector").is_none(), "{s}");
    assert!(s["metadata"].get("generation").is_none(), "{s}");
    let mut updated = s.clone();
    updated["spec"]["ports"][0]["port"] = json!(81);
    updated["spec"]["ports"][0]["targetPort"] = json!(81);
    let u = svc
        .replace("svc", &PostParams::default(), &obj(updated))
        .await
        .expect("update");
    assert!(u.metadata.generation.is_none());
}

const CRD: &str = r#"{
  "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
  "metadata": {"name": "widgets.example.com"},
  "spec": {"group": "example.com", "scope": "Namespaced",
    "names": {"plural": "widgets", "kind": "Widget"},
    "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
      "type": "object", "properties": {"spec": {"type": "object", "default": {}, "properties": {
        "size": {"type": "integer", "default": 3},
        "color": {"type": "string", "nullable": true},
        "shape": {"type": "string"},
        "parts": {"type": "array", "items": {"type": "object", "properties": {
          "kind": {"type": "string", "default": "bolt"}, "count": {"type": "integer"}}}}}}}}}}]}
}"#;

#[tokio::test]
async fn crd_schema_defaults_apply_on_every_write() {
    let ts = common::start(common::memory()).await;
    let crds = Api::<DynamicObject>::all_with(
        ts.client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    let crd = crds
        .create(
            &PostParams::default(),
            &obj(serde_json::from_str(CRD).expect("crd")),
        )
        .await
        .expect("crd");
    let crd = serde_json::to_value(crd).expect("json");
    assert_eq!(crd["spec"]["names"]["singular"], "widget");
    assert_eq!(crd["spec"]["names"]["listKind"], "WidgetList");
    assert_eq!(crd["spec"]["conversion"], json!({"strategy": "None"}));

    let widgets = api(&ts.client, "example.com/v1", "Widget", "widgets");
    let w = common::eventually(
        std::time::Duration::from_secs(10),
        "the CRD to serve",
        || {
            let widgets = widgets.clone();
            async move {
                widgets
                    .create(
                        &PostParams::default(),
                        &obj(json!({"apiVersion": "example.com/v1", "kind": "Widget",
                        "metadata": {"name": "w"}})),
                    )
                    .await
                    .ok()
            }
        },
    )
    .await;
    assert_eq!(
        serde_json::to_value(w).expect("json")["spec"],
        json!({"size": 3})
    );

    widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": null, "color": "red",
                "parts": [{"count": 2}, {"kind": "nut"}]}})),
        )
        .await
        .expect("merge patch");
    assert_eq!(
        get(&widgets, "w").await["spec"],
        json!({"size": 3, "color": "red", "parts": [{"kind": "bolt", "count": 2}, {"kind": "nut"}]})
    );
    // A PUT with explicit nulls: the nullable one stays null, the others take their default
    // or go.
    let mut put = get(&widgets, "w").await;
    put["spec"] = json!({"size": null, "color": null, "shape": null, "parts": []});
    widgets
        .replace("w", &PostParams::default(), &obj(put))
        .await
        .expect("update");
    assert_eq!(
        get(&widgets, "w").await["spec"],
        json!({"size": 3, "color": null, "parts": []})
    );
}
