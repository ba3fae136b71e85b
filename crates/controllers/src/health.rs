//! Probes of a member cluster instance through its Kubernetes API: version, node readiness,
//! workload availability. Discovery answers the same questions from watches; these reads are
//! the fallback when its summary of an instance is not current (not watched yet, unreachable,
//! a watch failing, silent for longer than the watchdog allows).

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use rotor_api::WorkloadSelector;

use crate::Error;

/// Namespaces that belong to the cluster, never to an application.
pub const SYSTEM_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

/// Which workloads of a cluster belong to the application: both selectors must select it (the
/// Cluster's `spec.workloads` and the swap's migration policy), system namespaces never.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    pub cluster: WorkloadSelector,
    pub policy: WorkloadSelector,
}

impl Selection {
    pub fn selects_namespace(&self, ns: &str) -> bool {
        !SYSTEM_NAMESPACES.contains(&ns)
            && self.cluster.selects_namespace(ns)
            && self.policy.selects_namespace(ns)
    }

    pub fn selects(&self, ns: &str, labels: &std::collections::BTreeMap<String, String>) -> bool {
        self.selects_namespace(ns)
            && self.cluster.selects_labels(labels)
            && self.policy.selects_labels(labels)
    }

    /// The same selection, as discovery takes it (both selectors, system namespaces never).
    pub fn discovery(&self) -> rotor_discovery::Selection {
        rotor_discovery::Selection::all_of([self.cluster.clone(), self.policy.clone()])
    }
}

fn member_error(instance: &str, what: &str, e: kube::Error) -> Error {
    Error::Member {
        instance: instance.to_string(),
        message: format!("{what}: {}", crate::chain(&e)),
    }
}

/// The minor version the instance's API reports (`/version`).
pub async fn minor_version(client: &Client, instance: &str) -> Result<u32, Error> {
    let info = client
        .apiserver_version()
        .await
        .map_err(|e| member_error(instance, "reading /version", e))?;
    info.minor
        .trim_end_matches('+')
        .parse()
        .map_err(|_| Error::Member {
            instance: instance.to_string(),
            message: format!("/version reports an unparsable minor {:?}", info.minor),
        })
}

/// (Ready nodes, all nodes).
pub async fn nodes_ready(client: &Client, instance: &str) -> Result<(u32, u32), Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let list = nodes
        .list(&ListParams::default())
        .await
        .map_err(|e| member_error(instance, "listing nodes", e))?;
    let ready = list
        .items
        .iter()
        .filter(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .count();
    Ok((ready as u32, list.items.len() as u32))
}

/// Availability of the selected workloads of an instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Workloads {
    pub total: u32,
    pub available: u32,
    /// `Kind namespace/name: why`, for the ones that are not available (at most 5).
    pub holding_up: Vec<String>,
}

impl Workloads {
    pub fn all_available(&self) -> bool {
        self.available == self.total
    }

    fn add(&mut self, kind: &str, ns: &str, name: &str, why: Option<String>) {
        self.total += 1;
        match why {
            None => self.available += 1,
            Some(why) if self.holding_up.len() < 5 => {
                self.holding_up.push(format!("{kind} {ns}/{name}: {why}"))
            }
            Some(_) => {}
        }
    }
}

/// Whether each selected Deployment, StatefulSet and DaemonSet has rolled out its current
/// generation and has all its replicas available.
pub async fn workloads(
    client: &Client,
    instance: &str,
    selection: &Selection,
) -> Result<Workloads, Error> {
    let mut out = Workloads::default();
    let lp = ListParams::default();
    let deployments: Api<Deployment> = Api::all(client.clone());
    for d in deployments
        .list(&lp)
        .await
        .map_err(|e| member_error(instance, "listing deployments", e))?
    {
        let ns = d.namespace().unwrap_or_default();
        if !selection.selects(&ns, d.labels()) {
            continue;
        }
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let st = d.status.clone().unwrap_or_default();
        let why = rollout_pending(d.metadata.generation, st.observed_generation).or_else(|| {
            let have = st.available_replicas.unwrap_or(0);
            let updated = st.updated_replicas.unwrap_or(0);
            (have < want || updated < want)
                .then(|| format!("{have}/{want} replicas available, {updated} updated"))
        });
        out.add("Deployment", &ns, &d.name_any(), why);
    }
    let statefulsets: Api<StatefulSet> = Api::all(client.clone());
    for s in statefulsets
        .list(&lp)
        .await
        .map_err(|e| member_error(instance, "listing statefulsets", e))?
    {
        let ns = s.namespace().unwrap_or_default();
        if !selection.selects(&ns, s.labels()) {
            continue;
        }
        let want = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let st = s.status.clone().unwrap_or_default();
        let why = rollout_pending(s.metadata.generation, st.observed_generation).or_else(|| {
            let have = st
                .available_replicas
                .unwrap_or(st.ready_replicas.unwrap_or(0));
            (have < want).then(|| format!("{have}/{want} replicas available"))
        });
        out.add("StatefulSet", &ns, &s.name_any(), why);
    }
    let daemonsets: Api<DaemonSet> = Api::all(client.clone());
    for d in daemonsets
        .list(&lp)
        .await
        .map_err(|e| member_error(instance, "listing daemonsets", e))?
    {
        let ns = d.namespace().unwrap_or_default();
        if !selection.selects(&ns, d.labels()) {
            continue;
        }
        let st = d.status.clone().unwrap_or_default();
        let why = rollout_pending(d.metadata.generation, st.observed_generation).or_else(|| {
            let have = st.number_available.unwrap_or(st.number_ready);
            (have < st.desired_number_scheduled)
                .then(|| format!("{have}/{} pods available", st.desired_number_scheduled))
        });
        out.add("DaemonSet", &ns, &d.name_any(), why);
    }
    Ok(out)
}

fn rollout_pending(generation: Option<i64>, observed: Option<i64>) -> Option<String> {
    match (generation, observed) {
        (Some(g), Some(o)) if o >= g => None,
        (None, _) => None,
        (Some(g), o) => Some(format!(
            "generation {g} not observed yet (observedGeneration {})",
            o.map(|o| o.to_string()).unwrap_or_else(|| "unset".into())
        )),
    }
}
