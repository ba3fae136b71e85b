//! The resource table: which resources this server serves, built-in and registered at run time
//! from CustomResourceDefinitions. One generic handler serves every entry; what differs per kind is
//! only the data here (scope, names, subresources, schema) — the "strategy" of k8s.io/apiserver.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::Value;

/// One served resource at one group-version.
#[derive(Debug, Clone)]
pub struct Resource {
    /// `apps/v1`, or `v1` for the core group.
    pub api_version: String,
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub has_status: bool,
    /// `.spec.replicas`-style path for the scale subresource, when it has one.
    pub scale: Option<ScalePaths>,
    /// The OpenAPI definition name (`io.k8s.api.apps.v1.Deployment`) or, for a custom resource,
    /// the name its schema gets in the OpenAPI documents.
    pub definition: String,
    /// The CRD's openAPIV3Schema for this version (custom resources only).
    pub custom_schema: Option<Arc<Value>>,
    /// The CRD's additionalPrinterColumns (custom resources only).
    pub printer_columns: Vec<Value>,
    /// The CRD version's `selectableFields` as field labels (`spec.color`), custom resources only.
    pub selectable_fields: Vec<String>,
    /// Set when the objects are stored in another resource's form (events.k8s.io → core).
    pub conversion: Option<crate::conversion::Conversion>,
    /// The CRD's schema has `default`s: an object stored before a default was added gets it
    /// when read, as upstream defaults on read from storage (custom resources only).
    pub read_defaults: bool,
}

#[derive(Debug, Clone)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

impl Resource {
    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    /// Does a field selector on this resource accept `label`?
    pub fn supports_field_label(&self, label: &str) -> bool {
        matches!(label, "metadata.name" | "metadata.namespace")
            || self.selectable_fields.iter().any(|f| f == label)
            || (!self.is_custom()
                && crate::selector::builtin_field_labels(&self.group, &self.plural)
                    .contains(&label))
    }

    pub fn is_custom(&self) -> bool {
        self.custom_schema.is_some()
    }

    /// Storage key prefix of all objects of this resource. Versions of one group share storage.
    pub fn key_prefix(&self) -> String {
        let group = match (self.conversion, self.group.as_str()) {
            (Some(c), _) => c.storage_group(),
            (None, "") => "core",
            (None, g) => g,
        };
        format!("/{group}/{}/", self.plural)
    }

    /// Storage key prefix of one namespace's objects (all of them when `namespace` is None).
    pub fn namespace_prefix(&self, namespace: Option<&str>) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("{}{ns}/", self.key_prefix()),
            _ => self.key_prefix(),
        }
    }

    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        let mut key = self.key_prefix();
        if self.namespaced
            && let Some(ns) = namespace
        {
            key.reserve(ns.len() + 1 + name.len());
            key.push_str(ns);
            key.push('/');
        }
        key.push_str(name);
        key
    }
}

pub fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

mod builtins;
use builtins::builtin_resources;

/// The built-in rows a server serves, indexed by plural: every request looks its resource up.
#[derive(Debug)]
struct Builtins {
    rows: Vec<Arc<Resource>>,
    /// plural → positions in `rows` (one per group/version serving it).
    by_plural: HashMap<String, Vec<usize>>,
}

impl Builtins {
    fn new(rows: Vec<Arc<Resource>>) -> Self {
        let mut by_plural: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, r) in rows.iter().enumerate() {
            by_plural.entry(r.plural.clone()).or_default().push(i);
        }
        Builtins { rows, by_plural }
    }

    fn find(&self, group: &str, version: &str, plural: &str) -> Option<&Arc<Resource>> {
        self.by_plural
            .get(plural)?
            .iter()
            .map(|&i| &self.rows[i])
            .find(|r| r.group == group && r.version == version)
    }
}

