//! The usage ledger: one row per provider attempt (idempotent on its event
//! id; the client's request id and idempotency key are stored beside it), the
//! rollups folded from the events behind a durable watermark, and the usage
//! journal's per-instance watermark.
//!
//! Requests never write here: their events go to the engine's usage journal,
//! whose fold calls [`UsageLedger::fold_batch`] — one transaction that inserts
//! a batch of events, runs [`fold_rollups`] (every event past the rollup
//! watermark `usage_rollup_watermark` into `usage_daily` and the analytics
//! rollups) and moves the journal's watermark (`usage_journal_watermark`,
//! schema v11). An event is counted in the rollups exactly once, and a journal
//! record is folded exactly once, however the process stops. Other writers
//! ([`Store::append_usage`]) fold in the same transaction as their events.
//! Quota figures add the event rows not in the rollups yet.

use super::{Store, StoreResult, connect, map_err};
use crate::domain::{JournalPos, Route, SupplierId, UsageEvent, UsageStatus};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, Transaction, TransactionBehavior, params};
use std::path::PathBuf;

mod rollups;
pub(crate) use rollups::fold_rollups;
use rollups::insert_and_fold;

/// What the engine needs from a ledger backend. SQLite implements it here; a
/// PostgreSQL backend would implement the same trait.
pub trait UsageLedger: Send {
    /// Appends `events` in one transaction. An event whose event id is
    /// already recorded is skipped (so a retried write never counts twice;
    /// two events with one client request id or idempotency key are both kept).
    /// Returns how many events were new. The rollups follow with
    /// [`UsageLedger::fold_rollups`].
    fn append(&mut self, events: &[UsageEvent]) -> StoreResult<usize>;

    /// Adds every event not yet counted in the rollups to them; returns how
    /// many events that was.
    fn fold_rollups(&mut self) -> StoreResult<usize>;

    /// The fold of a usage journal: in ONE transaction, appends `events`
    /// (skipping event ids already recorded), adds every new event to every
    /// rollup, and moves journal instance `journal`'s watermark to `to` (never
    /// backwards). However the process stops, a journal record is then either
    /// wholly folded (behind the watermark) or not at all. Returns how many
    /// events were new.
    fn fold_batch(&mut self, journal: u32, events: &[UsageEvent], to: JournalPos) -> StoreResult<usize>;

    /// Journal instance `journal`'s watermark (`None`: nothing folded from it yet).
    fn journal_watermark(&mut self, journal: u32) -> StoreResult<Option<JournalPos>>;

    /// Copies the WAL into the database file. Called between two commits, it
    /// completes, and the next commit starts the WAL from its beginning: under
    /// a steady stream of commits a checkpoint that runs alongside them never
    /// catches up, and the WAL would grow without bound.
    fn checkpoint(&mut self) -> StoreResult<()>;

    /// Tokens that count against the supplier's platform quota in `[from, to)`
    /// (routes platform and failover; whole UTC days from the rollups).
    fn quota_tokens_used(&mut self, supplier: SupplierId, from: DateTime<Utc>, to: DateTime<Utc>) -> StoreResult<u64>;
}

/// When a ledger commit reaches the disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LedgerSync {
    /// WAL with `synchronous=NORMAL`: a committed event survives the process
    /// being killed (the commit is in the operating system's page cache);
    /// the WAL is synced to disk at checkpoints, twice a second. A power cut
    /// can lose the last half second of commits.
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit (one per group of concurrent
    /// requests) is synced to disk before those responses complete. Survives
    /// a power cut; costs an fsync per commit.
    Full,
}

/// SQLite instructions the ledger's statements run between two yields of the CPU.
const YIELD_EVERY_OPS: i32 = 2_000;

/// A ledger on its own SQLite connection (the usage journal's fold thread owns one).
///
/// Its commits never checkpoint the WAL themselves (a checkpoint syncs the
/// files, which would stall the request that crossed the threshold): the
/// engine's ledger checkpoints twice a second, the bulk from a
/// [`WalCheckpointer`] while commits go on and the rest with
/// [`UsageLedger::checkpoint`] between two commits.
pub struct SqliteLedger {
    path: PathBuf,
    conn: Connection,
}

