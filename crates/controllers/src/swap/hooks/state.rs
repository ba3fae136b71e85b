//! Where one hook call stands, as pure functions of its status entry and the time: whether a
//! call is due, and what a call's result does to the entry (allowed, denied, a later attempt,
//! failed or ignored by the hook's failure policy). No I/O: the times are given.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use rotor_api::hook::{MAX_RETRY_AFTER_ANSWERS, MAX_RETRY_AFTER_SECONDS};
use rotor_api::{
    ClusterSwapStatus, HookAnswer, HookFailurePolicy, HookPoint, HookState, HookStatus,
    LifecycleHook,
};

use super::job::Answer;
use super::webhook::{Called, HookReply};

/// The backoff after failed calls is capped here.
const MAX_BACKOFF_SECONDS: u32 = 60;

/// Whether a hook's call is due.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Due {
    /// Call it now.
    Call,
    /// The next attempt is this far off.
    Wait(Duration),
    /// Decided: nothing more to call.
    Over(HookState),
}

/// What a call did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    Allowed,
    /// Denied, with the receiver's reason.
    Denied(String),
    /// Called again after this (a retry-after answer, or a backoff after a failed call).
    Later(Duration),
    /// No usable answer under `failurePolicy: Fail`: why.
    Failed(String),
    /// No usable answer under `failurePolicy: Ignore`: why.
    Ignored(String),
}

/// Whether `entry`'s call is due at `now`.
pub(super) fn due(entry: &HookStatus, now: Timestamp) -> Due {
    if entry.state.is_final() {
        return Due::Over(entry.state);
    }
    match &entry.next_attempt_at {
        Some(at) if at.0 > now => {
            Due::Wait(at.0.duration_since(now).try_into().unwrap_or_default())
        }
        _ => Due::Call,
    }
}

/// Records a call made at `now` that got `called`, and says what it means.
pub(super) fn record(
    entry: &mut HookStatus,
    hook: &LifecycleHook,
    called: &Called,
    now: Timestamp,
) -> Outcome {
    entry.attempts += 1;
    entry.last_called_at = Some(Time(now));
    entry.next_attempt_at = None;
    match called {
        Called::Answered(HookReply::Allow) => {
            entry.last_answer = Some(HookAnswer::Allow);
            entry.state = HookState::Allowed;
            entry.message.clear();
            Outcome::Allowed
        }
        Called::Answered(HookReply::Deny { reason }) => {
            entry.last_answer = Some(HookAnswer::Deny);
            entry.state = HookState::Denied;
            entry.message = reason.clone();
            Outcome::Denied(reason.clone())
        }
        Called::Answered(HookReply::RetryAfter { seconds }) => {
            entry.last_answer = Some(HookAnswer::RetryAfter);
            entry.retry_afters += 1;
            if entry.retry_afters > MAX_RETRY_AFTER_ANSWERS {
                let why = format!("asked to retry later {} times", entry.retry_afters);
                return give_up(entry, hook, why);
            }
            let seconds = (*seconds).clamp(1, MAX_RETRY_AFTER_SECONDS);
            entry.message = format!("the receiver asked to be called again in {seconds} s");
            later(entry, now, seconds)
        }
        Called::Transient(why) => {
            entry.last_answer = Some(HookAnswer::Error);
            entry.failures += 1;
            if entry.failures > hook.retries {
                let why = format!("{why} ({})", failed_calls(entry.failures));
                return give_up(entry, hook, why);
            }
            entry.message = why.clone();
            later(entry, now, backoff_seconds(entry.failures))
        }
        Called::Final(why) => {
            entry.last_answer = Some(HookAnswer::Error);
            entry.failures += 1;
            give_up(entry, hook, why.clone())
        }
    }
}

/// Records what a Job hook's Job answered (`Err`: it could not run, or ran past its timeout)
/// and says what it means.
pub(super) fn job_answered(
    entry: &mut HookStatus,
    hook: &LifecycleHook,
    answer: &Result<Answer, String>,
) -> Outcome {
    entry.attempts = entry.attempts.max(1);
    let job = entry.job.clone().unwrap_or_default();
    match answer {
        Ok(Answer::Running) => Outcome::Later(Duration::ZERO),
        Ok(Answer::Complete) => {
            entry.last_answer = Some(HookAnswer::Allow);
            entry.state = HookState::Allowed;
            entry.message.clear();
            Outcome::Allowed
        }
        Ok(Answer::Failed(why)) => {
            entry.last_answer = Some(HookAnswer::Deny);
            entry.state = HookState::Denied;
            entry.message = format!("Job {job} failed ({why})");
            Outcome::Denied(entry.message.clone())
        }
        Err(why) => {
            entry.last_answer = Some(HookAnswer::Error);
            entry.failures += 1;
            give_up(entry, hook, why.clone())
        }
    }
}

