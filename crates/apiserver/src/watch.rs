//! Watch: a chunked stream of `{"type": ..., "object": ...}` lines, as kube-apiserver sends them.
//! Starts from a `resourceVersion` (410 as an ERROR event when it is older than the retained
//! history), or from the current state sent as ADDED events; bookmarks; `timeoutSeconds`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use rotor_store::{KeyValue, StoreError, WatchEvent};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::error::{ApiError, ApiResult};
use crate::registry::Resource;
use crate::request::Query;
use crate::server::{ApiServer, ListOptions, decode_as, served_json_at};
use crate::table;

/// Default and largest watch duration when the client gives no `timeoutSeconds`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How often a watch gets a BOOKMARK (when the client allows them): once a minute, as
/// kube-apiserver's watch cache (`defaultBookmarkFrequency`). Every 5 s, as before, a
/// simulated fleet of 1,000 members sent its watchers about 1,000 bookmarks a second.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(60);
/// Buffered events between the store and a slow HTTP client.
const OUT_BUFFER: usize = 256;

fn line(kind: &str, object: &Value) -> Bytes {
    let mut bytes =
        serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// [`line`] around an object already encoded as JSON (the same bytes).
fn line_of_json(kind: &str, object: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(object.len() + kind.len() + 24);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    out.extend_from_slice(object);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

/// How a watch renders objects. `Plain` (no selector, no table) never needs an object decoded:
/// lines are built from the store's bytes ([`served_json`]) where they can be.
enum Render<F> {
    Plain,
    Decoded(F),
}

impl<F: Fn(&Value) -> Value> Render<F> {
    /// The line for a stored object at `rev`.
    fn line(&self, kind: &str, kv: &KeyValue, res: &Resource, rev: u64) -> Option<Bytes> {
        if let Render::Plain = self
            && let Some(json) = served_json_at(kv, res, rev)
        {
            return Some(line_of_json(kind, &json));
        }
        let mut obj = decode_as(kv, res).ok()?;
        if rev != kv.mod_revision {
            obj["metadata"]["resourceVersion"] = json!(rev.to_string());
        }
        Some(line(kind, &self.value(obj)))
    }

    fn value(&self, obj: Value) -> Value {
        match self {
            Render::Plain => obj,
            Render::Decoded(f) => f(&obj),
        }
    }
}

/// The event `type` for a change, given whether the object matched the selectors before and after.
fn event_type(before: bool, after: bool) -> Option<&'static str> {
    match (before, after) {
        (false, true) => Some("ADDED"),
        (true, true) => Some("MODIFIED"),
        (true, false) => Some("DELETED"),
        (false, false) => None,
    }
}

/// Starts a watch and returns its body stream.
pub async fn start(
    server: Arc<ApiServer>,
    res: Arc<Resource>,
    namespace: Option<String>,
    opts: ListOptions,
    query: &Query,
    as_table: bool,
) -> ApiResult<impl Stream<Item = Result<Bytes, Infallible>> + use<>> {
    let requested_rv = query.get("resourceVersion").map(String::from);
    let send_initial = query.flag("sendInitialEvents");
    let bookmarks = query.flag("allowWatchBookmarks");
    let timeout = query
        .u64("timeoutSeconds")?
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT)
        .min(DEFAULT_TIMEOUT);
    let prefix = res.namespace_prefix(namespace.as_deref());
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(OUT_BUFFER);
    let render = {
        let res = res.clone();
        let query = query.clone();
        let selects = !opts.labels.is_empty() || !opts.fields.is_empty();
        let minor = server.config().kubernetes_minor;
        let table = move |obj: &Value| {
            if as_table {
                table::from_object(&res, minor, obj, &query)
            } else {
                obj.clone()
            }
        };
        if selects || as_table {
            Render::Decoded(table)
        } else {
            Render::Plain
        }
    };

    // Initial state: with no resourceVersion ("get state and start at most recent"), with "0",
    // or when the client asks for initial events.
    let list_opts = ListOptions {
        limit: 0,
        continue_token: None,
        ..opts.clone()
    };
    let initial_state = async || -> ApiResult<(Vec<Bytes>, Option<u64>)> {
        let page = server
            .list_page(&res, namespace.as_deref(), &list_opts)
            .await?;
        let lines = page
            .items
            .iter()
            .filter_map(|(kv, decoded)| match decoded {
                // Decoded for a selector already: render that.
                Some(obj) => Some(line("ADDED", &render.value(obj.clone()))),
                None => render.line("ADDED", kv, &res, kv.mod_revision),
            })
            .collect();
        let rev = page.metadata["resourceVersion"]
            .as_str()
            .and_then(|s| s.parse().ok());
        Ok((lines, rev))
    };
    let mut initial = Vec::new();
    let start_rev = match requested_rv.as_deref() {
        None | Some("0") => {
            let (lines, rev) = initial_state().await?;
            initial = lines;
            rev.unwrap_or(0)
        }
        Some(rv) => {
            let rev: u64 = rv
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion \"{rv}\"")))?;
            // A revision not reached yet: wait for it (bounded), as the watch cache does.
            server.wait_for_revision(rev).await?;
            if send_initial {
                let (lines, listed) = initial_state().await?;
                initial = lines;
                listed.unwrap_or(rev)
            } else {
                rev
            }
        }
    };

    let events = match server.store().watch(&prefix, start_rev).await {
        Ok(events) => events,
        Err(StoreError::Compacted { requested, oldest }) => {
            let status =
                ApiError::gone(format!("too old resource version: {requested} ({oldest})"))
                    .status_body();
            let _ = tx.try_send(Ok(line("ERROR", &status)));
            return Ok(ReceiverStream::new(rx));
        }
        Err(e) => return Err(e.into()),
    };

    for l in initial {
        if tx.send(Ok(l)).await.is_err() {
            return Ok(ReceiverStream::new(rx));
        }
    }
    let bookmark = {
        let res = res.clone();
        move |rev: u64, initial_end: bool| {
            let mut meta = json!({"resourceVersion": rev.to_string()});
            if initial_end {
                meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            line(
                "BOOKMARK",
                &json!({"apiVersion": res.api_version(), "kind": res.kind, "metadata": meta}),
            )
        }
    };
    if send_initial && bookmarks && tx.send(Ok(bookmark(start_rev, true))).await.is_err() {
        return Ok(ReceiverStream::new(rx));
    }

    tokio::spawn(pump(
        events, tx, res, opts, render, bookmark, bookmarks, timeout, start_rev,
    ));
    Ok(ReceiverStream::new(rx))
}

