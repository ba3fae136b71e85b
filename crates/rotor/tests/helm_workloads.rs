//! Workloads beyond Deployments on `rotor sim`, through the real kubectl and Helm 3 and 4: a chart
//! with a Deployment, a StatefulSet, a DaemonSet, a Service, a Job and a post-install hook Job
//! installs and upgrades with `--wait --wait-for-jobs`; the StatefulSet's Pods are `db-0`,
//! `db-1` with their identity labels and volume claims, the DaemonSet has one Pod per node, the Job completes, the
//! Service gets Endpoints and an EndpointSlice of its ready Pods, the controllers record
//! `SuccessfulCreate`, and `kubectl rollout status|history` work for StatefulSets and DaemonSets.

use crate::common;

use std::path::{Path, PathBuf};

use common::helm::Helm;
use common::kubectl::{Kubectl, start_sim};
use serde_json::Value;

const CHART: &str = "apiVersion: v2\nname: shop\nversion: 0.1.0\n";

const VALUES: &str = "image: \"nginx:1.27\"\n";

const TEMPLATES: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: "{{ .Values.image }}", ports: [{name: http, containerPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 5432}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - {name: db, image: "{{ .Values.image }}", volumeMounts: [{name: data, mountPath: /data}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers:
      - {name: agent, image: "{{ .Values.image }}"}
---
apiVersion: batch/v1
kind: Job
metadata: {name: "migrate-{{ .Release.Revision }}"}
spec:
  completions: 2
  parallelism: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: migrate, image: "{{ .Values.image }}"}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: smoke
  annotations:
    helm.sh/hook: post-install,post-upgrade
    helm.sh/hook-delete-policy: before-hook-creation
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: smoke, image: "{{ .Values.image }}"}
"#;

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or("")
}

/// The chart under `dir/shop`; its path.
fn write_chart(dir: &Path) -> PathBuf {
    let chart = dir.join("shop");
    std::fs::create_dir_all(chart.join("templates")).expect("chart dir");
    std::fs::write(chart.join("Chart.yaml"), CHART).expect("Chart.yaml");
    std::fs::write(chart.join("values.yaml"), VALUES).expect("values.yaml");
    std::fs::write(chart.join("templates/all.yaml"), TEMPLATES).expect("templates");
    chart
}

impl Helm {
    /// `helm install|upgrade` of `chart` as `shop` in `ns`, waiting for every resource and Job.
    fn deploy(&self, verb: &str, chart: &Path, ns: &str, image: &str) {
        let set = format!("image={image}");
        let chart = chart.to_str().expect("path");
        let mut args = vec![verb, "shop", chart, "-n", ns, "--set", &set];
        args.extend(["--wait", "--wait-for-jobs", "--timeout", "60s"]);
        if verb == "install" {
            args.push("--create-namespace");
        }
        self.ok(&args);
    }
}

fn rollout_status(k: &Kubectl, what: &str, ns: &str) -> String {
    k.ok(&["rollout", "status", what, "-n", ns, "--timeout=30s"])
}

/// The revision numbers `kubectl rollout history` lists for `what`.
fn history(k: &Kubectl, what: &str, ns: &str) -> Vec<String> {
    let out = k.ok(&["rollout", "history", what, "-n", ns]);
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .map(str::to_string)
        .collect()
}

fn pods(k: &Kubectl, ns: &str, selector: &str) -> Vec<Value> {
    items(&k.json(&["get", "pods", "-n", ns, "-l", selector]))
}

