//! Server-side printing seen through the real kubectl against `rotor sim`: the built-in kinds'
//! columns in upstream's order with their `-o wide` ones, and a CRD's printer columns with full
//! JSONPath (a filter on conditions), `date` columns as ages, priority-1 columns only with
//! `-o wide`, and the implicit Age column only for a CRD that defines no columns; Jobs and
//! CronJobs with the columns of the release served.

use crate::common;

use common::kubectl::{Kubectl, start_sim, write_manifest};

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
      - {name: web, image: "nginx:1.27"}
      - {name: sidecar, image: "busybox:1.36"}
"#;

/// Gizmos print Ready (a filter on conditions), Started (a date) and, wide, Size; Widgets
/// define no columns.
const CRDS: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gizmos.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gizmos, kind: Gizmo}
  versions:
  - name: v1
    served: true
    storage: true
    additionalPrinterColumns:
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    - {name: Started, type: date, jsonPath: .status.startedAt}
    - {name: Size, type: integer, jsonPath: .spec.size, priority: 1}
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

const OBJECTS: &str = r#"apiVersion: example.com/v1
kind: Gizmo
metadata: {name: g, namespace: default}
spec: {size: 7}
status:
  startedAt: "2020-01-01T00:00:00Z"
  conditions:
  - {type: Progressing, status: "True"}
  - {type: Ready, status: "False"}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w, namespace: default}
"#;

/// The header's column names and the first row's cells, split on runs of two spaces or more.
fn table(k: &Kubectl, args: &[&str]) -> (Vec<String>, Vec<String>) {
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
    let row = split(lines.next().unwrap_or_default());
    assert_eq!(header.len(), row.len(), "{out}");
    (header, row)
}

#[test]
fn built_in_and_custom_columns_print_as_upstream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_sim, k) = start_sim(dir.path(), 1, &["--ready-delay-ms", "50"]);
    k.ok(&[
        "apply",
        "-f",
        &write_manifest(dir.path(), "web.yaml", DEPLOYMENT),
    ]);
    k.eventually(
        &["get", "deployment", "web", "-n", "default"],
        "web ready",
        |d| d["status"]["readyReplicas"] == 2,
    );
    let (header, row) = table(&k, &["get", "deployment", "web", "-n", "default"]);
    assert_eq!(header, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    assert_eq!(&row[..4], ["web", "2/2", "2", "2"]);
    let (header, row) = table(
        &k,
        &["get", "deployment", "web", "-n", "default", "-o", "wide"],
    );
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert_eq!(
        &row[5..],
        ["web,sidecar", "nginx:1.27,busybox:1.36", "app=web"]
    );

    k.ok(&[
        "apply",
        "-f",
        &write_manifest(dir.path(), "crds.yaml", CRDS),
    ]);
    for crd in ["crd/gizmos.example.com", "crd/widgets.example.com"] {
        k.ok(&["wait", "--for=condition=Established", crd, "--timeout=15s"]);
    }
    k.ok(&[
        "apply",
        "-f",
        &write_manifest(dir.path(), "objects.yaml", OBJECTS),
    ]);
    let (header, row) = table(&k, &["get", "gizmos", "-n", "default"]);
    assert_eq!(header, ["NAME", "READY", "STARTED"], "no implicit AGE");
    assert_eq!(&row[..2], ["g", "False"]);
    assert!(
        row[2].ends_with('d') || row[2].contains('y'),
        "a date prints as an age: {row:?}"
    );
    let (header, row) = table(&k, &["get", "gizmos", "-n", "default", "-o", "wide"]);
    assert_eq!(header, ["NAME", "READY", "STARTED", "SIZE"]);
    assert_eq!(row[3], "7");
    let (header, row) = table(&k, &["get", "widgets", "-n", "default"]);
    assert_eq!(header, ["NAME", "AGE"]);
    assert_eq!(row[0], "w");
}

/// A Job that completes in the simulator, and a suspended CronJob with a time zone.
const BATCH: &str = r#"apiVersion: batch/v1
kind: Job
metadata: {name: pi, namespace: default}
spec:
  completions: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: pi, image: "perl:5.34"}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: report, namespace: default}
spec:
  schedule: "*/5 * * * *"
  timeZone: Etc/UTC
  suspend: true
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: report, image: busybox}]
"#;

#[test]
fn jobs_and_cronjobs_print_upstreams_columns_by_release() {
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = write_manifest(dir.path(), "batch.yaml", BATCH);
    let (_sim, k) = start_sim(
        dir.path(),
        1,
        &["--ready-delay-ms", "50", "--kubernetes-version", "1.35"],
    );
    k.ok(&["apply", "-f", &manifest]);
    let job = k.eventually(&["get", "job", "pi", "-n", "default"], "pi done", |j| {
        j["status"]["completionTime"].is_string()
    });
    let (header, row) = table(&k, &["get", "job", "pi", "-n", "default", "-o", "wide"]);
    assert_eq!(
        header,
        [
            "NAME",
            "STATUS",
            "COMPLETIONS",
            "DURATION",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert_eq!(&row[..3], ["pi", "Complete", "2/2"]);
    assert!(
        row[3].ends_with('s') && row[3].trim_end_matches('s').parse::<u64>().is_ok(),
        "a completed Job's duration is start to completion: {row:?}"
    );
    let uid = job["metadata"]["uid"].as_str().expect("uid");
    assert_eq!(
        &row[5..],
        [
            "pi",
            "perl:5.34",
            &format!("batch.kubernetes.io/controller-uid={uid}")
        ]
    );

    let (header, row) = table(
        &k,
        &["get", "cronjob", "report", "-n", "default", "-o", "wide"],
    );
    assert_eq!(
        header,
        [
            "NAME",
            "SCHEDULE",
            "TIMEZONE",
            "SUSPEND",
            "ACTIVE",
            "LAST SCHEDULE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert_eq!(
        &row[..6],
        ["report", "*/5 * * * *", "Etc/UTC", "True", "0", "<none>"]
    );
    assert_eq!(&row[7..], ["report", "busybox", "<none>"]);

    // Before 1.30 neither a Job's STATUS nor a CronJob's TIMEZONE was printed.
    let old_dir = tempfile::tempdir().expect("tempdir");
    let (_old, k) = start_sim(
        old_dir.path(),
        1,
        &["--ready-delay-ms", "50", "--kubernetes-version", "1.29"],
    );
    k.ok(&["apply", "-f", &manifest]);
    k.eventually(&["get", "job", "pi", "-n", "default"], "pi done", |j| {
        j["status"]["completionTime"].is_string()
    });
    let (header, row) = table(&k, &["get", "job", "pi", "-n", "default"]);
    assert_eq!(header, ["NAME", "COMPLETIONS", "DURATION", "AGE"]);
    assert_eq!(&row[..2], ["pi", "2/2"]);
    let (header, row) = table(&k, &["get", "cronjob", "report", "-n", "default"]);
    assert_eq!(
        header,
        [
            "NAME",
            "SCHEDULE",
            "SUSPEND",
            "ACTIVE",
            "LAST SCHEDULE",
            "AGE"
        ]
    );
    assert_eq!(&row[..5], ["report", "*/5 * * * *", "True", "0", "<none>"]);
}
