//! The rehearsal's fleet on the clouds' own APIs: each Cluster runs on EKS, GKE or AKS as
//! `rotor sim` serves them (`/aws`, `/gcp`, `/azure`), and the controllers reach them through
//! the real providers and SDKs, as `rotor serve --provider aws|gcp|azure` does — so a demo
//! exercises the code that runs against the clouds, not only the simulator's own provider.
//!
//! Blue instances are created through the same providers before the Clusters are applied: the
//! fleet a platform team already runs, which the Cluster controller then adopts by name.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::ResourceExt;
use rotor_api::{Cluster, Provider};
use rotor_providers::{InstanceSpec, InstanceState, Located, Placement, idempotency_token};

/// A cloud the rehearsal can put Clusters on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cloud {
    Aws,
    Azure,
    Gcp,
}

impl Cloud {
    /// The name in `--clouds`, in the fleet's `rotor.dev/cloud` label and in reports.
    pub const fn as_str(self) -> &'static str {
        match self {
            Cloud::Aws => "aws",
            Cloud::Azure => "azure",
            Cloud::Gcp => "gcp",
        }
    }

    pub const fn provider(self) -> Provider {
        match self {
            Cloud::Aws => Provider::Aws,
            Cloud::Azure => Provider::Azure,
            Cloud::Gcp => Provider::Gcp,
        }
    }

    /// `aws,gcp` → the clouds, each once, in the order given.
    pub fn parse_list(list: &str) -> anyhow::Result<Vec<Cloud>> {
        let mut clouds = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let cloud = match name {
                "aws" => Cloud::Aws,
                "gcp" => Cloud::Gcp,
                "azure" => Cloud::Azure,
                other => anyhow::bail!(
                    "--clouds: unknown cloud {other:?} (aws, azure, gcp; or sim alone)"
                ),
            };
            if !clouds.contains(&cloud) {
                clouds.push(cloud);
            }
        }
        anyhow::ensure!(!clouds.is_empty(), "--clouds: name at least one cloud");
        Ok(clouds)
    }
}

/// The simulator's AWS account (the EKS provider acts in its own account).
const AWS_ACCOUNT: &str = rotor_sim::AWS_DEFAULT_ACCOUNT;
/// The GCP project of the rehearsal's GKE clusters.
pub(super) const GCP_PROJECT: &str = "rotor-rehearsal";
/// The access token the GKE provider presents to the simulator (which has no IAM).
pub(super) const GCP_TOKEN: &str = "ya29.rotor-rehearsal";
/// The Azure subscription of the rehearsal's AKS clusters.
pub(super) const AZURE_SUBSCRIPTION: &str = "7c3f9a52-0d4e-4b8a-9f61-2e5d8c1b0a47";
/// Their resource group.
pub(super) const AZURE_RESOURCE_GROUP: &str = "rotor-rehearsal";
/// The access token the AKS provider presents to the simulator.
const AZURE_TOKEN: &str = "eyJ.rotor-rehearsal";

/// Puts `cluster` on `cloud`: its provider, account, and the `spec.config` the provider needs.
pub(super) fn place(cluster: &mut Cluster, cloud: Cloud) {
    let spec = &mut cluster.spec;
    spec.provider = cloud.provider();
    spec.config.clear();
    match cloud {
        Cloud::Aws => {
            spec.account = AWS_ACCOUNT.into();
            let role = |name: &str| format!("arn:aws:iam::{AWS_ACCOUNT}:role/{name}");
            spec.config.insert("roleArn".into(), role("eks-cluster"));
            spec.config.insert("nodeRoleArn".into(), role("eks-nodes"));
            spec.config
                .insert("subnetIds".into(), "subnet-a,subnet-b".into());
            for pool in &mut spec.node_pools {
                pool.instance_type = "m7i.large".into();
            }
        }
        Cloud::Gcp => {
            spec.account = GCP_PROJECT.into();
            for pool in &mut spec.node_pools {
                pool.instance_type = "e2-standard-4".into();
            }
        }
        Cloud::Azure => {
            spec.account = AZURE_SUBSCRIPTION.into();
            spec.config
                .insert("resourceGroup".into(), AZURE_RESOURCE_GROUP.into());
            for pool in &mut spec.node_pools {
                pool.instance_type = "Standard_D4s_v5".into();
            }
        }
    }
}

/// The real providers of `clouds`, reaching the simulator at `sim_url`; members' APIs are
/// reached with tokens minted from the providers' own cloud credentials.
pub(super) async fn providers(
    sim_url: &str,
    clouds: &[Cloud],
) -> anyhow::Result<Vec<(Provider, Arc<dyn rotor_providers::Provider>)>> {
    let mut out: Vec<(Provider, Arc<dyn rotor_providers::Provider>)> = Vec::new();
    for cloud in clouds {
        let provider: Arc<dyn rotor_providers::Provider> = match cloud {
            Cloud::Aws => {
                let config = rotor_aws::sdk_config(&aws_options(sim_url)).await;
                Arc::new(
                    rotor_providers::eks::EksProvider::new(
                        &config,
                        rotor_providers::eks::Accounts::Own,
                    )
                    .with_cluster_credentials(rotor_providers::eks::ClusterCredentials::Token),
                )
            }
            Cloud::Gcp => Arc::new(
                rotor_providers::gke::GkeProvider::new(rotor_providers::gke::GkeOptions {
                    endpoint: Some(format!("{sim_url}/gcp")),
                    credentials: Some(rotor_providers::gke::static_token(GCP_TOKEN)),
                })
                .await
                .map_err(|e| anyhow::anyhow!("GKE provider: {e}"))?
                .with_cluster_credentials(rotor_providers::gke::ClusterCredentials::Token),
            ),
            Cloud::Azure => Arc::new(
                rotor_providers::aks::AksProvider::new(azure_options(sim_url))
                    .map_err(|e| anyhow::anyhow!("AKS provider: {e}"))?,
            ),
        };
        out.push((cloud.provider(), provider));
    }
    Ok(out)
}

