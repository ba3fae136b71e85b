//! The provider seam: everything rotor asks of a cloud — create, read and delete a cluster
//! instance, and get credentials for its API. Controllers see only [`Provider`]; `sim` talks to
//! the simulator's cloud API, `eks` AWS's, `gke` Google's, `aks` Azure's.
//!
//! Creation is idempotent by construction: the instance name and the idempotency token are
//! derived from (cluster, swap, attempt), so a crash between "create requested" and "create
//! recorded" followed by a retry asks for the same instance and never yields a second one.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub mod aks;
pub mod eks;
mod failure;
pub mod gke;
pub mod poll;
pub mod sim;
mod tags;

/// What to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceSpec {
    /// The logical Cluster this instance serves.
    pub cluster: String,
    /// The instance's name at the provider (see [`instance_name`]).
    pub name: String,
    /// `1.35`
    pub kubernetes_version: String,
    /// See [`idempotency_token`].
    pub idempotency_token: String,
    /// Node pools to create with the instance.
    #[serde(default)]
    pub node_pools: Vec<NodePoolSpec>,
    /// Provider-specific settings passed through (VPC, subnets, IAM roles, …).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InstanceState {
    Creating,
    Running,
    Deleting,
    Failed,
}

/// An instance as the provider reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    pub name: String,
    pub kubernetes_version: String,
    pub state: InstanceState,
    /// The provider's words on the state (a failure reason).
    pub message: String,
    /// The instance's API endpoint, once known.
    pub endpoint: Option<String>,
    /// Where the instance's application traffic enters: the cloud's address of its ingress load
    /// balancer, once provisioned. Traffic checks and shifting aim here, not at the API.
    pub traffic_address: Option<std::net::SocketAddr>,
}

/// How the kubeconfigs of [`Provider::credentials`] authenticate to a cloud cluster's API.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClusterCredentials {
    /// The cloud CLI's exec plugin, as its `get-credentials` command writes it (`aws eks
    /// get-token`, `gke-gcloud-auth-plugin`, `kubelogin` on AKS clusters with Azure AD): for
    /// people and tools that have the plugin.
    #[default]
    Exec,
    /// A short-lived token rotor mints from its own cloud credentials: no plugin binary needed.
    Token,
}

/// A kubeconfig for an instance. It carries a credential: it never prints itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Kubeconfig(String);

impl Kubeconfig {
    pub fn new(yaml: String) -> Self {
        Kubeconfig(yaml)
    }
    /// The kubeconfig text, to hand to a client. Keep it out of logs and status.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Kubeconfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kubeconfig(<redacted, {} bytes>)", self.0.len())
    }
}

/// What a provider call can fail with; every variant names the instance and the operation.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider could not be reached or answered 5xx/429: worth retrying with backoff.
    #[error("{operation} of instance {instance}: provider unavailable: {message}")]
    Unavailable {
        operation: &'static str,
        instance: String,
        message: String,
    },
    /// The provider refused the call for its rate limit (429, throttling): retry later, slower
    /// (see [`poll`]); `retry_after` is the provider's own word on how long, when it said.
    #[error("{operation} of instance {instance}: rate-limited by the provider: {message}")]
    RateLimited {
        operation: &'static str,
        instance: String,
        retry_after: Option<std::time::Duration>,
        message: String,
    },
    /// The provider refused the request (4xx): retrying the same request will not help.
    #[error("{operation} of instance {instance}: refused by the provider ({status}): {message}")]
    Refused {
        operation: &'static str,
        instance: String,
        status: u16,
        message: String,
    },
    /// The instance exists but cannot serve the request yet (e.g. credentials while creating).
    #[error("{operation} of instance {instance}: not ready: {message}")]
    NotReady {
        operation: &'static str,
        instance: String,
        message: String,
    },
    /// The provider answered something this client does not understand.
    #[error("{operation} of instance {instance}: unexpected answer: {message}")]
    Protocol {
        operation: &'static str,
        instance: String,
        message: String,
    },
}

