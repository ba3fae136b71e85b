//! The cronjob controller, as upstream's (v2) decides: a CronJob owes the most recent start time
//! of its schedule after its `lastScheduleTime` (its creation before the first), no older than
//! `startingDeadlineSeconds`; it starts a Job named `<cronjob>-<start time in minutes since the
//! epoch>` from its `jobTemplate` unless suspended, already started for that time, or
//! `concurrencyPolicy: Forbid` with a Job still running (`Replace` deletes the running ones
//! first). It keeps `status.active`, `lastScheduleTime` and `lastSuccessfulTime`, deletes the
//! oldest finished Jobs beyond `successfulJobsHistoryLimit`/`failedJobsHistoryLimit`, and wakes
//! itself at the next start time. The decision ([`plan`]) is pure and takes the time as an
//! argument, so it is tested without waiting for the clock; the time comes from [`Ctx::clock`].

use std::collections::HashSet;
use std::sync::Arc;

use jiff::Timestamp;
use rotor_apiserver::{ApiError, Resource, object};
use serde_json::{Value, json};

use super::schedule::{self, MANY_MISSED, Schedule};
use super::{Ctx, Task, differs, events, int, merge, owned, owner_ref};

/// Upstream's annotation of a Job with the start time it was made for (from 1.28).
const SCHEDULED_AT: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// An Event the controller records: Warning or Normal, reason, message.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

/// A Job to start: its name and the start time it is for.
#[derive(Debug, Clone, PartialEq)]
pub struct Start {
    pub name: String,
    pub at: Timestamp,
    /// `batch.kubernetes.io/cronjob-scheduled-timestamp`, in the schedule's zone.
    pub stamp: String,
}

/// What one look at a CronJob decides.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// `status.active` once finished and vanished Jobs are out (and `Replace`d ones).
    pub active: Vec<Value>,
    pub last_successful: Option<String>,
    pub notes: Vec<Note>,
    /// Jobs to delete: replaced running ones, then finished ones beyond the history limits.
    pub delete: Vec<String>,
    pub start: Option<Start>,
    /// When to look again: the next start time.
    pub wake: Option<Timestamp>,
}

fn normal(reason: &'static str, message: String) -> Note {
    Note {
        warning: false,
        reason,
        message,
    }
}

fn warning(reason: &'static str, message: String) -> Note {
    Note {
        warning: true,
        reason,
        message,
    }
}

fn condition_true(job: &Value, kind: &str) -> bool {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == kind && c["status"] == "True")
        })
}

/// A finished Job's condition (`Complete`, `Failed`), None while it runs.
fn finished(job: &Value) -> Option<&'static str> {
    ["Complete", "Failed"]
        .into_iter()
        .find(|k| condition_true(job, k))
}

fn time(v: &Value, pointer: &str) -> Option<Timestamp> {
    v.pointer(pointer)?.as_str()?.parse().ok()
}

