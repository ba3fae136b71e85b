//! networking.k8s.io/v1 and discovery.k8s.io/v1 defaults.

use serde_json::{Map, Value, json};

use super::{D, each, ensure, fill, is_empty};

pub(super) fn apply(plural: &str, root: &mut Map<String, Value>) {
    match plural {
        "networkpolicies" => network_policy(root),
        "endpointslices" => {
            for p in each(root, "ports") {
                fill(
                    p,
                    &[("name", D::PtrStr("")), ("protocol", D::PtrStr("TCP"))],
                );
            }
        }
        _ => {}
    }
}

/// Ports default to TCP; no policyTypes means Ingress, plus Egress when egress rules exist.
fn network_policy(root: &mut Map<String, Value>) {
    let Some(spec) = ensure(root, "spec") else {
        return;
    };
    for direction in ["ingress", "egress"] {
        for rule in each(spec, direction) {
            for p in each(rule, "ports") {
                fill(p, &[("protocol", D::PtrStr("TCP"))]);
            }
        }
    }
    if is_empty(spec, "policyTypes") {
        let mut types = vec![json!("Ingress")];
        if !is_empty(spec, "egress") {
            types.push(json!("Egress"));
        }
        spec.insert("policyTypes".into(), Value::Array(types));
    }
}
