//! autoscaling defaults (pkg/apis/autoscaling/v1 and v2 defaults.go).

use serde_json::{Map, Value, json};

use super::{D, child, ensure, fill, is_empty};

pub(super) fn apply(plural: &str, version: &str, root: &mut Map<String, Value>) {
    if plural != "horizontalpodautoscalers" {
        return;
    }
    let Some(spec) = ensure(root, "spec") else {
        return;
    };
    fill(spec, &[("minReplicas", D::Int(1))]);
    if version == "v1" {
        return;
    }
    if is_empty(spec, "metrics") {
        spec.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80}}}]),
        );
    }
    // Only a behavior that is given gets its missing rules filled in.
    if let Some(behavior) = child(spec, "behavior") {
        let up = ensure(behavior, "scaleUp");
        if let Some(up) = up {
            rules(
                up,
                0,
                json!([
                    {"type": "Pods", "value": 4, "periodSeconds": 15},
                    {"type": "Percent", "value": 100, "periodSeconds": 15},
                ]),
            );
        }
        if let Some(down) = ensure(behavior, "scaleDown") {
            rules(
                down,
                300,
                json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
            );
        }
    }
}

/// GenerateHPAScaleUpRules / …ScaleDownRules: each missing part from the default rules.
fn rules(r: &mut Map<String, Value>, window: i64, policies: Value) {
    fill(
        r,
        &[
            ("stabilizationWindowSeconds", D::Int(window)),
            ("selectPolicy", D::PtrStr("Max")),
        ],
    );
    if is_empty(r, "policies") {
        r.insert("policies".into(), policies);
    }
}
