//! The store's tests on both backends: the same test body runs on a fresh
//! SQLite file and on a fresh PostgreSQL database (the private cluster
//! scripts/test starts, SWITCHBOARD_TEST_POSTGRES), and writes a transcript
//! of everything it observed; the two transcripts must be equal. Covered:
//! suppliers and weddings, provider accounts, gateway tokens (revocation
//! included), key pool and cache settings, the audit log, health history
//! (with compaction), alerts and incidents, migrations, parallel tests,
//! recommendations, mirrors, schedules and settings, the usage ledger's
//! writes and summaries (`store_backends::usage`), the analytics reader,
//! request search and export (`store_backends::analytics`), and the catalog
//! version moving on every routing change (and only then). On PostgreSQL
//! also: a change made through one pool is seen by another as a new catalog
//! version and as a `switchboard_catalog` notification on a raw LISTEN
//! connection, a method not ported yet answers a clear error, and no error
//! shows a URL's password.

mod analytics;
mod usage;

use crate::support::pg::{base_url, fresh_db, raw, rt};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use futures::StreamExt;
use std::fmt::Write as _;
use switchboard::domain::cache::CacheSettings;
use switchboard::domain::health::{AlertKind, Retention, SampleSource, Severity};
use switchboard::domain::keypool::PoolSettings;
use switchboard::domain::migration::{Criteria, Migration, MigrationState, PhasePlan, PhaseStats, RouteTarget};
use switchboard::domain::{
    AccountId, AccountOwner, AiMode, AuditQuery, AzureConfig, Micros, NewSupplier, ProviderKind, SupplierFilter, SupplierId, SupplierPatch,
    Tier, TokenId, ValidationStatus, VendorType,
};
use switchboard::store::pg::catalog::CATALOG_CHANNEL;
use switchboard::store::{
    AuditFilter, HealthAggregateRow, HealthSampleRow, NewAccount, NewAlert, Raised, ScheduleState, Store, StoreError, TokenHash,
};

fn now() -> DateTime<Utc> {
    // Sub-millisecond digits on purpose: both backends keep milliseconds.
    Utc.with_ymd_and_hms(2026, 6, 10, 12, 0, 0).unwrap() + Duration::microseconds(123_456)
}

fn day(m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, m, d).unwrap()
}

/// Runs `body` on a fresh SQLite file and (when the test cluster is there)
/// on a fresh PostgreSQL database; asserts that both wrote the same transcript.
fn on_both(test: &str, body: fn(&Store, &mut String)) {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(dir.path().join("sb.db")).unwrap();
    let mut on_sqlite = String::new();
    body(&sqlite, &mut on_sqlite);
    assert!(!on_sqlite.is_empty());
    let Some(base) = base_url(test) else { return };
    let url = rt().block_on(fresh_db(&base, &format!("sbt_sb_{}", test.rsplit(':').next().unwrap())));
    let pg = Store::open_location(&url).unwrap();
    assert!(pg.is_postgres() && pg.sqlite_path().is_none());
    let mut on_pg = String::new();
    body(&pg, &mut on_pg);
    if on_sqlite != on_pg {
        let first = on_sqlite.lines().zip(on_pg.lines()).position(|(a, b)| a != b);
        panic!("the backends differ (first at line {first:?})\n--- SQLite\n{on_sqlite}\n--- PostgreSQL\n{on_pg}");
    }
}

/// Records whether the catalog version moved since the last call.
struct Version(i64);

impl Version {
    fn start(store: &Store) -> Self {
        Version(store.catalog_version().unwrap())
    }

    fn moved(&mut self, store: &Store) -> bool {
        let v = store.catalog_version().unwrap();
        assert!(v >= self.0, "the catalog version went back from {} to {v}", self.0);
        let moved = v > self.0;
        self.0 = v;
        moved
    }
}

fn supplier(name: &str, tier: Tier, weddings: &[NaiveDate]) -> NewSupplier {
    let mut s = NewSupplier::new(name, VendorType::Photographer, tier, AiMode::Platform);
    s.weddings = weddings.to_vec();
    s
}

