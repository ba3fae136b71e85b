//! `x-kubernetes-validations` CEL rules over real HTTP: a failing rule gets 422 at its field
//! (or its `fieldPath`) with its message and reason; transition rules (`oldSelf`) run on update
//! only; a CRD whose rule does not compile is refused naming the rule; rotor's own CRDs' rules
//! (immutable swap target, strictly increasing traffic steps) are enforced.

use crate::common;

use common::send;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::core::Status;
use serde_json::{Value, json};

/// The one cause of a 422 refusal: (field, reason, message).
fn cause(e: Box<Status>) -> (String, String, String) {
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"), "{e:?}");
    let causes = e.details.expect("details").causes;
    assert_eq!(causes.len(), 1, "{causes:?}");
    let c = causes.into_iter().next().expect("cause");
    (c.field, c.reason, c.message)
}

fn crd(rules: Value) -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "metadata": {"name": "scalers.test.rotor.dev"},
        "spec": {"group": "test.rotor.dev", "scope": "Namespaced",
            "names": {"plural": "scalers", "singular": "scaler", "kind": "Scaler"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "x-kubernetes-validations": rules, "properties": {
                        "min": {"type": "integer"}, "max": {"type": "integer"},
                        "mode": {"type": "string", "x-kubernetes-validations": [
                            {"rule": "self == oldSelf", "message": "mode is immutable"}]}}}}}}}]},
    }))
    .expect("crd")
}

#[tokio::test]
async fn cel_rules_refuse_with_their_message_field_and_reason() {
    let server = common::start(common::memory()).await;
    let c = &server.client;
    let crds: Api<CustomResourceDefinition> = Api::all(c.clone());

    // A rule that does not compile refuses its CRD, naming the rule.
    let e = crds
        .create(
            &PostParams::default(),
            &crd(json!([{"rule": "self.min <="}])),
        )
        .await;
    let kube::Error::Api(status) = e.expect_err("bad rule") else {
        panic!("an API error")
    };
    let (field, _, message) = cause(status);
    assert_eq!(
        field,
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule"
    );
    assert!(message.contains("compilation failed"), "{message}");
    let bad = crd(json!([{"rule": "true", "messageExpression": "'a' +"}]));
    let e = crds.create(&PostParams::default(), &bad).await;
    let kube::Error::Api(status) = e.expect_err("bad messageExpression") else {
        panic!("an API error")
    };
    assert!(
        cause(status)
            .0
            .ends_with("x-kubernetes-validations[0].messageExpression")
    );

    let rules = json!([
        {"rule": "!has(self.min) || !has(self.max) || self.min <= self.max", "message": "min must not exceed max"},
        {"rule": "!has(self.max) || self.max <= 100", "fieldPath": ".max", "reason": "FieldValueForbidden",
            "message": "max is at most 100"},
        {"rule": "!has(self.min) || self.min >= 0"},
        {"rule": "!has(self.mode) || self.mode != 'off'", "message": "not off",
            "messageExpression": "'mode ' + self.mode + ' is not allowed'"},
    ]);
    crds.create(&PostParams::default(), &crd(rules))
        .await
        .expect("crd");
    let base = "/apis/test.rotor.dev/v1/namespaces/default/scalers";
    let obj = |name: &str, spec: Value| json!({"apiVersion": "test.rotor.dev/v1", "kind": "Scaler", "metadata": {"name": name}, "spec": spec});
    let post = |body: Value| async move { send(c, "POST", base, "application/json", &body).await };

    let (f, r, m) = cause(
        post(obj("a", json!({"min": 5, "max": 2})))
            .await
            .expect_err("min > max"),
    );
    assert_eq!(
        (f.as_str(), r.as_str(), m.as_str()),
        (
            "spec",
            "FieldValueInvalid",
            "Invalid value: \"object\": min must not exceed max"
        )
    );
    let (f, r, m) = cause(post(obj("b", json!({"max": 200}))).await.expect_err("max"));
    assert_eq!(
        (f.as_str(), r.as_str(), m.as_str()),
        (
            "spec.max",
            "FieldValueForbidden",
            "Forbidden: max is at most 100"
        )
    );
    let (f, _, m) = cause(
        post(obj("c", json!({"min": -1})))
            .await
            .expect_err("no message"),
    );
    assert_eq!(
        (f.as_str(), m.as_str()),
        (
            "spec",
            "Invalid value: \"object\": failed rule: !has(self.min) || self.min >= 0"
        )
    );
    let (_, _, m) = cause(
        post(obj("d", json!({"mode": "off"})))
            .await
            .expect_err("off"),
    );
    assert_eq!(m, "Invalid value: \"object\": mode off is not allowed");
    for name in ["a", "b", "c", "d"] {
        let got = common::get(c, &format!("{base}/{name}")).await;
        assert_eq!(got.expect_err("not written").code, 404);
    }

    // The transition rule: not evaluated on create, refuses a change on update and patch.
    post(obj("ok", json!({"min": 1, "max": 3, "mode": "fast"})))
        .await
        .expect("valid");
    let one = format!("{base}/ok");
    let patch = send(
        c,
        "PATCH",
        &one,
        "application/merge-patch+json",
        &json!({"spec": {"mode": "slow"}}),
    )
    .await;
    let (f, _, m) = cause(patch.expect_err("mode changed"));
    assert_eq!(
        (f.as_str(), m.as_str()),
        ("spec.mode", "Invalid value: \"slow\": mode is immutable")
    );
    let put = send(
        c,
        "PUT",
        &one,
        "application/json",
        &obj("ok", json!({"min": 1, "max": 3, "mode": "slow"})),
    )
    .await;
    assert_eq!(cause(put.expect_err("mode changed")).0, "spec.mode");
    let fine = send(
        c,
        "PATCH",
        &one,
        "application/merge-patch+json",
        &json!({"spec": {"max": 4}}),
    )
    .await;
    assert_eq!(fine.expect("other fields may change")["spec"]["max"], 4);
}

