//! rotor's two record sets at an endpoint, as Cloud DNS holds them, and what they say:
//!
//! - the **address set**: one A (or AAAA) set at the endpoint's name with a weighted
//!   round-robin policy whose item 0 is blue and item 1 green, each one address;
//! - the **owner record**: a TXT set at `_rotor.<name>` saying `heritage=rotor` and the
//!   addresses rotor registered. Cloud DNS keeps one set per (name, type) and a set carries no
//!   identifier or label (Route 53's `SetIdentifier` is how the Route 53 shifter tells its
//!   own), so ownership is a record beside it — the pattern external-dns uses in Cloud DNS —
//!   and the addresses in it catch a hand edit that reordered or replaced the items.
//!
//! Pure functions over the client's model types: nothing here calls Cloud DNS.

use std::net::IpAddr;

use google_cloud_dns_v1::model::{
    RRSetRoutingPolicy, RRSetRoutingPolicyWrrPolicy, RRSetRoutingPolicyWrrPolicyWrrPolicyItem,
    ResourceRecordSet,
};

use crate::Weights;

/// The owner record's name is this prefix and the endpoint's name.
pub(super) const OWNER_PREFIX: &str = "_rotor.";
const HERITAGE: &str = "heritage=rotor";

/// `app.example.com.`: lower case with the trailing dot, as Cloud DNS keeps names.
pub(super) fn fqdn(endpoint: &str) -> String {
    let mut name = endpoint.to_ascii_lowercase();
    if !name.ends_with('.') {
        name.push('.');
    }
    name
}

/// `app.example.com. (A)`, as Cloud DNS names a set in its messages.
pub(super) fn label(set: &ResourceRecordSet) -> String {
    format!(
        "{} ({})",
        set.name.as_deref().unwrap_or_default(),
        set.r#type.as_deref().unwrap_or_default()
    )
}

/// What rotor registered at an endpoint, as its owner record says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Registered {
    pub blue: IpAddr,
    pub green: Option<IpAddr>,
}

impl Registered {
    /// The address set's type: blue's family (green's is the same, `register` checks it).
    pub fn kind(&self) -> &'static str {
        match self.blue {
            IpAddr::V4(_) => "A",
            IpAddr::V6(_) => "AAAA",
        }
    }

    /// The owner record's one TXT string, quoted as TXT data is.
    fn text(&self) -> String {
        let mut text = format!("{HERITAGE},rotor/blue={}", self.blue);
        if let Some(green) = self.green {
            text.push_str(&format!(",rotor/green={green}"));
        }
        format!("\"{text}\"")
    }

    /// What an owner record says: `Ok(None)` when it is not rotor's (no `heritage=rotor`),
    /// `Err` when it is rotor's but unreadable.
    pub fn from_owner(set: &ResourceRecordSet) -> Result<Option<Registered>, String> {
        let Some(data) = set.rrdatas.first() else {
            return Ok(None);
        };
        let text = data.trim_matches('"');
        let mut fields = text.split(',');
        if fields.next() != Some(HERITAGE) {
            return Ok(None);
        }
        let (mut blue, mut green) = (None, None);
        for field in fields {
            let parsed = |v: &str| v.parse::<IpAddr>().map_err(|_| format!("{field:?}"));
            match field.split_once('=') {
                Some(("rotor/blue", v)) => blue = Some(parsed(v)?),
                Some(("rotor/green", v)) => green = Some(parsed(v)?),
                _ => return Err(format!("unknown field {field:?} in {data}")),
            }
        }
        let blue = blue.ok_or_else(|| format!("no rotor/blue in {data}"))?;
        Ok(Some(Registered { blue, green }))
    }
}

/// The owner record of an endpoint named `name`.
pub(super) fn owner_set(name: &str, ttl: i32, registered: &Registered) -> ResourceRecordSet {
    ResourceRecordSet::new()
        .set_name(format!("{OWNER_PREFIX}{name}"))
        .set_type("TXT")
        .set_ttl(ttl)
        .set_rrdatas([registered.text()])
}

/// The address set: item 0 blue, item 1 green (when registered), weighted in percent.
pub(super) fn address_set(
    name: &str,
    ttl: i32,
    registered: &Registered,
    weights: Weights,
) -> ResourceRecordSet {
    let item = |ip: IpAddr, weight: u8| {
        RRSetRoutingPolicyWrrPolicyWrrPolicyItem::new()
            .set_rrdatas([ip.to_string()])
            .set_weight(f64::from(weight))
    };
    let mut items = vec![item(registered.blue, weights.blue_pct())];
    if let Some(green) = registered.green {
        items.push(item(green, weights.green_pct()));
    }
    let wrr = RRSetRoutingPolicyWrrPolicy::new().set_items(items);
    ResourceRecordSet::new()
        .set_name(name)
        .set_type(registered.kind())
        .set_ttl(ttl)
        .set_routing_policy(RRSetRoutingPolicy::new().set_wrr(wrr))
}

/// A set's content, without the `kind`s Cloud DNS adds: what "the same set" means.
#[derive(Debug, PartialEq)]
struct Content<'a> {
    kind: Option<&'a str>,
    ttl: Option<i32>,
    rrdatas: &'a [String],
    items: Vec<(&'a [String], Option<f64>)>,
}

fn content(set: &ResourceRecordSet) -> Content<'_> {
    let items = set
        .routing_policy
        .as_ref()
        .and_then(|p| p.wrr.as_ref())
        .map(|w| {
            w.items
                .iter()
                .map(|i| (i.rrdatas.as_slice(), i.weight))
                .collect()
        })
        .unwrap_or_default();
    Content {
        kind: set.r#type.as_deref(),
        ttl: set.ttl,
        rrdatas: &set.rrdatas,
        items,
    }
}

