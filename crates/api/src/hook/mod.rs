//! Lifecycle hooks: the teams whose services run on a cluster take part in its swap. A hook
//! is called at a named point of the swap (`point`) and answers allow, deny (the swap rolls
//! back) or retry after N seconds; this module holds the spec, its validation and the status
//! the controller keeps of every call (the calls themselves are the controller's).
//!
//! Two kinds: a webhook, an HTTPS POST of a versioned JSON body signed with HMAC-SHA256 over
//! `{timestamp}.{body}` by a key read from a Secret; and a Job run in green or blue
//! ([`job`]). See docs/design.md, "Lifecycle hooks".

pub mod job;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::notification::SecretKeyRef;
use crate::validation::{Errors, FieldErrorKind};
pub use job::{HookCluster, JobHook};

/// Upper bound on the hooks of one strategy (also in the schema).
pub const MAX_HOOKS: usize = 10;
/// Upper bound on one webhook call's timeout (also in the schema): a call runs inside a
/// reconcile. A Job hook's bound is [`job::MAX_JOB_TIMEOUT_SECONDS`].
pub const MAX_HOOK_TIMEOUT_SECONDS: u32 = 30;
/// Upper bound on a hook's retries after a failed call (also in the schema).
pub const MAX_HOOK_RETRIES: u32 = 10;
/// The longest delay a receiver's retry-after answer is taken for; longer ones are cut to it.
pub const MAX_RETRY_AFTER_SECONDS: u32 = 3600;
/// Retry-after answers one hook may give at one point before it counts as failed.
pub const MAX_RETRY_AFTER_ANSWERS: u32 = 20;

/// A webhook call's timeout when none is set.
pub const DEFAULT_WEBHOOK_TIMEOUT_SECONDS: u32 = 10;
fn default_retries() -> u32 {
    3
}

closed_enum! {
    /// Where in a swap a hook is called.
    #[derive(Default)]
    pub enum HookPoint {
        /// Before the provider is asked for green (blue is known, nothing created yet).
        #[default]
        BeforeProvisioning = "BeforeProvisioning",
        /// The workloads are copied to green; before the swap waits for them there.
        AfterMigration = "AfterMigration",
        /// Green is verified; before it gets its first share of traffic.
        BeforeFirstTrafficStep = "BeforeFirstTrafficStep",
        /// After each traffic step has baked and passed its gates, before the next (or, after
        /// the last, before blue drains): once per step.
        AfterEachStep = "AfterEachStep",
        /// Blue's retention is over; before blue is deleted (the last point a deny can roll
        /// back from).
        BeforeBlueDeleted = "BeforeBlueDeleted",
        /// Traffic is back on blue and green is gone; before the swap ends RolledBack. A deny
        /// or a failure here changes nothing but an Event.
        AfterRollback = "AfterRollback",
    }
}

closed_enum! {
    /// What a hook that cannot be reached (or answers nonsense) does to the swap.
    #[derive(Default)]
    pub enum HookFailurePolicy {
        /// The swap does not proceed: it rolls back.
        #[default]
        Fail = "Fail",
        /// A Warning Event, and the swap proceeds.
        Ignore = "Ignore",
    }
}

/// A hook called at one point of every swap of this strategy: exactly one of `webhook` and
/// `job`.
///
/// ```yaml
/// hooks:
/// - name: smoke-tests
///   point: AfterMigration
///   webhook:
///     url: https://ci.example.com/rotor/smoke
///     secretRef: {name: rotor-hooks, key: smoke}
///   timeoutSeconds: 10
///   retries: 3
///   failurePolicy: Fail
/// ```
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.webhook) != has(self.job)", "message": "set exactly one of webhook and job"},
    {"rule": "!has(self.webhook) || !has(self.timeoutSeconds) || self.timeoutSeconds <= 30",
     "message": "a webhook call's timeoutSeconds must be at most 30", "fieldPath": ".timeoutSeconds"}
]))]
pub struct LifecycleHook {
    /// A DNS label unique among the strategy's hooks: status and Events name the hook by it.
    #[schemars(length(min = 1, max = 63), pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// Where in the swap it is called.
    pub point: HookPoint,
    /// Where to POST, and the key that signs the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookHook>,
    /// The Job to run, and where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobHook>,
    /// A webhook: how long one call may take, connection included (at most 30, default 10).
    /// A Job: how long it may run before it counts as failed (at most 3600, default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub timeout_seconds: Option<u32>,
    /// Webhook calls after a failed one (no connection, no answer in time, HTTP 429 or 5xx),
    /// with a backoff of 1 s doubling to 60 s. Other statuses and answers that do not parse
    /// are not retried. A Job hook's retries are its template's `backoffLimit`.
    #[serde(default = "default_retries")]
    #[schemars(range(max = 10))]
    pub retries: u32,
    /// What a hook that failed (retries spent, a final error, a Job past its timeout) does:
    /// `Fail` rolls the swap back, `Ignore` records a Warning Event and proceeds.
    #[serde(default)]
    pub failure_policy: HookFailurePolicy,
}

