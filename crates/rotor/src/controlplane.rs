//! The control plane's API: rotor's Kubernetes API over a store, with rotor's CRDs registered.
//! Shared by `rotor serve`, `rotor demo` and the tests.

use std::path::Path;
use std::sync::Arc;

use rotor_apiserver::{ApiServer, ServerConfig, WriteOptions};
use rotor_store::DynStore;

use crate::etcd_flags::EtcdFlags;

/// `SOCKET,config=PATH[,log=ADDR]`: a shifter on HAProxy's runtime socket, once its
/// configuration at PATH passed rotor's check; with `log=ADDR`, rotor listens there (UDP) for
/// HAProxy's per-request log lines (`log_lines` in rotor-traffic), which the latency gate reads.
async fn haproxy_shifter(
    spec: &str,
) -> anyhow::Result<(
    rotor_traffic::haproxy::HaproxyShifter,
    Option<rotor_traffic::haproxy::LatencyLog>,
)> {
    let mut parts = spec.split(',');
    let socket = parts.next().unwrap_or_default();
    let (mut config, mut log) = (None, None);
    for part in parts {
        match part.split_once('=') {
            Some(("config", path)) => config = Some(Path::new(path)),
            Some(("log", addr)) => {
                let addr: std::net::SocketAddr = addr
                    .parse()
                    .map_err(|e| anyhow::anyhow!("log={addr:?} is not an address: {e}"))?;
                log = Some(rotor_traffic::haproxy::LatencyLog::bind(addr).await?);
            }
            _ => anyhow::bail!("{part:?}: expected config=PATH or log=ADDR"),
        }
    }
    let Some(config) = config else {
        anyhow::bail!(
            "expected haproxy:SOCKET,config=PATH — rotor reads HAProxy's configuration to check \
             it keeps zero downtime"
        );
    };
    let mut shifter = rotor_traffic::haproxy::HaproxyShifter::new(socket);
    shifter.check(config).await?;
    if let Some(log) = &log {
        shifter = shifter.with_latencies(log.book());
    }
    Ok((shifter, log))
}

/// Opens the store named by `--store`; an etcd one over plain HTTP.
pub async fn open_store(spec: &str) -> anyhow::Result<DynStore> {
    open_store_with(spec, &EtcdFlags::default()).await
}

/// Opens the store named by `--store`, an etcd one with `etcd`'s TLS settings (`https://`
/// endpoints need `--etcd-cafile`).
pub async fn open_store_with(spec: &str, etcd: &EtcdFlags) -> anyhow::Result<DynStore> {
    if spec == "memory" {
        return Ok(Arc::new(rotor_store::memory::MemoryStore::default()));
    }
    if let Some(path) = spec.strip_prefix("sqlite:") {
        let store = rotor_store::sqlite::SqliteStore::open(Path::new(path))
            .map_err(|e| anyhow::anyhow!("opening SQLite store {path}: {e}"))?;
        return Ok(Arc::new(store));
    }
    if let Some(urls) = spec.strip_prefix("etcd:") {
        return Ok(Arc::new(open_etcd(spec, urls, etcd).await?));
    }
    anyhow::bail!("--store {spec:?}: expected sqlite:PATH, etcd:URL[,URL…] or memory")
}

/// The etcd store at `urls`, its history compacted on kube-apiserver's schedule. A failed
/// connection names the TLS files it was tried with.
async fn open_etcd(
    spec: &str,
    urls: &str,
    etcd: &EtcdFlags,
) -> anyhow::Result<rotor_store::etcd::EtcdStore> {
    let endpoints: Vec<String> = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(String::from)
        .collect();
    let tls = etcd
        .settings(&endpoints)
        .map_err(|e| anyhow::anyhow!("--store {spec:?}: {e}"))?;
    let prefix = rotor_store::etcd::DEFAULT_PREFIX;
    let store = rotor_store::etcd::EtcdStore::connect_with(&endpoints, prefix, tls.as_ref())
        .await
        .map_err(|e| {
            let over = tls.as_ref().and(etcd.describe());
            let over = over.map(|t| format!(" ({t})")).unwrap_or_default();
            anyhow::anyhow!("opening etcd store {urls}{over}: {e}")
        })?;
    store.spawn_compactor(rotor_store::etcd::COMPACTION_INTERVAL);
    Ok(store)
}

