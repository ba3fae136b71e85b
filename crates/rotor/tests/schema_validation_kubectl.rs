//! The real kubectl against a `rotor serve` process: a wrong type is refused whatever
//! `--validate` says (it only decides about unknown fields), with kube-apiserver's words, and
//! nothing is written; rotor's Cluster schema refuses an unknown provider.

use crate::common;

use common::kubectl::{CLUSTER_YAML, Kubectl, free_port, start_serve};

const BAD_CONFIGMAP: &str = "apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: default}
data:
  port: 8080
";

/// `kubectl apply -f` of `yaml` with `validate`; must fail, returns stderr.
fn apply_refused(k: &Kubectl, dir: &std::path::Path, yaml: &str, validate: &str) -> String {
    let file = dir.join("object.yaml");
    std::fs::write(&file, yaml).expect("write");
    let flag = format!("--validate={validate}");
    let out = k.run(&["apply", &flag, "-f", file.to_str().expect("path")]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{validate}: applied: {out:?}");
    stderr
}

#[test]
fn kubectl_apply_of_a_wrong_type_is_refused_at_every_validate_level() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kc = dir.path().join("admin.kubeconfig");
    let store = format!("sqlite:{}", dir.path().join("rotor.db").display());
    let listen = format!("127.0.0.1:{}", free_port());
    let (_serve, k) = start_serve(&store, &listen, &kc);

    for validate in ["false", "warn", "strict"] {
        let stderr = apply_refused(&k, dir.path(), BAD_CONFIGMAP, validate);
        assert!(
            stderr.contains(
                "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: json: cannot \
                 unmarshal number into Go struct field ConfigMap.data of type string"
            ),
            "{validate}: {stderr}"
        );
        k.not_found(&["get", "configmap", "cfg", "-n", "default"]);
    }

    let aws = CLUSTER_YAML.replace("provider: sim", "provider: AWS");
    assert_ne!(aws, CLUSTER_YAML);
    for validate in ["false", "strict"] {
        let stderr = apply_refused(&k, dir.path(), &aws, validate);
        assert!(
            stderr.contains(
                "spec.provider: Unsupported value: \"AWS\": supported values: \"aws\", \"azure\", \"gcp\", \"sim\""
            ),
            "{validate}: {stderr}"
        );
        k.not_found(&["get", "clusters.rotor.dev", "prod-sim-a"]);
    }
}
