//! The migration engine: moves an application's objects from blue to green.
//!
//! Three steps, each usable on its own so the swap controller can run one per reconcile:
//! [`plan`] (discover blue's resources, select by policy, sanitize, order into [`Stage`]s),
//! [`apply`] (server-side apply to green, stage by stage, resumable through a [`Checkpoint`]) and
//! [`readiness`]/[`wait_ready`] (are green's copies of the workloads available).
//!
//! Not in this slice: API-version conversion and preflight against green's schema (today a field
//! green does not know fails the object, by strict field validation, rather than being dropped),
//! a durable checkpoint, the `rotor migrate` command and a blue/green diff.

mod apply;
mod options;
mod plan;
mod ready;
mod sanitize;
mod select;

pub use apply::{ApplyReport, Checkpoint, MemoryCheckpoint, ObjectError, RateLimiter, apply};
pub use options::MigrationOptions;
pub use plan::{Plan, PlannedObject, ResourcePlan, ResourceRef, StagePlan, plan};
pub use ready::{Readiness, readiness, wait_ready};
pub use sanitize::sanitize;
pub use select::{SYSTEM_NAMESPACES, Stage};

/// Field manager of everything rotor writes into member clusters (the controller's too, so a
/// later engine run and the old copy step own the same fields).
pub const FIELD_MANAGER: &str = "rotor";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Blue's API could not be read; nothing was planned.
    #[error("{what}: {message}")]
    Blue { what: String, message: String },
    /// Green's API could not be read (readiness).
    #[error("{what}: {message}")]
    Green { what: String, message: String },
    /// The plan would move workloads whose data lives in persistent volumes.
    #[error(
        "refusing to migrate {} workload(s) that keep data in persistent volumes, which migration \
         does not copy (green would start with empty volumes): {}; allow stateful workloads only \
         when that data is disposable",
        .workloads.len(),
        .workloads.join("; ")
    )]
    Stateful { workloads: Vec<String> },
    /// Green's workloads did not all become available in time.
    #[error("{ready}/{total} workloads available in green after {waited_s:.0}s; waiting for: {}", .holding_up.join("; "))]
    NotReady {
        ready: usize,
        total: usize,
        waited_s: f64,
        holding_up: Vec<String>,
    },
}

/// An error and its sources on one line: kube's top-level messages alone rarely say why.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let msg = s.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        source = s.source();
    }
    out
}

/// The message a kube error should show a person: the API's own message when it answered.
pub(crate) fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => chain(other),
    }
}