fn failed_calls(n: u32) -> String {
    match n {
        1 => "1 call failed".into(),
        n => format!("{n} calls failed"),
    }
}

/// Seconds before the call after `failures` failed ones: 1, 2, 4, … up to a minute.
pub(super) fn backoff_seconds(failures: u32) -> u32 {
    1u32.checked_shl(failures.saturating_sub(1))
        .unwrap_or(MAX_BACKOFF_SECONDS)
        .min(MAX_BACKOFF_SECONDS)
}

/// The next attempt `seconds` after `now`, on a whole second (status keeps whole seconds:
/// rounding up never calls early after a restart).
fn later(entry: &mut HookStatus, now: Timestamp, seconds: u32) -> Outcome {
    let ceil = now.as_second() + i64::from(now.subsec_nanosecond() > 0);
    let at = Timestamp::from_second(ceil + i64::from(seconds)).unwrap_or(now);
    entry.next_attempt_at = Some(Time(at));
    Outcome::Later(at.duration_since(now).try_into().unwrap_or_default())
}

fn give_up(entry: &mut HookStatus, hook: &LifecycleHook, why: String) -> Outcome {
    entry.message = why.clone();
    match hook.failure_policy {
        HookFailurePolicy::Fail => {
            entry.state = HookState::Failed;
            Outcome::Failed(why)
        }
        HookFailurePolicy::Ignore => {
            entry.state = HookState::Ignored;
            Outcome::Ignored(why)
        }
    }
}

/// The status entry of `hook` at `point` (and `step`), added when it has none.
pub(super) fn entry<'s>(
    status: &'s mut ClusterSwapStatus,
    hook: &str,
    point: HookPoint,
    step: Option<u32>,
) -> &'s mut HookStatus {
    let found = status
        .hooks
        .iter()
        .position(|e| e.name == hook && e.point == point && e.step == step);
    let i = found.unwrap_or_else(|| {
        status.hooks.push(HookStatus {
            name: hook.to_string(),
            point,
            step,
            ..Default::default()
        });
        status.hooks.len() - 1
    });
    &mut status.hooks[i]
}

#[cfg(test)]
mod tests {
    use rotor_api::{SecretKeyRef, WebhookHook};

    use super::*;

    fn hook(retries: u32, failure_policy: HookFailurePolicy) -> LifecycleHook {
        LifecycleHook {
            name: "smoke".into(),
            point: HookPoint::AfterMigration,
            webhook: Some(WebhookHook {
                url: "https://x".into(),
                secret_ref: SecretKeyRef::default(),
            }),
            job: None,
            timeout_seconds: Some(1),
            retries,
            failure_policy,
        }
    }

    fn at(seconds: i64, nanos: i32) -> Timestamp {
        Timestamp::new(seconds, nanos).unwrap()
    }

    fn fresh() -> HookStatus {
        HookStatus {
            name: "smoke".into(),
            ..Default::default()
        }
    }

    #[test]
    fn an_allow_or_a_deny_decides_for_good() {
        let (h, t) = (hook(3, HookFailurePolicy::Fail), at(1000, 0));
        let mut e = fresh();
        assert_eq!(due(&e, t), Due::Call);
        assert_eq!(
            record(&mut e, &h, &Called::Answered(HookReply::Allow), t),
            Outcome::Allowed
        );
        assert_eq!(
            (e.state, e.attempts, e.last_answer),
            (HookState::Allowed, 1, Some(HookAnswer::Allow))
        );
        assert_eq!(due(&e, t), Due::Over(HookState::Allowed));

        let mut e = fresh();
        let deny = Called::Answered(HookReply::Deny {
            reason: "cache cold".into(),
        });
        assert_eq!(
            record(&mut e, &h, &deny, t),
            Outcome::Denied("cache cold".into())
        );
        assert_eq!(
            (e.state, e.message.as_str()),
            (HookState::Denied, "cache cold")
        );
        assert_eq!(due(&e, at(5000, 0)), Due::Over(HookState::Denied));
    }

