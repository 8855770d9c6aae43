//! The response cache at run time: exact-match answers replayed for
//! repeated requests (the rules — key, what is cached, TTLs — are
//! `domain::cache`'s). A byte-bounded LRU in memory ([`lru::ByteLru`]) sits
//! in front of the persistent table (`store::cache`, behind the
//! [`ResponseCacheStore`] trait), which survives restarts and is capped in
//! bytes with expiry. Like the idempotency records (`engine::idempotency`),
//! every database read and write runs on one named thread
//! (`response-cache`) that owns its own connection, so no SQLite work runs
//! on the async runtime; that thread also deletes expired rows once a
//! [`CacheConfig::sweep_every`].
//!
//! The router asks [`ResponseCache::get`] before routing a request the plan
//! says to look up and [`ResponseCache::put`]s a successful answer (a plain
//! body, or a stream that ended with its end marker); errors and cut streams
//! never reach `put`. Purges ([`ResponseCache::purge`], or
//! [`purge_offline`] from a process that does not route) are logged in the
//! database; every process serving it drops the purged memory entries when
//! it reloads its catalog ([`ResponseCache::apply_purges`]).
#![deny(clippy::unwrap_used, clippy::expect_used)] // the request path

pub(crate) mod lru;

use crate::domain::cache::CacheKey;
use crate::domain::{Clock, Micros, SupplierId};
use crate::store::{CachedAnswer, ResponseCacheStore, SqliteCacheStore, Store, StoreError};
use lru::ByteLru;
use parking_lot::Mutex;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc;
use tokio::sync::oneshot;

/// How big the cache may grow.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Most bytes of answers held in memory (bodies plus [`ENTRY_OVERHEAD`] each).
    pub memory_bytes: usize,
    /// Most bytes of answer bodies kept in the database.
    pub persistent_bytes: u64,
    /// Largest answer cached (a larger one is served and not kept).
    pub max_entry_bytes: usize,
    /// How often expired rows are deleted.
    pub sweep_every: std::time::Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            memory_bytes: 64 * 1024 * 1024,
            persistent_bytes: 1024 * 1024 * 1024,
            max_entry_bytes: 4 * 1024 * 1024,
            sweep_every: std::time::Duration::from_secs(60),
        }
    }
}

/// What an entry costs in memory besides its body and model name: the
/// key, the answer's fields, the map slot and the use-order slot.
pub const ENTRY_OVERHEAD: usize = 256;

fn cost(a: &CachedAnswer) -> usize {
    ENTRY_OVERHEAD + a.body.len() + a.model.len()
}

/// Counters for `/metrics` and `switchboard cache stats`.
#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    skips: AtomicU64,
    saved_micros: AtomicU64,
    stored: AtomicU64,
    store_failures: AtomicU64,
    persistent_bytes: AtomicU64,
}

/// A snapshot of the cache's counters and sizes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub skips: u64,
    pub saved: Micros,
    pub stored: u64,
    pub store_failures: u64,
    pub memory_bytes: u64,
    pub memory_entries: u64,
    pub memory_limit: u64,
    pub persistent_bytes: u64,
    pub persistent_limit: u64,
}

enum Cmd {
    Get {
        key: CacheKey,
        supplier: SupplierId,
        reply: oneshot::Sender<Option<CachedAnswer>>,
    },
    Put {
        key: CacheKey,
        answer: Arc<CachedAnswer>,
    },
    Purge {
        supplier: Option<SupplierId>,
        reason: String,
        reply: oneshot::Sender<Result<(u64, i64), StoreError>>,
    },
    Sweep {
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    Recount,
    /// Answers once every command sent before it is done.
    Barrier {
        reply: oneshot::Sender<()>,
    },
}

/// Cheap to clone; the thread stops when the last handle is gone.
#[derive(Clone)]
pub struct ResponseCache {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: CacheConfig,
    clock: Arc<dyn Clock>,
    mem: Mutex<ByteLru<CacheKey, Arc<CachedAnswer>>>,
    tx: mpsc::Sender<Cmd>,
    counters: Arc<Counters>,
    /// The newest purge of the log applied to memory.
    last_purge: AtomicI64,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache").field("memory_bytes", &self.inner.mem.lock().bytes()).finish()
    }
}

