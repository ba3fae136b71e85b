//! The Job kind of hook, as pure functions: the Job's name (derived from swap, hook, point and
//! step, so a restarted controller finds the same Job and never makes a second), the Job made
//! from the hook's template, what a Job's conditions answer, and the bounded tail of its Pods'
//! logs that goes into the Event. The calls to the member cluster are in [`super::run`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::api::batch::v1::Job;
use rotor_api::{HookPoint, JobHook};
use sha2::{Digest, Sha256};

/// The label every hook Job carries, with the swap's name.
pub const SWAP_LABEL: &str = "rotor.dev/swap";
/// The label every hook Job carries, with the hook's name.
pub const HOOK_LABEL: &str = "rotor.dev/hook";
/// Log lines kept of a Job's Pods (the last ones).
pub const LOG_TAIL_LINES: usize = 10;
/// Bytes kept of those lines (the last ones): an Event's note holds at most 1 KiB, and the
/// message before the logs must fit beside them.
pub const LOG_TAIL_BYTES: usize = 640;

/// The Job of `hook` at `point` (and `step`) of the swap whose uid is `swap`:
/// `rotor-{hook}-{hash}`, at most 63 characters (a Job's name is also its Pods' `job-name`
/// label value). The uid, not the name: a swap deleted and made again under its name never
/// takes its predecessor's Job for its own.
pub fn job_name(swap: &str, hook: &str, point: HookPoint, step: Option<u32>) -> String {
    let step = step.map(|s| s.to_string()).unwrap_or_default();
    let digest = Sha256::digest(format!("{swap}/{hook}/{point}/{step}").as_bytes());
    let mut hash = String::new();
    for b in &digest[..5] {
        let _ = write!(hash, "{b:02x}");
    }
    let short: String = hook.chars().take(40).collect();
    format!("rotor-{}-{hash}", short.trim_end_matches('-'))
}

/// The Job to create: the template's metadata and spec under rotor's name and labels. Its
/// `ttlSecondsAfterFinished` is dropped: rotor deletes the Job once it has read the answer, and
/// a Job deleted before that would lose it.
pub fn manifest(hook: &JobHook, name: &str, swap: &str, hook_name: &str) -> Result<Job, String> {
    let template = hook.job_template()?;
    let mut meta = template.metadata.unwrap_or_default();
    meta.name = Some(name.to_string());
    meta.namespace = Some(hook.namespace.clone());
    meta.generate_name = None;
    let labels = meta.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(SWAP_LABEL.into(), swap.into());
    labels.insert(HOOK_LABEL.into(), hook_name.into());
    let mut spec = template.spec.unwrap_or_default();
    spec.ttl_seconds_after_finished = None;
    Ok(Job {
        metadata: meta,
        spec: Some(spec),
        status: None,
    })
}

/// What a Job's conditions say.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Neither `Complete` nor `Failed` yet.
    Running,
    /// `Complete`: the hook allows.
    Complete,
    /// `Failed`: the hook denies, with the condition's reason and message.
    Failed(String),
}

/// The answer of `job`'s conditions (a True `Complete` or `Failed`).
pub fn answer(job: &Job) -> Answer {
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref());
    for c in conditions.into_iter().flatten() {
        match (c.type_.as_str(), c.status.as_str()) {
            ("Complete", "True") => return Answer::Complete,
            ("Failed", "True") => {
                let reason = c.reason.as_deref().unwrap_or("Failed");
                let message = c.message.as_deref().unwrap_or("");
                return Answer::Failed(
                    format!("{reason}: {message}")
                        .trim_end_matches([':', ' '])
                        .into(),
                );
            }
            _ => {}
        }
    }
    Answer::Running
}