impl ProviderError {
    /// Whether the same call may succeed later (the caller backs off and retries).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProviderError::Unavailable { .. }
                | ProviderError::NotReady { .. }
                | ProviderError::RateLimited { .. }
        )
    }

    /// The error's class, as a metric label: `unavailable`, `rate_limited`, `refused`,
    /// `not_ready` or `protocol`.
    pub fn class(&self) -> &'static str {
        match self {
            ProviderError::Unavailable { .. } => "unavailable",
            ProviderError::RateLimited { .. } => "rate_limited",
            ProviderError::Refused { .. } => "refused",
            ProviderError::NotReady { .. } => "not_ready",
            ProviderError::Protocol { .. } => "protocol",
        }
    }

    /// `Some(retry_after)` when the provider rate-limited the call.
    pub fn rate_limited(&self) -> Option<Option<std::time::Duration>> {
        match self {
            ProviderError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// Where an instance lives: its Cluster's account (AWS account, GCP project, Azure
/// subscription) and region. Every call names it: cloud APIs are regional, and an EKS or GKE
/// cluster name is unique only within its account and region.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Placement {
    pub account: String,
    pub region: String,
}

/// A node pool of an instance, as the provider creates it (EKS managed node group, AKS agent
/// pool, GKE node pool).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePoolSpec {
    pub name: String,
    pub instance_type: String,
    pub min_count: u32,
    pub max_count: u32,
    pub desired_count: u32,
}

#[async_trait]
pub trait Provider: Send + Sync {
    /// Requests an instance, or converges one being created towards `spec` (a cloud that builds
    /// an instance in steps, like EKS's cluster then node groups, takes the next step here).
    /// Idempotent: the same name and token return the existing instance, never a second one.
    async fn create_instance(
        &self,
        at: &Placement,
        spec: &InstanceSpec,
    ) -> Result<Instance, ProviderError>;
    /// The instance, or None when the provider does not know it.
    async fn get_instance(
        &self,
        at: &Placement,
        name: &str,
    ) -> Result<Option<Instance>, ProviderError>;
    /// Deletes an instance. Idempotent: deleting a missing instance is Ok. A cloud that must
    /// delete in steps (node groups first) reports the instance `Deleting` until it is gone.
    async fn delete_instance(&self, at: &Placement, name: &str) -> Result<(), ProviderError>;
    /// Credentials for the instance's Kubernetes API.
    async fn credentials(&self, at: &Placement, name: &str) -> Result<Kubeconfig, ProviderError>;
}

/// Told of every call a [`Located`] provider makes: its operation, how it ended
/// ([`ProviderError::class`], or `ok`) and how long it took. The controllers' metrics.
pub trait CallObserver: Send + Sync {
    fn observed(
        &self,
        provider: &'static str,
        operation: &'static str,
        outcome: &'static str,
        seconds: f64,
    );
}

/// A provider bound to one Cluster's [`Placement`]: what the controllers hold while they work
/// on that Cluster, so no call can name the wrong region. Every call is reported to its
/// observer, if it has one.
#[derive(Clone)]
pub struct Located<'a> {
    provider: &'a dyn Provider,
    placement: Placement,
    observer: Option<(&'static str, &'a dyn CallObserver)>,
}

impl<'a> Located<'a> {
    pub fn new(provider: &'a dyn Provider, placement: Placement) -> Self {
        Located {
            provider,
            placement,
            observer: None,
        }
    }

    /// Reports every call to `observer`, labelled with the provider's `kind` (`aws`, `sim`).
    pub fn observed_by(mut self, kind: &'static str, observer: &'a dyn CallObserver) -> Self {
        self.observer = Some((kind, observer));
        self
    }

    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    async fn call<T>(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        let started = std::time::Instant::now();
        let result = call.await;
        if let Some((kind, observer)) = self.observer {
            let outcome = result.as_ref().err().map_or("ok", ProviderError::class);
            observer.observed(kind, operation, outcome, started.elapsed().as_secs_f64());
        }
        result
    }

