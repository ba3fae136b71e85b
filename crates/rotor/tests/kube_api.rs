//! kube-rs against rotor's API server, over real HTTP, on both storage backends: typed CRUD,
//! optimistic concurrency, the status subresource, server-side apply with field managers, CRDs
//! registered at run time, selectors and pagination, watcher + reflector across a forced 410.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(10);

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>()},
        "data": {"k": "v"},
    }))
    .expect("configmap")
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}},
    }))
    .expect("deployment")
}

fn api_code(e: kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("expected an API error, got {other}"),
    }
}

async fn typed_crud_and_generation(client: kube::Client) {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let created = cms
        .create(&PostParams::default(), &cm("one", &[("app", "web")]))
        .await
        .expect("create");
    assert!(created.metadata.uid.is_some() && created.metadata.resource_version.is_some());
    assert_eq!(
        cms.get("one").await.expect("get").data.expect("data")["k"],
        "v"
    );
    assert_eq!(
        api_code(
            cms.create(&PostParams::default(), &cm("one", &[]))
                .await
                .expect_err("duplicate")
        ),
        409
    );
    assert_eq!(
        api_code(cms.get("missing").await.expect_err("missing")),
        404
    );

    let deps: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d = deps
        .create(&PostParams::default(), &deployment("web", 2))
        .await
        .expect("create deployment");
    assert_eq!(d.metadata.generation, Some(1));
    // A spec change bumps generation; a label change does not.
    let mut d2 = d.clone();
    d2.spec.as_mut().expect("spec").replicas = Some(3);
    let d2 = deps
        .replace("web", &PostParams::default(), &d2)
        .await
        .expect("replace");
    assert_eq!(d2.metadata.generation, Some(2));
    let labelled = deps
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "fe"}}})),
        )
        .await
        .expect("label");
    assert_eq!(labelled.metadata.generation, Some(2));
    // The status subresource changes status only; the main resource ignores status.
    let st = deps
        .patch_status("web", &PatchParams::default(), &Patch::Merge(json!({"status": {"readyReplicas": 3, "observedGeneration": 2}, "spec": {"replicas": 9}})))
        .await
        .expect("status");
    assert_eq!(st.status.as_ref().and_then(|s| s.ready_replicas), Some(3));
    assert_eq!(
        st.spec.as_ref().and_then(|s| s.replicas),
        Some(3),
        "status patch must not change spec"
    );
    assert_eq!(st.metadata.generation, Some(2));
    let main = deps
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"readyReplicas": 0}})),
        )
        .await
        .expect("main patch");
    assert_eq!(
        main.status.and_then(|s| s.ready_replicas),
        Some(3),
        "main resource must not change status"
    );

    deps.delete("web", &DeleteParams::default())
        .await
        .expect("delete");
    assert_eq!(api_code(deps.get("web").await.expect_err("gone")), 404);
}

async fn stale_resource_version_conflicts(client: kube::Client) {
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let v1 = cms
        .create(&PostParams::default(), &cm("race", &[]))
        .await
        .expect("create");
    let mut a = v1.clone();
    a.data = Some(BTreeMap::from([("k".into(), "a".into())]));
    cms.replace("race", &PostParams::default(), &a)
        .await
        .expect("first writer wins");
    let mut b = v1;
    b.data = Some(BTreeMap::from([("k".into(), "b".into())]));
    assert_eq!(
        api_code(
            cms.replace("race", &PostParams::default(), &b)
                .await
                .expect_err("stale")
        ),
        409
    );
    assert_eq!(
        cms.get("race").await.expect("get").data.expect("data")["k"],
        "a"
    );
}

