//! Job hooks end to end: whole swaps on the simulator (fleet, cloud, control plane,
//! controllers, the embedded router under steady load) whose hook is a Kubernetes Job run in
//! green by the simulator's job controller. A Job that completes lets the swap go on; one whose
//! Pods fail past its `backoffLimit` blocks traffic (the swap rolls back before green gets any),
//! its last log line in the Event; a controller restarted while the Job runs finds the same
//! Job and makes no second one. The Pods' exit code, log and run time come from the
//! simulator's annotations (`sim.rotor.dev/exit-code`, `/log`, `/run-seconds`).

use std::collections::BTreeSet;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Event;
use kube::api::Api;
use rotor::rehearsal::{APP_NAMESPACE, Rehearsal};
use rotor_api::{
    ClusterSwap, ClusterSwapStatus, HookAnswer, HookCluster, HookFailurePolicy, HookPoint,
    HookState, JobHook, LifecycleHook, Phase, Reason,
};
use rotor_traffic::CLIENT_TIMEOUT;
use rotor_traffic::load::Load;
use serde_json::{Value, json};

use crate::common;
use crate::hooks::{
    SWAP, create_swap, ended, green_got_no_traffic, no_failed_requests, rehearsal, rollback_of,
    status_when,
};

/// A Job hook running one Pod whose template carries `annotations` (the simulator's).
fn job_hook(point: HookPoint, annotations: Value) -> LifecycleHook {
    let template = json!({"spec": {"backoffLimit": 1, "template": {
        "metadata": {"annotations": annotations},
        "spec": {"restartPolicy": "Never",
            "containers": [{"name": "smoke", "image": "example.com/smoke:1"}]}}}});
    LifecycleHook {
        name: "smoke".into(),
        point,
        webhook: None,
        job: Some(JobHook {
            cluster: HookCluster::Green,
            namespace: APP_NAMESPACE.into(),
            template,
        }),
        timeout_seconds: Some(60),
        retries: 0,
        failure_policy: HookFailurePolicy::Fail,
    }
}

/// The swap's Events with `reason`, as (warning, note).
async fn events_with(r: &Rehearsal, reason: Reason) -> Vec<(bool, String)> {
    common::events_of(r, SWAP)
        .await
        .into_iter()
        .filter(|(got, _, _)| got == reason.as_str())
        .map(|(_, warning, note)| (warning, note))
        .collect()
}

/// The swap's uid (its hook Jobs' names derive from it).
async fn swap_uid(r: &Rehearsal) -> String {
    let swap = Api::<ClusterSwap>::all(r.client.clone())
        .get(SWAP)
        .await
        .expect("the swap");
    swap.metadata.uid.expect("a uid")
}

/// The Job `name` in green's application namespace, if it is there.
async fn green_job(r: &Rehearsal, done: &ClusterSwapStatus, name: &str) -> Option<Job> {
    let green = done.green_instance.as_deref().expect("a green");
    let client = r.member(green).await.expect("green's client");
    Api::<Job>::namespaced(client, APP_NAMESPACE)
        .get_opt(name)
        .await
        .expect("green answers")
}

