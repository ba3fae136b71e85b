//! Blue's workloads while blue is retained (`strategy.blueWhileRetained: ScaledToZero`): scaled
//! to zero once traffic has left blue, restored before a rollback moves traffic back.
//!
//! Each workload carries its own record: the replica count before the scale-down and the swap
//! that did it, as annotations written in the same patch as `spec.replicas: 0`. So the member
//! cluster is the source of truth, a crash between two workloads loses nothing, and a restore
//! is idempotent (it touches only what this swap scaled down and clears the record).
//! DaemonSets have no replica count and keep running. Both writes are rotor's (field manager
//! `rotor`); the restore hands `spec.replicas` back to its owners ([`crate::replica_owners`]).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use rotor_api::annotations::{REPLICAS_BEFORE_SCALE_DOWN, REPLICAS_OWNERS, SCALED_DOWN_BY};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::Error;
use crate::health::Selection;
use crate::replica_owners::{self, Record};

/// What a scale-down or a restore did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changed {
    /// Workloads patched now.
    pub patched: u32,
    /// Workloads this swap had already handled (nothing to do).
    pub already: u32,
}

fn member_error(instance: &str, what: String, e: kube::Error) -> Error {
    Error::Member {
        instance: instance.to_string(),
        message: format!("{what}: {}", crate::chain(&e)),
    }
}

/// Scales the selected Deployments and StatefulSets of `instance` to zero, recording their
/// replica counts. Workloads already at zero (and not scaled down by this swap) stay as they
/// are, so a restore leaves them at zero too.
pub async fn scale_to_zero(
    client: &Client,
    instance: &str,
    swap: &str,
    selection: &Selection,
) -> Result<Changed, Error> {
    let mut changed = Changed::default();
    scale_kind_to_zero::<Deployment>(client, instance, swap, selection, &mut changed).await?;
    scale_kind_to_zero::<StatefulSet>(client, instance, swap, selection, &mut changed).await?;
    Ok(changed)
}

/// Gives every workload of `instance` that `swap` scaled down its replica count back and
/// clears the record.
pub async fn restore(client: &Client, instance: &str, swap: &str) -> Result<Changed, Error> {
    let mut changed = Changed::default();
    restore_kind::<Deployment>(client, instance, swap, &mut changed).await?;
    restore_kind::<StatefulSet>(client, instance, swap, &mut changed).await?;
    Ok(changed)
}

/// The two kinds scaled here, through one accessor for `spec.replicas`.
trait Scalable:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + std::fmt::Debug
{
    fn replicas(&self) -> i32;
}

impl Scalable for Deployment {
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
}

impl Scalable for StatefulSet {
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
}

fn annotation<'o>(o: &'o impl Resource, key: &str) -> Option<&'o str> {
    o.meta()
        .annotations
        .as_ref()
        .and_then(|a: &BTreeMap<String, String>| a.get(key))
        .map(String::as_str)
}

/// Every object of kind `K` in `instance`, all namespaces.
async fn list<K: Scalable>(client: &Client, instance: &str) -> Result<Vec<K>, Error> {
    let all: Api<K> = Api::all(client.clone());
    all.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .map_err(|e| member_error(instance, format!("listing {}s", K::kind(&())), e))
}

async fn scale_kind_to_zero<K: Scalable>(
    client: &Client,
    instance: &str,
    swap: &str,
    selection: &Selection,
    changed: &mut Changed,
) -> Result<(), Error> {
    let kind = K::kind(&());
    for w in list::<K>(client, instance).await? {
        let ns = w.namespace().unwrap_or_default();
        if !selection.selects(&ns, w.labels()) {
            continue;
        }
        let mine = annotation(&w, SCALED_DOWN_BY) == Some(swap);
        let replicas = w.replicas();
        if mine && replicas == 0 {
            changed.already += 1;
            continue;
        }
        if !mine && replicas == 0 {
            continue;
        }
        // Ours but scaled up again since (an HPA, a person): back to zero, the record kept.
        let patch = if mine {
            json!({
                "metadata": {"resourceVersion": w.resource_version()},
                "spec": {"replicas": 0},
            })
        } else {
            let record = Record {
                swap: swap.to_string(),
                owners: replica_owners::replicas_owners(&w),
            };
            json!({
                "metadata": {
                    "resourceVersion": w.resource_version(),
                    "annotations": {
                        REPLICAS_BEFORE_SCALE_DOWN: replicas.to_string(),
                        SCALED_DOWN_BY: swap,
                        REPLICAS_OWNERS: serde_json::to_string(&record).unwrap_or_default(),
                    },
                },
                "spec": {"replicas": 0},
            })
        };
        let api: Api<K> = Api::namespaced(client.clone(), &ns);
        api.patch(&w.name_any(), &rotors(), &Patch::Merge(&patch))
            .await
            .map_err(|e| {
                member_error(
                    instance,
                    format!("scaling {kind} {ns}/{} to zero", w.name_any()),
                    e,
                )
            })?;
        changed.patched += 1;
    }
    Ok(())
}

/// rotor's writes to member clusters: its own field manager.
fn rotors() -> PatchParams {
    PatchParams {
        field_manager: Some(replica_owners::FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

async fn restore_kind<K: Scalable>(
    client: &Client,
    instance: &str,
    swap: &str,
    changed: &mut Changed,
) -> Result<(), Error> {
    let kind = K::kind(&());
    for w in list::<K>(client, instance).await? {
        let scaled = annotation(&w, SCALED_DOWN_BY) == Some(swap);
        // A record without the scale-down: restored, its owners not yet given the field back.
        let record = Record::of(&w, swap);
        if !scaled && record.is_none() {
            continue;
        }
        let ns = w.namespace().unwrap_or_default();
        let name = w.name_any();
        let api: Api<K> = Api::namespaced(client.clone(), &ns);
        let w = if scaled {
            restore_one(&api, instance, &w).await?
        } else {
            w
        };
        if let Some(record) = record {
            replica_owners::hand_back(&api, &w, &record)
                .await
                .map_err(|e| {
                    member_error(
                        instance,
                        format!("handing {kind} {ns}/{name}'s spec.replicas back to its owners"),
                        e,
                    )
                })?;
        }
        changed.patched += 1;
    }
    Ok(())
}

/// Gives one workload its recorded replica count back and clears the record of the
/// scale-down (the owners' record stays for the hand-back).
async fn restore_one<K: Scalable>(api: &Api<K>, instance: &str, w: &K) -> Result<K, Error> {
    let kind = K::kind(&());
    let (ns, name) = (w.namespace().unwrap_or_default(), w.name_any());
    let Some(before) = annotation(w, REPLICAS_BEFORE_SCALE_DOWN)
        .and_then(|r| r.parse::<i32>().ok())
        .filter(|r| *r >= 0)
    else {
        return Err(Error::Member {
            instance: instance.to_string(),
            message: format!(
                "{kind} {ns}/{name}: annotation {REPLICAS_BEFORE_SCALE_DOWN} is missing or \
                 not a replica count; set spec.replicas by hand and remove {SCALED_DOWN_BY}"
            ),
        });
    };
    let patch = json!({
        "metadata": {
            "resourceVersion": w.resource_version(),
            "annotations": {REPLICAS_BEFORE_SCALE_DOWN: null, SCALED_DOWN_BY: null},
        },
        "spec": {"replicas": before},
    });
    api.patch(&name, &rotors(), &Patch::Merge(&patch))
        .await
        .map_err(|e| {
            member_error(
                instance,
                format!("restoring {kind} {ns}/{name} to {before} replicas"),
                e,
            )
        })
}
