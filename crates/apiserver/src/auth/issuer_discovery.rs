//! ServiceAccount issuer discovery, as kube-apiserver serves it: an OpenID Connect discovery
//! document at `/.well-known/openid-configuration` and the key set at `/openid/v1/jwks`, so a
//! verifier outside the cluster (a cloud's workload identity federation, Vault's JWT auth)
//! checks rotor's ServiceAccount tokens with rotor's public keys alone. Both documents are
//! rendered once, at start; RBAC reads them through upstream's
//! `system:service-account-issuer-discovery` ClusterRole.

use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode, header};
use serde_json::json;

use super::service_account::ServiceAccountTokens;

pub const CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";
pub const JWKS_PATH: &str = "/openid/v1/jwks";
/// Upstream's caching of both documents.
const CACHE_CONTROL: &str = "public, max-age=3600";
const JWKS_TYPE: &str = "application/jwk-set+json";

/// Why discovery is not served: upstream's rules for the issuer, which an OIDC verifier
/// requires (the issuer is where it fetches the document from).
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("--service-account-issuer {0:?} is not an https URL")]
    IssuerNotHttps(String),
    #[error("--service-account-issuer {0:?} has a query or fragment")]
    IssuerQuery(String),
    #[error("--service-account-jwks-uri {0:?} is not a URL")]
    JwksUri(String),
}

/// The two documents, rendered.
#[derive(Debug, Clone)]
pub struct Discovery {
    configuration: String,
    jwks: String,
}

impl Discovery {
    /// The documents of `tokens`' issuer: its keys at `jwks_uri`, else at
    /// `https://{external_address}/openid/v1/jwks` (upstream's default from its external address).
    pub fn new(
        tokens: &ServiceAccountTokens,
        jwks_uri: Option<&str>,
        external_address: &str,
    ) -> Result<Discovery, DiscoveryError> {
        let issuer = tokens.issuer();
        let url = reqwest::Url::parse(issuer)
            .ok()
            .filter(|u| u.scheme() == "https")
            .ok_or_else(|| DiscoveryError::IssuerNotHttps(issuer.to_string()))?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(DiscoveryError::IssuerQuery(issuer.to_string()));
        }
        let jwks_uri = match jwks_uri {
            Some(uri) => reqwest::Url::parse(uri)
                .map_err(|_| DiscoveryError::JwksUri(uri.to_string()))?
                .to_string(),
            None => format!("https://{external_address}{JWKS_PATH}"),
        };
        let mut algorithms: Vec<String> = tokens
            .keys()
            .iter()
            .map(|k| format!("{:?}", k.algorithm))
            .collect();
        algorithms.sort();
        algorithms.dedup();
        let configuration = json!({
            "issuer": issuer,
            "jwks_uri": jwks_uri,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": algorithms,
        });
        let keys: Vec<&jsonwebtoken::jwk::Jwk> = tokens.keys().iter().map(|k| &k.jwk).collect();
        Ok(Discovery {
            configuration: configuration.to_string(),
            jwks: json!({ "keys": keys }).to_string(),
        })
    }

    /// The reply to a GET of one of the two paths; None for anything else.
    pub fn respond(&self, method: &Method, path: &str) -> Option<Response> {
        if method != Method::GET {
            return None;
        }
        let (body, content_type) = match path {
            CONFIGURATION_PATH => (&self.configuration, "application/json"),
            JWKS_PATH => (&self.jwks, JWKS_TYPE),
            _ => return None,
        };
        let headers = [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, CACHE_CONTROL),
        ];
        Some((StatusCode::OK, headers, body.clone()).into_response())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::service_account::generate_key;

    fn tokens(issuer: &str) -> ServiceAccountTokens {
        let key = generate_key().expect("key");
        ServiceAccountTokens::new(issuer, &[], &key, "test").expect("tokens")
    }

    #[test]
    fn documents_name_the_issuer_and_every_key() {
        let old = tokens("https://rotor.example");
        let rotated = tokens("https://rotor.example").with_verification_keys(old.keys().to_vec());
        let d = rotated
            .discovery_for(None, "10.0.0.1:6443")
            .expect("discovery");
        let config: serde_json::Value = serde_json::from_str(&d.configuration).expect("json");
        assert_eq!(config["issuer"], "https://rotor.example");
        assert_eq!(config["jwks_uri"], "https://10.0.0.1:6443/openid/v1/jwks");
        assert_eq!(
            config["id_token_signing_alg_values_supported"],
            json!(["ES256"])
        );
        let jwks: serde_json::Value = serde_json::from_str(&d.jwks).expect("json");
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().expect("kid"))
            .collect();
        let want: Vec<&str> = rotated.keys().iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(kids, want);
        assert_eq!(kids.len(), 2);
        assert_eq!(jwks["keys"][0]["use"], "sig");
        assert!(d.respond(&Method::POST, JWKS_PATH).is_none());
    }

    #[test]
    fn an_issuer_that_is_no_https_url_gets_no_discovery() {
        for issuer in [
            "rotor",
            "http://rotor.example",
            "https://rotor.example/?q=1",
        ] {
            let refused = tokens(issuer).discovery_for(None, "127.0.0.1:6443");
            assert!(refused.is_err(), "{issuer}");
        }
    }
}
