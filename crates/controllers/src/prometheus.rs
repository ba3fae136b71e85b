//! Instant queries to Prometheus' HTTP API (`GET /api/v1/query`), for the metric gates: one
//! bounded request per evaluation, its answer decoded into samples or a typed error. No
//! retries: a failed query is an inconclusive evaluation, and the gate's next one is the retry.
//!
//! reqwest (already in the tree through the Google and Azure clients, rustls on ring) rather
//! than a Prometheus client crate: one GET and one small JSON shape are all a gate needs.
//! prometheus-http-query 0.9 (on reqwest 0.13) would do, but adds `time`, `mime` and
//! `enum-as-inner`, turns on reqwest's `form`/`json`/`query` features (a second build of it),
//! defaults to reqwest's default TLS (aws-lc, a C build) and reads bodies unbounded.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use serde::Deserialize;

/// Bound on an answer's body: a gate's query returns a few series, not a dump.
const MAX_BODY_BYTES: usize = 1 << 20;
/// Bound on the error text kept from an answer: it goes into status and Events.
const MAX_ERROR_CHARS: usize = 512;

/// Where the gates' queries go when a gate names no Prometheus, and the HTTP client they share.
#[derive(Default)]
pub struct Prometheus {
    /// `rotor serve --prometheus-url`.
    default_url: Option<String>,
    http: OnceLock<Result<reqwest::Client, String>>,
}

/// One series of an answer, or the answer itself when Prometheus returns a scalar.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The series' labels (empty for a scalar, or an aggregation without `by`).
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    /// The value as Prometheus wrote it (`0.0021`, `NaN`, `+Inf`).
    pub raw: String,
}

impl Sample {
    /// The series as PromQL writes it: `up{instance="a",job="b"}`, empty for no labels.
    pub fn series(&self) -> String {
        let name = self.labels.get("__name__").map_or("", String::as_str);
        let pairs: Vec<String> = self
            .labels
            .iter()
            .filter(|(k, _)| *k != "__name__")
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        if pairs.is_empty() {
            return name.to_string();
        }
        format!("{name}{{{}}}", pairs.join(","))
    }
}

/// Why a query has no answer to judge. Messages name the Prometheus by its URL, which carries
/// no credentials (refused in a gate's spec and in `--prometheus-url`).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum QueryError {
    #[error("no Prometheus: the gate names none and rotor serve has no --prometheus-url")]
    NoServer,
    #[error("Prometheus URL {url:?} is not usable: {message}")]
    BadUrl { url: String, message: String },
    #[error("Prometheus at {url} did not answer within {after:?}")]
    TimedOut { url: String, after: Duration },
    #[error("Prometheus at {url} is unreachable: {message}")]
    Unreachable { url: String, message: String },
    #[error("Prometheus at {url} refused the query ({error_type}): {message}")]
    Refused {
        url: String,
        error_type: String,
        message: String,
    },
    #[error("Prometheus at {url} answered HTTP {status}, not its query API's JSON")]
    Status { url: String, status: u16 },
    #[error("Prometheus at {url} answered what its query API does not: {message}")]
    Protocol { url: String, message: String },
    #[error("the query returns a {kind}; a gate needs an instant vector or a scalar")]
    Unsupported { kind: String },
}

impl Prometheus {
    /// Gates that name no Prometheus ask the one at `url`.
    pub fn with_default_url(url: Option<String>) -> Self {
        Prometheus {
            default_url: url,
            http: OnceLock::new(),
        }
    }

    /// The Prometheus a gate asks: its own, else the default.
    pub fn url_for<'a>(&'a self, gate: Option<&'a str>) -> Result<&'a str, QueryError> {
        gate.or(self.default_url.as_deref())
            .ok_or(QueryError::NoServer)
    }

    /// Built once, on the first query.
    fn http(&self) -> Result<&reqwest::Client, String> {
        self.http
            .get_or_init(crate::outbound::http_client)
            .as_ref()
            .map_err(Clone::clone)
    }

