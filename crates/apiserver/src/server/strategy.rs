//! Per-kind behaviour on create and update (kube-apiserver's "strategies"): defaults, what the
//! status subresource owns, generation, Service IPs, Secret stringData, CRD status, pruning.

use serde_json::{Value, json};

use super::*;
use crate::error::ApiResult;
use crate::object::{self, meta_mut};
use crate::registry::Resource;

impl ApiServer {
    /// Decoding as upstream's: explicit nulls dropped (built-ins) and every default applied —
    /// the built-in `SetDefaults_*` or a custom resource's schema `default`s. Runs on every
    /// write once the body or patch is applied, before validation.
    pub(super) fn default_object(&self, res: &Resource, obj: &mut Value) {
        match &res.custom_schema {
            Some(schema) => rotor_openapi::default_custom(schema, obj),
            None => {
                rotor_openapi::builtin_defaults::drop_nulls(&res.group, &res.plural, obj);
                rotor_openapi::builtin_defaults::apply(
                    &res.group,
                    &res.version,
                    &res.plural,
                    self.config.kubernetes_minor,
                    obj,
                );
            }
        }
    }

    /// Does this kind carry `metadata.generation` upstream? Custom resources and the kinds
    /// whose strategy sets it (workloads, policies, configurations with an observed
    /// generation); not ConfigMap, Secret, Service, Namespace… Pods from 1.33.
    pub(super) fn uses_generation(&self, res: &Resource) -> bool {
        if res.is_custom() {
            return true;
        }
        match res.group.as_str() {
            "" => match res.plural.as_str() {
                "replicationcontrollers" => true,
                "pods" => self.config.kubernetes_minor >= 33,
                _ => false,
            },
            "apps" => res.plural != "controllerrevisions",
            "batch"
            | "autoscaling"
            | "policy"
            | "admissionregistration.k8s.io"
            | "flowcontrol.apiserver.k8s.io"
            | "apiextensions.k8s.io" => true,
            "networking.k8s.io" => {
                matches!(
                    res.plural.as_str(),
                    "ingresses" | "ingressclasses" | "networkpolicies"
                )
            }
            _ => false,
        }
    }

