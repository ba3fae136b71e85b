//! Traffic shifting between the blue (current) and green (new) instance of a logical cluster.
//! A swap moves weight in steps and rolls back by sending everything to blue at once, so the
//! controllers talk only to [`TrafficShifter`]: `haproxy` (runtime API, no reload), `route53`
//! and `clouddns` (weighted DNS records), `trafficmanager` (Azure Traffic Manager's weighted
//! endpoints) or `sim`.
//!
//! Both retry an idempotent request that failed on one backend on the other one, so a failing
//! green costs clients nothing while blue is healthy and still takes a share (the simulator also
//! falls back to a backend at weight 0, HAProxy does not: see the module docs). The failure
//! still shows in [`TrafficShifter::backend_stats`], which is what a swap's health gate watches.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

pub mod clouddns;
pub mod haproxy;
mod http_client;
pub mod latency;
pub mod load;
pub mod resolver;
pub mod route53;
pub mod sim;
pub mod trafficmanager;

pub use latency::{BackendLatencies, Latencies};

/// The timeouts zero downtime relies on, one above the other: an application answers within
/// [`load::SLOW_REQUEST`] (5 s, the slowest request the load asks for); the proxy gives up on a
/// server after [`PROXY_SERVER_TIMEOUT`], so a hanging green becomes a counted 504 — a failure
/// the health gate sees, and a GET retried on blue — rather than a silent stall; clients wait
/// [`CLIENT_TIMEOUT`], longer, so they get the proxy's answer instead of giving up first.
pub const PROXY_SERVER_TIMEOUT: Duration = Duration::from_secs(8);

/// What clients of the traffic layer (the load generator, the demo) wait for an answer: long
/// enough for a GET that hung on green until [`PROXY_SERVER_TIMEOUT`] to be answered by blue
/// in its retry, however slow it asked to be ([`load::SLOW_REQUEST`]), plus a second. With
/// less (it was 10 s), a slow GET caught by a hanging green fails at the client while the
/// proxy retries it (measured: 1 of 1.45 M GETs in a 20-cluster demo with `green-hangs`).
pub const CLIENT_TIMEOUT: Duration = PROXY_SERVER_TIMEOUT
    .saturating_add(load::SLOW_REQUEST.1)
    .saturating_add(Duration::from_secs(1));

/// Longest endpoint name accepted (HAProxy proxy names are limited; keep headroom for `ep_`).
pub const MAX_ENDPOINT_LEN: usize = 63;

/// The share of an endpoint's traffic sent to blue and to green, in percent.
///
/// Invariant: `blue + green == 100`. The fields are private so every value went through
/// [`Weights::new`]; an invalid pair can never reach a shifter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Weights {
    blue: u8,
    green: u8,
}

impl Weights {
    /// Weights that sum to 100, or [`TrafficError::InvalidWeights`].
    pub fn new(blue: u8, green: u8) -> Result<Self, TrafficError> {
        if u16::from(blue) + u16::from(green) != 100 {
            return Err(TrafficError::InvalidWeights { blue, green });
        }
        Ok(Self { blue, green })
    }

    /// Everything to blue: the initial state and the rollback target.
    pub const fn all_blue() -> Self {
        Self {
            blue: 100,
            green: 0,
        }
    }

    /// `pct` percent to green, the rest to blue; `pct > 100` is [`TrafficError::InvalidWeights`].
    pub fn green(pct: u8) -> Result<Self, TrafficError> {
        Self::new(100u8.saturating_sub(pct), pct).map_err(|_| TrafficError::InvalidWeights {
            blue: 0,
            green: pct,
        })
    }

    pub const fn blue_pct(self) -> u8 {
        self.blue
    }

    pub const fn green_pct(self) -> u8 {
        self.green
    }
}

impl Default for Weights {
    fn default() -> Self {
        Self::all_blue()
    }
}

impl fmt::Display for Weights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "blue={} green={}", self.blue, self.green)
    }
}

/// Which of the two instances behind an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    Blue,
    Green,
}

