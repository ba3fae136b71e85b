//! The field rules kube-apiserver enforces on the built-in kinds (pkg/apis/*/validation and
//! apimachinery's ObjectMeta rules), run on every write after the body or patch is applied. Every
//! broken rule becomes one [`Cause`] so the client sees all problems of an object at once; the
//! field path is only formatted when a rule fails, which keeps the happy path allocation-free.

mod apps;
mod autoscaling;
mod batch;
mod core;
mod duration;
pub mod meta;
mod networking;
mod pod;
mod policy;
mod rbac;
mod values;

use serde_json::Value;

pub use duration::go_duration;

use crate::error::Cause;

/// The causes of one object, collected with the field paths Kubernetes reports.
#[derive(Default)]
pub struct Causes(pub Vec<Cause>);

impl Causes {
    fn push(&mut self, field: String, reason: &'static str, message: String) {
        self.0.push(Cause {
            field,
            message,
            reason,
        });
    }

    /// `Invalid value: <value>: <detail>`.
    pub fn invalid(&mut self, field: String, value: &Value, detail: &str) {
        self.push(
            field,
            "FieldValueInvalid",
            format!("Invalid value: {}: {detail}", show(value)),
        );
    }

    /// `Required value[: detail]`.
    pub fn required(&mut self, field: String, detail: &str) {
        let message = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        self.push(field, "FieldValueRequired", message);
    }

    /// `Unsupported value: "x": supported values: "a", "b"`.
    pub fn not_supported(&mut self, field: String, value: &Value, allowed: &[&str]) {
        let list: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
        self.push(
            field,
            "FieldValueNotSupported",
            format!(
                "Unsupported value: {}: supported values: {}",
                show(value),
                list.join(", ")
            ),
        );
    }

    /// `Duplicate value: "x"`.
    pub fn duplicate(&mut self, field: String, value: &Value) {
        self.push(
            field,
            "FieldValueDuplicate",
            format!("Duplicate value: {}", show(value)),
        );
    }

    /// `Not found: "x"`.
    pub fn not_found(&mut self, field: String, value: &Value) {
        self.push(
            field,
            "FieldValueNotFound",
            format!("Not found: {}", show(value)),
        );
    }

    /// `Forbidden: <detail>`.
    pub fn forbidden(&mut self, field: String, detail: &str) {
        self.push(field, "FieldValueForbidden", format!("Forbidden: {detail}"));
    }

    /// `Too long: may not be more than <max> bytes`.
    pub fn too_long(&mut self, field: String, max: usize) {
        self.push(
            field,
            "FieldValueTooLong",
            format!("Too long: may not be more than {max} bytes"),
        );
    }

    /// `Invalid value: …: field is immutable` when `field` differs between the two objects.
    fn immutable(&mut self, old: &Value, new: &Value, path: &[&str]) {
        let (a, b) = (at(old, path), at(new, path));
        if a != b {
            self.invalid(
                path.join("."),
                b.unwrap_or(&Value::Null),
                "field is immutable",
            );
        }
    }
}

/// A value as Go's `%#v` roughly shows it: strings quoted, the rest as JSON.
fn show(v: &Value) -> String {
    v.to_string()
}

/// The value at a path of object keys.
pub fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .filter(|v| !v.is_null())
}

/// `prefix.field` (the field path of a nested value).
fn join(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_string()
    } else {
        format!("{prefix}.{field}")
    }
}

