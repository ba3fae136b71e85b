//! Azure Kubernetes Service through Azure Resource Manager (`rotor-azure`: azure_core's
//! pipeline, with requests written from the REST specification, api-version 2026-01-01): an
//! instance is a `Microsoft.ContainerService/managedClusters` with its agent pools inline,
//! in the Cluster's subscription (`spec.account`), location (`spec.region`) and resource group
//! (`spec.config.resourceGroup`).
//!
//! AKS answers a create with a long-running operation; rotor does not wait on it: every call
//! reads the cluster and reports `properties.provisioningState` (Creating, Succeeded = Running,
//! Deleting, Failed with the operation's error when rotor saw the operation), so a crash
//! anywhere resumes from what ARM says.
//!
//! Idempotency: a PUT is create-or-update in ARM, so rotor's always carries `If-None-Match: *`
//! (never an update of an existing cluster), and the cluster carries the swap's token in the
//! tag `rotor-token`; a name already taken is read, and goes on only when the tag matches
//! (another swap's or a person's cluster is refused, never adopted).
//!
//! What `spec.config` may give besides `resourceGroup`: `dnsPrefix` (default: the instance
//! name), `vnetSubnetId`, `networkPlugin`, `identity` (`SystemAssigned` or a user-assigned
//! identity's id), `tier` (`Free`, `Standard`, `Premium`), `aad: managed` (AKS-managed Azure
//! AD, with `aadTenantId` and `aadAdminGroupObjectIds`; see [`credentials`] for how rotor
//! then reaches the cluster's API). Where an instance takes application
//! traffic is its tag `rotor-traffic-address`, encoded as GKE's label (see `crate::tags`).

mod credentials;
mod errors;
mod locate;
mod observe;
mod request;

use async_trait::async_trait;
use base64::Engine as _;
use rotor_azure::{Arm, AzureOptions, ConfigError, Failure, Method};
use serde::Deserialize;

use crate::tags::LABEL_TOKEN;
use crate::{
    ClusterCredentials, Instance, InstanceSpec, Kubeconfig, Placement, Provider, ProviderError,
};
use credentials::{TokenModeError, token_mode};
use errors::{invalid, provider_error};
use locate::Memory;
use observe::ManagedCluster;

pub use credentials::AKS_AAD_SERVER_ID;
pub use rotor_azure::credentials::static_token;

/// The ARM api-version of every call (the newest stable in the REST specification).
pub const API_VERSION: &str = "2026-01-01";

/// Pages of a subscription's cluster list read at most when looking for a cluster.
const LIST_PAGES: usize = 20;

/// AKS, one client for every subscription (ARM's paths carry it).
pub struct AksProvider {
    arm: Arm,
    memory: Memory,
    cluster_credentials: ClusterCredentials,
}

impl std::fmt::Debug for AksProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AksProvider").finish_non_exhaustive()
    }
}

/// `/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.ContainerService/managedClusters/{n}`
fn cluster_path(at: &Placement, group: &str, name: &str) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{group}/providers/Microsoft.ContainerService/managedClusters/{name}",
        at.account
    )
}

/// Refuses an empty subscription or location before anything is sent.
fn check_placement(
    operation: &'static str,
    name: &str,
    at: &Placement,
) -> Result<(), ProviderError> {
    if at.account.trim().is_empty() {
        return Err(invalid(
            operation,
            name,
            "spec.account is required by the azure provider (the Azure subscription id)".into(),
        ));
    }
    if at.region.trim().is_empty() {
        return Err(invalid(
            operation,
            name,
            "spec.region is required by the azure provider (an Azure location)".into(),
        ));
    }
    Ok(())
}

impl AksProvider {
    /// A provider reaching ARM as `options` say (rotor's credential chain unless one is given).
    pub fn new(options: AzureOptions) -> Result<Self, ConfigError> {
        Ok(AksProvider {
            arm: Arm::new(options)?,
            memory: Memory::default(),
            cluster_credentials: ClusterCredentials::default(),
        })
    }

