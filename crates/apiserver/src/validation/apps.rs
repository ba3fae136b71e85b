//! apps/v1 workloads (Deployment, ReplicaSet, StatefulSet, DaemonSet): the selector, its match
//! with the template's labels, counts, strategies and the template's PodSpec.

use serde_json::Value;

use super::values::{int_or_percent, is_zero, label_value, min_int, qualified_name};
use super::{Causes, at};

const OPERATORS: [&str; 4] = ["In", "NotIn", "Exists", "DoesNotExist"];

pub fn validate(plural: &str, obj: &Value, c: &mut Causes) {
    let kind = match plural {
        "deployments" => "deployment",
        "replicasets" => "replicaset",
        "statefulsets" => "statefulset",
        "daemonsets" => "daemonset",
        _ => return,
    };
    let spec = obj.get("spec");
    if spec.is_none() {
        c.required("spec".into(), "");
        return;
    }
    validate_template(spec, kind, c);
    for key in ["replicas", "revisionHistoryLimit", "minReadySeconds"] {
        min_int(c, spec, "spec", key, 0);
    }
    match kind {
        "deployment" => validate_deployment_strategy(spec, c),
        "daemonset" => strategy_type(spec, "updateStrategy", &["RollingUpdate", "OnDelete"], c),
        "statefulset" => {
            strategy_type(spec, "updateStrategy", &["RollingUpdate", "OnDelete"], c);
            if let Some(p) = spec
                .and_then(|s| s.get("podManagementPolicy"))
                .filter(|v| !v.is_null())
                && !matches!(p.as_str(), Some("OrderedReady" | "Parallel"))
            {
                c.not_supported(
                    "spec.podManagementPolicy".into(),
                    p,
                    &["OrderedReady", "Parallel"],
                );
            }
        }
        _ => {}
    }
}

/// The selector is required and non-empty, and must select the template's labels; replica
/// workloads restart their pods Always.
fn validate_template(spec: Option<&Value>, kind: &str, c: &mut Causes) {
    let selector = spec
        .and_then(|s| s.get("selector"))
        .filter(|v| !v.is_null());
    let labels = spec.and_then(|s| at(s, &["template", "metadata", "labels"]));
    match selector {
        None => c.required("spec.selector".into(), ""),
        Some(sel) if selector_is_empty(sel) => c.invalid(
            "spec.selector".into(),
            sel,
            &format!("empty selector is invalid for {kind}"),
        ),
        Some(sel) => {
            validate_selector(sel, "spec.selector", c);
            if !selector_matches(sel, labels) {
                c.invalid(
                    "spec.template.metadata.labels".into(),
                    labels.unwrap_or(&Value::Null),
                    "`selector` does not match template `labels`",
                );
            }
        }
    }
    let pod = spec.and_then(|s| at(s, &["template", "spec"]));
    let with_claims = (kind == "statefulset").then(|| with_claim_volumes(spec, pod));
    super::pod::validate_pod_spec(with_claims.as_ref().or(pod), "spec.template.spec", c);
    if let Some(p) = pod
        .and_then(|p| p.get("restartPolicy"))
        .filter(|v| !v.is_null())
        && p.as_str() != Some("Always")
    {
        c.not_supported("spec.template.spec.restartPolicy".into(), p, &["Always"]);
    }
}

fn selector_is_empty(sel: &Value) -> bool {
    let empty = |k: &str| match sel.get(k) {
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => true,
    };
    empty("matchLabels") && empty("matchExpressions")
}

