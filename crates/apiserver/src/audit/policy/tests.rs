use super::*;
use crate::authz::attributes::of_request;
use crate::request::Query;

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo {
        name: name.into(),
        uid: String::new(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn attrs(method: &str, path: &str) -> Attributes {
    let method = http::Method::from_bytes(method.as_bytes()).expect("method");
    of_request(&method, path, &Query::parse(None))
}

/// The level of a request by `who` under `policy`.
fn level(policy: &Policy, who: Option<&UserInfo>, method: &str, path: &str) -> Level {
    policy.decide(who, &attrs(method, path)).level
}

const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    users: ["system:kube-proxy"]
  - level: None
    nonResourceURLs: ["/healthz*", "/version"]
  - level: RequestResponse
    userGroups: [auditors]
    verbs: [create, patch]
    resources:
      - group: rotor.dev
        resources: [clusters, "rollouts/*"]
  - level: Request
    resources:
      - group: ""
        resources: ["pods/log", "*/status"]
  - level: Metadata
    resources:
      - group: ""
        resources: [configmaps]
        resourceNames: [settings]
    namespaces: [prod]
    omitStages: [Panic]
    omitManagedFields: true
  - level: RequestResponse
    resources:
      - group: ""
        resources: [secrets]
  - level: Request
    namespaces: [web]
  - level: Metadata
    nonResourceURLs: ["/metrics"]
"#;

#[test]
fn the_first_matching_rule_decides() {
    let p = Policy::parse(POLICY).expect("policy");
    let kp = user("system:kube-proxy", &["auditors"]);
    let ann = user("ann", &["auditors", "system:authenticated"]);
    let bob = user("bob", &[]);
    let clusters = "/apis/rotor.dev/v1alpha1/clusters";
    assert_eq!(level(&p, Some(&kp), "POST", clusters), Level::None);
    assert_eq!(
        level(&p, Some(&ann), "POST", clusters),
        Level::RequestResponse
    );
    // Not in the group, another verb, or another group's resource: later rules (none here).
    assert_eq!(level(&p, Some(&bob), "POST", clusters), Level::None);
    assert_eq!(level(&p, Some(&ann), "GET", clusters), Level::None);
    let other = "/apis/apps/v1/namespaces/x/deployments";
    assert_eq!(level(&p, Some(&ann), "POST", other), Level::None);
    // Users and groups need an authenticated user.
    assert_eq!(level(&p, None, "POST", clusters), Level::None);
}

#[test]
fn resources_subresources_and_wildcards() {
    let p = Policy::parse(POLICY).expect("policy");
    let ann = user("ann", &["auditors"]);
    let bob = user("bob", &[]);
    // `rollouts/*`: the resource and each of its subresources.
    let rollout = "/apis/rotor.dev/v1alpha1/rollouts/r";
    assert_eq!(
        level(&p, Some(&ann), "PATCH", rollout),
        Level::RequestResponse
    );
    let status = "/apis/rotor.dev/v1alpha1/rollouts/r/status";
    assert_eq!(
        level(&p, Some(&ann), "PATCH", status),
        Level::RequestResponse
    );
    // `pods/log` only the subresource; `*/status` any core status.
    let pod = "/api/v1/namespaces/a/pods/p";
    assert_eq!(
        level(&p, Some(&bob), "GET", &format!("{pod}/log")),
        Level::Request
    );
    assert_eq!(level(&p, Some(&bob), "GET", pod), Level::None);
    let status = "/api/v1/namespaces/a/services/s/status";
    assert_eq!(level(&p, Some(&bob), "PUT", status), Level::Request);
    // A `*/status` rule does not match a status in another group.
    let status = "/apis/apps/v1/namespaces/a/deployments/d/status";
    assert_eq!(level(&p, Some(&bob), "PUT", status), Level::None);
}

#[test]
fn names_namespaces_and_paths() {
    let p = Policy::parse(POLICY).expect("policy");
    let bob = user("bob", &[]);
    let settings = "/api/v1/namespaces/prod/configmaps/settings";
    let d = p.decide(Some(&bob), &attrs("PUT", settings));
    assert_eq!(d.level, Level::Metadata);
    assert!(d.omit_managed_fields, "the rule's omitManagedFields");
    assert!(!d.records(Stage::Panic) && !d.records(Stage::RequestReceived));
    assert!(d.records(Stage::ResponseComplete));
    let other = "/api/v1/namespaces/prod/configmaps/other";
    assert_eq!(level(&p, Some(&bob), "PUT", other), Level::None);
    let elsewhere = "/api/v1/namespaces/dev/configmaps/settings";
    assert_eq!(level(&p, Some(&bob), "PUT", elsewhere), Level::None);
    // A namespace rule covers every resource there, and no path.
    let web = "/apis/apps/v1/namespaces/web/deployments";
    assert_eq!(level(&p, Some(&bob), "POST", web), Level::Request);
    assert_eq!(level(&p, Some(&bob), "GET", "/healthz/ready"), Level::None);
    assert_eq!(level(&p, Some(&bob), "GET", "/metrics"), Level::Metadata);
    assert_eq!(level(&p, Some(&bob), "GET", "/openapi/v2"), Level::None);
    // A rule with no resource field matches paths too.
    let any = Policy::metadata_for_everything();
    assert_eq!(level(&any, None, "GET", "/openapi/v2"), Level::Metadata);
    assert_eq!(level(&any, None, "DELETE", web), Level::Metadata);
}

#[test]
fn secrets_are_never_recorded_above_metadata() {
    let p = Policy::parse(POLICY).expect("policy");
    let bob = user("bob", &[]);
    for path in [
        "/api/v1/namespaces/a/secrets",
        "/api/v1/namespaces/a/secrets/s",
        "/api/v1/secrets",
        "/api/v1/namespaces/web/secrets/s",
        "/api/v1/namespaces/a/serviceaccounts/default/token",
    ] {
        for method in ["POST", "PUT", "PATCH", "GET", "DELETE"] {
            let got = level(&p, Some(&bob), method, path);
            assert!(got <= Level::Metadata, "{method} {path}: {got:?}");
        }
    }
    assert_eq!(
        level(&p, Some(&bob), "GET", "/api/v1/namespaces/a/secrets/s"),
        Level::Metadata,
        "clamped, not dropped"
    );
    let everything = Policy::parse(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: RequestResponse}]\n",
    )
    .expect("policy");
    let secret = "/api/v1/namespaces/a/secrets/s";
    assert_eq!(level(&everything, None, "PUT", secret), Level::Metadata);
    let review = "/apis/authentication.k8s.io/v1/tokenreviews";
    assert_eq!(level(&everything, None, "POST", review), Level::Metadata);
    // A custom resource that happens to be called secrets is not the core kind.
    let custom = "/apis/example.com/v1/namespaces/a/secrets/s";
    assert_eq!(
        level(&everything, None, "PUT", custom),
        Level::RequestResponse
    );
}

