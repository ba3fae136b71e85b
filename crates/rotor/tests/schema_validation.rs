//! Type errors and structural-schema rules enforced by rotor's API server over real HTTP: a
//! wrong type in a built-in kind is refused at every fieldValidation level and on every write
//! path, with the words of kube-apiserver's decoder, and nothing is written; a custom resource
//! breaking any schema keyword gets 422 Invalid naming the field and the reason; rotor's own
//! Cluster schema refuses a missing or unknown provider.

use crate::common;

use common::send;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

const LEVELS: [&str; 3] = ["Ignore", "Warn", "Strict"];

const CM_TYPE_ERROR: &str = "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: json: \
    cannot unmarshal number into Go struct field ConfigMap.data of type string";

#[tokio::test]
async fn a_type_error_in_a_built_in_kind_is_refused_at_every_level_on_every_path() {
    let server = common::start(common::memory()).await;
    let c = &server.client;
    let base = "/api/v1/namespaces/default/configmaps";
    let bad = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"port": 8080}});
    for level in LEVELS {
        let uri = format!("{base}?fieldValidation={level}");
        let e = send(c, "POST", &uri, "application/json", &bad)
            .await
            .expect_err(level);
        assert_eq!(
            (e.code, e.reason.as_str()),
            (400, "BadRequest"),
            "{level}: {e:?}"
        );
        assert_eq!(e.message, CM_TYPE_ERROR, "{level}");
        // Server-side apply creates too: refused the same way.
        let apply = format!("{base}/cfg?fieldManager=t&fieldValidation={level}");
        let ct = "application/apply-patch+yaml";
        let e = send(c, "PATCH", &apply, ct, &bad).await.expect_err(level);
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, CM_TYPE_ERROR),
            "apply {level}"
        );
    }
    let e = common::get(c, &format!("{base}/cfg")).await;
    assert_eq!(e.expect_err("nothing was written").code, 404);

    // On an existing object: update and every patch type are refused, the object unchanged.
    let good = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"port": "80"}});
    send(c, "POST", base, "application/json", &good)
        .await
        .expect("create");
    let one = format!("{base}/cfg");
    let patches = [
        ("PUT", "application/json", bad.clone()),
        (
            "PATCH",
            "application/merge-patch+json",
            json!({"data": {"port": 8080}}),
        ),
        (
            "PATCH",
            "application/strategic-merge-patch+json",
            json!({"data": {"port": 8080}}),
        ),
        (
            "PATCH",
            "application/json-patch+json",
            json!([{"op": "replace", "path": "/data/port", "value": 8080}]),
        ),
    ];
    for level in LEVELS {
        for (method, ct, body) in &patches {
            let uri = format!("{one}?fieldValidation={level}");
            let e = send(c, method, &uri, ct, body).await.expect_err(ct);
            assert_eq!(
                (e.code, e.message.as_str()),
                (400, CM_TYPE_ERROR),
                "{ct} {level}"
            );
        }
    }
    let now = common::get(c, &one).await.expect("get");
    assert_eq!(now["data"], json!({"port": "80"}));

    // The innermost Go struct and the field path of struct fields, as Go's decoder names them.
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": "two", "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}});
    let uri = "/apis/apps/v1/namespaces/default/deployments?fieldValidation=Ignore";
    let e = send(c, "POST", uri, "application/json", &deploy)
        .await
        .expect_err("deployment");
    assert_eq!(
        e.message,
        "Deployment in version \"v1\" cannot be handled as a Deployment: json: cannot unmarshal \
         string into Go struct field DeploymentSpec.spec.replicas of type int32"
    );
}