#[test]
fn suppliers_and_weddings() {
    on_both("store_backends::suppliers_and_weddings", |store, t| {
        let mut v = Version::start(store);
        let a = store.insert_supplier(&supplier("Zed Photo", Tier::Starter, &[day(6, 20), day(6, 13), day(6, 20)]), now()).unwrap();
        writeln!(t, "insert a: {a:?} moved={}", v.moved(store)).unwrap();
        let b = store.insert_supplier(&supplier("alpha venue", Tier::Scale, &[]), now()).unwrap();
        writeln!(t, "insert b: {:?} moved={}", b.id, v.moved(store)).unwrap();
        let c = store.insert_supplier(&supplier("Beta_100%", Tier::Scale, &[day(7, 1)]), now()).unwrap();
        writeln!(t, "insert c: {:?} moved={}", c.id, v.moved(store)).unwrap();
        let dup = store.insert_supplier(&supplier("zed photo", Tier::Starter, &[]), now()).unwrap_err();
        writeln!(t, "duplicate: {dup} moved={}", v.moved(store)).unwrap();
        assert!(matches!(dup, StoreError::Invalid(_)));
        let invalid = store.insert_supplier(&supplier("   ", Tier::Starter, &[]), now()).unwrap_err();
        writeln!(t, "blank name: {invalid}").unwrap();

        writeln!(t, "found a: {:?}", store.find_supplier(a.id).unwrap()).unwrap();
        writeln!(t, "missing: {:?} / {}", store.find_supplier(SupplierId(999)).unwrap(), store.supplier(SupplierId(999)).unwrap_err())
            .unwrap();
        let names = |f: &SupplierFilter| store.list_suppliers(f).unwrap().into_iter().map(|s| (s.name, s.weddings)).collect::<Vec<_>>();
        writeln!(t, "all: {:?}", names(&SupplierFilter::default())).unwrap();
        writeln!(t, "scale: {:?}", names(&SupplierFilter { tier: Some(Tier::Scale), ..Default::default() })).unwrap();
        writeln!(t, "search 'PHO': {:?}", names(&SupplierFilter { search: Some("PHO".into()), ..Default::default() })).unwrap();
        writeln!(t, "search '_1': {:?}", names(&SupplierFilter { search: Some("_1".into()), ..Default::default() })).unwrap();
        writeln!(t, "search '%': {:?}", names(&SupplierFilter { search: Some("%".into()), ..Default::default() })).unwrap();
        writeln!(t, "count: {}", store.count_suppliers().unwrap()).unwrap();

        let later = now() + Duration::hours(1);
        let patch = SupplierPatch {
            name: Some("Zed Photography".into()),
            tier: Some(Tier::Professional),
            add_weddings: vec![day(8, 1), day(6, 13)],
            remove_weddings: vec![day(6, 20)],
            ..Default::default()
        };
        let a2 = store.update_supplier(a.id, &patch, later).unwrap();
        writeln!(t, "updated a: {a2:?} moved={}", v.moved(store)).unwrap();
        let clash = SupplierPatch { name: Some("Alpha Venue".into()), ..Default::default() };
        writeln!(t, "rename clash: {} moved={}", store.update_supplier(a.id, &clash, later).unwrap_err(), v.moved(store)).unwrap();
        let set = SupplierPatch { set_weddings: Some(vec![day(9, 9), day(9, 1)]), ..Default::default() };
        writeln!(t, "set weddings: {:?} moved={}", store.update_supplier(c.id, &set, later).unwrap().weddings, v.moved(store)).unwrap();
        writeln!(t, "update missing: {}", store.update_supplier(SupplierId(999), &patch, later).unwrap_err()).unwrap();
        let rows = store.weddings_between(day(6, 1), day(9, 2)).unwrap();
        writeln!(t, "weddings June..Sep 1: {rows:?}").unwrap();

        store.delete_supplier(b.id).unwrap();
        writeln!(t, "deleted b: moved={} count={}", v.moved(store), store.count_suppliers().unwrap()).unwrap();
        writeln!(t, "delete again: {}", store.delete_supplier(b.id).unwrap_err()).unwrap();
        // Ids are never reused.
        let d = store.insert_supplier(&supplier("Delta", Tier::Starter, &[]), now()).unwrap();
        writeln!(t, "insert d: {:?}", d.id).unwrap();
    });
}

fn account(owner: AccountOwner, label: &str) -> NewAccount {
    NewAccount {
        owner,
        provider: ProviderKind::OpenAi,
        label: label.into(),
        base_url: "https://api.openai.example/v1/".into(),
        azure: None,
        default_model: "gpt-4o-mini".into(),
    }
}

#[test]
fn accounts_pools_and_cache_settings() {
    on_both("store_backends::accounts_pools_and_cache_settings", |store, t| {
        let s = store.insert_supplier(&supplier("Studio", Tier::Starter, &[]), now()).unwrap();
        let mut v = Version::start(store);
        let own = store.insert_account(&account(AccountOwner::Supplier(s.id), " Studio key "), now()).unwrap();
        writeln!(t, "own: {own:?} moved={}", v.moved(store)).unwrap();
        let platform = store.insert_account(&account(AccountOwner::Platform, "Platform 1"), now()).unwrap();
        writeln!(t, "platform: {:?} moved={}", platform.id, v.moved(store)).unwrap();
        let azure = NewAccount {
            provider: ProviderKind::AzureOpenAi,
            azure: Some(AzureConfig { deployment: "gpt4o".into(), api_version: "2024-10-21".into() }),
            ..account(AccountOwner::Platform, "Azure")
        };
        let azure = store.insert_account(&azure, now()).unwrap();
        writeln!(t, "azure: {azure:?}").unwrap();
        let no_azure = NewAccount { provider: ProviderKind::AzureOpenAi, ..account(AccountOwner::Platform, "Azure") };
        writeln!(t, "azure without deployment: {}", store.insert_account(&no_azure, now()).unwrap_err()).unwrap();
        writeln!(t, "unknown owner: {}", store.insert_account(&account(AccountOwner::Supplier(SupplierId(77)), "x"), now()).unwrap_err())
            .unwrap();
        let ids = |o: Option<AccountOwner>| store.list_accounts(o).unwrap().into_iter().map(|a| a.id.0).collect::<Vec<_>>();
        writeln!(
            t,
            "all: {:?} platform: {:?} own: {:?}",
            ids(None),
            ids(Some(AccountOwner::Platform)),
            ids(Some(AccountOwner::Supplier(s.id)))
        )
        .unwrap();

        store.set_account_key(own.id, Some("switchboard/abc/1"), Some("sk-…a1b2")).unwrap();
        writeln!(t, "key set: moved={}", v.moved(store)).unwrap();
        store.set_account_validation(own.id, ValidationStatus::InvalidKey, "401 from the provider", now()).unwrap();
        writeln!(t, "validated: moved={} {:?}", v.moved(store), store.account(own.id).unwrap()).unwrap();
        store.set_account_enabled(platform.id, false).unwrap();
        writeln!(t, "disabled: moved={} enabled={}", v.moved(store), store.account(platform.id).unwrap().enabled).unwrap();
        for e in [
            store.set_account_key(AccountId(99), None, None).unwrap_err(),
            store.set_account_validation(AccountId(99), ValidationStatus::Valid, "", now()).unwrap_err(),
            store.set_account_enabled(AccountId(99), true).unwrap_err(),
            store.delete_account(AccountId(99)).unwrap_err(),
            store.account(AccountId(99)).unwrap_err(),
        ] {
            writeln!(t, "missing account: {e}").unwrap();
        }
        writeln!(t, "exists: {} {}", store.account_exists(own.id).unwrap(), store.account_exists(AccountId(99)).unwrap()).unwrap();

        let pool = PoolSettings { weight: Some(3), rpm: Some(60), tpm: None, monthly_budget: Some(Micros(5_000_000)) };
        store.set_account_pool_settings(platform.id, &pool).unwrap();
        writeln!(t, "pool set: moved={} {:?}", v.moved(store), store.account_pool_settings(platform.id).unwrap()).unwrap();
        writeln!(t, "pool unset: {:?}", store.account_pool_settings(own.id).unwrap()).unwrap();
        let mut all: Vec<_> = store.pool_settings().unwrap().into_iter().collect();
        all.sort_by_key(|(a, _)| a.0);
        writeln!(t, "pools: {all:?}").unwrap();
        let bad = PoolSettings { weight: Some(5000), ..Default::default() };
        writeln!(t, "weight out of range refused: {}", store.set_account_pool_settings(platform.id, &bad).is_err()).unwrap();
        store.set_account_pool_settings(platform.id, &PoolSettings::default()).unwrap();
        writeln!(t, "pool removed: moved={} {:?}", v.moved(store), store.pool_settings().unwrap()).unwrap();

        writeln!(t, "cache default: {:?}", store.cache_settings(s.id).unwrap()).unwrap();
        let cache = CacheSettings { enabled: false, chat_ttl_secs: 60, embeddings_ttl_secs: 86_400 };
        store.set_cache_settings(s.id, &cache).unwrap();
        writeln!(
            t,
            "cache set: moved={} {:?} all={:?}",
            v.moved(store),
            store.cache_settings(s.id).unwrap(),
            store.cache_settings_all().unwrap()
        )
        .unwrap();

        store.delete_account(own.id).unwrap();
        writeln!(t, "deleted: moved={} left={:?}", v.moved(store), ids(None)).unwrap();
        // Deleting the supplier takes its accounts with it.
        let second = store.insert_account(&account(AccountOwner::Supplier(s.id), "second"), now()).unwrap();
        store.delete_supplier(s.id).unwrap();
        writeln!(t, "supplier gone: {:?} left={:?}", store.find_account(second.id).unwrap(), ids(None)).unwrap();

        let tag = store.instance_tag().unwrap();
        assert_eq!(tag.len(), 12, "{tag}");
        assert!(tag.chars().all(|c| c.is_ascii_hexdigit()), "{tag}");
        assert_eq!(store.instance_tag().unwrap(), tag, "the tag is made once");
        writeln!(t, "instance tag: 12 hex digits, stable").unwrap();
    });
}

