//! The columns kube-apiserver's printers give the common built-in kinds, in upstream's order,
//! `-o wide` ones at priority 1 (kubectl hides them otherwise).

use serde_json::{Value, json};

use super::{Cell, Column};

mod batch;

fn num(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn text(obj: &Value, pointer: &str) -> String {
    match obj.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn or_none(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

fn list(obj: &Value, pointer: &str) -> Vec<Value> {
    obj.pointer(pointer)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// `name,name` of a pod template's (or pod's) containers, or their images.
fn containers(obj: &Value, pointer: &str, field: &str) -> Value {
    let names: Vec<String> = list(obj, pointer).iter().map(|c| text(c, field)).collect();
    json!(names.join(","))
}

/// A label selector as kubectl writes it: `app=web,tier in (a,b)`.
fn selector(obj: &Value, pointer: &str) -> Value {
    let Some(sel) = obj.pointer(pointer) else {
        return json!("<none>");
    };
    let labels = sel.get("matchLabels").unwrap_or(sel);
    let mut parts: Vec<String> = labels
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, v)| v.is_string())
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    for e in list(sel, "/matchExpressions") {
        let values: Vec<String> = list(&e, "/values")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        let (key, op) = (text(&e, "/key"), text(&e, "/operator"));
        parts.push(match op.as_str() {
            "Exists" => key,
            "DoesNotExist" => format!("!{key}"),
            _ => format!("{key} {} ({})", op.to_lowercase(), values.join(",")),
        });
    }
    json!(or_none(parts.join(",")))
}

fn replicas_ready(o: &Value) -> Value {
    json!(format!(
        "{}/{}",
        num(o, "/status/readyReplicas"),
        num(o, "/spec/replicas")
    ))
}

fn column(name: &'static str, type_: &'static str, priority: i64, cell: Cell) -> Column {
    Column {
        name: name.into(),
        type_: type_.into(),
        format: String::new(),
        priority,
        cell,
    }
}

fn f(name: &'static str, type_: &'static str, cell: fn(&Value) -> Value) -> Column {
    column(name, type_, 0, Cell::Fn(cell))
}

fn wide(name: &'static str, cell: fn(&Value) -> Value) -> Column {
    column(name, "string", 1, Cell::Fn(cell))
}

fn name() -> Column {
    Column {
        format: "name".into(),
        ..column("Name", "string", 0, Cell::Name)
    }
}

fn age() -> Column {
    column("Age", "string", 0, Cell::Age)
}

/// Name, the kind's own columns, Age, then its wide ones, as a server of 1.`minor` prints them
/// — or None for a kind upstream prints with the default columns.
pub(super) fn columns(group: &str, plural: &str, minor: u32) -> Option<Vec<Column>> {
    let (own, wides): (Vec<Column>, Vec<Column>) = match (group, plural) {
        ("apps", "deployments") => (
            vec![
                f("Ready", "string", replicas_ready),
                f("Up-to-date", "integer", |o| {
                    json!(num(o, "/status/updatedReplicas"))
                }),
                f("Available", "integer", |o| {
                    json!(num(o, "/status/availableReplicas"))
                }),
            ],
            workload_wides(true),
        ),
        ("apps", "replicasets") => (
            vec![
                f("Desired", "integer", |o| json!(num(o, "/spec/replicas"))),
                f("Current", "integer", |o| json!(num(o, "/status/replicas"))),
                f("Ready", "integer", |o| {
                    json!(num(o, "/status/readyReplicas"))
                }),
            ],
            workload_wides(true),
        ),
        ("apps", "statefulsets") => (
            vec![f("Ready", "string", replicas_ready)],
            workload_wides(false),
        ),
        ("apps", "daemonsets") => (
            vec![
                f("Desired", "integer", |o| {
                    json!(num(o, "/status/desiredNumberScheduled"))
                }),
                f("Current", "integer", |o| {
                    json!(num(o, "/status/currentNumberScheduled"))
                }),
                f("Ready", "integer", |o| json!(num(o, "/status/numberReady"))),
                f("Up-to-date", "integer", |o| {
                    json!(num(o, "/status/updatedNumberScheduled"))
                }),
                f("Available", "integer", |o| {
                    json!(num(o, "/status/numberAvailable"))
                }),
                f("Node Selector", "string", |o| {
                    let labels = o
                        .pointer("/spec/template/spec/nodeSelector")
                        .and_then(Value::as_object);
                    let parts: Vec<String> = labels
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                                .collect()
                        })
                        .unwrap_or_default();
                    json!(or_none(parts.join(",")))
                }),
            ],
            workload_wides(true),
        ),
        ("batch", "jobs") => batch::job(minor),
        ("batch", "cronjobs") => batch::cronjob(minor),
        ("", "pods") => (pod_columns(), pod_wides()),
        ("", "services") => (
            service_columns(),
            vec![wide("Selector", |o| selector(o, "/spec/selector"))],
        ),
        ("", "nodes") => (node_columns(), node_wides()),
        ("", "namespaces") => (
            vec![f("Status", "string", |o| json!(text(o, "/status/phase")))],
            vec![],
        ),
        ("", "configmaps") => (vec![f("Data", "integer", data_count)], vec![]),
        ("", "secrets") => (
            vec![
                f("Type", "string", |o| json!(text(o, "/type"))),
                f("Data", "integer", data_count),
            ],
            vec![],
        ),
        ("policy", "poddisruptionbudgets") => (
            vec![
                f("Min Available", "string", |o| {
                    json!(or_none_na(text(o, "/spec/minAvailable")))
                }),
                f("Max Unavailable", "string", |o| {
                    json!(or_none_na(text(o, "/spec/maxUnavailable")))
                }),
                f("Allowed Disruptions", "integer", |o| {
                    json!(num(o, "/status/disruptionsAllowed"))
                }),
            ],
            vec![],
        ),
        ("coordination.k8s.io", "leases") => (
            vec![f("Holder", "string", |o| {
                json!(text(o, "/spec/holderIdentity"))
            })],
            vec![],
        ),
        ("", "endpoints") => (vec![f("Endpoints", "string", endpoints)], vec![]),
        ("apps", "controllerrevisions") => (
            vec![
                f("Controller", "string", controller),
                f("Revision", "integer", |o| json!(num(o, "/revision"))),
            ],
            vec![],
        ),
        ("", "events") => return Some(event_columns()),
        _ => return None,
    };
    let mut all = vec![name()];
    all.extend(own);
    all.push(age());
    all.extend(wides);
    Some(all)
}

