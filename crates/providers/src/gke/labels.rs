//! GCP's naming rules as rotor meets them: GKE names, the API server's URL from GKE's
//! `endpoint`, and the static access token for the simulator. The labels and their encoding
//! (traffic address included) are shared with AKS's tags: see `crate::tags`.

use google_cloud_auth::credentials::{
    AccessToken, AccessTokenCredentials, AccessTokenCredentialsProvider, CacheableResource,
    CredentialsProvider, EntityTag,
};
use google_cloud_auth::errors::CredentialsError;
use http::{HeaderMap, HeaderValue};

pub use crate::tags::{LABEL_CLUSTER, LABEL_TOKEN, LABEL_TRAFFIC_ADDRESS};
pub(super) use crate::tags::{parse_address, value_of};

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
    fn label_values_and_names_follow_gcps_rules() {
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
