//! `SelfSubjectReview` (authentication.k8s.io): the user a request authenticated as, which
//! `kubectl auth whoami` asks for. v1 since 1.28; kubectl 1.27 asks v1beta1, older v1alpha1,
//! and newer ones fall back to those on 404 — so all three are answered.

use http::Method;
use serde_json::{Value, json};

use super::UserInfo;

const GROUP_PREFIX: &str = "/apis/authentication.k8s.io/";
const VERSIONS: [&str; 3] = ["v1", "v1beta1", "v1alpha1"];

/// The version of a `SelfSubjectReview` create at `path`, None for any other request.
pub fn version_of(method: &Method, path: &str) -> Option<&'static str> {
    if *method != Method::POST {
        return None;
    }
    let rest = path.strip_prefix(GROUP_PREFIX)?.trim_end_matches('/');
    let (version, resource) = rest.split_once('/')?;
    (resource == "selfsubjectreviews")
        .then(|| VERSIONS.into_iter().find(|v| *v == version))
        .flatten()
}

/// The created review: the request's own user in `status.userInfo`.
pub fn reply(version: &str, user: &UserInfo) -> Value {
    let mut info = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        info["uid"] = json!(user.uid);
    }
    json!({
        "kind": "SelfSubjectReview",
        "apiVersion": format!("authentication.k8s.io/{version}"),
        "metadata": {"creationTimestamp": null},
        "status": {"userInfo": info},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_creates_of_the_three_versions() {
        let post = Method::POST;
        let path = |v: &str| format!("/apis/authentication.k8s.io/{v}/selfsubjectreviews");
        assert_eq!(version_of(&post, &path("v1")), Some("v1"));
        assert_eq!(version_of(&post, &path("v1beta1")), Some("v1beta1"));
        assert_eq!(version_of(&post, &path("v1alpha1")), Some("v1alpha1"));
        assert_eq!(version_of(&post, &path("v2")), None);
        assert_eq!(version_of(&Method::GET, &path("v1")), None);
        assert_eq!(
            version_of(&post, "/apis/authentication.k8s.io/v1/tokenreviews"),
            None
        );
    }
}
