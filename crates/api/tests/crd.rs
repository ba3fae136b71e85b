//! The generated CRDs carry what the apiserver and kubectl rely on: names, scope, short names,
//! the status subresource, printer columns, and the schema's enums and bounds.

use rotor_api::{crds, crds_yaml};
use serde_json::{Value, json};

fn crd_json(kind: &str) -> Value {
    let crd = crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .expect("crd for kind");
    serde_json::to_value(crd).expect("crd to json")
}

fn schema(kind: &str) -> Value {
    crd_json(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

#[test]
fn names_scope_and_short_names() {
    let expected = [
        ("Cluster", "clusters", "cluster", vec!["rcl"]),
        (
            "ClusterSwap",
            "clusterswaps",
            "clusterswap",
            vec!["rsw", "swap"],
        ),
        ("Rollout", "rollouts", "rollout", vec!["rro"]),
    ];
    let all = crds();
    assert_eq!(all.len(), 3);
    for (crd, (kind, plural, singular, short)) in all.iter().zip(expected) {
        assert_eq!(crd.spec.names.kind, kind);
        assert_eq!(crd.spec.names.plural, plural);
        assert_eq!(crd.spec.names.singular.as_deref(), Some(singular));
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some(format!("{plural}.rotor.dev").as_str())
        );
        assert_eq!(crd.spec.group, "rotor.dev");
        assert_eq!(crd.spec.scope, "Cluster");
        assert_eq!(
            crd.spec.names.short_names.as_deref(),
            Some(&short.iter().map(|s| s.to_string()).collect::<Vec<_>>()[..])
        );
        assert!(
            !crd.spec
                .names
                .short_names
                .as_ref()
                .unwrap()
                .contains(&"cs".to_string())
        );
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(&["rotor".to_string()][..])
        );
        assert_eq!(crd.spec.versions.len(), 1);
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, "v1alpha1");
        assert!(v.served && v.storage);
        assert!(
            v.subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{kind} has status subresource"
        );
    }
}

#[test]
fn short_names_are_unique_across_kinds() {
    let mut all: Vec<String> = crds()
        .into_iter()
        .flat_map(|c| c.spec.names.short_names.unwrap_or_default())
        .collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n);
}

