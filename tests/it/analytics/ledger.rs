//! The usage ledger: folding into the rollups exactly once, the journal's fold and the WAL's bound.

use super::*;

/// The ledger's request path commits only event rows; the rollups follow
/// behind a watermark. Whatever order commits, folds and stops come in, each
/// event is counted in every rollup exactly once, and quota figures are exact
/// before the fold.
#[test]
fn ledger_events_are_folded_into_the_rollups_exactly_once() {
    use switchboard::store::{SqliteLedger, UsageLedger};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("fold.db")).unwrap();
    let now = Utc::now();
    let a = store.insert_supplier(&NewSupplier::new("Fold Photo", VendorType::Photographer, Tier::Starter, AiMode::Platform), now).unwrap();
    let b = store.insert_supplier(&NewSupplier::new("Fold Venue", VendorType::Venue, Tier::Scale, AiMode::Client), now).unwrap();
    let t0 = Utc.with_ymd_and_hms(2025, 6, 29, 22, 0, 0).unwrap();
    let routes = [Route::Platform, Route::Client, Route::Failover];
    let mut events: Vec<UsageEvent> = (0..60)
        .map(|i| {
            let s = if i % 3 == 0 { b.id } else { a.id };
            event(&format!("fold-{i}"), t0 + Duration::minutes(7 * i), s, routes[i as usize % 3], 1_000 + i as u64)
        })
        .collect();
    events[5].status = UsageStatus::Error;
    let c = Connection::open(dir.path().join("fold.db")).unwrap();
    let tables = ["usage_daily", "usage_daily_dims", "usage_monthly_supplier", "usage_supplier_month", "usage_supplier_day"];
    let dumps = || tables.iter().map(|t| dump(&c, t)).collect::<Vec<_>>();
    let june = (Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap(), Utc.with_ymd_and_hms(2025, 7, 1, 0, 0, 0).unwrap());
    let quota_raw = |s: SupplierId| {
        raw_totals(
            &c,
            &format!("supplier_id = {} AND ts >= {} AND ts < {} AND route IN (0, 2)", s.0, ms(day("2025-06-01")), ms(day("2025-07-01"))),
        )
        .1
    };

    // Committed, not folded: the rollups have not moved, the quota has.
    let mut ledger = SqliteLedger::open(&store).unwrap();
    assert_eq!(ledger.append(&events[..30]).unwrap(), 30);
    assert!(dumps().iter().all(Vec::is_empty), "only event rows are written on the request path");
    assert!(quota_raw(a.id) > 0);
    assert_eq!(store.quota_tokens_used(a.id, june.0, june.1).unwrap(), quota_raw(a.id), "quota counts unfolded events");

    // A process that stops before folding: the next one folds at open.
    drop(ledger);
    let mut ledger = SqliteLedger::open(&store).unwrap();
    assert!(!dumps()[0].is_empty(), "folded when the ledger opened");
    assert_eq!(ledger.fold_rollups().unwrap(), 0, "nothing is folded twice");

    // Another writer folds the ledger's pending events with its own.
    assert_eq!(ledger.append(&events[30..45]).unwrap(), 15);
    assert_eq!(store.append_usage(&events[45..]).unwrap(), 15);
    assert_eq!(ledger.fold_rollups().unwrap(), 0);
    // Retried writes are neither stored nor counted again.
    assert_eq!(ledger.append(&events).unwrap(), 0);
    assert_eq!(store.append_usage(&events[..10]).unwrap(), 0);
    assert_eq!(ledger.fold_rollups().unwrap(), 0);

    let live = dumps();
    store.rebuild_daily_rollups().unwrap();
    assert_eq!(live, dumps(), "the folded rollups equal a rebuild from the events");
    for s in [a.id, b.id] {
        assert_eq!(store.quota_tokens_used(s, june.0, june.1).unwrap(), quota_raw(s));
    }
    assert_eq!(ledger.fold_rollups().unwrap(), 0, "a rebuild moves the watermark too");
}

/// The engine's ledger: a lone request commits inline, concurrent ones are
/// group-committed by the writer thread; either way every event is stored
/// once, and a flush leaves the rollups equal to a rebuild.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_writer_commits_alone_and_in_groups_and_flush_folds() {
    // Process-crash durability (lone requests commit inline) and power-cut
    // durability (every commit synced, always on the writer thread).
    for sync in [switchboard::store::LedgerSync::Normal, switchboard::store::LedgerSync::Full] {
        ledger_writer_case(sync).await;
    }
}

/// Under a steady stream of commits the WAL starts over from its beginning
/// after each checkpoint instead of growing with every event (a checkpoint
/// that only ever ran alongside commits never caught up: about 50 MB a second
/// under load).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_bounded_under_a_steady_stream_of_commits() {
    use switchboard::engine::ledger::Ledger;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.db");
    let store = Store::open(&path).unwrap();
    let s =
        store.insert_supplier(&NewSupplier::new("Wal Caterer", VendorType::Caterer, Tier::Scale, AiMode::Platform), Utc::now()).unwrap();
    let ledger = Ledger::start(&store).unwrap();
    let t0 = Utc.with_ymd_and_hms(2025, 6, 1, 9, 0, 0).unwrap();
    let wal = dir.path().join("wal.db-wal");
    let started = std::time::Instant::now();
    let (mut n, mut largest) = (0i64, 0u64);
    // Several checkpoint periods (500 ms) of back-to-back commits.
    while started.elapsed() < std::time::Duration::from_secs(3) {
        for _ in 0..100 {
            ledger.record(event(&format!("wal-{n}"), t0 + Duration::milliseconds(n), s.id, Route::Platform, 10)).await.unwrap();
            n += 1;
        }
        largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
    }
    // Every commit appends at least four 4 KB pages to the WAL: the event row
    // and its three index entries.
    let appended = n as u64 * 4 * 4096;
    assert!(n > 1_000, "the stream ran: {n} commits");
    assert!(largest < appended / 2, "the WAL started over: largest {largest} B after {n} commits ({appended} B appended)");
    ledger.flush().await;
    assert_eq!(store.count_usage_events().unwrap(), n);
}
