//! Conformance with the real kubectl, against `rotor sim` and `rotor serve` started as processes:
//! each step asserts on what comes back, not only on the exit code.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::kubectl::{CLUSTER_YAML, Kubectl, LIMIT, Running, free_port, start_serve, start_sim};
use serde_json::Value;

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget, shortNames: [gd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
              color: {type: string}
"#;

fn manifest(replicas: u32) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: conf, labels: {{app: web}}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports: [{{containerPort: 80}}]
        env: [{{name: MODE, value: blue}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: conf}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 80}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: cfg, namespace: conf}}
data: {{k: original}}
---
apiVersion: v1
kind: Secret
metadata: {{name: creds, namespace: conf}}
stringData: {{password: hunter2}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: web, namespace: conf}}
spec:
  minAvailable: 1
  selector: {{matchLabels: {{app: web}}}}
---
apiVersion: example.com/v1
kind: Gadget
metadata: {{name: g1, namespace: conf}}
spec: {{size: {replicas}, color: blue}}
"#
    )
}

/// The conformance steps, against any API rotor serves.
fn conformance(k: &Kubectl, dir: &Path, simulated: bool) {
    // create ns (kubectl sends it as protobuf; kubectl_create.rs covers the other kinds)
    let out = k.ok(&["create", "ns", "conf"]);
    assert!(out.contains("namespace/conf created"), "{out}");
    let ns = k.json(&["get", "ns", "conf"]);
    assert_eq!(ns["status"]["phase"], "Active");

    // CRD first (a CR's kind must be known before its manifest is mapped), then everything.
    std::fs::write(dir.join("crd.yaml"), CRD).expect("write crd");
    let out = k.ok(&["apply", "-f", dir.join("crd.yaml").to_str().expect("path")]);
    assert!(
        out.contains("customresourcedefinition.apiextensions.k8s.io/gadgets.example.com created"),
        "{out}"
    );
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/gadgets.example.com",
        "--timeout=20s",
    ]);
    std::fs::write(dir.join("app.yaml"), manifest(2)).expect("write manifest");
    let out = k.ok(&["apply", "-f", dir.join("app.yaml").to_str().expect("path")]);
    for line in [
        "deployment.apps/web created",
        "service/web created",
        "configmap/cfg created",
        "secret/creds created",
        "poddisruptionbudget.policy/web created",
        "gadget.example.com/g1 created",
    ] {
        assert!(out.contains(line), "apply output lacks {line:?}: {out}");
    }
    // Re-applying unchanged is a no-op, reported as such.
    let out = k.ok(&["apply", "-f", dir.join("app.yaml").to_str().expect("path")]);
    assert!(out.contains("deployment.apps/web unchanged"), "{out}");

    let d = k.json(&["get", "deploy", "web", "-n", "conf"]);
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
        "blue"
    );
    assert!(
        d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );
    let svc = k.json(&["get", "svc", "web", "-n", "conf"]);
    assert!(
        svc["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.")),
        "clusterIP allocated: {svc}"
    );
    let secret = k.json(&["get", "secret", "creds", "-n", "conf"]);
    assert_eq!(
        secret["data"]["password"], "aHVudGVyMg==",
        "stringData folded into data"
    );
    let g = k.json(&["get", "gd", "g1", "-n", "conf"]);
    assert_eq!(g["spec"]["color"], "blue");
    let table = k.ok(&["get", "gadgets", "-n", "conf"]);
    assert!(
        table.contains("SIZE") && table.contains("g1"),
        "printer columns: {table}"
    );
    if simulated {
        k.eventually(
            &["get", "deploy", "web", "-n", "conf"],
            "deployment ready in the simulator",
            |d| d["status"]["readyReplicas"] == 2,
        );
        let nodes = k.json(&["get", "nodes"]);
        assert!(!nodes["items"].as_array().expect("items").is_empty());
    }

    // A client-side apply that drops the env var removes it (strategic merge patch with directives).
    let changed = manifest(2).replace("        env: [{name: MODE, value: blue}]\n", "");
    std::fs::write(dir.join("app2.yaml"), changed).expect("write");
    k.ok(&["apply", "-f", dir.join("app2.yaml").to_str().expect("path")]);
    let d = k.json(&["get", "deploy", "web", "-n", "conf"]);
    assert!(
        d["spec"]["template"]["spec"]["containers"][0]
            .get("env")
            .is_none(),
        "env removed: {d}"
    );
    assert_eq!(d["metadata"]["generation"], 2);

    // Server-side apply after client-side apply, as on a real cluster: changing a field the
    // client-side applier owns conflicts; applying the same values shares ownership and kubectl
    // migrates the client-side manager's fields to "kubectl"; after that, changes apply.
    std::fs::write(dir.join("app3.yaml"), manifest(3)).expect("write");
    let out = k.run(&[
        "apply",
        "--server-side",
        "-f",
        dir.join("app3.yaml").to_str().expect("path"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("conflict with \"kubectl-client-side-apply\"")
            && err.contains(".spec.replicas"),
        "{err}"
    );
    let out = k.ok(&[
        "apply",
        "--server-side",
        "-f",
        dir.join("app2.yaml").to_str().expect("path"),
    ]);
    assert!(
        out.contains("deployment.apps/web serverside-applied"),
        "{out}"
    );
    let d = k.json(&[
        "get",
        "deploy",
        "web",
        "-n",
        "conf",
        "--show-managed-fields",
    ]);
    let managers: Vec<&str> = d["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(
        !managers.contains(&"kubectl-client-side-apply"),
        "kubectl migrated client-side ownership: {managers:?}"
    );
    let out = k.ok(&[
        "apply",
        "--server-side",
        "-f",
        dir.join("app3.yaml").to_str().expect("path"),
    ]);
    assert!(
        out.contains("deployment.apps/web serverside-applied"),
        "{out}"
    );
    let d = k.json(&[
        "get",
        "deploy",
        "web",
        "-n",
        "conf",
        "--show-managed-fields",
    ]);
    assert_eq!(d["spec"]["replicas"], 3);
    let managers: Vec<&str> = d["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(
        managers.contains(&"kubectl"),
        "kubectl owns fields after SSA: {managers:?}"
    );
    let g = k.json(&["get", "gadget", "g1", "-n", "conf"]);
    assert_eq!(g["spec"]["size"], 3);

    // get -w sees a patch made by another process.
    let mut watch = k
        .command(&[
            "get",
            "configmap",
            "cfg",
            "-n",
            "conf",
            "-w",
            "-o",
            "jsonpath={.data.k}{\"\\n\"}",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w");
    let stdout = watch.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let _watch = Running(watch);
    assert_eq!(
        rx.recv_timeout(LIMIT).expect("initial watch line"),
        "original"
    );
    k.ok(&[
        "patch",
        "configmap",
        "cfg",
        "-n",
        "conf",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"k":"changed"}}"#,
    ]);
    let deadline = Instant::now() + LIMIT;
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("watch saw the patch in time");
        if line == "changed" {
            break;
        }
    }

    // scale, label
    let out = k.ok(&["scale", "deploy", "web", "-n", "conf", "--replicas=4"]);
    assert!(out.contains("deployment.apps/web scaled"), "{out}");
    assert_eq!(
        k.json(&["get", "deploy", "web", "-n", "conf"])["spec"]["replicas"],
        4
    );
    if simulated {
        k.eventually(
            &["get", "deploy", "web", "-n", "conf"],
            "4 ready replicas",
            |d| d["status"]["readyReplicas"] == 4,
        );
    }
    k.ok(&["label", "configmap", "cfg", "-n", "conf", "team=blue"]);
    assert_eq!(
        k.json(&["get", "cm", "cfg", "-n", "conf"])["metadata"]["labels"]["team"],
        "blue"
    );
    let selected = k.json(&["get", "cm", "-n", "conf", "-l", "team=blue"]);
    assert_eq!(selected["items"].as_array().map(Vec::len), Some(1));

    // delete, delete ns
    let out = k.ok(&["delete", "configmap", "cfg", "-n", "conf"]);
    assert!(out.contains("configmap \"cfg\" deleted"), "{out}");
    k.not_found(&["get", "configmap", "cfg", "-n", "conf"]);
    let out = k.ok(&["delete", "ns", "conf", "--timeout=20s"]);
    assert!(out.contains("namespace \"conf\" deleted"), "{out}");
    k.not_found(&["get", "ns", "conf"]);
    k.not_found(&["get", "deploy", "web", "-n", "conf"]);
}

