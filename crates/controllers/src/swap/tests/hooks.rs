//! Lifecycle hooks decided step by step: a deny before provisioning rolls back before the
//! cloud is asked for anything; a hook whose Secret is missing fails at once under
//! `failurePolicy: Fail`, naming the Secret; a hook waiting for its next attempt (as a
//! restarted controller finds it in status) is not called before it is due, and is called once
//! it is. The receiver verifies every call's signature.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::HeaderMap;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use rotor_api::{
    ClusterSwapStatus, HookAnswer, HookFailurePolicy, HookPoint, HookState, HookStatus,
    LifecycleHook, Phase, Reason, SecretKeyRef, WebhookHook,
};

use super::super::hooks::signature;
use super::super::hooks::{HookReply, HookRequest};
use super::super::step::Step;
use super::{Harness, harness, status_in, strategy};

const KEY: &[u8] = b"the-teams-shared-key";

/// A receiver answering `reply` to every call whose signature holds: its URL, and the calls.
async fn receiver(reply: HookReply) -> (String, Arc<Mutex<Vec<HookRequest>>>) {
    #[derive(Clone)]
    struct Rx {
        reply: HookReply,
        got: Arc<Mutex<Vec<HookRequest>>>,
    }
    async fn take(
        State(rx): State<Rx>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> (axum::http::StatusCode, String) {
        let header = headers
            .get(signature::HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let now = Timestamp::now().as_second();
        if signature::verify(KEY, header, &body, now, 300).is_err() {
            return (axum::http::StatusCode::UNAUTHORIZED, String::new());
        }
        let request: HookRequest = serde_json::from_slice(&body).expect("a HookRequest");
        rx.got.lock().unwrap().push(request);
        let answer = serde_json::to_string(&rx.reply).unwrap();
        (axum::http::StatusCode::OK, answer)
    }
    let got = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(take))
        .with_state(Rx {
            reply,
            got: got.clone(),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

fn secret_ref(name: &str) -> SecretKeyRef {
    SecretKeyRef {
        namespace: None,
        name: name.into(),
        key: "key".into(),
    }
}

impl Harness {
    /// The signing key in Secret `rotor-system/hooks`.
    async fn store_key(&self) {
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "rotor-system"}}))
                .unwrap();
        let _ = Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await;
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "hooks", "namespace": "rotor-system"},
            "stringData": {"key": String::from_utf8_lossy(KEY)},
        }))
        .unwrap();
        Api::<Secret>::namespaced(self.client.clone(), "rotor-system")
            .create(&PostParams::default(), &secret)
            .await
            .expect("Secret");
    }
}

fn hook(point: HookPoint, url: &str, secret: &str) -> LifecycleHook {
    LifecycleHook {
        name: "team".into(),
        point,
        webhook: Some(WebhookHook {
            url: url.into(),
            secret_ref: secret_ref(secret),
        }),
        job: None,
        timeout_seconds: Some(5),
        retries: 0,
        failure_policy: HookFailurePolicy::Fail,
    }
}

#[tokio::test]
async fn a_deny_before_provisioning_rolls_back_before_the_cloud_is_asked() {
    let h = harness(std::time::Duration::from_secs(3600)).await;
    h.store_key().await;
    let deny = HookReply::Deny {
        reason: "change freeze".into(),
    };
    let (url, got) = receiver(deny).await;
    let mut s = strategy(vec![50, 100]);
    s.hooks = vec![hook(HookPoint::BeforeProvisioning, &url, "hooks")];
    let mut status = status_in(Phase::Provisioning);
    status.green_instance = None;
    let swap = h.swap("s", s, status).await;
    let (step, status) = h.decide(&swap).await;
    match &step {
        Step::RollBack { reason, message } => {
            assert_eq!(*reason, Reason::HookDenied);
            assert_eq!(
                message,
                "hook team denied at BeforeProvisioning: change freeze"
            );
        }
        other => panic!("a rollback, not {other:?}"),
    }
    let calls = got.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].point, calls[0].phase, calls[0].green.as_deref()),
        (HookPoint::BeforeProvisioning, Phase::Provisioning, None)
    );
    assert_eq!(status.hooks[0].state, HookState::Denied);
    assert_eq!(status.green_instance, None, "green was never asked for");
}

