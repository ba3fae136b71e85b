//! `rotor serve` on an etcd that serves TLS only to clients with a certificate from its CA
//! (`--client-cert-auth`), with kube-apiserver's flags `--etcd-cafile`, `--etcd-certfile` and
//! `--etcd-keyfile`: it serves the API from that etcd and elects its leader there; a client
//! certificate from another CA, none, or a CA that did not sign etcd's certificate stops the
//! start within a bound, naming what failed; the client key is never in its log.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::kubectl::{Running, free_port, wait_for_file};
use common::lease::holder;
use common::process::{command, run, stop, wait_for_line};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use rotor_test_support::certs::Ca;
use rotor_test_support::etcd::{EtcdProcess, EtcdTlsFiles};

/// A refused handshake stops `rotor serve` within this: the store's connect (5 s) and
/// first-read (10 s) bounds, and the process's start.
const REFUSED_WITHIN: Duration = Duration::from_secs(20);

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// `rotor serve --store etcd:https://… --etcd-cafile CA [--etcd-certfile C --etcd-keyfile K]`,
/// its kubeconfig `DIR/NAME.kubeconfig`, its stderr `DIR/NAME.log`.
fn serve(etcd: &EtcdProcess, dir: &Path, name: &str, tls: &[&str]) -> std::process::Command {
    let store = format!("etcd:{}", etcd.url);
    let server = format!("127.0.0.1:{}", free_port());
    let kubeconfig = dir.join(format!("{name}.kubeconfig"));
    let log = dir.join(format!("{name}.log"));
    let mut serve = command(&["serve", "--store", &store, "--listen", &server]);
    serve
        .args(tls)
        .args(["--kubeconfig-out", path(&kubeconfig)])
        .args(["--lease-duration-seconds", "3"])
        // Everything rotor and its TLS and gRPC stack log: the key must be in none of it.
        .env("ROTOR_LOG", "debug")
        .stderr(std::fs::File::create(log).expect("log"));
    serve
}

/// A started `rotor serve` (its kubeconfig written): the process, its election identity, a
/// client with its admin credential, its log.
struct Started {
    process: Running,
    identity: String,
    client: kube::Client,
    kubeconfig: String,
    log: PathBuf,
}

async fn start(etcd: &EtcdProcess, dir: &Path, name: &str, tls: &[&str]) -> Started {
    let process = Running(serve(etcd, dir, name, tls).spawn().expect("spawn"));
    wait_for_file(&dir.join(format!("{name}.kubeconfig")));
    let log = dir.join(format!("{name}.log"));
    let identity = wait_for_line(&log, "controllers run while ")
        .split_whitespace()
        .nth(3)
        .expect("identity")
        .to_string();
    let kubeconfig =
        std::fs::read_to_string(dir.join(format!("{name}.kubeconfig"))).expect("kubeconfig");
    let client = rotor::client_for(&kubeconfig).await.expect("client");
    Started {
        process,
        identity,
        client,
        kubeconfig,
        log,
    }
}

/// The flags naming `files`' CA and client certificate.
fn flags(files: &EtcdTlsFiles) -> Vec<&str> {
    vec![
        "--etcd-cafile",
        path(&files.ca_file),
        "--etcd-certfile",
        path(&files.client_cert_file),
        "--etcd-keyfile",
        path(&files.client_key_file),
    ]
}

/// The log at `log`, asserted free of the client key's base64 body (and of any PEM key).
fn without_key(log: &Path, key_body: &str) -> String {
    let text = std::fs::read_to_string(log).expect("log");
    assert!(!text.is_empty(), "rotor serve logged nothing");
    assert!(!text.contains(key_body), "the client key is in the log");
    assert!(!text.contains("PRIVATE KEY"), "a private key is in the log");
    // Any 64-character line of it (a PEM line) would be a leak just the same.
    for line in key_body.as_bytes().chunks(64).map(String::from_utf8_lossy) {
        assert!(
            !text.contains(line.as_ref()),
            "part of the client key is in the log"
        );
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotor_serve_on_etcd_with_client_certificates_serves_and_elects_a_leader() {
    let Some(etcd) = rotor_test_support::etcd::for_test_tls().await else {
        return;
    };
    let files = etcd.tls.as_ref().expect("a TLS etcd");
    let dir = tempfile::tempdir().expect("tempdir");
    let tls = flags(files);
    let mut a = start(&etcd, dir.path(), "a", &tls).await;
    // The leader election runs through the API, on the store: the Lease is in the TLS etcd.
    let leases: Api<Lease> = Api::namespaced(a.client.clone(), "kube-system");
    holder(&leases, Some(&a.identity), Duration::from_secs(15)).await;
    // The API serves writes and reads, and they are etcd's.
    let maps: Api<ConfigMap> = Api::namespaced(a.client.clone(), "default");
    let map: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "over-tls"}, "data": {"k": "v"}
    }))
    .expect("ConfigMap");
    maps.create(&Default::default(), &map)
        .await
        .expect("create");
    let stored = etcd.keys("/rotor/").await.expect("etcd keys");
    assert!(
        stored.iter().any(|k| k.contains("over-tls")),
        "the ConfigMap is in etcd: {stored:?}"
    );
    assert!(
        stored.iter().any(|k| k.contains("rotor-controllers")),
        "the Lease is in etcd: {stored:?}"
    );
    // `rotor kubeconfig` reaches the same etcd with the same flags.
    let store = format!("etcd:{}", etcd.url);
    let server = yaml_server(&a.kubeconfig);
    let mut args: Vec<&str> = vec!["kubeconfig", "--store", &store, "--server", &server];
    args.extend(&tls);
    let (ok, printed, err) = run(&args);
    assert!(ok, "rotor kubeconfig: {err}");
    let from_cli = rotor::client_for(&printed).await.expect("client");
    let read = Api::<ConfigMap>::namespaced(from_cli, "default")
        .get("over-tls")
        .await
        .expect("read through rotor kubeconfig's credential");
    assert_eq!(read.data.expect("data")["k"], "v");
    // A second control plane on the same etcd, with the same flags, follows; it takes over
    // when the leader stops (and releases the lease).
    let mut b = start(&etcd, dir.path(), "b", &tls).await;
    let through_b = Api::<ConfigMap>::namespaced(b.client.clone(), "default")
        .get("over-tls")
        .await
        .expect("b serves what a wrote");
    assert_eq!(through_b.data.expect("data")["k"], "v");
    assert_eq!(
        holder(&leases, None, Duration::from_secs(5)).await,
        a.identity
    );
    let status = stop(&mut a.process, Duration::from_secs(30), "rotor serve a");
    assert!(status.success(), "{status}");
    let leases_b: Api<Lease> = Api::namespaced(b.client.clone(), "kube-system");
    holder(&leases_b, Some(&b.identity), Duration::from_secs(15)).await;
    let status = stop(&mut b.process, Duration::from_secs(30), "rotor serve b");
    assert!(status.success(), "{status}");
    for log in [&a.log, &b.log] {
        without_key(log, &files.client.key_body());
    }
}