#[test]
fn tokens_and_revocation() {
    on_both("store_backends::tokens_and_revocation", |store, t| {
        let s = store.insert_supplier(&supplier("Studio", Tier::Starter, &[]), now()).unwrap();
        let other = store.insert_supplier(&supplier("Other", Tier::Starter, &[]), now()).unwrap();
        let mut v = Version::start(store);
        let h1 = TokenHash::of("sbk_first_token_77aa");
        let t1 = store.insert_token(s.id, &h1, "sbk_…77aa", now()).unwrap();
        writeln!(t, "t1: {t1:?} moved={}", v.moved(store)).unwrap();
        let t2 = store.insert_token(other.id, &TokenHash::of("sbk_second"), "sbk_…cond", now()).unwrap();
        writeln!(t, "t2: {:?} moved={}", t2.id, v.moved(store)).unwrap();
        writeln!(t, "unknown supplier: {}", store.insert_token(SupplierId(99), &TokenHash::of("x"), "x", now()).unwrap_err()).unwrap();
        writeln!(t, "duplicate hash refused: {}", store.insert_token(s.id, &h1, "again", now()).is_err()).unwrap();

        writeln!(t, "by hash: {:?}", store.find_token_by_hash(&TokenHash::of("  sbk_first_token_77aa\n")).unwrap()).unwrap();
        writeln!(t, "unknown hash: {:?}", store.find_token_by_hash(&TokenHash::of("nope")).unwrap()).unwrap();
        let used = now() + Duration::minutes(5);
        store.touch_token_used(t1.id, used).unwrap();
        writeln!(t, "touched: moved={} {:?}", v.moved(store), store.token(t1.id).unwrap()).unwrap();

        let revoked = store.revoke_token(t1.id, used + Duration::minutes(1)).unwrap();
        writeln!(t, "revoked: {revoked:?} active={} moved={}", revoked.is_active(), v.moved(store)).unwrap();
        let again = store.revoke_token(t1.id, used + Duration::hours(1)).unwrap();
        writeln!(t, "revoked again keeps the first time: {}", again.revoked_at == revoked.revoked_at).unwrap();
        writeln!(t, "revoke unknown: {}", store.revoke_token(TokenId(99), now()).unwrap_err()).unwrap();
        writeln!(t, "rows: {:?}", store.token_rows().unwrap()).unwrap();
        writeln!(t, "list all: {:?}", store.list_tokens(None).unwrap().iter().map(|t| t.id.0).collect::<Vec<_>>()).unwrap();
        writeln!(t, "list studio: {:?}", store.list_tokens(Some(s.id)).unwrap()).unwrap();
        store.delete_supplier(other.id).unwrap();
        writeln!(t, "supplier gone: moved={} rows={:?}", v.moved(store), store.token_rows().unwrap().len()).unwrap();
    });
}