impl SqliteLedger {
    /// Opens the ledger's connection (see [`SqliteLedger`]) and folds what a
    /// stopped process committed but did not fold.
    pub fn open(store: &Store) -> StoreResult<Self> {
        Self::open_with(store, LedgerSync::Normal)
    }

    /// [`SqliteLedger::open`] with the given durability.
    pub fn open_with(store: &Store, sync: LedgerSync) -> StoreResult<Self> {
        let path = store.sqlite_path().ok_or_else(|| store.not_on_postgres())?.to_path_buf();
        let mut conn = connect(&path)?;
        if sync == LedgerSync::Full {
            conn.pragma_update(None, "synchronous", "FULL").map_err(|e| map_err(&path, e))?;
        }
        // The fold shares the CPUs with the gateway's lanes, and a lane woken
        // on the CPU the fold runs on waits for it: the fold's statements
        // yield the CPU every few thousand SQLite instructions (~0.1 ms), so
        // that wait is short (BENCHMARKS.md: the p99 at one connection).
        conn.progress_handler(
            YIELD_EVERY_OPS,
            Some(|| {
                std::thread::yield_now();
                false
            }),
        )
        .map_err(|e| map_err(&path, e))?;
        conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(|e| map_err(&path, e))?;
        // After a burst, give the disk space back when the WAL starts over.
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024).map_err(|e| map_err(&path, e))?;
        let mut ledger = Self { path, conn };
        // Events a stopped process committed but did not fold yet.
        ledger.fold_rollups()?;
        Ok(ledger)
    }
}

/// Copies the WAL into the database file from its own connection, so that
/// the bulk of a checkpoint runs while the ledger goes on committing.
pub struct WalCheckpointer {
    path: PathBuf,
    conn: Connection,
}

impl WalCheckpointer {
    pub fn open(store: &Store) -> StoreResult<Self> {
        let path = store.sqlite_path().ok_or_else(|| store.not_on_postgres())?.to_path_buf();
        let conn = connect(&path)?;
        Ok(Self { path, conn })
    }

    /// A passive checkpoint: copies what it can without waiting for anyone.
    pub fn checkpoint(&self) -> StoreResult<()> {
        passive_checkpoint(&self.conn).map_err(|e| map_err(&self.path, e))
    }
}

fn passive_checkpoint(c: &Connection) -> rusqlite::Result<()> {
    c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}

impl UsageLedger for SqliteLedger {
    fn append(&mut self, events: &[UsageEvent]) -> StoreResult<usize> {
        // BEGIN and COMMIT as cached statements: `Connection::transaction`
        // parses both again on every commit, and a commit happens per request
        // at low concurrency.
        let c = &self.conn;
        let run = || -> rusqlite::Result<usize> {
            c.prepare_cached("BEGIN")?.execute([])?;
            let n = append_in(c, events)?;
            c.prepare_cached("COMMIT")?.execute([])?;
            Ok(n)
        };
        run().map_err(|e| {
            if !c.is_autocommit() {
                // Nothing of a failed append stays half-written.
                let _ = c.execute_batch("ROLLBACK");
            }
            map_err(&self.path, e)
        })
    }

    fn checkpoint(&mut self) -> StoreResult<()> {
        passive_checkpoint(&self.conn).map_err(|e| map_err(&self.path, e))
    }

