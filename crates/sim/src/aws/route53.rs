//! Route 53 (restXml, `/aws/2013-04-01/…`): hosted zones and their record sets, changed in
//! atomic batches as Route 53 does — a CREATE of a set that exists, or a DELETE of one that does
//! not match exactly, fails the whole batch with `InvalidChangeBatch` and changes nothing.
//! Sets are listed in Route 53's order (names by reversed labels, then type, then set
//! identifier) from `name`/`type`/`identifier`. Changes are answered `PENDING`, as Route 53
//! answers them. Names resolve through the records in the process ([`crate::dns`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{StatusCode, header};
use serde::Deserialize;

use super::xml::{self, Element};
use super::{request_id, xml_escape};
use crate::Sim;
use crate::dns::fqdn;

const NAMESPACE: &str = "https://route53.amazonaws.com/doc/2013-04-01/";

/// The hosted zones, by id (`Z…`, without `/hostedzone/`).
#[derive(Default)]
pub(crate) struct Route53 {
    zones: Mutex<BTreeMap<String, Zone>>,
}

impl Route53 {
    /// A public zone for `name` (an FQDN) with the SOA and NS sets Route 53 gives a new one;
    /// its id. A caller reference is used once.
    fn new_zone(&self, name: &str, caller_reference: &str) -> Result<String, R53Error> {
        let mut zones = self.zones();
        if zones
            .values()
            .any(|z| z.caller_reference == caller_reference)
        {
            return Err(R53Error::HostedZoneAlreadyExists(caller_reference.into()));
        }
        let id = format!("Z{:020X}", rand::random::<u128>() & ((1 << 80) - 1));
        let soa = RecordSet {
            name: name.to_string(),
            kind: "SOA".into(),
            set_identifier: None,
            weight: None,
            ttl: Some(900),
            values: vec![format!(
                "ns-1.rotor-sim. hostmaster.{name} 1 7200 900 1209600 86400"
            )],
        };
        let ns = RecordSet {
            kind: "NS".into(),
            ttl: Some(172_800),
            values: vec!["ns-1.rotor-sim.".into()],
            ..soa.clone()
        };
        zones.insert(
            id.clone(),
            Zone {
                name: name.to_string(),
                caller_reference: caller_reference.to_string(),
                sets: vec![ns, soa],
            },
        );
        Ok(id)
    }

    /// The address records of `name` (an FQDN in lower case) in every zone: a weighted set
    /// weighs each of its values by its `Weight`, a simple one each value alike.
    pub(crate) fn answer(&self, name: &str) -> Option<crate::dns::Answer> {
        let zones = self.zones();
        let records = zones
            .values()
            .flat_map(|z| &z.sets)
            .filter(|s| s.name == name && matches!(s.kind.as_str(), "A" | "AAAA"))
            .flat_map(|s| {
                let weight = s.weight.map_or(1.0, |w| w as f64);
                s.values.iter().map(move |v| (v.as_str(), weight, s.ttl))
            });
        crate::dns::Answer::of(records)
    }
}

struct Zone {
    name: String,
    caller_reference: String,
    sets: Vec<RecordSet>,
}

#[derive(Clone, Debug, PartialEq)]
struct RecordSet {
    name: String,
    kind: String,
    set_identifier: Option<String>,
    weight: Option<i64>,
    ttl: Option<i64>,
    values: Vec<String>,
}

impl RecordSet {
    /// Route 53's identity of a set: name, type, set identifier.
    fn same_set(&self, other: &RecordSet) -> bool {
        self.name == other.name
            && self.kind == other.kind
            && self.set_identifier == other.set_identifier
    }

    /// Route 53's listing order.
    fn order_key(&self) -> (String, String, String) {
        (
            reversed_labels(&self.name),
            self.kind.clone(),
            self.set_identifier.clone().unwrap_or_default(),
        )
    }

