//! The controllers on AWS's APIs, through the wiring `rotor serve` uses (`--provider aws
//! --traffic route53:ZONE --aws-endpoint-url URL`), against a real moto server.
//!
//! moto serves EKS's and Route 53's APIs but runs no Kubernetes: an EKS cluster there has an
//! endpoint nothing answers on. So the swap below goes as far as AWS can take it — the Cluster's
//! instance adopted and registered in Route 53, green created in EKS with its node group and
//! tags, waited for — and then, green's API never answering, rolls back on its timeout: green's
//! node group and cluster deleted in EKS, Route 53 still all on blue. On the simulator's AWS,
//! where an EKS cluster has a Kubernetes API, the same wiring runs a swap to the end. Every wait
//! is bounded.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::controllers::Controllers;
use common::fleet::swap;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use rotor_api::{
    Cluster, ClusterSwap, NodePool, Phase, Provider, Reason, ShifterKind, SwapStrategy,
    TrafficEndpoint,
};

const LIMIT: Duration = Duration::from_secs(60);
const ENDPOINT: &str = "shop.example.com";

fn aws_cluster() -> Cluster {
    let mut c = rotor_api::sample_fleet(1).remove(0);
    c.metadata.name = Some("prod-aws-us-east-1-a".into());
    c.metadata.managed_fields = None;
    c.spec.provider = Provider::Aws;
    c.spec.account = "123456789012".into();
    c.spec.region = "us-east-1".into();
    c.spec.kubernetes_version = "1.30".into();
    c.spec.node_pools = vec![NodePool {
        name: "general".into(),
        instance_type: "m7i.large".into(),
        min_count: 1,
        max_count: 5,
        desired_count: 2,
    }];
    c.spec.config = BTreeMap::from([
        (
            "roleArn".into(),
            "arn:aws:iam::123456789012:role/eks".into(),
        ),
        ("subnetIds".into(), "subnet-1,subnet-2".into()),
        (
            "nodeRoleArn".into(),
            "arn:aws:iam::123456789012:role/nodes".into(),
        ),
    ]);
    c.spec.traffic = TrafficEndpoint {
        shifter: ShifterKind::Route53,
        endpoint: ENDPOINT.into(),
    };
    c
}

