//! The job controller (non-indexed completion): up to `parallelism` Pods at a time until
//! `completions` have succeeded (without `completions`, until one has and none is left
//! running); simulated Pods end a `workload_ready_delay` after they are made (or after their
//! template's `sim.rotor.dev/run-seconds`), Succeeded, or Failed with the exit code of their
//! template's `sim.rotor.dev/exit-code`. A complete Job gets `completionTime` and the
//! `Complete` condition, preceded from 1.31 by `SuccessCriteriaMet` as upstream's controller adds
//! it. Once more Pods failed than `backoffLimit` (default 6) allows, the Job gets the `Failed`
//! condition (reason `BackoffLimitExceeded`), preceded from 1.31 by `FailureTarget`, and no new
//! Pod; upstream's backoff between replacement Pods (10 s doubling) is not simulated.
//! `ttlSecondsAfterFinished` then deletes a finished Job as the TTL controller does. A
//! suspended Job gets no Pods.

use std::sync::Arc;
use std::time::Duration;

use rotor_apiserver::{ApiError, Resource, object};
use serde_json::{Value, json};

use super::{Ctx, Task, differs, events, int, live, merge, owned, pods};

/// Why a Job is complete, and what upstream says about it.
const REASON: &str = "CompletionsReached";
const MESSAGE: &str = "Reached expected number of succeeded pods";
/// Why a Job failed, and what upstream says about it.
const FAILED_REASON: &str = "BackoffLimitExceeded";
const FAILED_MESSAGE: &str = "Job has reached the specified backoff limit";
/// Upstream's `backoffLimit` when the spec has none.
const DEFAULT_BACKOFF_LIMIT: i64 = 6;

/// The Pods' count by phase.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Counts {
    active: usize,
    ready: usize,
    succeeded: usize,
    failed: usize,
}

fn counts(current: &[Value]) -> Counts {
    let phase = |p: &Value| p["status"]["phase"].as_str().unwrap_or("").to_string();
    let mut c = Counts::default();
    for p in current {
        match phase(p).as_str() {
            "Succeeded" => c.succeeded += 1,
            "Failed" => c.failed += 1,
            _ => {
                c.active += 1;
                c.ready += usize::from(pods::is_ready(p));
            }
        }
    }
    c
}

/// Whether the Job has its `Complete` or its `Failed` condition: nothing more to run.
fn is_finished(job: &Value) -> bool {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True"
            })
        })
}

/// How a run ends, once it does.
#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    Complete,
    Failed,
}

/// Runs Job `ns/name`'s Pods towards its completions, then writes its status.
pub async fn reconcile(ctx: &Ctx, ns: &str, name: &str) -> Result<(), ApiError> {
    let res = ctx.server.resource("batch", "v1", "jobs")?;
    let pods_res = ctx.server.resource("", "v1", "pods")?;
    let Some(job) = live(&ctx.server, &res, ns, name).await? else {
        return Ok(());
    };
    if is_finished(&job) {
        return Ok(());
    }
    let current: Vec<Value> = owned(&ctx.server, &pods_res, ns, super::uid(&job))
        .await?
        .into_iter()
        .filter(|p| !object::is_deleting(p))
        .collect();
    let mut c = counts(&current);
    let more = if failed(&job, c) {
        0
    } else {
        to_start(&job, c)
    };
    create_pods(ctx, &job, more).await?;
    c.active += more;
    let end = ended(&job, c);
    let status = status(ctx.minor, &job, c, end);
    if let Some(end) = end {
        let (type_, reason, note) = match end {
            End::Complete => ("Normal", "Completed", "Job completed"),
            End::Failed => ("Warning", FAILED_REASON, FAILED_MESSAGE),
        };
        events::record_typed(ctx, events::JOB, &job, type_, reason, note).await;
        if let Some(ttl) = job["spec"]["ttlSecondsAfterFinished"].as_u64() {
            let task = Task::JobExpired {
                ns: ns.to_string(),
                name: name.to_string(),
            };
            ctx.queue.after(Duration::from_secs(ttl), task);
        }
    }
    write_status(ctx, &res, &job, status).await
}

/// How many Pods to start now: `parallelism` at most, and no more than completions still due.
fn to_start(job: &Value, c: Counts) -> usize {
    if job["spec"]["suspend"] == true {
        return 0;
    }
    let parallelism = usize::try_from(int(job, "/spec/parallelism", 1)).unwrap_or(0);
    let due = match job["spec"]["completions"].as_u64() {
        Some(n) => usize::try_from(n).unwrap_or(0).saturating_sub(c.succeeded),
        // A work queue: done once any Pod succeeded, so no new Pod after one has.
        None if c.succeeded > 0 => 0,
        None => parallelism,
    };
    parallelism.min(due).saturating_sub(c.active)
}