/// A Job hook whose Job completes: the swap goes on and succeeds, the hook's Events tell the
/// Job started and complete (with its last log line), and the Job is deleted from green.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_hook_that_completes_lets_the_swap_succeed() {
    let r = rehearsal().await;
    let load = Load::start(r.app_urls(), 4, CLIENT_TIMEOUT);
    let log = "smoke: 12 checks\nsmoke: all 12 checks passed";
    let hook = job_hook(HookPoint::AfterMigration, json!({"sim.rotor.dev/log": log}));
    create_swap(&r, vec![hook]).await;
    let done = ended(&r).await;
    assert_eq!(done.phase, Phase::Succeeded, "{:?}", done.history);
    no_failed_requests(load).await;
    let entry = &done.hooks[0];
    assert_eq!(
        (
            entry.state,
            entry.last_answer,
            entry.attempts,
            entry.job.as_deref()
        ),
        (HookState::Allowed, Some(HookAnswer::Allow), 1, None)
    );
    let name = rotor_controllers::swap::hooks::job::job_name(
        &swap_uid(&r).await,
        "smoke",
        HookPoint::AfterMigration,
        None,
    );
    let started = events_with(&r, Reason::HookCalled).await;
    assert_eq!(
        started,
        [(
            false,
            format!("hook smoke started Job {name} in Green (namespace {APP_NAMESPACE})")
        )]
    );
    let allowed = events_with(&r, Reason::HookAllowed).await;
    assert_eq!(allowed.len(), 1, "{allowed:?}");
    assert!(
        allowed[0]
            .1
            .ends_with(&format!("Job {name} complete; last log lines:\n{log}")),
        "{allowed:?}"
    );
    assert!(
        green_job(&r, &done, &name).await.is_none(),
        "the Job is deleted"
    );
    let metrics = r.metrics.encode();
    assert!(
        metrics.contains(r#"rotor_hook_calls_total{point="AfterMigration",answer="Allow"} 1"#),
        "{metrics}"
    );
}

/// A Job hook before the first traffic step whose Pods exit 1: once its `backoffLimit` (1) is
/// spent the Job is Failed, which denies: the swap rolls back before green got any traffic,
/// with 0 failed requests, and the deny's Event carries the Job's last log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_hook_that_fails_blocks_traffic() {
    let r = rehearsal().await;
    let load = Load::start(r.app_urls(), 4, CLIENT_TIMEOUT);
    let hook = job_hook(
        HookPoint::BeforeFirstTrafficStep,
        json!({"sim.rotor.dev/exit-code": "1",
            "sim.rotor.dev/log": "smoke: GET /checkout\nsmoke: checkout answered 500"}),
    );
    create_swap(&r, vec![hook]).await;
    let done = ended(&r).await;
    assert_eq!(done.phase, Phase::RolledBack, "{:?}", done.history);
    no_failed_requests(load).await;
    let name = rotor_controllers::swap::hooks::job::job_name(
        &swap_uid(&r).await,
        "smoke",
        HookPoint::BeforeFirstTrafficStep,
        None,
    );
    let (reason, message) = rollback_of(&done);
    assert_eq!(reason, Reason::HookDenied);
    assert_eq!(
        message,
        format!(
            "hook smoke denied at BeforeFirstTrafficStep: Job {name} failed \
             (BackoffLimitExceeded: Job has reached the specified backoff limit)"
        )
    );
    let entry = &done.hooks[0];
    assert_eq!(
        (entry.state, entry.last_answer, entry.job.as_deref()),
        (HookState::Denied, Some(HookAnswer::Deny), None)
    );
    green_got_no_traffic(&r).await;
    // The deny's Event, with both Pods' logs (the first failed, its replacement too: the
    // backoff limit is 1), oldest first; the rollback's own Event and message carry no logs.
    let denied = events_with(&r, Reason::HookDenied).await;
    let lines = "smoke: GET /checkout\nsmoke: checkout answered 500";
    assert!(
        denied.contains(&(
            true,
            format!("{message}; last log lines:\n{lines}\n{lines}")
        )),
        "{denied:?}"
    );
    assert!(denied.contains(&(true, message.clone())), "{denied:?}");
    let metrics = r.metrics.encode();
    assert!(
        metrics
            .contains(r#"rotor_hook_calls_total{point="BeforeFirstTrafficStep",answer="Deny"} 1"#),
        "{metrics}"
    );
}

