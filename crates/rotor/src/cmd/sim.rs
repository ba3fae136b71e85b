//! `rotor sim`: a simulated fleet served over HTTP, one kubeconfig per member cluster.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use rotor_sim::{Sim, SimConfig};

#[derive(Args)]
pub struct SimArgs {
    /// Number of member clusters to start.
    #[arg(long, default_value_t = 3)]
    pub clusters: usize,
    /// Address of the simulator's API (all members behind /clusters/{name}/).
    #[arg(long, default_value = "127.0.0.1:7443")]
    pub listen: String,
    /// Write `{name}.kubeconfig` for every member cluster here.
    #[arg(long)]
    pub kubeconfig_dir: Option<PathBuf>,
    /// Kubernetes version the members run (1.25 … 1.37).
    #[arg(long, default_value = "1.34")]
    pub kubernetes_version: String,
    /// Serve application traffic on 127.1.x.y:PORT per cluster.
    #[arg(long)]
    pub traffic_port: Option<u16>,
    /// Delay before a changed workload reports ready, in milliseconds.
    #[arg(long, default_value_t = 300)]
    pub ready_delay_ms: u64,
    /// Simulated cloud: how long creating a member cluster takes, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub cloud_create_ms: u64,
    /// Simulated cloud: how long deleting a member cluster takes, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub cloud_delete_ms: u64,
    /// Simulated cloud: probability (0 to 1) that a cluster create fails.
    #[arg(long, default_value_t = 0.0)]
    pub cloud_failure_rate: f64,
    /// Prefix of member cluster names.
    #[arg(long, default_value = "member")]
    pub name_prefix: String,
    /// After SIGTERM or SIGINT, the process exits within this: watches end at once, other
    /// requests get this long to finish.
    #[arg(long, default_value_t = 10)]
    pub shutdown_grace_seconds: u64,
}

pub fn parse_minor(version: &str) -> anyhow::Result<u32> {
    let minor = version
        .trim_start_matches('v')
        .strip_prefix("1.")
        .and_then(|m| m.split('.').next())
        .and_then(|m| m.parse::<u32>().ok())
        .filter(|m| rotor_openapi::SUPPORTED_MINORS.contains(m));
    minor.ok_or_else(|| anyhow::anyhow!("--kubernetes-version {version:?}: expected 1.25 … 1.37"))
}

pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&args.cloud_failure_rate) {
        anyhow::bail!(
            "--cloud-failure-rate {}: must be between 0 and 1",
            args.cloud_failure_rate
        );
    }
    let config = SimConfig {
        kubernetes_minor: parse_minor(&args.kubernetes_version)?,
        traffic_port: args.traffic_port,
        workload_ready_delay: Duration::from_millis(args.ready_delay_ms),
        anonymous: rotor::controlplane::is_loopback(&args.listen),
        cloud: rotor_sim::CloudConfig {
            create_latency: Duration::from_millis(args.cloud_create_ms),
            delete_latency: Duration::from_millis(args.cloud_delete_ms),
            create_failure_rate: args.cloud_failure_rate,
        },
        ..SimConfig::default()
    };
    let sim = Sim::new(config);
    let started = std::time::Instant::now();
    sim.start_clusters(&args.name_prefix, args.clusters).await?;
    let (listener, addr) = super::bind(&args.listen).await?;
    let base = format!("http://{addr}");
    // Links and endpoints in the cloud fronts' answers: Google's clients send no port in Host.
    sim.set_public_url(&base);
    // Clusters created through the clouds' fronts are described over TLS, as the clouds do.
    let tls = sim.serve_members_tls().await?;
    if let Some(dir) = &args.kubeconfig_dir {
        let n = sim.write_kubeconfigs(dir, &base)?;
        eprintln!("wrote {n} kubeconfigs to {}", dir.display());
    }
    eprintln!(
        "rotor sim: {} clusters serving on {base}/clusters/{{name}}/ (started in {:.1}s)",
        args.clusters,
        started.elapsed().as_secs_f64()
    );
    eprintln!(
        "rotor sim: clouds' APIs at {base}/aws (EKS, Route 53, STS), {base}/gcp (GKE, Cloud \
         DNS) and {base}/azure (AKS, Traffic Manager); any credentials are accepted; the \
         clusters they create answer over TLS at {}/clusters/{{name}}/",
        tls.url
    );
    if args.traffic_port.is_some() {
        eprintln!(
            "rotor sim: the traffic each cluster's application answered, for Prometheus to \
             scrape: {base}/metrics (rotor_sim_traffic_*, label member)"
        );
    }
    let grace = Duration::from_secs(args.shutdown_grace_seconds);
    let stop = async move {
        super::shutdown_signal().await;
        eprintln!("stopping (within {}s)", grace.as_secs());
    };
    rotor_apiserver::http::serve_until(listener, sim.router(), stop, grace).await?;
    Ok(())
}
