//! One instance's watcher set: a single task owns the instance's state, so events need no
//! locks; it merges the five watch streams, runs the `/version` probes and the watchdog, and
//! publishes the summary whenever it changes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use futures::future::BoxFuture;
use futures::stream::{BoxStream, SelectAll};
use futures::{FutureExt, StreamExt};
use k8s_openapi::apimachinery::pkg::version::Info;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};

use crate::objects::{
    DaemonSetLite, DeploymentLite, Kind, NodeLite, PdbLite, Rec, StatefulSetLite, Trimmed, keep,
    key_of,
};
use crate::state::InstanceState;
use crate::tap::{self, Activity, ms_between, now_ms};
use crate::{Selection, Settings, Summary};

/// Events handled before the summary is published again: a burst becomes one change.
const BATCH: usize = 256;
/// A list slot is given back after this long even if listing has not finished, so one slow
/// instance cannot hold a slot forever.
const LIST_SLOT_MAX: Duration = Duration::from_secs(30);
/// Error texts are cut here: a reason is for people, not a log.
const ERROR_CHARS: usize = 200;

pub(crate) struct Shared {
    pub(crate) settings: Settings,
    pub(crate) entries: Mutex<HashMap<String, Entry>>,
    pub(crate) changes: broadcast::Sender<String>,
    pub(crate) lists: Arc<Semaphore>,
}

pub(crate) struct Entry {
    /// Tells this watcher set from an earlier one under the same name, whose late publish must
    /// not land.
    pub(crate) id: u64,
    pub(crate) selection: Selection,
    pub(crate) task: tokio::task::JoinHandle<()>,
    pub(crate) summary: Arc<Summary>,
    pub(crate) live: Arc<Live>,
}

/// What the instance's task shares with readers besides the summary, for
/// [`crate::Discovery::current_summary`]: when the instance was last heard from, and how many
/// of its watches are failing now. Neither is part of the summary: they change on every
/// bookmark, and a summary change is announced.
#[derive(Debug, Default)]
pub(crate) struct Live {
    pub(crate) activity: Arc<Activity>,
    pub(crate) failing_watches: AtomicU32,
}

impl Shared {
    pub(crate) fn entries(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, name: &str, id: u64, summary: Summary) {
        {
            let mut entries = self.entries();
            match entries.get_mut(name) {
                Some(e) if e.id == id => e.summary = Arc::new(summary),
                _ => return,
            }
        }
        // No receiver is not an error: nobody is listening yet.
        let _ = self.changes.send(name.to_string());
    }
}

pub(crate) fn initial_summary(settings: &Settings) -> Summary {
    InstanceState::default().summary(
        now_ms(),
        settings.silence,
        settings.named_objects,
        SystemTime::now(),
    )
}

/// One event of one watch, reduced to what the state needs.
struct Tagged {
    kind: Kind,
    change: Change,
}

enum Change {
    Init,
    InitApply(Box<str>, Option<Rec>),
    InitDone,
    Apply(Box<str>, Option<Rec>),
    Delete(Box<str>),
    Error(String),
}

fn short(e: impl std::fmt::Display) -> String {
    let mut s = e.to_string();
    if s.len() > ERROR_CHARS {
        let mut cut = ERROR_CHARS;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

fn watch<K: Trimmed>(
    client: &Client,
    config: watcher::Config,
    selection: Arc<Selection>,
) -> BoxStream<'static, Tagged> {
    let api: Api<K> = Api::all(client.clone());
    watcher::watcher(api, config)
        .default_backoff()
        .map(move |r| {
            let change = match r {
                Ok(Event::Init) => Change::Init,
                Ok(Event::InitApply(o)) => {
                    Change::InitApply(key_of(o.meta()), keep(&o, &selection))
                }
                Ok(Event::InitDone) => Change::InitDone,
                Ok(Event::Apply(o)) => Change::Apply(key_of(o.meta()), keep(&o, &selection)),
                Ok(Event::Delete(o)) => Change::Delete(key_of(o.meta())),
                Err(e) => Change::Error(short(e)),
            };
            Tagged {
                kind: K::KIND,
                change,
            }
        })
        .boxed()
}

fn watch_all(client: &Client, selection: &Arc<Selection>) -> SelectAll<BoxStream<'static, Tagged>> {
    // Lists at resourceVersion 0: served from the API server's cache, which is what a fleet of
    // relisting watchers should cost it; the watch then carries on from there.
    let base = watcher::Config::default().any_semantic();
    let mut apps = base.clone().fields(&selection.field_selector());
    if let Some(labels) = selection.label_selector() {
        apps = apps.labels(&labels);
    }
    let mut all = SelectAll::new();
    all.push(watch::<NodeLite>(client, base, selection.clone()));
    all.push(watch::<DeploymentLite>(
        client,
        apps.clone(),
        selection.clone(),
    ));
    all.push(watch::<StatefulSetLite>(
        client,
        apps.clone(),
        selection.clone(),
    ));
    all.push(watch::<DaemonSetLite>(
        client,
        apps.clone(),
        selection.clone(),
    ));
    all.push(watch::<PdbLite>(client, apps, selection.clone()));
    all
}

