//! Small divergences from kube-apiserver, each as upstream behaves: a Job without a selector gets
//! the generated one (labels by release), a Job with its own selector needs `manualSelector:
//! true`, a ControllerRevision's `data` (a RawExtension, any JSON) is accepted under Strict
//! field validation, a Namespace keeps the finalizers it is created with, and a Service's
//! `clusterIPs` are judged and kept in step with `clusterIP`.

use crate::common;

use std::sync::Arc;

use rotor_apiserver::{ApiServer, ServerConfig};
use rotor_store::memory::MemoryStore;
use serde_json::{Value, json};

const JSON: &str = "application/json";
const JOBS: &str = "/apis/batch/v1/namespaces/default/jobs";

async fn server_of(minor: u32) -> Arc<ApiServer> {
    let config = ServerConfig {
        kubernetes_minor: minor,
        ..ServerConfig::default()
    };
    ApiServer::new(Arc::new(MemoryStore::default()), config)
        .await
        .expect("server")
}

fn job(name: &str, extra_spec: Value) -> Vec<u8> {
    let mut spec = json!({"template": {"spec": {"restartPolicy": "Never",
        "containers": [{"name": "c", "image": "busybox"}]}}});
    if let (Some(s), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
        s.extend(extra.clone());
    }
    serde_json::to_vec(&json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name}, "spec": spec}))
    .expect("json")
}

#[tokio::test]
async fn a_job_without_a_selector_gets_upstreams_generated_one() {
    let server = server_of(33).await;
    let (code, got) = common::send(&server, "POST", JOBS, JSON, job("pi", json!({}))).await;
    assert_eq!(code, 201, "{got}");
    let uid = got["metadata"]["uid"].as_str().expect("uid");
    assert_eq!(
        got["spec"]["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
    );
    let labels = &got["spec"]["template"]["metadata"]["labels"];
    for (k, v) in [
        ("batch.kubernetes.io/controller-uid", uid),
        ("controller-uid", uid),
        ("batch.kubernetes.io/job-name", "pi"),
        ("job-name", "pi"),
    ] {
        assert_eq!(labels[k], v, "{k} in {labels}");
    }
    assert!(got["spec"].get("manualSelector").is_none(), "{got}");
    // Read back as stored.
    let (_, read) = common::send(&server, "GET", &format!("{JOBS}/pi"), JSON, vec![]).await;
    assert_eq!(read["spec"]["selector"], got["spec"]["selector"]);
}

#[tokio::test]
async fn before_1_27_a_jobs_generated_selector_uses_the_legacy_labels_only() {
    let server = server_of(26).await;
    let (code, got) = common::send(&server, "POST", JOBS, JSON, job("old", json!({}))).await;
    assert_eq!(code, 201, "{got}");
    let uid = got["metadata"]["uid"].as_str().expect("uid");
    assert_eq!(
        got["spec"]["selector"],
        json!({"matchLabels": {"controller-uid": uid}})
    );
    let labels = got["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .expect("labels");
    let mut keys: Vec<&str> = labels.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["controller-uid", "job-name"]);
}

#[tokio::test]
async fn a_manual_selector_is_left_alone() {
    let server = server_of(33).await;
    let manual = json!({"manualSelector": true, "selector": {"matchLabels": {"app": "x"}},
        "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox"}]}}});
    let (code, got) = common::send(&server, "POST", JOBS, JSON, job("m", manual)).await;
    assert_eq!(code, 201, "{got}");
    assert_eq!(
        got["spec"]["selector"],
        json!({"matchLabels": {"app": "x"}})
    );
    assert_eq!(
        got["spec"]["template"]["metadata"]["labels"],
        json!({"app": "x"})
    );
    assert_eq!(got["spec"]["manualSelector"], true);
}

