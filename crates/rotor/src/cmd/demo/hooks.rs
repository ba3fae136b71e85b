//! `rotor demo --inject hook-deny`: a lifecycle hook on the Rollout's strategy, called after
//! migration, whose receiver (run here, verifying every signature) denies the first call and
//! allows every other; the report counts the calls and shows the denied swap rolled back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rotor::rehearsal::Rehearsal;
use rotor::rehearsal::hook_receiver::{self, Answer, HookReceiver};
use rotor_api::{HookFailurePolicy, HookPoint, LifecycleHook, SecretKeyRef, WebhookHook};
use rotor_controllers::swap::hooks::HookReply;
use serde_json::{Value, json};

use super::critical_path::SwapTiming;

/// The hook's name.
pub(super) const HOOK: &str = "smoke-tests";

/// The swap a hook denied.
pub(super) struct Denied {
    pub swap: String,
    pub cluster: String,
}

/// Starts the receiver, stores its key in a Secret, and gives the hook that calls it.
pub(super) async fn deny_first(r: &Rehearsal) -> anyhow::Result<(HookReceiver, LifecycleHook)> {
    let key = rotor_sim::random_token();
    let secret_ref = SecretKeyRef {
        namespace: None,
        name: "rotor-demo-hooks".into(),
        key: "signing-key".into(),
    };
    hook_receiver::store_signing_key(&r.client, &secret_ref, key.as_bytes()).await?;
    let denied_once = Arc::new(AtomicBool::new(false));
    let policy = Box::new(
        move |request: &rotor_controllers::swap::hooks::HookRequest| {
            if request.point == HookPoint::AfterMigration
                && !denied_once.swap(true, Ordering::SeqCst)
            {
                return Answer::Reply(HookReply::Deny {
                    reason: format!("the demo's smoke tests fail on {}", request.cluster),
                });
            }
            Answer::Reply(HookReply::Allow)
        },
    );
    let receiver = HookReceiver::start(key.as_bytes(), policy).await?;
    let hook = LifecycleHook {
        name: HOOK.into(),
        point: HookPoint::AfterMigration,
        webhook: Some(WebhookHook {
            url: receiver.url.clone(),
            secret_ref,
        }),
        job: None,
        timeout_seconds: Some(5),
        retries: 2,
        failure_policy: HookFailurePolicy::Fail,
    };
    Ok((receiver, hook))
}

/// The swap the receiver denied, once it has.
pub(super) fn denied(receiver: &HookReceiver) -> Option<Denied> {
    receiver
        .received()
        .into_iter()
        .find(|r| matches!(r.answer, Some(HookReply::Deny { .. })))
        .and_then(|r| r.request)
        .map(|request| Denied {
            swap: request.swap,
            cluster: request.cluster,
        })
}

/// The report's hook fields: calls verified, denials, calls refused (a signature that did not
/// hold), and the denied swap with whether it rolled back (from the demo's watch).
pub(super) fn report(
    receiver: Option<&HookReceiver>,
    timings: &BTreeMap<String, SwapTiming>,
) -> Vec<(&'static str, Value)> {
    let received = receiver.map(HookReceiver::received).unwrap_or_default();
    let called = received.iter().filter(|r| r.request.is_some()).count();
    let denied_count = received
        .iter()
        .filter(|r| matches!(r.answer, Some(HookReply::Deny { .. })))
        .count();
    let refused = received.iter().filter(|r| r.request.is_none()).count();
    let denied_swap = receiver.and_then(denied).map(|d| {
        let rolled_back = timings.values().any(|t| {
            t.cluster == d.cluster
                && t.history
                    .iter()
                    .any(|(_, phase, _)| phase == rotor_api::Phase::RolledBack.as_str())
        });
        json!({"swap": d.swap, "cluster": d.cluster, "rolled_back": rolled_back})
    });
    vec![
        ("hooks_called", json!(called)),
        ("hooks_denied", json!(denied_count)),
        ("hooks_refused", json!(refused)),
        ("hook_denied_swap", json!(denied_swap)),
    ]
}
