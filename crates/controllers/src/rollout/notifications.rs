//! A rollout's milestones told to its notification sinks (`spec.notifications`), in the
//! background: a reconcile never waits on a sink, and a sink that does not take a milestone is
//! an Event on the Rollout (`NotificationFailed`, naming the sink, never its URL).

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use rotor_api::{Milestone, NotificationSink, Reason};

use super::Reconcile;
use super::budget::Pause;
use super::status::Note;
use super::waves::WaveEvent;
use crate::events::Recorder;
use crate::notify::{Notification, Notifier};

impl Note {
    /// The milestone this Event is, with its wave; None for what sinks are not told.
    fn milestone(&self) -> Option<(Milestone, Option<&str>)> {
        Some(match self {
            Note::Wave(WaveEvent::Started { wave, .. }) => (Milestone::WaveStarted, Some(wave)),
            Note::Wave(WaveEvent::Finished { wave, .. }) => (Milestone::WaveFinished, Some(wave)),
            Note::Wave(WaveEvent::AwaitsApproval { wave, .. }) => {
                (Milestone::ApprovalNeeded, Some(wave))
            }
            Note::Pause(Pause::WaveOverBudget { wave, .. }) => {
                (Milestone::BudgetExceeded, Some(wave))
            }
            Note::Pause(p) if p.over_budget().is_some() => (Milestone::BudgetExceeded, None),
            Note::Pause(_) => (Milestone::Paused, None),
            Note::FleetRollback { .. } => (Milestone::BudgetExceeded, None),
            Note::Complete { .. } | Note::FleetRolledBack { .. } => (Milestone::Finished, None),
            _ => return None,
        })
    }
}

impl Reconcile<'_> {
    /// Sends each milestone among `notes` to the sinks that want it, each delivery a task of
    /// its own.
    pub(super) fn notify(&self, notes: &[Note]) {
        let sinks = &self.spec.notifications;
        if sinks.is_empty() {
            return;
        }
        let time = self.t.0.to_string();
        for note in notes {
            let Some((milestone, wave)) = note.milestone() else {
                continue;
            };
            let notification = Notification {
                rollout: self.name.clone(),
                milestone,
                wave: wave.map(str::to_string),
                message: note.message(&self.name),
                time: time.clone(),
            };
            for sink in sinks.iter().filter(|s| s.wants(milestone)) {
                tokio::spawn(deliver(
                    self.ctx.client.clone(),
                    self.ctx.notifier.clone(),
                    self.ctx.recorder.clone(),
                    self.rollout.object_ref(&()),
                    sink.clone(),
                    notification.clone(),
                ));
            }
        }
    }
}

/// One milestone to one sink; a failure recorded as a Warning Event on the Rollout.
async fn deliver(
    client: kube::Client,
    notifier: Arc<Notifier>,
    recorder: Arc<Recorder>,
    rollout: ObjectReference,
    sink: NotificationSink,
    notification: Notification,
) {
    let sent = match Notifier::url(&client, &sink.name, &sink.url_from).await {
        Ok(url) => {
            notifier
                .send(&sink.name, &url, sink.format, &notification)
                .await
        }
        Err(e) => Err(e),
    };
    if let Err(e) = sent {
        let reason = Reason::NotificationFailed.as_str();
        let note = format!("{} not told: {e}", notification.milestone);
        recorder
            .publish(&rollout, true, reason, "Notify", note)
            .await;
    }
}
