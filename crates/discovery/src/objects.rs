//! What discovery reads of each watched object. The watchers decode into trimmed types that
//! name only the fields a summary needs (serde skips the rest, `managedFields` included, without
//! allocating), and each object is then reduced to a [`Rec`] of a few integers: that is all that
//! is kept per object.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Debug;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::Selection;

/// The kinds discovery watches in every instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    Node = 0,
    Deployment = 1,
    StatefulSet = 2,
    DaemonSet = 3,
    PodDisruptionBudget = 4,
}

impl Kind {
    pub(crate) const ALL: [Kind; 5] = [
        Kind::Node,
        Kind::Deployment,
        Kind::StatefulSet,
        Kind::DaemonSet,
        Kind::PodDisruptionBudget,
    ];
    pub(crate) const WORKLOADS: [Kind; 3] = [Kind::Deployment, Kind::StatefulSet, Kind::DaemonSet];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Node => "Node",
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::DaemonSet => "DaemonSet",
            Kind::PodDisruptionBudget => "PodDisruptionBudget",
        }
    }

    pub(crate) fn plural(self) -> &'static str {
        match self {
            Kind::Node => "nodes",
            Kind::Deployment => "deployments",
            Kind::StatefulSet => "statefulsets",
            Kind::DaemonSet => "daemonsets",
            Kind::PodDisruptionBudget => "poddisruptionbudgets",
        }
    }

    /// The kind a request path is about (`…/apis/apps/v1/deployments?watch=1` → Deployment).
    pub(crate) fn of_path(path: &str) -> Option<Kind> {
        let last = path.trim_end_matches('/').rsplit('/').next()?;
        Kind::ALL.into_iter().find(|k| k.plural() == last)
    }
}

/// The few fields kept per object: enough for the summary, nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rec {
    Node {
        ready: bool,
    },
    Workload {
        generation: i64,
        /// 0 when the controller has not reported yet.
        observed: i64,
        desired: i32,
        available: i32,
        /// Equal to `desired` for the kinds whose update progress is not judged.
        updated: i32,
    },
    Pdb {
        disruptions_allowed: i32,
    },
}

impl Rec {
    /// Ready node, available workload, or a PDB that allows a disruption.
    pub(crate) fn healthy(&self) -> bool {
        self.why().is_none()
    }

    /// Why the object is not healthy, for the summary's reason.
    pub(crate) fn why(&self) -> Option<String> {
        match *self {
            Rec::Node { ready } => (!ready).then(|| "NotReady".to_string()),
            Rec::Workload {
                generation,
                observed,
                desired,
                available,
                updated,
            } => {
                if generation > 0 && observed < generation {
                    Some(format!("generation {generation} not observed yet"))
                } else if available < desired {
                    Some(format!("{available}/{desired} available"))
                } else if updated < desired {
                    Some(format!("{updated}/{desired} updated"))
                } else {
                    None
                }
            }
            Rec::Pdb {
                disruptions_allowed,
            } => (disruptions_allowed <= 0).then(|| "no disruption allowed".to_string()),
        }
    }
}

/// A trimmed object the watchers decode into.
pub(crate) trait Trimmed:
    kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
    const KIND: Kind;
    fn record(&self) -> Rec;
}

/// The object's key in its kind's table: `namespace/name`, or `name` when cluster-scoped.
pub(crate) fn key_of(meta: &ObjectMeta) -> Box<str> {
    let name = meta.name.as_deref().unwrap_or_default();
    match meta.namespace.as_deref() {
        Some(ns) => format!("{ns}/{name}").into_boxed_str(),
        None => name.into(),
    }
}

/// What the watch of kind `K` keeps of `obj`: None when the selection leaves it out (it may
/// just have been relabelled out, so the caller forgets it).
pub(crate) fn keep<K: Trimmed>(obj: &K, selection: &Selection) -> Option<Rec> {
    if K::KIND != Kind::Node {
        let meta = obj.meta();
        let ns = meta.namespace.as_deref().unwrap_or_default();
        let none = BTreeMap::new();
        if !selection.selects(ns, meta.labels.as_ref().unwrap_or(&none)) {
            return None;
        }
    }
    Some(obj.record())
}

