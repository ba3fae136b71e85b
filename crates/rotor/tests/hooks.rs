//! Lifecycle hooks end to end: whole swaps on the simulator (fleet, cloud, control plane,
//! controllers, the embedded router under steady load) with webhook hooks whose receiver
//! verifies every call's signature as a team's would. A deny after migration rolls the swap
//! back; a receiver that does not answer follows the hook's failure policy; a retry-after
//! answer delays the swap, which then goes on; a replayed call is refused by the receiver.
//! Zero failed requests throughout: hooks move no traffic themselves.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::eventually;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use rotor::rehearsal::hook_receiver::{self, Answer, HookReceiver, Policy};
use rotor::rehearsal::{Rehearsal, TrafficChoice};
use rotor_api::{
    ClusterSwap, ClusterSwapStatus, HookAnswer, HookFailurePolicy, HookPoint, HookState,
    LifecycleHook, Phase, Reason, SecretKeyRef, SwapStrategy, WebhookHook,
};
use rotor_controllers::swap::hooks::signature;
use rotor_controllers::swap::hooks::{HookReply, HookRequest};
use rotor_traffic::CLIENT_TIMEOUT;
use rotor_traffic::load::Load;

pub(crate) const LIMIT: Duration = Duration::from_secs(90);
pub(crate) const SWAP: &str = "upgrade";
const KEY: &[u8] = b"shared-between-rotor-and-the-team";

pub(crate) async fn rehearsal() -> Rehearsal {
    common::fleet::one_cluster_rehearsal(TrafficChoice::Sim).await
}

fn secret_ref() -> SecretKeyRef {
    SecretKeyRef {
        namespace: None,
        name: "team-hooks".into(),
        key: "signing-key".into(),
    }
}

/// A receiver answering by `policy`, its key stored where the hooks' `secretRef` points.
async fn receiver(r: &Rehearsal, policy: Policy) -> HookReceiver {
    hook_receiver::store_signing_key(&r.client, &secret_ref(), KEY)
        .await
        .expect("Secret");
    HookReceiver::start(KEY, policy).await.expect("receiver")
}

fn hook(name: &str, point: HookPoint, rx: &HookReceiver) -> LifecycleHook {
    LifecycleHook {
        name: name.into(),
        point,
        webhook: Some(WebhookHook {
            url: rx.url.clone(),
            secret_ref: secret_ref(),
        }),
        job: None,
        timeout_seconds: Some(5),
        retries: 2,
        failure_policy: HookFailurePolicy::Fail,
    }
}

pub(crate) async fn create_swap(r: &Rehearsal, hooks: Vec<LifecycleHook>) {
    let strategy = SwapStrategy {
        traffic_steps: vec![10, 50, 100],
        bake_seconds: 1,
        blue_retention_seconds: 1,
        hooks,
        ..Default::default()
    };
    let swap = common::fleet::swap(
        SWAP,
        &r.fleet[0].name_any(),
        rotor_api::SAMPLE_TARGET_VERSION,
        strategy,
    );
    Api::<ClusterSwap>::all(r.client.clone())
        .create(&PostParams::default(), &swap)
        .await
        .expect("swap created");
}

/// The swap's status once `want` holds for it (bounded by [`LIMIT`]).
pub(crate) async fn status_when(
    r: &Rehearsal,
    what: &str,
    want: impl Fn(&ClusterSwapStatus) -> bool,
) -> ClusterSwapStatus {
    let api: Api<ClusterSwap> = Api::all(r.client.clone());
    eventually(LIMIT, what, || async {
        let status = api.get(SWAP).await.ok()?.status?;
        want(&status).then_some(status)
    })
    .await
}

pub(crate) async fn ended(r: &Rehearsal) -> ClusterSwapStatus {
    status_when(r, "the swap to end", |s| s.phase.is_terminal()).await
}

