//! The journal writer on the request path: one positioned `write` per event
//! into the current preallocated segment, a new segment when it is full, and
//! the down state: while no segment can be opened or written, events are held
//! in memory (see [`super::health`]) and written first when one can.

use super::health::{log_dropped, next_backoff};
use super::journal::{self, JournalPos, record};
use super::{LedgerError, Shared};
use crate::domain::UsageEvent;
use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// The segment being written.
struct Segment {
    file: Arc<File>,
    number: u64,
    /// Where the next record goes.
    offset: u64,
    size: u64,
}

pub(super) struct Appender {
    dir: PathBuf,
    seg: Option<Segment>,
    /// The number the next segment gets.
    next: u64,
    segment_bytes: u64,
    /// Power mode: segments are synced when created and when left.
    power: bool,
    /// Reused for each record.
    buf: Vec<u8>,
    /// While down: the events to write when a segment can be opened, oldest first.
    held: VecDeque<UsageEvent>,
    /// While down: when to try again, and the last wait.
    retry: Option<(Instant, Duration)>,
    /// Power mode: writes so far (each event's sequence number).
    seq: u64,
}

impl Appender {
    pub(super) fn new(dir: PathBuf, next: u64, segment_bytes: u64, power: bool) -> Self {
        Appender { dir, seg: None, next, segment_bytes, power, buf: Vec::with_capacity(1024), held: VecDeque::new(), retry: None, seq: 0 }
    }

    /// Opens the next segment (syncing the one it leaves in power mode);
    /// returns where its records start.
    pub(super) fn open_next(&mut self) -> std::io::Result<JournalPos> {
        self.open_sized(self.segment_bytes)
    }

    fn open_sized(&mut self, size: u64) -> std::io::Result<JournalPos> {
        if let Some(old) = self.seg.take()
            && self.power
        {
            // Records of the segment left behind are synced before any later
            // one can be acknowledged by a sync of the new segment.
            old.file.sync_data()?;
        }
        let n = self.next;
        let file = journal::create_segment(&self.dir, n, size, self.power)?;
        self.next = n.saturating_add(1);
        self.seg = Some(Segment { file: Arc::new(file), number: n, offset: record::HEADER_LEN, size });
        Ok(journal::start_of(n))
    }

    /// Writes `event`'s record, or holds it while down. Returns the write's
    /// sequence number in power mode (what to wait a sync for).
    pub(super) fn append(&mut self, event: &UsageEvent, shared: &Shared) -> Result<Option<u64>, LedgerError> {
        if self.retry.is_some() {
            return self.hold(event.clone(), shared).map(|()| None);
        }
        self.buf.clear();
        record::encode_record(event, &mut self.buf);
        match self.write_buf(shared) {
            Ok(()) => {
                shared.stats.committed.fetch_add(1, Relaxed);
                Ok(self.power.then_some(self.seq))
            }
            Err(e) => {
                self.went_down(&e, shared);
                self.hold(event.clone(), shared).map(|()| None)
            }
        }
    }

    /// Writes `self.buf` (one or more records) at the end of the current
    /// segment, opening a new one when it does not fit, and publishes the new end.
    fn write_buf(&mut self, shared: &Shared) -> std::io::Result<()> {
        let len = self.buf.len() as u64;
        let fits = self.seg.as_ref().is_some_and(|s| s.offset.saturating_add(len) <= s.size);
        if !fits {
            let size = self.segment_bytes.max(record::HEADER_LEN.saturating_add(len));
            self.open_sized(size)?;
        }
        let Some(seg) = self.seg.as_mut() else {
            return Err(std::io::Error::other("no journal segment is open"));
        };
        if let Err(e) = journal::write_all_at(&seg.file, &self.buf, seg.offset) {
            // Whatever reached the file is a torn record: this segment takes
            // no more, the next record goes to a new one.
            self.seg = None;
            return Err(e);
        }
        seg.offset += len;
        let end = JournalPos { segment: seg.number, offset: seg.offset };
        *shared.end.lock() = end;
        if let Some(s) = &shared.sync {
            self.seq = self.seq.wrapping_add(1);
            s.written(self.seq, seg.file.clone());
        }
        Ok(())
    }

    fn went_down(&mut self, e: &std::io::Error, shared: &Shared) {
        shared.stats.failures.fetch_add(1, Relaxed);
        let reason = format!("cannot write the usage journal {}: {e}", self.dir.display());
        tracing::error!(error = %reason, "the usage ledger is down: new requests are refused until the journal writes again");
        shared.health.went_down(reason);
        let wait = next_backoff(self.retry.map(|(_, w)| w).unwrap_or_default());
        self.retry = Some((Instant::now() + wait, wait));
    }

    /// Keeps `event` until the journal can write again; past the limit it is
    /// logged in full and refused.
    fn hold(&mut self, event: UsageEvent, shared: &Shared) -> Result<(), LedgerError> {
        let limit = shared.health.limit();
        if self.held.len() >= limit {
            log_dropped(&event, "too many events wait for the usage journal to write again");
            shared.stats.dropped.fetch_add(1, Relaxed);
            return Err(LedgerError::Overflow(limit));
        }
        self.held.push_back(event);
        shared.health.set_pending(self.held.len());
        Ok(())
    }

    /// When to try the journal again, while down.
    pub(super) fn retry_due(&self) -> Option<Instant> {
        self.retry.map(|(due, _)| due)
    }

    /// While down and the retry is due: opens a new segment and writes the
    /// held events into it, oldest first, then is up again. On a failure the
    /// next try waits longer.
    /// `now`: try even if the wait has not run out (at stop).
    pub(super) fn retry_held(&mut self, shared: &Shared, now: bool) {
        if self.retry.is_none_or(|(due, _)| due > Instant::now() && !now) {
            return;
        }
        // A fresh segment: the failed one may end in a torn record.
        if let Err(e) = self.open_next() {
            self.went_down(&e, shared);
            return;
        }
        let mut written = 0u64;
        while let Some(e) = self.held.front() {
            self.buf.clear();
            record::encode_record(e, &mut self.buf);
            if let Err(err) = self.write_buf(shared) {
                shared.stats.recovered.fetch_add(written, Relaxed);
                shared.health.set_pending(self.held.len());
                self.went_down(&err, shared);
                return;
            }
            self.held.pop_front();
            written += 1;
            shared.stats.committed.fetch_add(1, Relaxed);
        }
        shared.stats.recovered.fetch_add(written, Relaxed);
        shared.health.set_pending(0);
        self.retry = None;
        let since = shared.health.came_up();
        tracing::info!(written, down_since = ?since, "the usage journal writes again; new requests are accepted");
    }

    /// At stop: the events still held are logged in full (nothing else can keep them).
    pub(super) fn give_up_held(&mut self) {
        for e in self.held.drain(..) {
            log_dropped(&e, "the ledger stopped while the usage journal could not write");
        }
    }
}
