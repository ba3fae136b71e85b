//! After `rotor migrate apply`, the team's tools work on green as they did on blue: the real
//! kubectl (client-side apply with kustomize and prune, server-side apply), Helm 3 (three-way
//! merge) and Helm 4 (server-side apply) each deploy a change and a removal, and Helm rolls
//! back — on blue and on green alike, and the two end up the same, owners included.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::kubectl::{Kubectl, start_sim, write_manifest};
use common::process::run as rotor;
use serde_json::{Value, json};

/// A Helm binary (`helm3`, `helm4`) with its own config, cache and data directories.
struct Helm {
    binary: PathBuf,
    kubeconfig: PathBuf,
    home: tempfile::TempDir,
}

impl Helm {
    fn find(name: &str) -> Option<PathBuf> {
        rotor_test_support::required(
            name,
            rotor_test_support::find_binary(
                &format!("ROTOR_TEST_{}", name.to_uppercase()),
                name,
                &["/usr/local/bin"],
            ),
        )
    }

    fn new(binary: PathBuf, kubeconfig: &Path) -> Self {
        Helm {
            binary,
            kubeconfig: kubeconfig.to_path_buf(),
            home: tempfile::tempdir().expect("helm home"),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let home = self.home.path();
        let out = Command::new(&self.binary)
            .args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_DATA_HOME", home.join("data"))
            .env("HOME", home)
            .output()
            .expect("helm runs");
        assert!(
            out.status.success(),
            "{} {args:?} failed:\nstdout: {}\nstderr: {}",
            self.binary.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The release's history without times: revision, status, chart, description.
    fn history(&self, release: &str) -> Value {
        let out = self.ok(&["history", release, "-n", release, "-o", "json"]);
        let list: Vec<Value> = serde_json::from_str(&out).expect("helm history JSON");
        json!(
            list.iter()
                .map(|r| json!([r["revision"], r["status"], r["chart"], r["description"]]))
                .collect::<Vec<_>>()
        )
    }
}

const CHART: &str = r#"apiVersion: v2
name: shop
version: 0.1.0
"#;

const VALUES: &str = "image: web:1\nextra: true\n";

const TEMPLATE: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  labels: {app: {{ .Release.Name }}}
data:
  a: "1"
  {{- if .Values.extra }}
  b: "2"
  {{- end }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: {{ .Release.Name }}
    {{- if .Values.extra }}
    tier: front
    {{- end }}
spec:
  replicas: 2
  selector: {matchLabels: {app: {{ .Release.Name }}}}
  template:
    metadata: {labels: {app: {{ .Release.Name }}}}
    spec:
      containers: [{name: main, image: "{{ .Values.image }}"}]
"#;

/// The same application as plain manifests for namespace `ns`: version 1 has the key `b`, the
/// label `tier` and a ConfigMap `extra`; version 2 has none of them and a new image.
fn manifests(ns: &str, v2: bool) -> String {
    let (image, b, tier) = if v2 {
        ("web:2", "", "")
    } else {
        ("web:1", "\n  b: \"2\"", "\n    tier: front")
    };
    let extra = if v2 {
        String::new()
    } else {
        format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  namespace: {ns}\n  labels: {{app: {ns}}}\ndata: {{x: \"1\"}}\n"
        )
    };
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: {ns}
  labels: {{app: {ns}}}
data:
  a: "1"{b}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
  labels:
    app: {ns}{tier}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {ns}}}}}
  template:
    metadata: {{labels: {{app: {ns}}}}}
    spec:
      containers: [{{name: main, image: "{image}"}}]
{extra}"#
    )
}