/// A CRD whose schema uses every structural keyword the catalogue below breaks.
fn gadget_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "metadata": {"name": "gadgets.test.rotor.dev"},
        "spec": {"group": "test.rotor.dev", "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "required": ["color"], "properties": {
                        "name": {"type": "string", "minLength": 2, "maxLength": 5, "pattern": "^[a-z]+$"},
                        "color": {"type": "string", "enum": ["red", "blue"]},
                        "replicas": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 10},
                        "count": {"type": "integer", "format": "int32"},
                        "ratio": {"type": "number", "minimum": 0, "exclusiveMinimum": true},
                        "id": {"type": "string", "format": "uuid"},
                        "when": {"type": "string", "format": "date-time"},
                        "host": {"type": "string", "format": "hostname"},
                        "tags": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"},
                            "x-kubernetes-list-type": "set"},
                        "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                            "items": {"type": "object", "required": ["name"], "properties": {
                                "name": {"type": "string"}, "port": {"type": "integer"}}}},
                        "labels": {"type": "object", "maxProperties": 2, "minProperties": 1,
                            "additionalProperties": {"type": "string"}},
                        "note": {"type": "string", "nullable": true},
                        "title": {"type": "string"},
                        "size": {"x-kubernetes-int-or-string": true}}}}}}}]},
    }))
    .expect("crd")
}

