//! API versions: at which version each kind is read from blue and written to green, and whether
//! an object whose version green no longer serves converts without loss.
//!
//! Green's versions come from its discovery or, before green exists, from the OpenAPI data of
//! the target release ([`ServedVersions::of_release`]). A conversion is taken only when the data
//! says it is lossless: the two releases' definitions of the kind are the same once descriptions
//! and group-version-kind lists are set aside (and `status`, which never moves). Anything else is
//! blocked, and [`crate::apply`] refuses the whole plan before it writes anything.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use kube::Client;
use kube::discovery::Discovery;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The versions a cluster (or a release) serves, per group and kind, preferred first.
#[derive(Clone, Debug, Default)]
pub struct ServedVersions {
    /// The Kubernetes minor version, when known: the release whose schemas describe it.
    pub minor: Option<u32>,
    /// Where the versions came from, for messages.
    pub source: String,
    kinds: BTreeMap<(String, String), Vec<String>>,
}

/// Kubernetes version priority: GA > beta > alpha, then by number (as kube-apiserver sorts).
pub(crate) fn version_priority(v: &str) -> (u8, u32, u32) {
    let digits = |s: &str| -> (u32, usize) {
        let d: String = s.chars().take_while(char::is_ascii_digit).collect();
        (d.parse().unwrap_or(0), d.len())
    };
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let (major, len) = digits(rest);
    let tail = &rest[len..];
    if tail.is_empty() {
        (3, major, 0)
    } else if let Some(b) = tail.strip_prefix("beta") {
        (2, major, digits(b).0)
    } else if let Some(a) = tail.strip_prefix("alpha") {
        (1, major, digits(a).0)
    } else {
        (0, major, 0)
    }
}

fn sort_by_priority(versions: &mut [String]) {
    versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
}

/// `Kind` for the core group, `Kind.group` otherwise.
pub(crate) fn kind_group(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    }
}

fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

impl ServedVersions {
    /// What Kubernetes 1.`minor` serves by default, from its OpenAPI definitions: every
    /// group/version/kind it defines but alpha versions (off unless a feature gate is set).
    pub fn of_release(minor: u32) -> Result<Self, String> {
        let spec = rotor_openapi::spec(minor).map_err(|e| e.to_string())?;
        let mut kinds: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for schema in spec.definitions().values() {
            let gvks = schema
                .get("x-kubernetes-group-version-kind")
                .and_then(Value::as_array);
            // Kinds defined once per group/version (DeleteOptions, WatchEvent…) are no resource.
            let Some([gvk]) = gvks.map(Vec::as_slice) else {
                continue;
            };
            let s = |k: &str| gvk.get(k).and_then(Value::as_str).unwrap_or_default();
            if version_priority(s("version")).0 == 1 {
                continue;
            }
            let versions = kinds
                .entry((s("group").into(), s("kind").into()))
                .or_default();
            if !versions.iter().any(|v| v == s("version")) {
                versions.push(s("version").into());
            }
        }
        kinds.values_mut().for_each(|v| sort_by_priority(v));
        Ok(ServedVersions {
            minor: Some(minor),
            source: format!("Kubernetes 1.{minor}'s OpenAPI definitions"),
            kinds,
        })
    }

    /// What a live cluster serves, by its discovery (aggregated when it has it), and its
    /// release from `/version`.
    pub async fn discover(client: &Client, who: &str) -> Result<Self, kube::Error> {
        let discovery = match Discovery::new(client.clone()).run_aggregated().await {
            Ok(d) => d,
            Err(_) => Discovery::new(client.clone()).run().await?,
        };
        let mut kinds: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for group in discovery.groups() {
            // Preferred first, then the others in priority order.
            let mut versions: Vec<&str> = group.preferred_version().into_iter().collect();
            versions.extend(
                group
                    .versions()
                    .filter(|v| Some(*v) != group.preferred_version()),
            );
            for v in versions {
                for (ar, _) in group.versioned_resources(v) {
                    if ar.plural.contains('/') {
                        continue;
                    }
                    let served = kinds
                        .entry((ar.group.clone(), ar.kind.clone()))
                        .or_default();
                    if !served.contains(&ar.version) {
                        served.push(ar.version.clone());
                    }
                }
            }
        }
        let info = client.apiserver_version().await?;
        let minor = info
            .minor
            .trim_end_matches('+')
            .parse()
            .ok()
            .filter(|_| info.major == "1");
        Ok(ServedVersions {
            minor,
            source: format!("{who}'s discovery"),
            kinds,
        })
    }

