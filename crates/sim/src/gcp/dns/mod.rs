//! Cloud DNS v1 as `google-cloud-dns-v1` speaks it (`/gcp/dns/v1/projects/{p}/managedZones/…`):
//! managed zones (made by the test, [`Sim::add_managed_zone`], or by the operator through
//! `managedZones.create`; rotor creates none), their record sets (list with name/type filters and pages, get, create, patch,
//! delete) and changes (create, all or nothing; get). A change is `done` when answered: the
//! simulator serves no DNS, so nothing waits on name servers; a test may have a zone's
//! changes answer `pending` for a number of reads ([`Sim::dns_changes_pending_for`]), as
//! Cloud DNS does until a change reaches its name servers. The record sets change at once.
//!
//! Errors are Cloud DNS's older shape — `{"error": {code, message, status, errors: [{domain,
//! reason, message}]}}` — with the reasons its clients meet: `notFound` 404, `alreadyExists`
//! 409, `conditionNotMet` 412 (a deletion that is not an exact copy), `rateLimitExceeded` 429
//! (the cloud's rate-limit fault), `invalid` 400, and 401 without a bearer token.

mod rrset;
#[cfg(test)]
mod tests_http;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{GcpError, bearer, rfc3339_now};
use crate::Sim;
use crate::dns::fqdn;
use rrset::{ChangeBody, Key, Rrset};

/// (project, managed zone name).
type ZoneKey = (String, String);

/// The managed zones of every project.
#[derive(Default)]
pub(crate) struct CloudDns {
    zones: Mutex<BTreeMap<ZoneKey, Zone>>,
}

struct Zone {
    id: u64,
    /// `example.com.`: every record set's name ends with it.
    dns_name: String,
    creation_time: String,
    sets: BTreeMap<Key, Rrset>,
    /// Every change applied; id = index + 1.
    changes: Vec<Recorded>,
    /// How many reads each new change answers `pending` before `done`.
    pending_reads: u32,
}

/// A change as applied, and how many more reads answer it `pending`.
struct Recorded {
    answer: Value,
    pending_reads: u32,
}

impl Recorded {
    /// The change as `changes.create` / `changes.get` answer it now.
    fn answer(&self) -> Value {
        let mut answer = self.answer.clone();
        if self.pending_reads > 0 {
            answer["status"] = json!("pending");
            answer["isServing"] = json!(false);
        }
        answer
    }
}

impl CloudDns {
    fn zones(&self) -> MutexGuard<'_, BTreeMap<ZoneKey, Zone>> {
        self.zones.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The address records of `name` (an FQDN in lower case) in every zone: a weighted
    /// round-robin set weighs each item's data by the item's weight, a plain one each datum
    /// alike.
    pub(crate) fn answer(&self, name: &str) -> Option<crate::dns::Answer> {
        let zones = self.zones();
        let sets = zones
            .values()
            .flat_map(|z| z.sets.values())
            .filter(|s| s.name == name && matches!(s.kind.as_str(), "A" | "AAAA"));
        let mut records: Vec<(&str, f64, Option<i64>)> = Vec::new();
        for set in sets {
            match set.routing_policy.as_ref().and_then(|p| p.wrr.as_ref()) {
                Some(wrr) => records.extend(wrr.items.iter().flat_map(|item| {
                    let weight = item.weight.unwrap_or(0.0);
                    item.rrdatas
                        .iter()
                        .map(move |d| (d.as_str(), weight, set.ttl))
                })),
                None => records.extend(set.rrdatas.iter().map(|d| (d.as_str(), 1.0, set.ttl))),
            }
        }
        crate::dns::Answer::of(records)
    }
}

