//! `SelfSubjectAccessReview` and `SelfSubjectRulesReview` (authorization.k8s.io/v1): may I do
//! this, and what may I do in a namespace — what `kubectl auth can-i` and `can-i --list` ask.
//! Both are answered from the same resolution a request's decision uses.

use http::Method;
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, NonResourceRule, ResourceAttributes as Asked, ResourceRule,
    SelfSubjectAccessReviewSpec, SubjectAccessReviewStatus, SubjectRulesReviewStatus,
};
use serde_json::{Value, json};

use super::attributes::{Attributes, ResourceAttributes, Target};
use super::{Decision, Policy, decide};
use crate::auth::UserInfo;
use crate::error::{ApiError, ApiResult, Cause};
use crate::server::ApiServer;

pub const GROUP: &str = "authorization.k8s.io";

/// The two reviews, each created by a POST to its own path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Review {
    Access,
    Rules,
}

impl Review {
    pub const ALL: [Review; 2] = [Review::Access, Review::Rules];

    pub fn plural(self) -> &'static str {
        match self {
            Review::Access => "selfsubjectaccessreviews",
            Review::Rules => "selfsubjectrulesreviews",
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Review::Access => "SelfSubjectAccessReview",
            Review::Rules => "SelfSubjectRulesReview",
        }
    }

    /// The review a request creates, None for any other request.
    pub fn of(method: &Method, path: &str) -> Option<Review> {
        if *method != Method::POST {
            return None;
        }
        let rest = path.strip_prefix("/apis/authorization.k8s.io/v1/")?;
        Review::ALL
            .into_iter()
            .find(|r| rest.trim_end_matches('/') == r.plural())
    }
}

impl ApiServer {
    /// The created review: the request's review (decoded from JSON or protobuf) with the
    /// answer for `user` in its status.
    pub(crate) async fn review(
        &self,
        review: Review,
        user: &UserInfo,
        mut object: Value,
    ) -> ApiResult<Value> {
        let spec = object.get("spec").cloned().unwrap_or(Value::Null);
        let status = match review {
            Review::Access => {
                let attrs = asked(&spec)?;
                let namespace = attrs.resource().map_or("", |r| r.namespace.as_str());
                let policy = self.load_policy(namespace).await?;
                json!(access_status(&decide(&policy, user, &attrs)))
            }
            Review::Rules => {
                let namespace = spec
                    .get("namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                json!(rules_status(
                    &self.load_policy(namespace).await?,
                    user,
                    namespace
                ))
            }
        };
        object["apiVersion"] = json!(format!("{GROUP}/v1"));
        object["kind"] = json!(review.kind());
        object["metadata"] = json!({"creationTimestamp": null});
        object["status"] = status;
        Ok(object)
    }
}

/// The attributes a `SelfSubjectAccessReview` asks about: exactly one of its two kinds.
fn asked(spec: &Value) -> ApiResult<Attributes> {
    let spec: SelfSubjectAccessReviewSpec = serde_json::from_value(spec.clone())
        .map_err(|e| ApiError::bad_request(format!("spec: {e}")))?;
    match (spec.resource_attributes, spec.non_resource_attributes) {
        (Some(r), None) => Ok(of_resource(r)),
        (None, Some(NonResourceAttributes { path, verb })) => Ok(Attributes {
            verb: verb.unwrap_or_default(),
            target: Target::NonResource {
                path: path.unwrap_or_default(),
            },
        }),
        _ => Err(ApiError::invalid(
            "SelfSubjectAccessReview",
            GROUP,
            "",
            vec![Cause {
                field: "spec.resourceAttributes".into(),
                message: "Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified".into(),
                reason: "FieldValueInvalid",
            }],
        )),
    }
}

fn of_resource(r: Asked) -> Attributes {
    Attributes {
        verb: r.verb.unwrap_or_default(),
        target: Target::Resource(ResourceAttributes {
            group: r.group.unwrap_or_default(),
            version: r.version.unwrap_or_default(),
            resource: r.resource.unwrap_or_default(),
            subresource: r.subresource.unwrap_or_default(),
            namespace: r.namespace.unwrap_or_default(),
            name: r.name.unwrap_or_default(),
        }),
    }
}

fn access_status(decision: &Decision) -> SubjectAccessReviewStatus {
    let (allowed, reason) = match decision {
        Decision::Allow { reason } => (true, reason),
        Decision::NoOpinion { reason } => (false, reason),
    };
    SubjectAccessReviewStatus {
        allowed,
        denied: None,
        evaluation_error: None,
        reason: (!reason.is_empty()).then(|| reason.clone()),
    }
}

