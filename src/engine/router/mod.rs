//! The router: the runtime's request path. For each supplier request it
//! resolves the gateway token, applies the tier rate limit and the platform
//! quota (reserve before, settle after), plans the route with
//! `domain::routing::plan_route` over live breaker state and any migration
//! split, calls the provider along the plan (failing over on account faults),
//! and appends the usage event to the ledger's journal before the answer is returned.
//!
//! What a request holds while it runs — its place in [`Router::in_flight`],
//! the breaker's half-open trial, the quota reservation — is an owned guard
//! that gives it back when dropped, so a request future dropped at any await
//! point (the client went away, a panic, shutdown) leaks nothing. Every usage
//! row has its own event id ([`Router::new_event_id`], the ledger's
//! deduplication key); the client's `X-Request-Id` is only a tracing id and
//! its `Idempotency-Key` is carried onto the rows ([`Caller`]). A caller that
//! runs a plain request to completion after its client left says so with a
//! [`ClientWatch`]: the row's status is then `client_gone`.
//!
//! This file holds the [`Router`] itself (construction, accessors, the three
//! entry points) and the types callers see. One concern per file beside it:
//! - `catalog`: the in-memory `RouteCatalog` of suppliers, accounts, keys,
//!   tokens and splits, its reload, and authentication;
//! - `quota`: the per-supplier platform quota counters (reserve, settle, events);
//! - `attempt`: the one attempt loop all request kinds run, with breakers,
//!   outcomes, usage events and the final failure;
//! - `cached`: the response cache's part (plan, look-up, a hit's answer and
//!   usage row, keeping a successful answer);
//! - `jobs`: what differs per request kind (plain chat, streamed chat, embeddings);
//! - `stream`: the guard that forwards a stream and commits its usage at the end;
//! - `mirror`: copies of live traffic for running live-traffic mirrors;
//! - `failure`: the typed failures ([`RouteFailure`], [`RouteError`]).
//!
//! Background work (audit writes, a token's last use) runs on the runtime
//! handle given at construction; copies for mirrors run on the handle the
//! caller passes with the request (a gateway lane's own, whose upstream
//! connection pool they use), else on the router's.
#![deny(clippy::unwrap_used, clippy::expect_used)] // the request path: no panics on what clients or providers send

mod attempt;
mod cached;
mod catalog;
mod failure;
mod jobs;
mod lease;
mod mirror;
mod pool;
mod quota;
mod stream;

use catalog::RouteCatalog;
pub use failure::{FailureKind, Failures, RouteError, RouteFailure};

use crate::domain::Secret;
use crate::domain::breaker::BreakerConfig;
use crate::domain::cache::{CacheMode, CacheVerdict};
use crate::domain::idempotency::Endpoint;
use crate::domain::quota::QuotaPolicy;
use crate::domain::routing::Split;
use crate::domain::{AccountId, Clock, FastMap, PricingTable, RequestType, Route, SupplierId};
use crate::engine::cache::{CacheConfig, ResponseCache};
use crate::engine::idempotency::{Idempotency, IdempotencyConfig};
use crate::engine::ledger::Ledger;
use crate::engine::metrics::Metrics;
use crate::providers::{ChatRequest, EmbeddingsRequest, Providers};
use crate::store::{Store, StoreError};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::Stream;
use parking_lot::{Mutex, RwLock};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;
use tokio::runtime::Handle;

/// Router settings.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    pub quota: QuotaPolicy,
    pub breaker: BreakerConfig,
    /// Output tokens reserved for a request that sets no `max_tokens`.
    pub default_output_allowance: u64,
    /// Idempotency keys: how long they live, how much of the answers is kept.
    pub idempotency: IdempotencyConfig,
    /// How a key is picked within a pool of platform keys.
    pub pool_strategy: crate::domain::keypool::Strategy,
    /// The response cache's bounds.
    pub cache: CacheConfig,
    /// Fleet mode: platform tokens are reserved from this instance's quota leases (`engine::quota_lease`); `None`: the local counter alone.
    pub quota_leases: Option<crate::engine::quota_lease::LeaseSettings>,
    /// Fleet mode (the store is PostgreSQL): this instance's own SQLite file
    /// for what is kept per instance — the response cache's persistent table
    /// (idempotency keys are claimed in PostgreSQL). None: in the store.
    pub local_store: Option<Arc<Store>>,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            quota: QuotaPolicy::default(),
            breaker: BreakerConfig::default(),
            default_output_allowance: 1_024,
            idempotency: IdempotencyConfig::default(),
            pool_strategy: crate::domain::keypool::Strategy::default(),
            cache: CacheConfig::default(),
            quota_leases: None,
            local_store: None,
        }
    }
}

