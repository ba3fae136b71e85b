//! Authorization through RBAC, checked through the real kubectl against `rotor serve`: users
//! with client certificates (`rotor kubeconfig --user`) bound to each shipped ClusterRole, and
//! one bound to none; for each role, verb and kind, `kubectl auth can-i` answers and the real
//! verb is allowed or refused with upstream's 403. The operator acts through the rotor CLI but
//! cannot change what a rollout rolls out; `can-i --list` shows a viewer its rules; `/metrics`
//! is for users whose roles grant it.

use crate::common;

use std::path::Path;

use common::kubectl::{CLUSTER_YAML, Kubectl, serve_sqlite, write_manifest};

const ROLLOUT_YAML: &str = r#"apiVersion: rotor.dev/v1alpha1
kind: Rollout
metadata: {name: NAME}
spec:
  clusterSelector: {}
  target: {kubernetesVersion: "1.35"}
  waves: [{name: canary, count: 1}]
"#;

const SWAP_YAML: &str = r#"apiVersion: rotor.dev/v1alpha1
kind: ClusterSwap
metadata:
  name: NAME
  labels: {rotor.dev/rollout: fleet, rotor.dev/cluster: prod-sim-a}
spec:
  clusterRef: prod-sim-a
  target: {kubernetesVersion: "1.35"}
"#;

const SECRET_YAML: &str = r#"apiVersion: v1
kind: Secret
metadata: {name: NAME, namespace: default}
stringData: {password: not-a-real-one}
"#;

/// The kinds of the table: (kubectl's name, plural, API group, manifest with `NAME`).
const KINDS: [(&str, &str, &str, &str); 4] = [
    ("clusters.rotor.dev", "clusters", "rotor.dev", CLUSTER_YAML),
    (
        "clusterswaps.rotor.dev",
        "clusterswaps",
        "rotor.dev",
        SWAP_YAML,
    ),
    ("rollouts.rotor.dev", "rollouts", "rotor.dev", ROLLOUT_YAML),
    ("secrets", "secrets", "", SECRET_YAML),
];

const VERBS: [&str; 6] = ["get", "list", "watch", "create", "patch", "delete"];

/// A user of the table: its name and the role it is bound to (None: no role).
const USERS: [(&str, Option<&str>); 4] = [
    ("vic", Some("rotor-viewer")),
    ("olga", Some("rotor-operator")),
    ("ada", Some("rotor-admin")),
    ("nobody", None),
];

/// What each shipped role may do, written out by hand (docs/rbac.md says the same).
fn expected(role: Option<&str>, plural: &str, verb: &str) -> bool {
    let read = matches!(verb, "get" | "list" | "watch");
    let rotor_kind = plural != "secrets";
    match role {
        Some("rotor-viewer") => rotor_kind && read,
        Some("rotor-operator") => {
            rotor_kind && (read || (plural == "clusterswaps" && verb == "delete"))
        }
        Some("rotor-admin") => true,
        _ => false,
    }
}

/// A manifest of `template` naming its object `name`.
fn manifest(template: &str, name: &str) -> String {
    match template == CLUSTER_YAML {
        true => template.replace("name: prod-sim-a", &format!("name: {name}")),
        false => template.replace("NAME", name),
    }
}

/// kubectl as `user` (group `group`), with a client certificate `rotor kubeconfig` signed.
fn user(dir: &Path, db: &Path, admin_kc: &Path, name: &str, group: &str) -> Kubectl {
    let admin = std::fs::read_to_string(admin_kc).expect("admin kubeconfig");
    let server = rotor_test_support::kubeconfig::server(&admin);
    let store = format!("sqlite:{}", db.display());
    let args = [
        "kubeconfig",
        "--store",
        &store,
        "--server",
        &server,
        "--user",
        name,
        "--group",
        group,
    ];
    let (ok, printed, err) = common::process::run(&args);
    assert!(ok, "rotor kubeconfig --user {name}: {err}");
    let path = dir.join(format!("{name}.kc"));
    std::fs::write(&path, printed).expect("write kubeconfig");
    Kubectl::new(path)
}

