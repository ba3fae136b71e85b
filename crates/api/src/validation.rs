//! Field validation shared by the kinds: errors that name the exact field path, the way the
//! Kubernetes API reports `422 Invalid` causes, and the small value checks (versions, DNS names).

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::Selector;

/// What is wrong with a field; mirrors `k8s.io/apimachinery/pkg/util/validation/field.ErrorType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldErrorKind {
    /// A required value is missing or empty.
    Required,
    /// The value is malformed or out of range.
    Invalid,
    /// The value repeats one that must be unique.
    Duplicate,
    /// The list is longer than its bound.
    TooMany,
    /// The change is not allowed (for example an immutable field on update).
    Forbidden,
}

impl FieldErrorKind {
    /// The `reason` of a `StatusCause` in a Kubernetes `422 Invalid` response.
    pub fn cause_type(self) -> &'static str {
        match self {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
            FieldErrorKind::TooMany => "FieldValueTooMany",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
        }
    }

    fn human(self) -> &'static str {
        match self {
            FieldErrorKind::Required => "Required value",
            FieldErrorKind::Invalid => "Invalid value",
            FieldErrorKind::Duplicate => "Duplicate value",
            FieldErrorKind::TooMany => "Too many",
            FieldErrorKind::Forbidden => "Forbidden",
        }
    }
}

/// One invalid field: its JSON path (`spec.strategy.trafficSteps[1]`), the kind of problem, and a
/// message for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path from the object root, camelCase, with `[i]` for list items and `[key]` for map entries.
    pub field: String,
    /// The kind of problem.
    pub kind: FieldErrorKind,
    /// What is wrong, for people.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.field, self.kind.human(), self.message)
    }
}

impl std::error::Error for FieldError {}

impl FieldError {
    /// Joins errors the way the Kubernetes API does in an `Invalid` status message:
    /// `[spec.a: Invalid value: ..., spec.b: Required value: ...]`.
    pub fn join(errors: &[FieldError]) -> String {
        let parts: Vec<String> = errors.iter().map(ToString::to_string).collect();
        format!("[{}]", parts.join(", "))
    }
}

/// Collects errors while walking a spec; the paths are built as the walk descends.
#[derive(Default)]
pub(crate) struct Errors(pub(crate) Vec<FieldError>);

impl Errors {
    pub(crate) fn push(
        &mut self,
        field: impl Into<String>,
        kind: FieldErrorKind,
        message: impl Into<String>,
    ) {
        self.0.push(FieldError {
            field: field.into(),
            kind,
            message: message.into(),
        });
    }
    pub(crate) fn required(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.push(field, FieldErrorKind::Required, message);
    }
    pub(crate) fn invalid(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.push(field, FieldErrorKind::Invalid, message);
    }
    pub(crate) fn into_result(self) -> Result<(), Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }

    /// A required string: not empty, not only whitespace.
    pub(crate) fn non_empty(&mut self, field: &str, value: &str) -> bool {
        if value.trim().is_empty() {
            self.required(field, "must not be empty");
            false
        } else {
            true
        }
    }

    pub(crate) fn dns_label(&mut self, field: &str, value: &str) {
        if self.non_empty(field, value) && !is_dns_label(value) {
            self.invalid(
                field,
                format!("{value:?}: must be a DNS-1123 label (at most 63 lowercase alphanumerics or '-', starting and ending alphanumeric)"),
            );
        }
    }

    pub(crate) fn dns_subdomain(&mut self, field: &str, value: &str) {
        if self.non_empty(field, value) && !is_dns_subdomain(value) {
            self.invalid(
                field,
                format!("{value:?}: must be a DNS-1123 subdomain (at most 253 lowercase alphanumerics, '-' or '.')"),
            );
        }
    }

    pub(crate) fn version(&mut self, field: &str, value: &str) {
        if self.non_empty(field, value) && KubernetesVersion::parse(value).is_none() {
            self.invalid(field, format!("{value:?}: must be a Kubernetes version MAJOR.MINOR or MAJOR.MINOR.PATCH, e.g. \"1.35\" or \"1.35.1\""));
        }
    }

    pub(crate) fn label_selector(&mut self, field: &str, selector: &LabelSelector) {
        for (i, req) in selector.match_expressions.iter().flatten().enumerate() {
            let path = format!("{field}.matchExpressions[{i}]");
            let has_values = req.values.as_ref().is_some_and(|v| !v.is_empty());
            match req.operator.as_str() {
                "In" | "NotIn" if !has_values => self.required(
                    format!("{path}.values"),
                    format!("operator {} needs at least one value", req.operator),
                ),
                "Exists" | "DoesNotExist" if has_values => self.invalid(
                    format!("{path}.values"),
                    format!("operator {} takes no values", req.operator),
                ),
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => self.invalid(
                    format!("{path}.operator"),
                    format!("{other:?}: must be one of In, NotIn, Exists, DoesNotExist"),
                ),
            }
            self.non_empty(&format!("{path}.key"), &req.key);
        }
        for key in selector.match_labels.iter().flatten().map(|(k, _)| k) {
            self.non_empty(&format!("{field}.matchLabels"), key);
        }
    }
}

