//! The audit policy (`audit.k8s.io/v1` `Policy`): which requests are recorded and how much of
//! them, judged as kube-apiserver judges it — the first rule that matches decides, no match
//! records nothing — and then clamped so that Secrets never give more than their metadata.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::auth::UserInfo;
use crate::authz::{Attributes, ResourceAttributes, Target};

/// How much of a request is recorded. Ordered: each level records what the one before does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Level {
    None,
    Metadata,
    Request,
    RequestResponse,
}

/// The stages of a request at which upstream may write an event. rotor writes one event per
/// request, at `ResponseComplete` (or `Panic`); the others are accepted in a policy for
/// compatibility and have nothing to omit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    RequestReceived,
    ResponseStarted,
    ResponseComplete,
    Panic,
}

/// A policy file's content. Unknown fields are refused, so a misspelt field fails at start
/// instead of silently recording less than intended.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    api_version: String,
    kind: String,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
    #[serde(default)]
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub omit_stages: Vec<Stage>,
    #[serde(default)]
    pub omit_managed_fields: bool,
}

/// One rule: every list given must match the request (an empty list matches anything).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    pub level: Option<Level>,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub user_groups: Vec<String>,
    #[serde(default)]
    pub verbs: Vec<String>,
    #[serde(default)]
    pub resources: Vec<GroupResources>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
    #[serde(default)]
    pub omit_stages: Vec<Stage>,
    /// Overrides the policy's `omitManagedFields` when set.
    #[serde(default)]
    pub omit_managed_fields: Option<bool>,
}

/// Resources of one API group (`""` the core group), optionally only some names.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupResources {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub resource_names: Vec<String>,
}

/// What the policy decided for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub level: Level,
    pub omit_stages: Vec<Stage>,
    pub omit_managed_fields: bool,
}

impl Decision {
    pub fn records(&self, stage: Stage) -> bool {
        self.level > Level::None && !self.omit_stages.contains(&stage)
    }
}

/// A policy file that cannot be used: the error names the file and the field.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("audit policy {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("audit policy {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// Resources whose bodies hold credentials: recorded at Metadata at most, whatever the policy.
const SENSITIVE: [(&str, &str); 3] = [
    ("", "secrets"),
    ("", "serviceaccounts/token"),
    ("authentication.k8s.io", "tokenreviews"),
];

impl Policy {
    /// Metadata for every request: what `--audit-log` without `--audit-policy` records.
    pub fn metadata_for_everything() -> Policy {
        Policy {
            api_version: "audit.k8s.io/v1".into(),
            kind: "Policy".into(),
            metadata: None,
            rules: vec![Rule {
                level: Some(Level::Metadata),
                ..Rule::default()
            }],
            omit_stages: Vec::new(),
            omit_managed_fields: false,
        }
    }

