//! Lifecycle hooks (`strategy.hooks`): at each named point the phase asks [`Reconcile::hooks_at`]
//! whether it may go on. Each hook at the point is called in turn, at most one call per
//! reconcile, each bounded by the hook's timeout; what the call got goes into the swap's
//! status (`status.hooks`) before anything else happens, so a wait for the next attempt is a
//! requeue (never a sleep) and survives a restart, and a point's hook is not called again once
//! it answered for good. A deny (or a failure under `failurePolicy: Fail`) rolls the swap back.
//!
//! Delivery is at least once: a call whose answer was not recorded (the process stopped, the
//! status write lost a race) is made again, with the same `attempt` number or the next. A Job
//! hook's Job is made once: its name is derived, and a restarted controller finds it
//! ([`run`]).

mod run;
mod state;

pub mod job;
pub mod signature;
pub mod webhook;

use std::sync::OnceLock;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use rotor_api::Reason;
use rotor_api::{
    Cluster, ClusterSwapStatus, HookAnswer, HookCluster, HookPoint, HookState, LifecycleHook,
};

use super::Reconcile;
use super::step::Step;
use crate::Error;
use state::{Due, Outcome};
pub use webhook::{HookReply, HookRequest, HookWeights};

/// The point a phase is at: which hooks, which step, where the traffic goes next.
#[derive(Clone, Copy, Debug)]
pub(super) struct At {
    pub point: HookPoint,
    /// The traffic step, for `AfterEachStep`.
    pub step: Option<u32>,
    /// Green's share after the next traffic move, if one follows.
    pub next_weight: Option<u8>,
}

impl At {
    pub(super) fn point(point: HookPoint, next_weight: Option<u8>) -> Self {
        At {
            point,
            step: None,
            next_weight,
        }
    }
}

/// The HTTP client of hook calls: one for the process, built on the first call.
static HTTP: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();