#[test]
fn printer_columns_present() {
    let cols = |kind: &str| -> Vec<(String, String)> {
        crd_json(kind)["spec"]["versions"][0]["additionalPrinterColumns"]
            .as_array()
            .expect("printer columns")
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["jsonPath"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let swap = cols("ClusterSwap");
    assert!(swap.contains(&("Phase".into(), ".status.phase".into())));
    assert!(swap.contains(&("Green%".into(), ".status.greenWeightPercent".into())));
    assert!(swap.contains(&("Cluster".into(), ".spec.clusterRef".into())));
    let cluster = cols("Cluster");
    assert!(cluster.contains(&("Version".into(), ".spec.kubernetesVersion".into())));
    assert!(cluster.contains(&("Active".into(), ".status.activeInstance".into())));
    assert!(cluster.contains(&(
        "Ready".into(),
        r#".status.conditions[?(@.type=="Ready")].status"#.into()
    )));
    let rollout = cols("Rollout");
    assert!(rollout.contains(&("Wave".into(), ".status.currentWave".into())));
    assert!(rollout.contains(&("Failed".into(), ".status.counts.failed".into())));
    for kind in ["Cluster", "ClusterSwap", "Rollout"] {
        assert!(cols(kind).contains(&("Age".into(), ".metadata.creationTimestamp".into())));
    }
}

#[test]
fn swap_schema_has_phase_enum_and_traffic_step_bounds() {
    let s = schema("ClusterSwap");
    let phase = &s["properties"]["status"]["properties"]["phase"];
    let phases: Vec<&str> = phase["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        [
            "Pending",
            "Provisioning",
            "WaitingForGreen",
            "Migrating",
            "Verifying",
            "ShiftingTraffic",
            "Draining",
            "Retaining",
            "Decommissioning",
            "Succeeded",
            "RollingBack",
            "RolledBack",
            "Failed"
        ]
    );
    assert_eq!(phase["type"], "string");

    let steps = &s["properties"]["spec"]["properties"]["strategy"]["properties"]["trafficSteps"];
    assert_eq!(steps["type"], "array");
    assert_eq!(steps["default"], json!([10, 50, 100]));
    assert_eq!(steps["minItems"], json!(1));
    assert_eq!(steps["maxItems"], json!(20));
    assert_eq!(steps["items"]["minimum"].as_f64(), Some(1.0));
    assert_eq!(steps["items"]["maximum"].as_f64(), Some(100.0));
    let rules: Vec<&str> = steps["x-kubernetes-validations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules.len(), 2);

    let spec = &s["properties"]["spec"];
    assert_eq!(
        spec["properties"]["clusterRef"]["x-kubernetes-validations"][0]["rule"],
        "self == oldSelf"
    );
    let version = &spec["properties"]["target"]["properties"]["kubernetesVersion"];
    assert_eq!(version["pattern"], r"^[0-9]+\.[0-9]+(\.[0-9]+)?$");
    let rate = &spec["properties"]["strategy"]["properties"]["healthGates"]["properties"]["maxErrorRatePercent"];
    assert_eq!(rate["maximum"].as_f64(), Some(100.0));
    let green = &s["properties"]["status"]["properties"]["greenWeightPercent"];
    assert_eq!(green["maximum"].as_f64(), Some(100.0));
}

#[test]
fn cluster_and_rollout_schemas_carry_enums_and_bounds() {
    let c = schema("Cluster");
    let provider = &c["properties"]["spec"]["properties"]["provider"]["enum"];
    assert_eq!(provider, &json!(["aws", "azure", "gcp", "sim"]));
    let shifter =
        &c["properties"]["spec"]["properties"]["traffic"]["properties"]["shifter"]["enum"];
    assert_eq!(
        shifter,
        &json!(["haproxy", "route53", "clouddns", "trafficmanager", "sim"])
    );
    let cond = &c["properties"]["status"]["properties"]["conditions"]["items"]["properties"];
    assert_eq!(cond["status"]["enum"], json!(["True", "False", "Unknown"]));
    assert!(
        cond["reason"]["enum"]
            .as_array()
            .unwrap()
            .contains(&json!("HealthGateFailed"))
    );

    let r = schema("Rollout");
    let spec = &r["properties"]["spec"]["properties"];
    assert_eq!(spec["approval"]["enum"], json!(["Manual", "Automatic"]));
    assert_eq!(spec["maxConcurrentSwaps"]["minimum"].as_f64(), Some(1.0));
    assert_eq!(spec["waves"]["minItems"], json!(1));
    assert_eq!(
        spec["waves"]["items"]["properties"]["percent"]["maximum"].as_f64(),
        Some(100.0)
    );
    assert_eq!(
        spec["maintenanceWindows"]["items"]["properties"]["days"]["items"]["enum"],
        json!(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"])
    );
}

#[test]
fn yaml_is_three_documents_that_parse_back() {
    let yaml = crds_yaml();
    assert_eq!(yaml.matches("---\n").count(), 3);
    let mut kinds = Vec::new();
    for doc in yaml.split("---\n").filter(|d| !d.trim().is_empty()) {
        let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
            yaml_serde::from_str(doc).expect("document parses as a CRD");
        kinds.push(crd.spec.names.kind);
    }
    assert_eq!(kinds, ["Cluster", "ClusterSwap", "Rollout"]);
}

/// A swap's hooks (and so a Rollout's, whose strategy is the same type) carry their points and
/// policies as enums, their bounds, the list keyed by name; their status entries too.
#[test]
fn hook_schemas_carry_enums_and_bounds() {
    for (kind, strategy) in [("ClusterSwap", "strategy"), ("Rollout", "strategy")] {
        let s = schema(kind);
        let hooks = &s["properties"]["spec"]["properties"][strategy]["properties"]["hooks"];
        assert_eq!(hooks["maxItems"], json!(10), "{kind}");
        assert_eq!(hooks["x-kubernetes-list-type"], "map", "{kind}");
        assert_eq!(
            hooks["x-kubernetes-list-map-keys"],
            json!(["name"]),
            "{kind}"
        );
        let hook = &hooks["items"]["properties"];
        assert_eq!(
            hook["point"]["enum"],
            json!([
                "BeforeProvisioning",
                "AfterMigration",
                "BeforeFirstTrafficStep",
                "AfterEachStep",
                "BeforeBlueDeleted",
                "AfterRollback"
            ]),
            "{kind}"
        );
        assert_eq!(hook["failurePolicy"]["enum"], json!(["Fail", "Ignore"]));
        // The schema bounds every hook by a Job's 3,600 s; a webhook's 30 s is a CEL rule.
        assert_eq!(hook["timeoutSeconds"]["maximum"].as_f64(), Some(3600.0));
        let rules = hooks["items"]["x-kubernetes-validations"].to_string();
        assert!(
            rules.contains("self.timeoutSeconds <= 30")
                && rules.contains("has(self.webhook) != has(self.job)"),
            "{kind}: {rules}"
        );
        assert_eq!(hook["retries"]["maximum"].as_f64(), Some(10.0));
        let webhook = &hook["webhook"]["properties"];
        assert!(webhook["url"]["pattern"].as_str().is_some(), "{kind}");
        let mut required: Vec<&str> = hook["webhook"]["required"]
            .as_array()
            .expect("required")
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        required.sort_unstable();
        assert_eq!(required, ["secretRef", "url"], "{kind}");
    }
    let status = &schema("ClusterSwap")["properties"]["status"]["properties"]["hooks"];
    assert_eq!(
        status["items"]["properties"]["state"]["enum"],
        json!(["Pending", "Allowed", "Denied", "Failed", "Ignored"])
    );
}
