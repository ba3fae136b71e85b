//! The audit file: a writer thread fed through a bounded queue, so no request ever waits on the
//! disk, and rotation by size as kube-apiserver's (lumberjack's) — the full file is renamed
//! `NAME-<UTC time>.EXT` and the oldest such backups beyond a count are removed.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::event::Event;

/// Where and how the log is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileConfig {
    pub path: PathBuf,
    /// Rotate before a line would take the file past this; 0: never rotate.
    pub max_bytes: u64,
    /// Rotated files kept; 0: keep them all (as upstream's `--audit-log-maxbackup`).
    pub max_backups: usize,
}

/// The lumberjack time format of a backup's name (UTC, milliseconds, no colons).
const BACKUP_TIME: &str = "%Y-%m-%dT%H-%M-%S%.3f";

/// What the writer thread receives.
pub(super) enum Message {
    Event(Box<Event>),
    /// Write everything queued before, sync the file to disk, answer and end.
    Close(oneshot::Sender<std::io::Result<()>>),
}

/// Counters the writer shares with the request path.
#[derive(Debug, Default)]
pub(super) struct Counters {
    /// Events lost: the queue was full, or the file could not be written.
    pub dropped: AtomicU64,
    /// Body bytes of the events waiting in the queue (the queue's memory bound).
    pub queued_bytes: AtomicUsize,
}

/// An open audit file and its size so far.
pub struct LogFile {
    config: FileConfig,
    out: BufWriter<File>,
    size: u64,
}

impl LogFile {
    /// Opens (or creates) the file for appending, readable by its owner only.
    pub fn open(config: FileConfig) -> std::io::Result<LogFile> {
        let file = open_private(&config.path)?;
        let size = file.metadata()?.len();
        Ok(LogFile {
            config,
            out: BufWriter::new(file),
            size,
        })
    }

    /// Appends one line, rotating first when it would take a non-empty file past the limit (a
    /// line larger than the limit gets a file of its own).
    pub fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        let len = line.len() as u64;
        let full = self.config.max_bytes > 0 && self.size + len > self.config.max_bytes;
        if full && self.size > 0 {
            self.rotate()?;
        }
        self.out.write_all(line)?;
        self.size += len;
        Ok(())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// Flushes and syncs to disk: what is written survives a crash of the machine.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_all()
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        let backup = backup_name(&self.config.path, chrono::Utc::now())?;
        std::fs::rename(&self.config.path, &backup)?;
        self.out = BufWriter::new(open_private(&self.config.path)?);
        self.size = 0;
        if self.config.max_backups > 0 {
            prune_backups(&self.config.path, self.config.max_backups)?;
        }
        Ok(())
    }
}

fn open_private(path: &Path) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    // A file that existed before keeps its mode through `open`: make it private too.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

/// `NAME.EXT` → (`NAME-`, `.EXT`): the parts around a backup's time.
fn backup_affixes(path: &Path) -> (String, String) {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (format!("{stem}-"), ext)
}

/// The backup name for a rotation at `now`, with `-N` added after those of the same
/// millisecond, so that names sort in the order the files were rotated.
fn backup_name(path: &Path, now: chrono::DateTime<chrono::Utc>) -> std::io::Result<PathBuf> {
    let (prefix, ext) = backup_affixes(path);
    let time = now.format(BACKUP_TIME).to_string();
    let same_time = backup_order(&time).map(|(t, _)| t);
    let n = ordered_backups(path)?
        .into_iter()
        .filter(|((t, _), _)| Some(*t) == same_time)
        .map(|((_, n), _)| n + 1)
        .max()
        .unwrap_or(0);
    Ok(match n {
        0 => path.with_file_name(format!("{prefix}{time}{ext}")),
        n => path.with_file_name(format!("{prefix}{time}-{n}{ext}")),
    })
}

/// The backups of `path` in its directory, oldest first. Only names holding a backup time are
/// taken: another file that merely starts with the same name is never touched.
pub fn backups(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let found = ordered_backups(path)?;
    Ok(found.into_iter().map(|(_, path)| path).collect())
}

type Order = (chrono::NaiveDateTime, usize);

fn ordered_backups(path: &Path) -> std::io::Result<Vec<(Order, PathBuf)>> {
    let (prefix, ext) = backup_affixes(path);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let order = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(&ext))
            .and_then(backup_order);
        if let Some(order) = order {
            found.push((order, dir.join(&name)));
        }
    }
    found.sort();
    Ok(found)
}

/// The (time, `-N`) of a backup name's middle part, None when it is no backup time.
fn backup_order(middle: &str) -> Option<Order> {
    let (time, extra) = (middle.get(..23)?, middle.get(23..)?);
    let time = chrono::NaiveDateTime::parse_from_str(time, BACKUP_TIME).ok()?;
    let n = match extra.strip_prefix('-') {
        None if extra.is_empty() => 0,
        Some(n) => n.parse().ok()?,
        None => return None,
    };
    Some((time, n))
}

fn prune_backups(path: &Path, keep: usize) -> std::io::Result<()> {
    let all = backups(path)?;
    for old in &all[..all.len().saturating_sub(keep)] {
        std::fs::remove_file(old)?;
    }
    Ok(())
}

/// The writer thread's loop: writes each event, flushes whenever the queue runs empty, and on
/// `Close` (or when every sender is gone) syncs the file and ends.
pub(super) fn run(mut file: LogFile, mut queue: mpsc::Receiver<Message>, counters: Arc<Counters>) {
    while let Some(message) = queue.blocking_recv() {
        match message {
            Message::Event(event) => write_event(&mut file, &event, &counters),
            Message::Close(done) => {
                // Closed before answering: an event offered once `close` returned is refused
                // (and counted) rather than left in a queue nobody reads.
                queue.close();
                while let Ok(Message::Event(_)) = queue.try_recv() {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
                let _ = done.send(file.sync());
                return;
            }
        }
        if queue.is_empty()
            && let Err(e) = file.flush()
        {
            tracing::error!(error = %e, "audit log: flush failed");
        }
    }
    let _ = file.sync();
}

fn write_event(file: &mut LogFile, event: &Event, counters: &Counters) {
    let line = event.to_line();
    counters
        .queued_bytes
        .fetch_sub(event.body_bytes(), Ordering::Relaxed);
    if let Err(e) = file.write_line(&line) {
        let lost = counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::error!(error = %e, lost, "audit log: an event could not be written");
    }
}
