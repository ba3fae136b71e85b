//! Google Cloud DNS weighted round robin through Google's official client
//! (`google-cloud-dns-v1`, REST): an endpoint is a DNS name in one managed zone
//! (`PROJECT/MANAGED_ZONE`, given at construction), answered by one A (or AAAA) record set
//! whose routing policy `wrr.items` is [blue, green]; beside it a TXT owner record says rotor
//! wrote it and which addresses it registered (see [`record`]). A record at the name that
//! rotor did not write is refused ([`TrafficError::NotOurs`]), never taken over.
//!
//! Every write is one `changes.create` — deletions that are exact copies of what rotor read,
//! additions of what it wants — which Cloud DNS applies all or nothing. A weight change could
//! be a PATCH, but a PATCH overwrites whatever is there; a change whose deletions must match
//! exactly fails with 412 when someone edited the set since rotor read it, so no edit is lost
//! silently, and a registration writes the address set and its owner record together.
//!
//! As with Route 53 (see [`crate::route53`]): a rollback takes the TTL plus propagation
//! ([`TrafficShifter::settle_time`]); Cloud DNS sees no requests
//! ([`TrafficError::NoRequestCounts`]); blue and green share one port.

mod errors;
mod record;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use google_cloud_auth::credentials::{AccessTokenCredentials, Credentials};
use google_cloud_dns_v1::client::{Changes, ResourceRecordSets};
use google_cloud_dns_v1::model::{Change, ResourceRecordSet, change};
use google_cloud_gax::retry_policy::{Aip194Strict, RetryPolicyExt as _};

use crate::{
    BackendLatencies, BackendStats, CallFailure, Sessions, TrafficError, TrafficShifter,
    Unanswered, Weights, check_dns_backends, validate_endpoint,
};
use record::{Registered, fqdn, label};

/// The TTL of the records rotor writes unless told otherwise (as Route 53's shifter).
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);

/// How long after a change is `done` clients may still be answered from before it, unless told
/// otherwise. `done` means the change was sent to the authoritative servers, not that they
/// all serve it; Google gives no bound we found, so the default is Route 53's.
pub const DEFAULT_PROPAGATION: Duration = Duration::from_secs(60);

/// How long rotor waits for a change to be `done` before it reports a timeout.
pub const DEFAULT_CHANGE_TIMEOUT: Duration = Duration::from_secs(60);

/// How often a pending change is read again.
const CHANGE_POLL: Duration = Duration::from_millis(500);

/// Attempts per call the client makes before the error reaches rotor (the swap retries too).
const ATTEMPTS: u32 = 3;

/// Pages of one name's record sets read at most (a name holds one set per type).
const MAX_PAGES: usize = 10;

/// Where rotor reaches Cloud DNS, as whom, and how its records behave.
#[derive(Clone)]
pub struct CloudDnsOptions {
    /// The API's URL instead of `https://dns.googleapis.com` (the simulator:
    /// `http://127.0.0.1:8080/gcp`).
    pub endpoint: Option<String>,
    /// The credentials to act with; `None`: application default credentials.
    pub credentials: Option<AccessTokenCredentials>,
    /// The records' TTL, in whole seconds.
    pub ttl: Duration,
    /// See [`DEFAULT_PROPAGATION`].
    pub propagation: Duration,
    /// See [`DEFAULT_CHANGE_TIMEOUT`].
    pub change_timeout: Duration,
}

impl Default for CloudDnsOptions {
    fn default() -> Self {
        CloudDnsOptions {
            endpoint: None,
            credentials: None,
            ttl: DEFAULT_TTL,
            propagation: DEFAULT_PROPAGATION,
            change_timeout: DEFAULT_CHANGE_TIMEOUT,
        }
    }
}

