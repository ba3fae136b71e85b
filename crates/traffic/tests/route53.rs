//! The Route 53 shifter through the official AWS SDK against two independent Route 53 APIs, a
//! real moto server and `rotor sim`'s AWS front (`/aws`): weighted record sets written in atomic
//! batches, read back through the SDK directly. Each test runs on both (`on_both!`).

use std::net::SocketAddr;
use std::sync::Arc;

use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use rotor_aws::AwsOptions;
use rotor_sim::{Sim, SimConfig};
use rotor_test_support::aws::{Backend, sim_options};
use rotor_test_support::moto::{self, MotoServer};
use rotor_traffic::route53::Route53Shifter;
use rotor_traffic::{TrafficError, TrafficShifter, Weights};

/// A Route 53 that lives as long as the test (held for its drop).
#[allow(dead_code)]
enum Server {
    Moto(MotoServer),
    Sim(Arc<Sim>),
}

struct Dns {
    _server: Server,
    shifter: Route53Shifter,
    r53: aws_sdk_route53::Client,
    zone: String,
}

/// The simulator on a loopback port, and options that reach its AWS front.
async fn simulator() -> (Arc<Sim>, AwsOptions) {
    let sim = Sim::new(SimConfig::default());
    let addr = sim.serve_loopback().await.expect("serve the simulator");
    (sim, sim_options(addr))
}

async fn dns(backend: Backend) -> Option<Dns> {
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
    let r53 = aws_sdk_route53::Client::new(&config);
    let zone = r53
        .create_hosted_zone()
        .name("example.com")
        .caller_reference("rotor-test")
        .send()
        .await
        .expect("create zone")
        .hosted_zone
        .expect("zone")
        .id;
    Some(Dns {
        shifter: Route53Shifter::new(&config, &zone, 10),
        r53,
        zone,
        _server: server,
    })
}

rotor_test_support::on_both!(
    weights_move_between_blue_and_green_records,
    bad_requests_are_refused_naming_the_endpoint_and_change_nothing,
    other_records_are_left_alone_and_foreign_edits_are_reported,
);