pub(crate) async fn no_failed_requests(load: Load) {
    let report = load.stop().await;
    assert!(report.requests > 50, "{report:?}");
    assert_eq!(report.failed, 0, "{report:?}");
}

pub(crate) fn rollback_of(done: &ClusterSwapStatus) -> (Reason, String) {
    let t = done
        .history
        .iter()
        .find(|t| t.phase == Phase::RollingBack)
        .expect("RollingBack recorded");
    (t.reason, t.message.clone())
}

/// Asserts that no traffic step was applied: green never carried any traffic.
pub(crate) async fn green_got_no_traffic(r: &Rehearsal) {
    let events = common::events_of(r, SWAP).await;
    assert!(
        !events
            .iter()
            .any(|(reason, _, _)| reason == "TrafficStepApplied"),
        "green got traffic: {events:?}"
    );
}

/// Answers `first` to the first call at `point`, Allow to everything else.
fn first_at(point: HookPoint, first: Answer) -> Policy {
    let done = std::sync::atomic::AtomicBool::new(false);
    Box::new(move |req: &HookRequest| {
        if req.point == point && !done.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return first.clone();
        }
        Answer::Reply(HookReply::Allow)
    })
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// A deny after migration rolls the swap back before any traffic moved, naming the hook and
/// its reason; the call the receiver got is signed, complete, and refused when replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_that_denies_after_migration_rolls_the_swap_back() {
    let r = rehearsal().await;
    let blue = r.fleet[0].name_any();
    let deny = Answer::Reply(HookReply::Deny {
        reason: "smoke tests failed: checkout answers 500".into(),
    });
    let rx = receiver(&r, first_at(HookPoint::AfterMigration, deny)).await;
    let load = Load::start(r.app_urls(), 4, CLIENT_TIMEOUT);
    create_swap(&r, vec![hook("smoke", HookPoint::AfterMigration, &rx)]).await;
    let done = ended(&r).await;
    assert_eq!(done.phase, Phase::RolledBack, "{:?}", done.history);
    no_failed_requests(load).await;
    let (reason, message) = rollback_of(&done);
    assert_eq!(reason, Reason::HookDenied);
    assert_eq!(
        message,
        "hook smoke denied at AfterMigration: smoke tests failed: checkout answers 500"
    );
    assert!(
        !done
            .history
            .iter()
            .any(|t| t.phase == Phase::ShiftingTraffic)
    );
    let entry = &done.hooks[0];
    assert_eq!(
        (entry.point, entry.state, entry.attempts, entry.last_answer),
        (
            HookPoint::AfterMigration,
            HookState::Denied,
            1,
            Some(HookAnswer::Deny)
        )
    );

    // What the receiver was told.
    let calls = rx.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = &calls[0];
    assert_eq!(
        (
            call.api_version.as_str(),
            call.kind.as_str(),
            call.hook.as_str()
        ),
        ("rotor.dev/v1alpha1", "HookRequest", "smoke")
    );
    assert_eq!(
        (call.cluster.as_str(), call.swap.as_str()),
        (blue.as_str(), SWAP)
    );
    assert_eq!(
        (call.phase, call.step, call.attempt),
        (Phase::Verifying, None, 1)
    );
    assert_eq!(call.blue, blue);
    assert_eq!(call.green, done.green_instance);
    assert_eq!((call.weights.current, call.weights.next), (0, Some(10)));

    let events = common::events_of(&r, SWAP).await;
    let has = |reason: &str, warning: bool, part: &str| {
        events
            .iter()
            .any(|(r, w, n)| r == reason && *w == warning && n.contains(part))
    };
    assert!(
        has(
            "HookCalled",
            false,
            "hook smoke called at AfterMigration (attempt 1)"
        ),
        "{events:?}"
    );
    assert!(
        has("HookDenied", true, "checkout answers 500"),
        "{events:?}"
    );
    let metrics = r.metrics.encode();
    assert!(
        metrics.contains(r#"rotor_hook_calls_total{point="AfterMigration",answer="Deny"} 1"#),
        "{metrics}"
    );
    let c = Api::<rotor_api::Cluster>::all(r.client.clone())
        .get(&blue)
        .await
        .expect("cluster");
    assert_eq!(
        c.status.unwrap_or_default().active_instance.as_deref(),
        Some(blue.as_str())
    );

    // The signed call, sent again as it was: the receiver refuses the replay.
    let got = rx.received().remove(0);
    let http = reqwest::Client::new();
    let resend = |header: String, body: Vec<u8>| {
        http.post(&rx.url)
            .header(signature::HEADER, header)
            .body(body)
            .send()
    };
    let replayed = resend(got.signature.clone(), got.body.clone())
        .await
        .expect("sent");
    assert_eq!(replayed.status().as_u16(), 409);
    // Signed long ago (as a replay after the tolerance would be): too old. Its timestamp
    // moved forward without the key: the signature no longer matches.
    let old = signature::sign(KEY, unix_now() - 600, &got.body);
    assert_eq!(
        resend(old.clone(), got.body.clone())
            .await
            .expect("sent")
            .status()
            .as_u16(),
        401
    );
    let (_, v1) = old.split_once(',').expect("t=…,v1=…");
    let moved = format!("t={},{v1}", unix_now());
    assert_eq!(
        resend(moved, got.body.clone())
            .await
            .expect("sent")
            .status()
            .as_u16(),
        401
    );
    assert_eq!(rx.calls().len(), 1, "no refused request counts as a call");
}

