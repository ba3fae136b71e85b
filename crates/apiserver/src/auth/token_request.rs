//! `TokenRequest` (authentication.k8s.io/v1), the `token` subresource of a ServiceAccount that
//! `kubectl create token` creates: a signed token for a ServiceAccount that exists, for
//! `expirationSeconds` (default an hour, at least ten minutes, as upstream).

use http::Method;
use serde_json::{Value, json};

use super::service_account::{
    DEFAULT_EXPIRATION_SECONDS, MAX_EXPIRATION_SECONDS, MIN_EXPIRATION_SECONDS, Named,
};
use crate::error::{ApiError, ApiResult, Cause};
use crate::server::ApiServer;

const KIND: &str = "TokenRequest";
const GROUP: &str = "authentication.k8s.io";

/// The (namespace, ServiceAccount) of a `TokenRequest` create at `path`; None for any other
/// request.
pub fn target_of<'a>(method: &Method, path: &'a str) -> Option<(&'a str, &'a str)> {
    if *method != Method::POST {
        return None;
    }
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    match rest.trim_end_matches('/').split('/').collect::<Vec<_>>()[..] {
        [ns, "serviceaccounts", name, "token"] if !ns.is_empty() && !name.is_empty() => {
            Some((ns, name))
        }
        _ => None,
    }
}

/// The `uid` of ServiceAccount `name` in `ns`; upstream's 404 when there is none.
async fn account(server: &ApiServer, ns: &str, name: &str) -> ApiResult<Named> {
    let res = server
        .registry()
        .lookup("", "v1", "serviceaccounts")
        .ok_or_else(|| ApiError::internal("no serviceaccounts resource"))?;
    let sa = server.get(&res, Some(ns), name).await?;
    let uid = sa["metadata"]["uid"].as_str().unwrap_or_default();
    Ok(Named {
        namespace: ns.to_string(),
        name: name.to_string(),
        uid: uid.to_string(),
    })
}

/// Ok when the ServiceAccount a token names still exists with the uid it was issued for (a
/// deleted one's tokens, or a deleted and recreated one's old tokens, fail); why not otherwise.
pub async fn still_there(server: &ApiServer, named: &Named) -> Result<(), String> {
    let found = account(server, &named.namespace, &named.name).await;
    match found {
        Ok(now) if now.uid == named.uid => Ok(()),
        Ok(_) => Err(format!(
            "ServiceAccount {}/{} was recreated since the token was issued",
            named.namespace, named.name
        )),
        Err(_) => Err(format!(
            "ServiceAccount {}/{} no longer exists",
            named.namespace, named.name
        )),
    }
}

/// The TokenRequest kind as a resource, to decode a request body by its content type (kubectl
/// sends protobuf).
pub fn resource() -> std::sync::Arc<crate::registry::Resource> {
    std::sync::Arc::new(crate::registry::Resource {
        api_version: format!("{GROUP}/v1"),
        group: GROUP.to_string(),
        version: "v1".to_string(),
        plural: "tokenrequests".to_string(),
        singular: "tokenrequest".to_string(),
        kind: KIND.to_string(),
        namespaced: true,
        short_names: Vec::new(),
        categories: Vec::new(),
        has_status: false,
        scale: None,
        definition: "io.k8s.api.authentication.v1.TokenRequest".to_string(),
        custom_schema: None,
        printer_columns: Vec::new(),
        selectable_fields: Vec::new(),
        conversion: None,
        read_defaults: false,
    })
}

