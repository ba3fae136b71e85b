//! `rotor migrate plan|preflight|diff|apply`: the migration engine by hand, between any two clusters
//! reached with kubeconfigs — to see what a swap would move (and what it leaves behind, and
//! why), whether the target release can take every object's API version (before the target
//! exists: from that release's OpenAPI data), or to move it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use rotor_migration::{MemoryCheckpoint, MigrationOptions, ServedVersions};

#[derive(Args)]
pub struct MigrateArgs {
    #[command(subcommand)]
    pub command: MigrateCommand,
}

#[derive(Subcommand)]
pub enum MigrateCommand {
    /// What would move from the cluster, in order, and what stays behind with the reason.
    Plan {
        /// Kubeconfig of the source (blue) cluster.
        #[arg(long)]
        from: PathBuf,
        /// One row per object instead of the summary per stage.
        #[arg(long)]
        objects: bool,
        /// Move workloads whose data lives in persistent volumes (the data does not move).
        #[arg(long)]
        allow_stateful: bool,
        /// Kubeconfig of green: also shows each kind's API version there (conversions, blocks).
        #[arg(long, conflicts_with = "target_version")]
        to: Option<PathBuf>,
        /// Green's Kubernetes release (`1.32`), before green exists: the same, from its OpenAPI data.
        #[arg(long)]
        target_version: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Whether green can take every object at a version it serves: per resource type ok,
    /// convert (from → to) or blocked (why). Exits non-zero when anything is blocked.
    Preflight {
        /// Kubeconfig of the source (blue) cluster.
        #[arg(long)]
        from: PathBuf,
        /// Green's Kubernetes release (`1.32`): answered from its OpenAPI data, green need not exist.
        #[arg(long, required_unless_present = "to", conflicts_with = "to")]
        target_version: Option<String>,
        /// Kubeconfig of green, when it exists: answered from its discovery.
        #[arg(long)]
        to: Option<PathBuf>,
        /// Move workloads whose data lives in persistent volumes (the data does not move).
        #[arg(long)]
        allow_stateful: bool,
        #[arg(long)]
        json: bool,
    },
    /// What differs between FROM's selected objects and their copies in TO, compared as the
    /// migration writes them (server-assigned fields left out; Secret values never shown).
    /// Exits non-zero when anything differs or is missing, like `kubectl diff`.
    Diff {
        #[arg(long)]
        from: PathBuf,
        #[arg(long)]
        to: PathBuf,
        #[arg(long)]
        allow_stateful: bool,
        /// Known drift: a difference at this path or under it (`spec.replicas`,
        /// `metadata.labels.team`, `metadata.managedFields`) is not reported. Repeatable.
        #[arg(long = "ignore", value_name = "PATH")]
        ignore: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Plan against FROM, apply to TO with server-side apply, wait until workloads are available.
    Apply {
        #[arg(long)]
        from: PathBuf,
        #[arg(long)]
        to: PathBuf,
        #[arg(long)]
        allow_stateful: bool,
        /// How long to wait for green's workloads to become available.
        #[arg(long, default_value_t = 300)]
        ready_timeout_s: u64,
        #[arg(long)]
        json: bool,
    },
}

async fn client(path: &PathBuf) -> anyhow::Result<kube::Client> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading kubeconfig {}: {e}", path.display()))?;
    rotor::client_for(&text)
        .await
        .map_err(|_| anyhow::anyhow!("kubeconfig {}: could not be loaded", path.display()))
}

/// `1.32` (or `v1.32`) → 32.
fn parse_release(v: &str) -> anyhow::Result<u32> {
    v.trim_start_matches('v')
        .strip_prefix("1.")
        .and_then(|m| m.split('.').next())
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("--target-version {v}: expected a release such as 1.32"))
}

/// What green serves: its discovery (`--to`) or its release's OpenAPI data (`--target-version`).
async fn green_versions(
    to: Option<&PathBuf>,
    target_version: Option<&str>,
) -> anyhow::Result<Option<ServedVersions>> {
    match (to, target_version) {
        (Some(path), _) => {
            let green = client(path).await?;
            let served = ServedVersions::discover(&green, "green")
                .await
                .map_err(|e| anyhow::anyhow!("discovering green's API versions: {e}"))?;
            Ok(Some(served))
        }
        (None, Some(v)) => {
            let served = ServedVersions::of_release(parse_release(v)?)
                .map_err(|e| anyhow::anyhow!("--target-version {v}: {e}"))?;
            Ok(Some(served))
        }
        (None, None) => Ok(None),
    }
}

pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    match args.command {
        MigrateCommand::Plan {
            from,
            objects,
            allow_stateful,
            to,
            target_version,
            json,
        } => {
            let blue = client(&from).await?;
            let options = MigrationOptions {
                allow_stateful,
                ..MigrationOptions::default()
            };
            let plan = match green_versions(to.as_ref(), target_version.as_deref()).await? {
                Some(green) => rotor_migration::plan_for(&blue, &green, &options).await?,
                None => rotor_migration::plan(&blue, &options).await?,
            };
            if json {
                println!("{}", serde_json::to_string(&plan)?);
            } else if objects {
                print!("{}", plan.objects_table());
            } else {
                print!("{plan}");
            }
        }
        MigrateCommand::Preflight {
            from,
            target_version,
            to,
            allow_stateful,
            json,
        } => {
            let blue = client(&from).await?;
            let options = MigrationOptions {
                allow_stateful,
                ..MigrationOptions::default()
            };
            let green = green_versions(to.as_ref(), target_version.as_deref())
                .await?
                .ok_or_else(|| anyhow::anyhow!("--target-version or --to is required"))?;
            let mut plan = rotor_migration::plan_for(&blue, &green, &options).await?;
            // Green judges a plan it can take at all (a blocked one is refused already).
            if let Some(to) = to.as_ref().filter(|_| plan.blocked.is_empty()) {
                let on_green =
                    rotor_migration::dry_run_on_green(&client(to).await?, &plan, &options)
                        .await
                        .map_err(|r| {
                            anyhow::anyhow!(
                                "green could not be asked: {}",
                                r.errors.first().map(|e| e.message.as_str()).unwrap_or("?")
                            )
                        })?;
                merge_refusals(&mut plan.refused, on_green);
            }
            if json {
                let out = serde_json::json!({
                    "sourceVersion": plan.source_minor.map(|m| format!("1.{m}")),
                    "target": green.target(),
                    "targetSource": green.source,
                    "objects": plan.total(),
                    "resources": plan.versions.iter().filter(|v| v.objects > 0).collect::<Vec<_>>(),
                    "blocked": plan.blocked,
                    "refused": plan.refused,
                });
                println!("{out}");
            } else {
                println!(
                    "{} objects from Kubernetes {} to {} (by {})",
                    plan.total(),
                    plan.source_minor
                        .map(|m| format!("1.{m}"))
                        .unwrap_or_else(|| "?".into()),
                    green.target(),
                    green.source
                );
                print!("{}", plan.versions_table());
                for r in &plan.refused {
                    println!("refused: {r}");
                }
            }
            anyhow::ensure!(
                plan.blocked.is_empty() && plan.refused.is_empty(),
                "{} object(s) cannot move to {} and {} would be refused there",
                plan.blocked.len(),
                green.target(),
                plan.refused.len()
            );
        }
        MigrateCommand::Diff {
            from,
            to,
            allow_stateful,
            ignore,
            json,
        } => {
            let (blue, green) = (client(&from).await?, client(&to).await?);
            let options = MigrationOptions {
                allow_stateful,
                ..MigrationOptions::default()
            };
            let report = rotor_migration::diff(&blue, &green, &options, &ignore).await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", report.table());
            }
            anyhow::ensure!(
                report.is_clean(),
                "{} of {} objects differ or are missing in green",
                report.objects - report.same,
                report.objects
            );
        }
        MigrateCommand::Apply {
            from,
            to,
            allow_stateful,
            ready_timeout_s,
            json,
        } => {
            let started = Instant::now();
            let (blue, green) = (client(&from).await?, client(&to).await?);
            let options = MigrationOptions {
                allow_stateful,
                ..MigrationOptions::default()
            };
            let served = ServedVersions::discover(&green, "green")
                .await
                .map_err(|e| anyhow::anyhow!("discovering green's API versions: {e}"))?;
            let plan = rotor_migration::plan_for(&blue, &served, &options).await?;
            // Refused before anything is written (apply would refuse too).
            if !plan.blocked.is_empty() {
                return Err(rotor_migration::Error::Blocked {
                    objects: plan.blocked,
                }
                .into());
            }
            eprintln!(
                "[{:6.2}s] planned {} objects in {} stages",
                started.elapsed().as_secs_f64(),
                plan.total(),
                plan.stages.len()
            );
            for v in plan.versions.iter().filter(|v| v.objects > 0) {
                if let rotor_migration::VersionChoice::Convert { from, to } = &v.choice {
                    eprintln!("  converting {} × {} {from} → {to}", v.objects, v.kind);
                }
            }
            let report =
                rotor_migration::apply(&green, &plan, &options, &MemoryCheckpoint::new()).await;
            eprintln!(
                "[{:6.2}s] applied {}/{} ({} retries, {} errors)",
                started.elapsed().as_secs_f64(),
                report.applied + report.skipped,
                report.total,
                report.retries,
                report.errors.len()
            );
            for e in report.errors.iter().take(20) {
                eprintln!("  {e}");
            }
            let ready = if report.is_complete() {
                Some(
                    rotor_migration::wait_ready(
                        &green,
                        &plan,
                        Duration::from_secs(ready_timeout_s),
                    )
                    .await?,
                )
            } else {
                None
            };
            let summary = serde_json::json!({
                "objects": report.total,
                "applied": report.applied + report.skipped,
                "errors": report.errors.len(),
                "workloads_ready": ready.as_ref().map(|r| r.ready),
                "workloads_total": ready.as_ref().map(|r| r.total),
                "wall_s": (started.elapsed().as_secs_f64() * 100.0).round() / 100.0,
            });
            if json {
                println!("{summary}");
            } else {
                eprintln!("{summary}");
            }
            anyhow::ensure!(
                report.is_complete(),
                "{} objects were not applied",
                report.errors.len()
            );
        }
    }
    Ok(())
}

/// Green's own refusals added to the rehearsal's, one per object (the rehearsal's kept: it names
/// the release's rule; green's adds what only green knows).
fn merge_refusals(
    refused: &mut Vec<rotor_migration::ObjectError>,
    on_green: Vec<rotor_migration::ObjectError>,
) {
    for r in on_green {
        if !refused.iter().any(|e| e.object == r.object) {
            refused.push(r);
        }
    }
    refused.sort_by(|a, b| a.object.cmp(&b.object));
}
