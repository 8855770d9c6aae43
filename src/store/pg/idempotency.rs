//! Idempotency records on PostgreSQL (issue 25): the fleet's one table of
//! `Idempotency-Key`s, so a retry that lands on another instance replays the
//! first answer instead of paying for a second call. Same rows as the SQLite
//! table (`store::idempotency`; times as epoch milliseconds, the body as
//! BYTEA), same rules (`domain::idempotency::decide`).
//!
//! The claim is atomic across instances: `INSERT … ON CONFLICT DO NOTHING`,
//! and when the key exists, `SELECT … FOR UPDATE` then the decision, in one
//! transaction. Two instances claiming one key at once: the second's insert
//! waits for the first's commit, then finds its in-flight record (one new
//! attempt, one 409).
//!
//! The kept bodies' total is one counter row (`idempotency_kept`), so the
//! cap holds for the fleet. Lock order, everywhere: the key's own row, then
//! the counter row; rows whose bodies are dropped to make room (or purged)
//! are taken with `SKIP LOCKED`, never waited for.
//!
//! Batches ([`IdempotencyBackend::begin_batch`]): the engine's idempotency
//! thread takes the changes waiting together (concurrent requests' claims and
//! completions) into one transaction on one connection, so they share one
//! commit (one WAL flush) instead of waiting for one each. The engine answers
//! the callers only after the commit; when any statement of a batch fails, the
//! transaction is rolled back, the commit reports it, and the engine applies
//! the batch's changes again one by one, each in its own transaction. A batch
//! holds the rows it claimed until it commits: a claim of the same key on
//! another instance waits that long (milliseconds), then decides on the
//! committed record.
//!
//! Durability follows the instance's `--ledger-durability`: in `process` mode
//! (the default) the engine's transactions commit with `SET LOCAL
//! synchronous_commit = off`: visible to every instance at once and safe
//! against any instance being killed, but not waiting for PostgreSQL's WAL
//! flush, so a crash of the database's host can lose the last few hundred
//! milliseconds of claims and completions (a retry then runs again), as a
//! power cut can on SQLite with `synchronous=NORMAL`. In `power` mode each
//! commit waits for the flush. Only these transactions: `SET LOCAL` ends with
//! them, and the ledger's folds, on the same pool, always wait.

use super::catalog::PgQ;
use super::{PgStore, block_on_pg};
use crate::domain::SupplierId;
use crate::domain::idempotency::{BodyState, Decision, Endpoint, Fingerprint, IdempotencyKey, KeyRecord, KeyState, decide};
use crate::store::{AttemptTimes, Change, Changed, Claim, IdempotencyBackend, LedgerSync, StoreResult, StoredAnswer};
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use tokio_postgres::Row;

/// PostgreSQL schema entry: the keys, and the kept bodies' total.
pub const IDEMPOTENCY_MIGRATION: &str = r#"
CREATE TABLE idempotency_keys (
    supplier_id BIGINT NOT NULL,
    key TEXT NOT NULL,
    endpoint SMALLINT NOT NULL,            -- 0 chat completions, 1 embeddings, 2 messages
    fingerprint BYTEA NOT NULL,            -- SHA-256 of the request body
    state SMALLINT NOT NULL,               -- 0 in flight, 1 completed, 2 failed
    status INTEGER,                        -- the answer's HTTP status
    request_id TEXT,
    headers TEXT NOT NULL DEFAULT '[]',    -- JSON [[name, value], ...] replayed with the body
    body BYTEA,                            -- the answer's bytes while kept
    body_state SMALLINT NOT NULL DEFAULT 0, -- 0 none, 1 kept, 2 too large, 3 evicted
    body_len BIGINT NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL,
    lease_until_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    completed_ms BIGINT,
    PRIMARY KEY (supplier_id, key)
);
CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_ms);
CREATE INDEX idempotency_keys_bodies ON idempotency_keys (completed_ms) WHERE body IS NOT NULL;
CREATE TABLE idempotency_kept (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    bytes BIGINT NOT NULL
);
INSERT INTO idempotency_kept (id, bytes) VALUES (1, 0);
"#;

