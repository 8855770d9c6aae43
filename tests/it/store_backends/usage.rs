//! The usage ledger's reads on both backends (same transcript on SQLite and
//! PostgreSQL): usage written through `Store::append_usage` (on PostgreSQL
//! the events and their rollups in one transaction, as a fold does), then
//! the event count, totals, platform-quota tokens per supplier, a supplier's
//! days, every usage breakdown, supplier and account spend, and a mirror's
//! copies and (original, copy) pairs; the router's quota reader and journal
//! watermark; generated history written in bulk and streamed, and rollups
//! rebuilt from the events.

use super::{day, now, on_both, supplier};
use chrono::{Duration, TimeZone, Utc};
use std::fmt::Write as _;
use switchboard::domain::{
    AccountId, Micros, ProviderKind, RequestType, Route, SupplierId, Tier, TokenUsage, UsageDimension, UsageEvent, UsageStatus,
};
use switchboard::store::{Store, mirror_prefix};

#[allow(clippy::too_many_arguments)]
fn event(
    id: &str,
    at: chrono::DateTime<Utc>,
    supplier: SupplierId,
    account: Option<i64>,
    provider: ProviderKind,
    model: &str,
    kind: RequestType,
    route: Route,
    tokens: (u64, u64, u64, u64),
    cost: i64,
    status: UsageStatus,
) -> UsageEvent {
    UsageEvent {
        event_id: id.into(),
        request_id: format!("req-{id}"),
        idempotency_key: None,
        ts: at,
        supplier_id: supplier,
        account_id: account.map(AccountId),
        provider,
        model: model.into(),
        request_type: kind,
        route,
        usage: TokenUsage {
            input: tokens.0,
            output: tokens.1,
            cached_read: tokens.2,
            cache_write: tokens.3,
            reasoning: 1,
            estimated: false,
        },
        cost: Micros(cost),
        saved: Micros(if route == Route::Cache { 900 } else { 0 }),
        latency_ms: 120 + (cost % 50) as u32,
        status,
        error_class: (status != UsageStatus::Ok).then(|| "upstream_5xx".to_string()),
    }
}

/// Three suppliers (one named in lower case, two with the same spend) over
/// three days, on every route, with a mirror's copies (one whose original
/// is not in the ledger, and another mirror whose prefix extends this one's).
pub(super) fn ledger(store: &Store) -> Vec<UsageEvent> {
    let a = store.insert_supplier(&supplier("Zeta Photo", Tier::Starter, &[]), now()).unwrap().id;
    let b = store.insert_supplier(&supplier("alpha florist", Tier::Scale, &[]), now()).unwrap().id;
    let c = store.insert_supplier(&supplier("Beta Bakes", Tier::Starter, &[]), now()).unwrap().id;
    let t0 = Utc.with_ymd_and_hms(2026, 6, 8, 9, 0, 0).unwrap() + Duration::microseconds(250);
    let (oa, an) = (ProviderKind::OpenAi, ProviderKind::Anthropic);
    let (ok, err) = (UsageStatus::Ok, UsageStatus::Error);
    let mut ev = Vec::new();
    for d in 0..3i64 {
        let at = t0 + Duration::days(d) + Duration::minutes(d * 7);
        let k = d as u64;
        ev.push(event(
            &format!("a{d}p"),
            at,
            a,
            Some(11),
            oa,
            "gpt-4o-mini",
            RequestType::EmailTemplate,
            Route::Platform,
            (100 + k, 40, 5, 0),
            1_000 + d,
            ok,
        ));
        ev.push(event(
            &format!("a{d}f"),
            at + Duration::seconds(1),
            a,
            Some(12),
            an,
            "claude-haiku",
            RequestType::WeddingContent,
            Route::Failover,
            (50, 20 + k, 0, 3),
            700,
            err,
        ));
        ev.push(event(
            &format!("b{d}c"),
            at + Duration::seconds(2),
            b,
            Some(21),
            oa,
            "gpt-4o",
            RequestType::ImageAnalysis,
            Route::Client,
            (300, 90, 0, 0),
            2_000,
            ok,
        ));
        ev.push(event(
            &format!("b{d}h"),
            at + Duration::seconds(3),
            b,
            None,
            oa,
            "gpt-4o",
            RequestType::ImageAnalysis,
            Route::Cache,
            (300, 90, 0, 0),
            0,
            ok,
        ));
        ev.push(event(
            &format!("c{d}p"),
            at + Duration::seconds(4),
            c,
            Some(11),
            oa,
            "text-embedding-3-small",
            RequestType::Embedding,
            Route::Platform,
            (80, 0, 0, 0),
            2_000,
            ok,
        ));
    }
    // Mirror 7: copies of two originals and one whose original is missing; mirror 70 must not count.
    let m7 = mirror_prefix(7);
    ev.push(event(
        &format!("{m7}a0p"),
        t0 + Duration::seconds(30),
        a,
        Some(31),
        an,
        "claude-haiku",
        RequestType::EmailTemplate,
        Route::Shadow,
        (101, 38, 0, 0),
        800,
        ok,
    ));
    ev.push(event(
        &format!("{m7}a1p"),
        t0 + Duration::days(1) + Duration::seconds(30),
        a,
        Some(31),
        an,
        "claude-haiku",
        RequestType::EmailTemplate,
        Route::Shadow,
        (99, 41, 0, 0),
        0,
        err,
    ));
    ev.push(event(
        &format!("{m7}gone"),
        t0 + Duration::seconds(40),
        a,
        Some(31),
        an,
        "claude-haiku",
        RequestType::EmailTemplate,
        Route::Shadow,
        (1, 1, 0, 0),
        5,
        ok,
    ));
    ev.push(event(
        &format!("{}a2p", mirror_prefix(70)),
        t0 + Duration::seconds(50),
        a,
        Some(31),
        an,
        "claude-haiku",
        RequestType::EmailTemplate,
        Route::Shadow,
        (1, 1, 0, 0),
        5,
        ok,
    ));
    ev
}

