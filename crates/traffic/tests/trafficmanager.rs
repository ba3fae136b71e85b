//! The Traffic Manager shifter through `rotor-azure` against `rotor sim`'s Traffic Manager
//! front (`/azure`, api-version 2022-04-01) over real HTTP: weighted external endpoints written
//! one call at a time, checked against the profile the simulator holds (the wire objects, not
//! the shifter's reading of them), a 0 % side as a disabled endpoint, endpoints rotor did not
//! write left alone, and errors classed and named.

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rotor_azure::credentials::{static_token, token_file};
use rotor_azure::{Arm, AzureOptions, Method};
use rotor_sim::{Sim, SimConfig};
use rotor_traffic::trafficmanager::{TrafficManagerOptions, TrafficManagerShifter};
use rotor_traffic::{CallFailure, TrafficError, TrafficShifter, Weights};
use serde_json::{Value, json};

const TOKEN: &str = "s3cret-arm-test-token";
const SUB: &str = "sub-1";
const RG: &str = "rg-edge";
const PROFILE: &str = "front";
const EP: &str = "app";
const API: &str = "2022-04-01";

struct Tm {
    sim: Arc<Sim>,
    /// `http://127.0.0.1:PORT/azure`
    arm_url: String,
    shifter: TrafficManagerShifter,
}

fn options(arm_url: &str) -> TrafficManagerOptions {
    TrafficManagerOptions {
        azure: AzureOptions {
            endpoint: Some(arm_url.to_string()),
            credential: Some(static_token(TOKEN)),
        },
        ..TrafficManagerOptions::default()
    }
}

/// The simulator on a loopback port with the weighted profile `sub-1/rg-edge/front` (TTL
/// 30 s), and a shifter of it.
async fn tm() -> Tm {
    let sim = Sim::new(SimConfig::default());
    sim.add_traffic_manager_profile(SUB, RG, PROFILE, "rotor-front", 30);
    let addr = sim.serve_loopback().await.expect("serve the simulator");
    let arm_url = format!("http://{addr}/azure");
    let profile = format!("{SUB}/{RG}/{PROFILE}");
    let shifter = TrafficManagerShifter::new(&profile, options(&arm_url))
        .await
        .expect("Traffic Manager shifter");
    Tm {
        sim,
        arm_url,
        shifter,
    }
}

/// Resource Manager directly, to do what an operator (or `az`) would.
fn operator(d: &Tm) -> Arm {
    Arm::new(AzureOptions {
        endpoint: Some(d.arm_url.clone()),
        credential: Some(static_token("operator")),
    })
    .expect("ARM client")
}

fn profile_path(profile: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/trafficmanagerprofiles/{profile}"
    )
}