/// The controllers restarted while the hook's Job runs: the new ones find the same Job (its
/// name is derived), make no second one, read its answer, and the swap succeeds. Counted on
/// green itself: the job controller's Events name every Job it ran by uid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_finds_the_same_job() {
    let mut r = rehearsal().await;
    let load = Load::start(r.app_urls(), 4, CLIENT_TIMEOUT);
    let hook = job_hook(
        HookPoint::AfterMigration,
        json!({"sim.rotor.dev/run-seconds": "8"}),
    );
    create_swap(&r, vec![hook]).await;
    let running = status_when(&r, "the hook's Job to be made", |s| {
        s.hooks.iter().any(|h| h.job.is_some())
    })
    .await;
    let name = running.hooks[0].job.clone().expect("the Job's name");
    r.stop_controllers().await.expect("stopped");
    // Stopped mid-hook: no answer recorded, the Job still running in green.
    let mid = status_when(&r, "the swap's status", |_| true).await;
    assert_eq!(mid.hooks[0].state, HookState::Pending, "{:?}", mid.hooks);
    let job = green_job(&r, &mid, &name).await.expect("the Job runs");
    let conditions = job.status.and_then(|s| s.conditions).unwrap_or_default();
    assert!(conditions.is_empty(), "{conditions:?}");
    r.start_controllers().await.expect("started again");
    let done = ended(&r).await;
    assert_eq!(done.phase, Phase::Succeeded, "{:?}", done.history);
    no_failed_requests(load).await;
    assert_eq!(done.hooks[0].state, HookState::Allowed);
    assert_eq!(events_with(&r, Reason::HookCalled).await.len(), 1);

    let green = done.green_instance.as_deref().expect("a green");
    let client = r.member(green).await.expect("green's client");
    let events = Api::<Event>::namespaced(client, APP_NAMESPACE)
        .list(&Default::default())
        .await
        .expect("green's Events");
    let jobs: BTreeSet<String> = events
        .items
        .iter()
        .filter(|e| {
            e.involved_object.kind.as_deref() == Some("Job")
                && e.involved_object.name.as_deref() == Some(name.as_str())
        })
        .filter_map(|e| e.involved_object.uid.clone())
        .collect();
    assert_eq!(jobs.len(), 1, "Jobs run as {name}: {jobs:?}");
    assert!(
        green_job(&r, &done, &name).await.is_none(),
        "the Job is deleted"
    );
}

/// A Job hook in blue still running when the swap is rolled back (here by the operator; a gate
/// would do the same): the swap no longer waits for it, and blue stays, so the rollback
/// deletes the Job rather than leave it running in the cluster that goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_deletes_a_job_still_running_in_blue() {
    let r = rehearsal().await;
    let load = Load::start(r.app_urls(), 4, CLIENT_TIMEOUT);
    let mut hook = job_hook(
        HookPoint::AfterMigration,
        json!({"sim.rotor.dev/run-seconds": "600"}),
    );
    hook.timeout_seconds = Some(900);
    hook.job.as_mut().expect("a Job hook").cluster = HookCluster::Blue;
    create_swap(&r, vec![hook]).await;
    let running = status_when(&r, "the hook's Job running in blue", |s| {
        s.hooks.first().is_some_and(|h| h.job.is_some())
    })
    .await;
    let name = running.hooks[0].job.clone().expect("the Job's name");
    let blue = running.blue_instance.clone().expect("a blue");
    let jobs: Api<Job> =
        Api::namespaced(r.member(&blue).await.expect("blue's client"), APP_NAMESPACE);
    assert!(jobs.get_opt(&name).await.expect("blue answers").is_some());

    let swaps: Api<ClusterSwap> = Api::all(r.client.clone());
    swaps
        .patch(
            SWAP,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"rollback": true}})),
        )
        .await
        .expect("rollback requested");
    let done = ended(&r).await;
    assert_eq!(done.phase, Phase::RolledBack, "{:?}", done.history);
    assert_eq!(done.hooks[0].job, None, "{:?}", done.hooks);
    common::eventually(crate::hooks::LIMIT, "the Job gone from blue", || async {
        jobs.get_opt(&name)
            .await
            .expect("blue answers")
            .is_none()
            .then_some(())
    })
    .await;
    no_failed_requests(load).await;
}