/// Writes the chart and the kustomize directories (v1, v2) under `dir`.
fn write_sources(dir: &Path) {
    let chart = dir.join("chart");
    std::fs::create_dir_all(chart.join("templates")).expect("chart dir");
    write_manifest(&chart, "Chart.yaml", CHART);
    write_manifest(&chart, "values.yaml", VALUES);
    write_manifest(&chart.join("templates"), "app.yaml", TEMPLATE);
    for (name, v2) in [("kustomize-v1", false), ("kustomize-v2", true)] {
        let k = dir.join(name);
        std::fs::create_dir_all(&k).expect("kustomize dir");
        write_manifest(&k, "app.yaml", &manifests("csa", v2));
        write_manifest(&k, "kustomization.yaml", "resources: [app.yaml]\n");
    }
    write_manifest(dir, "ssa-v1.yaml", &manifests("ssa", false));
    write_manifest(dir, "ssa-v2.yaml", &manifests("ssa", true));
}

/// Version 1 everywhere: kustomize output applied client-side, manifests applied server-side,
/// the chart installed by Helm 3 and by Helm 4.
fn install(dir: &Path, kubectl: &Kubectl, helm3: &Helm, helm4: &Helm) {
    for ns in ["csa", "ssa", "h3", "h4"] {
        kubectl.ok(&["create", "namespace", ns]);
    }
    let d = |p: &str| dir.join(p).to_str().expect("path").to_string();
    kubectl.ok(&["apply", "-k", &d("kustomize-v1")]);
    kubectl.ok(&["apply", "--server-side", "-f", &d("ssa-v1.yaml")]);
    helm3.ok(&["install", "h3", &d("chart"), "-n", "h3"]);
    helm4.ok(&["install", "h4", &d("chart"), "-n", "h4"]);
}

/// Version 2 everywhere, then Helm's rollbacks to revision 1.
fn upgrade_and_roll_back(dir: &Path, kubectl: &Kubectl, helm3: &Helm, helm4: &Helm) {
    let d = |p: &str| dir.join(p).to_str().expect("path").to_string();
    kubectl.ok(&[
        "apply",
        "-k",
        &d("kustomize-v2"),
        "--prune",
        "-l",
        "app=csa",
    ]);
    kubectl.ok(&["apply", "--server-side", "-f", &d("ssa-v2.yaml")]);
    for (helm, release) in [(helm3, "h3"), (helm4, "h4")] {
        let chart = d("chart");
        let args = ["--set", "image=web:2", "--set", "extra=false"];
        let mut upgrade = vec!["upgrade", release, &chart, "-n", release];
        upgrade.extend(args);
        helm.ok(&upgrade);
    }
    helm3.ok(&["rollback", "h3", "1", "-n", "h3"]);
    helm4.ok(&["rollback", "h4", "1", "-n", "h4"]);
}

/// What the tools made of namespace `ns`: each ConfigMap and Deployment by name, without what
/// each cluster assigns itself (uids, versions, times, status), with its owners.
fn state(kubectl: &Kubectl, ns: &str) -> Value {
    let list = kubectl.json(&[
        "get",
        "configmaps,deployments",
        "-n",
        ns,
        "--show-managed-fields",
    ]);
    let mut out = serde_json::Map::new();
    for item in list["items"].as_array().expect("items") {
        let name = item["metadata"]["name"].as_str().expect("name");
        if name == "kube-root-ca.crt" {
            continue;
        }
        let mut item = item.clone();
        let meta = item["metadata"].as_object_mut().expect("metadata");
        for volatile in ["uid", "resourceVersion", "creationTimestamp", "generation"] {
            meta.remove(volatile);
        }
        if let Some(Value::Array(entries)) = meta.get_mut("managedFields") {
            entries.retain(|e| e["subresource"] != "status");
            for e in entries.iter_mut() {
                e.as_object_mut().expect("entry").remove("time");
            }
            entries.sort_by_key(|e| e.to_string());
        }
        item.as_object_mut().expect("object").remove("status");
        out.insert(
            format!("{}/{name}", item["kind"].as_str().expect("kind")),
            item,
        );
    }
    Value::Object(out)
}

