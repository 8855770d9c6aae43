//! The usage ledger: one row per request (idempotent on the request id) and
//! daily rollups kept current in the same transaction.

use super::analytics::{DailyKey, DailySum};
use super::{Store, StoreResult, connect, map_err};
use crate::domain::{Route, SupplierId, UsageEvent};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, Transaction, params};
use std::path::PathBuf;

/// What the engine needs from a ledger backend. SQLite implements it here; a
/// PostgreSQL backend would implement the same trait.
pub trait UsageLedger: Send {
    /// Appends `events` in one transaction. An event whose request id is
    /// already recorded is skipped (so a retried write never counts twice).
    /// Returns how many events were new.
    fn append(&mut self, events: &[UsageEvent]) -> StoreResult<usize>;

    /// Tokens that count against the supplier's platform quota in `[from, to)`
    /// (routes platform and failover; whole UTC days from the rollups).
    fn quota_tokens_used(&mut self, supplier: SupplierId, from: DateTime<Utc>, to: DateTime<Utc>) -> StoreResult<u64>;
}

/// A ledger on its own SQLite connection (the gateway's single writer task owns one).
pub struct SqliteLedger {
    path: PathBuf,
    conn: Connection,
    /// Dropping it stops the checkpointer thread.
    _checkpointer: Option<std::sync::mpsc::Sender<()>>,
}

/// How often the background checkpointer copies the WAL into the database.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

impl SqliteLedger {
    /// Opens the ledger's connection. Its commits never checkpoint the WAL
    /// themselves (a checkpoint syncs the database file, which would stall the
    /// request that happened to cross the threshold): a background thread on
    /// its own connection checkpoints twice a second instead.
    pub fn open(store: &Store) -> StoreResult<Self> {
        let path = store.path().to_path_buf();
        let conn = connect(&path)?;
        conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(|e| map_err(&path, e))?;
        let checkpoint_conn = connect(&path)?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let spawned = std::thread::Builder::new().name("usage-checkpoint".into()).spawn(move || {
            // Runs until the ledger is dropped (the sender hangs up).
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
                if let Err(e) = checkpoint_conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok::<(), rusqlite::Error>(())) {
                    tracing::warn!("usage ledger checkpoint failed (will retry): {e}");
                }
            }
            let _ = checkpoint_conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok::<(), rusqlite::Error>(()));
        });
        let checkpointer = match spawned {
            Ok(_) => Some(stop),
            Err(e) => {
                // Without the thread, let commits checkpoint as SQLite does by default.
                tracing::warn!("no checkpoint thread ({e}); the ledger checkpoints on commit");
                conn.pragma_update(None, "wal_autocheckpoint", 1000).map_err(|e| map_err(&path, e))?;
                None
            }
        };
        Ok(Self { path, conn, _checkpointer: checkpointer })
    }
}

impl UsageLedger for SqliteLedger {
    fn append(&mut self, events: &[UsageEvent]) -> StoreResult<usize> {
        let tx = self.conn.transaction().map_err(|e| map_err(&self.path, e))?;
        let n = append_in(&tx, events, true).map_err(|e| map_err(&self.path, e))?;
        tx.commit().map_err(|e| map_err(&self.path, e))?;
        Ok(n)
    }

    fn quota_tokens_used(&mut self, supplier: SupplierId, from: DateTime<Utc>, to: DateTime<Utc>) -> StoreResult<u64> {
        quota_tokens(&self.conn, supplier, from, to).map_err(|e| map_err(&self.path, e))
    }
}