impl ResponseCache {
    /// Opens the persistent table of `store` and starts the thread that serves it.
    pub fn start(store: &Store, clock: Arc<dyn Clock>, cfg: CacheConfig) -> Result<Self, StoreError> {
        if store.is_postgres() {
            // A router on the fleet's database with no instance file of its
            // own (the console's and the CLI's bookkeeping router) serves no
            // requests: nothing to keep. Fleet instances pass their local.db.
            return Self::start_with(Box::new(NoCacheStore), 0, clock, cfg);
        }
        let backend = SqliteCacheStore::open(store)?;
        let last = store.last_cache_purge()?;
        Self::start_with(Box::new(backend), last, clock, cfg)
    }

    /// The cache over any persistent backend (a fleet's shared one); `last_purge`
    /// is the newest purge in its log (older ones are not applied again).
    pub fn start_with(
        backend: Box<dyn ResponseCacheStore>,
        last_purge: i64,
        clock: Arc<dyn Clock>,
        cfg: CacheConfig,
    ) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        counters.persistent_bytes.store(backend.bytes(), Relaxed);
        let (thread_clock, thread_counters, every, cap) = (clock.clone(), counters.clone(), cfg.sweep_every, cfg.persistent_bytes);
        std::thread::Builder::new()
            .name("response-cache".into())
            .spawn(move || run(backend, rx, thread_clock, thread_counters, every, cap))
            .map_err(|e| StoreError::Invalid(format!("cannot start the response cache thread: {e}")))?;
        let mem = Mutex::new(ByteLru::new(cfg.memory_bytes));
        Ok(ResponseCache { inner: Arc::new(Inner { cfg, clock, mem, tx, counters, last_purge: AtomicI64::new(last_purge) }) })
    }

    pub fn config(&self) -> &CacheConfig {
        &self.inner.cfg
    }

    /// The live answer under `key` for `supplier`: from memory, else from the
    /// database (then kept in memory). An expired or another supplier's
    /// entry is never returned.
    pub async fn get(&self, key: CacheKey, supplier: SupplierId) -> Option<Arc<CachedAnswer>> {
        let inner = &self.inner;
        let now = inner.clock.now();
        {
            let mut mem = inner.mem.lock();
            match mem.get(&key) {
                Some(a) if a.supplier == supplier && a.expires_at > now => return Some(a.clone()),
                Some(_) => {
                    mem.remove(&key);
                }
                None => {}
            }
        }
        let (reply, rx) = oneshot::channel();
        inner.tx.send(Cmd::Get { key, supplier, reply }).ok()?;
        let a = Arc::new(rx.await.ok()??);
        if a.supplier != supplier || a.expires_at <= now {
            return None;
        }
        inner.mem.lock().insert(key, a.clone(), cost(&a));
        Some(a)
    }

    /// Keeps a successful answer (in memory now, in the database on the
    /// cache's thread). An answer over [`CacheConfig::max_entry_bytes`] is not kept.
    pub fn put(&self, key: CacheKey, answer: CachedAnswer) {
        let inner = &self.inner;
        if answer.body.len() > inner.cfg.max_entry_bytes {
            return;
        }
        let a = Arc::new(answer);
        inner.mem.lock().insert(key, a.clone(), cost(&a));
        inner.counters.stored.fetch_add(1, Relaxed);
        if inner.tx.send(Cmd::Put { key, answer: a }).is_err() {
            inner.counters.store_failures.fetch_add(1, Relaxed);
        }
    }

    /// A request answered from the cache, saving `saved`.
    pub fn note_hit(&self, saved: Micros) {
        self.inner.counters.hits.fetch_add(1, Relaxed);
        self.inner.counters.saved_micros.fetch_add(saved.0.max(0) as u64, Relaxed);
    }

    /// A request looked up (or refreshed) and answered by a provider.
    pub fn note_miss(&self) {
        self.inner.counters.misses.fetch_add(1, Relaxed);
    }

    /// A request the cache was not used for.
    pub fn note_skip(&self) {
        self.inner.counters.skips.fetch_add(1, Relaxed);
    }

    /// Deletes the whole cache (`None`) or one supplier's entries, in memory
    /// and in the database, and logs the purge. Auditing is the caller's.
    pub async fn purge(&self, supplier: Option<SupplierId>, reason: &str) -> Result<u64, StoreError> {
        self.purge_memory(supplier);
        let (reply, rx) = oneshot::channel();
        let stopped = || StoreError::Invalid("the response cache thread has stopped".into());
        self.inner.tx.send(Cmd::Purge { supplier, reason: reason.to_string(), reply }).map_err(|_| stopped())?;
        let (n, id) = rx.await.map_err(|_| stopped())??;
        // Entries a request put while the purge ran.
        self.purge_memory(supplier);
        // Applied here: the catalog reload it causes must not purge what is written after it.
        self.inner.last_purge.fetch_max(id, Relaxed);
        Ok(n)
    }

    fn purge_memory(&self, supplier: Option<SupplierId>) {
        let mut mem = self.inner.mem.lock();
        match supplier {
            None => mem.clear(),
            Some(s) => mem.retain(|_, a| a.supplier != s),
        }
    }

    /// Drops the memory entries of the purges logged since the last applied
    /// (by this process or another: the CLI, the console, another instance),
    /// and of suppliers no longer in `live` (removed). Runs on the catalog
    /// reload (a blocking thread).
    pub fn apply_purges(&self, store: &Store, live: &dyn Fn(SupplierId) -> bool) -> Result<(), StoreError> {
        let after = self.inner.last_purge.load(Relaxed);
        // The fleet's database has no purge log (each instance's cache, and
        // its log, is in its own file; a bookkeeping router keeps nothing).
        let purges = if store.is_postgres() { Vec::new() } else { store.cache_purges_since(after)? };
        for p in &purges {
            self.purge_memory(p.supplier);
            self.inner.last_purge.fetch_max(p.id, Relaxed);
        }
        self.inner.mem.lock().retain(|_, a| live(a.supplier));
        if !purges.is_empty() {
            let _ = self.inner.tx.send(Cmd::Recount);
        }
        Ok(())
    }

    /// Deletes expired rows now (the thread does it every [`CacheConfig::sweep_every`] too).
    pub async fn sweep(&self) -> Result<u64, StoreError> {
        let now = self.inner.clock.now();
        self.inner.mem.lock().retain(|_, a| a.expires_at > now);
        let (reply, rx) = oneshot::channel();
        let stopped = || StoreError::Invalid("the response cache thread has stopped".into());
        self.inner.tx.send(Cmd::Sweep { reply }).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Waits until every write sent so far is in the database.
    pub async fn flush(&self) {
        let (reply, rx) = oneshot::channel();
        if self.inner.tx.send(Cmd::Barrier { reply }).is_ok() {
            let _ = rx.await;
        }
    }

    pub fn stats(&self) -> CacheStats {
        let c = &self.inner.counters;
        let (memory_bytes, memory_entries) = {
            let m = self.inner.mem.lock();
            (m.bytes() as u64, m.len() as u64)
        };
        CacheStats {
            hits: c.hits.load(Relaxed),
            misses: c.misses.load(Relaxed),
            skips: c.skips.load(Relaxed),
            saved: Micros(i64::try_from(c.saved_micros.load(Relaxed)).unwrap_or(i64::MAX)),
            stored: c.stored.load(Relaxed),
            store_failures: c.store_failures.load(Relaxed),
            memory_bytes,
            memory_entries,
            memory_limit: self.inner.cfg.memory_bytes as u64,
            persistent_bytes: c.persistent_bytes.load(Relaxed),
            persistent_limit: self.inner.cfg.persistent_bytes,
        }
    }

    /// The cache's `/metrics` lines (Prometheus text).
    pub fn render_metrics(&self) -> String {
        let s = self.stats();
        let mut o = String::with_capacity(2048);
        for (name, kind, help, v) in [
            ("switchboard_cache_hits_total", "counter", "Requests answered from the response cache.", s.hits),
            ("switchboard_cache_misses_total", "counter", "Cacheable requests a provider answered (not found, or refreshed).", s.misses),
            ("switchboard_cache_skips_total", "counter", "Requests the response cache was not used for.", s.skips),
            (
                "switchboard_cache_saved_micro_usd_total",
                "counter",
                "Provider cost the response cache's hits saved, in micro-dollars.",
                s.saved.0.max(0) as u64,
            ),
            ("switchboard_cache_memory_bytes", "gauge", "Bytes of answers held in memory.", s.memory_bytes),
            ("switchboard_cache_memory_limit_bytes", "gauge", "The in-memory cache's bound.", s.memory_limit),
            ("switchboard_cache_memory_entries", "gauge", "Answers held in memory.", s.memory_entries),
            ("switchboard_cache_persistent_bytes", "gauge", "Bytes of answer bodies kept in the database.", s.persistent_bytes),
            ("switchboard_cache_persistent_limit_bytes", "gauge", "The persistent cache's bound.", s.persistent_limit),
            ("switchboard_cache_store_failures_total", "counter", "Answers that could not be written to the database.", s.store_failures),
        ] {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        }
        o
    }
}