#[test]
fn tools_work_on_green_as_on_blue() {
    let (Some(helm3), Some(helm4)) = (Helm::find("helm3"), Helm::find("helm4")) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (_sim, green) = start_sim(dir.path(), 2, &[]);
    let kubeconfigs = dir.path().join("kubeconfigs");
    let blue_cfg = kubeconfigs.join("member-0000.kubeconfig");
    let green_cfg = kubeconfigs.join("member-0001.kubeconfig");
    let blue = Kubectl::new(blue_cfg.clone());
    let on = |cfg: &Path| (Helm::new(helm3.clone(), cfg), Helm::new(helm4.clone(), cfg));
    let (blue3, blue4) = on(&blue_cfg);
    let (green3, green4) = on(&green_cfg);
    write_sources(dir.path());
    install(dir.path(), &blue, &blue3, &blue4);

    let (blue_path, green_path) = (
        blue_cfg.to_str().expect("path"),
        green_cfg.to_str().expect("path"),
    );
    let (ok, out, err) = rotor(&[
        "migrate", "apply", "--from", blue_path, "--to", green_path, "--json",
    ]);
    assert!(ok, "migrate apply: {err}\n{out}");
    let (ok, out, err) = rotor(&["migrate", "diff", "--from", blue_path, "--to", green_path]);
    assert!(ok, "migrate diff after a clean migration: {err}\n{out}");
    let namespaces = ["csa", "ssa", "h3", "h4"];
    for ns in namespaces {
        assert_eq!(
            state(&blue, ns),
            state(&green, ns),
            "{ns} right after migrating"
        );
    }
    assert_eq!(green3.history("h3"), blue3.history("h3"));
    assert_eq!(green4.history("h4"), blue4.history("h4"));
    let managers = |ns: &str| -> Vec<(String, String)> {
        let s = state(&green, ns);
        s["Deployment/web"]["metadata"]["managedFields"]
            .as_array()
            .expect("managedFields shown")
            .iter()
            .map(|e| (e["manager"].to_string(), e["operation"].to_string()))
            .collect()
    };
    assert!(managers("ssa").contains(&("\"kubectl\"".into(), "\"Apply\"".into())));
    assert!(managers("h4").contains(&("\"helm\"".into(), "\"Apply\"".into())));
    assert!(managers("h3").contains(&("\"helm\"".into(), "\"Update\"".into())));

    upgrade_and_roll_back(dir.path(), &blue, &blue3, &blue4);
    upgrade_and_roll_back(dir.path(), &green, &green3, &green4);
    for ns in namespaces {
        let (b, g) = (state(&blue, ns), state(&green, ns));
        assert_eq!(b, g, "{ns} after the same upgrade on both");
    }
    // What the upgrades did, seen on green: the change applied, the removals pruned.
    let csa = state(&green, "csa");
    assert!(csa.get("ConfigMap/extra").is_none(), "{csa}");
    assert_eq!(csa["ConfigMap/settings"]["data"], json!({"a": "1"}));
    let ssa = state(&green, "ssa");
    assert_eq!(ssa["ConfigMap/settings"]["data"], json!({"a": "1"}));
    assert!(
        ssa["Deployment/web"]["metadata"]["labels"]
            .get("tier")
            .is_none()
    );
    assert_eq!(
        ssa["Deployment/web"]["spec"]["template"]["spec"]["containers"][0]["image"],
        "web:2"
    );
    // Rolled back to revision 1: the key and the label are back.
    for ns in ["h3", "h4"] {
        let h = state(&green, ns);
        assert_eq!(
            h["ConfigMap/settings"]["data"],
            json!({"a": "1", "b": "2"}),
            "{ns}"
        );
        assert_eq!(
            h["Deployment/web"]["metadata"]["labels"]["tier"], "front",
            "{ns}"
        );
    }
    assert_eq!(green3.history("h3"), blue3.history("h3"));
    assert_eq!(green4.history("h4"), blue4.history("h4"));
}
