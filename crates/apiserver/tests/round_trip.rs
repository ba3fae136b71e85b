//! Every built-in kind of the served release (1.35, the release k8s-openapi's types are built
//! for), an object generated from its OpenAPI schema — required fields, types, enums and
//! formats, deterministically — goes through create → get and is decoded into its typed
//! k8s-openapi struct without error. An object the kind's validation refuses must be refused
//! with a proper 422 Invalid Status naming fields; most kinds must get through the create.

mod common;

use std::sync::Arc;

use k8s_openapi::Resource as _;
use rotor_apiserver::{ApiServer, ServerConfig};
use rotor_store::memory::MemoryStore;
use serde_json::{Map, Value, json};

const MINOR: u32 = 35;
/// Nesting the generator follows at most (recursive schemas such as JSONSchemaProps).
const MAX_DEPTH: usize = 32;
/// Optional in the schemas, yet what an object of most kinds is made of and what upstream's
/// validation asks for (a spec, a Pod template with a container and an image, a selector that
/// matches the template's labels, a Service's ports): generated wherever a schema has them.
const ESSENTIAL: &[&str] = &[
    "spec",
    "template",
    "metadata",
    "selector",
    "matchLabels",
    "labels",
    "containers",
    "image",
    "ports",
];

/// An object of `schema` (a definition or a property of one): required properties only.
fn generate(spec: &rotor_openapi::Spec, schema: &Value, depth: usize) -> Value {
    if let Some(name) = schema["$ref"]
        .as_str()
        .or_else(|| schema["allOf"][0]["$ref"].as_str())
    {
        let name = name.rsplit('/').next().unwrap_or_default();
        return match spec.definition(name) {
            Some(def) => generate(spec, def, depth + 1),
            None => json!({}),
        };
    }
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    match schema["type"].as_str() {
        Some("string") => string_of(schema["format"].as_str()),
        Some("integer") | Some("number") => json!(1),
        Some("boolean") => json!(false),
        Some("array") if depth < MAX_DEPTH => json!([generate(spec, &schema["items"], depth + 1)]),
        Some("array") => json!([]),
        _ => object_of(spec, schema, depth),
    }
}

fn string_of(format: Option<&str>) -> Value {
    match format {
        Some("date-time") => json!("2026-01-01T00:00:00Z"),
        Some("byte") => json!("YQ=="),
        Some("int-or-string") => json!(1),
        Some("quantity") => json!("1"),
        _ => json!("a"),
    }
}

fn object_of(spec: &rotor_openapi::Spec, schema: &Value, depth: usize) -> Value {
    let mut out = Map::new();
    if depth >= MAX_DEPTH {
        return Value::Object(out);
    }
    if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object())
        && schema.get("properties").is_none()
    {
        out.insert("a".into(), generate(spec, values, depth + 1));
        return Value::Object(out);
    }
    let Some(props) = schema["properties"].as_object() else {
        return Value::Object(out);
    };
    let required = schema["required"].as_array().into_iter().flatten();
    let names = required
        .filter_map(Value::as_str)
        .chain(ESSENTIAL.iter().copied());
    for name in names {
        if let Some(p) = props.get(name) {
            out.insert(name.to_string(), generate(spec, p, depth + 1));
        }
    }
    Value::Object(out)
}

/// The generated object of a served kind, named `name` with the kind's apiVersion and kind.
fn object_for(spec: &rotor_openapi::Spec, res: &rotor_apiserver::Resource, name: &str) -> Value {
    let def = spec
        .definition(&res.definition)
        .expect("the kind's definition");
    let mut obj = generate(spec, def, 0);
    obj["apiVersion"] = json!(res.api_version);
    obj["kind"] = json!(res.kind);
    obj["metadata"] = json!({"name": name});
    obj
}

/// Decodes `v` into the k8s-openapi type of `api_version`/`kind`: None for a kind without one
/// here, else whether it decoded.
macro_rules! typed {
    ($($t:ty),* $(,)?) => {
        fn decode(api_version: &str, kind: &str, v: &Value) -> Option<Result<(), String>> {
            $(
                if <$t>::API_VERSION == api_version && <$t>::KIND == kind {
                    return Some(
                        serde_json::from_value::<$t>(v.clone())
                            .map(|_| ())
                            .map_err(|e| e.to_string()),
                    );
                }
            )*
            None
        }
    };
}

