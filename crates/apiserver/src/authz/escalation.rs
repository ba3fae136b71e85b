//! Upstream's escalation prevention on writes of RBAC objects: a user outside
//! `system:masters` may write a Role or ClusterRole only with rules it holds itself (or with
//! the `escalate` verb on it), and a binding only to a role whose rules it holds (or with the
//! `bind` verb on that role). Without it, whoever may create a binding could bind themselves to
//! anything.

use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef};
use serde_json::Value;

use super::attributes::{Attributes, ResourceAttributes, Target};
use super::bootstrap::{RBAC_GROUP, resource_rule, url_rule};
use super::{Policy, decide};
use crate::auth::UserInfo;
use crate::error::ApiError;

/// Who writes an RBAC object, and the policy that applies to them in the object's namespace.
#[derive(Debug, Clone)]
pub struct Requester {
    pub user: UserInfo,
    pub policy: Policy,
}

impl Requester {
    /// Refuses writing `next` (over `current`, for an update) of resource `plural` in `ns` when
    /// it grants what the requester does not hold.
    pub fn check(
        &self,
        plural: &str,
        ns: &str,
        current: Option<&Value>,
        next: &Value,
    ) -> Result<(), ApiError> {
        let name = crate::object::name(next);
        let missing = match plural {
            "roles" | "clusterroles" if changed(current, next, &["rules", "aggregationRule"]) => {
                self.role_missing(plural, ns, name, next)?
            }
            "rolebindings" | "clusterrolebindings"
                if changed(current, next, &["roleRef", "subjects"]) =>
            {
                self.binding_missing(plural, ns, next)?
            }
            _ => Vec::new(),
        };
        match missing.is_empty() {
            true => Ok(()),
            false => Err(self.refuse(plural, name, &missing)),
        }
    }

    /// The rules of a role the requester lacks; none with `escalate` on it.
    fn role_missing(
        &self,
        plural: &str,
        ns: &str,
        name: &str,
        role: &Value,
    ) -> Result<Vec<PolicyRule>, ApiError> {
        if self.may("escalate", plural, ns, name) {
            return Ok(Vec::new());
        }
        let mut rules: Vec<PolicyRule> = decode(role.get("rules"), "rules")?;
        // An aggregation rule can gather anything: it takes every right.
        if role.get("aggregationRule").is_some_and(|a| !a.is_null()) {
            rules = vec![
                resource_rule(&["*"], &["*"], &["*"]),
                url_rule(&["*"], &["*"]),
            ];
        }
        Ok(self.uncovered(ns, &rules))
    }

    /// The rules of a binding's role the requester lacks; none with `bind` on the role.
    fn binding_missing(
        &self,
        plural: &str,
        ns: &str,
        binding: &Value,
    ) -> Result<Vec<PolicyRule>, ApiError> {
        let role: RoleRef = decode(binding.get("roleRef"), "roleRef")?;
        let resource = match role.kind.as_str() {
            "Role" => "roles",
            _ => "clusterroles",
        };
        if self.may("bind", resource, ns, &role.name) {
            return Ok(Vec::new());
        }
        let rules = match role.kind.as_str() {
            "Role" => self.policy.role_rules(ns, &role.name),
            _ => self.policy.cluster_role_rules(&role.name),
        };
        let rules = rules.map_err(|e| {
            ApiError::forbidden_resource(plural, RBAC_GROUP, crate::object::name(binding), &e)
        })?;
        Ok(self.uncovered(ns, &rules))
    }

    fn may(&self, verb: &str, resource: &str, ns: &str, name: &str) -> bool {
        let attrs = Attributes {
            verb: verb.into(),
            target: Target::Resource(ResourceAttributes {
                group: RBAC_GROUP.into(),
                resource: resource.into(),
                namespace: ns.into(),
                name: name.into(),
                ..ResourceAttributes::default()
            }),
        };
        decide(&self.policy, &self.user, &attrs).allowed()
    }

    fn uncovered(&self, ns: &str, rules: &[PolicyRule]) -> Vec<PolicyRule> {
        let resolved = self.policy.resolve(&self.user, ns);
        let owned: Vec<PolicyRule> = resolved.grants.into_iter().flat_map(|(_, r)| r).collect();
        uncovered(&owned, rules)
    }

    /// Upstream's words: `user "u" (groups=["g"]) is attempting to grant RBAC permissions not
    /// currently held:` and the rules, one a line.
    fn refuse(&self, plural: &str, name: &str, missing: &[PolicyRule]) -> ApiError {
        let groups: Vec<String> = self.user.groups.iter().map(|g| format!("{g:?}")).collect();
        let rules: Vec<String> = missing.iter().map(compact).collect();
        let why = format!(
            "user {:?} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
            self.user.name,
            groups.join(" "),
            rules.join("\n")
        );
        ApiError::forbidden_resource(plural, RBAC_GROUP, name, &why)
    }
}

fn changed(current: Option<&Value>, next: &Value, fields: &[&str]) -> bool {
    current.is_none_or(|c| fields.iter().any(|f| c.get(f) != next.get(f)))
}

fn decode<T: serde::de::DeserializeOwned + Default>(
    v: Option<&Value>,
    field: &str,
) -> Result<T, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(T::default()),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| ApiError::bad_request(format!("{field}: {e}"))),
    }
}

/// The atomic rules of `servant` (one verb on one resource of one group and one name, or one
/// verb on one path) that no rule of `owner` covers.
pub fn uncovered(owner: &[PolicyRule], servant: &[PolicyRule]) -> Vec<PolicyRule> {
    servant
        .iter()
        .flat_map(atoms)
        .filter(|atom| !owner.iter().any(|o| covers(o, atom)))
        .collect()
}

