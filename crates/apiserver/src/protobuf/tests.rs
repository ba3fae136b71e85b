//! The decoder against bodies captured from the real kubectl (with kubectl's own JSON of the same
//! objects as the expected output), hand-built messages for the special types, malformed input,
//! and random bytes.

use std::sync::Arc;

use base64::Engine;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::decode::{self, go_duration};
use super::table::table;
use super::wire::encode::{double, int, ld};
use super::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kubectl-1.32");

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{FIXTURES}/{name}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The fixtures' names, from COMMANDS.
fn fixture_names() -> Vec<String> {
    String::from_utf8(fixture("COMMANDS"))
        .expect("utf-8")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split('|').next().map(|n| n.trim().to_string()))
        .collect()
}

fn builtin(group: &str, version: &str, plural: &str) -> Arc<Resource> {
    crate::registry::Registry::default()
        .lookup(group, version, plural)
        .unwrap_or_else(|| panic!("{group}/{version} {plural}"))
}

/// Any built-in resource: the decoder goes by the envelope's apiVersion and kind.
fn any_builtin() -> Arc<Resource> {
    builtin("", "v1", "configmaps")
}

fn decode(body: &[u8]) -> ApiResult<Value> {
    decode_object(body, &any_builtin())
}

/// The tag of a message's field, by its JSON name (from the table, so tests name fields).
fn tag(message: &str, json: &str) -> u32 {
    let t = table().expect("table");
    let m = &t.messages[t.by_name(message).unwrap_or_else(|| panic!("{message}"))];
    m.fields
        .iter()
        .find(|f| f.json == json)
        .map(|f| f.tag)
        .unwrap_or_else(|| panic!("{message} has no field {json}"))
}

const CORE: &str = "io.k8s.api.core.v1";
const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";
const CRD: &str = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1";

fn f(message: &str, json: &str, payload: &[u8]) -> Vec<u8> {
    ld(tag(message, json), payload)
}

fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let type_meta = [ld(1, api_version.as_bytes()), ld(2, kind.as_bytes())].concat();
    [
        MAGIC.to_vec(),
        ld(1, &type_meta),
        ld(2, raw),
        ld(3, b""),
        ld(4, b""),
    ]
    .concat()
}

fn entry(key: &str, value: &[u8]) -> Vec<u8> {
    [ld(1, key.as_bytes()), ld(2, value)].concat()
}

fn name_meta(name: &str) -> Vec<u8> {
    ld(1, name.as_bytes())
}

/// kubectl's `--dry-run=client -o json` prints Go's zero Time as `creationTimestamp: null`;
/// the decoder leaves it out, as it does every zero Time.
fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(without_nulls).collect()),
        v => v,
    }
}

#[test]
fn decodes_what_kubectl_sends_as_kubectl_prints_it() {
    let names = fixture_names();
    assert!(names.len() >= 20, "{names:?}");
    for name in names {
        let got = decode(&fixture(&format!("{name}.pb")))
            .unwrap_or_else(|e| panic!("{name}: {}", e.message));
        let want: Value =
            serde_json::from_slice(&fixture(&format!("{name}.json"))).expect("fixture JSON");
        assert_eq!(got, without_nulls(want), "{name}");
    }
}

#[test]
fn every_built_in_resource_of_every_release_has_a_message() {
    let t = table().expect("table");
    for minor in rotor_openapi::SUPPORTED_MINORS {
        let spec = rotor_openapi::spec(minor).expect("spec");
        for res in crate::registry::Registry::for_release(&spec).all() {
            assert!(
                t.kind(res.api_version(), &res.kind).is_some(),
                "1.{minor}: {} {} has no protobuf message",
                res.api_version(),
                res.kind
            );
        }
    }
}

#[test]
fn bytes_become_base64_and_map_values_keep_empty_strings() {
    let b64 = base64::engine::general_purpose::STANDARD;
    let secret = decode(&fixture("secret-generic.pb")).expect("secret");
    let password = secret["data"]["password"].as_str().expect("data.password");
    assert_eq!(b64.decode(password).expect("base64"), b"hunter2");
    let cm = decode(&fixture("configmap.pb")).expect("configmap");
    assert_eq!(cm["data"], json!({"a": "b", "empty": ""}));
    let bin = cm["binaryData"]["bin"].as_str().expect("binaryData.bin");
    assert_eq!(b64.decode(bin).expect("base64"), fixture("bin.dat"));
}