    #[test]
    fn a_retry_after_waits_on_whole_seconds_then_calls_again() {
        let h = hook(0, HookFailurePolicy::Fail);
        let mut e = fresh();
        let t = at(1000, 400_000_000);
        let later = record(
            &mut e,
            &h,
            &Called::Answered(HookReply::RetryAfter { seconds: 2 }),
            t,
        );
        // Rounded up to the next whole second, then 2 s: never early after a restart.
        assert_eq!(later, Outcome::Later(Duration::from_millis(2600)));
        assert_eq!(e.next_attempt_at, Some(Time(at(1003, 0))));
        assert_eq!(
            (e.state, e.retry_afters, e.failures),
            (HookState::Pending, 1, 0)
        );
        assert_eq!(
            due(&e, at(1002, 999_000_000)),
            Due::Wait(Duration::from_millis(1))
        );
        assert_eq!(due(&e, at(1003, 0)), Due::Call);
        // A retry-after spends no retries; too many of them fail the hook.
        for _ in 1..MAX_RETRY_AFTER_ANSWERS {
            let o = record(
                &mut e,
                &h,
                &Called::Answered(HookReply::RetryAfter { seconds: 0 }),
                t,
            );
            assert!(matches!(o, Outcome::Later(_)), "{o:?}");
        }
        let o = record(
            &mut e,
            &h,
            &Called::Answered(HookReply::RetryAfter { seconds: 1 }),
            t,
        );
        assert!(matches!(o, Outcome::Failed(_)), "{o:?}");
        assert_eq!(e.state, HookState::Failed);
    }

    #[test]
    fn failed_calls_back_off_until_the_retries_are_spent() {
        let h = hook(2, HookFailurePolicy::Fail);
        let (mut e, t) = (fresh(), at(1000, 0));
        let busy = Called::Transient("HTTP 503".into());
        assert_eq!(
            record(&mut e, &h, &busy, t),
            Outcome::Later(Duration::from_secs(1))
        );
        assert_eq!(
            record(&mut e, &h, &busy, t),
            Outcome::Later(Duration::from_secs(2))
        );
        let Outcome::Failed(why) = record(&mut e, &h, &busy, t) else {
            panic!("retries spent: {e:?}");
        };
        assert_eq!(why, "HTTP 503 (3 calls failed)");
        assert_eq!((e.state, e.attempts, e.failures), (HookState::Failed, 3, 3));
        assert_eq!(backoff_seconds(1), 1);
        assert_eq!(backoff_seconds(4), 8);
        assert_eq!(backoff_seconds(7), 60);
        assert_eq!(backoff_seconds(40), 60);
    }

    #[test]
    fn a_final_error_follows_the_failure_policy_at_once() {
        let refused = Called::Final("HTTP 404".into());
        let (t, mut e) = (at(1000, 0), fresh());
        assert_eq!(
            record(&mut e, &hook(5, HookFailurePolicy::Ignore), &refused, t),
            Outcome::Ignored("HTTP 404".into())
        );
        assert_eq!(due(&e, t), Due::Over(HookState::Ignored));
        let mut e = fresh();
        assert_eq!(
            record(&mut e, &hook(5, HookFailurePolicy::Fail), &refused, t),
            Outcome::Failed("HTTP 404".into())
        );
    }

    #[test]
    fn a_jobs_answer_allows_denies_or_follows_the_failure_policy() {
        let h = hook(0, HookFailurePolicy::Fail);
        let mut e = HookStatus {
            job: Some("rotor-smoke-x".into()),
            ..fresh()
        };
        assert_eq!(
            job_answered(&mut e, &h, &Ok(Answer::Complete)),
            Outcome::Allowed
        );
        assert_eq!((e.state, e.attempts), (HookState::Allowed, 1));
        let failed = Ok(Answer::Failed("BackoffLimitExceeded".into()));
        let Outcome::Denied(why) = job_answered(&mut e, &h, &failed) else {
            panic!("a failed Job denies: {e:?}");
        };
        assert_eq!(why, "Job rotor-smoke-x failed (BackoffLimitExceeded)");
        assert_eq!(e.last_answer, Some(HookAnswer::Deny));
        let late = Err("the Job did not finish within 5s".to_string());
        let mut e = fresh();
        assert_eq!(
            job_answered(&mut e, &h, &late),
            Outcome::Failed("the Job did not finish within 5s".into())
        );
        let mut e = fresh();
        let ignore = hook(0, HookFailurePolicy::Ignore);
        assert!(matches!(
            job_answered(&mut e, &ignore, &late),
            Outcome::Ignored(_)
        ));
        assert_eq!(e.state, HookState::Ignored);
    }

    #[test]
    fn entries_are_one_per_hook_point_and_step() {
        let mut status = ClusterSwapStatus::default();
        entry(&mut status, "a", HookPoint::AfterEachStep, Some(0)).attempts = 1;
        entry(&mut status, "a", HookPoint::AfterEachStep, Some(1));
        entry(&mut status, "a", HookPoint::AfterEachStep, Some(0)).attempts += 1;
        entry(&mut status, "a", HookPoint::AfterMigration, None);
        assert_eq!(status.hooks.len(), 3);
        assert_eq!(status.hooks[0].attempts, 2);
    }
}
