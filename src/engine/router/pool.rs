//! Key pools on the request path: the live [`KeyState`] of every account
//! (platform and client), the pool settings loaded with the catalog, and
//! the strategy. A pool is the platform keys of one provider. The router
//! orders each pool's keys for a request ([`Router::order_pools`]: the
//! model's provider first, then its family, each pool by the
//! strategy, keys out of headroom, cooling down after a 429 or over their
//! budget left out), counts every call on its key ([`KeyCall`], an owned
//! guard), learns the limits the provider reports from each answer's
//! headers ([`Pools::observer`]), cools a key down for the provider's reset
//! after a 429, and adds each usage row's cost to its key's monthly spend.
//!
//! All of it lives behind one short-held lock in this process. Shared across
//! gateway instances (issue 25) it maps onto the store: per-key per-second
//! counters and the month's spend are additive (one `UPDATE … SET n = n + ?`
//! per call, or a Redis `INCRBY` with a 60 s expiry), the reported limits
//! and the cool-down are last-writer-wins timestamps (`max(cooling_until)`),
//! and the weighted round robin needs no sharing (each instance's own is
//! exact in aggregate). See ARCHITECTURE.md.

use super::Router;
use super::catalog::family;
use crate::domain::keypool::{self, KeySnapshot, KeyState, PoolKey, PoolSettings, Strategy};
use crate::domain::routing::Candidate;
use crate::domain::{AccountId, AccountOwner, Clock, FastMap, Micros, ProviderKind};
use crate::providers::{HeaderObserver, ProviderError};
use chrono::{DateTime, Utc};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::Arc;

/// The pools' live state.
pub(super) struct Pools {
    clock: Arc<dyn Clock>,
    strategy: RwLock<Strategy>,
    settings: RwLock<FastMap<AccountId, PoolSettings>>,
    keys: Mutex<FastMap<AccountId, KeyState>>,
}

/// A call on a key: counted in flight until it ends; dropped without
/// [`KeyCall::end`] (the request future was dropped) it ends as unknown.
pub(super) struct KeyCall {
    pools: Arc<Pools>,
    account: AccountId,
    tokens: u64,
    ended: bool,
}

impl KeyCall {
    /// The call ended: `Ok` (its tokens are corrected when its usage row is
    /// made) or the provider's error; a 429 cools the key down until the
    /// provider's reset.
    pub(super) fn end(mut self, err: Option<&ProviderError>) {
        self.ended = true;
        let now = self.pools.clock.now();
        let rate_limited = matches!(err, Some(ProviderError::RateLimited { .. }));
        let mut keys = self.pools.keys.lock();
        let k = keys.entry(self.account).or_default();
        // A refused call used no tokens.
        k.end(now, self.tokens, err.map(|_| 0), rate_limited);
        if rate_limited {
            let until = err
                .and_then(ProviderError::retry_after)
                .map(|d| now + chrono::Duration::from_std(d.min(keypool::headers::MAX_RESET)).unwrap_or_default())
                .or_else(|| k.reported.and_then(|(_, r)| r.cool_down_until(now)))
                .filter(|u| *u > now)
                // The provider said nothing: a second, then the next call learns more.
                .unwrap_or(now + chrono::Duration::seconds(1));
            k.cool_down(until);
        }
    }
}

impl Drop for KeyCall {
    fn drop(&mut self) {
        if !self.ended {
            let now = self.pools.clock.now();
            self.pools.keys.lock().entry(self.account).or_default().end(now, self.tokens, None, false);
        }
    }
}

impl Pools {
    pub(super) fn new(clock: Arc<dyn Clock>, strategy: Strategy) -> Arc<Self> {
        Arc::new(Self { clock, strategy: RwLock::new(strategy), settings: RwLock::default(), keys: Mutex::default() })
    }

    pub(super) fn set_settings(&self, s: HashMap<AccountId, PoolSettings>) {
        *self.settings.write() = s.into_iter().collect();
    }

    pub(super) fn settings_of(&self, a: AccountId) -> PoolSettings {
        self.settings.read().get(&a).copied().unwrap_or_default()
    }

    /// Starts a call of about `tokens` tokens on `account`.
    pub(super) fn begin(self: &Arc<Self>, account: AccountId, tokens: u64) -> KeyCall {
        let now = self.clock.now();
        self.keys.lock().entry(account).or_default().begin(now, tokens);
        KeyCall { pools: self.clone(), account, tokens, ended: false }
    }

