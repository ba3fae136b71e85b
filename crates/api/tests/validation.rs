//! Validation errors name the exact field and the kind of problem.

use std::collections::BTreeMap;

use rotor_api::{
    ClusterSwapSpec, FieldError, FieldErrorKind, KubernetesVersion, LabelSelector,
    LabelSelectorRequirement, MaintenanceWindow, NodePool, SwapStrategy, SwapTarget, Wave,
    sample_fleet, sample_rollout, validate_object,
};
use serde_json::json;

fn swap(steps: Vec<u8>) -> ClusterSwapSpec {
    ClusterSwapSpec {
        cluster_ref: "prod-aws-us-east-1-a".into(),
        target: SwapTarget {
            kubernetes_version: Some("1.35".into()),
            ..Default::default()
        },
        strategy: SwapStrategy {
            traffic_steps: steps,
            ..Default::default()
        },
        paused: false,
        rollback: false,
        hold_before_traffic: false,
    }
}

fn fields(r: Result<(), Vec<FieldError>>) -> Vec<(String, FieldErrorKind)> {
    r.expect_err("expected errors")
        .into_iter()
        .map(|e| (e.field, e.kind))
        .collect()
}

fn one(r: Result<(), Vec<FieldError>>) -> FieldError {
    let mut errs = r.expect_err("expected an error");
    assert_eq!(errs.len(), 1, "{errs:?}");
    errs.remove(0)
}

#[test]
fn valid_swap_passes() {
    assert_eq!(swap(vec![10, 50, 100]).validate(), Ok(()));
    assert_eq!(swap(vec![100]).validate(), Ok(()));
    assert_eq!(swap(vec![1, 2, 3, 100]).validate(), Ok(()));
}

#[test]
fn traffic_steps_errors_name_the_step() {
    let e = one(swap(vec![10, 50, 50, 100]).validate());
    assert_eq!(e.field, "spec.strategy.trafficSteps[2]");
    assert_eq!(e.kind, FieldErrorKind::Invalid);
    assert!(
        e.message.contains("greater than the previous step 50"),
        "{e}"
    );

    let e = one(swap(vec![50, 10, 100]).validate());
    assert_eq!(e.field, "spec.strategy.trafficSteps[1]");

    let e = one(swap(vec![10, 50, 90]).validate());
    assert_eq!(e.field, "spec.strategy.trafficSteps[2]");
    assert!(e.message.contains("last step must be 100"), "{e}");

    assert_eq!(
        fields(swap(vec![0, 50, 101]).validate()),
        [
            (
                "spec.strategy.trafficSteps[0]".to_string(),
                FieldErrorKind::Invalid
            ),
            (
                "spec.strategy.trafficSteps[2]".to_string(),
                FieldErrorKind::Invalid
            ),
        ]
    );

    let e = one(swap(vec![]).validate());
    assert_eq!(
        (e.field.as_str(), e.kind),
        ("spec.strategy.trafficSteps", FieldErrorKind::Required)
    );

    let e = one(swap((1..=21).map(|i| i * 4).chain([100]).collect()).validate());
    assert_eq!(
        (e.field.as_str(), e.kind),
        ("spec.strategy.trafficSteps", FieldErrorKind::TooMany)
    );
}

#[test]
fn target_errors() {
    let mut s = swap(vec![100]);
    s.target = SwapTarget::default();
    let e = one(s.validate());
    assert_eq!(
        (e.field.as_str(), e.kind),
        ("spec.target", FieldErrorKind::Required)
    );

    for bad in ["1.x", "v1.35", "1", "1.35.", "1.35.0.1", "1.35-eks", ""] {
        s.target.kubernetes_version = Some(bad.into());
        let e = one(s.validate());
        assert_eq!(e.field, "spec.target.kubernetesVersion", "{bad:?}");
    }
    s.target.kubernetes_version = None;
    s.target.config = BTreeMap::from([
        ("vpc".to_string(), Some("vpc-2".to_string())),
        ("legacy".to_string(), None),
    ]);
    assert_eq!(s.validate(), Ok(()));

    s.target.node_pools = Some(vec![
        NodePool {
            name: "a".into(),
            instance_type: "m7i.large".into(),
            min_count: 3,
            max_count: 2,
            desired_count: 2,
        },
        NodePool {
            name: "a".into(),
            instance_type: "".into(),
            min_count: 1,
            max_count: 2,
            desired_count: 5,
        },
    ]);
    assert_eq!(
        fields(s.validate()),
        [
            (
                "spec.target.nodePools[0].minCount".to_string(),
                FieldErrorKind::Invalid
            ),
            (
                "spec.target.nodePools[0].desiredCount".to_string(),
                FieldErrorKind::Invalid
            ),
            (
                "spec.target.nodePools[1].name".to_string(),
                FieldErrorKind::Duplicate
            ),
            (
                "spec.target.nodePools[1].instanceType".to_string(),
                FieldErrorKind::Required
            ),
            (
                "spec.target.nodePools[1].desiredCount".to_string(),
                FieldErrorKind::Invalid
            ),
        ]
    );
}

