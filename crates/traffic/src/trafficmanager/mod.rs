//! Azure Traffic Manager weighted endpoints, through Azure Resource Manager (`rotor-azure`:
//! azure_core's pipeline, rotor's credential chain). No maintained crate covers
//! `Microsoft.Network/trafficmanagerprofiles`, so the few requests are written here from the
//! REST specification (api-version 2022-04-01): GET of the profile (its endpoints inline), and
//! PUT, PATCH and DELETE of external endpoints.
//!
//! The profile is the operator's: it must exist and route by weight (`trafficRoutingMethod:
//! Weighted`), and rotor never writes it. Either one profile holds every rotor endpoint
//! (`SUBSCRIPTION/RESOURCE_GROUP/PROFILE`: one DNS name for the fleet's clusters), or each
//! rotor endpoint is a profile of its own in a resource group (`SUBSCRIPTION/RESOURCE_GROUP`,
//! the profile named as the endpoint: a DNS name per cluster, as Route 53 and Cloud DNS give
//! one record set each; [`Scope`]). A rotor endpoint is two external endpoints in its profile,
//! `rotor-{endpoint}-blue` and `-green`, targeting
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
//! [`TrafficManagerShifter::new`] reads the one profile once: a missing profile, or one that
//! does not route by weight, is refused at start, and the TTL is known from then on (every read
//! refreshes it); when Resource Manager cannot answer then, the shifter starts unchecked and
//! the first shift's read decides, as it always does for a profile per endpoint. As for the
//! other DNS shifters: clients follow a change only after propagation and the profile's TTL
//! ([`TrafficShifter::settle_time`]); Traffic Manager sees no requests
//! ([`TrafficError::NoRequestCounts`]); blue and green share one port. Traffic Manager's own
//! health probes may also take an endpoint out of its answers (`Degraded`), outside rotor's
//! weights.

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

/// Shifts the rotor endpoints of one Traffic Manager profile, or of a profile per endpoint.
pub struct TrafficManagerShifter {
    arm: Arm,
    subscription: String,
    group: String,
    scope: Scope,
    propagation: Duration,
    /// The profile's `dnsConfig.ttl` as last read, in seconds; with a profile per endpoint,
    /// the longest any has carried (one settle time serves every endpoint).
    ttl_seconds: AtomicU64,
}

/// Which profile holds a rotor endpoint's pair of external endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// This one profile holds them all.
    Profile(String),
    /// The profile of the resource group named as the endpoint.
    PerEndpoint,
}

impl std::fmt::Debug for TrafficManagerShifter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrafficManagerShifter")
            .field("group", &format!("{}/{}", self.subscription, self.group))
            .field("scope", &self.scope)
            .field("propagation", &self.propagation)
            .finish_non_exhaustive()
    }
}

/// `(subscription, resource group, scope)` from `SUBSCRIPTION/RESOURCE_GROUP/PROFILE` (one
/// profile) or `SUBSCRIPTION/RESOURCE_GROUP` (a profile per endpoint), what `--traffic
/// trafficmanager:` takes.
pub fn parse_scope(scope: &str) -> Result<(String, String, Scope), TrafficError> {
    let parts: Vec<&str> = scope.split('/').collect();
    if parts.iter().any(|x| x.trim().is_empty()) {
        return Err(not_a_scope(scope));
    }
    match parts.as_slice() {
        [s, g, p] => Ok((s.to_string(), g.to_string(), Scope::Profile(p.to_string()))),
        [s, g] => Ok((s.to_string(), g.to_string(), Scope::PerEndpoint)),
        _ => Err(not_a_scope(scope)),
    }
}

fn not_a_scope(scope: &str) -> TrafficError {
    TrafficError::Setup {
        shifter: "trafficmanager",
        message: format!(
            "{scope:?} is neither SUBSCRIPTION/RESOURCE_GROUP/PROFILE (one profile) nor \
             SUBSCRIPTION/RESOURCE_GROUP (a profile per endpoint)"
        ),
    }
}

/// rotor's endpoints of one rotor endpoint, as the profile holds them.
#[derive(Debug, Default)]
struct Current {
    blue: Option<Held>,
    green: Option<Held>,
}

impl TrafficManagerShifter {
    /// A shifter of `scope` ([`parse_scope`]). One profile is read once first: it must exist
    /// and route by weight. When Resource Manager cannot answer (unreachable, throttling, a
    /// 5xx) the shifter starts unchecked, so that a control plane restarted during an Azure
    /// outage comes up and serves every other cloud: each shift reads its profile first, and
    /// so refuses one that is missing or not weighted then (a profile per endpoint is checked
    /// so only).
    pub async fn new(scope: &str, options: TrafficManagerOptions) -> Result<Self, TrafficError> {
        let (subscription, group, scope) = parse_scope(scope)?;
        let arm = Arm::new(options.azure).map_err(|e| TrafficError::Setup {
            shifter: "trafficmanager",
            message: e.to_string(),
        })?;
        let shifter = TrafficManagerShifter {
            arm,
            subscription,
            group,
            scope,
            propagation: options.propagation,
            ttl_seconds: AtomicU64::new(TTL_UNKNOWN),
        };
        let Scope::Profile(profile) = &shifter.scope else {
            return Ok(shifter);
        };
        match shifter.read_profile(profile, None).await {
            Ok(_) => {}
            Err(TrafficError::TrafficManager {
                failure, message, ..
            }) if failure.is_retryable() => tracing::warn!(
                profile = %shifter.profile_path(profile),
                %failure,
                %message,
                "Traffic Manager profile not checked at start; every shift reads it first"
            ),
            Err(e) => return Err(e),
        }
        Ok(shifter)
    }

