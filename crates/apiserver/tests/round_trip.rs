//! Every built-in kind of every release the server can serve (1.25–1.37), as objects generated
//! from the release's OpenAPI schema, goes through create → get and is decoded into its typed
//! k8s-openapi struct (built for 1.35; fields of other releases are ignored, kinds it lacks are
//! read back untyped). Two generators: one with the required properties only (types, enums and
//! formats), which most kinds must get through; one that also fills optional properties at
//! random (a seeded, deterministic generator, bounded depth, a few variants per kind), which
//! exercises far more fields. An object the kind's validation refuses must be refused with a
//! proper 422 Invalid Status naming fields; one created must come back with every field it was
//! sent (but what a create resets upstream too); anything else fails the test.

use crate::common;

use std::sync::Arc;

use k8s_openapi::Resource as _;
use rotor_apiserver::{ApiServer, ServerConfig};
use rotor_store::memory::MemoryStore;
use serde_json::{Map, Value, json};

/// Nesting the required-only generator follows at most (recursive schemas such as
/// JSONSchemaProps).
const MAX_DEPTH: usize = 32;
/// Nesting the generator of optional properties follows at most.
const RICH_DEPTH: usize = 9;
/// Objects per kind and release of the generator of optional properties.
const VARIANTS: u64 = 6;
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

/// splitmix64: a deterministic stream from a seed, so a failure names a reproducible object.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// How objects are generated: required properties only, or optional ones too at random.
struct Gen<'a> {
    spec: &'a rotor_openapi::Spec,
    rng: Option<Rng>,
}

impl Gen<'_> {
    fn max_depth(&self) -> usize {
        if self.rng.is_some() {
            RICH_DEPTH
        } else {
            MAX_DEPTH
        }
    }

    /// A pick among `n` (the first without randomness).
    fn pick(&mut self, n: usize) -> usize {
        self.rng.as_mut().map_or(0, |r| r.below(n as u64) as usize)
    }

    /// Whether an optional property is generated (never without randomness).
    fn optional(&mut self, depth: usize) -> bool {
        let max = self.max_depth();
        match self.rng.as_mut() {
            Some(r) if depth < max => r.below(3) == 0,
            _ => false,
        }
    }
}

/// An object of `schema` (a definition or a property of one).
fn generate(g: &mut Gen, schema: &Value, depth: usize) -> Value {
    if let Some(name) = schema["$ref"]
        .as_str()
        .or_else(|| schema["allOf"][0]["$ref"].as_str())
    {
        let name = name.rsplit('/').next().unwrap_or_default();
        let spec = g.spec;
        return match spec.definition(name) {
            Some(def) => generate(g, def, depth + 1),
            None => json!({}),
        };
    }
    if let Some(values) = schema["enum"].as_array().filter(|e| !e.is_empty()) {
        return values[g.pick(values.len())].clone();
    }
    let deep = depth >= g.max_depth();
    match schema["type"].as_str() {
        Some("string") => string_of(g, schema["format"].as_str()),
        Some("integer") => json!(1 + g.pick(3)),
        Some("number") => json!([1.0, 0.5, 2.0][g.pick(3)]),
        Some("boolean") => json!(g.pick(2) == 1),
        Some("array") if !deep => {
            let n = 1 + g.pick(2);
            json!(
                (0..n)
                    .map(|_| generate(g, &schema["items"], depth + 1))
                    .collect::<Vec<_>>()
            )
        }
        Some("array") => json!([]),
        _ => object_of(g, schema, depth),
    }
}

fn string_of(g: &mut Gen, format: Option<&str>) -> Value {
    match format {
        Some("date-time") => json!("2026-01-01T00:00:00Z"),
        Some("byte") => json!("YQ=="),
        Some("int-or-string") => [json!(1), json!("a"), json!("50%")][g.pick(3)].clone(),
        Some("quantity") => json!(["1", "500m", "2Gi"][g.pick(3)]),
        _ => json!(["a", "b1", "x-y"][g.pick(3)]),
    }
}

fn object_of(g: &mut Gen, schema: &Value, depth: usize) -> Value {
    let mut out = Map::new();
    if depth >= g.max_depth() {
        return Value::Object(out);
    }
    if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object())
        && schema.get("properties").is_none()
    {
        out.insert("a".into(), generate(g, values, depth + 1));
        return Value::Object(out);
    }
    let Some(props) = schema["properties"].as_object() else {
        return Value::Object(out);
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for (name, p) in props {
        let wanted = required.contains(&name.as_str())
            || ESSENTIAL.contains(&name.as_str())
            || g.optional(depth);
        if wanted {
            out.insert(name.clone(), generate(g, p, depth + 1));
        }
    }
    Value::Object(out)
}

