//! rotor's two Traffic Manager endpoints of one rotor endpoint, as the profile holds them and
//! as rotor wants them, and the ordered writes from one to the other. Pure functions over the
//! profile's JSON: nothing here calls Azure.
//!
//! - **Names**: `rotor-{endpoint}-blue` and `rotor-{endpoint}-green`, external endpoints whose
//!   `target` is the instance's traffic address.
//! - **Owner mark**: the custom header `X-Rotor-Owner: heritage=rotor,endpoint={endpoint},
//!   backend={blue|green}`. An endpoint carries no tags (it is an ARM proxy resource); custom
//!   headers are what it has, and Azure documents them for "unique headers that can be used to
//!   identify Traffic Manager originated HTTP(S) requests". Traffic Manager sends it only with
//!   its health probes to that endpoint. An endpoint at rotor's name without this exact header
//!   is someone else's and is never written.
//! - **Weights**: Traffic Manager's `weight` is 1–1000 and has no 0, so a share of `p` percent
//!   is `weight = p` with `endpointStatus: Enabled` for `p ≥ 1`, and `endpointStatus: Disabled`
//!   (weight 1, which a disabled endpoint does not use) for `p = 0`: 100/0 is blue Enabled 100
//!   and green Disabled, 0/100 the reverse, 90/10 Enabled 90 and Enabled 10. The enabled
//!   weights of one rotor endpoint always sum to 100, so several rotor endpoints in one profile
//!   each take an equal part of its answers.

use std::net::IpAddr;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::{Backend, Weights};

/// The custom header that marks an endpoint as rotor's.
pub(super) const OWNER_HEADER: &str = "X-Rotor-Owner";

/// The name of rotor's Traffic Manager endpoint for `backend` of `endpoint`.
pub(super) fn name(endpoint: &str, backend: Backend) -> String {
    format!("rotor-{endpoint}-{backend}")
}

/// What rotor's owner header says on `backend`'s endpoint of `endpoint`.
pub(super) fn owner_mark(endpoint: &str, backend: Backend) -> String {
    format!("heritage=rotor,endpoint={endpoint},backend={backend}")
}

/// The parts of a profile rotor reads (`Profile` in the REST specification).
#[derive(Debug, Deserialize)]
pub(super) struct ProfileAnswer {
    #[serde(default)]
    properties: ProfileProperties,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileProperties {
    traffic_routing_method: Option<String>,
    #[serde(default)]
    dns_config: DnsConfig,
    #[serde(default)]
    endpoints: Vec<EndpointAnswer>,
}

#[derive(Debug, Default, Deserialize)]
struct DnsConfig {
    ttl: Option<u64>,
}

#[derive(Clone, Debug, Deserialize)]
struct EndpointAnswer {
    #[serde(default)]
    name: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    properties: EndpointProperties,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EndpointProperties {
    target: Option<String>,
    endpoint_status: Option<String>,
    weight: Option<i64>,
    #[serde(default)]
    custom_headers: Vec<Header>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct Header {
    #[serde(default)]
    name: String,
    #[serde(default)]
    value: String,
}

impl ProfileAnswer {
    pub fn routing_method(&self) -> &str {
        self.properties
            .traffic_routing_method
            .as_deref()
            .unwrap_or_default()
    }

    /// `dnsConfig.ttl`: how long resolvers may keep an answer.
    pub fn ttl(&self) -> Option<u64> {
        self.properties.dns_config.ttl
    }

    /// The endpoint at rotor's name for `backend` of `endpoint`, if any (names match in any
    /// case, as ARM's do): rotor's own, or `Err` saying why it is someone else's.
    pub fn held(&self, endpoint: &str, backend: Backend) -> Option<Result<Held, Foreign>> {
        let wanted = name(endpoint, backend);
        let found = self
            .properties
            .endpoints
            .iter()
            .find(|e| e.name.eq_ignore_ascii_case(&wanted))?;
        Some(Held::from_answer(found, &owner_mark(endpoint, backend)))
    }
}

/// An endpoint at rotor's name that rotor did not write: its name and why.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Foreign {
    pub name: String,
    pub reason: String,
}

/// One of rotor's endpoints as Traffic Manager holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Held {
    pub name: String,
    pub target: String,
    pub enabled: bool,
    pub weight: i64,
}

impl Held {
    fn from_answer(e: &EndpointAnswer, mark: &str) -> Result<Held, Foreign> {
        let foreign = |reason: String| Foreign {
            name: e.name.clone(),
            reason,
        };
        if !e.kind.to_ascii_lowercase().ends_with("/externalendpoints") {
            return Err(foreign(format!("it is of type {:?}", e.kind)));
        }
        let header = e
            .properties
            .custom_headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(OWNER_HEADER));
        match header {
            None => return Err(foreign(format!("it has no {OWNER_HEADER} custom header"))),
            Some(h) if h.value != mark => {
                return Err(foreign(format!(
                    "its {OWNER_HEADER} header says {:?}, not {mark:?}",
                    h.value
                )));
            }
            Some(_) => {}
        }
        let p = &e.properties;
        Ok(Held {
            name: e.name.clone(),
            target: p.target.clone().unwrap_or_default(),
            enabled: !p
                .endpoint_status
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("Disabled")),
            weight: p.weight.unwrap_or(1),
        })
    }

    /// The weight Traffic Manager routes by: none while disabled.
    fn effective(&self) -> i64 {
        if self.enabled { self.weight } else { 0 }
    }

    fn describe(&self) -> String {
        let status = if self.enabled { "Enabled" } else { "Disabled" };
        format!("{} {status} weight {}", self.name, self.weight)
    }
}