    /// Reads and checks the policy file at `path`.
    pub fn read(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Policy::parse(&text).map_err(|message| PolicyError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// A policy from YAML (or JSON) text; the error names the field at fault.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let policy: Policy = yaml_serde::from_str(text).map_err(|e| e.to_string())?;
        policy.validate()?;
        Ok(policy)
    }

    fn validate(&self) -> Result<(), String> {
        if self.api_version != "audit.k8s.io/v1" {
            return Err(format!(
                "apiVersion: Unsupported value: {:?}: supported values: \"audit.k8s.io/v1\"",
                self.api_version
            ));
        }
        if self.kind != "Policy" {
            return Err(format!(
                "kind: Unsupported value: {:?}: supported values: \"Policy\"",
                self.kind
            ));
        }
        for (i, rule) in self.rules.iter().enumerate() {
            rule.validate().map_err(|e| format!("rules[{i}].{e}"))?;
        }
        Ok(())
    }

    /// The decision for a request of `user` (None: not authenticated) with `attrs`.
    pub fn decide(&self, user: Option<&UserInfo>, attrs: &Attributes) -> Decision {
        let matched = self.rules.iter().find(|r| r.matches(user, attrs));
        let mut decision = match matched {
            Some(rule) => Decision {
                level: rule.level.unwrap_or(Level::None),
                omit_stages: union(&self.omit_stages, &rule.omit_stages),
                omit_managed_fields: rule.omit_managed_fields.unwrap_or(self.omit_managed_fields),
            },
            None => Decision {
                level: Level::None,
                omit_stages: self.omit_stages.clone(),
                omit_managed_fields: self.omit_managed_fields,
            },
        };
        if attrs.resource().is_some_and(is_sensitive) {
            decision.level = decision.level.min(Level::Metadata);
        }
        decision
    }
}

fn union(a: &[Stage], b: &[Stage]) -> Vec<Stage> {
    let mut all = a.to_vec();
    all.extend(b.iter().filter(|s| !a.contains(s)));
    all
}

/// Is this a resource whose bodies carry credentials (any subresource of a Secret included)?
pub fn is_sensitive(r: &ResourceAttributes) -> bool {
    let combined = format!("{}/{}", r.resource, r.subresource);
    SENSITIVE.iter().any(|(group, resource)| {
        *group == r.group && (*resource == r.resource || *resource == combined)
    })
}

impl Rule {
    fn validate(&self) -> Result<(), String> {
        if self.level.is_none() {
            return Err("level: Required value".into());
        }
        let resource_fields = !self.resources.is_empty() || !self.namespaces.is_empty();
        if resource_fields && !self.non_resource_urls.is_empty() {
            return Err(
                "nonResourceURLs: Invalid value: rules cannot apply to both regular \
                        resources and non-resource URLs"
                    .into(),
            );
        }
        for (i, url) in self.non_resource_urls.iter().enumerate() {
            let star = url.find('*');
            let bad =
                (url != "*" && !url.starts_with('/')) || star.is_some_and(|at| at + 1 != url.len());
            if bad {
                return Err(format!(
                    "nonResourceURLs[{i}]: Invalid value: {url:?}: a path starting with / \
                     (\"*\" only at its end), or \"*\""
                ));
            }
        }
        for (i, gr) in self.resources.iter().enumerate() {
            if !gr.resource_names.is_empty() && gr.resources.is_empty() {
                return Err(format!(
                    "resources[{i}].resourceNames: Invalid value: resourceNames require a \
                     non-empty resources list"
                ));
            }
        }
        Ok(())
    }

    /// Does this rule apply? Users and groups need an authenticated user; a rule naming
    /// resources or namespaces applies to resource requests only, one naming URLs to the others.
    fn matches(&self, user: Option<&UserInfo>, attrs: &Attributes) -> bool {
        if !self.users.is_empty() && !user.is_some_and(|u| self.users.contains(&u.name)) {
            return false;
        }
        let in_group = |u: &UserInfo| u.groups.iter().any(|g| self.user_groups.contains(g));
        if !self.user_groups.is_empty() && !user.is_some_and(in_group) {
            return false;
        }
        if !self.verbs.is_empty() && !self.verbs.contains(&attrs.verb) {
            return false;
        }
        match &attrs.target {
            Target::Resource(r) => self.non_resource_urls.is_empty() && self.matches_resource(r),
            Target::NonResource { path } => {
                self.resources.is_empty()
                    && self.namespaces.is_empty()
                    && (self.non_resource_urls.is_empty()
                        || self.non_resource_urls.iter().any(|s| path_matches(path, s)))
            }
        }
    }

    fn matches_resource(&self, r: &ResourceAttributes) -> bool {
        if !self.namespaces.is_empty() && !self.namespaces.contains(&r.namespace) {
            return false;
        }
        self.resources.is_empty()
            || self
                .resources
                .iter()
                .any(|gr| gr.group == r.group && gr.matches(r))
    }
}

impl GroupResources {
    /// `resource`, `resource/subresource`, `*`, `*/subresource` and `resource/*` (the resource
    /// and all its subresources), limited to `resourceNames` when given.
    fn matches(&self, r: &ResourceAttributes) -> bool {
        if self.resources.is_empty() {
            return true;
        }
        if !self.resource_names.is_empty() && !self.resource_names.contains(&r.name) {
            return false;
        }
        let combined = match r.subresource.is_empty() {
            true => r.resource.clone(),
            false => format!("{}/{}", r.resource, r.subresource),
        };
        self.resources.iter().any(|res| {
            res == "*"
                || *res == combined
                || (!r.subresource.is_empty() && res.strip_prefix("*/") == Some(&r.subresource))
                || res.strip_suffix("/*") == Some(r.resource.as_str())
        })
    }
}

/// `*` matches every path, `/prefix*` the paths under it, anything else itself.
fn path_matches(path: &str, spec: &str) -> bool {
    match spec.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => path == spec,
    }
}

#[cfg(test)]
mod tests;