    /// The profile holding `endpoint`'s pair.
    fn profile_of<'a>(&'a self, endpoint: &'a str) -> &'a str {
        match &self.scope {
            Scope::Profile(profile) => profile,
            Scope::PerEndpoint => endpoint,
        }
    }

    /// `SUBSCRIPTION/RESOURCE_GROUP/PROFILE`, as errors name a profile.
    fn profile_path(&self, profile: &str) -> String {
        format!("{}/{}/{profile}", self.subscription, self.group)
    }

    /// A profile's URL, or one of its external endpoints'.
    fn url(&self, profile: &str, endpoint: Option<&str>) -> Url {
        let mut path = format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/trafficmanagerprofiles/{profile}",
            self.subscription, self.group
        );
        if let Some(name) = endpoint {
            path.push_str("/ExternalEndpoints/");
            path.push_str(name);
        }
        self.arm.url(&path, API_VERSION)
    }

    fn failed(
        &self,
        profile: &str,
        endpoint: Option<&str>,
        what: &'static str,
        f: Failure,
    ) -> TrafficError {
        let (failure, message) = errors::classify(f);
        TrafficError::TrafficManager {
            endpoint: endpoint.map(str::to_string),
            profile: self.profile_path(profile),
            what,
            failure,
            message,
        }
    }

    /// Notes a profile's TTL: the one profile's as it is now, or the longest of many.
    fn note_ttl(&self, ttl: u64) {
        let _ = self
            .ttl_seconds
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |known| {
                Some(match self.scope {
                    Scope::PerEndpoint if known != TTL_UNKNOWN => known.max(ttl),
                    _ => ttl,
                })
            });
    }

    /// `profile`, checked to route by weight; its TTL noted.
    async fn read_profile(
        &self,
        profile: &str,
        endpoint: Option<&str>,
    ) -> Result<ProfileAnswer, TrafficError> {
        let what = match endpoint {
            Some(_) => "reading the endpoints",
            None => "checking the profile at start",
        };
        let answer = self
            .arm
            .send(Method::Get, self.url(profile, None), None, &[])
            .await
            .and_then(|a| a.json::<ProfileAnswer>())
            .map_err(|f| self.failed(profile, endpoint, what, f))?;
        let method = answer.routing_method();
        if !method.eq_ignore_ascii_case("Weighted") {
            let reason = format!(
                "Traffic Manager profile {} routes by {method:?}: rotor shifts weights only in a \
                 profile whose trafficRoutingMethod is Weighted",
                self.profile_path(profile)
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
            self.note_ttl(ttl);
        }
        Ok(answer)
    }

    /// rotor's two endpoints of `endpoint`; one at rotor's name without its mark is refused.
    async fn read(&self, endpoint: &str) -> Result<Current, TrafficError> {
        let in_profile = self.profile_of(endpoint);
        let profile = self.read_profile(in_profile, Some(endpoint)).await?;
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
                            self.profile_path(in_profile)
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
            let profile = self.profile_of(endpoint);
            let url = self.url(profile, Some(&endpoints::name(endpoint, backend)));
            self.arm
                .send(method, url, body.as_ref(), &[])
                .await
                .map_err(|f| self.failed(profile, Some(endpoint), what, f))?;
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
    /// cached answer (the profile's TTL, as last read; with a profile per endpoint, the longest
    /// read) has expired.
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
    fn a_scope_is_one_profile_or_a_resource_group() {
        assert_eq!(
            parse_scope("sub-1/rg-edge/front").unwrap(),
            (
                "sub-1".into(),
                "rg-edge".into(),
                Scope::Profile("front".into())
            )
        );
        assert_eq!(
            parse_scope("sub-1/rg-edge").unwrap(),
            ("sub-1".into(), "rg-edge".into(), Scope::PerEndpoint)
        );
        for bad in ["", "s", "s/", "s/g/", "/g/p", "s//p", "s/g/p/x"] {
            let err = parse_scope(bad).unwrap_err();
            assert!(matches!(err, TrafficError::Setup { .. }), "{bad}: {err:?}");
            assert!(
                err.to_string()
                    .contains("SUBSCRIPTION/RESOURCE_GROUP/PROFILE (one profile) nor"),
                "{err}"
            );
        }
    }
}
