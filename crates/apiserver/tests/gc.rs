//! ownerReference garbage collection through kube-rs over real HTTP: each propagation policy
//! (background, foreground, orphan, legacy orphanDependents, a kind's default), chains of two
//! levels, several owners, blockOwnerDeletion, owners identified by uid, the replies a DELETE
//! gets, and the collector ending with its server.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use rotor_apiserver::ApiServer;
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(10);

struct Served {
    server: Arc<ApiServer>,
    client: kube::Client,
    http: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.http.abort();
    }
}

async fn serve() -> Served {
    let (server, _) = common::server().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let http = tokio::spawn(rotor_apiserver::http::serve(
        listener,
        server.clone().router(),
    ));
    let config = kube::Config::new(format!("http://{addr}").parse().expect("url"));
    let client = kube::Client::try_from(config).expect("client");
    Served {
        server,
        client,
        http,
    }
}

/// An owner reference to `owner`, blocking its foreground deletion when `block`.
fn owned_by(owner: &ConfigMap, block: bool) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "name": owner.metadata.name,
        "uid": owner.metadata.uid, "blockOwnerDeletion": block})
}

async fn create(
    api: &Api<ConfigMap>,
    name: &str,
    owners: Vec<Value>,
    finalizers: &[&str],
) -> ConfigMap {
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": name, "ownerReferences": owners, "finalizers": finalizers},
        "data": {"k": "v"},
    }))
    .expect("configmap");
    api.create(&PostParams::default(), &cm)
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"))
}

fn uid(cm: &ConfigMap) -> String {
    cm.metadata.uid.clone().expect("uid")
}

/// Waits (on a watch) until the object with this uid is gone.
async fn gone(api: &Api<ConfigMap>, cm: &ConfigMap) {
    let name = cm.metadata.name.clone().expect("name");
    tokio::time::timeout(
        LIMIT,
        await_condition(api.clone(), &name, conditions::is_deleted(&uid(cm))),
    )
    .await
    .unwrap_or_else(|_| panic!("{name} was not collected within {LIMIT:?}"))
    .expect("watch");
}

/// Waits (on a watch) until `check` holds for the object `name`.
async fn until(api: &Api<ConfigMap>, name: &str, what: &str, check: impl Fn(&ConfigMap) -> bool) {
    let cond = move |o: Option<&ConfigMap>| o.is_some_and(&check);
    tokio::time::timeout(LIMIT, await_condition(api.clone(), name, cond))
        .await
        .unwrap_or_else(|_| panic!("{name}: {what} within {LIMIT:?}"))
        .expect("watch");
}

fn owner_uids(cm: &ConfigMap) -> Vec<String> {
    cm.metadata
        .owner_references
        .iter()
        .flatten()
        .map(|r| r.uid.clone())
        .collect()
}

async fn absent(api: &Api<ConfigMap>, name: &str) -> bool {
    api.get_opt(name).await.expect("get").is_none()
}

#[tokio::test]
async fn background_collects_a_chain_and_spares_objects_with_a_living_owner() {
    let s = serve().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let a = create(&api, "a", vec![], &[]).await;
    let e = create(&api, "e", vec![], &[]).await;
    let b = create(&api, "b", vec![owned_by(&a, false)], &[]).await;
    let c = create(&api, "c", vec![owned_by(&b, false)], &[]).await;
    let d = create(
        &api,
        "d",
        vec![owned_by(&a, false), owned_by(&e, false)],
        &[],
    )
    .await;

    let reply = api
        .delete("a", &DeleteParams::background())
        .await
        .expect("delete a");
    let status = reply
        .right()
        .expect("a ConfigMap delete answers with a Status");
    let details = status.details.expect("details");
    assert_eq!(
        (details.name.as_str(), details.kind.as_str()),
        ("a", "configmaps")
    );
    assert_eq!(details.uid, uid(&a));
    assert!(absent(&api, "a").await, "the owner goes at once");

    gone(&api, &b).await;
    gone(&api, &c).await;
    // d lives on through e, without its reference to the deleted owner.
    until(&api, "d", "reference to a dropped", |d| {
        owner_uids(d) == vec![uid(&e)]
    })
    .await;
    api.delete("e", &DeleteParams::default())
        .await
        .expect("delete e");
    gone(&api, &d).await;
}