/// The last [`LOG_TAIL_LINES`] lines of `logs` (each Pod's, oldest Pod first), at most
/// [`LOG_TAIL_BYTES`] bytes of them, cut on a character boundary from the front.
pub fn log_tail(logs: &[String]) -> String {
    let lines: Vec<&str> = logs.iter().flat_map(|l| l.lines()).collect();
    let from = lines.len().saturating_sub(LOG_TAIL_LINES);
    let tail = lines[from..].join("\n");
    let mut cut = tail.len().saturating_sub(LOG_TAIL_BYTES);
    while !tail.is_char_boundary(cut) {
        cut += 1;
    }
    tail[cut..].to_string()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
    use rotor_api::HookCluster;

    use super::*;

    #[test]
    fn a_jobs_name_is_stable_bounded_and_distinct_per_call() {
        let a = job_name("upgrade", "smoke", HookPoint::AfterMigration, None);
        assert_eq!(
            a,
            job_name("upgrade", "smoke", HookPoint::AfterMigration, None)
        );
        assert!(a.starts_with("rotor-smoke-") && a.len() == "rotor-smoke-".len() + 10);
        for other in [
            job_name("upgrade-2", "smoke", HookPoint::AfterMigration, None),
            job_name("upgrade", "smoke", HookPoint::BeforeFirstTrafficStep, None),
            job_name("upgrade", "smoke", HookPoint::AfterEachStep, Some(0)),
        ] {
            assert_ne!(a, other);
        }
        let long = job_name("s", &"a-".repeat(31), HookPoint::AfterMigration, None);
        assert!(long.len() <= 63, "{long}");
        assert!(!long.contains("--"), "{long}");
    }

    #[test]
    fn the_manifest_takes_the_template_under_rotors_name() {
        let hook = JobHook {
            cluster: HookCluster::Green,
            namespace: "shop".into(),
            template: serde_json::json!({"metadata": {"name": "mine", "labels": {"team": "a"}},
                "spec": {"backoffLimit": 1, "ttlSecondsAfterFinished": 0,
                    "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c"}]}}}}),
        };
        let job = manifest(&hook, "rotor-smoke-x", "upgrade", "smoke").expect("a Job");
        assert_eq!(job.metadata.name.as_deref(), Some("rotor-smoke-x"));
        assert_eq!(job.metadata.namespace.as_deref(), Some("shop"));
        let labels = job.metadata.labels.expect("labels");
        assert_eq!(labels["team"], "a");
        assert_eq!(labels[SWAP_LABEL], "upgrade");
        assert_eq!(labels[HOOK_LABEL], "smoke");
        let spec = job.spec.expect("spec");
        assert_eq!(spec.backoff_limit, Some(1));
        assert_eq!(spec.ttl_seconds_after_finished, None);
    }

    fn with(kind: &str, status: &str, reason: Option<&str>) -> Job {
        Job {
            status: Some(JobStatus {
                conditions: Some(vec![JobCondition {
                    type_: kind.into(),
                    status: status.into(),
                    reason: reason.map(Into::into),
                    message: Some("Job has reached the specified backoff limit".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn complete_allows_failed_denies_anything_else_runs() {
        assert_eq!(answer(&Job::default()), Answer::Running);
        assert_eq!(answer(&with("Complete", "True", None)), Answer::Complete);
        assert_eq!(
            answer(&with("Failed", "True", Some("BackoffLimitExceeded"))),
            Answer::Failed(
                "BackoffLimitExceeded: Job has reached the specified backoff limit".into()
            )
        );
        assert_eq!(
            answer(&with("FailureTarget", "True", Some("BackoffLimitExceeded"))),
            Answer::Running
        );
        assert_eq!(answer(&with("Failed", "False", None)), Answer::Running);
    }

    #[test]
    fn the_log_tail_keeps_the_last_lines_within_the_byte_bound() {
        let logs = vec![
            "one\ntwo\n".to_string(),
            (3..=12).map(|i| format!("line {i}\n")).collect(),
        ];
        let tail = log_tail(&logs);
        assert_eq!(tail.lines().count(), LOG_TAIL_LINES);
        assert!(
            tail.starts_with("line 3") && tail.ends_with("line 12"),
            "{tail}"
        );
        let long = vec![format!("{}é\nlast", "x".repeat(2000))];
        let tail = log_tail(&long);
        assert!(
            tail.len() <= LOG_TAIL_BYTES && tail.ends_with("é\nlast"),
            "{tail}"
        );
        assert_eq!(log_tail(&[]), "");
    }
}
