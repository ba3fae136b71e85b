//! Discovery (`/api`, `/apis`, `/apis/{g}/{v}`, legacy and aggregated), `/version`, and the
//! OpenAPI v2/v3 documents, all derived from the resource table and the release's definitions.
//! `/openapi/v2` is JSON, or gnostic protobuf for the clients that ask for it: kubectl does,
//! for client-side validation (`apply -f` of a `kind: List`).

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{StatusCode, header};
use rotor_openapi::{CustomSchema, ResourcePaths};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::registry::Resource;
use crate::request::Target;
use crate::server::{ApiServer, json_response};

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

pub fn version(minor: u32) -> Value {
    json!({
        "major": "1",
        "minor": minor.to_string(),
        "emulationMajor": "1",
        "emulationMinor": minor.to_string(),
        "gitVersion": format!("v1.{minor}.0"),
        "gitCommit": "rotor",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "rotor",
        "compiler": "rustc",
        "platform": "linux/amd64",
    })
}

/// Groups in serving order: name → versions (preferred first) → resources.
/// Versions of one group, preferred first, each with its resources.
type GroupVersions = Vec<(String, Vec<Arc<Resource>>)>;

/// The review resources answered outside the resource table, create-only as upstream lists
/// them: (group, version, plural, kind).
const REVIEWS: [(&str, &str, &str, &str); 4] = [
    (
        "authentication.k8s.io",
        "v1",
        "selfsubjectreviews",
        "SelfSubjectReview",
    ),
    ("authentication.k8s.io", "v1", "tokenreviews", "TokenReview"),
    (
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
    ),
    (
        "authorization.k8s.io",
        "v1",
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
    ),
];

/// Whether `group`/`version` is one of the reviews' (served for discovery).
pub fn serves_reviews(group: &str, version: &str) -> bool {
    REVIEWS
        .iter()
        .any(|(g, v, _, _)| *g == group && *v == version)
}

fn is_review(r: &Resource) -> bool {
    REVIEWS
        .iter()
        .any(|(g, v, p, _)| r.group == *g && r.version == *v && r.plural == *p)
}

/// What discovery lists a resource with: the reviews can only be created.
fn verbs(r: &Resource) -> &'static [&'static str] {
    match is_review(r) {
        true => &["create"],
        false => &VERBS,
    }
}

/// The review resource of `group`/`plural` (for decoding its request bodies).
pub fn review_resource(group: &str, plural: &str) -> Option<Arc<Resource>> {
    review_resources().find(|r| r.group == group && r.plural == plural)
}

fn review_resources() -> impl Iterator<Item = Arc<Resource>> {
    REVIEWS.iter().map(|(group, version, plural, kind)| {
        let pkg = group.split('.').next().unwrap_or_default();
        Arc::new(Resource {
            api_version: format!("{group}/{version}"),
            group: group.to_string(),
            version: version.to_string(),
            plural: plural.to_string(),
            singular: kind.to_ascii_lowercase(),
            kind: kind.to_string(),
            namespaced: false,
            short_names: Vec::new(),
            categories: Vec::new(),
            has_status: false,
            scale: None,
            definition: format!("io.k8s.api.{pkg}.{version}.{kind}"),
            custom_schema: None,
            printer_columns: Vec::new(),
            selectable_fields: Vec::new(),
            conversion: None,
            read_defaults: false,
        })
    })
}

fn groups(server: &ApiServer) -> BTreeMap<String, GroupVersions> {
    let mut out: BTreeMap<String, GroupVersions> = BTreeMap::new();
    for r in server
        .registry()
        .all()
        .into_iter()
        .chain(review_resources())
    {
        let versions = out.entry(r.group.clone()).or_default();
        match versions.iter_mut().find(|(v, _)| *v == r.version) {
            Some((_, rs)) => rs.push(r),
            None => versions.push((r.version.clone(), vec![r])),
        }
    }
    for versions in out.values_mut() {
        versions.sort_by_key(|v| std::cmp::Reverse(version_priority(&v.0)));
    }
    out
}