#[test]
fn kubectl_against_rotor_sim() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_sim, k) = start_sim(dir.path(), 2, &["--ready-delay-ms", "100"]);
    let kubeconfigs = dir.path().join("kubeconfigs");
    let version = k.ok(&["version", "-o", "json"]);
    let v: Value = serde_json::from_str(&version).expect("version json");
    assert_eq!(v["serverVersion"]["gitVersion"], "v1.34.0");
    conformance(&k, dir.path(), true);
    // The other member cluster is a separate API: it never saw any of this.
    let other = Kubectl::new(kubeconfigs.join("member-0000.kubeconfig"));
    other.not_found(&["get", "crd", "gadgets.example.com"]);
}

/// `kubectl apply -f` of a rotor.dev Cluster, as a user writes it.
fn apply_cluster(k: &Kubectl, dir: &Path) {
    let file = dir.join("cluster.yaml");
    std::fs::write(&file, CLUSTER_YAML).expect("write");
    let out = k.ok(&["apply", "-f", file.to_str().expect("path")]);
    assert!(
        out.contains("cluster.rotor.dev/prod-sim-a created"),
        "{out}"
    );
}

/// The same conformance run against `rotor serve --store etcd:URL` on a real etcd.
#[test]
fn kubectl_against_rotor_serve_on_etcd() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let Some(etcd) = runtime.block_on(common::etcd_process()) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let kc = dir.path().join("admin.kubeconfig");
    let listen = format!("127.0.0.1:{}", free_port());
    let (_serve, k) = start_serve(&format!("etcd:{}", etcd.url), &listen, &kc);
    conformance(&k, dir.path(), false);
    apply_cluster(&k, dir.path());
    assert!(k.ok(&["get", "clusters.rotor.dev"]).contains("prod-sim-a"));
}

