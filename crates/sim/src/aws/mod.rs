//! AWS as its SDK sees it, at `/aws`: the EKS API (restJson1, `/aws/clusters…`, `/aws/tags/…`),
//! Route 53 (restXml, `/aws/2013-04-01/…`) and STS (awsQuery, `POST /aws/`), so the EKS provider
//! and the Route 53 shifter run through the official SDK against
//! the simulator as they do against moto and AWS (`endpoint_url = http://SIM/aws`; the SDK keeps
//! the path). Every EKS cluster created here is a simulated member cluster, made by the
//! simulated cloud with its latency and faults.
//!
//! Who calls is read as AWS reads it, from the SigV4 `Authorization` header: the region from the
//! credential scope, the account from the access key — keys handed out by `AssumeRole` carry
//! the role's account, any other key is account [`DEFAULT_ACCOUNT`] (moto's convention). The
//! signature itself is not checked: the simulator holds no secrets worth guarding.

mod eks;
mod route53;
mod sts;
mod token;
mod xml;

use std::sync::Arc;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::Sim;

pub(crate) use eks::Eks;
pub(crate) use route53::Route53;
pub(crate) use token::EksTokens;

/// The account of any access key not handed out by `AssumeRole`.
pub const DEFAULT_ACCOUNT: &str = "123456789012";

/// The region when a request carries no SigV4 scope.
const DEFAULT_REGION: &str = "us-east-1";

/// The routes of `/aws` and below. STS is `POST /aws/` (the SDK joins the endpoint's path and
/// the operation's `/`), which a nested router's `/` would not match.
pub(crate) fn router(sim: Arc<Sim>) -> axum::Router {
    axum::Router::new()
        .nest("/aws", eks::routes().merge(route53::routes()))
        .merge(sts::routes("/aws/"))
        .merge(sts::routes("/aws"))
        .with_state(sim)
}

/// The account and region a request acts in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Caller {
    pub account: String,
    pub region: String,
}

impl Caller {
    /// From `Authorization: AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/SERVICE/aws4_request, …`.
    pub fn of(headers: &HeaderMap) -> Caller {
        let scope = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split("Credential=").nth(1))
            .and_then(|v| v.split([',', ' ']).next())
            .unwrap_or_default();
        let mut parts = scope.split('/');
        let key = parts.next().unwrap_or_default();
        let region = parts.nth(1).filter(|r| !r.is_empty());
        Caller {
            account: sts::account_of_key(key)
                .unwrap_or(DEFAULT_ACCOUNT)
                .to_string(),
            region: region.unwrap_or(DEFAULT_REGION).to_string(),
        }
    }
}

/// An error as restJson1 services send it: the status, `x-amzn-ErrorType` and a JSON body with
/// `__type` and `message` (the SDK reads the code from either).
pub(crate) fn json_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = serde_json::json!({"__type": code, "message": message.into()});
    let mut resp = (status, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(code) {
        resp.headers_mut().insert("x-amzn-errortype", v);
    }
    resp
}

/// Text safe inside an XML element.
pub(crate) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// A request id, as every AWS answer carries.
pub(crate) fn request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caller_comes_from_the_sigv4_scope_and_the_key() {
        let mut h = HeaderMap::new();
        assert_eq!(
            Caller::of(&h),
            Caller {
                account: DEFAULT_ACCOUNT.into(),
                region: DEFAULT_REGION.into()
            }
        );
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=testing/20261205/eu-west-1/eks/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature=abc",
            ),
        );
        assert_eq!(Caller::of(&h).region, "eu-west-1");
        assert_eq!(Caller::of(&h).account, DEFAULT_ACCOUNT);
        let key = sts::key_for_account("111111111111");
        let auth = format!("AWS4-HMAC-SHA256 Credential={key}/20261205/us-west-2/eks/aws4_request");
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&auth).unwrap(),
        );
        assert_eq!(
            Caller::of(&h),
            Caller {
                account: "111111111111".into(),
                region: "us-west-2".into()
            }
        );
    }
}
