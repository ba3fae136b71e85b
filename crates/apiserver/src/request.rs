//! Parsing a request path and query into what it addresses, the way kube-apiserver's request
//! info resolver does: `/apis/{group}/{version}/namespaces/{ns}/{resource}/{name}/{subresource}`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{ApiError, ApiResult};
use crate::registry::{Registry, Resource};

/// What a request path addresses.
#[derive(Debug, Clone)]
pub enum Target {
    Version,
    Health,
    /// `/api`: the legacy core group's versions.
    CoreVersions,
    /// `/apis`: every other group.
    Groups,
    Group(String),
    GroupVersion {
        group: String,
        version: String,
    },
    OpenApiV2,
    OpenApiV3Index,
    /// `/openapi/v3/apis/apps/v1` → "apps/v1", `/openapi/v3/api/v1` → "v1".
    OpenApiV3(String),
    Resource(ResourceRequest),
}

#[derive(Debug, Clone)]
pub struct ResourceRequest {
    pub resource: Arc<Resource>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

pub fn parse_target(path: &str, registry: &Registry) -> ApiResult<Target> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return Ok(Target::Version),
        ["healthz" | "readyz" | "livez", ..] => return Ok(Target::Health),
        ["api"] => return Ok(Target::CoreVersions),
        ["apis"] => return Ok(Target::Groups),
        ["apis", g] => return Ok(Target::Group(g.to_string())),
        ["openapi", "v2"] => return Ok(Target::OpenApiV2),
        ["openapi", "v3"] => return Ok(Target::OpenApiV3Index),
        ["openapi", "v3", "api", v] => return Ok(Target::OpenApiV3(v.to_string())),
        ["openapi", "v3", "apis", g, v] => return Ok(Target::OpenApiV3(format!("{g}/{v}"))),
        ["api", v] => return gv_target("", v, registry, path),
        ["apis", g, v] => return gv_target(g, v, registry, path),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::path_not_found(path)),
    };
    let lookup = |plural: &str| registry.lookup(group, version, plural);
    let not_found = || ApiError::path_not_found(path);
    // namespaces/{ns}/{resource}[/{name}[/{sub}]] — unless `{resource}` is a namespace subresource.
    let (namespace, resource, rest) = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if let Some(r) = lookup(plural).filter(|r| r.namespaced) =>
        {
            (Some(ns.to_string()), r, tail)
        }
        [plural, tail @ ..] => (None, lookup(plural).ok_or_else(not_found)?, tail),
        [] => return Err(not_found()),
    };
    let (name, subresource) = match rest {
        [] => (None, None),
        [name] => (Some(name.to_string()), None),
        [name, sub] => (Some(name.to_string()), Some(sub.to_string())),
        _ => return Err(not_found()),
    };
    if let Some(sub) = &subresource {
        let ok = (sub == "status" && resource.has_status)
            || (sub == "scale" && resource.scale.is_some())
            || (sub == "finalize" && resource.plural == "namespaces" && resource.group.is_empty());
        if !ok {
            return Err(not_found());
        }
    }
    Ok(Target::Resource(ResourceRequest {
        resource,
        namespace,
        name,
        subresource,
    }))
}

fn gv_target(group: &str, version: &str, registry: &Registry, path: &str) -> ApiResult<Target> {
    if registry.serves_group_version(group, version)
        || crate::discovery::serves_reviews(group, version)
    {
        Ok(Target::GroupVersion {
            group: group.to_string(),
            version: version.to_string(),
        })
    } else {
        Err(ApiError::path_not_found(path))
    }
}

/// The query parameters the API understands. Unknown ones are ignored, as kube-apiserver does.
#[derive(Debug, Default, Clone)]
pub struct Query(pub HashMap<String, String>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        let mut map = HashMap::new();
        for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            map.insert(decode(k), decode(v));
        }
        Query(map)
    }
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.0.get(key).map(String::as_str), Some("true" | "1" | ""))
            && self.0.contains_key(key)
    }
    pub fn u64(&self, key: &str) -> ApiResult<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid value for query parameter {key}: \"{v}\""))
            }),
        }
    }
}

/// Percent-decoding of one query component (`+` is a space).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let reg = Registry::default();
        let t = |p: &str| parse_target(p, &reg);
        match t("/apis/apps/v1/namespaces/web/deployments/api/scale") {
            Ok(Target::Resource(r)) => {
                assert_eq!(r.resource.plural, "deployments");
                assert_eq!(r.namespace.as_deref(), Some("web"));
                assert_eq!(r.name.as_deref(), Some("api"));
                assert_eq!(r.subresource.as_deref(), Some("scale"));
            }
            other => panic!("unexpected {other:?}"),
        }
        match t("/api/v1/namespaces/web") {
            Ok(Target::Resource(r)) => {
                assert_eq!(r.resource.plural, "namespaces");
                assert_eq!(r.name.as_deref(), Some("web"));
                assert!(r.namespace.is_none());
            }
            other => panic!("unexpected {other:?}"),
        }
        match t("/api/v1/namespaces/web/status") {
            Ok(Target::Resource(r)) => assert_eq!(r.subresource.as_deref(), Some("status")),
            other => panic!("unexpected {other:?}"),
        }
        assert!(t("/apis/apps/v1/namespaces/web/configmaps").is_err());
        assert!(t("/api/v1/configmaps/x/scale").is_err());
        assert!(matches!(
            t("/apis/apps/v1"),
            Ok(Target::GroupVersion { .. })
        ));
        assert!(t("/apis/nope/v1").is_err());
    }

    #[test]
    fn query_decoding() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb%2Ctier+in+(a)&watch=true&x=%zz",
        ));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a)"));
        assert!(q.flag("watch"));
        assert_eq!(q.get("x"), Some("%zz"));
    }
}

/// The path this API is served under when a proxy in front of it strips a prefix (the
/// simulator serves each member under `/clusters/NAME`): a request extension the proxy sets, so
/// the URLs the API hands out for clients to follow (`serverRelativeURL` in `/openapi/v3`) carry
/// it. Not a header: a client cannot make the server hand out other paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPrefix(pub String);