    /// How [`Provider::credentials`]' kubeconfigs authenticate to clusters with Azure AD:
    /// `kubelogin` as AKS names it (`Exec`), or a token from rotor's own Azure credential.
    pub fn with_cluster_credentials(mut self, how: ClusterCredentials) -> Self {
        self.cluster_credentials = how;
        self
    }

    /// The cluster in `group`, or None when ARM does not know it.
    async fn read(
        &self,
        operation: &'static str,
        at: &Placement,
        group: &str,
        name: &str,
    ) -> Result<Option<ManagedCluster>, ProviderError> {
        let url = self.arm.url(&cluster_path(at, group, name), API_VERSION);
        match self.arm.send(Method::Get, url, None, &[]).await {
            Ok(answer) => answer
                .json()
                .map(Some)
                .map_err(|f| provider_error(operation, name, f)),
            Err(Failure::Refused { status: 404, .. }) => Ok(None),
            Err(failure) => Err(provider_error(operation, name, failure)),
        }
    }

    /// The cluster wherever it is in the placement: in the remembered group, else found in the
    /// subscription's list by name and location.
    async fn find(
        &self,
        operation: &'static str,
        at: &Placement,
        name: &str,
    ) -> Result<Option<ManagedCluster>, ProviderError> {
        check_placement(operation, name, at)?;
        if let Some(memo) = self.memory.get(at, name) {
            let found = self.read(operation, at, &memo.group, name).await?;
            if found.is_none() {
                self.memory.forget(at, name);
            }
            return Ok(found);
        }
        let Some(cluster) = self.search(operation, at, name).await? else {
            return Ok(None);
        };
        if let Some(group) = cluster.resource_group() {
            self.memory.remember(at, name, group, None);
        }
        Ok(Some(cluster))
    }

    /// `GET /subscriptions/{s}/providers/Microsoft.ContainerService/managedClusters`, following
    /// `nextLink` for at most [`LIST_PAGES`] pages.
    async fn search(
        &self,
        operation: &'static str,
        at: &Placement,
        name: &str,
    ) -> Result<Option<ManagedCluster>, ProviderError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Page {
            #[serde(default)]
            value: Vec<serde_json::Value>,
            next_link: Option<String>,
        }
        let path = format!(
            "/subscriptions/{}/providers/Microsoft.ContainerService/managedClusters",
            at.account
        );
        let mut url = Some(self.arm.url(&path, API_VERSION));
        let mut matches = Vec::new();
        for _ in 0..LIST_PAGES {
            let Some(next) = url.take() else { break };
            let fail = |f| provider_error(operation, name, f);
            let page: Page = self
                .arm
                .send(Method::Get, next, None, &[])
                .await
                .map_err(fail)?
                .json()
                .map_err(fail)?;
            matches.extend(page.value.into_iter().filter(|c| {
                c["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
                    && c["location"]
                        .as_str()
                        .is_some_and(|l| l.eq_ignore_ascii_case(&at.region))
            }));
            url = page.next_link.as_deref().and_then(|l| self.arm.link(l));
        }
        if matches.len() > 1 {
            return Err(ProviderError::Refused {
                operation,
                instance: name.to_string(),
                status: 409,
                message: format!(
                    "{} AKS clusters of this name in subscription {} and {}: rotor cannot tell \
                     which is its own",
                    matches.len(),
                    at.account,
                    at.region
                ),
            });
        }
        matches
            .pop()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| {
                provider_error(
                    operation,
                    name,
                    Failure::Protocol {
                        message: e.to_string(),
                    },
                )
            })
    }

    /// The failed operation's words (`error.code: error.message`), when rotor saw it start.
    async fn failure(&self, at: &Placement, name: &str) -> Option<String> {
        #[derive(Deserialize)]
        struct Status {
            error: Option<Detail>,
        }
        #[derive(Deserialize)]
        struct Detail {
            code: Option<String>,
            message: Option<String>,
        }
        let url = self.memory.get(at, name)?.operation?;
        let answer = self.arm.send(Method::Get, url, None, &[]).await.ok()?;
        let detail = answer.json::<Status>().ok()?.error?;
        Some(format!(
            "{}: {}",
            detail.code.unwrap_or_else(|| "Failed".into()),
            detail.message.unwrap_or_default()
        ))
    }

    /// The instance for an answer, with a failure's words looked up when it failed.
    async fn instance(&self, at: &Placement, name: &str, cluster: &ManagedCluster) -> Instance {
        let failure = if matches!(cluster.state(), "Failed" | "Canceled") {
            self.failure(at, name).await
        } else {
            None
        };
        cluster.observe(name, failure)
    }

    /// The create-only PUT; Ok(None) when the name is taken (412).
    async fn put(
        &self,
        at: &Placement,
        group: &str,
        spec: &InstanceSpec,
    ) -> Result<Option<ManagedCluster>, ProviderError> {
        const OP: &str = "create";
        let body = request::managed_cluster(spec, &at.region)?;
        let url = self
            .arm
            .url(&cluster_path(at, group, &spec.name), API_VERSION);
        let sent = self
            .arm
            .send(Method::Put, url, Some(&body), &[("if-none-match", "*")])
            .await;
        let answer = match sent {
            Ok(answer) => answer,
            Err(Failure::Refused { status: 412, .. }) => return Ok(None),
            Err(failure) => return Err(provider_error(OP, &spec.name, failure)),
        };
        let operation = answer
            .header("azure-asyncoperation")
            .and_then(|l| self.arm.link(l));
        self.memory.remember(at, &spec.name, group, operation);
        answer
            .json()
            .map(Some)
            .map_err(|f| provider_error(OP, &spec.name, f))
    }
}