/// Credentials are never printed, whatever provider is behind them.
impl std::fmt::Debug for CloudDnsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudDnsOptions")
            .field("endpoint", &self.endpoint)
            .field("credentials", &self.credentials.as_ref().map(|_| "<given>"))
            .field("ttl", &self.ttl)
            .field("propagation", &self.propagation)
            .field("change_timeout", &self.change_timeout)
            .finish()
    }
}

/// Shifts the endpoints of one managed zone.
pub struct CloudDnsShifter {
    rrsets: ResourceRecordSets,
    changes: Changes,
    project: String,
    zone: String,
    ttl: i32,
    propagation: Duration,
    change_timeout: Duration,
}

impl std::fmt::Debug for CloudDnsShifter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudDnsShifter")
            .field("zone", &self.zone_path())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// `(project, managed zone)` from `PROJECT/MANAGED_ZONE`, what `--traffic clouddns:` takes.
pub fn parse_zone(zone: &str) -> Result<(String, String), TrafficError> {
    match zone.split('/').collect::<Vec<_>>().as_slice() {
        [project, name] if !project.is_empty() && !name.is_empty() => {
            Ok((project.to_string(), name.to_string()))
        }
        _ => Err(TrafficError::Setup {
            shifter: "clouddns",
            message: format!("zone {zone:?} is not PROJECT/MANAGED_ZONE"),
        }),
    }
}

/// The record sets of an endpoint as Cloud DNS holds them.
#[derive(Debug, Default)]
struct Current {
    /// The A or AAAA set at the name: of rotor's family when it registered one, else any.
    address: Option<ResourceRecordSet>,
    /// The TXT set at the owner name, whoever wrote it.
    owner: Option<ResourceRecordSet>,
    /// What the owner record says, when rotor wrote it.
    registered: Option<Registered>,
}

