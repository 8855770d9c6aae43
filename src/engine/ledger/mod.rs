//! The usage ledger writer: one OS thread owns a SQLite connection and
//! group-commits the usage events that requests send it. A request's
//! `record` returns only once its event is committed (so a response never
//! completes before its usage is durable); writes are idempotent on the
//! request id. When no other request is writing, a request commits its own
//! event on its own thread (a hand-off to the writer thread and back costs two
//! thread wake-ups, more than the commit itself); under concurrency events go
//! to the writer thread, which commits everything queued in one transaction.
//! When the requests under way say that more events are on their way, the
//! thread waits for them a moment ([`COMMIT_DELAY`], as PostgreSQL's
//! `commit_delay` with `commit_siblings`) so that one commit serves many
//! requests: a commit costs tens of microseconds whatever its size.
//! The commit a request waits for holds only event rows: the
//! thread folds them into the rollups a moment later ([`FOLD_AFTER`], or
//! [`FOLD_BATCH`] events, on [`Ledger::flush`] and when it stops), off every
//! request's path. The last 1,000 committed events stay in memory for live views.
//!
//! When the database cannot write, the ledger goes down ([`health`]): new
//! requests are refused before any provider call ([`Ledger::admit`]), the
//! events of requests already under way are kept in memory and answered as
//! recorded, and the writer thread writes them, exactly once, when the
//! database takes writes again.
#![deny(clippy::unwrap_used, clippy::expect_used)] // the request path: no panics on what clients or providers send

mod health;
mod recover;
#[cfg(test)]
mod tests_down;

pub use health::{LedgerDown, LedgerRefusal, LedgerState, PENDING_LIMIT, RETRY_AFTER_SECS, RETRY_FIRST, RETRY_MAX};

use crate::domain::{Clock, UsageEvent};
use crate::store::{LedgerSync, SqliteLedger, Store, StoreError, UsageLedger, WalCheckpointer};
use health::{Health, log_dropped};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How many recent events live views can see.
pub const LIVE_WINDOW: usize = 1_000;
/// Most events written in one transaction.
const MAX_BATCH: usize = 2_048;
/// How long committed events may wait before they are folded into the rollups.
pub const FOLD_AFTER: Duration = Duration::from_millis(100);
/// Fold at once when this many committed events wait.
pub const FOLD_BATCH: usize = 8_192;
/// How long the writer thread waits for the events of requests under way
/// before it commits the ones it has (see [`Ledger::record_among`]).
pub const COMMIT_DELAY: Duration = Duration::from_micros(500);

// Events are nearly every message: boxing them would allocate once per event.
#[allow(clippy::large_enum_variant)]
enum Msg {
    /// An event, whom to tell when it is committed, and how many requests
    /// were under way when it was sent (itself included).
    Record(UsageEvent, Option<oneshot::Sender<Result<(), LedgerError>>>, usize),
    Flush(oneshot::Sender<()>),
    /// An inline commit left events to fold: re-read the fold deadline.
    Nudge,
}

/// Cheap to clone; the writer thread stops when the last handle is dropped.
#[derive(Clone)]
pub struct Ledger {
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
    recent: Arc<Mutex<VecDeque<UsageEvent>>>,
    stats: Arc<LedgerStats>,
    health: Arc<Health>,
}

/// What the writer thread and the inline commits share.
struct Shared {
    /// The connection and its bookkeeping; whoever holds it commits.
    writer: Mutex<Writer>,
    /// `record` calls under way (inline or queued).
    pending: AtomicUsize,
    /// Whether a lone request commits on its own thread (only when commits
    /// do not wait for the disk).
    inline: bool,
    /// [`COMMIT_DELAY`], in microseconds, unless changed.
    commit_delay_us: std::sync::atomic::AtomicU64,
    /// Events sent to the writer thread so far (counted after each send).
    arrivals: AtomicUsize,
    /// While the writer thread waits for more events: the count of
    /// `arrivals` at which it has enough and is to be woken (0: not waiting).
    wake_at: AtomicUsize,
    /// The writer thread, for waking it.
    thread: std::sync::OnceLock<std::thread::Thread>,
}