#[async_trait]
impl Provider for AksProvider {
    async fn create_instance(
        &self,
        at: &Placement,
        spec: &InstanceSpec,
    ) -> Result<Instance, ProviderError> {
        const OP: &str = "create";
        check_placement(OP, &spec.name, at)?;
        let group = request::resource_group(spec)?;
        // Checked before the first call: a bad spec is refused whatever exists.
        request::managed_cluster(spec, &at.region)?;
        // A cluster this process created is read first (one call per reconcile while it is
        // created); otherwise the create-only PUT goes first, and a 412 leads to the read.
        let known = match self.memory.get(at, &spec.name) {
            Some(_) => self.read(OP, at, &group, &spec.name).await?,
            None => None,
        };
        let cluster = match known {
            Some(c) => c,
            None => match self.put(at, &group, spec).await? {
                Some(c) => c,
                // Created meanwhile (a concurrent or earlier request): read it.
                None => self
                    .read(OP, at, &group, &spec.name)
                    .await?
                    .ok_or_else(|| ProviderError::Protocol {
                        operation: OP,
                        instance: spec.name.clone(),
                        message: "ARM answered 412 for a cluster it does not know".into(),
                    })?,
            },
        };
        if cluster.token() != Some(spec.idempotency_token.as_str()) {
            return Err(ProviderError::Refused {
                operation: OP,
                instance: spec.name.clone(),
                status: 409,
                message: format!(
                    "an AKS cluster of this name exists in resource group {group} and was not \
                     created for this swap (its tag {LABEL_TOKEN} differs); rotor does not \
                     adopt it"
                ),
            });
        }
        self.memory.remember(at, &spec.name, &group, None);
        Ok(self.instance(at, &spec.name, &cluster).await)
    }

    async fn get_instance(
        &self,
        at: &Placement,
        name: &str,
    ) -> Result<Option<Instance>, ProviderError> {
        match self.find("describe", at, name).await? {
            Some(cluster) => Ok(Some(self.instance(at, name, &cluster).await)),
            None => Ok(None),
        }
    }

    async fn delete_instance(&self, at: &Placement, name: &str) -> Result<(), ProviderError> {
        const OP: &str = "delete";
        let Some(cluster) = self.find(OP, at, name).await? else {
            return Ok(());
        };
        if cluster.state() == "Deleting" {
            return Ok(());
        }
        let group = cluster.resource_group().unwrap_or_default().to_string();
        let url = self.arm.url(&cluster_path(at, &group, name), API_VERSION);
        match self.arm.send(Method::Delete, url, None, &[]).await {
            // Accepted, gone meanwhile, or AKS is busy with it: the next call looks again.
            Ok(_) | Err(Failure::Refused { status: 404, .. }) | Err(Failure::Busy { .. }) => Ok(()),
            Err(failure) => Err(provider_error(OP, name, failure)),
        }
    }

