//! Usage analytics and CSV export on real SQLite files: every breakdown adds up
//! to the ledger's total, the seasonal ratio recovers the demo generator's
//! known peak factor, projections follow a synthetic series with a known trend
//! and season, the rollups kept by the live writer equal a rebuild, and the CSV
//! export re-reads equal to the database, refuses to overwrite, never leaves a
//! half-written file, and opens in LibreOffice with numbers and dates typed.

use crate::support::day;
use chrono::{Datelike, Duration, NaiveDate, TimeZone, Utc};
use rusqlite::Connection;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use switchboard::domain::{
    AiMode, Micros, NewSupplier, PricingTable, ProviderKind, QuotaPolicy, RequestType, Route, SupplierId, Tier, TokenUsage, UsageEvent,
    UsageStatus, VendorType,
};
use switchboard::engine::analytics::{
    AnalyticsError, AnalyticsQuery, AnalyticsService, AnalyticsSession, Dimension, Granularity, PriceRefs, ProjectionMethod, SeriesQuery,
};
use switchboard::engine::demo::{DemoConfig, generate};
use switchboard::engine::export::{ExportError, ExportOptions, GroupBy, export_usage};
use switchboard::store::Store;

mod ledger;
mod request_log;

fn session(store: &Arc<Store>) -> AnalyticsSession {
    AnalyticsService::new(store.clone(), PricingTable::builtin(), QuotaPolicy::default()).session().unwrap()
}

fn demo(dir: &Path, cfg: &DemoConfig) -> Arc<Store> {
    let store = Store::open(dir.join("demo.db")).unwrap();
    generate(&store, cfg, |_, _| {}).unwrap();
    Arc::new(store)
}

/// (requests, tokens, cost) straight from the raw events.
fn raw_totals(c: &Connection, where_: &str) -> (u64, u64, i64) {
    c.query_row(
        &format!(
            "SELECT count(*), coalesce(sum(input_tokens + cached_tokens + cache_write_tokens + output_tokens), 0), coalesce(sum(cost_micros), 0)
             FROM usage_events WHERE {where_}"
        ),
        [],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64, r.get(2)?)),
    )
    .unwrap()
}

fn ms(d: NaiveDate) -> i64 {
    Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap()).timestamp_millis()
}

