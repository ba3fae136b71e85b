//! The RBAC objects a decision reads, and upstream's rule resolution over them: the
//! ClusterRoleBindings, then the RoleBindings of the request's namespace, each binding that
//! names the user (or one of its groups, or its ServiceAccount) contributing its role's rules.
//!
//! Aggregation (`aggregationRule.clusterRoleSelectors`) is computed here, when a rule is
//! looked for, rather than by a controller writing `rules` back as upstream's does: the API
//! server runs no controllers of its own (only the garbage collector), several `rotor serve`
//! may share one etcd, and a computed view is never stale. The cost: an aggregated role's
//! stored `rules` stay as written; `SelfSubjectRulesReview` and every decision see the union.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::attributes::Attributes;
use super::rules;
use crate::auth::UserInfo;

/// The RBAC objects that can apply to one request: every cluster-wide one and those of its
/// namespace.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub cluster_roles: Vec<ClusterRole>,
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
    pub roles: Vec<Role>,
    pub role_bindings: Vec<RoleBinding>,
}

/// Where rules come from: a binding, its role and the subject that matched (upstream's words
/// in the reason of an allow).
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// `ClusterRoleBinding "name"` or `RoleBinding "name/namespace"`.
    pub binding: String,
    pub role: RoleRef,
    pub subject: String,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (binding, role) = (&self.binding, &self.role);
        write!(
            f,
            "{binding} of {} {:?} to {}",
            role.kind, role.name, self.subject
        )
    }
}

/// The rules that apply to a user in a namespace, by source, and the bindings whose role is
/// missing (upstream's `clusterrole.rbac.authorization.k8s.io "x" not found`).
#[derive(Debug, Default)]
pub struct Resolved {
    pub grants: Vec<(Source, Vec<PolicyRule>)>,
    pub errors: Vec<String>,
}

impl Resolved {
    /// The first source whose rules allow `attrs`.
    pub fn allowing(&self, attrs: &Attributes) -> Option<&Source> {
        self.grants
            .iter()
            .find(|(_, rules)| rules.iter().any(|r| rules::allows(r, attrs)))
            .map(|(source, _)| source)
    }

    /// Upstream's reason beside a refusal: empty, or `RBAC: ` and the errors met.
    pub fn deny_reason(&self) -> String {
        match self.errors.as_slice() {
            [] => String::new(),
            [one] => format!("RBAC: {one}"),
            many => format!("RBAC: [{}]", many.join(", ")),
        }
    }
}

impl Policy {
    /// Every rule granted to `user` in `namespace` ("" for cluster-wide requests).
    pub fn resolve(&self, user: &UserInfo, namespace: &str) -> Resolved {
        let mut out = Resolved::default();
        for b in &self.cluster_role_bindings {
            let name = b.metadata.name.clone().unwrap_or_default();
            let Some(subject) = first_match(b.subjects.as_deref(), user, "") else {
                continue;
            };
            let source = Source {
                binding: format!("ClusterRoleBinding {name:?}"),
                role: b.role_ref.clone(),
                subject: describe(subject, ""),
            };
            self.grant(source, None, &mut out);
        }
        if namespace.is_empty() {
            return out;
        }
        for b in &self.role_bindings {
            let bound_in = b.metadata.namespace.as_deref().unwrap_or_default();
            if bound_in != namespace {
                continue;
            }
            let Some(subject) = first_match(b.subjects.as_deref(), user, namespace) else {
                continue;
            };
            let name = b.metadata.name.clone().unwrap_or_default();
            let source = Source {
                binding: format!("RoleBinding {:?}", format!("{name}/{namespace}")),
                role: b.role_ref.clone(),
                subject: describe(subject, namespace),
            };
            self.grant(source, Some(namespace), &mut out);
        }
        out
    }

