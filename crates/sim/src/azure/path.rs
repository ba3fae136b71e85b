//! ARM paths, parsed with the literal segments matched case-insensitively as ARM matches them
//! (`resourceGroups`/`resourcegroups`, `Microsoft.ContainerService`, `managedClusters`).

/// A managed cluster's address: subscription, resource group, name (as the caller wrote them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClusterId {
    pub subscription: String,
    pub group: String,
    pub name: String,
}

impl ClusterId {
    /// The table key: ARM's names are case-insensitive.
    pub fn key(&self) -> (String, String, String) {
        (
            self.subscription.to_ascii_lowercase(),
            self.group.to_ascii_lowercase(),
            self.name.to_ascii_lowercase(),
        )
    }

    /// The resource id ARM answers (`/subscriptions/…/managedClusters/{name}`).
    pub fn resource_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourcegroups/{}/providers/Microsoft.ContainerService/managedClusters/{}",
            self.subscription, self.group, self.name
        )
    }
}

/// A long-running operation's address: subscription, location, id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OperationId {
    pub subscription: String,
    pub location: String,
    pub id: String,
}

/// What a request under `/azure` names.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ArmPath {
    /// `…/providers/Microsoft.ContainerService/managedClusters` of a subscription.
    SubscriptionClusters(String),
    Cluster(ClusterId),
    AgentPools(ClusterId),
    AgentPool(ClusterId, String),
    UserCredential(ClusterId),
    Operation(OperationId),
    OperationResult(OperationId),
}

const PROVIDER: &str = "Microsoft.ContainerService";

impl ArmPath {
    /// `rest` is the path after `/azure`; None when it is no path this front serves.
    pub fn parse(rest: &str) -> Option<ArmPath> {
        let segments: Vec<&str> = rest.trim_matches('/').split('/').collect();
        let is = |i: usize, literal: &str| {
            segments
                .get(i)
                .is_some_and(|s| s.eq_ignore_ascii_case(literal))
        };
        let named = |i: usize| {
            segments
                .get(i)
                .filter(|s| !s.is_empty())
                .map(|s| s.to_string())
        };
        if !is(0, "subscriptions") {
            return None;
        }
        let subscription = named(1)?;
        if segments.len() == 5 && is(2, "providers") && is(3, PROVIDER) && is(4, "managedClusters")
        {
            return Some(ArmPath::SubscriptionClusters(subscription));
        }
        if is(2, "providers") && is(3, PROVIDER) && is(4, "locations") {
            let op = OperationId {
                subscription,
                location: named(5)?,
                id: named(7)?,
            };
            return match segments.len() {
                8 if is(6, "operations") => Some(ArmPath::Operation(op)),
                8 if is(6, "operationresults") => Some(ArmPath::OperationResult(op)),
                _ => None,
            };
        }
        let cluster_path = is(2, "resourceGroups")
            && is(4, "providers")
            && is(5, PROVIDER)
            && is(6, "managedClusters");
        if !cluster_path {
            return None;
        }
        let id = ClusterId {
            subscription,
            group: named(3)?,
            name: named(7)?,
        };
        match segments.len() {
            8 => Some(ArmPath::Cluster(id)),
            9 if is(8, "agentPools") => Some(ArmPath::AgentPools(id)),
            9 if is(8, "listClusterUserCredential") => Some(ArmPath::UserCredential(id)),
            10 if is(8, "agentPools") => Some(ArmPath::AgentPool(id, named(9)?)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_segments_match_in_any_case_names_keep_theirs() {
        let base = "/subscriptions/sub-1/resourcegroups/RG/providers/microsoft.containerservice/MANAGEDCLUSTERS/Blue";
        let Some(ArmPath::Cluster(id)) = ArmPath::parse(base) else {
            panic!("not a cluster path");
        };
        assert_eq!((id.group.as_str(), id.name.as_str()), ("RG", "Blue"));
        assert_eq!(id.key().2, "blue");
        assert!(matches!(
            ArmPath::parse(&format!("{base}/agentpools/system")),
            Some(ArmPath::AgentPool(_, p)) if p == "system"
        ));
        assert_eq!(
            ArmPath::parse("/subscriptions/s/providers/Microsoft.ContainerService/managedclusters"),
            Some(ArmPath::SubscriptionClusters("s".into()))
        );
        assert!(matches!(
            ArmPath::parse(&format!("{base}/listClusterUserCredential")),
            Some(ArmPath::UserCredential(_))
        ));
        assert!(matches!(
            ArmPath::parse(
                "/subscriptions/s/providers/Microsoft.ContainerService/locations/westeurope/operationResults/abc"
            ),
            Some(ArmPath::OperationResult(op)) if op.id == "abc" && op.location == "westeurope"
        ));
        for bad in [
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/managedClusters/x",
            "/subscriptions//resourceGroups/rg",
            "/tenants/t",
            &format!("{base}/agentPools/a/b"),
        ] {
            assert_eq!(ArmPath::parse(bad), None, "{bad}");
        }
    }
}
