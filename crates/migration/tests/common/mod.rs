//! Two in-process simulated clusters over HTTP, blue and green, for the engine's tests.
#![allow(dead_code)] // each test file uses its part

use std::sync::Arc;
use std::time::Duration;

use kube::api::DynamicObject;
use kube::{Client, ResourceExt};
use rotor_apiserver::{ApiServer, WriteOptions};
use rotor_sim::{Sim, SimConfig};
use serde_json::{Value, json};

pub struct Env {
    pub sim: Arc<Sim>,
    pub blue: Client,
    pub green: Client,
    pub blue_server: Arc<ApiServer>,
    pub green_server: Arc<ApiServer>,
}

/// A client without kube's own retries: the engine does its own backoff, kube's would hide it.
pub async fn client(kubeconfig: &str) -> Client {
    let kc = kube::config::Kubeconfig::from_yaml(kubeconfig).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    config.default_retry = false;
    config.read_timeout = Some(Duration::from_secs(10));
    Client::try_from(config).unwrap()
}

/// Blue and green at the given Kubernetes minors, served on one local port.
pub async fn env(blue_minor: u32, green_minor: u32) -> Env {
    let sim = Sim::new(SimConfig {
        workload_ready_delay: Duration::from_millis(50),
        node_ready_delay: Duration::from_millis(10),
        history_events: 4096,
        ..SimConfig::default()
    });
    let blue = sim.add_cluster("blue", blue_minor).await.unwrap();
    let green = sim.add_cluster("green", green_minor).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = sim.router();
    tokio::spawn(async move {
        let _ = rotor_apiserver::http::serve(listener, router).await;
    });
    Env {
        blue: client(&sim.kubeconfig("blue", &base).unwrap()).await,
        green: client(&sim.kubeconfig("green", &base).unwrap()).await,
        blue_server: blue.server.clone(),
        green_server: green.server.clone(),
        sim,
    }
}

/// Creates `obj` in-process at its apiVersion as field manager `manager` (a user's kubectl).
pub async fn create_as(server: &ApiServer, plural: &str, manager: &str, obj: Value) {
    let api_version = obj["apiVersion"].as_str().unwrap();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let res = server
        .resource(group, version, plural)
        .unwrap_or_else(|e| panic!("{api_version} {plural}: {e}"));
    let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str);
    let opts = WriteOptions {
        field_manager: manager.into(),
        ..WriteOptions::default()
    };
    server
        .create(&res, ns, obj.clone(), &opts)
        .await
        .unwrap_or_else(|e| panic!("creating {plural} at {api_version}: {e}"));
}

/// Creates namespace `name` as kubectl would.
pub async fn namespace(server: &ApiServer, name: &str) {
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    create_as(server, "namespaces", "kubectl", ns).await;
}

/// Who owns what, as compared between blue and green (see `ownership::comparable`); an entry
/// that cannot be read fails the test.
pub fn owners(o: &DynamicObject) -> Value {
    let (entries, broken) = rotor_migration::ownership::carried(o);
    assert_eq!(broken, 0, "{}", o.name_any());
    json!(rotor_migration::ownership::comparable(&entries))
}
