//! STS (awsQuery: a form POST, an XML answer): `GetCallerIdentity` and `AssumeRole`, what the
//! EKS provider asks to know its own account and to act in others.

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;

use super::{Caller, request_id, xml_escape};
use crate::Sim;

const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// Access keys `AssumeRole` hands out: this prefix, the role's account, a random tail.
const ASSUMED_PREFIX: &str = "ASIA";

pub(super) fn routes(path: &str) -> axum::Router<Arc<Sim>> {
    axum::Router::new().route(path, post(action))
}

/// The account an access key acts for, when `AssumeRole` made it.
pub(crate) fn account_of_key(key: &str) -> Option<&str> {
    let account = key.strip_prefix(ASSUMED_PREFIX)?.get(..12)?;
    account
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then_some(account)
}

/// A fresh access key of `account` (20 characters, as AWS's).
pub(crate) fn key_for_account(account: &str) -> String {
    format!("{ASSUMED_PREFIX}{account}{:04X}", rand::random::<u16>())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Query {
    action: String,
    role_arn: Option<String>,
    role_session_name: Option<String>,
}

async fn action(
    State(_sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Form(q): Form<Query>,
) -> Response {
    let caller = Caller::of(&headers);
    match q.action.as_str() {
        "GetCallerIdentity" => xml(&format!(
            "<GetCallerIdentityResponse xmlns=\"{NAMESPACE}\"><GetCallerIdentityResult>\
             <Arn>arn:aws:iam::{a}:user/rotor-sim</Arn><UserId>AIDAROTORSIM</UserId>\
             <Account>{a}</Account></GetCallerIdentityResult>\
             <ResponseMetadata><RequestId>{id}</RequestId></ResponseMetadata>\
             </GetCallerIdentityResponse>",
            a = caller.account,
            id = request_id()
        )),
        "AssumeRole" => assume_role(q.role_arn.as_deref(), q.role_session_name.as_deref()),
        other => error(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            &format!("the simulator's STS does not serve {other}"),
        ),
    }
}

/// Credentials of the role's account, valid for an hour.
fn assume_role(role_arn: Option<&str>, session: Option<&str>) -> Response {
    let (Some(role_arn), Some(session)) = (role_arn, session) else {
        return error(
            StatusCode::BAD_REQUEST,
            "MissingParameter",
            "RoleArn and RoleSessionName are required",
        );
    };
    // arn:aws:iam::ACCOUNT:role/NAME
    let mut parts = role_arn.splitn(6, ':');
    let (account, resource) = (parts.nth(4), parts.next());
    let role = resource.and_then(|r| r.strip_prefix("role/"));
    let (Some(account), Some(role)) = (account.filter(|a| a.len() == 12), role) else {
        return error(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            &format!("RoleArn {role_arn:?} is not arn:aws:iam::ACCOUNT:role/NAME"),
        );
    };
    let expires = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    let expires = iso8601(expires);
    xml(&format!(
        "<AssumeRoleResponse xmlns=\"{NAMESPACE}\"><AssumeRoleResult><Credentials>\
         <AccessKeyId>{key}</AccessKeyId><SecretAccessKey>{secret:032x}</SecretAccessKey>\
         <SessionToken>{token:032x}</SessionToken><Expiration>{expires}</Expiration>\
         </Credentials><AssumedRoleUser>\
         <Arn>arn:aws:sts::{account}:assumed-role/{role}/{session}</Arn>\
         <AssumedRoleId>AROAROTORSIM:{session}</AssumedRoleId></AssumedRoleUser>\
         </AssumeRoleResult><ResponseMetadata><RequestId>{id}</RequestId></ResponseMetadata>\
         </AssumeRoleResponse>",
        key = key_for_account(account),
        secret = rand::random::<u128>(),
        token = rand::random::<u128>(),
        role = xml_escape(role),
        session = xml_escape(session),
        id = request_id(),
    ))
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub(super) fn iso8601(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The date `days` after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn xml(body: &str) -> Response {
    (
        [(header::CONTENT_TYPE, "text/xml")],
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>{body}"),
    )
        .into_response()
}

/// awsQuery's error: `<ErrorResponse><Error><Type><Code><Message>`.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<ErrorResponse xmlns=\"{NAMESPACE}\"><Error><Type>Sender</Type><Code>{code}</Code>\
         <Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
        xml_escape(message),
        request_id()
    );
    (status, xml(&body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assumed_keys_carry_their_account() {
        let key = key_for_account("111111111111");
        assert_eq!(key.len(), 20);
        assert_eq!(account_of_key(&key), Some("111111111111"));
        assert_eq!(account_of_key("testing"), None);
        assert_eq!(account_of_key("ASIAshort"), None);
        assert_eq!(account_of_key("AKIA111111111111ABCD"), None);
    }

    #[test]
    fn dates_are_iso8601() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_835_000_000);
        assert_eq!(iso8601(t), "2028-02-24T10:13:20Z");
        assert_eq!(iso8601(std::time::UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }
}