#[tokio::test]
async fn rotor_crds_rules_are_enforced() {
    let server = common::start(common::memory()).await;
    let c = &server.client;
    let base = "/apis/rotor.dev/v1alpha1/clusterswaps";
    let swap = |steps: Value| {
        json!({"apiVersion": "rotor.dev/v1alpha1", "kind": "ClusterSwap",
        "metadata": {"name": "s1"},
        "spec": {"clusterRef": "prod", "target": {"kubernetesVersion": "1.35"},
            "strategy": {"trafficSteps": steps}}})
    };
    let e = send(
        c,
        "POST",
        base,
        "application/json",
        &swap(json!([10, 5, 100])),
    )
    .await;
    let (f, _, m) = cause(e.expect_err("unsorted steps"));
    assert_eq!(f, "spec.strategy.trafficSteps");
    assert!(
        m.ends_with("traffic steps must be strictly increasing"),
        "{m}"
    );
    send(
        c,
        "POST",
        base,
        "application/json",
        &swap(json!([10, 50, 100])),
    )
    .await
    .expect("a valid swap");
    let e = send(
        c,
        "PATCH",
        &format!("{base}/s1"),
        "application/merge-patch+json",
        &json!({"spec": {"clusterRef": "other"}}),
    )
    .await;
    let (f, _, m) = cause(e.expect_err("clusterRef changed"));
    assert_eq!(
        (f.as_str(), m.as_str()),
        (
            "spec.clusterRef",
            "Invalid value: \"other\": clusterRef is immutable"
        )
    );
}