fn acquire(lists: Arc<Semaphore>) -> BoxFuture<'static, Option<OwnedSemaphorePermit>> {
    Box::pin(async move { lists.acquire_owned().await.ok() })
}

fn jittered(d: Duration) -> Duration {
    d.mul_f64(rand::random_range(0.75..1.25))
}

fn parse_minor(minor: &str) -> Option<u32> {
    let digits: String = minor.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

type Probe = BoxFuture<'static, (u64, Result<Info, String>)>;

struct Instance {
    shared: Arc<Shared>,
    name: String,
    id: u64,
    client: Client,
    selection: Arc<Selection>,
    activity: Arc<Activity>,
    live: Arc<Live>,
    state: InstanceState,
    published: Summary,
    /// When a watch last delivered an event (`now_ms`).
    last_event: u64,
    /// When the last probe started, and when one last succeeded.
    probe_started: u64,
    probe_ok: u64,
    /// A watch failed: probe now rather than at the next silence.
    probe_requested: bool,
    /// Kinds listed completely since the watches were last (re)built.
    listed: [bool; 5],
    errored_since_build: bool,
}

impl Instance {
    fn settings(&self) -> &Settings {
        &self.shared.settings
    }

    fn handle(&mut self, t: Tagged) {
        let now = now_ms();
        let kind = t.kind;
        let ks = self.state.kind(kind);
        let heard = match t.change {
            // Init comes before the list request: it proves nothing about the API.
            Change::Init => {
                ks.init();
                false
            }
            Change::InitApply(key, rec) => {
                ks.init_apply(key, rec);
                true
            }
            Change::InitDone => {
                ks.init_done();
                self.listed[kind as usize] = true;
                true
            }
            Change::Apply(key, rec) => {
                ks.apply(key, rec);
                true
            }
            Change::Delete(key) => {
                ks.apply(key, None);
                true
            }
            Change::Error(e) => {
                tracing::debug!(instance = %self.name, kind = kind.plural(), error = %e, "watch error");
                ks.error = Some((e, now));
                self.probe_requested = true;
                self.errored_since_build = true;
                false
            }
        };
        if heard {
            ks.error = None;
            self.last_event = now;
            if self.state.reachable != Some(true) {
                self.state.reachable = Some(true);
                self.state.unreachable_reason = None;
            }
        }
    }

    fn last_heard(&self) -> u64 {
        self.activity
            .latest()
            .max(self.last_event)
            .max(self.probe_ok)
    }

    fn should_probe(&mut self) -> bool {
        let now = now_ms();
        let requested = std::mem::take(&mut self.probe_requested);
        let s = self.settings();
        match self.state.reachable {
            Some(true) => {
                requested
                    || ms_between(self.last_heard(), now) >= s.silence
                    || ms_between(self.probe_ok, now) >= s.version_refresh
            }
            // Unknown or unreachable: probe on a steady beat, not on every watch error.
            _ => {
                self.probe_started == 0
                    || ms_between(self.probe_started, now) >= s.unreachable_probe_interval
            }
        }
    }

    fn probe(&mut self) -> Probe {
        let started = now_ms();
        self.probe_started = started;
        let (client, timeout) = (self.client.clone(), self.settings().probe_timeout);
        Box::pin(async move {
            let res = match tokio::time::timeout(timeout, client.apiserver_version()).await {
                Ok(Ok(info)) => Ok(info),
                Ok(Err(e)) => Err(short(e)),
                Err(_) => Err(format!("/version did not answer within {timeout:?}")),
            };
            (started, res)
        })
    }

    /// Takes a probe's result; true when the watches should be rebuilt now (the API is back
    /// and some watch is still failing: relist at once instead of waiting out its backoff).
    fn probed(&mut self, started: u64, res: Result<Info, String>) -> bool {
        match res {
            Ok(info) => {
                let was_down = self.state.reachable == Some(false);
                self.probe_ok = now_ms();
                self.state.reachable = Some(true);
                self.state.unreachable_reason = None;
                let minor = parse_minor(&info.minor);
                self.state.version = Some((info.git_version, minor));
                was_down && self.state.kinds.iter().any(|k| k.error.is_some())
            }
            Err(e) => {
                // Something answered while the probe was out: the API is alive, the probe
                // unlucky.
                if self.last_heard() > started {
                    return false;
                }
                if self.state.reachable != Some(false) {
                    tracing::info!(instance = %self.name, error = %e, "instance unreachable");
                }
                self.state.reachable = Some(false);
                self.state.unreachable_reason = Some(format!("API unreachable: {e}"));
                false
            }
        }
    }

    fn publish(&mut self) {
        // A watch error is healed once its kind got a successful answer after it.
        for k in Kind::ALL {
            let answered = self.activity.kind(k);
            let ks = self.state.kind(k);
            if ks.error.as_ref().is_some_and(|(_, at)| answered > *at) {
                ks.error = None;
            }
        }
        let failing = self
            .state
            .kinds
            .iter()
            .filter(|k| k.error.is_some())
            .count();
        self.live
            .failing_watches
            .store(failing as u32, Ordering::Relaxed);
        let s = self.settings();
        let mut summary = self.state.summary(
            now_ms(),
            s.silence,
            s.named_objects,
            self.published.last_change,
        );
        if summary != self.published {
            summary.last_change = SystemTime::now();
            self.published = summary.clone();
            self.shared.publish(&self.name, self.id, summary);
        }
    }

    /// When the loop must look again though nothing arrived: at the watchdog's next deadline
    /// (the silence, the version refresh, the next probe of an instance not reachable), at
    /// most `silence` away. While a watch fails or a probe is asked for, every
    /// [`tick_period`](Self::tick_period): its healing and its staleness are read from the
    /// clock. A fixed tick of half a second cost 20,000 wake-ups a second at 10,000 quiet
    /// instances, each computing a summary.
    fn next_look(&self) -> Duration {
        let s = self.settings();
        if self.probe_requested || self.state.kinds.iter().any(|k| k.error.is_some()) {
            return self.tick_period();
        }
        let ms = |d: Duration| d.as_millis() as u64;
        let due = match self.state.reachable {
            Some(true) => {
                (self.last_heard() + ms(s.silence)).min(self.probe_ok + ms(s.version_refresh))
            }
            _ => self.probe_started + ms(s.unreachable_probe_interval),
        };
        ms_between(now_ms(), due).clamp(Duration::from_millis(10), s.silence)
    }

    fn tick_period(&self) -> Duration {
        let s = self.settings();
        (s.silence.min(s.unreachable_probe_interval) / 4)
            .clamp(Duration::from_millis(10), Duration::from_secs(1))
    }
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    name: String,
    id: u64,
    client: Client,
    selection: Selection,
    live: Arc<Live>,
) {
    let activity = live.activity.clone();
    let mut me = Instance {
        client: tap::client(client, activity.clone()),
        published: initial_summary(&shared.settings),
        shared,
        name,
        id,
        selection: Arc::new(selection),
        activity,
        live,
        state: InstanceState::default(),
        last_event: 0,
        probe_started: 0,
        probe_ok: 0,
        probe_requested: false,
        listed: [false; 5],
        errored_since_build: false,
    };
    let resync_every = me.settings().resync;
    let mut streams: SelectAll<BoxStream<'static, Tagged>> = SelectAll::new();
    let mut starting = Some(acquire(me.shared.lists.clone()));
    let mut slot: Option<(OwnedSemaphorePermit, Instant)> = None;
    let mut probe: Option<Probe> = None;
    let look = tokio::time::sleep(me.tick_period());
    tokio::pin!(look);
    let resync = tokio::time::sleep(jittered(resync_every));
    tokio::pin!(resync);

    loop {
        let mut rebuild = false;
        tokio::select! {
            permit = async { starting.as_mut().expect("guarded").await }, if starting.is_some() => {
                starting = None;
                slot = permit.map(|p| (p, Instant::now()));
                streams = watch_all(&me.client, &me.selection);
                me.listed = [false; 5];
                me.errored_since_build = false;
                me.state.queued = false;
            }
            ev = streams.next(), if !streams.is_empty() => {
                if let Some(ev) = ev {
                    me.handle(ev);
                    for _ in 0..BATCH {
                        match streams.next().now_or_never() {
                            Some(Some(ev)) => me.handle(ev),
                            _ => break,
                        }
                    }
                }
            }
            (started, res) = async { probe.as_mut().expect("guarded").await }, if probe.is_some() => {
                probe = None;
                rebuild = me.probed(started, res);
            }
            () = &mut look => {}
            () = &mut resync, if !resync_every.is_zero() => {
                resync.as_mut().reset(tokio::time::Instant::now() + jittered(resync_every));
                rebuild = true;
            }
        }
        // Give the list slot back once listed, on the first error (backing off must not hold
        // it), or after LIST_SLOT_MAX.
        if slot.as_ref().is_some_and(|(_, since)| {
            me.listed.iter().all(|l| *l)
                || me.errored_since_build
                || since.elapsed() > LIST_SLOT_MAX
        }) {
            slot = None;
        }
        if rebuild && starting.is_none() {
            // Dropping the streams ends their requests; the kinds keep their objects until the
            // new lists complete.
            streams = SelectAll::new();
            starting = Some(acquire(me.shared.lists.clone()));
        }
        if probe.is_none() && me.should_probe() {
            probe = Some(me.probe());
        }
        me.publish();
        look.as_mut()
            .reset(tokio::time::Instant::now() + me.next_look());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minors_parse_like_kubectl() {
        assert_eq!(parse_minor("34"), Some(34));
        assert_eq!(parse_minor("28+"), Some(28));
        assert_eq!(parse_minor(""), None);
    }

    #[test]
    fn errors_are_cut_on_char_boundaries() {
        let long = "é".repeat(300);
        let s = short(&long);
        assert!(s.ends_with('…'));
        assert!(s.len() <= ERROR_CHARS + '…'.len_utf8());
    }
}
