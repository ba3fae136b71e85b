//! The controllers' one error policy: a stale view (409) is retried at once, since the fresh
//! object is on its way; anything else backs off exponentially per object, and the backoff
//! resets when a reconcile of the object gets through.

use std::time::Duration;

use kube::runtime::controller::Action;

use crate::{Context, Error};

/// How soon a reconcile that conflicted with a newer write runs again.
const AFTER_CONFLICT: Duration = Duration::from_millis(50);

/// The write was refused because our view was stale.
pub(crate) fn is_conflict(e: &Error) -> bool {
    matches!(e, Error::Kube(kube::Error::Api(s)) if s.code == 409)
}

/// When to reconcile `key` again after `error`.
pub(crate) fn requeue(ctx: &Context, key: &str, error: &Error) -> Action {
    if is_conflict(error) {
        return Action::requeue(AFTER_CONFLICT);
    }
    Action::requeue(ctx.backoff(key))
}
