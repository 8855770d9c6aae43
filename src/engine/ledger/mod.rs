//! The usage ledger: every usage event is appended to this process's usage
//! journal ([`journal`]) before the request's response completes, and a
//! background thread folds the journal into the database behind a durable
//! watermark ([`fold`]).
//!
//! - The request path: [`Ledger::record`] encodes the event as one
//!   checksummed record and writes it with one positioned `write` into the
//!   current preallocated segment; no SQLite. With
//!   [`LedgerSync::Normal`] (`--ledger-durability process`, the default) the
//!   write has reached the kernel when `record` returns: safe when the process
//!   is killed. With [`LedgerSync::Full`] (`power`) `record` also waits for a
//!   group `fdatasync` that covers its write ([`sync`]): one sync serves every
//!   request that wrote while the previous one ran.
//! - The fold (thread `usage-fold`): every [`FOLD_AFTER`] (or on
//!   [`Ledger::flush`]) it reads the records past the watermark and, in one
//!   database transaction, inserts the events (deduplicated on the event id),
//!   updates every rollup and moves the watermark; then it deletes the
//!   segments wholly behind it. At start, what a stopped process left is
//!   folded before the ledger is handed out ([`Ledger::start`]); any process
//!   that opens the database folds journals nobody holds ([`fold_leftovers`]).
//! - The down state ([`health`]): while no segment can be opened or written
//!   (a full disk), new requests are refused before any provider call
//!   ([`Ledger::admit`]); the events of requests already under way are held in
//!   memory and reach the journal first when a segment can be opened again.
//!   A database that cannot write only delays the fold: the journal keeps the
//!   events meanwhile.
//! - Live views read the last [`LIVE_WINDOW`] answered events from memory;
//!   quota loads add the events journaled but not folded yet
//!   ([`Ledger::quota_tokens_used`]).
#![deny(clippy::unwrap_used, clippy::expect_used)] // the request path: no panics on what clients or providers send

mod append;
mod fold;
mod health;
pub mod journal;
mod sync;
#[cfg(test)]
mod tests_down;

pub use fold::{FoldReport, fold_leftovers, wait_for_live_folds};
pub use health::{LedgerDown, LedgerRefusal, LedgerState, PENDING_LIMIT, RETRY_AFTER_SECS, RETRY_FIRST, RETRY_MAX};

use crate::domain::{Clock, JournalPos, SupplierId, UsageEvent};
use crate::store::{LedgerSync, SqliteLedger, Store, StoreError, UsageLedger};
use append::Appender;
use health::Health;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::oneshot;

/// How many recent events live views can see.
pub const LIVE_WINDOW: usize = 1_000;
/// How long journaled events may wait before they are folded into the database.
pub const FOLD_AFTER: Duration = Duration::from_millis(100);
/// Most events folded in one transaction.
pub const FOLD_BATCH: usize = 8_192;

/// Messages to the fold thread.
enum FoldMsg {
    /// Fold everything journaled so far, then answer.
    Flush(oneshot::Sender<()>),
}

/// Cheap to clone; the fold thread stops (after a last fold) when the last
/// handle is dropped.
#[derive(Clone)]
pub struct Ledger {
    fold_tx: mpsc::Sender<FoldMsg>,
    shared: Arc<Shared>,
}