/// Every rule that applies to `user` in `namespace`, split as upstream splits them.
pub fn rules_status(policy: &Policy, user: &UserInfo, namespace: &str) -> SubjectRulesReviewStatus {
    let resolved = policy.resolve(user, namespace);
    let mut status = SubjectRulesReviewStatus {
        incomplete: !resolved.errors.is_empty(),
        evaluation_error: (!resolved.errors.is_empty()).then(|| resolved.errors.join(", ")),
        ..SubjectRulesReviewStatus::default()
    };
    for rule in resolved.grants.iter().flat_map(|(_, rules)| rules) {
        if rule.resources.as_ref().is_some_and(|r| !r.is_empty()) {
            status.resource_rules.push(ResourceRule {
                verbs: rule.verbs.clone(),
                api_groups: rule.api_groups.clone(),
                resources: rule.resources.clone(),
                resource_names: rule.resource_names.clone(),
            });
        }
        if rule
            .non_resource_urls
            .as_ref()
            .is_some_and(|u| !u.is_empty())
        {
            status.non_resource_rules.push(NonResourceRule {
                verbs: rule.verbs.clone(),
                non_resource_urls: rule.non_resource_urls.clone(),
            });
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::super::bootstrap::{cluster_role, resource_rule, url_rule};
    use super::*;

    #[test]
    fn only_creates_at_the_two_paths() {
        let path = |p: &str| format!("/apis/authorization.k8s.io/v1/{p}");
        let post = Method::POST;
        assert_eq!(
            Review::of(&post, &path("selfsubjectaccessreviews")),
            Some(Review::Access)
        );
        assert_eq!(
            Review::of(&post, &path("selfsubjectrulesreviews")),
            Some(Review::Rules)
        );
        assert_eq!(
            Review::of(&Method::GET, &path("selfsubjectaccessreviews")),
            None
        );
        assert_eq!(Review::of(&post, &path("subjectaccessreviews")), None);
    }

    #[test]
    fn an_access_review_asks_one_kind_of_question() {
        let asked_for = asked(&json!({"resourceAttributes": {"verb": "get", "group": "rotor.dev", "resource": "clusters", "namespace": "default"}}))
            .expect("resource attributes");
        let r = asked_for.resource().expect("a resource");
        assert_eq!(
            (
                asked_for.verb.as_str(),
                r.group.as_str(),
                r.resource.as_str(),
                r.namespace.as_str()
            ),
            ("get", "rotor.dev", "clusters", "default")
        );
        let path = asked(&json!({"nonResourceAttributes": {"verb": "get", "path": "/metrics"}}))
            .expect("path");
        assert_eq!(
            path.target,
            Target::NonResource {
                path: "/metrics".into()
            }
        );
        let both = json!({"resourceAttributes": {"verb": "get"}, "nonResourceAttributes": {"verb": "get"}});
        assert_eq!(asked(&both).expect_err("both").code.as_u16(), 422);
        assert_eq!(asked(&json!({})).expect_err("neither").code.as_u16(), 422);
    }

    #[test]
    fn rules_are_split_into_resource_and_path_rules() {
        let viewer = cluster_role(
            "viewer",
            vec![
                resource_rule(&["get"], &["rotor.dev"], &["*"]),
                url_rule(&["get"], &["/metrics"]),
            ],
        );
        let policy = Policy {
            cluster_roles: vec![viewer],
            cluster_role_bindings: vec![
                ClusterRoleBinding {
                    metadata: ObjectMeta {
                        name: Some("v".into()),
                        ..ObjectMeta::default()
                    },
                    role_ref: RoleRef {
                        api_group: "rbac.authorization.k8s.io".into(),
                        kind: "ClusterRole".into(),
                        name: "viewer".into(),
                    },
                    subjects: Some(vec![Subject {
                        kind: "User".into(),
                        name: "vic".into(),
                        ..Subject::default()
                    }]),
                },
                ClusterRoleBinding {
                    metadata: ObjectMeta {
                        name: Some("gone".into()),
                        ..ObjectMeta::default()
                    },
                    role_ref: RoleRef {
                        api_group: "rbac.authorization.k8s.io".into(),
                        kind: "ClusterRole".into(),
                        name: "gone".into(),
                    },
                    subjects: Some(vec![Subject {
                        kind: "User".into(),
                        name: "vic".into(),
                        ..Subject::default()
                    }]),
                },
            ],
            ..Policy::default()
        };
        let vic = UserInfo {
            name: "vic".into(),
            uid: String::new(),
            groups: Vec::new(),
        };
        let status = rules_status(&policy, &vic, "default");
        assert_eq!(status.resource_rules.len(), 1);
        assert_eq!(
            status.resource_rules[0].resources,
            Some(vec!["*".to_string()])
        );
        assert_eq!(status.non_resource_rules.len(), 1);
        assert_eq!(
            status.non_resource_rules[0].non_resource_urls,
            Some(vec!["/metrics".to_string()])
        );
        assert!(
            status.incomplete,
            "a missing role makes the list incomplete"
        );
        assert_eq!(
            status.evaluation_error.as_deref(),
            Some("clusterrole.rbac.authorization.k8s.io \"gone\" not found")
        );
    }
}
