//! Google Kubernetes Engine through Google's official client (`google-cloud-container-v1`,
//! REST): an instance is a GKE cluster with its node pools, created in one call (the pools
//! inline), in the Cluster's project (`spec.account`) and location (`spec.region`: a region
//! for a regional cluster, a zone for a zonal one).
//!
//! GKE answers a create with an operation; rotor does not wait on it: every call reads the
//! cluster and reports its status (PROVISIONING is `Creating`, RUNNING `Running`, ERROR
//! `Failed` with GKE's message), so a crash anywhere resumes from what GKE says.
//!
//! Idempotency: GKE has none beyond the name (unique per location), so the cluster carries the
//! swap's token in the label `rotor-token`; a create that finds the name taken reads the
//! cluster and goes on only when the label matches (another swap's or a person's cluster is
//! refused, never adopted).
//!
//! What the Cluster's `spec.config` may give: `network` (default `default`), `subnetwork`,
//! `nodeServiceAccount`, `diskSizeGb`. Where an instance takes its application traffic is its
//! label `rotor-traffic-address` (`10-0-0-7_443`: label values allow neither `.` nor `:`),
//! written by whatever provisions its load balancer.

mod errors;
mod labels;
mod token_file;

use async_trait::async_trait;
use google_cloud_auth::credentials::{AccessTokenCredentials, Credentials};
use google_cloud_container_v1::client::ClusterManager;
use google_cloud_container_v1::model::{self, cluster::Status};
use google_cloud_gax::retry_policy::{Aip194Strict, RetryPolicyExt as _};

pub use labels::{LABEL_CLUSTER, LABEL_TOKEN, LABEL_TRAFFIC_ADDRESS, static_token};
pub use token_file::token_file;

use crate::{
    Instance, InstanceSpec, InstanceState, Kubeconfig, Placement, Provider, ProviderError,
};
use errors::{Failure, classify};

/// Attempts per call the client makes before the error reaches rotor.
const ATTEMPTS: u32 = 3;

pub use crate::ClusterCredentials;

/// Where rotor reaches GKE and as whom.
#[derive(Clone, Debug, Default)]
pub struct GkeOptions {
    /// The API's URL instead of `https://container.googleapis.com` (the simulator:
    /// `http://127.0.0.1:8080/gcp`).
    pub endpoint: Option<String>,
    /// The credentials to act with; `None`: application default credentials
    /// (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's ADC file, the metadata server).
    pub credentials: Option<AccessTokenCredentials>,
}

/// GKE, one client for every project and location (GKE's names carry both).
pub struct GkeProvider {
    client: ClusterManager,
    credentials: AccessTokenCredentials,
    cluster_credentials: ClusterCredentials,
}

impl std::fmt::Debug for GkeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GkeProvider").finish_non_exhaustive()
    }
}

/// A failed call as the error the controllers act on.
fn provider_error(operation: &'static str, instance: &str, failure: Failure) -> ProviderError {
    crate::failure::Classed::from(failure).at(operation, instance)
}

/// A request rotor cannot make as asked: refused before anything is sent.
fn invalid(operation: &'static str, instance: &str, message: String) -> ProviderError {
    ProviderError::invalid(operation, instance, message)
}

/// `projects/{account}/locations/{region}`, after checking both are given.
fn parent(
    operation: &'static str,
    instance: &str,
    at: &Placement,
) -> Result<String, ProviderError> {
    if at.account.trim().is_empty() {
        return Err(invalid(
            operation,
            instance,
            "spec.account is required by the gcp provider (the GCP project id)".into(),
        ));
    }
    if at.region.trim().is_empty() {
        return Err(invalid(
            operation,
            instance,
            "spec.region is required by the gcp provider (a GCP region or zone)".into(),
        ));
    }
    Ok(format!("projects/{}/locations/{}", at.account, at.region))
}

/// `1.35` from GKE's `1.35.1-gke.1234`.
fn minor_version(v: &str) -> String {
    v.splitn(3, '.').take(2).collect::<Vec<_>>().join(".")
}

