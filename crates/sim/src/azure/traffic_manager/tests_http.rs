//! The Traffic Manager front over HTTP through the simulator's router: the wire objects of the
//! specification's examples (profile and endpoint shapes, 201/200/204), endpoint PATCH merging,
//! ARM's errors naming the field, and the ARM front's auth and throttling.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{HeaderMap, Method, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::{Sim, SimConfig};

const TOKEN: &str = "sim-azure-test-token";
const PROFILE: &str = "/azure/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.Network/trafficmanagerprofiles/front";
const V: &str = "api-version=2022-04-01";

fn sim() -> Arc<Sim> {
    let sim = Sim::new(SimConfig::default());
    sim.set_public_url("http://127.0.0.1:8080");
    sim
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

/// One request; `path` carries its query when it has one, else the api-version is added.
async fn send(
    sim: &Arc<Sim>,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let uri = if path.contains('?') {
        path.to_string()
    } else {
        format!("{path}?{V}")
    };
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
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

async fn call(sim: &Arc<Sim>, method: Method, path: &str, body: Option<Value>) -> Answer {
    send(sim, Some(TOKEN), method, path, body).await
}

fn endpoint(name: &str) -> String {
    format!("{PROFILE}/ExternalEndpoints/{name}")
}

/// A weighted profile as `az network traffic-manager profile create` would ask for it.
fn profile_body() -> Value {
    json!({"location": "global", "tags": {"team": "edge"}, "properties": {
        "profileStatus": "Enabled", "trafficRoutingMethod": "Weighted",
        "dnsConfig": {"relativeName": "rotor-front", "ttl": 30},
        "monitorConfig": {"protocol": "HTTPS", "port": 443, "path": "/healthz"}}})
}

fn endpoint_body(target: &str, weight: Option<i64>) -> Value {
    let mut b = json!({"type": "Microsoft.network/TrafficManagerProfiles/ExternalEndpoints",
        "properties": {"target": target, "endpointStatus": "Enabled",
            "customHeaders": [{"name": "X-Rotor-Owner", "value": "heritage=rotor"}]}});
    if let Some(w) = weight {
        b["properties"]["weight"] = json!(w);
    }
    b
}

#[tokio::test]
async fn tm_a_profile_is_made_read_replaced_and_deleted_as_the_spec_answers() {
    let sim = sim();
    let made = call(&sim, Method::PUT, PROFILE, Some(profile_body())).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let id = "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.Network/trafficManagerProfiles/front";
    assert_eq!(
        made.body,
        json!({"id": id, "name": "front", "type": "Microsoft.Network/trafficManagerProfiles",
            "location": "global", "tags": {"team": "edge"},
            "properties": {"profileStatus": "Enabled", "trafficRoutingMethod": "Weighted",
                "dnsConfig": {"relativeName": "rotor-front",
                    "fqdn": "rotor-front.trafficmanager.net", "ttl": 30},
                "monitorConfig": {"protocol": "HTTPS", "port": 443, "path": "/healthz",
                    "intervalInSeconds": 30, "timeoutInSeconds": 10,
                    "toleratedNumberOfFailures": 3, "profileMonitorStatus": "Inactive"},
                "endpoints": []}})
    );
    let read = call(
        &sim,
        Method::GET,
        &PROFILE.to_uppercase().replace("/AZURE/", "/azure/"),
        None,
    )
    .await;
    assert_eq!(
        read.status,
        StatusCode::OK,
        "names in any case: {}",
        read.body
    );
    assert_eq!(read.body, made.body);
    assert_eq!(
        sim.traffic_manager_profile("SUB-1", "rg-1", "Front"),
        Some(made.body)
    );

    let mut body = profile_body();
    body["properties"]["dnsConfig"]["ttl"] = json!(60);
    let replaced = call(&sim, Method::PUT, PROFILE, Some(body)).await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    assert_eq!(replaced.body["properties"]["dnsConfig"]["ttl"], 60);
    assert_eq!(
        sim.traffic_manager_writes("sub-1", "rg-1", "front"),
        Some(1)
    );

    let deleted = call(&sim, Method::DELETE, PROFILE, None).await;
    assert_eq!((deleted.status, deleted.body), (StatusCode::OK, json!({})));
    let again = call(&sim, Method::DELETE, PROFILE, None).await;
    assert_eq!(again.status, StatusCode::NO_CONTENT);
    let gone = call(&sim, Method::GET, PROFILE, None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.body["error"]["code"], "ResourceNotFound");
    let message = gone.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("trafficManagerProfiles/front") && message.contains("'rg-1'"),
        "{message}"
    );
}

#[tokio::test]
async fn tm_endpoints_are_put_patched_listed_and_deleted() {
    let sim = sim();
    sim.add_traffic_manager_profile("sub-1", "rg-1", "front", "rotor-front", 30);
    let made = call(
        &sim,
        Method::PUT,
        &endpoint("blue"),
        Some(endpoint_body("10.0.0.1", None)),
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let id = "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.Network/trafficManagerProfiles/front/externalEndpoints/blue";
    assert_eq!(
        made.body,
        json!({"id": id, "name": "blue",
            "type": "Microsoft.Network/trafficManagerProfiles/externalEndpoints",
            "properties": {"endpointStatus": "Enabled", "endpointMonitorStatus": "CheckingEndpoint",
                "target": "10.0.0.1", "weight": 1, "priority": 1,
                "customHeaders": [{"name": "X-Rotor-Owner", "value": "heritage=rotor"}]}})
    );
    let second = call(
        &sim,
        Method::PUT,
        &endpoint("green"),
        Some(endpoint_body("10.0.0.2", Some(10))),
    )
    .await;
    assert_eq!(
        second.body["properties"]["priority"], 2,
        "the next free priority"
    );

    // PATCH merges: the target and headers stay, the weight and status change.
    let patch = json!({"properties": {"weight": 900}});
    let patched = call(&sim, Method::PATCH, &endpoint("BLUE"), Some(patch)).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(
        patched.body["name"], "blue",
        "the name keeps its first case"
    );
    assert_eq!(patched.body["properties"]["weight"], 900);
    assert_eq!(patched.body["properties"]["target"], "10.0.0.1");
    assert_eq!(
        patched.body["properties"]["customHeaders"],
        made.body["properties"]["customHeaders"]
    );
    let disable = json!({"properties": {"endpointStatus": "disabled"}});
    let disabled = call(&sim, Method::PATCH, &endpoint("green"), Some(disable)).await;
    assert_eq!(disabled.body["properties"]["endpointStatus"], "Disabled");
    assert_eq!(
        disabled.body["properties"]["endpointMonitorStatus"],
        "Disabled"
    );

    let profile = call(&sim, Method::GET, PROFILE, None).await.body;
    let listed = profile["properties"]["endpoints"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0], patched.body);
    assert_eq!(listed[1], disabled.body);
    assert_eq!(
        profile["properties"]["monitorConfig"]["profileMonitorStatus"],
        "CheckingEndpoints"
    );
    assert_eq!(
        call(&sim, Method::GET, &endpoint("green"), None).await.body,
        disabled.body
    );

    // A PUT replaces the endpoint whole: what it leaves out takes its default.
    let replaced = call(
        &sim,
        Method::PUT,
        &endpoint("blue"),
        Some(json!({"properties": {"target": "10.0.0.9"}})),
    )
    .await;
    assert_eq!(replaced.status, StatusCode::OK);
    assert_eq!(replaced.body["properties"]["weight"], 1);
    assert_eq!(replaced.body["properties"]["priority"], 1);
    assert!(replaced.body["properties"].get("customHeaders").is_none());

    let deleted = call(&sim, Method::DELETE, &endpoint("green"), None).await;
    assert_eq!((deleted.status, deleted.body), (StatusCode::OK, json!({})));
    assert_eq!(
        call(&sim, Method::DELETE, &endpoint("green"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let missing = call(
        &sim,
        Method::PATCH,
        &endpoint("green"),
        Some(json!({"properties": {}})),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(
        missing.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("front/externalEndpoints/green")
    );
    // Two PUTs, two PATCHes, one PUT, one DELETE.
    assert_eq!(
        sim.traffic_manager_writes("sub-1", "rg-1", "front"),
        Some(6)
    );
}

#[tokio::test]
async fn tm_bad_requests_are_arm_errors_naming_the_field() {
    let sim = sim();
    sim.add_traffic_manager_profile("sub-1", "rg-1", "front", "rotor-front", 30);
    call(
        &sim,
        Method::PUT,
        &endpoint("blue"),
        Some(endpoint_body("10.0.0.1", Some(50))),
    )
    .await;
    let before = sim.traffic_manager_profile("sub-1", "rg-1", "front");
    let refused = |method: Method, path: String, body: Value, field: &'static str| {
        let sim = sim.clone();
        async move {
            let a = call(&sim, method, &path, Some(body)).await;
            assert_eq!(a.status, StatusCode::BAD_REQUEST, "{field}: {}", a.body);
            assert_eq!(a.body["error"]["code"], "InvalidParameter", "{}", a.body);
            let message = a.body["error"]["message"].as_str().unwrap().to_string();
            assert!(message.contains(field), "{field} not named: {message}");
        }
    };
    for weight in [0, -1, 1001] {
        refused(
            Method::PATCH,
            endpoint("blue"),
            json!({"properties": {"weight": weight}}),
            "properties.weight",
        )
        .await;
    }
    refused(
        Method::PUT,
        endpoint("green"),
        endpoint_body("10.0.0.2", Some(0)),
        "properties.weight",
    )
    .await;
    refused(
        Method::PATCH,
        endpoint("blue"),
        json!({"properties": {"endpointStatus": "Off"}}),
        "properties.endpointStatus",
    )
    .await;
    refused(
        Method::PUT,
        endpoint("green"),
        json!({"properties": {"weight": 5}}),
        "properties.target",
    )
    .await;
    refused(
        Method::PUT,
        endpoint("green"),
        json!({"properties": {"target": "x", "targetResourceId": "/subscriptions/s/x"}}),
        "properties.targetResourceId",
    )
    .await;
    let nine: Vec<Value> = (0..9)
        .map(|i| json!({"name": format!("h{i}"), "value": "v"}))
        .collect();
    refused(
        Method::PATCH,
        endpoint("blue"),
        json!({"properties": {"customHeaders": nine}}),
        "properties.customHeaders",
    )
    .await;
    refused(
        Method::PUT,
        format!("{PROFILE}/AzureEndpoints/web"),
        endpoint_body("x", None),
        "ExternalEndpoints only",
    )
    .await;
    let profile = |edit: fn(&mut Value)| {
        let mut b = profile_body();
        edit(&mut b);
        b
    };
    let other = PROFILE.replace("/front", "/other");
    refused(
        Method::PUT,
        other.clone(),
        profile(|b| b["properties"]["trafficRoutingMethod"] = json!("Random")),
        "properties.trafficRoutingMethod",
    )
    .await;
    refused(
        Method::PUT,
        other.clone(),
        profile(|b| b["location"] = json!("westeurope")),
        "location",
    )
    .await;
    refused(
        Method::PUT,
        other.clone(),
        profile(|b| b["properties"]["dnsConfig"]["ttl"] = json!(-1)),
        "properties.dnsConfig.ttl",
    )
    .await;
    refused(
        Method::PUT,
        other.clone(),
        profile(|b| b["properties"]["dnsConfig"] = json!({"ttl": 5})),
        "properties.dnsConfig.relativeName",
    )
    .await;
    refused(
        Method::PUT,
        other.clone(),
        profile(|b| {
            b["properties"]["monitorConfig"] = json!({"protocol": "TCP", "port": 443, "path": "/"})
        }),
        "properties.monitorConfig.path",
    )
    .await;
    refused(
        Method::PUT,
        other.clone(),
        profile(|b| {
            b["properties"]["endpoints"] =
                json!([{"name": "a", "properties": {"target": "x", "weight": 2000}}])
        }),
        "properties.endpoints[0].properties.weight",
    )
    .await;
    assert_eq!(
        sim.traffic_manager_profile("sub-1", "rg-1", "front"),
        before,
        "nothing changed"
    );
    assert_eq!(sim.traffic_manager_profile("sub-1", "rg-1", "other"), None);

    for (query, code) in [
        ("", "MissingApiVersionParameter"),
        ("api-version=2018-08-01", "NoRegisteredProviderFound"),
    ] {
        let a = call(&sim, Method::GET, &format!("{PROFILE}?{query}"), None).await;
        assert_eq!(
            (a.status, a.body["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{}",
            a.body
        );
    }
    let orphan = call(
        &sim,
        Method::PUT,
        &format!("{other}/ExternalEndpoints/e"),
        Some(endpoint_body("x", None)),
    )
    .await;
    assert_eq!(orphan.status, StatusCode::NOT_FOUND);
    assert!(
        orphan.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("trafficManagerProfiles/other")
    );
}

#[tokio::test]
async fn tm_calls_are_authenticated_and_throttled_as_arm() {
    let sim = sim();
    sim.add_traffic_manager_profile("sub-1", "rg-1", "front", "rotor-front", 30);
    let anonymous = send(&sim, None, Method::GET, PROFILE, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.body["error"]["code"], "AuthenticationFailed");
    sim.cloud
        .rate_limit_next_calls(1, Some(Duration::from_secs(2)));
    let throttled = call(
        &sim,
        Method::PATCH,
        &endpoint("blue"),
        Some(json!({"properties": {"weight": 5}})),
    )
    .await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(throttled.headers["retry-after"], "2");
    assert_eq!(throttled.body["error"]["code"], "TooManyRequests");
    assert_eq!(
        call(&sim, Method::GET, PROFILE, None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        sim.traffic_manager_writes("sub-1", "rg-1", "front"),
        Some(0)
    );
}
