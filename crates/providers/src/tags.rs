//! The labels (GKE) and tags (AKS) rotor puts on the instances it creates, in one encoding that
//! fits both clouds' rules: GCP label keys and values allow only lowercase letters, digits, `-`
//! and `_` (at most 63), Azure tag names forbid `/` (so no `rotor.dev/…` keys).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The logical Cluster an instance serves (`.` written `_`).
pub const LABEL_CLUSTER: &str = "rotor-cluster";
/// The idempotency token of the swap that created it.
pub const LABEL_TOKEN: &str = "rotor-token";
/// Where the instance takes application traffic (`10-0-0-7_443`).
pub const LABEL_TRAFFIC_ADDRESS: &str = "rotor-traffic-address";

/// `name` as a label value: lowercase, anything GCP does not allow written `_`, at most 63.
pub(crate) fn value_of(name: &str) -> String {
    name.to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect()
}

/// A traffic address from its label value: `10-0-0-7_443` (IPv4, four decimal groups) or
/// eight hex groups joined by `-` (IPv6), `_`, the port.
pub(crate) fn parse_address(v: &str) -> Option<SocketAddr> {
    let (host, port) = v.rsplit_once('_')?;
    let port: u16 = port.parse().ok()?;
    let groups: Vec<&str> = host.split('-').collect();
    let ip = match groups.len() {
        4 => {
            let mut octets = [0u8; 4];
            for (o, g) in octets.iter_mut().zip(&groups) {
                *o = g.parse().ok()?;
            }
            IpAddr::V4(Ipv4Addr::from(octets))
        }
        8 => {
            let mut segments = [0u16; 8];
            for (s, g) in segments.iter_mut().zip(&groups) {
                *s = u16::from_str_radix(g, 16).ok()?;
            }
            IpAddr::V6(Ipv6Addr::from(segments))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_addresses_read_back_from_label_values() {
        assert_eq!(
            parse_address("10-0-0-7_443"),
            Some("10.0.0.7:443".parse().unwrap())
        );
        assert_eq!(
            parse_address("fd00-0-0-0-0-0-0-7_8443"),
            Some("[fd00::7]:8443".parse().unwrap())
        );
        for bad in ["10-0-0-7", "10-0-0_443", "10-0-0-256_443", "x_1", ""] {
            assert_eq!(parse_address(bad), None, "{bad}");
        }
    }

    #[test]
    fn values_are_lowercase_with_only_what_gcp_allows() {
        assert_eq!(value_of("Prod.EU/a"), "prod_eu_a");
        assert_eq!(value_of(&"a".repeat(80)).len(), 63);
    }
}