    fn from_xml(e: &Element) -> Result<RecordSet, String> {
        let name = e
            .text_of("Name")
            .ok_or("a ResourceRecordSet without Name")?;
        let kind = e
            .text_of("Type")
            .ok_or("a ResourceRecordSet without Type")?;
        let number = |field: &str| -> Result<Option<i64>, String> {
            e.text_of(field)
                .map(|v| {
                    v.parse()
                        .map_err(|_| format!("{field} {v:?} is not a number"))
                })
                .transpose()
        };
        let values = e
            .child("ResourceRecords")
            .map(|r| {
                r.children_named("ResourceRecord")
                    .filter_map(|r| r.text_of("Value").map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        Ok(RecordSet {
            name: fqdn(name),
            kind: kind.to_string(),
            set_identifier: e.text_of("SetIdentifier").map(String::from),
            weight: number("Weight")?,
            ttl: number("TTL")?,
            values,
        })
    }

    fn to_xml(&self) -> String {
        let mut out = format!(
            "<ResourceRecordSet><Name>{}</Name><Type>{}</Type>",
            xml_escape(&self.name),
            xml_escape(&self.kind)
        );
        if let Some(id) = &self.set_identifier {
            out.push_str(&format!(
                "<SetIdentifier>{}</SetIdentifier>",
                xml_escape(id)
            ));
        }
        if let Some(w) = self.weight {
            out.push_str(&format!("<Weight>{w}</Weight>"));
        }
        if let Some(ttl) = self.ttl {
            out.push_str(&format!("<TTL>{ttl}</TTL>"));
        }
        out.push_str("<ResourceRecords>");
        for v in &self.values {
            out.push_str(&format!(
                "<ResourceRecord><Value>{}</Value></ResourceRecord>",
                xml_escape(v)
            ));
        }
        out.push_str("</ResourceRecords></ResourceRecordSet>");
        out
    }
}

/// `app.example.com.` → `com.example.app`: Route 53 lists names in this order.
fn reversed_labels(name: &str) -> String {
    let labels: Vec<&str> = name.trim_end_matches('.').split('.').rev().collect();
    labels.join(".")
}

impl Route53 {
    fn zones(&self) -> MutexGuard<'_, BTreeMap<String, Zone>> {
        self.zones.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(super) fn routes() -> axum::Router<Arc<Sim>> {
    axum::Router::new()
        .route("/2013-04-01/hostedzone", post(create_zone))
        .route(
            "/2013-04-01/hostedzone/{id}/rrset",
            get(list_sets).post(change_sets),
        )
        .route(
            "/2013-04-01/hostedzone/{id}/rrset/",
            get(list_sets).post(change_sets),
        )
}

/// Route 53's errors: `InvalidChangeBatch` has its own shape, the rest are `ErrorResponse`s.
#[derive(Debug)]
enum R53Error {
    NoSuchHostedZone(String),
    InvalidInput(String),
    InvalidChangeBatch(Vec<String>),
    /// A zone was created with this CallerReference before.
    HostedZoneAlreadyExists(String),
    Throttling,
}

impl IntoResponse for R53Error {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            R53Error::InvalidChangeBatch(messages) => {
                let list: String = messages
                    .iter()
                    .map(|m| format!("<Message>{}</Message>", xml_escape(m)))
                    .collect();
                let body = format!(
                    "<InvalidChangeBatch xmlns=\"{NAMESPACE}\"><Messages>{list}</Messages>\
                     <RequestId>{}</RequestId></InvalidChangeBatch>",
                    request_id()
                );
                return (StatusCode::BAD_REQUEST, xml_answer(&body)).into_response();
            }
            R53Error::NoSuchHostedZone(id) => (
                StatusCode::NOT_FOUND,
                "NoSuchHostedZone",
                format!("No hosted zone found with ID: {id}"),
            ),
            R53Error::InvalidInput(m) => (StatusCode::BAD_REQUEST, "InvalidInput", m),
            R53Error::HostedZoneAlreadyExists(reference) => (
                StatusCode::CONFLICT,
                "HostedZoneAlreadyExists",
                format!("A hosted zone was already created with CallerReference {reference}"),
            ),
            R53Error::Throttling => (
                StatusCode::BAD_REQUEST,
                "Throttling",
                "Rate exceeded".to_string(),
            ),
        };
        let body = format!(
            "<ErrorResponse xmlns=\"{NAMESPACE}\"><Error><Type>Sender</Type><Code>{code}</Code>\
             <Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
            xml_escape(&message),
            request_id()
        );
        (status, xml_answer(&body)).into_response()
    }
}

fn xml_answer(body: &str) -> Response {
    (
        [(header::CONTENT_TYPE, "text/xml")],
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>{body}"),
    )
        .into_response()
}

fn throttle(sim: &Sim) -> Result<(), R53Error> {
    match sim.cloud.take_rate_limit() {
        Some(_) => Err(R53Error::Throttling),
        None => Ok(()),
    }
}

fn change_info() -> String {
    format!(
        "<ChangeInfo><Id>/change/C{:016X}</Id><Status>PENDING</Status>\
         <SubmittedAt>{}</SubmittedAt></ChangeInfo>",
        rand::random::<u64>(),
        super::sts::iso8601(std::time::SystemTime::now())
    )
}

async fn create_zone(State(sim): State<Arc<Sim>>, body: String) -> Result<Response, R53Error> {
    throttle(&sim)?;
    let doc = xml::parse(&body).map_err(R53Error::InvalidInput)?;
    let name = doc
        .text_of("Name")
        .map(fqdn)
        .ok_or_else(|| R53Error::InvalidInput("Name is required".into()))?;
    let caller_reference = doc
        .text_of("CallerReference")
        .ok_or_else(|| R53Error::InvalidInput("CallerReference is required".into()))?
        .to_string();
    let id = sim.route53.new_zone(&name, &caller_reference)?;
    let answer = format!(
        "<CreateHostedZoneResponse xmlns=\"{NAMESPACE}\"><HostedZone><Id>/hostedzone/{id}</Id>\
         <Name>{}</Name><CallerReference>{}</CallerReference><Config><PrivateZone>false\
         </PrivateZone></Config><ResourceRecordSetCount>2</ResourceRecordSetCount></HostedZone>\
         {}<DelegationSet><NameServers><NameServer>ns-1.rotor-sim.</NameServer></NameServers>\
         </DelegationSet></CreateHostedZoneResponse>",
        xml_escape(&name),
        xml_escape(&caller_reference),
        change_info()
    );
    let mut resp = (StatusCode::CREATED, xml_answer(&answer)).into_response();
    if let Ok(v) = format!("/2013-04-01/hostedzone/{id}").parse() {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

impl Sim {
    /// Makes the public hosted zone for `name` (`example.com`), as `CreateHostedZone` would;
    /// its id (`Z…`).
    pub fn add_hosted_zone(&self, name: &str) -> String {
        // A reference no `CreateHostedZone` call has used: the next free one of the simulator's.
        (0..)
            .find_map(|n| {
                let reference = format!("rotor-sim-{n}");
                self.route53.new_zone(&fqdn(name), &reference).ok()
            })
            .unwrap_or_default()
    }
}

#[derive(Deserialize)]
struct ListQuery {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    identifier: Option<String>,
    maxitems: Option<usize>,
}

async fn list_sets(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response, R53Error> {
    throttle(&sim)?;
    let zones = sim.route53.zones();
    let zone = zones
        .get(&id)
        .ok_or_else(|| R53Error::NoSuchHostedZone(id.clone()))?;
    let max = q.maxitems.unwrap_or(300).clamp(1, 300);
    let start = (
        q.name
            .as_deref()
            .map(|n| reversed_labels(&fqdn(n)))
            .unwrap_or_default(),
        q.kind.clone().unwrap_or_default(),
        q.identifier.clone().unwrap_or_default(),
    );
    let mut sets: Vec<&RecordSet> = zone
        .sets
        .iter()
        .filter(|s| s.order_key() >= start)
        .collect();
    sets.sort_by_key(|s| s.order_key());
    let truncated = sets.len() > max;
    let mut body =
        format!("<ListResourceRecordSetsResponse xmlns=\"{NAMESPACE}\"><ResourceRecordSets>");
    for s in sets.iter().take(max) {
        body.push_str(&s.to_xml());
    }
    body.push_str(&format!(
        "</ResourceRecordSets><IsTruncated>{truncated}</IsTruncated><MaxItems>{max}</MaxItems>"
    ));
    if let Some(next) = sets.get(max).filter(|_| truncated) {
        body.push_str(&format!(
            "<NextRecordName>{}</NextRecordName><NextRecordType>{}</NextRecordType>",
            xml_escape(&next.name),
            xml_escape(&next.kind)
        ));
        if let Some(id) = &next.set_identifier {
            body.push_str(&format!(
                "<NextRecordIdentifier>{}</NextRecordIdentifier>",
                xml_escape(id)
            ));
        }
    }
    body.push_str("</ListResourceRecordSetsResponse>");
    Ok(xml_answer(&body))
}

async fn change_sets(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    body: String,
) -> Result<Response, R53Error> {
    throttle(&sim)?;
    let doc = xml::parse(&body).map_err(R53Error::InvalidInput)?;
    let changes = doc
        .child("ChangeBatch")
        .and_then(|b| b.child("Changes"))
        .ok_or_else(|| R53Error::InvalidInput("ChangeBatch.Changes is required".into()))?;
    let mut parsed = Vec::new();
    for c in changes.children_named("Change") {
        let action = c.text_of("Action").unwrap_or_default().to_string();
        let set = c
            .child("ResourceRecordSet")
            .ok_or_else(|| R53Error::InvalidInput("a Change without ResourceRecordSet".into()))
            .and_then(|e| RecordSet::from_xml(e).map_err(R53Error::InvalidInput))?;
        parsed.push((action, set));
    }
    let mut zones = sim.route53.zones();
    let zone = zones
        .get_mut(&id)
        .ok_or_else(|| R53Error::NoSuchHostedZone(id.clone()))?;
    zone.sets = apply(&zone.name, &zone.sets, parsed).map_err(R53Error::InvalidChangeBatch)?;
    let body = format!(
        "<ChangeResourceRecordSetsResponse xmlns=\"{NAMESPACE}\">{}</ChangeResourceRecordSetsResponse>",
        change_info()
    );
    Ok(xml_answer(&body))
}

/// The zone's sets after a batch, or every reason the batch is refused (nothing changes then).
fn apply(
    zone: &str,
    sets: &[RecordSet],
    changes: Vec<(String, RecordSet)>,
) -> Result<Vec<RecordSet>, Vec<String>> {
    let mut out = sets.to_vec();
    let mut problems = Vec::new();
    for (action, set) in changes {
        if set.name != zone && !set.name.ends_with(&format!(".{zone}")) {
            problems.push(format!(
                "RRSet with DNS name {} is not permitted in zone {zone}",
                set.name
            ));
            continue;
        }
        let existing = out.iter().position(|s| s.same_set(&set));
        match (action.as_str(), existing) {
            ("CREATE", Some(_)) => problems.push(format!(
                "Tried to create resource record set [name='{}', type='{}'] but it already exists",
                set.name, set.kind
            )),
            ("CREATE", None) | ("UPSERT", None) => out.push(set),
            ("UPSERT", Some(i)) => out[i] = set,
            ("DELETE", Some(i)) if out[i] == set => {
                out.remove(i);
            }
            ("DELETE", _) => problems.push(format!(
                "Tried to delete resource record set [name='{}', type='{}'] but it was not found \
                 (or its values did not match)",
                set.name, set.kind
            )),
            (other, _) => problems.push(format!("unknown Action {other:?}")),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(id: &str, weight: i64, ip: &str) -> RecordSet {
        RecordSet {
            name: "app.example.com.".into(),
            kind: "A".into(),
            set_identifier: Some(id.into()),
            weight: Some(weight),
            ttl: Some(10),
            values: vec![ip.into()],
        }
    }

    #[test]
    fn a_batch_is_all_or_nothing() {
        let zone = "example.com.";
        let sets = apply(
            zone,
            &[],
            vec![("CREATE".into(), set("blue", 100, "10.0.0.1"))],
        )
        .unwrap();
        let again = apply(
            zone,
            &sets,
            vec![
                ("UPSERT".into(), set("green", 0, "10.0.0.2")),
                ("CREATE".into(), set("blue", 100, "10.0.0.1")),
            ],
        );
        assert_eq!(again.unwrap_err().len(), 1, "CREATE of an existing set");
        let wrong_delete = apply(
            zone,
            &sets,
            vec![("DELETE".into(), set("blue", 50, "10.0.0.1"))],
        );
        assert!(wrong_delete.is_err(), "a DELETE must match exactly");
        let deleted = apply(
            zone,
            &sets,
            vec![("DELETE".into(), set("blue", 100, "10.0.0.1"))],
        );
        assert_eq!(deleted.unwrap(), vec![]);
        let outside = apply(
            zone,
            &[],
            vec![(
                "CREATE".into(),
                RecordSet {
                    name: "x.other.org.".into(),
                    ..set("b", 1, "10.0.0.1")
                },
            )],
        );
        assert!(outside.is_err());
    }

    #[test]
    fn names_list_by_reversed_labels() {
        assert_eq!(reversed_labels("app.example.com."), "com.example.app");
        assert!(reversed_labels("example.com.") < reversed_labels("app.example.com."));
        assert_eq!(fqdn("App.Example.com"), "app.example.com.");
    }
}
