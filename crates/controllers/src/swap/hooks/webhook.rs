//! One call of a webhook hook: the versioned JSON body, signed, POSTed once within the hook's
//! timeout over the controllers' shared HTTP client, and the answer read as a typed
//! [`HookReply`]. Errors name the hook, never its URL or key (reqwest's errors quote the URL,
//! so they are stripped of it).

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use rotor_api::{HookPoint, Phase, SecretKeyRef};
use serde::{Deserialize, Serialize};

use super::signature;

/// The body's `apiVersion`: receivers match on it.
pub const API_VERSION: &str = "rotor.dev/v1alpha1";
/// The body's `kind`.
pub const KIND: &str = "HookRequest";
/// The longest deny reason kept (in status and Events); longer ones are cut.
const MAX_REASON_CHARS: usize = 256;

/// What a hook receiver is told.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookRequest {
    pub api_version: String,
    pub kind: String,
    /// The hook's name.
    pub hook: String,
    pub point: HookPoint,
    /// The Cluster's name.
    pub cluster: String,
    /// The ClusterSwap's name.
    pub swap: String,
    /// The swap's phase when the hook is called.
    pub phase: Phase,
    /// The traffic step (index into `trafficSteps`), for `AfterEachStep`.
    pub step: Option<u32>,
    /// The instance serving when the swap began.
    pub blue: String,
    /// The instance the swap builds (none before provisioning).
    pub green: Option<String>,
    pub weights: HookWeights,
    /// 1 for the first call of this hook at this point (and step), then 2, …: a receiver that
    /// must act once dedupes on (swap, hook, point, step).
    pub attempt: u32,
}

/// Green's share of the traffic, in percent: now, and after the swap's next traffic move.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookWeights {
    pub current: u8,
    /// None when no traffic move follows this point (after a rollback, before blue is deleted).
    pub next: Option<u8>,
}

/// A receiver's answer, the JSON body of a 2xx reply: `{"answer": "Allow"}`,
/// `{"answer": "Deny", "reason": "…"}` or `{"answer": "RetryAfter", "seconds": N}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer")]
pub enum HookReply {
    Allow,
    Deny {
        #[serde(default)]
        reason: String,
    },
    RetryAfter {
        seconds: u32,
    },
}

/// What one call got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Called {
    /// A reply to act on.
    Answered(HookReply),
    /// No answer that may pass by itself (no connection, a timeout, 429, 5xx): worth a retry.
    Transient(String),
    /// No answer a retry would change (another status, a body that does not parse, the
    /// Secret unreadable).
    Final(String),
}

/// The signing key from its Secret, read at every call (a rotated key applies at once).
pub(crate) async fn read_key(
    client: &kube::Client,
    from: &SecretKeyRef,
) -> Result<Vec<u8>, Called> {
    let place = format!(
        "Secret {}/{}, key {:?}",
        from.namespace(),
        from.name,
        from.key
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), from.namespace());
    let secret = secrets
        .get_opt(&from.name)
        .await
        .map_err(|e| Called::Transient(format!("reading {place}: {e}")))?
        .ok_or_else(|| Called::Final(format!("{place}: no such Secret")))?;
    let key = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&from.key))
        .ok_or_else(|| Called::Final(format!("{place}: no such key")))?;
    if key.0.is_empty() {
        return Err(Called::Final(format!("{place}: the key is empty")));
    }
    Ok(key.0.clone())
}

/// POSTs `request` to `url`, signed with `key` at `now` (Unix seconds), within `timeout`.
pub(crate) async fn call(
    http: &reqwest::Client,
    url: &str,
    key: &[u8],
    request: &HookRequest,
    now: i64,
    timeout: Duration,
) -> Called {
    let Ok(url) = reqwest::Url::parse(url) else {
        return Called::Final("the URL does not parse".into());
    };
    // A typed struct of strings and numbers: serializing cannot fail.
    let body = serde_json::to_vec(request).unwrap_or_default();
    let sent = http
        .post(url)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(signature::HEADER, signature::sign(key, now, &body))
        .body(body)
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(e) if e.is_timeout() => {
            return Called::Transient(format!("no answer within {timeout:?}"));
        }
        Err(e) => return Called::Transient(e.without_url().to_string()),
    };
    let status = response.status().as_u16();
    match status {
        200..=299 => {}
        429 | 500..=599 => return Called::Transient(format!("HTTP {status}")),
        other => return Called::Final(format!("HTTP {other}")),
    }
    match response.bytes().await {
        Ok(bytes) => parse_reply(&bytes),
        Err(e) if e.is_timeout() => Called::Transient(format!("no answer within {timeout:?}")),
        Err(e) => Called::Transient(e.without_url().to_string()),
    }
}

/// A 2xx body as a reply; a deny's reason cut to a length fit for status and Events.
pub(crate) fn parse_reply(body: &[u8]) -> Called {
    match serde_json::from_slice::<HookReply>(body) {
        Ok(HookReply::Deny { reason }) => Called::Answered(HookReply::Deny {
            reason: reason.chars().take(MAX_REASON_CHARS).collect(),
        }),
        Ok(reply) => Called::Answered(reply),
        Err(e) => Called::Final(format!(
            "the answer is not {{\"answer\": \"Allow\" | \"Deny\" | \"RetryAfter\"}}: {e}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_request_is_versioned_and_names_everything() {
        let request = HookRequest {
            api_version: API_VERSION.into(),
            kind: KIND.into(),
            hook: "smoke".into(),
            point: HookPoint::AfterEachStep,
            cluster: "prod-a".into(),
            swap: "upgrade".into(),
            phase: Phase::ShiftingTraffic,
            step: Some(1),
            blue: "prod-a".into(),
            green: Some("prod-a-g1".into()),
            weights: HookWeights {
                current: 50,
                next: Some(100),
            },
            attempt: 1,
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({
                "apiVersion": "rotor.dev/v1alpha1", "kind": "HookRequest", "hook": "smoke",
                "point": "AfterEachStep", "cluster": "prod-a", "swap": "upgrade",
                "phase": "ShiftingTraffic", "step": 1, "blue": "prod-a", "green": "prod-a-g1",
                "weights": {"current": 50, "next": 100}, "attempt": 1,
            })
        );
    }

    #[test]
    fn replies_parse_to_what_they_say() {
        assert_eq!(
            parse_reply(br#"{"answer":"Allow"}"#),
            Called::Answered(HookReply::Allow)
        );
        assert_eq!(
            parse_reply(br#"{"answer":"Deny","reason":"cache cold"}"#),
            Called::Answered(HookReply::Deny {
                reason: "cache cold".into()
            })
        );
        assert_eq!(
            parse_reply(br#"{"answer":"RetryAfter","seconds":5}"#),
            Called::Answered(HookReply::RetryAfter { seconds: 5 })
        );
        let long = format!(r#"{{"answer":"Deny","reason":"{}"}}"#, "x".repeat(1000));
        let Called::Answered(HookReply::Deny { reason }) = parse_reply(long.as_bytes()) else {
            panic!("a deny");
        };
        assert_eq!(reason.len(), MAX_REASON_CHARS);
        for bad in [
            &b"ok"[..],
            br#"{"answer":"Maybe"}"#,
            br#"{"answer":"RetryAfter"}"#,
        ] {
            assert!(matches!(parse_reply(bad), Called::Final(_)), "{bad:?}");
        }
    }
}