fn dump(c: &Connection, table: &str) -> Vec<String> {
    let mut st = c.prepare(&format!("SELECT * FROM {table} ORDER BY 1, 2, 3, 4, 5")).unwrap();
    let n = st.column_count();
    st.query_map([], |r| Ok((0..n).map(|i| format!("{:?}", r.get_ref(i).unwrap())).collect::<Vec<_>>().join("|")))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn every_breakdown_adds_up_to_the_ledger_total() {
    let dir = tempfile::tempdir().unwrap();
    let store = demo(dir.path(), &DemoConfig::new(40, 120, 11, day("2025-06-30")));
    let s = session(&store);
    let c = Connection::open(store.sqlite_path().unwrap()).unwrap();
    let (from, to) = (day("2025-03-10"), day("2025-06-20"));
    let (requests, tokens, cost) = raw_totals(&c, &format!("ts >= {} AND ts < {}", ms(from), ms(to + Duration::days(1))));
    assert!(requests > 10_000, "enough demo data: {requests}");

    for g in [Granularity::Day, Granularity::Week, Granularity::Month] {
        for d in [
            Dimension::Total,
            Dimension::Supplier,
            Dimension::Provider,
            Dimension::Model,
            Dimension::Route,
            Dimension::RequestType,
            Dimension::VendorType,
        ] {
            let mut q = SeriesQuery::new(from, to, g, d);
            q.top = 5;
            let ts = s.time_series(&q).unwrap();
            let what = format!("{g:?} by {d:?}");
            assert_eq!((ts.total.requests, ts.total.tokens(), ts.total.cost.0), (requests, tokens, cost), "{what}: total");
            let series_cost: i64 = ts.series.iter().flat_map(|x| x.cost.iter()).map(|m| m.0).sum();
            let series_tokens: u64 = ts.series.iter().flat_map(|x| x.tokens.iter()).sum();
            let series_requests: u64 = ts.series.iter().flat_map(|x| x.requests.iter()).sum();
            assert_eq!((series_requests, series_tokens, series_cost), (requests, tokens, cost), "{what}: series add up");
            assert!(ts.series.iter().all(|x| x.cost.len() == ts.buckets.len()), "{what}: aligned with buckets");
            if d == Dimension::Supplier {
                assert_eq!(ts.series.len(), 6, "five suppliers and 'other'");
                assert_eq!(ts.series.last().unwrap().key, "other");
            }
        }
    }
    // Buckets: weeks start on Monday, months on the first.
    let w = s.time_series(&SeriesQuery::new(from, to, Granularity::Week, Dimension::Total)).unwrap();
    assert_eq!(w.buckets[0], day("2025-03-10"));
    assert!(w.buckets.iter().all(|b| b.weekday() == chrono::Weekday::Mon));
    let m = s.time_series(&SeriesQuery::new(from, to, Granularity::Month, Dimension::Total)).unwrap();
    assert_eq!(m.buckets, vec![day("2025-03-01"), day("2025-04-01"), day("2025-05-01"), day("2025-06-01")]);

    // One supplier's series equals its raw events, by every dimension.
    let one = SupplierId(3);
    let (r1, t1, c1) = raw_totals(&c, &format!("supplier_id = 3 AND ts >= {} AND ts < {}", ms(from), ms(to + Duration::days(1))));
    for d in [Dimension::Total, Dimension::Route, Dimension::RequestType, Dimension::VendorType, Dimension::Model] {
        let mut q = SeriesQuery::new(from, to, Granularity::Day, d);
        q.supplier = Some(one);
        let ts = s.time_series(&q).unwrap();
        let sc: i64 = ts.series.iter().map(|x| x.total.cost.0).sum();
        assert_eq!((ts.total.requests, ts.total.tokens(), ts.total.cost.0, sc), (r1, t1, c1, c1), "supplier 3 by {d:?}");
    }

    // Whole months: quota use, top suppliers and cost comparison add up too.
    let (mf, mt) = (day("2025-04-01"), day("2025-05-31"));
    let (_, _, month_cost) = raw_totals(&c, &format!("ts >= {} AND ts < {}", ms(mf), ms(day("2025-06-01"))));
    let (_, quota_tokens, _) = raw_totals(&c, &format!("ts >= {} AND ts < {} AND route IN (0, 2)", ms(mf), ms(day("2025-06-01"))));
    let quota = s.quota_use(mf, mt, None).unwrap();
    assert_eq!(quota.len(), 40 * 2, "every supplier, every month");
    assert_eq!(quota.iter().map(|q| q.used_tokens).sum::<u64>(), quota_tokens);
    let june_pro = quota.iter().find(|q| q.tier == Tier::Professional && q.month == day("2025-05-01")).unwrap();
    assert_eq!(june_pro.quota_tokens, 300_000, "peak-season quota");
    let top = s.top_suppliers(mf, mt, 1000).unwrap();
    assert_eq!(top.by_cost.iter().map(|x| x.totals.cost.0).sum::<i64>(), month_cost);
    assert!(top.by_cost.windows(2).all(|w| w[0].totals.cost >= w[1].totals.cost));
    assert!(top.by_growth.windows(2).all(|w| w[0].cost_change >= w[1].cost_change));
    let cmp = s.cost_comparison(mf, mt, &PriceRefs::default()).unwrap();
    assert_eq!(cmp.iter().map(|x| x.actual_cost.0).sum::<i64>(), month_cost, "no shadow traffic in demo data");
    assert!(cmp.iter().all(|x| x.alternative == if x.ai_mode == "client" { "platform" } else { "client" }));
    assert!(cmp.iter().all(|x| x.unpriced_tokens == 0 && x.alternative_cost > Micros::ZERO));

    // The rollups the live writer keeps equal a rebuild from the events.
    let t0 = Utc.with_ymd_and_hms(2025, 6, 30, 12, 0, 0).unwrap();
    let events: Vec<UsageEvent> = (0..50)
        .map(|i| event(&format!("live-{i}"), t0 + Duration::minutes(i), SupplierId(1 + i % 5), Route::Platform, 100 + i as u64))
        .collect();
    assert_eq!(store.append_usage(&events).unwrap(), 50);
    assert_eq!(store.append_usage(&events).unwrap(), 0, "idempotent: nothing counted twice");
    let tables = ["usage_daily", "usage_daily_dims", "usage_monthly_supplier", "usage_supplier_month", "usage_supplier_day"];
    let live: Vec<_> = tables.iter().map(|t| dump(&c, t)).collect();
    store.rebuild_daily_rollups().unwrap();
    assert_eq!(live, tables.iter().map(|t| dump(&c, t)).collect::<Vec<_>>());

    // Bad ranges are refused with a sentence, not a panic.
    let e = s.time_series(&SeriesQuery::new(to, from, Granularity::Day, Dimension::Total)).unwrap_err();
    assert!(matches!(e, AnalyticsError::Invalid(ref m) if m.contains("swap")), "{e}");
}

fn event(id: &str, ts: chrono::DateTime<Utc>, supplier: SupplierId, route: Route, input: u64) -> UsageEvent {
    let usage = TokenUsage { input, output: input / 2, cached_read: 0, cache_write: 0, reasoning: 0, estimated: false };
    UsageEvent {
        saved: switchboard::domain::Micros::ZERO,
        event_id: id.into(),
        request_id: id.into(),
        idempotency_key: None,
        ts,
        supplier_id: supplier,
        account_id: None,
        provider: ProviderKind::OpenAi,
        model: "gpt-4o-mini".into(),
        request_type: RequestType::EmailTemplate,
        route,
        cost: PricingTable::builtin().cost(ProviderKind::OpenAi, "gpt-4o-mini", &usage).unwrap(),
        usage,
        latency_ms: 500,
        status: UsageStatus::Ok,
        error_class: None,
    }
}

#[test]
fn hand_checkable_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("hand.db")).unwrap());
    let now = Utc::now();
    let a =
        store.insert_supplier(&NewSupplier::new("Alpha Photo", VendorType::Photographer, Tier::Starter, AiMode::Platform), now).unwrap();
    let b = store.insert_supplier(&NewSupplier::new("Beta Venue", VendorType::Venue, Tier::Professional, AiMode::Client), now).unwrap();
    let t = |d: &str, h: u32| Utc.from_utc_datetime(&day(d).and_hms_opt(h, 0, 0).unwrap());
    // gpt-4o-mini: $0.15 / M input, $0.60 / M output. 10,000 in + 5,000 out = 1,500 + 3,000 µ$.
    store
        .append_usage(&[
            event("a1", t("2025-06-02", 9), a.id, Route::Platform, 10_000),
            event("a2", t("2025-06-07", 9), a.id, Route::Platform, 10_000),
            event("b1", t("2025-06-02", 10), b.id, Route::Client, 10_000),
            event("b2", t("2025-07-01", 10), b.id, Route::Failover, 10_000),
        ])
        .unwrap();
    let s = session(&store);
    let mut q = SeriesQuery::new(day("2025-06-01"), day("2025-07-31"), Granularity::Month, Dimension::Route);
    let ts = s.time_series(&q).unwrap();
    assert_eq!(ts.total.cost, Micros(4 * 4_500));
    let route = |k: &str| ts.series.iter().find(|x| x.label == k).unwrap();
    assert_eq!(route("platform").cost, vec![Micros(9_000), Micros(0)]);
    assert_eq!(route("client").cost, vec![Micros(4_500), Micros(0)]);
    assert_eq!(route("failover").cost, vec![Micros(0), Micros(4_500)]);
    q.dimension = Dimension::VendorType;
    let ts = s.time_series(&q).unwrap();
    assert_eq!(
        ts.series.iter().map(|x| (x.key.as_str(), x.total.tokens())).collect::<Vec<_>>(),
        vec![("photographer", 30_000), ("venue", 30_000)]
    );
    // Quota: Alpha used 30,000 of 75,000 in June (peak); Beta's failover counts in July.
    let quota = s.quota_use(day("2025-06-01"), day("2025-07-01"), None).unwrap();
    let get = |id: SupplierId, m: &str| quota.iter().find(|x| x.supplier_id == id && x.month == day(m)).unwrap();
    assert_eq!((get(a.id, "2025-06-01").used_tokens, get(a.id, "2025-06-01").quota_tokens), (30_000, 75_000));
    assert_eq!((get(b.id, "2025-06-01").used_tokens, get(b.id, "2025-07-01").used_tokens), (0, 15_000));
    // Weekend: June 7 is a Saturday.
    let seasonal = s.seasonal(day("2025-06-01"), day("2025-06-30")).unwrap();
    assert_eq!(seasonal.weekend_overall.first.total_tokens, 15_000);
    assert_eq!(seasonal.weekend_overall.second.total_tokens, 30_000);
    assert_eq!((seasonal.weekend_overall.first.days, seasonal.weekend_overall.second.days), (9, 21));
    // Beta (client) on platform AI: both default to gpt-4o-mini, so the same cost.
    let cmp = s.cost_comparison(day("2025-06-01"), day("2025-06-30"), &PriceRefs::default()).unwrap();
    let beta = cmp.iter().find(|x| x.supplier_id == b.id).unwrap();
    assert_eq!((beta.actual_cost, beta.alternative_cost, beta.alternative.as_str()), (Micros(4_500), Micros(4_500), "platform"));
    // Alpha on gpt-4o instead ($2.50 / $10 per M): 20,000 × 2.5 + 10,000 × 10 = 150,000 µ$.
    let refs = PriceRefs { client_chat_model: "gpt-4o".into(), ..PriceRefs::default() };
    let cmp = s.cost_comparison(day("2025-06-01"), day("2025-06-30"), &refs).unwrap();
    let alpha = cmp.iter().find(|x| x.supplier_id == a.id).unwrap();
    assert_eq!((alpha.actual_cost, alpha.alternative_cost, alpha.difference), (Micros(9_000), Micros(150_000), Micros(141_000)));
}

