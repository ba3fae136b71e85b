//! Route 53 weighted records: an endpoint is a DNS name in one hosted zone, with one weighted
//! record set for blue (`rotor-blue`) and one for green (`rotor-green`), both A (or both AAAA)
//! records of the instances' traffic addresses. Every change is one `ChangeResourceRecordSets`
//! batch, which Route 53 applies atomically: a re-registration that moves blue to a new address
//! and drops green never leaves the name without an answer.
//!
//! What DNS cannot do, said plainly:
//! - **Rollback takes the record's TTL**, not milliseconds: resolvers keep the old answer until
//!   it expires (`ttl`, 10 s by default, plus Route 53's own propagation, usually under a
//!   minute). HAProxy or a load balancer in front is the fast path; DNS is for shifting between
//!   regions or accounts. [`TrafficShifter::settle_time`] says so to the swap, which keeps an
//!   instance that lost its traffic that long before deleting it.
//! - **Route 53 sees no requests**, so [`TrafficShifter::backend_stats`] answers
//!   [`TrafficError::NoRequestCounts`]: a swap's gates then rest on green's workload
//!   availability alone, and say so.
//! - **DNS carries no port**: blue and green must take traffic on the same port.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_route53::Client;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use rotor_aws::{Failure, SdkConfig, classify};

use crate::{
    BackendLatencies, BackendStats, Sessions, TrafficError, TrafficShifter, Unanswered, Weights,
    check_dns_backends, validate_endpoint,
};

/// The record sets' set identifiers.
const BLUE_ID: &str = "rotor-blue";
const GREEN_ID: &str = "rotor-green";

/// The TTL of the records rotor writes unless told otherwise.
pub const DEFAULT_TTL_SECONDS: i64 = 10;

/// How long Route 53 may take to serve a change from all its name servers ("generally within
/// 60 seconds", AWS says), unless told otherwise.
pub const DEFAULT_PROPAGATION: Duration = Duration::from_secs(60);

pub struct Route53Shifter {
    client: Client,
    zone: String,
    ttl: i64,
    propagation: Duration,
}

impl std::fmt::Debug for Route53Shifter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route53Shifter")
            .field("zone", &self.zone)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// One of the two record sets as Route 53 holds it.
#[derive(Clone, Debug, PartialEq)]
struct Record {
    ip: IpAddr,
    weight: i64,
    ttl: i64,
}

/// Both record sets of an endpoint.
#[derive(Clone, Debug, Default, PartialEq)]
struct Records {
    blue: Option<Record>,
    green: Option<Record>,
}

fn fqdn(endpoint: &str) -> String {
    let mut name = endpoint.to_ascii_lowercase();
    if !name.ends_with('.') {
        name.push('.');
    }
    name
}

fn record_type(ip: IpAddr) -> RrType {
    match ip {
        IpAddr::V4(_) => RrType::A,
        IpAddr::V6(_) => RrType::Aaaa,
    }
}

impl Route53Shifter {
    /// Shifts endpoints in the hosted zone `zone_id` (`Z0123…`, or `/hostedzone/Z0123…`).
    pub fn new(config: &SdkConfig, zone_id: &str, ttl_seconds: i64) -> Self {
        Route53Shifter {
            client: Client::new(config),
            zone: zone_id.trim_start_matches("/hostedzone/").to_string(),
            ttl: ttl_seconds,
            propagation: DEFAULT_PROPAGATION,
        }
    }

    /// How long Route 53 takes to serve a change everywhere (see [`DEFAULT_PROPAGATION`]).
    pub fn with_propagation(mut self, propagation: Duration) -> Self {
        self.propagation = propagation;
        self
    }

    fn failed(endpoint: &str, what: &'static str, failure: Failure) -> TrafficError {
        let message = match failure {
            Failure::Unavailable { message }
            | Failure::Throttled { message }
            | Failure::Protocol { message }
            | Failure::Refused { message, .. } => message,
        };
        TrafficError::Route53 {
            endpoint: endpoint.to_string(),
            what,
            message,
        }
    }

