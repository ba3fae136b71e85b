//! Traffic shifting between the blue (current) and green (new) instance of a logical cluster.
//! A swap moves weight in steps and rolls back by sending everything to blue at once, so the
//! controllers talk only to [`TrafficShifter`]: `haproxy` (runtime API, no reload) or `sim`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

pub mod haproxy;
pub mod load;
pub mod sim;

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
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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

    #[error("traffic listener on {listen}: {source}")]
    Listen {
        listen: SocketAddr,
        #[source]
        source: std::io::Error,
    },
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