    /// Kind-specific defaults on create (the "strategy" of each kind).
    pub(super) fn prepare_create(&self, res: &Resource, obj: &mut Value) -> ApiResult<()> {
        if let Some(schema) = &res.custom_schema {
            rotor_openapi::prune_custom(&self.openapi, schema, obj);
        }
        let name = object::name(obj).to_string();
        match (res.group.as_str(), res.plural.as_str()) {
            ("", "namespaces") => {
                meta_mut(obj)
                    .entry("labels")
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .map(|l| l.insert("kubernetes.io/metadata.name".into(), json!(name)));
                namespace_finalizers(obj);
                obj["status"] = json!({"phase": "Active"});
            }
            ("", "services") => {
                let spec = ensure_object(obj, "spec");
                let external = spec.get("type").and_then(Value::as_str) == Some("ExternalName");
                if !external {
                    sync_cluster_ips(spec);
                }
                let wants_ip =
                    !matches!(spec.get("clusterIP").and_then(Value::as_str), Some("None"))
                        && !external;
                if wants_ip
                    && spec
                        .get("clusterIP")
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                {
                    let ip = std::net::Ipv4Addr::from(
                        self.next_cluster_ip.fetch_add(1, Ordering::Relaxed),
                    )
                    .to_string();
                    spec.insert("clusterIP".into(), json!(ip));
                    spec.insert("clusterIPs".into(), json!([ip]));
                }
                obj["status"] = json!({"loadBalancer": {}});
            }
            ("", "secrets") => fold_string_data(obj),
            ("", "pods") if obj.pointer("/status/phase").is_none() => {
                obj["status"] = json!({"phase": "Pending"});
            }
            ("", "nodes") => {}
            ("apps", "deployments" | "statefulsets" | "replicasets") => {
                obj["status"] = json!({});
            }
            ("apiextensions.k8s.io", "customresourcedefinitions") => crd_status(obj),
            ("batch", "jobs") => {
                generate_job_selector(obj, self.config.kubernetes_minor);
                if let Some(o) = obj.as_object_mut() {
                    o.remove("status");
                }
            }
            _ if res.has_status => {
                if let Some(o) = obj.as_object_mut() {
                    o.remove("status");
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Builds the next stored object from the current one and the requested one.
    pub(super) fn prepare_update(
        &self,
        res: &Resource,
        current: &Value,
        requested: Value,
        sub: Option<&str>,
    ) -> ApiResult<Value> {
        let mut requested = requested;
        if let Some(schema) = &res.custom_schema {
            rotor_openapi::prune_custom(&self.openapi, schema, &mut requested);
        }
        let mut next = match sub {
            Some("status") => {
                let mut n = current.clone();
                n["status"] = requested.get("status").cloned().unwrap_or(json!({}));
                n
            }
            _ => {
                let mut n = requested;
                if res.has_status {
                    match current.get("status") {
                        Some(s) => n["status"] = s.clone(),
                        None => {
                            n.as_object_mut().map(|o| o.remove("status"));
                        }
                    }
                }
                n
            }
        };
        next["apiVersion"] = json!(res.api_version());
        next["kind"] = json!(res.kind);
        let cur_meta = object::meta(current).cloned().unwrap_or_default();
        {
            let m = meta_mut(&mut next);
            for f in [
                "uid",
                "creationTimestamp",
                "name",
                "namespace",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match cur_meta.get(f) {
                    Some(v) => {
                        m.insert(f.into(), v.clone());
                    }
                    None => {
                        m.remove(f);
                    }
                }
            }
            m.remove("resourceVersion");
        }
        if self.uses_generation(res) && object::spec_part(current) != object::spec_part(&next) {
            let generation = cur_meta
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1;
            meta_mut(&mut next).insert("generation".into(), json!(generation));
        }
        match (res.group.as_str(), res.plural.as_str()) {
            ("", "services") => {
                for f in ["clusterIP", "clusterIPs"] {
                    if next.pointer(&format!("/spec/{f}")).is_none()
                        && let Some(v) = current.pointer(&format!("/spec/{f}")).cloned()
                    {
                        ensure_object(&mut next, "spec").insert(f.into(), v);
                    }
                }
            }
            ("", "secrets") => fold_string_data(&mut next),
            ("", "namespaces") if next.get("status").is_none() => {
                next["status"] = current
                    .get("status")
                    .cloned()
                    .unwrap_or(json!({"phase": "Active"}));
            }
            ("apiextensions.k8s.io", "customresourcedefinitions") => crd_status(&mut next),
            _ => {}
        }
        Ok(next)
    }
}

pub(super) fn ensure_object<'a>(
    obj: &'a mut Value,
    field: &str,
) -> &'a mut serde_json::Map<String, Value> {
    if !obj.get(field).is_some_and(Value::is_object) {
        obj[field] = json!({});
    }
    obj[field].as_object_mut().expect("object ensured above")
}

/// Secret `stringData` is write-only: folded into base64 `data`.
/// A Job's selector as upstream's Job strategy generates it on create, unless the Job asks for
/// `manualSelector: true`: its template gets the `job-name` and `controller-uid` labels (both
/// the legacy names and, from 1.27, the `batch.kubernetes.io/` ones; a label the user set is
/// kept) and the selector matches the controller-uid one (the `batch.kubernetes.io/` name from
/// 1.27). `manualSelector` stays unset. The uid is the one create has just given the Job.
fn generate_job_selector(obj: &mut Value, minor: u32) {
    if obj.pointer("/spec/manualSelector") == Some(&json!(true)) {
        return;
    }
    let uid = json!(object::meta_str(obj, "uid").unwrap_or_default());
    let name = json!(object::name(obj));
    let (job_names, uids, selected): (&[&str], &[&str], &str) = if minor >= 27 {
        (
            &["job-name", "batch.kubernetes.io/job-name"],
            &["controller-uid", "batch.kubernetes.io/controller-uid"],
            "batch.kubernetes.io/controller-uid",
        )
    } else {
        (&["job-name"], &["controller-uid"], "controller-uid")
    };
    let spec = ensure_object(obj, "spec");
    let template = spec.entry("template").or_insert_with(|| json!({}));
    if let Some(labels) = labels_of(template) {
        for key in job_names {
            labels.entry(*key).or_insert_with(|| name.clone());
        }
        for key in uids {
            labels.entry(*key).or_insert_with(|| uid.clone());
        }
    }
    let selector = spec.entry("selector").or_insert_with(|| json!({}));
    if let Some(sel) = selector.as_object_mut() {
        let match_labels = sel.entry("matchLabels").or_insert_with(|| json!({}));
        if let Some(m) = match_labels.as_object_mut() {
            m.entry(selected).or_insert(uid);
        }
    }
}

/// A new Namespace's `spec.finalizers`: the client's, with `kubernetes` added when missing (the
/// namespace controller's), as upstream's strategy does.
fn namespace_finalizers(obj: &mut Value) {
    let mut finalizers: Vec<Value> = obj
        .pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !finalizers.iter().any(|f| f == "kubernetes") {
        finalizers.push(json!("kubernetes"));
    }
    obj["spec"] = json!({"finalizers": finalizers});
}

/// `clusterIP` and `clusterIPs` of a created Service in step, as upstream's strategy keeps
/// them: either one given fills in the other (validation then judges what was given).
fn sync_cluster_ips(spec: &mut serde_json::Map<String, Value>) {
    let ip = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let first = spec
        .get("clusterIPs")
        .and_then(Value::as_array)
        .and_then(|ips| ips.first())
        .cloned();
    match (ip, first) {
        (None, Some(first)) => {
            spec.insert("clusterIP".into(), first);
        }
        (Some(ip), None) => {
            spec.insert("clusterIPs".into(), json!([ip]));
        }
        _ => {}
    }
}

/// `metadata.labels` of a template (made when missing), if the template is an object.
fn labels_of(template: &mut Value) -> Option<&mut serde_json::Map<String, Value>> {
    let meta = template
        .as_object_mut()?
        .entry("metadata")
        .or_insert_with(|| json!({}));
    meta.as_object_mut()?
        .entry("labels")
        .or_insert_with(|| json!({}))
        .as_object_mut()
}

fn fold_string_data(obj: &mut Value) {
    use base64::Engine;
    let Some(string_data) = obj.as_object_mut().and_then(|o| o.remove("stringData")) else {
        return;
    };
    let Some(map) = string_data.as_object() else {
        return;
    };
    let data = ensure_object(obj, "data");
    for (k, v) in map {
        if let Some(s) = v.as_str() {
            data.insert(
                k.clone(),
                json!(base64::engine::general_purpose::STANDARD.encode(s)),
            );
        }
    }
}

/// The status kube-apiserver gives an accepted CRD.
fn crd_status(obj: &mut Value) {
    let now = object::now_rfc3339();
    let names = obj.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let stored: Vec<Value> = obj
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    obj["status"] = json!({
        "acceptedNames": names,
        "storedVersions": stored,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
    });
}