/// `n` small platform events of supplier 3 on 2026-06-20.
fn ledger_events_for_stream(n: u32) -> Vec<UsageEvent> {
    let t0 = Utc.with_ymd_and_hms(2026, 6, 20, 0, 0, 0).unwrap();
    (0..n)
        .map(|i| {
            event(
                &format!("gen{i}"),
                t0 + Duration::milliseconds(i64::from(i) * 1_001),
                SupplierId(3),
                Some(11),
                ProviderKind::OpenAi,
                "gpt-4o-mini",
                RequestType::EmailTemplate,
                Route::Platform,
                (10, 5, 0, 0),
                i64::from(i % 7),
                UsageStatus::Ok,
            )
        })
        .collect()
}

#[test]
fn usage_reads() {
    on_both("store_backends::usage::usage_reads", |store, t| {
        writeln!(t, "empty: {} {:?}", store.count_usage_events().unwrap(), store.usage_totals(day(6, 1), day(7, 1)).unwrap()).unwrap();
        let events = ledger(store);
        let (first, rest) = events.split_at(7);
        writeln!(t, "appended: {} {}", store.append_usage(first).unwrap(), store.append_usage(rest).unwrap()).unwrap();
        assert_eq!(store.append_usage(&events[..3]).unwrap(), 0, "a retried write never counts twice");
        assert_eq!(store.count_usage_events().unwrap(), 19);
        writeln!(t, "count: {}", store.count_usage_events().unwrap()).unwrap();
        let (from, to) = (day(6, 1), day(7, 1));
        writeln!(t, "totals: {:?}", store.usage_totals(from, to).unwrap()).unwrap();
        writeln!(t, "one day: {:?}", store.usage_totals(day(6, 9), day(6, 10)).unwrap()).unwrap();
        let mut quota: Vec<_> = store.quota_tokens_by_supplier(from, to).unwrap().into_iter().collect();
        quota.sort();
        // Platform and failover routes only: supplier 2 (client, cache) has none, shadow copies count nothing.
        assert_eq!(quota, [(SupplierId(1), 3 * 145 + 3 + 3 * 73 + 3), (SupplierId(3), 240)]);
        writeln!(t, "quota: {quota:?}").unwrap();
        let mut q2: Vec<_> = store.quota_tokens_by_supplier(day(6, 9), day(6, 11)).unwrap().into_iter().collect();
        q2.sort();
        writeln!(t, "quota two days: {q2:?}").unwrap();
        for s in [SupplierId(1), SupplierId(2), SupplierId(99)] {
            writeln!(t, "days of {s:?}: {:?}", store.supplier_daily_usage(s, from, to).unwrap()).unwrap();
        }
        writeln!(t, "days of 1 from the 9th: {:?}", store.supplier_daily_usage(SupplierId(1), day(6, 9), to).unwrap()).unwrap();
        for dim in [
            UsageDimension::Provider,
            UsageDimension::Model,
            UsageDimension::Route,
            UsageDimension::RequestType,
            UsageDimension::VendorType,
            UsageDimension::Supplier,
        ] {
            writeln!(t, "by {dim:?}: {:?}", store.usage_breakdown(dim, from, to).unwrap()).unwrap();
        }
        writeln!(t, "by supplier, none: {:?}", store.usage_breakdown(UsageDimension::Supplier, day(5, 1), day(5, 2)).unwrap()).unwrap();
        let spend = store.supplier_spend(from, to).unwrap();
        // A tie in spend is ordered by name, ignoring case (as SQLite's NOCASE).
        let names: Vec<&str> = spend.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["alpha florist", "Beta Bakes", "Zeta Photo"], "{spend:?}");
        assert_eq!((spend[0].cost_micros, spend[1].cost_micros, spend[2].cost_micros), (6_000, 6_000, 5_913));
        writeln!(t, "spend: {spend:?}").unwrap();
        writeln!(t, "spend on the 10th: {:?}", store.supplier_spend(day(6, 10), day(6, 11)).unwrap()).unwrap();
        let t0 = Utc.with_ymd_and_hms(2026, 6, 8, 9, 0, 0).unwrap();
        for (acc, f, u) in [
            (11, t0 - Duration::hours(1), t0 + Duration::days(5)),
            (11, t0 + Duration::microseconds(900), t0 + Duration::days(1)),
            (12, t0, t0 + Duration::days(1) + Duration::minutes(7) + Duration::seconds(1)),
            (12, t0, t0 + Duration::days(1) + Duration::minutes(7) + Duration::seconds(2)),
            (31, t0, t0 + Duration::days(3)),
            (99, t0, t0 + Duration::days(3)),
        ] {
            writeln!(t, "account {acc} spend: {:?}", store.account_spend(AccountId(acc), f, u).unwrap()).unwrap();
        }
        writeln!(
            t,
            "mirror 7 copies: {} 70: {} 8: {}",
            store.mirror_copies(7).unwrap(),
            store.mirror_copies(70).unwrap(),
            store.mirror_copies(8).unwrap()
        )
        .unwrap();
        assert_eq!((store.mirror_copies(7).unwrap(), store.mirror_copies(70).unwrap()), (3, 1));
        let pairs = store.mirror_pairs(7).unwrap();
        assert_eq!(pairs.len(), 2, "the copy whose original is missing has no pair");
        assert!(pairs[0].0.ok && pairs[0].1.ok && pairs[1].0.ok && !pairs[1].1.ok, "{pairs:?}");
        for (o, c) in pairs {
            writeln!(t, "pair: {o:?} / {c:?}").unwrap();
        }
        writeln!(t, "pairs of 70: {} of 8: {}", store.mirror_pairs(70).unwrap().len(), store.mirror_pairs(8).unwrap().len()).unwrap();

        // The quota reader the router uses, per UTC month; no journal folded here.
        let (june, july) = (Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap(), Utc.with_ymd_and_hms(2026, 7, 1, 0, 0, 0).unwrap());
        writeln!(
            t,
            "quota used: {} {}",
            store.quota_tokens_used(SupplierId(1), june, july).unwrap(),
            store.quota_tokens_used(SupplierId(1), july, july + Duration::days(30)).unwrap()
        )
        .unwrap();
        writeln!(t, "watermark: {:?}", store.journal_watermark(5).unwrap()).unwrap();
        // Generated history: bulk and streamed writes (5000 events: two chunks), then a rebuild changes nothing.
        let before = (store.usage_totals(from, to).unwrap(), store.supplier_spend(from, to).unwrap());
        store.rebuild_daily_rollups().unwrap();
        assert_eq!((store.usage_totals(from, to).unwrap(), store.supplier_spend(from, to).unwrap()), before);
        let mut extra = ledger_events_for_stream(5_000);
        let bulk = extra.split_off(4_990);
        writeln!(t, "streamed: {} bulk: {}", store.append_usage_stream(extra).unwrap(), store.append_usage_bulk(&bulk).unwrap()).unwrap();
        store.rebuild_daily_rollups().unwrap();
        writeln!(
            t,
            "after: {} {:?} {:?}",
            store.count_usage_events().unwrap(),
            store.usage_totals(from, to).unwrap(),
            store.supplier_spend(from, to).unwrap()
        )
        .unwrap();
    });
}
