//! The controllers' flags, shared by `rotor serve` (controllers in-process) and `rotor
//! controllers` (against another Kubernetes API): where clouds and traffic layers are, how the
//! controllers reach members, and their timings. One struct, flattened into both commands.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use rotor::controlplane::{TrafficLayers, Wiring};
use rotor_controllers::leader::Election;

#[derive(Args)]
pub struct ControllerFlags {
    /// A cloud for the controllers: `sim:URL` (the simulated cloud of `rotor sim`), `aws`
    /// (EKS in each Cluster's region; credentials from the AWS SDK's default chain) or `gcp`
    /// (GKE in each Cluster's project and location; Google's application default credentials
    /// unless `--gcp-access-token-file`) or `azure` (AKS in each Cluster's subscription and
    /// location; workload identity, a service principal from `AZURE_*`, managed identity or
    /// the Azure CLI, unless `--azure-access-token-file`). Repeatable.
    #[arg(long = "provider")]
    pub providers: Vec<String>,
    /// A traffic layer for the controllers: `haproxy:SOCKET,config=PATH` (HAProxy's admin
    /// runtime socket and its haproxy.cfg: rotor refuses to start, naming the setting, when
    /// the config lacks what zero downtime relies on),
    /// `route53:ZONE_ID` (weighted records in that hosted zone), `clouddns:PROJECT/MANAGED_ZONE`
    /// (a weighted round-robin record set in that Cloud DNS zone; Google credentials as for
    /// `--provider gcp`), `trafficmanager:SUBSCRIPTION/RESOURCE_GROUP/PROFILE` (weighted
    /// external endpoints in that Traffic Manager profile, which must exist and route by
    /// weight: rotor refuses to start otherwise; Azure endpoint and credentials as for
    /// `--provider azure`), `trafficmanager:SUBSCRIPTION/RESOURCE_GROUP` (each Cluster's
    /// endpoint a profile of that resource group named as the endpoint: a DNS name per
    /// Cluster; each is checked at its first shift) or `sim:LISTEN` (an embedded weighted
    /// router). Repeatable.
    #[arg(long = "traffic")]
    pub traffic: Vec<String>,
    /// Every AWS API (EKS, Route 53) at this URL instead of AWS's: a moto, a VPC endpoint.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub aws_endpoint_url: Option<String>,
    /// Every Google Cloud API (GKE) at this URL instead of Google's: `rotor sim`'s
    /// `http://HOST:PORT/gcp`, a private endpoint.
    #[arg(long)]
    pub gcp_endpoint_url: Option<String>,
    /// A file holding an OAuth access token for Google Cloud, read at every call (so a
    /// process that refreshes it in place keeps rotor authenticated), as gcloud's
    /// `--access-token-file`. Without it: application default credentials
    /// (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's ADC file, the metadata server).
    #[arg(long)]
    pub gcp_access_token_file: Option<PathBuf>,
    /// How the controllers authenticate to GKE clusters' APIs: `token` (an access token from
    /// rotor's own Google credentials; nothing to install) or `exec` (`gke-gcloud-auth-plugin`,
    /// which must be on PATH).
    #[arg(long, default_value = "token", value_parser = ["token", "exec"])]
    pub gke_credentials: String,
    /// Azure Resource Manager (AKS, Traffic Manager) at this URL instead of Azure's: `rotor sim`'s
    /// `http://HOST:PORT/azure`. Plain http only to a loopback address.
    #[arg(long)]
    pub azure_endpoint_url: Option<String>,
    /// A file holding an access token for Azure Resource Manager, read whenever one is needed
    /// (as `az account get-access-token` prints it). Without it: rotor's credential chain.
    #[arg(long)]
    pub azure_access_token_file: Option<PathBuf>,
    /// How the controllers authenticate to the APIs of AKS clusters with Azure AD: `token` (an
    /// Azure AD token for AKS's server application from rotor's own Azure credential; nothing
    /// to install) or `exec` (`kubelogin`, as AKS names it, which must be on PATH). Clusters
    /// with local accounts use the token AKS hands out either way.
    #[arg(long, default_value = "token", value_parser = ["token", "exec"])]
    pub aks_credentials: String,
    /// The IAM role rotor assumes in each Cluster's AWS account, `{account}` standing for the
    /// account id (`arn:aws:iam::{account}:role/rotor`). Without it rotor acts with its own
    /// credentials and refuses Clusters of any other account.
    #[arg(long)]
    pub aws_role_arn_template: Option<String>,
    /// How the controllers authenticate to EKS clusters' APIs: `token` (minted from rotor's
    /// own AWS credentials, as `aws eks get-token` does; nothing else to install) or `exec`
    /// (run `aws eks get-token`, which must be on PATH).
    #[arg(long, default_value = "token", value_parser = ["token", "exec"])]
    pub eks_credentials: String,
    /// TTL of the Route 53 records rotor writes. Resolvers keep a weight this long, so it
    /// bounds how fast a DNS rollback reaches clients.
    #[arg(long, default_value_t = rotor_traffic::route53::DEFAULT_TTL_SECONDS)]
    pub route53_ttl_seconds: i64,
    /// Seconds Route 53 may take to serve a change from all its name servers. With the TTL it
    /// is how long an instance that lost its traffic is kept before it is deleted.
    #[arg(long, default_value_t = rotor_traffic::route53::DEFAULT_PROPAGATION.as_secs())]
    pub route53_propagation_seconds: u64,
    /// TTL of the Cloud DNS records rotor writes (as `--route53-ttl-seconds`).
    #[arg(long, default_value_t = rotor_traffic::clouddns::DEFAULT_TTL.as_secs())]
    pub clouddns_ttl_seconds: u64,
    /// Seconds Cloud DNS may take to serve a change from all its name servers (as
    /// `--route53-propagation-seconds`).
    #[arg(long, default_value_t = rotor_traffic::clouddns::DEFAULT_PROPAGATION.as_secs())]
    pub clouddns_propagation_seconds: u64,
    /// Seconds Traffic Manager may take to serve a change from all its name servers (as
    /// `--route53-propagation-seconds`); the TTL is the profile's own (`dnsConfig.ttl`).
    #[arg(long, default_value_t = rotor_traffic::trafficmanager::DEFAULT_PROPAGATION.as_secs())]
    pub trafficmanager_propagation_seconds: u64,
    /// The Prometheus (base URL of its HTTP API) that metric gates ask when they name none.
    #[arg(long)]
    pub prometheus_url: Option<String>,
    /// The controllers run only while this process holds the Lease `rotor-controllers`: of
    /// several processes (`rotor controllers` replicas; `rotor serve` on one etcd), one leads.
    /// Seconds a lease holds without renewal (the longest the controllers stand still after
    /// their leader dies).
    #[arg(long, default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// After SIGTERM or SIGINT, the process exits within this: running reconciles get most of
    /// it, then the lease is released and open connections (watches) are ended.
    #[arg(long, default_value_t = 10)]
    pub shutdown_grace_seconds: u64,
    /// Once green carries all traffic, seconds blue's open sessions may take to end before
    /// blue is retained anyway (a Warning names how many were left). Longer than the slowest
    /// request the services behind rotor answer; long-lived streams reach it and end when
    /// blue's workloads stop.
    #[arg(long, default_value_t = rotor_controllers::Settings::default().drain_timeout.as_secs())]
    pub drain_timeout_seconds: u64,
}

