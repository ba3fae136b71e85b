//! What a request asks to do, derived from its method, path and query the way kube-apiserver's
//! `RequestInfoFactory` does: before the resource is looked up, so an unknown resource is judged
//! (and refused) like any other.

use http::Method;

use crate::request::Query;

/// The attributes an authorizer judges: the verb and what it applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    pub verb: String,
    pub target: Target,
}

/// A request for an API resource, or for any other path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Resource(ResourceAttributes),
    NonResource { path: String },
}

/// `/apis/{group}/{version}/namespaces/{namespace}/{resource}/{name}/{subresource}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceAttributes {
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

impl Attributes {
    pub fn resource(&self) -> Option<&ResourceAttributes> {
        match &self.target {
            Target::Resource(r) => Some(r),
            Target::NonResource { .. } => None,
        }
    }

    /// The same request with another verb (the custom verbs checked after a plain deny).
    pub fn with_verb(&self, verb: &str) -> Attributes {
        Attributes {
            verb: verb.to_string(),
            target: self.target.clone(),
        }
    }
}

/// Subresources of a namespace: `/api/v1/namespaces/{ns}/status` addresses the namespace.
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

/// The attributes of a request.
pub fn of_request(method: &Method, path: &str, query: &Query) -> Attributes {
    let non_resource = || Attributes {
        verb: method.as_str().to_ascii_lowercase(),
        target: Target::NonResource {
            path: path.to_string(),
        },
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match parts.as_slice() {
        ["api", rest @ ..] if rest.len() >= 2 => ("", rest),
        ["apis", group, rest @ ..] if rest.len() >= 2 => (*group, rest),
        _ => return non_resource(),
    };
    let (group, [version, rest @ ..]) = rest else {
        return non_resource();
    };
    let (mut verb, rest) = match rest {
        ["watch" | "proxy", tail @ ..] if !tail.is_empty() => (rest[0].to_string(), tail),
        _ => (verb_of(method).to_string(), rest),
    };
    let (namespace, parts) = match rest {
        ["namespaces", ns, tail @ ..]
            if !tail.is_empty() && !NAMESPACE_SUBRESOURCES.contains(&tail[0]) =>
        {
            (ns.to_string(), tail)
        }
        ["namespaces", ns, ..] => (ns.to_string(), rest),
        _ => (String::new(), rest),
    };
    let mut attrs = ResourceAttributes {
        group: group.to_string(),
        version: version.to_string(),
        namespace,
        resource: parts.first().map(|s| s.to_string()).unwrap_or_default(),
        name: parts.get(1).map(|s| s.to_string()).unwrap_or_default(),
        subresource: String::new(),
    };
    if parts.len() >= 3 && verb != "proxy" {
        attrs.subresource = parts[2].to_string();
    }
    if attrs.name.is_empty() && verb == "get" {
        verb = if query.flag("watch") { "watch" } else { "list" }.to_string();
        attrs.name = name_of_field_selector(query).unwrap_or_default();
    }
    if attrs.name.is_empty() && verb == "delete" {
        verb = "deletecollection".to_string();
    }
    Attributes {
        verb,
        target: Target::Resource(attrs),
    }
}

fn verb_of(method: &Method) -> &'static str {
    match *method {
        Method::POST => "create",
        Method::GET | Method::HEAD => "get",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "",
    }
}

/// A list or watch of one object by `fieldSelector=metadata.name=NAME` names it, as upstream
/// lets a rule's resourceNames cover `kubectl get NAME --watch`.
fn name_of_field_selector(query: &Query) -> Option<String> {
    let selector = query.get("fieldSelector")?;
    let name = selector.split(',').find_map(|term| {
        let (key, value) = term
            .split_once("==")
            .or_else(|| term.split_once('='))
            .filter(|(k, _)| !k.ends_with('!'))?;
        (key.trim() == "metadata.name").then(|| value.trim().to_string())
    });
    name.filter(|n| !n.is_empty() && valid_path_segment(n))
}

