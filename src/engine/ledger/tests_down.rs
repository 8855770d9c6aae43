//! The ledger's down state over a backend that fails on demand (a test
//! double of the store adapter; the real-SQLite full-disk test is
//! `tests/it/durability/ledger_down.rs`).

use super::*;
use crate::domain::{AccountId, Micros, ProviderKind, RequestType, Route, SupplierId, TokenUsage, UsageStatus};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq)]
enum Mode {
    Writes,
    /// The disk is full: nothing is written.
    Full,
    /// The commit reached the disk, then the call failed (so a retry finds the rows).
    FailsAfterWriting,
    /// The database refuses any batch with this request id (a constraint).
    Refuses(String),
}

/// A ledger backend in memory, idempotent on the event's unique key as the real one.
#[derive(Clone)]
struct Flaky {
    rows: Arc<Mutex<BTreeMap<String, UsageEvent>>>,
    mode: Arc<Mutex<Mode>>,
    appends: Arc<AtomicUsize>,
}

impl Flaky {
    fn new() -> Self {
        Flaky { rows: Arc::default(), mode: Arc::new(Mutex::new(Mode::Writes)), appends: Arc::default() }
    }
    fn set(&self, m: Mode) {
        *self.mode.lock() = m;
    }
    fn ids(&self) -> Vec<String> {
        self.rows.lock().keys().cloned().collect()
    }
}

fn full() -> StoreError {
    StoreError::Io { path: PathBuf::from("/srv/switchboard/ledger.db"), source: std::io::Error::other("database or disk is full") }
}

impl UsageLedger for Flaky {
    fn append(&mut self, events: &[UsageEvent]) -> Result<usize, StoreError> {
        self.appends.fetch_add(1, Ordering::SeqCst);
        let mode = self.mode.lock().clone();
        let insert = |rows: &mut BTreeMap<String, UsageEvent>| {
            events.iter().filter(|e| rows.insert(e.event_id.clone(), (*e).clone()).is_none()).count()
        };
        match mode {
            Mode::Writes => Ok(insert(&mut self.rows.lock())),
            Mode::Full => Err(full()),
            Mode::FailsAfterWriting => {
                insert(&mut self.rows.lock());
                Err(full())
            }
            Mode::Refuses(id) if events.iter().any(|e| e.event_id == id) => Err(StoreError::Sqlite {
                path: PathBuf::from("/srv/switchboard/ledger.db"),
                source: rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY), None),
            }),
            Mode::Refuses(_) => Ok(insert(&mut self.rows.lock())),
        }
    }
    fn fold_rollups(&mut self) -> Result<usize, StoreError> {
        Ok(0)
    }
    fn checkpoint(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    fn quota_tokens_used(&mut self, _: SupplierId, _: DateTime<Utc>, _: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(0)
    }
}

fn event(id: &str) -> UsageEvent {
    UsageEvent {
        event_id: id.to_string(),
        request_id: id.to_string(),
        idempotency_key: None,
        ts: DateTime::<Utc>::from_timestamp(1_780_000_000, 0).unwrap_or_default(),
        supplier_id: SupplierId(1),
        account_id: Some(AccountId(1)),
        provider: ProviderKind::OpenAi,
        model: "gpt-4o-mini".into(),
        request_type: RequestType::WeddingContent,
        route: Route::Platform,
        usage: TokenUsage { input: 10, output: 5, ..Default::default() },
        cost: Micros(7),
        latency_ms: 3,
        status: UsageStatus::Ok,
        error_class: None,
    }
}