fn list(v: &Option<Vec<String>>) -> &[String] {
    v.as_deref().unwrap_or_default()
}

fn one(x: &str) -> Option<Vec<String>> {
    Some(vec![x.to_string()])
}

fn atoms(rule: &PolicyRule) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    for verb in &rule.verbs {
        for url in list(&rule.non_resource_urls) {
            out.push(PolicyRule {
                verbs: vec![verb.clone()],
                non_resource_urls: one(url),
                ..PolicyRule::default()
            });
        }
        for group in list(&rule.api_groups) {
            for resource in list(&rule.resources) {
                let atom = |names| PolicyRule {
                    verbs: vec![verb.clone()],
                    api_groups: one(group),
                    resources: one(resource),
                    resource_names: names,
                    non_resource_urls: None,
                };
                match list(&rule.resource_names) {
                    [] => out.push(atom(None)),
                    names => out.extend(names.iter().map(|n| atom(one(n)))),
                }
            }
        }
    }
    out
}

/// Does `owner` cover the atomic rule `atom`?
fn covers(owner: &PolicyRule, atom: &PolicyRule) -> bool {
    let has = |xs: &[String], x: &str| xs.iter().any(|o| o == "*" || o == x);
    let verb = atom.verbs.first().map_or("", String::as_str);
    if !has(&owner.verbs, verb) {
        return false;
    }
    if let Some(url) = list(&atom.non_resource_urls).first() {
        return list(&owner.non_resource_urls).iter().any(|o| {
            o == "*" || o == url || o.strip_suffix('*').is_some_and(|p| url.starts_with(p))
        });
    }
    let group = list(&atom.api_groups).first().map_or("", String::as_str);
    let resource = list(&atom.resources).first().map_or("", String::as_str);
    let names_ok = match list(&owner.resource_names) {
        [] => true,
        names => list(&atom.resource_names)
            .first()
            .is_some_and(|n| names.contains(n)),
    };
    has(list(&owner.api_groups), group)
        && resource_covered(list(&owner.resources), resource)
        && names_ok
}

/// `*`, the resource itself, `*/sub` for any resource's `sub`, `res/*` for any of `res`'s.
fn resource_covered(owner: &[String], resource: &str) -> bool {
    owner.iter().any(|o| {
        o == "*"
            || o == resource
            || o.strip_prefix("*/")
                .is_some_and(|sub| resource.split_once('/').is_some_and(|(_, s)| s == sub))
            || o.strip_suffix("/*")
                .is_some_and(|res| resource.split_once('/').is_some_and(|(r, _)| r == res))
    })
}

/// A rule as upstream's `compactString` prints it.
fn compact(rule: &PolicyRule) -> String {
    let quoted = |xs: &[String]| {
        xs.iter()
            .map(|x| format!("{x:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut parts = Vec::new();
    for (label, xs) in [
        ("APIGroups", list(&rule.api_groups)),
        ("Resources", list(&rule.resources)),
        ("ResourceNames", list(&rule.resource_names)),
        ("NonResourceURLs", list(&rule.non_resource_urls)),
    ] {
        if !xs.is_empty() {
            parts.push(format!("{label}:[{}]", quoted(xs)));
        }
    }
    parts.push(format!("Verbs:[{}]", quoted(&rule.verbs)));
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_rules_cover_what_they_grant_and_no_more() {
        let owner = [
            resource_rule(&["get", "list"], &["rotor.dev"], &["*"]),
            resource_rule(&["update"], &["rotor.dev"], &["*/status"]),
            url_rule(&["get"], &["/metrics", "/apis/*"]),
        ];
        let within = [
            resource_rule(&["get"], &["rotor.dev"], &["clusters", "rollouts/status"]),
            resource_rule(&["update"], &["rotor.dev"], &["clusters/status"]),
            url_rule(&["get"], &["/apis/rotor.dev"]),
        ];
        assert!(uncovered(&owner, &within).is_empty());
        let beyond = [resource_rule(
            &["get", "delete"],
            &["rotor.dev", ""],
            &["clusters"],
        )];
        let missing = uncovered(&owner, &beyond);
        let shown: Vec<String> = missing.iter().map(compact).collect();
        assert_eq!(
            shown,
            [
                r#"{APIGroups:[""], Resources:["clusters"], Verbs:["get"]}"#,
                r#"{APIGroups:["rotor.dev"], Resources:["clusters"], Verbs:["delete"]}"#,
                r#"{APIGroups:[""], Resources:["clusters"], Verbs:["delete"]}"#,
            ]
        );
        // `*` is only covered by `*`.
        assert_eq!(
            uncovered(
                &owner,
                &[resource_rule(&["*"], &["rotor.dev"], &["clusters"])]
            )
            .len(),
            1
        );
        assert_eq!(
            uncovered(&owner, &[url_rule(&["get"], &["/metrics/extra"])]).len(),
            1
        );
    }

    #[test]
    fn resource_names_narrow_what_is_covered() {
        let mut owner = resource_rule(&["get"], &["rotor.dev"], &["rollouts"]);
        owner.resource_names = one("r1");
        let mut asked = resource_rule(&["get"], &["rotor.dev"], &["rollouts"]);
        assert_eq!(
            uncovered(std::slice::from_ref(&owner), std::slice::from_ref(&asked)).len(),
            1,
            "every name"
        );
        asked.resource_names = one("r1");
        assert!(uncovered(&[owner], &[asked]).is_empty());
    }
}
