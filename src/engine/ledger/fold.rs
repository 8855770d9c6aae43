//! The fold: journal records into the database behind a durable watermark.
//!
//! One transaction per batch ([`UsageLedger::fold_batch`]) inserts the
//! events (deduplicated on the event id), updates every rollup and moves the
//! instance's watermark (segment, offset); only then are the segments wholly
//! behind the watermark deleted. A crash between the commit and the deletion
//! leaves segments the next fold skips (they are behind the watermark) and
//! deletes: nothing is counted twice.
//!
//! Who folds what: the live ledger folds its own instance on its `usage-fold`
//! thread; at start it first folds, under their locks, the journals of
//! processes that are gone (its own instance's leftovers included); any other
//! process that opens the database does the same with [`fold_leftovers`]. A
//! journal whose lock a live process holds is that process's to fold:
//! [`wait_for_live_folds`] waits until it has folded what was journaled.

use super::journal::{self, Instance, JournalPos};
use super::{FOLD_AFTER, FOLD_BATCH, FoldMsg, Shared};
use crate::domain::UsageEvent;
use crate::store::{SqliteLedger, Store, StoreError, UsageLedger};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How often the fold thread checkpoints the database's WAL.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// What a fold of leftover journals did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FoldReport {
    /// Journal instances folded (nobody held them).
    pub journals: usize,
    /// Records read past the watermarks.
    pub records: usize,
    /// Of them, events the database did not have yet.
    pub new: usize,
}

impl FoldReport {
    pub(super) fn add(&mut self, o: FoldReport) {
        self.journals += o.journals;
        self.records += o.records;
        self.new += o.new;
    }
}

/// Folds every journal next to `store`'s database that no live process
/// holds; returns what it folded. Every command that opens the database calls
/// it, so that a journal left by a killed process never waits on nobody.
pub fn fold_leftovers(store: &Store) -> Result<FoldReport, StoreError> {
    // On PostgreSQL the journals live where `serve` keeps them (not next to
    // a file); commands that only read or edit the catalog have none to fold.
    let Some(path) = store.sqlite_path() else { return Ok(FoldReport::default()) };
    let root = journal::root_of(path);
    let io = |e: std::io::Error| StoreError::Io { path: root.clone(), source: e };
    if journal::instances(&root).map_err(io)?.is_empty() {
        return Ok(FoldReport::default());
    }
    let mut backend = SqliteLedger::open(store)?;
    fold_others(&root, u32::MAX, &mut backend)
}

/// Folds the journals under `root` other than `own` that nobody holds.
pub(super) fn fold_others(root: &Path, own: u32, backend: &mut dyn UsageLedger) -> Result<FoldReport, StoreError> {
    let io = |e: std::io::Error| StoreError::Io { path: root.to_path_buf(), source: e };
    let mut report = FoldReport::default();
    for id in journal::instances(root).map_err(io)? {
        if id == own {
            continue;
        }
        if let Some(inst) = Instance::try_take(root, id).map_err(io)? {
            let (_, r) = fold_dead(&inst, backend)?;
            report.add(r);
        }
    }
    Ok(report)
}

/// Folds all of a journal nobody writes any more (whose lock this process
/// holds) and deletes its segments; returns its watermark.
pub(super) fn fold_dead(inst: &Instance, backend: &mut dyn UsageLedger) -> Result<(JournalPos, FoldReport), StoreError> {
    let io = |e: std::io::Error| StoreError::Io { path: inst.dir.clone(), source: e };
    let mut wm = backend.journal_watermark(inst.id)?.unwrap_or_default();
    let mut report = FoldReport::default();
    let mut scanner = journal::Scanner::default();
    loop {
        let scan = scanner.scan(&inst.dir, wm, None, FOLD_BATCH).map_err(io)?;
        note_scan(inst, &scan);
        if scan.events.is_empty() && scan.to == wm {
            break;
        }
        let new = backend.fold_batch(inst.id, &scan.events, scan.to)?;
        report.records += scan.events.len();
        report.new += new;
        wm = scan.to;
        scanner.recycle(scan);
    }
    let left = journal::segments(&inst.dir).map_err(io)?;
    if !left.is_empty() {
        hook_abort_before_delete();
        // Every segment's data is folded: nobody writes them any more.
        journal::delete_before(&inst.dir, wm.segment.saturating_add(1)).map_err(io)?;
    }
    if report.records > 0 || !left.is_empty() {
        report.journals = 1;
        tracing::info!(journal = %inst.dir.display(), records = report.records, new = report.new, "folded a usage journal left by a stopped process");
    }
    Ok((wm, report))
}

fn note_scan(inst: &Instance, scan: &journal::Scan) {
    if let Some(t) = scan.torn {
        tracing::warn!(journal = %inst.dir.display(), segment = t.segment, offset = t.offset, "a torn usage journal record (a write cut by a crash) was ignored");
    }
    for (n, why) in &scan.bad_segments {
        tracing::error!(journal = %inst.dir.display(), segment = n, reason = %why, "a usage journal segment was skipped");
    }
}