#[test]
fn zero_scalars_are_dropped_unless_required_or_meaningful() {
    // --replicas=0: a pointer set to zero; the documentation says so, and the zero is kept.
    let d = decode(&fixture("deployment-replicas-0.pb")).expect("deployment");
    assert_eq!(d["spec"]["replicas"], 0);
    let meta = d["metadata"].as_object().expect("metadata");
    for unset in [
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
    ] {
        assert!(!meta.contains_key(unset), "{unset} was not set: {meta:?}");
    }
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    assert!(container.get("imagePullPolicy").is_none(), "{container}");
    assert!(
        container.get("tty").is_none(),
        "false bools dropped: {container}"
    );
    assert_eq!(
        container["resources"],
        json!({}),
        "empty structs stay, as Go prints them"
    );
    // An unset DeploymentSpec: no replicas at all (the server defaults it).
    let dep = envelope("apps/v1", "Deployment", &ld(2, b""));
    assert_eq!(decode(&dep).expect("deployment")["spec"], json!({}));
    // A required scalar is kept at zero: PriorityClass.value, ServicePort.port.
    let pc = envelope(
        "scheduling.k8s.io/v1",
        "PriorityClass",
        &[
            ld(1, &name_meta("zero")),
            int(tag("io.k8s.api.scheduling.v1.PriorityClass", "value"), 0),
        ]
        .concat(),
    );
    assert_eq!(decode(&pc).expect("priorityclass")["value"], 0);
    // Scale.spec.replicas 0 (`+default=0`) reaches the scale handler.
    let scale = envelope(
        "autoscaling/v1",
        "Scale",
        &[ld(1, &name_meta("web")), ld(2, &int(1, 0))].concat(),
    );
    assert_eq!(
        decode(&scale).expect("scale")["spec"],
        json!({"replicas": 0})
    );
}

