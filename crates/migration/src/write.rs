//! One object into green, owned as in blue: create it (or, when green has it already, patch
//! what differs), then hand its fields to blue's owners ([`crate::ownership`]).
//!
//! Not server-side apply: an apply makes its manager the owner of every field it sends, and a
//! later apply by that manager can only remove fields it owns — once the owners are blue's
//! again, a re-run could not remove a field blue dropped. A create, or a merge patch of exactly
//! what differs, has no such memory.

use kube::api::{DynamicObject, Patch, PatchParams, ValidationDirective};
use kube::{Resource, ResourceExt};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::apply::Run;
use crate::plan::{PlannedObject, ResourceRef};
use crate::{FIELD_MANAGER, ownership, sanitize};

/// Attempts at handing an object to its owners while green's controllers keep writing it (each
/// conflict means one of them just did; they settle within a few writes).
pub(crate) const HAND_OVER_ATTEMPTS: usize = 10;

/// Why an object did not reach green as planned.
#[derive(Debug)]
pub(crate) enum WriteError {
    Api(kube::Error),
    /// Green answered every hand-over but kept other owners (a server that ignores
    /// `managedFields`, or a writer racing with us each time).
    OwnersNotKept {
        managers: Vec<String>,
    },
}

impl From<kube::Error> for WriteError {
    fn from(e: kube::Error) -> Self {
        WriteError::Api(e)
    }
}

/// What green answered a write with: enough to hand the object over and map owners' uids.
#[derive(Debug, Deserialize)]
struct Written {
    metadata: WrittenMeta,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WrittenMeta {
    uid: Option<String>,
    #[serde(default)]
    resource_version: String,
    #[serde(default)]
    managed_fields: Vec<Value>,
}

impl Written {
    fn of(obj: &DynamicObject) -> Self {
        Written {
            metadata: WrittenMeta {
                uid: obj.uid(),
                resource_version: obj.resource_version().unwrap_or_default(),
                managed_fields: obj
                    .metadata
                    .managed_fields
                    .iter()
                    .flatten()
                    .filter_map(|e| serde_json::to_value(e).ok())
                    .collect(),
            },
        }
    }
}

/// The create request. Built by hand rather than through `Api::create` so the body is
/// serialized once (for the request and the checkpoint key): at thousands of objects a second,
/// the client's CPU is taken from the API server's when both share a machine.
fn create_request(
    res: &ResourceRef,
    obj: &PlannedObject,
    manager: &str,
    body: Vec<u8>,
) -> http::Request<Vec<u8>> {
    let ns = obj.namespace.as_deref().filter(|_| res.namespaced);
    let url = format!(
        "{}?fieldManager={manager}&fieldValidation=Strict",
        DynamicObject::url_path(&res.api_resource(), ns),
    );
    let mut req = http::Request::new(body);
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = url.parse().unwrap_or_default();
    req.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    req
}

/// `dryRun=All` on a request's URL: green judges it and stores nothing.
fn dry(mut req: http::Request<Vec<u8>>) -> http::Request<Vec<u8>> {
    let uri = format!("{}&dryRun=All", req.uri());
    *req.uri_mut() = uri.parse().unwrap_or_default();
    req
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        field_validation: Some(ValidationDirective::Strict),
        ..PatchParams::default()
    }
}