/// A metav1.LabelSelector's keys, values and expressions.
pub fn validate_selector(sel: &Value, field: &str, c: &mut Causes) {
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        super::meta::validate_label_map(m, &format!("{field}.matchLabels"), true, c);
    }
    let exprs = sel.get("matchExpressions").and_then(Value::as_array);
    for (i, e) in exprs.into_iter().flatten().enumerate() {
        let f = |k: &str| format!("{field}.matchExpressions[{i}].{k}");
        let key = e.get("key").unwrap_or(&Value::Null);
        match key.as_str().map(qualified_name) {
            Some(Ok(())) => {}
            Some(Err(msg)) => c.invalid(f("key"), key, &msg),
            None => c.required(f("key"), ""),
        }
        let values = e
            .get("values")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        let op = e.get("operator").unwrap_or(&Value::Null);
        match op.as_str() {
            Some("In" | "NotIn") if values.is_empty() => c.required(
                f("values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            ),
            Some("Exists" | "DoesNotExist") if !values.is_empty() => c.forbidden(
                f("values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            ),
            Some(o) if OPERATORS.contains(&o) => {}
            _ => c.not_supported(f("operator"), op, &OPERATORS),
        }
        for (j, v) in values.iter().enumerate() {
            if let Some(Err(msg)) = v.as_str().map(label_value) {
                c.invalid(
                    format!("{field}.matchExpressions[{i}].values[{j}]"),
                    v,
                    &msg,
                );
            }
        }
    }
}

/// Whether a LabelSelector selects `labels`.
pub fn selector_matches(sel: &Value, labels: Option<&Value>) -> bool {
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let match_labels = sel.get("matchLabels").and_then(Value::as_object);
    if !match_labels
        .into_iter()
        .flatten()
        .all(|(k, v)| label(k) == v.as_str())
    {
        return false;
    }
    let exprs = sel.get("matchExpressions").and_then(Value::as_array);
    exprs.into_iter().flatten().all(|e| {
        let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
        let has = |x: &str| {
            e.get("values")
                .and_then(Value::as_array)
                .is_some_and(|vs| vs.iter().any(|v| v.as_str() == Some(x)))
        };
        match (e.get("operator").and_then(Value::as_str), label(key)) {
            (Some("In"), Some(l)) => has(l),
            (Some("NotIn"), l) => l.is_none_or(|l| !has(l)),
            (Some("Exists"), l) => l.is_some(),
            (Some("DoesNotExist"), l) => l.is_none(),
            _ => false,
        }
    })
}

fn strategy_type(spec: Option<&Value>, key: &str, allowed: &[&str], c: &mut Causes) {
    if let Some(t) = spec.and_then(|s| at(s, &[key, "type"]))
        && !t.as_str().is_some_and(|t| allowed.contains(&t))
    {
        c.not_supported(format!("spec.{key}.type"), t, allowed);
    }
}

fn validate_deployment_strategy(spec: Option<&Value>, c: &mut Causes) {
    strategy_type(spec, "strategy", &["Recreate", "RollingUpdate"], c);
    let Some(strategy) = spec.and_then(|s| s.get("strategy")) else {
        return;
    };
    let rolling = strategy.get("rollingUpdate").filter(|v| !v.is_null());
    if strategy.get("type").and_then(Value::as_str) == Some("Recreate") && rolling.is_some() {
        c.forbidden(
            "spec.strategy.rollingUpdate".into(),
            "may not be specified when strategy `type` is 'Recreate'",
        );
    }
    let Some(rolling) = rolling else { return };
    let (surge, unavailable) = (rolling.get("maxSurge"), rolling.get("maxUnavailable"));
    for (k, v) in [("maxSurge", surge), ("maxUnavailable", unavailable)] {
        if let Some(v) = v.filter(|v| !v.is_null()) {
            int_or_percent(c, format!("spec.strategy.rollingUpdate.{k}"), v);
        }
    }
    if is_zero(surge) && is_zero(unavailable) {
        c.invalid(
            "spec.strategy.rollingUpdate.maxUnavailable".into(),
            unavailable.unwrap_or(&Value::Null),
            "may not be 0 when `maxSurge` is 0",
        );
    }
    if let (Some(p), Some(m)) = (
        spec.and_then(|s| s.get("progressDeadlineSeconds"))
            .and_then(Value::as_i64),
        spec.and_then(|s| s.get("minReadySeconds"))
            .and_then(Value::as_i64),
    ) && p <= m
    {
        c.invalid(
            "spec.progressDeadlineSeconds".into(),
            &Value::from(p),
            "must be greater than minReadySeconds",
        );
    }
}

/// A StatefulSet's pod template as its Pods get it: every `volumeClaimTemplates` name is a
/// volume its containers may mount (upstream checks the union of both, never one alone).
fn with_claim_volumes(spec: Option<&Value>, pod: Option<&Value>) -> Value {
    let mut pod = pod.cloned().unwrap_or(Value::Null);
    let claims = spec
        .and_then(|s| s.get("volumeClaimTemplates"))
        .and_then(Value::as_array);
    let Some(obj) = pod.as_object_mut() else {
        return pod;
    };
    let mut volumes = obj
        .get("volumes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for name in claims
        .into_iter()
        .flatten()
        .filter_map(|t| at(t, &["metadata", "name"]))
    {
        if !volumes.iter().any(|v| v.get("name") == Some(name)) {
            volumes.push(serde_json::json!({"name": name}));
        }
    }
    obj.insert("volumes".into(), Value::Array(volumes));
    pod
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn causes(obj: &Value) -> Vec<String> {
        let mut c = Causes(Vec::new());
        validate("statefulsets", obj, &mut c);
        c.0.into_iter().map(|c| c.field).collect()
    }

    #[test]
    fn a_stateful_set_may_mount_its_claim_templates_and_nothing_else() {
        let mut sts = json!({"spec": {"selector": {"matchLabels": {"app": "db"}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}}],
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [
                {"name": "db", "image": "postgres", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}}}});
        assert!(causes(&sts).is_empty(), "{:?}", causes(&sts));
        sts["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]["name"] = json!("logs");
        assert_eq!(
            causes(&sts),
            ["spec.template.spec.containers[0].volumeMounts[0].name"]
        );
    }
}