    /// Learns the limits each answer of `account` reports.
    pub(super) fn observer(self: &Arc<Self>, account: AccountId) -> HeaderObserver {
        let pools = self.clone();
        HeaderObserver(Arc::new(move |h| {
            let found = keypool::RateLimitHeaders::collect(h.iter().map(|(k, v)| (k.as_str(), v.to_str().ok())));
            if found.is_empty() {
                return;
            }
            let now = pools.clock.now();
            let r = found.parse(now);
            if !r.is_empty() {
                pools.keys.lock().entry(account).or_default().observe(now, r);
            }
        }))
    }

    /// A usage row of `account`: its cost counts against the key's budget,
    /// and (`Some((estimated, actual))`) the tokens its call was counted
    /// with are corrected to what it used.
    pub(super) fn on_usage(&self, account: AccountId, now: DateTime<Utc>, cost: Micros, tokens: Option<(u64, u64)>) {
        let mut keys = self.keys.lock();
        let k = keys.entry(account).or_default();
        k.spend(now, cost);
        if let Some((est, actual)) = tokens {
            k.correct_tokens(now, est, actual);
        }
    }

    /// Accounts with a budget whose spend this month is not loaded yet.
    fn spend_to_load(&self, now: DateTime<Utc>, ids: impl Iterator<Item = AccountId>) -> Vec<AccountId> {
        let settings = self.settings.read();
        let mut keys = self.keys.lock();
        ids.filter(|a| settings.get(a).is_some_and(|s| s.monthly_budget.is_some()))
            .filter(|a| {
                let k = keys.entry(*a).or_default();
                k.roll_month(now);
                !k.spent_loaded
            })
            .collect()
    }

    fn set_loaded_spend(&self, account: AccountId, spent: Micros) {
        let mut keys = self.keys.lock();
        let k = keys.entry(account).or_default();
        k.spent = Micros(k.spent.0.max(spent.0));
        k.spent_loaded = true;
    }
}

impl Router {
    /// The strategy used within a pool.
    pub fn pool_strategy(&self) -> Strategy {
        *self.pools.strategy.read()
    }

    /// Changes the strategy (takes effect with the next request).
    pub fn set_pool_strategy(&self, s: Strategy) {
        *self.pools.strategy.write() = s;
    }

    /// Orders the candidates for one request of about `tokens` tokens:
    /// platform keys of the model's provider first, then its family (a 429 moves the request to
    /// another key of the pool before any other provider), each pool by the
    /// strategy, with blocked keys made unavailable (skipped before a call);
    /// a supplier's own keys keep their order, with blocked ones moved last.
    pub(super) fn order_pools(
        &self,
        platform: Vec<Candidate>,
        client: Vec<Candidate>,
        model_provider: Option<ProviderKind>,
        tokens: u64,
        now: DateTime<Utc>,
    ) -> (Vec<Candidate>, Vec<Candidate>) {
        // Per request: no working vector that one key does not need.
        for a in self.pools.spend_to_load(now, platform.iter().map(|c| c.account)) {
            let from = crate::domain::calendar::month_start(now);
            let to = crate::domain::calendar::next_month_start(now);
            match self.store.account_spend(a, from, to) {
                Ok(spent) => self.pools.set_loaded_spend(a, spent),
                Err(e) => tracing::warn!(account = a.0, error = %e, "cannot read a key's spend this month; its budget counts from now"),
            }
        }
        let strategy = self.pool_strategy();
        let settings = self.pools.settings.read();
        let mut keys = self.pools.keys.lock();
        // One pool per provider, in the order of the model's match: its own
        // provider first, then its family (OpenAI and Azure serve the same
        // models), then the others.
        let mut kinds = [ProviderKind::OpenAi; ProviderKind::ALL.len()];
        let mut n = 0;
        for c in &platform {
            if !kinds[..n].contains(&c.provider) && n < kinds.len() {
                kinds[n] = c.provider;
                n += 1;
            }
        }
        let pools = &mut kinds[..n];
        if let Some(mp) = model_provider {
            pools.sort_by_key(|k| (family(*k) != family(mp), *k != mp));
        }
        let mut ordered = Vec::with_capacity(platform.len());
        for &kind in pools.iter() {
            let members = || platform.iter().filter(move |c| c.provider == kind);
            let mut states: Vec<(AccountId, KeyState)> =
                members().filter(|c| c.available).map(|c| (c.account, keys.remove(&c.account).unwrap_or_default())).collect();
            let (order, blocked) = {
                let mut pk: Vec<PoolKey<'_>> = states
                    .iter_mut()
                    .map(|(a, st)| PoolKey { account: *a, settings: settings.get(a).copied().unwrap_or_default(), state: st })
                    .collect();
                keypool::order_pool(strategy, &mut pk, now, tokens)
            };
            for (a, st) in states {
                keys.insert(a, st);
            }
            for a in order {
                if let Some(c) = members().find(|c| c.account == a) {
                    ordered.push(*c);
                }
            }
            for (a, _) in blocked {
                if let Some(c) = members().find(|c| c.account == a) {
                    ordered.push(Candidate { available: false, ..*c });
                }
            }
            ordered.extend(members().filter(|c| !c.available).copied());
        }
        let (open, later): (Vec<Candidate>, Vec<Candidate>) = client
            .into_iter()
            .partition(|c| keys.get(&c.account).is_none_or(|k| k.headroom(&PoolSettings::default(), now, tokens).blocked.is_none()));
        (ordered, open.into_iter().chain(later).collect())
    }

