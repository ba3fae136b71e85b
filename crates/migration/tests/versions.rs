//! API versions across releases, against simulated clusters over HTTP: a version green no longer
//! serves is converted when the releases' definitions say it is lossless, refused up front
//! otherwise; the pre-flight answers the same from green's discovery and from the target
//! release's OpenAPI data.

use kube::api::{Api, ApiResource, DynamicObject};
use kube::discovery::Discovery;
use kube::{Client, ResourceExt};
use rotor_apiserver::ApiServer;
use rotor_migration::{
    BlockedObject, Error, MemoryCheckpoint, MigrationOptions, Plan, ServedVersions, VersionChoice,
    apply, plan, plan_for, sanitize,
};
use serde_json::{Value, json};

const FC: &str = "flowcontrol.apiserver.k8s.io";

use crate::common;
use common::env;

/// Creates `obj` in-process at its apiVersion, as a user would have with kubectl.
async fn put(server: &ApiServer, plural: &str, obj: Value) {
    common::create_as(server, plural, "kubectl", obj).await;
}

fn ar(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn flow_schema(version: &str, name: &str, level: &str) -> Value {
    json!({"apiVersion": format!("{FC}/{version}"), "kind": "FlowSchema",
        "metadata": {"name": name, "labels": {"team": "shop"}},
        "spec": {"priorityLevelConfiguration": {"name": level}, "matchingPrecedence": 1000,
            "distinguisherMethod": {"type": "ByUser"},
            "rules": [{"subjects": [{"kind": "ServiceAccount",
                    "serviceAccount": {"name": "web", "namespace": "shop"}}],
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                    "namespaces": ["*"]}]}]}})
}

async fn seed_namespace(s: &ApiServer) {
    put(
        s,
        "namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    )
    .await;
    put(
        s,
        "configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "shop"}, "data": {"mode": "fast"}}),
    )
    .await;
}

/// Every object of a kind in a cluster, sanitized, by name.
async fn sanitized(
    client: &Client,
    res: &ApiResource,
) -> std::collections::BTreeMap<String, Value> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), res);
    api.list(&Default::default())
        .await
        .unwrap_or_else(|e| panic!("listing {} {}: {e}", res.api_version, res.plural))
        .into_iter()
        .map(|o| {
            (
                o.name_any(),
                sanitize(&o, &res.api_version, &res.kind, &|_| true),
            )
        })
        .collect()
}

fn choice<'a>(plan: &'a Plan, kind: &str) -> &'a VersionChoice {
    &plan
        .versions
        .iter()
        .find(|v| v.kind == kind)
        .unwrap_or_else(|| panic!("{kind} not in the pre-flight: {:#?}", plan.versions))
        .choice
}