/// A receiver that never answers in time: under `failurePolicy: Fail` the hook is called
/// once more (one retry) and then rolls the swap back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_that_times_out_under_fail_rolls_the_swap_back() {
    let r = rehearsal().await;
    let hang = Box::new(|_: &HookRequest| Answer::Hang(Duration::from_secs(30)));
    let rx = receiver(&r, hang).await;
    let load = Load::start(r.app_urls(), 4, CLIENT_TIMEOUT);
    let mut slow = hook("warm-caches", HookPoint::BeforeFirstTrafficStep, &rx);
    slow.timeout_seconds = Some(1);
    slow.retries = 1;
    create_swap(&r, vec![slow]).await;
    let done = ended(&r).await;
    assert_eq!(done.phase, Phase::RolledBack, "{:?}", done.history);
    no_failed_requests(load).await;
    let (reason, message) = rollback_of(&done);
    assert_eq!(reason, Reason::HookFailed);
    assert!(
        message
            .starts_with("hook warm-caches failed at BeforeFirstTrafficStep: no answer within 1s")
            && message.ends_with("(2 calls failed) (failurePolicy: Fail)"),
        "{message}"
    );
    assert!(!message.contains(&rx.url), "{message}");
    let entry = &done.hooks[0];
    assert_eq!(
        (entry.state, entry.attempts, entry.failures),
        (HookState::Failed, 2, 2)
    );
    assert_eq!(rx.received().len(), 2);
    green_got_no_traffic(&r).await;
}

/// The same receiver under `failurePolicy: Ignore`: a Warning Event, and the swap succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_that_times_out_under_ignore_lets_the_swap_succeed_with_a_warning() {
    let r = rehearsal().await;
    let hang = Box::new(|_: &HookRequest| Answer::Hang(Duration::from_secs(30)));
    let rx = receiver(&r, hang).await;
    let load = Load::start(r.app_urls(), 4, CLIENT_TIMEOUT);
    let mut slow = hook("warm-caches", HookPoint::BeforeFirstTrafficStep, &rx);
    slow.timeout_seconds = Some(1);
    slow.retries = 0;
    slow.failure_policy = HookFailurePolicy::Ignore;
    create_swap(&r, vec![slow]).await;
    let done = ended(&r).await;
    assert_eq!(done.phase, Phase::Succeeded, "{:?}", done.history);
    no_failed_requests(load).await;
    assert_eq!(done.hooks[0].state, HookState::Ignored);
    let events = common::events_of(&r, SWAP).await;
    assert!(
        events
            .iter()
            .any(|(reason, warning, note)| reason == "HookFailed"
                && *warning
                && note.contains("no answer within 1s (1 call failed)")
                && note.ends_with("the swap goes on (failurePolicy: Ignore)")),
        "{events:?}"
    );
}