/// Who a control plane lets in when only its admin token may: no anonymous requests, no other
/// users (the in-process control planes of `rotor demo`, the benches and the tests).
pub fn admin_only(token: String) -> ServerConfig {
    ServerConfig {
        token: Some(token),
        anonymous_auth: false,
        ..ServerConfig::default()
    }
}

/// Starts a control-plane API server over `store` with rotor's CRDs registered, rotor's roles
/// and `operate` verb (`policy.rs`) and a Rollout's plan in the replies to dry-run writes,
/// letting in whom `access` says (its credentials, anonymous access, `allowed_hosts`).
pub async fn control_plane(
    store: DynStore,
    access: ServerConfig,
) -> anyhow::Result<Arc<ApiServer>> {
    let plan = Arc::new(crate::dry_run_plan::RolloutPlan::default());
    let access = ServerConfig {
        dry_run_hook: Some(plan.clone()),
        policy: Some(Arc::new(crate::policy::shipped())),
        ..access
    };
    let server = ApiServer::new(store, access).await?;
    plan.attach(&server);
    let crds = server.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")?;
    let opts = WriteOptions {
        field_manager: "rotor".into(),
        ..WriteOptions::default()
    };
    for crd in rotor_api::crds() {
        let obj = serde_json::to_value(&crd)?;
        let name = crd.metadata.name.clone().unwrap_or_default();
        match server.create(&crds, None, obj.clone(), &opts).await {
            Ok(_) => {}
            Err(e) if e.reason == "AlreadyExists" => {
                // Keep the stored CRD in step with this binary's schema.
                let mut obj = obj;
                obj["metadata"]["resourceVersion"] = serde_json::Value::Null;
                server
                    .update(&crds, None, &name, obj, None, &opts)
                    .await
                    .map_err(|e| anyhow::anyhow!("updating CRD {name}: {e}"))?;
            }
            Err(e) => anyhow::bail!("registering CRD {name}: {e}"),
        }
    }
    Ok(server)
}

/// Is `listen` a loopback address (where plain HTTP without credentials is tolerated)?
pub fn is_loopback(listen: &str) -> bool {
    listen
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback())
        || listen.starts_with("localhost:")
}

/// Where the controllers reach clouds and traffic layers: `--provider` and `--traffic` flags.
#[derive(Clone, Debug, Default)]
pub struct Wiring {
    /// `sim:URL` — the simulated cloud of a `rotor sim` at URL; `aws` — EKS in each Cluster's
    /// region, with the AWS SDK's default credential chain; `gcp` — GKE in each Cluster's
    /// project and location, with Google's application default credentials; `azure` — AKS in
    /// each Cluster's subscription and location, with rotor's Azure credential chain.
    pub providers: Vec<String>,
    /// `sim:LISTEN` (an embedded weighted router serving on LISTEN), `haproxy:SOCKET,config=PATH`
    /// (an HAProxy's admin runtime socket and its haproxy.cfg, checked at start), `route53:ZONE_ID`
    /// (weighted records in that zone), `clouddns:PROJECT/MANAGED_ZONE` or
    /// `trafficmanager:SUBSCRIPTION/RESOURCE_GROUP[/PROFILE]`.
    pub traffic: Vec<String>,
    /// Every AWS API at this URL instead of AWS's (a moto, a VPC endpoint).
    pub aws_endpoint_url: Option<String>,
    /// The role to assume in each Cluster's AWS account (`{account}` stands for its id); None:
    /// rotor's own credentials, for Clusters of their account only.
    pub aws_role_arn_template: Option<String>,
    /// How the controllers authenticate to EKS clusters' APIs.
    pub eks_credentials: rotor_providers::ClusterCredentials,
    /// TTL of the Route 53 records rotor writes: how long resolvers may keep a weight.
    pub route53_ttl_seconds: i64,
    /// How long Route 53 takes to serve a change from all its name servers.
    pub route53_propagation: std::time::Duration,
    /// Every Google Cloud API at this URL instead of Google's (`rotor sim`'s `/gcp`).
    pub gcp_endpoint_url: Option<String>,
    /// A file holding the access token rotor presents to Google, read at every call; None:
    /// application default credentials.
    pub gcp_access_token_file: Option<std::path::PathBuf>,
    /// How the controllers authenticate to GKE clusters' APIs.
    pub gke_credentials: rotor_providers::ClusterCredentials,
    /// Azure Resource Manager at this URL instead of Azure's (`rotor sim`'s `/azure`).
    pub azure_endpoint_url: Option<String>,
    /// A file holding the access token rotor presents to Azure, read whenever one is needed;
    /// None: rotor's credential chain.
    pub azure_access_token_file: Option<std::path::PathBuf>,
    /// How the controllers authenticate to AKS clusters with Azure AD.
    pub aks_credentials: rotor_providers::ClusterCredentials,
    /// TTL of the Cloud DNS records rotor writes.
    pub clouddns_ttl: std::time::Duration,
    /// How long Cloud DNS takes to serve a change from all its name servers.
    pub clouddns_propagation: std::time::Duration,
    /// How long Traffic Manager takes to serve a change from all its name servers.
    pub trafficmanager_propagation: std::time::Duration,
}