#[test]
fn audit_log() {
    on_both("store_backends::audit_log", |store, t| {
        let s = store.insert_supplier(&supplier("Bloom Florals", Tier::Starter, &[]), now()).unwrap();
        let mut v = Version::start(store);
        for (i, (action, sup, acc)) in [
            ("supplier.add", Some(s.id), None),
            ("key.add", Some(s.id), Some(AccountId(7))),
            ("key.rotate", None, Some(AccountId(7))),
            ("token.revoke", Some(s.id), None),
        ]
        .into_iter()
        .enumerate()
        {
            let id = store.audit(now() + Duration::seconds(i as i64), "alice", action, sup, acc, "ok", &format!("detail {i}")).unwrap();
            writeln!(t, "audit {action}: id={id}").unwrap();
        }
        // An entry appended later with an earlier time sorts by its time.
        store.audit(now() - Duration::hours(1), "runtime", "key.validate", None, None, "failed", "late writer").unwrap();
        writeln!(t, "audit does not move the catalog: {}", !v.moved(store)).unwrap();
        let entries = |f: AuditFilter| store.audit_entries(&f).unwrap().into_iter().map(|e| format!("{e:?}")).collect::<Vec<_>>();
        writeln!(t, "all: {:#?}", entries(AuditFilter::default())).unwrap();
        writeln!(t, "key.*: {:?}", entries(AuditFilter { action_prefix: Some("key.".into()), ..Default::default() })).unwrap();
        writeln!(t, "supplier: {:?}", entries(AuditFilter { supplier_id: Some(s.id), limit: Some(2), ..Default::default() })).unwrap();
        let window = AuditFilter { from: Some(now()), to: Some(now() + Duration::seconds(2)), ..Default::default() };
        writeln!(t, "window: {:?}", entries(window)).unwrap();
        let search = |q: AuditQuery| store.audit_search(&q).unwrap().into_iter().map(|r| format!("{r:?}")).collect::<Vec<_>>();
        writeln!(t, "search 'bloom': {:?}", search(AuditQuery { supplier: Some("bloom".into()), ..Default::default() })).unwrap();
        writeln!(t, "search id: {:?}", search(AuditQuery { supplier: Some(s.id.0.to_string()), limit: 1, ..Default::default() })).unwrap();
        writeln!(t, "search 'key.r': {:?}", search(AuditQuery { action_prefix: Some("key.r".into()), ..Default::default() })).unwrap();
        writeln!(t, "actions: {:?}", store.audit_actions().unwrap()).unwrap();
    });
}

fn sample(account: i64, at: DateTime<Utc>, ok: bool, latency_ms: u32, source: SampleSource) -> HealthSampleRow {
    HealthSampleRow { account: AccountId(account), at, ok, latency_ms, error_class: (!ok).then(|| "timeout".to_string()), source }
}

#[test]
fn health_history_and_compaction() {
    on_both("store_backends::health_history_and_compaction", |store, t| {
        let t0 = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
        let mut rows = Vec::new();
        // Three days of samples every 7 minutes for two accounts, some failing.
        for i in 0..(3 * 24 * 60 / 7) {
            let at = t0 + Duration::minutes(7 * i) + Duration::microseconds(1_500);
            rows.push(sample(1, at, i % 5 != 0, 100 + (i % 13) as u32, SampleSource::Probe));
            rows.push(sample(2, at + Duration::seconds(30), i % 17 != 0, 250, SampleSource::Traffic));
        }
        store.insert_health_samples(&rows).unwrap();
        store.insert_health_samples(&[]).unwrap();
        let generated = HealthAggregateRow {
            account: AccountId(1),
            bucket_secs: 3600,
            bucket_start: t0 - Duration::days(2),
            samples: 12,
            failures: 20, // more than samples: clamped
            latency_ms_sum: 1_200,
            latency_ms_max: 180,
        };
        store.insert_health_aggregates(&[generated, generated]).unwrap();
        let end = t0 + Duration::days(3);
        let report = |store: &Store, t: &mut String, label: &str| {
            writeln!(t, "{label} counts 1: {:?}", store.health_counts(AccountId(1), t0 - Duration::days(3), end).unwrap()).unwrap();
            writeln!(
                t,
                "{label} counts 1 day 2: {:?}",
                store.health_counts(AccountId(1), t0 + Duration::days(1), t0 + Duration::days(2)).unwrap()
            )
            .unwrap();
            let mut all: Vec<_> = store.health_counts_all(t0 - Duration::days(3), end).unwrap().into_iter().collect();
            all.sort_by_key(|(a, _)| a.0);
            writeln!(t, "{label} counts all: {all:?}").unwrap();
            let series = store.health_series(AccountId(1), t0 - Duration::days(3), end, 6 * 3600).unwrap();
            writeln!(t, "{label} series: {series:?}").unwrap();
            writeln!(t, "{label} sizes: {:?}", store.health_history_sizes(&Retention::default()).unwrap()).unwrap();
        };
        report(store, t, "before");
        writeln!(t, "last probes: {:?}", store.health_last_probes().unwrap()).unwrap();
        // Compaction rolls levels without changing any figure.
        let r = Retention {
            raw_secs: 24 * 3600,
            fine_bucket_secs: 300,
            fine_keep_secs: 36 * 3600,
            coarse_bucket_secs: 3600,
            coarse_keep_secs: 60 * 3600,
        };
        let c = store.compact_health(end, &r).unwrap();
        writeln!(t, "compaction: {c:?}").unwrap();
        assert!(c.raw_rolled > 0 && c.fine_rolled > 0 && c.coarse_deleted > 0, "{c:?}");
        report(store, t, "after");
        writeln!(t, "compaction again: {:?}", store.compact_health(end, &r).unwrap()).unwrap();
    });
}

