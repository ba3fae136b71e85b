//! ServiceAccount issuer discovery and key rotation against `rotor serve`, as kube-apiserver
//! serves them: with an https issuer, `/.well-known/openid-configuration` and `/openid/v1/jwks`
//! list every key — the signing key and the old one given with `--service-account-key-file` —
//! and ServiceAccounts may read them (upstream's `system:service-account-issuer-discovery`), a
//! user without a role may not; a token signed by the old key still authenticates; an
//! independent verifier (PyCA `cryptography`, `sa_verifier.py`) fetching the documents from
//! rotor validates a TokenRequest token and the old key's. With a non-URL issuer nothing is
//! served, as upstream.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::as_user::{kubectl_as, refused};
use common::kubectl::{Kubectl, serve_sqlite};
use rotor_apiserver::auth::ServiceAccountTokens;
use rotor_apiserver::auth::service_account::{Named, generate_key};
use rotor_test_support::kubeconfig::Credentials;
use serde_json::{Value, json};

const ISSUER: &str = "https://rotor.example.test";
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../test-support/sa_verifier.py"
);

/// `sa_verifier.py ARGS`: its stdout, asserting it succeeded.
fn verifier(args: &[&str]) -> String {
    let out = Command::new(rotor_test_support::oidc::python())
        .arg(SCRIPT)
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "sa_verifier.py {}: {}",
        args[0],
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The kid rotor gives the key in the PEM `key`.
fn kid_of(key: &str) -> String {
    let tokens = ServiceAccountTokens::new(ISSUER, &[], key, "key").expect("key");
    tokens.keys()[0].kid.clone()
}

/// A token of `ci/deployer` signed with the old key, as the server signed before the rotation.
fn old_token(old_key: &str, uid: &str) -> String {
    let old = ServiceAccountTokens::new(ISSUER, &[], old_key, "old key").expect("old key");
    let account = Named {
        namespace: "ci".into(),
        name: "deployer".into(),
        uid: uid.into(),
    };
    let now = chrono::Utc::now().timestamp();
    old.issue(&account, &[], now, 600).expect("signed")
}

/// `kubectl get --raw PATH`, parsed.
fn raw_json(k: &Kubectl, path: &str) -> Value {
    serde_json::from_str(&k.ok(&["get", "--raw", path])).expect("json")
}

fn whoami(k: &Kubectl) -> String {
    let review: Value =
        serde_json::from_str(&k.ok(&["auth", "whoami", "-o", "json"])).expect("json");
    review["status"]["userInfo"]["username"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn every_key_is_published_and_an_independent_verifier_accepts_the_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old_key = generate_key().expect("key");
    let old_file = dir.path().join("old.key");
    std::fs::write(&old_file, &old_key).expect("write");
    let old_public = dir.path().join("old.pub");
    std::fs::write(&old_public, verifier(&["public", path(&old_file)])).expect("write");
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "tok-nobody,nobody,u-9,\"\"\n").expect("token file");
    let (db, kc) = (dir.path().join("rotor.db"), dir.path().join("admin.kc"));
    let flags = [
        "--no-controllers",
        "--service-account-issuer",
        ISSUER,
        "--service-account-key-file",
        path(&old_public),
        "--token-auth-file",
        path(&tokens),
    ];
    let (_serve, admin) = serve_sqlite(&db, &kc, &flags);
    admin.ok(&["create", "namespace", "ci"]);
    admin.ok(&["create", "serviceaccount", "deployer", "-n", "ci"]);
    let uid = admin.json(&["get", "serviceaccount", "deployer", "-n", "ci"])["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_string();
    let token = admin.ok(&["create", "token", "deployer", "-n", "ci"]);
    let token = token.trim();
    let old = old_token(&old_key, &uid);
    let as_token = |name: &str, t: &str| kubectl_as(dir.path(), name, &kc, Credentials::Token(t));
    assert_eq!(
        whoami(&as_token("old.kc", &old)),
        "system:serviceaccount:ci:deployer",
        "the old key's token authenticates after the rotation"
    );

    let kept = std::fs::read_to_string(dir.path().join("rotor.db.sa.key")).expect("kept key");
    let jwks = raw_json(&admin, "/openid/v1/jwks");
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid"))
        .collect();
    assert_eq!(kids, [kid_of(&kept), kid_of(&old_key)], "{jwks}");
    for key in jwks["keys"].as_array().expect("keys") {
        assert_eq!(
            (&key["kty"], &key["crv"], &key["alg"], &key["use"]),
            (
                &json!("EC"),
                &json!("P-256"),
                &json!("ES256"),
                &json!("sig")
            ),
            "{key}"
        );
        assert!(
            key.get("d").is_none(),
            "a private key part is published: {key}"
        );
    }
    let server = rotor_test_support::kubeconfig::server(&std::fs::read_to_string(&kc).expect("kc"));
    let config = raw_json(&admin, "/.well-known/openid-configuration");
    assert_eq!(
        config,
        json!({
            "issuer": ISSUER,
            "jwks_uri": format!("{server}/openid/v1/jwks"),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        })
    );

    // The ServiceAccount reads the documents itself (upstream's default binding); PyCA checks
    // its token, and the old key's, against them.
    let ca = dir.path().join("rotor.db.ca.crt");
    for (what, checked) in [("TokenRequest", token), ("old key's", old.as_str())] {
        let out = verifier(&["verify", &server, path(&ca), token, checked, ISSUER]);
        let verified: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(
            verified["claims"]["sub"], "system:serviceaccount:ci:deployer",
            "{what}: {verified}"
        );
        assert_eq!(
            verified["content_types"],
            json!(["application/json", "application/jwk-set+json"]),
            "{what}"
        );
    }
    let nobody = as_token("nobody.kc", "tok-nobody");
    let err = refused(&nobody, &["get", "--raw", "/openid/v1/jwks"]);
    assert!(
        err.contains("Forbidden") || err.contains("forbidden"),
        "{err}"
    );
}

#[test]
fn an_issuer_that_is_no_https_url_serves_no_discovery() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, kc) = (dir.path().join("rotor.db"), dir.path().join("admin.kc"));
    let (_serve, admin) = serve_sqlite(&db, &kc, &["--no-controllers"]);
    for url in ["/.well-known/openid-configuration", "/openid/v1/jwks"] {
        let err = refused(&admin, &["get", "--raw", url]);
        assert!(
            err.contains("NotFound") || err.contains("not found"),
            "{url}: {err}"
        );
    }
}

#[test]
fn a_key_file_without_a_key_stops_serve_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a key\n").expect("write");
    let mut serve = common::process::command(&["serve", "--listen", "127.0.0.1:0"]);
    serve
        .arg("--store")
        .arg(format!("sqlite:{}", dir.path().join("r.db").display()));
    serve.args(["--service-account-key-file", path(&bad)]);
    let said = common::process::serve_refuses(serve);
    let want = format!(
        "--service-account-key-file {}: no PEM key in it",
        bad.display()
    );
    assert!(said.contains(&want), "{said}");
}