/// A served control plane with the table's users bound to their roles and objects to act on:
/// `seed` of each kind, and `<user>-x` for each user to delete.
struct Fixture {
    dir: tempfile::TempDir,
    _serve: common::kubectl::Running,
    admin: Kubectl,
    users: Vec<(&'static str, Option<&'static str>, Kubectl)>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, admin_kc) = (dir.path().join("rotor.db"), dir.path().join("admin.kc"));
    let (serve, admin) = serve_sqlite(&db, &admin_kc, &["--no-controllers"]);
    let mut users = Vec::new();
    for (name, role) in USERS {
        let k = user(dir.path(), &db, &admin_kc, name, &format!("{name}-team"));
        if let Some(role) = role {
            // Bound by group: the certificate's Organization.
            let group = format!("--group={name}-team");
            let binding = format!("{name}-{role}");
            admin.ok(&[
                "create",
                "clusterrolebinding",
                &binding,
                "--clusterrole",
                role,
                &group,
            ]);
        }
        users.push((name, role, k));
    }
    let mut names = vec!["seed".to_string()];
    names.extend(USERS.iter().map(|(u, _)| format!("{u}-x")));
    for (_, _, _, template) in KINDS {
        for name in &names {
            let file = write_manifest(dir.path(), "seed.yaml", &manifest(template, name));
            admin.ok(&["create", "-f", &file]);
        }
    }
    Fixture {
        dir,
        _serve: serve,
        admin,
        users,
    }
}

