//! Cloud DNS's record sets as the simulator keeps them, the checks Cloud DNS makes on one, and
//! a change applied all or nothing. Pure: no locks, no HTTP, so the rules are tested alone.
//!
//! A record set is keyed by (name, type); `kind` fields a client sends back are ignored, so a
//! deletion "matches existing data exactly" when name, type, TTL, data and routing policy do.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::super::GcpError;

/// (name, type): one record set per pair in a zone.
pub(super) type Key = (String, String);

/// A `ResourceRecordSet` (Cloud DNS v1), without its `kind`s.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Rrset {
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rrdatas: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signature_rrdatas: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_policy: Option<RoutingPolicy>,
}

/// `RRSetRoutingPolicy`: weighted round robin is modelled; geo and primary-backup policies
/// are kept as sent (rotor writes neither).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RoutingPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrr: Option<Wrr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_backup: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub(super) struct Wrr {
    #[serde(default)]
    pub items: Vec<WrrItem>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WrrItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rrdatas: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signature_rrdatas: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_checked_targets: Option<Value>,
}

impl Rrset {
    pub fn key(&self) -> Key {
        (self.name.clone(), self.kind.clone())
    }

    /// Names as Cloud DNS keeps them: lower case (DNS names are case-insensitive).
    pub fn normalised(mut self) -> Self {
        self.name = self.name.to_ascii_lowercase();
        self
    }

    /// `name (TYPE)`, as Cloud DNS names a record set in its messages.
    pub fn label(&self) -> String {
        format!("{} ({})", self.name, self.kind)
    }

    /// The record set as Cloud DNS answers it, with the `kind` of every object.
    pub fn answer(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or_else(|_| json!({}));
        v["kind"] = json!("dns#resourceRecordSet");
        if let Some(policy) = v.get_mut("routingPolicy") {
            policy["kind"] = json!("dns#rRSetRoutingPolicy");
            if let Some(wrr) = policy.get_mut("wrr") {
                wrr["kind"] = json!("dns#rRSetRoutingPolicyWrrPolicy");
                if let Some(items) = wrr.get_mut("items").and_then(Value::as_array_mut) {
                    for item in items {
                        item["kind"] = json!("dns#rRSetRoutingPolicyWrrPolicyWrrPolicyItem");
                    }
                }
            }
        }
        v
    }
}

fn invalid(field: &str, why: impl std::fmt::Display) -> GcpError {
    GcpError::invalid(format!("Invalid value for '{field}': {why}")).with_reason("invalid")
}

/// Cloud DNS's checks on a record set written to the zone `dns_name` (`example.com.`);
/// `field` names it in the message (`entity.change.additions[0]`).
pub(super) fn validate(dns_name: &str, set: &Rrset, field: &str) -> Result<(), GcpError> {
    let in_zone = set.name == dns_name || set.name.ends_with(&format!(".{dns_name}"));
    if set.name.is_empty() || !set.name.ends_with('.') || !in_zone {
        return Err(invalid(
            &format!("{field}.name"),
            format!(
                "{:?} is not a fully qualified name within the zone's {dns_name:?}",
                set.name
            ),
        ));
    }
    if set.kind.is_empty() || !set.kind.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(invalid(
            &format!("{field}.type"),
            format!("{:?} is not a record type", set.kind),
        ));
    }
    if set.ttl.is_some_and(|t| t < 0) {
        return Err(invalid(&format!("{field}.ttl"), "must not be negative"));
    }
    match (&set.routing_policy, set.rrdatas.is_empty()) {
        (Some(_), false) => Err(invalid(
            field,
            "a record set has rrdatas or a routingPolicy, not both",
        )),
        (None, true) => Err(invalid(
            &format!("{field}.rrdatas"),
            "a record set needs rrdatas or a routingPolicy",
        )),
        (None, false) => check_data(&set.kind, &set.rrdatas, &format!("{field}.rrdatas")),
        (Some(policy), true) => validate_policy(set, policy, &format!("{field}.routingPolicy")),
    }
}