#[test]
fn strategy_and_cluster_ref_errors() {
    let mut s = swap(vec![100]);
    s.cluster_ref = "Prod_Cluster".into();
    s.strategy.bake_seconds = 90_000;
    s.strategy.health_gates.max_error_rate_percent = 150.0;
    s.strategy.migration.selector.include_namespaces = vec!["shop".into(), "shop".into()];
    s.strategy.migration.selector.exclude_namespaces = vec!["shop".into()];
    s.strategy.migration.skip_kinds = vec!["Event".into(), "apps/v1 Deployment".into()];
    s.strategy.migration.selector.label_selector = Some(LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "tier".into(),
            operator: "Matches".into(),
            values: None,
        }]),
        ..Default::default()
    });
    assert_eq!(
        fields(s.validate()),
        [
            ("spec.clusterRef".to_string(), FieldErrorKind::Invalid),
            (
                "spec.strategy.bakeSeconds".to_string(),
                FieldErrorKind::Invalid
            ),
            (
                "spec.strategy.healthGates.maxErrorRatePercent".to_string(),
                FieldErrorKind::Invalid
            ),
            (
                "spec.strategy.migration.includeNamespaces[1]".to_string(),
                FieldErrorKind::Duplicate
            ),
            (
                "spec.strategy.migration.excludeNamespaces[0]".to_string(),
                FieldErrorKind::Invalid
            ),
            (
                "spec.strategy.migration.labelSelector.matchExpressions[0].operator".to_string(),
                FieldErrorKind::Invalid
            ),
            (
                "spec.strategy.migration.skipKinds[1]".to_string(),
                FieldErrorKind::Invalid
            ),
        ]
    );
}

#[test]
fn swap_update_rules() {
    let old = swap(vec![10, 100]);
    let mut new = old.clone();
    new.paused = true;
    new.rollback = true;
    assert_eq!(new.validate_update(&old), Ok(()));
    new.cluster_ref = "other".into();
    new.target.kubernetes_version = Some("1.36".into());
    assert_eq!(
        fields(new.validate_update(&old)),
        [
            ("spec.clusterRef".to_string(), FieldErrorKind::Forbidden),
            ("spec.target".to_string(), FieldErrorKind::Forbidden),
        ]
    );
    let withdrawn = old.clone();
    let mut requested = old.clone();
    requested.rollback = true;
    assert_eq!(
        fields(withdrawn.validate_update(&requested)),
        [("spec.rollback".to_string(), FieldErrorKind::Forbidden)]
    );
}

#[test]
fn cluster_errors() {
    let mut c = sample_fleet(1).remove(0).spec;
    assert_eq!(c.validate(), Ok(()));
    c.account = " ".into();
    c.kubernetes_version = "1.x".into();
    c.traffic.endpoint = String::new();
    c.workloads.exclude_namespaces = vec!["Bad NS".into()];
    assert_eq!(
        fields(c.validate()),
        [
            ("spec.account".to_string(), FieldErrorKind::Required),
            (
                "spec.kubernetesVersion".to_string(),
                FieldErrorKind::Invalid
            ),
            (
                "spec.traffic.endpoint".to_string(),
                FieldErrorKind::Required
            ),
            (
                "spec.workloads.excludeNamespaces[0]".to_string(),
                FieldErrorKind::Invalid
            ),
        ]
    );
    let old = sample_fleet(1).remove(0).spec;
    let mut moved = old.clone();
    moved.provider = rotor_api::Provider::Aws;
    assert_eq!(
        fields(moved.validate_update(&old)),
        [("spec.provider".to_string(), FieldErrorKind::Forbidden)]
    );
}