#[test]
fn seasonal_ratio_recovers_the_known_peak_factor() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = DemoConfig::new(30, 365, 5, day("2025-12-31"));
    cfg.wedding_boost = 1.0; // weddings cluster in peak season and would add to the ratio
    cfg.enforce_quotas = false; // refusals over the quota would take peak tokens off
    let store = demo(dir.path(), &cfg);
    let r = session(&store).seasonal(day("2025-01-01"), day("2025-12-31")).unwrap();
    assert_eq!((r.overall.first.days, r.overall.second.days), (245, 120));
    let within = |got: Option<f64>, want: f64, tol: f64, what: &str| {
        let got = got.unwrap_or(0.0);
        assert!((got / want - 1.0).abs() <= tol, "{what}: {got:.3} against {want:.3}");
    };
    within(r.overall.requests_ratio, cfg.peak_factor, 0.05, "requests peak/off");
    within(r.overall.tokens_ratio, cfg.peak_factor, 0.05, "tokens peak/off");
    within(r.overall.cost_ratio, cfg.peak_factor, 0.05, "cost peak/off");
    for row in &r.by_request_type {
        within(row.requests_ratio, cfg.peak_factor, 0.05, &format!("request type {}", row.key));
    }
    // The generator's weekday factors: Sat/Sun 0.8; Mon/Tue 1.15, Wed–Fri 1.0 (weekday mean 1.06).
    within(r.weekend_overall.requests_ratio, 0.8 / 1.06, 0.05, "weekend/weekday");
    assert_eq!(r.by_supplier.len(), 30);
    assert!(!r.by_vendor_type.is_empty());
}