/// The JSON merge patch that turns `from` into `to`; None when they are equal. Lists are
/// replaced whole, as a merge patch does.
pub(crate) fn merge_diff(from: &Value, to: &Value) -> Option<Value> {
    match (from, to) {
        (Value::Object(f), Value::Object(t)) => {
            let mut out = Map::new();
            for (k, tv) in t {
                match f.get(k) {
                    Some(fv) => {
                        if let Some(d) = merge_diff(fv, tv) {
                            out.insert(k.clone(), d);
                        }
                    }
                    None => {
                        out.insert(k.clone(), tv.clone());
                    }
                }
            }
            for k in f.keys().filter(|k| !t.contains_key(*k)) {
                out.insert(k.clone(), Value::Null);
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        (f, t) if f == t => None,
        (_, t) => Some(t.clone()),
    }
}

impl Run<'_> {
    /// Puts `desired` (serialized as `body`) into green and hands it to `owners`; returns
    /// green's uid. Every request goes through the rate limit and retries of [`Run::send`];
    /// `retries` counts them.
    pub(crate) async fn write(
        &self,
        res: &ResourceRef,
        obj: &PlannedObject,
        desired: &Value,
        body: Vec<u8>,
        owners: &[Value],
        retries: &mut usize,
    ) -> Result<Option<String>, WriteError> {
        // Created as blue's only updater, green records the same owner: often nothing is left
        // to hand over.
        let manager = ownership::single_updater(owners).unwrap_or(FIELD_MANAGER);
        let (created, r) = self
            .send(|| {
                self.green
                    .request_text(create_request(res, obj, manager, body.clone()))
            })
            .await;
        *retries += r;
        let written = match created {
            Ok(text) => serde_json::from_str::<Written>(&text).map_err(kube::Error::SerdeError)?,
            Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => {
                self.update(res, obj, desired, retries).await?
            }
            Err(e) => return Err(e.into()),
        };
        self.hand_over(res, obj, owners, written, retries).await
    }

    /// Asks green to judge `desired` without storing it: a dry-run create, or where green has
    /// the object, a dry-run patch of what differs. Ok(false): green cannot judge it yet (its
    /// namespace or resource type comes with the plan).
    pub(crate) async fn dry_write(
        &self,
        res: &ResourceRef,
        obj: &PlannedObject,
        desired: &Value,
    ) -> Result<bool, kube::Error> {
        let body = serde_json::to_vec(desired).unwrap_or_default();
        let (created, _) = self
            .send(|| {
                let req = create_request(res, obj, FIELD_MANAGER, body.clone());
                self.green.request_text(dry(req))
            })
            .await;
        match created {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => {
                let api = self.api(res, obj);
                let (got, _) = self.send(|| api.get(&obj.name)).await;
                let have = sanitize(&got?, &res.api_version(), &res.kind, &|_| true);
                let Some(patch) = merge_diff(&have, desired) else {
                    return Ok(true);
                };
                let params = PatchParams {
                    dry_run: true,
                    ..patch_params()
                };
                let patch = Patch::Merge(&patch);
                let (patched, _) = self.send(|| api.patch(&obj.name, &params, &patch)).await;
                patched.map(|_| true)
            }
            Err(e) => Err(e),
        }
    }

    /// Green has the object (an earlier run, or blue changed since): patches what differs from
    /// `desired`, compared as the plan sanitizes, so what green assigned itself stays.
    async fn update(
        &self,
        res: &ResourceRef,
        obj: &PlannedObject,
        desired: &Value,
        retries: &mut usize,
    ) -> Result<Written, kube::Error> {
        let api = self.api(res, obj);
        let (got, r) = self.send(|| api.get(&obj.name)).await;
        *retries += r;
        let current = got?;
        let have = sanitize(&current, &res.api_version(), &res.kind, &|_| true);
        let Some(patch) = merge_diff(&have, desired) else {
            return Ok(Written::of(&current));
        };
        let (params, patch) = (patch_params(), Patch::Merge(&patch));
        let (patched, r) = self.send(|| api.patch(&obj.name, &params, &patch)).await;
        *retries += r;
        Ok(Written::of(&patched?))
    }

    /// Sets green's `managedFields` to `owners` (plus green's own status entries) unless they
    /// say so already, guarded by the resourceVersion they were read at.
    async fn hand_over(
        &self,
        res: &ResourceRef,
        obj: &PlannedObject,
        owners: &[Value],
        mut written: Written,
        retries: &mut usize,
    ) -> Result<Option<String>, WriteError> {
        let api = self.api(res, obj);
        for _ in 0..HAND_OVER_ATTEMPTS {
            let have = &written.metadata.managed_fields;
            if !ownership::differs(owners, have) {
                return Ok(written.metadata.uid);
            }
            let patch = ownership::patch(owners, have, &written.metadata.resource_version);
            let (params, patch) = (patch_params(), Patch::Merge(&patch));
            let (patched, r) = self.send(|| api.patch(&obj.name, &params, &patch)).await;
            *retries += r;
            written = match patched {
                Ok(o) => Written::of(&o),
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    let (got, r) = self.send(|| api.get(&obj.name)).await;
                    *retries += r;
                    Written::of(&got?)
                }
                Err(e) => return Err(e.into()),
            };
        }
        if !ownership::differs(owners, &written.metadata.managed_fields) {
            return Ok(written.metadata.uid);
        }
        Err(WriteError::OwnersNotKept {
            managers: written
                .metadata
                .managed_fields
                .iter()
                .filter_map(|e| e["manager"].as_str().map(str::to_string))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_diff_sets_changes_and_nulls_removals() {
        let from =
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"ports": [1], "x": 1}});
        let to = json!({"metadata": {"labels": {"a": "1", "c": "3"}}, "spec": {"ports": [1, 2], "x": 1}});
        assert_eq!(
            merge_diff(&from, &to),
            Some(json!({"metadata": {"labels": {"b": null, "c": "3"}}, "spec": {"ports": [1, 2]}}))
        );
        assert_eq!(merge_diff(&to, &to), None);
        let mut patched = from.clone();
        rotor_patch_like_merge(&mut patched, &merge_diff(&from, &to).unwrap());
        assert_eq!(patched, to);
    }

    /// RFC 7386, to check the diff round-trips.
    fn rotor_patch_like_merge(target: &mut Value, patch: &Value) {
        match (target.as_object_mut(), patch) {
            (Some(t), Value::Object(p)) => {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        rotor_patch_like_merge(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
            _ => *target = patch.clone(),
        }
    }
}
