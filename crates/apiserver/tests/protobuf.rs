//! Protobuf request bodies through the HTTP layer: kubectl's captured bodies create what they
//! say, updates, subresource writes (status, scale) and DeleteOptions accept protobuf, custom
//! resources refuse it with a 415, and no protobuf garbage gets a 5xx or writes anything.

use crate::common;

use std::sync::Arc;

use common::{send, server};

use proptest::prelude::*;
use rotor_apiserver::ApiServer;
use rotor_store::Store;
use serde_json::{Value, json};

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/kubectl-1.32/{name}.pb",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

async fn get(server: &Arc<ApiServer>, path: &str) -> Value {
    let (code, v) = send(server, "GET", path, "", Vec::new()).await;
    assert_eq!(code, 200, "GET {path}: {v}");
    v
}

// A few protobuf fields by hand (the decoder's own unit tests cover the encoding in depth).
fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn ld(field: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(field << 3 | 2, &mut out);
    varint(payload.len() as u64, &mut out);
    out.extend_from_slice(payload);
    out
}

fn int(field: u64, value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    varint(field << 3, &mut out);
    varint(value, &mut out);
    out
}

fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let type_meta = [ld(1, api_version.as_bytes()), ld(2, kind.as_bytes())].concat();
    [b"k8s\0".to_vec(), ld(1, &type_meta), ld(2, raw)].concat()
}

fn meta(name: &str) -> Vec<u8> {
    ld(1, &ld(1, name.as_bytes()))
}

#[tokio::test]
async fn kubectl_bodies_create_what_they_say() {
    let (s, _) = server().await;
    let ns = "/api/v1/namespaces/default";
    let cases = [
        (
            "configmap",
            format!("{ns}/configmaps"),
            "/data/a",
            json!("b"),
        ),
        (
            "secret-generic",
            format!("{ns}/secrets"),
            "/data/password",
            json!("aHVudGVyMg=="),
        ),
        (
            "deployment",
            "/apis/apps/v1/namespaces/default/deployments".into(),
            "/spec/replicas",
            json!(3),
        ),
        (
            "deployment-replicas-0",
            "/apis/apps/v1/namespaces/default/deployments".into(),
            "/spec/replicas",
            json!(0),
        ),
        (
            "service-clusterip",
            format!("{ns}/services"),
            "/spec/ports/0/targetPort",
            json!(8080),
        ),
        (
            "service-nodeport-named-port",
            format!("{ns}/services"),
            "/spec/ports/0/targetPort",
            json!("http"),
        ),
        (
            "serviceaccount",
            format!("{ns}/serviceaccounts"),
            "/metadata/name",
            json!("robot"),
        ),
        (
            "role",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles".into(),
            "/rules/1/apiGroups/0",
            json!("apps"),
        ),
        (
            "clusterrole",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles".into(),
            "/rules/1/nonResourceURLs/0",
            json!("/healthz"),
        ),
        (
            "job",
            "/apis/batch/v1/namespaces/default/jobs".into(),
            "/spec/template/spec/restartPolicy",
            json!("Never"),
        ),
        (
            "cronjob",
            "/apis/batch/v1/namespaces/default/cronjobs".into(),
            "/spec/schedule",
            json!("*/5 * * * *"),
        ),
        (
            "pdb-max-unavailable-percent",
            "/apis/policy/v1/namespaces/default/poddisruptionbudgets".into(),
            "/spec/maxUnavailable",
            json!("50%"),
        ),
        (
            "quota",
            format!("{ns}/resourcequotas"),
            "/spec/hard/memory",
            json!("1Gi"),
        ),
        (
            "priorityclass",
            "/apis/scheduling.k8s.io/v1/priorityclasses".into(),
            "/value",
            json!(1000),
        ),
        (
            "ingress",
            "/apis/networking.k8s.io/v1/namespaces/default/ingresses".into(),
            "/spec/rules/0/http/paths/0/backend/service/port/number",
            json!(8080),
        ),
        (
            "namespace",
            "/api/v1/namespaces".into(),
            "/status/phase",
            json!("Active"),
        ),
    ];
    for (name, path, pointer, want) in cases {
        let (code, created) = send(&s, "POST", &path, PROTOBUF, fixture(name)).await;
        assert_eq!(code, 201, "{name}: {created}");
        let stored = get(
            &s,
            &format!(
                "{path}/{}",
                created["metadata"]["name"].as_str().expect("name")
            ),
        )
        .await;
        assert_eq!(stored.pointer(pointer), Some(&want), "{name}: {stored}");
    }
}