/// Whether more Pods failed than `backoffLimit` allows.
fn failed(job: &Value, c: Counts) -> bool {
    let limit = int(job, "/spec/backoffLimit", DEFAULT_BACKOFF_LIMIT);
    i64::try_from(c.failed).unwrap_or(i64::MAX) > limit
}

/// How the run ended, if it has: failed once the backoff limit is spent and no Pod still
/// runs, complete once enough Pods succeeded.
fn ended(job: &Value, c: Counts) -> Option<End> {
    if failed(job, c) && c.active == 0 {
        return Some(End::Failed);
    }
    finished(job, c).then_some(End::Complete)
}

fn finished(job: &Value, c: Counts) -> bool {
    match job["spec"]["completions"].as_u64() {
        Some(n) => c.succeeded >= usize::try_from(n).unwrap_or(0) && c.active == 0,
        None => c.succeeded > 0 && c.active == 0,
    }
}

async fn create_pods(ctx: &Ctx, job: &Value, count: usize) -> Result<(), ApiError> {
    let mut names = Vec::with_capacity(count);
    for _ in 0..count {
        let pod = new_pod(job, &pods::random_node(ctx.nodes));
        let created = pods::create(ctx, events::JOB, job, pod).await?;
        names.push(object::name(&created).to_string());
    }
    if !names.is_empty() {
        let ns = job["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        let run = pods::annotation(&job["spec"]["template"], pods::RUN_SECONDS)
            .and_then(|v| v.trim().parse().ok())
            .map_or(ctx.ready_delay, Duration::from_secs);
        ctx.queue.after(run, Task::PodsFinished { ns, names });
    }
    Ok(())
}

/// A Pod of `job`, with the labels upstream's Jobs select their Pods by.
fn new_pod(job: &Value, node: &str) -> Value {
    let mut pod = pods::from_template(job, events::JOB, &pods::random_name(job), node);
    let labels = &mut pod["metadata"]["labels"];
    if !labels.is_object() {
        *labels = json!({});
    }
    let (uid, name) = (super::uid(job), object::name(job));
    for (key, value) in [
        ("batch.kubernetes.io/controller-uid", uid),
        ("batch.kubernetes.io/job-name", name),
        ("controller-uid", uid),
        ("job-name", name),
    ] {
        labels[key] = json!(value);
    }
    pod
}

fn status(minor: u32, job: &Value, c: Counts, end: Option<End>) -> Value {
    let now = object::now_rfc3339();
    let started = job["status"]["startTime"]
        .as_str()
        .map_or(json!(now), |s| json!(s));
    let suspended = job["spec"]["suspend"] == true;
    // Counters are omitted while zero (upstream's omitempty); `ready` is always there.
    let count = |n: usize| if n == 0 { Value::Null } else { json!(n) };
    let mut status = json!({
        "active": count(c.active), "ready": c.ready, "succeeded": count(c.succeeded),
        "failed": count(c.failed), "uncountedTerminatedPods": {},
    });
    if minor >= 29 {
        // Pod replacement policy's count, on by default from 1.29.
        status["terminating"] = json!(0);
    }
    if !suspended {
        status["startTime"] = started;
    }
    match end {
        Some(End::Complete) => {
            status["completionTime"] = json!(now);
            status["conditions"] = match minor >= 31 {
                true => json!([
                    condition("SuccessCriteriaMet", REASON, MESSAGE, &now),
                    condition("Complete", REASON, MESSAGE, &now)
                ]),
                false => {
                    json!([{"type": "Complete", "status": "True", "lastProbeTime": now, "lastTransitionTime": now}])
                }
            };
        }
        Some(End::Failed) => {
            let failed = condition("Failed", FAILED_REASON, FAILED_MESSAGE, &now);
            status["conditions"] = match minor >= 31 {
                true => json!([
                    condition("FailureTarget", FAILED_REASON, FAILED_MESSAGE, &now),
                    failed
                ]),
                false => json!([failed]),
            };
        }
        None => {}
    }
    status
}

fn condition(kind: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": kind, "status": "True", "reason": reason, "message": message,
        "lastProbeTime": now, "lastTransitionTime": now})
}

async fn write_status(
    ctx: &Ctx,
    res: &Arc<Resource>,
    job: &Value,
    status: Value,
) -> Result<(), ApiError> {
    if !differs(&job["status"], &status) {
        return Ok(());
    }
    let ns = job["metadata"]["namespace"].as_str().unwrap_or("default");
    merge(
        &ctx.server,
        res,
        ns,
        object::name(job),
        &json!({"status": status}),
        true,
    )
    .await
}

