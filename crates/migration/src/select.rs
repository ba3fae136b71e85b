//! Which objects move, and in which stage: the rules as data and small predicates.

use kube::ResourceExt;
use kube::api::DynamicObject;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::MigrationOptions;

/// Namespaces that belong to the cluster, never to an application.
pub const SYSTEM_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

/// The order objects are applied in: what others refer to exists before them, workloads start
/// with their configuration in place, and what acts on running workloads comes last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Stage {
    /// CustomResourceDefinitions: their objects cannot be created before them.
    Crds,
    Namespaces,
    /// Cluster-scoped RBAC, StorageClasses, PriorityClasses, IngressClasses, RuntimeClasses.
    ClusterScoped,
    /// ServiceAccounts, Roles, RoleBindings, ConfigMaps, Secrets, PVCs, NetworkPolicies, quotas.
    Config,
    Services,
    /// Objects of CRDs; operators in green may need the config and services above.
    CustomResources,
    /// Deployments, StatefulSets, DaemonSets, Jobs, CronJobs (and bare Pods, ReplicaSets).
    Workloads,
    /// Ingresses, PodDisruptionBudgets, HorizontalPodAutoscalers: they act on running workloads.
    Policies,
    /// Objects that keep an ownerReference to another moving object (only with
    /// `include_owned`): last, so every owner exists and its uid in green is known.
    Owned,
}

impl Stage {
    pub const ALL: [Stage; 9] = [
        Stage::Crds,
        Stage::Namespaces,
        Stage::ClusterScoped,
        Stage::Config,
        Stage::Services,
        Stage::CustomResources,
        Stage::Workloads,
        Stage::Policies,
        Stage::Owned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Crds => "crds",
            Stage::Namespaces => "namespaces",
            Stage::ClusterScoped => "clusterScoped",
            Stage::Config => "config",
            Stage::Services => "services",
            Stage::CustomResources => "customResources",
            Stage::Workloads => "workloads",
            Stage::Policies => "policies",
            Stage::Owned => "owned",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stage of a built-in kind, or None when rotor does not move that kind (cluster state such
/// as Nodes, PersistentVolumes, Events, Leases, Endpoints; admission webhooks, which could block
/// green's writes before their backends run). An allowlist: an unknown kind stays behind and is
/// named in the plan.
pub(crate) fn builtin_stage(group: &str, kind: &str) -> Option<Stage> {
    Some(match (group, kind) {
        ("apiextensions.k8s.io", "CustomResourceDefinition") => Stage::Crds,
        ("", "Namespace") => Stage::Namespaces,
        ("rbac.authorization.k8s.io", "ClusterRole" | "ClusterRoleBinding")
        | ("storage.k8s.io", "StorageClass")
        | ("scheduling.k8s.io", "PriorityClass")
        | ("networking.k8s.io", "IngressClass")
        | ("node.k8s.io", "RuntimeClass")
        | ("flowcontrol.apiserver.k8s.io", "FlowSchema" | "PriorityLevelConfiguration") => {
            Stage::ClusterScoped
        }
        (
            "",
            "ServiceAccount"
            | "ConfigMap"
            | "Secret"
            | "PersistentVolumeClaim"
            | "LimitRange"
            | "ResourceQuota"
            | "PodTemplate",
        )
        | ("rbac.authorization.k8s.io", "Role" | "RoleBinding")
        | ("networking.k8s.io", "NetworkPolicy") => Stage::Config,
        ("", "Service") => Stage::Services,
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("batch", "Job" | "CronJob")
        | ("", "Pod" | "ReplicationController") => Stage::Workloads,
        ("networking.k8s.io", "Ingress")
        | ("policy", "PodDisruptionBudget")
        | ("autoscaling", "HorizontalPodAutoscaler") => Stage::Policies,
        _ => return None,
    })
}

/// Kinds whose availability [`crate::readiness`] checks.
pub(crate) fn is_available_kind(group: &str, kind: &str) -> bool {
    group == "apps" && matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet")
}

/// Why an object does not move, or None when it is selected. Namespaced objects answer to the
/// namespace and label rules, Namespaces to the namespace rules alone, other cluster-scoped
/// objects to the label rule alone; a CRD the label rule leaves out still moves when a moving
/// object needs it (settled in `plan`, which also drops objects whose namespace stays).
pub(crate) fn exclusion(
    obj: &DynamicObject,
    group: &str,
    kind: &str,
    namespaced: bool,
    opts: &MigrationOptions,
) -> Option<&'static str> {
    if obj.metadata.deletion_timestamp.is_some() {
        return Some("being deleted");
    }
    let owners = obj.owner_references();
    if owners.iter().any(|o| o.controller == Some(true)) {
        return Some("controller-owned (green's controller recreates it)");
    }
    if !owners.is_empty() && !opts.include_owned {
        return Some("has ownerReferences");
    }
    let name = obj.metadata.name.as_deref().unwrap_or_default();
    if let Some(why) = cluster_made(obj, group, kind, name) {
        return Some(why);
    }
    if namespaced {
        let ns = obj.metadata.namespace.as_deref().unwrap_or_default();
        if SYSTEM_NAMESPACES.contains(&ns) {
            return Some("system namespace");
        }
        if !opts.selects_namespace(ns) {
            return Some("namespace not selected");
        }
        if !opts.selects_labels(obj.labels()) {
            return Some("labels not selected");
        }
    } else if kind == "Namespace" && group.is_empty() {
        if SYSTEM_NAMESPACES.contains(&name) {
            return Some("system namespace");
        }
        if !opts.selects_namespace(name) {
            return Some("namespace not selected");
        }
    } else if !opts.selects_labels(obj.labels()) {
        // CRDs failing here still move when a moving object needs them.
        return Some("labels not selected");
    }
    if group == "batch" && kind == "Job" && job_finished(&obj.data) {
        return Some("finished Job (would run again)");
    }
    None
}

/// Objects every cluster makes for itself: copying them would fight green's own.
fn cluster_made(obj: &DynamicObject, group: &str, kind: &str, name: &str) -> Option<&'static str> {
    let labels = obj.labels();
    if labels
        .get("kubernetes.io/bootstrapping")
        .map(String::as_str)
        == Some("rbac-defaults")
        || labels.contains_key("addonmanager.kubernetes.io/mode")
    {
        return Some("made by the cluster");
    }
    let made = match (group, kind) {
        ("", "Namespace") => name == "default",
        ("", "ServiceAccount") => name == "default",
        ("", "ConfigMap") => name == "kube-root-ca.crt",
        ("", "Service") => {
            name == "kubernetes" && obj.metadata.namespace.as_deref() == Some("default")
        }
        ("", "Secret") => {
            return obj
                .data
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| {
                    t == "kubernetes.io/service-account-token"
                        || t == "bootstrap.kubernetes.io/token"
                })
                .then_some("service-account token (green issues its own)");
        }
        ("rbac.authorization.k8s.io", "ClusterRole" | "ClusterRoleBinding") => {
            name.starts_with("system:")
        }
        ("scheduling.k8s.io", "PriorityClass") => name.starts_with("system-"),
        // The API server's own configuration (mandatory and suggested), which it keeps updated.
        ("flowcontrol.apiserver.k8s.io", _) => obj
            .annotations()
            .contains_key("apf.kubernetes.io/autoupdate-spec"),
        _ => false,
    };
    made.then_some("made by the cluster")
}

