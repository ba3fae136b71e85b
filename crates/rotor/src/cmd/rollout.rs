//! Operator commands against a running control plane: `rotor get`, `rotor describe`,
//! `rotor approve` and `rotor rollout pause|resume|retry|skip|abort|rollback|watch|plan`.
//!
//! Every command is a small write through the Kubernetes API (kube-rs), never a side door: what
//! the CLI does, `kubectl` could do, and the controllers act on it level-triggered.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use rotor_api::{Cluster, ClusterSwap, Phase, Rollout, labels};
use rotor_controllers::rollout::rollback_requestable;
use serde_json::json;

#[derive(Args)]
pub struct Connection {
    /// Admin kubeconfig of the control plane (default: $KUBECONFIG, else ./rotor.db.kubeconfig,
    /// which `rotor serve --store sqlite:rotor.db` writes).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
}

impl Connection {
    async fn client(&self) -> anyhow::Result<kube::Client> {
        let path = self
            .kubeconfig
            .clone()
            .or_else(|| std::env::var_os("KUBECONFIG").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("rotor.db.kubeconfig"));
        let text = std::fs::read_to_string(&path).map_err(|e| {
            anyhow::anyhow!(
                "reading kubeconfig {}: {e} (pass --kubeconfig, or run rotor serve first)",
                path.display()
            )
        })?;
        rotor::client_for(&text).await
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Kind {
    Clusters,
    Clusterswaps,
    Rollouts,
}

#[derive(Args)]
pub struct GetArgs {
    pub kind: Kind,
    #[command(flatten)]
    pub conn: Connection,
}

#[derive(Args)]
pub struct DescribeArgs {
    /// `rollout`
    pub kind: String,
    pub name: String,
    #[command(flatten)]
    pub conn: Connection,
}

#[derive(Args)]
pub struct ApproveArgs {
    /// `rollout/NAME`
    pub target: String,
    /// Approve through this wave (0-based); default: the wave waiting now.
    #[arg(long)]
    pub through_wave: Option<u32>,
    #[command(flatten)]
    pub conn: Connection,
}

#[derive(Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub command: RolloutCommand,
    #[command(flatten)]
    pub conn: Connection,
}

#[derive(Subcommand)]
pub enum RolloutCommand {
    /// Start no new swaps (running ones continue).
    Pause { name: String },
    /// Undo pause.
    Resume { name: String },
    /// Run a cluster's failed or rolled-back swap again (it no longer counts against the budget);
    /// with `--failed`, every failed, rolled-back or skipped cluster of a rollout.
    Retry {
        /// The cluster; with `--failed`, the rollout (default: the only one there is).
        name: Option<String>,
        #[arg(long)]
        rollout: Option<String>,
        /// Run again, against the same frozen plan and target, every cluster of the rollout
        /// whose swap failed or rolled back and every cluster it left out (`spec.skipClusters`
        /// is cleared); also after `onBudgetExceeded: RollbackFleet` rolled the fleet back.
        #[arg(long)]
        failed: bool,
    },
    /// Take a cluster out of the rollout.
    Skip {
        cluster: String,
        #[arg(long)]
        rollout: Option<String>,
    },
    /// Pause, and roll back every swap of the rollout still in progress.
    Abort { name: String },
    /// Roll back every swap of the rollout that can still go back (before Decommissioning).
    Rollback { name: String },
    /// Live progress per wave until the rollout ends.
    Watch { name: String },
    /// The plan of a Rollout manifest against the clusters now: waves, windows, blockers,
    /// gates and an estimated duration. Nothing is written.
    Plan(super::rollout_plan::PlanArgs),
}

/// Every object of `K` that decodes; the others are named on stderr, so one bad object does
/// not hide the rest.
pub(super) async fn readable<K>(client: &kube::Client, lp: &ListParams) -> anyhow::Result<Vec<K>>
where
    K: kube::Resource<DynamicType = ()> + serde::de::DeserializeOwned,
{
    let ar = kube::api::ApiResource::erase::<K>(&());
    let list = Api::<kube::api::DynamicObject>::all_with(client.clone(), &ar)
        .list(lp)
        .await?;
    let mut good = Vec::with_capacity(list.items.len());
    for obj in &list.items {
        match rotor_controllers::lenient::decode_object::<K>(obj) {
            Ok(k) => good.push(k),
            Err(e) => eprintln!("{} {} cannot be read: {e}", ar.kind, obj.name_any()),
        }
    }
    Ok(good)
}

pub async fn get(args: GetArgs) -> anyhow::Result<()> {
    let client = args.conn.client().await?;
    let lp = ListParams::default();
    match args.kind {
        Kind::Rollouts => {
            println!(
                "{:<24} {:<18} {:<10} {:>6} {:>9} {:>8} {:>6}",
                "NAME", "PHASE", "TARGET", "WAVE", "SUCCEEDED", "FAILED", "TOTAL"
            );
            for r in readable::<Rollout>(&client, &lp).await? {
                let st = r.status.clone().unwrap_or_default();
                println!(
                    "{:<24} {:<18} {:<10} {:>6} {:>9} {:>8} {:>6}",
                    r.name_any(),
                    st.phase.as_str(),
                    r.spec.target.kubernetes_version.clone().unwrap_or_default(),
                    st.current_wave
                        .map(|w| format!("{}/{}", w + 1, st.waves.len()))
                        .unwrap_or_else(|| "-".into()),
                    st.counts.succeeded,
                    st.counts.failures(),
                    st.counts.total
                );
            }
        }
        Kind::Clusterswaps => {
            println!(
                "{:<40} {:<28} {:<16} {:>6}",
                "NAME", "CLUSTER", "PHASE", "GREEN%"
            );
            for s in readable::<ClusterSwap>(&client, &lp).await? {
                let st = s.status.clone().unwrap_or_default();
                println!(
                    "{:<40} {:<28} {:<16} {:>6}",
                    s.name_any(),
                    s.spec.cluster_ref,
                    st.phase.as_str(),
                    st.green_weight_percent
                );
            }
        }
        Kind::Clusters => {
            println!(
                "{:<32} {:<10} {:<36} {:<8}",
                "NAME", "VERSION", "ACTIVE", "SWAP"
            );
            for c in readable::<Cluster>(&client, &lp).await? {
                let st = c.status.clone().unwrap_or_default();
                println!(
                    "{:<32} {:<10} {:<36} {:<8}",
                    c.name_any(),
                    c.spec.kubernetes_version,
                    st.active_instance.unwrap_or_default(),
                    st.current_swap.unwrap_or_else(|| "-".into())
                );
            }
        }
    }
    Ok(())
}

pub async fn describe(args: DescribeArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        matches!(args.kind.as_str(), "rollout" | "rollouts" | "rro"),
        "describe {}: only rollout is supported (use kubectl describe for the others)",
        args.kind
    );
    let client = args.conn.client().await?;
    let r = Api::<Rollout>::all(client.clone())
        .get(&args.name)
        .await
        .map_err(|e| anyhow::anyhow!("Rollout {}: {e}", args.name))?;
    let st = r.status.clone().unwrap_or_default();
    let swaps = swaps_of(&client, &args.name).await?;
    println!("Name:        {}", r.name_any());
    println!(
        "Target:      {}",
        r.spec.target.kubernetes_version.clone().unwrap_or_default()
    );
    println!("Phase:       {}", st.phase.as_str());
    let budget = match &r.spec.failure_budget {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => s.clone(),
    };
    println!(
        "Limits:      {} swaps at once, failure budget {budget}, {} s bake between waves, approval {}, unavailable clusters: {}",
        r.spec.max_concurrent_swaps,
        r.spec.bake_seconds_between_waves,
        r.spec.approval.as_str(),
        r.spec.unavailable_clusters.as_str()
    );
    if !r.spec.order_by.is_empty() {
        println!("Order:       {}", r.spec.order_by.join(", "));
    }
    let c = &st.counts;
    println!(
        "Swaps:       {} total, {} succeeded, {} running, {} pending, {} rolled back, {} failed",
        c.total, c.succeeded, c.in_progress, c.pending, c.rolled_back, c.failed
    );
    println!("Waves:");
    for (i, w) in st.waves.iter().enumerate() {
        let mut by_phase: BTreeMap<&str, usize> = BTreeMap::new();
        for cl in &w.clusters {
            let p = swaps
                .get(cl)
                .map(|s| s.status.clone().unwrap_or_default().phase.as_str())
                .unwrap_or("NotStarted");
            *by_phase.entry(p).or_default() += 1;
        }
        let summary = by_phase
            .iter()
            .map(|(p, n)| format!("{p}={n}"))
            .collect::<Vec<_>>()
            .join(" ");
        println!(
            "  {i:>2} {:<14} {:<18} {:>4} clusters  {summary}",
            w.name,
            w.phase.as_str(),
            w.clusters.len()
        );
    }
    if !st.skipped.is_empty() {
        println!("Skipped ({}):", st.skipped.len());
        for sk in &st.skipped {
            println!(
                "  {:<32} {:<14} {:<12} {}",
                sk.cluster, sk.wave, sk.reason, sk.message
            );
        }
    }
    if !st.parked.is_empty() {
        println!(
            "Parked before traffic ({}): {}",
            st.parked.len(),
            st.parked.join(", ")
        );
    }
    println!("Conditions:");
    for cond in &st.conditions {
        println!(
            "  {:<20} {:<6} {:<26} {}",
            cond.type_.as_str(),
            cond.status.as_str(),
            cond.reason.as_str(),
            cond.message
        );
    }
    let failing: Vec<_> = swaps
        .values()
        .filter(|s| {
            matches!(
                s.status.clone().unwrap_or_default().phase,
                Phase::Failed | Phase::RolledBack
            )
        })
        .collect();
    if !failing.is_empty() {
        println!("Failed or rolled back:");
        for s in failing {
            let st = s.status.clone().unwrap_or_default();
            let why = st
                .history
                .iter()
                .rev()
                .find(|h| matches!(h.phase, Phase::RollingBack | Phase::Failed))
                .map(|h| format!("{}: {}", h.reason, h.message))
                .unwrap_or_default();
            println!("  {:<32} {}", s.spec.cluster_ref, why);
        }
    }
    Ok(())
}