impl ControllerFlags {
    /// After SIGTERM or SIGINT, the whole process ends within this.
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds.max(1))
    }

    /// Where the controllers reach clouds and traffic layers.
    pub fn wiring(&self) -> Wiring {
        Wiring {
            providers: self.providers.clone(),
            traffic: self.traffic.clone(),
            aws_endpoint_url: self.aws_endpoint_url.clone(),
            aws_role_arn_template: self.aws_role_arn_template.clone(),
            eks_credentials: cluster_credentials(&self.eks_credentials),
            route53_ttl_seconds: self.route53_ttl_seconds,
            route53_propagation: Duration::from_secs(self.route53_propagation_seconds),
            gcp_endpoint_url: self.gcp_endpoint_url.clone(),
            gcp_access_token_file: self.gcp_access_token_file.clone(),
            gke_credentials: cluster_credentials(&self.gke_credentials),
            azure_endpoint_url: self.azure_endpoint_url.clone(),
            azure_access_token_file: self.azure_access_token_file.clone(),
            aks_credentials: cluster_credentials(&self.aks_credentials),
            clouddns_ttl: Duration::from_secs(self.clouddns_ttl_seconds),
            clouddns_propagation: Duration::from_secs(self.clouddns_propagation_seconds),
            trafficmanager_propagation: Duration::from_secs(
                self.trafficmanager_propagation_seconds,
            ),
        }
    }

    /// The controllers' context on `client` (the API holding rotor's objects), reporting to
    /// `metrics`; the traffic layers it started live as long as the returned handle.
    pub async fn context(
        &self,
        client: kube::Client,
        metrics: Arc<rotor_controllers::metrics::Metrics>,
    ) -> anyhow::Result<(Arc<rotor_controllers::Context>, TrafficLayers)> {
        let settings = rotor_controllers::Settings {
            // Reconciles get 3/5 of the grace; the lease release and the server the rest.
            shutdown_grace: self.grace() * 3 / 5,
            drain_timeout: Duration::from_secs(self.drain_timeout_seconds),
            ..Default::default()
        };
        let prometheus = rotor::controlplane::prometheus_url(self.prometheus_url.clone())?;
        let (ctx, layers) =
            rotor::controlplane::controller_context(client, &self.wiring(), settings).await?;
        let mut ctx = ctx.with_prometheus(prometheus);
        ctx.metrics = metrics;
        if let Some((_, sim)) = &layers.sim {
            eprintln!(
                "embedded traffic router on http://{}/<endpoint>/",
                sim.local_addr()
            );
        }
        Ok((Arc::new(ctx), layers))
    }

    /// This process's candidacy for the Lease `namespace/rotor-controllers`: renewed a third
    /// of the lease before it runs out.
    pub fn election(&self, namespace: &str) -> Election {
        let mut election = Election::new(Election::process_identity(), namespace);
        election.lease_duration = Duration::from_secs(self.lease_duration_seconds.max(2));
        election.grace = (election.lease_duration / 3).max(Duration::from_secs(1));
        eprintln!(
            "controllers run while {} holds Lease {namespace}/{}",
            election.identity,
            rotor_controllers::leader::LEASE_NAME
        );
        election
    }
}

/// `exec` or `token` (clap allows only these) of `--eks-credentials`, `--gke-credentials`,
/// `--aks-credentials`.
fn cluster_credentials(flag: &str) -> rotor_providers::ClusterCredentials {
    match flag {
        "exec" => rotor_providers::ClusterCredentials::Exec,
        _ => rotor_providers::ClusterCredentials::Token,
    }
}
