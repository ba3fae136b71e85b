//! A Job hook's calls to its member cluster. A reconcile never waits for the Job: one look
//! creates it (once: the name is derived, a 409 means a restarted controller's Job is there) or
//! reads its conditions, and the swap is polled again. Once the Job answered, the answer is
//! written to status first; the next reconcile deletes the Job (propagation Background) and
//! only then acts on the answer, so a crash in between never loses an answer or makes a
//! second Job.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use rotor_api::{
    Cluster, ClusterSwapStatus, HookAnswer, HookCluster, HookStatus, JobHook, LifecycleHook, Reason,
};

use super::job::{self, Answer};
use super::state::{self, Outcome};
use super::{At, Reconcile};
use crate::swap::step::Step;

/// What one look at a Job hook's Job found.
enum Look {
    /// Created now, or found running.
    Running,
    /// It answered: record this.
    Done(Answer),
    /// It is past the hook's timeout.
    TimedOut,
    /// It could not be made or read; why (tried again at the next look).
    Unreachable(String),
    /// It cannot answer: the member refused to make it, or it was deleted before it
    /// finished; why (not tried again).
    Refused(String),
}

/// What one look works on: the member's Jobs, the hook, its Job's spec and name, the time.
#[derive(Clone, Copy)]
struct JobCall<'a> {
    api: &'a Api<Job>,
    hook: &'a LifecycleHook,
    spec: &'a JobHook,
    name: &'a str,
    now: Timestamp,
}

