//! Secrets hygiene (issue 20, item 6): `rotor serve` as a process, logging at `debug`, with an
//! audit log at RequestResponse for everything, through three swaps — on the simulator's
//! provider, on EKS and on AKS as the simulator serves them (the real EKS and AKS providers,
//! the AWS SDK with static keys and a session token, ARM with an access token file) — while
//! people use it with every kind of credential (the admin token, a token file's, a client
//! certificate, a ServiceAccount token, a wrong token), and the clouds fail the first creates
//! and rate-limit calls (errors are where credentials slip out). The test knows
//! every secret in play; afterwards none of them, plain or in base64, is in a log line, an
//! Event, any object (statuses included; Secrets apart, whose job it is) or the audit file, and
//! no EKS bearer token (`k8s-aws-v1.`, minted from the AWS keys) is either.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use common::fleet::{apply_sample_app, sim_config, swap};
use common::kubectl::{Kubectl, Running, free_port, wait_for_file, write_manifest};
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use rotor_api::{Cluster, ClusterSwap, NodePool, Phase, Provider, ShifterKind, SwapStrategy};
use rotor_sim::Sim;

const LIMIT: Duration = Duration::from_secs(120);
/// The AWS credentials rotor serve is given (env, as the SDK's default chain reads them). The
/// access key id is no secret to AWS (its SDK's debug lines print it, redacting the rest): it
/// may be in a debug log, nowhere else.
const AWS_ACCESS_KEY_ID: &str = "AKIAHYGIENE7EXAMPLE1";
const AWS_SECRET_ACCESS_KEY: &str = "hygiene/Secret+Access+Key/0123456789abcdefXYZ";
const AWS_SESSION_TOKEN: &str = "hygiene-session-token/IQoJb3JpZ2luX2VjEXAMPLE+0123456789";
/// A token of the token file.
const FILE_TOKEN: &str = "hygiene-token-file-5b1f0c9e2d";
/// The start of every EKS bearer token (a presigned STS URL, base64url).
const EKS_TOKEN_PREFIX: &str = "k8s-aws-v1.";
const EKS_CLUSTER: &str = "prod-eks-hygiene";
/// The access token rotor presents to Azure Resource Manager (`--azure-access-token-file`).
const AZURE_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.hygiene-azure-access-token";
const AKS_CLUSTER: &str = "prod-aks-hygiene";
const AZURE_SUBSCRIPTION: &str = "5a1e7c3b-2d4f-4e6a-8b9c-0d1e2f3a4b5c";
const AZURE_GROUP: &str = "rotor-hygiene";
const EVERYTHING: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
rules:
  - level: RequestResponse
";

/// Named secret values; what a leak report says is the name, never the value.
#[derive(Default)]
struct Secrets(BTreeMap<String, String>);

impl Secrets {
    fn add(&mut self, name: &str, value: &str) {
        let value = value.trim();
        assert!(value.len() >= 8, "{name} is too short to look for");
        self.0.insert(name.to_string(), value.to_string());
    }

