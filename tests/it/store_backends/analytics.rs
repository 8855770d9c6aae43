//! The analytics reader, the request log's search and the CSV export on
//! both backends (same transcript on SQLite and PostgreSQL): the same usage
//! events go into each (through `Store::append_usage`, on PostgreSQL the
//! fold's statement), then every `AnalyticsReader` method, the engine's
//! analytics queries, request searches with every filter and the exports
//! (per event, per day, per month) must answer the same. On PostgreSQL
//! only: `switchboard report` and `switchboard export` run by the binary
//! with `--database URL` print and write what they do on the SQLite file
//! with the same ledger, and an interrupted read (a statement in flight,
//! and a stream between batches) is recognised by `is_interrupted`.

use super::usage::ledger;
use super::{day, now, on_both};
use crate::support::pg::{base_url, fresh_db, raw, rt};
use chrono::{Duration, TimeZone, Utc};
use std::fmt::Write as _;
use std::sync::Arc;
use switchboard::domain::{
    AccountOwner, AiMode, NewSupplier, PricingTable, ProviderKind, QuotaPolicy, RequestType, Route, SupplierId, Tier, TokenUsage,
    UsageEvent, UsageStatus, VendorType,
};
use switchboard::engine::analytics::{AnalyticsQuery, AnalyticsService, CancelHandle, Dimension, Granularity, SeriesQuery};
use switchboard::engine::export::{ExportOptions, GroupBy, export_usage};
use switchboard::store::analytics::{DimColumn, is_interrupted};
use switchboard::store::requests::{models_between, search_requests};
use switchboard::store::{DimFilter, NewAccount, RequestFilter, StatusFilter, Store, StoreError};

/// A July event of supplier `s` (months and a second vendor type for the rollups).
fn july(id: &str, s: SupplierId, d: u32, model: &str, route: Route, cost: i64) -> UsageEvent {
    UsageEvent {
        event_id: id.into(),
        request_id: format!("req-{id}"),
        idempotency_key: Some(format!("idem-{id}")),
        ts: Utc.with_ymd_and_hms(2026, 7, d, 23, 59, 59).unwrap() + Duration::milliseconds(999),
        supplier_id: s,
        account_id: None,
        provider: ProviderKind::Anthropic,
        model: model.into(),
        request_type: RequestType::WeddingContent,
        route,
        usage: TokenUsage { input: 1_000, output: 500, cached_read: 10, cache_write: 0, reasoning: 0, estimated: true },
        cost: switchboard::domain::Micros(cost),
        saved: switchboard::domain::Micros(0),
        latency_ms: 800,
        status: if cost % 2 == 0 { UsageStatus::Ok } else { UsageStatus::Cancelled },
        error_class: None,
    }
}

/// The shared ledger of `store_backends::usage` (June, three photographers)
/// and a florist's July, with a client account.
fn load(store: &Store) {
    let events = ledger(store);
    store.append_usage(&events).unwrap();
    let mut f = NewSupplier::new("=Florist, \"quoted\"", VendorType::Florist, Tier::Scale, AiMode::Client);
    f.weddings = vec![day(7, 4)];
    let florist = store.insert_supplier(&f, now()).unwrap().id;
    let acc = NewAccount {
        owner: AccountOwner::Supplier(florist),
        provider: ProviderKind::Anthropic,
        label: "florist's own".into(),
        base_url: "https://api.anthropic.example/".into(),
        azure: None,
        default_model: "claude-sonnet".into(),
    };
    store.insert_account(&acc, now()).unwrap();
    let extra = vec![
        july("f1", florist, 1, "claude-sonnet", Route::Client, 4_000),
        july("f2", florist, 1, "claude-sonnet", Route::Client, 4_001),
        july("f3", florist, 2, "Claude-Sonnet", Route::Platform, 300),
        july("f4", SupplierId(1), 2, "claude-haiku", Route::Failover, 12),
        july("f5", florist, 3, "claude-sonnet", Route::Shadow, 9),
    ];
    store.append_usage(&extra).unwrap();
}

fn filters() -> Vec<DimFilter> {
    vec![
        DimFilter::default(),
        DimFilter { vendor_type: Some(VendorType::Florist), ..Default::default() },
        DimFilter { provider: Some(ProviderKind::OpenAi), ..Default::default() },
        DimFilter { model: Some("gpt-4o".into()), ..Default::default() },
        DimFilter { request_type: Some(RequestType::WeddingContent), route: Some(Route::Failover), ..Default::default() },
    ]
}