/// The kubectl arguments of `verb` on `kind` as `user`.
fn verb_args(dir: &Path, user: &str, verb: &str, kind: (&str, &str, &str, &str)) -> Vec<String> {
    let (resource, plural, group, template) = kind;
    let own = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    match verb {
        "get" => own(&["get", resource, "seed", "-o", "name"]),
        "list" => own(&["get", resource, "-o", "name"]),
        "watch" => {
            let path = match group {
                "" => format!("/api/v1/namespaces/default/{plural}"),
                g => format!("/apis/{g}/v1alpha1/{plural}"),
            };
            own(&[
                "get",
                "--raw",
                &format!("{path}?watch=true&timeoutSeconds=1"),
            ])
        }
        "create" => {
            let name = format!("{user}-new");
            let file = write_manifest(
                dir,
                &format!("{user}-{plural}.yaml"),
                &manifest(template, &name),
            );
            own(&["create", "-f", &file])
        }
        "patch" => own(&[
            "patch",
            resource,
            "seed",
            "--type=merge",
            "-p",
            &format!(r#"{{"metadata":{{"labels":{{"touched-by":"{user}"}}}}}}"#),
        ]),
        "delete" => own(&["delete", resource, &format!("{user}-x"), "--wait=false"]),
        other => panic!("no kubectl command for {other}"),
    }
}

/// Upstream's 403 for `verb` on `kind` by `user`.
fn refusal(user: &str, verb: &str, kind: (&str, &str, &str, &str)) -> String {
    let (_, plural, group, _) = kind;
    let qualified = match group {
        "" => plural.to_string(),
        g => format!("{plural}.{g}"),
    };
    let named = match verb {
        "get" | "patch" => format!("{qualified} \"seed\""),
        "delete" => format!("{qualified} \"{user}-x\""),
        _ => qualified,
    };
    let scope = match group {
        "" => "in the namespace \"default\"".to_string(),
        _ => "at the cluster scope".to_string(),
    };
    format!(
        "{named} is forbidden: User \"{user}\" cannot {verb} resource \"{plural}\" in API group \"{group}\" {scope}"
    )
}

#[test]
fn each_role_may_do_what_it_grants_and_gets_upstreams_403_otherwise() {
    let f = fixture();
    for (name, role, k) in &f.users {
        for kind in KINDS {
            let (resource, plural, _, _) = kind;
            for verb in VERBS {
                let allowed = expected(*role, plural, verb);
                let case = format!("{name} ({role:?}) {verb} {resource}");
                let can_i = k.run(&["auth", "can-i", verb, resource]);
                let answer = String::from_utf8_lossy(&can_i.stdout).trim().to_string();
                match allowed {
                    true => assert_eq!(answer, "yes", "can-i: {case}"),
                    false => assert_eq!(answer, "no", "can-i: {case}"),
                }
                assert_eq!(can_i.status.success(), allowed, "can-i exit code: {case}");
                let args = verb_args(f.dir.path(), name, verb, kind);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let out = k.run(&args);
                let stderr = String::from_utf8_lossy(&out.stderr);
                if allowed {
                    assert!(out.status.success(), "{case} was refused: {stderr}");
                    continue;
                }
                assert!(!out.status.success(), "{case} was allowed");
                assert!(stderr.contains("(Forbidden)"), "{case}: {stderr}");
                // kubectl patch reads the object first: without `get`, that read is refused.
                let refused = match verb {
                    "patch" if !expected(*role, plural, "get") => "get",
                    _ => verb,
                };
                let want = refusal(name, refused, kind);
                assert!(
                    stderr.contains(&want),
                    "{case}:\n want {want}\n got {stderr}"
                );
            }
        }
    }
    // The admin token's user is in system:masters: every verb, no binding needed.
    let can_i = f.admin.run(&["auth", "can-i", "delete", "secrets"]);
    assert!(can_i.status.success(), "{can_i:?}");
}

#[test]
fn the_operator_acts_through_the_cli_but_cannot_change_what_rolls_out() {
    let f = fixture();
    let op = f.dir.path().join("olga.kc");
    let viewer = f.dir.path().join("vic.kc");
    let op = op.to_str().expect("path");
    let rollout = |admin: &Kubectl| admin.json(&["get", "rollouts.rotor.dev", "seed"]);
    let rotor_as = |kc: &str, args: &[&str]| {
        let mut full = args.to_vec();
        full.extend(["--kubeconfig", kc]);
        common::process::run(&full)
    };
    let (ok, _, err) = rotor_as(op, &["rollout", "pause", "seed"]);
    assert!(ok, "pause: {err}");
    assert_eq!(rollout(&f.admin)["spec"]["paused"], true);
    let (ok, _, err) = rotor_as(op, &["rollout", "resume", "seed"]);
    assert!(ok, "resume: {err}");
    assert_eq!(rollout(&f.admin)["spec"]["paused"], false);
    let (ok, _, err) = rotor_as(op, &["approve", "rollout/seed", "--through-wave", "0"]);
    assert!(ok, "approve: {err}");
    assert_eq!(rollout(&f.admin)["spec"]["approvedThroughWave"], 0);
    let (ok, _, err) = rotor_as(op, &["rollout", "retry", "seed", "--failed"]);
    assert!(ok, "retry --failed: {err}");
    assert_eq!(rollout(&f.admin)["spec"]["retryFailed"], 1);
    let (ok, _, err) = rotor_as(op, &["rollout", "skip", "prod-sim-b", "--rollout", "seed"]);
    assert!(ok, "skip: {err}");
    assert_eq!(
        rollout(&f.admin)["spec"]["skipClusters"],
        serde_json::json!(["prod-sim-b"])
    );
    // The swaps of rollout `fleet` (the fixture's) are asked to roll back.
    let fleet = manifest(ROLLOUT_YAML, "fleet");
    f.admin.ok(&[
        "create",
        "-f",
        &write_manifest(f.dir.path(), "fleet.yaml", &fleet),
    ]);
    let (ok, printed, err) = rotor_as(op, &["rollout", "rollback", "fleet"]);
    assert!(ok, "rollback: {err}");
    let swaps = f.admin.json(&["get", "clusterswaps.rotor.dev"]);
    let asked = swaps["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|s| s["spec"]["rollback"] == true)
        .count();
    assert!(asked > 0, "no swap asked to roll back: {swaps}");
    assert!(
        printed.contains(&format!("paused, {asked} swaps rolling back")),
        "{printed}"
    );
    assert_eq!(
        f.admin.json(&["get", "rollouts.rotor.dev", "fleet"])["spec"]["paused"],
        true
    );

    // A failed cluster's swap runs again: `retry CLUSTER` deletes it.
    let failed = SWAP_YAML
        .replace("NAME", "failed-c")
        .replace("prod-sim-a", "prod-sim-c");
    f.admin.ok(&[
        "create",
        "-f",
        &write_manifest(f.dir.path(), "failed.yaml", &failed),
    ]);
    let status = r#"{"status":{"phase":"Failed"}}"#;
    let args = [
        "patch",
        "clusterswaps.rotor.dev",
        "failed-c",
        "--subresource=status",
    ];
    f.admin
        .ok(&[&args[..], &["--type=merge", "-p", status]].concat());
    let (ok, printed, err) = rotor_as(
        op,
        &["rollout", "retry", "prod-sim-c", "--rollout", "fleet"],
    );
    assert!(ok, "retry CLUSTER: {err}");
    assert!(printed.contains("swap failed-c removed"), "{printed}");
    f.admin
        .not_found(&["get", "clusterswaps.rotor.dev", "failed-c"]);

    // What rolls out is not an operator's to change: 403 naming the field.
    let k = Kubectl::new(op.into());
    let patch = r#"{"spec":{"paused":true,"target":{"kubernetesVersion":"1.36"}}}"#;
    let out = k.run(&[
        "patch",
        "rollouts.rotor.dev",
        "seed",
        "--type=merge",
        "-p",
        patch,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the target changed");
    assert!(stderr.contains("(Forbidden)"), "{stderr}");
    assert!(
        stderr.contains(&refusal("olga", "patch", KINDS[2])),
        "{stderr}"
    );
    assert!(
        stderr.contains("not spec.target"),
        "names the field: {stderr}"
    );
    assert_eq!(
        rollout(&f.admin)["spec"]["target"]["kubernetesVersion"],
        "1.35"
    );
    assert_eq!(
        rollout(&f.admin)["spec"]["paused"],
        false,
        "nothing of it written"
    );
    let out = k.run(&["auth", "can-i", "operate", "rollouts.rotor.dev"]);
    assert!(out.status.success(), "{out:?}");

    // A viewer cannot pause.
    let (ok, _, err) = rotor_as(
        viewer.to_str().expect("path"),
        &["rollout", "pause", "seed"],
    );
    assert!(!ok, "a viewer paused");
    assert!(
        err.contains("cannot patch resource \\\"rollouts\\\"")
            || err.contains("cannot patch resource \"rollouts\""),
        "{err}"
    );
    assert_eq!(rollout(&f.admin)["spec"]["paused"], false);
}

#[test]
fn a_viewer_lists_its_rules_and_reads_metrics_and_a_user_without_a_role_cannot() {
    let f = fixture();
    let (vic, nobody) = (&f.users[0].2, &f.users[3].2);
    let list = vic.ok(&["auth", "can-i", "--list"]);
    let row = |needle: &str| {
        list.lines()
            .find(|l| l.split_whitespace().next() == Some(needle))
    };
    let rotor = row("*.rotor.dev").unwrap_or_else(|| panic!("no rotor.dev row:\n{list}"));
    assert!(rotor.contains("[get list watch]"), "{rotor}");
    let events = row("events").unwrap_or_else(|| panic!("no events row:\n{list}"));
    assert!(events.contains("[get list watch]"), "{events}");
    let metrics = list
        .lines()
        .find(|l| l.contains("/metrics"))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(metrics.contains("[get]"), "{metrics}");
    assert!(!list.contains("secrets"), "{list}");
    // The oldest and newest kubectl ask the same reviews.
    for minor in [27, 35] {
        let Some(old) = vic.versioned(minor) else {
            continue;
        };
        let yes = old.run(&["auth", "can-i", "watch", "rollouts.rotor.dev"]);
        assert!(yes.status.success(), "kubectl 1.{minor}: {yes:?}");
        let no = old.run(&["auth", "can-i", "get", "secrets"]);
        assert_eq!(
            String::from_utf8_lossy(&no.stdout).trim(),
            "no",
            "kubectl 1.{minor}"
        );
        let listed = old.ok(&["auth", "can-i", "--list"]);
        assert!(
            listed.contains("*.rotor.dev"),
            "kubectl 1.{minor}: {listed}"
        );
    }
    // Discovery lists the reviews as kube-apiserver does: create-only.
    let reviews = vic.ok(&[
        "api-resources",
        "--api-group=authorization.k8s.io",
        "-o",
        "wide",
    ]);
    for plural in ["selfsubjectaccessreviews", "selfsubjectrulesreviews"] {
        let row = reviews.lines().find(|l| l.starts_with(plural));
        let row = row.unwrap_or_else(|| panic!("{plural} not listed:\n{reviews}"));
        // -o wide: NAME APIVERSION NAMESPACED KIND VERBS, the verbs comma-separated.
        assert_eq!(row.split_whitespace().last(), Some("create"), "{row}");
        assert!(row.contains("authorization.k8s.io/v1"), "{row}");
    }
    // Everyone may review itself.
    assert!(
        list.lines()
            .any(|l| l.starts_with("selfsubjectaccessreviews.authorization.k8s.io")),
        "{list}"
    );

    let scraped = vic.ok(&["get", "--raw", "/metrics"]);
    assert!(scraped.contains("rotor_"), "{scraped}");
    let out = nobody.run(&["get", "--raw", "/metrics"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a user with no role scraped /metrics"
    );
    assert!(stderr.contains("(Forbidden)"), "{stderr}");
    assert!(
        stderr.contains("User \"nobody\" cannot get path \"/metrics\""),
        "{stderr}"
    );
    // The shipped roles exist from the start, marked as bootstrap policy.
    for role in [
        "rotor-viewer",
        "rotor-operator",
        "rotor-admin",
        "cluster-admin",
    ] {
        let r = f.admin.json(&["get", "clusterrole", role]);
        assert_eq!(
            r["metadata"]["labels"]["kubernetes.io/bootstrapping"], "rbac-defaults",
            "{r}"
        );
    }
}

/// Upstream's escalation prevention: who may write bindings and roles may grant only what they
/// hold, unless they have `bind` or `escalate` (rotor-admin has both, through `*`).
#[test]
fn a_user_who_may_write_rbac_objects_grants_only_what_they_hold() {
    let f = fixture();
    let admin = &f.admin;
    let rbac = "--resource=clusterrolebindings.rbac.authorization.k8s.io,clusterroles.rbac.authorization.k8s.io";
    admin.ok(&[
        "create",
        "clusterrole",
        "rbac-writer",
        "--verb=create,get",
        rbac,
    ]);
    for role in ["rbac-writer", "rotor-viewer"] {
        let binding = format!("rita-{role}");
        admin.ok(&[
            "create",
            "clusterrolebinding",
            &binding,
            "--clusterrole",
            role,
            "--group=rita-team",
        ]);
    }
    let (db, kc) = (f.dir.path().join("rotor.db"), f.dir.path().join("admin.kc"));
    let rita = user(f.dir.path(), &db, &kc, "rita", "rita-team");
    let held = "user \"rita\" (groups=[\"rita-team\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:";

    let out = rita.run(&[
        "create",
        "clusterrolebinding",
        "rita-admin",
        "--clusterrole=rotor-admin",
        "--user=rita",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "rita made herself an admin");
    assert!(
        stderr.contains(
            "clusterrolebindings.rbac.authorization.k8s.io \"rita-admin\" is forbidden: "
        ),
        "{stderr}"
    );
    assert!(stderr.contains(held), "{stderr}");
    assert!(
        stderr.contains(r#"{APIGroups:[""], Resources:["secrets"], Verbs:["*"]}"#),
        "names a right: {stderr}"
    );

    let out = rita.run(&[
        "create",
        "clusterrole",
        "secret-reader",
        "--verb=get",
        "--resource=secrets",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "rita wrote a role beyond her rights");
    assert!(stderr.contains(held), "{stderr}");
    assert!(
        stderr.contains(r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}"#),
        "{stderr}"
    );

    // What she holds she may grant.
    rita.ok(&[
        "create",
        "clusterrolebinding",
        "vic-too",
        "--clusterrole=rotor-viewer",
        "--user=vic",
    ]);
    rita.ok(&[
        "create",
        "clusterrole",
        "cluster-reader",
        "--verb=get,list",
        "--resource=clusters.rotor.dev",
    ]);
    // rotor-admin holds `bind` and `escalate` on every RBAC object.
    let ada = &f.users[2].2;
    ada.ok(&[
        "create",
        "clusterrolebinding",
        "rita-admin",
        "--clusterrole=cluster-admin",
        "--user=rita",
    ]);
}
