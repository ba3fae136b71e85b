//! Reads that kube-apiserver refuses, refused the same way over real HTTP: a field selector on a
//! field the kind has no label for (400), a `resourceVersionMatch=Exact` list below the
//! compaction (410), a watch or list from a resourceVersion the store has not reached (504
//! "Too large resource version" after the watch cache's wait), and the ListOptions rules; and
//! an `Exact` list inside the store's history, answered as the list was at that revision.

use crate::common;

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::{Value, json};

/// GET `path` through the client: (status code, body as JSON).
async fn get(client: &kube::Client, path: &str) -> (u16, Value) {
    let req = http::Request::get(path).body(Vec::new()).expect("request");
    match client.request_text(req).await {
        Ok(text) => (200, serde_json::from_str(&text).unwrap_or(Value::Null)),
        Err(kube::Error::Api(s)) => (s.code, serde_json::to_value(&s).expect("status")),
        Err(e) => panic!("{path}: {e}"),
    }
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).expect("cm")
}

#[tokio::test]
async fn field_selectors_only_on_the_kinds_labels() {
    let ts = common::start(common::memory()).await;
    let c = &ts.client;
    for (path, label) in [
        (
            "/api/v1/namespaces/default/configmaps?fieldSelector=spec.foo%3Dx",
            "spec.foo",
        ),
        (
            "/api/v1/namespaces/default/configmaps?fieldSelector=metadata.name%3Da,data.k%3Dv",
            "data.k",
        ),
        (
            "/api/v1/namespaces/default/secrets?watch=true&fieldSelector=status.phase%3DX",
            "status.phase",
        ),
        (
            "/api/v1/namespaces/default/pods?fieldSelector=spec.nodename%3Dn",
            "spec.nodename",
        ),
        (
            "/apis/apps/v1/deployments?fieldSelector=status.replicas%3D1",
            "status.replicas",
        ),
    ] {
        let (code, body) = get(c, path).await;
        assert_eq!(code, 400, "{path}: {body}");
        assert_eq!(body["reason"], "BadRequest");
        assert_eq!(
            body["message"],
            format!("field label not supported: {label}")
        );
    }
    // Each kind's own labels, and the object meta's everywhere.
    for path in [
        "/api/v1/namespaces/default/pods?fieldSelector=spec.nodeName%3Dn,status.phase!%3DRunning",
        "/api/v1/events?fieldSelector=involvedObject.name%3Dweb,reason%3DX,type%3DNormal",
        "/apis/events.k8s.io/v1/events?fieldSelector=regarding.name%3Dweb",
        "/api/v1/namespaces?fieldSelector=status.phase%3DActive",
        "/apis/apps/v1/replicasets?fieldSelector=status.replicas%3D1",
        "/api/v1/services?fieldSelector=spec.clusterIP!%3DNone",
        "/apis/batch/v1/jobs?fieldSelector=status.successful%3D1",
        "/api/v1/nodes?fieldSelector=spec.unschedulable%3Dfalse,metadata.name%3Dn",
    ] {
        let (code, body) = get(c, path).await;
        assert_eq!(code, 200, "{path}: {body}");
    }
    // A supported label still selects.
    let secrets: Api<Secret> = Api::namespaced(c.clone(), "default");
    for (name, kind) in [("a", "Opaque"), ("b", "kubernetes.io/dockerconfigjson")] {
        let mut s: Secret = serde_json::from_value(json!({"metadata": {"name": name},
            "data": {".dockerconfigjson": "e30="}}))
        .expect("secret");
        s.type_ = Some(kind.into());
        secrets
            .create(&PostParams::default(), &s)
            .await
            .expect("secret");
    }
    let opaque = secrets
        .list(&ListParams::default().fields("type=Opaque"))
        .await
        .expect("list");
    let names: Vec<_> = opaque
        .iter()
        .filter_map(|s| s.metadata.name.as_deref())
        .collect();
    assert_eq!(names, ["a"]);
}

