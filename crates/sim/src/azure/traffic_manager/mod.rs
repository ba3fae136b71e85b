//! Azure Traffic Manager (`Microsoft.Network/trafficmanagerprofiles`, api-version 2022-04-01,
//! `specification/trafficmanager/resource-manager/Microsoft.Network/stable/2022-04-01`) as
//! rotor's `rotor-azure` client sees it under `/azure`: profiles (PUT, GET, DELETE) with their
//! endpoints inline, and external endpoints (PUT, GET, PATCH, DELETE). Every call is
//! synchronous (200/201, no long-running operation), as the specification has it.
//!
//! A profile is made by the operator (a PUT, as `az network traffic-manager profile create`
//! sends, or [`Sim::add_traffic_manager_profile`] in tests); rotor only writes endpoints in it.
//! The simulator serves no DNS and sends no health probes: endpoints stay `CheckingEndpoint`
//! (included in answers) unless disabled. Only `ExternalEndpoints` are served.
//!
//! Unlike the AKS front, the api-version is checked: the answers follow 2022-04-01 only.

mod model;
#[cfg(test)]
mod tests_http;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::errors::ArmError;
use super::path::{EndpointId, ProfileId};
use crate::Sim;
use model::{Endpoint, EndpointBody, Profile, ProfileBody, parse};

/// The one api-version this front answers in.
pub(crate) const API_VERSION: &str = "2022-04-01";
const PROFILE_KIND: &str = "Microsoft.Network/trafficManagerProfiles";

/// (subscription, group, profile), lowercase: ARM's names are case-insensitive.
type Key = (String, String, String);

/// Every subscription's Traffic Manager profiles.
#[derive(Default)]
pub(crate) struct TrafficManager {
    profiles: Mutex<BTreeMap<Key, Profile>>,
}

impl TrafficManager {
    fn profiles(&self) -> MutexGuard<'_, BTreeMap<Key, Profile>> {
        self.profiles.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The endpoints `name` (an FQDN in lower case) resolves to: those of the enabled weighted
    /// profile whose DNS name it is, enabled ones only, each by its weight, with the profile's
    /// TTL. Other routing methods are not modelled (rotor writes weighted profiles only).
    pub(crate) fn answer(&self, name: &str) -> Option<crate::dns::Answer> {
        let profiles = self.profiles();
        let profile = profiles.values().find(|p| {
            crate::dns::fqdn(&format!("{}.{}", p.relative_name, model::DNS_DOMAIN)) == name
        })?;
        if profile.status != "Enabled" || profile.routing != "Weighted" {
            return None;
        }
        let records = profile
            .endpoints
            .iter()
            .filter(|e| e.status == "Enabled")
            .map(|e| (e.target.as_str(), e.weight as f64, Some(profile.ttl)));
        crate::dns::Answer::of(records)
    }
}

impl Sim {
    /// Makes the Traffic Manager profile `name` in `subscription`/`group`: weighted routing,
    /// DNS name `{relative_name}.trafficmanager.net` with `ttl` seconds, HTTP probes on port 80,
    /// no endpoints. Replaces a profile of that name.
    pub fn add_traffic_manager_profile(
        &self,
        subscription: &str,
        group: &str,
        name: &str,
        relative_name: &str,
        ttl: i64,
    ) {
        let id = ProfileId {
            subscription: subscription.into(),
            group: group.into(),
            name: name.into(),
        };
        let body = json!({"location": "global", "properties": {
            "trafficRoutingMethod": "Weighted",
            "dnsConfig": {"relativeName": relative_name, "ttl": ttl},
            "monitorConfig": {"protocol": "HTTP", "port": 80, "path": "/"}}});
        let profile = serde_json::from_value(body)
            .map_err(|e| ArmError::invalid(e.to_string()))
            .and_then(|b| Profile::from_body(&id, b));
        match profile {
            Ok(p) => {
                self.traffic_manager.profiles().insert(id.key(), p);
            }
            Err(e) => panic!("add_traffic_manager_profile: {}", e.message),
        }
    }

    /// A profile exactly as the simulator holds and serves it (endpoints inline), or `None`:
    /// what tests compare a shifter's writes with.
    pub fn traffic_manager_profile(
        &self,
        subscription: &str,
        group: &str,
        name: &str,
    ) -> Option<Value> {
        let key = key_of(subscription, group, name);
        self.traffic_manager
            .profiles()
            .get(&key)
            .map(Profile::answer)
    }

    /// How many writes (PUT, PATCH, DELETE) a profile and its endpoints have taken since it was
    /// made (`None`: no such profile).
    pub fn traffic_manager_writes(
        &self,
        subscription: &str,
        group: &str,
        name: &str,
    ) -> Option<usize> {
        let key = key_of(subscription, group, name);
        self.traffic_manager.profiles().get(&key).map(|p| p.writes)
    }
}

fn key_of(subscription: &str, group: &str, name: &str) -> Key {
    (
        subscription.to_ascii_lowercase(),
        group.to_ascii_lowercase(),
        name.to_ascii_lowercase(),
    )
}

