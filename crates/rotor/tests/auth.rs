//! `rotor serve` speaks TLS by default and authenticates as kube-apiserver does, checked through
//! the real kubectl: no credentials or a wrong token get 401; a token-file user and a client
//! certificate of the rotor CA (also one `rotor kubeconfig --user` made) are who they say
//! (`kubectl auth whoami`, also through the older kubectl that asks v1beta1); a certificate of another CA is refused; plain HTTP only on
//! loopback and only when asked; the generated CA and certificate are 0600 and a kubeconfig
//! written at first start still works after a restart.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::as_user::{kubectl_as, refused, unauthorized};
use common::kubectl::{Kubectl, LIMIT, free_port, serve_sqlite};
use common::process::{command, exit_within, stop};
use rotor_apiserver::tls::generate;
use rotor_test_support::kubeconfig::{self, Credentials};

const TOKENS: &str = "# user,uid,groups\n\
tok-alice-0123456789,alice,u-1001,\"dev,ops\"\n\
tok-bob-0123456789,bob,u-1002\n";

fn rotor_ca(db: &Path) -> generate::Pem {
    let (cert, key) = rotor::tls::ca_files(db.to_str().expect("path"));
    generate::Pem {
        certificate: std::fs::read_to_string(cert).expect("CA certificate"),
        key: std::fs::read_to_string(key).expect("CA key"),
    }
}

#[test]
fn missing_or_wrong_credentials_get_401_and_users_are_who_they_say() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, kc, tokens) = (
        dir.path().join("rotor.db"),
        dir.path().join("admin.kubeconfig"),
        dir.path().join("tokens.csv"),
    );
    std::fs::write(&tokens, TOKENS).expect("token file");
    let token_flag = tokens.to_str().expect("path");
    let (_serve, admin) = serve_sqlite(
        &db,
        &kc,
        &["--no-controllers", "--token-auth-file", token_flag],
    );
    assert!(
        kubeconfig::server(&std::fs::read_to_string(&kc).expect("kc")).starts_with("https://"),
        "the kubeconfig points at TLS"
    );
    admin.ok(&["get", "clusters.rotor.dev"]);
    let whoami = admin.ok(&["auth", "whoami"]);
    assert!(
        whoami.contains("rotor-admin") && whoami.contains("system:masters"),
        "{whoami}"
    );

    let nobody = kubectl_as(
        dir.path(),
        "none.kc",
        &kc,
        Credentials::UsernameOnly("nobody"),
    );
    let err = refused(&nobody, &["get", "clusters.rotor.dev"]);
    assert!(unauthorized(&err), "{err}");
    let err = refused(&nobody, &["get", "--raw", "/version"]);
    assert!(
        err.contains("Unauthorized"),
        "no anonymous /version either: {err}"
    );
    let err = refused(&admin, &["--token=wrong", "get", "clusters.rotor.dev"]);
    assert!(unauthorized(&err), "{err}");

    let alice = kubectl_as(
        dir.path(),
        "alice.kc",
        &kc,
        Credentials::Token("tok-alice-0123456789"),
    );
    let whoami = alice.ok(&["auth", "whoami"]);
    assert!(whoami.contains("alice"), "{whoami}");
    assert!(whoami.contains("u-1001"), "{whoami}");
    assert!(
        whoami.contains("[dev ops system:authenticated]"),
        "{whoami}"
    );
    // kubectl 1.27 asks v1beta1 (and falls back to v1alpha1).
    if let Some(old) = alice.versioned(27) {
        let whoami = old.ok(&["auth", "whoami"]);
        assert!(whoami.contains("alice"), "kubectl 1.27: {whoami}");
    }
    let bob = kubectl_as(
        dir.path(),
        "bob.kc",
        &kc,
        Credentials::Token("tok-bob-0123456789"),
    );
    let whoami = bob.ok(&["auth", "whoami", "-o", "json"]);
    let review: serde_json::Value = serde_json::from_str(&whoami).expect("json");
    assert_eq!(review["status"]["userInfo"]["username"], "bob", "{review}");
    assert_eq!(
        review["status"]["userInfo"]["groups"],
        serde_json::json!(["system:authenticated"]),
        "{review}"
    );
}

