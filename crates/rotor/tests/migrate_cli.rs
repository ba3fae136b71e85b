//! `rotor migrate plan|preflight|diff|apply` as an operator runs them, against two simulated clusters.

use crate::common;

use std::time::Duration;

use common::fleet::{apply_sample_app, serve_router};
use common::process::run as rotor;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, Patch, PatchParams};
use rotor::rehearsal::{APP_NAME, APP_NAMESPACE};
use rotor_sim::{Sim, SimConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_plan_and_apply_between_two_clusters() {
    let sim = Sim::new(SimConfig {
        workload_ready_delay: Duration::from_millis(100),
        ..SimConfig::default()
    });
    sim.add_cluster("blue", 34).await.expect("blue");
    sim.add_cluster("green", 35).await.expect("green");
    let url = serve_router(sim.router()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    sim.write_kubeconfigs(dir.path(), &url)
        .expect("kubeconfigs");
    let blue_cfg = dir.path().join("blue.kubeconfig");
    let green_cfg = dir.path().join("green.kubeconfig");
    let blue = rotor::client_for(&std::fs::read_to_string(&blue_cfg).expect("read"))
        .await
        .expect("client");
    apply_sample_app(&blue).await;
    let pp = PatchParams::apply("test");
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "creds", "namespace": APP_NAMESPACE},
        "stringData": {"password": "blue-secret-value"},
    }))
    .expect("secret");
    Api::<Secret>::namespaced(blue, APP_NAMESPACE)
        .patch("creds", &pp, &Patch::Apply(&secret))
        .await
        .expect("secret");

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

    // Before the migration, everything selected is missing in green.
    let diff = |json: bool| {
        let mut args = vec!["migrate", "diff", "--from", blue_path, "--to", green_path];
        if json {
            args.push("--json");
        }
        rotor(&args)
    };
    let (ok, out, _) = diff(true);
    assert!(!ok, "diff must fail while green lacks objects: {out}");
    let before: serde_json::Value = serde_json::from_str(out.trim()).expect("diff is JSON");
    assert!(before["objects"].as_u64().unwrap_or(0) >= 4, "{before}");
    assert_eq!(before["missing"], before["objects"], "{before}");

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
    let d = Api::<Deployment>::namespaced(green.clone(), APP_NAMESPACE)
        .get(APP_NAME)
        .await
        .expect("the Deployment is in green");
    assert_eq!(d.spec.and_then(|s| s.replicas), Some(2));

    // After it, green holds what blue does. Who owns each annotation green's controllers write
    // about green (the Deployment's revision) is not compared: it depends on whether green's
    // controller wrote it before or after the owners' replay (1 run in 6 did, before).
    let (ok, out, err) = diff(true);
    assert!(ok, "{out} {err}");
    let after: serde_json::Value = serde_json::from_str(out.trim()).expect("diff is JSON");
    assert_eq!(after["same"], before["objects"], "{after}");
    // Someone changes green: the diff names the paths, never a Secret's value.
    Api::<Deployment>::namespaced(green.clone(), APP_NAMESPACE)
        .patch(
            APP_NAME,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 5}})),
        )
        .await
        .expect("scaled");
    Api::<Secret>::namespaced(green.clone(), APP_NAMESPACE)
        .patch(
            "creds",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"stringData": {"password": "green-secret-value"}})),
        )
        .await
        .expect("secret changed");
    let (ok, table, _) = diff(false);
    assert!(!ok, "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.contains("Deployment.apps demo-app/web")
                && l.contains("spec.replicas: blue 2, green 5")),
        "{table}"
    );
    assert!(
        table.lines().any(|l| l.contains("Secret demo-app/creds")
            && l.contains("data.password: blue (hidden), green (hidden)")),
        "{table}"
    );
    for leaked in [
        "blue-secret-value",
        "green-secret-value",
        "Z3JlZW4tc2VjcmV0LXZhbHVl",
    ] {
        assert!(!table.contains(leaked), "{table}");
    }
    assert!(table.contains(" 2 differ, 0 missing"), "{table}");

    // A source that cannot be reached is named in the error.
    let missing = dir.path().join("missing.kubeconfig");
    let (ok, _, err) = rotor(&["migrate", "plan", "--from", missing.to_str().expect("path")]);
    assert!(!ok);
    assert!(err.contains("missing.kubeconfig"), "{err}");
}

