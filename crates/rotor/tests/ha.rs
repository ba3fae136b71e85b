//! High availability: several `rotor serve` processes on one etcd, of which exactly one runs the
//! controllers (it holds the Lease kube-system/rotor-controllers). When the leader stops, another
//! takes over: when it shut down cleanly it released the lease, when it was killed the lease runs
//! out first.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::kubectl::{Running, free_port, wait_for_file};
use common::lease::holder;
use common::process::{command, run, sigterm, wait_for_line};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

/// Seconds a lease holds in this test (the default is 15).
const LEASE_SECONDS: u64 = 3;

/// A `rotor serve` process: its identity in the election, and its admin kubeconfig.
struct Serve {
    child: Running,
    identity: String,
    /// `127.0.0.1:PORT`.
    server: String,
    kubeconfig: PathBuf,
    log: PathBuf,
}

impl Serve {
    fn start(dir: &Path, name: &str, etcd: &str) -> Serve {
        Serve::start_with(dir, name, etcd, &[])
    }

    /// With more flags (a provider, a traffic layer).
    fn start_with(dir: &Path, name: &str, etcd: &str, extra: &[String]) -> Serve {
        let kubeconfig = dir.join(format!("{name}.kubeconfig"));
        let log = dir.join(format!("{name}.log"));
        let server = format!("127.0.0.1:{}", free_port());
        let store = format!("etcd:{etcd}");
        let child = command(&["serve", "--store", &store, "--listen", &server])
            .args(["--kubeconfig-out", kubeconfig.to_str().expect("path")])
            .args(["--lease-duration-seconds", &LEASE_SECONDS.to_string()])
            .args(extra)
            .env("ROTOR_LOG", "rotor_controllers::leader=info")
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("rotor serve starts");
        wait_for_file(&kubeconfig);
        let identity = wait_for_line(&log, "controllers run while ")
            .split_whitespace()
            .nth(3)
            .expect("identity")
            .to_string();
        Serve {
            child: Running(child),
            identity,
            server,
            kubeconfig,
            log,
        }
    }

    async fn leases(&self) -> Api<Lease> {
        let yaml = std::fs::read_to_string(&self.kubeconfig).expect("kubeconfig");
        Api::namespaced(
            rotor::client_for(&yaml).await.expect("client"),
            "kube-system",
        )
    }

    async fn client(&self) -> kube::Client {
        let yaml = std::fs::read_to_string(&self.kubeconfig).expect("kubeconfig");
        rotor::client_for(&yaml).await.expect("client")
    }

