//! What AKS answers about a managed cluster, read into rotor's [`Instance`]:
//! `properties.provisioningState` is a free string in the 2026-01-01 specification, so only the
//! known terminal values are terminal and anything else counts as in progress.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::tags::{LABEL_TOKEN, LABEL_TRAFFIC_ADDRESS, parse_address};
use crate::{Instance, InstanceState};

/// The fields of a `ManagedCluster` rotor reads.
#[derive(Debug, Deserialize)]
pub(super) struct ManagedCluster {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub properties: Properties,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Properties {
    #[serde(default)]
    pub provisioning_state: String,
    #[serde(default)]
    pub kubernetes_version: String,
    #[serde(default)]
    pub current_kubernetes_version: String,
    #[serde(default)]
    pub fqdn: String,
}

impl ManagedCluster {
    /// The rotor token it carries, if any.
    pub fn token(&self) -> Option<&str> {
        self.tags.get(LABEL_TOKEN).map(String::as_str)
    }

    /// The resource group in its id (`/subscriptions/…/resourceGroups/{group}/…`, any case).
    pub fn resource_group(&self) -> Option<&str> {
        let mut parts = self.id.split('/');
        parts
            .by_ref()
            .find(|p| p.eq_ignore_ascii_case("resourceGroups"))?;
        parts.next().filter(|g| !g.is_empty())
    }

    pub fn state(&self) -> &str {
        &self.properties.provisioning_state
    }

    /// The instance as AKS reports it; `failure` is the failed operation's message, if known.
    pub fn observe(&self, name: &str, failure: Option<String>) -> Instance {
        let p = &self.properties;
        let provisioned = !p.fqdn.is_empty();
        let (state, message) = match p.provisioning_state.as_str() {
            "Succeeded" => (InstanceState::Running, "running".to_string()),
            "Deleting" => (InstanceState::Deleting, "AKS is deleting it".into()),
            "Failed" | "Canceled" => (
                InstanceState::Failed,
                failure.unwrap_or_else(|| {
                    format!("AKS reports provisioningState {}", p.provisioning_state)
                }),
            ),
            "Creating" | "" => (InstanceState::Creating, "AKS is creating it".into()),
            // Updating, Upgrading, Scaling, Starting, Stopping, Canceling, or a value this
            // client does not know: in progress; a cluster that has an API is still serving.
            other if provisioned => (InstanceState::Running, format!("AKS reports it {other}")),
            other => (InstanceState::Creating, format!("AKS reports it {other}")),
        };
        let version = if p.current_kubernetes_version.is_empty() {
            &p.kubernetes_version
        } else {
            &p.current_kubernetes_version
        };
        Instance {
            name: name.to_string(),
            kubernetes_version: version.splitn(3, '.').take(2).collect::<Vec<_>>().join("."),
            state,
            message,
            endpoint: provisioned.then(|| server(&p.fqdn)),
            traffic_address: self
                .tags
                .get(LABEL_TRAFFIC_ADDRESS)
                .and_then(|v| parse_address(v)),
        }
    }
}

/// The API server's URL: AKS's `fqdn` is a host served over https on 443; one that already
/// has a scheme (the simulator's plain-http members) is used as it is.
pub(super) fn server(fqdn: &str) -> String {
    if fqdn.contains("://") {
        fqdn.to_string()
    } else {
        format!("https://{fqdn}:443")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(state: &str, fqdn: &str) -> ManagedCluster {
        serde_json::from_value(serde_json::json!({
            "id": "/subscriptions/s/resourcegroups/RG-1/providers/Microsoft.ContainerService/managedClusters/c",
            "location": "westeurope",
            "tags": {"rotor-token": "0af3", "rotor-traffic-address": "10-0-0-7_443"},
            "properties": {"provisioningState": state, "kubernetesVersion": "1.34",
                "currentKubernetesVersion": "1.34.2", "fqdn": fqdn}}))
        .unwrap()
    }

    #[test]
    fn provisioning_states_map_to_instance_states_unknown_ones_in_progress() {
        let fqdn = "c-abc.hcp.westeurope.azmk8s.io";
        let running = cluster("Succeeded", fqdn).observe("c", None);
        assert_eq!(running.state, InstanceState::Running);
        assert_eq!(running.kubernetes_version, "1.34");
        assert_eq!(
            running.endpoint.as_deref(),
            Some("https://c-abc.hcp.westeurope.azmk8s.io:443")
        );
        assert_eq!(
            running.traffic_address,
            Some("10.0.0.7:443".parse().unwrap())
        );
        assert_eq!(
            cluster("Creating", "").observe("c", None).state,
            InstanceState::Creating
        );
        assert_eq!(
            cluster("Deleting", fqdn).observe("c", None).state,
            InstanceState::Deleting
        );
        assert_eq!(
            cluster("Upgrading", fqdn).observe("c", None).state,
            InstanceState::Running
        );
        assert_eq!(
            cluster("Rebooting", "").observe("c", None).state,
            InstanceState::Creating
        );
        let failed =
            cluster("Failed", "").observe("c", Some("AllocationFailed: no capacity".into()));
        assert_eq!(
            (failed.state, failed.message.as_str()),
            (InstanceState::Failed, "AllocationFailed: no capacity")
        );
        assert!(
            cluster("Failed", "")
                .observe("c", None)
                .message
                .contains("Failed")
        );
    }

    #[test]
    fn the_resource_group_and_token_are_read_from_the_answer() {
        let c = cluster("Succeeded", "");
        assert_eq!(c.resource_group(), Some("RG-1"));
        assert_eq!(c.token(), Some("0af3"));
        assert_eq!(
            server("http://127.0.0.1:1/clusters/aks-1"),
            "http://127.0.0.1:1/clusters/aks-1"
        );
    }
}
