//! The response cache's persistent part (`response_cache`, schema v16) and
//! its settings (`supplier_cache_settings`) and purge log
//! (`response_cache_purges`). The engine's cache (`engine::cache`) talks to
//! the table through the [`ResponseCacheStore`] trait only — [`SqliteCacheStore`]
//! here, on a connection of its own; a PostgreSQL backend shared by a fleet
//! implements the same trait (ARCHITECTURE.md, "Response cache"). The rules
//! (keys, TTLs, what is cached) are `domain::cache`'s.
//!
//! The table stays under a byte cap: a write that takes it over deletes the
//! least recently used rows first; expired rows are deleted by [`ResponseCacheStore::sweep`].

use super::{Store, StoreResult, connect, map_err};
use crate::domain::cache::{CacheKey, CacheSettings};
use crate::domain::idempotency::Endpoint;
use crate::domain::{AccountId, Micros, ProviderKind, SupplierId, TokenUsage};
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::path::PathBuf;

/// A cached answer and what its original call used and cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedAnswer {
    pub supplier: SupplierId,
    pub endpoint: Endpoint,
    /// The body is a stream's SSE bytes (replayed as a stream).
    pub stream: bool,
    pub provider: ProviderKind,
    /// The model that answered (the original row's).
    pub model: String,
    /// The account that answered the original call.
    pub account: Option<AccountId>,
    pub usage: TokenUsage,
    /// What the original call cost: what each hit saves.
    pub cost: Micros,
    pub body: Bytes,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// One supplier's share of the persistent cache.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CacheUsage {
    pub entries: u64,
    pub bytes: u64,
    /// Hits served from these entries (as counted at the rows).
    pub hits: u64,
}

/// Cache hits against all answered requests in one group of the rollup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheCell {
    /// The UTC day (per-day cells only).
    pub day: Option<NaiveDate>,
    pub supplier: SupplierId,
    /// The model (per-dimension cells only; empty otherwise).
    pub model: String,
    /// The request type (per-dimension cells only).
    pub request_type: Option<crate::domain::RequestType>,
    /// Requests answered from the cache.
    pub hits: u64,
    /// Requests answered at all (by a provider or the cache).
    pub answered: u64,
    /// What the hits saved.
    pub saved: Micros,
}

/// A purge written to the log: every process drops its memory entries for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeRecord {
    pub id: i64,
    /// `None`: the whole cache.
    pub supplier: Option<SupplierId>,
}

/// What the engine's cache needs of its persistent table. SQLite implements
/// it here; a fleet's PostgreSQL backend would implement the same trait.
pub trait ResponseCacheStore: Send {
    /// The live (unexpired) answer under `key` for `supplier`; counts the hit.
    fn get(&mut self, key: &CacheKey, supplier: SupplierId, now: DateTime<Utc>) -> StoreResult<Option<CachedAnswer>>;
    /// Stores (or replaces) an answer, then deletes the least recently used
    /// rows while the bodies total more than `max_bytes`. Returns the keys deleted.
    fn put(&mut self, key: &CacheKey, a: &CachedAnswer, now: DateTime<Utc>, max_bytes: u64) -> StoreResult<Vec<CacheKey>>;
    /// Deletes every entry (`None`) or one supplier's and logs the purge.
    /// Returns how many entries were deleted and the purge's id in the log.
    fn purge(&mut self, supplier: Option<SupplierId>, now: DateTime<Utc>, reason: &str) -> StoreResult<(u64, i64)>;
    /// Deletes expired entries; returns how many.
    fn sweep(&mut self, now: DateTime<Utc>) -> StoreResult<u64>;
    /// Bytes of the bodies kept now.
    fn bytes(&self) -> u64;
    /// Entries kept now.
    fn entries(&mut self) -> StoreResult<u64>;
    /// Recounts the bytes (after another process changed the table).
    fn recount(&mut self) -> StoreResult<u64>;
}

