//! A whole rotor installation in one process, as `rotor demo` runs it and as the end-to-end
//! tests exercise it: a simulated fleet and cloud, the control plane's API, the controllers, a
//! traffic layer (the embedded weighted router, or a real HAProxy), and a sample application in
//! every member. Every part talks to the others over real loopback connections.

mod clouds;
mod controllers;
mod data_plane;
pub mod dns;
pub mod hook_receiver;
pub mod prometheus;

pub use clouds::Cloud;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use rotor_api::{Cluster, ShifterKind};
use rotor_apiserver::ApiServer;
use rotor_sim::{Sim, SimConfig};
use rotor_traffic::TrafficShifter;
use serde_json::json;

/// Namespace of the sample application.
pub const APP_NAMESPACE: &str = "demo-app";
/// Name of its Deployment and Service.
pub const APP_NAME: &str = "web";

/// Which traffic layer carries the fleet's application traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrafficChoice {
    /// The embedded weighted router (one listener, `/<endpoint>/...`).
    Sim,
    /// A real HAProxy, one frontend per endpoint, weights through its runtime API.
    Haproxy,
    /// Each cloud's DNS (Route 53, Cloud DNS, Traffic Manager) as the simulator serves it,
    /// through rotor's shifters of them; clients resolve the names (see [`dns`]).
    Dns,
}

impl TrafficChoice {
    /// The name reports give it.
    pub const fn as_str(self) -> &'static str {
        match self {
            TrafficChoice::Sim => "sim",
            TrafficChoice::Haproxy => "haproxy",
            TrafficChoice::Dns => "dns",
        }
    }
}

pub struct RehearsalConfig {
    pub fleet: Vec<Cluster>,
    pub sim: SimConfig,
    pub settings: rotor_controllers::Settings,
    pub traffic: TrafficChoice,
    /// The controllers' wall clock (maintenance windows); the system clock when None.
    pub clock: Option<rotor_controllers::Clock>,
    /// The clouds whose real providers run the fleet (each Cluster on the one its
    /// `rotor.dev/cloud` label names, else the first); empty: the simulator's own provider.
    pub clouds: Vec<Cloud>,
}

pub struct Rehearsal {
    pub sim: Arc<Sim>,
    /// Base URL of the simulator (member APIs under `/clusters/{name}`, the cloud at `/cloud`).
    pub sim_url: String,
    pub control_plane: Arc<ApiServer>,
    /// Base URL of the control plane's API (plain HTTP on loopback; the dashboard under
    /// [`crate::ui::PATH`]).
    pub control_plane_url: String,
    /// The control plane's admin token (also in `kubeconfig`).
    pub token: String,
    /// Admin kubeconfig of the control plane (holds its token).
    pub kubeconfig: String,
    pub client: kube::Client,
    pub fleet: Vec<Cluster>,
    pub sim_router: Option<(
        rotor_traffic::sim::SimShifter,
        rotor_traffic::sim::SimServer,
    )>,
    pub haproxy: Option<rotor_traffic::haproxy::HaproxyProcess>,
    /// What the controllers' `/metrics` would serve.
    pub metrics: Arc<rotor_controllers::metrics::Metrics>,
    /// HAProxy frontends by endpoint.
    frontends: BTreeMap<String, SocketAddr>,
    /// The DNS name of each endpoint, and the records clients resolve them by, under
    /// [`TrafficChoice::Dns`].
    names: BTreeMap<String, String>,
    records: Option<Arc<dyn rotor_traffic::resolver::Records>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    wiring: controllers::Wiring,
    controllers: Option<controllers::Running>,
    /// Last, so it is dropped after everything that runs on it.
    data_plane: data_plane::DataPlane,
}

impl Drop for Rehearsal {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(c) = &self.controllers {
            c.abort();
        }
    }
}

/// `1.34.2` → 34.
pub fn minor_of(version: &str) -> anyhow::Result<u32> {
    version
        .trim_start_matches('v')
        .strip_prefix("1.")
        .and_then(|r| r.split('.').next())
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("{version:?} is not a Kubernetes version 1.N[.P]"))
}

