//! HTTP: routing a request to discovery, OpenAPI or a resource, content negotiation, options,
//! the scale subresource — a thin layer over the in-process methods.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::FutureExt;
use http::{HeaderMap, Method, Request, StatusCode, header};
use serde_json::{Value, json};

use super::*;
use crate::audit;
use crate::auth::{self, UserInfo};
use crate::authz::{self, Grant};
use crate::error::{ApiError, ApiResult, Cause};
use crate::object::{self};
use crate::registry::Resource;
use crate::request::{Query, ResourceRequest, Target, parse_target};
use crate::selector::FieldSelector;
use crate::{discovery, protobuf, table, watch};

impl ApiServer {
    /// An axum router that serves this API on every path.
    pub fn router(self: Arc<Self>) -> axum::Router {
        axum::Router::new().fallback(move |req: Request<Body>| {
            let server = self.clone();
            async move { server.handle(req).await }
        })
    }

    /// Serves one HTTP request. Never panics on client input: every failure is a `Status` body.
    /// With an audit log, the request is recorded once its reply is complete (or if serving it
    /// panicked, before the panic goes on).
    pub async fn handle(self: &Arc<Self>, req: Request<Body>) -> Response {
        let received = chrono::Utc::now();
        let (parts, body) = req.into_parts();
        let query = Query::parse(parts.uri.query());
        let attrs = authz::attributes::of_request(&parts.method, parts.uri.path(), &query);
        let admitted = self.admit(&parts).await;
        let mut record = self.config.audit.as_ref().and_then(|auditor| {
            audit::Record::begin(auditor, &parts, admitted.as_ref().ok(), &attrs, received)
        });
        let request = Admitted {
            user: admitted,
            parts,
            body,
            query,
            attrs,
        };
        let served = std::panic::AssertUnwindSafe(self.serve_admitted(request, &mut record))
            .catch_unwind()
            .await;
        match (served, record) {
            (Ok(response), Some(record)) => record.finish(response).await,
            (Ok(response), None) => response,
            (Err(panic), record) => {
                if let Some(record) = record {
                    record.panicked(panic.as_ref());
                }
                std::panic::resume_unwind(panic)
            }
        }
    }

    /// Authorizes an authenticated request (noting the decision in its audit record) and
    /// serves it; a refused one gets its Status.
    async fn serve_admitted(
        self: &Arc<Self>,
        request: Admitted,
        record: &mut Option<audit::Record>,
    ) -> Response {
        let Admitted {
            user,
            parts,
            body,
            query,
            attrs,
        } = request;
        let (method, path) = (&parts.method, parts.uri.path());
        let user = match user {
            Ok(user) => user,
            Err(e) => {
                tracing::debug!(%method, %path, code = e.code.as_u16(), reason = e.reason, "request refused");
                return e.into_response();
            }
        };
        let verdict = self.judge(&user, &attrs).await;
        if let Some(record) = record.as_mut() {
            record.authorized(verdict.decision, &verdict.reason);
        }
        // A refused request's body is never read, as upstream's: nothing to record.
        let allowed = verdict.grant.is_ok();
        let body = match record.as_mut() {
            Some(record) if allowed && record.wants_request_body() => match read_body(body).await {
                Ok(bytes) => {
                    record.request_body(&parts.headers, &bytes, self);
                    Body::from(bytes)
                }
                Err(e) => return e.into_response(),
            },
            _ => body,
        };
        let (method, path) = (method.clone(), path.to_string());
        let served = match verdict.grant {
            Ok(grant) => {
                self.handle_inner(&user, parts, body, query, &attrs, grant)
                    .await
            }
            Err(refused) => Err(refused),
        };
        served.unwrap_or_else(|e| {
            let user = user.name.as_str();
            tracing::debug!(%method, %path, user, code = e.code.as_u16(), reason = e.reason, "request failed");
            e.into_response()
        })
    }

    /// The user a request comes from, once its `Host` is one of this server's names; 401 when
    /// its credentials are wrong or missing (see [`crate::auth`]).
    pub(crate) async fn admit(&self, parts: &http::request::Parts) -> ApiResult<UserInfo> {
        self.check_host(parts)?;
        let certificate = parts
            .extensions
            .get::<ConnectInfo<crate::tls::Peer>>()
            .and_then(|peer| peer.0.user.as_ref());
        auth::authenticate(self, &parts.headers, certificate).await
    }