/// The cache table on its own connection (the engine's `response-cache` thread holds it).
pub struct SqliteCacheStore {
    path: PathBuf,
    conn: Connection,
    bytes: u64,
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn total_bytes(c: &Connection) -> rusqlite::Result<u64> {
    let n: i64 = c.query_row("SELECT coalesce(sum(body_len), 0) FROM response_cache", [], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

fn purge_in(c: &Connection, supplier: Option<SupplierId>, now: DateTime<Utc>, reason: &str) -> rusqlite::Result<(u64, i64)> {
    let tx = c.unchecked_transaction()?;
    let n = match supplier {
        Some(s) => tx.execute("DELETE FROM response_cache WHERE supplier_id = ?1", [s.0])?,
        None => tx.execute("DELETE FROM response_cache", [])?,
    };
    tx.execute(
        "INSERT INTO response_cache_purges (supplier_id, ts_ms, reason) VALUES (?1, ?2, ?3)",
        params![supplier.map(|s| s.0), ms(now), reason],
    )?;
    let id = tx.last_insert_rowid();
    tx.commit()?;
    Ok((n as u64, id))
}

impl SqliteCacheStore {
    /// Opens the table's own connection on `store`'s (migrated) file.
    pub fn open(store: &Store) -> StoreResult<Self> {
        let path = store.sqlite_path().ok_or_else(|| store.not_on_postgres())?.to_path_buf();
        let conn = connect(&path)?;
        let bytes = total_bytes(&conn).map_err(|e| map_err(&path, e))?;
        Ok(Self { path, conn, bytes })
    }
}

impl ResponseCacheStore for SqliteCacheStore {
    fn get(&mut self, key: &CacheKey, supplier: SupplierId, now: DateTime<Utc>) -> StoreResult<Option<CachedAnswer>> {
        let c = &self.conn;
        let run = || -> rusqlite::Result<Option<CachedAnswer>> {
            let row = c
                .prepare_cached(
                    "SELECT endpoint, stream, provider, model, account_id, usage, cost_micros, body, created_ms, expires_ms
                     FROM response_cache WHERE key = ?1 AND supplier_id = ?2 AND expires_ms > ?3",
                )?
                .query_row(params![&key.0[..], supplier.0, ms(now)], |r| {
                    let endpoint: i64 = r.get(0)?;
                    let provider: String = r.get(2)?;
                    let usage: String = r.get(5)?;
                    let body: Vec<u8> = r.get(7)?;
                    Ok((
                        endpoint,
                        r.get::<_, bool>(1)?,
                        provider,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                        usage,
                        r.get(6)?,
                        body,
                        r.get(8)?,
                        r.get(9)?,
                    ))
                })
                .optional()?;
            let Some((endpoint, stream, provider, model, account, usage, cost, body, created, expires)) = row else { return Ok(None) };
            // A row this build cannot read (a newer Switchboard's) is a miss.
            let (Some(endpoint), Ok(provider), Ok(usage)) =
                (Endpoint::from_code(endpoint), provider.parse::<ProviderKind>(), serde_json::from_str::<TokenUsage>(&usage))
            else {
                return Ok(None);
            };
            c.prepare_cached("UPDATE response_cache SET hits = hits + 1, used_ms = ?2 WHERE key = ?1")?
                .execute(params![&key.0[..], ms(now)])?;
            Ok(Some(CachedAnswer {
                supplier,
                endpoint,
                stream,
                provider,
                model,
                account: account.map(AccountId),
                usage,
                cost: Micros(cost),
                body: Bytes::from(body),
                created_at: at(created),
                expires_at: at(expires),
            }))
        };
        run().map_err(|e| map_err(&self.path, e))
    }

    fn put(&mut self, key: &CacheKey, a: &CachedAnswer, _now: DateTime<Utc>, max_bytes: u64) -> StoreResult<Vec<CacheKey>> {
        let c = &self.conn;
        let mut bytes = self.bytes;
        let mut run = || -> rusqlite::Result<Vec<CacheKey>> {
            // Immediate: the write lock first. A deferred transaction reads
            // (the old length) and then upgrades, and the upgrade fails with
            // SQLITE_BUSY_SNAPSHOT whenever another connection (the usage
            // fold) committed in between — the answer was then not kept.
            let tx = rusqlite::Transaction::new_unchecked(c, rusqlite::TransactionBehavior::Immediate)?;
            let old: Option<i64> = tx
                .prepare_cached("SELECT body_len FROM response_cache WHERE key = ?1")?
                .query_row([&key.0[..]], |r| r.get(0))
                .optional()?;
            let usage = serde_json::to_string(&a.usage).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO response_cache (key, supplier_id, endpoint, stream, provider, model, account_id, usage,
                    cost_micros, body, body_len, created_ms, expires_ms, used_ms, hits)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?12, 0)",
            )?
            .execute(params![
                &key.0[..],
                a.supplier.0,
                a.endpoint.code(),
                a.stream,
                a.provider.as_str(),
                a.model,
                a.account.map(|x| x.0),
                usage,
                a.cost.0,
                &a.body[..],
                a.body.len() as i64,
                ms(a.created_at),
                ms(a.expires_at),
            ])?;
            bytes = bytes.saturating_sub(old.unwrap_or(0).max(0) as u64).saturating_add(a.body.len() as u64);
            let mut evicted = Vec::new();
            if bytes > max_bytes {
                // Least recently used first (the new row last: it was used now).
                let mut st =
                    tx.prepare_cached("SELECT key, body_len FROM response_cache WHERE key != ?1 ORDER BY used_ms, created_ms LIMIT 256")?;
                let mut rows = st.query([&key.0[..]])?;
                while bytes > max_bytes {
                    let Some(r) = rows.next()? else { break };
                    let k: Vec<u8> = r.get(0)?;
                    let len: i64 = r.get(1)?;
                    if let Ok(k) = <[u8; 32]>::try_from(k.as_slice()) {
                        evicted.push(CacheKey(k));
                    }
                    bytes = bytes.saturating_sub(len.max(0) as u64);
                }
                drop(rows);
                drop(st);
                let mut del = tx.prepare_cached("DELETE FROM response_cache WHERE key = ?1")?;
                for k in &evicted {
                    del.execute([&k.0[..]])?;
                }
            }
            tx.commit()?;
            Ok(evicted)
        };
        let evicted = run().map_err(|e| map_err(&self.path, e))?;
        self.bytes = bytes;
        Ok(evicted)
    }

    fn purge(&mut self, supplier: Option<SupplierId>, now: DateTime<Utc>, reason: &str) -> StoreResult<(u64, i64)> {
        let n = purge_in(&self.conn, supplier, now, reason).map_err(|e| map_err(&self.path, e))?;
        self.recount()?;
        Ok(n)
    }

    fn sweep(&mut self, now: DateTime<Utc>) -> StoreResult<u64> {
        let n = self
            .conn
            .prepare_cached("DELETE FROM response_cache WHERE expires_ms <= ?1")
            .and_then(|mut st| st.execute([ms(now)]))
            .map_err(|e| map_err(&self.path, e))?;
        if n > 0 {
            self.recount()?;
        }
        Ok(n as u64)
    }

    fn bytes(&self) -> u64 {
        self.bytes
    }

    fn entries(&mut self) -> StoreResult<u64> {
        let n: i64 = self.conn.query_row("SELECT count(*) FROM response_cache", [], |r| r.get(0)).map_err(|e| map_err(&self.path, e))?;
        Ok(n.max(0) as u64)
    }

    fn recount(&mut self) -> StoreResult<u64> {
        self.bytes = total_bytes(&self.conn).map_err(|e| map_err(&self.path, e))?;
        Ok(self.bytes)
    }
}

impl Store {
    /// Every supplier's cache settings that differ from the defaults (a
    /// supplier without a row has [`CacheSettings::default`]).
    pub fn cache_settings_all(&self) -> StoreResult<HashMap<SupplierId, CacheSettings>> {
        if let Some(pg) = self.postgres() {
            return pg.block(|pg| async move { super::pg::catalog::cache_settings_all(&pg).await });
        }
        self.with_conn(|c| {
            let mut st =
                c.prepare_cached("SELECT supplier_id, enabled, chat_ttl_secs, embeddings_ttl_secs FROM supplier_cache_settings")?;
            let rows = st.query_map([], |r| {
                Ok((
                    SupplierId(r.get(0)?),
                    CacheSettings {
                        enabled: r.get(1)?,
                        chat_ttl_secs: r.get::<_, i64>(2)?.max(1) as u64,
                        embeddings_ttl_secs: r.get::<_, i64>(3)?.max(1) as u64,
                    },
                ))
            })?;
            rows.collect()
        })
    }

