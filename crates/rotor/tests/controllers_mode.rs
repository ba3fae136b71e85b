//! Management-cluster mode: `rotor controllers` against "some Kubernetes API" — a `rotor serve
//! --no-controllers` enforcing RBAC, rotor's CRDs applied with the real kubectl from `rotor
//! crdgen`, and for the controllers' ServiceAccount the Helm chart's RBAC and nothing more. Two
//! replicas: one holds the Lease; a Rollout applied with kubectl runs its swap end to end on the
//! simulator; SIGTERM to the leader mid-swap hands the Lease to the other, which finishes it;
//! the audit log shows the old leader never wrote after it let go, and no call of either was
//! refused.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::fleet::{one_cluster_with_app, sim_config};
use common::kubectl::{Kubectl, Running, serve_sqlite, write_manifest};
use common::lease::holder;
use common::process::{command, exit_within, run, serve_refuses, sigterm, wait_for_line};
use k8s_openapi::api::coordination::v1::Lease;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use rotor_api::{ClusterSwap, Phase, ShifterKind};
use serde_json::Value;

/// Seconds a lease holds in this test (the default is 15).
const LEASE_SECONDS: u64 = 3;
/// The chart's ServiceAccount, installed as release `rotor` in `rotor-system`.
const SERVICE_ACCOUNT: &str = "system:serviceaccount:rotor-system:rotor";
const NAMESPACE: &str = "rotor-system";

/// The Helm chart in the repository.
pub fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charts/rotor")
}

/// One `rotor controllers` replica: its identity in the election, its token's uid (which the
/// audit log records) and where it serves its metrics.
struct Replica {
    child: Running,
    identity: String,
    uid: &'static str,
    metrics: String,
}

impl Replica {
    fn start(dir: &Path, uid: &'static str, kubeconfig: &Path, sim_url: &str) -> Replica {
        let log = dir.join(format!("{uid}.log"));
        let provider = format!("sim:{sim_url}");
        let lease = LEASE_SECONDS.to_string();
        let child = command(&["controllers", "--kubeconfig", path(kubeconfig)])
            .args([
                "--lease-namespace",
                NAMESPACE,
                "--lease-duration-seconds",
                &lease,
            ])
            .args([
                "--shutdown-grace-seconds",
                "5",
                "--metrics-listen",
                "127.0.0.1:0",
            ])
            .args(["--provider", &provider, "--traffic", "sim:127.0.0.1:0"])
            .env("ROTOR_LOG", "rotor_controllers::leader=info")
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("rotor controllers starts");
        let child = Running(child);
        let identity = word_after(&wait_for_line(&log, "controllers run while "), "while");
        let metrics = word_after(&wait_for_line(&log, "metrics on "), "on");
        Replica {
            child,
            identity,
            uid,
            metrics,
        }
    }

