//! What re-queues a Rollout: its swaps' changes, taken from the very watch that feeds the
//! controller's swap cache, after the cache applied them, so a reconcile a change triggered
//! finds that change in the cache (a second watch for the triggers raced the cache's, and
//! decoded every swap event twice).
//!
//! A swap that ended, or went, frees one of the Rollout's slots: its Rollout is re-queued at
//! once. Every other change is coalesced ([`crate::coalesce`]): with 50 swaps running, changes
//! come every few milliseconds, and a freed slot waited up to the whole window to be seen.

use std::time::Duration;

use futures::Stream;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::Event;
use rotor_api::{ClusterSwap, Rollout};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::owning_rollout;
use crate::coalesce::coalesce;

/// The sending half, fed with the swap watch's events.
///
/// Unbounded, yet bounded in practice: one small message per watch event, and the controller
/// drains them as they come (before it starts, the first list's at most, one per swap).
pub(super) struct Feed {
    changed: UnboundedSender<ObjectRef<Rollout>>,
    freed: UnboundedSender<ObjectRef<Rollout>>,
}

/// The receiving half: the controller's triggers.
pub(super) struct Triggers {
    changed: UnboundedReceiver<ObjectRef<Rollout>>,
    freed: UnboundedReceiver<ObjectRef<Rollout>>,
}

pub(super) fn channel() -> (Feed, Triggers) {
    let (changed_tx, changed) = unbounded_channel();
    let (freed_tx, freed) = unbounded_channel();
    let feed = Feed {
        changed: changed_tx,
        freed: freed_tx,
    };
    (feed, Triggers { changed, freed })
}

impl Feed {
    /// Routes one swap event, already applied to the cache, to its Rollout.
    pub(super) fn send(&self, event: &Event<ClusterSwap>) {
        let (swap, frees) = match event {
            Event::Apply(swap) => (swap, ended(swap)),
            Event::Delete(swap) => (swap, true),
            // The first list: one reconcile, coalesced, sees it all.
            Event::InitApply(swap) => (swap, false),
            Event::Init | Event::InitDone => return,
        };
        let Some(rollout) = owning_rollout(swap) else {
            return;
        };
        let to = if frees { &self.freed } else { &self.changed };
        // An error means the controller stopped: nothing left to trigger.
        let _ = to.send(rollout);
    }
}

impl Triggers {
    /// Freed slots at once, other changes at most once per `window` per Rollout.
    pub(super) fn stream(self, window: Duration) -> impl Stream<Item = ObjectRef<Rollout>> + Send {
        let changed = coalesce(UnboundedReceiverStream::new(self.changed), window);
        futures::stream::select(changed, UnboundedReceiverStream::new(self.freed))
    }
}

fn ended(swap: &ClusterSwap) -> bool {
    swap.status.as_ref().is_some_and(|s| s.phase.is_terminal())
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use kube::Resource;
    use rotor_api::Phase;

    use super::*;
    use crate::rollout::fixtures;

    /// Far longer than the test takes to route a few events, even on a busy machine.
    const WINDOW: Duration = Duration::from_secs(3600);

    /// `rollout`'s swap (owned by it, as the controller creates them) in `phase`.
    fn swap(rollout: &str, phase: Phase) -> ClusterSwap {
        let mut swap = ClusterSwap::clone(&fixtures::swap(rollout, "c", phase));
        swap.metadata.owner_references = Some(vec![OwnerReference {
            api_version: Rollout::api_version(&()).into_owned(),
            kind: "Rollout".into(),
            name: rollout.into(),
            uid: "uid".into(),
            controller: Some(true),
            ..OwnerReference::default()
        }]);
        swap
    }

    #[tokio::test]
    async fn an_ended_swap_triggers_at_once_while_changes_wait_out_the_window() {
        let (feed, triggers) = channel();
        let mut out = Box::pin(triggers.stream(WINDOW));
        feed.send(&Event::Apply(swap("r", Phase::Migrating)));
        assert_eq!(
            out.next().await,
            Some(ObjectRef::new("r")),
            "the first passes"
        );
        // Held for the window: without the freed slot, nothing would pass for an hour.
        feed.send(&Event::Apply(swap("r", Phase::Verifying)));
        feed.send(&Event::Apply(swap("r", Phase::Succeeded)));
        assert_eq!(
            out.next().await,
            Some(ObjectRef::new("r")),
            "the end passes"
        );
        feed.send(&Event::Delete(swap("r", Phase::Succeeded)));
        assert_eq!(
            out.next().await,
            Some(ObjectRef::new("r")),
            "a deletion passes"
        );
        drop(feed);
        assert_eq!(
            out.next().await,
            Some(ObjectRef::new("r")),
            "the held change passes when the watch ends"
        );
        assert_eq!(out.next().await, None);
    }

    #[tokio::test]
    async fn swaps_no_rollout_owns_trigger_nothing() {
        let (feed, triggers) = channel();
        let mut out = Box::pin(triggers.stream(WINDOW));
        let mut orphan = swap("r", Phase::Succeeded);
        orphan.metadata.owner_references = None;
        feed.send(&Event::Apply(orphan));
        feed.send(&Event::Init);
        feed.send(&Event::InitDone);
        feed.send(&Event::InitApply(swap("r", Phase::Succeeded)));
        assert_eq!(
            out.next().await,
            Some(ObjectRef::new("r")),
            "only the owned swap's, and the first list's is a change, not a freed slot"
        );
        drop(feed);
        assert_eq!(out.next().await, None);
    }
}
