//! `kubectl explain` with the real kubectl (1.27, the first to read OpenAPI v3 for it, and 1.35)
//! against `rotor sim` (behind its `/clusters/NAME` prefix) and `rotor serve`: built-in kinds
//! carry upstream's descriptions, and IntOrString fields show as `<IntOrString>` as on a real
//! cluster; rotor's own kinds carry the descriptions of their CRDs.

use crate::common;

use common::kubectl::{Kubectl, serve_sqlite, start_sim};

/// `kubectl explain FIELD` through `k`, asserting each of `expected` is in what it prints.
fn explains(k: &Kubectl, field: &str, expected: &[&str]) {
    let out = k.ok(&["explain", field]);
    for e in expected {
        assert!(
            out.contains(e),
            "`kubectl explain {field}` lacks {e:?}:\n{out}"
        );
    }
    assert!(
        !out.contains("<empty>"),
        "`kubectl explain {field}`:\n{out}"
    );
}

/// What a user sees of the built-in kinds, through the default kubectl and both versioned ones.
fn builtins_are_explained(k: &Kubectl) {
    let kubectls: Vec<Kubectl> = [27, 35].iter().filter_map(|m| k.versioned(*m)).collect();
    for k in std::iter::once(k).chain(&kubectls) {
        explains(
            k,
            "deployment.spec.replicas",
            &["<integer>", "Number of desired pods."],
        );
        explains(
            k,
            "deployment.spec.strategy.rollingUpdate.maxSurge",
            &[
                "<IntOrString>",
                "The maximum number of pods that can be scheduled",
            ],
        );
        explains(
            k,
            "service.spec.ports.targetPort",
            &["<IntOrString>", "Number or name of the port"],
        );
        explains(
            k,
            "deployment.spec",
            &[
                "DeploymentSpec is the specification",
                "strategy\t<DeploymentStrategy>",
            ],
        );
        explains(k, "configmap", &["ConfigMap holds configuration data"]);
    }
    // The OpenAPI v2 form (gnostic protobuf) carries them too; v2 has no IntOrString type.
    let v2 = k.ok(&[
        "explain",
        "deployment.spec.strategy.rollingUpdate",
        "--output",
        "plaintext-openapiv2",
    ]);
    assert!(v2.contains("maxSurge\t<string>"), "{v2}");
    assert!(
        v2.contains("Spec to control the desired behavior of rolling update."),
        "{v2}"
    );
}

#[test]
fn explain_prints_upstream_descriptions_on_the_simulator() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_sim, k) = start_sim(dir.path(), 1, &[]);
    builtins_are_explained(&k);
}

#[test]
fn explain_prints_upstream_and_crd_descriptions_on_rotor_serve() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_serve, k) = serve_sqlite(&dir.path().join("rotor.db"), &dir.path().join("kc"), &[]);
    builtins_are_explained(&k);
    let out = k.ok(&["explain", "clusters.spec.region"]);
    assert!(out.contains("<string>"), "{out}");
    assert!(
        !out.contains("<no description>") && !out.contains("<empty>"),
        "{out}"
    );
}