/// A webhook hook's receiver.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookHook {
    /// `https://…`; plain `http://` only to a loopback address (`127.0.0.0/8`, `[::1]`,
    /// `localhost`). No credentials (`user:password@`) or fragment.
    #[schemars(
        length(min = 1, max = 2048),
        pattern(r"^https?://[^/@?#\s]+([/?][^#\s]*)?$")
    )]
    pub url: String,
    /// The Secret key holding the shared key the body is signed with (HMAC-SHA256). Read at
    /// every call, so a rotated key applies at once; never shown.
    pub secret_ref: SecretKeyRef,
}

impl LifecycleHook {
    /// A webhook call's timeout, or how long a Job may run, as a `Duration`.
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.timeout_seconds().into())
    }

    /// `timeoutSeconds`, or its default for the hook's kind.
    pub fn timeout_seconds(&self) -> u32 {
        let default = match self.job {
            Some(_) => job::DEFAULT_JOB_TIMEOUT_SECONDS,
            None => DEFAULT_WEBHOOK_TIMEOUT_SECONDS,
        };
        self.timeout_seconds.unwrap_or(default)
    }

    fn validate_at(&self, path: &str, errs: &mut Errors) {
        errs.dns_label(&format!("{path}.name"), &self.name);
        let max_timeout = match (&self.webhook, &self.job) {
            (Some(webhook), None) => {
                webhook.validate_at(&format!("{path}.webhook"), errs);
                MAX_HOOK_TIMEOUT_SECONDS
            }
            (None, Some(job)) => {
                job.validate_at(&format!("{path}.job"), self.point, errs);
                job::MAX_JOB_TIMEOUT_SECONDS
            }
            (Some(_), Some(_)) => {
                errs.invalid(format!("{path}.job"), "set exactly one of webhook and job");
                return;
            }
            (None, None) => {
                errs.required(
                    format!("{path}.webhook"),
                    "set exactly one of webhook and job",
                );
                return;
            }
        };
        if !(1..=max_timeout).contains(&self.timeout_seconds()) {
            errs.invalid(
                format!("{path}.timeoutSeconds"),
                format!(
                    "{}: must be between 1 and {max_timeout}",
                    self.timeout_seconds()
                ),
            );
        }
        if self.retries > MAX_HOOK_RETRIES {
            errs.invalid(
                format!("{path}.retries"),
                format!("{}: must be at most {MAX_HOOK_RETRIES}", self.retries),
            );
        }
    }
}

impl WebhookHook {
    fn validate_at(&self, path: &str, errs: &mut Errors) {
        validate_url(&format!("{path}.url"), &self.url, errs);
        let secret = format!("{path}.secretRef");
        errs.dns_subdomain(&format!("{secret}.name"), &self.secret_ref.name);
        if self.secret_ref.key.trim().is_empty() {
            errs.required(
                format!("{secret}.key"),
                "the Secret's key holding the signing key",
            );
        }
        if let Some(ns) = &self.secret_ref.namespace {
            errs.dns_label(&format!("{secret}.namespace"), ns);
        }
    }
}

/// A hook URL: https anywhere, http only to loopback (a receiver in the same host, as tests
/// and the demo run them). Messages never quote what sits before an `@`.
fn validate_url(field: &str, url: &str, errs: &mut Errors) {
    if !errs.non_empty(field, url) {
        return;
    }
    let (rest, https) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => (rest, true),
        (None, Some(rest)) => (rest, false),
        (None, None) => {
            errs.invalid(field, "must start with https:// (or http:// to loopback)");
            return;
        }
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let problem = if authority.contains('@') {
        Some("must not hold credentials (user:password@): sign with secretRef instead")
    } else if authority.is_empty() {
        Some("has no host")
    } else if url.contains('#') || url.contains(char::is_whitespace) || url.len() > 2048 {
        Some("must be at most 2048 characters, without spaces or a fragment")
    } else if !https && !is_loopback(authority) {
        Some("http:// is allowed only to a loopback address; use https://")
    } else {
        None
    };
    if let Some(problem) = problem {
        errs.invalid(field, problem);
    }
}

