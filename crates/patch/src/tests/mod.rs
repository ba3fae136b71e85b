//! Tests with realistic Kubernetes objects, over a hand-built schema.

mod apply;
mod merge;
mod props;
mod strategic;

use crate::{FieldInfo, SchemaCursor};

/// A tiny stand-in for the OpenAPI cursor: the position is the list of property names from the
/// root (`[]` for list elements); the semantics come from the last names, as in the Kubernetes
/// schemas for Deployments, Pods and Services.
#[derive(Debug, Clone, Default)]
pub(crate) struct TestSchema {
    path: Vec<String>,
}

pub(crate) fn schema() -> TestSchema {
    TestSchema::default()
}

fn map_list(strategy: &str, merge_key: &str, keys: &[&str]) -> FieldInfo {
    FieldInfo {
        patch_strategy: Some(strategy.to_owned()),
        patch_merge_key: Some(merge_key.to_owned()),
        list_type: Some("map".to_owned()),
        list_map_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        map_type: None,
    }
}

impl SchemaCursor for TestSchema {
    fn field(&self, name: &str) -> Option<Self> {
        let mut path = self.path.clone();
        path.push(name.to_owned());
        Some(TestSchema { path })
    }

    fn items(&self) -> Option<Self> {
        let mut path = self.path.clone();
        path.push("[]".to_owned());
        Some(TestSchema { path })
    }

    fn info(&self) -> FieldInfo {
        let last: Vec<&str> = self.path.iter().rev().take(3).map(String::as_str).collect();
        match last.as_slice() {
            ["containers" | "initContainers", ..] => map_list("merge", "name", &["name"]),
            ["env", ..] => map_list("merge", "name", &["name"]),
            ["volumes", ..] => map_list("merge,retainKeys", "name", &["name"]),
            ["volumeMounts", ..] => map_list("merge", "mountPath", &["mountPath"]),
            ["ports", "[]", "containers" | "initContainers"] => {
                map_list("merge", "containerPort", &["containerPort", "protocol"])
            }
            ["ports", "spec", ..] => map_list("merge", "port", &["port", "protocol"]),
            ["finalizers", "metadata", ..] => FieldInfo {
                patch_strategy: Some("merge".to_owned()),
                list_type: Some("set".to_owned()),
                ..FieldInfo::default()
            },
            ["args" | "command", ..] => FieldInfo {
                list_type: Some("atomic".to_owned()),
                ..FieldInfo::default()
            },
            ["selector", "spec", ..] => FieldInfo {
                map_type: Some("atomic".to_owned()),
                ..FieldInfo::default()
            },
            ["strategy", "spec", ..] => FieldInfo {
                patch_strategy: Some("retainKeys".to_owned()),
                ..FieldInfo::default()
            },
            _ => FieldInfo::default(),
        }
    }
}

/// A Deployment as `kubectl create` would store it.
pub(crate) fn deployment() -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "nginx",
                            "image": "nginx:1.25",
                            "args": ["-g", "daemon off;"],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}]
                        },
                        {"name": "sidecar", "image": "busybox:1"}
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}]
                }
            }
        }
    })
}
