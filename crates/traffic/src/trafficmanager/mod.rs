//! Azure Traffic Manager weighted endpoints, through Azure Resource Manager (`rotor-azure`:
//! azure_core's pipeline, rotor's credential chain). No maintained crate covers
//! `Microsoft.Network/trafficmanagerprofiles`, so the few requests are written here from the
//! REST specification (api-version 2022-04-01): GET of the profile (its endpoints inline), and
//! PUT, PATCH and DELETE of external endpoints.
//!
//! The profile (`SUBSCRIPTION/RESOURCE_GROUP/PROFILE`) is the operator's: it must exist and
//! route by weight (`trafficRoutingMethod: Weighted`), and rotor never writes it. A rotor
//! endpoint is two external endpoints in it, `rotor-{endpoint}-blue` and `-green`, targeting
//! the instances' addresses and marked rotor's by a custom header; the weight mapping (a 0 %
//! side is a disabled endpoint: Traffic Manager has no weight 0) and the marking are in
//! [`endpoints`]. Endpoints at those names without rotor's mark are refused
//! ([`TrafficError::NotOurs`]); other endpoints of the profile are never touched.
//!
//! Traffic Manager changes one endpoint per call and has no conditional writes (its resources
//! carry no ETag), so a shift is up to two PATCHes, the gaining side first: between the two the
//! split lies between the old and the new one, and the name never resolves to nothing. A shift
//! interrupted between them reads back as [`TrafficError::Verify`] until the next shift writes
//! the split whole. Each PATCH carries only the fields that change, so what an operator set on
//! rotor's endpoints besides target, status and weight (a probe's Host header) is kept.
//!
//! [`TrafficManagerShifter::new`] reads the profile once: a missing profile, or one that does
//! not route by weight, is refused at start, and the TTL is known from then on (every read
//! refreshes it); when Resource Manager cannot answer then, the shifter starts unchecked and
//! the first shift's read decides. As for the other DNS shifters: clients follow a change only after
//! propagation and the profile's TTL ([`TrafficShifter::settle_time`]); Traffic Manager sees no
//! requests ([`TrafficError::NoRequestCounts`]); blue and green share one port. Traffic
//! Manager's own health probes may also take an endpoint out of its answers (`Degraded`),
//! outside rotor's weights.

mod endpoints;
mod errors;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rotor_azure::{Arm, AzureOptions, Failure, Method, Url};

use crate::{
    Backend, BackendLatencies, BackendStats, Sessions, TrafficError, TrafficShifter, Unanswered,
    Weights, check_dns_backends, validate_endpoint,
};
use endpoints::{Held, ProfileAnswer, Wanted, Write};

/// The api-version of every call (the newest stable Traffic Manager specification).
pub const API_VERSION: &str = "2022-04-01";

/// How long after a change Traffic Manager's name servers may still answer from before it,
/// unless told otherwise. Microsoft publishes no figure we found; Route 53's is used.
pub const DEFAULT_PROPAGATION: Duration = Duration::from_secs(60);

/// `ttl_seconds` before the profile was first read.
const TTL_UNKNOWN: u64 = u64::MAX;

/// The TTL assumed while the profile's is unknown: a settle is asked for after a shift, and a
/// shift reads the profile, so this counts only if that order ever changes. A conservative
/// guess, longer than the TTLs profiles commonly carry.
const ASSUMED_TTL: Duration = Duration::from_secs(300);

/// Where rotor reaches Resource Manager, as whom, and how long changes take to spread.
#[derive(Clone, Debug)]
pub struct TrafficManagerOptions {
    /// ARM's URL and the credential (rotor's chain unless given); see `rotor_azure`.
    pub azure: AzureOptions,
    /// See [`DEFAULT_PROPAGATION`].
    pub propagation: Duration,
}

impl Default for TrafficManagerOptions {
    fn default() -> Self {
        TrafficManagerOptions {
            azure: AzureOptions::default(),
            propagation: DEFAULT_PROPAGATION,
        }
    }
}

/// Shifts the rotor endpoints of one Traffic Manager profile.
pub struct TrafficManagerShifter {
    arm: Arm,
    subscription: String,
    group: String,
    profile: String,
    propagation: Duration,
    /// The profile's `dnsConfig.ttl` as last read, in seconds.
    ttl_seconds: AtomicU64,
}