impl CloudDnsShifter {
    /// A shifter of the records in `zone` (`PROJECT/MANAGED_ZONE`).
    pub async fn new(zone: &str, options: CloudDnsOptions) -> Result<Self, TrafficError> {
        let (project, zone) = parse_zone(zone)?;
        let setup = |message: String| TrafficError::Setup {
            shifter: "clouddns",
            message,
        };
        let ttl = i32::try_from(options.ttl.as_secs())
            .ok()
            .filter(|_| options.ttl.subsec_nanos() == 0)
            .ok_or_else(|| setup(format!("ttl {:?} is not whole seconds", options.ttl)))?;
        // Google's clients build reqwest with rustls and no crypto provider (its default would
        // be aws-lc, a C build): the process's default is used, ring's unless one is set.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Losing a race to another installer is fine: a provider is installed either way.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let credentials = match options.credentials {
            Some(c) => Credentials::from(c),
            None => google_cloud_auth::credentials::Builder::default()
                .build()
                .map_err(|e| setup(format!("Google application default credentials: {e}")))?,
        };
        let endpoint = options.endpoint.as_deref().map(|e| e.trim_end_matches('/'));
        let rrsets = Box::pin(Self::rrsets_client(credentials.clone(), endpoint)).await;
        let changes = Box::pin(Self::changes_client(credentials, endpoint)).await;
        Ok(CloudDnsShifter {
            rrsets: rrsets.map_err(|e| setup(format!("Cloud DNS client: {e}")))?,
            changes: changes.map_err(|e| setup(format!("Cloud DNS client: {e}")))?,
            project,
            zone,
            ttl,
            propagation: options.propagation,
            change_timeout: options.change_timeout,
        })
    }

    async fn rrsets_client(
        credentials: Credentials,
        endpoint: Option<&str>,
    ) -> Result<ResourceRecordSets, String> {
        // gax retries idempotent calls (GETs) for 10 attempts and 60 s by default: a swap
        // would hang that long in an outage. The swap retries itself, so the client tries a
        // few times only. Changes are POSTs: never retried once sent.
        let mut builder = ResourceRecordSets::builder()
            .with_credentials(credentials)
            .with_retry_policy(Aip194Strict.with_attempt_limit(ATTEMPTS));
        if let Some(endpoint) = endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        builder.build().await.map_err(|e| e.to_string())
    }

    async fn changes_client(
        credentials: Credentials,
        endpoint: Option<&str>,
    ) -> Result<Changes, String> {
        let mut builder = Changes::builder()
            .with_credentials(credentials)
            .with_retry_policy(Aip194Strict.with_attempt_limit(ATTEMPTS));
        if let Some(endpoint) = endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        builder.build().await.map_err(|e| e.to_string())
    }

    /// `PROJECT/MANAGED_ZONE`, as errors name the zone.
    fn zone_path(&self) -> String {
        format!("{}/{}", self.project, self.zone)
    }

    fn failed(
        &self,
        endpoint: &str,
        what: &'static str,
        e: &google_cloud_gax::error::Error,
    ) -> TrafficError {
        let (failure, message) = errors::classify(e);
        TrafficError::CloudDns {
            endpoint: endpoint.to_string(),
            zone: self.zone_path(),
            what,
            failure,
            message,
        }
    }

    /// Every set named `name` (of type `kind` when given), across pages.
    async fn list(
        &self,
        endpoint: &str,
        name: &str,
        kind: Option<&str>,
    ) -> Result<Vec<ResourceRecordSet>, TrafficError> {
        const WHAT: &str = "reading the records";
        let mut sets = Vec::new();
        let mut page_token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let request = self
                .rrsets
                .list()
                .set_project(&self.project)
                .set_managed_zone(&self.zone)
                .set_name(name)
                .set_or_clear_type(kind)
                .set_or_clear_page_token(page_token.take())
                .send();
            let page = Box::pin(request)
                .await
                .map_err(|e| self.failed(endpoint, WHAT, &e))?;
            sets.extend(page.rrsets);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) => page_token = Some(next),
                None => return Ok(sets),
            }
        }
        Err(TrafficError::CloudDns {
            endpoint: endpoint.to_string(),
            zone: self.zone_path(),
            what: WHAT,
            failure: CallFailure::Protocol,
            message: format!("more than {MAX_PAGES} pages of record sets named {name}"),
        })
    }

    /// The endpoint's sets: the owner record and the address set it describes.
    async fn read(&self, endpoint: &str) -> Result<Current, TrafficError> {
        let name = fqdn(endpoint);
        let at_name = self.list(endpoint, &name, None).await?;
        let owner_name = format!("{}{name}", record::OWNER_PREFIX);
        let owner = self
            .list(endpoint, &owner_name, Some("TXT"))
            .await?
            .into_iter()
            .next();
        let registered = match &owner {
            Some(set) => Registered::from_owner(set).map_err(|found| TrafficError::Verify {
                endpoint: endpoint.to_string(),
                what: "rotor's owner record",
                expected: "heritage=rotor,rotor/blue=ADDRESS[,rotor/green=ADDRESS]".into(),
                found,
            })?,
            None => None,
        };
        let is_address = |t: &str| match registered {
            Some(r) => t == r.kind(),
            None => t == "A" || t == "AAAA",
        };
        let address = at_name
            .into_iter()
            .find(|s| s.r#type.as_deref().is_some_and(is_address));
        Ok(Current {
            address,
            owner,
            registered,
        })
    }

    /// The registration and the address set of an endpoint rotor manages: unknown when
    /// nothing is there, refused when what is there is someone else's.
    fn owned<'a>(
        endpoint: &str,
        current: &'a Current,
    ) -> Result<(Registered, &'a ResourceRecordSet), TrafficError> {
        Self::refuse_foreign(endpoint, current)?;
        let (Some(registered), Some(set)) = (current.registered, &current.address) else {
            if current.registered.is_some() {
                return Err(TrafficError::Verify {
                    endpoint: endpoint.to_string(),
                    what: "the address record set",
                    expected: "the weighted set rotor registered".into(),
                    found: "none (deleted outside rotor?)".into(),
                });
            }
            return Err(TrafficError::UnknownEndpoint {
                endpoint: endpoint.to_string(),
            });
        };
        Ok((registered, set))
    }

    /// [`TrafficError::NotOurs`] when a set at the endpoint's names was not written by rotor.
    fn refuse_foreign(endpoint: &str, current: &Current) -> Result<(), TrafficError> {
        if current.registered.is_some() {
            return Ok(());
        }
        let not_ours = |set: &ResourceRecordSet, reason: String| TrafficError::NotOurs {
            endpoint: endpoint.to_string(),
            record: label(set),
            reason,
        };
        match (&current.owner, &current.address) {
            (Some(owner), _) => Err(not_ours(owner, "its text is not heritage=rotor".into())),
            (None, Some(set)) => Err(not_ours(
                set,
                format!("no owner record {}{}", record::OWNER_PREFIX, fqdn(endpoint)),
            )),
            (None, None) => Ok(()),
        }
    }

    /// Applies one change (exact `deletions`, then `additions`) and waits until it is done.
    async fn change(
        &self,
        endpoint: &str,
        what: &'static str,
        deletions: Vec<ResourceRecordSet>,
        additions: Vec<ResourceRecordSet>,
    ) -> Result<(), TrafficError> {
        let body = Change::new()
            .set_deletions(deletions)
            .set_additions(additions);
        let request = self
            .changes
            .create()
            .set_project(&self.project)
            .set_managed_zone(&self.zone)
            .set_body(body)
            .send();
        let sent = Box::pin(request)
            .await
            .map_err(|e| self.failed(endpoint, what, &e))?;
        Box::pin(self.wait_done(endpoint, what, sent)).await
    }

    /// Reads the change until Cloud DNS reports it `done`, for at most the change timeout.
    async fn wait_done(
        &self,
        endpoint: &str,
        what: &'static str,
        mut sent: Change,
    ) -> Result<(), TrafficError> {
        let deadline = Instant::now() + self.change_timeout;
        loop {
            if sent.status == Some(change::Status::Done) {
                return Ok(());
            }
            let Some(id) = sent.id.clone() else {
                return Err(TrafficError::CloudDns {
                    endpoint: endpoint.to_string(),
                    zone: self.zone_path(),
                    what,
                    failure: CallFailure::Protocol,
                    message: format!("a change answered {:?} without an id", sent.status),
                });
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(TrafficError::Timeout {
                    endpoint: endpoint.to_string(),
                    what: "waiting for Cloud DNS to apply a change",
                    after: self.change_timeout,
                });
            }
            tokio::time::sleep(CHANGE_POLL.min(left)).await;
            let request = self
                .changes
                .get()
                .set_project(&self.project)
                .set_managed_zone(&self.zone)
                .set_change_id(id)
                .send();
            sent = Box::pin(request)
                .await
                .map_err(|e| self.failed(endpoint, what, &e))?;
        }
    }

    fn weights_of(
        endpoint: &str,
        registered: &Registered,
        set: &ResourceRecordSet,
    ) -> Result<Weights, TrafficError> {
        record::weights_of(set, registered).map_err(|found| TrafficError::Verify {
            endpoint: endpoint.to_string(),
            what: "weighted round-robin items",
            expected: "item 0 blue and item 1 green as registered, weights summing to 100".into(),
            found: format!("{found} (changed outside rotor?)"),
        })
    }
}

