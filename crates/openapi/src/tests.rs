use std::sync::Arc;

use rotor_patch::SchemaCursor;
use serde_json::{Value, json};

use crate::*;

const DEPLOYMENT: &str = "io.k8s.api.apps.v1.Deployment";

fn walk(c: &Cursor, path: &[&str]) -> Cursor {
    let mut cur = c.clone();
    for p in path {
        cur = if *p == "[]" {
            cur.items()
        } else {
            cur.field(p)
        }
        .unwrap_or_else(|| panic!("no {p}"));
    }
    cur
}

#[test]
fn every_release_loads() {
    for minor in SUPPORTED_MINORS {
        let s = spec(minor).expect("loads");
        assert_eq!(s.minor(), minor);
        assert_eq!(
            s.definition_name("apps", "v1", "Deployment"),
            Some(DEPLOYMENT)
        );
        assert_eq!(
            s.definition_name("", "v1", "ConfigMap"),
            Some("io.k8s.api.core.v1.ConfigMap")
        );
    }
    assert!(spec(24).is_err() && spec(38).is_err());
    assert!(
        Arc::ptr_eq(&spec(35).expect("a"), &spec(35).expect("b")),
        "shared, loaded once"
    );
}

#[test]
fn cursors_carry_merge_keys_and_list_types() {
    let s = spec(35).expect("spec");
    let d = s.cursor(DEPLOYMENT).expect("deployment");
    let containers = walk(&d, &["spec", "template", "spec", "containers"]).info();
    assert_eq!(containers.patch_merge_key.as_deref(), Some("name"));
    assert_eq!(containers.patch_strategy.as_deref(), Some("merge"));
    assert_eq!(containers.list_type.as_deref(), Some("map"));
    let strategy = walk(&d, &["spec", "strategy"]).info();
    assert_eq!(strategy.patch_strategy.as_deref(), Some("retainKeys"));
    let env = walk(&d, &["spec", "template", "spec", "containers", "[]", "env"]).info();
    assert_eq!(env.patch_merge_key.as_deref(), Some("name"));
    let svc = s.cursor("io.k8s.api.core.v1.Service").expect("service");
    let ports = walk(&svc, &["spec", "ports"]).info();
    assert_eq!(ports.patch_merge_key.as_deref(), Some("port"));
    assert_eq!(
        ports.list_map_keys,
        vec!["port".to_string(), "protocol".to_string()]
    );
    assert_eq!(
        walk(&d, &["metadata", "finalizers"])
            .info()
            .list_type
            .as_deref(),
        Some("set")
    );
    // Map values: labels are a map of strings.
    assert!(
        walk(&d, &["metadata", "labels", "anything"])
            .node()
            .is_some()
    );
}

#[test]
fn releases_differ() {
    // Pod resize policy arrived in 1.27; sidecar restartPolicy on containers in 1.28.
    let c25 = spec(25)
        .expect("25")
        .cursor("io.k8s.api.core.v1.Container")
        .expect("container");
    let c37 = spec(37)
        .expect("37")
        .cursor("io.k8s.api.core.v1.Container")
        .expect("container");
    assert!(c25.field("resizePolicy").is_none());
    assert!(c37.field("resizePolicy").is_some());
}

fn dangling(doc: &Value, prefix: &str, container: &Value) -> Vec<String> {
    let mut names = Vec::new();
    crate::documents_test_refs(doc, &mut names);
    names
        .into_iter()
        .filter(|r| {
            r.strip_prefix(prefix)
                .is_none_or(|n| container.get(n).is_none())
        })
        .collect()
}

fn deployments() -> ResourcePaths {
    ResourcePaths {
        group: "apps".into(),
        version: "v1".into(),
        plural: "deployments".into(),
        kind: "Deployment".into(),
        namespaced: true,
        definition: DEPLOYMENT.into(),
        subresources: vec!["status".into(), "scale".into()],
    }
}

fn widget() -> (ResourcePaths, CustomSchema) {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"}}}}});
    (
        ResourcePaths {
            group: "example.com".into(),
            version: "v1".into(),
            plural: "widgets".into(),
            kind: "Widget".into(),
            namespaced: true,
            definition: "com.example.v1.Widget".into(),
            subresources: vec![],
        },
        CustomSchema {
            definition: "com.example.v1.Widget".into(),
            group: "example.com".into(),
            version: "v1".into(),
            kind: "Widget".into(),
            schema,
        },
    )
}

