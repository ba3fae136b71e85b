//! The EKS provider through the official AWS SDK against two independent EKS APIs: a real moto
//! server (AWS's EKS API on 127.0.0.1) and `rotor sim`'s AWS front (`/aws`), where every EKS
//! cluster is a simulated member. Each test runs on both (`on_both!`) and must pass on both.
//! What moto cannot show: real EKS's minutes of CREATING and node group creation in the
//! background (moto makes them ACTIVE at once; the simulator takes its create latency).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rotor_aws::AwsOptions;
use rotor_providers::eks::{
    Accounts, ClusterCredentials, EksProvider, TAG_TOKEN, TAG_TRAFFIC_ADDRESS,
};
use rotor_providers::{
    InstanceSpec, InstanceState, Located, NodePoolSpec, Placement, ProviderError,
    idempotency_token, instance_name,
};
use rotor_sim::{CloudConfig, Sim, SimConfig};
use rotor_test_support::aws::{Backend, sim_options};
use rotor_test_support::members::list_namespaces;
use rotor_test_support::moto::{self, MotoServer};

const LIMIT: Duration = Duration::from_secs(20);

fn placement(region: &str) -> Placement {
    Placement {
        account: "123456789012".into(),
        region: region.into(),
    }
}

fn config() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "roleArn".to_string(),
            "arn:aws:iam::123456789012:role/eks-cluster".to_string(),
        ),
        ("subnetIds".to_string(), "subnet-a, subnet-b".to_string()),
        (
            "nodeRoleArn".to_string(),
            "arn:aws:iam::123456789012:role/eks-nodes".to_string(),
        ),
    ])
}

fn spec(swap: &str) -> InstanceSpec {
    InstanceSpec {
        cluster: "prod-aws-us-east-1-a".into(),
        name: instance_name("prod-aws-us-east-1-a", swap, 0),
        kubernetes_version: "1.30".into(),
        idempotency_token: idempotency_token("prod-aws-us-east-1-a", swap, 0),
        node_pools: vec![
            NodePoolSpec {
                name: "general".into(),
                instance_type: "m7i.large".into(),
                min_count: 2,
                max_count: 6,
                desired_count: 3,
            },
            NodePoolSpec {
                name: "batch".into(),
                instance_type: "c7i.xlarge".into(),
                min_count: 0,
                max_count: 4,
                desired_count: 1,
            },
        ],
        config: config(),
    }
}

/// An EKS API that lives as long as the test (held for its drop).
#[allow(dead_code)]
enum Server {
    Moto(MotoServer),
    Sim(Arc<Sim>),
}

struct Aws {
    options: AwsOptions,
    provider: EksProvider,
    /// The SDK directly, to look at what the provider did.
    eks: aws_sdk_eks::Client,
    _server: Server,
}

/// The simulator, serving on a loopback port; the AWS SDK reaches its front at `/aws`.
async fn simulator() -> (Arc<Sim>, AwsOptions) {
    let sim = Sim::new(SimConfig {
        cloud: CloudConfig {
            create_latency: Duration::from_millis(50),
            delete_latency: Duration::from_millis(20),
            create_failure_rate: 0.0,
        },
        nodes: 1,
        ..SimConfig::default()
    });
    let addr = sim.serve_loopback().await.expect("serve the simulator");
    (sim, sim_options(addr))
}

async fn aws(backend: Backend) -> Option<Aws> {
    let (server, options) = match backend {
        Backend::Moto => {
            let moto = moto::for_test().await?;
            let options = moto.options();
            (Server::Moto(moto), options)
        }
        Backend::Sim => {
            let (sim, options) = simulator().await;
            (Server::Sim(sim), options)
        }
    };
    let config = rotor_aws::sdk_config(&options).await;
    Some(Aws {
        provider: EksProvider::new(&config, Accounts::Own),
        eks: aws_sdk_eks::Client::new(&config),
        options,
        _server: server,
    })
}