impl Shared {
    /// Counts an event just sent to the writer thread, and wakes the thread
    /// if this is the event it was waiting for: one wake-up per commit,
    /// however many events the commit gathers.
    fn arrived(&self) {
        let n = self.arrivals.fetch_add(1, Ordering::SeqCst).wrapping_add(1);
        let want = self.wake_at.load(Ordering::SeqCst);
        if want != 0 && reached(n, want) && self.wake_at.compare_exchange(want, 0, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
            self.wake_writer();
        }
    }

    fn wake_writer(&self) {
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }
}

/// Takes a `record` call off [`Shared::pending`] however it ends.
struct PendingGuard<'a>(&'a AtomicUsize);

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn lock(w: &Mutex<Writer>) -> parking_lot::MutexGuard<'_, Writer> {
    w.lock()
}

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct LedgerStats {
    pub committed: std::sync::atomic::AtomicU64,
    pub duplicates: std::sync::atomic::AtomicU64,
    pub batches: std::sync::atomic::AtomicU64,
    pub failures: std::sync::atomic::AtomicU64,
    /// Requests refused because the ledger was down.
    pub refused: std::sync::atomic::AtomicU64,
    /// Events let go of (logged in full) because too many were pending.
    pub dropped: std::sync::atomic::AtomicU64,
    /// Events written after the ledger came back (they waited in memory).
    pub recovered: std::sync::atomic::AtomicU64,
    /// Events held in memory now, while the ledger is (or was) down (a gauge).
    pub pending: std::sync::atomic::AtomicU64,
    /// Whether the ledger cannot write now (see [`Ledger::state`]).
    pub down: std::sync::atomic::AtomicBool,
    /// Events folded into the rollups.
    pub folded: std::sync::atomic::AtomicU64,
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

impl Ledger {
    /// Starts the writer thread on its own connection to `store`'s file.
    pub fn start(store: &Store) -> Result<Ledger, StoreError> {
        Self::start_synced(store, LedgerSync::Normal)
    }

    /// [`Ledger::start`] with the given durability of each commit.
    pub fn start_synced(store: &Store, sync: LedgerSync) -> Result<Ledger, StoreError> {
        let ledger = SqliteLedger::open_with(store, sync)?;
        let bulk = WalCheckpointer::open(store)?;
        // A commit that syncs to disk must not run on a request's (async) thread.
        Ok(Self::spawn(Box::new(ledger), sync == LedgerSync::Normal, Some(bulk)))
    }

    /// Starts the writer over any ledger backend (every commit on the writer thread).
    pub fn start_with(backend: Box<dyn UsageLedger>) -> Ledger {
        Self::spawn(backend, false, None)
    }

    /// `inline`: whether a lone request may commit on its own thread; `bulk`:
    /// a second connection that checkpoints while commits go on.
    fn spawn(backend: Box<dyn UsageLedger>, inline: bool, bulk: Option<WalCheckpointer>) -> Ledger {
        let (tx, rx) = mpsc::channel::<Msg>();
        let recent = Arc::new(Mutex::new(VecDeque::with_capacity(LIVE_WINDOW)));
        let stats = Arc::new(LedgerStats::default());
        let health = Arc::new(Health::new(stats.clone()));
        let writer = Writer {
            backend,
            recent: recent.clone(),
            stats: stats.clone(),
            unfolded: 0,
            fold_due: None,
            health: health.clone(),
            pending: VecDeque::new(),
            retry: None,
        };
        let shared = Arc::new(Shared {
            writer: Mutex::new(writer),
            pending: AtomicUsize::new(0),
            inline,
            commit_delay_us: std::sync::atomic::AtomicU64::new(COMMIT_DELAY.as_micros() as u64),
            arrivals: AtomicUsize::new(0),
            wake_at: AtomicUsize::new(0),
            thread: std::sync::OnceLock::new(),
        });
        let thread_shared = shared.clone();
        // At start, not on a request: without its writer thread there is no ledger.
        #[allow(clippy::expect_used)]
        std::thread::Builder::new()
            .name("usage-ledger".into())
            .spawn(move || run(&thread_shared, rx))
            .expect("spawn the usage ledger thread");
        let weak = Arc::downgrade(&shared);
        if let Err(e) = std::thread::Builder::new().name("usage-checkpoint".into()).spawn(move || checkpoints(&weak, bulk)) {
            // The WAL then grows until another connection checkpoints it.
            tracing::warn!("no checkpoint thread for the usage ledger: {e}");
        }
        Ledger { tx, shared, recent, stats, health }
    }

    /// Records an event and waits until it is committed (or, while the
    /// ledger is down, kept in memory to be written when it is back; past
    /// [`PENDING_LIMIT`] such events, [`LedgerError::Overflow`]).
    ///
    /// When it is the only write under way (and commits do not wait for the
    /// disk), the event is committed right here, on the calling thread: a
    /// one-row SQLite commit into the WAL (no fsync)
    /// costs tens of microseconds, about what parsing the request costs, and
    /// less than waking the writer thread and being woken by it.
    pub async fn record(&self, event: UsageEvent) -> Result<(), LedgerError> {
        self.record_among(event, 1).await
    }

    /// [`Ledger::record`], where the caller knows how many requests are under
    /// way (`in_flight`, its own included) and so will write soon.
    ///
    /// - At most one: the event is committed on the calling thread if no
    ///   other write is under way.
    /// - More: the event goes to the writer thread, which waits up to the
    ///   commit delay for as many events as requests were under way, and
    ///   commits them together. A request spends most of its time waiting on
    ///   its provider, so at 32 concurrent requests the ledger is often
    ///   momentarily idle; committing each event as it comes then costs a
    ///   whole commit for every few requests, and most of the ledger's CPU.
    pub async fn record_among(&self, event: UsageEvent, in_flight: usize) -> Result<(), LedgerError> {
        let _pending = PendingGuard(&self.shared.pending);
        if self.shared.pending.fetch_add(1, Ordering::AcqRel) == 0
            && in_flight <= 1
            && self.shared.inline
            && let Some(mut w) = self.shared.writer.try_lock()
        {
            let had_due = w.next_due().is_some();
            let res = w.commit(&mut vec![event]);
            let nudge = !had_due && w.next_due().is_some();
            drop(w);
            if nudge {
                // The writer thread may be asleep without a deadline.
                let _ = self.tx.send(Msg::Nudge);
            }
            return res;
        }
        let (tx, rx) = oneshot::channel();
        self.tx.send(Msg::Record(event, Some(tx), in_flight)).map_err(|_| LedgerError::Stopped)?;
        self.shared.arrived();
        match rx.await {
            Ok(res) => res,
            Err(_) => Err(LedgerError::Stopped),
        }
    }

    /// Sets how long the writer thread waits for the events of other requests
    /// under way before committing ([`COMMIT_DELAY`] by default; zero commits
    /// whatever is queued at once).
    pub fn set_commit_delay(&self, delay: Duration) {
        self.shared.commit_delay_us.store(delay.as_micros().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    /// Records an event without waiting (for a stream whose client went away:
    /// there is no one left to answer, but the usage must still be written).
    pub fn record_detached(&self, event: UsageEvent) {
        if self.tx.send(Msg::Record(event, None, 1)).is_ok() {
            self.shared.arrived();
        }
    }

    /// Waits until everything sent before this call is committed and folded
    /// into the rollups (while the ledger is down: until it is held in
    /// memory, to be written when the ledger is back; see [`Ledger::state`]).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            // A flush ends the writer thread's wait for more events.
            self.shared.wake_writer();
            let _ = rx.await;
        }
    }

    /// The most recent committed events, newest last (at most [`LIVE_WINDOW`]).
    pub fn recent(&self, n: usize) -> Vec<UsageEvent> {
        let r = self.recent.lock();
        r.iter().skip(r.len().saturating_sub(n)).cloned().collect()
    }

    pub fn stats(&self) -> &LedgerStats {
        &self.stats
    }

    /// Whether a new request may go ahead: refused (and counted) while the
    /// ledger cannot write, so that no provider is called for usage that
    /// could not be recorded. One atomic load when the ledger is up.
    pub fn admit(&self) -> Result<(), LedgerRefusal> {
        if self.health.is_down() {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Err(LedgerRefusal);
        }
        Ok(())
    }

    /// Whether the ledger writes now (no refusal counted, unlike [`Ledger::admit`]).
    pub fn is_up(&self) -> bool {
        !self.health.is_down()
    }

    /// Up, or down with the reason, since when and the events it holds.
    pub fn state(&self) -> LedgerState {
        self.health.state()
    }

    /// Events held in memory until the ledger can write them.
    pub fn pending_events(&self) -> u64 {
        self.stats.pending.load(Ordering::Relaxed)
    }

    /// The clock that dates when the ledger went down (the system clock by default).
    pub fn set_clock(&self, clock: Arc<dyn Clock>) {
        self.health.set_clock(clock);
    }

    /// Changes how many events may wait in memory while the ledger is down
    /// ([`PENDING_LIMIT`] by default).
    pub fn set_pending_limit(&self, n: usize) {
        self.health.set_limit(n);
    }
}

/// The writer thread's state.
struct Writer {
    backend: Box<dyn UsageLedger>,
    recent: Arc<Mutex<VecDeque<UsageEvent>>>,
    stats: Arc<LedgerStats>,
    /// Committed events not folded into the rollups yet (as far as this writer knows).
    unfolded: usize,
    /// When the oldest of them must be folded.
    fold_due: Option<Instant>,
    health: Arc<Health>,
    /// While the ledger is down: the events to write when it is back, oldest first.
    pending: VecDeque<UsageEvent>,
    /// While the ledger is down: when to try again, and the last wait.
    retry: Option<(Instant, Duration)>,
}

/// How often the WAL is copied into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// The checkpoint thread: twice a second, the bulk of the WAL on its own
/// connection while commits go on, then the rest on the writer's connection
/// between two commits, which completes the checkpoint so that the next
/// commit starts the WAL from its beginning (a checkpoint that only ever runs
/// alongside commits never catches up, and the WAL grew by about 50 MB a
/// second under load). Ends when the ledger is gone.
fn checkpoints(shared: &std::sync::Weak<Shared>, bulk: Option<WalCheckpointer>) {
    loop {
        std::thread::sleep(CHECKPOINT_EVERY);
        let Some(shared) = shared.upgrade() else { return };
        // Twice: the second pass copies and syncs only what the first one's
        // own sync let accumulate, so the part under the writer's lock is small.
        for _ in 0..2 {
            if let Some(b) = &bulk
                && let Err(e) = b.checkpoint()
            {
                tracing::warn!("usage ledger checkpoint failed (will retry): {e}");
            }
        }
        if let Err(e) = lock(&shared.writer).backend.checkpoint() {
            tracing::warn!("usage ledger checkpoint failed (will retry): {e}");
        }
    }
}

/// The writer thread: commits what requests queue, in batches, and folds.
fn run(shared: &Shared, rx: mpsc::Receiver<Msg>) {
    let _ = shared.thread.set(std::thread::current());
    // Events taken off the channel so far (compared with `Shared::arrivals`).
    let taken = std::cell::Cell::new(0usize);
    let mut batch: Vec<UsageEvent> = Vec::with_capacity(MAX_BATCH);
    let mut acks: Vec<oneshot::Sender<Result<(), LedgerError>>> = Vec::with_capacity(MAX_BATCH);
    let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        let due = lock(&shared.writer).next_due();
        let first = match due {
            None => match rx.recv() {
                Ok(m) => m,
                Err(_) => break,
            },
            Some(due) => match rx.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    lock(&shared.writer).tick();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            },
        };
        // Take everything already queued: one transaction for all of it.
        let expect = std::cell::Cell::new(0usize);
        let mut take = |msg: Msg, batch: &mut Vec<UsageEvent>, flushes: &mut Vec<oneshot::Sender<()>>| match msg {
            Msg::Record(e, ack, in_flight) => {
                taken.set(taken.get().wrapping_add(1));
                batch.push(e);
                if let Some(a) = ack {
                    acks.push(a);
                }
                expect.set(expect.get().max(in_flight));
            }
            Msg::Flush(f) => flushes.push(f),
            Msg::Nudge => {}
        };
        take(first, &mut batch, &mut flushes);
        while batch.len() < MAX_BATCH
            && let Ok(msg) = rx.try_recv()
        {
            take(msg, &mut batch, &mut flushes);
        }
        // Then wait a moment for the events the other requests under way will send.
        let delay = Duration::from_micros(shared.commit_delay_us.load(Ordering::Relaxed));
        let until = Instant::now() + delay;
        // Parked rather than blocked on the channel (a thread blocked on it
        // is woken by every event, two system calls each) or sleeping in short
        // steps (a context switch each): the sender of the last event it
        // waits for wakes it (`Shared::arrived`), or the delay ends.
        'gather: while wait_for_more(batch.len(), expect.get(), flushes.is_empty(), delay) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let need = expect.get().min(MAX_BATCH) - batch.len();
            let want = taken.get().wrapping_add(need).max(1);
            shared.wake_at.store(want, Ordering::SeqCst);
            if !reached(shared.arrivals.load(Ordering::SeqCst), want) {
                std::thread::park_timeout(left);
            }
            shared.wake_at.store(0, Ordering::SeqCst);
            loop {
                match rx.try_recv() {
                    Ok(msg) => take(msg, &mut batch, &mut flushes),
                    Err(mpsc::TryRecvError::Empty) => break,
                    // Every handle is gone: nothing more can come.
                    Err(mpsc::TryRecvError::Disconnected) => break 'gather,
                }
                if batch.len() >= MAX_BATCH {
                    break;
                }
            }
        }
        let mut w = lock(&shared.writer);
        let res = w.commit(&mut batch);
        if (!flushes.is_empty() || w.unfolded >= FOLD_BATCH) && w.retry.is_none() {
            w.fold();
        }
        drop(w);
        for a in acks.drain(..) {
            let _ = a.send(res.clone());
        }
        for f in flushes.drain(..) {
            let _ = f.send(());
        }
    }
    // The last handle is gone: leave the rollups current, and give the
    // events still waiting a last chance (then the log has them).
    let mut w = lock(&shared.writer);
    if w.retry.is_some() {
        w.retry_pending();
        for e in w.pending.drain(..) {
            log_dropped(&e, "the ledger stopped while the database could not write");
        }
    }
    w.fold();
}