fn validate_policy(set: &Rrset, policy: &RoutingPolicy, field: &str) -> Result<(), GcpError> {
    let kinds = [
        policy.wrr.is_some(),
        policy.geo.is_some(),
        policy.primary_backup.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        return Err(invalid(
            field,
            "exactly one of wrr, geo and primaryBackup is required",
        ));
    }
    let Some(wrr) = &policy.wrr else {
        return Ok(());
    };
    if wrr.items.is_empty() {
        return Err(invalid(&format!("{field}.wrr.items"), "must not be empty"));
    }
    for (i, item) in wrr.items.iter().enumerate() {
        let at = format!("{field}.wrr.items[{i}]");
        match item.weight {
            Some(w) if w.is_finite() && w >= 0.0 => {}
            Some(w) => return Err(invalid(&format!("{at}.weight"), format!("{w} is negative"))),
            None => return Err(invalid(&format!("{at}.weight"), "is required")),
        }
        if item.rrdatas.is_empty() && item.health_checked_targets.is_none() {
            return Err(invalid(
                &format!("{at}.rrdatas"),
                "an item needs rrdatas or healthCheckedTargets",
            ));
        }
        check_data(&set.kind, &item.rrdatas, &format!("{at}.rrdatas"))?;
    }
    Ok(())
}

/// Addresses of A and AAAA records must be addresses of their family.
fn check_data(kind: &str, rrdatas: &[String], field: &str) -> Result<(), GcpError> {
    for (i, data) in rrdatas.iter().enumerate() {
        let ok = match kind {
            "A" => data.parse::<Ipv4Addr>().is_ok(),
            "AAAA" => data.parse::<Ipv6Addr>().is_ok(),
            _ => !data.is_empty(),
        };
        if !ok {
            return Err(invalid(
                &format!("{field}[{i}]"),
                format!("{data:?} is not valid data for a {kind} record"),
            ));
        }
    }
    Ok(())
}

/// A `Change`'s additions and deletions.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ChangeBody {
    #[serde(default)]
    pub additions: Vec<Rrset>,
    #[serde(default)]
    pub deletions: Vec<Rrset>,
}

/// The zone's record sets after `change`, or why it is refused (nothing changes then):
/// deletions first, each an exact copy of what the zone holds (404 when the set does not
/// exist, 412 `conditionNotMet` when it differs), then additions, each of a set that does not
/// exist once the deletions are done (409 `alreadyExists`).
pub(super) fn apply(
    dns_name: &str,
    sets: &BTreeMap<Key, Rrset>,
    change: &ChangeBody,
) -> Result<BTreeMap<Key, Rrset>, GcpError> {
    if change.additions.is_empty() && change.deletions.is_empty() {
        return Err(GcpError::invalid(
            "The 'entity.change' parameter is required but was missing.",
        )
        .with_reason("required"));
    }
    let mut out = sets.clone();
    for (i, set) in change.deletions.iter().enumerate() {
        let field = format!("entity.change.deletions[{i}]");
        match out.get(&set.key()) {
            None => {
                return Err(GcpError::not_found_named(&field, &set.label()));
            }
            Some(held) if held != set => {
                return Err(GcpError::condition_not_met(&field));
            }
            Some(_) => {
                out.remove(&set.key());
            }
        }
    }
    for (i, set) in change.additions.iter().enumerate() {
        let field = format!("entity.change.additions[{i}]");
        validate(dns_name, set, &field)?;
        if out.contains_key(&set.key()) {
            return Err(GcpError::already_exists_named(&field, &set.label()));
        }
        out.insert(set.key(), set.clone());
    }
    Ok(out)
}