async fn operator_sends(d: &Tm, method: Method, path: &str, body: Value) {
    let arm = operator(d);
    let url = arm.url(path, API);
    arm.send(method, url, Some(&body), &[])
        .await
        .unwrap_or_else(|e| panic!("{path}: {e:?}"));
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn profile(d: &Tm) -> Value {
    d.sim
        .traffic_manager_profile(SUB, RG, PROFILE)
        .expect("the profile")
}

fn writes(d: &Tm) -> usize {
    d.sim
        .traffic_manager_writes(SUB, RG, PROFILE)
        .expect("the profile")
}

/// The profile's endpoints as the simulator serves them: (name, target, status, weight).
fn held(d: &Tm) -> Vec<(String, String, String, i64)> {
    held_in(&d.sim, PROFILE)
}

/// [`held`] of another profile of the resource group.
fn held_in(sim: &Sim, profile: &str) -> Vec<(String, String, String, i64)> {
    let profile = sim
        .traffic_manager_profile(SUB, RG, profile)
        .expect("the profile");
    let endpoints = profile["properties"]["endpoints"].as_array().unwrap();
    endpoints
        .iter()
        .map(|e| {
            let p = &e["properties"];
            (
                e["name"].as_str().unwrap().to_string(),
                p["target"].as_str().unwrap().to_string(),
                p["endpointStatus"].as_str().unwrap().to_string(),
                p["weight"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn ep(name: &str, target: &str, status: &str, weight: i64) -> (String, String, String, i64) {
    (name.into(), target.into(), status.into(), weight)
}

#[tokio::test]
async fn weights_shift_step_by_step_and_a_zero_share_is_a_disabled_endpoint() {
    let d = tm().await;
    let s = &d.shifter;
    s.register(EP, addr("10.0.0.1:443"), None)
        .await
        .expect("register blue");
    assert_eq!(held(&d), [ep("rotor-app-blue", "10.0.0.1", "Enabled", 100)]);
    // The whole wire object once: an external endpoint marked rotor's by its custom header.
    let blue = &profile(&d)["properties"]["endpoints"][0];
    assert_eq!(
        blue["type"],
        "Microsoft.Network/trafficManagerProfiles/externalEndpoints"
    );
    assert_eq!(
        blue["properties"]["customHeaders"],
        json!([{"name": "X-Rotor-Owner", "value": "heritage=rotor,endpoint=app,backend=blue"}])
    );
    assert_eq!(s.weights(EP).await.unwrap(), Weights::all_blue());

    s.register(EP, addr("10.0.0.1:443"), Some(addr("10.0.0.2:443")))
        .await
        .expect("register green");
    assert_eq!(
        held(&d),
        [
            ep("rotor-app-blue", "10.0.0.1", "Enabled", 100),
            ep("rotor-app-green", "10.0.0.2", "Disabled", 1),
        ],
        "green registered at 0 %: disabled, as Traffic Manager has no weight 0"
    );
    let before = writes(&d);
    let steps = [
        (10, ("Enabled", 90), ("Enabled", 10)),
        (50, ("Enabled", 50), ("Enabled", 50)),
        (100, ("Disabled", 1), ("Enabled", 100)),
    ];
    for (green, b, g) in steps {
        let split = Weights::green(green).unwrap();
        s.set_weights(EP, split).await.expect("shift");
        assert_eq!(
            held(&d),
            [
                ep("rotor-app-blue", "10.0.0.1", b.0, b.1),
                ep("rotor-app-green", "10.0.0.2", g.0, g.1),
            ],
            "{split}"
        );
        assert_eq!(s.weights(EP).await.unwrap(), split);
    }
    assert_eq!(writes(&d), before + 6, "two PATCHes per step");
    // The split in force again writes nothing.
    s.set_weights(EP, Weights::green(100).unwrap())
        .await
        .unwrap();
    assert_eq!(writes(&d), before + 6);

    s.rollback(EP).await.expect("rollback");
    assert_eq!(
        held(&d),
        [
            ep("rotor-app-blue", "10.0.0.1", "Enabled", 100),
            ep("rotor-app-green", "10.0.0.2", "Disabled", 1),
        ]
    );
    // Re-registering the same backends keeps the split.
    s.set_weights(EP, Weights::green(30).unwrap())
        .await
        .unwrap();
    let settled = writes(&d);
    s.register(EP, addr("10.0.0.1:443"), Some(addr("10.0.0.2:443")))
        .await
        .unwrap();
    assert_eq!(s.weights(EP).await.unwrap(), Weights::green(30).unwrap());
    assert_eq!(writes(&d), settled);
}

#[tokio::test]
async fn detaching_green_deletes_its_endpoint_and_promotion_moves_blue() {
    let d = tm().await;
    let s = &d.shifter;
    s.register(EP, addr("10.0.0.1:443"), Some(addr("10.0.0.2:443")))
        .await
        .unwrap();
    s.set_weights(EP, Weights::green(30).unwrap())
        .await
        .unwrap();
    s.register(EP, addr("10.0.0.1:443"), None)
        .await
        .expect("detach green");
    assert_eq!(held(&d), [ep("rotor-app-blue", "10.0.0.1", "Enabled", 100)]);
    let err = s
        .set_weights(EP, Weights::green(10).unwrap())
        .await
        .expect_err("no green");
    assert!(
        matches!(err, TrafficError::GreenNotRegistered { green: 10, .. }),
        "{err:?}"
    );

    // After a swap green is the only backend: blue's endpoint takes its address first.
    s.register(EP, addr("10.0.0.1:443"), Some(addr("10.0.0.2:443")))
        .await
        .unwrap();
    s.set_weights(EP, Weights::green(100).unwrap())
        .await
        .unwrap();
    s.register(EP, addr("10.0.0.2:443"), None)
        .await
        .expect("promote");
    assert_eq!(held(&d), [ep("rotor-app-blue", "10.0.0.2", "Enabled", 100)]);
    assert_eq!(s.weights(EP).await.unwrap(), Weights::all_blue());

    // An IPv6 pair: the targets change in place.
    s.register(EP, addr("[fd00::1]:443"), Some(addr("[fd00::2]:443")))
        .await
        .expect("IPv6");
    assert_eq!(
        held(&d),
        [
            ep("rotor-app-blue", "fd00::1", "Enabled", 100),
            ep("rotor-app-green", "fd00::2", "Disabled", 1),
        ]
    );
}

#[tokio::test]
async fn endpoints_rotor_did_not_write_are_left_untouched() {
    let d = tm().await;
    let legacy = json!({"properties": {"target": "legacy.example.com", "endpointStatus": "Enabled", "weight": 50}});
    operator_sends(
        &d,
        Method::Put,
        &format!("{}/ExternalEndpoints/web-legacy", profile_path(PROFILE)),
        legacy,
    )
    .await;
    // Someone's endpoint at the name rotor would give api's blue, without rotor's mark.
    let squatter =
        json!({"properties": {"target": "192.0.2.9", "endpointStatus": "Enabled", "weight": 5}});
    operator_sends(
        &d,
        Method::Put,
        &format!("{}/ExternalEndpoints/rotor-api-blue", profile_path(PROFILE)),
        squatter,
    )
    .await;
    let theirs = profile(&d)["properties"]["endpoints"].clone();

    let s = &d.shifter;
    let before = writes(&d);
    let err = s
        .register("api", addr("10.0.0.1:443"), None)
        .await
        .expect_err("not rotor's");
    assert!(matches!(err, TrafficError::NotOurs { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("rotor-api-blue")
            && text.contains("sub-1/rg-edge/front")
            && text.contains("X-Rotor-Owner"),
        "{text}"
    );
    for err in [
        s.weights("api").await.expect_err("weights"),
        s.set_weights("api", Weights::all_blue())
            .await
            .expect_err("set"),
    ] {
        assert!(matches!(err, TrafficError::NotOurs { .. }), "{err:?}");
    }
    assert_eq!(writes(&d), before, "nothing written");

    // app's endpoints come and go beside both, which stay as they were.
    s.register(EP, addr("10.0.0.1:443"), Some(addr("10.0.0.2:443")))
        .await
        .unwrap();
    s.set_weights(EP, Weights::green(40).unwrap())
        .await
        .unwrap();
    s.register(EP, addr("10.0.0.2:443"), None).await.unwrap();
    let now = profile(&d)["properties"]["endpoints"].clone();
    let now = now.as_array().unwrap();
    assert_eq!(now.len(), 3);
    assert_eq!(&now[..2], theirs.as_array().unwrap().as_slice());
    assert_eq!(now[2]["name"], "rotor-app-blue");
}

/// A hand edit (or a shift interrupted between its two writes) is reported by `weights`, never
/// read as a split; re-registering leaves it, and the next shift writes the split whole (a
/// rollback must always go through).
#[tokio::test]
async fn hand_edits_are_reported_and_the_next_shift_writes_the_split_whole() {
    let d = tm().await;
    let s = &d.shifter;
    s.register(EP, addr("10.0.0.1:443"), Some(addr("10.0.0.2:443")))
        .await
        .unwrap();
    s.set_weights(EP, Weights::green(10).unwrap())
        .await
        .unwrap();
    let green = format!(
        "{}/ExternalEndpoints/rotor-app-green",
        profile_path(PROFILE)
    );
    operator_sends(
        &d,
        Method::Patch,
        &green,
        json!({"properties": {"weight": 700}}),
    )
    .await;
    let err = s.weights(EP).await.expect_err("edited");
    assert!(matches!(err, TrafficError::Verify { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("rotor-app-green Enabled weight 700"),
        "{err}"
    );
    // Re-registering (what a swap does before it shifts) leaves the weights to the shift.
    let before = writes(&d);
    s.register(EP, addr("10.0.0.1:443"), Some(addr("10.0.0.2:443")))
        .await
        .expect("re-registered as it is");
    assert_eq!(writes(&d), before);
    s.rollback(EP).await.expect("rollback goes through");
    assert_eq!(
        held(&d),
        [
            ep("rotor-app-blue", "10.0.0.1", "Enabled", 100),
            ep("rotor-app-green", "10.0.0.2", "Disabled", 1),
        ]
    );
    // The header rotor marks its endpoints with, removed by hand: no longer rotor's.
    operator_sends(
        &d,
        Method::Patch,
        &green,
        json!({"properties": {"customHeaders": []}}),
    )
    .await;
    let err = s.weights(EP).await.expect_err("unmarked");
    assert!(matches!(err, TrafficError::NotOurs { .. }), "{err:?}");
}

/// A shift that stopped after its first write (the gaining side's PATCH went through, the
/// other was throttled or the process died) is what the swap's next reconcile meets: the
/// weights do not read, re-registering writes nothing, and the shift writes only what is left.
#[tokio::test]
async fn a_shift_interrupted_between_its_two_writes_is_finished_by_the_next() {
    let d = tm().await;
    let s = &d.shifter;
    s.register(EP, addr("10.0.0.1:443"), Some(addr("10.0.0.2:443")))
        .await
        .unwrap();
    // 100/0 → 90/10 writes green first: Enabled at 10. Only that write happened.
    let green = format!(
        "{}/ExternalEndpoints/rotor-app-green",
        profile_path(PROFILE)
    );
    let first = json!({"properties": {"endpointStatus": "Enabled", "weight": 10}});
    operator_sends(&d, Method::Patch, &green, first).await;
    let err = s.weights(EP).await.expect_err("half a shift");
    assert!(matches!(err, TrafficError::Verify { .. }), "{err:?}");
    let before = writes(&d);
    s.register(EP, addr("10.0.0.1:443"), Some(addr("10.0.0.2:443")))
        .await
        .expect("re-registered");
    s.set_weights(EP, Weights::green(10).unwrap())
        .await
        .expect("the shift finishes");
    assert_eq!(writes(&d), before + 1, "blue's PATCH alone");
    assert_eq!(
        held(&d),
        [
            ep("rotor-app-blue", "10.0.0.1", "Enabled", 90),
            ep("rotor-app-green", "10.0.0.2", "Enabled", 10),
        ]
    );
}

#[tokio::test]
async fn a_missing_profile_is_named_at_start_and_later_and_no_token_shows() {
    let d = tm().await;
    let err = TrafficManagerShifter::new(&format!("{SUB}/{RG}/nope"), options(&d.arm_url))
        .await
        .expect_err("no such profile");
    match &err {
        TrafficError::TrafficManager {
            endpoint: None,
            profile,
            failure: CallFailure::NotFound,
            ..
        } => assert_eq!(profile, "sub-1/rg-edge/nope"),
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .contains("'Microsoft.Network/trafficManagerProfiles/nope'"),
        "{err}"
    );

    // Deleted after start: the calls name the endpoint and the profile.
    let arm = operator(&d);
    arm.send(
        Method::Delete,
        arm.url(&profile_path(PROFILE), API),
        None,
        &[],
    )
    .await
    .unwrap();
    let err = d
        .shifter
        .register(EP, addr("10.0.0.1:443"), None)
        .await
        .expect_err("profile gone");
    match &err {
        TrafficError::TrafficManager {
            endpoint: Some(e),
            failure: CallFailure::NotFound,
            ..
        } => assert_eq!(e, EP),
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("\"app\"") && text.contains("sub-1/rg-edge/front"),
        "{text}"
    );
    for shown in [text, format!("{err:?}"), format!("{:?}", d.shifter)] {
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}

#[tokio::test]
async fn a_profile_that_does_not_route_by_weight_is_refused() {
    let d = tm().await;
    let performance = json!({"location": "global", "properties": {
        "trafficRoutingMethod": "Performance", "dnsConfig": {"relativeName": "perf", "ttl": 30},
        "monitorConfig": {"protocol": "HTTP", "port": 80, "path": "/"}}});
    operator_sends(&d, Method::Put, &profile_path("perf"), performance.clone()).await;
    let err = TrafficManagerShifter::new(&format!("{SUB}/{RG}/perf"), options(&d.arm_url))
        .await
        .expect_err("Performance");
    assert!(matches!(err, TrafficError::Setup { .. }), "{err:?}");
    assert!(err.to_string().contains("Weighted"), "{err}");

    // Changed after start: refused per call, nothing written.
    let mut changed = performance;
    changed["properties"]["dnsConfig"]["relativeName"] = json!("rotor-front");
    operator_sends(&d, Method::Put, &profile_path(PROFILE), changed).await;
    let before = writes(&d);
    let err = d
        .shifter
        .register(EP, addr("10.0.0.1:443"), None)
        .await
        .expect_err("Performance");
    assert!(matches!(err, TrafficError::Unsupported { .. }), "{err:?}");
    assert_eq!(writes(&d), before);
}

#[tokio::test]
async fn throttling_is_classed_rate_limited_and_the_retry_goes_through() {
    let d = tm().await;
    let s = &d.shifter;
    s.register(EP, addr("10.0.0.1:443"), Some(addr("10.0.0.2:443")))
        .await
        .unwrap();
    let before = writes(&d);
    d.sim
        .cloud
        .rate_limit_next_calls(1, Some(Duration::from_secs(3)));
    let err = s
        .set_weights(EP, Weights::green(10).unwrap())
        .await
        .expect_err("throttled");
    match &err {
        TrafficError::TrafficManager { failure, .. } => {
            assert_eq!(
                *failure,
                CallFailure::RateLimited {
                    retry_after: Some(Duration::from_secs(3))
                }
            );
            assert!(failure.is_retryable());
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("TooManyRequests"), "{err}");
    assert_eq!(writes(&d), before, "nothing written");
    s.set_weights(EP, Weights::green(10).unwrap())
        .await
        .expect("served once the limit is over");
    assert_eq!(writes(&d), before + 2);
}

#[tokio::test]
async fn bad_requests_are_refused_naming_the_endpoint_and_change_nothing() {
    let d = tm().await;
    let s = &d.shifter;
    let err = s.weights(EP).await.expect_err("unknown");
    assert!(
        matches!(err, TrafficError::UnknownEndpoint { .. }),
        "{err:?}"
    );
    s.register(EP, addr("10.0.0.1:443"), None).await.unwrap();
    let before = writes(&d);
    let err = s
        .register(EP, addr("10.0.0.1:443"), Some(addr("10.0.0.2:8443")))
        .await
        .expect_err("ports differ");
    assert!(
        matches!(err, TrafficError::Unsupported { .. }) && err.to_string().contains(EP),
        "{err}"
    );
    let err = s
        .register(EP, addr("10.0.0.1:443"), Some(addr("[fd00::2]:443")))
        .await
        .expect_err("families differ");
    assert!(matches!(err, TrafficError::Unsupported { .. }), "{err:?}");
    let err = s
        .register("a/b", addr("10.0.0.1:443"), None)
        .await
        .expect_err("bad name");
    assert!(
        matches!(err, TrafficError::InvalidEndpoint { .. }),
        "{err:?}"
    );
    for err in [
        s.backend_stats(EP).await.expect_err("stats"),
        s.sessions(EP).await.expect_err("sessions"),
    ] {
        assert!(
            matches!(err, TrafficError::NoRequestCounts { .. }),
            "{err:?}"
        );
    }
    assert_eq!(writes(&d), before);
    assert_eq!(held(&d), [ep("rotor-app-blue", "10.0.0.1", "Enabled", 100)]);
}

#[tokio::test]
async fn an_unreachable_resource_manager_is_unavailable_and_a_missing_token_refused() {
    // Nothing listens on port 1: connections are refused at once. The shifter starts all the
    // same (a control plane restarted during an outage serves the other clouds), and each
    // call is Unavailable.
    let s = TrafficManagerShifter::new("s/g/p", options("http://127.0.0.1:1/azure"))
        .await
        .expect("starts while Resource Manager is unreachable");
    assert_eq!(
        s.settle_time(),
        Duration::from_secs(60 + 300),
        "TTL assumed"
    );
    let err = s
        .register(EP, addr("10.0.0.1:443"), None)
        .await
        .expect_err("unreachable");
    match &err {
        TrafficError::TrafficManager { failure, .. } => {
            assert_eq!(*failure, CallFailure::Unavailable, "{err}")
        }
        other => panic!("{other:?}"),
    }

    let d = tm().await;
    let dir = tempfile::tempdir().unwrap();
    let mut no_token = options(&d.arm_url);
    no_token.azure.credential = Some(token_file(dir.path().join("missing")));
    let err = TrafficManagerShifter::new(&format!("{SUB}/{RG}/{PROFILE}"), no_token)
        .await
        .expect_err("no token");
    match &err {
        TrafficError::TrafficManager { failure, .. } => {
            assert_eq!(*failure, CallFailure::Refused { status: 401 }, "{err}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_shifter_started_while_throttled_checks_the_profile_at_its_first_shift() {
    let d = tm().await;
    let throttled = 100;
    d.sim.cloud.rate_limit_next_calls(throttled, None);
    let s = TrafficManagerShifter::new(&format!("{SUB}/{RG}/{PROFILE}"), options(&d.arm_url))
        .await
        .expect("starts while throttled");
    assert!(
        d.sim.cloud.rate_limited_calls_pending() < throttled,
        "the profile was asked for"
    );
    d.sim.cloud.rate_limit_next_calls(0, None);
    s.register(EP, addr("10.0.0.1:443"), None)
        .await
        .expect("served once the limit is over");
    assert_eq!(held(&d), [ep("rotor-app-blue", "10.0.0.1", "Enabled", 100)]);
    assert_eq!(s.settle_time(), Duration::from_secs(60 + 30), "TTL read");

    // A profile that turned out not to be weighted is refused at the first shift instead.
    let performance = json!({"location": "global", "properties": {
        "trafficRoutingMethod": "Performance", "dnsConfig": {"relativeName": "perf", "ttl": 30},
        "monitorConfig": {"protocol": "HTTP", "port": 80, "path": "/"}}});
    operator_sends(&d, Method::Put, &profile_path("perf"), performance).await;
    d.sim.cloud.rate_limit_next_calls(throttled, None);
    let s = TrafficManagerShifter::new(&format!("{SUB}/{RG}/perf"), options(&d.arm_url))
        .await
        .expect("starts while throttled");
    d.sim.cloud.rate_limit_next_calls(0, None);
    let perf_writes = || d.sim.traffic_manager_writes(SUB, RG, "perf").unwrap();
    let before = perf_writes();
    let err = s
        .register(EP, addr("10.0.0.1:443"), None)
        .await
        .expect_err("Performance");
    assert!(matches!(err, TrafficError::Unsupported { .. }), "{err:?}");
    assert_eq!(perf_writes(), before);
}

#[tokio::test]
async fn clients_follow_a_change_after_propagation_and_the_profiles_ttl() {
    let d = tm().await;
    assert_eq!(d.shifter.settle_time(), Duration::from_secs(60 + 30));
    // The operator lowers the TTL: the next read of the profile takes it.
    let mut body = json!({"location": "global", "properties": {
        "trafficRoutingMethod": "Weighted", "dnsConfig": {"relativeName": "rotor-front", "ttl": 5},
        "monitorConfig": {"protocol": "HTTP", "port": 80, "path": "/"}}});
    operator_sends(&d, Method::Put, &profile_path(PROFILE), body.clone()).await;
    d.shifter
        .register(EP, addr("10.0.0.1:443"), None)
        .await
        .unwrap();
    assert_eq!(d.shifter.settle_time(), Duration::from_secs(65));

    body["properties"]["dnsConfig"]["ttl"] = json!(45);
    operator_sends(&d, Method::Put, &profile_path("slow"), body).await;
    let mut opts = options(&d.arm_url);
    opts.propagation = Duration::ZERO;
    let s = TrafficManagerShifter::new(&format!("{SUB}/{RG}/slow"), opts)
        .await
        .unwrap();
    assert_eq!(s.settle_time(), Duration::from_secs(45));
}

/// A resolver asking for the profile's name is answered from its enabled endpoints by weight,
/// with the profile's TTL: the split the shifter wrote, a disabled 0 % side never.
#[tokio::test]
async fn the_profile_name_resolves_by_the_split_the_shifter_wrote() {
    let d = tm().await;
    let s = &d.shifter;
    let name = "rotor-front.trafficmanager.net";
    s.register(EP, addr("10.0.0.1:443"), Some(addr("10.0.0.2:443")))
        .await
        .unwrap();
    assert_eq!(common::answered_with(&d.sim, name, "10.0.0.2"), 0);
    s.set_weights(EP, Weights::green(10).unwrap())
        .await
        .unwrap();
    assert_eq!(common::answered_with(&d.sim, name, "10.0.0.2"), 10);
    assert_eq!(common::answered_with(&d.sim, name, "10.0.0.1"), 90);
    assert_eq!(d.sim.resolve(name).unwrap().ttl, Duration::from_secs(30));
    s.set_weights(EP, Weights::green(100).unwrap())
        .await
        .unwrap();
    assert_eq!(common::answered_with(&d.sim, name, "10.0.0.2"), 100);
    assert!(d.sim.resolve("other.trafficmanager.net").is_none());
}

/// Scope `SUBSCRIPTION/RESOURCE_GROUP`: each endpoint is the profile named as it, so each
/// Cluster has a DNS name of its own; a shift touches its own profile only, the settle time is
/// the longest TTL read, and an endpoint without a profile is refused naming it.
#[tokio::test]
async fn a_profile_per_endpoint_gives_each_endpoint_a_name_of_its_own() {
    let d = tm().await;
    d.sim
        .add_traffic_manager_profile(SUB, RG, "app-a", "app-a", 30);
    d.sim
        .add_traffic_manager_profile(SUB, RG, "app-b", "app-b", 45);
    let s = TrafficManagerShifter::new(&format!("{SUB}/{RG}"), options(&d.arm_url))
        .await
        .expect("a resource group's shifter");
    for e in ["app-a", "app-b"] {
        s.register(e, addr("10.0.0.1:443"), Some(addr("10.0.0.2:443")))
            .await
            .unwrap();
    }
    s.set_weights("app-a", Weights::green(10).unwrap())
        .await
        .unwrap();
    assert_eq!(
        held_in(&d.sim, "app-a"),
        [
            ep("rotor-app-a-blue", "10.0.0.1", "Enabled", 90),
            ep("rotor-app-a-green", "10.0.0.2", "Enabled", 10),
        ]
    );
    assert_eq!(
        held_in(&d.sim, "app-b"),
        [
            ep("rotor-app-b-blue", "10.0.0.1", "Enabled", 100),
            ep("rotor-app-b-green", "10.0.0.2", "Disabled", 1),
        ]
    );
    assert!(held(&d).is_empty(), "the shared profile untouched");
    assert_eq!(
        common::answered_with(&d.sim, "app-a.trafficmanager.net", "10.0.0.2"),
        10
    );
    assert_eq!(
        common::answered_with(&d.sim, "app-b.trafficmanager.net", "10.0.0.2"),
        0
    );
    assert_eq!(s.weights("app-b").await.unwrap(), Weights::all_blue());
    // One settle time for all: the longest TTL read (app-b's), not the last (app-a's).
    assert_eq!(s.settle_time(), Duration::from_secs(60 + 45));
    let err = s
        .register("app-c", addr("10.0.0.1:443"), None)
        .await
        .expect_err("no profile app-c");
    match &err {
        TrafficError::TrafficManager {
            endpoint: Some(e),
            profile,
            failure: CallFailure::NotFound,
            ..
        } => assert_eq!(
            (e.as_str(), profile.as_str()),
            ("app-c", "sub-1/rg-edge/app-c")
        ),
        other => panic!("{other:?}"),
    }
}