/// At most this many endpoints are listed; upstream then adds `+ N more...`.
const ENDPOINTS_SHOWN: usize = 3;

/// An Endpoints' ready addresses as upstream prints them: `IP:PORT` for every port of a subset
/// (the bare IP where a headless subset has none), `[IPv6]:PORT`, the first three and
/// `+ N more...`; `<none>` without subsets.
fn endpoints(o: &Value) -> Value {
    let subsets = list(o, "/subsets");
    if subsets.is_empty() {
        return json!("<none>");
    }
    let mut all: Vec<String> = Vec::new();
    for ss in &subsets {
        let ips: Vec<String> = list(ss, "/addresses")
            .iter()
            .map(|a| text(a, "/ip"))
            .collect();
        let ports = list(ss, "/ports");
        if ports.is_empty() {
            all.extend(ips);
            continue;
        }
        for p in &ports {
            let port = num(p, "/port");
            all.extend(ips.iter().map(|ip| host_port(ip, port)));
        }
    }
    let shown = all[..all.len().min(ENDPOINTS_SHOWN)].join(",");
    json!(if all.len() > ENDPOINTS_SHOWN {
        format!("{shown} + {} more...", all.len() - ENDPOINTS_SHOWN)
    } else {
        shown
    })
}

/// Go's `net.JoinHostPort`: an IPv6 address in brackets.
fn host_port(ip: &str, port: i64) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// A ControllerRevision's controller as upstream prints it: `kind.group/name` in lower case
/// (`statefulset.apps/web`), `<none>` without a controller reference.
fn controller(o: &Value) -> Value {
    let owner = list(o, "/metadata/ownerReferences")
        .into_iter()
        .find(|r| r["controller"] == true);
    let Some(owner) = owner else {
        return json!("<none>");
    };
    let api_version = text(&owner, "/apiVersion");
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let kind = text(&owner, "/kind");
    let qualified = if group.is_empty() {
        kind
    } else {
        format!("{kind}.{group}")
    };
    json!(format!(
        "{}/{}",
        qualified.to_lowercase(),
        text(&owner, "/name")
    ))
}

