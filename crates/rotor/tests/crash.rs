//! Crash anywhere: `rotor serve` (control plane + controllers, SQLite store) is killed with
//! SIGKILL at random moments during one swap and restarted each time. The swap still converges,
//! the simulated cloud saw exactly one green ever created and keeps no orphan, and the steady
//! load through HAProxy never saw a failed request.

use crate::common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::fleet::{one_cluster_with_app, serve_router, sim_config, swap};
use common::kubectl::{Running, free_port};
use common::process::{append_to, command};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rotor::rehearsal::{APP_NAME, APP_NAMESPACE};
use rotor_api::{Cluster, ClusterSwap, Phase, ShifterKind, SwapStrategy};
use rotor_sim::{CloudConfig, Fault, Sim, SimConfig};
use rotor_traffic::TrafficShifter as _;
use rotor_traffic::haproxy::{ConfigOptions, EndpointConfig, HaproxyProcess, find_haproxy};
use rotor_traffic::load::{Load, Mix};

const KILLS: usize = 20;
/// `rotor serve --drain-timeout-seconds`: how long Draining lasts while streams stay on blue.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A small xorshift: the kill moments vary per run, and the seed is printed to replay one.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// `rotor serve` with controllers on the SQLite file `store`, its log appended to `log` (every
/// life adds to it), killed with SIGKILL when dropped.
fn rotor_serve(
    store: &Path,
    listen: SocketAddr,
    sim_url: &str,
    traffic: &str,
    log: &Path,
) -> Running {
    let (store, listen, provider) = (
        format!("sqlite:{}", store.display()),
        listen.to_string(),
        format!("sim:{sim_url}"),
    );
    let child = command(&["serve", "--store", &store, "--listen", &listen])
        .args(["--provider", &provider, "--traffic", traffic])
        .args([
            "--drain-timeout-seconds",
            &DRAIN_TIMEOUT.as_secs().to_string(),
        ])
        .env("ROTOR_LOG", "info")
        .stderr(append_to(log))
        .spawn()
        .expect("rotor serve starts");
    Running(child)
}

/// A loopback address free when asked.
fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// A kill schedule's seed: the time, printed so that a failing run can be replayed.
fn seed() -> u64 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    eprintln!("kill schedule seed {seed}");
    seed
}

/// Applies `cluster` once `rotor serve` answers (it may still be starting).
async fn apply_cluster(clusters: &Api<Cluster>, cluster: &Cluster) {
    common::eventually(Duration::from_secs(20), "a Cluster is applied", || async {
        let mut c = cluster.clone();
        c.metadata.managed_fields = None;
        clusters
            .patch(
                &c.name_any(),
                &PatchParams::apply("test").force(),
                &Patch::Apply(&c),
            )
            .await
            .ok()
    })
    .await;
}

/// A client of `rotor serve` once it wrote its kubeconfig to `path`.
async fn client_once_written(path: &Path) -> kube::Client {
    common::eventually(
        Duration::from_secs(20),
        "rotor serve writes its kubeconfig",
        || async { path.exists().then_some(()) },
    )
    .await;
    common::client_from(path).await
}