    /// One supplier's cache settings.
    pub fn cache_settings(&self, supplier: SupplierId) -> StoreResult<CacheSettings> {
        Ok(self.cache_settings_all()?.remove(&supplier).unwrap_or_default())
    }

    /// Writes a supplier's cache settings (checked by the caller with
    /// [`CacheSettings::validate`]); bumps the catalog version.
    pub fn set_cache_settings(&self, supplier: SupplierId, s: &CacheSettings) -> StoreResult<()> {
        if let Some(pg) = self.postgres() {
            let s = *s;
            return pg.block(move |pg| async move { super::pg::catalog::set_cache_settings(&pg, supplier, s).await });
        }
        let ttl = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.with_conn(|c| {
            c.execute(
                "INSERT INTO supplier_cache_settings (supplier_id, enabled, chat_ttl_secs, embeddings_ttl_secs) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (supplier_id) DO UPDATE SET enabled = excluded.enabled, chat_ttl_secs = excluded.chat_ttl_secs,
                    embeddings_ttl_secs = excluded.embeddings_ttl_secs",
                params![supplier.0, s.enabled, ttl(s.chat_ttl_secs), ttl(s.embeddings_ttl_secs)],
            )
            .map(|_| ())
        })
    }

    /// Deletes the whole cache (`None`) or one supplier's entries and logs
    /// the purge (every process serving the database then drops its memory
    /// entries too). Returns how many persistent entries were deleted.
    /// Auditing is the caller's (`engine::cache::purge_offline`).
    pub fn purge_response_cache(&self, supplier: Option<SupplierId>, now: DateTime<Utc>, reason: &str) -> StoreResult<u64> {
        if self.is_postgres() {
            return Err(super::StoreError::Invalid(
                "on PostgreSQL each instance keeps its own response cache (its local.db under --fleet-dir): purge it there with `switchboard --db FLEET_DIR/…/local.db cache purge`; nothing was purged".into(),
            ));
        }
        self.with_conn(|c| purge_in(c, supplier, now, reason)).map(|(n, _)| n)
    }

