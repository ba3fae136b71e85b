//! Server-side apply refuses a body's wrong types before it looks for conflicts, as upstream
//! decodes the body into the kind first: a field that both has the wrong type and is owned by
//! another manager gets the type error (400 in Go's decoder words), not a 409 conflict.

use crate::common;

const CM: &str = "/api/v1/namespaces/default/configmaps/web";
const APPLY: &str = "application/apply-patch+yaml";

#[tokio::test]
async fn a_wrong_type_is_refused_before_a_conflict() {
    let (server, _) = common::server().await;
    let first = r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web"}, "data": {"port": "80"}}"#;
    let (code, reply) = common::send(
        &server,
        "PATCH",
        &format!("{CM}?fieldManager=a"),
        APPLY,
        first.into(),
    )
    .await;
    assert_eq!(code, 201, "{reply}");
    // Another manager, a different string value: a conflict.
    let other = first.replace("\"80\"", "\"81\"");
    let (code, reply) = common::send(
        &server,
        "PATCH",
        &format!("{CM}?fieldManager=b"),
        APPLY,
        other.into_bytes(),
    )
    .await;
    assert_eq!(code, 409, "{reply}");
    // Another manager, a number: the type error, whatever the ownership.
    let typed = first.replace("\"80\"", "8080");
    let (code, reply) = common::send(
        &server,
        "PATCH",
        &format!("{CM}?fieldManager=b"),
        APPLY,
        typed.into_bytes(),
    )
    .await;
    assert_eq!(code, 400, "{reply}");
    let message = reply["message"].as_str().unwrap_or_default();
    assert!(
        message
            .contains("cannot unmarshal number into Go struct field ConfigMap.data of type string"),
        "{message}"
    );
}
