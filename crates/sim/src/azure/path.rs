//! ARM paths, parsed with the literal segments matched case-insensitively as ARM matches them
//! (`resourceGroups`/`resourcegroups`, `Microsoft.ContainerService`, `managedClusters`,
//! `trafficmanagerprofiles`, `ExternalEndpoints`).

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

/// A Traffic Manager profile's address: subscription, resource group, name (as written).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProfileId {
    pub subscription: String,
    pub group: String,
    pub name: String,
}

impl ProfileId {
    /// The table key: ARM's names are case-insensitive.
    pub fn key(&self) -> (String, String, String) {
        (
            self.subscription.to_ascii_lowercase(),
            self.group.to_ascii_lowercase(),
            self.name.to_ascii_lowercase(),
        )
    }

    /// The resource id Traffic Manager answers (`…/trafficManagerProfiles/{name}`).
    pub fn resource_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/trafficManagerProfiles/{}",
            self.subscription, self.group, self.name
        )
    }
}

/// The `{endpointType}` segment of a Traffic Manager endpoint's path (the spec's enum).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EndpointType {
    External,
    Azure,
    Nested,
}

impl EndpointType {
    fn parse(segment: &str) -> Option<EndpointType> {
        [
            ("ExternalEndpoints", EndpointType::External),
            ("AzureEndpoints", EndpointType::Azure),
            ("NestedEndpoints", EndpointType::Nested),
        ]
        .into_iter()
        .find(|(name, _)| segment.eq_ignore_ascii_case(name))
        .map(|(_, kind)| kind)
    }

    /// As the path spells it.
    pub fn segment(self) -> &'static str {
        match self {
            EndpointType::External => "ExternalEndpoints",
            EndpointType::Azure => "AzureEndpoints",
            EndpointType::Nested => "NestedEndpoints",
        }
    }
}

/// A Traffic Manager endpoint's address: its profile, type and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EndpointId {
    pub profile: ProfileId,
    pub kind: EndpointType,
    pub name: String,
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
    /// `…/providers/Microsoft.Network/trafficmanagerprofiles/{profile}`.
    Profile(ProfileId),
    /// `…/trafficmanagerprofiles/{profile}/{endpointType}/{endpoint}`.
    TmEndpoint(EndpointId),
}

const PROVIDER: &str = "Microsoft.ContainerService";
const NETWORK: &str = "Microsoft.Network";

/// A path's segments, literals compared in any case.
struct Segments<'a>(Vec<&'a str>);

impl Segments<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether segment `i` is `literal`, in any case.
    fn is(&self, i: usize, literal: &str) -> bool {
        self.0
            .get(i)
            .is_some_and(|s| s.eq_ignore_ascii_case(literal))
    }

    /// Segment `i` as a name, when there is one.
    fn named(&self, i: usize) -> Option<String> {
        self.0
            .get(i)
            .filter(|s| !s.is_empty())
            .map(|s| s.to_string())
    }
}

impl ArmPath {
    /// `rest` is the path after `/azure`; None when it is no path this front serves.
    pub fn parse(rest: &str) -> Option<ArmPath> {
        let s = Segments(rest.trim_matches('/').split('/').collect());
        if !s.is(0, "subscriptions") {
            return None;
        }
        let subscription = s.named(1)?;
        if s.len() == 5 && s.is(2, "providers") && s.is(3, PROVIDER) && s.is(4, "managedClusters") {
            return Some(ArmPath::SubscriptionClusters(subscription));
        }
        if s.is(2, "providers") && s.is(3, PROVIDER) && s.is(4, "locations") {
            let op = OperationId {
                subscription,
                location: s.named(5)?,
                id: s.named(7)?,
            };
            return match s.len() {
                8 if s.is(6, "operations") => Some(ArmPath::Operation(op)),
                8 if s.is(6, "operationresults") => Some(ArmPath::OperationResult(op)),
                _ => None,
            };
        }
        if !(s.is(2, "resourceGroups") && s.is(4, "providers")) {
            return None;
        }
        if s.is(5, NETWORK) && s.is(6, "trafficmanagerprofiles") {
            return Self::traffic_manager(&s, subscription);
        }
        if s.is(5, PROVIDER) && s.is(6, "managedClusters") {
            return Self::managed_cluster(&s, subscription);
        }
        None
    }

    /// `…/resourceGroups/{g}/providers/Microsoft.ContainerService/managedClusters/{n}[/…]`
    fn managed_cluster(s: &Segments<'_>, subscription: String) -> Option<ArmPath> {
        let id = ClusterId {
            subscription,
            group: s.named(3)?,
            name: s.named(7)?,
        };
        match s.len() {
            8 => Some(ArmPath::Cluster(id)),
            9 if s.is(8, "agentPools") => Some(ArmPath::AgentPools(id)),
            9 if s.is(8, "listClusterUserCredential") => Some(ArmPath::UserCredential(id)),
            10 if s.is(8, "agentPools") => Some(ArmPath::AgentPool(id, s.named(9)?)),
            _ => None,
        }
    }

    /// `…/resourceGroups/{g}/providers/Microsoft.Network/trafficmanagerprofiles/{p}[/{type}/{e}]`
    fn traffic_manager(s: &Segments<'_>, subscription: String) -> Option<ArmPath> {
        let profile = ProfileId {
            subscription,
            group: s.named(3)?,
            name: s.named(7)?,
        };
        match s.len() {
            8 => Some(ArmPath::Profile(profile)),
            10 => Some(ArmPath::TmEndpoint(EndpointId {
                profile,
                kind: EndpointType::parse(s.0[8])?,
                name: s.named(9)?,
            })),
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
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/trafficmanagerprofiles/p/x",
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/trafficmanagerprofiles/p/cnameEndpoints/e",
            "/subscriptions//resourceGroups/rg",
            "/tenants/t",
            &format!("{base}/agentPools/a/b"),
        ] {
            assert_eq!(ArmPath::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn traffic_manager_paths_name_profiles_and_endpoints() {
        let base = "/subscriptions/sub-1/resourcegroups/RG/providers/microsoft.network/trafficManagerProfiles/Front";
        let Some(ArmPath::Profile(profile)) = ArmPath::parse(base) else {
            panic!("not a profile path");
        };
        assert_eq!(
            (profile.group.as_str(), profile.name.as_str()),
            ("RG", "Front")
        );
        assert_eq!(profile.key().2, "front");
        assert_eq!(
            ArmPath::parse(&format!("{base}/externalendpoints/rotor-app-blue")),
            Some(ArmPath::TmEndpoint(EndpointId {
                profile: profile.clone(),
                kind: EndpointType::External,
                name: "rotor-app-blue".into()
            }))
        );
        assert!(matches!(
            ArmPath::parse(&format!("{base}/NestedEndpoints/child")),
            Some(ArmPath::TmEndpoint(EndpointId {
                kind: EndpointType::Nested,
                ..
            }))
        ));
    }
}