/// The rollout's swaps by cluster.
async fn swaps_of(
    client: &kube::Client,
    rollout: &str,
) -> anyhow::Result<BTreeMap<String, ClusterSwap>> {
    let lp = ListParams::default().labels(&format!("{}={rollout}", labels::ROLLOUT));
    Ok(Api::<ClusterSwap>::all(client.clone())
        .list(&lp)
        .await?
        .items
        .into_iter()
        .map(|s| (s.spec.cluster_ref.clone(), s))
        .collect())
}

pub async fn approve(args: ApproveArgs) -> anyhow::Result<()> {
    let name = args
        .target
        .strip_prefix("rollout/")
        .or_else(|| args.target.strip_prefix("rollouts/"))
        .ok_or_else(|| anyhow::anyhow!("approve {}: expected rollout/NAME", args.target))?;
    let client = args.conn.client().await?;
    let api: Api<Rollout> = Api::all(client);
    let r = api
        .get(name)
        .await
        .map_err(|e| anyhow::anyhow!("Rollout {name}: {e}"))?;
    let wave = match args.through_wave {
        Some(w) => w,
        None => r
            .status
            .as_ref()
            .and_then(|s| s.current_wave)
            .ok_or_else(|| anyhow::anyhow!("Rollout {name} has no current wave to approve"))?,
    };
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"approvedThroughWave": wave}})),
    )
    .await?;
    println!("rollout/{name} approved through wave {wave}");
    Ok(())
}