    /// The versions of a group/kind served, preferred first (empty when none is).
    pub fn versions(&self, group: &str, kind: &str) -> &[String] {
        self.kinds
            .get(&(group.to_string(), kind.to_string()))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Adds versions that will be served by the time the objects are written (a CRD that
    /// moves earlier in the plan).
    pub(crate) fn add(&mut self, group: &str, kind: &str, versions: &[String]) {
        let served = self
            .kinds
            .entry((group.to_string(), kind.to_string()))
            .or_default();
        for v in versions {
            if !served.contains(v) {
                served.push(v.clone());
            }
        }
    }

    /// `Kubernetes 1.32`, or who it is when the release is unknown.
    pub fn target(&self) -> String {
        match self.minor {
            Some(m) => format!("Kubernetes 1.{m}"),
            None => "green".to_string(),
        }
    }
}

/// What happens to the objects of one kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum VersionChoice {
    /// Green serves the version blue is read at.
    Ok { version: String },
    /// Green serves none of blue's versions but `to` holds the same fields as `from`: read at
    /// `from`, written at `to`.
    Convert { from: String, to: String },
    /// Green cannot take these objects; nothing is applied while any is blocked.
    Blocked {
        /// The version blue is read at.
        version: String,
        reason: String,
    },
}

impl VersionChoice {
    /// The version blue is read at.
    pub fn read_version(&self) -> &str {
        match self {
            VersionChoice::Ok { version } | VersionChoice::Blocked { version, .. } => version,
            VersionChoice::Convert { from, .. } => from,
        }
    }

    pub fn is_blocked(&self) -> bool {
        matches!(self, VersionChoice::Blocked { .. })
    }
}

impl std::fmt::Display for VersionChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VersionChoice::Ok { version } => write!(f, "ok ({version})"),
            VersionChoice::Convert { from, to } => write!(f, "convert ({from} → {to})"),
            VersionChoice::Blocked { version, reason } => {
                write!(f, "blocked ({version}: {reason})")
            }
        }
    }
}

/// Chooses the version of `group`/`kind` to read from blue (which serves `blue_versions`,
/// preferred first, and is Kubernetes 1.`blue_minor`) and to write to `green`: a version both
/// serve (green's preferred first); else a lossless conversion to a version green serves; else
/// blocked, with the reason.
pub fn choose(
    group: &str,
    kind: &str,
    blue_versions: &[String],
    blue_minor: Option<u32>,
    green: &ServedVersions,
) -> VersionChoice {
    let preferred = blue_versions.first().cloned().unwrap_or_default();
    let green_versions = green.versions(group, kind);
    if let Some(v) = green_versions.iter().find(|v| blue_versions.contains(v)) {
        return VersionChoice::Ok { version: v.clone() };
    }
    let target = green.target();
    let what = kind_group(group, kind);
    if green_versions.is_empty() {
        return VersionChoice::Blocked {
            version: preferred,
            reason: format!("{target} serves no version of {what}"),
        };
    }
    let (Some(bm), Some(gm)) = (blue_minor, green.minor) else {
        return VersionChoice::Blocked {
            version: preferred,
            reason: format!(
                "{target} serves {what} only at {}; blue's release is unknown, so no conversion \
                 can be checked",
                green_versions.join(", ")
            ),
        };
    };
    // The first refusal (blue's preferred → green's preferred) stands for the others.
    let mut why = None;
    for from in blue_versions {
        for to in green_versions {
            match lossless(group, kind, (bm, from), (gm, to)) {
                Ok(()) => {
                    return VersionChoice::Convert {
                        from: from.clone(),
                        to: to.clone(),
                    };
                }
                Err(e) => {
                    why.get_or_insert_with(|| format!("{from} → {to} would not be lossless: {e}"));
                }
            }
        }
    }
    let others = if blue_versions.len() * green_versions.len() > 1 {
        " (nor any other pair of versions)"
    } else {
        ""
    };
    VersionChoice::Blocked {
        version: preferred,
        reason: format!(
            "{target} serves it only at {}; {}{others}",
            green_versions.join(", "),
            why.unwrap_or_default()
        ),
    }
}