/// The simulator's AWS front as the SDK reaches it, with the rehearsal's static keys.
pub(super) fn aws_options(sim_url: &str) -> rotor_aws::AwsOptions {
    rotor_aws::AwsOptions {
        endpoint_url: Some(format!("{sim_url}/aws")),
        region: Some(rotor_aws::DEFAULT_REGION.into()),
        static_credentials: Some(("rotor-rehearsal".into(), "rotor-rehearsal".into())),
    }
}

/// Resource Manager as the simulator serves it, with the rehearsal's token.
pub(super) fn azure_options(sim_url: &str) -> rotor_azure::AzureOptions {
    rotor_azure::AzureOptions {
        endpoint: Some(format!("{sim_url}/azure")),
        credential: Some(rotor_azure::credentials::static_token(AZURE_TOKEN)),
    }
}

/// Blues created at once, at most: the fleet's creates overlap as a cloud's API allows.
const CREATES_AT_ONCE: usize = 32;

/// Creates every Cluster's blue instance (named as the Cluster) through its provider and waits
/// until all run, within `limit`.
pub(super) async fn create_blues(
    fleet: &[Cluster],
    providers: &[(Provider, Arc<dyn rotor_providers::Provider>)],
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    // Collected first: a lazy iterator's closure over references would make the rehearsal's
    // future non-`Send` (a higher-ranked lifetime the compiler cannot prove general).
    let mut creates = Vec::new();
    for c in fleet {
        if let Some((_, provider)) = providers.iter().find(|(p, _)| *p == c.spec.provider) {
            creates.push(create_blue(c, provider.as_ref(), deadline));
        }
    }
    let mut results = futures::stream::iter(creates).buffer_unordered(CREATES_AT_ONCE);
    while let Some(result) = results.next().await {
        result?;
    }
    Ok(())
}

/// One Cluster's blue, created until it runs (a cloud converges it over several calls).
async fn create_blue(
    cluster: &Cluster,
    provider: &dyn rotor_providers::Provider,
    deadline: Instant,
) -> anyhow::Result<()> {
    let name = cluster.name_any();
    let placement = Placement {
        account: cluster.spec.account.clone(),
        region: cluster.spec.region.clone(),
    };
    let spec = InstanceSpec {
        cluster: name.clone(),
        name: name.clone(),
        kubernetes_version: cluster.spec.kubernetes_version.clone(),
        idempotency_token: idempotency_token(&name, "blue", 0),
        node_pools: cluster.spec.node_pools.iter().map(pool_spec).collect(),
        config: cluster.spec.config.clone(),
    };
    let located = Located::new(provider, placement);
    loop {
        match located.create_instance(&spec).await {
            Ok(i) if i.state == InstanceState::Running => return Ok(()),
            Ok(i) if i.state == InstanceState::Failed => {
                anyhow::bail!("blue {name}: the cloud failed it: {}", i.message)
            }
            Ok(_) => {}
            Err(e) if e.is_retryable() => {}
            Err(e) => anyhow::bail!("blue {name}: {e}"),
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "blue {name} is not running in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn pool_spec(pool: &rotor_api::NodePool) -> rotor_providers::NodePoolSpec {
    rotor_providers::NodePoolSpec {
        name: pool.name.clone(),
        instance_type: pool.instance_type.clone(),
        min_count: pool.min_count,
        max_count: pool.max_count,
        desired_count: pool.desired_count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_lists_parse_once_each_and_name_what_is_wrong() {
        assert_eq!(
            Cloud::parse_list("gcp, aws,gcp,azure").unwrap(),
            [Cloud::Gcp, Cloud::Aws, Cloud::Azure]
        );
        let unknown = Cloud::parse_list("aws,ibm").unwrap_err().to_string();
        assert!(unknown.contains("\"ibm\""), "{unknown}");
        assert!(Cloud::parse_list(" , ").is_err());
    }

    #[test]
    fn a_placed_cluster_carries_what_its_provider_needs() {
        let mut c = rotor_api::sample_fleet(1).remove(0);
        place(&mut c, Cloud::Aws);
        assert_eq!(c.spec.provider, Provider::Aws);
        assert_eq!(c.spec.account, AWS_ACCOUNT);
        for key in ["roleArn", "nodeRoleArn", "subnetIds"] {
            assert!(c.spec.config.contains_key(key), "{key}");
        }
        assert!(!c.spec.config.contains_key("simCloud"));
        place(&mut c, Cloud::Gcp);
        assert_eq!(c.spec.provider, Provider::Gcp);
        assert_eq!(c.spec.account, GCP_PROJECT);
        assert!(c.spec.config.is_empty());
        place(&mut c, Cloud::Azure);
        assert_eq!(c.spec.provider, Provider::Azure);
        assert_eq!(c.spec.config["resourceGroup"], AZURE_RESOURCE_GROUP);
    }
}
