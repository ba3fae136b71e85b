//! Core kinds other than Pods: ConfigMap and Secret (keys, total size, Secret types), Service
//! (ports, type, selector) and their update rules.

use std::collections::HashSet;

use base64::Engine;
use serde_json::{Map, Value};

use super::values::{check_str, config_map_key, dns_label, port_name, port_number};
use super::{Causes, at};

/// ConfigMaps and Secrets hold at most 1 MiB of data.
const MAX_DATA: usize = 1024 * 1024;
const PROTOCOLS: [&str; 3] = ["TCP", "UDP", "SCTP"];
const SERVICE_TYPES: [&str; 4] = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
const NODE_PORTS: std::ops::RangeInclusive<i64> = 30000..=32767;

fn map<'a>(obj: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    obj.get(key).and_then(Value::as_object)
}

/// Keys of `data`-like maps; returns their total size in bytes.
fn keys(
    m: Option<&Map<String, Value>>,
    field: &str,
    seen: &mut HashSet<String>,
    c: &mut Causes,
) -> usize {
    let Some(m) = m else { return 0 };
    let mut size = 0;
    for (k, v) in m {
        let f = || format!("{field}[{k}]");
        if let Err(e) = config_map_key(k) {
            c.invalid(f(), &Value::from(k.as_str()), &e);
        }
        if !seen.insert(k.clone()) {
            c.duplicate(f(), &Value::from(k.as_str()));
        }
        size += k.len() + v.as_str().map_or(0, str::len);
    }
    size
}

pub fn validate_config_map(obj: &Value, c: &mut Causes) {
    let mut seen = HashSet::new();
    let size = keys(map(obj, "data"), "data", &mut seen, c)
        + keys(map(obj, "binaryData"), "binaryData", &mut seen, c);
    if size > MAX_DATA {
        c.too_long("data".into(), MAX_DATA);
    }
}

/// The keys a Secret type requires in `data` (or `stringData`).
fn required_keys(ty: &str) -> &'static [&'static str] {
    match ty {
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        _ => &[],
    }
}

pub fn validate_secret(obj: &Value, c: &mut Causes) {
    let mut seen = HashSet::new();
    let data = map(obj, "data");
    let strings = map(obj, "stringData");
    let mut size = keys(data, "data", &mut seen, c);
    seen.clear();
    size += keys(strings, "stringData", &mut seen, c);
    if size > MAX_DATA {
        c.too_long("data".into(), MAX_DATA);
    }
    let ty = obj.get("type").and_then(Value::as_str).unwrap_or("Opaque");
    let has = |k: &str| {
        data.is_some_and(|m| m.contains_key(k)) || strings.is_some_and(|m| m.contains_key(k))
    };
    for key in required_keys(ty) {
        if !has(key) {
            c.required(format!("data[{key}]"), "");
        }
    }
    if ty == "kubernetes.io/dockerconfigjson"
        && let Some(raw) = data
            .and_then(|m| m.get(".dockerconfigjson"))
            .and_then(Value::as_str)
    {
        let parsed = base64::engine::general_purpose::STANDARD
            .decode(raw)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        if parsed.is_none() {
            c.invalid(
                "data[.dockerconfigjson]".into(),
                &Value::from("<secret contents redacted>"),
                "invalid JSON in the decoded value",
            );
        }
    }
    if ty == "kubernetes.io/service-account-token"
        && at(
            obj,
            &[
                "metadata",
                "annotations",
                "kubernetes.io/service-account.name",
            ],
        )
        .is_none()
    {
        c.required(
            "metadata.annotations[kubernetes.io/service-account.name]".into(),
            "",
        );
    }
}

/// Data of an `immutable: true` ConfigMap or Secret may not change, nor the flag be unset.
pub fn validate_immutable_data(old: &Value, new: &Value, c: &mut Causes) {
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return;
    }
    if new.get("immutable").and_then(Value::as_bool) != Some(true) {
        c.forbidden(
            "immutable".into(),
            "field is immutable when `immutable` is set",
        );
    }
    for key in ["data", "binaryData", "stringData"] {
        if at(old, &[key]) != at(new, &[key]) {
            c.forbidden(key.into(), "field is immutable when `immutable` is set");
        }
    }
}

pub fn validate_service(obj: &Value, c: &mut Causes) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    if let Some(t) = spec.get("type").filter(|v| !v.is_null())
        && !t.as_str().is_some_and(|t| SERVICE_TYPES.contains(&t))
    {
        c.not_supported("spec.type".into(), t, &SERVICE_TYPES);
    }
    let ports = spec
        .get("ports")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    if ports.is_empty() && ty != "ExternalName" && !headless {
        c.required("spec.ports".into(), "");
    }
    if ty == "ExternalName"
        && spec
            .get("externalName")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        c.required("spec.externalName".into(), "");
    }
    let mut names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        validate_service_port(p, i, ports.len() > 1, ty, &mut names, c);
    }
    if ty != "ExternalName" {
        validate_cluster_ips(spec, c);
    }
    if let Some(sel) = map(spec, "selector") {
        super::meta::validate_label_map(sel, "spec.selector", true, c);
    }
}

