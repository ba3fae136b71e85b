//! The GKE front over HTTP as the official client speaks it (paths, `$alt=json;enum-encoding=int`,
//! bearer tokens), through the simulator's router: operations, idempotency by name, faults as
//! `google.rpc.Status`, and the member cluster a create makes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::{CloudConfig, Sim, SimConfig};

const TOKEN: &str = "ya29.sim-test-token";
const PARENT: &str = "/gcp/v1/projects/proj-1/locations/europe-west1";
const INT: &str = "%24alt=json%3Benum-encoding%3Dint";

fn sim(failure_rate: f64) -> Arc<Sim> {
    Sim::new(SimConfig {
        cloud: CloudConfig {
            create_latency: Duration::from_millis(50),
            delete_latency: Duration::from_millis(20),
            create_failure_rate: failure_rate,
        },
        nodes: 1,
        ..SimConfig::default()
    })
}

async fn call(
    sim: &Arc<Sim>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    call_as(sim, Some(TOKEN), method, path, body).await
}

async fn call_as(
    sim: &Arc<Sim>,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut req = Request::builder()
        .method(method)
        .uri(format!("{path}{sep}{INT}"))
        .header("host", "127.0.0.1");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let resp = sim.router().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn create_body(name: &str, token: &str) -> Value {
    json!({"cluster": {
        "name": name, "initialClusterVersion": "1.34",
        "resourceLabels": {"rotor-cluster": "prod-a", "rotor-token": token},
        "nodePools": [{"name": "general", "initialNodeCount": 3,
            "config": {"machineType": "e2-standard-4"},
            "autoscaling": {"enabled": true, "minNodeCount": 1, "maxNodeCount": 5}}]}})
}

/// Polls the operation until it is DONE (status 3).
async fn wait_done(sim: &Arc<Sim>, op: &Value) -> Value {
    let name = op["name"].as_str().expect("operation name");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, op) = call(
            sim,
            Method::GET,
            &format!("{PARENT}/operations/{name}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{op}");
        if op["status"] == 3 {
            return op;
        }
        assert_eq!(op["status"], 2, "RUNNING until done: {op}");
        assert!(Instant::now() < deadline, "operation not done: {op}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn gke_create_runs_an_operation_and_makes_a_member_cluster() {
    let sim = sim(0.0);
    let (status, op) = call(
        &sim,
        Method::POST,
        &format!("{PARENT}/clusters"),
        Some(create_body("blue-1", "aa")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{op}");
    assert_eq!(op["operationType"], 1, "CREATE_CLUSTER as an int: {op}");
    assert_eq!(op["status"], 2);
    assert!(
        op["targetLink"]
            .as_str()
            .unwrap()
            .ends_with("/clusters/blue-1")
    );

    let (_, provisioning) = call(
        &sim,
        Method::GET,
        &format!("{PARENT}/clusters/blue-1"),
        None,
    )
    .await;
    assert_eq!(provisioning["status"], 1, "PROVISIONING: {provisioning}");
    assert!(
        provisioning.get("endpoint").is_none(),
        "no endpoint before it runs"
    );

    let done = wait_done(&sim, &op).await;
    assert!(done.get("error").is_none(), "{done}");
    let (_, c) = call(
        &sim,
        Method::GET,
        &format!("{PARENT}/clusters/blue-1"),
        None,
    )
    .await;
    assert_eq!(c["status"], 2, "RUNNING: {c}");
    assert_eq!(c["nodePools"][0]["status"], 2);
    assert_eq!(c["nodePools"][0]["config"]["machineType"], "e2-standard-4");
    assert_eq!(c["nodePools"][0]["autoscaling"]["maxNodeCount"], 5);
    assert_eq!(c["currentMasterVersion"], "1.34.0-gke.0");
    assert_eq!(c["resourceLabels"]["rotor-token"], "aa");
    assert!(c["masterAuth"]["clusterCaCertificate"].is_string());
    let endpoint = c["endpoint"].as_str().unwrap();
    let member = endpoint.rsplit('/').next().unwrap();
    assert!(
        endpoint.starts_with("http://127.0.0.1/clusters/gke-"),
        "{endpoint}"
    );
    assert!(sim.cluster(member).is_some(), "the member cluster exists");

    // Names answered, not ints, when the request does not ask for ints.
    let resp = sim
        .router()
        .oneshot(
            Request::get(format!("{PARENT}/clusters/blue-1"))
                .header("authorization", format!("Bearer {TOKEN}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let named: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(named["status"], "RUNNING");

    // The list shows it in its location and in `-`, not in another location.
    let (_, list) = call(&sim, Method::GET, &format!("{PARENT}/clusters"), None).await;
    assert_eq!(list["clusters"][0]["name"], "blue-1");
    let (_, all) = call(
        &sim,
        Method::GET,
        "/gcp/v1/projects/proj-1/locations/-/clusters",
        None,
    )
    .await;
    assert_eq!(all["clusters"].as_array().unwrap().len(), 1);
    let (_, other) = call(
        &sim,
        Method::GET,
        "/gcp/v1/projects/proj-1/locations/us-east1/clusters",
        None,
    )
    .await;
    assert_eq!(other["clusters"], json!([]));
}

#[tokio::test]
async fn gke_a_second_create_of_a_name_is_already_exists_whatever_its_labels() {
    let sim = sim(0.0);
    let path = format!("{PARENT}/clusters");
    let (status, _) = call(&sim, Method::POST, &path, Some(create_body("blue-2", "aa"))).await;
    assert_eq!(status, StatusCode::OK);
    for token in ["aa", "bb"] {
        let (status, e) = call(
            &sim,
            Method::POST,
            &path,
            Some(create_body("blue-2", token)),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{e}");
        assert_eq!(e["error"]["status"], "ALREADY_EXISTS");
        assert_eq!(e["error"]["code"], 409);
    }
    // The same name in another location is another cluster.
    let (status, _) = call(
        &sim,
        Method::POST,
        "/gcp/v1/projects/proj-1/locations/us-east1/clusters",
        Some(create_body("blue-2", "bb")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sim.cloud.created_total(), 2);
}

#[tokio::test]
async fn gke_delete_answers_an_operation_and_the_cluster_goes() {
    let sim = sim(0.0);
    let (_, op) = call(
        &sim,
        Method::POST,
        &format!("{PARENT}/clusters"),
        Some(create_body("blue-3", "aa")),
    )
    .await;
    wait_done(&sim, &op).await;
    let path = format!("{PARENT}/clusters/blue-3");
    let (status, del) = call(&sim, Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{del}");
    assert_eq!(del["operationType"], 2, "DELETE_CLUSTER: {del}");
    let (_, stopping) = call(&sim, Method::GET, &path, None).await;
    assert_eq!(stopping["status"], 4, "STOPPING: {stopping}");
    let (status, again) = call(&sim, Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{again}");
    assert_eq!(again["error"]["status"], "FAILED_PRECONDITION");
    wait_done(&sim, &del).await;
    let (status, gone) = call(&sim, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{gone}");
    assert_eq!(gone["error"]["status"], "NOT_FOUND");
    let (status, _) = call(&sim, Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn gke_a_failed_create_ends_in_error_with_the_operations_error() {
    let sim = sim(1.0);
    let (_, op) = call(
        &sim,
        Method::POST,
        &format!("{PARENT}/clusters"),
        Some(create_body("blue-4", "aa")),
    )
    .await;
    let done = wait_done(&sim, &op).await;
    assert_eq!(done["error"]["code"], 8, "{done}");
    assert!(
        done["statusMessage"].as_str().unwrap().contains("capacity"),
        "{done}"
    );
    let (_, c) = call(
        &sim,
        Method::GET,
        &format!("{PARENT}/clusters/blue-4"),
        None,
    )
    .await;
    assert_eq!(c["status"], 5, "ERROR: {c}");
    assert!(c["statusMessage"].as_str().unwrap().contains("capacity"));
}

#[tokio::test]
async fn gke_faults_and_bad_requests_answer_google_rpc_status() {
    let sim = sim(0.0);
    let path = format!("{PARENT}/clusters");
    let (status, e) = call_as(&sim, None, Method::GET, &path, None).await;
    assert_eq!(
        (status, e["error"]["status"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("UNAUTHENTICATED"))
    );

    sim.cloud.rate_limit_next_calls(1, None);
    let (status, e) = call(&sim, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(e["error"]["status"], "RESOURCE_EXHAUSTED");
    let (status, _) = call(&sim, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK, "one call throttled, then served");

    sim.cloud.fail_next_creates(1);
    let (status, e) = call(&sim, Method::POST, &path, Some(create_body("blue-5", "aa"))).await;
    assert_eq!(
        (status, e["error"]["status"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("UNAVAILABLE"))
    );
    let (status, _) = call(&sim, Method::GET, &format!("{path}/blue-5"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an outage creates nothing");

    let mut bad = create_body("Blue_6", "aa");
    let (status, e) = call(&sim, Method::POST, &path, Some(bad.clone())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cluster.name \"Blue_6\""),
        "{e}"
    );
    bad["cluster"]["name"] = json!("blue-6");
    bad["cluster"]["nodePools"][0]["name"] = json!("General");
    let (_, e) = call(&sim, Method::POST, &path, Some(bad.clone())).await;
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cluster.nodePools[0].name"),
        "{e}"
    );
    bad["cluster"]["nodePools"] = json!([]);
    let (_, e) = call(&sim, Method::POST, &path, Some(bad.clone())).await;
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cluster.nodePools"),
        "{e}"
    );
    bad = create_body("blue-6", "aa");
    bad["cluster"]["initialClusterVersion"] = json!("1.99");
    let (_, e) = call(&sim, Method::POST, &path, Some(bad)).await;
    assert_eq!(e["error"]["status"], "INVALID_ARGUMENT");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cluster.initialClusterVersion"),
        "{e}"
    );
    assert_eq!(sim.cloud.created_total(), 0);
}

#[tokio::test]
async fn gke_members_accept_their_projects_tokens_only() {
    let sim = sim(0.0);
    let (_, op) = call(
        &sim,
        Method::POST,
        &format!("{PARENT}/clusters"),
        Some(create_body("blue-7", "aa")),
    )
    .await;
    wait_done(&sim, &op).await;
    let (_, c) = call(
        &sim,
        Method::GET,
        &format!("{PARENT}/clusters/blue-7"),
        None,
    )
    .await;
    let member = c["endpoint"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    // Someone who acted in another project only.
    call_as(
        &sim,
        Some("ya29.elsewhere"),
        Method::GET,
        "/gcp/v1/projects/proj-2/locations/-/clusters",
        None,
    )
    .await;
    let namespaces = |token: &'static str| {
        let sim = sim.clone();
        let member = member.clone();
        async move {
            let req = Request::get(format!("/clusters/{member}/api/v1/namespaces"))
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap();
            sim.router().oneshot(req).await.unwrap().status()
        }
    };
    assert_eq!(namespaces(TOKEN).await, StatusCode::OK);
    assert_eq!(namespaces("ya29.elsewhere").await, StatusCode::UNAUTHORIZED);
    assert_eq!(namespaces("ya29.forged").await, StatusCode::UNAUTHORIZED);
}
