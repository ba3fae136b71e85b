//! kubectl's imperative `create` commands (and `run`, `drain`) against `rotor sim`: kubectl
//! (≥1.32) sends these built-in kinds as protobuf and never retries as JSON, so each one
//! exercises the API server's protobuf decoding; each object is then read back with `get -o
//! json` and its fields checked.

use crate::common;

use base64::Engine;
use common::kubectl::{Kubectl, start_sim};
use serde_json::{Value, json};

/// Runs a create in namespace shop and checks kubectl's report of it.
fn create(k: &Kubectl, args: &[&str], reported: &str) {
    // The namespace first: whatever follows `--` is the container's command.
    let mut full = vec!["create", "-n", "shop"];
    full.extend_from_slice(args);
    let out = k.ok(&full);
    assert!(out.contains(reported), "kubectl {full:?} printed {out:?}");
}

fn get(k: &Kubectl, kind: &str, name: &str) -> Value {
    k.json(&["get", kind, name, "-n", "shop"])
}

#[test]
fn kubectl_create_commands_store_what_they_say() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_sim, k) = start_sim(dir.path(), 1, &["--ready-delay-ms", "100"]);

    let out = k.ok(&["create", "namespace", "shop"]);
    assert!(out.contains("namespace/shop created"), "{out}");

    create(
        &k,
        &[
            "configmap",
            "cfg",
            "--from-literal=a=b",
            "--from-literal=empty=",
        ],
        "configmap/cfg created",
    );
    assert_eq!(
        get(&k, "configmap", "cfg")["data"],
        json!({"a": "b", "empty": ""})
    );

    create(
        &k,
        &[
            "secret",
            "generic",
            "creds",
            "--from-literal=password=hunter2",
        ],
        "secret/creds created",
    );
    let secret = get(&k, "secret", "creds");
    let stored = secret["data"]["password"].as_str().expect("data.password");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(stored)
        .expect("base64");
    assert_eq!(decoded, b"hunter2");
    assert_eq!(secret["type"], "Opaque");

    create(
        &k,
        &[
            "deployment",
            "web",
            "--image=nginx:1.27",
            "--replicas=3",
            "--port=80",
        ],
        "deployment.apps/web created",
    );
    let d = get(&k, "deployment", "web");
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(
        d["spec"]["selector"],
        json!({"matchLabels": {"app": "web"}})
    );
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "nginx:1.27");
    // The protocol is upstream's default.
    assert_eq!(
        c["ports"],
        json!([{"containerPort": 80, "protocol": "TCP"}])
    );
    k.eventually(
        &["get", "deployment", "web", "-n", "shop"],
        "3 ready replicas in the simulator",
        |d| d["status"]["readyReplicas"] == 3,
    );
    // An explicit zero survives the protobuf round trip (not defaulted to 1).
    create(
        &k,
        &["deployment", "idle", "--image=nginx:1.27", "--replicas=0"],
        "deployment.apps/idle created",
    );
    assert_eq!(get(&k, "deployment", "idle")["spec"]["replicas"], 0);

    create(
        &k,
        &["service", "clusterip", "web", "--tcp=80:8080"],
        "service/web created",
    );
    let svc = get(&k, "service", "web");
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}])
    );
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert!(
        svc["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.")),
        "clusterIP allocated: {svc}"
    );
    create(
        &k,
        &["service", "nodeport", "named", "--tcp=80:http"],
        "service/named created",
    );
    assert_eq!(
        get(&k, "service", "named")["spec"]["ports"][0]["targetPort"],
        "http",
        "an IntOrString as a string"
    );

    create(
        &k,
        &["serviceaccount", "robot"],
        "serviceaccount/robot created",
    );
    assert_eq!(
        get(&k, "serviceaccount", "robot")["metadata"]["namespace"],
        "shop"
    );

    create(
        &k,
        &[
            "role",
            "reader",
            "--verb=get,list",
            "--resource=pods,deployments.apps",
        ],
        "role.rbac.authorization.k8s.io/reader created",
    );
    assert_eq!(
        get(&k, "role", "reader")["rules"],
        json!([
            {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]},
            {"verbs": ["get", "list"], "apiGroups": ["apps"], "resources": ["deployments"]},
        ])
    );
    create(
        &k,
        &[
            "rolebinding",
            "read",
            "--role=reader",
            "--serviceaccount=shop:robot",
        ],
        "rolebinding.rbac.authorization.k8s.io/read created",
    );
    let rb = get(&k, "rolebinding", "read");
    assert_eq!(
        rb["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"})
    );
    assert_eq!(
        rb["subjects"],
        json!([{"kind": "ServiceAccount", "name": "robot", "namespace": "shop"}])
    );

    create(
        &k,
        &["job", "hello", "--image=busybox", "--", "echo", "hi"],
        "job.batch/hello created",
    );
    let job = get(&k, "job", "hello");
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["containers"][0]["command"], json!(["echo", "hi"]));
    assert_eq!(pod["containers"][0]["image"], "busybox");
    assert_eq!(pod["restartPolicy"], "Never");

    create(
        &k,
        &[
            "cronjob",
            "tick",
            "--image=busybox",
            "--schedule=*/5 * * * *",
            "--",
            "date",
        ],
        "cronjob.batch/tick created",
    );
    let cj = get(&k, "cronjob", "tick");
    assert_eq!(cj["spec"]["schedule"], "*/5 * * * *");
    let pod = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["containers"][0]["command"], json!(["date"]));
    assert_eq!(pod["restartPolicy"], "OnFailure");

    create(
        &k,
        &["pdb", "web", "--selector=app=web", "--min-available=1"],
        "poddisruptionbudget.policy/web created",
    );
    let pdb = get(&k, "pdb", "web");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"],
        json!({"matchLabels": {"app": "web"}})
    );
    create(
        &k,
        &["pdb", "half", "--selector=app=web", "--max-unavailable=50%"],
        "poddisruptionbudget.policy/half created",
    );
    assert_eq!(get(&k, "pdb", "half")["spec"]["maxUnavailable"], "50%");

    create(
        &k,
        &["quota", "small", "--hard=pods=10,cpu=2,memory=1Gi"],
        "resourcequota/small created",
    );
    assert_eq!(
        get(&k, "quota", "small")["spec"]["hard"],
        json!({"cpu": "2", "memory": "1Gi", "pods": "10"})
    );

    let out = k.ok(&[
        "create",
        "priorityclass",
        "high",
        "--value=1000",
        "--description=very high",
        "--preemption-policy=Never",
    ]);
    assert!(
        out.contains("priorityclass.scheduling.k8s.io/high created"),
        "{out}"
    );
    let pc = k.json(&["get", "priorityclass", "high"]);
    assert_eq!(pc["value"], 1000);
    assert_eq!(pc["description"], "very high");
    assert_eq!(pc["preemptionPolicy"], "Never");
    assert!(pc.get("globalDefault").is_none(), "false is left out: {pc}");

    create(
        &k,
        &["ingress", "shop", "--rule=shop.example/cart=web:80"],
        "ingress.networking.k8s.io/shop created",
    );
    assert_eq!(
        get(&k, "ingress", "shop")["spec"]["rules"],
        json!([{"host": "shop.example", "http": {"paths": [{"path": "/cart", "pathType": "Exact",
            "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}])
    );

    // Cluster-scoped RBAC, and everything listable as usual afterwards.
    let out = k.ok(&[
        "create",
        "clusterrole",
        "node-reader",
        "--verb=get",
        "--resource=nodes",
    ]);
    assert!(
        out.contains("clusterrole.rbac.authorization.k8s.io/node-reader created"),
        "{out}"
    );
    let out = k.ok(&[
        "create",
        "clusterrolebinding",
        "ops",
        "--clusterrole=node-reader",
        "--group=ops",
    ]);
    assert!(
        out.contains("clusterrolebinding.rbac.authorization.k8s.io/ops created"),
        "{out}"
    );
    assert_eq!(
        k.json(&["get", "clusterrolebinding", "ops"])["subjects"],
        json!([{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "ops"}])
    );
    // kubectl run creates a Pod (protobuf); kubectl drain deletes it with protobuf DeleteOptions.
    let nodes = k.json(&["get", "nodes"]);
    let node = nodes["items"][0]["metadata"]["name"]
        .as_str()
        .expect("a simulated node")
        .to_string();
    let overrides = json!({"apiVersion": "v1", "spec": {"nodeName": node}}).to_string();
    let out = k.ok(&[
        "run",
        "-n",
        "shop",
        "solo",
        "--image=busybox",
        &format!("--overrides={overrides}"),
    ]);
    assert!(out.contains("pod/solo created"), "{out}");
    assert_eq!(get(&k, "pod", "solo")["spec"]["nodeName"], node.as_str());
    let out = k.ok(&[
        "drain",
        &node,
        "--force",
        "--disable-eviction",
        "--ignore-daemonsets",
        "--timeout=20s",
    ]);
    assert!(
        out.contains("pod/solo deleted") && out.contains("drained"),
        "{out}"
    );
    k.not_found(&["get", "pod", "solo", "-n", "shop"]);
    k.ok(&["uncordon", &node]);

    let all = k.json(&[
        "get",
        "deploy,svc,cm,secret,sa,job,cronjob,pdb,quota",
        "-n",
        "shop",
    ]);
    assert!(
        all["items"].as_array().map_or(0, Vec::len) >= 12,
        "everything created is listed: {all}"
    );
}