/// Purges the cache of a database from a process that does not route it
/// (the CLI, a console on a database file), and audits it; returns how many
/// persistent entries were deleted. A running runtime drops its memory
/// entries when it sees the purge in the log. On PostgreSQL every instance
/// keeps its own cache: the purge is logged for the fleet, each instance
/// applies it to its own within a second ([`apply_fleet_purges`]), and the
/// answer is `None` (the counts are the instances').
pub fn purge_offline(
    store: &Store,
    supplier: Option<SupplierId>,
    now: chrono::DateTime<chrono::Utc>,
    actor: &str,
) -> Result<Option<u64>, StoreError> {
    if store.is_postgres() {
        let id = store.log_fleet_cache_purge(supplier, &format!("purged by {actor}"), now)?;
        let what = match supplier {
            Some(s) => format!("response cache of supplier {} purged", s.0),
            None => "whole response cache purged".to_string(),
        };
        let detail = format!("{what} on every instance of the fleet (fleet purge {id}; each instance purges its own cache)");
        store.audit(now, actor, "cache.purge", supplier, None, "ok", &detail)?;
        return Ok(None);
    }
    let n = store.purge_response_cache(supplier, now, &format!("purged by {actor}"))?;
    audit_purge(store, supplier, now, actor, n)?;
    Ok(Some(n))
}

