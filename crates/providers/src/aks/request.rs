//! What rotor asks AKS for: the managed cluster's PUT body, from the instance spec and the
//! Cluster's `spec.config`, checked before anything is sent (a field AKS would refuse is
//! refused here, named as the Cluster spells it).

use serde_json::{Value, json};

use super::errors::invalid;
use crate::tags::{LABEL_CLUSTER, LABEL_TOKEN, value_of};
use crate::{InstanceSpec, ProviderError};

const OP: &str = "create";

/// The resource group of `spec` (`spec.config.resourceGroup`, required: ARM addresses every
/// cluster by it).
pub(super) fn resource_group(spec: &InstanceSpec) -> Result<String, ProviderError> {
    match spec.config.get("resourceGroup").map(|g| g.trim()) {
        Some(g) if !g.is_empty() => Ok(g.to_string()),
        _ => Err(invalid(
            OP,
            &spec.name,
            "spec.config.resourceGroup is required by the azure provider (the resource group \
             the AKS cluster lives in)"
                .into(),
        )),
    }
}

/// AKS's rule for Linux agent pool names; `Err` says what is wrong.
pub(super) fn check_pool_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 12 {
        return Err("must be 1 to 12 characters long (AKS's limit for agent pools)");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("must start with a lowercase letter");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err("may hold only lowercase letters and digits");
    }
    Ok(())
}

/// The agent pools, the first in mode System (AKS needs one to run its own pods).
fn agent_pools(spec: &InstanceSpec) -> Result<Vec<Value>, ProviderError> {
    if spec.node_pools.is_empty() {
        return Err(invalid(
            OP,
            &spec.name,
            "spec.nodePools is empty: an AKS cluster needs at least one (system) agent pool".into(),
        ));
    }
    let mut pools = Vec::with_capacity(spec.node_pools.len());
    for (i, pool) in spec.node_pools.iter().enumerate() {
        check_pool_name(&pool.name).map_err(|why| {
            invalid(
                OP,
                &spec.name,
                format!("spec.nodePools[{i}].name {:?} {why}", pool.name),
            )
        })?;
        pools.push(json!({
            "name": pool.name,
            "mode": if i == 0 { "System" } else { "User" },
            "type": "VirtualMachineScaleSets",
            "osType": "Linux",
            "vmSize": pool.instance_type,
            "count": pool.desired_count,
            "enableAutoScaling": true,
            "minCount": pool.min_count,
            "maxCount": pool.max_count,
        }));
    }
    Ok(pools)
}

/// `identity`: system-assigned unless `spec.config.identity` names a user-assigned identity.
fn identity(spec: &InstanceSpec) -> Value {
    match spec.config.get("identity").map(|i| i.trim()) {
        None | Some("") | Some("SystemAssigned") => json!({"type": "SystemAssigned"}),
        Some(id) => json!({"type": "UserAssigned", "userAssignedIdentities": {id: {}}}),
    }
}

/// `aadProfile` from `spec.config.aad: managed` (AKS-managed Azure AD, whose clusters hand
/// out `kubelogin` kubeconfigs), with `aadTenantId` and `aadAdminGroupObjectIds` (comma
/// separated) when given; None without `aad`.
fn aad_profile(spec: &InstanceSpec) -> Result<Option<Value>, ProviderError> {
    let get = |key: &str| {
        spec.config
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    };
    match get("aad") {
        None => match ["aadTenantId", "aadAdminGroupObjectIds"]
            .into_iter()
            .find(|k| get(k).is_some())
        {
            Some(key) => Err(invalid(
                OP,
                &spec.name,
                format!("spec.config.{key} needs spec.config.aad: managed"),
            )),
            None => Ok(None),
        },
        Some("managed") => {
            let mut profile = json!({"managed": true});
            if let Some(tenant) = get("aadTenantId") {
                profile["tenantID"] = json!(tenant);
            }
            if let Some(groups) = get("aadAdminGroupObjectIds") {
                let ids: Vec<&str> = groups.split(',').map(str::trim).collect();
                profile["adminGroupObjectIDs"] = json!(ids);
            }
            Ok(Some(profile))
        }
        Some(other) => Err(invalid(
            OP,
            &spec.name,
            format!("spec.config.aad {other:?} is not \"managed\" (AKS-managed Azure AD)"),
        )),
    }
}

