//! The ARM front over HTTP as rotor-azure speaks it (paths in any case, `api-version`, bearer
//! tokens, `If-None-Match: *`), through the simulator's router: long-running operations and
//! their links, idempotency by name, faults as ARM errors, and the member cluster a create
//! makes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use base64::Engine as _;
use http::{HeaderMap, Method, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::{CloudConfig, Sim, SimConfig};

const TOKEN: &str = "sim-azure-test-token";
const PUBLIC: &str = "http://127.0.0.1:8080";
const RG: &str =
    "/azure/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.ContainerService";
const V: &str = "api-version=2026-01-01";

fn sim(failure_rate: f64) -> Arc<Sim> {
    let sim = Sim::new(SimConfig {
        cloud: CloudConfig {
            create_latency: Duration::from_millis(50),
            delete_latency: Duration::from_millis(20),
            create_failure_rate: failure_rate,
        },
        nodes: 1,
        ..SimConfig::default()
    });
    sim.set_public_url(PUBLIC);
    sim
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn call(sim: &Arc<Sim>, method: Method, path: &str, body: Option<Value>) -> Answer {
    call_with(sim, Some(TOKEN), &[], method, path, body).await
}

async fn call_with(
    sim: &Arc<Sim>,
    token: Option<&str>,
    headers: &[(&str, &str)],
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let path = path.strip_prefix(PUBLIC).unwrap_or(path);
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut req = Request::builder()
        .method(method)
        .uri(format!("{path}{sep}{V}"));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let resp = sim.router().oneshot(req.body(body).unwrap()).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

fn cluster(name: &str) -> String {
    format!("{RG}/managedClusters/{name}")
}

fn put_body(token: &str) -> Value {
    json!({"location": "westeurope",
        "tags": {"rotor-cluster": "prod-a", "rotor-token": token},
        "identity": {"type": "SystemAssigned"},
        "properties": {"kubernetesVersion": "1.34", "dnsPrefix": "prod-a",
            "agentPoolProfiles": [
                {"name": "system", "mode": "System", "vmSize": "Standard_D4s_v5", "count": 3,
                 "enableAutoScaling": true, "minCount": 1, "maxCount": 5},
                {"name": "batch", "mode": "User", "vmSize": "Standard_D8s_v5", "count": 1}]}})
}

/// A create-only PUT (what rotor sends).
async fn create(sim: &Arc<Sim>, name: &str, token: &str) -> Answer {
    let headers = [("if-none-match", "*")];
    call_with(
        sim,
        Some(TOKEN),
        &headers,
        Method::PUT,
        &cluster(name),
        Some(put_body(token)),
    )
    .await
}

fn header<'a>(a: &'a Answer, name: &str) -> &'a str {
    a.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
}

/// Polls `Azure-AsyncOperation` until the operation is over.
async fn wait_done(sim: &Arc<Sim>, started: &Answer) -> Value {
    let url = header(started, "azure-asyncoperation").to_string();
    assert!(url.starts_with(&format!("{PUBLIC}/azure/subscriptions/sub-1/providers/Microsoft.ContainerService/locations/westeurope/operations/")), "{url}");
    let url = url.split('?').next().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let op = call(sim, Method::GET, &url, None).await;
        assert_eq!(op.status, StatusCode::OK, "{}", op.body);
        if op.body["status"] != "InProgress" {
            return op.body;
        }
        assert!(Instant::now() < deadline, "operation not over: {}", op.body);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn aks_create_answers_an_operation_and_makes_a_member_cluster() {
    let sim = sim(0.0);
    let created = create(&sim, "blue-1", "aa").await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(header(&created, "retry-after"), "1");
    assert_eq!(created.body["properties"]["provisioningState"], "Creating");
    assert!(
        created.body["properties"].get("fqdn").is_none(),
        "no fqdn while creating"
    );

    let done = wait_done(&sim, &created).await;
    assert_eq!(done["status"], "Succeeded", "{done}");
    assert!(done["endTime"].is_string() && done.get("error").is_none());
    // ARM's literal segments in another case are the same path.
    let lower = "/azure/subscriptions/sub-1/resourcegroups/RG-1/providers/microsoft.containerservice/managedclusters/BLUE-1";
    let got = call(&sim, Method::GET, lower, None).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.body);
    let c = &got.body;
    assert_eq!(c["name"], "blue-1");
    assert_eq!(c["type"], "Microsoft.ContainerService/ManagedClusters");
    assert_eq!(c["tags"]["rotor-token"], "aa");
    assert_eq!(c["properties"]["provisioningState"], "Succeeded");
    assert_eq!(c["properties"]["kubernetesVersion"], "1.34");
    let pools = &c["properties"]["agentPoolProfiles"];
    assert_eq!(pools[0]["provisioningState"], "Succeeded");
    assert_eq!(pools[1]["vmSize"], "Standard_D8s_v5");
    let fqdn = c["properties"]["fqdn"].as_str().unwrap();
    let member = fqdn.strip_prefix(&format!("{PUBLIC}/clusters/")).unwrap();
    assert!(sim.cluster(member).is_some(), "the member cluster exists");

    let list = call(
        &sim,
        Method::GET,
        &format!("{}/agentPools", cluster("blue-1")),
        None,
    )
    .await;
    let names: Vec<&str> = list.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["system", "batch"]);
    let one = call(
        &sim,
        Method::GET,
        &format!("{}/agentPools/system", cluster("blue-1")),
        None,
    )
    .await;
    assert_eq!(one.body["properties"]["mode"], "System");
    assert_eq!(one.body["properties"]["maxCount"], 5);
    assert_eq!(
        one.body["type"],
        "Microsoft.ContainerService/managedClusters/agentPools"
    );
    let missing = call(
        &sim,
        Method::GET,
        &format!("{}/agentPools/gpu", cluster("blue-1")),
        None,
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn aks_a_create_only_put_on_a_taken_name_is_precondition_failed() {
    let sim = sim(0.0);
    assert_eq!(
        create(&sim, "blue-2", "aa").await.status,
        StatusCode::CREATED
    );
    for token in ["aa", "bb"] {
        let again = create(&sim, "blue-2", token).await;
        assert_eq!(
            again.status,
            StatusCode::PRECONDITION_FAILED,
            "{}",
            again.body
        );
        assert_eq!(again.body["error"]["code"], "PreconditionFailed");
    }
    // Without If-None-Match a PUT updates (here: the tags).
    let update = call(&sim, Method::PUT, &cluster("blue-2"), Some(put_body("cc"))).await;
    assert_eq!(update.status, StatusCode::OK, "{}", update.body);
    assert_eq!(update.body["tags"]["rotor-token"], "cc");
    // The same name in another resource group is another cluster.
    let other = "/azure/subscriptions/sub-1/resourceGroups/rg-2/providers/Microsoft.ContainerService/managedClusters/blue-2";
    let headers = [("if-none-match", "*")];
    let made = call_with(
        &sim,
        Some(TOKEN),
        &headers,
        Method::PUT,
        other,
        Some(put_body("bb")),
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED);
    assert_eq!(sim.cloud.created_total(), 2);
    // Both are in the subscription's list, with their resource groups in their ids.
    let all = call(
        &sim,
        Method::GET,
        "/azure/subscriptions/SUB-1/providers/Microsoft.ContainerService/managedClusters",
        None,
    )
    .await;
    let mut ids: Vec<&str> = all.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids.len(), 2, "{}", all.body);
    assert!(
        ids[0].contains("/resourcegroups/rg-1/") && ids[1].contains("/resourcegroups/rg-2/"),
        "{ids:?}"
    );
    let none = call(
        &sim,
        Method::GET,
        "/azure/subscriptions/sub-2/providers/Microsoft.ContainerService/managedClusters",
        None,
    )
    .await;
    assert_eq!(none.body["value"], json!([]));
}

#[tokio::test]
async fn aks_delete_answers_202_with_links_until_the_cluster_is_gone() {
    let sim = sim(0.0);
    let created = create(&sim, "blue-3", "aa").await;
    wait_done(&sim, &created).await;
    let path = cluster("blue-3");
    let deleting = call(&sim, Method::DELETE, &path, None).await;
    assert_eq!(deleting.status, StatusCode::ACCEPTED);
    let result_url = header(&deleting, "location").to_string();
    assert!(
        result_url.contains("/locations/westeurope/operationresults/"),
        "{result_url}"
    );
    let got = call(&sim, Method::GET, &path, None).await;
    assert_eq!(got.body["properties"]["provisioningState"], "Deleting");
    let again = call(&sim, Method::DELETE, &path, None).await;
    assert_eq!(
        again.status,
        StatusCode::ACCEPTED,
        "a repeated delete is accepted"
    );
    assert_eq!(
        header(&again, "azure-asyncoperation"),
        header(&deleting, "azure-asyncoperation"),
        "the same operation"
    );
    let done = wait_done(&sim, &deleting).await;
    assert_eq!(done["status"], "Succeeded");
    let result = call(
        &sim,
        Method::GET,
        result_url.split('?').next().unwrap(),
        None,
    )
    .await;
    assert_eq!(result.status, StatusCode::NO_CONTENT);
    let gone = call(&sim, Method::GET, &path, None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.body["error"]["code"], "ResourceNotFound");
    assert_eq!(
        call(&sim, Method::DELETE, &path, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(sim.cloud.deleted_total(), 1);
}

#[tokio::test]
async fn aks_a_failed_create_is_failed_with_the_operations_error() {
    let sim = sim(1.0);
    let created = create(&sim, "blue-4", "aa").await;
    let done = wait_done(&sim, &created).await;
    assert_eq!(done["status"], "Failed", "{done}");
    assert_eq!(done["error"]["code"], "AllocationFailed");
    assert!(
        done["error"]["message"]
            .as_str()
            .unwrap()
            .contains("capacity"),
        "{done}"
    );
    let c = call(&sim, Method::GET, &cluster("blue-4"), None).await;
    assert_eq!(c.body["properties"]["provisioningState"], "Failed");
    let op_id = header(&created, "azure-asyncoperation")
        .split('?')
        .next()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let result = call(
        &sim,
        Method::GET,
        &format!("/azure/subscriptions/sub-1/providers/Microsoft.ContainerService/locations/westeurope/operationresults/{op_id}"),
        None,
    )
    .await;
    assert_eq!(result.body["error"]["code"], "AllocationFailed");
}

#[tokio::test]
async fn aks_faults_and_bad_requests_answer_arm_errors() {
    let sim = sim(0.0);
    let path = cluster("blue-5");
    let anonymous = call_with(&sim, None, &[], Method::GET, &path, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.body["error"]["code"], "AuthenticationFailed");

    sim.cloud
        .rate_limit_next_calls(1, Some(Duration::from_secs(7)));
    let throttled = call(&sim, Method::GET, &path, None).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&throttled, "retry-after"), "7");
    assert_eq!(
        call(&sim, Method::GET, &path, None).await.status,
        StatusCode::NOT_FOUND
    );

    sim.cloud.fail_next_creates(1);
    let outage = create(&sim, "blue-5", "aa").await;
    assert_eq!(outage.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        call(&sim, Method::GET, &path, None).await.status,
        StatusCode::NOT_FOUND
    );

    let refused = |mut body: Value, edit: fn(&mut Value), field: &'static str| {
        let sim = sim.clone();
        edit(&mut body);
        async move {
            let headers = [("if-none-match", "*")];
            let a = call_with(
                &sim,
                Some(TOKEN),
                &headers,
                Method::PUT,
                &cluster("blue-6"),
                Some(body),
            )
            .await;
            assert_eq!(a.status, StatusCode::BAD_REQUEST, "{field}: {}", a.body);
            let message = a.body["error"]["message"].as_str().unwrap().to_string();
            assert!(message.contains(field), "{field} not named: {message}");
        }
    };
    refused(
        put_body("aa"),
        |b| b["properties"]["agentPoolProfiles"][1]["name"] = json!("batchpool1234"),
        "properties.agentPoolProfiles[1].name",
    )
    .await;
    refused(put_body("aa"), |b| b["location"] = json!(""), "location").await;
    refused(
        put_body("aa"),
        |b| b["properties"]["kubernetesVersion"] = json!("1.99"),
        "properties.kubernetesVersion",
    )
    .await;
    refused(
        put_body("aa"),
        |b| b["tags"] = json!({"rotor.dev/token": "x"}),
        "tags",
    )
    .await;
    assert_eq!(sim.cloud.created_total(), 0);
    let nowhere = call(
        &sim,
        Method::GET,
        "/azure/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.Network/x/y",
        None,
    )
    .await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn aks_user_credentials_reach_the_member_with_its_own_token() {
    let sim = sim(0.0);
    let created = create(&sim, "blue-7", "aa").await;
    let path = format!("{}/listClusterUserCredential", cluster("blue-7"));
    let early = call(&sim, Method::POST, &path, None).await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{}", early.body);
    wait_done(&sim, &created).await;
    let creds = call(&sim, Method::POST, &path, None).await;
    assert_eq!(creds.status, StatusCode::OK, "{}", creds.body);
    assert_eq!(creds.body["kubeconfigs"][0]["name"], "clusterUser");
    let yaml = base64::engine::general_purpose::STANDARD
        .decode(creds.body["kubeconfigs"][0]["value"].as_str().unwrap())
        .unwrap();
    let k: Value = serde_json::from_slice(&yaml).expect("JSON is YAML");
    let server = k["clusters"][0]["cluster"]["server"].as_str().unwrap();
    let member = server.strip_prefix(&format!("{PUBLIC}/clusters/")).unwrap();
    let token = k["users"][0]["user"]["token"].as_str().unwrap();
    assert_eq!(
        token,
        sim.cluster(member).unwrap().token,
        "the member's own token"
    );
    let namespaces = |token: String| {
        let (sim, member) = (sim.clone(), member.to_string());
        async move {
            let req = Request::get(format!("/clusters/{member}/api/v1/namespaces"))
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap();
            sim.router().oneshot(req).await.unwrap().status()
        }
    };
    assert_eq!(namespaces(token.to_string()).await, StatusCode::OK);
    assert_eq!(
        namespaces(TOKEN.to_string()).await,
        StatusCode::UNAUTHORIZED,
        "rotor's ARM token is not a member's"
    );
}
