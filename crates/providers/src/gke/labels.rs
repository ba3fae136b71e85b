//! GCP's naming rules as rotor meets them: label keys and values (lowercase letters, digits,
//! `-`, `_`, at most 63), GKE names, the traffic address as a label value, the API server's URL
//! from GKE's `endpoint`, and the static access token for the simulator.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use google_cloud_auth::credentials::{
    AccessToken, AccessTokenCredentials, AccessTokenCredentialsProvider, CacheableResource,
    CredentialsProvider, EntityTag,
};
use google_cloud_auth::errors::CredentialsError;
use http::{HeaderMap, HeaderValue};

/// Label: the logical Cluster a GKE cluster serves (`.` written `_`).
pub const LABEL_CLUSTER: &str = "rotor-cluster";
/// Label: the idempotency token of the swap that created it.
pub const LABEL_TOKEN: &str = "rotor-token";
/// Label: where the instance takes application traffic (`10-0-0-7_443`).
pub const LABEL_TRAFFIC_ADDRESS: &str = "rotor-traffic-address";

/// `name` as a label value: lowercase, anything GCP does not allow written `_`, at most 63.
pub(super) fn value_of(name: &str) -> String {
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

/// GKE's rule for cluster and node pool names; `Err` says what is wrong.
pub(super) fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 40 {
        return Err("must be 1 to 40 characters long");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) || name.ends_with('-') {
        return Err("must start with a lowercase letter and not end with '-'");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err("may hold only lowercase letters, digits and '-'");
    }
    Ok(())
}

/// A traffic address from its label value: `10-0-0-7_443` (IPv4, four decimal groups) or
/// eight hex groups joined by `-` (IPv6), `_`, the port.
pub(super) fn parse_address(v: &str) -> Option<SocketAddr> {
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

/// The API server's URL: GKE's `endpoint` is a bare address served over https; one that
/// already has a scheme (the simulator's plain-http members) is used as it is.
pub(super) fn server(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("https://{endpoint}")
    }
}

/// Credentials that present one fixed access token: for the simulator and tests, never for
/// Google (real tokens expire within the hour).
pub fn static_token(token: impl Into<String>) -> AccessTokenCredentials {
    AccessTokenCredentials::from(StaticToken(token.into()))
}

struct StaticToken(String);

impl std::fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticToken(<redacted>)")
    }
}

impl CredentialsProvider for StaticToken {
    async fn headers(
        &self,
        _: http::Extensions,
    ) -> Result<CacheableResource<HeaderMap>, CredentialsError> {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", self.0)).map_err(|_| {
            CredentialsError::from_msg(false, "the static access token is not a valid header value")
        })?;
        value.set_sensitive(true);
        let headers = HeaderMap::from_iter([(http::header::AUTHORIZATION, value)]);
        Ok(CacheableResource::New {
            entity_tag: EntityTag::new(),
            data: headers,
        })
    }

    async fn universe_domain(&self) -> Option<String> {
        None
    }
}

impl AccessTokenCredentialsProvider for StaticToken {
    async fn access_token(&self) -> Result<AccessToken, CredentialsError> {
        Ok(AccessToken {
            token: self.0.clone(),
        })
    }
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
    fn label_values_and_names_follow_gcps_rules() {
        assert_eq!(value_of("Prod.EU/a"), "prod_eu_a");
        assert_eq!(value_of(&"a".repeat(80)).len(), 63);
        assert!(check_name("general").is_ok());
        assert!(check_name("General").is_err());
        assert!(check_name(&"a".repeat(41)).is_err());
        assert!(check_name("pool-").is_err());
    }

    #[test]
    fn endpoints_without_a_scheme_are_https() {
        assert_eq!(server("34.1.2.3"), "https://34.1.2.3");
        assert_eq!(
            server("http://127.0.0.1:8080/clusters/gke-1"),
            "http://127.0.0.1:8080/clusters/gke-1"
        );
    }

    #[test]
    fn the_static_token_never_prints() {
        let creds = static_token("ya29.s3cret");
        assert!(!format!("{creds:?}").contains("s3cret"));
    }
}