/// The TTL controller: a finished Job past its `ttlSecondsAfterFinished` is deleted, its Pods
/// with it (background propagation, as upstream).
pub async fn expire(ctx: &Ctx, ns: &str, name: &str) -> Result<(), ApiError> {
    let res = ctx.server.resource("batch", "v1", "jobs")?;
    let Some(job) = live(&ctx.server, &res, ns, name).await? else {
        return Ok(());
    };
    if !is_finished(&job) {
        return Ok(());
    }
    let opts = json!({"propagationPolicy": "Background"});
    match ctx.server.delete(&res, Some(ns), name, &opts, false).await {
        Ok(_) => Ok(()),
        Err(e) if e.reason == "NotFound" => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(completions: Option<i64>, parallelism: i64) -> Value {
        let mut j = json!({"metadata": {"name": "pi", "namespace": "batch", "uid": "u7"},
            "spec": {"parallelism": parallelism, "template": {"metadata": {}, "spec": {"containers": [{"name": "pi"}]}}}});
        if let Some(n) = completions {
            j["spec"]["completions"] = json!(n);
        }
        j
    }

    fn c(active: usize, succeeded: usize) -> Counts {
        Counts {
            active,
            succeeded,
            ..Counts::default()
        }
    }

    #[test]
    fn parallelism_bounds_the_pods_running_and_completions_the_total() {
        assert_eq!(to_start(&job(Some(5), 2), c(0, 0)), 2);
        assert_eq!(to_start(&job(Some(5), 2), c(2, 0)), 0);
        assert_eq!(to_start(&job(Some(5), 2), c(0, 4)), 1);
        assert_eq!(to_start(&job(Some(5), 2), c(0, 5)), 0);
        assert!(finished(&job(Some(5), 2), c(0, 5)));
        assert!(!finished(&job(Some(5), 2), c(1, 4)));
    }

    #[test]
    fn a_work_queue_is_done_after_one_success_and_no_pod_left_running() {
        assert_eq!(to_start(&job(None, 3), c(0, 0)), 3);
        assert_eq!(to_start(&job(None, 3), c(2, 1)), 0);
        assert!(!finished(&job(None, 3), c(2, 1)));
        assert!(finished(&job(None, 3), c(0, 1)));
    }

    #[test]
    fn a_suspended_job_starts_nothing() {
        let mut j = job(Some(1), 1);
        j["spec"]["suspend"] = json!(true);
        assert_eq!(to_start(&j, c(0, 0)), 0);
    }

    #[test]
    fn completion_sets_time_and_conditions_by_release() {
        let s = status(34, &job(Some(1), 1), c(0, 1), Some(End::Complete));
        assert_eq!(s["succeeded"], 1);
        assert!(s["active"].is_null() && s["completionTime"].is_string());
        assert_eq!(s["conditions"][0]["type"], "SuccessCriteriaMet");
        assert_eq!(
            (
                s["conditions"][1]["type"].as_str(),
                s["conditions"][1]["reason"].as_str()
            ),
            (Some("Complete"), Some(REASON))
        );
        let old = status(30, &job(Some(1), 1), c(0, 1), Some(End::Complete));
        assert_eq!(old["conditions"].as_array().map(Vec::len), Some(1));
        assert_eq!(old["conditions"][0]["type"], "Complete");
    }

    #[test]
    fn a_job_fails_once_more_pods_failed_than_its_backoff_limit() {
        let mut j = job(Some(1), 1);
        j["spec"]["backoffLimit"] = json!(1);
        let failed_pods = |active, failed| Counts {
            active,
            failed,
            ..Counts::default()
        };
        // One failure is within the limit: a replacement Pod runs.
        assert!(!failed(&j, failed_pods(0, 1)));
        assert_eq!(to_start(&j, failed_pods(0, 1)), 1);
        assert_eq!(ended(&j, failed_pods(1, 1)), None);
        assert!(failed(&j, failed_pods(0, 2)));
        assert_eq!(ended(&j, failed_pods(0, 2)), Some(End::Failed));
        // Without a limit upstream's default (6) applies.
        assert!(!failed(&job(Some(1), 1), failed_pods(0, 6)));
        assert!(failed(&job(Some(1), 1), failed_pods(0, 7)));
        let s = status(34, &j, failed_pods(0, 2), Some(End::Failed));
        assert_eq!(s["failed"], 2);
        assert!(s["completionTime"].is_null());
        let kinds: Vec<&str> = s["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["type"].as_str())
            .collect();
        assert_eq!(kinds, ["FailureTarget", "Failed"]);
        assert_eq!(s["conditions"][1]["reason"], FAILED_REASON);
        let old = status(30, &j, failed_pods(0, 2), Some(End::Failed));
        assert_eq!(old["conditions"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn job_pods_carry_the_labels_jobs_select_by() {
        let p = new_pod(&job(Some(1), 1), "node-0");
        assert_eq!(
            p["metadata"]["labels"]["batch.kubernetes.io/job-name"],
            "pi"
        );
        assert_eq!(p["metadata"]["labels"]["controller-uid"], "u7");
        assert_eq!(
            p["metadata"]["ownerReferences"][0]["apiVersion"],
            "batch/v1"
        );
    }
}
