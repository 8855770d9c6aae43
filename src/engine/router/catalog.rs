//! The router's live state: the in-memory [`RouteCatalog`] of suppliers,
//! accounts (with their breakers), gateway tokens and running mirrors, loaded
//! from the store and reloaded when the store's catalog version changes
//! (per-supplier quota counters and rate limiters, per-account breakers and
//! per-token last-use marks survive reloads); the accounts' keys and the
//! migrations' traffic splits; authentication of a gateway token; the models
//! offered and which model an account is sent.

use super::mirror::MirrorEntry;
use super::quota::QuotaCounter;
use super::{RouteError, Router, RouterEvent};
use crate::domain::Secret;
use crate::domain::breaker::{Breaker, BreakerState, BreakerTransition};
use crate::domain::ratelimit::Gcra;
use crate::domain::routing::Split;
use crate::domain::{AccountId, AccountOwner, FastMap, ProviderAccount, ProviderKind, Supplier, SupplierId};
use crate::store::{StoreError, TokenHash, TokenId};
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};

pub(super) struct SupplierEntry {
    pub(super) supplier: Supplier,
    /// Enabled client accounts in preference order.
    pub(super) client_accounts: Vec<AccountId>,
    pub(super) quota: Arc<Mutex<QuotaCounter>>,
    pub(super) gcra: Arc<Mutex<Gcra>>,
    pub(super) in_failover: Arc<AtomicBool>,
    /// The supplier's response cache settings.
    pub(super) cache: crate::domain::cache::CacheSettings,
}

pub(super) struct AccountEntry {
    pub(super) account: ProviderAccount,
    pub(super) breaker: Arc<Mutex<Breaker>>,
}

struct TokenEntry {
    supplier: SupplierId,
    revoked: bool,
    id: TokenId,
    /// When its last use was last written (Unix seconds, 0 = not yet); kept
    /// across catalog reloads.
    noted: Arc<AtomicI64>,
}

/// What the router routes over, as of the last reload.
#[derive(Default)]
pub(super) struct RouteCatalog {
    pub(super) suppliers: FastMap<SupplierId, Arc<SupplierEntry>>,
    pub(super) accounts: FastMap<AccountId, Arc<AccountEntry>>,
    pub(super) platform: Vec<AccountId>,
    tokens: FastMap<TokenHash, TokenEntry>,
    /// Running live-traffic mirrors, by supplier (at most one each).
    pub(super) mirrors: FastMap<SupplierId, Arc<MirrorEntry>>,
}

/// Which family of models a provider serves (OpenAI and Azure serve the same).
pub(super) fn family(k: ProviderKind) -> u8 {
    if k == ProviderKind::Anthropic { 1 } else { 0 }
}

impl Router {
    pub(super) fn catalog(&self) -> Arc<RouteCatalog> {
        self.catalog.read().clone()
    }

    /// Reloads the catalog if the store's catalog changed since the last load.
    pub fn reload_if_changed(&self) -> Result<bool, StoreError> {
        let v = self.store.catalog_version()?;
        if *self.catalog_version.lock() == v {
            return Ok(false);
        }
        self.reload()?;
        Ok(true)
    }