impl GkeProvider {
    /// A provider acting with `options`' credentials (or the application default ones).
    pub async fn new(options: GkeOptions) -> Result<Self, String> {
        // Google's clients build reqwest with rustls and no crypto provider (its default would
        // be aws-lc, a C build): the process's default is used, ring's unless one is set.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Losing a race to another installer is fine: a provider is installed either way.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let credentials = match options.credentials {
            Some(c) => c,
            None => google_cloud_auth::credentials::Builder::default()
                .build_access_token_credentials()
                .map_err(|e| format!("Google application default credentials: {e}"))?,
        };
        // gax retries idempotent calls (GET, DELETE) on 503 and I/O errors for up to 10 attempts
        // and 60 s by default: a reconcile would hang that long in an outage. rotor retries
        // with its own backoff (`poll`), so the client tries a few times only.
        let retries = Aip194Strict.with_attempt_limit(ATTEMPTS);
        let mut builder = ClusterManager::builder()
            .with_credentials(Credentials::from(credentials.clone()))
            .with_retry_policy(retries);
        if let Some(endpoint) = &options.endpoint {
            builder = builder.with_endpoint(endpoint.trim_end_matches('/'));
        }
        let client = builder
            .build()
            .await
            .map_err(|e| format!("GKE client: {e}"))?;
        Ok(GkeProvider {
            client,
            credentials,
            cluster_credentials: ClusterCredentials::default(),
        })
    }

    pub fn with_cluster_credentials(mut self, how: ClusterCredentials) -> Self {
        self.cluster_credentials = how;
        self
    }

    /// The cluster, or None when GKE does not know it.
    async fn describe(
        &self,
        operation: &'static str,
        at: &Placement,
        name: &str,
    ) -> Result<Option<model::Cluster>, ProviderError> {
        let parent = parent(operation, name, at)?;
        let got = self
            .client
            .get_cluster()
            .set_name(format!("{parent}/clusters/{name}"))
            .send();
        match Box::pin(got).await {
            Ok(c) => Ok(Some(c)),
            Err(e) => match classify(&e) {
                Failure::Refused { status: 404, .. } => Ok(None),
                failure => Err(provider_error(operation, name, failure)),
            },
        }
    }

    /// What rotor asks GKE for: the cluster with its node pools and labels. Filled field by
    /// field in a box: the generated model types are large (a `Cluster` is ~21 KB), and
    /// builder chains would put a copy per call on the stack of an unoptimised build.
    fn cluster_request(spec: &InstanceSpec) -> Result<Box<model::Cluster>, ProviderError> {
        const OP: &str = "create";
        let bad = |message: String| invalid(OP, &spec.name, message);
        if spec.node_pools.is_empty() {
            return Err(bad(
                "spec.nodePools is empty: a GKE cluster needs at least one node pool".into(),
            ));
        }
        let disk_size_gb = match spec.config.get("diskSizeGb").map(|v| v.trim()) {
            None | Some("") => None,
            Some(v) => Some(v.parse::<i32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                bad(format!(
                    "spec.config.diskSizeGb {v:?} is not a positive whole number of GB"
                ))
            })?),
        };
        let mut cluster = Box::<model::Cluster>::default();
        for (i, pool) in spec.node_pools.iter().enumerate() {
            labels::check_name(&pool.name)
                .map_err(|why| bad(format!("spec.nodePools[{i}].name {:?} {why}", pool.name)))?;
            let count = |field: &str, n: u32| {
                i32::try_from(n)
                    .map_err(|_| bad(format!("spec.nodePools[{i}].{field} {n} is too large")))
            };
            let mut config = model::NodeConfig::default();
            config.machine_type = pool.instance_type.clone();
            if let Some(gb) = disk_size_gb {
                config.disk_size_gb = gb;
            }
            if let Some(sa) = spec
                .config
                .get("nodeServiceAccount")
                .filter(|s| !s.is_empty())
            {
                config.service_account = sa.clone();
            }
            let mut autoscaling = model::NodePoolAutoscaling::default();
            autoscaling.enabled = true;
            autoscaling.min_node_count = count("minCount", pool.min_count)?;
            autoscaling.max_node_count = count("maxCount", pool.max_count)?;
            let mut node_pool = model::NodePool::default();
            node_pool.name = pool.name.clone();
            node_pool.initial_node_count = count("desiredCount", pool.desired_count)?;
            node_pool.config = Some(config);
            node_pool.autoscaling = Some(autoscaling);
            cluster.node_pools.push(node_pool);
        }
        cluster.name = spec.name.clone();
        cluster.initial_cluster_version = spec.kubernetes_version.clone();
        cluster.network = spec
            .config
            .get("network")
            .filter(|n| !n.is_empty())
            .cloned()
            .unwrap_or_else(|| "default".into());
        if let Some(sub) = spec.config.get("subnetwork").filter(|s| !s.is_empty()) {
            cluster.subnetwork = sub.clone();
        }
        cluster.resource_labels = [
            (LABEL_CLUSTER.to_string(), labels::value_of(&spec.cluster)),
            (LABEL_TOKEN.to_string(), spec.idempotency_token.clone()),
        ]
        .into_iter()
        .collect();
        Ok(cluster)
    }

    /// Asks GKE for the cluster (the answer, an operation, is not needed: every call reads
    /// the cluster).
    async fn request_create(
        &self,
        parent: &str,
        cluster: Box<model::Cluster>,
    ) -> Result<(), Failure> {
        let mut request = Box::<model::CreateClusterRequest>::default();
        request.parent = parent.to_string();
        request.cluster = Some(*cluster);
        let sent = Box::pin(self.client.create_cluster().with_request(*request).send());
        sent.await.map(drop).map_err(|e| classify(&e))
    }

    /// The instance as GKE reports it.
    fn observe(
        operation: &'static str,
        name: &str,
        cluster: &model::Cluster,
    ) -> Result<Instance, ProviderError> {
        let (state, message) = match &cluster.status {
            Status::Provisioning => (InstanceState::Creating, "GKE is provisioning it".into()),
            Status::Running | Status::Reconciling => (InstanceState::Running, "running".into()),
            Status::Degraded => (
                InstanceState::Running,
                format!("GKE reports it DEGRADED: {}", conditions(cluster)),
            ),
            Status::Stopping => (InstanceState::Deleting, "GKE is deleting it".into()),
            Status::Error => (
                InstanceState::Failed,
                format!("GKE reports ERROR: {}", conditions(cluster)),
            ),
            other => {
                return Err(ProviderError::Protocol {
                    operation,
                    instance: name.to_string(),
                    message: format!("unknown cluster status {other:?}"),
                });
            }
        };
        let version = if cluster.current_master_version.is_empty() {
            &cluster.initial_cluster_version
        } else {
            &cluster.current_master_version
        };
        Ok(Instance {
            name: name.to_string(),
            kubernetes_version: minor_version(version),
            state,
            message,
            endpoint: (!cluster.endpoint.is_empty()).then(|| labels::server(&cluster.endpoint)),
            traffic_address: cluster
                .resource_labels
                .get(LABEL_TRAFFIC_ADDRESS)
                .and_then(|v| labels::parse_address(v)),
        })
    }
}