/// Every row of the built-in table, whatever the release (tests that need no release).
fn shared_builtins() -> Arc<Builtins> {
    static BUILTIN: std::sync::OnceLock<Arc<Builtins>> = std::sync::OnceLock::new();
    BUILTIN
        .get_or_init(|| {
            Arc::new(Builtins::new(
                builtin_resources().into_iter().map(Arc::new).collect(),
            ))
        })
        .clone()
}

/// The rows a release serves: those its OpenAPI definitions define, named as that release names
/// them. So a 1.25 server serves `autoscaling/v2beta2` and a 1.26 one does not, as upstream.
/// Shared by every server that claims the release.
fn release_builtins(spec: &rotor_openapi::Spec) -> Arc<Builtins> {
    type Cache = std::sync::Mutex<BTreeMap<u32, Arc<Builtins>>>;
    static BY_RELEASE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    let cache = BY_RELEASE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    cache
        .entry(spec.minor())
        .or_insert_with(|| {
            let rows = builtin_resources().into_iter().filter_map(|mut r| {
                r.definition = spec
                    .definition_name(&r.group, &r.version, &r.kind)?
                    .to_string();
                Some(Arc::new(r))
            });
            Arc::new(Builtins::new(rows.collect()))
        })
        .clone()
}

/// Resources served by one API server: the shared built-ins plus this server's CRDs.
#[derive(Debug)]
pub struct Registry {
    builtins: Arc<Builtins>,
    /// CRD name → the resources (one per served version) it registered.
    custom: RwLock<BTreeMap<String, Vec<Arc<Resource>>>>,
    /// Bumped whenever the served resources change, so answers derived from them (discovery)
    /// can be kept until then.
    generation: AtomicU64,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            builtins: shared_builtins(),
            custom: RwLock::new(BTreeMap::new()),
            generation: AtomicU64::new(0),
        }
    }
}