/// ARM's 400s for a request without the api-version, or with one this front does not speak.
fn check_api_version(query: Option<&str>) -> Result<(), ArmError> {
    let version = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "api-version")
        .map(|(_, v)| v.into_owned());
    match version.as_deref() {
        Some(API_VERSION) => Ok(()),
        None => Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )),
        Some(other) => Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "NoRegisteredProviderFound",
            format!(
                "No registered resource provider found for location 'global' and API version \
                 '{other}' for type 'trafficmanagerprofiles'. The supported api-versions are \
                 '{API_VERSION}'."
            ),
        )),
    }
}

fn profile_not_found(id: &ProfileId) -> ArmError {
    ArmError::not_found(PROFILE_KIND, &id.name, &id.group)
}

/// `…/trafficmanagerprofiles/{profile}`: PUT (201 made, 200 replaced), GET, DELETE (200, or
/// 204 when there was none).
pub(super) fn profile(
    sim: &Sim,
    id: &ProfileId,
    method: &Method,
    query: Option<&str>,
    body: &[u8],
) -> Result<Response, ArmError> {
    check_api_version(query)?;
    let mut profiles = sim.traffic_manager.profiles();
    let key = id.key();
    match *method {
        Method::GET => {
            let p = profiles.get(&key).ok_or_else(|| profile_not_found(id))?;
            Ok(Json(p.answer()).into_response())
        }
        Method::PUT => {
            let mut made = Profile::from_body(id, parse::<ProfileBody>(body)?)?;
            let replaced = profiles.remove(&key);
            let status = match &replaced {
                Some(old) => {
                    made.id = old.id.clone();
                    made.writes = old.writes + 1;
                    StatusCode::OK
                }
                None => StatusCode::CREATED,
            };
            let answer = made.answer();
            profiles.insert(key, made);
            Ok((status, Json(answer)).into_response())
        }
        Method::DELETE => Ok(match profiles.remove(&key) {
            Some(_) => Json(json!({})).into_response(),
            None => StatusCode::NO_CONTENT.into_response(),
        }),
        _ => Err(ArmError::no_route(method, &id.resource_id())),
    }
}

/// `…/trafficmanagerprofiles/{profile}/{endpointType}/{endpoint}`: PUT (201 made, 200
/// replaced), PATCH (merged into the endpoint), GET, DELETE (200, or 204 when there was none);
/// 404 naming the profile when it does not exist.
pub(super) fn endpoint(
    sim: &Sim,
    at: &EndpointId,
    method: &Method,
    query: Option<&str>,
    body: &[u8],
) -> Result<Response, ArmError> {
    check_api_version(query)?;
    let mut profiles = sim.traffic_manager.profiles();
    let profile = profiles
        .get_mut(&at.profile.key())
        .ok_or_else(|| profile_not_found(&at.profile))?;
    let index = profile.endpoint(&at.name);
    let (status, answer) = match (method, index) {
        (&Method::GET, Some(i)) => (StatusCode::OK, profile.endpoints[i].answer(profile)),
        (&Method::PUT, i) => put_endpoint(profile, at, i, parse(body)?)?,
        (&Method::PATCH, Some(i)) => {
            let base = profile.endpoints[i].clone();
            let e = Endpoint::from_body(parse(body)?, at.kind, &at.name, Some(&base), 0, "")?;
            profile.endpoints[i] = e;
            profile.writes += 1;
            (StatusCode::OK, profile.endpoints[i].answer(profile))
        }
        (&Method::DELETE, Some(i)) => {
            profile.endpoints.remove(i);
            profile.writes += 1;
            (StatusCode::OK, json!({}))
        }
        (&Method::DELETE, None) => return Ok(StatusCode::NO_CONTENT.into_response()),
        (&Method::GET | &Method::PATCH, None) => return Err(endpoint_not_found(at)),
        _ => return Err(ArmError::no_route(method, &at.name)),
    };
    Ok((status, Json(answer)).into_response())
}

/// A PUT replaces the endpoint whole: what it does not give takes its default (the priority:
/// the one it had, or for a new endpoint the lowest free one).
fn put_endpoint(
    profile: &mut Profile,
    at: &EndpointId,
    index: Option<usize>,
    body: EndpointBody,
) -> Result<(StatusCode, Value), ArmError> {
    let priority = index.map_or_else(
        || profile.free_priority(),
        |i| profile.endpoints[i].priority,
    );
    let mut e = Endpoint::from_body(body, at.kind, &at.name, None, priority, "")?;
    profile.writes += 1;
    let (status, i) = match index {
        Some(i) => {
            e.name = profile.endpoints[i].name.clone();
            profile.endpoints[i] = e;
            (StatusCode::OK, i)
        }
        None => {
            profile.endpoints.push(e);
            (StatusCode::CREATED, profile.endpoints.len() - 1)
        }
    };
    Ok((status, profile.endpoints[i].answer(profile)))
}

fn endpoint_not_found(at: &EndpointId) -> ArmError {
    let name = format!("{}/externalEndpoints/{}", at.profile.name, at.name);
    ArmError::not_found(PROFILE_KIND, &name, &at.profile.group)
}