/// What rotor wants one of its endpoints to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Wanted {
    pub target: IpAddr,
    pub enabled: bool,
    pub weight: i64,
}

impl Wanted {
    /// `percent` of the rotor endpoint's answers at `target` (see the module for the mapping).
    pub fn share(target: IpAddr, percent: u8) -> Wanted {
        Wanted {
            target,
            enabled: percent > 0,
            weight: i64::from(percent.max(1)),
        }
    }

    /// `held`'s status and weight at `target`: what a re-registration leaves as it is.
    pub fn keeping(target: IpAddr, held: &Held) -> Wanted {
        Wanted {
            target,
            enabled: held.enabled,
            weight: held.weight,
        }
    }

    fn effective(&self) -> i64 {
        if self.enabled { self.weight } else { 0 }
    }

    fn status(&self) -> &'static str {
        if self.enabled { "Enabled" } else { "Disabled" }
    }
}

/// The split rotor's endpoints hold: blue alone must be enabled at 100; with green, the
/// enabled weights must sum to 100. `Err` describes what was found instead.
pub(super) fn weights_of(blue: &Held, green: Option<&Held>) -> Result<Weights, String> {
    let split = match green {
        None if blue.effective() == 100 => Some(Weights::all_blue()),
        None => None,
        Some(g) => u8::try_from(blue.effective())
            .ok()
            .zip(u8::try_from(g.effective()).ok())
            .and_then(|(b, g)| Weights::new(b, g).ok()),
    };
    split.ok_or_else(|| {
        let found: Vec<String> = std::iter::once(blue)
            .chain(green)
            .map(Held::describe)
            .collect();
        format!("{} (enabled weights must sum to 100)", found.join(", "))
    })
}

/// One write to one of rotor's endpoints.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Write {
    /// PUT of a new endpoint, owner header included.
    Create {
        backend: Backend,
        body: Value,
    },
    /// PATCH of the fields that differ, nothing else.
    Update {
        backend: Backend,
        body: Value,
    },
    Delete {
        backend: Backend,
    },
}

/// The writes that take `held` (blue, green) to `wanted`, in an order that never leaves the
/// rotor endpoint without an enabled endpoint and never sends more traffic to the losing side
/// than before nor less to the gaining one: the side whose weight grows first (Traffic Manager
/// cannot change two endpoints at once), deletions last.
pub(super) fn plan(
    endpoint: &str,
    held: [Option<&Held>; 2],
    wanted: [Option<Wanted>; 2],
) -> Vec<Write> {
    let mut writes: Vec<(i64, Write)> = Vec::new();
    for ((backend, held), wanted) in [Backend::Blue, Backend::Green]
        .into_iter()
        .zip(held)
        .zip(wanted)
    {
        let gain = wanted.map_or(0, |w| w.effective()) - held.map_or(0, Held::effective);
        let write = match (held, wanted) {
            (None, Some(w)) => Write::Create {
                backend,
                body: create_body(endpoint, backend, &w),
            },
            (Some(h), Some(w)) => match patch_body(h, &w) {
                Some(body) => Write::Update { backend, body },
                None => continue,
            },
            (Some(_), None) => Write::Delete { backend },
            (None, None) => continue,
        };
        let rank = if matches!(write, Write::Delete { .. }) {
            i64::MIN
        } else {
            gain
        };
        writes.push((rank, write));
    }
    writes.sort_by_key(|(rank, _)| std::cmp::Reverse(*rank));
    writes.into_iter().map(|(_, w)| w).collect()
}

