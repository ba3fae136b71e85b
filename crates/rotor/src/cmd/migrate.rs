//! `rotor migrate plan|apply`: the migration engine by hand, between any two clusters reached
//! with kubeconfigs — to see what a swap would move (and what it leaves behind, and why), or to
//! move it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use rotor_migration::{MemoryCheckpoint, MigrationOptions};

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

pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    match args.command {
        MigrateCommand::Plan {
            from,
            objects,
            allow_stateful,
            json,
        } => {
            let blue = client(&from).await?;
            let options = MigrationOptions {
                allow_stateful,
                ..MigrationOptions::default()
            };
            let plan = rotor_migration::plan(&blue, &options).await?;
            if json {
                println!("{}", serde_json::to_string(&plan)?);
            } else if objects {
                print!("{}", plan.objects_table());
            } else {
                print!("{plan}");
            }
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
            let plan = rotor_migration::plan(&blue, &options).await?;
            eprintln!(
                "[{:6.2}s] planned {} objects in {} stages",
                started.elapsed().as_secs_f64(),
                plan.total(),
                plan.stages.len()
            );
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
