//! The Request log's search on a 10 M-event ledger, and what its index costs
//! the ledger's writes. A benchmark, not part of the normal run:
//!
//! ```sh
//! cargo test --test it analytics::request_log:: -- --ignored --nocapture
//! ```
//!
//! It builds `$SWITCHBOARD_REQUEST_LOG_DB` (default
//! `/tmp/switchboard-request-log/10m.db`) once if it is not there: a real
//! Switchboard database whose ledger holds `$SWITCHBOARD_REQUEST_LOG_EVENTS`
//! (default 10,000,000) events over 365 days (about 27,400 a day), 1,150
//! suppliers, six models (one of them 1 % of traffic), five routes and about
//! 2 % failed or cancelled requests; then times one-day searches.

use std::time::{Duration, Instant};
use switchboard::domain::{Route, SupplierId};
use switchboard::store::requests::{request_search_sql, search_requests};
use switchboard::store::{RequestFilter, StatusFilter, Store};

const DAY_MS: i64 = 86_400_000;
/// 2025-11-01T00:00:00Z.
const START_MS: i64 = 1_761_955_200_000;

fn build(path: &std::path::Path, events: i64) {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    let store = Store::open(path).unwrap();
    drop(store);
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;").unwrap();
    let started = Instant::now();
    c.execute(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1)
         INSERT INTO usage_events (event_id, request_id, idempotency_key, ts, supplier_id, account_id, provider, model, request_type,
             route, input_tokens, output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, estimated, cost_micros,
             latency_ms, status, error_class)
         SELECT printf('e%010d', i), printf('r%010d', i), CASE WHEN i % 10 = 0 THEN printf('k%010d', i) END,
             ?2 + i * (365 * 86400000 / ?1), (i * 7919) % 1150 + 1, (i * 7919) % 255 + 1,
             CASE WHEN i % 2 = 0 THEN 'openai' ELSE 'anthropic' END,
             CASE WHEN i % 100 < 50 THEN 'gpt-4o-mini' WHEN i % 100 < 70 THEN 'claude-3-5-haiku' WHEN i % 100 < 85 THEN 'gpt-4o'
                  WHEN i % 100 < 95 THEN 'claude-3-5-sonnet' WHEN i % 100 < 99 THEN 'text-embedding-3-small' ELSE 'o1-mini' END,
             i % 6,
             CASE WHEN (i * 13) % 100 < 55 THEN 0 WHEN (i * 13) % 100 < 90 THEN 1 WHEN (i * 13) % 100 < 96 THEN 2
                  WHEN (i * 13) % 100 < 99 THEN 3 ELSE 4 END,
             400 + i % 900, 150 + i % 300, 0, 0, 0, 0, 20 + i % 4000, 300 + (i * 37) % 2500,
             CASE WHEN (i * 31) % 1000 < 15 THEN 1 WHEN (i * 31) % 1000 < 20 THEN 2 WHEN (i * 31) % 1000 < 25 THEN 3 ELSE 0 END,
             CASE WHEN (i * 31) % 1000 < 15 THEN 'provider_5xx' END
         FROM n",
        rusqlite::params![events, START_MS],
    )
    .unwrap();
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    eprintln!("built {} with {events} events in {:.0} s", path.display(), started.elapsed().as_secs_f64());
}