/// `host:port` of the kubeconfig's server.
fn yaml_server(kubeconfig: &str) -> String {
    let doc: serde_json::Value = serde_json::from_str(kubeconfig).expect("kubeconfig is JSON");
    let url = doc["clusters"][0]["cluster"]["server"]
        .as_str()
        .expect("server");
    url.trim_start_matches("https://").to_string()
}

/// `rotor serve` with `tls` fails within [`REFUSED_WITHIN`]; its log.
fn refused(etcd: &EtcdProcess, dir: &Path, name: &str, tls: &[&str], key_body: &str) -> String {
    let log = dir.join(format!("{name}.log"));
    let started = Instant::now();
    let mut serve = Running(serve(etcd, dir, name, tls).spawn().expect("spawn"));
    let status = rotor_test_support::exit_within(&mut serve.0, REFUSED_WITHIN, name);
    let elapsed = started.elapsed();
    let text = without_key(&log, key_body);
    assert!(!status.success(), "{name}: rotor serve started: {text}");
    eprintln!(
        "{name} ({elapsed:?}): {}",
        text.lines().last().unwrap_or_default()
    );
    text
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let file = dir.join(name);
    std::fs::write(&file, text).expect("write");
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotor_serve_stops_when_etcd_refuses_its_certificate_or_it_refuses_etcds() {
    let Some(etcd) = rotor_test_support::etcd::for_test_tls().await else {
        return;
    };
    let files = etcd.tls.as_ref().expect("a TLS etcd");
    let dir = tempfile::tempdir().expect("tempdir");
    let other = Ca::new("another-ca").expect("CA");
    let foreign = other.client("rotor").expect("client");
    let foreign_cert = write(dir.path(), "foreign.crt", &foreign.certificate);
    let foreign_key = write(dir.path(), "foreign.key", &foreign.key);
    let other_ca = write(dir.path(), "other-ca.crt", &other.pem.certificate);
    let ca = path(&files.ca_file);
    let (cert, key) = (path(&files.client_cert_file), path(&files.client_key_file));
    let foreign_flags = [
        "--etcd-cafile",
        ca,
        "--etcd-certfile",
        path(&foreign_cert),
        "--etcd-keyfile",
        path(&foreign_key),
    ];
    let text = refused(
        &etcd,
        dir.path(),
        "foreign",
        &foreign_flags,
        &foreign.key_body(),
    );
    assert!(text.contains(&etcd.url), "{text}");
    assert!(
        text.contains(path(&foreign_cert)),
        "names the client certificate: {text}"
    );
    let text = refused(
        &etcd,
        dir.path(),
        "none",
        &["--etcd-cafile", ca],
        &files.client.key_body(),
    );
    assert!(text.contains("no client certificate"), "{text}");
    let unknown = [
        "--etcd-cafile",
        path(&other_ca),
        "--etcd-certfile",
        cert,
        "--etcd-keyfile",
        key,
    ];
    let text = refused(
        &etcd,
        dir.path(),
        "unknown-ca",
        &unknown,
        &files.client.key_body(),
    );
    assert!(text.contains(path(&other_ca)), "names the CA file: {text}");
    // The flags are checked before any connection: a key that is not the certificate's.
    let mismatched = [
        "--etcd-cafile",
        ca,
        "--etcd-certfile",
        cert,
        "--etcd-keyfile",
        path(&foreign_key),
    ];
    let text = refused(
        &etcd,
        dir.path(),
        "mismatch",
        &mismatched,
        &foreign.key_body(),
    );
    assert!(text.contains("not the certificate's"), "{text}");
    let text = refused(&etcd, dir.path(), "no-ca", &[], &files.client.key_body());
    assert!(text.contains("needs --etcd-cafile"), "{text}");
}