fn or_none_na(s: String) -> String {
    if s.is_empty() { "N/A".into() } else { s }
}

fn data_count(o: &Value) -> Value {
    json!(
        o.get("data")
            .and_then(Value::as_object)
            .map_or(0, |d| d.len())
    )
}

fn workload_wides(with_selector: bool) -> Vec<Column> {
    let mut v = vec![
        wide("Containers", |o| {
            containers(o, "/spec/template/spec/containers", "/name")
        }),
        wide("Images", |o| {
            containers(o, "/spec/template/spec/containers", "/image")
        }),
    ];
    if with_selector {
        v.push(wide("Selector", |o| selector(o, "/spec/selector")));
    }
    v
}

fn pod_columns() -> Vec<Column> {
    vec![
        f("Ready", "string", |o| {
            let ready = list(o, "/status/containerStatuses")
                .iter()
                .filter(|c| c["ready"] == true)
                .count();
            json!(format!("{ready}/{}", list(o, "/spec/containers").len()))
        }),
        f("Status", "string", pod_status),
        f("Restarts", "string", |o| {
            let restarts: i64 = list(o, "/status/containerStatuses")
                .iter()
                .map(|c| num(c, "/restartCount"))
                .sum();
            json!(restarts.to_string())
        }),
    ]
}

/// A Pod's STATUS as upstream's printer derives it: the phase, or the Pod's reason, overridden
/// by its containers' (the last one with something to say wins): a waiting reason
/// (`CrashLoopBackOff`), a terminated reason (`Completed`, `Error`), else `Signal:N` or
/// `ExitCode:N`; `Completed` while a container still runs reads `Running` (or `NotReady`); a
/// Pod being deleted that has not finished is `Terminating`.
fn pod_status(o: &Value) -> Value {
    let mut reason = text(o, "/status/reason");
    if reason.is_empty() {
        reason = text(o, "/status/phase");
    }
    let mut running = false;
    for c in list(o, "/status/containerStatuses").iter().rev() {
        if let Some(r) = container_reason(c) {
            reason = r;
        } else if c["ready"] == true && c.pointer("/state/running").is_some_and(Value::is_object) {
            running = true;
        }
    }
    if reason == "Completed" && running {
        let ready = list(o, "/status/conditions")
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        reason = if ready { "Running" } else { "NotReady" }.into();
    }
    let deleting = o
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null());
    let finished = matches!(text(o, "/status/phase").as_str(), "Succeeded" | "Failed");
    json!(if deleting && !finished {
        "Terminating".into()
    } else {
        reason
    })
}

/// What a container's state says of it, if anything (see [`pod_status`]).
fn container_reason(c: &Value) -> Option<String> {
    let waiting = text(c, "/state/waiting/reason");
    if !waiting.is_empty() {
        return Some(waiting);
    }
    let terminated = c.pointer("/state/terminated").filter(|t| t.is_object())?;
    let reason = text(terminated, "/reason");
    Some(if !reason.is_empty() {
        reason
    } else if num(terminated, "/signal") != 0 {
        format!("Signal:{}", num(terminated, "/signal"))
    } else {
        format!("ExitCode:{}", num(terminated, "/exitCode"))
    })
}