#[async_trait]
impl TrafficShifter for CloudDnsShifter {
    /// Writes the address set and the owner record in one change; a set rotor did not write
    /// is refused. Re-registering a green keeps the split, anything else sends all to blue.
    async fn register(
        &self,
        endpoint: &str,
        blue: SocketAddr,
        green: Option<SocketAddr>,
    ) -> Result<(), TrafficError> {
        validate_endpoint(endpoint)?;
        check_dns_backends(endpoint, blue, green)?;
        let current = self.read(endpoint).await?;
        Self::refuse_foreign(endpoint, &current)?;
        let wanted = Registered {
            blue: blue.ip(),
            green: green.map(|g| g.ip()),
        };
        let weights = match (&current.registered, &current.address, green) {
            (Some(r @ Registered { green: Some(_), .. }), Some(set), Some(_)) => {
                match Self::weights_of(endpoint, r, set) {
                    Ok(weights) => weights,
                    // The same backends, their split unreadable after a hand edit: nothing to
                    // register, and no split to keep. The next shift writes it whole, so a
                    // re-register (a restarted controller's) does not stall on the edit.
                    Err(e) if *r == wanted => {
                        tracing::warn!(endpoint, error = %e, "left for the next shift");
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                }
            }
            _ => Weights::all_blue(),
        };
        let name = fqdn(endpoint);
        let address = record::address_set(&name, self.ttl, &wanted, weights);
        let owner = record::owner_set(&name, self.ttl, &wanted);
        let (mut deletions, mut additions) = (Vec::new(), Vec::new());
        for (held, want) in [(&current.address, address), (&current.owner, owner)] {
            if held.as_ref().is_some_and(|h| record::same(h, &want)) {
                continue;
            }
            deletions.extend(held.clone());
            additions.push(want);
        }
        if additions.is_empty() {
            return Ok(());
        }
        self.change(endpoint, "registering the backends", deletions, additions)
            .await
    }

    async fn set_weights(&self, endpoint: &str, weights: Weights) -> Result<(), TrafficError> {
        validate_endpoint(endpoint)?;
        let current = self.read(endpoint).await?;
        let (registered, held) = Self::owned(endpoint, &current)?;
        if registered.green.is_none() {
            if weights.green_pct() > 0 {
                return Err(TrafficError::GreenNotRegistered {
                    endpoint: endpoint.to_string(),
                    green: weights.green_pct(),
                });
            }
            return Ok(());
        }
        let wanted = record::address_set(&fqdn(endpoint), self.ttl, &registered, weights);
        if !record::same(held, &wanted) {
            let deletions = vec![held.clone()];
            self.change(endpoint, "setting the weights", deletions, vec![wanted])
                .await?;
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
        let (registered, set) = Self::owned(endpoint, &current)?;
        Self::weights_of(endpoint, &registered, set)
    }

    /// Resolvers may answer with the old weights until the change has propagated and their
    /// cached answer (TTL) has expired.
    fn settle_time(&self) -> Duration {
        self.propagation + Duration::from_secs(u64::try_from(self.ttl).unwrap_or(0))
    }

    async fn backend_stats(&self, endpoint: &str) -> Result<BackendStats, TrafficError> {
        Err(no_counts(endpoint))
    }

    /// DNS times no requests.
    async fn latencies(&self, endpoint: &str) -> Result<BackendLatencies, TrafficError> {
        Err(TrafficError::NoLatencies {
            endpoint: endpoint.to_string(),
            shifter: "clouddns",
        })
    }

    /// DNS sees no connections either: a drain behind Cloud DNS is its settle time.
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
        shifter: "clouddns",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_are_project_slash_managed_zone() {
        assert_eq!(
            parse_zone("rotor-prod/public").unwrap(),
            ("rotor-prod".to_string(), "public".to_string())
        );
        for bad in ["", "p", "p/", "/z", "p/z/x"] {
            let err = parse_zone(bad).unwrap_err();
            assert!(matches!(err, TrafficError::Setup { .. }), "{bad}: {err:?}");
            assert!(err.to_string().contains("PROJECT/MANAGED_ZONE"), "{err}");
        }
    }

    #[test]
    fn options_never_print_credentials() {
        let shown = format!("{:?}", CloudDnsOptions::default());
        assert!(shown.contains("credentials: None"), "{shown}");
        assert!(shown.contains("ttl: 10s"), "{shown}");
    }
}