    fn fold_rollups(&mut self) -> StoreResult<usize> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| map_err(&self.path, e))?;
        let n = fold_rollups(&tx).map_err(|e| map_err(&self.path, e))?;
        tx.commit().map_err(|e| map_err(&self.path, e))?;
        Ok(n)
    }

    fn fold_batch(&mut self, journal: u32, events: &[UsageEvent], to: JournalPos) -> StoreResult<usize> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| map_err(&self.path, e))?;
        let run = |tx: &Transaction<'_>| -> rusqlite::Result<usize> {
            let n = insert_and_fold(tx, events)?;
            set_journal_watermark(tx, journal, to)?;
            Ok(n)
        };
        let n = run(&tx).map_err(|e| map_err(&self.path, e))?;
        tx.commit().map_err(|e| map_err(&self.path, e))?;
        Ok(n)
    }

    fn journal_watermark(&mut self, journal: u32) -> StoreResult<Option<JournalPos>> {
        journal_watermark(&self.conn, journal).map_err(|e| map_err(&self.path, e))
    }

    fn quota_tokens_used(&mut self, supplier: SupplierId, from: DateTime<Utc>, to: DateTime<Utc>) -> StoreResult<u64> {
        quota_tokens(&self.conn, supplier, from, to).map_err(|e| map_err(&self.path, e))
    }
}

fn journal_watermark(c: &Connection, journal: u32) -> rusqlite::Result<Option<JournalPos>> {
    use rusqlite::OptionalExtension;
    c.prepare_cached("SELECT segment, byte_offset FROM usage_journal_watermark WHERE journal = ?1")?
        .query_row([journal], |r| Ok(JournalPos { segment: r.get::<_, i64>(0)?.max(0) as u64, offset: r.get::<_, i64>(1)?.max(0) as u64 }))
        .optional()
}

/// Moves a journal's watermark forward to `to` (a move backwards is ignored).
fn set_journal_watermark(tx: &Connection, journal: u32, to: JournalPos) -> rusqlite::Result<()> {
    let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    tx.prepare_cached(
        "INSERT INTO usage_journal_watermark (journal, segment, byte_offset) VALUES (?1, ?2, ?3)
         ON CONFLICT (journal) DO UPDATE SET segment = excluded.segment, byte_offset = excluded.byte_offset
         WHERE (excluded.segment, excluded.byte_offset) > (segment, byte_offset)",
    )?
    .execute(params![journal, as_i64(to.segment), as_i64(to.offset)])?;
    Ok(())
}

impl super::StoreError {
    /// Whether the database refused a row (a constraint): the database itself
    /// could write. Any other failure of a ledger write means it cannot.
    pub fn is_constraint(&self) -> bool {
        matches!(self, super::StoreError::Sqlite { source, .. }
            if source.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation))
    }
}

pub(crate) fn day_key(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// The columns an event is inserted with, in [`bind_event`]'s order.
const EVENT_COLUMNS: &str = "event_id, ts, supplier_id, account_id, provider, model, request_type, route,
    input_tokens, output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, estimated, cost_micros, latency_ms, status, error_class,
    request_id, idempotency_key, saved_micros";
/// How many columns that is: the parameters of one row.
const EVENT_PARAMS: usize = 21;
/// Rows per multi-row `INSERT`: a statement opens the table's and its five
/// indexes' cursors once for all its rows, where one statement per event
/// opened and closed them for each (672 parameters a statement).
const ROWS_PER_INSERT: usize = 32;

/// `INSERT OR IGNORE` of `rows` events.
fn insert_sql(rows: usize) -> String {
    use std::fmt::Write as _;
    let mut sql = format!("INSERT OR IGNORE INTO usage_events ({EVENT_COLUMNS}) VALUES ");
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..EVENT_PARAMS {
            let _ = write!(sql, "{}?{}", if c == 0 { "" } else { ", " }, r * EVENT_PARAMS + c + 1);
        }
        sql.push(')');
    }
    sql
}

/// Binds `e` to the parameters of the row that starts after parameter `base`.
fn bind_event(st: &mut rusqlite::Statement<'_>, base: usize, e: &UsageEvent) -> rusqlite::Result<()> {
    let u = &e.usage;
    let values: [&dyn rusqlite::ToSql; EVENT_PARAMS] = [
        &e.event_id,
        &e.ts.timestamp_millis(),
        &e.supplier_id.0,
        &e.account_id.map(|a| a.0),
        &e.provider.as_str(),
        &e.model,
        &e.request_type.code(),
        &e.route.code(),
        &(u.input as i64),
        &(u.output as i64),
        &(u.cached_read as i64),
        &(u.cache_write as i64),
        &(u.reasoning as i64),
        &u.estimated,
        &e.cost.0,
        &e.latency_ms,
        &e.status.code(),
        &e.error_class,
        &e.request_id,
        &e.idempotency_key,
        &e.saved.0,
    ];
    for (i, v) in values.into_iter().enumerate() {
        st.raw_bind_parameter(base + i + 1, v)?;
    }
    Ok(())
}