fn reader_answers(store: &Store, t: &mut String) {
    let r = store.analytics_reader().unwrap();
    let (from, to) = ("2026-06-01", "2026-07-31");
    for dim in [
        DimColumn::None,
        DimColumn::VendorType,
        DimColumn::Provider,
        DimColumn::Model,
        DimColumn::RequestType,
        DimColumn::Route,
        DimColumn::VendorAndRequestType,
    ] {
        for supplier in [None, Some(SupplierId(1)), Some(SupplierId(4))] {
            for f in filters() {
                writeln!(t, "daily_by {dim:?} {supplier:?} {f:?}: {:?}", r.daily_by(from, to, dim, supplier, &f).unwrap()).unwrap();
            }
        }
    }
    writeln!(t, "daily_by one day: {:?}", r.daily_by("2026-06-09", "2026-06-09", DimColumn::Model, None, &DimFilter::default()).unwrap())
        .unwrap();
    let some = [SupplierId(3), SupplierId(1), SupplierId(99), SupplierId(4)];
    writeln!(t, "supplier_days: {:?}", r.supplier_days(from, to, &some).unwrap()).unwrap();
    writeln!(t, "supplier_days none: {:?}", r.supplier_days(from, to, &[]).unwrap()).unwrap();
    for f in filters() {
        writeln!(t, "daily_for_suppliers {f:?}: {:?}", r.daily_for_suppliers(from, to, &some, &f).unwrap()).unwrap();
    }
    for (a, b, s) in [("2026-01", "2026-12", None), ("2026-07", "2026-07", None), ("2026-06", "2026-07", Some(SupplierId(1)))] {
        writeln!(t, "supplier_months {a} {b} {s:?}: {:?}", r.supplier_months(a, b, s).unwrap()).unwrap();
        let mut m = r.supplier_model_months(a, b, s).unwrap();
        m.sort_by(|x, y| (&x.month, x.supplier_id, &x.provider, &x.model).cmp(&(&y.month, y.supplier_id, &y.provider, &y.model)));
        writeln!(t, "supplier_model_months {a} {b} {s:?}: {m:?}").unwrap();
    }
    let mut firsts = r.first_months().unwrap();
    firsts.sort();
    writeln!(t, "first_months: {firsts:?}").unwrap();
    writeln!(t, "suppliers: {:?}", r.suppliers().unwrap()).unwrap();
    writeln!(t, "client_accounts: {:?}", r.client_accounts().unwrap()).unwrap();
    for (a, b, s) in
        [(from, to, None), ("2026-06-09", "2026-06-10", None), (from, to, Some(SupplierId(4))), (from, to, Some(SupplierId(9)))]
    {
        writeln!(t, "count_requests {a} {b} {s:?}: {}", r.count_requests(a, b, s).unwrap()).unwrap();
    }
    let june = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap().timestamp_millis();
    let aug = Utc.with_ymd_and_hms(2026, 8, 1, 0, 0, 0).unwrap().timestamp_millis();
    let ninth = Utc.with_ymd_and_hms(2026, 6, 9, 9, 7, 1).unwrap().timestamp_millis();
    for (a, b, s) in [(june, aug, None), (ninth, aug, Some(SupplierId(1))), (ninth, ninth + 2_000, None), (aug, aug + 1, None)] {
        let mut rows = Vec::new();
        let n = r
            .for_each_event::<StoreError>(a, b, s, |e| {
                rows.push(format!("{e:?}"));
                Ok(())
            })
            .unwrap();
        writeln!(t, "events {a} {b} {s:?}: {n}\n  {}", rows.join("\n  ")).unwrap();
    }
    for (s, by_month) in [(None, false), (None, true), (Some(SupplierId(4)), false), (Some(SupplierId(1)), true)] {
        let mut rows = Vec::new();
        let n = r
            .for_each_group::<StoreError>(from, to, s, by_month, |g| {
                rows.push(format!("{g:?}"));
                Ok(())
            })
            .unwrap();
        writeln!(t, "groups {s:?} by month {by_month}: {n}\n  {}", rows.join("\n  ")).unwrap();
    }
    // A callback's error stops the stream and comes back as it was.
    let mut seen = 0;
    let e = r
        .for_each_event::<StoreError>(june, aug, None, |_| {
            seen += 1;
            if seen == 3 { Err(StoreError::Invalid("enough".into())) } else { Ok(()) }
        })
        .unwrap_err();
    writeln!(t, "stopped: {e} after {seen}").unwrap();
    // The reader still answers after a stopped stream.
    writeln!(t, "count after: {}", r.count_requests(from, to, None).unwrap()).unwrap();
}