#[test]
fn special_types_print_as_go_prints_them() {
    // Event: Time to the second, MicroTime to the microsecond, zero Time dropped, int32 < 0.
    let time = [int(1, 1_700_000_000), int(2, 123_456_789)].concat();
    let event = [
        ld(1, &name_meta("e")),
        f(&format!("{CORE}.Event"), "firstTimestamp", &time),
        f(
            &format!("{CORE}.Event"),
            "lastTimestamp",
            &[int(1, 0), int(2, 0)].concat(),
        ),
        f(&format!("{CORE}.Event"), "eventTime", &time),
        int(tag(&format!("{CORE}.Event"), "count"), -2),
    ]
    .concat();
    let e = decode(&envelope("v1", "Event", &event)).expect("event");
    assert_eq!(e["firstTimestamp"], "2023-11-14T22:13:20Z");
    assert_eq!(e["eventTime"], "2023-11-14T22:13:20.123456Z");
    assert!(e.get("lastTimestamp").is_none(), "{e}");
    assert_eq!(e["count"], -2);

    // RawExtension and FieldsV1: the embedded JSON, and an embedded protobuf object.
    let fields = f(
        &format!("{META}.ManagedFieldsEntry"),
        "fieldsV1",
        &ld(1, br#"{"f:data":{"f:a":{}}}"#),
    );
    let managed = [
        ld(1, b"kubectl"),
        f(&format!("{META}.ManagedFieldsEntry"), "time", &time),
        fields,
    ]
    .concat();
    let meta = [
        name_meta("rev"),
        f(&format!("{META}.ObjectMeta"), "managedFields", &managed),
    ]
    .concat();
    let inner = envelope("v1", "ConfigMap", &ld(1, &name_meta("inner")));
    for (raw, want) in [
        (
            br#"{"spec":{"replicas":[1,2.5]}}"#.to_vec(),
            json!({"spec": {"replicas": [1, 2.5]}}),
        ),
        (
            inner,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "inner"}}),
        ),
    ] {
        let rev = [ld(1, &meta), ld(2, &ld(1, &raw)), int(3, 4)].concat();
        let r = decode(&envelope("apps/v1", "ControllerRevision", &rev)).expect("revision");
        assert_eq!(r["data"], want);
        assert_eq!(r["revision"], 4);
        assert_eq!(
            r["metadata"]["managedFields"][0],
            json!({"manager": "kubectl", "time": "2023-11-14T22:13:20Z", "fieldsV1": {"f:data": {"f:a": {}}}})
        );
    }

    // IntOrString as a string, Go's inline embedding (Probe ⊃ ProbeHandler,
    // ConfigMapKeySelector ⊃ LocalObjectReference), a zero pointer int64 kept.
    let port = [int(1, 1), ld(3, b"http")].concat();
    let http_get = [ld(1, b"/healthz"), ld(2, &port)].concat();
    let probe = [ld(1, &ld(2, &http_get)), int(4, 0), int(7, 0)].concat();
    let key_ref = [ld(1, &ld(1, b"cfg")), ld(2, b"k")].concat();
    let env = [ld(1, b"MODE"), ld(3, &ld(3, &key_ref))].concat();
    let container = [
        ld(1, b"app"),
        f(&format!("{CORE}.Container"), "env", &env),
        f(&format!("{CORE}.Container"), "livenessProbe", &probe),
    ]
    .concat();
    let groups = tag(&format!("{CORE}.PodSecurityContext"), "supplementalGroups");
    let mut packed = Vec::new();
    for g in [1u64, 2, 300] {
        super::wire::encode::varint(g, &mut packed);
    }
    let security = [ld(groups, &packed), int(groups, 7)].concat();
    let spec = [
        f(&format!("{CORE}.PodSpec"), "containers", &container),
        f(&format!("{CORE}.PodSpec"), "securityContext", &security),
    ]
    .concat();
    let pod = decode(&envelope(
        "v1",
        "Pod",
        &[ld(1, &name_meta("p")), ld(2, &spec)].concat(),
    ))
    .expect("pod");
    let c = &pod["spec"]["containers"][0];
    assert_eq!(
        c["livenessProbe"],
        json!({"httpGet": {"path": "/healthz", "port": "http"}, "terminationGracePeriodSeconds": 0})
    );
    assert_eq!(
        c["env"][0],
        json!({"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}})
    );
    assert_eq!(
        pod["spec"]["securityContext"]["supplementalGroups"],
        json!([1, 2, 300, 7]),
        "packed and unpacked"
    );

    // A CRD: JSONSchemaProps with its unions, embedded JSON, doubles, the $ and x- names.
    let props = format!("{CRD}.JSONSchemaProps");
    let leaf = [
        f(&props, "type", b"integer"),
        double(tag(&props, "maximum"), 1.5),
        f(&props, "default", &ld(1, b"1")),
    ]
    .concat();
    let free = [
        f(&props, "type", b"object"),
        int(tag(&props, "x-kubernetes-preserve-unknown-fields"), 1),
    ]
    .concat();
    let list = [
        f(&props, "type", b"array"),
        f(&props, "items", &ld(1, &f(&props, "type", b"string"))),
    ]
    .concat();
    let closed = [
        f(&props, "type", b"object"),
        f(&props, "additionalProperties", &int(1, 0)),
    ]
    .concat();
    let enumerated = [
        f(&props, "enum", &ld(1, br#""a""#)),
        f(&props, "enum", &ld(1, b"2")),
    ]
    .concat();
    let root = [
        f(&props, "type", b"object"),
        f(&props, "properties", &entry("size", &leaf)),
        f(&props, "properties", &entry("free", &free)),
        f(&props, "properties", &entry("tags", &list)),
        f(&props, "properties", &entry("closed", &closed)),
        f(&props, "properties", &entry("color", &enumerated)),
        f(&props, "required", b"size"),
    ]
    .concat();
    let version = [ld(1, b"v1"), int(2, 1), int(3, 1), ld(4, &ld(1, &root))].concat();
    let names = [ld(1, b"gadgets"), ld(4, b"Gadget")].concat();
    let crd_spec = [
        ld(1, b"example.com"),
        ld(3, &names),
        ld(4, b"Namespaced"),
        ld(7, &version),
    ]
    .concat();
    let crd = decode(&envelope(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        &[ld(1, &name_meta("gadgets.example.com")), ld(2, &crd_spec)].concat(),
    ))
    .expect("crd");
    assert_eq!(
        crd["spec"]["versions"][0],
        json!({"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
            "type": "object",
            "properties": {
                "size": {"type": "integer", "maximum": 1.5, "default": 1},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "tags": {"type": "array", "items": {"type": "string"}},
                "closed": {"type": "object", "additionalProperties": false},
                "color": {"enum": ["a", 2]},
            },
            "required": ["size"],
        }}})
    );

    // ExtraValue (a Go []string) in a map, and request bytes.
    let csr_spec = [
        ld(1, b"CSR"),
        f(
            "io.k8s.api.certificates.v1.CertificateSigningRequestSpec",
            "extra",
            &entry("scopes", &[ld(1, b"a"), ld(1, b"b")].concat()),
        ),
        f(
            "io.k8s.api.certificates.v1.CertificateSigningRequestSpec",
            "signerName",
            b"example.com/x",
        ),
    ]
    .concat();
    let csr = decode(&envelope(
        "certificates.k8s.io/v1",
        "CertificateSigningRequest",
        &[ld(1, &name_meta("c")), ld(2, &csr_spec)].concat(),
    ))
    .expect("csr");
    assert_eq!(csr["spec"]["extra"], json!({"scopes": ["a", "b"]}));
    assert_eq!(csr["spec"]["request"], "Q1NS");

    // Duration (metrics.k8s.io has no kind rotor serves: decode the message directly).
    let t = table().expect("table");
    let id = t
        .by_name("io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetrics")
        .expect("NodeMetrics");
    let window = ld(3, &int(1, 90_500_000_000));
    let usage = ld(4, &entry("cpu", &ld(1, b"250m")));
    let m = decode::message(t, id, &[window, usage].concat(), 0)
        .expect("metrics")
        .expect("object");
    assert_eq!(m, json!({"window": "1m30.5s", "usage": {"cpu": "250m"}}));
}

#[test]
fn durations_print_as_go_prints_them() {
    for (ns, want) in [
        (0, "0s"),
        (1, "1ns"),
        (1_500, "1.5µs"),
        (1_500_000, "1.5ms"),
        (1_000_000_000, "1s"),
        (1_500_000_000, "1.5s"),
        (90_000_000_000, "1m30s"),
        (3_600_000_000_000, "1h0m0s"),
        (3_723_500_000_000, "1h2m3.5s"),
        (-2_000_000_000, "-2s"),
        (i64::MIN, "-2562047h47m16.854775808s"),
    ] {
        assert_eq!(go_duration(ns), want, "{ns}");
    }
}

#[test]
fn custom_resources_unknown_kinds_and_encodings_get_415_naming_them() {
    let mut gadget = (*any_builtin()).clone();
    gadget.kind = "Gadget".into();
    gadget.group = "example.com".into();
    gadget.custom_schema = Some(Arc::new(json!({"type": "object"})));
    let body = envelope("example.com/v1", "Gadget", &ld(1, &name_meta("g")));
    let e = decode_object(&body, &gadget).expect_err("custom resource");
    assert_eq!(e.code.as_u16(), 415);
    assert!(e.message.contains("Gadget.example.com"), "{}", e.message);
    // A built-in path with a body of a kind Kubernetes has no message for.
    let e = decode(&body).expect_err("unknown kind");
    assert_eq!(e.code.as_u16(), 415);
    assert!(e.message.contains("example.com/v1 Gadget"), "{}", e.message);
    let type_meta = [ld(1, b"v1"), ld(2, b"ConfigMap")].concat();
    let gzipped = [
        MAGIC.to_vec(),
        ld(1, &type_meta),
        ld(2, b"\x1f\x8b"),
        ld(3, b"gzip"),
    ]
    .concat();
    assert_eq!(
        decode(&gzipped).map_err(|e| e.code.as_u16()).err(),
        Some(415)
    );
}

#[test]
fn malformed_bodies_are_400_naming_the_kind_and_field() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{\"kind\":\"ConfigMap\"}".to_vec(), "k8s\\0 magic"),
        (MAGIC.to_vec(), "names no apiVersion and kind"),
        (
            envelope(
                "v1",
                "ConfigMap",
                &ld(2, &[ld(1, b"k"), int(2, 5)].concat()),
            ),
            "ConfigMap: data[k]: wire type varint",
        ),
        (
            envelope(
                "apps/v1",
                "Deployment",
                &ld(
                    2,
                    &ld(
                        3,
                        &ld(
                            2,
                            &[ld(2, &ld(1, b"ok")), ld(2, &ld(1, b"\xff\xfe"))].concat(),
                        ),
                    ),
                ),
            ),
            "Deployment: spec.template.spec.containers[1].name: a string that is not UTF-8",
        ),
        (
            envelope(
                "v1",
                "Service",
                &ld(2, &ld(1, &ld(4, &[int(1, 7)].concat()))),
            ),
            "Service: spec.ports[0].targetPort: IntOrString type 7",
        ),
        (
            envelope(
                "v1",
                "ConfigMap",
                &ld(
                    1,
                    &f(
                        &format!("{META}.ObjectMeta"),
                        "creationTimestamp",
                        &[int(1, 1), int(2, -1)].concat(),
                    ),
                ),
            ),
            "ConfigMap: metadata.creationTimestamp: time 1s -1ns is out of range",
        ),
        (
            envelope("apps/v1", "ControllerRevision", &ld(2, &ld(1, b"not json"))),
            "ControllerRevision: data: the embedded object is not JSON",
        ),
        (
            envelope("v1", "ConfigMap", &ld(1, &int(1, 3))),
            "ConfigMap: metadata.name: wire type varint cannot carry a string",
        ),
    ];
    for (body, want) in cases {
        let e = decode(&body).expect_err(want);
        assert_eq!(e.code.as_u16(), 400, "{want}: {}", e.message);
        assert!(e.message.contains(want), "{want:?} not in {:?}", e.message);
    }
    let mut truncated = fixture("deployment.pb");
    truncated.pop();
    let e = decode(&truncated).expect_err("truncated");
    assert_eq!(e.code.as_u16(), 400, "{}", e.message);
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let props = format!("{CRD}.JSONSchemaProps");
    let mut schema = f(&props, "type", b"object");
    for _ in 0..500 {
        schema = f(&props, "properties", &entry("x", &schema));
    }
    let version = [ld(1, b"v1"), ld(4, &ld(1, &schema))].concat();
    let body = envelope(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        &ld(2, &ld(7, &version)),
    );
    let e = decode(&body).expect_err("too deep");
    assert_eq!(e.code.as_u16(), 400);
    assert!(
        e.message.contains("nested more than"),
        "{}",
        e.message.chars().take(300).collect::<String>()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random bytes, bare or as the object inside a valid envelope of a few kinds, never panic:
    /// they decode or fail with a 4xx.
    #[test]
    fn random_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..256), kind in 0usize..6) {
        let (gv, k) = [("v1", "ConfigMap"), ("apps/v1", "Deployment"), ("v1", "Pod"), ("apiextensions.k8s.io/v1", "CustomResourceDefinition"), ("v1", "Service"), ("apps/v1", "ControllerRevision")][kind];
        for body in [raw.clone(), [MAGIC, &raw[..]].concat(), envelope(gv, k, &raw)] {
            if let Err(e) = decode(&body) {
                prop_assert!(matches!(e.code.as_u16(), 400 | 415), "{}: {}", e.code, e.message);
            }
        }
    }

    /// Real bodies with bytes changed or cut off never panic either.
    #[test]
    fn mutated_kubectl_bodies_never_panic(which in 0usize..20, at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<bool>()) {
        let names = fixture_names();
        let mut body = fixture(&format!("{}.pb", names[which % names.len()]));
        let i = at.index(body.len());
        if cut { body.truncate(i) } else { body[i] = byte }
        if let Err(e) = decode(&body) {
            prop_assert!(matches!(e.code.as_u16(), 400 | 415), "{}: {}", e.code, e.message);
        }
    }
}
