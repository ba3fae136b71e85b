//! The Cluster controller: keeps each logical Cluster's status — the active physical instance,
//! its health, whether a swap is in progress — and starts nothing by itself.
//!
//! - **Adoption**: a Cluster without an active instance adopts the provider's instance that
//!   bears the Cluster's own name (how an existing fleet is brought under rotor), and attaches it
//!   to the Cluster's traffic endpoint as the only backend. While the cloud is still creating
//!   that instance it is polled on the adaptive cloud-polling schedule (`Settings::cloud_poll`).
//! - **Health**: from discovery's watches of the active instance (its changes re-queue the
//!   Cluster); the instance's API is probed (version, nodes, selected workloads) until
//!   discovery has listed it, or when the controllers run without discovery.
//! - **Rate limits**: a provider that rate-limits a reconcile gets one Warning Event per
//!   rate-limited stretch and is asked again on the schedule, not at the error backoff.
//! - **Ownership**: the swap controller writes `activeInstance`, `instances` and `currentSwap`
//!   while it owns the Cluster; this controller only clears a `currentSwap` whose swap is gone
//!   and re-attaches the active instance to a traffic layer that forgot it (a restart).

use std::sync::Arc;

use futures::StreamExt;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use rotor_api::{
    Cluster, ClusterStatus, ClusterSwap, Condition, ConditionStatus, ConditionType, HealthSummary,
    InstancePhase, Reason, set_condition,
};
use rotor_providers::InstanceState;

use crate::health::{self, Selection};
use crate::lenient;
use crate::retry::is_conflict;
use crate::swap::upsert_instance;
use crate::{Context, Error, now};

pub async fn controller(
    ctx: Arc<Context>,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    // A change discovery sees in an active instance re-queues that instance's Cluster.
    let triggers = crate::discovery_triggers::<Cluster>(&ctx, Context::cluster_of);
    let (store, clusters) = lenient::reflect::<Cluster>(&ctx, watcher::Config::default());
    let swaps = lenient::events::<ClusterSwap>(&ctx, watcher::Config::default()).touched_objects();
    let controller = Controller::for_stream(clusters, store);
    ctx.metrics.count_clusters(controller.store());
    controller
        // A traffic layer that restarted forgot the backends: every Cluster attaches again.
        .reconcile_all_on(traffic_restarts(ctx.clone()))
        // A swap's progress changes its Cluster's Progressing condition.
        .watches_stream(swaps, |swap: ClusterSwap| {
            Some(ObjectRef::new(&swap.spec.cluster_ref))
        })
        .reconcile_on(triggers)
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|result| {
            ctx.metrics.reconciled("cluster", &result);
            async {}
        })
        .await;
}

/// One item whenever a traffic layer restarted: its epoch is read at start and then once per
/// `cluster_resync` (see [`Context::read_traffic_epochs`]).
fn traffic_restarts(ctx: Arc<Context>) -> impl futures::Stream<Item = ()> {
    let mut ticks = tokio::time::interval(ctx.settings.cluster_resync);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    futures::stream::unfold((ctx, ticks), |(ctx, mut ticks)| async move {
        loop {
            ticks.tick().await;
            if ctx.read_traffic_epochs().await {
                return Some(((), (ctx, ticks)));
            }
        }
    })
}

fn error_policy(cluster: Arc<Cluster>, error: &Error, ctx: Arc<Context>) -> Action {
    if !is_conflict(error) {
        tracing::info!(cluster = %cluster.name_any(), %error, "cluster reconcile failed; retrying");
    }
    crate::retry::requeue(&ctx, &format!("cluster/{}", cluster.name_any()), error)
}

/// Rate limits from the provider are not errors to back off from per poll: one Warning Event
/// per rate-limited stretch, and the next try on the cloud-polling schedule.
async fn reconcile(cluster: Arc<Cluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = format!("cluster/{}", cluster.name_any());
    let result = reconcile_once(&cluster, &ctx).await;
    match &result {
        Err(e) => {
            if let Some(next) = ctx.rate_limited(&key, e) {
                if next.warn {
                    ctx.recorder
                        .publish(
                            &cluster.object_ref(&()),
                            true,
                            crate::swap::RATE_LIMITED,
                            "Reconcile",
                            format!(
                                "{e}; polling the provider less often (next in {:?})",
                                next.after
                            ),
                        )
                        .await;
                }
                return Ok(Action::requeue(next.after));
            }
        }
        Ok(_) => ctx.cloud_answered(&key),
    }
    result
}

