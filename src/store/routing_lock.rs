//! The routing lock: only one runtime (`switchboard serve`, or a console
//! that routes) may route a SQLite database at a time, since two would each
//! count the suppliers' quotas and rate limits on their own.
//!
//! The lock is an OS file lock (`flock` on Unix, `LockFileEx` on Windows,
//! through `std::fs::File::try_lock`) on `<database>.routing.lock` next to
//! the database. The OS releases it when its process ends however it ends
//! (killed, crashed, power cut), so a holder left behind never blocks the
//! next runtime. The file holds the holder's process id, host, program and
//! start time (JSON) so that a refused runtime can name it. A holder that
//! stops cleanly empties the file; a non-empty file found by the next holder
//! therefore names a runtime that ended without stopping (killed or crashed),
//! which [`RoutingLock::left_behind`] reports.
//!
//! The file is never deleted (deleting a lock file races with a process
//! that has just opened it). It is separate from any other lock next to the
//! database (the usage journal's lock, for instance) and named for what it
//! guards. The lock is advisory and local: it cannot see a runtime on another
//! machine that opened the same file over a network share.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Who holds (or held) the routing lock of a database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub pid: u32,
    pub host: String,
    /// What routes: `switchboard serve`, `the console`, …
    pub program: String,
    pub since: DateTime<Utc>,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "process {} on host {} ({}, since {})", self.pid, self.host, self.program, self.since.format("%Y-%m-%d %H:%M:%S UTC"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RoutingLockError {
    #[error(
        "another Switchboard runtime is routing {db}: {}. Only one runtime may route a database at a time (two would count every quota twice); stop that one first, or open another database.",
        holder.as_ref().map(|h| h.to_string()).unwrap_or_else(|| "a process that has not written its name yet".into())
    )]
    Held { db: String, holder: Option<LockHolder> },
    #[error("cannot use the routing lock file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The lock file that guards routing of the database at `db`: `<db>.routing.lock`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_os_string();
    name.push(".routing.lock");
    PathBuf::from(name)
}

/// This machine's host name (best effort; `unknown` when it cannot be read).
pub fn host_name() -> String {
    let from_file = std::fs::read_to_string("/proc/sys/kernel/hostname").or_else(|_| std::fs::read_to_string("/etc/hostname"));
    let name = match from_file {
        Ok(s) => s.trim().to_string(),
        Err(_) => std::env::var("COMPUTERNAME").or_else(|_| std::env::var("HOSTNAME")).unwrap_or_default(),
    };
    if name.is_empty() { "unknown".into() } else { name }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RoutingLockError + '_ {
    move |source| RoutingLockError::Io { path: path.display().to_string(), source }
}

fn read_holder(file: &mut File) -> Option<LockHolder> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(4096).read_to_string(&mut text).ok()?;
    serde_json::from_str(text.trim()).ok()
}

/// The held routing lock of one database; released when dropped (and by the
/// OS if the process dies first).
#[derive(Debug)]
pub struct RoutingLock {
    file: File,
    path: PathBuf,
    holder: LockHolder,
    left_behind: Option<LockHolder>,
}

impl RoutingLock {
    /// Takes the routing lock of the database at `db` for `program`, or
    /// says who holds it. Never waits.
    pub fn acquire(db: &Path, program: &str, now: DateTime<Utc>) -> Result<RoutingLock, RoutingLockError> {
        let path = lock_path(db);
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io_err(&path))?;
        // A probe (`holder`) holds a shared lock for a moment: try a few times before refusing.
        let mut tries = 0;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if tries < 5 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(RoutingLockError::Held { db: db.display().to_string(), holder: read_holder(&mut file) });
                }
                Err(TryLockError::Error(e)) => return Err(io_err(&path)(e)),
            }
        }
        let left_behind = read_holder(&mut file);
        let holder = LockHolder { pid: std::process::id(), host: host_name(), program: program.to_string(), since: now };
        let text = serde_json::to_string(&holder).unwrap_or_default();
        file.set_len(0).map_err(io_err(&path))?;
        file.seek(SeekFrom::Start(0)).map_err(io_err(&path))?;
        file.write_all(text.as_bytes()).map_err(io_err(&path))?;
        file.sync_data().map_err(io_err(&path))?;
        if let Some(h) = &left_behind {
            tracing::warn!(previous = %h, "the database's previous routing runtime ended without stopping (killed or crashed); its lock went with it");
        }
        Ok(RoutingLock { file, path, holder, left_behind })
    }

    /// Who routes the database at `db` now, without taking the lock: `None`
    /// when no runtime holds it.
    pub fn holder(db: &Path) -> Result<Option<LockHolder>, RoutingLockError> {
        let path = lock_path(db);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
                Ok(None)
            }
            Err(TryLockError::WouldBlock) => Ok(Some(read_holder(&mut file).unwrap_or(LockHolder {
                pid: 0,
                host: "unknown".into(),
                program: "a runtime that is starting".into(),
                since: DateTime::<Utc>::UNIX_EPOCH,
            }))),
            Err(TryLockError::Error(e)) => Err(io_err(&path)(e)),
        }
    }

    /// This process, as written in the lock file.
    pub fn holder_info(&self) -> &LockHolder {
        &self.holder
    }

    /// The runtime that held the lock before and ended without releasing it
    /// cleanly (killed or crashed), if any.
    pub fn left_behind(&self) -> Option<&LockHolder> {
        self.left_behind.as_ref()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RoutingLock {
    fn drop(&mut self) {
        // A clean stop empties the file, so the next holder can tell a killed one.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_first_ones_name_and_a_clean_stop_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let now = DateTime::<Utc>::from_timestamp(1_780_000_000, 0).unwrap();
        assert_eq!(RoutingLock::holder(&db).unwrap(), None);
        let a = RoutingLock::acquire(&db, "switchboard serve", now).unwrap();
        assert!(a.left_behind().is_none());
        assert_eq!(lock_path(&db), dir.path().join("s.db.routing.lock"));
        // flock belongs to the open file, so a second open in this process is refused too.
        let err = RoutingLock::acquire(&db, "the console", now).unwrap_err();
        match &err {
            RoutingLockError::Held { holder: Some(h), .. } => {
                assert_eq!(h.pid, std::process::id());
                assert_eq!(h.program, "switchboard serve");
            }
            other => panic!("expected Held with a holder, got {other:?}"),
        }
        assert!(err.to_string().contains(&format!("process {}", std::process::id())), "{err}");
        assert_eq!(RoutingLock::holder(&db).unwrap().map(|h| h.program), Some("switchboard serve".into()));
        drop(a);
        assert_eq!(RoutingLock::holder(&db).unwrap(), None);
        let b = RoutingLock::acquire(&db, "the console", now).unwrap();
        assert!(b.left_behind().is_none(), "a clean stop is not reported as left behind");
    }

    #[test]
    fn a_lock_file_naming_a_holder_that_no_longer_locks_it_is_reported_as_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let now = DateTime::<Utc>::from_timestamp(1_780_000_000, 0).unwrap();
        let ghost = LockHolder { pid: 999_999, host: "desk".into(), program: "switchboard serve".into(), since: now };
        std::fs::write(lock_path(&db), serde_json::to_string(&ghost).unwrap()).unwrap();
        assert_eq!(RoutingLock::holder(&db).unwrap(), None, "a file without a lock is no holder");
        let l = RoutingLock::acquire(&db, "the console", now).unwrap();
        assert_eq!(l.left_behind(), Some(&ghost));
        assert_eq!(l.holder_info().program, "the console");
    }
}
