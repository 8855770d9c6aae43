//! The usage journal on disk: append-only, preallocated segment files next to
//! the database, one checksummed record per usage event ([`record`]).
//!
//! Layout: `<db>.journal/<instance>/<segment>.seg` (segment numbers of twelve
//! digits, increasing, never reused within an instance). Each process that
//! writes usage claims an instance directory by taking an exclusive lock on
//! its `lock` file ([`Instance::claim`]); the operating system releases the
//! lock when the process ends however it ends, so a directory whose lock can
//! be taken belongs to nobody and its segments are folded by whoever opens the
//! database next ([`Instance::try_take`]). The fold's watermark (segment,
//! offset) per instance is stored in the database, in the same transaction as
//! the events it folds; [`scan`] reads the records past it.

pub mod record;

use crate::domain::UsageEvent;
use record::{Decoded, HEADER_LEN};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// How large a segment is preallocated.
pub const DEFAULT_SEGMENT_BYTES: u64 = 16 << 20;

pub use crate::domain::JournalPos;

/// The start of segment `n`'s records.
pub fn start_of(segment: u64) -> JournalPos {
    JournalPos { segment, offset: HEADER_LEN }
}

/// The journal folder of the database at `db`: `<db>.journal`.
pub fn root_of(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_os_string();
    s.push(".journal");
    PathBuf::from(s)
}

/// The file of segment `n` in an instance directory.
pub fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:012}.seg"))
}

