//! Watches that one bad object cannot stall. kube-runtime's typed watcher decodes a whole LIST
//! into `K`: one stored object that does not decode (written by an older rotor, by another
//! client of etcd, or before a schema change) fails the LIST for everyone, forever. Here the
//! objects are watched untyped and decoded one by one: an object that does not decode is
//! skipped and reported with a Warning Event naming the field, once per resourceVersion, while
//! every other object proceeds. Watch errors are logged with backoff, never whole bodies.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, LazyLock, Mutex};

use futures::{Stream, StreamExt};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher::watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::Context;

/// Event reason for an object the controllers cannot read.
pub const INVALID_OBJECT: &str = rotor_api::Reason::InvalidObject.as_str();

/// A kind the lenient watch serves: rotor's cluster-scoped kinds.
pub trait Watched:
    Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug + Send + Sync + 'static
{
}
impl<K> Watched for K where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug + Send + Sync + 'static
{
}

/// `K`'s watch events, bad objects left out (and reported).
pub fn events<K: Watched>(
    ctx: &Arc<Context>,
    config: watcher::Config,
) -> impl Stream<Item = watcher::Result<Event<K>>> + Send + 'static {
    let ar = ApiResource::erase::<K>(&());
    let api: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &ar);
    let ctx = ctx.clone();
    let mut errors = ErrorLog::default();
    watcher(api, config)
        .default_backoff()
        .filter_map(move |event| {
            let (ctx, ar) = (ctx.clone(), ar.clone());
            let event = match event {
                Ok(event) => {
                    errors.recovered(&ar.kind);
                    Ok(event)
                }
                Err(e) => {
                    errors.failed(&ar.kind, &e);
                    Err(e)
                }
            };
            async move {
                match event {
                    Ok(event) => typed(event, &ar, &ctx).await.map(Ok),
                    Err(e) => Some(Err(e)),
                }
            }
        })
}

/// A reflector store of `K` and the stream of its applied objects, to drive a `Controller`
/// (`Controller::for_stream`) or to keep the store current.
pub fn reflect<K: Watched>(
    ctx: &Arc<Context>,
    config: watcher::Config,
) -> (
    Store<K>,
    impl Stream<Item = watcher::Result<K>> + Send + 'static,
) {
    let (reader, events) = reflect_events::<K>(ctx, config);
    (reader, events.applied_objects())
}

/// As [`reflect`], the stream yielding each watch event once the store applied it (a consumer
/// that must tell a deletion or the first list from a change).
pub fn reflect_events<K: Watched>(
    ctx: &Arc<Context>,
    config: watcher::Config,
) -> (
    Store<K>,
    impl Stream<Item = watcher::Result<Event<K>>> + Send + 'static,
) {
    let (reader, writer) = reflector::store();
    (reader, events::<K>(ctx, config).reflect(writer))
}

/// The typed event, or None for an object that does not decode (reported).
async fn typed<K: Watched>(
    event: Event<DynamicObject>,
    ar: &ApiResource,
    ctx: &Context,
) -> Option<Event<K>> {
    Some(match event {
        Event::Apply(o) => Event::Apply(decode(o, ar, ctx).await?),
        Event::InitApply(o) => Event::InitApply(decode(o, ar, ctx).await?),
        Event::Delete(o) => {
            forget(&o);
            // A bad object never reached the store: nothing to delete.
            Event::Delete(decode_object(&o).ok()?)
        }
        Event::Init => Event::Init,
        Event::InitDone => Event::InitDone,
    })
}

/// Decodes `obj` as `K`; the error names the field (``spec: missing field `provider` ``).
pub fn decode_object<K: DeserializeOwned>(
    obj: &DynamicObject,
) -> Result<K, serde_path_to_error::Error<serde_json::Error>> {
    let value = serde_json::to_value(obj).unwrap_or_default();
    serde_path_to_error::deserialize(value)
}

async fn decode<K: Watched>(obj: DynamicObject, ar: &ApiResource, ctx: &Context) -> Option<K> {
    match decode_object(&obj) {
        Ok(k) => {
            forget(&obj);
            if invalid_condition(&obj).is_some() {
                set_invalid_condition(&obj, ar, ctx, None).await;
            }
            Some(k)
        }
        Err(e) => {
            if first_report(&obj) {
                report(&obj, ar, ctx, &e).await;
            }
            None
        }
    }
}

/// The resourceVersion last reported per object uid, across every lenient watch of the
/// process (three controllers watch ClusterSwaps; one Event per version is enough).
static REPORTED: LazyLock<Mutex<HashMap<String, String>>> = LazyLock::new(Mutex::default);

fn key(obj: &DynamicObject) -> String {
    obj.uid().unwrap_or_else(|| obj.name_any())
}

/// True the first time this version of the object is seen undecodable. A version is the
/// generation (the spec's), so the condition written on the object's status is no new version.
fn first_report(obj: &DynamicObject) -> bool {
    let version = match obj.metadata.generation {
        Some(g) => format!("g{g}"),
        None => obj.resource_version().unwrap_or_default(),
    };
    crate::lock(&REPORTED).insert(key(obj), version.clone()) != Some(version)
}