/// Whether the writer thread should wait for more events before committing
/// `have`: while fewer than the `expect`ed requests have sent theirs, nobody
/// waits for a flush, and waiting is on at all.
fn wait_for_more(have: usize, expect: usize, no_flush: bool, delay: Duration) -> bool {
    !delay.is_zero() && no_flush && have < expect.min(MAX_BATCH)
}

/// Whether the running count `n` has reached `want`, both counted modulo
/// `usize::MAX + 1` (so the comparison survives the counters wrapping).
fn reached(n: usize, want: usize) -> bool {
    n.wrapping_sub(want) < usize::MAX / 2
}

impl Writer {
    /// When the writer thread has something to do without a message: retry
    /// the pending events while down, else fold.
    fn next_due(&self) -> Option<Instant> {
        match self.retry {
            Some((due, _)) => Some(due),
            None => self.fold_due,
        }
    }

    /// Does what [`Writer::next_due`] said was due.
    fn tick(&mut self) {
        match self.retry {
            Some((due, _)) if due <= Instant::now() => self.retry_pending(),
            Some(_) => {}
            None => self.fold(),
        }
    }

    /// Commits `batch` (emptying it) and remembers the events for live views.
    /// While the ledger is down, or when this write takes it down, the events
    /// are kept to be written later and the call succeeds (unless too many
    /// wait already).
    fn commit(&mut self, batch: &mut Vec<UsageEvent>) -> Result<(), LedgerError> {
        use std::sync::atomic::Ordering::Relaxed;
        if batch.is_empty() {
            return Ok(());
        }
        if self.retry.is_some() {
            return self.hold(batch);
        }
        match self.backend.append(batch) {
            Ok(new) => {
                self.committed(batch, new);
                Ok(())
            }
            Err(e) if e.is_constraint() => {
                // A row the database refuses: the database itself is fine.
                self.stats.failures.fetch_add(1, Relaxed);
                tracing::error!(error = %e, events = batch.len(), "usage ledger refused a write");
                batch.clear();
                Err(LedgerError::Write(e.to_string()))
            }
            Err(e) => {
                self.stats.failures.fetch_add(1, Relaxed);
                tracing::error!(error = %e, events = batch.len(),
                    "usage ledger write failed: the ledger is down, new requests are refused until it writes again");
                self.health.went_down(e.to_string());
                self.retry = Some((Instant::now() + RETRY_FIRST, RETRY_FIRST));
                self.hold(batch)
            }
        }
    }