#[test]
fn alerts_and_incidents() {
    on_both("store_backends::alerts_and_incidents", |store, t| {
        let incident = store.open_incident(AccountId(3), now()).unwrap();
        writeln!(t, "incident: {incident:?} again: {:?}", store.open_incident(AccountId(3), now() + Duration::minutes(1)).unwrap())
            .unwrap();
        let new = |key: &str, kind: AlertKind, escalated: bool, incident_id: Option<i64>| NewAlert {
            kind,
            condition_key: key.into(),
            severity: Severity::Warning,
            supplier_id: Some(SupplierId(1)),
            account_id: Some(AccountId(3)),
            message: format!("{key} happened"),
            escalated,
            incident_id,
        };
        let a = store.raise_alert(&new("down:account:3", AlertKind::ProviderDown, false, Some(incident.id)), now()).unwrap();
        writeln!(t, "raised: {a:?}").unwrap();
        let again = store.raise_alert(&new("down:account:3", AlertKind::ProviderDown, true, None), now()).unwrap();
        writeln!(t, "raised again: {again:?}").unwrap();
        let b = match store.raise_alert(&new("quota:1", AlertKind::QuotaWarning, true, None), now()).unwrap() {
            Raised::New(b) => b,
            other => panic!("{other:?}"),
        };
        let later = now() + Duration::minutes(10);
        writeln!(t, "escalated: {:?}", store.escalate_alert(b.id, Severity::Critical, later).unwrap()).unwrap();
        writeln!(t, "acknowledged: {:?}", store.acknowledge_alert(b.id, later).unwrap()).unwrap();
        writeln!(
            t,
            "acknowledged again keeps the time: {:?}",
            store.acknowledge_alert(b.id, later + Duration::hours(1)).unwrap().acknowledged_at
        )
        .unwrap();
        writeln!(t, "bulk with unknown: {}", store.acknowledge_alerts(&[1, 99], later).unwrap_err()).unwrap();
        writeln!(t, "first untouched: {:?}", store.find_alert(1).unwrap().unwrap().acknowledged_at).unwrap();
        writeln!(t, "bulk: {:?}", store.acknowledge_alerts(&[1, b.id], later).unwrap()).unwrap();
        writeln!(t, "open for: {:?}", store.open_alert_for("down:account:3").unwrap().map(|a| a.id)).unwrap();
        writeln!(t, "resolved: {:?}", store.resolve_alert(1, later).unwrap()).unwrap();
        writeln!(
            t,
            "escalating a resolved alert changes nothing: {:?}",
            store.escalate_alert(1, Severity::Critical, later).unwrap().severity
        )
        .unwrap();
        writeln!(t, "open for after: {:?}", store.open_alert_for("down:account:3").unwrap()).unwrap();
        let c = store.raise_alert(&new("down:account:3", AlertKind::ProviderDown, false, Some(incident.id)), later).unwrap();
        writeln!(t, "raised after resolve: {c:?}").unwrap();
        writeln!(t, "list all: {:?}", store.list_alerts(false, 10).unwrap().iter().map(|a| a.id).collect::<Vec<_>>()).unwrap();
        writeln!(t, "list open: {:?}", store.list_alerts(true, 1).unwrap().iter().map(|a| a.id).collect::<Vec<_>>()).unwrap();
        writeln!(t, "missing: {} / {:?}", store.resolve_alert(99, later).unwrap_err(), store.find_alert(99).unwrap()).unwrap();
        writeln!(t, "incident alerts: {:?}", store.incident_alerts(incident.id).unwrap().iter().map(|a| a.id).collect::<Vec<_>>()).unwrap();
        writeln!(t, "open incidents: {:?}", store.open_incidents().unwrap()).unwrap();
        store.resolve_incident(incident.id, later).unwrap();
        store.resolve_incident(incident.id, later + Duration::hours(1)).unwrap();
        writeln!(t, "resolved incident: {:?}", store.find_incident(incident.id).unwrap()).unwrap();
        let next = store.open_incident(AccountId(3), later).unwrap();
        writeln!(t, "next incident: {next:?} by id: {:?}", store.incidents_by_id(&[next.id, 99, incident.id]).unwrap()).unwrap();
        writeln!(t, "open incidents: {:?} missing: {:?}", store.open_incidents().unwrap(), store.find_incident(99).unwrap()).unwrap();
    });
}