    /// The record sets rotor wrote for `endpoint`, of either address family.
    async fn read(&self, endpoint: &str) -> Result<Records, TrafficError> {
        let name = fqdn(endpoint);
        let listed = self
            .client
            .list_resource_record_sets()
            .hosted_zone_id(&self.zone)
            .start_record_name(&name)
            .max_items(20)
            .send()
            .await
            .map_err(|e| Self::failed(endpoint, "reading the records", classify(&e)))?;
        let mut records = Records::default();
        for set in listed.resource_record_sets() {
            if fqdn(set.name()) != name || !matches!(set.r#type(), RrType::A | RrType::Aaaa) {
                continue;
            }
            let slot = match set.set_identifier() {
                Some(BLUE_ID) => &mut records.blue,
                Some(GREEN_ID) => &mut records.green,
                _ => continue,
            };
            let value = set
                .resource_records()
                .first()
                .map(|r| r.value())
                .unwrap_or_default();
            let ip = value.parse().map_err(|_| TrafficError::Protocol {
                endpoint: endpoint.to_string(),
                command: "ListResourceRecordSets".into(),
                reply: format!(
                    "record {:?} holds {value:?}, not an address",
                    set.set_identifier()
                ),
            })?;
            *slot = Some(Record {
                ip,
                weight: set.weight().unwrap_or(0),
                ttl: set.ttl().unwrap_or(self.ttl),
            });
        }
        Ok(records)
    }

    fn record_set(
        endpoint: &str,
        id: &str,
        record: &Record,
    ) -> Result<ResourceRecordSet, TrafficError> {
        let built = ResourceRecord::builder()
            .value(record.ip.to_string())
            .build()
            .and_then(|value| {
                ResourceRecordSet::builder()
                    .name(fqdn(endpoint))
                    .r#type(record_type(record.ip))
                    .set_identifier(id)
                    .weight(record.weight)
                    .ttl(record.ttl)
                    .resource_records(value)
                    .build()
            });
        built.map_err(|e| TrafficError::Route53 {
            endpoint: endpoint.to_string(),
            what: "building the change",
            message: e.to_string(),
        })
    }

    /// Applies `changes` as one atomic batch.
    async fn change(
        &self,
        endpoint: &str,
        what: &'static str,
        changes: Vec<(ChangeAction, &str, &Record)>,
    ) -> Result<(), TrafficError> {
        let mut batch = ChangeBatch::builder().comment(format!("rotor: {what}"));
        for (action, id, record) in changes {
            let change = Change::builder()
                .action(action)
                .resource_record_set(Self::record_set(endpoint, id, record)?)
                .build()
                .map_err(|e| TrafficError::Route53 {
                    endpoint: endpoint.to_string(),
                    what,
                    message: e.to_string(),
                })?;
            batch = batch.changes(change);
        }
        let batch = batch.build().map_err(|e| TrafficError::Route53 {
            endpoint: endpoint.to_string(),
            what,
            message: e.to_string(),
        })?;
        self.client
            .change_resource_record_sets()
            .hosted_zone_id(&self.zone)
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| Self::failed(endpoint, what, classify(&e)))?;
        Ok(())
    }

    fn weights_of(endpoint: &str, records: &Records) -> Result<Weights, TrafficError> {
        match (&records.blue, &records.green) {
            (None, _) => Err(TrafficError::UnknownEndpoint {
                endpoint: endpoint.to_string(),
            }),
            (Some(_), None) => Ok(Weights::all_blue()),
            (Some(b), Some(g)) => u8::try_from(b.weight)
                .ok()
                .zip(u8::try_from(g.weight).ok())
                .and_then(|(b, g)| Weights::new(b, g).ok())
                .ok_or_else(|| TrafficError::Verify {
                    endpoint: endpoint.to_string(),
                    what: "weights of the record sets",
                    expected: "blue + green = 100".into(),
                    found: format!(
                        "blue={} green={} (changed outside rotor?)",
                        b.weight, g.weight
                    ),
                }),
        }
    }
}

