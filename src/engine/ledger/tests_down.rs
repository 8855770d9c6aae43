//! The ledger over real files: a database that cannot write only delays the
//! fold (requests go on, the journal keeps the events, the fold catches up
//! exactly once); segments rotate and are deleted once folded; a restart
//! folds what the journal kept. (The full-disk test of the journal itself is
//! `tests/it/durability/ledger_down.rs`.)

use super::*;
use crate::domain::{Micros, ProviderKind, RequestType, Route, TokenUsage, UsageStatus};
use chrono::{DateTime, TimeZone, Utc};
use std::sync::atomic::AtomicU8;

const WRITES: u8 = 0;
/// The fold's transaction fails before anything is written.
const FULL: u8 = 1;
/// The fold's transaction commits, then the call reports a failure.
const FAILS_AFTER_COMMIT: u8 = 2;

/// The real SQLite backend, failing on demand.
struct Flaky {
    inner: SqliteLedger,
    mode: Arc<AtomicU8>,
}

fn full(path: &Path) -> StoreError {
    StoreError::Io { path: path.to_path_buf(), source: std::io::Error::other("database or disk is full") }
}

impl UsageLedger for Flaky {
    fn append(&mut self, events: &[UsageEvent]) -> Result<usize, StoreError> {
        self.inner.append(events)
    }
    fn fold_rollups(&mut self) -> Result<usize, StoreError> {
        self.inner.fold_rollups()
    }
    fn fold_batch(&mut self, journal: u32, events: &[UsageEvent], to: JournalPos) -> Result<usize, StoreError> {
        match self.mode.load(Ordering::SeqCst) {
            FULL => Err(full(Path::new("flaky.db"))),
            FAILS_AFTER_COMMIT => {
                self.inner.fold_batch(journal, events, to)?;
                Err(full(Path::new("flaky.db")))
            }
            _ => self.inner.fold_batch(journal, events, to),
        }
    }
    fn journal_watermark(&mut self, journal: u32) -> Result<Option<JournalPos>, StoreError> {
        self.inner.journal_watermark(journal)
    }
    fn checkpoint(&mut self) -> Result<(), StoreError> {
        self.inner.checkpoint()
    }
    fn quota_tokens_used(&mut self, s: SupplierId, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<u64, StoreError> {
        self.inner.quota_tokens_used(s, from, to)
    }
}

fn event(id: &str, supplier: SupplierId) -> UsageEvent {
    UsageEvent {
        saved: crate::domain::Micros::ZERO,
        event_id: id.into(),
        request_id: format!("req-{id}"),
        idempotency_key: None,
        ts: Utc.with_ymd_and_hms(2026, 6, 6, 12, 0, 0).unwrap(),
        supplier_id: supplier,
        account_id: None,
        provider: ProviderKind::OpenAi,
        model: "gpt-4o-mini".into(),
        request_type: RequestType::EmailTemplate,
        route: Route::Platform,
        usage: TokenUsage { input: 100, output: 20, ..Default::default() },
        cost: Micros(7),
        latency_ms: 5,
        status: UsageStatus::Ok,
        error_class: None,
    }
}

struct Env {
    _dir: tempfile::TempDir,
    store: Store,
    supplier: SupplierId,
}

fn env() -> Env {
    use crate::domain::{AiMode, NewSupplier, Tier, VendorType};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("ledger.db")).unwrap();
    let s = store
        .insert_supplier(
            &NewSupplier::new("Journal Florist", VendorType::Florist, Tier::Enterprise, AiMode::Platform),
            Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap(),
        )
        .unwrap();
    Env { _dir: dir, store, supplier: s.id }
}

fn flaky(e: &Env, opts: LedgerOptions) -> (Ledger, Arc<AtomicU8>) {
    let mode = Arc::new(AtomicU8::new(WRITES));
    let backend = Flaky { inner: SqliteLedger::open(&e.store).unwrap(), mode: mode.clone() };
    (Ledger::start_with(Box::new(backend), &journal::root_of(e.store.sqlite_path().unwrap()), opts).unwrap(), mode)
}

fn rolled(store: &Store) -> i64 {
    store.with_conn(|c| c.query_row("SELECT coalesce(sum(requests), 0) FROM usage_daily", [], |r| r.get(0))).unwrap()
}