impl Sim {
    /// Makes the public managed zone `zone` for `dns_name` (`example.com`) in `project`, with
    /// the SOA and NS record sets Cloud DNS gives a new zone. Replaces a zone of that name.
    pub fn add_managed_zone(&self, project: &str, zone: &str, dns_name: &str) {
        let dns_name = fqdn(dns_name);
        let soa = Rrset {
            name: dns_name.clone(),
            kind: "SOA".into(),
            ttl: Some(21600),
            rrdatas: vec![
                "ns-cloud-a1.rotor-sim. cloud-dns-hostmaster.google.com. 1 21600 3600 259200 300"
                    .into(),
            ],
            ..Rrset::default()
        };
        let ns = Rrset {
            kind: "NS".into(),
            rrdatas: vec!["ns-cloud-a1.rotor-sim.".into()],
            ..soa.clone()
        };
        let mut zones = self.clouddns.zones();
        let id = zones.len() as u64 + 1;
        zones.insert(
            (project.to_string(), zone.to_string()),
            Zone {
                id,
                dns_name,
                creation_time: rfc3339_now(),
                sets: [soa, ns].into_iter().map(|s| (s.key(), s)).collect(),
                changes: Vec::new(),
                pending_reads: 0,
            },
        );
    }

    /// The record set (`name`, `type`) of a managed zone exactly as the simulator holds and
    /// serves it, or `None`: what tests compare a shifter's writes with.
    pub fn dns_rrset(&self, project: &str, zone: &str, name: &str, kind: &str) -> Option<Value> {
        let zones = self.clouddns.zones();
        let zone = zones.get(&(project.to_string(), zone.to_string()))?;
        let key = (fqdn(name), kind.to_string());
        zone.sets.get(&key).map(Rrset::answer)
    }

    /// Makes every change to the zone from now on answer `pending` to its creation and to
    /// its first `reads` reads (`u32::MAX`: never done), `done` after.
    pub fn dns_changes_pending_for(&self, project: &str, zone: &str, reads: u32) {
        let mut zones = self.clouddns.zones();
        if let Some(zone) = zones.get_mut(&(project.to_string(), zone.to_string())) {
            zone.pending_reads = reads;
        }
    }

    /// How many of a zone's changes still answer `pending` (`None`: no such zone).
    pub fn dns_changes_pending(&self, project: &str, zone: &str) -> Option<usize> {
        let zones = self.clouddns.zones();
        let zone = zones.get(&(project.to_string(), zone.to_string()))?;
        Some(zone.changes.iter().filter(|c| c.pending_reads > 0).count())
    }

    /// How many changes a managed zone has applied (`None`: no such zone).
    pub fn dns_changes_applied(&self, project: &str, zone: &str) -> Option<usize> {
        let zones = self.clouddns.zones();
        zones
            .get(&(project.to_string(), zone.to_string()))
            .map(|z| z.changes.len())
    }
}

impl GcpError {
    fn not_found_named(field: &str, name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("The '{field}' resource named '{name}' does not exist."),
        )
        .with_reason("notFound")
    }

    fn already_exists_named(field: &str, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "ALREADY_EXISTS",
            format!("The resource '{field}' named '{name}' already exists"),
        )
        .with_reason("alreadyExists")
    }

    fn condition_not_met(field: &str) -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "FAILED_PRECONDITION",
            format!("Precondition not met for '{field}'"),
        )
        .with_reason("conditionNotMet")
    }

    fn dns_rate_limited() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RESOURCE_EXHAUSTED",
            "Rate limit exceeded for quota metric 'Requests' of service 'dns.googleapis.com' \
             (simulated rate limit).",
        )
        .with_reason("rateLimitExceeded")
    }
}

/// Who calls (401 without a token), then the cloud's rate-limit fault: every request's gate.
fn admit(sim: &Sim, headers: &HeaderMap) -> Result<(), GcpError> {
    bearer(headers).map_err(|e| e.with_reason("required"))?;
    match sim.cloud.take_rate_limit() {
        Some(retry_after) => Err(GcpError {
            retry_after,
            ..GcpError::dns_rate_limited()
        }),
        None => Ok(()),
    }
}