async fn server_side_apply_managers(client: kube::Client) {
    let deps: Api<Deployment> = Api::namespaced(client, "default");
    let d = deployment("ssa", 2);
    let applied = deps
        .patch("ssa", &PatchParams::apply("team-a"), &Patch::Apply(&d))
        .await
        .expect("apply creates");
    assert_eq!(applied.spec.as_ref().and_then(|s| s.replicas), Some(2));
    let managers: Vec<String> = applied
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, vec!["team-a".to_string()]);
    // Re-applying the same intent is a no-op.
    let again = deps
        .patch("ssa", &PatchParams::apply("team-a"), &Patch::Apply(&d))
        .await
        .expect("re-apply");
    assert_eq!(
        again.metadata.resource_version,
        applied.metadata.resource_version
    );
    // Another manager changing an owned field conflicts, unless forced.
    let other = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ssa"}, "spec": {"replicas": 5}});
    let err = deps
        .patch("ssa", &PatchParams::apply("team-b"), &Patch::Apply(&other))
        .await
        .expect_err("conflict");
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert!(
                s.message.contains("team-a") && s.message.contains(".spec.replicas"),
                "message names owner and field: {}",
                s.message
            );
        }
        e => panic!("unexpected {e}"),
    }
    let forced = deps
        .patch(
            "ssa",
            &PatchParams::apply("team-b").force(),
            &Patch::Apply(&other),
        )
        .await
        .expect("forced");
    assert_eq!(forced.spec.as_ref().and_then(|s| s.replicas), Some(5));
    // team-a dropping the container image from its intent removes nothing team-b owns, but
    // team-a's own fields it no longer applies are removed.
    let mut shrunk = deployment("ssa", 2);
    shrunk.spec.as_mut().expect("spec").replicas = None;
    shrunk.metadata.labels = None;
    let after = deps
        .patch("ssa", &PatchParams::apply("team-a"), &Patch::Apply(&shrunk))
        .await
        .expect("apply without replicas");
    assert_eq!(
        after.spec.and_then(|s| s.replicas),
        Some(5),
        "team-b's replicas stay"
    );
}

async fn crd_registration_and_dynamic_objects(client: kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"}}},
                    "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}}}}}]},
    }))
    .expect("crd");
    let created = crds
        .create(&PostParams::default(), &crd)
        .await
        .expect("create crd");
    let established = created
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Established" && c.status == "True");
    assert!(established, "CRD is Established");

    // Discovery now serves the new kind.
    let discovery = kube::discovery::Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let (ar, _caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget"))
        .expect("Widget discovered");
    assert_eq!(ar.plural, "widgets");

    let widgets: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("example.com", "v1", "Widget"),
            "widgets",
        ),
    );
    let w: DynamicObject = serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}})).expect("widget");
    widgets
        .create(&PostParams::default(), &w)
        .await
        .expect("create widget");
    // Unknown fields are refused under strict validation, naming the field.
    let bad = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w2"}, "spec": {"sise": 3}});
    let req = http::Request::post(
        "/apis/example.com/v1/namespaces/default/widgets?fieldValidation=Strict",
    )
    .header("content-type", "application/json")
    .body(serde_json::to_vec(&bad).expect("json"))
    .expect("request");
    match client
        .request::<serde_json::Value>(req)
        .await
        .expect_err("unknown field")
    {
        kube::Error::Api(s) => assert!(
            s.code == 400 && s.message.contains("spec.sise"),
            "names the field: {}",
            s.message
        ),
        e => panic!("unexpected {e}"),
    }
    // Under the default (Warn) validation an unknown field is accepted and pruned, as a
    // structural schema does on a real cluster.
    let bad: DynamicObject = serde_json::from_value(bad).expect("widget");
    let pruned = widgets
        .create(&PostParams::default(), &bad)
        .await
        .expect("created, pruned");
    assert!(
        pruned.data["spec"].get("sise").is_none(),
        "unknown field pruned: {:?}",
        pruned.data
    );
    let st = widgets
        .patch_status(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true}})),
        )
        .await
        .expect("status");
    assert_eq!(st.data["status"]["ready"], true);
    assert_eq!(st.data["spec"]["size"], 3);

    // Watch works for the new kind.
    let mut stream = watcher(widgets.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    let first = tokio::time::timeout(LIMIT, stream.try_next())
        .await
        .expect("watch event in time")
        .expect("watch ok")
        .expect("an object");
    assert_eq!(first.metadata.name.as_deref(), Some("w1"));
    widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 4}})),
        )
        .await
        .expect("patch");
    // The initial events also carry w2; the modification of w1 follows them.
    let next = tokio::time::timeout(LIMIT, async {
        loop {
            let o = stream.try_next().await.expect("ok").expect("object");
            if o.metadata.name.as_deref() == Some("w1") {
                return o;
            }
        }
    })
    .await
    .expect("modified in time");
    assert_eq!(next.data["spec"]["size"], 4);

    // Deleting the CRD removes the kind.
    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .expect("delete crd");
    common::eventually(LIMIT, "widgets to disappear", || {
        let widgets = widgets.clone();
        async move {
            widgets
                .list(&ListParams::default())
                .await
                .err()
                .map(api_code)
                .filter(|c| *c == 404)
        }
    })
    .await;
}

