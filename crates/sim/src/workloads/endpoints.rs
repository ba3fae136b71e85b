//! The endpoints and endpointslice controllers: every Service with a selector gets an Endpoints
//! object of its name and EndpointSlices labelled `kubernetes.io/service-name`, listing the
//! addresses of the Pods it selects that have one (Ready ones as ready, others as not ready
//! unless `publishNotReadyAddresses`) with the Service's ports resolved against each Pod (a
//! named `targetPort` is the container port of that name). Pods whose resolved ports differ go
//! in separate subsets and slices, as upstream groups them. Kept up to date on every change of a
//! Pod or Service of the namespace; a deleted Service's Endpoints go with it, its slices through
//! their owner reference.

use std::collections::BTreeMap;
use std::sync::Arc;

use rotor_apiserver::{ApiError, Resource, object};
use serde_json::{Map, Value, json};

use super::{Ctx, merge, owned, owner_ref, pods};

const SERVICE_NAME: &str = "kubernetes.io/service-name";
const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
const CONTROLLER: &str = "endpointslice-controller.k8s.io";
const HEADLESS: &str = "service.kubernetes.io/headless";

/// A selected Pod with an address, and the ports it serves the Service on.
struct Backend<'a> {
    pod: &'a Value,
    ip: &'a str,
    /// The Pod's hostname when its subdomain is this Service (a StatefulSet's headless one):
    /// what gives it a DNS name of its own.
    hostname: Option<&'a str>,
    ready: bool,
    ports: Vec<Value>,
}

/// Brings the Endpoints and EndpointSlices of every Service of `ns` with a selector up to date.
pub async fn reconcile(ctx: &Ctx, ns: &str) -> Result<(), ApiError> {
    let services_res = ctx.server.resource("", "v1", "services")?;
    let services = ctx
        .server
        .list_where(&services_res, Some(ns), |b| {
            memchr::memmem::find(b, b"\"selector\"").is_some()
        })
        .await?;
    let selecting: Vec<&Value> = services.iter().filter(|s| selector(s).is_some()).collect();
    if selecting.is_empty() {
        return Ok(());
    }
    let pods_res = ctx.server.resource("", "v1", "pods")?;
    let all_pods = ctx.server.list_where(&pods_res, Some(ns), |_| true).await?;
    for svc in selecting {
        let backends = backends(svc, &all_pods);
        let groups = groups(&backends);
        sync_endpoints(ctx, svc, &groups).await?;
        sync_slices(ctx, svc, &groups).await?;
    }
    Ok(())
}

/// A deleted Service's Endpoints go (unless a Service of that name is back already).
pub async fn service_gone(ctx: &Ctx, ns: &str, name: &str) -> Result<(), ApiError> {
    let services = ctx.server.resource("", "v1", "services")?;
    if super::live(&ctx.server, &services, ns, name)
        .await?
        .is_some()
    {
        return Ok(());
    }
    let res = ctx.server.resource("", "v1", "endpoints")?;
    match ctx
        .server
        .delete(&res, Some(ns), name, &json!({}), false)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.reason == "NotFound" => Ok(()),
        Err(e) => Err(e),
    }
}

/// The selector of a Service the controllers manage: non-empty, not an ExternalName.
fn selector(svc: &Value) -> Option<&Map<String, Value>> {
    if svc["spec"]["type"] == "ExternalName" || object::is_deleting(svc) {
        return None;
    }
    svc["spec"]["selector"]
        .as_object()
        .filter(|s| !s.is_empty())
}

fn backends<'a>(svc: &Value, all_pods: &'a [Value]) -> Vec<Backend<'a>> {
    let Some(sel) = selector(svc) else {
        return Vec::new();
    };
    let publish = svc["spec"]["publishNotReadyAddresses"] == true;
    let mut out: Vec<Backend> = all_pods
        .iter()
        .filter(|p| sel.iter().all(|(k, v)| &p["metadata"]["labels"][k] == v))
        .filter(|p| !object::is_deleting(p) && !pods::is_finished(p))
        .filter_map(|p| {
            let ip = p["status"]["podIP"].as_str().filter(|ip| !ip.is_empty())?;
            let ready = publish || pods::is_ready(p);
            let hostname = (p["spec"]["subdomain"] == object::name(svc))
                .then(|| p["spec"]["hostname"].as_str())
                .flatten();
            Some(Backend {
                pod: p,
                ip,
                hostname,
                ready,
                ports: ports(svc, p),
            })
        })
        .collect();
    out.sort_by(|a, b| object::name(a.pod).cmp(object::name(b.pod)));
    out
}