#[test]
fn kubectl_against_rotor_serve_and_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("rotor.db");
    let kc = dir.path().join("admin.kubeconfig");
    let store = format!("sqlite:{}", db.display());
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    {
        let (_serve, k) = start_serve(&store, &listen, &kc);
        conformance(&k, dir.path(), false);
        let empty = k.run(&["get", "clusters.rotor.dev"]);
        assert!(
            empty.status.success()
                && String::from_utf8_lossy(&empty.stderr).contains("No resources found"),
            "{empty:?}"
        );
        apply_cluster(&k, dir.path());
    }
    std::fs::remove_file(&kc).expect("remove kubeconfig");
    let (_serve, k) = start_serve(&store, &listen, &kc);
    let c = {
        let deadline = Instant::now() + LIMIT;
        loop {
            let out = k.run(&["get", "clusters.rotor.dev", "prod-sim-a", "-o", "json"]);
            if out.status.success() {
                break serde_json::from_slice::<Value>(&out.stdout).expect("json");
            }
            assert!(
                Instant::now() < deadline,
                "cluster not served after restart: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert_eq!(c["spec"]["region"], "us-east-1");
    // `rotor kubeconfig` prints a working kubeconfig for the same server.
    let (ok, printed, err) =
        common::process::run(&["kubeconfig", "--store", &store, "--server", &listen]);
    assert!(ok, "rotor kubeconfig: {err}");
    let kc2 = dir.path().join("printed.kubeconfig");
    std::fs::write(&kc2, printed).expect("write");
    let k2 = Kubectl::new(kc2);
    assert!(k2.ok(&["get", "clusters.rotor.dev"]).contains("prod-sim-a"));
}