/// `rotor serve --prometheus-url`, checked as a gate's own `prometheus.url` is: the Prometheus
/// metric gates ask when they name none. An error names the flag (never the credentials).
pub fn prometheus_url(url: Option<String>) -> anyhow::Result<Option<String>> {
    if let Some(problem) = url
        .as_deref()
        .and_then(rotor_api::metric_gate::prometheus_url_problem)
    {
        anyhow::bail!("--prometheus-url: {problem}");
    }
    Ok(url)
}

/// The AWS SDK configuration, loaded on first use only (no AWS flag, no credential lookup).
struct Aws<'w> {
    wiring: &'w Wiring,
    config: Option<rotor_aws::SdkConfig>,
}

impl Aws<'_> {
    async fn config(&mut self) -> &rotor_aws::SdkConfig {
        if self.config.is_none() {
            let options = rotor_aws::AwsOptions {
                endpoint_url: self.wiring.aws_endpoint_url.clone(),
                ..Default::default()
            };
            self.config = Some(rotor_aws::sdk_config(&options).await);
        }
        self.config.as_ref().expect("loaded above")
    }
}

/// Where and as whom rotor reaches Google Cloud.
fn gke_options(wiring: &Wiring) -> rotor_providers::gke::GkeOptions {
    rotor_providers::gke::GkeOptions {
        endpoint: wiring.gcp_endpoint_url.clone(),
        credentials: wiring
            .gcp_access_token_file
            .as_ref()
            .map(rotor_providers::gke::token_file),
    }
}

/// Cloud DNS as `--gcp-*` and `--clouddns-*` say.
fn clouddns_options(wiring: &Wiring) -> rotor_traffic::clouddns::CloudDnsOptions {
    let gke = gke_options(wiring);
    rotor_traffic::clouddns::CloudDnsOptions {
        endpoint: gke.endpoint,
        credentials: gke.credentials,
        ttl: wiring.clouddns_ttl,
        propagation: wiring.clouddns_propagation,
        ..Default::default()
    }
}

/// Where and as whom rotor reaches Azure Resource Manager (`--azure-*`).
fn azure_options(wiring: &Wiring) -> rotor_azure::AzureOptions {
    rotor_azure::AzureOptions {
        endpoint: wiring.azure_endpoint_url.clone(),
        credential: wiring
            .azure_access_token_file
            .as_ref()
            .map(rotor_azure::credentials::token_file),
    }
}

/// The running traffic layers a [`Wiring`] started (the embedded sim router, an HAProxy log
/// listener), kept for as long as the controllers run.
pub struct TrafficLayers {
    pub sim: Option<(
        rotor_traffic::sim::SimShifter,
        rotor_traffic::sim::SimServer,
    )>,
    /// Where an operator's HAProxy logs each request to rotor (`log=ADDR`).
    pub haproxy_log: Option<rotor_traffic::haproxy::LatencyLog>,
}