pub async fn rollout(args: RolloutArgs) -> anyhow::Result<()> {
    let client = args.conn.client().await?;
    let rollouts: Api<Rollout> = Api::all(client.clone());
    let swaps: Api<ClusterSwap> = Api::all(client.clone());
    let set_paused = |name: String, paused: bool| {
        let rollouts = rollouts.clone();
        async move {
            rollouts
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"paused": paused}})),
                )
                .await
                .map_err(|e| anyhow::anyhow!("Rollout {name}: {e}"))
        }
    };
    match args.command {
        RolloutCommand::Pause { name } => {
            set_paused(name.clone(), true).await?;
            println!("rollout/{name} paused: no new swaps start");
        }
        RolloutCommand::Resume { name } => {
            set_paused(name.clone(), false).await?;
            println!("rollout/{name} resumed");
        }
        RolloutCommand::Retry {
            name,
            rollout,
            failed: true,
        } => retry_failed(&rollouts, name.or(rollout)).await?,
        RolloutCommand::Retry { name, rollout, .. } => {
            let cluster = name.ok_or_else(|| {
                anyhow::anyhow!("rotor rollout retry: name a CLUSTER, or pass --failed [ROLLOUT]")
            })?;
            let swap = swap_of_cluster(&swaps, &cluster, rollout.as_deref()).await?;
            let phase = swap.status.clone().unwrap_or_default().phase;
            anyhow::ensure!(
                matches!(phase, Phase::Failed | Phase::RolledBack),
                "cluster {cluster}: its swap {} is {phase}; only Failed or RolledBack swaps are retried",
                swap.name_any()
            );
            swaps
                .delete(&swap.name_any(), &DeleteParams::default())
                .await?;
            println!(
                "cluster {cluster}: swap {} removed; its rollout starts it again",
                swap.name_any()
            );
        }
        RolloutCommand::Skip { cluster, rollout } => {
            let name = match rollout {
                Some(r) => r,
                None => swap_of_cluster(&swaps, &cluster, None)
                    .await?
                    .labels()
                    .get(labels::ROLLOUT)
                    .cloned()
                    .ok_or_else(|| {
                        anyhow::anyhow!("cluster {cluster}: no rollout owns its swap")
                    })?,
            };
            let r = rollouts.get(&name).await?;
            let mut skip = r.spec.skip_clusters.clone();
            if !skip.contains(&cluster) {
                skip.push(cluster.clone());
            }
            rollouts
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"skipClusters": skip}})),
                )
                .await?;
            println!("cluster {cluster} skipped by rollout/{name}");
        }
        RolloutCommand::Abort { name } => {
            set_paused(name.clone(), true).await?;
            let n = request_rollback(&swaps, &client, &name, |p| !p.is_terminal()).await?;
            println!("rollout/{name} aborted: paused, {n} swaps in progress rolling back");
        }
        RolloutCommand::Rollback { name } => {
            set_paused(name.clone(), true).await?;
            let n = request_rollback(&swaps, &client, &name, |p| {
                p.allows_rollback() || p == Phase::RollingBack
            })
            .await?;
            println!("rollout/{name}: paused, {n} swaps rolling back");
        }
        RolloutCommand::Watch { name } => watch(&rollouts, &client, &name).await?,
        RolloutCommand::Plan(plan) => super::rollout_plan::plan(&client, plan).await?,
    }
    Ok(())
}

