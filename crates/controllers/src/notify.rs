//! Notifications of a rollout's milestones to webhook sinks: one POST of JSON per milestone
//! and sink, Slack-compatible (an incoming webhook's `{"text": …}`) or rotor's own generic
//! body, versioned so receivers can rely on its fields.
//!
//! A sink's URL is treated as a secret (a Slack webhook's path is its credential): it comes
//! from a Secret, and no error, log line or Event carries it; errors name the sink. Delivery
//! is bounded (a timeout per attempt, a few attempts with backoff on what may pass: connection
//! failures, 429 and 5xx) and never holds the rollout back: a milestone a sink did not take is
//! reported, not retried forever.

use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use rotor_api::{Milestone, NotificationFormat as Format, SecretKeyRef};
use serde_json::{Value, json};

/// The generic body's version: receivers match on it.
pub const GENERIC_VERSION: &str = "rotor.dev/v1alpha1";

/// Attempts per notification and sink.
const ATTEMPTS: u32 = 3;
/// The pause after the first failed attempt; doubled after each.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// One milestone of one rollout.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    pub rollout: String,
    pub milestone: Milestone,
    /// The wave it concerns, when it concerns one.
    pub wave: Option<String>,
    /// What happened, in the words of the rollout's Event.
    pub message: String,
    /// When, RFC 3339.
    pub time: String,
}

/// The body `format` gives `n`.
pub fn body(format: Format, n: &Notification) -> Value {
    match format {
        Format::Slack => {
            let sign = if n.milestone.wants_attention() {
                ":warning: "
            } else {
                ""
            };
            let wave = n
                .wave
                .as_deref()
                .map(|w| format!(", wave {w}"))
                .unwrap_or_default();
            json!({"text": format!(
                "{sign}*rollout {}*{wave}: {} — {}",
                n.rollout,
                n.milestone.as_str(),
                n.message
            )})
        }
        Format::Generic => json!({
            "apiVersion": GENERIC_VERSION,
            "kind": "RolloutNotification",
            "rollout": n.rollout,
            "event": n.milestone.as_str(),
            "wave": n.wave,
            "message": n.message,
            "time": n.time,
        }),
    }
}

/// Why a sink did not take a notification. Names the sink, never its URL.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    #[error("notification sink {sink:?}: Secret {namespace}/{name}, key {key:?}: {why}")]
    Secret {
        sink: String,
        namespace: String,
        name: String,
        key: String,
        why: String,
    },
    #[error("notification sink {sink:?}: its URL is not an http(s) URL")]
    BadUrl { sink: String },
    #[error("notification sink {sink:?} refused the notification: HTTP {status}")]
    Refused { sink: String, status: u16 },
    #[error(
        "notification sink {sink:?} did not take the notification after {attempts} attempts: {last}"
    )]
    GaveUp {
        sink: String,
        attempts: u32,
        last: String,
    },
}

/// How long one attempt may take, connection included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Delivers notifications over one HTTP client, built on the first one.
pub struct Notifier {
    http: OnceLock<Result<reqwest::Client, String>>,
    /// Per attempt, connection included.
    timeout: Duration,
}

impl Default for Notifier {
    fn default() -> Self {
        Notifier::new(ATTEMPT_TIMEOUT)
    }
}

impl Notifier {
    pub fn new(timeout: Duration) -> Self {
        Notifier {
            http: OnceLock::new(),
            timeout,
        }
    }

    /// The sink's URL, read from its Secret now (so a rotated URL is used at once).
    pub async fn url(
        client: &kube::Client,
        sink: &str,
        from: &SecretKeyRef,
    ) -> Result<String, NotifyError> {
        let failed = |why: String| NotifyError::Secret {
            sink: sink.into(),
            namespace: from.namespace().into(),
            name: from.name.clone(),
            key: from.key.clone(),
            why,
        };
        let secrets: Api<Secret> = Api::namespaced(client.clone(), from.namespace());
        let secret = secrets
            .get_opt(&from.name)
            .await
            .map_err(|e| failed(format!("reading it: {e}")))?
            .ok_or_else(|| failed("no such Secret".into()))?;
        let value = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&from.key))
            .ok_or_else(|| failed("no such key".into()))?;
        String::from_utf8(value.0.clone())
            .map(|url| url.trim().to_string())
            .map_err(|_| failed("the value is not UTF-8".into()))
    }

    /// POSTs `n` to the sink `name` at `url` as `format` asks, retrying what may pass.
    pub async fn send(
        &self,
        name: &str,
        url: &str,
        format: Format,
        n: &Notification,
    ) -> Result<(), NotifyError> {
        let parsed = reqwest::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| NotifyError::BadUrl { sink: name.into() })?;
        let payload = body(format, n);
        let mut backoff = FIRST_BACKOFF;
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            match self.attempt(parsed.clone(), &payload).await {
                Ok(()) => return Ok(()),
                Err(Attempt::Final(status)) => {
                    return Err(NotifyError::Refused {
                        sink: name.into(),
                        status,
                    });
                }
                Err(Attempt::Again(why)) => last = why,
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
        Err(NotifyError::GaveUp {
            sink: name.into(),
            attempts: ATTEMPTS,
            last,
        })
    }

    async fn attempt(&self, url: reqwest::Url, payload: &Value) -> Result<(), Attempt> {
        let http = self
            .http
            .get_or_init(crate::outbound::http_client)
            .as_ref()
            .map_err(|e| Attempt::Again(e.clone()))?;
        let sent = http
            .post(url)
            .timeout(self.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(payload.to_string())
            .send()
            .await;
        let status = match sent {
            Ok(response) => response.status(),
            // Without the URL: reqwest's errors quote it.
            Err(e) if e.is_timeout() => {
                return Err(Attempt::Again(format!(
                    "no answer within {:?}",
                    self.timeout
                )));
            }
            Err(e) => return Err(Attempt::Again(e.without_url().to_string())),
        };
        match status.as_u16() {
            200..=299 => Ok(()),
            429 | 500..=599 => Err(Attempt::Again(format!("HTTP {}", status.as_u16()))),
            other => Err(Attempt::Final(other)),
        }
    }
}