impl std::fmt::Debug for TrafficManagerShifter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrafficManagerShifter")
            .field("profile", &self.profile_path())
            .field("propagation", &self.propagation)
            .finish_non_exhaustive()
    }
}

/// `(subscription, resource group, profile)` from `SUBSCRIPTION/RESOURCE_GROUP/PROFILE`, what
/// `--traffic trafficmanager:` takes.
pub fn parse_profile(profile: &str) -> Result<(String, String, String), TrafficError> {
    match profile.split('/').collect::<Vec<_>>().as_slice() {
        [s, g, p] if [s, g, p].iter().all(|x| !x.trim().is_empty()) => {
            Ok((s.to_string(), g.to_string(), p.to_string()))
        }
        _ => Err(TrafficError::Setup {
            shifter: "trafficmanager",
            message: format!("profile {profile:?} is not SUBSCRIPTION/RESOURCE_GROUP/PROFILE"),
        }),
    }
}

/// rotor's endpoints of one rotor endpoint, as the profile holds them.
#[derive(Debug, Default)]
struct Current {
    blue: Option<Held>,
    green: Option<Held>,
}

impl TrafficManagerShifter {
    /// A shifter of `profile` (`SUBSCRIPTION/RESOURCE_GROUP/PROFILE`), after reading it once:
    /// it must exist and route by weight. When Resource Manager cannot answer (unreachable,
    /// throttling, a 5xx) the shifter starts unchecked, so that a control plane restarted during
    /// an Azure outage comes up and serves every other cloud: each shift reads the profile
    /// first, and so refuses one that is missing or not weighted then.
    pub async fn new(profile: &str, options: TrafficManagerOptions) -> Result<Self, TrafficError> {
        let (subscription, group, profile) = parse_profile(profile)?;
        let arm = Arm::new(options.azure).map_err(|e| TrafficError::Setup {
            shifter: "trafficmanager",
            message: e.to_string(),
        })?;
        let shifter = TrafficManagerShifter {
            arm,
            subscription,
            group,
            profile,
            propagation: options.propagation,
            ttl_seconds: AtomicU64::new(TTL_UNKNOWN),
        };
        match shifter.read_profile(None).await {
            Ok(_) => {}
            Err(TrafficError::TrafficManager {
                failure, message, ..
            }) if failure.is_retryable() => tracing::warn!(
                profile = %shifter.profile_path(),
                %failure,
                %message,
                "Traffic Manager profile not checked at start; every shift reads it first"
            ),
            Err(e) => return Err(e),
        }
        Ok(shifter)
    }

    /// `SUBSCRIPTION/RESOURCE_GROUP/PROFILE`, as errors name the profile.
    fn profile_path(&self) -> String {
        format!("{}/{}/{}", self.subscription, self.group, self.profile)
    }

