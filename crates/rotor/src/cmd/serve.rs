//! `rotor serve`: the control plane's API over SQLite, etcd (or memory), with rotor's CRDs
//! registered at start, served over TLS, and its controllers.

use clap::Args;
use rotor::controlplane::{control_plane, open_store_with};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
pub struct ServeArgs {
    /// `sqlite:PATH` (durable, the default), `etcd:URL[,URL…]` (an etcd v3 cluster, keys under
    /// `/rotor`, shareable by several `rotor serve`, of which one runs the controllers: see
    /// `--lease-duration-seconds`; `https://` endpoints with `--etcd-cafile`) or `memory`.
    #[arg(long, default_value = "sqlite:rotor.db")]
    pub store: String,
    /// TLS to an etcd store (`https://` endpoints), with a client certificate.
    #[command(flatten)]
    pub etcd: rotor::etcd_flags::EtcdFlags,
    /// Address to serve the API on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: String,
    /// Where to write an admin kubeconfig (default: next to the SQLite file).
    #[arg(long)]
    pub kubeconfig_out: Option<PathBuf>,
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
    /// The key ServiceAccount tokens are signed with (PEM: PKCS#8 ECDSA P-256/P-384 or RSA).
    /// Without it rotor makes one (P-256) on first start and keeps it as it keeps its CA.
    #[arg(long)]
    pub service_account_signing_key_file: Option<PathBuf>,
    /// The `iss` of the ServiceAccount tokens rotor issues, and the only one it accepts for them.
    #[arg(long, default_value = "rotor")]
    pub service_account_issuer: String,
    /// More keys ServiceAccount tokens may be signed with (PEM public or private keys; several
    /// per file), as kube-apiserver's flag: after rotating the signing key, give the old one
    /// here and the tokens it signed stay valid until they expire. Repeatable.
    #[arg(long = "service-account-key-file")]
    pub service_account_key_files: Vec<PathBuf>,
    /// The `jwks_uri` of the issuer's discovery document (`/.well-known/openid-configuration`,
    /// served when the issuer is an https URL); default `https://ADDRESS/openid/v1/jwks` with
    /// this server's address.
    #[arg(long)]
    pub service_account_jwks_uri: Option<String>,
    /// Audiences a token must be for to authenticate here (comma-separated); default the
    /// issuer. Tokens are issued for them unless a TokenRequest names others.
    #[arg(long, value_delimiter = ',')]
    pub api_audiences: Vec<String>,
    #[command(flatten)]
    pub oidc: super::oidc_flags::OidcFlags,
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
    /// Serve the API only; run no controllers.
    #[arg(long)]
    pub no_controllers: bool,
    /// The controllers' clouds, traffic layers and timings (shared with `rotor controllers`).
    #[command(flatten)]
    pub controllers: super::controller_flags::ControllerFlags,
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
/// by the TLS layer), ServiceAccount tokens it issued, OIDC ID tokens, anonymous requests only with `--anonymous-auth`; with `--insecure-http`
/// (loopback only) credential-less requests act as the admin, as kubectl sends no token there.
async fn access(
    args: &ServeArgs,
    token: &str,
    store: &rotor_store::DynStore,
) -> anyhow::Result<rotor_apiserver::ServerConfig> {
    let tokens = match &args.token_auth_file {
        Some(path) => Some(std::sync::Arc::new(rotor_apiserver::auth::TokenFile::read(
            path,
        )?)),
        None => None,
    };
    let accounts = rotor::service_accounts::Flags {
        signing_key_file: args.service_account_signing_key_file.as_deref(),
        issuer: &args.service_account_issuer,
        audiences: &args.api_audiences,
        key_files: &args.service_account_key_files,
        jwks_uri: args.service_account_jwks_uri.as_deref(),
        external_address: external_address(args),
    };
    let service_accounts = rotor::service_accounts::prepare(&args.store, store, &accounts).await?;
    Ok(rotor_apiserver::ServerConfig {
        service_accounts: Some(service_accounts),
        oidc: args.oidc.authenticator()?,
        anonymous: args.insecure_http,
        anonymous_auth: args.anonymous_auth,
        tokens,
        allowed_hosts: Some(args.allowed_hosts.clone()),
        ..rotor::controlplane::admin_only(token.to_string())
    })
}

/// Where clients reach this server, for the issuer's default `jwks_uri`: the listen address,
/// or for a wildcard one the first `--allowed-host` (else loopback) on its port.
fn external_address(args: &ServeArgs) -> String {
    let Ok(addr) = args.listen.parse::<std::net::SocketAddr>() else {
        return args.listen.clone();
    };
    if !addr.ip().is_unspecified() {
        return args.listen.clone();
    }
    let host = args
        .allowed_hosts
        .first()
        .map_or("127.0.0.1", String::as_str);
    format!("{host}:{}", addr.port())
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    check_insecure_http(&args)?;
    let audit = auditor(&args)?;
    let store = open_store_with(&args.store, &args.etcd).await?;
    let token = admin_token(&args.store, &store).await?;
    let access = rotor_apiserver::ServerConfig {
        audit: audit.clone(),
        ..access(&args, &token, &store).await?
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
    let grace = args.controllers.grace();
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
        let client = rotor::client_for(&kubeconfig).await?;
        let (ctx, layers) = args.controllers.context(client, metrics.clone()).await?;
        _layers = Some(layers);
        if args.store.starts_with("etcd:") {
            // A shared store: of the control planes on it, the Lease holder runs the controllers.
            let election = args
                .controllers
                .election(rotor_controllers::leader::LEASE_NAMESPACE);
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
pub(super) async fn stop_controllers(
    mut task: tokio::task::JoinHandle<anyhow::Result<()>>,
    bound: Duration,
) {
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
