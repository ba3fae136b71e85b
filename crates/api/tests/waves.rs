//! Wave planning with ordering and counts, failure budgets as counts or percentages, and
//! per-wave approval.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rotor_api::{
    Approval, FieldError, REMAINDER_WAVE, RolloutSpec, Wave, labels, resolve_budget, sample_fleet,
    sample_rollout,
};

fn spec_with(waves: Vec<Wave>, order_by: &[&str]) -> RolloutSpec {
    let mut spec = sample_rollout("r", "1.35").spec;
    spec.waves = waves;
    spec.order_by = order_by.iter().map(|s| s.to_string()).collect();
    spec
}

fn fields(r: Result<(), Vec<FieldError>>) -> Vec<String> {
    r.err()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.field)
        .collect()
}

#[test]
fn order_by_region_fills_waves_one_region_after_another() {
    let fleet = sample_fleet(60);
    let spec = spec_with(
        vec![
            Wave {
                name: "canary".into(),
                count: Some(1),
                ..Default::default()
            },
            Wave {
                name: "third".into(),
                percent: Some(34),
                ..Default::default()
            },
        ],
        &["region"],
    );
    assert_eq!(spec.validate(), Ok(()));
    let plan = spec.plan_waves(&fleet);
    let region_of = |name: &str| {
        let c = fleet
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(name))
            .unwrap();
        c.spec.region.clone()
    };
    // The start order across all waves is sorted by region, then name.
    let order: Vec<&String> = plan.iter().flat_map(|w| &w.clusters).collect();
    assert_eq!(order.len(), 60);
    let keys: Vec<(String, String)> = order
        .iter()
        .map(|n| (region_of(n), n.to_string()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "clusters start in (region, name) order");
    assert_eq!(plan[0].clusters.len(), 1);
    assert_eq!(plan[1].clusters.len(), (59 * 34usize).div_ceil(100));
    assert_eq!(plan[2].name, REMAINDER_WAVE);
    // The canary is the first cluster of the first region.
    let first_region = sorted[0].0.clone();
    assert_eq!(region_of(&plan[0].clusters[0]), first_region);
}

#[test]
fn order_by_label_puts_clusters_without_it_last() {
    let mut fleet = sample_fleet(6);
    for (i, c) in fleet.iter_mut().enumerate() {
        if i % 2 == 0 {
            c.metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert("tier".into(), format!("t{}", 9 - i));
        }
    }
    let spec = spec_with(
        vec![Wave {
            name: "all".into(),
            percent: Some(100),
            ..Default::default()
        }],
        &["label:tier", "cloud"],
    );
    assert_eq!(spec.validate(), Ok(()));
    let plan = spec.plan_waves(&fleet);
    let tier = |n: &str| {
        fleet
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(n))
            .and_then(|c| c.metadata.labels.as_ref()?.get("tier").cloned())
    };
    let tiers: Vec<Option<String>> = plan[0].clusters.iter().map(|n| tier(n)).collect();
    assert_eq!(
        tiers,
        vec![
            Some("t5".into()),
            Some("t7".into()),
            Some("t9".into()),
            None,
            None,
            None
        ]
    );
    // Among clusters without the label: by cloud, then name.
    let clouds: Vec<String> = plan[0].clusters[3..]
        .iter()
        .map(|n| {
            fleet
                .iter()
                .find(|c| c.metadata.name.as_deref() == Some(n.as_str()))
                .unwrap()
                .metadata
                .labels
                .as_ref()
                .unwrap()[labels::CLOUD]
                .clone()
        })
        .collect();
    let mut sorted = clouds.clone();
    sorted.sort();
    assert_eq!(clouds, sorted);
}

#[test]
fn count_waves_take_at_most_what_remains() {
    let fleet = sample_fleet(5);
    let spec = spec_with(
        vec![
            Wave {
                name: "two".into(),
                count: Some(2),
                ..Default::default()
            },
            Wave {
                name: "ten".into(),
                count: Some(10),
                ..Default::default()
            },
        ],
        &[],
    );
    let plan = spec.plan_waves(&fleet);
    let sizes: Vec<usize> = plan.iter().map(|w| w.clusters.len()).collect();
    assert_eq!(sizes, vec![2, 3], "no remainder wave");
}

#[test]
fn budgets_are_counts_or_percentages_rounded_down() {
    assert_eq!(resolve_budget(&IntOrString::Int(3), 1000), Some(3));
    assert_eq!(
        resolve_budget(&IntOrString::String("5%".into()), 1000),
        Some(50)
    );
    assert_eq!(
        resolve_budget(&IntOrString::String("10%".into()), 9),
        Some(0)
    );
    assert_eq!(resolve_budget(&IntOrString::String("5".into()), 10), None);
    assert_eq!(
        resolve_budget(&IntOrString::String("101%".into()), 10),
        None
    );
    assert_eq!(resolve_budget(&IntOrString::Int(-1), 10), None);

    let mut spec = spec_with(
        vec![Wave {
            name: "w".into(),
            percent: Some(50),
            failure_budget: Some(IntOrString::String("half".into())),
            max_concurrent: Some(0),
            ..Default::default()
        }],
        &["zone"],
    );
    spec.failure_budget = IntOrString::String("150%".into());
    let f = fields(spec.validate());
    for field in [
        "spec.waves[0].failureBudget",
        "spec.waves[0].maxConcurrent",
        "spec.failureBudget",
        "spec.orderBy[0]",
    ] {
        assert!(f.contains(&field.to_string()), "{field} missing from {f:?}");
    }
}

#[test]
fn a_wave_sets_exactly_one_of_percent_count_and_selector() {
    let both = spec_with(
        vec![Wave {
            name: "w".into(),
            percent: Some(10),
            count: Some(3),
            ..Default::default()
        }],
        &[],
    );
    assert_eq!(fields(both.validate()), vec!["spec.waves[0]".to_string()]);
    let none = spec_with(
        vec![Wave {
            name: "w".into(),
            ..Default::default()
        }],
        &[],
    );
    assert_eq!(fields(none.validate()), vec!["spec.waves[0]".to_string()]);
    let zero = spec_with(
        vec![Wave {
            name: "w".into(),
            count: Some(0),
            ..Default::default()
        }],
        &[],
    );
    assert_eq!(
        fields(zero.validate()),
        vec!["spec.waves[0].count".to_string()]
    );
}

#[test]
fn approval_can_be_set_per_wave() {
    let mut spec = spec_with(
        vec![
            Wave {
                name: "canary".into(),
                count: Some(1),
                approval: Some(Approval::Manual),
                ..Default::default()
            },
            Wave {
                name: "auto".into(),
                percent: Some(50),
                approval: Some(Approval::Automatic),
                ..Default::default()
            },
            Wave {
                name: "rest".into(),
                percent: Some(100),
                ..Default::default()
            },
        ],
        &[],
    );
    spec.approval = Approval::Manual;
    spec.approved_through_wave = None;
    assert!(
        !spec.wave_approved(0),
        "an explicitly manual canary waits too"
    );
    assert!(spec.wave_approved(1), "an automatic wave never waits");
    assert!(
        !spec.wave_approved(2),
        "the rollout-wide manual approval holds"
    );
    spec.approved_through_wave = Some(2);
    assert!(spec.wave_approved(0) && spec.wave_approved(2));
}