/// Whether objects of `kind` at `from` (release 1.`from.0`) convert without loss to `to`
/// (release 1.`to.0`): the two definitions are structurally the same. The error names the
/// fields that differ.
pub fn lossless(group: &str, kind: &str, from: (u32, &str), to: (u32, &str)) -> Result<(), String> {
    let shape_of = |(minor, version): (u32, &str)| -> Result<Value, String> {
        let spec = rotor_openapi::spec(minor).map_err(|e| e.to_string())?;
        let name = spec.definition_name(group, version, kind).ok_or_else(|| {
            format!(
                "Kubernetes 1.{minor} defines no {} {kind}",
                api_version(group, version)
            )
        })?;
        let def = spec.definition(name).cloned().unwrap_or(Value::Null);
        let mut shape = shape(&spec, &def, &mut Vec::new());
        if let Some(p) = shape.get_mut("properties").and_then(Value::as_object_mut) {
            // Never migrated (sanitize drops it); green's controllers write their own.
            p.remove("status");
        }
        Ok(shape)
    };
    let (a, b) = (shape_of(from)?, shape_of(to)?);
    if a == b {
        return Ok(());
    }
    let mut diffs = Vec::new();
    diff(&a, &b, "", &mut diffs);
    // What would be lost first, then what changed, then what the target adds.
    diffs.sort_by_key(|(_, d)| match d {
        Diff::OnlyIn(true) => 0,
        Diff::Differs => 1,
        Diff::OnlyIn(false) => 2,
    });
    let (fa, fb) = (
        format!("1.{} {}", from.0, from.1),
        format!("1.{} {}", to.0, to.1),
    );
    let shown: Vec<String> = diffs
        .iter()
        .take(5)
        .map(|(path, d)| {
            let path = if path.is_empty() { "(root)" } else { path };
            match d {
                Diff::OnlyIn(true) => format!("{path} only in {fa}"),
                Diff::OnlyIn(false) => format!("{path} only in {fb}"),
                Diff::Differs => format!("{path} differs"),
            }
        })
        .collect();
    let mut out = shown.join(", ");
    if diffs.len() > shown.len() {
        let _ = write!(out, " and {} more", diffs.len() - shown.len());
    }
    Err(out)
}

/// A definition with its `$ref`s resolved (but to apimachinery's shared types, kept by name),
/// without descriptions and group-version-kind lists. A type that refers to itself is cut at
/// the second visit.
fn shape(spec: &rotor_openapi::Spec, v: &Value, stack: &mut Vec<String>) -> Value {
    match v {
        Value::Object(m) => {
            if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                let name = r.rsplit('/').next().unwrap_or_default().to_string();
                // Names carry the version (io.k8s.api.flowcontrol.v1beta3.…): compare the types.
                let short = name.rsplit('.').next().unwrap_or_default().to_string();
                if name.starts_with("io.k8s.apimachinery") {
                    return Value::from(name);
                }
                if stack.contains(&name) {
                    return serde_json::json!({ "$recursive": short });
                }
                let Some(def) = spec.definition(&name) else {
                    return serde_json::json!({ "$missing": short });
                };
                stack.push(name);
                let out = shape(spec, def, stack);
                stack.pop();
                return out;
            }
            let out: Map<String, Value> = m
                .iter()
                .filter(|(k, _)| *k != "description" && *k != "x-kubernetes-group-version-kind")
                .map(|(k, x)| (k.clone(), shape(spec, x, stack)))
                .collect();
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| shape(spec, x, stack)).collect()),
        other => other.clone(),
    }
}

enum Diff {
    /// Present only in the first (true) or the second (false).
    OnlyIn(bool),
    Differs,
}

/// Field paths (`spec.limited.assuredConcurrencyShares`) where two shapes differ.
fn diff(a: &Value, b: &Value, path: &str, out: &mut Vec<(String, Diff)>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                // Schema keywords stay out of the path; property names go in.
                let sub = match k.as_str() {
                    "properties" | "additionalProperties" => path.to_string(),
                    "items" => format!("{path}[]"),
                    _ => join(k),
                };
                let in_properties = matches!(k.as_str(), "properties");
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) if in_properties => {
                        if let (Value::Object(p), Value::Object(q)) = (p, q) {
                            let names: BTreeSet<&String> = p.keys().chain(q.keys()).collect();
                            for n in names {
                                match (p.get(n), q.get(n)) {
                                    (Some(u), Some(v)) => diff(u, v, &join(n), out),
                                    (Some(_), None) => out.push((join(n), Diff::OnlyIn(true))),
                                    (None, _) => out.push((join(n), Diff::OnlyIn(false))),
                                }
                            }
                        }
                    }
                    (Some(p), Some(q)) => diff(p, q, &sub, out),
                    (Some(_), None) => out.push((sub, Diff::OnlyIn(true))),
                    (None, _) => out.push((sub, Diff::OnlyIn(false))),
                }
            }
        }
        _ if a == b => {}
        _ => out.push((path.to_string(), Diff::Differs)),
    }
}

/// The versions each custom kind will be served at once its CRD is applied: (group, kind) →
/// served versions, from CRD objects.
pub(crate) fn crd_versions<'a>(
    crds: impl Iterator<Item = &'a Value>,
) -> Vec<(String, String, Vec<String>)> {
    let mut out = Vec::new();
    for crd in crds {
        let s = |p: &str| crd.pointer(p).and_then(Value::as_str).unwrap_or_default();
        let (group, kind) = (s("/spec/group"), s("/spec/names/kind"));
        let mut versions: Vec<String> = crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|v| v.get("served").and_then(Value::as_bool) != Some(false))
            .filter_map(|v| v.get("name").and_then(Value::as_str).map(String::from))
            .collect();
        sort_by_priority(&mut versions);
        if let Some(storage) = webhook_storage(crd) {
            versions.retain(|v| v != &storage);
            versions.insert(0, storage);
        }
        if !group.is_empty() && !kind.is_empty() {
            out.push((group.to_string(), kind.to_string(), versions));
        }
    }
    out
}