/// Kubernetes version priority: GA > beta > alpha, then by number.
fn version_priority(v: &str) -> (u8, u32, u32) {
    let digits = |s: &str| {
        s.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
            .unwrap_or(0)
    };
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let major = digits(rest);
    let tail = &rest[major.to_string().len().min(rest.len())..];
    if tail.is_empty() {
        (3, major, 0)
    } else if let Some(b) = tail.strip_prefix("beta") {
        (2, major, digits(b))
    } else if let Some(a) = tail.strip_prefix("alpha") {
        (1, major, digits(a))
    } else {
        (0, major, 0)
    }
}

fn legacy_resources(group: &str, version: &str, resources: &[Arc<Resource>]) -> Value {
    let mut list = Vec::new();
    for r in resources {
        let mut entry = json!({
            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind, "verbs": verbs(r),
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        list.push(entry);
        if r.has_status {
            list.push(json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "patch", "update"]}));
        }
        if r.scale.is_some() {
            list.push(json!({"name": format!("{}/scale", r.plural), "singularName": "", "namespaced": r.namespaced, "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
        }
    }
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": crate::registry::group_version(group, version), "resources": list})
}

fn aggregated_group(group: &str, versions: &[(String, Vec<Arc<Resource>>)]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|(version, resources)| {
            let rs: Vec<Value> = resources
                .iter()
                .map(|r| {
                    let kind = json!({"group": r.group, "version": r.version, "kind": r.kind});
                    let mut subs = Vec::new();
                    if r.has_status {
                        subs.push(json!({"subresource": "status", "responseKind": kind, "verbs": ["get", "patch", "update"]}));
                    }
                    if r.scale.is_some() {
                        subs.push(json!({"subresource": "scale", "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"}, "verbs": ["get", "patch", "update"]}));
                    }
                    let mut entry = json!({
                        "resource": r.plural, "responseKind": kind, "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": r.singular, "verbs": verbs(r),
                    });
                    if !r.short_names.is_empty() {
                        entry["shortNames"] = json!(r.short_names);
                    }
                    if !r.categories.is_empty() {
                        entry["categories"] = json!(r.categories);
                    }
                    if !subs.is_empty() {
                        entry["subresources"] = json!(subs);
                    }
                    entry
                })
                .collect();
            json!({"version": version, "resources": rs, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions})
}

/// Which aggregated discovery version the client accepts, if any.
fn aggregated_version(accept: &str) -> Option<&'static str> {
    if !accept.contains("as=APIGroupDiscoveryList") {
        return None;
    }
    if accept.contains("v=v2;") || accept.contains("v=v2,") || accept.ends_with("v=v2") {
        Some("v2")
    } else if accept.contains("v=v2beta1") {
        Some("v2beta1")
    } else {
        None
    }
}

fn aggregated_answer(items: Vec<Value>, version: &str) -> Answer {
    let body = json!({"kind": "APIGroupDiscoveryList", "apiVersion": format!("apidiscovery.k8s.io/{version}"), "metadata": {}, "items": items});
    Answer {
        content_type: format!(
            "application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"
        ),
        vary_accept: true,
        body: serde_json::to_vec(&body).unwrap_or_default().into(),
    }
}

fn api_group(name: &str, versions: &[(String, Vec<Arc<Resource>>)]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|(v, _)| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

/// A discovery document, from the answers kept since the served resources last changed.
pub fn respond(server: &ApiServer, target: &Target, accept: &str) -> ApiResult<Response> {
    let aggregated = aggregated_version(accept);
    let key = (format!("{target:?}"), aggregated);
    let generation = server.registry().generation();
    let answer = match server.discovery_answers().get(&key, generation) {
        Some(answer) => answer,
        None => {
            let answer = Arc::new(answer(server, target, aggregated)?);
            server
                .discovery_answers()
                .keep(key, generation, answer.clone());
            answer
        }
    };
    Ok(answer.response())
}

/// The discovery document `target` names, in the form `aggregated` says (legacy if None).
fn answer(server: &ApiServer, target: &Target, aggregated: Option<&str>) -> ApiResult<Answer> {
    let groups = groups(server);
    match target {
        Target::CoreVersions => {
            let core = groups.get("").cloned().unwrap_or_default();
            if let Some(v) = aggregated {
                return Ok(aggregated_answer(vec![aggregated_group("", &core)], v));
            }
            Ok(Answer::json(
                &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
            ))
        }
        Target::Groups => {
            let named = groups.iter().filter(|(g, _)| !g.is_empty());
            if let Some(v) = aggregated {
                return Ok(aggregated_answer(
                    named.map(|(g, vs)| aggregated_group(g, vs)).collect(),
                    v,
                ));
            }
            let list: Vec<Value> = named
                .map(|(g, vs)| api_group(g, vs))
                .map(|mut g| {
                    if let Some(o) = g.as_object_mut() {
                        o.remove("kind");
                        o.remove("apiVersion");
                    }
                    g
                })
                .collect();
            Ok(Answer::json(
                &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": list}),
            ))
        }
        Target::Group(g) => match groups.get(g.as_str()) {
            Some(vs) if !g.is_empty() => Ok(Answer::json(&api_group(g, vs))),
            _ => Err(ApiError::path_not_found(&format!("/apis/{g}"))),
        },
        Target::GroupVersion { group, version } => {
            let resources = groups
                .get(group.as_str())
                .and_then(|vs| vs.iter().find(|(v, _)| v == version))
                .map(|(_, rs)| rs.clone())
                .unwrap_or_default();
            Ok(Answer::json(&legacy_resources(group, version, &resources)))
        }
        _ => Err(ApiError::internal("not a discovery target")),
    }
}

/// One discovery document, encoded.
#[derive(Debug)]
struct Answer {
    content_type: String,
    /// Aggregated documents depend on `Accept` (upstream says so to caches).
    vary_accept: bool,
    body: Bytes,
}

impl Answer {
    fn json(body: &Value) -> Answer {
        Answer {
            content_type: "application/json".to_string(),
            vary_accept: false,
            body: serde_json::to_vec(body).unwrap_or_default().into(),
        }
    }

    fn response(&self) -> Response {
        let mut builder = Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, self.content_type.as_str());
        if self.vary_accept {
            builder = builder.header(header::VARY, "Accept");
        }
        builder
            .body(Body::from(self.body.clone()))
            .unwrap_or_else(|_| json_response(StatusCode::INTERNAL_SERVER_ERROR, &json!({}), &[]))
    }
}

/// Discovery documents already encoded, by target and form, each with the registry generation
/// it was built at. Every migration reads each member's discovery, and building the aggregated
/// documents anew was 7 % of a 10,000-cluster demo's CPU.
#[derive(Debug, Default)]
pub struct Answers {
    kept: Mutex<HashMap<AnswerKey, (u64, Arc<Answer>)>>,
}

type AnswerKey = (String, Option<&'static str>);

/// Most documents kept: group-versions nobody serves are asked for too, and must not grow it.
const ANSWERS_KEPT: usize = 256;

impl Answers {
    fn get(&self, key: &AnswerKey, generation: u64) -> Option<Arc<Answer>> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.get(key)
            .filter(|(built_at, _)| *built_at == generation)
            .map(|(_, answer)| answer.clone())
    }

    /// Keeps `answer`, built from the registry as it was at `generation` (read before building).
    fn keep(&self, key: AnswerKey, generation: u64, answer: Arc<Answer>) {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.retain(|_, (built_at, _)| *built_at == generation);
        if kept.len() >= ANSWERS_KEPT {
            kept.clear();
        }
        kept.insert(key, (generation, answer));
    }
}

fn resource_paths(r: &Resource) -> ResourcePaths {
    let mut subresources = Vec::new();
    if r.has_status {
        subresources.push("status".to_string());
    }
    if r.scale.is_some() {
        subresources.push("scale".to_string());
    }
    ResourcePaths {
        group: r.group.clone(),
        version: r.version.clone(),
        plural: r.plural.clone(),
        kind: r.kind.clone(),
        namespaced: r.namespaced,
        definition: r.definition.clone(),
        subresources,
    }
}

fn custom_schema(r: &Resource) -> Option<CustomSchema> {
    r.custom_schema.as_ref().map(|s| CustomSchema {
        definition: r.definition.clone(),
        group: r.group.clone(),
        version: r.version.clone(),
        kind: r.kind.clone(),
        schema: (**s).clone(),
    })
}

/// A content hash of one group-version's document, so clients can cache it (`?hash=`).
fn gv_hash(minor: u32, gv: &str, resources: &[Arc<Resource>]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (rotor_openapi::DOCUMENTS_FORM, minor, gv).hash(&mut h);
    for r in resources {
        (
            r.plural.as_str(),
            r.kind.as_str(),
            r.namespaced,
            r.has_status,
        )
            .hash(&mut h);
        if let Some(s) = &r.custom_schema {
            s.to_string().hash(&mut h);
        }
    }
    format!("{:016X}", h.finish())
}

fn accepts_json(accept: &str) -> bool {
    accept.is_empty() || accept.contains("application/json") || accept.contains("*/*")
}

/// The gnostic OpenAPI v2 protobuf media type kubectl asks `/openapi/v2` for.
const OPENAPI_V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
/// The same with a dot for the `@`: the spelling some clients ask for, and the Content-Type of
/// the answer, as kube-apiserver sends it. client-go parses a response's Content-Type and
/// rejects the `@` form ("mime: unexpected content after media subtype").
const OPENAPI_V2_PROTOBUF_DOTTED: &str =
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// The forms `/openapi/v2` is served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum V2Form {
    Json,
    Protobuf,
}