/// A page token: the key to go on from, hex-encoded (opaque to clients, stable under writes).
pub(super) fn page_token(key: &Key) -> String {
    format!("{}\n{}", key.0, key.1)
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The key a [`page_token`] holds, or `None` when it is not one.
pub(super) fn from_page_token(token: &str) -> Option<Key> {
    if !token.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect();
    let text = String::from_utf8(bytes?).ok()?;
    let (name, kind) = text.split_once('\n')?;
    Some((name.to_string(), kind.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE: &str = "example.com.";

    fn wrr(name: &str, items: &[(&str, f64)]) -> Rrset {
        Rrset {
            name: name.into(),
            kind: "A".into(),
            ttl: Some(10),
            routing_policy: Some(RoutingPolicy {
                wrr: Some(Wrr {
                    items: items
                        .iter()
                        .map(|(ip, w)| WrrItem {
                            weight: Some(*w),
                            rrdatas: vec![ip.to_string()],
                            ..WrrItem::default()
                        })
                        .collect(),
                }),
                ..RoutingPolicy::default()
            }),
            ..Rrset::default()
        }
    }

    fn message(e: GcpError) -> String {
        e.message
    }

    #[test]
    fn weighted_sets_are_checked_as_cloud_dns_checks_them() {
        validate(
            ZONE,
            &wrr(
                "app.example.com.",
                &[("10.0.0.1", 90.0), ("10.0.0.2", 10.0)],
            ),
            "e",
        )
        .unwrap();
        let negative = wrr("app.example.com.", &[("10.0.0.1", -1.0)]);
        assert!(message(validate(ZONE, &negative, "e").unwrap_err()).contains("items[0].weight"));
        let outside = wrr("app.example.org.", &[("10.0.0.1", 1.0)]);
        assert!(message(validate(ZONE, &outside, "e").unwrap_err()).contains("e.name"));
        let relative = wrr("app.example.com", &[("10.0.0.1", 1.0)]);
        assert!(validate(ZONE, &relative, "e").is_err());
        let mut both = wrr("app.example.com.", &[("10.0.0.1", 1.0)]);
        both.rrdatas = vec!["10.0.0.9".into()];
        assert!(message(validate(ZONE, &both, "e").unwrap_err()).contains("not both"));
        let not_v4 = wrr("app.example.com.", &[("fd00::1", 1.0)]);
        assert!(message(validate(ZONE, &not_v4, "e").unwrap_err()).contains("rrdatas[0]"));
        let mut empty = wrr("app.example.com.", &[]);
        assert!(validate(ZONE, &empty, "e").is_err());
        empty.routing_policy = None;
        assert!(message(validate(ZONE, &empty, "e").unwrap_err()).contains("needs rrdatas"));
    }

    #[test]
    fn a_change_is_all_or_nothing() {
        let held = wrr("app.example.com.", &[("10.0.0.1", 100.0)]);
        let sets = BTreeMap::from([(held.key(), held.clone())]);
        let moved = wrr(
            "app.example.com.",
            &[("10.0.0.1", 50.0), ("10.0.0.2", 50.0)],
        );
        let ok = ChangeBody {
            deletions: vec![held.clone()],
            additions: vec![moved.clone()],
        };
        assert_eq!(apply(ZONE, &sets, &ok).unwrap()[&held.key()], moved);

        // A stale deletion: 412, and the addition is not made either.
        let stale = ChangeBody {
            deletions: vec![wrr("app.example.com.", &[("10.0.0.1", 90.0)])],
            additions: vec![moved.clone()],
        };
        let e = apply(ZONE, &sets, &stale).unwrap_err();
        assert_eq!((e.http.as_u16(), e.reason), (412, Some("conditionNotMet")));
        let missing = ChangeBody {
            deletions: vec![wrr("www.example.com.", &[("10.0.0.1", 100.0)])],
            ..ChangeBody::default()
        };
        let e = apply(ZONE, &sets, &missing).unwrap_err();
        assert_eq!((e.http.as_u16(), e.reason), (404, Some("notFound")));
        assert!(e.message.contains("www.example.com. (A)"), "{}", e.message);
        let twice = ChangeBody {
            additions: vec![moved],
            ..ChangeBody::default()
        };
        let e = apply(ZONE, &sets, &twice).unwrap_err();
        assert_eq!((e.http.as_u16(), e.reason), (409, Some("alreadyExists")));
        assert!(apply(ZONE, &sets, &ChangeBody::default()).is_err());
    }

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        let key = ("app.example.com.".to_string(), "AAAA".to_string());
        assert_eq!(from_page_token(&page_token(&key)), Some(key));
        for bad in ["", "zz", "abc", "6162"] {
            assert_eq!(from_page_token(bad), None, "{bad}");
        }
    }
}
