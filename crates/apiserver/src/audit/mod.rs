//! The audit log, as kube-apiserver writes it: one `audit.k8s.io/v1` `Event` per request, at
//! the level a policy gives it, appended to a file that rotates by size.
//!
//! The request path only fills in a record and offers it to a bounded queue; a writer thread
//! encodes and writes. When the queue is full the event is dropped and counted
//! (`rotor_audit_events_dropped_total`), never waited for: the API that drives the fleet's
//! swaps must not stall on a slow disk. Secrets and other credential-bearing resources are
//! recorded at Metadata at most, whatever the policy says ([`policy::is_sensitive`]).

pub mod event;
pub mod policy;
mod record;
pub mod writer;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

pub use policy::{Level, Policy, PolicyError, Stage};
pub(crate) use record::Record;
pub use writer::FileConfig;

use event::Event;
use writer::{Counters, LogFile, Message};

/// Events waiting for the writer at most (upstream's buffered backend holds as many).
const QUEUE_EVENTS: usize = 10_000;
/// Body bytes waiting at most, so that large RequestResponse records cannot exhaust memory.
const QUEUE_BODY_BYTES: usize = 64 << 20;

/// Why the audit log could not start or close cleanly.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {}: {source}", path.display())]
    Open {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("audit log: the writer did not finish within {0:?}")]
    CloseTimedOut(Duration),
    #[error("audit log: the last events could not be written: {0}")]
    Sync(std::io::Error),
}

/// The policy and the queue to the writer thread, shared by every request of a server.
pub struct Auditor {
    policy: Policy,
    queue: mpsc::Sender<Message>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor")
            .field("rules", &self.policy.rules.len())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl Auditor {
    /// Opens the file (0600) and starts the writer thread.
    pub fn start(policy: Policy, file: FileConfig) -> Result<Arc<Auditor>, AuditError> {
        let path = file.path.clone();
        let open_error = |source| AuditError::Open {
            path: path.clone(),
            source,
        };
        let log = LogFile::open(file).map_err(open_error)?;
        let (queue, received) = mpsc::channel(QUEUE_EVENTS);
        let counters = Arc::new(Counters::default());
        let shared = counters.clone();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer::run(log, received, shared))
            .map_err(open_error)?;
        Ok(Arc::new(Auditor {
            policy,
            queue,
            counters,
        }))
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Events lost so far (queue full, or the file not writable).
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// The drop counter in the Prometheus text format, for a `/metrics` endpoint.
    pub fn metrics_text(&self) -> String {
        format!(
            "# HELP rotor_audit_events_dropped Audit events not written: the writer's queue was \
             full or the file could not be written.\n\
             # TYPE rotor_audit_events_dropped counter\n\
             rotor_audit_events_dropped_total {}\n",
            self.dropped()
        )
    }

    /// Offers an event to the writer without waiting; a full queue drops and counts it.
    fn submit(&self, event: Event) {
        let cost = event.body_bytes();
        let queued = self
            .counters
            .queued_bytes
            .fetch_add(cost, Ordering::Relaxed);
        let over = cost > 0 && queued + cost > QUEUE_BODY_BYTES;
        if over
            || self
                .queue
                .try_send(Message::Event(Box::new(event)))
                .is_err()
        {
            self.counters
                .queued_bytes
                .fetch_sub(cost, Ordering::Relaxed);
            self.lost();
        }
    }

    fn lost(&self) {
        let dropped = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if dropped == 1 || dropped.is_multiple_of(1000) {
            tracing::warn!(
                dropped,
                "audit log: events dropped, the writer cannot keep up \
                 (rotor_audit_events_dropped_total)"
            );
        }
    }

    /// Writes every event queued so far, syncs the file and stops the writer, within `bound`.
    /// Events offered afterwards are dropped and counted.
    pub async fn close(&self, bound: Duration) -> Result<(), AuditError> {
        let (done, synced) = oneshot::channel();
        let closing = async {
            self.queue
                .send(Message::Close(done))
                .await
                .map_err(|_| AuditError::Sync(std::io::Error::other("the writer has stopped")))?;
            match synced.await {
                Ok(result) => result.map_err(AuditError::Sync),
                Err(_) => Err(AuditError::Sync(std::io::Error::other(
                    "the writer has stopped",
                ))),
            }
        };
        tokio::time::timeout(bound, closing)
            .await
            .map_err(|_| AuditError::CloseTimedOut(bound))?
    }
}

#[cfg(test)]
mod tests;
