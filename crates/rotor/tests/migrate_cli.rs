//! `rotor migrate plan|apply` as an operator runs them, against two simulated clusters.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, Patch, PatchParams};
use rotor::rehearsal::{APP_NAME, APP_NAMESPACE, sample_app};
use rotor_sim::{Sim, SimConfig};

fn rotor(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rotor"))
        .args(args)
        .output()
        .expect("rotor runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_plan_and_apply_between_two_clusters() {
    let sim = Sim::new(SimConfig {
        workload_ready_delay: Duration::from_millis(100),
        ..SimConfig::default()
    });
    sim.add_cluster("blue", 34).await.expect("blue");
    sim.add_cluster("green", 35).await.expect("green");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let router = sim.router();
    tokio::spawn(async move {
        let _ = rotor_apiserver::http::serve(listener, router).await;
    });
    let dir = tempfile::tempdir().expect("tempdir");
    sim.write_kubeconfigs(dir.path(), &url)
        .expect("kubeconfigs");
    let blue_cfg = dir.path().join("blue.kubeconfig");
    let green_cfg = dir.path().join("green.kubeconfig");
    let blue = rotor::client_for(&std::fs::read_to_string(&blue_cfg).expect("read"))
        .await
        .expect("client");
    let (ns, deploy, svc) = sample_app();
    let pp = PatchParams::apply("test");
    Api::<Namespace>::all(blue.clone())
        .patch(APP_NAMESPACE, &pp, &Patch::Apply(&ns))
        .await
        .expect("ns");
    Api::<Deployment>::namespaced(blue.clone(), APP_NAMESPACE)
        .patch(APP_NAME, &pp, &Patch::Apply(&deploy))
        .await
        .expect("deployment");
    Api::<Service>::namespaced(blue, APP_NAMESPACE)
        .patch(APP_NAME, &pp, &Patch::Apply(&svc))
        .await
        .expect("service");

    let blue_path = blue_cfg.to_str().expect("utf-8 path");
    let green_path = green_cfg.to_str().expect("utf-8 path");
    let (ok, out, err) = rotor(&["migrate", "plan", "--from", blue_path, "--json"]);
    assert!(ok, "{err}");
    let plan: serde_json::Value = serde_json::from_str(out.trim()).expect("plan is JSON");
    let names = plan.to_string();
    for expected in ["demo-app", "Deployment", "Service"] {
        assert!(
            names.contains(expected),
            "{expected} missing from the plan: {names}"
        );
    }
    let (ok, table, err) = rotor(&["migrate", "plan", "--from", blue_path, "--objects"]);
    assert!(ok, "{err}");
    assert!(
        table
            .lines()
            .any(|l| l.contains("Deployment") && l.contains("demo-app") && l.contains("web")),
        "{table}"
    );

    let (ok, out, err) = rotor(&[
        "migrate", "apply", "--from", blue_path, "--to", green_path, "--json",
    ]);
    assert!(ok, "{err}");
    let report: serde_json::Value =
        serde_json::from_str(out.lines().last().expect("a line")).expect("JSON");
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["objects"], report["applied"], "{report}");
    assert_eq!(
        report["workloads_ready"], report["workloads_total"],
        "{report}"
    );
    assert_eq!(report["workloads_total"], 1, "{report}");
    let green = rotor::client_for(&std::fs::read_to_string(&green_cfg).expect("read"))
        .await
        .expect("client");
    let d = Api::<Deployment>::namespaced(green, APP_NAMESPACE)
        .get(APP_NAME)
        .await
        .expect("the Deployment is in green");
    assert_eq!(d.spec.and_then(|s| s.replicas), Some(2));

    // A source that cannot be reached is named in the error.
    let missing = dir.path().join("missing.kubeconfig");
    let (ok, _, err) = rotor(&["migrate", "plan", "--from", missing.to_str().expect("path")]);
    assert!(!ok);
    assert!(err.contains("missing.kubeconfig"), "{err}");
}