impl Reconcile<'_> {
    /// None when every hook at `at` allowed (or failed under `Ignore`): the phase goes on.
    /// Otherwise the step to take: wait for a hook's next attempt, record a call's answer, or
    /// roll back.
    pub(super) async fn hooks_at(
        &self,
        cluster: &Cluster,
        status: &mut ClusterSwapStatus,
        at: At,
    ) -> Result<Option<Step>, Error> {
        for hook in self.swap.spec.strategy.hooks_at(at.point) {
            let entry = state::entry(status, &hook.name, at.point, at.step);
            if let Some(newer) = self.ctx.swaps.newer_hook(&self.name, entry) {
                *entry = newer;
            }
            let step = match state::due(entry, Timestamp::now()) {
                Due::Over(decided) => self.decided(cluster, status, hook, at, decided).await,
                Due::Wait(after) => Some(waiting(hook, at, entry, after)),
                Due::Call => Some(self.call(cluster, status, hook, at).await),
            };
            if step.is_some() {
                return Ok(step);
            }
        }
        Ok(None)
    }

    /// Deletes the Jobs that hooks in blue still run when the swap rolls back: it no longer
    /// waits for them, and blue stays (a Job in green goes with green, or stays with a green
    /// kept for inspection). Best effort: a delete that fails is tried again at the next
    /// reconcile of the rollback and never holds it. `AfterRollback`'s own Jobs are left alone.
    pub(super) async fn delete_abandoned_jobs(
        &self,
        cluster: &Cluster,
        status: &mut ClusterSwapStatus,
    ) {
        let running: Vec<(String, HookPoint, Option<u32>)> = status
            .hooks
            .iter()
            .filter(|e| e.job.is_some() && e.point != HookPoint::AfterRollback)
            .map(|e| (e.name.clone(), e.point, e.step))
            .collect();
        for (name, point, step) in running {
            let spec = self
                .swap
                .spec
                .strategy
                .hooks
                .iter()
                .find(|h| h.name == name);
            let Some(spec) = spec.and_then(|h| h.job.as_ref()) else {
                continue;
            };
            if spec.cluster != HookCluster::Blue {
                continue;
            }
            let at = At {
                point,
                step,
                next_weight: None,
            };
            if let Err(why) = self.delete_job(cluster, status, spec, (&name, at)).await {
                tracing::warn!(swap = %self.name, hook = %name, %why, "deleting an abandoned hook Job");
            }
        }
    }

    /// A hook that answered for good: None when the phase may go on, else the rollback (or,
    /// for a Job hook whose Job is still there, the wait to delete it first).
    async fn decided(
        &self,
        cluster: &Cluster,
        status: &mut ClusterSwapStatus,
        hook: &LifecycleHook,
        at: At,
        decided: HookState,
    ) -> Option<Step> {
        if let Some(spec) = &hook.job {
            let at_entry = (hook.name.as_str(), at);
            if let Err(why) = self.delete_job(cluster, status, spec, at_entry).await {
                let why = format!(
                    "hook {} at {}: deleting its Job: {why}",
                    hook.name, at.point
                );
                let after = self.ctx.settings.poll_interval;
                return Some(Step::hold(Reason::HookWaiting, why, after));
            }
        }
        if matches!(decided, HookState::Allowed | HookState::Ignored) || !rolls_back(at.point) {
            return None;
        }
        let message = &state::entry(status, &hook.name, at.point, at.step).message;
        Some(match decided {
            HookState::Denied => self.denied(hook, at, message),
            _ => self.failed(hook, at, message),
        })
    }

    /// A hook whose call is due: a webhook is called, a Job hook's Job made or looked at.
    async fn call(
        &self,
        cluster: &Cluster,
        status: &mut ClusterSwapStatus,
        hook: &LifecycleHook,
        at: At,
    ) -> Step {
        if let Some(spec) = &hook.job {
            return self.look_at_job(cluster, status, hook, spec, at).await;
        }
        let outcome = self.call_hook(cluster, status, hook, at).await;
        if let Outcome::Later(after) = outcome {
            let entry = state::entry(status, &hook.name, at.point, at.step);
            return waiting(hook, at, entry, after);
        }
        self.after_call(hook, at, outcome).await
    }

    /// One call of `hook`, recorded in its status entry, counted and told as Events.
    async fn call_hook(
        &self,
        cluster: &Cluster,
        status: &mut ClusterSwapStatus,
        hook: &LifecycleHook,
        at: At,
    ) -> Outcome {
        let attempt = state::entry(status, &hook.name, at.point, at.step).attempts + 1;
        let request = self.request(cluster, status, hook, at, attempt);
        self.event(
            false,
            Reason::HookCalled,
            format!(
                "hook {} called at {} (attempt {attempt})",
                hook.name, at.point
            ),
        )
        .await;
        let called = self.send(hook, &request).await;
        let entry = state::entry(status, &hook.name, at.point, at.step);
        let outcome = state::record(entry, hook, &called, Timestamp::now());
        self.ctx.swaps.remember_hook(&self.name, entry);
        let answer = entry.last_answer.unwrap_or(HookAnswer::Error);
        self.ctx.metrics.hook_called(at.point, answer);
        tracing::info!(swap = %self.name, hook = %hook.name, point = %at.point, %answer, "hook called");
        outcome
    }

    async fn send(&self, hook: &LifecycleHook, request: &HookRequest) -> webhook::Called {
        let http = match HTTP.get_or_init(crate::outbound::http_client) {
            Ok(http) => http,
            Err(e) => return webhook::Called::Transient(e.clone()),
        };
        let Some(spec) = &hook.webhook else {
            return webhook::Called::Final("the hook has no webhook".into());
        };
        let key = match webhook::read_key(&self.ctx.client, &spec.secret_ref).await {
            Ok(key) => key,
            Err(called) => return called,
        };
        let now = Timestamp::now().as_second();
        webhook::call(http, &spec.url, &key, request, now, hook.timeout()).await
    }

    fn request(
        &self,
        cluster: &Cluster,
        status: &ClusterSwapStatus,
        hook: &LifecycleHook,
        at: At,
        attempt: u32,
    ) -> HookRequest {
        HookRequest {
            api_version: webhook::API_VERSION.into(),
            kind: webhook::KIND.into(),
            hook: hook.name.clone(),
            point: at.point,
            cluster: cluster.name_any(),
            swap: self.name.clone(),
            phase: status.phase,
            step: at.step,
            blue: status.blue_instance.clone().unwrap_or_default(),
            green: status.green_instance.clone(),
            weights: HookWeights {
                current: status.green_weight_percent,
                next: at.next_weight,
            },
            attempt,
        }
    }

    /// The step after a call: its answer is written before the swap moves on (the next
    /// reconcile sees the hook decided), a later attempt is waited for, a deny or a failure
    /// rolls back.
    async fn after_call(&self, hook: &LifecycleHook, at: At, outcome: Outcome) -> Step {
        let (name, point) = (&hook.name, at.point);
        let record = Step::Record(self.ctx.settings.poll_interval);
        let (reason, note) = match outcome {
            Outcome::Allowed => {
                let note = format!("hook {name} allowed at {point}");
                self.event(false, Reason::HookAllowed, note).await;
                return record;
            }
            Outcome::Later(after) => {
                let why = format!("hook {name} at {point}: called again later");
                return Step::wait(Reason::HookWaiting, why, after);
            }
            Outcome::Ignored(why) => (
                Reason::HookFailed,
                format!(
                    "hook {name} failed at {point}: {why}; the swap goes on (failurePolicy: Ignore)"
                ),
            ),
            Outcome::Denied(reason) if !rolls_back(point) => (
                Reason::HookDenied,
                format!("hook {name} denied at {point}: {reason}; the swap is rolled back already"),
            ),
            Outcome::Failed(why) if !rolls_back(point) => (
                Reason::HookFailed,
                format!("hook {name} failed at {point}: {why}; the swap is rolled back already"),
            ),
            Outcome::Denied(reason) => return self.denied(hook, at, &reason),
            Outcome::Failed(why) => return self.failed(hook, at, &why),
        };
        self.event(true, reason, note).await;
        record
    }

    /// A deny rolls the swap back.
    fn denied(&self, hook: &LifecycleHook, at: At, reason: &str) -> Step {
        let why = format!("hook {} denied at {}: {reason}", hook.name, at.point);
        Step::roll_back(Reason::HookDenied, why)
    }

    /// A failure under `failurePolicy: Fail` rolls the swap back.
    fn failed(&self, hook: &LifecycleHook, at: At, why: &str) -> Step {
        let why = format!(
            "hook {} failed at {}: {why} (failurePolicy: Fail)",
            hook.name, at.point
        );
        Step::roll_back(Reason::HookFailed, why)
    }
}

/// The wait for `entry`'s next call, `after` from now. The message names the time the call is
/// due (not how long until then), so the condition and its Event change once per wait; a wait
/// after a failed call is a Warning.
fn waiting(
    hook: &LifecycleHook,
    at: At,
    entry: &rotor_api::HookStatus,
    after: std::time::Duration,
) -> Step {
    let due = entry
        .next_attempt_at
        .as_ref()
        .map(|t| t.0.to_string())
        .unwrap_or_default();
    let why = format!(
        "hook {} at {}: next call at {due}; {}",
        hook.name, at.point, entry.message
    );
    if entry.last_answer == Some(HookAnswer::Error) {
        return Step::hold(Reason::HookWaiting, why, after);
    }
    Step::wait(Reason::HookWaiting, why, after)
}

/// Whether a deny or a failure at `point` rolls the swap back: at every point but the one
/// after a rollback, where the answer is only told.
fn rolls_back(point: HookPoint) -> bool {
    point != HookPoint::AfterRollback
}