/// The setting, in an instance's `local.db`, of the newest fleet purge applied to its cache.
const FLEET_PURGE_SETTING: &str = "fleet_cache_purge_applied";

/// On a fleet instance: applies to `cache` (memory and the instance's
/// `local` file) the purges logged in the fleet's `store` since the last one
/// applied, which is remembered in `local` (a fresh file starts at the
/// newest: it has nothing older to purge). Returns how many were applied.
pub async fn apply_fleet_purges(cache: &ResponseCache, store: &Arc<Store>, local: &Arc<Store>) -> Result<usize, StoreError> {
    let (s, l) = (store.clone(), local.clone());
    let work = move || -> Result<Vec<crate::store::FleetPurge>, StoreError> {
        let last = match l.setting(FLEET_PURGE_SETTING)?.and_then(|v| v.parse::<i64>().ok()) {
            Some(v) => v,
            None => {
                let newest = s.last_fleet_cache_purge()?;
                l.set_setting(FLEET_PURGE_SETTING, &newest.to_string())?;
                newest
            }
        };
        s.fleet_cache_purges_since(last)
    };
    let purges =
        tokio::task::spawn_blocking(work).await.map_err(|e| StoreError::Invalid(format!("the cache purge task failed: {e}")))??;
    for p in &purges {
        let n = cache.purge(p.supplier, &format!("fleet purge {}: {}", p.id, p.reason)).await?;
        tracing::info!(purge = p.id, supplier = ?p.supplier.map(|s| s.0), entries = n, "applied the fleet's cache purge");
        let (l, id) = (local.clone(), p.id);
        tokio::task::spawn_blocking(move || l.set_setting(FLEET_PURGE_SETTING, &id.to_string()))
            .await
            .map_err(|e| StoreError::Invalid(format!("the cache purge task failed: {e}")))??;
    }
    Ok(purges.len())
}

/// Checks, stores and audits a supplier's cache settings; a serving runtime
/// adopts them with its next catalog reload.
pub fn set_settings(
    store: &Store,
    supplier: SupplierId,
    s: crate::domain::cache::CacheSettings,
    actor: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    s.validate().map_err(StoreError::Invalid)?;
    let before = store.cache_settings(supplier)?;
    store.set_cache_settings(supplier, &s)?;
    let detail = format!("response cache: {} → {}", describe(&before), describe(&s));
    store.audit(now, actor, "cache.settings", Some(supplier), None, "ok", &detail)?;
    Ok(())
}

