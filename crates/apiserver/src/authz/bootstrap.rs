//! The policy a server starts with, as kube-apiserver's bootstrap policy: upstream's
//! `cluster-admin` (bound to `system:masters`), `system:basic-user` (the self reviews),
//! `system:discovery`, `system:public-info-viewer` and
//! `system:service-account-issuer-discovery` (bound to `system:serviceaccounts`), plus the roles an embedder ships (rotor's
//! own). Reconciled at start as upstream does: missing objects created, missing rules, labels,
//! annotations and subjects added, extra ones kept, and objects annotated
//! `rbac.authorization.kubernetes.io/autoupdate: "false"` left alone.

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use crate::auth::{AUTHENTICATED, MASTERS, UNAUTHENTICATED, issuer_discovery, service_account};
use crate::error::{ApiError, ApiResult};
use crate::server::{ApiServer, WriteOptions};

pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";
const BOOTSTRAPPING: &str = "kubernetes.io/bootstrapping";
/// Upstream's role for reading the ServiceAccount issuer's discovery documents.
pub const ISSUER_DISCOVERY: &str = "system:service-account-issuer-discovery";

/// A rule on resources of API groups.
pub fn resource_rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: strings(verbs),
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        ..PolicyRule::default()
    }
}

/// A rule on paths outside the API.
pub fn url_rule(verbs: &[&str], urls: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: strings(verbs),
        non_resource_urls: Some(strings(urls)),
        ..PolicyRule::default()
    }
}

fn strings(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|x| x.to_string()).collect()
}

/// A ClusterRole marked as bootstrap policy, so reconciliation keeps it current.
pub fn cluster_role(name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: bootstrap_meta(name),
        rules: Some(rules),
        aggregation_rule: None,
    }
}

fn bootstrap_meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        labels: Some([(BOOTSTRAPPING.to_string(), "rbac-defaults".to_string())].into()),
        annotations: Some([(AUTOUPDATE.to_string(), "true".to_string())].into()),
        ..ObjectMeta::default()
    }
}

/// A ClusterRoleBinding of ClusterRole `role` (same name) to groups.
pub fn binding_to_groups(role: &str, groups: &[&str]) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: bootstrap_meta(role),
        role_ref: RoleRef {
            api_group: RBAC_GROUP.into(),
            kind: "ClusterRole".into(),
            name: role.into(),
        },
        subjects: Some(
            groups
                .iter()
                .map(|g| Subject {
                    api_group: Some(RBAC_GROUP.into()),
                    kind: "Group".into(),
                    name: g.to_string(),
                    namespace: None,
                })
                .collect(),
        ),
    }
}

/// Upstream's system roles and bindings this server answers for.
pub fn system_policy() -> (Vec<ClusterRole>, Vec<ClusterRoleBinding>) {
    let public = ["/healthz", "/livez", "/readyz", "/version", "/version/"];
    let mut discovery = vec![
        "/api",
        "/api/*",
        "/apis",
        "/apis/*",
        "/openapi",
        "/openapi/*",
    ];
    discovery.extend(public);
    let roles = vec![
        cluster_role(
            "cluster-admin",
            vec![
                resource_rule(&["*"], &["*"], &["*"]),
                url_rule(&["*"], &["*"]),
            ],
        ),
        cluster_role(
            "system:basic-user",
            vec![
                resource_rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                resource_rule(
                    &["create"],
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                ),
            ],
        ),
        cluster_role("system:discovery", vec![url_rule(&["get"], &discovery)]),
        cluster_role(
            "system:public-info-viewer",
            vec![url_rule(&["get"], &public)],
        ),
        cluster_role(
            ISSUER_DISCOVERY,
            vec![url_rule(
                &["get"],
                &[
                    issuer_discovery::CONFIGURATION_PATH,
                    issuer_discovery::JWKS_PATH,
                ],
            )],
        ),
    ];
    let bindings = vec![
        binding_to_groups("cluster-admin", &[MASTERS]),
        binding_to_groups("system:basic-user", &[AUTHENTICATED]),
        binding_to_groups("system:discovery", &[AUTHENTICATED]),
        binding_to_groups(
            "system:public-info-viewer",
            &[AUTHENTICATED, UNAUTHENTICATED],
        ),
        // Upstream grants it to ServiceAccounts only, deferring to the operator for binding
        // it to all authenticated or unauthenticated users.
        binding_to_groups(ISSUER_DISCOVERY, &[service_account::GROUP]),
    ];
    (roles, bindings)
}

impl ApiServer {
    /// Creates or brings up to date the system policy and `roles`, as upstream does at start.
    pub async fn reconcile_policy(&self, roles: &[ClusterRole]) -> ApiResult<()> {
        let (mut all, bindings) = system_policy();
        all.extend(roles.iter().cloned());
        for role in &all {
            self.reconcile_object("clusterroles", to_value(role)?, merge_role)
                .await?;
        }
        for binding in &bindings {
            self.reconcile_object("clusterrolebindings", to_value(binding)?, merge_binding)
                .await?;
        }
        Ok(())
    }

