//! Process lifecycle: `rotor serve` and `rotor sim` exit 0 within their shutdown grace after
//! SIGTERM, with watches attached and with controllers mid-swap; a second `rotor serve` on a
//! SQLite file another process holds refuses to start; `rotor serve` answers only requests
//! addressed to its names.

use crate::common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::fleet::{one_cluster_with_app, swap};
use common::kubectl::{
    CLUSTER_YAML, Kubectl, Running, free_port, serve_sqlite, start_sim, wait_for_file,
};
use common::process::{append_to, command, exit_within, stop};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rotor_api::{ClusterSwap, Phase, ShifterKind, SwapStrategy};
use rotor_sim::{CloudConfig, SimConfig};

/// The grace the tests configure; a process must be gone within it plus [`MARGIN`].
const GRACE_SECONDS: u64 = 4;
/// Process teardown after the grace (runtime drop, exit): generous, yet far below "never".
const MARGIN: Duration = Duration::from_secs(4);

fn bound() -> Duration {
    Duration::from_secs(GRACE_SECONDS) + MARGIN
}

/// `rotor serve` on the SQLite file `db` with the test grace; returns it and kubectl for it.
fn serve(db: &Path, kc: &Path, extra: &[&str]) -> (Running, Kubectl) {
    let grace = GRACE_SECONDS.to_string();
    let mut args = vec!["--shutdown-grace-seconds", &grace];
    args.extend_from_slice(extra);
    serve_sqlite(db, kc, &args)
}

/// `kubectl get … -w -o name` running, returned once it printed `first_line` (it listed; the
/// watch request follows at once).
fn watching(kubectl: &Kubectl, args: &[&str], first_line: &str) -> Running {
    use std::io::BufRead;
    let mut full = vec!["get"];
    full.extend_from_slice(args);
    full.extend(["-w", "-o", "name", "--request-timeout=0"]);
    let mut child = kubectl
        .command(&full)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let first = lines.next().expect("kubectl printed a line").expect("line");
    assert_eq!(first, first_line, "kubectl get -w listed");
    // Keep reading so kubectl never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Running(child)
}

#[test]
fn sigterm_stops_serve_with_a_watch_attached_within_the_grace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut server, kubectl) = serve(&dir.path().join("rotor.db"), &dir.path().join("kc"), &[]);
    let cluster = dir.path().join("cluster.yaml");
    std::fs::write(&cluster, CLUSTER_YAML).expect("write");
    kubectl.ok(&["apply", "-f", cluster.to_str().expect("path")]);
    let _watch = watching(&kubectl, &["clusters"], "cluster.rotor.dev/prod-sim-a");
    let status = stop(&mut server, bound(), "rotor serve");
    assert!(status.success(), "rotor serve exited with {status}");
}

#[test]
fn sigterm_stops_sim_with_a_watch_attached_within_the_grace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let grace = GRACE_SECONDS.to_string();
    let (mut sim, kubectl) = start_sim(dir.path(), 1, &["--shutdown-grace-seconds", &grace]);
    let _watch = watching(&kubectl, &["namespaces", "default"], "namespace/default");
    let status = stop(&mut sim, bound(), "rotor sim");
    assert!(status.success(), "rotor sim exited with {status}");
}

#[test]
fn a_second_serve_on_the_same_sqlite_file_refuses_until_the_first_is_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("rotor.db");
    let (mut first, _) = serve(&db, &dir.path().join("kc1"), &["--no-controllers"]);
    let (store, listen) = (
        format!("sqlite:{}", db.display()),
        format!("127.0.0.1:{}", free_port()),
    );
    let second = command(&["serve", "--store", &store, "--listen", &listen])
        .stderr(Stdio::piped())
        .spawn()
        .expect("rotor starts");
    let mut second = Running(second);
    let status = exit_within(
        &mut second.0,
        common::kubectl::LIMIT,
        "the second rotor serve",
    );
    assert!(!status.success(), "the second rotor serve must refuse");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.0.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert!(
        stderr.contains(&db.display().to_string())
            && stderr.contains(&format!("pid {}", first.0.id())),
        "the refusal names the file and the holder: {stderr}"
    );

    assert!(stop(&mut first, bound(), "rotor serve").success());
    let (_again, kubectl) = serve(&db, &dir.path().join("kc2"), &["--no-controllers"]);
    kubectl.ok(&["get", "namespaces", "default"]);
}