/// The Service's ports as `pod` serves them; a named target port the Pod lacks is left out.
fn ports(svc: &Value, pod: &Value) -> Vec<Value> {
    let svc_ports = svc["spec"]["ports"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    svc_ports
        .iter()
        .filter_map(|p| {
            let target = match &p["targetPort"] {
                Value::String(name) => container_port(pod, name)?,
                Value::Number(n) => n.as_i64()?,
                _ => p["port"].as_i64()?,
            };
            let mut port =
                json!({"port": target, "protocol": p["protocol"].as_str().unwrap_or("TCP")});
            for field in ["name", "appProtocol"] {
                if let Some(v) = p[field].as_str() {
                    port[field] = json!(v);
                }
            }
            Some(port)
        })
        .collect()
}

fn container_port(pod: &Value, name: &str) -> Option<i64> {
    let containers = pod["spec"]["containers"].as_array()?;
    containers
        .iter()
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_i64())
}

/// Backends grouped by the ports they serve (one Endpoints subset, one slice each).
fn groups<'a>(backends: &'a [Backend<'a>]) -> Vec<(&'a [Value], Vec<&'a Backend<'a>>)> {
    let mut by_ports: BTreeMap<String, (&[Value], Vec<&Backend>)> = BTreeMap::new();
    for b in backends {
        let key = serde_json::to_string(&b.ports).unwrap_or_default();
        by_ports
            .entry(key)
            .or_insert((&b.ports, Vec::new()))
            .1
            .push(b);
    }
    by_ports.into_values().collect()
}

fn target_ref(pod: &Value) -> Value {
    json!({"kind": "Pod", "name": object::name(pod), "namespace": pod["metadata"]["namespace"],
        "uid": pod["metadata"]["uid"]})
}

/// The labels the controllers copy from the Service, with the headless marker.
fn service_labels(svc: &Value) -> Value {
    let mut labels = svc["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    if svc["spec"]["clusterIP"] == "None" {
        labels[HEADLESS] = json!("");
    }
    labels
}

type Groups<'a> = [(&'a [Value], Vec<&'a Backend<'a>>)];

/// Endpoints `subsets`: ready and not-ready addresses per port set (null when there are none).
fn subsets(groups: &Groups) -> Value {
    let subsets: Vec<Value> = groups
        .iter()
        .map(|(ports, backends)| {
            let address = |b: &&&Backend| {
                let mut a = json!({"ip": b.ip, "nodeName": b.pod["spec"]["nodeName"],
                    "targetRef": target_ref(b.pod)});
                if let Some(h) = b.hostname {
                    a["hostname"] = json!(h);
                }
                a
            };
            let (ready, not_ready): (Vec<&&Backend>, Vec<&&Backend>) =
                backends.iter().partition(|b| b.ready);
            let mut subset = json!({});
            if !ready.is_empty() {
                subset["addresses"] = ready.iter().map(address).collect();
            }
            if !not_ready.is_empty() {
                subset["notReadyAddresses"] = not_ready.iter().map(address).collect();
            }
            if !ports.is_empty() {
                subset["ports"] = json!(ports);
            }
            subset
        })
        .collect();
    if subsets.is_empty() {
        Value::Null
    } else {
        json!(subsets)
    }
}

