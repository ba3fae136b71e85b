//! The Helm chart `charts/rotor`: its CRDs are `rotor crdgen`'s, its people's roles are the
//! ones `rotor serve` ships, its dashboard is `deploy/grafana/rotor.json`; it passes `helm lint`
//! and installs with Helm 3 and 4 into a simulated cluster, on a server-side dry run and for
//! real (its Deployment's two replicas becoming ready there), and into `rotor serve`.

use crate::common;
use crate::controllers_mode::{chart_dir, helm_template};

use std::path::Path;

use common::helm::Helm;
use common::kubectl::{Kubectl, serve_sqlite, start_sim};
use common::process::run;
use k8s_openapi::api::rbac::v1::ClusterRole;

#[test]
fn the_charts_crds_are_rotor_crdgens() {
    let (ok, printed, stderr) = run(&["crdgen"]);
    assert!(ok, "rotor crdgen: {stderr}");
    let chart = std::fs::read_to_string(chart_dir().join("crds/rotor.yaml")).expect("chart CRDs");
    assert!(
        chart == printed,
        "charts/rotor/crds/rotor.yaml differs from `rotor crdgen`: \
         rotor crdgen > charts/rotor/crds/rotor.yaml"
    );
}

#[test]
fn the_charts_dashboard_is_deploy_grafana_rotor_json() {
    let read = |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let deploy = chart_dir().join("../../deploy/grafana/rotor.json");
    assert!(
        read(&chart_dir().join("files/rotor.json")) == read(&deploy),
        "charts/rotor/files/rotor.json differs from deploy/grafana/rotor.json: copy it over"
    );
}

#[test]
fn the_charts_roles_are_the_shipped_roles() {
    let rendered = helm_template(&["--show-only", "templates/roles.yaml"]);
    let mut chart: Vec<ClusterRole> = rendered
        .split("\n---")
        .filter(|doc| doc.contains("kind: ClusterRole"))
        .map(|doc| yaml_serde::from_str(doc).expect("a ClusterRole"))
        .collect();
    let mut shipped = rotor::policy::shipped().cluster_roles;
    let key = |r: &ClusterRole| r.metadata.name.clone();
    chart.sort_by_key(key);
    shipped.sort_by_key(key);
    let names = |roles: &[ClusterRole]| roles.iter().map(key).collect::<Vec<_>>();
    assert_eq!(names(&chart), names(&shipped));
    for (c, s) in chart.iter().zip(&shipped) {
        assert_eq!(c.rules, s.rules, "the rules of {:?}", key(c));
    }
}

/// `helm lint`, with every optional part on.
fn lint(helm: &'static str) {
    let out = std::process::Command::new(helm)
        .args(["lint", "--strict", chart_dir().to_str().expect("path")])
        .args(["-n", "rotor-system"])
        .args([
            "--set",
            "grafanaDashboard.enabled=true,metrics.serviceMonitor.enabled=true",
        ])
        .output()
        .expect("helm runs (scripts/install-test-deps.sh installs it)");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{helm} lint: {said}");
    assert!(said.contains("0 chart(s) failed"), "{said}");
}

#[test]
fn helm3_lints_the_chart() {
    lint("helm3");
}

#[test]
fn helm4_lints_the_chart() {
    lint("helm4");
}

/// Into a `rotor sim` member: a server-side dry run, then the install itself with `--wait`; the
/// CRDs, roles, ServiceAccount, metrics Service, dashboard and a ready Deployment exist.
fn install(helm: &'static str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_sim, k) = start_sim(dir.path(), 1, &["--ready-delay-ms", "50"]);
    let helm = Helm::new(helm, dir.path().join("kubeconfigs/member-0000.kubeconfig"));
    let chart = chart_dir();
    let chart = chart.to_str().expect("path");
    k.ok(&["create", "namespace", "rotor-system"]);
    let args = ["rotor", chart, "-n", "rotor-system"];
    let set = ["--set", "grafanaDashboard.enabled=true"];
    let dry = helm.ok(&[&["install"], &args[..], &set, &["--dry-run=server"]].concat());
    assert!(dry.contains("name: rotor-dashboard"), "{dry}");
    for kind in [
        "Deployment",
        "ClusterRole",
        "RoleBinding",
        "Service",
        "ConfigMap",
    ] {
        assert!(dry.contains(&format!("kind: {kind}\n")), "{kind} in: {dry}");
    }
    k.not_found(&["get", "deployment", "rotor", "-n", "rotor-system"]);

    let wait = ["--wait", "--timeout", "60s"];
    helm.ok(&[&["install"], &args[..], &set, &wait].concat());
    check_installed(&k);
    k.ok(&["get", "configmap", "rotor-dashboard", "-n", "rotor-system"]);
    let deploy = k.json(&["get", "deployment", "rotor", "-n", "rotor-system"]);
    assert_eq!(deploy["status"]["readyReplicas"], 2, "{deploy}");
}

/// Into `rotor serve`, which registers rotor's CRDs and writes its shipped roles itself
/// (`--skip-crds`, `shippedRoles=false`: Helm refuses to adopt objects it did not make) and
/// runs no Pods: the objects exist.
fn install_into_serve(helm: &'static str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let kc = dir.path().join("kubeconfig");
    let (_serve, k) = serve_sqlite(&dir.path().join("rotor.db"), &kc, &["--no-controllers"]);
    let helm = Helm::new(helm, kc);
    k.ok(&["create", "namespace", "rotor-system"]);
    let chart = chart_dir();
    let chart = chart.to_str().expect("path");
    let args = ["install", "rotor", chart, "-n", "rotor-system"];
    helm.ok(&[&args[..], &["--skip-crds", "--set", "shippedRoles=false"]].concat());
    check_installed(&k);
}

/// What the chart installs, as kubectl sees it.
fn check_installed(k: &Kubectl) {
    for crd in ["clusters", "clusterswaps", "rollouts"] {
        k.ok(&["get", "crd", &format!("{crd}.rotor.dev")]);
    }
    k.ok(&["get", "clusters.rotor.dev"]);
    for role in [
        "rotor-viewer",
        "rotor-operator",
        "rotor-admin",
        "rotor-controllers",
    ] {
        k.ok(&["get", "clusterrole", role]);
    }
    let ns = ["-n", "rotor-system"];
    for what in [
        "serviceaccount/rotor",
        "role/rotor-controllers",
        "rolebinding/rotor-controllers",
        "service/rotor-metrics",
    ] {
        k.ok(&[&["get", what], &ns[..]].concat());
    }
    let deploy = k.json(&["get", "deployment", "rotor", "-n", "rotor-system"]);
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "rotor");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let container = &pod["containers"][0];
    assert_eq!(container["args"][0], "controllers");
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
}

#[test]
fn helm3_installs_the_chart_into_a_simulated_cluster() {
    install("helm3");
}

#[test]
fn helm4_installs_the_chart_into_a_simulated_cluster() {
    install("helm4");
}

#[test]
fn helm3_installs_the_chart_into_rotor_serve() {
    install_into_serve("helm3");
}

#[test]
fn helm4_installs_the_chart_into_rotor_serve() {
    install_into_serve("helm4");
}