/// Metric gates a user gets wrong are refused by the apiserver itself (schema keywords and CEL
/// rules, before any controller reads them), each with one cause naming the field.
#[tokio::test]
async fn bad_metric_gates_are_refused_naming_the_field() {
    let server = common::start(common::memory()).await;
    let c = &server.client;
    let base = "/apis/rotor.dev/v1alpha1/clusterswaps";
    let gate = |patch: Value| {
        let mut g = json!({"name": "errors", "query": "max(e{i=\"{{green}}\"})",
            "threshold": {"max": 0.01}, "intervalSeconds": 5});
        for (k, v) in patch.as_object().expect("an object") {
            g[k] = v.clone();
        }
        g
    };
    let swap = |gates: Value| {
        json!({"apiVersion": "rotor.dev/v1alpha1", "kind": "ClusterSwap",
            "metadata": {"name": "s1"},
            "spec": {"clusterRef": "prod", "target": {"kubernetesVersion": "1.35"},
                "strategy": {"healthGates": {"metricGates": gates}}}})
    };
    let at = "spec.strategy.healthGates.metricGates[0]";
    for (gates, field, says) in [
        (
            json!([gate(json!({"query": "e{i=\"{{greeen}}\"}"}))]),
            format!("{at}.query"),
            "must open a known variable",
        ),
        (
            json!([gate(json!({"query": ""}))]),
            format!("{at}.query"),
            "should be at least 1 chars long",
        ),
        (
            json!([gate(json!({"intervalSeconds": 0}))]),
            format!("{at}.intervalSeconds"),
            "should be greater than or equal to 1",
        ),
        (
            json!([gate(json!({"threshold": {}}))]),
            format!("{at}.threshold"),
            "set max, min or both",
        ),
        (
            json!([gate(json!({"threshold": {"min": 2, "max": 1}}))]),
            format!("{at}.threshold"),
            "min must not exceed max",
        ),
        (
            json!([gate(json!({"onInconclusive": "Maybe"}))]),
            format!("{at}.onInconclusive"),
            "supported values: \"Pause\", \"Fail\"",
        ),
        (
            json!([gate(json!({"prometheus": {"url": "http://u:p@prom:9090"}}))]),
            format!("{at}.prometheus.url"),
            "should match",
        ),
        (
            json!([gate(json!({})), gate(json!({}))]),
            "spec.strategy.healthGates.metricGates[1]".to_string(),
            "Duplicate value",
        ),
    ] {
        let e = send(c, "POST", base, "application/json", &swap(gates.clone())).await;
        let (f, _, m) = cause(e.expect_err("a bad gate"));
        assert_eq!(f, field, "{gates}: {m}");
        assert!(m.contains(says), "{gates}: {m}");
    }
    let created = send(
        c,
        "POST",
        base,
        "application/json",
        &swap(json!([gate(json!({}))])),
    )
    .await
    .expect("a good gate");
    let written = &created["spec"]["strategy"]["healthGates"]["metricGates"][0];
    assert_eq!(written["consecutive"], 3, "defaulted: {written}");
    assert_eq!(written["onInconclusive"], "Pause", "defaulted: {written}");
}

/// Hooks a user gets wrong are refused by the apiserver (schema and CEL): exactly one of
/// `webhook` and `job`, a webhook's timeout at most 30 s and a Job's at most 3600 s; a good
/// Job hook keeps its template as written.
#[tokio::test]
async fn bad_hooks_are_refused_naming_the_field() {
    let server = common::start(common::memory()).await;
    let c = &server.client;
    let base = "/apis/rotor.dev/v1alpha1/clusterswaps";
    let webhook = json!({"url": "https://ci.example.com/hook",
        "secretRef": {"name": "hooks", "key": "k"}});
    let job = json!({"namespace": "shop", "template": {"spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "smoke", "image": "smoke:1"}]}}}}});
    let swap = |hook: Value| {
        json!({"apiVersion": "rotor.dev/v1alpha1", "kind": "ClusterSwap",
            "metadata": {"name": "s1"},
            "spec": {"clusterRef": "prod", "target": {"kubernetesVersion": "1.35"},
                "strategy": {"hooks": [hook]}}})
    };
    let at = "spec.strategy.hooks[0]";
    for (hook, field, says) in [
        (
            json!({"name": "h", "point": "AfterMigration", "webhook": webhook, "job": job}),
            at.to_string(),
            "set exactly one of webhook and job",
        ),
        (
            json!({"name": "h", "point": "AfterMigration"}),
            at.to_string(),
            "set exactly one of webhook and job",
        ),
        (
            json!({"name": "h", "point": "AfterMigration", "webhook": webhook, "timeoutSeconds": 31}),
            format!("{at}.timeoutSeconds"),
            "a webhook call's timeoutSeconds must be at most 30",
        ),
        (
            json!({"name": "h", "point": "AfterMigration", "job": job, "timeoutSeconds": 3601}),
            format!("{at}.timeoutSeconds"),
            "should be less than or equal to 3600",
        ),
        (
            json!({"name": "h", "point": "AfterMigration",
                "job": {"cluster": "Purple", "template": {}}}),
            format!("{at}.job.cluster"),
            "supported values: \"Green\", \"Blue\"",
        ),
    ] {
        let e = send(c, "POST", base, "application/json", &swap(hook.clone())).await;
        let (f, _, m) = cause(e.expect_err("a bad hook"));
        assert_eq!(f, field, "{hook}: {m}");
        assert!(m.contains(says), "{hook}: {m}");
    }
    let good = json!({"name": "h", "point": "AfterMigration", "job": job, "timeoutSeconds": 1800});
    let created = send(c, "POST", base, "application/json", &swap(good))
        .await
        .expect("a good Job hook");
    let written = &created["spec"]["strategy"]["hooks"][0]["job"];
    assert_eq!(written["cluster"], "Green", "defaulted: {written}");
    assert_eq!(written["template"], job["template"], "kept as written");
}
