//! What a real cluster's kubelets and controllers would do: nodes become Ready; one watch on the
//! whole store feeds the workload controllers (`workloads/`: Deployments own ReplicaSets own
//! Pods); StatefulSets and DaemonSets still only report their replicas ready (status,
//! observedGeneration) a configurable delay after each spec change.

use std::sync::Arc;
use std::time::Duration;

use rotor_apiserver::{ApiServer, PatchType, WriteOptions};
use rotor_store::{StoreError, WatchEvent};
use serde_json::{Value, json};

use crate::SimConfig;
use crate::workloads::{self, Ctx, Queue, Task};

/// The workload kinds whose status alone the simulator converges: (group, plural).
const WORKLOADS: &[(&str, &str)] = &[("apps", "statefulsets"), ("apps", "daemonsets")];

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
            ready_delay: config.workload_ready_delay,
            queue: queue.clone(),
        };
        // One task per cluster: aborting it ends the watch and the controllers together.
        tokio::join!(run(server, config, queue), workloads::work(ctx, rx));
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
async fn run(server: Arc<ApiServer>, config: SimConfig, queue: Queue) {
    let mut from = 0u64;
    let mut backoff = Duration::from_millis(50);
    loop {
        let watch = match server.store().watch("/", from).await {
            Ok(w) => w,
            Err(StoreError::Compacted { .. }) | Err(_) => {
                from = resync(&server, &config, &queue).await;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if from == 0 {
            from = resync(&server, &config, &queue).await;
        }
        let mut events = watch;
        while let Some(event) = events.recv().await {
            from = event.revision();
            workloads::route(&queue, &event);
            if let WatchEvent::Put { kv, .. } = &event
                && kv.key.starts_with("/apps/")
                && let Ok(obj) = serde_json::from_slice::<Value>(&kv.value)
            {
                consider(&server, &config, &kv.key, obj);
            }
        }
    }
}

/// Looks at every workload once; returns the revision to watch from.
async fn resync(server: &Arc<ApiServer>, config: &SimConfig, queue: &Queue) -> u64 {
    let rev = server.store().current_revision().await.unwrap_or(0);
    for (plural, task) in [("deployments", true), ("replicasets", false)] {
        let Ok(page) = server
            .store()
            .list(&format!("/apps/{plural}/"), None, 0)
            .await
        else {
            continue;
        };
        for kv in page.items {
            let mut parts = kv.key.rsplitn(3, '/');
            let (Some(name), Some(ns)) = (parts.next(), parts.next()) else {
                continue;
            };
            let (ns, name) = (ns.to_string(), name.to_string());
            queue.push(match task {
                true => Task::Deployment { ns, name },
                false => Task::ReplicaSet { ns, name },
            });
        }
    }
    for (group, plural) in WORKLOADS {
        let prefix = format!("/{group}/{plural}/");
        if let Ok(page) = server.store().list(&prefix, None, 0).await {
            for kv in page.items {
                if let Ok(obj) = serde_json::from_slice::<Value>(&kv.value) {
                    consider(server, config, &kv.key, obj);
                }
            }
        }
    }
    rev
}

/// Schedules a status update when a workload's status lags its spec.
fn consider(server: &Arc<ApiServer>, config: &SimConfig, key: &str, obj: Value) {
    let mut parts = key.trim_start_matches('/').split('/');
    let (Some(group), Some(plural), Some(ns), Some(name)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    if !WORKLOADS.contains(&(group, plural)) {
        return;
    }
    let generation = obj
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let observed = obj
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64);
    if observed == Some(generation) || rotor_apiserver::object::is_deleting(&obj) {
        return;
    }
    let (server, delay) = (server.clone(), config.workload_ready_delay);
    let (group, plural, ns, name) = (
        group.to_string(),
        plural.to_string(),
        ns.to_string(),
        name.to_string(),
    );
    let nodes = config.nodes as i64;
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let Ok(res) = server.resource(&group, "v1", &plural) else {
            return;
        };
        // Re-read: the status reflects the spec as it is now, not as it was when scheduled.
        let Ok(current) = server.get(&res, Some(&ns), &name).await else {
            return;
        };
        let status = ready_status(&plural, &current, nodes);
        if let Err(e) = server
            .patch(
                &res,
                Some(&ns),
                &name,
                PatchType::Merge,
                &json!({"status": status}),
                Some("status"),
                &opts(),
            )
            .await
        {
            tracing::debug!(%plural, %ns, %name, error = %e, "simulated status update");
        }
    });
}

/// The status a healthy controller reports once every replica is up.
fn ready_status(plural: &str, obj: &Value, nodes: i64) -> Value {
    let generation = obj
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    if plural == "daemonsets" {
        return json!({
            "observedGeneration": generation, "desiredNumberScheduled": nodes, "currentNumberScheduled": nodes,
            "numberReady": nodes, "numberAvailable": nodes, "updatedNumberScheduled": nodes, "numberMisscheduled": 0,
        });
    }
    let replicas = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let mut status = json!({
        "observedGeneration": generation, "replicas": replicas, "readyReplicas": replicas,
        "availableReplicas": replicas, "updatedReplicas": replicas,
    });
    if plural == "statefulsets" {
        status["currentReplicas"] = json!(replicas);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_status_matches_spec() {
        let d = json!({"metadata": {"generation": 3}, "spec": {"replicas": 4}});
        let s = ready_status("statefulsets", &d, 3);
        assert_eq!(s["observedGeneration"], 3);
        assert_eq!(s["readyReplicas"], 4);
        let ds = ready_status("daemonsets", &d, 5);
        assert_eq!(ready_status("statefulsets", &d, 3)["currentReplicas"], 4);
        assert_eq!(ds["numberReady"], 5);
    }
}
