//! The simulator: a fleet of member-cluster API servers in one process (memory storage), each
//! behind its own path prefix and kubeconfig, with simulated cluster behaviour (nodes, workload
//! status), a simulated cloud that creates and deletes member clusters, and simulated application
//! traffic on a loopback address per cluster (one socket for all). Faults can be switched on per cluster and in the
//! cloud ([`Fault`], [`SimCloud::fail_next_creates`]) to rehearse failures.
//!
//! It is a product feature (rehearsing a fleet rollout on a laptop) and the ground of every
//! end-to-end test; controllers reach it only through the Kubernetes API and the provider/traffic
//! seams, never through its internals.

mod aws;
mod azure;
mod behaviour;
mod cloud;
pub mod dns;
mod faults;
mod gcp;
mod principals;
mod tls;
mod traffic;
mod workloads;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{Request, StatusCode, Uri};
use rotor_apiserver::{ApiServer, ServerConfig};
use rotor_store::memory::MemoryStore;

pub use aws::DEFAULT_ACCOUNT as AWS_DEFAULT_ACCOUNT;
pub use cloud::{CloudCluster, CloudClusterState, CloudConfig, CreateRequest, SimCloud};
pub use faults::Fault;
pub use tls::MembersTls;
pub use traffic::{DRAIN_GRACE, HANG_HOLD, MAX_DELAY, SLOW_LATENCY, STREAM_TICK, TrafficCounts};
pub use workloads::Clock;

use faults::{FaultSet, FaultSwitch};

/// Prometheus' text exposition format, as `/metrics` answers it.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How simulated clusters behave.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Kubernetes minor version the initial clusters run.
    pub kubernetes_minor: u32,
    /// Nodes per cluster.
    pub nodes: usize,
    /// How long a workload takes to become ready after a change to its spec.
    pub workload_ready_delay: Duration,
    /// How long a new node takes to become Ready.
    pub node_ready_delay: Duration,
    /// Watch history kept per cluster (events); memory per cluster grows with it.
    pub history_events: usize,
    /// Serve application traffic on a loopback address per cluster, on this port.
    pub traffic_port: Option<u16>,
    /// The simulated cloud's latency and failure rates.
    pub cloud: CloudConfig,
    /// Let clients without credentials in (see `ServerConfig::anonymous`).
    pub anonymous: bool,
    /// The time the simulated controllers see (CronJob schedules); tests set their own.
    pub clock: Clock,
    /// Where the clusters' application traffic is answered; None: the runtime that adds the
    /// first cluster. A runtime of its own keeps the applications' answers from queueing
    /// behind a control plane's work in the same process, as they would on machines of their
    /// own (the demo's rehearsal).
    pub traffic_runtime: Option<tokio::runtime::Handle>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            kubernetes_minor: 34,
            nodes: 3,
            workload_ready_delay: Duration::from_millis(300),
            node_ready_delay: Duration::from_millis(200),
            history_events: 512,
            traffic_port: None,
            cloud: CloudConfig::default(),
            anonymous: false,
            clock: Clock::system(),
            traffic_runtime: None,
        }
    }
}

/// One simulated member cluster.
pub struct MemberCluster {
    pub name: String,
    pub server: Arc<ApiServer>,
    /// The bearer token of its API (a secret: never logged).
    pub token: String,
    /// Where its application traffic is answered, when traffic is on.
    pub traffic_addr: Option<SocketAddr>,
    /// Its faults: the same switch as the simulator's table entry for its name.
    faults: FaultSwitch,
    /// Background tasks stop when the cluster is deleted.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Drains when the cluster is deleted (streams end cleanly, requests in flight finish).
    traffic: Option<traffic::TrafficListener>,
}

impl MemberCluster {
    /// What its traffic listener answered so far; None when traffic is off.
    pub fn traffic_counts(&self) -> Option<Arc<traffic::TrafficCounts>> {
        self.traffic.as_ref().map(|t| t.counts.clone())
    }
}

impl Drop for MemberCluster {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl std::fmt::Debug for MemberCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberCluster")
            .field("name", &self.name)
            .field("traffic_addr", &self.traffic_addr)
            .finish_non_exhaustive()
    }
}