/// One attempt's failure: worth another, or final.
enum Attempt {
    Again(String),
    Final(u16),
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::extract::State;
    use axum::http::StatusCode;

    use super::*;

    fn paused() -> Notification {
        Notification {
            rollout: "fleet-1-35".into(),
            milestone: Milestone::Paused,
            wave: Some("canary".into()),
            message: "failure budget exceeded: prod-a rolled back".into(),
            time: "2026-12-06T06:00:00Z".into(),
        }
    }

    #[test]
    fn bodies_are_slack_text_or_every_field_apart() {
        assert_eq!(
            body(Format::Slack, &paused()),
            json!({"text": ":warning: *rollout fleet-1-35*, wave canary: Paused — failure budget exceeded: prod-a rolled back"})
        );
        let generic = body(Format::Generic, &paused());
        assert_eq!(generic["apiVersion"], GENERIC_VERSION);
        assert_eq!(
            (&generic["event"], &generic["wave"], &generic["rollout"]),
            (&json!("Paused"), &json!("canary"), &json!("fleet-1-35"))
        );
        let finished = Notification {
            milestone: Milestone::Finished,
            wave: None,
            ..paused()
        };
        assert!(
            !body(Format::Slack, &finished)["text"]
                .as_str()
                .unwrap()
                .contains("warning")
        );
        assert_eq!(body(Format::Generic, &finished)["wave"], Value::Null);
    }

    /// A receiver on a loopback port answering the statuses given in turn (then 200), and
    /// keeping the bodies it was sent.
    async fn receiver(answers: Vec<u16>) -> (String, Arc<Mutex<Vec<Value>>>) {
        #[derive(Clone)]
        struct Rx {
            answers: Arc<Mutex<Vec<u16>>>,
            got: Arc<Mutex<Vec<Value>>>,
        }
        async fn take(State(rx): State<Rx>, body: String) -> StatusCode {
            rx.got
                .lock()
                .unwrap()
                .push(serde_json::from_str(&body).unwrap_or(Value::Null));
            let mut answers = rx.answers.lock().unwrap();
            let code = if answers.is_empty() {
                200
            } else {
                answers.remove(0)
            };
            StatusCode::from_u16(code).unwrap()
        }
        let got = Arc::new(Mutex::new(Vec::new()));
        let rx = Rx {
            answers: Arc::new(Mutex::new(answers)),
            got: got.clone(),
        };
        let app = axum::Router::new()
            .route("/hooks/T0/B0/s3cret", axum::routing::post(take))
            .with_state(rx);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/hooks/T0/B0/s3cret"), got)
    }

    fn notifier() -> Notifier {
        Notifier::default()
    }

    #[tokio::test]
    async fn a_sink_gets_the_body_and_a_busy_one_is_tried_again() {
        let (url, got) = receiver(vec![503, 429]).await;
        notifier()
            .send("ops", &url, Format::Generic, &paused())
            .await
            .expect("taken on the third attempt");
        let got = got.lock().unwrap().clone();
        assert_eq!(got.len(), 3);
        assert_eq!(got[2], body(Format::Generic, &paused()));
    }

    #[tokio::test]
    async fn refusals_and_unreachable_sinks_are_named_without_their_url() {
        let (url, got) = receiver(vec![404]).await;
        let err = notifier()
            .send("slack", &url, Format::Slack, &paused())
            .await
            .expect_err("404");
        assert_eq!(
            err,
            NotifyError::Refused {
                sink: "slack".into(),
                status: 404
            }
        );
        assert_eq!(got.lock().unwrap().len(), 1, "a refusal is not retried");

        // Nothing listens on port 1: every attempt fails, and the error keeps the URL out.
        let err = notifier()
            .send(
                "slack",
                "http://127.0.0.1:1/hooks/T0/B0/s3cret",
                Format::Slack,
                &paused(),
            )
            .await
            .expect_err("unreachable");
        assert!(
            matches!(err, NotifyError::GaveUp { attempts: 3, .. }),
            "{err:?}"
        );
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(!shown.contains("s3cret"), "{shown}");
        }
        let err = notifier()
            .send("x", "file:///etc/passwd", Format::Slack, &paused())
            .await
            .expect_err("not http");
        assert_eq!(err, NotifyError::BadUrl { sink: "x".into() });
    }
}