    /// The profile's URL, or one of its external endpoints'.
    fn url(&self, endpoint: Option<&str>) -> Url {
        let mut path = format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/trafficmanagerprofiles/{}",
            self.subscription, self.group, self.profile
        );
        if let Some(name) = endpoint {
            path.push_str("/ExternalEndpoints/");
            path.push_str(name);
        }
        self.arm.url(&path, API_VERSION)
    }

    fn failed(&self, endpoint: Option<&str>, what: &'static str, f: Failure) -> TrafficError {
        let (failure, message) = errors::classify(f);
        TrafficError::TrafficManager {
            endpoint: endpoint.map(str::to_string),
            profile: self.profile_path(),
            what,
            failure,
            message,
        }
    }

    /// The profile, checked to route by weight; its TTL noted.
    async fn read_profile(&self, endpoint: Option<&str>) -> Result<ProfileAnswer, TrafficError> {
        let what = match endpoint {
            Some(_) => "reading the endpoints",
            None => "checking the profile at start",
        };
        let answer = self
            .arm
            .send(Method::Get, self.url(None), None, &[])
            .await
            .and_then(|a| a.json::<ProfileAnswer>())
            .map_err(|f| self.failed(endpoint, what, f))?;
        let method = answer.routing_method();
        if !method.eq_ignore_ascii_case("Weighted") {
            let reason = format!(
                "Traffic Manager profile {} routes by {method:?}: rotor shifts weights only in a \
                 profile whose trafficRoutingMethod is Weighted",
                self.profile_path()
            );
            return Err(match endpoint {
                Some(e) => TrafficError::Unsupported {
                    endpoint: e.to_string(),
                    reason,
                },
                None => TrafficError::Setup {
                    shifter: "trafficmanager",
                    message: reason,
                },
            });
        }
        if let Some(ttl) = answer.ttl() {
            self.ttl_seconds.store(ttl, Ordering::Relaxed);
        }
        Ok(answer)
    }

    /// rotor's two endpoints of `endpoint`; one at rotor's name without its mark is refused.
    async fn read(&self, endpoint: &str) -> Result<Current, TrafficError> {
        let profile = self.read_profile(Some(endpoint)).await?;
        let mut current = Current::default();
        for backend in [Backend::Blue, Backend::Green] {
            let held = match profile.held(endpoint, backend) {
                None => None,
                Some(Ok(held)) => Some(held),
                Some(Err(foreign)) => {
                    return Err(TrafficError::NotOurs {
                        endpoint: endpoint.to_string(),
                        record: format!(
                            "Traffic Manager endpoint {} in profile {}",
                            foreign.name,
                            self.profile_path()
                        ),
                        reason: foreign.reason,
                    });
                }
            };
            match backend {
                Backend::Blue => current.blue = held,
                Backend::Green => current.green = held,
            }
        }
        Ok(current)
    }

    /// Blue's endpoint, and green's if registered: unknown when neither exists.
    fn owned<'c>(
        endpoint: &str,
        current: &'c Current,
    ) -> Result<(&'c Held, Option<&'c Held>), TrafficError> {
        match (&current.blue, &current.green) {
            (Some(blue), green) => Ok((blue, green.as_ref())),
            (None, None) => Err(TrafficError::UnknownEndpoint {
                endpoint: endpoint.to_string(),
            }),
            (None, Some(_)) => Err(TrafficError::Verify {
                endpoint: endpoint.to_string(),
                what: "rotor's blue Traffic Manager endpoint",
                expected: endpoints::name(endpoint, Backend::Blue),
                found: "none (deleted outside rotor?)".into(),
            }),
        }
    }

    fn weights_of(
        endpoint: &str,
        blue: &Held,
        green: Option<&Held>,
    ) -> Result<Weights, TrafficError> {
        endpoints::weights_of(blue, green).map_err(|found| TrafficError::Verify {
            endpoint: endpoint.to_string(),
            what: "Traffic Manager endpoint weights",
            expected: "rotor's enabled endpoints weighing 100 together".into(),
            found: format!("{found} (changed outside rotor, or a shift interrupted?)"),
        })
    }

    /// The address an endpoint of rotor's targets (what `register` wrote).
    fn target_of(endpoint: &str, held: &Held) -> Result<IpAddr, TrafficError> {
        held.target.parse().map_err(|_| TrafficError::Verify {
            endpoint: endpoint.to_string(),
            what: "a Traffic Manager endpoint's target",
            expected: "the IP address rotor registered".into(),
            found: format!("{} targets {:?}", held.name, held.target),
        })
    }

    /// Sends `writes` one after the other, in their order.
    async fn apply(
        &self,
        endpoint: &str,
        what: &'static str,
        writes: Vec<Write>,
    ) -> Result<(), TrafficError> {
        for write in writes {
            let (method, backend, body) = match write {
                Write::Create { backend, body } => (Method::Put, backend, Some(body)),
                Write::Update { backend, body } => (Method::Patch, backend, Some(body)),
                Write::Delete { backend } => (Method::Delete, backend, None),
            };
            let url = self.url(Some(&endpoints::name(endpoint, backend)));
            self.arm
                .send(method, url, body.as_ref(), &[])
                .await
                .map_err(|f| self.failed(Some(endpoint), what, f))?;
        }
        Ok(())
    }
}