impl Backend {
    pub const fn as_str(self) -> &'static str {
        match self {
            Backend::Blue => "blue",
            Backend::Green => "green",
        }
    }

    /// Blue for green and green for blue: where a failed request is retried.
    pub const fn other(self) -> Backend {
        match self {
            Backend::Blue => Backend::Green,
            Backend::Green => Backend::Blue,
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one backend of an endpoint was asked and how often it failed, counted per attempt: a
/// request that failed on one backend and was retried on the other counts once for each.
///
/// Cumulative since the endpoint was registered (for HAProxy: since the process started), never
/// reset, so a health gate takes the difference of two samples ([`BackendCounters::since`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BackendCounters {
    /// Requests sent to this backend, retries included.
    pub requests: u64,
    /// Of those, the ones this backend failed: a 5xx answer, a connection error, no answer in
    /// time. Counted even when the request was then retried on the other backend and the client
    /// never saw the failure, so it is the backend's health, not the client's experience.
    pub failures: u64,
}

impl BackendCounters {
    /// `failures / requests`, 0 when there were no requests.
    pub fn failure_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.failures as f64 / self.requests as f64
        }
    }

    /// What happened between `earlier` (a previous sample) and `self`. Saturating, so a counter
    /// that went backwards (a restarted HAProxy) yields 0 rather than wrapping.
    pub fn since(&self, earlier: &BackendCounters) -> BackendCounters {
        BackendCounters {
            requests: self.requests.saturating_sub(earlier.requests),
            failures: self.failures.saturating_sub(earlier.failures),
        }
    }
}

/// [`BackendCounters`] of both backends of an endpoint: the per-backend error signal of a swap's
/// health gate (see [`TrafficShifter::backend_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BackendStats {
    pub blue: BackendCounters,
    pub green: BackendCounters,
}

impl BackendStats {
    pub const fn get(&self, backend: Backend) -> BackendCounters {
        match backend {
            Backend::Blue => self.blue,
            Backend::Green => self.green,
        }
    }

    /// Both backends' [`BackendCounters::since`].
    pub fn since(&self, earlier: &BackendStats) -> BackendStats {
        BackendStats {
            blue: self.blue.since(&earlier.blue),
            green: self.green.since(&earlier.green),
        }
    }
}

/// Sessions open on each backend of an endpoint at one moment: requests in flight and streams
/// still open. A gauge, not a counter: what draining waits to see reach zero on blue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Sessions {
    pub blue: u64,
    pub green: u64,
}

/// Requests each backend of an endpoint has held past an age without answering (no response
/// head yet), at one moment. A gate cannot call a step healthy while green holds such requests:
/// a hanging green looks like a slow one until its requests time out at the proxy, and until
/// then its error rate shows nothing. Streams that have answered are not counted, however old.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Unanswered {
    pub blue: u64,
    pub green: u64,
    /// Whether green answered some request after the youngest of the unanswered ones counted
    /// was sent: a green that goes on answering is slow on some requests, not hanging, and its
    /// slow requests are judged when they end. (The youngest, not the oldest: requests in
    /// flight when green started to hang still end just after it did.) `None` when the traffic
    /// layer cannot tell (HAProxy without a log to rotor), and when green holds no unanswered
    /// request.
    pub green_answering: Option<bool>,
}