    /// A PEM private key: each line of its body (a leak of the key shows whole lines), and
    /// the whole PEM in base64 (as a kubeconfig's `client-key-data`).
    fn add_pem(&mut self, name: &str, pem: &str) {
        let body = pem
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() >= 16);
        for (i, line) in body.enumerate() {
            self.0.insert(format!("{name} line {i}"), line.to_string());
        }
        self.0.insert(format!("{name} (base64)"), b64(pem));
    }

    /// Which secrets `text` (what `place` holds) contains, in any of their forms.
    fn leaks_in(&self, place: &str, text: &str) -> Vec<String> {
        let mut found = Vec::new();
        for (name, value) in &self.0 {
            let forms = [value.clone(), b64(value), b64url(value)];
            if forms.iter().any(|f| text.contains(f.as_str())) {
                found.push(format!("{name} in {place}"));
            }
        }
        if text.contains(EKS_TOKEN_PREFIX) {
            found.push(format!("an EKS bearer token in {place}"));
        }
        found
    }
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn b64url(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `rotor serve` on SQLite in `dir` with the controllers on the simulator (`sim:URL`) and the
/// simulator's EKS, logging at debug to `dir/serve.log`, auditing everything.
fn serve(dir: &Path, sim_url: &str) -> (Running, Kubectl) {
    let tokens = write_manifest(dir, "tokens.csv", &format!("{FILE_TOKEN},filed,u-1,\"\"\n"));
    let policy = write_manifest(dir, "policy.yaml", EVERYTHING);
    let (store, listen) = (
        format!("sqlite:{}", dir.join("rotor.db").display()),
        format!("127.0.0.1:{}", free_port()),
    );
    let kc = dir.join("admin.kc");
    let mut args = vec!["serve", "--store", &store, "--listen", &listen];
    args.extend(["--kubeconfig-out", path(&kc), "--token-auth-file", &tokens]);
    let audit = dir.join("audit.log");
    args.extend(["--audit-log", path(&audit), "--audit-policy", &policy]);
    let (provider, aws) = (format!("sim:{sim_url}"), format!("{sim_url}/aws"));
    args.extend(["--provider", &provider, "--provider", "aws"]);
    args.extend(["--aws-endpoint-url", &aws, "--traffic", "sim:127.0.0.1:0"]);
    let (azure, token_file) = (format!("{sim_url}/azure"), dir.join("azure-token"));
    std::fs::write(&token_file, format!("{AZURE_TOKEN}\n")).expect("token file");
    args.extend(["--provider", "azure", "--azure-endpoint-url", &azure]);
    args.extend(["--azure-access-token-file", path(&token_file)]);
    args.extend(["--drain-timeout-seconds", "2"]);
    let child = common::process::command(&args)
        .env("ROTOR_LOG", "debug")
        .env("AWS_ACCESS_KEY_ID", AWS_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET_ACCESS_KEY)
        .env("AWS_SESSION_TOKEN", AWS_SESSION_TOKEN)
        .env("AWS_REGION", "us-east-1")
        .stderr(std::fs::File::create(dir.join("serve.log")).expect("log"))
        .spawn()
        .expect("rotor serve starts");
    let serve = Running(child);
    wait_for_file(&kc);
    (serve, Kubectl::new(kc))
}

/// The simulator's AWS as rotor serve reaches it, with the test's keys.
async fn eks_config(sim_url: &str) -> rotor_aws::SdkConfig {
    let options = rotor_aws::AwsOptions {
        endpoint_url: Some(format!("{sim_url}/aws")),
        region: Some("us-east-1".into()),
        static_credentials: Some((AWS_ACCESS_KEY_ID.into(), AWS_SECRET_ACCESS_KEY.into())),
    };
    rotor_aws::sdk_config(&options).await
}

/// Blue of the EKS Cluster, created in the simulator's EKS until active, the sample
/// application in it (through a token minted as the controllers mint theirs).
async fn eks_blue(config: &rotor_aws::SdkConfig) {
    let eks = aws_sdk_eks::Client::new(config);
    let vpc = aws_sdk_eks::types::VpcConfigRequest::builder()
        .subnet_ids("subnet-1")
        .build();
    eks.create_cluster()
        .name(EKS_CLUSTER)
        .version("1.30")
        .role_arn(format!(
            "arn:aws:iam::{}:role/eks",
            rotor_sim::AWS_DEFAULT_ACCOUNT
        ))
        .resources_vpc_config(vpc)
        .send()
        .await
        .expect("blue in EKS");
    common::eventually(LIMIT, "blue active in EKS", || async {
        let c = eks.describe_cluster().name(EKS_CLUSTER).send().await.ok()?;
        (c.cluster?.status() == Some(&aws_sdk_eks::types::ClusterStatus::Active)).then_some(())
    })
    .await;
    let provider =
        rotor_providers::eks::EksProvider::new(config, rotor_providers::eks::Accounts::Own)
            .with_cluster_credentials(rotor_providers::eks::ClusterCredentials::Token);
    let at = rotor_providers::Placement {
        account: rotor_sim::AWS_DEFAULT_ACCOUNT.into(),
        region: "us-east-1".into(),
    };
    let located = rotor_providers::Located::new(&provider, at);
    let kubeconfig = located.credentials(EKS_CLUSTER).await.expect("credentials");
    let member = rotor::client_for(kubeconfig.expose())
        .await
        .expect("client");
    apply_sample_app(&member).await;
}

/// The EKS Cluster (traffic through the embedded router).
fn eks_cluster() -> Cluster {
    let mut c = rotor_api::sample_fleet(1).remove(0);
    c.metadata.name = Some(EKS_CLUSTER.into());
    c.metadata.managed_fields = None;
    c.spec.provider = Provider::Aws;
    c.spec.account = rotor_sim::AWS_DEFAULT_ACCOUNT.into();
    c.spec.region = "us-east-1".into();
    c.spec.kubernetes_version = "1.30".into();
    c.spec.node_pools = vec![NodePool {
        name: "general".into(),
        instance_type: "m7i.large".into(),
        min_count: 1,
        max_count: 3,
        desired_count: 2,
    }];
    let role = |n: &str| format!("arn:aws:iam::{}:role/{n}", rotor_sim::AWS_DEFAULT_ACCOUNT);
    c.spec.config = BTreeMap::from([
        ("roleArn".into(), role("eks")),
        ("nodeRoleArn".into(), role("nodes")),
        ("subnetIds".into(), "subnet-1,subnet-2".into()),
    ]);
    c.spec.traffic.shifter = ShifterKind::Sim;
    c.spec.traffic.endpoint = EKS_CLUSTER.into();
    c
}

/// The AKS Cluster (traffic through the embedded router).
fn aks_cluster() -> Cluster {
    let mut c = rotor_api::sample_fleet(1).remove(0);
    c.metadata.name = Some(AKS_CLUSTER.into());
    c.metadata.managed_fields = None;
    c.spec.provider = Provider::Azure;
    c.spec.account = AZURE_SUBSCRIPTION.into();
    c.spec.region = "westeurope".into();
    c.spec.kubernetes_version = "1.33".into();
    c.spec.node_pools = vec![NodePool {
        name: "general".into(),
        instance_type: "Standard_D4s_v5".into(),
        min_count: 1,
        max_count: 3,
        desired_count: 2,
    }];
    c.spec.config = BTreeMap::from([("resourceGroup".into(), AZURE_GROUP.into())]);
    c.spec.traffic.shifter = ShifterKind::Sim;
    c.spec.traffic.endpoint = AKS_CLUSTER.into();
    c
}

/// Blue of the AKS Cluster, made through the simulator's ARM with the test's token until it
/// runs, the sample application in it.
async fn aks_blue(sim_url: &str) {
    let aks = rotor_providers::aks::AksProvider::new(rotor_azure::AzureOptions {
        endpoint: Some(format!("{sim_url}/azure")),
        credential: Some(rotor_azure::credentials::static_token(AZURE_TOKEN)),
    })
    .expect("AKS provider");
    let c = aks_cluster();
    let placement = rotor_providers::Placement {
        account: c.spec.account.clone(),
        region: c.spec.region.clone(),
    };
    let at = rotor_providers::Located::new(&aks, placement);
    let pool = &c.spec.node_pools[0];
    let blue = rotor_providers::InstanceSpec {
        cluster: AKS_CLUSTER.into(),
        name: AKS_CLUSTER.into(),
        kubernetes_version: c.spec.kubernetes_version.clone(),
        idempotency_token: "made-by-a-person".into(),
        node_pools: vec![rotor_providers::NodePoolSpec {
            name: pool.name.clone(),
            instance_type: pool.instance_type.clone(),
            min_count: pool.min_count,
            max_count: pool.max_count,
            desired_count: pool.desired_count,
        }],
        config: c.spec.config.clone(),
    };
    common::eventually(LIMIT, "blue running in AKS", || async {
        let i = at.create_instance(&blue).await.ok()?;
        (i.state == rotor_providers::InstanceState::Running).then_some(())
    })
    .await;
    let kubeconfig = at.credentials(AKS_CLUSTER).await.expect("credentials");
    let member = rotor::client_for(kubeconfig.expose())
        .await
        .expect("client");
    apply_sample_app(&member).await;
}

/// The simulator, served as `rotor sim` serves it (its clouds' fronts describe members by a
/// URL of its own, as AKS needs), holding the sample Cluster's blue with the application:
/// (sim, its URL, the Cluster).
async fn simulator() -> (Arc<Sim>, String, Cluster) {
    let mut cluster = rotor_api::sample_fleet(1).remove(0);
    cluster.spec.traffic.shifter = ShifterKind::Sim;
    let sim = Sim::new(sim_config(
        Duration::from_millis(300),
        Duration::from_millis(100),
    ));
    let (name, version) = (cluster.name_any(), &cluster.spec.kubernetes_version);
    let minor = rotor::rehearsal::minor_of(version).expect("minor");
    sim.add_cluster(&name, minor).await.expect("blue");
    sim.cloud.adopt(&name, minor);
    let url = format!("http://{}", sim.serve_loopback().await.expect("sim serves"));
    let kubeconfig = sim.kubeconfig(&name, &url).expect("kubeconfig");
    let member = rotor::client_for(&kubeconfig).await.expect("member client");
    apply_sample_app(&member).await;
    (sim, url, cluster)
}

/// Every member cluster's API token the simulator has handed out so far.
fn member_tokens(sim: &Sim, secrets: &mut Secrets) {
    for name in sim.cluster_names() {
        if let Some(member) = sim.cluster(&name) {
            secrets.add(&format!("member {name}'s token"), &member.token);
        }
    }
}

/// A ServiceAccount bound to `rotor-viewer`, its token used, reviewed and tampered with.
fn use_service_account(admin: &Kubectl, secrets: &mut Secrets) {
    admin.ok(&["create", "serviceaccount", "hygiene"]);
    admin.ok(&[
        "create",
        "clusterrolebinding",
        "hygiene",
        "--clusterrole=rotor-viewer",
        "--serviceaccount=default:hygiene",
    ]);
    let token = admin.ok(&["create", "token", "hygiene"]);
    let token = token.trim();
    secrets.add("a ServiceAccount token", token);
    admin.ok(&["--token", token, "get", "clusterswaps"]);
    // A character inside the signature (the last one may hold only padding bits).
    let at = token.len() - 10;
    let swapped = if &token[at..=at] == "A" { "B" } else { "A" };
    let tampered = format!("{}{swapped}{}", &token[..at], &token[at + 1..]);
    secrets.add("a tampered ServiceAccount token", &tampered);
    let refused = admin.run(&["--token", &tampered, "get", "clusterswaps"]);
    assert!(!refused.status.success(), "a tampered token was accepted");
    let review = format!(
        "{{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\",\
         \"spec\":{{\"token\":\"{token}\"}}}}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_manifest(dir.path(), "review.json", &review);
    admin.ok(&["create", "-f", &file, "-o", "json"]);
    admin.ok(&["--token", FILE_TOKEN, "auth", "whoami"]);
}

/// A client certificate `rotor kubeconfig --user` signs, used for a request.
fn use_client_certificate(dir: &Path, admin: &Kubectl, secrets: &mut Secrets) {
    let server = rotor_test_support::kubeconfig::server(
        &std::fs::read_to_string(dir.join("admin.kc")).expect("kubeconfig"),
    );
    let store = format!("sqlite:{}", dir.join("rotor.db").display());
    let args = ["kubeconfig", "--store", &store, "--server", &server];
    let (ok, printed, err) = common::process::run(&[&args[..], &["--user", "carol"]].concat());
    assert!(ok, "rotor kubeconfig --user: {err}");
    let doc: serde_json::Value = serde_json::from_str(&printed).expect("kubeconfig");
    let key_data = doc["users"][0]["user"]["client-key-data"]
        .as_str()
        .expect("client-key-data");
    let key = base64::engine::general_purpose::STANDARD
        .decode(key_data)
        .expect("base64");
    secrets.add_pem("carol's client key", &String::from_utf8(key).expect("PEM"));
    let kc = dir.join("carol.kc");
    std::fs::write(&kc, printed).expect("kubeconfig");
    let refused = Kubectl::new(kc).run(&["get", "clusters"]);
    assert!(!refused.status.success(), "carol has no role");
    admin.ok(&["get", "clusters"]);
}

/// The three swaps, created at once, to their ends.
async fn run_swaps(client: &kube::Client, sim_cluster: &str) -> Vec<ClusterSwap> {
    let swaps: Api<ClusterSwap> = Api::all(client.clone());
    let strategy = || SwapStrategy {
        traffic_steps: vec![50, 100],
        bake_seconds: 1,
        blue_retention_seconds: 1,
        ..Default::default()
    };
    let targets = [
        (sim_cluster, "sim-upgrade", "1.35"),
        (EKS_CLUSTER, "eks-upgrade", "1.31"),
        (AKS_CLUSTER, "aks-upgrade", "1.34"),
    ];
    for (cluster, name, version) in targets {
        swaps
            .create(
                &PostParams::default(),
                &swap(name, cluster, version, strategy()),
            )
            .await
            .expect("swap created");
    }
    common::eventually(LIMIT, "both swaps end", || async {
        let list = swaps.list(&Default::default()).await.ok()?.items;
        let ended = list
            .iter()
            .all(|s| s.status.as_ref().is_some_and(|st| st.phase.is_terminal()));
        (list.len() == targets.len() && ended).then_some(list)
    })
    .await
}

/// Every listable resource's objects, Secrets apart, as JSON text: (resource, text).
fn all_objects(admin: &Kubectl) -> Vec<(String, String)> {
    let listed = admin.ok(&["api-resources", "--verbs=list", "-o", "name"]);
    listed
        .lines()
        .filter(|r| !r.is_empty() && *r != "secrets")
        .map(|r| (r.to_string(), admin.ok(&["get", r, "-A", "-o", "json"])))
        .collect()
}

/// The secrets kept beside the store: the CA's, the serving and the ServiceAccount keys, the
/// admin token.
fn kept_secrets(dir: &Path, secrets: &mut Secrets) {
    for suffix in ["ca.key", "tls.key", "sa.key"] {
        let file: PathBuf = dir.join(format!("rotor.db.{suffix}"));
        let pem = std::fs::read_to_string(&file).expect("a kept key");
        secrets.add_pem(&format!("rotor.db.{suffix}"), &pem);
    }
    let token = std::fs::read_to_string(dir.join("rotor.db.token")).expect("admin token");
    secrets.add("the admin token", &token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_in_logs_events_objects_or_audit_through_swaps_on_sim_eks_and_aks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sim, sim_url, sim_cluster) = simulator().await;
    let aws = eks_config(&sim_url).await;
    eks_blue(&aws).await;
    aks_blue(&sim_url).await;
    let (mut serve, admin) = serve(dir.path(), &sim_url);
    let mut secrets = Secrets::default();
    secrets.add("the AWS secret access key", AWS_SECRET_ACCESS_KEY);
    secrets.add("the AWS session token", AWS_SESSION_TOKEN);
    secrets.add("the token file's token", FILE_TOKEN);
    secrets.add("the Azure access token", AZURE_TOKEN);
    kept_secrets(dir.path(), &mut secrets);
    member_tokens(&sim, &mut secrets);

    let client = common::client_from(&dir.path().join("admin.kc")).await;
    let clusters: Api<Cluster> = Api::all(client.clone());
    for c in [sim_cluster.clone(), eks_cluster(), aks_cluster()] {
        clusters
            .create(&PostParams::default(), &c)
            .await
            .expect("Cluster");
    }
    tokio::task::block_in_place(|| {
        use_service_account(&admin, &mut secrets);
        use_client_certificate(dir.path(), &admin, &mut secrets);
    });
    // Errors are where credentials slip out: the clouds refuse the first creates and
    // rate-limit calls (429 with Retry-After) while the swaps run.
    sim.cloud.fail_next_creates(2);
    sim.cloud
        .rate_limit_next_calls(6, Some(Duration::from_secs(1)));
    let ended = run_swaps(&client, &sim_cluster.name_any()).await;
    member_tokens(&sim, &mut secrets);
    // Transient cloud errors are retried: every swap still succeeds.
    for s in &ended {
        let st = s.status.as_ref().expect("status");
        let (name, history) = (s.name_any(), &st.history);
        assert_eq!(st.phase, Phase::Succeeded, "{name}: {history:?}");
    }
    assert_eq!(
        sim.cloud.failed_creates_pending(),
        0,
        "the failing creates happened"
    );
    assert_eq!(
        sim.cloud.rate_limited_calls_pending(),
        0,
        "the 429s happened"
    );

    let objects = tokio::task::block_in_place(|| all_objects(&admin));
    let status = tokio::task::block_in_place(|| {
        common::process::stop(&mut serve, Duration::from_secs(30), "rotor serve")
    });
    assert!(status.success(), "rotor serve exited with {status}");
    let log = std::fs::read_to_string(dir.path().join("serve.log")).expect("serve log");
    let audit = std::fs::read_to_string(dir.path().join("audit.log")).expect("audit log");
    let mut leaks = secrets.leaks_in("rotor serve's log", &log);
    let mut identifiers = Secrets::default();
    identifiers.add("the AWS access key id", AWS_ACCESS_KEY_ID);
    let others = objects.iter().map(|(r, t)| (r.as_str(), t.as_str()));
    for (place, text) in others.chain([("the audit log", audit.as_str())]) {
        leaks.extend(secrets.leaks_in(place, text));
        leaks.extend(identifiers.leaks_in(place, text));
    }
    assert!(leaks.is_empty(), "leaked: {leaks:#?}");
    // The scan finds what is there: the credentials in the kubeconfigs that hold them.
    let admin_kc = std::fs::read_to_string(dir.path().join("admin.kc")).expect("kubeconfig");
    let carol_kc = std::fs::read_to_string(dir.path().join("carol.kc")).expect("kubeconfig");
    let found = [
        secrets.leaks_in("admin.kc", &admin_kc),
        secrets.leaks_in("carol.kc", &carol_kc),
    ]
    .concat();
    for want in [
        "the admin token in admin.kc",
        "carol's client key (base64) in carol.kc",
    ] {
        assert!(found.iter().any(|f| f == want), "{want}: {found:?}");
    }
    eprintln!(
        "scanned {} secrets in {} log lines, {} resources' objects, {} audit records",
        secrets.0.len(),
        log.lines().count(),
        objects.len(),
        audit.lines().count()
    );
    // The scan saw what it should: a verbose log, bodies in the audit log, the swaps' Events.
    assert!(
        log.lines().count() > 100,
        "a debug log: {} lines",
        log.lines().count()
    );
    assert!(
        audit.contains("\"level\":\"RequestResponse\""),
        "bodies audited"
    );
    let events = objects.iter().find(|(r, _)| r == "events").expect("events");
    assert!(
        events.1.contains("ClusterSwap"),
        "the swaps' Events were scanned"
    );
    assert!(
        events.1.contains("\"Warning\""),
        "the cloud errors were reported in Events"
    );
}
