//! Metric gates in a swap's strategy: the defaults a short spec gets, the errors a bad one
//! gets (each naming its field), and what the CRD's schema tells the apiserver.

use rotor_api::{ClusterSwapSpec, FieldError, FieldErrorKind, MetricGate, OnInconclusive, crds};
use serde_json::{Value, json};

/// A swap whose strategy carries `gates` (JSON, as a user writes them).
fn swap_with(gates: Value) -> ClusterSwapSpec {
    serde_json::from_value(json!({
        "clusterRef": "prod-a",
        "target": {"kubernetesVersion": "1.35"},
        "strategy": {"healthGates": {"metricGates": gates}},
    }))
    .expect("a ClusterSwap spec")
}

fn errors(spec: &ClusterSwapSpec) -> Vec<(String, FieldErrorKind, String)> {
    spec.validate()
        .expect_err("expected errors")
        .into_iter()
        .map(
            |FieldError {
                 field,
                 kind,
                 message,
             }| (field, kind, message),
        )
        .collect()
}

const GATES: &str = "spec.strategy.healthGates.metricGates";

#[test]
fn a_short_gate_gets_its_defaults_and_is_valid() {
    let spec = swap_with(json!([{
        "name": "error-ratio",
        "query": "max(err{cluster=\"{{cluster}}\", instance=\"{{green}}\"})",
        "threshold": {"max": 0.01},
    }]));
    assert_eq!(spec.validate(), Ok(()));
    let gate: &MetricGate = &spec.strategy.health_gates.metric_gates[0];
    assert_eq!(gate.interval_seconds, 30);
    assert_eq!(gate.consecutive, 3);
    assert_eq!(gate.on_inconclusive, OnInconclusive::Pause);
    assert_eq!(gate.prometheus, None);
    // Written back, the defaults are explicit and nothing else appears.
    let back = serde_json::to_value(gate).expect("json");
    assert_eq!(
        back,
        json!({"name": "error-ratio", "query": gate.query, "threshold": {"max": 0.01},
               "intervalSeconds": 30, "consecutive": 3, "onInconclusive": "Pause"})
    );
    // A strategy without gates serializes as before.
    let plain = serde_json::to_value(rotor_api::HealthGates::default()).expect("json");
    assert!(plain.get("metricGates").is_none(), "{plain}");
}

#[test]
fn bad_gates_are_refused_naming_the_field() {
    let spec = swap_with(json!([
        {"name": "Errors", "query": " ", "threshold": {}, "intervalSeconds": 0, "consecutive": 0},
        {"name": "latency", "query": "x{i=\"{{green}}\", t=\"{{team}}\"}", "threshold": {"min": 2, "max": 1},
         "prometheus": {"url": "http://admin:secret@prometheus:9090"}},
        {"name": "latency", "query": "up{{cluster}", "threshold": {"max": 1},
         "prometheus": {"url": "prometheus:9090"}},
    ]));
    let errs = errors(&spec);
    let fields: Vec<(&str, FieldErrorKind)> =
        errs.iter().map(|(f, k, _)| (f.as_str(), *k)).collect();
    let at = |i: usize, f: &str| format!("{GATES}[{i}].{f}");
    assert_eq!(
        fields,
        [
            (at(0, "name").as_str(), FieldErrorKind::Invalid),
            (at(0, "query").as_str(), FieldErrorKind::Required),
            (at(0, "threshold").as_str(), FieldErrorKind::Required),
            (at(0, "intervalSeconds").as_str(), FieldErrorKind::Invalid),
            (at(0, "consecutive").as_str(), FieldErrorKind::Invalid),
            (at(1, "query").as_str(), FieldErrorKind::Invalid),
            (at(1, "threshold.min").as_str(), FieldErrorKind::Invalid),
            (at(1, "prometheus.url").as_str(), FieldErrorKind::Invalid),
            (at(2, "query").as_str(), FieldErrorKind::Invalid),
            (at(2, "prometheus.url").as_str(), FieldErrorKind::Invalid),
            (at(2, "name").as_str(), FieldErrorKind::Duplicate),
        ]
    );
    let message = |f: &str| {
        errs.iter()
            .find(|(field, _, _)| field == f)
            .map(|(_, _, m)| m.clone())
            .unwrap_or_default()
    };
    assert!(
        message(&at(1, "query")).contains("unknown template variable {{team}}"),
        "{errs:?}"
    );
    // The refusal (an InvalidSpec condition and Event when the controller finds it) does not
    // repeat the credentials.
    let url = message(&at(1, "prometheus.url"));
    assert!(url.contains("must not hold credentials"), "{url}");
    assert!(!url.contains("secret"), "{url}");
    assert!(
        message(&at(2, "query")).contains("is not closed"),
        "{errs:?}"
    );
    assert!(
        message(&at(2, "prometheus.url")).contains("must start with http:// or https://"),
        "{errs:?}"
    );
}

#[test]
fn more_than_ten_gates_are_too_many() {
    let gates: Vec<Value> = (0..11)
        .map(|i| json!({"name": format!("g{i}"), "query": "up", "threshold": {"min": 1}}))
        .collect();
    let errs = errors(&swap_with(Value::Array(gates)));
    assert_eq!(
        errs.iter()
            .map(|(f, k, _)| (f.as_str(), *k))
            .collect::<Vec<_>>(),
        [(GATES, FieldErrorKind::TooMany)]
    );
}