impl Reconcile<'_> {
    /// One look at `hook`'s Job at `at`: the step to take (wait for it, or record its answer).
    pub(super) async fn look_at_job(
        &self,
        cluster: &Cluster,
        status: &mut ClusterSwapStatus,
        hook: &LifecycleHook,
        spec: &JobHook,
        at: At,
    ) -> Step {
        let uid = self.swap.metadata.uid.as_deref().unwrap_or(&self.name);
        let name = job::job_name(uid, &hook.name, at.point, at.step);
        let now = Timestamp::now();
        let look = match self.job_api(cluster, status, spec).await {
            Ok(api) => {
                let call = JobCall {
                    api: &api,
                    hook,
                    spec,
                    name: &name,
                    now,
                };
                let entry = state::entry(status, &hook.name, at.point, at.step);
                self.look(&call, entry).await
            }
            Err(why) => Look::Unreachable(why),
        };
        let entry = state::entry(status, &hook.name, at.point, at.step);
        let timed_out = entry.last_called_at.as_ref().is_some_and(|t| {
            now.duration_since(t.0).as_secs() >= i64::from(hook.timeout_seconds())
        });
        let look = match look {
            Look::Running | Look::Unreachable(_) if timed_out => Look::TimedOut,
            look => look,
        };
        let outcome = match look {
            Look::TimedOut => state::job_answered(entry, hook, &Look::timeout(hook)),
            Look::Refused(why) => state::job_answered(entry, hook, &Err(why)),
            Look::Done(answer) => state::job_answered(entry, hook, &Ok(answer)),
            Look::Running => return self.job_running(hook, at, &name),
            Look::Unreachable(why) => {
                let why = format!("hook {} at {}: Job {name}: {why}", hook.name, at.point);
                return Step::hold(Reason::HookWaiting, why, self.ctx.settings.poll_interval);
            }
        };
        self.ctx.swaps.remember_hook(&self.name, entry);
        let answer = entry.last_answer.unwrap_or(HookAnswer::Error);
        self.ctx.metrics.hook_called(at.point, answer);
        tracing::info!(swap = %self.name, hook = %hook.name, point = %at.point, %answer, job = %name, "hook Job answered");
        let logs = self.job_logs(cluster, status, spec, &name).await;
        self.job_answered(hook, at, &name, outcome, &logs).await
    }

    /// Reads the Job, or creates it when there is none yet (recording that in `entry`).
    async fn look(&self, call: &JobCall<'_>, entry: &mut HookStatus) -> Look {
        let name = call.name;
        match call.api.get_opt(name).await {
            Err(e) => Look::Unreachable(e.to_string()),
            Ok(Some(found)) => {
                entry.job = Some(name.to_string());
                match job::answer(&found) {
                    Answer::Running if started_before(&found, call.hook, call.now) => {
                        Look::TimedOut
                    }
                    answer => Look::Done(answer).or_running(),
                }
            }
            // Recorded as made, and gone before it answered: someone else deleted it.
            Ok(None) if entry.job.is_some() => {
                Look::Refused(format!("the Job {name} was deleted before it finished"))
            }
            Ok(None) => self.create_job(call, entry).await,
        }
    }

    async fn create_job(&self, call: &JobCall<'_>, entry: &mut HookStatus) -> Look {
        let JobCall {
            api,
            hook,
            spec,
            name,
            now,
        } = *call;
        if entry.last_called_at.is_none() {
            entry.last_called_at = Some(rotor_api::Time(now));
        }
        let manifest = match job::manifest(spec, name, &self.name, &hook.name) {
            Ok(m) => m,
            Err(e) => return Look::Refused(format!("the template is not a Job: {e}")),
        };
        match api.create(&PostParams::default(), &manifest).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(kube::Error::Api(s)) if (400..500).contains(&s.code) && s.code != 429 => {
                return Look::Refused(format!("the Job {name} was refused: {}", s.message));
            }
            Err(e) => return Look::Unreachable(e.to_string()),
        }
        entry.job = Some(name.to_string());
        entry.attempts = 1;
        self.ctx.swaps.remember_hook(&self.name, entry);
        let note = format!(
            "hook {} started Job {name} in {} (namespace {})",
            hook.name, spec.cluster, spec.namespace
        );
        self.event(false, Reason::HookCalled, note).await;
        Look::Running
    }

    fn job_running(&self, hook: &LifecycleHook, at: At, name: &str) -> Step {
        let why = format!("hook {} at {}: Job {name} running", hook.name, at.point);
        Step::wait(Reason::HookWaiting, why, self.ctx.settings.poll_interval)
    }

    /// The Events of an answer (with the Job's last log lines), then the answer is written;
    /// the swap acts on it at the next reconcile, after the Job is deleted.
    async fn job_answered(
        &self,
        hook: &LifecycleHook,
        at: At,
        name: &str,
        outcome: Outcome,
        logs: &str,
    ) -> Step {
        let (h, point) = (&hook.name, at.point);
        let logs = match logs {
            "" => String::new(),
            logs => format!("; last log lines:\n{logs}"),
        };
        let (warning, reason, note) = match outcome {
            Outcome::Allowed => (
                false,
                Reason::HookAllowed,
                format!("hook {h} allowed at {point}: Job {name} complete{logs}"),
            ),
            Outcome::Denied(why) => (
                true,
                Reason::HookDenied,
                format!("hook {h} denied at {point}: {why}{logs}"),
            ),
            Outcome::Failed(why) => (
                true,
                Reason::HookFailed,
                format!("hook {h} failed at {point}: {why} (failurePolicy: Fail){logs}"),
            ),
            Outcome::Ignored(why) => (
                true,
                Reason::HookFailed,
                format!(
                    "hook {h} failed at {point}: {why}; the swap goes on (failurePolicy: Ignore){logs}"
                ),
            ),
            Outcome::Later(after) => return Step::Requeue(after),
        };
        self.event(warning, reason, note).await;
        Step::Record(self.ctx.settings.poll_interval)
    }

    /// Deletes the Job of `entry` (gone already is fine) and forgets it: its answer is in
    /// status. Background propagation: its Pods go after it.
    pub(super) async fn delete_job(
        &self,
        cluster: &Cluster,
        status: &mut ClusterSwapStatus,
        spec: &JobHook,
        entry_at: (&str, At),
    ) -> Result<(), String> {
        let (hook, at) = entry_at;
        let name = state::entry(status, hook, at.point, at.step).job.clone();
        let Some(name) = name else { return Ok(()) };
        let api = self.job_api(cluster, status, spec).await?;
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.to_string()),
        }
        state::entry(status, hook, at.point, at.step).job = None;
        Ok(())
    }

    async fn job_api(
        &self,
        cluster: &Cluster,
        status: &ClusterSwapStatus,
        spec: &JobHook,
    ) -> Result<Api<Job>, String> {
        let client = self.job_client(cluster, status, spec).await?;
        Ok(Api::namespaced(client, &spec.namespace))
    }

    async fn job_client(
        &self,
        cluster: &Cluster,
        status: &ClusterSwapStatus,
        spec: &JobHook,
    ) -> Result<kube::Client, String> {
        let instance = match spec.cluster {
            HookCluster::Green => self.green(status),
            HookCluster::Blue => self.blue(status),
        }
        .map_err(|e| e.to_string())?;
        self.member(cluster, &instance)
            .await
            .map_err(|e| e.to_string())
    }

    /// The last lines of the Job's Pods' logs (oldest Pod first), bounded; empty when they
    /// cannot be read (the answer does not depend on them).
    async fn job_logs(
        &self,
        cluster: &Cluster,
        status: &ClusterSwapStatus,
        spec: &JobHook,
        name: &str,
    ) -> String {
        let Ok(client) = self.job_client(cluster, status, spec).await else {
            return String::new();
        };
        let pods: Api<Pod> = Api::namespaced(client, &spec.namespace);
        let selector = format!("batch.kubernetes.io/job-name={name}");
        let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await else {
            return String::new();
        };
        let mut items = list.items;
        items.sort_by(|a, b| {
            a.metadata
                .creation_timestamp
                .cmp(&b.metadata.creation_timestamp)
        });
        let params = LogParams {
            tail_lines: Some(job::LOG_TAIL_LINES as i64),
            limit_bytes: Some(2048),
            ..LogParams::default()
        };
        let mut logs = Vec::new();
        for pod in items {
            let pod_name = pod.metadata.name.unwrap_or_default();
            if let Ok(text) = pods.logs(&pod_name, &params).await {
                logs.push(text);
            }
        }
        job::log_tail(&logs)
    }
}

impl Look {
    /// A Job past the hook's timeout: a failure under the hook's failure policy.
    fn timeout(hook: &LifecycleHook) -> Result<Answer, String> {
        Err(format!(
            "the Job did not finish within {}s",
            hook.timeout_seconds()
        ))
    }

    fn or_running(self) -> Self {
        match self {
            Look::Done(Answer::Running) => Look::Running,
            other => other,
        }
    }
}

/// Whether `job` was created longer ago than the hook's timeout.
fn started_before(job: &Job, hook: &LifecycleHook, now: Timestamp) -> bool {
    job.metadata
        .creation_timestamp
        .as_ref()
        .is_some_and(|t| now.duration_since(t.0).as_secs() >= i64::from(hook.timeout_seconds()))
}