/// Label selectors in specs are checked by `validate`; this turns one into a matcher, treating a
/// selector that does not parse as matching nothing (fail closed: never select clusters by mistake).
pub(crate) fn selector_matches(
    selector: &LabelSelector,
    labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    use kube::core::SelectorExt;
    match Selector::try_from(selector.clone()) {
        Ok(s) => s.matches(labels),
        Err(_) => false,
    }
}

/// The schema pattern of a Kubernetes version in a spec; [`KubernetesVersion::parse`] accepts the same.
pub(crate) const VERSION_PATTERN: &str = r"^[0-9]+\.[0-9]+(\.[0-9]+)?$";

/// A Kubernetes version as written in specs: `MAJOR.MINOR` or `MAJOR.MINOR.PATCH`.
/// Ordered, so a controller can compare what discovery reports with the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KubernetesVersion {
    /// Major version (1).
    pub major: u32,
    /// Minor version (35).
    pub minor: u32,
    /// Patch version; `None` means "any patch the provider picks".
    pub patch: Option<u32>,
}

impl KubernetesVersion {
    /// Strict parse of a spec value: digits only, no `v` prefix, no suffix.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('.');
        let num = |p: Option<&str>| -> Option<u32> {
            let p = p?;
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 9 {
                return None;
            }
            p.parse().ok()
        };
        let major = num(parts.next())?;
        let minor = num(parts.next())?;
        let patch = match parts.next() {
            None => None,
            some => Some(num(some)?),
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Self {
            major,
            minor,
            patch,
        })
    }

    /// Whether a version reported by a running cluster (`v1.35.1`, `v1.35.1-eks-4f2a`,
    /// `1.35.1+k3s1`) satisfies this spec version. A spec without a patch accepts any patch.
    pub fn matches_reported(&self, reported: &str) -> bool {
        let core = reported.trim().trim_start_matches('v');
        let core = core.split(['-', '+']).next().unwrap_or_default();
        match KubernetesVersion::parse(core) {
            Some(r) => {
                r.major == self.major
                    && r.minor == self.minor
                    && self.patch.is_none_or(|p| r.patch == Some(p))
            }
            None => false,
        }
    }
}

impl fmt::Display for KubernetesVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.patch {
            Some(p) => write!(f, "{}.{}.{}", self.major, self.minor, p),
            None => write!(f, "{}.{}", self.major, self.minor),
        }
    }
}

pub(crate) fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

pub(crate) fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Validates a rotor object given as JSON (what the generic apiserver holds) by its kind:
/// `None` for a kind that is not rotor's, otherwise the kind's `validate`. A body that does not
/// deserialize is reported as one `Invalid` error at the object root.
pub fn validate_object(
    kind: &str,
    object: &serde_json::Value,
) -> Option<Result<(), Vec<FieldError>>> {
    fn check<T: serde::de::DeserializeOwned>(
        object: &serde_json::Value,
        validate: impl FnOnce(&T) -> Result<(), Vec<FieldError>>,
    ) -> Result<(), Vec<FieldError>> {
        match T::deserialize(object) {
            Ok(obj) => validate(&obj),
            Err(e) => Err(vec![FieldError {
                field: "<root>".into(),
                kind: FieldErrorKind::Invalid,
                message: e.to_string(),
            }]),
        }
    }
    Some(match kind {
        "Cluster" => check(object, |c: &crate::Cluster| c.spec.validate()),
        "ClusterSwap" => check(object, |s: &crate::ClusterSwap| s.spec.validate()),
        "Rollout" => check(object, |r: &crate::Rollout| r.spec.validate()),
        _ => return None,
    })
}