    /// [`Provider::create_instance`] here.
    pub async fn create_instance(&self, spec: &InstanceSpec) -> Result<Instance, ProviderError> {
        self.call(
            "create",
            self.provider.create_instance(&self.placement, spec),
        )
        .await
    }

    /// [`Provider::get_instance`] here.
    pub async fn get_instance(&self, name: &str) -> Result<Option<Instance>, ProviderError> {
        self.call(
            "describe",
            self.provider.get_instance(&self.placement, name),
        )
        .await
    }

    /// [`Provider::delete_instance`] here.
    pub async fn delete_instance(&self, name: &str) -> Result<(), ProviderError> {
        self.call(
            "delete",
            self.provider.delete_instance(&self.placement, name),
        )
        .await
    }

    /// [`Provider::credentials`] here.
    pub async fn credentials(&self, name: &str) -> Result<Kubeconfig, ProviderError> {
        self.call(
            "credentials",
            self.provider.credentials(&self.placement, name),
        )
        .await
    }
}

fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The instance name for (cluster, swap, attempt): a DNS label of at most 40 characters, the
/// cluster's name (trimmed) then 10 hex digits of a hash, readable in a cloud console and
/// stable across retries.
pub fn instance_name(cluster: &str, swap: &str, attempt: u32) -> String {
    let hash = digest(&["instance", cluster, swap, &attempt.to_string()]);
    let mut prefix: String = cluster
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(29)
        .collect();
    while prefix.ends_with('-') {
        prefix.pop();
    }
    if prefix.is_empty() || !prefix.starts_with(|c: char| c.is_ascii_lowercase()) {
        prefix = format!("c{prefix}");
        prefix.truncate(29);
        while prefix.ends_with('-') {
            prefix.pop();
        }
    }
    format!("{prefix}-{}", &hash[..10])
}

/// The idempotency token for (cluster, swap, attempt): stable, 32 hex digits.
pub fn idempotency_token(cluster: &str, swap: &str, attempt: u32) -> String {
    digest(&["token", cluster, swap, &attempt.to_string()])[..32].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn is_dns_label(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && !s.ends_with('-')
    }

    #[test]
    fn names_are_readable_and_stable() {
        let n = instance_name("prod-aws-us-east-1-a", "swap-7", 0);
        assert!(n.starts_with("prod-aws-us-east-1-a-"), "{n}");
        assert_eq!(n, instance_name("prod-aws-us-east-1-a", "swap-7", 0));
        assert_ne!(n, instance_name("prod-aws-us-east-1-a", "swap-7", 1));
        assert_ne!(n, instance_name("prod-aws-us-east-1-a", "swap-8", 0));
        assert_eq!(idempotency_token("a", "b", 0).len(), 32);
        assert_ne!(
            idempotency_token("a", "b", 0),
            idempotency_token("a", "b", 1)
        );
        // Length-prefixed hashing: ("ab","c") and ("a","bc") differ.
        assert_ne!(instance_name("ab", "c", 0), instance_name("a", "bc", 0));
    }

    #[test]
    fn kubeconfig_never_prints() {
        let k = Kubeconfig::new("token: s3cret".into());
        assert!(!format!("{k:?}").contains("s3cret"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn names_are_dns_labels(cluster in ".{0,80}", swap in ".{0,40}", attempt in 0u32..100) {
            let n = instance_name(&cluster, &swap, attempt);
            prop_assert!(is_dns_label(&n) && n.len() <= 40, "{}", n);
            prop_assert_eq!(&n, &instance_name(&cluster, &swap, attempt));
        }

        #[test]
        fn different_swaps_get_different_names(cluster in "[a-z][a-z0-9-]{0,40}", a in "[a-z0-9]{1,12}", b in "[a-z0-9]{1,12}") {
            prop_assume!(a != b);
            prop_assert_ne!(instance_name(&cluster, &a, 0), instance_name(&cluster, &b, 0));
            prop_assert_ne!(idempotency_token(&cluster, &a, 0), idempotency_token(&cluster, &b, 0));
        }
    }
}
