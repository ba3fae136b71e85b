//! The Cloud DNS shifter through Google's official client (`google-cloud-dns-v1`) against
//! `rotor sim`'s Cloud DNS front (`/gcp/dns/v1`) over real HTTP: weighted round-robin record
//! sets written in atomic changes, checked against the record set the simulator holds (the
//! wire object, not the shifter's reading of it), records rotor did not write left alone,
//! and errors classed and named.

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use google_cloud_auth::credentials::{
    AccessToken, AccessTokenCredentials, AccessTokenCredentialsProvider, CacheableResource,
    Credentials, CredentialsProvider, EntityTag,
};
use google_cloud_auth::errors::CredentialsError;
use google_cloud_dns_v1::client::ResourceRecordSets;
use google_cloud_dns_v1::model::{
    RRSetRoutingPolicy, RRSetRoutingPolicyWrrPolicy, RRSetRoutingPolicyWrrPolicyWrrPolicyItem,
    ResourceRecordSet,
};
use rotor_sim::{Sim, SimConfig};
use rotor_traffic::clouddns::{CloudDnsOptions, CloudDnsShifter};
use rotor_traffic::{CallFailure, TrafficError, TrafficShifter, Weights};
use serde_json::{Value, json};

const TOKEN: &str = "ya29.s3cret-dns-test";
const PROJECT: &str = "rotor-prod";
const ZONE: &str = "public";
const EP: &str = "app.example.com";
const NAME: &str = "app.example.com.";

/// A fixed access token: the simulator checks that one is sent, not which.
struct StaticToken;

impl std::fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticToken(<redacted>)")
    }
}

impl CredentialsProvider for StaticToken {
    async fn headers(
        &self,
        _: http::Extensions,
    ) -> Result<CacheableResource<http::HeaderMap>, CredentialsError> {
        let mut value = http::HeaderValue::from_static(concat!("Bearer ", "ya29.s3cret-dns-test"));
        value.set_sensitive(true);
        Ok(CacheableResource::New {
            entity_tag: EntityTag::new(),
            data: http::HeaderMap::from_iter([(http::header::AUTHORIZATION, value)]),
        })
    }

    async fn universe_domain(&self) -> Option<String> {
        None
    }
}

impl AccessTokenCredentialsProvider for StaticToken {
    async fn access_token(&self) -> Result<AccessToken, CredentialsError> {
        Ok(AccessToken {
            token: TOKEN.to_string(),
        })
    }
}

fn token() -> AccessTokenCredentials {
    AccessTokenCredentials::from(StaticToken)
}

struct Dns {
    sim: Arc<Sim>,
    endpoint: String,
    shifter: CloudDnsShifter,
}

/// The simulator on a loopback port with the managed zone `rotor-prod/public` for
/// `example.com.`, and a shifter of that zone.
async fn dns() -> Dns {
    let sim = Sim::new(SimConfig::default());
    sim.add_managed_zone(PROJECT, ZONE, "example.com");
    let addr = sim.serve_loopback().await.expect("serve the simulator");
    let endpoint = format!("http://{addr}/gcp");
    let shifter = shifter(&endpoint, &format!("{PROJECT}/{ZONE}")).await;
    Dns {
        sim,
        endpoint,
        shifter,
    }
}

async fn shifter(endpoint: &str, zone: &str) -> CloudDnsShifter {
    CloudDnsShifter::new(
        zone,
        CloudDnsOptions {
            endpoint: Some(endpoint.to_string()),
            credentials: Some(token()),
            ..CloudDnsOptions::default()
        },
    )
    .await
    .expect("Cloud DNS shifter")
}