#[tokio::test]
async fn exact_list_below_the_compaction_is_gone() {
    // A short history: a few writes push the first revisions out of it.
    let ts = common::start(Arc::new(rotor_store::memory::MemoryStore::with_history(4))).await;
    let cms: Api<ConfigMap> = Api::namespaced(ts.client.clone(), "default");
    let first = cms
        .create(&PostParams::default(), &cm("first"))
        .await
        .expect("cm");
    let first_rv = first.metadata.resource_version.expect("rv");
    for i in 0..8 {
        cms.create(&PostParams::default(), &cm(&format!("cm-{i}")))
            .await
            .expect("cm");
    }
    let (code, body) = get(
        &ts.client,
        &format!("/api/v1/namespaces/default/configmaps?resourceVersion={first_rv}&resourceVersionMatch=Exact"),
    )
    .await;
    assert_eq!(code, 410, "{body}");
    assert_eq!(body["reason"], "Expired");
    assert_eq!(
        body["message"],
        "The resourceVersion for the provided list is too old."
    );
    // NotOlderThan the same old revision is served (from the current state).
    let (code, list) = get(
        &ts.client,
        &format!("/api/v1/namespaces/default/configmaps?resourceVersion={first_rv}&resourceVersionMatch=NotOlderThan"),
    )
    .await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(9));
    // The current revision, exactly, is served too.
    let current = list["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    let (code, _) = get(
        &ts.client,
        &format!("/api/v1/namespaces/default/configmaps?resourceVersion={current}&resourceVersionMatch=Exact"),
    )
    .await;
    assert_eq!(code, 200);
}

/// Names, `data.k` and resourceVersions of a list's items.
fn items_of(list: &Value) -> Vec<(String, String, String)> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            (
                s(&i["metadata"]["name"]),
                s(&i["data"]["k"]),
                s(&i["metadata"]["resourceVersion"]),
            )
        })
        .collect()
}

#[tokio::test]
async fn exact_list_inside_the_history_is_the_list_as_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    for store in [common::memory(), common::sqlite(&dir.path().join("s.db"))] {
        let ts = common::start(store).await;
        let cms: Api<ConfigMap> = Api::namespaced(ts.client.clone(), "default");
        let pp = PostParams::default();
        let mut labelled = cm("b");
        labelled.metadata.labels = Some([("tier".to_string(), "web".to_string())].into());
        let a = cms.create(&pp, &cm("a")).await.expect("a");
        let b = cms.create(&pp, &labelled).await.expect("b");
        const PATH: &str = "/api/v1/namespaces/default/configmaps";
        let (_, then) = get(&ts.client, PATH).await;
        let rv = then["metadata"]["resourceVersion"]
            .as_str()
            .expect("rv")
            .to_string();
        // Afterwards: a changes, b goes, c comes.
        let mut a2 = a.clone();
        a2.data = Some([("k".to_string(), "changed".to_string())].into());
        cms.replace("a", &pp, &a2).await.expect("update a");
        cms.delete("b", &Default::default())
            .await
            .expect("delete b");
        cms.create(&pp, &cm("c")).await.expect("c");

        let exact = format!("{PATH}?resourceVersion={rv}&resourceVersionMatch=Exact");
        let (code, list) = get(&ts.client, &exact).await;
        assert_eq!(code, 200, "{list}");
        assert_eq!(list["metadata"]["resourceVersion"], rv.as_str());
        let rv_of = |c: &ConfigMap| c.metadata.resource_version.clone().expect("rv");
        assert_eq!(
            items_of(&list),
            [
                ("a".into(), "v".into(), rv_of(&a)),
                ("b".into(), "v".into(), rv_of(&b))
            ]
        );
        assert_eq!(items_of(&list), items_of(&then), "the list as it was");
        // Selectors and pages apply to the list as it was.
        let (_, web) = get(&ts.client, &format!("{exact}&labelSelector=tier%3Dweb")).await;
        assert_eq!(items_of(&web).len(), 1, "{web}");
        assert_eq!(items_of(&web)[0].0, "b");
        let (_, first) = get(&ts.client, &format!("{exact}&limit=1")).await;
        assert_eq!(items_of(&first)[0].0, "a");
        assert!(
            first["metadata"]["continue"]
                .as_str()
                .is_some_and(|t| !t.is_empty()),
            "one more item: {first}"
        );
        let (_, now) = get(&ts.client, PATH).await;
        assert_eq!(
            items_of(&now)
                .iter()
                .map(|i| i.0.as_str())
                .collect::<Vec<_>>(),
            ["a", "c"],
            "the current list is another"
        );
    }
}

