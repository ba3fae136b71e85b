//! PodSpec rules, shared by Pods and every pod template (Deployment, StatefulSet, DaemonSet,
//! ReplicaSet, Job, CronJob): containers, ports, env, volumes and their mounts, resources.

use std::collections::HashSet;

use serde_json::Value;

use super::values::{check_str, dns_label, env_var_name, port_name, quantity};
use super::{Causes, join};

const RESTART_POLICIES: [&str; 3] = ["Always", "OnFailure", "Never"];
const DNS_POLICIES: [&str; 4] = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const PROTOCOLS: [&str; 3] = ["TCP", "UDP", "SCTP"];

fn items(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// A PodSpec at `prefix` (`spec`, `spec.template.spec`).
pub fn validate_pod_spec(spec: Option<&Value>, prefix: &str, c: &mut Causes) {
    let Some(spec) = spec else {
        c.required(prefix.to_string(), "");
        return;
    };
    let volumes = validate_volumes(items(spec.get("volumes")), prefix, c);
    let containers = items(spec.get("containers"));
    if containers.is_empty() {
        c.required(join(prefix, "containers"), "");
    }
    let mut names = HashSet::new();
    for key in ["initContainers", "containers"] {
        for (i, ctr) in items(spec.get(key)).iter().enumerate() {
            let field = format!("{}[{i}]", join(prefix, key));
            validate_container(ctr, &field, &volumes, &mut names, c);
        }
    }
    if let Some(p) = spec.get("restartPolicy").filter(|v| !v.is_null())
        && !p.as_str().is_some_and(|p| RESTART_POLICIES.contains(&p))
    {
        c.not_supported(join(prefix, "restartPolicy"), p, &RESTART_POLICIES);
    }
    if let Some(p) = spec.get("dnsPolicy").filter(|v| !v.is_null())
        && !p.as_str().is_some_and(|p| DNS_POLICIES.contains(&p))
    {
        c.not_supported(join(prefix, "dnsPolicy"), p, &DNS_POLICIES);
    }
    for key in ["terminationGracePeriodSeconds", "activeDeadlineSeconds"] {
        let min = if key == "activeDeadlineSeconds" { 1 } else { 0 };
        super::values::min_int(c, Some(spec), prefix, key, min);
    }
}

/// Volume names: DNS labels, unique. Returns the names for the mounts to refer to.
fn validate_volumes<'a>(vols: &'a [Value], prefix: &str, c: &mut Causes) -> HashSet<&'a str> {
    let mut names = HashSet::new();
    for (i, v) in vols.iter().enumerate() {
        let field = format!("{}[{i}].name", join(prefix, "volumes"));
        match v.get("name") {
            None | Some(Value::Null) => c.required(field, ""),
            Some(n) => {
                check_str(c, &field, n, dns_label);
                if let Some(s) = n.as_str()
                    && !names.insert(s)
                {
                    c.duplicate(field, n);
                }
            }
        }
    }
    names
}

fn validate_container<'a>(
    ctr: &'a Value,
    field: &str,
    volumes: &HashSet<&str>,
    names: &mut HashSet<&'a str>,
    c: &mut Causes,
) {
    match ctr.get("name").filter(|v| !v.is_null()) {
        None => c.required(join(field, "name"), ""),
        Some(n) => {
            check_str(c, &join(field, "name"), n, dns_label);
            if let Some(s) = n.as_str()
                && !names.insert(s)
            {
                c.duplicate(join(field, "name"), n);
            }
        }
    }
    if ctr
        .get("image")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        c.required(join(field, "image"), "");
    }
    validate_ports(items(ctr.get("ports")), field, c);
    for (i, e) in items(ctr.get("env")).iter().enumerate() {
        let f = format!("{field}.env[{i}].name");
        match e.get("name").filter(|v| !v.is_null()) {
            None => c.required(f, ""),
            Some(n) => check_str(c, &f, n, env_var_name),
        }
    }
    for (i, m) in items(ctr.get("volumeMounts")).iter().enumerate() {
        let f = format!("{field}.volumeMounts[{i}]");
        match m.get("name").filter(|v| !v.is_null()) {
            None => c.required(join(&f, "name"), ""),
            Some(n) if !n.as_str().is_some_and(|s| volumes.contains(s)) => {
                c.not_found(join(&f, "name"), n)
            }
            Some(_) => {}
        }
        if m.get("mountPath")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            c.required(join(&f, "mountPath"), "");
        }
    }
    if let Some(r) = ctr.get("resources") {
        validate_resources(r, &join(field, "resources"), c);
    }
}

fn validate_ports(ports: &[Value], field: &str, c: &mut Causes) {
    let mut names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let f = format!("{field}.ports[{i}]");
        match p.get("containerPort") {
            None | Some(Value::Null) => c.required(join(&f, "containerPort"), ""),
            Some(n) => super::values::port_number(c, join(&f, "containerPort"), n),
        }
        if let Some(h) = p
            .get("hostPort")
            .filter(|h| h.as_i64() != Some(0) && !h.is_null())
        {
            super::values::port_number(c, join(&f, "hostPort"), h);
        }
        if let Some(n) = p
            .get("name")
            .filter(|n| n.as_str().is_some_and(|s| !s.is_empty()))
        {
            check_str(c, &join(&f, "name"), n, port_name);
            if !names.insert(n.as_str().unwrap_or_default()) {
                c.duplicate(join(&f, "name"), n);
            }
        }
        if let Some(pr) = p.get("protocol").filter(|v| !v.is_null())
            && !pr.as_str().is_some_and(|s| PROTOCOLS.contains(&s))
        {
            c.not_supported(join(&f, "protocol"), pr, &PROTOCOLS);
        }
    }
}

/// Quantities parse, are not negative, and each request is at most its limit.
fn validate_resources(r: &Value, field: &str, c: &mut Causes) {
    for key in ["limits", "requests"] {
        let Some(m) = r.get(key).and_then(Value::as_object) else {
            continue;
        };
        for (name, q) in m {
            let f = || format!("{field}.{key}[{name}]");
            match q.as_str().and_then(quantity).or_else(|| q.as_f64()) {
                None => c.invalid(
                    f(),
                    q,
                    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                ),
                Some(n) if n < 0.0 => c.invalid(f(), q, "must be greater than or equal to 0"),
                Some(n) if key == "requests" => {
                    let limit = r.get("limits").and_then(|l| l.get(name));
                    let lim = limit.and_then(|l| l.as_str().and_then(quantity).or(l.as_f64()));
                    if let (Some(l), Some(lv)) = (lim, limit)
                        && n > l
                    {
                        let shown = lv.as_str().map_or_else(|| lv.to_string(), str::to_string);
                        c.invalid(
                            f(),
                            q,
                            &format!("must be less than or equal to {name} limit of {shown}"),
                        );
                    }
                }
                Some(_) => {}
            }
        }
    }
}