#[test]
fn migrations_mirrors_schedules_and_settings() {
    on_both("store_backends::migrations_mirrors_schedules_and_settings", |store, t| {
        let s = store.insert_supplier(&supplier("Studio", Tier::Starter, &[]), now()).unwrap();
        let acc = store.insert_account(&account(AccountOwner::Supplier(s.id), "own"), now()).unwrap();
        let plan = [PhasePlan { percent: 10, min_secs: 60 }, PhasePlan { percent: 100, min_secs: 0 }];
        let m = Migration::new(s.id, RouteTarget::Account(acc.id), RouteTarget::Platform, &plan, Criteria::default(), now());
        let id = store.insert_migration(&m).unwrap();
        writeln!(t, "migration: {:?}", store.migration(id).unwrap()).unwrap();
        writeln!(t, "second refused: {}", store.insert_migration(&m).unwrap_err()).unwrap();
        let mut m = store.migration(id).unwrap();
        m.phases[0].stats = PhaseStats { requests: 40, errors: 2, latency_hist: vec![5, 20, 10, 3, 2] };
        m.phases[0].ended_at = Some(now() + Duration::minutes(2));
        m.phases[0].outcome = Some("passed".into());
        m.phase = 1;
        m.phases[1].started_at = Some(now() + Duration::minutes(2));
        m.state = MigrationState::Paused;
        m.phase_started_at = None;
        m.phase_elapsed_ms = 1_234;
        m.updated_at = now() + Duration::minutes(3);
        store.save_migration(&m).unwrap();
        let saved = store.migration(id).unwrap();
        assert_eq!((&saved.phases[0].stats, saved.state, saved.phase, saved.phase_elapsed_ms), (&m.phases[0].stats, m.state, 1, 1_234));
        assert_eq!(saved.phases[0].stats.p95_ms(), m.phases[0].stats.p95_ms());
        writeln!(t, "saved: {saved:?}").unwrap();
        writeln!(t, "active: {:?}", store.active_migrations().unwrap().iter().map(|m| m.id).collect::<Vec<_>>()).unwrap();
        writeln!(
            t,
            "of supplier: {:?} of other: {:?} missing: {}",
            store.list_migrations(Some(s.id)).unwrap().len(),
            store.list_migrations(Some(SupplierId(99))).unwrap().len(),
            store.migration(99).unwrap_err()
        )
        .unwrap();
        m.state = MigrationState::Completed;
        store.save_migration(&m).unwrap();
        writeln!(t, "active after: {:?} all: {}", store.active_migrations().unwrap(), store.list_migrations(None).unwrap().len()).unwrap();

        let report = store.insert_parallel_test(s.id, acc.id.0, now(), r#"{"id":0,"compared":12,"verdict":"ok"}"#).unwrap();
        let tests = store.parallel_tests(None).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&tests[0].1).unwrap();
        writeln!(t, "parallel test {report}: {parsed} of supplier: {}", store.parallel_tests(Some(s.id)).unwrap().len()).unwrap();

        writeln!(
            t,
            "recommend: {} again: {}",
            store.recommend(s.id, "to_client", "move it", now()).unwrap(),
            store.recommend(s.id, "to_client", "move it again", now()).unwrap()
        )
        .unwrap();
        let open = store.open_recommendations().unwrap();
        writeln!(t, "open: {open:?}").unwrap();
        writeln!(
            t,
            "dismissed: {:?} again: {:?}",
            store.dismiss_recommendation(open[0].id, now()).unwrap(),
            store.dismiss_recommendation(open[0].id, now()).unwrap()
        )
        .unwrap();
        store.recommend(s.id, "to_client", "once more", now()).unwrap();
        store.dismiss_recommendations(s.id, "to_client", now()).unwrap();
        writeln!(t, "open after: {:?}", store.open_recommendations().unwrap()).unwrap();

        let mut v = Version::start(store);
        let mirror = store.insert_mirror(s.id, acc.id, 25, 50, now(), now() + Duration::hours(1)).unwrap();
        writeln!(t, "mirror: {mirror:?} moved={}", v.moved(store)).unwrap();
        writeln!(t, "second mirror: {}", store.insert_mirror(s.id, acc.id, 25, 50, now(), now()).unwrap_err()).unwrap();
        writeln!(t, "running: {:?}", store.running_mirrors().unwrap().iter().map(|m| m.id).collect::<Vec<_>>()).unwrap();
        writeln!(
            t,
            "claimed: {} again: {} moved={}",
            store.claim_mirror(mirror.id, now()).unwrap(),
            store.claim_mirror(mirror.id, now()).unwrap(),
            v.moved(store)
        )
        .unwrap();
        store.end_mirror(mirror.id, "done", Some(report), "enough compared", now()).unwrap();
        writeln!(t, "ended: {:?} moved={}", store.mirror(mirror.id).unwrap(), v.moved(store)).unwrap();
        writeln!(t, "mirrors: {:?} missing: {:?}", store.mirrors(Some(s.id), 5).unwrap().len(), store.mirror(99).unwrap()).unwrap();

        let start = now() + Duration::days(3);
        let sched = store.insert_schedule(s.id, RouteTarget::Platform, &plan, start, now()).unwrap();
        writeln!(t, "schedule: {sched:?}").unwrap();
        writeln!(t, "second schedule: {}", store.insert_schedule(s.id, RouteTarget::Platform, &plan, start, now()).unwrap_err()).unwrap();
        writeln!(
            t,
            "due now: {:?} due then: {:?}",
            store.due_schedules(now()).unwrap().len(),
            store.due_schedules(start).unwrap().iter().map(|s| s.id).collect::<Vec<_>>()
        )
        .unwrap();
        writeln!(t, "claim: {} again: {}", store.claim_schedule(sched.id, start).unwrap(), store.claim_schedule(sched.id, start).unwrap())
            .unwrap();
        store.finish_schedule(sched.id, ScheduleState::Started, Some(id), None, start).unwrap();
        writeln!(t, "finished: {:?}", store.schedule(sched.id).unwrap()).unwrap();
        let other = store.insert_schedule(s.id, RouteTarget::Platform, &plan, start + Duration::days(1), now()).unwrap();
        writeln!(
            t,
            "cancel: {} again: {} -> {:?}",
            store.cancel_schedule(other.id, now()).unwrap(),
            store.cancel_schedule(other.id, now()).unwrap(),
            store.schedule(other.id).unwrap().reason
        )
        .unwrap();
        writeln!(
            t,
            "schedules: {:?} missing: {}",
            store.schedules(Some(s.id)).unwrap().iter().map(|s| s.id).collect::<Vec<_>>(),
            store.schedule(99).unwrap_err()
        )
        .unwrap();

        writeln!(t, "setting: {:?}", store.setting("console.routes").unwrap()).unwrap();
        store.set_setting("console.routes", "yes").unwrap();
        store.set_setting("console.routes", "no").unwrap();
        writeln!(t, "setting: {:?} usage: {}", store.setting("console.routes").unwrap(), store.has_usage_events().unwrap()).unwrap();
    });
}

/// What PostgreSQL mode adds: another process's pool sees a change as a new
/// catalog version, a LISTEN connection is told the version, a method not
/// ported yet says so, and errors never show a password.
#[test]
fn catalog_changes_reach_another_connection() {
    let Some(base) = base_url("store_backends::catalog_changes_reach_another_connection") else { return };
    let rt = rt();
    let url = rt.block_on(fresh_db(&base, "sbt_sb_notify"));
    let writer = Store::open_postgres(&url).unwrap();
    let reader = Store::open_location(&url).unwrap();
    assert_eq!(writer.location(), reader.location());
    assert_eq!(writer.schema_version().unwrap(), switchboard::store::pg::schema::LATEST_VERSION);

    let (listener, mut conn) = rt.block_on(tokio_postgres::connect(&url, tokio_postgres::NoTls)).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    rt.spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = m {
                let _ = tx.send((n.channel().to_string(), n.payload().to_string()));
            }
        }
    });
    rt.block_on(listener.batch_execute(&format!("LISTEN {CATALOG_CHANNEL}"))).unwrap();
    // Waits for the notification announcing `version`, skipping older ones.
    let mut told = |version: i64| {
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(5), async {
                loop {
                    let (channel, payload) = rx.recv().await.expect("the listener ended");
                    assert_eq!(channel, CATALOG_CHANNEL);
                    if payload.parse::<i64>().unwrap() >= version {
                        return payload.parse::<i64>().unwrap();
                    }
                }
            })
            .await
            .expect("no notification within 5 s")
        })
    };

    let before = reader.catalog_version().unwrap();
    let s = writer.insert_supplier(&supplier("Studio", Tier::Starter, &[]), now()).unwrap();
    let after_insert = reader.catalog_version().unwrap();
    assert!(after_insert > before, "the reader sees the insert: {before} → {after_insert}");
    assert_eq!(told(after_insert), after_insert);
    assert_eq!(reader.supplier(s.id).unwrap().name, "Studio");

    let token = writer.insert_token(s.id, &TokenHash::of("sbk_live"), "sbk_…live", now()).unwrap();
    let after_token = reader.catalog_version().unwrap();
    assert!(after_token > after_insert);
    assert_eq!(told(after_token), after_token);
    assert!(!reader.find_token_by_hash(&TokenHash::of("sbk_live")).unwrap().unwrap().revoked);
    writer.revoke_token(token.id, now()).unwrap();
    let after_revoke = reader.catalog_version().unwrap();
    assert!(after_revoke > after_token);
    assert_eq!(told(after_revoke), after_revoke);
    assert!(reader.find_token_by_hash(&TokenHash::of("sbk_live")).unwrap().unwrap().revoked, "the other pool sees the revocation");

    // A raw statement on another connection (not through the store) is announced too.
    let other = rt.block_on(raw(&url));
    rt.block_on(other.execute("UPDATE suppliers SET tier = 'scale' WHERE id = $1", &[&s.id.0])).unwrap();
    let after_raw = writer.catalog_version().unwrap();
    assert!(after_raw > after_revoke);
    assert_eq!(told(after_raw), after_raw);
    assert_eq!(writer.supplier(s.id).unwrap().tier, Tier::Scale);

    // Not ported yet: a clear error, no panic.
    let Err(e) = reader.cache_purges_since(0) else { panic!("the response cache's purge log read on PostgreSQL") };
    assert!(matches!(e, StoreError::NotOnPostgres(_)), "{e:?}");
    assert!(e.to_string().starts_with("not available on PostgreSQL yet"), "{e}");
    assert!(matches!(reader.open_connection(), Err(StoreError::NotOnPostgres(_))));
}