/// Who sends a request: a gateway token still to be checked, or the supplier
/// a token was already checked for (the gateway checks it before reading the
/// body, so that a bad token is a 401 whatever the body; it is not hashed and
/// looked up a second time).
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    Token(Option<&'a str>),
    Supplier(SupplierId),
}

/// The sender of a request and where its background work may run.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub credential: Credential<'a>,
    /// The runtime serving the request (a gateway lane's): copies for a
    /// live-traffic mirror run there, on its upstream connection pool.
    /// `None`: on the router's own runtime.
    pub lane: Option<&'a Handle>,
    /// The `Idempotency-Key` header's value (per supplier), recorded on the
    /// request's usage rows. Carried only: the router never deduplicates on it.
    pub idempotency_key: Option<&'a str>,
    /// Whether the client is still waiting (`None`: the caller does not say).
    pub client: Option<&'a ClientWatch>,
    /// What the response cache needs of the request (`None`: not cached).
    pub cache: Option<&'a CacheRequest>,
}

/// A request as the response cache sees it: the endpoint it came to, the
/// client's `x-switchboard-cache` header, and its body (keyed in canonical form).
#[derive(Debug, Clone)]
pub struct CacheRequest {
    pub endpoint: Endpoint,
    pub mode: Option<CacheMode>,
    pub body: Bytes,
}

impl<'a> Caller<'a> {
    pub fn token(bearer: Option<&'a str>) -> Self {
        Caller { credential: Credential::Token(bearer), lane: None, idempotency_key: None, client: None, cache: None }
    }
    pub fn supplier(id: SupplierId) -> Self {
        Caller { credential: Credential::Supplier(id), lane: None, idempotency_key: None, client: None, cache: None }
    }
    /// The request is served on `lane`.
    pub fn on_lane(self, lane: &'a Handle) -> Self {
        Caller { lane: Some(lane), ..self }
    }
    /// The request came with this `Idempotency-Key`.
    pub fn with_idempotency_key(self, key: Option<&'a str>) -> Self {
        Caller { idempotency_key: key, ..self }
    }
    /// `watch` says whether the client is still there (see [`ClientWatch`]).
    pub fn watched_by(self, watch: &'a ClientWatch) -> Self {
        Caller { client: Some(watch), ..self }
    }
    /// The request may be answered from, and kept in, the response cache.
    pub fn with_cache(self, cache: Option<&'a CacheRequest>) -> Self {
        Caller { cache, ..self }
    }
}

/// Whether the client of a request is still waiting for its answer. The
/// serving side keeps a [`ClientPresence`] in the future that answers the
/// client and runs the request itself on a task of its own; if that future
/// is dropped first (the client hung up), the presence marks the watch gone,
/// and the request's usage row says `client_gone`.
#[derive(Debug, Clone, Default)]
pub struct ClientWatch(Arc<AtomicBool>);