fn engine_answers(store: &Store, t: &mut String) {
    let service = AnalyticsService::new(Arc::new(store.reopen().unwrap()), PricingTable::builtin(), QuotaPolicy::default());
    let session = service.session().unwrap();
    let (from, to) = (day(6, 1), day(7, 31));
    let mut qs = Vec::new();
    for g in [Granularity::Day, Granularity::Week, Granularity::Month] {
        for d in [Dimension::Total, Dimension::Supplier, Dimension::Model, Dimension::Route, Dimension::VendorType] {
            let mut q = SeriesQuery::new(from, to, g, d);
            q.top = 2;
            qs.push(AnalyticsQuery::Series(q));
        }
    }
    qs.extend([
        AnalyticsQuery::QuotaUse { from_month: from, to_month: to, supplier: None },
        AnalyticsQuery::TopSuppliers { from_month: from, to_month: to, limit: 3 },
        AnalyticsQuery::Seasonal { from_month: from, to_month: to },
        AnalyticsQuery::Projections { as_of: day(7, 20) },
        AnalyticsQuery::CostComparison { from_month: from, to_month: to },
    ]);
    for q in &qs {
        writeln!(t, "{q:?}: {}", serde_json::to_string(&session.run(q).unwrap()).unwrap()).unwrap();
    }
}

fn search_answers(store: &Store, t: &mut String) {
    let log = store.request_log_connection().unwrap();
    let base = RequestFilter {
        from_ms: Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap().timestamp_millis(),
        to_ms: Utc.with_ymd_and_hms(2026, 8, 1, 0, 0, 0).unwrap().timestamp_millis(),
        supplier: None,
        model: None,
        route: None,
        status: None,
        limit: 100,
    };
    let cases = [
        base.clone(),
        RequestFilter { limit: 4, ..base.clone() },
        RequestFilter { supplier: Some(SupplierId(1)), ..base.clone() },
        RequestFilter { model: Some("claude-haiku".into()), ..base.clone() },
        RequestFilter { route: Some(Route::Shadow), ..base.clone() },
        RequestFilter { status: Some(StatusFilter::Failed), ..base.clone() },
        RequestFilter { status: Some(StatusFilter::Answered), supplier: Some(SupplierId(4)), ..base.clone() },
        RequestFilter { status: Some(StatusFilter::Exactly(UsageStatus::Cancelled)), ..base.clone() },
        RequestFilter {
            supplier: Some(SupplierId(1)),
            model: Some("claude-haiku".into()),
            route: Some(Route::Failover),
            status: Some(StatusFilter::Failed),
            ..base.clone()
        },
        RequestFilter { from_ms: base.to_ms, to_ms: base.to_ms + 86_400_000, ..base.clone() },
    ];
    for f in &cases {
        let rows = search_requests(&log, f).unwrap();
        writeln!(t, "search {f:?}: {}", rows.len()).unwrap();
        for r in rows {
            writeln!(t, "  {} {r:?}", r.event_id).unwrap();
        }
    }
    writeln!(t, "models: {:?}", models_between(&log, "2026-06-01", "2026-07-31").unwrap()).unwrap();
    writeln!(t, "models, one day: {:?}", models_between(&log, "2026-07-02", "2026-07-02").unwrap()).unwrap();
    writeln!(t, "through the store: {}", store.search_requests(&cases[2]).unwrap().len()).unwrap();
}

fn export_answers(store: &Store, t: &mut String) {
    let dir = tempfile::tempdir().unwrap();
    for (name, group_by, supplier) in [
        ("events", None, None),
        ("days", Some(GroupBy::Day), None),
        ("months", Some(GroupBy::Month), None),
        ("one", None, Some(SupplierId(4))),
    ] {
        let out = dir.path().join(format!("{name}.csv"));
        let opts = ExportOptions { from: day(6, 1), to: day(7, 31), supplier, group_by, out: out.clone(), force: false };
        let mut ticks = Vec::new();
        let summary = export_usage(store, &opts, &CancelHandle::new(), |p| ticks.push(p)).unwrap();
        writeln!(t, "export {name}: {} rows, {} bytes, last progress {:?}", summary.rows, summary.bytes, ticks.last()).unwrap();
        t.push_str(&std::fs::read_to_string(&out).unwrap());
    }
}

#[test]
fn analytics_reader_search_and_export() {
    on_both("store_backends::analytics::analytics_reader_search_and_export", |store, t| {
        load(store);
        reader_answers(store, t);
        engine_answers(store, t);
        search_answers(store, t);
        export_answers(store, t);
    });
}

/// Runs the binary; its stdout (the run must succeed).
fn switchboard(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .env_remove("SWITCHBOARD_DB")
        .env_remove("SWITCHBOARD_DATABASE")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "switchboard {args:?} failed\nstdout: {stdout}\nstderr: {stderr}");
    assert!(!stderr.contains("does not run on PostgreSQL"), "{stderr}");
    stdout
}

