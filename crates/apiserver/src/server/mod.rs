//! The API server: one generic implementation of create/get/list/update/patch/delete/watch over
//! the resource table and a [`Store`](rotor_store::Store). HTTP is a thin layer on top
//! ([`ApiServer::handle`]); the simulator calls the same methods in-process.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use rotor_store::{DynStore, KeyValue};
use serde_json::{Value, json};

use crate::cursor::AnyCursor;
use crate::error::{ApiError, ApiResult};
use crate::object::{self, meta_mut};
use crate::registry::{Registry, Resource, resources_from_crd};
use crate::selector::{FieldSelector, LabelSelector};

mod duplicates;
mod gc;
mod handler;
mod namespaces;
mod propagation;
mod strategy;
mod versions;
mod write;

pub(crate) use handler::json_response;
use write::apply_opts;

/// Largest request body accepted, as kube-apiserver (3 MiB).
const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// How often a write that lost an optimistic-concurrency race is retried server-side (patches and
/// unconditional updates), like kube-apiserver's GuaranteedUpdate.
const MAX_WRITE_ATTEMPTS: usize = 8;

/// Namespaces a cluster cannot work without; deleting them is refused, as kube-apiserver does.
const PROTECTED_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

/// How a server presents itself and whom it lets in.
#[derive(Clone)]
pub struct ServerConfig {
    /// Kubernetes minor version this server claims (`/version`) and whose schemas it serves.
    pub kubernetes_minor: u32,
    /// The admin's bearer token (user `rotor-admin` in `system:masters`). With no `token`,
    /// `tokens` or `token_review` the server is open: every request acts as the admin.
    pub token: Option<String>,
    /// Requests without credentials act as the admin (`system:unsecured`): only for plain-HTTP
    /// listeners on loopback (development, the simulator's members), since client-go sends no
    /// bearer token over plain HTTP. A wrong token is still refused.
    pub anonymous: bool,
    /// kube-apiserver's `--anonymous-auth`: requests without credentials are `system:anonymous`
    /// and reach only `/version` and health; otherwise they get 401. (A server that is `open`
    /// or `anonymous` never gets this far.)
    pub anonymous_auth: bool,
    /// Users by bearer token, from a token file (`--token-auth-file`).
    pub tokens: Option<Arc<crate::auth::TokenFile>>,
    /// Issues ServiceAccount tokens (`TokenRequest`) and authenticates them; None: neither.
    pub service_accounts: Option<Arc<crate::auth::ServiceAccountTokens>>,
    /// Authenticates OIDC ID tokens of one issuer (`--oidc-issuer-url`).
    pub oidc: Option<Arc<crate::auth::Oidc>>,
    /// Bearer tokens accepted besides `token`, as a managed cluster's webhook token
    /// authenticator accepts its cloud's (EKS: `k8s-aws-v1.` tokens).
    pub token_review: Option<Arc<dyn TokenReview>>,
    /// The names requests may address this server by (`Host`), besides IP addresses and
    /// `localhost`; None = any. A page in an operator's browser whose name an attacker points
    /// at a loopback server (DNS rebinding) is refused by its name.
    pub allowed_hosts: Option<Vec<String>>,
    /// Completes the replies to dry-run writes; see [`DryRunHook`].
    pub dry_run_hook: Option<Arc<dyn DryRunHook>>,
    /// The RBAC policy written at start (upstream's system roles and these) and the custom
    /// field-limited verbs. None: nothing is written — a server whose users are all
    /// `system:masters` (the simulator's members) needs no roles. Authorization applies either way.
    pub policy: Option<Arc<crate::authz::Shipped>>,
    /// Where each request is recorded (`rotor serve --audit-log`); None: not audited.
    pub audit: Option<Arc<crate::audit::Auditor>>,
}

