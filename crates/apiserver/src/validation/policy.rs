//! policy/v1 PodDisruptionBudget: one of minAvailable or maxUnavailable, counts or percentages.

use serde_json::Value;

use super::Causes;
use super::values::int_or_percent;

pub fn validate_pdb(obj: &Value, c: &mut Causes) {
    let Some(spec) = obj.get("spec") else { return };
    let min = spec.get("minAvailable").filter(|v| !v.is_null());
    let max = spec.get("maxUnavailable").filter(|v| !v.is_null());
    if min.is_some() && max.is_some() {
        c.invalid(
            "spec".into(),
            spec,
            "minAvailable and maxUnavailable cannot be both set",
        );
    }
    for (k, v) in [("minAvailable", min), ("maxUnavailable", max)] {
        if let Some(v) = v {
            int_or_percent(c, format!("spec.{k}"), v);
        }
    }
    if let Some(sel) = spec.get("selector").filter(|v| !v.is_null()) {
        super::apps::validate_selector(sel, "spec.selector", c);
    }
}
