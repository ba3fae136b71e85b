//! The sim provider against a real in-process simulator, over HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rotor_providers::sim::SimProvider;
use rotor_providers::{
    InstanceSpec, InstanceState, Located, Placement, ProviderError, idempotency_token,
    instance_name,
};
use rotor_sim::{CloudConfig, Sim, SimConfig};

const LIMIT: Duration = Duration::from_secs(10);

fn config() -> SimConfig {
    SimConfig {
        cloud: CloudConfig {
            create_latency: Duration::from_millis(50),
            delete_latency: Duration::from_millis(20),
            create_failure_rate: 0.0,
        },
        nodes: 1,
        ..SimConfig::default()
    }
}

async fn simulator() -> (Arc<Sim>, SocketAddr) {
    simulator_with(config()).await
}

async fn simulator_with(config: SimConfig) -> (Arc<Sim>, SocketAddr) {
    let sim = Sim::new(config);
    let addr = sim.serve_loopback().await.expect("serve the simulator");
    (sim, addr)
}

fn spec(swap: &str, version: &str) -> InstanceSpec {
    InstanceSpec {
        cluster: "prod-sim-a".into(),
        name: instance_name("prod-sim-a", swap, 0),
        kubernetes_version: version.into(),
        idempotency_token: idempotency_token("prod-sim-a", swap, 0),
        node_pools: Vec::new(),
        config: Default::default(),
    }
}

/// The sim provider at the (ignored) placement of a sim Cluster.
fn at(provider: &SimProvider) -> Located<'_> {
    Located::new(
        provider,
        Placement {
            account: "sim".into(),
            region: "sim-1".into(),
        },
    )
}