/// Every point of a successful swap calls its hook once (after each step: once per step); a
/// retry-after answer before the first traffic step holds the swap, green without traffic,
/// and the hook is called again no sooner than asked, after which the swap goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_answer_delays_then_the_swap_proceeds() {
    let r = rehearsal().await;
    let later = Answer::Reply(HookReply::RetryAfter { seconds: 2 });
    let rx = receiver(&r, first_at(HookPoint::BeforeFirstTrafficStep, later)).await;
    let load = Load::start(r.app_urls(), 4, CLIENT_TIMEOUT);
    let points = [
        HookPoint::BeforeProvisioning,
        HookPoint::AfterMigration,
        HookPoint::BeforeFirstTrafficStep,
        HookPoint::AfterEachStep,
        HookPoint::BeforeBlueDeleted,
        HookPoint::AfterRollback,
    ];
    let hooks = points
        .iter()
        .map(|p| hook(&p.as_str().to_lowercase(), *p, &rx))
        .collect();
    create_swap(&r, hooks).await;
    let waiting = status_when(&r, "the swap to wait for the hook", |s| {
        s.hooks
            .iter()
            .any(|h| h.last_answer == Some(HookAnswer::RetryAfter))
    })
    .await;
    assert_eq!(waiting.green_weight_percent, 0);
    let done = ended(&r).await;
    assert_eq!(done.phase, Phase::Succeeded, "{:?}", done.history);
    no_failed_requests(load).await;

    let received = rx.received();
    let mut calls: BTreeMap<(String, Option<u32>), usize> = BTreeMap::new();
    for req in received.iter().filter_map(|r| r.request.as_ref()) {
        *calls.entry((req.point.to_string(), req.step)).or_default() += 1;
    }
    let want: BTreeMap<(String, Option<u32>), usize> = [
        (("BeforeProvisioning", None), 1),
        (("AfterMigration", None), 1),
        (("BeforeFirstTrafficStep", None), 2),
        (("AfterEachStep", Some(0)), 1),
        (("AfterEachStep", Some(1)), 1),
        (("AfterEachStep", Some(2)), 1),
        (("BeforeBlueDeleted", None), 1),
    ]
    .into_iter()
    .map(|((p, s), n)| ((p.to_string(), s), n))
    .collect();
    assert_eq!(calls, want);
    let before_first: Vec<_> = received
        .iter()
        .filter(|r| {
            r.request
                .as_ref()
                .is_some_and(|q| q.point == HookPoint::BeforeFirstTrafficStep)
        })
        .collect();
    let gap = before_first[1].at.duration_since(before_first[0].at);
    assert!(gap >= Duration::from_secs(2), "called again after {gap:?}");
    assert_eq!(before_first[1].request.as_ref().map(|q| q.attempt), Some(2));
    // The weights each step's hook was told: green's share then, and the next.
    let steps: Vec<(u8, Option<u8>)> = received
        .iter()
        .filter_map(|r| r.request.as_ref())
        .filter(|q| q.point == HookPoint::AfterEachStep)
        .map(|q| (q.weights.current, q.weights.next))
        .collect();
    assert_eq!(steps, [(10, Some(50)), (50, Some(100)), (100, None)]);
    let events = common::events_of(&r, SWAP).await;
    assert!(
        events
            .iter()
            .any(|(reason, _, note)| reason == "HookWaiting"
                && note.contains("hook beforefirsttrafficstep at BeforeFirstTrafficStep")),
        "{events:?}"
    );
}