/// (set identifier, type, weight, value) of every record set named `name`, as Route 53 holds them.
async fn records(d: &Dns, name: &str) -> Vec<(String, String, i64, String)> {
    let mut out: Vec<_> = d
        .r53
        .list_resource_record_sets()
        .hosted_zone_id(&d.zone)
        .send()
        .await
        .expect("list")
        .resource_record_sets()
        .iter()
        .filter(|s| s.name().trim_end_matches('.') == name)
        .map(|s| {
            (
                s.set_identifier().unwrap_or_default().to_string(),
                s.r#type().as_str().to_string(),
                s.weight().unwrap_or(-1),
                s.resource_records()
                    .iter()
                    .map(|r| r.value().to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            )
        })
        .collect();
    out.sort();
    out
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn rec(id: &str, weight: i64, ip: &str) -> (String, String, i64, String) {
    (id.into(), "A".into(), weight, ip.into())
}

const EP: &str = "app.example.com";

async fn weights_move_between_blue_and_green_records(backend: Backend) {
    let Some(d) = dns(backend).await else { return };
    let s = &d.shifter;
    s.register(EP, addr("10.0.0.1:443"), None)
        .await
        .expect("register blue");
    assert_eq!(s.weights(EP).await.unwrap(), Weights::all_blue());
    assert_eq!(
        records(&d, EP).await,
        vec![rec("rotor-blue", 100, "10.0.0.1")]
    );

    s.register(EP, addr("10.0.0.1:443"), Some(addr("10.0.0.2:443")))
        .await
        .expect("register green");
    assert_eq!(s.weights(EP).await.unwrap(), Weights::all_blue());
    assert_eq!(
        records(&d, EP).await,
        vec![
            rec("rotor-blue", 100, "10.0.0.1"),
            rec("rotor-green", 0, "10.0.0.2")
        ]
    );

    s.set_weights(EP, Weights::green(50).unwrap())
        .await
        .expect("50/50");
    assert_eq!(
        records(&d, EP).await,
        vec![
            rec("rotor-blue", 50, "10.0.0.1"),
            rec("rotor-green", 50, "10.0.0.2")
        ]
    );
    // Re-registering the same backends keeps the split.
    s.register(EP, addr("10.0.0.1:443"), Some(addr("10.0.0.2:443")))
        .await
        .expect("re-register");
    assert_eq!(s.weights(EP).await.unwrap(), Weights::green(50).unwrap());

    s.rollback(EP).await.expect("rollback");
    assert_eq!(
        records(&d, EP).await,
        vec![
            rec("rotor-blue", 100, "10.0.0.1"),
            rec("rotor-green", 0, "10.0.0.2")
        ]
    );

    // After a swap green becomes the only backend: one batch moves blue's record to green's
    // address and deletes green's.
    s.set_weights(EP, Weights::green(100).unwrap())
        .await
        .expect("100 %");
    s.register(EP, addr("10.0.0.2:443"), None)
        .await
        .expect("promote");
    assert_eq!(
        records(&d, EP).await,
        vec![rec("rotor-blue", 100, "10.0.0.2")]
    );
    assert_eq!(s.weights(EP).await.unwrap(), Weights::all_blue());
}

async fn bad_requests_are_refused_naming_the_endpoint_and_change_nothing(backend: Backend) {
    let Some(d) = dns(backend).await else { return };
    let s = &d.shifter;
    let err = s.weights(EP).await.expect_err("unknown");
    assert!(
        matches!(err, TrafficError::UnknownEndpoint { .. }),
        "{err:?}"
    );

    s.register(EP, addr("10.0.0.1:443"), None)
        .await
        .expect("register");
    let err = s
        .set_weights(EP, Weights::green(10).unwrap())
        .await
        .expect_err("no green");
    assert!(
        matches!(err, TrafficError::GreenNotRegistered { green: 10, .. }),
        "{err:?}"
    );

    let err = s
        .register(EP, addr("10.0.0.1:443"), Some(addr("10.0.0.2:8443")))
        .await
        .expect_err("ports differ");
    assert!(matches!(err, TrafficError::Unsupported { .. }), "{err:?}");
    assert!(
        err.to_string().contains(EP) && err.to_string().contains("port"),
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

    let err = s
        .backend_stats(EP)
        .await
        .expect_err("DNS counts no requests");
    assert!(
        matches!(err, TrafficError::NoRequestCounts { .. }),
        "{err:?}"
    );

    assert_eq!(
        records(&d, EP).await,
        vec![rec("rotor-blue", 100, "10.0.0.1")]
    );
}

async fn other_records_are_left_alone_and_foreign_edits_are_reported(backend: Backend) {
    let Some(d) = dns(backend).await else { return };
    let s = &d.shifter;
    // A record of someone else's, under the same name and beside it.
    let foreign = |name: &str, id: Option<&str>, weight: Option<i64>| {
        ResourceRecordSet::builder()
            .name(name)
            .r#type(RrType::A)
            .set_set_identifier(id.map(String::from))
            .set_weight(weight)
            .ttl(60)
            .resource_records(
                ResourceRecord::builder()
                    .value("192.0.2.9")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    };
    let upsert = |set: ResourceRecordSet| {
        d.r53
            .change_resource_record_sets()
            .hosted_zone_id(&d.zone)
            .change_batch(
                ChangeBatch::builder()
                    .changes(
                        Change::builder()
                            .action(ChangeAction::Upsert)
                            .resource_record_set(set)
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
    };
    upsert(foreign("www.example.com", None, None))
        .await
        .expect("www");
    s.register(EP, addr("10.0.0.1:443"), Some(addr("10.0.0.2:443")))
        .await
        .expect("register");
    upsert(foreign(EP, Some("someone-else"), Some(0)))
        .await
        .expect("foreign");
    s.set_weights(EP, Weights::green(30).unwrap())
        .await
        .expect("30 %");
    s.register(EP, addr("10.0.0.2:443"), None)
        .await
        .expect("promote");
    assert_eq!(
        records(&d, EP).await,
        vec![
            rec("rotor-blue", 100, "10.0.0.2"),
            rec("someone-else", 0, "192.0.2.9")
        ]
    );
    assert_eq!(
        records(&d, "www.example.com").await,
        vec![(String::new(), "A".into(), -1, "192.0.2.9".into())]
    );

    // Weights edited by hand so they no longer sum to 100: reported, not guessed at.
    s.register(EP, addr("10.0.0.2:443"), Some(addr("10.0.0.3:443")))
        .await
        .expect("register");
    let mut edited = foreign(EP, Some("rotor-green"), Some(70));
    edited.resource_records = Some(vec![
        ResourceRecord::builder().value("10.0.0.3").build().unwrap(),
    ]);
    edited.ttl = Some(10);
    upsert(edited).await.expect("edit");
    let err = s.weights(EP).await.expect_err("sum is 170");
    assert!(matches!(err, TrafficError::Verify { .. }), "{err:?}");
    assert!(
        err.to_string().contains(EP) && err.to_string().contains("green=70"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreachable_route53_names_the_endpoint_and_no_secret() {
    let config = rotor_aws::sdk_config(&moto::unreachable()).await;
    let s = Route53Shifter::new(&config, "Z123", 10);
    let err = s.weights(EP).await.expect_err("unreachable");
    assert!(matches!(err, TrafficError::Route53 { .. }), "{err:?}");
    assert!(err.to_string().contains(EP), "{err}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

#[tokio::test]
async fn clients_follow_a_change_only_after_propagation_and_ttl() {
    let config = rotor_aws::sdk_config(&moto::unreachable()).await;
    let s = Route53Shifter::new(&config, "Z123", 10);
    assert_eq!(s.settle_time(), std::time::Duration::from_secs(70));
    let s = s.with_propagation(std::time::Duration::ZERO);
    assert_eq!(s.settle_time(), std::time::Duration::from_secs(10));
}

/// A resolver asking for the endpoint is answered from the weighted sets the shifter wrote:
/// the split in force, with the sets' TTL (the simulator only: moto serves no answers).
#[tokio::test]
async fn the_endpoint_resolves_by_the_split_the_shifter_wrote() {
    let Some(d) = dns(Backend::Sim).await else {
        unreachable!("the simulator always starts")
    };
    let Server::Sim(sim) = &d._server else {
        unreachable!("started on the simulator")
    };
    let s = &d.shifter;
    s.register(EP, addr("10.0.0.1:443"), Some(addr("10.0.0.2:443")))
        .await
        .unwrap();
    let answered_with = |ip: &str| crate::common::answered_with(sim, EP, ip);
    assert_eq!(answered_with("10.0.0.2"), 0);
    s.set_weights(EP, Weights::green(50).unwrap())
        .await
        .unwrap();
    assert_eq!(answered_with("10.0.0.2"), 50);
    assert_eq!(answered_with("10.0.0.1"), 50);
    assert_eq!(
        sim.resolve(EP).unwrap().ttl,
        std::time::Duration::from_secs(10)
    );
    assert!(sim.resolve("other.example.com").is_none());
}