/// A search's filter for a day number.
type FilterOf = Box<dyn Fn(i64) -> RequestFilter>;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
#[ignore = "benchmark: builds or opens a 10 M-event ledger; run with --ignored (see the module comment)"]
fn a_one_day_search_answers_within_200_ms_on_10_m_events() {
    let path = std::env::var("SWITCHBOARD_REQUEST_LOG_DB").unwrap_or_else(|_| "/tmp/switchboard-request-log/10m.db".into());
    let path = std::path::PathBuf::from(path);
    let events: i64 = std::env::var("SWITCHBOARD_REQUEST_LOG_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    if !path.exists() {
        build(&path, events);
    }
    let store = Store::open(&path).unwrap();
    let log = store.request_log_connection().unwrap();
    let conn = log.sqlite().expect("a SQLite file");
    let n: i64 = conn.query_row("SELECT count(*) FROM usage_events", [], |r| r.get(0)).unwrap();
    eprintln!("{n} events");
    fn base(d: i64) -> RequestFilter {
        let (from_ms, to_ms) = (START_MS + d * DAY_MS, START_MS + (d + 1) * DAY_MS);
        RequestFilter { from_ms, to_ms, supplier: None, model: None, route: None, status: None, limit: 501 }
    }
    let cases: Vec<(&str, FilterOf)> = vec![
        ("everything", Box::new(base)),
        ("one supplier", Box::new(move |d| RequestFilter { supplier: Some(SupplierId(577)), ..base(d) })),
        ("a 1 % model", Box::new(move |d| RequestFilter { model: Some("o1-mini".into()), ..base(d) })),
        ("route failover", Box::new(move |d| RequestFilter { route: Some(Route::Failover), ..base(d) })),
        ("failed", Box::new(move |d| RequestFilter { status: Some(StatusFilter::Failed), ..base(d) })),
        (
            "failed, a 1 % model, failover",
            Box::new(move |d| RequestFilter {
                status: Some(StatusFilter::Failed),
                model: Some("o1-mini".into()),
                route: Some(Route::Failover),
                ..base(d)
            }),
        ),
        (
            "one supplier, failed, gpt-4o",
            Box::new(move |d| RequestFilter {
                supplier: Some(SupplierId(577)),
                status: Some(StatusFilter::Failed),
                model: Some("gpt-4o".into()),
                ..base(d)
            }),
        ),
    ];
    let mut worst = Duration::ZERO;
    eprintln!("| search (one day) | rows | first | median | max |");
    for (name, f) in &cases {
        let (sql, _) = request_search_sql(&f(200));
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(rusqlite::params_from_iter(request_search_sql(&f(200)).1), |r| r.get::<_, String>(3))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let mut times = Vec::new();
        let mut rows = 0;
        // Nine different days, each searched once (the first is cold for that day's pages).
        for d in [200, 17, 301, 90, 45, 250, 120, 333, 5] {
            let t = Instant::now();
            rows = search_requests(&log, &f(d)).unwrap().len();
            times.push(t.elapsed());
        }
        let max = *times.iter().max().unwrap();
        worst = worst.max(max);
        eprintln!(
            "| {name} | {rows} | {:.1} ms | {:.1} ms | {:.1} ms |  plan: {}",
            times[0].as_secs_f64() * 1e3,
            median(times.clone()).as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3,
            plan.join("; ")
        );
    }
    assert!(worst < Duration::from_millis(200), "a one-day search took {worst:?}");
}

/// What the partial failures index costs the ledger: the same events
/// appended through the ledger's own writer (`SqliteLedger`, 16 events a
/// commit, as under load), with the index and without it.
#[test]
#[ignore = "benchmark: run with --ignored (see the module comment)"]
fn the_failures_index_costs_the_ledger_little() {
    use switchboard::domain::{ProviderKind, RequestType, TokenUsage, UsageEvent, UsageStatus};
    use switchboard::store::{SqliteLedger, UsageLedger};
    let events: Vec<UsageEvent> = (0..200_000i64)
        .map(|i| UsageEvent {
            saved: switchboard::domain::Micros::ZERO,
            event_id: format!("w{i:08}"),
            request_id: format!("r{i:08}"),
            idempotency_key: None,
            ts: chrono::DateTime::from_timestamp_millis(START_MS + i * 50).unwrap(),
            supplier_id: SupplierId(i % 1150 + 1),
            account_id: None,
            provider: ProviderKind::OpenAi,
            model: "gpt-4o-mini".into(),
            request_type: RequestType::EmailTemplate,
            route: Route::Platform,
            usage: TokenUsage { input: 400, output: 150, ..TokenUsage::default() },
            cost: switchboard::domain::Micros(90),
            latency_ms: 400,
            status: if (i * 31) % 1000 < 20 { UsageStatus::Error } else { UsageStatus::Ok },
            error_class: None,
        })
        .collect();
    let mut results = Vec::new();
    for round in 0..4 {
        let with_index = round % 2 == 0;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("w.db")).unwrap();
        if !with_index {
            store.with_conn(|c| c.execute_batch("DROP INDEX usage_events_failures_ts")).unwrap();
        }
        let mut ledger = SqliteLedger::open(&store).unwrap();
        let t = Instant::now();
        for chunk in events.chunks(16) {
            ledger.append(chunk).unwrap();
        }
        let per_event = t.elapsed().as_secs_f64() * 1e6 / events.len() as f64;
        eprintln!("round {round}: {} index: {per_event:.2} µs per event", if with_index { "with the" } else { "without the" });
        results.push((with_index, per_event));
    }
    let avg = |w: bool| {
        let v: Vec<f64> = results.iter().filter(|r| r.0 == w).map(|r| r.1).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    eprintln!("with: {:.2} µs/event, without: {:.2} µs/event", avg(true), avg(false));
    assert!(avg(true) < avg(false) * 1.25, "the partial index must not slow the ledger's writes by a quarter");
}
