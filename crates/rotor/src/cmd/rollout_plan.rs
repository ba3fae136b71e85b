//! `rotor rollout plan -f ROLLOUT.yaml [--json]`: a Rollout's plan against the Clusters the
//! control plane has now, computed by the controller's own planning code
//! (`rotor_controllers::rollout::preview`, over the plan the controller freezes). Reads only.

use std::path::PathBuf;

use clap::Args;
use kube::ResourceExt;
use kube::api::ListParams;
use rotor_api::{Cluster, MaintenanceWindow, Rollout};
use rotor_controllers::rollout::preview::{Preview, preview};

#[derive(Args)]
pub struct PlanArgs {
    /// The Rollout manifest (YAML or JSON).
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
    /// One JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub async fn plan(client: &kube::Client, args: PlanArgs) -> anyhow::Result<()> {
    let rollout = read_manifest(&args.file)?;
    let clusters = super::rollout::readable::<Cluster>(client, &ListParams::default()).await?;
    let p = preview(&rollout.spec, &clusters, chrono::Utc::now());
    if args.json {
        let mut value = serde_json::to_value(&p)?;
        value["rollout"] = rollout.name_any().into();
        println!("{value}");
    } else {
        print_table(&rollout.name_any(), &p);
    }
    Ok(())
}

/// The Rollout in `path`, its spec validated; errors name the file, the object and the field.
fn read_manifest(path: &std::path::Path) -> anyhow::Result<Rollout> {
    let shown = path.display();
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("reading {shown}: {e}"))?;
    let value: serde_json::Value =
        yaml_serde::from_str(&text).map_err(|e| anyhow::anyhow!("{shown}: not YAML: {e}"))?;
    let kind = value["kind"].as_str().unwrap_or_default();
    anyhow::ensure!(
        kind == "Rollout",
        "{shown}: kind is {kind:?}; rotor rollout plan takes a Rollout"
    );
    let rollout: Rollout = serde_json::from_value(value)
        .map_err(|e| anyhow::anyhow!("{shown}: not a valid Rollout: {e}"))?;
    if let Err(errors) = rollout.spec.validate() {
        let errors: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        anyhow::bail!(
            "{shown}: Rollout {}: {}",
            rollout.name_any(),
            errors.join("; ")
        );
    }
    Ok(rollout)
}

fn print_table(name: &str, p: &Preview) {
    println!("Rollout {name}: {} waves", p.waves.len());
    let windows = match p.maintenance_windows.is_empty() {
        true => "any time".to_string(),
        false => format!(
            "{} (inside one now: {})",
            show_windows(&p.maintenance_windows),
            p.in_window_now
        ),
    };
    println!("Swaps start: {windows}");
    println!(
        "{:>3} {:<16} {:>8} {:>7} {:>9} {:>10}  CLUSTERS (in start order)",
        "#", "WAVE", "CLUSTERS", "AT ONCE", "APPROVAL", "ESTIMATE"
    );
    for (i, w) in p.waves.iter().enumerate() {
        let approval = if w.waits_for_approval { "waits" } else { "-" };
        println!(
            "{i:>3} {:<16} {:>8} {:>7} {:>9} {:>9}s  {}",
            w.name,
            w.clusters.len(),
            w.max_concurrent,
            approval,
            w.estimate_seconds,
            w.clusters.join(", ")
        );
        let mut gates = w.gates.clone();
        if let Some(b) = w.failure_budget {
            gates.push(format!("wave failure budget {b}"));
        }
        if w.bake_after_seconds > 0 {
            gates.push(format!(
                "bake {} s before the next wave",
                w.bake_after_seconds
            ));
        }
        gates.extend(w.wave_gates.iter().map(|g| format!("after the wave: {g}")));
        println!("      gates: {}", gates.join("; "));
        for c in &w.cluster_windows {
            println!(
                "      {} waits for its own windows: {} (inside one now: {})",
                c.cluster,
                show_windows(&c.windows),
                c.in_window_now
            );
        }
    }
    if p.blockers.is_empty() {
        println!("Blockers: none");
    } else {
        println!("Blockers:");
        for b in &p.blockers {
            let outcome = if b.skipped { "skipped" } else { "waited for" };
            println!(
                "  {:<32} {:<12} {:<12} {outcome}: {}",
                b.cluster, b.wave, b.reason, b.message
            );
        }
    }
    println!(
        "Estimate: {} s. It counts {}.",
        p.estimate_seconds, p.estimate_counts
    );
}

fn show_windows(windows: &[MaintenanceWindow]) -> String {
    let shown: Vec<String> = windows
        .iter()
        .map(|w| {
            let tz = w.time_zone.as_deref().unwrap_or("UTC");
            match (&w.schedule, w.duration_minutes) {
                (Some(cron), Some(m)) => format!("{cron} for {m} min ({tz})"),
                _ => {
                    let days: Vec<&str> = w.days.iter().map(|d| d.as_str()).collect();
                    format!("{} {}-{} ({tz})", days.join(","), w.start, w.end)
                }
            }
        })
        .collect();
    shown.join("; ")
}