/// Which form of `/openapi/v2` the Accept header prefers: the listed one we serve with the
/// highest `q` (the first of equals); JSON when the header is empty.
fn v2_form(accept: &str) -> Option<V2Form> {
    if accept.trim().is_empty() {
        return Some(V2Form::Json);
    }
    let mut best: Option<(f32, V2Form)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let form = match media.as_str() {
            // kube-apiserver also answers the Kubernetes protobuf type with this document.
            OPENAPI_V2_PROTOBUF
            | OPENAPI_V2_PROTOBUF_DOTTED
            | "application/vnd.kubernetes.protobuf" => V2Form::Protobuf,
            "application/json" | "application/*" | "*/*" => V2Form::Json,
            _ => continue,
        };
        if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
            best = Some((q, form));
        }
    }
    best.map(|(_, form)| form)
}

fn openapi_v2(server: &ApiServer, accept: &str) -> ApiResult<Response> {
    let form = v2_form(accept).ok_or_else(|| {
        ApiError::not_acceptable(format!(
            "/openapi/v2 is served as application/json or {OPENAPI_V2_PROTOBUF}, not {accept}"
        ))
    })?;
    let all = server.registry().all();
    let spec = server.openapi();
    let paths: Vec<ResourcePaths> = all.iter().map(|r| resource_paths(r)).collect();
    let custom: Vec<CustomSchema> = all.iter().filter_map(|r| custom_schema(r)).collect();
    let mut resp = match form {
        V2Form::Json => json_response(StatusCode::OK, &spec.v2_document(&paths, &custom), &[]),
        V2Form::Protobuf => {
            let doc = spec.v2_protobuf_shared(&paths, &custom);
            let mut resp = Response::new(Body::from(doc.bytes));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static(OPENAPI_V2_PROTOBUF_DOTTED),
            );
            if let Ok(etag) = http::HeaderValue::from_str(&doc.etag) {
                resp.headers_mut().insert(header::ETAG, etag);
            }
            resp
        }
    };
    resp.headers_mut()
        .insert(header::VARY, http::HeaderValue::from_static("Accept"));
    Ok(resp)
}

