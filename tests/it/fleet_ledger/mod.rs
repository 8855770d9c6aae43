//! Usage shipped to PostgreSQL and quota leases that hold across instances
//! (issue 25, part C), against the private cluster scripts/test starts: the
//! fold is exactly once and all or nothing (events, rollups, quota months,
//! the lease and the journal watermark), the rollups equal the events, two
//! "instances" racing 64 tasks for one supplier's quota end within the bound
//! of docs/fleet-quotas.md, an expired lease stays counted until its journal
//! is folded or it is written off (audited), and wedding-day usage is debited
//! from the lease, negative, never past the supplier's local midnight.
//! Each test works in a database of its own.

use crate::support::pg::{base_url, fresh_db, raw};
use chrono::{DateTime, Duration as CDuration, NaiveDate, TimeZone, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use switchboard::domain::{JournalPos, Micros, ProviderKind, RequestType, Route, SupplierId, TokenUsage, UsageEvent, UsageStatus};
use switchboard::engine::quota_lease::{LeaseSettings, LocalLease, Refusal, lease_end, quota_month};
use switchboard::store::UsageLedger;
use switchboard::store::pg::leases::{self, LeaseError, LeaseKey};
use switchboard::store::pg::ledger::{self, PgLedger};
use switchboard::store::pg::{PgStore, schema};

mod router;
mod write_off;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap()
}

/// A store on a fresh database, and a raw client on it.
fn open(test: &str, name: &str) -> Option<(tokio::runtime::Runtime, PgStore, tokio_postgres::Client, String)> {
    let base = base_url(test)?;
    let rt = rt();
    let (store, client, url) = rt.block_on(async {
        let url = fresh_db(&base, name).await;
        let store = PgStore::open(&url).await.unwrap();
        (store, raw(&url).await, url)
    });
    Some((rt, store, client, url))
}

fn june(d: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, d, h, m, 0).unwrap()
}

fn month() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 6, 1).unwrap()
}

fn event(id: &str, supplier: i64, ts: DateTime<Utc>, route: Route, tokens: u64) -> UsageEvent {
    UsageEvent {
        event_id: id.into(),
        request_id: format!("req-{id}"),
        idempotency_key: None,
        ts,
        supplier_id: SupplierId(supplier),
        account_id: None,
        provider: ProviderKind::OpenAi,
        model: "gpt-4o-mini".into(),
        request_type: RequestType::EmailTemplate,
        route,
        usage: TokenUsage { input: tokens, output: tokens / 2, cached_read: 3, cache_write: 1, reasoning: 2, estimated: false },
        cost: Micros(tokens as i64 * 7),
        saved: Micros(if route == Route::Cache { 11 } else { 0 }),
        latency_ms: 120,
        status: if tokens.is_multiple_of(5) { UsageStatus::Error } else { UsageStatus::Ok },
        error_class: None,
    }
}

/// Platform-quota tokens of an event, as the quota counts them.
fn quota_tokens(e: &UsageEvent) -> i64 {
    if e.counts_against_quota() { e.usage.total() as i64 } else { 0 }
}

/// An event of `tokens` platform tokens in all (input only).
fn platform(id: String, supplier: i64, ts: DateTime<Utc>, tokens: u64) -> UsageEvent {
    let mut e = event(&id, supplier, ts, Route::Platform, 0);
    e.usage = TokenUsage { input: tokens, ..TokenUsage::default() };
    e.status = UsageStatus::Ok;
    e
}

fn pos(segment: u64, offset: u64) -> JournalPos {
    JournalPos { segment, offset }
}

/// Every rollup, as sorted text rows (to compare with the events and with a rebuild).
async fn rollups(c: &tokio_postgres::Client) -> Vec<String> {
    let mut out = Vec::new();
    for t in ["usage_daily", "usage_daily_dims", "usage_monthly_supplier", "usage_supplier_month", "usage_supplier_day", "quota_months"] {
        for r in c.query(&format!("SELECT row_to_json(t)::text FROM {t} t ORDER BY 1"), &[]).await.unwrap() {
            out.push(format!("{t} {}", r.get::<_, String>(0)));
        }
    }
    out
}

