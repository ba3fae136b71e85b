//! PodSpec defaults (SetDefaults_PodSpec, _Pod, _Container, _Probe, _Volume and the volume
//! sources'), shared by Pods and every kind that embeds a pod template.

use serde_json::{Map, Value, json};

use super::{D, child, each, ensure, fill, str_of};

/// A Pod: the spec's defaults plus what upstream adds to Pods only.
pub(super) fn pod(root: &mut Map<String, Value>) {
    let Some(spec) = ensure(root, "spec") else {
        return;
    };
    spec_defaults(spec);
    fill(spec, &[("enableServiceLinks", D::Bool(true))]);
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    for list in ["containers", "initContainers"] {
        for c in each(spec, list) {
            requests_from_limits(c);
            if host_network {
                for p in each(c, "ports") {
                    if let Some(port) = p.get("containerPort").cloned() {
                        p.entry("hostPort").or_insert(port);
                    }
                }
            }
        }
    }
}

/// A PodTemplateSpec at `key` of `parent` (Deployment, Job… `spec.template`).
pub(super) fn template_at(parent: &mut Map<String, Value>, key: &str) {
    if let Some(spec) = child(parent, key).and_then(|t| ensure(t, "spec")) {
        spec_defaults(spec);
    }
}

/// SetDefaults_PodSpec and everything nested in a pod spec.
fn spec_defaults(spec: &mut Map<String, Value>) {
    fill(
        spec,
        &[
            ("dnsPolicy", D::Str("ClusterFirst")),
            ("restartPolicy", D::Str("Always")),
            ("securityContext", D::Obj),
            ("terminationGracePeriodSeconds", D::Int(30)),
            ("schedulerName", D::Str("default-scheduler")),
        ],
    );
    for list in ["containers", "initContainers"] {
        for c in each(spec, list) {
            container(c);
        }
    }
    for v in each(spec, "volumes") {
        volume(v);
    }
}

fn container(c: &mut Map<String, Value>) {
    let pull = if image_tag_is_latest(str_of(c, "image")) {
        "Always"
    } else {
        "IfNotPresent"
    };
    fill(
        c,
        &[
            ("imagePullPolicy", D::Str(pull)),
            ("terminationMessagePath", D::Str("/dev/termination-log")),
            ("terminationMessagePolicy", D::Str("File")),
        ],
    );
    for p in each(c, "ports") {
        fill(p, &[("protocol", D::Str("TCP"))]);
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = child(c, probe) {
            fill(
                p,
                &[
                    ("timeoutSeconds", D::Zero(1)),
                    ("periodSeconds", D::Zero(10)),
                    ("successThreshold", D::Zero(1)),
                    ("failureThreshold", D::Zero(3)),
                ],
            );
            handler(p);
        }
    }
    if let Some(lifecycle) = child(c, "lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = child(lifecycle, hook) {
                handler(h);
            }
        }
    }
    for env in each(c, "env") {
        if let Some(field_ref) = child(env, "valueFrom").and_then(|f| child(f, "fieldRef")) {
            fill(field_ref, &[("apiVersion", D::Str("v1"))]);
        }
    }
}

/// An HTTP probe or hook: path `/` and scheme HTTP (SetDefaults_HTTPGetAction).
fn handler(h: &mut Map<String, Value>) {
    if let Some(get) = child(h, "httpGet") {
        fill(get, &[("path", D::Str("/")), ("scheme", D::Str("HTTP"))]);
    }
}

/// Upstream's image-name parser: no tag and no digest means `latest`.
fn image_tag_is_latest(image: &str) -> bool {
    let name = image.split('@').next().unwrap_or("");
    let has_digest = image.contains('@');
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.rsplit_once(':') {
        Some((_, tag)) => tag == "latest",
        None => !has_digest,
    }
}

/// Limits without requests: requests default to the limits (SetDefaults_Pod).
fn requests_from_limits(c: &mut Map<String, Value>) {
    let Some(resources) = child(c, "resources") else {
        return;
    };
    let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    let Some(requests) = ensure(resources, "requests") else {
        return;
    };
    for (name, quantity) in limits {
        requests.entry(name).or_insert(quantity);
    }
}

/// SetDefaults_Volume (no source: an emptyDir) and the sources' own defaults.
fn volume(v: &mut Map<String, Value>) {
    if v.keys().all(|k| k == "name") {
        v.insert("emptyDir".into(), json!({}));
    }
    for source in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(s) = child(v, source) {
            fill(s, &[("defaultMode", D::Int(0o644))]);
        }
    }
    for item in child(v, "downwardAPI")
        .into_iter()
        .flat_map(|d| each(d, "items"))
    {
        if let Some(field_ref) = child(item, "fieldRef") {
            fill(field_ref, &[("apiVersion", D::Str("v1"))]);
        }
    }
    for s in child(v, "projected")
        .into_iter()
        .flat_map(|p| each(p, "sources"))
    {
        if let Some(token) = child(s, "serviceAccountToken") {
            fill(token, &[("expirationSeconds", D::Int(3600))]);
        }
        for item in child(s, "downwardAPI")
            .into_iter()
            .flat_map(|d| each(d, "items"))
        {
            if let Some(field_ref) = child(item, "fieldRef") {
                fill(field_ref, &[("apiVersion", D::Str("v1"))]);
            }
        }
    }
    if let Some(s) = child(v, "hostPath") {
        fill(s, &[("type", D::PtrStr(""))]);
    }
    if let Some(s) = child(v, "iscsi") {
        fill(s, &[("iscsiInterface", D::Str("default"))]);
    }
    if let Some(s) = child(v, "rbd") {
        fill(
            s,
            &[
                ("pool", D::Str("rbd")),
                ("user", D::Str("admin")),
                ("keyring", D::Str("/etc/ceph/keyring")),
            ],
        );
    }
    if let Some(s) = child(v, "azureDisk") {
        fill(
            s,
            &[
                ("cachingMode", D::PtrStr("ReadWrite")),
                ("fsType", D::PtrStr("ext4")),
                ("readOnly", D::Bool(false)),
                ("kind", D::PtrStr("Shared")),
            ],
        );
    }
    if let Some(s) = child(v, "scaleIO") {
        fill(
            s,
            &[
                ("storageMode", D::Str("ThinProvisioned")),
                ("fsType", D::Str("xfs")),
            ],
        );
    }
    if let Some(claim) = child(v, "ephemeral")
        .and_then(|e| child(e, "volumeClaimTemplate"))
        .and_then(|t| child(t, "spec"))
    {
        fill(claim, &[("volumeMode", D::PtrStr("Filesystem"))]);
    }
}

#[cfg(test)]
pub(super) fn image_is_latest_for_tests(image: &str) -> bool {
    image_tag_is_latest(image)
}