/// Waits (a few seconds at most: retries come every 2 s at the latest) until the ledger is up.
async fn until_up(l: &Ledger) {
    for _ in 0..200 {
        if l.state() == LedgerState::Up {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the ledger did not come back: {:?}", l.state());
}

#[tokio::test]
async fn a_failed_write_keeps_the_event_refuses_new_requests_and_writes_it_once_when_back() {
    let db = Flaky::new();
    let l = Ledger::start_with(Box::new(db.clone()));
    l.record(event("a")).await.unwrap();
    assert!(l.admit().is_ok());

    db.set(Mode::Full);
    // The request whose provider already answered still gets its answer.
    l.record(event("b")).await.expect("held while the ledger is down");
    let LedgerState::Down(d) = l.state() else { panic!("down after a failed write") };
    assert!(d.reason.contains("disk is full") && d.reason.contains("ledger.db"), "{}", d.reason);
    assert_eq!(d.pending, 1);
    // New requests are refused (and counted) before they cost anything.
    assert_eq!(l.admit(), Err(LedgerRefusal));
    assert_eq!(l.admit(), Err(LedgerRefusal));
    assert_eq!(l.stats().refused.load(Ordering::Relaxed), 2);
    // Another event of a request under way joins the queue, in order.
    l.record_detached(event("c"));
    l.record(event("d")).await.unwrap();
    assert_eq!(l.pending_events(), 3);
    assert_eq!(db.ids(), ["a"]);

    // The writer retries with growing waits, not in a tight loop.
    let before = db.appends.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let tries = db.appends.load(Ordering::SeqCst) - before;
    assert!((1..=4).contains(&tries), "{tries} retries in a second (250 ms, then 500 ms, ...)");
    assert!(l.stats().failures.load(Ordering::Relaxed) >= 2);

    db.set(Mode::Writes);
    until_up(&l).await;
    assert_eq!(db.ids(), ["a", "b", "c", "d"], "every held event written once");
    assert_eq!(l.pending_events(), 0);
    assert_eq!(l.stats().recovered.load(Ordering::Relaxed), 3);
    assert_eq!(l.stats().committed.load(Ordering::Relaxed), 4);
    assert!(l.admit().is_ok(), "requests are let in again");
    let recent: Vec<String> = l.recent(10).into_iter().map(|e| e.event_id).collect();
    assert_eq!(recent, ["a", "b", "c", "d"]);
}

#[tokio::test]
async fn a_commit_that_reached_the_disk_before_failing_is_not_counted_twice() {
    let db = Flaky::new();
    let l = Ledger::start_with(Box::new(db.clone()));
    db.set(Mode::FailsAfterWriting);
    l.record(event("x")).await.unwrap();
    assert!(matches!(l.state(), LedgerState::Down(_)));
    db.set(Mode::Writes);
    until_up(&l).await;
    assert_eq!(db.ids(), ["x"]);
    assert_eq!(l.stats().committed.load(Ordering::Relaxed), 0, "the retry found the row already there");
    assert_eq!(l.stats().duplicates.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn past_the_limit_an_event_is_logged_refused_and_counted() {
    let db = Flaky::new();
    let l = Ledger::start_with(Box::new(db.clone()));
    l.set_pending_limit(2);
    db.set(Mode::Full);
    l.record(event("1")).await.unwrap();
    l.record(event("2")).await.unwrap();
    assert!(matches!(l.record(event("3")).await, Err(LedgerError::Overflow(2))));
    assert_eq!((l.pending_events(), l.stats().dropped.load(Ordering::Relaxed)), (2, 1));
    db.set(Mode::Writes);
    until_up(&l).await;
    assert_eq!(db.ids(), ["1", "2"]);
}

#[tokio::test]
async fn a_row_the_database_refuses_does_not_take_the_ledger_down() {
    let db = Flaky::new();
    let l = Ledger::start_with(Box::new(db.clone()));
    db.set(Mode::Refuses("bad".into()));
    assert!(matches!(l.record(event("bad")).await, Err(LedgerError::Write(_))));
    assert_eq!(l.state(), LedgerState::Up);
    l.record(event("good")).await.unwrap();
    assert_eq!(db.ids(), ["good"]);
}

#[tokio::test]
async fn a_row_refused_on_the_way_back_is_let_go_and_the_others_written() {
    let db = Flaky::new();
    let l = Ledger::start_with(Box::new(db.clone()));
    db.set(Mode::Full);
    for id in ["p", "bad", "q"] {
        l.record(event(id)).await.unwrap();
    }
    db.set(Mode::Refuses("bad".into()));
    until_up(&l).await;
    assert_eq!(db.ids(), ["p", "q"]);
    assert_eq!(l.stats().dropped.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn events_still_held_when_the_ledger_stops_get_a_last_try() {
    let db = Flaky::new();
    let l = Ledger::start_with(Box::new(db.clone()));
    db.set(Mode::Full);
    l.record(event("last")).await.unwrap();
    // The disk has room again just as the process stops, before the next retry.
    db.set(Mode::Writes);
    drop(l);
    for _ in 0..200 {
        if !db.ids().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(db.ids(), ["last"]);
}