/// Waits until no process (thread of this one) holds journal instance `id`.
fn wait_released(store: &Store, id: u32) {
    let root = journal::root_of(store.sqlite_path().unwrap());
    for _ in 0..500 {
        if !journal::Instance::is_held(&root, id).unwrap() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("journal instance {id} is still held");
}

#[tokio::test]
async fn a_database_that_cannot_write_delays_the_fold_and_refuses_nothing() {
    let e = env();
    let (l, mode) = flaky(&e, LedgerOptions::default());
    let month = (Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap(), Utc.with_ymd_and_hms(2026, 7, 1, 0, 0, 0).unwrap());
    mode.store(FULL, Ordering::SeqCst);
    for i in 0..5 {
        l.record(event(&format!("e{i}"), e.supplier)).await.unwrap();
    }
    l.flush().await;
    assert!(l.is_up() && l.admit().is_ok(), "SQLite trouble does not take the ledger down");
    assert_eq!(e.store.count_usage_events().unwrap(), 0);
    assert!(l.stats().fold_failures.load(Ordering::Relaxed) >= 1);
    assert_eq!(l.recent(10).len(), 5, "live views show what was answered");
    assert_eq!(l.quota_tokens_used(&e.store, e.supplier, month.0, month.1).unwrap(), 600, "quotas count the journaled events");

    // The commit reaches the disk but the call fails: the retry finds the rows.
    mode.store(FAILS_AFTER_COMMIT, Ordering::SeqCst);
    l.flush().await;
    assert_eq!(e.store.count_usage_events().unwrap(), 5);
    mode.store(WRITES, Ordering::SeqCst);
    l.record(event("e5", e.supplier)).await.unwrap();
    l.flush().await;
    assert_eq!(e.store.count_usage_events().unwrap(), 6);
    assert_eq!(rolled(&e.store), 6, "every event is in the rollups once");
    assert_eq!(l.stats().duplicates.load(Ordering::Relaxed), 5, "the replayed records were not counted again");
    assert_eq!(l.quota_tokens_used(&e.store, e.supplier, month.0, month.1).unwrap(), 720, "folded events are not counted twice");
}

#[tokio::test]
async fn segments_rotate_and_are_deleted_once_folded() {
    let e = env();
    let (l, _) = flaky(&e, LedgerOptions { segment_bytes: 2_048, ..LedgerOptions::default() });
    for i in 0..60 {
        l.record(event(&format!("r{i}"), e.supplier)).await.unwrap();
    }
    let dir = l.journal_dir();
    assert!(journal::segments(&dir).unwrap().len() > 3, "60 records do not fit in one 2 KiB segment");
    l.flush().await;
    assert_eq!(e.store.count_usage_events().unwrap(), 60);
    let left = journal::segments(&dir).unwrap();
    assert_eq!(left.len(), 1, "only the segment being written is left: {left:?}");
    let wm = e.store.journal_watermark(l.journal_id()).unwrap().unwrap();
    assert_eq!(wm.segment, left[0], "the watermark is in the segment being written");
}

#[tokio::test]
async fn a_restart_folds_what_the_journal_kept_while_the_database_could_not_write() {
    let e = env();
    let (l, mode) = flaky(&e, LedgerOptions::default());
    mode.store(FULL, Ordering::SeqCst);
    for i in 0..3 {
        l.record(event(&format!("k{i}"), e.supplier)).await.unwrap();
    }
    let id = l.journal_id();
    drop(l);
    wait_released(&e.store, id);
    assert_eq!(e.store.count_usage_events().unwrap(), 0);
    // Another command opens the database: it folds the journal nobody holds.
    let r = fold_leftovers(&e.store).unwrap();
    assert_eq!((r.journals, r.records, r.new), (1, 3, 3));
    assert_eq!(e.store.count_usage_events().unwrap(), 3);
    assert_eq!(rolled(&e.store), 3);
    assert_eq!(fold_leftovers(&e.store).unwrap().records, 0, "nothing is folded twice");
    assert!(journal::segments(&journal::root_of(e.store.sqlite_path().unwrap()).join(id.to_string())).unwrap().is_empty());
}

#[tokio::test]
async fn two_ledgers_on_one_database_keep_their_own_journals() {
    let e = env();
    let a = Ledger::start(&e.store).unwrap();
    let b = Ledger::start(&e.store).unwrap();
    assert_ne!(a.journal_id(), b.journal_id());
    a.record(event("from-a", e.supplier)).await.unwrap();
    b.record(event("from-b", e.supplier)).await.unwrap();
    // A reader elsewhere waits for the live folds instead of folding them.
    assert!(wait_for_live_folds(&e.store, Duration::from_secs(10)).unwrap());
    assert_eq!(e.store.count_usage_events().unwrap(), 2);
    assert_eq!(fold_leftovers(&e.store).unwrap().journals, 0, "held journals are not folded by others");
}
