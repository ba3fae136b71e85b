//! The ClusterRoles rotor ships — `rotor-viewer`, `rotor-operator`, `rotor-admin` — written at
//! every start of a control plane (as upstream's bootstrap policy), and the `operate` verb:
//! the operator's actions are spec fields of Rollouts and ClusterSwaps that the CLI patches, so
//! `operate` allows a patch or update changing only those fields (docs/rbac.md).

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use rotor_apiserver::authz::bootstrap::{cluster_role, resource_rule, url_rule};
use rotor_apiserver::authz::{FieldVerb, Shipped};

pub const VIEWER: &str = "rotor-viewer";
pub const OPERATOR: &str = "rotor-operator";
pub const ADMIN: &str = "rotor-admin";
/// The custom verb of the operator's actions.
pub const OPERATE: &str = "operate";

const GROUP: &str = "rotor.dev";
const READ: [&str; 3] = ["get", "list", "watch"];

/// The fields `rotor approve` and `rotor rollout pause|resume|skip|retry --failed` patch.
const ROLLOUT_FIELDS: [&str; 4] = [
    "spec.approvedThroughWave",
    "spec.paused",
    "spec.skipClusters",
    "spec.retryFailed",
];
/// The field `rotor rollout rollback|abort` patches on each swap.
const SWAP_FIELDS: [&str; 1] = ["spec.rollback"];

/// Everything a control plane ships: the three roles and the `operate` verb.
pub fn shipped() -> Shipped {
    Shipped {
        cluster_roles: vec![viewer(), operator(), admin()],
        field_verbs: vec![
            field_verb("rollouts", &ROLLOUT_FIELDS),
            field_verb("clusterswaps", &SWAP_FIELDS),
        ],
    }
}

fn field_verb(resource: &str, fields: &[&str]) -> FieldVerb {
    FieldVerb {
        group: GROUP.into(),
        resource: resource.into(),
        verb: OPERATE.into(),
        fields: fields.iter().map(|f| f.to_string()).collect(),
    }
}

/// Reads rotor's kinds and Events (never Secrets) and `/metrics`.
fn viewer_rules() -> Vec<PolicyRule> {
    vec![
        resource_rule(&READ, &[GROUP], &["*"]),
        resource_rule(&READ, &["", "events.k8s.io"], &["events"]),
        url_rule(&["get"], &["/metrics"]),
    ]
}

fn viewer() -> ClusterRole {
    cluster_role(VIEWER, viewer_rules())
}

/// The viewer's rules, `operate` on Rollouts and ClusterSwaps, and deleting a ClusterSwap
/// (`rotor rollout retry CLUSTER` runs a failed swap again by deleting it; a swap deleted
/// mid-way is rolled back by its finalizer).
fn operator() -> ClusterRole {
    let mut rules = viewer_rules();
    rules.push(resource_rule(
        &[OPERATE],
        &[GROUP],
        &["rollouts", "clusterswaps"],
    ));
    rules.push(resource_rule(&["delete"], &[GROUP], &["clusterswaps"]));
    cluster_role(OPERATOR, rules)
}

/// Everything on rotor's kinds, Secrets (cloud credentials), Events, ConfigMaps, Namespaces
/// and RBAC objects, and `/metrics`.
fn admin() -> ClusterRole {
    cluster_role(
        ADMIN,
        vec![
            resource_rule(&["*"], &[GROUP], &["*"]),
            resource_rule(
                &["*"],
                &[""],
                &["secrets", "events", "configmaps", "namespaces"],
            ),
            resource_rule(&["*"], &["events.k8s.io"], &["events"]),
            resource_rule(&["*"], &["rbac.authorization.k8s.io"], &["*"]),
            url_rule(&["get"], &["/metrics"]),
        ],
    )
}