#[test]
fn v3_documents_are_closed_and_declare_field_validation() {
    let s = spec(35).expect("spec");
    let doc = s.v3_document("apps/v1", &[deployments()], &[]);
    let schemas = &doc["components"]["schemas"];
    assert!(schemas.get(DEPLOYMENT).is_some());
    assert!(
        schemas
            .get("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
            .is_some()
    );
    assert!(schemas.get("io.k8s.api.autoscaling.v1.Scale").is_some());
    assert_eq!(
        dangling(&doc, "#/components/schemas/", schemas),
        Vec::<String>::new()
    );
    let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"]["kind"],
        "Deployment"
    );
    let names: Vec<&str> = patch["parameters"]
        .as_array()
        .expect("params")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(
        names.contains(&"fieldValidation")
            && names.contains(&"fieldManager")
            && names.contains(&"force")
    );
    // Refs with siblings use the allOf form.
    let strategy = &schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"];
    assert_eq!(
        strategy["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy"
    );

    // JSONSchemaProps has a property named "$ref": it stays a property.
    let crd = ResourcePaths {
        group: "apiextensions.k8s.io".into(),
        version: "v1".into(),
        plural: "customresourcedefinitions".into(),
        kind: "CustomResourceDefinition".into(),
        namespaced: false,
        definition:
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition"
                .into(),
        subresources: vec!["status".into()],
    };
    let doc = s.v3_document("apiextensions.k8s.io/v1", &[crd], &[]);
    let props = &doc["components"]["schemas"]["io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps"]
        ["properties"];
    assert_eq!(props["$ref"]["type"], "string");
    assert!(
        props.get("allOf").is_some_and(|a| a.is_object()),
        "allOf is a property schema, not a keyword array"
    );

    let (paths, custom) = widget();
    let doc = s.v3_document("example.com/v1", &[paths], &[custom]);
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["com.example.v1.Widget"]["properties"]["metadata"]["$ref"],
        "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    assert_eq!(
        schemas["com.example.v1.Widget"]["x-kubernetes-group-version-kind"][0]["kind"],
        "Widget"
    );
    assert_eq!(
        dangling(&doc, "#/components/schemas/", schemas),
        Vec::<String>::new()
    );
}

#[test]
fn v2_document_is_closed() {
    let s = spec(30).expect("spec");
    let (paths, custom) = widget();
    let doc = s.v2_document(&[deployments(), paths], &[custom]);
    assert_eq!(doc["swagger"], "2.0");
    assert_eq!(
        dangling(&doc, "#/definitions/", &doc["definitions"]),
        Vec::<String>::new()
    );
    assert!(
        doc["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]["patch"]
            .is_object()
    );
}

#[test]
fn strict_validation() {
    let s = spec(35).expect("spec");
    let good = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"a": "b"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx", "resources": {"limits": {"cpu": "500m", "memory": 128}}}]}}}});
    assert_eq!(s.validate(DEPLOYMENT, &good), Vec::new());
    let unknown = json!({"spec": {"replicass": 2}});
    let problems = s.validate(DEPLOYMENT, &unknown);
    assert_eq!(
        problems,
        vec![FieldProblem {
            path: ".spec.replicass".into(),
            message: "unknown field \"spec.replicass\"".into(),
            kind: ProblemKind::Unknown,
        }]
    );
    let wrong = json!({"spec": {"replicas": "two", "template": {"spec": {"containers": [{"name": "x", "imagee": "y"}]}}}});
    let problems = s.validate(DEPLOYMENT, &wrong);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0]
            .message
            .contains("spec.replicas in body must be of type integer")
    );
    assert_eq!(problems[1].path, ".spec.template.spec.containers[0].imagee");
    let ProblemKind::Type { go } = &problems[0].kind else {
        panic!("a type problem: {problems:?}")
    };
    assert_eq!(
        go.to_string(),
        "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"
    );
    assert_eq!(problems[1].kind, ProblemKind::Unknown);

    let (_, custom) = widget();
    let schema = Arc::new(custom.schema);
    assert!(
        validate_custom(
            &s,
            &schema,
            &json!({"metadata": {"name": "w"}, "spec": {"size": 1}}),
            None
        )
        .is_empty()
    );
    let p = validate_custom(
        &s,
        &schema,
        &json!({"metadata": {"name": "w", "bogus": 1}, "spec": {"sise": 1}}),
        None,
    );
    assert_eq!(p.len(), 2, "{p:?}");
}

#[test]
fn custom_cursor_reads_crd_list_types() {
    let s = spec(35).expect("spec");
    let (_, custom) = widget();
    let c = CustomCursor::new(s, Arc::new(custom.schema));
    assert_eq!(
        walk(&c, &["spec", "tags"]).info().list_type.as_deref(),
        Some("set")
    );
    assert_eq!(
        walk(&c, &["metadata", "finalizers"])
            .info()
            .list_type
            .as_deref(),
        Some("set")
    );
}

#[test]
fn pruning_drops_undeclared_fields_only() {
    let s = spec(35).expect("spec");
    let (_, custom) = widget();
    let mut schema = custom.schema;
    schema["properties"]["extra"] =
        json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    let schema = Arc::new(schema);
    let mut obj = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "labels": {"a": "b"}},
        "spec": {"size": 1, "sise": 2, "tags": ["x"]}, "extra": {"anything": {"goes": 1}}, "stray": true});
    prune_custom(&s, &schema, &mut obj);
    assert_eq!(
        obj,
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "labels": {"a": "b"}},
        "spec": {"size": 1, "tags": ["x"]}, "extra": {"anything": {"goes": 1}}})
    );
}