pub(crate) fn day_key(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// Inserts events (and, when `rollups`, updates the daily rollups) inside `tx`.
pub(crate) fn append_in(tx: &Transaction<'_>, events: &[UsageEvent], rollups: bool) -> rusqlite::Result<usize> {
    let mut ins = tx.prepare_cached(
        "INSERT OR IGNORE INTO usage_events (request_id, ts, supplier_id, account_id, provider, model, request_type, route,
            input_tokens, output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, estimated, cost_micros, latency_ms, status, error_class)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
    )?;
    let mut roll = tx.prepare_cached(
        "INSERT INTO usage_daily (day, supplier_id, provider, model, request_type, route, requests, errors, input_tokens, output_tokens,
            cached_tokens, cache_write_tokens, reasoning_tokens, cost_micros, latency_ms_sum)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
         ON CONFLICT (day, supplier_id, provider, model, request_type, route) DO UPDATE SET
            requests = requests + excluded.requests, errors = errors + excluded.errors,
            input_tokens = input_tokens + excluded.input_tokens, output_tokens = output_tokens + excluded.output_tokens,
            cached_tokens = cached_tokens + excluded.cached_tokens, cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,
            reasoning_tokens = reasoning_tokens + excluded.reasoning_tokens, cost_micros = cost_micros + excluded.cost_micros,
            latency_ms_sum = latency_ms_sum + excluded.latency_ms_sum",
    )?;
    // New events summed per rollup key: a group commit of many events for the
    // same supplier and model updates each rollup row once.
    let mut sums: Vec<(DailyKey<'_>, DailySum)> = Vec::new();
    let mut index: std::collections::HashMap<DailyKey<'_>, usize> = std::collections::HashMap::new();
    let mut new = 0;
    for e in events {
        let u = &e.usage;
        let changed = ins.execute(params![
            e.request_id,
            e.ts.timestamp_millis(),
            e.supplier_id.0,
            e.account_id.map(|a| a.0),
            e.provider.as_str(),
            e.model,
            e.request_type.code(),
            e.route.code(),
            u.input as i64,
            u.output as i64,
            u.cached_read as i64,
            u.cache_write as i64,
            u.reasoning as i64,
            u.estimated,
            e.cost.0,
            e.latency_ms,
            e.status.code(),
            e.error_class,
        ])?;
        if changed == 0 {
            continue;
        }
        new += 1;
        if rollups {
            let key: DailyKey<'_> =
                (day_key(e.ts), e.supplier_id.0, e.provider.as_str(), e.model.as_str(), e.request_type.code(), e.route.code());
            let i = *index.entry(key.clone()).or_insert_with(|| {
                sums.push((key, DailySum::default()));
                sums.len() - 1
            });
            sums[i].1.add(e);
        }
    }
    for (k, m) in &sums {
        let keys: [&dyn rusqlite::ToSql; 6] = [&k.0, &k.1, &k.2, &k.3, &k.4, &k.5];
        let measures = m.measures();
        roll.execute(rusqlite::params_from_iter(keys.into_iter().chain(measures.iter().map(|v| v as &dyn rusqlite::ToSql))))?;
        super::analytics::roll_up(tx, k, m)?;
    }
    Ok(new)
}

fn quota_tokens(c: &Connection, supplier: SupplierId, from: DateTime<Utc>, to: DateTime<Utc>) -> rusqlite::Result<u64> {
    let v: i64 = c.query_row(
        "SELECT coalesce(sum(input_tokens + cached_tokens + cache_write_tokens + output_tokens), 0) FROM usage_daily
         WHERE supplier_id = ?1 AND day >= ?2 AND day < ?3 AND route IN (?4, ?5)",
        params![supplier.0, day_key(from), day_key(to), Route::Platform.code(), Route::Failover.code()],
        |r| r.get(0),
    )?;
    Ok(v.max(0) as u64)
}

impl Store {
    /// Appends events and updates rollups in one transaction (see [`UsageLedger::append`]).
    pub fn append_usage(&self, events: &[UsageEvent]) -> StoreResult<usize> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let n = append_in(&tx, events, true).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(n)
    }

    /// Bulk insert without touching rollups (for generated history); call
    /// [`Store::rebuild_daily_rollups`] afterwards.
    pub fn append_usage_bulk(&self, events: &[UsageEvent]) -> StoreResult<usize> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let n = append_in(&tx, events, false).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(n)
    }

    /// Inserts a long stream of events in one transaction without touching the
    /// rollups (for generated history); returns how many were new. Call
    /// [`Store::rebuild_daily_rollups`] afterwards.
    pub fn append_usage_stream(&self, events: impl IntoIterator<Item = UsageEvent>) -> StoreResult<usize> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let mut n = 0;
        let mut buf = Vec::with_capacity(4096);
        for e in events {
            buf.push(e);
            if buf.len() == buf.capacity() {
                n += append_in(&tx, &buf, false).map_err(|e| self.err(e))?;
                buf.clear();
            }
        }
        n += append_in(&tx, &buf, false).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(n)
    }

    /// Recomputes every rollup (daily, and the analytics rollups derived from it) from the events.
    pub fn rebuild_daily_rollups(&self) -> StoreResult<()> {
        self.with_conn(|c| {
            c.execute_batch(&format!(
                "BEGIN;
                 DELETE FROM usage_daily;
                 INSERT INTO usage_daily (day, supplier_id, provider, model, request_type, route, requests, errors, input_tokens,
                    output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost_micros, latency_ms_sum)
                 SELECT strftime('%Y-%m-%d', ts / 1000, 'unixepoch'), supplier_id, provider, model, request_type, route,
                    count(*), sum(status != 0), sum(input_tokens), sum(output_tokens), sum(cached_tokens), sum(cache_write_tokens),
                    sum(reasoning_tokens), sum(cost_micros), sum(latency_ms)
                 FROM usage_events GROUP BY 1, 2, 3, 4, 5, 6;
                 {}
                 COMMIT;",
                super::analytics::REBUILD_COARSE_ROLLUPS
            ))
        })
    }

    pub fn quota_tokens_used(&self, supplier: SupplierId, from: DateTime<Utc>, to: DateTime<Utc>) -> StoreResult<u64> {
        let conn = self.conn();
        quota_tokens(&conn, supplier, from, to).map_err(|e| self.err(e))
    }

    pub fn count_usage_events(&self) -> StoreResult<i64> {
        self.with_conn(|c| c.query_row("SELECT count(*) FROM usage_events", [], |r| r.get(0)))
    }
}