/// The causes' fields and messages of a 422 reply.
fn causes(reply: &Value) -> Vec<(String, String)> {
    reply["details"]["causes"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
                    (s("field"), s("message"))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_jobs_own_selector_without_manual_selector_is_refused() {
    for minor in [26, 35] {
        let server = server_of(minor).await;
        let own = |manual: Option<bool>| {
            let mut spec = json!({"selector": {"matchLabels": {"app": "x"}},
                "template": {"metadata": {"labels": {"app": "x"}}, "spec": {
                    "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}});
            if let Some(m) = manual {
                spec["manualSelector"] = json!(m);
            }
            spec
        };
        for manual in [None, Some(false)] {
            let (code, reply) =
                common::send(&server, "POST", JOBS, JSON, job("own", own(manual))).await;
            assert_eq!(code, 422, "1.{minor} {manual:?}: {reply}");
            assert_eq!(reply["reason"], "Invalid", "{reply}");
            let causes = causes(&reply);
            assert!(
                causes
                    .iter()
                    .any(|(field, message)| field == "spec.selector"
                        && message.ends_with("`selector` not auto-generated")),
                "1.{minor}: {causes:?}"
            );
            let (code, _) =
                common::send(&server, "GET", &format!("{JOBS}/own"), JSON, vec![]).await;
            assert_eq!(code, 404, "nothing stored");
        }
        let (code, reply) =
            common::send(&server, "POST", JOBS, JSON, job("own", own(Some(true)))).await;
        assert_eq!(code, 201, "1.{minor} manual: {reply}");
    }
}

#[tokio::test]
async fn a_template_label_conflicting_with_the_generated_one_is_refused() {
    let server = server_of(35).await;
    let spec = json!({"template": {"metadata": {"labels": {"job-name": "other"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}});
    let (code, reply) = common::send(&server, "POST", JOBS, JSON, job("pi", spec)).await;
    assert_eq!(code, 422, "{reply}");
    let causes = causes(&reply);
    assert!(
        causes.iter().any(
            |(field, message)| field == "spec.template.metadata.labels[job-name]"
                && message.ends_with("must be 'pi'")
        ),
        "{causes:?}"
    );
    assert!(
        causes.iter().all(|(field, _)| field != "spec.selector"),
        "the generated selector still selects: {causes:?}"
    );
}

#[tokio::test]
async fn a_controller_revisions_data_is_any_json_under_strict_validation() {
    let server = server_of(33).await;
    let url = "/apis/apps/v1/namespaces/default/controllerrevisions?fieldValidation=Strict";
    for (name, data) in [
        (
            "obj",
            json!({"spec": {"template": {"$patch": "replace", "spec": {"anything": [1, "x"]}}}}),
        ),
        ("list", json!([1, 2, {"a": null}])),
        ("text", json!("a string")),
        ("number", json!(7)),
    ] {
        let body = json!({"apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": name}, "revision": 1, "data": data});
        let (code, got) = common::send(
            &server,
            "POST",
            url,
            JSON,
            serde_json::to_vec(&body).expect("json"),
        )
        .await;
        assert_eq!(code, 201, "{name}: {got}");
        assert_eq!(got["data"], data, "{name}");
    }
    let bad = json!({"apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {"name": "typo"}, "revision": 1, "dataa": {}});
    let (code, got) = common::send(
        &server,
        "POST",
        url,
        JSON,
        serde_json::to_vec(&bad).unwrap(),
    )
    .await;
    assert_eq!(
        code, 400,
        "an unknown field beside data is still refused: {got}"
    );
}

#[tokio::test]
async fn a_namespace_keeps_its_finalizers_and_refuses_unqualified_ones() {
    let server = server_of(35).await;
    let ns = |name: &str, finalizers: Value| {
        serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name}, "spec": {"finalizers": finalizers}}))
        .expect("json")
    };
    const NAMESPACES: &str = "/api/v1/namespaces";
    let (code, got) = common::send(
        &server,
        "POST",
        NAMESPACES,
        JSON,
        ns("kept", json!(["example.com/cleanup"])),
    )
    .await;
    assert_eq!(code, 201, "{got}");
    assert_eq!(
        got["spec"]["finalizers"],
        json!(["example.com/cleanup", "kubernetes"])
    );
    let (code, reply) = common::send(
        &server,
        "POST",
        NAMESPACES,
        JSON,
        ns("bad", json!(["cleanup"])),
    )
    .await;
    assert_eq!(code, 422, "{reply}");
    assert!(
        causes(&reply).iter().any(|(f, m)| f == "spec.finalizers"
            && m.ends_with("name is neither a standard finalizer name nor is it fully qualified")),
        "{reply}"
    );
}

#[tokio::test]
async fn a_services_cluster_ips_are_judged_and_kept_in_step() {
    let server = server_of(35).await;
    const SERVICES: &str = "/api/v1/namespaces/default/services";
    let svc = |name: &str, extra: Value| {
        let mut spec = json!({"ports": [{"port": 80}]});
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name}, "spec": spec}))
        .expect("json")
    };
    let (code, got) = common::send(
        &server,
        "POST",
        SERVICES,
        JSON,
        svc("one", json!({"clusterIP": "10.96.7.7"})),
    )
    .await;
    assert_eq!(code, 201, "{got}");
    assert_eq!(got["spec"]["clusterIPs"], json!(["10.96.7.7"]));
    let (code, got) = common::send(
        &server,
        "POST",
        SERVICES,
        JSON,
        svc("two", json!({"clusterIPs": ["10.96.8.8"]})),
    )
    .await;
    assert_eq!(code, 201, "{got}");
    assert_eq!(got["spec"]["clusterIP"], "10.96.8.8");
    for (name, spec, field, message) in [
        (
            "bad-ip",
            json!({"clusterIPs": ["a"]}),
            "spec.clusterIPs[0]",
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ),
        (
            "apart",
            json!({"clusterIP": "10.96.9.9", "clusterIPs": ["10.96.9.10"]}),
            "spec.clusterIPs",
            "first value must match `clusterIP`",
        ),
        (
            "none-first",
            json!({"clusterIP": "None", "clusterIPs": ["None", "10.96.9.11"]}),
            "spec.clusterIPs",
            "'None' must be the first and only value",
        ),
    ] {
        let (code, reply) = common::send(&server, "POST", SERVICES, JSON, svc(name, spec)).await;
        assert_eq!(code, 422, "{name}: {reply}");
        assert!(
            causes(&reply)
                .iter()
                .any(|(f, m)| f == field && m.ends_with(message)),
            "{name}: {reply}"
        );
    }
}
