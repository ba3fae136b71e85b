//! Amazon EKS through the official AWS SDK: an instance is an EKS cluster plus one managed node
//! group per node pool, in the Cluster's region.
//!
//! EKS builds in steps (the control plane, then node groups, which it accepts only once the
//! control plane is active) and tears down in the reverse order (it refuses to delete a cluster
//! that still has node groups). Every call takes the next step from what EKS reports, so a crash
//! anywhere resumes: [`Provider::create_instance`] creates the cluster or, once it is active,
//! the node groups still missing; [`Provider::delete_instance`] deletes the node groups, then
//! the cluster.
//!
//! Idempotency: EKS's `clientRequestToken` is the swap's idempotency token, and the cluster is
//! tagged with it, so an existing cluster of the same name is ours only when the tag matches
//! (another swap's or a person's cluster is refused, never adopted).
//!
//! What the Cluster's `spec.config` must give (passed through as the InstanceSpec's config):
//! `roleArn` (the cluster's IAM role), `subnetIds` (comma-separated), and with node pools
//! `nodeRoleArn`; optionally `securityGroupIds`. Where an instance takes its application traffic
//! is its tag `rotor.dev/traffic-address` (`IP:PORT` of its ingress load balancer), written by
//! whatever provisions that load balancer; EKS itself does not know it.

mod token;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_eks::Client;
use aws_sdk_eks::types::{
    Cluster, ClusterStatus, NodegroupScalingConfig, NodegroupStatus, VpcConfigRequest,
};
use rotor_aws::{Failure, SdkConfig, classify, error_code};

use crate::{
    Instance, InstanceSpec, InstanceState, Kubeconfig, NodePoolSpec, Placement, Provider,
    ProviderError,
};

/// Tag: the logical Cluster an EKS cluster serves.
pub const TAG_CLUSTER: &str = "rotor.dev/cluster";
/// Tag: the idempotency token of the swap that created it.
pub const TAG_TOKEN: &str = "rotor.dev/idempotency-token";
/// Tag: the node groups the instance must have before it counts as running (comma-separated).
pub const TAG_NODE_POOLS: &str = "rotor.dev/node-pools";
/// Tag: where the instance takes application traffic (`IP:PORT`).
pub const TAG_TRAFFIC_ADDRESS: &str = "rotor.dev/traffic-address";

/// Whose credentials act in a Cluster's account (`spec.account`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accounts {
    /// rotor's own AWS credentials, for Clusters of their own account only. A Cluster of
    /// another account is refused (the account is read once with STS GetCallerIdentity): green
    /// is never created in an account the Cluster does not name.
    Own,
    /// Assume this role in each Cluster's account; `{account}` in it stands for the account id
    /// (`arn:aws:iam::{account}:role/rotor`).
    AssumeRole(String),
}

/// What rotor acts with in one (account, region): the SDK client, and the credentials it
/// signs with (tokens are minted from them).
type Acting = (Client, Option<SharedCredentialsProvider>);

pub use crate::ClusterCredentials;

/// EKS, one SDK client per (account, region), made on first use and shared by every Cluster
/// there.
pub struct EksProvider {
    config: SdkConfig,
    accounts: Accounts,
    clients: Mutex<HashMap<(String, String), Acting>>,
    /// The account of rotor's own credentials (with [`Accounts::Own`]), once read.
    own_account: tokio::sync::OnceCell<String>,
    cluster_credentials: ClusterCredentials,
}

impl std::fmt::Debug for EksProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EksProvider").finish_non_exhaustive()
    }
}

/// A failed SDK call as the error the controllers act on.
fn provider_error(operation: &'static str, instance: &str, failure: Failure) -> ProviderError {
    crate::failure::Classed::from(failure).at(operation, instance)
}

/// A required `spec.config` key was missing or empty: the request cannot be made.
fn missing(operation: &'static str, instance: &str, key: &str, why: &str) -> ProviderError {
    ProviderError::Refused {
        operation,
        instance: instance.to_string(),
        status: 400,
        message: format!("spec.config.{key} is required by the aws provider ({why})"),
    }
}

fn list(config: &BTreeMap<String, String>, key: &str) -> Vec<String> {
    config
        .get(key)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn required<'c>(
    config: &'c BTreeMap<String, String>,
    operation: &'static str,
    instance: &str,
    key: &str,
    why: &str,
) -> Result<&'c str, ProviderError> {
    match config.get(key).map(|v| v.trim()) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(missing(operation, instance, key, why)),
    }
}