/// `metadata` as far as discovery needs it; the rest of the object's metadata is skipped.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetaLite {
    name: Option<String>,
    namespace: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    generation: Option<i64>,
    resource_version: Option<String>,
}

fn trimmed_meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = Option::<MetaLite>::deserialize(d)?;
    Ok(m.map(|m| ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        labels: m.labels,
        generation: m.generation,
        resource_version: m.resource_version,
        ..ObjectMeta::default()
    })
    .unwrap_or_default())
}

macro_rules! resource {
    ($ty:ident, $kind:literal, $group:literal, $version:literal, $plural:literal, $scope:ty) => {
        impl kube::Resource for $ty {
            type DynamicType = ();
            type Scope = $scope;
            fn kind(_: &()) -> Cow<'_, str> {
                $kind.into()
            }
            fn group(_: &()) -> Cow<'_, str> {
                $group.into()
            }
            fn version(_: &()) -> Cow<'_, str> {
                $version.into()
            }
            fn plural(_: &()) -> Cow<'_, str> {
                $plural.into()
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

#[derive(Clone, Debug, Default, Deserialize)]
struct ReplicasSpec {
    replicas: Option<i32>,
}

#[derive(Clone, Debug, Deserialize)]
struct ConditionLite {
    #[serde(rename = "type")]
    type_: String,
    status: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct NodeStatusLite {
    conditions: Option<Vec<ConditionLite>>,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct NodeLite {
    #[serde(default, deserialize_with = "trimmed_meta")]
    metadata: ObjectMeta,
    status: Option<NodeStatusLite>,
}
resource!(NodeLite, "Node", "", "v1", "nodes", ClusterResourceScope);

impl Trimmed for NodeLite {
    const KIND: Kind = Kind::Node;
    fn record(&self) -> Rec {
        let ready = self
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        Rec::Node { ready }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeploymentStatusLite {
    observed_generation: Option<i64>,
    available_replicas: Option<i32>,
    updated_replicas: Option<i32>,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct DeploymentLite {
    #[serde(default, deserialize_with = "trimmed_meta")]
    metadata: ObjectMeta,
    spec: Option<ReplicasSpec>,
    status: Option<DeploymentStatusLite>,
}
resource!(
    DeploymentLite,
    "Deployment",
    "apps",
    "v1",
    "deployments",
    NamespaceResourceScope
);

impl Trimmed for DeploymentLite {
    const KIND: Kind = Kind::Deployment;
    fn record(&self) -> Rec {
        let st = self.status.clone().unwrap_or_default();
        Rec::Workload {
            generation: self.metadata.generation.unwrap_or(0),
            observed: st.observed_generation.unwrap_or(0),
            desired: self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            available: st.available_replicas.unwrap_or(0),
            updated: st.updated_replicas.unwrap_or(0),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatefulSetStatusLite {
    observed_generation: Option<i64>,
    available_replicas: Option<i32>,
    ready_replicas: Option<i32>,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct StatefulSetLite {
    #[serde(default, deserialize_with = "trimmed_meta")]
    metadata: ObjectMeta,
    spec: Option<ReplicasSpec>,
    status: Option<StatefulSetStatusLite>,
}
resource!(
    StatefulSetLite,
    "StatefulSet",
    "apps",
    "v1",
    "statefulsets",
    NamespaceResourceScope
);

impl Trimmed for StatefulSetLite {
    const KIND: Kind = Kind::StatefulSet;
    fn record(&self) -> Rec {
        let st = self.status.clone().unwrap_or_default();
        let desired = self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        Rec::Workload {
            generation: self.metadata.generation.unwrap_or(0),
            observed: st.observed_generation.unwrap_or(0),
            desired,
            // Older servers report only readyReplicas.
            available: st.available_replicas.or(st.ready_replicas).unwrap_or(0),
            updated: desired,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DaemonSetStatusLite {
    observed_generation: Option<i64>,
    desired_number_scheduled: Option<i32>,
    number_available: Option<i32>,
    number_ready: Option<i32>,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct DaemonSetLite {
    #[serde(default, deserialize_with = "trimmed_meta")]
    metadata: ObjectMeta,
    status: Option<DaemonSetStatusLite>,
}
resource!(
    DaemonSetLite,
    "DaemonSet",
    "apps",
    "v1",
    "daemonsets",
    NamespaceResourceScope
);

impl Trimmed for DaemonSetLite {
    const KIND: Kind = Kind::DaemonSet;
    fn record(&self) -> Rec {
        let st = self.status.clone().unwrap_or_default();
        let desired = st.desired_number_scheduled.unwrap_or(0);
        Rec::Workload {
            generation: self.metadata.generation.unwrap_or(0),
            observed: st.observed_generation.unwrap_or(0),
            desired,
            available: st.number_available.or(st.number_ready).unwrap_or(0),
            updated: desired,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PdbStatusLite {
    disruptions_allowed: Option<i32>,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct PdbLite {
    #[serde(default, deserialize_with = "trimmed_meta")]
    metadata: ObjectMeta,
    status: Option<PdbStatusLite>,
}
resource!(
    PdbLite,
    "PodDisruptionBudget",
    "policy",
    "v1",
    "poddisruptionbudgets",
    NamespaceResourceScope
);

impl Trimmed for PdbLite {
    const KIND: Kind = Kind::PodDisruptionBudget;
    fn record(&self) -> Rec {
        Rec::Pdb {
            disruptions_allowed: self
                .status
                .as_ref()
                .and_then(|s| s.disruptions_allowed)
                .unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimmed_deployment_keeps_only_summary_fields() {
        let d: DeploymentLite = serde_json::from_str(
            r#"{"apiVersion":"apps/v1","kind":"Deployment",
            "metadata":{"name":"web","namespace":"demo","generation":3,"resourceVersion":"17",
              "labels":{"app":"web"},"annotations":{"a":"b"},
              "managedFields":[{"manager":"x","fieldsV1":{"f:spec":{}}}]},
            "spec":{"replicas":2,"template":{"spec":{"containers":[{"name":"c","image":"i"}]}}},
            "status":{"observedGeneration":3,"availableReplicas":1,"updatedReplicas":2,
              "conditions":[{"type":"Available","status":"False"}]}}"#,
        )
        .expect("decodes");
        assert_eq!(d.metadata.resource_version.as_deref(), Some("17"));
        assert!(d.metadata.annotations.is_none());
        assert!(d.metadata.managed_fields.is_none());
        assert_eq!(key_of(&d.metadata).as_ref(), "demo/web");
        let rec = d.record();
        assert_eq!(rec.why().as_deref(), Some("1/2 available"));
    }

    #[test]
    fn workload_reasons() {
        let w = |generation, observed, desired, available, updated| Rec::Workload {
            generation,
            observed,
            desired,
            available,
            updated,
        };
        assert!(w(2, 2, 3, 3, 3).healthy());
        assert_eq!(
            w(2, 1, 3, 3, 3).why().as_deref(),
            Some("generation 2 not observed yet")
        );
        assert_eq!(w(1, 1, 3, 3, 1).why().as_deref(), Some("1/3 updated"));
        assert!(w(0, 0, 0, 0, 0).healthy());
    }

    #[test]
    fn node_readiness_and_missing_status() {
        let n: NodeLite = serde_json::from_str(
            r#"{"metadata":{"name":"n1"},"status":{"conditions":[
                {"type":"MemoryPressure","status":"False"},{"type":"Ready","status":"True"}]}}"#,
        )
        .expect("decodes");
        assert_eq!(n.record(), Rec::Node { ready: true });
        let bare: NodeLite =
            serde_json::from_str(r#"{"metadata":{"name":"n2"},"status":null}"#).expect("decodes");
        assert_eq!(bare.record(), Rec::Node { ready: false });
        assert_eq!(key_of(&bare.metadata).as_ref(), "n2");
    }

    #[test]
    fn kinds_from_paths() {
        assert_eq!(
            Kind::of_path("/clusters/a/apis/apps/v1/deployments"),
            Some(Kind::Deployment)
        );
        assert_eq!(Kind::of_path("/api/v1/nodes"), Some(Kind::Node));
        assert_eq!(Kind::of_path("/version"), None);
    }
}
