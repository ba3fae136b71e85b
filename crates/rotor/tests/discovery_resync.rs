//! Discovery's periodic resync repairs a change its watches missed, all the way to the Cluster's
//! status: the member's watch streams silently lose their object events
//! (`Fault::WatchEventsDropped`), a node goes NotReady, and only the next relist can tell. The
//! control plane, the controllers and discovery run here with a short resync (the rehearsal
//! uses discovery's defaults). Every wait is bounded.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::middleware::Next;
use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rotor_api::{Cluster, ConditionType, Reason, ShifterKind, find_condition};
use rotor_sim::{Fault, Sim, SimConfig};

const LIMIT: Duration = Duration::from_secs(30);

fn ready(s: &rotor_api::ClusterStatus) -> Option<(bool, Reason)> {
    find_condition(&s.conditions, ConditionType::Ready).map(|c| (c.is_true(), c.reason))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_node_change_reaches_the_cluster_status_after_the_resync() {
    let resync = Duration::from_secs(3);
    tokio::time::timeout(Duration::from_secs(90), async {
        // The member cluster, behind a counter of its node lists (not watches).
        let fleet = rotor_api::sample_fleet(1);
        let name = fleet[0].name_any();
        let sim = Sim::new(SimConfig {
            nodes: 2,
            node_ready_delay: Duration::from_millis(100),
            ..SimConfig::default()
        });
        let minor = rotor::rehearsal::minor_of(&fleet[0].spec.kubernetes_version).expect("minor");
        sim.add_cluster(&name, minor).await.expect("member");
        sim.cloud.adopt(&name, minor);
        let node_lists = Arc::new(AtomicUsize::new(0));
        let counter = node_lists.clone();
        let router = sim.router().layer(axum::middleware::from_fn(
            move |req: Request, next: Next| {
                let uri = req.uri();
                if uri.path().ends_with("/api/v1/nodes")
                    && !uri.query().unwrap_or_default().contains("watch")
                {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                next.run(req)
            },
        ));
        let sim_url = common::fleet::serve_router(router).await;

        // The control plane and the controllers, discovery with a short resync.
        let cp = common::start(Arc::new(rotor_store::memory::MemoryStore::default())).await;
        let discovery = rotor_discovery::Discovery::new(rotor_discovery::Settings {
            resync,
            silence: Duration::from_secs(2),
            probe_timeout: Duration::from_secs(1),
            ..Default::default()
        });
        let ctx = rotor_controllers::Context::new(cp.client.clone(), Default::default())
            .with_provider(
                rotor_api::Provider::Sim,
                Arc::new(rotor_providers::sim::SimProvider::new(&sim_url)),
            )
            .with_shifter(
                ShifterKind::Sim,
                Arc::new(rotor_traffic::sim::SimShifter::new()),
            )
            .with_discovery(discovery.clone());
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let controllers = tokio::spawn(rotor_controllers::run(Arc::new(ctx), async move {
            let _ = stopped.wait_for(|v| *v).await;
        }));
        let clusters: Api<Cluster> = Api::all(cp.client.clone());
        let mut c = fleet[0].clone();
        c.metadata.managed_fields = None;
        clusters
            .create(&PostParams::default(), &c)
            .await
            .expect("Cluster created");
        let status = || async {
            clusters
                .get(&name)
                .await
                .ok()
                .and_then(|c| c.status)
                .unwrap_or_default()
        };

        common::eventually(LIMIT, "the Cluster healthy through discovery", || async {
            let s = status().await;
            let h = s.health.clone()?;
            (ready(&s) == Some((true, Reason::Healthy)) && h.nodes_ready == 2).then_some(())
        })
        .await;
        assert_eq!(discovery.instances(), std::slice::from_ref(&name));

        // Events are lost from now on; node-1 goes NotReady.
        assert!(sim.set_fault(&name, Fault::WatchEventsDropped));
        let member = sim.kubeconfig(&name, &sim_url).expect("kubeconfig");
        let member = rotor::client_for(&member).await.expect("member client");
        let nodes: Api<Node> = Api::all(member);
        let lists = node_lists.load(Ordering::Relaxed);
        let t = Instant::now();
        nodes
            .patch_status(
                "node-1",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"status": {"conditions": [
                    {"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": "test"}
                ]}})),
            )
            .await
            .expect("node-1 NotReady");

        // Missed: as long as no relist ran, discovery and the Cluster still say 2/2 Ready.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let s = status().await;
        let summary = discovery.summary(&name).expect("watched");
        if node_lists.load(Ordering::Relaxed) == lists {
            assert_eq!(summary.nodes_ready, 2, "the event was not missed: {summary:?}");
            assert_eq!(s.health.expect("health").nodes_ready, 2);
        } else {
            println!("a resync ran within 500 ms: the miss could not be observed this time");
        }

        // The resync (±25 %) relists, discovery's summary changes, its change re-queues the
        // Cluster (whose own resync is 30 s), and the status tells.
        let s = common::eventually(LIMIT, "NodesNotReady on the Cluster", || async {
            let s = status().await;
            (ready(&s) == Some((false, Reason::NodesNotReady))).then_some(s)
        })
        .await;
        let took = t.elapsed();
        println!("missed node change on the Cluster's status after {took:?} (resync {resync:?} ±25 %)");
        assert!(node_lists.load(Ordering::Relaxed) > lists, "repaired without a relist");
        assert!(took < resync.mul_f64(1.25) + Duration::from_secs(3), "took {took:?}");
        let health = s.health.clone().expect("health");
        assert_eq!((health.nodes_ready, health.nodes_total), (1, 2));
        let message = find_condition(&s.conditions, ConditionType::Ready)
            .map(|c| c.message.clone())
            .unwrap_or_default();
        assert!(message.contains("node-1"), "{message}");

        let _ = stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), controllers).await;
    })
    .await
    .expect("the test finished in time");
}