/// 1,000 tokens a day off-season, 2,000 in peak months, growing 20 % a year.
fn synthetic_tokens(d: NaiveDate, start: NaiveDate) -> u64 {
    let season = if (3..=10).contains(&d.month()) { 2.0 } else { 1.0 };
    let years = (d - start).num_days() as f64 / 365.0;
    (1_000.0 * season * 1.2f64.powf(years)).round() as u64
}

#[test]
fn projections_follow_a_known_trend_and_season() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("proj.db")).unwrap());
    let now = Utc::now();
    let long =
        store.insert_supplier(&NewSupplier::new("Trend Studio", VendorType::Photographer, Tier::Starter, AiMode::Platform), now).unwrap();
    let short = store.insert_supplier(&NewSupplier::new("New Florals", VendorType::Florist, Tier::Scale, AiMode::Platform), now).unwrap();
    let idle = store.insert_supplier(&NewSupplier::new("Quiet Estate", VendorType::Venue, Tier::Starter, AiMode::Platform), now).unwrap();
    let (start, as_of) = (day("2023-01-01"), day("2025-06-15"));
    let mk = |sup: SupplierId, d: NaiveDate, tokens: u64| {
        let mut e = event(&format!("{}-{d}", sup.0), Utc.from_utc_datetime(&d.and_hms_opt(12, 0, 0).unwrap()), sup, Route::Platform, 0);
        e.usage = TokenUsage { input: tokens, ..TokenUsage::default() };
        e.cost = PricingTable::builtin().cost(ProviderKind::OpenAi, "gpt-4o-mini", &e.usage).unwrap();
        e
    };
    let mut events = Vec::new();
    let mut d = start;
    while d <= as_of {
        events.push(mk(long.id, d, synthetic_tokens(d, start)));
        if d >= day("2025-04-01") {
            events.push(mk(short.id, d, 5_000));
        }
        d += Duration::days(1);
    }
    store.append_usage(&events).unwrap();

    let report = session(&store).projections(as_of).unwrap();
    let p = report.suppliers.iter().find(|x| x.supplier_id == long.id).unwrap();
    match p.method {
        ProjectionMethod::SeasonalTrend { token_trend, .. } => assert!((token_trend - 1.2).abs() < 0.02, "trend {token_trend}"),
        ref m => panic!("expected the seasonal method, got {m:?}"),
    }
    assert_eq!(p.history_months, 29, "January 2023 to May 2025");
    let expected_month = |m: NaiveDate| {
        let mut d = m;
        let mut sum = 0;
        while d.month() == m.month() {
            sum += synthetic_tokens(d, start);
            d += Duration::days(1);
        }
        sum
    };
    for pm in &p.next_months {
        let want = expected_month(pm.month) as f64;
        assert!((pm.tokens as f64 / want - 1.0).abs() <= 0.10, "{}: {} against {want}", pm.month, pm.tokens);
    }
    assert_eq!(p.next_months.iter().map(|m| m.month).collect::<Vec<_>>(), vec![day("2025-07-01"), day("2025-08-01"), day("2025-09-01")]);
    let june = expected_month(day("2025-06-01")) as f64;
    assert!((p.month_end.month.tokens as f64 / june - 1.0).abs() <= 0.10, "month end {} against {june}", p.month_end.month.tokens);
    // Starter in June: 75,000 tokens. ~3,100 a day: under quota on the 15th, over by the 30th.
    assert_eq!(p.month_end.month.quota, 75_000);
    assert!(p.month_end.to_date_quota_tokens < 75_000);
    assert!(p.exceeds_quota_this_month);
    let out_on = p.month_end.quota_exhausted_on.unwrap();
    assert!(out_on > as_of && out_on <= day("2025-06-30"), "{out_on}");

    let s = report.suppliers.iter().find(|x| x.supplier_id == short.id).unwrap();
    assert_eq!((s.method.clone(), s.history_months), (ProjectionMethod::RecentAverage { months: 2 }, 2));
    assert_eq!(s.next_months[0].tokens, 5_000 * 31);
    assert!(!s.exceeds_quota_this_month, "Scale has 750,000 in June; 150,000 projected");
    let i = report.suppliers.iter().find(|x| x.supplier_id == idle.id).unwrap();
    assert_eq!((i.method.clone(), i.history_months, i.exceeds_quota_this_month), (ProjectionMethod::NoHistory, 0, false));
}