rotor_test_support::on_both!(
    create_is_idempotent_and_builds_the_node_groups,
    another_swaps_cluster_of_the_same_name_is_refused_not_adopted,
    missing_config_is_refused_naming_the_field_and_creates_nothing,
    instances_live_in_their_clusters_region,
    a_cluster_of_another_account_is_refused_without_a_role_to_assume,
    with_a_role_template_each_cluster_acts_in_its_own_account,
    delete_takes_the_node_groups_then_the_cluster,
    credentials_carry_endpoint_and_ca_but_no_secret,
    the_traffic_address_comes_from_the_instances_tag,
);

/// Calls `create_instance` until the instance runs: moto makes it at once, the simulator
/// after its create latency (cluster, then node groups).
async fn create_until_running(p: &Located<'_>, s: &InstanceSpec) -> rotor_providers::Instance {
    let deadline = Instant::now() + LIMIT;
    loop {
        let got = p.create_instance(s).await.expect("create");
        if got.state == InstanceState::Running {
            return got;
        }
        assert_eq!(got.state, InstanceState::Creating, "{got:?}");
        assert!(Instant::now() < deadline, "not running: {got:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn cluster_names(eks: &aws_sdk_eks::Client) -> Vec<String> {
    eks.list_clusters()
        .send()
        .await
        .expect("list clusters")
        .clusters()
        .to_vec()
}

/// The EKS cluster as moto holds it.
async fn described(eks: &aws_sdk_eks::Client, name: &str) -> aws_sdk_eks::types::Cluster {
    eks.describe_cluster()
        .name(name)
        .send()
        .await
        .expect("describe")
        .cluster
        .expect("cluster")
}

async fn create_is_idempotent_and_builds_the_node_groups(backend: Backend) {
    let Some(aws) = aws(backend).await else {
        return;
    };
    let p = Located::new(&aws.provider, placement("us-east-1"));
    let s = spec("swap-1");

    let first = p.create_instance(&s).await.expect("create");
    assert_eq!(first.name, s.name);
    assert_eq!(first.kubernetes_version, "1.30");
    // moto makes up an https endpoint; the simulator's is its member's API, over TLS as EKS's.
    assert!(
        first
            .endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("https://")),
        "{first:?}"
    );
    // Retries (a crash after the request, a poll) ask for the same instance.
    let again = create_until_running(&p, &s).await;
    assert_eq!(again.name, s.name);
    assert_eq!(cluster_names(&aws.eks).await, vec![s.name.clone()]);

    let described = described(&aws.eks, &s.name).await;
    let tags = described.tags().expect("tags");
    assert_eq!(tags.get(TAG_TOKEN), Some(&s.idempotency_token));
    assert_eq!(
        tags.get("rotor.dev/cluster").map(String::as_str),
        Some("prod-aws-us-east-1-a")
    );
    assert_eq!(
        described.role_arn(),
        Some("arn:aws:iam::123456789012:role/eks-cluster")
    );
    assert_eq!(
        described
            .resources_vpc_config()
            .map(|v| v.subnet_ids().to_vec()),
        Some(vec!["subnet-a".to_string(), "subnet-b".to_string()])
    );

    let mut groups = aws
        .eks
        .list_nodegroups()
        .cluster_name(&s.name)
        .send()
        .await
        .expect("list node groups")
        .nodegroups()
        .to_vec();
    groups.sort();
    assert_eq!(groups, vec!["batch".to_string(), "general".to_string()]);
    let general = aws
        .eks
        .describe_nodegroup()
        .cluster_name(&s.name)
        .nodegroup_name("general")
        .send()
        .await
        .expect("describe node group")
        .nodegroup
        .expect("node group");
    let scaling = general.scaling_config().expect("scaling");
    assert_eq!(
        (
            scaling.min_size(),
            scaling.max_size(),
            scaling.desired_size()
        ),
        (Some(2), Some(6), Some(3))
    );
    assert_eq!(general.instance_types(), ["m7i.large".to_string()]);
    assert_eq!(
        general.node_role(),
        Some("arn:aws:iam::123456789012:role/eks-nodes")
    );

    let got = p.get_instance(&s.name).await.expect("get").expect("known");
    assert_eq!(got.state, InstanceState::Running);
    assert_eq!(got.traffic_address, None, "no tag, no address");
}

async fn another_swaps_cluster_of_the_same_name_is_refused_not_adopted(backend: Backend) {
    let Some(aws) = aws(backend).await else {
        return;
    };
    let p = Located::new(&aws.provider, placement("us-east-1"));
    let s = spec("swap-1");
    p.create_instance(&s).await.expect("create");
    let mut other = s.clone();
    other.idempotency_token = idempotency_token("prod-aws-us-east-1-a", "swap-2", 0);
    let err = p.create_instance(&other).await.expect_err("not ours");
    assert!(
        matches!(err, ProviderError::Refused { status: 409, .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(err.to_string().contains(&s.name), "{err}");
    assert_eq!(cluster_names(&aws.eks).await, vec![s.name.clone()]);
}

async fn missing_config_is_refused_naming_the_field_and_creates_nothing(backend: Backend) {
    let Some(aws) = aws(backend).await else {
        return;
    };
    let p = Located::new(&aws.provider, placement("us-east-1"));
    for (key, field) in [
        ("roleArn", "spec.config.roleArn"),
        ("subnetIds", "spec.config.subnetIds"),
        ("nodeRoleArn", "spec.config.nodeRoleArn"),
    ] {
        let mut s = spec("swap-1");
        s.config.remove(key);
        let err = p.create_instance(&s).await.expect_err("incomplete config");
        assert!(
            matches!(err, ProviderError::Refused { status: 400, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(field), "{key}: {err}");
        assert!(err.to_string().contains(&s.name), "{key}: {err}");
    }
    assert!(cluster_names(&aws.eks).await.is_empty());
}

async fn instances_live_in_their_clusters_region(backend: Backend) {
    let Some(aws) = aws(backend).await else {
        return;
    };
    let east = Located::new(&aws.provider, placement("us-east-1"));
    let west = Located::new(&aws.provider, placement("eu-west-1"));
    let s = spec("swap-1");
    east.create_instance(&s).await.expect("create");
    assert!(east.get_instance(&s.name).await.expect("get").is_some());
    assert!(
        west.get_instance(&s.name).await.expect("get").is_none(),
        "an instance in us-east-1 must not be found in eu-west-1"
    );
    assert!(east.get_instance("nope").await.expect("get").is_none());
}

async fn a_cluster_of_another_account_is_refused_without_a_role_to_assume(backend: Backend) {
    let Some(aws) = aws(backend).await else {
        return;
    };
    // moto's own credentials are of account 123456789012.
    let other = Located::new(
        &aws.provider,
        Placement {
            account: "111111111111".into(),
            region: "us-east-1".into(),
        },
    );
    let s = spec("swap-1");
    let err = other.create_instance(&s).await.expect_err("wrong account");
    assert!(
        matches!(err, ProviderError::Refused { status: 403, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("111111111111") && text.contains("123456789012"),
        "{text}"
    );
    assert!(text.contains("--aws-role-arn-template"), "{text}");
    assert!(cluster_names(&aws.eks).await.is_empty());

    let bad = Located::new(
        &aws.provider,
        Placement {
            account: "prod".into(),
            region: "us-east-1".into(),
        },
    );
    let err = bad
        .get_instance(&s.name)
        .await
        .expect_err("not an account id");
    assert!(err.to_string().contains("spec.account"), "{err}");
}

async fn with_a_role_template_each_cluster_acts_in_its_own_account(backend: Backend) {
    let Some(aws) = aws(backend).await else {
        return;
    };
    let config = rotor_aws::sdk_config(&aws.options).await;
    let provider = EksProvider::new(
        &config,
        Accounts::AssumeRole("arn:aws:iam::{account}:role/rotor".into()),
    );
    let at = |account: &str| {
        Located::new(
            &provider,
            Placement {
                account: account.into(),
                region: "us-east-1".into(),
            },
        )
    };
    let s = spec("swap-1");
    at("111111111111")
        .create_instance(&s)
        .await
        .expect("create in 111111111111");
    assert!(
        at("111111111111")
            .get_instance(&s.name)
            .await
            .expect("get")
            .is_some()
    );
    assert!(
        at("222222222222")
            .get_instance(&s.name)
            .await
            .expect("get")
            .is_none(),
        "an instance of account 111111111111 must not be found in 222222222222"
    );
    // Nothing in the credentials' own account.
    assert!(
        cluster_names(&aws_sdk_eks::Client::new(&config))
            .await
            .is_empty()
    );
}

async fn delete_takes_the_node_groups_then_the_cluster(backend: Backend) {
    let Some(aws) = aws(backend).await else {
        return;
    };
    let p = Located::new(&aws.provider, placement("us-east-1"));
    let s = spec("swap-1");
    create_until_running(&p, &s).await;
    // The controllers call delete until the provider no longer knows the instance.
    let deadline = Instant::now() + LIMIT;
    let mut calls = 0;
    while p.get_instance(&s.name).await.expect("get").is_some() {
        assert!(Instant::now() < deadline, "not gone after {calls} deletes");
        p.delete_instance(&s.name).await.expect("delete");
        calls += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(calls >= 1);
    assert!(cluster_names(&aws.eks).await.is_empty());
    p.delete_instance(&s.name)
        .await
        .expect("deleting a gone instance is Ok");
}

async fn credentials_carry_endpoint_and_ca_but_no_secret(backend: Backend) {
    let Some(aws) = aws(backend).await else {
        return;
    };
    let p = Located::new(&aws.provider, placement("us-east-1"));
    let s = spec("swap-1");
    let instance = create_until_running(&p, &s).await;
    let kubeconfig = p.credentials(&s.name).await.expect("credentials");
    let k: serde_json::Value = serde_json::from_str(kubeconfig.expose()).expect("json");
    let cluster = &k["clusters"][0]["cluster"];
    assert_eq!(cluster["server"].as_str(), instance.endpoint.as_deref());
    assert!(
        cluster["certificate-authority-data"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
    let user = &k["users"][0]["user"];
    assert!(user.get("token").is_none(), "no static token: {user}");
    let args: Vec<&str> = user["exec"]["args"]
        .as_array()
        .expect("exec args")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert_eq!(
        args,
        [
            "eks",
            "get-token",
            "--cluster-name",
            &s.name,
            "--region",
            "us-east-1",
            "--output",
            "json"
        ]
    );
    assert!(!format!("{kubeconfig:?}").contains("eks"));

    let err = p.credentials("nope").await.expect_err("unknown instance");
    assert!(err.to_string().contains("instance nope"), "{err}");
}

async fn the_traffic_address_comes_from_the_instances_tag(backend: Backend) {
    let Some(aws) = aws(backend).await else {
        return;
    };
    let p = Located::new(&aws.provider, placement("us-east-1"));
    let s = spec("swap-1");
    p.create_instance(&s).await.expect("create");
    let arn = described(&aws.eks, &s.name).await.arn.expect("arn");
    let tag = |value: &'static str| {
        aws.eks
            .tag_resource()
            .resource_arn(&arn)
            .tags(TAG_TRAFFIC_ADDRESS, value)
            .send()
    };
    tag("10.1.2.3:443").await.expect("tag");
    let got = p.get_instance(&s.name).await.expect("get").expect("known");
    assert_eq!(got.traffic_address, Some("10.1.2.3:443".parse().unwrap()));

    tag("lb.example.com").await.expect("tag");
    let err = p.get_instance(&s.name).await.expect_err("not IP:PORT");
    assert!(matches!(err, ProviderError::Protocol { .. }), "{err:?}");
    assert!(err.to_string().contains(TAG_TRAFFIC_ADDRESS), "{err}");
}

#[tokio::test]
async fn an_unreachable_aws_is_retryable_and_fails_fast() {
    let config = rotor_aws::sdk_config(&moto::unreachable()).await;
    let provider = EksProvider::new(&config, Accounts::Own);
    let p = Located::new(&provider, placement("us-east-1"));
    let started = Instant::now();
    let err = p.get_instance("x").await.expect_err("unreachable");
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("instance x"), "{err}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
    assert!(started.elapsed() < LIMIT, "took {:?}", started.elapsed());
}

/// In the simulator an EKS cluster is a member cluster: once ACTIVE, its endpoint is a
/// Kubernetes API at the version asked for (with the member's own token; EKS's `aws eks
/// get-token` is not run here).
#[tokio::test]
async fn an_eks_cluster_in_the_simulator_is_a_member_with_its_own_api() {
    let (sim, options) = simulator().await;
    let config = rotor_aws::sdk_config(&options).await;
    let provider = EksProvider::new(&config, Accounts::Own);
    let p = Located::new(&provider, placement("us-east-1"));
    let s = spec("swap-1");
    let instance = create_until_running(&p, &s).await;
    let endpoint = instance.endpoint.expect("endpoint");
    let member = endpoint
        .rsplit('/')
        .next()
        .expect("member name")
        .to_string();
    let kubeconfig = sim
        .kubeconfig(
            &member,
            endpoint.trim_end_matches(&format!("/clusters/{member}")),
        )
        .expect("a simulated member behind the endpoint");
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&kubeconfig).expect("kubeconfig");
    let client_config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("client config");
    let client = kube::Client::try_from(client_config).expect("client");
    let version = client.apiserver_version().await.expect("version");
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "30")
    );
}

/// With `ClusterCredentials::Token` the kubeconfig carries a `k8s-aws-v1.` token rotor minted
/// from its own AWS credentials, which the simulated EKS cluster's API accepts as EKS does
/// (no `aws` binary involved); a forged token is refused. With the default, the kubeconfig
/// runs `aws eks get-token` and holds no token.
#[tokio::test]
async fn token_mode_credentials_reach_an_eks_clusters_api_in_the_simulator() {
    let (_sim, options) = simulator().await;
    let config = rotor_aws::sdk_config(&options).await;
    let provider = EksProvider::new(&config, Accounts::Own)
        .with_cluster_credentials(ClusterCredentials::Token);
    let p = Located::new(&provider, placement("us-east-1"));
    let s = spec("swap-1");
    create_until_running(&p, &s).await;
    let kubeconfig = p.credentials(&s.name).await.expect("credentials");
    assert!(
        kubeconfig.expose().contains("k8s-aws-v1."),
        "no EKS token in the kubeconfig"
    );
    let listed = list_namespaces(kubeconfig.expose())
        .await
        .expect("the token is accepted");
    assert!(
        listed
            .items
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some("default"))
    );
    let token = kubeconfig
        .expose()
        .split("k8s-aws-v1.")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("token");
    let forged = kubeconfig.expose().replace(token, "aGVsbG8");
    match list_namespaces(&forged).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 401, "{status:?}"),
        other => panic!("a forged token was not refused: {other:?}"),
    }
    let exec = EksProvider::new(&config, Accounts::Own);
    let exec = Located::new(&exec, placement("us-east-1"))
        .credentials(&s.name)
        .await
        .expect("credentials");
    assert!(exec.expose().contains("get-token") && !exec.expose().contains("k8s-aws-v1."));
}
