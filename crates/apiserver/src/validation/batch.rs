//! batch/v1 Job and CronJob: counts, restart policy, the selector (and, on create, that a
//! generated one selects what generation labels the Pods with), the cron schedule.

use serde_json::{Map, Value};

use super::apps::{selector_matches, validate_selector};
use super::values::min_int;
use super::{Causes, at};

/// The release from which Jobs' generated labels include the `batch.kubernetes.io/` ones.
const PREFIXED_LABELS_SINCE: u32 = 27;

/// A Job's spec at `prefix` (`spec`, or `spec.jobTemplate.spec` in a CronJob).
fn validate_job_spec(spec: Option<&Value>, prefix: &str, c: &mut Causes) {
    let Some(spec) = spec else {
        c.required(prefix.to_string(), "");
        return;
    };
    for key in [
        "parallelism",
        "completions",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        min_int(c, Some(spec), prefix, key, 0);
    }
    min_int(c, Some(spec), prefix, "activeDeadlineSeconds", 1);
    let pod_prefix = format!("{prefix}.template.spec");
    let pod = at(spec, &["template", "spec"]);
    super::pod::validate_pod_spec(pod, &pod_prefix, c);
    let policy = pod
        .and_then(|p| p.get("restartPolicy"))
        .unwrap_or(&Value::Null);
    if !matches!(policy.as_str(), Some("OnFailure" | "Never")) {
        let field = format!("{pod_prefix}.restartPolicy");
        if policy.is_null() {
            c.required(field, "valid values: \"OnFailure\", \"Never\"");
        } else {
            c.not_supported(field, policy, &["OnFailure", "Never"]);
        }
    }
}

pub fn validate_job(obj: &Value, c: &mut Causes) {
    let spec = obj.get("spec");
    validate_job_spec(spec, "spec", c);
    match spec.and_then(|s| at(s, &["selector"])) {
        None if spec.is_some() => c.required("spec.selector".into(), ""),
        None => {}
        Some(sel) => {
            validate_selector(sel, "spec.selector", c);
            let labels = spec.and_then(|s| at(s, &["template", "metadata", "labels"]));
            if !selector_matches(sel, labels) {
                c.invalid(
                    "spec.template.metadata.labels".into(),
                    labels.unwrap_or(&Value::Null),
                    "`selector` does not match template `labels`",
                );
            }
        }
    }
}

/// A created Job without `manualSelector: true` must carry the generated labels on its
/// template, and its selector must select exactly those: a user's own selector is refused
/// (`selector` not auto-generated), as kube-apiserver refuses it, so Jobs never overlap.
pub fn validate_generated_selector(obj: &Value, minor: u32, c: &mut Causes) {
    let Some(spec) = obj.get("spec") else { return };
    if spec.get("manualSelector") == Some(&Value::Bool(true)) {
        return;
    }
    let Some(sel) = at(spec, &["selector"]) else {
        return;
    };
    let text = |path: &[&str]| at(obj, path).and_then(Value::as_str).unwrap_or_default();
    let (uid, name) = (text(&["metadata", "uid"]), text(&["metadata", "name"]));
    if uid.is_empty() {
        c.required("metadata.uid".into(), "");
    }
    let mut expected = vec![("controller-uid", uid), ("job-name", name)];
    if minor >= PREFIXED_LABELS_SINCE {
        expected.push(("batch.kubernetes.io/controller-uid", uid));
        expected.push(("batch.kubernetes.io/job-name", name));
    }
    let labels = at(spec, &["template", "metadata", "labels"]);
    for (key, want) in &expected {
        let field = format!("spec.template.metadata.labels[{key}]");
        match labels.and_then(|l| l.get(*key)) {
            None => c.required(field, ""),
            Some(got) if got.as_str() != Some(*want) => c.invalid(
                field,
                labels.unwrap_or(&Value::Null),
                &format!("must be '{want}'"),
            ),
            Some(_) => {}
        }
    }
    let expected: Map<String, Value> = expected
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::from(v)))
        .collect();
    if !selector_matches(sel, Some(&Value::Object(expected))) {
        c.invalid("spec.selector".into(), sel, "`selector` not auto-generated");
    }
}

