//! Bearer tokens for an EKS cluster's API, minted as `aws eks get-token` mints them: an STS
//! `GetCallerIdentity` URL presigned (SigV4, query parameters) with rotor's own credentials for
//! the cluster's account, the cluster's name in the signed `x-k8s-aws-id` header, base64url
//! behind `k8s-aws-v1.`. EKS replays the URL to STS and maps the identity STS answers. EKS
//! accepts a token for 15 minutes after signing; a member client rebuilt after that (its calls
//! fail, the controllers forget it) gets a fresh one. No secret is written anywhere: the token
//! lives in the in-memory kubeconfig only.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use base64::Engine as _;

/// What every EKS token starts with.
pub const TOKEN_PREFIX: &str = "k8s-aws-v1.";
/// The signed header naming the cluster a token is for.
pub const CLUSTER_ID_HEADER: &str = "x-k8s-aws-id";
/// The presigned URL's own expiry, as aws-iam-authenticator sets it (EKS applies 15 minutes).
const URL_EXPIRES: Duration = Duration::from_secs(60);

/// A token for EKS cluster `cluster` from `credentials`, signed for STS in `region` at
/// `sts_url` (`https://sts.REGION.amazonaws.com/`, or an endpoint override) at `at`.
pub fn mint(
    credentials: Credentials,
    region: &str,
    sts_url: &str,
    cluster: &str,
    at: SystemTime,
) -> Result<String, String> {
    let url = format!(
        "{}/?Action=GetCallerIdentity&Version=2011-06-15",
        sts_url.trim_end_matches('/')
    );
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(URL_EXPIRES);
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(at)
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let headers = [(CLUSTER_ID_HEADER, cluster)];
    let signable = SignableRequest::new(
        "GET",
        url.as_str(),
        headers.into_iter(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let mut request = http::Request::get(url.as_str())
        .body(())
        .map_err(|e| e.to_string())?;
    instructions.apply_to_request_http1x(&mut request);
    let presigned = request.uri().to_string();
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(presigned);
    Ok(format!("{TOKEN_PREFIX}{encoded}"))
}

/// STS's URL in `region`, unless every AWS API is at `endpoint_override`.
pub fn sts_url(region: &str, endpoint_override: Option<&str>) -> String {
    match endpoint_override {
        Some(url) => url.to_string(),
        None => format!("https://sts.{region}.amazonaws.com/"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_a_presigned_get_caller_identity_bound_to_the_cluster() {
        let credentials = Credentials::new("AKIDEXAMPLE", "s3cret", None, None, "test");
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_500_000);
        let token = mint(
            credentials,
            "eu-west-1",
            &sts_url("eu-west-1", None),
            "prod-a",
            at,
        )
        .expect("token");
        let encoded = token.strip_prefix(TOKEN_PREFIX).expect("prefix");
        let url = String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(encoded)
                .expect("base64url"),
        )
        .expect("utf-8");
        assert!(
            url.starts_with(
                "https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&"
            ),
            "{url}"
        );
        for part in [
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Credential=AKIDEXAMPLE%2F20261205%2Feu-west-1%2Fsts%2Faws4_request",
            "X-Amz-Expires=60",
            "X-Amz-SignedHeaders=host%3Bx-k8s-aws-id",
            "X-Amz-Signature=",
        ] {
            assert!(url.contains(part), "{part} not in {url}");
        }
        assert!(!token.contains("s3cret") && !url.contains("s3cret"));
        // Another cluster's name changes the signature.
        let other = mint(
            Credentials::new("AKIDEXAMPLE", "s3cret", None, None, "test"),
            "eu-west-1",
            &sts_url("eu-west-1", None),
            "prod-b",
            at,
        )
        .expect("token");
        assert_ne!(token, other);
    }
}
