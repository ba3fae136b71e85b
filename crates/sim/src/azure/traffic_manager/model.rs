//! Traffic Manager's objects as the REST specification shapes them
//! (`Microsoft.Network/stable/2022-04-01/trafficmanager.json`, its `Profile`, `Endpoint`,
//! `DnsConfig` and `MonitorConfig`): the request bodies read, the rules checked — each refusal
//! naming the field as the body spells it — and the answers written.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::super::errors::ArmError;
use super::super::path::{EndpointType, ProfileId};

/// The routing methods of the specification's `TrafficRoutingMethod`.
const ROUTING_METHODS: &[&str] = &[
    "Performance",
    "Priority",
    "Weighted",
    "Geographic",
    "MultiValue",
    "Subnet",
];
const MONITOR_PROTOCOLS: &[&str] = &["HTTP", "HTTPS", "TCP"];
/// Endpoint `weight` and `priority`: "Possible values are from 1 to 1000".
const RANGE_1_1000: std::ops::RangeInclusive<i64> = 1..=1000;
/// Custom headers: "up to eight header:value pairs" (Azure's monitoring documentation).
const MAX_CUSTOM_HEADERS: usize = 8;
/// The domain of profiles' FQDNs in Azure's public cloud.
pub(super) const DNS_DOMAIN: &str = "trafficmanager.net";
/// The TTL of a profile created without one: the simulator's choice (the spec sets none).
const DEFAULT_TTL: i64 = 30;

/// One of a header list's `{name, value}` pairs (`EndpointPropertiesCustomHeadersItem`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub(super) struct CustomHeader {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
}

/// `EndpointProperties` as a request gives them: every field optional (PATCH merges).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct EndpointProps {
    target: Option<String>,
    target_resource_id: Option<String>,
    endpoint_status: Option<String>,
    weight: Option<i64>,
    priority: Option<i64>,
    endpoint_location: Option<String>,
    custom_headers: Option<Vec<CustomHeader>>,
}

/// An `Endpoint` body (PUT, PATCH, or one of a profile's `endpoints`).
#[derive(Debug, Default, Deserialize)]
pub(super) struct EndpointBody {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    properties: EndpointProps,
}

/// An external endpoint as the simulator keeps it.
#[derive(Clone, Debug)]
pub(super) struct Endpoint {
    /// As created; matched in any case.
    pub name: String,
    pub target: String,
    /// `Enabled` or `Disabled`.
    pub status: &'static str,
    pub weight: i64,
    pub priority: i64,
    pub location: Option<String>,
    pub custom_headers: Vec<CustomHeader>,
}

