//! `rotor controllers`: rotor's controllers against any Kubernetes API with rotor's CRDs (a
//! management cluster), under leader election on a Lease there; `/metrics` and probes on a port
//! of their own, as controller-runtime's managers serve them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

#[derive(Args)]
pub struct ControllersArgs {
    /// The Kubernetes API holding rotor's objects (a kubeconfig file; its current context).
    /// Without it: the in-cluster configuration (`KUBERNETES_SERVICE_HOST` and the mounted
    /// ServiceAccount token), else `$KUBECONFIG` or `~/.kube/config`, as kubectl finds them.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The namespace of the Lease `rotor-controllers` the replicas elect their leader on.
    /// Default: the kubeconfig context's namespace; in a pod, the pod's own.
    #[arg(long)]
    pub lease_namespace: Option<String>,
    /// Where to serve `/metrics` (Prometheus text format) and the probes `/healthz` and
    /// `/readyz`, over plain HTTP without credentials: metrics hold counts, never secrets.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub metrics_listen: String,
    /// The controllers' clouds, traffic layers and timings (shared with `rotor serve`).
    #[command(flatten)]
    pub controllers: super::controller_flags::ControllerFlags,
}

/// The client of `--kubeconfig`, or the inferred one, and its default namespace. Errors name
/// the flag or the sources tried, never the kubeconfig's content (it may hold a token).
async fn client(kubeconfig: Option<&Path>) -> anyhow::Result<(kube::Client, String)> {
    let config = match kubeconfig {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("--kubeconfig {}: {e}", path.display()))?;
            rotor_api::client::config(&text, rotor_api::client::Calls::Default)
                .await
                .map_err(|e| anyhow::anyhow!("--kubeconfig {}: {e}", path.display()))?
        }
        None => kube::Config::infer().await.map_err(|_| {
            anyhow::anyhow!(
                "no --kubeconfig, and no other configuration found: neither in a pod \
                 (KUBERNETES_SERVICE_HOST and the ServiceAccount token) nor in $KUBECONFIG or \
                 ~/.kube/config"
            )
        })?,
    };
    let namespace = config.default_namespace.clone();
    let client = kube::Client::try_from(config)
        .map_err(|e| anyhow::anyhow!("the Kubernetes client could not be built: {e}"))?;
    Ok((client, namespace))
}

/// Refuses to start where rotor's CRDs are not installed, saying how to install them (the
/// controllers would otherwise retry their watches forever).
async fn check_crds(client: &kube::Client) -> anyhow::Result<()> {
    let clusters: kube::Api<rotor_api::Cluster> = kube::Api::all(client.clone());
    match clusters
        .list_metadata(&kube::api::ListParams::default().limit(1))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => anyhow::bail!(
            "rotor's CRDs are not installed in this API (clusters.rotor.dev: 404): \
             `rotor crdgen | kubectl apply -f -`, or install the Helm chart"
        ),
        Err(e) => anyhow::bail!("reading clusters.rotor.dev: {e}"),
    }
}

/// `/metrics`, `/healthz` and `/readyz`.
fn router(metrics: Arc<rotor_controllers::metrics::Metrics>) -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route(
            "/metrics",
            get(move || async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    metrics.encode(),
                )
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
}

pub async fn run(args: ControllersArgs) -> anyhow::Result<()> {
    // The flags first, then the API: a mistake is named before anything is reached.
    let (listener, addr) = super::bind(&args.metrics_listen)
        .await
        .map_err(|e| anyhow::anyhow!("--metrics-listen: {e}"))?;
    let (client, default_namespace) = client(args.kubeconfig.as_deref()).await?;
    let namespace = args.lease_namespace.clone().unwrap_or(default_namespace);
    let metrics = Arc::new(rotor_controllers::metrics::Metrics::default());
    let (ctx, _layers) = args
        .controllers
        .context(client.clone(), metrics.clone())
        .await?;
    check_crds(&client).await?;
    eprintln!("metrics on http://{addr}/metrics");
    let grace = args.controllers.grace();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let http = tokio::spawn(rotor_apiserver::http::serve_until(
        listener,
        router(metrics),
        stopped(stop_rx.clone()),
        grace / 5,
    ));
    let election = args.controllers.election(&namespace);
    let controllers = tokio::spawn(rotor_controllers::leader::run_elected(
        ctx,
        election,
        stopped(stop_rx),
    ));
    run_until_stopped(controllers, http, stop_tx, grace).await
}

/// Until SIGTERM or SIGINT, or an election that ends by itself (the Lease unreachable for
/// good: the process then ends, so that its supervisor restarts it); then everything stops
/// within `grace`, the controllers first, which release the Lease.
async fn run_until_stopped(
    mut controllers: tokio::task::JoinHandle<anyhow::Result<()>>,
    http: tokio::task::JoinHandle<std::io::Result<()>>,
    stop: tokio::sync::watch::Sender<bool>,
    grace: Duration,
) -> anyhow::Result<()> {
    let ended = tokio::select! {
        _ = super::shutdown_signal() => None,
        ended = &mut controllers => Some(ended),
    };
    eprintln!("stopping (within {}s)", grace.as_secs());
    let _ = stop.send(true);
    match ended {
        None => super::serve::stop_controllers(controllers, grace * 4 / 5).await,
        Some(ended) => {
            let _ = tokio::time::timeout(grace / 5, http).await;
            return ended?;
        }
    }
    tokio::time::timeout((grace / 5).max(Duration::from_millis(200)), http)
        .await
        .map_err(|_| anyhow::anyhow!("the metrics server did not stop in time"))???;
    Ok(())
}
