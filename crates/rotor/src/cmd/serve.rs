//! `rotor serve` and `rotor kubeconfig`: the control plane's API over SQLite (or memory), with
//! rotor's CRDs registered at start.

use clap::Args;
use rotor::controlplane::{control_plane, open_store};
use std::path::PathBuf;

#[derive(Args)]
pub struct ServeArgs {
    /// `sqlite:PATH` (durable, the default), `etcd:URL[,URL…]` (an etcd v3 cluster, keys under
    /// `/rotor`, shareable by several `rotor serve`; until leader election exists run the
    /// controllers in one of them only, `--no-controllers` elsewhere) or `memory`.
    #[arg(long, default_value = "sqlite:rotor.db")]
    pub store: String,
    /// Address to serve the API on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: String,
    /// Where to write an admin kubeconfig (default: next to the SQLite file).
    #[arg(long)]
    pub kubeconfig_out: Option<PathBuf>,
    /// A cloud for the controllers: `sim:URL` (the simulated cloud of `rotor sim`). Repeatable.
    #[arg(long = "provider")]
    pub providers: Vec<String>,
    /// A traffic layer for the controllers: `haproxy:SOCKET` (HAProxy's admin runtime socket)
    /// or `sim:LISTEN` (an embedded weighted router). Repeatable.
    #[arg(long = "traffic")]
    pub traffic: Vec<String>,
    /// Serve the API only; run no controllers.
    #[arg(long)]
    pub no_controllers: bool,
}

#[derive(Args)]
pub struct KubeconfigArgs {
    /// The store given to `rotor serve`.
    #[arg(long, default_value = "sqlite:rotor.db")]
    pub store: String,
    /// The address `rotor serve` listens on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub server: String,
}

/// The token file beside a SQLite store: the admin credential survives restarts.
fn token_path(store: &str) -> Option<PathBuf> {
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

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let store = open_store(&args.store).await?;
    let token = load_or_create_token(&args.store)?;
    let server = control_plane(
        store,
        Some(token.clone()),
        rotor::controlplane::is_loopback(&args.listen),
    )
    .await?;
    let (listener, addr) = super::bind(&args.listen).await?;
    let kubeconfig_path = args.kubeconfig_out.clone().or_else(|| {
        args.store
            .strip_prefix("sqlite:")
            .map(|p| PathBuf::from(format!("{p}.kubeconfig")))
    });
    if let Some(path) = &kubeconfig_path {
        rotor_sim::write_secret_file(
            path,
            &rotor_sim::kubeconfig_yaml("rotor", &format!("http://{addr}"), &token),
        )?;
    }
    eprintln!(
        "rotor control plane serving on http://{addr} (store {}){}",
        args.store,
        kubeconfig_path
            .map(|p| format!(", kubeconfig {}", p.display()))
            .unwrap_or_default()
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let http = tokio::spawn(rotor_apiserver::http::serve_until(
        listener,
        server.router(),
        stopped(stop_rx.clone()),
    ));
    let mut _layers = None;
    let controllers = if args.no_controllers {
        None
    } else {
        let wiring = rotor::controlplane::Wiring {
            providers: args.providers.clone(),
            traffic: args.traffic.clone(),
        };
        let kubeconfig = rotor_sim::kubeconfig_yaml("rotor", &format!("http://{addr}"), &token);
        let (ctx, layers) = rotor::controlplane::controller_context(
            &kubeconfig,
            &wiring,
            rotor_controllers::Settings::default(),
        )
        .await?;
        if let Some((_, sim)) = &layers.sim {
            eprintln!(
                "embedded traffic router on http://{}/<endpoint>/",
                sim.local_addr()
            );
        }
        _layers = Some(layers);
        Some(tokio::spawn(rotor_controllers::run(
            std::sync::Arc::new(ctx),
            stopped(stop_rx),
        )))
    };
    super::shutdown_signal().await;
    let _ = stop_tx.send(true);
    if let Some(c) = controllers {
        let _ = c.await;
    }
    http.await??;
    Ok(())
}

pub fn kubeconfig(args: KubeconfigArgs) -> anyhow::Result<()> {
    let path = token_path(&args.store).ok_or_else(|| {
        anyhow::anyhow!(
            "--store {}: only sqlite:PATH stores keep a token",
            args.store
        )
    })?;
    let token = std::fs::read_to_string(&path).map_err(|e| {
        anyhow::anyhow!(
            "reading {}: {e} (has `rotor serve --store {}` run?)",
            path.display(),
            args.store
        )
    })?;
    let server = if args.server.starts_with("http") {
        args.server.clone()
    } else {
        format!("http://{}", args.server)
    };
    println!(
        "{}",
        rotor_sim::kubeconfig_yaml("rotor", &server, token.trim())
    );
    Ok(())
}
