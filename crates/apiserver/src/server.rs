//! The API server: one generic implementation of create/get/list/update/patch/delete/watch over
//! the resource table and a [`Store`](rotor_store::Store). HTTP is a thin layer on top
//! ([`ApiServer::handle`]); the simulator calls the same methods in-process.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, header};
use rotor_store::{DynStore, KeyValue, StoreError};
use serde_json::{Value, json};

use crate::cursor::AnyCursor;
use crate::error::{ApiError, ApiResult, Cause};
use crate::object::{self, meta_mut};
use crate::registry::{Registry, Resource, resources_from_crd};
use crate::request::{Query, ResourceRequest, Target, parse_target};
use crate::selector::{FieldSelector, LabelSelector};
use crate::{discovery, protobuf, table, watch};

/// Largest request body accepted, as kube-apiserver (3 MiB).
const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// How often a write that lost an optimistic-concurrency race is retried server-side (patches and
/// unconditional updates), like kube-apiserver's GuaranteedUpdate.
const MAX_WRITE_ATTEMPTS: usize = 8;

/// Namespaces a cluster cannot work without; deleting them is refused, as kube-apiserver does.
const PROTECTED_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

/// How a server presents itself and whom it lets in.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Kubernetes minor version this server claims (`/version`) and whose schemas it serves.
    pub kubernetes_minor: u32,
    /// Bearer token required on every request but `/version` and health; None = open.
    pub token: Option<String>,
    /// Accept requests that present no credentials at all (a wrong token is still refused).
    /// client-go never sends a bearer token over plain HTTP, so loopback HTTP listeners that
    /// kubectl must reach set this until rotor serves TLS.
    pub anonymous: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            kubernetes_minor: 35,
            token: None,
            anonymous: false,
        }
    }
}

/// `fieldValidation`: what to do with unknown or mistyped fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

/// Options shared by every write.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub field_manager: String,
    pub validation: FieldValidation,
    pub force: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            dry_run: false,
            field_manager: "rotor".into(),
            validation: FieldValidation::Strict,
            force: false,
        }
    }
}

/// Options of a list (and of the initial state of a watch).
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: usize,
    pub continue_token: Option<String>,
}

impl ListOptions {
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels
            .matches(object::meta(obj).and_then(|m| m.get("labels")))
            && (self.fields.is_empty() || self.fields.matches(obj))
    }
}

/// The patch types Kubernetes accepts, by Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or_default().trim() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

/// A written object and the warnings the write produced (sent as `Warning` headers).
pub struct Written {
    pub object: Value,
    pub created: bool,
    pub warnings: Vec<String>,
}

/// A Kubernetes-compatible API server over one store.
pub struct ApiServer {
    store: DynStore,
    registry: Registry,
    config: ServerConfig,
    openapi: Arc<rotor_openapi::Spec>,
    next_cluster_ip: AtomicU32,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("kubernetes_minor", &self.config.kubernetes_minor)
            .finish_non_exhaustive()
    }
}

impl ApiServer {
    /// Opens a server over `store`: re-registers the CRDs found there, creates the system
    /// namespaces, and resumes namespace deletions that a restart interrupted.
    pub async fn new(store: DynStore, config: ServerConfig) -> anyhow::Result<Arc<Self>> {
        let openapi = rotor_openapi::spec(config.kubernetes_minor).map_err(|e| {
            anyhow::anyhow!("Kubernetes 1.{} schemas: {e}", config.kubernetes_minor)
        })?;
        let server = Arc::new(ApiServer {
            store,
            registry: Registry::default(),
            config,
            openapi,
            next_cluster_ip: AtomicU32::new(u32::from_be_bytes([10, 96, 0, 10])),
        });
        let crds = server.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")?;
        let page = server.store.list(&crds.key_prefix(), None, 0).await?;
        for kv in &page.items {
            let crd = decode(kv)?;
            if let Ok(resources) = resources_from_crd(&crd) {
                server.registry.register_crd(object::name(&crd), resources);
            }
        }
        let namespaces = server.resource("", "v1", "namespaces")?;
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            match server
                .create(&namespaces, None, obj, &WriteOptions::default())
                .await
            {
                Ok(_) => {}
                Err(e) if e.reason == "AlreadyExists" => {}
                Err(e) => return Err(anyhow::anyhow!("creating namespace {ns}: {e}")),
            }
        }
        for kv in server
            .store
            .list(&namespaces.key_prefix(), None, 0)
            .await?
            .items
        {
            let ns = decode(&kv)?;
            if object::is_deleting(&ns) {
                server.spawn_namespace_cleanup(object::name(&ns).to_string());
            }
        }
        Ok(server)
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn store(&self) -> &DynStore {
        &self.store
    }

    pub fn openapi(&self) -> &Arc<rotor_openapi::Spec> {
        &self.openapi
    }

    /// A served resource by group, version and plural name.
    pub fn resource(&self, group: &str, version: &str, plural: &str) -> ApiResult<Arc<Resource>> {
        self.registry
            .lookup(group, version, plural)
            .ok_or_else(|| ApiError::path_not_found(&format!("{group}/{version}/{plural}")))
    }

    fn cursor(&self, res: &Resource) -> Option<AnyCursor> {
        match &res.custom_schema {
            Some(schema) => Some(AnyCursor::Custom(rotor_openapi::CustomCursor::new(
                self.openapi.clone(),
                schema.clone(),
            ))),
            None => self.openapi.cursor(&res.definition).map(AnyCursor::Builtin),
        }
    }

    // ---------------------------------------------------------------- reads

    pub async fn get(&self, res: &Resource, ns: Option<&str>, name: &str) -> ApiResult<Value> {
        Ok(self.get_kv(res, ns, name).await?.0)
    }