    /// Every key's state, for the console and `/metrics`.
    pub fn pool_snapshot(&self) -> Vec<KeySnapshot> {
        let now = self.clock.now();
        let cat = self.catalog();
        let settings = self.pools.settings.read();
        let keys = self.pools.keys.lock();
        let mut accounts: Vec<_> = cat.accounts.values().filter(|a| a.account.enabled).collect();
        accounts.sort_by_key(|a| a.account.id);
        let mut rows: Vec<KeySnapshot> = accounts
            .iter()
            .map(|a| {
                let s = settings.get(&a.account.id).copied().unwrap_or_default();
                let k = keys.get(&a.account.id).cloned().unwrap_or_default();
                let h = k.headroom(&s, now, 1);
                let (recent_calls, recent_429) = k.recent(now);
                let rep = |w: Option<keypool::LimitWindow>| w.map(|w| (w.remaining_at(now).unwrap_or(w.remaining), w.limit));
                KeySnapshot {
                    account: a.account.id,
                    label: a.account.label.clone(),
                    provider: a.account.provider.to_string(),
                    pool: a.account.provider.as_str(),
                    platform: a.account.owner == AccountOwner::Platform,
                    settings: s,
                    share: 0.0,
                    headroom: h.fraction,
                    blocked: h.blocked,
                    in_flight: k.in_flight,
                    last_minute: k.last_minute(now),
                    recent_calls,
                    recent_429,
                    total_calls: k.total_calls,
                    total_429: k.total_429,
                    spent: k.spent,
                    reported_requests: k.reported.and_then(|(_, r)| rep(r.requests)),
                    reported_tokens: k.reported.and_then(|(_, r)| rep(r.tokens)),
                }
            })
            .collect();
        let totals: HashMap<(&'static str, bool, Option<AccountOwner>), u64> = rows.iter().fold(HashMap::new(), |mut m, r| {
            *m.entry((r.pool, r.platform, owner_of(&cat, r))).or_default() += r.recent_calls;
            m
        });
        for r in &mut rows {
            let total = totals.get(&(r.pool, r.platform, owner_of(&cat, r))).copied().unwrap_or(0);
            r.share = if total == 0 { 0.0 } else { r.recent_calls as f64 / total as f64 };
        }
        rows
    }

    /// Whether a key is over its budget now (for alerts).
    pub fn key_over_budget(&self, account: AccountId) -> Option<(Micros, Micros)> {
        let budget = self.pools.settings_of(account).monthly_budget?;
        let spent = self.pools.keys.lock().get(&account).map(|k| k.spent).unwrap_or_default();
        (spent >= budget).then_some((spent, budget))
    }
}

/// A client key's pool is its supplier's keys; the platform's is shared.
fn owner_of(cat: &super::catalog::RouteCatalog, r: &KeySnapshot) -> Option<AccountOwner> {
    if r.platform { None } else { cat.accounts.get(&r.account).map(|a| a.account.owner) }
}