#[tokio::test]
async fn a_hook_whose_secret_is_missing_fails_at_once_naming_the_secret() {
    let h = harness(std::time::Duration::from_secs(3600)).await;
    let (url, got) = receiver(HookReply::Allow).await;
    let mut s = strategy(vec![50, 100]);
    s.hooks = vec![hook(HookPoint::BeforeFirstTrafficStep, &url, "missing")];
    let swap = h.swap("s", s, status_in(Phase::ShiftingTraffic)).await;
    let (step, status) = h.decide(&swap).await;
    match &step {
        Step::RollBack { reason, message } => {
            assert_eq!(*reason, Reason::HookFailed);
            assert_eq!(
                message,
                "hook team failed at BeforeFirstTrafficStep: Secret rotor-system/missing, key \
                 \"key\": no such Secret (failurePolicy: Fail)"
            );
            assert!(!message.contains(&url), "{message}");
        }
        other => panic!("a rollback, not {other:?}"),
    }
    assert!(got.lock().unwrap().is_empty(), "nothing was sent unsigned");
    assert_eq!(
        (status.hooks[0].state, status.hooks[0].last_answer),
        (HookState::Failed, Some(HookAnswer::Error))
    );
}

/// A controller that starts over finds the hook waiting in status: it waits for the time
/// status says, without calling; once that has passed it calls (attempt 2) and goes on.
#[tokio::test]
async fn a_waiting_hook_resumes_from_status_after_a_restart() {
    let h = harness(std::time::Duration::from_secs(3600)).await;
    h.store_key().await;
    let (url, got) = receiver(HookReply::Allow).await;
    let mut s = strategy(vec![50, 100]);
    s.hooks = vec![hook(HookPoint::BeforeFirstTrafficStep, &url, "hooks")];
    let waiting = |next: Timestamp| {
        let mut status: ClusterSwapStatus = status_in(Phase::ShiftingTraffic);
        status.hooks = vec![HookStatus {
            name: "team".into(),
            point: HookPoint::BeforeFirstTrafficStep,
            attempts: 1,
            retry_afters: 1,
            last_answer: Some(HookAnswer::RetryAfter),
            next_attempt_at: Some(Time(next)),
            ..Default::default()
        }];
        status
    };
    let later = Timestamp::now() + std::time::Duration::from_secs(3600);
    let swap = h.swap("s", s.clone(), waiting(later)).await;
    let (step, _) = h.decide(&swap).await;
    match &step {
        Step::Wait { reason, after, .. } => {
            assert_eq!(*reason, Reason::HookWaiting);
            assert!(*after > std::time::Duration::from_secs(3500), "{after:?}");
        }
        other => panic!("a wait, not {other:?}"),
    }
    assert!(
        got.lock().unwrap().is_empty(),
        "not called before it is due"
    );

    let due = Timestamp::now() - std::time::Duration::from_secs(1);
    let swap = h.swap("t", s, waiting(due)).await;
    let (step, status) = h.decide(&swap).await;
    assert!(matches!(step, Step::Record(_)), "{step:?}");
    assert_eq!(got.lock().unwrap()[0].attempt, 2);
    assert_eq!(status.hooks[0].state, HookState::Allowed);
    // Recorded, the next step goes on to the first traffic step.
    let mut allowed = h.fresh_swap("t").await;
    allowed.status = Some(status);
    let (step, _) = h.decide(&allowed).await;
    assert!(
        matches!(step, Step::Requeue(_)),
        "the first step is applied: {step:?}"
    );
    assert_eq!(got.lock().unwrap().len(), 1, "called once");
}
