//! Authorization as kube-apiserver's: members of `system:masters` may do everything (the admin
//! token, the in-process controllers, trusted loopback clients); everyone else is judged by
//! RBAC — Roles, ClusterRoles and their bindings served by this API — on the request's
//! attributes as upstream derives them. A refusal is upstream's 403.
//!
//! A resource may also carry a field-limited custom verb ([`fields::FieldVerb`], rotor's
//! `operate`): a patch or update refused as such is allowed when the user has that verb and
//! the write changes only the fields the verb covers.

pub mod attributes;
pub mod bootstrap;
pub mod escalation;
pub mod fields;
pub mod policy;
pub mod review;
pub mod rules;

use std::sync::Arc;

use serde_json::Value;

pub use attributes::{Attributes, ResourceAttributes, Target};
pub use fields::{FieldLimit, FieldVerb};
pub use policy::Policy;

use crate::auth::{MASTERS, UserInfo};
use crate::error::{ApiError, ApiResult};
use crate::server::{ApiServer, ListOptions};

/// What an embedder adds to the policy: ClusterRoles reconciled at start beside upstream's
/// system roles ([`bootstrap`]), and the field-limited verbs of its resources.
#[derive(Debug, Clone, Default)]
pub struct Shipped {
    pub cluster_roles: Vec<k8s_openapi::api::rbac::v1::ClusterRole>,
    pub field_verbs: Vec<FieldVerb>,
}

/// An authorizer's answer, as upstream's: allowed (with the grant that allowed it), or no
/// opinion — which, with no other authorizer after RBAC, is a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow { reason: String },
    NoOpinion { reason: String },
}

impl Decision {
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }
}

/// What a request may do once authorized: all it asked, or a write limited to some fields.
#[derive(Debug, Clone)]
pub enum Grant {
    Full,
    Fields(Arc<FieldLimit>),
}

/// An authorization as the audit log records it: the grant (or the refusal), upstream's
/// `allow`/`forbid` (None when the policy could not be read) and the authorizer's reason.
pub(crate) struct Verdict {
    pub grant: ApiResult<Grant>,
    pub decision: Option<&'static str>,
    pub reason: String,
}

impl Verdict {
    fn allow(grant: Grant, reason: String) -> Verdict {
        Verdict {
            grant: Ok(grant),
            decision: Some("allow"),
            reason,
        }
    }

    /// The authorizer failed: upstream's 500 with the reason `internal error`.
    fn failed(e: ApiError) -> Verdict {
        Verdict {
            grant: Err(e),
            decision: None,
            reason: "internal error".into(),
        }
    }
}

/// The decision for `user` on `attrs` against `policy` (the RBAC objects that apply).
pub fn decide(policy: &Policy, user: &UserInfo, attrs: &Attributes) -> Decision {
    if user.groups.iter().any(|g| g == MASTERS) {
        return Decision::Allow {
            reason: String::new(),
        };
    }
    let namespace = attrs.resource().map_or("", |r| r.namespace.as_str());
    let resolved = policy.resolve(user, namespace);
    match resolved.allowing(attrs) {
        Some(source) => Decision::Allow {
            reason: format!("RBAC: allowed by {source}"),
        },
        None => Decision::NoOpinion {
            reason: resolved.deny_reason(),
        },
    }
}

/// Upstream's 403: `<resource> "<name>" is forbidden: User "u" cannot <verb> resource …`, and
/// the authorizer's reason after a colon when it gave one.
pub fn forbidden(user: &UserInfo, attrs: &Attributes, reason: &str) -> ApiError {
    let mut message = refusal(user, attrs);
    if !reason.is_empty() {
        message = format!("{message}: {reason}");
    }
    match &attrs.target {
        Target::NonResource { .. } => ApiError::forbidden(format!("forbidden: {message}")),
        Target::Resource(r) => {
            ApiError::forbidden_resource(&r.resource, &r.group, &r.name, &message)
        }
    }
}

