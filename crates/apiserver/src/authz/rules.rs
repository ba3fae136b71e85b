//! Whether one RBAC `PolicyRule` allows a request: upstream's matching of verbs (`*`), API
//! groups, resources (`*`, `resource/subresource`, `*/subresource`), resourceNames and
//! nonResourceURLs (exact, `*`, or a `prefix*`).

use k8s_openapi::api::rbac::v1::PolicyRule;

use super::attributes::{Attributes, ResourceAttributes, Target};

const ALL: &str = "*";

/// Does `rule` allow the request `attrs`?
pub fn allows(rule: &PolicyRule, attrs: &Attributes) -> bool {
    if !verb_matches(rule, &attrs.verb) {
        return false;
    }
    match &attrs.target {
        Target::Resource(r) => resource_rule_matches(rule, r),
        Target::NonResource { path } => url_matches(rule, path),
    }
}

fn resource_rule_matches(rule: &PolicyRule, r: &ResourceAttributes) -> bool {
    let combined = match r.subresource.is_empty() {
        true => r.resource.clone(),
        false => format!("{}/{}", r.resource, r.subresource),
    };
    group_matches(rule, &r.group)
        && resource_matches(rule, &combined, &r.subresource)
        && name_matches(rule, &r.name)
}

fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == ALL || v == verb)
}

fn group_matches(rule: &PolicyRule, group: &str) -> bool {
    rule.api_groups
        .iter()
        .flatten()
        .any(|g| g == ALL || g == group)
}

/// `combined` is `resource` or `resource/subresource`; `*/sub` matches any resource's `sub`.
fn resource_matches(rule: &PolicyRule, combined: &str, subresource: &str) -> bool {
    rule.resources.iter().flatten().any(|r| {
        r == ALL
            || r == combined
            || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource))
    })
}

/// No resourceNames: every name; otherwise the request must name one of them (so a list or a
/// create, which names none, is not covered).
fn name_matches(rule: &PolicyRule, name: &str) -> bool {
    match rule.resource_names.as_deref() {
        None | Some([]) => true,
        Some(names) => names.iter().any(|n| n == name),
    }
}

fn url_matches(rule: &PolicyRule, path: &str) -> bool {
    rule.non_resource_urls.iter().flatten().any(|u| {
        u == ALL
            || u == path
            || u.strip_suffix('*')
                .is_some_and(|prefix| path.starts_with(prefix.trim_end_matches('*')))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        let list = |xs: &[&str]| Some(xs.iter().map(|x| x.to_string()).collect());
        PolicyRule {
            verbs: verbs.iter().map(|x| x.to_string()).collect(),
            api_groups: list(groups),
            resources: list(resources),
            resource_names: (!names.is_empty()).then(|| list(names)).flatten(),
            non_resource_urls: None,
        }
    }

    fn url_rule(verbs: &[&str], urls: &[&str]) -> PolicyRule {
        PolicyRule {
            verbs: verbs.iter().map(|x| x.to_string()).collect(),
            non_resource_urls: Some(urls.iter().map(|x| x.to_string()).collect()),
            ..PolicyRule::default()
        }
    }

    fn req(verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            target: Target::Resource(ResourceAttributes {
                group: group.into(),
                resource: resource.into(),
                subresource: sub.into(),
                name: name.into(),
                ..Default::default()
            }),
        }
    }

    fn path(verb: &str, path: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            target: Target::NonResource { path: path.into() },
        }
    }

    #[test]
    fn verbs_groups_and_resources() {
        let r = rule(&["get", "list"], &["rotor.dev"], &["clusters"], &[]);
        assert!(allows(&r, &req("get", "rotor.dev", "clusters", "", "a")));
        assert!(allows(&r, &req("list", "rotor.dev", "clusters", "", "")));
        assert!(!allows(&r, &req("watch", "rotor.dev", "clusters", "", "")));
        assert!(
            !allows(&r, &req("get", "", "clusters", "", "a")),
            "another group"
        );
        assert!(!allows(&r, &req("get", "rotor.dev", "rollouts", "", "a")));
        assert!(
            !allows(&r, &req("get", "rotor.dev", "clusters", "status", "a")),
            "a subresource is not its resource"
        );
        let any = rule(&["*"], &["*"], &["*"], &[]);
        assert!(allows(
            &any,
            &req(
                "escalate",
                "rbac.authorization.k8s.io",
                "clusterroles",
                "",
                "x"
            )
        ));
        assert!(allows(
            &any,
            &req("update", "rotor.dev", "clusters", "status", "x")
        ));
        assert!(
            !allows(&any, &path("get", "/metrics")),
            "resource rules grant no paths"
        );
    }

    #[test]
    fn subresources() {
        let exact = rule(&["update"], &["rotor.dev"], &["rollouts/status"], &[]);
        assert!(allows(
            &exact,
            &req("update", "rotor.dev", "rollouts", "status", "r")
        ));
        assert!(!allows(
            &exact,
            &req("update", "rotor.dev", "rollouts", "", "r")
        ));
        assert!(!allows(
            &exact,
            &req("update", "rotor.dev", "clusters", "status", "r")
        ));
        let any = rule(&["update"], &["rotor.dev"], &["*/status"], &[]);
        assert!(allows(
            &any,
            &req("update", "rotor.dev", "clusters", "status", "c")
        ));
        assert!(!allows(
            &any,
            &req("update", "rotor.dev", "clusters", "scale", "c")
        ));
        assert!(!allows(
            &any,
            &req("update", "rotor.dev", "clusters", "", "c")
        ));
    }

    #[test]
    fn resource_names() {
        let r = rule(
            &["get", "list", "patch"],
            &["rotor.dev"],
            &["rollouts"],
            &["r1"],
        );
        assert!(allows(&r, &req("get", "rotor.dev", "rollouts", "", "r1")));
        assert!(allows(&r, &req("patch", "rotor.dev", "rollouts", "", "r1")));
        assert!(!allows(&r, &req("get", "rotor.dev", "rollouts", "", "r2")));
        assert!(
            !allows(&r, &req("list", "rotor.dev", "rollouts", "", "")),
            "a list names nothing"
        );
    }

    #[test]
    fn non_resource_urls() {
        let r = url_rule(&["get"], &["/metrics", "/apis/*", "/healthz"]);
        assert!(allows(&r, &path("get", "/metrics")));
        assert!(!allows(&r, &path("post", "/metrics")));
        assert!(
            !allows(&r, &path("get", "/metrics/x")),
            "exact unless it ends in *"
        );
        assert!(allows(&r, &path("get", "/apis/rotor.dev")));
        assert!(allows(&r, &path("get", "/apis/")));
        assert!(
            !allows(&r, &path("get", "/apis")),
            "the prefix keeps its slash"
        );
        assert!(
            !allows(&r, &req("get", "", "metrics", "", "")),
            "paths grant no resources"
        );
        assert!(allows(
            &url_rule(&["*"], &["*"]),
            &path("delete", "/anything")
        ));
    }
}
