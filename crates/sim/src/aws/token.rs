//! EKS's bearer tokens, as a simulated EKS cluster's API accepts them: `k8s-aws-v1.` and a
//! base64url STS `GetCallerIdentity` URL presigned with the caller's credentials, the cluster's
//! name in its signed `x-k8s-aws-id` header (what `aws eks get-token` and rotor's token mode
//! mint). EKS replays the URL to STS and maps the identity it returns; the simulator holds no
//! secrets, so it checks what it can without the signature (as for every AWS call here): the
//! action, the signed headers, the signing date (15 minutes, EKS's validity) and that the key
//! acts for the cluster's account (its creator's, whom EKS makes admin).

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use rotor_apiserver::TokenReview;

use super::{DEFAULT_ACCOUNT, sts};

/// What a presented token must start with.
const PREFIX: &str = "k8s-aws-v1.";
/// How long EKS accepts a token after it was signed.
pub(crate) const VALIDITY: Duration = Duration::from_secs(15 * 60);
/// Clock skew tolerated for a signing date in the future.
const SKEW: Duration = Duration::from_secs(5 * 60);

/// Accepts the tokens of callers of `account`: installed on the member of an EKS cluster.
#[derive(Debug)]
pub(crate) struct EksTokens {
    pub account: String,
}

impl TokenReview for EksTokens {
    fn accepts(&self, token: &str) -> bool {
        review(token, SystemTime::now()).is_ok_and(|account| account == self.account)
    }
}

/// Why a token is refused (for the tests; the server answers 401 whatever the reason).
#[derive(Debug, PartialEq)]
pub(crate) enum Refused {
    Malformed,
    NotGetCallerIdentity,
    ClusterIdNotSigned,
    Expired,
}

/// The account of a well-formed, current token's key.
pub(crate) fn review(token: &str, now: SystemTime) -> Result<String, Refused> {
    let encoded = token.strip_prefix(PREFIX).ok_or(Refused::Malformed)?;
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(Refused::Malformed)?;
    let (_, query) = url.split_once('?').ok_or(Refused::Malformed)?;
    let param = |name: &str| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    if param("Action").as_deref() != Some("GetCallerIdentity")
        || param("Version").as_deref() != Some("2011-06-15")
    {
        return Err(Refused::NotGetCallerIdentity);
    }
    let signed = param("X-Amz-SignedHeaders").ok_or(Refused::Malformed)?;
    if !signed.split(';').any(|h| h == "x-k8s-aws-id") {
        return Err(Refused::ClusterIdNotSigned);
    }
    param("X-Amz-Signature").ok_or(Refused::Malformed)?;
    let signed_at = param("X-Amz-Date")
        .and_then(|d| amz_date(&d))
        .ok_or(Refused::Malformed)?;
    if now > signed_at + VALIDITY || signed_at > now + SKEW {
        return Err(Refused::Expired);
    }
    let credential = param("X-Amz-Credential").ok_or(Refused::Malformed)?;
    let key = credential.split('/').next().unwrap_or_default();
    Ok(sts::account_of_key(key)
        .unwrap_or(DEFAULT_ACCOUNT)
        .to_string())
}

/// `20261205T201500Z` as a time.
fn amz_date(s: &str) -> Option<SystemTime> {
    let civil = jiff::fmt::strtime::parse("%Y%m%dT%H%M%SZ", s)
        .ok()?
        .to_datetime()
        .ok()?;
    let ts = civil.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    let secs = u64::try_from(ts.as_second()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGNED_AT: &str = "20261205T201500Z";

    fn token(query: &str) -> String {
        let url = format!("https://sts.us-east-1.amazonaws.com/?{query}");
        format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url)
        )
    }

    fn query(key: &str, action: &str, signed: &str) -> String {
        format!(
            "Action={action}&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&\
             X-Amz-Credential={key}%2F20261205%2Fus-east-1%2Fsts%2Faws4_request&\
             X-Amz-Date={SIGNED_AT}&X-Amz-Expires=60&X-Amz-SignedHeaders={signed}&\
             X-Amz-Signature=abc"
        )
    }

    #[test]
    fn accepts_a_current_token_for_its_keys_account_only() {
        let at = amz_date(SIGNED_AT).unwrap();
        let minute = Duration::from_secs(60);
        let ok = token(&query(
            "AKIAEXAMPLE",
            "GetCallerIdentity",
            "host%3Bx-k8s-aws-id",
        ));
        assert_eq!(review(&ok, at + minute), Ok(DEFAULT_ACCOUNT.to_string()));
        let assumed = sts::key_for_account("210987654321");
        let theirs = token(&query(&assumed, "GetCallerIdentity", "host%3Bx-k8s-aws-id"));
        assert_eq!(review(&theirs, at), Ok("210987654321".to_string()));
        assert_eq!(
            review(&ok, at + VALIDITY + Duration::from_secs(1)),
            Err(Refused::Expired)
        );
        assert_eq!(review(&ok, at - 2 * SKEW), Err(Refused::Expired));
        let unbound = token(&query("AKIAEXAMPLE", "GetCallerIdentity", "host"));
        assert_eq!(review(&unbound, at), Err(Refused::ClusterIdNotSigned));
        let other = token(&query("AKIAEXAMPLE", "AssumeRole", "host%3Bx-k8s-aws-id"));
        assert_eq!(review(&other, at), Err(Refused::NotGetCallerIdentity));
        assert_eq!(review("k8s-aws-v1.%%%", at), Err(Refused::Malformed));
        assert_eq!(review("s3cret", at), Err(Refused::Malformed));
        let tokens = EksTokens {
            account: "210987654321".into(),
        };
        assert!(!tokens.accepts(&ok), "another account's key");
    }
}