/// Each rollup's measures summed, against the same sums from the events.
async fn assert_rollups_equal_events(c: &tokio_postgres::Client) {
    let sums = "count(*)::int8, sum(input_tokens)::int8, sum(output_tokens)::int8, sum(cached_tokens)::int8, sum(cache_write_tokens)::int8, sum(reasoning_tokens)::int8, sum(cost_micros)::int8, sum(latency_ms)::int8, sum((status NOT IN (0, 3))::int)::int8";
    let from_events = c.query_one(&format!("SELECT {sums} FROM usage_events"), &[]).await.unwrap();
    let events: Vec<i64> = (0..9).map(|i| from_events.get::<_, Option<i64>>(i).unwrap_or(0)).collect();
    for t in ["usage_daily", "usage_daily_dims", "usage_monthly_supplier", "usage_supplier_month", "usage_supplier_day"] {
        let r = c
            .query_one(
                &format!(
                    "SELECT sum(requests)::int8, sum(input_tokens)::int8, sum(output_tokens)::int8, sum(cached_tokens)::int8, sum(cache_write_tokens)::int8,
                        sum(reasoning_tokens)::int8, sum(cost_micros)::int8, sum(latency_ms_sum)::int8, sum(errors)::int8 FROM {t}"
                ),
                &[],
            )
            .await
            .unwrap();
        let got: Vec<i64> = (0..9).map(|i| r.get::<_, Option<i64>>(i).unwrap_or(0)).collect();
        assert_eq!(got, events, "{t} sums the events");
    }
    // Per supplier and day / month, the quota tokens, and the days of the events.
    let per_day = c
        .query(
            "SELECT supplier_id, (ts AT TIME ZONE 'UTC')::date, sum(CASE WHEN route IN (0, 2) THEN input_tokens + output_tokens + cached_tokens + cache_write_tokens ELSE 0 END)::int8
             FROM usage_events GROUP BY 1, 2 ORDER BY 1, 2",
            &[],
        )
        .await
        .unwrap();
    let rolled = c.query("SELECT supplier_id, day, quota_tokens FROM usage_supplier_day ORDER BY 1, 2", &[]).await.unwrap();
    let a: Vec<(i64, NaiveDate, i64)> = per_day.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    let b: Vec<(i64, NaiveDate, i64)> = rolled.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(a, b, "usage_supplier_day");
    let mismatch: i64 = c
        .query_one(
            "SELECT count(*) FROM usage_supplier_month m FULL JOIN quota_months q USING (supplier_id, month)
             WHERE coalesce(m.quota_tokens, 0) <> coalesce(q.used_folded, 0)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(mismatch, 0, "quota_months.used_folded is the folded quota usage");
    let saved: (Option<i64>, Option<i64>) = {
        let r = c
            .query_one("SELECT (SELECT sum(saved_micros)::int8 FROM usage_events), (SELECT sum(saved_micros)::int8 FROM usage_daily)", &[])
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(saved.0, saved.1, "what cache hits saved");
}

async fn count(c: &tokio_postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.unwrap().get(0)
}

#[test]
fn the_fold_is_exactly_once_and_the_watermark_never_moves_back() {
    let Some((rt, store, c, _)) = open("fleet_ledger::the_fold_is_exactly_once_and_the_watermark_never_moves_back", "sbt_fl_once") else {
        return;
    };
    let mut ledger = PgLedger::new(store.clone());
    let routes = [Route::Platform, Route::Client, Route::Failover, Route::Cache, Route::Shadow, Route::Migration];
    let batch_a: Vec<UsageEvent> = (0..40)
        .map(|i| {
            event(
                &format!("a{i}"),
                1 + i % 3,
                june(1 + (i % 4) as u32, 23, 59) + CDuration::seconds(i),
                routes[i as usize % 6],
                100 + i as u64,
            )
        })
        .collect();
    assert_eq!(ledger.journal_watermark(7).unwrap(), None);
    assert_eq!(ledger.fold_batch(7, &batch_a, pos(1, 4_000)).unwrap(), 40);
    assert_eq!(ledger.journal_watermark(7).unwrap(), Some(pos(1, 4_000)));
    // The same batch again (a fold that committed, then a crash before the
    // journal knew): nothing new, nothing counted twice.
    let before = rt.block_on(rollups(&c));
    assert_eq!(ledger.fold_batch(7, &batch_a, pos(1, 4_000)).unwrap(), 0);
    assert_eq!(rt.block_on(rollups(&c)), before, "a replayed batch changes no rollup");
    // A replay past the watermark with new records behind it (a crash before
    // the watermark moved): only the new ones count.
    let batch_b: Vec<UsageEvent> = (0..25)
        .map(|i| event(&format!("b{i}"), 2, june(15, 10, 0) + CDuration::seconds(i), routes[i as usize % 3], 50 + i as u64))
        .collect();
    let replay: Vec<UsageEvent> = batch_a[30..].iter().cloned().chain(batch_b.iter().cloned()).collect();
    assert_eq!(ledger.fold_batch(7, &replay, pos(2, 900)).unwrap(), 25);
    // Never backwards; another journal has its own watermark.
    assert_eq!(ledger.fold_batch(7, &[], pos(1, 10)).unwrap(), 0);
    assert_eq!(ledger.fold_batch(7, &batch_b[..3], pos(2, 100)).unwrap(), 0);
    assert_eq!(ledger.journal_watermark(7).unwrap(), Some(pos(2, 900)));
    assert_eq!(ledger.fold_batch(8, &[], pos(0, 64)).unwrap(), 0);
    assert_eq!(ledger.journal_watermark(8).unwrap(), Some(pos(0, 64)));
    assert_eq!(ledger.journal_watermark(7).unwrap(), Some(pos(2, 900)));
    // Duplicates inside one batch count once; `append` folds its rows too.
    let dup = event("c0", 3, june(20, 8, 0), Route::Platform, 77);
    assert_eq!(ledger.append(&[dup.clone(), dup.clone()]).unwrap(), 1);
    assert_eq!(ledger.fold_rollups().unwrap(), 0, "nothing is ever left to fold on PostgreSQL");
    ledger.checkpoint().unwrap();

    rt.block_on(async {
        assert_eq!(count(&c, "SELECT count(*) FROM usage_events").await, 66);
        assert_rollups_equal_events(&c).await;
    });
    // The quota figure: whole UTC days of platform and failover tokens.
    let all: Vec<&UsageEvent> = batch_a.iter().chain(&batch_b).chain([&dup]).collect();
    for s in 1..=3 {
        let want: i64 = all.iter().filter(|e| e.supplier_id.0 == s).map(|e| quota_tokens(e)).sum();
        let got = ledger.quota_tokens_used(SupplierId(s), june(1, 0, 0), Utc.with_ymd_and_hms(2026, 7, 1, 0, 0, 0).unwrap()).unwrap();
        assert_eq!(got as i64, want, "supplier {s}");
        assert!(want > 0);
    }
    // Days 2..4 of June only (events of June 1 23:59 are on the 1st, UTC).
    let s1_from_2nd: i64 = all.iter().filter(|e| e.supplier_id.0 == 1 && e.ts >= june(2, 0, 0)).map(|e| quota_tokens(e)).sum();
    assert_eq!(ledger.quota_tokens_used(SupplierId(1), june(2, 0, 0), june(30, 0, 0)).unwrap() as i64, s1_from_2nd);
    // A rebuild from the events gives the same rollups (store copy uses it).
    let folded = rt.block_on(rollups(&c));
    rt.block_on(ledger::rebuild_rollups(&store)).unwrap();
    assert_eq!(rt.block_on(rollups(&c)), folded, "the incremental fold equals a rebuild");
}

#[test]
fn the_migration_fills_the_rollups_of_a_copied_ledger() {
    let Some(base) = base_url("fleet_ledger::the_migration_fills_the_rollups_of_a_copied_ledger") else { return };
    let rt = rt();
    rt.block_on(async {
        let url = fresh_db(&base, "sbt_fl_migrate").await;
        let before = schema::MIGRATIONS.iter().position(|m| *m == ledger::LEDGER_SCHEMA).expect("the ledger migration") as i64;
        let old = PgStore::open_at_version(&url, before).await.unwrap();
        assert_eq!(old.schema_version().await.unwrap(), before);
        let c = raw(&url).await;
        for (i, route) in [(1, 0), (2, 1), (3, 2), (4, 0)] {
            c.execute(
                "INSERT INTO usage_events (event_id, ts, supplier_id, provider, model, request_type, route, input_tokens, output_tokens,
                    cached_tokens, cache_write_tokens, reasoning_tokens, cost_micros, latency_ms, status)
                 VALUES ($1, $2, 5, 'openai', 'gpt-4o-mini', 0, $3, 100, 10, 1, 1, 0, 9, 50, 0)",
                &[&format!("old{i}"), &june(i as u32, 12, 0), &(route as i16)],
            )
            .await
            .unwrap();
        }
        drop(old);
        let store = PgStore::open(&url).await.unwrap();
        assert_eq!(store.schema_version().await.unwrap(), schema::LATEST_VERSION);
        assert_rollups_equal_events(&c).await;
        let f = leases::month_figures(&store, SupplierId(5), month()).await.unwrap();
        assert_eq!(f.used_folded, 3 * 112, "three platform or failover events of 112 tokens");
    });
}

#[test]
fn a_failed_fold_applies_nothing_lease_included() {
    let Some((rt, store, c, _)) = open("fleet_ledger::a_failed_fold_applies_nothing_lease_included", "sbt_fl_atomic") else { return };
    let key = LeaseKey { supplier: SupplierId(1), month: month(), instance: 3 };
    let now = june(10, 12, 0);
    rt.block_on(leases::lease(&store, key, 5_000, 100_000, now, now + CDuration::minutes(1))).unwrap();
    let mut ledger = PgLedger::new(store.clone());
    let first: Vec<UsageEvent> = (0..4).map(|i| platform(format!("ok{i}"), 1, now, 100)).collect();
    assert_eq!(ledger.fold_batch(3, &first, pos(0, 400)).unwrap(), 4);
    let before = rt.block_on(rollups(&c));
    let lease_before = rt.block_on(leases::lease_row(&store, key)).unwrap().unwrap();
    assert_eq!((lease_before.granted, lease_before.folded), (5_000, 400));

    // The lease shrink is the fold's last write before the watermark: make
    // it fail, after the insert and the rollups went through.
    rt.block_on(c.batch_execute(
        "CREATE FUNCTION sbt_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected failure after the insert'; END $$;
         CREATE TRIGGER sbt_refuse BEFORE UPDATE ON quota_leases FOR EACH ROW EXECUTE FUNCTION sbt_refuse();",
    ))
    .unwrap();
    let second: Vec<UsageEvent> = (0..6).map(|i| platform(format!("new{i}"), 1, now, 250)).collect();
    let err = ledger.fold_batch(3, &second, pos(0, 1_000)).unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    rt.block_on(async {
        assert_eq!(count(&c, "SELECT count(*) FROM usage_events").await, 4, "no event of the failed batch");
        assert_eq!(rollups(&c).await, before, "no rollup or quota month moved");
    });
    assert_eq!(ledger.journal_watermark(3).unwrap(), Some(pos(0, 400)), "the watermark stayed");
    assert_eq!(rt.block_on(leases::lease_row(&store, key)).unwrap().unwrap(), lease_before, "the lease stayed");

    // The journal still has the batch: the retry counts it once.
    rt.block_on(c.batch_execute("DROP TRIGGER sbt_refuse ON quota_leases")).unwrap();
    assert_eq!(ledger.fold_batch(3, &second, pos(0, 1_000)).unwrap(), 6);
    let after = rt.block_on(leases::lease_row(&store, key)).unwrap().unwrap();
    assert_eq!((after.granted, after.folded, after.outstanding()), (5_000, 1_900, 3_100));
    let f = rt.block_on(leases::month_figures(&store, SupplierId(1), month())).unwrap();
    assert_eq!((f.used_folded, f.outstanding, f.counted()), (1_900, 3_100, 5_000), "granted tokens are counted once, folded or not");
    rt.block_on(assert_rollups_equal_events(&c));
}

#[test]
fn an_expired_lease_stays_counted_until_its_journal_folds_or_it_is_written_off() {
    let Some((rt, store, c, _)) =
        open("fleet_ledger::an_expired_lease_stays_counted_until_its_journal_folds_or_it_is_written_off", "sbt_fl_expired")
    else {
        return;
    };
    let quota = 50_000;
    let t0 = june(10, 12, 0);
    let ttl = Duration::from_secs(60);
    let (one, two) = (
        LeaseKey { supplier: SupplierId(1), month: month(), instance: 1 },
        LeaseKey { supplier: SupplierId(1), month: month(), instance: 2 },
    );
    rt.block_on(async {
        let g = leases::lease(&store, one, 10_000, quota, t0, lease_end(t0, ttl, chrono_tz::Tz::UTC)).await.unwrap();
        assert_eq!(g.granted_now, 10_000);
        // Instance 1 serves 3,000 tokens, journals them, and dies before its fold.
        let journal: Vec<UsageEvent> = (0..3).map(|i| platform(format!("dead{i}"), 1, t0, 1_000)).collect();
        // Two minutes later its lease has expired; it still counts.
        let t1 = t0 + CDuration::minutes(2);
        assert!(leases::lease_row(&store, one).await.unwrap().unwrap().expired(t1));
        let g = leases::lease(&store, two, 100_000, quota, t1, lease_end(t1, ttl, chrono_tz::Tz::UTC)).await.unwrap();
        assert_eq!(g.granted_now, 40_000, "the expired lease's 10,000 stay counted");
        assert_eq!(leases::lease(&store, two, 1, quota, t1, t1 + CDuration::minutes(1)).await.unwrap().granted_now, 0);
        // Its journal arrives (the instance restarted, or its disk was read): the fold shrinks the lease.
        assert_eq!(ledger::fold(&store, Some(1), &journal, Some(pos(0, 300))).await.unwrap(), 3);
        let f = leases::month_figures(&store, SupplierId(1), month()).await.unwrap();
        assert_eq!((f.used_folded, f.outstanding), (3_000, 7_000 + 40_000));
        assert_eq!(leases::lease(&store, two, 1, quota, t1, t1 + CDuration::minutes(1)).await.unwrap().granted_now, 0);
        // The journal is folded to its end: the rest of the lease is released, and the count is exact.
        assert_eq!(leases::close_instance(&store, 1, t1).await.unwrap(), 7_000);
        assert_eq!(leases::close_instance(&store, 1, t1).await.unwrap(), 0, "closing twice releases nothing");
        let f = leases::month_figures(&store, SupplierId(1), month()).await.unwrap();
        assert_eq!((f.used_folded, f.outstanding), (3_000, 40_000));
        assert_eq!(leases::lease(&store, two, 100_000, quota, t1, t1 + CDuration::minutes(1)).await.unwrap().granted_now, 7_000);

        // Another supplier: an instance dies and its journal never comes back.
        let lost = LeaseKey { supplier: SupplierId(2), month: month(), instance: 1 };
        leases::lease(&store, lost, 8_000, quota, t0, lease_end(t0, ttl, chrono_tz::Tz::UTC)).await.unwrap();
        let early = leases::write_off(&store, lost, "am@wedsync.example", "instance gone", t0 + CDuration::seconds(30)).await;
        assert!(matches!(early, Err(LeaseError::NotExpired { .. })), "a live lease cannot be written off: {early:?}");
        let missing = leases::write_off(&store, LeaseKey { instance: 9, ..lost }, "am@wedsync.example", "x", t1).await;
        assert!(matches!(missing, Err(LeaseError::NoLease { .. })), "{missing:?}");
        assert_eq!(count(&c, "SELECT count(*) FROM audit_log").await, 0, "refusals write nothing");
        assert_eq!(leases::month_figures(&store, SupplierId(2), month()).await.unwrap().counted(), 8_000);
        let n = leases::write_off(&store, lost, "am@wedsync.example", "host lost with its disk", t1).await.unwrap();
        assert_eq!(n, 8_000);
        assert_eq!(leases::month_figures(&store, SupplierId(2), month()).await.unwrap().counted(), 0);
        assert_eq!(leases::lease_row(&store, lost).await.unwrap().unwrap().state, "written_off");
        let audit = c.query_one("SELECT ts, actor, action, supplier_id, result, detail FROM audit_log", &[]).await.unwrap();
        assert_eq!(audit.get::<_, DateTime<Utc>>(0), t1);
        assert_eq!(audit.get::<_, String>(1), "am@wedsync.example");
        assert_eq!(audit.get::<_, String>(2), "quota.lease_write_off");
        assert_eq!(audit.get::<_, Option<i64>>(3), Some(2));
        let detail: String = audit.get(5);
        assert!(detail.contains("8000 tokens") && detail.contains("host lost with its disk") && detail.contains("2026-06"), "{detail}");
        // If its journal turns up after all, that usage counts once.
        assert_eq!(ledger::fold(&store, Some(1), &[platform("late".into(), 2, t1, 500)], Some(pos(0, 400))).await.unwrap(), 1);
        assert_eq!(leases::month_figures(&store, SupplierId(2), month()).await.unwrap().counted(), 500);
    });
}

#[test]
fn wedding_day_usage_is_debited_negative_and_never_served_past_midnight() {
    let Some((rt, store, _c, _)) =
        open("fleet_ledger::wedding_day_usage_is_debited_negative_and_never_served_past_midnight", "sbt_fl_wedding")
    else {
        return;
    };
    let tz = chrono_tz::America::New_York;
    let settings = LeaseSettings {
        slice_tokens: 1_000,
        refill_below: 100,
        ttl: Duration::from_secs(3_600),
        renew_before: Duration::from_secs(60),
        ..LeaseSettings::default()
    };
    let quota = 3_000;
    let key = LeaseKey { supplier: SupplierId(4), month: month(), instance: 1 };
    // 23:30 in New York on June 10, the supplier's wedding day (03:30 UTC on the 11th).
    let now = Utc.with_ymd_and_hms(2026, 6, 11, 3, 30, 0).unwrap();
    let midnight = Utc.with_ymd_and_hms(2026, 6, 11, 4, 0, 0).unwrap();
    let end = lease_end(now, settings.ttl, tz);
    assert_eq!(end, midnight, "an hour's lease ends at the supplier's local midnight");
    let mut local = LocalLease::new(quota_month(now));
    let want = local.want(&settings, now).unwrap();
    let g = rt.block_on(leases::lease(&store, key, want, quota, now, end)).unwrap();
    local.apply(g.granted, g.folded, g.expires_at);
    assert_eq!(local.remaining(), 1_000);
    // The wedding: served past the lease, debited from it.
    local.try_reserve(3_000, true, now).unwrap();
    local.settle(3_000, 2_500);
    assert_eq!(local.remaining(), -1_500);
    assert_eq!(local.try_reserve(1, false, now), Err(Refusal::NoRoom { remaining: -1_500 }));
    let wedding = platform("wedding".into(), 4, now, 2_500);
    assert_eq!(rt.block_on(ledger::fold(&store, Some(1), std::slice::from_ref(&wedding), Some(pos(0, 100)))).unwrap(), 1);
    let row = rt.block_on(leases::lease_row(&store, key)).unwrap().unwrap();
    assert_eq!((row.remaining(), row.outstanding()), (-1_500, 0), "the stored lease is negative too");

    // Local midnight: the next day is no wedding day, and the lease has ended.
    assert_eq!(local.try_reserve(1, false, midnight), Err(Refusal::Expired));
    assert_eq!(local.want(&settings, midnight), Some(1_000));
    let g = rt.block_on(leases::lease(&store, key, 1_000, quota, midnight, lease_end(midnight, settings.ttl, tz))).unwrap();
    assert_eq!(g.granted_now, 500, "the wedding's 2,500 count against the 3,000 quota");
    local.apply(g.granted, g.folded, g.expires_at);
    assert_eq!(local.remaining(), 500);
    assert_eq!(local.expires_at, midnight + CDuration::hours(1));
    let f = rt.block_on(leases::month_figures(&store, SupplierId(4), month())).unwrap();
    assert_eq!(f.counted(), 3_000);

    // Unfolded wedding usage at renewal: the local debt still refuses.
    let key2 = LeaseKey { instance: 2, ..key };
    let mut other = LocalLease::new(month());
    let g = rt.block_on(leases::lease(&store, LeaseKey { supplier: SupplierId(5), ..key2 }, 1_000, 10_000, now, end)).unwrap();
    other.apply(g.granted, g.folded, g.expires_at);
    other.try_reserve(4_000, true, now).unwrap();
    other.settle(4_000, 4_000);
    let g = rt
        .block_on(leases::lease(
            &store,
            LeaseKey { supplier: SupplierId(5), ..key2 },
            1_000,
            10_000,
            midnight,
            midnight + CDuration::hours(1),
        ))
        .unwrap();
    other.apply(g.granted, g.folded, g.expires_at);
    assert_eq!(other.remaining(), -2_000, "the new slice pays the unfolded debt first");
    assert_eq!(other.try_reserve(1, false, midnight), Err(Refusal::NoRoom { remaining: -2_000 }));
}

/// One racing instance: its lease, its journal of usage not folded yet, and its position in that journal.
struct Instance {
    id: i64,
    store: PgStore,
    lease: parking_lot::Mutex<LocalLease>,
    /// One asker at a time per instance, as the lease task of a `serve`.
    asking: tokio::sync::Mutex<()>,
    /// The journal and the fold (one fold at a time, as the fold thread).
    journal: tokio::sync::Mutex<(Vec<UsageEvent>, u64)>,
    spent: AtomicU64,
}

impl Instance {
    async fn fold(&self, all: bool) {
        let mut j = self.journal.lock().await;
        if j.0.is_empty() || (!all && j.0.len() < 16) {
            return;
        }
        let batch = std::mem::take(&mut j.0);
        j.1 += batch.len() as u64 * 100;
        let new = ledger::fold(&self.store, Some(self.id), &batch, Some(pos(0, j.1))).await.unwrap();
        assert_eq!(new, batch.len());
    }
}

#[test]
fn the_quota_race_across_two_instances_ends_within_the_bound() {
    let Some((rt, store, c, url)) = open("fleet_ledger::the_quota_race_across_two_instances_ends_within_the_bound", "sbt_fl_race") else {
        return;
    };
    const QUOTA: u64 = 200_000;
    const MAX_REQUEST: u64 = 400;
    /// Actual usage passes its reservation by at most this (an estimate that was low).
    const MAX_EXCESS: u64 = 20;
    const TASKS: usize = 64;
    let now = june(10, 12, 0);
    let settings = LeaseSettings {
        slice_tokens: 5_000,
        refill_below: 1_000,
        ttl: Duration::from_secs(60),
        renew_before: Duration::from_secs(10),
        ..LeaseSettings::default()
    };
    let supplier = SupplierId(1);
    let instances: Vec<Arc<Instance>> = rt.block_on(async {
        let mut v = Vec::new();
        for id in [11, 12] {
            // Each instance has a pool of its own, as a separate process would.
            let store = if id == 11 { store.clone() } else { PgStore::open(&url).await.unwrap() };
            v.push(Arc::new(Instance {
                id,
                store,
                lease: parking_lot::Mutex::new(LocalLease::new(quota_month(now))),
                asking: tokio::sync::Mutex::new(()),
                journal: tokio::sync::Mutex::new((Vec::new(), 0)),
                spent: AtomicU64::new(0),
            }));
        }
        v
    });
    let served = Arc::new(AtomicU64::new(0));
    rt.block_on(async {
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let inst = instances[t % 2].clone();
            let served = served.clone();
            tasks.push(tokio::spawn(async move {
                let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1);
                let mut next = move || {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed
                };
                for r in 0.. {
                    let n = 100 + next() % (MAX_REQUEST - 100 + 1);
                    let actual = n / 2 + next() % (n / 2 + MAX_EXCESS + 1);
                    let mut reserved = inst.lease.lock().try_reserve(n, false, now).is_ok();
                    if !reserved {
                        let _asking = inst.asking.lock().await;
                        reserved = inst.lease.lock().try_reserve(n, false, now).is_ok();
                        if !reserved {
                            let key = LeaseKey { supplier, month: month(), instance: inst.id };
                            let want = inst.lease.lock().want(&settings, now).unwrap_or(settings.slice_tokens);
                            let g = leases::lease(&inst.store, key, want, QUOTA, now, lease_end(now, settings.ttl, chrono_tz::Tz::UTC))
                                .await
                                .unwrap();
                            let mut l = inst.lease.lock();
                            l.apply(g.granted, g.folded, g.expires_at);
                            reserved = l.try_reserve(n, false, now).is_ok();
                            if !reserved && g.granted_now > 0 {
                                continue; // a partial slice: the next smaller request may fit
                            }
                        }
                    }
                    if !reserved {
                        break;
                    }
                    // The provider call.
                    tokio::task::yield_now().await;
                    inst.lease.lock().settle(n, actual);
                    inst.spent.fetch_add(actual, Ordering::Relaxed);
                    served.fetch_add(1, Ordering::Relaxed);
                    inst.journal.lock().await.0.push(platform(format!("i{}-t{t}-r{r}", inst.id), 1, now, actual));
                    inst.fold(false).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        for inst in &instances {
            inst.fold(true).await;
            let key = LeaseKey { supplier, month: month(), instance: inst.id };
            let keep = inst.lease.lock().keep();
            leases::return_unused(&inst.store, key, keep, now).await.unwrap();
        }
    });
    let total: u64 = instances.iter().map(|i| i.spent.load(Ordering::Relaxed)).sum();
    let f = rt.block_on(leases::month_figures(&store, supplier, month())).unwrap();
    assert_eq!(f.used_folded as u64, total, "every served token folded once");
    assert_eq!(f.outstanding, 0, "all folded and returned: nothing outstanding");
    assert_eq!(rt.block_on(count(&c, "SELECT count(*) FROM usage_events")) as u64, served.load(Ordering::Relaxed));
    // docs/fleet-quotas.md: past the quota by at most what the requests in
    // flight at each instance's last reservation used past their
    // reservations: here at most TASKS × MAX_EXCESS.
    let bound = TASKS as u64 * MAX_EXCESS;
    assert!(total <= QUOTA + bound, "{total} tokens served on a quota of {QUOTA} (bound +{bound})");
    // And the quota was used, not stranded in leases: each instance stops
    // only when neither its lease nor the database has room for a request.
    assert!(total + 2 * MAX_REQUEST >= QUOTA, "only {total} of {QUOTA} served");
    // Both instances served a share.
    for i in &instances {
        assert!(i.spent.load(Ordering::Relaxed) > QUOTA / 10, "instance {} served {}", i.id, i.spent.load(Ordering::Relaxed));
    }
    rt.block_on(assert_rollups_equal_events(&c));
}

/// Fold throughput against PostgreSQL by batch size (BENCHMARKS.md: "how
/// fold throughput scales with batch size"). Run with
/// `scripts/test -- --test it fleet_ledger::fold_throughput -- --ignored --nocapture`.
#[test]
#[ignore = "a benchmark: run on demand"]
fn fold_throughput_by_batch_size() {
    let Some((rt, store, _c, _)) = open("fleet_ledger::fold_throughput_by_batch_size", "sbt_fl_bench") else { return };
    let key = LeaseKey { supplier: SupplierId(1), month: month(), instance: 1 };
    let now = june(10, 12, 0);
    rt.block_on(leases::lease(&store, key, 1_000_000_000, u64::MAX / 4, now, now + CDuration::hours(1))).unwrap();
    let mut ledger = PgLedger::new(store.clone());
    let mut offset = 0u64;
    let mut seq = 0u64;
    let mut mk = |n: usize| -> Vec<UsageEvent> {
        (0..n)
            .map(|i| {
                seq += 1;
                let mut e = platform(format!("bench-{seq}"), 1 + (i % 4) as i64, now + CDuration::milliseconds(seq as i64), 300);
                e.model = ["gpt-4o-mini", "gpt-4o"][i % 2].into();
                e
            })
            .collect()
    };
    // Warm up the connection and the prepared statements.
    ledger.fold_batch(1, &mk(10), pos(0, 1)).unwrap();
    println!("fold throughput on PostgreSQL (one connection, one transaction per batch):");
    for size in [1usize, 10, 100, 1000] {
        let events = (20_000 / size).clamp(20, 2_000) * size;
        let batches: Vec<Vec<UsageEvent>> = (0..events / size).map(|_| mk(size)).collect();
        let start = std::time::Instant::now();
        for b in &batches {
            offset += 1;
            assert_eq!(ledger.fold_batch(1, b, pos(0, offset)).unwrap(), size);
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "  batch {size:>5}: {events:>6} events in {:>6.0} ms: {:>8.0} events/s, {:>7.3} ms per batch",
            secs * 1e3,
            events as f64 / secs,
            secs * 1e3 / (events / size) as f64
        );
    }
}

/// The engine's own journal and fold thread over the PostgreSQL backend: the
/// events a process journals reach PostgreSQL, its watermark and its lease.
#[test]
fn the_usage_journal_folds_into_postgresql_through_the_fold_thread() {
    use switchboard::engine::ledger::{Ledger, LedgerOptions};
    let Some((rt, store, c, _)) = open("fleet_ledger::the_usage_journal_folds_into_postgresql_through_the_fold_thread", "sbt_fl_journal")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("usage.journal");
    let now = june(10, 12, 0);
    let ledger = Ledger::start_with(Box::new(PgLedger::new(store.clone())), &root, LedgerOptions::default()).unwrap();
    let instance = i64::from(ledger.journal_id());
    let key = LeaseKey { supplier: SupplierId(1), month: month(), instance };
    rt.block_on(leases::lease(&store, key, 10_000, 100_000, now, now + CDuration::minutes(1))).unwrap();
    rt.block_on(async {
        for i in 0..50 {
            ledger.record(platform(format!("j{i}"), 1, now, 30)).await.unwrap();
        }
        ledger.record(event("client-1", 1, now, Route::Client, 500)).await.unwrap();
        ledger.flush().await;
    });
    rt.block_on(async {
        assert_eq!(count(&c, "SELECT count(*) FROM usage_events").await, 51);
        assert_rollups_equal_events(&c).await;
    });
    let row = rt.block_on(leases::lease_row(&store, key)).unwrap().unwrap();
    assert_eq!((row.granted, row.folded), (10_000, 1_500), "the fold shrank this instance's lease");
    let wm = PgLedger::new(store.clone()).journal_watermark(ledger.journal_id()).unwrap().unwrap();
    assert!(wm > JournalPos::default());
    assert_eq!(ledger.stats().folded.load(Ordering::Relaxed), 51);
    drop(ledger);
    // A new process on the same journal folder: nothing left to fold, nothing twice.
    let again = Ledger::start_with(Box::new(PgLedger::new(store.clone())), &root, LedgerOptions::default()).unwrap();
    rt.block_on(again.flush());
    assert_eq!(rt.block_on(count(&c, "SELECT count(*) FROM usage_events")), 51);
    assert_eq!(rt.block_on(leases::lease_row(&store, key)).unwrap().unwrap().folded, 1_500);
}

/// `store copy` into PostgreSQL brings the rollups and quota months with the events.
#[test]
fn a_copied_ledger_has_its_rollups_and_quota_months() {
    let Some((rt, store, c, _)) = open("fleet_ledger::a_copied_ledger_has_its_rollups_and_quota_months", "sbt_fl_copy") else { return };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = switchboard::store::Store::open(dir.path().join("from.db")).unwrap();
    let events: Vec<UsageEvent> = (0..30)
        .map(|i| {
            event(
                &format!("s{i}"),
                1 + i % 2,
                june(1 + (i % 5) as u32, 9, 0),
                [Route::Platform, Route::Client, Route::Failover][i as usize % 3],
                40 + i as u64,
            )
        })
        .collect();
    sqlite.append_usage(&events).unwrap();
    rt.block_on(switchboard::store::pg::copy::sqlite_to_pg(&sqlite, &store)).unwrap();
    rt.block_on(assert_rollups_equal_events(&c));
    let want: i64 = events.iter().filter(|e| e.supplier_id.0 == 1).map(quota_tokens).sum();
    assert_eq!(rt.block_on(leases::month_figures(&store, SupplierId(1), month())).unwrap().used_folded, want);
    assert!(want > 0);
}

/// Grants are atomic: 64 tasks of four instances asking at once are granted
/// the quota exactly, never a token more.
#[test]
fn concurrent_grants_never_exceed_the_quota() {
    let Some((rt, store, _c, _)) = open("fleet_ledger::concurrent_grants_never_exceed_the_quota", "sbt_fl_grants") else { return };
    const QUOTA: u64 = 123_457;
    let now = june(10, 12, 0);
    let granted: u64 = rt.block_on(async {
        let mut tasks = Vec::new();
        for t in 0..64u64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let key = LeaseKey { supplier: SupplierId(9), month: month(), instance: (t % 4) as i64 };
                let mut got = 0u64;
                for i in 0.. {
                    let want = 100 + (t * 7919 + i * 104_729) % 1_900;
                    let g = leases::lease(&store, key, want, QUOTA, now, now + CDuration::minutes(1)).await.unwrap();
                    assert!(g.granted_now <= want);
                    if g.granted_now == 0 {
                        break;
                    }
                    got += g.granted_now;
                }
                got
            }));
        }
        let mut sum = 0;
        for t in tasks {
            sum += t.await.unwrap();
        }
        sum
    });
    assert_eq!(granted, QUOTA, "granted in all");
    let f = rt.block_on(leases::month_figures(&store, SupplierId(9), month())).unwrap();
    assert_eq!((f.used_folded, f.outstanding), (0, QUOTA as i64));
    let rows: i64 = (0..4)
        .map(|i| {
            rt.block_on(leases::lease_row(&store, LeaseKey { supplier: SupplierId(9), month: month(), instance: i }))
                .unwrap()
                .unwrap()
                .granted
        })
        .sum();
    assert_eq!(rows, QUOTA as i64);
}