async fn reconcile_once(cluster: &Cluster, ctx: &Context) -> Result<Action, Error> {
    let name = cluster.name_any();
    let api: Api<Cluster> = Api::all(ctx.client.clone());
    let swaps: Api<ClusterSwap> = Api::all(ctx.client.clone());
    let old = cluster.status.clone().unwrap_or_default();
    let mut status = old.clone();
    let provider = ctx.provider(cluster)?;
    let t = now();
    let generation = cluster.metadata.generation;

    // Adoption of the instance named like the Cluster; while the cloud is still creating it,
    // it is polled on the adaptive schedule rather than at the resync pace.
    let candidate = match status.active_instance {
        None => provider.get_instance(&name).await?,
        Some(_) => None,
    };
    let creating = candidate
        .as_ref()
        .is_some_and(|i| i.state == InstanceState::Creating);
    if let Some(instance) = candidate.filter(|i| i.state == InstanceState::Running) {
        status.active_instance = Some(name.clone());
        upsert_instance(
            &mut status.instances,
            &name,
            &instance.kubernetes_version,
            InstancePhase::Active,
            instance.endpoint.clone(),
        );
        if let Some(addr) = instance.traffic_address {
            ctx.cache_address(&name, addr);
        }
    }

    // Is a swap in progress? A claim by a swap that is gone or finished is released.
    let mut swap_in_progress = None;
    if let Some(current) = status.current_swap.clone() {
        match swaps.get_opt(&current).await? {
            Some(s) if !s.status.clone().unwrap_or_default().phase.is_terminal() => {
                swap_in_progress = Some(current);
            }
            Some(s) if s.status.clone().unwrap_or_default().phase == rotor_api::Phase::Failed => {
                // A failed swap keeps its claim visible until a person (or a new swap) acts.
                swap_in_progress = None;
            }
            _ => status.current_swap = None,
        }
    }

    if let Some(active) = status.active_instance.clone() {
        if swap_in_progress.is_some() {
            ctx.attachments.forget(&cluster.spec.traffic.endpoint);
        } else {
            attach_active(ctx, cluster, &provider, &old, &status, &active).await?;
        }
    }

    // Health of the active instance: from discovery's watches when it has synced, else a probe.
    // Health from discovery needs no resync: its changes re-queue the Cluster.
    let mut from_events = false;
    let summary = match status.active_instance.clone() {
        Some(active) => {
            ctx.watch_active(cluster, &active).await?;
            match from_discovery(ctx, &active) {
                Some(found) => {
                    from_events = true;
                    Some(found)
                }
                None => Some(probe(ctx, cluster, &active).await),
            }
        }
        None => None,
    };
    if let Some((summary, why)) = &summary {
        let reachable = summary.reachable;
        set_condition(
            &mut status.conditions,
            Condition::new(
                ConditionType::Reachable,
                if reachable {
                    ConditionStatus::True
                } else {
                    ConditionStatus::False
                },
                if reachable {
                    Reason::Healthy
                } else {
                    Reason::Unreachable
                },
                if reachable {
                    String::new()
                } else {
                    why.clone()
                },
                t.clone(),
                generation,
            ),
        );
        let (ready, reason) = if summary.is_healthy() {
            (ConditionStatus::True, Reason::Healthy)
        } else if !reachable {
            (ConditionStatus::False, Reason::Unreachable)
        } else if summary.nodes_ready < summary.nodes_total {
            (ConditionStatus::False, Reason::NodesNotReady)
        } else {
            (ConditionStatus::False, Reason::WorkloadsUnavailable)
        };
        set_condition(
            &mut status.conditions,
            Condition::new(
                ConditionType::Ready,
                ready,
                reason,
                why.clone(),
                t.clone(),
                generation,
            ),
        );
    } else {
        set_condition(
            &mut status.conditions,
            Condition::new(
                ConditionType::Ready,
                ConditionStatus::False,
                Reason::NoActiveInstance,
                format!("no running instance named {name} to adopt"),
                t.clone(),
                generation,
            ),
        );
    }
    set_condition(
        &mut status.conditions,
        Condition::new(
            ConditionType::Progressing,
            if swap_in_progress.is_some() {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            Reason::SwapInProgress,
            swap_in_progress
                .as_ref()
                .map(|s| format!("ClusterSwap {s} is in progress"))
                .unwrap_or_default(),
            t.clone(),
            generation,
        ),
    );
    status.health = summary.map(|(s, _)| s);
    status.observed_generation = generation;

    // Write only when something besides the probe time changed.
    if differs_beyond_last_seen(&old, &status) {
        let mut obj = (*cluster).clone();
        obj.status = Some(status);
        api.replace_status(&name, &PostParams::default(), &obj)
            .await?;
    }
    let key = format!("cluster/{name}");
    ctx.reset_backoff(&key);
    if creating {
        let next = ctx.cloud_poll(&key, rotor_providers::poll::Observed::InProgress);
        return Ok(Action::requeue(next.after.min(ctx.settings.cluster_resync)));
    }
    ctx.cloud_poll_done(&key);
    Ok(Action::requeue(if from_events {
        ctx.settings.idle_resync
    } else {
        ctx.settings.cluster_resync
    }))
}

/// With no swap in progress, the active instance is the endpoint's only backend. Attaching it
/// is idempotent and heals a traffic layer that restarted or never knew it; it is done when
/// this process has not attached it since the layer's last restart (see [`Attachments`]). The
/// claim is re-read fresh first: a swap that claimed the Cluster a moment ago owns the traffic.
///
/// [`Attachments`]: crate::attachments::Attachments
async fn attach_active(
    ctx: &Context,
    cluster: &Cluster,
    provider: &rotor_providers::Located<'_>,
    old: &ClusterStatus,
    status: &ClusterStatus,
    active: &str,
) -> Result<(), Error> {
    let kind = cluster.spec.traffic.shifter;
    let endpoint = &cluster.spec.traffic.endpoint;
    let addr = match ctx.cached_address(active) {
        Some(a) => a,
        None => match provider
            .get_instance(active)
            .await?
            .and_then(|i| i.traffic_address)
        {
            Some(a) => a,
            None => return Ok(()),
        },
    };
    ctx.cache_address(active, addr);
    if ctx.attachments.holds(kind, endpoint, addr) {
        return Ok(());
    }
    let api: Api<Cluster> = Api::all(ctx.client.clone());
    let unclaimed = api
        .get_opt(&cluster.name_any())
        .await?
        .and_then(|c| c.status)
        .and_then(|s| s.current_swap)
        .is_none_or(|s| Some(&s) == old.current_swap.as_ref() && status.current_swap.is_none());
    if unclaimed {
        ctx.shifter(kind)?.register(endpoint, addr, None).await?;
        ctx.attachments.remember(kind, endpoint, addr);
    }
    Ok(())
}

/// Discovery's summary of `instance` as the Cluster's health, once its first lists are in.
/// Before that (just watched, or just after a restart of `rotor serve`) the summary has not
/// heard from the instance and says "not reachable" only because it knows nothing yet: the
/// probe answers instead, so a healthy cluster is never written Unreachable (a rollout skips
/// unreachable clusters).
fn from_discovery(ctx: &Context, instance: &str) -> Option<(HealthSummary, String)> {
    let s = ctx.discovery.as_ref()?.summary(instance)?;
    if !s.synced {
        return None;
    }
    let last_change: chrono::DateTime<chrono::Utc> = s.last_change.into();
    let health = HealthSummary {
        reachable: s.reachable,
        nodes_ready: s.nodes_ready,
        nodes_total: s.nodes_total,
        workloads_available: s.workloads_available,
        workloads_total: s.workloads_total,
        last_seen: k8s_openapi::jiff::Timestamp::from_millisecond(last_change.timestamp_millis())
            .ok()
            .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time),
    };
    Some((health, s.reason.unwrap_or_default()))
}