/// Schema v11: the instance that holds a key in flight (NULL: a process
/// before v11, or one outside the fleet's instances).
pub const HOLDER_MIGRATION: &str = "ALTER TABLE idempotency_keys ADD COLUMN instance_id BIGINT;";

const COLUMNS: &str = "endpoint, fingerprint, state, status, request_id, body_state, created_ms, lease_until_ms, expires_ms, headers, body";

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// A row as a record and its answer; `None` for a row a newer Switchboard
/// wrote (treated as absent: a new attempt overwrites it).
fn read(r: &Row) -> Option<(KeyRecord, Option<StoredAnswer>)> {
    let fp: Vec<u8> = r.get(1);
    let rec = KeyRecord {
        endpoint: Endpoint::from_code(i64::from(r.get::<_, i16>(0)))?,
        fingerprint: Fingerprint(<[u8; 32]>::try_from(fp.as_slice()).ok()?),
        state: KeyState::from_code(i64::from(r.get::<_, i16>(2)))?,
        status: r.get::<_, Option<i32>>(3).and_then(|s| u16::try_from(s).ok()),
        request_id: r.get(4),
        body: BodyState::from_code(i64::from(r.get::<_, i16>(5)))?,
        created_at: at(r.get(6)),
        lease_until: at(r.get(7)),
        expires_at: at(r.get(8)),
    };
    let headers: String = r.get(9);
    let body: Option<Vec<u8>> = r.get(10);
    let answer = match (rec.state, rec.body, body) {
        (KeyState::Completed, BodyState::Kept, Some(body)) => Some(StoredAnswer {
            status: rec.status.unwrap_or(200),
            request_id: rec.request_id.clone(),
            headers: serde_json::from_str(&headers).unwrap_or_default(),
            body: Bytes::from(body),
        }),
        _ => None,
    };
    Some((rec, answer))
}

fn code(c: i64) -> i16 {
    i16::try_from(c).unwrap_or(i16::MAX)
}

/// The records in the fleet's PostgreSQL database.
#[derive(Debug)]
pub struct PgIdempotency {
    pg: PgStore,
    /// The open batch, between `begin_batch` and `commit_batch`.
    batch: Option<Batch>,
    /// This instance, and after how long without a heartbeat another is gone.
    holder: Holder,
    /// Whether the engine's commits wait for the WAL flush (see the module's doc).
    sync: LedgerSync,
}

/// Who claims keys: an instance of the fleet (its id and the heartbeat
/// timeout that makes another instance gone), or an anonymous process.
#[derive(Debug, Clone, Copy, Default)]
struct Holder {
    instance: Option<i64>,
    gone_after_ms: i64,
}

/// Another handle on the same records (without the open batch, if any).
impl Clone for PgIdempotency {
    fn clone(&self) -> Self {
        Self { pg: self.pg.clone(), batch: None, holder: self.holder, sync: self.sync }
    }
}

type Conn = deadpool_postgres::Object;

/// A batch's connection, inside its transaction.
struct Batch {
    conn: Option<Conn>,
    /// A statement failed: the transaction is aborted and is rolled back at the end.
    failed: bool,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").field("failed", &self.failed).finish()
    }
}

impl Drop for Batch {
    /// A batch dropped while open (the engine stopping) takes its connection
    /// out of the pool, so that no one reuses it inside the open transaction;
    /// the server rolls the transaction back when the connection closes.
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            drop(deadpool_postgres::Object::take(c));
        }
    }
}