/// Everything that can go wrong while shifting traffic. Each variant names the endpoint (or the
/// process/listener) and what failed.
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    #[error("invalid weights blue={blue} green={green}: they must sum to 100")]
    InvalidWeights { blue: u8, green: u8 },

    #[error("invalid endpoint name {endpoint:?}: {reason}")]
    InvalidEndpoint {
        endpoint: String,
        reason: &'static str,
    },

    #[error("endpoint {endpoint:?} is not registered")]
    UnknownEndpoint { endpoint: String },

    #[error("endpoint {endpoint:?}: green is not registered, cannot send it {green}% of traffic")]
    GreenNotRegistered { endpoint: String, green: u8 },

    #[error("endpoint {endpoint:?}: {what} via HAProxy runtime API {socket:?}: {source}")]
    Io {
        endpoint: String,
        what: &'static str,
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("endpoint {endpoint:?}: {what} timed out after {after:?}")]
    Timeout {
        endpoint: String,
        what: &'static str,
        after: Duration,
    },

    #[error("endpoint {endpoint:?}: HAProxy rejected `{command}`: {message}")]
    Command {
        endpoint: String,
        command: String,
        message: String,
    },

    #[error("endpoint {endpoint:?}: unexpected HAProxy reply to `{command}`: {reply:?}")]
    Protocol {
        endpoint: String,
        command: String,
        reply: String,
    },

    #[error("endpoint {endpoint:?}: {what} did not read back: expected {expected}, found {found}")]
    Verify {
        endpoint: String,
        what: &'static str,
        expected: String,
        found: String,
    },

    #[error("HAProxy process: {message}")]
    Process {
        message: String,
        #[source]
        source: Option<std::io::Error>,
    },

    #[error("endpoint {endpoint:?}: {what} through Route 53: {message}")]
    Route53 {
        endpoint: String,
        what: &'static str,
        message: String,
    },

    /// A call to Cloud DNS failed; `failure` says how, so callers can tell retry from refusal.
    #[error("endpoint {endpoint:?}: {what} in Cloud DNS zone {zone}: {failure}: {message}")]
    CloudDns {
        endpoint: String,
        /// `PROJECT/MANAGED_ZONE`.
        zone: String,
        what: &'static str,
        failure: CallFailure,
        message: String,
    },

    /// A call to Azure Traffic Manager failed; `failure` says how. No endpoint when it was the
    /// shifter's own read of its profile at start.
    #[error(
        "{}{what} in Traffic Manager profile {profile}: {failure}: {message}",
        for_endpoint(.endpoint.as_deref())
    )]
    TrafficManager {
        endpoint: Option<String>,
        /// `SUBSCRIPTION/RESOURCE_GROUP/PROFILE`.
        profile: String,
        what: &'static str,
        failure: CallFailure,
        message: String,
    },

    /// A record at the endpoint's name that rotor did not write: never taken over or changed.
    #[error(
        "endpoint {endpoint:?}: {record} exists and rotor did not write it ({reason}); rotor \
         neither takes it over nor changes it"
    )]
    NotOurs {
        endpoint: String,
        /// The record, as its DNS service names it (`app.example.com. (A)`), or the Traffic
        /// Manager endpoint and its profile.
        record: String,
        reason: String,
    },

    /// A shifter that cannot be built as configured (a malformed zone, no credentials).
    #[error("{shifter} shifter: {message}")]
    Setup {
        shifter: &'static str,
        message: String,
    },

    #[error("endpoint {endpoint:?}: {reason}")]
    Unsupported { endpoint: String, reason: String },

    /// The shifter moves traffic without seeing it (DNS): there are no per-backend counts.
    #[error("endpoint {endpoint:?}: the {shifter} shifter sees no requests, so it counts none")]
    NoRequestCounts {
        endpoint: String,
        shifter: &'static str,
    },

    /// An operator's HAProxy lacks what rotor's guarantees rely on (see `haproxy::check`).
    #[error("HAProxy at {config:?} is not fit for rotor: {}", list(problems))]
    Unfit {
        config: PathBuf,
        problems: Vec<haproxy::ConfigProblem>,
    },

    /// The shifter does not time requests: there is nothing for a latency gate to read.
    #[error("endpoint {endpoint:?}: the {shifter} shifter does not time requests")]
    NoLatencies {
        endpoint: String,
        shifter: &'static str,
    },

    #[error("traffic listener on {listen}: {source}")]
    Listen {
        listen: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// How a call to a DNS service's API failed, as the swap acts on it: retry soon, retry after a
/// backoff, re-read and retry, or stop and report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallFailure {
    /// The zone or the record does not exist (HTTP 404).
    NotFound,
    /// What rotor creates exists already (HTTP 409): written meanwhile by someone else.
    AlreadyExists,
    /// The record is no longer what rotor read (HTTP 412): read again, then decide.
    ConditionNotMet,
    /// The API's rate limit (HTTP 429), with the wait it asked for, if any.
    RateLimited { retry_after: Option<Duration> },
    /// Refused for good as asked: permissions, quota, an invalid request (the HTTP status).
    Refused { status: u16 },
    /// Not reached, timed out, or a 5xx: retry.
    Unavailable,
    /// An answer rotor does not understand.
    Protocol,
}

impl CallFailure {
    /// Whether the same call may succeed later without anyone changing anything.
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            CallFailure::RateLimited { .. }
                | CallFailure::Unavailable
                | CallFailure::ConditionNotMet
        )
    }
}