    /// `query` at Prometheus `url` now, bounded by `timeout` (connection included; Prometheus
    /// is told the same bound, so it stops evaluating when rotor stops waiting).
    pub async fn instant_query(
        &self,
        url: &str,
        query: &str,
        timeout: Duration,
    ) -> Result<Vec<Sample>, QueryError> {
        let endpoint = query_url(url, query, timeout)?;
        let http = self.http().map_err(|message| QueryError::Unreachable {
            url: url.to_string(),
            message,
        })?;
        let exchange = async {
            let response = http
                .get(endpoint)
                .timeout(timeout)
                .send()
                .await
                .map_err(|e| transport(url, timeout, e))?;
            let status = response.status().as_u16();
            let body = read_bounded(url, timeout, response).await?;
            decode(url, status, &body)
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(QueryError::TimedOut {
                    url: url.to_string(),
                    after: timeout,
                })
            })
    }
}

/// `{url}/api/v1/query?query=…&timeout=…`.
fn query_url(url: &str, query: &str, timeout: Duration) -> Result<reqwest::Url, QueryError> {
    let base = format!("{}/api/v1/query", url.trim_end_matches('/'));
    let mut endpoint = reqwest::Url::parse(&base).map_err(|e| QueryError::BadUrl {
        url: url.to_string(),
        message: e.to_string(),
    })?;
    if !matches!(endpoint.scheme(), "http" | "https") || !endpoint.username().is_empty() {
        return Err(QueryError::BadUrl {
            url: url.to_string(),
            message: "must be http or https, without credentials".into(),
        });
    }
    endpoint
        .query_pairs_mut()
        .append_pair("query", query)
        .append_pair("timeout", &format!("{}ms", timeout.as_millis().max(1)));
    Ok(endpoint)
}

/// A transport failure, without the request's URL (reqwest would print it with the query).
fn transport(url: &str, timeout: Duration, e: reqwest::Error) -> QueryError {
    if e.is_timeout() {
        return QueryError::TimedOut {
            url: url.to_string(),
            after: timeout,
        };
    }
    QueryError::Unreachable {
        url: url.to_string(),
        message: crate::chain(&e.without_url()),
    }
}