async fn wait_running(p: &Located<'_>, name: &str) {
    let deadline = Instant::now() + LIMIT;
    loop {
        let i = p
            .get_instance(name)
            .await
            .expect("describe")
            .expect("known");
        if i.state == InstanceState::Running {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "instance {name} not Running in time: {i:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn create_is_idempotent_and_credentials_reach_the_instance() {
    let (sim, addr) = simulator().await;
    let provider = SimProvider::new(&format!("http://{addr}"));
    let p = at(&provider);
    let s = spec("swap-1", "1.35");
    let first = p.create_instance(&s).await.expect("create");
    assert_eq!(first.state, InstanceState::Creating);
    assert_eq!(first.name, s.name);
    // Credentials before Running: not ready, retryable.
    let early = p.credentials(&s.name).await.expect_err("not running yet");
    assert!(early.is_retryable(), "{early}");
    // A retry after a "crash" asks for the same instance.
    let again = p.create_instance(&s).await.expect("retry");
    assert_eq!(again.name, first.name);
    wait_running(&p, &s.name).await;
    assert_eq!(
        sim.cluster_names(),
        vec![s.name.clone()],
        "exactly one instance for two creates"
    );
    // Same name, another token: refused, not retryable, names the instance.
    let other = InstanceSpec {
        idempotency_token: "someone-else".into(),
        ..s.clone()
    };
    let err = p.create_instance(&other).await.expect_err("token mismatch");
    assert!(
        !err.is_retryable() && err.to_string().contains(&s.name),
        "{err}"
    );

    let kubeconfig = p.credentials(&s.name).await.expect("credentials");
    assert!(
        !format!("{kubeconfig:?}").contains("token"),
        "credentials never print"
    );
    let kc = kube::config::Kubeconfig::from_yaml(kubeconfig.expose()).expect("kubeconfig parses");
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .expect("config");
    let client = kube::Client::try_from(config).expect("client");
    assert_eq!(
        client
            .apiserver_version()
            .await
            .expect("version")
            .git_version,
        "v1.35.0"
    );

    p.delete_instance(&s.name).await.expect("delete");
    let deadline = Instant::now() + LIMIT;
    while p.get_instance(&s.name).await.expect("describe").is_some() {
        assert!(Instant::now() < deadline, "instance not deleted in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p.delete_instance(&s.name)
        .await
        .expect("deleting a missing instance is Ok");
    assert!(sim.cluster(&s.name).is_none());
}

#[tokio::test]
async fn bad_requests_are_refused_and_outages_are_retryable() {
    let (_sim, addr) = simulator().await;
    let provider = SimProvider::new(&format!("http://{addr}"));
    let p = at(&provider);
    let err = p
        .create_instance(&spec("swap-2", "1.99"))
        .await
        .expect_err("bad version");
    match &err {
        ProviderError::Refused {
            status, message, ..
        } => assert!(
            *status == 400 && message.contains("kubernetesVersion"),
            "{err}"
        ),
        other => panic!("unexpected {other}"),
    }
    assert!(!err.is_retryable());
    assert!(p.get_instance("nope").await.expect("describe").is_none());

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let down = SimProvider::with_timeout(&format!("http://{closed}"), Duration::from_secs(2));
    let down = at(&down);
    let started = Instant::now();
    let err = down.get_instance("x").await.expect_err("unreachable");
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("instance x"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3), "fails fast");
}

#[tokio::test]
async fn cloud_outage_is_retryable_and_creates_nothing() {
    let (sim, addr) = simulator().await;
    let provider = SimProvider::new(&format!("http://{addr}"));
    let p = at(&provider);
    let s = spec("swap-3", "1.35");
    sim.cloud.fail_next_creates(2);
    for _ in 0..2 {
        match p.create_instance(&s).await {
            Err(e @ ProviderError::Unavailable { .. }) => {
                assert!(e.is_retryable() && e.to_string().contains(&s.name), "{e}")
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
    assert!(p.get_instance(&s.name).await.expect("describe").is_none());
    p.create_instance(&s).await.expect("the outage is over");
    p.create_instance(&s).await.expect("a retry");
    wait_running(&p, &s.name).await;
    assert_eq!(
        sim.cloud.created_total(),
        1,
        "exactly one instance ever created"
    );
}

#[tokio::test]
async fn instances_report_their_traffic_address() {
    let (sim, addr) = simulator_with(SimConfig {
        traffic_port: Some(0),
        ..config()
    })
    .await;
    let provider = SimProvider::new(&format!("http://{addr}"));
    let p = at(&provider);
    sim.start_clusters("blue", 1).await.expect("start");
    let adopted = p
        .get_instance("blue-0000")
        .await
        .expect("describe")
        .expect("known");
    let member = sim.cluster("blue-0000").expect("member");
    assert_eq!(adopted.traffic_address, member.traffic_addr);
    assert!(adopted.traffic_address.is_some(), "{adopted:?}");

    let s = spec("swap-4", "1.35");
    let created = p.create_instance(&s).await.expect("create");
    assert_eq!(created.traffic_address, None, "not provisioned yet");
    wait_running(&p, &s.name).await;
    let running = p
        .get_instance(&s.name)
        .await
        .expect("describe")
        .expect("known");
    let member = sim.cluster(&s.name).expect("member");
    assert_eq!(running.traffic_address, member.traffic_addr);
    assert_ne!(running.traffic_address, adopted.traffic_address);
    // The address answers: the member's traffic listener (no such service: 503).
    let mut conn = tokio::net::TcpStream::connect(running.traffic_address.expect("address"))
        .await
        .expect("connect");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    conn.write_all(b"GET /default/web HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = String::new();
    tokio::time::timeout(LIMIT, conn.read_to_string(&mut out))
        .await
        .expect("answer in time")
        .expect("read");
    assert!(out.starts_with("HTTP/1.1 503"), "{out}");
}

#[tokio::test]
async fn rate_limits_are_told_apart_with_their_retry_after() {
    let (sim, addr) = simulator().await;
    let provider = SimProvider::new(&format!("http://{addr}"));
    let p = at(&provider);
    let s = spec("swap-9", "1.35");
    sim.cloud
        .rate_limit_next_calls(2, Some(Duration::from_secs(3)));
    match p.create_instance(&s).await {
        Err(e @ ProviderError::RateLimited { .. }) => {
            assert!(e.is_retryable(), "{e}");
            assert_eq!(e.rate_limited(), Some(Some(Duration::from_secs(3))));
            assert!(e.to_string().contains("rate-limited"), "{e}");
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    let e = p.get_instance(&s.name).await.expect_err("rate-limited");
    assert!(e.rate_limited().is_some(), "{e}");
    assert_eq!(
        sim.cloud.created_total(),
        0,
        "a refused call changes nothing"
    );
    sim.cloud.rate_limit_next_calls(1, None);
    let e = p.delete_instance(&s.name).await.expect_err("rate-limited");
    assert_eq!(e.rate_limited(), Some(None));
    // Other errors are not rate limits.
    sim.cloud.fail_next_creates(1);
    assert_eq!(
        p.create_instance(&s)
            .await
            .expect_err("outage")
            .rate_limited(),
        None
    );
    p.create_instance(&s).await.expect("through");
    wait_running(&p, &s.name).await;
}
