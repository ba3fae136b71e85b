//! A sample fleet and rollout for `rotor demo` and tests: `sim` clusters that pretend to live in
//! three clouds and several regions, labelled the way a platform team would label them.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::cluster::{Cluster, ClusterSpec};
use crate::common::{
    NodePool, Provider, ShifterKind, SwapStrategy, SwapTarget, TrafficEndpoint, WorkloadSelector,
};
use crate::labels;
use crate::rollout::{Approval, PreflightPolicy, Rollout, RolloutSpec, UnavailablePolicy, Wave};

/// Version the sample fleet starts at.
pub const SAMPLE_KUBERNETES_VERSION: &str = "1.34.2";
/// Version the sample rollout moves it to.
pub const SAMPLE_TARGET_VERSION: &str = "1.35.0";

const CLOUDS: [(&str, &[&str]); 3] = [
    ("aws", &["us-east-1", "us-west-2", "eu-west-1"]),
    ("azure", &["eastus", "westeurope"]),
    ("gcp", &["us-central1", "europe-west1"]),
];

/// `n` sim clusters named `<env>-<cloud>-<region>-<index>` (unique by the index), spread round
/// robin over clouds and their regions; every fifth is `staging`, the rest `prod`. Labels:
/// [`labels::CLOUD`], [`labels::REGION`], [`labels::ENV`].
pub fn sample_fleet(n: usize) -> Vec<Cluster> {
    sample_fleet_over(n, &SAMPLE_CLOUDS)
}

/// The clouds of the sample fleet, in the order clusters are dealt to them.
pub const SAMPLE_CLOUDS: [&str; 3] = ["aws", "azure", "gcp"];

/// [`sample_fleet`] dealt round robin over `clouds` only (each one of [`SAMPLE_CLOUDS`]);
/// an empty list deals over all of them.
pub fn sample_fleet_over(n: usize, clouds: &[&str]) -> Vec<Cluster> {
    let dealt: Vec<(&str, &[&str])> = CLOUDS
        .iter()
        .filter(|(cloud, _)| clouds.is_empty() || clouds.contains(cloud))
        .copied()
        .collect();
    let dealt = if dealt.is_empty() {
        CLOUDS.to_vec()
    } else {
        dealt
    };
    (0..n)
        .map(|i| {
            let (cloud, regions) = dealt[i % dealt.len()];
            let region = regions[(i / dealt.len()) % regions.len()];
            let env = if i % 5 == 0 { "staging" } else { "prod" };
            let name = format!("{env}-{cloud}-{region}-{i:04}");
            let mut cluster = Cluster::new(
                &name,
                ClusterSpec {
                    provider: Provider::Sim,
                    account: format!("sim-{cloud}"),
                    region: region.to_string(),
                    kubernetes_version: SAMPLE_KUBERNETES_VERSION.to_string(),
                    node_pools: vec![NodePool {
                        name: "default".into(),
                        instance_type: "sim.medium".into(),
                        min_count: 2,
                        max_count: 6,
                        desired_count: 3,
                    }],
                    config: BTreeMap::from([("simCloud".to_string(), cloud.to_string())]),
                    traffic: TrafficEndpoint {
                        shifter: ShifterKind::Sim,
                        endpoint: name.clone(),
                    },
                    workloads: WorkloadSelector {
                        exclude_namespaces: vec![
                            "kube-system".into(),
                            "kube-public".into(),
                            "kube-node-lease".into(),
                        ],
                        ..Default::default()
                    },
                    stopped: false,
                    maintenance_windows: Vec::new(),
                },
            );
            cluster.metadata.labels = Some(BTreeMap::from([
                (labels::CLOUD.to_string(), cloud.to_string()),
                (labels::REGION.to_string(), region.to_string()),
                (labels::ENV.to_string(), env.to_string()),
            ]));
            cluster
        })
        .collect()
}

/// A staged rollout of the whole sample fleet to `target_version`: a one-cluster canary, then
/// staging, then 10 % of prod, then the rest; automatic approval and short bakes so a demo moves.
pub fn sample_rollout(name: &str, target_version: &str) -> Rollout {
    let env_is = |env: &str| LabelSelector {
        match_labels: Some(BTreeMap::from([(labels::ENV.to_string(), env.to_string())])),
        ..Default::default()
    };
    Rollout::new(
        name,
        RolloutSpec {
            cluster_selector: LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: labels::ENV.to_string(),
                    operator: "Exists".into(),
                    values: None,
                }]),
                ..Default::default()
            },
            target: SwapTarget {
                kubernetes_version: Some(target_version.to_string()),
                ..Default::default()
            },
            waves: vec![
                Wave {
                    name: "canary".into(),
                    percent: Some(1),
                    ..Default::default()
                },
                Wave {
                    name: "staging".into(),
                    selector: Some(env_is("staging")),
                    ..Default::default()
                },
                Wave {
                    name: "prod-early".into(),
                    percent: Some(10),
                    ..Default::default()
                },
                Wave {
                    name: "prod-rest".into(),
                    percent: Some(100),
                    ..Default::default()
                },
            ],
            max_concurrent_swaps: 50,
            bake_seconds_between_waves: 2,
            approval: Approval::Automatic,
            approved_through_wave: None,
            failure_budget: IntOrString::Int(2),
            on_budget_exceeded: Default::default(),
            notifications: Vec::new(),
            wave_gates: Vec::new(),
            order_by: vec!["cloud".into(), "region".into()],
            unavailable_clusters: UnavailablePolicy::Skip,
            preflight: PreflightPolicy::SkipBlocked,
            maintenance_windows: Vec::new(),
            strategy: SwapStrategy {
                bake_seconds: 1,
                blue_retention_seconds: 5,
                ..Default::default()
            },
            paused: false,
            skip_clusters: Vec::new(),
            retry_failed: 0,
        },
    )
}