/// The health of `instance`, and why it is not healthy (empty when it is).
async fn probe(ctx: &Context, cluster: &Cluster, instance: &str) -> (HealthSummary, String) {
    let mut summary = HealthSummary {
        last_seen: Some(now()),
        ..HealthSummary::default()
    };
    let selection = Selection {
        cluster: cluster.spec.workloads.clone(),
        policy: Default::default(),
    };
    // A client made for this probe alone is dropped after it, with its pooled connections:
    // probes run for every cluster discovery has not synced yet (all of them right after a
    // start), and 1,000 cached clients ran `rotor demo --clusters 1000` out of descriptors.
    let result = async {
        let provider = ctx.provider(cluster)?;
        let client = ctx.members.get_or_transient(&provider, instance).await?;
        health::minor_version(&client, instance).await?;
        let (ready, total) = health::nodes_ready(&client, instance).await?;
        let workloads = health::workloads(&client, instance, &selection).await?;
        Ok::<_, Error>((ready, total, workloads))
    }
    .await;
    match result {
        Ok((ready, total, workloads)) => {
            summary.reachable = true;
            summary.nodes_ready = ready;
            summary.nodes_total = total;
            summary.workloads_available = workloads.available;
            summary.workloads_total = workloads.total;
            let mut why = Vec::new();
            if ready < total {
                why.push(format!("{ready}/{total} nodes Ready"));
            }
            if !workloads.all_available() {
                why.push(workloads.holding_up.join(", "));
            }
            (summary, why.join("; "))
        }
        Err(e) => {
            ctx.members.forget(instance);
            (summary, e.to_string())
        }
    }
}

fn differs_beyond_last_seen(old: &ClusterStatus, new: &ClusterStatus) -> bool {
    let strip = |s: &ClusterStatus| {
        let mut s = s.clone();
        if let Some(h) = s.health.as_mut() {
            h.last_seen = None;
        }
        s
    };
    strip(old) != strip(new)
}