fn job_finished(data: &Value) -> bool {
    data.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                matches!(c["type"].as_str(), Some("Complete" | "Failed"))
                    && c["status"].as_str() == Some("True")
            })
        })
}

/// The pod spec of a workload body, wherever its kind keeps it.
fn pod_spec<'a>(group: &str, kind: &str, body: &'a Value) -> Option<&'a Value> {
    match (group, kind) {
        ("", "Pod") => body.get("spec"),
        ("batch", "CronJob") => body.pointer("/spec/jobTemplate/spec/template/spec"),
        ("apps", _) | ("batch", _) | ("", "ReplicationController" | "PodTemplate") => {
            body.pointer("/spec/template/spec")
        }
        _ => None,
    }
}

/// What makes a workload keep data in persistent volumes (which migration does not copy): its
/// StatefulSet volumeClaimTemplates and the claims its pods mount. None for everything else.
pub(crate) fn stateful_reason(group: &str, kind: &str, body: &Value) -> Option<String> {
    let mut why = Vec::new();
    if group == "apps" && kind == "StatefulSet" {
        let names: Vec<&str> = body
            .pointer("/spec/volumeClaimTemplates")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| t.pointer("/metadata/name").and_then(Value::as_str))
            .collect();
        if !names.is_empty() {
            why.push(format!("volumeClaimTemplates {}", names.join(", ")));
        }
    }
    let claims: Vec<&str> = pod_spec(group, kind, body)
        .and_then(|s| s.get("volumes"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| {
            v.pointer("/persistentVolumeClaim/claimName")
                .and_then(Value::as_str)
        })
        .collect();
    if !claims.is_empty() {
        why.push(format!("claims {}", claims.join(", ")));
    }
    (!why.is_empty()).then(|| why.join(" and "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> DynamicObject {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn stages_follow_dependencies() {
        let order = |g, k| builtin_stage(g, k).unwrap();
        assert!(order("apiextensions.k8s.io", "CustomResourceDefinition") < order("", "Namespace"));
        assert!(order("", "Namespace") < order("rbac.authorization.k8s.io", "ClusterRole"));
        assert!(order("storage.k8s.io", "StorageClass") < order("", "Secret"));
        assert!(order("", "ConfigMap") < order("", "Service"));
        assert!(order("", "Service") < Stage::CustomResources);
        assert!(Stage::CustomResources < order("apps", "Deployment"));
        assert!(order("batch", "CronJob") < order("autoscaling", "HorizontalPodAutoscaler"));
        for (g, k) in [
            ("", "Event"),
            ("events.k8s.io", "Event"),
            ("", "Endpoints"),
            ("discovery.k8s.io", "EndpointSlice"),
            ("coordination.k8s.io", "Lease"),
            ("", "Node"),
            ("", "PersistentVolume"),
            (
                "admissionregistration.k8s.io",
                "ValidatingWebhookConfiguration",
            ),
        ] {
            assert_eq!(builtin_stage(g, k), None, "{g}/{k}");
        }
    }

    #[test]
    fn cluster_made_objects_stay() {
        let o = MigrationOptions::default();
        let token = obj(json!({"metadata": {"name": "t", "namespace": "a"},
            "type": "kubernetes.io/service-account-token"}));
        assert!(exclusion(&token, "", "Secret", true, &o).is_some());
        let sa = obj(json!({"metadata": {"name": "default", "namespace": "a"}}));
        assert!(exclusion(&sa, "", "ServiceAccount", true, &o).is_some());
        let mine = obj(json!({"metadata": {"name": "app", "namespace": "a"}}));
        assert_eq!(exclusion(&mine, "", "ServiceAccount", true, &o), None);
        let sys = obj(json!({"metadata": {"name": "system:auth-delegator"}}));
        assert!(exclusion(&sys, "rbac.authorization.k8s.io", "ClusterRole", false, &o).is_some());
        let ks = obj(json!({"metadata": {"name": "x", "namespace": "kube-system"}}));
        assert_eq!(
            exclusion(&ks, "", "ConfigMap", true, &o),
            Some("system namespace")
        );
        let owned = obj(
            json!({"metadata": {"name": "p", "namespace": "a", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u", "controller": true}]}}),
        );
        assert!(exclusion(&owned, "", "Pod", true, &o).is_some());
        let done = obj(json!({"metadata": {"name": "j", "namespace": "a"},
            "status": {"conditions": [{"type": "Complete", "status": "True"}]}}));
        assert!(exclusion(&done, "batch", "Job", true, &o).is_some());
        let fc = "flowcontrol.apiserver.k8s.io";
        let apf = obj(json!({"metadata": {"name": "exempt",
            "annotations": {"apf.kubernetes.io/autoupdate-spec": "true"}}}));
        assert_eq!(
            exclusion(&apf, fc, "FlowSchema", false, &o),
            Some("made by the cluster")
        );
        let users = obj(json!({"metadata": {"name": "batch"}}));
        assert_eq!(exclusion(&users, fc, "FlowSchema", false, &o), None);
        assert_eq!(
            builtin_stage(fc, "PriorityLevelConfiguration"),
            Some(Stage::ClusterScoped)
        );
    }

    #[test]
    fn policy_narrows_selection() {
        let mut o = MigrationOptions::default();
        o.policy.selector.exclude_namespaces = vec!["b".into()];
        o.policy.selector.label_selector =
            Some(serde_json::from_value(json!({"matchLabels": {"app": "shop"}})).unwrap());
        let a =
            obj(json!({"metadata": {"name": "x", "namespace": "a", "labels": {"app": "shop"}}}));
        let b =
            obj(json!({"metadata": {"name": "x", "namespace": "b", "labels": {"app": "shop"}}}));
        let other = obj(json!({"metadata": {"name": "y", "namespace": "a"}}));
        assert_eq!(exclusion(&a, "", "ConfigMap", true, &o), None);
        assert_eq!(
            exclusion(&b, "", "ConfigMap", true, &o),
            Some("namespace not selected")
        );
        assert_eq!(
            exclusion(&other, "", "ConfigMap", true, &o),
            Some("labels not selected")
        );
    }

    #[test]
    fn stateful_workloads_are_found() {
        let sts = json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}}],
            "template": {"spec": {"containers": []}}}});
        assert_eq!(
            stateful_reason("apps", "StatefulSet", &sts).as_deref(),
            Some("volumeClaimTemplates data")
        );
        let dep = json!({"spec": {"template": {"spec": {"volumes": [
            {"name": "u", "persistentVolumeClaim": {"claimName": "uploads"}},
            {"name": "tmp", "emptyDir": {}}]}}}});
        assert_eq!(
            stateful_reason("apps", "Deployment", &dep).as_deref(),
            Some("claims uploads")
        );
        let cron = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"volumes": [
            {"name": "u", "persistentVolumeClaim": {"claimName": "c"}}]}}}}}});
        assert!(stateful_reason("batch", "CronJob", &cron).is_some());
        let plain = json!({"spec": {"template": {"spec": {"volumes": [{"name": "c", "configMap": {"name": "x"}}]}}}});
        assert_eq!(stateful_reason("apps", "StatefulSet", &plain), None);
    }
}