/// With fewer than 15 months of history, a supplier's recent average is
/// adjusted for the season: August to October's peak demand is not carried
/// into November (which would flag a supplier that used 90 % of its peak quota
/// as about to exceed its smaller off-peak one), and a winter average is
/// raised for the peak months.
#[test]
fn a_recent_average_is_adjusted_for_the_season() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("season.db")).unwrap());
    let now = Utc::now();
    let autumn = store
        .insert_supplier(&NewSupplier::new("Autumn Studio", VendorType::Photographer, Tier::Professional, AiMode::Platform), now)
        .unwrap();
    let winter =
        store.insert_supplier(&NewSupplier::new("Winter Planner", VendorType::Planner, Tier::Professional, AiMode::Platform), now).unwrap();
    let policy = QuotaPolicy::default();
    let (peak_quota, off_quota) =
        (policy.monthly_tokens(Tier::Professional, day("2025-08-01")), policy.monthly_tokens(Tier::Professional, day("2025-11-01")));
    assert!(peak_quota > off_quota, "the default season raises quotas from March to October");
    // 90 % of the peak quota over a 31-day month; in off-peak terms, ÷ 1.5.
    let peak_daily = peak_quota * 9 / 10 / 31;
    let off_daily = peak_daily * 1_000 / 1_500;
    let mk = |sup: SupplierId, d: NaiveDate, tokens: u64| {
        let mut e = event(&format!("{}-{d}", sup.0), Utc.from_utc_datetime(&d.and_hms_opt(12, 0, 0).unwrap()), sup, Route::Platform, 0);
        e.usage = TokenUsage { input: tokens, ..TokenUsage::default() };
        e
    };
    let mut events = Vec::new();
    let mut d = day("2025-08-01");
    while d <= day("2025-11-01") {
        events.push(mk(autumn.id, d, if d.month() == 11 { off_daily } else { peak_daily }));
        d += Duration::days(1);
    }
    let mut d = day("2025-11-01");
    while d <= day("2026-02-01") {
        events.push(mk(winter.id, d, off_daily));
        d += Duration::days(1);
    }
    store.append_usage(&events).unwrap();
    let near = |got: u64, want: u64, what: &str| assert!((got as f64 / want as f64 - 1.0).abs() <= 0.01, "{what}: {got} against {want}");

    let report = session(&store).projections(day("2025-11-01")).unwrap();
    let a = report.suppliers.iter().find(|x| x.supplier_id == autumn.id).unwrap();
    assert_eq!(a.method, ProjectionMethod::RecentAverage { months: 3 });
    near(a.month_end.month.tokens, off_daily * 30, "November");
    assert!(!a.exceeds_quota_this_month, "90 % of the peak quota in October is 90 % of the off-peak one in November");
    let months: Vec<_> = a.next_months.iter().map(|m| (m.month, m.tokens, m.exceeds_quota)).collect();
    assert_eq!(months.len(), 3);
    near(months[0].1, off_daily * 31, "December");
    near(months[2].1, off_daily * 28, "February");
    assert!(months.iter().all(|m| !m.2), "{months:?}");

    let report = session(&store).projections(day("2026-02-01")).unwrap();
    let w = report.suppliers.iter().find(|x| x.supplier_id == winter.id).unwrap();
    assert_eq!(w.method, ProjectionMethod::RecentAverage { months: 3 });
    assert_eq!(w.next_months[0].month, day("2026-03-01"));
    near(w.next_months[0].tokens, off_daily * 3 / 2 * 31, "March, the first peak month");
    assert_eq!(w.next_months[0].quota, peak_quota);
}

#[test]
fn queries_run_off_thread_and_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let store = demo(dir.path(), &DemoConfig::new(10, 40, 3, day("2025-06-30")));
    let service = AnalyticsService::new(store.clone(), PricingTable::builtin(), QuotaPolicy::default());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let q = AnalyticsQuery::Series(SeriesQuery::new(day("2025-05-01"), day("2025-06-30"), Granularity::Day, Dimension::Provider));
        let ok = service.spawn(q.clone());
        assert!(ok.result.await.unwrap().is_ok());
        // Cancelled before its thread starts (cancelling after `spawn` races
        // a query this small, which can finish first on a busy machine).
        let handle = switchboard::engine::analytics::CancelHandle::new();
        handle.cancel();
        let cancelled = service.spawn_with(q, handle);
        assert!(matches!(cancelled.result.await.unwrap(), Err(AnalyticsError::Cancelled)));
    });
    let s = service.session().unwrap();
    s.cancel_handle().cancel();
    let e = s.projections(day("2025-06-30")).unwrap_err();
    assert!(matches!(e, AnalyticsError::Cancelled), "{e}");
}

fn export(out: &Path, from: &str, to: &str) -> ExportOptions {
    ExportOptions { from: day(from), to: day(to), supplier: None, group_by: None, out: out.to_path_buf(), force: false }
}