/// Waits (up to `timeout`) until the journals that live processes hold have
/// folded everything they had journaled when it was called, so that an
/// export or report started right after a burst includes every answered
/// request. Returns whether they all did.
pub fn wait_for_live_folds(store: &Store, timeout: Duration) -> Result<bool, StoreError> {
    let root = journal::root_of(store.sqlite_path_for("waiting for the usage journals to fold")?);
    let io = |e: std::io::Error| StoreError::Io { path: root.clone(), source: e };
    let deadline = Instant::now() + timeout;
    for id in journal::instances(&root).map_err(io)? {
        if !Instance::is_held(&root, id).map_err(io)? {
            continue;
        }
        let dir = root.join(id.to_string());
        let wm = store.journal_watermark(id)?.unwrap_or_default();
        let target = journal::scan(&dir, wm, None, usize::MAX).map_err(io)?;
        if target.events.is_empty() {
            continue;
        }
        loop {
            if store.journal_watermark(id)?.unwrap_or_default() >= target.to {
                break;
            }
            if Instant::now() >= deadline {
                tracing::warn!(journal = %dir.display(), "the serving process has not folded its usage journal yet; reading what is folded");
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(true)
}

/// The fold thread of a live ledger: folds its journal every [`FOLD_AFTER`]
/// and on flush, retries a down journal when due, and at the end (every
/// handle gone) folds what is left.
pub(super) fn run(shared: &Shared, mut backend: Box<dyn UsageLedger>, mut wm: JournalPos, rx: Receiver<FoldMsg>) {
    let mut flushes = Vec::new();
    let mut last_checkpoint = Instant::now();
    let mut scanner = journal::Scanner::default();
    loop {
        let wait = shared.appender.lock().retry_due().map_or(FOLD_AFTER, |d| d.saturating_duration_since(Instant::now()).min(FOLD_AFTER));
        let stop = match rx.recv_timeout(wait) {
            Ok(FoldMsg::Flush(tx)) => {
                flushes.push(tx);
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        while let Ok(FoldMsg::Flush(tx)) = rx.try_recv() {
            flushes.push(tx);
        }
        shared.appender.lock().retry_held(shared, stop);
        let wrote = fold_live(shared, backend.as_mut(), &mut scanner, &mut wm);
        if wrote && last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            if let Err(e) = backend.checkpoint() {
                tracing::warn!("usage ledger checkpoint failed (will retry): {e}");
            }
            last_checkpoint = Instant::now();
        }
        for f in flushes.drain(..) {
            let _ = f.send(());
        }
        if stop {
            break;
        }
    }
    shared.appender.lock().give_up_held();
    if let Some(s) = &shared.sync {
        s.stop();
    }
    // Every handle is gone, so nothing more is written: when all of it is
    // folded, the last segment goes too (the next owner of this instance
    // numbers its segments past the watermark).
    if *shared.end.lock() <= wm
        && let Err(e) = journal::delete_before(&shared.instance.dir, wm.segment.saturating_add(1))
    {
        tracing::warn!(error = %e, journal = %shared.instance.dir.display(), "cannot delete the folded usage journal");
    }
}

/// Folds the live journal up to the writer's end; returns whether it wrote.
/// A failure leaves the watermark where it was (the journal keeps the events)
/// and is retried on the next round.
fn fold_live(shared: &Shared, backend: &mut dyn UsageLedger, scanner: &mut journal::Scanner, wm: &mut JournalPos) -> bool {
    let inst = &shared.instance;
    let mut wrote = false;
    loop {
        let end = *shared.end.lock();
        if end <= *wm {
            return wrote;
        }
        let scan = match scanner.scan(&inst.dir, *wm, Some(end), FOLD_BATCH) {
            Ok(s) => s,
            Err(e) => {
                shared.stats.fold_failures.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, journal = %inst.dir.display(), "cannot read the usage journal (will retry)");
                return wrote;
            }
        };
        note_scan(inst, &scan);
        if scan.to == *wm {
            scanner.recycle(scan);
            return wrote;
        }
        let gate = shared.fold_gate.lock();
        match backend.fold_batch(inst.id, &scan.events, scan.to) {
            Ok(new) => {
                let n = scan.events.len();
                shared.stats.folded.fetch_add(n as u64, Relaxed);
                shared.stats.duplicates.fetch_add(n.saturating_sub(new) as u64, Relaxed);
                shared.stats.batches.fetch_add(1, Relaxed);
                take_off_unfolded(shared, &scan.events);
                *wm = scan.to;
                wrote = true;
            }
            Err(e) => {
                shared.stats.fold_failures.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, "usage events not folded into the database yet (the journal keeps them; will retry)");
                return wrote;
            }
        }
        drop(gate);
        if let Err(e) = journal::delete_before(&inst.dir, wm.segment) {
            tracing::warn!(error = %e, journal = %inst.dir.display(), "cannot delete folded usage journal segments (will retry)");
        }
        let full = scan.events.len() >= FOLD_BATCH;
        scanner.recycle(scan);
        if !full {
            return wrote;
        }
    }
}

/// Takes folded events off the quota tallies of unfolded usage.
fn take_off_unfolded(shared: &Shared, events: &[UsageEvent]) {
    let mut u = shared.unfolded.lock();
    for e in events.iter().filter(|e| e.counts_against_quota()) {
        let key = (e.supplier_id.0, super::day_start_ms(e.ts.timestamp_millis()));
        if let Some(v) = u.get_mut(&key) {
            *v = v.saturating_sub(e.usage.total());
            if *v == 0 {
                u.remove(&key);
            }
        }
    }
}

/// Test hook (feature `test-hooks`): with `SWITCHBOARD_HOOK_ABORT_BEFORE_DELETE`
/// set, the process aborts between a fold's commit and the deletion of the
/// segments it folded.
fn hook_abort_before_delete() {
    #[cfg(feature = "test-hooks")]
    if std::env::var_os("SWITCHBOARD_HOOK_ABORT_BEFORE_DELETE").is_some() {
        eprintln!("test hook: aborting between the fold's commit and the segment deletion");
        std::process::abort();
    }
}
