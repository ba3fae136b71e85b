//! Simulated Pods: made from their owner's template, scheduled on a simulated node at once, and
//! Running and Ready (conditions, container statuses, a 10.x address) after the ready delay.

use rotor_apiserver::{ApiError, object};
use serde_json::{Value, json};

use super::events::{self, Source};
use super::{Ctx, live, merge, owner_ref};

/// A Pod of `owner` (its `spec.template`) named `name`, scheduled on `node`, whose controller
/// is `owner` (of kind `source`).
pub fn from_template(owner: &Value, source: Source, name: &str, node: &str) -> Value {
    let template = &owner["spec"]["template"];
    let mut spec = template["spec"].clone();
    spec["nodeName"] = json!(node);
    let mut meta = template["metadata"].clone();
    if !meta.is_object() {
        meta = json!({});
    }
    meta["name"] = json!(name);
    meta["namespace"] = owner["metadata"]["namespace"].clone();
    meta["ownerReferences"] = json!([owner_ref(source.api_version, source.kind, owner)]);
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
}

/// `OWNER-xxxxx`: the name `generateName` gives a Pod of `owner`.
pub fn random_name(owner: &Value) -> String {
    format!("{}-{}", object::name(owner), object::random_suffix())
}

/// A simulated node picked at random among `nodes` (what the scheduler would choose).
pub fn random_node(nodes: usize) -> String {
    use rand::Rng;
    format!("node-{}", rand::rng().random_range(0..nodes.max(1)))
}

/// Creates `pod` for `owner` and records the controller's `SuccessfulCreate` Event.
pub async fn create(
    ctx: &Ctx,
    source: Source,
    owner: &Value,
    pod: Value,
) -> Result<Value, ApiError> {
    let res = ctx.server.resource("", "v1", "pods")?;
    let ns = owner["metadata"]["namespace"].as_str();
    let created = ctx
        .server
        .create(&res, ns, pod, &super::opts())
        .await?
        .object;
    events::created_pod(ctx, source, owner, object::name(&created)).await;
    Ok(created)
}