impl fmt::Display for CallFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallFailure::NotFound => f.write_str("not found"),
            CallFailure::AlreadyExists => f.write_str("already exists"),
            CallFailure::ConditionNotMet => f.write_str("changed since rotor read it"),
            CallFailure::RateLimited {
                retry_after: Some(after),
            } => write!(f, "rate-limited (retry after {after:?})"),
            CallFailure::RateLimited { retry_after: None } => f.write_str("rate-limited"),
            CallFailure::Refused { status } => write!(f, "refused (HTTP {status})"),
            CallFailure::Unavailable => f.write_str("unavailable"),
            CallFailure::Protocol => f.write_str("unexpected answer"),
        }
    }
}

/// `endpoint "NAME": `, the prefix of an error about an endpoint; empty without one.
fn for_endpoint(endpoint: Option<&str>) -> String {
    endpoint.map_or_else(String::new, |e| format!("endpoint {e:?}: "))
}

/// Problems one per clause, for an error message.
fn list(problems: &[haproxy::ConfigProblem]) -> String {
    let parts: Vec<String> = problems.iter().map(ToString::to_string).collect();
    parts.join("; ")
}

/// Sets and reads how one endpoint's traffic is split between blue and green.
///
/// An endpoint is a logical cluster's traffic entry; its backends are attached with
/// [`register`](TrafficShifter::register). Implementations verify what they set and never
/// panic on I/O.
#[async_trait]
pub trait TrafficShifter: Send + Sync {
    /// Attach the backends. Blue always; green once it exists. Registering with `green: None`
    /// detaches green and sends all traffic to blue; registering with a green keeps the current
    /// weights (re-registering is idempotent and never shifts traffic by itself).
    async fn register(
        &self,
        endpoint: &str,
        blue: SocketAddr,
        green: Option<SocketAddr>,
    ) -> Result<(), TrafficError>;

    /// Set the split and verify it took effect. Giving green a share while green is not
    /// registered is [`TrafficError::GreenNotRegistered`].
    async fn set_weights(&self, endpoint: &str, weights: Weights) -> Result<(), TrafficError>;

    /// The split currently in effect.
    async fn weights(&self, endpoint: &str) -> Result<Weights, TrafficError>;

    /// Per-backend request and failure counts of `endpoint` (cumulative, see
    /// [`BackendCounters`]). Failures a retry hid from the client are included: this is the
    /// signal that green is unhealthy while clients still see no errors. A shifter that never
    /// sees requests (DNS) answers [`TrafficError::NoRequestCounts`].
    async fn backend_stats(&self, endpoint: &str) -> Result<BackendStats, TrafficError>;

    /// Per-backend latency histograms of `endpoint`, cumulative (see [`latency`]): what a
    /// latency gate reads. A shifter that does not time requests answers
    /// [`TrafficError::NoLatencies`].
    async fn latencies(&self, endpoint: &str) -> Result<BackendLatencies, TrafficError>;

    /// The sessions open on each backend of `endpoint` now (see [`Sessions`]): a backend with
    /// weight 0 is drained when its count reaches zero. A shifter that never sees requests
    /// (DNS) answers [`TrafficError::NoRequestCounts`].
    async fn sessions(&self, endpoint: &str) -> Result<Sessions, TrafficError>;

    /// The requests each backend of `endpoint` has held for at least `older_than` without
    /// answering (see [`Unanswered`]). A shifter that never sees requests (DNS) answers
    /// [`TrafficError::NoRequestCounts`].
    async fn unanswered(
        &self,
        endpoint: &str,
        older_than: Duration,
    ) -> Result<Unanswered, TrafficError>;

    /// How long after a change of weights clients may still follow the old ones: zero for a
    /// proxy (HAProxy, the simulator), the record's TTL plus propagation for DNS. An instance
    /// that lost its share of traffic is deleted only this long after, or clients that cached
    /// its address would fail.
    fn settle_time(&self) -> Duration {
        Duration::ZERO
    }

    /// What identifies the traffic layer's current lifetime. It changes when the layer
    /// restarted and so forgot the backends [`register`](TrafficShifter::register) attached at
    /// runtime: the controllers then attach them again, instead of re-attaching every endpoint
    /// on every resync. None (the default): the layer keeps what it was told for as long as
    /// rotor does (DNS records, the in-process router).
    async fn epoch(&self) -> Result<Option<String>, TrafficError> {
        Ok(None)
    }

