//! Creates judged as upstream judges them: a dry run goes as far as storage (a name taken is 409
//! AlreadyExists) and stores nothing; a create carrying a resourceVersion is refused.

use crate::common;

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const JSON: &str = "application/json";

#[tokio::test]
async fn a_dry_run_create_of_a_taken_name_is_refused_and_a_new_one_is_not_stored() {
    let (server, _) = common::server().await;
    let cm = |name: &str| {
        format!(r#"{{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {{"name": "{name}"}}}}"#)
            .into_bytes()
    };
    let (code, reply) = common::send(&server, "POST", CMS, JSON, cm("web")).await;
    assert_eq!(code, 201, "{reply}");
    let dry = format!("{CMS}?dryRun=All");
    let (code, reply) = common::send(&server, "POST", &dry, JSON, cm("web")).await;
    assert_eq!(code, 409, "{reply}");
    assert_eq!(reply["reason"], "AlreadyExists", "{reply}");
    let (code, reply) = common::send(&server, "POST", &dry, JSON, cm("new")).await;
    assert_eq!(code, 201, "{reply}");
    let (code, _) = common::send(&server, "GET", &format!("{CMS}/new"), JSON, Vec::new()).await;
    assert_eq!(code, 404);
}

/// A create that carries a resourceVersion (an object piped from `kubectl get`) is refused as
/// kube-apiserver's storage refuses it: 500 with its message, whether POST or apply.
#[tokio::test]
async fn a_create_with_a_resource_version_is_refused() {
    let (server, _) = common::server().await;
    let body = br#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "copied", "resourceVersion": "42"}}"#;
    let (code, reply) = common::send(&server, "POST", CMS, JSON, body.to_vec()).await;
    assert_eq!(code, 500, "{reply}");
    assert_eq!(
        reply["message"],
        "resourceVersion should not be set on objects to be created"
    );
    let apply = format!("{CMS}/copied?fieldManager=t");
    let (code, reply) = common::send(
        &server,
        "PATCH",
        &apply,
        "application/apply-patch+yaml",
        body.to_vec(),
    )
    .await;
    assert_eq!(code, 500, "{reply}");
    let (code, _) = common::send(&server, "GET", &format!("{CMS}/copied"), JSON, Vec::new()).await;
    assert_eq!(code, 404);
}