    /// Creates `want`, or merges it into the stored object with `merge` (None: nothing to do),
    /// retrying a conflict with another server doing the same.
    async fn reconcile_object(
        &self,
        plural: &str,
        want: Value,
        merge: fn(&Value, &Value) -> Option<Value>,
    ) -> ApiResult<()> {
        let res = self.resource(RBAC_GROUP, "v1", plural)?;
        let name = crate::object::name(&want).to_string();
        let opts = WriteOptions {
            field_manager: "rotor-bootstrap".into(),
            ..WriteOptions::default()
        };
        for _ in 0..5 {
            let current = match self.get(&res, None, &name).await {
                Ok(current) => current,
                Err(e) if e.reason == "NotFound" => {
                    match self.create(&res, None, want.clone(), &opts).await {
                        Err(e) if e.reason == "AlreadyExists" => continue,
                        other => return other.map(|_| ()),
                    }
                }
                Err(e) => return Err(e),
            };
            let Some(next) = merge(&current, &want) else {
                return Ok(());
            };
            match self.update(&res, None, &name, next, None, &opts).await {
                Err(e) if e.reason == "Conflict" => continue,
                other => return other.map(|_| ()),
            }
        }
        Err(ApiError::conflict(plural, RBAC_GROUP, &name))
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> ApiResult<Value> {
    serde_json::to_value(v)
        .map_err(|e| ApiError::internal(format!("encoding bootstrap policy: {e}")))
}

/// Whether the stored object opted out of reconciliation.
fn opted_out(current: &Value) -> bool {
    current
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(AUTOUPDATE))
        .and_then(Value::as_str)
        == Some("false")
}

/// Adds what `want` has and `current` lacks in the `field` list of objects or strings; true
/// when something was added.
fn add_missing(next: &mut Value, want: &Value, field: &str) -> bool {
    let wanted = want
        .get(field)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut have = next
        .get(field)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let before = have.len();
    for w in wanted {
        if !have.contains(&w) {
            have.push(w);
        }
    }
    let added = have.len() != before;
    if added {
        next[field] = Value::Array(have);
    }
    added
}

/// Adds missing labels and annotations; true when something was added.
fn add_missing_meta(next: &mut Value, want: &Value) -> bool {
    let mut added = false;
    for key in ["labels", "annotations"] {
        let Some(wanted) = want
            .pointer(&format!("/metadata/{key}"))
            .and_then(Value::as_object)
        else {
            continue;
        };
        for (k, v) in wanted {
            let map = &mut next["metadata"][key];
            if map.get(k).is_none() {
                map[k] = v.clone();
                added = true;
            }
        }
    }
    added
}

fn merge_role(current: &Value, want: &Value) -> Option<Value> {
    if opted_out(current) {
        return None;
    }
    let mut next = current.clone();
    let meta = add_missing_meta(&mut next, want);
    let rules = add_missing(&mut next, want, "rules");
    let selectors = match want.pointer("/aggregationRule") {
        Some(rule) if next.get("aggregationRule").is_none() => {
            next["aggregationRule"] = rule.clone();
            true
        }
        Some(rule) => add_missing(&mut next["aggregationRule"], rule, "clusterRoleSelectors"),
        None => false,
    };
    (meta || rules || selectors).then_some(next)
}

fn merge_binding(current: &Value, want: &Value) -> Option<Value> {
    if opted_out(current) {
        return None;
    }
    let mut next = current.clone();
    let meta = add_missing_meta(&mut next, want);
    let subjects = add_missing(&mut next, want, "subjects");
    (meta || subjects).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reconciling_adds_what_is_missing_and_keeps_the_rest() {
        let want =
            to_value(&cluster_role("r", vec![url_rule(&["get"], &["/metrics"])])).expect("json");
        let current = json!({"metadata": {"name": "r", "labels": {"mine": "x"}}, "rules": [{"verbs": ["get"], "nonResourceURLs": ["/extra"]}]});
        let next = merge_role(&current, &want).expect("a change");
        assert_eq!(next["rules"].as_array().map(Vec::len), Some(2), "{next}");
        assert_eq!(next["metadata"]["labels"]["mine"], "x");
        assert_eq!(next["metadata"]["labels"][BOOTSTRAPPING], "rbac-defaults");
        assert_eq!(merge_role(&next, &want), None, "once merged, nothing to do");
        let mut frozen = current.clone();
        frozen["metadata"]["annotations"] = json!({AUTOUPDATE: "false"});
        assert_eq!(
            merge_role(&frozen, &want),
            None,
            "autoupdate=false is left alone"
        );
    }
}