#[test]
fn postgres_errors_mask_the_password() {
    // Nothing listens on port 1: the connection is refused at once.
    let e = Store::open_location("postgres://sb:s3cr3t-pw@127.0.0.1:1/sb").unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, StoreError::Postgres(_)), "{e:?}");
    assert!(!text.contains("s3cr3t-pw"), "{text}");
    assert!(text.contains("sb:***@127.0.0.1:1"), "{text}");

    let Some(base) = base_url("store_backends::postgres_errors_mask_the_password") else { return };
    // Another application's database is refused, untouched.
    let rt = rt();
    let url = rt.block_on(fresh_db(&base, "sbt_sb_foreign"));
    rt.block_on(async { raw(&url).await.batch_execute("CREATE TABLE orders (id INT)").await.unwrap() });
    let e = Store::open_location(&url).unwrap_err();
    assert!(e.to_string().contains("another application (orders)"), "{e}");
}

/// The catalog commands on PostgreSQL through `--database URL`,
/// `SWITCHBOARD_DATABASE` and `--db URL`; commands not ported yet refuse with
/// a clear message; no output ever shows the URL's password (the test
/// cluster trusts loopback, so a password in the URL is never checked).
#[test]
fn catalog_commands_on_postgres() {
    let Some(base) = base_url("store_backends::catalog_commands_on_postgres") else { return };
    let url = rt().block_on(fresh_db(&base, "sbt_sb_cli"));
    let (scheme, rest) = url.split_once("://").unwrap();
    let url = format!("{scheme}://{}", rest.replacen('@', ":hunter2-pw@", 1));
    let mut outputs = String::new();
    let mut run = |args: &[&str], how: usize, ok: bool| {
        let mut c = crate::support::bin();
        match how {
            0 => c.args(["--database", &url]),
            1 => c.env("SWITCHBOARD_DATABASE", &url),
            _ => c.args(["--db", &url]),
        };
        let out = c.args(args).output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
        outputs.push_str(&stdout);
        outputs.push_str(&stderr);
        assert_eq!(out.status.success(), ok, "{args:?}: {stdout}{stderr}");
        if ok { stdout } else { stderr }
    };
    run(&["supplier", "add", "--name", "Capture Moments", "--vendor-type", "photographer", "--tier", "starter"], 0, true);
    run(&["supplier", "add", "--name", "Grand Ballroom", "--vendor-type", "venue", "--tier", "scale", "--mode", "client"], 1, true);
    let list: serde_json::Value = serde_json::from_str(&run(&["supplier", "list", "--json"], 2, true)).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    assert_eq!(list[0]["name"], "Capture Moments");
    let id = list[0]["id"].to_string();
    run(&["supplier", "edit", &id, "--tier", "scale", "--add-wedding", "2026-06-20"], 0, true);
    let shown: serde_json::Value = serde_json::from_str(&run(&["supplier", "show", &id, "--json"], 0, true)).unwrap();
    assert_eq!((shown["tier"].as_str(), shown["weddings"].clone()), (Some("scale"), serde_json::json!(["2026-06-20"])));

    let issued: serde_json::Value = serde_json::from_str(&run(&["token", "issue", "--supplier", &id, "--json"], 0, true)).unwrap();
    let token_id = issued["id"].to_string();
    run(&["token", "revoke", &token_id], 1, true);
    let tokens: serde_json::Value = serde_json::from_str(&run(&["token", "list", "--json"], 0, true)).unwrap();
    assert_eq!(tokens.as_array().unwrap().len(), 1);
    assert!(!tokens[0]["revoked_at"].is_null(), "{tokens}");
    let keys: serde_json::Value = serde_json::from_str(&run(&["key", "list", "--json"], 0, true)).unwrap();
    assert_eq!(keys, serde_json::json!([]));
    let ballroom = list[1]["id"].to_string();
    run(&["supplier", "remove", &ballroom], 2, true);

    // The same database through the store: what the commands wrote, audited.
    let store = Store::open_postgres(&url).unwrap();
    assert_eq!(
        store.list_suppliers(&SupplierFilter::default()).unwrap().iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["Capture Moments"]
    );
    let actions: Vec<String> = store.audit_entries(&AuditFilter::default()).unwrap().into_iter().map(|e| e.action).collect();
    assert!(actions.iter().any(|a| a.starts_with("token.")), "{actions:?}");

    // Alerts and recommendations raised by the fleet, handled from the CLI.
    let sid = SupplierId(list[0]["id"].as_i64().unwrap());
    let raised = match store.raise_alert(
        &NewAlert {
            kind: AlertKind::QuotaWarning,
            condition_key: "quota:1".into(),
            severity: Severity::Warning,
            supplier_id: Some(sid),
            account_id: None,
            message: "80 % of the quota used".into(),
            escalated: false,
            incident_id: None,
        },
        Utc::now(),
    ) {
        Ok(Raised::New(a)) => a,
        other => panic!("{other:?}"),
    };
    let alerts: serde_json::Value = serde_json::from_str(&run(&["alerts", "--json"], 1, true)).unwrap();
    assert_eq!(alerts[0]["id"], raised.id, "{alerts}");
    run(&["alerts", "ack", &raised.id.to_string()], 0, true);
    assert!(store.find_alert(raised.id).unwrap().unwrap().acknowledged_at.is_some());
    assert!(run(&["alerts", "resolve", "999"], 0, false).contains("999"));
    assert!(store.recommend(sid, "to_client", "move Capture Moments to its own account", Utc::now()).unwrap());
    let recs: serde_json::Value = serde_json::from_str(&run(&["recommendations", "--json"], 2, true)).unwrap();
    run(&["recommendations", "dismiss", &recs[0]["id"].to_string()], 0, true);
    assert!(store.open_recommendations().unwrap().is_empty());
    let actions: Vec<String> = store.audit_entries(&AuditFilter::default()).unwrap().into_iter().map(|e| e.action).collect();
    assert!(actions.iter().any(|a| a == "recommendation.dismiss") && actions.iter().any(|a| a.starts_with("alert.")), "{actions:?}");

    // Reports run on PostgreSQL (store_backends::analytics compares them with SQLite's), cache
    // figures too (the parallel test and purges, carried out by instances: tests/it/fleet_cli.rs).
    let quota: serde_json::Value =
        serde_json::from_str(&run(&["report", "quota", "--from", "2026-06-01", "--to", "2026-06-30"], 0, true)).unwrap();
    assert!(quota["quota use"].is_object(), "{quota}");
    let stats: serde_json::Value = serde_json::from_str(&run(&["cache", "stats", "--json"], 0, true)).unwrap();
    assert!(stats["suppliers"].is_array(), "{stats}");
    let e = run(&["demo-data"], 0, false);
    assert!(e.contains("demo-data writes a demonstration history into a SQLite file"), "{e}");
    // Health runs (tests/it/fleet_cli.rs probes real accounts); here there are none.
    let out = run(&["health"], 1, true);
    assert!(out.contains("No provider accounts yet"), "{out}");
    let e = crate::support::bin().args(["--database", "/tmp/x.db", "supplier", "list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&e.stderr).contains("takes a PostgreSQL URL"));
    assert!(!outputs.contains("hunter2-pw"), "a password was shown:\n{outputs}");
}

/// Two instances (two pools on one database) racing for the same alert,
/// incident, recommendation, mirror claim and schedule claim: exactly one
/// wins each, and the other sees the winner's row.
#[test]
fn instances_racing_for_one_row() {
    let Some(base) = base_url("store_backends::instances_racing_for_one_row") else { return };
    let url = rt().block_on(fresh_db(&base, "sbt_sb_race"));
    let a = std::sync::Arc::new(Store::open_postgres(&url).unwrap());
    let b = std::sync::Arc::new(Store::open_postgres(&url).unwrap());
    let s = a.insert_supplier(&supplier("Studio", Tier::Starter, &[]), now()).unwrap();
    let acc = a.insert_account(&account(AccountOwner::Supplier(s.id), "own"), now()).unwrap();
    let plan = [PhasePlan { percent: 100, min_secs: 0 }];
    for round in 0..20 {
        let key = format!("down:account:{round}");
        let sched = a.insert_schedule(s.id, RouteTarget::Platform, &plan, now(), now()).unwrap();
        let mirror = a.insert_mirror(s.id, acc.id, 10, 10, now(), now() + Duration::hours(1)).unwrap();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let race = |store: std::sync::Arc<Store>, barrier: std::sync::Arc<std::sync::Barrier>, key: String| {
            std::thread::spawn(move || {
                barrier.wait();
                let alert = store
                    .raise_alert(
                        &NewAlert {
                            kind: AlertKind::ProviderDown,
                            condition_key: key,
                            severity: Severity::Critical,
                            supplier_id: None,
                            account_id: Some(AccountId(round)),
                            message: "down".into(),
                            escalated: false,
                            incident_id: None,
                        },
                        now(),
                    )
                    .unwrap();
                let incident = store.open_incident(AccountId(round), now()).unwrap();
                let recommended = store.recommend(SupplierId(1), &format!("kind{round}"), "m", now()).unwrap();
                let mirror_claimed = store.claim_mirror(mirror.id, now()).unwrap();
                let schedule_claimed = store.claim_schedule(sched.id, now()).unwrap();
                (alert, incident, recommended, mirror_claimed, schedule_claimed)
            })
        };
        let ta = race(a.clone(), barrier.clone(), key.clone());
        let tb = race(b.clone(), barrier, key.clone());
        let (ra, rb) = (ta.join().unwrap(), tb.join().unwrap());
        let id_of = |r: &Raised| match r {
            Raised::New(x) | Raised::AlreadyOpen(x) => x.id,
        };
        assert_eq!(id_of(&ra.0), id_of(&rb.0), "one alert for {key}");
        assert_eq!(matches!(ra.0, Raised::New(_)) as u8 + matches!(rb.0, Raised::New(_)) as u8, 1, "exactly one raised {key}");
        assert_eq!(ra.1.id, rb.1.id, "one incident");
        assert_eq!(ra.2 as u8 + rb.2 as u8, 1, "one recommendation");
        assert_eq!(ra.3 as u8 + rb.3 as u8, 1, "one mirror claim");
        assert_eq!(ra.4 as u8 + rb.4 as u8, 1, "one schedule claim");
        a.end_mirror(mirror.id, "done", None, "", now()).unwrap();
        a.finish_schedule(sched.id, ScheduleState::Refused, None, Some("test"), now()).unwrap();
    }
    assert_eq!(a.list_alerts(true, 100).unwrap().len(), 20);
    assert_eq!(b.open_incidents().unwrap().len(), 20);
    assert_eq!(b.open_recommendations().unwrap().len(), 20);
}
