//! The built-in kinds rotor's API server serves: a row per group/version/resource, served when
//! the release's OpenAPI data defines the kind (see `Registry::for_release`). Storage is generic;
//! behaviour lives elsewhere (defaulting, validation, the simulator's controllers).

use super::{Resource, ScalePaths, group_version};

const DEPLOY_SCALE: (&str, &str, Option<&str>) = (
    ".spec.replicas",
    ".status.replicas",
    Some(".status.selector"),
);

/// (group, version, plural, singular, kind, namespaced, short names, categories, status, scale)
type Builtin = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    &'static [&'static str],
    bool,
    bool,
);

/// The built-in kinds real workloads and the tools that install them use.
#[rustfmt::skip]
const BUILTINS: &[Builtin] = &[
    ("", "v1", "namespaces", "namespace", "Namespace", false, &["ns"], &[], true, false),
    ("", "v1", "nodes", "node", "Node", false, &["no"], &[], true, false),
    ("", "v1", "pods", "pod", "Pod", true, &["po"], &["all"], true, false),
    ("", "v1", "services", "service", "Service", true, &["svc"], &["all"], true, false),
    ("", "v1", "endpoints", "endpoints", "Endpoints", true, &["ep"], &[], false, false),
    ("", "v1", "configmaps", "configmap", "ConfigMap", true, &["cm"], &[], false, false),
    ("", "v1", "secrets", "secret", "Secret", true, &[], &[], false, false),
    ("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", true, &["sa"], &[], false, false),
    ("", "v1", "persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim", true, &["pvc"], &[], true, false),
    ("", "v1", "events", "event", "Event", true, &["ev"], &[], false, false),
    ("", "v1", "resourcequotas", "resourcequota", "ResourceQuota", true, &["quota"], &[], true, false),
    ("apps", "v1", "deployments", "deployment", "Deployment", true, &["deploy"], &["all"], true, true),
    ("apps", "v1", "statefulsets", "statefulset", "StatefulSet", true, &["sts"], &["all"], true, true),
    ("apps", "v1", "daemonsets", "daemonset", "DaemonSet", true, &["ds"], &["all"], true, false),
    ("apps", "v1", "replicasets", "replicaset", "ReplicaSet", true, &["rs"], &["all"], true, true),
    ("batch", "v1", "jobs", "job", "Job", true, &[], &["all"], true, false),
    ("batch", "v1", "cronjobs", "cronjob", "CronJob", true, &["cj"], &["all"], true, false),
    ("networking.k8s.io", "v1", "ingresses", "ingress", "Ingress", true, &["ing"], &[], true, false),
    ("policy", "v1", "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", true, &["pdb"], &[], true, false),
    ("autoscaling", "v2", "horizontalpodautoscalers", "horizontalpodautoscaler", "HorizontalPodAutoscaler", true, &["hpa"], &["all"], true, false),
    ("autoscaling", "v2beta2", "horizontalpodautoscalers", "horizontalpodautoscaler", "HorizontalPodAutoscaler", true, &["hpa"], &["all"], true, false),
    ("flowcontrol.apiserver.k8s.io", "v1", "flowschemas", "flowschema", "FlowSchema", false, &[], &[], true, false),
    ("flowcontrol.apiserver.k8s.io", "v1", "prioritylevelconfigurations", "prioritylevelconfiguration", "PriorityLevelConfiguration", false, &[], &[], true, false),
    ("flowcontrol.apiserver.k8s.io", "v1beta3", "flowschemas", "flowschema", "FlowSchema", false, &[], &[], true, false),
    ("flowcontrol.apiserver.k8s.io", "v1beta3", "prioritylevelconfigurations", "prioritylevelconfiguration", "PriorityLevelConfiguration", false, &[], &[], true, false),
    ("flowcontrol.apiserver.k8s.io", "v1beta2", "flowschemas", "flowschema", "FlowSchema", false, &[], &[], true, false),
    ("flowcontrol.apiserver.k8s.io", "v1beta2", "prioritylevelconfigurations", "prioritylevelconfiguration", "PriorityLevelConfiguration", false, &[], &[], true, false),
    ("flowcontrol.apiserver.k8s.io", "v1beta1", "flowschemas", "flowschema", "FlowSchema", false, &[], &[], true, false),
    ("flowcontrol.apiserver.k8s.io", "v1beta1", "prioritylevelconfigurations", "prioritylevelconfiguration", "PriorityLevelConfiguration", false, &[], &[], true, false),
    ("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", true, &[], &[], false, false),
    ("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", true, &[], &[], false, false),
    ("rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", false, &[], &[], false, false),
    ("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "clusterrolebinding", "ClusterRoleBinding", false, &[], &[], false, false),
    ("scheduling.k8s.io", "v1", "priorityclasses", "priorityclass", "PriorityClass", false, &["pc"], &[], false, false),
    ("storage.k8s.io", "v1", "storageclasses", "storageclass", "StorageClass", false, &["sc"], &[], false, false),
    ("coordination.k8s.io", "v1", "leases", "lease", "Lease", true, &[], &[], false, false),
    ("events.k8s.io", "v1", "events", "event", "Event", true, &["ev"], &[], false, false),
    ("apiextensions.k8s.io", "v1", "customresourcedefinitions", "customresourcedefinition", "CustomResourceDefinition", false, &["crd", "crds"], &[], true, false),
    ("", "v1", "persistentvolumes", "persistentvolume", "PersistentVolume", false, &["pv"], &[], true, false),
    ("", "v1", "replicationcontrollers", "replicationcontroller", "ReplicationController", true, &["rc"], &["all"], true, true),
    ("", "v1", "limitranges", "limitrange", "LimitRange", true, &["limits"], &[], false, false),
    ("", "v1", "podtemplates", "podtemplate", "PodTemplate", true, &[], &[], false, false),
    ("apps", "v1", "controllerrevisions", "controllerrevision", "ControllerRevision", true, &[], &[], false, false),
    ("discovery.k8s.io", "v1", "endpointslices", "endpointslice", "EndpointSlice", true, &[], &[], false, false),
    ("networking.k8s.io", "v1", "networkpolicies", "networkpolicy", "NetworkPolicy", true, &["netpol"], &[], false, false),
    ("networking.k8s.io", "v1", "ingressclasses", "ingressclass", "IngressClass", false, &[], &[], false, false),
    ("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", "validatingwebhookconfiguration", "ValidatingWebhookConfiguration", false, &[], &["api-extensions"], false, false),
    ("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", "mutatingwebhookconfiguration", "MutatingWebhookConfiguration", false, &[], &["api-extensions"], false, false),
    ("apiregistration.k8s.io", "v1", "apiservices", "apiservice", "APIService", false, &[], &["api-extensions"], true, false),
    ("certificates.k8s.io", "v1", "certificatesigningrequests", "certificatesigningrequest", "CertificateSigningRequest", false, &["csr"], &[], true, false),
    ("node.k8s.io", "v1", "runtimeclasses", "runtimeclass", "RuntimeClass", false, &[], &[], false, false),
    ("storage.k8s.io", "v1", "csidrivers", "csidriver", "CSIDriver", false, &[], &[], false, false),
    ("storage.k8s.io", "v1", "csinodes", "csinode", "CSINode", false, &[], &[], false, false),
    ("storage.k8s.io", "v1", "volumeattachments", "volumeattachment", "VolumeAttachment", false, &[], &[], true, false),
];

/// The OpenAPI definition name of a built-in kind, as in the upstream documents.
fn builtin_definition(group: &str, version: &str, kind: &str) -> String {
    let pkg = match group {
        "" => "core".to_string(),
        "apiextensions.k8s.io" => {
            return format!(
                "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{version}.{kind}"
            );
        }
        "apiregistration.k8s.io" => {
            return format!("io.k8s.kube-aggregator.pkg.apis.apiregistration.{version}.{kind}");
        }
        // rbac.authorization.k8s.io → rbac, flowcontrol.apiserver.k8s.io → flowcontrol.
        g => g.split('.').next().unwrap_or(g).to_string(),
    };
    format!("io.k8s.api.{pkg}.{version}.{kind}")
}

pub(super) fn builtin_resources() -> Vec<Resource> {
    BUILTINS
        .iter()
        .map(
            |&(group, version, plural, singular, kind, namespaced, short, cats, status, scale)| {
                Resource {
                    api_version: group_version(group, version),
                    group: group.into(),
                    version: version.into(),
                    plural: plural.into(),
                    singular: singular.into(),
                    kind: kind.into(),
                    namespaced,
                    short_names: short.iter().map(|s| s.to_string()).collect(),
                    categories: cats.iter().map(|s| s.to_string()).collect(),
                    has_status: status,
                    scale: scale.then(|| ScalePaths {
                        spec_replicas: DEPLOY_SCALE.0.into(),
                        status_replicas: DEPLOY_SCALE.1.into(),
                        label_selector: DEPLOY_SCALE.2.map(String::from),
                    }),
                    definition: builtin_definition(group, version, kind),
                    custom_schema: None,
                    printer_columns: Vec::new(),
                    selectable_fields: Vec::new(),
                    conversion: crate::conversion::Conversion::of(group, version, kind),
                    read_defaults: false,
                }
            },
        )
        .collect()
}
