//! The Cloud DNS front over HTTP as `google-cloud-dns-v1` speaks it (paths, `$alt=json`,
//! bearer tokens), through the simulator's router: pages, filters, 409/412/404, changes that
//! apply all or nothing, weighted round-robin validation, 401 and the rate limit.

use std::sync::Arc;

use axum::body::Body;
use http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::{Sim, SimConfig};

const TOKEN: &str = "ya29.sim-dns-token";
const ZONE: &str = "/gcp/dns/v1/projects/proj-1/managedZones/prod";

fn sim() -> Arc<Sim> {
    let sim = Sim::new(SimConfig::default());
    sim.add_managed_zone("proj-1", "prod", "example.com");
    sim
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
        .uri(format!("{path}{sep}%24alt=json"))
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

fn a(name: &str, ip: &str) -> Value {
    json!({"name": name, "type": "A", "ttl": 300, "rrdatas": [ip]})
}

fn wrr(name: &str, items: &[(&str, f64)]) -> Value {
    let items: Vec<Value> = items
        .iter()
        .map(|(ip, w)| json!({"weight": w, "rrdatas": [ip]}))
        .collect();
    json!({"name": name, "type": "A", "ttl": 10, "routingPolicy": {"wrr": {"items": items}}})
}

/// The reason of an old-style Cloud DNS error, with its HTTP status.
fn reason(answer: &(StatusCode, Value)) -> (StatusCode, String) {
    let r = answer.1["error"]["errors"][0]["reason"]
        .as_str()
        .unwrap_or_default();
    (answer.0, r.to_string())
}

#[tokio::test]
async fn dns_rrsets_list_in_pages_and_by_name_and_type() {
    let sim = sim();
    for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
        let set = a(&format!("{name}.example.com."), &format!("10.0.0.{i}"));
        let (status, e) = call(&sim, Method::POST, &format!("{ZONE}/rrsets"), Some(set)).await;
        assert_eq!(status, StatusCode::OK, "{e}");
    }
    // Four A sets, plus the zone's SOA and NS: three pages of two.
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    for page in 0.. {
        let tail = token
            .as_ref()
            .map(|t| format!("&pageToken={t}"))
            .unwrap_or_default();
        let (status, list) = call(
            &sim,
            Method::GET,
            &format!("{ZONE}/rrsets?maxResults=2{tail}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let sets = list["rrsets"].as_array().unwrap();
        assert!(sets.len() <= 2, "page {page}: {list}");
        names.extend(sets.iter().map(|s| format!("{} {}", s["name"], s["type"])));
        match list["nextPageToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
        assert!(page < 3, "paging does not end");
    }
    assert_eq!(names.len(), 6, "{names:?}");
    let unique: std::collections::BTreeSet<_> = names.iter().collect();
    assert_eq!(unique.len(), 6, "no set twice: {names:?}");

    let (_, by_name) = call(
        &sim,
        Method::GET,
        &format!("{ZONE}/rrsets?name=c.example.com."),
        None,
    )
    .await;
    assert_eq!(
        by_name["rrsets"],
        json!([{"kind": "dns#resourceRecordSet",
        "name": "c.example.com.", "type": "A", "ttl": 300, "rrdatas": ["10.0.0.2"]}])
    );
    let (_, apex) = call(
        &sim,
        Method::GET,
        &format!("{ZONE}/rrsets?name=example.com.&type=NS"),
        None,
    )
    .await;
    assert_eq!(apex["rrsets"].as_array().unwrap().len(), 1, "{apex}");
    assert_eq!(apex["rrsets"][0]["type"], "NS");
    let answer = call(&sim, Method::GET, &format!("{ZONE}/rrsets?type=A"), None).await;
    assert_eq!(
        reason(&answer),
        (StatusCode::BAD_REQUEST, "invalid".into()),
        "type needs name"
    );
    let answer = call(
        &sim,
        Method::GET,
        &format!("{ZONE}/rrsets?pageToken=zz"),
        None,
    )
    .await;
    assert_eq!(answer.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn dns_create_get_patch_delete_one_record_set() {
    let sim = sim();
    let path = format!("{ZONE}/rrsets/app.example.com./A");
    let body = wrr(
        "app.example.com.",
        &[("10.0.0.1", 100.0), ("10.0.0.2", 0.0)],
    );
    let (status, created) = call(
        &sim,
        Method::POST,
        &format!("{ZONE}/rrsets"),
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["routingPolicy"]["wrr"]["items"][1]["weight"], 0.0);
    assert_eq!(
        created["routingPolicy"]["wrr"]["items"][0]["kind"],
        "dns#rRSetRoutingPolicyWrrPolicyWrrPolicyItem"
    );
    let again = call(&sim, Method::POST, &format!("{ZONE}/rrsets"), Some(body)).await;
    assert_eq!(
        reason(&again),
        (StatusCode::CONFLICT, "alreadyExists".into()),
        "{}",
        again.1
    );
    assert_eq!(again.1["error"]["status"], "ALREADY_EXISTS");

    let patch = json!({"routingPolicy": {"wrr": {"items": [
        {"weight": 50, "rrdatas": ["10.0.0.1"]}, {"weight": 50, "rrdatas": ["10.0.0.2"]}]}}});
    let (status, patched) = call(&sim, Method::PATCH, &path, Some(patch)).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    let (_, got) = call(&sim, Method::GET, &path, None).await;
    assert_eq!(got, patched);
    assert_eq!(got["routingPolicy"]["wrr"]["items"][1]["weight"], 50.0);
    assert_eq!(got["ttl"], 10, "fields the patch does not give are kept");
    // Plain data replaces the policy.
    let (_, plain) = call(
        &sim,
        Method::PATCH,
        &path,
        Some(json!({"rrdatas": ["10.0.0.9"]})),
    )
    .await;
    assert!(plain.get("routingPolicy").is_none(), "{plain}");
    let renamed = call(&sim, Method::PATCH, &path, Some(json!({"type": "AAAA"}))).await;
    assert_eq!(renamed.0, StatusCode::BAD_REQUEST);

    let (status, _) = call(&sim, Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    let gone = call(&sim, Method::GET, &path, None).await;
    assert_eq!(reason(&gone), (StatusCode::NOT_FOUND, "notFound".into()));
    let gone = call(&sim, Method::PATCH, &path, Some(json!({"ttl": 5}))).await;
    assert_eq!(gone.0, StatusCode::NOT_FOUND);
    // create, two patches, delete: four changes.
    assert_eq!(sim.dns_changes_applied("proj-1", "prod"), Some(4));
}

#[tokio::test]
async fn dns_changes_apply_all_or_nothing() {
    let sim = sim();
    let held = wrr("app.example.com.", &[("10.0.0.1", 100.0)]);
    let changes = format!("{ZONE}/changes");
    let (status, first) = call(
        &sim,
        Method::POST,
        &changes,
        Some(json!({"additions": [held]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(
        (first["status"].as_str(), first["id"].as_str()),
        (Some("done"), Some("1"))
    );
    let before = sim
        .dns_rrset("proj-1", "prod", "app.example.com.", "A")
        .unwrap();

    // What the server answered, kinds and all, is an exact copy: it may be deleted.
    let moved = wrr(
        "app.example.com.",
        &[("10.0.0.1", 90.0), ("10.0.0.2", 10.0)],
    );
    let extra = a("www.example.com.", "10.0.0.7");
    let stale = wrr("app.example.com.", &[("10.0.0.1", 90.0)]);
    let refused = call(
        &sim,
        Method::POST,
        &changes,
        Some(json!({"deletions": [stale], "additions": [moved, extra]})),
    )
    .await;
    assert_eq!(
        reason(&refused),
        (StatusCode::PRECONDITION_FAILED, "conditionNotMet".into())
    );
    assert!(
        refused.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deletions[0]")
    );
    assert_eq!(
        sim.dns_rrset("proj-1", "prod", "app.example.com.", "A")
            .unwrap(),
        before
    );
    assert_eq!(
        sim.dns_rrset("proj-1", "prod", "www.example.com.", "A"),
        None,
        "nothing added"
    );

    let missing = call(
        &sim,
        Method::POST,
        &changes,
        Some(json!({"deletions": [a("old.example.com.", "10.0.0.3")]})),
    )
    .await;
    assert_eq!(reason(&missing), (StatusCode::NOT_FOUND, "notFound".into()));
    let twice = call(
        &sim,
        Method::POST,
        &changes,
        Some(json!({"additions": [before.clone()]})),
    )
    .await;
    assert_eq!(
        reason(&twice),
        (StatusCode::CONFLICT, "alreadyExists".into())
    );

    let (status, done) = call(
        &sim,
        Method::POST,
        &changes,
        Some(json!({"deletions": [before], "additions": [moved, extra]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["id"], "2", "refused changes take no id");
    let now = sim
        .dns_rrset("proj-1", "prod", "app.example.com.", "A")
        .unwrap();
    assert_eq!(
        now["routingPolicy"]["wrr"]["items"][1]["rrdatas"],
        json!(["10.0.0.2"])
    );
    assert!(
        sim.dns_rrset("proj-1", "prod", "www.example.com.", "A")
            .is_some()
    );
    let (status, got) = call(&sim, Method::GET, &format!("{changes}/2"), None).await;
    assert_eq!((status, got), (StatusCode::OK, done));
    let unknown = call(&sim, Method::GET, &format!("{changes}/9"), None).await;
    assert_eq!(reason(&unknown), (StatusCode::NOT_FOUND, "notFound".into()));
}

#[tokio::test]
async fn dns_weighted_sets_are_validated_as_cloud_dns_validates_them() {
    let sim = sim();
    let path = format!("{ZONE}/rrsets");
    let mut both = wrr("app.example.com.", &[("10.0.0.1", 1.0)]);
    both["rrdatas"] = json!(["10.0.0.9"]);
    let cases = [
        (wrr("app.example.com.", &[("10.0.0.1", -5.0)]), "weight"),
        (both, "not both"),
        (
            wrr("app.example.org.", &[("10.0.0.1", 1.0)]),
            "entity.rrset.name",
        ),
        (wrr("app.example.com.", &[("not-an-ip", 1.0)]), "rrdatas[0]"),
    ];
    for (set, says) in cases {
        let answer = call(&sim, Method::POST, &path, Some(set.clone())).await;
        assert_eq!(
            reason(&answer),
            (StatusCode::BAD_REQUEST, "invalid".into()),
            "{set}"
        );
        let message = answer.1["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
    }
    assert_eq!(sim.dns_changes_applied("proj-1", "prod"), Some(0));
}

#[tokio::test]
async fn dns_without_a_token_is_401_a_missing_zone_404_and_throttling_429() {
    let sim = sim();
    let list = format!("{ZONE}/rrsets");
    let answer = call_as(&sim, None, Method::GET, &list, None).await;
    assert_eq!(answer.0, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.1["error"]["status"], "UNAUTHENTICATED");

    let (status, zone) = call(&sim, Method::GET, ZONE, None).await;
    assert_eq!(status, StatusCode::OK, "{zone}");
    assert_eq!(zone["dnsName"], "example.com.");
    let (_, zones) = call(
        &sim,
        Method::GET,
        "/gcp/dns/v1/projects/proj-1/managedZones",
        None,
    )
    .await;
    assert_eq!(zones["managedZones"][0]["name"], "prod");
    let missing = call(
        &sim,
        Method::GET,
        "/gcp/dns/v1/projects/proj-1/managedZones/staging/rrsets",
        None,
    )
    .await;
    assert_eq!(reason(&missing), (StatusCode::NOT_FOUND, "notFound".into()));
    assert!(
        missing.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'staging'")
    );

    sim.cloud
        .rate_limit_next_calls(1, Some(std::time::Duration::from_secs(2)));
    let throttled = call(&sim, Method::GET, &list, None).await;
    assert_eq!(
        reason(&throttled),
        (StatusCode::TOO_MANY_REQUESTS, "rateLimitExceeded".into())
    );
    assert_eq!(throttled.1["error"]["status"], "RESOURCE_EXHAUSTED");
    let (status, _) = call(&sim, Method::GET, &list, None).await;
    assert_eq!(status, StatusCode::OK, "one call throttled, then served");
}

#[tokio::test]
async fn dns_a_zone_created_over_the_api_serves_record_sets_and_its_name_is_taken_once() {
    let sim = sim();
    let zones = "/gcp/dns/v1/projects/proj-2/managedZones";
    let made = call(
        &sim,
        Method::POST,
        zones,
        Some(json!({"name": "shop", "dnsName": "shop.example.", "description": "d"})),
    )
    .await;
    assert_eq!(made.0, StatusCode::OK, "{:?}", made.1);
    assert_eq!(made.1["dnsName"], "shop.example.");
    let again = call(
        &sim,
        Method::POST,
        zones,
        Some(json!({"name": "shop", "dnsName": "other.example."})),
    )
    .await;
    assert_eq!(
        reason(&again),
        (StatusCode::CONFLICT, "alreadyExists".into())
    );
    let nameless = call(&sim, Method::POST, zones, Some(json!({"name": "x"}))).await;
    assert_eq!(
        reason(&nameless),
        (StatusCode::BAD_REQUEST, "invalid".into())
    );

    let set = call(
        &sim,
        Method::POST,
        &format!("{zones}/shop/rrsets"),
        Some(a("www.shop.example.", "192.0.2.1")),
    )
    .await;
    assert_eq!(set.0, StatusCode::OK, "{:?}", set.1);
    let listed = call(&sim, Method::GET, zones, None).await;
    let names: Vec<&str> = listed.1["managedZones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["shop"]);
    assert!(
        sim.dns_rrset("proj-2", "shop", "www.shop.example.", "A")
            .is_some()
    );
}