/// The node group's own idempotency token: the swap's token and the pool's name.
fn node_group_token(token: &str, pool: &str) -> String {
    crate::digest(&["nodegroup", token, pool])[..32].to_string()
}

impl EksProvider {
    pub fn new(config: &SdkConfig, accounts: Accounts) -> Self {
        EksProvider {
            config: config.clone(),
            accounts,
            clients: Mutex::new(HashMap::new()),
            own_account: tokio::sync::OnceCell::new(),
            cluster_credentials: ClusterCredentials::default(),
        }
    }

    pub fn with_cluster_credentials(mut self, how: ClusterCredentials) -> Self {
        self.cluster_credentials = how;
        self
    }

    /// A bearer token for cluster `name` from the credentials rotor's client in `at` acts with.
    async fn token(&self, at: &Placement, name: &str) -> Result<String, ProviderError> {
        use aws_credential_types::provider::ProvideCredentials as _;
        const OP: &str = "credentials";
        let refused = |message: String| ProviderError::Refused {
            operation: OP,
            instance: name.to_string(),
            status: 403,
            message,
        };
        let key = (at.account.clone(), at.region.clone());
        let provider = self
            .lock_clients()
            .get(&key)
            .and_then(|(_, c)| c.clone())
            .ok_or_else(|| refused("no AWS credentials to mint a token with".into()))?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| refused(format!("AWS credentials: {e}")))?;
        let sts = token::sts_url(&at.region, self.config.endpoint_url());
        token::mint(
            credentials,
            &at.region,
            &sts,
            name,
            std::time::SystemTime::now(),
        )
        .map_err(|e| ProviderError::Protocol {
            operation: OP,
            instance: name.to_string(),
            message: format!("signing an EKS token: {e}"),
        })
    }

    /// The client acting in `at`'s account and region, or why there is none.
    async fn client(
        &self,
        operation: &'static str,
        instance: &str,
        at: &Placement,
    ) -> Result<Client, ProviderError> {
        let key = (at.account.clone(), at.region.clone());
        if let Some((c, _)) = self.lock_clients().get(&key) {
            return Ok(c.clone());
        }
        let refused = |message: String| ProviderError::Refused {
            operation,
            instance: instance.to_string(),
            status: 403,
            message,
        };
        if at.account.len() != 12 || !at.account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ProviderError::Refused {
                operation,
                instance: instance.to_string(),
                status: 400,
                message: format!(
                    "spec.account {:?} is not an AWS account id (12 digits)",
                    at.account
                ),
            });
        }
        let mut config = aws_sdk_eks::config::Builder::from(&self.config)
            .region(aws_sdk_eks::config::Region::new(at.region.clone()));
        let mut credentials = self.config.credentials_provider();
        match &self.accounts {
            Accounts::Own => {
                let own = self
                    .own_account
                    .get_or_try_init(|| async {
                        let who = aws_sdk_sts::Client::new(&self.config)
                            .get_caller_identity()
                            .send()
                            .await
                            .map_err(|e| provider_error(operation, instance, classify(&e)))?;
                        who.account.ok_or_else(|| ProviderError::Protocol {
                            operation,
                            instance: instance.to_string(),
                            message: "STS GetCallerIdentity answered without an account".into(),
                        })
                    })
                    .await?;
                if *own != at.account {
                    return Err(refused(format!(
                        "the Cluster's spec.account {} is not the account of rotor's AWS \
                         credentials ({own}); give rotor a role to assume in other accounts \
                         (--aws-role-arn-template 'arn:aws:iam::{{account}}:role/NAME')",
                        at.account
                    )));
                }
            }
            Accounts::AssumeRole(template) => {
                let role = template.replace("{account}", &at.account);
                let assumed = aws_config::sts::AssumeRoleProvider::builder(role)
                    .session_name("rotor")
                    .configure(&self.config)
                    .build()
                    .await;
                let assumed = SharedCredentialsProvider::new(assumed);
                config = config.credentials_provider(assumed.clone());
                credentials = Some(assumed);
            }
        }
        let client = Client::from_conf(config.build());
        self.lock_clients()
            .insert(key, (client.clone(), credentials));
        Ok(client)
    }

    fn lock_clients(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Acting>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn describe(
        client: &Client,
        operation: &'static str,
        name: &str,
    ) -> Result<Option<Cluster>, ProviderError> {
        match client.describe_cluster().name(name).send().await {
            Ok(out) => Ok(out.cluster),
            Err(e) if error_code(&e) == Some("ResourceNotFoundException") => Ok(None),
            Err(e) => Err(provider_error(operation, name, classify(&e))),
        }
    }

    /// The instance EKS reports: the cluster's state, and once it is active, its node groups'.
    async fn observe(
        client: &Client,
        operation: &'static str,
        cluster: &Cluster,
    ) -> Result<Instance, ProviderError> {
        let name = cluster.name().unwrap_or_default();
        let tags = cluster.tags();
        let tag = |key: &str| tags.and_then(|t| t.get(key)).map(String::as_str);
        let traffic_address = match tag(TAG_TRAFFIC_ADDRESS) {
            None => None,
            Some(a) => Some(a.parse().map_err(|e| ProviderError::Protocol {
                operation,
                instance: name.to_string(),
                message: format!("tag {TAG_TRAFFIC_ADDRESS} {a:?} is not IP:PORT: {e}"),
            })?),
        };
        let (state, message) = match cluster.status() {
            Some(ClusterStatus::Active) | Some(ClusterStatus::Updating) => {
                let pools: Vec<&str> = tag(TAG_NODE_POOLS)
                    .unwrap_or_default()
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .collect();
                Self::node_groups_state(client, operation, name, &pools).await?
            }
            Some(ClusterStatus::Creating) | Some(ClusterStatus::Pending) => (
                InstanceState::Creating,
                "EKS is creating the cluster".into(),
            ),
            Some(ClusterStatus::Deleting) => (InstanceState::Deleting, "EKS is deleting it".into()),
            Some(ClusterStatus::Failed) => {
                let issues = cluster
                    .health()
                    .map(|h| {
                        h.issues()
                            .iter()
                            .filter_map(|i| i.message())
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                    .unwrap_or_default();
                (
                    InstanceState::Failed,
                    format!("EKS reports FAILED: {issues}"),
                )
            }
            other => {
                return Err(ProviderError::Protocol {
                    operation,
                    instance: name.to_string(),
                    message: format!("unknown cluster status {other:?}"),
                });
            }
        };
        Ok(Instance {
            name: name.to_string(),
            kubernetes_version: cluster.version().unwrap_or_default().to_string(),
            state,
            message,
            endpoint: cluster.endpoint().map(String::from),
            traffic_address,
        })
    }

    /// Running once every expected node group is ACTIVE; Creating while one is missing or being
    /// created; Failed when EKS says one failed.
    async fn node_groups_state(
        client: &Client,
        operation: &'static str,
        name: &str,
        pools: &[&str],
    ) -> Result<(InstanceState, String), ProviderError> {
        let mut pending = Vec::new();
        for pool in pools {
            let described = client
                .describe_nodegroup()
                .cluster_name(name)
                .nodegroup_name(*pool)
                .send()
                .await;
            let status = match described {
                Ok(out) => out.nodegroup.and_then(|n| n.status),
                Err(e) if error_code(&e) == Some("ResourceNotFoundException") => None,
                Err(e) => return Err(provider_error(operation, name, classify(&e))),
            };
            match status {
                Some(NodegroupStatus::Active) | Some(NodegroupStatus::Updating) => {}
                Some(NodegroupStatus::CreateFailed) | Some(NodegroupStatus::Degraded) => {
                    return Ok((
                        InstanceState::Failed,
                        format!(
                            "node group {pool} is {}",
                            status.as_ref().map_or("", |s| s.as_str())
                        ),
                    ));
                }
                Some(s) => pending.push(format!("{pool} {}", s.as_str())),
                None => pending.push(format!("{pool} not created yet")),
            }
        }
        if pending.is_empty() {
            Ok((InstanceState::Running, "active".into()))
        } else {
            Ok((
                InstanceState::Creating,
                format!("cluster active; node groups: {}", pending.join(", ")),
            ))
        }
    }

    async fn create_cluster(
        client: &Client,
        spec: &InstanceSpec,
    ) -> Result<Option<Cluster>, ProviderError> {
        const OP: &str = "create";
        let role = required(
            &spec.config,
            OP,
            &spec.name,
            "roleArn",
            "the EKS cluster role",
        )?;
        let subnets = list(&spec.config, "subnetIds");
        if subnets.is_empty() {
            return Err(missing(
                OP,
                &spec.name,
                "subnetIds",
                "comma-separated subnet ids",
            ));
        }
        if !spec.node_pools.is_empty() {
            required(
                &spec.config,
                OP,
                &spec.name,
                "nodeRoleArn",
                "the node groups' role",
            )?;
        }
        let pools: Vec<&str> = spec.node_pools.iter().map(|p| p.name.as_str()).collect();
        let tags = HashMap::from([
            (TAG_CLUSTER.to_string(), spec.cluster.clone()),
            (TAG_TOKEN.to_string(), spec.idempotency_token.clone()),
            (TAG_NODE_POOLS.to_string(), pools.join(",")),
        ]);
        let vpc = VpcConfigRequest::builder()
            .set_subnet_ids(Some(subnets))
            .set_security_group_ids(Some(list(&spec.config, "securityGroupIds")))
            .build();
        let created = client
            .create_cluster()
            .name(&spec.name)
            .version(&spec.kubernetes_version)
            .role_arn(role)
            .resources_vpc_config(vpc)
            .client_request_token(&spec.idempotency_token)
            .set_tags(Some(tags))
            .send()
            .await;
        match created {
            Ok(out) => Ok(out.cluster),
            // Created meanwhile (a concurrent or earlier request): read it and check it is ours.
            Err(e) if error_code(&e) == Some("ResourceInUseException") => {
                Self::describe(client, OP, &spec.name).await
            }
            Err(e) => Err(provider_error(OP, &spec.name, classify(&e))),
        }
    }

    /// Creates the node groups of `spec` that EKS does not have yet.
    async fn create_node_groups(client: &Client, spec: &InstanceSpec) -> Result<(), ProviderError> {
        const OP: &str = "create node groups";
        if spec.node_pools.is_empty() {
            return Ok(());
        }
        let existing = client
            .list_nodegroups()
            .cluster_name(&spec.name)
            .send()
            .await
            .map_err(|e| provider_error(OP, &spec.name, classify(&e)))?;
        let existing = existing.nodegroups();
        let node_role = required(
            &spec.config,
            OP,
            &spec.name,
            "nodeRoleArn",
            "the node groups' role",
        )?;
        let subnets = list(&spec.config, "subnetIds");
        for pool in &spec.node_pools {
            if existing.iter().any(|n| n == &pool.name) {
                continue;
            }
            let NodePoolSpec {
                name,
                instance_type,
                min_count,
                max_count,
                desired_count,
            } = pool;
            let size = |n: &u32| i32::try_from(*n).unwrap_or(i32::MAX);
            let created = client
                .create_nodegroup()
                .cluster_name(&spec.name)
                .nodegroup_name(name)
                .scaling_config(
                    NodegroupScalingConfig::builder()
                        .min_size(size(min_count))
                        .max_size(size(max_count))
                        .desired_size(size(desired_count))
                        .build(),
                )
                .instance_types(instance_type)
                .set_subnets(Some(subnets.clone()))
                .node_role(node_role)
                .client_request_token(node_group_token(&spec.idempotency_token, name))
                .tags(TAG_CLUSTER, &spec.cluster)
                .send()
                .await;
            match created {
                Ok(_) => {}
                Err(e) if error_code(&e) == Some("ResourceInUseException") => {}
                Err(e) => {
                    let instance = format!("{} (node group {name})", spec.name);
                    return Err(provider_error(OP, &instance, classify(&e)));
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for EksProvider {
    async fn create_instance(
        &self,
        at: &Placement,
        spec: &InstanceSpec,
    ) -> Result<Instance, ProviderError> {
        const OP: &str = "create";
        let client = self.client(OP, &spec.name, at).await?;
        let cluster = match Self::describe(&client, OP, &spec.name).await? {
            Some(c) => c,
            None => Self::create_cluster(&client, spec).await?.ok_or_else(|| {
                ProviderError::Protocol {
                    operation: OP,
                    instance: spec.name.clone(),
                    message: "EKS answered without the cluster".into(),
                }
            })?,
        };
        let token = cluster.tags().and_then(|t| t.get(TAG_TOKEN));
        if token != Some(&spec.idempotency_token) {
            return Err(ProviderError::Refused {
                operation: OP,
                instance: spec.name.clone(),
                status: 409,
                message: format!(
                    "an EKS cluster of this name exists in {} and was not created for this swap \
                     (its tag {TAG_TOKEN} differs); rotor does not adopt it",
                    at.region
                ),
            });
        }
        if cluster.status() == Some(&ClusterStatus::Active) {
            Self::create_node_groups(&client, spec).await?;
        }
        Self::observe(&client, OP, &cluster).await
    }

    async fn get_instance(
        &self,
        at: &Placement,
        name: &str,
    ) -> Result<Option<Instance>, ProviderError> {
        const OP: &str = "describe";
        let client = self.client(OP, name, at).await?;
        match Self::describe(&client, OP, name).await? {
            Some(cluster) => Ok(Some(Self::observe(&client, OP, &cluster).await?)),
            None => Ok(None),
        }
    }

    async fn delete_instance(&self, at: &Placement, name: &str) -> Result<(), ProviderError> {
        const OP: &str = "delete";
        let client = self.client(OP, name, at).await?;
        let Some(cluster) = Self::describe(&client, OP, name).await? else {
            return Ok(());
        };
        if cluster.status() == Some(&ClusterStatus::Deleting) {
            return Ok(());
        }
        let groups = match client.list_nodegroups().cluster_name(name).send().await {
            Ok(out) => out.nodegroups.unwrap_or_default(),
            Err(e) if error_code(&e) == Some("ResourceNotFoundException") => return Ok(()),
            Err(e) => return Err(provider_error(OP, name, classify(&e))),
        };
        let mut remaining = 0;
        for group in &groups {
            let deleted = client
                .delete_nodegroup()
                .cluster_name(name)
                .nodegroup_name(group)
                .send()
                .await;
            match deleted {
                Ok(_) => remaining += 1,
                Err(e) if error_code(&e) == Some("ResourceNotFoundException") => {}
                // Already being deleted.
                Err(e) if error_code(&e) == Some("ResourceInUseException") => remaining += 1,
                Err(e) => {
                    let instance = format!("{name} (node group {group})");
                    return Err(provider_error(OP, &instance, classify(&e)));
                }
            }
        }
        if remaining > 0 {
            // EKS deletes node groups in the background; a moment later none may be left.
            let left = client
                .list_nodegroups()
                .cluster_name(name)
                .send()
                .await
                .map_err(|e| provider_error(OP, name, classify(&e)))?;
            if !left.nodegroups().is_empty() {
                return Ok(());
            }
        }
        match client.delete_cluster().name(name).send().await {
            Ok(_) => Ok(()),
            Err(e) if error_code(&e) == Some("ResourceNotFoundException") => Ok(()),
            // Node groups appeared meanwhile or EKS is busy with it: the next call goes on.
            Err(e) if error_code(&e) == Some("ResourceInUseException") => Ok(()),
            Err(e) => Err(provider_error(OP, name, classify(&e))),
        }
    }

    /// A kubeconfig with the cluster's endpoint and CA, authenticating as
    /// [`ClusterCredentials`] says: through `aws eks get-token` (the exec plugin every EKS
    /// kubeconfig uses; it carries no secret, the token is minted from the process's own AWS
    /// credentials each time it is needed), or with a token rotor minted the same way.
    async fn credentials(&self, at: &Placement, name: &str) -> Result<Kubeconfig, ProviderError> {
        const OP: &str = "credentials";
        let client = self.client(OP, name, at).await?;
        let cluster =
            Self::describe(&client, OP, name)
                .await?
                .ok_or_else(|| ProviderError::Refused {
                    operation: OP,
                    instance: name.to_string(),
                    status: 404,
                    message: format!("no EKS cluster of this name in {}", at.region),
                })?;
        let not_ready = |message: String| ProviderError::NotReady {
            operation: OP,
            instance: name.to_string(),
            message,
        };
        if cluster.status() != Some(&ClusterStatus::Active) {
            return Err(not_ready(format!(
                "the cluster is {}",
                cluster.status().map_or("unknown", |s| s.as_str())
            )));
        }
        let (Some(endpoint), Some(ca)) = (
            cluster.endpoint(),
            cluster.certificate_authority().and_then(|c| c.data()),
        ) else {
            return Err(not_ready("EKS reports no endpoint or CA yet".into()));
        };
        let user = match self.cluster_credentials {
            ClusterCredentials::Exec => serde_json::json!({"exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": "aws",
                "args": ["eks", "get-token", "--cluster-name", name, "--region", at.region, "--output", "json"],
                "interactiveMode": "Never",
            }}),
            ClusterCredentials::Token => {
                serde_json::json!({"token": self.token(at, name).await?})
            }
        };
        let kubeconfig = serde_json::json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": name, "cluster": {
                "server": endpoint, "certificate-authority-data": ca}}],
            "users": [{"name": name, "user": user}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
        });
        Ok(Kubeconfig::new(kubeconfig.to_string()))
    }
}
