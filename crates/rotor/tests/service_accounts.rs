//! ServiceAccount tokens `rotor serve` issues, checked through the real kubectl: `kubectl create
//! token` gives a token that is the ServiceAccount (`auth whoami`), RBAC follows a RoleBinding
//! to it (`auth can-i`, the real verb) and refuses an unbound one with upstream's 403; a token
//! expired, of a deleted (within the token cache's TTL) or deleted and recreated
//! ServiceAccount, or signed by another key gets 401; durations under ten minutes and unknown
//! ServiceAccounts are refused as upstream.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::as_user::{kubectl_as, refused, unauthorized};
use common::kubectl::{Kubectl, serve_sqlite};
use rotor_apiserver::auth::ServiceAccountTokens;
use rotor_apiserver::auth::service_account::{Named, generate_key};
use rotor_test_support::kubeconfig::Credentials;

/// kubectl presenting `token`.
fn with_token(dir: &Path, admin_kc: &Path, name: &str, token: &str) -> Kubectl {
    kubectl_as(dir, name, admin_kc, Credentials::Token(token))
}

/// The created TokenReview of `token` (through `kubectl create -f`).
fn token_review(dir: &Path, admin: &Kubectl, token: &str) -> serde_json::Value {
    let review = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token},
    });
    let file = dir.join("review.json");
    std::fs::write(&file, review.to_string()).expect("write");
    admin.json(&["create", "-f", file.to_str().expect("path")])
}