/// The StatefulSet's Pods: `db-0`, `db-1`, Running, labelled with their name, ordinal and the
/// update revision, which is also the current one.
fn check_stateful_set(k: &Kubectl, ns: &str) -> String {
    let sts = k.json(&["get", "statefulset", "db", "-n", ns]);
    let update = sts["status"]["updateRevision"]
        .as_str()
        .expect("update revision");
    assert_eq!(sts["status"]["currentRevision"], update, "{sts}");
    assert_eq!(sts["status"]["readyReplicas"], 2, "{sts}");
    let mut names = Vec::new();
    for pod in pods(k, ns, "app=db") {
        let labels = &pod["metadata"]["labels"];
        assert_eq!(labels["controller-revision-hash"], update, "{pod}");
        assert_eq!(labels["statefulset.kubernetes.io/pod-name"], name(&pod));
        assert_eq!(pod["status"]["phase"], "Running");
        assert_eq!(pod["spec"]["subdomain"], "db");
        let claim = format!("data-{}", name(&pod));
        assert_eq!(
            pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
            claim.as_str()
        );
        let pvc = k.json(&["get", "pvc", &claim, "-n", ns]);
        assert_eq!(pvc["status"]["phase"], "Bound", "{pvc}");
        assert_eq!(pvc["metadata"]["labels"]["app"], "db", "{pvc}");
        names.push(name(&pod).to_string());
    }
    names.sort();
    assert_eq!(names, ["db-0", "db-1"]);
    // The headless Service names each Pod by its hostname (its DNS record upstream).
    // The Endpoints follow the Pods' readiness a moment after the workload's status does.
    k.eventually(
        &["get", "endpoints", "db", "-n", ns],
        "the headless Service's Endpoints naming db-0 and db-1",
        |ep| {
            let mut hostnames: Vec<&str> = ep["subsets"][0]["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a["hostname"].as_str())
                .collect();
            hostnames.sort();
            hostnames == ["db-0", "db-1"]
        },
    );
    update.to_string()
}

/// One DaemonSet Pod on each of the three simulated nodes, each of the current revision.
fn check_daemon_set(k: &Kubectl, ns: &str) {
    let ds = k.json(&["get", "daemonset", "agent", "-n", ns]);
    assert_eq!(ds["status"]["desiredNumberScheduled"], 3, "{ds}");
    assert_eq!(ds["status"]["numberReady"], 3, "{ds}");
    let mut nodes: Vec<String> = pods(k, ns, "app=agent")
        .iter()
        .map(|p| p["spec"]["nodeName"].as_str().unwrap_or("").to_string())
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["node-0", "node-1", "node-2"]);
}

/// The Job ran its two completions one at a time and is Complete.
fn check_job(k: &Kubectl, ns: &str, job: &str) {
    let j = k.json(&["get", "job", job, "-n", ns]);
    assert_eq!(j["status"]["succeeded"], 2, "{j}");
    assert!(j["status"]["completionTime"].is_string(), "{j}");
    let conditions = j["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let types: Vec<&str> = conditions
        .iter()
        .filter_map(|c| c["type"].as_str())
        .collect();
    assert_eq!(types, ["SuccessCriteriaMet", "Complete"], "{j}");
    let done = pods(k, ns, &format!("batch.kubernetes.io/job-name={job}"));
    assert_eq!(done.len(), 2);
    assert!(done.iter().all(|p| p["status"]["phase"] == "Succeeded"));
}

/// The Service `web` lists its two ready Pods on the named target port.
fn check_endpoints(k: &Kubectl, ns: &str) {
    let mut expected: Vec<String> = pods(k, ns, "app=web")
        .iter()
        .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_string))
        .collect();
    expected.sort();
    let ips = |ep: &Value| -> Vec<String> {
        let mut ips: Vec<String> = ep["subsets"][0]["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["ip"].as_str().map(str::to_string))
            .collect();
        ips.sort();
        ips
    };
    // The Endpoints follow the Pods' readiness a moment after the Deployment's status does.
    let ep = k.eventually(
        &["get", "endpoints", "web", "-n", ns],
        "the Service's Endpoints listing the ready web Pods",
        |ep| ips(ep) == expected,
    );
    assert_eq!(expected.len(), 2, "{ep}");
    assert_eq!(ep["subsets"][0]["ports"][0]["port"], 8080, "{ep}");
    let slices = items(&k.eventually(
        &[
            "get",
            "endpointslices",
            "-n",
            ns,
            "-l",
            "kubernetes.io/service-name=web",
        ],
        "the Service's EndpointSlice listing the ready web Pods",
        |v| {
            let addresses = |s: &Value| -> Vec<String> {
                let mut a: Vec<String> = s["endpoints"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e["addresses"][0].as_str().map(str::to_string))
                    .collect();
                a.sort();
                a
            };
            items(v).first().is_some_and(|s| addresses(s) == expected)
        },
    ));
    assert_eq!(slices.len(), 1, "{slices:?}");
    let endpoints = slices[0]["endpoints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(endpoints.len(), 2, "{slices:?}");
    assert!(endpoints.iter().all(|e| e["conditions"]["ready"] == true));
    assert_eq!(slices[0]["ports"][0]["port"], 8080);
}

fn check_events(k: &Kubectl, ns: &str) {
    let events = items(&k.json(&["get", "events", "-n", ns]));
    let said = |reason: &str, message: &str| {
        events.iter().any(|e| {
            e["reason"] == reason
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message))
        })
    };
    assert!(said(
        "SuccessfulCreate",
        "create Pod db-0 in StatefulSet db successful"
    ));
    assert!(said("SuccessfulCreate", "Created pod: agent-"));
    assert!(said("SuccessfulCreate", "Created pod: web-"));
    assert!(said("SuccessfulCreate", "Created pod: migrate-1-"));
    assert!(said("Completed", "Job completed"));
}