pub fn validate_cron_job(obj: &Value, c: &mut Causes) {
    if let Some(n) = at(obj, &["metadata", "name"]).and_then(Value::as_str)
        && n.len() > 52
    {
        c.invalid(
            "metadata.name".into(),
            &Value::from(n),
            "must be no more than 52 characters",
        );
    }
    let spec = obj.get("spec");
    match spec.and_then(|s| s.get("schedule")) {
        Some(Value::String(s)) if !s.is_empty() => {
            if s.contains("TZ") {
                c.invalid(
                    "spec.schedule".into(),
                    &Value::from(s.as_str()),
                    "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
                );
            } else if let Err(e) = check_schedule(s) {
                c.invalid("spec.schedule".into(), &Value::from(s.as_str()), &e);
            }
        }
        _ => c.required("spec.schedule".into(), ""),
    }
    if let Some(p) = spec
        .and_then(|s| s.get("concurrencyPolicy"))
        .filter(|v| !v.is_null())
        && !matches!(p.as_str(), Some("Allow" | "Forbid" | "Replace"))
    {
        c.not_supported(
            "spec.concurrencyPolicy".into(),
            p,
            &["Allow", "Forbid", "Replace"],
        );
    }
    for key in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        min_int(c, spec, "spec", key, 0);
    }
    validate_job_spec(
        spec.and_then(|s| at(s, &["jobTemplate", "spec"])),
        "spec.jobTemplate.spec",
        c,
    );
}

/// Field ranges of the five cron fields, and the names months and weekdays may use.
const FIELDS: [(u32, u32, &[&str]); 5] = [
    (0, 59, &[]),
    (0, 23, &[]),
    (1, 31, &[]),
    (
        1,
        12,
        &[
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ],
    ),
    (0, 7, &["sun", "mon", "tue", "wed", "thu", "fri", "sat"]),
];
/// robfig/cron's descriptors; `@every <duration>` apart.
const DESCRIPTORS: [&str; 7] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

/// The standard five-field cron syntax robfig/cron parses, its descriptors (the whole
/// schedule, case and all) and `@every ` followed by a Go duration.
fn check_schedule(s: &str) -> Result<(), String> {
    if let Some(d) = s.strip_prefix("@every ") {
        return super::go_duration(d)
            .map(|_| ())
            .map_err(|e| format!("failed to parse duration {s}: {e}"));
    }
    if s.starts_with('@') {
        return if DESCRIPTORS.contains(&s) {
            Ok(())
        } else {
            Err(format!("unrecognized descriptor: {s}"))
        };
    }
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: {s}",
            parts.len()
        ));
    }
    for (part, (lo, hi, names)) in parts.iter().zip(FIELDS) {
        for item in part.split(',') {
            check_item(item, lo, hi, names).map_err(|e| format!("{e}: {part}"))?;
        }
    }
    Ok(())
}

fn check_item(item: &str, lo: u32, hi: u32, names: &[&str]) -> Result<(), String> {
    let (range, step) = match item.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (item, None),
    };
    if let Some(step) = step
        && step.parse::<u32>().map_or(true, |n| n == 0)
    {
        return Err("failed to parse step".into());
    }
    if range == "*" || range == "?" {
        return Ok(());
    }
    let value = |v: &str| {
        let lower = v.to_ascii_lowercase();
        names
            .iter()
            .position(|n| *n == lower)
            .map(|i| i as u32 + if names.len() == 12 { 1 } else { 0 })
            .or_else(|| v.parse().ok())
            .filter(|n| (lo..=hi).contains(n))
            .ok_or_else(|| format!("value {v} out of range ({lo}-{hi})"))
    };
    match range.split_once('-') {
        Some((a, b)) if value(a)? <= value(b)? => Ok(()),
        Some(_) => Err("beginning of range after end".into()),
        None => value(range).map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::check_schedule;

    #[test]
    fn schedules() {
        for ok in [
            "*/5 * * * *",
            "0 3 * * mon-fri",
            "@hourly",
            "15,45 1-5 1 jan *",
            "@every 90s",
            "@every 1h30m",
        ] {
            assert!(check_schedule(ok).is_ok(), "{ok}");
        }
        for bad in [
            "* * * *",
            "61 * * * *",
            "*/0 * * * *",
            "@sometimes",
            "5-1 * * * *",
            "@every",
            "@every 5",
            "@hourly please",
            "@HOURLY",
        ] {
            assert!(check_schedule(bad).is_err(), "{bad}");
        }
        assert_eq!(
            check_schedule("@every 1x"),
            Err(
                r#"failed to parse duration @every 1x: time: unknown unit "x" in duration "1x""#
                    .into()
            )
        );
    }
}
