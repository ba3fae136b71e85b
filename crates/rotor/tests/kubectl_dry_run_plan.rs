//! `kubectl apply --dry-run=server` of a Rollout against a `rotor serve` process answers the
//! plan the controller would freeze (`status.waves`) and the plan `rotor rollout plan` shows
//! (`status.plan`), and writes nothing.

use crate::common;

use common::kubectl::{CLUSTER_YAML, free_port, start_serve, write_manifest};

const ROLLOUT_YAML: &str = r#"apiVersion: rotor.dev/v1alpha1
kind: Rollout
metadata: {name: fleet}
spec:
  clusterSelector: {}
  target: {kubernetesVersion: "1.35"}
  waves: [{name: canary, count: 1}]
  skipClusters: [prod-sim-b]
"#;

#[test]
fn a_server_side_dry_run_of_a_rollout_answers_its_plan() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kc = dir.path().join("admin.kubeconfig");
    let store = format!("sqlite:{}", dir.path().join("rotor.db").display());
    let listen = format!("127.0.0.1:{}", free_port());
    let (_serve, k) = start_serve(&store, &listen, &kc);
    for name in ["prod-sim-a", "prod-sim-b"] {
        let yaml = CLUSTER_YAML.replace("prod-sim-a", name);
        let file = write_manifest(dir.path(), &format!("{name}.yaml"), &yaml);
        k.ok(&["apply", "-f", &file]);
    }
    let file = write_manifest(dir.path(), "rollout.yaml", ROLLOUT_YAML);
    let answered = k.json(&["apply", "--dry-run=server", "-f", &file]);
    let status = &answered["status"];
    let waves: Vec<(&str, Vec<&str>)> = status["waves"]
        .as_array()
        .expect("status.waves")
        .iter()
        .map(|w| {
            let clusters = w["clusters"].as_array().expect("clusters");
            let names = clusters.iter().map(|c| c.as_str().expect("name")).collect();
            (w["name"].as_str().expect("name"), names)
        })
        .collect();
    assert_eq!(
        waves,
        [
            ("canary", vec!["prod-sim-a"]),
            ("remainder", vec!["prod-sim-b"])
        ],
        "{answered}"
    );
    assert_eq!(status["waves"][0]["phase"], "Pending", "{answered}");
    let plan = &status["plan"];
    assert_eq!(plan["waves"][1]["clusters"][0], "prod-sim-b", "{plan}");
    assert_eq!(plan["blockers"][0]["cluster"], "prod-sim-b", "{plan}");
    assert_eq!(plan["blockers"][0]["reason"], "Operator", "{plan}");
    k.not_found(&["get", "rollouts.rotor.dev", "fleet"]);
}