/// What the request path, the fold thread and the sync thread share.
struct Shared {
    /// The journal writer: the current segment and the events held while down.
    appender: Mutex<Appender>,
    /// The end of the complete records written so far (what the fold may read).
    end: Mutex<JournalPos>,
    /// This process's journal instance (its lock is held while this lives).
    instance: journal::Instance,
    recent: Mutex<VecDeque<UsageEvent>>,
    stats: Arc<LedgerStats>,
    health: Arc<Health>,
    /// Platform-quota tokens of answered events not folded yet, by
    /// (supplier, UTC day start in Unix ms).
    unfolded: Mutex<crate::domain::FastMap<(i64, i64), u64>>,
    /// Held by the fold while it commits and takes the folded events off
    /// `unfolded`, and by quota loads while they read both: so a quota load
    /// sees each event exactly once.
    fold_gate: Mutex<()>,
    /// Power mode: the group fdatasync.
    sync: Option<Arc<sync::GroupSync>>,
    /// [`Ledger::offline`]: the throwaway journal folder, removed with the ledger.
    scratch: Mutex<Option<tempfile::TempDir>>,
}

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct LedgerStats {
    /// Events written to the journal.
    pub committed: AtomicU64,
    /// Journal records folded that the database already had (a replay).
    pub duplicates: AtomicU64,
    /// Fold transactions.
    pub batches: AtomicU64,
    /// Failed journal writes and segment opens.
    pub failures: AtomicU64,
    /// Requests refused because the ledger was down.
    pub refused: AtomicU64,
    /// Events let go of (logged in full) because too many were pending.
    pub dropped: AtomicU64,
    /// Events written to the journal after the ledger came back (they waited in memory).
    pub recovered: AtomicU64,
    /// Events held in memory now, while the ledger is (or was) down (a gauge).
    pub pending: AtomicU64,
    /// Whether the ledger cannot write now (see [`Ledger::state`]).
    pub down: std::sync::atomic::AtomicBool,
    /// Journal records folded into the database.
    pub folded: AtomicU64,
    /// Folds the database refused (retried; the journal keeps the events).
    pub fold_failures: AtomicU64,
    /// Group fdatasyncs of the journal (power mode).
    pub fdatasyncs: AtomicU64,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LedgerError {
    #[error("the usage ledger could not write: {0}")]
    Write(String),
    #[error("the usage ledger has stopped")]
    Stopped,
    #[error("the usage ledger is down and holds as many events as it may ({0}); this one was logged and not recorded")]
    Overflow(usize),
}

/// How a ledger is started.
#[derive(Debug, Clone)]
pub struct LedgerOptions {
    pub sync: LedgerSync,
    /// The preallocated size of a journal segment.
    pub segment_bytes: u64,
    /// The journal instance to claim (fleet mode: the instance's fleet id,
    /// which is also the key of its watermark and quota leases in the shared
    /// database). None: the lowest free one in the folder.
    pub instance: Option<u32>,
}

impl Default for LedgerOptions {
    fn default() -> Self {
        LedgerOptions { sync: LedgerSync::Normal, segment_bytes: journal::DEFAULT_SEGMENT_BYTES, instance: None }
    }
}

impl Ledger {
    /// Starts the ledger of `store`'s database (process durability).
    pub fn start(store: &Store) -> Result<Ledger, StoreError> {
        Self::start_synced(store, LedgerSync::Normal)
    }

    /// [`Ledger::start`] with the given durability of each event.
    pub fn start_synced(store: &Store, sync: LedgerSync) -> Result<Ledger, StoreError> {
        Self::start_opts(store, LedgerOptions { sync, ..LedgerOptions::default() })
    }

    /// Starts the ledger: claims a journal instance next to the database,
    /// folds every journal nobody holds (this one's leftovers included),
    /// opens a fresh segment and starts the fold thread.
    pub fn start_opts(store: &Store, opts: LedgerOptions) -> Result<Ledger, StoreError> {
        let backend = SqliteLedger::open_with(store, opts.sync)?;
        Self::start_with(Box::new(backend), &journal::root_of(store.sqlite_path_for("the usage ledger")?), opts)
    }

    /// The ledger of a process that serves no requests on a database it
    /// does not journal for (the console's and the CLI's bookkeeping router on
    /// PostgreSQL, where each `serve` instance journals under its fleet id):
    /// a throwaway journal folder, removed with the ledger, whose fold refuses
    /// to write. Nothing records through it; if something did, the event would
    /// stay in the throwaway journal and the fold would report the refusal.
    pub fn offline() -> Result<Ledger, StoreError> {
        let dir = tempfile::Builder::new()
            .prefix("switchboard-no-ledger-")
            .tempdir()
            .map_err(|e| StoreError::Io { path: std::env::temp_dir(), source: e })?;
        let opts = LedgerOptions { segment_bytes: 64 * 1024, ..LedgerOptions::default() };
        let ledger = Self::start_with(Box::new(NoLedger), dir.path(), opts)?;
        *ledger.shared.scratch.lock() = Some(dir);
        Ok(ledger)
    }

    /// [`Ledger::start_opts`] over any fold backend and journal folder.
    pub fn start_with(mut backend: Box<dyn UsageLedger>, root: &Path, opts: LedgerOptions) -> Result<Ledger, StoreError> {
        let io = |e: std::io::Error| StoreError::Io { path: root.to_path_buf(), source: e };
        let instance = match opts.instance {
            None => journal::Instance::claim(root).map_err(io)?,
            Some(id) => {
                std::fs::create_dir_all(root).map_err(io)?;
                journal::Instance::try_take(root, id)
                    .map_err(io)?
                    .ok_or_else(|| io(std::io::Error::other(format!("journal instance {id} is held by another running process"))))?
            }
        };
        // Journals of processes that are gone, then this instance's own leftovers.
        let mut leftovers = fold::fold_others(root, instance.id, backend.as_mut())?;
        let (wm, own) = fold::fold_dead(&instance, backend.as_mut())?;
        leftovers.add(own);
        let next = journal::segments(&instance.dir).map_err(io)?.into_iter().max().unwrap_or(0).max(wm.segment).saturating_add(1);
        let power = opts.sync == LedgerSync::Full;
        let stats = Arc::new(LedgerStats::default());
        stats.folded.store(leftovers.records as u64, Ordering::Relaxed);
        stats.duplicates.store(leftovers.records.saturating_sub(leftovers.new) as u64, Ordering::Relaxed);
        let health = Arc::new(Health::new(stats.clone()));
        let sync = power.then(|| Arc::new(sync::GroupSync::new(stats.clone())));
        let mut appender = Appender::new(instance.dir.clone(), next, opts.segment_bytes, power);
        // A full disk at start is an error to the operator, not a silent down state.
        let first = appender.open_next().map_err(|e| StoreError::Io { path: journal::segment_path(&instance.dir, next), source: e })?;
        let shared = Arc::new(Shared {
            end: Mutex::new(first),
            appender: Mutex::new(appender),
            instance,
            recent: Mutex::new(VecDeque::with_capacity(LIVE_WINDOW)),
            stats,
            health,
            unfolded: Mutex::new(crate::domain::FastMap::default()),
            fold_gate: Mutex::new(()),
            sync,
            scratch: Mutex::new(None),
        });
        if let Some(s) = &shared.sync {
            sync::GroupSync::spawn(s.clone())?;
        }
        let (fold_tx, rx) = mpsc::channel();
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("usage-fold".into())
            .spawn(move || fold::run(&thread_shared, backend, wm, rx))
            .map_err(|e| StoreError::Invalid(format!("cannot start the usage fold thread: {e}")))?;
        Ok(Ledger { fold_tx, shared })
    }

    /// Appends the event to the journal; returns once it is there (power
    /// mode: synced to disk). While the ledger is down the event is held in
    /// memory and written to the journal first when a segment can be opened
    /// again; past [`PENDING_LIMIT`] such events, [`LedgerError::Overflow`].
    pub async fn record(&self, event: UsageEvent) -> Result<(), LedgerError> {
        let seq = self.append(event)?;
        match (seq, &self.shared.sync) {
            (Some(seq), Some(s)) => s.wait(seq).await,
            _ => Ok(()),
        }
    }

    /// [`Ledger::record`]; `in_flight` (requests under way, for callers that
    /// know it) is not needed by the journal: concurrent events share a group
    /// `fdatasync` in power mode however many there are.
    pub async fn record_among(&self, event: UsageEvent, _in_flight: usize) -> Result<(), LedgerError> {
        self.record(event).await
    }

    /// Records an event without waiting for a sync (for a stream whose client
    /// went away: there is no one left to answer, but the usage must still be written).
    pub fn record_detached(&self, event: UsageEvent) {
        if let Err(e) = self.append(event) {
            tracing::error!(error = %e, "a detached usage event was not journaled");
        }
    }

    /// Writes the event to the journal (or holds it while down); remembers it
    /// for live views and quota loads. `Some(seq)` in power mode: the write
    /// to wait a sync for.
    fn append(&self, event: UsageEvent) -> Result<Option<u64>, LedgerError> {
        let quota =
            event.counts_against_quota().then(|| (event.supplier_id.0, day_start_ms(event.ts.timestamp_millis()), event.usage.total()));
        let seq = self.shared.appender.lock().append(&event, &self.shared)?;
        if let Some((s, day, tokens)) = quota {
            let mut u = self.shared.unfolded.lock();
            let v = u.entry((s, day)).or_default();
            *v = v.saturating_add(tokens);
        }
        let mut r = self.shared.recent.lock();
        if r.len() == LIVE_WINDOW {
            r.pop_front();
        }
        r.push_back(event);
        Ok(seq)
    }

    /// Waits until everything journaled before this call is folded into the
    /// database and its rollups (or the fold tried and the database refused:
    /// the events then stay in the journal; while the ledger is down, held
    /// events are not in the journal yet and are not waited for).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.fold_tx.send(FoldMsg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// The most recent answered events, newest last (at most [`LIVE_WINDOW`]).
    pub fn recent(&self, n: usize) -> Vec<UsageEvent> {
        let r = self.shared.recent.lock();
        r.iter().skip(r.len().saturating_sub(n)).cloned().collect()
    }

    pub fn stats(&self) -> &LedgerStats {
        &self.shared.stats
    }

    /// Whether a new request may go ahead: refused (and counted) while the
    /// journal cannot write, so that no provider is called for usage that
    /// could not be recorded. One atomic load when the ledger is up.
    pub fn admit(&self) -> Result<(), LedgerRefusal> {
        if self.shared.health.is_down() {
            self.shared.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Err(LedgerRefusal);
        }
        Ok(())
    }

    /// Whether the ledger writes now (no refusal counted, unlike [`Ledger::admit`]).
    pub fn is_up(&self) -> bool {
        !self.shared.health.is_down()
    }

    /// Up, or down with the reason, since when and the events it holds.
    pub fn state(&self) -> LedgerState {
        self.shared.health.state()
    }

    /// Events held in memory until the journal can write them.
    pub fn pending_events(&self) -> u64 {
        self.shared.stats.pending.load(Ordering::Relaxed)
    }

    /// The clock that dates when the ledger went down (the system clock by default).
    pub fn set_clock(&self, clock: Arc<dyn Clock>) {
        self.shared.health.set_clock(clock);
    }

    /// Changes how many events may wait in memory while the ledger is down
    /// ([`PENDING_LIMIT`] by default).
    pub fn set_pending_limit(&self, n: usize) {
        self.shared.health.set_limit(n);
    }

    /// This ledger's journal instance folder (`<db>.journal/<n>`).
    pub fn journal_dir(&self) -> PathBuf {
        self.shared.instance.dir.clone()
    }

    /// This ledger's journal instance number (the watermark's key).
    pub fn journal_id(&self) -> u32 {
        self.shared.instance.id
    }

    /// Platform-quota tokens of `supplier` in the whole UTC days of
    /// `[from, to)`: what the database has folded plus what this ledger has
    /// answered and not folded yet, each event counted once.
    pub fn quota_tokens_used(
        &self,
        store: &Store,
        supplier: SupplierId,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        let _gate = self.shared.fold_gate.lock();
        let folded = store.quota_tokens_used(supplier, from, to)?;
        let (lo, hi) = (day_start_ms(from.timestamp_millis()), day_start_ms(to.timestamp_millis()));
        let pending: u64 = self
            .shared
            .unfolded
            .lock()
            .iter()
            .filter(|((s, day), _)| *s == supplier.0 && *day >= lo && *day < hi)
            .fold(0u64, |a, (_, v)| a.saturating_add(*v));
        Ok(folded.saturating_add(pending))
    }
}

/// The start of the UTC day of a Unix-milliseconds instant.
fn day_start_ms(ms: i64) -> i64 {
    ms.div_euclid(86_400_000).saturating_mul(86_400_000)
}

/// The fold backend of [`Ledger::offline`]: nothing to fold into.
struct NoLedger;

impl NoLedger {
    fn refused<T>() -> crate::store::StoreResult<T> {
        Err(StoreError::Invalid("this process serves no requests and records no usage".into()))
    }
}

impl crate::store::UsageLedger for NoLedger {
    fn append(&mut self, events: &[UsageEvent]) -> crate::store::StoreResult<usize> {
        if events.is_empty() { Ok(0) } else { Self::refused() }
    }
    fn fold_rollups(&mut self) -> crate::store::StoreResult<usize> {
        Ok(0)
    }
    fn fold_batch(&mut self, _journal: u32, events: &[UsageEvent], _to: JournalPos) -> crate::store::StoreResult<usize> {
        if events.is_empty() { Ok(0) } else { Self::refused() }
    }
    fn journal_watermark(&mut self, _journal: u32) -> crate::store::StoreResult<Option<JournalPos>> {
        Ok(None)
    }
    fn checkpoint(&mut self) -> crate::store::StoreResult<()> {
        Ok(())
    }
    fn quota_tokens_used(
        &mut self,
        _s: SupplierId,
        _from: chrono::DateTime<chrono::Utc>,
        _to: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::StoreResult<u64> {
        Ok(0)
    }
}