    /// Bookkeeping of a successful append of `batch` (`new` of them new).
    fn committed(&mut self, batch: &mut Vec<UsageEvent>, new: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        self.stats.committed.fetch_add(new as u64, Relaxed);
        self.stats.duplicates.fetch_add(batch.len().saturating_sub(new) as u64, Relaxed);
        self.stats.batches.fetch_add(1, Relaxed);
        if new > 0 {
            self.unfolded += new;
            self.fold_due.get_or_insert_with(|| Instant::now() + FOLD_AFTER);
        }
        let mut r = self.recent.lock();
        for e in batch.drain(..) {
            if r.len() == LIVE_WINDOW {
                r.pop_front();
            }
            r.push_back(e);
        }
    }

    /// Folds committed events into the rollups. On failure the events stay
    /// past the watermark (nothing is lost) and the fold is retried later.
    fn fold(&mut self) {
        match self.backend.fold_rollups() {
            Ok(n) => {
                self.stats.folded.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                self.unfolded = 0;
                self.fold_due = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "usage rollups not folded yet (will retry)");
                self.fold_due = Some(Instant::now() + FOLD_AFTER * 10);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_reaches_what_is_wanted_across_the_wrap() {
        assert!(reached(5, 5) && reached(6, 5));
        assert!(!reached(4, 5));
        assert!(reached(2, usize::MAX - 1), "the count wrapped past what was wanted");
        assert!(!reached(usize::MAX - 2, 1), "what is wanted lies past the wrap");
    }

    #[test]
    fn the_writer_waits_only_for_expected_events_without_a_flush() {
        let d = Duration::from_micros(500);
        assert!(wait_for_more(3, 8, true, d));
        assert!(!wait_for_more(8, 8, true, d));
        assert!(!wait_for_more(3, 8, false, d), "a flush ends the wait");
        assert!(!wait_for_more(3, 8, true, Duration::ZERO), "no delay, no wait");
        assert!(!wait_for_more(MAX_BATCH, MAX_BATCH + 5, true, d), "a full batch commits");
    }
}