    async fn metrics(&self) -> String {
        let req = http::Request::get("/metrics")
            .body(Vec::new())
            .expect("request");
        self.client()
            .await
            .request_text(req)
            .await
            .expect("/metrics")
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn terminate(&self) {
        sigterm(&self.child.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_control_plane_leads_and_another_takes_over() {
    let Some(etcd) = common::etcd_process().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Serve::start(dir.path(), "a", &etcd.url);
    let leases = a.leases().await;
    let first = holder(&leases, Some(&a.identity), Duration::from_secs(15)).await;
    let b = Serve::start(dir.path(), "b", &etcd.url);
    assert_ne!(a.identity, b.identity);
    // One credential for all of them (the token lives in etcd), and `rotor kubeconfig` prints it.
    let token = |kc: &Path| {
        let text = std::fs::read_to_string(kc).expect("kubeconfig");
        let doc: serde_json::Value = serde_json::from_str(&text).expect("kubeconfig is JSON");
        doc["users"][0]["user"]["token"]
            .as_str()
            .expect("a token")
            .to_string()
    };
    assert_eq!(token(&a.kubeconfig), token(&b.kubeconfig));
    // One CA too (kept in etcd): each serves with a certificate it signs, which the other's
    // kubeconfig verifies.
    let ca = |kc: &Path| {
        let text = std::fs::read_to_string(kc).expect("kubeconfig");
        let doc: serde_json::Value = serde_json::from_str(&text).expect("kubeconfig is JSON");
        doc["clusters"][0]["cluster"]["certificate-authority-data"].clone()
    };
    assert!(
        ca(&a.kubeconfig).is_string(),
        "TLS verified by the rotor CA"
    );
    assert_eq!(ca(&a.kubeconfig), ca(&b.kubeconfig));
    let store = format!("etcd:{}", etcd.url);
    let (ok, printed, err) = run(&["kubeconfig", "--store", &store, "--server", &b.server]);
    assert!(ok, "rotor kubeconfig: {err}");
    let from_cli: kube::Client = rotor::client_for(&printed).await.expect("client");
    Api::<Lease>::namespaced(from_cli, "kube-system")
        .get("rotor-controllers")
        .await
        .expect("the printed kubeconfig works against b");

    // Over twice the lease duration the leader renews and the follower never takes over.
    let until = Instant::now() + Duration::from_secs(2 * LEASE_SECONDS + 1);
    while Instant::now() < until {
        assert_eq!(holder(&leases, None, Duration::from_secs(5)).await, first);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        a.log_text().contains("controllers started"),
        "{}",
        a.log_text()
    );
    assert!(
        !b.log_text().contains("controllers started"),
        "{}",
        b.log_text()
    );
    // /metrics says who leads, and counts the leader's reconciles.
    assert!(a.metrics().await.contains("rotor_leading 1"));
    assert!(b.metrics().await.contains("rotor_leading 0"));
    let clusters: Api<rotor_api::Cluster> = Api::all(a.client().await);
    let cluster = rotor_api::sample_fleet(1).remove(0);
    clusters
        .create(&kube::api::PostParams::default(), &cluster)
        .await
        .expect("a Cluster");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !a
        .metrics()
        .await
        .contains(r#"rotor_reconciles_total{controller="cluster""#)
    {
        assert!(Instant::now() < deadline, "{}", a.metrics().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !b.metrics().await.contains("rotor_reconciles_total{"),
        "the follower reconciles nothing"
    );
    // The fleet gauges count the leader's caches: one Cluster, in whichever readiness.
    let clusters_counted = |text: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with("rotor_clusters{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let text = a.metrics().await;
    assert_eq!(clusters_counted(&text), 1.0, "{text}");
    assert!(text.contains(r#"rotor_swaps{phase="Pending"} 0"#), "{text}");
    assert!(
        !b.metrics().await.contains("rotor_clusters{"),
        "the follower runs no controller, so it has no caches to count"
    );
    let admin = std::fs::read_to_string(&a.kubeconfig).expect("kubeconfig");
    let stranger = rotor::client_for(&rotor_test_support::kubeconfig::with_credentials(
        &admin,
        rotor_test_support::kubeconfig::Credentials::Token("not-the-token"),
    ))
    .await
    .expect("client");
    let refused = stranger
        .request_text(
            http::Request::get("/metrics")
                .body(Vec::new())
                .expect("request"),
        )
        .await;
    assert!(refused.is_err(), "metrics without the token: {refused:?}");

    // A clean shutdown stops a's controllers and releases the lease; b takes it.
    let b_leases = b.leases().await;
    let stopped = Instant::now();
    a.terminate();
    holder(
        &b_leases,
        Some(&b.identity),
        Duration::from_secs(LEASE_SECONDS + 10),
    )
    .await;
    let handover = stopped.elapsed();
    wait_for_line(&b.log, "controllers started");
    drop(a);

    // A killed leader cannot release it: c takes over once the lease has run out.
    let c = Serve::start(dir.path(), "c", &etcd.url);
    let c_leases = c.leases().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        holder(&c_leases, None, Duration::from_secs(5)).await,
        b.identity
    );
    // b's last renewal before the kill (a later one only moves the expiry later).
    let held = c_leases
        .get("rotor-controllers")
        .await
        .expect("lease")
        .spec
        .expect("spec");
    let renewed = held.renew_time.expect("renewTime").0;
    let expiry = renewed
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(i64::from(
            held.lease_duration_seconds.expect("duration"),
        )))
        .expect("time");
    let killed = Instant::now();
    drop(b);
    holder(
        &c_leases,
        Some(&c.identity),
        Duration::from_secs(3 * LEASE_SECONDS + 10),
    )
    .await;
    let failover = killed.elapsed();
    wait_for_line(&c.log, "controllers started");
    let taken = c_leases
        .get("rotor-controllers")
        .await
        .expect("lease")
        .spec
        .expect("spec")
        .acquire_time
        .expect("acquireTime")
        .0;
    eprintln!("hand-over after a clean stop {handover:?}, fail-over after a kill {failover:?}");
    // Never before b's lease ran out (one clock: every process here is on this machine).
    assert!(
        taken >= expiry,
        "c took the lease at {taken}, b's ran until {expiry}"
    );
}

/// A TCP link that can be cut: the network between one control plane and etcd.
struct Link {
    url: String,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

impl Link {
    async fn to(upstream_url: &str) -> Link {
        let upstream: std::net::SocketAddr = upstream_url
            .trim_start_matches("http://")
            .parse()
            .expect("etcd address");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (is_cut, tracked) = (cut.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                if is_cut.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: the connection is refused once made
                }
                let relay = tokio::spawn(async move {
                    if let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                tracked.lock().expect("conns").push(relay.abort_handle());
            }
        });
        Link {
            url,
            cut,
            conns,
            accept,
        }
    }

    /// Closes every connection through the link and drops every new one.
    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for conn in self.conns.lock().expect("conns").drain(..) {
            conn.abort();
        }
    }
}

/// A leader cut off from etcd cannot renew and, through the same store, cannot read the lease
/// either. Left to itself the lease manager keeps believing it leads; the fence stops its
/// controllers before the lease runs out, so when the other control plane takes over (after
/// expiry) the old leader's controllers are already stopped: never two at once. The leader is
/// cut off in the middle of a long migration (every write to green takes `GREEN_WRITE_DELAY`):
/// the migration, a task outside the reconciles, stops with the controllers — no write to green
/// starts after the old leader stopped — and the new leader resumes it from its checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_etcd_stops_before_another_takes_over() {
    let Some(etcd) = common::etcd_process().await else {
        return;
    };
    let fleet = MigratingFleet::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let link = Link::to(&etcd.url).await;
    let a = Serve::start_with(dir.path(), "a", &link.url, &fleet.serve_args());
    let leases = a.leases().await;
    holder(&leases, Some(&a.identity), Duration::from_secs(15)).await;
    let b = Serve::start_with(dir.path(), "b", &etcd.url, &fleet.serve_args());
    let b_leases = b.leases().await;
    wait_for_line(&a.log, "controllers started");
    assert!(a.metrics().await.contains("rotor_leading 1"));
    // Led for over a lease duration with the fence in place: no flapping while connected.
    tokio::time::sleep(Duration::from_secs(LEASE_SECONDS + 1)).await;
    assert!(a.metrics().await.contains("rotor_leading 1"));
    assert_eq!(
        wait_for_count(&a.log, "controllers started"),
        1,
        "{}",
        a.log_text()
    );
    fleet.start_swap(&a.client().await).await;
    fleet.wait_for_green_writes(Duration::from_secs(60)).await;

    let cut = Instant::now();
    link.cut();
    let deadline = cut + Duration::from_secs(3 * LEASE_SECONDS + 10);
    let (mut a_stopped, mut b_leads) = (None, None);
    while b_leads.is_none() {
        assert!(
            Instant::now() < deadline,
            "a stopped after {a_stopped:?}; b never took over:\n{}",
            a.log_text()
        );
        if a_stopped.is_none() && a.metrics().await.contains("rotor_leading 0") {
            a_stopped = Some(cut.elapsed());
        }
        let held = b_leases
            .get_opt("rotor-controllers")
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec?.holder_identity);
        if held.as_deref() == Some(b.identity.as_str()) {
            b_leads = Some(cut.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("cut at 0: a stopped after {a_stopped:?}, b took the lease after {b_leads:?}");
    let a_stopped = a_stopped.unwrap_or_else(|| panic!("a still leads:\n{}", a.log_text()));
    let b_leads = b_leads.expect("b leads");
    assert!(
        a_stopped < b_leads,
        "a stopped at {a_stopped:?}, b led from {b_leads:?}"
    );
    assert!(
        a.log_text().contains("cannot confirm the lease"),
        "{}",
        a.log_text()
    );
    assert!(
        a_stopped <= Duration::from_secs(LEASE_SECONDS),
        "{a_stopped:?}"
    );
    // Nobody wrote to green between a's stop and b's lead: a's migration stopped with it.
    let between = fleet.green_writes_between(cut + a_stopped, cut + b_leads);
    assert_eq!(between, 0, "writes to green after a stopped, before b led");
    // b resumes the migration where a's checkpoint left it, and the swap goes on.
    fleet
        .wait_for_phase_past_migrating(&b.client().await, Duration::from_secs(90))
        .await;
}

/// A simulated cloud whose one Cluster's blue holds `OBJECTS` ConfigMaps, and where every
/// write to any other instance (green) takes `GREEN_WRITE_DELAY` and is logged: a migration
/// long enough to cut a leader off in the middle of it.
struct MigratingFleet {
    sim_url: String,
    cluster: rotor_api::Cluster,
    green_writes: std::sync::Arc<std::sync::Mutex<Vec<Instant>>>,
    _server: tokio::task::JoinHandle<()>,
}

const OBJECTS: usize = 1000;
const GREEN_WRITE_DELAY: Duration = Duration::from_millis(500);

impl MigratingFleet {
    async fn start() -> MigratingFleet {
        let sim = rotor_sim::Sim::new(rotor_sim::SimConfig {
            nodes: 1,
            node_ready_delay: Duration::from_millis(10),
            cloud: rotor_sim::CloudConfig {
                create_latency: Duration::from_millis(100),
                delete_latency: Duration::from_millis(100),
                ..Default::default()
            },
            ..Default::default()
        });
        let cluster = rotor_api::sample_fleet(1).remove(0);
        let blue = kube::ResourceExt::name_any(&cluster);
        let minor = rotor::rehearsal::minor_of(&cluster.spec.kubernetes_version).expect("minor");
        sim.add_cluster(&blue, minor).await.expect("blue");
        sim.cloud.adopt(&blue, minor);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let sim_url = format!("http://{}", listener.local_addr().expect("addr"));
        let green_writes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let router = sim.router().layer(axum::middleware::from_fn({
            let (log, blue_path) = (green_writes.clone(), format!("/clusters/{blue}/"));
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let log = log.clone();
                let to_green = req.method() != axum::http::Method::GET
                    && req.uri().path().starts_with("/clusters/")
                    && !req.uri().path().starts_with(&blue_path);
                async move {
                    if to_green {
                        log.lock().expect("log").push(Instant::now());
                        tokio::time::sleep(GREEN_WRITE_DELAY).await;
                    }
                    next.run(req).await
                }
            }
        }));
        let server = tokio::spawn(async move {
            let _ = rotor_apiserver::http::serve(listener, router).await;
        });
        let yaml = sim.kubeconfig(&blue, &sim_url).expect("kubeconfig");
        let client = rotor::client_for(&yaml).await.expect("blue client");
        let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client, "default");
        for i in 0..OBJECTS {
            let cm = serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("settings-{i}")},
                "data": {"i": i.to_string()},
            }))
            .expect("ConfigMap");
            cms.create(&Default::default(), &cm)
                .await
                .expect("ConfigMap in blue");
        }
        MigratingFleet {
            sim_url,
            cluster,
            green_writes,
            _server: server,
        }
    }

    fn serve_args(&self) -> Vec<String> {
        vec![
            "--provider".into(),
            format!("sim:{}", self.sim_url),
            "--traffic".into(),
            "sim:127.0.0.1:0".into(),
        ]
    }

    async fn start_swap(&self, client: &kube::Client) {
        let clusters: Api<rotor_api::Cluster> = Api::all(client.clone());
        let mut cluster = self.cluster.clone();
        cluster.metadata.managed_fields = None;
        clusters
            .create(&Default::default(), &cluster)
            .await
            .expect("Cluster");
        let swap = rotor_api::ClusterSwap::new(
            "upgrade",
            rotor_api::ClusterSwapSpec {
                cluster_ref: kube::ResourceExt::name_any(&cluster),
                target: rotor_api::SwapTarget {
                    kubernetes_version: Some(rotor_api::SAMPLE_TARGET_VERSION.into()),
                    ..Default::default()
                },
                strategy: Default::default(),
                paused: false,
                rollback: false,
                hold_before_traffic: false,
            },
        );
        Api::<rotor_api::ClusterSwap>::all(client.clone())
            .create(&Default::default(), &swap)
            .await
            .expect("ClusterSwap");
    }

    async fn wait_for_green_writes(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.green_writes.lock().expect("log").is_empty() {
            assert!(
                Instant::now() < deadline,
                "no write to green within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn green_writes_between(&self, from: Instant, to: Instant) -> usize {
        let log = self.green_writes.lock().expect("log");
        log.iter().filter(|t| **t > from && **t < to).count()
    }

    async fn wait_for_phase_past_migrating(&self, client: &kube::Client, limit: Duration) {
        let swaps: Api<rotor_api::ClusterSwap> = Api::all(client.clone());
        let deadline = Instant::now() + limit;
        loop {
            let phase = swaps
                .get_opt("upgrade")
                .await
                .ok()
                .flatten()
                .and_then(|s| s.status)
                .map(|s| s.phase);
            let past = phase
                .and_then(|p| p.lifecycle_index())
                .zip(rotor_api::Phase::Migrating.lifecycle_index())
                .is_some_and(|(now, migrating)| now > migrating);
            if past {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the swap stayed in {phase:?} after b took over"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn wait_for_count(log: &Path, needle: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches(needle)
        .count()
}
