//! One process per SQLite file: an exclusive OS lock on `PATH.lock` beside the database, held for
//! as long as the store is open. std's `File::try_lock` (flock on Unix, LockFileEx on Windows,
//! stable since Rust 1.89) is used rather than a crate: the kernel releases it when the holder
//! dies, however it dies, so a crash never leaves a stale lock behind. The lock file carries the
//! holder's pid, only to name it in the refusal.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::{Result, StoreError};

/// An exclusive lock on a store file; released on drop (or by the kernel on exit).
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

/// The lock file of the database at `db`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl FileLock {
    /// Takes the lock of `db`, or says which process holds it.
    pub fn acquire(db: &Path) -> Result<Self> {
        let path = lock_path(db);
        let io = |e: std::io::Error| StoreError::Backend(format!("lock {}: {e}", path.display()));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    path: db.display().to_string(),
                    holder: holder_pid(&mut file),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(FileLock { _file: file })
    }
}

/// The pid the holder wrote, if it has written it yet.
fn holder_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("s.db");
        let first = FileLock::acquire(&db).expect("first lock");
        match FileLock::acquire(&db) {
            Err(StoreError::Locked { path, holder }) => {
                assert_eq!(path, db.display().to_string());
                assert_eq!(holder, Some(std::process::id()));
            }
            other => panic!("second lock: {other:?}"),
        }
        drop(first);
        FileLock::acquire(&db).expect("free again once the holder let go");
    }
}