async fn sync_endpoints(ctx: &Ctx, svc: &Value, groups: &Groups<'_>) -> Result<(), ApiError> {
    let res = ctx.server.resource("", "v1", "endpoints")?;
    let (ns, name) = (
        svc["metadata"]["namespace"].as_str().unwrap_or("default"),
        object::name(svc),
    );
    let desired = json!({"metadata": {"labels": service_labels(svc)}, "subsets": subsets(groups)});
    match super::live(&ctx.server, &res, ns, name).await? {
        Some(current) if !changed(&current, &desired) => Ok(()),
        Some(_) => merge(&ctx.server, &res, ns, name, &desired, false).await,
        None => {
            let mut ep = desired;
            ep["apiVersion"] = json!("v1");
            ep["kind"] = json!("Endpoints");
            ep["metadata"]["name"] = json!(name);
            ep["metadata"]["namespace"] = json!(ns);
            if ep["subsets"].is_null() {
                ep.as_object_mut().map(|o| o.remove("subsets"));
            }
            ctx.server
                .create(&res, Some(ns), ep, &super::opts())
                .await
                .map(|_| ())
        }
    }
}

/// Whether `current` lacks what the merge patch `desired` sets (labels and top-level fields).
fn changed(current: &Value, desired: &Value) -> bool {
    let labels_differ = desired["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .any(|(k, v)| &current["metadata"]["labels"][k] != v);
    let fields = desired
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| *k != "metadata");
    labels_differ
        || fields
            .into_iter()
            .any(|(k, v)| current.get(k).unwrap_or(&Value::Null) != v)
}

/// EndpointSlice `endpoints`: one per backend, with its conditions.
fn slice_endpoints(backends: &[&Backend]) -> Value {
    backends
        .iter()
        .map(|b| {
            let mut e = json!({"addresses": [b.ip],
                "conditions": {"ready": b.ready, "serving": b.ready, "terminating": false},
                "nodeName": b.pod["spec"]["nodeName"], "targetRef": target_ref(b.pod)});
            if let Some(h) = b.hostname {
                e["hostname"] = json!(h);
            }
            e
        })
        .collect()
}