/// The storage version of a CRD whose versions are converted by a webhook.
fn webhook_storage(crd: &Value) -> Option<String> {
    if crd
        .pointer("/spec/conversion/strategy")
        .and_then(Value::as_str)
        != Some("Webhook")
    {
        return None;
    }
    crd.pointer("/spec/versions")?
        .as_array()?
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))?
        .get("name")?
        .as_str()
        .map(String::from)
}

/// (group, kind) → storage version of every CRD converted by a webhook.
pub(crate) fn webhook_storage_versions<'a>(
    crds: impl Iterator<Item = &'a Value>,
) -> HashMap<(String, String), String> {
    crds.filter_map(|crd| {
        let s = |p: &str| crd.pointer(p).and_then(Value::as_str).map(String::from);
        Some((
            (s("/spec/group")?, s("/spec/names/kind")?),
            webhook_storage(crd)?,
        ))
    })
    .collect()
}

/// An object green cannot take at any version rotor can convert it to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockedObject {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    /// The apiVersion it has in blue.
    pub api_version: String,
    /// `Kubernetes 1.32` (or `green` when its release is unknown).
    pub target: String,
    pub reason: String,
}

impl std::fmt::Display for BlockedObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        };
        write!(
            f,
            "{} {name} ({}) cannot move to {}: {}",
            self.kind, self.api_version, self.target, self.reason
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FC: &str = "flowcontrol.apiserver.k8s.io";

    #[test]
    fn version_priority_orders_like_kubernetes() {
        let mut v: Vec<String> = ["v1alpha1", "v2", "v1beta2", "v1", "v1beta10", "v1beta1"]
            .map(String::from)
            .to_vec();
        sort_by_priority(&mut v);
        assert_eq!(
            v,
            ["v2", "v1", "v1beta10", "v1beta2", "v1beta1", "v1alpha1"]
        );
    }

    #[test]
    fn releases_serve_what_they_define() {
        let r25 = ServedVersions::of_release(25).unwrap();
        assert_eq!(
            r25.versions("autoscaling", "HorizontalPodAutoscaler"),
            ["v2", "v1", "v2beta2"]
        );
        let r32 = ServedVersions::of_release(32).unwrap();
        assert_eq!(r32.versions(FC, "FlowSchema"), ["v1"]);
        assert_eq!(r32.versions("apps", "Deployment"), ["v1"]);
        // Alpha versions are off by default.
        let r28 = ServedVersions::of_release(28).unwrap();
        assert_eq!(
            r28.versions("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
            ["v1beta1"]
        );
        assert!(ServedVersions::of_release(24).is_err());
    }

    #[test]
    fn choices_follow_the_data() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let r32 = ServedVersions::of_release(32).unwrap();
        // Both serve apps/v1.
        assert_eq!(
            choose("apps", "Deployment", &v(&["v1"]), Some(28), &r32),
            VersionChoice::Ok {
                version: "v1".into()
            }
        );
        // 1.28's v1beta3 FlowSchema is 1.32's v1 field for field.
        assert_eq!(
            choose(
                FC,
                "FlowSchema",
                &v(&["v1beta3", "v1beta2"]),
                Some(28),
                &r32
            ),
            VersionChoice::Convert {
                from: "v1beta3".into(),
                to: "v1".into()
            }
        );
        // 1.25's PriorityLevelConfiguration has assuredConcurrencyShares, v1 does not.
        let c = choose(
            FC,
            "PriorityLevelConfiguration",
            &v(&["v1beta2", "v1beta1"]),
            Some(25),
            &r32,
        );
        let VersionChoice::Blocked { reason, version } = &c else {
            panic!("{c:?}")
        };
        assert_eq!(version, "v1beta2");
        assert!(
            reason.contains("spec.limited.assuredConcurrencyShares only in 1.25 v1beta2"),
            "{reason}"
        );
        assert!(reason.contains("Kubernetes 1.32"), "{reason}");
        // A kind the target does not serve at all.
        let c = choose(
            "policy",
            "PodSecurityPolicy",
            &v(&["v1beta1"]),
            Some(25),
            &r32,
        );
        assert!(
            matches!(&c, VersionChoice::Blocked { reason, .. } if reason.contains("serves no version of PodSecurityPolicy.policy")),
            "{c:?}"
        );
    }
}