/// Completes the reply to a dry-run write of an object (create, update, patch or apply of the
/// main resource, after defaulting, validation and pruning; never on a real write). What the
/// server cannot know goes there: `rotor serve` fills in a Rollout's plan, which takes the
/// controllers' planning code, and this crate knows no rollouts.
pub trait DryRunHook: Send + Sync + std::fmt::Debug {
    /// Changes `object`, of resource `plural` in `group`, as the reply shows it.
    fn complete<'a>(
        &'a self,
        group: &'a str,
        plural: &'a str,
        object: &'a mut Value,
    ) -> futures::future::BoxFuture<'a, ()>;
}

/// Decides on bearer tokens a server did not issue itself (kube-apiserver's webhook token
/// authentication, as managed clusters use it).
pub trait TokenReview: Send + Sync + std::fmt::Debug {
    fn accepts(&self, token: &str) -> bool;
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The admin token is a secret: only whether there is one.
        f.debug_struct("ServerConfig")
            .field("kubernetes_minor", &self.kubernetes_minor)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("anonymous", &self.anonymous)
            .field("anonymous_auth", &self.anonymous_auth)
            .field("tokens", &self.tokens)
            .field("token_review", &self.token_review)
            .field("service_accounts", &self.service_accounts)
            .field("oidc", &self.oidc)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("policy", &self.policy)
            .field("audit", &self.audit)
            .finish()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            kubernetes_minor: 35,
            token: None,
            anonymous: false,
            anonymous_auth: true,
            tokens: None,
            token_review: None,
            service_accounts: None,
            oidc: None,
            allowed_hosts: None,
            dry_run_hook: None,
            policy: None,
            audit: None,
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
    /// The write may change only these fields (a field-limited verb granted it; see
    /// [`crate::authz::fields`]).
    pub limit: Option<Arc<crate::authz::FieldLimit>>,
    /// Who writes, when an RBAC object is written by a user outside `system:masters`: the
    /// write may grant only what they hold ([`crate::authz::escalation`]).
    pub requester: Option<Arc<crate::authz::escalation::Requester>>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            dry_run: false,
            field_manager: "rotor".into(),
            validation: FieldValidation::Strict,
            force: false,
            limit: None,
            requester: None,
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
    /// `resourceVersionMatch=Exact`: the list as it was at this revision.
    pub exact: Option<u64>,
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
    /// `object` as JSON when the write produced it already (the stored bytes, revision spliced
    /// in); the HTTP reply uses it instead of serialising `object` again.
    json: Option<Bytes>,
}

impl Written {
    fn new(object: Value, created: bool, warnings: Vec<String>) -> Self {
        Written {
            object,
            created,
            warnings,
            json: None,
        }
    }

    /// The object as JSON, as it goes out in the reply.
    pub fn to_json(&self) -> Bytes {
        match &self.json {
            Some(bytes) => bytes.clone(),
            None => serde_json::to_vec(&self.object).unwrap_or_default().into(),
        }
    }
}

