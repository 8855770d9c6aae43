//! The catalog on both backends (same transcript on SQLite and PostgreSQL):
//! suppliers and weddings, provider accounts with their key pool and cache
//! settings (and the instance tag), gateway tokens and revocation, and the
//! audit log; the catalog version moving on every routing change, and only
//! then.

use super::{Version, account, day, now, on_both, supplier};
use chrono::Duration;
use std::fmt::Write as _;
use switchboard::domain::cache::CacheSettings;
use switchboard::domain::keypool::PoolSettings;
use switchboard::domain::{
    AccountId, AccountOwner, AuditQuery, AzureConfig, Micros, ProviderKind, SupplierFilter, SupplierId, SupplierPatch, Tier, TokenId,
    ValidationStatus,
};
use switchboard::store::{AuditFilter, NewAccount, StoreError, TokenHash};

#[test]
fn suppliers_and_weddings() {
    on_both("store_backends::catalog::suppliers_and_weddings", |store, t| {
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

#[test]
fn accounts_pools_and_cache_settings() {
    on_both("store_backends::catalog::accounts_pools_and_cache_settings", |store, t| {
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
    on_both("store_backends::catalog::tokens_and_revocation", |store, t| {
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
    on_both("store_backends::catalog::audit_log", |store, t| {
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