/// Raises `spec.retryFailed` (and clears `spec.skipClusters`) in one write guarded by the
/// resourceVersion read; the controller deletes the ended swaps and reopens their waves.
async fn retry_failed(rollouts: &Api<Rollout>, name: Option<String>) -> anyhow::Result<()> {
    let name = match name {
        Some(n) => n,
        None => {
            let all = rollouts.list(&ListParams::default()).await?.items;
            match all.as_slice() {
                [one] => one.name_any(),
                _ => anyhow::bail!(
                    "rotor rollout retry --failed: {} rollouts exist; name one",
                    all.len()
                ),
            }
        }
    };
    let r = rollouts
        .get(&name)
        .await
        .map_err(|e| anyhow::anyhow!("Rollout {name}: {e}"))?;
    let st = r.status.clone().unwrap_or_default();
    let round = r.spec.retry_failed + 1;
    let patch = json!({
        "metadata": {"resourceVersion": r.resource_version()},
        "spec": {"retryFailed": round, "skipClusters": null},
    });
    rollouts
        .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(|e| anyhow::anyhow!("Rollout {name}: {e}"))?;
    let when = match st.phase {
        rotor_api::RolloutPhase::RollingBack => " once its fleet rollback has ended",
        _ => "",
    };
    println!(
        "rollout/{name}: spec.retryFailed={round}: {} failed or rolled back and {} left out run again{when}",
        st.counts.failures(),
        st.skipped.len()
    );
    Ok(())
}