async fn selectors_and_pagination(client: kube::Client) {
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "pages"}})).expect("ns"),
    )
    .await
    .expect("ns");
    let cms: Api<ConfigMap> = Api::namespaced(client, "pages");
    for i in 0..25 {
        let tier = if i % 5 == 0 { "db" } else { "web" };
        cms.create(
            &PostParams::default(),
            &cm(&format!("cm-{i:02}"), &[("tier", tier)]),
        )
        .await
        .expect("create");
    }
    let dbs = cms
        .list(&ListParams::default().labels("tier=db"))
        .await
        .expect("labels");
    assert_eq!(dbs.items.len(), 5);
    let not_db = cms
        .list(&ListParams::default().labels("tier notin (db)"))
        .await
        .expect("notin");
    assert_eq!(not_db.items.len(), 20);
    let by_name = cms
        .list(&ListParams::default().fields("metadata.name=cm-07"))
        .await
        .expect("fields");
    assert_eq!(by_name.items.len(), 1);
    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(10);
    for _ in 0..10 {
        let page = cms.list(&lp).await.expect("page");
        assert!(page.items.len() <= 10);
        names.extend(page.items.into_iter().filter_map(|c| c.metadata.name));
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = ListParams::default().limit(10).continue_token(&c),
            _ => break,
        }
    }
    assert_eq!(names.len(), 25, "pages cover every object once");
    names.dedup();
    assert_eq!(names.len(), 25);
    assert_eq!(
        api_code(
            cms.list(&ListParams::default().labels("a in b"))
                .await
                .expect_err("bad selector")
        ),
        400
    );
}

async fn namespace_deletion_and_finalizers(client: kube::Client) {
    let nss: Api<Namespace> = Api::all(client.clone());
    assert_eq!(
        api_code(
            nss.delete("kube-system", &DeleteParams::default())
                .await
                .expect_err("protected")
        ),
        403
    );
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "doomed"}})).expect("ns"),
    )
    .await
    .expect("ns");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "doomed");
    cms.create(&PostParams::default(), &cm("plain", &[]))
        .await
        .expect("cm");
    let mut held = cm("held", &[]);
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    cms.create(&PostParams::default(), &held)
        .await
        .expect("held cm");
    nss.delete("doomed", &DeleteParams::default())
        .await
        .expect("delete ns");
    // Content goes; the finalized object stays, marked, and the namespace waits for it.
    common::eventually(LIMIT, "plain configmap deleted", || {
        let cms = cms.clone();
        async move {
            cms.get("plain")
                .await
                .err()
                .map(api_code)
                .filter(|c| *c == 404)
        }
    })
    .await;
    let marked = cms.get("held").await.expect("held stays while finalized");
    assert!(marked.metadata.deletion_timestamp.is_some());
    let ns = nss
        .get("doomed")
        .await
        .expect("namespace still terminating");
    assert_eq!(
        ns.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    assert_eq!(
        api_code(
            cms.create(&PostParams::default(), &cm("late", &[]))
                .await
                .expect_err("terminating")
        ),
        403
    );
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release");
    common::eventually(LIMIT, "namespace gone", || {
        let nss = nss.clone();
        async move {
            nss.get("doomed")
                .await
                .err()
                .map(api_code)
                .filter(|c| *c == 404)
        }
    })
    .await;
}

async fn rotor_kinds_served(client: kube::Client) {
    let clusters: Api<rotor_api::Cluster> = Api::all(client);
    let fleet = rotor_api::sample_fleet(3);
    for c in &fleet {
        let name = c.metadata.name.clone().expect("name");
        clusters
            .patch(&name, &PatchParams::apply("test"), &Patch::Apply(c))
            .await
            .expect("apply Cluster");
    }
    let listed = clusters
        .list(&ListParams::default())
        .await
        .expect("list clusters");
    assert_eq!(listed.items.len(), 3);
    assert_eq!(
        listed.items[0].spec.kubernetes_version,
        fleet[0].spec.kubernetes_version
    );
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    let s = crate::common::start(crate::common::memory()).await;
                    super::$name(s.client.clone()).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let s = crate::common::start(crate::common::sqlite(&dir.path().join("rotor.db"))).await;
                    super::$name(s.client.clone()).await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(etcd) = crate::common::etcd_process().await else { return };
                    let s = crate::common::start(crate::common::etcd(&etcd.url).await).await;
                    super::$name(s.client.clone()).await;
                }
            )*
        }
    };
}