/// The uid of ServiceAccount `name` in `ci`.
fn uid_of(admin: &Kubectl, name: &str) -> String {
    admin.json(&["get", "serviceaccount", name, "-n", "ci"])["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_string()
}

#[test]
fn created_tokens_are_their_service_account_and_rbac_follows_bindings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, kc) = (dir.path().join("rotor.db"), dir.path().join("admin.kc"));
    let (_serve, admin) = serve_sqlite(&db, &kc, &["--no-controllers"]);
    admin.ok(&["create", "namespace", "ci"]);
    admin.ok(&["create", "serviceaccount", "deployer", "-n", "ci"]);
    admin.ok(&["create", "serviceaccount", "idle", "-n", "ci"]);
    admin.ok(&[
        "create",
        "role",
        "reader",
        "-n",
        "ci",
        "--verb=get,list",
        "--resource=configmaps",
    ]);
    admin.ok(&[
        "create",
        "rolebinding",
        "deployer-reads",
        "-n",
        "ci",
        "--role=reader",
        "--serviceaccount=ci:deployer",
    ]);

    let token = admin.ok(&["create", "token", "deployer", "-n", "ci", "--duration=20m"]);
    let deployer = with_token(dir.path(), &kc, "deployer.kc", token.trim());
    let review: serde_json::Value =
        serde_json::from_str(&deployer.ok(&["auth", "whoami", "-o", "json"])).expect("json");
    let info = &review["status"]["userInfo"];
    assert_eq!(
        info["username"], "system:serviceaccount:ci:deployer",
        "{review}"
    );
    assert_eq!(info["uid"], uid_of(&admin, "deployer").as_str(), "{review}");
    assert_eq!(
        info["groups"],
        serde_json::json!([
            "system:serviceaccounts",
            "system:serviceaccounts:ci",
            "system:authenticated"
        ]),
        "{review}"
    );
    let cases = [
        (
            &["auth", "can-i", "list", "configmaps", "-n", "ci"][..],
            "yes",
        ),
        (
            &["auth", "can-i", "list", "configmaps", "-n", "default"][..],
            "no",
        ),
        (
            &["auth", "can-i", "delete", "configmaps", "-n", "ci"][..],
            "no",
        ),
    ];
    for (args, want) in cases {
        let out = deployer.run(args);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            want,
            "{args:?}"
        );
    }
    deployer.ok(&["get", "configmaps", "-n", "ci"]);
    // A component checks a token it was shown (TokenReview): who it is, the token not echoed.
    let review = token_review(dir.path(), &admin, token.trim());
    assert_eq!(review["status"]["authenticated"], true, "{review}");
    assert_eq!(
        review["status"]["user"]["username"], "system:serviceaccount:ci:deployer",
        "{review}"
    );
    assert!(
        !review.to_string().contains(token.trim()),
        "the token echoed"
    );
    let review = token_review(dir.path(), &admin, "not-a-token");
    assert_eq!(review["status"]["authenticated"], false, "{review}");

    let token = admin.ok(&["create", "token", "idle", "-n", "ci"]);
    let idle = with_token(dir.path(), &kc, "idle.kc", token.trim());
    let err = refused(&idle, &["get", "configmaps", "-n", "ci"]);
    assert!(
        err.contains(r#"configmaps is forbidden: User "system:serviceaccount:ci:idle" cannot list resource "configmaps" in API group "" in the namespace "ci""#),
        "{err}"
    );
    // A deleted ServiceAccount's tokens stop working — once the verdict cached at the 403
    // above has expired, within the cache's TTL (upstream's 10 s) — and stay dead once one of
    // the same name is made again (another uid).
    admin.ok(&["delete", "serviceaccount", "idle", "-n", "ci"]);
    let deleted = std::time::Instant::now();
    let bound = rotor_apiserver::auth::token_cache::TTL + std::time::Duration::from_secs(5);
    while idle.run(&["auth", "whoami"]).status.success() {
        assert!(
            deleted.elapsed() < bound,
            "still authenticated {bound:?} after the deletion"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let err = refused(&idle, &["auth", "whoami"]);
    assert!(unauthorized(&err), "deleted: {err}");
    admin.ok(&["create", "serviceaccount", "idle", "-n", "ci"]);
    let err = refused(&idle, &["auth", "whoami"]);
    assert!(unauthorized(&err), "recreated: {err}");
}

#[test]
fn expired_foreign_and_malformed_requests_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, kc) = (dir.path().join("rotor.db"), dir.path().join("admin.kc"));
    let (_serve, admin) = serve_sqlite(&db, &kc, &["--no-controllers"]);
    admin.ok(&["create", "namespace", "ci"]);
    admin.ok(&["create", "serviceaccount", "deployer", "-n", "ci"]);
    let account = Named {
        namespace: "ci".into(),
        name: "deployer".into(),
        uid: uid_of(&admin, "deployer"),
    };
    // The key rotor made on first start, kept 0600 beside the store.
    let key_file = rotor::service_accounts::key_file(db.to_str().expect("path"));
    let mode = std::fs::metadata(&key_file)
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{}", key_file.display());
    let kept = std::fs::read_to_string(&key_file).expect("key");
    let now = chrono::Utc::now().timestamp();
    let sign = |key: &str, issued: i64| {
        ServiceAccountTokens::new("rotor", &[], key, "test")
            .expect("key")
            .issue(&account, &[], issued, 600)
            .expect("signed")
    };
    // A token signed here with the server's key and the current time is accepted: the cases
    // below fail for the one thing each changes.
    let fresh = with_token(dir.path(), &kc, "fresh.kc", &sign(&kept, now));
    assert!(
        fresh
            .ok(&["auth", "whoami"])
            .contains("system:serviceaccount:ci:deployer")
    );
    let cases = [
        ("expired an hour ago", sign(&kept, now - 4200)),
        (
            "signed by another key",
            sign(&generate_key().expect("key"), now),
        ),
        ("not a JWT", "abc.def.ghi".to_string()),
    ];
    for (case, token) in cases {
        let k = with_token(dir.path(), &kc, "case.kc", &token);
        let err = refused(&k, &["auth", "whoami"]);
        assert!(unauthorized(&err), "{case}: {err}");
    }

    let err = refused(
        &admin,
        &["create", "token", "deployer", "-n", "ci", "--duration=5m"],
    );
    assert!(
        err.contains(r#"TokenRequest.authentication.k8s.io "deployer" is invalid: spec.expirationSeconds: Invalid value: 300: may not specify a duration less than 10 minutes"#),
        "{err}"
    );
    let err = refused(&admin, &["create", "token", "missing", "-n", "ci"]);
    assert!(
        err.contains(r#"serviceaccounts "missing" not found"#),
        "{err}"
    );
}

/// Control planes sharing an etcd share the signing key (kept in etcd by the first to start):
/// a token one issues authenticates at the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_planes_sharing_etcd_accept_each_others_tokens() {
    let Some(etcd) = common::etcd_process().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("etcd:{}", etcd.url);
    let serve = |name: &str| {
        let kc = dir.path().join(format!("{name}.kc"));
        let listen = format!("127.0.0.1:{}", common::kubectl::free_port());
        let (running, admin) =
            common::kubectl::start_serve_with(&store, &listen, &kc, &["--no-controllers"]);
        (running, admin, kc)
    };
    let (_a, admin_a, _) = serve("a");
    let (_b, _, kc_b) = serve("b");
    admin_a.ok(&["create", "namespace", "ci"]);
    admin_a.ok(&["create", "serviceaccount", "deployer", "-n", "ci"]);
    let token = admin_a.ok(&["create", "token", "deployer", "-n", "ci"]);
    let at_b = with_token(dir.path(), &kc_b, "at-b.kc", token.trim());
    let whoami = at_b.ok(&["auth", "whoami"]);
    assert!(
        whoami.contains("system:serviceaccount:ci:deployer"),
        "{whoami}"
    );
}
