//! Writes: create, update (PUT), the four patch types, delete — each one store operation,
//! retried server-side only where Kubernetes does (unconditional updates and patches).

use std::sync::Arc;

use rotor_openapi::{FieldProblem, ProblemKind};
use rotor_store::{KeyValue, StoreError};
use serde_json::{Value, json};

use super::propagation;
use super::*;
use crate::error::{ApiError, ApiResult, Cause};
use crate::object::{self, meta_mut};
use crate::registry::{Resource, resources_from_crd};

impl ApiServer {
    pub async fn create(
        &self,
        res: &Arc<Resource>,
        ns: Option<&str>,
        mut obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        if let Some(limit) = &opts.limit {
            return Err(limit.refuse_create());
        }
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
        self.default_object(res, &mut obj);
        if let Some(requester) = &opts.requester {
            requester.check(&res.plural, ns.as_deref().unwrap_or(""), None, &obj)?;
        }
        let warnings = self.validate(res, &obj, &name, None, None, opts)?;
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
        if !opts.dry_run {
            refuse_resource_version(&obj)?;
        }
        let now = object::now_rfc3339();
        {
            let m = meta_mut(&mut obj);
            m.insert("uid".into(), json!(object::new_uid()));
            m.insert("creationTimestamp".into(), json!(&now));
            for f in [
                "resourceVersion",
                "generation",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
            ] {
                m.remove(f);
            }
        }
        if self.uses_generation(res) {
            meta_mut(&mut obj).insert("generation".into(), json!(1));
        }
        self.prepare_create(res, &mut obj)?;
        crate::validation::check(res, self.config.kubernetes_minor, &name, None, &obj)?;
        let cursor = self.cursor(res);
        rotor_patch::track_update(
            None,
            &mut obj,
            cursor.as_ref(),
            &apply_opts(res, opts, None, &now),
        );
        let key = res.key(ns.as_deref(), &name);
        if opts.dry_run {
            // As upstream: a dry run goes as far as storage, which refuses a name taken.
            if self.store.get(&key).await?.is_some() {
                return Err(ApiError::already_exists(&res.plural, &res.group, &name));
            }
            return Ok(Written::new(obj, true, warnings));
        }
        let encoded = encode(&obj, res)?;
        let kv = match self.store.create(&key, encoded.bytes.clone()).await {
            Ok(kv) => kv,
            Err(StoreError::AlreadyExists(_)) => {
                return Err(ApiError::already_exists(&res.plural, &res.group, &name));
            }
            Err(e) => return Err(e.into()),
        };
        let stored = with_revision(obj, kv.mod_revision);
        self.after_write(res, &stored);
        let mut written = Written::new(stored, true, warnings);
        written.json = encoded.reply(kv.mod_revision);
        Ok(written)
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
        self.default_object(res, &mut obj);
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let (current, rev) = self.get_kv(res, ns.as_deref(), name).await?;
            // Authorization's limits first, as upstream authorizes before it validates.
            opts.authorize_change(&res.plural, ns.as_deref(), &current, &obj)?;
            // Against the stored object: CEL transition rules compare with it.
            let warnings = self.validate(res, &obj, name, Some(&current), sub, opts)?;
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
                    return other.map(|object| Written::new(object, false, warnings));
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
            let mut patched = match patch_type {
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
                    self.refuse_type_errors(res, name, &applied)?;
                    rotor_patch::server_side_apply(
                        Some(&current),
                        &applied,
                        cursor.as_ref(),
                        &aopts,
                    )
                    .map_err(|e| apply_error(res, name, e))?
                }
            };
            self.default_object(res, &mut patched);
            // Authorization's limits first, as upstream authorizes before it validates.
            opts.authorize_change(&res.plural, ns.as_deref(), &current, &patched)?;
            let warnings = self.validate(res, &patched, name, Some(&current), sub, opts)?;
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
                    return other.map(|object| Written::new(object, false, warnings));
                }
            }
        }
        Err(ApiError::conflict(&res.plural, &res.group, name))
    }

    /// Create for server-side apply: the managed fields were already computed by the apply.
    pub(super) async fn create_applied(
        &self,
        res: &Arc<Resource>,
        ns: Option<&str>,
        obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        if !opts.dry_run {
            refuse_resource_version(&obj)?;
        }
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
            .create(&res.key(ns, &name), encode(&written.object, res)?.bytes)
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

    /// DELETE: removes the object, or marks it for deletion while finalizers remain (among them
    /// the garbage collector's, when `options` ask for orphaning or foreground propagation).
    /// The reply is upstream's: the object while it lingers, and for a removed object a
    /// `Status` or the object, by kind ([`propagation::reply_for_removed`]).
    pub async fn delete(
        self: &Arc<Self>,
        res: &Arc<Resource>,
        ns: Option<&str>,
        name: &str,
        options: &Value,
        dry_run: bool,
    ) -> ApiResult<Value> {
        let deleted = self.delete_object(res, ns, name, options, dry_run).await?;
        Ok(match deleted.removed {
            true => propagation::reply_for_removed(res, deleted.object),
            false => deleted.object,
        })
    }

    /// [`delete`](Self::delete), answering with the object as it was removed or as it lingers.
    pub(crate) async fn delete_object(
        self: &Arc<Self>,
        res: &Arc<Resource>,
        ns: Option<&str>,
        name: &str,
        options: &Value,
        dry_run: bool,
    ) -> ApiResult<Deleted> {
        let ns = if res.namespaced { ns } else { None };
        let requested = propagation::requested(options)?;
        let is_namespace = res.group.is_empty() && res.plural == "namespaces";
        if is_namespace && PROTECTED_NAMESPACES.contains(&name) {
            return Err(ApiError::forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let (current, rev) = self.get_kv(res, ns, name).await?;
            check_delete_preconditions(res, name, options, &current, rev)?;
            if dry_run {
                return Ok(Deleted::lingering(current));
            }
            let finalizers = object::finalizers(&current);
            let next_finalizers = match is_namespace {
                true => finalizers.clone(),
                false => propagation::finalizers_after_delete(res, &finalizers, requested),
            };
            if is_namespace || !next_finalizers.is_empty() {
                if object::is_deleting(&current) && next_finalizers == finalizers {
                    return Ok(Deleted::lingering(current));
                }
                let next = marked_for_deletion(current, next_finalizers, is_namespace);
                match self
                    .store
                    .update(&res.key(ns, name), encode(&next, res)?.bytes, rev)
                    .await
                {
                    Ok(kv) => {
                        if is_namespace {
                            self.spawn_namespace_cleanup(name.to_string());
                        }
                        return Ok(Deleted::lingering(with_revision(next, kv.mod_revision)));
                    }
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            match self.store.delete(&res.key(ns, name), Some(rev)).await {
                Ok((_, delete_rev)) => {
                    let gone = with_revision(current, delete_rev);
                    self.after_delete(res, &gone);
                    return Ok(Deleted {
                        object: gone,
                        removed: true,
                    });
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

    /// Field rules of the kind (`validation`) and schema validation. Strict field validation fails the request; Warn returns
    /// the problems as warnings. A write to the `status` subresource takes only the status from
    /// the body, so only the status is judged, as upstream's status strategy does: an object
    /// whose stored spec no longer passes (written before a schema change) can still be told so
    /// in its status.
    fn validate(
        &self,
        res: &Resource,
        obj: &Value,
        name: &str,
        old: Option<&Value>,
        sub: Option<&str>,
        opts: &WriteOptions,
    ) -> ApiResult<Vec<String>> {
        let mut causes = Vec::new();
        if res.group == "apiextensions.k8s.io"
            && let Err((field, message)) = resources_from_crd(obj)
        {
            causes.push(Cause {
                field,
                message,
                reason: "FieldValueInvalid",
            });
        }
        if res.group == "apiextensions.k8s.io" {
            // CEL rules that do not compile are refused with their CRD, as upstream.
            for (field, message) in rotor_openapi::crd_rule_errors(obj) {
                causes.push(Cause {
                    field,
                    message,
                    reason: "FieldValueInvalid",
                });
            }
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(&res.kind, &res.group, name, causes));
        }
        let mut problems = match &res.custom_schema {
            Some(schema) => rotor_openapi::validate_custom(&self.openapi, schema, obj, old),
            None => self.openapi.validate(&res.definition, obj),
        };
        if sub == Some("status") {
            problems.retain(|p| {
                let path = p.path.trim_start_matches('.');
                path == "status" || path.starts_with("status.") || path.starts_with("status[")
            });
        }
        // Wrong types (and a CRD's schema rules) are refused at every level; the level decides
        // only about unknown fields.
        let (refused, unknown): (Vec<_>, Vec<_>) =
            problems.into_iter().partition(|p| p.kind.always_refused());
        if !refused.is_empty() {
            return Err(schema_error(res, name, refused));
        }
        let messages = unknown.into_iter().map(|p| p.message).collect();
        by_level(res, opts.validation, messages)
    }

    /// An apply body's wrong types, refused before it is merged: upstream decodes the body into
    /// the kind first, so a wrong type is refused as such even where the field would also
    /// conflict with another manager.
    fn refuse_type_errors(&self, res: &Resource, name: &str, applied: &Value) -> ApiResult<()> {
        let problems = match &res.custom_schema {
            Some(schema) => rotor_openapi::validate_custom(&self.openapi, schema, applied, None),
            None => self.openapi.validate(&res.definition, applied),
        };
        let typed: Vec<FieldProblem> = problems
            .into_iter()
            .filter(|p| matches!(p.kind, ProblemKind::Type { .. }))
            .collect();
        if typed.is_empty() {
            return Ok(());
        }
        Err(schema_error(res, name, typed))
    }

    /// Writes `next` if the key is still at `rev`; an object being deleted whose last finalizer
    /// went away is removed instead.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn commit_update(
        &self,
        res: &Arc<Resource>,
        ns: Option<&str>,
        name: &str,
        current: Value,
        next: Value,
        rev: u64,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        crate::validation::check(
            res,
            self.config.kubernetes_minor,
            name,
            Some(&current),
            &next,
        )?;
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
        match self
            .store
            .update(&key, encode(&next, res)?.bytes, rev)
            .await
        {
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
}

/// A create carrying a resourceVersion was sourced from another object (a `kubectl get` piped
/// into a create): refused as upstream's storage does, with its status (500) and words.
fn refuse_resource_version(obj: &Value) -> ApiResult<()> {
    let set = object::meta(obj)
        .and_then(|m| m.get("resourceVersion"))
        .and_then(Value::as_str)
        .is_some_and(|rv| !rv.is_empty() && rv != "0");
    if set {
        return Err(ApiError::internal(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    Ok(())
}

pub(super) fn apply_opts<'a>(
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
pub(super) fn check_type(res: &Resource, obj: &mut Value) -> ApiResult<()> {
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

/// The refusal of an object with type or schema problems: a custom resource gets 422 Invalid
/// with a cause per field, as upstream's schema validation; a built-in kind gets the 400 its
/// JSON decoder gives (it stops at the first wrong type).
/// What the `fieldValidation` level makes of problems it decides (unknown and duplicate
/// fields): nothing (Ignore), warnings (Warn), or a 400 naming them all (Strict).
pub(super) fn by_level(
    res: &Resource,
    level: FieldValidation,
    messages: Vec<String>,
) -> ApiResult<Vec<String>> {
    match level {
        FieldValidation::Ignore => Ok(Vec::new()),
        FieldValidation::Strict if !messages.is_empty() => Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
            res.kind,
            res.api_version(),
            res.kind,
            messages.join(", ")
        ))),
        _ => Ok(messages),
    }
}

fn schema_error(res: &Resource, name: &str, problems: Vec<FieldProblem>) -> ApiError {
    if res.is_custom() {
        let causes = problems
            .into_iter()
            .map(|p| {
                let field = p.path.trim_start_matches('.').to_string();
                let message = match p.message.strip_prefix(&field) {
                    Some(rest) => rest.trim_start_matches(": ").to_string(),
                    None => p.message.clone(),
                };
                Cause {
                    reason: p.kind.reason(),
                    field,
                    message,
                }
            })
            .collect();
        return ApiError::invalid(&res.kind, &res.group, name, causes);
    }
    let first = problems.iter().find_map(|p| match &p.kind {
        ProblemKind::Type { go } => Some(go.to_string()),
        _ => None,
    });
    ApiError::bad_request(format!(
        "{} in version \"{}\" cannot be handled as a {}: {}",
        res.kind,
        res.version,
        res.kind,
        first.unwrap_or_else(|| problems[0].message.clone())
    ))
}

/// What a DELETE did: removed the object, or left it with `deletionTimestamp` set while its
/// finalizers remain.
pub(crate) struct Deleted {
    pub object: Value,
    pub removed: bool,
}

impl Deleted {
    fn lingering(object: Value) -> Self {
        Deleted {
            object,
            removed: false,
        }
    }
}

/// `DeleteOptions.preconditions`: the uid and resourceVersion the caller expects.
fn check_delete_preconditions(
    res: &Resource,
    name: &str,
    options: &Value,
    current: &Value,
    rev: u64,
) -> ApiResult<()> {
    if let Some(want) = options
        .pointer("/preconditions/uid")
        .and_then(Value::as_str)
        && object::meta_str(current, "uid") != Some(want)
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
    Ok(())
}

/// `current` with its finalizers replaced and, unless already set, `deletionTimestamp`.
fn marked_for_deletion(current: Value, finalizers: Vec<String>, is_namespace: bool) -> Value {
    let mut next = current;
    let deleting = object::is_deleting(&next);
    let m = meta_mut(&mut next);
    if finalizers.is_empty() {
        m.remove("finalizers");
    } else {
        m.insert("finalizers".into(), json!(finalizers));
    }
    if !deleting {
        m.insert("deletionTimestamp".into(), json!(object::now_rfc3339()));
        m.insert("deletionGracePeriodSeconds".into(), json!(0));
        if is_namespace {
            next["status"] = json!({"phase": "Terminating"});
        }
    }
    next
}