impl ClientWatch {
    pub fn new() -> Self {
        Self::default()
    }
    /// Whether the client went away.
    pub fn gone(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
    /// The presence that marks this watch gone when dropped before
    /// [`ClientPresence::answered`].
    pub fn presence(&self) -> ClientPresence {
        ClientPresence(Some(self.0.clone()))
    }
}

/// See [`ClientWatch::presence`].
#[derive(Debug)]
#[must_use = "dropping the presence marks the client gone"]
pub struct ClientPresence(Option<Arc<AtomicBool>>);

impl ClientPresence {
    /// The answer reached the code that sends it to the client.
    pub fn answered(mut self) {
        self.0 = None;
    }
}

impl Drop for ClientPresence {
    fn drop(&mut self) {
        if let Some(gone) = self.0.take() {
            gone.store(true, Ordering::Release);
        }
    }
}

impl<'a> From<Option<&'a str>> for Caller<'a> {
    fn from(bearer: Option<&'a str>) -> Self {
        Caller::token(bearer)
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
    /// The tracing id (the client's `X-Request-Id`, or one made up).
    pub request_id: String,
    /// The id of the answer's usage row.
    pub event_id: String,
    /// What the response cache did (the `x-switchboard-cache` header).
    pub cache: CacheVerdict,
}

/// A streamed answer: SSE bytes; usage is committed when it ends or is dropped.
pub struct StreamAnswer {
    pub route: Route,
    pub account: AccountId,
    /// The tracing id (the client's `X-Request-Id`, or one made up).
    pub request_id: String,
    /// The id the stream's usage row will have.
    pub event_id: String,
    /// What the response cache did (the `x-switchboard-cache` header).
    pub cache: CacheVerdict,
    pub body: Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>,
}

pub struct Router {
    store: Arc<Store>,
    providers: Providers,
    pricing: Arc<PricingTable>,
    clock: Arc<dyn Clock>,
    ledger: Ledger,
    /// Idempotency keys' records (the gateway begins and completes them).
    idempotency: Idempotency,
    /// Answers kept for repeated requests.
    cache: ResponseCache,
    cfg: RouterConfig,
    metrics: Arc<Metrics>,
    /// Fleet mode: how many live instances share each supplier's rate limit
    /// (each allows its share; 1 on a single machine).
    rate_share: std::sync::atomic::AtomicU32,
    /// Fleet mode: where a request whose lease has no room asks for quota.
    lease_refill: lease::LeaseRefill,
    /// Where background work runs; `None`: inline (a router that serves no requests).
    rt: Option<Handle>,
    catalog: RwLock<Arc<RouteCatalog>>,
    /// Key pools: every key's live state, settings and the strategy.
    pools: Arc<pool::Pools>,
    keys: RwLock<FastMap<AccountId, Secret>>,
    splits: RwLock<FastMap<SupplierId, Split>>,
    catalog_version: Mutex<i64>,
    /// Whether any mirror runs (spares the request path a catalog look-up otherwise).
    mirroring: AtomicBool,
    outcomes: tokio::sync::broadcast::Sender<AttemptOutcome>,
    events: tokio::sync::broadcast::Sender<RouterEvent>,
    request_seq: AtomicU64,
    /// Requests being served now, open streams included (`/metrics`).
    in_flight: AtomicUsize,
    /// Of those, open streams: their usage comes when they end, which may be
    /// minutes away, so the ledger does not wait for it (see [`Router::writers_soon`]).
    streaming: AtomicUsize,
    /// Makes request ids unique to this router instance.
    instance: String,
}

/// Infers the request type from the header or the request.
pub fn request_type(header: Option<&str>, req: Option<&ChatRequest>) -> Result<RequestType, RouteError> {
    if let Some(h) = header.map(str::trim).filter(|h| !h.is_empty()) {
        return h.parse::<RequestType>().map_err(|e| RouteError::BadRequest(format!("X-Switchboard-Request-Type: {e}")));
    }
    match req {
        None => Ok(RequestType::Embedding),
        Some(r) if r.messages.iter().any(|m| m.image_count() > 0) => Ok(RequestType::ImageAnalysis),
        Some(_) => Ok(RequestType::WeddingContent),
    }
}

impl Router {
    /// A router over the store's catalog. `rt` runs its background work
    /// (audit writes, a token's last use, mirror copies of requests that
    /// come with no lane); `None` runs the writes inline and sends no mirror
    /// copies, for a router that serves no requests (the CLI's bookkeeping).
    pub fn new(
        store: Arc<Store>,
        providers: Providers,
        pricing: Arc<PricingTable>,
        clock: Arc<dyn Clock>,
        ledger: Ledger,
        cfg: RouterConfig,
        rt: Option<Handle>,
    ) -> Result<Arc<Router>, StoreError> {
        let (outcomes, _) = tokio::sync::broadcast::channel(4096);
        let (events, _) = tokio::sync::broadcast::channel(1024);
        let mut inst = [0u8; 4];
        let _ = getrandom::fill(&mut inst);
        let local = cfg.local_store.clone().unwrap_or_else(|| store.clone());
        // On PostgreSQL the keys are the fleet's (a retry on another instance replays).
        let idem_store = if store.postgres().is_some() { &store } else { &local };
        let idempotency = Idempotency::start(idem_store, clock.clone(), cfg.idempotency.clone())?;
        let cache = ResponseCache::start(&local, clock.clone(), cfg.cache.clone())?;
        let pools = pool::Pools::new(clock.clone(), cfg.pool_strategy);
        let r = Arc::new(Router {
            store,
            providers,
            pricing,
            clock,
            ledger,
            idempotency,
            cache,
            cfg,
            metrics: Arc::new(Metrics::default()),
            rate_share: std::sync::atomic::AtomicU32::new(1),
            lease_refill: lease::LeaseRefill::default(),
            rt,
            catalog: RwLock::new(Arc::new(RouteCatalog::default())),
            pools,
            keys: RwLock::new(FastMap::default()),
            splits: RwLock::new(FastMap::default()),
            catalog_version: Mutex::new(-1),
            mirroring: AtomicBool::new(false),
            outcomes,
            events,
            request_seq: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            streaming: AtomicUsize::new(0),
            instance: hex::encode(inst),
        });
        r.reload()?;
        Ok(r)
    }