use k8s_openapi::api::{
    admissionregistration::v1 as adm, apps::v1 as apps, autoscaling::v2 as hpa, batch::v1 as batch,
    certificates::v1 as certs, coordination::v1 as coord, core::v1 as core, discovery::v1 as disc,
    events::v1 as events, flowcontrol::v1 as flow, networking::v1 as net, node::v1 as node,
    policy::v1 as policy, rbac::v1 as rbac, scheduling::v1 as sched, storage::v1 as storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as apireg;

typed!(
    core::Namespace,
    core::Node,
    core::Pod,
    core::Service,
    core::Endpoints,
    core::ConfigMap,
    core::Secret,
    core::ServiceAccount,
    core::PersistentVolumeClaim,
    core::Event,
    core::ResourceQuota,
    core::PersistentVolume,
    core::ReplicationController,
    core::LimitRange,
    core::PodTemplate,
    apps::Deployment,
    apps::StatefulSet,
    apps::DaemonSet,
    apps::ReplicaSet,
    apps::ControllerRevision,
    batch::Job,
    batch::CronJob,
    net::Ingress,
    net::NetworkPolicy,
    net::IngressClass,
    policy::PodDisruptionBudget,
    hpa::HorizontalPodAutoscaler,
    flow::FlowSchema,
    flow::PriorityLevelConfiguration,
    rbac::Role,
    rbac::RoleBinding,
    rbac::ClusterRole,
    rbac::ClusterRoleBinding,
    sched::PriorityClass,
    storage::StorageClass,
    storage::CSIDriver,
    storage::CSINode,
    storage::VolumeAttachment,
    coord::Lease,
    events::Event,
    disc::EndpointSlice,
    adm::ValidatingWebhookConfiguration,
    adm::MutatingWebhookConfiguration,
    certs::CertificateSigningRequest,
    node::RuntimeClass,
    apiext::CustomResourceDefinition,
    apireg::APIService,
);

/// What happened to one kind.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Created, read back and decoded into its type.
    RoundTripped,
    /// Refused with a 422 Invalid Status naming fields.
    Refused,
    /// Created and read back; k8s-openapi has no type for it in this test.
    Untyped,
}

/// Creates the generated object of `res` as `name` (versions of one kind share a storage, so
/// each gets its own name), reads it back and decodes it.
async fn round_trip(
    server: &Arc<ApiServer>,
    spec: &rotor_openapi::Spec,
    res: &rotor_apiserver::Resource,
    name: &str,
) -> Outcome {
    let base = if res.group.is_empty() {
        format!("/api/{}", res.version)
    } else {
        format!("/apis/{}/{}", res.group, res.version)
    };
    let ns = if res.namespaced {
        "/namespaces/default"
    } else {
        ""
    };
    let url = format!("{base}{ns}/{}", res.plural);
    let body = serde_json::to_vec(&object_for(spec, res, name)).expect("json");
    let (code, reply) = common::send(server, "POST", &url, "application/json", body).await;
    if code == 422 {
        assert_eq!(reply["kind"], "Status", "{}: {reply}", res.kind);
        assert_eq!(reply["reason"], "Invalid", "{}: {reply}", res.kind);
        let causes = reply["details"]["causes"].as_array();
        assert!(
            causes.is_some_and(|c| !c.is_empty()),
            "{}: {reply}",
            res.kind
        );
        eprintln!("REFUSED {}: {}", res.kind, reply["message"]);
        return Outcome::Refused;
    }
    assert_eq!(code, 201, "{} {url}: {reply}", res.kind);
    let (code, read) = common::send(
        server,
        "GET",
        &format!("{url}/{name}"),
        "application/json",
        vec![],
    )
    .await;
    assert_eq!(code, 200, "{}: {read}", res.kind);
    match decode(&res.api_version, &res.kind, &read) {
        Some(Ok(())) => Outcome::RoundTripped,
        Some(Err(e)) => panic!(
            "{} does not decode into its type: {e}\n{read}",
            res.api_version
        ),
        None => Outcome::Untyped,
    }
}

#[tokio::test]
async fn every_built_in_kind_round_trips_from_its_schema() {
    let config = ServerConfig {
        kubernetes_minor: MINOR,
        ..ServerConfig::default()
    };
    let server = ApiServer::new(Arc::new(MemoryStore::default()), config)
        .await
        .expect("server");
    let spec = rotor_openapi::spec(MINOR).expect("release data");
    let mut outcomes = Vec::new();
    for (i, res) in server.registry().all().iter().enumerate() {
        if res.is_custom() {
            continue;
        }
        let outcome = round_trip(&server, &spec, res, &format!("gen-{i}")).await;
        outcomes.push((format!("{}/{}", res.api_version, res.kind), outcome));
    }
    let count = |o: Outcome| outcomes.iter().filter(|(_, x)| *x == o).count();
    let (typed, refused, untyped) = (
        count(Outcome::RoundTripped),
        count(Outcome::Refused),
        count(Outcome::Untyped),
    );
    eprintln!("{typed} round-tripped, {refused} refused, {untyped} without a type: {outcomes:?}");
    assert!(outcomes.len() >= 40, "{outcomes:?}");
    // A large majority gets through the create and decodes as its type.
    assert!(typed * 4 >= outcomes.len() * 3, "{outcomes:?}");
}