/// A Kubernetes-compatible API server over one store.
pub struct ApiServer {
    store: DynStore,
    registry: Registry,
    config: ServerConfig,
    openapi: Arc<rotor_openapi::Spec>,
    next_cluster_ip: AtomicU32,
    discovery_answers: crate::discovery::Answers,
    /// Ends the garbage collector when the server is dropped.
    _gc: gc::Stop,
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
    /// namespaces, resumes namespace deletions that a restart interrupted, and starts the
    /// garbage collector (which ends when the server is dropped).
    pub async fn new(store: DynStore, config: ServerConfig) -> anyhow::Result<Arc<Self>> {
        let openapi = rotor_openapi::spec(config.kubernetes_minor).map_err(|e| {
            anyhow::anyhow!("Kubernetes 1.{} schemas: {e}", config.kubernetes_minor)
        })?;
        let (gc_stop, gc_stopped) = gc::stop_channel();
        let server = Arc::new(ApiServer {
            store,
            registry: Registry::for_release(&openapi),
            config,
            openapi,
            next_cluster_ip: AtomicU32::new(u32::from_be_bytes([10, 96, 0, 10])),
            discovery_answers: Default::default(),
            _gc: gc_stop,
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
        if let Some(shipped) = server.config.policy.clone() {
            server
                .reconcile_policy(&shipped.cluster_roles)
                .await
                .map_err(|e| anyhow::anyhow!("writing the RBAC bootstrap policy: {e}"))?;
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
        gc::spawn(&server, gc_stopped);
        Ok(server)
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Discovery documents kept until the served resources change.
    pub(crate) fn discovery_answers(&self) -> &crate::discovery::Answers {
        &self.discovery_answers
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

    pub async fn get(&self, res: &Resource, ns: Option<&str>, name: &str) -> ApiResult<Value> {
        Ok(self.get_kv(res, ns, name).await?.0)
    }

    /// [`get`](Self::get) as JSON, from the store's bytes when they need no decoding.
    pub(crate) async fn get_json(
        &self,
        res: &Resource,
        ns: Option<&str>,
        name: &str,
    ) -> ApiResult<Bytes> {
        let Some(kv) = self.store.get(&res.key(ns, name)).await? else {
            return Err(ApiError::not_found(&res.plural, &res.group, name));
        };
        match served_json(&kv, res) {
            Some(bytes) => Ok(bytes),
            None => serde_json::to_vec(&decode_as(&kv, res)?)
                .map(Bytes::from)
                .map_err(|e| ApiError::internal(format!("encoding object: {e}"))),
        }
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
        let page = self.list_page(res, ns, opts).await?;
        let items = page
            .items
            .into_iter()
            .map(|(kv, obj)| match obj {
                Some(obj) => Ok(obj),
                None => decode_as(&kv, res),
            })
            .collect::<ApiResult<Vec<Value>>>()?;
        Ok(json!({
            "apiVersion": res.api_version(),
            "kind": format!("{}List", res.kind),
            "metadata": page.metadata,
            "items": items,
        }))
    }

    /// The objects of `res` in `ns` whose stored bytes `keep` accepts, decoded. For in-process
    /// controllers looking for a few objects among many (the simulator's owner lookups): a
    /// byte search per object instead of a parse per object, on every reconcile.
    pub async fn list_where(
        &self,
        res: &Resource,
        ns: Option<&str>,
        keep: impl Fn(&[u8]) -> bool,
    ) -> ApiResult<Vec<Value>> {
        let page = self.store.list(&res.namespace_prefix(ns), None, 0).await?;
        page.items
            .iter()
            .filter(|kv| keep(&kv.value))
            .map(|kv| decode_as(kv, res))
            .collect()
    }

    /// [`list`](Self::list) as JSON: the same document, with every object that needs no decoding
    /// copied from the store's bytes ([`served_json`]) rather than parsed and serialised again.
    pub(crate) async fn list_json(
        &self,
        res: &Resource,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> ApiResult<Vec<u8>> {
        let page = self.list_page(res, ns, opts).await?;
        let failed = |e: serde_json::Error| ApiError::internal(format!("encoding list: {e}"));
        let size: usize = page.items.iter().map(|(kv, _)| kv.value.len() + 32).sum();
        let mut out = Vec::with_capacity(size + 256);
        out.extend_from_slice(b"{\"apiVersion\":");
        serde_json::to_writer(&mut out, res.api_version()).map_err(failed)?;
        out.extend_from_slice(b",\"kind\":");
        serde_json::to_writer(&mut out, &format!("{}List", res.kind)).map_err(failed)?;
        out.extend_from_slice(b",\"metadata\":");
        serde_json::to_writer(&mut out, &page.metadata).map_err(failed)?;
        out.extend_from_slice(b",\"items\":[");
        for (i, (kv, obj)) in page.items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match obj.as_ref().map_or_else(|| served_json(kv, res), |_| None) {
                Some(bytes) => out.extend_from_slice(&bytes),
                None => {
                    let decoded;
                    let obj = match obj {
                        Some(obj) => obj,
                        None => {
                            decoded = decode_as(kv, res)?;
                            &decoded
                        }
                    };
                    serde_json::to_writer(&mut out, obj).map_err(failed)?;
                }
            }
        }
        out.extend_from_slice(b"]}");
        Ok(out)
    }

    /// The stored objects a list returns, with the decoded form of those a selector had to look
    /// into, and the list's metadata (resourceVersion, continue).
    pub(crate) async fn list_page(
        &self,
        res: &Resource,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> ApiResult<ListedPage> {
        let prefix = res.namespace_prefix(ns);
        let start_after = match &opts.continue_token {
            Some(t) => Some(decode_continue(t, &prefix)?),
            None => None,
        };
        if let Some(rev) = opts.exact {
            return self
                .list_page_at(res, &prefix, start_after, opts, rev)
                .await;
        }
        let selects = !opts.labels.is_empty() || !opts.fields.is_empty();
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
                if selects {
                    let obj = decode_as(&kv, res)?;
                    if !opts.matches(&obj) {
                        continue;
                    }
                    items.push((kv, Some(obj)));
                } else {
                    items.push((kv, None));
                }
                if opts.limit != 0 && items.len() == opts.limit {
                    break;
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
        Ok(ListedPage { items, metadata })
    }
}

impl ApiServer {
    /// [`list_page`](Self::list_page) as of revision `rev` (`resourceVersionMatch=Exact`): the
    /// store's keys at that revision, then the cursor, selectors and limit; 410 Gone when the
    /// history no longer reaches back to it.
    async fn list_page_at(
        &self,
        res: &Resource,
        prefix: &str,
        start_after: Option<String>,
        opts: &ListOptions,
        rev: u64,
    ) -> ApiResult<ListedPage> {
        let page = match self.store.list_at(prefix, rev).await {
            Err(rotor_store::StoreError::Compacted { .. }) => {
                return Err(ApiError::gone(
                    "The resourceVersion for the provided list is too old.",
                ));
            }
            other => other?,
        };
        let selects = !opts.labels.is_empty() || !opts.fields.is_empty();
        let after = |kv: &KeyValue| start_after.as_deref().is_none_or(|s| kv.key.as_str() > s);
        let mut items = Vec::new();
        let mut rest = page.items.into_iter().filter(after);
        for kv in rest.by_ref() {
            if selects {
                let obj = decode_as(&kv, res)?;
                if opts.matches(&obj) {
                    items.push((kv, Some(obj)));
                }
            } else {
                items.push((kv, None));
            }
            if opts.limit != 0 && items.len() == opts.limit {
                break;
            }
        }
        let mut metadata = json!({"resourceVersion": rev.to_string()});
        let more = opts.limit != 0 && items.len() == opts.limit && rest.next().is_some();
        if more && let Some((last, _)) = items.last() {
            metadata["continue"] = json!(encode_continue(&last.key[prefix.len()..], rev));
        }
        Ok(ListedPage { items, metadata })
    }
}

/// What [`ApiServer::list_page`] found.
pub(crate) struct ListedPage {
    pub items: Vec<(KeyValue, Option<Value>)>,
    pub metadata: Value,
}

/// An object as the store keeps it, and where the reply to the write can take its
/// `resourceVersion`: the reply is these bytes with the revision the store assigned spliced into
/// `metadata`, instead of a second serialisation of the object.
pub(crate) struct Encoded {
    pub bytes: Bytes,
    /// Offset of the `}` closing `metadata`, and whether `metadata` has other fields before it.
    /// `None` when the stored form is not the served one (a resource with storage conversion).
    splice: Option<(usize, bool)>,
}

impl Encoded {
    /// The object as served at revision `rev`, if the stored bytes are its served form.
    fn reply(&self, rev: u64) -> Option<Bytes> {
        let (at, comma) = self.splice?;
        let rv = rev.to_string();
        let mut out = Vec::with_capacity(self.bytes.len() + rv.len() + 22);
        out.extend_from_slice(&self.bytes[..at]);
        if comma {
            out.push(b',');
        }
        out.extend_from_slice(b"\"resourceVersion\":\"");
        out.extend_from_slice(rv.as_bytes());
        out.push(b'"');
        out.extend_from_slice(&self.bytes[at..]);
        Some(out.into())
    }
}

/// The stored form of an object: JSON without `metadata.resourceVersion` (the store's revision
/// is the version) and at the storage version of its resource.
fn encode(obj: &Value, res: &Resource) -> ApiResult<Encoded> {
    let failed = |e: serde_json::Error| ApiError::internal(format!("encoding object: {e}"));
    if let Some(c) = res.conversion {
        let mut v = obj.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        c.to_storage(&mut v);
        let bytes = serde_json::to_vec(&v).map_err(failed)?;
        return Ok(Encoded {
            bytes: bytes.into(),
            splice: None,
        });
    }
    let Some(map) = obj.as_object() else {
        let bytes = serde_json::to_vec(obj).map_err(failed)?;
        return Ok(Encoded {
            bytes: bytes.into(),
            splice: None,
        });
    };
    // Written field by field (the same bytes serde_json writes for the whole map) to skip the
    // resourceVersion without copying the object and to note where metadata ends.
    let mut buf = Vec::with_capacity(512);
    let mut splice = None;
    buf.push(b'{');
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        serde_json::to_writer(&mut buf, k).map_err(failed)?;
        buf.push(b':');
        match v.as_object() {
            Some(meta) if k == "metadata" => {
                buf.push(b'{');
                let mut fields = 0;
                for (mk, mv) in meta.iter().filter(|(mk, _)| *mk != "resourceVersion") {
                    if fields > 0 {
                        buf.push(b',');
                    }
                    serde_json::to_writer(&mut buf, mk).map_err(failed)?;
                    buf.push(b':');
                    serde_json::to_writer(&mut buf, mv).map_err(failed)?;
                    fields += 1;
                }
                splice = Some((buf.len(), fields > 0));
                buf.push(b'}');
            }
            _ => serde_json::to_writer(&mut buf, v).map_err(failed)?,
        }
    }
    buf.push(b'}');
    Ok(Encoded {
        bytes: buf.into(),
        splice,
    })
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
    if let Some(schema) = res.custom_schema.as_ref().filter(|_| res.read_defaults) {
        rotor_openapi::default_custom(schema, &mut v);
    }
    v["apiVersion"] = json!(res.api_version());
    Ok(v)
}

/// The served JSON of a stored object without decoding it: the stored bytes with
/// `metadata.resourceVersion` spliced in, exactly what serialising [`decode_as`] would give.
/// `None` when the object needs decoding: a resource stored in another form, an object stored at
/// another version of its resource than the one asked for, or bytes of an unexpected shape.
pub(crate) fn served_json(kv: &KeyValue, res: &Resource) -> Option<Bytes> {
    served_json_at(kv, res, kv.mod_revision)
}

/// [`served_json`] at revision `rev` (a deleted object is served at the delete's revision).
pub(crate) fn served_json_at(kv: &KeyValue, res: &Resource, rev: u64) -> Option<Bytes> {
    /// The two fields that decide; serde skips the rest without building values.
    #[derive(serde::Deserialize)]
    struct Top<'a> {
        #[serde(rename = "apiVersion", borrow)]
        api_version: Option<&'a str>,
        #[serde(borrow)]
        metadata: Option<&'a serde_json::value::RawValue>,
    }
    #[derive(serde::Deserialize)]
    struct Meta {
        #[serde(rename = "resourceVersion")]
        resource_version: Option<serde::de::IgnoredAny>,
    }
    if res.conversion.is_some() || res.read_defaults {
        return None;
    }
    let top: Top = serde_json::from_slice(&kv.value).ok()?;
    if top.api_version != Some(res.api_version()) {
        return None;
    }
    let meta = top.metadata?.get();
    if !(meta.starts_with('{') && meta.ends_with('}')) {
        return None;
    }
    let parsed: Meta = serde_json::from_str(meta).ok()?;
    if parsed.resource_version.is_some() {
        return None;
    }
    // `meta` borrows from the stored bytes: its offset there is where metadata starts.
    let start = (meta.as_ptr() as usize).checked_sub(kv.value.as_ptr() as usize)?;
    let close = start + meta.len() - 1;
    let has_fields = !meta[1..meta.len() - 1].trim().is_empty();
    Encoded {
        bytes: kv.value.clone(),
        splice: Some((close, has_fields)),
    }
    .reply(rev)
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