#[tokio::test]
async fn updates_and_subresources_accept_protobuf() {
    let (s, _) = server().await;
    let cms = "/api/v1/namespaces/default/configmaps";
    let (code, _) = send(&s, "POST", cms, PROTOBUF, fixture("configmap")).await;
    assert_eq!(code, 201);
    // PUT: ConfigMap {metadata {name cm1}, data {a: c}}.
    let data = ld(2, &[ld(1, b"a"), ld(2, b"c")].concat());
    let (code, updated) = send(
        &s,
        "PUT",
        &format!("{cms}/cm1"),
        PROTOBUF,
        envelope("v1", "ConfigMap", &[meta("cm1"), data].concat()),
    )
    .await;
    assert_eq!(code, 200, "{updated}");
    assert_eq!(
        get(&s, &format!("{cms}/cm1")).await["data"],
        json!({"a": "c"})
    );

    let deploys = "/apis/apps/v1/namespaces/default/deployments";
    let (code, _) = send(&s, "POST", deploys, PROTOBUF, fixture("deployment")).await;
    assert_eq!(code, 201);
    // PUT /status: Deployment {metadata, status {replicas 3 (tag 2), readyReplicas 2 (tag 7)}}.
    let status = ld(3, &[int(2, 3), int(7, 2)].concat());
    let (code, v) = send(
        &s,
        "PUT",
        &format!("{deploys}/web/status"),
        PROTOBUF,
        envelope("apps/v1", "Deployment", &[meta("web"), status].concat()),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    let d = get(&s, &format!("{deploys}/web")).await;
    assert_eq!(d["status"]["readyReplicas"], 2, "{d}");
    assert_eq!(
        d["spec"]["replicas"], 3,
        "the status write changed only status"
    );
    // PUT /scale with an autoscaling/v1 Scale, to zero.
    let scale = envelope(
        "autoscaling/v1",
        "Scale",
        &[meta("web"), ld(2, &int(1, 0))].concat(),
    );
    let (code, v) = send(&s, "PUT", &format!("{deploys}/web/scale"), PROTOBUF, scale).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        get(&s, &format!("{deploys}/web")).await["spec"]["replicas"],
        0
    );

    // DELETE with protobuf DeleteOptions {dryRun: [All]}: answered, nothing deleted.
    let options = envelope("v1", "DeleteOptions", &ld(5, b"All"));
    let (code, v) = send(&s, "DELETE", &format!("{cms}/cm1"), PROTOBUF, options).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        get(&s, &format!("{cms}/cm1")).await["data"],
        json!({"a": "c"}),
        "dry run"
    );
    let options = envelope("v1", "DeleteOptions", &int(1, 0));
    let (code, v) = send(&s, "DELETE", &format!("{cms}/cm1"), PROTOBUF, options).await;
    assert_eq!(code, 200, "{v}");
    let (code, _) = send(&s, "GET", &format!("{cms}/cm1"), "", Vec::new()).await;
    assert_eq!(code, 404, "deleted with gracePeriodSeconds 0");
    // What kubectl drain sends.
    let (code, _) = send(
        &s,
        "POST",
        "/api/v1/namespaces/default/secrets",
        PROTOBUF,
        fixture("secret-generic"),
    )
    .await;
    assert_eq!(code, 201);
    let drain = fixture("drain-delete-options");
    let (code, v) = send(
        &s,
        "DELETE",
        "/api/v1/namespaces/default/secrets/s1",
        PROTOBUF,
        drain,
    )
    .await;
    assert_eq!(code, 200, "{v}");

    // A Service whose port has the zero targetPort Go always sends: defaulted to the port.
    let port = ld(1, &[int(3, 443), ld(4, b"")].concat());
    let svc = envelope("v1", "Service", &[meta("api"), ld(2, &port)].concat());
    let (code, v) = send(
        &s,
        "POST",
        "/api/v1/namespaces/default/services",
        PROTOBUF,
        svc,
    )
    .await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["spec"]["ports"][0]["targetPort"], 443, "{v}");
}

#[tokio::test]
async fn custom_resources_refuse_protobuf_with_415() {
    let (s, store) = server().await;
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
    let (code, v) = send(
        &s,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        "application/json",
        serde_json::to_vec(&crd).expect("json"),
    )
    .await;
    assert_eq!(code, 201, "{v}");
    let before = store.current_revision().await.expect("rev");
    let body = envelope("example.com/v1", "Gadget", &meta("g1"));
    let (code, status) = send(
        &s,
        "POST",
        "/apis/example.com/v1/namespaces/default/gadgets",
        PROTOBUF,
        body,
    )
    .await;
    assert_eq!(code, 415, "{status}");
    assert_eq!(status["reason"], "UnsupportedMediaType");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("Gadget")),
        "{status}"
    );
    assert_eq!(store.current_revision().await.expect("rev"), before);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// Random objects in valid envelopes, and random bytes after kubectl's real bodies, sent as
    /// creates and updates: always a 4xx Status or a success, and a failure writes nothing.
    #[test]
    fn protobuf_garbage_is_a_4xx_and_writes_nothing(raw in proptest::collection::vec(any::<u8>(), 0..128), kind in 0usize..4, put in any::<bool>()) {
        let rt = runtime();
        rt.block_on(async {
            let (s, store) = server().await;
            let (gv, k, path) = [
                ("v1", "ConfigMap", "/api/v1/namespaces/default/configmaps"),
                ("apps/v1", "Deployment", "/apis/apps/v1/namespaces/default/deployments"),
                ("v1", "Service", "/api/v1/namespaces/default/services"),
                ("v1", "Namespace", "/api/v1/namespaces"),
            ][kind];
            let real = fixture(["configmap", "deployment", "service-clusterip", "namespace"][kind]);
            for body in [envelope(gv, k, &raw), [real, raw.clone()].concat()] {
                let before = store.current_revision().await.expect("rev");
                let (method, target) = if put { ("PUT", format!("{path}/x")) } else { ("POST", path.to_string()) };
                let (code, status) = send(&s, method, &target, PROTOBUF, body).await;
                prop_assert!(code < 500, "{code}: {status}");
                if code >= 400 {
                    prop_assert_eq!(&status["kind"], "Status");
                    prop_assert_eq!(store.current_revision().await.expect("rev"), before);
                }
            }
            Ok(())
        })?;
    }
}