/// The generated object of a served kind, named `name` with the kind's apiVersion and kind.
fn object_for(g: &mut Gen, res: &rotor_apiserver::Resource, name: &str) -> Value {
    let def = g
        .spec
        .definition(&res.definition)
        .expect("the kind's definition");
    let mut obj = generate(g, def, 0);
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

/// Creates `obj` of `res` as `name` (versions of one kind share a storage, so each gets its
/// own name), reads it back and decodes it.
async fn round_trip(
    server: &Arc<ApiServer>,
    res: &rotor_apiserver::Resource,
    obj: &Value,
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
    let body = serde_json::to_vec(obj).expect("json");
    let (code, reply) = common::send(server, "POST", &url, "application/json", body).await;
    if code == 422 {
        assert_eq!(reply["kind"], "Status", "{}: {reply}", res.kind);
        assert_eq!(reply["reason"], "Invalid", "{}: {reply}", res.kind);
        let causes = reply["details"]["causes"].as_array();
        assert!(
            causes.is_some_and(|c| !c.is_empty() && c.iter().all(|c| c["field"].is_string())),
            "{}: {reply}",
            res.kind
        );
        return Outcome::Refused;
    }
    assert_eq!(code, 201, "{} {url}: {reply}\n{obj}", res.kind);
    let (code, read) = common::send(
        server,
        "GET",
        &format!("{url}/{name}"),
        "application/json",
        vec![],
    )
    .await;
    assert_eq!(code, 200, "{}: {read}", res.kind);
    let lost = lost_fields(&res.kind, obj, &read);
    assert!(
        lost.is_empty(),
        "{} {} lost what it was sent: {lost:?}\nsent {obj}\nread {read}",
        res.api_version,
        res.kind
    );
    match decode(&res.api_version, &res.kind, &read) {
        Some(Ok(())) => Outcome::RoundTripped,
        Some(Err(e)) => panic!(
            "{} {} does not decode into its type: {e}\nsent {obj}\nread {read}",
            res.api_version, res.kind
        ),
        None => Outcome::Untyped,
    }
}

/// A server of 1.`minor`.
async fn server_of(minor: u32) -> Arc<ApiServer> {
    let config = ServerConfig {
        kubernetes_minor: minor,
        ..ServerConfig::default()
    };
    ApiServer::new(Arc::new(MemoryStore::default()), config)
        .await
        .expect("server")
}

/// The outcome per `apiVersion/Kind` of every built-in kind of 1.`minor`, `variants` objects
/// each (the generator of optional properties seeded by release, kind and variant; without
/// `rich`, the one object of required properties).
async fn release(minor: u32, rich: bool, variants: u64) -> Vec<(String, Outcome)> {
    let server = server_of(minor).await;
    let spec = rotor_openapi::spec(minor).expect("release data");
    let mut outcomes = Vec::new();
    for (i, res) in server.registry().all().iter().enumerate() {
        if res.is_custom() {
            continue;
        }
        for v in 0..variants {
            let seed = (u64::from(minor) << 32) ^ ((i as u64) << 8) ^ v;
            let mut g = Gen {
                spec: &spec,
                rng: rich.then_some(Rng(seed)),
            };
            let name = format!("gen-{i}-{v}");
            let obj = object_for(&mut g, res, &name);
            let outcome = round_trip(&server, res, &obj, &name).await;
            outcomes.push((format!("{}/{}", res.api_version, res.kind), outcome));
        }
    }
    outcomes
}

fn count(outcomes: &[(String, Outcome)], o: Outcome) -> usize {
    outcomes.iter().filter(|(_, x)| *x == o).count()
}

#[tokio::test]
async fn every_built_in_kind_of_every_release_round_trips_from_its_schema() {
    for minor in rotor_openapi::SUPPORTED_MINORS {
        let outcomes = release(minor, false, 1).await;
        let typed = count(&outcomes, Outcome::RoundTripped);
        assert!(outcomes.len() >= 40, "1.{minor}: {outcomes:?}");
        // A large majority gets through the create; those k8s-openapi has decode as their type.
        let untyped = count(&outcomes, Outcome::Untyped);
        assert!(
            (typed + untyped) * 4 >= outcomes.len() * 3,
            "1.{minor}: {outcomes:?}"
        );
        assert!(typed * 2 >= outcomes.len(), "1.{minor}: {outcomes:?}");
    }
}

#[tokio::test]
async fn objects_with_optional_fields_round_trip_or_are_refused_naming_fields() {
    let mut total = Vec::new();
    for minor in rotor_openapi::SUPPORTED_MINORS {
        total.extend(release(minor, true, VARIANTS).await);
    }
    let typed = count(&total, Outcome::RoundTripped);
    let refused = count(&total, Outcome::Refused);
    eprintln!(
        "{} objects: {typed} round-tripped, {refused} refused, {} without a type",
        total.len(),
        count(&total, Outcome::Untyped)
    );
    // Random optional fields break rules often; still, many objects must get through.
    assert!(typed * 5 >= total.len(), "{typed} of {}", total.len());
}

/// What of `sent` the object read back lacks or holds otherwise, but for what a create resets
/// upstream too: `metadata` (the server's), `status`, and a Secret's `stringData` (folded into
/// `data`, where it wins).
fn lost_fields(kind: &str, sent: &Value, read: &Value) -> Vec<String> {
    let mut out = Vec::new();
    missing(sent, read, String::new(), &mut out);
    let folded = kind == "Secret" && sent.get("stringData").is_some();
    out.retain(|p| {
        let reset = p.starts_with("/status") || p.starts_with("/metadata");
        !reset && !(folded && (p.starts_with("/stringData") || p.starts_with("/data/")))
    });
    out
}

fn missing(sent: &Value, read: &Value, path: String, out: &mut Vec<String>) {
    match (sent, read) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                match b.get(k) {
                    Some(r) => missing(v, r, format!("{path}/{k}"), out),
                    None => out.push(format!("{path}/{k}")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, v) in a.iter().enumerate() {
                match b.get(i) {
                    Some(r) => missing(v, r, format!("{path}/{i}"), out),
                    None => out.push(format!("{path}/{i}")),
                }
            }
        }
        (a, b) if a != b => out.push(format!("{path}: {a} -> {b}")),
        _ => {}
    }
}