#[test]
fn client_certificates_of_the_rotor_ca_authenticate_and_others_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, kc) = (dir.path().join("rotor.db"), dir.path().join("admin.kc"));
    let (_serve, admin) = serve_sqlite(&db, &kc, &["--no-controllers"]);
    // Authorization is RBAC (tests/rbac.rs): carol's group may read.
    admin.ok(&[
        "create",
        "clusterrolebinding",
        "qa",
        "--clusterrole=rotor-viewer",
        "--group=qa",
    ]);
    let carol = generate::client(&rotor_ca(&db), "carol", Some("qa")).expect("client cert");
    let k = kubectl_as(
        dir.path(),
        "carol.kc",
        &kc,
        Credentials::Certificate {
            cert: &carol.certificate,
            key: &carol.key,
        },
    );
    let whoami = k.ok(&["auth", "whoami"]);
    assert!(whoami.contains("carol"), "{whoami}");
    assert!(whoami.contains("[qa system:authenticated]"), "{whoami}");
    k.ok(&["get", "clusters.rotor.dev"]);
    // `rotor kubeconfig --user` signs one with the CA kept beside the store.
    let server = kubeconfig::server(&std::fs::read_to_string(&kc).expect("kc"));
    let store = format!("sqlite:{}", db.display());
    let (ok, printed, err) = common::process::run(&[
        "kubeconfig",
        "--store",
        &store,
        "--server",
        &server,
        "--user",
        "dave",
        "--group",
        "qa",
    ]);
    assert!(ok, "rotor kubeconfig --user: {err}");
    assert!(
        !printed.contains("token"),
        "a certificate, not the admin token: {printed}"
    );
    let path = dir.path().join("dave.kc");
    std::fs::write(&path, printed).expect("write");
    let whoami = Kubectl::new(path).ok(&["auth", "whoami"]);
    assert!(
        whoami.contains("dave") && whoami.contains("[qa system:authenticated]"),
        "{whoami}"
    );

    // Every Organization is a group: one openssl made with two.
    if let Some(erin) = openssl_client(dir.path(), &db, "/CN=erin/O=qa/O=release") {
        let k = kubectl_as(dir.path(), "erin.kc", &kc, erin.credentials());
        let whoami = k.ok(&["auth", "whoami"]);
        assert!(
            whoami.contains("erin") && whoami.contains("[qa release system:authenticated]"),
            "{whoami}"
        );
    }

    let stranger_ca = generate::certificate_authority().expect("another CA");
    let mallory = generate::client(&stranger_ca, "carol", Some("qa")).expect("client cert");
    let k = kubectl_as(
        dir.path(),
        "mallory.kc",
        &kc,
        Credentials::Certificate {
            cert: &mallory.certificate,
            key: &mallory.key,
        },
    );
    let err = refused(&k, &["get", "clusters.rotor.dev"]);
    assert!(
        err.contains("certificate") || err.contains("tls"),
        "refused in the handshake: {err}"
    );
}

/// `--anonymous-auth` lets credential-less requests in as `system:anonymous`, which reaches
/// `/version` and health and nothing else.
#[test]
fn anonymous_reaches_version_and_health_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, kc) = (dir.path().join("rotor.db"), dir.path().join("admin.kc"));
    let (_serve, _) = serve_sqlite(&db, &kc, &["--no-controllers", "--anonymous-auth"]);
    let nobody = kubectl_as(
        dir.path(),
        "none.kc",
        &kc,
        Credentials::UsernameOnly("nobody"),
    );
    let args = ["get", "--raw", "/version"];
    let version = nobody.ok(&args);
    let version: serde_json::Value =
        serde_json::from_str(version.trim_start_matches(|c| c != '{')).expect("json");
    assert!(version["gitVersion"].is_string(), "{version}");
    let args = ["get", "--raw", "/healthz"];
    let health = nobody.ok(&args);
    assert!(health.ends_with("ok"), "{health}");
    let args = ["get", "clusters.rotor.dev"];
    let err = refused(&nobody, &args);
    assert!(
        err.contains("Forbidden") || err.contains("forbidden"),
        "{err}"
    );
    let args = ["get", "--raw", "/api/v1/secrets"];
    let err = refused(&nobody, &args);
    assert!(err.contains("system:anonymous"), "{err}");
    // kubectl's words for a 403 of its SelfSubjectReview.
    let args = ["auth", "whoami"];
    let err = refused(&nobody, &args);
    assert!(err.contains("do not have permission"), "{err}");
}