/// The official client directly, to write what someone other than rotor would.
async fn client(endpoint: &str) -> ResourceRecordSets {
    ResourceRecordSets::builder()
        .with_endpoint(endpoint)
        .with_credentials(Credentials::from(token()))
        .build()
        .await
        .expect("Cloud DNS client")
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The address set as Cloud DNS answers it: rotor's WRR items, blue first.
fn wire(items: &[(&str, f64)]) -> Value {
    let items: Vec<Value> = items
        .iter()
        .map(|(ip, weight)| {
            json!({"kind": "dns#rRSetRoutingPolicyWrrPolicyWrrPolicyItem",
                   "weight": weight, "rrdatas": [ip]})
        })
        .collect();
    json!({"kind": "dns#resourceRecordSet", "name": NAME, "type": "A", "ttl": 10,
           "routingPolicy": {"kind": "dns#rRSetRoutingPolicy",
               "wrr": {"kind": "dns#rRSetRoutingPolicyWrrPolicy", "items": items}}})
}

fn held(d: &Dns, name: &str, kind: &str) -> Option<Value> {
    d.sim.dns_rrset(PROJECT, ZONE, name, kind)
}

fn owner_text(d: &Dns) -> Value {
    held(d, &format!("_rotor.{NAME}"), "TXT").expect("owner record")["rrdatas"].clone()
}

#[tokio::test]
async fn weights_shift_step_by_step_in_one_weighted_record_set() {
    let d = dns().await;
    let s = &d.shifter;
    s.register(EP, addr("10.0.0.1:443"), None)
        .await
        .expect("register blue");
    assert_eq!(held(&d, NAME, "A"), Some(wire(&[("10.0.0.1", 100.0)])));
    assert_eq!(
        owner_text(&d),
        json!(["\"heritage=rotor,rotor/blue=10.0.0.1\""])
    );
    assert_eq!(s.weights(EP).await.unwrap(), Weights::all_blue());

    s.register(EP, addr("10.0.0.1:443"), Some(addr("10.0.0.2:443")))
        .await
        .expect("register green");
    assert_eq!(
        held(&d, NAME, "A"),
        Some(wire(&[("10.0.0.1", 100.0), ("10.0.0.2", 0.0)]))
    );
    assert_eq!(
        owner_text(&d),
        json!(["\"heritage=rotor,rotor/blue=10.0.0.1,rotor/green=10.0.0.2\""])
    );
    let changes = d.sim.dns_changes_applied(PROJECT, ZONE).unwrap();
    for green in [10u8, 50, 100] {
        let split = Weights::green(green).unwrap();
        s.set_weights(EP, split).await.expect("shift");
        let (b, g) = (f64::from(100 - green), f64::from(green));
        assert_eq!(
            held(&d, NAME, "A"),
            Some(wire(&[("10.0.0.1", b), ("10.0.0.2", g)])),
            "{split}"
        );
        assert_eq!(s.weights(EP).await.unwrap(), split);
    }
    assert_eq!(
        d.sim.dns_changes_applied(PROJECT, ZONE),
        Some(changes + 3),
        "one change per step, the owner record untouched"
    );
    // Setting the split in force again writes nothing.
    s.set_weights(EP, Weights::green(100).unwrap())
        .await
        .unwrap();
    assert_eq!(d.sim.dns_changes_applied(PROJECT, ZONE), Some(changes + 3));

    s.rollback(EP).await.expect("rollback");
    assert_eq!(
        held(&d, NAME, "A"),
        Some(wire(&[("10.0.0.1", 100.0), ("10.0.0.2", 0.0)]))
    );
    // Re-registering the same backends keeps the split.
    s.set_weights(EP, Weights::green(50).unwrap())
        .await
        .unwrap();
    s.register(EP, addr("10.0.0.1:443"), Some(addr("10.0.0.2:443")))
        .await
        .unwrap();
    assert_eq!(s.weights(EP).await.unwrap(), Weights::green(50).unwrap());
}

#[tokio::test]
async fn removing_green_and_promoting_it_rewrite_both_records_at_once() {
    let d = dns().await;
    let s = &d.shifter;
    s.register(EP, addr("10.0.0.1:443"), Some(addr("10.0.0.2:443")))
        .await
        .unwrap();
    s.set_weights(EP, Weights::green(30).unwrap())
        .await
        .unwrap();
    // Green detached: all to blue, one item.
    let before = d.sim.dns_changes_applied(PROJECT, ZONE).unwrap();
    s.register(EP, addr("10.0.0.1:443"), None)
        .await
        .expect("remove green");
    assert_eq!(held(&d, NAME, "A"), Some(wire(&[("10.0.0.1", 100.0)])));
    assert_eq!(
        d.sim.dns_changes_applied(PROJECT, ZONE),
        Some(before + 1),
        "address set and owner record in one change"
    );
    let err = s
        .set_weights(EP, Weights::green(10).unwrap())
        .await
        .expect_err("no green");
    assert!(
        matches!(err, TrafficError::GreenNotRegistered { green: 10, .. }),
        "{err:?}"
    );

    // After a swap green is the only backend.
    s.register(EP, addr("10.0.0.1:443"), Some(addr("10.0.0.2:443")))
        .await
        .unwrap();
    s.set_weights(EP, Weights::green(100).unwrap())
        .await
        .unwrap();
    s.register(EP, addr("10.0.0.2:443"), None)
        .await
        .expect("promote");
    assert_eq!(held(&d, NAME, "A"), Some(wire(&[("10.0.0.2", 100.0)])));
    assert_eq!(
        owner_text(&d),
        json!(["\"heritage=rotor,rotor/blue=10.0.0.2\""])
    );

    // An IPv6 pair moves the endpoint to an AAAA set in the same change.
    s.register(EP, addr("[fd00::1]:443"), Some(addr("[fd00::2]:443")))
        .await
        .expect("IPv6");
    assert_eq!(held(&d, NAME, "A"), None);
    let aaaa = held(&d, NAME, "AAAA").expect("AAAA set");
    assert_eq!(
        aaaa["routingPolicy"]["wrr"]["items"][1]["rrdatas"],
        json!(["fd00::2"])
    );
    assert_eq!(s.weights(EP).await.unwrap(), Weights::all_blue());
}

#[tokio::test]
async fn a_record_rotor_did_not_write_is_refused_and_left_untouched() {
    let d = dns().await;
    let someone = client(&d.endpoint).await;
    let theirs = ResourceRecordSet::new()
        .set_name(NAME)
        .set_type("A")
        .set_ttl(300)
        .set_rrdatas(["192.0.2.9"]);
    someone
        .create()
        .set_project(PROJECT)
        .set_managed_zone(ZONE)
        .set_body(theirs)
        .send()
        .await
        .expect("someone's record");
    let before = held(&d, NAME, "A");
    let changes = d.sim.dns_changes_applied(PROJECT, ZONE);

    let s = &d.shifter;
    let err = s
        .register(EP, addr("10.0.0.1:443"), Some(addr("10.0.0.2:443")))
        .await
        .expect_err("not rotor's");
    assert!(matches!(err, TrafficError::NotOurs { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("app.example.com. (A)") && text.contains("_rotor.app.example.com."),
        "{text}"
    );
    for err in [
        s.weights(EP).await.expect_err("weights"),
        s.set_weights(EP, Weights::all_blue())
            .await
            .expect_err("set"),
    ] {
        assert!(matches!(err, TrafficError::NotOurs { .. }), "{err:?}");
    }
    assert_eq!(held(&d, NAME, "A"), before);
    assert_eq!(held(&d, &format!("_rotor.{NAME}"), "TXT"), None);
    assert_eq!(d.sim.dns_changes_applied(PROJECT, ZONE), changes);

    // A TXT at the owner name that is not rotor's is someone's too.
    let other = "web.example.com";
    let spf = ResourceRecordSet::new()
        .set_name("_rotor.web.example.com.")
        .set_type("TXT")
        .set_ttl(300)
        .set_rrdatas(["\"v=spf1 -all\""]);
    someone
        .create()
        .set_project(PROJECT)
        .set_managed_zone(ZONE)
        .set_body(spf)
        .send()
        .await
        .unwrap();
    let err = s
        .register(other, addr("10.0.0.1:443"), None)
        .await
        .expect_err("foreign owner name");
    assert!(
        err.to_string().contains("_rotor.web.example.com. (TXT)"),
        "{err}"
    );
    assert_eq!(
        d.sim.dns_rrset(PROJECT, ZONE, "web.example.com.", "A"),
        None
    );
}

/// A hand edit is reported by `weights`, never read as a split; the next `set_weights` writes
/// what rotor registered over it (a rollback must always go through), as Route 53's does.
#[tokio::test]
async fn hand_edits_are_reported_and_the_next_shift_restores_rotors_record() {
    let d = dns().await;
    let s = &d.shifter;
    s.register(EP, addr("10.0.0.1:443"), Some(addr("10.0.0.2:443")))
        .await
        .unwrap();
    s.set_weights(EP, Weights::green(10).unwrap())
        .await
        .unwrap();
    // Someone swaps the items (same weights, addresses exchanged).
    let item = |weight: f64, ip: &str| {
        RRSetRoutingPolicyWrrPolicyWrrPolicyItem::new()
            .set_weight(weight)
            .set_rrdatas([ip])
    };
    let wrr = RRSetRoutingPolicyWrrPolicy::new()
        .set_items([item(90.0, "10.0.0.2"), item(10.0, "10.0.0.1")]);
    let body = ResourceRecordSet::new().set_routing_policy(RRSetRoutingPolicy::new().set_wrr(wrr));
    client(&d.endpoint)
        .await
        .patch()
        .set_project(PROJECT)
        .set_managed_zone(ZONE)
        .set_name(NAME)
        .set_type("A")
        .set_body(body)
        .send()
        .await
        .expect("hand edit");
    let edited = held(&d, NAME, "A").unwrap();
    assert_eq!(
        edited["routingPolicy"]["wrr"]["items"][0]["rrdatas"],
        json!(["10.0.0.2"])
    );
    let err = s.weights(EP).await.expect_err("items swapped");
    assert!(matches!(err, TrafficError::Verify { .. }), "{err:?}");
    assert!(err.to_string().contains("10.0.0.2, 10.0.0.1"), "{err}");
    // Re-registering the same backends (a restarted controller) neither stalls on the edit
    // nor shifts traffic by itself: the set stays as edited until the next shift.
    let changes = d.sim.dns_changes_applied(PROJECT, ZONE);
    s.register(EP, addr("10.0.0.1:443"), Some(addr("10.0.0.2:443")))
        .await
        .expect("re-register the same backends");
    assert_eq!(held(&d, NAME, "A").unwrap(), edited);
    assert_eq!(d.sim.dns_changes_applied(PROJECT, ZONE), changes);
    // Other backends need the split, which the edit made unreadable: refused, naming it.
    let err = s
        .register(EP, addr("10.0.0.1:443"), Some(addr("10.0.0.3:443")))
        .await
        .expect_err("a new green over an unreadable split");
    assert!(matches!(err, TrafficError::Verify { .. }), "{err:?}");
    s.rollback(EP).await.expect("rollback goes through");
    assert_eq!(
        held(&d, NAME, "A"),
        Some(wire(&[("10.0.0.1", 100.0), ("10.0.0.2", 0.0)]))
    );
}

#[tokio::test]
async fn bad_requests_are_refused_naming_the_endpoint_and_change_nothing() {
    let d = dns().await;
    let s = &d.shifter;
    let err = s.weights(EP).await.expect_err("unknown");
    assert!(
        matches!(err, TrafficError::UnknownEndpoint { .. }),
        "{err:?}"
    );
    s.register(EP, addr("10.0.0.1:443"), None).await.unwrap();
    let changes = d.sim.dns_changes_applied(PROJECT, ZONE);
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
        .register("a;b", addr("10.0.0.1:443"), None)
        .await
        .expect_err("bad name");
    assert!(
        matches!(err, TrafficError::InvalidEndpoint { .. }),
        "{err:?}"
    );
    // A name outside the zone: Cloud DNS refuses it, as a refusal naming the field.
    let err = s
        .register("app.example.org", addr("10.0.0.1:443"), None)
        .await
        .expect_err("outside the zone");
    match &err {
        TrafficError::CloudDns { failure, .. } => {
            assert_eq!(*failure, CallFailure::Refused { status: 400 }, "{err}")
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("entity.change.additions"), "{err}");
    for err in [
        s.backend_stats(EP).await.expect_err("stats"),
        s.sessions(EP).await.expect_err("sessions"),
    ] {
        assert!(
            matches!(err, TrafficError::NoRequestCounts { .. }),
            "{err:?}"
        );
    }
    assert_eq!(d.sim.dns_changes_applied(PROJECT, ZONE), changes);
    assert_eq!(held(&d, NAME, "A"), Some(wire(&[("10.0.0.1", 100.0)])));
}

#[tokio::test]
async fn a_missing_zone_is_named_and_no_token_shows() {
    let d = dns().await;
    let s = shifter(&d.endpoint, &format!("{PROJECT}/staging")).await;
    let err = s
        .register(EP, addr("10.0.0.1:443"), None)
        .await
        .expect_err("no zone");
    match &err {
        TrafficError::CloudDns { failure, zone, .. } => {
            assert_eq!(*failure, CallFailure::NotFound);
            assert_eq!(zone, "rotor-prod/staging");
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(EP) && text.contains("rotor-prod/staging") && text.contains("'staging'"),
        "{text}"
    );
    for shown in [text, format!("{err:?}"), format!("{s:?}")] {
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}

#[tokio::test]
async fn throttling_is_classed_rate_limited_and_changes_nothing() {
    let d = dns().await;
    let s = &d.shifter;
    s.register(EP, addr("10.0.0.1:443"), Some(addr("10.0.0.2:443")))
        .await
        .unwrap();
    d.sim
        .cloud
        .rate_limit_next_calls(1, Some(Duration::from_secs(3)));
    let err = s
        .set_weights(EP, Weights::green(10).unwrap())
        .await
        .expect_err("throttled");
    match &err {
        TrafficError::CloudDns { failure, .. } => {
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
    assert_eq!(
        held(&d, NAME, "A"),
        Some(wire(&[("10.0.0.1", 100.0), ("10.0.0.2", 0.0)]))
    );
    s.set_weights(EP, Weights::green(10).unwrap())
        .await
        .expect("served once the limit is over");
}

#[tokio::test]
async fn a_shift_returns_once_its_change_is_done_and_times_out_on_one_that_never_is() {
    let d = dns().await;
    let s = &d.shifter;
    s.register(EP, addr("10.0.0.1:443"), Some(addr("10.0.0.2:443")))
        .await
        .unwrap();
    d.sim.dns_changes_pending_for(PROJECT, ZONE, 2);
    s.set_weights(EP, Weights::green(10).unwrap())
        .await
        .expect("done after two reads");
    assert_eq!(d.sim.dns_changes_pending(PROJECT, ZONE), Some(0));
    assert_eq!(s.weights(EP).await.unwrap(), Weights::green(10).unwrap());

    d.sim.dns_changes_pending_for(PROJECT, ZONE, u32::MAX);
    let timeout = Duration::from_secs(1);
    let impatient = CloudDnsShifter::new(
        &format!("{PROJECT}/{ZONE}"),
        CloudDnsOptions {
            endpoint: Some(d.endpoint.clone()),
            credentials: Some(token()),
            change_timeout: timeout,
            ..CloudDnsOptions::default()
        },
    )
    .await
    .unwrap();
    let err = impatient
        .set_weights(EP, Weights::green(50).unwrap())
        .await
        .expect_err("never done");
    match &err {
        TrafficError::Timeout {
            endpoint, after, ..
        } => {
            assert_eq!((endpoint.as_str(), *after), (EP, timeout))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(d.sim.dns_changes_pending(PROJECT, ZONE), Some(1));
}

#[tokio::test]
async fn an_unreachable_cloud_dns_is_unavailable() {
    // Nothing listens on port 1: connections are refused at once.
    let s = shifter("http://127.0.0.1:1/gcp", "p/z").await;
    let err = s.weights(EP).await.expect_err("unreachable");
    match &err {
        TrafficError::CloudDns { failure, .. } => {
            assert_eq!(*failure, CallFailure::Unavailable, "{err}")
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains(EP), "{err}");
}

#[tokio::test]
async fn clients_follow_a_change_only_after_propagation_and_ttl() {
    let options = |ttl, propagation| CloudDnsOptions {
        endpoint: Some("http://127.0.0.1:1/gcp".into()),
        credentials: Some(token()),
        ttl,
        propagation,
        ..CloudDnsOptions::default()
    };
    let defaults = options(
        rotor_traffic::clouddns::DEFAULT_TTL,
        rotor_traffic::clouddns::DEFAULT_PROPAGATION,
    );
    let s = CloudDnsShifter::new("p/z", defaults).await.unwrap();
    assert_eq!(s.settle_time(), Duration::from_secs(70));
    let s = CloudDnsShifter::new("p/z", options(Duration::from_secs(30), Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(s.settle_time(), Duration::from_secs(30));
    let err = CloudDnsShifter::new("p/z", options(Duration::from_millis(1500), Duration::ZERO))
        .await
        .expect_err("not whole seconds");
    assert!(matches!(err, TrafficError::Setup { .. }), "{err:?}");
}

/// A resolver asking for the endpoint is answered from the record set the shifter wrote: the
/// split in force, with the set's TTL.
#[tokio::test]
async fn the_endpoint_resolves_by_the_split_the_shifter_wrote() {
    let d = dns().await;
    let s = &d.shifter;
    s.register(EP, addr("10.0.0.1:443"), Some(addr("10.0.0.2:443")))
        .await
        .unwrap();
    assert_eq!(common::answered_with(&d.sim, EP, "10.0.0.2"), 0);
    s.set_weights(EP, Weights::green(10).unwrap())
        .await
        .unwrap();
    assert_eq!(common::answered_with(&d.sim, EP, "10.0.0.2"), 10);
    assert_eq!(common::answered_with(&d.sim, EP, "10.0.0.1"), 90);
    assert_eq!(d.sim.resolve(EP).unwrap().ttl, Duration::from_secs(10));
    s.rollback(EP).await.unwrap();
    assert_eq!(common::answered_with(&d.sim, EP, "10.0.0.1"), 100);
    assert!(d.sim.resolve("other.example.com").is_none());
}