    async fn get_kv(
        &self,
        res: &Resource,
        ns: Option<&str>,
        name: &str,
    ) -> ApiResult<(Value, u64)> {
        match self.store.get(&res.key(ns, name)).await? {
            Some(kv) => Ok((decode_as(&kv, res)?, kv.mod_revision)),
            None => Err(ApiError::not_found(&res.plural, &res.group, name)),
        }
    }

    /// A list object (`DeploymentList`…) of the matching objects, paginated by `limit`/`continue`.
    pub async fn list(
        &self,
        res: &Resource,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> ApiResult<Value> {
        let prefix = res.namespace_prefix(ns);
        let start_after = match &opts.continue_token {
            Some(t) => Some(decode_continue(t, &prefix)?),
            None => None,
        };
        let mut items = Vec::new();
        let mut cursor = start_after;
        let mut revision;
        let mut more;
        // Selectors filter after the store; keep reading pages until `limit` matches are found.
        loop {
            let want = if opts.limit == 0 {
                0
            } else {
                (opts.limit - items.len()).max(64)
            };
            let page = self.store.list(&prefix, cursor.as_deref(), want).await?;
            revision = page.revision;
            more = page.more;
            let mut last_key = None;
            for kv in page.items {
                last_key = Some(kv.key.clone());
                let obj = decode_as(&kv, res)?;
                if opts.matches(&obj) {
                    items.push(obj);
                    if opts.limit != 0 && items.len() == opts.limit {
                        break;
                    }
                }
            }
            let full = opts.limit != 0 && items.len() >= opts.limit;
            if full {
                // More remain if the page had more keys after the one we stopped at.
                if let Some(k) = &last_key {
                    more = more || self.store.list(&prefix, Some(k), 1).await?.items.len() == 1;
                }
                cursor = last_key;
                break;
            }
            if !more || last_key.is_none() {
                more = false;
                break;
            }
            cursor = last_key;
        }
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if more && let Some(last) = &cursor {
            metadata["continue"] = json!(encode_continue(&last[prefix.len()..], revision));
        }
        Ok(json!({
            "apiVersion": res.api_version(),
            "kind": format!("{}List", res.kind),
            "metadata": metadata,
            "items": items,
        }))
    }

    // ---------------------------------------------------------------- writes

    pub async fn create(
        &self,
        res: &Arc<Resource>,
        ns: Option<&str>,
        mut obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(format!(
                "the body of a {} create must be a JSON object",
                res.kind
            )));
        }
        check_type(res, &mut obj)?;
        let ns = self.check_namespace(res, ns, &mut obj)?;
        {
            let m = meta_mut(&mut obj);
            let has_name = m
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            if !has_name
                && let Some(prefix) = m
                    .get("generateName")
                    .and_then(Value::as_str)
                    .filter(|p| !p.is_empty())
            {
                let generated = format!("{prefix}{}", object::random_suffix());
                m.insert("name".into(), json!(generated));
            }
        }
        let name = object::name(&obj).to_string();
        let warnings = self.validate(res, &obj, &name, opts)?;
        if let Some(ns) = &ns {
            let namespaces = self.resource("", "v1", "namespaces")?;
            // Only a namespace being deleted needs parsing; the raw bytes tell which.
            let is_deleting = |kv: &KeyValue| {
                kv.value.windows(19).any(|w| w == b"\"deletionTimestamp\"")
                    && decode(kv).is_ok_and(|n| object::is_deleting(&n))
            };
            match self.store.get(&namespaces.key(None, ns)).await? {
                None => return Err(ApiError::not_found("namespaces", "", ns)),
                Some(kv) if is_deleting(&kv) => {
                    return Err(ApiError::forbidden(format!(
                        "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        crate::error::qualified(&res.plural, &res.group)
                    )));
                }
                Some(_) => {}
            }
        }
        {
            let now = object::now_rfc3339();
            let m = meta_mut(&mut obj);
            m.insert("uid".into(), json!(object::new_uid()));
            m.insert("creationTimestamp".into(), json!(now));
            m.insert("generation".into(), json!(1));
            for f in [
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
            ] {
                m.remove(f);
            }
        }
        self.prepare_create(res, &mut obj)?;
        let cursor = self.cursor(res);
        rotor_patch::track_update(
            None,
            &mut obj,
            cursor.as_ref(),
            &apply_opts(res, opts, None, &object::now_rfc3339()),
        );
        if opts.dry_run {
            return Ok(Written {
                object: obj,
                created: true,
                warnings,
            });
        }
        let key = res.key(ns.as_deref(), &name);
        let kv = match self.store.create(&key, encode(&obj, res)?).await {
            Ok(kv) => kv,
            Err(StoreError::AlreadyExists(_)) => {
                return Err(ApiError::already_exists(&res.plural, &res.group, &name));
            }
            Err(e) => return Err(e.into()),
        };
        let stored = with_revision(obj, kv.mod_revision);
        self.after_write(res, &stored);
        Ok(Written {
            object: stored,
            created: true,
            warnings,
        })
    }

    /// PUT: replaces the object (or only its status, for the `status` subresource).
    pub async fn update(
        &self,
        res: &Arc<Resource>,
        ns: Option<&str>,
        name: &str,
        mut obj: Value,
        sub: Option<&str>,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(format!(
                "the body of a {} update must be a JSON object",
                res.kind
            )));
        }
        check_type(res, &mut obj)?;
        let body_name = object::name(&obj).to_string();
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        meta_mut(&mut obj).insert("name".into(), json!(name));
        let ns = self.check_namespace(res, ns, &mut obj)?;
        let precondition: Option<u64> = match object::meta_str(&obj, "resourceVersion") {
            Some(rv) => Some(rv.parse().map_err(|_| {
                ApiError::bad_request(format!("metadata.resourceVersion: invalid value \"{rv}\""))
            })?),
            None => None,
        };
        let warnings = self.validate(res, &obj, name, opts)?;
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let (current, rev) = self.get_kv(res, ns.as_deref(), name).await?;
            if precondition.is_some_and(|p| p != rev) {
                return Err(ApiError::conflict(&res.plural, &res.group, name));
            }
            let mut next = self.prepare_update(res, &current, obj.clone(), sub)?;
            let cursor = self.cursor(res);
            rotor_patch::track_update(
                Some(&current),
                &mut next,
                cursor.as_ref(),
                &apply_opts(res, opts, sub, &object::now_rfc3339()),
            );
            match self
                .commit_update(res, ns.as_deref(), name, current, next, rev, opts)
                .await
            {
                Err(e) if e.reason == "Conflict" && precondition.is_none() => continue,
                other => {
                    return other.map(|object| Written {
                        object,
                        created: false,
                        warnings,
                    });
                }
            }
        }
        Err(ApiError::conflict(&res.plural, &res.group, name))
    }

    /// PATCH in any of the four patch types; server-side apply creates a missing object.
    #[allow(clippy::too_many_arguments)]
    pub async fn patch(
        &self,
        res: &Arc<Resource>,
        ns: Option<&str>,
        name: &str,
        patch_type: PatchType,
        body: &Value,
        sub: Option<&str>,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        if patch_type == PatchType::Strategic && res.is_custom() {
            return Err(ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (strategic merge patch is not supported for custom resource {})",
                crate::error::qualified(&res.plural, &res.group)
            )));
        }
        if patch_type != PatchType::Json && !body.is_object() {
            return Err(ApiError::bad_request(format!(
                "the patch for {} \"{name}\" must be a JSON object",
                res.kind
            )));
        }
        if opts.force && patch_type != PatchType::Apply {
            return Err(ApiError::bad_request(
                "force is only allowed for apply patches",
            ));
        }
        let ns = match (res.namespaced, ns) {
            (true, None) => {
                return Err(ApiError::bad_request(format!(
                    "{} is namespaced: a namespace is required",
                    res.kind
                )));
            }
            (true, Some(n)) => Some(n.to_string()),
            (false, _) => None,
        };
        let precondition: Option<u64> = match body
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
        {
            Some(rv) => Some(rv.parse().map_err(|_| {
                ApiError::bad_request(format!("metadata.resourceVersion: invalid value \"{rv}\""))
            })?),
            None => None,
        };
        let cursor = self.cursor(res);
        let now = object::now_rfc3339();
        let aopts = apply_opts(res, opts, sub, &now);
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let (current, rev) = match self.get_kv(res, ns.as_deref(), name).await {
                Ok(found) => found,
                Err(e)
                    if e.reason == "NotFound"
                        && patch_type == PatchType::Apply
                        && sub.is_none() =>
                {
                    let mut applied = body.clone();
                    check_type(res, &mut applied)?;
                    let applied_name = object::name(&applied).to_string();
                    if !applied_name.is_empty() && applied_name != name {
                        return Err(ApiError::bad_request(format!(
                            "the name of the object ({applied_name}) does not match the name on the URL ({name})"
                        )));
                    }
                    meta_mut(&mut applied).insert("name".into(), json!(name));
                    let merged =
                        rotor_patch::server_side_apply(None, &applied, cursor.as_ref(), &aopts)
                            .map_err(|e| apply_error(res, name, e))?;
                    let mut create_opts = opts.clone();
                    create_opts.field_manager = opts.field_manager.clone();
                    let mut written = self
                        .create_applied(res, ns.as_deref(), merged, &create_opts)
                        .await?;
                    written.created = true;
                    return Ok(written);
                }
                Err(e) => return Err(e),
            };
            if precondition.is_some_and(|p| p != rev) {
                return Err(ApiError::conflict(&res.plural, &res.group, name));
            }
            let patched = match patch_type {
                PatchType::Merge => {
                    let mut v = current.clone();
                    rotor_patch::merge_patch(&mut v, body);
                    v
                }
                PatchType::Json => {
                    let mut v = current.clone();
                    rotor_patch::json_patch(&mut v, body).map_err(|e| {
                        ApiError::invalid(
                            &res.kind,
                            &res.group,
                            name,
                            vec![Cause {
                                field: "patch".into(),
                                message: e.to_string(),
                                reason: "FieldValueInvalid",
                            }],
                        )
                    })?;
                    v
                }
                PatchType::Strategic => {
                    rotor_patch::strategic_merge_patch(&current, body, cursor.as_ref()).map_err(
                        |e| {
                            ApiError::bad_request(format!(
                                "strategic merge patch of {} \"{name}\": {e}",
                                res.kind
                            ))
                        },
                    )?
                }
                PatchType::Apply => {
                    let mut applied = body.clone();
                    check_type(res, &mut applied)?;
                    rotor_patch::server_side_apply(
                        Some(&current),
                        &applied,
                        cursor.as_ref(),
                        &aopts,
                    )
                    .map_err(|e| apply_error(res, name, e))?
                }
            };
            let warnings = self.validate(res, &patched, name, opts)?;
            let mut next = self.prepare_update(res, &current, patched, sub)?;
            if patch_type != PatchType::Apply {
                rotor_patch::track_update(Some(&current), &mut next, cursor.as_ref(), &aopts);
            }
            match self
                .commit_update(res, ns.as_deref(), name, current, next, rev, opts)
                .await
            {
                Err(e)
                    if e.reason == "Conflict"
                        && precondition.is_none()
                        && e.details.is_some()
                        && !e.message.starts_with("Apply failed") =>
                {
                    continue;
                }
                other => {
                    return other.map(|object| Written {
                        object,
                        created: false,
                        warnings,
                    });
                }
            }
        }
        Err(ApiError::conflict(&res.plural, &res.group, name))
    }

    /// Create for server-side apply: the managed fields were already computed by the apply.
    async fn create_applied(
        &self,
        res: &Arc<Resource>,
        ns: Option<&str>,
        obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        let managed = object::meta(&obj)
            .and_then(|m| m.get("managedFields"))
            .cloned();
        let mut written = self
            .create(
                res,
                ns,
                obj,
                &WriteOptions {
                    dry_run: true,
                    ..opts.clone()
                },
            )
            .await?;
        if let Some(mf) = managed {
            meta_mut(&mut written.object).insert("managedFields".into(), mf);
        }
        if opts.dry_run {
            return Ok(written);
        }
        let name = object::name(&written.object).to_string();
        let kv = match self
            .store
            .create(&res.key(ns, &name), encode(&written.object, res)?)
            .await
        {
            Ok(kv) => kv,
            Err(StoreError::AlreadyExists(_)) => {
                return Err(ApiError::conflict(&res.plural, &res.group, &name));
            }
            Err(e) => return Err(e.into()),
        };
        written.object = with_revision(written.object, kv.mod_revision);
        self.after_write(res, &written.object);
        Ok(written)
    }

    /// DELETE: removes the object, or marks it for deletion while finalizers remain.
    pub async fn delete(
        self: &Arc<Self>,
        res: &Arc<Resource>,
        ns: Option<&str>,
        name: &str,
        options: &Value,
        dry_run: bool,
    ) -> ApiResult<Value> {
        let ns = if res.namespaced { ns } else { None };
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let (current, rev) = self.get_kv(res, ns, name).await?;
            if let Some(want) = options
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                && object::meta_str(&current, "uid") != Some(want)
            {
                return Err(ApiError::conflict(&res.plural, &res.group, name));
            }
            if let Some(want) = options
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                && want != rev.to_string()
            {
                return Err(ApiError::conflict(&res.plural, &res.group, name));
            }
            if dry_run {
                return Ok(current);
            }
            let is_namespace = res.group.is_empty() && res.plural == "namespaces";
            if is_namespace && PROTECTED_NAMESPACES.contains(&name) {
                return Err(ApiError::forbidden(format!(
                    "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
                )));
            }
            if is_namespace || !object::finalizers(&current).is_empty() {
                if object::is_deleting(&current) {
                    return Ok(current);
                }
                let mut next = current.clone();
                let m = meta_mut(&mut next);
                m.insert("deletionTimestamp".into(), json!(object::now_rfc3339()));
                m.insert("deletionGracePeriodSeconds".into(), json!(0));
                if is_namespace {
                    next["status"] = json!({"phase": "Terminating"});
                }
                match self
                    .store
                    .update(&res.key(ns, name), encode(&next, res)?, rev)
                    .await
                {
                    Ok(kv) => {
                        if is_namespace {
                            self.spawn_namespace_cleanup(name.to_string());
                        }
                        return Ok(with_revision(next, kv.mod_revision));
                    }
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            match self.store.delete(&res.key(ns, name), Some(rev)).await {
                Ok((_, delete_rev)) => {
                    let gone = with_revision(current, delete_rev);
                    self.after_delete(res, &gone);
                    return Ok(gone);
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(StoreError::NotFound(_)) => {
                    return Err(ApiError::not_found(&res.plural, &res.group, name));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::conflict(&res.plural, &res.group, name))
    }

    // ---------------------------------------------------------------- write pipeline

    /// The namespace a write goes to: the URL's, checked against the body's.
    fn check_namespace(
        &self,
        res: &Resource,
        ns: Option<&str>,
        obj: &mut Value,
    ) -> ApiResult<Option<String>> {
        let m = meta_mut(obj);
        if !res.namespaced {
            m.remove("namespace");
            return Ok(None);
        }
        let body_ns = m
            .get("namespace")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from);
        let ns = match (ns, body_ns) {
            (Some(url), Some(body)) if url != body => {
                return Err(ApiError::bad_request(format!(
                    "the namespace of the provided object ({body}) does not match the namespace sent on the request ({url})"
                )));
            }
            (Some(url), _) => url.to_string(),
            (None, Some(body)) => body,
            (None, None) => {
                return Err(ApiError::bad_request(format!(
                    "{} is namespaced: a namespace is required",
                    res.kind
                )));
            }
        };
        m.insert("namespace".into(), json!(ns));
        Ok(Some(ns))
    }

    /// Name, label and schema validation. Strict field validation fails the request; Warn returns
    /// the problems as warnings.
    fn validate(
        &self,
        res: &Resource,
        obj: &Value,
        name: &str,
        opts: &WriteOptions,
    ) -> ApiResult<Vec<String>> {
        let mut causes = Vec::new();
        let label_only =
            res.group.is_empty() && matches!(res.plural.as_str(), "namespaces" | "services");
        object::validate_name(name, label_only, "metadata.name", &mut causes);
        object::validate_labels(obj, &mut causes);
        if res.group == "apiextensions.k8s.io"
            && let Err((field, message)) = resources_from_crd(obj)
        {
            causes.push(Cause {
                field,
                message,
                reason: "FieldValueInvalid",
            });
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(&res.kind, &res.group, name, causes));
        }
        if opts.validation == FieldValidation::Ignore {
            return Ok(Vec::new());
        }
        let problems = match &res.custom_schema {
            Some(schema) => rotor_openapi::validate_custom(&self.openapi, schema, obj),
            None => self.openapi.validate(&res.definition, obj),
        };
        let messages: Vec<String> = problems.iter().map(|p| p.message.clone()).collect();
        if opts.validation == FieldValidation::Strict && !messages.is_empty() {
            return Err(ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                res.kind,
                res.api_version(),
                res.kind,
                messages.join(", ")
            )));
        }
        Ok(messages)
    }

    /// Kind-specific defaults on create (the "strategy" of each kind).
    fn prepare_create(&self, res: &Resource, obj: &mut Value) -> ApiResult<()> {
        if let Some(schema) = &res.custom_schema {
            rotor_openapi::prune_custom(&self.openapi, schema, obj);
        }
        let name = object::name(obj).to_string();
        match (res.group.as_str(), res.plural.as_str()) {
            ("", "namespaces") => {
                meta_mut(obj)
                    .entry("labels")
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .map(|l| l.insert("kubernetes.io/metadata.name".into(), json!(name)));
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
                obj["status"] = json!({"phase": "Active"});
            }
            ("", "services") => {
                let spec = ensure_object(obj, "spec");
                spec.entry("type").or_insert_with(|| json!("ClusterIP"));
                spec.entry("sessionAffinity")
                    .or_insert_with(|| json!("None"));
                let wants_ip =
                    !matches!(spec.get("clusterIP").and_then(Value::as_str), Some("None"))
                        && spec.get("type").and_then(Value::as_str) != Some("ExternalName");
                if wants_ip
                    && spec
                        .get("clusterIP")
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                {
                    let ip = std::net::Ipv4Addr::from(
                        self.next_cluster_ip.fetch_add(1, Ordering::Relaxed),
                    )
                    .to_string();
                    spec.insert("clusterIP".into(), json!(ip));
                    spec.insert("clusterIPs".into(), json!([ip]));
                }
                if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                        p.entry("protocol").or_insert_with(|| json!("TCP"));
                        if let Some(port) = p.get("port").cloned() {
                            p.entry("targetPort").or_insert(port);
                        }
                    }
                }
                obj["status"] = json!({"loadBalancer": {}});
            }
            ("", "secrets") => {
                obj.as_object_mut()
                    .map(|o| o.entry("type").or_insert_with(|| json!("Opaque")));
                fold_string_data(obj);
            }
            ("", "pods") if obj.pointer("/status/phase").is_none() => {
                obj["status"] = json!({"phase": "Pending"});
            }
            ("", "nodes") => {}
            ("apps", "deployments" | "statefulsets" | "replicasets") => {
                ensure_object(obj, "spec")
                    .entry("replicas")
                    .or_insert_with(|| json!(1));
                obj["status"] = json!({});
            }
            ("apiextensions.k8s.io", "customresourcedefinitions") => crd_status(obj),
            _ if res.has_status => {
                if let Some(o) = obj.as_object_mut() {
                    o.remove("status");
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Builds the next stored object from the current one and the requested one.
    fn prepare_update(
        &self,
        res: &Resource,
        current: &Value,
        requested: Value,
        sub: Option<&str>,
    ) -> ApiResult<Value> {
        let mut requested = requested;
        if let Some(schema) = &res.custom_schema {
            rotor_openapi::prune_custom(&self.openapi, schema, &mut requested);
        }
        let mut next = match sub {
            Some("status") => {
                let mut n = current.clone();
                n["status"] = requested.get("status").cloned().unwrap_or(json!({}));
                n
            }
            _ => {
                let mut n = requested;
                if res.has_status {
                    match current.get("status") {
                        Some(s) => n["status"] = s.clone(),
                        None => {
                            n.as_object_mut().map(|o| o.remove("status"));
                        }
                    }
                }
                n
            }
        };
        next["apiVersion"] = json!(res.api_version());
        next["kind"] = json!(res.kind);
        let cur_meta = object::meta(current).cloned().unwrap_or_default();
        {
            let m = meta_mut(&mut next);
            for f in [
                "uid",
                "creationTimestamp",
                "name",
                "namespace",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match cur_meta.get(f) {
                    Some(v) => {
                        m.insert(f.into(), v.clone());
                    }
                    None => {
                        m.remove(f);
                    }
                }
            }
            m.remove("resourceVersion");
        }
        if object::spec_part(current) != object::spec_part(&next) {
            let generation = cur_meta
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1;
            meta_mut(&mut next).insert("generation".into(), json!(generation));
        }
        match (res.group.as_str(), res.plural.as_str()) {
            ("", "services") => {
                for f in ["clusterIP", "clusterIPs"] {
                    if next.pointer(&format!("/spec/{f}")).is_none()
                        && let Some(v) = current.pointer(&format!("/spec/{f}")).cloned()
                    {
                        ensure_object(&mut next, "spec").insert(f.into(), v);
                    }
                }
            }
            ("", "secrets") => fold_string_data(&mut next),
            ("", "namespaces") if next.get("status").is_none() => {
                next["status"] = current
                    .get("status")
                    .cloned()
                    .unwrap_or(json!({"phase": "Active"}));
            }
            ("apiextensions.k8s.io", "customresourcedefinitions") => crd_status(&mut next),
            _ => {}
        }
        Ok(next)
    }

    /// Writes `next` if the key is still at `rev`; an object being deleted whose last finalizer
    /// went away is removed instead.
    #[allow(clippy::too_many_arguments)]
    async fn commit_update(
        &self,
        res: &Arc<Resource>,
        ns: Option<&str>,
        name: &str,
        current: Value,
        next: Value,
        rev: u64,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        let key = res.key(ns, name);
        if object::is_deleting(&next)
            && object::finalizers(&next).is_empty()
            && !(res.group.is_empty() && res.plural == "namespaces")
        {
            if opts.dry_run {
                return Ok(next);
            }
            return match self.store.delete(&key, Some(rev)).await {
                Ok((_, delete_rev)) => {
                    let gone = with_revision(next, delete_rev);
                    self.after_delete(res, &gone);
                    Ok(gone)
                }
                Err(StoreError::Conflict { .. }) => {
                    Err(ApiError::conflict(&res.plural, &res.group, name))
                }
                Err(StoreError::NotFound(_)) => {
                    Err(ApiError::not_found(&res.plural, &res.group, name))
                }
                Err(e) => Err(e.into()),
            };
        }
        // A write that changes nothing is not a write: resourceVersion stays, no watch event.
        if strip_volatile(&current) == strip_volatile(&next) {
            return Ok(current);
        }
        if opts.dry_run {
            return Ok(with_revision(next, rev));
        }
        match self.store.update(&key, encode(&next, res)?, rev).await {
            Ok(kv) => {
                let stored = with_revision(next, kv.mod_revision);
                self.after_write(res, &stored);
                Ok(stored)
            }
            Err(StoreError::Conflict { .. }) => {
                Err(ApiError::conflict(&res.plural, &res.group, name))
            }
            Err(StoreError::NotFound(_)) => Err(ApiError::not_found(&res.plural, &res.group, name)),
            Err(e) => Err(e.into()),
        }
    }

    /// Side effects of a stored write: a CRD (re)registers its resources.
    fn after_write(&self, res: &Resource, obj: &Value) {
        if res.group == "apiextensions.k8s.io"
            && res.plural == "customresourcedefinitions"
            && let Ok(resources) = resources_from_crd(obj)
        {
            self.registry.register_crd(object::name(obj), resources);
        }
    }

    /// Side effects of a delete: a CRD takes its resources and all their objects with it.
    fn after_delete(&self, res: &Resource, obj: &Value) {
        if res.group == "apiextensions.k8s.io" && res.plural == "customresourcedefinitions" {
            let removed = self.registry.unregister_crd(object::name(obj));
            if let Some(first) = removed.first() {
                let store = self.store.clone();
                let prefix = first.key_prefix();
                tokio::spawn(async move {
                    if let Ok(page) = store.list(&prefix, None, 0).await {
                        for kv in page.items {
                            let _ = store.delete(&kv.key, None).await;
                        }
                    }
                });
            }
        }
    }

    /// The namespace controller: deletes everything in a terminating namespace, then the
    /// namespace itself. Objects with finalizers are waited for, with a bounded backoff.
    fn spawn_namespace_cleanup(self: &Arc<Self>, namespace: String) {
        let server = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(20);
            loop {
                match server.sweep_namespace(&namespace).await {
                    Ok(true) => return,
                    Ok(false) => {}
                    Err(e) => tracing::warn!(namespace, error = %e, "namespace cleanup"),
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        });
    }

    /// One pass of namespace cleanup; true when the namespace is gone.
    async fn sweep_namespace(self: &Arc<Self>, namespace: &str) -> ApiResult<bool> {
        let namespaces = self.resource("", "v1", "namespaces")?;
        let Ok((ns_obj, ns_rev)) = self.get_kv(&namespaces, None, namespace).await else {
            return Ok(true);
        };
        if !object::is_deleting(&ns_obj) {
            return Ok(true);
        }
        let mut remaining = 0usize;
        let mut seen_prefixes = std::collections::HashSet::new();
        for res in self.registry.all().into_iter().filter(|r| r.namespaced) {
            let prefix = res.namespace_prefix(Some(namespace));
            if !seen_prefixes.insert(prefix.clone()) {
                continue;
            }
            let page = self.store.list(&prefix, None, 0).await?;
            for kv in page.items {
                remaining += 1;
                let obj = decode(&kv)?;
                if !object::is_deleting(&obj) {
                    let _ = self
                        .delete(
                            &res,
                            Some(namespace),
                            object::name(&obj),
                            &Value::Null,
                            false,
                        )
                        .await;
                }
            }
        }
        if remaining > 0 {
            return Ok(false);
        }
        if !object::finalizers(&ns_obj).is_empty() {
            return Ok(false);
        }
        match self
            .store
            .delete(&namespaces.key(None, namespace), Some(ns_rev))
            .await
        {
            Ok(_) | Err(StoreError::NotFound(_)) => Ok(true),
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    // ---------------------------------------------------------------- HTTP

    /// An axum router that serves this API on every path.
    pub fn router(self: Arc<Self>) -> axum::Router {
        axum::Router::new().fallback(move |req: Request<Body>| {
            let server = self.clone();
            async move { server.handle(req).await }
        })
    }

    /// Serves one HTTP request. Never panics on client input: every failure is a `Status` body.
    pub async fn handle(self: &Arc<Self>, req: Request<Body>) -> Response {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        match self.handle_inner(req).await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::debug!(%method, %path, code = e.code.as_u16(), reason = e.reason, "request failed");
                e.into_response()
            }
        }
    }

    async fn handle_inner(self: &Arc<Self>, req: Request<Body>) -> ApiResult<Response> {
        let (parts, body) = req.into_parts();
        let target = parse_target(parts.uri.path(), &self.registry);
        let public = matches!(target, Ok(Target::Version | Target::Health));
        if !public {
            self.authorize(&parts.headers)?;
        }
        let target = target?;
        let query = Query::parse(parts.uri.query());
        let accept = header_str(&parts.headers, header::ACCEPT).to_string();
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
            | Target::GroupVersion { .. } => discovery::respond(self, &target, &accept),
            Target::OpenApiV2 | Target::OpenApiV3Index | Target::OpenApiV3(_) => {
                discovery::openapi(self, &target, &accept)
            }
            Target::Resource(rr) => {
                let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
                    .await
                    .map_err(|_| {
                        ApiError::too_large(format!(
                            "the request body is larger than {MAX_BODY_BYTES} bytes"
                        ))
                    })?;
                self.handle_resource(parts.method, &parts.headers, rr, query, bytes, &accept)
                    .await
            }
        }
    }

    fn authorize(&self, headers: &HeaderMap) -> ApiResult<()> {
        let Some(token) = &self.config.token else {
            return Ok(());
        };
        let authorization = header_str(headers, header::AUTHORIZATION);
        if authorization.is_empty() && self.config.anonymous {
            return Ok(());
        }
        let presented = authorization.strip_prefix("Bearer ").unwrap_or_default();
        // Constant-time comparison: the token is a secret.
        let equal = presented.len() == token.len()
            && presented
                .bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if equal {
            Ok(())
        } else {
            Err(ApiError::unauthorized())
        }
    }

    async fn handle_resource(
        self: &Arc<Self>,
        method: Method,
        headers: &HeaderMap,
        rr: ResourceRequest,
        query: Query,
        body: Bytes,
        accept: &str,
    ) -> ApiResult<Response> {
        let res = rr.resource.clone();
        let ns = rr.namespace.as_deref();
        let sub = rr.subresource.as_deref();
        let want_table = accept.contains("as=Table");
        let opts = write_options(&query, headers, &method)?;
        match (method, rr.name.as_deref()) {
            (Method::GET, None) if query.flag("watch") => {
                let list_opts = list_options(&query)?;
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
            (Method::GET, None) => {
                let list = self.list(&res, ns, &list_options(&query)?).await?;
                let body = if want_table {
                    table::from_list(&res, &list, &query)
                } else {
                    list
                };
                Ok(json_response(StatusCode::OK, &body, &[]))
            }
            (Method::GET, Some(name)) if query.flag("watch") => {
                let mut list_opts = list_options(&query)?;
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
            (Method::GET, Some(name)) => {
                let obj = self.get(&res, ns, name).await?;
                let body = match sub {
                    Some("scale") => scale_of(&res, &obj),
                    _ if want_table => table::from_object(&res, &obj, &query),
                    _ => obj,
                };
                Ok(json_response(StatusCode::OK, &body, &[]))
            }
            (Method::POST, None) => {
                let obj = decode_body(headers, &body, &res)?;
                let written = self.create(&res, ns, obj, &opts).await?;
                Ok(json_response(
                    StatusCode::CREATED,
                    &written.object,
                    &written.warnings,
                ))
            }
            (Method::PUT, Some(name)) => {
                let obj = decode_body(headers, &body, &res)?;
                let written = if sub == Some("scale") {
                    self.write_scale(&res, ns, name, |_, _| Ok(obj.clone()), &opts)
                        .await?
                } else {
                    self.update(&res, ns, name, obj, sub, &opts).await?
                };
                Ok(json_response(
                    StatusCode::OK,
                    &written.object,
                    &written.warnings,
                ))
            }
            (Method::PATCH, Some(name)) => {
                let ct = header_str(headers, header::CONTENT_TYPE);
                let patch_type = PatchType::from_content_type(ct).ok_or_else(|| {
                    ApiError::unsupported_media_type(format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {ct:?})"))
                })?;
                let patch = parse_patch_body(&body, patch_type, &res, name)?;
                let written = if sub == Some("scale") {
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
                let code = if written.created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                Ok(json_response(code, &written.object, &written.warnings))
            }
            (Method::DELETE, Some(name)) => {
                let options = if body.is_empty() {
                    Value::Null
                } else {
                    decode_json(&body, "DeleteOptions")?
                };
                let dry_run = opts.dry_run
                    || options
                        .get("dryRun")
                        .and_then(Value::as_array)
                        .is_some_and(|a| !a.is_empty());
                let gone = self.delete(&res, ns, name, &options, dry_run).await?;
                Ok(json_response(StatusCode::OK, &gone, &[]))
            }
            (Method::DELETE, None) => {
                let list = self.list(&res, ns, &list_options(&query)?).await?;
                let mut deleted = Vec::new();
                for item in list["items"].as_array().cloned().unwrap_or_default() {
                    let item_ns = object::meta_str(&item, "namespace").map(String::from);
                    match self
                        .delete(
                            &res,
                            item_ns.as_deref(),
                            object::name(&item),
                            &Value::Null,
                            opts.dry_run,
                        )
                        .await
                    {
                        Ok(gone) => deleted.push(gone),
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
                    return Ok(Written {
                        object: scale_of(res, &obj),
                        created: false,
                        warnings: Vec::new(),
                    });
                }
            }
        }
        Err(ApiError::conflict(&res.plural, &res.group, name))
    }
}

// -------------------------------------------------------------------- helpers

fn apply_opts<'a>(
    res: &'a Resource,
    opts: &'a WriteOptions,
    sub: Option<&'a str>,
    now: &'a str,
) -> rotor_patch::ApplyOptions<'a> {
    rotor_patch::ApplyOptions {
        manager: &opts.field_manager,
        force: opts.force,
        api_version: res.api_version(),
        time: now,
        subresource: sub,
    }
}

fn apply_error(res: &Resource, name: &str, e: rotor_patch::ApplyError) -> ApiError {
    match e {
        rotor_patch::ApplyError::Conflict { .. } => {
            ApiError::apply_conflict(&res.plural, &res.group, name, e.to_string())
        }
        other => ApiError::invalid(
            &res.kind,
            &res.group,
            name,
            vec![Cause {
                field: "patch".into(),
                message: other.to_string(),
                reason: "FieldValueInvalid",
            }],
        ),
    }
}

/// Sets apiVersion/kind from the resource; rejects a body of another kind.
fn check_type(res: &Resource, obj: &mut Value) -> ApiResult<()> {
    if let Some(kind) = obj.get("kind").and_then(Value::as_str)
        && !kind.is_empty()
        && kind != res.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the body ({kind}) does not match the resource {} (kind {})",
            crate::error::qualified(&res.plural, &res.group),
            res.kind
        )));
    }
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str) {
        let group = av.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        if !av.is_empty() && group != res.group {
            return Err(ApiError::bad_request(format!(
                "the apiVersion in the body ({av}) does not match the group of {}",
                crate::error::qualified(&res.plural, &res.group)
            )));
        }
    }
    obj["apiVersion"] = json!(res.api_version());
    obj["kind"] = json!(res.kind);
    Ok(())
}

