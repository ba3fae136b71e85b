//! `rotor serve`: the control plane's API over SQLite, etcd (or memory), with rotor's CRDs
//! registered at start, served over TLS, and its controllers.

use clap::Args;
use rotor::controlplane::{control_plane, open_store};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
pub struct ServeArgs {
    /// `sqlite:PATH` (durable, the default), `etcd:URL[,URL…]` (an etcd v3 cluster, keys under
    /// `/rotor`, shareable by several `rotor serve`, of which one runs the controllers: see
    /// `--lease-duration-seconds`) or `memory`.
    #[arg(long, default_value = "sqlite:rotor.db")]
    pub store: String,
    /// Address to serve the API on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: String,
    /// Where to write an admin kubeconfig (default: next to the SQLite file).
    #[arg(long)]
    pub kubeconfig_out: Option<PathBuf>,
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
    /// `--provider azure`) or `sim:LISTEN` (an embedded weighted router). Repeatable.
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
    /// A name clients reach this server by (repeatable), besides its IP addresses and
    /// localhost: requests addressed to any other `Host` are refused, so a web page whose name
    /// an attacker points at this server (DNS rebinding) cannot drive the API.
    #[arg(long = "allowed-host")]
    pub allowed_hosts: Vec<String>,
    /// The serving certificate (PEM; the certificates of its chain may follow it, and the
    /// kubeconfig rotor writes then trusts the last of them). Without it rotor serves with a
    /// certificate its own CA signs, made on first start and kept with the store.
    #[arg(long, requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// The private key of `--tls-cert-file` (PEM).
    #[arg(long, requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// Client certificates must chain to a CA in this file (PEM); their Common Name is the
    /// user, their Organizations its groups. Default: the rotor CA.
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    /// Users by bearer token, in kube-apiserver's format: lines `token,user,uid,"group1,group2"`.
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
    /// Let requests without credentials in as `system:anonymous`, which may read `/version`
    /// and health only. Without it they get 401.
    #[arg(long)]
    pub anonymous_auth: bool,
    /// Record every request in kube-apiserver's audit format (`audit.k8s.io/v1` Event JSON
    /// lines) in this file, readable by its owner only. Each `rotor serve` of a group sharing an
    /// etcd store writes its own.
    #[arg(long, alias = "audit-log-path")]
    pub audit_log: Option<PathBuf>,
    /// The audit policy (`audit.k8s.io/v1` Policy YAML): which requests are recorded at which
    /// level. Without it: Metadata for every request. Secrets are never recorded above
    /// Metadata, whatever it says.
    #[arg(long, alias = "audit-policy-file", requires = "audit_log")]
    pub audit_policy: Option<PathBuf>,
    /// Megabytes the audit log may reach before it is rotated (renamed with its time); 0:
    /// never rotated.
    #[arg(long, default_value_t = 100)]
    pub audit_log_maxsize: u64,
    /// Rotated audit logs kept (the oldest beyond are removed); 0: keep them all.
    #[arg(long, default_value_t = 10)]
    pub audit_log_maxbackup: usize,
    /// Serve plain HTTP instead of TLS, for development on a loopback address only (refused on
    /// any other): requests without credentials act as the admin there, since kubectl sends no
    /// token over plain HTTP.
    #[arg(long)]
    pub insecure_http: bool,
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
    /// Serve the API only; run no controllers.
    #[arg(long)]
    pub no_controllers: bool,
    /// With an etcd store the controllers run only while this process holds the Lease
    /// kube-system/rotor-controllers in its own API: of several `rotor serve` on one etcd, one
    /// leads. Seconds a lease holds without renewal (the longest the controllers stand still
    /// after their leader dies).
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

/// The token file beside a SQLite store: the admin credential survives restarts.
pub(super) fn token_path(store: &str) -> Option<PathBuf> {
    store
        .strip_prefix("sqlite:")
        .map(|p| PathBuf::from(format!("{p}.token")))
}

fn load_or_create_token(store: &str) -> anyhow::Result<String> {
    let Some(path) = token_path(store) else {
        return Ok(rotor_sim::random_token());
    };
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_string();
        if !t.is_empty() {
            return Ok(t);
        }
    }
    let token = rotor_sim::random_token();
    rotor_sim::write_secret_file(&path, &token)?;
    Ok(token)
}