on_both_backends!(
    typed_crud_and_generation,
    stale_resource_version_conflicts,
    server_side_apply_managers,
    crd_registration_and_dynamic_objects,
    selectors_and_pagination,
    namespace_deletion_and_finalizers,
    rotor_kinds_served,
);

/// The watcher relists after the server answers 410 Gone, and the reflector converges.
#[tokio::test]
async fn watcher_relists_after_410() {
    let store: rotor_store::DynStore =
        std::sync::Arc::new(rotor_store::memory::MemoryStore::with_history(8));
    let s = common::start(store).await;
    let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    cms.create(&PostParams::default(), &cm("watched", &[("w", "yes")]))
        .await
        .expect("create");
    let (reader, writer) = reflector::store::<ConfigMap>();
    // A 1 s server-side timeout ends the watch; by then the history has moved on.
    let config = watcher::Config::default()
        .labels("w=yes")
        .timeout(1)
        .disable_bookmarks();
    let stream = reflector(writer, watcher(cms.clone(), config));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut stream = stream.boxed();
        while let Some(ev) = stream.next().await {
            if tx
                .send(ev.map(|e| matches!(e, watcher::Event::InitDone)))
                .is_err()
            {
                return;
            }
        }
    });
    let mut init_done = 0;
    while init_done < 1 {
        if tokio::time::timeout(LIMIT, rx.recv())
            .await
            .expect("first list in time")
            .expect("stream open")
            .expect("no error")
        {
            init_done += 1;
        }
    }
    // Push the watch's resourceVersion out of the 8-event history with unrelated writes.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(s.client.clone(), "default");
    for i in 0..20 {
        let secret = serde_json::from_value(
            json!({"metadata": {"name": format!("s{i}")}, "stringData": {"x": "y"}}),
        )
        .expect("secret");
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("secret");
    }
    // Nothing the watch selects changed, so it still holds the list's resourceVersion: when the
    // server ends it (timeoutSeconds), the next watch starts from a compacted revision.
    let mut saw_error = false;
    while init_done < 2 {
        match tokio::time::timeout(LIMIT, rx.recv())
            .await
            .expect("relist in time")
            .expect("stream open")
        {
            Ok(true) => init_done += 1,
            Ok(false) => {}
            Err(e) => {
                saw_error = true;
                assert!(
                    e.to_string().contains("410")
                        || e.to_string().to_lowercase().contains("too old"),
                    "error is the 410: {e}"
                );
            }
        }
    }
    assert!(saw_error, "the watcher saw the 410 before relisting");
    cms.create(&PostParams::default(), &cm("added-later", &[("w", "yes")]))
        .await
        .expect("create later");
    common::eventually(LIMIT, "reflector to hold both configmaps", || {
        let reader = reader.clone();
        async move { (reader.state().len() == 2).then_some(()) }
    })
    .await;
    task.abort();
}