/// The OpenAPI documents; `path_prefix` is what a proxy in front of this API strips (see
/// [`crate::request::PathPrefix`]), put back into the URLs clients follow.
pub fn openapi(
    server: &ApiServer,
    target: &Target,
    accept: &str,
    path_prefix: &str,
) -> ApiResult<Response> {
    if matches!(target, Target::OpenApiV2) {
        return openapi_v2(server, accept);
    }
    if !accepts_json(accept) {
        return Err(ApiError::not_acceptable(format!(
            "only application/json is served here, not {accept}"
        )));
    }
    let all = server.registry().all();
    let spec = server.openapi();
    match target {
        Target::OpenApiV3Index => {
            let mut by_gv: BTreeMap<String, Vec<Arc<Resource>>> = BTreeMap::new();
            for r in all {
                by_gv
                    .entry(r.api_version().to_string())
                    .or_default()
                    .push(r);
            }
            let mut paths = serde_json::Map::new();
            for (gv, rs) in &by_gv {
                let prefix = if gv.contains('/') { "apis" } else { "api" };
                let hash = gv_hash(spec.minor(), gv, rs);
                paths.insert(
                    format!("{prefix}/{gv}"),
                    json!({"serverRelativeURL": format!("{path_prefix}/openapi/v3/{prefix}/{gv}?hash={hash}")}),
                );
            }
            Ok(json_response(StatusCode::OK, &json!({"paths": paths}), &[]))
        }
        Target::OpenApiV3(gv) => {
            let rs: Vec<Arc<Resource>> =
                all.into_iter().filter(|r| r.api_version() == gv).collect();
            if rs.is_empty() {
                return Err(ApiError::path_not_found(&format!("/openapi/v3/{gv}")));
            }
            let paths: Vec<ResourcePaths> = rs.iter().map(|r| resource_paths(r)).collect();
            let custom: Vec<CustomSchema> = rs.iter().filter_map(|r| custom_schema(r)).collect();
            let doc = spec.v3_document(gv, &paths, &custom);
            let mut resp = json_response(StatusCode::OK, &doc, &[]);
            resp.headers_mut().insert(
                header::CACHE_CONTROL,
                http::HeaderValue::from_static("public, immutable"),
            );
            resp.headers_mut().insert(
                header::ETAG,
                http::HeaderValue::from_str(&format!("\"{}\"", gv_hash(spec.minor(), gv, &rs)))
                    .unwrap_or(http::HeaderValue::from_static("\"0\"")),
            );
            Ok(resp)
        }
        _ => Err(ApiError::internal("not an openapi target")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_order() {
        let mut v = vec!["v1alpha1", "v2", "v1beta2", "v1", "v1beta1"];
        v.sort_by_key(|x| std::cmp::Reverse(version_priority(x)));
        assert_eq!(v, vec!["v2", "v1", "v1beta2", "v1beta1", "v1alpha1"]);
    }

    #[test]
    fn aggregated_accept() {
        assert_eq!(
            aggregated_version(
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
            ),
            Some("v2")
        );
        assert_eq!(aggregated_version("application/json"), None);
    }

    #[test]
    fn openapi_v2_accept() {
        // What kubectl sends, and the dotted spelling.
        assert_eq!(v2_form(OPENAPI_V2_PROTOBUF), Some(V2Form::Protobuf));
        assert_eq!(
            v2_form("application/com.github.proto-openapi.spec.v2.v1.0+protobuf"),
            Some(V2Form::Protobuf)
        );
        assert_eq!(v2_form(""), Some(V2Form::Json));
        assert_eq!(v2_form("application/json"), Some(V2Form::Json));
        assert_eq!(v2_form("*/*"), Some(V2Form::Json));
        assert_eq!(
            v2_form(&format!("{OPENAPI_V2_PROTOBUF}, application/json")),
            Some(V2Form::Protobuf),
            "first of equals"
        );
        assert_eq!(
            v2_form(&format!(
                "{OPENAPI_V2_PROTOBUF};q=0.5, application/json;q=0.9"
            )),
            Some(V2Form::Json)
        );
        assert_eq!(
            v2_form(&format!(
                "application/json;q=0, {OPENAPI_V2_PROTOBUF};q=0.1"
            )),
            Some(V2Form::Protobuf)
        );
        assert_eq!(
            v2_form("application/vnd.kubernetes.protobuf"),
            Some(V2Form::Protobuf)
        );
        assert_eq!(v2_form("application/yaml"), None);
    }
}