/// Creates the token `request` (a decoded TokenRequest) asks for ServiceAccount `name` in
/// `ns`: the created TokenRequest with `status.token`.
pub async fn create(server: &ApiServer, ns: &str, name: &str, request: &Value) -> ApiResult<Value> {
    let accounts = server.config().service_accounts.as_ref().ok_or_else(|| {
        ApiError::method_not_allowed("this server issues no ServiceAccount tokens")
    })?;
    let spec = &request["spec"];
    let seconds = expiration(name, &spec["expirationSeconds"])?;
    if !spec["boundObjectRef"].is_null() {
        let cause = cause(
            "spec.boundObjectRef",
            "FieldValueNotSupported",
            "Unsupported value: rotor does not bind tokens to objects".into(),
        );
        return Err(ApiError::invalid(KIND, GROUP, name, vec![cause]));
    }
    let audiences: Vec<String> = match &spec["audiences"] {
        Value::Array(list) => list
            .iter()
            .filter_map(|a| a.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    };
    let named = account(server, ns, name).await?;
    let now = chrono::Utc::now();
    let token = accounts
        .issue(&named, &audiences, now.timestamp(), seconds)
        .map_err(|e| ApiError::internal(format!("signing the token: {e}")))?;
    let expires = now + chrono::Duration::seconds(seconds);
    let audiences = match audiences.is_empty() {
        true => accounts.audiences().to_vec(),
        false => audiences,
    };
    Ok(json!({
        "kind": KIND,
        "apiVersion": format!("{GROUP}/v1"),
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)},
        "spec": {"audiences": audiences, "expirationSeconds": seconds, "boundObjectRef": null},
        "status": {
            "token": token,
            "expirationTimestamp": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        },
    }))
}

/// `spec.expirationSeconds`: absent → an hour; under ten minutes or over 2^32 seconds → 422
/// naming the field, as upstream.
fn expiration(name: &str, given: &Value) -> ApiResult<i64> {
    let seconds = match given {
        Value::Null => return Ok(DEFAULT_EXPIRATION_SECONDS),
        v => v.as_i64().ok_or_else(|| {
            let c = cause(
                "spec.expirationSeconds",
                "FieldValueInvalid",
                format!("Invalid value: {v}: must be a whole number of seconds"),
            );
            ApiError::invalid(KIND, GROUP, name, vec![c])
        })?,
    };
    let problem = if seconds < MIN_EXPIRATION_SECONDS {
        "may not specify a duration less than 10 minutes"
    } else if seconds > MAX_EXPIRATION_SECONDS {
        "may not specify a duration larger than 2^32 seconds"
    } else {
        return Ok(seconds);
    };
    let c = cause(
        "spec.expirationSeconds",
        "FieldValueInvalid",
        format!("Invalid value: {seconds}: {problem}"),
    );
    Err(ApiError::invalid(KIND, GROUP, name, vec![c]))
}

fn cause(field: &str, reason: &'static str, message: String) -> Cause {
    Cause {
        field: field.to_string(),
        message,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_creates_of_the_token_subresource() {
        let path = "/api/v1/namespaces/ci/serviceaccounts/deployer/token";
        assert_eq!(target_of(&Method::POST, path), Some(("ci", "deployer")));
        assert_eq!(target_of(&Method::GET, path), None);
        let status = "/api/v1/namespaces/ci/serviceaccounts/deployer/status";
        assert_eq!(target_of(&Method::POST, status), None);
        assert_eq!(
            target_of(&Method::POST, "/api/v1/namespaces/ci/serviceaccounts"),
            None
        );
    }

    #[test]
    fn expirations_as_upstream_bounds_them() {
        let cases = [
            (Value::Null, Some(3600)),
            (json!(600), Some(600)),
            (json!(86400), Some(86400)),
            (json!(599), None),
            (json!(1u64 << 33), None),
            (json!("1h"), None),
        ];
        for (given, want) in cases {
            match (expiration("sa", &given), want) {
                (Ok(got), Some(want)) => assert_eq!(got, want, "{given}"),
                (Err(e), None) => {
                    assert!(
                        e.message.contains("spec.expirationSeconds"),
                        "{}",
                        e.message
                    );
                    assert!(
                        e.message
                            .starts_with("TokenRequest.authentication.k8s.io \"sa\" is invalid"),
                        "{}",
                        e.message
                    );
                }
                (got, want) => panic!("{given}: {got:?}, wanted {want:?}"),
            }
        }
    }
}
