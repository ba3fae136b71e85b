//! autoscaling HorizontalPodAutoscaler: replica bounds and the scale target.

use serde_json::Value;

use super::Causes;
use super::values::min_int;

pub fn validate_hpa(obj: &Value, c: &mut Causes) {
    let spec = obj.get("spec");
    min_int(c, spec, "spec", "minReplicas", 1);
    let min = spec
        .and_then(|s| s.get("minReplicas"))
        .and_then(Value::as_i64)
        .unwrap_or(1);
    match spec.and_then(|s| s.get("maxReplicas")) {
        None | Some(Value::Null) => c.required("spec.maxReplicas".into(), ""),
        Some(v) => match v.as_i64() {
            Some(n) if n < 1 => c.invalid(
                "spec.maxReplicas".into(),
                v,
                "must be greater than or equal to 1",
            ),
            Some(n) if n < min => c.invalid(
                "spec.maxReplicas".into(),
                v,
                "must be greater than or equal to `minReplicas`",
            ),
            Some(_) => {}
            None => c.invalid("spec.maxReplicas".into(), v, "must be an integer"),
        },
    }
    let target = spec.and_then(|s| s.get("scaleTargetRef"));
    for key in ["kind", "name"] {
        if target
            .and_then(|t| t.get(key))
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            c.required(format!("spec.scaleTargetRef.{key}"), "");
        }
    }
}
