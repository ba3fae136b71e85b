//! admissionregistration.k8s.io/v1 defaults of the webhook configurations.

use serde_json::{Map, Value};

use super::{D, child, each, fill};

pub(super) fn apply(plural: &str, root: &mut Map<String, Value>) {
    let mutating = match plural {
        "mutatingwebhookconfigurations" => true,
        "validatingwebhookconfigurations" => false,
        _ => return,
    };
    for webhook in each(root, "webhooks") {
        fill(
            webhook,
            &[
                ("failurePolicy", D::PtrStr("Fail")),
                ("matchPolicy", D::PtrStr("Equivalent")),
                ("namespaceSelector", D::Obj),
                ("objectSelector", D::Obj),
                ("timeoutSeconds", D::Int(10)),
            ],
        );
        if mutating {
            fill(webhook, &[("reinvocationPolicy", D::PtrStr("Never"))]);
        }
        for rule in each(webhook, "rules") {
            fill(rule, &[("scope", D::PtrStr("*"))]);
        }
        if let Some(service) = child(webhook, "clientConfig").and_then(|c| child(c, "service")) {
            fill(service, &[("port", D::Int(443))]);
        }
    }
}