/// The simulated fleet: member clusters by name, plus the cloud that creates more.
pub struct Sim {
    config: SimConfig,
    clusters: RwLock<BTreeMap<String, Arc<MemberCluster>>>,
    /// The next loopback host index handed to a cluster's traffic server.
    next_host: std::sync::atomic::AtomicU32,
    /// The one socket every cluster's traffic address is served on, bound with the first.
    traffic_front: tokio::sync::OnceCell<traffic::front::Front>,
    /// What every cluster's application served, at `GET /metrics` ([`Sim::router`]).
    traffic_metrics: Arc<traffic::metrics::TrafficMetrics>,
    /// The members over TLS, once [`Sim::serve_members_tls`] started them.
    members_tls: std::sync::OnceLock<MembersTls>,
    /// Fault switches by cluster name; kept apart from the members so faults can be set while
    /// the cloud is still creating a cluster (no race with a controller's first look at it).
    faults: Mutex<BTreeMap<String, FaultSwitch>>,
    pub cloud: SimCloud,
    /// The EKS clusters of the AWS front (`/aws`), each a member made by `cloud`.
    aws: aws::Eks,
    /// The hosted zones of the AWS front.
    route53: aws::Route53,
    /// The GKE clusters and operations of the Google Cloud front (`/gcp`).
    gcp: gcp::Gke,
    /// The Cloud DNS managed zones of the Google Cloud front (`/gcp/dns/v1`).
    clouddns: gcp::CloudDns,
    /// The AKS managed clusters and operations of the Azure front (`/azure`).
    aks: azure::Aks,
    /// The Traffic Manager profiles of the Azure front.
    traffic_manager: azure::TrafficManager,
    /// The simulator's own URL (`http://127.0.0.1:8080`), once it serves: for links in
    /// answers to clients that send no usable `Host` (Google's, see `gcp`).
    public_url: std::sync::OnceLock<String>,
    /// Tokens a member yet to be made will accept besides its own (an EKS cluster's, see
    /// `aws::EksTokens`), by member name; set before the cloud creates it.
    token_reviews: Mutex<BTreeMap<String, Arc<dyn rotor_apiserver::TokenReview>>>,
}

impl Sim {
    pub fn new(config: SimConfig) -> Arc<Self> {
        Arc::new_cyclic(|weak| Sim {
            cloud: SimCloud::new(config.cloud.clone(), weak.clone()),
            config,
            clusters: RwLock::new(BTreeMap::new()),
            next_host: std::sync::atomic::AtomicU32::new(1),
            traffic_front: tokio::sync::OnceCell::new(),
            traffic_metrics: Arc::default(),
            members_tls: std::sync::OnceLock::new(),
            faults: Mutex::new(BTreeMap::new()),
            aws: aws::Eks::default(),
            route53: aws::Route53::default(),
            gcp: gcp::Gke::default(),
            clouddns: gcp::CloudDns::default(),
            aks: azure::Aks::default(),
            traffic_manager: azure::TrafficManager::default(),
            public_url: std::sync::OnceLock::new(),
            token_reviews: Mutex::new(BTreeMap::new()),
        })
    }

    /// Member `name`, once made, also accepts the tokens `review` accepts.
    pub(crate) fn accept_tokens(&self, name: &str, review: Arc<dyn rotor_apiserver::TokenReview>) {
        let mut reviews = self
            .token_reviews
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        reviews.insert(name.to_string(), review);
    }

    /// Tells the simulator the URL clients reach it at (`http://127.0.0.1:8080`): the base of
    /// the links and endpoints its cloud fronts answer. The first call wins.
    pub fn set_public_url(&self, url: &str) {
        let _ = self.public_url.set(url.trim_end_matches('/').to_string());
    }

    /// See [`Sim::set_public_url`].
    pub fn public_url(&self) -> Option<String> {
        self.public_url.get().cloned()
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Starts `n` clusters named `prefix-0000`, `prefix-0001`, …
    pub async fn start_clusters(
        &self,
        prefix: &str,
        n: usize,
    ) -> anyhow::Result<Vec<Arc<MemberCluster>>> {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let name = format!("{prefix}-{i:04}");
            out.push(
                self.add_cluster(&name, self.config.kubernetes_minor)
                    .await?,
            );
            self.cloud.adopt(&name, self.config.kubernetes_minor);
        }
        Ok(out)
    }