async fn read_bounded(
    url: &str,
    timeout: Duration,
    mut response: reqwest::Response,
) -> Result<Vec<u8>, QueryError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport(url, timeout, e))?
    {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(QueryError::Protocol {
                url: url.to_string(),
                message: format!("an answer over {MAX_BODY_BYTES} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The query API's envelope: `{"status":"success","data":…}` or
/// `{"status":"error","errorType":…,"error":…}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum Data {
    Vector(Vec<VectorSample>),
    /// `[unix time, "value"]`.
    Scalar((f64, String)),
    Matrix(serde::de::IgnoredAny),
    String(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct VectorSample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    /// Absent for a native histogram sample (`histogram` instead), which no threshold judges.
    #[serde(default)]
    value: Option<(f64, String)>,
}

/// An answer's samples, or why there are none to judge.
pub(crate) fn decode(url: &str, status: u16, body: &[u8]) -> Result<Vec<Sample>, QueryError> {
    let protocol = |message: String| QueryError::Protocol {
        url: url.to_string(),
        message,
    };
    let Ok(envelope) = serde_json::from_slice::<Envelope>(body) else {
        return Err(if status == 200 {
            protocol("a body that is not its JSON".into())
        } else {
            QueryError::Status {
                url: url.to_string(),
                status,
            }
        });
    };
    if envelope.status != "success" {
        return Err(QueryError::Refused {
            url: url.to_string(),
            error_type: bounded(envelope.error_type.unwrap_or_else(|| status.to_string())),
            message: bounded(envelope.error.unwrap_or_default()),
        });
    }
    match envelope.data {
        Some(Data::Vector(series)) => series
            .into_iter()
            .map(|s| {
                let (_, raw) = s
                    .value
                    .ok_or_else(|| protocol("a sample without a value".into()))?;
                sample(s.metric, raw).map_err(protocol)
            })
            .collect(),
        Some(Data::Scalar((_, raw))) => Ok(vec![sample(BTreeMap::new(), raw).map_err(protocol)?]),
        Some(Data::Matrix(_)) => Err(QueryError::Unsupported {
            kind: "range vector".into(),
        }),
        Some(Data::String(_)) => Err(QueryError::Unsupported {
            kind: "string".into(),
        }),
        None => Err(protocol("success without data".into())),
    }
}

/// At most [`MAX_ERROR_CHARS`] of what a server wrote, marked when cut.
fn bounded(text: String) -> String {
    if text.chars().count() <= MAX_ERROR_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_ERROR_CHARS).collect();
    cut.push('…');
    cut
}

fn sample(labels: BTreeMap<String, String>, raw: String) -> Result<Sample, String> {
    let value = parse_value(&raw)
        .ok_or_else(|| format!("the value {:?} is not a number", bounded(raw.clone())))?;
    Ok(Sample { labels, value, raw })
}

/// A value as Prometheus formats it: Go's `strconv.FormatFloat`, or `NaN`, `+Inf`, `-Inf`.
fn parse_value(raw: &str) -> Option<f64> {
    match raw {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => raw.parse().ok().filter(|v: &f64| v.is_finite()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://prometheus:9090";

    #[test]
    fn vectors_and_scalars_become_samples() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"up","instance":"g","job":"app"},"value":[1712345678.5,"0.25"]},
            {"metric":{},"value":[1712345678.5,"NaN"]},
            {"metric":{"instance":"b"},"value":[1712345678.5,"+Inf"]}]}}"#;
        let samples = decode(URL, 200, body).expect("samples");
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0].value, 0.25);
        assert_eq!(samples[0].series(), r#"up{instance="g",job="app"}"#);
        assert!(samples[1].value.is_nan() && samples[1].series().is_empty());
        assert_eq!(
            (samples[2].value, samples[2].raw.as_str()),
            (f64::INFINITY, "+Inf")
        );
        let scalar = br#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"3"]}}"#;
        assert_eq!(decode(URL, 200, scalar).expect("a scalar")[0].value, 3.0);
        let empty = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(decode(URL, 200, empty), Ok(vec![]));
    }

    #[test]
    fn what_cannot_be_judged_is_a_typed_error() {
        let refused =
            br#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
        assert_eq!(
            decode(URL, 400, refused),
            Err(QueryError::Refused {
                url: URL.into(),
                error_type: "bad_data".into(),
                message: "parse error at char 5".into()
            })
        );
        // A server's error text is kept bounded: it goes into status and Events.
        let long = format!(
            r#"{{"status":"error","errorType":"x","error":"{}"}}"#,
            "e".repeat(4096)
        );
        let Err(QueryError::Refused { message, .. }) = decode(URL, 422, long.as_bytes()) else {
            panic!("refused");
        };
        assert_eq!(message.chars().count(), MAX_ERROR_CHARS + 1);
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(matches!(
            decode(URL, 200, matrix),
            Err(QueryError::Unsupported { .. })
        ));
        assert_eq!(
            decode(URL, 502, b"<html>Bad Gateway</html>"),
            Err(QueryError::Status {
                url: URL.into(),
                status: 502
            })
        );
        assert!(matches!(
            decode(URL, 200, b"not json"),
            Err(QueryError::Protocol { .. })
        ));
        let word = br#"{"status":"success","data":{"resultType":"scalar","result":[1,"many"]}}"#;
        assert!(matches!(
            decode(URL, 200, word),
            Err(QueryError::Protocol { .. })
        ));
    }

    #[test]
    fn the_query_and_its_bound_travel_encoded() {
        let url = query_url(
            "http://p:9090/prom/",
            "up{a=\"b c\"}",
            Duration::from_secs(5),
        )
        .expect("url");
        assert_eq!(url.path(), "/prom/api/v1/query");
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            [
                ("query".to_string(), "up{a=\"b c\"}".to_string()),
                ("timeout".to_string(), "5000ms".to_string())
            ]
        );
        assert!(matches!(
            query_url("ftp://p", "up", Duration::from_secs(1)),
            Err(QueryError::BadUrl { .. })
        ));
        assert!(matches!(
            query_url("http://u:p@p", "up", Duration::from_secs(1)),
            Err(QueryError::BadUrl { .. })
        ));
    }

    #[test]
    fn a_gate_without_a_prometheus_of_its_own_asks_the_default() {
        let none = Prometheus::default();
        assert_eq!(none.url_for(None), Err(QueryError::NoServer));
        assert_eq!(none.url_for(Some("http://a")), Ok("http://a"));
        let default = Prometheus::with_default_url(Some("http://d".into()));
        assert_eq!(default.url_for(None), Ok("http://d"));
        assert_eq!(default.url_for(Some("http://a")), Ok("http://a"));
    }
}