    /// The kubeconfig `listClusterUserCredential` returns, as AKS writes it (on clusters with
    /// Azure AD it names `kubelogin`, which token mode replaces by a token; with local
    /// accounts it carries a token). Never logged.
    async fn credentials(&self, at: &Placement, name: &str) -> Result<Kubeconfig, ProviderError> {
        const OP: &str = "credentials";
        let cluster = self
            .find(OP, at, name)
            .await?
            .ok_or_else(|| ProviderError::Refused {
                operation: OP,
                instance: name.to_string(),
                status: 404,
                message: format!(
                    "no AKS cluster of this name in {}/{}",
                    at.account, at.region
                ),
            })?;
        if cluster.state() != "Succeeded" {
            return Err(ProviderError::NotReady {
                operation: OP,
                instance: name.to_string(),
                message: format!("the cluster is {}", cluster.state()),
            });
        }
        let group = cluster.resource_group().unwrap_or_default().to_string();
        let path = format!(
            "{}/listClusterUserCredential",
            cluster_path(at, &group, name)
        );
        let url = self.arm.url(&path, API_VERSION);
        let answer = match self.arm.send(Method::Post, url, None, &[]).await {
            Ok(a) => a,
            Err(Failure::Busy { message }) => {
                return Err(ProviderError::NotReady {
                    operation: OP,
                    instance: name.to_string(),
                    message,
                });
            }
            Err(failure) => return Err(provider_error(OP, name, failure)),
        };
        let protocol = |message| ProviderError::Protocol {
            operation: OP,
            instance: name.to_string(),
            message,
        };
        let returned = kubeconfig(&answer.body).map_err(protocol)?;
        if self.cluster_credentials == ClusterCredentials::Exec {
            return Ok(returned);
        }
        token_mode(&self.arm, name, returned)
            .await
            .map_err(|e| match e {
                TokenModeError::Unreadable(message) => protocol(message),
                TokenModeError::Token(failure) => provider_error(OP, name, failure),
            })
    }
}

/// The first kubeconfig of a `CredentialResults` answer (`{"kubeconfigs": [{"name", "value":
/// base64}]}`). Errors never quote the answer: it holds a credential.
fn kubeconfig(body: &[u8]) -> Result<Kubeconfig, String> {
    #[derive(Deserialize)]
    struct Results {
        #[serde(default)]
        kubeconfigs: Vec<Result_>,
    }
    #[derive(Deserialize)]
    struct Result_ {
        value: String,
    }
    let results: Results = serde_json::from_slice(body).map_err(|e| {
        format!(
            "unreadable credential results (at line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    let first = results
        .kubeconfigs
        .into_iter()
        .next()
        .ok_or("AKS answered no kubeconfig")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(first.value.trim())
        .map_err(|_| "the kubeconfig is not base64".to_string())?;
    String::from_utf8(bytes)
        .map(Kubeconfig::new)
        .map_err(|_| "the kubeconfig is not UTF-8".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kubeconfig_is_decoded_and_errors_never_quote_it() {
        let value = base64::engine::general_purpose::STANDARD.encode("token: s3cret");
        let body = serde_json::json!({"kubeconfigs": [{"name": "clusterUser", "value": value}]});
        let k = kubeconfig(body.to_string().as_bytes()).unwrap();
        assert_eq!(k.expose(), "token: s3cret");
        let bad = br#"{"kubeconfigs": [{"name": "clusterUser", "value": "token: s3cret!"}]}"#;
        let e = kubeconfig(bad).unwrap_err();
        assert!(!e.contains("s3cret"), "{e}");
        let e = kubeconfig(br#"{"kubeconfigs": "token: s3cret"#).unwrap_err();
        assert!(!e.contains("s3cret"), "{e}");
        assert!(kubeconfig(br#"{"kubeconfigs": []}"#).is_err());
    }
}