    /// Serves the request of `user` (authenticated) once RBAC allowed it (see [`crate::authz`]).
    async fn handle_inner(
        self: &Arc<Self>,
        user: &UserInfo,
        parts: http::request::Parts,
        body: Body,
        query: Query,
        attrs: &authz::Attributes,
        grant: Grant,
    ) -> ApiResult<Response> {
        let path = parts.uri.path();
        let requester = self.requester(user, attrs).await?;
        if let Some(version) = auth::review::version_of(&parts.method, path) {
            let review = auth::review::reply(version, user);
            return Ok(json_response(StatusCode::CREATED, &review, &[]));
        }
        if let Some((ns, name)) = auth::token_request::target_of(&parts.method, path) {
            let bytes = read_body(body).await?;
            let request = match bytes.is_empty() {
                true => json!({}),
                false => decode_body(&parts.headers, &bytes, &auth::token_request::resource())?,
            };
            let created = auth::token_request::create(self, ns, name, &request).await?;
            return Ok(json_response(StatusCode::CREATED, &created, &[]));
        }
        if auth::token_review::is_create(&parts.method, path) {
            let res = discovery::review_resource(auth::token_review::GROUP, "tokenreviews")
                .ok_or_else(|| ApiError::path_not_found(path))?;
            let object = decode_body(&parts.headers, &read_body(body).await?, &res)?;
            let reply = auth::token_review::reply(self, &object).await;
            return Ok(json_response(StatusCode::CREATED, &reply, &[]));
        }
        if let Some(review) = authz::review::Review::of(&parts.method, path) {
            let res = discovery::review_resource(authz::review::GROUP, review.plural())
                .ok_or_else(|| ApiError::path_not_found(path))?;
            let object = decode_body(&parts.headers, &read_body(body).await?, &res)?;
            let reply = self.review(review, user, object).await?;
            return Ok(json_response(StatusCode::CREATED, &reply, &[]));
        }
        let discovery = self.config.service_accounts.as_ref();
        if let Some(reply) = discovery
            .and_then(|s| s.discovery())
            .and_then(|d| d.respond(&parts.method, path))
        {
            return Ok(reply);
        }
        let target = parse_target(path, &self.registry)?;
        let accept = header_str(&parts.headers, header::ACCEPT);
        match target {
            Target::Version => Ok(json_response(
                StatusCode::OK,
                &discovery::version(self.config.kubernetes_minor),
                &[],
            )),
            Target::Health => Ok((StatusCode::OK, "ok").into_response()),
            Target::CoreVersions
            | Target::Groups
            | Target::Group(_)
            | Target::GroupVersion { .. } => discovery::respond(self, &target, accept),
            Target::OpenApiV2 | Target::OpenApiV3Index | Target::OpenApiV3(_) => {
                let prefix = parts.extensions.get::<crate::request::PathPrefix>();
                let prefix = prefix.map_or("", |p| p.0.as_str());
                discovery::openapi(self, &target, accept, prefix)
            }
            Target::Resource(rr) => {
                let bytes = read_body(body).await?;
                let call = ResourceCall {
                    method: parts.method,
                    rr,
                    query,
                    grant,
                    requester,
                };
                self.handle_resource(call, &parts.headers, bytes, accept)
                    .await
            }
        }
    }

