//! Reconciles in a row, and read-your-writes: a phase change goes straight on to what the next
//! phase can do at once, and a version the controller has since written over is not acted on.

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use rotor_api::{ClusterSwapStatus, Phase};

use super::super::{run_chained, written_over};
use super::{harness, strategy};

#[tokio::test]
async fn a_phase_change_goes_straight_on_and_its_superseded_version_is_left_alone() {
    // A cloud that takes an hour: WaitingForGreen is where the chain has to stop.
    let h = harness(Duration::from_secs(3600)).await;
    let created = h
        .swap("s", strategy(vec![50, 100]), ClusterSwapStatus::default())
        .await;
    assert!(created.finalizers().is_empty());
    run_chained(Arc::new(created.clone()), &h.ctx)
        .await
        .expect("one reconcile");
    let swap = h.fresh_swap("s").await;
    let status = swap.status.clone().expect("status");
    let path: Vec<Phase> = status.history.iter().map(|t| t.phase).collect();
    assert_eq!(
        path,
        [Phase::Provisioning, Phase::WaitingForGreen],
        "one reconcile added the finalizer, claimed the Cluster, asked the cloud for green \
         and waits for it"
    );
    assert_eq!(swap.finalizers(), [super::super::FINALIZER]);
    assert!(
        status.green_instance.is_some(),
        "green is named: {status:?}"
    );

    // The watch cache may still hold what the chain read, or any version it wrote on the way.
    assert!(
        written_over(&created, &h.ctx),
        "the version {} as created was written over",
        created.resource_version().unwrap_or_default()
    );
    assert!(
        !written_over(&swap, &h.ctx),
        "the latest version is the one to act on"
    );
    let before = swap.resource_version();
    run_chained(Arc::new(swap), &h.ctx)
        .await
        .expect("the latest version is reconciled");
    assert_eq!(
        h.fresh_swap("s").await.resource_version(),
        before,
        "waiting for green writes nothing new"
    );
}