    /// Adds (or returns the existing) member cluster `name` running Kubernetes 1.`minor`.
    pub async fn add_cluster(&self, name: &str, minor: u32) -> anyhow::Result<Arc<MemberCluster>> {
        self.add_cluster_named(name, name, minor).await
    }

    /// [`Sim::add_cluster`] for a cluster its cloud knows as `cloud_name` (a cloud front's
    /// members are named apart from the clusters they stand for).
    pub async fn add_cluster_named(
        &self,
        name: &str,
        cloud_name: &str,
        minor: u32,
    ) -> anyhow::Result<Arc<MemberCluster>> {
        if let Some(c) = self.cluster(name) {
            return Ok(c);
        }
        let token = random_token();
        let token_review = self
            .token_reviews
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned();
        let store = Arc::new(MemoryStore::with_history(self.config.history_events));
        let server = ApiServer::new(
            store,
            ServerConfig {
                kubernetes_minor: minor,
                token: Some(token.clone()),
                anonymous: self.config.anonymous,
                token_review,
                ..ServerConfig::default()
            },
        )
        .await?;
        let faults = self.fault_switch(name);
        let tasks = vec![behaviour::spawn(server.clone(), self.config.clone(), minor)];
        let (mut traffic_addr, mut traffic) = (None, None);
        if let Some(port) = self.config.traffic_port {
            let front = self
                .traffic_front
                .get_or_try_init(|| {
                    traffic::front::Front::bind(port, self.config.traffic_runtime.clone())
                })
                .await?;
            let idx = self
                .next_host
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let ip =
                std::net::Ipv4Addr::new(127, 1 + (idx >> 16) as u8, (idx >> 8) as u8, idx as u8);
            let served = traffic::Served {
                series: traffic::SeriesNames::new(name, cloud_name),
                server: server.clone(),
                faults: faults.subscribe(),
                metrics: self.traffic_metrics.clone(),
            };
            let listener = traffic::serve(front, served, ip);
            traffic_addr = Some(listener.addr);
            traffic = Some(listener);
        }
        let cluster = Arc::new(MemberCluster {
            name: name.to_string(),
            server,
            token,
            traffic_addr,
            faults,
            tasks,
            traffic,
        });
        let mut clusters = self
            .clusters
            .write()
            .map_err(|_| anyhow::anyhow!("cluster table poisoned"))?;
        Ok(clusters.entry(name.to_string()).or_insert(cluster).clone())
    }

    pub fn remove_cluster(&self, name: &str) -> Option<Arc<MemberCluster>> {
        // Release requests held by ApiTimeout: the cluster is gone, they get their 504 now.
        if let Some(switch) = self.fault_table().remove(name) {
            switch.send_replace(FaultSet::new());
        }
        self.clusters.write().ok()?.remove(name)
    }