fn ensure_object<'a>(obj: &'a mut Value, field: &str) -> &'a mut serde_json::Map<String, Value> {
    if !obj.get(field).is_some_and(Value::is_object) {
        obj[field] = json!({});
    }
    obj[field].as_object_mut().expect("object ensured above")
}

/// Secret `stringData` is write-only: folded into base64 `data`.
fn fold_string_data(obj: &mut Value) {
    use base64::Engine;
    let Some(string_data) = obj.as_object_mut().and_then(|o| o.remove("stringData")) else {
        return;
    };
    let Some(map) = string_data.as_object() else {
        return;
    };
    let data = ensure_object(obj, "data");
    for (k, v) in map {
        if let Some(s) = v.as_str() {
            data.insert(
                k.clone(),
                json!(base64::engine::general_purpose::STANDARD.encode(s)),
            );
        }
    }
}

/// The status kube-apiserver gives an accepted CRD.
fn crd_status(obj: &mut Value) {
    let now = object::now_rfc3339();
    let names = obj.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let stored: Vec<Value> = obj
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    obj["status"] = json!({
        "acceptedNames": names,
        "storedVersions": stored,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
    });
}

/// The object minus what changes on every write anyway (for no-op detection).
fn strip_volatile(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        if let Some(mf) = m.get_mut("managedFields").and_then(Value::as_array_mut) {
            for e in mf.iter_mut().filter_map(Value::as_object_mut) {
                e.remove("time");
            }
        }
    }
    if let Some(conds) = v
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    {
        for c in conds.iter_mut().filter_map(Value::as_object_mut) {
            c.remove("lastTransitionTime");
        }
    }
    v
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
    })
}