/// Whether two sets hold the same data (one as Cloud DNS answered it, one as rotor builds it).
pub(super) fn same(a: &ResourceRecordSet, b: &ResourceRecordSet) -> bool {
    content(a) == content(b)
}

/// The split an address set holds, after checking it is the set rotor registered: as many
/// items as backends, item 0 blue's address, item 1 green's, whole-percent weights summing to
/// 100. `Err` describes what was found instead (someone edited the set by hand).
pub(super) fn weights_of(
    set: &ResourceRecordSet,
    registered: &Registered,
) -> Result<Weights, String> {
    let items = content(set).items;
    let expected: Vec<IpAddr> = std::iter::once(registered.blue)
        .chain(registered.green)
        .collect();
    let found: Vec<Option<IpAddr>> = items
        .iter()
        .map(|(data, _)| match data {
            [one] => one.parse().ok(),
            _ => None,
        })
        .collect();
    if found != expected.iter().copied().map(Some).collect::<Vec<_>>() {
        let data: Vec<_> = items.iter().map(|(d, _)| d.join(" ")).collect();
        return Err(format!(
            "weighted items [{}] where rotor registered [{}]",
            data.join(", "),
            expected
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let percent = |w: Option<f64>| {
        w.filter(|w| w.fract() == 0.0 && (0.0..=100.0).contains(w))
            .map(|w| w as u8)
    };
    let weights: Vec<Option<u8>> = items.iter().map(|(_, w)| percent(*w)).collect();
    let split = match weights.as_slice() {
        [Some(_)] => Some(Weights::all_blue()),
        [Some(b), Some(g)] => Weights::new(*b, *g).ok(),
        _ => None,
    };
    split.ok_or_else(|| {
        let shown: Vec<String> = items
            .iter()
            .map(|(_, w)| w.map_or("none".into(), |w| w.to_string()))
            .collect();
        format!("weights [{}] (blue + green must be 100)", shown.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "app.example.com.";

    fn registered(green: Option<&str>) -> Registered {
        Registered {
            blue: "10.0.0.1".parse().unwrap(),
            green: green.map(|g| g.parse().unwrap()),
        }
    }

    #[test]
    fn the_owner_record_says_what_rotor_registered() {
        for green in [None, Some("10.0.0.2")] {
            let r = registered(green);
            let set = owner_set(NAME, 10, &r);
            assert_eq!(set.name.as_deref(), Some("_rotor.app.example.com."));
            assert_eq!(Registered::from_owner(&set), Ok(Some(r)));
        }
        assert_eq!(
            owner_set(NAME, 10, &registered(Some("10.0.0.2"))).rrdatas,
            ["\"heritage=rotor,rotor/blue=10.0.0.1,rotor/green=10.0.0.2\""]
        );
        let v6 = Registered {
            blue: "fd00::1".parse().unwrap(),
            green: Some("fd00::2".parse().unwrap()),
        };
        assert_eq!(v6.kind(), "AAAA");
        assert_eq!(
            Registered::from_owner(&owner_set(NAME, 10, &v6)),
            Ok(Some(v6))
        );
        let foreign = ResourceRecordSet::new().set_rrdatas(["\"v=spf1 -all\""]);
        assert_eq!(Registered::from_owner(&foreign), Ok(None));
        let broken = ResourceRecordSet::new().set_rrdatas(["\"heritage=rotor,rotor/blue=x\""]);
        assert!(Registered::from_owner(&broken).is_err());
    }

    #[test]
    fn weights_read_back_only_from_the_set_rotor_registered() {
        let r = registered(Some("10.0.0.2"));
        let split = Weights::green(10).unwrap();
        let set = address_set(NAME, 10, &r, split);
        assert_eq!(weights_of(&set, &r), Ok(split));
        assert_eq!(
            weights_of(
                &address_set(NAME, 10, &registered(None), split),
                &registered(None)
            ),
            Ok(Weights::all_blue())
        );
        // Items swapped by hand: the addresses no longer match item 0 = blue.
        let swapped = Registered {
            blue: r.green.unwrap(),
            green: Some(r.blue),
        };
        let err = weights_of(&address_set(NAME, 10, &swapped, split), &r).unwrap_err();
        assert!(err.contains("10.0.0.2, 10.0.0.1"), "{err}");
        // Green dropped by hand.
        assert!(weights_of(&address_set(NAME, 10, &registered(None), split), &r).is_err());
        // Weights that do not sum to 100, or are not whole percents.
        let mut odd = set.clone();
        if let Some(wrr) = odd.routing_policy.as_mut().and_then(|p| p.wrr.as_mut()) {
            wrr.items[1].weight = Some(70.0);
        }
        assert!(weights_of(&odd, &r).unwrap_err().contains("90, 70"));
        if let Some(wrr) = odd.routing_policy.as_mut().and_then(|p| p.wrr.as_mut()) {
            wrr.items[1].weight = Some(9.5);
        }
        assert!(weights_of(&odd, &r).is_err());
    }

    #[test]
    fn sets_are_the_same_whatever_kinds_cloud_dns_adds() {
        let r = registered(Some("10.0.0.2"));
        let ours = address_set(NAME, 10, &r, Weights::all_blue());
        let answered = ours.clone().set_kind("dns#resourceRecordSet");
        assert!(same(&ours, &answered));
        assert!(!same(
            &ours,
            &address_set(NAME, 30, &r, Weights::all_blue())
        ));
        assert!(!same(
            &ours,
            &address_set(NAME, 10, &r, Weights::green(1).unwrap())
        ));
    }
}