    /// Refuses a request addressed to a name this server does not answer to (see
    /// `ServerConfig::allowed_hosts`): IP addresses and `localhost` always pass. Public for
    /// what an embedder serves beside the API without credentials (rotor's dashboard files).
    pub fn check_host(&self, parts: &http::request::Parts) -> ApiResult<()> {
        let Some(allowed) = &self.config.allowed_hosts else {
            return Ok(());
        };
        let authority = match parts.uri.authority() {
            Some(a) => a.as_str(),
            None => header_str(&parts.headers, header::HOST),
        };
        let host = host_of(authority);
        let known = host.parse::<std::net::IpAddr>().is_ok()
            || host.eq_ignore_ascii_case("localhost")
            || allowed.iter().any(|name| name.eq_ignore_ascii_case(host));
        if known {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "Host {authority:?} is not a name of this server: it answers to IP addresses, \
             localhost and the names it was given (rotor serve --allowed-host)"
        )))
    }

    async fn handle_resource(
        self: &Arc<Self>,
        ResourceCall {
            method,
            rr,
            query,
            grant,
            requester,
        }: ResourceCall,
        headers: &HeaderMap,
        body: Bytes,
        accept: &str,
    ) -> ApiResult<Response> {
        let res = rr.resource.clone();
        let ns = rr.namespace.as_deref();
        let sub = rr.subresource.as_deref();
        let want_table = accept.contains("as=Table");
        let mut opts = write_options(&query, headers, &method)?;
        if let Grant::Fields(limit) = grant {
            opts.limit = Some(limit);
        }
        opts.requester = requester;
        match (method, rr.name.as_deref()) {
            (Method::GET, None) if query.flag("watch") => {
                let list_opts = list_options(&query, &res)?;
                let stream = watch::start(
                    self.clone(),
                    res.clone(),
                    ns.map(String::from),
                    list_opts,
                    &query,
                    want_table,
                )
                .await?;
                Ok(Response::builder()
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(header::CACHE_CONTROL, "no-cache, private")
                    .body(Body::from_stream(stream))
                    .map_err(|e| ApiError::internal(e.to_string()))?)
            }
            (Method::GET, None) if want_table => {
                let exact = self.check_list_version(&query).await?;
                let opts = ListOptions {
                    exact,
                    ..list_options(&query, &res)?
                };
                let list = self.list(&res, ns, &opts).await?;
                let table = table::from_list(&res, self.config.kubernetes_minor, &list, &query);
                Ok(json_response(StatusCode::OK, &table, &[]))
            }
            (Method::GET, None) => {
                let exact = self.check_list_version(&query).await?;
                let opts = ListOptions {
                    exact,
                    ..list_options(&query, &res)?
                };
                let list = self.list_json(&res, ns, &opts).await?;
                Ok(json_bytes_response(StatusCode::OK, list.into(), &[]))
            }
            (Method::GET, Some(name)) if query.flag("watch") => {
                let mut list_opts = list_options(&query, &res)?;
                list_opts.fields = FieldSelector::parse(&format!("metadata.name={name}"))
                    .map_err(ApiError::bad_request)?;
                let stream = watch::start(
                    self.clone(),
                    res.clone(),
                    ns.map(String::from),
                    list_opts,
                    &query,
                    want_table,
                )
                .await?;
                Ok(Response::builder()
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from_stream(stream))
                    .map_err(|e| ApiError::internal(e.to_string()))?)
            }
            (Method::GET, Some(name)) if sub.is_none() && !want_table => {
                let obj = self.get_json(&res, ns, name).await?;
                Ok(json_bytes_response(StatusCode::OK, obj, &[]))
            }
            (Method::GET, Some(name)) => {
                let obj = self.get(&res, ns, name).await?;
                let body = match sub {
                    Some("scale") => scale_of(&res, &obj),
                    _ if want_table => {
                        table::from_object(&res, self.config.kubernetes_minor, &obj, &query)
                    }
                    _ => obj,
                };
                Ok(json_response(StatusCode::OK, &body, &[]))
            }
            (Method::POST, None) => {
                let obj = decode_body(headers, &body, &res)?;
                let duplicated = duplicates::judge(&body, &res, opts.validation)?;
                let mut written = self.create(&res, ns, obj, &opts).await?;
                self.complete_dry_run(&res, sub, &opts, &mut written).await;
                Ok(json_bytes_response(
                    StatusCode::CREATED,
                    written.to_json(),
                    &[duplicated, written.warnings].concat(),
                ))
            }
            (Method::PUT, Some(name)) => {
                let obj = decode_body(headers, &body, &res)?;
                let duplicated = duplicates::judge(&body, &res, opts.validation)?;
                let mut written = if sub == Some("scale") {
                    self.write_scale(&res, ns, name, |_, _| Ok(obj.clone()), &opts)
                        .await?
                } else {
                    self.update(&res, ns, name, obj, sub, &opts).await?
                };
                self.complete_dry_run(&res, sub, &opts, &mut written).await;
                Ok(json_response(
                    StatusCode::OK,
                    &written.object,
                    &[duplicated, written.warnings].concat(),
                ))
            }
            (Method::PATCH, Some(name)) => {
                let ct = header_str(headers, header::CONTENT_TYPE);
                let patch_type = PatchType::from_content_type(ct).ok_or_else(|| {
                    ApiError::unsupported_media_type(format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {ct:?})"))
                })?;
                let patch = parse_patch_body(&body, patch_type, &res, name)?;
                let duplicated = duplicates::judge(&body, &res, opts.validation)?;
                let mut written = if sub == Some("scale") {
                    self.write_scale(
                        &res,
                        ns,
                        name,
                        |current_scale, _| patch_scale(current_scale, &patch, patch_type),
                        &opts,
                    )
                    .await?
                } else {
                    self.patch(&res, ns, name, patch_type, &patch, sub, &opts)
                        .await?
                };
                self.complete_dry_run(&res, sub, &opts, &mut written).await;
                let code = if written.created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                Ok(json_response(
                    code,
                    &written.object,
                    &[duplicated, written.warnings].concat(),
                ))
            }
            (Method::DELETE, Some(name)) => {
                let (options, dry_run) = delete_options(headers, &body, &res, &opts)?;
                let deleted = self
                    .delete_object(&res, ns, name, &options, dry_run)
                    .await?;
                // Upstream answers 202 to an explicit `orphanDependents: false` left pending.
                let code = match deleted.removed {
                    false if options.get("orphanDependents") == Some(&json!(false)) => {
                        StatusCode::ACCEPTED
                    }
                    _ => StatusCode::OK,
                };
                let body = match deleted.removed {
                    true => propagation::reply_for_removed(&res, deleted.object),
                    false => deleted.object,
                };
                Ok(json_response(code, &body, &[]))
            }
            (Method::DELETE, None) => {
                let (options, dry_run) = delete_options(headers, &body, &res, &opts)?;
                let list = self.list(&res, ns, &list_options(&query, &res)?).await?;
                let mut deleted = Vec::new();
                for item in list["items"].as_array().cloned().unwrap_or_default() {
                    let item_ns = object::meta_str(&item, "namespace").map(String::from);
                    match self
                        .delete_object(
                            &res,
                            item_ns.as_deref(),
                            object::name(&item),
                            &options,
                            dry_run,
                        )
                        .await
                    {
                        Ok(gone) => deleted.push(gone.object),
                        Err(e) if e.reason == "NotFound" => {}
                        Err(e) => return Err(e),
                    }
                }
                let body = json!({"apiVersion": res.api_version(), "kind": format!("{}List", res.kind), "metadata": list["metadata"].clone(), "items": deleted});
                Ok(json_response(StatusCode::OK, &body, &[]))
            }
            (m, _) => Err(ApiError::method_not_allowed(format!(
                "{m} is not supported on {}",
                crate::error::qualified(&res.plural, &res.group)
            ))),
        }
    }

    /// Lets the configured [`DryRunHook`] complete the reply to a dry-run write of an object.
    async fn complete_dry_run(
        &self,
        res: &Resource,
        sub: Option<&str>,
        opts: &WriteOptions,
        written: &mut Written,
    ) {
        let Some(hook) = &self.config.dry_run_hook else {
            return;
        };
        if !opts.dry_run || sub.is_some() {
            return;
        }
        hook.complete(&res.group, &res.plural, &mut written.object)
            .await;
        // The reply is the object as the hook left it, not the bytes the write produced.
        written.json = None;
    }

    /// Reads the scale subresource, lets `change` compute the new Scale, writes spec.replicas back.
    async fn write_scale(
        &self,
        res: &Arc<Resource>,
        ns: Option<&str>,
        name: &str,
        change: impl Fn(&Value, &Value) -> ApiResult<Value>,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        let Some(paths) = &res.scale else {
            return Err(ApiError::path_not_found(&format!(
                "{}/{name}/scale",
                res.plural
            )));
        };
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let (current, rev) = self.get_kv(res, ns, name).await?;
            let scale = scale_of(res, &current);
            let wanted = change(&scale, &current)?;
            let replicas = wanted
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .ok_or_else(|| {
                    ApiError::invalid(
                        "Scale",
                        "autoscaling",
                        name,
                        vec![Cause {
                            field: "spec.replicas".into(),
                            message: "Required value".into(),
                            reason: "FieldValueRequired",
                        }],
                    )
                })?;
            if replicas < 0 {
                return Err(ApiError::invalid(
                    "Scale",
                    "autoscaling",
                    name,
                    vec![Cause {
                        field: "spec.replicas".into(),
                        message: format!(
                            "Invalid value: {replicas}: must be greater than or equal to 0"
                        ),
                        reason: "FieldValueInvalid",
                    }],
                ));
            }
            if let Some(want_rv) = wanted
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                && want_rv != rev.to_string()
            {
                return Err(ApiError::conflict(&res.plural, &res.group, name));
            }
            let mut next = current.clone();
            set_path(&mut next, &paths.spec_replicas, json!(replicas));
            let mut next = self.prepare_update(res, &current, next, None)?;
            let cursor = self.cursor(res);
            rotor_patch::track_update(
                Some(&current),
                &mut next,
                cursor.as_ref(),
                &apply_opts(res, opts, Some("scale"), &object::now_rfc3339()),
            );
            match self
                .commit_update(res, ns, name, current, next, rev, opts)
                .await
            {
                Err(e) if e.reason == "Conflict" => continue,
                Err(e) => return Err(e),
                Ok(obj) => {
                    return Ok(Written::new(scale_of(res, &obj), false, Vec::new()));
                }
            }
        }
        Err(ApiError::conflict(&res.plural, &res.group, name))
    }
}