/// The PUT body for `spec` in `location`.
pub(super) fn managed_cluster(spec: &InstanceSpec, location: &str) -> Result<Value, ProviderError> {
    let config = |key: &str| {
        spec.config
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    };
    let mut pools = agent_pools(spec)?;
    if let Some(subnet) = config("vnetSubnetId") {
        for pool in &mut pools {
            pool["vnetSubnetID"] = json!(subnet);
        }
    }
    let mut body = json!({
        "location": location,
        "tags": {
            LABEL_CLUSTER: value_of(&spec.cluster),
            LABEL_TOKEN: spec.idempotency_token,
        },
        "identity": identity(spec),
        "properties": {
            "kubernetesVersion": spec.kubernetes_version,
            "dnsPrefix": config("dnsPrefix").unwrap_or(&spec.name),
            "agentPoolProfiles": pools,
        },
    });
    if let Some(aad) = aad_profile(spec)? {
        body["properties"]["aadProfile"] = aad;
    }
    if let Some(plugin) = config("networkPlugin") {
        body["properties"]["networkProfile"] = json!({"networkPlugin": plugin});
    }
    if let Some(tier) = config("tier") {
        if !["Free", "Standard", "Premium"].contains(&tier) {
            return Err(invalid(
                OP,
                &spec.name,
                format!("spec.config.tier {tier:?} is not one of Free, Standard, Premium"),
            ));
        }
        body["sku"] = json!({"name": "Base", "tier": tier});
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodePoolSpec;
    use std::collections::BTreeMap;

    fn spec() -> InstanceSpec {
        let pool = |name: &str| NodePoolSpec {
            name: name.into(),
            instance_type: "Standard_D4s_v5".into(),
            min_count: 1,
            max_count: 5,
            desired_count: 3,
        };
        InstanceSpec {
            cluster: "prod.eu".into(),
            name: "prod-eu-0123456789".into(),
            kubernetes_version: "1.34".into(),
            idempotency_token: "0af3".into(),
            node_pools: vec![pool("system"), pool("batch")],
            config: BTreeMap::from([("resourceGroup".into(), "rg-1".into())]),
        }
    }

    #[test]
    fn the_body_has_the_pools_inline_the_first_as_system_and_rotors_tags() {
        let body = managed_cluster(&spec(), "westeurope").unwrap();
        assert_eq!(body["location"], "westeurope");
        assert_eq!(body["tags"]["rotor-cluster"], "prod_eu");
        assert_eq!(body["tags"]["rotor-token"], "0af3");
        assert_eq!(body["identity"]["type"], "SystemAssigned");
        let pools = &body["properties"]["agentPoolProfiles"];
        assert_eq!(
            (pools[0]["mode"].as_str(), pools[1]["mode"].as_str()),
            (Some("System"), Some("User"))
        );
        assert_eq!(pools[1]["maxCount"], 5);
        assert_eq!(body["properties"]["dnsPrefix"], "prod-eu-0123456789");
        assert!(body.get("sku").is_none());
        assert!(body["properties"].get("aadProfile").is_none());
    }

    #[test]
    fn azure_ad_is_asked_for_as_aks_managed() {
        let mut s = spec();
        s.config.insert("aad".into(), "managed".into());
        s.config.insert("aadTenantId".into(), "tenant-1".into());
        s.config
            .insert("aadAdminGroupObjectIds".into(), "g1, g2".into());
        let body = managed_cluster(&s, "westeurope").unwrap();
        assert_eq!(
            body["properties"]["aadProfile"],
            json!({"managed": true, "tenantID": "tenant-1", "adminGroupObjectIDs": ["g1", "g2"]})
        );
    }

    #[test]
    fn bad_input_is_refused_naming_the_field() {
        let named = |r: Result<Value, ProviderError>, field: &str| match r {
            Err(ProviderError::Refused {
                status: 400,
                message,
                ..
            }) => {
                assert!(message.contains(field), "{field} not named: {message}")
            }
            other => panic!("{field}: {other:?}"),
        };
        let mut s = spec();
        s.node_pools[1].name = "batchpool1234".into();
        named(managed_cluster(&s, "westeurope"), "spec.nodePools[1].name");
        s = spec();
        s.config.insert("tier".into(), "Gold".into());
        named(managed_cluster(&s, "westeurope"), "spec.config.tier");
        s = spec();
        s.config.insert("aad".into(), "legacy".into());
        named(managed_cluster(&s, "westeurope"), "spec.config.aad");
        s = spec();
        s.config.insert("aadTenantId".into(), "t".into());
        named(managed_cluster(&s, "westeurope"), "spec.config.aadTenantId");
        s = spec();
        s.config.clear();
        match resource_group(&s) {
            Err(ProviderError::Refused { message, .. }) => {
                assert!(message.contains("spec.config.resourceGroup"))
            }
            other => panic!("{other:?}"),
        }
        for bad in ["", "Pool", "1pool", "pool-a", "abcdefghijklm"] {
            assert!(check_pool_name(bad).is_err(), "{bad}");
        }
        assert!(check_pool_name("abcdefghijkl").is_ok());
    }
}
