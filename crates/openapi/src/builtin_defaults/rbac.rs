//! rbac.authorization.k8s.io/v1 defaults: the API group of role references and subjects.

use serde_json::{Map, Value};

use super::{D, child, each, fill, str_of};

const GROUP: &str = "rbac.authorization.k8s.io";

pub(super) fn apply(plural: &str, root: &mut Map<String, Value>) {
    if !matches!(plural, "rolebindings" | "clusterrolebindings") {
        return;
    }
    if let Some(role_ref) = child(root, "roleRef") {
        fill(role_ref, &[("apiGroup", D::Str(GROUP))]);
    }
    for subject in each(root, "subjects") {
        if matches!(str_of(subject, "kind"), "User" | "Group") {
            fill(subject, &[("apiGroup", D::Str(GROUP))]);
        }
    }
}