#[test]
fn csv_export_equals_the_database_and_is_safe() {
    let dir = tempfile::tempdir().unwrap();
    let store = demo(dir.path(), &DemoConfig::new(15, 30, 9, day("2025-06-30")));
    let out = dir.path().join("usage.csv");
    let opts = export(&out, "2025-06-10", "2025-06-20");
    let mut progress = Vec::new();
    let cancel = switchboard::engine::analytics::CancelHandle::new();
    let summary = export_usage(&store, &opts, &cancel, |p| progress.push(p)).unwrap();
    assert!(summary.rows > 1_000, "{}", summary.rows);
    assert_eq!(progress.last().unwrap().rows, summary.rows);
    assert_eq!(progress.last().unwrap().events_in_range, summary.rows, "the rollup count matches the events");

    // Re-read with the csv crate and compare with the rows in the database.
    let c = Connection::open(store.sqlite_path().unwrap()).unwrap();
    let mut st = c
        .prepare(
            "SELECT e.request_id, e.ts, s.name, s.vendor_type, e.provider, e.model, e.request_type, e.route, e.input_tokens, e.cached_tokens,
                e.output_tokens, e.cost_micros, e.latency_ms, e.status, coalesce(e.error_class, ''), e.event_id
             FROM usage_events e JOIN suppliers s ON s.id = e.supplier_id WHERE e.ts >= ?1 AND e.ts < ?2 ORDER BY e.ts, e.id",
        )
        .unwrap();
    let db: Vec<Vec<String>> = st
        .query_map([ms(day("2025-06-10")), ms(day("2025-06-21"))], |r| {
            let ts: i64 = r.get(1)?;
            Ok(vec![
                r.get::<_, String>(0)?,
                Utc.timestamp_millis_opt(ts).unwrap().format("%Y-%m-%dT%H:%M:%S").to_string(),
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                RequestType::from_code(r.get(6)?).unwrap().to_string(),
                Route::from_code(r.get(7)?).unwrap().to_string(),
                r.get::<_, i64>(8)?.to_string(),
                r.get::<_, i64>(9)?.to_string(),
                r.get::<_, i64>(10)?.to_string(),
                Micros(r.get(11)?).to_decimal_string(),
                r.get::<_, i64>(11)?.to_string(),
                r.get::<_, i64>(12)?.to_string(),
                UsageStatus::from_code(r.get(13)?).unwrap().to_string(),
                r.get(14)?,
                r.get(15)?,
            ])
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut rd = csv::Reader::from_path(&out).unwrap();
    let h = rd.headers().unwrap().clone();
    assert_eq!(&h[0], "timestamp_utc");
    for col in ["supplier_name", "vendor_type", "cost_usd", "latency_ms", "status", "error_class", "request_id", "total_tokens"] {
        assert!(h.iter().any(|x| x == col), "{col} column");
    }
    let idx = |name: &str| h.iter().position(|x| x == name).unwrap();
    let cols = [
        "request_id",
        "timestamp_utc",
        "supplier_name",
        "vendor_type",
        "provider",
        "model",
        "request_type",
        "route",
        "input_tokens",
        "cached_tokens",
        "output_tokens",
        "cost_usd",
        "cost_micro_usd",
        "latency_ms",
        "status",
        "error_class",
        "event_id",
    ]
    .map(idx);
    let csv_rows: Vec<Vec<String>> = rd.records().map(|r| r.unwrap()).map(|r| cols.iter().map(|i| r[*i].to_string()).collect()).collect();
    assert_eq!(csv_rows.len(), db.len());
    assert_eq!(csv_rows, db);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(!text.contains("sk-") && !text.contains("key_ref"), "no key material");
    assert!(text.starts_with("timestamp_utc,date,request_id"));

    // Grouped by day: the sums equal the events.
    let by_day = dir.path().join("by-day.csv");
    export_usage(&store, &ExportOptions { group_by: Some(GroupBy::Day), ..export(&by_day, "2025-06-10", "2025-06-20") }, &cancel, |_| {})
        .unwrap();
    let mut rd = csv::Reader::from_path(&by_day).unwrap();
    assert_eq!(&rd.headers().unwrap()[0], "date", "the per-day file calls its date column `date`, like the per-event file");
    let (mut req, mut cost) = (0u64, Micros::ZERO);
    for r in rd.deserialize::<std::collections::HashMap<String, String>>() {
        let r = r.unwrap();
        req += r["requests"].parse::<u64>().unwrap();
        cost += Micros::parse_decimal(&r["cost_usd"]).unwrap();
        assert_eq!(Micros::parse_decimal(&r["cost_usd"]).unwrap().0, r["cost_micro_usd"].parse::<i64>().unwrap());
        assert!(day(&r["date"]) >= day("2025-06-10"));
    }
    // Per month: a month is its first day.
    let by_month = dir.path().join("by-month-first-day.csv");
    export_usage(
        &store,
        &ExportOptions { group_by: Some(GroupBy::Month), ..export(&by_month, "2025-06-10", "2025-06-20") },
        &cancel,
        |_| {},
    )
    .unwrap();
    let dates: std::collections::BTreeSet<String> =
        csv::Reader::from_path(&by_month).unwrap().records().map(|r| r.unwrap()[0].to_string()).collect();
    assert_eq!(dates.into_iter().collect::<Vec<_>>(), ["2025-06-01"]);
    let (n, _, raw_cost) = raw_totals(&c, &format!("ts >= {} AND ts < {}", ms(day("2025-06-10")), ms(day("2025-06-21"))));
    assert_eq!((req, cost.0), (n, raw_cost));

    // An existing file is refused (and left as it was) unless forced.
    let before = std::fs::read(&out).unwrap();
    let e = export_usage(&store, &opts, &cancel, |_| {}).unwrap_err();
    assert!(matches!(e, ExportError::Exists(_)) && e.to_string().contains("--force"), "{e}");
    assert_eq!(std::fs::read(&out).unwrap(), before);
    let narrower = ExportOptions { from: day("2025-06-15"), force: true, ..opts.clone() };
    let s2 = export_usage(&store, &narrower, &cancel, |_| {}).unwrap();
    assert!(s2.rows < summary.rows);

    // A cancelled export and an unwritable destination leave nothing behind.
    let cancelled_out = dir.path().join("cancelled.csv");
    let c2 = switchboard::engine::analytics::CancelHandle::new();
    let c3 = c2.clone();
    let e = export_usage(&store, &export(&cancelled_out, "2025-06-01", "2025-06-30"), &c2, move |p| {
        if p.rows > 0 {
            c3.cancel();
        }
    });
    assert!(matches!(e, Err(ExportError::Cancelled)), "{e:?}");
    assert!(!cancelled_out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let blocker = dir.path().join("not-a-folder");
    std::fs::write(&blocker, "x").unwrap();
    let e = export_usage(&store, &export(&blocker.join("u.csv"), "2025-06-01", "2025-06-30"), &cancel, |_| {}).unwrap_err();
    assert!(matches!(e, ExportError::Io { .. }), "{e}");
    assert_eq!(std::fs::read(&blocker).unwrap(), b"x");

    // Bad input: clear errors.
    let e = export_usage(&store, &export(&dir.path().join("x.csv"), "2025-06-20", "2025-06-10"), &cancel, |_| {}).unwrap_err();
    assert!(e.to_string().contains("after"), "{e}");
    let e = export_usage(
        &store,
        &ExportOptions { supplier: Some(SupplierId(999)), ..export(&dir.path().join("x.csv"), "2025-06-01", "2025-06-02") },
        &cancel,
        |_| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("supplier list"), "{e}");
    assert!(!dir.path().join("x.csv").exists());

    // The same through the binary.
    let bin = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        c.env_remove("SWITCHBOARD_DB").arg("--db").arg(store.sqlite_path().unwrap());
        c
    };
    let o = bin().args(["export", "usage", "--from", "2025-06-10", "--to", "2025-06-20", "--out"]).arg(&out).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"), "{}", String::from_utf8_lossy(&o.stderr));
    let o = bin().args(["export", "usage", "--from", "2025-13-01", "--to", "2025-06-20", "--out", "y.csv"]).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("YYYY-MM-DD"));
    let month_out = dir.path().join("by-month.csv");
    let o = bin()
        .args(["export", "usage", "--from", "2025-06-01", "--to", "2025-06-30", "--group-by", "month", "--supplier", "2", "--out"])
        .arg(&month_out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("exporting"), "progress on stderr");
    let text = std::fs::read_to_string(&month_out).unwrap();
    assert!(text.lines().skip(1).all(|l| l.starts_with("2025-06-01,2,")), "a month is its first day: {text}");
}

/// Attributes of cell `r` (e.g. `B2`) in a worksheet XML.
fn cell<'a>(sheet: &'a str, r: &str) -> (&'a str, Option<&'a str>) {
    let start = sheet.find(&format!("<c r=\"{r}\"")).unwrap_or_else(|| panic!("cell {r} missing"));
    let rest = &sheet[start..];
    let end = rest.find("</c>").or_else(|| rest.find("/>")).unwrap();
    let c = &rest[..end];
    let v = c.find("<v>").map(|i| &c[i + 3..c[i..].find("</v>").unwrap() + i]);
    (c, v)
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let i = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    Some(&tag[i..i + tag[i..].find('"')?])
}

