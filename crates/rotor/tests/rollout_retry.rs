//! Retrying a cluster of a wave that already ended, while the next wave waits for manual
//! approval: the retry is the dashboard's (and `rotor rollout retry CLUSTER`'s) request —
//! deleting the ended swap — and the rollout must start the cluster's swap again at once, not
//! only once the next wave is approved. (It did not: retries of earlier waves were started only
//! while the current wave was in progress, so an approval-waiting rollout left the cluster
//! without a swap, its wave Succeeded with one cluster pending.)

use crate::common;

use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use rotor::rehearsal::Rehearsal;
use rotor_api::{ClusterSwap, Phase, Rollout, RolloutPhase, WavePhase};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(120);
const ROLLOUT: &str = "retry-manual";
const LABEL: &str = "retry-manual";

/// A canary wave of one cluster whose rollback the budgets tolerate, then the other cluster;
/// every wave after the first waits for approval.
fn rollout() -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "rotor.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": ROLLOUT},
        "spec": {
            "clusterSelector": {},
            "target": {"kubernetesVersion": rotor_api::SAMPLE_TARGET_VERSION},
            "waves": [
                {"name": "canary", "selector": {"matchLabels": {LABEL: "canary"}}, "failureBudget": 1},
                {"name": "rest", "selector": {"matchLabels": {LABEL: "rest"}}},
            ],
            "failureBudget": 1,
            "approval": "Manual",
            "bakeSecondsBetweenWaves": 0,
            "strategy": {"trafficSteps": [20, 100], "bakeSeconds": 1, "blueRetentionSeconds": 0},
        },
    }))
    .expect("a Rollout")
}

async fn rehearsal() -> Rehearsal {
    common::fleet::canary_and_rest(LABEL).await
}

/// The rollout's status once `want` holds of it.
async fn rollout_where(
    api: &Api<Rollout>,
    what: &str,
    want: impl Fn(&rotor_api::RolloutStatus) -> bool,
) -> rotor_api::RolloutStatus {
    common::eventually(LIMIT, what, || async {
        let status = api.get(ROLLOUT).await.ok()?.status?;
        want(&status).then_some(status)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_canary_runs_again_while_the_next_wave_waits_for_approval() {
    let r = rehearsal().await;
    let load = rotor_traffic::load::Load::start(r.app_urls(), 4, Duration::from_secs(5));
    let canary = r.fleet[0].name_any();
    let rollouts: Api<Rollout> = Api::all(r.client.clone());
    rollouts
        .create(&PostParams::default(), &rollout())
        .await
        .expect("Rollout created");
    let swaps: Api<ClusterSwap> = Api::all(r.client.clone());
    // Break the canary's green before it gets traffic: its first step's gate fails.
    let (swap, green) = common::eventually(LIMIT, "the canary's green exists", || async {
        let s = swaps.list(&ListParams::default()).await.ok()?.items.pop()?;
        let st = s.status.clone()?;
        let green = st.green_instance.clone()?;
        matches!(st.phase, Phase::Migrating | Phase::Verifying).then_some((s, green))
    })
    .await;
    assert_eq!(
        swap.spec.cluster_ref, canary,
        "the canary's swap comes first"
    );
    assert!(r.sim.set_fault(&green, rotor_sim::Fault::TrafficErrors));

    // The canary rolls back within its budget; the next wave waits for approval.
    let status = rollout_where(&rollouts, "the next wave waiting for approval", |s| {
        s.phase == RolloutPhase::WaitingForApproval && s.counts.rolled_back == 1
    })
    .await;
    assert_eq!(status.current_wave, Some(1), "{status:?}");
    let first = swaps
        .get(&swap.name_any())
        .await
        .expect("the canary's swap");
    assert_eq!(first.status.unwrap_or_default().phase, Phase::RolledBack);

    // Retry the canary as the dashboard does: delete its ended swap.
    swaps
        .delete(&swap.name_any(), &DeleteParams::default())
        .await
        .expect("the rolled-back swap deleted");
    let old_uid = swap.uid();
    let again = common::eventually(
        Duration::from_secs(30),
        "the canary's swap created again while the next wave waits for approval",
        || async {
            let s = swaps.get_opt(&swap.name_any()).await.ok()??;
            (s.uid() != old_uid).then_some(s)
        },
    )
    .await;
    assert_eq!(again.spec.cluster_ref, canary);
    // The fresh green has no fault: the retry succeeds, and still nothing of the next wave ran.
    let status = rollout_where(&rollouts, "the retried canary succeeded", |s| {
        s.counts.succeeded == 1 && s.counts.rolled_back == 0
    })
    .await;
    assert_eq!(status.phase, RolloutPhase::WaitingForApproval, "{status:?}");
    assert_eq!(status.waves[0].phase, WavePhase::Succeeded, "{status:?}");
    let all = swaps
        .list(&ListParams::default())
        .await
        .expect("swaps")
        .items;
    assert_eq!(all.len(), 1, "only the canary has a swap before approval");

    // Approved, the rest runs and the rollout ends with both clusters swapped.
    rollouts
        .patch(
            ROLLOUT,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"approvedThroughWave": 1}})),
        )
        .await
        .expect("approved");
    let done = rollout_where(&rollouts, "the rollout succeeded", |s| {
        s.phase == RolloutPhase::Succeeded
    })
    .await;
    assert_eq!(done.counts.succeeded, 2, "{:?}", done.counts);
    let report = load.stop().await;
    assert!(report.requests > 0, "{report:?}");
}