/// The segments in an instance directory, by number.
pub fn segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in rd {
        let name = entry?.file_name();
        if let Some(n) = name.to_str().and_then(|s| s.strip_suffix(".seg")).and_then(|s| s.parse::<u64>().ok()) {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The instance directories under a journal root, by number.
pub fn instances(root: &Path) -> io::Result<Vec<u32>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in rd {
        let entry = entry?;
        if entry.file_type()?.is_dir()
            && let Some(n) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok())
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// An instance directory whose lock this process holds (until dropped).
#[derive(Debug)]
pub struct Instance {
    pub id: u32,
    pub dir: PathBuf,
    _lock: File,
}

impl Instance {
    /// Claims the lowest-numbered instance directory under `root` that no
    /// live process holds, creating one when all are held.
    pub fn claim(root: &Path) -> io::Result<Instance> {
        std::fs::create_dir_all(root)?;
        for id in 0u32..4096 {
            if let Some(i) = Self::try_take(root, id)? {
                return Ok(i);
            }
        }
        Err(io::Error::other(format!("{}: every journal instance is held by a running process", root.display())))
    }

    /// Takes instance `id`'s lock if no live process holds it (`None` when one does).
    pub fn try_take(root: &Path, id: u32) -> io::Result<Option<Instance>> {
        let dir = root.join(id.to_string());
        std::fs::create_dir_all(&dir)?;
        let lock = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(dir.join("lock"))?;
        match lock.try_lock() {
            Ok(()) => Ok(Some(Instance { id, dir, _lock: lock })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Whether a live process holds instance `id` (read-only: nothing is created).
    pub fn is_held(root: &Path, id: u32) -> io::Result<bool> {
        let path = root.join(id.to_string()).join("lock");
        let lock = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        match lock.try_lock() {
            Ok(()) => Ok(false),
            Err(std::fs::TryLockError::WouldBlock) => Ok(true),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// Creates segment `n` in `dir`: preallocated to `size` bytes (so that a full
/// disk shows here, not in a request's write), its header written, and, when
/// `sync`, the file and the directory entry synced.
pub fn create_segment(dir: &Path, n: u64, size: u64, sync: bool) -> io::Result<File> {
    let path = segment_path(dir, n);
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
    let made = (|| {
        preallocate(&file, size.max(HEADER_LEN))?;
        write_all_at(&file, &record::encode_header(n), 0)?;
        if sync {
            file.sync_all()?;
            sync_dir(dir)?;
        }
        Ok(())
    })();
    match made {
        Ok(()) => Ok(file),
        Err(e) => {
            drop(file);
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
    }
}

#[cfg(target_os = "linux")]
fn preallocate(file: &File, size: u64) -> io::Result<()> {
    rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, size).map_err(io::Error::from)
}

/// Elsewhere: zeros written out (a sparse `set_len` would reserve nothing).
#[cfg(not(target_os = "linux"))]
fn preallocate(file: &File, size: u64) -> io::Result<()> {
    let zeros = vec![0u8; 1 << 16];
    let mut at = 0u64;
    while at < size {
        let n = (size - at).min(zeros.len() as u64) as usize;
        write_all_at(file, &zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// Syncs a directory's entries (a new segment's name survives a power cut).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Writes all of `buf` at `offset` (positioned: no shared file cursor).
pub fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let (mut buf, mut offset) = (buf, offset);
        while !buf.is_empty() {
            let n = std::os::windows::fs::FileExt::seek_write(file, buf, offset)?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::WriteZero));
            }
            buf = &buf[n..];
            offset += n as u64;
        }
        Ok(())
    }
}

fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let (mut buf, mut offset) = (buf, offset);
        while !buf.is_empty() {
            let n = std::os::windows::fs::FileExt::seek_read(file, buf, offset)?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
            }
            let rest = buf;
            buf = &mut rest[n..];
            offset += n as u64;
        }
        Ok(())
    }
}

/// What [`scan`] read.
#[derive(Debug, Default)]
pub struct Scan {
    /// The events past the start, in journal order.
    pub events: Vec<UsageEvent>,
    /// Where the next scan starts (past the last record read).
    pub to: JournalPos,
    /// Checksummed records this build could not read (logged, skipped).
    pub unreadable: usize,
    /// Where a torn record was found (and ignored), if one was.
    pub torn: Option<JournalPos>,
    /// Segments whose header was not accepted (logged, skipped).
    pub bad_segments: Vec<(u64, String)>,
}

/// Records decoded between two yields of the CPU ([`scan`]).
const YIELD_EVERY: usize = 64;

/// Reads the records of `dir` from `from` on: at most `max` events, and no
/// further than `until` (a live writer's end; `None`: all the data there is).
///
/// A segment's data ends at zeros, at the end of the file or at a torn record;
/// the scan then goes on with the next segment that exists (up to `until`'s).
pub fn scan(dir: &Path, from: JournalPos, until: Option<JournalPos>, max: usize) -> io::Result<Scan> {
    let mut out = Scan { to: from, ..Scan::default() };
    for n in segments(dir)?.into_iter().filter(|n| *n >= from.segment) {
        if until.is_some_and(|u| n > u.segment) {
            break;
        }
        if n > out.to.segment {
            // The previous segment's data is complete: the writer moved on.
            out.to = start_of(n);
        }
        let file = match File::open(segment_path(dir, n)) {
            Ok(f) => f,
            // Deleted by a fold that ran meanwhile: it is behind the watermark.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        let mut head = [0u8; HEADER_LEN as usize];
        if len < HEADER_LEN {
            out.bad_segments.push((n, "shorter than its header".into()));
            continue;
        }
        read_exact_at(&file, &mut head, 0)?;
        let version = match record::decode_header(&head) {
            Ok(h) => h.version,
            Err(e) => {
                out.bad_segments.push((n, e.to_string()));
                continue;
            }
        };
        let start = out.to.offset.max(HEADER_LEN);
        let end = match until {
            Some(u) if u.segment == n => u.offset.min(len),
            _ => len,
        };
        if end <= start {
            continue;
        }
        let mut buf = vec![0u8; (end - start) as usize];
        read_exact_at(&file, &mut buf, start)?;
        let mut at = 0usize;
        while at < buf.len() {
            match record::decode_record(&buf[at..], version) {
                Decoded::Record { event, len } => {
                    out.events.push(event);
                    if out.events.len().is_multiple_of(YIELD_EVERY) {
                        // The fold shares the CPUs with the gateway's lanes:
                        // a lane woken on this CPU runs now, not after the scan.
                        std::thread::yield_now();
                    }
                    at += len;
                    out.to = JournalPos { segment: n, offset: start + at as u64 };
                    if out.events.len() >= max {
                        return Ok(out);
                    }
                }
                Decoded::Unreadable { len, error } => {
                    tracing::error!(segment = n, offset = start + at as u64, %error, "a usage journal record this build cannot read was skipped");
                    out.unreadable += 1;
                    at += len;
                    out.to = JournalPos { segment: n, offset: start + at as u64 };
                }
                Decoded::End => break,
                Decoded::Torn => {
                    out.torn = Some(JournalPos { segment: n, offset: start + at as u64 });
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// Deletes the segments of `dir` numbered below `below` (wholly behind the
/// watermark); returns how many.
pub fn delete_before(dir: &Path, below: u64) -> io::Result<usize> {
    let mut n = 0;
    for s in segments(dir)?.into_iter().filter(|s| *s < below) {
        match std::fs::remove_file(segment_path(dir, s)) {
            Ok(()) => n += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests;