#[test]
fn a_requests_ask_without_room_grants_nothing_and_gives_back_the_unused_part_at_once() {
    let Some((rt, store, _c, _)) =
        open("fleet_ledger::a_requests_ask_without_room_grants_nothing_and_gives_back_the_unused_part_at_once", "sbt_fl_ask")
    else {
        return;
    };
    const QUOTA: u64 = 10_000;
    let now = june(10, 12, 0);
    let end = now + CDuration::minutes(1);
    let key = |instance| LeaseKey { supplier: SupplierId(3), month: month(), instance };
    let counted = || rt.block_on(leases::month_figures(&store, SupplierId(3), month())).unwrap().counted();
    rt.block_on(async {
        assert_eq!(leases::lease(&store, key(1), 6_000, QUOTA, now, end).await.unwrap().granted_now, 6_000);
        assert_eq!(leases::lease(&store, key(2), 6_000, QUOTA, now, end).await.unwrap().granted_now, 4_000);
    });
    assert_eq!(counted(), 10_000);
    // Instance 1 spent 5,000 of its 6,000 and lacks 2,000 for a request:
    // nothing is granted, and the 1,000 it cannot use go back in the same step.
    let g = rt.block_on(leases::lease_for_request(&store, key(1), 5_000, 2_000, 5_000, QUOTA, now, end)).unwrap();
    assert_eq!((g.granted_now, g.granted), (0, 5_000));
    assert_eq!(counted(), 9_000);
    // Instance 2 lacks 800: it gets the 1,000 that came back (the want is cut to what is left).
    let g = rt.block_on(leases::lease_for_request(&store, key(2), 5_000, 800, 3_500, QUOTA, now, end)).unwrap();
    assert_eq!((g.granted_now, g.granted), (1_000, 5_000));
    // And when it lacks more than is left, it keeps only what it spent and holds.
    let g = rt.block_on(leases::lease_for_request(&store, key(2), 5_000, 2_000, 4_800, QUOTA, now, end)).unwrap();
    assert_eq!((g.granted_now, g.granted), (0, 4_800));
    assert_eq!(counted(), 9_800);
    // An instance with no lease yet that lacks more than is left gets none.
    let g = rt.block_on(leases::lease_for_request(&store, key(3), 100, 50_000, 0, QUOTA, now, end)).unwrap();
    assert_eq!((g.granted_now, g.granted), (0, 0));
    assert_eq!(counted(), 9_800);
}
