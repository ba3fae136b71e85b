//! A CronJob on `rotor sim` through the real kubectl: `kubectl create job --from=cronjob/NAME`
//! makes a Job of its template that runs to completion, and the simulated cronjob controller
//! records the success in the CronJob's status. (Scheduling itself is tested on a test clock in
//! crates/sim: no test here waits for a minute to turn.)

use crate::common;

use common::kubectl::{start_sim, write_manifest};

/// A schedule that is not due during the test (midnight on New Year's day).
const CRONJOB: &str = r#"apiVersion: batch/v1
kind: CronJob
metadata: {name: report, namespace: default}
spec:
  schedule: "0 0 1 1 *"
  jobTemplate:
    metadata: {labels: {app: report}}
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: report, image: busybox}]
"#;

#[test]
fn create_job_from_a_cronjob_runs_and_counts_as_its_success() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_sim, k) = start_sim(dir.path(), 1, &["--ready-delay-ms", "50"]);
    k.ok(&[
        "apply",
        "-f",
        &write_manifest(dir.path(), "cj.yaml", CRONJOB),
    ]);
    let cj = k.json(&["get", "cronjob", "report", "-n", "default"]);
    assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow", "{cj}");
    assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3, "{cj}");

    k.ok(&[
        "create",
        "job",
        "--from=cronjob/report",
        "manual",
        "-n",
        "default",
    ]);
    let job = k.eventually(
        &["get", "job", "manual", "-n", "default"],
        "manual done",
        |j| j["status"]["succeeded"] == 1,
    );
    assert_eq!(job["metadata"]["labels"]["app"], "report");
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    assert_eq!(
        job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
        "manual"
    );
    let done = job["status"]["completionTime"].clone();
    let cj = k.eventually(
        &["get", "cronjob", "report", "-n", "default"],
        "success recorded",
        |c| c["status"]["lastSuccessfulTime"] == done,
    );
    assert!(cj["status"].get("active").is_none(), "{cj}");
    assert!(cj["status"].get("lastScheduleTime").is_none(), "{cj}");
}