/// etcd: two control planes on one etcd serve the same objects — a write through one is read and
/// watched through the other — and the objects outlive both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_is_shared_by_control_planes_and_outlives_them() {
    let Some(etcd) = common::etcd_process().await else {
        return;
    };
    let a = common::start(common::etcd(&etcd.url).await).await;
    let b = common::start(common::etcd(&etcd.url).await).await;
    let on_a: Api<ConfigMap> = Api::namespaced(a.client.clone(), "default");
    let on_b: Api<ConfigMap> = Api::namespaced(b.client.clone(), "default");
    let (reader, writer) = reflector::store::<ConfigMap>();
    let watching = tokio::spawn(
        watcher(on_b.clone(), watcher::Config::default())
            .reflect(writer)
            .applied_objects()
            .for_each(|_| futures::future::ready(())),
    );
    let made = on_a
        .create(&PostParams::default(), &cm("shared", &[("via", "a")]))
        .await
        .expect("create through a");
    let got = on_b.get("shared").await.expect("read through b");
    assert_eq!(got.metadata.uid, made.metadata.uid);
    assert_eq!(
        got.metadata.resource_version,
        made.metadata.resource_version
    );
    common::eventually(Duration::from_secs(10), "b's watch sees a's write", || {
        let found = reader.get(&reflector::ObjectRef::new("shared").within("default"));
        async move { found.map(|_| ()) }
    })
    .await;
    // A stale write through b conflicts with a's newer one.
    let mut newer = made.clone();
    newer.data = Some([("k".to_string(), "a2".to_string())].into());
    on_a.replace("shared", &PostParams::default(), &newer)
        .await
        .expect("update through a");
    let err = on_b
        .replace("shared", &PostParams::default(), &made)
        .await
        .expect_err("stale resourceVersion through b");
    assert!(
        matches!(err, kube::Error::Api(ref e) if e.code == 409),
        "{err}"
    );
    watching.abort();
    drop((a, b));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let c = common::start(common::etcd(&etcd.url).await).await;
    let on_c: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let kept = on_c.get("shared").await.expect("outlives the servers");
    assert_eq!(kept.data.expect("data")["k"], "a2");
    let clusters: Api<rotor_api::Cluster> = Api::all(c.client.clone());
    clusters
        .list(&ListParams::default())
        .await
        .expect("rotor's CRDs registered again over the stored ones");
}

/// SQLite: objects and CRD-registered kinds survive a restart of the server.
#[tokio::test]
async fn sqlite_survives_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rotor.db");
    {
        let s = common::start(common::sqlite(&path)).await;
        let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
        cms.create(&PostParams::default(), &cm("durable", &[("a", "b")]))
            .await
            .expect("create");
        let clusters: Api<rotor_api::Cluster> = Api::all(s.client.clone());
        let c = rotor_api::sample_fleet(1).remove(0);
        clusters
            .patch(
                c.metadata.name.as_deref().expect("name"),
                &PatchParams::apply("test"),
                &Patch::Apply(&c),
            )
            .await
            .expect("cluster");
    }
    let s = common::start(common::sqlite_reopened(&path).await).await;
    let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let got = cms.get("durable").await.expect("survived");
    assert_eq!(got.metadata.labels.as_ref().expect("labels")["a"], "b");
    let clusters: Api<rotor_api::Cluster> = Api::all(s.client.clone());
    assert_eq!(
        clusters
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len(),
        1
    );
    // New writes continue the revision sequence instead of restarting it.
    let newer = cms
        .create(&PostParams::default(), &cm("after", &[]))
        .await
        .expect("create after restart");
    let rv = |c: &ConfigMap| {
        c.metadata
            .resource_version
            .clone()
            .expect("rv")
            .parse::<u64>()
            .expect("numeric rv")
    };
    assert!(rv(&newer) > rv(&got));
}

/// Malformed input gets a Status naming the problem and writes nothing.
#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let s = common::start(common::memory()).await;
    let raw = |method: &str, path: &str, ct: &str, body: &str| {
        http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", ct)
            .body(body.as_bytes().to_vec())
            .expect("request")
    };
    let err = s
        .client
        .request::<serde_json::Value>(raw(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            "{\"metadata\": {\"name\": ",
        ))
        .await
        .expect_err("malformed");
    assert_eq!(api_code(err), 400);
    let err = s
        .client
        .request::<serde_json::Value>(raw(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            "{\"metadata\": {\"name\": \"Bad_Name\"}}",
        ))
        .await
        .expect_err("invalid name");
    match err {
        kube::Error::Api(st) => assert!(
            st.code == 422
                && st.message.contains("metadata.name")
                && st.message.contains("Bad_Name"),
            "{}",
            st.message
        ),
        e => panic!("unexpected {e}"),
    }
    let err = s
        .client
        .request::<serde_json::Value>(raw(
            "POST",
            "/apis/apps/v1/namespaces/default/deployments?fieldValidation=Strict",
            "application/json",
            "{\"metadata\": {\"name\": \"d\"}, \"spec\": {\"replicass\": 1}}",
        ))
        .await
        .expect_err("unknown field");
    match err {
        kube::Error::Api(st) => assert!(
            st.code == 400 && st.message.contains("replicass"),
            "{}",
            st.message
        ),
        e => panic!("unexpected {e}"),
    }
    let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    assert!(
        cms.list(&ListParams::default())
            .await
            .expect("list")
            .items
            .is_empty(),
        "nothing half-written"
    );
    let err = s
        .client
        .request::<serde_json::Value>(raw(
            "PATCH",
            "/api/v1/namespaces/default/configmaps/x",
            "text/plain",
            "{}",
        ))
        .await
        .expect_err("bad patch type");
    assert_eq!(api_code(err), 415);
}