/// A Timestamp as Kubernetes writes one (`2026-03-01T10:04:00Z`, whole seconds).
pub fn rfc3339(t: Timestamp) -> String {
    Timestamp::from_second(t.as_second())
        .unwrap_or(t)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Decides about CronJob `cj`, given the Jobs it controls, at `now` (`minor`: the release).
pub fn plan(cj: &Value, jobs: &[Value], now: Timestamp, minor: u32) -> Plan {
    let mut p = Plan::default();
    track(cj, jobs, &mut p);
    expire_history(cj, jobs, &mut p);
    if object::is_deleting(cj) || cj["spec"]["suspend"] == true {
        return p;
    }
    let spec = &cj["spec"];
    let schedule = match Schedule::parse(
        spec["schedule"].as_str().unwrap_or_default(),
        spec["timeZone"].as_str(),
    ) {
        Ok(s) => s,
        Err(e @ schedule::ScheduleError::UnknownTimeZone(_)) => {
            p.notes.push(warning("UnknownTimeZone", e.to_string()));
            return p;
        }
        Err(e) => {
            p.notes.push(warning("UnparseableSchedule", e.to_string()));
            return p;
        }
    };
    let since = earliest(cj, now);
    p.wake = schedule.next_start(since, now);
    if let Some(start) = due(cj, &schedule, since, now, minor, &mut p) {
        p.start = Some(start);
    }
    p
}

/// `status.active` without the Jobs that finished or vanished, and `lastSuccessfulTime` from
/// the newest completed Job.
fn track(cj: &Value, jobs: &[Value], p: &mut Plan) {
    let uids: HashSet<&str> = jobs.iter().map(super::uid).collect();
    let active: Vec<Value> = cj
        .pointer("/status/active")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let listed = |uid: &str| active.iter().any(|r| r["uid"] == uid);
    for job in jobs {
        let name = object::name(job);
        match finished(job) {
            Some(condition) if listed(super::uid(job)) => p.notes.push(normal(
                "SawCompletedJob",
                format!("Saw completed job: {name}, condition: {condition}"),
            )),
            None if !listed(super::uid(job)) => p.notes.push(warning(
                "UnexpectedJob",
                format!("Saw a job that the controller did not create or forgot: {name}"),
            )),
            _ => {}
        }
    }
    for r in &active {
        let uid = r["uid"].as_str().unwrap_or_default();
        let running = jobs
            .iter()
            .any(|j| super::uid(j) == uid && finished(j).is_none());
        if running {
            p.active.push(r.clone());
        } else if !uids.contains(uid) {
            let name = r["name"].as_str().unwrap_or_default();
            p.notes.push(normal(
                "MissingJob",
                format!("Active job went missing: {name}"),
            ));
        }
    }
    let completed = jobs
        .iter()
        .filter(|j| condition_true(j, "Complete"))
        .filter_map(|j| time(j, "/status/completionTime"));
    let newest = completed
        .chain(time(cj, "/status/lastSuccessfulTime"))
        .max();
    p.last_successful = newest.map(rfc3339);
}

/// The oldest finished Jobs (by start time) beyond the history limits, to be deleted.
fn expire_history(cj: &Value, jobs: &[Value], p: &mut Plan) {
    for (condition, pointer, default) in [
        ("Complete", "/spec/successfulJobsHistoryLimit", 3),
        ("Failed", "/spec/failedJobsHistoryLimit", 1),
    ] {
        let limit = usize::try_from(int(cj, pointer, default)).unwrap_or(0);
        let mut done: Vec<&Value> = jobs
            .iter()
            .filter(|j| finished(j) == Some(condition) && !object::is_deleting(j))
            .collect();
        done.sort_by_key(|j| time(j, "/status/startTime"));
        let excess = done.len().saturating_sub(limit);
        p.delete
            .extend(done[..excess].iter().map(|j| object::name(j).to_string()));
    }
}

/// Where the start times owed begin: after the last one, or the creation before the first.
fn earliest(cj: &Value, now: Timestamp) -> Timestamp {
    time(cj, "/status/lastScheduleTime")
        .or_else(|| time(cj, "/metadata/creationTimestamp"))
        .unwrap_or(now)
}

/// The start the CronJob owes at `now` (counting from `earliest`, no further back than
/// `startingDeadlineSeconds`), if any, with the Events of what stands in its way.
fn due(
    cj: &Value,
    schedule: &Schedule,
    mut earliest: Timestamp,
    now: Timestamp,
    minor: u32,
    p: &mut Plan,
) -> Option<Start> {
    let deadline = cj["spec"]["startingDeadlineSeconds"].as_i64();
    let last = time(cj, "/status/lastScheduleTime");
    if let Some(d) = deadline {
        earliest = earliest.max(schedule::seconds_before(now, d));
    }
    let owed = schedule.most_recent(earliest, now)?;
    if owed.missed > MANY_MISSED {
        p.notes.push(warning(
            "TooManyMissedTimes",
            "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into(),
        ));
    }
    if deadline.is_some_and(|d| schedule::seconds_before(now, d) > owed.at) {
        let at = owed.at.strftime("%a, %d %b %Y %H:%M:%S %z");
        p.notes.push(warning(
            "MissSchedule",
            format!("Missed scheduled time to start a job: {at}"),
        ));
        return None;
    }
    let name = format!(
        "{}-{}",
        object::name(cj),
        owed.at.as_second().div_euclid(60)
    );
    if p.active.iter().any(|r| r["name"] == name.as_str()) || last == Some(owed.at) {
        return None;
    }
    if !concurrency_allows(cj, p) {
        return None;
    }
    let stamp = if minor >= 28 {
        schedule.local_rfc3339(owed.at)
    } else {
        String::new()
    };
    Some(Start {
        name,
        at: owed.at,
        stamp,
    })
}

/// Whether `concurrencyPolicy` lets a new Job start beside the active ones: `Forbid` does not
/// while one runs; `Replace` does, once the running ones are marked for deletion.
fn concurrency_allows(cj: &Value, p: &mut Plan) -> bool {
    match cj["spec"]["concurrencyPolicy"].as_str() {
        Some("Forbid") if !p.active.is_empty() => {
            p.notes.push(normal(
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
            ));
            false
        }
        Some("Replace") => {
            let replaced = std::mem::take(&mut p.active);
            p.delete.extend(
                replaced
                    .iter()
                    .filter_map(|r| r["name"].as_str().map(str::to_string)),
            );
            true
        }
        _ => true,
    }
}

/// The Job `start` makes: the template's labels, annotations and spec, owned by the CronJob.
fn new_job(cj: &Value, start: &Start) -> Value {
    let template = &cj["spec"]["jobTemplate"];
    let mut annotations = template["metadata"]["annotations"].clone();
    if !annotations.is_object() {
        annotations = json!({});
    }
    if !start.stamp.is_empty() {
        annotations[SCHEDULED_AT] = json!(start.stamp);
    }
    let mut meta = json!({
        "name": start.name,
        "namespace": cj["metadata"]["namespace"],
        "annotations": annotations,
        "ownerReferences": [owner_ref("batch/v1", "CronJob", cj)],
    });
    if template["metadata"]["labels"].is_object() {
        meta["labels"] = template["metadata"]["labels"].clone();
    }
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": template["spec"]})
}

/// The reference `status.active` keeps of a Job.
fn reference(job: &Value) -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "name": object::name(job), "namespace": job["metadata"]["namespace"],
        "uid": job["metadata"]["uid"], "resourceVersion": job["metadata"]["resourceVersion"],
    })
}