/// Runs `f` on the zone, or answers Cloud DNS's 404 for a zone that does not exist.
fn with_zone<T>(
    sim: &Sim,
    (project, zone): &ZoneKey,
    f: impl FnOnce(&mut Zone) -> Result<T, GcpError>,
) -> Result<T, GcpError> {
    let mut zones = sim.clouddns.zones();
    let found = zones
        .get_mut(&(project.clone(), zone.clone()))
        .ok_or_else(|| GcpError::not_found_named("parameters.managedZone", zone))?;
    f(found)
}

pub(super) fn routes() -> axum::Router<Arc<Sim>> {
    let zone = "/projects/{project}/managedZones/{zone}";
    axum::Router::new()
        .route(
            "/projects/{project}/managedZones",
            get(list_zones).post(create_zone),
        )
        .route(zone, get(get_zone))
        .route(
            &format!("{zone}/rrsets"),
            get(list_rrsets).post(create_rrset),
        )
        .route(
            &format!("{zone}/rrsets/{{name}}/{{type}}"),
            get(get_rrset).patch(patch_rrset).delete(delete_rrset),
        )
        .route(
            &format!("{zone}/changes"),
            axum::routing::post(create_change),
        )
        .route(&format!("{zone}/changes/{{id}}"), get(get_change))
}

fn zone_json(project: &str, name: &str, zone: &Zone) -> Value {
    json!({
        "kind": "dns#managedZone",
        "name": name,
        "id": zone.id.to_string(),
        "dnsName": zone.dns_name,
        "description": format!("simulated zone of project {project}"),
        "visibility": "public",
        "creationTime": zone.creation_time,
        "nameServers": ["ns-cloud-a1.rotor-sim."],
    })
}

async fn list_zones(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(project): Path<String>,
) -> Result<Json<Value>, GcpError> {
    admit(&sim, &headers)?;
    let zones = sim.clouddns.zones();
    let listed: Vec<Value> = zones
        .iter()
        .filter(|((p, _), _)| *p == project)
        .map(|((p, name), zone)| zone_json(p, name, zone))
        .collect();
    Ok(Json(
        json!({"kind": "dns#managedZonesListResponse", "managedZones": listed}),
    ))
}

/// The fields of `managedZones.create` the simulator uses.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewZone {
    #[serde(default)]
    name: String,
    #[serde(default)]
    dns_name: String,
}

/// `managedZones.create`, as `gcloud dns managed-zones create` sends it: how a user of `rotor
/// sim` makes the zone `--traffic clouddns:` shifts in. 409 when the name is taken.
async fn create_zone(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(project): Path<String>,
    text: String,
) -> Result<Json<Value>, GcpError> {
    admit(&sim, &headers)?;
    let new: NewZone = body(&text, "managedZone")?;
    if new.name.is_empty() || new.dns_name.is_empty() {
        return Err(GcpError::invalid(
            "Invalid value for 'entity.managedZone': name and dnsName are required",
        )
        .with_reason("invalid"));
    }
    let key = (project.clone(), new.name.clone());
    if sim.clouddns.zones().contains_key(&key) {
        return Err(GcpError::already_exists_named(
            "entity.managedZone",
            &new.name,
        ));
    }
    sim.add_managed_zone(&project, &new.name, &new.dns_name);
    with_zone(&sim, &key, |zone| Ok(Json(zone_json(&key.0, &key.1, zone))))
}

async fn get_zone(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(key): Path<ZoneKey>,
) -> Result<Json<Value>, GcpError> {
    admit(&sim, &headers)?;
    with_zone(&sim, &key, |zone| Ok(Json(zone_json(&key.0, &key.1, zone))))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    max_results: Option<usize>,
    page_token: Option<String>,
}