#[tokio::test]
async fn list_options_are_validated_as_upstream() {
    let ts = common::start(common::memory()).await;
    for (query, message) in [
        (
            "resourceVersionMatch=Exact",
            "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
        ),
        (
            "resourceVersion=0&resourceVersionMatch=Exact",
            "resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
        ),
        (
            "resourceVersion=1&resourceVersionMatch=Newest",
            "resourceVersionMatch: Unsupported value: \"Newest\": supported values: \"Exact\", \"NotOlderThan\"",
        ),
    ] {
        let (code, body) = get(&ts.client, &format!("/api/v1/configmaps?{query}")).await;
        assert_eq!(code, 422, "{query}: {body}");
        assert_eq!(body["reason"], "Invalid");
        let msg = body["message"].as_str().expect("message");
        assert!(msg.ends_with(message), "{query}: {msg}");
        assert_eq!(
            body["details"]["causes"][0]["field"],
            "resourceVersionMatch"
        );
    }
}

#[tokio::test]
async fn reads_from_a_future_resource_version() {
    let ts = common::start(common::memory()).await;
    let cms: Api<ConfigMap> = Api::namespaced(ts.client.clone(), "default");
    let now = cms
        .create(&PostParams::default(), &cm("now"))
        .await
        .expect("cm");
    let rv: u64 = now
        .metadata
        .resource_version
        .expect("rv")
        .parse()
        .expect("number");

    // Far ahead: refused after the wait, with the cause client-go recognises. Asked without
    // kube's default retries, which retry a 504 with backoff (15 times) and would only delay
    // the answer this test is about.
    let once = rotor_api::client::client(
        &ts.kubeconfig(),
        rotor_api::client::Calls::Bounded(std::time::Duration::from_secs(30)),
    )
    .await
    .expect("client");
    let ahead = rv + 1000;
    for path in [
        format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={ahead}"),
        format!("/api/v1/namespaces/default/configmaps?resourceVersion={ahead}"),
    ] {
        let (code, body) = get(&once, &path).await;
        assert_eq!(code, 504, "{path}: {body}");
        assert_eq!(body["reason"], "Timeout");
        assert_eq!(
            body["message"],
            format!("Too large resource version: {ahead}, current: {rv}")
        );
        assert_eq!(
            body["details"]["causes"],
            json!([{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}])
        );
        assert_eq!(body["details"]["retryAfterSeconds"], 1);
    }

    // One ahead, reached while the watch waits: the watch starts and sees what follows.
    let watching = {
        let cms = cms.clone();
        tokio::spawn(async move {
            let stream = cms
                .watch(&WatchParams::default().timeout(10), &(rv + 1).to_string())
                .await
                .expect("watch starts");
            let mut stream = stream.boxed();
            match stream.try_next().await.expect("event") {
                Some(WatchEvent::Added(cm)) => cm.metadata.name,
                other => panic!("expected ADDED, got {other:?}"),
            }
        })
    };
    // "reached" lands at rv + 1; the watch reports what follows it, whenever it subscribed
    // (the store replays its history), so the first event is "after".
    for name in ["reached", "after"] {
        cms.create(&PostParams::default(), &cm(name))
            .await
            .expect("cm");
    }
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), watching)
        .await
        .expect("the watch reports within its timeout")
        .expect("watch task");
    assert_eq!(first.as_deref(), Some("after"));
}