#[test]
fn no_matching_rule_records_nothing() {
    let p = Policy::parse("apiVersion: audit.k8s.io/v1\nkind: Policy\n").expect("policy");
    assert_eq!(level(&p, None, "GET", "/api/v1/namespaces"), Level::None);
}

#[test]
fn a_bad_file_is_refused_naming_the_file_and_the_field() {
    let dir = tempfile::tempdir().expect("dir");
    let cases = [
        ("rules:\n  - level: Everything\n", "rules[0].level"),
        ("rules:\n  - levle: Metadata\n", "levle"),
        ("rules:\n  - users: [a]\n", "rules[0].level: Required value"),
        (
            "rules:\n  - level: Metadata\n    resources: [{resources: [pods]}]\n    \
             nonResourceURLs: [/x]\n",
            "rules[0].nonResourceURLs",
        ),
        (
            "rules:\n  - level: Metadata\n    nonResourceURLs: [healthz]\n",
            "rules[0].nonResourceURLs[0]",
        ),
        ("omitStages: [Sometimes]\n", "omitStages"),
    ];
    for (i, (rules, field)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("policy-{i}.yaml"));
        let text = format!("apiVersion: audit.k8s.io/v1\nkind: Policy\n{rules}");
        std::fs::write(&path, text).expect("write");
        let err = Policy::read(&path).expect_err(rules).to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains(field), "{field} in {err}");
    }
    let path = dir.path().join("wrong-version.yaml");
    std::fs::write(&path, "apiVersion: audit.k8s.io/v1beta1\nkind: Policy\n").expect("write");
    let err = Policy::read(&path).expect_err("v1beta1").to_string();
    assert!(err.contains("apiVersion"), "{err}");
    let missing = dir.path().join("missing.yaml");
    let err = Policy::read(&missing).expect_err("missing").to_string();
    assert!(err.contains("missing.yaml"), "{err}");
}