/// A fleet of one Cluster in an in-process simulator, the sample app in it, served over HTTP.
async fn sim_with_app(
    workload_ready_delay: Duration,
) -> (std::sync::Arc<rotor_sim::Sim>, String, rotor_api::Cluster) {
    let config = SimConfig {
        nodes: 1,
        workload_ready_delay,
        node_ready_delay: Duration::from_millis(50),
        cloud: CloudConfig {
            create_latency: Duration::from_millis(300),
            delete_latency: Duration::from_millis(100),
            ..CloudConfig::default()
        },
        ..SimConfig::default()
    };
    one_cluster_with_app(config, ShifterKind::Sim).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_serve_with_controllers_mid_swap_within_the_grace() {
    // Green's workloads take a minute to be ready: the swap sits in its middle phases.
    let (_sim, sim_url, cluster) = sim_with_app(Duration::from_secs(60)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kc = dir.path().join("kc");
    let (provider, traffic) = (
        format!("sim:{sim_url}"),
        format!("sim:127.0.0.1:{}", free_port()),
    );
    // Stderr kept: after the stop nothing may complain (a watch still reconnecting to the API
    // the process just closed would).
    let log = dir.path().join("serve.log");
    let (store, listen) = (
        format!("sqlite:{}", dir.path().join("rotor.db").display()),
        format!("127.0.0.1:{}", free_port()),
    );
    let grace = GRACE_SECONDS.to_string();
    let mut server = Running(
        command(&[
            "serve",
            "--store",
            &store,
            "--listen",
            &listen,
            "--kubeconfig-out",
            kc.to_str().expect("path"),
            "--shutdown-grace-seconds",
            &grace,
            "--provider",
            &provider,
            "--traffic",
            &traffic,
        ])
        .stderr(append_to(&log))
        .spawn()
        .expect("rotor serve starts"),
    );
    wait_for_file(&kc);
    let client = common::client_from(&kc).await;
    let pp = PatchParams::apply("test");
    Api::<rotor_api::Cluster>::all(client.clone())
        .patch(&cluster.name_any(), &pp, &Patch::Apply(&cluster))
        .await
        .expect("cluster applied");
    let swaps: Api<ClusterSwap> = Api::all(client);
    let swap = swap(
        "mid-swap",
        &cluster.name_any(),
        "1.35.0",
        SwapStrategy::default(),
    );
    swaps
        .create(&PostParams::default(), &swap)
        .await
        .expect("swap created");
    let phase = common::eventually(
        Duration::from_secs(60),
        "the swap past provisioning",
        || async {
            let phase = swaps.get("mid-swap").await.ok()?.status?.phase;
            matches!(
                phase,
                Phase::WaitingForGreen | Phase::Migrating | Phase::Verifying
            )
            .then_some(phase)
        },
    )
    .await;
    eprintln!("SIGTERM in phase {phase:?}");
    let status = tokio::task::block_in_place(|| stop(&mut server, bound(), "rotor serve"));
    assert!(status.success(), "rotor serve exited with {status}");
    let text = std::fs::read_to_string(&log).expect("log");
    let (_, after) = text.split_once("stopping").expect("the stop is logged");
    assert!(
        !after.contains("watch failing") && !after.contains("client error"),
        "nothing complains after the stop:{after}"
    );
}

/// The status line `rotor serve` at `addr` answers to `GET /version` addressed to `host`.
fn status_for_host(addr: &str, host: &str) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(bound())).expect("timeout");
    write!(
        conn,
        "GET /version HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut reply = String::new();
    conn.read_to_string(&mut reply).expect("reply");
    reply.lines().next().unwrap_or_default().to_string()
}

/// A page whose name an attacker points at a loopback `rotor serve` (DNS rebinding) is refused
/// by its `Host`; the server's IP address, localhost and `--allowed-host` names are answered.
#[test]
fn serve_answers_only_requests_addressed_to_its_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kc = dir.path().join("kc");
    let (_serve, _) = serve(
        &dir.path().join("rotor.db"),
        &kc,
        // About the Host check, which TLS does not change: plain HTTP keeps the request raw.
        &[
            "--no-controllers",
            "--insecure-http",
            "--allowed-host",
            "rotor.internal",
        ],
    );
    let kubeconfig = std::fs::read_to_string(&kc).expect("kubeconfig");
    let addr = kubeconfig
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| c == '"' || c.is_whitespace()).next())
        .expect("the server's address in its kubeconfig")
        .to_string();
    let port = addr.rsplit(':').next().expect("port");
    for host in [
        addr.clone(),
        format!("localhost:{port}"),
        format!("rotor.internal:{port}"),
    ] {
        let status = status_for_host(&addr, &host);
        assert!(status.contains(" 200 "), "{host}: {status}");
    }
    let status = status_for_host(&addr, &format!("attacker.example:{port}"));
    assert!(status.contains(" 403 "), "{status}");
}