    /// Fleet mode: `n` live instances share every supplier's tier rate
    /// limit, so this one allows `limit / n` (a load balancer that spreads
    /// requests evenly then keeps the fleet at about the tier's limit).
    pub fn set_rate_share(&self, n: u32) {
        self.rate_share.store(n.max(1), Ordering::Relaxed);
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }
    pub fn idempotency(&self) -> &Idempotency {
        &self.idempotency
    }
    pub fn cache(&self) -> &ResponseCache {
        &self.cache
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
    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    /// Attempt outcomes, for the health monitor and running migrations.
    pub fn subscribe_outcomes(&self) -> tokio::sync::broadcast::Receiver<AttemptOutcome> {
        self.outcomes.subscribe()
    }

    /// Breaker, failover and quota events.
    pub fn subscribe_events(&self) -> tokio::sync::broadcast::Receiver<RouterEvent> {
        self.events.subscribe()
    }

    /// A request id unique to this router instance (its clock may stand still).
    pub fn next_request_id(&self) -> String {
        let n = self.request_seq.fetch_add(1, Ordering::Relaxed);
        // Sized once (`format!` guessed short and grew: two allocations per
        // request), the numbers written by `itoa` (`write!` cost ~740
        // instructions a request).
        let mut id = String::with_capacity(48);
        id.push_str("sb-");
        id.push_str(&self.instance);
        id.push('-');
        id.push_str(itoa::Buffer::new().format(self.clock.now().timestamp_millis()));
        id.push('-');
        id.push_str(itoa::Buffer::new().format(n));
        id
    }

    /// A new usage event id: a UUIDv7 (the clock's milliseconds and 74
    /// random bits), unique across processes and machines.
    ///
    /// The random bits come from a generator per thread seeded once from the
    /// OS (`getrandom`: a system call per id was ~1 % of a request's CPU);
    /// ids need to be unique, not secret.
    pub fn new_event_id(&self) -> String {
        thread_local! {
            static IDS: std::cell::RefCell<Option<crate::domain::rng::DetRng>> = const { std::cell::RefCell::new(None) };
        }
        let random = IDS.with_borrow_mut(|ids| {
            let rng = ids.get_or_insert_with(|| {
                // No entropy source (never seen): this instance's id, the thread and a counter.
                let seed = getrandom::u64().unwrap_or_else(|_| {
                    use std::hash::BuildHasher;
                    let seq = self.request_seq.fetch_add(1, Ordering::Relaxed);
                    std::collections::hash_map::RandomState::new().hash_one((&self.instance, std::thread::current().id(), seq))
                });
                crate::domain::rng::DetRng::new(seed)
            });
            let (a, b) = (rng.next_u64().to_le_bytes(), rng.next_u64().to_le_bytes());
            let mut random = [0u8; 10];
            random[..8].copy_from_slice(&a);
            random[8..].copy_from_slice(&b[..2]);
            random
        });
        crate::domain::new_event_id(self.clock.now().timestamp_millis(), random)
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

    /// Runs background work off the request path (inline without a runtime).
    fn background(&self, work: impl FnOnce() + Send + 'static) {
        match &self.rt {
            Some(h) => {
                h.spawn_blocking(work);
            }
            None => work(),
        }
    }

    /// A plain chat completion.
    pub async fn chat(
        &self,
        caller: impl Into<Caller<'_>>,
        type_header: Option<&str>,
        request_id: Option<&str>,
        req: ChatRequest,
    ) -> Result<Answer, RouteError> {
        let _in_flight = InFlight::enter(&self.in_flight);
        let started = Instant::now();
        let caller = caller.into();
        let rt = request_type(type_header, Some(&req))?;
        let mut job = jobs::Chat::new(self, req);
        let p = self.prepare(caller, &job.requested_model, rt, job.bound, request_id, started)?;
        let deterministic = crate::domain::cache::deterministic_chat(job.req.temperature);
        match self.cache_begin(&p, caller.cache, deterministic, &job.requested_model, false).await {
            cached::CacheStart::Hit(a) => return self.answer_hit(p, a).await,
            cached::CacheStart::Call { store, verdict } => (job.cache, job.verdict) = (store, verdict),
        }
        self.run(p, self.model_provider(&job.requested_model), job).await
    }

    /// A streamed chat completion: the stream is opened along the plan (failover
    /// is possible until the first byte); its usage is committed when it ends
    /// or the client goes away.
    pub async fn chat_stream(
        self: &Arc<Self>,
        caller: impl Into<Caller<'_>>,
        type_header: Option<&str>,
        request_id: Option<&str>,
        req: ChatRequest,
    ) -> Result<StreamAnswer, RouteError> {
        let _in_flight = InFlight::enter(&self.in_flight);
        let started = Instant::now();
        let caller = caller.into();
        let rt = request_type(type_header, Some(&req))?;
        let mut job = jobs::StreamedChat::new(self, req);
        let p = self.prepare(caller, &job.chat.requested_model, rt, job.chat.bound, request_id, started)?;
        let deterministic = crate::domain::cache::deterministic_chat(job.chat.req.temperature);
        match self.cache_begin(&p, caller.cache, deterministic, &job.chat.requested_model, true).await {
            cached::CacheStart::Hit(a) => return self.stream_hit(p, a).await,
            cached::CacheStart::Call { store, verdict } => (job.chat.cache, job.chat.verdict) = (store, verdict),
        }
        self.run(p, self.model_provider(&job.chat.requested_model), job).await
    }

    /// Embeddings.
    pub async fn embeddings(
        &self,
        caller: impl Into<Caller<'_>>,
        type_header: Option<&str>,
        request_id: Option<&str>,
        req: EmbeddingsRequest,
    ) -> Result<Answer, RouteError> {
        let _in_flight = InFlight::enter(&self.in_flight);
        let started = Instant::now();
        let caller = caller.into();
        let rt = request_type(type_header, None)?;
        let mut job = jobs::Embeddings::new(req);
        let p = self.prepare(caller, &job.req.model, rt, job.bound, request_id, started)?;
        // Embeddings are deterministic: always cacheable.
        match self.cache_begin(&p, caller.cache, true, &job.req.model, false).await {
            cached::CacheStart::Hit(a) => return self.answer_hit(p, a).await,
            cached::CacheStart::Call { store, verdict } => (job.cache, job.verdict) = (store, verdict),
        }
        self.run(p, Some(crate::domain::ProviderKind::OpenAi), job).await
    }
}

/// Counts a request in [`Router::in_flight`] for as long as it lives.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        InFlight(n)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
