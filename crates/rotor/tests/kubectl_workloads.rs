//! Workload simulation seen through the real kubectl against `rotor sim`: a Deployment owns
//! ReplicaSets that own Running, Ready Pods; `rollout status`, `rollout history`, `rollout undo`,
//! `scale` and `logs` behave as on a real cluster, a deleted Pod is replaced, and deleting the Deployment takes its
//! ReplicaSets and Pods with it.

use crate::common;

use common::kubectl::{Kubectl, start_sim};
use serde_json::Value;

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: "nginx:1.27", ports: [{containerPort: 80}]}
"#;

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or("")
}

fn is_running_ready(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running"
        && pod["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// The Pods of `web` once exactly `n` are there, every one Running and Ready.
fn running_pods(k: &Kubectl, n: usize) -> Vec<Value> {
    let v = k.eventually(
        &["get", "pods", "-l", "app=web", "-n", "default"],
        &format!("{n} running, ready pods"),
        |v| {
            let pods = items(v);
            pods.len() == n && pods.iter().all(is_running_ready)
        },
    );
    items(&v)
}

fn rollout_done(k: &Kubectl) {
    k.ok(&[
        "rollout",
        "status",
        "deployment/web",
        "-n",
        "default",
        "--timeout=30s",
    ]);
}

fn replica_sets(k: &Kubectl) -> Vec<Value> {
    items(&k.json(&["get", "rs", "-l", "app=web", "-n", "default"]))
}

fn image(rs: &Value) -> &str {
    rs["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or("")
}

fn revision(o: &Value) -> &str {
    o["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        .as_str()
        .unwrap_or("")
}

/// The first rollout: one ReplicaSet owned by the Deployment, two Pods owned by it.
fn first_rollout(k: &Kubectl, dir: &std::path::Path) -> String {
    let path = dir.join("web.yaml");
    std::fs::write(&path, DEPLOYMENT).expect("write manifest");
    k.ok(&["apply", "-f", path.to_str().expect("path")]);
    rollout_done(k);
    let d = k.json(&["get", "deployment", "web", "-n", "default"]);
    let rss = replica_sets(k);
    assert_eq!(rss.len(), 1, "{rss:?}");
    let rs = &rss[0];
    let hash = rs["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .expect("hash label");
    assert_eq!(name(rs), format!("web-{hash}"));
    assert_eq!(
        rs["metadata"]["ownerReferences"][0]["uid"],
        d["metadata"]["uid"]
    );
    assert_eq!(rs["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(revision(rs), "1");
    assert_eq!(revision(&d), "1");
    for pod in running_pods(k, 2) {
        assert_eq!(pod["metadata"]["ownerReferences"][0]["name"], name(rs));
        assert!(
            name(&pod).starts_with(&format!("{}-", name(rs))),
            "{}",
            name(&pod)
        );
        assert!(
            pod["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| n.starts_with("node-"))
        );
        assert!(
            pod["status"]["podIP"]
                .as_str()
                .is_some_and(|ip| ip.starts_with("10."))
        );
    }
    let table = k.ok(&["get", "deployment", "web", "-n", "default"]);
    assert!(
        table.lines().nth(1).is_some_and(|r| r.contains("2/2")),
        "{table}"
    );
    name(rs).to_string()
}

/// A new image: a second ReplicaSet with every replica, the first scaled to 0 and kept.
fn second_rollout(k: &Kubectl, first: &str) -> String {
    k.ok(&[
        "set",
        "image",
        "deployment/web",
        "web=nginx:1.28",
        "-n",
        "default",
    ]);
    rollout_done(k);
    let rss = replica_sets(k);
    assert_eq!(rss.len(), 2, "{rss:?}");
    let old = rss
        .iter()
        .find(|rs| name(rs) == first)
        .expect("first RS kept");
    let new = rss
        .iter()
        .find(|rs| name(rs) != first)
        .expect("a second RS");
    assert_eq!(old["spec"]["replicas"], 0);
    assert_eq!((image(new), revision(new)), ("nginx:1.28", "2"));
    for pod in running_pods(k, 2) {
        assert_eq!(pod["metadata"]["ownerReferences"][0]["name"], name(new));
    }
    let history = k.ok(&["rollout", "history", "deployment/web", "-n", "default"]);
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");
    name(new).to_string()
}

#[test]
fn a_deployment_rolls_out_rolls_back_scales_logs_and_goes_on_the_simulator() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_sim, k) = start_sim(dir.path(), 1, &["--ready-delay-ms", "50"]);
    let first = first_rollout(&k, dir.path());
    let second = second_rollout(&k, &first);

    k.ok(&["rollout", "undo", "deployment/web", "-n", "default"]);
    rollout_done(&k);
    let d = k.json(&["get", "deployment", "web", "-n", "default"]);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    assert_eq!(revision(&d), "3");
    let rss = replica_sets(&k);
    assert_eq!(rss.len(), 2, "the first ReplicaSet serves again: {rss:?}");
    let back = rss.iter().find(|rs| name(rs) == first).expect("first RS");
    assert_eq!(
        (back["spec"]["replicas"].as_i64(), revision(back)),
        (Some(2), "3")
    );
    let gone = rss.iter().find(|rs| name(rs) == second).expect("second RS");
    assert_eq!(gone["spec"]["replicas"], 0);
    running_pods(&k, 2);

    let logs = k.ok(&["logs", "deploy/web", "-n", "default"]);
    assert!(
        logs.starts_with("rotor sim: simulated container web of pod default/web-"),
        "{logs}"
    );
    k.not_found(&["logs", "no-such-pod", "-n", "default"]);

    // A deleted Pod is replaced by its ReplicaSet.
    let victim = name(&running_pods(&k, 2)[0]).to_string();
    k.ok(&["delete", "pod", &victim, "-n", "default", "--wait=false"]);
    let replaced = running_pods(&k, 2);
    assert!(
        replaced.iter().all(|p| name(p) != victim),
        "{victim} came back"
    );

    k.ok(&["scale", "deployment/web", "--replicas=3", "-n", "default"]);
    running_pods(&k, 3);
    rollout_done(&k);
    k.ok(&["scale", "deployment/web", "--replicas=1", "-n", "default"]);
    running_pods(&k, 1);
    rollout_done(&k);

    k.ok(&["delete", "deployment", "web", "-n", "default"]);
    k.eventually(
        &["get", "rs,pods", "-l", "app=web", "-n", "default"],
        "the Deployment's ReplicaSets and Pods to go",
        |v| items(v).is_empty(),
    );
}
