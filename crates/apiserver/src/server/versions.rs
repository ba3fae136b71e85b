//! The resourceVersion of reads, as kube-apiserver treats it: a list or watch from a revision
//! the store has not reached waits for it (as the watch cache does, bounded) and then fails with
//! "Too large resource version"; `resourceVersionMatch=Exact` lists the objects as they were at
//! that revision, and is 410 Gone below the store's history.

use std::time::Duration;

use super::*;
use crate::error::Cause;
use crate::request::Query;

/// How long upstream's watch cache waits for a resourceVersion it has not reached.
pub(crate) const FRESHNESS_WAIT: Duration = Duration::from_secs(3);

impl ApiServer {
    /// Returns once the store has reached `rev`, or `Too large resource version` when it has
    /// not within [`FRESHNESS_WAIT`]. Woken by the store's own events, never by polling.
    pub(crate) async fn wait_for_revision(&self, rev: u64) -> ApiResult<()> {
        let current = self.store.current_revision().await?;
        if rev <= current {
            return Ok(());
        }
        let mut events = self.store.watch("", current).await?;
        let reached = tokio::time::timeout(FRESHNESS_WAIT, async {
            while let Some(event) = events.recv().await {
                if event.revision() >= rev {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        let current = self.store.current_revision().await?;
        if reached || current >= rev {
            return Ok(());
        }
        Err(ApiError::resource_version_too_large(rev, current))
    }

    /// Checks a list's `resourceVersion`/`resourceVersionMatch` (upstream's ListOptions
    /// validation) and waits for a revision not reached yet; the revision to list at when the
    /// match is `Exact` (a list otherwise answers from the current state).
    pub(crate) async fn check_list_version(&self, query: &Query) -> ApiResult<Option<u64>> {
        let rv = query.get("resourceVersion").filter(|r| !r.is_empty());
        let matching = query.get("resourceVersionMatch").filter(|m| !m.is_empty());
        let forbidden = |message: String, reason: &'static str| {
            ApiError::invalid(
                "ListOptions",
                "meta.k8s.io",
                "",
                vec![Cause {
                    field: "resourceVersionMatch".into(),
                    message,
                    reason,
                }],
            )
        };
        match (rv, matching) {
            (None, Some(_)) => {
                return Err(forbidden(
                    "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided".into(),
                    "FieldValueForbidden",
                ));
            }
            (_, Some(m)) if !matches!(m, "Exact" | "NotOlderThan") => {
                return Err(forbidden(
                    format!(
                        "Unsupported value: \"{m}\": supported values: \"Exact\", \"NotOlderThan\""
                    ),
                    "FieldValueNotSupported",
                ));
            }
            (Some("0"), Some("Exact")) => {
                return Err(forbidden(
                    "Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"".into(),
                    "FieldValueForbidden",
                ));
            }
            _ => {}
        }
        let Some(rv) = rv.filter(|r| *r != "0") else {
            return Ok(None);
        };
        let rev: u64 = rv
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion \"{rv}\"")))?;
        self.wait_for_revision(rev).await?;
        Ok((matching == Some("Exact")).then_some(rev))
    }
}