fn forget(obj: &DynamicObject) {
    crate::lock(&REPORTED).remove(&key(obj));
}

async fn report(
    obj: &DynamicObject,
    ar: &ApiResource,
    ctx: &Context,
    error: &serde_path_to_error::Error<serde_json::Error>,
) {
    let note = format!(
        "{} {} cannot be read by this rotor: {error}; it is skipped until fixed",
        ar.kind,
        obj.name_any()
    );
    tracing::warn!(kind = %ar.kind, name = %obj.name_any(), %error, "skipping an object that does not decode");
    ctx.recorder
        .publish(&obj.object_ref(ar), true, INVALID_OBJECT, "Skip", note)
        .await;
    let message = format!("cannot be read by this rotor: {error}; skipped until fixed");
    if invalid_condition(obj) != Some(message.as_str()) {
        set_invalid_condition(obj, ar, ctx, Some(message)).await;
    }
}

/// The message of the object's `InvalidSpec` condition, if it has one that is True.
fn invalid_condition(obj: &DynamicObject) -> Option<&str> {
    let conditions = obj.data.pointer("/status/conditions")?.as_array()?;
    conditions
        .iter()
        .find(|c| c["type"] == INVALID_SPEC && c["status"] == "True")
        .and_then(|c| c["message"].as_str())
}

const INVALID_SPEC: &str = rotor_api::ConditionType::InvalidSpec.as_str();

/// Sets (with a message) or removes the `InvalidSpec` condition in the object's status, other
/// conditions kept, as a compare-and-swap on the version read. The object cannot be decoded,
/// so its conditions are edited as JSON. A failure is logged and left: the Event says it too.
async fn set_invalid_condition(
    obj: &DynamicObject,
    ar: &ApiResource,
    ctx: &Context,
    message: Option<String>,
) {
    let mut conditions: Vec<serde_json::Value> = obj
        .data
        .pointer("/status/conditions")
        .and_then(|c| c.as_array())
        .cloned()
        .unwrap_or_default();
    conditions.retain(|c| c["type"] != INVALID_SPEC);
    if let Some(message) = message {
        conditions.push(serde_json::json!({
            "type": INVALID_SPEC,
            "status": "True",
            "reason": rotor_api::Reason::InvalidSpec.as_str(),
            "message": message,
            "lastTransitionTime": crate::now(),
            "observedGeneration": obj.metadata.generation,
        }));
    }
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": obj.resource_version()},
        "status": {"conditions": conditions},
    });
    let api: Api<DynamicObject> = Api::all_with(ctx.client.clone(), ar);
    let params = kube::api::PatchParams::default();
    if let Err(e) = api
        .patch_status(&obj.name_any(), &params, &kube::api::Patch::Merge(&patch))
        .await
    {
        tracing::debug!(kind = %ar.kind, name = %obj.name_any(), error = %e, "the InvalidSpec condition was not written");
    }
}

/// Watch errors logged on the 1st, 2nd, 4th, 8th… failure in a row, not on every retry.
#[derive(Default)]
struct ErrorLog {
    failures: u64,
}

impl ErrorLog {
    fn failed(&mut self, kind: &str, error: &watcher::Error) {
        self.failures += 1;
        if self.failures.is_power_of_two() {
            tracing::warn!(%kind, failures = self.failures, error = %crate::chain(error), "watch failing; retrying with backoff");
        }
    }

    fn recovered(&mut self, kind: &str) {
        if self.failures > 0 {
            tracing::info!(%kind, failures = self.failures, "watch recovered");
            self.failures = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotor_api::Cluster;

    fn stored(provider: Option<&str>, rv: &str) -> DynamicObject {
        let mut spec = serde_json::json!({
            "account": "demo", "region": "us-east-1", "kubernetesVersion": "1.34",
            "traffic": {"shifter": "sim", "endpoint": "e"},
        });
        if let Some(p) = provider {
            spec["provider"] = p.into();
        }
        serde_json::from_value(serde_json::json!({
            "apiVersion": "rotor.dev/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "c", "uid": format!("uid-{rv}-{provider:?}"), "resourceVersion": rv},
            "spec": spec,
        }))
        .expect("a DynamicObject")
    }

    #[test]
    fn the_error_names_the_field_and_a_version_is_reported_once() {
        let good = stored(Some("sim"), "1");
        decode_object::<Cluster>(&good).expect("a complete Cluster decodes");
        let bad = stored(None, "2");
        let err = decode_object::<Cluster>(&bad).expect_err("no provider");
        assert_eq!(err.to_string(), "spec: missing field `provider`");
        assert!(first_report(&bad), "first sight of this version");
        assert!(
            !first_report(&bad),
            "a relist of the same version is not reported again"
        );
        let mut newer = bad.clone();
        newer.metadata.resource_version = Some("3".into());
        assert!(first_report(&newer), "a new version is reported");
        forget(&newer);
        assert!(
            first_report(&newer),
            "forgotten once it decoded or was deleted"
        );
    }
}