#[test]
fn plain_http_only_when_asked_and_only_on_loopback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sqlite:{}", dir.path().join("rotor.db").display());
    let listen = format!("0.0.0.0:{}", free_port());
    let mut refused_serve = command(&["serve", "--store", &store, "--listen", &listen]);
    refused_serve
        .args(["--insecure-http", "--no-controllers"])
        .stderr(Stdio::piped());
    let mut child = common::kubectl::Running(refused_serve.spawn().expect("rotor starts"));
    let status = exit_within(
        &mut child.0,
        LIMIT,
        "rotor serve --insecure-http on 0.0.0.0",
    );
    assert!(
        !status.success(),
        "plain HTTP on a wildcard address must be refused"
    );
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert!(
        stderr.contains("--insecure-http") && stderr.contains(&listen),
        "the refusal names the flag and the address: {stderr}"
    );
    assert!(
        !dir.path().join("rotor.db.kubeconfig").exists(),
        "nothing served"
    );

    // The TLS listener gives a plain-HTTP client nothing.
    let kc = dir.path().join("admin.kc");
    let (_serve, _) = serve_sqlite(&dir.path().join("tls.db"), &kc, &["--no-controllers"]);
    let text = std::fs::read_to_string(&kc).expect("kc");
    let http = kubeconfig::server(&text).replace("https://", "http://");
    let plain = dir.path().join("plain.kc");
    std::fs::write(&plain, kubeconfig::with_server(&text, &http)).expect("write");
    refused(&Kubectl::new(plain), &["get", "namespaces"]);

    // Asked for on loopback, it serves plain HTTP.
    let kc = dir.path().join("insecure.kc");
    let (_serve, k) = serve_sqlite(
        &dir.path().join("insecure.db"),
        &kc,
        &["--no-controllers", "--insecure-http"],
    );
    let text = std::fs::read_to_string(&kc).expect("kc");
    assert!(kubeconfig::server(&text).starts_with("http://"), "{text}");
    k.ok(&["get", "namespaces", "default"]);
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("file").permissions().mode() & 0o777
}

#[test]
fn generated_files_are_private_and_reused_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("rotor.db");
    let first_kc = dir.path().join("first.kc");
    let port = free_port();
    let store = format!("sqlite:{}", db.display());
    let listen = format!("127.0.0.1:{port}");
    let start =
        |kc: &Path| common::kubectl::start_serve_with(&store, &listen, kc, &["--no-controllers"]);
    let (mut serve, k) = start(&first_kc);
    k.ok(&["get", "namespaces", "default"]);
    let files: Vec<PathBuf> = ["ca.crt", "ca.key", "tls.crt", "tls.key"]
        .iter()
        .map(|f| dir.path().join(format!("rotor.db.{f}")))
        .collect();
    let before: Vec<String> = files
        .iter()
        .map(|f| {
            assert_eq!(mode(f), 0o600, "{}", f.display());
            std::fs::read_to_string(f).expect("read")
        })
        .collect();
    assert!(stop(&mut serve, Duration::from_secs(15), "rotor serve").success());

    let (_serve, _) = start(&dir.path().join("second.kc"));
    // The kubeconfig of the first start verifies the second.
    Kubectl::new(first_kc).ok(&["get", "namespaces", "default"]);
    for (file, text) in files.iter().zip(&before) {
        let now = std::fs::read_to_string(file).expect("read");
        assert_eq!(&now, text, "{} was made anew", file.display());
    }
}

/// A client certificate and key (PEM) openssl made and signed with the rotor CA of `db`.
struct OpensslCert {
    cert: String,
    key: String,
}

impl OpensslCert {
    fn credentials(&self) -> Credentials<'_> {
        Credentials::Certificate {
            cert: &self.cert,
            key: &self.key,
        }
    }
}

/// None (the part skipped) where openssl is not installed.
fn openssl_client(dir: &Path, db: &Path, subject: &str) -> Option<OpensslCert> {
    let found = rotor_test_support::find_binary("OPENSSL", "openssl", &["/usr/bin"]);
    let openssl = rotor_test_support::required("openssl", found)?;
    let (cert_file, key_file) = rotor::tls::ca_files(db.to_str().expect("path"));
    let (key, csr, crt, ext) = (
        dir.join("o.key"),
        dir.join("o.csr"),
        dir.join("o.crt"),
        dir.join("o.ext"),
    );
    std::fs::write(&ext, "extendedKeyUsage=clientAuth\n").expect("ext");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&openssl)
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    let p = |path: &PathBuf| path.to_str().expect("path").to_string();
    run(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &p(&key),
        "-subj",
        subject,
        "-out",
        &p(&csr),
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        &p(&csr),
        "-CA",
        &p(&cert_file),
        "-CAkey",
        &p(&key_file),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        &p(&ext),
        "-out",
        &p(&crt),
    ]);
    Some(OpensslCert {
        cert: std::fs::read_to_string(crt).expect("certificate"),
        key: std::fs::read_to_string(key).expect("key"),
    })
}
