//! The swap's migration step: the migration engine (`rotor-migration`) planned against blue,
//! applied to green with server-side apply stage by stage, resumable through a checkpoint kept
//! per swap. This module is the seam: the swap controller sees only [`migrate`] and its
//! [`Outcome`]; readiness is judged afterwards from green's workloads (Verifying).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::Client;
use rotor_api::{MigrationPolicy, WorkloadSelector};
use rotor_migration::{MemoryCheckpoint, MigrationOptions};

use crate::Error;

/// What one migration run ended with.
pub enum Outcome {
    /// Every selected object is in green.
    Done { total: u32, applied: u32 },
    /// Green refused objects, or the plan itself is refused (stateful workloads): retrying the
    /// same run will not help. The message names the objects.
    Refused(String),
}

/// Checkpoints by swap, so a retried run in this process skips what is already in green.
/// (Server-side apply makes a run after a restart safe too, only slower.)
#[derive(Default)]
pub struct Checkpoints {
    by_swap: Mutex<HashMap<String, Arc<MemoryCheckpoint>>>,
}

impl Checkpoints {
    fn get(&self, swap: &str) -> Arc<MemoryCheckpoint> {
        let mut map = self.by_swap.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.clear();
        }
        map.entry(swap.to_string()).or_default().clone()
    }

    pub fn forget(&self, swap: &str) {
        self.by_swap
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(swap);
    }
}

/// Plans against blue and applies to green.
#[allow(clippy::too_many_arguments)]
pub async fn migrate(
    checkpoints: &Checkpoints,
    swap: &str,
    blue: &Client,
    blue_name: &str,
    green: &Client,
    green_name: &str,
    workloads: &WorkloadSelector,
    policy: &MigrationPolicy,
) -> Result<Outcome, Error> {
    let options = MigrationOptions {
        policy: policy.clone(),
        workloads: workloads.clone(),
        ..MigrationOptions::default()
    };
    let plan = match rotor_migration::plan(blue, &options).await {
        Ok(plan) => plan,
        Err(e @ rotor_migration::Error::Stateful { .. }) => {
            return Ok(Outcome::Refused(e.to_string()));
        }
        Err(e) => {
            return Err(Error::Member {
                instance: blue_name.to_string(),
                message: format!("planning the migration: {e}"),
            });
        }
    };
    let checkpoint = checkpoints.get(swap);
    let report = rotor_migration::apply(green, &plan, &options, checkpoint.as_ref()).await;
    if report.is_complete() {
        return Ok(Outcome::Done {
            total: report.total as u32,
            applied: (report.applied + report.skipped) as u32,
        });
    }
    // A 4xx other than conflict/throttling is green saying no: the same request stays refused.
    let refused: Vec<String> = report
        .errors
        .iter()
        .filter(|e| {
            e.code
                .is_some_and(|c| (400..500).contains(&c) && c != 409 && c != 429)
        })
        .map(|e| e.to_string())
        .collect();
    if !refused.is_empty() {
        return Ok(Outcome::Refused(format!(
            "green {green_name} refused {} objects: {}",
            refused.len(),
            refused
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    Err(Error::Member {
        instance: green_name.to_string(),
        message: format!(
            "applied {}/{} objects; {}",
            report.applied + report.skipped,
            report.total,
            report
                .errors
                .iter()
                .take(3)
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        ),
    })
}
