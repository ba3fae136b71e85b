//! One bad object is isolated: a Cluster that does not decode, written straight into the SQLite
//! store (as an older rotor or another client could have), does not hold back a valid Cluster
//! created after it, carries a Warning Event naming the field, and `rotor get clusters` lists
//! the valid one while naming the bad one.

use crate::common;

use std::time::Duration;

use common::fleet::one_cluster;
use common::kubectl::{CLUSTER_YAML, LIMIT, free_port, serve_sqlite};
use common::process::stop;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use rotor_api::{Cluster, ShifterKind};
use rotor_sim::{CloudConfig, SimConfig};
use rotor_store::Store;

/// Writes into the store at `db` a Cluster `broken` without `spec.provider`, built from the
/// stored `prod-sim-a` (which it replaces), as no API server would accept it.
async fn write_undecodable_cluster(db: &std::path::Path) {
    let store = rotor_store::sqlite::SqliteStore::open(db).expect("store opens");
    let page = store.list("/", None, 0).await.expect("list");
    let kv = page
        .items
        .iter()
        .find(|kv| kv.key.contains("clusters") && kv.key.ends_with("/prod-sim-a"))
        .expect("the applied Cluster is stored");
    let mut obj: serde_json::Value = serde_json::from_slice(&kv.value).expect("stored JSON");
    obj["metadata"]["name"] = "broken".into();
    obj["metadata"]["uid"] = "00000000-0000-4000-8000-00000000b0b0".into();
    obj["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("provider");
    let key = kv.key.replace("/prod-sim-a", "/broken");
    store
        .create(&key, serde_json::to_vec(&obj).expect("json").into())
        .await
        .expect("write the bad Cluster");
    store
        .delete(&kv.key, None)
        .await
        .expect("drop the template");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_cluster_holds_back_no_other_and_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("rotor.db");
    // A first life stores a Cluster the ordinary way; it becomes the template of the bad one.
    let (mut first, kubectl) = serve_sqlite(&db, &dir.path().join("kc1"), &["--no-controllers"]);
    let yaml = dir.path().join("cluster.yaml");
    std::fs::write(&yaml, CLUSTER_YAML).expect("write");
    tokio::task::block_in_place(|| {
        kubectl.ok(&["apply", "-f", yaml.to_str().expect("path")]);
        stop(&mut first, LIMIT, "rotor serve");
    });
    write_undecodable_cluster(&db).await;

    // The fleet: one Cluster the simulated cloud knows.
    let config = SimConfig {
        nodes: 1,
        cloud: CloudConfig {
            create_latency: Duration::from_millis(100),
            ..CloudConfig::default()
        },
        ..SimConfig::default()
    };
    let (_sim, sim_url, cluster) = one_cluster(config, ShifterKind::Sim).await;

    // The second life, with controllers, over the store holding the bad Cluster.
    let kc = dir.path().join("kc2");
    let (provider, traffic) = (
        format!("sim:{sim_url}"),
        format!("sim:127.0.0.1:{}", free_port()),
    );
    let (_serve, _) = serve_sqlite(&db, &kc, &["--provider", &provider, "--traffic", &traffic]);
    let client = common::client_from(&kc).await;
    let clusters: Api<Cluster> = Api::all(client.clone());
    clusters
        .patch(
            &cluster.name_any(),
            &PatchParams::apply("test"),
            &Patch::Apply(&cluster),
        )
        .await
        .expect("valid Cluster applied");
    common::eventually(
        Duration::from_secs(20),
        "the valid Cluster adopted",
        || async {
            let c = clusters.get(&cluster.name_any()).await.ok()?;
            c.status?.active_instance
        },
    )
    .await;

    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let event = common::eventually(
        Duration::from_secs(20),
        "a Warning Event on the bad Cluster",
        || async {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items.into_iter().find(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("broken")
                    && e.reason.as_deref() == Some("InvalidObject")
            })
        },
    )
    .await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    let note = event.note.unwrap_or_default();
    assert!(
        note.contains("spec") && note.contains("missing field `provider`"),
        "the Event names the field: {note}"
    );
    // And a condition on the object itself, written as JSON (it cannot be decoded).
    let ar = kube::api::ApiResource::erase::<Cluster>(&());
    let raw: Api<kube::api::DynamicObject> = Api::all_with(client.clone(), &ar);
    let invalid = |o: &kube::api::DynamicObject| {
        o.data
            .pointer("/status/conditions")?
            .as_array()?
            .iter()
            .find_map(|c| {
                (c["type"] == "InvalidSpec" && c["status"] == "True")
                    .then(|| c["message"].as_str().unwrap_or_default().to_string())
            })
    };
    let message = common::eventually(
        Duration::from_secs(20),
        "an InvalidSpec condition on the bad Cluster",
        || async { invalid(&raw.get("broken").await.ok()?) },
    )
    .await;
    assert!(
        message.contains("missing field `provider`"),
        "the condition names the field: {message}"
    );

    let kc = kc.to_str().expect("path");
    let (ok, stdout, stderr) = tokio::task::block_in_place(|| {
        common::process::run(&["get", "clusters", "--kubeconfig", kc])
    });
    assert!(ok, "rotor get clusters: {stderr}");
    assert!(stdout.contains(&cluster.name_any()), "{stdout}");
    assert!(!stdout.contains("broken"), "{stdout}");
    assert!(
        stderr.contains("broken") && stderr.contains("provider"),
        "the bad one is named: {stderr}"
    );
    // Fixed, it is read again and the condition goes.
    raw.patch(
        "broken",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"provider": "sim"}})),
    )
    .await
    .expect("the bad Cluster fixed");
    common::eventually(
        Duration::from_secs(20),
        "the InvalidSpec condition cleared",
        || async {
            let o = raw.get("broken").await.ok()?;
            invalid(&o).is_none().then_some(())
        },
    )
    .await;
}