/// A new external endpoint for `backend`, marked rotor's.
fn create_body(endpoint: &str, backend: Backend, w: &Wanted) -> Value {
    json!({
        "type": "Microsoft.Network/trafficManagerProfiles/externalEndpoints",
        "properties": {
            "target": w.target.to_string(),
            "endpointStatus": w.status(),
            "weight": w.weight,
            "customHeaders": [{"name": OWNER_HEADER, "value": owner_mark(endpoint, backend)}],
        },
    })
}

/// The PATCH body holding exactly the fields of `h` that differ from `w`; None when none do.
fn patch_body(h: &Held, w: &Wanted) -> Option<Value> {
    let mut properties = serde_json::Map::new();
    if h.target.parse::<IpAddr>().ok() != Some(w.target) {
        properties.insert("target".into(), json!(w.target.to_string()));
    }
    if h.enabled != w.enabled {
        properties.insert("endpointStatus".into(), json!(w.status()));
    }
    if h.weight != w.weight {
        properties.insert("weight".into(), json!(w.weight));
    }
    (!properties.is_empty()).then(|| json!({"properties": properties}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(target: &str, enabled: bool, weight: i64) -> Held {
        Held {
            name: "x".into(),
            target: target.into(),
            enabled,
            weight,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Each split as the two endpoints rotor writes for it: (enabled, weight) of blue, green.
    #[test]
    fn percentages_map_to_weights_and_a_zero_share_to_disabled() {
        let cases = [
            (100, (true, 100), (false, 1)),
            (0, (false, 1), (true, 100)),
            (90, (true, 90), (true, 10)),
            (1, (true, 1), (true, 99)),
            (50, (true, 50), (true, 50)),
        ];
        for (blue, b, g) in cases {
            let split = Weights::new(blue, 100 - blue).unwrap();
            let wb = Wanted::share(ip("10.0.0.1"), split.blue_pct());
            let wg = Wanted::share(ip("10.0.0.2"), split.green_pct());
            assert_eq!(
                ((wb.enabled, wb.weight), (wg.enabled, wg.weight)),
                (b, g),
                "{split}"
            );
            // And they read back as the same split.
            let hb = held("10.0.0.1", wb.enabled, wb.weight);
            let hg = held("10.0.0.2", wg.enabled, wg.weight);
            assert_eq!(weights_of(&hb, Some(&hg)), Ok(split));
        }
        assert_eq!(
            weights_of(&held("a", true, 100), None),
            Ok(Weights::all_blue())
        );
    }

    #[test]
    fn splits_rotor_did_not_write_are_reported() {
        for (b, g) in [
            ((true, 70), (true, 70)),
            ((false, 1), (false, 1)),
            ((true, 1000), (false, 1)),
        ] {
            let err = weights_of(&held("a", b.0, b.1), Some(&held("b", g.0, g.1))).unwrap_err();
            assert!(err.contains("must sum to 100"), "{err}");
        }
        assert!(weights_of(&held("a", false, 100), None).is_err());
        assert!(
            weights_of(&held("a", true, 50), None)
                .unwrap_err()
                .contains("x Enabled weight 50")
        );
    }

    /// Whatever the step, the side that gains is written first, so between the two writes the
    /// split lies between the old and the new one and some endpoint is always enabled.
    #[test]
    fn the_gaining_side_is_written_first_and_deletions_last() {
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let steps = [(100, 90), (90, 0), (0, 100), (10, 100), (50, 50)];
        for (from, to) in steps {
            let hb = held("10.0.0.1", from > 0, i64::from(u8::max(from, 1)));
            let hg = held("10.0.0.2", from < 100, i64::from(u8::max(100 - from, 1)));
            let writes = plan(
                "app",
                [Some(&hb), Some(&hg)],
                [Some(Wanted::share(a, to)), Some(Wanted::share(b, 100 - to))],
            );
            if from == to {
                assert!(writes.is_empty());
                continue;
            }
            let first = if to > from {
                Backend::Blue
            } else {
                Backend::Green
            };
            assert!(
                matches!(writes[0], Write::Update { backend, .. } if backend == first),
                "{from}->{to}: {writes:?}"
            );
            assert_eq!(writes.len(), 2);
        }
        // 100/0 → 90/10 changes green's status and weight, blue's weight: nothing else.
        let hb = held("10.0.0.1", true, 100);
        let hg = held("10.0.0.2", false, 1);
        let writes = plan(
            "app",
            [Some(&hb), Some(&hg)],
            [Some(Wanted::share(a, 90)), Some(Wanted::share(b, 10))],
        );
        assert_eq!(
            writes,
            [
                Write::Update {
                    backend: Backend::Green,
                    body: json!({"properties": {"endpointStatus": "Enabled", "weight": 10}})
                },
                Write::Update {
                    backend: Backend::Blue,
                    body: json!({"properties": {"weight": 90}})
                },
            ]
        );
        // Promotion: blue takes green's address at 100 before green goes.
        let writes = plan(
            "app",
            [
                Some(&held("10.0.0.1", false, 1)),
                Some(&held("10.0.0.2", true, 100)),
            ],
            [Some(Wanted::share(b, 100)), None],
        );
        assert_eq!(
            writes,
            [
                Write::Update {
                    backend: Backend::Blue,
                    body: json!({"properties": {"target": "10.0.0.2", "endpointStatus": "Enabled", "weight": 100}})
                },
                Write::Delete {
                    backend: Backend::Green
                },
            ]
        );
    }

    #[test]
    fn new_endpoints_carry_the_owner_header() {
        let writes = plan(
            "app",
            [None, None],
            [Some(Wanted::share(ip("fd00::1"), 100)), None],
        );
        let [
            Write::Create {
                backend: Backend::Blue,
                body,
            },
        ] = writes.as_slice()
        else {
            panic!("{writes:?}");
        };
        assert_eq!(body["properties"]["target"], "fd00::1");
        assert_eq!(
            body["properties"]["customHeaders"],
            json!([{"name": "X-Rotor-Owner", "value": "heritage=rotor,endpoint=app,backend=blue"}])
        );
        assert_eq!(name("app", Backend::Green), "rotor-app-green");
    }

    #[test]
    fn endpoints_at_rotors_names_without_its_mark_are_foreign() {
        let profile = |headers: Value, kind: &str| -> ProfileAnswer {
            serde_json::from_value(json!({"properties": {"trafficRoutingMethod": "Weighted",
                "dnsConfig": {"ttl": 30}, "endpoints": [{"name": "ROTOR-app-blue", "type": kind,
                "properties": {"target": "10.0.0.1", "endpointStatus": "Enabled", "weight": 100,
                    "customHeaders": headers}}]}}))
            .unwrap()
        };
        let ext = "Microsoft.Network/trafficManagerProfiles/externalEndpoints";
        let ours = profile(
            json!([{"name": "x-rotor-owner", "value": "heritage=rotor,endpoint=app,backend=blue"}]),
            ext,
        );
        assert_eq!(ours.ttl(), Some(30));
        assert_eq!(
            ours.held("app", Backend::Blue).unwrap().unwrap().weight,
            100
        );
        assert!(ours.held("app", Backend::Green).is_none());
        let bare = profile(json!([]), ext)
            .held("app", Backend::Blue)
            .unwrap()
            .unwrap_err();
        assert!(bare.reason.contains("no X-Rotor-Owner"), "{bare:?}");
        let other = profile(
            json!([{"name": "X-Rotor-Owner", "value": "heritage=rotor,endpoint=App,backend=blue"}]),
            ext,
        );
        assert!(
            other.held("app", Backend::Blue).unwrap().is_err(),
            "another rotor endpoint's"
        );
        let azure = profile(
            json!([]),
            "Microsoft.Network/trafficManagerProfiles/azureEndpoints",
        );
        assert!(
            azure
                .held("app", Backend::Blue)
                .unwrap()
                .unwrap_err()
                .reason
                .contains("azureEndpoints")
        );
    }
}
