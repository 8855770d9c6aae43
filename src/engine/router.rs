//! The router: the runtime's request path. For each supplier request it
//! resolves the gateway token, applies the tier rate limit and the platform
//! quota (reserve before, settle after), plans the route with
//! `domain::routing::plan_route` over live breaker state and any migration
//! split, calls the provider along the plan (failing over on account faults),
//! and commits the usage event to the ledger before the answer is returned.
//!
//! Live state (suppliers, accounts, keys, tokens) is an in-memory catalog
//! loaded from the store and reloaded when the catalog changes; per-supplier
//! quota counters and rate limiters and per-account breakers survive reloads.

use crate::domain::Secret;
use crate::domain::breaker::{Breaker, BreakerConfig, BreakerState, BreakerTransition};
use crate::domain::calendar::next_month_start;
use crate::domain::quota::QuotaPolicy;
use crate::domain::ratelimit::{Gcra, RateDecision, RateLimit};
use crate::domain::routing::{Candidate, RoutingInput, SkipReason, Split, plan_route};
use crate::domain::{
    AccountId, AccountOwner, AiMode, Clock, Micros, PricingTable, ProviderAccount, ProviderKind, RequestType, Route, Supplier, SupplierId,
    TokenUsage, UsageEvent, UsageStatus,
};
use crate::engine::ledger::Ledger;
use crate::engine::metrics::Metrics;
use crate::providers::stream::{ChatStream, StreamEvent};
use crate::providers::{ChatRequest, EmbeddingsRequest, ProviderError, ProviderTarget, Providers, token_count};
use crate::store::{Store, StoreError};
use bytes::Bytes;
use chrono::{DateTime, Datelike, Utc};
use futures::Stream;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

/// Router settings (defaults from SPEC.md).
#[derive(Debug, Clone)]
pub struct RouterConfig {
    pub quota: QuotaPolicy,
    pub breaker: BreakerConfig,
    /// Output tokens reserved for a request that sets no `max_tokens`.
    pub default_output_allowance: u64,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self { quota: QuotaPolicy::default(), breaker: BreakerConfig::default(), default_output_allowance: 1_024 }
    }
}

/// Why a request was refused, in OpenAI's error shape (see `gateway`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    BadRequest(String),
    #[error("unknown gateway token; send `Authorization: Bearer sbk_…` with a token issued by `switchboard token issue`")]
    UnknownToken,
    #[error("this gateway token was revoked; issue a new one with `switchboard token issue --supplier ID`")]
    RevokedToken,
    #[error("the model '{0}' is not offered here; GET /v1/models lists the models you can use")]
    UnknownModel(String),
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("rate limit of {rpm} requests per minute for the {tier} tier reached; retry in {retry_after_secs} s")]
    RateLimited { rpm: u32, tier: String, retry_after_secs: u64 },
    #[error(
        "the monthly platform AI quota of {quota} tokens is used up ({used} used); it resets at {reset}. Ask your account manager about client AI."
    )]
    QuotaExceeded { quota: u64, used: u64, reset: String, retry_after_secs: u64 },
    /// The provider said the request itself is wrong: passed through.
    #[error("{message}")]
    Upstream { status: u16, class: String, message: String },
    #[error("no route could serve the request: {}", .reasons.join("; "))]
    AllRoutesFailed { status: u16, reasons: Vec<String> },
    #[error("the usage of this request could not be recorded ({0}); it was not billed, please retry")]
    Ledger(String),
}

impl GatewayError {
    pub fn status_code(&self) -> u16 {
        match self {
            GatewayError::BadRequest(_) => 400,
            GatewayError::UnknownToken => 401,
            GatewayError::RevokedToken => 403,
            GatewayError::UnknownModel(_) => 404,
            GatewayError::TooLarge { .. } => 413,
            GatewayError::RateLimited { .. } | GatewayError::QuotaExceeded { .. } => 429,
            GatewayError::Upstream { status, .. } => *status,
            GatewayError::AllRoutesFailed { status, .. } => *status,
            GatewayError::Ledger(_) => 503,
        }
    }

    /// OpenAI's `error.type`.
    pub fn kind(&self) -> &'static str {
        match self {
            GatewayError::BadRequest(_) | GatewayError::UnknownModel(_) | GatewayError::TooLarge { .. } => "invalid_request_error",
            GatewayError::UnknownToken | GatewayError::RevokedToken => "authentication_error",
            GatewayError::RateLimited { .. } | GatewayError::QuotaExceeded { .. } => "rate_limit_error",
            GatewayError::Upstream { .. } => "invalid_request_error",
            GatewayError::AllRoutesFailed { .. } | GatewayError::Ledger(_) => "api_error",
        }
    }

    /// OpenAI's `error.code`.
    pub fn code(&self) -> String {
        match self {
            GatewayError::BadRequest(_) => "invalid_request".into(),
            GatewayError::UnknownToken => "invalid_api_key".into(),
            GatewayError::RevokedToken => "token_revoked".into(),
            GatewayError::UnknownModel(_) => "model_not_found".into(),
            GatewayError::TooLarge { .. } => "request_too_large".into(),
            GatewayError::RateLimited { .. } => "rate_limit_exceeded".into(),
            GatewayError::QuotaExceeded { .. } => "quota_exceeded".into(),
            GatewayError::Upstream { class, .. } => class.clone(),
            GatewayError::AllRoutesFailed { .. } => "all_routes_failed".into(),
            GatewayError::Ledger(_) => "ledger_unavailable".into(),
        }
    }

    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            GatewayError::RateLimited { retry_after_secs, .. } | GatewayError::QuotaExceeded { retry_after_secs, .. } => {
                Some(*retry_after_secs)
            }
            GatewayError::AllRoutesFailed { .. } => Some(1),
            _ => None,
        }
    }
}

/// A platform quota counter for one supplier and calendar month.
#[derive(Debug, Default)]
struct QuotaCounter {
    month: (i32, u32),
    used: u64,
    reserved: u64,
    warned: bool,
    /// When `QuotaExceeded` was last raised, and whether for a wedding day.
    exceeded_raised: Option<(DateTime<Utc>, bool)>,
}

/// While a supplier stays over its quota (wedding-day overage), its
/// `QuotaExceeded` event is raised again at most this often, with the latest
/// figures: once per request flooded the event channel under load.
const QUOTA_EXCEEDED_EVERY_SECS: i64 = 60;

struct SupplierEntry {
    supplier: Supplier,
    /// Enabled client accounts in preference order.
    client_accounts: Vec<AccountId>,
    quota: Arc<Mutex<QuotaCounter>>,
    gcra: Arc<Mutex<Gcra>>,
    in_failover: Arc<AtomicBool>,
}

struct AccountEntry {
    account: ProviderAccount,
    breaker: Arc<Mutex<Breaker>>,
}

#[derive(Clone)]
struct TokenEntry {
    supplier: SupplierId,
    revoked: bool,
    id: crate::store::TokenId,
    /// When its last use was last written (Unix seconds, 0 = not yet); kept
    /// across catalog reloads.
    noted: Arc<std::sync::atomic::AtomicI64>,
}

