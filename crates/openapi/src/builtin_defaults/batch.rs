//! batch/v1 (and v1beta1 CronJob) defaults (pkg/apis/batch/v1/defaults.go).

use serde_json::{Map, Value};

use super::{D, child, ensure, fill, is_empty, pod};

pub(super) fn apply(plural: &str, minor: u32, root: &mut Map<String, Value>) {
    match plural {
        "jobs" => job(root, minor),
        "cronjobs" => cron_job(root),
        _ => {}
    }
}

fn job(root: &mut Map<String, Value>, minor: u32) {
    let template_labels = root
        .get("spec")
        .and_then(|s| s.pointer("/template/metadata/labels"))
        .filter(|l| l.as_object().is_some_and(|m| !m.is_empty()))
        .cloned();
    if let Some(labels) = template_labels
        && let Some(meta) = ensure(root, "metadata")
        && is_empty(meta, "labels")
    {
        meta.insert("labels".into(), labels);
    }
    let Some(spec) = ensure(root, "spec") else {
        return;
    };
    if !spec.contains_key("completions") && !spec.contains_key("parallelism") {
        fill(spec, &[("completions", D::Int(1))]);
    }
    let backoff = if spec.contains_key("backoffLimitPerIndex") {
        i64::from(i32::MAX)
    } else {
        6
    };
    fill(
        spec,
        &[
            ("parallelism", D::Int(1)),
            ("backoffLimit", D::Int(backoff)),
            ("completionMode", D::PtrStr("NonIndexed")),
            ("suspend", D::Bool(false)),
        ],
    );
    // JobPodReplacementPolicy: beta (on by default) from 1.29.
    if minor >= 29 {
        let policy = if spec.contains_key("podFailurePolicy") {
            "Failed"
        } else {
            "TerminatingOrFailed"
        };
        fill(spec, &[("podReplacementPolicy", D::PtrStr(policy))]);
    }
    pod::template_at(spec, "template");
}

fn cron_job(root: &mut Map<String, Value>) {
    let Some(spec) = ensure(root, "spec") else {
        return;
    };
    fill(
        spec,
        &[
            ("concurrencyPolicy", D::Str("Allow")),
            ("suspend", D::Bool(false)),
            ("successfulJobsHistoryLimit", D::Int(3)),
            ("failedJobsHistoryLimit", D::Int(1)),
        ],
    );
    if let Some(job_spec) = child(spec, "jobTemplate").and_then(|t| child(t, "spec")) {
        pod::template_at(job_spec, "template");
    }
}
