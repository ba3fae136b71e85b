//! Readiness: whether green's copies of the moved workloads run, and which hold it up.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use kube::api::DynamicObject;
use kube::{Client, ResourceExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::plan::{ResourceRef, list_all};
use crate::{Error, Plan, select};

/// Availability of a plan's Deployments, StatefulSets and DaemonSets in green.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    pub total: usize,
    pub ready: usize,
    /// `Kind namespace/name: why`, for each workload not yet available.
    pub holding_up: Vec<String>,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.ready == self.total
    }
}

/// One look at green (a list per workload kind, not a request per object): a controller can
/// call it once per reconcile.
pub async fn readiness(green: &Client, plan: &Plan) -> Result<Readiness, Error> {
    let mut wanted: BTreeMap<&ResourceRef, Vec<(String, String)>> = BTreeMap::new();
    for (_, res, obj) in plan.objects() {
        if select::is_available_kind(&res.group, &res.kind) {
            wanted
                .entry(res)
                .or_default()
                .push((obj.namespace.clone().unwrap_or_default(), obj.name.clone()));
        }
    }
    let mut out = Readiness::default();
    for (res, objects) in wanted {
        let listed = list_all(green, res)
            .await
            .map_err(|e| Error::Green {
                what: format!("listing {} in green", res.plural),
                message: crate::api_message(&e),
            })?
            .unwrap_or_default();
        let by_name: HashMap<(String, String), DynamicObject> = listed
            .into_iter()
            .map(|o| ((o.namespace().unwrap_or_default(), o.name_any()), o))
            .collect();
        for (ns, name) in objects {
            out.total += 1;
            let why = match by_name.get(&(ns.clone(), name.clone())) {
                None => Some("not in green".to_string()),
                Some(o) => not_available(&res.kind, o),
            };
            match why {
                None => out.ready += 1,
                Some(why) => out
                    .holding_up
                    .push(format!("{} {ns}/{name}: {why}", res.kind)),
            }
        }
    }
    Ok(out)
}

/// Polls [`readiness`] until every workload is available, or fails after `timeout` with the
/// ones holding it up. A failed look at green is retried until the deadline.
pub async fn wait_ready(
    green: &Client,
    plan: &Plan,
    timeout: Duration,
) -> Result<Readiness, Error> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        let look = readiness(green, plan).await;
        if let Ok(r) = &look
            && r.is_ready()
        {
            return look;
        }
        if started.elapsed() >= timeout {
            let r = look?;
            return Err(Error::NotReady {
                ready: r.ready,
                total: r.total,
                waited_s: started.elapsed().as_secs_f64(),
                holding_up: r.holding_up,
            });
        }
        tokio::time::sleep(pause.min(timeout.saturating_sub(started.elapsed()))).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

fn int(obj: &DynamicObject, path: &str) -> Option<i64> {
    obj.data.pointer(path).and_then(Value::as_i64)
}

/// Why a workload is not available yet, or None when it is: its current generation observed,
/// every wanted replica updated and available (DaemonSets: on every scheduled node).
fn not_available(kind: &str, o: &DynamicObject) -> Option<String> {
    let generation = o.metadata.generation.unwrap_or(0);
    let observed = int(o, "/status/observedGeneration").unwrap_or(0);
    if observed < generation {
        return Some(format!(
            "generation {generation} not observed yet (observed {observed})"
        ));
    }
    let (want, updated, available) = if kind == "DaemonSet" {
        (
            int(o, "/status/desiredNumberScheduled").unwrap_or(0),
            int(o, "/status/updatedNumberScheduled").unwrap_or(0),
            int(o, "/status/numberAvailable").unwrap_or(0),
        )
    } else {
        let available = int(o, "/status/availableReplicas")
            .or_else(|| int(o, "/status/readyReplicas"))
            .unwrap_or(0);
        (
            int(o, "/spec/replicas").unwrap_or(1),
            int(o, "/status/updatedReplicas").unwrap_or(0),
            available,
        )
    };
    (available < want || updated < want)
        .then(|| format!("{available}/{want} available, {updated} updated"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> DynamicObject {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn availability_rules() {
        let fresh =
            obj(json!({"metadata": {"name": "a", "generation": 1}, "spec": {"replicas": 2}}));
        assert!(
            not_available("Deployment", &fresh)
                .unwrap()
                .contains("not observed")
        );
        let half = obj(
            json!({"metadata": {"name": "a", "generation": 1}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "availableReplicas": 1, "updatedReplicas": 2}}),
        );
        assert_eq!(
            not_available("Deployment", &half).as_deref(),
            Some("1/2 available, 2 updated")
        );
        let up = obj(
            json!({"metadata": {"name": "a", "generation": 1}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "availableReplicas": 2, "updatedReplicas": 2}}),
        );
        assert_eq!(not_available("Deployment", &up), None);
        let ds = obj(json!({"metadata": {"name": "d", "generation": 1},
            "status": {"observedGeneration": 1, "desiredNumberScheduled": 3, "numberAvailable": 2, "updatedNumberScheduled": 3}}));
        assert!(not_available("DaemonSet", &ds).is_some());
        let zero = obj(
            json!({"metadata": {"name": "a", "generation": 1}, "spec": {"replicas": 0},
            "status": {"observedGeneration": 1}}),
        );
        assert_eq!(not_available("StatefulSet", &zero), None);
    }
}