#[derive(Default)]
struct Catalog {
    suppliers: HashMap<SupplierId, Arc<SupplierEntry>>,
    accounts: HashMap<AccountId, Arc<AccountEntry>>,
    platform: Vec<AccountId>,
    tokens: HashMap<[u8; 32], TokenEntry>,
    /// Running live-traffic mirrors, by supplier (at most one each).
    mirrors: HashMap<SupplierId, Arc<MirrorEntry>>,
}

/// A running live-traffic mirror: a parallel test whose prompts are a sample
/// of the supplier's live requests (see `engine::parallel`).
struct MirrorEntry {
    record: crate::store::MirrorRecord,
    /// Copies sent so far (restored from the ledger when adopted).
    dispatched: std::sync::atomic::AtomicU32,
    /// Copies whose usage is recorded.
    recorded: Arc<std::sync::atomic::AtomicU32>,
}

/// Who sends a request: a gateway token still to be checked, or the supplier
/// a token was already checked for (the gateway checks it before reading the
/// body, so that a bad token is a 401 whatever the body; it is not hashed and
/// looked up a second time).
#[derive(Debug, Clone, Copy)]
pub enum Caller<'a> {
    Token(Option<&'a str>),
    Supplier(SupplierId),
}

impl<'a> From<Option<&'a str>> for Caller<'a> {
    fn from(bearer: Option<&'a str>) -> Self {
        Caller::Token(bearer)
    }
}

/// What one attempt on one account did (for the health monitor and migrations).
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    pub at: DateTime<Utc>,
    pub supplier: SupplierId,
    pub account: AccountId,
    pub route: Route,
    pub ok: bool,
    pub latency_ms: u32,
    pub error_class: Option<&'static str>,
    pub counts_against_health: bool,
}

/// A breaker, failover or quota event worth an audit line or an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterEvent {
    BreakerOpened { account: AccountId },
    BreakerClosed { account: AccountId },
    FailoverStarted { supplier: SupplierId, account: AccountId },
    FailoverEnded { supplier: SupplierId },
    QuotaWarning { supplier: SupplierId, used: u64, quota: u64 },
    QuotaExceeded { supplier: SupplierId, used: u64, quota: u64, wedding_day: bool },
}

/// A plain answer ready to send.
#[derive(Debug)]
pub struct Answer {
    pub body: Bytes,
    pub route: Route,
    pub account: AccountId,
    pub request_id: String,
}

/// A streamed answer: SSE bytes; usage is committed when it ends or is dropped.
pub struct StreamAnswer {
    pub route: Route,
    pub account: AccountId,
    pub request_id: String,
    pub body: Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>,
}

/// Which platform or client account serves, and the model sent to it.
struct Prepared {
    supplier: Arc<SupplierEntry>,
    request_type: RequestType,
    wedding_day: bool,
    /// The platform tokens this request may use, as reserved against the
    /// quota: an upper bound that needs no tokenizer at first, the
    /// tokenizer's count once the bound does not fit (see [`Prepared::refine`]).
    estimate: u64,
    /// Whether `estimate` is the tokenizer's count.
    estimate_exact: bool,
    now: DateTime<Utc>,
    request_id: String,
}

impl Prepared {
    /// Replaces the bound with the tokenizer's count; false when it already is that.
    fn refine(&mut self, exact: impl FnOnce() -> u64) -> bool {
        if self.estimate_exact {
            return false;
        }
        self.estimate = exact().min(self.estimate);
        self.estimate_exact = true;
        true
    }
}

pub struct Router {
    store: Arc<Store>,
    providers: Providers,
    pricing: Arc<PricingTable>,
    clock: Arc<dyn Clock>,
    ledger: Ledger,
    cfg: RouterConfig,
    metrics: Arc<Metrics>,
    catalog: RwLock<Arc<Catalog>>,
    keys: RwLock<HashMap<AccountId, Secret>>,
    splits: RwLock<HashMap<SupplierId, Split>>,
    catalog_version: Mutex<i64>,
    /// Whether any mirror runs (spares the request path a catalog look-up otherwise).
    mirroring: AtomicBool,
    outcomes: tokio::sync::broadcast::Sender<AttemptOutcome>,
    events: tokio::sync::broadcast::Sender<RouterEvent>,
    request_seq: std::sync::atomic::AtomicU64,
    /// Requests being served now, open streams included (`/metrics`).
    in_flight: std::sync::atomic::AtomicUsize,
    /// Of those, open streams: their usage comes when they end, which may be
    /// minutes away, so the ledger does not wait for it (see [`Router::writers_soon`]).
    streaming: std::sync::atomic::AtomicUsize,
    /// When each gateway token's last use was last written to the store.
    instance: String,
}

/// SHA-256 of a gateway token, as stored.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn parse_hash(hex_str: &str) -> Option<[u8; 32]> {
    let v = hex::decode(hex_str).ok()?;
    v.try_into().ok()
}

/// Infers the request type from the header or the request.
pub fn request_type(header: Option<&str>, req: Option<&ChatRequest>) -> Result<RequestType, GatewayError> {
    if let Some(h) = header.map(str::trim).filter(|h| !h.is_empty()) {
        return h.parse::<RequestType>().map_err(|e| GatewayError::BadRequest(format!("X-Switchboard-Request-Type: {e}")));
    }
    match req {
        None => Ok(RequestType::Embedding),
        Some(r) if r.messages.iter().any(|m| m.image_count() > 0) => Ok(RequestType::ImageAnalysis),
        Some(_) => Ok(RequestType::WeddingContent),
    }
}