#[async_trait]
impl Provider for GkeProvider {
    async fn create_instance(
        &self,
        at: &Placement,
        spec: &InstanceSpec,
    ) -> Result<Instance, ProviderError> {
        const OP: &str = "create";
        let parent = parent(OP, &spec.name, at)?;
        // The generated model types are large: boxed, the futures stay off the stack.
        let cluster = match Box::pin(self.describe(OP, at, &spec.name)).await? {
            Some(c) => c,
            None => {
                let request = Self::cluster_request(spec)?;
                match Box::pin(self.request_create(&parent, request)).await {
                    // Created meanwhile (a concurrent or earlier request): read it below.
                    Ok(()) | Err(Failure::Refused { status: 409, .. }) => {}
                    Err(failure) => return Err(provider_error(OP, &spec.name, failure)),
                }
                self.describe(OP, at, &spec.name)
                    .await?
                    .ok_or_else(|| ProviderError::Protocol {
                        operation: OP,
                        instance: spec.name.clone(),
                        message: "GKE accepted the create but does not know the cluster".into(),
                    })?
            }
        };
        if cluster.resource_labels.get(LABEL_TOKEN) != Some(&spec.idempotency_token) {
            return Err(ProviderError::Refused {
                operation: OP,
                instance: spec.name.clone(),
                status: 409,
                message: format!(
                    "a GKE cluster of this name exists in {parent} and was not created for this \
                     swap (its label {LABEL_TOKEN} differs); rotor does not adopt it"
                ),
            });
        }
        Self::observe(OP, &spec.name, &cluster)
    }