/// Pods in a terminal phase (a Job's finished Pods): they count for nothing but their Job.
pub fn is_finished(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

/// Whether a Pod's Ready condition is True.
pub fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Newest first (creation time, then name): the order scale-down deletes in.
pub fn sort_newest_first(pods: &mut [Value]) {
    let key = |p: &Value| {
        (
            object::meta_str(p, "creationTimestamp")
                .unwrap_or("")
                .to_string(),
            object::name(p).to_string(),
        )
    };
    pods.sort_by_key(|p| std::cmp::Reverse(key(p)));
}

/// Deletes `pods` of `owner` (gone already is fine), each with a `SuccessfulDelete` Event.
pub async fn delete(
    ctx: &Ctx,
    source: Source,
    owner: &Value,
    pods: &[Value],
) -> Result<(), ApiError> {
    let res = ctx.server.resource("", "v1", "pods")?;
    let ns = owner["metadata"]["namespace"].as_str();
    for p in pods {
        match ctx
            .server
            .delete(&res, ns, object::name(p), &json!({}), false)
            .await
        {
            Ok(_) => events::deleted_pod(ctx, source, owner, object::name(p)).await,
            Err(e) if e.reason == "NotFound" => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The kubelet's report: Pods `names` in `ns` are Running and Ready (those still there).
pub async fn mark_ready(ctx: &Ctx, ns: &str, names: &[String]) -> Result<(), ApiError> {
    mark(ctx, ns, names, running_status).await
}

/// The kubelet's report for run-to-completion Pods (a Job's): their containers exited, with 0
/// (Succeeded) or with the code their [`EXIT_CODE`] annotation asks for (Failed).
pub async fn mark_finished(ctx: &Ctx, ns: &str, names: &[String]) -> Result<(), ApiError> {
    mark(ctx, ns, names, finished_status).await
}

/// Simulator convention: a Pod (or a Job's Pod template) annotated `sim.rotor.dev/exit-code:
/// "N"` with N ≠ 0 ends Failed, its containers terminated with exit code N.
pub const EXIT_CODE: &str = "sim.rotor.dev/exit-code";
/// Simulator convention: a run-to-completion Pod annotated `sim.rotor.dev/run-seconds: "N"`
/// ends N seconds after it is made instead of after the workload ready delay.
pub const RUN_SECONDS: &str = "sim.rotor.dev/run-seconds";

/// The exit code `pod`'s annotation asks for (0 without one, or one that is not a number).
pub fn exit_code(pod: &Value) -> i32 {
    annotation(pod, EXIT_CODE)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// `key` of `obj`'s annotations.
pub fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

fn finished_status(pod: &Value) -> Value {
    match exit_code(pod) {
        0 => succeeded_status(pod),
        code => failed_status(pod, code),
    }
}

async fn mark(
    ctx: &Ctx,
    ns: &str,
    names: &[String],
    status: fn(&Value) -> Value,
) -> Result<(), ApiError> {
    let res = ctx.server.resource("", "v1", "pods")?;
    for name in names {
        let Some(pod) = live(&ctx.server, &res, ns, name).await? else {
            continue;
        };
        let patch = json!({"status": status(&pod)});
        merge(&ctx.server, &res, ns, name, &patch, true).await?;
    }
    Ok(())
}

/// What every started Pod reports: its address (kept if it has one), its node's, a start time.
fn started(pod: &Value, now: &str) -> Value {
    use rand::Rng;
    let ip = match pod.pointer("/status/podIP").and_then(Value::as_str) {
        Some(ip) => ip.to_string(),
        None => {
            let mut rng = rand::rng();
            format!(
                "10.244.{}.{}",
                rng.random_range(0..=255),
                rng.random_range(2..=254)
            )
        }
    };
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("node-0");
    let index = node.trim_start_matches("node-").parse::<u8>().unwrap_or(0);
    let host = format!("10.0.0.{}", index.saturating_add(10));
    json!({"hostIP": host, "hostIPs": [{"ip": host}], "podIP": ip, "podIPs": [{"ip": ip}],
        "startTime": pod.pointer("/status/startTime").cloned().unwrap_or(json!(now)),
        "qosClass": "BestEffort"})
}

/// The containers' statuses: each `ready`, in `state`.
fn container_statuses(pod: &Value, ready: bool, state: &Value) -> Vec<Value> {
    let containers = pod.pointer("/spec/containers").and_then(Value::as_array);
    containers
        .into_iter()
        .flatten()
        .map(|c| json!({
            "name": c["name"], "image": c["image"], "imageID": "", "ready": ready, "started": ready,
            "restartCount": 0, "containerID": format!("sim://{}-{}", object::name(pod), c["name"].as_str().unwrap_or("")),
            "state": state,
        }))
        .collect()
}

fn running_status(pod: &Value) -> Value {
    let now = object::now_rfc3339();
    let conditions: Vec<Value> = ["PodScheduled", "Initialized", "ContainersReady", "Ready"]
        .iter()
        .map(|t| json!({"type": t, "status": "True", "lastTransitionTime": now}))
        .collect();
    let state = json!({"running": {"startedAt": now}});
    let mut status = started(pod, &now);
    status["phase"] = json!("Running");
    status["conditions"] = json!(conditions);
    status["containerStatuses"] = json!(container_statuses(pod, true, &state));
    status
}

/// Succeeded: every container terminated with exit code 0, the Pod no longer Ready.
fn succeeded_status(pod: &Value) -> Value {
    let now = object::now_rfc3339();
    let condition = |t: &str, ok: bool| match ok {
        true => json!({"type": t, "status": "True", "lastTransitionTime": now}),
        false => {
            json!({"type": t, "status": "False", "reason": "PodCompleted", "lastTransitionTime": now})
        }
    };
    let conditions = [
        ("PodScheduled", true),
        ("Initialized", true),
        ("ContainersReady", false),
        ("Ready", false),
    ]
    .map(|(t, ok)| condition(t, ok));
    let mut status = started(pod, &now);
    let terminated = json!({"terminated": {"exitCode": 0, "reason": "Completed",
        "startedAt": status["startTime"], "finishedAt": now}});
    status["phase"] = json!("Succeeded");
    status["conditions"] = json!(conditions);
    status["containerStatuses"] = json!(container_statuses(pod, false, &terminated));
    status
}

/// Failed: every container terminated with `code` (reason `Error`), the Pod no longer Ready.
fn failed_status(pod: &Value, code: i32) -> Value {
    let mut status = succeeded_status(pod);
    status["phase"] = json!("Failed");
    for c in status["containerStatuses"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        let t = &mut c["state"]["terminated"];
        t["exitCode"] = json!(code);
        t["reason"] = json!("Error");
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs() -> Value {
        json!({"metadata": {"name": "web-abc", "namespace": "shop", "uid": "u2"},
            "spec": {"template": {"metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}})
    }

    #[test]
    fn a_pod_is_named_labelled_owned_and_scheduled() {
        let p = from_template(
            &rs(),
            events::REPLICA_SET,
            &random_name(&rs()),
            &random_node(3),
        );
        let name = object::name(&p);
        let suffix = name.strip_prefix("web-abc-").expect("owner's name prefix");
        assert_eq!(suffix.len(), 5);
        assert_eq!(p["metadata"]["labels"]["pod-template-hash"], "abc");
        assert_eq!(p["metadata"]["namespace"], "shop");
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
        assert_eq!(p["metadata"]["ownerReferences"][0]["controller"], true);
        let node = p["spec"]["nodeName"].as_str().expect("scheduled");
        assert!(["node-0", "node-1", "node-2"].contains(&node), "{node}");
    }

    #[test]
    fn a_running_pod_is_ready_with_every_container() {
        let mut p = from_template(&rs(), events::REPLICA_SET, "web-abc-x", "node-0");
        assert!(!is_ready(&p));
        p["status"] = running_status(&p);
        assert!(is_ready(&p));
        assert_eq!(p["status"]["phase"], "Running");
        assert_eq!(p["status"]["containerStatuses"][0]["ready"], true);
        assert!(
            p["status"]["podIP"]
                .as_str()
                .is_some_and(|ip| ip.starts_with("10."))
        );
    }

    #[test]
    fn a_succeeded_pod_keeps_its_address_and_is_not_ready() {
        let mut p = from_template(&rs(), events::JOB, "pi-x", "node-0");
        p["status"] = running_status(&p);
        let ip = p["status"]["podIP"].clone();
        p["status"] = succeeded_status(&p);
        assert!(is_finished(&p) && !is_ready(&p));
        assert_eq!(p["status"]["podIP"], ip);
        let state = &p["status"]["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(
            (state["exitCode"].as_i64(), state["reason"].as_str()),
            (Some(0), Some("Completed"))
        );
    }

    #[test]
    fn an_exit_code_annotation_makes_a_failed_pod() {
        let mut p = from_template(&rs(), events::JOB, "pi-x", "node-0");
        assert_eq!(finished_status(&p)["phase"], "Succeeded");
        p["metadata"]["annotations"] = json!({EXIT_CODE: "3"});
        let s = finished_status(&p);
        let t = &s["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(
            (
                s["phase"].as_str(),
                t["exitCode"].as_i64(),
                t["reason"].as_str()
            ),
            (Some("Failed"), Some(3), Some("Error"))
        );
        assert!(is_finished(&json!({"status": s})));
    }

    #[test]
    fn scale_down_takes_the_newest_first() {
        let pod =
            |name: &str, ts: &str| json!({"metadata": {"name": name, "creationTimestamp": ts}});
        let mut pods = vec![
            pod("a", "2026-01-01T00:00:00Z"),
            pod("b", "2026-01-02T00:00:00Z"),
        ];
        sort_newest_first(&mut pods);
        assert_eq!(object::name(&pods[0]), "b");
    }
}