/// Builds the controllers' context for the API holding rotor's objects, reached with `client`
/// (rotor's own control plane, or any Kubernetes API with rotor's CRDs).
pub async fn controller_context(
    client: kube::Client,
    wiring: &Wiring,
    settings: rotor_controllers::Settings,
) -> anyhow::Result<(rotor_controllers::Context, TrafficLayers)> {
    use rotor_api::{Provider, ShifterKind};
    let mut ctx = rotor_controllers::Context::new(client, settings)
        .with_discovery(rotor_discovery::Discovery::new(Default::default()));
    let mut aws = Aws {
        wiring,
        config: None,
    };
    for p in &wiring.providers {
        match p.split_once(':') {
            Some(("sim", url)) => {
                ctx = ctx.with_provider(
                    Provider::Sim,
                    Arc::new(rotor_providers::sim::SimProvider::new(url)),
                );
            }
            None if p == "aws" => {
                let accounts = match &wiring.aws_role_arn_template {
                    Some(t) if t.contains("{account}") => {
                        rotor_providers::eks::Accounts::AssumeRole(t.clone())
                    }
                    Some(t) => anyhow::bail!(
                        "--aws-role-arn-template {t:?}: it must contain {{account}} \
                         (arn:aws:iam::{{account}}:role/NAME)"
                    ),
                    None => rotor_providers::eks::Accounts::Own,
                };
                let eks = rotor_providers::eks::EksProvider::new(aws.config().await, accounts)
                    .with_cluster_credentials(wiring.eks_credentials);
                ctx = ctx.with_provider(Provider::Aws, Arc::new(eks));
            }
            None if p == "gcp" => {
                let gke = rotor_providers::gke::GkeProvider::new(gke_options(wiring))
                    .await
                    .map_err(|e| anyhow::anyhow!("--provider gcp: {e}"))?
                    .with_cluster_credentials(wiring.gke_credentials);
                ctx = ctx.with_provider(Provider::Gcp, Arc::new(gke));
            }
            None if p == "azure" => {
                let aks = rotor_providers::aks::AksProvider::new(azure_options(wiring))
                    .map_err(|e| anyhow::anyhow!("--provider azure: {e}"))?
                    .with_cluster_credentials(wiring.aks_credentials);
                ctx = ctx.with_provider(Provider::Azure, Arc::new(aks));
            }
            _ => anyhow::bail!("--provider {p:?}: expected sim:URL, aws, gcp or azure"),
        }
    }
    let mut layers = TrafficLayers {
        sim: None,
        haproxy_log: None,
    };
    for t in &wiring.traffic {
        match t.split_once(':') {
            Some(("sim", listen)) => {
                let addr: std::net::SocketAddr = listen.parse().map_err(|e| {
                    anyhow::anyhow!("--traffic {t:?}: {listen:?} is not an address: {e}")
                })?;
                let shifter = rotor_traffic::sim::SimShifter::new();
                let server = shifter.serve(addr).await?;
                ctx = ctx.with_shifter(ShifterKind::Sim, Arc::new(shifter.clone()));
                layers.sim = Some((shifter, server));
            }
            Some(("haproxy", spec)) => {
                let (shifter, log) = haproxy_shifter(spec)
                    .await
                    .map_err(|e| anyhow::anyhow!("--traffic {t:?}: {e}"))?;
                ctx = ctx.with_shifter(ShifterKind::Haproxy, Arc::new(shifter));
                layers.haproxy_log = log;
            }
            Some(("route53", zone)) if !zone.is_empty() => {
                let shifter = rotor_traffic::route53::Route53Shifter::new(
                    aws.config().await,
                    zone,
                    wiring.route53_ttl_seconds,
                )
                .with_propagation(wiring.route53_propagation);
                ctx = ctx.with_shifter(ShifterKind::Route53, Arc::new(shifter));
            }
            Some(("clouddns", zone)) => {
                let shifter =
                    rotor_traffic::clouddns::CloudDnsShifter::new(zone, clouddns_options(wiring))
                        .await
                        .map_err(|e| anyhow::anyhow!("--traffic {t:?}: {e}"))?;
                ctx = ctx.with_shifter(ShifterKind::CloudDns, Arc::new(shifter));
            }
            Some(("trafficmanager", profile)) => {
                let options = rotor_traffic::trafficmanager::TrafficManagerOptions {
                    azure: azure_options(wiring),
                    propagation: wiring.trafficmanager_propagation,
                };
                let shifter =
                    rotor_traffic::trafficmanager::TrafficManagerShifter::new(profile, options)
                        .await
                        .map_err(|e| anyhow::anyhow!("--traffic {t:?}: {e}"))?;
                ctx = ctx.with_shifter(ShifterKind::TrafficManager, Arc::new(shifter));
            }
            _ => anyhow::bail!(
                "--traffic {t:?}: expected sim:LISTEN, haproxy:SOCKET,config=PATH[,log=ADDR], \
                 route53:ZONE_ID, clouddns:PROJECT/MANAGED_ZONE or \
                 trafficmanager:SUBSCRIPTION/RESOURCE_GROUP[/PROFILE]"
            ),
        }
    }
    Ok((ctx, layers))
}
