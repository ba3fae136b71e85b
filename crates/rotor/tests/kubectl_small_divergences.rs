//! Small divergences from a real cluster, seen through the real kubectl on `rotor sim`: a Job's
//! Pods print STATUS `Completed` once done, Endpoints and ControllerRevisions print upstream's
//! columns, a Job without a selector gets the generated one, and a ControllerRevision copied from
//! a cluster applies under `--validate=strict`.

use crate::common;

use common::kubectl::{Kubectl, start_sim, write_manifest};

const MANIFESTS: &str = r#"apiVersion: batch/v1
kind: Job
metadata: {name: pi, namespace: default}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: pi, image: busybox}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: default}
spec:
  replicas: 1
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: postgres, ports: [{containerPort: 5432}]}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  selector: {app: db}
  ports: [{port: 5432}]
"#;

/// A ControllerRevision as a StatefulSet's history holds it upstream: `data` is a strategic
/// patch of the template, `$patch: replace` included.
const REVISION: &str = r#"apiVersion: apps/v1
kind: ControllerRevision
metadata: {name: copied-1, namespace: default}
revision: 1
data:
  spec:
    template:
      $patch: replace
      metadata: {labels: {app: copied}}
      spec:
        containers: [{name: c, image: nginx}]
"#;

/// The header and the row of `name` in `kubectl get ARGS`, split on runs of two spaces or more.
fn row(k: &Kubectl, args: &[&str], name: &str) -> (Vec<String>, Vec<String>) {
    let out = k.ok(args);
    let split = |line: &str| -> Vec<String> {
        line.split("  ")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mut lines = out.lines();
    let header = split(lines.next().unwrap_or_default());
    let found = lines
        .map(split)
        .find(|r| r.first().is_some_and(|n| n.starts_with(name)));
    (
        header,
        found.unwrap_or_else(|| panic!("no row {name} in:\n{out}")),
    )
}

#[test]
fn jobs_endpoints_and_revisions_print_and_default_as_upstream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_sim, k) = start_sim(dir.path(), 1, &["--ready-delay-ms", "50"]);
    k.ok(&[
        "apply",
        "-f",
        &write_manifest(dir.path(), "m.yaml", MANIFESTS),
    ]);

    let job = k.eventually(&["get", "job", "pi", "-n", "default"], "pi complete", |j| {
        j["status"]["succeeded"] == 1
    });
    let uid = job["metadata"]["uid"].as_str().expect("uid");
    assert_eq!(
        job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
        uid
    );
    assert!(job["spec"].get("manualSelector").is_none(), "{job}");
    let (header, pod) = row(
        &k,
        &["get", "pods", "-n", "default", "-l", "job-name=pi"],
        "pi-",
    );
    assert_eq!(header, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert_eq!(&pod[1..4], ["0/1", "Completed", "0"]);

    k.eventually(
        &["get", "endpoints", "db", "-n", "default"],
        "db's endpoint",
        |e| {
            e["subsets"][0]["addresses"]
                .as_array()
                .is_some_and(|a| a.len() == 1)
        },
    );
    let (header, ep) = row(&k, &["get", "endpoints", "db", "-n", "default"], "db");
    assert_eq!(header, ["NAME", "ENDPOINTS", "AGE"]);
    assert!(
        ep[1].starts_with("10.") && ep[1].ends_with(":5432"),
        "{ep:?}"
    );

    let (header, rev) = row(&k, &["get", "controllerrevisions", "-n", "default"], "db-");
    assert_eq!(header, ["NAME", "CONTROLLER", "REVISION", "AGE"]);
    assert_eq!(&rev[1..3], ["statefulset.apps/db", "1"]);

    let path = write_manifest(dir.path(), "rev.yaml", REVISION);
    k.ok(&["apply", "--validate=strict", "-f", &path]);
    let (_, copied) = row(
        &k,
        &["get", "controllerrevisions", "-n", "default"],
        "copied-1",
    );
    assert_eq!(&copied[1..3], ["<none>", "1"]);
}