fn list_options(query: &Query) -> ApiResult<ListOptions> {
    Ok(ListOptions {
        labels: LabelSelector::parse(query.get("labelSelector").unwrap_or_default())
            .map_err(|e| ApiError::bad_request(format!("unable to parse labelSelector: {e}")))?,
        fields: FieldSelector::parse(query.get("fieldSelector").unwrap_or_default())
            .map_err(|e| ApiError::bad_request(format!("unable to parse fieldSelector: {e}")))?,
        limit: query.u64("limit")?.unwrap_or(0) as usize,
        continue_token: query.get("continue").map(String::from),
    })
}

fn decode_json(body: &[u8], what: &str) -> ApiResult<Value> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request is not a valid {what}: {e}"
        ))
    })
}

/// Decodes a create/update body by Content-Type: JSON, YAML, or (Namespace only) protobuf.
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
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {other:?})"
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
    let mut builder = Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json");
    for w in warnings.iter().take(50) {
        let text = w.replace(['"', '\n', '\r'], "'");
        builder = builder.header("Warning", format!("299 - \"{text}\""));
    }
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    builder
        .body(Body::from(bytes))
        .unwrap_or_else(|_| (StatusCode::INTERNAL_SERVER_ERROR, "response").into_response())
}

/// Stored form: the object without its resourceVersion (which is the key's revision).
fn encode(obj: &Value, res: &Resource) -> ApiResult<Bytes> {
    let has_rv = obj.pointer("/metadata/resourceVersion").is_some();
    let bytes = if has_rv || res.conversion.is_some() {
        let mut v = obj.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        if let Some(c) = res.conversion {
            c.to_storage(&mut v);
        }
        serde_json::to_vec(&v)
    } else {
        // The common case (writes never carry one): no copy of the object.
        serde_json::to_vec(obj)
    };
    bytes
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(format!("encoding object: {e}")))
}

pub(crate) fn decode(kv: &KeyValue) -> ApiResult<Value> {
    let v: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored object {} is corrupt: {e}", kv.key)))?;
    Ok(with_revision(v, kv.mod_revision))
}

/// Decodes a stored object and presents it at the requested version of its resource.
pub(crate) fn decode_as(kv: &KeyValue, res: &Resource) -> ApiResult<Value> {
    let mut v = decode(kv)?;
    if let Some(c) = res.conversion {
        c.to_served(&mut v);
    }
    v["apiVersion"] = json!(res.api_version());
    Ok(v)
}

pub(crate) fn with_revision(mut obj: Value, rev: u64) -> Value {
    meta_mut(&mut obj).insert("resourceVersion".into(), json!(rev.to_string()));
    obj
}

fn encode_continue(after: &str, rev: u64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&json!({"start": after, "rv": rev})).unwrap_or_default())
}

fn decode_continue(token: &str, prefix: &str) -> ApiResult<String> {
    use base64::Engine;
    let bad = || ApiError::bad_request(format!("continue key is not valid: \"{token}\""));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    if start.contains("..") {
        return Err(bad());
    }
    Ok(format!("{prefix}{start}"))
}