/// A profile as the simulator keeps it.
#[derive(Clone, Debug)]
pub(super) struct Profile {
    pub id: ProfileId,
    pub location: String,
    pub tags: BTreeMap<String, String>,
    /// `Enabled` or `Disabled`.
    pub status: &'static str,
    pub routing: &'static str,
    pub relative_name: String,
    pub ttl: i64,
    /// As given, with the defaults the service fills in.
    pub monitor: Value,
    /// In the order they were made.
    pub endpoints: Vec<Endpoint>,
    /// Writes applied to the profile or its endpoints (what tests count).
    pub writes: usize,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DnsConfig {
    relative_name: Option<String>,
    ttl: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileProps {
    profile_status: Option<String>,
    traffic_routing_method: Option<String>,
    #[serde(default)]
    dns_config: DnsConfig,
    monitor_config: Option<Value>,
    endpoints: Option<Vec<EndpointBody>>,
}

/// A `Profile` body (PUT).
#[derive(Debug, Deserialize)]
pub(super) struct ProfileBody {
    location: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    properties: ProfileProps,
}

/// A body of type `T`, or ARM's 400 for content it cannot read.
pub(super) fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ArmError> {
    serde_json::from_slice(body)
        .map_err(|e| ArmError::invalid(format!("The request content was invalid: {e}")))
}

/// `value` as one of `allowed` (matched in any case, answered as the spec spells it).
fn one_of(field: &str, value: &str, allowed: &[&'static str]) -> Result<&'static str, ArmError> {
    allowed
        .iter()
        .find(|a| a.eq_ignore_ascii_case(value))
        .copied()
        .ok_or_else(|| {
            ArmError::invalid(format!(
                "{field} {value:?} is invalid: it must be one of {}.",
                allowed.join(", ")
            ))
        })
}

fn in_range(field: &str, value: i64) -> Result<i64, ArmError> {
    if RANGE_1_1000.contains(&value) {
        return Ok(value);
    }
    Err(ArmError::invalid(format!(
        "{field} {value} is out of range: it must be between 1 and 1000."
    )))
}

impl Endpoint {
    /// The endpoint a PUT (`base: None`: defaults, `default_priority`) or a PATCH (`base`: the
    /// endpoint now) asks for, checked; `at` prefixes the fields' names in refusals (`` or
    /// `properties.endpoints[0].`).
    pub fn from_body(
        body: EndpointBody,
        kind: EndpointType,
        name: &str,
        base: Option<&Endpoint>,
        default_priority: i64,
        at: &str,
    ) -> Result<Endpoint, ArmError> {
        if kind != EndpointType::External {
            return Err(ArmError::invalid(format!(
                "The simulator serves ExternalEndpoints only, not {}.",
                kind.segment()
            )));
        }
        if let Some(t) = body.kind.as_deref()
            && !t.to_ascii_lowercase().ends_with("/externalendpoints")
        {
            return Err(ArmError::invalid(format!(
                "{at}type {t:?} does not match the path's ExternalEndpoints."
            )));
        }
        let p = body.properties;
        if p.target_resource_id.is_some() {
            return Err(ArmError::invalid(format!(
                "{at}properties.targetResourceId is not applicable to endpoints of type \
                 'ExternalEndpoints'."
            )));
        }
        let field = |f: &str| format!("{at}properties.{f}");
        let mut e = base.cloned().unwrap_or_else(|| Endpoint {
            name: name.to_string(),
            target: String::new(),
            status: "Enabled",
            weight: 1,
            priority: default_priority,
            location: None,
            custom_headers: Vec::new(),
        });
        if let Some(t) = p.target {
            e.target = t.trim().to_string();
        }
        if let Some(s) = p.endpoint_status {
            e.status = one_of(&field("endpointStatus"), &s, &["Enabled", "Disabled"])?;
        }
        if let Some(w) = p.weight {
            e.weight = in_range(&field("weight"), w)?;
        }
        if let Some(v) = p.priority {
            e.priority = in_range(&field("priority"), v)?;
        }
        if p.endpoint_location.is_some() {
            e.location = p.endpoint_location;
        }
        if let Some(headers) = p.custom_headers {
            check_headers(&field("customHeaders"), &headers)?;
            e.custom_headers = headers;
        }
        if e.target.is_empty() {
            return Err(ArmError::invalid(format!(
                "{} is required for an external endpoint.",
                field("target")
            )));
        }
        Ok(e)
    }

    /// The endpoint as Traffic Manager answers it.
    pub fn answer(&self, profile: &Profile) -> Value {
        let monitor = if profile.status == "Disabled" {
            "Inactive"
        } else if self.status == "Disabled" {
            "Disabled"
        } else {
            // The simulator sends no health probes, so an endpoint stays in its first state:
            // one Traffic Manager includes in its answers.
            "CheckingEndpoint"
        };
        let mut properties = json!({
            "endpointStatus": self.status,
            "endpointMonitorStatus": monitor,
            "target": self.target,
            "weight": self.weight,
            "priority": self.priority,
        });
        if let Some(l) = &self.location {
            properties["endpointLocation"] = json!(l);
        }
        if !self.custom_headers.is_empty() {
            properties["customHeaders"] = json!(self.custom_headers);
        }
        json!({
            "id": format!("{}/externalEndpoints/{}", profile.id.resource_id(), self.name),
            "name": self.name,
            "type": "Microsoft.Network/trafficManagerProfiles/externalEndpoints",
            "properties": properties,
        })
    }
}

fn check_headers(field: &str, headers: &[CustomHeader]) -> Result<(), ArmError> {
    if headers.len() > MAX_CUSTOM_HEADERS {
        return Err(ArmError::invalid(format!(
            "{field} holds {} headers: at most {MAX_CUSTOM_HEADERS} are allowed.",
            headers.len()
        )));
    }
    if let Some(i) = headers.iter().position(|h| h.name.trim().is_empty()) {
        return Err(ArmError::invalid(format!("{field}[{i}].name is required.")));
    }
    Ok(())
}

impl Profile {
    /// The profile a PUT asks for, checked, endpoints included.
    pub fn from_body(id: &ProfileId, body: ProfileBody) -> Result<Profile, ArmError> {
        let location = body.location.unwrap_or_default();
        if !location.eq_ignore_ascii_case("global") {
            return Err(ArmError::invalid(format!(
                "location {location:?} is invalid: a Traffic Manager profile's location is \
                 'global'."
            )));
        }
        let p = body.properties;
        let routing = one_of(
            "properties.trafficRoutingMethod",
            p.traffic_routing_method.as_deref().unwrap_or_default(),
            ROUTING_METHODS,
        )?;
        let status = match p.profile_status.as_deref() {
            None => "Enabled",
            Some(s) => one_of("properties.profileStatus", s, &["Enabled", "Disabled"])?,
        };
        let relative_name = p.dns_config.relative_name.unwrap_or_default();
        if relative_name.trim().is_empty() {
            return Err(ArmError::invalid(
                "properties.dnsConfig.relativeName is required.",
            ));
        }
        let ttl = p.dns_config.ttl.unwrap_or(DEFAULT_TTL);
        if !(0..=i64::from(i32::MAX)).contains(&ttl) {
            return Err(ArmError::invalid(format!(
                "properties.dnsConfig.ttl {ttl} is out of range: it must be between 0 and {}.",
                i32::MAX
            )));
        }
        let mut profile = Profile {
            id: id.clone(),
            location: "global".into(),
            tags: body.tags,
            status,
            routing,
            relative_name: relative_name.to_ascii_lowercase(),
            ttl,
            monitor: monitor_config(p.monitor_config.unwrap_or_else(|| json!({})))?,
            endpoints: Vec::new(),
            writes: 0,
        };
        for (i, e) in p.endpoints.unwrap_or_default().into_iter().enumerate() {
            let at = format!("properties.endpoints[{i}].");
            let name = e.name.clone().unwrap_or_default();
            if name.trim().is_empty() || profile.endpoint(&name).is_some() {
                return Err(ArmError::invalid(format!(
                    "{at}name {name:?} is missing or not unique in the profile."
                )));
            }
            let free = profile.free_priority();
            let endpoint = Endpoint::from_body(e, EndpointType::External, &name, None, free, &at)?;
            profile.endpoints.push(endpoint);
        }
        Ok(profile)
    }

    /// The endpoint named `name`, in any case.
    pub fn endpoint(&self, name: &str) -> Option<usize> {
        self.endpoints
            .iter()
            .position(|e| e.name.eq_ignore_ascii_case(name))
    }

    /// The lowest priority no endpoint has: what a new endpoint without one gets (the
    /// simulator's choice; the spec wants priorities distinct when given).
    pub fn free_priority(&self) -> i64 {
        (1..=1000)
            .find(|p| self.endpoints.iter().all(|e| e.priority != *p))
            .unwrap_or(1000)
    }

    /// The profile as Traffic Manager answers it, endpoints inline.
    pub fn answer(&self) -> Value {
        let mut monitor = self.monitor.clone();
        monitor["profileMonitorStatus"] = json!(self.monitor_status());
        let endpoints: Vec<Value> = self.endpoints.iter().map(|e| e.answer(self)).collect();
        json!({
            "id": self.id.resource_id(),
            "name": self.id.name,
            "type": "Microsoft.Network/trafficManagerProfiles",
            "location": self.location,
            "tags": self.tags,
            "properties": {
                "profileStatus": self.status,
                "trafficRoutingMethod": self.routing,
                "dnsConfig": {
                    "relativeName": self.relative_name,
                    "fqdn": format!("{}.{DNS_DOMAIN}", self.relative_name),
                    "ttl": self.ttl,
                },
                "monitorConfig": monitor,
                "endpoints": endpoints,
            },
        })
    }

    /// `profileMonitorStatus` as Azure's monitoring documentation derives it, for a simulator
    /// that probes nothing (every enabled endpoint is still being checked).
    fn monitor_status(&self) -> &'static str {
        if self.status == "Disabled" {
            "Disabled"
        } else if self.endpoints.iter().any(|e| e.status == "Enabled") {
            "CheckingEndpoints"
        } else {
            "Inactive"
        }
    }
}

/// `monitorConfig` as given, checked, with Azure's documented defaults (probing every 30 s,
/// 10 s timeout, 3 tolerated failures).
fn monitor_config(mut m: Value) -> Result<Value, ArmError> {
    if !m.is_object() {
        return Err(ArmError::invalid(
            "properties.monitorConfig must be an object.",
        ));
    }
    let protocol = match m["protocol"].as_str() {
        Some(p) => one_of("properties.monitorConfig.protocol", p, MONITOR_PROTOCOLS)?,
        None => "HTTP",
    };
    m["protocol"] = json!(protocol);
    if protocol == "TCP" && m.get("path").is_some_and(|p| !p.is_null()) {
        return Err(ArmError::invalid(
            "properties.monitorConfig.path must not be given for the TCP protocol.",
        ));
    }
    if let Some(port) = m.get("port").filter(|p| !p.is_null())
        && !port.as_i64().is_some_and(|p| (1..=65535).contains(&p))
    {
        return Err(ArmError::invalid(format!(
            "properties.monitorConfig.port {port} is out of range: it must be between 1 and \
             65535."
        )));
    }
    for (field, default) in [
        ("intervalInSeconds", 30),
        ("timeoutInSeconds", 10),
        ("toleratedNumberOfFailures", 3),
    ] {
        if m.get(field).is_none_or(Value::is_null) {
            m[field] = json!(default);
        }
    }
    Ok(m)
}