    /// Rebuilds the catalog from the store, carrying counters and breakers over.
    pub fn reload(&self) -> Result<(), StoreError> {
        let version = self.store.catalog_version()?;
        let suppliers = self.store.list_suppliers(&Default::default())?;
        let accounts = self.store.list_accounts(None)?;
        let tokens = self.store.token_rows()?;
        self.pools.set_settings(self.store.pool_settings()?);
        let mut cache_settings = self.store.cache_settings_all()?;
        let old = self.catalog();
        let mut cat = RouteCatalog::default();
        for a in accounts {
            let breaker = old
                .accounts
                .get(&a.id)
                .map(|o| o.breaker.clone())
                .unwrap_or_else(|| Arc::new(Mutex::new(Breaker::new(self.cfg.breaker.clone()))));
            if a.owner == AccountOwner::Platform && a.enabled {
                cat.platform.push(a.id);
            }
            cat.accounts.insert(a.id, Arc::new(AccountEntry { account: a, breaker }));
        }
        for s in suppliers {
            let client_accounts: Vec<AccountId> = {
                let mut v: Vec<&Arc<AccountEntry>> =
                    cat.accounts.values().filter(|a| a.account.owner == AccountOwner::Supplier(s.id) && a.account.enabled).collect();
                v.sort_by_key(|a| a.account.id);
                v.into_iter().map(|a| a.account.id).collect()
            };
            let prev = old.suppliers.get(&s.id);
            let entry = SupplierEntry {
                client_accounts,
                quota: prev.map(|p| p.quota.clone()).unwrap_or_default(),
                gcra: prev.map(|p| p.gcra.clone()).unwrap_or_default(),
                in_failover: prev.map(|p| p.in_failover.clone()).unwrap_or_default(),
                cache: cache_settings.remove(&s.id).unwrap_or_default(),
                supplier: s,
            };
            cat.suppliers.insert(entry.supplier.id, Arc::new(entry));
        }
        for t in tokens {
            let noted = old.tokens.get(&t.hash).map(|o| o.noted.clone()).unwrap_or_default();
            cat.tokens.insert(t.hash, TokenEntry { supplier: t.supplier_id, revoked: t.revoked, id: t.id, noted });
        }
        for m in self.store.running_mirrors()? {
            let entry = match old.mirrors.get(&m.supplier_id).filter(|o| o.record.id == m.id) {
                Some(o) => Arc::new(MirrorEntry {
                    dispatched: AtomicU32::new(o.dispatched.load(Ordering::Relaxed)),
                    recorded: o.recorded.clone(),
                    record: m,
                }),
                None => {
                    // Adopted (a new mirror, or one running before a restart): count what the ledger has.
                    let copies = self.store.mirror_copies(m.id)?;
                    Arc::new(MirrorEntry { dispatched: AtomicU32::new(copies), recorded: Arc::new(AtomicU32::new(copies)), record: m })
                }
            };
            cat.mirrors.insert(entry.record.supplier_id, entry);
        }
        self.mirroring.store(!cat.mirrors.is_empty(), Ordering::Relaxed);
        // Purges logged by any process, and removed suppliers: their memory entries go.
        // Fleet mode: the cache (and its purge log) is the instance's own file.
        let purge_log = self.cfg.local_store.as_deref().unwrap_or(&self.store);
        self.cache.apply_purges(purge_log, &|s| cat.suppliers.contains_key(&s))?;
        *self.catalog.write() = Arc::new(cat);
        *self.catalog_version.lock() = version;
        Ok(())
    }

    /// The supplier a gateway token belongs to (and its last use noted).
    pub fn authenticate(&self, bearer: Option<&str>) -> Result<SupplierId, RouteError> {
        let token = bearer.map(str::trim).filter(|t| !t.is_empty()).ok_or(RouteError::UnknownToken)?;
        let cat = self.catalog();
        match cat.tokens.get(&TokenHash::of(token)) {
            Some(TokenEntry { revoked: true, .. }) => Err(RouteError::RevokedToken),
            Some(t) if cat.suppliers.contains_key(&t.supplier) => {
                self.note_token_use(t);
                Ok(t.supplier)
            }
            _ => Err(RouteError::UnknownToken),
        }
    }

    /// Records a token's last use in the store (shown in the Keys view and
    /// `token list`), at most once a minute per token and off the request's
    /// path: the write runs on the router's runtime's blocking pool and the
    /// request never waits.
    fn note_token_use(&self, t: &TokenEntry) {
        const EVERY_SECS: i64 = 60;
        let now = self.clock.now();
        let secs = now.timestamp();
        let last = t.noted.load(Ordering::Relaxed);
        if last != 0 && last <= secs && secs - last < EVERY_SECS {
            return;
        }
        // One request of the minute writes it (no lock on the request path).
        if t.noted.compare_exchange(last, secs, Ordering::Relaxed, Ordering::Relaxed).is_err() {
            return;
        }
        let id = t.id;
        let store = self.store.clone();
        self.background(move || {
            if let Err(e) = store.touch_token_used(id, now) {
                tracing::warn!(token = id.0, error = %e, "could not record the gateway token's last use");
            }
        });
    }

    /// Sets (or clears) the key used for an account. In-flight requests keep
    /// the key they started with.
    pub fn set_key(&self, account: AccountId, key: Option<Secret>) {
        let mut keys = self.keys.write();
        match key {
            Some(k) => keys.insert(account, k),
            None => keys.remove(&account),
        };
    }

    /// The key the router uses for an account (for the parallel test).
    pub fn key(&self, account: AccountId) -> Option<Secret> {
        self.keys.read().get(&account).cloned()
    }

    pub fn has_key(&self, account: AccountId) -> bool {
        self.keys.read().contains_key(&account)
    }

    /// Platform accounts in routing order.
    pub fn platform_accounts(&self) -> Vec<AccountId> {
        self.catalog().platform.clone()
    }

    /// Sets the traffic split of a running migration (None: no split).
    pub fn set_split(&self, supplier: SupplierId, split: Option<Split>) {
        let mut s = self.splits.write();
        match split {
            Some(v) => s.insert(supplier, v),
            None => s.remove(&supplier),
        };
    }

    pub fn split(&self, supplier: SupplierId) -> Option<Split> {
        self.splits.read().get(&supplier).copied()
    }