async fn list_rrsets(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(key): Path<ZoneKey>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, GcpError> {
    admit(&sim, &headers)?;
    if q.kind.is_some() && q.name.is_none() {
        return Err(GcpError::invalid(
            "Invalid value for 'parameters.type': the name parameter is required with type.",
        )
        .with_reason("invalid"));
    }
    let start = match q.page_token.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => Some(rrset::from_page_token(t).ok_or_else(|| {
            GcpError::invalid("Invalid value for 'parameters.pageToken'.").with_reason("invalid")
        })?),
        None => None,
    };
    let name = q.name.as_deref().map(fqdn);
    let max = q.max_results.filter(|m| *m > 0).unwrap_or(usize::MAX);
    with_zone(&sim, &key, |zone| {
        let mut matching = zone
            .sets
            .iter()
            .filter(|(k, _)| start.as_ref().is_none_or(|s| *k >= s))
            .filter(|(k, _)| name.as_ref().is_none_or(|n| k.0 == *n))
            .filter(|(k, _)| q.kind.as_ref().is_none_or(|t| k.1 == *t));
        let page: Vec<Value> = matching
            .by_ref()
            .take(max)
            .map(|(_, s)| s.answer())
            .collect();
        let mut answer = json!({"kind": "dns#resourceRecordSetsListResponse", "rrsets": page});
        if let Some((next, _)) = matching.next() {
            answer["nextPageToken"] = json!(rrset::page_token(next));
        }
        Ok(Json(answer))
    })
}

/// Applies `change` to the zone all or nothing and records it; the change as answered.
fn commit(zone: &mut Zone, change: &ChangeBody) -> Result<Value, GcpError> {
    zone.sets = rrset::apply(&zone.dns_name, &zone.sets, change)?;
    let answered = json!({
        "kind": "dns#change",
        "id": (zone.changes.len() + 1).to_string(),
        "status": "done",
        "isServing": true,
        "startTime": rfc3339_now(),
        "additions": change.additions.iter().map(Rrset::answer).collect::<Vec<_>>(),
        "deletions": change.deletions.iter().map(Rrset::answer).collect::<Vec<_>>(),
    });
    let recorded = Recorded {
        answer: answered,
        pending_reads: zone.pending_reads,
    };
    let answer = recorded.answer();
    zone.changes.push(recorded);
    Ok(answer)
}

/// The request's body as `T`, or a 400 naming what is wrong.
fn body<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, GcpError> {
    serde_json::from_str(text).map_err(|e| {
        GcpError::invalid(format!("Invalid JSON payload for '{what}': {e}"))
            .with_reason("parseError")
    })
}

async fn create_rrset(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(key): Path<ZoneKey>,
    text: String,
) -> Result<Json<Value>, GcpError> {
    admit(&sim, &headers)?;
    let set = body::<Rrset>(&text, "entity.rrset")?.normalised();
    with_zone(&sim, &key, |zone| {
        rrset::validate(&zone.dns_name, &set, "entity.rrset")?;
        if zone.sets.contains_key(&set.key()) {
            return Err(GcpError::already_exists_named("entity.rrset", &set.label()));
        }
        let change = ChangeBody {
            additions: vec![set.clone()],
            ..ChangeBody::default()
        };
        commit(zone, &change)?;
        Ok(Json(set.answer()))
    })
}

/// (project, zone, name, type) of a record set's path.
type SetPath = (String, String, String, String);

fn split((project, zone, name, kind): SetPath) -> (ZoneKey, Key) {
    ((project, zone), (fqdn(&name), kind))
}

async fn get_rrset(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(path): Path<SetPath>,
) -> Result<Json<Value>, GcpError> {
    admit(&sim, &headers)?;
    let (zone_key, key) = split(path);
    with_zone(&sim, &zone_key, |zone| {
        let set = zone.sets.get(&key).ok_or_else(|| not_found_set(&key))?;
        Ok(Json(set.answer()))
    })
}

fn not_found_set((name, kind): &Key) -> GcpError {
    GcpError::not_found_named("parameters.name", &format!("{name} ({kind})"))
}