/// Whether `authority` (host with an optional port) names this host.
fn is_loopback(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Validates a strategy's hooks at `path` (`….hooks`).
pub(crate) fn validate_hooks(path: &str, hooks: &[LifecycleHook], errs: &mut Errors) {
    if hooks.len() > MAX_HOOKS {
        errs.push(
            path,
            FieldErrorKind::TooMany,
            format!("{} hooks, at most {MAX_HOOKS}", hooks.len()),
        );
        return;
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, hook) in hooks.iter().enumerate() {
        let p = format!("{path}[{i}]");
        hook.validate_at(&p, errs);
        if !hook.name.is_empty() && !seen.insert(hook.name.as_str()) {
            errs.push(
                format!("{p}.name"),
                FieldErrorKind::Duplicate,
                format!("hook {:?} is defined twice", hook.name),
            );
        }
    }
}

closed_enum! {
    /// Where one hook call (one hook at one point, one step for `AfterEachStep`) stands.
    #[derive(Default)]
    pub enum HookState {
        /// Not answered for good yet: called again at `nextAttemptAt`.
        #[default]
        Pending = "Pending",
        /// The receiver allowed: the swap proceeds.
        Allowed = "Allowed",
        /// The receiver denied: the swap rolls back.
        Denied = "Denied",
        /// No usable answer (retries spent, or a final error) under `failurePolicy: Fail`.
        Failed = "Failed",
        /// No usable answer under `failurePolicy: Ignore`: the swap proceeded.
        Ignored = "Ignored",
    }
}

impl HookState {
    /// Whether the call is over (no more attempts).
    pub fn is_final(self) -> bool {
        self != HookState::Pending
    }
}

closed_enum! {
    /// What one attempt got back.
    pub enum HookAnswer {
        Allow = "Allow",
        Deny = "Deny",
        RetryAfter = "RetryAfter",
        /// No answer to use: no connection, a timeout, an HTTP error, a body that does not parse,
        /// the Secret unreadable.
        Error = "Error",
    }
}

/// What a swap has seen of one hook at one point (and step).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookStatus {
    /// The hook's name.
    pub name: String,
    /// The point it was called at.
    pub point: HookPoint,
    /// The traffic step (index into `trafficSteps`), for `AfterEachStep`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    /// Where the call stands.
    #[serde(default)]
    pub state: HookState,
    /// Calls made.
    #[serde(default)]
    pub attempts: u32,
    /// Calls that got no usable answer (they spend `retries`).
    #[serde(default)]
    pub failures: u32,
    /// Retry-after answers (bounded, see `MAX_RETRY_AFTER_ANSWERS`).
    #[serde(default)]
    pub retry_afters: u32,
    /// The last call's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_answer: Option<HookAnswer>,
    /// When the last call was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_called_at: Option<Time>,
    /// When the next call is due, while `Pending` after a call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<Time>,
    /// A Job hook's Job (in `namespace` of the hook's cluster) until rotor deleted it, which
    /// it does once the answer is recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// For people: the deny's reason, why a call failed (never a URL or a key).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(name: &str, url: &str) -> LifecycleHook {
        LifecycleHook {
            name: name.into(),
            point: HookPoint::AfterMigration,
            webhook: Some(WebhookHook {
                url: url.into(),
                secret_ref: SecretKeyRef {
                    namespace: None,
                    name: "rotor-hooks".into(),
                    key: "smoke".into(),
                },
            }),
            job: None,
            timeout_seconds: None,
            retries: default_retries(),
            failure_policy: HookFailurePolicy::Fail,
        }
    }

    fn fields(hooks: &[LifecycleHook]) -> Vec<(String, String)> {
        let mut errs = Errors::default();
        validate_hooks("spec.strategy.hooks", hooks, &mut errs);
        errs.0.into_iter().map(|e| (e.field, e.message)).collect()
    }

    #[test]
    fn good_hooks_pass() {
        assert!(
            fields(&[
                hook("smoke", "https://ci.example.com/rotor?team=a"),
                hook("local", "http://127.0.0.1:8080/hook"),
                hook("v6", "http://[::1]:9/"),
                hook("name", "http://localhost:9"),
            ])
            .is_empty()
        );
    }

    #[test]
    fn bad_hooks_are_refused_naming_the_field() {
        let mut bad = hook("smoke", "http://ci.example.com/rotor");
        bad.timeout_seconds = Some(0);
        bad.retries = 11;
        let webhook = bad.webhook.as_mut().expect("a webhook");
        webhook.secret_ref.key = " ".into();
        webhook.secret_ref.name = "Not_A_Name".into();
        let creds = hook("creds", "https://user:s3cret@ci.example.com/");
        let got = fields(&[
            bad,
            creds,
            hook("smoke", "ftp://x"),
            hook("Bad", "https://x"),
        ]);
        let names: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            names,
            [
                "spec.strategy.hooks[0].webhook.url",
                "spec.strategy.hooks[0].webhook.secretRef.name",
                "spec.strategy.hooks[0].webhook.secretRef.key",
                "spec.strategy.hooks[0].timeoutSeconds",
                "spec.strategy.hooks[0].retries",
                "spec.strategy.hooks[1].webhook.url",
                "spec.strategy.hooks[2].webhook.url",
                "spec.strategy.hooks[2].name",
                "spec.strategy.hooks[3].name",
            ]
        );
        assert!(got[0].1.contains("loopback"), "{got:?}");
        assert!(
            got[5].1.contains("credentials") && !got[5].1.contains("s3cret"),
            "{got:?}"
        );
        let many: Vec<LifecycleHook> = (0..=MAX_HOOKS)
            .map(|i| hook(&format!("h{i}"), "https://x"))
            .collect();
        assert_eq!(fields(&many)[0].0, "spec.strategy.hooks");
    }

    fn job_hook(name: &str, template: serde_json::Value) -> LifecycleHook {
        LifecycleHook {
            webhook: None,
            job: Some(JobHook {
                cluster: HookCluster::Green,
                namespace: "shop".into(),
                template,
            }),
            ..hook(name, "https://unused")
        }
    }

    fn smoke_job() -> serde_json::Value {
        serde_json::json!({"spec": {"backoffLimit": 1, "template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "smoke", "image": "smoke:1"}]}}}})
    }

    #[test]
    fn a_job_hook_passes_with_its_longer_timeout() {
        let mut long = job_hook("smoke", smoke_job());
        long.timeout_seconds = Some(job::MAX_JOB_TIMEOUT_SECONDS);
        assert!(fields(&[long.clone()]).is_empty());
        assert_eq!(long.timeout(), std::time::Duration::from_secs(3600));
        long.timeout_seconds = None;
        assert_eq!(long.timeout_seconds(), job::DEFAULT_JOB_TIMEOUT_SECONDS);
        assert_eq!(
            hook("w", "https://x").timeout_seconds(),
            DEFAULT_WEBHOOK_TIMEOUT_SECONDS
        );
    }

    #[test]
    fn bad_job_hooks_are_refused_naming_the_field() {
        let mut both = job_hook("both", smoke_job());
        both.webhook = hook("both", "https://x").webhook;
        let mut neither = job_hook("neither", smoke_job());
        neither.job = None;
        let mut too_long = job_hook("long", smoke_job());
        too_long.timeout_seconds = Some(job::MAX_JOB_TIMEOUT_SECONDS + 1);
        let mut webhook_long = hook("webhook-long", "https://x");
        webhook_long.timeout_seconds = Some(MAX_HOOK_TIMEOUT_SECONDS + 1);
        let mut bad_ns = job_hook("ns", smoke_job());
        bad_ns.job.as_mut().expect("job").namespace = "Shop_1".into();
        let no_containers = job_hook(
            "empty",
            serde_json::json!({"spec": {"template": {"spec": {}}}}),
        );
        let mut too_early = job_hook("early", smoke_job());
        too_early.point = HookPoint::BeforeProvisioning;
        let mistyped = job_hook(
            "mistyped",
            serde_json::json!({"spec": {"backoffLimit": "many"}}),
        );
        let got = fields(&[
            both,
            neither,
            too_long,
            webhook_long,
            bad_ns,
            no_containers,
            mistyped,
            too_early,
        ]);
        let names: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            names,
            [
                "spec.strategy.hooks[0].job",
                "spec.strategy.hooks[1].webhook",
                "spec.strategy.hooks[2].timeoutSeconds",
                "spec.strategy.hooks[3].timeoutSeconds",
                "spec.strategy.hooks[4].job.namespace",
                "spec.strategy.hooks[5].job.template.spec.template.spec.containers",
                "spec.strategy.hooks[6].job.template",
                "spec.strategy.hooks[7].job.cluster",
            ]
        );
        assert!(
            got[0].1.contains("exactly one of webhook and job"),
            "{got:?}"
        );
        assert!(got[2].1.ends_with("between 1 and 3600"), "{got:?}");
        assert!(got[3].1.ends_with("between 1 and 30"), "{got:?}");
        assert!(
            got[6].1.starts_with("not a batch/v1 JobTemplateSpec"),
            "{got:?}"
        );
    }

    #[test]
    fn loopback_is_told_from_lookalikes() {
        for (authority, ok) in [
            ("127.0.0.1:80", true),
            ("127.9.9.9", true),
            ("[::1]:443", true),
            ("localhost:1", true),
            ("localhost.example.com", false),
            ("128.0.0.1", false),
            ("10.0.0.1:80", false),
        ] {
            assert_eq!(is_loopback(authority), ok, "{authority}");
        }
    }
}