#[tokio::test]
async fn foreground_waits_for_blocking_dependents() {
    let s = serve().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let a = create(&api, "a", vec![], &[]).await;
    // b blocks a and holds itself with a finalizer; its child c blocks b; loose does not block.
    let b = create(&api, "b", vec![owned_by(&a, true)], &["example.com/hold"]).await;
    let c = create(&api, "c", vec![owned_by(&b, true)], &[]).await;
    let loose = create(&api, "loose", vec![owned_by(&a, false)], &[]).await;

    let reply = api
        .delete("a", &DeleteParams::foreground())
        .await
        .expect("delete a");
    let pending = reply.left().expect("a lingering owner answers with itself");
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert_eq!(
        pending.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_string()])
    );
    gone(&api, &loose).await;
    gone(&api, &c).await;
    // b went into foreground deletion itself (it has a dependent), and let go once c was gone.
    until(&api, "b", "b marked, only its own finalizer left", |b| {
        b.metadata.deletion_timestamp.is_some()
            && b.metadata.finalizers == Some(vec!["example.com/hold".to_string()])
    })
    .await;
    assert!(!absent(&api, "a").await, "a waits for b, which blocks it");

    let release = json!({"metadata": {"finalizers": null}});
    api.patch("b", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .expect("release b");
    gone(&api, &b).await;
    gone(&api, &a).await;
}

#[tokio::test]
async fn orphan_releases_dependents_then_goes() {
    let s = serve().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let a = create(&api, "a", vec![], &[]).await;
    let other = create(&api, "other", vec![], &[]).await;
    create(&api, "b", vec![owned_by(&a, true)], &[]).await;
    create(
        &api,
        "c",
        vec![owned_by(&a, false), owned_by(&other, false)],
        &[],
    )
    .await;

    let reply = api
        .delete("a", &DeleteParams::orphan())
        .await
        .expect("delete a");
    let pending = reply.left().expect("the orphaning owner lingers");
    assert_eq!(
        pending.metadata.finalizers,
        Some(vec!["orphan".to_string()])
    );
    gone(&api, &a).await;
    let b = api.get("b").await.expect("b stays");
    assert!(
        owner_uids(&b).is_empty(),
        "{:?}",
        b.metadata.owner_references
    );
    let c = api.get("c").await.expect("c stays");
    assert_eq!(owner_uids(&c), vec![uid(&other)]);
}

#[tokio::test]
async fn legacy_orphan_dependents_and_the_kind_default() {
    let s = serve().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let a = create(&api, "a", vec![], &[]).await;
    create(&api, "b", vec![owned_by(&a, false)], &[]).await;
    let path = "/api/v1/namespaces/default/configmaps/a";
    let body = serde_json::to_vec(&json!({"orphanDependents": true})).expect("json");
    let (code, reply) = common::send(&s.server, "DELETE", path, "application/json", body).await;
    assert_eq!(code, 200, "{reply}");
    assert_eq!(
        reply["metadata"]["finalizers"],
        json!(["orphan"]),
        "{reply}"
    );
    gone(&api, &a).await;
    assert!(owner_uids(&api.get("b").await.expect("b stays")).is_empty());

    // Both fields at once is refused and changes nothing.
    let body =
        serde_json::to_vec(&json!({"orphanDependents": false, "propagationPolicy": "Foreground"}))
            .expect("json");
    let b_path = "/api/v1/namespaces/default/configmaps/b";
    let (code, reply) = common::send(&s.server, "DELETE", b_path, "application/json", body).await;
    assert_eq!(code, 422, "{reply}");
    assert_eq!(reply["details"]["kind"], "DeleteOptions", "{reply}");
    assert!(!absent(&api, "b").await);

    // A batch/v1 Job orphans by default (upstream keeps that for old clients).
    let jobs = "/apis/batch/v1/namespaces/default/jobs";
    let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "job"},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox"}]}}}});
    let body = job.to_string().into_bytes();
    let (code, job) = common::send(&s.server, "POST", jobs, "application/json", body).await;
    assert_eq!(code, 201, "{job}");
    let job_ref = json!({"apiVersion": "batch/v1", "kind": "Job", "name": "job",
        "uid": job["metadata"]["uid"]});
    let owned = create(&api, "job-child", vec![job_ref], &[]).await;
    let job_path = format!("{jobs}/job");
    let (code, reply) = common::send(&s.server, "DELETE", &job_path, "", Vec::new()).await;
    assert_eq!(code, 200, "{reply}");
    assert_eq!(
        reply["metadata"]["finalizers"],
        json!(["orphan"]),
        "{reply}"
    );
    until(&api, "job-child", "released by the orphaning job", |c| {
        owner_uids(c).is_empty()
    })
    .await;
    assert_eq!(uid(&api.get("job-child").await.expect("kept")), uid(&owned));
}