#[tokio::test]
async fn custom_resources_breaking_a_schema_keyword_get_422_naming_the_field() {
    let server = common::start(common::memory()).await;
    let c = &server.client;
    let crds: Api<CustomResourceDefinition> = Api::all(c.clone());
    // A pattern that is no regular expression refuses its CRD, naming it.
    let mut bad = serde_json::to_value(gadget_crd()).expect("json");
    bad["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["name"]
        ["pattern"] = json!("([a-z");
    let bad: CustomResourceDefinition = serde_json::from_value(bad).expect("crd");
    let Err(kube::Error::Api(e)) = crds.create(&PostParams::default(), &bad).await else {
        panic!("a CRD with a broken pattern was accepted")
    };
    assert_eq!(e.code, 422, "{e:?}");
    let causes = e.details.expect("details").causes;
    assert_eq!(
        causes[0].field,
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[name].pattern"
    );
    crds.create(&PostParams::default(), &gadget_crd())
        .await
        .expect("crd");
    let base = "/apis/test.rotor.dev/v1/namespaces/default/gadgets";
    let with = |name: &str, spec: Value| {
        let mut s = json!({"color": "red"});
        s.as_object_mut()
            .unwrap()
            .extend(spec.as_object().unwrap().clone());
        json!({"apiVersion": "test.rotor.dev/v1", "kind": "Gadget", "metadata": {"name": name}, "spec": s})
    };
    // A valid one passes, nulls where nullable included.
    let ok = with(
        "ok",
        json!({"name": "abc", "replicas": 3, "ratio": 0.5, "note": null, "size": "50%",
        "id": "0b8f3f56-2c1e-4f54-9b8e-1d1b2a3c4d5e", "when": "2026-01-02T03:04:05Z", "host": "a.example.com",
        "tags": ["a"], "ports": [{"name": "http", "port": 80}], "labels": {"a": "b"}}),
    );
    send(c, "POST", base, "application/json", &ok)
        .await
        .expect("valid gadget");

    let catalogue: Vec<(&str, Value, &str, &str, &str)> = vec![
        (
            "type",
            json!({"replicas": "three"}),
            "spec.replicas",
            "FieldValueInvalid",
            "Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"",
        ),
        (
            // A null in a non-nullable field without a default is dropped before validation
            // (upstream's PruneNonNullableNullsWithoutDefaults), so it is missing.
            "required",
            json!({"color": null}),
            "spec.color",
            "FieldValueRequired",
            "Required value",
        ),
        (
            "enum",
            json!({"color": "green"}),
            "spec.color",
            "FieldValueNotSupported",
            "Unsupported value: \"green\": supported values: \"red\", \"blue\"",
        ),
        (
            "pattern",
            json!({"name": "AB"}),
            "spec.name",
            "FieldValueInvalid",
            "spec.name in body should match '^[a-z]+$'",
        ),
        (
            "minLength",
            json!({"name": "a"}),
            "spec.name",
            "FieldValueInvalid",
            "should be at least 2 chars long",
        ),
        (
            "maxLength",
            json!({"name": "abcdef"}),
            "spec.name",
            "FieldValueTooLong",
            "Too long: may not be more than 5 bytes",
        ),
        (
            "maximum",
            json!({"replicas": 11}),
            "spec.replicas",
            "FieldValueInvalid",
            "Invalid value: 11: spec.replicas in body should be less than or equal to 10",
        ),
        (
            "minimum",
            json!({"replicas": 0}),
            "spec.replicas",
            "FieldValueInvalid",
            "should be greater than or equal to 1",
        ),
        (
            "exclusiveMinimum",
            json!({"ratio": 0}),
            "spec.ratio",
            "FieldValueInvalid",
            "should be greater than 0",
        ),
        (
            "int32",
            json!({"count": 5_000_000_000_i64}),
            "spec.count",
            "FieldValueInvalid",
            "must be of type int32",
        ),
        (
            "uuid",
            json!({"id": "nope"}),
            "spec.id",
            "FieldValueInvalid",
            "spec.id in body must be of type uuid: \"nope\"",
        ),
        (
            "date-time",
            json!({"when": "yesterday"}),
            "spec.when",
            "FieldValueInvalid",
            "must be of type date-time",
        ),
        (
            "hostname",
            json!({"host": "-bad-"}),
            "spec.host",
            "FieldValueInvalid",
            "must be of type hostname",
        ),
        (
            "maxItems",
            json!({"tags": ["a", "b", "c"]}),
            "spec.tags",
            "FieldValueTooMany",
            "Too many: 3: must have at most 2 items",
        ),
        (
            "minItems",
            json!({"tags": []}),
            "spec.tags",
            "FieldValueInvalid",
            "should have at least 1 items",
        ),
        (
            "set",
            json!({"tags": ["a", "a"]}),
            "spec.tags[1]",
            "FieldValueDuplicate",
            "Duplicate value: \"a\"",
        ),
        (
            "map",
            json!({"ports": [{"name": "x", "port": 1}, {"name": "x", "port": 2}]}),
            "spec.ports[1]",
            "FieldValueDuplicate",
            "Duplicate value: {\"name\":\"x\"}",
        ),
        (
            "item required",
            json!({"ports": [{"port": 1}]}),
            "spec.ports[0].name",
            "FieldValueRequired",
            "Required value",
        ),
        (
            "maxProperties",
            json!({"labels": {"a": "1", "b": "2", "c": "3"}}),
            "spec.labels",
            "FieldValueTooMany",
            "must have at most 2 items",
        ),
        (
            "minProperties",
            json!({"labels": {}}),
            "spec.labels",
            "FieldValueInvalid",
            "should have at least 1 properties",
        ),
        (
            "int-or-string",
            json!({"size": true}),
            "spec.size",
            "FieldValueInvalid",
            "must be of type integer,string",
        ),
    ];
    for (i, (keyword, spec, field, reason, message)) in catalogue.into_iter().enumerate() {
        let name = format!("bad-{i}");
        let obj = with(&name, spec);
        for level in LEVELS {
            let uri = format!("{base}?fieldValidation={level}");
            let e = send(c, "POST", &uri, "application/json", &obj)
                .await
                .expect_err(keyword);
            assert_eq!(
                (e.code, e.reason.as_str()),
                (422, "Invalid"),
                "{keyword}: {e:?}"
            );
            let causes = e
                .details
                .as_ref()
                .map(|d| d.causes.clone())
                .unwrap_or_default();
            assert_eq!(causes.len(), 1, "{keyword}: one cause: {causes:?}");
            assert_eq!(
                (causes[0].field.as_str(), causes[0].reason.as_str()),
                (field, reason),
                "{keyword}"
            );
            assert!(
                causes[0].message.contains(message),
                "{keyword}: {:?}",
                causes[0].message
            );
            assert!(
                e.message.starts_with(&format!(
                    "Gadget.test.rotor.dev \"{name}\" is invalid: {field}: "
                )),
                "{}",
                e.message
            );
        }
        let got = common::get(c, &format!("{base}/{name}")).await;
        assert_eq!(got.expect_err("not written").code, 404, "{keyword}");
    }

    // A null where the schema is not nullable (and has no default) is dropped, not refused:
    // upstream prunes such nulls before it validates.
    let pruned = with("pruned-null", json!({"title": null}));
    let stored = send(c, "POST", base, "application/json", &pruned)
        .await
        .expect("a non-nullable null is dropped");
    assert_eq!(stored["spec"], json!({"color": "red"}));

    // A missing required field, and several problems at once: a cause each.
    let obj = json!({"apiVersion": "test.rotor.dev/v1", "kind": "Gadget", "metadata": {"name": "many"},
        "spec": {"name": "A", "replicas": 0}});
    let e = send(c, "POST", base, "application/json", &obj)
        .await
        .expect_err("many");
    let mut fields: Vec<(String, String)> = e
        .details
        .expect("details")
        .causes
        .into_iter()
        .map(|c| (c.field, c.reason))
        .collect();
    fields.sort();
    let expected = [
        ("spec.color", "FieldValueRequired"),
        ("spec.name", "FieldValueInvalid"),
        ("spec.name", "FieldValueInvalid"),
        ("spec.replicas", "FieldValueInvalid"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(f, r)| (f.to_string(), r.to_string()))
        .collect();
    assert_eq!(fields, expected);

    // Patches of an existing object are held to the schema too.
    let uri = format!("{base}/ok");
    let e = send(
        c,
        "PATCH",
        &uri,
        "application/merge-patch+json",
        &json!({"spec": {"color": "green"}}),
    )
    .await;
    assert_eq!(e.expect_err("patch").code, 422);
    let now = common::get(c, &uri).await.expect("get");
    assert_eq!(now["spec"]["color"], "red");
}

#[tokio::test]
async fn a_cluster_without_a_provider_or_with_an_unknown_one_is_refused() {
    let server = common::start(common::memory()).await;
    let c = &server.client;
    let base = "/apis/rotor.dev/v1alpha1/clusters";
    let cluster = |name: &str, provider: Option<&str>| {
        let mut spec = json!({"account": "demo", "region": "us-east-1", "kubernetesVersion": "1.34",
            "traffic": {"shifter": "sim", "endpoint": name}});
        if let Some(p) = provider {
            spec["provider"] = json!(p);
        }
        json!({"apiVersion": "rotor.dev/v1alpha1", "kind": "Cluster", "metadata": {"name": name}, "spec": spec})
    };
    let e = send(c, "POST", base, "application/json", &cluster("none", None))
        .await
        .expect_err("none");
    assert_eq!(e.code, 422, "{e:?}");
    let causes = e.details.expect("details").causes;
    assert!(
        causes
            .iter()
            .any(|c| c.field == "spec.provider" && c.reason == "FieldValueRequired"),
        "{causes:?}"
    );
    let e = send(
        c,
        "POST",
        base,
        "application/json",
        &cluster("aws", Some("AWS")),
    )
    .await
    .expect_err("AWS");
    assert_eq!(e.code, 422, "{e:?}");
    let causes = e.details.expect("details").causes;
    assert_eq!(causes.len(), 1, "{causes:?}");
    assert_eq!(
        (causes[0].field.as_str(), causes[0].reason.as_str()),
        ("spec.provider", "FieldValueNotSupported")
    );
    assert!(
        causes[0]
            .message
            .starts_with("Unsupported value: \"AWS\": supported values: \"aws\""),
        "{causes:?}"
    );
    send(
        c,
        "POST",
        base,
        "application/json",
        &cluster("fine", Some("sim")),
    )
    .await
    .expect("a valid cluster");
}
