//! What a real cluster's kubelets and controllers would do: nodes become Ready; one watch on the
//! whole store feeds the workload controllers (`workloads/`: Deployments, ReplicaSets,
//! StatefulSets, DaemonSets and Jobs with their Pods, CronJobs' Jobs; Endpoints and EndpointSlices of Services).

use std::sync::Arc;
use std::time::Duration;

use rotor_apiserver::{ApiServer, PatchType, WriteOptions};
use rotor_store::StoreError;
use serde_json::json;

use crate::SimConfig;
use crate::workloads::{self, Ctx, Queue, Task};

fn opts() -> WriteOptions {
    WriteOptions {
        field_manager: "rotor-sim".into(),
        ..WriteOptions::default()
    }
}

pub fn spawn(server: Arc<ApiServer>, config: SimConfig, minor: u32) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = create_nodes(&server, &config, minor).await {
            tracing::warn!(error = %e, "simulated nodes");
        }
        let (queue, rx) = Queue::new();
        let ctx = Ctx {
            server: server.clone(),
            nodes: config.nodes,
            minor,
            ready_delay: config.workload_ready_delay,
            queue: queue.clone(),
            clock: config.clock.clone(),
            wakes: Default::default(),
        };
        // One task per cluster: aborting it ends the watch and the controllers together.
        tokio::join!(run(server, queue), workloads::work(ctx, rx));
    })
}

async fn create_nodes(
    server: &Arc<ApiServer>,
    config: &SimConfig,
    minor: u32,
) -> anyhow::Result<()> {
    let nodes = server.resource("", "v1", "nodes")?;
    for i in 0..config.nodes {
        let node = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": format!("node-{i}"), "labels": {"kubernetes.io/hostname": format!("node-{i}"), "kubernetes.io/os": "linux"}},
            "spec": {},
            "status": {
                "conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": "starting"}],
                "nodeInfo": {"kubeletVersion": format!("v1.{minor}.0"), "osImage": "rotor-sim", "architecture": "amd64", "operatingSystem": "linux",
                    "containerRuntimeVersion": "sim://1", "kernelVersion": "sim", "kubeProxyVersion": format!("v1.{minor}.0"),
                    "bootID": "", "machineID": "", "systemUUID": ""},
            },
        });
        match server.create(&nodes, None, node, &opts()).await {
            Ok(_) => {}
            Err(e) if e.reason == "AlreadyExists" => {}
            Err(e) => return Err(e.into()),
        }
    }
    tokio::time::sleep(config.node_ready_delay).await;
    let now = rotor_apiserver::object::now_rfc3339();
    for i in 0..config.nodes {
        let ready = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now}]}});
        server
            .patch(
                &nodes,
                None,
                &format!("node-{i}"),
                PatchType::Merge,
                &ready,
                Some("status"),
                &opts(),
            )
            .await?;
    }
    Ok(())
}

/// Follows every change in the cluster; a lagging or compacted watch falls back to a resync.
async fn run(server: Arc<ApiServer>, queue: Queue) {
    let mut from = 0u64;
    let mut backoff = Duration::from_millis(50);
    loop {
        let watch = match server.store().watch("/", from).await {
            Ok(w) => w,
            Err(StoreError::Compacted { .. }) | Err(_) => {
                from = resync(&server, &queue).await;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if from == 0 {
            from = resync(&server, &queue).await;
        }
        let mut events = watch;
        while let Some(event) = events.recv().await {
            from = event.revision();
            workloads::route(&queue, &event);
        }
    }
}

/// The task that reconciles an object stored under `/{group}/{plural}/`, by namespace and name.
type TaskOf = fn(String, String) -> Task;

/// What every controller owns, looked at once: returns the revision to watch from.
async fn resync(server: &Arc<ApiServer>, queue: &Queue) -> u64 {
    let rev = server.store().current_revision().await.unwrap_or(0);
    let kinds: [(&str, TaskOf); 6] = [
        ("/apps/deployments/", |ns, name| Task::Deployment {
            ns,
            name,
        }),
        ("/apps/replicasets/", |ns, name| Task::ReplicaSet {
            ns,
            name,
        }),
        ("/apps/statefulsets/", |ns, name| Task::StatefulSet {
            ns,
            name,
        }),
        ("/apps/daemonsets/", |ns, name| Task::DaemonSet { ns, name }),
        ("/batch/jobs/", |ns, name| Task::Job { ns, name }),
        ("/core/services/", |ns, _| Task::Services { ns }),
    ];
    for (prefix, task) in kinds {
        let Ok(page) = server.store().list(prefix, None, 0).await else {
            continue;
        };
        for kv in page.items {
            let mut parts = kv.key.rsplitn(3, '/');
            if let (Some(name), Some(ns)) = (parts.next(), parts.next()) {
                queue.push(task(ns.to_string(), name.to_string()));
            }
        }
    }
    rev
}