    /// Send all traffic back to blue (the rollback), as fast as the implementation allows.
    async fn rollback(&self, endpoint: &str) -> Result<(), TrafficError> {
        self.set_weights(endpoint, Weights::all_blue()).await
    }
}

/// Endpoint names become HAProxy proxy names (`ep_<endpoint>`) and URL path segments, so they
/// are restricted to `[A-Za-z0-9._-]`, 1..=63 characters. This also rules out `;` and newlines,
/// which would inject commands into the HAProxy runtime API.
pub fn validate_endpoint(endpoint: &str) -> Result<(), TrafficError> {
    let invalid = |reason| TrafficError::InvalidEndpoint {
        endpoint: endpoint.to_string(),
        reason,
    };
    if endpoint.is_empty() {
        return Err(invalid("empty"));
    }
    if endpoint.len() > MAX_ENDPOINT_LEN {
        return Err(invalid("longer than 63 characters"));
    }
    if !endpoint
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(invalid(
            "only ASCII letters, digits, '.', '_' and '-' are allowed",
        ));
    }
    Ok(())
}

/// What a DNS shifter can point one name at: blue and green on the same port (a record
/// carries no port) and of one address family (one weighted set is all A or all AAAA).
pub(crate) fn check_dns_backends(
    endpoint: &str,
    blue: SocketAddr,
    green: Option<SocketAddr>,
) -> Result<(), TrafficError> {
    let Some(g) = green else { return Ok(()) };
    let unsupported = |reason| TrafficError::Unsupported {
        endpoint: endpoint.to_string(),
        reason,
    };
    if g.port() != blue.port() {
        return Err(unsupported(format!(
            "blue takes traffic on port {} and green on {}: DNS records carry no port",
            blue.port(),
            g.port()
        )));
    }
    if g.is_ipv4() != blue.is_ipv4() {
        return Err(unsupported(format!(
            "blue {blue} and green {g} are of different address families: one weighted set must be all A or all AAAA"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_must_sum_to_100() {
        assert_eq!(Weights::new(100, 0).unwrap(), Weights::all_blue());
        assert_eq!(Weights::green(30).unwrap(), Weights::new(70, 30).unwrap());
        assert_eq!(Weights::green(100).unwrap().blue_pct(), 0);
        assert!(matches!(
            Weights::new(60, 50),
            Err(TrafficError::InvalidWeights {
                blue: 60,
                green: 50
            })
        ));
        assert!(Weights::new(255, 255).is_err());
        assert!(Weights::new(0, 0).is_err());
        assert!(matches!(
            Weights::green(101),
            Err(TrafficError::InvalidWeights { green: 101, .. })
        ));
    }

    #[test]
    fn backend_counters_rates_and_deltas() {
        let before = BackendStats {
            blue: BackendCounters {
                requests: 10,
                failures: 0,
            },
            green: BackendCounters {
                requests: 4,
                failures: 1,
            },
        };
        let after = BackendStats {
            blue: BackendCounters {
                requests: 30,
                failures: 1,
            },
            green: BackendCounters {
                requests: 14,
                failures: 6,
            },
        };
        let window = after.since(&before);
        assert_eq!(window.get(Backend::Blue).requests, 20);
        assert_eq!(window.green.failure_rate(), 0.5);
        assert_eq!(BackendCounters::default().failure_rate(), 0.0);
        // A counter that went backwards (HAProxy restarted) is not a huge delta.
        assert_eq!(before.since(&after), BackendStats::default());
        assert_eq!(Backend::Green.other(), Backend::Blue);
        assert_eq!(Backend::Blue.other(), Backend::Green);
    }

    #[test]
    fn endpoint_names_are_restricted() {
        validate_endpoint("prod-aws-us-east-1-a").unwrap();
        validate_endpoint("a.b_c").unwrap();
        for bad in ["", "a;b", "a b", "a/b", "a\nb", &"x".repeat(64)] {
            assert!(
                matches!(
                    validate_endpoint(bad),
                    Err(TrafficError::InvalidEndpoint { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