    /// Breaker state of every account as of now.
    pub fn breaker_states(&self) -> Vec<(ProviderAccount, BreakerState)> {
        let cat = self.catalog();
        let now = self.clock.now();
        let mut v: Vec<_> = cat.accounts.values().map(|a| (a.account.clone(), a.breaker.lock().state_at(now))).collect();
        v.sort_by_key(|(a, _)| a.id);
        v
    }

    /// Forces an account's breaker open or closed (the health monitor's verdict).
    pub fn force_breaker(&self, account: AccountId, open: bool) {
        let cat = self.catalog();
        if let Some(a) = cat.accounts.get(&account) {
            let now = self.clock.now();
            let t = {
                let mut b = a.breaker.lock();
                if open { b.force_open(now) } else { b.force_close() }
            };
            self.on_transition(account, t);
        }
    }

    /// Audits a breaker's opening or closing and raises its event.
    pub(super) fn on_transition(&self, account: AccountId, t: BreakerTransition) {
        let ev = match t {
            BreakerTransition::Opened => RouterEvent::BreakerOpened { account },
            BreakerTransition::Closed => RouterEvent::BreakerClosed { account },
            _ => return,
        };
        let (action, what) = match ev {
            RouterEvent::BreakerOpened { .. } => ("breaker.open", "taken out of routing"),
            _ => ("breaker.close", "back in routing"),
        };
        // The entry names the account (and its owner), not just its number.
        let cat = self.catalog();
        let (supplier, name) = match cat.accounts.get(&account) {
            Some(a) => {
                (a.account.owner.supplier(), format!("{} ({}, account {})", a.account.label, a.account.provider.display_name(), account.0))
            }
            None => (None, format!("account {}", account.0)),
        };
        self.audit_async(action, supplier, Some(account), format!("{name} {what}"));
        let _ = self.events.send(ev);
    }

    /// Writes an audit line off the request path.
    pub(super) fn audit_async(&self, action: &'static str, supplier: Option<SupplierId>, account: Option<AccountId>, detail: String) {
        let store = self.store.clone();
        let now = self.clock.now();
        self.background(move || {
            if let Err(e) = store.audit(now, "runtime", action, supplier, account, "ok", &detail) {
                tracing::warn!(error = %e, action, "audit write failed");
            }
        });
    }

    /// Models offered through the gateway (those the pricing table knows).
    pub fn models(&self) -> Vec<(String, ProviderKind)> {
        let mut v: Vec<(String, ProviderKind)> = self
            .pricing
            .models()
            .filter(|(name, p)| !name.contains('/') && p.provider.is_some())
            .map(|(name, p)| (name.to_string(), p.provider.unwrap_or(ProviderKind::OpenAi)))
            .collect();
        v.sort();
        v
    }

    pub(super) fn model_provider(&self, model: &str) -> Option<ProviderKind> {
        [ProviderKind::OpenAi, ProviderKind::Anthropic, ProviderKind::AzureOpenAi]
            .into_iter()
            .find_map(|p| self.pricing.price(p, model).and_then(|m| m.provider))
    }

    /// The model to send to an account: the caller's when the account's
    /// provider family serves it, else its equivalent in the model table
    /// (`assets/translation.json`; the account's default model when it is
    /// one of the equivalents). `None`: the table has no equivalent.
    pub(super) fn model_for<'a>(&self, account: &ProviderAccount, requested: &'a str) -> Option<std::borrow::Cow<'a, str>> {
        match self.model_provider(requested) {
            Some(mp) if family(mp) == family(account.provider) => Some(std::borrow::Cow::Borrowed(requested)),
            _ => {
                let all = self.providers.config().translation.equivalents_of(requested, account.provider);
                let pick = all.iter().find(|m| **m == account.default_model).or(all.first());
                pick.map(|m| std::borrow::Cow::Owned(m.to_string()))
            }
        }
    }

    /// Sets `model` to the model to send to `account` for `requested`
    /// ([`Router::model_for`], else the account's default model), without
    /// a new string when it is that already (a request's first attempt).
    pub(super) fn set_model_for(&self, account: &ProviderAccount, requested: &str, model: &mut String) {
        let to = self.model_for(account, requested);
        let to = to.as_deref().unwrap_or(&account.default_model);
        if model != to {
            model.clear();
            model.push_str(to);
        }
    }

    /// The models a route of `account`'s provider family offers: its side of
    /// the model table and the account's default model.
    pub(super) fn models_offered(&self, account: &ProviderAccount) -> Vec<String> {
        let mut v = self.providers.config().translation.models_of(account.provider);
        if !account.default_model.is_empty() {
            v.push(account.default_model.clone());
        }
        v.sort();
        v.dedup();
        v
    }
}