/// `/metrics`: the controllers' metrics in Prometheus text format, for users whose roles grant
/// `get` on the path (`rotor-viewer` and up; as kube-apiserver's `/metrics`, it is not public),
/// authenticated and authorized as every API request is.
async fn serve_metrics(
    server: &rotor_apiserver::ApiServer,
    metrics: &rotor_controllers::metrics::Metrics,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, _) = request.into_parts();
    if let Err(refused) = server.authorize_path(&parts).await {
        return refused.into_response();
    }
    let mut text = metrics.encode();
    if let Some(auditor) = &server.config().audit {
        // The audit counter belongs to the API server, which knows no Prometheus registry:
        // its family goes before the exposition's closing `# EOF`.
        let at = text.rfind("# EOF").unwrap_or(text.len());
        text.insert_str(at, &auditor.metrics_text());
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// The audit log of `--audit-log`, under `--audit-policy` (a bad policy stops the start, naming
/// the file and the field) or Metadata for everything.
fn auditor(
    args: &ServeArgs,
) -> anyhow::Result<Option<std::sync::Arc<rotor_apiserver::audit::Auditor>>> {
    use rotor_apiserver::audit::{Auditor, FileConfig, Policy};
    let Some(path) = &args.audit_log else {
        return Ok(None);
    };
    let policy = match &args.audit_policy {
        Some(file) => Policy::read(file)?,
        None => Policy::metadata_for_everything(),
    };
    let file = FileConfig {
        path: path.clone(),
        max_bytes: args.audit_log_maxsize.saturating_mul(1024 * 1024),
        max_backups: args.audit_log_maxbackup,
    };
    Ok(Some(Auditor::start(policy, file)?))
}

/// Where a shared store keeps the admin token, outside every resource's keys.
pub(super) const SHARED_TOKEN_KEY: &str = "/rotor-internal/admin-token";

/// The admin token of a store shared by several control planes (etcd): kept in the store, so
/// every `rotor serve` on it accepts the same credential (one kubeconfig behind a load balancer)
/// and `rotor kubeconfig` can print it. The first to start makes it; the others read it.
async fn shared_token(store: &rotor_store::DynStore) -> anyhow::Result<String> {
    let read = |kv: rotor_store::KeyValue| {
        String::from_utf8(kv.value.to_vec())
            .map(|t| t.trim().to_string())
            .map_err(|_| anyhow::anyhow!("the stored admin token is not text"))
    };
    if let Some(kv) = store.get(SHARED_TOKEN_KEY).await? {
        return read(kv);
    }
    let token = rotor_sim::random_token();
    match store.create(SHARED_TOKEN_KEY, token.clone().into()).await {
        Ok(_) => Ok(token),
        // Another control plane made it first.
        Err(rotor_store::StoreError::AlreadyExists(_)) => {
            match store.get(SHARED_TOKEN_KEY).await? {
                Some(kv) => read(kv),
                None => anyhow::bail!("the admin token vanished from the store"),
            }
        }
        Err(e) => Err(e.into()),
    }
}

async fn admin_token(spec: &str, store: &rotor_store::DynStore) -> anyhow::Result<String> {
    if spec.starts_with("etcd:") {
        shared_token(store).await
    } else {
        load_or_create_token(spec)
    }
}

/// Refuses plain HTTP anywhere but on loopback, where only this machine's users reach it.
fn check_insecure_http(args: &ServeArgs) -> anyhow::Result<()> {
    if args.insecure_http && !rotor::controlplane::is_loopback(&args.listen) {
        anyhow::bail!(
            "--insecure-http: plain HTTP is served only on a loopback address, and --listen {} \
             is not one; leave --insecure-http out to serve TLS",
            args.listen
        );
    }
    Ok(())
}

/// Whom the API lets in: the admin token, the token file's users, client certificates (checked
/// by the TLS layer), anonymous requests only with `--anonymous-auth`; with `--insecure-http`
/// (loopback only) credential-less requests act as the admin, as kubectl sends no token there.
fn access(args: &ServeArgs, token: &str) -> anyhow::Result<rotor_apiserver::ServerConfig> {
    let tokens = match &args.token_auth_file {
        Some(path) => Some(std::sync::Arc::new(rotor_apiserver::auth::TokenFile::read(
            path,
        )?)),
        None => None,
    };
    Ok(rotor_apiserver::ServerConfig {
        anonymous: args.insecure_http,
        anonymous_auth: args.anonymous_auth,
        tokens,
        allowed_hosts: Some(args.allowed_hosts.clone()),
        ..rotor::controlplane::admin_only(token.to_string())
    })
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    check_insecure_http(&args)?;
    let audit = auditor(&args)?;
    let store = open_store(&args.store).await?;
    let token = admin_token(&args.store, &store).await?;
    let access = rotor_apiserver::ServerConfig {
        audit: audit.clone(),
        ..access(&args, &token)?
    };
    let server = control_plane(store.clone(), access).await?;
    let (listener, addr) = super::bind(&args.listen).await?;
    let serving = match args.insecure_http {
        true => None,
        false => {
            let given = rotor::tls::GivenFiles {
                cert: args.tls_cert_file.clone(),
                key: args.tls_private_key_file.clone(),
                client_ca: args.client_ca_file.clone(),
            };
            let names = rotor::tls::serving_names(&addr, &args.allowed_hosts);
            Some(rotor::tls::prepare(&args.store, &store, &given, &names).await?)
        }
    };
    // A wildcard address is no destination: clients on this machine (the controllers) use
    // loopback, which the serving certificate covers.
    let reach = match addr.ip().is_unspecified() {
        true => std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port()),
        false => addr,
    };
    let url = match serving {
        Some(_) => format!("https://{reach}"),
        None => format!("http://{reach}"),
    };
    let ca = serving.as_ref().and_then(|s| s.kubeconfig_ca.as_deref());
    let kubeconfig = rotor::kubeconfig::with_token("rotor", &url, ca, &token);
    let kubeconfig_path = args.kubeconfig_out.clone().or_else(|| {
        args.store
            .strip_prefix("sqlite:")
            .map(|p| PathBuf::from(format!("{p}.kubeconfig")))
    });
    if let Some(path) = &kubeconfig_path {
        rotor_sim::write_secret_file(path, &kubeconfig)?;
    }
    eprintln!(
        "rotor control plane serving on {url} (store {}){}",
        args.store,
        kubeconfig_path
            .map(|p| format!(", kubeconfig {}", p.display()))
            .unwrap_or_default()
    );
    eprintln!("dashboard at {url}{}", rotor::ui::PATH);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let metrics = std::sync::Arc::new(rotor_controllers::metrics::Metrics::default());
    let router = server
        .clone()
        .router()
        .merge(rotor::ui::router(server.clone()))
        .route(
            "/metrics",
            axum::routing::get({
                let (server, metrics) = (server.clone(), metrics.clone());
                move |request: axum::extract::Request| async move {
                    serve_metrics(&server, &metrics, request).await
                }
            }),
        );
    let grace = Duration::from_secs(args.shutdown_grace_seconds.max(1));
    // The API outlives the controllers: they release the lease through it.
    let (http_stop_tx, http_stop_rx) = tokio::sync::watch::channel(false);
    let http = match serving {
        Some(serving) => tokio::spawn(rotor_apiserver::http::serve_tls_until(
            listener,
            serving.config,
            router,
            stopped(http_stop_rx),
            grace / 5,
        )),
        None => tokio::spawn(rotor_apiserver::http::serve_until(
            listener,
            router,
            stopped(http_stop_rx),
            grace / 5,
        )),
    };
    let mut _layers = None;
    let controllers = if args.no_controllers {
        None
    } else {
        let wiring = rotor::controlplane::Wiring {
            providers: args.providers.clone(),
            traffic: args.traffic.clone(),
            aws_endpoint_url: args.aws_endpoint_url.clone(),
            aws_role_arn_template: args.aws_role_arn_template.clone(),
            eks_credentials: cluster_credentials(&args.eks_credentials),
            route53_ttl_seconds: args.route53_ttl_seconds,
            route53_propagation: std::time::Duration::from_secs(args.route53_propagation_seconds),
            gcp_endpoint_url: args.gcp_endpoint_url.clone(),
            gcp_access_token_file: args.gcp_access_token_file.clone(),
            gke_credentials: cluster_credentials(&args.gke_credentials),
            azure_endpoint_url: args.azure_endpoint_url.clone(),
            azure_access_token_file: args.azure_access_token_file.clone(),
            aks_credentials: cluster_credentials(&args.aks_credentials),
            clouddns_ttl: std::time::Duration::from_secs(args.clouddns_ttl_seconds),
            clouddns_propagation: std::time::Duration::from_secs(args.clouddns_propagation_seconds),
            trafficmanager_propagation: std::time::Duration::from_secs(
                args.trafficmanager_propagation_seconds,
            ),
        };
        let settings = rotor_controllers::Settings {
            shutdown_grace: grace * 3 / 5,
            drain_timeout: Duration::from_secs(args.drain_timeout_seconds),
            ..Default::default()
        };
        let prometheus = rotor::controlplane::prometheus_url(args.prometheus_url.clone())?;
        let (ctx, layers) =
            rotor::controlplane::controller_context(&kubeconfig, &wiring, settings).await?;
        let mut ctx = ctx.with_prometheus(prometheus);
        ctx.metrics = metrics.clone();
        if let Some((_, sim)) = &layers.sim {
            eprintln!(
                "embedded traffic router on http://{}/<endpoint>/",
                sim.local_addr()
            );
        }
        _layers = Some(layers);
        let ctx = std::sync::Arc::new(ctx);
        if args.store.starts_with("etcd:") {
            // A shared store: of the control planes on it, the Lease holder runs the controllers.
            let mut election = rotor_controllers::leader::Election::new(
                rotor_controllers::leader::Election::process_identity(),
            );
            election.lease_duration = Duration::from_secs(args.lease_duration_seconds.max(2));
            election.grace = (election.lease_duration / 3).max(Duration::from_secs(1));
            eprintln!(
                "controllers run while {} holds Lease {}/{}",
                election.identity,
                rotor_controllers::leader::LEASE_NAMESPACE,
                rotor_controllers::leader::LEASE_NAME
            );
            Some(tokio::spawn(rotor_controllers::leader::run_elected(
                ctx,
                election,
                stopped(stop_rx),
            )))
        } else {
            // SQLite and memory have one process: nobody to elect.
            ctx.metrics.set_leading(true);
            Some(tokio::spawn(async move {
                rotor_controllers::run(ctx, stopped(stop_rx)).await;
                anyhow::Ok(())
            }))
        }
    };
    super::shutdown_signal().await;
    eprintln!("stopping (within {}s)", grace.as_secs());
    let _ = stop_tx.send(true);
    if let Some(c) = controllers {
        stop_controllers(c, grace * 4 / 5).await;
    }
    let _ = http_stop_tx.send(true);
    let served = http.await;
    if let Some(audit) = &audit {
        // Every request has completed (or been cut off) by now: its record is queued.
        if let Err(e) = audit
            .close((grace / 10).max(Duration::from_millis(500)))
            .await
        {
            eprintln!("{e}");
        }
    }
    served??;
    Ok(())
}

/// Waits for the controllers (and the lease release) for at most `bound`, then aborts them.
async fn stop_controllers(mut task: tokio::task::JoinHandle<anyhow::Result<()>>, bound: Duration) {
    match tokio::time::timeout(bound, &mut task).await {
        Ok(Ok(Err(e))) => eprintln!("controllers: {e}"),
        Ok(Err(e)) => eprintln!("controllers: {e}"),
        Ok(Ok(Ok(()))) => {}
        Err(_) => {
            eprintln!(
                "controllers did not stop within {}s: aborted",
                bound.as_secs()
            );
            task.abort();
        }
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