async fn swap_of_cluster(
    swaps: &Api<ClusterSwap>,
    cluster: &str,
    rollout: Option<&str>,
) -> anyhow::Result<ClusterSwap> {
    let mut selector = format!("{}={cluster}", labels::CLUSTER);
    if let Some(r) = rollout {
        selector.push_str(&format!(",{}={r}", labels::ROLLOUT));
    }
    let found = swaps
        .list(&ListParams::default().labels(&selector))
        .await?
        .items;
    match found.len() {
        0 => anyhow::bail!("cluster {cluster}: no swap of a rollout found"),
        1 => Ok(found.into_iter().next().expect("one")),
        n => anyhow::bail!("cluster {cluster}: {n} rollouts have swaps for it; pass --rollout"),
    }
}

async fn request_rollback(
    swaps: &Api<ClusterSwap>,
    client: &kube::Client,
    rollout: &str,
    which: impl Fn(Phase) -> bool,
) -> anyhow::Result<usize> {
    let mut n = 0;
    for s in swaps_of(client, rollout).await?.into_values() {
        let phase = s.status.as_ref().map(|st| st.phase).unwrap_or_default();
        if which(phase) && rollback_requestable(&s) {
            rotor_controllers::rollout::request_rollback(swaps, &s.name_any()).await?;
            n += 1;
        }
    }
    Ok(n)
}

async fn watch(rollouts: &Api<Rollout>, client: &kube::Client, name: &str) -> anyhow::Result<()> {
    use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
    let multi = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:<14} [{bar:40}] {pos:>4}/{len:<4} {msg}")
        .map_err(|e| anyhow::anyhow!("progress template: {e}"))?
        .progress_chars("=> ");
    let header = multi.add(ProgressBar::new_spinner());
    let mut bars: Vec<ProgressBar> = Vec::new();
    loop {
        let r = rollouts
            .get(name)
            .await
            .map_err(|e| anyhow::anyhow!("Rollout {name}: {e}"))?;
        let st = r.status.clone().unwrap_or_default();
        let swaps = swaps_of(client, name).await?;
        while bars.len() < st.waves.len() {
            let b = multi.add(ProgressBar::new(0));
            b.set_style(style.clone());
            bars.push(b);
        }
        for (w, bar) in st.waves.iter().zip(&bars) {
            let done = w
                .clusters
                .iter()
                .filter(|c| {
                    swaps
                        .get(*c)
                        .is_some_and(|s| s.status.clone().unwrap_or_default().phase.is_terminal())
                })
                .count();
            let running = w
                .clusters
                .iter()
                .filter(|c| {
                    swaps
                        .get(*c)
                        .is_some_and(|s| !s.status.clone().unwrap_or_default().phase.is_terminal())
                })
                .count();
            bar.set_prefix(w.name.clone());
            bar.set_length(w.clusters.len() as u64);
            bar.set_position(done as u64);
            bar.set_message(format!("{} ({running} running)", w.phase.as_str()));
        }
        header.set_message(format!(
            "rollout/{name} {} — {} succeeded, {} rolled back, {} failed of {}",
            st.phase.as_str(),
            st.counts.succeeded,
            st.counts.rolled_back,
            st.counts.failed,
            st.counts.total
        ));
        header.tick();
        if st.phase.is_final() {
            for b in &bars {
                b.finish();
            }
            header.finish();
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
