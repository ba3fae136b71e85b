//! The plan of a Rollout in the reply to a dry-run write (`kubectl apply --dry-run=server`):
//! `status.waves` as the controller would freeze them over the Clusters stored now, and
//! `status.plan` with what `rotor rollout plan` shows (windows, blockers, gates, estimate).
//! Installed into the control plane's API server, which knows no rollouts, as its
//! [`DryRunHook`]; the plan comes from the controllers' own planning code.

use std::sync::{Arc, OnceLock, Weak};

use futures::future::BoxFuture;
use rotor_api::{Cluster, Rollout, RolloutStatus};
use rotor_apiserver::{ApiServer, DryRunHook, ListOptions};
use rotor_controllers::rollout::preview::{frozen_plan, preview};
use serde_json::Value;

/// The hook; it reads the Clusters through the server it is installed in (held weakly: the
/// server holds the hook).
#[derive(Debug, Default)]
pub struct RolloutPlan {
    server: OnceLock<Weak<ApiServer>>,
}

impl RolloutPlan {
    /// Points the hook at the server it was installed in.
    pub fn attach(&self, server: &Arc<ApiServer>) {
        let _ = self.server.set(Arc::downgrade(server));
    }

    /// Every Cluster stored now that decodes (as the controller's lenient reflector reads).
    async fn clusters(&self) -> Option<Vec<Cluster>> {
        let server = self.server.get()?.upgrade()?;
        let res = server.resource("rotor.dev", "v1alpha1", "clusters").ok()?;
        let list = server
            .list(&res, None, &ListOptions::default())
            .await
            .ok()?;
        let items = list.get("items")?.as_array()?;
        Some(
            items
                .iter()
                .filter_map(|c| serde_json::from_value(c.clone()).ok())
                .collect(),
        )
    }
}

impl DryRunHook for RolloutPlan {
    fn complete<'a>(
        &'a self,
        group: &'a str,
        plural: &'a str,
        object: &'a mut Value,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if group != rotor_api::GROUP || plural != "rollouts" {
                return;
            }
            // The server validated the object; one this rotor cannot read gets no plan.
            let Ok(rollout) = serde_json::from_value::<Rollout>(object.clone()) else {
                return;
            };
            let Some(clusters) = self.clusters().await else {
                return;
            };
            let status = RolloutStatus {
                waves: frozen_plan(&rollout.spec, &clusters),
                ..Default::default()
            };
            let plan = preview(&rollout.spec, &clusters, chrono::Utc::now());
            let (Ok(mut status), Ok(plan)) =
                (serde_json::to_value(status), serde_json::to_value(plan))
            else {
                return;
            };
            status["plan"] = plan;
            object["status"] = status;
        })
    }
}