fn unzip(xlsx: &Path, member: &str) -> String {
    let o = Command::new("unzip").arg("-p").arg(xlsx).arg(member).output().expect("unzip is installed (scripts/test installs it)");
    assert!(o.status.success(), "unzip {member}");
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn libreoffice_reads_numbers_as_numbers_and_dates_as_dates() {
    let dir = tempfile::tempdir().unwrap();
    let store = demo(dir.path(), &DemoConfig::new(5, 10, 4, day("2025-06-30")));
    let out = dir.path().join("usage.csv");
    export_usage(&store, &export(&out, "2025-06-25", "2025-06-30"), &Default::default(), |_| {}).unwrap();
    let profile = dir.path().join("lo-profile");
    let o = Command::new("soffice")
        .arg(format!("-env:UserInstallation=file://{}", profile.display()))
        .args(["--headless", "--convert-to", "xlsx", "--outdir"])
        .arg(dir.path())
        .arg(&out)
        .output()
        .expect("LibreOffice (soffice) is installed: Debian package libreoffice-calc-nogui; scripts/test installs it");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let xlsx = dir.path().join("usage.xlsx");
    let sheet = unzip(&xlsx, "xl/worksheets/sheet1.xml");
    let styles = unzip(&xlsx, "xl/styles.xml");
    let text = std::fs::read_to_string(&out).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let col = |name: &str| (b'A' + header.iter().position(|h| *h == name).unwrap() as u8) as char;
    let csv_row: Vec<String> = csv::Reader::from_path(&out).unwrap().records().next().unwrap().unwrap().iter().map(String::from).collect();

    for name in ["cost_usd", "cost_micro_usd", "input_tokens", "total_tokens", "latency_ms"] {
        let (c, v) = cell(&sheet, &format!("{}2", col(name)));
        assert!(attr(c, "t").is_none_or(|t| t == "n"), "{name} is a number: {c}");
        let want: f64 = csv_row[header.iter().position(|h| *h == name).unwrap()].parse().unwrap();
        assert!((v.unwrap().parse::<f64>().unwrap() - want).abs() < 1e-9, "{name} value");
    }
    let xfs = &styles[styles.find("<cellXfs").unwrap()..];
    // Whether a cell's style is a date (or date-time) format.
    let date_style = |c: &str| -> bool {
        let style: usize = attr(c, "s").unwrap().parse().unwrap();
        let xf = xfs.split("<xf ").nth(style + 1).unwrap();
        let fmt_id: u32 = attr(&format!(" {xf}"), "numFmtId").unwrap().parse().unwrap();
        (14..=22).contains(&fmt_id)
            || styles.split("<numFmt ").skip(1).any(|f| {
                attr(&format!(" {f}"), "numFmtId") == Some(&fmt_id.to_string())
                    && attr(&format!(" {f}"), "formatCode").is_some_and(|c| c.contains("yy"))
            })
    };
    // The date column: a number (days since 1899-12-30) with a date format.
    let (c, v) = cell(&sheet, &format!("{}2", col("date")));
    assert!(attr(c, "t").is_none_or(|t| t == "n"), "date is a number: {c}");
    let serial: i64 = v.unwrap().parse().unwrap();
    let want = day(&csv_row[1]);
    assert_eq!(day("1899-12-30") + Duration::days(serial), want);
    assert!(date_style(c), "date cell has a date format: {c}");
    // The timestamp: a date-time number (days and the fraction of the day), to the second.
    let (c, v) = cell(&sheet, &format!("{}2", col("timestamp_utc")));
    assert!(attr(c, "t").is_none_or(|t| t == "n"), "timestamp_utc is a number, not text: {c}");
    let serial: f64 = v.unwrap().parse().unwrap();
    let want = chrono::NaiveDateTime::parse_from_str(&csv_row[0], "%Y-%m-%dT%H:%M:%S").unwrap();
    let secs = (serial * 86_400.0).round() as i64;
    assert_eq!(day("1899-12-30").and_hms_opt(0, 0, 0).unwrap() + Duration::seconds(secs), want);
    assert!(date_style(c), "timestamp cell has a date-time format: {c}");
}

async fn ledger_writer_case(sync: switchboard::store::LedgerSync) {
    use switchboard::engine::ledger::Ledger;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("writer.db")).unwrap();
    let s = store
        .insert_supplier(&NewSupplier::new("Writer Florist", VendorType::Florist, Tier::Professional, AiMode::Platform), Utc::now())
        .unwrap();
    let ledger = Ledger::start_synced(&store, sync).unwrap();
    let t0 = Utc.with_ymd_and_hms(2025, 6, 1, 9, 0, 0).unwrap();
    for i in 0..20 {
        ledger.record(event(&format!("alone-{i}"), t0 + Duration::seconds(i), s.id, Route::Platform, 100)).await.unwrap();
    }
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                for j in 0..10 {
                    let id = format!("group-{i}-{j}");
                    ledger
                        .record(event(&id, t0 + Duration::hours(30) + Duration::seconds(i * 10 + j), s.id, Route::Client, 50))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    // A retried request id is not stored again.
    ledger.record(event("alone-3", t0, s.id, Route::Platform, 100)).await.unwrap();
    ledger.flush().await;
    use std::sync::atomic::Ordering::Relaxed;
    // Every record is journaled; the retried one is recognised when folded.
    assert_eq!(ledger.stats().committed.load(Relaxed), 20 + 640 + 1);
    assert_eq!(ledger.stats().duplicates.load(Relaxed), 1);
    assert!(ledger.stats().batches.load(Relaxed) < 20 + 640, "journaled events were folded in batches");
    let syncs = ledger.stats().fdatasyncs.load(Relaxed);
    if sync == switchboard::store::LedgerSync::Full {
        assert!(syncs >= 20, "each lone event waited for its own sync: {syncs}");
        assert!(syncs < 20 + 640 + 1, "concurrent events shared group syncs: {syncs}");
    } else {
        assert_eq!(syncs, 0, "process durability never syncs on the request path");
    }
    assert_eq!(ledger.recent(5).len(), 5);
    let c = Connection::open(dir.path().join("writer.db")).unwrap();
    assert_eq!(raw_totals(&c, "1").0, 660);
    let tables = ["usage_daily", "usage_daily_dims", "usage_monthly_supplier", "usage_supplier_month", "usage_supplier_day"];
    let live: Vec<_> = tables.iter().map(|t| dump(&c, t)).collect();
    let requests: i64 = c.query_row("SELECT sum(requests) FROM usage_daily", [], |r| r.get(0)).unwrap();
    assert_eq!(requests, 660, "flush folded every committed event");
    store.rebuild_daily_rollups().unwrap();
    assert_eq!(live, tables.iter().map(|t| dump(&c, t)).collect::<Vec<_>>());
}
