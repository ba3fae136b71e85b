//! Fault injection seen from outside, over real HTTP: the traffic listener, a member's
//! Kubernetes API through the simulator's router, and the cloud's fault and stats routes.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rotor_apiserver::WriteOptions;
use rotor_sim::{CloudClusterState, CloudConfig, Fault, Sim, SimConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bounds every wait: a broken fault switch fails the test instead of hanging it.
const LIMIT: Duration = Duration::from_secs(10);

fn config() -> SimConfig {
    SimConfig {
        nodes: 1,
        workload_ready_delay: Duration::from_millis(20),
        node_ready_delay: Duration::from_millis(10),
        traffic_port: Some(0),
        cloud: CloudConfig {
            create_latency: Duration::from_millis(20),
            delete_latency: Duration::from_millis(10),
            create_failure_rate: 0.0,
        },
        ..SimConfig::default()
    }
}

async fn serve(sim: &Arc<Sim>) -> SocketAddr {
    sim.serve_loopback().await.expect("serve the simulator")
}

/// One HTTP/1.1 exchange on a fresh connection: (status, body).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let body = body.unwrap_or_default();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        let code = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (code, body)
    };
    tokio::time::timeout(LIMIT, exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no answer within {LIMIT:?}"))
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + LIMIT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A Service `default/web` in front of a one-replica Deployment.
async fn deploy_web(sim: &Sim, cluster: &str) {
    let server = sim.cluster(cluster).expect("member").server.clone();
    let opts = WriteOptions {
        field_manager: "test".into(),
        ..WriteOptions::default()
    };
    let services = server.resource("", "v1", "services").expect("services");
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
    server
        .create(&services, Some("default"), svc, &opts)
        .await
        .expect("service");
    let deployments = server
        .resource("apps", "v1", "deployments")
        .expect("deployments");
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:1"}]}}}});
    server
        .create(&deployments, Some("default"), deploy, &opts)
        .await
        .expect("deployment");
}

#[tokio::test]
async fn traffic_errors_answer_503_until_cleared() {
    let sim = Sim::new(config());
    let addr = serve(&sim).await;
    sim.start_clusters("blue", 1).await.expect("start");
    let traffic = sim
        .cluster("blue-0000")
        .and_then(|c| c.traffic_addr)
        .expect("traffic on");
    // The cloud reports the same address (a real cloud: the ingress load balancer).
    let (code, body) = http(addr, "GET", "/cloud/clusters/blue-0000", None, None).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(json_of(&body)["trafficAddress"], traffic.to_string());

    deploy_web(&sim, "blue-0000").await;
    eventually("web ready", || async {
        http(traffic, "GET", "/default/web", None, None).await.0 == 200
    })
    .await;

    let (code, body) = http(
        addr,
        "PUT",
        "/cloud/clusters/blue-0000/faults",
        None,
        Some(r#"{"faults": ["TrafficErrors"]}"#),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(json_of(&body), json!({"faults": ["TrafficErrors"]}));
    let (code, body) = http(traffic, "GET", "/default/web", None, None).await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("TrafficErrors"), "{body}");
    // Every request, not only known services.
    assert_eq!(http(traffic, "GET", "/x/y/z", None, None).await.0, 503);
    // The API is untouched by a traffic fault.
    let (code, _) = http(addr, "GET", "/cloud/clusters/blue-0000/faults", None, None).await;
    assert_eq!(code, 200);
    assert_eq!(sim.faults("blue-0000"), Some(vec![Fault::TrafficErrors]));

    let (code, body) = http(
        addr,
        "PUT",
        "/cloud/clusters/blue-0000/faults",
        None,
        Some(r#"{"faults": []}"#),
    )
    .await;
    assert_eq!((code, json_of(&body)), (200, json!({"faults": []})));
    assert_eq!(
        http(traffic, "GET", "/default/web", None, None).await.0,
        200
    );
}

#[tokio::test]
async fn api_unavailable_is_a_kubernetes_status_and_ends_watches() {
    let sim = Sim::new(config());
    let addr = serve(&sim).await;
    sim.start_clusters("blue", 1).await.expect("start");
    let token = sim.cluster("blue-0000").expect("member").token.clone();
    let kubeconfig = sim
        .kubeconfig("blue-0000", &format!("http://{addr}"))
        .expect("kubeconfig");
    let kc = kube::config::Kubeconfig::from_yaml(&kubeconfig).expect("parses");
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .expect("config");
    // kube-rs retries 503 and 504 fifteen times with exponential backoff (minutes) by default.
    config.default_retry = false;
    config.read_timeout = Some(LIMIT);
    let client = kube::Client::try_from(config).expect("client");
    client.apiserver_version().await.expect("healthy API");

    // An open watch ends when the outage starts, as a dropped connection would.
    let watch = tokio::spawn(async move {
        http(
            addr,
            "GET",
            "/clusters/blue-0000/api/v1/namespaces/default/configmaps?watch=true",
            Some(&token),
            None,
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!watch.is_finished(), "the watch is open");

    assert!(sim.set_fault("blue-0000", Fault::ApiUnavailable));
    match client.apiserver_version().await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 503, "{status:?}");
            assert_eq!(status.reason, "ServiceUnavailable", "{status:?}");
            assert!(status.message.contains("blue-0000"), "{status:?}");
        }
        other => panic!("expected a 503 Status, got {other:?}"),
    }
    let (code, _) = tokio::time::timeout(LIMIT, watch)
        .await
        .expect("the watch ended")
        .expect("join");
    assert_eq!(code, 200, "the watch had started");

    sim.clear_faults("blue-0000");
    client.apiserver_version().await.expect("healthy again");
    assert!(
        !sim.set_fault("nope", Fault::ApiUnavailable),
        "unknown cluster"
    );
}

#[tokio::test]
async fn api_timeout_holds_requests_until_cleared() {
    let sim = Sim::new(config());
    let addr = serve(&sim).await;
    sim.start_clusters("blue", 1).await.expect("start");
    let token = sim.cluster("blue-0000").expect("member").token.clone();
    assert_eq!(
        http(
            addr,
            "GET",
            "/clusters/blue-0000/version",
            Some(&token),
            None
        )
        .await
        .0,
        200
    );

    assert!(sim.set_fault("blue-0000", Fault::ApiTimeout));
    let t = token.clone();
    let held = tokio::spawn(async move {
        http(addr, "GET", "/clusters/blue-0000/version", Some(&t), None).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished(), "no answer while the fault is on");

    let cleared = Instant::now();
    sim.clear_faults("blue-0000");
    let (code, body) = tokio::time::timeout(LIMIT, held)
        .await
        .expect("answered after clear")
        .expect("join");
    assert!(cleared.elapsed() < Duration::from_secs(5));
    assert_eq!(code, 504, "{body}");
    let status = json_of(&body);
    assert_eq!(
        (status["kind"].as_str(), status["reason"].as_str()),
        (Some("Status"), Some("Timeout")),
        "{body}"
    );
    assert_eq!(
        http(
            addr,
            "GET",
            "/clusters/blue-0000/version",
            Some(&token),
            None
        )
        .await
        .0,
        200,
        "served again"
    );
}

#[tokio::test]
async fn cloud_faults_and_stats_over_http() {
    let sim = Sim::new(config());
    let addr = serve(&sim).await;
    let (code, body) = http(
        addr,
        "PUT",
        "/cloud/faults",
        None,
        Some(r#"{"failNextCreates": 2, "createLatencyMs": 300}"#),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        json_of(&body),
        json!({"failNextCreates": 2, "createLatencyMs": 300})
    );

    let create = r#"{"name": "green-1", "kubernetesVersion": "1.35", "idempotencyToken": "t1"}"#;
    for _ in 0..2 {
        let (code, body) = http(addr, "POST", "/cloud/clusters", None, Some(create)).await;
        assert_eq!(code, 503, "{body}");
        assert!(body.contains("green-1"), "{body}");
    }
    assert!(sim.cloud.get("green-1").is_none(), "nothing created");
    let (code, body) = http(addr, "POST", "/cloud/clusters", None, Some(create)).await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(
        json_of(&body)["trafficAddress"],
        Value::Null,
        "no member yet"
    );
    // A fault set while the cloud creates the cluster is in force from its first request.
    let (code, body) = http(
        addr,
        "PUT",
        "/cloud/clusters/green-1/faults",
        None,
        Some(r#"{"faults": ["ApiUnavailable"]}"#),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        http(addr, "POST", "/cloud/clusters", None, Some(create))
            .await
            .0,
        202,
        "a retry"
    );
    eventually("green-1 running", || async {
        sim.cloud.get("green-1").map(|c| c.state) == Some(CloudClusterState::Running)
    })
    .await;
    let token = sim.cluster("green-1").expect("member").token.clone();
    let (code, body) = http(addr, "GET", "/clusters/green-1/version", Some(&token), None).await;
    assert_eq!(code, 503, "{body}");

    let (code, body) = http(addr, "GET", "/cloud/stats", None, None).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        json_of(&body),
        json!({"createdTotal": 1, "deletedTotal": 0})
    );
    for _ in 0..2 {
        assert_eq!(
            http(addr, "DELETE", "/cloud/clusters/green-1", None, None)
                .await
                .0,
            202
        );
    }
    let (_, body) = http(addr, "GET", "/cloud/stats", None, None).await;
    assert_eq!(
        json_of(&body),
        json!({"createdTotal": 1, "deletedTotal": 1})
    );

    // Bad requests are refused and name what is wrong.
    let (code, body) = http(
        addr,
        "PUT",
        "/cloud/clusters/nope/faults",
        None,
        Some(r#"{"faults": []}"#),
    )
    .await;
    assert_eq!(code, 404, "{body}");
    let (code, _) = http(addr, "GET", "/cloud/clusters/nope/faults", None, None).await;
    assert_eq!(code, 404);
    sim.start_clusters("blue", 1).await.expect("start");
    let (code, body) = http(
        addr,
        "PUT",
        "/cloud/clusters/blue-0000/faults",
        None,
        Some(r#"{"faults": ["Meteor"]}"#),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("Meteor"), "{body}");
    let (code, body) = http(
        addr,
        "PUT",
        "/cloud/faults",
        None,
        Some(r#"{"failNextCreate": 1}"#),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    let (_, body) = http(addr, "GET", "/cloud/faults", None, None).await;
    assert_eq!(
        json_of(&body),
        json!({"failNextCreates": 0, "createLatencyMs": 300})
    );
}

/// A simulator with one cluster, `blue-0000`, whose `default/web` answers: and its traffic
/// address.
async fn web_cluster() -> (Arc<Sim>, SocketAddr) {
    let sim = Sim::new(config());
    sim.start_clusters("blue", 1).await.expect("start");
    let traffic = sim.cluster("blue-0000").and_then(|c| c.traffic_addr);
    let traffic = traffic.expect("traffic on");
    deploy_web(&sim, "blue-0000").await;
    eventually("web ready", || async {
        http(traffic, "GET", "/default/web", None, None).await.0 == 200
    })
    .await;
    (sim, traffic)
}

/// Reads the raw answer on `stream` until `done` says it has enough (true) or the connection
/// ends (false); bounded by [`LIMIT`].
async fn read_raw(
    stream: &mut tokio::net::TcpStream,
    out: &mut Vec<u8>,
    done: impl Fn(&[u8]) -> bool,
) -> bool {
    let read = async {
        let mut buf = [0u8; 4096];
        while !done(out) {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        true
    };
    tokio::time::timeout(LIMIT, read)
        .await
        .unwrap_or_else(|_| panic!("no answer within {LIMIT:?}"))
}

/// Sends `GET path` on a fresh connection, left open for [`read_raw`].
async fn open(addr: SocketAddr, path: &str) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: app\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    s
}

/// The application's answers besides a plain GET: a write, a slow request and a stream that a
/// deleted cluster ends after a whole message.
#[tokio::test]
async fn application_answers_writes_slow_requests_and_streams_that_end_cleanly() {
    let (sim, traffic) = web_cluster().await;

    let (code, body) = http(traffic, "POST", "/default/web", None, Some("{\"a\":1}")).await;
    assert_eq!((code, body.as_str()), (201, "created 7 bytes\n"));
    let asked = Instant::now();
    let (code, _) = http(traffic, "GET", "/default/web?delay_ms=200", None, None).await;
    assert_eq!(code, 200);
    assert!(asked.elapsed() >= Duration::from_millis(200));

    let mut stream = open(traffic, "/default/web/stream").await;
    let mut seen = Vec::new();
    let three = |b: &[u8]| String::from_utf8_lossy(b).contains("data: 2\n\n");
    assert!(
        read_raw(&mut stream, &mut seen, three).await,
        "three messages"
    );
    let head = String::from_utf8_lossy(&seen).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");

    // Deleting the cluster drains: the stream ends after a whole message, with the chunked
    // body's terminator (a clean end), and nothing answers on its address afterwards.
    drop(sim.remove_cluster("blue-0000"));
    read_raw(&mut stream, &mut seen, |_| false).await;
    let all = String::from_utf8_lossy(&seen).to_string();
    assert!(all.ends_with("\n\n\r\n0\r\n\r\n"), "{all:?}");
    eventually("the address refused", || unanswered(traffic)).await;
}

/// Whether a request to `addr` goes unanswered: the connection is refused, or reset before a
/// byte comes back (the simulator's one traffic socket resets connections to an address no
/// cluster holds).
async fn unanswered(addr: SocketAddr) -> bool {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return true;
    };
    let asked = s.write_all(b"GET /default/web HTTP/1.1\r\nHost: app\r\n\r\n");
    if asked.await.is_err() {
        return true;
    }
    let mut first = [0u8; 1];
    matches!(
        tokio::time::timeout(LIMIT, s.read(&mut first)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// A workload scaled to zero behaves as terminating Pods: a request it accepted is still
/// answered, a stream ends after a whole message, and new requests are refused.
#[tokio::test]
async fn a_stopped_workload_finishes_what_it_accepted_and_ends_streams_cleanly() {
    let (sim, traffic) = web_cluster().await;
    let mut stream = open(traffic, "/default/web/stream").await;
    let mut seen = Vec::new();
    let first = |b: &[u8]| String::from_utf8_lossy(b).contains("data: 0\n\n");
    assert!(read_raw(&mut stream, &mut seen, first).await, "a message");
    let slow = tokio::spawn(http(
        traffic,
        "GET",
        "/default/web?delay_ms=1500",
        None,
        None,
    ));
    // The slow request is in the application before the workload stops.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let server = sim.cluster("blue-0000").expect("member").server.clone();
    let deployments = server
        .resource("apps", "v1", "deployments")
        .expect("deployments");
    let opts = WriteOptions {
        field_manager: "test".into(),
        ..WriteOptions::default()
    };
    server
        .patch(
            &deployments,
            Some("default"),
            "web",
            rotor_apiserver::PatchType::Merge,
            &json!({"spec": {"replicas": 0}}),
            None,
            &opts,
        )
        .await
        .expect("scaled to zero");
    eventually("new requests refused", || async {
        http(traffic, "GET", "/default/web", None, None).await.0 == 503
    })
    .await;
    assert_eq!(slow.await.expect("slow request").0, 200);
    // The chunked body's terminator right after a whole message: a clean end.
    let ended = |b: &[u8]| b.ends_with(b"\r\n0\r\n\r\n");
    assert!(
        read_raw(&mut stream, &mut seen, ended).await,
        "the stream ends"
    );
    let all = String::from_utf8_lossy(&seen).to_string();
    assert!(all.ends_with("\n\n\r\n0\r\n\r\n"), "{all:?}");
}

/// `TrafficHangs` holds requests until cleared, `TrafficSlow` answers late, `TrafficResets`
/// breaks the answer off after its head.
#[tokio::test]
async fn traffic_hangs_slows_and_resets() {
    let (sim, traffic) = web_cluster().await;

    assert!(sim.set_fault("blue-0000", Fault::TrafficHangs));
    let held = tokio::spawn(async move { http(traffic, "GET", "/default/web", None, None).await });
    let mut probe = open(traffic, "/default/web").await;
    let mut got = Vec::new();
    let answered = tokio::time::timeout(
        Duration::from_millis(300),
        read_raw(&mut probe, &mut got, |b| !b.is_empty()),
    );
    assert!(answered.await.is_err(), "answered while hanging: {got:?}");
    sim.clear_faults("blue-0000");
    assert_eq!(held.await.expect("held request").0, 200);

    assert!(sim.set_fault("blue-0000", Fault::TrafficSlow));
    let asked = Instant::now();
    assert_eq!(
        http(traffic, "GET", "/default/web", None, None).await.0,
        200
    );
    assert!(asked.elapsed() >= rotor_sim::SLOW_LATENCY);
    sim.clear_faults("blue-0000");

    assert!(sim.set_fault("blue-0000", Fault::TrafficResets));
    let mut conn = open(traffic, "/default/web").await;
    let mut got = Vec::new();
    let complete = read_raw(&mut conn, &mut got, |b| b.ends_with(b"0\r\n\r\n")).await;
    let text = String::from_utf8_lossy(&got);
    assert!(!complete && text.starts_with("HTTP/1.1 200"), "{text:?}");
}
