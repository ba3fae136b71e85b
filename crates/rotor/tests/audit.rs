//! The audit log of `rotor serve --audit-log`, read after a run driven by the real kubectl:
//! one `ResponseComplete` record per mutating request with its user, verb, object and code (a
//! refusal with its 403), a Secret written under a RequestResponse policy recorded at Metadata
//! with none of its data, no credential anywhere, a private file, the drop counter on
//! `/metrics`, and rotation by size.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::kubectl::{Kubectl, Running, serve_sqlite, write_manifest};
use serde_json::Value;

/// Everything at the fullest level: what a careless policy would ask for Secrets too.
const EVERYTHING: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: RequestResponse
";

/// The value of the Secret the test writes; it must appear nowhere in the log.
const SECRET_VALUE: &str = "hunter2-not-for-the-audit-log";

/// `rotor serve` with an audit log at `dir/audit.log` under `policy`, and `extra` flags.
fn serve_audited(dir: &Path, policy: &str, extra: &[&str]) -> (Running, Kubectl, PathBuf) {
    let log = dir.join("audit.log");
    let policy = write_manifest(dir, "policy.yaml", policy);
    let tokens = write_manifest(dir, "tokens.csv", "tok-nobody,nobody,u-9,\"team\"\n");
    let mut args = vec!["--no-controllers", "--token-auth-file", &tokens];
    let log_arg = log.to_str().expect("utf-8 path");
    args.extend(["--audit-log", log_arg, "--audit-policy", &policy]);
    args.extend_from_slice(extra);
    let (serve, admin) = serve_sqlite(&dir.join("rotor.db"), &dir.join("admin.kc"), &args);
    (serve, admin, log)
}

/// Stops `serve` with SIGTERM: the log is flushed and closed once it has exited.
fn stop(mut serve: Running) {
    let status = common::process::stop(&mut serve, Duration::from_secs(30), "rotor serve");
    assert!(status.success(), "rotor serve exited with {status}");
}