/// Waits until the app at `url` answers through HAProxy (once the Cluster controller attached
/// blue).
async fn answers_through_haproxy(url: &str) {
    let urls = [url.to_string()];
    common::eventually(
        Duration::from_secs(30),
        "the app answers through HAProxy",
        || async {
            let r = rotor_traffic::load::run(&urls, 1, 1, Duration::from_secs(2)).await;
            (r.failed == 0).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_survives_sigkill_of_the_control_plane_20_times() {
    let mut rng = Rng(seed());
    let dir = tempfile::tempdir().expect("tempdir");

    // The simulated fleet of one cluster, its cloud, and HAProxy in front of it.
    // The sample application runs in blue.
    let config = sim_config(Duration::from_millis(1500), Duration::from_millis(500));
    let (sim, sim_url, cluster) = one_cluster_with_app(config, ShifterKind::Haproxy).await;
    let name = cluster.name_any();
    let frontend = free_addr();
    let haproxy = HaproxyProcess::start(
        &[EndpointConfig::new(&cluster.spec.traffic.endpoint, frontend).expect("endpoint")],
        Duration::from_secs(10),
    )
    .await
    .expect("haproxy starts");

    // rotor serve, the first life.
    let store = dir.path().join("rotor.db");
    let log = dir.path().join("serve.log");
    let listen = free_addr();
    let traffic = format!(
        "haproxy:{},config={}",
        haproxy.socket_path().display(),
        haproxy.config_path().display()
    );
    let start = || rotor_serve(&store, listen, &sim_url, &traffic, &log);
    let mut serve = start();
    let client = client_once_written(&dir.path().join("rotor.db.kubeconfig")).await;
    let clusters: Api<Cluster> = Api::all(client.clone());
    let swaps: Api<ClusterSwap> = Api::all(client.clone());
    apply_cluster(&clusters, &cluster).await;

    // The app answers through HAProxy once the Cluster controller attached blue.
    let url = format!("http://{frontend}/{APP_NAMESPACE}/{APP_NAME}");
    answers_through_haproxy(&url).await;
    // Writes, slow requests and streams too. The streams opened on blue stay there until blue's
    // workloads stop, so Draining lasts the whole drain timeout: a phase the kills land in, and
    // the drain must survive them.
    let mix = Mix {
        post_percent: 20,
        slow_percent: 10,
        streams: 2,
    };
    let load = Load::start_mixed(vec![url.clone()], 4, rotor_traffic::CLIENT_TIMEOUT, mix);

    // Long enough for all the kills at their slowest (20 × 1.1 s plus restarts), now that a
    // restarted control plane picks the swap up faster (migration outside the reconcile).
    let strategy = SwapStrategy {
        traffic_steps: vec![25, 100],
        bake_seconds: 2,
        blue_retention_seconds: 12,
        ..Default::default()
    };
    let swap = swap("crash-upgrade", &name, "1.35.0", strategy);
    swaps
        .create(&PostParams::default(), &swap)
        .await
        .expect("swap created");

    // Kill and restart at random moments while the swap runs.
    let mut phases_at_kill = Vec::new();
    let mut kills_mid_swap = 0;
    while kills_mid_swap < KILLS && phases_at_kill.len() < 3 * KILLS {
        tokio::time::sleep(Duration::from_millis(300 + rng.below(800))).await;
        let phase = swaps
            .get("crash-upgrade")
            .await
            .ok()
            .and_then(|s| s.status)
            .map(|s| s.phase);
        if phase.is_some_and(|p| p.is_terminal()) {
            break;
        }
        if phase.is_some() {
            kills_mid_swap += 1;
        }
        phases_at_kill.push(phase);
        drop(serve); // SIGKILL
        tokio::time::sleep(Duration::from_millis(rng.below(200))).await;
        serve = start();
    }
    eprintln!("phases seen at the kills: {phases_at_kill:?}");
    assert!(
        kills_mid_swap >= KILLS,
        "only {kills_mid_swap} kills landed while the swap ran: {phases_at_kill:?}"
    );
    let distinct: std::collections::BTreeSet<_> = phases_at_kill.iter().flatten().collect();
    assert!(
        distinct.len() >= 4,
        "the kills should land in several phases, saw {phases_at_kill:?}"
    );

    // Now let it finish.
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        if let Ok(s) = swaps.get("crash-upgrade").await
            && s.status.as_ref().is_some_and(|st| st.phase.is_terminal())
        {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the swap did not converge after the kills; serve log:\n{}",
            tail(&log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let report = load.stop().await;
    let status = done.status.clone().unwrap_or_default();
    assert_eq!(
        status.phase,
        Phase::Succeeded,
        "history {:?}\n{}",
        status.history,
        tail(&log)
    );
    let path: Vec<Phase> = status.history.iter().map(|t| t.phase).collect();
    assert_eq!(
        path,
        Phase::LIFECYCLE[1..].to_vec(),
        "every phase once, in order"
    );
    assert_eq!(report.failed, 0, "{report:?}");
    assert!(report.requests > 1000, "{report:?}");
    assert_eq!(
        report.streams.broken + report.streams.refused,
        0,
        "streams are moved gracefully: {report:?}"
    );
    // Exactly one green was ever created, and nothing but green remains.
    assert_eq!(sim.cloud.created_total(), 1);
    let green = status.green_instance.clone().expect("green");
    let remaining: Vec<String> = sim.cloud.list().into_iter().map(|c| c.name).collect();
    assert_eq!(remaining, vec![green.clone()], "orphan instances");
    let c = clusters
        .get(&name)
        .await
        .expect("cluster")
        .status
        .unwrap_or_default();
    assert_eq!(c.active_instance.as_deref(), Some(green.as_str()));
    drop(serve);
}

fn tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// A staged rollout over `rotor serve`, SIGKILLed and restarted again and again: it resumes
/// from its status every time and never starts a swap twice (one swap per cluster, one green
/// per cluster ever created, no orphan instance).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_survives_sigkill_of_the_control_plane_without_starting_a_swap_twice() {
    use rotor_api::{Rollout, RolloutPhase};
    let mut rng = Rng(seed());
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::new(SimConfig {
        nodes: 1,
        workload_ready_delay: Duration::from_millis(100),
        node_ready_delay: Duration::from_millis(50),
        traffic_port: Some(free_port()),
        cloud: CloudConfig {
            create_latency: Duration::from_millis(300),
            delete_latency: Duration::from_millis(100),
            ..CloudConfig::default()
        },
        ..SimConfig::default()
    });
    let fleet = rotor_api::sample_fleet(6);
    for c in &fleet {
        sim.add_cluster(&c.name_any(), 34).await.expect("blue");
        sim.cloud.adopt(&c.name_any(), 34);
    }
    let sim_url = serve_router(sim.router()).await;
    let store = dir.path().join("rotor.db");
    let log = dir.path().join("serve.log");
    let (listen, router_addr) = (free_addr(), free_addr());
    let traffic = format!("sim:{router_addr}");
    let start = || rotor_serve(&store, listen, &sim_url, &traffic, &log);
    let mut serve = start();
    let client = client_once_written(&dir.path().join("rotor.db.kubeconfig")).await;
    let clusters: Api<Cluster> = Api::all(client.clone());
    for c in &fleet {
        apply_cluster(&clusters, c).await;
    }
    let mut rollout = rotor_api::sample_rollout("crash-rollout", "1.35.0");
    rollout.spec.max_concurrent_swaps = 2;
    rollout.spec.bake_seconds_between_waves = 1;
    rollout.spec.strategy.blue_retention_seconds = 1;
    let rollouts: Api<Rollout> = Api::all(client.clone());
    common::eventually(
        Duration::from_secs(20),
        "the Rollout is created",
        || async { rollouts.create(&PostParams::default(), &rollout).await.ok() },
    )
    .await;

    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(180);
    let done = loop {
        tokio::time::sleep(Duration::from_millis(400 + rng.below(1200))).await;
        let status = rollouts
            .get("crash-rollout")
            .await
            .ok()
            .and_then(|r| r.status);
        if let Some(st) = &status
            && st.phase == RolloutPhase::Succeeded
        {
            break st.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the rollout did not finish: {status:?}\n{}",
            tail(&log)
        );
        if kills < 15 {
            drop(serve); // SIGKILL
            kills += 1;
            tokio::time::sleep(Duration::from_millis(rng.below(200))).await;
            serve = start();
        }
    };
    assert!(kills >= 10, "only {kills} kills before the rollout ended");
    assert_eq!(done.counts.succeeded, 6, "{:?}", done.counts);
    // One swap per cluster, one green per cluster, nothing else left in the cloud.
    let swaps: Api<ClusterSwap> = Api::all(client.clone());
    let all = swaps.list(&Default::default()).await.expect("swaps").items;
    assert_eq!(all.len(), 6);
    let mut clusters_swapped: Vec<String> =
        all.iter().map(|s| s.spec.cluster_ref.clone()).collect();
    clusters_swapped.sort();
    clusters_swapped.dedup();
    assert_eq!(clusters_swapped.len(), 6);
    assert_eq!(sim.cloud.created_total(), 6, "a green was created twice");
    let mut remaining: Vec<String> = sim.cloud.list().into_iter().map(|c| c.name).collect();
    let mut greens: Vec<String> = all
        .iter()
        .filter_map(|s| s.status.clone().and_then(|st| st.green_instance))
        .collect();
    remaining.sort();
    greens.sort();
    assert_eq!(remaining, greens, "orphan or missing instances");
    drop(serve);
}

/// `rotor serve` refuses an HAProxy whose config lacks what zero downtime relies on, naming the
/// setting, instead of starting and promising it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_an_haproxy_config_without_redispatch() {
    let endpoint = EndpointConfig::new("web", free_addr()).expect("endpoint");
    let haproxy = HaproxyProcess::start(&[endpoint], Duration::from_secs(10))
        .await
        .expect("haproxy starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let full = std::fs::read_to_string(haproxy.config_path()).expect("config");
    let lacking = dir.path().join("haproxy.cfg");
    std::fs::write(&lacking, full.replace("    option redispatch 1\n", "")).expect("write");
    let traffic = format!(
        "haproxy:{},config={}",
        haproxy.socket_path().display(),
        lacking.display()
    );
    let store = format!("sqlite:{}", dir.path().join("rotor.db").display());
    let listen = free_addr().to_string();
    let mut serve = command(&["serve", "--store", &store, "--listen", &listen]);
    serve
        .args([
            "--provider",
            "sim:http://127.0.0.1:1",
            "--traffic",
            &traffic,
        ])
        .stderr(std::process::Stdio::piped());
    let run = move || serve.output();
    let out = tokio::time::timeout(Duration::from_secs(30), tokio::task::spawn_blocking(run))
        .await
        .expect("rotor serve ends within 30 s")
        .expect("joined")
        .expect("rotor serve runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "rotor serve started: {stderr}");
    assert!(
        stderr.contains("backend ep_web: option redispatch: unset"),
        "{stderr}"
    );
}

/// An operator's HAProxy logs each request to `rotor serve` (`log=ADDR`): the latency gate
/// judges green on the requests those lines timed. Once green serves everything and blue is
/// retained, 500 more requests are answered by green; then green turns slow, the p99 gate fails
/// — counting those 500 among the step's requests, which only the log lines can tell it — and
/// the swap rolls back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_judges_latency_from_an_operator_haproxys_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = sim_config(Duration::from_millis(300), Duration::from_millis(200));
    let (sim, sim_url, cluster) = one_cluster_with_app(config, ShifterKind::Haproxy).await;
    let frontend = free_addr();
    let log_to = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free UDP port");
    let options = ConfigOptions {
        latency_log: Some(log_to),
        ..ConfigOptions::default()
    };
    let binary = find_haproxy().expect("haproxy is installed (.ci/install-test-deps.sh)");
    let endpoint = EndpointConfig::new(&cluster.spec.traffic.endpoint, frontend).expect("endpoint");
    let haproxy =
        HaproxyProcess::start_with(&binary, &[endpoint], &options, Duration::from_secs(10))
            .await
            .expect("haproxy starts");
    let traffic = format!(
        "haproxy:{},config={},log={log_to}",
        haproxy.socket_path().display(),
        haproxy.config_path().display()
    );
    let log = dir.path().join("serve.log");
    let _serve = rotor_serve(
        &dir.path().join("rotor.db"),
        free_addr(),
        &sim_url,
        &traffic,
        &log,
    );
    let client = client_once_written(&dir.path().join("rotor.db.kubeconfig")).await;
    apply_cluster(&Api::all(client.clone()), &cluster).await;
    let url = format!("http://{frontend}/{APP_NAMESPACE}/{APP_NAME}");
    answers_through_haproxy(&url).await;
    let load = Load::start(vec![url], 4, rotor_traffic::CLIENT_TIMEOUT);
    let strategy = SwapStrategy {
        traffic_steps: vec![100],
        bake_seconds: 1,
        blue_retention_seconds: 60,
        health_gates: rotor_api::HealthGates {
            max_latency_p99_ms: Some(500),
            ..Default::default()
        },
        ..Default::default()
    };
    let swaps: Api<ClusterSwap> = Api::all(client);
    let created = swap("slow-green", &cluster.name_any(), "1.35.0", strategy);
    swaps
        .create(&PostParams::default(), &created)
        .await
        .expect("swap created");
    // Draining read the gates before it gave way to Retaining: the step's window has begun.
    let retaining = common::eventually(Duration::from_secs(60), "blue retained", || async {
        let st = swaps.get("slow-green").await.ok()?.status?;
        (st.phase == Phase::Retaining).then_some(st)
    })
    .await;
    let endpoint = &cluster.spec.traffic.endpoint;
    let stats = haproxy.shifter();
    let answered = || async {
        stats
            .backend_stats(endpoint)
            .await
            .ok()
            .map(|s| s.green.requests)
    };
    let before = answered().await.expect("HAProxy's statistics");
    common::eventually(
        Duration::from_secs(30),
        "500 requests answered by green",
        || async { (answered().await? >= before + 500).then_some(()) },
    )
    .await;
    let green = retaining.green_instance.expect("green");
    assert!(sim.set_fault(&green, Fault::TrafficSlow), "fault set");
    let done = common::eventually(Duration::from_secs(60), "the swap ends", || async {
        let st = swaps.get("slow-green").await.ok()?.status?;
        st.phase.is_terminal().then_some(st)
    })
    .await;
    load.stop().await;
    assert_eq!(
        done.phase,
        Phase::RolledBack,
        "{:?}\n{}",
        done.history,
        tail(&log)
    );
    let rollback = done
        .history
        .iter()
        .find(|t| t.phase == Phase::RollingBack)
        .expect("RollingBack recorded");
    let timed: u64 = rollback
        .message
        .split("latency over ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not the latency gate: {}", rollback.message));
    assert!(
        timed > 0,
        "no request timed from the log: {}",
        rollback.message
    );
}