/// Every rule of the kind on a created or updated object: ObjectMeta's, then the kind's own.
pub fn validate(group: &str, plural: &str, obj: &Value, causes: &mut Vec<Cause>) {
    let mut c = Causes(std::mem::take(causes));
    meta::validate(group, plural, obj, &mut c);
    match (group, plural) {
        ("", "pods") => pod::validate_pod_spec(at(obj, &["spec"]), "spec", &mut c),
        ("", "configmaps") => core::validate_config_map(obj, &mut c),
        ("", "secrets") => core::validate_secret(obj, &mut c),
        ("", "services") => core::validate_service(obj, &mut c),
        ("", "namespaces") => core::validate_namespace(obj, &mut c),
        ("apps", _) => apps::validate(plural, obj, &mut c),
        ("batch", "jobs") => batch::validate_job(obj, &mut c),
        ("batch", "cronjobs") => batch::validate_cron_job(obj, &mut c),
        ("policy", "poddisruptionbudgets") => policy::validate_pdb(obj, &mut c),
        ("autoscaling", "horizontalpodautoscalers") => autoscaling::validate_hpa(obj, &mut c),
        ("networking.k8s.io", "ingresses") => networking::validate_ingress(obj, &mut c),
        ("networking.k8s.io", "networkpolicies") => {
            networking::validate_network_policy(obj, &mut c)
        }
        ("rbac.authorization.k8s.io", _) => rbac::validate(plural, obj, &mut c),
        _ => {}
    }
    *causes = c.0;
}

/// The rules that compare an update with the stored object (immutable fields).
pub fn validate_update(
    group: &str,
    plural: &str,
    old: &Value,
    new: &Value,
    causes: &mut Vec<Cause>,
) {
    let mut c = Causes(std::mem::take(causes));
    match (group, plural) {
        ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets") => {
            c.immutable(old, new, &["spec", "selector"])
        }
        ("", "services") => core::validate_service_update(old, new, &mut c),
        ("", "configmaps" | "secrets") => core::validate_immutable_data(old, new, &mut c),
        ("batch", "jobs") => c.immutable(old, new, &["spec", "selector"]),
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings")
            if at(old, &["roleRef"]) != at(new, &["roleRef"]) =>
        {
            c.invalid(
                "roleRef".into(),
                at(new, &["roleRef"]).unwrap_or(&Value::Null),
                "cannot change roleRef",
            );
        }
        _ => {}
    }
    *causes = c.0;
}

/// The rules only a create is judged by, some by release (`minor`).
fn validate_create(group: &str, plural: &str, minor: u32, obj: &Value, causes: &mut Vec<Cause>) {
    if (group, plural) == ("batch", "jobs") {
        let mut c = Causes(std::mem::take(causes));
        batch::validate_generated_selector(obj, minor, &mut c);
        *causes = c.0;
    }
}

/// The write path's hook: every rule on a new object, or on an update whose content (not only
/// metadata or status) changed plus the update rules, for a server of Kubernetes 1.`minor`.
/// 422 Invalid with all causes; nothing is written on failure.
pub fn check(
    res: &crate::registry::Resource,
    minor: u32,
    name: &str,
    old: Option<&Value>,
    new: &Value,
) -> crate::error::ApiResult<()> {
    let mut causes = Vec::new();
    match old {
        Some(old) if !content_changed(old, new) => {
            let mut c = Causes::default();
            meta::validate(&res.group, &res.plural, new, &mut c);
            causes = c.0;
        }
        Some(old) => {
            validate(&res.group, &res.plural, new, &mut causes);
            validate_update(&res.group, &res.plural, old, new, &mut causes);
        }
        None => {
            validate(&res.group, &res.plural, new, &mut causes);
            validate_create(&res.group, &res.plural, minor, new, &mut causes);
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(crate::error::ApiError::invalid(
            &res.kind, &res.group, name, causes,
        ))
    }
}

/// Whether anything but `metadata` and `status` differs (a status or finalizer write leaves an
/// object stored before these rules existed writable).
fn content_changed(old: &Value, new: &Value) -> bool {
    let (Some(a), Some(b)) = (old.as_object(), new.as_object()) else {
        return true;
    };
    let skip = |k: &str| matches!(k, "metadata" | "status" | "apiVersion" | "kind");
    a.iter()
        .filter(|(k, _)| !skip(k))
        .any(|(k, v)| b.get(k) != Some(v))
        || b.iter()
            .filter(|(k, _)| !skip(k))
            .any(|(k, _)| !a.contains_key(k))
}