    /// `rotor_leading` as this replica's `/metrics` says it.
    async fn leading(&self) -> Option<bool> {
        let text = reqwest::get(&self.metrics).await.ok()?.text().await.ok()?;
        let line = text.lines().find(|l| l.starts_with("rotor_leading "))?;
        Some(line.ends_with(" 1"))
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The word after `marker` in `line`.
fn word_after(line: &str, marker: &str) -> String {
    let mut words = line.split_whitespace();
    words.find(|w| *w == marker).expect("marker");
    words.next().expect("a word after the marker").to_string()
}

/// "Some Kubernetes API": `rotor serve` without controllers, enforcing RBAC, auditing every
/// request, with two tokens of the chart's ServiceAccount (uids `replica-a`, `replica-b`).
struct SomeApi {
    serve: Running,
    kubectl: Kubectl,
    admin: PathBuf,
    audit: PathBuf,
}

fn start_api(dir: &Path) -> (SomeApi, [PathBuf; 2]) {
    let tokens = dir.join("tokens.csv");
    let groups = format!("system:serviceaccounts,system:serviceaccounts:{NAMESPACE}");
    let lines: Vec<String> = ["replica-a", "replica-b"]
        .iter()
        .map(|uid| {
            format!(
                "{},{SERVICE_ACCOUNT},{uid},\"{groups}\"",
                rotor_sim::random_token()
            )
        })
        .collect();
    std::fs::write(&tokens, lines.join("\n")).expect("token file");
    let (admin, audit) = (dir.join("admin.kubeconfig"), dir.join("audit.log"));
    let flags = ["--no-controllers", "--token-auth-file", path(&tokens)];
    let flags = [&flags[..], &["--audit-log", path(&audit)]].concat();
    let (serve, kubectl) = serve_sqlite(&dir.join("api.db"), &admin, &flags);
    let admin_yaml = std::fs::read_to_string(&admin).expect("kubeconfig");
    let kubeconfigs = ["a", "b"].map(|n| dir.join(format!("replica-{n}.kubeconfig")));
    for (line, kc) in lines.iter().zip(&kubeconfigs) {
        let token = line.split(',').next().expect("token");
        let yaml = rotor_test_support::kubeconfig::with_credentials(
            &admin_yaml,
            rotor_test_support::kubeconfig::Credentials::Token(token),
        );
        std::fs::write(kc, yaml).expect("replica kubeconfig");
    }
    let api = SomeApi {
        serve,
        kubectl,
        admin,
        audit,
    };
    (api, kubeconfigs)
}

/// rotor's CRDs from `rotor crdgen`, the namespace, and the chart's RBAC for the controllers,
/// applied with kubectl as an operator of a management cluster would.
fn install(dir: &Path, kubectl: &Kubectl) {
    let (ok, crds, stderr) = run(&["crdgen"]);
    assert!(ok, "rotor crdgen: {stderr}");
    kubectl.ok(&["apply", "-f", &write_manifest(dir, "crds.yaml", &crds)]);
    kubectl.ok(&["create", "namespace", NAMESPACE]);
    let rbac = helm_template(&["--show-only", "templates/rbac.yaml"]);
    kubectl.ok(&["apply", "-f", &write_manifest(dir, "rbac.yaml", &rbac)]);
}

/// `helm3 template rotor charts/rotor -n rotor-system ARGS`: the rendered manifests.
pub fn helm_template(args: &[&str]) -> String {
    let out = std::process::Command::new("helm3")
        .args(["template", "rotor", path(&chart_dir()), "-n", NAMESPACE])
        .args(args)
        .output()
        .expect("helm3 runs (scripts/install-test-deps.sh installs it)");
    assert!(
        out.status.success(),
        "helm3 template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A Rollout of every Cluster to 1.35 in one wave, its swaps staying a few seconds in each
/// traffic step, so the leader can be stopped there.
const ROLLOUT_YAML: &str = r#"apiVersion: rotor.dev/v1alpha1
kind: Rollout
metadata: {name: fleet}
spec:
  clusterSelector: {}
  target: {kubernetesVersion: "1.35.0"}
  waves: [{name: all, percent: 100}]
  strategy: {trafficSteps: [50, 100], bakeSeconds: 2, blueRetentionSeconds: 1}
"#;

/// The phase of the Rollout's swap, once it has one.
async fn swap_phase(swaps: &Api<ClusterSwap>) -> Option<Phase> {
    let list = swaps.list(&Default::default()).await.ok()?;
    Some(list.items.into_iter().next()?.status?.phase)
}

async fn rollout_phase(rollouts: &Api<rotor_api::Rollout>) -> Option<String> {
    let phase = rollouts.get("fleet").await.ok()?.status?.phase;
    Some(format!("{phase:?}"))
}

/// The replica holding the Lease and the other, once only the holder says it leads.
async fn elect(replicas: [Replica; 2], leases: &Api<Lease>) -> (Replica, Replica) {
    let first = holder(leases, None, Duration::from_secs(20)).await;
    let (leader, follower) = match replicas {
        [a, b] if a.identity == first => (a, b),
        [a, b] if b.identity == first => (b, a),
        _ => panic!("the Lease is held by {first}, neither replica"),
    };
    let what = "only the leader leading";
    common::eventually(Duration::from_secs(10), what, || async {
        (leader.leading().await? && !follower.leading().await?).then_some(())
    })
    .await;
    (leader, follower)
}

/// SIGTERM to `leader`: `follower` holds the Lease within a bound, the leader exits 0 within
/// its grace. How long the hand-over took.
async fn hand_over(leader: &mut Replica, follower: &Replica, leases: &Api<Lease>) -> Duration {
    let stopped = Instant::now();
    sigterm(&leader.child.0);
    let bound = Duration::from_secs(LEASE_SECONDS + 2);
    holder(leases, Some(&follower.identity), bound).await;
    let handed_over = stopped.elapsed();
    let status = tokio::task::block_in_place(|| {
        exit_within(
            &mut leader.child.0,
            Duration::from_secs(6),
            "the old leader",
        )
    });
    assert!(status.success(), "the old leader exited with {status}");
    handed_over
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_elect_one_leader_run_a_rollout_and_hand_over_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut api, kubeconfigs) = start_api(dir.path());
    install(dir.path(), &api.kubectl);
    // Each cluster answers its application's traffic: green's address for the router.
    let config = sim_config(Duration::from_millis(300), Duration::from_millis(100));
    let (_sim, sim_url, cluster) = one_cluster_with_app(config, ShifterKind::Sim).await;
    let replicas = [
        Replica::start(dir.path(), "replica-a", &kubeconfigs[0], &sim_url),
        Replica::start(dir.path(), "replica-b", &kubeconfigs[1], &sim_url),
    ];
    let admin = common::client_from(&api.admin).await;
    let leases: Api<Lease> = Api::namespaced(admin.clone(), NAMESPACE);
    let (mut leader, follower) = elect(replicas, &leases).await;

    let pp = PatchParams::apply("test");
    Api::<rotor_api::Cluster>::all(admin.clone())
        .patch(&cluster.name_any(), &pp, &Patch::Apply(&cluster))
        .await
        .expect("Cluster applied");
    let rollout = write_manifest(dir.path(), "rollout.yaml", ROLLOUT_YAML);
    api.kubectl.ok(&["apply", "-f", &rollout]);
    let swaps: Api<ClusterSwap> = Api::all(admin.clone());
    let at = common::eventually(Duration::from_secs(60), "traffic shifting", || async {
        let now = swap_phase(&swaps).await?;
        assert!(
            !now.is_terminal(),
            "the swap ended in {now:?} before the hand-over"
        );
        (now == Phase::ShiftingTraffic).then_some(now)
    })
    .await;
    let handed_over = hand_over(&mut leader, &follower, &leases).await;
    eprintln!("SIGTERM in {at:?}; the other replica held the Lease {handed_over:?} later");

    let rollouts: Api<rotor_api::Rollout> = Api::all(admin.clone());
    common::eventually(
        Duration::from_secs(90),
        "the rollout to succeed",
        || async {
            let now = rollout_phase(&rollouts).await?;
            assert!(
                !now.contains("Fail") && !now.contains("Roll"),
                "rollout: {now}"
            );
            (now == "Succeeded").then_some(())
        },
    )
    .await;
    assert_eq!(swap_phase(&swaps).await, Some(Phase::Succeeded));
    drop(follower);
    // The audit log is complete once its server has stopped.
    let status = tokio::task::block_in_place(|| {
        common::process::stop(&mut api.serve, Duration::from_secs(15), "rotor serve")
    });
    assert!(status.success(), "rotor serve exited with {status}");
    check_audit(&api.audit, leader.uid);
}

/// One request of a replica as the audit log recorded it.
struct Call {
    uid: String,
    write: bool,
    resource: String,
    code: i64,
    at: chrono::DateTime<chrono::FixedOffset>,
}

fn calls(audit: &Path) -> Vec<Call> {
    let text = std::fs::read_to_string(audit).expect("audit log");
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("an audit Event"))
        .filter(|e| e["user"]["username"] == SERVICE_ACCOUNT)
        .filter(|e| e["stage"] == "ResponseComplete")
        .map(|e| Call {
            uid: e["user"]["uid"].as_str().unwrap_or_default().to_string(),
            write: matches!(
                e["verb"].as_str(),
                Some("create" | "update" | "patch" | "delete" | "deletecollection")
            ),
            resource: e["objectRef"]["resource"]
                .as_str()
                .unwrap_or_default()
                .into(),
            code: e["responseStatus"]["code"].as_i64().unwrap_or_default(),
            at: chrono::DateTime::parse_from_rfc3339(e["stageTimestamp"].as_str().expect("time"))
                .expect("RFC 3339"),
        })
        .collect()
}

/// No call was refused (the chart's RBAC is enough); the first leader's last write is its
/// release of the Lease, and the other replica wrote nothing but the Lease before that.
fn check_audit(audit: &Path, first_leader: &'static str) {
    let calls = calls(audit);
    let refused: Vec<String> = calls
        .iter()
        .filter(|c| c.code == 403)
        .map(|c| format!("{} {}", c.uid, c.resource))
        .collect();
    assert!(refused.is_empty(), "refused by RBAC: {refused:?}");
    let writes = |uid: &'static str| calls.iter().filter(move |c| c.write && c.uid == uid);
    let last = writes(first_leader)
        .max_by_key(|c| c.at)
        .expect("the leader wrote");
    assert_eq!(
        last.resource, "leases",
        "the old leader's last write releases the Lease"
    );
    for resource in ["rollouts", "clusterswaps"] {
        assert!(
            writes(first_leader).any(|c| c.resource == resource),
            "the first leader wrote {resource}"
        );
    }
    let other = if first_leader == "replica-a" {
        "replica-b"
    } else {
        "replica-a"
    };
    let early: Vec<&Call> = writes(other)
        .filter(|c| c.resource != "leases" && c.at <= last.at)
        .collect();
    assert!(
        early.is_empty(),
        "the follower wrote before the hand-over: {:?}",
        early.len()
    );
    assert!(
        writes(other).any(|c| c.resource == "clusterswaps"),
        "the new leader drove the swap on"
    );
}

/// What `rotor controllers` finds in a pod, then `rotor controllers` started as in one: the
/// files under /var/run/secrets/kubernetes.io/serviceaccount are mounted for it alone, in a
/// private mount namespace (util-linux `unshare`; the machine's /run is left as it is).
const IN_A_POD: &str = r#"set -e
mount -t tmpfs pod-run /run
mkdir -p /run/secrets/kubernetes.io/serviceaccount
cp "$1/token" "$1/ca.crt" "$1/namespace" /run/secrets/kubernetes.io/serviceaccount/
shift
exec "$@"
"#;

/// As in a pod: no kubeconfig, the API at `KUBERNETES_SERVICE_HOST`/`_PORT`, and in the
/// ServiceAccount's directory a token the API issued for the chart's ServiceAccount
/// (TokenRequest, `kubectl create token`), the API's CA and the namespace. The replica finds
/// them as kube's in-cluster configuration does, takes the Lease in the namespace the file
/// names (no `--lease-namespace`), and the audit log shows its calls as that ServiceAccount,
/// none refused by the chart's RBAC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_in_a_pod_run_as_the_service_account_mounted_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut api, _) = start_api(dir.path());
    install(dir.path(), &api.kubectl);
    let sa = helm_template(&["--show-only", "templates/serviceaccount.yaml"]);
    api.kubectl
        .ok(&["apply", "-f", &write_manifest(dir.path(), "sa.yaml", &sa)]);
    let uid = api.kubectl.ok(&[
        "get",
        "serviceaccount",
        "rotor",
        "-n",
        NAMESPACE,
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let token = api
        .kubectl
        .ok(&["create", "token", "rotor", "-n", NAMESPACE]);
    let admin = std::fs::read_to_string(&api.admin).expect("admin kubeconfig");
    let mounted = dir.path().join("serviceaccount");
    std::fs::create_dir(&mounted).expect("dir");
    std::fs::write(mounted.join("token"), token.trim()).expect("token");
    std::fs::write(
        mounted.join("ca.crt"),
        rotor_test_support::kubeconfig::ca_pem(&admin),
    )
    .expect("ca.crt");
    std::fs::write(mounted.join("namespace"), NAMESPACE).expect("namespace");
    let server = rotor_test_support::kubeconfig::server(&admin);
    let (host, port) = server
        .trim_start_matches("https://")
        .rsplit_once(':')
        .expect("https://HOST:PORT");
    let (home, log) = (dir.path().join("home"), dir.path().join("pod.log"));
    std::fs::create_dir(&home).expect("home");
    let pod = std::process::Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            IN_A_POD,
        ])
        .args([
            "sh",
            path(&mounted),
            env!("CARGO_BIN_EXE_rotor"),
            "controllers",
        ])
        .args([
            "--metrics-listen",
            "127.0.0.1:0",
            "--shutdown-grace-seconds",
            "5",
        ])
        .env_remove("KUBECONFIG")
        .env("HOME", &home)
        .env("KUBERNETES_SERVICE_HOST", host)
        .env("KUBERNETES_SERVICE_PORT", port)
        .env("ROTOR_LOG", "rotor_controllers::leader=info")
        .stdin(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("unshare (util-linux) runs; it needs root for a mount namespace");
    let mut pod = Running(pod);
    let identity = word_after(&wait_for_line(&log, "controllers run while "), "while");
    let client = common::client_from(&api.admin).await;
    let leases: Api<Lease> = Api::namespaced(client, NAMESPACE);
    holder(&leases, Some(&identity), Duration::from_secs(15)).await;
    let status = tokio::task::block_in_place(|| {
        common::process::stop(&mut pod, Duration::from_secs(10), "the replica")
    });
    assert!(status.success(), "the replica exited with {status}");
    let status = tokio::task::block_in_place(|| {
        common::process::stop(&mut api.serve, Duration::from_secs(15), "rotor serve")
    });
    assert!(status.success(), "rotor serve exited with {status}");
    let calls: Vec<Call> = calls(&api.audit)
        .into_iter()
        .filter(|c| c.uid == uid)
        .collect();
    assert!(
        calls
            .iter()
            .any(|c| c.write && c.resource == "leases" && c.code < 300),
        "the ServiceAccount's token took the Lease ({} calls)",
        calls.len()
    );
    let refused: Vec<&str> = calls
        .iter()
        .filter(|c| c.code == 403)
        .map(|c| c.resource.as_str())
        .collect();
    assert!(
        refused.is_empty(),
        "refused by the chart's RBAC: {refused:?}"
    );
}

#[test]
fn controllers_refuse_an_api_without_rotors_crds_and_a_bad_flag_naming_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_sim, _) = common::kubectl::start_sim(dir.path(), 1, &[]);
    let member = dir.path().join("kubeconfigs/member-0000.kubeconfig");
    let controllers = |extra: &[&str]| {
        let mut c = command(&["controllers", "--kubeconfig", path(&member)]);
        c.args(extra);
        serve_refuses(c)
    };
    let said = controllers(&["--metrics-listen", "127.0.0.1:0"]);
    assert!(said.contains("rotor crdgen | kubectl apply -f -"), "{said}");
    let said = controllers(&["--metrics-listen", "nowhere"]);
    assert!(said.contains("--metrics-listen"), "{said}");
    let said = controllers(&["--provider", "mars"]);
    assert!(said.contains("--provider \"mars\""), "{said}");
    // Without --kubeconfig the configuration is inferred as kubectl infers it: outside a pod,
    // $KUBECONFIG. It reached the member: the refusal is about the CRDs.
    let mut inferred = command(&["controllers", "--metrics-listen", "127.0.0.1:0"]);
    inferred
        .env("KUBECONFIG", &member)
        .env_remove("KUBERNETES_SERVICE_HOST");
    let said = serve_refuses(inferred);
    assert!(said.contains("rotor's CRDs are not installed"), "{said}");
}