impl Registry {
    /// The built-ins Kubernetes 1.`spec.minor()` serves, and no CRDs yet.
    pub fn for_release(spec: &rotor_openapi::Spec) -> Self {
        Registry {
            builtins: release_builtins(spec),
            custom: RwLock::new(BTreeMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    /// Changes whenever a CRD's resources are registered or unregistered.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// All resources, built-ins first, in a stable order.
    pub fn all(&self) -> Vec<Arc<Resource>> {
        let mut out: Vec<Arc<Resource>> = self.builtins.rows.to_vec();
        if let Ok(custom) = self.custom.read() {
            out.extend(custom.values().flatten().cloned());
        }
        out
    }

    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<Resource>> {
        if let Some(r) = self.builtins.find(group, version, plural) {
            return Some(r.clone());
        }
        let custom = self.custom.read().ok()?;
        custom
            .values()
            .flatten()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .cloned()
    }

    /// Is any version of this group served (for 404 vs. discovery answers)?
    pub fn serves_group_version(&self, group: &str, version: &str) -> bool {
        self.all()
            .iter()
            .any(|r| r.group == group && r.version == version)
    }

    /// Registers (or re-registers) the served versions of a CRD. Returns the resources.
    pub fn register_crd(&self, crd_name: &str, resources: Vec<Resource>) {
        if let Ok(mut custom) = self.custom.write() {
            custom.insert(
                crd_name.to_string(),
                resources.into_iter().map(Arc::new).collect(),
            );
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub fn unregister_crd(&self, crd_name: &str) -> Vec<Arc<Resource>> {
        let removed = self
            .custom
            .write()
            .ok()
            .and_then(|mut c| c.remove(crd_name))
            .unwrap_or_default();
        self.generation.fetch_add(1, Ordering::AcqRel);
        removed
    }
}

/// Reads the served versions of a CRD object into resources. Errors name the offending field.
pub fn resources_from_crd(crd: &Value) -> Result<Vec<Resource>, (String, String)> {
    let spec = crd
        .get("spec")
        .ok_or(("spec".to_string(), "Required value".to_string()))?;
    let group = spec
        .get("group")
        .and_then(Value::as_str)
        .filter(|g| !g.is_empty());
    let group = group.ok_or(("spec.group".to_string(), "Required value".to_string()))?;
    let names = spec
        .get("names")
        .ok_or(("spec.names".to_string(), "Required value".to_string()))?;
    let plural = names
        .get("plural")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty());
    let plural = plural.ok_or((
        "spec.names.plural".to_string(),
        "Required value".to_string(),
    ))?;
    let kind = names
        .get("kind")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty());
    let kind = kind.ok_or(("spec.names.kind".to_string(), "Required value".to_string()))?;
    let singular = names
        .get("singular")
        .and_then(Value::as_str)
        .map(String::from)
        .unwrap_or_else(|| kind.to_lowercase());
    let str_list = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let scope = spec
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or("Namespaced");
    if scope != "Namespaced" && scope != "Cluster" {
        return Err((
            "spec.scope".into(),
            format!(
                "Unsupported value: \"{scope}\": supported values: \"Cluster\", \"Namespaced\""
            ),
        ));
    }
    let expected_name = format!("{plural}.{group}");
    let actual_name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if actual_name != expected_name {
        return Err((
            "metadata.name".into(),
            format!("Invalid value: \"{actual_name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .filter(|v| !v.is_empty());
    let versions = versions.ok_or((
        "spec.versions".to_string(),
        "Required value: must have exactly one version marked as storage version".to_string(),
    ))?;
    let mut out = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty());
        let name = name.ok_or((
            format!("spec.versions[{i}].name"),
            "Required value".to_string(),
        ))?;
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let schema = v.pointer("/schema/openAPIV3Schema").cloned().unwrap_or_else(|| serde_json::json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
        let has_status = v.pointer("/subresources/status").is_some();
        let scale = v.pointer("/subresources/scale").map(|s| ScalePaths {
            spec_replicas: s
                .get("specReplicasPath")
                .and_then(Value::as_str)
                .unwrap_or(".spec.replicas")
                .to_string(),
            status_replicas: s
                .get("statusReplicasPath")
                .and_then(Value::as_str)
                .unwrap_or(".status.replicas")
                .to_string(),
            label_selector: s
                .get("labelSelectorPath")
                .and_then(Value::as_str)
                .map(String::from),
        });
        let reversed_group: Vec<&str> = group.split('.').rev().collect();
        let read_defaults = has_defaults(&schema);
        out.push(Resource {
            api_version: group_version(group, name),
            group: group.to_string(),
            version: name.to_string(),
            plural: plural.to_string(),
            singular: singular.clone(),
            kind: kind.to_string(),
            namespaced: scope == "Namespaced",
            short_names: str_list(names.get("shortNames")),
            categories: str_list(names.get("categories")),
            has_status,
            scale,
            definition: format!("{}.{name}.{kind}", reversed_group.join(".")),
            custom_schema: Some(Arc::new(schema)),
            selectable_fields: v
                .get("selectableFields")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|f| f.get("jsonPath").and_then(Value::as_str))
                .map(|p| p.trim_start_matches('.').to_string())
                .collect(),
            printer_columns: v
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            conversion: None,
            read_defaults,
        });
    }
    Ok(out)
}

/// Does a structural schema (or any schema under it) carry a `default`?
fn has_defaults(schema: &Value) -> bool {
    if schema.get("default").is_some() {
        return true;
    }
    let children = ["items", "additionalProperties", "not"]
        .iter()
        .filter_map(|k| schema.get(*k))
        .chain(
            ["properties", "patternProperties"]
                .iter()
                .filter_map(|k| schema.get(*k).and_then(Value::as_object))
                .flat_map(|m| m.values()),
        )
        .chain(
            ["allOf", "anyOf", "oneOf"]
                .iter()
                .filter_map(|k| schema.get(*k).and_then(Value::as_array))
                .flatten(),
        );
    children
        .into_iter()
        .any(|c| c.is_object() && has_defaults(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_definitions_match_upstream_names() {
        let r = builtin_resources();
        let def = |plural: &str| {
            r.iter()
                .find(|x| x.plural == plural)
                .map(|x| x.definition.clone())
                .unwrap_or_default()
        };
        assert_eq!(def("deployments"), "io.k8s.api.apps.v1.Deployment");
        assert_eq!(def("configmaps"), "io.k8s.api.core.v1.ConfigMap");
        assert_eq!(def("clusterroles"), "io.k8s.api.rbac.v1.ClusterRole");
        assert_eq!(def("ingresses"), "io.k8s.api.networking.v1.Ingress");
        assert_eq!(def("storageclasses"), "io.k8s.api.storage.v1.StorageClass");
        assert_eq!(def("leases"), "io.k8s.api.coordination.v1.Lease");
        assert_eq!(
            def("networkpolicies"),
            "io.k8s.api.networking.v1.NetworkPolicy"
        );
        assert_eq!(
            def("endpointslices"),
            "io.k8s.api.discovery.v1.EndpointSlice"
        );
        assert_eq!(
            def("apiservices"),
            "io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.APIService"
        );
        assert_eq!(
            def("customresourcedefinitions"),
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition"
        );
    }

    #[test]
    fn releases_serve_the_versions_they_define() {
        let served = |minor: u32| -> Vec<String> {
            let spec = rotor_openapi::spec(minor).expect("release data");
            Registry::for_release(&spec)
                .all()
                .iter()
                .map(|r| format!("{}/{}", r.api_version, r.kind))
                .collect()
        };
        let (v25, v26, v29, v32) = (served(25), served(26), served(29), served(32));
        let hpa_beta = "autoscaling/v2beta2/HorizontalPodAutoscaler".to_string();
        assert!(v25.contains(&hpa_beta) && !v26.contains(&hpa_beta));
        let fs = |v: &str| format!("flowcontrol.apiserver.k8s.io/{v}/FlowSchema");
        assert!(v25.contains(&fs("v1beta2")) && !v25.contains(&fs("v1beta3")));
        assert!(v26.contains(&fs("v1beta3")) && !v26.contains(&fs("v1")));
        assert!(v29.contains(&fs("v1")) && v29.contains(&fs("v1beta3")));
        assert!(!v29.contains(&fs("v1beta2")));
        assert!(v32.contains(&fs("v1")) && !v32.contains(&fs("v1beta3")));
        assert!(v32.contains(&"apps/v1/Deployment".to_string()));
        // Every row rotor knows is served by a release that defines it.
        for kind in [
            "networking.k8s.io/v1/NetworkPolicy",
            "networking.k8s.io/v1/IngressClass",
            "discovery.k8s.io/v1/EndpointSlice",
            "v1/LimitRange",
            "v1/PersistentVolume",
            "v1/ReplicationController",
            "apps/v1/ControllerRevision",
            "admissionregistration.k8s.io/v1/ValidatingWebhookConfiguration",
            "apiregistration.k8s.io/v1/APIService",
            "certificates.k8s.io/v1/CertificateSigningRequest",
        ] {
            assert!(v32.contains(&kind.to_string()), "1.32 serves {kind}");
        }
    }

    #[test]
    fn crd_versions_become_resources() {
        let crd = serde_json::json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}},
                             {"name": "v0", "served": false, "storage": false}]}
        });
        let rs = resources_from_crd(&crd).expect("valid crd");
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].kind, "Widget");
        assert!(rs[0].has_status && rs[0].namespaced);
        assert_eq!(rs[0].definition, "com.example.v1.Widget");
        let bad = serde_json::json!({"metadata": {"name": "x.example.com"}, "spec": {"group": "example.com", "names": {"plural": "widgets", "kind": "Widget"}, "versions": [{"name": "v1"}]}});
        assert_eq!(
            resources_from_crd(&bad).err().map(|e| e.0),
            Some("metadata.name".to_string())
        );
    }
}