#[tokio::test]
async fn owners_are_identified_by_uid_and_namespace() {
    let s = serve().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client.clone(), "default");
    let first = create(&api, "owner", vec![], &[]).await;
    api.delete("owner", &DeleteParams::default())
        .await
        .expect("delete");
    let second = create(&api, "owner", vec![], &[]).await;
    assert_ne!(uid(&first), uid(&second));
    // A dependent of the first owner goes although an object of that name exists again.
    let stale = create(&api, "stale", vec![owned_by(&first, false)], &[]).await;
    let live = create(&api, "live", vec![owned_by(&second, false)], &[]).await;
    gone(&api, &stale).await;
    assert_eq!(uid(&api.get("live").await.expect("live stays")), uid(&live));

    // An owner in another namespace is no owner: the dependent is collected.
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(s.client.clone());
    let ns = serde_json::from_value(json!({"metadata": {"name": "elsewhere"}})).expect("ns");
    nss.create(&PostParams::default(), &ns)
        .await
        .expect("namespace");
    let elsewhere: Api<ConfigMap> = Api::namespaced(s.client.clone(), "elsewhere");
    let foreign = create(&elsewhere, "foreign", vec![owned_by(&second, false)], &[]).await;
    gone(&elsewhere, &foreign).await;
    assert!(!absent(&api, "owner").await && !absent(&api, "live").await);
}

#[tokio::test]
async fn delete_replies_follow_the_kind() {
    let s = serve().await;
    let svcs = "/api/v1/namespaces/default/services";
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 80}]}});
    let (code, _) = common::send(
        &s.server,
        "POST",
        svcs,
        "application/json",
        svc.to_string().into_bytes(),
    )
    .await;
    assert_eq!(code, 201);
    let (code, reply) =
        common::send(&s.server, "DELETE", &format!("{svcs}/web"), "", Vec::new()).await;
    assert_eq!(code, 200, "{reply}");
    assert_eq!(
        reply["kind"], "Service",
        "services return the deleted object: {reply}"
    );

    let deploys = "/apis/apps/v1/namespaces/default/deployments";
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}});
    let (code, created) = common::send(
        &s.server,
        "POST",
        deploys,
        "application/json",
        deploy.to_string().into_bytes(),
    )
    .await;
    assert_eq!(code, 201, "{created}");
    let (code, reply) = common::send(
        &s.server,
        "DELETE",
        &format!("{deploys}/web"),
        "",
        Vec::new(),
    )
    .await;
    assert_eq!(code, 200, "{reply}");
    assert_eq!(
        (&reply["kind"], &reply["status"], &reply["details"]),
        (
            &json!("Status"),
            &json!("Success"),
            &json!({"name": "web", "group": "apps",
            "kind": "deployments", "uid": created["metadata"]["uid"]})
        ),
        "{reply}"
    );
}

#[tokio::test]
async fn the_collector_ends_with_its_server() {
    let store = Arc::new(rotor_store::memory::MemoryStore::default());
    let server = ApiServer::new(store.clone(), rotor_apiserver::ServerConfig::default())
        .await
        .expect("server");
    assert!(
        Arc::strong_count(&store) > 2,
        "the collector holds the store while it runs"
    );
    drop(server);
    let deadline = tokio::time::Instant::now() + LIMIT;
    while Arc::strong_count(&store) > 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the collector outlived its server"
        );
        tokio::task::yield_now().await;
    }
}
#[tokio::test]
async fn cluster_scoped_custom_resources_are_collected() {
    let s = serve().await;
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Cluster",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let (code, reply) = common::send(
        &s.server,
        "POST",
        crds,
        "application/json",
        crd.to_string().into_bytes(),
    )
    .await;
    assert_eq!(code, 201, "{reply}");
    let widgets = "/apis/example.com/v1/widgets";
    let owner =
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "owner"}});
    let (code, owner) = common::send(
        &s.server,
        "POST",
        widgets,
        "application/json",
        owner.to_string().into_bytes(),
    )
    .await;
    assert_eq!(code, 201, "{owner}");
    let dep = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "dep",
        "finalizers": ["example.com/cleanup"],
        "ownerReferences": [{"apiVersion": "example.com/v1", "kind": "Widget", "name": "owner",
            "uid": owner["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]}});
    let (code, dep) = common::send(
        &s.server,
        "POST",
        widgets,
        "application/json",
        dep.to_string().into_bytes(),
    )
    .await;
    assert_eq!(code, 201, "{dep}");
    let (code, reply) = common::send(
        &s.server,
        "DELETE",
        &format!("{widgets}/owner"),
        "",
        Vec::new(),
    )
    .await;
    assert_eq!(code, 200, "{reply}");
    let ar = kube::core::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
        "example.com",
        "v1",
        "Widget",
    ));
    let api: Api<kube::core::DynamicObject> = Api::all_with(s.client.clone(), &ar);
    let marked = |o: Option<&kube::core::DynamicObject>| {
        o.is_some_and(|o| o.metadata.deletion_timestamp.is_some())
    };
    tokio::time::timeout(LIMIT, await_condition(api, "dep", marked))
        .await
        .expect("the dependent is marked for deletion")
        .expect("watch");
}