/// Inserts events in the transaction open on `tx` (not the rollups: see
/// [`fold_rollups`]), in their order, [`ROWS_PER_INSERT`] a statement; an
/// event whose id is already there (a replayed journal record) is skipped.
/// Returns how many were new.
pub(crate) fn append_in(tx: &Connection, events: &[UsageEvent]) -> rusqlite::Result<usize> {
    static SQL: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    let (many_sql, one_sql) = SQL.get_or_init(|| (insert_sql(ROWS_PER_INSERT), insert_sql(1)));
    let mut new = 0;
    let mut chunks = events.chunks_exact(ROWS_PER_INSERT);
    if events.len() >= ROWS_PER_INSERT {
        let mut many = tx.prepare_cached(many_sql)?;
        for chunk in &mut chunks {
            for (r, e) in chunk.iter().enumerate() {
                bind_event(&mut many, r * EVENT_PARAMS, e)?;
            }
            new += many.raw_execute()?;
        }
    }
    if !chunks.remainder().is_empty() {
        let mut one = tx.prepare_cached(one_sql)?;
        for e in chunks.remainder() {
            bind_event(&mut one, 0, e)?;
            new += one.raw_execute()?;
        }
    }
    Ok(new)
}

fn quota_tokens(c: &Connection, supplier: SupplierId, from: DateTime<Utc>, to: DateTime<Utc>) -> rusqlite::Result<u64> {
    // Whole UTC days: the folded part from usage_daily, plus the events past
    // the watermark (a moment's worth), in one statement and so one snapshot.
    let day_ms = |t: DateTime<Utc>| crate::domain::calendar::day_start(t.date_naive()).timestamp_millis();
    let mut st = c.prepare_cached(
        "SELECT coalesce((SELECT sum(input_tokens + cached_tokens + cache_write_tokens + output_tokens) FROM usage_daily
                WHERE supplier_id = ?1 AND day >= ?2 AND day < ?3 AND route IN (?4, ?5, ?8)), 0)
            + coalesce((SELECT sum(input_tokens + cached_tokens + cache_write_tokens + output_tokens) FROM usage_events
                WHERE id > (SELECT last_event_id FROM usage_rollup_watermark WHERE id = 1)
                AND supplier_id = ?1 AND ts >= ?6 AND ts < ?7 AND route IN (?4, ?5, ?8)), 0)",
    )?;
    // Cache hits count only under the domain's policy (they do not: -1 matches no route).
    let cache = if Route::Cache.counts_against_quota() { Route::Cache.code() } else { -1 };
    let v: i64 = st.query_row(
        params![supplier.0, day_key(from), day_key(to), Route::Platform.code(), Route::Failover.code(), day_ms(from), day_ms(to), cache],
        |r| r.get(0),
    )?;
    Ok(v.max(0) as u64)
}