#[test]
fn report_and_export_commands_on_postgres() {
    let Some(base) = base_url("store_backends::analytics::report_and_export_commands_on_postgres") else { return };
    let url = rt().block_on(fresh_db(&base, "sbt_sb_report_export"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sb.db");
    let file = file.to_str().unwrap();
    load(&Store::open_location(&url).unwrap());
    load(&Store::open(file).unwrap());
    let range = ["--from", "2026-06-01", "--to", "2026-07-31", "--as-of", "2026-07-20"];
    for kind in [&["all"][..], &["series", "--by", "supplier", "--granularity", "week"], &["quota", "--supplier", "1"]] {
        let on = |db: &[&str]| switchboard(&[&["report"], kind, &range[..], db].concat());
        let (pg, sqlite) = (on(&["--database", &url]), on(&["--db", file]));
        assert!(pg.contains("series") || pg.contains("quota"), "{pg}");
        assert_eq!(pg, sqlite, "report {kind:?} differs between PostgreSQL and SQLite");
    }
    let bench = switchboard(&["report", "all", "--bench", "1", "--from", "2026-06-01", "--to", "2026-07-31", "--database", &url]);
    assert!(bench.starts_with("QUERY") && bench.contains("cost comparison"), "{bench}");
    for group in [None, Some("day"), Some("month")] {
        let csv = |db: &[&str], name: &str| {
            let out = dir.path().join(name);
            let mut args = vec!["export", "usage", "--from", "2026-06-01", "--to", "2026-07-31", "--out", out.to_str().unwrap()];
            if let Some(g) = group {
                args.extend(["--group-by", g]);
            }
            let said = switchboard(&[&args[..], db].concat());
            assert!(said.starts_with("Wrote "), "{said}");
            std::fs::read_to_string(out).unwrap()
        };
        let pg = csv(&["--database", &url], &format!("pg-{group:?}.csv"));
        let sqlite = csv(&["--db", file], &format!("sqlite-{group:?}.csv"));
        assert!(pg.lines().count() > 5, "{pg}");
        assert_eq!(pg, sqlite, "export {group:?} differs");
    }
}

#[test]
fn an_interrupted_read_on_postgres_is_recognised() {
    let Some(base) = base_url("store_backends::analytics::an_interrupted_read_on_postgres_is_recognised") else { return };
    let url = rt().block_on(fresh_db(&base, "sbt_sb_interrupt"));
    let store = Store::open_location(&url).unwrap();
    load(&store);

    // A statement in flight: it waits for a lock another connection holds,
    // until the interrupter cancels it on the server.
    let runtime = rt();
    let other = runtime.block_on(raw(&url));
    runtime.block_on(other.batch_execute("BEGIN; LOCK TABLE usage_daily_dims IN ACCESS EXCLUSIVE MODE")).unwrap();
    let reader = store.analytics_reader().unwrap();
    let interrupter = reader.interrupter();
    let started = std::time::Instant::now();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        interrupter.interrupt();
    });
    let e = reader.daily_by("2026-06-01", "2026-07-31", DimColumn::Model, None, &DimFilter::default()).unwrap_err();
    stopper.join().unwrap();
    assert!(is_interrupted(&e), "{e:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "the cancel reached the server");
    runtime.block_on(other.batch_execute("ROLLBACK")).unwrap();
    // The interrupted reader stays interrupted; a new one reads.
    assert!(is_interrupted(&reader.count_requests("2026-06-01", "2026-07-31", None).unwrap_err()));
    let fresh = store.analytics_reader().unwrap();
    assert_eq!(fresh.count_requests("2026-06-01", "2026-07-31", None).unwrap(), 24);

    // A stream: interrupted from its own callback, it stops at once.
    let interrupter = fresh.interrupter();
    let mut seen = 0;
    let e = fresh
        .for_each_event::<StoreError>(0, i64::MAX, None, |_| {
            seen += 1;
            interrupter.interrupt();
            Ok(())
        })
        .unwrap_err();
    assert!(is_interrupted(&e), "{e:?}");
    assert_eq!(seen, 1);

    // The engine's cancel handle maps it to Cancelled, on a session of its own.
    let service = AnalyticsService::new(Arc::new(store.reopen().unwrap()), PricingTable::builtin(), QuotaPolicy::default());
    let cancel = CancelHandle::new();
    cancel.cancel();
    let running = runtime.block_on(async {
        let q = AnalyticsQuery::TopSuppliers { from_month: day(6, 1), to_month: day(7, 31), limit: 3 };
        service.spawn_with(q, cancel).result.await.unwrap()
    });
    assert!(matches!(running, Err(switchboard::engine::analytics::AnalyticsError::Cancelled)), "{running:?}");
}