impl Router {
    pub fn new(
        store: Arc<Store>,
        providers: Providers,
        pricing: Arc<PricingTable>,
        clock: Arc<dyn Clock>,
        ledger: Ledger,
        cfg: RouterConfig,
    ) -> Result<Arc<Router>, StoreError> {
        let (outcomes, _) = tokio::sync::broadcast::channel(4096);
        let (events, _) = tokio::sync::broadcast::channel(1024);
        let mut inst = [0u8; 4];
        let _ = getrandom::fill(&mut inst);
        let r = Arc::new(Router {
            store,
            providers,
            pricing,
            clock,
            ledger,
            cfg,
            metrics: Arc::new(Metrics::default()),
            catalog: RwLock::new(Arc::new(Catalog::default())),
            keys: RwLock::new(HashMap::new()),
            splits: RwLock::new(HashMap::new()),
            catalog_version: Mutex::new(-1),
            mirroring: AtomicBool::new(false),
            outcomes,
            events,
            request_seq: std::sync::atomic::AtomicU64::new(0),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            streaming: std::sync::atomic::AtomicUsize::new(0),
            instance: hex::encode(inst),
        });
        r.reload()?;
        Ok(r)
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }
    pub fn pricing(&self) -> &PricingTable {
        &self.pricing
    }
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }
    pub fn config(&self) -> &RouterConfig {
        &self.cfg
    }

    /// Attempt outcomes, for the health monitor and running migrations.
    pub fn subscribe_outcomes(&self) -> tokio::sync::broadcast::Receiver<AttemptOutcome> {
        self.outcomes.subscribe()
    }

    /// Breaker, failover and quota events.
    pub fn subscribe_events(&self) -> tokio::sync::broadcast::Receiver<RouterEvent> {
        self.events.subscribe()
    }

    /// Sets (or clears) the key used for an account. In-flight requests keep
    /// the key they started with.
    pub fn set_key(&self, account: AccountId, key: Option<Secret>) {
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        match key {
            Some(k) => keys.insert(account, k),
            None => keys.remove(&account),
        };
    }

    /// The key the router uses for an account (for the parallel test).
    pub fn key(&self, account: AccountId) -> Option<Secret> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).get(&account).cloned()
    }

    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    /// Platform accounts in routing order.
    pub fn platform_accounts(&self) -> Vec<AccountId> {
        self.catalog().platform.clone()
    }

    pub fn has_key(&self, account: AccountId) -> bool {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).contains_key(&account)
    }

    /// Sets the traffic split of a running migration (None: no split).
    pub fn set_split(&self, supplier: SupplierId, split: Option<Split>) {
        let mut s = self.splits.write().unwrap_or_else(|e| e.into_inner());
        match split {
            Some(v) => s.insert(supplier, v),
            None => s.remove(&supplier),
        };
    }

    pub fn split(&self, supplier: SupplierId) -> Option<Split> {
        self.splits.read().unwrap_or_else(|e| e.into_inner()).get(&supplier).copied()
    }

    /// Breaker state of every account as of now.
    pub fn breaker_states(&self) -> Vec<(ProviderAccount, BreakerState)> {
        let cat = self.catalog();
        let now = self.clock.now();
        let mut v: Vec<_> =
            cat.accounts.values().map(|a| (a.account.clone(), a.breaker.lock().unwrap_or_else(|e| e.into_inner()).state_at(now))).collect();
        v.sort_by_key(|(a, _)| a.id);
        v
    }

    /// Forces an account's breaker open or closed (the health monitor's verdict).
    pub fn force_breaker(&self, account: AccountId, open: bool) {
        let cat = self.catalog();
        if let Some(a) = cat.accounts.get(&account) {
            let now = self.clock.now();
            let t = {
                let mut b = a.breaker.lock().unwrap_or_else(|e| e.into_inner());
                if open { b.force_open(now) } else { b.force_close() }
            };
            self.on_transition(account, t);
        }
    }

    /// Platform tokens used and reserved this month by a supplier (from the live counter).
    pub fn quota_snapshot(&self, supplier: SupplierId) -> Option<(u64, u64, u64)> {
        let cat = self.catalog();
        let s = cat.suppliers.get(&supplier)?;
        let now = self.clock.now();
        let q = self.counter(s, now);
        let quota = self.cfg.quota.monthly_tokens(s.supplier.tier, now.date_naive());
        Some((q.0, q.1, quota))
    }

    fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reloads the catalog if the store's catalog changed since the last load.
    pub fn reload_if_changed(&self) -> Result<bool, StoreError> {
        let v = self.store.catalog_version()?;
        if *self.catalog_version.lock().unwrap_or_else(|e| e.into_inner()) == v {
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
        let tokens = self.store.gateway_token_hashes()?;
        let old = self.catalog();
        let mut cat = Catalog::default();
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
                supplier: s,
            };
            cat.suppliers.insert(entry.supplier.id, Arc::new(entry));
        }
        for (hash, supplier, revoked, id) in tokens {
            if let Some(h) = parse_hash(&hash) {
                let noted = old.tokens.get(&h).map(|t| t.noted.clone()).unwrap_or_default();
                cat.tokens.insert(h, TokenEntry { supplier, revoked, id, noted });
            }
        }
        for m in self.store.running_mirrors()? {
            let entry = match old.mirrors.get(&m.supplier_id).filter(|o| o.record.id == m.id) {
                Some(o) => Arc::new(MirrorEntry {
                    dispatched: std::sync::atomic::AtomicU32::new(o.dispatched.load(Ordering::Relaxed)),
                    recorded: o.recorded.clone(),
                    record: m,
                }),
                None => {
                    // Adopted (a new mirror, or one running before a restart): count what the ledger has.
                    let copies = self.store.mirror_copies(m.id)?;
                    Arc::new(MirrorEntry {
                        dispatched: std::sync::atomic::AtomicU32::new(copies),
                        recorded: Arc::new(std::sync::atomic::AtomicU32::new(copies)),
                        record: m,
                    })
                }
            };
            cat.mirrors.insert(entry.record.supplier_id, entry);
        }
        self.mirroring.store(!cat.mirrors.is_empty(), Ordering::Relaxed);
        *self.catalog.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(cat);
        *self.catalog_version.lock().unwrap_or_else(|e| e.into_inner()) = version;
        Ok(())
    }

    /// The supplier a gateway token belongs to (and its last use noted).
    pub fn authenticate(&self, bearer: Option<&str>) -> Result<SupplierId, GatewayError> {
        let token = bearer.map(str::trim).filter(|t| !t.is_empty()).ok_or(GatewayError::UnknownToken)?;
        let cat = self.catalog();
        match cat.tokens.get(&token_hash(token)) {
            Some(TokenEntry { revoked: true, .. }) => Err(GatewayError::RevokedToken),
            Some(t) if cat.suppliers.contains_key(&t.supplier) => {
                self.note_token_use(t);
                Ok(t.supplier)
            }
            _ => Err(GatewayError::UnknownToken),
        }
    }

    /// Records a token's last use in the store (shown in the Keys view and
    /// `token list`), at most once a minute per token and off the request's
    /// path: the write runs on the blocking pool and the request never waits.
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
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        let store = self.store.clone();
        rt.spawn_blocking(move || {
            if let Err(e) = store.touch_token_used(id, now) {
                tracing::warn!(token = id.0, error = %e, "could not record the gateway token's last use");
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

    fn model_provider(&self, model: &str) -> Option<ProviderKind> {
        [ProviderKind::OpenAi, ProviderKind::Anthropic, ProviderKind::AzureOpenAi]
            .into_iter()
            .find_map(|p| self.pricing.price(p, model).and_then(|m| m.provider))
    }

    /// A request id unique to this router instance (its clock may stand still).
    pub fn next_request_id(&self) -> String {
        let n = self.request_seq.fetch_add(1, Ordering::Relaxed);
        format!("sb-{}-{}-{n}", self.instance, self.clock.now().timestamp_millis())
    }

    /// (used, reserved) of the supplier's counter, rolled over to `now`'s month
    /// (loading the month's usage from the ledger the first time).
    fn counter(&self, s: &SupplierEntry, now: DateTime<Utc>) -> (u64, u64) {
        let mut q = s.quota.lock().unwrap_or_else(|e| e.into_inner());
        self.roll(&mut q, s.supplier.id, now);
        (q.used, q.reserved)
    }

    fn roll(&self, q: &mut QuotaCounter, supplier: SupplierId, now: DateTime<Utc>) {
        let month = (now.year(), now.month());
        if q.month != month {
            let from = crate::domain::calendar::month_start(now);
            let used = self.store.quota_tokens_used(supplier, from, next_month_start(now)).unwrap_or(0);
            q.month = month;
            q.used = used;
            q.warned = false;
            q.exceeded_raised = None;
        }
    }

    /// Checks auth, model, rate limit; returns what the attempts need.
    fn prepare(
        &self,
        caller: Caller<'_>,
        model: &str,
        request_type: RequestType,
        estimate: u64,
        request_id: Option<&str>,
    ) -> Result<Prepared, GatewayError> {
        let supplier_id = match caller {
            Caller::Token(bearer) => self.authenticate(bearer)?,
            Caller::Supplier(s) => s,
        };
        if model.trim().is_empty() {
            return Err(GatewayError::BadRequest("the request has no model; set \"model\", e.g. \"gpt-4o-mini\"".into()));
        }
        if self.model_provider(model).is_none() {
            return Err(GatewayError::UnknownModel(model.to_string()));
        }
        let cat = self.catalog();
        let supplier = cat.suppliers.get(&supplier_id).cloned().ok_or(GatewayError::UnknownToken)?;
        let now = self.clock.now();
        let today = now.date_naive();
        let wedding_day = supplier.supplier.has_wedding_on(today);
        let rpm = self.cfg.quota.rpm(supplier.supplier.tier, today);
        {
            let mut g = supplier.gcra.lock().unwrap_or_else(|e| e.into_inner());
            let limit = RateLimit::per_minute(rpm);
            if wedding_day {
                g.force(limit, now);
            } else if let RateDecision::Deny { retry_after_ms } = g.check(limit, now) {
                self.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
                return Err(GatewayError::RateLimited {
                    rpm,
                    tier: supplier.supplier.tier.to_string(),
                    retry_after_secs: retry_after_ms.div_ceil(1000).max(1),
                });
            }
        }
        let request_id = match request_id.map(str::trim).filter(|r| !r.is_empty() && r.len() <= 128) {
            Some(r) => format!("{}:{r}", supplier_id.0),
            None => self.next_request_id(),
        };
        Ok(Prepared { supplier, request_type, wedding_day, estimate, estimate_exact: false, now, request_id })
    }

    /// `exact`: the request's token count, asked for only when the cheap
    /// bound does not fit the quota.
    fn plan(
        &self,
        p: &mut Prepared,
        model_provider: Option<ProviderKind>,
        exact: impl FnOnce() -> u64,
    ) -> (crate::domain::routing::RoutePlan, bool) {
        let cat = self.catalog();
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let now = p.now;
        let cand = |id: &AccountId| -> Option<Candidate> {
            let a = cat.accounts.get(id)?;
            let open = !matches!(
                a.breaker.lock().unwrap_or_else(|e| e.into_inner()).state_at(now),
                BreakerState::Closed | BreakerState::HalfOpen { trial_in_flight: false }
            );
            Some(Candidate { account: *id, provider: a.account.provider, available: a.account.enabled && keys.contains_key(id) && !open })
        };
        let client: Vec<Candidate> = p.supplier.client_accounts.iter().filter_map(cand).collect();
        let mut platform: Vec<Candidate> = cat.platform.iter().filter_map(cand).collect();
        // Best match for the model first (OpenAI and Azure serve the same models).
        let family = |k: ProviderKind| if k == ProviderKind::Anthropic { 1 } else { 0 };
        if let Some(mp) = model_provider {
            platform.sort_by_key(|c| (family(c.provider) != family(mp), c.provider != mp));
        }
        let quota = self.cfg.quota.monthly_tokens(p.supplier.supplier.tier, now.date_naive());
        let (used, reserved) = self.counter(&p.supplier, now);
        let mut platform_allowed = p.wedding_day || used + reserved + p.estimate <= quota;
        if !platform_allowed && p.refine(exact) {
            platform_allowed = used + reserved + p.estimate <= quota;
        }
        let input = RoutingInput {
            mode: p.supplier.supplier.ai_mode,
            client: &client,
            platform: &platform,
            platform_allowed,
            allow_platform_failover: p.supplier.supplier.allow_platform_failover,
            split: self.split(p.supplier.supplier.id),
            request_hash: u64::from_le_bytes(Sha256::digest(p.request_id.as_bytes())[..8].try_into().unwrap_or([0; 8])),
        };
        (plan_route(&input), platform_allowed)
    }

    /// Whether an attempt on this account counts against the platform quota.
    fn counts_quota(&self, account: &ProviderAccount) -> bool {
        account.owner == AccountOwner::Platform
    }

    /// Tries to reserve `n` platform tokens; false when the quota has no room.
    fn reserve(&self, p: &Prepared, n: u64) -> bool {
        let quota = self.cfg.quota.monthly_tokens(p.supplier.supplier.tier, p.now.date_naive());
        let mut q = p.supplier.quota.lock().unwrap_or_else(|e| e.into_inner());
        self.roll(&mut q, p.supplier.supplier.id, p.now);
        if !p.wedding_day && q.used + q.reserved + n > quota {
            return false;
        }
        q.reserved += n;
        true
    }

    /// Replaces a reservation by the actual usage; raises quota events.
    fn settle(&self, p: &Prepared, reserved: u64, actual: u64) {
        let quota = self.cfg.quota.monthly_tokens(p.supplier.supplier.tier, p.now.date_naive());
        let warn = {
            let mut q = p.supplier.quota.lock().unwrap_or_else(|e| e.into_inner());
            q.reserved = q.reserved.saturating_sub(reserved);
            q.used += actual;
            let status = crate::domain::QuotaStatus::new(q.used, quota, self.cfg.quota.warn_percent);
            let mut ev = Vec::new();
            if status.is_warning() && !q.warned {
                q.warned = true;
                ev.push(RouterEvent::QuotaWarning { supplier: p.supplier.supplier.id, used: q.used, quota });
            }
            let due = match q.exceeded_raised {
                None => true,
                Some((at, wedding)) => (p.now - at).num_seconds() >= QUOTA_EXCEEDED_EVERY_SECS || at > p.now || (p.wedding_day && !wedding),
            };
            if status.is_exhausted() && due {
                q.exceeded_raised = Some((p.now, p.wedding_day));
                ev.push(RouterEvent::QuotaExceeded { supplier: p.supplier.supplier.id, used: q.used, quota, wedding_day: p.wedding_day });
            }
            ev
        };
        for e in warn {
            let _ = self.events.send(e);
        }
    }

    fn quota_error(&self, p: &Prepared) -> GatewayError {
        let quota = self.cfg.quota.monthly_tokens(p.supplier.supplier.tier, p.now.date_naive());
        let (used, _) = self.counter(&p.supplier, p.now);
        let reset = next_month_start(p.now);
        self.metrics.quota_refused.fetch_add(1, Ordering::Relaxed);
        GatewayError::QuotaExceeded {
            quota,
            used,
            reset: reset.to_rfc3339(),
            retry_after_secs: (reset - p.now).num_seconds().max(1) as u64,
        }
    }

    /// The model to send to an account: the caller's when the account's
    /// provider family serves it, else the account's default model.
    fn model_for(&self, account: &ProviderAccount, requested: &str) -> String {
        let family = |k: ProviderKind| if k == ProviderKind::Anthropic { 1 } else { 0 };
        match self.model_provider(requested) {
            Some(mp) if family(mp) == family(account.provider) => requested.to_string(),
            _ => account.default_model.clone(),
        }
    }

    fn on_transition(&self, account: AccountId, t: BreakerTransition) {
        let ev = match t {
            BreakerTransition::Opened => RouterEvent::BreakerOpened { account },
            BreakerTransition::Closed => RouterEvent::BreakerClosed { account },
            _ => return,
        };
        let (action, detail) = match ev {
            RouterEvent::BreakerOpened { .. } => ("breaker.open", "account taken out of routing"),
            _ => ("breaker.close", "account back in routing"),
        };
        self.audit_async(action, None, Some(account), detail.to_string());
        let _ = self.events.send(ev);
    }

    fn audit_async(&self, action: &'static str, supplier: Option<SupplierId>, account: Option<AccountId>, detail: String) {
        let store = self.store.clone();
        let now = self.clock.now();
        let write = move || {
            if let Err(e) = store.audit(now, "runtime", action, supplier, account, "ok", &detail) {
                tracing::warn!(error = %e, action, "audit write failed");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn_blocking(write);
            }
            Err(_) => write(),
        }
    }

    fn note_route(&self, p: &Prepared, route: Route, account: AccountId) {
        let s = &p.supplier;
        if s.supplier.ai_mode != AiMode::Client {
            return;
        }
        if route == Route::Failover {
            if !s.in_failover.swap(true, Ordering::Relaxed) {
                self.audit_async("failover.start", Some(s.supplier.id), Some(account), "client account down: served by platform AI".into());
                let _ = self.events.send(RouterEvent::FailoverStarted { supplier: s.supplier.id, account });
            }
        } else if route == Route::Client && s.in_failover.swap(false, Ordering::Relaxed) {
            self.audit_async("failover.end", Some(s.supplier.id), Some(account), "client account healthy again: traffic returned".into());
            let _ = self.events.send(RouterEvent::FailoverEnded { supplier: s.supplier.id });
        }
    }

    /// Requests being served now, open streams included.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Requests in flight whose usage events are due soon: all but the open
    /// streams. The ledger's hint for how many events to gather in one
    /// commit ([`Ledger::record_among`]); counting open streams made every
    /// plain request wait the whole commit delay while a stream was open, and
    /// never commit on its own thread.
    pub fn writers_soon(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed).saturating_sub(self.streaming.load(Ordering::Relaxed))
    }

    fn record_outcome(&self, p: &Prepared, account: &AccountEntry, route: Route, started: Instant, err: Option<&ProviderError>) {
        let counts = err.map(|e| e.counts_against_health()).unwrap_or(false);
        let ok = err.is_none() || !counts;
        let t = account.breaker.lock().unwrap_or_else(|e| e.into_inner()).record(ok, self.clock.now());
        self.on_transition(account.account.id, t);
        let _ = self.outcomes.send(AttemptOutcome {
            at: self.clock.now(),
            supplier: p.supplier.supplier.id,
            account: account.account.id,
            route,
            ok: err.is_none(),
            latency_ms: started.elapsed().as_millis().min(u32::MAX as u128) as u32,
            error_class: err.map(|e| e.class()),
            counts_against_health: counts,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn usage_event(
        &self,
        p: &Prepared,
        account: &ProviderAccount,
        route: Route,
        model: &str,
        usage: TokenUsage,
        latency_ms: u32,
        status: UsageStatus,
        error_class: Option<String>,
    ) -> UsageEvent {
        let provider = account.provider;
        let cost = self.pricing.cost(provider, model, &usage).unwrap_or(Micros::ZERO);
        UsageEvent {
            request_id: p.request_id.clone(),
            ts: p.now,
            supplier_id: p.supplier.supplier.id,
            account_id: Some(account.id),
            provider,
            model: model.to_string(),
            request_type: p.request_type,
            route,
            usage,
            cost,
            latency_ms,
            status,
            error_class,
        }
    }

    /// Takes an attempt's account, its key, the breaker's permission and (on
    /// platform AI) the quota reservation. `Err(Some(reason))` when the account
    /// is skipped for a reason worth reporting, `Err(None)` when it is gone.
    /// Returns whether the attempt counts against the platform quota.
    /// `exact` is as for [`Router::plan`].
    fn begin_attempt(
        &self,
        p: &mut Prepared,
        account: AccountId,
        exact: impl FnOnce() -> u64,
    ) -> Result<(Arc<AccountEntry>, Secret, bool, Trial), Option<String>> {
        let acc = self.catalog().accounts.get(&account).cloned().ok_or(None)?;
        let key = self.keys.read().unwrap_or_else(|e| e.into_inner()).get(&account).cloned().ok_or(None)?;
        let trial = {
            let mut b = acc.breaker.lock().unwrap_or_else(|e| e.into_inner());
            if !b.try_acquire(p.now).0 {
                return Err(Some(format!("{}: breaker open", acc.account.label)));
            }
            Trial { account: acc.clone(), id: b.trial() }
        };
        let quota_counted = self.counts_quota(&acc.account);
        if quota_counted && !self.reserve(p, p.estimate) && !(p.refine(exact) && self.reserve(p, p.estimate)) {
            // `trial` is given back as it drops: the request was not sent.
            return Err(Some(format!("{}: platform quota used up", acc.account.label)));
        }
        Ok((acc, key, quota_counted, trial))
    }

    /// Where an attempt goes. With a route left after it, a failing call gets
    /// at most one quick retry and no long retry-after wait
    /// ([`crate::providers::RetryPolicy::before_failover`]): the next route
    /// answers sooner than a backoff would end.
    fn target(&self, account: &ProviderAccount, key: Secret, route_left: bool) -> ProviderTarget {
        let t = ProviderTarget::from_account(account, key);
        if route_left { t.with_retry(self.providers.config().retry.before_failover()) } else { t }
    }

    /// Commits a failed request's usage row (the request got an error answer).
    async fn record_failure(&self, p: &Prepared, err: &GatewayError) {
        let cat = self.catalog();
        // A failed request is recorded against the first planned account, if any.
        let account =
            p.supplier.client_accounts.first().or(cat.platform.first()).and_then(|id| cat.accounts.get(id)).map(|a| a.account.clone());
        if let Some(a) = account {
            let route = if a.owner == AccountOwner::Platform { Route::Platform } else { Route::Client };
            let ev = self.usage_event(p, &a, route, "", TokenUsage::default(), 0, UsageStatus::Error, Some(err.code()));
            let _ = self.ledger.record_among(ev, self.writers_soon()).await;
        }
    }

    /// A plain (not streamed) copy of a streamed request for a live-traffic
    /// mirror, only while one runs (the common path clones nothing).
    fn mirror_copy(&self, req: &ChatRequest) -> Option<ChatRequest> {
        if !self.mirroring.load(Ordering::Relaxed) {
            return None;
        }
        let mut copy = req.clone();
        copy.stream = None;
        copy.stream_options = None;
        Some(copy)
    }

    /// Sends a copy of a served request to the candidate account of the
    /// supplier's running mirror, if the request is in the mirror's sample,
    /// in the background: the caller's answer never waits for it. The copy's
    /// usage is recorded as shadow usage with the request id
    /// `m<mirror id>~<request id>`, which pairs it with the original.
    /// `served_by`: the account that answered (`None`: every route failed,
    /// and the copy shows whether the candidate would have answered).
    /// A streamed request is copied as a plain one once its stream has
    /// completed (see [`Router::mirror_copy`]); one the client abandoned is not.
    fn mirror(&self, p: &Prepared, served_by: Option<AccountId>, req: &ChatRequest, requested_model: &str) {
        if !self.mirroring.load(Ordering::Relaxed) {
            return;
        }
        let cat = self.catalog();
        let Some(m) = cat.mirrors.get(&p.supplier.supplier.id).cloned() else { return };
        let r = &m.record;
        if served_by == Some(r.account_id) || p.now >= r.ends_at {
            return;
        }
        let sample = u64::from_le_bytes(Sha256::digest(p.request_id.as_bytes())[..8].try_into().unwrap_or([0; 8])) % 100;
        if sample >= u64::from(r.sample_percent) {
            return;
        }
        if m.dispatched.fetch_add(1, Ordering::Relaxed) >= r.target_requests {
            m.dispatched.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let key = self.keys.read().unwrap_or_else(|e| e.into_inner()).get(&r.account_id).cloned();
        let (Some(acc), Some(key), Ok(rt)) = (cat.accounts.get(&r.account_id), key, tokio::runtime::Handle::try_current()) else {
            m.dispatched.fetch_sub(1, Ordering::Relaxed);
            return;
        };
        let account = acc.account.clone();
        let mut copy = req.clone();
        copy.model = self.model_for(&account, requested_model);
        let target = ProviderTarget::from_account(&account, key);
        let (providers, ledger, pricing, recorded) =
            (self.providers.clone(), self.ledger.clone(), self.pricing.clone(), m.recorded.clone());
        let (request_id, now, supplier, request_type) =
            (format!("{}{}", r.prefix(), p.request_id), p.now, p.supplier.supplier.id, p.request_type);
        rt.spawn(async move {
            let t0 = Instant::now();
            let res = providers.chat(&target, &copy).await;
            let latency_ms = t0.elapsed().as_millis().min(u32::MAX as u128) as u32;
            let (usage, status, error_class) = match res {
                Ok(r) => (r.usage, UsageStatus::Ok, None),
                Err(e) => (TokenUsage::default(), UsageStatus::Error, Some(e.class().to_string())),
            };
            let cost = pricing.cost(account.provider, &copy.model, &usage).unwrap_or(Micros::ZERO);
            let ev = UsageEvent {
                request_id,
                ts: now,
                supplier_id: supplier,
                account_id: Some(account.id),
                provider: account.provider,
                model: copy.model,
                request_type,
                route: Route::Shadow,
                usage,
                cost,
                latency_ms,
                status,
                error_class,
            };
            match ledger.record(ev).await {
                Ok(_) => {
                    recorded.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => tracing::warn!(error = %e, "a mirrored request's usage was not recorded"),
            }
        });
    }

    /// Running mirrors that are due for their report: enough copies recorded,
    /// or past their deadline. (id, why).
    pub fn mirrors_due(&self, now: DateTime<Utc>) -> Vec<(i64, &'static str)> {
        self.catalog()
            .mirrors
            .values()
            .filter_map(|m| {
                if m.recorded.load(Ordering::Relaxed) >= m.record.target_requests {
                    Some((m.record.id, "enough requests compared"))
                } else if now >= m.record.ends_at {
                    Some((m.record.id, "the mirror's time ran out"))
                } else {
                    None
                }
            })
            .collect()
    }

    /// A plain chat completion.
    pub async fn chat(
        &self,
        caller: impl Into<Caller<'_>>,
        type_header: Option<&str>,
        request_id: Option<&str>,
        mut req: ChatRequest,
    ) -> Result<Answer, GatewayError> {
        let _in_flight = InFlight::enter(&self.in_flight);
        let started = Instant::now();
        let rt = request_type(type_header, Some(&req))?;
        let output = req.max_output().unwrap_or(self.cfg.default_output_allowance);
        let mut p = self.prepare(caller.into(), &req.model, rt, token_count::chat_prompt_bound(&req) + output, request_id)?;
        let requested_model = req.model.clone();
        let exact = |req: &ChatRequest| token_count::estimate_chat_prompt(req) + output;
        let (plan, platform_allowed) = self.plan(&mut p, self.model_provider(&requested_model), || exact(&req));
        let mut reasons = Vec::new();
        let mut last_status = 503;
        for (i, attempt) in plan.attempts.iter().enumerate() {
            let (acc, key, quota_counted, trial) = match self.begin_attempt(&mut p, attempt.account, || exact(&req)) {
                Ok(v) => v,
                Err(Some(reason)) => {
                    reasons.push(reason);
                    continue;
                }
                Err(None) => continue,
            };
            req.model = self.model_for(&acc.account, &requested_model);
            let target = self.target(&acc.account, key, i + 1 < plan.attempts.len());
            let t0 = Instant::now();
            let res = self.providers.chat(&target, &req).await;
            let latency_ms = t0.elapsed().as_millis().min(u32::MAX as u128) as u32;
            match res {
                Ok(resp) => {
                    self.record_outcome(&p, &acc, attempt.route, t0, None);
                    trial.reported();
                    let served_model = if self.pricing.price(acc.account.provider, &resp.model).is_some() {
                        resp.model.clone()
                    } else {
                        req.model.clone()
                    };
                    if quota_counted {
                        self.settle(&p, p.estimate, resp.usage.total());
                    }
                    self.note_route(&p, attempt.route, acc.account.id);
                    let ev =
                        self.usage_event(&p, &acc.account, attempt.route, &served_model, resp.usage, latency_ms, UsageStatus::Ok, None);
                    self.metrics.observe(attempt.route, acc.account.provider, true, started.elapsed(), &ev);
                    self.ledger.record_among(ev, self.writers_soon()).await.map_err(|e| GatewayError::Ledger(e.to_string()))?;
                    self.mirror(&p, Some(acc.account.id), &req, &requested_model);
                    return Ok(Answer { body: resp.body, route: attempt.route, account: acc.account.id, request_id: p.request_id });
                }
                Err(e) => {
                    self.record_outcome(&p, &acc, attempt.route, t0, Some(&e));
                    trial.reported();
                    if quota_counted {
                        self.settle(&p, p.estimate, 0);
                    }
                    if matches!(e, ProviderError::BadRequest { .. } | ProviderError::ContentFiltered { .. }) {
                        // The request itself is wrong: another route would say the same.
                        let err =
                            GatewayError::Upstream { status: e.status_code(), class: e.class().into(), message: e.provider_message() };
                        self.metrics.observe_error(attempt.route, acc.account.provider, started.elapsed());
                        self.record_failure(&p, &err).await;
                        return Err(err);
                    }
                    last_status = e.status_code();
                    reasons.push(format!("{}: {}", acc.account.label, e));
                }
            }
        }
        let err = self.fail(&p, &plan, platform_allowed, reasons, last_status, started).await;
        self.mirror(&p, None, &req, &requested_model);
        Err(err)
    }

    async fn fail(
        &self,
        p: &Prepared,
        plan: &crate::domain::routing::RoutePlan,
        platform_allowed: bool,
        mut reasons: Vec<String>,
        last_status: u16,
        started: Instant,
    ) -> GatewayError {
        let cat = self.catalog();
        let quota_only =
            plan.attempts.is_empty() && !plan.skipped.is_empty() && plan.skipped.iter().all(|(_, r)| *r == SkipReason::QuotaExceeded);
        let quota_blocked = !platform_allowed && p.supplier.supplier.ai_mode == AiMode::Platform;
        let err = if quota_only
            || (quota_blocked && plan.attempts.is_empty())
            || (reasons.iter().all(|r| r.ends_with("platform quota used up")) && !reasons.is_empty())
        {
            self.quota_error(p)
        } else {
            for (id, why) in &plan.skipped {
                let label = cat.accounts.get(id).map(|a| a.account.label.clone()).unwrap_or_else(|| format!("account {id}"));
                let why = match why {
                    SkipReason::Unavailable => "unavailable (breaker open, disabled or no key)",
                    SkipReason::QuotaExceeded => "platform quota used up",
                    SkipReason::FailoverForbidden => "failover to platform AI is off for this supplier",
                };
                reasons.push(format!("{label}: {why}"));
            }
            if reasons.is_empty() {
                reasons.push("no provider account is configured for this supplier".into());
            }
            GatewayError::AllRoutesFailed {
                status: if last_status == 504 {
                    504
                } else if last_status >= 500 {
                    502
                } else {
                    503
                },
                reasons,
            }
        };
        self.metrics.observe_refused(started.elapsed());
        self.record_failure(p, &err).await;
        err
    }

    /// A streamed chat completion: the stream is opened along the plan (failover
    /// is possible until the first byte); its usage is committed when it ends
    /// or the client goes away.
    pub async fn chat_stream(
        self: &Arc<Self>,
        caller: impl Into<Caller<'_>>,
        type_header: Option<&str>,
        request_id: Option<&str>,
        mut req: ChatRequest,
    ) -> Result<StreamAnswer, GatewayError> {
        let started = Instant::now();
        let rt = request_type(type_header, Some(&req))?;
        let output = req.max_output().unwrap_or(self.cfg.default_output_allowance);
        let mut p = self.prepare(caller.into(), &req.model, rt, token_count::chat_prompt_bound(&req) + output, request_id)?;
        let requested_model = req.model.clone();
        let exact = |req: &ChatRequest| token_count::estimate_chat_prompt(req) + output;
        let (plan, platform_allowed) = self.plan(&mut p, self.model_provider(&requested_model), || exact(&req));
        let mut reasons = Vec::new();
        let mut last_status = 503;
        for (i, attempt) in plan.attempts.iter().enumerate() {
            let (acc, key, quota_counted, trial) = match self.begin_attempt(&mut p, attempt.account, || exact(&req)) {
                Ok(v) => v,
                Err(Some(reason)) => {
                    reasons.push(reason);
                    continue;
                }
                Err(None) => continue,
            };
            req.model = self.model_for(&acc.account, &requested_model);
            let target = self.target(&acc.account, key, i + 1 < plan.attempts.len());
            let t0 = Instant::now();
            match self.providers.chat_stream(&target, &req).await {
                Ok(stream) => {
                    self.note_route(&p, attempt.route, acc.account.id);
                    let route = attempt.route;
                    let account_id = acc.account.id;
                    let request_id = p.request_id.clone();
                    // The stream reports its outcome when it ends, however it ends.
                    trial.reported();
                    // The stream counts as in flight until it ends (see StreamGuard::leave).
                    self.in_flight.fetch_add(1, Ordering::Relaxed);
                    self.streaming.fetch_add(1, Ordering::Relaxed);
                    let guard = StreamGuard {
                        router: self.clone(),
                        stream,
                        ctx: Some(StreamCtx {
                            mirror: self.mirror_copy(&req).map(|c| (c, requested_model.clone())),
                            p,
                            account: acc,
                            route,
                            model: req.model.clone(),
                            quota_counted,
                            t0,
                            started,
                        }),
                        pending: None,
                        done: false,
                        in_flight: true,
                    };
                    return Ok(StreamAnswer { route, account: account_id, request_id, body: Box::pin(guard) });
                }
                Err(e) => {
                    self.record_outcome(&p, &acc, attempt.route, t0, Some(&e));
                    trial.reported();
                    if quota_counted {
                        self.settle(&p, p.estimate, 0);
                    }
                    if matches!(e, ProviderError::BadRequest { .. } | ProviderError::ContentFiltered { .. }) {
                        let err =
                            GatewayError::Upstream { status: e.status_code(), class: e.class().into(), message: e.provider_message() };
                        self.record_failure(&p, &err).await;
                        return Err(err);
                    }
                    last_status = e.status_code();
                    reasons.push(format!("{}: {}", acc.account.label, e));
                }
            }
        }
        let err = self.fail(&p, &plan, platform_allowed, reasons, last_status, started).await;
        if let Some(copy) = self.mirror_copy(&req) {
            self.mirror(&p, None, &copy, &requested_model);
        }
        Err(err)
    }

    /// Embeddings.
    pub async fn embeddings(
        &self,
        caller: impl Into<Caller<'_>>,
        type_header: Option<&str>,
        request_id: Option<&str>,
        mut req: EmbeddingsRequest,
    ) -> Result<Answer, GatewayError> {
        let _in_flight = InFlight::enter(&self.in_flight);
        let started = Instant::now();
        let rt = request_type(type_header, None)?;
        let mut p = self.prepare(caller.into(), &req.model, rt, token_count::embeddings_bound(&req), request_id)?;
        let requested_model = req.model.clone();
        let exact = |req: &EmbeddingsRequest| token_count::estimate_embeddings(req);
        let (plan, platform_allowed) = self.plan(&mut p, Some(ProviderKind::OpenAi), || exact(&req));
        let mut reasons = Vec::new();
        let mut last_status = 503;
        for (i, attempt) in plan.attempts.iter().enumerate() {
            if let Some(a) = self.catalog().accounts.get(&attempt.account)
                && a.account.provider == ProviderKind::Anthropic
            {
                reasons.push(format!("{}: Anthropic offers no embeddings", a.account.label));
                continue;
            }
            let (acc, key, quota_counted, trial) = match self.begin_attempt(&mut p, attempt.account, || exact(&req)) {
                Ok(v) => v,
                Err(Some(reason)) => {
                    reasons.push(reason);
                    continue;
                }
                Err(None) => continue,
            };
            req.model = requested_model.clone();
            let target = self.target(&acc.account, key, i + 1 < plan.attempts.len());
            let t0 = Instant::now();
            match self.providers.embeddings(&target, &req).await {
                Ok(resp) => {
                    self.record_outcome(&p, &acc, attempt.route, t0, None);
                    trial.reported();
                    if quota_counted {
                        self.settle(&p, p.estimate, resp.usage.total());
                    }
                    self.note_route(&p, attempt.route, acc.account.id);
                    let latency_ms = t0.elapsed().as_millis().min(u32::MAX as u128) as u32;
                    let ev =
                        self.usage_event(&p, &acc.account, attempt.route, &requested_model, resp.usage, latency_ms, UsageStatus::Ok, None);
                    self.metrics.observe(attempt.route, acc.account.provider, true, started.elapsed(), &ev);
                    self.ledger.record_among(ev, self.writers_soon()).await.map_err(|e| GatewayError::Ledger(e.to_string()))?;
                    return Ok(Answer { body: resp.body, route: attempt.route, account: acc.account.id, request_id: p.request_id });
                }
                Err(e) => {
                    self.record_outcome(&p, &acc, attempt.route, t0, Some(&e));
                    trial.reported();
                    if quota_counted {
                        self.settle(&p, p.estimate, 0);
                    }
                    if matches!(e, ProviderError::BadRequest { .. }) {
                        let err =
                            GatewayError::Upstream { status: e.status_code(), class: e.class().into(), message: e.provider_message() };
                        self.record_failure(&p, &err).await;
                        return Err(err);
                    }
                    last_status = e.status_code();
                    reasons.push(format!("{}: {}", acc.account.label, e));
                }
            }
        }
        Err(self.fail(&p, &plan, platform_allowed, reasons, last_status, started).await)
    }
}

struct StreamCtx {
    p: Prepared,
    account: Arc<AccountEntry>,
    route: Route,
    model: String,
    quota_counted: bool,
    t0: Instant,
    started: Instant,
    /// A plain copy of the request and the model asked for, kept only while
    /// a live-traffic mirror runs: a completed stream is mirrored as that.
    mirror: Option<(ChatRequest, String)>,
}

/// The half-open trial an attempt holds (if it holds one), given back when
/// the attempt ends without reporting an outcome: refused by the quota after
/// the breaker let it through, or dropped mid-call because the client went
/// away. Without it the breaker would wait for that trial, and refuse every
/// request to the account, for good.
struct Trial {
    account: Arc<AccountEntry>,
    id: Option<u64>,
}

impl Trial {
    /// The outcome was recorded (or will be, by a stream's end).
    fn reported(mut self) {
        self.id = None;
    }
}

impl Drop for Trial {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.account.breaker.lock().unwrap_or_else(|e| e.into_inner()).release_trial(id);
        }
    }
}

/// Forwards a provider stream's SSE bytes and commits its usage at the end
/// (awaited before the body completes) or, if the client goes away, on drop.
struct StreamGuard {
    router: Arc<Router>,
    stream: ChatStream,
    ctx: Option<StreamCtx>,
    pending: Option<Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
    done: bool,
    /// Whether this stream is still counted in [`Router::in_flight`].
    in_flight: bool,
}

impl StreamGuard {
    /// Stops counting the stream in flight; returns how many events are due
    /// soon, this one included (for [`Ledger::record_among`]: alone, its
    /// usage is committed inline, as a lone plain request's is).
    fn leave(&mut self) -> usize {
        if std::mem::take(&mut self.in_flight) {
            self.router.streaming.fetch_sub(1, Ordering::Relaxed);
            self.router.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
        self.router.writers_soon() + 1
    }

    fn finish(&mut self, summary: crate::providers::StreamSummary) -> Option<UsageEvent> {
        let ctx = self.ctx.take()?;
        let r = &self.router;
        r.record_outcome(&ctx.p, &ctx.account, ctx.route, ctx.t0, summary.error.as_ref());
        if ctx.quota_counted {
            r.settle(&ctx.p, ctx.p.estimate, summary.usage.total());
        }
        let status = if summary.completed && summary.error.is_none() {
            UsageStatus::Ok
        } else if summary.error.is_some() {
            UsageStatus::Error
        } else {
            UsageStatus::Cancelled
        };
        let model =
            if r.pricing.price(ctx.account.account.provider, &summary.model).is_some() { summary.model.clone() } else { ctx.model.clone() };
        let latency_ms = ctx.t0.elapsed().as_millis().min(u32::MAX as u128) as u32;
        let ev = r.usage_event(
            &ctx.p,
            &ctx.account.account,
            ctx.route,
            &model,
            summary.usage,
            latency_ms,
            status,
            summary
                .error
                .as_ref()
                .map(|e| e.class().to_string())
                .or_else(|| (status == UsageStatus::Cancelled).then(|| "client_disconnected".to_string())),
        );
        r.metrics.observe(ctx.route, ctx.account.account.provider, status == UsageStatus::Ok, ctx.started.elapsed(), &ev);
        if status == UsageStatus::Ok
            && let Some((copy, requested_model)) = &ctx.mirror
        {
            r.mirror(&ctx.p, Some(ctx.account.account.id), copy, requested_model);
        }
        Some(ev)
    }
}

impl Stream for StreamGuard {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(fut) = this.pending.as_mut() {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.pending = None;
                        this.done = true;
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
            if this.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.stream).poll_next(cx) {
                Poll::Ready(Some(StreamEvent::Data(b))) => return Poll::Ready(Some(Ok(b))),
                Poll::Ready(Some(StreamEvent::End(summary))) => {
                    if let Some(ev) = this.finish(summary) {
                        let ledger = this.router.ledger.clone();
                        let in_flight = this.leave();
                        this.pending = Some(Box::pin(async move {
                            if let Err(e) = ledger.record_among(ev, in_flight).await {
                                tracing::error!(error = %e, "stream usage not recorded");
                            }
                        }));
                    } else {
                        this.done = true;
                    }
                }
                Poll::Ready(None) => {
                    let summary = this.stream.summary(false, None);
                    if let Some(ev) = this.finish(summary) {
                        this.router.ledger.record_detached(ev);
                    }
                    this.leave();
                    this.done = true;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        // The client went away before the end: record what was used so far.
        if self.ctx.is_some() {
            let summary = self.stream.summary(false, None);
            if let Some(ev) = self.finish(summary) {
                self.router.ledger.record_detached(ev);
            }
        }
        self.leave();
    }
}

/// Counts a request in [`Router::in_flight`] for as long as it lives.
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(n: &'a std::sync::atomic::AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        InFlight(n)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