/// Ends a change's own transaction: committed when it succeeded, rolled back otherwise.
async fn finish<T>(pg: &PgStore, c: &Conn, r: StoreResult<T>) -> StoreResult<T> {
    match r {
        Ok(v) => {
            c.batch_execute("COMMIT").await.db(pg)?;
            Ok(v)
        }
        Err(e) => {
            let _ = c.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

/// A pooled connection inside a new transaction (whose commit waits for the WAL flush).
async fn begin(pg: &PgStore) -> StoreResult<Conn> {
    begin_synced(pg, LedgerSync::Full).await
}

/// A pooled connection inside a new transaction committing as `sync` says
/// (one round trip either way).
async fn begin_synced(pg: &PgStore, sync: LedgerSync) -> StoreResult<Conn> {
    let c = pg.client().await?;
    let sql = match sync {
        LedgerSync::Full => "BEGIN",
        LedgerSync::Normal => "BEGIN; SET LOCAL synchronous_commit = off",
    };
    c.batch_execute(sql).await.db(pg)?;
    Ok(c)
}

impl PgIdempotency {
    pub fn new(pg: PgStore) -> Self {
        Self { pg, batch: None, holder: Holder::default(), sync: LedgerSync::Full }
    }

    /// How the engine's transactions commit: [`LedgerSync::Normal`] without
    /// waiting for the WAL flush (`process` mode), [`LedgerSync::Full`]
    /// waiting (`power` mode; the default of [`PgIdempotency::new`]).
    pub fn synced(mut self, sync: LedgerSync) -> Self {
        self.sync = sync;
        self
    }

    /// Claims as fleet instance `id` (with the fleet's heartbeat timeout):
    /// another instance's claim of a key this one holds in flight is then
    /// told "in use" while this instance heartbeats, and "outcome unknown"
    /// only once it is gone or stopped.
    pub fn held_by(mut self, instance: Option<(i64, std::time::Duration)>) -> Self {
        self.holder = match instance {
            Some((id, gone_after)) => {
                Holder { instance: Some(id), gone_after_ms: i64::try_from(gone_after.as_millis()).unwrap_or(i64::MAX) }
            }
            None => Holder::default(),
        };
        self
    }

    /// The record of `key` (expired or not), and its answer while kept.
    pub async fn get(&self, supplier: SupplierId, key: &IdempotencyKey) -> StoreResult<Option<(KeyRecord, Option<StoredAnswer>)>> {
        let c = self.pg.client().await?;
        let sql = format!("SELECT {COLUMNS} FROM idempotency_keys WHERE supplier_id = $1 AND key = $2");
        let row = c.query_opt(&sql, &[&supplier.0, &key.as_str()]).await.db(&self.pg)?;
        Ok(row.as_ref().and_then(read))
    }

    /// Bytes of the answer bodies kept now, across the fleet.
    pub async fn kept_bytes(&self) -> StoreResult<u64> {
        let c = self.pg.client().await?;
        let row = c.query_one("SELECT bytes FROM idempotency_kept WHERE id = 1", &[]).await.db(&self.pg)?;
        Ok(row.get::<_, i64>(0).max(0).unsigned_abs())
    }

    /// See [`IdempotencyBackend::claim`]: one transaction, atomic across instances.
    pub async fn claim(
        &self,
        supplier: SupplierId,
        key: &IdempotencyKey,
        endpoint: Endpoint,
        fingerprint: &Fingerprint,
        times: AttemptTimes,
    ) -> StoreResult<Claim> {
        let c = begin(&self.pg).await?;
        let r = claim_on(&self.pg, &c, self.holder, supplier, key, endpoint, fingerprint, times).await;
        finish(&self.pg, &c, r).await
    }

    /// See [`IdempotencyBackend::complete`]: the body is kept if it fits
    /// under `keep_under` in all (the fleet's total), after dropping the
    /// oldest kept bodies that no one is changing now.
    pub async fn complete(
        &self,
        supplier: SupplierId,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        answer: &StoredAnswer,
        keep_under: Option<u64>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<(SupplierId, IdempotencyKey)>> {
        let c = begin(&self.pg).await?;
        let r = complete_on(&self.pg, &c, supplier, key, fingerprint, answer, keep_under, now).await;
        finish(&self.pg, &c, r).await
    }

    /// See [`IdempotencyBackend::fail`].
    pub async fn fail(
        &self,
        supplier: SupplierId,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        status: Option<u16>,
        request_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let c = self.pg.client().await?;
        fail_on(&self.pg, &c, supplier, key, fingerprint, status, request_id, now).await
    }

    /// Deletes the records expired at `now` (skipping rows another
    /// transaction holds: the next purge takes them); returns how many.
    pub async fn purge(&self, now: DateTime<Utc>) -> StoreResult<usize> {
        let c = begin(&self.pg).await?;
        let r = purge_on(&self.pg, &c, now).await;
        finish(&self.pg, &c, r).await
    }
}

/// A claim's statements, inside the caller's transaction.
#[allow(clippy::too_many_arguments)]
async fn claim_on(
    pg: &PgStore,
    c: &Conn,
    holder: Holder,
    supplier: SupplierId,
    key: &IdempotencyKey,
    endpoint: Endpoint,
    fingerprint: &Fingerprint,
    times: AttemptTimes,
) -> StoreResult<Claim> {
    let (s, k, e, fp) = (supplier.0, key.as_str(), code(endpoint.code()), &fingerprint.0[..]);
    let (now, lease, exp) = (ms(times.now), ms(times.lease_until), ms(times.expires_at));
    let me = holder.instance;
    let ins = c
        .prepare_cached(
            "INSERT INTO idempotency_keys (supplier_id, key, endpoint, fingerprint, state, created_ms, lease_until_ms, expires_ms, instance_id)
             VALUES ($1, $2, $3, $4, 0, $5, $6, $7, $8) ON CONFLICT (supplier_id, key) DO NOTHING",
        )
        .await
        .db(pg)?;
    if c.execute(&ins, &[&s, &k, &e, &fp, &now, &lease, &exp, &me]).await.db(pg)? == 1 {
        return Ok(Claim { decision: Decision::Run, record: None, answer: None });
    }
    // Whether the key's holder is another instance still heartbeating (the database's clock).
    let sel = format!(
        "SELECT {COLUMNS}, body_len, (k.instance_id IS DISTINCT FROM $3 AND EXISTS (
                SELECT 1 FROM instances i WHERE i.id = k.instance_id AND i.stopped_at IS NULL
                   AND i.last_seen > now() - make_interval(secs => $4::BIGINT / 1000.0)))
         FROM idempotency_keys k WHERE supplier_id = $1 AND key = $2 FOR UPDATE OF k"
    );
    let sel = c.prepare_cached(&sel).await.db(pg)?;
    let row = c.query_opt(&sel, &[&s, &k, &me, &holder.gone_after_ms]).await.db(pg)?;
    let old_len: i64 = row.as_ref().map_or(0, |r| if r.get::<_, Option<Vec<u8>>>(10).is_some() { r.get(11) } else { 0 });
    let holder_live = row.as_ref().is_some_and(|r| r.get::<_, bool>(12));
    let found = row.as_ref().and_then(read);
    // Live only for an attempt still in flight: a finished record decides by its state.
    let live = holder_live && found.as_ref().is_some_and(|f| f.0.state == KeyState::InFlight && times.now < f.0.lease_until);
    let decision = decide(found.as_ref().map(|f| &f.0), live, endpoint, fingerprint, times.now);
    match decision {
        Decision::Run => {
            let up = c
                .prepare_cached(
                    "INSERT INTO idempotency_keys (supplier_id, key, endpoint, fingerprint, state, created_ms, lease_until_ms, expires_ms, instance_id)
                     VALUES ($1, $2, $3, $4, 0, $5, $6, $7, $8)
                     ON CONFLICT (supplier_id, key) DO UPDATE SET endpoint = excluded.endpoint, fingerprint = excluded.fingerprint,
                        instance_id = excluded.instance_id,
                        state = 0, status = NULL, request_id = NULL, headers = '[]', body = NULL, body_state = 0, body_len = 0,
                        created_ms = excluded.created_ms, lease_until_ms = excluded.lease_until_ms,
                        expires_ms = excluded.expires_ms, completed_ms = NULL",
                )
                .await
                .db(pg)?;
            c.execute(&up, &[&s, &k, &e, &fp, &now, &lease, &exp, &me]).await.db(pg)?;
            if old_len > 0 {
                // An expired record's body goes with it (the counter after the row: the lock order).
                c.execute("UPDATE idempotency_kept SET bytes = greatest(bytes - $1, 0) WHERE id = 1", &[&old_len]).await.db(pg)?;
            }
            Ok(Claim { decision, record: found.map(|f| f.0), answer: None })
        }
        Decision::Replay => {
            let (record, answer) = found.map_or((None, None), |(r, a)| (Some(r), a));
            Ok(Claim { decision, record, answer })
        }
        _ => Ok(Claim { decision, record: found.map(|f| f.0), answer: None }),
    }
}

/// A completion's statements, inside the caller's transaction.
#[allow(clippy::too_many_arguments)]
async fn complete_on(
    pg: &PgStore,
    c: &Conn,
    supplier: SupplierId,
    key: &IdempotencyKey,
    fingerprint: &Fingerprint,
    answer: &StoredAnswer,
    keep_under: Option<u64>,
    now: DateTime<Utc>,
) -> StoreResult<Vec<(SupplierId, IdempotencyKey)>> {
    let len = i64::try_from(answer.body.len()).unwrap_or(i64::MAX);
    let max_total = keep_under.map_or(0, |m| i64::try_from(m).unwrap_or(i64::MAX));
    let mut keep = keep_under.is_some() && len <= max_total;
    let (s, k, fp) = (supplier.0, key.as_str(), &fingerprint.0[..]);
    // Prepared once per connection: each statement is then one round trip.
    // The key's own row first (the lock order), and only our in-flight attempt's.
    let own = c
        .prepare_cached("SELECT 1 FROM idempotency_keys WHERE supplier_id = $1 AND key = $2 AND fingerprint = $3 AND state = 0 FOR UPDATE")
        .await
        .db(pg)?;
    if c.query_opt(&own, &[&s, &k, &fp]).await.db(pg)?.is_none() {
        return Ok(Vec::new());
    }
    let mut evicted = Vec::new();
    // The common case in one statement: the body fits under the cap as it is.
    let fits = c
        .prepare_cached("UPDATE idempotency_kept SET bytes = bytes + $1 WHERE id = 1 AND bytes + $1 <= $2 RETURNING bytes")
        .await
        .db(pg)?;
    if keep && c.query_opt(&fits, &[&len, &max_total]).await.db(pg)?.is_none() {
        let mut kept: i64 = c.query_one("SELECT bytes FROM idempotency_kept WHERE id = 1 FOR UPDATE", &[]).await.db(pg)?.get(0);
        let mut freed = 0i64;
        while kept.saturating_add(len) > max_total {
            let oldest = c
                .query(
                    "SELECT supplier_id, key, body_len FROM idempotency_keys WHERE body IS NOT NULL
                     ORDER BY completed_ms, supplier_id, key LIMIT 64 FOR UPDATE SKIP LOCKED",
                    &[],
                )
                .await
                .db(pg)?;
            if oldest.is_empty() {
                // What is kept is being changed by others: this body is not kept.
                keep = false;
                break;
            }
            for r in oldest {
                if kept.saturating_add(len) <= max_total {
                    break;
                }
                let (os, ok): (i64, String) = (r.get(0), r.get(1));
                // Only a body still there counts (another change of the same
                // batch, pipelined beside this one, may have dropped it).
                let dropped = c
                    .query_opt(
                        "UPDATE idempotency_keys SET body = NULL, body_state = 3, body_len = 0
                         WHERE supplier_id = $1 AND key = $2 AND body IS NOT NULL RETURNING $3::BIGINT",
                        &[&os, &ok, &r.get::<_, i64>(2)],
                    )
                    .await
                    .db(pg)?;
                let Some(n) = dropped.map(|d| d.get::<_, i64>(0)) else { continue };
                kept = kept.saturating_sub(n.max(0)).max(0);
                freed = freed.saturating_add(n.max(0));
                if let Ok(ok) = IdempotencyKey::parse(ok.as_bytes()) {
                    evicted.push((SupplierId(os), ok));
                }
            }
        }
        // Relative to the stored total: other changes pipelined in the same
        // batch may have counted their bodies meanwhile.
        let added = if keep { len } else { 0 };
        c.execute("UPDATE idempotency_kept SET bytes = greatest(bytes - $1, 0) + $2 WHERE id = 1", &[&freed, &added]).await.db(pg)?;
    }
    let headers = serde_json::to_string(&answer.headers).unwrap_or_else(|_| "[]".into());
    let (body, body_state, body_len) = if keep { (Some(&answer.body[..]), BodyState::Kept, len) } else { (None, BodyState::TooLarge, 0) };
    let done = c
        .prepare_cached(
            "UPDATE idempotency_keys SET state = 1, status = $4, request_id = $5, headers = $6, body = $7, body_state = $8,
                body_len = $9, completed_ms = $10
             WHERE supplier_id = $1 AND key = $2 AND fingerprint = $3 AND state = 0",
        )
        .await
        .db(pg)?;
    c.execute(
        &done,
        &[&s, &k, &fp, &i32::from(answer.status), &answer.request_id, &headers, &body, &code(body_state.code()), &body_len, &ms(now)],
    )
    .await
    .db(pg)?;
    Ok(evicted)
}

/// A failed attempt's one statement.
#[allow(clippy::too_many_arguments)]
async fn fail_on(
    pg: &PgStore,
    c: &Conn,
    supplier: SupplierId,
    key: &IdempotencyKey,
    fingerprint: &Fingerprint,
    status: Option<u16>,
    request_id: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let failed = c
        .prepare_cached(
            "UPDATE idempotency_keys SET state = 2, status = $4, request_id = $5, completed_ms = $6
             WHERE supplier_id = $1 AND key = $2 AND fingerprint = $3 AND state = 0",
        )
        .await
        .db(pg)?;
    c.execute(&failed, &[&supplier.0, &key.as_str(), &&fingerprint.0[..], &status.map(i32::from), &request_id, &ms(now)]).await.db(pg)?;
    Ok(())
}

/// The purge's statements, inside the caller's transaction.
async fn purge_on(pg: &PgStore, c: &Conn, now: DateTime<Utc>) -> StoreResult<usize> {
    let rows = c
        .query(
            "DELETE FROM idempotency_keys WHERE (supplier_id, key) IN (
                SELECT supplier_id, key FROM idempotency_keys WHERE expires_ms <= $1 FOR UPDATE SKIP LOCKED)
             RETURNING CASE WHEN body IS NULL THEN 0 ELSE body_len END",
            &[&ms(now)],
        )
        .await
        .db(pg)?;
    let freed = rows.iter().fold(0i64, |a, r| a.saturating_add(r.get::<_, i64>(0).max(0)));
    if freed > 0 {
        c.execute("UPDATE idempotency_kept SET bytes = greatest(bytes - $1, 0) WHERE id = 1", &[&freed]).await.db(pg)?;
    }
    Ok(rows.len())
}

impl PgIdempotency {
    /// One change from the engine's idempotency thread: inside the open batch
    /// (through [`IdempotencyBackend::apply_all`]), or in a transaction of its own.
    fn one(&mut self, c: Change) -> Changed {
        if self.batch.is_some() {
            return self.apply_all(vec![c]).pop().unwrap_or_else(|| Changed::Purge(Err(aborted())));
        }
        let (pg, holder, sync) = (self.pg.clone(), self.holder, self.sync);
        block_on_pg(async move {
            let conn = match begin_synced(&pg, sync).await {
                Ok(conn) => conn,
                Err(e) => return failed_with(&c, e),
            };
            let r = run_change(&pg, &conn, holder, c).await;
            match r {
                Changed::Claim(r) => Changed::Claim(finish(&pg, &conn, r).await),
                Changed::Complete(r) => Changed::Complete(finish(&pg, &conn, r).await),
                Changed::Fail(r) => Changed::Fail(finish(&pg, &conn, r).await),
                Changed::Purge(r) => Changed::Purge(finish(&pg, &conn, r).await),
            }
        })
    }
}

/// A [`Changed`] of the one-change method that asked for another kind (never
/// happens: `run_change` answers each change in its own kind).
fn other_kind(c: Changed) -> crate::store::StoreError {
    crate::store::StoreError::Invalid(format!("internal: an idempotency change answered as another kind: {c:?}"))
}

fn aborted() -> crate::store::StoreError {
    crate::store::StoreError::Invalid("an earlier change of this idempotency batch failed; the batch is rolled back".into())
}

impl IdempotencyBackend for PgIdempotency {
    /// Opens a transaction on a connection of its own for the changes that follow.
    fn begin_batch(&mut self) -> StoreResult<()> {
        let (pg, sync) = (self.pg.clone(), self.sync);
        let conn = block_on_pg(async move { begin_synced(&pg, sync).await })?;
        self.batch = Some(Batch { conn: Some(conn), failed: false });
        Ok(())
    }
    /// Commits the batch, or rolls it back and says so when one of its changes failed.
    fn commit_batch(&mut self) -> StoreResult<()> {
        let Some(mut b) = self.batch.take() else { return Ok(()) };
        let Some(conn) = b.conn.take() else { return Err(aborted()) };
        let (pg, failed) = (self.pg.clone(), b.failed);
        block_on_pg(async move {
            if failed {
                conn.batch_execute("ROLLBACK").await.db(&pg)?;
                return Err(aborted());
            }
            conn.batch_execute("COMMIT").await.db(&pg)?;
            Ok(())
        })
    }
    fn claim(
        &mut self,
        supplier: SupplierId,
        key: &IdempotencyKey,
        endpoint: Endpoint,
        fingerprint: &Fingerprint,
        times: AttemptTimes,
    ) -> StoreResult<Claim> {
        match self.one(Change::Claim { supplier, key: key.clone(), endpoint, fingerprint: *fingerprint, times }) {
            Changed::Claim(r) => r,
            other => Err(other_kind(other)),
        }
    }
    fn complete(
        &mut self,
        supplier: SupplierId,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        answer: &StoredAnswer,
        keep_under: Option<u64>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<(SupplierId, IdempotencyKey)>> {
        let c = Change::Complete { supplier, key: key.clone(), fingerprint: *fingerprint, answer: answer.clone(), keep_under, now };
        match self.one(c) {
            Changed::Complete(r) => r,
            other => Err(other_kind(other)),
        }
    }
    fn fail(
        &mut self,
        supplier: SupplierId,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        status: Option<u16>,
        request_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let c =
            Change::Fail { supplier, key: key.clone(), fingerprint: *fingerprint, status, request_id: request_id.map(str::to_owned), now };
        match self.one(c) {
            Changed::Fail(r) => r,
            other => Err(other_kind(other)),
        }
    }
    fn purge(&mut self, now: DateTime<Utc>) -> StoreResult<usize> {
        match self.one(Change::Purge { now }) {
            Changed::Purge(r) => r,
            other => Err(other_kind(other)),
        }
    }
    /// `synchronous_commit` of the open batch's transaction, or of a new
    /// transaction as the next change would open it.
    fn commits_synced(&mut self) -> StoreResult<bool> {
        // Every setting but `off` waits for at least the local flush.
        let show = |v: String| v != "off";
        if let Some(b) = self.batch.as_mut() {
            let conn = b.conn.take().ok_or_else(aborted)?;
            let pg = self.pg.clone();
            let (conn, row) = block_on_pg(async move {
                let row = conn.query_one("SHOW synchronous_commit", &[]).await.db(&pg);
                (conn, row)
            });
            b.conn = Some(conn);
            b.failed |= row.is_err();
            return Ok(show(row?.get(0)));
        }
        let (pg, sync) = (self.pg.clone(), self.sync);
        block_on_pg(async move {
            let c = begin_synced(&pg, sync).await?;
            let row = c.query_one("SHOW synchronous_commit", &[]).await.db(&pg);
            let _ = c.batch_execute("ROLLBACK").await;
            Ok(show(row?.get(0)))
        })
    }
    /// Inside a batch, the changes of different keys are sent together on
    /// the batch's connection (pipelined: the server runs them in the order
    /// sent, without a round trip between them); each key's changes in order,
    /// purges last.
    fn apply_all(&mut self, changes: Vec<Change>) -> Vec<Changed> {
        let Some(mut b) = self.batch.take() else {
            return changes.into_iter().map(|c| crate::store::idempotency::apply_one(self, c)).collect();
        };
        let Some(conn) = b.conn.take().filter(|_| !b.failed) else {
            self.batch = Some(b);
            return changes.iter().map(refused).collect();
        };
        let (pg, holder) = (self.pg.clone(), self.holder);
        let (conn, results) = block_on_pg(async move {
            let results = pipelined(&pg, &conn, holder, changes).await;
            (conn, results)
        });
        b.failed = results.iter().any(Changed::is_err);
        b.conn = Some(conn);
        self.batch = Some(b);
        results
    }
}

/// A change refused because its batch already failed.
fn refused(c: &Change) -> Changed {
    failed_with(c, aborted())
}

/// `c`'s kind of answer, failed with `e`.
fn failed_with(c: &Change, e: crate::store::StoreError) -> Changed {
    match c {
        Change::Claim { .. } => Changed::Claim(Err(e)),
        Change::Complete { .. } => Changed::Complete(Err(e)),
        Change::Fail { .. } => Changed::Fail(Err(e)),
        Change::Purge { .. } => Changed::Purge(Err(e)),
    }
}

/// Runs `changes` on `c` (inside its transaction): one chain per key, the
/// chains polled together, so their statements are pipelined; purges after.
async fn pipelined(pg: &PgStore, c: &Conn, holder: Holder, changes: Vec<Change>) -> Vec<Changed> {
    let mut chains: Vec<Vec<(usize, Change)>> = Vec::new();
    let mut by_key: std::collections::HashMap<(i64, String), usize> = std::collections::HashMap::new();
    let mut purges = Vec::new();
    for (i, ch) in changes.into_iter().enumerate() {
        match ch.key().map(|(s, k)| (s.0, k.as_str().to_string())) {
            Some(id) => {
                let at = *by_key.entry(id).or_insert_with(|| {
                    chains.push(Vec::new());
                    chains.len() - 1
                });
                chains[at].push((i, ch));
            }
            None => purges.push((i, ch)),
        }
    }
    let runs = chains.into_iter().map(|chain| async move {
        let mut out = Vec::with_capacity(chain.len());
        for (i, ch) in chain {
            out.push((i, run_change(pg, c, holder, ch).await));
        }
        out
    });
    let mut done: Vec<(usize, Changed)> = futures::future::join_all(runs).await.into_iter().flatten().collect();
    for (i, ch) in purges {
        done.push((i, run_change(pg, c, holder, ch).await));
    }
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// One change's statements on `c`, inside its transaction.
async fn run_change(pg: &PgStore, c: &Conn, holder: Holder, ch: Change) -> Changed {
    match ch {
        Change::Claim { supplier, key, endpoint, fingerprint, times } => {
            Changed::Claim(claim_on(pg, c, holder, supplier, &key, endpoint, &fingerprint, times).await)
        }
        Change::Complete { supplier, key, fingerprint, answer, keep_under, now } => {
            Changed::Complete(complete_on(pg, c, supplier, &key, &fingerprint, &answer, keep_under, now).await)
        }
        Change::Fail { supplier, key, fingerprint, status, request_id, now } => {
            Changed::Fail(fail_on(pg, c, supplier, &key, &fingerprint, status, request_id.as_deref(), now).await)
        }
        Change::Purge { now } => Changed::Purge(purge_on(pg, c, now).await),
    }
}
