//! A plan tried on a scratch API server of the target release before anything is written, so
//! an object green's validation would refuse (a wrong type an older, laxer API stored, a value
//! out of range, a field the release does not know) is named with its field and reason before
//! the swap, and the plan is refused whole rather than failing half-way.
//!
//! The scratch server is rotor's own, in this process, with the release's schemas, validation
//! and defaulting: namespaces and CRDs of the plan are created in it for real (what is in them
//! needs them), everything else is a dry-run create. No request leaves the process. What only
//! green itself can judge (its admission webhooks, quotas) is for a server-side dry-run on green
//! (`dry_run_on_green`).

use std::collections::HashMap;
use std::sync::Arc;

use rotor_apiserver::{ApiServer, ServerConfig, WriteOptions};
use rotor_store::memory::MemoryStore;
use serde_json::Value;

use crate::apply::ObjectError;
use crate::plan::{PlannedObject, ResourceRef};
use crate::{Plan, Stage};

/// What the rehearsal found.
#[derive(Debug, Default)]
pub struct Rehearsal {
    /// Objects the release refuses, with the API's message (it names the field).
    pub refused: Vec<ObjectError>,
    /// Objects of resource types the scratch server does not serve (a CRD green has that the
    /// plan does not move): not judged here.
    pub unjudged: usize,
}

/// Tries every object of `plan` as Kubernetes 1.`minor` would take it, at the version each
/// resource type is written (`writes`: those converted, see [`crate::apply`]).
pub async fn rehearse(
    plan: &Plan,
    minor: u32,
    writes: &HashMap<ResourceRef, ResourceRef>,
) -> Result<Rehearsal, String> {
    let config = ServerConfig {
        kubernetes_minor: minor,
        ..ServerConfig::default()
    };
    let server = ApiServer::new(Arc::new(MemoryStore::default()), config)
        .await
        .map_err(|e| format!("no scratch API server of Kubernetes 1.{minor}: {e}"))?;
    let mut out = Rehearsal::default();
    for stage in &plan.stages {
        // What later objects live in is created for real.
        let real = matches!(stage.stage, Stage::Namespaces | Stage::Crds);
        for r in &stage.resources {
            let at = writes.get(&r.resource).unwrap_or(&r.resource);
            let Ok(res) = server.resource(&at.group, &at.version, &at.plural) else {
                out.unjudged += r.objects.len();
                continue;
            };
            for o in &r.objects {
                let opts = WriteOptions {
                    dry_run: !real,
                    ..WriteOptions::default()
                };
                let ns = o.namespace.as_deref().filter(|_| at.namespaced);
                match server.create(&res, ns, body_at(o, at), &opts).await {
                    Ok(_) => {}
                    Err(e) if e.reason == "AlreadyExists" => {}
                    Err(e) => out.refused.push(ObjectError {
                        object: format!("{} {}", r.resource.kind, o.qualified_name()),
                        message: e.message,
                        code: Some(e.code.as_u16()),
                    }),
                }
            }
        }
    }
    out.refused.sort_by(|a, b| a.object.cmp(&b.object));
    Ok(out)
}

/// The object as written at `at`'s version, without ownerReferences (blue's uids name nothing
/// in the scratch server).
pub(crate) fn body_at(o: &PlannedObject, at: &ResourceRef) -> Value {
    let mut body = o.body.clone();
    body["apiVersion"] = Value::String(at.api_version());
    if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("ownerReferences");
    }
    body
}
