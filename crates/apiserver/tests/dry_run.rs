//! A dry run is judged as the real request would be, and stores nothing: a create of a name
//! already taken is 409 AlreadyExists, as upstream's dry run goes as far as storage.

mod common;

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