/// A patch replaces the fields it gives; giving a routing policy drops the plain data (and
/// the other way round) unless both are given, which validation then refuses.
fn patched(held: &Rrset, patch: &Value) -> Result<Rrset, GcpError> {
    let mut merged = serde_json::to_value(held).unwrap_or_else(|_| json!({}));
    let has = |k: &str| patch.get(k).is_some_and(|v| !v.is_null());
    if has("routingPolicy") && !has("rrdatas") {
        merged["rrdatas"] = json!([]);
    }
    if has("rrdatas") && !has("routingPolicy") {
        merged["routingPolicy"] = Value::Null;
    }
    for field in ["ttl", "rrdatas", "signatureRrdatas", "routingPolicy"] {
        if has(field) {
            merged[field] = patch[field].clone();
        }
    }
    let mut set: Rrset = serde_json::from_value(merged).map_err(|e| {
        GcpError::invalid(format!("Invalid value for 'entity.rrset': {e}")).with_reason("invalid")
    })?;
    set.name = held.name.clone();
    set.kind = held.kind.clone();
    Ok(set)
}

async fn patch_rrset(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(path): Path<SetPath>,
    text: String,
) -> Result<Json<Value>, GcpError> {
    admit(&sim, &headers)?;
    let patch: Value = body(&text, "entity.rrset")?;
    let (zone_key, key) = split(path);
    let renamed = |field: &str, held: &str| {
        patch[field]
            .as_str()
            .is_some_and(|v| !v.is_empty() && fqdn_or_type(field, v) != held)
    };
    if renamed("name", &key.0) || renamed("type", &key.1) {
        return Err(GcpError::invalid(
            "Invalid value for 'entity.rrset': a patch cannot change a record set's name or type.",
        )
        .with_reason("invalid"));
    }
    with_zone(&sim, &zone_key, |zone| {
        let held = zone.sets.get(&key).ok_or_else(|| not_found_set(&key))?;
        let set = patched(held, &patch)?;
        let change = ChangeBody {
            deletions: vec![held.clone()],
            additions: vec![set.clone()],
        };
        commit(zone, &change)?;
        Ok(Json(set.answer()))
    })
}

fn fqdn_or_type(field: &str, v: &str) -> String {
    if field == "name" {
        fqdn(v)
    } else {
        v.to_string()
    }
}

async fn delete_rrset(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(path): Path<SetPath>,
) -> Result<Json<Value>, GcpError> {
    admit(&sim, &headers)?;
    let (zone_key, key) = split(path);
    with_zone(&sim, &zone_key, |zone| {
        let held = zone.sets.get(&key).ok_or_else(|| not_found_set(&key))?;
        let change = ChangeBody {
            deletions: vec![held.clone()],
            ..ChangeBody::default()
        };
        commit(zone, &change)?;
        Ok(Json(json!({})))
    })
}

async fn create_change(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(key): Path<ZoneKey>,
    text: String,
) -> Result<Json<Value>, GcpError> {
    admit(&sim, &headers)?;
    let mut change: ChangeBody = body(&text, "entity.change")?;
    for set in change
        .additions
        .iter_mut()
        .chain(change.deletions.iter_mut())
    {
        *set = std::mem::take(set).normalised();
    }
    with_zone(&sim, &key, |zone| commit(zone, &change).map(Json))
}

async fn get_change(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path((project, zone, id)): Path<(String, String, String)>,
) -> Result<Json<Value>, GcpError> {
    admit(&sim, &headers)?;
    with_zone(&sim, &(project, zone), |zone| {
        let change = id
            .parse::<usize>()
            .ok()
            .and_then(|n| zone.changes.get_mut(n.checked_sub(1)?))
            .ok_or_else(|| GcpError::not_found_named("parameters.changeId", &id))?;
        let answer = change.answer();
        change.pending_reads = change.pending_reads.saturating_sub(1);
        Ok(Json(answer))
    })
}
