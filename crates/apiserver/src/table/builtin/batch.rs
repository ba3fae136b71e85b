//! batch/v1 Jobs and CronJobs as kube-apiserver prints them. From 1.30 a Job has a Status
//! column and a CronJob a Timezone one (kubernetes#123226, #122231); earlier releases lack them.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Cell, Column, column, containers, f, list, num, selector, text, wide};
use crate::table::age;

/// The release whose printers added Job's Status and CronJob's Timezone.
const STATUS_AND_TIMEZONE_SINCE: u32 = 30;

/// A Job's own columns and its wide ones.
pub(super) fn job(minor: u32) -> (Vec<Column>, Vec<Column>) {
    let mut own = Vec::new();
    if minor >= STATUS_AND_TIMEZONE_SINCE {
        own.push(f("Status", "string", job_status));
    }
    own.push(f("Completions", "string", completions));
    own.push(column("Duration", "string", 0, Cell::Timed(duration)));
    (own, job_wides())
}

/// A CronJob's own columns and its wide ones (those of its Job template).
pub(super) fn cronjob(minor: u32) -> (Vec<Column>, Vec<Column>) {
    let mut own = vec![f("Schedule", "string", |o| {
        json!(text(o, "/spec/schedule"))
    })];
    if minor >= STATUS_AND_TIMEZONE_SINCE {
        own.push(f("Timezone", "string", |o| {
            json!(none_if_absent(o, "/spec/timeZone"))
        }));
    }
    own.extend([
        f("Suspend", "boolean", |o| {
            json!(match o.pointer("/spec/suspend").and_then(Value::as_bool) {
                Some(true) => "True",
                Some(false) => "False",
                None => "<unset>",
            })
        }),
        f("Active", "integer", |o| {
            json!(list(o, "/status/active").len())
        }),
        column("Last Schedule", "string", 0, Cell::Timed(last_schedule)),
    ]);
    (own, cronjob_wides())
}

/// A Job's template containers, their images and its selector, with `-o wide`.
fn job_wides() -> Vec<Column> {
    vec![
        wide("Containers", |o| {
            containers(o, "/spec/template/spec/containers", "/name")
        }),
        wide("Images", |o| {
            containers(o, "/spec/template/spec/containers", "/image")
        }),
        wide("Selector", |o| selector(o, "/spec/selector")),
    ]
}

/// The same of a CronJob's Job template.
fn cronjob_wides() -> Vec<Column> {
    const CONTAINERS: &str = "/spec/jobTemplate/spec/template/spec/containers";
    vec![
        wide("Containers", |o| containers(o, CONTAINERS, "/name")),
        wide("Images", |o| containers(o, CONTAINERS, "/image")),
        wide("Selector", |o| {
            selector(o, "/spec/jobTemplate/spec/selector")
        }),
    ]
}

/// The text at `pointer`, `<none>` when absent (an empty string stays empty, as upstream).
fn none_if_absent(o: &Value, pointer: &str) -> String {
    match o.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        _ => "<none>".into(),
    }
}

/// Whether the Job's first condition of type `kind` is True (upstream looks at the first only).
fn has_condition(o: &Value, kind: &str) -> bool {
    list(o, "/status/conditions")
        .iter()
        .find(|c| c["type"] == kind)
        .is_some_and(|c| c["status"] == "True")
}

/// Terminal conditions first, then deletion, then the conditions that pause or doom a Job.
fn job_status(o: &Value) -> Value {
    let deleting = o
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null());
    json!(if has_condition(o, "Complete") {
        "Complete"
    } else if has_condition(o, "Failed") {
        "Failed"
    } else if deleting {
        "Terminating"
    } else if has_condition(o, "Suspended") {
        "Suspended"
    } else if has_condition(o, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    })
}

/// `succeeded/completions`; without completions (a work queue) `succeeded/1`, and
/// `succeeded/1 of parallelism` when more than one Pod runs at a time.
fn completions(o: &Value) -> Value {
    let succeeded = num(o, "/status/succeeded");
    if let Some(want) = o.pointer("/spec/completions").and_then(Value::as_i64) {
        return json!(format!("{succeeded}/{want}"));
    }
    let parallelism = num(o, "/spec/parallelism");
    json!(if parallelism > 1 {
        format!("{succeeded}/1 of {parallelism}")
    } else {
        format!("{succeeded}/1")
    })
}