#[test]
fn a_rollouts_swap_template_is_checked_the_same_way() {
    let mut rollout = rotor_api::sample_rollout("fleet", "1.35");
    rollout.spec.strategy.health_gates.metric_gates = swap_with(json!([
        {"name": "g", "query": "{{nope}}", "threshold": {"max": 1}}
    ]))
    .strategy
    .health_gates
    .metric_gates;
    let errs = rollout.spec.validate().expect_err("a bad template");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].field.ends_with("healthGates.metricGates[0].query"),
        "{errs:?}"
    );
}

/// What the apiserver's structural validation and CEL rules rely on.
#[test]
fn the_schema_bounds_every_field_and_keys_gates_by_name() {
    let crd = crds()
        .into_iter()
        .find(|c| c.spec.names.kind == "ClusterSwap")
        .expect("ClusterSwap CRD");
    let crd = serde_json::to_value(crd).expect("json");
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let gates = &schema["properties"]["spec"]["properties"]["strategy"]["properties"]["healthGates"]
        ["properties"]["metricGates"];
    assert_eq!(gates["x-kubernetes-list-type"], "map");
    assert_eq!(gates["x-kubernetes-list-map-keys"], json!(["name"]));
    assert_eq!(gates["maxItems"], json!(10));
    let gate = &gates["items"];
    assert_eq!(gate["required"], json!(["name", "query", "threshold"]));
    let p = &gate["properties"];
    assert_eq!(p["name"]["maxLength"], json!(63));
    assert_eq!(p["query"]["minLength"], json!(1));
    assert_eq!(p["query"]["maxLength"], json!(4096));
    let rule = p["query"]["x-kubernetes-validations"][0]["rule"]
        .as_str()
        .expect("a CEL rule on the query");
    assert!(rule.starts_with("self.matches('^(?:"), "{rule}");
    assert!(!rule.contains('\\'), "no CEL escapes needed: {rule}");
    assert_eq!(p["intervalSeconds"]["minimum"].as_f64(), Some(1.0));
    assert_eq!(p["intervalSeconds"]["maximum"].as_f64(), Some(3600.0));
    assert_eq!(p["consecutive"]["minimum"].as_f64(), Some(1.0));
    assert_eq!(p["onInconclusive"]["enum"], json!(["Pause", "Fail"]));
    assert_eq!(p["onInconclusive"]["default"], json!("Pause"));
    assert!(
        p["prometheus"]["properties"]["url"]["pattern"]
            .as_str()
            .is_some_and(|pat| pat.contains("[^/@?#")),
        "{}",
        p["prometheus"]
    );
    let threshold_rules: Vec<&str> = p["threshold"]["x-kubernetes-validations"]
        .as_array()
        .expect("threshold rules")
        .iter()
        .filter_map(|r| r["rule"].as_str())
        .collect();
    assert_eq!(threshold_rules.len(), 2, "{threshold_rules:?}");
    let status = &schema["properties"]["status"]["properties"]["metricGates"]["items"];
    assert_eq!(
        status["properties"]["lastResult"]["enum"],
        json!(["Pass", "Fail", "Inconclusive"])
    );
}

/// A Rollout's wave gates: checked as a swap's are, with the fleet's variables, and a swap's
/// refused naming the field.
#[test]
fn wave_gates_are_checked_with_the_fleets_variables() {
    let mut rollout = rotor_api::sample_rollout("fleet", "1.35");
    let gates =
        |v: Value| -> Vec<rotor_api::MetricGate> { serde_json::from_value(v).expect("gates") };
    rollout.spec.wave_gates = gates(json!([
        {"name": "fleet", "query": "x{w=\"{{wave}}\",r=\"{{rollout}}\",c=~\"{{clusters}}\",i=~\"{{instances}}\"}",
         "threshold": {"max": 1}}
    ]));
    assert_eq!(rollout.spec.validate(), Ok(()));
    rollout.spec.wave_gates = gates(json!([
        {"name": "fleet", "query": "x{g=\"{{green}}\"}", "threshold": {"max": 1}},
        {"name": "fleet", "query": "x", "threshold": {}}
    ]));
    let errs = rollout.spec.validate().expect_err("bad wave gates");
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.waveGates[0].query",
            "spec.waveGates[1].threshold",
            "spec.waveGates[1].name"
        ],
        "{errs:?}"
    );
    assert!(
        errs[0]
            .to_string()
            .contains("{{green}} is not filled in for a wave gate"),
        "{errs:?}"
    );
    // The schema carries them keyed by name, with the gate's own rules.
    let crd = crds()
        .into_iter()
        .find(|c| c.spec.names.kind == "Rollout")
        .expect("Rollout CRD");
    let crd = serde_json::to_value(crd).expect("json");
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let gates = &schema["properties"]["spec"]["properties"]["waveGates"];
    assert_eq!(gates["x-kubernetes-list-map-keys"], json!(["name"]));
    assert_eq!(gates["maxItems"], json!(10));
    let rule = gates["items"]["properties"]["query"]["x-kubernetes-validations"][0]["rule"]
        .as_str()
        .expect("a CEL rule on the query");
    assert!(rule.contains("instances"), "{rule}");
    let wave = &schema["properties"]["status"]["properties"]["waves"]["items"]["properties"];
    assert!(wave["metricGates"].is_object(), "{wave}");
}