/// Sets a `.a.b.c` path, creating objects on the way.
fn set_path(obj: &mut Value, path: &str, value: Value) {
    let segs: Vec<&str> = path.trim_start_matches('.').split('.').collect();
    let mut cur = obj;
    for (i, seg) in segs.iter().enumerate() {
        if i + 1 == segs.len() {
            cur[*seg] = value;
            return;
        }
        if !cur.get(*seg).is_some_and(Value::is_object) {
            cur[*seg] = json!({});
        }
        cur = &mut cur[*seg];
    }
}

fn get_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let pointer = format!("/{}", path.trim_start_matches('.').replace('.', "/"));
    obj.pointer(&pointer)
}

/// The `autoscaling/v1` Scale of a scalable object.
fn scale_of(res: &Resource, obj: &Value) -> Value {
    let paths = res.scale.as_ref();
    let spec_replicas = paths
        .and_then(|p| get_path(obj, &p.spec_replicas))
        .cloned()
        .unwrap_or(json!(0));
    let status_replicas = paths
        .and_then(|p| get_path(obj, &p.status_replicas))
        .cloned()
        .unwrap_or(json!(0));
    let selector = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let m = object::meta(obj).cloned().unwrap_or_default();
    let mut meta = json!({});
    for f in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = m.get(f) {
            meta[f] = v.clone();
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": meta,
        "spec": {"replicas": spec_replicas},
        "status": {"replicas": status_replicas, "selector": selector},
    })
}

