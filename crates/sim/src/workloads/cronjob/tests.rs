//! The CronJob controller's decisions at chosen times: no clock is waited for.

use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

/// A CronJob created at 10:00:30 on `schedule`, with `spec` and `status` merged in.
fn cron(schedule: &str, spec: Value, status: Value) -> Value {
    let mut cj = json!({
        "metadata": {"name": "report", "namespace": "default", "uid": "cj-uid",
            "creationTimestamp": "2026-03-01T10:00:30Z"},
        "spec": {"schedule": schedule, "concurrencyPolicy": "Allow",
            "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
            "jobTemplate": {"metadata": {"labels": {"app": "report"}},
                "spec": {"template": {"spec": {"restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox"}]}}}}},
        "status": status,
    });
    if let (Some(s), Some(extra)) = (cj["spec"].as_object_mut(), spec.as_object()) {
        s.extend(extra.clone());
    }
    cj
}

/// A Job of `report` named `name`, running or finished with `condition` at `done`.
fn job(name: &str, condition: Option<(&str, &str)>) -> Value {
    let mut j = json!({"metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
        "status": {"startTime": format!("2026-03-01T{}Z", &name[name.len() - 8..])}});
    if let Some((kind, done)) = condition {
        j["status"]["conditions"] = json!([{"type": kind, "status": "True"}]);
        if kind == "Complete" {
            j["status"]["completionTime"] = json!(done);
        }
    }
    j
}

fn active(names: &[&str]) -> Value {
    json!(
        names
            .iter()
            .map(|n| json!({"kind": "Job", "name": n, "uid": format!("uid-{n}")}))
            .collect::<Vec<_>>()
    )
}