/// `rotor migrate preflight` before green exists (the target release's OpenAPI data) and once it
/// does (its discovery) gives one answer; `apply` refuses what is blocked before writing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_names_what_the_target_release_cannot_take() {
    const FC: &str = "flowcontrol.apiserver.k8s.io";
    let sim = Sim::new(SimConfig::default());
    let blue_server = sim
        .add_cluster("blue", 25)
        .await
        .expect("blue")
        .server
        .clone();
    let url = serve_router(sim.router()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let put = |plural: &'static str, obj: serde_json::Value| {
        let server = blue_server.clone();
        async move {
            let av = obj["apiVersion"].as_str().expect("apiVersion").to_string();
            let (group, version) = av.rsplit_once('/').unwrap_or(("", &av));
            let res = server.resource(group, version, plural).expect("served");
            let ns = obj
                .pointer("/metadata/namespace")
                .and_then(serde_json::Value::as_str)
                .map(String::from);
            server
                .create(
                    &res,
                    ns.as_deref(),
                    obj,
                    &rotor_apiserver::WriteOptions::default(),
                )
                .await
                .unwrap_or_else(|e| panic!("{plural}: {e}"));
        }
    };
    put(
        "namespaces",
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    )
    .await;
    put(
        "prioritylevelconfigurations",
        serde_json::json!({"apiVersion": format!("{FC}/v1beta2"),
        "kind": "PriorityLevelConfiguration", "metadata": {"name": "batch"},
        "spec": {"type": "Limited", "limited": {"assuredConcurrencyShares": 5,
            "limitResponse": {"type": "Reject"}}}}),
    )
    .await;
    put("flowschemas", serde_json::json!({"apiVersion": format!("{FC}/v1beta2"), "kind": "FlowSchema",
        "metadata": {"name": "batch"}, "spec": {"priorityLevelConfiguration": {"name": "batch"},
            "matchingPrecedence": 500, "rules": [{"subjects": [{"kind": "Group", "group": {"name": "batch"}}],
                "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]}]}})).await;
    sim.write_kubeconfigs(dir.path(), &url)
        .expect("kubeconfigs");
    let blue_cfg = dir.path().join("blue.kubeconfig");
    let blue_path = blue_cfg.to_str().expect("utf-8 path");

    // Before green exists.
    let (ok, out, err) = rotor(&[
        "migrate",
        "preflight",
        "--from",
        blue_path,
        "--target-version",
        "1.32",
        "--json",
    ]);
    assert!(!ok, "a blocked object must fail the preflight: {out}");
    assert!(
        err.contains("1 object(s) cannot move to Kubernetes 1.32"),
        "{err}"
    );
    let offline: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    assert_eq!(offline["sourceVersion"], "1.25", "{offline}");
    let blocked = offline["blocked"].as_array().expect("blocked");
    assert_eq!(blocked.len(), 1, "{offline}");
    assert_eq!(blocked[0]["kind"], "PriorityLevelConfiguration");
    assert_eq!(blocked[0]["name"], "batch");
    assert_eq!(blocked[0]["apiVersion"], format!("{FC}/v1beta2"));
    assert_eq!(blocked[0]["target"], "Kubernetes 1.32");
    assert!(
        blocked[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("assuredConcurrencyShares")),
        "{offline}"
    );
    let row = |doc: &serde_json::Value, kind: &str| {
        doc["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["kind"] == kind).cloned())
            .unwrap_or_else(|| panic!("{kind} missing: {doc}"))
    };
    let fs = row(&offline, &format!("FlowSchema.{FC}"));
    assert_eq!(fs["status"], "convert", "{fs}");
    assert_eq!(
        (fs["from"].as_str(), fs["to"].as_str()),
        (Some("v1beta2"), Some("v1"))
    );
    assert_eq!(row(&offline, "Namespace")["status"], "ok");

    // The table says the same to a person.
    let (ok, table, _) = rotor(&[
        "migrate",
        "preflight",
        "--from",
        blue_path,
        "--target-version",
        "1.32",
    ]);
    assert!(!ok);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("PriorityLevelConfiguration.") && l.contains("blocked")),
        "{table}"
    );
    assert!(table.contains("v1beta2 → v1"), "{table}");
    // A release that still serves v1beta2 takes everything.
    let (ok, out, err) = rotor(&[
        "migrate",
        "preflight",
        "--from",
        blue_path,
        "--target-version",
        "1.28",
    ]);
    assert!(ok, "{out}{err}");

    // Green exists now: its discovery gives the same answer.
    sim.add_cluster("green", 32).await.expect("green");
    sim.write_kubeconfigs(dir.path(), &url)
        .expect("kubeconfigs");
    let green_cfg = dir.path().join("green.kubeconfig");
    let green_path = green_cfg.to_str().expect("utf-8 path");
    let (ok, out, _) = rotor(&[
        "migrate",
        "preflight",
        "--from",
        blue_path,
        "--to",
        green_path,
        "--json",
    ]);
    assert!(!ok);
    let live: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    assert_eq!(live["blocked"], offline["blocked"]);
    assert_eq!(live["resources"], offline["resources"]);

    // `plan --to` shows it too; `apply` refuses before anything is written.
    let (ok, plan, err) = rotor(&["migrate", "plan", "--from", blue_path, "--to", green_path]);
    assert!(ok, "{err}");
    assert!(plan.contains("converted: 1 × FlowSchema"), "{plan}");
    assert!(
        plan.contains("blocked: PriorityLevelConfiguration batch"),
        "{plan}"
    );
    let (ok, _, err) = rotor(&["migrate", "apply", "--from", blue_path, "--to", green_path]);
    assert!(!ok);
    assert!(
        err.contains("PriorityLevelConfiguration batch (flowcontrol.apiserver.k8s.io/v1beta2) cannot move to Kubernetes 1.32"),
        "{err}"
    );
    let green = rotor::client_for(&std::fs::read_to_string(&green_cfg).expect("read"))
        .await
        .expect("client");
    assert!(
        Api::<Namespace>::all(green)
            .get_opt("shop")
            .await
            .expect("green answers")
            .is_none(),
        "green was written to"
    );
}