fn patch_scale(current: &Value, patch: &Value, patch_type: PatchType) -> ApiResult<Value> {
    let mut v = current.clone();
    match patch_type {
        PatchType::Json => rotor_patch::json_patch(&mut v, patch)
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
        _ => rotor_patch::merge_patch(&mut v, patch),
    }
    Ok(v)
}

/// A request as it arrived: its user (or why it has none), its parts and what they ask.
struct Admitted {
    user: ApiResult<UserInfo>,
    parts: http::request::Parts,
    body: Body,
    query: Query,
    attrs: authz::Attributes,
}

/// A request for a resource, as routed and authorized.
struct ResourceCall {
    method: Method,
    rr: ResourceRequest,
    query: Query,
    /// What authorization allowed: all of it, or a write limited to some fields.
    grant: Grant,
    /// Who writes an RBAC object (for escalation prevention); None for `system:masters`.
    requester: Option<Arc<authz::escalation::Requester>>,
}

/// A request's body, bounded.
async fn read_body(body: Body) -> ApiResult<Bytes> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::too_large(format!(
                "the request body is larger than {MAX_BODY_BYTES} bytes"
            ))
        })
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn write_options(query: &Query, headers: &HeaderMap, method: &Method) -> ApiResult<WriteOptions> {
    let validation = match query.get("fieldValidation") {
        None | Some("Warn") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation: unsupported value \"{other}\": supported values: \"Ignore\", \"Warn\", \"Strict\""
            )));
        }
    };
    let dry_run = match query.get("dryRun") {
        None => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "dryRun: unsupported value \"{other}\": supported values: \"All\""
            )));
        }
    };
    let field_manager = match query.get("fieldManager") {
        Some(m) => m.to_string(),
        None => {
            let ua = header_str(headers, header::USER_AGENT);
            let base = ua.split('/').next().unwrap_or_default();
            if base.is_empty() {
                "unknown".to_string()
            } else {
                base.to_string()
            }
        }
    };
    if field_manager.len() > 128 {
        return Err(ApiError::bad_request(
            "fieldManager: Too long: must have at most 128 bytes",
        ));
    }
    let force = query.flag("force");
    let is_apply = *method == Method::PATCH
        && header_str(headers, header::CONTENT_TYPE).starts_with("application/apply-patch");
    if is_apply && query.get("fieldManager").is_none() {
        return Err(ApiError::bad_request(
            "PATCH /apply requires a non-empty fieldManager",
        ));
    }
    Ok(WriteOptions {
        dry_run,
        field_manager,
        validation,
        force,
        limit: None,
        requester: None,
    })
}

