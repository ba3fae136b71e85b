//! Full objects round-trip through JSON and YAML with camelCase keys; the sample fleet is unique
//! and labelled; wave plans, maintenance windows and conditions behave as documented.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{TimeZone, Utc};
use kube::ResourceExt;
use rotor_api::*;
use serde_json::{Value, json};

fn t(secs: i64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn full_swap() -> ClusterSwap {
    let mut swap = ClusterSwap::new(
        "prod-aws-us-east-1-a-135",
        ClusterSwapSpec {
            cluster_ref: "prod-aws-us-east-1-a".into(),
            target: SwapTarget {
                kubernetes_version: Some("1.35.0".into()),
                config: BTreeMap::from([
                    ("vpc".into(), Some("vpc-2".into())),
                    ("old".into(), None),
                ]),
                node_pools: None,
            },
            strategy: SwapStrategy {
                migration: MigrationPolicy {
                    selector: WorkloadSelector {
                        exclude_namespaces: vec!["kube-system".into()],
                        ..Default::default()
                    },
                    skip_kinds: vec!["Event".into()],
                    ..Default::default()
                },
                ..Default::default()
            },
            paused: false,
            rollback: false,
            hold_before_traffic: false,
        },
    );
    let mut status = ClusterSwapStatus {
        blue_instance: Some("prod-aws-us-east-1-a-blue".into()),
        green_instance: Some("prod-aws-us-east-1-a-g135".into()),
        migration: Some(MigrationProgress {
            objects_total: 10,
            objects_applied: 10,
            objects_ready: 9,
        }),
        green_weight_percent: 50,
        current_step: Some(1),
        step_started_at: Some(t(50)),
        observed_generation: Some(1),
        ..Default::default()
    };
    for (i, p) in Phase::LIFECYCLE[1..6].iter().enumerate() {
        status
            .transition(*p, t(i as i64), Reason::Created, "step")
            .unwrap();
    }
    set_condition(
        &mut status.conditions,
        Condition::new(
            ConditionType::GreenReady,
            ConditionStatus::True,
            Reason::GreenReady,
            "",
            t(3),
            Some(1),
        ),
    );
    swap.status = Some(status);
    swap
}

#[test]
fn swap_round_trips_with_camel_case() {
    let swap = full_swap();
    let v = serde_json::to_value(&swap).unwrap();
    assert_eq!(v["apiVersion"], "rotor.dev/v1alpha1");
    assert_eq!(v["kind"], "ClusterSwap");
    assert_eq!(
        keys(&v["spec"]),
        ["clusterRef", "paused", "rollback", "strategy", "target"]
            .map(String::from)
            .into()
    );
    assert_eq!(
        v["spec"]["target"]["config"],
        json!({"old": null, "vpc": "vpc-2"})
    );
    let strategy = &v["spec"]["strategy"];
    assert_eq!(strategy["trafficSteps"], json!([10, 50, 100]));
    assert_eq!(
        strategy["healthGates"],
        json!({"requireAvailability": true, "maxErrorRatePercent": 1.0})
    );
    assert_eq!(
        strategy["migration"],
        json!({"excludeNamespaces": ["kube-system"], "skipKinds": ["Event"], "statefulData": "Refuse"})
    );
    assert!(strategy.get("blueRetentionSeconds").is_some());
    let status = &v["status"];
    for k in [
        "phase",
        "conditions",
        "blueInstance",
        "greenInstance",
        "migration",
        "greenWeightPercent",
        "startedAt",
        "finishedAt",
        "history",
        "observedGeneration",
        "currentStep",
        "stepStartedAt",
    ] {
        assert!(status.get(k).is_some(), "status.{k}");
    }
    assert_eq!(status["phase"], "ShiftingTraffic");
    assert_eq!(
        status["finishedAt"],
        Value::Null,
        "None serializes as null so merge patches clear it"
    );
    assert_eq!(status["migration"]["objectsReady"], 9);
    assert_eq!(status["conditions"][0]["type"], "GreenReady");
    assert_eq!(
        status["conditions"][0]["lastTransitionTime"],
        "1970-01-01T00:00:03Z"
    );
    assert_eq!(status["history"][0]["phase"], "Provisioning");

    let back: ClusterSwap = serde_json::from_value(v).unwrap();
    assert_eq!(back, swap);
    let yaml = yaml_serde::to_string(&swap).unwrap();
    let back: ClusterSwap = yaml_serde::from_str(&yaml).unwrap();
    assert_eq!(back, swap);
}

#[test]
fn minimal_swap_gets_defaults() {
    let s: ClusterSwap = serde_json::from_value(json!({
        "apiVersion": "rotor.dev/v1alpha1", "kind": "ClusterSwap", "metadata": {"name": "s"},
        "spec": {"clusterRef": "c", "target": {"kubernetesVersion": "1.35"}}
    }))
    .unwrap();
    assert_eq!(s.spec.strategy, SwapStrategy::default());
    assert_eq!(s.spec.strategy.traffic_steps, [10, 50, 100]);
    assert!(s.spec.strategy.health_gates.require_availability);
    assert!(!s.spec.paused && !s.spec.rollback);
    assert!(s.status.is_none());
    let st: ClusterSwapStatus = serde_json::from_value(json!({})).unwrap();
    assert_eq!(st.phase, Phase::Pending);
}

#[test]
fn cluster_and_rollout_round_trip() {
    let mut c = sample_fleet(3).remove(2);
    c.status = Some(ClusterStatus {
        active_instance: Some("i-1".into()),
        instances: vec![ClusterInstance {
            name: "i-1".into(),
            version: "1.34.2".into(),
            phase: InstancePhase::Active,
            created_at: Some(t(1)),
            endpoint: Some("https://i-1.sim:6443".into()),
        }],
        health: Some(HealthSummary {
            reachable: true,
            nodes_ready: 3,
            nodes_total: 3,
            workloads_available: 4,
            workloads_total: 4,
            last_seen: Some(t(9)),
        }),
        current_swap: None,
        conditions: vec![],
        observed_generation: Some(2),
    });
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(
        keys(&v["spec"]),
        [
            "account",
            "config",
            "kubernetesVersion",
            "nodePools",
            "provider",
            "region",
            "traffic",
            "workloads"
        ]
        .map(String::from)
        .into()
    );
    assert_eq!(v["spec"]["provider"], "sim");
    assert_eq!(
        v["spec"]["traffic"],
        json!({"shifter": "sim", "endpoint": c.name_any()})
    );
    assert_eq!(v["spec"]["nodePools"][0]["instanceType"], "sim.medium");
    assert_eq!(v["status"]["health"]["nodesReady"], 3);
    assert_eq!(
        v["status"]["instances"][0]["createdAt"],
        "1970-01-01T00:00:01Z"
    );
    assert!(
        c.status
            .as_ref()
            .unwrap()
            .health
            .as_ref()
            .unwrap()
            .is_healthy()
    );
    assert_eq!(serde_json::from_value::<Cluster>(v).unwrap(), c);

    let mut r = sample_rollout("to-135", SAMPLE_TARGET_VERSION);
    r.spec.maintenance_windows = vec![MaintenanceWindow {
        days: vec![DayOfWeek::Sat],
        start: "22:00".into(),
        end: "04:00".into(),
        ..Default::default()
    }];
    r.status = Some(RolloutStatus {
        phase: RolloutPhase::Progressing,
        current_wave: Some(1),
        waves: vec![WaveStatus {
            name: "canary".into(),
            clusters: vec!["a".into()],
            phase: WavePhase::Succeeded,
            started_at: Some(t(1)),
            finished_at: Some(t(2)),
            ..Default::default()
        }],
        counts: SwapCounts::from_phases([Phase::Succeeded, Phase::Migrating, Phase::RolledBack]),
        conditions: vec![],
        observed_generation: Some(1),
        ..Default::default()
    });
    let v = serde_json::to_value(&r).unwrap();
    for k in [
        "clusterSelector",
        "target",
        "waves",
        "maxConcurrentSwaps",
        "bakeSecondsBetweenWaves",
        "approval",
        "failureBudget",
        "maintenanceWindows",
        "strategy",
        "paused",
    ] {
        assert!(v["spec"].get(k).is_some(), "spec.{k}");
    }
    assert_eq!(v["spec"]["approval"], "Automatic");
    assert_eq!(
        v["spec"]["maintenanceWindows"][0],
        json!({"days": ["Sat"], "start": "22:00", "end": "04:00"})
    );
    assert_eq!(
        v["status"]["counts"],
        json!({"total": 3, "pending": 0, "inProgress": 1, "succeeded": 1, "rolledBack": 1, "failed": 0})
    );
    assert_eq!(v["status"]["currentWave"], 1);
    assert_eq!(serde_json::from_value::<Rollout>(v).unwrap(), r);
    assert_eq!(r.status.unwrap().counts.failures(), 1);
}

#[test]
fn sample_fleet_is_unique_labelled_and_valid() {
    let fleet = sample_fleet(200);
    assert_eq!(fleet.len(), 200);
    let names: BTreeSet<String> = fleet.iter().map(|c| c.name_any()).collect();
    assert_eq!(names.len(), 200);
    let mut clouds = BTreeSet::new();
    let mut regions = BTreeSet::new();
    let mut envs = BTreeSet::new();
    for c in &fleet {
        let l = c.labels();
        clouds.insert(l[labels::CLOUD].clone());
        regions.insert(l[labels::REGION].clone());
        envs.insert(l[labels::ENV].clone());
        assert_eq!(c.spec.region, l[labels::REGION]);
        assert_eq!(c.spec.provider, Provider::Sim);
        assert_eq!(c.spec.traffic.endpoint, c.name_any());
        assert!(c.name_any().len() <= 63);
        assert_eq!(c.spec.validate(), Ok(()), "{}", c.name_any());
    }
    assert_eq!(clouds, ["aws", "azure", "gcp"].map(String::from).into());
    assert_eq!(regions.len(), 7);
    assert_eq!(envs, ["prod", "staging"].map(String::from).into());
    assert!(sample_fleet(0).is_empty());
}

#[test]
fn sample_rollout_plans_every_cluster_once() {
    let fleet = sample_fleet(100);
    let rollout = sample_rollout("to-135", SAMPLE_TARGET_VERSION);
    assert_eq!(rollout.spec.validate(), Ok(()));
    let plan = rollout.spec.plan_waves(&fleet);
    let sizes: Vec<(&str, usize)> = plan
        .iter()
        .map(|w| (w.name.as_str(), w.clusters.len()))
        .collect();
    // canary: ceil(1% of 100) = 1; staging: the 20 staging clusters (one of them may be the canary);
    // prod-early: 10% of what remains, rounded up; prod-rest: everything else.
    assert_eq!(sizes[0], ("canary", 1));
    assert_eq!(sizes[1].0, "staging");
    assert_eq!(sizes[2].0, "prod-early");
    assert_eq!(sizes[3].0, "prod-rest");
    assert_eq!(plan.len(), 4, "nothing left for a remainder wave");
    let all: Vec<&String> = plan.iter().flat_map(|w| &w.clusters).collect();
    assert_eq!(all.len(), 100);
    assert_eq!(all.iter().collect::<BTreeSet<_>>().len(), 100);
    let remaining_after_staging = 100 - sizes[0].1 - sizes[1].1;
    assert_eq!(sizes[2].1, remaining_after_staging.div_ceil(10));
    assert!(plan[1].clusters.iter().all(|n| n.starts_with("staging-")));
    assert_eq!(rollout.spec.plan_waves(&fleet), plan, "deterministic");
}

#[test]
fn leftovers_form_a_remainder_wave_and_selector_scopes_the_fleet() {
    let fleet = sample_fleet(30);
    let mut spec = sample_rollout("r", "1.35").spec;
    spec.cluster_selector = LabelSelector {
        match_labels: Some(BTreeMap::from([(
            labels::CLOUD.to_string(),
            "aws".to_string(),
        )])),
        ..Default::default()
    };
    spec.waves = vec![Wave {
        name: "half".into(),
        percent: Some(50),
        selector: None,
        ..Default::default()
    }];
    let plan = spec.plan_waves(&fleet);
    assert_eq!(plan.len(), 2);
    assert_eq!(
        (
            plan[0].clusters.len(),
            plan[1].name.as_str(),
            plan[1].clusters.len()
        ),
        (5, REMAINDER_WAVE, 5)
    );
    assert!(
        plan.iter()
            .flat_map(|w| &w.clusters)
            .all(|n| n.contains("-aws-"))
    );
}

#[test]
fn maintenance_windows_and_approval() {
    let w = MaintenanceWindow {
        days: vec![DayOfWeek::Sat],
        start: "22:00".into(),
        end: "04:00".into(),
        ..Default::default()
    };
    // 2024-06-01 is a Saturday.
    let at = |d, h, m| Utc.with_ymd_and_hms(2024, 6, d, h, m, 0).unwrap();
    assert!(w.contains(at(1, 22, 0)));
    assert!(w.contains(at(2, 3, 59)), "wraps past midnight into Sunday");
    assert!(!w.contains(at(2, 4, 0)));
    assert!(!w.contains(at(1, 21, 59)));
    assert!(
        !w.contains(at(2, 22, 30)),
        "Sunday evening is not a window start"
    );
    let day = MaintenanceWindow {
        days: vec![DayOfWeek::Mon, DayOfWeek::Tue],
        start: "09:00".into(),
        end: "17:00".into(),
        ..Default::default()
    };
    assert!(
        day.contains(at(3, 9, 0)) && day.contains(at(4, 16, 59)) && !day.contains(at(5, 12, 0))
    );

    let mut spec = sample_rollout("r", "1.35").spec;
    assert!(
        spec.in_maintenance_window(at(5, 12, 0)),
        "no windows means any time"
    );
    spec.maintenance_windows = vec![w];
    assert!(!spec.in_maintenance_window(at(5, 12, 0)));
    spec.approval = Approval::Manual;
    assert!(spec.wave_approved(0) && !spec.wave_approved(1));
    spec.approved_through_wave = Some(2);
    assert!(spec.wave_approved(2) && !spec.wave_approved(3));
}

#[test]
fn set_condition_keeps_transition_time_when_status_holds() {
    let mut conds = Vec::new();
    let ready = |s, r, at| Condition::new(ConditionType::Ready, s, r, "m", t(at), Some(1));
    assert!(set_condition(
        &mut conds,
        ready(ConditionStatus::False, Reason::GreenNotReady, 1)
    ));
    assert!(!set_condition(
        &mut conds,
        ready(ConditionStatus::False, Reason::GreenNotReady, 5)
    ));
    assert_eq!(conds[0].last_transition_time, t(1));
    assert!(set_condition(
        &mut conds,
        ready(ConditionStatus::True, Reason::GreenReady, 7)
    ));
    assert_eq!(conds.len(), 1);
    assert_eq!(conds[0].last_transition_time, t(7));
    assert!(
        find_condition(&conds, ConditionType::Ready)
            .unwrap()
            .is_true()
    );
    assert!(find_condition(&conds, ConditionType::Migrated).is_none());
    assert_eq!(
        "HealthGateFailed".parse::<Reason>(),
        Ok(Reason::HealthGateFailed)
    );
    assert!("Nope".parse::<Reason>().is_err());
}

#[test]
fn with_target_builds_green_spec() {
    let mut blue = sample_fleet(1).remove(0).spec;
    blue.config.insert("old".into(), "x".into());
    let target = SwapTarget {
        kubernetes_version: Some("1.35.0".into()),
        config: BTreeMap::from([("old".into(), None), ("new".into(), Some("y".into()))]),
        node_pools: None,
    };
    let green = blue.with_target(&target);
    assert_eq!(green.kubernetes_version, "1.35.0");
    assert_eq!(green.config.get("new").map(String::as_str), Some("y"));
    assert!(!green.config.contains_key("old"));
    assert_eq!(green.node_pools, blue.node_pools);
}