    fn fault_table(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, FaultSwitch>> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The switch of cluster `name`, made on first use.
    fn fault_switch(&self, name: &str) -> FaultSwitch {
        self.fault_table()
            .entry(name.to_string())
            .or_insert_with(|| FaultSwitch::new(FaultSet::new()))
            .clone()
    }

    /// The switch of a cluster a member or the cloud knows (one being created included).
    fn known_fault_switch(&self, name: &str) -> Option<FaultSwitch> {
        (self.cluster(name).is_some() || self.cloud.get(name).is_some())
            .then(|| self.fault_switch(name))
    }

    /// Turns `fault` on in cluster `cluster`; false when no member or cloud record has that name.
    pub fn set_fault(&self, cluster: &str, fault: Fault) -> bool {
        let Some(switch) = self.known_fault_switch(cluster) else {
            return false;
        };
        switch.send_if_modified(|f| f.insert(fault));
        true
    }

    /// Replaces the faults in force in `cluster` (an empty list clears them); false when unknown.
    pub fn set_faults(&self, cluster: &str, faults: &[Fault]) -> bool {
        let Some(switch) = self.known_fault_switch(cluster) else {
            return false;
        };
        switch.send_replace(faults.iter().copied().collect());
        true
    }

    /// Turns every fault off in `cluster`; held `ApiTimeout` requests get their 504.
    pub fn clear_faults(&self, cluster: &str) {
        if let Some(s) = self.fault_table().get(cluster) {
            s.send_if_modified(|f| {
                let had = !f.is_empty();
                f.clear();
                had
            });
        }
    }

    /// The faults in force in `cluster`, or None when no member or cloud record has that name.
    pub fn faults(&self, cluster: &str) -> Option<Vec<Fault>> {
        self.known_fault_switch(cluster)
            .map(|s| s.borrow().iter().copied().collect())
    }

    pub fn cluster(&self, name: &str) -> Option<Arc<MemberCluster>> {
        self.clusters.read().ok()?.get(name).cloned()
    }

    pub fn cluster_names(&self) -> Vec<String> {
        self.clusters
            .read()
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The HTTP face of the whole simulator: `/clusters/{name}/…` is that member's Kubernetes API,
    /// `/cloud/…` the simulated cloud, `/metrics` every cluster's application traffic in
    /// Prometheus' text format (`traffic/metrics.rs`).
    pub fn router(self: &Arc<Self>) -> axum::Router {
        let sim = self.clone();
        let metrics = self.traffic_metrics.clone();
        axum::Router::new()
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let metrics = metrics.clone();
                    async move {
                        (
                            [(http::header::CONTENT_TYPE, TEXT_FORMAT)],
                            metrics.encode(),
                        )
                    }
                }),
            )
            .nest("/cloud", cloud::router(self.clone()))
            .merge(aws::router(self.clone()))
            .merge(gcp::router(self.clone()))
            .merge(azure::router(self.clone()))
            .fallback(move |req: Request<Body>| {
                let sim = sim.clone();
                async move { sim.route_member(req).await }
            })
    }

    /// Serves [`Sim::router`] on a free loopback port, in a task of its own that lives as long
    /// as the runtime: what the benchmarks and tests do with a simulator.
    pub async fn serve_loopback(self: &Arc<Self>) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        self.set_public_url(&format!("http://{addr}"));
        let router = self.router();
        tokio::spawn(async move {
            let _ = rotor_apiserver::http::serve(listener, router).await;
        });
        self.serve_members_tls()
            .await
            .map_err(std::io::Error::other)?;
        Ok(addr)
    }

    /// Serves the members (the whole router) over TLS too, on a free loopback port with a CA of
    /// its own, and from then on the clouds' fronts describe members by that endpoint and CA:
    /// what EKS, GKE and AKS answer. Once per simulator; later calls answer the first.
    pub async fn serve_members_tls(self: &Arc<Self>) -> anyhow::Result<MembersTls> {
        if let Some(tls) = self.members_tls.get() {
            return Ok(tls.clone());
        }
        let tls = tls::serve(self.router()).await?;
        Ok(self.members_tls.get_or_init(|| tls).clone())
    }

    /// See [`Sim::serve_members_tls`].
    pub fn members_tls(&self) -> Option<&MembersTls> {
        self.members_tls.get()
    }

    async fn route_member(&self, mut req: Request<Body>) -> Response {
        let path = req.uri().path().to_string();
        let Some(rest) = path.strip_prefix("/clusters/") else {
            return (
                StatusCode::NOT_FOUND,
                "not a simulator path: use /clusters/{name}/ or /cloud/",
            )
                .into_response();
        };
        let (name, tail) = rest
            .split_once('/')
            .map(|(n, t)| (n, format!("/{t}")))
            .unwrap_or((rest, "/".to_string()));
        let Some(cluster) = self.cluster(name) else {
            return rotor_apiserver::ApiError::path_not_found(&format!("simulated cluster {name}"))
                .into_response();
        };
        let switch = cluster.faults.subscribe();
        if let Some(resp) = faults::api_fault(name, switch.clone()).await {
            return resp;
        }
        let pq = match req.uri().query() {
            Some(q) => format!("{tail}?{q}"),
            None => tail,
        };
        match pq.parse::<Uri>() {
            Ok(uri) => *req.uri_mut() = uri,
            Err(_) => return (StatusCode::BAD_REQUEST, "bad path").into_response(),
        }
        req.extensions_mut()
            .insert(rotor_apiserver::request::PathPrefix(format!(
                "/clusters/{name}"
            )));
        let watch = faults::is_watch(req.uri());
        if watch
            && switch.borrow().contains(&Fault::WatchExpired)
            && faults::resumes_from_version(req.uri())
        {
            return faults::expired_watch(name);
        }
        if let Some((ns, pod)) = workloads::logs::log_target(req.uri().path())
            && req.method() == http::Method::GET
            && let Some(read) = workloads::logs::pod_request(&req, ns, pod)
        {
            let query = req.uri().query().map(str::to_string);
            let pod_reply = cluster.server.handle(read).await;
            return workloads::logs::reply(pod_reply, query.as_deref()).await;
        }
        let resp = cluster.server.handle(req).await;
        if watch {
            let resp = faults::end_on_api_fault(resp, switch.clone());
            let resp = faults::expire_on_fault(name, resp, switch.clone());
            faults::drop_watch_events(resp, switch)
        } else {
            resp
        }
    }

    /// The member cluster serving `instance`: the member of that name, or the one a cloud
    /// front (EKS, GKE, AKS) made for a cluster of that name. Instance names are unique across a
    /// rehearsal's fleet; in several accounts or regions the first found is returned.
    pub fn member_of_instance(&self, instance: &str) -> Option<String> {
        if self.cluster(instance).is_some() {
            return Some(instance.to_string());
        }
        self.aws
            .member_of(instance)
            .or_else(|| self.gcp.member_of(instance))
            .or_else(|| self.aks.member_of(instance))
    }

    /// A kubeconfig for one member cluster reached at `base_url` (e.g. `http://127.0.0.1:6443`).
    pub fn kubeconfig(&self, name: &str, base_url: &str) -> Option<String> {
        let c = self.cluster(name)?;
        let base = base_url.trim_end_matches('/');
        // Over TLS the kubeconfig carries the CA that signed the members' certificate.
        let ca = self
            .members_tls()
            .filter(|t| t.url == base)
            .map(MembersTls::ca_base64);
        Some(kubeconfig_yaml_with_ca(
            name,
            &format!("{base}/clusters/{name}"),
            ca.as_deref(),
            &c.token,
        ))
    }

    /// Writes `DIR/{name}.kubeconfig` for every cluster (mode 0600: they hold tokens).
    pub fn write_kubeconfigs(&self, dir: &Path, base_url: &str) -> anyhow::Result<usize> {
        std::fs::create_dir_all(dir)?;
        let names = self.cluster_names();
        for name in &names {
            if let Some(cfg) = self.kubeconfig(name, base_url) {
                write_secret_file(&dir.join(format!("{name}.kubeconfig")), &cfg)?;
            }
        }
        Ok(names.len())
    }
}