fn pod_wides() -> Vec<Column> {
    vec![
        wide("IP", |o| json!(or_none(text(o, "/status/podIP")))),
        wide("Node", |o| json!(or_none(text(o, "/spec/nodeName")))),
        wide("Nominated Node", |o| {
            json!(or_none(text(o, "/status/nominatedNodeName")))
        }),
        wide("Readiness Gates", |o| {
            let gates = list(o, "/spec/readinessGates");
            json!(if gates.is_empty() {
                "<none>".to_string()
            } else {
                format!("0/{}", gates.len())
            })
        }),
    ]
}

fn service_columns() -> Vec<Column> {
    vec![
        f("Type", "string", |o| json!(text(o, "/spec/type"))),
        f("Cluster-IP", "string", |o| {
            json!(or_none(text(o, "/spec/clusterIP")))
        }),
        f("External-IP", "string", |o| {
            let mut ips: Vec<String> = list(o, "/status/loadBalancer/ingress")
                .iter()
                .map(|i| {
                    let ip = text(i, "/ip");
                    if ip.is_empty() {
                        text(i, "/hostname")
                    } else {
                        ip
                    }
                })
                .collect();
            ips.extend(
                list(o, "/spec/externalIPs")
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string)),
            );
            let pending = text(o, "/spec/type") == "LoadBalancer" && ips.is_empty();
            json!(if pending {
                "<pending>".to_string()
            } else {
                or_none(ips.join(","))
            })
        }),
        f("Port(s)", "string", |o| {
            let ports: Vec<String> = list(o, "/spec/ports")
                .iter()
                .map(|p| match p.get("nodePort").and_then(Value::as_i64) {
                    Some(node) => format!("{}:{node}/{}", num(p, "/port"), text(p, "/protocol")),
                    None => format!("{}/{}", num(p, "/port"), text(p, "/protocol")),
                })
                .collect();
            json!(or_none(ports.join(",")))
        }),
    ]
}