fn valid_path_segment(name: &str) -> bool {
    name != "." && name != ".." && !name.contains(['/', '%'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(method: Method, path: &str, query: &str) -> Attributes {
        of_request(&method, path, &Query::parse(Some(query)))
    }

    fn resource(
        verb: &str,
        group: &str,
        resource: &str,
        sub: &str,
        ns: &str,
        name: &str,
    ) -> Attributes {
        Attributes {
            verb: verb.into(),
            target: Target::Resource(ResourceAttributes {
                group: group.into(),
                version: if group.is_empty() { "v1" } else { "v1alpha1" }.into(),
                resource: resource.into(),
                subresource: sub.into(),
                namespace: ns.into(),
                name: name.into(),
            }),
        }
    }

    #[test]
    fn verbs_from_method_and_query() {
        let p = "/apis/rotor.dev/v1alpha1/clusters";
        assert_eq!(
            attrs(Method::GET, p, ""),
            resource("list", "rotor.dev", "clusters", "", "", "")
        );
        assert_eq!(
            attrs(Method::GET, p, "watch=true"),
            resource("watch", "rotor.dev", "clusters", "", "", "")
        );
        assert_eq!(
            attrs(Method::POST, p, ""),
            resource("create", "rotor.dev", "clusters", "", "", "")
        );
        assert_eq!(
            attrs(Method::DELETE, p, ""),
            resource("deletecollection", "rotor.dev", "clusters", "", "", "")
        );
        let one = "/apis/rotor.dev/v1alpha1/clusters/a";
        assert_eq!(
            attrs(Method::GET, one, ""),
            resource("get", "rotor.dev", "clusters", "", "", "a")
        );
        assert_eq!(
            attrs(Method::PATCH, one, ""),
            resource("patch", "rotor.dev", "clusters", "", "", "a")
        );
        assert_eq!(
            attrs(Method::PUT, one, ""),
            resource("update", "rotor.dev", "clusters", "", "", "a")
        );
        assert_eq!(
            attrs(Method::DELETE, one, ""),
            resource("delete", "rotor.dev", "clusters", "", "", "a")
        );
        let named = attrs(Method::GET, p, "watch=1&fieldSelector=metadata.name%3Da");
        assert_eq!(
            named,
            resource("watch", "rotor.dev", "clusters", "", "", "a")
        );
    }

    #[test]
    fn namespaces_subresources_and_core() {
        let p = "/api/v1/namespaces/web/secrets/s";
        assert_eq!(
            attrs(Method::GET, p, ""),
            resource("get", "", "secrets", "", "web", "s")
        );
        let p = "/apis/rotor.dev/v1alpha1/rollouts/r/status";
        assert_eq!(
            attrs(Method::PUT, p, ""),
            resource("update", "rotor.dev", "rollouts", "status", "", "r")
        );
        // A namespace is named by itself, its subresources are its own.
        let p = "/api/v1/namespaces/web";
        assert_eq!(
            attrs(Method::GET, p, ""),
            resource("get", "", "namespaces", "", "web", "web")
        );
        let p = "/api/v1/namespaces/web/finalize";
        assert_eq!(
            attrs(Method::PUT, p, ""),
            resource("update", "", "namespaces", "finalize", "web", "web")
        );
    }

    #[test]
    fn everything_else_is_a_path() {
        for (path, verb) in [
            ("/metrics", "get"),
            ("/version", "get"),
            ("/api", "get"),
            ("/apis/rotor.dev", "get"),
            ("/healthz", "get"),
        ] {
            let a = attrs(Method::GET, path, "");
            assert_eq!(a.verb, verb);
            assert_eq!(
                a.target,
                Target::NonResource { path: path.into() },
                "{path}"
            );
        }
        let a = attrs(Method::GET, "/apis/rotor.dev/v1alpha1", "");
        assert!(matches!(a.target, Target::NonResource { .. }), "{a:?}");
        let a = attrs(Method::POST, "/logs", "");
        assert_eq!(a.verb, "post");
    }
}