/// Writes a file readable only by its owner, atomically (a reader never sees it half-written).
pub fn write_secret_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The kubeconfig cluster extension rotor's clients read as "speaks HTTP/2 over plain HTTP"
/// (`rotor_api::client::H2C_EXTENSION`; the simulator does not depend on rotor's client).
pub const H2C_EXTENSION: &str = "rotor.dev/h2c";

/// A minimal kubeconfig with one cluster, user and context, all named `name`. Over plain HTTP
/// the cluster carries rotor's h2c extension: the simulator speaks HTTP/2 with prior knowledge,
/// so rotor's clients multiplex many members' watches on a few connections.
pub fn kubeconfig_yaml(name: &str, server: &str, token: &str) -> String {
    kubeconfig_yaml_with_ca(name, server, None, token)
}

/// [`kubeconfig_yaml`] for a server whose certificate the CA `ca` (base64 PEM) signed.
pub fn kubeconfig_yaml_with_ca(name: &str, server: &str, ca: Option<&str>, token: &str) -> String {
    let cluster = kubeconfig_cluster(server, ca);
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
        "preferences": {},
    });
    // JSON is YAML; kubectl and kube-rs read it as such.
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// A kubeconfig's cluster entry: over plain HTTP marked as speaking HTTP/2 (the simulator's
/// servers do), over TLS with the CA to verify it by.
fn kubeconfig_cluster(server: &str, ca: Option<&str>) -> serde_json::Value {
    let mut cluster = serde_json::json!({"server": server});
    if server.starts_with("http://") {
        cluster["extensions"] = serde_json::json!([{"name": H2C_EXTENSION, "extension": true}]);
    }
    if let Some(ca) = ca {
        cluster["certificate-authority-data"] = ca.into();
    }
    cluster
}

pub fn random_token() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
