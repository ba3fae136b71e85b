//! apps/v1 defaults (pkg/apis/apps/v1/defaults.go).

use serde_json::{Map, Value};

use super::{D, ensure, fill, pod, str_of};

pub(super) fn apply(plural: &str, minor: u32, root: &mut Map<String, Value>) {
    // Only the kinds with a spec get one: a ControllerRevision has none (a `spec: {}` added to
    // it is an unknown field, which Strict field validation refuses).
    if !matches!(
        plural,
        "deployments" | "statefulsets" | "daemonsets" | "replicasets"
    ) {
        return;
    }
    let Some(spec) = ensure(root, "spec") else {
        return;
    };
    match plural {
        "deployments" => deployment(spec),
        "statefulsets" => stateful_set(spec, minor),
        "daemonsets" => daemon_set(spec),
        "replicasets" => fill(spec, &[("replicas", D::Int(1))]),
        _ => return,
    }
    pod::template_at(spec, "template");
}

fn deployment(spec: &mut Map<String, Value>) {
    fill(
        spec,
        &[
            ("replicas", D::Int(1)),
            ("revisionHistoryLimit", D::Int(10)),
            ("progressDeadlineSeconds", D::Int(600)),
        ],
    );
    let Some(strategy) = ensure(spec, "strategy") else {
        return;
    };
    fill(strategy, &[("type", D::Str("RollingUpdate"))]);
    if str_of(strategy, "type") == "RollingUpdate"
        && let Some(rolling) = ensure(strategy, "rollingUpdate")
    {
        fill(
            rolling,
            &[
                ("maxUnavailable", D::PtrStr("25%")),
                ("maxSurge", D::PtrStr("25%")),
            ],
        );
    }
}

fn stateful_set(spec: &mut Map<String, Value>, minor: u32) {
    fill(
        spec,
        &[
            ("podManagementPolicy", D::Str("OrderedReady")),
            ("replicas", D::Int(1)),
            ("revisionHistoryLimit", D::Int(10)),
        ],
    );
    if let Some(strategy) = ensure(spec, "updateStrategy") {
        // Only a defaulted type brings a defaulted rollingUpdate; an explicit RollingUpdate
        // without one stays without (upstream's order of checks).
        if str_of(strategy, "type").is_empty() {
            strategy.insert("type".into(), "RollingUpdate".into());
            ensure(strategy, "rollingUpdate");
        }
        if str_of(strategy, "type") == "RollingUpdate"
            && let Some(rolling) = strategy
                .get_mut("rollingUpdate")
                .and_then(Value::as_object_mut)
        {
            fill(rolling, &[("partition", D::Int(0))]);
        }
    }
    // StatefulSetAutoDeletePVC: beta (on by default) from 1.27.
    if minor >= 27
        && let Some(policy) = ensure(spec, "persistentVolumeClaimRetentionPolicy")
    {
        fill(
            policy,
            &[
                ("whenDeleted", D::Str("Retain")),
                ("whenScaled", D::Str("Retain")),
            ],
        );
    }
    for claim in super::each(spec, "volumeClaimTemplates") {
        if let Some(claim_spec) = ensure(claim, "spec") {
            fill(claim_spec, &[("volumeMode", D::PtrStr("Filesystem"))]);
        }
        if let Some(status) = ensure(claim, "status") {
            fill(status, &[("phase", D::Str("Pending"))]);
        }
    }
}

fn daemon_set(spec: &mut Map<String, Value>) {
    fill(spec, &[("revisionHistoryLimit", D::Int(10))]);
    let Some(strategy) = ensure(spec, "updateStrategy") else {
        return;
    };
    fill(strategy, &[("type", D::Str("RollingUpdate"))]);
    if str_of(strategy, "type") == "RollingUpdate"
        && let Some(rolling) = ensure(strategy, "rollingUpdate")
    {
        fill(
            rolling,
            &[("maxUnavailable", D::Int(1)), ("maxSurge", D::Int(0))],
        );
    }
}
