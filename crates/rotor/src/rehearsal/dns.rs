//! The rehearsal's traffic through the clouds' DNS (`TrafficChoice::Dns`): each Cluster's
//! endpoint is a name in its cloud's DNS service as `rotor sim` serves it — a Route 53 hosted
//! zone, a Cloud DNS managed zone, a Traffic Manager profile — shifted by the real shifters
//! `rotor serve --traffic route53:…|clouddns:…|trafficmanager:…` runs, and the load reaches it
//! by resolving the name through caching resolvers over the simulator's records
//! ([`rotor_traffic::resolver`]) at the instances' shared traffic port.
//!
//! Traffic Manager routes one name per profile: each Azure Cluster's endpoint is a profile of
//! its own in one resource group (`{cluster}.trafficmanager.net`; the shifter's scope is the
//! resource group), as AWS and GCP Clusters each have a record set of their own.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kube::ResourceExt;
use rotor_api::{Cluster, ShifterKind};
use rotor_sim::Sim;
use rotor_traffic::TrafficShifter;
use rotor_traffic::resolver::Records;

use super::clouds::{self, Cloud};

/// The records' TTL: clients follow a shift within it (each shifter's `settle_time`).
pub const TTL: Duration = Duration::from_secs(1);
/// The domain of the AWS and GCP Clusters' names (`{cluster}.{cloud}.{DOMAIN}`).
const DOMAIN: &str = "rotor-demo.example";
/// The Cloud DNS managed zone (in the rehearsal's GCP project).
const MANAGED_ZONE: &str = "rotor-demo";

/// The shifters of the clouds' DNS, and each endpoint's name.
pub(super) struct DnsTraffic {
    pub shifters: Vec<(ShifterKind, Arc<dyn TrafficShifter>)>,
    /// The name each endpoint resolves by.
    pub names: BTreeMap<String, String>,
}

/// Zones (or profiles) on each cloud in `clouds`, their shifters, and every Cluster of `fleet`
/// pointed at its cloud's: its shifter kind, its endpoint, its name.
pub(super) async fn setup(
    sim: &Sim,
    sim_url: &str,
    fleet: &mut [Cluster],
    clouds: &[Cloud],
) -> anyhow::Result<DnsTraffic> {
    let mut shifters = Vec::new();
    for cloud in clouds {
        shifters.push(shifter(sim, sim_url, *cloud).await?);
    }
    let mut names = BTreeMap::new();
    for c in fleet.iter_mut() {
        let cloud = clouds
            .iter()
            .copied()
            .find(|k| k.provider() == c.spec.provider)
            .ok_or_else(|| anyhow::anyhow!("Cluster {} is on no cloud's DNS", c.name_any()))?;
        let (endpoint, name) = match cloud {
            Cloud::Aws | Cloud::Gcp => {
                let name = format!("{}.{}.{DOMAIN}", c.name_any(), cloud.as_str());
                (name.clone(), name)
            }
            Cloud::Azure => {
                let (subscription, group) =
                    (clouds::AZURE_SUBSCRIPTION, clouds::AZURE_RESOURCE_GROUP);
                let profile = c.name_any();
                let ttl = TTL.as_secs() as i64;
                sim.add_traffic_manager_profile(subscription, group, &profile, &profile, ttl);
                (profile.clone(), format!("{profile}.trafficmanager.net"))
            }
        };
        c.spec.traffic.shifter = kind(cloud);
        c.spec.traffic.endpoint = endpoint.clone();
        names.insert(endpoint, name);
    }
    Ok(DnsTraffic { shifters, names })
}

/// The shifter of `cloud`'s DNS service.
fn kind(cloud: Cloud) -> ShifterKind {
    match cloud {
        Cloud::Aws => ShifterKind::Route53,
        Cloud::Gcp => ShifterKind::CloudDns,
        Cloud::Azure => ShifterKind::TrafficManager,
    }
}

/// `cloud`'s DNS service made ready in the simulator, and rotor's shifter of it.
async fn shifter(
    sim: &Sim,
    sim_url: &str,
    cloud: Cloud,
) -> anyhow::Result<(ShifterKind, Arc<dyn TrafficShifter>)> {
    let ttl = TTL.as_secs();
    let shifter: Arc<dyn TrafficShifter> = match cloud {
        Cloud::Aws => {
            let zone = sim.add_hosted_zone(&format!("aws.{DOMAIN}"));
            let config = rotor_aws::sdk_config(&clouds::aws_options(sim_url)).await;
            let shifter = rotor_traffic::route53::Route53Shifter::new(&config, &zone, ttl as i64)
                .with_propagation(Duration::ZERO);
            Arc::new(shifter)
        }
        Cloud::Gcp => {
            sim.add_managed_zone(clouds::GCP_PROJECT, MANAGED_ZONE, &format!("gcp.{DOMAIN}"));
            let options = rotor_traffic::clouddns::CloudDnsOptions {
                endpoint: Some(format!("{sim_url}/gcp")),
                credentials: Some(rotor_providers::gke::static_token(clouds::GCP_TOKEN)),
                ttl: TTL,
                propagation: Duration::ZERO,
                ..Default::default()
            };
            let zone = format!("{}/{MANAGED_ZONE}", clouds::GCP_PROJECT);
            let shifter = rotor_traffic::clouddns::CloudDnsShifter::new(&zone, options)
                .await
                .map_err(|e| anyhow::anyhow!("Cloud DNS shifter: {e}"))?;
            Arc::new(shifter)
        }
        Cloud::Azure => {
            let (subscription, group) = (clouds::AZURE_SUBSCRIPTION, clouds::AZURE_RESOURCE_GROUP);
            let options = rotor_traffic::trafficmanager::TrafficManagerOptions {
                azure: clouds::azure_options(sim_url),
                propagation: Duration::ZERO,
            };
            // A profile per endpoint: the resource group is the shifter's scope.
            let scope = format!("{subscription}/{group}");
            let shifter =
                rotor_traffic::trafficmanager::TrafficManagerShifter::new(&scope, options)
                    .await
                    .map_err(|e| anyhow::anyhow!("Traffic Manager shifter: {e}"))?;
            Arc::new(shifter)
        }
    };
    Ok((kind(cloud), shifter))
}

/// The simulator's DNS records as the load's resolvers query them: query `n` is answered with
/// the weighted choice at `frac(n·φ)`, a sequence that spreads evenly over `[0, 1)` (the
/// services choose at random; the same run then answers the same).
pub struct SimRecords {
    sim: Arc<Sim>,
    queries: AtomicU64,
}

impl SimRecords {
    pub fn new(sim: Arc<Sim>) -> Self {
        SimRecords {
            sim,
            queries: AtomicU64::new(0),
        }
    }
}

impl Records for SimRecords {
    fn query(&self, name: &str) -> Option<(IpAddr, Duration)> {
        let answer = self.sim.resolve(name)?;
        let n = self.queries.fetch_add(1, Ordering::Relaxed);
        let roll = (n as f64 * 0.618_033_988_749_895).fract();
        Some((answer.pick(roll)?, answer.ttl))
    }
}