/// "on, chat 24 h, embeddings 30 d" (the audit's words).
pub fn describe(s: &crate::domain::cache::CacheSettings) -> String {
    format!("{}, chat {} h, embeddings {} d", if s.enabled { "on" } else { "off" }, s.chat_ttl_secs / 3600, s.embeddings_ttl_secs / 86_400)
}

/// The audit line of a purge.
pub fn audit_purge(
    store: &Store,
    supplier: Option<SupplierId>,
    now: chrono::DateTime<chrono::Utc>,
    actor: &str,
    n: u64,
) -> Result<(), StoreError> {
    let what = match supplier {
        Some(s) => format!("response cache of supplier {} purged: {n} entries deleted", s.0),
        None => format!("whole response cache purged: {n} entries deleted"),
    };
    store.audit(now, actor, "cache.purge", supplier, None, "ok", &what)?;
    Ok(())
}

/// The cache's thread: applies commands in order, sweeps when idle.
fn run(
    mut db: Box<dyn ResponseCacheStore>,
    rx: mpsc::Receiver<Cmd>,
    clock: Arc<dyn Clock>,
    counters: Arc<Counters>,
    every: std::time::Duration,
    cap: u64,
) {
    let mut next_sweep = std::time::Instant::now() + every;
    loop {
        let wait = next_sweep.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(wait) {
            Ok(Cmd::Get { key, supplier, reply }) => {
                let found = db.get(&key, supplier, clock.now()).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "a cached answer could not be read; the request goes to the provider");
                    None
                });
                let _ = reply.send(found);
            }
            Ok(Cmd::Put { key, answer }) => {
                if let Err(e) = db.put(&key, &answer, clock.now(), cap) {
                    counters.store_failures.fetch_add(1, Relaxed);
                    tracing::warn!(error = %e, "an answer could not be written to the response cache (it stays in memory)");
                }
            }
            Ok(Cmd::Purge { supplier, reason, reply }) => {
                let _ = reply.send(db.purge(supplier, clock.now(), &reason));
            }
            Ok(Cmd::Sweep { reply }) => {
                let _ = reply.send(db.sweep(clock.now()));
            }
            Ok(Cmd::Recount) => {
                if let Err(e) = db.recount() {
                    tracing::warn!(error = %e, "the response cache's size could not be counted");
                }
            }
            Ok(Cmd::Barrier { reply }) => {
                let _ = reply.send(());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                next_sweep = std::time::Instant::now() + every;
                match db.sweep(clock.now()) {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(deleted = n, "expired cached answers deleted"),
                    Err(e) => tracing::warn!(error = %e, "expired cached answers could not be deleted"),
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        counters.persistent_bytes.store(db.bytes(), Relaxed);
    }
}

/// The persistent side of a cache that keeps nothing ([`ResponseCache::start`] on PostgreSQL).
struct NoCacheStore;

impl crate::store::ResponseCacheStore for NoCacheStore {
    fn get(
        &mut self,
        _key: &CacheKey,
        _s: SupplierId,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<crate::store::CachedAnswer>, StoreError> {
        Ok(None)
    }
    fn put(
        &mut self,
        _key: &CacheKey,
        _a: &crate::store::CachedAnswer,
        _now: chrono::DateTime<chrono::Utc>,
        _max: u64,
    ) -> Result<Vec<CacheKey>, StoreError> {
        Ok(Vec::new())
    }
    fn purge(&mut self, _s: Option<SupplierId>, _now: chrono::DateTime<chrono::Utc>, _reason: &str) -> Result<(u64, i64), StoreError> {
        Ok((0, 0))
    }
    fn sweep(&mut self, _now: chrono::DateTime<chrono::Utc>) -> Result<u64, StoreError> {
        Ok(0)
    }
    fn bytes(&self) -> u64 {
        0
    }
    fn entries(&mut self) -> Result<u64, StoreError> {
        Ok(0)
    }
    fn recount(&mut self) -> Result<u64, StoreError> {
        Ok(0)
    }
}