/// Install, check every kind, upgrade to another image, check the rollouts and their history.
fn install_and_upgrade(helm: &'static str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_sim, k) = start_sim(dir.path(), 1, &["--ready-delay-ms", "50"]);
    let kubeconfig = dir.path().join("kubeconfigs/member-0000.kubeconfig");
    let helm = Helm::new(helm, kubeconfig);
    let chart = write_chart(dir.path());
    let ns = "shop";

    helm.deploy("install", &chart, ns, "nginx:1.27");
    let first = check_stateful_set(&k, ns);
    check_daemon_set(&k, ns);
    check_job(&k, ns, "migrate-1");
    check_endpoints(&k, ns);
    check_events(&k, ns);

    helm.deploy("upgrade", &chart, ns, "nginx:1.28");
    assert!(rollout_status(&k, "statefulset/db", ns).contains("roll"));
    assert!(rollout_status(&k, "daemonset/agent", ns).contains("successfully rolled out"));
    let second = check_stateful_set(&k, ns);
    assert_ne!(first, second, "the upgrade made a new revision");
    check_daemon_set(&k, ns);
    check_job(&k, ns, "migrate-2");
    check_endpoints(&k, ns);
    for what in ["statefulset/db", "daemonset/agent"] {
        assert_eq!(history(&k, what, ns), ["1", "2"], "{what}");
    }
    let images = |selector: &str| -> Vec<String> {
        pods(&k, ns, selector)
            .iter()
            .map(|p| {
                p["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    };
    assert_eq!(images("app=db"), ["nginx:1.28"; 2]);
    assert_eq!(images("app=agent"), ["nginx:1.28"; 3]);

    // Back to the first template: its revision is renumbered, as upstream does on undo.
    k.ok(&["rollout", "undo", "statefulset/db", "-n", ns]);
    rollout_status(&k, "statefulset/db", ns);
    k.eventually(
        &["get", "statefulset", "db", "-n", ns],
        "the StatefulSet back on its first revision",
        |s| s["status"]["currentRevision"] == first.as_str() && s["status"]["readyReplicas"] == 2,
    );
    assert_eq!(history(&k, "statefulset/db", ns), ["2", "3"]);
}

#[test]
fn helm3_installs_and_upgrades_every_workload_kind_with_wait() {
    install_and_upgrade("helm3");
}

#[test]
fn helm4_installs_and_upgrades_every_workload_kind_with_wait() {
    install_and_upgrade("helm4");
}