/// Looks at CronJob `ns/name` now and carries out what [`plan`] decides.
pub async fn reconcile(ctx: &Ctx, ns: &str, name: &str) -> Result<(), ApiError> {
    let res = ctx.server.resource("batch", "v1", "cronjobs")?;
    let jobs_res = ctx.server.resource("batch", "v1", "jobs")?;
    let cj = match ctx.server.get(&res, Some(ns), name).await {
        Ok(cj) => cj,
        Err(e) if e.reason == "NotFound" => return Ok(()),
        Err(e) => return Err(e),
    };
    let jobs = owned(&ctx.server, &jobs_res, ns, super::uid(&cj)).await?;
    let mut plan = plan(&cj, &jobs, ctx.clock.now(), ctx.minor);
    for note in &plan.notes {
        let type_ = if note.warning { "Warning" } else { "Normal" };
        events::record_typed(
            ctx,
            events::CRON_JOB,
            &cj,
            type_,
            note.reason,
            &note.message,
        )
        .await;
    }
    delete_jobs(ctx, &jobs_res, &cj, ns, &plan.delete).await;
    let mut last_schedule = cj["status"]["lastScheduleTime"].clone();
    if let Some(start) = &plan.start
        && let Some(job) = start_job(ctx, &jobs_res, &cj, start).await?
    {
        if !plan
            .active
            .iter()
            .any(|r| r["uid"] == job["metadata"]["uid"])
        {
            plan.active.push(reference(&job));
        }
        last_schedule = json!(rfc3339(start.at));
    }
    if let Some(at) = plan.wake {
        ctx.wake_at(
            Task::CronJob {
                ns: ns.into(),
                name: name.into(),
            },
            at,
        );
    }
    let status = json!({
        "active": if plan.active.is_empty() { Value::Null } else { json!(plan.active) },
        "lastScheduleTime": last_schedule,
        "lastSuccessfulTime": plan.last_successful,
    });
    if !differs(&cj["status"], &status) {
        return Ok(());
    }
    merge(
        &ctx.server,
        &res,
        ns,
        name,
        &json!({"status": status}),
        true,
    )
    .await
}

async fn delete_jobs(ctx: &Ctx, res: &Arc<Resource>, cj: &Value, ns: &str, names: &[String]) {
    let opts = json!({"propagationPolicy": "Background"});
    for name in names {
        match ctx.server.delete(res, Some(ns), name, &opts, false).await {
            Ok(_) => {
                let message = format!("Deleted job {name}");
                events::record(ctx, events::CRON_JOB, cj, "SuccessfulDelete", &message).await;
            }
            Err(e) if e.reason == "NotFound" => {}
            Err(e) => tracing::debug!(error = %e, job = name, "cronjob: delete"),
        }
    }
}

/// Creates the Job of `start`; the Job to list as active (None when someone else's Job of that
/// name is there, or ours is already listed).
async fn start_job(
    ctx: &Ctx,
    res: &Arc<Resource>,
    cj: &Value,
    start: &Start,
) -> Result<Option<Value>, ApiError> {
    let ns = cj["metadata"]["namespace"].as_str().unwrap_or("default");
    match ctx
        .server
        .create(res, Some(ns), new_job(cj, start), &super::opts())
        .await
    {
        Ok(written) => {
            let message = format!("Created job {}", start.name);
            events::record(ctx, events::CRON_JOB, cj, "SuccessfulCreate", &message).await;
            Ok(Some(written.object))
        }
        Err(e) if e.reason == "AlreadyExists" => {
            let job = ctx.server.get(res, Some(ns), &start.name).await?;
            let ours = job
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|rs| {
                    rs.iter()
                        .any(|r| r["controller"] == true && r["uid"] == super::uid(cj))
                });
            Ok(ours.then_some(job))
        }
        Err(e) => {
            let message = format!("Error creating job: {}", e.message);
            events::record_typed(
                ctx,
                events::CRON_JOB,
                cj,
                "Warning",
                "FailedCreate",
                &message,
            )
            .await;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests;