#[async_trait]
impl TrafficShifter for Route53Shifter {
    async fn register(
        &self,
        endpoint: &str,
        blue: SocketAddr,
        green: Option<SocketAddr>,
    ) -> Result<(), TrafficError> {
        validate_endpoint(endpoint)?;
        check_dns_backends(endpoint, blue, green)?;
        let current = self.read(endpoint).await?;
        // Re-registering keeps the split; a first registration sends everything to blue.
        let weights = match (&current.blue, &current.green, green) {
            (Some(_), Some(_), Some(_)) => Self::weights_of(endpoint, &current)?,
            _ => Weights::all_blue(),
        };
        let blue_record = Record {
            ip: blue.ip(),
            weight: weights.blue_pct().into(),
            ttl: self.ttl,
        };
        let green_record = green.map(|g| Record {
            ip: g.ip(),
            weight: weights.green_pct().into(),
            ttl: self.ttl,
        });
        let wanted = Records {
            blue: Some(blue_record.clone()),
            green: green_record.clone(),
        };
        if wanted == current {
            return Ok(());
        }
        let mut changes = Vec::new();
        // A record set cannot change type in place: an address family change deletes first.
        if let Some(old) = &current.blue
            && old.ip.is_ipv4() != blue.is_ipv4()
        {
            changes.push((ChangeAction::Delete, BLUE_ID, old));
        }
        changes.push((ChangeAction::Upsert, BLUE_ID, &blue_record));
        match (&green_record, &current.green) {
            (Some(new), old) => {
                if let Some(old) = old
                    && old.ip.is_ipv4() != new.ip.is_ipv4()
                {
                    changes.push((ChangeAction::Delete, GREEN_ID, old));
                }
                changes.push((ChangeAction::Upsert, GREEN_ID, new));
            }
            // Detaching green: Route 53 deletes only an exact copy of what it holds.
            (None, Some(old)) => changes.push((ChangeAction::Delete, GREEN_ID, old)),
            (None, None) => {}
        }
        self.change(endpoint, "registering the backends", changes)
            .await
    }

    async fn set_weights(&self, endpoint: &str, weights: Weights) -> Result<(), TrafficError> {
        validate_endpoint(endpoint)?;
        let current = self.read(endpoint).await?;
        let Some(blue) = &current.blue else {
            return Err(TrafficError::UnknownEndpoint {
                endpoint: endpoint.to_string(),
            });
        };
        let Some(green) = &current.green else {
            if weights.green_pct() > 0 {
                return Err(TrafficError::GreenNotRegistered {
                    endpoint: endpoint.to_string(),
                    green: weights.green_pct(),
                });
            }
            return Ok(());
        };
        let blue = Record {
            weight: weights.blue_pct().into(),
            ..blue.clone()
        };
        let green = Record {
            weight: weights.green_pct().into(),
            ..green.clone()
        };
        self.change(
            endpoint,
            "setting the weights",
            vec![
                (ChangeAction::Upsert, BLUE_ID, &blue),
                (ChangeAction::Upsert, GREEN_ID, &green),
            ],
        )
        .await?;
        let found = self.weights(endpoint).await?;
        if found != weights {
            return Err(TrafficError::Verify {
                endpoint: endpoint.to_string(),
                what: "weights",
                expected: weights.to_string(),
                found: found.to_string(),
            });
        }
        Ok(())
    }

    async fn weights(&self, endpoint: &str) -> Result<Weights, TrafficError> {
        validate_endpoint(endpoint)?;
        Self::weights_of(endpoint, &self.read(endpoint).await?)
    }

    /// Resolvers may answer with the old weights until the change has propagated and their
    /// cached answer (TTL) has expired.
    fn settle_time(&self) -> Duration {
        self.propagation + Duration::from_secs(u64::try_from(self.ttl).unwrap_or(0))
    }

    async fn backend_stats(&self, endpoint: &str) -> Result<BackendStats, TrafficError> {
        Err(TrafficError::NoRequestCounts {
            endpoint: endpoint.to_string(),
            shifter: "route53",
        })
    }

    /// DNS times no requests.
    async fn latencies(&self, endpoint: &str) -> Result<BackendLatencies, TrafficError> {
        Err(TrafficError::NoLatencies {
            endpoint: endpoint.to_string(),
            shifter: "route53",
        })
    }

    /// DNS sees no connections either: a drain behind Route 53 is its settle time.
    async fn sessions(&self, endpoint: &str) -> Result<Sessions, TrafficError> {
        Err(TrafficError::NoRequestCounts {
            endpoint: endpoint.to_string(),
            shifter: "route53",
        })
    }

    async fn unanswered(
        &self,
        endpoint: &str,
        _older_than: Duration,
    ) -> Result<Unanswered, TrafficError> {
        Err(TrafficError::NoRequestCounts {
            endpoint: endpoint.to_string(),
            shifter: "route53",
        })
    }
}
