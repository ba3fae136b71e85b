//! OIDC ID tokens against `rotor serve --oidc-*`, through the real kubectl, from an issuer
//! independent of rotor's JWT code (rotor-test-support's `oidc_issuer.py`: PyCA cryptography
//! signs, Python's ssl serves discovery and keys over HTTPS): a valid token is `ISSUER#sub` with
//! its groups prefixed; expired, wrong issuer, wrong audience, unknown key and `alg: none` get
//! 401; tokens naming unknown keys do not make rotor fetch the key set once per request.

use crate::common;

use serde_json::{Value, json};

use common::as_user::{kubectl_as, refused, unauthorized};
use common::kubectl::serve_sqlite;
use rotor_test_support::kubeconfig::Credentials;
use rotor_test_support::oidc::OidcIssuer;

/// Claims of a valid token for `alice` from `issuer`, changed by `change`.
fn claims(issuer: &str, change: impl FnOnce(&mut Value)) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut c = json!({
        "iss": issuer,
        "sub": "alice",
        "aud": ["rotor", "other-app"],
        "exp": now + 600,
        "iat": now,
        "nbf": now,
        "groups": ["dev", "ops"],
    });
    change(&mut c);
    c
}

#[test]
fn oidc_tokens_are_their_user_and_bad_ones_get_401() {
    let issuer = OidcIssuer::start().expect("the test OIDC issuer starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, kc) = (dir.path().join("rotor.db"), dir.path().join("admin.kc"));
    let ca = issuer.ca_file();
    let (_serve, _admin) = serve_sqlite(
        &db,
        &kc,
        &[
            "--no-controllers",
            "--oidc-issuer-url",
            &issuer.url,
            "--oidc-client-id",
            "rotor",
            "--oidc-ca-file",
            ca.to_str().expect("path"),
            "--oidc-groups-claim",
            "groups",
            "--oidc-groups-prefix",
            "oidc:",
        ],
    );
    let as_token = |token: &str| kubectl_as(dir.path(), "oidc.kc", &kc, Credentials::Token(token));

    let valid = issuer.mint(&json!({"claims": claims(&issuer.url, |_| {})}));
    let review: Value =
        serde_json::from_str(&as_token(&valid).ok(&["auth", "whoami", "-o", "json"]))
            .expect("json");
    let info = &review["status"]["userInfo"];
    assert_eq!(
        info["username"],
        format!("{}#alice", issuer.url),
        "{review}"
    );
    assert_eq!(
        info["groups"],
        json!(["oidc:dev", "oidc:ops", "system:authenticated"]),
        "{review}"
    );
    assert_eq!(
        issuer.key_set_fetches(),
        1,
        "fetched once, at the first token"
    );

    let url = issuer.url.clone();
    let since_first_fetch = std::time::Instant::now();
    let cases: Vec<(&str, Value)> = vec![
        (
            "expired",
            json!({"claims": claims(&url, |c| {
                c["exp"] = json!(chrono::Utc::now().timestamp() - 3600);
            })}),
        ),
        (
            "wrong issuer",
            json!({"claims": claims(&url, |c| c["iss"] = json!("https://elsewhere.example"))}),
        ),
        (
            "wrong audience",
            json!({"claims": claims(&url, |c| c["aud"] = json!("other-app"))}),
        ),
        (
            "unknown key",
            json!({"claims": claims(&url, |_| {}), "key": "other"}),
        ),
        (
            "alg none",
            json!({"claims": claims(&url, |_| {}), "alg": "none"}),
        ),
    ];
    for (case, spec) in &cases {
        let token = issuer.mint(spec);
        let err = refused(&as_token(&token), &["auth", "whoami"]);
        assert!(unauthorized(&err), "{case}: {err}");
    }
    // More tokens naming an unknown key: a fetch per `REFETCH_INTERVAL` at most, however many
    // arrive, never one per request.
    for _ in 0..3 {
        let token = issuer.mint(&json!({"claims": claims(&url, |_| {}), "key": "other"}));
        refused(&as_token(&token), &["auth", "whoami"]);
    }
    let fetches = issuer.key_set_fetches();
    let interval = rotor_apiserver::auth::oidc::REFETCH_INTERVAL;
    let allowed = 1 + since_first_fetch.elapsed().as_secs() / interval.as_secs() + 1;
    assert!(
        fetches <= allowed,
        "{fetches} key set fetches for 4 unknown-key tokens in {:?}",
        since_first_fetch.elapsed()
    );
}

/// `--oidc-required-claim`: a token lacking a required claim, or holding another value, gets
/// 401; one holding every required claim is its user. A flag without `=` stops `rotor serve`,
/// naming the flag.
#[test]
fn tokens_without_a_required_claim_get_401() {
    let issuer = OidcIssuer::start().expect("the test OIDC issuer starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, kc) = (dir.path().join("rotor.db"), dir.path().join("admin.kc"));
    let ca = issuer.ca_file();
    let ca = ca.to_str().expect("path");
    let oidc = [
        "--oidc-issuer-url",
        &issuer.url,
        "--oidc-client-id",
        "rotor",
    ];
    let required = [
        "--oidc-required-claim",
        "hd=example.com",
        "--oidc-required-claim",
        "tier=gold",
    ];
    let flags = [
        &["--no-controllers", "--oidc-ca-file", ca][..],
        &oidc,
        &required,
    ]
    .concat();
    let (_serve, _admin) = serve_sqlite(&db, &kc, &flags);
    let as_token = |token: &str| kubectl_as(dir.path(), "oidc.kc", &kc, Credentials::Token(token));
    let with = |hd: Option<&str>, tier: &str| {
        let spec = json!({"claims": claims(&issuer.url, |c| {
            if let Some(hd) = hd {
                c["hd"] = json!(hd);
            }
            c["tier"] = json!(tier);
        })});
        issuer.mint(&spec)
    };

    let whoami = as_token(&with(Some("example.com"), "gold")).ok(&["auth", "whoami", "-o", "json"]);
    let review: Value = serde_json::from_str(&whoami).expect("json");
    assert_eq!(
        review["status"]["userInfo"]["username"],
        format!("{}#alice", issuer.url)
    );
    for (case, token) in [
        ("no hd", with(None, "gold")),
        ("another hd", with(Some("evil.example"), "gold")),
        ("another tier", with(Some("example.com"), "silver")),
    ] {
        let err = refused(&as_token(&token), &["auth", "whoami"]);
        assert!(unauthorized(&err), "{case}: {err}");
    }

    let bad = dir.path().join("bad.db");
    let mut serve = common::process::command(&["serve", "--store"]);
    serve.arg(format!("sqlite:{}", bad.display()));
    serve.args(["--listen", "127.0.0.1:0"]).args(oidc);
    serve.args(["--oidc-required-claim", "hd"]);
    let said = common::process::serve_refuses(serve);
    assert!(
        said.contains("--oidc-required-claim \"hd\": want CLAIM=VALUE"),
        "{said}"
    );
}