/// A DELETE's `DeleteOptions` (JSON, or protobuf as typed clients such as kubectl drain send
/// them) and whether it is a dry run.
fn delete_options(
    headers: &HeaderMap,
    body: &[u8],
    res: &Resource,
    opts: &WriteOptions,
) -> ApiResult<(Value, bool)> {
    let protobuf = header_str(headers, header::CONTENT_TYPE)
        .starts_with("application/vnd.kubernetes.protobuf");
    let options = match (body.is_empty(), protobuf) {
        (true, _) => Value::Null,
        (false, true) => protobuf::decode_object(body, res)?,
        (false, false) => decode_json(body, "DeleteOptions")?,
    };
    let dry_run = opts.dry_run
        || options
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
    Ok((options, dry_run))
}

fn list_options(query: &Query, res: &Resource) -> ApiResult<ListOptions> {
    let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or_default())
        .map_err(|e| ApiError::bad_request(format!("unable to parse fieldSelector: {e}")))?;
    if let Some(label) = fields.unsupported(|l| res.supports_field_label(l)) {
        return Err(ApiError::bad_request(format!(
            "field label not supported: {label}"
        )));
    }
    Ok(ListOptions {
        labels: LabelSelector::parse(query.get("labelSelector").unwrap_or_default())
            .map_err(|e| ApiError::bad_request(format!("unable to parse labelSelector: {e}")))?,
        fields,
        limit: query.u64("limit")?.unwrap_or(0) as usize,
        continue_token: query.get("continue").map(String::from),
        exact: None,
    })
}

fn decode_json(body: &[u8], what: &str) -> ApiResult<Value> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request is not a valid {what}: {e}"
        ))
    })
}

/// Decodes a create/update body by Content-Type: JSON, YAML, or protobuf (every built-in kind,
/// by the envelope's apiVersion and kind: a scale subresource body is an autoscaling/v1 Scale).
fn decode_body(headers: &HeaderMap, body: &[u8], res: &Resource) -> ApiResult<Value> {
    let ct = header_str(headers, header::CONTENT_TYPE);
    let essence = ct.split(';').next().unwrap_or_default().trim();
    match essence {
        "" | "application/json" | "*/*" => decode_json(body, &res.kind),
        "application/yaml" => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("the YAML body is not valid UTF-8"))?;
            yaml_serde::from_str(text).map_err(|e| {
                ApiError::bad_request(format!(
                    "the body of the request is not a valid {} YAML document: {e}",
                    res.kind
                ))
            })
        }
        "application/vnd.kubernetes.protobuf" => protobuf::decode_object(body, res),
        other => Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {other:?})"
        ))),
    }
}

fn parse_patch_body(
    body: &[u8],
    patch_type: PatchType,
    res: &Resource,
    name: &str,
) -> ApiResult<Value> {
    let parsed = match patch_type {
        PatchType::Apply => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("the apply body is not valid UTF-8"))?;
            yaml_serde::from_str::<Value>(text).map_err(|e| {
                ApiError::bad_request(format!(
                    "error decoding YAML apply patch for {} \"{name}\": {e}",
                    res.kind
                ))
            })?
        }
        _ => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "error decoding patch for {} \"{name}\": {e}",
                res.kind
            ))
        })?,
    };
    Ok(parsed)
}

pub(crate) fn json_response(code: StatusCode, body: &Value, warnings: &[String]) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    json_bytes_response(code, bytes.into(), warnings)
}

/// A reply whose JSON body is already encoded.
fn json_bytes_response(code: StatusCode, bytes: Bytes, warnings: &[String]) -> Response {
    let mut builder = Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json");
    for w in warnings.iter().take(50) {
        let text = w.replace(['"', '\n', '\r'], "'");
        builder = builder.header("Warning", format!("299 - \"{text}\""));
    }
    builder
        .body(Body::from(bytes))
        .unwrap_or_else(|_| (StatusCode::INTERNAL_SERVER_ERROR, "response").into_response())
}

/// The host of an authority (`name:port`, `[::1]:port`, `name`), without port or brackets.
fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}