#[test]
fn rollout_errors() {
    let good = sample_rollout("r", "1.35.0").spec;
    assert_eq!(good.validate(), Ok(()));

    let mut r = good.clone();
    r.waves = vec![
        Wave {
            name: "canary".into(),
            percent: Some(0),
            selector: None,
            ..Default::default()
        },
        Wave {
            name: "canary".into(),
            percent: Some(10),
            selector: Some(LabelSelector::default()),
            ..Default::default()
        },
        Wave {
            name: "x".into(),
            percent: None,
            selector: None,
            ..Default::default()
        },
        Wave {
            name: "remainder".into(),
            percent: Some(100),
            selector: None,
            ..Default::default()
        },
    ];
    r.max_concurrent_swaps = 0;
    r.maintenance_windows = vec![MaintenanceWindow {
        days: vec![],
        start: "25:00".into(),
        end: "03:00".into(),
        ..Default::default()
    }];
    r.strategy.traffic_steps = vec![10, 5];
    assert_eq!(
        fields(r.validate()),
        [
            ("spec.waves[0].percent".to_string(), FieldErrorKind::Invalid),
            ("spec.waves[1].name".to_string(), FieldErrorKind::Duplicate),
            ("spec.waves[1]".to_string(), FieldErrorKind::Invalid),
            ("spec.waves[2]".to_string(), FieldErrorKind::Required),
            ("spec.waves[3].name".to_string(), FieldErrorKind::Invalid),
            (
                "spec.maxConcurrentSwaps".to_string(),
                FieldErrorKind::Invalid
            ),
            (
                "spec.maintenanceWindows[0].days".to_string(),
                FieldErrorKind::Required
            ),
            (
                "spec.maintenanceWindows[0].start".to_string(),
                FieldErrorKind::Invalid
            ),
            (
                "spec.strategy.trafficSteps[1]".to_string(),
                FieldErrorKind::Invalid
            ),
        ]
    );

    let mut r = good.clone();
    r.waves.clear();
    r.target = SwapTarget::default();
    assert_eq!(
        fields(r.validate()),
        [
            ("spec.target".to_string(), FieldErrorKind::Required),
            ("spec.waves".to_string(), FieldErrorKind::Required)
        ]
    );

    let mut changed = good.clone();
    changed.target.kubernetes_version = Some("1.36".into());
    assert_eq!(
        fields(changed.validate_update(&good)),
        [("spec.target".to_string(), FieldErrorKind::Forbidden)]
    );
}

#[test]
fn error_display_and_join() {
    let errs = swap(vec![10, 5]).validate().unwrap_err();
    assert_eq!(
        errs[0].to_string(),
        "spec.strategy.trafficSteps[1]: Invalid value: 5: must be greater than the previous step 10"
    );
    assert_eq!(errs[0].kind.cause_type(), "FieldValueInvalid");
    assert!(FieldError::join(&errs).starts_with("[spec.strategy.trafficSteps[1]: "));
}

#[test]
fn validate_object_by_kind() {
    let obj = json!({
        "apiVersion": "rotor.dev/v1alpha1", "kind": "ClusterSwap", "metadata": {"name": "s"},
        "spec": {"clusterRef": "c", "target": {"kubernetesVersion": "1.35"}, "strategy": {"trafficSteps": [50, 20]}}
    });
    let errs = validate_object("ClusterSwap", &obj).unwrap().unwrap_err();
    assert_eq!(errs[0].field, "spec.strategy.trafficSteps[1]");
    assert!(validate_object("ConfigMap", &obj).is_none());
    let broken = json!({"apiVersion": "rotor.dev/v1alpha1", "kind": "ClusterSwap", "metadata": {}, "spec": {"clusterRef": 3}});
    assert_eq!(
        validate_object("ClusterSwap", &broken)
            .unwrap()
            .unwrap_err()[0]
            .field,
        "<root>"
    );
}

#[test]
fn kubernetes_versions() {
    let v = KubernetesVersion::parse("1.35").unwrap();
    assert_eq!(v.to_string(), "1.35");
    assert!(v.matches_reported("v1.35.2-eks-4f2a"));
    assert!(!v.matches_reported("v1.34.9"));
    let p = KubernetesVersion::parse("1.35.1").unwrap();
    assert!(p.matches_reported("1.35.1+k3s1"));
    assert!(!p.matches_reported("v1.35.2"));
    assert!(KubernetesVersion::parse("1.34.9").unwrap() < p);
    assert!(KubernetesVersion::parse("1.x").is_none());
}
