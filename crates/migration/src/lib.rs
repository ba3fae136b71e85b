//! The migration engine: moves an application's objects from blue to green.
//!
//! Three steps, each usable on its own so the swap controller can run one per reconcile:
//! [`plan`] (discover blue's resources, select by policy, sanitize, order into [`Stage`]s),
//! [`apply`] (server-side apply to green, stage by stage, resumable through a [`Checkpoint`]) and
//! [`readiness`]/[`wait_ready`] (are green's copies of the workloads available).
//!
//! API versions ([`versions`]): each kind is read from blue and written to green at a version
//! both serve; when green serves none of blue's, the objects are converted if the two releases'
//! OpenAPI definitions say the conversion is lossless (same fields), and otherwise blocked —
//! [`apply`] then refuses the plan before writing anything, naming every blocked object.
//! [`plan_for`] is the pre-flight: against green's discovery, or before green exists against
//! the OpenAPI data of the release it will run ([`ServedVersions::of_release`]).
//!
//! [`diff`] compares blue's selected objects with their copies in green, sanitized alike.
//!
//! Not in this crate: field-level conversions (a renamed field blocks the kind rather than being
//! renamed), schema checks of objects green serves at the same version (a field green does not
//! know fails the object, by strict field validation, rather than being dropped); the durable
//! checkpoint is the caller's (`Checkpoint`; the swap keeps one in the control plane).

mod apply;
mod diff;
mod options;
pub mod ownership;
mod plan;
mod ready;
pub mod rehearse;
mod sanitize;
mod select;
pub mod versions;
mod write;

pub use apply::{
    ApplyReport, Checkpoint, MemoryCheckpoint, ObjectError, RateLimiter, apply, dry_run_on_green,
};
pub use diff::{DiffReport, DiffState, ObjectDiff, diff, differences};
pub use options::MigrationOptions;
pub use plan::{
    KindVersions, Plan, PlannedObject, ResourcePlan, ResourceRef, StagePlan, plan, plan_for,
};
pub use ready::{Readiness, readiness, wait_ready};
pub use sanitize::sanitize;
pub use select::{SYSTEM_NAMESPACES, Stage};
pub use versions::{BlockedObject, ServedVersions, VersionChoice};

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
    /// Objects green cannot take at any version rotor can convert them to; nothing was applied.
    #[error(
        "refusing to migrate: {} object(s) have an API version green cannot take, and nothing \
         was applied: {}",
        .objects.len(),
        .objects.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    Blocked { objects: Vec<BlockedObject> },
    /// Green's workloads did not all become available in time.
    #[error("{ready}/{total} workloads available in green after {waited_s:.0}s; waiting for: {}", .holding_up.join("; "))]
    NotReady {
        ready: usize,
        total: usize,
        waited_s: f64,
        holding_up: Vec<String>,
    },
}

/// An error and its sources on one line: kube's top-level messages alone rarely say why. (The
/// controllers use it too.)
pub fn chain(e: &dyn std::error::Error) -> String {
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