async fn sync_slices(ctx: &Ctx, svc: &Value, groups: &Groups<'_>) -> Result<(), ApiError> {
    let res = ctx
        .server
        .resource("discovery.k8s.io", "v1", "endpointslices")?;
    let ns = svc["metadata"]["namespace"].as_str().unwrap_or("default");
    let mut existing = owned(&ctx.server, &res, ns, super::uid(svc)).await?;
    existing.retain(|s| s["metadata"]["labels"][MANAGED_BY] == CONTROLLER);
    existing.sort_by(|a, b| object::name(a).cmp(object::name(b)));
    let mut labels = service_labels(svc);
    labels[SERVICE_NAME] = json!(object::name(svc));
    labels[MANAGED_BY] = json!(CONTROLLER);
    // No backend: one slice with no endpoints, as upstream keeps.
    let placeholder: [(&[Value], Vec<&Backend>); 1] = [(&[], Vec::new())];
    let wanted: &Groups = if groups.is_empty() {
        &placeholder
    } else {
        groups
    };
    for (i, (ports, backends)) in wanted.iter().enumerate() {
        let ports = if ports.is_empty() {
            Value::Null
        } else {
            json!(ports)
        };
        let desired = json!({"metadata": {"labels": labels}, "addressType": "IPv4",
            "endpoints": slice_endpoints(backends), "ports": ports});
        match existing.get(i) {
            Some(current) if !changed(current, &desired) => {}
            Some(current) => {
                merge(
                    &ctx.server,
                    &res,
                    ns,
                    object::name(current),
                    &desired,
                    false,
                )
                .await?
            }
            None => create_slice(ctx, &res, svc, desired).await?,
        }
    }
    for extra in existing.iter().skip(wanted.len()) {
        match ctx
            .server
            .delete(&res, Some(ns), object::name(extra), &json!({}), false)
            .await
        {
            Ok(_) => {}
            Err(e) if e.reason == "NotFound" => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn create_slice(
    ctx: &Ctx,
    res: &Arc<Resource>,
    svc: &Value,
    mut slice: Value,
) -> Result<(), ApiError> {
    let ns = svc["metadata"]["namespace"].as_str().unwrap_or("default");
    slice["apiVersion"] = json!("discovery.k8s.io/v1");
    slice["kind"] = json!("EndpointSlice");
    slice["metadata"]["name"] = json!(format!("{}-{}", object::name(svc), object::random_suffix()));
    slice["metadata"]["namespace"] = json!(ns);
    slice["metadata"]["ownerReferences"] = json!([owner_ref("v1", "Service", svc)]);
    if slice["ports"].is_null() {
        slice.as_object_mut().map(|o| o.remove("ports"));
    }
    ctx.server
        .create(res, Some(ns), slice, &super::opts())
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc() -> Value {
        json!({"metadata": {"name": "web", "namespace": "shop", "uid": "s1", "labels": {"tier": "front"}},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.9",
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}, {"name": "metrics", "port": 9090}]}})
    }

    fn pod(name: &str, ip: Option<&str>, ready: bool, http_port: i64) -> Value {
        let status = if ready { "True" } else { "False" };
        let mut p = json!({"metadata": {"name": name, "namespace": "shop", "uid": format!("u-{name}"),
                "labels": {"app": "web"}},
            "spec": {"nodeName": "node-0", "containers": [{"name": "web",
                "ports": [{"name": "http", "containerPort": http_port}]}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": status}]}});
        if let Some(ip) = ip {
            p["status"]["podIP"] = json!(ip);
        }
        p
    }

    #[test]
    fn selected_pods_with_an_address_are_backends_with_their_ports() {
        let mut other = pod("db", Some("10.0.0.9"), true, 8080);
        other["metadata"]["labels"]["app"] = json!("db");
        let all = [
            pod("web-b", Some("10.0.0.2"), false, 8080),
            pod("web-a", Some("10.0.0.1"), true, 8080),
            pod("web-c", None, false, 8080),
            other,
        ];
        let b = backends(&svc(), &all);
        assert_eq!(
            b.iter().map(|b| b.ip).collect::<Vec<_>>(),
            ["10.0.0.1", "10.0.0.2"]
        );
        assert_eq!(
            b[0].ports[0],
            json!({"name": "http", "port": 8080, "protocol": "TCP"})
        );
        assert_eq!(b[0].ports[1]["port"], 9090);
        let s = subsets(&groups(&b));
        assert_eq!(s[0]["addresses"][0]["targetRef"]["name"], "web-a");
        assert_eq!(s[0]["notReadyAddresses"][0]["ip"], "10.0.0.2");
    }

    #[test]
    fn pods_serving_other_ports_get_their_own_subset() {
        let all = [
            pod("web-a", Some("10.0.0.1"), true, 8080),
            pod("web-b", Some("10.0.0.2"), true, 8081),
        ];
        let b = backends(&svc(), &all);
        assert_eq!(subsets(&groups(&b)).as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn no_backend_no_subsets() {
        assert!(subsets(&groups(&[])).is_null());
    }

    #[test]
    fn a_slice_endpoint_has_its_conditions_and_pod() {
        let all = [pod("web-a", Some("10.0.0.1"), false, 8080)];
        let b = backends(&svc(), &all);
        let e = slice_endpoints(&b.iter().collect::<Vec<_>>());
        assert_eq!(e[0]["addresses"][0], "10.0.0.1");
        assert_eq!(
            e[0]["conditions"],
            json!({"ready": false, "serving": false, "terminating": false})
        );
        assert_eq!(e[0]["targetRef"]["uid"], "u-web-a");
    }

    #[test]
    fn a_pod_in_the_services_subdomain_is_listed_by_hostname() {
        let mut p = pod("db-0", Some("10.0.0.7"), true, 8080);
        p["spec"]["hostname"] = json!("db-0");
        p["spec"]["subdomain"] = json!("web");
        let all = [p];
        let b = backends(&svc(), &all);
        assert_eq!(subsets(&groups(&b))[0]["addresses"][0]["hostname"], "db-0");
        assert_eq!(
            slice_endpoints(&b.iter().collect::<Vec<_>>())[0]["hostname"],
            "db-0"
        );
    }

    #[test]
    fn headless_services_mark_their_labels() {
        let mut s = svc();
        s["spec"]["clusterIP"] = json!("None");
        assert_eq!(service_labels(&s)[HEADLESS], "");
        assert_eq!(service_labels(&s)["tier"], "front");
    }
}