#[test]
fn a_start_time_starts_one_job_named_by_its_minute() {
    let cj = cron("* * * * *", json!({}), json!({}));
    let p = plan(&cj, &[], ts("2026-03-01T10:01:05Z"), 34);
    let start = p.start.expect("a Job is due");
    // 10:01 UTC is minute 29539321 of the epoch.
    assert_eq!(start.at, ts("2026-03-01T10:01:00Z"));
    assert_eq!(start.name, "report-29539321");
    assert_eq!(start.stamp, "2026-03-01T10:01:00Z");
    assert_eq!(p.wake, Some(ts("2026-03-01T10:02:00Z")));
    let made = new_job(&cj, &start);
    assert_eq!(made["metadata"]["labels"]["app"], "report");
    assert_eq!(
        made["metadata"]["annotations"][SCHEDULED_AT],
        "2026-03-01T10:01:00Z"
    );
    assert_eq!(made["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    assert_eq!(made["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(made["spec"]["template"]["spec"]["restartPolicy"], "Never");
    // Before 1.28 upstream stamps no scheduled time.
    let old = plan(&cj, &[], ts("2026-03-01T10:01:05Z"), 27)
        .start
        .expect("due");
    assert!(
        new_job(&cj, &old)["metadata"]["annotations"]
            .get(SCHEDULED_AT)
            .is_none()
    );
}

#[test]
fn nothing_is_due_before_the_first_start_time_or_twice_for_one() {
    let cj = cron("*/5 * * * *", json!({}), json!({}));
    let p = plan(&cj, &[], ts("2026-03-01T10:04:59Z"), 34);
    assert_eq!(p.start, None);
    assert_eq!(p.wake, Some(ts("2026-03-01T10:05:00Z")));
    let started = cron(
        "*/5 * * * *",
        json!({}),
        json!({"lastScheduleTime": "2026-03-01T10:05:00Z", "active": active(&["report-29539505"])}),
    );
    let p = plan(
        &started,
        &[job("report-29539505", None)],
        ts("2026-03-01T10:07:00Z"),
        34,
    );
    assert_eq!(p.start, None);
    assert_eq!(p.active.len(), 1);
}

#[test]
fn only_the_most_recent_missed_time_is_started() {
    let cj = cron(
        "* * * * *",
        json!({}),
        json!({"lastScheduleTime": "2026-03-01T10:01:00Z"}),
    );
    let p = plan(&cj, &[], ts("2026-03-01T10:05:30Z"), 34);
    assert_eq!(p.start.expect("due").at, ts("2026-03-01T10:05:00Z"));
    assert!(p.notes.iter().all(|n| n.reason != "TooManyMissedTimes"));
    let p = plan(&cj, &[], ts("2026-03-01T13:00:30Z"), 34);
    assert!(
        p.notes
            .iter()
            .any(|n| n.warning && n.reason == "TooManyMissedTimes")
    );
    assert_eq!(p.start.expect("still due").at, ts("2026-03-01T13:00:00Z"));
}

#[test]
fn every_starts_a_job_each_delay_after_the_last() {
    // Created at 10:00:30: the first start is 10:02:30, then every two minutes after the last.
    let cj = cron("@every 2m", json!({}), json!({}));
    let early = plan(&cj, &[], ts("2026-03-01T10:02:29Z"), 35);
    assert_eq!(early.start, None);
    assert_eq!(early.wake, Some(ts("2026-03-01T10:02:30Z")));
    let first = plan(&cj, &[], ts("2026-03-01T10:02:31Z"), 35);
    let start = first.start.expect("due");
    assert_eq!(start.at, ts("2026-03-01T10:02:30Z"));
    assert_eq!(start.name, "report-29539322");
    assert_eq!(first.wake, Some(ts("2026-03-01T10:04:30Z")));
    let started = cron(
        "@every 2m",
        json!({}),
        json!({"lastScheduleTime": "2026-03-01T10:02:30Z"}),
    );
    let again = plan(&started, &[], ts("2026-03-01T10:03:00Z"), 35);
    assert_eq!(again.start, None, "not twice for one start time");
    let second = plan(&started, &[], ts("2026-03-01T10:04:31Z"), 35);
    assert_eq!(second.start.expect("due").at, ts("2026-03-01T10:04:30Z"));
    assert_eq!(second.wake, Some(ts("2026-03-01T10:06:30Z")));
}

#[test]
fn a_start_time_past_the_starting_deadline_is_missed() {
    let cj = cron(
        "0 * * * *",
        json!({"startingDeadlineSeconds": 60}),
        json!({}),
    );
    let late = plan(&cj, &[], ts("2026-03-01T11:02:00Z"), 34);
    assert_eq!(late.start, None);
    let early = plan(&cj, &[], ts("2026-03-01T11:00:40Z"), 34);
    assert_eq!(
        early.start.expect("inside the deadline").at,
        ts("2026-03-01T11:00:00Z")
    );
}

#[test]
fn suspend_and_a_bad_time_zone_start_nothing() {
    let suspended = cron("* * * * *", json!({"suspend": true}), json!({}));
    let p = plan(&suspended, &[], ts("2026-03-01T10:05:00Z"), 34);
    assert_eq!((p.start, p.wake), (None, None));
    let lost = cron("* * * * *", json!({"timeZone": "Nowhere/Town"}), json!({}));
    let p = plan(&lost, &[], ts("2026-03-01T10:05:00Z"), 34);
    assert_eq!(p.start, None);
    assert!(
        p.notes
            .iter()
            .any(|n| n.warning && n.reason == "UnknownTimeZone")
    );
}

#[test]
fn a_time_zone_decides_the_start_time() {
    let cj = cron("0 9 * * *", json!({"timeZone": "Asia/Tokyo"}), json!({}));
    // 09:00 in Tokyo is 00:00 UTC.
    let p = plan(&cj, &[], ts("2026-03-02T00:00:10Z"), 34);
    let start = p.start.expect("due");
    assert_eq!(start.at, ts("2026-03-02T00:00:00Z"));
    assert_eq!(start.stamp, "2026-03-02T09:00:00+09:00");
}

#[test]
fn concurrency_policies() {
    let status =
        json!({"lastScheduleTime": "2026-03-01T10:01:00Z", "active": active(&["report-29539501"])});
    let running = [job("report-29539501", None)];
    let now = ts("2026-03-01T10:02:01Z");
    let allow = plan(
        &cron("* * * * *", json!({}), status.clone()),
        &running,
        now,
        34,
    );
    assert!(allow.start.is_some() && allow.delete.is_empty());
    let forbid = plan(
        &cron(
            "* * * * *",
            json!({"concurrencyPolicy": "Forbid"}),
            status.clone(),
        ),
        &running,
        now,
        34,
    );
    assert_eq!(forbid.start, None);
    assert!(forbid.notes.iter().any(|n| n.reason == "JobAlreadyActive"));
    let replace = plan(
        &cron("* * * * *", json!({"concurrencyPolicy": "Replace"}), status),
        &running,
        now,
        34,
    );
    assert!(replace.start.is_some());
    assert_eq!(replace.delete, ["report-29539501"]);
    assert!(replace.active.is_empty());
}

#[test]
fn finished_jobs_leave_active_and_set_the_last_success() {
    let cj = cron(
        "0 0 1 1 *",
        json!({}),
        json!({"active": active(&["report-10:01:00", "report-10:02:00", "gone-10:03:00"])}),
    );
    let jobs = [
        job(
            "report-10:01:00",
            Some(("Complete", "2026-03-01T10:01:30Z")),
        ),
        job("report-10:02:00", Some(("Failed", ""))),
    ];
    let p = plan(&cj, &jobs, ts("2026-03-01T10:05:00Z"), 34);
    assert!(p.active.is_empty(), "{:?}", p.active);
    assert_eq!(p.last_successful.as_deref(), Some("2026-03-01T10:01:30Z"));
    let reasons: Vec<&str> = p.notes.iter().map(|n| n.reason).collect();
    assert_eq!(
        reasons,
        ["SawCompletedJob", "SawCompletedJob", "MissingJob"]
    );
}

#[test]
fn history_keeps_the_newest_finished_jobs_within_the_limits() {
    let cj = cron(
        "0 0 1 1 *",
        json!({"successfulJobsHistoryLimit": 2, "failedJobsHistoryLimit": 0}),
        json!({}),
    );
    let jobs = [
        job(
            "report-10:03:00",
            Some(("Complete", "2026-03-01T10:03:09Z")),
        ),
        job(
            "report-10:01:00",
            Some(("Complete", "2026-03-01T10:01:09Z")),
        ),
        job(
            "report-10:02:00",
            Some(("Complete", "2026-03-01T10:02:09Z")),
        ),
        job("report-10:04:00", Some(("Failed", ""))),
        job("report-10:05:00", None),
    ];
    let p = plan(&cj, &jobs, ts("2026-03-01T10:06:00Z"), 34);
    assert_eq!(p.delete, ["report-10:01:00", "report-10:04:00"]);
}