fn node_columns() -> Vec<Column> {
    vec![
        f("Status", "string", |o| {
            let ready = list(o, "/status/conditions")
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            let status = if ready { "Ready" } else { "NotReady" };
            let unschedulable = o.pointer("/spec/unschedulable") == Some(&json!(true));
            json!(if unschedulable {
                format!("{status},SchedulingDisabled")
            } else {
                status.to_string()
            })
        }),
        f("Roles", "string", |o| {
            let roles: Vec<&str> = o
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.keys()
                        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                        .filter(|r| !r.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            json!(or_none(roles.join(",")))
        }),
    ]
}

/// A node's address of `kind` (InternalIP, ExternalIP).
fn address(o: &Value, kind: &str) -> Value {
    let found = list(o, "/status/addresses")
        .iter()
        .find(|a| a["type"] == kind)
        .map(|a| text(a, "/address"));
    json!(or_none(found.unwrap_or_default()))
}

fn node_wides() -> Vec<Column> {
    vec![
        wide("Internal-IP", |o| address(o, "InternalIP")),
        wide("External-IP", |o| address(o, "ExternalIP")),
        wide("OS-Image", |o| json!(text(o, "/status/nodeInfo/osImage"))),
        wide("Kernel-Version", |o| {
            json!(text(o, "/status/nodeInfo/kernelVersion"))
        }),
        wide("Container-Runtime", |o| {
            json!(text(o, "/status/nodeInfo/containerRuntimeVersion"))
        }),
    ]
}

/// Events: no Name first; it is a wide column at the end, as upstream prints them.
fn event_columns() -> Vec<Column> {
    vec![
        column("Last Seen", "string", 0, Cell::Since("/lastTimestamp")),
        f("Type", "string", |o| json!(text(o, "/type"))),
        f("Reason", "string", |o| json!(text(o, "/reason"))),
        f("Object", "string", |o| {
            json!(format!(
                "{}/{}",
                text(o, "/involvedObject/kind").to_lowercase(),
                text(o, "/involvedObject/name")
            ))
        }),
        wide("Subobject", |o| json!(text(o, "/involvedObject/fieldPath"))),
        wide("Source", |o| json!(text(o, "/source/component"))),
        f("Message", "string", |o| json!(text(o, "/message"))),
        column("First Seen", "string", 1, Cell::Since("/firstTimestamp")),
        wide("Count", |o| json!(num(o, "/count").max(1).to_string())),
        Column {
            priority: 1,
            ..name()
        },
    ]
}

/// The fallback for kinds without a printer here: Name and Age.
pub(super) fn default_columns() -> Vec<Column> {
    vec![name(), age()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_list_three_and_count_the_rest() {
        let ep = json!({"subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}]},
            {"addresses": [{"ip": "10.0.0.3"}, {"ip": "fd00::4"}], "ports": [{"port": 8080}]},
        ]});
        assert_eq!(
            endpoints(&ep),
            "10.0.0.1:80,10.0.0.2:80,10.0.0.3:8080 + 1 more..."
        );
        let two = json!({"subsets": [{"addresses": [{"ip": "fd00::1"}, {"ip": "10.0.0.2"}],
            "ports": [{"port": 80}]}]});
        assert_eq!(endpoints(&two), "[fd00::1]:80,10.0.0.2:80");
        let headless = json!({"subsets": [{"addresses": [{"ip": "10.0.0.9"}]}]});
        assert_eq!(endpoints(&headless), "10.0.0.9");
        assert_eq!(endpoints(&json!({})), "<none>");
        let not_ready = json!({"subsets": [{"notReadyAddresses": [{"ip": "10.0.0.1"}],
            "ports": [{"port": 80}]}]});
        assert_eq!(endpoints(&not_ready), "");
    }

    #[test]
    fn a_revision_names_its_controller_by_kind_and_group() {
        let rev = json!({"metadata": {"ownerReferences": [
            {"apiVersion": "v1", "kind": "Pod", "name": "p"},
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": true},
        ]}});
        assert_eq!(controller(&rev), "statefulset.apps/web");
        assert_eq!(controller(&json!({"metadata": {}})), "<none>");
    }

    fn pod(phase: &str, state: Value, ready: bool) -> Value {
        json!({"status": {"phase": phase,
            "containerStatuses": [{"name": "c", "ready": ready, "state": state}]}})
    }

    #[test]
    fn pod_status_follows_the_containers_as_upstream() {
        let done = json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
        assert_eq!(pod_status(&pod("Succeeded", done, false)), "Completed");
        let failed = json!({"terminated": {"exitCode": 3}});
        assert_eq!(pod_status(&pod("Failed", failed, false)), "ExitCode:3");
        let killed = json!({"terminated": {"exitCode": 137, "signal": 9}});
        assert_eq!(pod_status(&pod("Failed", killed, false)), "Signal:9");
        let backoff = json!({"waiting": {"reason": "CrashLoopBackOff"}});
        assert_eq!(
            pod_status(&pod("Running", backoff, false)),
            "CrashLoopBackOff"
        );
        let running = json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}});
        assert_eq!(pod_status(&pod("Running", running, true)), "Running");
        let mut sidecar_done = pod("Running", json!({"running": {}}), true);
        sidecar_done["status"]["containerStatuses"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "d", "state": {"terminated": {"reason": "Completed"}}}));
        assert_eq!(pod_status(&sidecar_done), "NotReady");
        let mut deleting = pod("Running", json!({"running": {}}), true);
        deleting["metadata"] = json!({"deletionTimestamp": "2026-01-01T00:00:00Z"});
        assert_eq!(pod_status(&deleting), "Terminating");
        assert_eq!(
            pod_status(&json!({"status": {"phase": "Pending"}})),
            "Pending"
        );
    }
}