impl Store {
    /// Appends events and brings the rollups up to date with them (and with
    /// any event the ledger writer has not folded yet) in one transaction.
    pub fn append_usage(&self, events: &[UsageEvent]) -> StoreResult<usize> {
        if let Some(pg) = self.postgres() {
            // The events and their rollups in one transaction, as a fold does.
            let events = events.to_vec();
            return Ok(pg.block(move |pg| async move { super::pg::ledger::fold(&pg, None, &events, None).await })?);
        }
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| self.err(e))?;
        let n = insert_and_fold(&tx, events).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(n)
    }

    /// Bulk insert without touching rollups (for generated history); call
    /// [`Store::rebuild_daily_rollups`] afterwards.
    pub fn append_usage_bulk(&self, events: &[UsageEvent]) -> StoreResult<usize> {
        if self.postgres().is_some() {
            // PostgreSQL keeps the rollups in the same transaction anyway.
            return self.append_usage(events);
        }
        let mut conn = self.conn()?;
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let n = append_in(&tx, events).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(n)
    }

    /// Inserts a long stream of events in one transaction without touching the
    /// rollups (for generated history); returns how many were new. Call
    /// [`Store::rebuild_daily_rollups`] afterwards.
    ///
    /// On PostgreSQL each chunk of 4096 events is one transaction with its
    /// rollups (a stream cut short keeps the chunks before; a rerun adds only
    /// the missing events: event ids deduplicate).
    pub fn append_usage_stream(&self, events: impl IntoIterator<Item = UsageEvent>) -> StoreResult<usize> {
        if self.postgres().is_some() {
            let mut n = 0usize;
            let mut buf = Vec::with_capacity(4096);
            for e in events {
                buf.push(e);
                if buf.len() == buf.capacity() {
                    n = n.saturating_add(self.append_usage(&buf)?);
                    buf.clear();
                }
            }
            return Ok(n.saturating_add(self.append_usage(&buf)?));
        }
        let mut conn = self.conn()?;
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let mut n = 0;
        let mut buf = Vec::with_capacity(4096);
        for e in events {
            buf.push(e);
            if buf.len() == buf.capacity() {
                n += append_in(&tx, &buf).map_err(|e| self.err(e))?;
                buf.clear();
            }
        }
        n += append_in(&tx, &buf).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(n)
    }

    /// Recomputes every rollup (daily, and the analytics rollups derived from
    /// it) from the events, and moves the fold watermark to the newest event.
    pub fn rebuild_daily_rollups(&self) -> StoreResult<()> {
        if let Some(pg) = self.postgres() {
            // Every rollup and the quota months, in one transaction (no fold watermark there).
            return Ok(pg.block(|pg| async move { super::pg::ledger::rebuild_rollups(&pg).await })?);
        }
        self.with_conn(|c| {
            c.execute_batch(&format!(
                "BEGIN;
                 DELETE FROM usage_daily;
                 INSERT INTO usage_daily (day, supplier_id, provider, model, request_type, route, requests, errors, input_tokens,
                    output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost_micros, latency_ms_sum, saved_micros)
                 SELECT strftime('%Y-%m-%d', ts / 1000, 'unixepoch'), supplier_id, provider, model, request_type, route,
                    count(*), sum(status NOT IN ({ok}, {gone})), sum(input_tokens), sum(output_tokens), sum(cached_tokens), sum(cache_write_tokens),
                    sum(reasoning_tokens), sum(cost_micros), sum(latency_ms), sum(saved_micros)
                 FROM usage_events GROUP BY 1, 2, 3, 4, 5, 6;
                 {}
                 UPDATE usage_rollup_watermark SET last_event_id = (SELECT coalesce(max(id), 0) FROM usage_events) WHERE id = 1;
                 COMMIT;",
                super::analytics::REBUILD_COARSE_ROLLUPS,
                ok = UsageStatus::Ok.code(),
                gone = UsageStatus::ClientGone.code(),
            ))
        })
    }

    pub fn quota_tokens_used(&self, supplier: SupplierId, from: DateTime<Utc>, to: DateTime<Utc>) -> StoreResult<u64> {
        if let Some(pg) = self.postgres() {
            return Ok(pg.block(move |pg| async move { super::pg::ledger::quota_tokens_used(&pg, supplier, from, to).await })?);
        }
        let conn = self.conn()?;
        quota_tokens(&conn, supplier, from, to).map_err(|e| self.err(e))
    }

    /// Journal instance `journal`'s fold watermark (see [`UsageLedger::fold_batch`]).
    pub fn journal_watermark(&self, journal: u32) -> StoreResult<Option<JournalPos>> {
        if let Some(pg) = self.postgres() {
            return Ok(pg.block(move |pg| async move { super::pg::ledger::journal_watermark(&pg, i64::from(journal)).await })?);
        }
        let conn = self.conn()?;
        journal_watermark(&conn, journal).map_err(|e| self.err(e))
    }

    pub fn count_usage_events(&self) -> StoreResult<i64> {
        if let Some(pg) = self.postgres() {
            return Ok(pg.block(|pg| async move { super::pg::usage_reads::count_usage_events(&pg).await })?);
        }
        self.with_conn(|c| c.query_row("SELECT count(*) FROM usage_events", [], |r| r.get(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccountId, Micros, ProviderKind, RequestType, TokenUsage};

    pub(super) fn event(i: usize) -> UsageEvent {
        UsageEvent {
            event_id: format!("019a8f3c-5b2e-7d41-9c3a-{i:012x}"),
            request_id: format!("sb-1-{i}"),
            idempotency_key: (i.is_multiple_of(4)).then(|| format!("key-{i}")),
            ts: DateTime::from_timestamp_millis(1_780_000_000_000 + i as i64 * 61_000).unwrap_or_default(),
            supplier_id: SupplierId(1 + (i % 7) as i64),
            account_id: (!i.is_multiple_of(3)).then_some(AccountId(i as i64 % 5)),
            provider: if i.is_multiple_of(2) { ProviderKind::OpenAi } else { ProviderKind::Anthropic },
            model: format!("model-{}", i % 3),
            request_type: RequestType::EmailTemplate,
            route: if i.is_multiple_of(5) { Route::Client } else { Route::Platform },
            usage: TokenUsage {
                input: i as u64 * 3,
                output: i as u64,
                cached_read: i as u64 % 4,
                reasoning: i as u64 % 2,
                estimated: i.is_multiple_of(6),
                ..TokenUsage::default()
            },
            cost: Micros(i as i64 * 11),
            latency_ms: i as u32,
            status: if i.is_multiple_of(9) { UsageStatus::Error } else { UsageStatus::Ok },
            error_class: (i.is_multiple_of(9)).then(|| "timeout".to_string()),
            saved: Micros(i as i64 % 3),
        }
    }

    /// Every row of `usage_events`, every column, in insertion order.
    fn rows(store: &Store) -> Vec<String> {
        store
            .with_conn(|c| {
                let mut st = c.prepare("SELECT * FROM usage_events ORDER BY id")?;
                let n = st.column_count();
                let rows = st.query_map([], |r| {
                    (0..n).map(|i| r.get::<_, rusqlite::types::Value>(i).map(|v| format!("{v:?}"))).collect::<Result<Vec<_>, _>>()
                })?;
                rows.map(|r| r.map(|cols| cols.join(" | "))).collect()
            })
            .unwrap()
    }

    #[test]
    fn events_inserted_many_to_a_statement_are_the_rows_one_at_a_time_gives() {
        let tmp = tempfile::tempdir().unwrap();
        let (many, one) = (Store::open(tmp.path().join("many.db")).unwrap(), Store::open(tmp.path().join("one.db")).unwrap());
        // Ten events already there; then 100 in three statements of 32 and
        // four alone, with an id repeated within a statement, one repeated
        // across statements and ten that are already there.
        let there: Vec<UsageEvent> = (0..10).map(event).collect();
        let mut events: Vec<UsageEvent> = (0..100).map(event).collect();
        events[5] = event(3);
        events[40] = event(12);
        for s in [&many, &one] {
            assert_eq!(s.with_conn(|c| append_in(c, &there)).unwrap(), 10);
        }
        let new_many = many.with_conn(|c| append_in(c, &events)).unwrap();
        let new_one: usize = events.iter().map(|e| one.with_conn(|c| append_in(c, std::slice::from_ref(e))).unwrap()).sum();
        // 100 ids, 5 and 40 replaced by repeats, 0–9 there before: 10–99 but 40.
        assert_eq!((new_many, new_one), (89, 89));
        let (a, b) = (rows(&many), rows(&one));
        assert_eq!(a.len(), 99);
        assert_eq!(a, b, "the same rows, column for column, in the same order");
    }
}