/// Moves store events to the client until the timeout, the client leaving, or the store ending
/// the watch (a lagging watcher); the client then resumes from its last resourceVersion.
#[allow(clippy::too_many_arguments)]
async fn pump(
    mut events: rotor_store::WatchReceiver,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
    res: Arc<Resource>,
    opts: ListOptions,
    render: Render<impl Fn(&Value) -> Value>,
    bookmark: impl Fn(u64, bool) -> Bytes,
    bookmarks: bool,
    timeout: Duration,
    mut last_rev: u64,
) {
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(BOOKMARK_INTERVAL);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = &mut deadline => return,
            _ = tx.closed() => return,
            _ = ticker.tick(), if bookmarks => {
                if tx.send(Ok(bookmark(last_rev, false))).await.is_err() {
                    return;
                }
            }
            event = events.recv() => {
                let Some(event) = event else { return };
                last_rev = event.revision();
                let Some(out) = to_line(&event, &res, &opts, &render) else { continue };
                if tx.send(Ok(out)).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn to_line(
    event: &WatchEvent,
    res: &Resource,
    opts: &ListOptions,
    render: &Render<impl Fn(&Value) -> Value>,
) -> Option<Bytes> {
    match (event, render) {
        // Every object matches: the event type is whether it existed before.
        (WatchEvent::Put { kv, prev }, Render::Plain) => {
            let kind = if prev.is_some() { "MODIFIED" } else { "ADDED" };
            render.line(kind, kv, res, kv.mod_revision)
        }
        (WatchEvent::Delete { prev, revision }, Render::Plain) => {
            render.line("DELETED", prev, res, *revision)
        }
        (WatchEvent::Put { kv, prev }, Render::Decoded(_)) => {
            let obj = decode_as(kv, res).ok()?;
            let before = prev
                .as_ref()
                .and_then(|p| decode_as(p, res).ok())
                .is_some_and(|p| opts.matches(&p));
            let kind = event_type(before, opts.matches(&obj))?;
            Some(line(kind, &render.value(obj)))
        }
        (WatchEvent::Delete { prev, revision }, Render::Decoded(_)) => {
            let mut obj = decode_as(prev, res).ok()?;
            if !opts.matches(&obj) {
                return None;
            }
            obj["metadata"]["resourceVersion"] = json!(revision.to_string());
            Some(line("DELETED", &render.value(obj)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::event_type;

    #[test]
    fn selector_transitions() {
        assert_eq!(event_type(false, true), Some("ADDED"));
        assert_eq!(event_type(true, true), Some("MODIFIED"));
        assert_eq!(event_type(true, false), Some("DELETED"));
        assert_eq!(event_type(false, false), None);
    }
}
