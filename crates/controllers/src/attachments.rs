//! Which active instances this process has attached to their Cluster's traffic endpoint, so an
//! idle Cluster's resync attaches again only when something changed: the instance, a swap that
//! owned the endpoint meanwhile, or the traffic layer itself (a restart, seen as a new
//! [`epoch`](rotor_traffic::TrafficShifter::epoch)). Attaching every endpoint on every resync
//! cost one traffic-layer call and one Cluster read per Cluster and resync: 333 a second at
//! 10,000 Clusters, and beyond a DNS API's rate limits, none of it driven by a change.
//!
//! A layer whose epoch cannot be read is not trusted: its attachments are forgotten, and each
//! resync attaches again as before.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use rotor_api::ShifterKind;

use crate::lock;

#[derive(Default)]
pub(crate) struct Attachments {
    /// Endpoint → the layer and the address attached to it.
    attached: Mutex<HashMap<String, (ShifterKind, SocketAddr)>>,
    /// The last reading of each layer's epoch.
    epochs: Mutex<HashMap<ShifterKind, Reading>>,
}

/// One layer's last epoch reading.
enum Reading {
    Read(String),
    /// The layer did not answer; `last_known` is the epoch it had before. A restart takes a
    /// moment in which the old worker is gone and the new one not yet listening: the next
    /// reading is compared with the epoch before that gap, not with the gap.
    Failed {
        last_known: Option<String>,
    },
}

/// What reading a layer's epoch means for its attachments.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EpochChange {
    /// The same layer as at the last reading, or the first reading.
    Same,
    /// The layer restarted (or answers again after an unknown stretch that began before it
    /// was ever read): its attachments were forgotten; every Cluster must attach again.
    Restarted,
}

impl Attachments {
    /// Whether `addr` is known to be attached to `endpoint` on `kind`'s layer.
    pub(crate) fn holds(&self, kind: ShifterKind, endpoint: &str, addr: SocketAddr) -> bool {
        lock(&self.attached).get(endpoint) == Some(&(kind, addr))
    }

    /// Remembers an attachment, unless `kind`'s layer cannot tell a restart now (its epoch was
    /// not read, or its last reading failed).
    pub(crate) fn remember(&self, kind: ShifterKind, endpoint: &str, addr: SocketAddr) {
        if matches!(lock(&self.epochs).get(&kind), Some(Reading::Read(_))) {
            lock(&self.attached).insert(endpoint.to_string(), (kind, addr));
        }
    }

    /// Forgets `endpoint`'s attachment: a swap owns it, and attaches its own backends.
    pub(crate) fn forget(&self, endpoint: &str) {
        lock(&self.attached).remove(endpoint);
    }

    /// Records `kind`'s epoch as just read (None: it could not be read; a layer without
    /// epochs, which keeps what it is told, reads as an empty one).
    pub(crate) fn epoch_read(&self, kind: ShifterKind, epoch: Option<String>) -> EpochChange {
        let mut epochs = lock(&self.epochs);
        let previous = epochs.remove(&kind);
        let (reading, change) = match (epoch, previous) {
            (Some(now), None) => (Reading::Read(now), EpochChange::Same),
            (
                Some(now),
                Some(
                    Reading::Read(before)
                    | Reading::Failed {
                        last_known: Some(before),
                    },
                ),
            ) if before == now => (Reading::Read(now), EpochChange::Same),
            (Some(now), Some(_)) => (Reading::Read(now), EpochChange::Restarted),
            (None, previous) => {
                let last_known = match previous {
                    Some(Reading::Read(before)) => Some(before),
                    Some(Reading::Failed { last_known }) => last_known,
                    None => None,
                };
                (Reading::Failed { last_known }, EpochChange::Same)
            }
        };
        let trusted = change == EpochChange::Same && matches!(reading, Reading::Read(_));
        epochs.insert(kind, reading);
        drop(epochs);
        if !trusted {
            lock(&self.attached).retain(|_, (k, _)| *k != kind);
        }
        change
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn attachments_hold_until_the_layer_restarts() {
        let a = Attachments::default();
        assert_eq!(
            a.epoch_read(ShifterKind::Haproxy, Some("7@100".into())),
            EpochChange::Same
        );
        a.remember(ShifterKind::Haproxy, "ep", addr(1));
        assert!(a.holds(ShifterKind::Haproxy, "ep", addr(1)));
        assert!(
            !a.holds(ShifterKind::Haproxy, "ep", addr(2)),
            "another instance"
        );
        assert_eq!(
            a.epoch_read(ShifterKind::Haproxy, Some("7@100".into())),
            EpochChange::Same
        );
        assert!(a.holds(ShifterKind::Haproxy, "ep", addr(1)));
        assert_eq!(
            a.epoch_read(ShifterKind::Haproxy, Some("8@160".into())),
            EpochChange::Restarted
        );
        assert!(
            !a.holds(ShifterKind::Haproxy, "ep", addr(1)),
            "forgotten at restart"
        );
    }

    #[test]
    fn a_layer_that_cannot_tell_a_restart_is_never_trusted() {
        let a = Attachments::default();
        a.remember(ShifterKind::Haproxy, "ep", addr(1));
        assert!(
            !a.holds(ShifterKind::Haproxy, "ep", addr(1)),
            "no epoch read yet"
        );
        a.epoch_read(ShifterKind::Haproxy, Some("7@100".into()));
        a.remember(ShifterKind::Haproxy, "ep", addr(1));
        a.epoch_read(ShifterKind::Haproxy, None);
        assert!(!a.holds(ShifterKind::Haproxy, "ep", addr(1)), "epoch lost");
    }

    #[test]
    fn a_restart_seen_across_a_failed_reading_is_a_restart() {
        let a = Attachments::default();
        let read = |epoch: Option<&str>| a.epoch_read(ShifterKind::Haproxy, epoch.map(Into::into));
        assert_eq!(read(Some("7@100")), EpochChange::Same);
        // The old worker gone, the new one not listening yet.
        assert_eq!(read(None), EpochChange::Same);
        assert_eq!(read(None), EpochChange::Same);
        assert_eq!(read(Some("9@130")), EpochChange::Restarted);
        // A layer that merely did not answer for a while is the same layer.
        assert_eq!(read(None), EpochChange::Same);
        assert_eq!(read(Some("9@130")), EpochChange::Same);
    }

    #[test]
    fn a_layer_unknown_from_the_start_is_attached_again_once_it_answers() {
        let a = Attachments::default();
        assert_eq!(a.epoch_read(ShifterKind::Haproxy, None), EpochChange::Same);
        assert_eq!(
            a.epoch_read(ShifterKind::Haproxy, Some("7@100".into())),
            EpochChange::Restarted
        );
    }

    #[test]
    fn a_swap_takes_the_endpoint_over() {
        let a = Attachments::default();
        a.epoch_read(ShifterKind::Sim, Some("x".into()));
        a.remember(ShifterKind::Sim, "ep", addr(1));
        a.forget("ep");
        assert!(!a.holds(ShifterKind::Sim, "ep", addr(1)));
    }
}