fn records(log: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(log).expect("audit log");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn is_mutating(record: &Value) -> bool {
    let verb = record["verb"].as_str().unwrap_or_default();
    matches!(
        verb,
        "create" | "update" | "patch" | "delete" | "deletecollection"
    )
}

/// (user, verb, resource, name, code) of a record.
fn summary(r: &Value) -> (String, String, String, String, u64) {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (
        text(&r["user"]["username"]),
        text(&r["verb"]),
        text(&r["objectRef"]["resource"]),
        text(&r["objectRef"]["name"]),
        r["responseStatus"]["code"].as_u64().unwrap_or_default(),
    )
}

#[test]
fn one_record_per_mutating_request_and_no_secret_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (serve, admin, log) = serve_audited(dir.path(), EVERYTHING, &[]);
    let literal = format!("--from-literal=password={SECRET_VALUE}");
    admin.ok(&["create", "configmap", "cm", "--from-literal=k=visible"]);
    admin.ok(&["create", "secret", "generic", "s", &literal]);
    admin.ok(&["patch", "configmap", "cm", "-p", r#"{"data":{"k":"v2"}}"#]);
    admin.ok(&["get", "secret", "s", "-o", "name"]);
    admin.ok(&["delete", "configmap", "cm"]);
    let refused = admin.run(&["--token=tok-nobody", "create", "configmap", "x"]);
    assert!(!refused.status.success(), "nobody has no role");
    let metrics = admin.ok(&["get", "--raw", "/metrics"]);
    assert!(
        metrics.contains("\nrotor_audit_events_dropped_total 0\n"),
        "{metrics}"
    );
    let token = std::fs::read_to_string(dir.path().join("rotor.db.token")).expect("token");
    stop(serve);

    let mode = std::fs::metadata(&log).expect("log").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the audit log is private");
    let all = records(&log);
    let mutating: Vec<&Value> = all.iter().filter(|r| is_mutating(r)).collect();
    let admin_did = |verb: &str, resource: &str, name: &str, code| {
        let (user, verb) = ("rotor-admin".to_string(), verb.to_string());
        (user, verb, resource.to_string(), name.to_string(), code)
    };
    let nobody = (
        "nobody".into(),
        "create".into(),
        "configmaps".into(),
        "".into(),
        403,
    );
    let expected = vec![
        admin_did("create", "configmaps", "cm", 201),
        admin_did("create", "secrets", "s", 201),
        admin_did("patch", "configmaps", "cm", 200),
        admin_did("delete", "configmaps", "cm", 200),
        nobody,
    ];
    let got: Vec<_> = mutating.iter().map(|r| summary(r)).collect();
    assert_eq!(got, expected, "one record per mutating request, in order");
    for r in &all {
        assert_eq!(r["stage"], "ResponseComplete", "{r}");
        assert_eq!(r["apiVersion"], "audit.k8s.io/v1", "{r}");
        assert_eq!(r["kind"], "Event", "{r}");
    }
    let ids: std::collections::HashSet<&str> =
        all.iter().filter_map(|r| r["auditID"].as_str()).collect();
    assert_eq!(ids.len(), all.len(), "each record its own auditID");

    let created = mutating[0];
    assert_eq!(created["level"], "RequestResponse", "{created}");
    assert_eq!(
        created["requestObject"]["data"]["k"], "visible",
        "{created}"
    );
    assert_eq!(
        created["responseObject"]["metadata"]["name"], "cm",
        "{created}"
    );
    assert_eq!(
        created["annotations"]["authorization.k8s.io/decision"],
        "allow"
    );
    assert_eq!(created["objectRef"]["namespace"], "default");
    assert_eq!(created["objectRef"]["apiVersion"], "v1");
    assert!(
        created["user"]["groups"]
            .to_string()
            .contains("system:masters")
    );

    let refusal = mutating[4];
    assert_eq!(
        refusal["responseStatus"]["reason"], "Forbidden",
        "{refusal}"
    );
    let message = refusal["responseStatus"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("User \"nobody\" cannot create"),
        "{refusal}"
    );
    assert_eq!(
        refusal["annotations"]["authorization.k8s.io/decision"],
        "forbid"
    );

    for secret in all
        .iter()
        .filter(|r| r["objectRef"]["resource"] == "secrets")
    {
        assert_eq!(secret["level"], "Metadata", "{secret}");
        assert!(secret.get("requestObject").is_none(), "{secret}");
        assert!(secret.get("responseObject").is_none(), "{secret}");
    }
    let text = std::fs::read_to_string(&log).expect("log");
    let encoded = base64_of(SECRET_VALUE);
    assert!(
        !text.contains(SECRET_VALUE),
        "the secret's value is in the audit log"
    );
    assert!(
        !text.contains(&encoded),
        "the secret's data is in the audit log"
    );
    assert!(
        !text.contains(token.trim()),
        "the admin token is in the audit log"
    );
    assert!(
        !text.contains("tok-nobody"),
        "a bearer token is in the audit log"
    );
}

#[test]
fn a_full_log_is_rotated_into_a_backup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one_mb = ["--audit-log-maxsize", "1", "--audit-log-maxbackup", "1"];
    let (serve, admin, log) = serve_audited(dir.path(), EVERYTHING, &one_mb);
    // 600 kB of data, in the request and again in the reply: a record over 1 MB.
    let big = write_manifest(dir.path(), "big.txt", &"x".repeat(600_000));
    admin.ok(&[
        "create",
        "configmap",
        "big",
        &format!("--from-file=data={big}"),
    ]);
    admin.ok(&["get", "configmap", "big", "-o", "name"]);
    admin.ok(&["create", "configmap", "small", "--from-literal=k=v"]);
    stop(serve);

    let backups: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("audit-2") && name.ends_with(".log")
        })
        .collect();
    assert_eq!(backups.len(), 1, "one backup kept: {backups:?}");
    let mut all = records(&backups[0]);
    all.extend(records(&log));
    let mutating: Vec<_> = all.iter().filter(|r| is_mutating(r)).map(summary).collect();
    assert_eq!(
        mutating.last().map(|m| m.3.as_str()),
        Some("small"),
        "the newest record is in the current file"
    );
    for file in backups.iter().chain([&log]) {
        let mode = std::fs::metadata(file).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    }
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Two `rotor serve` sharing an etcd store: each records the requests it served in its own file.
#[tokio::test]
async fn each_control_plane_of_a_group_writes_its_own_log() {
    let Some(etcd) = common::etcd_process().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("etcd:{}", etcd.url);
    let start = |name: &str| {
        let log = dir.path().join(format!("{name}-audit.log"));
        let kc = dir.path().join(format!("{name}.kc"));
        let listen = format!("127.0.0.1:{}", common::kubectl::free_port());
        let extra = [
            "--no-controllers",
            "--audit-log",
            log.to_str().expect("path"),
        ];
        let (serve, kubectl) = common::kubectl::start_serve_with(&store, &listen, &kc, &extra);
        (serve, kubectl, log)
    };
    let (serve_a, a, log_a) = start("a");
    let (serve_b, b, log_b) = start("b");
    a.ok(&["create", "configmap", "via-a"]);
    b.ok(&["create", "configmap", "via-b"]);
    stop(serve_a);
    stop(serve_b);
    let created = |log: &Path| -> Vec<String> {
        let records = records(log);
        let creates = records.iter().filter(|r| r["verb"] == "create");
        creates.map(|r| summary(r).3).collect()
    };
    assert_eq!(created(&log_a), ["via-a"]);
    assert_eq!(created(&log_b), ["via-b"]);
}