/// `User "u" cannot <verb> …`, HTML-significant characters escaped as upstream does.
fn refusal(user: &UserInfo, attrs: &Attributes) -> String {
    let (name, verb) = (&user.name, &attrs.verb);
    let text = match &attrs.target {
        Target::NonResource { path } => format!("User {name:?} cannot {verb} path {path:?}"),
        Target::Resource(r) => {
            let resource = match r.subresource.is_empty() {
                true => r.resource.clone(),
                false => format!("{}/{}", r.resource, r.subresource),
            };
            let scope = match r.namespace.is_empty() {
                true => "at the cluster scope".to_string(),
                false => format!("in the namespace {:?}", r.namespace),
            };
            format!(
                "User {name:?} cannot {verb} resource {resource:?} in API group {:?} {scope}",
                r.group
            )
        }
    };
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl ApiServer {
    /// Judges a request: its grant, or upstream's 403. Members of `system:masters` are not
    /// looked up at all.
    pub(crate) async fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> ApiResult<Grant> {
        self.judge(user, attrs).await.grant
    }

    /// [`Self::authorize`] with what the audit log records of the decision.
    pub(crate) async fn judge(&self, user: &UserInfo, attrs: &Attributes) -> Verdict {
        if user.groups.iter().any(|g| g == MASTERS) {
            return Verdict::allow(Grant::Full, String::new());
        }
        let namespace = attrs.resource().map_or("", |r| r.namespace.as_str());
        let policy = match self.load_policy(namespace).await {
            Ok(policy) => policy,
            Err(e) => return Verdict::failed(e),
        };
        let reason = match decide(&policy, user, attrs) {
            Decision::Allow { reason } => return Verdict::allow(Grant::Full, reason),
            Decision::NoOpinion { reason } => reason,
        };
        if let Some(limit) = self.field_limit(&policy, user, attrs) {
            let allowed = format!("RBAC: allowed the fields of verb {:?}", limit.verb.verb);
            return Verdict::allow(Grant::Fields(Arc::new(limit)), allowed);
        }
        Verdict {
            grant: Err(forbidden(user, attrs, &reason)),
            decision: Some("forbid"),
            reason,
        }
    }

    /// Who writes, for a create, update or patch of an RBAC object by a user outside
    /// `system:masters`: the write path then refuses grants they do not hold.
    pub(crate) async fn requester(
        &self,
        user: &UserInfo,
        attrs: &Attributes,
    ) -> ApiResult<Option<Arc<escalation::Requester>>> {
        let Some(r) = attrs.resource() else {
            return Ok(None);
        };
        let writes = matches!(attrs.verb.as_str(), "create" | "update" | "patch");
        let master = user.groups.iter().any(|g| g == MASTERS);
        if master || !writes || r.group != bootstrap::RBAC_GROUP || !r.subresource.is_empty() {
            return Ok(None);
        }
        let policy = self.load_policy(&r.namespace).await?;
        let user = user.clone();
        Ok(Some(Arc::new(escalation::Requester { user, policy })))
    }

    /// The decision on a path outside the API (`/metrics` of `rotor serve`): the request's user
    /// (authenticated as any request is) if RBAC lets it `get` the path.
    pub async fn authorize_path(&self, parts: &http::request::Parts) -> ApiResult<UserInfo> {
        let user = self.admit(parts).await?;
        let query = crate::request::Query::parse(parts.uri.query());
        let attrs = attributes::of_request(&parts.method, parts.uri.path(), &query);
        self.authorize(&user, &attrs).await?;
        Ok(user)
    }

    /// A patch or update refused as such, allowed as a field-limited verb the user has.
    fn field_limit(
        &self,
        policy: &Policy,
        user: &UserInfo,
        attrs: &Attributes,
    ) -> Option<FieldLimit> {
        let r = attrs.resource()?;
        if !matches!(attrs.verb.as_str(), "patch" | "update") || !r.subresource.is_empty() {
            return None;
        }
        let shipped = self.config().policy.as_ref()?;
        let verb = shipped.field_verbs.iter().find(|v| v.applies_to(r))?;
        let allowed = decide(policy, user, &attrs.with_verb(&verb.verb)).allowed();
        allowed.then(|| FieldLimit {
            verb: verb.clone(),
            refused: forbidden(user, attrs, ""),
        })
    }

    /// The RBAC objects that can apply in `namespace` ("" for cluster-wide requests), read from
    /// the store for each request: no cache to fall behind a binding just written.
    pub(crate) async fn load_policy(&self, namespace: &str) -> ApiResult<Policy> {
        let cluster_roles = self.rbac_list("clusterroles", None).await?;
        let cluster_role_bindings = self.rbac_list("clusterrolebindings", None).await?;
        let (roles, role_bindings) = match namespace.is_empty() {
            true => (Vec::new(), Vec::new()),
            false => (
                self.rbac_list("roles", Some(namespace)).await?,
                self.rbac_list("rolebindings", Some(namespace)).await?,
            ),
        };
        Ok(Policy {
            cluster_roles,
            cluster_role_bindings,
            roles,
            role_bindings,
        })
    }

    /// The objects of an RBAC resource; one that does not decode is skipped (it grants nothing).
    async fn rbac_list<T: serde::de::DeserializeOwned>(
        &self,
        plural: &str,
        ns: Option<&str>,
    ) -> ApiResult<Vec<T>> {
        let Ok(res) = self.resource(bootstrap::RBAC_GROUP, "v1", plural) else {
            return Ok(Vec::new());
        };
        let list = self.list(&res, ns, &ListOptions::default()).await?;
        let items = match list {
            Value::Object(mut m) => m.remove("items"),
            _ => None,
        };
        let items = match items {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        };
        Ok(items
            .into_iter()
            .filter_map(|i| serde_json::from_value(i).ok())
            .collect())
    }
}

impl crate::server::WriteOptions {
    /// The limits authorization set on a change of `current` to `next` (of resource `plural`
    /// in namespace `ns`): the fields a field-limited verb may touch, and what an RBAC object
    /// written by a user outside `system:masters` may grant. Shared by update and patch.
    pub(crate) fn authorize_change(
        &self,
        plural: &str,
        ns: Option<&str>,
        current: &serde_json::Value,
        next: &serde_json::Value,
    ) -> Result<(), crate::error::ApiError> {
        if let Some(limit) = &self.limit {
            limit.check(current, next)?;
        }
        if let Some(requester) = &self.requester {
            requester.check(plural, ns.unwrap_or(""), Some(current), next)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::rbac::v1::{
        AggregationRule, ClusterRole, ClusterRoleBinding, Role, RoleBinding, RoleRef, Subject,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

    use super::bootstrap::{cluster_role, resource_rule, url_rule};
    use super::*;

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            uid: String::new(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn subject(kind: &str, name: &str) -> Subject {
        Subject {
            api_group: None,
            kind: kind.into(),
            name: name.into(),
            namespace: None,
        }
    }

    fn role_ref(kind: &str, name: &str) -> RoleRef {
        RoleRef {
            api_group: bootstrap::RBAC_GROUP.into(),
            kind: kind.into(),
            name: name.into(),
        }
    }

    fn meta(name: &str, ns: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: ns.map(String::from),
            ..ObjectMeta::default()
        }
    }

    fn cluster_binding(name: &str, role: &str, subjects: Vec<Subject>) -> ClusterRoleBinding {
        ClusterRoleBinding {
            metadata: meta(name, None),
            role_ref: role_ref("ClusterRole", role),
            subjects: Some(subjects),
        }
    }

    fn binding(
        ns: &str,
        name: &str,
        kind: &str,
        role: &str,
        subjects: Vec<Subject>,
    ) -> RoleBinding {
        RoleBinding {
            metadata: meta(name, Some(ns)),
            role_ref: role_ref(kind, role),
            subjects: Some(subjects),
        }
    }

    fn req(verb: &str, group: &str, resource: &str, ns: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            target: Target::Resource(ResourceAttributes {
                group: group.into(),
                resource: resource.into(),
                namespace: ns.into(),
                name: name.into(),
                ..ResourceAttributes::default()
            }),
        }
    }

    fn reader() -> ClusterRole {
        cluster_role(
            "reader",
            vec![resource_rule(
                &["get", "list"],
                &["rotor.dev"],
                &["clusters"],
            )],
        )
    }

    #[test]
    fn masters_bypass_and_strangers_get_nothing() {
        let policy = Policy::default();
        let root = user("root", &[MASTERS]);
        assert!(decide(&policy, &root, &req("delete", "", "secrets", "x", "y")).allowed());
        let nobody = user("nobody", &["system:authenticated"]);
        let d = decide(
            &policy,
            &nobody,
            &req("get", "rotor.dev", "clusters", "", "a"),
        );
        assert_eq!(
            d,
            Decision::NoOpinion {
                reason: String::new()
            },
            "a plain deny has no reason"
        );
    }

    #[test]
    fn cluster_bindings_by_user_and_group() {
        let policy = Policy {
            cluster_roles: vec![reader()],
            cluster_role_bindings: vec![cluster_binding(
                "qa-read",
                "reader",
                vec![subject("Group", "qa")],
            )],
            ..Policy::default()
        };
        let carol = user("carol", &["qa"]);
        let d = decide(
            &policy,
            &carol,
            &req("get", "rotor.dev", "clusters", "", "a"),
        );
        assert_eq!(
            d,
            Decision::Allow { reason: "RBAC: allowed by ClusterRoleBinding \"qa-read\" of ClusterRole \"reader\" to Group \"qa\"".into() }
        );
        assert!(
            decide(
                &policy,
                &carol,
                &req("list", "rotor.dev", "clusters", "ns", "")
            )
            .allowed(),
            "cluster-wide in every namespace"
        );
        assert!(
            !decide(
                &policy,
                &carol,
                &req("delete", "rotor.dev", "clusters", "", "a")
            )
            .allowed()
        );
        assert!(
            !decide(
                &policy,
                &user("dave", &["dev"]),
                &req("get", "rotor.dev", "clusters", "", "a")
            )
            .allowed()
        );
    }

    #[test]
    fn role_bindings_act_in_their_namespace_only() {
        let role = Role {
            metadata: meta("secret-reader", Some("web")),
            rules: Some(vec![resource_rule(&["get"], &[""], &["secrets"])]),
        };
        let policy = Policy {
            cluster_roles: vec![reader()],
            roles: vec![role],
            role_bindings: vec![
                binding(
                    "web",
                    "a",
                    "Role",
                    "secret-reader",
                    vec![subject("User", "alice")],
                ),
                binding(
                    "web",
                    "b",
                    "ClusterRole",
                    "reader",
                    vec![subject("User", "alice")],
                ),
            ],
            ..Policy::default()
        };
        let alice = user("alice", &[]);
        assert!(decide(&policy, &alice, &req("get", "", "secrets", "web", "s")).allowed());
        assert!(!decide(&policy, &alice, &req("get", "", "secrets", "db", "s")).allowed());
        // A RoleBinding to a ClusterRole grants its rules in the binding's namespace only.
        assert!(
            decide(
                &policy,
                &alice,
                &req("list", "rotor.dev", "clusters", "web", "")
            )
            .allowed()
        );
        assert!(
            !decide(
                &policy,
                &alice,
                &req("list", "rotor.dev", "clusters", "", "")
            )
            .allowed()
        );
        assert!(
            !decide(
                &policy,
                &alice,
                &req("list", "rotor.dev", "clusters", "db", "")
            )
            .allowed()
        );
    }

    #[test]
    fn service_accounts_by_namespace() {
        let mut sa = subject("ServiceAccount", "deployer");
        let policy = Policy {
            cluster_roles: vec![reader()],
            role_bindings: vec![binding(
                "ci",
                "b",
                "ClusterRole",
                "reader",
                vec![sa.clone()],
            )],
            cluster_role_bindings: vec![cluster_binding("c", "reader", vec![sa.clone()])],
            ..Policy::default()
        };
        let bot = user("system:serviceaccount:ci:deployer", &[]);
        assert!(
            decide(
                &policy,
                &bot,
                &req("list", "rotor.dev", "clusters", "ci", "")
            )
            .allowed(),
            "the binding's namespace"
        );
        assert!(
            !decide(&policy, &bot, &req("list", "rotor.dev", "clusters", "", "")).allowed(),
            "a cluster binding needs the namespace"
        );
        sa.namespace = Some("ci".into());
        let policy = Policy {
            cluster_role_bindings: vec![cluster_binding("c", "reader", vec![sa])],
            ..policy
        };
        assert!(decide(&policy, &bot, &req("list", "rotor.dev", "clusters", "", "")).allowed());
    }

    #[test]
    fn aggregation_unions_the_selected_roles() {
        let mut labelled = cluster_role(
            "rollout-reader",
            vec![resource_rule(&["get"], &["rotor.dev"], &["rollouts"])],
        );
        labelled.metadata.labels =
            Some([("rotor.dev/aggregate-to-ops".to_string(), "true".to_string())].into());
        let mut nested = cluster_role("nested", vec![]);
        nested.metadata.labels = labelled.metadata.labels.clone();
        nested.aggregation_rule = Some(AggregationRule {
            cluster_role_selectors: Some(vec![LabelSelector {
                match_labels: Some([("extra".to_string(), "yes".to_string())].into()),
                ..LabelSelector::default()
            }]),
        });
        let mut extra = cluster_role("metrics", vec![url_rule(&["get"], &["/metrics"])]);
        extra.metadata.labels = Some([("extra".to_string(), "yes".to_string())].into());
        let mut ops = cluster_role("ops", vec![resource_rule(&["*"], &["*"], &["*"])]);
        ops.aggregation_rule = Some(AggregationRule {
            cluster_role_selectors: Some(vec![LabelSelector {
                match_labels: Some(
                    [("rotor.dev/aggregate-to-ops".to_string(), "true".to_string())].into(),
                ),
                ..LabelSelector::default()
            }]),
        });
        let policy = Policy {
            cluster_roles: vec![ops, labelled, nested, extra, reader()],
            cluster_role_bindings: vec![cluster_binding("ops", "ops", vec![subject("User", "op")])],
            ..Policy::default()
        };
        let op = user("op", &[]);
        assert!(decide(&policy, &op, &req("get", "rotor.dev", "rollouts", "", "r")).allowed());
        let metrics = Attributes {
            verb: "get".into(),
            target: Target::NonResource {
                path: "/metrics".into(),
            },
        };
        assert!(
            decide(&policy, &op, &metrics).allowed(),
            "through the nested aggregation"
        );
        // The aggregating role's own rules are replaced by the union, as upstream's controller does.
        assert!(!decide(&policy, &op, &req("delete", "", "secrets", "x", "y")).allowed());
        assert!(
            !decide(&policy, &op, &req("get", "rotor.dev", "clusters", "", "a")).allowed(),
            "reader is not selected"
        );
    }

    #[test]
    fn a_missing_role_is_the_reason() {
        let policy = Policy {
            cluster_role_bindings: vec![cluster_binding(
                "gone",
                "deleted-role",
                vec![subject("User", "u")],
            )],
            ..Policy::default()
        };
        let d = decide(
            &policy,
            &user("u", &[]),
            &req("get", "rotor.dev", "clusters", "", "a"),
        );
        assert_eq!(
            d,
            Decision::NoOpinion {
                reason: "RBAC: clusterrole.rbac.authorization.k8s.io \"deleted-role\" not found"
                    .into()
            }
        );
    }

    #[test]
    fn refusals_in_upstreams_words() {
        let bob = user("bob", &[]);
        let e = forbidden(&bob, &req("create", "rotor.dev", "clusters", "", ""), "");
        assert_eq!(e.code.as_u16(), 403);
        assert_eq!(e.reason, "Forbidden");
        assert_eq!(
            e.message,
            "clusters.rotor.dev is forbidden: User \"bob\" cannot create resource \"clusters\" in API group \"rotor.dev\" at the cluster scope"
        );
        let body = e.status_body();
        assert_eq!(
            body["details"],
            serde_json::json!({"group": "rotor.dev", "kind": "clusters"})
        );
        let mut a = req("get", "", "secrets", "web", "db-password");
        let e = forbidden(
            &bob,
            &a,
            "RBAC: role.rbac.authorization.k8s.io \"x\" not found",
        );
        assert_eq!(
            e.message,
            "secrets \"db-password\" is forbidden: User \"bob\" cannot get resource \"secrets\" in API group \"\" in the namespace \"web\": RBAC: role.rbac.authorization.k8s.io \"x\" not found"
        );
        assert_eq!(
            e.status_body()["details"],
            serde_json::json!({"name": "db-password", "kind": "secrets"})
        );
        if let Target::Resource(r) = &mut a.target {
            r.subresource = "status".into();
        }
        assert!(
            forbidden(&bob, &a, "")
                .message
                .contains("cannot get resource \"secrets/status\"")
        );
        let path = Attributes {
            verb: "get".into(),
            target: Target::NonResource {
                path: "/metrics".into(),
            },
        };
        assert_eq!(
            forbidden(&bob, &path, "").message,
            "forbidden: User \"bob\" cannot get path \"/metrics\""
        );
    }
}