/// The token is a credential: a wrong one, or none where anonymous access is off, gets 401.
#[tokio::test]
async fn wrong_or_missing_token_is_refused() {
    let s = common::start(common::memory()).await;
    use rotor_test_support::kubeconfig::{Credentials, with_credentials};
    let wrong = rotor::client_for(&with_credentials(
        &s.kubeconfig(),
        Credentials::Token("not-the-token"),
    ))
    .await
    .expect("client");
    let cms: Api<ConfigMap> = Api::namespaced(wrong, "default");
    assert_eq!(
        api_code(
            cms.list(&ListParams::default())
                .await
                .expect_err("wrong token")
        ),
        401
    );
    let none = rotor::client_for(&with_credentials(&s.kubeconfig(), Credentials::None))
        .await
        .expect("client");
    let cms: Api<ConfigMap> = Api::namespaced(none, "default");
    assert_eq!(
        api_code(
            cms.list(&ListParams::default())
                .await
                .expect_err("no token")
        ),
        401
    );
}

/// Events a controller records with kube-rs (events.k8s.io/v1) are the core v1 Events that
/// `kubectl get events` and `describe` read: one storage, converted per version.
#[tokio::test]
async fn recorded_events_are_core_events() {
    use kube::Resource;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let s = common::start(common::memory()).await;
    let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let target = cms
        .create(&PostParams::default(), &cm("observed", &[]))
        .await
        .expect("create");
    let recorder = Recorder::new(
        s.client.clone(),
        Reporter {
            controller: "rotor-test".into(),
            instance: None,
        },
    );
    let ev = Event {
        type_: EventType::Normal,
        reason: "Rotated".into(),
        note: Some("blue to green".into()),
        action: "Rotate".into(),
        secondary: None,
    };
    recorder
        .publish(&ev, &target.object_ref(&()))
        .await
        .expect("publish");
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(s.client.clone(), "default");
    let events = core
        .list(&ListParams::default())
        .await
        .expect("core events");
    let e = events
        .items
        .iter()
        .find(|e| e.reason.as_deref() == Some("Rotated"))
        .expect("the recorded event, as a core Event");
    assert_eq!(e.message.as_deref(), Some("blue to green"));
    assert_eq!(e.involved_object.name.as_deref(), Some("observed"));
    assert_eq!(e.reporting_component.as_deref(), Some("rotor-test"));
    let v1: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(s.client.clone(), "default");
    let same = v1
        .list(&ListParams::default())
        .await
        .expect("events.k8s.io");
    assert_eq!(same.items.len(), events.items.len());
    assert!(
        same.items
            .iter()
            .any(|e| e.note.as_deref() == Some("blue to green"))
    );
}

/// Streaming lists (sendInitialEvents): the initial state arrives as watch events, closed by a
/// bookmark annotated `k8s.io/initial-events-end`, and the watch then continues live.
#[tokio::test]
async fn streaming_list_watch() {
    let s = common::start(common::memory()).await;
    let cms: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    for i in 0..3 {
        cms.create(&PostParams::default(), &cm(&format!("s{i}"), &[]))
            .await
            .expect("create");
    }
    let mut stream = watcher(cms.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut initial = Vec::new();
    loop {
        match tokio::time::timeout(LIMIT, stream.try_next())
            .await
            .expect("in time")
            .expect("ok")
            .expect("event")
        {
            watcher::Event::Init => {}
            watcher::Event::InitApply(c) => initial.push(c.metadata.name.unwrap_or_default()),
            watcher::Event::InitDone => break,
            other => panic!("unexpected before InitDone: {other:?}"),
        }
    }
    initial.sort();
    assert_eq!(initial, vec!["s0", "s1", "s2"]);
    cms.create(&PostParams::default(), &cm("live", &[]))
        .await
        .expect("create");
    match tokio::time::timeout(LIMIT, stream.try_next())
        .await
        .expect("in time")
        .expect("ok")
        .expect("event")
    {
        watcher::Event::Apply(c) => assert_eq!(c.metadata.name.as_deref(), Some("live")),
        other => panic!("unexpected {other:?}"),
    }
}