/// How long the clouds may take to create every blue of a fleet on their APIs.
const BLUES_WITHIN: Duration = Duration::from_secs(300);

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Ports for HAProxy's frontends, each held by a listener of ours until HAProxy is about to bind
/// it, and taken below the kernel's ephemeral range. A port probed free and let go was given out
/// again: to another probe (HAProxy binds frontends with SO_REUSEPORT, so two frontends shared a
/// port and split its connections, one cluster's load and gates partly reading another's), or
/// to a connection the control plane opened meanwhile (HAProxy then failed to start).
struct HeldPorts(Vec<std::net::TcpListener>);

/// Lowest port considered: below it sit well-known services.
const HELD_PORTS_FROM: u16 = 10_000;

impl HeldPorts {
    /// `n` distinct ports, scanned from a place that differs between processes (concurrent
    /// rehearsals), skipping ports in use.
    fn reserve(n: usize) -> anyhow::Result<Self> {
        let below = ephemeral_low().max(HELD_PORTS_FROM + 1);
        let span = u32::from(below - HELD_PORTS_FROM);
        let start = std::process::id().wrapping_mul(7919) % span;
        let mut held = Vec::with_capacity(n);
        for i in 0..span {
            if held.len() == n {
                break;
            }
            let port = HELD_PORTS_FROM + ((start + i) % span) as u16;
            if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
                held.push(listener);
            }
        }
        anyhow::ensure!(
            held.len() == n,
            "only {} free ports between {HELD_PORTS_FROM} and {below} for {n} HAProxy frontends",
            held.len()
        );
        Ok(HeldPorts(held))
    }

    fn addresses(&self) -> anyhow::Result<Vec<SocketAddr>> {
        Ok(self
            .0
            .iter()
            .map(std::net::TcpListener::local_addr)
            .collect::<Result<_, _>>()?)
    }
}

/// The first port the kernel hands out to connections (Linux's `ip_local_port_range`).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

impl Rehearsal {
    /// [`Rehearsal::start_on`] a memory store.
    pub async fn start(config: RehearsalConfig) -> anyhow::Result<Self> {
        Self::start_on(
            config,
            Arc::new(rotor_store::memory::MemoryStore::default()),
        )
        .await
    }

