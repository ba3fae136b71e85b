//! networking.k8s.io Ingress (rules, paths, backends) and NetworkPolicy (ports, peers).

use serde_json::Value;

use super::values::{dns_subdomain, port_name, port_number};
use super::{Causes, at};

const PATH_TYPES: [&str; 3] = ["Exact", "Prefix", "ImplementationSpecific"];
const PROTOCOLS: [&str; 3] = ["TCP", "UDP", "SCTP"];

fn items(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

pub fn validate_ingress(obj: &Value, c: &mut Causes) {
    let spec = obj.get("spec");
    let default = spec
        .and_then(|s| s.get("defaultBackend"))
        .filter(|v| !v.is_null());
    if let Some(b) = default {
        validate_backend(b, "spec.defaultBackend", c);
    }
    let rules = items(spec.and_then(|s| s.get("rules")));
    if rules.is_empty() && default.is_none() {
        c.invalid(
            "spec".into(),
            &Value::from("[]"),
            "either `defaultBackend` or `rules` must be specified",
        );
    }
    for (i, r) in rules.iter().enumerate() {
        if let Some(h) = r
            .get("host")
            .and_then(Value::as_str)
            .filter(|h| !h.is_empty())
        {
            let bare = h.strip_prefix("*.").unwrap_or(h);
            if let Err(e) = dns_subdomain(bare) {
                c.invalid(format!("spec.rules[{i}].host"), &Value::from(h), &e);
            }
        }
        let Some(http) = r.get("http").filter(|v| !v.is_null()) else {
            continue;
        };
        let paths = items(http.get("paths"));
        if paths.is_empty() {
            c.required(format!("spec.rules[{i}].http.paths"), "");
        }
        for (j, p) in paths.iter().enumerate() {
            let f = format!("spec.rules[{i}].http.paths[{j}]");
            validate_path(p, &f, c);
        }
    }
}

fn validate_path(p: &Value, f: &str, c: &mut Causes) {
    match p.get("pathType").filter(|v| !v.is_null()) {
        None => c.required(format!("{f}.pathType"), "pathType must be specified"),
        Some(t) if !t.as_str().is_some_and(|t| PATH_TYPES.contains(&t)) => {
            c.not_supported(format!("{f}.pathType"), t, &PATH_TYPES)
        }
        Some(t) => {
            let path = p.get("path").and_then(Value::as_str).unwrap_or_default();
            if t.as_str() != Some("ImplementationSpecific") && !path.starts_with('/') {
                c.invalid(
                    format!("{f}.path"),
                    &Value::from(path),
                    "must be an absolute path",
                );
            }
        }
    }
    match p.get("backend") {
        Some(b) => validate_backend(b, &format!("{f}.backend"), c),
        None => c.required(format!("{f}.backend"), ""),
    }
}

/// Exactly one of `service` or `resource`; a service needs a name and one port.
fn validate_backend(b: &Value, f: &str, c: &mut Causes) {
    let service = b.get("service").filter(|v| !v.is_null());
    match (service, b.get("resource").filter(|v| !v.is_null())) {
        (Some(_), Some(_)) => {
            c.invalid(f.into(), b, "cannot set both resource and service backends")
        }
        (None, None) => c.invalid(f.into(), b, "resource or service backend is required"),
        _ => {}
    }
    let Some(s) = service else { return };
    if s.get("name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        c.required(format!("{f}.service.name"), "");
    }
    let port = s.get("port");
    let number = port.and_then(|p| p.get("number")).filter(|v| !v.is_null());
    let name = port
        .and_then(|p| p.get("name"))
        .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()));
    match (number, name) {
        (Some(_), Some(_)) => c.invalid(
            format!("{f}.service.port"),
            port.unwrap_or(&Value::Null),
            "cannot set both port name & port number",
        ),
        (None, None) => c.invalid(
            format!("{f}.service.port"),
            port.unwrap_or(&Value::Null),
            "port name or number is required",
        ),
        (Some(n), None) => port_number(c, format!("{f}.service.port.number"), n),
        (None, Some(n)) => {
            if let Some(Err(e)) = n.as_str().map(port_name) {
                c.invalid(format!("{f}.service.port.name"), n, &e);
            }
        }
    }
}

pub fn validate_network_policy(obj: &Value, c: &mut Causes) {
    let spec = obj.get("spec");
    if let Some(sel) = spec
        .and_then(|s| s.get("podSelector"))
        .filter(|v| !v.is_null())
    {
        super::apps::validate_selector(sel, "spec.podSelector", c);
    }
    for dir in ["ingress", "egress"] {
        let peers = if dir == "ingress" { "from" } else { "to" };
        for (i, rule) in items(spec.and_then(|s| s.get(dir))).iter().enumerate() {
            for (j, p) in items(rule.get("ports")).iter().enumerate() {
                validate_np_port(p, &format!("spec.{dir}[{i}].ports[{j}]"), c);
            }
            for (j, peer) in items(rule.get(peers)).iter().enumerate() {
                validate_peer(peer, &format!("spec.{dir}[{i}].{peers}[{j}]"), c);
            }
        }
    }
    for (i, t) in items(spec.and_then(|s| s.get("policyTypes")))
        .iter()
        .enumerate()
    {
        if !matches!(t.as_str(), Some("Ingress" | "Egress")) {
            c.not_supported(format!("spec.policyTypes[{i}]"), t, &["Ingress", "Egress"]);
        }
    }
}

fn validate_np_port(p: &Value, f: &str, c: &mut Causes) {
    if let Some(pr) = p.get("protocol").filter(|v| !v.is_null())
        && !pr.as_str().is_some_and(|s| PROTOCOLS.contains(&s))
    {
        c.not_supported(format!("{f}.protocol"), pr, &PROTOCOLS);
    }
    match p.get("port") {
        Some(v @ Value::Number(_)) => port_number(c, format!("{f}.port"), v),
        Some(v @ Value::String(s)) => {
            if let Err(e) = port_name(s) {
                c.invalid(format!("{f}.port"), v, &e);
            }
        }
        _ => {}
    }
    if let Some(end) = p.get("endPort").filter(|v| !v.is_null()) {
        match p.get("port").and_then(Value::as_i64) {
            None => c.required(
                format!("{f}.port"),
                "must be specified when endPort is specified",
            ),
            Some(start) if end.as_i64().is_none_or(|e| e < start) => c.invalid(
                format!("{f}.endPort"),
                end,
                "must be greater than or equal to `port`",
            ),
            Some(_) => {}
        }
    }
}

/// A peer is either an ipBlock or pod/namespace selectors, and at least one of them.
fn validate_peer(peer: &Value, f: &str, c: &mut Causes) {
    let has = |k: &str| peer.get(k).is_some_and(|v| !v.is_null());
    let selectors = has("podSelector") || has("namespaceSelector");
    if has("ipBlock") && selectors {
        c.forbidden(f.into(), "may not specify both ipBlock and another peer");
    } else if !has("ipBlock") && !selectors {
        c.required(f.into(), "must specify a peer");
    }
    for key in ["podSelector", "namespaceSelector"] {
        if let Some(sel) = peer.get(key).filter(|v| !v.is_null()) {
            super::apps::validate_selector(sel, &format!("{f}.{key}"), c);
        }
    }
    if let Some(cidr) = at(peer, &["ipBlock", "cidr"])
        && !cidr.as_str().is_some_and(|s| s.contains('/'))
    {
        c.invalid(
            format!("{f}.ipBlock.cidr"),
            cidr,
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        );
    }
}