/// `clusterIPs` in step with `clusterIP`, each an IP address (or `None`, first and only),
/// at most two.
fn validate_cluster_ips(spec: &Value, c: &mut Causes) {
    let field = "spec.clusterIPs";
    let ips = spec
        .get("clusterIPs")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let all = || Value::Array(ips.to_vec());
    match spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        Some(_) if ips.is_empty() => c.required(field.into(), ""),
        Some(ip) if ips[0].as_str() != Some(ip) => {
            c.invalid(field.into(), &all(), "first value must match `clusterIP`")
        }
        None if !ips.is_empty() => c.invalid(
            field.into(),
            &all(),
            "must be empty when `clusterIP` is not specified",
        ),
        _ => {}
    }
    for (i, ip) in ips.iter().enumerate() {
        match ip.as_str() {
            Some("None") if i == 0 => {
                if ips.len() > 1 {
                    c.invalid(
                        field.into(),
                        &all(),
                        "'None' must be the first and only value",
                    );
                }
            }
            Some(s) if s.parse::<std::net::IpAddr>().is_ok() => {}
            _ => c.invalid(
                format!("{field}[{i}]"),
                ip,
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ),
        }
    }
    if ips.len() > 2 {
        c.invalid(field.into(), &all(), "may only hold up to 2 values");
    }
}

/// A Namespace's `spec.finalizers`: qualified names, and a name without a `/` only if it is a
/// standard one (`kubernetes`, `orphan`, `foregroundDeletion`).
pub fn validate_namespace(obj: &Value, c: &mut Causes) {
    let finalizers = at(obj, &["spec", "finalizers"]).and_then(Value::as_array);
    for f in finalizers.into_iter().flatten() {
        let Some(name) = f.as_str() else {
            c.invalid("spec.finalizers".into(), f, "must be a string");
            continue;
        };
        if let Err(e) = super::values::qualified_name(name) {
            c.invalid("spec.finalizers".into(), f, &e);
        }
        let standard = matches!(name, "kubernetes" | "orphan" | "foregroundDeletion");
        if !name.contains('/') && !standard {
            c.invalid(
                "spec.finalizers".into(),
                f,
                "name is neither a standard finalizer name nor is it fully qualified",
            );
        }
    }
}

fn validate_service_port<'a>(
    p: &'a Value,
    i: usize,
    many: bool,
    ty: &str,
    names: &mut HashSet<&'a str>,
    c: &mut Causes,
) {
    let f = |k: &str| format!("spec.ports[{i}].{k}");
    match p
        .get("name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        None if many => c.required(f("name"), ""),
        None => {}
        Some(n) => {
            check_str(c, &f("name"), &p["name"], dns_label);
            if !names.insert(n) {
                c.duplicate(f("name"), &p["name"]);
            }
        }
    }
    match p.get("port") {
        None | Some(Value::Null) => c.required(f("port"), ""),
        Some(v) => port_number(c, f("port"), v),
    }
    if let Some(pr) = p.get("protocol").filter(|v| !v.is_null())
        && !pr.as_str().is_some_and(|s| PROTOCOLS.contains(&s))
    {
        c.not_supported(f("protocol"), pr, &PROTOCOLS);
    }
    match p.get("targetPort") {
        Some(v @ Value::Number(_)) => port_number(c, f("targetPort"), v),
        Some(v @ Value::String(_)) => check_str(c, &f("targetPort"), v, port_name),
        _ => {}
    }
    if let Some(np) = p
        .get("nodePort")
        .filter(|v| !v.is_null() && v.as_i64() != Some(0))
    {
        if ty == "ClusterIP" || ty == "ExternalName" {
            c.forbidden(
                f("nodePort"),
                &format!("may not be used when `type` is '{ty}'"),
            );
        } else if !np.as_i64().is_some_and(|n| NODE_PORTS.contains(&n)) {
            c.invalid(
                f("nodePort"),
                np,
                "provided port is not in the valid range. The range of valid ports is 30000-32767",
            );
        }
    }
}

/// A Service keeps its cluster IP: an update may omit it but not change it.
pub fn validate_service_update(old: &Value, new: &Value, c: &mut Causes) {
    let ip = |v: &Value| {
        at(v, &["spec", "clusterIP"])
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    if let (Some(a), Some(b)) = (ip(old), ip(new))
        && a != b
        && at(new, &["spec", "type"]).and_then(Value::as_str) != Some("ExternalName")
    {
        c.invalid(
            "spec.clusterIP".into(),
            &Value::from(b),
            "field is immutable",
        );
    }
}