    async fn get_instance(
        &self,
        at: &Placement,
        name: &str,
    ) -> Result<Option<Instance>, ProviderError> {
        const OP: &str = "describe";
        match self.describe(OP, at, name).await? {
            Some(cluster) => Ok(Some(Self::observe(OP, name, &cluster)?)),
            None => Ok(None),
        }
    }

    async fn delete_instance(&self, at: &Placement, name: &str) -> Result<(), ProviderError> {
        const OP: &str = "delete";
        let Some(cluster) = self.describe(OP, at, name).await? else {
            return Ok(());
        };
        if cluster.status == Status::Stopping {
            return Ok(());
        }
        let parent = parent(OP, name, at)?;
        let deleted = Box::pin(
            self.client
                .delete_cluster()
                .set_name(format!("{parent}/clusters/{name}"))
                .send(),
        )
        .await;
        match deleted.map_err(|e| classify(&e)) {
            // Gone meanwhile, or GKE is busy with it (its deletion is running): the next call
            // looks again.
            Ok(_) | Err(Failure::Refused { status: 404, .. }) | Err(Failure::Busy { .. }) => Ok(()),
            Err(failure) => Err(provider_error(OP, name, failure)),
        }
    }

    /// A kubeconfig with the cluster's endpoint and CA, authenticating as
    /// [`ClusterCredentials`] says: through `gke-gcloud-auth-plugin` (what every GKE
    /// kubeconfig uses; it carries no secret), or with an access token minted from rotor's own
    /// Google credentials.
    async fn credentials(&self, at: &Placement, name: &str) -> Result<Kubeconfig, ProviderError> {
        const OP: &str = "credentials";
        let cluster = self
            .describe(OP, at, name)
            .await?
            .ok_or_else(|| ProviderError::Refused {
                operation: OP,
                instance: name.to_string(),
                status: 404,
                message: format!(
                    "no GKE cluster of this name in {}/{}",
                    at.account, at.region
                ),
            })?;
        let not_ready = |message: String| ProviderError::NotReady {
            operation: OP,
            instance: name.to_string(),
            message,
        };
        if !matches!(
            cluster.status,
            Status::Running | Status::Reconciling | Status::Degraded
        ) {
            return Err(not_ready(format!("the cluster is {:?}", cluster.status)));
        }
        let ca = cluster
            .master_auth
            .as_ref()
            .map(|m| m.cluster_ca_certificate.as_str())
            .unwrap_or_default();
        if cluster.endpoint.is_empty() || ca.is_empty() {
            return Err(not_ready("GKE reports no endpoint or CA yet".into()));
        }
        let user = match self.cluster_credentials {
            ClusterCredentials::Exec => serde_json::json!({"exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": "gke-gcloud-auth-plugin",
                "installHint": "Install gke-gcloud-auth-plugin for use with kubectl by following https://cloud.google.com/kubernetes-engine/docs/how-to/cluster-access-for-kubectl#install_plugin",
                "provideClusterInfo": true,
                "interactiveMode": "Never",
            }}),
            ClusterCredentials::Token => {
                let token = self.credentials.access_token().await.map_err(|e| {
                    provider_error(
                        OP,
                        name,
                        Failure::Refused {
                            status: 401,
                            message: format!("Google credentials: {e}"),
                        },
                    )
                })?;
                serde_json::json!({"token": token.token})
            }
        };
        let kubeconfig = serde_json::json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": name, "cluster": {
                "server": labels::server(&cluster.endpoint), "certificate-authority-data": ca}}],
            "users": [{"name": name, "user": user}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
        });
        Ok(Kubeconfig::new(kubeconfig.to_string()))
    }
}

/// GKE's words on a cluster's state (`conditions[].message`; `statusMessage` is deprecated).
fn conditions(cluster: &model::Cluster) -> String {
    cluster
        .conditions
        .iter()
        .map(|c| c.message.as_str())
        .filter(|m| !m.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