    fn grant(&self, source: Source, namespace: Option<&str>, out: &mut Resolved) {
        let rules = match (source.role.kind.as_str(), namespace) {
            ("Role", Some(ns)) => self.role_rules(ns, &source.role.name),
            ("ClusterRole", _) => self.cluster_role_rules(&source.role.name),
            (kind, _) => Err(format!("unsupported role reference kind: {kind:?}")),
        };
        match rules {
            Ok(rules) => out.grants.push((source, rules)),
            Err(e) => out.errors.push(e),
        }
    }

    pub fn role_rules(&self, namespace: &str, name: &str) -> Result<Vec<PolicyRule>, String> {
        self.roles
            .iter()
            .find(|r| {
                r.metadata.name.as_deref() == Some(name)
                    && r.metadata.namespace.as_deref() == Some(namespace)
            })
            .map(|r| r.rules.clone().unwrap_or_default())
            .ok_or_else(|| format!("role.rbac.authorization.k8s.io {name:?} not found"))
    }

    /// A ClusterRole's rules; an aggregating one's are the union of the rules of the roles its
    /// selectors match (aggregating ones in turn), each role counted once.
    pub fn cluster_role_rules(&self, name: &str) -> Result<Vec<PolicyRule>, String> {
        let role = self.cluster_role(name)?;
        let mut visited = BTreeSet::from([name.to_string()]);
        let mut out = Vec::new();
        self.collect(role, &mut visited, &mut out);
        Ok(out)
    }

    fn cluster_role(&self, name: &str) -> Result<&ClusterRole, String> {
        self.cluster_roles
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
            .ok_or_else(|| format!("clusterrole.rbac.authorization.k8s.io {name:?} not found"))
    }

    fn collect(
        &self,
        role: &ClusterRole,
        visited: &mut BTreeSet<String>,
        out: &mut Vec<PolicyRule>,
    ) {
        let Some(aggregation) = &role.aggregation_rule else {
            for rule in role.rules.iter().flatten() {
                if !out.contains(rule) {
                    out.push(rule.clone());
                }
            }
            return;
        };
        let selectors = aggregation
            .cluster_role_selectors
            .as_deref()
            .unwrap_or_default();
        let mut matched: Vec<&ClusterRole> = self
            .cluster_roles
            .iter()
            .filter(|r| {
                selectors
                    .iter()
                    .any(|s| selects(s, r.metadata.labels.as_ref()))
            })
            .collect();
        matched.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        for r in matched {
            let name = r.metadata.name.clone().unwrap_or_default();
            if visited.insert(name) {
                self.collect(r, visited, out);
            }
        }
    }
}

/// The first subject of a binding that names `user`.
fn first_match<'a>(
    subjects: Option<&'a [Subject]>,
    user: &UserInfo,
    namespace: &str,
) -> Option<&'a Subject> {
    subjects?.iter().find(|s| applies(s, user, namespace))
}

/// Does `subject` name `user`? A ServiceAccount without a namespace is one of the binding's.
fn applies(subject: &Subject, user: &UserInfo, namespace: &str) -> bool {
    match subject.kind.as_str() {
        "User" => user.name == subject.name,
        "Group" => user.groups.contains(&subject.name),
        "ServiceAccount" => {
            let ns = subject
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(namespace);
            !ns.is_empty() && user.name == format!("system:serviceaccount:{ns}:{}", subject.name)
        }
        _ => false,
    }
}

fn describe(subject: &Subject, namespace: &str) -> String {
    match subject.kind.as_str() {
        "ServiceAccount" => {
            let ns = subject
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(namespace);
            format!("ServiceAccount {:?}", format!("{}/{ns}", subject.name))
        }
        kind => format!("{kind} {:?}", subject.name),
    }
}

/// A `metav1.LabelSelector` on a role's labels; the empty selector selects every role, an
/// unknown operator none.
pub fn selects(selector: &LabelSelector, labels: Option<&BTreeMap<String, String>>) -> bool {
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    let plain = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    plain
        && selector.match_expressions.iter().flatten().all(|e| {
            let value = labels.get(&e.key);
            let listed = |v: &String| e.values.iter().flatten().any(|x| x == v);
            match e.operator.as_str() {
                "In" => value.is_some_and(listed),
                "NotIn" => !value.is_some_and(listed),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}