    /// Purges logged after `after` (by id), oldest first.
    pub fn cache_purges_since(&self, after: i64) -> StoreResult<Vec<PurgeRecord>> {
        self.with_conn(|c| {
            let mut st = c.prepare_cached("SELECT id, supplier_id FROM response_cache_purges WHERE id > ?1 ORDER BY id")?;
            let rows =
                st.query_map([after], |r| Ok(PurgeRecord { id: r.get(0)?, supplier: r.get::<_, Option<i64>>(1)?.map(SupplierId) }))?;
            rows.collect()
        })
    }

    /// The newest purge's id (0: none yet).
    pub fn last_cache_purge(&self) -> StoreResult<i64> {
        self.with_conn(|c| c.query_row("SELECT coalesce(max(id), 0) FROM response_cache_purges", [], |r| r.get(0)))
    }

    /// Cache hits per supplier in the ledger's daily rollup: (supplier, hits, saved).
    pub fn cache_hits_by_supplier(&self) -> StoreResult<Vec<(SupplierId, u64, Micros)>> {
        if let Some(pg) = self.postgres() {
            return pg.block(|pg| async move { super::pg::cache_stats::hits_by_supplier(&pg).await });
        }
        self.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT supplier_id, sum(requests), sum(saved_micros) FROM usage_daily WHERE route = ?1 GROUP BY supplier_id ORDER BY supplier_id",
            )?;
            let rows = st.query_map([crate::domain::Route::Cache.code()], |r| {
                Ok((SupplierId(r.get(0)?), r.get::<_, i64>(1)?.max(0) as u64, Micros(r.get(2)?)))
            })?;
            rows.collect()
        })
    }

    /// Cache hits, answered requests (shadow copies left out) and savings per
    /// UTC day and supplier in `[from, to)`, from the daily rollup (one row per
    /// day and supplier with any usage).
    pub fn cache_by_day_supplier(&self, from: NaiveDate, to: NaiveDate) -> StoreResult<Vec<CacheCell>> {
        if let Some(pg) = self.postgres() {
            return pg.block(move |pg| async move { super::pg::cache_stats::cells(&pg, from, to, true).await });
        }
        self.cache_cells("day, supplier_id, '', -1", "day, supplier_id", from, to, false)
    }

    /// The same per supplier, model and request type over `[from, to)`, for
    /// the groups with at least one hit.
    pub fn cache_by_dims(&self, from: NaiveDate, to: NaiveDate) -> StoreResult<Vec<CacheCell>> {
        if let Some(pg) = self.postgres() {
            return pg.block(move |pg| async move { super::pg::cache_stats::cells(&pg, from, to, false).await });
        }
        self.cache_cells("'', supplier_id, model, request_type", "supplier_id, model, request_type", from, to, true)
    }

    fn cache_cells(&self, keys: &str, group: &str, from: NaiveDate, to: NaiveDate, hits_only: bool) -> StoreResult<Vec<CacheCell>> {
        let (cache, shadow) = (crate::domain::Route::Cache.code(), crate::domain::Route::Shadow.code());
        let sql = format!(
            "SELECT {keys}, coalesce(sum(CASE WHEN route = {cache} THEN requests - errors ELSE 0 END), 0),
                coalesce(sum(CASE WHEN route != {shadow} THEN requests - errors ELSE 0 END), 0), coalesce(sum(saved_micros), 0)
             FROM usage_daily WHERE day >= ?1 AND day < ?2 GROUP BY {group} {} ORDER BY {group}",
            if hits_only { format!("HAVING sum(CASE WHEN route = {cache} THEN requests ELSE 0 END) > 0") } else { String::new() }
        );
        self.with_conn(|c| {
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map(params![from.to_string(), to.to_string()], |r| {
                let day: String = r.get(0)?;
                Ok(CacheCell {
                    day: day.parse().ok(),
                    supplier: SupplierId(r.get(1)?),
                    model: r.get(2)?,
                    request_type: crate::domain::RequestType::from_code(r.get(3)?),
                    hits: r.get::<_, i64>(4)?.max(0) as u64,
                    answered: r.get::<_, i64>(5)?.max(0) as u64,
                    saved: Micros(r.get(6)?),
                })
            })?;
            rows.collect()
        })
    }

    /// The persistent cache per supplier: entries, bytes and hits of its rows
    /// (expired ones too, until the sweep deletes them: they hold the bytes).
    /// On PostgreSQL each instance keeps its cache in its own `local.db` and
    /// reports it per supplier: the sum over the live instances' reports.
    pub fn response_cache_usage(&self) -> StoreResult<Vec<(SupplierId, CacheUsage)>> {
        if let Some(pg) = self.postgres() {
            let gone_after = crate::store::pg::fleet::DEFAULT_GONE_AFTER;
            return pg.block(move |pg| async move { crate::store::pg::cache_stats::fleet_usage(&pg, gone_after).await });
        }
        self.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT supplier_id, count(*), coalesce(sum(body_len), 0), coalesce(sum(hits), 0) FROM response_cache
                 GROUP BY supplier_id ORDER BY supplier_id",
            )?;
            let rows = st.query_map([], |r| {
                let n = |i: usize| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
                Ok((SupplierId(r.get(0)?), CacheUsage { entries: n(1)?, bytes: n(2)?, hits: n(3)? }))
            })?;
            rows.collect()
        })
    }
}
