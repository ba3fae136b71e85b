//! Long work outside the reconcile. A step that takes minutes (a migration) runs as a task
//! tracked here by its object's name: each reconcile starts it once, then only reads how far it
//! got, and takes its result when it ends — so a reconcile stays short, shutdown waits for no
//! step, and the task can be stopped at any await point: when the swap rolls back or is
//! deleted ([`Tasks::cancel`]) and when the controllers stop, on shutdown or on losing the
//! lease ([`Tasks::cancel_all`]), before another leader may start the same work.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use futures::FutureExt;
use tokio::task::JoinHandle;

use crate::{Error, lock};

/// How far a task got, in objects (written by the task, read by the reconciles).
#[derive(Default, Debug)]
pub struct Progress {
    total: AtomicU32,
    done: AtomicU32,
}

impl Progress {
    pub fn set_total(&self, total: u32) {
        self.total.store(total, Ordering::Relaxed);
    }

    pub fn add_done(&self, n: u32) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    /// `(done, total)`.
    pub fn read(&self) -> (u32, u32) {
        (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }
}

/// What a reconcile learns about its task.
pub(crate) enum Polled<T> {
    /// Still running, this far.
    Running(Arc<Progress>),
    /// Ended; the task is forgotten, a later start begins anew.
    Ended(Result<T, Error>),
}

struct Task<T> {
    handle: JoinHandle<()>,
    progress: Arc<Progress>,
    /// The result, put here before the end is announced: the reconcile the announcement
    /// triggers finds it (the handle may not count as finished yet, and the reconcile would
    /// wait a whole poll interval).
    outcome: Arc<Mutex<Option<Result<T, Error>>>>,
}

/// The running tasks of one kind, by object name.
pub(crate) struct Tasks<T> {
    running: Mutex<HashMap<String, Task<T>>>,
    /// Set by [`Tasks::cancel_all`]: a reconcile still in flight starts nothing more.
    closed: AtomicBool,
    /// Object names whose task ended: the controller re-queues them at once.
    ended: tokio::sync::broadcast::Sender<String>,
}

impl<T> Default for Tasks<T> {
    fn default() -> Self {
        Tasks {
            running: Mutex::default(),
            closed: AtomicBool::new(false),
            ended: tokio::sync::broadcast::channel(1024).0,
        }
    }
}

impl<T: Send + 'static> Tasks<T> {
    /// The task of `key`: how far it got, or how it ended. None when there is none.
    pub(crate) fn poll(&self, key: &str) -> Option<Polled<T>> {
        let mut running = lock(&self.running);
        let task = running.get(key)?;
        let result = lock(&task.outcome).take();
        if let Some(result) = result {
            running.remove(key);
            return Some(Polled::Ended(result));
        }
        if !task.handle.is_finished() {
            return Some(Polled::Running(task.progress.clone()));
        }
        // Finished without a result: it panicked.
        let task = running.remove(key)?;
        let message = match task.handle.now_or_never() {
            Some(Err(e)) => e.to_string(),
            _ => "ended without a result".to_string(),
        };
        Some(Polled::Ended(Err(Error::TaskEnded {
            task: key.to_string(),
            message,
        })))
    }

    /// Starts `work` as `key`'s task (the caller polled first: there is none); false when the
    /// tasks are closed (the controllers are stopping) and nothing was started.
    pub(crate) fn start<F>(&self, key: &str, work: impl FnOnce(Arc<Progress>) -> F) -> bool
    where
        F: Future<Output = Result<T, Error>> + Send + 'static,
    {
        let mut running = lock(&self.running);
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        let progress = Arc::new(Progress::default());
        let ended = self.ended.clone();
        let name = key.to_string();
        let future = work(progress.clone());
        let outcome = Arc::new(Mutex::new(None));
        let slot = outcome.clone();
        let handle = tokio::spawn(async move {
            let result = future.await;
            *lock(&slot) = Some(result);
            let _ = ended.send(name);
        });
        let task = Task {
            handle,
            progress,
            outcome,
        };
        if let Some(old) = running.insert(key.to_string(), task) {
            old.handle.abort();
        }
        true
    }

    /// Lets tasks start (the controllers start, or start again under a new lease).
    pub(crate) fn open(&self) {
        self.closed.store(false, Ordering::Release);
    }

    /// Stops `key`'s task where it stands; true when there was one.
    pub(crate) fn cancel(&self, key: &str) -> bool {
        let task = lock(&self.running).remove(key);
        task.inspect(|t| t.handle.abort()).is_some()
    }

    /// Stops every task where it stands and starts no more until [`Tasks::open`]; how many
    /// there were.
    pub(crate) fn cancel_all(&self) -> usize {
        let all: Vec<Task<T>> = {
            let mut running = lock(&self.running);
            self.closed.store(true, Ordering::Release);
            running.drain().map(|(_, t)| t).collect()
        };
        for task in &all {
            task.handle.abort();
        }
        all.len()
    }

    /// Names of objects whose task ended, as they end.
    pub(crate) fn ended(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.ended.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_is_started_once_read_while_it_runs_and_taken_when_it_ends() {
        let tasks: Tasks<u32> = Tasks::default();
        let mut ended = tasks.ended();
        let (go, gate) = tokio::sync::oneshot::channel::<()>();
        assert!(tasks.poll("a").is_none());
        assert!(tasks.start("a", |progress| async move {
            progress.set_total(2);
            progress.add_done(1);
            gate.await.ok();
            Ok(7)
        }));
        tokio::task::yield_now().await;
        match tasks.poll("a") {
            Some(Polled::Running(_)) => {}
            _ => panic!("still running"),
        }
        go.send(()).expect("task waits");
        assert_eq!(ended.recv().await.expect("ended"), "a");
        // Announced ended: the result is there for the reconcile the announcement triggers,
        // once; then nothing, and a new start would begin anew.
        assert!(matches!(tasks.poll("a"), Some(Polled::Ended(Ok(7)))));
        assert!(tasks.poll("a").is_none());
    }

    #[tokio::test]
    async fn cancelled_tasks_stop_where_they_stand() {
        let tasks: Tasks<()> = Tasks::default();
        let (dropped_tx, dropped) = tokio::sync::oneshot::channel::<()>();
        let guard = OnDrop(Some(dropped_tx));
        assert!(tasks.start("a", move |_| async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            Ok(())
        }));
        assert!(tasks.start("b", |_| std::future::pending()));
        assert_eq!(tasks.cancel_all(), 2);
        assert!(tasks.poll("a").is_none() && tasks.poll("b").is_none());
        // Closed: a reconcile still in flight starts nothing, until the tasks open again.
        assert!(!tasks.start("c", |_| std::future::pending()));
        assert!(tasks.poll("c").is_none());
        tasks.open();
        assert!(tasks.start("c", |_| std::future::pending()));
        assert!(tasks.cancel("c"));
        // The aborted future is dropped where it stood: what it held is released.
        tokio::time::timeout(std::time::Duration::from_secs(5), dropped)
            .await
            .expect("the task is dropped")
            .expect("its guard signals");
        assert!(!tasks.cancel("a"));
    }

    struct OnDrop(Option<tokio::sync::oneshot::Sender<()>>);

    impl Drop for OnDrop {
        fn drop(&mut self) {
            if let Some(tx) = self.0.take() {
                let _ = tx.send(());
            }
        }
    }
}