    /// The simulated fleet, a control plane on `store`, the controllers and the traffic layer.
    pub async fn start_on(
        mut config: RehearsalConfig,
        store: rotor_store::DynStore,
    ) -> anyhow::Result<Self> {
        let mut tasks = Vec::new();
        let data_plane = data_plane::DataPlane::start()?;

        // The simulated fleet and cloud; each logical cluster's first instance bears its name.
        if config.sim.traffic_port.is_none() {
            config.sim.traffic_port = Some(free_port()?);
        }
        if config.sim.traffic_runtime.is_none() {
            config.sim.traffic_runtime = Some(data_plane.handle().clone());
        }
        let sim = Sim::new(config.sim.clone());
        if config.clouds.is_empty() {
            for c in &config.fleet {
                let minor = minor_of(&c.spec.kubernetes_version)?;
                sim.add_cluster(&c.name_any(), minor).await?;
                sim.cloud.adopt(&c.name_any(), minor);
            }
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let sim_url = format!("http://{}", listener.local_addr()?);
        sim.set_public_url(&sim_url);
        // Members made through the clouds' fronts answer over TLS, HTTP/2 by ALPN.
        sim.serve_members_tls().await?;
        let router = sim.router();
        tasks.push(tokio::spawn(async move {
            let _ = rotor_apiserver::http::serve(listener, router).await;
        }));
        // The fleet on the clouds' APIs: blues created through the real providers.
        let cloud_providers = clouds::providers(&sim_url, &config.clouds).await?;
        if !config.clouds.is_empty() {
            for c in &mut config.fleet {
                let labelled = c.labels().get(rotor_api::labels::CLOUD).cloned();
                let cloud = config
                    .clouds
                    .iter()
                    .copied()
                    .find(|k| labelled.as_deref() == Some(k.as_str()))
                    .unwrap_or(config.clouds[0]);
                clouds::place(c, cloud);
            }
            clouds::create_blues(&config.fleet, &cloud_providers, BLUES_WITHIN).await?;
        }

        // The control plane.
        let token = rotor_sim::random_token();
        let control_plane = crate::controlplane::control_plane(
            store,
            crate::controlplane::admin_only(token.clone()),
        )
        .await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let cp_url = format!("http://{}", listener.local_addr()?);
        let router = control_plane
            .clone()
            .router()
            .merge(crate::ui::router(control_plane.clone()));
        tasks.push(tokio::spawn(async move {
            let _ = rotor_apiserver::http::serve(listener, router).await;
        }));
        let kubeconfig = rotor_sim::kubeconfig_yaml("rotor", &cp_url, &token);
        let client = crate::client_for(&kubeconfig).await?;

        // The traffic layer.
        let mut sim_router = None;
        let mut haproxy = None;
        let mut frontends = BTreeMap::new();
        let mut names = BTreeMap::new();
        let mut records = None;
        let shifters: Vec<(ShifterKind, Arc<dyn TrafficShifter>)> = match config.traffic {
            TrafficChoice::Sim => {
                let shifter = rotor_traffic::sim::SimShifter::new();
                let (serving, listen) = (shifter.clone(), "127.0.0.1:0".parse()?);
                let server = data_plane
                    .handle()
                    .spawn(async move { serving.serve(listen).await })
                    .await??;
                sim_router = Some((shifter.clone(), server));
                vec![(ShifterKind::Sim, Arc::new(shifter))]
            }
            TrafficChoice::Haproxy => {
                let mut endpoints = Vec::new();
                let ports = HeldPorts::reserve(config.fleet.len())?;
                for (c, listen) in config.fleet.iter_mut().zip(ports.addresses()?) {
                    c.spec.traffic.shifter = ShifterKind::Haproxy;
                    endpoints.push(rotor_traffic::haproxy::EndpointConfig::new(
                        &c.spec.traffic.endpoint,
                        listen,
                    )?);
                    frontends.insert(c.spec.traffic.endpoint.clone(), listen);
                }
                drop(ports);
                let process = rotor_traffic::haproxy::HaproxyProcess::start(
                    &endpoints,
                    Duration::from_secs(10),
                )
                .await?;
                let shifter = process.shifter();
                haproxy = Some(process);
                vec![(ShifterKind::Haproxy, Arc::new(shifter))]
            }
            TrafficChoice::Dns => {
                anyhow::ensure!(
                    !config.clouds.is_empty(),
                    "traffic through DNS needs the clouds' DNS services: name them (--clouds)"
                );
                let dns = dns::setup(&sim, &sim_url, &mut config.fleet, &config.clouds).await?;
                names = dns.names;
                records = Some(Arc::new(dns::SimRecords::new(sim.clone())) as Arc<_>);
                dns.shifters
            }
        };

        // The controllers.
        let mut providers = cloud_providers;
        providers.insert(
            0,
            (
                rotor_api::Provider::Sim,
                Arc::new(rotor_providers::sim::SimProvider::new(&sim_url)),
            ),
        );
        let wiring = controllers::Wiring {
            kubeconfig: kubeconfig.clone(),
            settings: config.settings.clone(),
            providers,
            shifters,
            clock: config.clock.clone(),
            metrics: Arc::default(),
        };
        let metrics = wiring.metrics.clone();
        let running = wiring.start().await?;

        // The fleet, applied as an operator's automation would.
        let clusters: Api<Cluster> = Api::all(client.clone());
        let pp = PatchParams::apply("rotor-demo").force();
        for c in &config.fleet {
            let mut c = c.clone();
            c.metadata.managed_fields = None;
            clusters
                .patch(&c.name_any(), &pp, &Patch::Apply(&c))
                .await
                .map_err(|e| anyhow::anyhow!("applying Cluster {}: {e}", c.name_any()))?;
        }
        Ok(Rehearsal {
            sim,
            sim_url,
            control_plane,
            control_plane_url: cp_url,
            token,
            kubeconfig,
            client,
            fleet: config.fleet,
            sim_router,
            haproxy,
            metrics,
            frontends,
            names,
            records,
            tasks,
            wiring,
            controllers: Some(running),
            data_plane,
        })
    }

    /// The data plane's runtime: what stands for the fleet's own machines (see
    /// [`data_plane`]); the demo's load runs on it.
    pub fn data_plane(&self) -> &tokio::runtime::Handle {
        self.data_plane.handle()
    }

    /// Stops the controllers (bounded), as a stopped `rotor serve` would be; nothing of them
    /// runs until [`Rehearsal::start_controllers`].
    pub async fn stop_controllers(&mut self) -> anyhow::Result<()> {
        match self.controllers.take() {
            Some(running) => running.stop().await,
            None => Ok(()),
        }
    }

    /// Waits until every Event the running controllers recorded so far was posted, at most
    /// `within` (they post in the background: read them after this); whether all were.
    pub async fn events_posted(&self, within: Duration) -> bool {
        match &self.controllers {
            Some(c) => c.events_posted(within).await,
            None => true,
        }
    }

    /// Starts new controllers, as a restarted `rotor serve` would: nothing carries over but
    /// what the control plane and the members hold.
    pub async fn start_controllers(&mut self) -> anyhow::Result<()> {
        self.stop_controllers().await?;
        self.controllers = Some(self.wiring.start().await?);
        Ok(())
    }

    /// The traffic layer the controllers drive, to read or set what they see (None only if the
    /// rehearsal started without one).
    pub fn shifter(&self) -> Option<Box<dyn TrafficShifter>> {
        match (&self.haproxy, &self.sim_router) {
            (Some(haproxy), _) => Some(Box::new(haproxy.shifter())),
            (None, Some((router, _))) => Some(Box::new(router.clone())),
            (None, None) => None,
        }
    }

    /// The URL of the sample application of `endpoint`, through the traffic layer.
    pub fn app_url(&self, endpoint: &str) -> String {
        if let (Some(name), Some(port)) = (self.names.get(endpoint), self.sim.config().traffic_port)
        {
            return format!("http://{name}:{port}/{APP_NAMESPACE}/{APP_NAME}");
        }
        match (&self.sim_router, self.frontends.get(endpoint)) {
            (_, Some(listen)) => format!("http://{listen}/{APP_NAMESPACE}/{APP_NAME}"),
            (Some((_, server)), None) => {
                format!("{}/{APP_NAMESPACE}/{APP_NAME}", server.url(endpoint))
            }
            (None, None) => format!("http://unknown-endpoint.invalid/{endpoint}"),
        }
    }

    /// What the load resolves the app URLs' names by, when they are DNS names
    /// ([`TrafficChoice::Dns`]).
    pub fn dns_records(&self) -> Option<Arc<dyn rotor_traffic::resolver::Records>> {
        self.records.clone()
    }

    /// Every Cluster's app URL, in fleet order.
    pub fn app_urls(&self) -> Vec<String> {
        self.fleet
            .iter()
            .map(|c| self.app_url(&c.spec.traffic.endpoint))
            .collect()
    }

    /// A kube client of one member-cluster instance (on any cloud).
    pub async fn member(&self, instance: &str) -> anyhow::Result<kube::Client> {
        let kubeconfig = self
            .sim
            .member_of_instance(instance)
            .and_then(|member| self.sim.kubeconfig(&member, &self.sim_url))
            .ok_or_else(|| anyhow::anyhow!("no simulated instance {instance}"))?;
        crate::client_for(&kubeconfig).await
    }

    /// Waits until every Cluster has adopted its instance (the Cluster controller ran).
    pub async fn wait_adopted(&self, limit: Duration) -> anyhow::Result<()> {
        let clusters: Api<Cluster> = Api::all(self.client.clone());
        let deadline = Instant::now() + limit;
        loop {
            let list = clusters.list(&ListParams::default()).await?;
            let missing: Vec<String> = list
                .items
                .iter()
                .filter(|c| {
                    c.status
                        .as_ref()
                        .and_then(|s| s.active_instance.as_ref())
                        .is_none()
                })
                .map(|c| c.name_any())
                .collect();
            if missing.is_empty() && list.items.len() == self.fleet.len() {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "{} Clusters have no active instance after {limit:?}: {}",
                    missing.len(),
                    missing
                        .iter()
                        .take(5)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            // Each poll lists the whole fleet: at 10,000 Clusters every 50 ms was most of
            // the control plane's work during set-up.
            tokio::time::sleep(list_pace(self.fleet.len())).await;
        }
    }

    /// The sample application's namespace, Deployment and Service, applied in member `name`.
    async fn apply_sample_app(&self, name: String) -> anyhow::Result<()> {
        let pp = PatchParams::apply("rotor-demo");
        let (ns, deploy, svc) = sample_app();
        let client = self.member(&name).await?;
        let nss: Api<Namespace> = Api::all(client.clone());
        nss.patch(APP_NAMESPACE, &pp, &Patch::Apply(&ns))
            .await
            .map_err(|e| anyhow::anyhow!("{name}: namespace: {e}"))?;
        let deps: Api<Deployment> = Api::namespaced(client.clone(), APP_NAMESPACE);
        deps.patch(APP_NAME, &pp, &Patch::Apply(&deploy))
            .await
            .map_err(|e| anyhow::anyhow!("{name}: deployment: {e}"))?;
        let svcs: Api<Service> = Api::namespaced(client, APP_NAMESPACE);
        svcs.patch(APP_NAME, &pp, &Patch::Apply(&svc))
            .await
            .map_err(|e| anyhow::anyhow!("{name}: service: {e}"))?;
        Ok(())
    }

    /// Deploys the sample application (namespace, Deployment, Service) into every member and
    /// waits until it answers through the traffic layer.
    pub async fn deploy_app(&self, limit: Duration) -> anyhow::Result<()> {
        let names: Vec<String> = self.fleet.iter().map(|c| c.name_any()).collect();
        futures::stream::iter(names)
            .map(|name| self.apply_sample_app(name))
            .buffer_unordered(SET_UP_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        let deadline = Instant::now() + limit;
        futures::stream::iter(self.app_urls())
            .map(|url| answered(url, self.records.clone(), deadline, limit))
            .buffer_unordered(SET_UP_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        // The readiness probes above went through the traffic layer: start counting afresh.
        if let Some((shifter, _)) = &self.sim_router {
            for c in &self.fleet {
                shifter.reset_stats(&c.spec.traffic.endpoint)?;
            }
        }
        Ok(())
    }
}

/// Members set up at once: their API servers and the traffic layer answer side by side; one
/// at a time, 10,000 members took minutes.
const SET_UP_CONCURRENCY: usize = 16;

/// How often a wait that lists the whole fleet lists it: 50 ms for a small fleet, slower as it
/// grows (each list costs in proportion), at most a second.
fn list_pace(clusters: usize) -> Duration {
    (Duration::from_millis(50) * (1 + clusters / 100) as u32).min(Duration::from_secs(1))
}

/// Waits until the sample application at `url` answers (its name resolved by `records`, when
/// given), polling until `deadline`.
async fn answered(
    url: String,
    records: Option<Arc<dyn rotor_traffic::resolver::Records>>,
    deadline: Instant,
    limit: Duration,
) -> anyhow::Result<()> {
    let urls = std::slice::from_ref(&url);
    let timeout = Duration::from_secs(2);
    loop {
        let report = match &records {
            Some(r) => rotor_traffic::load::run_resolving(urls, 1, 1, timeout, r.clone()).await,
            None => rotor_traffic::load::run(urls, 1, 1, timeout).await,
        };
        if report.failed == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("the sample application at {url} does not answer after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The sample application every member runs: a namespace, a Deployment and its Service.
pub fn sample_app() -> (serde_json::Value, serde_json::Value, serde_json::Value) {
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": APP_NAMESPACE}});
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": APP_NAME, "namespace": APP_NAMESPACE},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": APP_NAME}},
            "template": {"metadata": {"labels": {"app": APP_NAME}}, "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}}}});
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": APP_NAME, "namespace": APP_NAMESPACE},
        "spec": {"selector": {"app": APP_NAME}, "ports": [{"port": 80, "targetPort": 80}]}});
    (ns, deploy, svc)
}