#[async_trait]
impl TrafficShifter for TrafficManagerShifter {
    /// Writes blue's endpoint and green's (or deletes green's); an endpoint at rotor's names
    /// that rotor did not write is refused. Re-registering a green keeps both endpoints'
    /// status and weight as they are — whatever they hold, so a shift left half done is
    /// finished by the next `set_weights`, not refused here — anything else sends all to blue.
    async fn register(
        &self,
        endpoint: &str,
        blue: SocketAddr,
        green: Option<SocketAddr>,
    ) -> Result<(), TrafficError> {
        validate_endpoint(endpoint)?;
        check_dns_backends(endpoint, blue, green)?;
        let current = self.read(endpoint).await?;
        let wanted = match (&current.blue, &current.green, green) {
            (Some(hb), Some(hg), Some(g)) => [
                Some(Wanted::keeping(blue.ip(), hb)),
                Some(Wanted::keeping(g.ip(), hg)),
            ],
            _ => [
                Some(Wanted::share(blue.ip(), 100)),
                green.map(|g| Wanted::share(g.ip(), 0)),
            ],
        };
        let held = [current.blue.as_ref(), current.green.as_ref()];
        let writes = endpoints::plan(endpoint, held, wanted);
        self.apply(endpoint, "registering the backends", writes)
            .await
    }

    async fn set_weights(&self, endpoint: &str, weights: Weights) -> Result<(), TrafficError> {
        validate_endpoint(endpoint)?;
        let current = self.read(endpoint).await?;
        let (blue, green) = Self::owned(endpoint, &current)?;
        if green.is_none() && weights.green_pct() > 0 {
            return Err(TrafficError::GreenNotRegistered {
                endpoint: endpoint.to_string(),
                green: weights.green_pct(),
            });
        }
        let wanted = [
            Some(Wanted::share(
                Self::target_of(endpoint, blue)?,
                weights.blue_pct(),
            )),
            match green {
                Some(g) => Some(Wanted::share(
                    Self::target_of(endpoint, g)?,
                    weights.green_pct(),
                )),
                None => None,
            },
        ];
        let writes = endpoints::plan(endpoint, [Some(blue), green], wanted);
        if !writes.is_empty() {
            self.apply(endpoint, "setting the weights", writes).await?;
        }
        let found = self.weights(endpoint).await?;
        if found != weights {
            return Err(TrafficError::Verify {
                endpoint: endpoint.to_string(),
                what: "weights",
                expected: weights.to_string(),
                found: found.to_string(),
            });
        }
        Ok(())
    }

    async fn weights(&self, endpoint: &str) -> Result<Weights, TrafficError> {
        validate_endpoint(endpoint)?;
        let current = self.read(endpoint).await?;
        let (blue, green) = Self::owned(endpoint, &current)?;
        Self::weights_of(endpoint, blue, green)
    }

    /// Resolvers may answer with the old endpoints until the change has propagated and their
    /// cached answer (the profile's TTL, as last read) has expired.
    fn settle_time(&self) -> Duration {
        let ttl = match self.ttl_seconds.load(Ordering::Relaxed) {
            TTL_UNKNOWN => ASSUMED_TTL,
            seconds => Duration::from_secs(seconds),
        };
        self.propagation + ttl
    }

    async fn backend_stats(&self, endpoint: &str) -> Result<BackendStats, TrafficError> {
        Err(no_counts(endpoint))
    }

    /// DNS times no requests.
    async fn latencies(&self, endpoint: &str) -> Result<BackendLatencies, TrafficError> {
        Err(TrafficError::NoLatencies {
            endpoint: endpoint.to_string(),
            shifter: "trafficmanager",
        })
    }

    /// DNS sees no connections either: a drain behind Traffic Manager is its settle time.
    async fn sessions(&self, endpoint: &str) -> Result<Sessions, TrafficError> {
        Err(no_counts(endpoint))
    }

    async fn unanswered(
        &self,
        endpoint: &str,
        _older_than: Duration,
    ) -> Result<Unanswered, TrafficError> {
        Err(no_counts(endpoint))
    }
}

fn no_counts(endpoint: &str) -> TrafficError {
    TrafficError::NoRequestCounts {
        endpoint: endpoint.to_string(),
        shifter: "trafficmanager",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_subscription_slash_group_slash_name() {
        assert_eq!(
            parse_profile("sub-1/rg-edge/front").unwrap(),
            ("sub-1".into(), "rg-edge".into(), "front".into())
        );
        for bad in ["", "s/g", "s/g/", "/g/p", "s//p", "s/g/p/x"] {
            let err = parse_profile(bad).unwrap_err();
            assert!(matches!(err, TrafficError::Setup { .. }), "{bad}: {err:?}");
            assert!(
                err.to_string()
                    .contains("SUBSCRIPTION/RESOURCE_GROUP/PROFILE"),
                "{err}"
            );
        }
    }
}