/// What the pre-flight says, comparable across sources: (kind, objects, choice) and the blocked.
fn verdict(plan: &Plan) -> (Vec<(String, usize, VersionChoice)>, Vec<BlockedObject>) {
    (
        plan.versions
            .iter()
            .filter(|v| v.objects > 0)
            .map(|v| (v.kind.clone(), v.objects, v.choice.clone()))
            .collect(),
        plan.blocked.clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_schemas_convert_from_1_28_to_1_32() {
    let e = env(28, 32).await;
    seed_namespace(&e.blue_server).await;
    put(&e.blue_server, "prioritylevelconfigurations", json!({"apiVersion": format!("{FC}/v1beta3"),
        "kind": "PriorityLevelConfiguration", "metadata": {"name": "shop"},
        "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": 10, "lendablePercent": 20,
            "limitResponse": {"type": "Queue", "queuing": {"queues": 16, "handSize": 4, "queueLengthLimit": 50}}}}}))
    .await;
    put(
        &e.blue_server,
        "flowschemas",
        flow_schema("v1beta3", "shop-api", "shop"),
    )
    .await;
    // Written at the older beta: one storage, so blue serves it at v1beta3 too.
    put(
        &e.blue_server,
        "flowschemas",
        flow_schema("v1beta2", "shop-batch", "shop"),
    )
    .await;
    // The API server's own configuration stays behind.
    let mut mandatory = flow_schema("v1beta3", "exempt", "exempt");
    mandatory["metadata"]["annotations"] = json!({"apf.kubernetes.io/autoupdate-spec": "true"});
    put(&e.blue_server, "flowschemas", mandatory).await;

    let green_served = ServedVersions::discover(&e.green, "green").await.unwrap();
    assert_eq!(green_served.minor, Some(32));
    assert_eq!(green_served.versions(FC, "FlowSchema"), ["v1"]);

    // The pre-flight against green's discovery.
    let options = MigrationOptions::default();
    let live = plan_for(&e.blue, &green_served, &options).await.unwrap();
    assert_eq!(live.source_minor, Some(28));
    let convert = VersionChoice::Convert {
        from: "v1beta3".into(),
        to: "v1".into(),
    };
    assert_eq!(choice(&live, &format!("FlowSchema.{FC}")), &convert);
    assert_eq!(
        choice(&live, &format!("PriorityLevelConfiguration.{FC}")),
        &convert
    );
    assert_eq!(
        choice(&live, "ConfigMap"),
        &VersionChoice::Ok {
            version: "v1".into()
        }
    );
    assert!(live.blocked.is_empty(), "{:?}", live.blocked);
    assert!(
        live.skipped.contains_key("FlowSchema: made by the cluster"),
        "{:?}",
        live.skipped
    );
    let table = live.versions_table();
    assert!(
        table.lines().any(|l| l.starts_with("FlowSchema.")
            && l.contains(" 2 ")
            && l.contains("convert")
            && l.contains("v1beta3 → v1")),
        "{table}"
    );
    // The same answer before green exists, from 1.32's OpenAPI data.
    let offline = plan_for(&e.blue, &ServedVersions::of_release(32).unwrap(), &options)
        .await
        .unwrap();
    assert_eq!(verdict(&offline), verdict(&live));

    // The controller's path: planned against blue alone, converted by apply.
    let planned = plan(&e.blue, &options).await.unwrap();
    let report = apply(&e.green, &planned, &options, &MemoryCheckpoint::new()).await;
    assert!(report.is_complete(), "{report:#?}");
    assert_eq!(report.total, 5, "{report:#?}");

    // Green has them at v1, equal to blue's after sanitizing (but for the apiVersion).
    for (kind, plural) in [
        ("FlowSchema", "flowschemas"),
        ("PriorityLevelConfiguration", "prioritylevelconfigurations"),
    ] {
        let blue = sanitized(&e.blue, &ar(FC, "v1beta3", kind, plural)).await;
        let green = sanitized(&e.green, &ar(FC, "v1", kind, plural)).await;
        let moved: Vec<&String> = green.keys().collect();
        let expected: Vec<&String> = blue.keys().filter(|n| *n != "exempt").collect();
        assert_eq!(moved, expected, "{kind}");
        for (name, g) in &green {
            assert_eq!(g["apiVersion"], format!("{FC}/v1"), "{kind} {name}");
            let mut b = blue[name].clone();
            b["apiVersion"] = g["apiVersion"].clone();
            assert_eq!(&b, g, "{kind} {name} differs");
        }
    }
    let cm = sanitized(&e.green, &ar("", "v1", "ConfigMap", "configmaps")).await;
    assert_eq!(cm["settings"]["data"]["mode"], "fast");

    // Idempotent: a second run writes the same objects to the same effect.
    let again = apply(&e.green, &planned, &options, &MemoryCheckpoint::new()).await;
    assert!(again.is_complete(), "{again:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_that_cannot_convert_is_refused_before_anything_is_applied() {
    let e = env(25, 32).await;
    seed_namespace(&e.blue_server).await;
    // 1.25 serves PriorityLevelConfiguration only at v1beta1/v1beta2, with
    // assuredConcurrencyShares; 1.32 only at v1, whose field is nominalConcurrencyShares.
    for name in ["batch", "interactive"] {
        put(
            &e.blue_server,
            "prioritylevelconfigurations",
            json!({"apiVersion": format!("{FC}/v1beta2"),
            "kind": "PriorityLevelConfiguration", "metadata": {"name": name},
            "spec": {"type": "Limited", "limited": {"assuredConcurrencyShares": 5,
                "limitResponse": {"type": "Reject"}}}}),
        )
        .await;
    }
    put(
        &e.blue_server,
        "flowschemas",
        flow_schema("v1beta2", "batch", "batch"),
    )
    .await;
    // Written at autoscaling/v2beta2, which 1.32 no longer serves: blue serves it at v2 too.
    put(
        &e.blue_server,
        "horizontalpodautoscalers",
        json!({"apiVersion": "autoscaling/v2beta2",
        "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 4}}),
    )
    .await;

    let options = MigrationOptions::default();
    let green_served = ServedVersions::discover(&e.green, "green").await.unwrap();
    let live = plan_for(&e.blue, &green_served, &options).await.unwrap();
    let names: Vec<String> = live.blocked.iter().map(|b| b.name.clone()).collect();
    assert_eq!(names, ["batch", "interactive"], "{:#?}", live.blocked);
    for b in &live.blocked {
        assert_eq!(b.kind, "PriorityLevelConfiguration");
        assert_eq!(b.api_version, format!("{FC}/v1beta2"));
        assert_eq!(b.target, "Kubernetes 1.32");
        assert!(
            b.reason
                .contains("spec.limited.assuredConcurrencyShares only in 1.25 v1beta2"),
            "{}",
            b.reason
        );
    }
    assert_eq!(
        choice(&live, "HorizontalPodAutoscaler.autoscaling"),
        &VersionChoice::Ok {
            version: "v2".into()
        }
    );
    // 1.25's v1beta2 FlowSchema holds the same fields as 1.32's v1 (status aside).
    assert_eq!(
        choice(&live, &format!("FlowSchema.{FC}")),
        &VersionChoice::Convert {
            from: "v1beta2".into(),
            to: "v1".into()
        }
    );
    let offline = plan_for(&e.blue, &ServedVersions::of_release(32).unwrap(), &options)
        .await
        .unwrap();
    assert_eq!(verdict(&offline), verdict(&live));
    let err = Error::Blocked {
        objects: live.blocked.clone(),
    }
    .to_string();
    assert!(
        err.contains("PriorityLevelConfiguration batch (flowcontrol.apiserver.k8s.io/v1beta2) cannot move to Kubernetes 1.32")
            && err.contains("PriorityLevelConfiguration interactive"),
        "{err}"
    );

    // apply refuses the plan made without green, before writing anything.
    let planned = plan(&e.blue, &options).await.unwrap();
    assert!(planned.total() >= 6, "{planned}");
    let report = apply(&e.green, &planned, &options, &MemoryCheckpoint::new()).await;
    assert_eq!(report.applied, 0, "{report:#?}");
    assert_eq!(report.refused.len(), 2, "{report:#?}");
    let refused: Vec<&str> = report.errors.iter().map(|e| e.object.as_str()).collect();
    assert_eq!(
        refused,
        [
            "PriorityLevelConfiguration batch",
            "PriorityLevelConfiguration interactive"
        ]
    );
    assert!(
        report.errors[0].message.contains("nothing was applied")
            && report.errors[0].message.contains("Kubernetes 1.32")
            && report.errors[0].message.contains("v1beta2"),
        "{}",
        report.errors[0]
    );
    assert!(!report.is_complete());
    // Green is untouched: not even the namespace, which comes first.
    let namespaces: Api<DynamicObject> =
        Api::all_with(e.green.clone(), &ar("", "v1", "Namespace", "namespaces"));
    assert!(namespaces.get_opt("shop").await.unwrap().is_none());
    for (kind, plural) in [
        ("FlowSchema", "flowschemas"),
        ("PriorityLevelConfiguration", "prioritylevelconfigurations"),
    ] {
        assert!(
            sanitized(&e.green, &ar(FC, "v1", kind, plural))
                .await
                .is_empty()
        );
    }
}

/// Which versions of a group a cluster's discovery lists.
async fn group_versions(client: &Client, group: &str) -> Vec<String> {
    let d = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .unwrap();
    d.groups()
        .find(|g| g.name() == group)
        .map(|g| g.versions().map(String::from).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_release_serves_the_versions_it_defines() {
    let e = env(25, 26).await;
    assert_eq!(
        group_versions(&e.blue, "autoscaling").await,
        ["v2", "v2beta2"]
    );
    assert_eq!(group_versions(&e.green, "autoscaling").await, ["v2"]);
    assert_eq!(group_versions(&e.blue, FC).await, ["v1beta2", "v1beta1"]);
    assert_eq!(group_versions(&e.green, FC).await, ["v1beta3", "v1beta2"]);

    // The OpenAPI documents follow: 1.25 describes autoscaling/v2beta2, 1.26 does not.
    let get = |client: Client, path: String| async move {
        let req = http::Request::get(path.as_str()).body(Vec::new()).unwrap();
        let text = client
            .request_text(req)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str::<Value>(&text).unwrap()
    };
    let index = get(e.blue.clone(), "/openapi/v3".into()).await;
    let url = index["paths"]["apis/autoscaling/v2beta2"]["serverRelativeURL"]
        .as_str()
        .unwrap_or_else(|| panic!("1.25's OpenAPI v3 index: {index}"))
        .to_string();
    // Relative to the host, under the simulator's prefix; kube-rs puts its own base path in
    // front of a request's path, so the part from /openapi/v3 on is what it is given.
    assert!(url.starts_with("/clusters/blue/openapi/v3/"), "{url}");
    let url = url["/clusters/blue".len()..].to_string();
    let doc = get(e.blue.clone(), url).await;
    assert!(
        doc["components"]["schemas"]
            .get("io.k8s.api.autoscaling.v2beta2.HorizontalPodAutoscaler")
            .is_some()
    );
    let index = get(e.green.clone(), "/openapi/v3".into()).await;
    assert!(index["paths"].get("apis/autoscaling/v2beta2").is_none());
    assert!(index["paths"].get("apis/autoscaling/v2").is_some());
    let v2 = get(e.green.clone(), "/openapi/v2".into()).await;
    let paths: Vec<&String> = v2["paths"].as_object().unwrap().keys().collect();
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("/apis/flowcontrol.apiserver.k8s.io/v1beta3/"))
    );
    assert!(
        !paths
            .iter()
            .any(|p| p.starts_with("/apis/autoscaling/v2beta2/"))
    );

    // One storage: an HPA written at v2 reads back at v2beta2, apiVersion rewritten.
    put(
        &e.blue_server,
        "horizontalpodautoscalers",
        json!({"apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 2, "maxReplicas": 5}}),
    )
    .await;
    let beta: Api<DynamicObject> = Api::namespaced_with(
        e.blue.clone(),
        "default",
        &ar(
            "autoscaling",
            "v2beta2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
        ),
    );
    let hpa = beta.get("web").await.unwrap();
    assert_eq!(hpa.data["spec"]["maxReplicas"], 5);
    assert_eq!(
        hpa.types.as_ref().map(|t| t.api_version.as_str()),
        Some("autoscaling/v2beta2")
    );
    // 1.26 does not serve it: a 404, as upstream.
    let gone: Api<DynamicObject> = Api::namespaced_with(
        e.green.clone(),
        "default",
        &ar(
            "autoscaling",
            "v2beta2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
        ),
    );
    match gone.list(&Default::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 404, "{s:?}"),
        other => panic!("1.26 answered autoscaling/v2beta2: {other:?}"),
    }

    // A renamed field: v1beta2's assuredConcurrencyShares is v1beta3's nominalConcurrencyShares.
    put(
        &e.sim.cluster("green").unwrap().server,
        "prioritylevelconfigurations",
        json!({"apiVersion": format!("{FC}/v1beta2"),
        "kind": "PriorityLevelConfiguration", "metadata": {"name": "batch"},
        "spec": {"type": "Limited", "limited": {"assuredConcurrencyShares": 7,
            "limitResponse": {"type": "Reject"}}}}),
    )
    .await;
    let v1beta3: Api<DynamicObject> = Api::all_with(
        e.green.clone(),
        &ar(
            FC,
            "v1beta3",
            "PriorityLevelConfiguration",
            "prioritylevelconfigurations",
        ),
    );
    let plc = v1beta3.get("batch").await.unwrap();
    assert_eq!(plc.data["spec"]["limited"]["nominalConcurrencyShares"], 7);
    assert!(
        plc.data["spec"]["limited"]
            .get("assuredConcurrencyShares")
            .is_none()
    );
}
