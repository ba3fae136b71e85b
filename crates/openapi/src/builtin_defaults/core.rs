//! The core group's defaults (pkg/apis/core/v1/defaults.go) other than the pod spec's.

use serde_json::{Map, Value, json};

use super::{D, each, ensure, fill, is_empty, pod, str_of};

pub(super) fn apply(plural: &str, root: &mut Map<String, Value>) {
    match plural {
        "pods" => pod::pod(root),
        "podtemplates" => pod::template_at(root, "template"),
        "replicationcontrollers" => replication_controller(root),
        "services" => service(root),
        "secrets" => fill(root, &[("type", D::Str("Opaque"))]),
        "persistentvolumeclaims" => {
            if let Some(spec) = ensure(root, "spec") {
                fill(spec, &[("volumeMode", D::PtrStr("Filesystem"))]);
            }
            if let Some(status) = ensure(root, "status") {
                fill(status, &[("phase", D::Str("Pending"))]);
            }
        }
        "persistentvolumes" => {
            if let Some(spec) = ensure(root, "spec") {
                fill(
                    spec,
                    &[
                        ("persistentVolumeReclaimPolicy", D::Str("Retain")),
                        ("volumeMode", D::PtrStr("Filesystem")),
                    ],
                );
            }
            if let Some(status) = ensure(root, "status") {
                fill(status, &[("phase", D::Str("Pending"))]);
            }
        }
        "endpoints" => {
            for subset in each(root, "subsets") {
                for p in each(subset, "ports") {
                    fill(p, &[("protocol", D::Str("TCP"))]);
                }
            }
        }
        "namespaces" => {
            if let Some(status) = ensure(root, "status") {
                fill(status, &[("phase", D::Str("Active"))]);
            }
        }
        _ => {}
    }
}

/// SetDefaults_ReplicationController: selector and labels from the template's labels.
fn replication_controller(root: &mut Map<String, Value>) {
    let template_labels = root
        .get("spec")
        .and_then(|s| s.pointer("/template/metadata/labels"))
        .filter(|l| l.as_object().is_some_and(|m| !m.is_empty()))
        .cloned();
    if let Some(labels) = &template_labels
        && let Some(meta) = ensure(root, "metadata")
        && is_empty(meta, "labels")
    {
        meta.insert("labels".into(), labels.clone());
    }
    let Some(spec) = ensure(root, "spec") else {
        return;
    };
    if let Some(labels) = template_labels
        && is_empty(spec, "selector")
    {
        spec.insert("selector".into(), labels);
    }
    fill(spec, &[("replicas", D::Int(1))]);
    pod::template_at(spec, "template");
}

/// SetDefaults_Service, plus the IP family fields the service registry sets (one IPv4 family:
/// rotor's clusters are single-stack).
fn service(root: &mut Map<String, Value>) {
    let Some(spec) = ensure(root, "spec") else {
        return;
    };
    fill(
        spec,
        &[
            ("sessionAffinity", D::Str("None")),
            ("type", D::Str("ClusterIP")),
        ],
    );
    let kind = str_of(spec, "type").to_string();
    for p in each(spec, "ports") {
        fill(p, &[("protocol", D::Str("TCP"))]);
        // Unset, 0 and "" are all Go's zero IntOrString: "the port itself".
        let unset = match p.get("targetPort") {
            None => true,
            Some(v) => v == &json!(0) || v == &json!(""),
        };
        if let (true, Some(port)) = (unset, p.get("port").cloned()) {
            p.insert("targetPort".into(), port);
        }
    }
    if str_of(spec, "sessionAffinity") == "ClientIP"
        && let Some(config) = ensure(spec, "sessionAffinityConfig")
        && let Some(client_ip) = ensure(config, "clientIP")
    {
        fill(client_ip, &[("timeoutSeconds", D::Int(10800))]);
    }
    if matches!(kind.as_str(), "NodePort" | "LoadBalancer") {
        fill(spec, &[("externalTrafficPolicy", D::Str("Cluster"))]);
    }
    if kind == "LoadBalancer" {
        fill(spec, &[("allocateLoadBalancerNodePorts", D::Bool(true))]);
    }
    if kind != "ExternalName" {
        fill(spec, &[("internalTrafficPolicy", D::PtrStr("Cluster"))]);
        let headless = str_of(spec, "clusterIP") == "None";
        let policy = if headless && is_empty(spec, "selector") {
            "RequireDualStack"
        } else {
            "SingleStack"
        };
        fill(spec, &[("ipFamilyPolicy", D::PtrStr(policy))]);
        if is_empty(spec, "ipFamilies") {
            spec.insert("ipFamilies".into(), json!(["IPv4"]));
        }
    }
}
