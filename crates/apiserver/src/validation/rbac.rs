//! rbac.authorization.k8s.io: policy rules of Roles and ClusterRoles, roleRef and subjects of
//! bindings.

use serde_json::Value;

use super::Causes;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

fn items(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn empty(v: Option<&Value>) -> bool {
    items(v).is_empty()
}

pub fn validate(plural: &str, obj: &Value, c: &mut Causes) {
    match plural {
        "roles" | "clusterroles" => {
            let namespaced = plural == "roles";
            for (i, rule) in items(obj.get("rules")).iter().enumerate() {
                validate_rule(rule, i, namespaced, c);
            }
            if let Some(rule) = obj.get("aggregationRule").filter(|r| !r.is_null())
                && !namespaced
                && empty(rule.get("clusterRoleSelectors"))
            {
                c.required(
                    "aggregationRule.clusterRoleSelectors".into(),
                    "at least one clusterRoleSelector required if aggregationRule is non-nil",
                );
            }
        }
        "rolebindings" | "clusterrolebindings" => {
            validate_binding(obj, plural == "rolebindings", c)
        }
        _ => {}
    }
}

fn validate_rule(rule: &Value, i: usize, namespaced: bool, c: &mut Causes) {
    let f = |k: &str| format!("rules[{i}].{k}");
    if empty(rule.get("verbs")) {
        c.required(f("verbs"), "verbs must contain at least one value");
    }
    let urls = !empty(rule.get("nonResourceURLs"));
    if urls {
        if namespaced {
            c.invalid(
                f("nonResourceURLs"),
                &rule["nonResourceURLs"],
                "namespaced rules cannot apply to non-resource URLs",
            );
        }
        if !empty(rule.get("apiGroups")) || !empty(rule.get("resources")) {
            c.invalid(
                f("nonResourceURLs"),
                &rule["nonResourceURLs"],
                "rules cannot apply to both regular resources and non-resource URLs",
            );
        }
        return;
    }
    if empty(rule.get("apiGroups")) {
        c.required(
            f("apiGroups"),
            "resource rules must supply at least one api group",
        );
    }
    if empty(rule.get("resources")) {
        c.required(
            f("resources"),
            "resource rules must supply at least one resource",
        );
    }
}

fn validate_binding(obj: &Value, namespaced: bool, c: &mut Causes) {
    let role_ref = obj.get("roleRef").unwrap_or(&Value::Null);
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    let kind = role_ref.get("kind").unwrap_or(&Value::Null);
    if !kind.as_str().is_some_and(|k| kinds.contains(&k)) {
        c.not_supported("roleRef.kind".into(), kind, kinds);
    }
    let group = role_ref.get("apiGroup").unwrap_or(&Value::Null);
    if group.as_str() != Some("rbac.authorization.k8s.io") {
        c.not_supported(
            "roleRef.apiGroup".into(),
            group,
            &["rbac.authorization.k8s.io"],
        );
    }
    if role_ref
        .get("name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        c.required("roleRef.name".into(), "");
    }
    for (i, s) in items(obj.get("subjects")).iter().enumerate() {
        let f = |k: &str| format!("subjects[{i}].{k}");
        if s.get("name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            c.required(f("name"), "");
        }
        let kind = s.get("kind").unwrap_or(&Value::Null);
        let group = s.get("apiGroup").unwrap_or(&Value::Null);
        let group_is = |g: &str| group.as_str().unwrap_or_default() == g;
        match kind.as_str() {
            Some("ServiceAccount") if !group_is("") => {
                c.not_supported(f("apiGroup"), group, &[""]);
            }
            Some("User" | "Group") if !group_is(RBAC_GROUP) => {
                c.not_supported(f("apiGroup"), group, &[RBAC_GROUP]);
            }
            Some("ServiceAccount") => {
                if !namespaced
                    && s.get("namespace")
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                {
                    c.required(f("namespace"), "");
                }
            }
            Some("User" | "Group") => {}
            _ => c.not_supported(f("kind"), kind, &["ServiceAccount", "User", "Group"]),
        }
    }
}