/// Empty before the Job starts, the time since its start while it runs, start to completion
/// once it has completed.
fn duration(o: &Value, now: DateTime<Utc>) -> Value {
    let time = |pointer: &str| {
        o.pointer(pointer)
            .and_then(Value::as_str)
            .and_then(age::parse)
    };
    json!(
        match (time("/status/startTime"), time("/status/completionTime")) {
            (None, _) => String::new(),
            (Some(start), None) => age::between(start, now),
            (Some(start), Some(end)) => age::between(start, end),
        }
    )
}

fn last_schedule(o: &Value, now: DateTime<Utc>) -> Value {
    json!(match o
        .pointer("/status/lastScheduleTime")
        .and_then(Value::as_str)
    {
        Some(t) => age::since(t, now),
        None => "<none>".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: &str) -> DateTime<Utc> {
        age::parse(t).expect("time")
    }

    #[test]
    fn a_job_reads_complete_failed_terminating_suspended_or_running() {
        let cond = |t: &str, s: &str| json!({"status": {"conditions": [{"type": t, "status": s}]}});
        assert_eq!(job_status(&cond("Complete", "True")), "Complete");
        assert_eq!(job_status(&cond("Failed", "True")), "Failed");
        assert_eq!(job_status(&cond("Suspended", "True")), "Suspended");
        assert_eq!(job_status(&cond("FailureTarget", "True")), "FailureTarget");
        assert_eq!(job_status(&cond("Suspended", "False")), "Running");
        assert_eq!(job_status(&json!({})), "Running");
        let mut deleting = cond("Suspended", "True");
        deleting["metadata"] = json!({"deletionTimestamp": "2026-01-01T00:00:00Z"});
        assert_eq!(job_status(&deleting), "Terminating");
        let both = json!({"status": {"conditions": [
            {"type": "SuccessCriteriaMet", "status": "True"},
            {"type": "Complete", "status": "True"}]}});
        assert_eq!(job_status(&both), "Complete");
    }

    #[test]
    fn completions_count_against_the_spec_or_one() {
        let job = |spec: Value| json!({"spec": spec, "status": {"succeeded": 2}});
        assert_eq!(completions(&job(json!({"completions": 5}))), "2/5");
        assert_eq!(completions(&job(json!({"parallelism": 3}))), "2/1 of 3");
        assert_eq!(completions(&job(json!({"parallelism": 1}))), "2/1");
        assert_eq!(completions(&json!({"spec": {}})), "0/1");
    }

    #[test]
    fn duration_runs_until_completion() {
        let now = at("2026-01-01T01:00:00Z");
        let started = json!({"status": {"startTime": "2026-01-01T00:00:00Z"}});
        assert_eq!(duration(&started, now), "60m");
        let mut done = started.clone();
        done["status"]["completionTime"] = json!("2026-01-01T00:00:42Z");
        assert_eq!(duration(&done, now), "42s");
        assert_eq!(duration(&json!({}), now), "");
    }

    #[test]
    fn last_schedule_is_an_age_or_none() {
        let now = at("2026-01-01T00:05:00Z");
        let cj = json!({"status": {"lastScheduleTime": "2026-01-01T00:04:00Z"}});
        assert_eq!(last_schedule(&cj, now), "60s");
        assert_eq!(last_schedule(&json!({}), now), "<none>");
    }

    #[test]
    fn status_and_timezone_arrive_in_1_30() {
        let names = |cols: Vec<Column>| cols.into_iter().map(|c| c.name).collect::<Vec<_>>();
        assert_eq!(names(job(30).0), ["Status", "Completions", "Duration"]);
        assert_eq!(names(job(29).0), ["Completions", "Duration"]);
        assert_eq!(
            names(cronjob(35).0),
            ["Schedule", "Timezone", "Suspend", "Active", "Last Schedule"]
        );
        assert_eq!(
            names(cronjob(27).0),
            ["Schedule", "Suspend", "Active", "Last Schedule"]
        );
        assert_eq!(names(cronjob(35).1), ["Containers", "Images", "Selector"]);
    }
}