fn swap(name: &str) -> rotor_api::ClusterSwap {
    serde_json::from_value(json!({
        "apiVersion": "rotor.dev/v1alpha1", "kind": "ClusterSwap",
        "metadata": {"name": name},
        "spec": {"clusterRef": "c1", "target": {"kubernetesVersion": "1.35.0"}},
    }))
    .expect("swap")
}

/// `metadata.name` and `metadata.namespace` select on every resource, custom ones included, in
/// a list and in a watch (the dashboard's swap view was once suspected of getting nothing from
/// `fieldSelector=metadata.name=NAME` on ClusterSwaps; the API answers it as upstream does).
#[tokio::test]
async fn object_meta_field_selectors_on_a_custom_resource() {
    use rotor_api::ClusterSwap;
    let ts = common::start(common::memory()).await;
    let swaps: Api<ClusterSwap> = Api::all(ts.client.clone());
    for name in ["sw-a", "sw-b"] {
        swaps
            .create(&PostParams::default(), &swap(name))
            .await
            .expect("swap");
    }
    let names = |l: &kube::core::ObjectList<ClusterSwap>| -> Vec<String> {
        l.iter().filter_map(|s| s.metadata.name.clone()).collect()
    };
    let listed = swaps
        .list(&ListParams::default().fields("metadata.name=sw-a"))
        .await
        .expect("list");
    assert_eq!(names(&listed), ["sw-a"]);
    let not_b = ListParams::default().fields("metadata.name!=sw-b,metadata.namespace=");
    assert_eq!(names(&swaps.list(&not_b).await.expect("list")), ["sw-a"]);

    let rv = listed.metadata.resource_version.expect("rv");
    let watch = WatchParams::default()
        .fields("metadata.name=sw-a")
        .timeout(10);
    let mut events = swaps.watch(&watch, &rv).await.expect("watch").boxed();
    let label = |v: &str| json!({"metadata": {"labels": {"seen": v}}});
    for (name, v) in [("sw-b", "1"), ("sw-a", "2")] {
        swaps
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(label(v)),
            )
            .await
            .expect("patch");
    }
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), events.try_next())
        .await
        .expect("an event within 10 s")
        .expect("watch")
        .expect("event");
    let WatchEvent::Modified(s) = first else {
        panic!("expected MODIFIED of sw-a, got {first:?}");
    };
    assert_eq!(
        s.metadata.name.as_deref(),
        Some("sw-a"),
        "sw-b's change is not selected"
    );
    assert_eq!(s.metadata.labels.unwrap_or_default()["seen"], "2");
}

/// kubectl's `--field-selector metadata.name=X` on ClusterSwaps, through both kubectl versions.
#[test]
fn kubectl_field_selector_on_clusterswaps() {
    let dir = tempfile::tempdir().expect("dir");
    let (_serve, k) = common::kubectl::serve_sqlite(
        &dir.path().join("rotor.db"),
        &dir.path().join("admin.kubeconfig"),
        &["--no-controllers"],
    );
    for name in ["sw-a", "sw-b"] {
        let manifest = serde_json::to_string(&swap(name)).expect("json");
        let file = common::kubectl::write_manifest(dir.path(), &format!("{name}.json"), &manifest);
        k.ok(&["create", "-f", &file]);
    }
    let versions: Vec<_> = [27, 35].iter().filter_map(|m| k.versioned(*m)).collect();
    assert_eq!(versions.len(), 2, "kubectl 1.27 and 1.35 are installed");
    for kubectl in versions.iter().chain([&k]) {
        let out = kubectl.ok(&[
            "get",
            "clusterswaps",
            "--field-selector",
            "metadata.name=sw-b",
            "-o",
            "name",
        ]);
        assert_eq!(out.trim(), "clusterswap.rotor.dev/sw-b");
    }
}
