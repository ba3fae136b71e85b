//! Where a Rollout tells people of its milestones: webhook sinks (Slack-compatible or generic
//! JSON), each URL kept in a Secret, since a Slack webhook's URL is its credential.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validation::Errors;

/// The namespace of the Secrets a Rollout names when it names none (rotor's own).
pub const SECRETS_NAMESPACE: &str = "rotor-system";

/// Sinks a Rollout may name.
pub const MAX_NOTIFICATION_SINKS: usize = 10;

/// One webhook told of a Rollout's milestones.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationSink {
    /// Names the sink in Events and errors (its URL never shows).
    pub name: String,
    /// The Secret key holding the sink's URL.
    pub url_from: SecretKeyRef,
    /// `Generic` (rotor's versioned JSON) or `Slack` (an incoming webhook's `{"text": …}`).
    #[serde(default)]
    pub format: NotificationFormat,
    /// The milestones sent; empty: every one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Milestone>,
}

/// A key of a Secret of the control plane.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Default `rotor-system`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub key: String,
}

impl SecretKeyRef {
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or(SECRETS_NAMESPACE)
    }
}

closed_enum! {
    /// How a sink wants its body.
    #[derive(Default)]
    pub enum NotificationFormat {
        /// `{"apiVersion": "rotor.dev/v1alpha1", "kind": "RolloutNotification", "rollout",
        /// "event", "wave", "message", "time"}`.
        #[default]
        Generic = "Generic",
        /// `{"text": …}`, as Slack's (and compatible) incoming webhooks take it.
        Slack = "Slack",
    }
}

closed_enum! {
    /// What a sink is told about.
    pub enum Milestone {
        WaveStarted = "WaveStarted",
        WaveFinished = "WaveFinished",
        /// Paused, with why (an operator, a pre-flight stop).
        Paused = "Paused",
        ApprovalNeeded = "ApprovalNeeded",
        BudgetExceeded = "BudgetExceeded",
        /// Every wave done, or the fleet rolled back.
        Finished = "Finished",
    }
}

impl Milestone {
    /// Whether a person should look now.
    pub fn wants_attention(self) -> bool {
        matches!(
            self,
            Milestone::Paused | Milestone::ApprovalNeeded | Milestone::BudgetExceeded
        )
    }
}

impl NotificationSink {
    /// Whether this sink is told of `milestone`.
    pub fn wants(&self, milestone: Milestone) -> bool {
        self.events.is_empty() || self.events.contains(&milestone)
    }
}

/// `spec.notifications`: names unique DNS labels, Secret references complete.
pub(crate) fn validate_sinks(sinks: &[NotificationSink], errs: &mut Errors) {
    if sinks.len() > MAX_NOTIFICATION_SINKS {
        errs.invalid(
            "spec.notifications",
            format!("{} sinks, at most {MAX_NOTIFICATION_SINKS}", sinks.len()),
        );
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, sink) in sinks.iter().enumerate() {
        let p = format!("spec.notifications[{i}]");
        errs.dns_label(&format!("{p}.name"), &sink.name);
        if !sink.name.is_empty() && !names.insert(sink.name.as_str()) {
            errs.invalid(
                format!("{p}.name"),
                format!("sink {:?} is named twice", sink.name),
            );
        }
        errs.dns_subdomain(&format!("{p}.urlFrom.name"), &sink.url_from.name);
        if sink.url_from.key.trim().is_empty() {
            errs.required(
                format!("{p}.urlFrom.key"),
                "the Secret's key holding the URL",
            );
        }
        if let Some(ns) = &sink.url_from.namespace {
            errs.dns_label(&format!("{p}.urlFrom.namespace"), ns);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(name: &str, secret: &str, key: &str) -> NotificationSink {
        NotificationSink {
            name: name.into(),
            url_from: SecretKeyRef {
                namespace: None,
                name: secret.into(),
                key: key.into(),
            },
            ..Default::default()
        }
    }

    #[test]
    fn sinks_are_refused_naming_the_field() {
        let mut errs = Errors::default();
        validate_sinks(
            &[sink("ops", "sinks", "ops"), sink("ops", "Bad_Name", " ")],
            &mut errs,
        );
        let fields: Vec<String> = errs
            .into_result()
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "spec.notifications[1].name",
                "spec.notifications[1].urlFrom.name",
                "spec.notifications[1].urlFrom.key"
            ]
        );
        let mut errs = Errors::default();
        validate_sinks(&[sink("ops", "sinks.team-a", "url")], &mut errs);
        assert!(errs.into_result().is_ok());
        assert_eq!(sink("a", "b", "c").url_from.namespace(), SECRETS_NAMESPACE);
        let only = NotificationSink {
            events: vec![Milestone::Finished],
            ..sink("a", "b", "c")
        };
        assert!(only.wants(Milestone::Finished) && !only.wants(Milestone::WaveStarted));
        assert!(sink("a", "b", "c").wants(Milestone::WaveStarted));
    }
}
