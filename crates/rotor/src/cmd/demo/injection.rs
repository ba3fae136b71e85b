//! The failure `rotor demo` injects: which simulator fault `--inject` names, setting it in the
//! canary's green once green carries half the traffic, and what the report says of it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use kube::ResourceExt;
use rotor_api::{ClusterSwap, Phase};

use super::HOOK_DENY;
use super::critical_path::SwapTiming;

/// The simulator fault an `--inject` value names (None: `none`).
pub(super) fn injected_fault(name: &str) -> anyhow::Result<Option<rotor_sim::Fault>> {
    use rotor_sim::Fault;
    Ok(Some(match name {
        "none" | HOOK_DENY => return Ok(None),
        "green-unhealthy" | "green-errors" => Fault::TrafficErrors,
        "green-hangs" => Fault::TrafficHangs,
        "green-slow" => Fault::TrafficSlow,
        "green-resets" => Fault::TrafficResets,
        other => anyhow::bail!(
            "--inject {other:?}: the known faults are green-unhealthy (green-errors), \
             green-hangs, green-slow, green-resets, hook-deny, or none"
        ),
    }))
}

/// Sets `fault` in the member behind `swap`'s green once green carries half the traffic.
pub(super) fn inject_if_half(
    sim: &rotor_sim::Sim,
    fault: rotor_sim::Fault,
    swap: &ClusterSwap,
    started: Instant,
) -> Option<Injection> {
    let st = swap.status.as_ref()?;
    if st.phase != Phase::ShiftingTraffic || st.green_weight_percent < 50 {
        return None;
    }
    let green = st.green_instance.clone()?;
    let member = sim.member_of_instance(&green);
    let set = member.as_ref().is_some_and(|m| sim.set_fault(m, fault));
    let served = member.as_deref().and_then(|m| sim.cluster(m));
    Some(Injection {
        swap: swap.name_any(),
        cluster: swap.spec.cluster_ref.clone(),
        green,
        at_s: started.elapsed().as_secs_f64(),
        set,
        member_address: served.as_ref().and_then(|m| m.traffic_addr),
        counts: served.and_then(|m| m.traffic_counts()),
        routed_address: None,
    })
}

impl Injection {
    /// Why the injection proved nothing, if it did not: the fault never reached a member, or
    /// no request met it (on a fleet this large each cluster's green sees few requests per
    /// step, and a gate judges only the requests green answered).
    pub(super) fn unexercised(&self) -> Option<String> {
        if !self.set {
            return Some(format!(
                "the injected fault found no simulated member for green {}",
                self.green
            ));
        }
        let faulted = self.counts.as_ref().map_or(0, |c| c.read().1);
        (faulted == 0).then(|| {
            format!(
                "the fault injected into green {} of {} met no request: nothing showed it, \
                 and the gates had no failure to judge",
                self.green, self.swap
            )
        })
    }
}

/// When the demo saw the injected swap take green's traffic away (RollingBack at weight 0),
/// in seconds since it started: the gate's reaction to the fault, as the demo's watch saw it.
pub(super) fn rolled_back_at(
    timings: &BTreeMap<String, SwapTiming>,
    injection: &Injection,
) -> Option<f64> {
    // The earliest: a retry of the same cluster may roll back later, and its entry may come
    // first in the map (keyed by uid).
    timings
        .values()
        .filter(|t| t.cluster == injection.cluster)
        .flat_map(|t| &t.history)
        .filter(|(at, phase, weight)| {
            *at >= injection.at_s && phase == Phase::RollingBack.as_str() && *weight == 0
        })
        .map(|(at, _, _)| *at)
        .reduce(f64::min)
}

/// Where the demo injected its failure.
pub(super) struct Injection {
    pub(super) swap: String,
    pub(super) cluster: String,
    pub(super) green: String,
    pub(super) at_s: f64,
    /// Whether the simulator knew the green instance.
    pub(super) set: bool,
    /// Where the faulted member answers traffic.
    pub(super) member_address: Option<SocketAddr>,
    /// What the faulted member's listener answered (all, and under the fault).
    pub(super) counts: Option<Arc<rotor_sim::TrafficCounts>>,
    /// Green's address in the traffic layer when the fault was set (HAProxy only).
    pub(super) routed_address: Option<SocketAddr>,
}
