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
//! the events it folds; [`Scanner::scan`] reads the records past it.

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

/// What [`Scanner::scan`] read.
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

/// Records decoded between two yields of the CPU ([`Scanner::scan`]).
const YIELD_EVERY: usize = 64;

/// The longest a record can be: a window this long that starts where a record
/// starts holds all of it, so what the decoder says there is final.
const LONGEST_RECORD: usize = record::RECORD_HEAD + record::MAX_PAYLOAD;

/// How much of a segment a scan reads at a time (two of the longest records).
const WINDOW: usize = 2 * LONGEST_RECORD;

/// Reads the journal's records, keeping its working memory between scans: a
/// fold thread scans every 100 ms, and a fresh buffer each time is a fresh
/// mapping for the kernel to zero and fault in (~1 % of the CPU under load).
/// A segment is read a window at a time, so that a scan that stops at `max`
/// events (a fold's batch) reads about what it decodes, not the whole
/// segment, and the buffer stays at [`WINDOW`] bytes.
#[derive(Debug)]
pub struct Scanner {
    window: usize,
    buf: Vec<u8>,
    events: Vec<UsageEvent>,
}

impl Default for Scanner {
    fn default() -> Self {
        Self::with_window(WINDOW)
    }
}

/// Reads the records of `dir` from `from` on with a scanner of its own (see
/// [`Scanner::scan`]).
pub fn scan(dir: &Path, from: JournalPos, until: Option<JournalPos>, max: usize) -> io::Result<Scan> {
    Scanner::default().scan(dir, from, until, max)
}

impl Scanner {
    /// A scanner that reads `window` bytes at a time (at least one byte;
    /// windows shorter than the longest record are for tests: a record that
    /// does not fit is read again in a window of its own).
    pub fn with_window(window: usize) -> Self {
        Self { window: window.max(1), buf: Vec::new(), events: Vec::new() }
    }

    /// Gives back a scan's event vector once its events are used, so that the
    /// next scan fills it again instead of growing a new one.
    pub fn recycle(&mut self, scan: Scan) {
        let mut events = scan.events;
        events.clear();
        if events.capacity() > self.events.capacity() {
            self.events = events;
        }
    }

    /// Reads the records of `dir` from `from` on: at most `max` events, and no
    /// further than `until` (a live writer's end; `None`: all the data there is).
    ///
    /// A segment's data ends at zeros, at the end of the file or at a torn
    /// record; the scan then goes on with the next segment that exists (up to
    /// `until`'s).
    pub fn scan(&mut self, dir: &Path, from: JournalPos, until: Option<JournalPos>, max: usize) -> io::Result<Scan> {
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        let mut out = Scan { to: from, events, ..Scan::default() };
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
            if end > start && self.segment(&file, n, version, start..end, max, &mut out)? {
                return Ok(out);
            }
        }
        Ok(out)
    }

    /// Reads segment `n`'s records in `range` into `out`, a window at a time;
    /// returns whether `max` events were reached.
    fn segment(&mut self, file: &File, n: u64, version: u32, range: std::ops::Range<u64>, max: usize, out: &mut Scan) -> io::Result<bool> {
        let end = range.end;
        let left = |pos: u64| usize::try_from(end.saturating_sub(pos)).unwrap_or(usize::MAX);
        let mut pos = range.start;
        let mut want = left(pos).min(self.window);
        loop {
            if self.buf.len() < want {
                self.buf.resize(want, 0);
            }
            let buf = &mut self.buf[..want];
            read_exact_at(file, buf, pos)?;
            let last = want == left(pos);
            let mut at = 0usize;
            while at < buf.len() {
                let verdict = record::decode_record(&buf[at..], version);
                if !matches!(verdict, Decoded::Record { .. } | Decoded::Unreadable { .. }) && !last && buf.len() - at < LONGEST_RECORD {
                    // The window may end inside this record: read on from it.
                    break;
                }
                match verdict {
                    Decoded::Record { event, len } => {
                        out.events.push(event);
                        if out.events.len().is_multiple_of(YIELD_EVERY) {
                            // The fold shares the CPUs with the gateway's lanes:
                            // a lane woken on this CPU runs now, not after the scan.
                            std::thread::yield_now();
                        }
                        at += len;
                        out.to = JournalPos { segment: n, offset: pos + at as u64 };
                        if out.events.len() >= max {
                            return Ok(true);
                        }
                    }
                    Decoded::Unreadable { len, error } => {
                        tracing::error!(segment = n, offset = pos + at as u64, %error, "a usage journal record this build cannot read was skipped");
                        out.unreadable += 1;
                        at += len;
                        out.to = JournalPos { segment: n, offset: pos + at as u64 };
                    }
                    Decoded::End => return Ok(false),
                    Decoded::Torn => {
                        out.torn = Some(JournalPos { segment: n, offset: pos + at as u64 });
                        return Ok(false);
                    }
                }
            }
            if at == buf.len() && last {
                return Ok(false);
            }
            // The next window starts at the first byte not decoded; one that
            // starts there and still cannot tell (shorter than the longest
            // record: test windows) is widened to hold the longest record.
            want = if at == 0 { left(pos).min(LONGEST_RECORD) } else { left(pos + at as u64).min(self.window) };
            pos += at as u64;
        }
    }
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