/// (set identifier, weight, value) of the endpoint's record sets.
async fn records(r53: &aws_sdk_route53::Client, zone: &str) -> Vec<(String, i64, String)> {
    let mut out: Vec<_> = r53
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .expect("list records")
        .resource_record_sets()
        .iter()
        .filter(|s| s.name().trim_end_matches('.') == ENDPOINT)
        .map(|s| {
            (
                s.set_identifier().unwrap_or_default().to_string(),
                s.weight().unwrap_or(-1),
                s.resource_records()
                    .first()
                    .map(|r| r.value().to_string())
                    .unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    out
}

/// A hosted zone `example.com`: its id.
async fn hosted_zone(r53: &aws_sdk_route53::Client) -> String {
    r53.create_hosted_zone()
        .name("example.com")
        .caller_reference("rotor-e2e")
        .send()
        .await
        .expect("zone")
        .hosted_zone
        .expect("zone")
        .id
}

/// Blue: the EKS cluster already serving the Cluster (named like it, so it is adopted), its
/// ingress `address` tagged on it where the cloud does not tag it itself.
async fn create_blue(eks: &aws_sdk_eks::Client, name: &str, address: Option<&str>) {
    let mut create = eks
        .create_cluster()
        .name(name)
        .version("1.30")
        .role_arn("arn:aws:iam::123456789012:role/eks")
        .resources_vpc_config(
            aws_sdk_eks::types::VpcConfigRequest::builder()
                .subnet_ids("subnet-1")
                .build(),
        );
    if let Some(address) = address {
        create = create.tags(rotor_providers::eks::TAG_TRAFFIC_ADDRESS, address);
    }
    create.send().await.expect("blue");
}

/// The credentials of moto and the simulator, where the SDK's default chain reads them.
fn static_aws_credentials() {
    // SAFETY: nextest runs each test in a process of its own, and nothing in this one reads
    // the environment concurrently: the control plane and the SDK start after this.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_REGION", "us-east-1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_on_eks_and_route53_creates_green_then_rolls_back_cleanly() {
    let Some(moto) = rotor_test_support::moto::for_test().await else {
        return;
    };
    tokio::time::timeout(Duration::from_secs(120), async {
        let config = rotor_aws::sdk_config(&moto.options()).await;
        let eks = aws_sdk_eks::Client::new(&config);
        let r53 = aws_sdk_route53::Client::new(&config);
        let zone = hosted_zone(&r53).await;

        // Blue: the EKS cluster already serving the Cluster (named like it, so it is adopted),
        // its ingress address tagged on it.
        let cluster = aws_cluster();
        let name = cluster.name_any();
        create_blue(&eks, &name, Some("10.20.0.1:443")).await;

        // The control plane and the controllers, wired as `rotor serve` wires them.
        static_aws_credentials();
        let cp = common::start(Arc::new(rotor_store::memory::MemoryStore::default())).await;
        let wiring = rotor::controlplane::Wiring {
            providers: vec!["aws".into()],
            traffic: vec![format!("route53:{zone}")],
            aws_endpoint_url: Some(moto.url.clone()),
            aws_role_arn_template: None,
            eks_credentials: rotor_providers::eks::ClusterCredentials::Token,
            // Green is kept this long after the rollback (TTL + propagation), for clients
            // that cached its address.
            route53_ttl_seconds: 3,
            route53_propagation: Duration::ZERO,
            ..Default::default()
        };
        let settings = rotor_controllers::Settings {
            poll_interval: Duration::from_millis(200),
            green_ready_timeout: Duration::from_secs(4),
            ..Default::default()
        };
        let controllers = Controllers::start(&cp, &wiring, settings).await;

        let clusters: Api<Cluster> = Api::all(cp.client.clone());
        clusters
            .create(&PostParams::default(), &cluster)
            .await
            .expect("Cluster");
        common::eventually(LIMIT, "blue adopted and registered in Route 53", || async {
            let active = clusters.get(&name).await.ok()?.status?.active_instance;
            let recs = records(&r53, &zone).await;
            (active.as_deref() == Some(name.as_str())
                && recs == [("rotor-blue".to_string(), 100, "10.20.0.1".to_string())])
            .then_some(())
        })
        .await;

        let swaps: Api<ClusterSwap> = Api::all(cp.client.clone());
        let strategy = SwapStrategy {
            traffic_steps: vec![50, 100],
            bake_seconds: 1,
            blue_retention_seconds: 1,
            ..Default::default()
        };
        let swap = swap("upgrade", &name, "1.31", strategy);
        swaps
            .create(&PostParams::default(), &swap)
            .await
            .expect("swap");

        // Green in EKS: at the target version, tagged for this swap, with the node group.
        let green = common::eventually(LIMIT, "green created in EKS", || async {
            let s = swaps.get("upgrade").await.ok()?.status?;
            let green = s.green_instance?;
            let described = eks
                .describe_cluster()
                .name(&green)
                .send()
                .await
                .ok()?
                .cluster?;
            let groups = eks
                .list_nodegroups()
                .cluster_name(&green)
                .send()
                .await
                .ok()?
                .nodegroups()
                .to_vec();
            (groups == ["general".to_string()]).then_some((green, described))
        })
        .await;
        let (green, described) = green;
        println!("green {green} in EKS: {:?}", described.status());
        assert_eq!(described.version(), Some("1.31"));
        let tags = described.tags().expect("tags");
        assert_eq!(
            tags.get(rotor_providers::eks::TAG_CLUSTER),
            Some(&name),
            "{tags:?}"
        );
        assert!(
            tags.contains_key(rotor_providers::eks::TAG_TOKEN),
            "{tags:?}"
        );

        // Its API never answers: the swap rolls back on the timeout, deletes green, and
        // traffic never left blue.
        let done = common::eventually(LIMIT, "the swap rolled back", || async {
            let s = swaps.get("upgrade").await.ok()?.status?;
            (s.phase == Phase::RolledBack).then_some(s)
        })
        .await;
        for t in &done.history {
            println!("{:?} {:?}: {}", t.phase, t.reason, t.message);
        }
        let rolling_back = done
            .history
            .iter()
            .find(|t| t.phase == Phase::RollingBack)
            .expect("RollingBack recorded");
        assert_eq!(rolling_back.reason, Reason::TimedOut, "{rolling_back:?}");
        assert!(
            rolling_back.message.contains(&green) && rolling_back.message.contains("not ready"),
            "{rolling_back:?}"
        );
        // Green outlived the rollback by the DNS settle time (history times are whole seconds).
        let rolled_back = done
            .history
            .iter()
            .find(|t| t.phase == Phase::RolledBack)
            .expect("RolledBack recorded");
        let kept = rolled_back.time.0.duration_since(rolling_back.time.0);
        assert!(
            kept >= k8s_openapi::jiff::SignedDuration::from_secs(2),
            "green deleted {kept} after the rollback began, before DNS caches (TTL 3 s) expired"
        );
        assert!(
            done.history
                .iter()
                .all(|t| t.phase != Phase::ShiftingTraffic),
            "traffic moved: {:?}",
            done.history
        );
        common::eventually(LIMIT, "green deleted from EKS", || async {
            let listed = eks.list_clusters().send().await.ok()?;
            (listed.clusters() == [name.clone()]).then_some(())
        })
        .await;
        assert!(
            eks.describe_cluster().name(&green).send().await.is_err(),
            "green {green} still described"
        );
        assert_eq!(
            records(&r53, &zone).await,
            [("rotor-blue".to_string(), 100, "10.20.0.1".to_string())]
        );
        let c = clusters.get(&name).await.expect("Cluster");
        assert_eq!(
            c.status.and_then(|s| s.active_instance).as_deref(),
            Some(name.as_str())
        );

        // What the metrics say of it: the cloud calls by outcome, the transitions, the duration.
        let text = controllers.ctx.metrics.encode();
        for line in [
            r#"rotor_provider_calls_total{provider="aws",operation="create",outcome="ok"}"#,
            r#"rotor_provider_calls_total{provider="aws",operation="delete",outcome="ok"}"#,
            r#"rotor_swap_transitions_total{phase="RollingBack",reason="TimedOut"} 1"#,
            r#"rotor_swap_duration_seconds_count{outcome="RolledBack"} 1"#,
            r#"rotor_swaps{phase="RolledBack"} 1"#,
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }

        controllers.stop().await;
    })
    .await
    .expect("bounded");
}

/// The same wiring against the simulator's AWS (`rotor sim` at `/aws`), where an EKS cluster is
/// a member with a Kubernetes API and a traffic address: the controllers reach blue's and
/// green's APIs with tokens minted from their AWS credentials (`--eks-credentials token`), and
/// the swap runs to the end — green created with its node group, Route 53 moved to green's
/// address, blue deleted from EKS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_on_eks_and_route53_in_the_simulator_succeeds() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let sim = rotor_sim::Sim::new(rotor_sim::SimConfig {
            nodes: 2,
            node_ready_delay: Duration::from_millis(100),
            workload_ready_delay: Duration::from_millis(100),
            traffic_port: Some(common::kubectl::free_port()),
            cloud: rotor_sim::CloudConfig {
                create_latency: Duration::from_millis(300),
                delete_latency: Duration::from_millis(200),
                ..Default::default()
            },
            ..Default::default()
        });
        let addr = sim.serve_loopback().await.expect("simulator serves");
        let options = rotor_test_support::aws::sim_options(addr);
        let config = rotor_aws::sdk_config(&options).await;
        let eks = aws_sdk_eks::Client::new(&config);
        let r53 = aws_sdk_route53::Client::new(&config);
        let zone = hosted_zone(&r53).await;
        let cluster = aws_cluster();
        let name = cluster.name_any();
        create_blue(&eks, &name, None).await;
        let blue_address = common::eventually(LIMIT, "blue active with an address", || async {
            let c = eks
                .describe_cluster()
                .name(&name)
                .send()
                .await
                .ok()?
                .cluster?;
            let active = c.status() == Some(&aws_sdk_eks::types::ClusterStatus::Active);
            let tag = c
                .tags()?
                .get(rotor_providers::eks::TAG_TRAFFIC_ADDRESS)?
                .clone();
            active.then_some(tag)
        })
        .await;
        let blue_ip = blue_address.split(':').next().expect("ip").to_string();
        // The sample application in blue, through a token as the controllers will use one.
        let tokens =
            rotor_providers::eks::EksProvider::new(&config, rotor_providers::eks::Accounts::Own)
                .with_cluster_credentials(rotor_providers::eks::ClusterCredentials::Token);
        let at = rotor_providers::Placement {
            account: "123456789012".into(),
            region: "us-east-1".into(),
        };
        let member = |instance: String| {
            let (tokens, at) = (&tokens, &at);
            async move {
                let located = rotor_providers::Located::new(tokens, at.clone());
                let kubeconfig = located.credentials(&instance).await.expect("credentials");
                rotor::client_for(kubeconfig.expose())
                    .await
                    .expect("client")
            }
        };
        common::fleet::apply_sample_app(&member(name.clone()).await).await;

        static_aws_credentials();
        let cp = common::start(Arc::new(rotor_store::memory::MemoryStore::default())).await;
        let wiring = rotor::controlplane::Wiring {
            providers: vec!["aws".into()],
            traffic: vec![format!("route53:{zone}")],
            aws_endpoint_url: options.endpoint_url.clone(),
            aws_role_arn_template: None,
            eks_credentials: rotor_providers::eks::ClusterCredentials::Token,
            route53_ttl_seconds: 1,
            route53_propagation: Duration::ZERO,
            ..Default::default()
        };
        // Route 53 counts no sessions: Draining lasts the whole drain timeout.
        let settings = rotor_controllers::Settings {
            poll_interval: Duration::from_millis(200),
            drain_timeout: Duration::from_secs(2),
            ..Default::default()
        };
        let controllers = Controllers::start(&cp, &wiring, settings).await;
        let clusters: Api<Cluster> = Api::all(cp.client.clone());
        clusters
            .create(&PostParams::default(), &cluster)
            .await
            .expect("Cluster");
        common::eventually(LIMIT, "blue adopted and registered in Route 53", || async {
            let active = clusters.get(&name).await.ok()?.status?.active_instance;
            let recs = records(&r53, &zone).await;
            (active.as_deref() == Some(name.as_str())
                && recs == [("rotor-blue".to_string(), 100, blue_ip.clone())])
            .then_some(())
        })
        .await;

        let swaps: Api<ClusterSwap> = Api::all(cp.client.clone());
        let strategy = SwapStrategy {
            traffic_steps: vec![50, 100],
            bake_seconds: 1,
            blue_retention_seconds: 1,
            ..Default::default()
        };
        swaps
            .create(
                &PostParams::default(),
                &swap("upgrade", &name, "1.31", strategy),
            )
            .await
            .expect("swap");
        let done = common::eventually(LIMIT, "the swap ends", || async {
            let s = swaps.get("upgrade").await.ok()?.status?;
            s.phase.is_terminal().then_some(s)
        })
        .await;
        for t in &done.history {
            println!("{:?} {:?}: {}", t.phase, t.reason, t.message);
        }
        assert_eq!(done.phase, Phase::Succeeded, "{:?}", done.history);
        let green = done.green_instance.clone().expect("green");
        let described = eks
            .describe_cluster()
            .name(&green)
            .send()
            .await
            .expect("green in EKS")
            .cluster
            .expect("cluster");
        assert_eq!(described.version(), Some("1.31"));
        let apps: Api<k8s_openapi::api::apps::v1::Deployment> =
            Api::namespaced(member(green.clone()).await, rotor::rehearsal::APP_NAMESPACE);
        apps.get(rotor::rehearsal::APP_NAME)
            .await
            .expect("the sample application migrated to green");
        let green_ip = described
            .tags()
            .and_then(|t| t.get(rotor_providers::eks::TAG_TRAFFIC_ADDRESS))
            .and_then(|a| a.split(':').next())
            .expect("green's address")
            .to_string();
        common::eventually(LIMIT, "blue deleted, Route 53 all on green", || async {
            let listed = eks.list_clusters().send().await.ok()?;
            let recs = records(&r53, &zone).await;
            let on_green = recs.iter().any(|(_, w, ip)| *w == 100 && *ip == green_ip)
                && recs.iter().all(|(_, w, ip)| *ip == green_ip || *w == 0);
            (listed.clusters() == [green.clone()] && on_green).then_some(())
        })
        .await;
        let c = clusters.get(&name).await.expect("Cluster");
        assert_eq!(
            c.status.and_then(|s| s.active_instance).as_deref(),
            Some(green.as_str())
        );
        controllers.stop().await;
    })
    .await
    .expect("bounded");
}
